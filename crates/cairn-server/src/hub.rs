//! The watch hub: which held watches wait on which key. A change wakes only the
//! watchers of its key, so its cost is that key's watcher count, not the total.
//!
//! A watch registers one `Waiter` under each of its keys *before* it compares md5s
//! with the cache, and the waiter keeps a wake-up permit, so a change that lands
//! between the comparison and the wait is never missed.
//!
//! Pattern watches (every config of a namespace whose group and data id match
//! wildcards) are kept apart, by namespace: a change looks only at the patterns of its
//! own namespace, so it costs the exact watchers of its key plus the pattern watchers
//! of its namespace, not every watch of the node.
//!
//! At shutdown the hub is closed: every watch is woken once and sees it, so held
//! watches are answered without each having waited on the shutdown signal as well (a
//! lock shared by every watch of the node, taken as it parks and as it wakes).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cairn_core::pattern::Wildcard;
use cairn_core::{ConfigKey, Namespace};
use tokio::sync::Notify;

const SHARDS: usize = 64;

// Every woken watch removes itself by its key and id: hashed with foldhash (seeded per
// process) rather than SipHash.
type RandomState = foldhash::fast::RandomState;
type Waiters = HashMap<u64, Arc<Notify>, RandomState>;

/// Key → waiting watchers, sharded to keep lock hold times short under fan-out.
pub struct Hub {
    shards: Vec<Mutex<HashMap<ConfigKey, Waiters, RandomState>>>,
    hasher: RandomState,
    next_id: AtomicU64,
    held: AtomicUsize,
    closed: AtomicBool,
    /// Namespace → the pattern watches over it.
    patterns: Mutex<HashMap<Namespace, Vec<PatternWaiter>>>,
    /// Pattern watches held, so a change skips their lock while there are none.
    pattern_count: AtomicUsize,
}

/// What a pattern watch matches within its namespace.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub namespace: Namespace,
    pub group: Wildcard,
    pub data_id: Wildcard,
}

impl Pattern {
    pub fn matches(&self, key: &ConfigKey) -> bool {
        key.namespace == self.namespace
            && self.group.matches(key.group.as_str())
            && self.data_id.matches(key.data_id.as_str())
    }
}

struct PatternWaiter {
    id: u64,
    group: Wildcard,
    data_id: Wildcard,
    notify: Arc<Notify>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::default(),
            next_id: AtomicU64::new(1),
            held: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            patterns: Mutex::default(),
            pattern_count: AtomicUsize::new(0),
        }
    }
}

impl Hub {
    fn shard(&self, key: &ConfigKey) -> &Mutex<HashMap<ConfigKey, Waiters, RandomState>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Registers a watcher of `keys`; it is woken by any change to any of them until the
    /// returned registration is dropped.
    pub fn register(self: &Arc<Self>, keys: Vec<ConfigKey>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        for key in &keys {
            let mut shard = self.shard(key).lock().expect("hub shard poisoned");
            shard
                .entry(key.clone())
                .or_default()
                .insert(id, notify.clone());
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        Registration {
            hub: self.clone(),
            id,
            keys,
            notify,
            patterns: Vec::new(),
        }
    }

    /// Registers a watcher of every config `patterns` match; it is woken by any change
    /// to one until the returned registration is dropped.
    pub fn register_patterns(self: &Arc<Self>, patterns: Vec<Pattern>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        {
            let mut by_namespace = self.patterns.lock().expect("pattern index poisoned");
            for pattern in &patterns {
                by_namespace
                    .entry(pattern.namespace.clone())
                    .or_default()
                    .push(PatternWaiter {
                        id,
                        group: pattern.group.clone(),
                        data_id: pattern.data_id.clone(),
                        notify: notify.clone(),
                    });
            }
        }
        self.pattern_count
            .fetch_add(patterns.len(), Ordering::Relaxed);
        self.held.fetch_add(1, Ordering::Relaxed);
        Registration {
            hub: self.clone(),
            id,
            keys: Vec::new(),
            notify,
            patterns,
        }
    }

    /// Wakes every watcher of `key`: its exact watchers and the pattern watchers of its
    /// namespace that match it.
    pub fn notify(&self, key: &ConfigKey) {
        let mut waiters: Vec<Arc<Notify>> = {
            let shard = self.shard(key).lock().expect("hub shard poisoned");
            match shard.get(key) {
                Some(waiters) => waiters.values().cloned().collect(),
                None => Vec::new(),
            }
        };
        if self.pattern_count.load(Ordering::Relaxed) > 0 {
            let by_namespace = self.patterns.lock().expect("pattern index poisoned");
            if let Some(list) = by_namespace.get(&key.namespace) {
                waiters.extend(
                    list.iter()
                        .filter(|w| {
                            w.group.matches(key.group.as_str())
                                && w.data_id.matches(key.data_id.as_str())
                        })
                        .map(|w| w.notify.clone()),
                );
            }
        }
        wake(waiters);
    }

    /// Whether the hub was closed: the node is shutting down.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the hub: every watch registered now or later is woken and sees
    /// [`Registration::closed`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for shard in &self.shards {
            let waiters: Vec<Arc<Notify>> = shard
                .lock()
                .expect("hub shard poisoned")
                .values()
                .flat_map(|waiters| waiters.values().cloned())
                .collect();
            wake(waiters);
        }
        let waiters: Vec<Arc<Notify>> = self
            .patterns
            .lock()
            .expect("pattern index poisoned")
            .values()
            .flat_map(|list| list.iter().map(|w| w.notify.clone()))
            .collect();
        wake(waiters);
    }

    /// Watches currently registered.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Keys with at least one watcher.
    pub fn watched_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("hub shard poisoned").len())
            .sum()
    }
}

