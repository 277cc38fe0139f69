//! Watching many configs with one loop: every key a client watches, through any number
//! of streams and listeners, is carried in the same long polls (split into batches of a
//! few thousand keys); each change is read once and handed, in order, to everyone
//! watching that key; errors are retried with jittered exponential backoff across the
//! known nodes.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use futures::Stream;
use tokio::sync::Notify;

use crate::{Change, Client, Key, Result, WatchKey};

/// Keys per long-poll request.
const BATCH: usize = 2_000;
/// How long each long poll is held.
pub(crate) const HOLD: Duration = Duration::from_secs(30);
/// The longest wait between failed polls (before jitter).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How many keys' current md5 are read at once when a watch starts.
const BASELINE_READS: usize = 16;

/// A delay between `base` and twice `base`, different for each caller, so that many
/// clients that lost their server do not come back in step.
pub(crate) fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1_000) / 1_000.0)
}

/// The keys a client watches and who is told of their changes; shared by the client's
/// clones that send the same labels and identity.
#[derive(Default)]
pub(crate) struct Watcher {
    state: Mutex<State>,
    /// Woken when keys are added or removed, so the loop rebuilds its polls.
    rebuild: Notify,
}

#[derive(Default)]
struct State {
    keys: HashMap<Key, Watched>,
    next_id: u64,
    /// Whether the loop task is running.
    running: bool,
}

/// A watched key: the md5 last handed out, and the subscriptions that want its changes.
struct Watched {
    md5: String,
    subscribers: Vec<(u64, Arc<Inbox>)>,
}

impl Watcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("watch state poisoned")
    }

    /// Stops telling subscription `id` about `keys`; keys nobody watches leave the polls.
    fn unsubscribe(&self, id: u64, keys: &[Key]) {
        let mut state = self.lock();
        let mut removed = false;
        for key in keys {
            if let Some(watched) = state.keys.get_mut(key) {
                watched.subscribers.retain(|(sid, _)| *sid != id);
                if watched.subscribers.is_empty() {
                    state.keys.remove(key);
                    removed = true;
                }
            }
        }
        if removed {
            self.rebuild.notify_one();
        }
    }
}

/// A subscription's undelivered changes: at most one per key, the latest, so a consumer
/// that falls behind skips straight to the current content and holds no backlog.
#[derive(Default)]
pub(crate) struct Inbox {
    pending: Mutex<Pending>,
    waker: AtomicWaker,
}

#[derive(Default)]
struct Pending {
    /// Keys with a change waiting, in the order their first waiting change came.
    order: VecDeque<Key>,
    latest: HashMap<Key, Change>,
}

impl Inbox {
    pub(crate) fn put(&self, change: Change) {
        let mut pending = self.pending.lock().expect("inbox poisoned");
        if pending
            .latest
            .insert(change.key.clone(), change.clone())
            .is_none()
        {
            pending.order.push_back(change.key);
        }
        drop(pending);
        self.waker.wake();
    }

    /// The next change, or `Pending` with the task woken when one is put.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        if let Some(change) = self.take() {
            return Poll::Ready(Some(change));
        }
        // Registered before looking again, so a change put in between is not missed.
        self.waker.register(cx.waker());
        match self.take() {
            Some(change) => Poll::Ready(Some(change)),
            None => Poll::Pending,
        }
    }

    pub(crate) fn take(&self) -> Option<Change> {
        let mut pending = self.pending.lock().expect("inbox poisoned");
        let key = pending.order.pop_front()?;
        pending.latest.remove(&key)
    }
}

/// The changes to a set of watched keys, in the order they happened for each key: the
/// new config (read once, so never stale), or `None` after a deletion. Dropping it stops
/// the watch of keys nobody else watches. A stream polled late yields each key's latest
/// change only; it never ends on its own.
pub struct WatchStream {
    inbox: Arc<Inbox>,
    id: u64,
    keys: Vec<Key>,
    watcher: Arc<Watcher>,
}

impl Stream for WatchStream {
    type Item = Change;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        self.inbox.poll_take(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.watcher.unsubscribe(self.id, &self.keys);
    }
}

/// A callback registered with [`Client::add_listener`]; it stays registered until
/// [`Listener::remove`] is called (dropping the handle does not remove it).
pub struct Listener {
    task: tokio::task::JoinHandle<()>,
    removed: Arc<std::sync::atomic::AtomicBool>,
}

impl Listener {
    /// Calls `listener` with each of `stream`'s changes, on a task of its own.
    pub(crate) fn spawn<S, F>(mut stream: S, mut listener: F) -> Listener
    where
        S: Stream<Item = Change> + Send + Unpin + 'static,
        F: FnMut(Change) + Send + 'static,
    {
        let removed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = removed.clone();
        Listener {
            task: tokio::spawn(async move {
                while let Some(change) = stream.next().await {
                    if flag.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    listener(change);
                }
            }),
            removed,
        }
    }

