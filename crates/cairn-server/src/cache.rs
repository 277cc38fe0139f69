//! The in-memory copy of every current config and gray release. Reads are served from
//! here and never touch the database; writes land here only after their transaction
//! commits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cairn_core::{ClientInfo, ConfigKey, Format, Namespace, Revision};
use cairn_store::{ConfigRecord, GrayRecord};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// A record the cache keeps by key, ordered by revision.
pub trait Versioned {
    fn key(&self) -> &ConfigKey;
    fn revision(&self) -> Revision;
}

impl Versioned for ConfigRecord {
    fn key(&self) -> &ConfigKey {
        &self.key
    }
    fn revision(&self) -> Revision {
        self.revision
    }
}

impl Versioned for GrayRecord {
    fn key(&self) -> &ConfigKey {
        &self.key
    }
    fn revision(&self) -> Revision {
        self.revision
    }
}

/// What is known of a key: its current version, or that a change removed it (kept so
/// that a late, older version cannot bring it back).
enum Slot<T> {
    Live(Arc<T>),
    /// Removed by change `seq`, noted at that instant.
    Removed(Revision, Instant),
}

/// Versions by key that only ever move forward.
struct Versions<T> {
    /// Every read and every woken watch looks a key up here: hashed with foldhash
    /// (seeded per process) rather than SipHash.
    slots: DashMap<ConfigKey, Slot<T>, foldhash::fast::RandomState>,
    live: AtomicUsize,
}

impl<T> Default for Versions<T> {
    fn default() -> Self {
        Self {
            slots: DashMap::default(),
            live: AtomicUsize::new(0),
        }
    }
}

impl<T: Versioned> Versions<T> {
    fn load(records: Vec<T>) -> Self {
        let slots = DashMap::with_capacity_and_hasher(records.len(), Default::default());
        for record in records {
            slots.insert(record.key().clone(), Slot::Live(Arc::new(record)));
        }
        Self {
            live: AtomicUsize::new(slots.len()),
            slots,
        }
    }

    /// The key as this map holds it, if it holds one.
    fn key(&self, key: &ConfigKey) -> Option<ConfigKey> {
        self.slots.get(key).map(|slot| slot.key().clone())
    }

    fn get(&self, key: &ConfigKey) -> Option<Arc<T>> {
        match self.slots.get(key)?.value() {
            Slot::Live(record) => Some(record.clone()),
            Slot::Removed(..) => None,
        }
    }

    /// `None` when a newer version or removal is already here; else the version it
    /// replaced, if one was live.
    fn apply(&self, record: Arc<T>) -> Option<Option<Arc<T>>> {
        match self.slots.entry(record.key().clone()) {
            Entry::Occupied(mut slot) => {
                let (newer, was) = match slot.get() {
                    Slot::Live(current) => (
                        current.revision() < record.revision(),
                        Some(current.clone()),
                    ),
                    Slot::Removed(seq, _) => (*seq < record.revision(), None),
                };
                if !newer {
                    return None;
                }
                slot.insert(Slot::Live(record));
                if was.is_none() {
                    self.live.fetch_add(1, Ordering::Relaxed);
                }
                Some(was)
            }
            Entry::Vacant(slot) => {
                slot.insert(Slot::Live(record));
                self.live.fetch_add(1, Ordering::Relaxed);
                Some(None)
            }
        }
    }

    /// The live version the removal ended, if one was live and older.
    fn remove(&self, key: &ConfigKey, seq: Revision) -> Option<Arc<T>> {
        match self.slots.entry(key.clone()) {
            Entry::Occupied(mut slot) => match slot.get_mut() {
                Slot::Live(current) if current.revision() < seq => {
                    let removed = current.clone();
                    slot.insert(Slot::Removed(seq, Instant::now()));
                    self.live.fetch_sub(1, Ordering::Relaxed);
                    Some(removed)
                }
                Slot::Live(_) => None,
                Slot::Removed(known, at) => {
                    *known = (*known).max(seq);
                    *at = Instant::now();
                    None
                }
            },
            Entry::Vacant(slot) => {
                slot.insert(Slot::Removed(seq, Instant::now()));
                None
            }
        }
    }

    fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The sequence of the last change seen for `key`: its version or its removal.
    fn last_change(&self, key: &ConfigKey) -> Option<Revision> {
        self.slots.get(key).map(|slot| match slot.value() {
            Slot::Live(record) => record.revision(),
            Slot::Removed(seq, _) => *seq,
        })
    }

    /// Drops tombstones older than `age`: by then no older version can still be on its
    /// way (local writes apply within milliseconds; the tailer applies the log in order).
    fn forget_removed(&self, age: std::time::Duration) {
        self.slots
            .retain(|_, slot| !matches!(slot, Slot::Removed(_, at) if at.elapsed() > age));
    }

    fn select(&self, keep: impl Fn(&T) -> bool) -> Vec<Arc<T>> {
        self.slots
            .iter()
            .filter_map(|entry| match entry.value() {
                Slot::Live(record) if keep(record) => Some(record.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A view that lends out its content's bytes.
struct ContentOf(View);

impl AsRef<[u8]> for ContentOf {
    fn as_ref(&self) -> &[u8] {
        self.0.content().as_bytes()
    }
}

/// A config as one client sees it: the gray release when its rules match the client,
/// else the main content.
#[derive(Clone)]
pub struct View {
    pub config: Arc<ConfigRecord>,
    pub gray: Option<Arc<GrayRecord>>,
}

impl View {
    pub fn content(&self) -> &str {
        self.gray
            .as_ref()
            .map_or(&self.config.content, |g| &g.content)
    }

    pub fn md5(&self) -> &str {
        self.gray.as_ref().map_or(&self.config.md5, |g| &g.md5)
    }

    /// The content as a response body that shares the cached record instead of copying
    /// it: reads are the hot path, and a copy per read is an allocation and a memcpy.
    pub fn content_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from_owner(ContentOf(self.clone()))
    }

    pub fn format(&self) -> Format {
        self.gray.as_ref().map_or(self.config.format, |g| g.format)
    }

    pub fn revision(&self) -> Revision {
        self.gray
            .as_ref()
            .map_or(self.config.revision, |g| g.revision)
    }

    pub fn is_gray(&self) -> bool {
        self.gray.is_some()
    }
}

/// What is known of one key's versions, for a surface that numbers a client's changes
/// itself (Apollo's notification ids).
#[derive(Debug, Clone)]
pub struct KeyState {
    /// The sequence of the last change to the main config (a version or a deletion).
    pub config: Option<Revision>,
    /// The live gray release.
    pub gray: Option<Arc<GrayRecord>>,
    /// The sequence of the last change to the key or its gray release.
    pub epoch: Option<Revision>,
}

/// What applying a gray release did.
pub enum GrayApplied {
    /// A newer version or end is already here.
    Stale,
    /// Applied; it replaced this release, whose clients now read something else.
    Applied { replaced: Option<Arc<GrayRecord>> },
}

/// Every current config and gray release, by key.
#[derive(Default)]
pub struct Cache {
    configs: Versions<ConfigRecord>,
    grays: Versions<GrayRecord>,
    /// What each namespace holds, kept as versions come and go, for its quotas.
    usage: DashMap<Namespace, Usage, foldhash::fast::RandomState>,
}

/// How many configs a namespace holds and their content's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub configs: u64,
    pub bytes: u64,
}

impl Cache {
    pub fn load(configs: Vec<ConfigRecord>, grays: Vec<GrayRecord>) -> Self {
        let usage = DashMap::default();
        for config in &configs {
            let mut used = usage
                .entry(config.key.namespace.clone())
                .or_insert(Usage::default());
            used.configs += 1;
            used.bytes += config.content.len() as u64;
        }
        Self {
            configs: Versions::load(configs),
            grays: Versions::load(grays),
            usage,
        }
    }

    /// What `namespace` holds.
    pub fn usage(&self, namespace: &Namespace) -> Usage {
        self.usage.get(namespace).map(|u| *u).unwrap_or_default()
    }

    /// Counts a version in, and the one it replaced out.
    fn account(
        &self,
        namespace: &Namespace,
        added: Option<&ConfigRecord>,
        gone: Option<&ConfigRecord>,
    ) {
        let mut used = self.usage.entry(namespace.clone()).or_default();
        if let Some(record) = added {
            used.configs += 1;
            used.bytes += record.content.len() as u64;
        }
        if let Some(record) = gone {
            used.configs = used.configs.saturating_sub(1);
            used.bytes = used.bytes.saturating_sub(record.content.len() as u64);
        }
    }

    /// The main version of a config.
    pub fn get(&self, key: &ConfigKey) -> Option<Arc<ConfigRecord>> {
        self.configs.get(key)
    }

    /// The config as `client` sees it.
    /// `key`, sharing its names with the cached config's key where there is one: a
    /// watch holds its keys for as long as it waits, and looks them up on every wake,
    /// so thousands of watches of a key then read the same names rather than a copy
    /// each.
    pub fn intern(&self, key: ConfigKey) -> ConfigKey {
        self.configs.key(&key).unwrap_or(key)
    }

    pub fn view(&self, key: &ConfigKey, client: &ClientInfo) -> Option<View> {
        let config = self.configs.get(key)?;
        let gray = if self.grays.len() == 0 {
            None
        } else {
            self.grays.get(key).filter(|g| g.rules.matches(client))
        };
        Some(View { config, gray })
    }

    /// Stores a committed version unless a newer version or deletion is already here,
    /// so that changes applied out of order never move a config backwards. Returns
    /// whether it was applied.
    pub fn apply(&self, record: Arc<ConfigRecord>) -> bool {
        let namespace = record.key.namespace.clone();
        let added = record.clone();
        match self.configs.apply(record) {
            Some(replaced) => {
                self.account(&namespace, Some(&added), replaced.as_deref());
                true
            }
            None => false,
        }
    }

    /// Records the deletion of a config by change `seq` (its gray release goes with it),
    /// unless a newer version is already here. Returns whether a config was removed.
    pub fn remove(&self, key: &ConfigKey, seq: Revision) -> bool {
        self.grays.remove(key, seq);
        match self.configs.remove(key, seq) {
            Some(removed) => {
                self.account(&key.namespace, None, Some(&removed));
                true
            }
            None => false,
        }
    }

    /// A config's gray release.
    pub fn gray(&self, key: &ConfigKey) -> Option<Arc<GrayRecord>> {
        self.grays.get(key)
    }

    /// Stores a committed gray release unless a newer version or end is already here.
    pub fn apply_gray(&self, record: Arc<GrayRecord>) -> GrayApplied {
        let replaced = self.grays.get(&record.key);
        if self.grays.apply(record).is_some() {
            GrayApplied::Applied { replaced }
        } else {
            GrayApplied::Stale
        }
    }

    /// Records that change `seq` ended a gray release (promoted or abandoned); returns
    /// the release it ended, if one was live and older.
    pub fn remove_gray(&self, key: &ConfigKey, seq: Revision) -> Option<Arc<GrayRecord>> {
        self.grays.remove(key, seq)
    }

    /// What is known of `key`'s versions.
    pub fn key_state(&self, key: &ConfigKey) -> KeyState {
        let config = self.configs.last_change(key);
        let gray_change = self.grays.last_change(key);
        KeyState {
            config,
            // Most nodes have no gray release at all: no lookup then.
            gray: if self.grays.len() == 0 {
                None
            } else {
                self.grays.get(key)
            },
            epoch: config.max(gray_change),
        }
    }

    /// Configs currently present.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// Forgets deletions noted longer ago than `age`, so deleted keys do not stay in
    /// memory for ever.
    pub fn forget_removed(&self, age: std::time::Duration) {
        self.configs.forget_removed(age);
        self.grays.forget_removed(age);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every config matching `keep`, in key order.
    pub fn select(&self, keep: impl Fn(&ConfigRecord) -> bool) -> Vec<Arc<ConfigRecord>> {
        let mut found = self.configs.select(keep);
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found
    }

    /// Every gray release's key.
    pub fn gray_keys(&self) -> Vec<ConfigKey> {
        self.grays
            .select(|_| true)
            .iter()
            .map(|g| g.key.clone())
            .collect()
    }
}

/// Revision `n`, for tests.
#[cfg(test)]
pub(crate) fn rev(n: i64) -> Revision {
    Revision::new(n).expect("a positive revision")
}

/// A stored config with `content`, for tests of the code that reads the cache.
#[cfg(test)]
pub(crate) fn test_record(key: ConfigKey, revision: i64, content: &str) -> ConfigRecord {
    ConfigRecord {
        revision: rev(revision),
        key,
        content: content.into(),
        format: Format::Text,
        md5: cairn_core::md5::md5_hex(content),
        description: String::new(),
        tags: vec![],
        created_by: "a".into(),
        created_at: 0,
        updated_by: "a".into(),
        updated_at: 0,
        sensitive: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{GrayRules, Label};

    fn key() -> ConfigKey {
        ConfigKey::parse("public", "g", "d").unwrap()
    }

    fn record(revision: i64, content: &str) -> Arc<ConfigRecord> {
        Arc::new(test_record(key(), revision, content))
    }

    fn gray(revision: i64, content: &str) -> Arc<GrayRecord> {
        Arc::new(GrayRecord {
            key: key(),
            content: content.into(),
            format: Format::Text,
            md5: cairn_core::md5::md5_hex(content),
            revision: rev(revision),
            rules: GrayRules::parse(&[], &["canary=true".into()]).unwrap(),
            created_by: "a".into(),
            created_at: 0,
        })
    }

    #[test]
    fn older_versions_never_replace_newer_ones() {
        let cache = Cache::default();
        assert!(cache.apply(record(5, "five")));
        assert!(!cache.apply(record(3, "three")));
        assert_eq!(cache.get(&key()).unwrap().content, "five");
        assert!(
            !cache.remove(&key(), rev(4)),
            "a delete older than the content"
        );
        assert!(cache.remove(&key(), rev(6)));
        assert!(cache.is_empty());
        // A version older than the deletion, arriving late, stays out.
        assert!(!cache.apply(record(5, "five")));
        assert!(cache.get(&key()).is_none());
        // A newer one brings the config back.
        assert!(cache.apply(record(7, "seven")));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn matching_clients_see_the_gray_release() {
        let cache = Cache::default();
        cache.apply(record(1, "main"));
        cache.apply_gray(gray(2, "canary"));
        let canary = ClientInfo::new(None, vec![Label::parse("canary=true").unwrap()]);
        let other = ClientInfo::default();
        let seen = cache.view(&key(), &canary).unwrap();
        assert!(seen.is_gray());
        assert_eq!((seen.content(), seen.revision()), ("canary", rev(2)));
        assert_eq!(cache.view(&key(), &other).unwrap().content(), "main");
        // Ending the release (promote or abandon) puts everyone on the main content.
        assert!(cache.remove_gray(&key(), rev(3)).is_some());
        assert!(!cache.view(&key(), &canary).unwrap().is_gray());
        assert!(
            matches!(cache.apply_gray(gray(2, "canary")), GrayApplied::Stale),
            "a late copy stays out"
        );
        // Deleting the config ends its gray release too.
        cache.apply_gray(gray(4, "again"));
        cache.remove(&key(), rev(5));
        assert!(cache.gray(&key()).is_none());
    }
}
