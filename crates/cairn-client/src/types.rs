//! The API's JSON bodies as the client sees them.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The address of a config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// The namespace, e.g. `public`.
    pub namespace: String,
    /// The group within the namespace, e.g. `DEFAULT_GROUP`.
    pub group: String,
    /// The config's name within its group, e.g. `app.yaml`; its extension suggests the format.
    pub data_id: String,
}

impl Key {
    /// A key from its three parts, not checked; [`Key::parse`] checks the name rules.
    pub fn new(namespace: &str, group: &str, data_id: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            group: group.to_owned(),
            data_id: data_id.to_owned(),
        }
    }

    /// Parses `namespace/group/data_id`, with Cairn's name rules.
    pub fn parse(path: &str) -> Result<Self, Error> {
        cairn_core::ConfigKey::parse_path(path)
            .map(|k| Self::new(k.namespace.as_str(), k.group.as_str(), k.data_id.as_str()))
            .map_err(|_| Error::BadKey(path.to_owned()))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.group, self.data_id)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

/// What [`crate::Client::login`] returns: an access token and the user it is for.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>` (`expose_secret()` gives the text).
    pub token: SecretString,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The user the token is for.
    pub username: String,
    /// The user's role: `admin` or `user`.
    pub role: String,
}

/// A publish request. Fields left `None` keep the config's current value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Publish {
    /// The new content.
    pub content: String,
    /// `text`, `properties`, `yaml`, `json`, `toml`, `xml` or `html`. Default: the current
    /// format, else the one the data id's extension names, else `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A free-text description of the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags to search by; they replace the current ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Only publish over this md5; `""`: only if the config does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cas_md5: Option<String>,
    /// Store the content even if it does not parse as its format.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// A note recorded in the config's history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Mark (`true`) or unmark the config sensitive: its content is then shown only to
    /// callers with `read-secret`. `None`: as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// In a namespace that requires review: an admin's emergency release, published at
    /// once and flagged; `comment` is the reason and must be given.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub emergency: bool,
}

/// How a deletion or rollback is made ([`crate::Client::delete_with`],
/// [`crate::Client::rollback_with`]).
#[derive(Debug, Clone, Default)]
pub struct ChangeOptions {
    /// Only over this md5.
    pub cas_md5: Option<String>,
    /// Why: recorded in history, or as a change request's comment.
    pub comment: Option<String>,
    /// An admin's emergency change where review is required; `comment` is the reason.
    pub emergency: bool,
}

/// A change proposed for review in a namespace that requires it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChangeRequest {
    /// Its number.
    pub id: i64,
    /// The config's namespace.
    pub namespace: String,
    /// The config's group.
    pub group: String,
    /// The config's data id.
    pub data_id: String,
    /// `publish` or `delete`.
    pub op: String,
    /// `open`, `approved`, `rejected` or `stale` (the config changed after it was made:
    /// rebase it).
    pub status: String,
    /// Who proposed it.
    pub author: String,
    /// Why, as its author wrote it.
    pub comment: String,
    /// Who approved or rejected it; empty while open.
    pub reviewer: String,
    /// The md5 of the content it was made against; empty: the config did not exist.
    pub base_md5: String,
    /// The revision it was made against.
    pub base_revision: Option<i64>,
    /// The md5 of the proposed content (empty for a deletion).
    pub md5: String,
    /// The revision its approval released.
    pub released_revision: Option<i64>,
    /// When it was made, as RFC 3339 text.
    pub created_at: String,
    /// When it last changed, as RFC 3339 text.
    pub updated_at: String,
}

/// One step of a change request's life.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewEvent {
    /// `opened`, `rebased`, `approved`, `rejected` or `stale`.
    pub event: String,
    /// Who took the step.
    pub actor: String,
    /// What they said.
    pub comment: String,
    /// When, as RFC 3339 text.
    pub at: String,
}

/// A change request with what it would change and its timeline.
#[derive(Debug, Clone, Deserialize)]
pub struct ChangeRequestDetail {
    /// The request.
    #[serde(flatten)]
    pub request: ChangeRequest,
    /// The proposed content; `None` for a deletion, or without `read-secret` on a
    /// sensitive config.
    pub content: Option<String>,
    /// A unified diff from the content it was made against.
    pub diff: Option<String>,
    /// The config's md5 now; when it is not `base_md5`, approving finds it stale.
    pub current_md5: Option<String>,
    /// Its steps, oldest first.
    pub events: Vec<ReviewEvent>,
}

