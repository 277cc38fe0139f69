//! Imports written a page at a time: each statement carries a page of configs, so an
//! import of thousands pays a handful of round trips per page instead of five per
//! config, while every config is checked and recorded exactly as a single publish is.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Any, Row as _, Transaction};

use crate::sql::{
    bind_audit, bind_change, change_audit, current_columns, insert_audit, insert_change,
    insert_change_at, insert_config, insert_history, is_unique_violation, text, Current, Planned,
    Query, SqlStore,
};
use crate::{ConfigRecord, ConfigWrite, Op, PastVersion, Result, StoreError};
use cairn_core::{ConfigKey, Revision};

/// Configs written per statement. The history insert binds 16 values a row, so a page
/// stays far below every backend's limit on bound values (SQLite's is 32,766), and a
/// page of 1 KiB configs is a statement of a few hundred KiB.
pub(crate) const PAGE: usize = 200;

/// Content bytes per statement at most (a page ends early once over it): a statement
/// must stay within the server's packet limit (MariaDB's `max_allowed_packet` is
/// 16 MiB by default) with every row's other columns and sealing's overhead.
pub(crate) const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// `items` cut into pages of at most [`PAGE`] and about [`PAGE_BYTES`] of content as
/// `bytes` counts it (a page always takes at least one).
pub(crate) fn pages<T>(items: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut pages = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let more = bytes(item);
        if i > start && (i - start == PAGE || size + more > PAGE_BYTES) {
            pages.push(&items[start..i]);
            (start, size) = (i, 0);
        }
        size += more;
    }
    if start < items.len() {
        pages.push(&items[start..]);
    }
    pages
}

/// An import's past versions by config, each config's in the order given (oldest
/// first).
pub(crate) fn past_by_key(past: &[PastVersion]) -> HashMap<&ConfigKey, Vec<&PastVersion>> {
    let mut by_key: HashMap<&ConfigKey, Vec<&PastVersion>> = HashMap::new();
    for version in past {
        by_key.entry(&version.key).or_default().push(version);
    }
    by_key
}

