//! The embedded SQLite backend: zero set-up, one file under the data directory.
//!
//! Writes go through a single-connection pool so they never contend for SQLite's one
//! write lock; reads use a separate pool and, thanks to WAL, never wait for a write.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{ConfigKey, Format, Namespace, Username};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tracing::instrument;

use crate::model::{join_tags, split_tags};
use crate::{
    Audit, ChangeRecord, ConfigDelete, ConfigRecord, ConfigStore, ConfigWrite, Expect,
    HistoryRecord, NamespaceRecord, NamespaceStore, Op, Page, Result, Store, StoreError,
    UserRecord, UserStore,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A Cairn store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
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
        Ok(Self { writer, reader })
    }

    /// Closes both pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn parse_key(row: &SqliteRow) -> Result<ConfigKey> {
    let ns: String = row.try_get("namespace")?;
    let group: String = row.try_get("grp")?;
    let data_id: String = row.try_get("data_id")?;
    ConfigKey::parse(&ns, &group, &data_id)
        .map_err(|e| StoreError::Corrupt(format!("config key {ns}/{group}/{data_id}: {e}")))
}

fn parse_format(row: &SqliteRow) -> Result<Format> {
    let format: String = row.try_get("format")?;
    Format::from_str(&format).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_op(row: &SqliteRow) -> Result<Op> {
    let op: String = row.try_get("op")?;
    Op::parse(&op).ok_or_else(|| StoreError::Corrupt(format!("unknown operation {op:?}")))
}

fn config_from_row(row: &SqliteRow) -> Result<ConfigRecord> {
    Ok(ConfigRecord {
        key: parse_key(row)?,
        content: row.try_get("content")?,
        format: parse_format(row)?,
        md5: row.try_get("md5")?,
        revision: row.try_get("revision")?,
        description: row.try_get("description")?,
        tags: split_tags(row.try_get("tags")?),
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn history_from_row(row: &SqliteRow) -> Result<HistoryRecord> {
    Ok(HistoryRecord {
        revision: row.try_get("revision")?,
        key: parse_key(row)?,
        op: parse_op(row)?,
        content: row.try_get("content")?,
        format: parse_format(row)?,
        md5: row.try_get("md5")?,
        description: row.try_get("description")?,
        tags: split_tags(row.try_get("tags")?),
        operator: row.try_get("operator")?,
        source: row.try_get("source")?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
    })
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord> {
    let name: String = row.try_get("username")?;
    Ok(UserRecord {
        username: Username::parse(&name)
            .map_err(|e| StoreError::Corrupt(format!("user name {name:?}: {e}")))?,
        password_hash: row.try_get("password_hash")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        password_changed_at: row.try_get("password_changed_at")?,
    })
}

const CONFIG_COLUMNS: &str = "namespace, grp, data_id, content, format, md5, revision, \
     description, tags, created_by, created_at, updated_by, updated_at";
const HISTORY_COLUMNS: &str = "revision, namespace, grp, data_id, op, content, format, md5, \
     description, tags, operator, source, comment, created_at";

/// Checks `expect` against the config's current md5 inside the write transaction.
async fn check_expect(
    tx: &mut Transaction<'_, Sqlite>,
    key: &ConfigKey,
    expect: &Expect,
) -> Result<Option<(String, String, i64)>> {
    let current: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT md5, created_by, created_at FROM configs \
         WHERE namespace = ? AND grp = ? AND data_id = ?",
    )
    .bind(key.namespace.as_str())
    .bind(key.group.as_str())
    .bind(key.data_id.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let ok = match (expect, &current) {
        (Expect::Any, _) => true,
        (Expect::Absent, None) => true,
        (Expect::Md5(want), Some((md5, _, _))) => want == md5,
        _ => false,
    };
    if !ok {
        return Err(StoreError::CasMismatch {
            key: key.clone(),
            expected: match expect {
                Expect::Md5(m) => Some(m.clone()),
                _ => None,
            },
            current: current.map(|c| c.0),
        });
    }
    Ok(current)
}

async fn append_change(
    tx: &mut Transaction<'_, Sqlite>,
    key: &ConfigKey,
    op: Op,
    md5: &str,
    at: i64,
) -> Result<i64> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO change_log (namespace, grp, data_id, op, md5, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
    )
    .bind(key.namespace.as_str())
    .bind(key.group.as_str())
    .bind(key.data_id.as_str())
    .bind(op.as_str())
    .bind(md5)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(seq)
}

#[allow(clippy::too_many_arguments)]
async fn append_history(
    tx: &mut Transaction<'_, Sqlite>,
    revision: i64,
    key: &ConfigKey,
    op: Op,
    content: &str,
    format: Format,
    md5: &str,
    description: &str,
    tags: &[String],
    audit: &Audit,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO history ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(revision)
    .bind(key.namespace.as_str())
    .bind(key.group.as_str())
    .bind(key.data_id.as_str())
    .bind(op.as_str())
    .bind(content)
    .bind(format.as_str())
    .bind(md5)
    .bind(description)
    .bind(join_tags(tags))
    .bind(&audit.operator)
    .bind(&audit.source)
    .bind(&audit.comment)
    .bind(audit.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl NamespaceStore for SqliteStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        let rows =
            sqlx::query("SELECT name, description, created_at FROM namespaces ORDER BY name")
                .fetch_all(&self.reader)
                .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                Ok(NamespaceRecord {
                    name: Namespace::parse(&name)
                        .map_err(|e| StoreError::Corrupt(format!("namespace {name:?}: {e}")))?,
                    description: row.try_get("description")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn create_namespace(&self, ns: &NamespaceRecord) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO namespaces (name, description, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(ns.name.as_str())
        .bind(&ns.description)
        .bind(ns.created_at)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NamespaceExists(ns.name.to_string()));
        }
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn update_namespace(&self, name: &Namespace, description: &str) -> Result<()> {
        let done = sqlx::query("UPDATE namespaces SET description = ? WHERE name = ?")
            .bind(description)
            .bind(name.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NamespaceNotFound(name.to_string()));
        }
        Ok(())
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn delete_namespace(&self, name: &Namespace) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM configs WHERE namespace = ?")
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if used > 0 {
            return Err(StoreError::NamespaceNotEmpty(name.to_string()));
        }
        let done = sqlx::query("DELETE FROM namespaces WHERE name = ?")
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
impl ConfigStore for SqliteStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn load_configs(&self) -> Result<Vec<ConfigRecord>> {
        let rows = sqlx::query(&format!("SELECT {CONFIG_COLUMNS} FROM configs"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(config_from_row).collect()
    }

    #[instrument(skip_all, fields(key = %write.key, op = write.op.as_str()), err(level = "debug"))]
    async fn put_config(&self, write: &ConfigWrite) -> Result<ConfigRecord> {
        let key = &write.key;
        let at = write.audit.at;
        let mut tx = self.writer.begin().await?;
        let ns_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM namespaces WHERE name = ?")
            .bind(key.namespace.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if ns_exists.is_none() {
            return Err(StoreError::NamespaceNotFound(key.namespace.to_string()));
        }
        let current = check_expect(&mut tx, key, &write.expect).await?;
        let revision = append_change(&mut tx, key, write.op, &write.md5, at).await?;
        let (created_by, created_at) = match current {
            Some((_, by, at)) => (by, at),
            None => (write.audit.operator.clone(), at),
        };
        sqlx::query(&format!(
            "INSERT INTO configs ({CONFIG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (namespace, grp, data_id) DO UPDATE SET \
               content = excluded.content, format = excluded.format, md5 = excluded.md5, \
               revision = excluded.revision, description = excluded.description, \
               tags = excluded.tags, updated_by = excluded.updated_by, \
               updated_at = excluded.updated_at"
        ))
        .bind(key.namespace.as_str())
        .bind(key.group.as_str())
        .bind(key.data_id.as_str())
        .bind(&write.content)
        .bind(write.format.as_str())
        .bind(&write.md5)
        .bind(revision)
        .bind(&write.description)
        .bind(join_tags(&write.tags))
        .bind(&created_by)
        .bind(created_at)
        .bind(&write.audit.operator)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        append_history(
            &mut tx,
            revision,
            key,
            write.op,
            &write.content,
            write.format,
            &write.md5,
            &write.description,
            &write.tags,
            &write.audit,
        )
        .await?;
        tx.commit().await?;
        Ok(ConfigRecord {
            key: key.clone(),
            content: write.content.clone(),
            format: write.format,
            md5: write.md5.clone(),
            revision,
            description: write.description.clone(),
            tags: write.tags.clone(),
            created_by,
            created_at,
            updated_by: write.audit.operator.clone(),
            updated_at: at,
        })
    }

    #[instrument(skip_all, fields(key = %delete.key), err(level = "debug"))]
    async fn delete_config(&self, delete: &ConfigDelete) -> Result<ChangeRecord> {
        let key = &delete.key;
        let at = delete.audit.at;
        let mut tx = self.writer.begin().await?;
        let current = check_expect(&mut tx, key, &delete.expect).await?;
        let format: Option<String> = sqlx::query_scalar(
            "SELECT format FROM configs WHERE namespace = ? AND grp = ? AND data_id = ?",
        )
        .bind(key.namespace.as_str())
        .bind(key.group.as_str())
        .bind(key.data_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (Some(_), Some(format)) = (current, format) else {
            return Err(StoreError::ConfigNotFound(key.clone()));
        };
        let format = Format::from_str(&format).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let seq = append_change(&mut tx, key, Op::Delete, "", at).await?;
        sqlx::query("DELETE FROM configs WHERE namespace = ? AND grp = ? AND data_id = ?")
            .bind(key.namespace.as_str())
            .bind(key.group.as_str())
            .bind(key.data_id.as_str())
            .execute(&mut *tx)
            .await?;
        append_history(
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
    async fn history(&self, key: &ConfigKey, page: Page) -> Result<(Vec<HistoryRecord>, u64)> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM history WHERE namespace = ? AND grp = ? AND data_id = ?",
        )
        .bind(key.namespace.as_str())
        .bind(key.group.as_str())
        .bind(key.data_id.as_str())
        .fetch_one(&self.reader)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM history \
             WHERE namespace = ? AND grp = ? AND data_id = ? \
             ORDER BY revision DESC LIMIT ? OFFSET ?"
        ))
        .bind(key.namespace.as_str())
        .bind(key.group.as_str())
        .bind(key.data_id.as_str())
        .bind(i64::from(page.size))
        .bind(page.offset() as i64)
        .fetch_all(&self.reader)
        .await?;
        let entries = rows.iter().map(history_from_row).collect::<Result<_>>()?;
        Ok((entries, total as u64))
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn history_entry(&self, key: &ConfigKey, revision: i64) -> Result<Option<HistoryRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM history \
             WHERE revision = ? AND namespace = ? AND grp = ? AND data_id = ?"
        ))
        .bind(revision)
        .bind(key.namespace.as_str())
        .bind(key.group.as_str())
        .bind(key.data_id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(history_from_row).transpose()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn changes_since(&self, seq: i64, limit: u32) -> Result<Vec<ChangeRecord>> {
        let rows = sqlx::query(
            "SELECT seq, namespace, grp, data_id, op, md5, created_at FROM change_log \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ChangeRecord {
                    seq: row.try_get("seq")?,
                    key: parse_key(row)?,
                    op: parse_op(row)?,
                    md5: row.try_get("md5")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(
            "SELECT username, password_hash, role, created_at, password_changed_at \
             FROM users ORDER BY username",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn get_user(&self, username: &Username) -> Result<Option<UserRecord>> {
        let row = sqlx::query(
            "SELECT username, password_hash, role, created_at, password_changed_at \
             FROM users WHERE username = ?",
        )
        .bind(username.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at, password_changed_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
        )
        .bind(user.username.as_str())
        .bind(&user.password_hash)
        .bind(&user.role)
        .bind(user.created_at)
        .bind(user.password_changed_at)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UserExists(user.username.to_string()));
        }
        Ok(())
    }

    #[instrument(skip(self, hash), err(level = "debug"))]
    async fn set_password(&self, username: &Username, hash: &str, changed_at: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE username = ?",
        )
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
    async fn delete_user(&self, username: &Username) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE username = ?")
            .bind(username.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UserNotFound(username.to_string()));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
