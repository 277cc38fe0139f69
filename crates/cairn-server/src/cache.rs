//! The in-memory copy of every current config. Reads are served from here and never
//! touch the database; writes land here only after their transaction commits.

use std::sync::Arc;

use cairn_core::ConfigKey;
use cairn_store::ConfigRecord;
use dashmap::DashMap;

/// Every current config, by key.
#[derive(Default)]
pub struct Cache {
    configs: DashMap<ConfigKey, Arc<ConfigRecord>>,
}

impl Cache {
    pub fn load(records: Vec<ConfigRecord>) -> Self {
        let configs = DashMap::with_capacity(records.len());
        for record in records {
            configs.insert(record.key.clone(), Arc::new(record));
        }
        Self { configs }
    }

    pub fn get(&self, key: &ConfigKey) -> Option<Arc<ConfigRecord>> {
        self.configs.get(key).map(|entry| entry.value().clone())
    }

    /// The md5 a watcher compares with; empty when the config does not exist.
    pub fn md5(&self, key: &ConfigKey) -> Option<String> {
        self.configs.get(key).map(|entry| entry.md5.clone())
    }

    /// Stores a committed version unless a newer one is already here, so that changes
    /// applied out of order never move a config backwards. Returns whether it was applied.
    pub fn apply(&self, record: Arc<ConfigRecord>) -> bool {
        let mut applied = false;
        self.configs
            .entry(record.key.clone())
            .and_modify(|current| {
                if current.revision < record.revision {
                    *current = record.clone();
                    applied = true;
                }
            })
            .or_insert_with(|| {
                applied = true;
                record.clone()
            });
        applied
    }

    /// Removes a config deleted by change `seq`, unless a newer version is already here.
    pub fn remove(&self, key: &ConfigKey, seq: i64) -> bool {
        self.configs
            .remove_if(key, |_, current| current.revision < seq)
            .is_some()
    }

    pub fn len(&self) -> usize {
        self.configs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Every config matching `keep`, in key order.
    pub fn select(&self, keep: impl Fn(&ConfigRecord) -> bool) -> Vec<Arc<ConfigRecord>> {
        let mut found: Vec<Arc<ConfigRecord>> = self
            .configs
            .iter()
            .filter(|entry| keep(entry.value()))
            .map(|entry| entry.value().clone())
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
    }
}
