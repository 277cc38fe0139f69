//! JSON Schemas attached to configs, in the SQL store: the current attachments, a
//! version row per change, and the audit entry, written in one transaction.

use async_trait::async_trait;
use cairn_core::md5::md5_hex;
use cairn_core::Namespace;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};
use tracing::instrument;

use crate::sql::{act_audit, text, SqlStore};
use crate::{
    Audit, Result, SchemaRecord, SchemaStore, SchemaTarget, SchemaVersion, SchemaWrite, StoreError,
};

fn target_from_row(row: &AnyRow) -> Result<SchemaTarget> {
    let namespace = text(row, "namespace")?;
    Ok(SchemaTarget {
        namespace: Namespace::parse(&namespace)
            .map_err(|e| StoreError::Corrupt(format!("schema namespace {namespace}: {e}")))?,
        group: text(row, "grp")?,
        data_id: text(row, "data_id")?,
    })
}

fn version(row: &AnyRow) -> Result<u64> {
    let n: i64 = row.try_get("version")?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("schema version {n}")))
}

fn schema_from_row(row: &AnyRow) -> Result<SchemaRecord> {
    Ok(SchemaRecord {
        target: target_from_row(row)?,
        body: text(row, "body")?,
        version: version(row)?,
        created_by: text(row, "created_by")?,
        created_at: row.try_get("created_at")?,
        updated_by: text(row, "updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The columns [`schema_from_row`] reads, for `concat!` into statements.
macro_rules! schema_columns {
    () => {
        "namespace, grp, data_id, body, version, created_by, created_at, updated_by, updated_at"
    };
}

impl SqlStore {
    async fn schema_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        target: &SchemaTarget,
    ) -> Result<Option<SchemaRecord>> {
        let sql = self.sql(concat!(
            "SELECT ",
            schema_columns!(),
            " FROM config_schemas WHERE namespace = ? AND grp = ? AND data_id = ?"
        ));
        let row = sqlx::query::<Any>(sql)
            .bind(target.namespace.as_str())
            .bind(target.group.as_str())
            .bind(target.data_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(schema_from_row).transpose()
    }

    /// Records a version of `target` and its audit entry.
    async fn schema_changed(
        &self,
        tx: &mut Transaction<'_, Any>,
        record: &SchemaRecord,
        op: &str,
        before: Option<&str>,
        audit: &Audit,
    ) -> Result<()> {
        let removed = op == "remove";
        let body = if removed { "" } else { record.body.as_str() };
        let sql = self.sql(
            "INSERT INTO config_schema_history (namespace, grp, data_id, version, op, body, \
             operator, comment, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        sqlx::query::<Any>(sql)
            .bind(record.target.namespace.as_str())
            .bind(record.target.group.as_str())
            .bind(record.target.data_id.as_str())
            .bind(record.version as i64)
            .bind(op)
            .bind(body)
            .bind(&audit.operator)
            .bind(&audit.comment)
            .bind(audit.at)
            .execute(&mut **tx)
            .await?;
        let entry = act_audit(
            audit,
            format!("schema.{op}"),
            record.target.namespace.as_str(),
            record.target.to_string(),
            before.map(md5_hex),
            (!removed).then(|| md5_hex(body)),
        );
        self.insert_audit(&entry).execute(&mut **tx).await?;
        Ok(())
    }
}

#[async_trait]
impl SchemaStore for SqlStore {
    #[instrument(skip(self), err(level = "debug"))]
    async fn schemas(&self) -> Result<Vec<SchemaRecord>> {
        let sql = concat!(
            "SELECT ",
            schema_columns!(),
            " FROM config_schemas ORDER BY namespace, grp, data_id"
        );
        let rows = sqlx::query::<Any>(sql).fetch_all(&self.reader).await?;
        rows.iter().map(schema_from_row).collect()
    }

    #[instrument(skip_all, fields(target = %write.target), err(level = "debug"))]
    async fn put_schema(&self, write: &SchemaWrite) -> Result<SchemaRecord> {
        let mut tx = self.begin_write().await?;
        let ns = &write.target.namespace;
        let sql = self.sql("SELECT COUNT(*) FROM namespaces WHERE name = ?");
        let exists: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(ns.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if exists == 0 {
            return Err(StoreError::NamespaceNotFound(ns.to_string()));
        }
        let current = self.schema_in(&mut tx, &write.target).await?;
        let stored = current.as_ref().map_or(0, |c| c.version);
        if write.expect_version.is_some_and(|v| v != stored) {
            return Err(StoreError::Conflict(format!(
                "the schema of {} is at version {stored}, not {}; read it again",
                write.target,
                write.expect_version.unwrap_or_default()
            )));
        }
        // Numbering goes on after a removal, so versions never repeat in the history.
        let sql = self.sql(
            "SELECT COALESCE(MAX(version), 0) FROM config_schema_history \
             WHERE namespace = ? AND grp = ? AND data_id = ?",
        );
        let last: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(ns.as_str())
            .bind(write.target.group.as_str())
            .bind(write.target.data_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let at = write.audit.at;
        let record = SchemaRecord {
            target: write.target.clone(),
            body: write.body.clone(),
            version: stored.max(u64::try_from(last).unwrap_or(0)) + 1,
            created_by: current
                .as_ref()
                .map_or_else(|| write.audit.operator.clone(), |c| c.created_by.clone()),
            created_at: current.as_ref().map_or(at, |c| c.created_at),
            updated_by: write.audit.operator.clone(),
            updated_at: at,
        };
        let sql = self.sql(if current.is_some() {
            "UPDATE config_schemas SET body = ?, version = ?, created_by = ?, created_at = ?, \
             updated_by = ?, updated_at = ? WHERE namespace = ? AND grp = ? AND data_id = ?"
        } else {
            "INSERT INTO config_schemas (body, version, created_by, created_at, updated_by, \
             updated_at, namespace, grp, data_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        });
        sqlx::query::<Any>(sql)
            .bind(&record.body)
            .bind(record.version as i64)
            .bind(&record.created_by)
            .bind(record.created_at)
            .bind(&record.updated_by)
            .bind(record.updated_at)
            .bind(ns.as_str())
            .bind(record.target.group.as_str())
            .bind(record.target.data_id.as_str())
            .execute(&mut *tx)
            .await?;
        let before = current.as_ref().map(|c| c.body.as_str());
        self.schema_changed(&mut tx, &record, "set", before, &write.audit)
            .await?;
        tx.commit().await?;
        Ok(record)
    }

    #[instrument(skip(self, audit), err(level = "debug"))]
    async fn remove_schema(&self, target: &SchemaTarget, audit: &Audit) -> Result<SchemaRecord> {
        let mut tx = self.begin_write().await?;
        let Some(current) = self.schema_in(&mut tx, target).await? else {
            return Err(StoreError::SchemaNotFound(target.to_string()));
        };
        let sql =
            self.sql("DELETE FROM config_schemas WHERE namespace = ? AND grp = ? AND data_id = ?");
        sqlx::query::<Any>(sql)
            .bind(target.namespace.as_str())
            .bind(target.group.as_str())
            .bind(target.data_id.as_str())
            .execute(&mut *tx)
            .await?;
        let removed = SchemaRecord {
            version: current.version + 1,
            ..current.clone()
        };
        self.schema_changed(&mut tx, &removed, "remove", Some(&current.body), audit)
            .await?;
        tx.commit().await?;
        Ok(current)
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn schema_history(&self, target: &SchemaTarget) -> Result<Vec<SchemaVersion>> {
        let sql = self.sql(
            "SELECT namespace, grp, data_id, version, op, body, operator, comment, created_at \
             FROM config_schema_history WHERE namespace = ? AND grp = ? AND data_id = ? \
             ORDER BY version DESC, id DESC",
        );
        let rows = sqlx::query::<Any>(sql)
            .bind(target.namespace.as_str())
            .bind(target.group.as_str())
            .bind(target.data_id.as_str())
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SchemaVersion {
                    target: target_from_row(row)?,
                    version: version(row)?,
                    op: text(row, "op")?,
                    body: text(row, "body")?,
                    operator: text(row, "operator")?,
                    comment: text(row, "comment")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
