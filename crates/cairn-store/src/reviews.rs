//! Change requests (review before release), in the SQL store: the request, its
//! timeline of events, its audit entries and its webhook deliveries, each step in one
//! transaction.

use async_trait::async_trait;
use cairn_core::{Format, Namespace, Revision};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};
use std::str::FromStr as _;
use tracing::instrument;

use crate::model::{join_tags, split_tags};
use crate::sql::{act_audit, parse_key, text, SqlStore};
use crate::{
    Audit, ChangeRequestRecord, NewChangeRequest, Op, Page, Result, ReviewEventRecord,
    ReviewStatus, ReviewStep, ReviewStore, StoreError,
};

/// The columns [`SqlStore::request_from_row`] reads.
const REQUEST_COLUMNS: &str = "id, namespace, grp, data_id, op, content, md5, format, \
     description, tags, marked_sensitive, base_md5, base_revision, status, author, comment, reviewer, \
     released, created_at, updated_at";

/// What a change request's content is sealed under: its config.
pub(crate) fn content_identity(key: &cairn_core::ConfigKey) -> String {
    format!("change-request:{key}")
}

/// The webhook event a step of a change request is sent as.
fn webhook_event(event: &str) -> String {
    format!("change_request_{event}")
}

/// A text column that may be NULL (MySQL hands `TEXT` over as bytes).
fn optional_text(row: &AnyRow, column: &str) -> Result<Option<String>> {
    match row.try_get::<Option<String>, _>(column) {
        Ok(text) => Ok(text),
        Err(sqlx::Error::ColumnDecode { .. }) => row
            .try_get::<Option<Vec<u8>>, _>(column)?
            .map(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|e| StoreError::Corrupt(format!("column {column} is not UTF-8: {e}")))
            })
            .transpose(),
        Err(e) => Err(e.into()),
    }
}

impl SqlStore {
    fn request_from_row(&self, row: &AnyRow) -> Result<ChangeRequestRecord> {
        let key = parse_key(row)?;
        let op = text(row, "op")?;
        let status = text(row, "status")?;
        let format = optional_text(row, "format")?;
        let base_revision: i64 = row.try_get("base_revision")?;
        let released: Option<i64> = row.try_get("released")?;
        let sensitive: Option<i32> = row.try_get("marked_sensitive")?;
        Ok(ChangeRequestRecord {
            id: row.try_get("id")?,
            op: Op::parse(&op)
                .ok_or_else(|| StoreError::Corrupt(format!("change request op {op:?}")))?,
            content: crate::seal::open(
                self.sealer.as_deref(),
                &content_identity(&key),
                text(row, "content")?,
            )?,
            key,
            md5: text(row, "md5")?,
            format: format
                .map(|f| Format::from_str(&f).map_err(|e| StoreError::Corrupt(e.to_string())))
                .transpose()?,
            description: optional_text(row, "description")?,
            tags: optional_text(row, "tags")?.map(|t| split_tags(&t)),
            sensitive: sensitive.map(|s| s != 0),
            base_md5: text(row, "base_md5")?,
            base_revision: Revision::new(base_revision),
            status: ReviewStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("change request status {status:?}")))?,
            author: text(row, "author")?,
            comment: text(row, "comment")?,
            reviewer: text(row, "reviewer")?,
            released: released.and_then(Revision::new),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    async fn request_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: i64,
    ) -> Result<Option<ChangeRequestRecord>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM change_requests WHERE id = ?");
        let row = sqlx::query::<Any>(&self.sql_owned(&sql))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(|r| self.request_from_row(r)).transpose()
    }

    /// Records `event` of `request` in its timeline, the audit log and, for each of
    /// `webhooks`, a delivery (its sequence the event's id, negated, so it never meets a
    /// change's).
    async fn record_step(
        &self,
        tx: &mut Transaction<'_, Any>,
        request: &ChangeRequestRecord,
        event: &str,
        audit: &Audit,
        webhooks: &[i64],
    ) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO change_request_events (request_id, event, actor, comment, at) \
             VALUES (?, ?, ?, ?, ?)",
        );
        sqlx::query::<Any>(sql)
            .bind(request.id)
            .bind(event)
            .bind(&audit.operator)
            .bind(&audit.comment)
            .bind(audit.at)
            .execute(&mut **tx)
            .await?;
        let event_id: i64 =
            sqlx::query_scalar::<Any, i64>("SELECT MAX(id) FROM change_request_events")
                .fetch_one(&mut **tx)
                .await?;
        let sql = self.sql(
            "INSERT INTO webhook_deliveries (webhook_id, seq, event, namespace, grp, data_id, \
             md5, status, attempts, next_attempt_at, error, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, '', ?, ?)",
        );
        let kind = webhook_event(event);
        for hook in webhooks {
            sqlx::query::<Any>(sql)
                .bind(*hook)
                .bind(-event_id)
                .bind(&kind)
                .bind(request.key.namespace.as_str())
                .bind(request.key.group.as_str())
                .bind(request.key.data_id.as_str())
                .bind(&request.md5)
                .bind(audit.at)
                .bind(audit.at)
                .bind(audit.at)
                .execute(&mut **tx)
                .await?;
        }
        let entry = act_audit(
            audit,
            format!("review.{event}"),
            request.key.namespace.as_str(),
            format!("change request {} of {}", request.id, request.key),
            (!request.base_md5.is_empty()).then(|| request.base_md5.clone()),
            (!request.md5.is_empty()).then(|| request.md5.clone()),
        );
        self.insert_audit(&entry).execute(&mut **tx).await?;
        Ok(())
    }
}