    /// Unregisters the callback: it is not called again once a call in progress (if
    /// any) returns.
    pub fn remove(self) {
        self.removed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Aborting the task drops its stream, which stops the watch of its key.
        self.task.abort();
    }
}

impl Client {
    /// Watches `keys` and yields their later changes: for each change seen, the config
    /// as it is then (read once, so never stale), or `None` after a deletion. Each key's
    /// changes come in order; versions replaced faster than a round trip may be skipped,
    /// but the latest is always delivered. Changes before the call are not reported; a
    /// key that does not exist yet is reported when it is created. All the keys of all
    /// of a client's streams and listeners share one long-poll loop.
    ///
    /// Fails if a key is not a valid config key.
    pub async fn watch_stream(&self, mut keys: Vec<Key>) -> Result<WatchStream> {
        for key in &keys {
            cairn_core::ConfigKey::parse(&key.namespace, &key.group, &key.data_id)
                .map_err(|_| crate::Error::BadKey(key.to_string()))?;
        }
        keys.sort();
        keys.dedup();
        // Where each key stands now, for keys not already watched: the server's md5, or
        // the snapshot's when no server answers (what this process is serving).
        let unknown: Vec<Key> = {
            let state = self.watcher.lock();
            keys.iter()
                .filter(|k| !state.keys.contains_key(*k))
                .cloned()
                .collect()
        };
        let baselines: HashMap<Key, String> = futures::stream::iter(unknown)
            .map(|key| async move {
                let md5 = match self.fetch(&key).await {
                    Ok(config) => config.map(|c| c.md5),
                    Err(_) => self.local.snapshot(&key).map(|c| c.md5),
                };
                (key, md5.unwrap_or_default())
            })
            .buffer_unordered(BASELINE_READS)
            .collect()
            .await;

        let inbox = Arc::new(Inbox::default());
        let mut state = self.watcher.lock();
        let id = state.next_id;
        state.next_id += 1;
        let mut added = false;
        for key in &keys {
            let watched = state.keys.entry(key.clone()).or_insert_with(|| {
                added = true;
                Watched {
                    md5: baselines.get(key).cloned().unwrap_or_default(),
                    subscribers: Vec::new(),
                }
            });
            watched.subscribers.push((id, inbox.clone()));
        }
        let start = !state.running && !state.keys.is_empty();
        state.running |= start;
        drop(state);
        if start {
            tokio::spawn(self.clone().watch_loop());
        } else if added {
            self.watcher.rebuild.notify_one();
        }
        Ok(WatchStream {
            inbox,
            id,
            keys,
            watcher: self.watcher.clone(),
        })
    }

    /// Calls `listener` with the later changes to `key`, in order, each time with the
    /// config as it is then (`None`: deleted); never twice for the same content, never
    /// with older content after newer. Versions replaced faster than a round trip may
    /// be skipped, but the latest is always delivered. It runs on a task of its own, so
    /// a slow listener delays only itself (one that blocks should hand its work to
    /// `spawn_blocking`). The key shares the client's one long-poll loop with every
    /// other watched key.
    ///
    /// Fails if `key` is not a valid config key.
    pub async fn add_listener<F>(&self, key: Key, listener: F) -> Result<Listener>
    where
        F: FnMut(Change) + Send + 'static,
    {
        let stream = self.watch_stream(vec![key]).await?;
        Ok(Listener::spawn(stream, listener))
    }

    /// The polls of every watched key, rebuilt whenever keys are added or removed; ends
    /// when nobody watches anything.
    async fn watch_loop(self) {
        /// Marks the loop stopped however it ends (returned, cancelled with its runtime,
        /// or panicked), so the next watch starts a new one.
        struct Running(Arc<Watcher>);
        impl Drop for Running {
            fn drop(&mut self) {
                let mut state = self
                    .0
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state.running = false;
            }
        }
        let _running = Running(self.watcher.clone());
        loop {
            let batches: Vec<Vec<Key>> = {
                let state = self.watcher.lock();
                if state.keys.is_empty() {
                    return;
                }
                let keys: Vec<Key> = state.keys.keys().cloned().collect();
                keys.chunks(BATCH).map(<[Key]>::to_vec).collect()
            };
            self.poll_batches(&batches).await;
        }
    }

