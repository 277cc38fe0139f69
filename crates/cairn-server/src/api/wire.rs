//! Request and response bodies of the native API. Converted by hand from domain types,
//! so the wire format changes only when this file does.

use cairn_core::Revision;
use cairn_store::{ConfigRecord, HistoryRecord, UserRecord};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::service::NamespaceInfo;

/// RFC 3339 text of a Unix time in milliseconds.
pub fn timestamp(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An error: a stable machine-readable `code` and a message for people.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub username: String,
    pub role: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct NamespaceView {
    pub name: String,
    /// A name for people; empty: the name itself.
    pub display_name: String,
    pub description: String,
    pub config_count: usize,
    pub created_at: String,
    /// Apps (`*` patterns) whose unsigned Apollo reads this namespace serves; empty:
    /// every Apollo read must be signed with an access key.
    pub apollo_anonymous_apps: Vec<String>,
    /// Its quotas in force and what it holds against them.
    pub quota: QuotaView,
    /// How much history is kept per config (0: all, for ever).
    pub history: RetentionView,
    /// Its own settings of quota and retention; `null`: it follows the node's default.
    pub limits: LimitsView,
    /// Whether a person's change is a change request, released once another person
    /// approves it.
    pub require_review: bool,
}

/// A namespace's quotas in force (0: unlimited) and its use.
#[derive(Serialize, ToSchema)]
pub struct QuotaView {
    pub max_configs: u64,
    pub max_config_bytes: u64,
    pub max_total_bytes: u64,
    /// Configs it holds.
    pub configs: u64,
    /// Bytes of content its configs hold.
    pub bytes: u64,
}

/// History kept per config (0: no bound); the newest revision always stays.
#[derive(Serialize, ToSchema)]
pub struct RetentionView {
    pub max_revisions: u64,
    pub max_days: u64,
}

/// A namespace's own limits; `null` follows the node's default, 0 is unlimited.
#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    pub max_configs: Option<u64>,
    pub max_config_bytes: Option<u64>,
    pub max_total_bytes: Option<u64>,
    pub history_max_revisions: Option<u64>,
    pub history_max_days: Option<u64>,
}

impl From<&cairn_store::NamespaceLimits> for LimitsView {
    fn from(l: &cairn_store::NamespaceLimits) -> Self {
        LimitsView {
            max_configs: l.max_configs,
            max_config_bytes: l.max_config_bytes,
            max_total_bytes: l.max_total_bytes,
            history_max_revisions: l.history_max_revisions,
            history_max_days: l.history_max_days,
        }
    }
}

