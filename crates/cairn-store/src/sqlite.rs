//! The embedded SQLite backend: zero set-up, one file under the data directory.
//!
//! Writes go through a single-connection pool so they never contend for SQLite's one
//! write lock; reads use a separate pool and, thanks to WAL, never wait for a write.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{ConnectOptions as _, Executor as _};

use crate::sql::{Dialect, SqlStore};
use crate::{Backend, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const NOW: &str = "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

const DIALECT: Dialect = Dialect {
    numbered: false,
    returning: true,
    // One writer connection already serializes writes.
    begin_write: None,
    begin_publish: None,
    notify_published: None,
    settle: None,
    lock_rows: false,
    now_ms: NOW,
    replace_configs: crate::sql::ON_CONFLICT_REPLACE,
    take_seqs: None,
};

/// What every connection sets: a commit is on disk before the write is acknowledged
/// (FULL), foreign keys hold, and a connection waits for a busy file instead of
/// failing at once. The URL the shared driver opens by cannot carry these.
const PRAGMAS: &str =
    "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000";

impl SqlStore {
    /// Opens (creating if needed) the SQLite database file at `path` and runs pending
    /// migrations.
    pub async fn sqlite(path: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        // Password hashes and every config live in this file: owner only, whatever
        // the umask. SQLite gives its -wal and -shm files the same mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let named = |e: std::io::Error| {
                sqlx::Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ))
            };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(named)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(named)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL is a property of the file: set once here, kept by every connection.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let setup = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&setup).await?;
        setup.close().await;

        let at = |mode: &str| -> Result<AnyConnectOptions> {
            let mut url = SqliteConnectOptions::new().filename(path).to_url_lossy();
            url.query_pairs_mut().clear().append_pair("mode", mode);
            Ok(AnyConnectOptions::from_url(&url)?)
        };
        let writer = crate::sql::pool_options()
            .max_connections(1)
            .after_connect(|conn, _| Box::pin(async move { conn.execute(PRAGMAS).await.map(drop) }))
            .connect_with(at("rw")?)
            .await?;
        let reader = crate::sql::pool_options()
            .max_connections(4)
            .after_connect(|conn, _| Box::pin(async move { conn.execute(PRAGMAS).await.map(drop) }))
            .connect_with(at("ro")?)
            .await?;
        Ok(Self {
            writer,
            reader,
            dialect: DIALECT,
            backend: Backend::Sqlite,
            // One process owns the file, so no other node can signal changes.
            signal: None,
            sealer: None,
            committer: std::sync::Arc::default(),
        })
    }
}
