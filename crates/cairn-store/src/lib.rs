//! Cairn's storage boundary. The server talks to storage only through the traits here;
//! each backend implements them with its own SQL and its own versioned migrations, and
//! one conformance suite (`tests/store.rs`) runs unchanged against every backend.

mod bulk;
mod group;
mod model;
mod mysql;
pub mod pace;
mod postgres;
mod reseal;
mod reviews;
mod schemas;
#[cfg(feature = "test-util")]
pub mod scratch;
pub mod seal;
mod sql;
mod sqlite;
mod webhooks;

pub use model::*;
pub use reseal::ResealReport;
pub use seal::Sealer;
pub use sql::SqlStore;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::grant::Scope;
use cairn_core::{ConfigKey, Namespace, Revision, RoleName, Username};

/// Why a storage operation failed. Never carries HTTP notions; the server maps these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(String),
    #[error("namespace {0} already exists")]
    NamespaceExists(String),
    #[error("namespace {0} still holds configs")]
    NamespaceNotEmpty(String),
    #[error("config {0} does not exist")]
    ConfigNotFound(ConfigKey),
    #[error("config {0} has no gray release")]
    GrayNotFound(ConfigKey),
    #[error("config {key} changed: expected md5 {expected:?}, current {current:?}")]
    CasMismatch {
        key: ConfigKey,
        expected: Option<String>,
        current: Option<String>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("no schema is attached to {0}")]
    SchemaNotFound(String),
    #[error("app {0} has no access key {1}")]
    AccessKeyNotFound(String, String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("user {0} does not exist")]
    UserNotFound(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Encryption(String),
    /// The database failed a transaction this operation shared (group commit).
    #[error("the database failed: {0}")]
    Outage(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing the request):
    /// the caller may retry once it is back.
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Outage(_) => true,
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Protocol(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                let code = e.code().unwrap_or_default();
                // SQLite: busy past the busy timeout, locked, I/O error, disk full.
                matches!(&*code, "5" | "6" | "10" | "13" | "261" | "517")
                    // SQLSTATE: connection exceptions, server shutting down or starting,
                    // too many connections.
                    || code.starts_with("08")
                    || code.starts_with("57P0")
                    // Lock or statement timeouts: another writer holds the write lock.
                    || matches!(&*code, "53300" | "55P03" | "57014" | "25P03")
                    // MySQL: too many connections, lock wait timeout, server gone.
                    || e
                        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|my| matches!(my.number(), 1040 | 1205 | 2006 | 2013))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            super::redact_url("postgres://cairn:s3cret@db:5432/cairn"),
            "postgres://cairn:***@db:5432/cairn"
        );
        assert_eq!(super::redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Namespaces: the isolation boundaries configs live in.
#[async_trait]
pub trait NamespaceStore: Send + Sync {
    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>>;
    /// Fails with `NamespaceExists` when the name is taken.
    async fn create_namespace(&self, ns: &NamespaceRecord) -> Result<()>;
    /// Fails with `NamespaceNotFound`.
    /// Changes the fields given (`None`: unchanged); fails with `NamespaceNotFound`.
    async fn update_namespace(&self, name: &Namespace, update: &NamespaceUpdate) -> Result<()>;
    /// Fails with `NamespaceNotFound`, or `NamespaceNotEmpty` while configs remain.
    async fn delete_namespace(&self, name: &Namespace) -> Result<()>;
}

/// Configs, their history and the change log. Every write is one transaction that
/// updates the config, appends history and appends the change log, or does nothing.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// Every current config, for filling the server's cache at start.
    async fn load_configs(&self) -> Result<Vec<ConfigRecord>>;
    /// Creates or replaces a config; returns the stored record with its new revision.
    async fn put_config(&self, write: &ConfigWrite) -> Result<ConfigRecord>;
    /// Many writes in one transaction (imports, bulk loading); all land or none does.
    /// `past` holds earlier versions of configs the import creates, oldest first per
    /// config: each becomes a history entry older than its config's import (those of a
    /// config that exists already are left out). Returns the stored records, in the
    /// order of `writes`.
    async fn import(
        &self,
        writes: &[ConfigWrite],
        past: &[PastVersion],
    ) -> Result<Vec<ConfigRecord>>;
    /// Deletes a config; returns the change that recorded it.
    async fn delete_config(&self, delete: &ConfigDelete) -> Result<ChangeRecord>;
    /// A page of a config's history, newest first (contents left empty; read one entry
    /// for its content), and the total number of entries.
    async fn history(&self, key: &ConfigKey, page: Page) -> Result<(Vec<HistoryRecord>, u64)>;
    /// Every history entry of every config of `namespace`, with contents, by group, data
    /// id and revision (for exports that carry history).
    async fn namespace_history(&self, namespace: &Namespace) -> Result<Vec<HistoryRecord>>;
    /// Drops history entries of `namespace`'s configs beyond the newest
    /// `max_revisions` of each (0: no such bound) or created before `older_than`
    /// (milliseconds; `None`: no such bound). Each config's newest entry is always kept.
    /// Returns how many entries were dropped.
    async fn prune_history(
        &self,
        namespace: &Namespace,
        max_revisions: u64,
        older_than: Option<i64>,
    ) -> Result<u64>;
    /// One historical version of a config.
    async fn history_entry(
        &self,
        key: &ConfigKey,
        revision: Revision,
    ) -> Result<Option<HistoryRecord>>;
    /// The current version of one config, read from the database.
    async fn get_config(&self, key: &ConfigKey) -> Result<Option<ConfigRecord>>;
    /// The configs of `keys` that exist, in no particular order: what a tail reads for
    /// a batch of other nodes' changes, in a query per namespace and group instead of
    /// one per change.
    async fn get_configs(&self, keys: &[&ConfigKey]) -> Result<Vec<ConfigRecord>>;
    /// The newest entry of a config's history before `revision`, with its content.
    async fn history_before(
        &self,
        key: &ConfigKey,
        revision: Revision,
    ) -> Result<Option<HistoryRecord>>;
    /// Change-log entries after `seq`, oldest first, at most `limit`.
    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<ChangeRecord>>;
    /// The newest change-log sequence (0 when there is none).
    async fn last_seq(&self) -> Result<i64>;
    /// The newest change-log sequence at or below which every entry is in the log or
    /// never will be. Publishes overlap, so a lower sequence may commit after a higher
    /// one; this waits until the publishes in flight have ended, and holds every write
    /// back meanwhile, so it is for settling a gap that stays, not for every read.
    async fn settled_seq(&self) -> Result<i64>;
    /// Every gray release, for filling the cache at start.
    async fn load_grays(&self) -> Result<Vec<GrayRecord>>;
    /// One config's gray release, read from the database.
    async fn get_gray(&self, key: &ConfigKey) -> Result<Option<GrayRecord>>;
    /// Creates or replaces a config's gray release; fails with `ConfigNotFound`.
    async fn put_gray(&self, write: &GrayWrite) -> Result<GrayRecord>;
    /// Makes the gray content the main content (a new revision) and drops the gray
    /// release; fails with `GrayNotFound`, and with `Conflict` when the gray release's
    /// md5 is not what `expect` allows (it was replaced after it was checked).
    async fn promote_gray(
        &self,
        key: &ConfigKey,
        expect: &Expect,
        audit: &Audit,
    ) -> Result<ConfigRecord>;
    /// Drops the gray release; fails with `GrayNotFound`.
    async fn abandon_gray(&self, key: &ConfigKey, audit: &Audit) -> Result<ChangeRecord>;
}

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    async fn get_user(&self, username: &Username) -> Result<Option<UserRecord>>;
    /// Fails with `UserExists`.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    /// Fails with `UserNotFound`.
    async fn set_password(&self, username: &Username, hash: &str, changed_at: i64) -> Result<()>;
    /// Fails with `UserNotFound`.
    async fn set_role(&self, username: &Username, role: cairn_core::Role) -> Result<()>;
    /// Fails with `UserNotFound`.
    async fn delete_user(&self, username: &Username) -> Result<()>;
}