/// `rows` groups of `columns` placeholders: `(?, ?), (?, ?)`.
fn rows(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

impl SqlStore {
    /// Writes `writes` (distinct keys, in existing namespaces) inside `tx`, a page per
    /// statement, all or nothing; the records come back in the order of `writes`. The
    /// `past` versions of each config the page creates are written first, as its
    /// older history.
    pub(crate) async fn import_page(
        &self,
        tx: &mut Transaction<'_, Any>,
        writes: &[ConfigWrite],
        past: &HashMap<&ConfigKey, Vec<&PastVersion>>,
    ) -> Result<Vec<ConfigRecord>> {
        let writes: Vec<&ConfigWrite> = writes.iter().collect();
        let currents = self.currents_of(tx, &writes).await?;
        let planned = writes
            .iter()
            .zip(&currents)
            .map(|(write, current)| Planned::new(write, current.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let versions: Vec<&PastVersion> = writes
            .iter()
            .zip(&currents)
            .filter(|(_, current)| current.is_none())
            .filter_map(|(write, _)| past.get(&write.key))
            .flatten()
            .copied()
            .collect();
        for page in pages(&versions, |v| v.content.len()) {
            self.write_past(tx, page).await?;
        }
        self.write_planned(tx, &writes, &currents, planned).await
    }

    /// Writes `versions` as history entries, under revisions taken from the change log
    /// in their order and given back at once: the revisions stay unique and older than
    /// what the import writes next, and no node ever reads them as changes.
    async fn write_past(
        &self,
        tx: &mut Transaction<'_, Any>,
        versions: &[&PastVersion],
    ) -> Result<()> {
        let entries = versions
            .iter()
            .map(|v| (&v.key, v.op, v.md5.as_str(), v.audit.at));
        let keys: Vec<&ConfigKey> = versions.iter().map(|v| &v.key).collect();
        let mut taken: Vec<i64> = self
            .insert_changes(tx, entries, &keys)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        if taken.len() != versions.len() {
            return Err(StoreError::Corrupt(format!(
                "{} change-log sequences were taken for {} past versions",
                taken.len(),
                versions.len()
            )));
        }
        taken.sort_unstable();
        let sql = self.sql_owned(&format!(
            "DELETE FROM change_log WHERE seq IN ({})",
            vec!["?"; taken.len()].join(", ")
        ));
        let mut query = sqlx::query::<Any>(&sql);
        for seq in &taken {
            query = query.bind(*seq);
        }
        query.execute(&mut **tx).await?;

        let sql = self.sql_owned(&format!(
            "{}{}",
            insert_history!(),
            rows(17, versions.len())
        ));
        let mut query = sqlx::query::<Any>(&sql);
        for (version, seq) in versions.iter().zip(taken) {
            let revision = Revision::new(seq).ok_or_else(|| {
                StoreError::Corrupt(format!("change-log sequence {seq} is not positive"))
            })?;
            query = self.bind_history(
                query,
                revision,
                &version.key,
                version.op,
                &version.content,
                version.format,
                &version.md5,
                &version.description,
                &version.tags,
                &version.audit,
                version.sensitive,
            )?;
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// Inserts change-log `entries` (key, op, md5, time), one for each of `keys`, in
    /// one statement; the rows it took (`seq`, `namespace`, `grp`, `data_id`), in no
    /// promised order.
    async fn insert_changes<'e>(
        &self,
        tx: &mut Transaction<'_, Any>,
        entries: impl Iterator<Item = (&'e ConfigKey, Op, &'e str, i64)>,
        keys: &[&ConfigKey],
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let count = keys.len();
        let values = rows(6, count);
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
        for (key, op, md5, at) in entries {
            query = bind_change(query, key, op, md5, at);
        }
        if self.dialect.returning {
            Ok(query.fetch_all(&mut **tx).await?)
        } else {
            query.execute(&mut **tx).await?;
            self.taken_since_last_insert(tx, keys).await
        }
    }

    /// The change-log rows the last insert took for `keys`, on a backend without
    /// `RETURNING`: from the first sequence it took on, and of these keys, as publishes
    /// beside it may have taken sequences between its own.
    async fn taken_since_last_insert(
        &self,
        tx: &mut Transaction<'_, Any>,
        keys: &[&ConfigKey],
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        let first: i64 = sqlx::query_scalar::<Any, i64>("SELECT CAST(LAST_INSERT_ID() AS SIGNED)")
            .fetch_one(&mut **tx)
            .await?;
        let sql = self.sql_owned(&format!(
            "SELECT seq, namespace, grp, data_id FROM change_log WHERE seq >= ? \
             AND (namespace, grp, data_id) IN ({}) ORDER BY seq LIMIT ?",
            rows(3, keys.len())
        ));
        let mut query = sqlx::query::<Any>(&sql).bind(first);
        for key in keys {
            query = query
                .bind(key.namespace.as_str())
                .bind(key.group.as_str())
                .bind(key.data_id.as_str());
        }
        Ok(query.bind(keys.len() as i64).fetch_all(&mut **tx).await?)
    }

    /// Writes `writes`, each checked already against its stored state (`currents`)
    /// into `planned`: a statement per table for them all, or where the dialect can
    /// ([`crate::sql::Dialect::take_seqs`]), their sequences first and then every table
    /// in one statement.
    pub(crate) async fn write_planned(
        &self,
        tx: &mut Transaction<'_, Any>,
        writes: &[&ConfigWrite],
        currents: &[Option<Current>],
        planned: Vec<Planned>,
    ) -> Result<Vec<ConfigRecord>> {
        // New configs in one insert, which fails if one was created meanwhile; replaced
        // ones in another, each row replacing the one it collides with.
        let (fresh, replaced): (Vec<usize>, Vec<usize>) =
            (0..writes.len()).partition(|&i| currents[i].is_none());
        let fresh_sql = format!("{}{}", insert_config!(), rows(14, fresh.len()));
        let replaced_sql = format!(
            "{}{}{}",
            insert_config!(),
            rows(14, replaced.len()),
            self.dialect.replace_configs
        );
        let history_sql = format!("{}{}", insert_history!(), rows(17, writes.len()));
        // The audit entries commit with the changes, or none does.
        let entries: Vec<_> = writes
            .iter()
            .zip(currents)
            .map(|(w, current)| {
                let before = current.as_ref().map(|c| c.md5.as_str());
                change_audit(&w.key, w.op, &w.md5, &w.audit, before)
            })
            .collect();
        let audit_sql = format!("{}{}", insert_audit!(), rows(11, entries.len()));
        let created_meanwhile = |e: sqlx::Error| {
            if is_unique_violation(&e) {
                StoreError::Conflict(
                    "a config of this import was created meanwhile; import again".into(),
                )
            } else {
                e.into()
            }
        };

        let revisions = if let Some(take) = self.dialect.take_seqs {
            // Up to three round trips saved on every group: the sequences are
            // taken (after the rows were locked, as the insert would take them) and
            // every table written by one statement of data-modifying parts.
            let revisions = self.take_seqs(tx, take, writes.len()).await?;
            let mut parts = vec![format!("{}{}", insert_change_at!(), rows(7, writes.len()))];
            if !fresh.is_empty() {
                parts.push(fresh_sql);
            }
            if !replaced.is_empty() {
                parts.push(replaced_sql);
            }
            parts.push(history_sql);
            let parts: Vec<String> = parts
                .into_iter()
                .enumerate()
                .map(|(i, part)| format!("w{i} AS ({part})"))
                .collect();
            let sql = self.sql_owned(&format!("WITH {} {audit_sql}", parts.join(", ")));
            let mut query = sqlx::query::<Any>(&sql);
            for (w, revision) in writes.iter().zip(&revisions) {
                query = bind_change(query.bind(revision.get()), &w.key, w.op, &w.md5, w.audit.at);
            }
            query = self.bind_configs(query, &fresh, writes, &revisions, &planned)?;
            query = self.bind_configs(query, &replaced, writes, &revisions, &planned)?;
            query = self.bind_histories(query, writes, &revisions, &planned)?;
            query = entries.iter().fold(query, bind_audit);
            query.execute(&mut **tx).await.map_err(created_meanwhile)?;
            revisions
        } else {
            let revisions = self.append_changes(tx, writes).await?;
            for (members, sql) in [(&fresh, &fresh_sql), (&replaced, &replaced_sql)] {
                if !members.is_empty() {
                    let sql = self.sql_owned(sql);
                    let query = sqlx::query::<Any>(&sql);
                    let query = self.bind_configs(query, members, writes, &revisions, &planned)?;
                    query.execute(&mut **tx).await.map_err(created_meanwhile)?;
                }
            }
            let sql = self.sql_owned(&history_sql);
            let query =
                self.bind_histories(sqlx::query::<Any>(&sql), writes, &revisions, &planned)?;
            query.execute(&mut **tx).await?;
            let sql = self.sql_owned(&audit_sql);
            let query = entries.iter().fold(sqlx::query::<Any>(&sql), bind_audit);
            query.execute(&mut **tx).await?;
            revisions
        };

        Ok(planned
            .into_iter()
            .zip(writes)
            .zip(revisions)
            .map(|((plan, write), revision)| plan.record(write, revision))
            .collect())
    }

    /// `count` change-log sequences taken by `take`, in ascending order.
    async fn take_seqs(
        &self,
        tx: &mut Transaction<'_, Any>,
        take: &'static str,
        count: usize,
    ) -> Result<Vec<Revision>> {
        let mut seqs: Vec<i64> = sqlx::query_scalar::<Any, i64>(self.sql(take))
            .bind(count as i64)
            .fetch_all(&mut **tx)
            .await?;
        if seqs.len() != count {
            return Err(StoreError::Corrupt(format!(
                "{} change-log sequences taken for {count} writes",
                seqs.len()
            )));
        }
        seqs.sort_unstable();
        seqs.into_iter()
            .map(|seq| {
                Revision::new(seq).ok_or_else(|| {
                    StoreError::Corrupt(format!("change-log sequence {seq} is not positive"))
                })
            })
            .collect()
    }

    /// Binds the config rows of `writes` at `members` (the insert's order).
    fn bind_configs<'q>(
        &self,
        query: Query<'q>,
        members: &[usize],
        writes: &[&'q ConfigWrite],
        revisions: &[Revision],
        planned: &[Planned],
    ) -> Result<Query<'q>> {
        members.iter().try_fold(query, |query, &i| {
            self.bind_config(query, writes[i], revisions[i], &planned[i])
        })
    }

    /// Binds the history rows of `writes`.
    fn bind_histories<'q>(
        &self,
        query: Query<'q>,
        writes: &[&'q ConfigWrite],
        revisions: &[Revision],
        planned: &[Planned],
    ) -> Result<Query<'q>> {
        writes.iter().zip(revisions).zip(planned).try_fold(
            query,
            |query, ((write, revision), plan)| {
                self.bind_history(
                    query,
                    *revision,
                    &write.key,
                    write.op,
                    &write.content,
                    plan.format,
                    &write.md5,
                    &plan.description,
                    &plan.tags,
                    &write.audit,
                    plan.sensitive,
                )
            },
        )
    }

    /// The stored state of each of `writes`' configs, in their order: one query per
    /// namespace and group. Where the engine can, the rows stay locked until the
    /// transaction ends (see `current_in`), taken in one order every transaction
    /// shares, so two groups of publishes never wait on each other in a circle.
    pub(crate) async fn currents_of(
        &self,
        tx: &mut Transaction<'_, Any>,
        writes: &[&ConfigWrite],
    ) -> Result<Vec<Option<Current>>> {
        let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
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
                    " FROM configs WHERE namespace = ? AND grp = ? AND data_id IN ({}){}"
                ),
                vec!["?"; members.len()].join(", "),
                if self.dialect.lock_rows {
                    " ORDER BY data_id FOR UPDATE"
                } else {
                    ""
                }
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
        tx: &mut Transaction<'_, Any>,
        writes: &[&ConfigWrite],
    ) -> Result<Vec<Revision>> {
        let entries = writes
            .iter()
            .map(|w| (&w.key, w.op, w.md5.as_str(), w.audit.at));
        let keys: Vec<&ConfigKey> = writes.iter().map(|w| &w.key).collect();
        let rows = self.insert_changes(tx, entries, &keys).await?;
        // Matched by key rather than by position: no backend promises the order of
        // the rows a multi-row insert returns. Their columns are read by place
        // (`seq, namespace, grp, data_id`): MariaDB's prepared `RETURNING` does not
        // always name them.
        let mut taken: HashMap<(String, String, String), i64> = HashMap::new();
        for row in &rows {
            let key = (text(row, 1)?, text(row, 2)?, text(row, 3)?);
            taken.insert(key, row.try_get(0)?);
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
