//! Imports written a page at a time: each statement carries a page of configs, so an
//! import of thousands pays a handful of round trips per page instead of five per
//! config, while every config is checked and recorded exactly as a single publish is.

use std::collections::HashMap;

use sqlx::{Any, Row as _, Transaction};

use crate::sql::{
    bind_audit, change_audit, current_columns, insert_audit, insert_change, insert_config,
    insert_history, is_unique_violation, text, Current, Planned, SqlStore, UPDATE_CONFIG,
};
use crate::{ConfigRecord, ConfigWrite, Result, StoreError};
use cairn_core::Revision;

/// Configs written per statement. The history insert binds 15 values a row, so a page
/// stays far below every backend's limit on bound values (SQLite's is 32,766), and a
/// page of 1 KiB configs is a statement of a few hundred KiB.
pub(crate) const PAGE: usize = 200;

/// Content bytes per statement at most (a page ends early once over it): a statement
/// must stay within the server's packet limit (MariaDB's `max_allowed_packet` is
/// 16 MiB by default) with every row's other columns and sealing's overhead.
pub(crate) const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// `writes` cut into pages of at most [`PAGE`] configs and about [`PAGE_BYTES`] of
/// content (a page always takes at least one).
pub(crate) fn pages(writes: &[ConfigWrite]) -> Vec<&[ConfigWrite]> {
    let mut pages = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, write) in writes.iter().enumerate() {
        if i > start && (i - start == PAGE || bytes + write.content.len() > PAGE_BYTES) {
            pages.push(&writes[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += write.content.len();
    }
    if start < writes.len() {
        pages.push(&writes[start..]);
    }
    pages
}

/// `rows` groups of `columns` placeholders: `(?, ?), (?, ?)`.
fn rows(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

impl SqlStore {
    /// Writes `writes` (distinct keys, in existing namespaces) inside `tx`, a page per
    /// statement, all or nothing; the records come back in the order of `writes`.
    pub(crate) async fn import_page(
        &self,
        tx: &mut Transaction<'static, Any>,
        writes: &[ConfigWrite],
    ) -> Result<Vec<ConfigRecord>> {
        let writes: Vec<&ConfigWrite> = writes.iter().collect();
        let currents = self.currents_of(tx, &writes).await?;
        let planned = writes
            .iter()
            .zip(&currents)
            .map(|(write, current)| Planned::new(write, current.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        self.write_planned(tx, &writes, &currents, planned).await
    }

    /// Writes `writes`, each checked already against its stored state (`currents`)
    /// into `planned`, a statement per table for them all.
    pub(crate) async fn write_planned(
        &self,
        tx: &mut Transaction<'static, Any>,
        writes: &[&ConfigWrite],
        currents: &[Option<Current>],
        planned: Vec<Planned>,
    ) -> Result<Vec<ConfigRecord>> {
        let revisions = self.append_changes(tx, writes).await?;

        // New configs in one insert; replaced ones are rarer in an import and each is
        // an update of its own.
        let fresh: Vec<usize> = (0..writes.len())
            .filter(|&i| currents[i].is_none())
            .collect();
        if !fresh.is_empty() {
            let sql = self.sql_owned(&format!("{}{}", insert_config!(), rows(14, fresh.len())));
            let mut query = sqlx::query::<Any>(&sql);
            for &i in &fresh {
                query = self.bind_config(query, writes[i], revisions[i], &planned[i])?;
            }
            if let Err(e) = query.execute(&mut **tx).await {
                if is_unique_violation(&e) {
                    return Err(StoreError::Conflict(
                        "a config of this import was created meanwhile; import again".into(),
                    ));
                }
                return Err(e.into());
            }
        }
        for i in (0..writes.len()).filter(|&i| currents[i].is_some()) {
            self.bind_config(
                sqlx::query::<Any>(self.sql(UPDATE_CONFIG)),
                writes[i],
                revisions[i],
                &planned[i],
            )?
            .execute(&mut **tx)
            .await?;
        }

        let sql = self.sql_owned(&format!("{}{}", insert_history!(), rows(15, writes.len())));
        let mut query = sqlx::query::<Any>(&sql);
        for (i, write) in writes.iter().enumerate() {
            let plan = &planned[i];
            query = self.bind_history(
                query,
                revisions[i],
                &write.key,
                write.op,
                &write.content,
                plan.format,
                &write.md5,
                &plan.description,
                &plan.tags,
                &write.audit,
                plan.sensitive,
            )?;
        }
        query.execute(&mut **tx).await?;

        // The audit entries commit with the changes, or none does.
        let entries: Vec<_> = writes
            .iter()
            .zip(currents)
            .map(|(w, current)| {
                let before = current.as_ref().map(|c| c.md5.as_str());
                change_audit(&w.key, w.op, &w.md5, &w.audit, before)
            })
            .collect();
        let sql = self.sql_owned(&format!("{}{}", insert_audit!(), rows(11, entries.len())));
        let mut query = sqlx::query::<Any>(&sql);
        for entry in &entries {
            query = bind_audit(query, entry);
        }
        query.execute(&mut **tx).await?;

        Ok(planned
            .into_iter()
            .zip(writes)
            .zip(revisions)
            .map(|((plan, write), revision)| plan.record(write, revision))
            .collect())
    }

    /// The stored state of each of `writes`' configs, in their order: one query per
    /// namespace and group.
    pub(crate) async fn currents_of(
        &self,
        tx: &mut Transaction<'static, Any>,
        writes: &[&ConfigWrite],
    ) -> Result<Vec<Option<Current>>> {
        let mut groups: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, write) in writes.iter().enumerate() {
            let key = &write.key;
            groups
                .entry((key.namespace.as_str(), key.group.as_str()))
                .or_default()
                .push(i);
        }
        let mut found: Vec<Option<Current>> = writes.iter().map(|_| None).collect();
        for ((namespace, group), members) in groups {
            let sql = self.sql_owned(&format!(
                concat!(
                    "SELECT data_id, ",
                    current_columns!(),
                    " FROM configs WHERE namespace = ? AND grp = ? AND data_id IN ({})"
                ),
                vec!["?"; members.len()].join(", ")
            ));
            let mut query = sqlx::query::<Any>(&sql).bind(namespace).bind(group);
            for &i in &members {
                query = query.bind(writes[i].key.data_id.as_str());
            }
            let mut by_id: HashMap<String, Current> = HashMap::new();
            for row in query.fetch_all(&mut **tx).await? {
                by_id.insert(text(&row, "data_id")?, Current::from_row(&row)?);
            }
            for i in members {
                found[i] = by_id.remove(writes[i].key.data_id.as_str());
            }
        }
        Ok(found)
    }

    /// Takes a change-log sequence for each of `writes`, in one insert; the revisions
    /// come back in the order of `writes`.
    async fn append_changes(
        &self,
        tx: &mut Transaction<'static, Any>,
        writes: &[&ConfigWrite],
    ) -> Result<Vec<Revision>> {
        let values = rows(6, writes.len());
        let sql = if self.dialect.returning {
            format!(
                "{}{values} RETURNING seq, namespace, grp, data_id",
                insert_change!()
            )
        } else {
            format!("{}{values}", insert_change!())
        };
        let sql = self.sql_owned(&sql);
        let mut query = sqlx::query::<Any>(&sql);
        for write in writes {
            let key = &write.key;
            query = query
                .bind(key.namespace.as_str())
                .bind(key.group.as_str())
                .bind(key.data_id.as_str())
                .bind(write.op.as_str())
                .bind(write.md5.as_str())
                .bind(write.audit.at);
        }
        let rows = if self.dialect.returning {
            query.fetch_all(&mut **tx).await?
        } else {
            query.execute(&mut **tx).await?;
            // Writers hold the write lock, so this statement's sequences are the ones
            // from the first it took on.
            let first: i64 =
                sqlx::query_scalar::<Any, i64>("SELECT CAST(LAST_INSERT_ID() AS SIGNED)")
                    .fetch_one(&mut **tx)
                    .await?;
            let sql = self.sql(
                "SELECT seq, namespace, grp, data_id FROM change_log WHERE seq >= ? \
                 ORDER BY seq LIMIT ?",
            );
            sqlx::query::<Any>(sql)
                .bind(first)
                .bind(writes.len() as i64)
                .fetch_all(&mut **tx)
                .await?
        };
        // Matched by key rather than by position: no backend promises the order of
        // the rows a multi-row insert returns.
        let mut taken: HashMap<(String, String, String), i64> = HashMap::new();
        for row in &rows {
            let key = (
                text(row, "namespace")?,
                text(row, "grp")?,
                text(row, "data_id")?,
            );
            taken.insert(key, row.try_get("seq")?);
        }
        writes
            .iter()
            .map(|write| {
                let key = &write.key;
                let id = (
                    key.namespace.to_string(),
                    key.group.to_string(),
                    key.data_id.to_string(),
                );
                let seq = taken.get(&id).copied().ok_or_else(|| {
                    StoreError::Corrupt(format!("no change-log sequence was taken for {key}"))
                })?;
                Revision::new(seq).ok_or_else(|| {
                    StoreError::Corrupt(format!("change-log sequence {seq} is not positive"))
                })
            })
            .collect()
    }
}