impl Publish {
    /// A publish of `content` that keeps every other setting.
    pub fn new(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            ..Self::default()
        }
    }
}

/// A config's metadata, and its content when the call returns it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    /// The key's namespace.
    pub namespace: String,
    /// The key's group.
    pub group: String,
    /// The key's data id.
    pub data_id: String,
    /// The content; `None` from calls that leave it out, such as [`crate::Client::list`]
    /// and [`crate::Client::publish`].
    pub content: Option<String>,
    /// `text`, `properties`, `yaml`, `json`, `toml`, `xml` or `html`.
    pub format: String,
    /// The content's md5 as 32 lowercase hex characters; it changes when the content does.
    pub md5: String,
    /// The number of the change that produced this content. All configs share one
    /// sequence, so a config's revisions grow but skip numbers; `-1` for a failover file.
    pub revision: i64,
    /// The content's length in bytes.
    pub size: usize,
    /// The config's free-text description.
    pub description: String,
    /// The config's tags.
    pub tags: Vec<String>,
    /// The user who created the config.
    pub created_by: String,
    /// When the config was created, as RFC 3339 text (empty for a failover file).
    pub created_at: String,
    /// The user who last changed the config.
    pub updated_by: String,
    /// When the config last changed, as RFC 3339 text (empty for a failover file).
    pub updated_at: String,
    /// Whether this is a gray release's content, served because this client matches it.
    #[serde(default)]
    pub gray: bool,
    /// Whether its content is shown only to callers with `read-secret`.
    #[serde(default)]
    pub sensitive: bool,
}

/// Search criteria for [`crate::Client::list`]; `*` is a wildcard in group and data id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListQuery {
    /// Only configs in this namespace (default: every namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only configs whose group matches this pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Only configs whose data id matches this pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_id: Option<String>,
    /// Only configs that carry this tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Content substring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// The page to return, from 1 (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Configs per page: at most 500, default 50.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

/// One page of a longer list.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// How many items all the pages hold together.
    pub total: u64,
    /// This page's number, from 1.
    pub page: u32,
    /// The page size used; the last page may hold fewer items.
    pub page_size: u32,
}

/// The clients watching a config, and the nodes that could not be asked.
#[derive(Debug, Clone, Deserialize)]
pub struct Listeners {
    /// Every client watching, on each node asked.
    pub listeners: Vec<ConfigListener>,
    /// Nodes that did not answer a cluster-wide question, with why.
    pub unanswered: Vec<UnansweredNode>,
}

/// A node that did not answer.
#[derive(Debug, Clone, Deserialize)]
pub struct UnansweredNode {
    /// The node's id, as the cluster's node list shows it.
    pub node: String,
    /// Why its answer is missing.
    pub error: String,
}

/// A client watching a config, as the node it is connected to sees it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigListener {
    /// The id of the node the client is connected to.
    pub node: String,
    /// The client's address, when known.
    pub client_ip: Option<String>,
    /// The labels the client declares (`key=value`).
    pub labels: Vec<String>,
    /// How it listens: `native`, `native-sse`, `nacos-http`, `nacos-grpc` or `apollo`.
    pub protocol: String,
    /// The md5 it holds (`""`: none); absent for Apollo clients, which number versions.
    pub md5: Option<String>,
    /// Whether it holds what it would read now.
    pub current: bool,
    /// When the watch began (a long poll's: its latest poll), RFC 3339.
    pub since: String,
}

/// One change to a config, as its history keeps it.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryEntry {
    /// The number of the change (see [`Config::revision`]); pass it to
    /// [`crate::Client::history_entry`] or [`crate::Client::rollback`].
    pub revision: i64,
    /// What the change did: `publish`, `rollback`, `delete`, `gray_publish`,
    /// `gray_promote` or `gray_abandon`.
    pub op: String,
    /// The content the change stored (empty for `delete` and `gray_abandon`); `None` in
    /// a page from [`crate::Client::history`].
    pub content: Option<String>,
    /// The content's format.
    pub format: String,
    /// The content's md5; `""` for `delete` and `gray_abandon`.
    pub md5: String,
    /// The config's description at the change (empty for `delete` and `gray_abandon`).
    pub description: String,
    /// The config's tags at the change (none for `delete` and `gray_abandon`).
    pub tags: Vec<String>,
    /// The user who made the change.
    pub operator: String,
    /// The IP address the change came from, as the server saw the connection (empty
    /// if unknown).
    pub source: String,
    /// The comment given with the change, or one the server wrote for gray release
    /// changes; may be empty.
    pub comment: String,
    /// When the change was made, as RFC 3339 text.
    pub created_at: String,
    /// An admin's emergency change, released without the review its namespace
    /// requires (`comment` is the reason).
    #[serde(default)]
    pub emergency: bool,
}

