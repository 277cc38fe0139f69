//! The API's JSON bodies as the client sees them.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The address of a config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
}

impl Key {
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

#[derive(Clone, Deserialize)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`; never printed by `Debug`.
    pub token: String,
    pub expires_in: u64,
    pub username: String,
    pub role: String,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A publish request. Fields left `None` keep the config's current value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Publish {
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Only publish over this md5; `""`: only if the config does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cas_md5: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Publish {
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
    pub namespace: String,
    pub group: String,
    pub data_id: String,
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
    /// Whether this is a gray release's content, served because this client matches it.
    #[serde(default)]
    pub gray: bool,
}

/// Search criteria for [`crate::Client::list`]; `*` is a wildcard in group and data id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Content substring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HistoryEntry {
    pub revision: i64,
    pub op: String,
    pub content: Option<String>,
    pub format: String,
    pub md5: String,
    pub description: String,
    pub tags: Vec<String>,
    pub operator: String,
    pub source: String,
    pub comment: String,
    pub created_at: String,
}

/// A watched key and the md5 of the content the watcher holds (`""`: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchKey {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    pub md5: String,
}

impl WatchKey {
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
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    pub md5: String,
    pub revision: Option<i64>,
    pub exists: bool,
}

impl ChangedKey {
    pub fn key(&self) -> Key {
        Key::new(&self.namespace, &self.group, &self.data_id)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WatchResponse {
    pub changed: Vec<ChangedKey>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamespaceInfo {
    pub name: String,
    pub description: String,
    pub config_count: usize,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub role: String,
    pub created_at: String,
}

/// A live node of a cluster.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterNode {
    pub id: String,
    /// The URL clients reach the node at.
    pub address: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub applied_seq: i64,
    /// Whether this is the node that answered.
    pub this_node: bool,
}

/// A gray release to publish: `content` goes only to clients whose IP is in `ips` or
/// that declare one of `labels` (`key=value`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GrayPublish {
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub ips: Vec<String>,
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A config's gray release.
#[derive(Debug, Clone, Deserialize)]
pub struct Gray {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    pub content: Option<String>,
    pub format: String,
    pub md5: String,
    pub revision: i64,
    pub ips: Vec<String>,
    pub labels: Vec<String>,
    pub created_by: String,
    pub created_at: String,
}

/// An access key of an Apollo app.
#[derive(Clone, Deserialize)]
pub struct AccessKey {
    pub app_id: String,
    pub id: String,
    /// The HMAC secret the app's Apollo clients sign with.
    pub secret: String,
    pub enabled: bool,
    pub created_at: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("app_id", &self.app_id)
            .field("id", &self.id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A change a watch reports: the config's new state, `None` when it was deleted.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: Key,
    pub config: Option<Config>,
}
