//! Cairn's storage boundary. The server talks to storage only through the traits here;
//! each backend implements them with its own SQL and its own versioned migrations, and
//! one conformance suite (`tests/store.rs`) runs unchanged against every backend.

mod model;
mod sqlite;

pub use model::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use cairn_core::{ConfigKey, Namespace, Username};

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
    #[error("config {key} changed: expected md5 {expected:?}, current {current:?}")]
    CasMismatch {
        key: ConfigKey,
        expected: Option<String>,
        current: Option<String>,
    },
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("user {0} does not exist")]
    UserNotFound(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
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
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Protocol(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            // SQLite: busy past the busy timeout, locked, disk full, I/O error.
            StoreError::Database(sqlx::Error::Database(e)) => matches!(
                e.code().as_deref(),
                Some("5" | "6" | "10" | "13" | "261" | "517")
            ),
            _ => false,
        }
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
    async fn update_namespace(&self, name: &Namespace, description: &str) -> Result<()>;
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
    /// Deletes a config; returns the change that recorded it.
    async fn delete_config(&self, delete: &ConfigDelete) -> Result<ChangeRecord>;
    /// A page of a config's history, newest first, and the total number of entries.
    async fn history(&self, key: &ConfigKey, page: Page) -> Result<(Vec<HistoryRecord>, u64)>;
    /// One historical version of a config.
    async fn history_entry(&self, key: &ConfigKey, revision: i64) -> Result<Option<HistoryRecord>>;
    /// Change-log entries after `seq`, oldest first, at most `limit`.
    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<ChangeRecord>>;
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
    async fn delete_user(&self, username: &Username) -> Result<()>;
}

/// Everything a Cairn node needs from its database.
#[async_trait]
pub trait Store: NamespaceStore + ConfigStore + UserStore + Send + Sync + 'static {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;
    /// The backend's name, for logs and metrics.
    fn backend(&self) -> &'static str;
}
