//! The one SQL store every backend shares. Statements are written once, with `?`
//! placeholders, and run through sqlx's `Any` driver; backends differ only in how they
//! connect, in their [`Dialect`] (placeholders, how an insert reports its id, how
//! writers are serialized, how other nodes are woken) and in their migrations.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use std::str::FromStr as _;

use async_trait::async_trait;
use cairn_core::{ConfigKey, Format, GrayRules, Namespace, Revision, Username};
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::{Any, Row as _, Transaction};
use tracing::instrument;

use crate::model::{join_tags, split_tags};
use crate::{
    AccessKeyRecord, AccessKeyStore, Audit, Backend, ChangeRecord, ChangeSignal, ClusterStore,
    ConfigDelete, ConfigRecord, ConfigStore, ConfigWrite, Expect, GrayRecord, GrayWrite,
    HistoryRecord, NamespaceLimits, NamespaceRecord, NamespaceStore, NodeRecord, Op, Page, Result,
    SessionRecord, SessionStore, Store, StoreError, UserRecord, UserStore,
};
use crate::{
    AuditQuery, AuditRecord, AuditStore, GrantRecord, GrantStore, NamespaceUpdate, RoleMember,
    Subject, TokenRecord, TokenStore,
};
use cairn_core::grant::{Level, Scope};
use cairn_core::RoleName;

/// What varies between SQL engines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// `$1, $2, …` placeholders (PostgreSQL) instead of `?`.
    pub numbered: bool,
    /// `INSERT … RETURNING` is available; otherwise `LAST_INSERT_ID()` is read.
    pub returning: bool,
    /// What opens every write transaction but a publish's, in the one round trip
    /// (`None`: a plain `BEGIN`). It takes the write lock alone, so such a write runs
    /// while no other write does and its change-log sequences commit in the order they
    /// were taken. Where other nodes are woken by a notification, it queues that too:
    /// one is delivered only if the transaction commits.
    pub begin_write: Option<&'static str>,
    /// What opens a transaction of publishes (`None`: as [`Self::begin_write`]). It
    /// shares the write lock with other publishes, on this node and others, so their
    /// transactions overlap; each locks its configs' rows before it takes sequences, so
    /// one config's changes still commit in order, but across configs a lower sequence
    /// may commit after a higher one. Tailers wait for such a gap to fill, and settle
    /// one that stays with [`Self::settle`].
    pub begin_publish: Option<&'static str>,
    /// What wakes other nodes once a transaction of publishes has committed, where its
    /// opening does not (`None`: nothing to send).
    pub notify_published: Option<&'static str>,
    /// What opens a transaction that waits until no publish is in flight: the write
    /// lock alone, without a notification. `None` where publishes never overlap (a
    /// gap in the log is then always a rolled-back transaction).
    pub settle: Option<&'static str>,
    /// Rows can be locked as they are read (`FOR UPDATE`).
    pub lock_rows: bool,
    /// A query for the database's current time in Unix milliseconds, as a BIGINT.
    pub now_ms: &'static str,
    /// What turns an insert into `configs` into a replace of the rows that exist (every
    /// column but the key), so a group's updates go in one statement.
    pub replace_configs: &'static str,
    /// A query taking `?` change-log sequences, where a group of publishes may take
    /// them first and then write every table in one statement (`None`: a statement
    /// per table, the change log's insert taking the sequences).
    pub take_seqs: Option<&'static str>,
}

/// [`Dialect::replace_configs`] where `ON CONFLICT` is spoken (PostgreSQL, SQLite).
pub(crate) const ON_CONFLICT_REPLACE: &str =
    " ON CONFLICT (namespace, grp, data_id) DO UPDATE SET \
     content = excluded.content, format = excluded.format, md5 = excluded.md5, \
     revision = excluded.revision, description = excluded.description, tags = excluded.tags, \
     updated_by = excluded.updated_by, updated_at = excluded.updated_at, \
     created_by = excluded.created_by, created_at = excluded.created_at, \
     marked_sensitive = excluded.marked_sensitive";

impl Dialect {
    /// The statement in this dialect's placeholder syntax; statements are written with
    /// `?`. The numbered form of each statement is made once per process and kept (the
    /// statements are a fixed set of literals), not rewritten on every call.
    pub fn sql(self, text: &'static str) -> &'static str {
        if !self.numbered {
            return text;
        }
        type Rendered = RwLock<HashMap<(usize, usize), &'static str>>;
        static RENDERED: OnceLock<Rendered> = OnceLock::new();
        let rendered = RENDERED.get_or_init(Rendered::default);
        let id = (text.as_ptr() as usize, text.len());
        if let Some(done) = rendered.read().expect("statement cache poisoned").get(&id) {
            return done;
        }
        let mut cache = rendered.write().expect("statement cache poisoned");
        cache
            .entry(id)
            .or_insert_with(|| Box::leak(numbered(text).into_boxed_str()))
    }
}

/// `text` with its `?` placeholders numbered `$1, $2, …`.
fn numbered(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    for ch in text.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// A config's stored state as a write transaction reads it.
pub(crate) struct Current {
    pub md5: String,
    pub created_by: String,
    pub created_at: i64,
    pub format: cairn_core::Format,
    pub description: String,
    pub tags: Vec<String>,
    pub sensitive: bool,
}

impl Current {
    /// Read from a row holding the columns `current_columns!` names.
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Current {
            md5: text(row, "md5")?,
            created_by: text(row, "created_by")?,
            created_at: row.try_get::<i64, _>("created_at")?,
            format: parse_format(row)?,
            description: text(row, "description")?,
            tags: split_tags(&text(row, "tags")?),
            sensitive: row.try_get::<i32, _>("marked_sensitive")? != 0,
        })
    }
}

/// The head of an insert into `configs`, its values bound by [`SqlStore::bind_config`].
macro_rules! insert_config {
    () => {
        "INSERT INTO configs (content, format, md5, revision, description, tags, \
         updated_by, updated_at, created_by, created_at, marked_sensitive, namespace, grp, \
         data_id) VALUES "
    };
}
pub(crate) use insert_config;

/// An update of one config, its values bound by [`SqlStore::bind_config`].
pub(crate) const UPDATE_CONFIG: &str = "UPDATE configs SET content = ?, format = ?, md5 = ?, \
     revision = ?, description = ?, tags = ?, updated_by = ?, updated_at = ?, \
     created_by = ?, created_at = ?, marked_sensitive = ? \
     WHERE namespace = ? AND grp = ? AND data_id = ?";

/// The head of an insert into `history`, its values bound by [`SqlStore::bind_history`].
macro_rules! insert_history {
    () => {
        "INSERT INTO history (revision, namespace, grp, data_id, op, content, format, \
         md5, description, tags, operator, source, comment, created_at, marked_sensitive, \
         surface, emergency) VALUES "
    };
}
pub(crate) use insert_history;

/// The head of an insert into `audit_log`, its values bound by [`bind_audit`].
macro_rules! insert_audit {
    () => {
        "INSERT INTO audit_log (at, actor, source, surface, action, namespace, target, \
         result, md5_before, md5_after, detail) VALUES "
    };
}
pub(crate) use insert_audit;

/// The head of an insert into `change_log`.
macro_rules! insert_change {
    () => {
        "INSERT INTO change_log (namespace, grp, data_id, op, md5, created_at) VALUES "
    };
}
pub(crate) use insert_change;

/// The head of an insert into `change_log` of sequences taken already
/// ([`Dialect::take_seqs`]).
macro_rules! insert_change_at {
    () => {
        "INSERT INTO change_log (seq, namespace, grp, data_id, op, md5, created_at) \
         OVERRIDING SYSTEM VALUE VALUES "
    };
}
pub(crate) use insert_change_at;

/// The columns [`Current::from_row`] reads, for `concat!` into statements.
macro_rules! current_columns {
    () => {
        "md5, created_by, created_at, format, description, tags, marked_sensitive"
    };
}
pub(crate) use current_columns;

/// What a write stores, once the stored state it replaces is known: the fields the
/// write leaves out are kept from `current`.
pub(crate) struct Planned {
    pub format: Format,
    pub description: String,
    pub tags: Vec<String>,
    pub sensitive: bool,
    pub created_by: String,
    pub created_at: i64,
}

impl Planned {
    /// Checks `write` against `current` (its expectation and the format it was
    /// validated as) and resolves what it keeps.
    pub(crate) fn new(write: &ConfigWrite, current: Option<&Current>) -> Result<Self> {
        let key = &write.key;
        expect_holds(key, &write.expect, current)?;
        let format = write
            .format
            .or(current.map(|c| c.format))
            .unwrap_or(write.default_format);
        if write.validated_as.is_some_and(|v| v != format) {
            return Err(StoreError::Conflict(format!(
                "the format of {key} changed to {format} meanwhile; publish again"
            )));
        }
        let (created_by, created_at) = match current {
            Some(c) => (c.created_by.clone(), c.created_at),
            None => (write.audit.operator.clone(), write.audit.at),
        };
        Ok(Planned {
            format,
            description: write
                .description
                .clone()
                .or_else(|| current.map(|c| c.description.clone()))
                .unwrap_or_default(),
            tags: write
                .tags
                .clone()
                .or_else(|| current.map(|c| c.tags.clone()))
                .unwrap_or_default(),
            sensitive: write
                .sensitive
                .or(current.map(|c| c.sensitive))
                .unwrap_or(false),
            created_by,
            created_at,
        })
    }

