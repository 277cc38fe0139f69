//! The PostgreSQL backend, for production and for clusters of nodes sharing one
//! database. Other nodes are woken by `LISTEN/NOTIFY` as soon as a write commits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::Executor as _;

use crate::sql::{Dialect, SignalSource, SqlStore};
use crate::{Backend, ChangeSignal, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel every write notifies on commit.
const CHANNEL: &str = "cairn_changes";

const NOW: &str = "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A write transaction's opening: the write lock, and the notification other nodes
/// wake on, sent by the database when (and only if) the transaction commits.
const BEGIN_NOTIFYING: &str =
    "BEGIN; SELECT id FROM write_lock WHERE id = 1 FOR UPDATE; NOTIFY cairn_changes";

/// The same, for an engine without `NOTIFY`.
const BEGIN_QUIET: &str = "BEGIN; SELECT id FROM write_lock WHERE id = 1 FOR UPDATE";

const DIALECT: Dialect = Dialect {
    numbered: true,
    returning: true,
    begin_write: Some(BEGIN_NOTIFYING),
    now_ms: NOW,
    replace_configs: crate::sql::ON_CONFLICT_REPLACE,
};

impl SqlStore {
    /// Connects to a PostgreSQL database and runs pending migrations.
    pub async fn postgres(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = crate::sql::pool_options()
            .max_connections(16)
            // While the database is away, writes fail fast with a clear 503 instead of
            // hanging for sqlx's default 30 s.
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // A node that stalls inside a write transaction must not hold the
                    // cluster's write lock for long, and a writer must not queue forever.
                    conn.execute(
                        "SET lock_timeout = '5s'; \
                         SET idle_in_transaction_session_timeout = '10s'; \
                         SET statement_timeout = '60s'",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let mut dialect = DIALECT;
        let mut signal: Option<Arc<dyn SignalSource>> = Some(Arc::new(Listen(url.to_owned())));
        // Some PostgreSQL-protocol engines (distributed ones among them) have no
        // NOTIFY: there, writes send none and other nodes poll the change log, which is
        // the truth either way.
        if let Err(e) = pool.execute("NOTIFY cairn_changes").await {
            // Only "not supported" (0A000) or "no such statement" (42601) mean that; any
            // other failure is passing, and NOTIFY stays.
            let unsupported = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| code == "0A000" || code == "42601");
            if unsupported {
                tracing::warn!(error = %e, "this database has no NOTIFY; nodes will poll the change log every sync_poll_ms");
                dialect.begin_write = Some(BEGIN_QUIET);
                signal = None;
            }
        }
        Ok(Self {
            reader: pool.clone(),
            writer: pool,
            dialect,
            backend: Backend::Postgres,
            signal,
            sealer: None,
            committer: Arc::default(),
        })
    }
}

/// Opens `LISTEN` connections to the database at this URL.
struct Listen(String);

#[async_trait]
impl SignalSource for Listen {
    async fn open(&self) -> Result<Box<dyn ChangeSignal>> {
        let mut listener = PgListener::connect(&self.0).await?;
        listener.listen(CHANNEL).await?;
        Ok(Box::new(Signal(listener)))
    }
}

struct Signal(PgListener);

#[async_trait]
impl ChangeSignal for Signal {
    async fn wait(&mut self) -> Result<()> {
        self.0.recv().await?;
        Ok(())
    }
}
