//! Server settings: defaults, overridden by a TOML file, then by `CAIRN_*` environment
//! variables and flags (the CLI layers those two on top).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// A value that must never be printed, e.g. a password. `Debug` shows a placeholder.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Everything a node can be told. Field names are the TOML keys; each also has a
/// `CAIRN_<UPPER_NAME>` environment variable and a `--kebab-name` flag.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the token signing key.
    pub data_dir: PathBuf,
    /// `postgres://…` or `mysql://…` to use a shared database (required for a cluster);
    /// unset: SQLite in `data_dir`.
    pub database: Option<Secret>,
    /// The URL clients reach this node at, as listed to them; default `http://` + listen.
    pub advertise_url: Option<String>,
    /// How often the change log is polled for other nodes' writes, in milliseconds.
    /// PostgreSQL also wakes nodes at once by `LISTEN/NOTIFY`.
    pub sync_poll_ms: u64,
    /// How often a node records that it is alive, in milliseconds.
    pub heartbeat_ms: u64,
    /// A node silent for this long is dead, in milliseconds.
    pub node_ttl_ms: u64,
    /// Change-log entries older than this are pruned once every live node has them.
    pub change_log_retention_secs: u64,
    /// Password for the `admin` user created on first start; random when unset.
    pub admin_password: Option<Secret>,
    /// Largest config content accepted, in bytes.
    pub max_content_bytes: usize,
    /// Long-poll timeout used when a watch request names none, in milliseconds.
    pub watch_default_timeout_ms: u64,
    /// Longest a watch request may be held, in milliseconds; longer requests are clamped.
    pub watch_max_timeout_ms: u64,
    /// Most keys one watch request may carry.
    pub watch_max_keys: usize,
    /// Lifetime of an access token, in seconds.
    pub token_ttl_secs: u64,
    /// The namespace Apollo clients read when their meta-server URL names no env
    /// (`/apollo/{env}` selects another).
    pub apollo_namespace: String,
    /// How long Apollo's `/notifications/v2` holds a request, in milliseconds.
    pub apollo_poll_timeout_ms: u64,
    /// Refuse Apollo requests of apps that have no access key (default: such apps read
    /// without signing, as in Apollo).
    pub apollo_require_access_key: bool,
    /// Take a client's IP for gray rules from the first `X-Forwarded-For` hop; only
    /// behind a proxy that sets it.
    pub trust_forwarded_for: bool,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Tracing filter, e.g. `info` or `cairn_server=debug,info`. `RUST_LOG` wins when set.
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8848)),
            data_dir: PathBuf::from("cairn-data"),
            database: None,
            advertise_url: None,
            sync_poll_ms: 100,
            heartbeat_ms: 2_000,
            node_ttl_ms: 10_000,
            change_log_retention_secs: 7 * 86_400,
            admin_password: None,
            max_content_bytes: 10 * 1024 * 1024,
            watch_default_timeout_ms: 30_000,
            watch_max_timeout_ms: 120_000,
            watch_max_keys: 10_000,
            token_ttl_secs: 18_000,
            trust_forwarded_for: false,
            apollo_namespace: "public".to_owned(),
            apollo_poll_timeout_ms: 60_000,
            apollo_require_access_key: false,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
        }
    }
}

impl Settings {
    /// Parses a TOML settings file's text; unknown keys are an error so typos surface.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Refuses values outside what the node can honour, naming the setting.
    pub fn check(&self) -> Result<(), String> {
        const HOUR_MS: u64 = 3_600_000;
        let checks: [(bool, &str); 10] = [
            (
                cairn_core::Namespace::parse(&self.apollo_namespace).is_ok(),
                "apollo_namespace must be a valid namespace name",
            ),
            (
                (1_000..=80_000).contains(&self.apollo_poll_timeout_ms),
                "apollo_poll_timeout_ms must be between 1000 and 80000 (Apollo's Java client gives up on a poll after 90 s)",
            ),
            (
                (10..=60_000).contains(&self.sync_poll_ms),
                "sync_poll_ms must be between 10 and 60000",
            ),
            (
                (100..=60_000).contains(&self.heartbeat_ms),
                "heartbeat_ms must be between 100 and 60000",
            ),
            (
                self.node_ttl_ms > self.heartbeat_ms && self.node_ttl_ms <= 3_600_000,
                "node_ttl_ms must exceed heartbeat_ms and be at most 3600000",
            ),
            (
                (1..=1 << 30).contains(&self.max_content_bytes),
                "max_content_bytes must be between 1 and 1073741824",
            ),
            (
                self.watch_max_timeout_ms <= HOUR_MS,
                "watch_max_timeout_ms must be at most 3600000 (one hour)",
            ),
            (
                self.watch_default_timeout_ms <= self.watch_max_timeout_ms,
                "watch_default_timeout_ms must not exceed watch_max_timeout_ms",
            ),
            (
                (1..=1_000_000).contains(&self.watch_max_keys),
                "watch_max_keys must be between 1 and 1000000",
            ),
            (
                (1..=30 * 86_400).contains(&self.token_ttl_secs),
                "token_ttl_secs must be between 1 and 2592000 (30 days)",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err((*why).to_owned()),
            None => Ok(()),
        }
    }

    /// The URL this node is listed under.
    pub fn advertised_url(&self, bound: SocketAddr) -> String {
        self.advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }

    pub fn watch_default_timeout(&self) -> Duration {
        Duration::from_millis(self.watch_default_timeout_ms)
    }

    pub fn watch_max_timeout(&self) -> Duration {
        Duration::from_millis(self.watch_max_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_typos() {
        let s = Settings::from_toml("listen = \"0.0.0.0:9000\"\nwatch_max_keys = 5\n").unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.watch_max_keys, 5);
        assert_eq!(s.max_content_bytes, 10 * 1024 * 1024);
        let err = Settings::from_toml("lissen = \"x\"").unwrap_err();
        assert!(err.to_string().contains("lissen"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert_eq!(Settings::default().check(), Ok(()));
        let s = Settings::from_toml("watch_max_timeout_ms = 9223372036854775807").unwrap();
        assert!(s.check().unwrap_err().contains("watch_max_timeout_ms"));
        let s = Settings::from_toml("token_ttl_secs = 0").unwrap();
        assert!(s.check().unwrap_err().contains("token_ttl_secs"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::from_toml("admin_password = \"hunter22\"").unwrap();
        assert!(!format!("{s:?}").contains("hunter22"));
        assert_eq!(s.admin_password.unwrap().expose(), "hunter22");
    }
}
