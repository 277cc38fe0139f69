//! The one path from a committed change to this node's memory. Every write of the
//! service and every change the tailer reads from the log moves the cache and wakes the
//! key's watchers here, and nowhere else, so "which change moves the cache how" is
//! written once.
//!
//! State a surface keeps beside the cache (Apollo's notification ids) follows the same
//! path as an [`Observer`]. The sequence of the change log this node has applied is kept
//! here too, so a reader can wait for it instead of polling.

use std::sync::Arc;

use cairn_core::{ConfigKey, Revision};
use cairn_store::{ConfigRecord, GrayRecord};
use tokio::sync::watch;

use crate::cache::{Cache, GrayApplied};
use crate::hub::Hub;

/// A committed change, as it moves this node's memory.
#[derive(Debug, Clone)]
pub enum Change {
    /// A main version: a publish, a rollback, or a version read back from the database.
    Config(Arc<ConfigRecord>),
    /// A promotion by change `seq`: the gray release ends, and its version becomes the
    /// main one (`None` when a newer main version is here already).
    Promoted {
        key: ConfigKey,
        seq: Revision,
        config: Option<Arc<ConfigRecord>>,
    },
    /// A deletion by change `seq`; the gray release goes with the config.
    Deleted { key: ConfigKey, seq: Revision },
    /// A gray release, new or replacing another.
    Gray(Arc<GrayRecord>),
    /// An abandoned gray release (change `seq`).
    GrayEnded { key: ConfigKey, seq: Revision },
}

impl Change {
    /// The change-log sequence of the change.
    pub fn seq(&self) -> Revision {
        match self {
            Change::Config(record) => record.revision,
            Change::Gray(record) => record.revision,
            Change::Promoted { seq, .. }
            | Change::Deleted { seq, .. }
            | Change::GrayEnded { seq, .. } => *seq,
        }
    }

    pub fn key(&self) -> &ConfigKey {
        match self {
            Change::Config(record) => &record.key,
            Change::Gray(record) => &record.key,
            Change::Promoted { key, .. }
            | Change::Deleted { key, .. }
            | Change::GrayEnded { key, .. } => key,
        }
    }
}

