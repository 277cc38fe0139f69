//! Rotating the encryption key: every sealed value is opened and, unless the current
//! key sealed it, stored again under it (a data key re-wrapped, or a plain value written
//! before the key was configured sealed), in small transactions while the nodes serve.

use sqlx::{Any, Row};

use crate::seal::{reseal, Resealed};
use crate::sql::{parse_key, text, SqlStore};
use crate::{Result, StoreError};

/// What a pass over the stored values did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Values whose data key is now wrapped by the current key.
    pub rewrapped: u64,
    /// Values that were stored in the clear and are now sealed.
    pub sealed: u64,
    /// Values already sealed under the current key.
    pub current: u64,
    /// Values changed by a write while they were being resealed (that write sealed
    /// them itself); another pass looks at them again.
    pub raced: u64,
}

impl ResealReport {
    fn count(&mut self, done: Resealed, stored: bool) {
        match (done, stored) {
            (Resealed::Current, _) => self.current += 1,
            (_, false) => self.raced += 1,
            (Resealed::Rewrapped, true) => self.rewrapped += 1,
            (Resealed::Sealed, true) => self.sealed += 1,
        }
    }
}

/// Rows read and rewritten per transaction.
const PAGE: i64 = 200;

/// The statements of a table keyed by a config: a page after a key, and a
/// compare-and-set of the content.
macro_rules! keyed_by_config {
    ($table:literal) => {
        (
            concat!(
                "SELECT namespace, grp, data_id, content FROM ",
                $table,
                " WHERE namespace > ? OR (namespace = ? AND (grp > ? OR (grp = ? AND data_id > ?))) \
                 ORDER BY namespace, grp, data_id LIMIT ?"
            ),
            concat!(
                "UPDATE ",
                $table,
                " SET content = ? WHERE namespace = ? AND grp = ? AND data_id = ? AND content = ?"
            ),
        )
    };
}

impl SqlStore {
    /// One pass over every sealed value (configs, history, gray releases, shared
    /// secrets, access-key secrets) under the configured key.
    pub(crate) async fn reseal_all(&self) -> Result<ResealReport> {
        let Some(sealer) = self.sealer.clone() else {
            return Err(StoreError::Encryption(
                "no encryption key is configured: set encryption_key_file first".into(),
            ));
        };
        let mut report = ResealReport::default();
        for (kind, (select, update)) in [
            ("config", keyed_by_config!("configs")),
            ("gray", keyed_by_config!("gray_releases")),
        ] {
            let mut after = (String::new(), String::new(), String::new());
            loop {
                let rows = sqlx::query::<Any>(self.sql(select))
                    .bind(&after.0)
                    .bind(&after.0)
                    .bind(&after.1)
                    .bind(&after.1)
                    .bind(&after.2)
                    .bind(PAGE)
                    .fetch_all(&self.reader)
                    .await?;
                let Some(last) = rows.last() else { break };
                after = (
                    text(last, "namespace")?,
                    text(last, "grp")?,
                    text(last, "data_id")?,
                );
                let mut tx = self.begin_write().await?;
                for row in &rows {
                    let key = parse_key(row)?;
                    let stored = text(row, "content")?;
                    let (done, new) = reseal(&sealer, &format!("{kind}:{key}"), &stored)?;
                    let mut written = true;
                    if let Some(new) = new {
                        written = sqlx::query::<Any>(self.sql(update))
                            .bind(new)
                            .bind(key.namespace.as_str())
                            .bind(key.group.as_str())
                            .bind(key.data_id.as_str())
                            .bind(&stored)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1;
                    }
                    report.count(done, written);
                }
                tx.commit().await?;
            }
        }
        self.reseal_history(&sealer, &mut report).await?;
        self.reseal_small(&sealer, &mut report).await?;
        Ok(report)
    }