/// A watched key and the md5 of the content the watcher holds (`""`: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchKey {
    /// The key's namespace.
    pub namespace: String,
    /// The key's group.
    pub group: String,
    /// The key's data id.
    pub data_id: String,
    /// The md5 of the content the watcher holds; `""` when it holds none.
    pub md5: String,
}

impl WatchKey {
    /// Watches `key`, holding content with this md5 (`""`: none).
    pub fn new(key: &Key, md5: impl Into<String>) -> Self {
        Self {
            namespace: key.namespace.clone(),
            group: key.group.clone(),
            data_id: key.data_id.clone(),
            md5: md5.into(),
        }
    }
}

/// The new state of a watched key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChangedKey {
    /// The key's namespace.
    pub namespace: String,
    /// The key's group.
    pub group: String,
    /// The key's data id.
    pub data_id: String,
    /// The md5 of the content this client would now read (a gray release's if the client
    /// matches it); `""` when the config does not exist.
    pub md5: String,
    /// The revision of that content; `None` when the config does not exist.
    pub revision: Option<i64>,
    /// Whether the config exists.
    pub exists: bool,
}

impl ChangedKey {
    /// The key that changed.
    pub fn key(&self) -> Key {
        Key::new(&self.namespace, &self.group, &self.data_id)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WatchResponse {
    pub changed: Vec<ChangedKey>,
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(default)]
    pub complete: Option<bool>,
}

/// Configs of a namespace a pattern watch covers: group and data id `*` wildcards.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchPattern {
    /// The namespace.
    pub namespace: String,
    /// `*` matches any run of characters; `None`: every group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `*` matches any run of characters; `None`: every data id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_id: Option<String>,
}

impl WatchPattern {
    /// Every config of `namespace`.
    pub fn namespace(namespace: impl Into<String>) -> Self {
        WatchPattern {
            namespace: namespace.into(),
            group: None,
            data_id: None,
        }
    }

    /// Only groups matching `group`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Only data ids matching `data_id`.
    pub fn data_id(mut self, data_id: impl Into<String>) -> Self {
        self.data_id = Some(data_id.into());
        self
    }
}

/// What one poll of a pattern watch answered ([`crate::Client::watch_pattern`]).
#[derive(Debug, Clone)]
pub struct PatternChanges {
    /// The matching configs that changed (created, changed, deleted), or with
    /// `complete`, every matching config.
    pub changed: Vec<ChangedKey>,
    /// Pass it as the next poll's `since`.
    pub seq: i64,
    /// `changed` is every matching config: configs held that are not in it are gone.
    pub complete: bool,
}

/// A namespace.
#[derive(Debug, Clone, Deserialize)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: String,
    /// A name for people; empty: the name itself.
    #[serde(default)]
    pub display_name: String,
    /// The namespace's free-text description.
    pub description: String,
    /// How many configs the namespace holds (0 in the answer to
    /// [`crate::Client::create_namespace`]).
    pub config_count: usize,
    /// When the namespace was created, as RFC 3339 text.
    pub created_at: String,
    /// Apps (`*` patterns) whose unsigned Apollo reads the namespace serves.
    #[serde(default)]
    pub apollo_anonymous_apps: Vec<String>,
    /// Its quotas in force and its use (absent from servers before quotas).
    #[serde(default)]
    pub quota: Option<Quota>,
    /// History kept per config (absent from servers before retention).
    #[serde(default)]
    pub history: Option<Retention>,
    /// Whether a person's change is a change request another person approves.
    #[serde(default)]
    pub require_review: bool,
}

/// A namespace's quotas in force (0: unlimited) and what it holds.
#[derive(Debug, Clone, Deserialize)]
pub struct Quota {
    /// Most configs it may hold.
    pub max_configs: u64,
    /// Most bytes of content one config may have.
    pub max_config_bytes: u64,
    /// Most bytes of content all its configs may hold together.
    pub max_total_bytes: u64,
    /// Configs it holds.
    pub configs: u64,
    /// Bytes of content its configs hold.
    pub bytes: u64,
}

