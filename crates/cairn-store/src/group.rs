//! Group commit for publishes: while one transaction commits (and waits for its sync),
//! the publishes that arrive queue up and go into the next transaction together, and a
//! write that fails (its compare-and-set, its format, its namespace) fails alone and its
//! neighbours commit: each write is checked against its stored state
//! first, and the ones that pass are written with a statement per table for the whole
//! group, or on PostgreSQL one statement for every table (`bulk.rs`). A lone publish
//! goes at once, in a transaction of its own, written the same way; each is
//! acknowledged only after the commit that holds it.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::pace::Pace;
use crate::sql::{Planned, SqlStore};
use crate::{ConfigRecord, ConfigWrite, Result, StoreError};

/// Publishes committed in one transaction at most: enough to share a sync among every
/// writer a node has in flight, small enough that one slow group is short.
const MAX_GROUP: usize = 64;

/// How long a committer keeps a pool's only writing connection (SQLite's) from group to
/// group while publishes queue, before it lets another write have it.
const SHARE_SOLE_WRITER: std::time::Duration = std::time::Duration::from_millis(10);

/// How long a committer keeps a pool's only writing connection with no publish to
/// commit: long enough for the writers just answered to send their next.
const SOLE_WRITER_IDLE: std::time::Duration = std::time::Duration::from_millis(2);

struct Job {
    write: ConfigWrite,
    reply: oneshot::Sender<Result<ConfigRecord>>,
}

/// The queue to a store's committing task; the task ends when the last sender goes.
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Job>,
}

/// A statement sent as text, not prepared: MySQL prepares no savepoint statements.
pub(crate) async fn plain(tx: &mut Transaction<'_, Any>, sql: &'static str) -> Result<()> {
    use sqlx::Executor as _;
    (&mut **tx).execute(sql).await?;
    Ok(())
}

impl SqlStore {
    /// A publish through this store's committer, started with the first publish (it
    /// needs a running Tokio runtime, which `put_config` has).
    pub(crate) async fn put_grouped(&self, write: &ConfigWrite) -> Result<ConfigRecord> {
        let committer = self.committer.get_or_init(|| {
            // The task's own handle on the store shares the pools but not this
            // committer, so dropping the last store handle ends the task.
            let mut inner = self.clone();
            inner.committer = Arc::default();
            let (queue, jobs) = mpsc::unbounded_channel();
            tokio::spawn(inner.commit_loop(jobs));
            Committer { queue }
        });
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write: write.clone(),
            reply,
        };
        if committer.queue.send(job).is_err() {
            return Err(StoreError::Outage(
                "the store's committer has stopped".into(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Outage(
                "the write's transaction was abandoned; it may not have been written".into(),
            ))
        })
    }