/// What the nodes of a cluster share: their registry, the change log's pruning, and
/// secrets every node must agree on.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Registers the node or refreshes its heartbeat.
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()>;
    /// Every registered node, live or not; the caller judges liveness by heartbeat.
    async fn nodes(&self) -> Result<Vec<NodeRecord>>;
    /// Forgets nodes whose last heartbeat is older than `heartbeat_before`.
    async fn remove_nodes(&self, heartbeat_before: i64) -> Result<u64>;
    /// Forgets one node (on a clean shutdown).
    async fn remove_node(&self, id: &str) -> Result<()>;
    /// Deletes change-log entries up to `through_seq` and records that it did.
    async fn prune_changes(&self, through_seq: i64) -> Result<u64>;
    /// The highest sequence pruned so far; a node behind it must reload in full.
    async fn pruned_through(&self) -> Result<i64>;
    /// The database's clock in Unix milliseconds, so that liveness does not depend on
    /// the nodes' clocks agreeing.
    async fn clock(&self) -> Result<i64>;
    /// The stored value of a named secret, storing `candidate` if there is none yet, so
    /// that every node ends up with the same one.
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String>;
}

/// Wakes a node when another node committed a change (PostgreSQL `LISTEN`). The change
/// log stays the truth: a missed signal only delays a change to the next poll.
#[async_trait]
pub trait ChangeSignal: Send {
    /// Completes at the next signal, with how many signals came together (every one
    /// already here is taken); an error means the signal connection was lost.
    async fn wait(&mut self) -> Result<usize>;
}

