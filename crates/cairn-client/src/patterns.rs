//! Following every config a set of patterns matches (a group, or data ids matching a
//! wildcard): configs created after the watch began and deletions included, each change
//! read once and handed out as the keyed watches hand theirs.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;

use crate::watch::{jittered, Inbox, Listener, HOLD, MAX_BACKOFF};
use crate::{Change, ChangedKey, Client, Key, Result, WatchPattern};

/// The changes to every config some patterns match, in the order they happened for
/// each config: the new config (read once, so never stale), or `None` after a deletion.
/// Dropping it ends the watch. A stream polled late yields each config's latest change
/// only; it never ends on its own.
pub struct PatternStream {
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for PatternStream {
    type Item = Change;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        self.inbox.poll_take(cx)
    }
}

impl Drop for PatternStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a pattern watch has handed out: each matching config's md5.
struct Followed {
    client: Client,
    patterns: Vec<WatchPattern>,
    since: i64,
    md5s: HashMap<Key, String>,
    inbox: Arc<Inbox>,
}

impl Followed {
    /// Hands out what a poll reported that differs from what was handed out; false if a
    /// config could not be read (the poll is then repeated from the same place).
    async fn take(&mut self, changed: Vec<ChangedKey>, complete: bool) -> bool {
        let listed: HashSet<Key> = changed.iter().map(ChangedKey::key).collect();
        let mut gone: Vec<Key> = Vec::new();
        if complete {
            gone.extend(self.md5s.keys().filter(|k| !listed.contains(*k)).cloned());
        }
        let mut read_all = true;
        for change in changed {
            let key = change.key();
            if !change.exists {
                gone.push(key);
                continue;
            }
            if self.md5s.get(&key) == Some(&change.md5) {
                continue;
            }
            match self.client.fetch(&key).await {
                // A node behind the one that answered must not take the stream back.
                Ok(Some(config)) if change.revision.is_some_and(|r| config.revision < r) => {
                    read_all = false;
                }
                Ok(Some(config)) => {
                    if self.md5s.get(&key) != Some(&config.md5) {
                        self.md5s.insert(key.clone(), config.md5.clone());
                        self.inbox.put(Change {
                            key,
                            config: Some(config),
                        });
                    }
                }
                Ok(None) => gone.push(key),
                Err(_) => read_all = false,
            }
        }
        for key in gone {
            if self.md5s.remove(&key).is_some() {
                self.inbox.put(Change { key, config: None });
            }
        }
        read_all
    }

    async fn run(mut self) {
        let mut backoff = Duration::ZERO;
        loop {
            tokio::time::sleep(jittered(backoff)).await;
            match self
                .client
                .watch_pattern(&self.patterns, self.since, HOLD)
                .await
            {
                Ok(poll) => {
                    if self.take(poll.changed, poll.complete).await {
                        self.since = poll.seq;
                        backoff = Duration::ZERO;
                    } else {
                        backoff = Duration::from_millis(200);
                    }
                }
                Err(crate::Error::Api {
                    status,
                    code,
                    message,
                }) if (400..500).contains(&status) && ![401, 408, 429].contains(&status) => {
                    // Refused as asked (a revoked right, a namespace deleted): an
                    // operator has to act, so it is said loudly and retried slowly.
                    backoff = MAX_BACKOFF;
                    tracing::error!(status, code = %code, message = %message, retry_in = ?MAX_BACKOFF, "pattern watch refused");
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(200), MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in = ?backoff, "pattern watch failed; retrying");
                }
            }
        }
    }
}

impl Client {
    /// Follows every config `patterns` match and yields their later changes, including
    /// configs created after the call and deletions: for each change, the config as it is
    /// then (read once), or `None` after a deletion. Changes before the call are not
    /// reported. Each pattern watch holds its own long poll.
    ///
    /// Fails if the server refuses the patterns (a namespace that does not exist or the
    /// caller may not see, a malformed wildcard, too many patterns).
    ///
    /// ```no_run
    /// # async fn run(client: cairn_client::Client) -> cairn_client::Result<()> {
    /// use cairn_client::WatchPattern;
    /// use futures::StreamExt;
    /// let mut changes = client
    ///     .pattern_stream(vec![WatchPattern::namespace("prod").group("web")])
    ///     .await?;
    /// while let Some(change) = changes.next().await {
    ///     println!("{} is now {:?}", change.key, change.config.map(|c| c.revision));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn pattern_stream(&self, patterns: Vec<WatchPattern>) -> Result<PatternStream> {
        let first = self.watch_pattern(&patterns, 0, Duration::ZERO).await?;
        let md5s = first
            .changed
            .iter()
            .filter(|c| c.exists)
            .map(|c| (c.key(), c.md5.clone()))
            .collect();
        let inbox = Arc::new(Inbox::default());
        let followed = Followed {
            client: self.clone(),
            patterns,
            since: first.seq,
            md5s,
            inbox: inbox.clone(),
        };
        Ok(PatternStream {
            inbox,
            task: tokio::spawn(followed.run()),
        })
    }

    /// Calls `listener` with the later changes to every config `patterns` match, as
    /// [`Client::pattern_stream`] yields them, on a task of its own; see
    /// [`Client::add_listener`].
    pub async fn add_pattern_listener<F>(
        &self,
        patterns: Vec<WatchPattern>,
        listener: F,
    ) -> Result<Listener>
    where
        F: FnMut(Change) + Send + 'static,
    {
        let stream = self.pattern_stream(patterns).await?;
        Ok(Listener::spawn(stream, listener))
    }
}
