//! The MySQL / MariaDB backend, for production and for clusters of nodes sharing one
//! database. MySQL has no push notification, so other nodes poll the change log.

use std::time::Duration;

use sqlx::Executor as _;

use crate::sql::{Dialect, SqlStore};
use crate::{Backend, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

const NOW: &str = "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// MariaDB has no `ON CONFLICT`; `VALUES(column)` is the row the insert proposed.
const REPLACE_CONFIGS: &str = " ON DUPLICATE KEY UPDATE content = VALUES(content), \
     format = VALUES(format), md5 = VALUES(md5), revision = VALUES(revision), \
     description = VALUES(description), tags = VALUES(tags), updated_by = VALUES(updated_by), \
     updated_at = VALUES(updated_at), created_by = VALUES(created_by), \
     created_at = VALUES(created_at), marked_sensitive = VALUES(marked_sensitive)";

/// Every write but a publish holds the write-lock row alone; publishes share it.
/// InnoDB queues a shared request behind a waiting exclusive one, so a write waiting to
/// hold it alone is not starved by overlapping publishes.
const BEGIN_ALONE: &str = "BEGIN; SELECT id FROM write_lock WHERE id = 1 FOR UPDATE";

const DIALECT: Dialect = Dialect {
    numbered: false,
    returning: false,
    begin_write: Some(BEGIN_ALONE),
    begin_publish: Some("BEGIN; SELECT id FROM write_lock WHERE id = 1 LOCK IN SHARE MODE"),
    notify_published: None,
    settle: Some(BEGIN_ALONE),
    lock_rows: true,
    now_ms: NOW,
    replace_configs: REPLACE_CONFIGS,
    take_seqs: None,
};

/// Whether a server of this `VERSION()` speaks `INSERT … RETURNING`: MariaDB from 10.5.
fn returns_inserted(version: &str) -> bool {
    let mut numbers = version.split(['.', '-']).map(|n| n.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (numbers.next(), numbers.next()) else {
        return false;
    };
    version.contains("MariaDB") && (major, minor) >= (10, 5)
}

impl SqlStore {
    /// Connects to a MySQL or MariaDB database and runs pending migrations.
    pub async fn mysql(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = crate::sql::pool_options()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Each statement sees what committed before it, as on PostgreSQL;
                    // InnoDB's default snapshot would hide commits made while a write
                    // waited for the write lock.
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    // A writer queued behind a stalled one gives up after 5 s (503).
                    conn.execute("SET SESSION innodb_lock_wait_timeout = 5")
                        .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        // MariaDB (10.5 on) returns what an insert took, which saves a round trip or
        // two on every write that appends to the change log; MySQL does not.
        let version: String = sqlx::query_scalar::<sqlx::Any, String>("SELECT VERSION()")
            .fetch_one(&pool)
            .await?;
        let dialect = Dialect {
            returning: returns_inserted(&version),
            ..DIALECT
        };
        Ok(Self {
            reader: pool.clone(),
            writer: pool,
            dialect,
            backend: Backend::MySql,
            signal: None,
            sealer: None,
            committer: std::sync::Arc::default(),
        })
    }

    /// This store as it runs on MySQL proper, which cannot return what an insert took,
    /// whatever the server: so that a MariaDB server also tests MySQL's way.
    pub fn as_on_mysql(mut self) -> Self {
        self.dialect.returning = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::returns_inserted;

    #[test]
    fn only_mariadb_from_10_5_returns_what_it_inserted() {
        assert!(returns_inserted("10.11.19-MariaDB-0+deb12u1"));
        assert!(returns_inserted("11.4.2-MariaDB"));
        assert!(!returns_inserted("10.4.34-MariaDB"));
        assert!(!returns_inserted("8.0.36"));
        assert!(!returns_inserted("8.4.0-log"));
    }
}
