//! Watching many configs with one loop: every key a client watches is carried in the
//! same long polls (split into batches of a few thousand keys), each change is read and
//! reported once, in order, and errors are retried with jittered exponential backoff
//! across the known nodes.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::Stream;
use tokio::sync::mpsc;

use crate::{Change, Client, Key, WatchKey};

/// Keys per long-poll request.
const BATCH: usize = 2_000;
/// How long each long poll is held.
const HOLD: Duration = Duration::from_secs(30);

/// A delay between `base` and twice `base`, different for each caller, so that many
/// clients that lost their server do not come back in step.
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1_000) / 1_000.0)
}

impl Client {
    /// Watches `keys` and yields every change to them: the new config (read once, so
    /// never stale), or `None` after a deletion. Changes before the call are not
    /// reported; a key that does not exist yet is reported when it is created. The
    /// watch ends when the stream is dropped.
    pub fn watch_stream(&self, keys: Vec<Key>) -> impl Stream<Item = Change> + Send + 'static {
        let (tx, rx) = mpsc::channel(1024);
        let client = self.clone();
        tokio::spawn(async move { client.watch_loop(keys, tx).await });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
    }

    async fn watch_loop(self, keys: Vec<Key>, tx: mpsc::Sender<Change>) {
        // What this client holds for each key: the md5 it last reported.
        let mut held: HashMap<Key, String> = HashMap::new();
        for key in &keys {
            let md5 = self
                .get(key)
                .await
                .ok()
                .flatten()
                .map(|c| c.md5)
                .unwrap_or_default();
            held.insert(key.clone(), md5);
        }
        let batches: Vec<Vec<Key>> = keys.chunks(BATCH).map(<[Key]>::to_vec).collect();
        let poll = |index: usize, held: &HashMap<Key, String>, delay: Duration| {
            let request: Vec<WatchKey> = batches[index]
                .iter()
                .map(|k| WatchKey::new(k, held.get(k).cloned().unwrap_or_default()))
                .collect();
            let client = self.clone();
            async move {
                tokio::time::sleep(delay).await;
                (index, client.watch(&request, HOLD).await)
            }
        };
        let mut polls = FuturesUnordered::new();
        let mut backoff = vec![Duration::ZERO; batches.len()];
        for index in 0..batches.len() {
            polls.push(poll(index, &held, Duration::ZERO));
        }
        while let Some((index, result)) = polls.next().await {
            if tx.is_closed() {
                return;
            }
            match result {
                Ok(changed) => {
                    backoff[index] = Duration::ZERO;
                    let mut skipped = false;
                    for change in changed {
                        let key = change.key();
                        if !held.contains_key(&key) {
                            continue;
                        }
                        let config = if change.exists {
                            // From the server, not a failover file: the watch follows the
                            // server's content.
                            match self.fetch(&key).await {
                                Ok(config) => config,
                                Err(_) => {
                                    // Not read: the next poll reports it again, later.
                                    skipped = true;
                                    continue;
                                }
                            }
                        } else {
                            self.local.forget(&key);
                            None
                        };
                        let md5 = config.as_ref().map(|c| c.md5.clone()).unwrap_or_default();
                        if held.get(&key) == Some(&md5) {
                            skipped = true;
                            continue;
                        }
                        held.insert(key.clone(), md5);
                        if tx.send(Change { key, config }).await.is_err() {
                            return;
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
                }) if (400..500).contains(&status) => {
                    // The server refuses this watch as asked; retrying cannot help.
                    tracing::error!(status, code = %code, message = %message, "watch refused; it ends");
                    return;
                }
                Err(e) => {
                    backoff[index] = (backoff[index] * 2)
                        .clamp(Duration::from_millis(200), Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in = ?backoff[index], "watch failed; retrying");
                }
            }
            polls.push(poll(index, &held, jittered(backoff[index])));
        }
    }
}
