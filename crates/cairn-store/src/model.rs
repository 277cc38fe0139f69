//! Records exchanged with storage. Keys and formats arrive already validated (core
//! types); everything else is plain data.

use cairn_core::grant::{Level, Scope};
use cairn_core::{ConfigKey, Format, GrayRules, Namespace, Revision, RoleName, Username};

/// A namespace as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    pub name: Namespace,
    /// A name for people (Nacos's `namespaceShowName`); empty: the name itself.
    pub display_name: String,
    pub description: String,
    pub created_at: i64,
    /// Apps (Apollo app ids, Cairn groups; `*` patterns) whose unsigned Apollo reads
    /// this namespace serves. Empty: none, every Apollo read must be signed.
    pub apollo_anonymous: Vec<String>,
    /// Its own quotas and history retention.
    pub limits: NamespaceLimits,
    /// Whether a person's change must be reviewed by another before it is released.
    pub require_review: bool,
}

/// Bounds a namespace sets for itself. `None` follows the node's default; `Some(0)` is
/// unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceLimits {
    /// Most configs it may hold.
    pub max_configs: Option<u64>,
    /// Most bytes of content one config may have.
    pub max_config_bytes: Option<u64>,
    /// Most bytes of content all its configs together may have.
    pub max_total_bytes: Option<u64>,
    /// History revisions kept per config (the newest is always kept).
    pub history_max_revisions: Option<u64>,
    /// Days of history kept per config (the newest revision is always kept).
    pub history_max_days: Option<u64>,
}

/// A change of a namespace's settings: `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct NamespaceUpdate {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub apollo_anonymous: Option<Vec<String>>,
    pub limits: LimitsUpdate,
    pub require_review: Option<bool>,
}

/// A change of a namespace's limits: `None` keeps one, `Some(None)` makes it follow the
/// node's default again, `Some(Some(n))` sets it (`0`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    pub max_configs: Option<Option<u64>>,
    pub max_config_bytes: Option<Option<u64>>,
    pub max_total_bytes: Option<Option<u64>>,
    pub history_max_revisions: Option<Option<u64>>,
    pub history_max_days: Option<Option<u64>>,
}

impl LimitsUpdate {
    /// Each column with its change, in the order the store writes them.
    pub fn columns(&self) -> [(&'static str, Option<Option<u64>>); 5] {
        [
            ("max_configs", self.max_configs),
            ("max_config_bytes", self.max_config_bytes),
            ("max_total_bytes", self.max_total_bytes),
            ("history_max_revisions", self.history_max_revisions),
            ("history_max_days", self.history_max_days),
        ]
    }
}

/// What a change did to a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Publish,
    Rollback,
    Delete,
    /// A gray release was created or replaced.
    GrayPublish,
    /// The gray content became the main content.
    GrayPromote,
    /// The gray release was dropped.
    GrayAbandon,
}

impl Op {
    /// The action the audit log records for a change of this kind.
    pub fn audit_action(self) -> &'static str {
        match self {
            Op::Publish => "config.publish",
            Op::Rollback => "config.rollback",
            Op::Delete => "config.delete",
            Op::GrayPublish => "gray.publish",
            Op::GrayPromote => "gray.promote",
            Op::GrayAbandon => "gray.abandon",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Rollback => "rollback",
            Op::Delete => "delete",
            Op::GrayPublish => "gray_publish",
            Op::GrayPromote => "gray_promote",
            Op::GrayAbandon => "gray_abandon",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "publish" => Some(Op::Publish),
            "rollback" => Some(Op::Rollback),
            "delete" => Some(Op::Delete),
            "gray_publish" => Some(Op::GrayPublish),
            "gray_promote" => Some(Op::GrayPromote),
            "gray_abandon" => Some(Op::GrayAbandon),
            _ => None,
        }
    }
}

/// The current state of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub key: ConfigKey,
    pub content: String,
    pub format: Format,
    pub md5: String,
    /// The change-log sequence of the change that produced this content.
    pub revision: Revision,
    pub description: String,
    pub tags: Vec<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: String,
    pub updated_at: i64,
    /// Its content is shown only to callers with `read-secret`.
    pub sensitive: bool,
}

/// What the caller requires of the current state for a write to proceed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    #[default]
    Any,
    /// The config must not exist yet.
    Absent,
    /// The config must exist with this md5.
    Md5(String),
    /// The config must have this md5, or not exist yet (Nacos's `casMd5`).
    Md5OrAbsent(String),
}