impl From<&NamespaceInfo> for NamespaceView {
    fn from(n: &NamespaceInfo) -> Self {
        Self {
            name: n.record.name.to_string(),
            display_name: n.record.display_name.clone(),
            description: n.record.description.clone(),
            config_count: n.config_count,
            created_at: timestamp(n.record.created_at),
            apollo_anonymous_apps: n.record.apollo_anonymous.clone(),
            quota: QuotaView {
                max_configs: n.limits.max_configs,
                max_config_bytes: n.limits.max_config_bytes,
                max_total_bytes: n.limits.max_total_bytes,
                configs: n.usage.configs,
                bytes: n.usage.bytes,
            },
            history: RetentionView {
                max_revisions: n.limits.history_max_revisions,
                max_days: n.limits.history_max_days,
            },
            limits: LimitsView::from(&n.record.limits),
            require_review: n.record.require_review,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace {
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNamespace {
    /// Absent: unchanged.
    pub display_name: Option<String>,
    /// Absent: unchanged.
    pub description: Option<String>,
    /// Apps (Apollo app ids, `*` patterns; `["*"]` for every app) whose unsigned Apollo
    /// reads the namespace serves; `[]`: none. Absent: unchanged.
    pub apollo_anonymous_apps: Option<Vec<String>>,
    /// Most configs it may hold (admin). A number sets it (0: unlimited), `null` follows
    /// the node's default again, absent: unchanged. So for each limit below.
    #[serde(default, deserialize_with = "set_or_clear")]
    #[schema(value_type = Option<u64>)]
    pub max_configs: Option<Option<u64>>,
    /// Most bytes of content one config may have (at most the node's `max_content_bytes`).
    #[serde(default, deserialize_with = "set_or_clear")]
    #[schema(value_type = Option<u64>)]
    pub max_config_bytes: Option<Option<u64>>,
    /// Most bytes of content all its configs may hold together.
    #[serde(default, deserialize_with = "set_or_clear")]
    #[schema(value_type = Option<u64>)]
    pub max_total_bytes: Option<Option<u64>>,
    /// History revisions kept per config (the newest always stays).
    #[serde(default, deserialize_with = "set_or_clear")]
    #[schema(value_type = Option<u64>)]
    pub history_max_revisions: Option<Option<u64>>,
    /// Days of history kept per config (the newest revision always stays).
    #[serde(default, deserialize_with = "set_or_clear")]
    #[schema(value_type = Option<u64>)]
    pub history_max_days: Option<Option<u64>>,
    /// Require review before release: a person's change becomes a change request
    /// another person approves; machine surfaces are refused unless their token may
    /// publish without review. Turned on by an admin of the namespace, off only by a
    /// global admin. Absent: unchanged.
    pub require_review: Option<bool>,
}

impl UpdateNamespace {
    /// The limits the request changes.
    pub fn limits(&self) -> cairn_store::LimitsUpdate {
        cairn_store::LimitsUpdate {
            max_configs: self.max_configs,
            max_config_bytes: self.max_config_bytes,
            max_total_bytes: self.max_total_bytes,
            history_max_revisions: self.history_max_revisions,
            history_max_days: self.history_max_days,
        }
    }
}

/// A field present as `null` (`Some(None)`), as a value, or absent (`None`, by
/// `#[serde(default)]`).
fn set_or_clear<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub content: String,
    /// text, properties, yaml, json, toml, xml or html. Default: the current format, else
    /// the data id's extension, else text.
    pub format: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Compare-and-set: publish only if the current md5 is this; `""` means only if the
    /// config does not exist yet.
    pub cas_md5: Option<String>,
    /// Store content even if it does not parse as its format.
    #[serde(default)]
    pub force: bool,
    /// Recorded in history.
    pub comment: Option<String>,
    /// Show the content only to callers with `read-secret` (data ids starting
    /// `cipher-` are sensitive whatever this says). Default: as it is.
    pub sensitive: Option<bool>,
    /// In a namespace that requires review: an admin's emergency release, published
    /// at once and flagged in history, the audit log and webhooks; `comment` is the
    /// reason and must be given.
    #[serde(default)]
    pub emergency: bool,
}

/// A config's metadata, and its content when asked for.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub format: String,
    pub md5: String,
    pub revision: i64,
    pub size: usize,
    pub description: String,
    pub tags: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
    /// Whether this is the gray release's content, served to a matching client.
    #[serde(default)]
    pub gray: bool,
    /// Whether its content is shown only to callers with `read-secret`.
    #[serde(default)]
    pub sensitive: bool,
}

impl ConfigView {
    /// The config as a client sees it: the gray release's content and version if the
    /// client matches it.
    pub fn of_view(view: &crate::cache::View, with_content: bool) -> Self {
        let mut out = Self::new(&view.config, with_content);
        if let Some(gray) = &view.gray {
            out.content = with_content.then(|| gray.content.clone());
            out.format = gray.format.to_string();
            out.md5 = gray.md5.clone();
            out.revision = gray.revision.get();
            out.size = gray.content.len();
            out.gray = true;
        }
        out
    }

    pub fn new(c: &ConfigRecord, with_content: bool) -> Self {
        Self {
            namespace: c.key.namespace.to_string(),
            group: c.key.group.to_string(),
            data_id: c.key.data_id.to_string(),
            content: with_content.then(|| c.content.clone()),
            format: c.format.to_string(),
            md5: c.md5.clone(),
            revision: c.revision.get(),
            size: c.content.len(),
            description: c.description.clone(),
            tags: c.tags.clone(),
            created_by: c.created_by.clone(),
            created_at: timestamp(c.created_at),
            updated_by: c.updated_by.clone(),
            updated_at: timestamp(c.updated_at),
            gray: false,
            sensitive: crate::access::is_sensitive(&c.key, c.sensitive),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub namespace: Option<String>,
    /// Group; `*` matches any run of characters.
    pub group: Option<String>,
    /// Data id; `*` matches any run of characters.
    pub data_id: Option<String>,
    pub tag: Option<String>,
    /// Only configs whose content contains this text.
    pub q: Option<String>,
    pub page: Option<u32>,
    /// At most 500; default 50.
    pub page_size: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub page: Option<u32>,
    /// At most 500; default 50.
    pub page_size: Option<u32>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConfigPage {
    pub items: Vec<ConfigView>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    pub revision: i64,
    /// publish, rollback or delete.
    pub op: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub format: String,
    pub md5: String,
    pub description: String,
    pub tags: Vec<String>,
    pub operator: String,
    pub source: String,
    pub comment: String,
    pub created_at: String,
    /// An admin's emergency change, released without the review its namespace
    /// requires (`comment` is the reason).
    #[serde(default)]
    pub emergency: bool,
}

impl HistoryView {
    pub fn new(h: &HistoryRecord, with_content: bool) -> Self {
        Self {
            revision: h.revision.get(),
            op: h.op.as_str().to_owned(),
            content: with_content.then(|| h.content.clone()),
            format: h.format.to_string(),
            md5: h.md5.clone(),
            description: h.description.clone(),
            tags: h.tags.clone(),
            operator: h.operator.clone(),
            source: h.source.clone(),
            comment: h.comment.clone(),
            created_at: timestamp(h.created_at),
            emergency: h.emergency,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<HistoryView>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The revision whose content to publish again.
    #[schema(value_type = i64, minimum = 1)]
    pub revision: Revision,
    pub cas_md5: Option<String>,
    /// An admin's emergency rollback where review is required; `comment` is the reason.
    #[serde(default)]
    pub emergency: bool,
    /// Recorded in history (and the reason of an emergency).
    pub comment: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    #[param(value_type = i64, minimum = 1)]
    pub from: Revision,
    /// Default: the current content.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub to: Option<Revision>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete only if the current md5 is this.
    pub cas_md5: Option<String>,
    /// An admin's emergency deletion where review is required; `comment` is the reason.
    #[serde(default)]
    pub emergency: bool,
    /// Why: the change request's comment, or an emergency's reason.
    pub comment: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// `json`: answer with metadata and content as JSON instead of the raw content.
    pub view: Option<String>,
}

/// One key a watcher holds, with the md5 of the content it has (`""`: none).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchKey {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    #[serde(default)]
    pub md5: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    /// Exact keys with the md5 the client holds. Give keys or patterns, not both.
    #[serde(default)]
    pub keys: Vec<WatchKey>,
    /// Every config of a namespace whose group and data id match (`*` wildcards),
    /// including configs created after the watch began, and deletions.
    #[serde(default)]
    pub patterns: Vec<WatchPattern>,
    /// With patterns: the `seq` of the last answer. 0 (the default) answers at once
    /// with every matching config (`complete`).
    #[serde(default)]
    pub since: i64,
    /// How long to hold the request when nothing changed; default 30000, clamped to the
    /// server's maximum.
    pub timeout_ms: Option<u64>,
}

/// A pattern of a watch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchPattern {
    pub namespace: String,
    /// `*` matches any run of characters; default `*`.
    #[serde(default)]
    pub group: Option<String>,
    /// `*` matches any run of characters; default `*`.
    #[serde(default)]
    pub data_id: Option<String>,
}

/// The new state of a watched key.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
pub struct ChangedKey {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    /// `""` when the config does not exist (deleted, or not yet created).
    pub md5: String,
    /// `None` when the config does not exist.
    pub revision: Option<i64>,
    pub exists: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WatchResponse {
    /// Empty when the timeout passed with nothing changed.
    pub changed: Vec<ChangedKey>,
    /// Pattern watches: the `since` of the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Pattern watches: `changed` is every matching config, not only what changed
    /// (configs the client holds that are not in it are gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

/// What a key rotation did.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RotateReport {
    /// Values whose data key is now wrapped by the current key.
    pub rewrapped: u64,
    /// Values stored in the clear (written before a key was configured), now sealed.
    pub sealed: u64,
    /// Values that were sealed under the current key already.
    pub current: u64,
    /// Values still changing under the last pass: run the rotation again.
    pub raced: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated `namespace/group/data_id` keys.
    #[serde(default)]
    pub keys: String,
    /// Comma-separated `namespace/group/data_id` patterns, `*` matching any run of
    /// characters in the group and data id (instead of `keys`).
    #[serde(default)]
    pub patterns: String,
    /// End the stream after this many milliseconds (at most a day); absent: it lasts
    /// until the client or the server closes it.
    #[param(minimum = 1, maximum = 86_400_000)]
    pub timeout_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub username: String,
    pub role: String,
    pub created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            username: u.username.to_string(),
            role: u.role.as_str().to_owned(),
            created_at: timestamp(u.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    /// admin or user; default user.
    pub role: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
    /// Required to change your own password (admins too); ignored when an admin sets
    /// someone else's.
    pub current_password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// `admin` or `user`.
    pub role: String,
}

/// A live node of the cluster.
#[derive(Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// The URL clients reach the node at.
    pub address: String,
    pub started_at: String,
    pub heartbeat_at: String,
    /// The last change-log sequence the node applied.
    pub applied_seq: i64,
    /// The Cairn version it runs (empty: older than version reporting).
    pub version: String,
    /// Whether this is the node that answered.
    pub this_node: bool,
}

impl From<&crate::sync::NodeInfo> for NodeView {
    fn from(n: &crate::sync::NodeInfo) -> Self {
        Self {
            id: n.record.id.clone(),
            address: n.record.address.clone(),
            started_at: timestamp(n.record.started_at),
            heartbeat_at: timestamp(n.record.heartbeat_at),
            applied_seq: n.record.applied_seq,
            version: n.record.version.clone(),
            this_node: n.this_node,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrayRequest {
    pub content: String,
    /// Default: the main content's format.
    pub format: Option<String>,
    /// Client IPs that get the gray content.
    #[serde(default)]
    pub ips: Vec<String>,
    /// `key=value` labels; a client declaring any of them gets the gray content.
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub force: bool,
    pub comment: Option<String>,
}

/// A config's gray release.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct GrayView {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub format: String,
    pub md5: String,
    pub revision: i64,
    pub ips: Vec<String>,
    pub labels: Vec<String>,
    pub created_by: String,
    pub created_at: String,
}

impl GrayView {
    pub fn new(g: &cairn_store::GrayRecord, with_content: bool) -> Self {
        Self {
            namespace: g.key.namespace.to_string(),
            group: g.key.group.to_string(),
            data_id: g.key.data_id.to_string(),
            content: with_content.then(|| g.content.clone()),
            format: g.format.to_string(),
            md5: g.md5.clone(),
            revision: g.revision.get(),
            ips: g.rules.ips.iter().map(ToString::to_string).collect(),
            labels: g.rules.labels.iter().map(ToString::to_string).collect(),
            created_by: g.created_by.clone(),
            created_at: timestamp(g.created_at),
        }
    }
}

/// An access key of an Apollo app.
#[derive(Serialize, ToSchema)]
pub struct AccessKeyView {
    pub app_id: String,
    pub id: String,
    /// The HMAC secret the app's clients sign with.
    pub secret: String,
    pub enabled: bool,
    pub created_at: String,
    /// The namespaces (Apollo envs) the key signs for; empty: every namespace.
    pub namespaces: Vec<String>,
}

/// A new access key; without namespaces it signs for every namespace.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessKey {
    #[serde(default)]
    pub namespaces: Vec<String>,
}

impl From<&cairn_store::AccessKeyRecord> for AccessKeyView {
    fn from(k: &cairn_store::AccessKeyRecord) -> Self {
        Self {
            app_id: k.app_id.clone(),
            id: k.id.clone(),
            secret: k.secret.clone(),
            enabled: k.enabled,
            created_at: timestamp(k.created_at),
            namespaces: k.namespaces.clone(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAccessKey {
    pub enabled: bool,
}

/// A client watching a config.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ListenerView {
    /// The id of the node the client is connected to (see the cluster's node list).
    pub node: String,
    /// The client's address as the node sees it (what gray rules match); absent when
    /// unknown.
    pub client_ip: Option<String>,
    /// The labels the client declares (`key=value`), which gray rules match too.
    pub labels: Vec<String>,
    /// native, native-sse, nacos-http, nacos-grpc or apollo.
    pub protocol: String,
    /// The md5 the client holds (`""`: none); absent for Apollo, which numbers versions.
    pub md5: Option<String>,
    /// Whether the client holds what it would read now.
    pub current: bool,
    /// When the watch began (a long poll's: when its latest poll arrived), RFC 3339.
    pub since: String,
}

impl ListenerView {
    pub fn of(node: &str, h: &crate::service::HeldKey) -> Self {
        ListenerView {
            node: node.to_owned(),
            client_ip: h.listener.client.ip.map(|ip| ip.to_string()),
            labels: h
                .listener
                .client
                .labels
                .iter()
                .map(ToString::to_string)
                .collect(),
            protocol: h.listener.protocol.as_str().to_owned(),
            md5: h.held.clone(),
            current: h.current,
            since: timestamp(h.listener.since),
        }
    }
}

/// The clients watching a config, and the nodes that could not be asked.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ListenersView {
    pub listeners: Vec<ListenerView>,
    /// With `cluster=true`: each live node that did not answer, and why.
    pub unanswered: Vec<UnansweredNode>,
}

/// A node that did not answer.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UnansweredNode {
    pub node: String,
    pub error: String,
}

/// Which nodes' listeners to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListenersScope {
    /// Every live node's, not only this node's (default false).
    #[serde(default)]
    pub cluster: bool,
}

/// One watch of one client.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientWatchView {
    /// The id of the node the client is connected to.
    pub node: String,
    pub protocol: String,
    /// When the watch began, RFC 3339.
    pub since: String,
    pub keys: Vec<WatchedKeyView>,
}

/// A client's watches, and the nodes that could not be asked.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientWatchesView {
    pub watches: Vec<ClientWatchView>,
    /// With `cluster=true`: each live node that did not answer, and why.
    pub unanswered: Vec<UnansweredNode>,
}

/// A key a client watches.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WatchedKeyView {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    pub md5: Option<String>,
    pub current: bool,
}

/// Whose watches to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListenersQuery {
    /// The client's IP address.
    pub ip: String,
    /// Every live node's, not only this node's (default false).
    #[serde(default)]
    pub cluster: bool,
}

/// Who a grant is for: exactly one of `user` and `role`.
#[derive(Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantSubject {
    pub user: Option<String>,
    pub role: Option<String>,
}

/// A grant to give: a level over a namespace, optionally narrowed by group and data id
/// patterns (`*` matches any run of characters).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub user: Option<String>,
    pub role: Option<String>,
    /// A namespace, or a pattern of namespaces (admins only).
    pub namespace: String,
    /// Default `*`.
    pub group: Option<String>,
    /// Default `*`.
    pub data_id: Option<String>,
    /// `none` (narrows a broader grant), `read`, `write` or `admin`.
    pub level: String,
}

/// The grant to take away: its subject and exact scope.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    pub user: Option<String>,
    pub role: Option<String>,
    pub namespace: String,
    /// Default `*`.
    pub group: Option<String>,
    /// Default `*`.
    pub data_id: Option<String>,
}

