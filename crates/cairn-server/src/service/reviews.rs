//! Review before release. In a namespace that requires it, a person's publish,
//! rollback or deletion becomes a change request; another person with the approve
//! level releases it (compare-and-set against the content it was made on) or rejects
//! it. Every write passes [`Service::review_gate`], so machine surfaces and service
//! tokens are refused there unless the token may publish without review, and an
//! admin's emergency change goes through flagged.

use std::sync::Arc;

use cairn_core::grant::Level;
use cairn_core::md5::md5_hex;
use cairn_core::{ConfigKey, Format, Namespace, Revision};
use cairn_store::{
    ChangeRequestRecord, ConfigRecord, Expect, NewChangeRequest, Op, Page, Rebase,
    ReviewEventRecord, ReviewStatus, ReviewStep,
};

use super::{validated, Actor, PublishInput, Result, Service, ServiceError};
use crate::audit::Outcome;
use crate::auth::{Auth, Caller};

/// How a write reaches the store.
#[derive(Debug, Clone)]
pub(super) enum Route {
    /// As a surface asked for it: where review is required, only an emergency or a
    /// token that may skip review passes.
    Direct,
    /// The release of an approved change request, with its note for history.
    Reviewed(String),
}

/// What a person's proposed change came to.
#[derive(Debug)]
pub enum Proposal {
    /// Published at once (no review required, or an emergency).
    Released(Arc<ConfigRecord>),
    /// Deleted at once; the revision of the deletion.
    Deleted(Revision),
    /// Kept as a change request for review.
    Opened(Box<ChangeRequestRecord>),
}

/// A change request with its timeline and what releasing it would change.
pub struct ReviewDetail {
    pub request: ChangeRequestRecord,
    pub events: Vec<ReviewEventRecord>,
    /// The content it was made against (`None`: the config did not exist, or that
    /// version is no longer in history).
    pub base: Option<String>,
    /// A unified diff from the base to the proposed content; `None` for a caller who
    /// may not read a sensitive config's content.
    pub diff: Option<String>,
    /// The config's md5 now (`None`: absent): when it differs from the base, the
    /// request is stale or will be found so.
    pub current_md5: Option<String>,
    /// Whether the caller sees its contents.
    pub readable: bool,
}

/// What each kind of write is called in a refusal.
fn described(op: Op) -> &'static str {
    match op {
        Op::Publish => "a publish",
        Op::Rollback => "a rollback",
        Op::Delete => "a deletion",
        Op::GrayPublish => "a gray release (which would skip review)",
        Op::GrayPromote => "promoting a gray release (which would skip review)",
        Op::GrayAbandon => "ending a gray release",
    }
}

impl Service {
    /// Whether `route` may write `key` as `input` asks: `Ok(true)` for an admin's
    /// emergency change (flagged in history, audit and webhooks), `Ok(false)` when no
    /// review applies, else `ReviewRequired`.
    pub(super) fn review_gate(
        &self,
        actor: &Actor,
        key: &ConfigKey,
        op: Op,
        route: &Route,
        input: &PublishInput,
    ) -> Result<bool> {
        if matches!(route, Route::Reviewed(_)) || !self.limits.requires_review(&key.namespace) {
            return Ok(false);
        }
        if input.emergency {
            self.may_administer(actor, &key.namespace, "config.emergency", key.to_string())?;
            if input.comment.as_deref().is_none_or(|c| c.trim().is_empty()) {
                return Err(ServiceError::InvalidArgument(
                    "an emergency change needs a reason (the comment), kept in history and the audit log"
                        .to_owned(),
                ));
            }
            return Ok(true);
        }
        if self.auth.publishes_without_review(&actor.caller) {
            return Ok(false);
        }
        self.auth.audit().act(
            actor,
            op.audit_action(),
            key.namespace.as_str(),
            key.to_string(),
            Outcome::Denied,
            "review required".to_owned(),
        );
        Err(ServiceError::ReviewRequired {
            namespace: key.namespace.clone(),
            what: described(op).to_owned(),
            token: Auth::is_token(&actor.caller),
        })
    }

    /// Refuses an import into a namespace that requires review, unless the caller is a
    /// token that may publish without it.
    pub(super) fn import_gate(&self, actor: &Actor, namespace: &Namespace) -> Result<()> {
        if !self.limits.requires_review(namespace)
            || self.auth.publishes_without_review(&actor.caller)
        {
            return Ok(());
        }
        Err(ServiceError::ReviewRequired {
            namespace: namespace.clone(),
            what: "an import (turn review off for it, or publish config by config)".to_owned(),
            token: Auth::is_token(&actor.caller),
        })
    }