/// History kept per config (0: no bound); the newest revision always stays.
#[derive(Debug, Clone, Deserialize)]
pub struct Retention {
    /// Revisions kept per config.
    pub max_revisions: u64,
    /// Days of history kept per config.
    pub max_days: u64,
}

/// A change of a namespace's settings; `None` keeps the current value.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NamespaceUpdate {
    /// A name for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Apps (Apollo app ids, `*` patterns) whose unsigned Apollo reads the namespace
    /// serves; empty: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apollo_anonymous_apps: Option<Vec<String>>,
    /// Most configs it may hold (admin): `Some(Some(n))` sets it (0: unlimited),
    /// `Some(None)` follows the server's default again. So for each limit below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_configs: Option<Option<u64>>,
    /// Most bytes of content one config may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_config_bytes: Option<Option<u64>>,
    /// Most bytes of content all its configs may hold together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_total_bytes: Option<Option<u64>>,
    /// History revisions kept per config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_max_revisions: Option<Option<u64>>,
    /// Days of history kept per config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_max_days: Option<Option<u64>>,
    /// Require review before release (turning it off takes a global admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_review: Option<bool>,
}

/// A user account.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    /// The user's name.
    pub username: String,
    /// `admin` or `user`.
    pub role: String,
    /// When the user was created, as RFC 3339 text.
    pub created_at: String,
}

/// A live node of a cluster.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterNode {
    /// The node's id, new on every start of its process.
    pub id: String,
    /// The URL clients reach the node at.
    pub address: String,
    /// When the node's process started, as RFC 3339 text.
    pub started_at: String,
    /// When the node last reported itself alive, as RFC 3339 text.
    pub heartbeat_at: String,
    /// The number of the last change the node applied (comparable to
    /// [`Config::revision`]); lower than other nodes' while it catches up.
    pub applied_seq: i64,
    /// Whether this is the node that answered.
    pub this_node: bool,
}

/// A gray release to publish: `content` goes only to clients whose IP is in `ips` or
/// that declare one of `labels` (`key=value`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GrayPublish {
    /// The content matching clients get.
    pub content: String,
    /// Default: the main content's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Client IP addresses that get the gray content. `ips` and `labels` together need
    /// at least one entry.
    pub ips: Vec<String>,
    /// `key=value` labels; a client declaring any of them gets the gray content.
    pub labels: Vec<String>,
    /// Store the content even if it does not parse as its format.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// A note recorded in the config's history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A config's gray release.
#[derive(Debug, Clone, Deserialize)]
pub struct Gray {
    /// The key's namespace.
    pub namespace: String,
    /// The key's group.
    pub group: String,
    /// The key's data id.
    pub data_id: String,
    /// The gray content; `None` in the answer to [`crate::Client::gray_publish`].
    pub content: Option<String>,
    /// The gray content's format.
    pub format: String,
    /// The gray content's md5.
    pub md5: String,
    /// The number of the change that made this gray release (see [`Config::revision`]).
    pub revision: i64,
    /// Client IP addresses that get the gray content.
    pub ips: Vec<String>,
    /// `key=value` labels; a client declaring any of them gets the gray content.
    pub labels: Vec<String>,
    /// The user who published the gray release.
    pub created_by: String,
    /// When the gray release was published, as RFC 3339 text.
    pub created_at: String,
}

/// An access key of an Apollo app.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessKey {
    /// The Apollo app the key belongs to.
    pub app_id: String,
    /// The key's id, for [`crate::Client::set_access_key_enabled`] and
    /// [`crate::Client::delete_access_key`].
    pub id: String,
    /// The HMAC secret the app's Apollo clients sign with (`expose_secret()` gives the
    /// text).
    pub secret: SecretString,
    /// Whether requests signed with this key are accepted.
    pub enabled: bool,
    /// When the key was made, as RFC 3339 text.
    pub created_at: String,
    /// The namespaces (Apollo envs) the key signs for; empty: every namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// A change a watch reports: the config's new state, `None` when it was deleted.
#[derive(Debug, Clone)]
pub struct Change {
    /// The key that changed.
    pub key: Key,
    /// The config as the server now serves it to this client; `None` when deleted.
    pub config: Option<Config>,
}

/// Who a grant is given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantSubject {
    /// One user, by name.
    User(String),
    /// Every member of the role.
    Role(String),
}