#[async_trait]
impl ReviewStore for SqlStore {
    #[instrument(skip_all, fields(key = %new.key), err(level = "debug"))]
    async fn open_change_request(
        &self,
        new: &NewChangeRequest,
        webhooks: &[i64],
    ) -> Result<ChangeRequestRecord> {
        let mut tx = self.begin_write().await?;
        self.require_namespace(&mut tx, &new.key.namespace).await?;
        let stored = crate::seal::seal(
            self.sealer.as_deref(),
            &content_identity(&new.key),
            &new.content,
        )?;
        let sql = self.sql(
            "INSERT INTO change_requests (namespace, grp, data_id, op, content, md5, format, \
             description, tags, marked_sensitive, base_md5, base_revision, status, author, comment, \
             created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
        );
        sqlx::query::<Any>(sql)
            .bind(new.key.namespace.as_str())
            .bind(new.key.group.as_str())
            .bind(new.key.data_id.as_str())
            .bind(new.op.as_str())
            .bind(stored)
            .bind(&new.md5)
            .bind(new.format.map(|f| f.as_str()))
            .bind(new.description.clone())
            .bind(new.tags.as_deref().map(join_tags))
            .bind(new.sensitive.map(i32::from))
            .bind(&new.base_md5)
            .bind(new.base_revision.map_or(0, Revision::get))
            .bind(&new.audit.operator)
            .bind(&new.audit.comment)
            .bind(new.audit.at)
            .bind(new.audit.at)
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar::<Any, i64>("SELECT MAX(id) FROM change_requests")
            .fetch_one(&mut *tx)
            .await?;
        let request = self
            .request_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("change request {id} vanished")))?;
        self.record_step(&mut tx, &request, "opened", &new.audit, webhooks)
            .await?;
        tx.commit().await?;
        Ok(request)
    }

    async fn change_request(&self, id: i64) -> Result<Option<ChangeRequestRecord>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM change_requests WHERE id = ?");
        let row = sqlx::query::<Any>(&self.sql_owned(&sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(|r| self.request_from_row(r)).transpose()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn change_requests(
        &self,
        namespace: Option<&Namespace>,
        status: Option<ReviewStatus>,
        page: Page,
    ) -> Result<(Vec<ChangeRequestRecord>, u64)> {
        // Empty binds match everything, so one statement serves every filter.
        let filter = "(? = '' OR namespace = ?) AND (? = '' OR status = ?)";
        let ns = namespace.map_or("", |n| n.as_str());
        let status = status.map_or("", ReviewStatus::as_str);
        let sql = format!("SELECT COUNT(*) FROM change_requests WHERE {filter}");
        let total: i64 = sqlx::query_scalar::<Any, i64>(&self.sql_owned(&sql))
            .bind(ns)
            .bind(ns)
            .bind(status)
            .bind(status)
            .fetch_one(&self.reader)
            .await?;
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM change_requests WHERE {filter} \
             ORDER BY id DESC LIMIT ? OFFSET ?"
        );
        let rows = sqlx::query::<Any>(&self.sql_owned(&sql))
            .bind(ns)
            .bind(ns)
            .bind(status)
            .bind(status)
            .bind(i64::from(page.size))
            .bind(page.offset() as i64)
            .fetch_all(&self.reader)
            .await?;
        let items = rows
            .iter()
            .map(|r| self.request_from_row(r))
            .collect::<Result<_>>()?;
        Ok((items, total as u64))
    }

    async fn review_events(&self, id: i64) -> Result<Vec<ReviewEventRecord>> {
        let sql = self.sql(
            "SELECT id, request_id, event, actor, comment, at FROM change_request_events \
             WHERE request_id = ? ORDER BY id",
        );
        let rows = sqlx::query::<Any>(sql)
            .bind(id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ReviewEventRecord {
                    id: row.try_get("id")?,
                    request_id: row.try_get("request_id")?,
                    event: text(row, "event")?,
                    actor: text(row, "actor")?,
                    comment: text(row, "comment")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    async fn review_event(&self, event_id: i64) -> Result<Option<ReviewEventRecord>> {
        let sql = self.sql(
            "SELECT id, request_id, event, actor, comment, at FROM change_request_events \
             WHERE id = ?",
        );
        let row = sqlx::query::<Any>(sql)
            .bind(event_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(ReviewEventRecord {
                id: row.try_get("id")?,
                request_id: row.try_get("request_id")?,
                event: text(&row, "event")?,
                actor: text(&row, "actor")?,
                comment: text(&row, "comment")?,
                at: row.try_get("at")?,
            })
        })
        .transpose()
    }

    #[instrument(skip_all, fields(id = step.id, event = step.event), err(level = "debug"))]
    async fn step_change_request(&self, step: &ReviewStep) -> Result<Option<ChangeRequestRecord>> {
        let mut tx = self.begin_write().await?;
        let Some(request) = self.request_in(&mut tx, step.id).await? else {
            return Ok(None);
        };
        if request.status != step.from {
            return Ok(None);
        }
        let reviewer = match step.to {
            ReviewStatus::Approved | ReviewStatus::Rejected => step.audit.operator.as_str(),
            _ => request.reviewer.as_str(),
        };
        let sql = self.sql(
            "UPDATE change_requests SET status = ?, reviewer = ?, released = ?, updated_at = ? \
             WHERE id = ? AND status = ?",
        );
        sqlx::query::<Any>(sql)
            .bind(step.to.as_str())
            .bind(reviewer.to_owned())
            .bind(step.released.map(Revision::get))
            .bind(step.audit.at)
            .bind(step.id)
            .bind(step.from.as_str())
            .execute(&mut *tx)
            .await?;
        if let Some(rebase) = &step.rebase {
            let sql =
                self.sql("UPDATE change_requests SET base_md5 = ?, base_revision = ? WHERE id = ?");
            sqlx::query::<Any>(sql)
                .bind(&rebase.base_md5)
                .bind(rebase.base_revision.map_or(0, Revision::get))
                .bind(step.id)
                .execute(&mut *tx)
                .await?;
            if let Some((content, md5)) = &rebase.content {
                let stored = crate::seal::seal(
                    self.sealer.as_deref(),
                    &content_identity(&request.key),
                    content,
                )?;
                let sql = self.sql("UPDATE change_requests SET content = ?, md5 = ? WHERE id = ?");
                sqlx::query::<Any>(sql)
                    .bind(stored)
                    .bind(md5)
                    .bind(step.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let request = self
            .request_in(&mut tx, step.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("change request {} vanished", step.id)))?;
        self.record_step(&mut tx, &request, step.event, &step.audit, &step.webhooks)
            .await?;
        tx.commit().await?;
        Ok(Some(request))
    }
}