    /// Whether a change by `actor` in `namespace` becomes a change request: review is
    /// required there and the actor is a person.
    fn reviews(&self, actor: &Actor, namespace: &Namespace) -> bool {
        self.limits.requires_review(namespace) && !Auth::is_token(&actor.caller)
    }

    /// Whether `namespace` requires review before release.
    pub fn requires_review(&self, namespace: &Namespace) -> bool {
        self.limits.requires_review(namespace)
    }

    /// A person's publish: released at once, or kept as a change request where the
    /// namespace requires review (unless it is an admin's emergency).
    pub async fn propose_publish(
        &self,
        key: ConfigKey,
        input: PublishInput,
        actor: &Actor,
    ) -> Result<Proposal> {
        if input.emergency || !self.reviews(actor, &key.namespace) {
            return self
                .publish(key, input, actor)
                .await
                .map(Proposal::Released);
        }
        self.may_write(actor, &key, Op::Publish)?;
        self.open_publish(key, input, actor).await
    }

    /// A person's rollback to `revision`, released or kept for review as a publish of
    /// that revision's content.
    pub async fn propose_rollback(
        &self,
        key: ConfigKey,
        revision: Revision,
        expect: Expect,
        actor: &Actor,
        emergency: Option<String>,
    ) -> Result<Proposal> {
        if emergency.is_some() || !self.reviews(actor, &key.namespace) {
            return self
                .rollback_with(key, revision, expect, actor, emergency)
                .await
                .map(Proposal::Released);
        }
        let input = self.rollback_input(&key, revision, expect, actor).await?;
        self.open_publish(key, input, actor).await
    }

    /// A person's deletion, done or kept for review.
    pub async fn propose_delete(
        &self,
        key: ConfigKey,
        expect: Expect,
        actor: &Actor,
        emergency: Option<String>,
        comment: Option<String>,
    ) -> Result<Proposal> {
        if emergency.is_some() || !self.reviews(actor, &key.namespace) {
            return self
                .remove(key, expect, actor, emergency, Route::Direct)
                .await
                .map(Proposal::Deleted);
        }
        self.may_write(actor, &key, Op::Delete)?;
        let current = self
            .get(&key)
            .ok_or_else(|| ServiceError::ConfigNotFound(key.clone()))?;
        check_expect(&key, &expect, Some(&current))?;
        let new = NewChangeRequest {
            op: Op::Delete,
            content: String::new(),
            md5: String::new(),
            format: None,
            description: None,
            tags: None,
            sensitive: None,
            base_md5: current.md5.clone(),
            base_revision: Some(current.revision),
            audit: Self::audit(actor, comment.unwrap_or_default()),
            key,
        };
        self.open_request(new).await
    }

    /// Checks a publish as its release would (size, tags, format, schemas, the
    /// expected md5) and keeps it as a change request against the current content.
    async fn open_publish(
        &self,
        key: ConfigKey,
        input: PublishInput,
        actor: &Actor,
    ) -> Result<Proposal> {
        let tags = self.check_input(&input)?;
        let current = self.get(&key);
        check_expect(&key, &input.expect, current.as_deref())?;
        let default_format = Format::from_file_name(key.data_id.as_str()).unwrap_or_default();
        let format = input
            .format
            .or(current.as_ref().map(|c| c.format))
            .unwrap_or(default_format);
        let content = validated(input.content, format, input.force).await?;
        let marked = input
            .sensitive
            .or(current.as_ref().map(|c| c.sensitive))
            .unwrap_or(false);
        let content = self.schema_checked(&key, format, content, marked).await?;
        let new = NewChangeRequest {
            md5: md5_hex(&content),
            op: Op::Publish,
            content,
            format: input.format,
            description: input.description,
            tags,
            sensitive: input.sensitive,
            base_md5: current.as_ref().map(|c| c.md5.clone()).unwrap_or_default(),
            base_revision: current.as_ref().map(|c| c.revision),
            audit: Self::audit(actor, input.comment.unwrap_or_default()),
            key,
        };
        self.open_request(new).await
    }

