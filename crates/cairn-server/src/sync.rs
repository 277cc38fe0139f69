//! Keeping a node in step with the others that share its database: it tails the change
//! log (woken by PostgreSQL `LISTEN/NOTIFY`, paced while notifications stream, else by a
//! short poll), applies other nodes' writes to its cache and wakes their watchers. It
//! also registers the node with a heartbeat, refreshes the users, and prunes the change
//! log when every live node has applied it.
//!
//! The change log, not the notification, is the truth: a lost signal only delays a
//! change until the next poll. Database errors never stop the node; reads and watches go
//! on from memory and the sync retries.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::{ConfigKey, Revision};
use cairn_store::{ChangeRecord, ChangeSignal, ConfigRecord, NodeRecord, Op, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::access_keys::AccessKeys;
use crate::auth::Auth;
use crate::commit::{Change, Commits};
use crate::limits::Limits;
use crate::now_millis;

const BATCH: u32 = 1000;
/// How long a sequence may stay missing below a higher one before the tail settles it.
/// Publishes overlap, so one may commit a moment after a higher sequence; one missing
/// this long is waited out once ([`Store::settled_seq`]), after which it is known to
/// have been rolled back (or to be in the log).
const GAP_WAIT: Duration = Duration::from_millis(200);
/// How long a deletion is remembered in the cache, against late older versions.
const TOMBSTONE_AGE: Duration = Duration::from_secs(600);

/// This node's place in the cluster and its progress through the change log.
pub struct Sync {
    store: Arc<dyn Store>,
    /// The cache and watchers this node's changes are applied to, and the sequence
    /// applied.
    commits: Arc<Commits>,
    /// The newest sequence the database reported at the last heartbeat.
    latest: AtomicI64,
    /// A sequence at or below which every change is in the log or never will be
    /// (publishes in flight then have ended).
    settled: AtomicI64,
    /// Since when the tail has seen a sequence missing below a higher one.
    gap_since: std::sync::Mutex<Option<std::time::Instant>>,
    pub node_id: String,
    pub address: String,
    started_at: i64,
    poll: Duration,
    heartbeat: Duration,
    node_ttl_ms: i64,
    retention_ms: i64,
    audit_retention_ms: i64,
    /// The live nodes as last read, listed while the database cannot be reached.
    known_nodes: std::sync::Mutex<Vec<NodeRecord>>,
    /// Whether the last heartbeat succeeded.
    steady: std::sync::atomic::AtomicBool,
    /// Namespaces' quotas and retention, refreshed at each heartbeat.
    limits: Option<Arc<Limits>>,
    /// Schemas attached to configs, refreshed at each heartbeat.
    schemas: Option<Arc<crate::schemas::Schemas>>,
    history_prune_interval: Duration,
    /// When this node last pruned history (it does when it is the cluster's pruner).
    history_pruned_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A node as listed to clients.
pub struct NodeInfo {
    pub record: NodeRecord,
    pub this_node: bool,
}

pub struct SyncSettings {
    pub address: String,
    pub poll: Duration,
    pub heartbeat: Duration,
    pub node_ttl: Duration,
    pub retention: Duration,
    /// How long audit-log entries are kept.
    pub audit_retention: Duration,
    /// Refreshed at each heartbeat; history is pruned to their retention.
    pub limits: Option<Arc<Limits>>,
    /// Refreshed at each heartbeat, so other nodes' schema changes apply here.
    pub schemas: Option<Arc<crate::schemas::Schemas>>,
    pub history_prune_interval: Duration,
}

/// Counts a database error; logs it only when `first` (the first of a run of
/// failures), so an outage is one log line, not one per retry.
fn database_error(what: &'static str, e: &StoreError, first: bool) {
    crate::metrics::database_error(what);
    if first {
        tracing::warn!(error = %e, during = what, "database error; serving from memory and retrying");
    }
}

impl Sync {
    pub fn new(store: Arc<dyn Store>, commits: Arc<Commits>, settings: SyncSettings) -> Self {
        let started_at = now_millis();
        Self {
            store,
            latest: AtomicI64::new(commits.applied()),
            settled: AtomicI64::new(commits.applied()),
            gap_since: std::sync::Mutex::default(),
            commits,
            node_id: format!(
                "{}-{started_at:x}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            address: settings.address,
            started_at,
            poll: settings.poll,
            heartbeat: settings.heartbeat,
            node_ttl_ms: settings.node_ttl.as_millis() as i64,
            retention_ms: settings.retention.as_millis() as i64,
            audit_retention_ms: settings.audit_retention.as_millis() as i64,
            known_nodes: std::sync::Mutex::default(),
            steady: std::sync::atomic::AtomicBool::new(false),
            limits: settings.limits,
            schemas: settings.schemas,
            history_prune_interval: settings.history_prune_interval,
            history_pruned_at: std::sync::Mutex::default(),
        }
    }

    pub fn applied(&self) -> i64 {
        self.commits.applied()
    }

    /// Change-log entries other nodes wrote that this node has not applied yet, as of
    /// the last heartbeat.
    pub fn lag(&self) -> i64 {
        (self.latest.load(Ordering::Relaxed) - self.applied()).max(0)
    }

    /// Applies every change after the last applied one. Returns how many it read.
    ///
    /// Publishes overlap, so the log may hold a change while a lower sequence is still
    /// to commit. Every change read goes into the cache at once (it keeps each config's
    /// newest, and one config's changes commit in order); the applied sequence moves
    /// only over changes with nothing missing before them, so what waits on it, and
    /// the next pass, never skip a change that commits late. A sequence missing longer
    /// than [`GAP_WAIT`] is settled: unless the log was pruned past it (the node then
    /// reloads), the publishes in flight are waited out, and what is still missing then
    /// was rolled back.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let applied = self.applied();
            // Taken before the log is read, so every change at or below it is in what
            // the read returns.
            let settled = self.settled.load(Ordering::Acquire);
            let batch = self.store.changes_since(applied, BATCH).await?;
            // Nothing after the applied sequence may be entries pruned before this node
            // read them (it was taken for gone meanwhile): only a full reload catches
            // up then. A gap before the first entry read is most often a publish about
            // to commit; it is looked at the same way once it stays (below).
            if batch.is_empty() && self.store.pruned_through().await? > applied {
                self.reload().await?;
                return Ok(total);
            }
            let fetched = self.fetch_configs(&batch).await?;
            let (mut through, mut missing) = (applied, false);
            for change in &batch {
                self.apply(change, &fetched).await?;
                let seq = change.seq.get();
                if !missing && seq - 1 <= through.max(settled) {
                    through = seq;
                } else {
                    missing = true;
                }
            }
            let whole = batch.len() < BATCH as usize;
            if !missing && whole {
                through = through.max(settled);
            }
            self.commits.advance(through);
            total += batch.len();
            if !missing {
                *self.gap_since.lock().expect("gap time poisoned") = None;
                if whole {
                    return Ok(total);
                }
                continue;
            }
            let waited = self
                .gap_since
                .lock()
                .expect("gap time poisoned")
                .get_or_insert_with(std::time::Instant::now)
                .elapsed();
            if waited < GAP_WAIT {
                // Most likely a publish a moment from its commit: the next pass (its
                // notification, or the poll) finds it.
                return Ok(total);
            }
            // A gap that stays: entries pruned before this node read them, or else a
            // publish still in flight or rolled back.
            if self.store.pruned_through().await? > applied {
                self.reload().await?;
                return Ok(total);
            }
            let settled = self.store.settled_seq().await?;
            self.settled.fetch_max(settled, Ordering::AcqRel);
            *self.gap_since.lock().expect("gap time poisoned") = None;
        }
    }

    /// The configs `batch`'s changes of main versions wrote that this node does not
    /// hold yet, read in one go (their newest versions, which may be newer still).
    async fn fetch_configs(
        &self,
        batch: &[ChangeRecord],
    ) -> Result<HashMap<ConfigKey, Arc<ConfigRecord>>, StoreError> {
        let cache = self.commits.cache();
        let mut wanted: Vec<&ConfigKey> = batch
            .iter()
            .filter(|c| matches!(c.op, Op::Publish | Op::Rollback | Op::GrayPromote))
            .filter(|c| cache.get(&c.key).is_none_or(|held| held.revision < c.seq))
            .map(|c| &c.key)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self.store.get_configs(&wanted).await?;
        Ok(found
            .into_iter()
            .map(|config| (config.key.clone(), Arc::new(config)))
            .collect())
    }

    /// Applies one change-log entry, with what it wrote from `fetched` unless this node
    /// holds it already (its own write, or a newer version fetched).
    async fn apply(
        &self,
        change: &ChangeRecord,
        fetched: &HashMap<ConfigKey, Arc<ConfigRecord>>,
    ) -> Result<(), StoreError> {
        let (key, seq) = (change.key.clone(), change.seq);
        let cache = self.commits.cache();
        let applied = match change.op {
            Op::Delete => Some(Change::Deleted { key, seq }),
            Op::GrayAbandon => Some(Change::GrayEnded { key, seq }),
            Op::GrayPublish if cache.gray(&key).is_some_and(|g| g.revision >= seq) => None,
            // `None`: ended since; that change comes later in the log.
            Op::GrayPublish => self
                .store
                .get_gray(&key)
                .await?
                .map(|g| Change::Gray(Arc::new(g))),
            Op::Publish | Op::Rollback | Op::GrayPromote => {
                let config = if cache.get(&key).is_some_and(|c| c.revision >= seq) {
                    None
                } else {
                    // `None`: deleted since; that deletion comes later in the log.
                    fetched.get(&key).cloned()
                };
                match (change.op, config) {
                    (Op::GrayPromote, config) => Some(Change::Promoted { key, seq, config }),
                    (_, config) => config.map(Change::Config),
                }
            }
        };
        if let Some(applied) = applied {
            self.commits.apply(applied);
        }
        Ok(())
    }

    /// Replaces the cache with the database's configs, for a node that fell behind the
    /// change log's retention.
    async fn reload(&self) -> Result<(), StoreError> {
        let seq = self.store.settled_seq().await?;
        self.settled.fetch_max(seq, Ordering::AcqRel);
        let configs = self.store.load_configs().await?;
        let grays = self.store.load_grays().await?;
        tracing::warn!(
            from = self.applied(),
            to = seq,
            "fell behind the change log's retention; reloading every config"
        );
        let cache = self.commits.cache();
        let present: HashSet<_> = configs.iter().map(|c| c.key.clone()).collect();
        for config in configs {
            self.commits.apply(Change::Config(Arc::new(config)));
        }
        // A config the database no longer has was deleted by some change up to `seq`;
        // with nothing in the log (`seq` 0) there is no config to remove either.
        if let Some(at) = Revision::new(seq) {
            let gone = cache.select(|c| !present.contains(&c.key) && c.revision < at);
            for config in gone {
                let key = config.key.clone();
                self.commits.apply(Change::Deleted { key, seq: at });
            }
        }
        let graying: HashSet<_> = grays.iter().map(|g| g.key.clone()).collect();
        for gray in grays {
            self.commits.apply(Change::Gray(Arc::new(gray)));
        }
        for key in cache.gray_keys() {
            let ended = !graying.contains(&key)
                && cache.gray(&key).is_some_and(|g| g.revision.get() <= seq);
            // Ended by some change up to `seq`: told as one just after everything
            // this node knows, so that every client of the release is notified.
            if let (true, Some(after)) = (ended, Revision::new(seq + 1)) {
                self.commits.apply(Change::GrayEnded { key, seq: after });
            }
        }
        self.commits.advance(seq);
        Ok(())
    }

    /// Tails the change log until shutdown.
    pub async fn run_tail(self: Arc<Self>, shutdown: CancellationToken) {
        let mut signal: Option<Box<dyn ChangeSignal>> = None;
        let mut failing = false;
        // Under a stream of publishes every commit notifies, and a pass per notification
        // would cost the node and the database more than the publishes themselves: while
        // notifications stream, a pass starts at most every few milliseconds and covers
        // every one that came meanwhile. A change after a quiet spell is read at once.
        let mut pace = cairn_store::pace::Pace::default();
        loop {
            pace.ran(tokio::time::Instant::now());
            if signal.is_none() {
                signal = self.store.change_signal().await.unwrap_or_else(|e| {
                    database_error("listen", &e, !failing);
                    None
                });
            }
            match self.catch_up().await {
                Ok(_) => {
                    if failing {
                        tracing::info!("change log reachable again");
                    }
                    failing = false;
                }
                Err(e) => {
                    database_error("sync", &e, !failing);
                    failing = true;
                }
            }
            metrics::gauge!("cairn_sync_applied_seq").set(self.applied() as f64);
            metrics::gauge!("cairn_sync_lag").set(self.lag() as f64);
            let now = tokio::time::Instant::now();
            let next = pace.next_run(now);
            if next > now {
                // The notifications that come meanwhile are taken together below.
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            let woken = async {
                match signal.as_mut() {
                    Some(s) => s.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = woken => match result {
                    Ok(taken) => pace.events(taken, tokio::time::Instant::now()),
                    Err(e) => {
                        database_error("listen", &e, !failing);
                        signal = None;
                    }
                },
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn record(&self, now: i64) -> NodeRecord {
        NodeRecord {
            id: self.node_id.clone(),
            address: self.address.clone(),
            started_at: self.started_at,
            heartbeat_at: now,
            applied_seq: self.applied(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// One heartbeat: registers the node, refreshes users, expires dead nodes, prunes
    /// the change log and measures lag.
    pub async fn beat(&self, auth: &Auth, keys: Option<&AccessKeys>) -> Result<(), StoreError> {
        // Taken first, so that a beat that fails anywhere leaves the node unsteady.
        let steady = self.steady.swap(false, Ordering::Relaxed);
        // The database's clock, so liveness does not depend on the nodes' clocks.
        let now = self.store.clock().await?;
        self.store.heartbeat(&self.record(now)).await?;
        if let Err(e) = auth.reload_users().await {
            tracing::warn!(error = %e, "could not refresh users");
        }
        if let Some(keys) = keys {
            keys.reload().await?;
        }
        self.commits.cache().forget_removed(TOMBSTONE_AGE);
        // Right after an outage (or at start) the other nodes' last heartbeats may be as
        // old as the outage itself: they are expired, and the log pruned on their
        // behalf, only from this node's second heartbeat in a row.
        if steady {
            self.store.remove_nodes(now - self.node_ttl_ms).await?;
        }
        let latest = self.store.last_seq().await?;
        self.latest.store(latest, Ordering::Relaxed);
        metrics::gauge!("cairn_sync_lag").set(self.lag() as f64);
        let live = self.live_records(now).await?;
        *self.known_nodes.lock().expect("node list poisoned") = live.clone();
        if steady {
            self.prune(now, latest, &live).await?;
        }
        if let Some(schemas) = &self.schemas {
            let generation = schemas.generation();
            schemas.refresh_since(self.store.schemas().await?, generation);
        }
        if let Some(limits) = &self.limits {
            let namespaces = self.store.list_namespaces().await?;
            limits.refresh(&namespaces);
            if steady && self.prunes_history(&live) {
                self.prune_history(limits, &namespaces, now).await?;
            }
        }
        self.steady.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Whether this node leads the cluster as of the last heartbeat: it is the live
    /// node first by id. The leader alone does the cluster's background work (history
    /// pruning, webhook deliveries), so nodes do not repeat each other's.
    pub fn leads(&self) -> bool {
        let known = self.known_nodes.lock().expect("node list poisoned");
        known.iter().map(|n| n.id.as_str()).min() == Some(self.node_id.as_str())
    }

    /// Whether this node is the one that prunes history now: the leader (one node, so
    /// they do not repeat each other's scans), once per interval.
    fn prunes_history(&self, live: &[NodeRecord]) -> bool {
        let first = live.iter().map(|n| n.id.as_str()).min();
        if first.is_some_and(|id| id != self.node_id) {
            return false;
        }
        let mut last = self.history_pruned_at.lock().expect("prune time poisoned");
        if last.is_some_and(|at| at.elapsed() < self.history_prune_interval) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        true
    }

    /// Drops history beyond each namespace's retention (the newest revision of each
    /// config always stays).
    async fn prune_history(
        &self,
        limits: &Limits,
        namespaces: &[cairn_store::NamespaceRecord],
        now: i64,
    ) -> Result<(), StoreError> {
        for namespace in namespaces {
            let keep = limits.effective(&namespace.name);
            if keep.history_max_revisions == 0 && keep.history_max_days == 0 {
                continue;
            }
            let older_than = (keep.history_max_days > 0)
                .then(|| now - (keep.history_max_days as i64).saturating_mul(86_400_000));
            let dropped = self
                .store
                .prune_history(&namespace.name, keep.history_max_revisions, older_than)
                .await?;
            if dropped > 0 {
                tracing::info!(namespace = %namespace.name, dropped, "pruned history to its retention");
            }
        }
        Ok(())
    }

    /// Drops change-log entries older than the retention that every live node applied.
    /// The newest entry always stays: some MySQL versions reset an emptied table's
    /// auto-increment on restart, which would hand out sequences again.
    async fn prune(&self, now: i64, latest: i64, live: &[NodeRecord]) -> Result<(), StoreError> {
        let Some(mut needed) = live.iter().map(|n| n.applied_seq).min() else {
            return Ok(());
        };
        // The change log is the webhooks' outbox: kept until turned into deliveries.
        if !self.store.webhooks(None).await?.is_empty() {
            needed = needed.min(self.store.webhook_cursor().await?);
        }
        let old = self
            .store
            .changes_since(self.store.pruned_through().await?, BATCH)
            .await?
            .into_iter()
            .take_while(|c| {
                c.created_at < now - self.retention_ms
                    && c.seq.get() <= needed
                    && c.seq.get() < latest
            })
            .last();
        if let Some(through) = old {
            let pruned = self.store.prune_changes(through.seq.get()).await?;
            tracing::info!(through = through.seq.get(), pruned, "pruned the change log");
        }
        // Every node may prune; the first to do so leaves the others nothing to remove.
        let expired = self
            .store
            .prune_audit(now - self.audit_retention_ms)
            .await?;
        if expired > 0 {
            tracing::info!(expired, "pruned the audit log");
        }
        Ok(())
    }

    /// Heartbeats until shutdown, then deregisters the node.
    pub async fn run_heartbeat(
        self: Arc<Self>,
        auth: Arc<Auth>,
        keys: Arc<AccessKeys>,
        shutdown: CancellationToken,
    ) {
        let mut failing = false;
        loop {
            match self.beat(&auth, Some(&keys)).await {
                Ok(()) => failing = false,
                Err(e) => {
                    database_error("heartbeat", &e, !failing);
                    failing = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if let Err(e) = self.store.remove_node(&self.node_id).await {
            tracing::warn!(error = %e, "could not deregister this node");
        }
    }

    /// The registered nodes whose heartbeat, at database time `now`, is within the TTL.
    async fn live_records(&self, now: i64) -> Result<Vec<NodeRecord>, StoreError> {
        let mut nodes = self.store.nodes().await?;
        nodes.retain(|n| n.heartbeat_at >= now - self.node_ttl_ms);
        Ok(nodes)
    }

    /// Live nodes: heartbeat within the TTL. This node is always listed. While the
    /// database cannot be reached, the nodes as last read: clients looking for a node
    /// to fail over to need the list most then.
    /// This node's id, as the node list shows it.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub async fn live_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let read = async {
            let now = self.store.clock().await?;
            Ok::<_, StoreError>((now, self.live_records(now).await?))
        };
        let (now, records) = match read.await {
            Ok((now, live)) => {
                *self.known_nodes.lock().expect("node list poisoned") = live.clone();
                (now, live)
            }
            Err(e) if e.is_outage() => (
                crate::now_millis(),
                self.known_nodes.lock().expect("node list poisoned").clone(),
            ),
            Err(e) => return Err(e),
        };
        let mut nodes: Vec<NodeInfo> = records
            .into_iter()
            .map(|record| NodeInfo {
                this_node: record.id == self.node_id,
                record,
            })
            .collect();
        if !nodes.iter().any(|n| n.this_node) {
            nodes.push(NodeInfo {
                record: self.record(now),
                this_node: true,
            });
        }
        Ok(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{ConfigKey, Format};
    use cairn_store::{Audit, ConfigWrite, Expect, SqlStore};

    fn settings() -> SyncSettings {
        SyncSettings {
            address: "http://test".into(),
            poll: Duration::from_millis(10),
            heartbeat: Duration::from_millis(100),
            node_ttl: Duration::from_secs(60),
            retention: Duration::ZERO,
            audit_retention: Duration::from_secs(86_400),
            limits: None,
            schemas: None,
            history_prune_interval: Duration::from_secs(600),
        }
    }

    async fn publish(store: &Arc<dyn Store>, data_id: &str) -> i64 {
        let content = format!("{data_id}: 1");
        let write = ConfigWrite {
            key: ConfigKey::parse("public", "g", data_id).unwrap(),
            op: Op::Publish,
            md5: cairn_core::md5::md5_hex(&content),
            content,
            format: Some(Format::Text),
            default_format: Format::Text,
            validated_as: None,
            description: None,
            tags: None,
            sensitive: None,
            expect: Expect::Any,
            audit: Audit {
                operator: "t".into(),
                source: String::new(),
                comment: String::new(),
                at: 1,
                surface: "native".into(),
                emergency: false,
            },
        };
        store.put_config(&write).await.unwrap().revision.get()
    }

    fn node(store: &Arc<dyn Store>) -> (Sync, Arc<Commits>) {
        let commits = Arc::new(Commits::new(crate::cache::Cache::default(), 0, vec![]));
        (
            Sync::new(store.clone(), commits.clone(), settings()),
            commits,
        )
    }

    #[tokio::test]
    async fn pruning_waits_for_live_nodes_and_laggards_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::sqlite(&dir.path().join("c.db")).await.unwrap());
        let auth = Auth::new(store.clone(), &[7; 32], 60).await.unwrap();
        let mut last = 0;
        for i in 0..5 {
            last = publish(&store, &format!("k{i}")).await;
        }

        let (a, cache_a) = node(&store);
        let (b, _) = node(&store);
        assert_eq!(a.catch_up().await.unwrap(), 5);
        assert_eq!(cache_a.cache().len(), 5);
        // B is live but has applied nothing: nothing may be pruned.
        b.beat(&auth, None).await.unwrap();
        a.beat(&auth, None).await.unwrap();
        assert_eq!(store.pruned_through().await.unwrap(), 0);
        assert_eq!(store.changes_since(0, 100).await.unwrap().len(), 5);

        // Once B has applied everything, the old entries go, all but the newest.
        b.catch_up().await.unwrap();
        b.beat(&auth, None).await.unwrap();
        a.beat(&auth, None).await.unwrap();
        let pruned = store.pruned_through().await.unwrap();
        assert!(pruned > 0 && pruned < last, "pruned through {pruned}");
        let left = store.changes_since(0, 100).await.unwrap();
        assert_eq!(
            left.iter().map(|c| c.seq.get()).collect::<Vec<_>>(),
            vec![last]
        );

        // A node that starts from nothing now finds the log pruned and, once the gap
        // before what is left has stayed, reloads in full.
        let (c, cache_c) = node(&store);
        c.catch_up().await.unwrap();
        assert_eq!(c.applied(), 0, "not past the gap at once");
        tokio::time::sleep(GAP_WAIT).await;
        c.catch_up().await.unwrap();
        assert_eq!(cache_c.cache().len(), 5);
        assert_eq!(c.applied(), last);

        // And one that had a config deleted meanwhile drops it.
        let key = ConfigKey::parse("public", "g", "k0").unwrap();
        let delete = cairn_store::ConfigDelete {
            key: key.clone(),
            expect: Expect::Any,
            audit: Audit {
                operator: "t".into(),
                source: String::new(),
                comment: String::new(),
                at: 1,
                surface: "native".into(),
                emergency: false,
            },
        };
        store.delete_config(&delete).await.unwrap();
        publish(&store, "k9").await;
        a.catch_up().await.unwrap();
        a.beat(&auth, None).await.unwrap();
        c.beat(&auth, None).await.unwrap();
        b.beat(&auth, None).await.unwrap();
        // B and C lag at `last`: the log is pruned up to their position, not past it.
        assert_eq!(store.pruned_through().await.unwrap(), last);
        b.catch_up().await.unwrap();
        c.catch_up().await.unwrap();
        assert!(cache_c.cache().get(&key).is_none());
        assert_eq!(cache_c.cache().len(), 5);
    }

    #[tokio::test]
    async fn gray_releases_and_their_ends_reach_other_nodes() {
        use futures::FutureExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::sqlite(&dir.path().join("c.db")).await.unwrap());
        publish(&store, "k").await;
        let key = ConfigKey::parse("public", "g", "k").unwrap();
        let (b, commits) = node(&store);
        let cache = commits.cache();
        b.catch_up().await.unwrap();
        let watch = commits.hub().register(vec![key.clone()]);
        let audit = Audit {
            operator: "t".into(),
            source: String::new(),
            comment: String::new(),
            at: 1,
            surface: "native".into(),
            emergency: false,
        };
        let gray = |content: &str| cairn_store::GrayWrite {
            key: key.clone(),
            content: content.into(),
            md5: cairn_core::md5::md5_hex(content),
            format: None,
            validated_as: None,
            rules: cairn_core::GrayRules::parse(&[], &["canary=true".into()]).unwrap(),
            audit: audit.clone(),
        };
        // Each step, written by another node, is applied here and wakes this node's
        // watchers.
        let woken = || watch.changed().now_or_never().is_some();

        store.put_gray(&gray("k: 2")).await.unwrap();
        b.catch_up().await.unwrap();
        assert_eq!(cache.gray(&key).unwrap().content, "k: 2");
        assert!(woken(), "the gray publish");

        store
            .promote_gray(&key, &cairn_store::Expect::Any, &audit)
            .await
            .unwrap();
        b.catch_up().await.unwrap();
        assert!(cache.gray(&key).is_none());
        assert_eq!(cache.get(&key).unwrap().content, "k: 2");
        assert!(woken(), "the promotion");

        // A release that began and ended between two passes was never served here:
        // nobody needs waking for it.
        store.put_gray(&gray("k: 3")).await.unwrap();
        store.abandon_gray(&key, &audit).await.unwrap();
        b.catch_up().await.unwrap();
        assert!(cache.gray(&key).is_none());
        assert!(!woken(), "a release never served");

        store.put_gray(&gray("k: 4")).await.unwrap();
        b.catch_up().await.unwrap();
        assert!(woken(), "the second gray publish");
        store.abandon_gray(&key, &audit).await.unwrap();
        b.catch_up().await.unwrap();
        assert!(cache.gray(&key).is_none());
        assert_eq!(cache.get(&key).unwrap().content, "k: 2");
        assert!(woken(), "the abandonment");
        assert!(!woken(), "nothing more");
    }

    #[tokio::test]
    async fn others_are_expired_only_from_the_second_heartbeat_in_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::sqlite(&dir.path().join("c.db")).await.unwrap());
        let auth = Auth::new(store.clone(), &[7; 32], 60).await.unwrap();
        // A node whose last heartbeat is long past, as every node's is after an outage.
        let silent = NodeRecord {
            id: "silent".into(),
            address: "http://silent".into(),
            started_at: 0,
            heartbeat_at: 1,
            applied_seq: 0,
            version: String::new(),
        };
        store.heartbeat(&silent).await.unwrap();
        let (a, _) = node(&store);
        let ids = || async {
            let nodes = store.nodes().await.unwrap();
            nodes.into_iter().map(|n| n.id).collect::<Vec<_>>()
        };
        a.beat(&auth, None).await.unwrap();
        assert!(
            ids().await.contains(&"silent".to_owned()),
            "not on the first"
        );
        a.beat(&auth, None).await.unwrap();
        assert!(!ids().await.contains(&"silent".to_owned()), "on the second");
    }
}