impl GrantSubject {
    fn kind(&self) -> &'static str {
        match self {
            GrantSubject::User(_) => "user",
            GrantSubject::Role(_) => "role",
        }
    }

    fn name(&self) -> &str {
        match self {
            GrantSubject::User(n) | GrantSubject::Role(n) => n,
        }
    }

    /// As query or body fields: `user=…` or `role=…`.
    pub(crate) fn field(&self) -> (&'static str, &str) {
        (self.kind(), self.name())
    }
}

/// A grant: a user's or role's level (`none`, `read`, `write`, `admin`) over a
/// namespace, group and data id, each a name or a `*` pattern.
#[derive(Debug, Clone, Deserialize)]
pub struct GrantInfo {
    /// `user` or `role`.
    pub subject_kind: String,
    /// The user's or role's name.
    pub subject: String,
    /// A namespace, or a pattern of namespaces.
    pub namespace: String,
    /// A group or group pattern.
    pub group: String,
    /// A data id or data id pattern.
    pub data_id: String,
    /// `none`, `read`, `write` or `admin`.
    pub level: String,
    /// When it was given, as RFC 3339 text.
    pub created_at: String,
    /// Who gave it (`upgrade` for the grants an upgrade gave existing users).
    pub created_by: String,
}

/// A named role: its members and how many grants it carries.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleInfo {
    /// The role's name.
    pub role: String,
    /// Its members' user names.
    pub members: Vec<String>,
    /// How many grants it carries.
    pub grants: usize,
}

/// Which audit entries to read; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// From this time, RFC 3339.
    pub from: Option<String>,
    /// Before this time, RFC 3339.
    pub to: Option<String>,
    /// One user's acts.
    pub user: Option<String>,
    /// One namespace's.
    pub namespace: Option<String>,
    /// An action (`config.publish`) or a family (`config`, `user`, `login`).
    pub action: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub result: Option<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct AuditEntry {
    /// Its place in the log.
    pub id: i64,
    /// When, as RFC 3339 text.
    pub at: String,
    /// Who (for a failed login, the name that was tried).
    pub user: String,
    /// The client's address.
    pub source: String,
    /// `native`, `nacos`, `nacos-grpc`, `console`.
    pub surface: String,
    /// What was done.
    pub action: String,
    /// Where; empty when no namespace.
    pub namespace: String,
    /// What it was done to.
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub result: String,
    /// For configs: the main content's md5 before.
    pub md5_before: Option<String>,
    /// For configs: the md5 of what was published.
    pub md5_after: Option<String>,
    /// Anything else: a comment, why it was refused.
    pub detail: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntry>,
    /// How many match in all.
    pub total: u64,
}

/// A service token's level over a namespace (or namespace pattern).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct TokenScope {
    /// A namespace or pattern.
    pub namespace: String,
    /// `read`, `write` or `admin`.
    pub level: String,
}

/// A service token as listed (never the token itself).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenInfo {
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<TokenScope>,
    /// Whether it may publish into namespaces that require review without review.
    #[serde(default)]
    pub publish_without_review: bool,
    /// Who made it.
    pub created_by: String,
    /// When, as RFC 3339 text.
    pub created_at: String,
    /// When it was last used, as RFC 3339 text; `None`: never.
    pub last_used_at: Option<String>,
}

/// A service token just made: the only time the token is shown.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedToken {
    /// Its name.
    pub name: String,
    /// The token (`expose_secret()` gives the text).
    pub token: SecretString,
}

/// What an import did ([`Client::import_namespace`]).
#[derive(Debug, Clone, Deserialize)]
pub struct ImportReport {
    /// How many configs were written.
    pub imported: u64,
    /// Bytes of content written.
    #[serde(default)]
    pub bytes: u64,
    /// How many were already stored exactly so, and were not written again.
    #[serde(default)]
    pub unchanged: u64,
    /// Configs left as they were (policy `skip`), as `namespace/group/data_id`.
    pub skipped: Vec<String>,
    /// What was left out with [`ImportOptions::skip_invalid`], and why.
    #[serde(default)]
    pub refused: Vec<Refused>,
    /// Gray releases started (Cairn's format carries them).
    #[serde(default)]
    pub grays: u64,
    /// Earlier versions written as history (Cairn's format with history; only for
    /// the configs the import created).
    #[serde(default)]
    pub history: u64,
}

/// An entry or config an import left out, and why.
#[derive(Debug, Clone, Deserialize)]
pub struct Refused {
    /// The config (`namespace/group/data_id`) or the zip entry.
    pub item: String,
    /// Why it was left out.
    pub reason: String,
}