    /// Polls `batches` until the set of watched keys changes.
    async fn poll_batches(&self, batches: &[Vec<Key>]) {
        let poll = |index: usize, delay: Duration| {
            let request: Vec<WatchKey> = {
                let state = self.watcher.lock();
                batches[index]
                    .iter()
                    .map(|k| WatchKey::new(k, state.keys.get(k).map_or("", |w| &w.md5)))
                    .collect()
            };
            let client = self.clone();
            async move {
                tokio::time::sleep(delay).await;
                (index, client.watch(&request, HOLD).await)
            }
        };
        let mut polls: FuturesUnordered<_> = (0..batches.len())
            .map(|index| poll(index, Duration::ZERO))
            .collect();
        let mut backoff = vec![Duration::ZERO; batches.len()];
        loop {
            let (index, result) = tokio::select! {
                _ = self.watcher.rebuild.notified() => return,
                Some(done) = polls.next() => done,
            };
            match result {
                Ok(changed) => {
                    backoff[index] = Duration::ZERO;
                    let mut skipped = false;
                    for change in changed {
                        if !self
                            .deliver(change.key(), change.exists, change.revision)
                            .await
                        {
                            skipped = true;
                        }
                    }
                    if skipped {
                        // A change that could not be taken must not make the loop spin.
                        backoff[index] = Duration::from_millis(200);
                    }
                }
                Err(crate::Error::Api {
                    status,
                    code,
                    message,
                }) if (400..500).contains(&status) && ![401, 408, 429].contains(&status) => {
                    // Refused as asked (a server configured with a lower key limit, a
                    // revoked permission): said loudly, and tried again only slowly, since
                    // an operator has to act. The watch's subscribers keep their values.
                    backoff[index] = MAX_BACKOFF;
                    tracing::error!(status, code = %code, message = %message, retry_in = ?MAX_BACKOFF, "watch refused");
                }
                Err(e) => {
                    backoff[index] =
                        (backoff[index] * 2).clamp(Duration::from_millis(200), MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in = ?backoff[index], "watch failed; retrying");
                }
            }
            polls.push(poll(index, jittered(backoff[index])));
        }
    }

    /// Reads a key the server reported changed (to `revision`) and hands the new config
    /// to its subscribers; false when it could not be read, or was no real change.
    async fn deliver(&self, key: Key, exists: bool, revision: Option<i64>) -> bool {
        if !self.watcher.lock().keys.contains_key(&key) {
            return true;
        }
        let config = if exists {
            // From the server, not a failover file: the watch follows the server.
            match self.fetch(&key).await {
                // A node behind the one that answered the watch (the read went through a
                // load balancer, or failed over) must not take the listener back.
                Ok(Some(config)) if revision.is_some_and(|r| config.revision < r) => return false,
                Ok(config) => config,
                // Not read: the next poll reports it again, later.
                Err(_) => return false,
            }
        } else {
            self.local.forget(&key);
            None
        };
        let md5 = config.as_ref().map(|c| c.md5.clone()).unwrap_or_default();
        let mut state = self.watcher.lock();
        let Some(watched) = state.keys.get_mut(&key) else {
            return true;
        };
        if watched.md5 == md5 {
            return false;
        }
        watched.md5 = md5;
        let change = Change { key, config };
        for (_, inbox) in &watched.subscribers {
            inbox.put(change.clone());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(data_id: &str, content: &str) -> Change {
        let key = Key::new("public", "g", data_id);
        let config = serde_json::from_value(serde_json::json!({
            "namespace": "public", "group": "g", "data_id": data_id,
            "content": content, "format": "text", "md5": "", "revision": 1, "size": 1,
            "description": "", "tags": [], "created_by": "", "created_at": "",
            "updated_by": "", "updated_at": ""
        }))
        .unwrap();
        Change {
            key,
            config: Some(config),
        }
    }

    #[test]
    fn a_consumer_that_falls_behind_gets_each_keys_latest_change_once() {
        let inbox = Inbox::default();
        inbox.put(change("a", "a1"));
        inbox.put(change("b", "b1"));
        inbox.put(change("a", "a2"));
        let taken: Vec<(String, String)> = std::iter::from_fn(|| inbox.take())
            .map(|c| (c.key.data_id, c.config.unwrap().content.unwrap()))
            .collect();
        assert_eq!(
            taken,
            [("a".into(), "a2".into()), ("b".into(), "b1".into())]
        );
    }

    #[tokio::test]
    async fn keys_that_are_no_config_keys_are_refused_before_any_request() {
        // Nothing listens there: the refusal cannot have come from a server.
        let client = Client::builder("http://127.0.0.1:9").build().unwrap();
        let bad = Key::new("public", "g", "no spaces allowed");
        assert!(matches!(
            client.add_listener(bad.clone(), |_| {}).await,
            Err(crate::Error::BadKey(_))
        ));
        assert!(client.watch_stream(vec![bad]).await.is_err());
    }
}