    /// The config as `write` leaves it at `revision`.
    pub(crate) fn record(self, write: &ConfigWrite, revision: Revision) -> ConfigRecord {
        ConfigRecord {
            key: write.key.clone(),
            content: write.content.clone(),
            format: self.format,
            md5: write.md5.clone(),
            revision,
            description: self.description,
            tags: self.tags,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_by: write.audit.operator.clone(),
            updated_at: write.audit.at,
            sensitive: self.sensitive,
        }
    }
}

/// Refuses a write whose expectation the stored state of `key` does not meet.
fn expect_holds(key: &ConfigKey, expect: &Expect, current: Option<&Current>) -> Result<()> {
    if expect.allows(current.map(|c| c.md5.as_str())) {
        return Ok(());
    }
    Err(StoreError::CasMismatch {
        key: key.clone(),
        expected: expect.md5().map(str::to_owned),
        current: current.map(|c| c.md5.clone()),
    })
}

/// The audit entry of an act by `audit`'s operator that went through.
pub(crate) fn act_audit(
    audit: &Audit,
    action: String,
    namespace: &str,
    target: String,
    md5_before: Option<String>,
    md5_after: Option<String>,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: audit.at,
        actor: audit.operator.clone(),
        source: audit.source.clone(),
        surface: audit.surface.clone(),
        action,
        namespace: namespace.to_owned(),
        target,
        result: "ok".to_owned(),
        md5_before,
        md5_after,
        detail: audit.comment.clone(),
    }
}

/// The audit entry a change of `key` commits with.
pub(crate) fn change_audit(
    key: &ConfigKey,
    op: Op,
    md5: &str,
    audit: &Audit,
    before: Option<&str>,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: audit.at,
        actor: audit.operator.clone(),
        source: audit.source.clone(),
        surface: audit.surface.clone(),
        // An emergency release is its own action, so the audit log can be filtered
        // for them.
        action: if audit.emergency {
            format!("{}.emergency", op.audit_action())
        } else {
            op.audit_action().to_owned()
        },
        namespace: key.namespace.to_string(),
        target: key.to_string(),
        result: "ok".to_owned(),
        md5_before: before.map(str::to_owned),
        md5_after: (!md5.is_empty()).then(|| md5.to_owned()),
        detail: audit.comment.clone(),
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// A text column. MySQL reports columns with a binary (case-sensitive) collation
/// as binary, so text is read as bytes there and checked as UTF-8.
pub(crate) fn text<I>(row: &AnyRow, column: I) -> Result<String>
where
    I: sqlx::ColumnIndex<AnyRow> + Copy + std::fmt::Display,
{
    let bytes: Vec<u8> = match row.try_get::<String, _>(column) {
        Ok(text) => return Ok(text),
        Err(sqlx::Error::ColumnDecode { .. }) => row.try_get(column)?,
        Err(e) => return Err(e.into()),
    };
    String::from_utf8(bytes)
        .map_err(|e| StoreError::Corrupt(format!("column {column} is not UTF-8: {e}")))
}

/// The revision column, which only ever holds change-log sequences.
fn revision(row: &AnyRow) -> Result<Revision> {
    let n: i64 = row.try_get("revision")?;
    Revision::new(n).ok_or_else(|| StoreError::Corrupt(format!("revision {n} is not positive")))
}

/// Opens a signal connection for [`Store::change_signal`]; only PostgreSQL has one.
#[async_trait]
pub(crate) trait SignalSource: Send + Sync {
    async fn open(&self) -> Result<Box<dyn ChangeSignal>>;
}

/// How long a connection may sit idle and still be used without a test.
pub(crate) const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

/// A pool's options as every backend starts them. sqlx pings a connection when it goes
/// back to the pool; pinging it again when it is taken out doubles that round trip on
/// every transaction, so only a connection idle long enough to have been cut (a
/// restarted database, a proxy's timeout) is tested before use.
pub(crate) fn pool_options() -> sqlx::any::AnyPoolOptions {
    sqlx::any::AnyPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    use sqlx::Connection as _;
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// A Cairn store in a SQL database; made by [`SqlStore::sqlite`],
/// [`SqlStore::postgres`] or [`SqlStore::mysql`].
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) writer: AnyPool,
    pub(crate) reader: AnyPool,
    pub(crate) dialect: Dialect,
    pub(crate) backend: Backend,
    pub(crate) signal: Option<Arc<dyn SignalSource>>,
    /// Seals contents at rest when an encryption key is configured.
    pub(crate) sealer: Option<Arc<crate::Sealer>>,
    /// Groups concurrent publishes into shared transactions (`group.rs`).
    pub(crate) committer: Arc<OnceLock<crate::group::Committer>>,
}

/// What a sealed content is authenticated as: the kind of record and its config.
fn identity(kind: &str, key: &ConfigKey) -> String {
    format!("{kind}:{key}")
}

const CONFIG_COLUMNS: &str = "namespace, grp, data_id, content, format, md5, revision, \
     description, tags, created_by, created_at, updated_by, updated_at, marked_sensitive";

pub(crate) fn parse_key(row: &AnyRow) -> Result<ConfigKey> {
    let ns = text(row, "namespace")?;
    let group = text(row, "grp")?;
    let data_id = text(row, "data_id")?;
    ConfigKey::parse(&ns, &group, &data_id)
        .map_err(|e| StoreError::Corrupt(format!("config key {ns}/{group}/{data_id}: {e}")))
}