/// Access keys of Apollo apps.
#[async_trait]
pub trait AccessKeyStore: Send + Sync {
    /// Every access key of every app.
    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>>;
    /// Adds a key; fails with `Conflict` when the app already has `max` keys.
    async fn create_access_key(&self, key: &AccessKeyRecord, max: usize) -> Result<()>;
    /// Fails with `AccessKeyNotFound`.
    async fn set_access_key_enabled(&self, app_id: &str, id: &str, enabled: bool) -> Result<()>;
    /// Fails with `AccessKeyNotFound`.
    async fn delete_access_key(&self, app_id: &str, id: &str) -> Result<()>;
}

/// Grants and the membership of named roles: who may do what in which namespaces.
#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn grants(&self) -> Result<Vec<GrantRecord>>;
    /// Gives a subject a level over a scope, replacing the level it had over exactly
    /// that scope.
    async fn put_grant(&self, grant: &GrantRecord) -> Result<()>;
    /// Takes a subject's grant over exactly `scope` away; false when it had none.
    async fn delete_grant(&self, subject: &Subject, scope: &Scope) -> Result<bool>;
    async fn role_members(&self) -> Result<Vec<RoleMember>>;
    /// Makes a user a member of a role (again: nothing changes).
    async fn add_role_member(&self, member: &RoleMember) -> Result<()>;
    /// False when the user was not a member.
    async fn remove_role_member(&self, role: &RoleName, username: &Username) -> Result<bool>;
    /// Removes a role's members and grants; false when it had neither.
    async fn delete_role(&self, role: &RoleName) -> Result<bool>;
}

/// The audit log: appended to, read with filters, pruned by age. Config changes are
/// logged by `ConfigStore` itself, in the transaction that makes them.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends entries (their `id` is ignored).
    async fn append_audit(&self, entries: &[AuditRecord]) -> Result<()>;
    /// One page of the entries `query` matches, newest first, and how many match.
    async fn audit(&self, query: &AuditQuery, page: Page) -> Result<(Vec<AuditRecord>, u64)>;
    /// Removes the entries older than `before` (Unix ms); returns how many.
    async fn prune_audit(&self, before: i64) -> Result<u64>;
}