/// What an export takes, and in which format.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Only this group (`*` matches any run of characters).
    pub group: Option<String>,
    /// Only matching data ids (`*` matches any run of characters).
    pub data_id: Option<String>,
    /// `nacos` (a zip; the default when empty) or `cairn` (JSON lines with every
    /// config's md5 and gray release).
    pub format: String,
    /// With each config's earlier versions (`cairn` only).
    pub history: bool,
}

/// How an import treats configs that exist and entries it cannot take.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// `abort` (import nothing if any config exists with other content), `skip` or
    /// `overwrite`.
    pub policy: String,
    /// Leave out what cannot be imported and report it, instead of importing nothing.
    pub skip_invalid: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            policy: "abort".to_owned(),
            skip_invalid: false,
        }
    }
}

/// What a key rotation did ([`crate::Client::rotate_encryption_key`]).
#[derive(Debug, Clone, Deserialize)]
pub struct KeyRotation {
    /// Values whose data key is now wrapped by the current key.
    pub rewrapped: u64,
    /// Values that were stored in the clear and are now sealed.
    pub sealed: u64,
    /// Values sealed under the current key already.
    pub current: u64,
    /// Values still changing under the last pass: run the rotation again.
    pub raced: u64,
}

/// A JSON Schema attached to a config, or to every config whose group and data id
/// match `*` wildcards in a namespace.
#[derive(Debug, Clone, Deserialize)]
pub struct Schema {
    /// The namespace it is attached in.
    pub namespace: String,
    /// A group, or a `*` wildcard of groups.
    pub group: String,
    /// A data id, or a `*` wildcard of data ids.
    pub data_id: String,
    /// 1 when first attached, one more for each change.
    pub version: u64,
    /// The JSON Schema document.
    pub schema: serde_json::Value,
    /// Who first attached it.
    pub created_by: String,
    /// When it was first attached (RFC 3339).
    pub created_at: String,
    /// Who last changed it.
    pub updated_by: String,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
}

/// An attachment or change of a schema.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaSet {
    /// The JSON Schema (draft 2020-12).
    pub schema: serde_json::Value,
    /// Attach it even though configs as they are now break it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// The version last read (0: none attached); refused if it moved since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_version: Option<u64>,
    /// A note recorded with the version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One version of a schema.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaVersion {
    /// Its number.
    pub version: u64,
    /// `set` or `remove`.
    pub op: String,
    /// The schema this version set; `None` for a removal.
    pub schema: Option<serde_json::Value>,
    /// Who made it.
    pub by: String,
    /// The note given with it.
    pub comment: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A webhook subscription (its secret is never shown back).
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// The namespace.
    pub namespace: String,
    /// Where events are sent.
    pub url: String,
    /// The event kinds sent; empty: every kind.
    pub events: Vec<String>,
    /// A group wildcard; empty: any.
    pub group: String,
    /// A data-id wildcard; empty: any.
    pub data_id: String,
    /// Who added it.
    pub created_by: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// A webhook to add.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WebhookAdd {
    /// The namespace.
    pub namespace: String,
    /// Where events are sent.
    pub url: String,
    /// Signs each request; 16 to 256 characters.
    pub secret: String,
    /// Event kinds (`publish`, `rollback`, `delete`, `gray_publish`, `gray_promote`,
    /// `gray_abandon`); empty: every kind.
    pub events: Vec<String>,
    /// Only configs of matching groups (`*` wildcards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Only configs with matching data ids (`*` wildcards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_id: Option<String>,
}

/// One event sent (or being sent) to a webhook.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The event's id, as its payload carries it.
    pub event_id: String,
    /// The event kind.
    pub event: String,
    /// The namespace.
    pub namespace: String,
    /// The group.
    pub group: String,
    /// The data id.
    pub data_id: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's HTTP status, if the receiver answered.
    pub response_code: Option<u16>,
    /// Why the last attempt failed.
    pub error: String,
    /// How long the last attempt took.
    pub latency_ms: Option<i64>,
    /// When a pending delivery is tried next (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// A page of a webhook's deliveries, newest first.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryPage {
    /// The deliveries.
    pub items: Vec<Delivery>,
    /// How many there are in all.
    pub total: u64,
    /// This page, from 1.
    pub page: u32,
    /// Deliveries per page.
    pub page_size: u32,
}
