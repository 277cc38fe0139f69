//! The config service: the business rules every surface shares. Validation,
//! compare-and-set, history, rollback, diff, reads and waits live here, once; the
//! surfaces parse their wire formats, call these operations, and render the answers.
//! The cache, the hub and the store are private to it.
//!
//! Write path: validate → one store transaction → the commit path (cache, observers,
//! watchers, see [`crate::commit`]) → return. Nothing is acknowledged before the
//! transaction commits.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use cairn_core::grant::Level;
use cairn_core::pattern::Wildcard;
use cairn_core::{
    md5::md5_hex, ConfigKey, Format, FormatError, GrayError, GrayRules, Namespace, Revision, Tag,
};
use cairn_store::{
    Audit, ConfigDelete, ConfigRecord, ConfigWrite, Expect, GrayRecord, GrayWrite, HistoryRecord,
    NamespaceRecord, NamespaceUpdate, Op, Page, PastVersion, Store, StoreError,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::access::{Denied, Reader};
use crate::audit::Outcome;
use crate::auth::{Auth, Caller};
use crate::cache::{KeyState, View};
use crate::commit::{Change, Commits};
use crate::hub::Registration;
use crate::listeners::{Listed, Listener, Listeners, Protocol};
use crate::now_millis;

mod reviews;
mod schemas;
mod webhooks;
use reviews::Route;
pub use reviews::{Proposal, ReviewDetail};
pub use schemas::{schema_target, SchemaInput};
pub use webhooks::WebhookInput;

const MAX_TAGS: usize = 32;
const MAX_DESCRIPTION: usize = 2048;
const LOCK_STRIPES: usize = 64;
/// How long a pattern watch's answer waits for the applied sequence to reach the
/// changes already in the cache.
const APPLIED_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Content larger than this is validated on the blocking pool, off the async workers.
const INLINE_VALIDATION_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidContent(FormatError),
    #[error("content is {size} bytes; the limit is {max}")]
    ContentTooLarge { size: usize, max: usize },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(String),
    #[error("namespace {0} already exists")]
    NamespaceExists(String),
    #[error("namespace {0} still holds configs; delete them first")]
    NamespaceNotEmpty(String),
    #[error("the public namespace cannot be deleted")]
    PublicNamespace,
    #[error("config {0} does not exist")]
    ConfigNotFound(ConfigKey),
    #[error("config {0} has no gray release")]
    GrayNotFound(ConfigKey),
    #[error("{0}")]
    InvalidGray(GrayError),
    #[error("config {key} has no revision {revision}{}", pruned_note(.retention))]
    RevisionNotFound {
        key: ConfigKey,
        revision: Revision,
        /// The history retention of the config's namespace, when it has one.
        retention: Option<String>,
    },
    #[error("revision {0} did not publish main content (a deletion or a gray step); roll back to a publish, rollback or promotion")]
    RevisionIsDeletion(Revision),
    #[error("{}", cas_message(.key, .expected, .current))]
    CasConflict {
        key: ConfigKey,
        expected: Option<String>,
        current: Option<String>,
    },
    #[error("{0}")]
    ConcurrentChange(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    QuotaExceeded(#[from] crate::limits::QuotaExceeded),
    /// A content breaks a schema attached to its config.
    #[error(transparent)]
    SchemaViolation(#[from] crate::schemas::Violation),
    #[error("{0}")]
    InvalidSchema(String),
    /// A schema would refuse configs as they are now (attach it with `force` anyway):
    /// one line per config, the first few of them.
    #[error("{} config(s) as they are now break this schema (fix them, or set it with force): {}{}", .count, .listed.join(" | "), more_note(*.count, .listed.len()))]
    SchemaRejectsContent { count: usize, listed: Vec<String> },
    #[error("no schema is attached to {0}")]
    SchemaNotFound(String),
    #[error("{0}")]
    InvalidWebhook(String),
    #[error("webhook {0} does not exist")]
    WebhookNotFound(i64),
    #[error("webhook {0} has no delivery {1}")]
    DeliveryNotFound(i64, i64),
    #[error("{0} needs the admin role")]
    AdminOnly(String),
    /// A change that namespace admits only through review, from where none can be
    /// opened (a machine surface, a service token, a gray step, an import).
    #[error("namespace {namespace} requires review before release, so {what} is refused here: propose the change as a person (console, `cairn config publish`, or the native API), where it becomes a change request another person approves{}", if *.token { "; a service token needs to be made with publish-without-review to publish there" } else { "" })]
    ReviewRequired {
        namespace: Namespace,
        what: String,
        /// The caller is a service token (which could be given the right).
        token: bool,
    },
    #[error("change request {0} does not exist")]
    ChangeRequestNotFound(i64),
    /// A step the request's state does not allow (approving a rejected one, …).
    #[error("{0}")]
    ReviewState(String),
    #[error("you opened change request {0}; another person with the approve level must review it")]
    OwnChangeRequest(i64),
    /// The config moved after the request was made: it was marked stale.
    #[error("config {key} changed since change request {id} was made (md5 {base} then, {current} now); it is marked stale: rebase it onto the current content (`cairn review rebase {id}`) and have it reviewed again")]
    StaleChangeRequest {
        id: i64,
        key: ConfigKey,
        base: String,
        current: String,
    },
    #[error("the database is unavailable; writes are refused until it answers again (reads and watches keep working)")]
    Unavailable(#[source] StoreError),
    #[error("internal storage error")]
    Internal(#[source] StoreError),
}

fn more_note(count: usize, listed: usize) -> String {
    if count > listed {
        format!("; and {} more", count - listed)
    } else {
        String::new()
    }
}

fn pruned_note(retention: &Option<String>) -> String {
    match retention {
        Some(kept) => {
            format!("; history here keeps {kept} of each config, so it may have been pruned")
        }
        None => String::new(),
    }
}

fn cas_message(key: &ConfigKey, expected: &Option<String>, current: &Option<String>) -> String {
    match (expected, current) {
        (None, Some(current)) => {
            format!("config {key} already exists (md5 {current}); fetch it and publish with its md5")
        }
        (Some(expected), None) => {
            format!("config {key} does not exist, but md5 {expected} was expected")
        }
        (Some(expected), Some(current)) => format!(
            "config {key} was changed by someone else: expected md5 {expected}, current md5 {current}; fetch it, merge, and publish again"
        ),
        (None, None) => format!("config {key} changed concurrently"),
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NamespaceNotFound(n) => ServiceError::NamespaceNotFound(n),
            StoreError::NamespaceExists(n) => ServiceError::NamespaceExists(n),
            StoreError::NamespaceNotEmpty(n) => ServiceError::NamespaceNotEmpty(n),
            StoreError::ConfigNotFound(k) => ServiceError::ConfigNotFound(k),
            StoreError::GrayNotFound(k) => ServiceError::GrayNotFound(k),
            StoreError::CasMismatch {
                key,
                expected,
                current,
            } => ServiceError::CasConflict {
                key,
                expected,
                current,
            },
            StoreError::Conflict(why) => ServiceError::ConcurrentChange(why),
            StoreError::SchemaNotFound(target) => ServiceError::SchemaNotFound(target),
            other => {
                if other.is_outage() {
                    crate::metrics::database_error("request");
                }
                ServiceError::store_failure(other)
            }
        }
    }
}

/// What kind of failure a service error is: each surface maps these to its own status
/// codes, so they agree on what is the client's mistake and what is the node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule.
    Invalid,
    /// The content is over the size limit.
    TooLarge,
    NotFound,
    /// The state is not what the request expected (compare-and-set, exists, not empty).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// The write would take a namespace over one of its quotas.
    QuotaExceeded,
    /// The database does not answer; writes are refused until it does.
    Unavailable,
    Internal,
}

impl ServiceError {
    pub fn kind(&self) -> ErrorKind {
        use ServiceError as E;
        match self {
            E::InvalidContent(_)
            | E::InvalidArgument(_)
            | E::InvalidGray(_)
            | E::RevisionIsDeletion(_)
            | E::SchemaViolation(_)
            | E::InvalidSchema(_)
            | E::InvalidWebhook(_) => ErrorKind::Invalid,
            E::ContentTooLarge { .. } => ErrorKind::TooLarge,
            E::NamespaceNotFound(_)
            | E::ConfigNotFound(_)
            | E::GrayNotFound(_)
            | E::RevisionNotFound { .. }
            | E::SchemaNotFound(_)
            | E::WebhookNotFound(_)
            | E::DeliveryNotFound(..)
            | E::ChangeRequestNotFound(_) => ErrorKind::NotFound,
            E::NamespaceExists(_)
            | E::NamespaceNotEmpty(_)
            | E::CasConflict { .. }
            | E::ConcurrentChange(_)
            | E::SchemaRejectsContent { .. }
            | E::PublicNamespace
            | E::ReviewState(_)
            | E::StaleChangeRequest { .. } => ErrorKind::Conflict,
            E::Denied(_) | E::AdminOnly(_) | E::ReviewRequired { .. } | E::OwnChangeRequest(_) => {
                ErrorKind::Forbidden
            }
            E::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            E::Unavailable(_) => ErrorKind::Unavailable,
            E::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A failure of the store met (and counted) by another layer, such as auth.
    pub fn store_failure(e: StoreError) -> Self {
        if e.is_outage() {
            ServiceError::Unavailable(e)
        } else {
            ServiceError::Internal(e)
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Who asks: whose rights a write is checked against, and the audit trail's who and
/// from where.
#[derive(Debug, Clone)]
pub struct Actor {
    pub caller: Caller,
    pub source: String,
    /// The surface the request came through: `native`, `nacos`, `nacos-grpc`,
    /// `console`.
    pub surface: &'static str,
}

/// Where a read came from and through which surface, for the audit entry of a
/// refusal. Copied, not allocated: every read carries one, and only a refusal formats it.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The client's address (the proxy-forwarded one when `trust_forwarded_for`).
    pub source: Option<std::net::IpAddr>,
    pub surface: &'static str,
}

/// A publish as the surfaces hand it over. `None` fields keep the current value (or
/// take the default when the config is new).
#[derive(Debug, Clone, Default)]
pub struct PublishInput {
    pub content: String,
    pub format: Option<Format>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Mark (or unmark) the config sensitive; `None` keeps what it is.
    pub sensitive: Option<bool>,
    /// What the stored config must be for the write to go ahead.
    pub expect: Expect,
    /// Store content that does not parse as its format.
    pub force: bool,
    pub comment: Option<String>,
    /// An admin's emergency release into a namespace that requires review: released at
    /// once and flagged; `comment` is its reason and must be given.
    pub emergency: bool,
}

/// A gray release as the surfaces hand it over.
#[derive(Debug, Clone, Default)]
pub struct GrayInput {
    pub content: String,
    /// `None`: the main content's format.
    pub format: Option<Format>,
    pub ips: Vec<String>,
    pub labels: Vec<String>,
    pub force: bool,
    pub comment: Option<String>,
}

/// One key of one watch, for the "who listens" views.
pub struct HeldKey {
    pub listener: Arc<Listener>,
    pub key: ConfigKey,
    /// The md5 the client holds (`""`: none); `None` where the surface numbers
    /// versions itself.
    pub held: Option<String>,
    /// Whether what the client holds is what it would read now.
    pub current: bool,
}

/// A registered watch: the hub's registration, listed among the node's listeners for as
/// long as it lives.
pub struct Watch {
    registration: Registration,
    listed: Listed,
}

impl Watch {
    /// Whether the watch should answer and end: the node is shutting down, or the
    /// watch was revoked (its user lost the right to read a key, or was removed).
    pub fn closed(&self) -> bool {
        self.registration.closed() || self.listed.revoked()
    }

    /// Whether the watch was revoked rather than ended by shutdown.
    pub fn revoked(&self) -> bool {
        self.listed.revoked()
    }
}

impl std::ops::Deref for Watch {
    type Target = Registration;

    fn deref(&self) -> &Registration {
        &self.registration
    }
}

/// Search criteria; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub namespace: Option<Namespace>,
    pub group: Option<Wildcard>,
    pub data_id: Option<Wildcard>,
    pub tag: Option<String>,
    pub format: Option<Format>,
    pub content: Option<String>,
}

impl ListFilter {
    /// The configs of `namespace` whose group and data id match these wildcards; an
    /// empty or absent wildcard matches everything.
    pub fn within(namespace: Namespace, group: Option<&str>, data_id: Option<&str>) -> Self {
        let wildcard = |w: Option<&str>| w.filter(|w| !w.is_empty()).map(Wildcard::new);
        ListFilter {
            namespace: Some(namespace),
            group: wildcard(group),
            data_id: wildcard(data_id),
            ..ListFilter::default()
        }
    }
}

/// What an import does about a config that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Import nothing, and say which configs exist.
    Abort,
    /// Leave the existing config as it is; import the others.
    Skip,
    /// Replace it.
    Overwrite,
}

impl std::str::FromStr for Conflict {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "abort" => Ok(Conflict::Abort),
            "skip" => Ok(Conflict::Skip),
            "overwrite" => Ok(Conflict::Overwrite),
            _ => Err(format!(
                "policy {text:?} is not one of abort, skip, overwrite"
            )),
        }
    }
}

/// How an import treats what it cannot take as it is.
#[derive(Debug, Clone, Copy)]
pub struct ImportPolicy {
    /// What to do about a config that exists with other content.
    pub conflict: Conflict,
    /// Leave out a config that cannot be imported (a name, size, format or content
    /// Cairn refuses) and report why, instead of importing nothing.
    pub skip_invalid: bool,
}

impl From<Conflict> for ImportPolicy {
    fn from(conflict: Conflict) -> Self {
        ImportPolicy {
            conflict,
            skip_invalid: false,
        }
    }
}

/// What a pattern watch answers.
pub struct PatternAnswer {
    /// The matching configs that changed (or, when `complete`, every matching config),
    /// as the client reads them now; `None`: deleted.
    pub changed: Vec<(ConfigKey, Option<View>)>,
    /// The applied sequence the answer is as of: the next poll's `since`.
    pub seq: i64,
    /// `changed` lists every matching config, not only changes: the client replaces
    /// what it holds with it (configs it holds that are not listed are gone).
    pub complete: bool,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: Vec<ConfigKey>,
    /// Bytes of content written.
    pub bytes: u64,
    /// Left as they were (policy `skip`).
    pub skipped: Vec<ConfigKey>,
    /// Already stored exactly so (content, format, description and tags): not written
    /// again, whatever the policy, so that an import can be repeated.
    pub unchanged: Vec<ConfigKey>,
    /// Left out, and why (only with `skip_invalid`).
    pub refused: Vec<(String, String)>,
    /// Gray releases started (Cairn's format carries them).
    pub grays: usize,
    /// Earlier versions written as history (Cairn's format with history; only for
    /// configs the import creates).
    pub history: usize,
}

/// The most problems an import's refusal lists one by one.
const PROBLEMS_LISTED: usize = 50;

/// A namespace and how many configs it holds.
pub struct NamespaceInfo {
    pub record: NamespaceRecord,
    pub config_count: usize,
    /// What it holds, against `limits`.
    pub usage: crate::cache::Usage,
    /// Its quotas and history retention in force.
    pub limits: crate::limits::Effective,
}

pub struct Service {
    store: Arc<dyn Store>,
    /// Whether webhooks may target loopback, private and link-local addresses.
    private_webhooks: bool,
    commits: Arc<Commits>,
    max_content_bytes: usize,
    /// Serializes writes to one key on this node, so that a key's commit, cache update
    /// and wake-up happen in revision order.
    locks: Vec<Arc<Mutex<()>>>,
    hasher: RandomState,
    listeners: Arc<Listeners>,
    /// Whose rights each write is checked against.
    auth: Arc<Auth>,
    /// Namespaces' quotas, checked by every write.
    limits: Arc<crate::limits::Limits>,
    /// Schemas attached to configs, checked by every write of content.
    schemas: Arc<crate::schemas::Schemas>,
    /// One step of a change request's review at a time on this node.
    review_lock: Mutex<()>,
}

/// Checks that `content` parses as `format` (unless forced); large contents are parsed
/// on the blocking pool, off the async workers.
async fn validated(content: String, format: Format, force: bool) -> Result<String> {
    if force {
        return Ok(content);
    }
    if content.len() <= INLINE_VALIDATION_BYTES {
        format
            .validate(&content)
            .map_err(ServiceError::InvalidContent)?;
        return Ok(content);
    }
    tokio::task::spawn_blocking(move || format.validate(&content).map(|()| content))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(ServiceError::InvalidContent)
}

fn check_tags(tags: Vec<String>) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(ServiceError::InvalidArgument(format!(
            "{} tags given; the limit is {MAX_TAGS}",
            tags.len()
        )));
    }
    let mut clean = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag =
            Tag::parse(tag.trim()).map_err(|e| ServiceError::InvalidArgument(e.to_string()))?;
        if !clean.iter().any(|t: &String| t == tag.as_str()) {
            clean.push(tag.as_str().to_owned());
        }
    }
    Ok(clean)
}

