//! The embedded SQLite backend: zero set-up, one file under the data directory.
//!
//! Writes go through a single-connection pool so they never contend for SQLite's one
//! write lock; reads use a separate pool and, thanks to WAL, never wait for a write.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::sql::{sql_backend, Dialect};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const NOW: &str = "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

const DIALECT: Dialect = Dialect {
    numbered: false,
    returning: true,
    // One writer connection already serializes writes.
    write_lock: None,
    notify: None,
    now_ms: NOW,
};

/// A Cairn store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    dialect: Dialect,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the write is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            dialect: DIALECT,
        })
    }

    /// One process owns the file, so no other node can signal changes.
    async fn listen(&self) -> Result<Option<Box<dyn crate::ChangeSignal>>> {
        Ok(None)
    }
}

sql_backend!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, Sqlite);