    async fn open_request(&self, new: NewChangeRequest) -> Result<Proposal> {
        let hooks = self.review_webhooks(&new.key, "opened").await?;
        let request = self.store.open_change_request(&new, &hooks).await?;
        tracing::info!(key = %request.key, id = request.id, by = %request.author, "change request opened");
        Ok(Proposal::Opened(Box::new(request)))
    }

    /// The subscriptions that take `event` of a change request on `key`.
    async fn review_webhooks(&self, key: &ConfigKey, event: &str) -> Result<Vec<i64>> {
        let event = format!("change_request_{event}");
        Ok(self
            .store
            .webhooks(Some(&key.namespace))
            .await?
            .iter()
            .filter(|hook| crate::webhooks::subscribed(hook, &event, key))
            .map(|hook| hook.id)
            .collect())
    }

    /// The request `id` if `caller` may read its config; one they may not read is not
    /// found, so its existence is not told either.
    async fn visible_request(&self, caller: &Caller, id: i64) -> Result<ChangeRequestRecord> {
        let request = self
            .store
            .change_request(id)
            .await?
            .ok_or(ServiceError::ChangeRequestNotFound(id))?;
        if self.reader(caller).level(&request.key) < Level::Read {
            return Err(ServiceError::ChangeRequestNotFound(id));
        }
        Ok(request)
    }

    /// Whether `caller` reads the contents of `request` (`read-secret` for a sensitive
    /// config, or a request that marks it so).
    fn reads_contents(&self, caller: &Caller, request: &ChangeRequestRecord) -> bool {
        let level = self.reader(caller).level(&request.key);
        let sensitive = request.sensitive == Some(true)
            || self.get(&request.key).is_some_and(|c| c.sensitive)
            || cairn_core::grant::is_cipher_data_id(request.key.data_id.as_str());
        level
            >= if sensitive {
                Level::ReadSecret
            } else {
                Level::Read
            }
    }

    /// A page of change requests `caller` may read, newest first.
    pub async fn change_requests(
        &self,
        caller: &Caller,
        namespace: Option<&Namespace>,
        status: Option<ReviewStatus>,
        page: Page,
    ) -> Result<(Vec<ChangeRequestRecord>, u64)> {
        let (mut items, total) = self.store.change_requests(namespace, status, page).await?;
        let reader = self.reader(caller);
        let before = items.len();
        items.retain(|r| reader.level(&r.key) >= Level::Read);
        // What is hidden is not counted either (exact for whoever reads everything).
        let hidden = (before - items.len()) as u64;
        Ok((items, total.saturating_sub(hidden)))
    }