    async fn reseal_history(
        &self,
        sealer: &crate::Sealer,
        report: &mut ResealReport,
    ) -> Result<()> {
        let mut after: i64 = i64::MIN;
        loop {
            let rows = sqlx::query::<Any>(self.sql(
                "SELECT revision, namespace, grp, data_id, content FROM history \
                 WHERE revision > ? ORDER BY revision LIMIT ?",
            ))
            .bind(after)
            .bind(PAGE)
            .fetch_all(&self.reader)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.try_get("revision")?;
            let mut tx = self.begin_write().await?;
            for row in &rows {
                let revision: i64 = row.try_get("revision")?;
                let key = parse_key(row)?;
                let stored = text(row, "content")?;
                let (done, new) = reseal(sealer, &format!("history:{key}"), &stored)?;
                let mut written = true;
                if let Some(new) = new {
                    written =
                        sqlx::query::<Any>(self.sql(
                            "UPDATE history SET content = ? WHERE revision = ? AND content = ?",
                        ))
                        .bind(new)
                        .bind(revision)
                        .bind(&stored)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1;
                }
                report.count(done, written);
            }
            tx.commit().await?;
        }
    }

    /// The shared token signing key, the access-key secrets, the webhook secrets and
    /// the change requests' contents: a handful of rows (requests are few, and each
    /// is read and rewritten under the write lock, so a rebase cannot be lost).
    async fn reseal_small(&self, sealer: &crate::Sealer, report: &mut ResealReport) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let secrets = sqlx::query::<Any>("SELECT name, value FROM secrets")
            .fetch_all(&mut *tx)
            .await?;
        for row in &secrets {
            let (name, stored) = (text(row, "name")?, text(row, "value")?);
            let (done, new) = reseal(sealer, &format!("secret:{name}"), &stored)?;
            if let Some(new) = new {
                sqlx::query::<Any>(self.sql("UPDATE secrets SET value = ? WHERE name = ?"))
                    .bind(new)
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?;
            }
            report.count(done, true);
        }
        let keys = sqlx::query::<Any>("SELECT app_id, id, secret FROM access_keys")
            .fetch_all(&mut *tx)
            .await?;
        for row in &keys {
            let (app_id, id, stored) =
                (text(row, "app_id")?, text(row, "id")?, text(row, "secret")?);
            let (done, new) = reseal(sealer, &format!("access-key:{app_id}/{id}"), &stored)?;
            if let Some(new) = new {
                sqlx::query::<Any>(
                    self.sql("UPDATE access_keys SET secret = ? WHERE app_id = ? AND id = ?"),
                )
                .bind(new)
                .bind(&app_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            }
            report.count(done, true);
        }
        let hooks = sqlx::query::<Any>("SELECT id, namespace, url, secret FROM webhooks")
            .fetch_all(&mut *tx)
            .await?;
        for row in &hooks {
            let id: i64 = row.try_get("id")?;
            let identity =
                crate::webhooks::secret_identity(&text(row, "namespace")?, &text(row, "url")?);
            let (done, new) = reseal(sealer, &identity, &text(row, "secret")?)?;
            if let Some(new) = new {
                sqlx::query::<Any>(self.sql("UPDATE webhooks SET secret = ? WHERE id = ?"))
                    .bind(new)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            report.count(done, true);
        }
        let requests =
            sqlx::query::<Any>("SELECT id, namespace, grp, data_id, content FROM change_requests")
                .fetch_all(&mut *tx)
                .await?;
        for row in &requests {
            let id: i64 = row.try_get("id")?;
            let identity = crate::reviews::content_identity(&parse_key(row)?);
            let (done, new) = reseal(sealer, &identity, &text(row, "content")?)?;
            if let Some(new) = new {
                sqlx::query::<Any>(self.sql("UPDATE change_requests SET content = ? WHERE id = ?"))
                    .bind(new)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            report.count(done, true);
        }
        tx.commit().await?;
        Ok(())
    }
}
