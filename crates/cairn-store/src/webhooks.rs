//! Webhook subscriptions and their deliveries, in the SQL store. Deliveries are made
//! from change-log entries by moving a cursor in `cluster_state`, with compare-and-set,
//! so each entry is turned into deliveries once however many nodes try.

use async_trait::async_trait;
use cairn_core::Namespace;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _};
use tracing::instrument;

use crate::sql::{act_audit, parse_key, text, SqlStore};
use crate::{
    Attempt, Audit, DeliveryRecord, DeliveryStatus, NewDelivery, Page, Result, StoreError,
    WebhookRecord, WebhookStore, WebhookWrite,
};

/// The columns [`webhook_from_row`] reads.
const WEBHOOK_COLUMNS: &str =
    "id, namespace, url, secret, events, grp, data_id, after_seq, created_by, created_at";

/// The columns [`delivery_from_row`] reads.
const DELIVERY_COLUMNS: &str = "id, webhook_id, seq, event, namespace, grp, data_id, md5, \
     status, attempts, next_attempt_at, response_code, error, latency_ms, created_at, updated_at";

/// What a webhook's secret is sealed under: its namespace and URL, so a sealed secret
/// cannot be moved to another subscription.
pub(crate) fn secret_identity(namespace: &str, url: &str) -> String {
    format!("webhook:{namespace}:{url}")
}

impl SqlStore {
    fn webhook_from_row(&self, row: &AnyRow) -> Result<WebhookRecord> {
        let namespace = text(row, "namespace")?;
        let url = text(row, "url")?;
        let secret = crate::seal::open(
            self.sealer.as_deref(),
            &secret_identity(&namespace, &url),
            text(row, "secret")?,
        )?;
        Ok(WebhookRecord {
            id: row.try_get("id")?,
            namespace: Namespace::parse(&namespace)
                .map_err(|e| StoreError::Corrupt(format!("webhook namespace {namespace}: {e}")))?,
            url,
            secret,
            events: text(row, "events")?
                .split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect(),
            group: text(row, "grp")?,
            data_id: text(row, "data_id")?,
            after_seq: row.try_get("after_seq")?,
            created_by: text(row, "created_by")?,
            created_at: row.try_get("created_at")?,
        })
    }

