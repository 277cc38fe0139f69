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

/// The key of the advisory lock every write takes (it spells "cairn"): publishes share
/// it, every other write holds it alone. Advisory locks queue fairly, so a write waiting
/// to hold it alone is not starved by publishes that keep overlapping; a shared row lock
/// would let each new publish in ahead of it.
macro_rules! write_lock {
    () => {
        "426836062830"
    };
}

/// The write lock taken shared, as publishes take it.
macro_rules! share_write_lock {
    () => {
        concat!("SELECT pg_advisory_xact_lock_shared(", write_lock!(), ")")
    };
}

/// A write transaction's opening: the write lock held alone, and the notification
/// other nodes wake on, sent by the database when (and only if) the transaction
/// commits.
const BEGIN_NOTIFYING: &str = concat!(
    "BEGIN; SELECT pg_advisory_xact_lock(",
    write_lock!(),
    "); NOTIFY cairn_changes"
);

/// The write lock held alone without a notification: for engines without `NOTIFY`,
/// and for waiting out the publishes in flight.
const BEGIN_QUIET: &str = concat!("BEGIN; SELECT pg_advisory_xact_lock(", write_lock!(), ")");

/// A transaction of publishes' opening: the write lock shared. It sends no
/// notification: PostgreSQL commits notifying transactions one at a time (a
/// database-wide lock held through the commit's flush, so notifications queue in commit
/// order), which would line overlapping publishes up again at their commits.
const BEGIN_PUBLISHING: &str = concat!("BEGIN; ", share_write_lock!());

/// What wakes other nodes once publishes have committed: a transaction of its own,
/// which need not wait for its flush (a lost notification only delays other nodes
/// until their next poll of the log).
const NOTIFY_COMMITTED: &str =
    "BEGIN; SET LOCAL synchronous_commit TO off; NOTIFY cairn_changes; COMMIT";

/// For an engine without advisory locks: every write holds the write-lock row alone,
/// publishes too, so no two writes overlap.
const BEGIN_ROW_LOCKED: &str = "BEGIN; SELECT id FROM write_lock WHERE id = 1 FOR UPDATE";

/// The same, notifying.
const BEGIN_ROW_LOCKED_NOTIFYING: &str =
    "BEGIN; SELECT id FROM write_lock WHERE id = 1 FOR UPDATE; NOTIFY cairn_changes";

/// A group's change-log sequences, taken before its one writing statement.
const TAKE_SEQS: &str =
    "SELECT nextval(pg_get_serial_sequence('change_log', 'seq')) FROM generate_series(1, ?)";

/// Whether this role may take [`TAKE_SEQS`].
const TAKE_SEQS_ALLOWED: &str =
    "SELECT has_sequence_privilege(pg_get_serial_sequence('change_log', 'seq'), 'USAGE')";

const DIALECT: Dialect = Dialect {
    numbered: true,
    returning: true,
    begin_write: Some(BEGIN_NOTIFYING),
    begin_publish: Some(BEGIN_PUBLISHING),
    notify_published: Some(NOTIFY_COMMITTED),
    settle: Some(BEGIN_QUIET),
    lock_rows: true,
    now_ms: NOW,
    replace_configs: crate::sql::ON_CONFLICT_REPLACE,
    take_seqs: Some(TAKE_SEQS),
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
        // NOTIFY, or no advisory locks: there, writes send no notification and other
        // nodes poll the change log, which is the truth either way; and every write
        // holds the write-lock row alone.
        let quiet = unsupported(pool.execute("NOTIFY cairn_changes").await);
        if quiet {
            tracing::warn!(
                "this database has no NOTIFY; nodes will poll the change log every sync_poll_ms"
            );
            dialect.begin_write = Some(BEGIN_QUIET);
            dialect.notify_published = None;
            signal = None;
        }
        if unsupported(pool.execute(share_write_lock!()).await) {
            tracing::warn!("this database has no advisory locks; publishes will not overlap");
            dialect.begin_write = Some(if quiet {
                BEGIN_ROW_LOCKED
            } else {
                BEGIN_ROW_LOCKED_NOTIFYING
            });
            // Publishes open as every other write does, notification included.
            dialect.begin_publish = None;
            dialect.notify_published = None;
            dialect.settle = None;
            // Nor, most likely, several changes of one table in a statement.
            dialect.take_seqs = None;
        }
        // Taking sequences by hand needs a privilege on the sequence that inserting
        // into the table does not (a role granted the tables only).
        let may_take: std::result::Result<bool, _> =
            sqlx::query_scalar::<sqlx::Any, bool>(TAKE_SEQS_ALLOWED)
                .fetch_one(&pool)
                .await;
        if !matches!(may_take, Ok(true)) {
            tracing::debug!("change-log sequences are taken by each insert");
            dialect.take_seqs = None;
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

/// Whether a statement failed because the engine does not have what it asked for:
/// "not supported" (0A000), "no such statement" (42601) or "no such function" (42883).
/// Any other failure is passing, and the feature is taken to be there.
fn unsupported<T>(done: std::result::Result<T, sqlx::Error>) -> bool {
    let Err(e) = done else { return false };
    let missing = e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| matches!(&*code, "0A000" | "42601" | "42883"));
    if missing {
        tracing::debug!(error = %e, "not supported by this database");
    }
    missing
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
    async fn wait(&mut self) -> Result<usize> {
        self.0.recv().await?;
        // Notifications that came in together wake one pass over the log, not one
        // each: under a stream of publishes from several nodes, a pass per commit
        // would cost the database more than the publishes.
        let mut taken = 1;
        while self.0.next_buffered().is_some() {
            taken += 1;
        }
        Ok(taken)
    }
}