/// Service tokens, by name; looked up in memory by their digest.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Fails with `Conflict` when the name is taken.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// False when there was no such token.
    async fn delete_token(&self, name: &str) -> Result<bool>;
    /// Records when tokens were last used (a missing token is skipped).
    async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<()>;
}

/// JSON Schemas attached to configs, each change kept as a version and audited in the
/// transaction that makes it.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// Every attached schema, of every namespace.
    async fn schemas(&self) -> Result<Vec<SchemaRecord>>;
    /// Attaches a schema or replaces one; fails with `Conflict` when `expect_version`
    /// is given and is not the stored version (0: none attached).
    async fn put_schema(&self, write: &SchemaWrite) -> Result<SchemaRecord>;
    /// Detaches a schema; `SchemaNotFound` when none is attached there.
    async fn remove_schema(&self, target: &SchemaTarget, audit: &Audit) -> Result<SchemaRecord>;
    /// Every version of a schema, newest first (removals included).
    async fn schema_history(&self, target: &SchemaTarget) -> Result<Vec<SchemaVersion>>;
}

/// Webhook subscriptions and their deliveries. The change log is the outbox: each
/// change's entry commits with it, and is turned into deliveries once, by whichever
/// node moves `webhook_cursor` on.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds a subscription to changes from now on (`NamespaceNotFound` without the
    /// namespace); audited as `webhook.add`.
    async fn add_webhook(&self, write: &WebhookWrite) -> Result<WebhookRecord>;
    /// The subscriptions of `namespace`, or of every namespace, by id.
    async fn webhooks(&self, namespace: Option<&Namespace>) -> Result<Vec<WebhookRecord>>;
    async fn webhook(&self, id: i64) -> Result<Option<WebhookRecord>>;
    /// Removes a subscription and its deliveries; `false` when there is none.
    /// Audited as `webhook.remove`.
    async fn remove_webhook(&self, id: i64, audit: &Audit) -> Result<bool>;
    /// The change-log sequence through which deliveries have been created.
    async fn webhook_cursor(&self) -> Result<i64>;
    /// Creates `deliveries` and moves the cursor from `from` to `to`, in one
    /// transaction; `false` (nothing written) when the cursor is no longer at `from`:
    /// another node got there first.
    async fn enqueue_deliveries(
        &self,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool>;
    /// The oldest pending deliveries, due or not, by id.
    async fn pending_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Takes a due delivery for one attempt: counts the attempt and moves its next
    /// attempt to `lease_until`, so no other node takes it meanwhile; `false` when it
    /// is not pending and due by `now` any more.
    async fn claim_delivery(&self, id: i64, now: i64, lease_until: i64) -> Result<bool>;
    /// Records how an attempt went.
    async fn finish_delivery(&self, id: i64, attempt: &Attempt) -> Result<()>;
    /// A page of a webhook's deliveries, newest first, and their number.
    async fn deliveries(&self, webhook_id: i64, page: Page) -> Result<(Vec<DeliveryRecord>, u64)>;
    /// Sends a delivery again from now (a new retry window); `false` when there is no
    /// such delivery of that webhook.
    async fn redeliver(&self, webhook_id: i64, delivery_id: i64, now: i64) -> Result<bool>;
}