/// What the commit path tells its observers of a change it applied.
#[derive(Debug, Clone, Copy)]
pub enum Applied<'a> {
    /// The config is present (new, or a newer version).
    Present(&'a ConfigKey),
    /// Change `seq` removed the config.
    Removed { key: &'a ConfigKey, seq: Revision },
    /// Change `seq` ended or replaced `release`: the clients its rules matched read
    /// something else from then on.
    GrayEnded {
        key: &'a ConfigKey,
        seq: Revision,
        release: &'a GrayRecord,
    },
}

/// State kept beside the cache that must follow every applied change.
pub trait Observer: Send + Sync {
    fn applied(&self, event: Applied<'_>);
}

/// The cache, the hub, and the change-log sequence applied, moved together.
pub struct Commits {
    cache: Cache,
    hub: Arc<Hub>,
    applied: watch::Sender<i64>,
    observers: Vec<Arc<dyn Observer>>,
    /// The last changes applied, for pattern watches asking what changed since a
    /// sequence.
    recent: std::sync::Mutex<Recent>,
}

/// The keys of the last [`RECENT`] changes applied, with their sequences, and the
/// sequence at or below which changes may no longer be listed.
struct Recent {
    changes: std::collections::VecDeque<(i64, ConfigKey)>,
    horizon: i64,
    /// The highest sequence applied to the cache, which the applied sequence reaches
    /// once the changes before it are applied too.
    newest: i64,
}

/// Changes kept for "what changed since": a pattern watch that fell further behind
/// gets a full listing instead.
const RECENT: usize = 8192;

impl Commits {
    /// `applied` is the change-log sequence `cache` was loaded at.
    pub fn new(cache: Cache, applied: i64, observers: Vec<Arc<dyn Observer>>) -> Self {
        Self {
            cache,
            hub: Arc::new(Hub::default()),
            applied: watch::Sender::new(applied),
            observers,
            recent: std::sync::Mutex::new(Recent {
                changes: std::collections::VecDeque::with_capacity(RECENT),
                // What the cache was loaded with is not listed.
                horizon: applied,
                newest: applied,
            }),
        }
    }

    /// The highest sequence applied to the cache (this node's own writes reach the
    /// cache before the applied sequence, which waits for every change before them).
    pub fn newest(&self) -> i64 {
        self.recent.lock().expect("recent changes poisoned").newest
    }

    /// The keys changed by changes after `since`, or `None` when changes that old are
    /// no longer kept (the caller lists everything instead).
    pub fn changed_since(&self, since: i64) -> Option<Vec<ConfigKey>> {
        let recent = self.recent.lock().expect("recent changes poisoned");
        if since < recent.horizon {
            return None;
        }
        let mut keys: Vec<ConfigKey> = recent
            .changes
            .iter()
            .filter(|(seq, _)| *seq > since)
            .map(|(_, key)| key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        Some(keys)
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn tell(&self, event: Applied<'_>) {
        for observer in &self.observers {
            observer.applied(event);
        }
    }

    fn end_gray(&self, key: &ConfigKey, seq: Revision) -> bool {
        match self.cache.remove_gray(key, seq) {
            Some(release) => {
                self.tell(Applied::GrayEnded {
                    key,
                    seq,
                    release: &release,
                });
                true
            }
            None => false,
        }
    }

    fn put_config(&self, record: Arc<ConfigRecord>) -> bool {
        let key = record.key.clone();
        let applied = self.cache.apply(record);
        if applied {
            self.tell(Applied::Present(&key));
        }
        applied
    }

    /// Applies a committed change unless this node holds something newer, and wakes the
    /// key's watchers if anything moved. Returns whether it did.
    pub fn apply(&self, change: Change) -> bool {
        let changed = match &change {
            Change::Config(record) => self.put_config(record.clone()),
            Change::Promoted { key, seq, config } => {
                // The promoted version first, then the release's end, so its clients
                // never read the older main content in between. The release ends even
                // when a newer main version is here already; its clients must hear of
                // it either way.
                let applied = config.clone().is_some_and(|c| self.put_config(c));
                let ended = self.end_gray(key, *seq);
                applied | ended
            }
            Change::Deleted { key, seq } => {
                let removed = self.cache.remove(key, *seq);
                if removed {
                    self.tell(Applied::Removed { key, seq: *seq });
                }
                removed
            }
            Change::Gray(record) => match self.cache.apply_gray(record.clone()) {
                GrayApplied::Stale => false,
                GrayApplied::Applied { replaced } => {
                    if let Some(replaced) = replaced {
                        self.tell(Applied::GrayEnded {
                            key: &record.key,
                            seq: record.revision,
                            release: &replaced,
                        });
                    }
                    true
                }
            },
            Change::GrayEnded { key, seq } => self.end_gray(key, *seq),
        };
        if changed {
            {
                let mut recent = self.recent.lock().expect("recent changes poisoned");
                if recent.changes.len() == RECENT {
                    if let Some((seq, _)) = recent.changes.pop_front() {
                        recent.horizon = recent.horizon.max(seq);
                    }
                }
                recent
                    .changes
                    .push_back((change.seq().get(), change.key().clone()));
                recent.newest = recent.newest.max(change.seq().get());
            }
            self.hub.notify(change.key());
        }
        changed
    }

    /// The change-log sequence this node has applied every change up to.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// The applied sequence, to wait on for work that follows the change log in order
    /// (webhook delivery): it moves once every change up to it is in the cache.
    pub fn watch_applied(&self) -> watch::Receiver<i64> {
        self.applied.subscribe()
    }

    /// Moves the applied sequence forward (never back) and wakes those waiting for it.
    pub fn advance(&self, seq: i64) {
        self.applied.send_if_modified(|applied| {
            let forward = seq > *applied;
            if forward {
                *applied = seq;
            }
            forward
        });
    }

    /// Waits until the applied sequence reaches `seq` or `deadline` passes; returns
    /// whether it did.
    pub async fn wait_applied(&self, seq: i64, deadline: tokio::time::Instant) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::select! {
            reached = applied.wait_for(|applied| *applied >= seq) => reached.is_ok(),
            _ = tokio::time::sleep_until(deadline) => self.applied() >= seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use cairn_core::{ClientInfo, Format, GrayRules};

    use super::*;
    use crate::cache::{rev, test_record};

    fn key() -> ConfigKey {
        ConfigKey::parse("public", "g", "d").unwrap()
    }

    fn gray(revision: i64) -> Arc<GrayRecord> {
        Arc::new(GrayRecord {
            key: key(),
            content: "canary".into(),
            format: Format::Text,
            md5: cairn_core::md5::md5_hex("canary"),
            revision: rev(revision),
            rules: GrayRules::parse(&[], &["canary=true".into()]).unwrap(),
            created_by: "a".into(),
            created_at: 0,
        })
    }

    /// Writes down what it is told.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Observer for Log {
        fn applied(&self, event: Applied<'_>) {
            let line = match event {
                Applied::Present(key) => format!("present {key}"),
                Applied::Removed { key, seq } => format!("removed {key} at {seq}"),
                Applied::GrayEnded { key, seq, release } => {
                    format!("ended {key}@{} at {seq}", release.revision)
                }
            };
            self.0.lock().unwrap().push(line);
        }
    }

    #[tokio::test]
    async fn changes_move_the_cache_wake_watchers_and_tell_observers_once() {
        let log = Arc::new(Log::default());
        let commits = Commits::new(Cache::default(), 0, vec![log.clone()]);
        let watcher = commits.hub().register(vec![key()]);
        let config = |rev| Change::Config(Arc::new(test_record(key(), rev, "x")));

        assert!(commits.apply(config(2)));
        assert!(!commits.apply(config(1)), "an older version moves nothing");
        assert!(commits.apply(Change::Gray(gray(3))));
        assert!(commits.apply(Change::Gray(gray(4))), "a replacement");
        let promoted = Change::Promoted {
            key: key(),
            seq: rev(5),
            config: Some(Arc::new(test_record(key(), 5, "canary"))),
        };
        assert!(commits.apply(promoted.clone()));
        assert!(!commits.apply(promoted), "applied twice moves nothing");
        assert!(!commits.apply(Change::GrayEnded {
            key: key(),
            seq: rev(6)
        }));
        assert!(commits.apply(Change::Deleted {
            key: key(),
            seq: rev(7)
        }));
        assert!(commits.cache().get(&key()).is_none());
        let seen = commits.cache().view(&key(), &ClientInfo::default());
        assert!(seen.is_none());

        assert_eq!(
            *log.0.lock().unwrap(),
            [
                "present public/g/d",
                "ended public/g/d@3 at 4",
                // The promoted version lands before the release ends.
                "present public/g/d",
                "ended public/g/d@4 at 5",
                "removed public/g/d at 7",
            ]
        );
        // The watcher holds a wake-up for the changes that moved something.
        tokio::time::timeout(std::time::Duration::from_secs(1), watcher.changed())
            .await
            .expect("the watcher was woken");
    }

    #[tokio::test]
    async fn a_wait_for_a_sequence_ends_when_it_is_applied_or_at_the_deadline() {
        let commits = Arc::new(Commits::new(Cache::default(), 10, vec![]));
        let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(commits.wait_applied(10, soon).await, "already applied");
        assert!(!commits.wait_applied(11, soon).await, "never applied");

        let later = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let waiting = tokio::spawn({
            let commits = commits.clone();
            async move { commits.wait_applied(12, later).await }
        });
        commits.advance(11);
        commits.advance(9);
        assert_eq!(commits.applied(), 11, "never backwards");
        commits.advance(12);
        assert!(waiting.await.unwrap());
        assert!(tokio::time::Instant::now() < later);
    }
}
