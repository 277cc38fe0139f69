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
//! A long poll answers the first change it sees, so its place is taken out of its
//! key's list by that change, all the key's long polls at once under the lock the
//! change takes anyway: thousands of woken polls then end without each taking that
//! lock again to remove itself. One that still has nothing to answer (the change was
//! not one its client sees) puts itself back before it looks again.
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

/// What wakes one watch.
#[derive(Default)]
pub struct Waiter {
    notify: Notify,
    /// For a watch taken out of its key's list by a change: set by whichever of the
    /// change and the watch's end takes it out first, so that only one of them does.
    taken: AtomicBool,
}

impl Waiter {
    /// Wakes the watch (or, if it is not waiting, lets its next wait return at once).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Completes once woken.
    pub async fn woken(&self) {
        self.notify.notified().await
    }
}

/// The watches of one key.
#[derive(Default)]
struct Waiters {
    /// Kept across changes until the watch ends: streams and gRPC connections.
    kept: HashMap<u64, Arc<Waiter>, RandomState>,
    /// Taken out by the next change: long polls, which answer it.
    once: HashMap<u64, Arc<Waiter>, RandomState>,
}

impl Waiters {
    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.once.is_empty()
    }
}

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
    waiter: Arc<Waiter>,
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
        self.register_as(keys, false)
    }

    /// Registers a watcher of `keys` that answers the first change it sees: one of a
    /// single key is taken out of the key's list by the next change, and must
    /// [`renew`](Registration::renew) itself to hear of another.
    pub fn register_once(self: &Arc<Self>, keys: Vec<ConfigKey>) -> Registration {
        let once = keys.len() == 1;
        self.register_as(keys, once)
    }

    fn register_as(self: &Arc<Self>, keys: Vec<ConfigKey>, once: bool) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let waiter = Arc::new(Waiter::default());
        for key in &keys {
            let mut shard = self.shard(key).lock().expect("hub shard poisoned");
            let waiters = shard.entry(key.clone()).or_default();
            let list = if once {
                &mut waiters.once
            } else {
                &mut waiters.kept
            };
            list.insert(id, waiter.clone());
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        Registration {
            hub: self.clone(),
            id,
            keys,
            waiter,
            once,
            patterns: Vec::new(),
        }
    }

    /// Registers a watcher of every config `patterns` match; it is woken by any change
    /// to one until the returned registration is dropped.
    pub fn register_patterns(self: &Arc<Self>, patterns: Vec<Pattern>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let waiter = Arc::new(Waiter::default());
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
                        waiter: waiter.clone(),
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
            waiter,
            once: false,
            patterns,
        }
    }

    /// Wakes every watcher of `key`: its exact watchers and the pattern watchers of its
    /// namespace that match it.
    pub fn notify(&self, key: &ConfigKey) {
        let (mut waiters, once): (Vec<Arc<Waiter>>, _) = {
            let mut shard = self.shard(key).lock().expect("hub shard poisoned");
            match shard.get_mut(key) {
                Some(waiters) => {
                    let kept = waiters.kept.values().cloned().collect();
                    let once = std::mem::take(&mut waiters.once);
                    if waiters.kept.is_empty() {
                        shard.remove(key);
                    }
                    (kept, once)
                }
                None => Default::default(),
            }
        };
        // Taken out: their ends need not take the lock again.
        waiters.extend(once.into_values().inspect(|waiter| {
            waiter.taken.store(true, Ordering::Release);
        }));
        if self.pattern_count.load(Ordering::Relaxed) > 0 {
            let by_namespace = self.patterns.lock().expect("pattern index poisoned");
            if let Some(list) = by_namespace.get(&key.namespace) {
                waiters.extend(
                    list.iter()
                        .filter(|w| {
                            w.group.matches(key.group.as_str())
                                && w.data_id.matches(key.data_id.as_str())
                        })
                        .map(|w| w.waiter.clone()),
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
            let waiters: Vec<Arc<Waiter>> = shard
                .lock()
                .expect("hub shard poisoned")
                .values()
                .flat_map(|waiters| waiters.kept.values().chain(waiters.once.values()).cloned())
                .collect();
            wake(waiters);
        }
        let waiters: Vec<Arc<Waiter>> = self
            .patterns
            .lock()
            .expect("pattern index poisoned")
            .values()
            .flat_map(|list| list.iter().map(|w| w.waiter.clone()))
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
fn wake(waiters: Vec<Arc<Waiter>>) {
    for waiter in waiters {
        waiter.wake();
    }
}

/// A watcher's place in the hub; dropping it removes the watcher from every key.
pub struct Registration {
    hub: Arc<Hub>,
    id: u64,
    keys: Vec<ConfigKey>,
    waiter: Arc<Waiter>,
    /// Taken out of its key's list by the next change (`Hub::register_once`).
    once: bool,
    patterns: Vec<Pattern>,
}

impl Registration {
    /// Completes after a change to one of the keys since the last call (or since
    /// registration). Several changes in between complete it once.
    pub async fn changed(&self) {
        self.waiter.woken().await
    }

    /// Puts a watch a change took out of its key's list back in, to hear of the next
    /// change; does nothing for one still in it. Called before looking again, so that
    /// a change after the look is not missed.
    pub fn renew(&self) {
        if !self.once || !self.waiter.taken.load(Ordering::Acquire) {
            return;
        }
        let key = &self.keys[0];
        let mut shard = self.hub.shard(key).lock().expect("hub shard poisoned");
        self.waiter.taken.store(false, Ordering::Release);
        shard
            .entry(key.clone())
            .or_default()
            .once
            .insert(self.id, self.waiter.clone());
    }

    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// What wakes this watcher, for ending it from outside.
    pub fn waker(&self) -> Arc<Waiter> {
        self.waiter.clone()
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
        // A watch a change took out is in no list (its key's was taken whole).
        let taken = self.once && self.waiter.taken.load(Ordering::Acquire);
        for key in self.keys.iter().filter(|_| !taken) {
            let mut shard = self.hub.shard(key).lock().expect("hub shard poisoned");
            if let Some(waiters) = shard.get_mut(key) {
                waiters.kept.remove(&self.id);
                waiters.once.remove(&self.id);
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

    /// Whether `r` was woken (its permit is there) within a moment.
    async fn woken(r: &Registration) -> bool {
        tokio::time::timeout(Duration::from_millis(50), r.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_long_poll_is_taken_out_by_the_change_that_wakes_it() {
        let hub = Arc::new(Hub::default());
        let polls: Vec<Registration> = (0..3).map(|_| hub.register_once(vec![key("a")])).collect();
        let stream = hub.register(vec![key("a")]);
        hub.notify(&key("a"));
        for poll in &polls {
            assert!(woken(poll).await, "each long poll is woken");
        }
        assert!(woken(&stream).await);
        // Taken out: the next change wakes only the stream, which stays.
        hub.notify(&key("a"));
        for poll in &polls {
            assert!(!woken(poll).await, "taken out, not woken again");
        }
        assert!(woken(&stream).await);
        // One that looks again puts itself back first, and hears the next change.
        polls[0].renew();
        polls[0].renew();
        hub.notify(&key("a"));
        assert!(woken(&polls[0]).await, "renewed: woken");
        assert!(!woken(&polls[1]).await);
        drop(polls);
        assert_eq!((hub.held(), hub.watched_keys()), (1, 1));
        drop(stream);
        assert_eq!((hub.held(), hub.watched_keys()), (0, 0));
    }

    #[tokio::test]
    async fn a_long_poll_that_ends_unwoken_leaves_nothing_behind() {
        let hub = Arc::new(Hub::default());
        let poll = hub.register_once(vec![key("c")]);
        // A long poll of several keys stays in every list until it ends.
        let several = hub.register_once(vec![key("a"), key("b")]);
        assert_eq!((hub.held(), hub.watched_keys()), (2, 3));
        hub.notify(&key("b"));
        assert!(woken(&several).await);
        hub.notify(&key("a"));
        assert!(woken(&several).await, "still listed under a");
        drop(several);
        assert_eq!((hub.held(), hub.watched_keys()), (1, 1));
        drop(poll);
        assert_eq!((hub.held(), hub.watched_keys()), (0, 0));
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
