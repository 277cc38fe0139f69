//! The audit log's writer for everything that is not a config change (those the store
//! logs in the transaction that makes them): administrative acts, logins and failed
//! logins, and refused requests. Entries queue to one task that appends them in
//! batches, so a burst costs one database sync; a full queue drops entries (counted in
//! `cairn_audit_dropped_total`) rather than slow requests down or let a flood of
//! refusals grow memory without bound.

use std::sync::Arc;

use cairn_store::{AuditRecord, Store};
use tokio::sync::mpsc;

use crate::now_millis;
use crate::service::Actor;

/// Entries waiting to be written, at most.
const QUEUE: usize = 10_000;
/// Entries written in one transaction, at most.
const BATCH: usize = 256;

pub struct AuditLog {
    queue: mpsc::Sender<AuditRecord>,
}

/// The outcome an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused: no right, wrong credentials, throttled.
    Denied,
    /// Allowed, but it did not succeed.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// An error that may be a refusal (no right) rather than a failure.
pub trait Refused: std::fmt::Display {
    fn refused(&self) -> bool;
}

impl Refused for crate::auth::AuthError {
    fn refused(&self) -> bool {
        matches!(
            self,
            crate::auth::AuthError::Forbidden | crate::auth::AuthError::Denied(_)
        )
    }
}

impl Refused for crate::service::ServiceError {
    fn refused(&self) -> bool {
        self.kind() == crate::service::ErrorKind::Forbidden
    }
}

impl Refused for cairn_store::StoreError {
    fn refused(&self) -> bool {
        false
    }
}

impl AuditLog {
    /// Starts the writer; it ends once every handle is dropped and the queue is written.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, mut entries) = mpsc::channel::<AuditRecord>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while entries.recv_many(&mut batch, BATCH).await > 0 {
                if let Err(e) = store.append_audit(&batch).await {
                    metrics::counter!("cairn_audit_dropped_total").increment(batch.len() as u64);
                    tracing::warn!(error = %e, entries = batch.len(), "could not write audit entries");
                }
                batch.clear();
            }
        });
        Self { queue }
    }

    /// Queues an entry.
    pub fn record(&self, entry: AuditRecord) {
        if self.queue.try_send(entry).is_err() {
            metrics::counter!("cairn_audit_dropped_total").increment(1);
        }
    }

    /// Queues an administrative act of `actor`'s on `target` in `namespace` (empty:
    /// none), with how it went; returns the result for the caller to answer with.
    pub fn done<T, E: Refused>(
        &self,
        actor: &Actor,
        action: &str,
        namespace: &str,
        target: impl Into<String>,
        result: Result<T, E>,
    ) -> Result<T, E> {
        let (outcome, detail) = match &result {
            Ok(_) => (Outcome::Ok, String::new()),
            Err(e) if e.refused() => (Outcome::Denied, e.to_string()),
            Err(e) => (Outcome::Failed, e.to_string()),
        };
        self.act(actor, action, namespace, target.into(), outcome, detail);
        result
    }

    /// As [`AuditLog::done`], for a removal that answers whether there was anything to
    /// remove: nothing is recorded as failed.
    pub fn removed<E: Refused>(
        &self,
        actor: &Actor,
        action: &str,
        namespace: &str,
        target: impl Into<String>,
        result: Result<bool, E>,
    ) -> Result<bool, E> {
        if let Ok(false) = result {
            self.act(
                actor,
                action,
                namespace,
                target.into(),
                Outcome::Failed,
                "there was nothing to remove".to_owned(),
            );
            return result;
        }
        self.done(actor, action, namespace, target, result)
    }

    /// Queues an act of `actor`'s on `target` in `namespace` (empty: none).
    pub fn act(
        &self,
        actor: &Actor,
        action: &str,
        namespace: &str,
        target: String,
        outcome: Outcome,
        detail: String,
    ) {
        self.record(AuditRecord {
            at: now_millis(),
            actor: actor.caller.username.to_string(),
            source: actor.source.clone(),
            surface: actor.surface.to_owned(),
            action: action.to_owned(),
            namespace: namespace.to_owned(),
            target,
            result: outcome.as_str().to_owned(),
            detail,
            ..AuditRecord::default()
        });
    }
}