    /// A change request with its timeline and diff.
    pub async fn change_request(&self, caller: &Caller, id: i64) -> Result<ReviewDetail> {
        let mut request = self.visible_request(caller, id).await?;
        let events = self.store.review_events(id).await?;
        let current = self.get(&request.key);
        let base = match (&current, request.base_revision) {
            (Some(c), _) if c.md5 == request.base_md5 => Some(c.content.clone()),
            (_, Some(revision)) => self
                .store
                .history_entry(&request.key, revision)
                .await?
                .map(|e| e.content),
            (_, None) => None,
        };
        let readable = self.reads_contents(caller, &request);
        let diff = if readable {
            let old = base.clone().unwrap_or_default();
            let new = request.content.clone();
            let key = request.key.to_string();
            let from = match request.base_revision {
                Some(r) => format!("{key}@{r}"),
                None => format!("{key}@0"),
            };
            let to = format!("{key} (change request {id})");
            Some(
                tokio::task::spawn_blocking(move || {
                    cairn_core::diff::unified(&old, &new, &from, &to)
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
            )
        } else {
            request.content.clear();
            None
        };
        Ok(ReviewDetail {
            base: base.filter(|_| readable),
            current_md5: current.map(|c| c.md5.clone()),
            request,
            events,
            diff,
            readable,
        })
    }

    /// Refuses `actor` without the approve level on `key` (audited).
    fn may_approve(&self, actor: &Actor, key: &ConfigKey, action: &str) -> Result<()> {
        self.auth
            .access()
            .require(&actor.caller, key, Level::Approve)
            .map_err(|denied| {
                self.auth.audit().act(
                    actor,
                    action,
                    key.namespace.as_str(),
                    key.to_string(),
                    Outcome::Denied,
                    denied.to_string(),
                );
                denied.into()
            })
    }

    /// Approves an open change request made by someone else and releases it, with
    /// compare-and-set against the content it was made on; if the config moved, the
    /// request is marked stale instead (and the refusal says so).
    pub async fn approve(
        &self,
        id: i64,
        comment: String,
        actor: &Actor,
    ) -> Result<ChangeRequestRecord> {
        // Steps of reviews are rare and made by people: one at a time on a node, so an
        // approval and a rejection of one request cannot interleave here.
        let _one = self.review_lock.lock().await;
        let request = self.visible_request(&actor.caller, id).await?;
        if request.status != ReviewStatus::Open {
            return Err(not_open(&request, "approved"));
        }
        if actor.caller.username.as_str() == request.author {
            return Err(ServiceError::OwnChangeRequest(id));
        }
        self.may_approve(actor, &request.key, "review.approve")?;
        let mut note = format!(
            "change request {id} by {}, approved by {}",
            request.author, actor.caller.username
        );
        for said in [&request.comment, &comment] {
            if !said.is_empty() {
                note.push_str(": ");
                note.push_str(said);
            }
        }
        let expect = if request.base_md5.is_empty() {
            Expect::Absent
        } else {
            Expect::Md5(request.base_md5.clone())
        };
        let key = request.key.clone();
        let released = match request.op {
            Op::Delete => {
                self.remove(key.clone(), expect, actor, None, Route::Reviewed(note))
                    .await
            }
            _ => {
                let input = PublishInput {
                    content: request.content.clone(),
                    format: request.format,
                    description: request.description.clone(),
                    tags: request.tags.clone(),
                    sensitive: request.sensitive,
                    expect,
                    // Checked when it was opened; schemas are checked again.
                    force: true,
                    comment: Some(note.clone()),
                    emergency: false,
                };
                self.write(
                    key.clone(),
                    input,
                    Op::Publish,
                    actor,
                    Route::Reviewed(note),
                )
                .await
                .map(|r| r.revision)
            }
        };
        let step = |to, event, released, comment: String| ReviewStep {
            id,
            from: ReviewStatus::Open,
            to,
            event,
            released,
            rebase: None,
            audit: Self::audit(actor, comment),
            webhooks: Vec::new(),
        };
        match released {
            Ok(revision) => {
                let hooks = self.review_webhooks(&key, "approved").await?;
                let done = ReviewStep {
                    webhooks: hooks,
                    ..step(ReviewStatus::Approved, "approved", Some(revision), comment)
                };
                self.finish_step(&request, &done).await
            }
            Err(ServiceError::CasConflict { current, .. }) => {
                let now = self.get(&key);
                let already = match request.op {
                    Op::Delete => now.is_none(),
                    _ => now.as_ref().is_some_and(|c| c.md5 == request.md5),
                };
                if already {
                    // Released by an approval that did not get to record itself (its
                    // node stopped between the two): record it now.
                    let revision = now.map(|c| c.revision);
                    let hooks = self.review_webhooks(&key, "approved").await?;
                    let done = ReviewStep {
                        webhooks: hooks,
                        ..step(ReviewStatus::Approved, "approved", revision, comment)
                    };
                    return self.finish_step(&request, &done).await;
                }
                let current = current.unwrap_or_else(|| "(deleted)".to_owned());
                let why = format!("the config changed meanwhile (md5 {current} now)");
                self.finish_step(&request, &step(ReviewStatus::Stale, "stale", None, why))
                    .await?;
                Err(ServiceError::StaleChangeRequest {
                    id,
                    key,
                    base: display_md5(&request.base_md5),
                    current,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Rejects an open or stale change request: by a reviewer with the approve level,
    /// or withdrawn by its author. A reviewer must say why.
    pub async fn reject(
        &self,
        id: i64,
        comment: String,
        actor: &Actor,
    ) -> Result<ChangeRequestRecord> {
        let _one = self.review_lock.lock().await;
        let request = self.visible_request(&actor.caller, id).await?;
        if request.status.is_final() {
            return Err(not_open(&request, "rejected"));
        }
        let own = actor.caller.username.as_str() == request.author;
        if !own {
            self.may_approve(actor, &request.key, "review.reject")?;
            if comment.trim().is_empty() {
                return Err(ServiceError::InvalidArgument(
                    "a rejection needs a comment that tells the author why".to_owned(),
                ));
            }
        }
        let hooks = self.review_webhooks(&request.key, "rejected").await?;
        let step = ReviewStep {
            id,
            from: request.status,
            to: ReviewStatus::Rejected,
            event: "rejected",
            released: None,
            rebase: None,
            audit: Self::audit(actor, comment),
            webhooks: hooks,
        };
        self.finish_step(&request, &step).await
    }

    /// Moves a change request onto the config's current content, so it can be
    /// reviewed again: by its author, with new content or the same.
    pub async fn rebase(
        &self,
        id: i64,
        content: Option<String>,
        comment: String,
        actor: &Actor,
    ) -> Result<ChangeRequestRecord> {
        let _one = self.review_lock.lock().await;
        let request = self.visible_request(&actor.caller, id).await?;
        if request.status.is_final() {
            return Err(not_open(&request, "rebased"));
        }
        if actor.caller.username.as_str() != request.author {
            return Err(ServiceError::ReviewState(format!(
                "only {}, who opened change request {id}, can rebase it",
                request.author
            )));
        }
        self.may_write(actor, &request.key, Op::Publish)?;
        let current = self.get(&request.key);
        if request.op == Op::Delete && current.is_none() {
            return Err(ServiceError::ConfigNotFound(request.key.clone()));
        }
        let content = match content {
            Some(content) if request.op != Op::Delete => {
                let input = PublishInput {
                    content,
                    ..PublishInput::default()
                };
                self.check_input(&input)?;
                let format = request
                    .format
                    .or(current.as_ref().map(|c| c.format))
                    .unwrap_or_else(|| {
                        Format::from_file_name(request.key.data_id.as_str()).unwrap_or_default()
                    });
                let content = validated(input.content, format, false).await?;
                let marked = request
                    .sensitive
                    .or(current.as_ref().map(|c| c.sensitive))
                    .unwrap_or(false);
                let content = self
                    .schema_checked(&request.key, format, content, marked)
                    .await?;
                let md5 = md5_hex(&content);
                Some((content, md5))
            }
            Some(_) => {
                return Err(ServiceError::InvalidArgument(
                    "a deletion has no content to change".to_owned(),
                ))
            }
            None => None,
        };
        let step = ReviewStep {
            id,
            from: request.status,
            to: ReviewStatus::Open,
            event: "rebased",
            released: None,
            rebase: Some(Rebase {
                base_md5: current.as_ref().map(|c| c.md5.clone()).unwrap_or_default(),
                base_revision: current.as_ref().map(|c| c.revision),
                content,
            }),
            audit: Self::audit(actor, comment),
            webhooks: Vec::new(),
        };
        self.finish_step(&request, &step).await
    }

    /// Writes `step`; a request moved meanwhile (by another node) is refused.
    async fn finish_step(
        &self,
        request: &ChangeRequestRecord,
        step: &ReviewStep,
    ) -> Result<ChangeRequestRecord> {
        match self.store.step_change_request(step).await? {
            Some(done) => {
                tracing::info!(key = %done.key, id = done.id, event = step.event, by = %step.audit.operator, "change request {}", step.event);
                Ok(done)
            }
            None => Err(ServiceError::ReviewState(format!(
                "change request {} changed meanwhile; look at it again",
                request.id
            ))),
        }
    }
}

/// The refusal of a step a request's state does not allow.
fn not_open(request: &ChangeRequestRecord, step: &str) -> ServiceError {
    let id = request.id;
    let state = request.status.as_str();
    let hint = match request.status {
        ReviewStatus::Stale => {
            format!(
                "; its config changed after it was made: rebase it (`cairn review rebase {id}`)"
            )
        }
        ReviewStatus::Approved => match request.released {
            Some(r) => format!(" (released as revision {r})"),
            None => String::new(),
        },
        _ => String::new(),
    };
    ServiceError::ReviewState(format!(
        "change request {id} is {state}, so it cannot be {step}{hint}"
    ))
}

/// An md5 for a message; the empty one of an absent config said so.
fn display_md5(md5: &str) -> String {
    if md5.is_empty() {
        "(absent)".to_owned()
    } else {
        md5.to_owned()
    }
}

/// Refuses a proposal whose expectation the current config does not meet.
fn check_expect(key: &ConfigKey, expect: &Expect, current: Option<&ConfigRecord>) -> Result<()> {
    let md5 = current.map(|c| c.md5.as_str());
    if expect.allows(md5) {
        return Ok(());
    }
    Err(ServiceError::CasConflict {
        key: key.clone(),
        expected: expect.md5().map(str::to_owned),
        current: md5.map(str::to_owned),
    })
}