fn parse_format(row: &AnyRow) -> Result<Format> {
    let format = text(row, "format")?;
    Format::from_str(&format).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_op(row: &AnyRow) -> Result<Op> {
    let op = text(row, "op")?;
    Op::parse(&op).ok_or_else(|| StoreError::Corrupt(format!("unknown operation {op:?}")))
}

fn config_from_row(row: &AnyRow, sealer: Option<&crate::Sealer>) -> Result<ConfigRecord> {
    let key = parse_key(row)?;
    Ok(ConfigRecord {
        content: crate::seal::open(sealer, &identity("config", &key), text(row, "content")?)?,
        key,
        format: parse_format(row)?,
        md5: text(row, "md5")?,
        revision: revision(row)?,
        description: text(row, "description")?,
        tags: split_tags(&text(row, "tags")?),
        created_by: text(row, "created_by")?,
        created_at: row.try_get("created_at")?,
        updated_by: text(row, "updated_by")?,
        updated_at: row.try_get("updated_at")?,
        sensitive: row.try_get::<i32, _>("marked_sensitive")? != 0,
    })
}

fn history_from_row(row: &AnyRow, sealer: Option<&crate::Sealer>) -> Result<HistoryRecord> {
    let key = parse_key(row)?;
    Ok(HistoryRecord {
        revision: revision(row)?,
        op: parse_op(row)?,
        content: crate::seal::open(sealer, &identity("history", &key), text(row, "content")?)?,
        key,
        format: parse_format(row)?,
        md5: text(row, "md5")?,
        description: text(row, "description")?,
        tags: split_tags(&text(row, "tags")?),
        operator: text(row, "operator")?,
        source: text(row, "source")?,
        comment: text(row, "comment")?,
        created_at: row.try_get("created_at")?,
        sensitive: row.try_get::<i32, _>("marked_sensitive")? != 0,
        surface: text(row, "surface")?,
        emergency: row.try_get::<i32, _>("emergency")? != 0,
    })
}

/// A user name column.
fn username(row: &AnyRow, column: &str) -> Result<Username> {
    let name = text(row, column)?;
    Username::parse(&name).map_err(|e| StoreError::Corrupt(format!("user name {name:?}: {e}")))
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord> {
    Ok(UserRecord {
        username: username(row, "username")?,
        password_hash: text(row, "password_hash")?,
        role: {
            let role = text(row, "role")?;
            cairn_core::Role::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?
        },
        created_at: row.try_get("created_at")?,
        password_changed_at: row.try_get("password_changed_at")?,
    })
}

const GRAY_COLUMNS: &str = "namespace, grp, data_id, content, format, md5, revision, \
     ips, labels, created_by, created_at";

fn gray_from_row(row: &AnyRow, sealer: Option<&crate::Sealer>) -> Result<GrayRecord> {
    let key = parse_key(row)?;
    let rules = GrayRules::from_stored(&text(row, "ips")?, &text(row, "labels")?)
        .map_err(|e| StoreError::Corrupt(format!("gray rules of {key}: {e}")))?;
    Ok(GrayRecord {
        content: crate::seal::open(sealer, &identity("gray", &key), text(row, "content")?)?,
        key,
        format: parse_format(row)?,
        md5: text(row, "md5")?,
        revision: revision(row)?,
        rules,
        created_by: text(row, "created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The newest change-log sequence, or the pruned one when the log is empty.
async fn last_seq_on(conn: &mut sqlx::AnyConnection) -> Result<i64> {
    let seq: Option<i64> =
        sqlx::query_scalar::<Any, Option<i64>>("SELECT MAX(seq) FROM change_log")
            .fetch_one(&mut *conn)
            .await?;
    let pruned: i64 = sqlx::query_scalar::<Any, i64>("SELECT pruned_through FROM cluster_state")
        .fetch_one(&mut *conn)
        .await?;
    Ok(seq.unwrap_or(0).max(pruned))
}

fn node_from_row(row: &AnyRow) -> Result<NodeRecord> {
    Ok(NodeRecord {
        id: text(row, "id")?,
        address: text(row, "address")?,
        started_at: row.try_get("started_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        applied_seq: row.try_get("applied_seq")?,
        version: text(row, "version")?,
    })
}

impl SqlStore {
    /// Seals every content written from now on with `sealer`, and opens sealed ones.
    pub fn with_sealer(mut self, sealer: Option<Arc<crate::Sealer>>) -> Self {
        self.sealer = sealer;
        self
    }

    pub(crate) fn sql(&self, text: &'static str) -> &'static str {
        self.dialect.sql(text)
    }

    /// A statement put together at run time (from fixed pieces), in this dialect.
    pub(crate) fn sql_owned(&self, text: &str) -> String {
        if self.dialect.numbered {
            numbered(text)
        } else {
            text.to_owned()
        }
    }

    /// Opens a write transaction, queued behind any other writer.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.dialect.begin_write {
            Some(begin) => self.writer.begin_with(begin).await?,
            None => self.writer.begin().await?,
        })
    }

    /// Opens a transaction of publishes on a connection the caller holds, queued
    /// behind any write but other publishes ([`Dialect::begin_publish`]).
    pub(crate) async fn begin_publish_on<'c>(
        &self,
        conn: &'c mut sqlx::AnyConnection,
    ) -> Result<Transaction<'c, Any>> {
        use sqlx::Connection as _;
        Ok(
            match self.dialect.begin_publish.or(self.dialect.begin_write) {
                Some(begin) => conn.begin_with(begin).await?,
                None => conn.begin().await?,
            },
        )
    }

    /// The stored state of a config, as the write transaction sees it, its row locked
    /// until the transaction ends where the engine can: a publish beside it waits, so
    /// compare-and-set holds and one config's revisions commit in order.
    async fn current_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        key: &ConfigKey,
    ) -> Result<Option<Current>> {
        const SELECT: &str = concat!(
            "SELECT ",
            current_columns!(),
            " FROM configs WHERE namespace = ? AND grp = ? AND data_id = ?"
        );
        const LOCKING: &str = concat!(
            "SELECT ",
            current_columns!(),
            " FROM configs WHERE namespace = ? AND grp = ? AND data_id = ? FOR UPDATE"
        );
        let sql = self.sql(if self.dialect.lock_rows {
            LOCKING
        } else {
            SELECT
        });
        let row = sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(Current::from_row).transpose()
    }

    /// The stored state of a config, checked against `expect`.
    async fn check_expect(
        &self,
        tx: &mut Transaction<'_, Any>,
        key: &ConfigKey,
        expect: &Expect,
    ) -> Result<Option<Current>> {
        let current = self.current_in(tx, key).await?;
        expect_holds(key, expect, current.as_ref())?;
        Ok(current)
    }

    /// Takes the next change-log sequence for a change of `key`: the revision the
    /// change writes.
    async fn append_change(
        &self,
        tx: &mut Transaction<'_, Any>,
        key: &ConfigKey,
        op: Op,
        md5: &str,
        at: i64,
    ) -> Result<Revision> {
        let seq = if self.dialect.returning {
            let sql = self.sql(concat!(
                insert_change!(),
                "(?, ?, ?, ?, ?, ?) RETURNING seq"
            ));
            bind_change(sqlx::query(sql), key, op, md5, at)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?
        } else {
            let sql = self.sql(concat!(insert_change!(), "(?, ?, ?, ?, ?, ?)"));
            bind_change(sqlx::query(sql), key, op, md5, at)
                .execute(&mut **tx)
                .await?;
            // The id this connection just inserted, whatever other sessions did.
            sqlx::query_scalar::<Any, i64>("SELECT CAST(LAST_INSERT_ID() AS SIGNED)")
                .fetch_one(&mut **tx)
                .await?
        };
        Revision::new(seq).ok_or_else(|| {
            StoreError::Corrupt(format!("change-log sequence {seq} is not positive"))
        })
    }

    /// A publish or rollback inside an open write transaction.
    pub(crate) async fn put_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        write: &ConfigWrite,
    ) -> Result<ConfigRecord> {
        self.require_namespace(tx, &write.key.namespace).await?;
        self.put_in_namespace(tx, write).await
    }

    pub(crate) async fn require_namespace(
        &self,
        tx: &mut Transaction<'_, Any>,
        namespace: &cairn_core::Namespace,
    ) -> Result<()> {
        let sql = self.sql("SELECT COUNT(*) FROM namespaces WHERE name = ?");
        let ns_exists: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(namespace.as_str())
            .fetch_one(&mut **tx)
            .await?;
        if ns_exists == 0 {
            return Err(StoreError::NamespaceNotFound(namespace.to_string()));
        }
        Ok(())
    }

    /// `put_in` once the namespace is known to exist in this transaction.
    async fn put_in_namespace(
        &self,
        tx: &mut Transaction<'_, Any>,
        write: &ConfigWrite,
    ) -> Result<ConfigRecord> {
        let key = &write.key;
        let current = self.current_in(tx, key).await?;
        if current.is_some() || !self.dialect.lock_rows {
            return self.write_one(tx, write, current).await?.ok_or_else(|| {
                StoreError::CasMismatch {
                    key: key.clone(),
                    expected: None,
                    current: None,
                }
            });
        }
        // A config that is not there has no row to lock: a publish beside this one
        // may create it first, and this insert then fails once that commits. Behind a
        // savepoint, the write is then made again against what was created, locked
        // and read anew, with a sequence taken after the other's.
        crate::group::plain(tx, "SAVEPOINT creating").await?;
        if let Some(record) = self.write_one(tx, write, None).await? {
            crate::group::plain(tx, "RELEASE SAVEPOINT creating").await?;
            return Ok(record);
        }
        crate::group::plain(tx, "ROLLBACK TO SAVEPOINT creating").await?;
        let current = self.current_in(tx, key).await?;
        self.write_one(tx, write, current).await?.ok_or_else(|| {
            StoreError::Conflict(format!(
                "{key} was created and removed meanwhile; try again"
            ))
        })
    }

    /// Writes `write` over `current` (as read, and locked, in this transaction):
    /// `None` when it meant to create the config and another write created it first.
    async fn write_one(
        &self,
        tx: &mut Transaction<'_, Any>,
        write: &ConfigWrite,
        current: Option<Current>,
    ) -> Result<Option<ConfigRecord>> {
        let key = &write.key;
        let at = write.audit.at;
        let planned = Planned::new(write, current.as_ref())?;
        let revision = self
            .append_change(tx, key, write.op, &write.md5, at)
            .await?;
        let sql = self.sql(if current.is_some() {
            UPDATE_CONFIG
        } else {
            concat!(
                insert_config!(),
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
        });
        let done = self
            .bind_config(sqlx::query::<Any>(sql), write, revision, &planned)?
            .execute(&mut **tx)
            .await;
        if let Err(e) = &done {
            if is_unique_violation(e) {
                return Ok(None);
            }
        }
        done?;
        self.append_history(
            tx,
            revision,
            key,
            write.op,
            &write.content,
            planned.format,
            &write.md5,
            &planned.description,
            &planned.tags,
            &write.audit,
            current.as_ref().map(|c| c.md5.as_str()),
            planned.sensitive,
        )
        .await?;
        Ok(Some(planned.record(write, revision)))
    }

    /// Binds a config row's values in the order the configs statements name them:
    /// content, format, md5, revision, description, tags, updated_by, updated_at,
    /// created_by, created_at, marked_sensitive, namespace, grp, data_id.
    pub(crate) fn bind_config<'q>(
        &self,
        query: Query<'q>,
        write: &'q ConfigWrite,
        revision: Revision,
        planned: &Planned,
    ) -> Result<Query<'q>> {
        let key = &write.key;
        let stored = crate::seal::seal(
            self.sealer.as_deref(),
            &identity("config", key),
            &write.content,
        )?;
        Ok(query
            .bind(stored)
            .bind(planned.format.as_str())
            .bind(&write.md5)
            .bind(revision.get())
            .bind(planned.description.clone())
            .bind(join_tags(&planned.tags))
            .bind(&write.audit.operator)
            .bind(write.audit.at)
            .bind(planned.created_by.clone())
            .bind(planned.created_at)
            .bind(i32::from(planned.sensitive))
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str()))
    }

    /// A config's gray release, read through `executor` (a pool or an open
    /// transaction).
    async fn select_gray<'e, E>(&self, executor: E, key: &ConfigKey) -> Result<Option<GrayRecord>>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let sql = self.sql(
            "SELECT namespace, grp, data_id, content, format, md5, revision, ips, \
             labels, created_by, created_at FROM gray_releases \
             WHERE namespace = ? AND grp = ? AND data_id = ?",
        );
        let row = sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .fetch_optional(executor)
            .await?;
        row.as_ref()
            .map(|r| gray_from_row(r, self.sealer.as_deref()))
            .transpose()
    }

    async fn gray_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        key: &ConfigKey,
    ) -> Result<Option<GrayRecord>> {
        self.select_gray(&mut **tx, key).await
    }

    async fn drop_gray(&self, tx: &mut Transaction<'_, Any>, key: &ConfigKey) -> Result<u64> {
        let sql =
            self.sql("DELETE FROM gray_releases WHERE namespace = ? AND grp = ? AND data_id = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected())
    }

    #[allow(clippy::too_many_arguments)]
    async fn append_history(
        &self,
        tx: &mut Transaction<'_, Any>,
        revision: Revision,
        key: &ConfigKey,
        op: Op,
        content: &str,
        format: Format,
        md5: &str,
        description: &str,
        tags: &[String],
        audit: &Audit,
        before: Option<&str>,
        sensitive: bool,
    ) -> Result<()> {
        let sql = self.sql(concat!(
            insert_history!(),
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ));
        self.bind_history(
            sqlx::query::<Any>(sql),
            revision,
            key,
            op,
            content,
            format,
            md5,
            description,
            tags,
            audit,
            sensitive,
        )?
        .execute(&mut **tx)
        .await?;
        // The audit entry commits with the change, or neither does.
        let entry = change_audit(key, op, md5, audit, before);
        self.insert_audit(&entry).execute(&mut **tx).await?;
        Ok(())
    }

    /// Binds a history row's values in the order the history insert names them:
    /// revision, namespace, grp, data_id, op, content, format, md5, description, tags,
    /// operator, source, comment, created_at, marked_sensitive.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bind_history<'q>(
        &self,
        query: Query<'q>,
        revision: Revision,
        key: &'q ConfigKey,
        op: Op,
        content: &str,
        format: Format,
        md5: &'q str,
        description: &str,
        tags: &[String],
        audit: &'q Audit,
        sensitive: bool,
    ) -> Result<Query<'q>> {
        let stored = crate::seal::seal(self.sealer.as_deref(), &identity("history", key), content)?;
        Ok(query
            .bind(revision.get())
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .bind(op.as_str())
            .bind(stored)
            .bind(format.as_str())
            .bind(md5)
            .bind(description.to_owned())
            .bind(join_tags(tags))
            .bind(&audit.operator)
            .bind(&audit.source)
            .bind(&audit.comment)
            .bind(audit.at)
            .bind(i32::from(sensitive))
            .bind(&audit.surface)
            .bind(i32::from(audit.emergency)))
    }

    pub(crate) fn insert_audit<'q>(&self, entry: &'q AuditRecord) -> Query<'q> {
        let sql = self.sql(concat!(
            insert_audit!(),
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ));
        bind_audit(sqlx::query::<Any>(sql), entry)
    }
}