impl Expect {
    /// Whether a config whose current md5 is `current` (`None`: absent) meets this.
    pub fn allows(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (Expect::Any, _) | (Expect::Absent | Expect::Md5OrAbsent(_), None) => true,
            (Expect::Md5(want) | Expect::Md5OrAbsent(want), Some(current)) => want == current,
            (Expect::Absent, Some(_)) | (Expect::Md5(_), None) => false,
        }
    }

    /// The md5 this expects, if any.
    pub fn md5(&self) -> Option<&str> {
        match self {
            Expect::Md5(md5) | Expect::Md5OrAbsent(md5) => Some(md5),
            Expect::Any | Expect::Absent => None,
        }
    }
}

/// Who made a change and from where, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub operator: String,
    pub source: String,
    pub comment: String,
    pub at: i64,
    /// The surface the change came through (`native`, `nacos`, `console`, …), for the
    /// audit log.
    pub surface: String,
    /// An admin's emergency change, released without the review its namespace
    /// requires: flagged in history and the audit log (the comment is the reason).
    pub emergency: bool,
}

/// A publish or rollback.
#[derive(Debug, Clone)]
pub struct ConfigWrite {
    pub key: ConfigKey,
    pub op: Op,
    pub content: String,
    pub md5: String,
    /// `None` keeps the stored format, or takes `default_format` for a new config. The
    /// stored value is read inside the write transaction, so a lagging cache cannot
    /// undo another node's change.
    pub format: Option<Format>,
    pub default_format: Format,
    /// The format the content was validated as (`None`: stored unvalidated, forced).
    /// The write is refused if the format it resolves to is another one.
    pub validated_as: Option<Format>,
    /// `None` keeps the stored value (empty for a new config).
    pub description: Option<String>,
    /// `None` keeps the stored value (none for a new config).
    pub tags: Option<Vec<String>>,
    /// `None` keeps the stored value (not sensitive for a new config).
    pub sensitive: Option<bool>,
    pub expect: Expect,
    pub audit: Audit,
}

/// A version a config had in another installation, brought in by an import of
/// Cairn's format with history: written as a history entry of the config the import
/// creates, older than the import's own entry. It never enters the change log, so no
/// node applies it as a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastVersion {
    pub key: ConfigKey,
    pub op: Op,
    /// Empty for a deletion.
    pub content: String,
    pub format: Format,
    pub md5: String,
    pub description: String,
    pub tags: Vec<String>,
    pub sensitive: bool,
    /// Who wrote it, from where, why and when (its original time).
    pub audit: Audit,
}

/// A deletion.
#[derive(Debug, Clone)]
pub struct ConfigDelete {
    pub key: ConfigKey,
    pub expect: Expect,
    pub audit: Audit,
}

/// One immutable version of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    pub revision: Revision,
    pub key: ConfigKey,
    pub op: Op,
    /// Empty for a deletion.
    pub content: String,
    pub format: Format,
    pub md5: String,
    pub description: String,
    pub tags: Vec<String>,
    pub operator: String,
    pub source: String,
    pub comment: String,
    pub created_at: i64,
    /// Whether its config was sensitive when it was written: its content is shown only
    /// to callers with `read-secret`, whatever the config is now.
    pub sensitive: bool,
    /// The surface the change came through (`native`, `nacos`, `console`, …; empty
    /// for entries written before it was kept).
    pub surface: String,
    /// Released by an admin without the review its namespace requires.
    pub emergency: bool,
}

/// One change-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The entry's place in the log: the revision its change wrote.
    pub seq: Revision,
    pub key: ConfigKey,
    pub op: Op,
    pub md5: String,
    pub created_at: i64,
}

/// A console session. The browser holds the session id; only its digest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub username: Username,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A user account. Only the argon2 hash of the password is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: Username,
    pub password_hash: String,
    pub role: cairn_core::Role,
    pub created_at: i64,
    pub password_changed_at: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A page request: 1-based page number and page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Page {
    pub fn offset(self) -> u64 {
        u64::from(self.number.saturating_sub(1)) * u64::from(self.size)
    }
}

pub(crate) fn join_tags(tags: &[String]) -> String {
    tags.join(",")
}

pub(crate) fn split_tags(tags: &str) -> Vec<String> {
    if tags.is_empty() {
        Vec::new()
    } else {
        tags.split(',').map(str::to_owned).collect()
    }
}

/// A node of a cluster as registered in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Unique per process start.
    pub id: String,
    /// The URL clients reach this node at.
    pub address: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// The last change-log sequence this node has applied.
    pub applied_seq: i64,
    /// The Cairn version it runs; empty for a node from before versions were recorded.
    pub version: String,
}