    async fn audit_webhook(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        action: &str,
        hook: &WebhookRecord,
        audit: &Audit,
    ) -> Result<()> {
        let entry = act_audit(
            audit,
            action.to_owned(),
            hook.namespace.as_str(),
            format!("webhook {} {}", hook.id, hook.url),
            None,
            None,
        );
        self.insert_audit(&entry).execute(&mut **tx).await?;
        Ok(())
    }
}

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord> {
    let status = text(row, "status")?;
    let attempts: i32 = row.try_get("attempts")?;
    let code: Option<i32> = row.try_get("response_code")?;
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        seq: row.try_get("seq")?,
        event: text(row, "event")?,
        key: parse_key(row)?,
        md5: text(row, "md5")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.try_get("next_attempt_at")?,
        response_code: code.and_then(|c| u16::try_from(c).ok()),
        error: text(row, "error")?,
        latency_ms: row.try_get("latency_ms")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[async_trait]
impl WebhookStore for SqlStore {
    #[instrument(skip_all, fields(namespace = %write.namespace), err(level = "debug"))]
    async fn add_webhook(&self, write: &WebhookWrite) -> Result<WebhookRecord> {
        let mut tx = self.begin_write().await?;
        let ns = write.namespace.as_str();
        let sql = self.sql("SELECT COUNT(*) FROM namespaces WHERE name = ?");
        let exists: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(ns)
            .fetch_one(&mut *tx)
            .await?;
        if exists == 0 {
            return Err(StoreError::NamespaceNotFound(ns.to_owned()));
        }
        // This write holds the write lock alone: no publish is in flight, every change
        // up to the newest has committed and none commits between this read and the
        // subscription, so it gets exactly the changes after it.
        let after_seq: i64 =
            sqlx::query_scalar::<Any, Option<i64>>("SELECT MAX(seq) FROM change_log")
                .fetch_one(&mut *tx)
                .await?
                .unwrap_or(0);
        // With no subscription, nobody moved the delivery cursor (nothing needed it):
        // the first one starts it at its own start, so earlier changes are not scanned.
        let others: i64 = sqlx::query_scalar::<Any, i64>("SELECT COUNT(*) FROM webhooks")
            .fetch_one(&mut *tx)
            .await?;
        if others == 0 {
            let sql = self.sql("UPDATE cluster_state SET webhook_seq = ? WHERE webhook_seq < ?");
            sqlx::query::<Any>(sql)
                .bind(after_seq)
                .bind(after_seq)
                .execute(&mut *tx)
                .await?;
        }
        let secret = crate::seal::seal(
            self.sealer.as_deref(),
            &secret_identity(ns, &write.url),
            &write.secret,
        )?;
        let sql = self.sql(
            "INSERT INTO webhooks (namespace, url, secret, events, grp, data_id, after_seq, \
             created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        sqlx::query::<Any>(sql)
            .bind(ns)
            .bind(&write.url)
            .bind(secret)
            .bind(write.events.join(","))
            .bind(&write.group)
            .bind(&write.data_id)
            .bind(after_seq)
            .bind(&write.audit.operator)
            .bind(write.audit.at)
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar::<Any, i64>("SELECT MAX(id) FROM webhooks")
            .fetch_one(&mut *tx)
            .await?;
        let record = WebhookRecord {
            id,
            namespace: write.namespace.clone(),
            url: write.url.clone(),
            secret: write.secret.clone(),
            events: write.events.clone(),
            group: write.group.clone(),
            data_id: write.data_id.clone(),
            after_seq,
            created_by: write.audit.operator.clone(),
            created_at: write.audit.at,
        };
        self.audit_webhook(&mut tx, "webhook.add", &record, &write.audit)
            .await?;
        tx.commit().await?;
        Ok(record)
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn webhooks(&self, namespace: Option<&Namespace>) -> Result<Vec<WebhookRecord>> {
        let rows = match namespace {
            Some(ns) => {
                let sql = format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE namespace = ? ORDER BY id"
                );
                sqlx::query::<Any>(&self.sql_owned(&sql))
                    .bind(ns.as_str())
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id");
                sqlx::query::<Any>(&self.sql_owned(&sql))
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        rows.iter().map(|r| self.webhook_from_row(r)).collect()
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn webhook(&self, id: i64) -> Result<Option<WebhookRecord>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?");
        let row = sqlx::query::<Any>(&self.sql_owned(&sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(|r| self.webhook_from_row(r)).transpose()
    }

    #[instrument(skip(self, audit), err(level = "debug"))]
    async fn remove_webhook(&self, id: i64, audit: &Audit) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?");
        let row = sqlx::query::<Any>(&self.sql_owned(&sql))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(hook) = row.as_ref().map(|r| self.webhook_from_row(r)).transpose()? else {
            return Ok(false);
        };
        for sql in [
            "DELETE FROM webhook_deliveries WHERE webhook_id = ?",
            "DELETE FROM webhooks WHERE id = ?",
        ] {
            sqlx::query::<Any>(self.sql(sql))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        self.audit_webhook(&mut tx, "webhook.remove", &hook, audit)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn webhook_cursor(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar::<Any, i64>("SELECT webhook_seq FROM cluster_state")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    #[instrument(skip(self, deliveries), fields(count = deliveries.len()), err(level = "debug"))]
    async fn enqueue_deliveries(
        &self,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let sql = self.sql("UPDATE cluster_state SET webhook_seq = ? WHERE webhook_seq = ?");
        let moved = sqlx::query::<Any>(sql)
            .bind(to)
            .bind(from)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        let sql = self.sql(
            "INSERT INTO webhook_deliveries (webhook_id, seq, event, namespace, grp, data_id, \
             md5, status, attempts, next_attempt_at, error, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, '', ?, ?)",
        );
        for d in deliveries {
            sqlx::query::<Any>(sql)
                .bind(d.webhook_id)
                .bind(d.seq)
                .bind(d.event.as_str())
                .bind(d.key.namespace.as_str())
                .bind(d.key.group.as_str())
                .bind(d.key.data_id.as_str())
                .bind(&d.md5)
                .bind(d.at)
                .bind(d.at)
                .bind(d.at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn pending_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' \
             ORDER BY id LIMIT ?"
        );
        let rows = sqlx::query::<Any>(&self.sql_owned(&sql))
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn claim_delivery(&self, id: i64, now: i64, lease_until: i64) -> Result<bool> {
        let sql = self.sql(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?, \
             updated_at = ? WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?",
        );
        let taken = sqlx::query::<Any>(sql)
            .bind(lease_until)
            .bind(now)
            .bind(id)
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(taken == 1)
    }

    async fn finish_delivery(&self, id: i64, attempt: &Attempt) -> Result<()> {
        let sql = self.sql(
            "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, response_code = ?, \
             error = ?, latency_ms = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query::<Any>(sql)
            .bind(attempt.status.as_str())
            .bind(attempt.next_attempt_at)
            .bind(attempt.response_code.map(i32::from))
            .bind(&attempt.error)
            .bind(attempt.latency_ms)
            .bind(attempt.at)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn deliveries(&self, webhook_id: i64, page: Page) -> Result<(Vec<DeliveryRecord>, u64)> {
        let sql = self.sql("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?");
        let total: i64 = sqlx::query_scalar::<Any, i64>(sql)
            .bind(webhook_id)
            .fetch_one(&self.reader)
            .await?;
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ? \
             ORDER BY id DESC LIMIT ? OFFSET ?"
        );
        let rows = sqlx::query::<Any>(&self.sql_owned(&sql))
            .bind(webhook_id)
            .bind(i64::from(page.size))
            .bind(page.offset() as i64)
            .fetch_all(&self.reader)
            .await?;
        let items = rows.iter().map(delivery_from_row).collect::<Result<_>>()?;
        Ok((items, total as u64))
    }

    async fn redeliver(&self, webhook_id: i64, delivery_id: i64, now: i64) -> Result<bool> {
        let sql = self.sql(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, \
             created_at = ?, updated_at = ? WHERE id = ? AND webhook_id = ?",
        );
        let changed = sqlx::query::<Any>(sql)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(delivery_id)
            .bind(webhook_id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }
}
