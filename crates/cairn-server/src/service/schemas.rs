//! The service's schema operations: attaching, changing and detaching a config's JSON
//! Schema, checked against the configs it would govern before it takes effect.

use std::sync::Arc;

use cairn_core::{DataId, Group, Namespace};
use cairn_store::{SchemaRecord, SchemaTarget, SchemaVersion, SchemaWrite};

use super::{Actor, Result, Service, ServiceError};
use crate::auth::Caller;
use crate::schemas::{check_against, Attached};

/// Configs listed in a refusal to attach a schema; the rest are counted.
const CONFIGS_LISTED: usize = 10;

/// An attachment or change of a schema, as the surfaces hand it over.
#[derive(Debug, Clone)]
pub struct SchemaInput {
    pub body: String,
    /// Attach even though configs as they are now break it.
    pub force: bool,
    /// The version the writer last read (0: none attached); `None` replaces any.
    pub expect_version: Option<u64>,
    pub comment: String,
}

/// Where a schema goes, from the surfaces' text: a namespace, and a group and a data
/// id that may hold `*` wildcards.
pub fn schema_target(namespace: Namespace, group: &str, data_id: &str) -> Result<SchemaTarget> {
    // A wildcard must be a name once its `*`s stand for characters.
    let named = |what: &str, text: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(format!(
                "{what} {text:?} is not a valid {what} or `*` wildcard of one"
            )))
        }
    };
    named(
        "group",
        group,
        Group::parse(&group.replace('*', "x")).is_ok(),
    )?;
    named(
        "data id",
        data_id,
        DataId::parse(&data_id.replace('*', "x")).is_ok(),
    )?;
    Ok(SchemaTarget {
        namespace,
        group: group.to_owned(),
        data_id: data_id.to_owned(),
    })
}

impl Service {
    /// The schemas attached in `namespace`, or in every namespace `caller` sees.
    pub fn schemas(
        &self,
        caller: &Caller,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<SchemaRecord>> {
        let access = self.auth.access();
        if let Some(ns) = namespace {
            access.require_visible(caller, ns)?;
        }
        let mut all = self.schemas.list(namespace);
        all.retain(|s| access.sees_namespace(caller, &s.target.namespace));
        Ok(all)
    }

    /// One attached schema.
    pub fn schema(&self, caller: &Caller, target: &SchemaTarget) -> Result<SchemaRecord> {
        self.auth
            .access()
            .require_visible(caller, &target.namespace)?;
        self.schemas
            .get(target)
            .map(|a| a.record.clone())
            .ok_or_else(|| ServiceError::SchemaNotFound(target.to_string()))
    }

    /// Every version of a schema, newest first.
    pub async fn schema_history(
        &self,
        caller: &Caller,
        target: &SchemaTarget,
    ) -> Result<Vec<SchemaVersion>> {
        self.auth
            .access()
            .require_visible(caller, &target.namespace)?;
        Ok(self.store.schema_history(target).await?)
    }

    /// The schemas that apply to `key`.
    pub fn schemas_for(&self, key: &cairn_core::ConfigKey) -> Vec<SchemaRecord> {
        let mut all: Vec<SchemaRecord> = self
            .schemas
            .matching(key)
            .iter()
            .map(|a| a.record.clone())
            .collect();
        all.sort_by_key(|a| a.target.to_string());
        all
    }

    /// Checks `content` against `key`'s schemas as a write would, without writing (the
    /// console's review step).
    pub fn check_schemas(
        &self,
        key: &cairn_core::ConfigKey,
        format: cairn_core::Format,
        content: &str,
        marked: bool,
    ) -> std::result::Result<(), crate::schemas::Violation> {
        let redact = crate::access::is_sensitive(key, marked);
        self.schemas.check(key, format, content, redact)
    }

    /// Refuses a schema change by an actor who does not administer the namespace.
    fn may_govern(&self, actor: &Actor, target: &SchemaTarget, action: &str) -> Result<()> {
        self.may_administer(actor, &target.namespace, action, target.to_string())
    }

    /// Attaches a schema to `target` or changes it. Unless forced, the configs it would
    /// govern must pass it as they are now.
    pub async fn set_schema(
        &self,
        target: SchemaTarget,
        input: SchemaInput,
        actor: &Actor,
    ) -> Result<SchemaRecord> {
        self.may_govern(actor, &target, "schema.set")?;
        let probe = Attached::new(SchemaRecord {
            target: target.clone(),
            body: input.body.clone(),
            version: 0,
            created_by: String::new(),
            created_at: 0,
            updated_by: String::new(),
            updated_at: 0,
        })
        .map_err(ServiceError::InvalidSchema)?;
        if !input.force {
            self.governed_pass(Arc::new(probe), &actor.caller).await?;
        }
        let write = SchemaWrite {
            target,
            body: input.body,
            expect_version: input.expect_version,
            audit: Self::audit(actor, input.comment),
        };
        let record = self.store.put_schema(&write).await?;
        let attached = Attached::new(record.clone()).map_err(ServiceError::InvalidSchema)?;
        self.schemas.put(Arc::new(attached));
        tracing::info!(target = %record.target, version = record.version, forced = input.force, by = %actor.caller.username, "schema set");
        Ok(record)
    }

    /// Detaches the schema of `target`.
    pub async fn remove_schema(
        &self,
        target: SchemaTarget,
        comment: String,
        actor: &Actor,
    ) -> Result<SchemaRecord> {
        self.may_govern(actor, &target, "schema.remove")?;
        let removed = self
            .store
            .remove_schema(&target, &Self::audit(actor, comment))
            .await?;
        self.schemas.remove(&target);
        tracing::info!(%target, by = %actor.caller.username, "schema removed");
        Ok(removed)
    }

    /// Refuses `schema` when a config it would govern breaks it now, listing each.
    async fn governed_pass(&self, schema: Arc<Attached>, caller: &Caller) -> Result<()> {
        let governed = self.commits.cache().select(|c| schema.matches(&c.key));
        // Values are shown only where the caller could read them anyway (a namespace's
        // admin may be narrowed out of part of it, and sensitive configs need more).
        let reader = self.reader(caller);
        let readable: Vec<bool> = governed
            .iter()
            .map(|c| reader.may_read_content(c))
            .collect();
        let report = tokio::task::spawn_blocking(move || {
            let one = std::slice::from_ref(&schema);
            governed
                .iter()
                .zip(readable)
                .filter_map(|(c, readable)| {
                    check_against(one, &c.key, c.format, &c.content, !readable).err()
                })
                .map(|v| format!("{}: {}", v.key, v.problems.join("; ")))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        if report.is_empty() {
            return Ok(());
        }
        let count = report.len();
        let listed = report.into_iter().take(CONFIGS_LISTED).collect();
        Err(ServiceError::SchemaRejectsContent { count, listed })
    }
}