/// A config's gray release: content served instead of the main content to the clients
/// its rules match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayRecord {
    pub key: ConfigKey,
    pub content: String,
    pub format: Format,
    pub md5: String,
    /// The change-log sequence of the gray publish.
    pub revision: Revision,
    pub rules: GrayRules,
    pub created_by: String,
    pub created_at: i64,
}

/// Creating or replacing a gray release. The config must exist.
#[derive(Debug, Clone)]
pub struct GrayWrite {
    pub key: ConfigKey,
    pub content: String,
    pub md5: String,
    /// `None`: the main content's format.
    pub format: Option<Format>,
    /// The format the content was validated as (`None`: forced); refused if the write
    /// resolves to another.
    pub validated_as: Option<Format>,
    pub rules: GrayRules,
    pub audit: Audit,
}

/// An access key of an Apollo app: an HMAC secret its clients sign requests with.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub app_id: String,
    pub id: String,
    pub secret: String,
    pub enabled: bool,
    pub created_at: i64,
    /// The namespaces (Apollo envs) the key signs for; empty: every namespace.
    pub namespaces: Vec<String>,
}

impl std::fmt::Debug for AccessKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRecord")
            .field("app_id", &self.app_id)
            .field("id", &self.id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Who a grant is given to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    User(Username),
    /// Every member of the role.
    Role(RoleName),
}

impl Subject {
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::User(_) => "user",
            Subject::Role(_) => "role",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Subject::User(u) => u.as_str(),
            Subject::Role(r) => r.as_str(),
        }
    }
}

/// A grant as stored: a subject's level over a scope of configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub subject: Subject,
    pub scope: Scope,
    pub level: Level,
    pub created_at: i64,
    pub created_by: String,
}

/// A user's membership of a named role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMember {
    pub role: RoleName,
    pub username: Username,
    pub created_at: i64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    /// Its place in the log (0 in a record to append).
    pub id: i64,
    pub at: i64,
    /// The user (or `-` when nobody was identified).
    pub actor: String,
    /// The client's address.
    pub source: String,
    /// `native`, `nacos`, `nacos-grpc`, `apollo`, `console`.
    pub surface: String,
    /// What was done: `config.publish`, `user.create`, `login`, …
    pub action: String,
    /// The namespace acted in; empty when none.
    pub namespace: String,
    /// What was acted on: a config key, a user, a grant, …
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub result: String,
    /// For configs: the main content's md5 before the change.
    pub md5_before: Option<String>,
    /// For configs: the md5 of what the change published.
    pub md5_after: Option<String>,
    /// Anything else worth knowing (a comment, why it was refused).
    pub detail: String,
}

/// Which audit entries to read; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// From this time (Unix ms), inclusive.
    pub from: Option<i64>,
    /// Before this time (Unix ms).
    pub to: Option<i64>,
    pub actor: Option<String>,
    pub namespace: Option<String>,
    /// An action, or a family of them: `config` matches `config.publish` and the rest.
    pub action: Option<String>,
    pub result: Option<String>,
}

/// A service token as stored: its name, a digest of the token (never the token), and
/// what it may do: a level over each namespace (or namespace pattern) it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub digest: String,
    pub scopes: Vec<(String, Level)>,
    /// May publish into namespaces that require review, without review.
    pub publish_without_review: bool,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Where a schema is attached: a namespace, and a group and data id that may hold `*`
/// wildcards (both exact: one config).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaTarget {
    pub namespace: Namespace,
    pub group: String,
    pub data_id: String,
}

impl std::fmt::Display for SchemaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.group, self.data_id)
    }
}

/// An attached JSON Schema, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    pub target: SchemaTarget,
    /// The schema document, JSON text.
    pub body: String,
    /// 1 for the first attachment, one more for each change since.
    pub version: u64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: String,
    pub updated_at: i64,
}

/// An attachment or a change of a schema.
#[derive(Debug, Clone)]
pub struct SchemaWrite {
    pub target: SchemaTarget,
    pub body: String,
    /// The version the writer saw (0: none attached); `None` replaces whatever is there.
    pub expect_version: Option<u64>,
    pub audit: Audit,
}

/// One version of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    pub target: SchemaTarget,
    pub version: u64,
    /// `set` or `remove`.
    pub op: String,
    /// Empty for a removal.
    pub body: String,
    pub operator: String,
    pub comment: String,
    pub created_at: i64,
}

/// A webhook subscription: events of a namespace (optionally of matching groups and
/// data ids, and of some kinds only) sent to a URL, signed with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: i64,
    pub namespace: Namespace,
    pub url: String,
    /// The signing secret, opened (never shown back to anyone).
    pub secret: String,
    /// The event kinds sent; empty: every kind.
    pub events: Vec<String>,
    /// A group wildcard; empty: any.
    pub group: String,
    /// A data-id wildcard; empty: any.
    pub data_id: String,
    /// Only changes after this change-log sequence: those made once it existed.
    pub after_seq: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// A webhook to add.