/// A statement with its arguments, through the `Any` driver.
pub(crate) type Query<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Binds a change-log row's values in the order the change-log inserts name them
/// after the sequence: namespace, grp, data_id, op, md5, created_at.
pub(crate) fn bind_change<'q>(
    query: Query<'q>,
    key: &'q ConfigKey,
    op: Op,
    md5: &'q str,
    at: i64,
) -> Query<'q> {
    query
        .bind(key.namespace.as_str())
        .bind(key.group.as_str())
        .bind(key.data_id.as_str())
        .bind(op.as_str())
        .bind(md5)
        .bind(at)
}

/// Binds an audit row's values in the order the audit insert names them.
pub(crate) fn bind_audit<'q>(query: Query<'q>, entry: &'q AuditRecord) -> Query<'q> {
    query
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.source)
        .bind(&entry.surface)
        .bind(&entry.action)
        .bind(&entry.namespace)
        .bind(&entry.target)
        .bind(&entry.result)
        .bind(entry.md5_before.clone())
        .bind(entry.md5_after.clone())
        .bind(&entry.detail)
}

#[async_trait]
impl NamespaceStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        let rows = sqlx::query::<Any>(
            "SELECT name, display_name, description, created_at, apollo_anonymous, \
             max_configs, max_config_bytes, max_total_bytes, history_max_revisions, \
             history_max_days, require_review FROM namespaces ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let name = text(row, "name")?;
                Ok(NamespaceRecord {
                    name: Namespace::parse(&name)
                        .map_err(|e| StoreError::Corrupt(format!("namespace {name:?}: {e}")))?,
                    display_name: text(row, "display_name")?,
                    description: text(row, "description")?,
                    created_at: row.try_get("created_at")?,
                    apollo_anonymous: split_list(&text(row, "apollo_anonymous")?),
                    limits: NamespaceLimits {
                        max_configs: limit(row, "max_configs")?,
                        max_config_bytes: limit(row, "max_config_bytes")?,
                        max_total_bytes: limit(row, "max_total_bytes")?,
                        history_max_revisions: limit(row, "history_max_revisions")?,
                        history_max_days: limit(row, "history_max_days")?,
                    },
                    require_review: row.try_get::<i32, _>("require_review")? != 0,
                })
            })
            .collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn create_namespace(&self, ns: &NamespaceRecord) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO namespaces (name, display_name, description, created_at, \
             apollo_anonymous, max_configs, max_config_bytes, max_total_bytes, \
             history_max_revisions, history_max_days, require_review) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let l = &ns.limits;
        let mut query = sqlx::query::<Any>(sql)
            .bind(ns.name.as_str())
            .bind(&ns.display_name)
            .bind(&ns.description)
            .bind(ns.created_at)
            .bind(ns.apollo_anonymous.join(","));
        for value in [
            l.max_configs,
            l.max_config_bytes,
            l.max_total_bytes,
            l.history_max_revisions,
            l.history_max_days,
        ] {
            query = query.bind(value.map(|v| v as i64));
        }
        let query = query.bind(i32::from(ns.require_review));
        match query.execute(&self.writer).await {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::NamespaceExists(ns.name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn update_namespace(&self, name: &Namespace, update: &NamespaceUpdate) -> Result<()> {
        // Only the fields given, in one statement: two edits of different fields
        // never undo each other.
        // A limit is set only when its flag is 1, so that NULL (the node's default) can
        // be written as well as kept.
        let sql = self.sql(
            "UPDATE namespaces SET display_name = COALESCE(?, display_name), \
             description = COALESCE(?, description), \
             apollo_anonymous = COALESCE(?, apollo_anonymous), \
             max_configs = CASE WHEN ? = 1 THEN ? ELSE max_configs END, \
             max_config_bytes = CASE WHEN ? = 1 THEN ? ELSE max_config_bytes END, \
             max_total_bytes = CASE WHEN ? = 1 THEN ? ELSE max_total_bytes END, \
             history_max_revisions = CASE WHEN ? = 1 THEN ? ELSE history_max_revisions END, \
             history_max_days = CASE WHEN ? = 1 THEN ? ELSE history_max_days END, \
             require_review = COALESCE(?, require_review) \
             WHERE name = ?",
        );
        let mut query = sqlx::query::<Any>(sql)
            .bind(update.display_name.clone())
            .bind(update.description.clone())
            .bind(update.apollo_anonymous.as_ref().map(|apps| apps.join(",")));
        for (_, change) in update.limits.columns() {
            query = query
                .bind(i64::from(change.is_some()))
                .bind(change.flatten().map(|v| v as i64));
        }
        let done = query
            .bind(update.require_review.map(i32::from))
            .bind(name.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            // MySQL counts changed rows, not matched ones.
            let sql = self.sql("SELECT COUNT(*) FROM namespaces WHERE name = ?");
            let found: i64 = sqlx::query_scalar::<Any, i64>(sql)
                .bind(name.as_str())
                .fetch_one(&self.writer)
                .await?;
            if found == 0 {
                return Err(StoreError::NamespaceNotFound(name.to_string()));
            }
        }
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_namespace(&self, name: &Namespace) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let sql = self.sql("SELECT COUNT(*) FROM configs WHERE namespace = ?");
        let used: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if used > 0 {
            return Err(StoreError::NamespaceNotEmpty(name.to_string()));
        }
        // Its schemas go with it; their history stays, as its configs' history does.
        let sql = self.sql("DELETE FROM config_schemas WHERE namespace = ?");
        sqlx::query::<Any>(sql)
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        let sql = self.sql("DELETE FROM namespaces WHERE name = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NamespaceNotFound(name.to_string()));
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn load_configs(&self) -> Result<Vec<ConfigRecord>> {
        let rows = sqlx::query::<Any>(&format!("SELECT {CONFIG_COLUMNS} FROM configs"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| config_from_row(r, self.sealer.as_deref()))
            .collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn get_config(&self, key: &ConfigKey) -> Result<Option<ConfigRecord>> {
        let sql = self.dialect.sql(
            "SELECT namespace, grp, data_id, content, format, md5, revision, \
             description, tags, created_by, created_at, updated_by, updated_at, marked_sensitive \
             FROM configs WHERE namespace = ? AND grp = ? AND data_id = ?",
        );
        let row = sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref()
            .map(|r| config_from_row(r, self.sealer.as_deref()))
            .transpose()
    }

    #[instrument(skip_all, fields(count = keys.len()), err(level = "debug"))]
    async fn get_configs(&self, keys: &[&ConfigKey]) -> Result<Vec<ConfigRecord>> {
        let mut groups: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
        for key in keys {
            groups
                .entry((key.namespace.as_str(), key.group.as_str()))
                .or_default()
                .push(key.data_id.as_str());
        }
        let mut found = Vec::with_capacity(keys.len());
        for ((namespace, group), ids) in groups {
            for page in ids.chunks(crate::bulk::PAGE) {
                let sql = self.sql_owned(&format!(
                    "SELECT {CONFIG_COLUMNS} FROM configs \
                     WHERE namespace = ? AND grp = ? AND data_id IN ({})",
                    vec!["?"; page.len()].join(", ")
                ));
                let mut query = sqlx::query::<Any>(&sql).bind(namespace).bind(group);
                for id in page {
                    query = query.bind(*id);
                }
                for row in query.fetch_all(&self.reader).await? {
                    found.push(config_from_row(&row, self.sealer.as_deref())?);
                }
            }
        }
        Ok(found)
    }

    #[instrument(skip_all, fields(key = %write.key, op = write.op.as_str()), err(level = "debug"))]
    async fn put_config(&self, write: &ConfigWrite) -> Result<ConfigRecord> {
        self.put_grouped(write).await
    }

    #[instrument(skip_all, fields(count = writes.len()), err(level = "debug"))]
    async fn import(
        &self,
        writes: &[ConfigWrite],
        past: &[crate::PastVersion],
    ) -> Result<Vec<ConfigRecord>> {
        let mut tx = self.begin_write().await?;
        let mut records = Vec::with_capacity(writes.len());
        // Each namespace is checked once: an import is mostly one namespace.
        let mut checked = std::collections::HashSet::new();
        for write in writes {
            if checked.insert(&write.key.namespace) {
                self.require_namespace(&mut tx, &write.key.namespace)
                    .await?;
            }
        }
        let mut keys = std::collections::HashSet::new();
        if writes.iter().all(|w| keys.insert(&w.key)) {
            let past = crate::bulk::past_by_key(past);
            for page in crate::bulk::pages(writes, |w| w.content.len()) {
                records.extend(self.import_page(&mut tx, page, &past).await?);
            }
        } else if !past.is_empty() {
            return Err(StoreError::Conflict(
                "an import with history names each config once".into(),
            ));
        } else {
            // A key written twice: each write must see the one before it.
            for write in writes {
                records.push(self.put_in_namespace(&mut tx, write).await?);
            }
        }
        tx.commit().await?;
        Ok(records)
    }

    #[instrument(skip_all, fields(key = %delete.key), err(level = "debug"))]
    async fn delete_config(&self, delete: &ConfigDelete) -> Result<ChangeRecord> {
        let key = &delete.key;
        let at = delete.audit.at;
        let mut tx = self.begin_write().await?;
        let Some(current) = self.check_expect(&mut tx, key, &delete.expect).await? else {
            return Err(StoreError::ConfigNotFound(key.clone()));
        };
        let format = current.format;
        let seq = self.append_change(&mut tx, key, Op::Delete, "", at).await?;
        self.drop_gray(&mut tx, key).await?;
        let sql = self.sql("DELETE FROM configs WHERE namespace = ? AND grp = ? AND data_id = ?");
        sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .execute(&mut *tx)
            .await?;
        self.append_history(
            &mut tx,
            seq,
            key,
            Op::Delete,
            "",
            format,
            "",
            "",
            &[],
            &delete.audit,
            Some(&current.md5),
            current.sensitive,
        )
        .await?;
        tx.commit().await?;
        Ok(ChangeRecord {
            seq,
            key: key.clone(),
            op: Op::Delete,
            md5: String::new(),
            created_at: at,
        })
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn prune_history(
        &self,
        namespace: &Namespace,
        max_revisions: u64,
        older_than: Option<i64>,
    ) -> Result<u64> {
        if max_revisions == 0 && older_than.is_none() {
            return Ok(0);
        }
        // Chosen in Rust from the keys' entries (no content read), then deleted by
        // revision: MySQL cannot delete from a table it reads in a subquery.
        let sql = self.sql(
            "SELECT revision, grp, data_id, created_at FROM history WHERE namespace = ? \
             ORDER BY grp, data_id, revision DESC",
        );
        let rows = sqlx::query::<Any>(sql)
            .bind(namespace.as_str())
            .fetch_all(&self.reader)
            .await?;
        let mut doomed: Vec<i64> = Vec::new();
        let mut previous: Option<(String, String)> = None;
        let mut newer = 0u64;
        for row in &rows {
            let key = (text(row, "grp")?, text(row, "data_id")?);
            if previous.as_ref() != Some(&key) {
                previous = Some(key);
                newer = 0;
            }
            let created_at: i64 = row.try_get("created_at")?;
            let over_count = max_revisions > 0 && newer >= max_revisions;
            let too_old = older_than.is_some_and(|t| created_at < t);
            if newer > 0 && (over_count || too_old) {
                doomed.push(row.try_get("revision")?);
            }
            newer += 1;
        }
        let mut dropped = 0;
        for chunk in doomed.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = self.sql_owned(&format!("DELETE FROM history WHERE revision IN ({marks})"));
            let mut query = sqlx::query::<Any>(&sql);
            for revision in chunk {
                query = query.bind(*revision);
            }
            dropped += query.execute(&self.writer).await?.rows_affected();
        }
        Ok(dropped)
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn history(&self, key: &ConfigKey, page: Page) -> Result<(Vec<HistoryRecord>, u64)> {
        let sql = self
            .sql("SELECT COUNT(*) FROM history WHERE namespace = ? AND grp = ? AND data_id = ?");
        let total: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .fetch_one(&self.reader)
            .await?;
        // Listings leave the contents out: a page may span many large versions.
        let sql = self.sql(
            "SELECT revision, namespace, grp, data_id, op, '' AS content, format, md5, \
             description, tags, operator, source, comment, created_at, marked_sensitive, surface, emergency \
             FROM history \
             WHERE namespace = ? AND grp = ? AND data_id = ? \
             ORDER BY revision DESC LIMIT ? OFFSET ?",
        );
        let rows = sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .bind(i64::from(page.size))
            .bind(page.offset() as i64)
            .fetch_all(&self.reader)
            .await?;
        let entries = rows
            .iter()
            .map(|r| history_from_row(r, self.sealer.as_deref()))
            .collect::<Result<_>>()?;
        Ok((entries, total as u64))
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn namespace_history(&self, namespace: &Namespace) -> Result<Vec<HistoryRecord>> {
        let sql = self.sql(
            "SELECT revision, namespace, grp, data_id, op, content, format, md5, \
             description, tags, operator, source, comment, created_at, marked_sensitive, surface, emergency \
             FROM history \
             WHERE namespace = ? ORDER BY grp, data_id, revision",
        );
        let rows = sqlx::query::<Any>(sql)
            .bind(namespace.as_str())
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| history_from_row(r, self.sealer.as_deref()))
            .collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn history_entry(
        &self,
        key: &ConfigKey,
        revision: Revision,
    ) -> Result<Option<HistoryRecord>> {
        let sql = self.sql(
            "SELECT revision, namespace, grp, data_id, op, content, format, md5, \
             description, tags, operator, source, comment, created_at, marked_sensitive, surface, emergency \
             FROM history \
             WHERE revision = ? AND namespace = ? AND grp = ? AND data_id = ?",
        );
        let row = sqlx::query::<Any>(sql)
            .bind(revision.get())
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref()
            .map(|r| history_from_row(r, self.sealer.as_deref()))
            .transpose()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn history_before(
        &self,
        key: &ConfigKey,
        revision: Revision,
    ) -> Result<Option<HistoryRecord>> {
        let sql = self.sql(
            "SELECT revision, namespace, grp, data_id, op, content, format, md5, \
             description, tags, operator, source, comment, created_at, marked_sensitive, surface, emergency \
             FROM history \
             WHERE namespace = ? AND grp = ? AND data_id = ? AND revision < ? \
             ORDER BY revision DESC LIMIT 1",
        );
        let row = sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .bind(revision.get())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref()
            .map(|r| history_from_row(r, self.sealer.as_deref()))
            .transpose()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<ChangeRecord>> {
        let sql = self.sql(
            "SELECT seq, namespace, grp, data_id, op, md5, created_at FROM change_log \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        );
        let rows = sqlx::query::<Any>(sql)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ChangeRecord {
                    seq: {
                        let seq: i64 = row.try_get("seq")?;
                        Revision::new(seq).ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "change-log sequence {seq} is not positive"
                            ))
                        })?
                    },
                    key: parse_key(row)?,
                    op: parse_op(row)?,
                    md5: text(row, "md5")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn load_grays(&self) -> Result<Vec<GrayRecord>> {
        let rows = sqlx::query::<Any>(&format!("SELECT {GRAY_COLUMNS} FROM gray_releases"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| gray_from_row(r, self.sealer.as_deref()))
            .collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn get_gray(&self, key: &ConfigKey) -> Result<Option<GrayRecord>> {
        self.select_gray(&self.reader, key).await
    }

    #[instrument(skip_all, fields(key = %write.key), err(level = "debug"))]
    async fn put_gray(&self, write: &GrayWrite) -> Result<GrayRecord> {
        let key = &write.key;
        let at = write.audit.at;
        let mut tx = self.begin_write().await?;
        let Some(current) = self.check_expect(&mut tx, key, &Expect::Any).await? else {
            return Err(StoreError::ConfigNotFound(key.clone()));
        };
        let format = write.format.unwrap_or(current.format);
        if write.validated_as.is_some_and(|v| v != format) {
            return Err(StoreError::Conflict(format!(
                "the format of {key} changed to {format} meanwhile; publish again"
            )));
        }
        let seq = self
            .append_change(&mut tx, key, Op::GrayPublish, &write.md5, at)
            .await?;
        self.drop_gray(&mut tx, key).await?;
        let sql = self.sql(
            "INSERT INTO gray_releases (namespace, grp, data_id, content, format, md5, \
             revision, ips, labels, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let stored = crate::seal::seal(
            self.sealer.as_deref(),
            &identity("gray", key),
            &write.content,
        )?;
        sqlx::query::<Any>(sql)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .bind(stored)
            .bind(format.as_str())
            .bind(&write.md5)
            .bind(seq.get())
            .bind(write.rules.ips_text())
            .bind(write.rules.labels_text())
            .bind(&write.audit.operator)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let mut audit = write.audit.clone();
        // Who a release was for belongs in its history, whatever the comment.
        audit.comment = if audit.comment.is_empty() {
            format!("gray release to {}", write.rules)
        } else {
            format!("{} (gray release to {})", audit.comment, write.rules)
        };
        self.append_history(
            &mut tx,
            seq,
            key,
            Op::GrayPublish,
            &write.content,
            format,
            &write.md5,
            &current.description,
            &current.tags,
            &audit,
            Some(&current.md5),
            current.sensitive,
        )
        .await?;
        tx.commit().await?;
        Ok(GrayRecord {
            key: key.clone(),
            content: write.content.clone(),
            format,
            md5: write.md5.clone(),
            revision: seq,
            rules: write.rules.clone(),
            created_by: write.audit.operator.clone(),
            created_at: at,
        })
    }

    #[instrument(skip(self, audit), err(level = "debug"))]
    async fn promote_gray(
        &self,
        key: &ConfigKey,
        expect: &Expect,
        audit: &Audit,
    ) -> Result<ConfigRecord> {
        let at = audit.at;
        let mut tx = self.begin_write().await?;
        let Some(current) = self.check_expect(&mut tx, key, &Expect::Any).await? else {
            return Err(StoreError::ConfigNotFound(key.clone()));
        };
        let Some(gray) = self.gray_in(&mut tx, key).await? else {
            return Err(StoreError::GrayNotFound(key.clone()));
        };
        if !expect.allows(Some(&gray.md5)) {
            return Err(StoreError::Conflict(format!(
                "the gray release of {key} was replaced meanwhile; look at it again before promoting"
            )));
        }
        let seq = self
            .append_change(&mut tx, key, Op::GrayPromote, &gray.md5, at)
            .await?;
        let sql = self.sql(
            "UPDATE configs SET content = ?, format = ?, md5 = ?, revision = ?, \
             updated_by = ?, updated_at = ? \
             WHERE namespace = ? AND grp = ? AND data_id = ?",
        );
        let stored = crate::seal::seal(
            self.sealer.as_deref(),
            &identity("config", key),
            &gray.content,
        )?;
        sqlx::query::<Any>(sql)
            .bind(stored)
            .bind(gray.format.as_str())
            .bind(&gray.md5)
            .bind(seq.get())
            .bind(&audit.operator)
            .bind(at)
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .execute(&mut *tx)
            .await?;
        self.drop_gray(&mut tx, key).await?;
        let mut audit = audit.clone();
        if audit.comment.is_empty() {
            audit.comment = format!("promoted gray revision {}", gray.revision);
        }
        self.append_history(
            &mut tx,
            seq,
            key,
            Op::GrayPromote,
            &gray.content,
            gray.format,
            &gray.md5,
            &current.description,
            &current.tags,
            &audit,
            Some(&current.md5),
            current.sensitive,
        )
        .await?;
        tx.commit().await?;
        Ok(ConfigRecord {
            key: key.clone(),
            content: gray.content,
            format: gray.format,
            md5: gray.md5,
            revision: seq,
            description: current.description,
            tags: current.tags,
            created_by: current.created_by,
            created_at: current.created_at,
            updated_by: audit.operator.clone(),
            updated_at: at,
            sensitive: current.sensitive,
        })
    }

    #[instrument(skip(self, audit), err(level = "debug"))]
    async fn abandon_gray(&self, key: &ConfigKey, audit: &Audit) -> Result<ChangeRecord> {
        let at = audit.at;
        let mut tx = self.begin_write().await?;
        let Some(gray) = self.gray_in(&mut tx, key).await? else {
            return Err(StoreError::GrayNotFound(key.clone()));
        };
        let seq = self
            .append_change(&mut tx, key, Op::GrayAbandon, "", at)
            .await?;
        self.drop_gray(&mut tx, key).await?;
        let mut audit = audit.clone();
        if audit.comment.is_empty() {
            audit.comment = format!("abandoned gray revision {}", gray.revision);
        }
        self.append_history(
            &mut tx,
            seq,
            key,
            Op::GrayAbandon,
            "",
            gray.format,
            "",
            "",
            &[],
            &audit,
            Some(&gray.md5),
            false,
        )
        .await?;
        tx.commit().await?;
        Ok(ChangeRecord {
            seq,
            key: key.clone(),
            op: Op::GrayAbandon,
            md5: String::new(),
            created_at: at,
        })
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn last_seq(&self) -> Result<i64> {
        let mut conn = self.reader.acquire().await?;
        last_seq_on(&mut conn).await
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn settled_seq(&self) -> Result<i64> {
        let Some(settle) = self.dialect.settle else {
            return self.last_seq().await;
        };
        // Read while holding the write lock alone: a sequence read after letting go
        // could be one a publish took after a lower one still in flight.
        let mut tx = self.writer.begin_with(settle).await?;
        let seq = last_seq_on(&mut tx).await?;
        tx.commit().await?;
        Ok(seq)
    }
}

#[async_trait]
impl UserStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query::<Any>(
            "SELECT username, password_hash, role, created_at, password_changed_at \
             FROM users ORDER BY username",
        )
        .fetch_all(&self.reader)
        .await?;
        // A user this version cannot read (a role a newer version wrote, say) is
        // left out with a warning rather than failing every user: it cannot log
        // in here, and everyone else still can.
        Ok(rows
            .iter()
            .filter_map(|row| match user_from_row(row) {
                Ok(user) => Some(user),
                Err(e) => {
                    tracing::warn!(error = %e, "a stored user cannot be read; left out");
                    None
                }
            })
            .collect())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn get_user(&self, username: &Username) -> Result<Option<UserRecord>> {
        let sql = self.sql(
            "SELECT username, password_hash, role, created_at, password_changed_at \
             FROM users WHERE username = ?",
        );
        let row = sqlx::query::<Any>(sql)
            .bind(username.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO users (username, password_hash, role, created_at, \
             password_changed_at) VALUES (?, ?, ?, ?, ?)",
        );
        match sqlx::query::<Any>(sql)
            .bind(user.username.as_str())
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(user.created_at)
            .bind(user.password_changed_at)
            .execute(&self.writer)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::UserExists(user.username.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    #[instrument(skip(self, hash), err(level = "debug"))]
    async fn set_password(&self, username: &Username, hash: &str, changed_at: i64) -> Result<()> {
        let sql = self
            .sql("UPDATE users SET password_hash = ?, password_changed_at = ? WHERE username = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(hash)
            .bind(changed_at)
            .bind(username.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UserNotFound(username.to_string()));
        }
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn set_role(&self, username: &Username, role: cairn_core::Role) -> Result<()> {
        let sql = self.sql("UPDATE users SET role = ? WHERE username = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(role.as_str())
            .bind(username.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            // MySQL counts only changed rows: setting the role a user has changes none.
            if self.get_user(username).await?.is_none() {
                return Err(StoreError::UserNotFound(username.to_string()));
            }
        }
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_user(&self, username: &Username) -> Result<()> {
        // The user's grants and memberships go with it: a user made later under the
        // same name must not inherit them.
        let mut tx = self.begin_write().await?;
        let sql = self.sql("DELETE FROM users WHERE username = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(username.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UserNotFound(username.to_string()));
        }
        let sql = self.sql("DELETE FROM grants WHERE subject_kind = 'user' AND subject = ?");
        sqlx::query::<Any>(sql)
            .bind(username.as_str())
            .execute(&mut *tx)
            .await?;
        let sql = self.sql("DELETE FROM role_members WHERE username = ?");
        sqlx::query::<Any>(sql)
            .bind(username.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl ClusterStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()> {
        let sql = self.sql(
            "UPDATE nodes SET address = ?, started_at = ?, heartbeat_at = ?, \
             applied_seq = ?, version = ? WHERE id = ?",
        );
        let done = sqlx::query::<Any>(sql)
            .bind(&node.address)
            .bind(node.started_at)
            .bind(node.heartbeat_at)
            .bind(node.applied_seq)
            .bind(&node.version)
            .bind(&node.id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let sql = self.sql(
            "INSERT INTO nodes (address, started_at, heartbeat_at, applied_seq, version, id) \
             VALUES (?, ?, ?, ?, ?, ?)",
        );
        match sqlx::query::<Any>(sql)
            .bind(&node.address)
            .bind(node.started_at)
            .bind(node.heartbeat_at)
            .bind(node.applied_seq)
            .bind(&node.version)
            .bind(&node.id)
            .execute(&self.writer)
            .await
        {
            // MySQL reports 0 changed rows when a heartbeat repeats the last one.
            Err(e) if is_unique_violation(&e) => Ok(()),
            other => other.map(drop).map_err(Into::into),
        }
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query::<Any>(
            "SELECT id, address, started_at, heartbeat_at, applied_seq, version FROM nodes \
             ORDER BY address, id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(node_from_row).collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn remove_nodes(&self, heartbeat_before: i64) -> Result<u64> {
        let sql = self.sql("DELETE FROM nodes WHERE heartbeat_at < ?");
        let done = sqlx::query::<Any>(sql)
            .bind(heartbeat_before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn remove_node(&self, id: &str) -> Result<()> {
        let sql = self.sql("DELETE FROM nodes WHERE id = ?");
        sqlx::query::<Any>(sql)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn prune_changes(&self, through_seq: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let sql = self.sql("UPDATE cluster_state SET pruned_through = ? WHERE pruned_through < ?");
        sqlx::query::<Any>(sql)
            .bind(through_seq)
            .bind(through_seq)
            .execute(&mut *tx)
            .await?;
        let sql = self.sql("DELETE FROM change_log WHERE seq <= ?");
        let done = sqlx::query::<Any>(sql)
            .bind(through_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn pruned_through(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<Any, i64>("SELECT pruned_through FROM cluster_state")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn clock(&self) -> Result<i64> {
        Ok(sqlx::query_scalar::<Any, i64>(self.dialect.now_ms)
            .fetch_one(&self.reader)
            .await?)
    }

    #[instrument(skip(self, candidate), err(level = "debug"))]
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        let identity = format!("secret:{name}");
        let sealer = self.sealer.as_deref();
        let select = self.sql("SELECT value FROM secrets WHERE name = ?");
        let found = sqlx::query::<Any>(select)
            .bind(name)
            .fetch_optional(&self.writer)
            .await?
            .map(|row| text(&row, "value"))
            .transpose()?;
        if let Some(value) = found {
            return crate::seal::open(sealer, &identity, value);
        }
        let sql = self.sql("INSERT INTO secrets (name, value) VALUES (?, ?)");
        match sqlx::query::<Any>(sql)
            .bind(name)
            .bind(crate::seal::seal(sealer, &identity, candidate)?)
            .execute(&self.writer)
            .await
        {
            Ok(_) => Ok(candidate.to_owned()),
            // Another node stored one first; everyone uses that one.
            Err(e) if is_unique_violation(&e) => {
                let row = sqlx::query::<Any>(select)
                    .bind(name)
                    .fetch_one(&self.writer)
                    .await?;
                crate::seal::open(sealer, &identity, text(&row, "value")?)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl AccessKeyStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        let rows = sqlx::query::<Any>(
            "SELECT app_id, id, secret, enabled, created_at, namespaces FROM access_keys \
             ORDER BY app_id, created_at, id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let (app_id, id) = (text(row, "app_id")?, text(row, "id")?);
                let identity = format!("access-key:{app_id}/{id}");
                Ok(AccessKeyRecord {
                    secret: crate::seal::open(
                        self.sealer.as_deref(),
                        &identity,
                        text(row, "secret")?,
                    )?,
                    app_id,
                    id,
                    enabled: row.try_get::<i32, _>("enabled")? != 0,
                    created_at: row.try_get("created_at")?,
                    namespaces: split_list(&text(row, "namespaces")?),
                })
            })
            .collect()
    }

    #[instrument(skip(self, key), fields(app = %key.app_id), err(level = "debug"))]
    async fn create_access_key(&self, key: &AccessKeyRecord, max: usize) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let sql = self.sql("SELECT COUNT(*) FROM access_keys WHERE app_id = ?");
        let count: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(&key.app_id)
            .fetch_one(&mut *tx)
            .await?;
        if count as usize >= max {
            return Err(StoreError::Conflict(format!(
                "app {} already has {count} access keys; the limit is {max}",
                key.app_id
            )));
        }
        let sql = self.sql(
            "INSERT INTO access_keys (app_id, id, secret, enabled, created_at, namespaces) \
             VALUES (?, ?, ?, ?, ?, ?)",
        );
        let identity = format!("access-key:{}/{}", key.app_id, key.id);
        sqlx::query::<Any>(sql)
            .bind(&key.app_id)
            .bind(&key.id)
            .bind(crate::seal::seal(
                self.sealer.as_deref(),
                &identity,
                &key.secret,
            )?)
            .bind(i32::from(key.enabled))
            .bind(key.created_at)
            .bind(key.namespaces.join(","))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn set_access_key_enabled(&self, app_id: &str, id: &str, enabled: bool) -> Result<()> {
        let sql = self.sql("UPDATE access_keys SET enabled = ? WHERE app_id = ? AND id = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(i32::from(enabled))
            .bind(app_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            let sql = self.sql("SELECT COUNT(*) FROM access_keys WHERE app_id = ? AND id = ?");
            let found: i64 = sqlx::query_scalar::<Any, i64>(sql)
                .bind(app_id)
                .bind(id)
                .fetch_one(&self.writer)
                .await?;
            if found == 0 {
                return Err(StoreError::AccessKeyNotFound(
                    app_id.to_owned(),
                    id.to_owned(),
                ));
            }
        }
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_access_key(&self, app_id: &str, id: &str) -> Result<()> {
        let sql = self.sql("DELETE FROM access_keys WHERE app_id = ? AND id = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(app_id)
            .bind(id)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AccessKeyNotFound(
                app_id.to_owned(),
                id.to_owned(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query::<Any>("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    fn backend(&self) -> crate::Backend {
        self.backend
    }

    async fn change_signal(&self) -> Result<Option<Box<dyn ChangeSignal>>> {
        match &self.signal {
            Some(source) => Ok(Some(source.open().await?)),
            None => Ok(None),
        }
    }

    async fn reseal(&self) -> Result<crate::ResealReport> {
        self.reseal_all().await
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

impl SqlStore {
    /// Removes a subject's grant over exactly one scope.
    fn grant_deletion<'q>(
        &self,
        subject: &'q Subject,
        scope: &'q Scope,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        let sql = self.sql(
            "DELETE FROM grants WHERE subject_kind = ? AND subject = ? AND namespace = ? \
             AND group_pattern = ? AND data_id_pattern = ?",
        );
        sqlx::query::<Any>(sql)
            .bind(subject.kind())
            .bind(subject.name())
            .bind(scope.namespace.as_str())
            .bind(scope.group.as_str())
            .bind(scope.data_id.as_str())
    }
}

/// A comma-separated list as stored; empty text is the empty list.
/// A namespace limit column: NULL follows the node's default.
fn limit(row: &AnyRow, column: &str) -> Result<Option<u64>> {
    let value: Option<i64> = row.try_get(column)?;
    Ok(value.map(|v| v.max(0) as u64))
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn grant_from_row(row: &AnyRow) -> Result<GrantRecord> {
    let corrupt = |what: String| StoreError::Corrupt(format!("grant: {what}"));
    let name = text(row, "subject")?;
    let subject = match text(row, "subject_kind")?.as_str() {
        "user" => Subject::User(Username::parse(&name).map_err(|e| corrupt(e.to_string()))?),
        "role" => Subject::Role(RoleName::parse(&name).map_err(|e| corrupt(e.to_string()))?),
        other => return Err(corrupt(format!("unknown subject kind {other:?}"))),
    };
    let scope = Scope::parse(
        &text(row, "namespace")?,
        &text(row, "group_pattern")?,
        &text(row, "data_id_pattern")?,
    )
    .map_err(|e| corrupt(e.to_string()))?;
    let level = text(row, "level")?;
    Ok(GrantRecord {
        subject,
        scope,
        level: Level::parse(&level).ok_or_else(|| corrupt(format!("unknown level {level:?}")))?,
        created_at: row.try_get("created_at")?,
        created_by: text(row, "created_by")?,
    })
}

#[async_trait]
impl GrantStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn grants(&self) -> Result<Vec<GrantRecord>> {
        let rows = sqlx::query::<Any>(
            "SELECT subject_kind, subject, namespace, group_pattern, data_id_pattern, level, \
             created_at, created_by FROM grants \
             ORDER BY subject_kind, subject, namespace, group_pattern, data_id_pattern",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn put_grant(&self, grant: &GrantRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        self.grant_deletion(&grant.subject, &grant.scope)
            .execute(&mut *tx)
            .await?;
        let sql = self.sql(
            "INSERT INTO grants (subject_kind, subject, namespace, group_pattern, \
             data_id_pattern, level, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        );
        sqlx::query::<Any>(sql)
            .bind(grant.subject.kind())
            .bind(grant.subject.name())
            .bind(grant.scope.namespace.as_str())
            .bind(grant.scope.group.as_str())
            .bind(grant.scope.data_id.as_str())
            .bind(grant.level.as_str())
            .bind(grant.created_at)
            .bind(&grant.created_by)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_grant(&self, subject: &Subject, scope: &Scope) -> Result<bool> {
        let done = self
            .grant_deletion(subject, scope)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn role_members(&self) -> Result<Vec<RoleMember>> {
        let rows = sqlx::query::<Any>(
            "SELECT role, username, created_at FROM role_members ORDER BY role, username",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let role = text(row, "role")?;
                Ok(RoleMember {
                    role: RoleName::parse(&role)
                        .map_err(|e| StoreError::Corrupt(format!("role member: {e}")))?,
                    username: username(row, "username")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn add_role_member(&self, member: &RoleMember) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let sql = self.sql("SELECT COUNT(*) FROM users WHERE username = ?");
        let exists: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(member.username.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if exists == 0 {
            return Err(StoreError::UserNotFound(member.username.to_string()));
        }
        let sql = self.sql("DELETE FROM role_members WHERE role = ? AND username = ?");
        sqlx::query::<Any>(sql)
            .bind(member.role.as_str())
            .bind(member.username.as_str())
            .execute(&mut *tx)
            .await?;
        let sql =
            self.sql("INSERT INTO role_members (role, username, created_at) VALUES (?, ?, ?)");
        sqlx::query::<Any>(sql)
            .bind(member.role.as_str())
            .bind(member.username.as_str())
            .bind(member.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn remove_role_member(&self, role: &RoleName, username: &Username) -> Result<bool> {
        let sql = self.sql("DELETE FROM role_members WHERE role = ? AND username = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(role.as_str())
            .bind(username.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_role(&self, role: &RoleName) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let sql = self.sql("DELETE FROM role_members WHERE role = ?");
        let members = sqlx::query::<Any>(sql)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        let sql = self.sql("DELETE FROM grants WHERE subject_kind = 'role' AND subject = ?");
        let grants = sqlx::query::<Any>(sql)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(members.rows_affected() + grants.rows_affected() > 0)
    }
}

fn audit_from_row(row: &AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: text(row, "actor")?,
        source: text(row, "source")?,
        surface: text(row, "surface")?,
        action: text(row, "action")?,
        namespace: text(row, "namespace")?,
        target: text(row, "target")?,
        result: text(row, "result")?,
        md5_before: row.try_get::<Option<String>, _>("md5_before")?,
        md5_after: row.try_get::<Option<String>, _>("md5_after")?,
        detail: text(row, "detail")?,
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    #[instrument(skip_all, fields(count = entries.len()), err(level = "debug"))]
    async fn append_audit(&self, entries: &[AuditRecord]) -> Result<()> {
        // Several at once in one transaction: one sync for a burst of entries.
        let mut tx = self.writer.begin().await?;
        for entry in entries {
            self.insert_audit(entry).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn audit(&self, query: &AuditQuery, page: Page) -> Result<(Vec<AuditRecord>, u64)> {
        // The filters are fixed clauses whose values are bound, never spliced in.
        let mut clauses: Vec<&str> = Vec::new();
        let mut values: Vec<Filter> = Vec::new();
        if let Some(from) = query.from {
            clauses.push("at >= ?");
            values.push(Filter::Number(from));
        }
        if let Some(to) = query.to {
            clauses.push("at < ?");
            values.push(Filter::Number(to));
        }
        for (clause, value) in [
            ("actor = ?", &query.actor),
            ("namespace = ?", &query.namespace),
            ("result = ?", &query.result),
        ] {
            if let Some(value) = value {
                clauses.push(clause);
                values.push(Filter::Text(value.clone()));
            }
        }
        if let Some(action) = &query.action {
            // `config` is every `config.*`; a full name matches itself. `!` escapes the
            // pattern's own characters (a backslash means different things to MySQL).
            clauses.push("(action = ? OR action LIKE ? ESCAPE '!')");
            values.push(Filter::Text(action.clone()));
            let escaped = action
                .replace('!', "!!")
                .replace('%', "!%")
                .replace('_', "!_");
            values.push(Filter::Text(format!("{escaped}.%")));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        // The total comes with the page, from the same statement and so the same
        // snapshot: entries are appended all the time, and a separate count could
        // disagree with the page it describes.
        let rows_sql = self.sql_owned(&format!(
            "SELECT id, at, actor, source, surface, action, namespace, target, result, \
             md5_before, md5_after, detail, COUNT(*) OVER () AS total FROM audit_log{filter} \
             ORDER BY id DESC LIMIT ? OFFSET ?"
        ));
        let mut rows = sqlx::query::<Any>(&rows_sql);
        for value in &values {
            rows = value.bind(rows);
        }
        let rows = rows
            .bind(i64::from(page.size))
            .bind(page.offset() as i64)
            .fetch_all(&self.reader)
            .await?;
        let total = match rows.first() {
            Some(row) => row.try_get::<i64, _>("total")?,
            // A page past the end carries no count: ask for it alone.
            None => {
                let count_sql = self.sql_owned(&format!("SELECT COUNT(*) FROM audit_log{filter}"));
                let mut count = sqlx::query_scalar::<Any, i64>(&count_sql);
                for value in &values {
                    count = value.bind_scalar(count);
                }
                count.fetch_one(&self.reader).await?
            }
        };
        let entries = rows.iter().map(audit_from_row).collect::<Result<_>>()?;
        Ok((entries, total as u64))
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn prune_audit(&self, before: i64) -> Result<u64> {
        let sql = self.sql("DELETE FROM audit_log WHERE at < ?");
        let done = sqlx::query::<Any>(sql)
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Scopes as stored: `namespace=level` pairs, comma-separated.
fn scopes_text(scopes: &[(String, Level)]) -> String {
    scopes
        .iter()
        .map(|(ns, level)| format!("{ns}={level}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn scopes_of(text: &str) -> Result<Vec<(String, Level)>> {
    split_list(text)
        .into_iter()
        .map(|pair| {
            let (ns, level) = pair
                .split_once('=')
                .and_then(|(ns, level)| Some((ns.to_owned(), Level::parse(level)?)))
                .ok_or_else(|| StoreError::Corrupt(format!("token scope {pair:?}")))?;
            Ok((ns, level))
        })
        .collect()
}

#[async_trait]
impl TokenStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query::<Any>(
            "SELECT name, digest, scopes, publish_without_review, created_by, created_at, \
             last_used_at FROM service_tokens ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TokenRecord {
                    name: text(row, "name")?,
                    digest: text(row, "digest")?,
                    scopes: scopes_of(&text(row, "scopes")?)?,
                    publish_without_review: row.try_get::<i32, _>("publish_without_review")? != 0,
                    created_by: text(row, "created_by")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?,
                })
            })
            .collect()
    }

    #[instrument(skip_all, fields(name = %token.name), err(level = "debug"))]
    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO service_tokens (name, digest, scopes, publish_without_review, \
             created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        );
        match sqlx::query::<Any>(sql)
            .bind(&token.name)
            .bind(&token.digest)
            .bind(scopes_text(&token.scopes))
            .bind(i32::from(token.publish_without_review))
            .bind(&token.created_by)
            .bind(token.created_at)
            .execute(&self.writer)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a service token named {} already exists",
                token.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_token(&self, name: &str) -> Result<bool> {
        let sql = self.sql("DELETE FROM service_tokens WHERE name = ?");
        let done = sqlx::query::<Any>(sql)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[instrument(skip_all, fields(count = used.len()), err(level = "debug"))]
    async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<()> {
        let sql = self.sql(
            "UPDATE service_tokens SET last_used_at = ? WHERE name = ? \
             AND (last_used_at IS NULL OR last_used_at < ?)",
        );
        let mut tx = self.writer.begin().await?;
        for (name, at) in used {
            sqlx::query::<Any>(sql)
                .bind(*at)
                .bind(name)
                .bind(*at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A value an audit query filters by.
enum Filter {
    Number(i64),
    Text(String),
}

impl Filter {
    fn bind<'q>(
        &self,
        query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Filter::Number(n) => query.bind(*n),
            Filter::Text(t) => query.bind(t.clone()),
        }
    }

    fn bind_scalar<'q>(
        &self,
        query: sqlx::query::QueryScalar<'q, Any, i64, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryScalar<'q, Any, i64, sqlx::any::AnyArguments<'q>> {
        match self {
            Filter::Number(n) => query.bind(*n),
            Filter::Text(t) => query.bind(t.clone()),
        }
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    #[instrument(skip_all, fields(user = %session.username), err(level = "debug"))]
    async fn create_session(&self, session: &SessionRecord) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO console_sessions (id_hash, username, created_at, expires_at) \
             VALUES (?, ?, ?, ?)",
        );
        sqlx::query::<Any>(sql)
            .bind(&session.id_hash)
            .bind(session.username.as_str())
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    #[instrument(skip_all, err(level = "debug"))]
    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        let sql = self.sql(
            "SELECT id_hash, username, created_at, expires_at FROM console_sessions \
             WHERE id_hash = ?",
        );
        let row = sqlx::query::<Any>(sql)
            .bind(id_hash)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(SessionRecord {
                id_hash: text(&row, "id_hash")?,
                username: username(&row, "username")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    #[instrument(skip_all, err(level = "debug"))]
    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let sql = self.sql("DELETE FROM console_sessions WHERE id_hash = ?");
        sqlx::query::<Any>(sql)
            .bind(id_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        let sql = self.sql("DELETE FROM console_sessions WHERE expires_at < ?");
        let done = sqlx::query::<Any>(sql)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let pg = Dialect {
            numbered: true,
            returning: true,
            begin_write: None,
            begin_publish: None,
            notify_published: None,
            settle: None,
            lock_rows: false,
            now_ms: "",
            replace_configs: ON_CONFLICT_REPLACE,
            take_seqs: None,
        };
        let statement = "a = ? AND b = ?";
        assert_eq!(pg.sql(statement), "a = $1 AND b = $2");
        assert!(
            std::ptr::eq(pg.sql(statement), pg.sql(statement)),
            "made once, then reused"
        );
        let other = Dialect {
            numbered: false,
            ..pg
        };
        assert_eq!(other.sql("a = ?"), "a = ?");
    }
}
