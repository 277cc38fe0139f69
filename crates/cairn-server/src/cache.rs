//! The in-memory copy of every current config and gray release. Reads are served from
//! here and never touch the database; writes land here only after their transaction
//! commits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cairn_core::{ClientInfo, ConfigKey, Format, GrayRules};
use cairn_store::{ConfigRecord, GrayRecord};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// A record the cache keeps by key, ordered by revision.
pub trait Versioned {
    fn key(&self) -> &ConfigKey;
    fn revision(&self) -> i64;
}

impl Versioned for ConfigRecord {
    fn key(&self) -> &ConfigKey {
        &self.key
    }
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl Versioned for GrayRecord {
    fn key(&self) -> &ConfigKey {
        &self.key
    }
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// What is known of a key: its current version, or that a change removed it (kept so
/// that a late, older version cannot bring it back).
enum Slot<T> {
    Live(Arc<T>),
    /// Removed by change `seq`, noted at that instant.
    Removed(i64, Instant),
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

    fn get(&self, key: &ConfigKey) -> Option<Arc<T>> {
        match self.slots.get(key)?.value() {
            Slot::Live(record) => Some(record.clone()),
            Slot::Removed(..) => None,
        }
    }

    fn apply(&self, record: Arc<T>) -> bool {
        match self.slots.entry(record.key().clone()) {
            Entry::Occupied(mut slot) => {
                let (newer, was_live) = match slot.get() {
                    Slot::Live(current) => (current.revision() < record.revision(), true),
                    Slot::Removed(seq, _) => (*seq < record.revision(), false),
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

    fn remove(&self, key: &ConfigKey, seq: i64) -> bool {
        match self.slots.entry(key.clone()) {
            Entry::Occupied(mut slot) => match slot.get_mut() {
                Slot::Live(current) if current.revision() < seq => {
                    slot.insert(Slot::Removed(seq, Instant::now()));
                    self.live.fetch_sub(1, Ordering::Relaxed);
                    true
                }
                Slot::Live(_) => false,
                Slot::Removed(known, at) => {
                    *known = (*known).max(seq);
                    *at = Instant::now();
                    false
                }
            },
            Entry::Vacant(slot) => {
                slot.insert(Slot::Removed(seq, Instant::now()));
                false
            }
        }
    }

    fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The sequence of the last change seen for `key`: its version or its removal.
    fn last_change(&self, key: &ConfigKey) -> Option<i64> {
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

    pub fn revision(&self) -> i64 {
        self.gray
            .as_ref()
            .map_or(self.config.revision, |g| g.revision)
    }

    pub fn is_gray(&self) -> bool {
        self.gray.is_some()
    }
}

/// Which parts of a client's identity it stated itself (see
/// [`Cache::notification_ids`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stated {
    pub ip: bool,
    pub labels: bool,
}

/// How many ended gray releases the cache remembers per key.
const ENDS_KEPT: usize = 8;

/// A key's ended gray releases: the last few with their rules, and the newest of those
/// forgotten.
#[derive(Default)]
struct Ends {
    kept: Vec<(i64, GrayRules)>,
    dropped_through: i64,
}

/// A key's notification ids for one client (see [`Cache::notification_ids`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationIds {
    pub mine: i64,
    pub newest: i64,
}

impl NotificationIds {
    /// The id to answer a client holding `held` with: its own, unless it holds an id
    /// that none of its changes explains (it read a release since ended or replaced
    /// that this node no longer knows it matched), which gets the newest change, once.
    pub fn for_held(self, held: i64) -> i64 {
        if held > self.mine && held < self.newest {
            self.newest
        } else {
            self.mine
        }
    }

    /// The ids of a namespace that spans several keys (clusters): the fallback above
    /// applies to the namespace as a whole, whose held id is the highest of its keys'.
    pub fn merge(self, other: NotificationIds) -> NotificationIds {
        NotificationIds {
            mine: self.mine.max(other.mine),
            newest: self.newest.max(other.newest),
        }
    }
}

/// A key with its data id in lower case, for lookups that ignore case (Apollo's).
type FoldedKey = (cairn_core::Namespace, cairn_core::Group, String);

fn folded(key: &ConfigKey) -> FoldedKey {
    (
        key.namespace.clone(),
        key.group.clone(),
        key.data_id.as_str().to_ascii_lowercase(),
    )
}

/// Every current config and gray release, by key.
#[derive(Default)]
pub struct Cache {
    configs: Versions<ConfigRecord>,
    grays: Versions<GrayRecord>,
    /// Per key, the last few changes that ended or replaced a gray release, each with
    /// the rules of the release it ended: the clients those rules matched read
    /// something else from then on, and Apollo's notification ids must say so to them
    /// alone.
    ended: DashMap<ConfigKey, Ends, foldhash::fast::RandomState>,
    /// Present configs by case-folded key.
    folded: DashMap<FoldedKey, ConfigKey>,
}

impl Cache {
    pub fn load(configs: Vec<ConfigRecord>, grays: Vec<GrayRecord>) -> Self {
        let folded = configs
            .iter()
            .map(|c| (folded(&c.key), c.key.clone()))
            .collect();
        Self {
            configs: Versions::load(configs),
            grays: Versions::load(grays),
            ended: DashMap::default(),
            folded,
        }
    }

    /// The key of a present config whose data id equals `key`'s ignoring case.
    pub fn find_ignoring_case(&self, key: &ConfigKey) -> Option<ConfigKey> {
        self.folded.get(&folded(key)).map(|k| k.value().clone())
    }

    /// The main version of a config.
    pub fn get(&self, key: &ConfigKey) -> Option<Arc<ConfigRecord>> {
        self.configs.get(key)
    }

    /// The config as `client` sees it.
    pub fn view(&self, key: &ConfigKey, client: &ClientInfo) -> Option<View> {
        let config = self.configs.get(key)?;
        let gray = if self.grays.len() == 0 {
            None
        } else {
            self.grays.get(key).filter(|g| g.rules.matches(client))
        };
        Some(View { config, gray })
    }

    /// The md5 `client` would read; `None` when the config does not exist.
    pub fn md5_for(&self, key: &ConfigKey, client: &ClientInfo) -> Option<String> {
        self.view(key, client).map(|v| v.md5().to_owned())
    }

    /// Stores a committed version unless a newer version or deletion is already here,
    /// so that changes applied out of order never move a config backwards. Returns
    /// whether it was applied.
    pub fn apply(&self, record: Arc<ConfigRecord>) -> bool {
        let key = record.key.clone();
        let applied = self.configs.apply(record);
        if applied {
            self.folded.insert(folded(&key), key);
        }
        applied
    }

    /// Records the deletion of a config by change `seq` (its gray release goes with it),
    /// unless a newer version is already here. Returns whether a config was removed.
    pub fn remove(&self, key: &ConfigKey, seq: i64) -> bool {
        self.grays.remove(key, seq);
        let removed = self.configs.remove(key, seq);
        if removed {
            // Ends up to the deletion no longer matter (its sequence is everyone's
            // change); dropping the entry keeps the wake path's no-gray shortcut.
            if let Some(mut ends) = self.ended.get_mut(key) {
                ends.kept.retain(|(ended, _)| *ended > seq);
            }
            self.ended.remove_if(key, |_, ends| {
                ends.kept.is_empty() && ends.dropped_through <= seq
            });
            self.folded.remove_if(&folded(key), |_, k| k == key);
        }
        removed
    }

    /// A config's gray release.
    pub fn gray(&self, key: &ConfigKey) -> Option<Arc<GrayRecord>> {
        self.grays.get(key)
    }

    pub fn apply_gray(&self, record: Arc<GrayRecord>) -> bool {
        let key = record.key.clone();
        let seq = record.revision;
        let replaced = self.grays.get(&key);
        let applied = self.grays.apply(record);
        if let Some(replaced) = replaced.filter(|_| applied) {
            self.note_ended(key, seq, replaced);
        }
        applied
    }

    /// Records that change `seq` ended a gray release (promoted or abandoned).
    pub fn remove_gray(&self, key: &ConfigKey, seq: i64) -> bool {
        let live = self.grays.get(key);
        let removed = self.grays.remove(key, seq);
        if let Some(live) = live.filter(|_| removed) {
            self.note_ended(key.clone(), seq, live);
        }
        removed
    }

    fn note_ended(&self, key: ConfigKey, seq: i64, release: Arc<GrayRecord>) {
        let mut ends = self.ended.entry(key).or_default();
        ends.kept.push((seq, release.rules.clone()));
        if ends.kept.len() > ENDS_KEPT {
            ends.kept.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
            if let Some((dropped, _)) = ends.kept.pop() {
                ends.dropped_through = ends.dropped_through.max(dropped);
            }
        }
    }

    /// For Apollo's notification ids: the sequence of the last change to what `client`
    /// reads of `key` (so a gray release, and its end, count only for the clients it is
    /// for), and the sequence of the key's last change of any kind. `said` tells which
    /// parts of its identity the client stated; for a part it did not (many Apollo
    /// clients send neither IP nor label on long polls, and the connection's address
    /// may be a proxy's), every release with rules of that kind counts as its own, so
    /// a client is never left unnotified.
    pub fn notification_ids(
        &self,
        key: &ConfigKey,
        client: &ClientInfo,
        said: Stated,
    ) -> Option<NotificationIds> {
        let config = self.configs.last_change(key);
        let for_client = |rules: &GrayRules| {
            rules.matches(client)
                || (!said.ip && !rules.ips.is_empty())
                || (!said.labels && !rules.labels.is_empty())
        };
        let (gray, ended) = if self.grays.len() == 0 && self.ended.is_empty() {
            (None, None)
        } else {
            (
                self.grays
                    .get(key)
                    .filter(|g| for_client(&g.rules))
                    .map(|g| g.revision),
                self.ended.get(key).and_then(|ends| {
                    ends.kept
                        .iter()
                        .filter(|(_, rules)| for_client(rules))
                        .map(|(seq, _)| *seq)
                        // Whom a forgotten end was for is unknown: it counts for all.
                        .chain((ends.dropped_through > 0).then_some(ends.dropped_through))
                        .max()
                }),
            )
        };
        let mine = [config, gray, ended].into_iter().flatten().max()?;
        Some(NotificationIds {
            mine,
            newest: self.epoch(key).unwrap_or(mine).max(mine),
        })
    }

    /// The sequence of the last change to `key` or its gray release (`None`: never
    /// seen).
    pub fn epoch(&self, key: &ConfigKey) -> Option<i64> {
        match (self.configs.last_change(key), self.grays.last_change(key)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
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

/// A stored config with `content`, for tests of the code that reads the cache.
#[cfg(test)]
pub(crate) fn test_record(key: ConfigKey, revision: i64, content: &str) -> ConfigRecord {
    ConfigRecord {
        key,
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
            revision,
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
        assert!(!cache.remove(&key(), 4), "a delete older than the content");
        assert!(cache.remove(&key(), 6));
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
        assert_eq!((seen.content(), seen.revision()), ("canary", 2));
        assert_eq!(cache.view(&key(), &other).unwrap().content(), "main");
        // Ending the release (promote or abandon) puts everyone on the main content.
        assert!(cache.remove_gray(&key(), 3));
        assert!(!cache.view(&key(), &canary).unwrap().is_gray());
        assert!(
            !cache.apply_gray(gray(2, "canary")),
            "a late copy stays out"
        );
        // Deleting the config ends its gray release too.
        cache.apply_gray(gray(4, "again"));
        cache.remove(&key(), 5);
        assert!(cache.gray(&key()).is_none());
    }

    #[test]
    fn notification_ids_move_only_for_the_clients_a_change_is_for() {
        let cache = Cache::default();
        let canary = ClientInfo::new(None, vec![Label::parse("canary=true").unwrap()]);
        let other = ClientInfo::default();
        let id = |client: &ClientInfo, held| {
            cache
                .notification_ids(
                    &key(),
                    client,
                    Stated {
                        ip: true,
                        labels: true,
                    },
                )
                .map(|ids| ids.for_held(held))
        };
        cache.apply(record(1, "main"));
        cache.apply_gray(gray(2, "canary"));
        assert_eq!((id(&canary, 1), id(&other, 1)), (Some(2), Some(1)));
        // A client that did not say its labels counts as matching a release by label.
        let unstated = Stated {
            ip: true,
            labels: false,
        };
        let unknown = cache.notification_ids(&key(), &other, unstated).unwrap();
        assert_eq!(unknown.for_held(1), 2);
        // Its end moves the canary's id, not the other's.
        cache.remove_gray(&key(), 3);
        assert_eq!((id(&canary, 2), id(&other, 1)), (Some(3), Some(1)));
        // A replacement for other clients moves the id of those the first was for.
        cache.apply_gray(gray(4, "canary"));
        let mut other_gray = (*gray(5, "other")).clone();
        other_gray.rules = GrayRules::parse(&[], &["zone=b".into()]).unwrap();
        cache.apply_gray(Arc::new(other_gray));
        assert_eq!((id(&canary, 4), id(&other, 1)), (Some(5), Some(1)));
        // An id this node cannot explain for the client gets the newest change, once.
        assert_eq!(id(&other, 2), Some(5));
        assert_eq!(id(&other, 5), Some(1));
        // A late, older delete does not forget who a release was for.
        cache.remove_gray(&key(), 6);
        assert!(!cache.remove(&key(), 0));
        assert_eq!(id(&canary, 5), Some(5), "zone=b's end is not the canary's");
        let mut zone = ClientInfo::default();
        zone.labels.push(Label::parse("zone=b").unwrap());
        assert_eq!(id(&zone, 5), Some(6));
    }

    #[test]
    fn a_forgotten_end_counts_for_every_client() {
        let cache = Cache::default();
        let canary = ClientInfo::new(None, vec![Label::parse("canary=true").unwrap()]);
        let stated = Stated {
            ip: true,
            labels: true,
        };
        cache.apply(record(1, "main"));
        cache.apply_gray(gray(2, "canary"));
        // A main publish while the release is live: the canary holds its id, 3.
        cache.apply(record(3, "main again"));
        cache.remove_gray(&key(), 4);
        // More releases for others end than the cache keeps; the canary's end goes.
        for seq in (5..5 + 2 * ENDS_KEPT as i64).step_by(2) {
            let mut other = (*gray(seq, "other")).clone();
            other.rules = GrayRules::parse(&[], &["zone=b".into()]).unwrap();
            cache.apply_gray(Arc::new(other));
            cache.remove_gray(&key(), seq + 1);
        }
        let ids = cache.notification_ids(&key(), &canary, stated).unwrap();
        assert!(ids.for_held(3) > 3, "the canary, which held 3, is told");
        assert_eq!(ids.for_held(ids.newest), ids.mine, "and then left alone");
    }
}