#[derive(Debug, Clone)]
pub struct WebhookWrite {
    pub namespace: Namespace,
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    pub group: String,
    pub data_id: String,
    pub audit: Audit,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet: due at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Retried for the whole retry window without a 2xx.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event for one webhook, and how its sending went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub webhook_id: i64,
    /// The change's sequence: the event's identity (receivers dedupe by it).
    pub seq: i64,
    /// The change's op (`publish`, `delete`, …).
    pub event: String,
    pub key: ConfigKey,
    /// The md5 the change wrote (empty for a deletion).
    pub md5: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// The last attempt's HTTP status, if the receiver answered.
    pub response_code: Option<u16>,
    /// Why the last attempt failed.
    pub error: String,
    pub latency_ms: Option<i64>,
    /// When the delivery was made (the change's time) or last redelivered: its retry
    /// window starts here.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delivery to create from a change-log entry.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub webhook_id: i64,
    pub seq: i64,
    pub event: Op,
    pub key: ConfigKey,
    pub md5: String,
    pub at: i64,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub response_code: Option<u16>,
    pub error: String,
    pub latency_ms: i64,
    /// `Pending` with `next_attempt_at` to try again, or final.
    pub status: DeliveryStatus,
    pub next_attempt_at: i64,
    pub at: i64,
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewStatus {
    /// Waiting for a reviewer.
    Open,
    /// Approved and released.
    Approved,
    /// Refused by a reviewer (or withdrawn by its author).
    Rejected,
    /// The config moved after the request was made: it must be rebased onto the
    /// current content before it can be approved.
    Stale,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
            ReviewStatus::Stale => "stale",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(ReviewStatus::Open),
            "approved" => Some(ReviewStatus::Approved),
            "rejected" => Some(ReviewStatus::Rejected),
            "stale" => Some(ReviewStatus::Stale),
            _ => None,
        }
    }

    /// Whether nothing more can happen to a request in this state.
    pub fn is_final(self) -> bool {
        matches!(self, ReviewStatus::Approved | ReviewStatus::Rejected)
    }
}

/// A change proposed for review: what it would write, and what it was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequestRecord {
    pub id: i64,
    pub key: ConfigKey,
    /// `Publish` or `Delete`.
    pub op: Op,
    /// What a publish would store (empty for a deletion).
    pub content: String,
    pub md5: String,
    /// `None` keeps what the config has when it is released.
    pub format: Option<Format>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub sensitive: Option<bool>,
    /// The md5 of the content it was made against (empty: the config did not exist).
    pub base_md5: String,
    /// The revision it was made against (`None`: the config did not exist).
    pub base_revision: Option<Revision>,
    pub status: ReviewStatus,
    pub author: String,
    /// Why, as its author wrote it.
    pub comment: String,
    /// Who approved or rejected it (empty while open).
    pub reviewer: String,
    /// The revision its approval released.
    pub released: Option<Revision>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A change request to be made.
#[derive(Debug, Clone)]
pub struct NewChangeRequest {
    pub key: ConfigKey,
    pub op: Op,
    pub content: String,
    pub md5: String,
    pub format: Option<Format>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub sensitive: Option<bool>,
    pub base_md5: String,
    pub base_revision: Option<Revision>,
    /// The author, the comment and when.
    pub audit: Audit,
}

/// One step in a change request's life: opened, rebased, approved, rejected, stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewEventRecord {
    pub id: i64,
    pub request_id: i64,
    pub event: String,
    pub actor: String,
    pub comment: String,
    pub at: i64,
}

/// A move of a change request from one state to another, made only if it is still in
/// `from`.
#[derive(Debug, Clone)]
pub struct ReviewStep {
    pub id: i64,
    pub from: ReviewStatus,
    pub to: ReviewStatus,
    /// The event recorded: `approved`, `rejected`, `stale`, `rebased`.
    pub event: &'static str,
    /// The revision an approval released.
    pub released: Option<Revision>,
    /// A rebase: the new base (md5, revision) and, when given, new content and md5.
    pub rebase: Option<Rebase>,
    /// Who, why, when.
    pub audit: Audit,
    /// Subscriptions to be sent this step as an event (webhook ids).
    pub webhooks: Vec<i64>,
}

/// What a rebase changes in a change request.
#[derive(Debug, Clone)]
pub struct Rebase {
    pub base_md5: String,
    pub base_revision: Option<Revision>,
    /// New content and its md5; `None` keeps the proposed content.
    pub content: Option<(String, String)>,
}