/// Wakes waiters taken out of a shard, after its lock is released: a woken watch that
/// finishes at once drops its registration, which takes that lock too.
fn wake(waiters: Vec<Arc<Notify>>) {
    for notify in waiters {
        notify.notify_one();
    }
}

/// A watcher's place in the hub; dropping it removes the watcher from every key.
pub struct Registration {
    hub: Arc<Hub>,
    id: u64,
    keys: Vec<ConfigKey>,
    notify: Arc<Notify>,
    patterns: Vec<Pattern>,
}

impl Registration {
    /// Completes after a change to one of the keys since the last call (or since
    /// registration). Several changes in between complete it once.
    pub async fn changed(&self) {
        self.notify.notified().await
    }

    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// What wakes this watcher, for ending it from outside.
    pub fn waker(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Whether the hub was closed: the node is shutting down and the watch should end.
    pub fn closed(&self) -> bool {
        self.hub.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.patterns.is_empty() {
            let mut by_namespace = self.hub.patterns.lock().expect("pattern index poisoned");
            for pattern in &self.patterns {
                if let Some(list) = by_namespace.get_mut(&pattern.namespace) {
                    list.retain(|w| w.id != self.id);
                    if list.is_empty() {
                        by_namespace.remove(&pattern.namespace);
                    }
                }
            }
            self.hub
                .pattern_count
                .fetch_sub(self.patterns.len(), Ordering::Relaxed);
        }
        for key in &self.keys {
            let mut shard = self.hub.shard(key).lock().expect("hub shard poisoned");
            if let Some(waiters) = shard.get_mut(key) {
                waiters.remove(&self.id);
                if waiters.is_empty() {
                    shard.remove(key);
                }
            }
        }
        self.hub.held.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(d: &str) -> ConfigKey {
        ConfigKey::parse("public", "g", d).unwrap()
    }

    #[tokio::test]
    async fn wakes_only_watchers_of_the_changed_key() {
        let hub = Arc::new(Hub::default());
        let a = hub.register(vec![key("a"), key("b")]);
        let c = hub.register(vec![key("c")]);
        assert_eq!((hub.held(), hub.watched_keys()), (2, 3));
        hub.notify(&key("b"));
        tokio::time::timeout(Duration::from_secs(1), a.changed())
            .await
            .expect("the watcher of b is woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), c.changed())
                .await
                .is_err(),
            "the watcher of c stays asleep"
        );
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_kept() {
        let hub = Arc::new(Hub::default());
        let r = hub.register(vec![key("a")]);
        hub.notify(&key("a"));
        tokio::time::timeout(Duration::from_secs(1), r.changed())
            .await
            .expect("the permit survives until the wait");
    }

    #[tokio::test]
    async fn closing_wakes_every_watch_held_or_to_come() {
        let hub = Arc::new(Hub::default());
        let held = hub.register(vec![key("a")]);
        assert!(!held.closed());
        hub.close();
        tokio::time::timeout(Duration::from_secs(1), held.changed())
            .await
            .expect("a held watch is woken");
        assert!(held.closed());
        let later = hub.register(vec![key("b")]);
        assert!(later.closed(), "a watch registered after closing sees it");
    }

    #[tokio::test]
    async fn a_pattern_watch_wakes_for_matching_keys_of_its_namespace_only() {
        let hub = Arc::new(Hub::default());
        let pattern = |ns: &str, g: &str, d: &str| Pattern {
            namespace: Namespace::parse(ns).unwrap(),
            group: Wildcard::new(g),
            data_id: Wildcard::new(d),
        };
        let yaml = hub.register_patterns(vec![pattern("public", "g", "*.yaml")]);
        let other = hub.register_patterns(vec![pattern("dev", "*", "*")]);
        hub.notify(&key("a.txt"));
        hub.notify(&key("created-later.yaml"));
        tokio::time::timeout(Duration::from_secs(1), yaml.changed())
            .await
            .expect("a matching key wakes it");
        for quiet in [&yaml, &other] {
            assert!(
                tokio::time::timeout(Duration::from_millis(50), quiet.changed())
                    .await
                    .is_err(),
                "nothing else wakes it"
            );
        }
        drop(yaml);
        drop(other);
        assert_eq!(hub.held(), 0);
        assert!(hub.patterns.lock().unwrap().is_empty());
    }

    #[test]
    fn dropping_a_registration_cleans_up() {
        let hub = Arc::new(Hub::default());
        let r1 = hub.register(vec![key("a")]);
        let r2 = hub.register(vec![key("a"), key("b")]);
        drop(r1);
        assert_eq!((hub.held(), hub.watched_keys()), (1, 2));
        drop(r2);
        assert_eq!((hub.held(), hub.watched_keys()), (0, 0));
    }
}