/// The most app patterns a namespace lists for unsigned Apollo reads.
const MAX_ANONYMOUS_APPS: usize = 64;

/// Apollo app ids, or patterns of them with `*`.
fn check_app_patterns(apps: &[String]) -> Result<()> {
    if apps.len() > MAX_ANONYMOUS_APPS {
        return Err(ServiceError::InvalidArgument(format!(
            "{} apps given; the limit is {MAX_ANONYMOUS_APPS} (use a * pattern)",
            apps.len()
        )));
    }
    for app in apps {
        if !crate::access_keys::valid_app_id(&app.replace('*', "x")) {
            return Err(ServiceError::InvalidArgument(format!(
                "{app:?} is not an app id or a pattern of them (letters, digits, _ - . and *)"
            )));
        }
    }
    Ok(())
}

fn check_description(description: &str) -> Result<()> {
    let len = description.chars().count();
    if len > MAX_DESCRIPTION {
        return Err(ServiceError::InvalidArgument(format!(
            "description is {len} characters long; the limit is {MAX_DESCRIPTION}"
        )));
    }
    Ok(())
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        commits: Arc<Commits>,
        max_content_bytes: usize,
        auth: Arc<Auth>,
        limits: Arc<crate::limits::Limits>,
        schemas: Arc<crate::schemas::Schemas>,
        private_webhooks: bool,
    ) -> Self {
        Self {
            private_webhooks,
            store,
            commits,
            max_content_bytes,
            limits,
            schemas,
            review_lock: Mutex::new(()),
            locks: (0..LOCK_STRIPES)
                .map(|_| Arc::new(Mutex::new(())))
                .collect(),
            hasher: RandomState::new(),
            listeners: auth.listeners().clone(),
            auth,
        }
    }

    /// Refuses `action` on `target` in `namespace` to an actor who does not administer
    /// the namespace. A refusal is audited.
    fn may_administer(
        &self,
        actor: &Actor,
        namespace: &Namespace,
        action: &str,
        target: String,
    ) -> Result<()> {
        self.auth
            .access()
            .require_namespace(&actor.caller, namespace, Level::Admin)
            .map_err(|denied| {
                let detail = denied.to_string();
                let audit = self.auth.audit();
                audit.act(
                    actor,
                    action,
                    namespace.as_str(),
                    target,
                    Outcome::Denied,
                    detail,
                );
                denied.into()
            })
    }

    /// Refuses a change of `key` by an actor without write access to it. Every write
    /// operation checks here, whatever surface it came through.
    /// A refusal is audited.
    fn may_write(&self, actor: &Actor, key: &ConfigKey, op: Op) -> Result<()> {
        self.auth
            .access()
            .require(&actor.caller, key, Level::Write)
            .map_err(|denied| {
                self.auth.audit().act(
                    actor,
                    op.audit_action(),
                    key.namespace.as_str(),
                    key.to_string(),
                    Outcome::Denied,
                    denied.to_string(),
                );
                denied.into()
            })
    }

    /// What `caller` may read, for checking many keys against one snapshot of the
    /// grants.
    pub fn reader(&self, caller: &Caller) -> Reader {
        self.auth.access().reader(caller)
    }

    /// Refuses a watch of many keys if `caller` may not read one of them: one snapshot
    /// of the grants for all, the refusal (and its audit entry) for the first that fails.
    pub fn may_read_all<'a>(
        &self,
        caller: &Caller,
        mut keys: impl Iterator<Item = &'a ConfigKey>,
        origin: Origin,
    ) -> Result<()> {
        let reader = self.reader(caller);
        match keys.find(|key| !self.level_reads(reader.level(key), key)) {
            Some(key) => self.may_read(caller, key, origin),
            None => Ok(()),
        }
    }

    /// What reading `key` needs: `read-secret` for a sensitive config.
    fn needed_to_read(&self, key: &ConfigKey) -> Level {
        let sensitive = self.get(key).is_some_and(|c| c.sensitive);
        crate::access::needed_to_read(key, sensitive)
    }

    /// Whether a caller at `level` reads `key`. The config's mark is looked up only at
    /// exactly `read`: below it nothing is read and from `read-secret` on everything
    /// is, so most reads (services' tokens with write, admins) skip the lookup.
    fn level_reads(&self, level: Level, key: &ConfigKey) -> bool {
        match level {
            Level::None => false,
            Level::Read => self.needed_to_read(key) == Level::Read,
            Level::ReadSecret | Level::Write | Level::Approve | Level::Admin => true,
        }
    }

    /// Whether `caller` may read `key`, unaudited: for a path that leaves every refusal
    /// to [`Service::may_read`].
    pub fn reads(&self, caller: &Caller, key: &ConfigKey) -> bool {
        self.level_reads(self.auth.access().level(caller, key), key)
    }

    /// Refuses a read of `key` by a caller without read access to it (`read-secret`
    /// for a sensitive config). A refusal is audited.
    pub fn may_read(&self, caller: &Caller, key: &ConfigKey, origin: Origin) -> Result<()> {
        if self.reads(caller, key) {
            return Ok(());
        }
        let access = self.auth.access();
        access
            .require(caller, key, self.needed_to_read(key))
            .map_err(|denied| {
                self.auth.audit().record(cairn_store::AuditRecord {
                    at: now_millis(),
                    actor: caller.username.to_string(),
                    source: origin.source.map(|ip| ip.to_string()).unwrap_or_default(),
                    surface: origin.surface.to_owned(),
                    action: "config.read".to_owned(),
                    namespace: key.namespace.to_string(),
                    target: key.to_string(),
                    result: Outcome::Denied.as_str().to_owned(),
                    detail: denied.to_string(),
                    ..Default::default()
                });
                denied.into()
            })
    }

    pub fn max_content_bytes(&self) -> usize {
        self.max_content_bytes
    }

    async fn lock(&self, key: &ConfigKey) -> OwnedMutexGuard<()> {
        let stripe = (self.hasher.hash_one(key) as usize) % LOCK_STRIPES;
        self.locks[stripe].clone().lock_owned().await
    }

    /// Runs a commit and what must follow it (cache update, wake-ups) on its own task:
    /// if the client goes away mid-request, the request's future is dropped, but a
    /// committed change must still reach the cache and the watchers.
    async fn detached<T: Send + 'static>(
        job: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        match tokio::spawn(job).await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    fn audit(actor: &Actor, comment: String) -> Audit {
        Audit {
            operator: actor.caller.username.to_string(),
            source: actor.source.clone(),
            comment,
            at: now_millis(),
            surface: actor.surface.to_owned(),
            emergency: false,
        }
    }

    /// The current version of a config, from memory.
    pub fn get(&self, key: &ConfigKey) -> Option<Arc<ConfigRecord>> {
        self.commits.cache().get(key)
    }

    /// `key`, sharing its names with the cached config's (`Cache::intern`).
    pub fn intern(&self, key: ConfigKey) -> ConfigKey {
        self.commits.cache().intern(key)
    }

    /// The config as `client` sees it (its gray release if the rules match), from memory.
    pub fn view(&self, key: &ConfigKey, client: &cairn_core::ClientInfo) -> Option<View> {
        self.commits.cache().view(key, client)
    }

    /// What is known of a key's versions, for surfaces that number changes per client.
    pub fn key_state(&self, key: &ConfigKey) -> KeyState {
        self.commits.cache().key_state(key)
    }

    /// Configs held in memory.
    pub fn configs_cached(&self) -> usize {
        self.commits.cache().len()
    }

    /// Stores every sealed value under the current encryption key, in passes until one
    /// finds no value changed under it meanwhile (at most three).
    pub async fn reseal(&self) -> std::result::Result<cairn_store::ResealReport, StoreError> {
        let mut total = cairn_store::ResealReport::default();
        for pass in 1..=3 {
            let done = self.store.reseal().await?;
            total.rewrapped += done.rewrapped;
            total.sealed += done.sealed;
            total.raced = done.raced;
            if pass == 1 {
                total.current = done.current;
            }
            if done.raced == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Whether the node is shutting down: watches end rather than wait again.
    pub fn shutting_down(&self) -> bool {
        self.commits.hub().is_closed()
    }

    /// Watches held, and keys with at least one watcher.
    pub fn watch_counts(&self) -> (usize, usize) {
        let hub = self.commits.hub();
        (hub.held(), hub.watched_keys())
    }

    /// Registers a watcher of the listener's keys, woken by every change to one of them
    /// (and once at shutdown) until the watch is dropped, and lists it among the node's
    /// listeners meanwhile. Register before comparing, so a change in between is not
    /// missed.
    pub fn register(&self, listener: Listener) -> Watch {
        let registration = self.commits.hub().register(listener.keys());
        self.listed(registration, listener)
    }

    /// Registers a long poll of `listener`'s keys, which answers the first change it
    /// sees (`Hub::register_once`).
    fn register_once(&self, listener: Listener) -> Watch {
        let registration = self.commits.hub().register_once(listener.keys());
        self.listed(registration, listener)
    }

    fn listed(&self, registration: crate::hub::Registration, listener: Listener) -> Watch {
        let listed = self.listeners.add(listener, registration.waker());
        Watch {
            registration,
            listed,
        }
    }

    /// The watches of `key` on this node: each with what its client holds of the key
    /// and whether that is what the client would read now.
    pub fn listeners_of(&self, key: &ConfigKey) -> Vec<HeldKey> {
        self.listeners
            .of_key(key)
            .into_iter()
            .map(|(listener, held)| self.held_key(listener, key.clone(), held))
            .collect()
    }

    /// The watches of the client at `ip` on this node, each key with what the client
    /// holds and whether it is current.
    pub fn listened_by(&self, ip: std::net::IpAddr) -> Vec<(Arc<Listener>, Vec<HeldKey>)> {
        self.listeners
            .of_client(ip)
            .into_iter()
            .map(|listener| {
                let keys = listener
                    .held
                    .iter()
                    .map(|(key, held)| self.held_key(listener.clone(), key.clone(), held.clone()))
                    .collect();
                (listener, keys)
            })
            .collect()
    }

    fn held_key(&self, listener: Arc<Listener>, key: ConfigKey, held: Option<String>) -> HeldKey {
        let current = match &held {
            Some(md5) => {
                let now = self.view(&key, &listener.client);
                now.as_ref().map_or("", |v| v.md5()) == md5
            }
            // Held polls of surfaces that number versions are answered when they fall
            // behind, so while held they are current.
            None => true,
        };
        HeldKey {
            listener,
            key,
            held,
            current,
        }
    }

    /// How many watches this node holds, over every surface.
    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// Answers every watch, now and later: the node is shutting down.
    pub fn close_watches(&self) {
        self.commits.hub().close();
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// Closes the database connections, at the end of shutdown.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Waits, up to `timeout`, until this node has applied every change up to `seq` (a
    /// change another node told a client of); woken as the tailer applies changes.
    /// Returns whether it has.
    pub async fn wait_applied(&self, seq: i64, timeout: std::time::Duration) -> bool {
        self.commits
            .wait_applied(seq, tokio::time::Instant::now() + timeout)
            .await
    }

    /// Publishes, first creating the namespace when it does not exist and `may_create`
    /// (clients of other config centers publish into any tenant and expect it made).
    pub async fn publish_creating_namespace(
        &self,
        key: ConfigKey,
        input: PublishInput,
        actor: &Actor,
        may_create: bool,
    ) -> Result<Arc<ConfigRecord>> {
        if !may_create {
            return self.publish(key, input, actor).await;
        }
        // Kept for the retry; only callers who may make namespaces pay for the copy.
        match self.publish(key.clone(), input.clone(), actor).await {
            Err(ServiceError::NamespaceNotFound(_)) => {
                let made = self
                    .create_namespace(
                        key.namespace.clone(),
                        String::new(),
                        format!("created by a publish of {key}"),
                    )
                    .await;
                match made {
                    Ok(_) | Err(ServiceError::NamespaceExists(_)) => {}
                    Err(e) => return Err(e),
                }
                self.publish(key, input, actor).await
            }
            other => other,
        }
    }

    /// Creates or replaces a config.
    pub async fn publish(
        &self,
        key: ConfigKey,
        input: PublishInput,
        actor: &Actor,
    ) -> Result<Arc<ConfigRecord>> {
        self.write(key, input, Op::Publish, actor, Route::Direct)
            .await
    }

    /// Refuses a write's content over the size limit, and tags or a description that
    /// break their rules; the tags as checked.
    fn check_input(&self, input: &PublishInput) -> Result<Option<Vec<String>>> {
        if input.content.len() > self.max_content_bytes {
            return Err(ServiceError::ContentTooLarge {
                size: input.content.len(),
                max: self.max_content_bytes,
            });
        }
        let tags = input.tags.clone().map(check_tags).transpose()?;
        if let Some(description) = &input.description {
            check_description(description)?;
        }
        Ok(tags)
    }

    async fn write(
        &self,
        key: ConfigKey,
        input: PublishInput,
        op: Op,
        actor: &Actor,
        route: Route,
    ) -> Result<Arc<ConfigRecord>> {
        self.may_write(actor, &key, op)?;
        let emergency = self.review_gate(actor, &key, op, &route, &input)?;
        let tags = self.check_input(&input)?;
        let guard = self.lock(&key).await;
        let default_format = Format::from_file_name(key.data_id.as_str()).unwrap_or_default();
        let current = self.get(&key);
        self.check_quota(&key.namespace, current.as_deref(), input.content.len())?;
        // The cache's format is a guess the store checks inside its transaction.
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
        let md5 = md5_hex(&content);
        let write = ConfigWrite {
            key,
            op,
            content,
            md5,
            format: input.format,
            default_format,
            validated_as: (!input.force).then_some(format),
            description: input.description,
            tags,
            sensitive: input.sensitive,
            expect: input.expect,
            audit: Audit {
                emergency,
                ..Self::audit(actor, input.comment.unwrap_or_default())
            },
        };
        let (store, commits) = (self.store.clone(), self.commits.clone());
        let record = Self::detached(async move {
            let _guard = guard;
            let record = Arc::new(store.put_config(&write).await?);
            commits.apply(Change::Config(record.clone()));
            Ok(record)
        })
        .await?;
        tracing::info!(key = %record.key, revision = %record.revision, op = op.as_str(), by = %actor.caller.username, "config written");
        Ok(record)
    }

    /// Refuses a write of `size` bytes over `current` (absent: a new config) that
    /// would take `namespace` over a quota.
    fn check_quota(
        &self,
        namespace: &Namespace,
        current: Option<&ConfigRecord>,
        size: usize,
    ) -> Result<()> {
        let growth = crate::limits::Growth {
            new_configs: u64::from(current.is_none()),
            bytes: size as i64 - current.map_or(0, |c| c.content.len() as i64),
            largest: size as u64,
        };
        let used = self.commits.cache().usage(namespace);
        Ok(self.limits.check(namespace, used, growth)?)
    }

    /// `content` once checked against every schema attached to `key` (`marked`: the
    /// config is marked sensitive, so a refusal leaves its values out). Large contents
    /// are checked on the blocking pool, off the async workers.
    async fn schema_checked(
        &self,
        key: &ConfigKey,
        format: Format,
        content: String,
        marked: bool,
    ) -> Result<String> {
        let schemas = self.schemas.matching(key);
        if schemas.is_empty() {
            return Ok(content);
        }
        let redact = crate::access::is_sensitive(key, marked);
        if content.len() <= INLINE_VALIDATION_BYTES {
            crate::schemas::check_against(&schemas, key, format, &content, redact)?;
            return Ok(content);
        }
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            crate::schemas::check_against(&schemas, &key, format, &content, redact)
                .map(|()| content)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(ServiceError::from)
    }

    /// A namespace's quotas and retention in force.
    pub fn limits_of(&self, namespace: &Namespace) -> crate::limits::Effective {
        self.limits.effective(namespace)
    }

    /// Re-reads every namespace's own limits (after a change here; other nodes' at
    /// each heartbeat).
    async fn refresh_limits(&self) -> Result<()> {
        let records = self.store.list_namespaces().await?;
        self.limits.refresh(&records);
        Ok(())
    }

    /// Deletes a config; returns the revision of the deletion.
    pub async fn delete(&self, key: ConfigKey, expect: Expect, actor: &Actor) -> Result<Revision> {
        self.remove(key, expect, actor, None, Route::Direct).await
    }

    /// Deletes a config as an admin's emergency change (`reason` kept as its comment)
    /// where the namespace requires review.
    pub async fn delete_in_emergency(
        &self,
        key: ConfigKey,
        expect: Expect,
        actor: &Actor,
        reason: String,
    ) -> Result<Revision> {
        self.remove(key, expect, actor, Some(reason), Route::Direct)
            .await
    }

    async fn remove(
        &self,
        key: ConfigKey,
        expect: Expect,
        actor: &Actor,
        emergency: Option<String>,
        route: Route,
    ) -> Result<Revision> {
        self.may_write(actor, &key, Op::Delete)?;
        let input = PublishInput {
            emergency: emergency.is_some(),
            comment: emergency.clone(),
            ..PublishInput::default()
        };
        let flagged = self.review_gate(actor, &key, Op::Delete, &route, &input)?;
        if !matches!(expect, Expect::Any | Expect::Md5(_)) {
            return Err(ServiceError::InvalidArgument(
                "cas_md5 of a delete must be the md5 of the content to delete".to_owned(),
            ));
        }
        let comment = match route {
            Route::Reviewed(note) => note,
            Route::Direct => emergency.unwrap_or_default(),
        };
        let delete = ConfigDelete {
            key,
            expect,
            audit: Audit {
                emergency: flagged,
                ..Self::audit(actor, comment)
            },
        };
        let guard = self.lock(&delete.key).await;
        let (store, commits) = (self.store.clone(), self.commits.clone());
        let change = Self::detached(async move {
            let _guard = guard;
            let change = store.delete_config(&delete).await?;
            commits.apply(Change::Deleted {
                key: change.key.clone(),
                seq: change.seq,
            });
            Ok(change)
        })
        .await?;
        tracing::info!(key = %change.key, revision = %change.seq, by = %actor.caller.username, "config deleted");
        Ok(change.seq)
    }

    /// Creates or replaces a config's gray release: `input.content` goes to the clients
    /// its rules match.
    pub async fn gray_publish(
        &self,
        key: ConfigKey,
        input: GrayInput,
        actor: &Actor,
    ) -> Result<Arc<GrayRecord>> {
        self.may_write(actor, &key, Op::GrayPublish)?;
        self.review_gate(
            actor,
            &key,
            Op::GrayPublish,
            &Route::Direct,
            &PublishInput::default(),
        )?;
        if input.content.len() > self.max_content_bytes {
            return Err(ServiceError::ContentTooLarge {
                size: input.content.len(),
                max: self.max_content_bytes,
            });
        }
        // A namespace's own bound on a config's size holds for its gray content too.
        let largest = crate::limits::Growth {
            largest: input.content.len() as u64,
            ..Default::default()
        };
        let used = self.commits.cache().usage(&key.namespace);
        self.limits.check(&key.namespace, used, largest)?;
        let rules =
            GrayRules::parse(&input.ips, &input.labels).map_err(ServiceError::InvalidGray)?;
        let guard = self.lock(&key).await;
        let Some(main) = self.get(&key) else {
            return Err(ServiceError::ConfigNotFound(key));
        };
        let format = input.format.unwrap_or(main.format);
        let content = validated(input.content, format, input.force).await?;
        let content = self
            .schema_checked(&key, format, content, main.sensitive)
            .await?;
        let write = GrayWrite {
            md5: md5_hex(&content),
            key,
            content,
            format: input.format,
            validated_as: (!input.force).then_some(format),
            rules,
            audit: Self::audit(actor, input.comment.unwrap_or_default()),
        };
        let (store, commits) = (self.store.clone(), self.commits.clone());
        let record = Self::detached(async move {
            let _guard = guard;
            let record = Arc::new(store.put_gray(&write).await?);
            commits.apply(Change::Gray(record.clone()));
            Ok(record)
        })
        .await?;
        tracing::info!(key = %record.key, revision = %record.revision, rules = %record.rules, by = %actor.caller.username, "gray release published");
        Ok(record)
    }

    /// A config's gray release.
    pub fn gray(&self, key: &ConfigKey) -> Result<Arc<GrayRecord>> {
        self.commits
            .cache()
            .gray(key)
            .ok_or_else(|| ServiceError::GrayNotFound(key.clone()))
    }

    /// Makes the gray content the main content, for everyone.
    pub async fn gray_promote(&self, key: ConfigKey, actor: &Actor) -> Result<Arc<ConfigRecord>> {
        self.may_write(actor, &key, Op::GrayPromote)?;
        self.review_gate(
            actor,
            &key,
            Op::GrayPromote,
            &Route::Direct,
            &PublishInput::default(),
        )?;
        let guard = self.lock(&key).await;
        // Schemas attached since the gray release began hold for what it promotes: the
        // release as stored, and the promotion takes that one or none (another node may
        // replace it meanwhile).
        let mut expect = Expect::Any;
        if !self.schemas.matching(&key).is_empty() {
            if let Some(gray) = self.store.get_gray(&key).await? {
                let marked = self.get(&key).is_some_and(|c| c.sensitive);
                expect = Expect::Md5(gray.md5.clone());
                self.schema_checked(&key, gray.format, gray.content, marked)
                    .await?;
            }
        }
        let audit = Self::audit(actor, String::new());
        let (store, commits) = (self.store.clone(), self.commits.clone());
        let record = Self::detached(async move {
            let _guard = guard;
            let record = Arc::new(store.promote_gray(&key, &expect, &audit).await?);
            commits.apply(Change::Promoted {
                key,
                seq: record.revision,
                config: Some(record.clone()),
            });
            Ok(record)
        })
        .await?;
        tracing::info!(key = %record.key, revision = %record.revision, by = %actor.caller.username, "gray release promoted");
        Ok(record)
    }

    /// Ends a gray release: its clients go back to the main content.
    pub async fn gray_abandon(&self, key: ConfigKey, actor: &Actor) -> Result<Revision> {
        self.may_write(actor, &key, Op::GrayAbandon)?;
        let guard = self.lock(&key).await;
        let audit = Self::audit(actor, String::new());
        let (store, commits) = (self.store.clone(), self.commits.clone());
        let change = Self::detached(async move {
            let _guard = guard;
            let change = store.abandon_gray(&key, &audit).await?;
            commits.apply(Change::GrayEnded {
                key,
                seq: change.seq,
            });
            Ok(change)
        })
        .await?;
        tracing::info!(key = %change.key, revision = %change.seq, by = %actor.caller.username, "gray release abandoned");
        Ok(change.seq)
    }

    /// Waits, up to `timeout`, until `check` finds something to answer a watcher of
    /// `keys` with. `check` runs at once, and again after each change to one of the keys
    /// (registration comes first, so a change between a check and the wait is not
    /// missed). `None` when the time runs out or the node shuts down. Every surface's
    /// long poll is this loop.
    pub async fn wait_until<T>(
        &self,
        listener: impl FnOnce() -> Listener,
        timeout: std::time::Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        if let Some(found) = check() {
            return Some(found);
        }
        if timeout.is_zero() {
            return None;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        // Only a poll that waits is listed: one answered at once costs no copy.
        let registration = self.register_once(listener());
        loop {
            if let Some(found) = check() {
                return Some(found);
            }
            // The hub is closed at shutdown, which wakes the watch.
            if registration.closed() {
                return None;
            }
            tokio::select! {
                _ = registration.changed() => registration.renew(),
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// The keys of `held` whose content, as `client` sees it, no longer has the md5 the
    /// client holds (`""`: it holds nothing), each with what the client now sees (`None`:
    /// no such config): at once if some already differ, else after waiting up to
    /// `timeout` for a change; empty when nothing changed in time.
    ///
    /// A key `caller` may not read refuses the whole watch: a silently empty answer
    /// would look like "nothing changed" forever. A watch whose caller loses the right
    /// (or their password changes) while it waits is answered empty at once; the next
    /// poll is refused.
    pub async fn wait_for_changes(
        &self,
        caller: &Caller,
        protocol: Protocol,
        held: &[(ConfigKey, String)],
        client: &cairn_core::ClientInfo,
        timeout: std::time::Duration,
        origin: Origin,
    ) -> Result<Vec<(ConfigKey, Option<View>)>> {
        self.may_read_all(caller, held.iter().map(|(key, _)| key), origin)?;
        let listener = || {
            let listed = held
                .iter()
                .map(|(k, md5)| (k.clone(), Some(md5.clone())))
                .collect();
            Listener::new(protocol, client.clone(), listed).by(&caller.username)
        };
        Ok(self
            .wait_until(listener, timeout, || {
                let stale: Vec<(ConfigKey, Option<View>)> = held
                    .iter()
                    .filter_map(|(key, md5)| {
                        let view = self.view(key, client);
                        let now = view.as_ref().map_or("", |v| v.md5());
                        (now != md5).then(|| (key.clone(), view))
                    })
                    .collect();
                (!stale.is_empty()).then_some(stale)
            })
            .await
            .unwrap_or_default())
    }

    /// Configs matching `filter` that `caller` may read, in key order, one page of them,
    /// and the total count.
    pub fn list(
        &self,
        caller: &Caller,
        filter: &ListFilter,
        page: Page,
    ) -> (Vec<Arc<ConfigRecord>>, usize) {
        let all = self.select(caller, filter);
        let total = all.len();
        let items = all
            .into_iter()
            .skip(page.offset() as usize)
            .take(page.size as usize)
            .collect();
        (items, total)
    }

    /// A pattern watch: the configs `patterns` match (that `caller` may read) changed
    /// by changes after `since`, as `client` reads them now (`None`: deleted); at once
    /// if there are any, else when one changes, else empty after `timeout`. With
    /// `since` 0, or older than the node still keeps, the answer is every matching
    /// config instead (`complete`). The answer's `seq` is the `since` of the next poll.
    pub async fn wait_for_pattern(
        &self,
        caller: &Caller,
        patterns: Vec<crate::hub::Pattern>,
        since: i64,
        client: &cairn_core::ClientInfo,
        timeout: std::time::Duration,
    ) -> Result<PatternAnswer> {
        for pattern in &patterns {
            // Known from memory on every poll but the first after a namespace appears
            // elsewhere: a poll does not read the namespace table.
            if !self.limits.knows(&pattern.namespace) {
                self.namespace(&pattern.namespace).await?;
            }
            self.auth
                .access()
                .require_visible(caller, &pattern.namespace)?;
        }
        let reader = self.reader(caller);
        // A sensitive config is left out for a caller without read-secret, as in lists.
        let matches = |key: &ConfigKey| {
            patterns.iter().any(|p| p.matches(key)) && self.level_reads(reader.level(key), key)
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let registration =
            (!timeout.is_zero()).then(|| self.commits.hub().register_patterns(patterns.clone()));
        loop {
            // This node's own writes are in the cache before the applied sequence
            // reaches them (it waits for the tailer to see every change before them);
            // waiting for it briefly gives the client a `since` past them, so the next
            // poll does not list them again.
            let newest = self.commits.newest();
            self.commits
                .wait_applied(newest, tokio::time::Instant::now() + APPLIED_WAIT)
                .await;
            // Read before looking, so a change applied meanwhile is listed again by
            // the next poll rather than skipped.
            let seq = self.commits.applied();
            let changed = if since > 0 {
                self.commits.changed_since(since)
            } else {
                None
            };
            match changed {
                None => {
                    let all = self
                        .commits
                        .cache()
                        .select(|c| matches(&c.key))
                        .into_iter()
                        .map(|c| {
                            let view = self.view(&c.key, client);
                            (c.key.clone(), view)
                        })
                        .collect();
                    return Ok(PatternAnswer {
                        changed: all,
                        seq,
                        complete: true,
                    });
                }
                Some(keys) => {
                    let changed: Vec<(ConfigKey, Option<View>)> = keys
                        .into_iter()
                        .filter(|key| matches(key))
                        .map(|key| {
                            let view = self.view(&key, client);
                            (key, view)
                        })
                        .collect();
                    if !changed.is_empty() {
                        return Ok(PatternAnswer {
                            changed,
                            seq,
                            complete: false,
                        });
                    }
                }
            }
            let Some(registration) = &registration else {
                return Ok(PatternAnswer {
                    changed: Vec::new(),
                    seq,
                    complete: false,
                });
            };
            if registration.closed() {
                return Ok(PatternAnswer {
                    changed: Vec::new(),
                    seq,
                    complete: false,
                });
            }
            tokio::select! {
                _ = registration.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    // Nothing after `since` matched: the client keeps its place, even
                    // one taken on a node further ahead than this one.
                    return Ok(PatternAnswer { changed: Vec::new(), seq: seq.max(since), complete: false });
                }
            }
        }
    }

    /// Every config matching `filter` that `caller` may read, as an export carries it,
    /// with each one's earlier versions when `with_history` (those written while the
    /// config was sensitive only for a caller with `read-secret`); the filter's
    /// namespace must exist.
    pub async fn export(
        &self,
        caller: &Caller,
        filter: &ListFilter,
        with_history: bool,
    ) -> Result<Vec<crate::transfer::Item>> {
        if let Some(namespace) = &filter.namespace {
            self.namespace(namespace).await?;
        }
        let configs = self.select(caller, filter);
        let mut items = self.export_items(&configs);
        if !with_history {
            return Ok(items);
        }
        let Some(namespace) = &filter.namespace else {
            return Err(ServiceError::InvalidArgument(
                "an export with history is of one namespace".to_owned(),
            ));
        };
        let reader = self.reader(caller);
        let mut past: HashMap<ConfigKey, Vec<HistoryRecord>> = HashMap::new();
        for entry in self.store.namespace_history(namespace).await? {
            if !entry.sensitive || reader.level(&entry.key) >= Level::ReadSecret {
                past.entry(entry.key.clone()).or_default().push(entry);
            }
        }
        for (item, config) in items.iter_mut().zip(&configs) {
            let Some(entries) = past.remove(&config.key) else {
                continue;
            };
            // Up to the exported version's own entry, which keeps who wrote it and
            // when (an import writes the config anew after it); versions after it
            // were written since it was read.
            item.history = entries
                .into_iter()
                .filter(|e| e.revision <= config.revision)
                .map(|e| crate::transfer::PastItem {
                    revision: e.revision.get(),
                    op: e.op,
                    content: e.content,
                    format: e.format,
                    md5: e.md5,
                    description: e.description,
                    tags: e.tags,
                    sensitive: e.sensitive,
                    operator: e.operator,
                    source: e.source,
                    comment: e.comment,
                    created_at: e.created_at,
                })
                .collect();
        }
        Ok(items)
    }

    /// `configs` as an export carries them, without history.
    fn export_items(&self, configs: &[Arc<ConfigRecord>]) -> Vec<crate::transfer::Item> {
        configs
            .iter()
            .map(|c| crate::transfer::Item {
                group: c.key.group.clone(),
                data_id: c.key.data_id.clone(),
                content: c.content.clone(),
                format: Some(c.format),
                description: c.description.clone(),
                tags: c.tags.clone(),
                sensitive: c.sensitive,
                gray: self
                    .commits
                    .cache()
                    .gray(&c.key)
                    .map(|g| crate::transfer::GrayItem {
                        content: g.content.clone(),
                        format: (g.format != c.format).then(|| g.format.as_str().to_owned()),
                        ips: g.rules.ips.iter().map(ToString::to_string).collect(),
                        labels: g.rules.labels.iter().map(ToString::to_string).collect(),
                    }),
                history: Vec::new(),
            })
            .collect()
    }

    /// Copies the configs `from` selects (those the actor may read) into `namespace`,
    /// into `to_group` when given, as an import of them would.
    pub async fn clone_into(
        &self,
        namespace: &Namespace,
        from: &ListFilter,
        to_group: Option<cairn_core::Group>,
        policy: Conflict,
        actor: &Actor,
    ) -> Result<ImportReport> {
        let mut items = self.export(&actor.caller, from, false).await?;
        for item in &mut items {
            // A gray release is a step of a change in its own namespace, not content.
            item.gray = None;
            if let Some(group) = &to_group {
                item.group = group.clone();
            }
        }
        self.import(namespace, items, policy.into(), actor).await
    }

    /// Imports `items` into `namespace` in one transaction: every item is checked first
    /// (the caller's right to write it, names, size, tags, content against its format,
    /// and what `policy` says of an existing config), and if any fails, nothing is
    /// written and the refusal names each failure. Watchers of each imported config are
    /// woken once.
    pub async fn import(
        &self,
        namespace: &Namespace,
        items: Vec<crate::transfer::Item>,
        policy: ImportPolicy,
        actor: &Actor,
    ) -> Result<ImportReport> {
        self.namespace(namespace).await?;
        self.import_gate(actor, namespace)?;
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut report = ImportReport::default();
        let mut writes = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::new();
        let mut growth = crate::limits::Growth::default();
        // Gray releases the items carry, started once their configs are in.
        let mut grays = Vec::new();
        // Earlier versions of the configs the import creates.
        let mut past = Vec::new();
        for item in items {
            let key = ConfigKey::new(namespace.clone(), item.group, item.data_id);
            if !seen.insert(key.clone()) {
                problems.push((key.to_string(), "more than once in the import".to_owned()));
                continue;
            }
            // A config the caller may not write refuses the import as a whole, as the
            // refusal of a single publish would (and is audited once).
            self.may_write(actor, &key, Op::Publish)?;
            if item.content.len() > self.max_content_bytes {
                problems.push((
                    key.to_string(),
                    format!(
                        "{} bytes, more than max_content_bytes ({})",
                        item.content.len(),
                        self.max_content_bytes
                    ),
                ));
                continue;
            }
            let tags = match check_tags(item.tags) {
                Ok(tags) => tags,
                Err(e) => {
                    problems.push((key.to_string(), e.to_string()));
                    continue;
                }
            };
            if let Err(e) = check_description(&item.description) {
                problems.push((key.to_string(), e.to_string()));
                continue;
            }
            if let Some(gray) = &item.gray {
                // The mark the config will have: the item's, or the one it keeps.
                let marked = item.sensitive || self.get(&key).is_some_and(|c| c.sensitive);
                let checked = self.check_gray_item(&key, gray, item.format, marked);
                if let Err(why) = checked.await {
                    problems.push((key.to_string(), format!("gray release: {why}")));
                    continue;
                }
                grays.push((key.clone(), gray.clone()));
            }
            let current = self.get(&key);
            if let Some(c) = &current {
                let same = c.content == item.content
                    && item.format.is_none_or(|f| f == c.format)
                    && c.description == item.description
                    && c.tags == tags
                    && (c.sensitive || !item.sensitive);
                if same {
                    report.unchanged.push(key);
                    continue;
                }
                match policy.conflict {
                    Conflict::Abort => {
                        problems.push((key.to_string(), "exists (policy abort)".to_owned()));
                        continue;
                    }
                    Conflict::Skip => {
                        report.skipped.push(key);
                        continue;
                    }
                    Conflict::Overwrite => {}
                }
            }
            let default_format = Format::from_file_name(key.data_id.as_str()).unwrap_or_default();
            let format = item
                .format
                .or(current.as_ref().map(|c| c.format))
                .unwrap_or(default_format);
            let marked = item.sensitive || current.as_ref().is_some_and(|c| c.sensitive);
            let checked = match validated(item.content, format, false).await {
                Ok(content) => self.schema_checked(&key, format, content, marked).await,
                Err(e) => Err(e),
            };
            let content = match checked {
                Ok(content) => content,
                Err(e) => {
                    problems.push((key.to_string(), e.to_string()));
                    continue;
                }
            };
            if current.is_none() {
                match self.past_versions(&key, item.history) {
                    Ok(versions) => past.extend(versions),
                    Err(why) => {
                        problems.push((key.to_string(), why));
                        continue;
                    }
                }
            }
            growth.new_configs += u64::from(current.is_none());
            growth.bytes +=
                content.len() as i64 - current.as_ref().map_or(0, |c| c.content.len() as i64);
            growth.largest = growth.largest.max(content.len() as u64);
            writes.push(ConfigWrite {
                md5: md5_hex(&content),
                content,
                op: Op::Publish,
                format: item.format,
                default_format,
                validated_as: Some(format),
                description: Some(item.description),
                tags: Some(tags),
                // An import marks configs sensitive, never unmarks one.
                sensitive: item.sensitive.then_some(true),
                // What was checked above holds when the transaction writes, or the
                // whole import fails.
                expect: match &current {
                    Some(c) => Expect::Md5(c.md5.clone()),
                    None => Expect::Absent,
                },
                audit: Self::audit(actor, "import".to_owned()),
                key,
            });
        }
        if policy.skip_invalid {
            report.refused = std::mem::take(&mut problems);
            let refused: std::collections::HashSet<&str> =
                report.refused.iter().map(|(key, _)| key.as_str()).collect();
            grays.retain(|(key, _)| !refused.contains(key.to_string().as_str()));
            past.retain(|v: &PastVersion| !refused.contains(v.key.to_string().as_str()));
        }
        // Skipped configs keep their own gray release, if any.
        grays.retain(|(key, _)| !report.skipped.contains(key));
        if !problems.is_empty() {
            let count = problems.len();
            let problems: Vec<String> = problems
                .into_iter()
                .take(PROBLEMS_LISTED)
                .map(|(key, why)| format!("{key}: {why}"))
                .collect();
            let more = count.saturating_sub(PROBLEMS_LISTED);
            let tail = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            return Err(ServiceError::InvalidArgument(format!(
                "nothing was imported; {count} problem(s): {}{tail}",
                problems.join("; ")
            )));
        }
        if writes.is_empty() {
            self.import_grays(grays, actor, &mut report).await?;
            return Ok(report);
        }
        // The import as a whole against the namespace's quotas: it lands whole or not.
        let used = self.commits.cache().usage(namespace);
        self.limits.check(namespace, used, growth)?;
        let (store, commits) = (self.store.clone(), self.commits.clone());
        report.history = past.len();
        let records = Self::detached(async move {
            let records = store.import(&writes, &past).await?;
            // Applied in the change log's order, which is what watchers resume from.
            let mut applied: Vec<&ConfigRecord> = records.iter().collect();
            applied.sort_by_key(|r| r.revision);
            for record in applied {
                commits.apply(Change::Config(Arc::new(record.clone())));
            }
            Ok(records)
        })
        .await?;
        report.bytes = records.iter().map(|r| r.content.len() as u64).sum();
        report.imported = records.into_iter().map(|r| r.key).collect();
        self.import_grays(grays, actor, &mut report).await?;
        tracing::info!(%namespace, imported = report.imported.len(), grays = report.grays, skipped = report.skipped.len(), unchanged = report.unchanged.len(), refused = report.refused.len(), by = %actor.caller.username, "configs imported");
        Ok(report)
    }

    /// An imported config's earlier versions as its history will hold them, or why they
    /// cannot be: each is bounded as a publish is, and is otherwise kept as it was
    /// written (a version that was valid then is history now, not checked again).
    fn past_versions(
        &self,
        key: &ConfigKey,
        history: Vec<crate::transfer::PastItem>,
    ) -> std::result::Result<Vec<PastVersion>, String> {
        history
            .into_iter()
            .map(|past| {
                let at = format!("history revision {}", past.revision);
                if past.content.len() > self.max_content_bytes {
                    return Err(format!(
                        "{at}: {} bytes, more than max_content_bytes ({})",
                        past.content.len(),
                        self.max_content_bytes
                    ));
                }
                let tags = check_tags(past.tags).map_err(|e| format!("{at}: {e}"))?;
                check_description(&past.description).map_err(|e| format!("{at}: {e}"))?;
                Ok(PastVersion {
                    key: key.clone(),
                    op: past.op,
                    content: past.content,
                    format: past.format,
                    md5: past.md5,
                    description: past.description,
                    tags,
                    sensitive: past.sensitive,
                    audit: Audit {
                        operator: past.operator,
                        source: past.source,
                        comment: past.comment,
                        at: past.created_at,
                        surface: "import".to_owned(),
                        emergency: false,
                    },
                })
            })
            .collect()
    }

    /// Whether an imported gray release could be started: rules and content checked as
    /// a gray publish checks them.
    async fn check_gray_item(
        &self,
        key: &ConfigKey,
        gray: &crate::transfer::GrayItem,
        config_format: Option<Format>,
        marked: bool,
    ) -> std::result::Result<(), String> {
        GrayRules::parse(&gray.ips, &gray.labels).map_err(|e| e.to_string())?;
        if gray.content.len() > self.max_content_bytes {
            return Err(format!(
                "{} bytes, more than max_content_bytes ({})",
                gray.content.len(),
                self.max_content_bytes
            ));
        }
        let format = match &gray.format {
            Some(text) => text.parse::<Format>().map_err(|e| e.to_string())?,
            None => config_format
                .or(self.get(key).map(|c| c.format))
                .or(Format::from_file_name(key.data_id.as_str()))
                .unwrap_or_default(),
        };
        let content = validated(gray.content.clone(), format, false)
            .await
            .map_err(|e| e.to_string())?;
        self.schema_checked(key, format, content, marked)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Starts the gray releases an import carries, each where the config's current one
    /// differs (one gray publish each, after the configs' transaction).
    async fn import_grays(
        &self,
        grays: Vec<(ConfigKey, crate::transfer::GrayItem)>,
        actor: &Actor,
        report: &mut ImportReport,
    ) -> Result<()> {
        for (key, gray) in grays {
            let rules =
                GrayRules::parse(&gray.ips, &gray.labels).map_err(ServiceError::InvalidGray)?;
            let format = gray
                .format
                .as_deref()
                .map(str::parse::<Format>)
                .transpose()
                .ok()
                .flatten();
            let same = self.commits.cache().gray(&key).is_some_and(|current| {
                current.content == gray.content
                    && current.rules == rules
                    && format.is_none_or(|f| f == current.format)
            });
            if same {
                continue;
            }
            let input = GrayInput {
                content: gray.content,
                format,
                ips: gray.ips,
                labels: gray.labels,
                // Checked with the rest of the import.
                force: true,
                comment: Some("import".to_owned()),
            };
            self.gray_publish(key, input, actor).await?;
            report.grays += 1;
        }
        Ok(())
    }

    /// Every config matching `filter` that `caller` may read, in key order.
    fn select(&self, caller: &Caller, filter: &ListFilter) -> Vec<Arc<ConfigRecord>> {
        let reader = self.reader(caller);
        self.commits.cache().select(|c| {
            reader.may_read_content(c)
                && filter
                    .namespace
                    .as_ref()
                    .is_none_or(|ns| &c.key.namespace == ns)
                && filter
                    .group
                    .as_ref()
                    .is_none_or(|p| p.matches(c.key.group.as_str()))
                && filter
                    .data_id
                    .as_ref()
                    .is_none_or(|p| p.matches(c.key.data_id.as_str()))
                && filter
                    .tag
                    .as_ref()
                    .is_none_or(|t| c.tags.iter().any(|x| x == t))
                && filter.format.is_none_or(|f| c.format == f)
                && filter
                    .content
                    .as_ref()
                    .is_none_or(|s| c.content.contains(s.as_str()))
        })
    }

    pub async fn history(&self, key: &ConfigKey, page: Page) -> Result<(Vec<HistoryRecord>, u64)> {
        Ok(self.store.history(key, page).await?)
    }

    /// The newest history entry before `revision`, with its content.
    pub async fn history_before(
        &self,
        caller: &Caller,
        key: &ConfigKey,
        revision: Revision,
    ) -> Result<Option<HistoryRecord>> {
        let entry = self.store.history_before(key, revision).await?;
        if let Some(entry) = &entry {
            self.may_read_entry(caller, entry)?;
        }
        Ok(entry)
    }

    /// Refuses an entry written while its config was sensitive to a caller without
    /// `read-secret` on the config, whatever the config is now (unmarked, deleted).
    fn may_read_entry(&self, caller: &Caller, entry: &HistoryRecord) -> Result<()> {
        if entry.sensitive {
            self.auth
                .access()
                .require(caller, &entry.key, Level::ReadSecret)?;
        }
        Ok(())
    }

    /// One history entry, with its content, for `caller` (who may read the config).
    pub async fn history_entry(
        &self,
        caller: &Caller,
        key: &ConfigKey,
        revision: Revision,
    ) -> Result<HistoryRecord> {
        let entry = self.entry(key, revision).await?;
        self.may_read_entry(caller, &entry)?;
        Ok(entry)
    }

    async fn entry(&self, key: &ConfigKey, revision: Revision) -> Result<HistoryRecord> {
        self.store
            .history_entry(key, revision)
            .await?
            .ok_or_else(|| {
                let limits = self.limits.effective(&key.namespace);
                let mut kept = Vec::new();
                if limits.history_max_revisions > 0 {
                    kept.push(format!(
                        "the last {} revisions",
                        limits.history_max_revisions
                    ));
                }
                if limits.history_max_days > 0 {
                    kept.push(format!("{} days", limits.history_max_days));
                }
                ServiceError::RevisionNotFound {
                    key: key.clone(),
                    revision,
                    retention: (!kept.is_empty()).then(|| kept.join(" and at most ")),
                }
            })
    }

    /// Publishes the content of an earlier revision again, as a new revision.
    pub async fn rollback(
        &self,
        key: ConfigKey,
        revision: Revision,
        expect: Expect,
        actor: &Actor,
    ) -> Result<Arc<ConfigRecord>> {
        self.rollback_with(key, revision, expect, actor, None).await
    }

    /// A rollback; with `emergency`, an admin's emergency change (the reason kept as
    /// its comment) where the namespace requires review.
    pub async fn rollback_with(
        &self,
        key: ConfigKey,
        revision: Revision,
        expect: Expect,
        actor: &Actor,
        emergency: Option<String>,
    ) -> Result<Arc<ConfigRecord>> {
        let input = self.rollback_input(&key, revision, expect, actor).await?;
        let input = match emergency {
            // Without a reason there is no comment, and the gate refuses it.
            Some(reason) => PublishInput {
                emergency: true,
                comment: (!reason.trim().is_empty())
                    .then(|| format!("rollback to revision {revision}: {reason}")),
                ..input
            },
            None => input,
        };
        self.write(key, input, Op::Rollback, actor, Route::Direct)
            .await
    }

    /// What rolling `key` back to `revision` would publish.
    async fn rollback_input(
        &self,
        key: &ConfigKey,
        revision: Revision,
        expect: Expect,
        actor: &Actor,
    ) -> Result<PublishInput> {
        self.may_write(actor, key, Op::Rollback)?;
        let entry = self.entry(key, revision).await?;
        if matches!(entry.op, Op::Delete | Op::GrayAbandon | Op::GrayPublish) {
            return Err(ServiceError::RevisionIsDeletion(revision));
        }
        Ok(PublishInput {
            content: entry.content,
            format: Some(entry.format),
            description: Some(entry.description),
            tags: Some(entry.tags),
            // Content that was sensitive stays so; a rollback never unmarks.
            sensitive: entry.sensitive.then_some(true),
            expect,
            // It was accepted once; a later tightening of a parser must not block undoing.
            force: true,
            comment: Some(format!("rollback to revision {revision}")),
            emergency: false,
        })
    }

    /// A unified diff from revision `from` to revision `to` (or the current content).
    pub async fn diff(
        &self,
        caller: &Caller,
        key: &ConfigKey,
        from: Revision,
        to: Option<Revision>,
    ) -> Result<String> {
        let old = self.history_entry(caller, key, from).await?;
        let (new_content, new_label) = match to {
            Some(to) => (
                self.history_entry(caller, key, to).await?.content,
                format!("{key}@{to}"),
            ),
            None => {
                let current = self
                    .get(key)
                    .ok_or_else(|| ServiceError::ConfigNotFound(key.clone()))?;
                (
                    current.content.clone(),
                    format!("{key}@{}", current.revision),
                )
            }
        };
        let old_label = format!("{key}@{from}");
        // Diffing two large contents is CPU work; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            cairn_core::diff::unified(&old.content, &new_content, &old_label, &new_label)
        })
        .await
        .map_err(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// The namespaces `caller` may read something in, with their config counts.
    pub async fn namespaces(&self, caller: &Caller) -> Result<Vec<NamespaceInfo>> {
        let reader = self.reader(caller);
        let mut all = self.all_namespaces().await?;
        all.retain(|n| reader.sees_namespace(&n.record.name));
        Ok(all)
    }

    async fn all_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let records = self.store.list_namespaces().await?;
        // What was just read is as new as anything a heartbeat would bring.
        self.limits.refresh(&records);
        let cache = self.commits.cache();
        Ok(records
            .into_iter()
            .map(|record| {
                let usage = cache.usage(&record.name);
                NamespaceInfo {
                    config_count: usage.configs as usize,
                    usage,
                    limits: self.limits.effective(&record.name),
                    record,
                }
            })
            .collect())
    }

    pub async fn namespace(&self, name: &Namespace) -> Result<NamespaceInfo> {
        self.all_namespaces()
            .await?
            .into_iter()
            .find(|n| &n.record.name == name)
            .ok_or_else(|| ServiceError::NamespaceNotFound(name.to_string()))
    }

    pub async fn create_namespace(
        &self,
        name: Namespace,
        display_name: String,
        description: String,
    ) -> Result<NamespaceRecord> {
        check_description(&display_name)?;
        check_description(&description)?;
        let record = NamespaceRecord {
            name,
            display_name,
            description,
            created_at: now_millis(),
            apollo_anonymous: Vec::new(),
            limits: Default::default(),
            require_review: false,
        };
        self.store.create_namespace(&record).await?;
        Ok(record)
    }

    /// Changes a namespace's settings; `None` keeps the current value.
    pub async fn update_namespace(&self, name: &Namespace, update: NamespaceUpdate) -> Result<()> {
        for text in [&update.display_name, &update.description]
            .into_iter()
            .flatten()
        {
            check_description(text)?;
        }
        if let Some(apps) = &update.apollo_anonymous {
            check_app_patterns(apps)?;
        }
        self.store.update_namespace(name, &update).await?;
        self.refresh_limits().await
    }

    pub async fn delete_namespace(&self, name: &Namespace) -> Result<()> {
        if name.is_public() {
            return Err(ServiceError::PublicNamespace);
        }
        Ok(self.store.delete_namespace(name).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cairn_core::ClientInfo;
    use cairn_store::{SqlStore, Subject};

    use super::*;
    use crate::cache::{rev, Cache};

    const MAX: usize = 64;
    const HERE: Origin = Origin {
        source: None,
        surface: "native",
    };

    /// A service over a real SQLite store in a fresh directory.
    async fn service() -> (Service, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::sqlite(&dir.path().join("c.db")).await.unwrap());
        let commits = Arc::new(Commits::new(Cache::default(), 0, vec![]));
        let auth = Arc::new(Auth::new(store.clone(), &[7; 32], 60).await.unwrap());
        let limits = Arc::new(crate::limits::Limits::new(
            crate::limits::Defaults::default(),
            MAX,
        ));
        (
            Service::new(store, commits, MAX, auth, limits, Arc::default(), false),
            dir,
        )
    }

    fn ann() -> Caller {
        Caller {
            username: cairn_core::Username::parse("ann").unwrap(),
            role: crate::auth::Role::Admin,
        }
    }

    fn key(data_id: &str) -> ConfigKey {
        ConfigKey::parse("public", "g", data_id).unwrap()
    }

    fn actor() -> Actor {
        Actor {
            caller: ann(),
            source: "test".into(),
            surface: "native",
        }
    }

    fn text(content: &str, expect: Expect) -> PublishInput {
        PublishInput {
            content: content.into(),
            expect,
            ..PublishInput::default()
        }
    }

    #[tokio::test]
    async fn compare_and_set_holds_for_every_expectation() {
        let (service, _dir) = service().await;
        let k = key("cas");
        let md5 = |s: &str| md5_hex(s);
        service
            .publish(k.clone(), text("v1", Expect::Absent), &actor())
            .await
            .unwrap();
        let again = service
            .publish(k.clone(), text("v2", Expect::Absent), &actor())
            .await;
        assert!(
            matches!(again, Err(ServiceError::CasConflict { .. })),
            "{again:?}"
        );
        let stale = text("v2", Expect::Md5(md5("v0")));
        let stale = service.publish(k.clone(), stale, &actor()).await;
        assert!(matches!(stale, Err(ServiceError::CasConflict { .. })));
        let either = text("v2", Expect::Md5OrAbsent(md5("v1")));
        service.publish(k.clone(), either, &actor()).await.unwrap();
        // Nacos's expectation creates when nothing is there.
        let new = text("n1", Expect::Md5OrAbsent(md5("whatever")));
        service.publish(key("new"), new, &actor()).await.unwrap();
        assert_eq!(service.get(&k).unwrap().content, "v2");
        // A delete must name the content it deletes, if anything.
        let refused = service.delete(k.clone(), Expect::Absent, &actor()).await;
        assert!(matches!(refused, Err(ServiceError::InvalidArgument(_))));
        let stale = service
            .delete(k.clone(), Expect::Md5(md5("v1")), &actor())
            .await;
        assert!(matches!(stale, Err(ServiceError::CasConflict { .. })));
        service
            .delete(k.clone(), Expect::Md5(md5("v2")), &actor())
            .await
            .unwrap();
        assert!(service.get(&k).is_none());
    }

    #[tokio::test]
    async fn limits_are_refused_before_anything_is_written() {
        let (service, _dir) = service().await;
        let big = text(&"x".repeat(MAX + 1), Expect::Any);
        let too_big = service.publish(key("big"), big, &actor()).await;
        assert!(matches!(
            too_big,
            Err(ServiceError::ContentTooLarge { size: 65, max: MAX })
        ));
        let tags = PublishInput {
            tags: Some((0..=MAX_TAGS).map(|i| format!("t{i}")).collect()),
            ..text("a", Expect::Any)
        };
        let many = service.publish(key("tags"), tags, &actor()).await;
        assert!(matches!(many, Err(ServiceError::InvalidArgument(m)) if m.contains("33 tags")));
        let description = PublishInput {
            description: Some("d".repeat(MAX_DESCRIPTION + 1)),
            ..text("a", Expect::Any)
        };
        let long = service.publish(key("desc"), description, &actor()).await;
        assert!(matches!(long, Err(ServiceError::InvalidArgument(_))));
        let yaml = PublishInput {
            format: Some(Format::Yaml),
            ..text("a: [", Expect::Any)
        };
        let invalid = service.publish(key("bad.yaml"), yaml, &actor()).await;
        assert!(matches!(invalid, Err(ServiceError::InvalidContent(_))));
        let (listed, total) = service.list(
            &ann(),
            &ListFilter::default(),
            Page {
                number: 1,
                size: 10,
            },
        );
        assert_eq!((listed.len(), total), (0, 0), "nothing was written");
    }

    #[tokio::test]
    async fn a_namespace_is_made_on_publish_only_when_the_caller_may() {
        let (service, _dir) = service().await;
        let k = ConfigKey::parse("team-a", "g", "d").unwrap();
        let refused = service
            .publish_creating_namespace(k.clone(), text("a", Expect::Any), &actor(), false)
            .await;
        assert!(matches!(refused, Err(ServiceError::NamespaceNotFound(_))));
        service
            .publish_creating_namespace(k.clone(), text("a", Expect::Any), &actor(), true)
            .await
            .unwrap();
        let made = service.namespace(&k.namespace).await.unwrap();
        assert_eq!(made.config_count, 1);
        // Once it exists, publishing there needs no right to make namespaces.
        service
            .publish_creating_namespace(k, text("b", Expect::Any), &actor(), false)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn rollbacks_republish_contents_and_refuse_deletions() {
        let (service, _dir) = service().await;
        let k = key("r");
        let first = service
            .publish(k.clone(), text("one", Expect::Any), &actor())
            .await
            .unwrap();
        service
            .publish(k.clone(), text("two", Expect::Any), &actor())
            .await
            .unwrap();
        let deleted = service
            .delete(k.clone(), Expect::Any, &actor())
            .await
            .unwrap();
        let refused = service
            .rollback(k.clone(), deleted, Expect::Any, &actor())
            .await;
        assert!(matches!(refused, Err(ServiceError::RevisionIsDeletion(r)) if r == deleted));
        let back = service
            .rollback(k.clone(), first.revision, Expect::Absent, &actor())
            .await
            .unwrap();
        assert_eq!(back.content, "one");
        assert!(back.revision > deleted, "a rollback is a new revision");
        let missing = service.rollback(k, rev(999), Expect::Any, &actor()).await;
        assert!(matches!(
            missing,
            Err(ServiceError::RevisionNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_write_wakes_the_watchers_of_its_key_only() {
        let (service, _dir) = service().await;
        let client = ClientInfo::default();
        let held = [(key("w"), String::new())];
        let other = [(key("other"), String::new())];
        let ann = ann();
        let (changed, quiet, ()) = tokio::join!(
            service.wait_for_changes(
                &ann,
                Protocol::Native,
                &held,
                &client,
                std::time::Duration::from_secs(10),
                HERE
            ),
            service.wait_for_changes(
                &ann,
                Protocol::Native,
                &other,
                &client,
                std::time::Duration::from_millis(300),
                HERE
            ),
            async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                service
                    .publish(key("w"), text("x", Expect::Any), &actor())
                    .await
                    .unwrap();
            },
        );
        let (changed, quiet) = (changed.unwrap(), quiet.unwrap());
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1.as_ref().unwrap().content(), "x");
        assert!(quiet.is_empty());
    }

    #[tokio::test]
    async fn every_write_and_watch_is_checked_against_the_callers_grants() {
        use cairn_core::grant::{Level, Scope};
        let (service, _dir) = service().await;
        let auth = service.auth.clone();
        let bob_name = cairn_core::Username::parse("bob").unwrap();
        auth.add_user(
            &bob_name,
            &crate::settings::Secret::from("bob-password".to_owned()),
            crate::auth::Role::User,
        )
        .await
        .unwrap();
        let bob = Caller {
            username: bob_name.clone(),
            role: crate::auth::Role::User,
        };
        let as_bob = Actor {
            caller: bob.clone(),
            source: "test".into(),
            surface: "native",
        };
        let k = key("app.yaml");
        service
            .publish(k.clone(), text("a: 1", Expect::Any), &actor())
            .await
            .unwrap();
        // No grant: nothing.
        let refused = service.publish(k.clone(), text("a: 2", Expect::Any), &as_bob);
        assert!(matches!(refused.await, Err(ServiceError::Denied(_))));
        assert!(service.may_read(&bob, &k, HERE).is_err());
        let held = [(k.clone(), String::new())];
        let watch = service
            .wait_for_changes(
                &bob,
                Protocol::Native,
                &held,
                &ClientInfo::default(),
                Duration::ZERO,
                HERE,
            )
            .await;
        assert!(
            matches!(watch, Err(ServiceError::Denied(_))),
            "a watch is refused, not empty"
        );
        // Read: reads, lists and watches, but every kind of write is refused.
        auth.grant(
            &actor(),
            Subject::User(bob_name.clone()),
            Scope::namespace("public").unwrap(),
            Level::Read,
        )
        .await
        .unwrap();
        service.may_read(&bob, &k, HERE).unwrap();
        let page = Page {
            number: 1,
            size: 10,
        };
        assert_eq!(service.list(&bob, &ListFilter::default(), page).1, 1);
        let refused = service.delete(k.clone(), Expect::Any, &as_bob).await;
        assert!(
            matches!(refused, Err(ServiceError::Denied(_))),
            "{refused:?}"
        );
        let gray = GrayInput {
            content: "a: 3".into(),
            ips: vec!["10.0.0.1".into()],
            ..GrayInput::default()
        };
        let refused = service.gray_publish(k.clone(), gray, &as_bob).await;
        assert!(matches!(refused, Err(ServiceError::Denied(_))));
        let refused = service.rollback(k.clone(), Revision::new(1).unwrap(), Expect::Any, &as_bob);
        assert!(matches!(refused.await, Err(ServiceError::Denied(_))));
        // A narrower rule takes a group away again.
        auth.grant(
            &actor(),
            Subject::User(bob_name.clone()),
            Scope::parse("public", "g", "*").unwrap(),
            Level::None,
        )
        .await
        .unwrap();
        assert!(service.may_read(&bob, &k, HERE).is_err());
        assert_eq!(service.list(&bob, &ListFilter::default(), page).1, 0);
        // Write on the group: publishes.
        auth.grant(
            &actor(),
            Subject::User(bob_name),
            Scope::parse("public", "g", "*").unwrap(),
            Level::Write,
        )
        .await
        .unwrap();
        service
            .publish(k, text("a: 4", Expect::Any), &as_bob)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_held_watch_ends_when_its_user_loses_the_right_to_read() {
        use cairn_core::grant::{Level, Scope};
        let (service, _dir) = service().await;
        let auth = service.auth.clone();
        let name = cairn_core::Username::parse("carl").unwrap();
        auth.add_user(
            &name,
            &crate::settings::Secret::from("carl-password".to_owned()),
            crate::auth::Role::User,
        )
        .await
        .unwrap();
        let scope = Scope::namespace("public").unwrap();
        auth.grant(
            &actor(),
            Subject::User(name.clone()),
            scope.clone(),
            Level::Read,
        )
        .await
        .unwrap();
        let carl = Caller {
            username: name.clone(),
            role: crate::auth::Role::User,
        };
        let held = [(key("w"), String::new())];
        let started = std::time::Instant::now();
        let client = ClientInfo::default();
        let (answer, ()) = tokio::join!(
            service.wait_for_changes(
                &carl,
                Protocol::Native,
                &held,
                &client,
                Duration::from_secs(20),
                HERE
            ),
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert_eq!(service.listener_count(), 1);
                auth.revoke(&actor(), &Subject::User(name.clone()), &scope)
                    .await
                    .unwrap();
            },
        );
        assert!(answer.unwrap().is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "answered when the grant went, not at the timeout"
        );
        assert_eq!(service.listener_count(), 0);
    }
}