/// Change requests: changes proposed for review in a namespace that requires it. Each
/// step (opened, rebased, approved, rejected, stale) is one transaction with its
/// timeline event, audit entry (`review.<event>`) and the webhook deliveries it is
/// given.
#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Makes a request (`NamespaceNotFound` without the namespace), with a delivery of
    /// `change_request_opened` to each of `webhooks`.
    async fn open_change_request(
        &self,
        new: &NewChangeRequest,
        webhooks: &[i64],
    ) -> Result<ChangeRequestRecord>;
    async fn change_request(&self, id: i64) -> Result<Option<ChangeRequestRecord>>;
    /// A page of requests, newest first, of a namespace and in a state when given, and
    /// how many there are.
    async fn change_requests(
        &self,
        namespace: Option<&Namespace>,
        status: Option<ReviewStatus>,
        page: Page,
    ) -> Result<(Vec<ChangeRequestRecord>, u64)>;
    /// A request's timeline, oldest first.
    async fn review_events(&self, id: i64) -> Result<Vec<ReviewEventRecord>>;
    /// One event, by its id (what a webhook delivery of it refers to).
    async fn review_event(&self, event_id: i64) -> Result<Option<ReviewEventRecord>>;
    /// Moves a request from `step.from` to `step.to`; `None` (nothing written) when
    /// there is no such request or it is no longer in `step.from`.
    async fn step_change_request(&self, step: &ReviewStep) -> Result<Option<ChangeRequestRecord>>;
}

/// Console sessions, shared by the nodes so that a logout on one ends it on all.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &SessionRecord) -> Result<()>;
    /// The session with this id digest, expired or not.
    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>>;
    /// Ends a session; ending one that does not exist is not an error.
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Forgets sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64>;
}

/// Everything a Cairn node needs from its database.
/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, in the data directory: one node.
    Sqlite,
    /// Shared by the nodes of a cluster.
    Postgres,
    /// MySQL or MariaDB, shared by the nodes of a cluster.
    MySql,
}

impl Backend {
    /// The name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    /// Whether several nodes can share it.
    pub fn is_shared(self) -> bool {
        self != Backend::Sqlite
    }
}

#[async_trait]
pub trait Store:
    NamespaceStore
    + ConfigStore
    + UserStore
    + ClusterStore
    + AccessKeyStore
    + SessionStore
    + GrantStore
    + AuditStore
    + TokenStore
    + SchemaStore
    + WebhookStore
    + ReviewStore
    + Send
    + Sync
    + 'static
{
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;
    /// Which engine this is.
    fn backend(&self) -> Backend;
    /// A push signal for changes made by other nodes, where the backend has one.
    async fn change_signal(&self) -> Result<Option<Box<dyn ChangeSignal>>>;
    /// One pass storing every sealed value (contents, history, gray releases, secrets)
    /// under the configured key: data keys the previous key wrapped are re-wrapped,
    /// values written before a key was configured are sealed. Fails without a key.
    async fn reseal(&self) -> Result<ResealReport>;
    /// Closes the connections, waiting for those in use.
    async fn close(&self);
}

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL {0:?}; expected sqlite://PATH, postgres://… or mysql://…")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the store a URL names: `postgres://…` / `postgresql://…`, `mysql://…` /
/// `mariadb://…`, or `sqlite://PATH`. Without a URL, SQLite in `data_dir/cairn.db`.
pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, OpenError> {
    open_sealed(url, data_dir, None).await
}

/// As [`open`], sealing contents at rest with `sealer` when given.
pub async fn open_sealed(
    url: Option<&str>,
    data_dir: &Path,
    sealer: Option<Arc<Sealer>>,
) -> Result<Arc<dyn Store>, OpenError> {
    let Some(url) = url else {
        return Ok(Arc::new(
            SqlStore::sqlite(&data_dir.join("cairn.db"))
                .await?
                .with_sealer(sealer),
        ));
    };
    let scheme = url.split("://").next().unwrap_or_default();
    let store = match scheme {
        "postgres" | "postgresql" => SqlStore::postgres(url).await?,
        "mysql" | "mariadb" => SqlStore::mysql(url).await?,
        "sqlite" => {
            let path = url.trim_start_matches("sqlite://");
            SqlStore::sqlite(Path::new(path)).await?
        }
        _ => return Err(OpenError::UnsupportedUrl(redact_url(url))),
    };
    Ok(Arc::new(store.with_sealer(sealer)))
}

/// A database URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
