//! The in-memory copy of every current config. Reads are served from here and never
//! touch the database; writes land here only after their transaction commits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_core::ConfigKey;
use cairn_store::ConfigRecord;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// What the cache knows of a key: its current version, or that it was deleted by a
/// change (kept so that a late, older version cannot bring the config back).
enum Slot {
    Live(Arc<ConfigRecord>),
    Deleted(i64),
}

/// Every current config, by key.
#[derive(Default)]
pub struct Cache {
    slots: DashMap<ConfigKey, Slot>,
    live: AtomicUsize,
}

impl Cache {
    pub fn load(records: Vec<ConfigRecord>) -> Self {
        let slots = DashMap::with_capacity(records.len());
        for record in records {
            slots.insert(record.key.clone(), Slot::Live(Arc::new(record)));
        }
        Self {
            live: AtomicUsize::new(slots.len()),
            slots,
        }
    }

    pub fn get(&self, key: &ConfigKey) -> Option<Arc<ConfigRecord>> {
        match self.slots.get(key)?.value() {
            Slot::Live(record) => Some(record.clone()),
            Slot::Deleted(_) => None,
        }
    }

    /// The md5 a watcher compares with; `None` when the config does not exist.
    pub fn md5(&self, key: &ConfigKey) -> Option<String> {
        match self.slots.get(key)?.value() {
            Slot::Live(record) => Some(record.md5.clone()),
            Slot::Deleted(_) => None,
        }
    }

    /// Stores a committed version unless the cache already holds a newer version or a
    /// newer deletion, so that changes applied out of order never move a config
    /// backwards. Returns whether it was applied.
    pub fn apply(&self, record: Arc<ConfigRecord>) -> bool {
        match self.slots.entry(record.key.clone()) {
            Entry::Occupied(mut slot) => {
                let (newer, was_live) = match slot.get() {
                    Slot::Live(current) => (current.revision < record.revision, true),
                    Slot::Deleted(seq) => (*seq < record.revision, false),
                };
                if newer {
                    slot.insert(Slot::Live(record));
                    if !was_live {
                        self.live.fetch_add(1, Ordering::Relaxed);
                    }
                }
                newer
            }
            Entry::Vacant(slot) => {
                slot.insert(Slot::Live(record));
                self.live.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    /// Records the deletion of a config by change `seq`, unless a newer version is
    /// already here. Returns whether a live config was removed.
    pub fn remove(&self, key: &ConfigKey, seq: i64) -> bool {
        match self.slots.entry(key.clone()) {
            Entry::Occupied(mut slot) => match slot.get_mut() {
                Slot::Live(current) if current.revision < seq => {
                    slot.insert(Slot::Deleted(seq));
                    self.live.fetch_sub(1, Ordering::Relaxed);
                    true
                }
                Slot::Live(_) => false,
                Slot::Deleted(known) => {
                    *known = (*known).max(seq);
                    false
                }
            },
            Entry::Vacant(slot) => {
                slot.insert(Slot::Deleted(seq));
                false
            }
        }
    }

    /// Configs currently present.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every config matching `keep`, in key order.
    pub fn select(&self, keep: impl Fn(&ConfigRecord) -> bool) -> Vec<Arc<ConfigRecord>> {
        let mut found: Vec<Arc<ConfigRecord>> = self
            .slots
            .iter()
            .filter_map(|entry| match entry.value() {
                Slot::Live(record) if keep(record) => Some(record.clone()),
                _ => None,
            })
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Format;

    fn record(revision: i64, content: &str) -> Arc<ConfigRecord> {
        Arc::new(ConfigRecord {
            key: ConfigKey::parse("public", "g", "d").unwrap(),
            content: content.into(),
            format: Format::Text,
            md5: cairn_core::md5::md5_hex(content),
            revision,
            description: String::new(),
            tags: vec![],
            created_by: "a".into(),
            created_at: 0,
            updated_by: "a".into(),
            updated_at: 0,
        })
    }

    #[test]
    fn older_versions_never_replace_newer_ones() {
        let cache = Cache::default();
        assert!(cache.apply(record(5, "five")));
        assert!(!cache.apply(record(3, "three")));
        assert_eq!(cache.get(&record(0, "").key).unwrap().content, "five");
        assert!(
            !cache.remove(&record(0, "").key, 4),
            "a delete older than the content"
        );
        assert!(cache.remove(&record(0, "").key, 6));
        assert!(cache.is_empty());
        // A version older than the deletion, arriving late, stays out.
        assert!(!cache.apply(record(5, "five")));
        assert!(cache.get(&record(0, "").key).is_none());
        // A newer one brings the config back.
        assert!(cache.apply(record(7, "seven")));
        assert_eq!(cache.len(), 1);
    }
}