/// Which grants to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantsQuery {
    pub user: Option<String>,
    pub role: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// `user` or `role`.
    pub subject_kind: String,
    pub subject: String,
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    pub level: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<&cairn_store::GrantRecord> for GrantView {
    fn from(g: &cairn_store::GrantRecord) -> Self {
        Self {
            subject_kind: g.subject.kind().to_owned(),
            subject: g.subject.name().to_owned(),
            namespace: g.scope.namespace.as_str().to_owned(),
            group: g.scope.group.as_str().to_owned(),
            data_id: g.scope.data_id.as_str().to_owned(),
            level: g.level.as_str().to_owned(),
            created_at: timestamp(g.created_at),
            created_by: g.created_by.clone(),
        }
    }
}

/// A named role: its members and how many grants it carries.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    pub role: String,
    pub members: Vec<String>,
    pub grants: usize,
}

/// Which audit entries to read.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQueryParams {
    /// From this time, RFC 3339 (`2026-12-04T00:00:00Z`), inclusive.
    pub from: Option<String>,
    /// Before this time, RFC 3339.
    pub to: Option<String>,
    /// Only this user's acts.
    pub user: Option<String>,
    pub namespace: Option<String>,
    /// An action (`config.publish`) or a family of them (`config`, `user`, `grant`, `login`).
    pub action: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub result: Option<String>,
    pub page: Option<u32>,
    /// At most 500; default 50.
    pub page_size: Option<u32>,
}