    async fn commit_loop(self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        // Where the pool has connections to spare, a busy committer keeps one from
        // group to group: taking it from the pool and giving it back costs a round trip
        // (sqlx pings a connection given back) and a task per transaction. It goes back
        // once no publish came for a while (so a kept connection is never one a
        // restarted database has cut), or when the pool closes. SQLite's one writing
        // connection serves every other write too: it is kept only while publishes
        // keep coming (no pause of `SOLE_WRITER_IDLE`), and for at most
        // `SHARE_SOLE_WRITER` at a time, so that a delete or a login waits no longer
        // than that behind a stream of publishes.
        let sole = self.writer.options().get_max_connections() == 1;
        let idle = if sole {
            SOLE_WRITER_IDLE
        } else {
            crate::sql::IDLE_BEFORE_PING
        };
        let mut held: Option<PoolConnection<Any>> = None;
        let mut held_since = Instant::now();
        // Under a stream of commits, other nodes are told at most every few milliseconds:
        // each notification wakes every node's tail, and one covers every commit
        // before it. A commit after a quiet spell is told at once.
        let (mut pace, mut owed) = (Pace::default(), false);
        loop {
            let next = tokio::select! {
                biased;
                // Ahead of the queue, so that a stream of publishes does not hold it back.
                _ = tokio::time::sleep_until(pace.next_run(Instant::now())), if owed => {
                    self.notify_published(&mut held, &mut pace, &mut owed).await;
                    continue;
                }
                job = jobs.recv() => job,
                _ = tokio::time::sleep(idle), if held.is_some() => {
                    held = None;
                    continue;
                }
                _ = self.writer.close_event(), if held.is_some() => {
                    held = None;
                    continue;
                }
            };
            let Some(first) = next else { break };
            let mut group = vec![first];
            // Only what is already waiting: a lone writer does not wait for company. A
            // group's contents stay within what one statement may carry.
            let mut bytes = group[0].write.content.len();
            while group.len() < MAX_GROUP && bytes < crate::bulk::PAGE_BYTES {
                match jobs.try_recv() {
                    Ok(job) => {
                        bytes += job.write.content.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            // On a task of its own, so that a panic fails this group's writers (their
            // answers are dropped) and not every publish after it.
            let store = self.clone();
            let connection = held.take();
            if connection.is_none() {
                held_since = Instant::now();
            }
            match tokio::spawn(async move { store.settle(group, connection).await }).await {
                Ok((kept, committed)) => {
                    held = kept.filter(|_| !sole || held_since.elapsed() < SHARE_SOLE_WRITER);
                    if committed && self.dialect.notify_published.is_some() {
                        pace.events(1, Instant::now());
                        owed = true;
                    }
                }
                Err(e) => tracing::error!(error = %e, "a group of publishes failed"),
            }
            // After every group, whatever became of it: commits owed since an earlier one
            // go out once due, though the queue never empties.
            let now = Instant::now();
            if owed && pace.next_run(now) <= now {
                self.notify_published(&mut held, &mut pace, &mut owed).await;
            }
        }
        if owed {
            self.notify_published(&mut held, &mut pace, &mut owed).await;
        }
    }

    /// Tells the other nodes that publishes committed, on the `held` connection (else
    /// one from the pool). Sent after the commit rather than in its transaction: a
    /// notifying transaction holds a database-wide lock through its commit, which
    /// would line overlapping publishes up again.
    async fn notify_published(
        &self,
        held: &mut Option<PoolConnection<Any>>,
        pace: &mut Pace,
        owed: &mut bool,
    ) {
        use sqlx::Executor as _;
        let Some(notify) = self.dialect.notify_published else {
            return;
        };
        *owed = false;
        pace.ran(Instant::now());
        let sent = match held.as_deref_mut() {
            Some(conn) => conn.execute(notify).await,
            None => self.writer.execute(notify).await,
        };
        if let Err(e) = sent {
            *held = None;
            tracing::debug!(error = %e, "other nodes not woken; they read the change at their next poll");
        }
    }

    /// Commits `group` on the `held` connection (else one from the pool) and answers each of its
    /// writers. Returns the connection unless the database failed on it, and whether
    /// anything committed.
    async fn settle(
        &self,
        mut group: Vec<Job>,
        held: Option<PoolConnection<Any>>,
    ) -> (Option<PoolConnection<Any>>, bool) {
        let mut connection = match held {
            Some(held) => held,
            None => match self.writer.acquire().await {
                Ok(fresh) => fresh,
                Err(e) => {
                    let why = StoreError::from(e).to_string();
                    for job in group {
                        let _ = job.reply.send(Err(StoreError::Outage(why.clone())));
                    }
                    return (None, false);
                }
            },
        };
        // In key order (a stable sort: one key's publishes keep theirs), so that groups
        // committing beside each other lock and create rows in the same order.
        group.sort_by(|a, b| a.write.key.cmp(&b.write.key));
        let (committed, kept) = self.commit_and_answer(&mut connection, group).await;
        (kept.then_some(connection), committed)
    }

    /// Commits `group` on `conn` and answers each of its writers. Returns whether
    /// anything committed, and whether the connection is still good.
    async fn commit_and_answer(
        &self,
        conn: &mut sqlx::AnyConnection,
        group: Vec<Job>,
    ) -> (bool, bool) {
        // A lone publish too: its statements are the group's, fewer than a write made
        // a table at a time.
        let mut settled = self.commit_group(conn, &group).await;
        if matches!(&settled, Err(e) if !e.is_outage()) {
            // Something in one write that the checks did not catch (a value the database
            // refuses, a config another node created meanwhile) failed the shared
            // statements: each write again on its own, so that it fails alone or, where
            // it collided with a creation, is made over what was created.
            settled = self.commit_one_by_one(conn, &group).await;
        }
        match settled {
            Ok(results) => {
                let committed = results.iter().any(Result::is_ok);
                for (job, result) in group.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
                (committed, true)
            }
            Err(e) => {
                // Nothing of the group committed: every writer hears so, and may retry.
                let outage = e.is_outage();
                let why = e.to_string();
                let mut group = group.into_iter();
                if let Some(first) = group.next() {
                    let _ = first.reply.send(Err(e));
                }
                for job in group {
                    let shared = if outage {
                        StoreError::Outage(why.clone())
                    } else {
                        StoreError::Conflict(format!(
                            "the transaction this write shared failed ({why}); nothing was written, try again"
                        ))
                    };
                    let _ = job.reply.send(Err(shared));
                }
                (false, !outage)
            }
        }
    }

    /// One transaction for the whole group, its writes made together
    /// ([`SqlStore::write_planned`]); the outer error means none committed. A write refused by its own check (namespace,
    /// compare-and-set, format) is left out before anything is written, so it fails
    /// alone.
    async fn commit_group(
        &self,
        conn: &mut sqlx::AnyConnection,
        group: &[Job],
    ) -> Result<Vec<Result<ConfigRecord>>> {
        let writes: Vec<&ConfigWrite> = group.iter().map(|j| &j.write).collect();
        let mut keys = HashSet::new();
        if !writes.iter().all(|w| keys.insert(&w.key)) {
            // A key written twice: the second must see the first.
            return self.commit_one_by_one(conn, group).await;
        }
        // Each namespace looked up before anything is written or a sequence taken: a
        // publish into one that does not exist is a client's mistake (or a Nacos
        // tenant to create), and fails alone without costing its group anything.
        let mut tx = self.begin_publish_on(conn).await?;
        let mut missing = HashSet::new();
        for ns in writes
            .iter()
            .map(|w| &w.key.namespace)
            .collect::<HashSet<_>>()
        {
            match self.require_namespace(&mut tx, ns).await {
                Ok(()) => {}
                Err(StoreError::NamespaceNotFound(_)) => {
                    missing.insert(ns);
                }
                Err(e) => return Err(e),
            }
        }
        let mut currents = self.currents_of(&mut tx, &writes).await?;
        let mut results: Vec<Option<Result<ConfigRecord>>> = Vec::with_capacity(writes.len());
        let (mut taken, mut taken_currents, mut planned) = (Vec::new(), Vec::new(), Vec::new());
        for (i, write) in writes.iter().enumerate() {
            let current = std::mem::take(&mut currents[i]);
            if missing.contains(&write.key.namespace) {
                let ns = write.key.namespace.to_string();
                results.push(Some(Err(StoreError::NamespaceNotFound(ns))));
                continue;
            }
            match Planned::new(write, current.as_ref()) {
                Ok(plan) => {
                    taken.push(i);
                    taken_currents.push(current);
                    planned.push(plan);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !taken.is_empty() {
            let taken_writes: Vec<&ConfigWrite> = taken.iter().map(|&i| writes[i]).collect();
            let records = self
                .write_planned(&mut tx, &taken_writes, &taken_currents, planned)
                .await?;
            for (i, record) in taken.into_iter().zip(records) {
                results[i] = Some(Ok(record));
            }
        }
        tx.commit().await?;
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Corrupt("a grouped write went unwritten".into()))
                })
            })
            .collect())
    }

    /// The group in one transaction, each write behind a savepoint of its own.
    async fn commit_one_by_one(
        &self,
        conn: &mut sqlx::AnyConnection,
        group: &[Job],
    ) -> Result<Vec<Result<ConfigRecord>>> {
        let mut tx = self.begin_publish_on(conn).await?;
        let mut results = Vec::with_capacity(group.len());
        for job in group {
            plain(&mut tx, "SAVEPOINT grouped").await?;
            match self.put_in(&mut tx, &job.write).await {
                Ok(record) => {
                    plain(&mut tx, "RELEASE SAVEPOINT grouped").await?;
                    results.push(Ok(record));
                }
                Err(e) if e.is_outage() => return Err(e),
                Err(e) => {
                    plain(&mut tx, "ROLLBACK TO SAVEPOINT grouped").await?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        Ok(results)
    }
}