/// One entry of the audit log.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub at: String,
    /// The user, as identified (for a failed login, the name that was tried).
    pub user: String,
    /// The client's address.
    pub source: String,
    /// `native`, `nacos`, `nacos-grpc`, `console`.
    pub surface: String,
    pub action: String,
    pub namespace: String,
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub result: String,
    /// For configs: the main content's md5 before the change.
    pub md5_before: Option<String>,
    /// For configs: the md5 of what the change published.
    pub md5_after: Option<String>,
    pub detail: String,
}

impl From<&cairn_store::AuditRecord> for AuditEntryView {
    fn from(a: &cairn_store::AuditRecord) -> Self {
        Self {
            id: a.id,
            at: timestamp(a.at),
            user: a.actor.clone(),
            source: a.source.clone(),
            surface: a.surface.clone(),
            action: a.action.clone(),
            namespace: a.namespace.clone(),
            target: a.target.clone(),
            result: a.result.clone(),
            md5_before: a.md5_before.clone(),
            md5_after: a.md5_after.clone(),
            detail: a.detail.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntryView>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

/// A level over a namespace (or namespace pattern) a service token is given.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct TokenScope {
    pub namespace: String,
    /// `read`, `write` or `admin`.
    pub level: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Letters, digits and `_ . -`.
    pub name: String,
    pub scopes: Vec<TokenScope>,
    /// May publish into namespaces that require review without a change request (a
    /// deployment pipeline whose changes are reviewed elsewhere).
    #[serde(default)]
    pub publish_without_review: bool,
}

/// A service token as listed: never the token itself.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub name: String,
    pub scopes: Vec<TokenScope>,
    pub publish_without_review: bool,
    pub created_by: String,
    pub created_at: String,
    /// Absent: never used.
    pub last_used_at: Option<String>,
}

impl From<&cairn_store::TokenRecord> for TokenView {
    fn from(t: &cairn_store::TokenRecord) -> Self {
        Self {
            name: t.name.clone(),
            scopes: t
                .scopes
                .iter()
                .map(|(ns, level)| TokenScope {
                    namespace: ns.clone(),
                    level: level.as_str().to_owned(),
                })
                .collect(),
            publish_without_review: t.publish_without_review,
            created_by: t.created_by.clone(),
            created_at: timestamp(t.created_at),
            last_used_at: t.last_used_at.map(timestamp),
        }
    }
}

/// A new service token: `token` is shown here only, never again.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub name: String,
    /// Send as `Authorization: Bearer <token>`, or as Nacos's `accessToken`.
    pub token: String,
}
