//! Server settings, each declared once in the table below with its TOML key,
//! environment variable, flag, default and range. The struct, its defaults, the range
//! checks, `cairn server`'s flags and help, and the README's settings table are all
//! derived from that one table. Layering: defaults, then a TOML file, then `CAIRN_*`
//! environment variables, then flags.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// A value that must never be printed, e.g. a password: `Debug` shows a placeholder,
/// and reading it takes `expose_secret()`, which review can find.
pub use secrecy::{ExposeSecret, SecretString as Secret};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Where a node serves Nacos's gRPC protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum GrpcListen {
    /// The HTTP address with its port + 1000, where Nacos clients look for it (a random
    /// port when the HTTP port is random).
    #[default]
    Offset,
    /// Not at all.
    Off,
    At(SocketAddr),
}

impl TryFrom<String> for GrpcListen {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.trim() {
            "" | "auto" => Ok(GrpcListen::Offset),
            "off" => Ok(GrpcListen::Off),
            addr => addr
                .parse()
                .map(GrpcListen::At)
                .map_err(|_| format!("{addr:?} is not an address and port, `auto` or `off`")),
        }
    }
}

impl fmt::Display for GrpcListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrpcListen::Offset => f.write_str("auto"),
            GrpcListen::Off => f.write_str("off"),
            GrpcListen::At(addr) => addr.fmt(f),
        }
    }
}

/// A setting's value as a number in its written unit, for range checks.
trait Magnitude {
    fn magnitude(&self) -> u128;
}

impl Magnitude for u64 {
    fn magnitude(&self) -> u128 {
        u128::from(*self)
    }
}

impl Magnitude for usize {
    fn magnitude(&self) -> u128 {
        *self as u128
    }
}

/// Declares a duration written in whole units of one kind (the key's suffix says which).
macro_rules! duration_in {
    ($(#[$doc:meta])* $name:ident, $from:ident, $as:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
        #[serde(from = "u64")]
        pub struct $name(Duration);

        impl $name {
            pub const fn new(units: u64) -> Self {
                Self(Duration::$from(units))
            }

            pub fn get(self) -> Duration {
                self.0
            }
        }

        impl From<u64> for $name {
            fn from(units: u64) -> Self {
                Self::new(units)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.$as())
            }
        }

        impl Magnitude for $name {
            fn magnitude(&self) -> u128 {
                u128::from(self.0.$as() as u64)
            }
        }
    };
}

duration_in!(
    /// A duration written in whole milliseconds (keys ending in `_ms`).
    Millis, from_millis, as_millis
);
duration_in!(
    /// A duration written in whole seconds (keys ending in `_secs`).
    Secs, from_secs, as_secs
);

/// One setting as the CLI and the documentation show it.
#[derive(Debug, Clone, Copy)]
pub struct SettingInfo {
    /// The TOML key, also the flag's name (`--kebab-case`).
    pub key: &'static str,
    pub env: &'static str,
    /// Whether a flag sets it too (a password is read from the environment only, so it
    /// never shows in the process list).
    pub flag: bool,
    /// The default as a person reads it.
    pub default: fn() -> String,
    /// What it is for (the doc comment; trim it).
    pub doc: &'static str,
}

impl SettingInfo {
    /// The flag's name, `--data-dir` for `data_dir`.
    pub fn flag_name(&self) -> String {
        self.key.replace('_', "-")
    }
}

/// A setting's value from the text of an environment variable or a flag, taken as it
/// is: a string setting (a password, a URL, a path) gets exactly that text, quotes and
/// all; a number setting takes a plain decimal number, a boolean `true` or `false`.
fn value_of<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, String> {
    let as_text = T::deserialize(toml::Value::String(text.to_owned()));
    let error = match as_text {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let typed = match text {
        "true" => Some(toml::Value::Boolean(true)),
        "false" => Some(toml::Value::Boolean(false)),
        _ if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().ok().map(toml::Value::Integer)
        }
        _ => None,
    };
    typed
        .and_then(|value| T::deserialize(value).ok())
        .ok_or_else(|| format!("invalid {key} {text:?}: {}", error.message()))
}

/// What a setting is for, as its row of the table says.
fn doc_of(key: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .map_or("", |s| s.doc.trim())
}

/// The default as shown: `shown` when the table gives one, else the value itself.
macro_rules! shown {
    ($default:expr, $shown:literal) => {
        || $shown.to_owned()
    };
    ($default:expr,) => {
        || ($default).to_string()
    };
}

/// Declares every setting once; see the module doc.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $key:ident: $ty:ty = $default:expr;
            env $env:literal
            $(, shown $shown:literal)?
            $(, range $lo:literal ..= $hi:literal)?
            $(, flag $flag:literal)?;
    )*) => {
        /// Everything a node can be told. Field names are the TOML keys.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $( $(#[doc = $doc])+ pub $key: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $( $key: $default, )* }
            }
        }

        /// Every setting, in the order the documentation lists them.
        pub const SETTINGS: &[SettingInfo] = &[$(
            SettingInfo {
                key: stringify!($key),
                env: $env,
                flag: settings!(@flag $($flag)?),
                default: shown!($default, $($shown)?),
                doc: concat!($($doc),+),
            },
        )*];

        impl Settings {
            /// Sets `key` from text as given in the environment or on the command line,
            /// read as the TOML file's value would be.
            pub fn set(&mut self, key: &str, text: &str) -> Result<(), String> {
                match key {
                    $( stringify!($key) => self.$key = value_of(key, text)?, )*
                    _ => return Err(format!("unknown setting {key}")),
                }
                Ok(())
            }

            /// The ranges the table states.
            fn check_ranges(&self) -> Result<(), String> {
                $( $(
                    let value = Magnitude::magnitude(&self.$key);
                    if !($lo..=$hi).contains(&value) {
                        return Err(format!(
                            "{} must be between {} and {} (it is {value}): {}",
                            stringify!($key), $lo, $hi, doc_of(stringify!($key))
                        ));
                    }
                )? )*
                Ok(())
            }
        }
    };
    (@flag $flag:literal) => { $flag };
    (@flag) => { true };
}

settings! {
    /// address and port to listen on
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8848));
        env "CAIRN_LISTEN";
    /// address and port of Nacos's gRPC protocol (2.x clients); `auto` is the HTTP port + 1000, `off` serves none
    grpc_listen: GrpcListen = GrpcListen::Offset;
        env "CAIRN_GRPC_LISTEN", shown "auto (`listen` port + 1000)";
    /// SQLite database (`cairn.db`) and token signing key (`token.key`)
    data_dir: PathBuf = PathBuf::from("cairn-data");
        env "CAIRN_DATA_DIR", shown "./cairn-data";
    /// `postgres://…` or `mysql://…` (MariaDB too): a shared database, needed for a cluster
    database: Option<Secret> = None;
        env "CAIRN_DATABASE_URL", shown "SQLite in `data_dir`";
    /// the URL this node is listed under in `/api/v1/cluster/nodes`
    advertise_url: Option<String> = None;
        env "CAIRN_ADVERTISE_URL", shown "`http://` (`https://` with TLS) + listen address";
    /// how often the change log is polled for other nodes' writes, in ms (PostgreSQL also wakes nodes at once)
    sync_poll_ms: Millis = Millis::new(100);
        env "CAIRN_SYNC_POLL_MS", range 10..=60_000;
    /// how often a node records that it is alive, in ms
    heartbeat_ms: Millis = Millis::new(2_000);
        env "CAIRN_HEARTBEAT_MS", range 100..=60_000;
    /// a node silent this long is dead, in ms (more than `heartbeat_ms`)
    node_ttl_ms: Millis = Millis::new(10_000);
        env "CAIRN_NODE_TTL_MS", range 0..=3_600_000;
    /// change-log entries older than this (seconds) are pruned once every live node has applied them
    change_log_retention_secs: Secs = Secs::new(7 * 86_400);
        env "CAIRN_CHANGE_LOG_RETENTION_SECS";
    /// audit-log entries older than this many days are removed
    audit_retention_days: u64 = 365;
        env "CAIRN_AUDIT_RETENTION_DAYS", range 1..=36_500;
    /// password of `admin`, used only when the first start creates it
    admin_password: Option<Secret> = None;
        env "CAIRN_ADMIN_PASSWORD", shown "random, in data_dir/admin-password", flag false;
    /// largest config content accepted, in bytes
    max_content_bytes: usize = 10 * 1024 * 1024;
        env "CAIRN_MAX_CONTENT_BYTES", range 1..=1_073_741_824;
    /// most configs a namespace may hold unless it sets its own quota (0: unlimited)
    quota_max_configs: u64 = 50_000;
        env "CAIRN_QUOTA_MAX_CONFIGS";
    /// most bytes of content a namespace's configs may hold together unless it sets its own quota (0: unlimited)
    quota_max_total_bytes: u64 = 1 << 30;
        env "CAIRN_QUOTA_MAX_TOTAL_BYTES";
    /// history revisions kept per config unless its namespace sets its own (0: all; the newest is always kept)
    history_max_revisions: u64 = 0;
        env "CAIRN_HISTORY_MAX_REVISIONS";
    /// days of history kept per config unless its namespace sets its own (0: for ever; the newest revision is always kept)
    history_max_days: u64 = 0;
        env "CAIRN_HISTORY_MAX_DAYS", range 0..=36_500;
    /// how often one node of the cluster prunes history to its retention, in seconds
    history_prune_interval_secs: Secs = Secs::new(600);
        env "CAIRN_HISTORY_PRUNE_INTERVAL_SECS", range 1..=604_800;
    /// hold time of a watch that names none, in ms (at most `watch_max_timeout_ms`)
    watch_default_timeout_ms: Millis = Millis::new(30_000);
        env "CAIRN_WATCH_DEFAULT_TIMEOUT_MS";
    /// longer watch timeouts are clamped to this, in ms
    watch_max_timeout_ms: Millis = Millis::new(120_000);
        env "CAIRN_WATCH_MAX_TIMEOUT_MS", range 0..=3_600_000;
    /// most keys in one watch request
    watch_max_keys: usize = 10_000;
        env "CAIRN_WATCH_MAX_KEYS", range 1..=1_000_000;
    /// how long a request's body may take to arrive once its headers have, in ms; slower ones are refused
    body_read_timeout_ms: Millis = Millis::new(30_000);
        env "CAIRN_BODY_READ_TIMEOUT_MS", range 100..=3_600_000;
    /// most HTTP connections (held long polls among them) one client address may keep open; more are refused with 503
    max_connections_per_address: usize = 50_000;
        env "CAIRN_MAX_CONNECTIONS_PER_ADDRESS", range 1..=10_000_000;
    /// connections the kernel queues for a port before the node accepts them (a reconnect storm arrives at once); capped by `net.core.somaxconn`
    listen_backlog: u64 = 4096;
        env "CAIRN_LISTEN_BACKLOG", range 1..=1_000_000;
    /// most gRPC connections a node holds; more are refused so their clients try another node
    grpc_max_connections: usize = 50_000;
        env "CAIRN_GRPC_MAX_CONNECTIONS", range 1..=10_000_000;
    /// most configs one gRPC connection listens to
    grpc_max_listens: usize = 10_000;
        env "CAIRN_GRPC_MAX_LISTENS", range 1..=1_000_000;
    /// largest gRPC message accepted or sent, in bytes (above `max_content_bytes`: a config travels inside one)
    grpc_max_message_bytes: usize = 16 * 1024 * 1024;
        env "CAIRN_GRPC_MAX_MESSAGE_BYTES", range 1_024..=1_073_741_824;
    /// access token lifetime, in seconds
    token_ttl_secs: Secs = Secs::new(18_000);
        env "CAIRN_TOKEN_TTL_SECS", range 1..=2_592_000;
    /// the namespace Apollo clients read at the root (`/apollo/{namespace}` selects others)
    apollo_namespace: String = "public".to_owned();
        env "CAIRN_APOLLO_NAMESPACE";
    /// how long `/notifications/v2` holds a request, in ms (Apollo's Java client gives up after 90 s)
    apollo_poll_timeout_ms: Millis = Millis::new(60_000);
        env "CAIRN_APOLLO_POLL_TIMEOUT_MS", range 1_000..=80_000;
    /// most `/notifications/v2` polls one Apollo client (an app at one IP) may hold at once; more are refused with 429
    apollo_max_polls_per_client: usize = 32;
        env "CAIRN_APOLLO_MAX_POLLS_PER_CLIENT", range 1..=1_000_000;
    /// let webhooks call loopback, private and link-local addresses (refused by default, so a webhook cannot reach the node's own network)
    webhook_allow_private_targets: bool = false;
        env "CAIRN_WEBHOOK_ALLOW_PRIVATE_TARGETS";
    /// how long a webhook delivery is retried (with exponential backoff) before it is marked failed, in seconds
    webhook_retry_secs: Secs = Secs::new(86_400);
        env "CAIRN_WEBHOOK_RETRY_SECS", range 1..=2_592_000;
    /// refuse every unsigned Apollo read, even where a namespace serves some apps unsigned (`apollo_anonymous_apps`)
    apollo_require_access_key: bool = false;
        env "CAIRN_APOLLO_REQUIRE_ACCESS_KEY";
    /// PEM certificate chain: with `tls_key`, HTTP and gRPC are served over TLS on the same ports; re-read when the file changes
    tls_cert: Option<PathBuf> = None;
        env "CAIRN_TLS_CERT", shown "none: plain HTTP";
    /// PEM private key of `tls_cert` (re-read with it)
    tls_key: Option<PathBuf> = None;
        env "CAIRN_TLS_KEY", shown "none";
    /// PEM CA certificates: when set, every client must present a certificate one of them signed
    tls_client_ca: Option<PathBuf> = None;
        env "CAIRN_TLS_CLIENT_CA", shown "none: no client certificate asked";
    /// key file (`cairn keygen`): with it, config contents, their history and gray releases, the token signing key and access-key secrets are stored encrypted (AES-256-GCM); every node of a cluster needs the same key
    encryption_key_file: Option<PathBuf> = None;
        env "CAIRN_ENCRYPTION_KEY_FILE", shown "none: contents stored in the clear";
    /// the key being rotated out (`cairn rotate-key`): what it sealed still opens, nothing new is sealed with it; drop it once the rotation is done
    encryption_old_key_file: Option<PathBuf> = None;
        env "CAIRN_ENCRYPTION_OLD_KEY_FILE", shown "none";
    /// take a client's IP for gray rules and the audit log from the first `X-Forwarded-For` hop (only behind a proxy that sets it)
    trust_forwarded_for: bool = false;
        env "CAIRN_TRUST_FORWARDED_FOR";
    /// `text` or `json` log lines (on stderr)
    log_format: LogFormat = LogFormat::Text;
        env "CAIRN_LOG_FORMAT";
    /// tracing filter, e.g. `info` or `cairn_server=debug,info`; `RUST_LOG` wins when set
    log_level: String = "info".to_owned();
        env "CAIRN_LOG_LEVEL";
}

impl Settings {
    /// Parses a TOML settings file's text; unknown keys are an error so typos surface.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Refuses values outside what the node can honour, naming the setting.
    pub fn check(&self) -> Result<(), String> {
        self.check_ranges()?;
        if self.encryption_old_key_file.is_some() && self.encryption_key_file.is_none() {
            return Err(
                "encryption_old_key_file is the key being rotated out: it needs encryption_key_file, the key rotated to"
                    .to_owned(),
            );
        }
        if cairn_core::Namespace::parse(&self.apollo_namespace).is_err() {
            return Err("apollo_namespace must be a valid namespace name".to_owned());
        }
        if self.node_ttl_ms <= self.heartbeat_ms {
            return Err("node_ttl_ms must exceed heartbeat_ms".to_owned());
        }
        if self.grpc_max_message_bytes <= self.max_content_bytes {
            return Err(
                "grpc_max_message_bytes must exceed max_content_bytes: a config travels in one message"
                    .to_owned(),
            );
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), Some(_)) => {}
            (None, None) if self.tls_client_ca.is_some() => {
                return Err(
                    "tls_client_ca needs tls_cert and tls_key: client certificates are \
                     asked for only over TLS"
                        .to_owned(),
                )
            }
            (None, None) => {}
            _ => return Err("tls_cert and tls_key go together: set both or neither".to_owned()),
        }
        if self.watch_default_timeout_ms > self.watch_max_timeout_ms {
            return Err("watch_default_timeout_ms must not exceed watch_max_timeout_ms".to_owned());
        }
        Ok(())
    }

    /// Where gRPC is served when the HTTP server is bound at `http`; `None` when off. An
    /// error when `auto` would need a port past 65535.
    pub fn grpc_address(&self, http: SocketAddr) -> Result<Option<SocketAddr>, String> {
        match self.grpc_listen {
            GrpcListen::Off => Ok(None),
            GrpcListen::At(addr) => Ok(Some(addr)),
            GrpcListen::Offset if self.listen.port() == 0 => {
                Ok(Some(SocketAddr::new(http.ip(), 0)))
            }
            GrpcListen::Offset => match http.port().checked_add(1000) {
                Some(port) => Ok(Some(SocketAddr::new(http.ip(), port))),
                None => Err(format!(
                    "the gRPC port would be {} + 1000, past 65535: set grpc_listen",
                    http.port()
                )),
            },
        }
    }

    /// The URL this node is listed under.
    pub fn advertised_url(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        self.advertise_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{bound}"))
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
    fn values_from_the_environment_or_flags_read_as_in_the_file() {
        let mut s = Settings::default();
        s.set("sync_poll_ms", "250").unwrap();
        s.set("listen", "0.0.0.0:9000").unwrap();
        s.set("trust_forwarded_for", "true").unwrap();
        s.set("log_format", "json").unwrap();
        s.set("database", "postgres://u:p@db/cairn").unwrap();
        s.set("log_level", "5").unwrap();
        assert_eq!(s.sync_poll_ms.get(), Duration::from_millis(250));
        assert_eq!(s.listen.port(), 9000);
        assert!(s.trust_forwarded_for);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(
            s.database.as_ref().unwrap().expose_secret(),
            "postgres://u:p@db/cairn"
        );
        assert_eq!(s.log_level, "5");
        s.set("grpc_listen", "off").unwrap();
        assert_eq!(s.grpc_listen, GrpcListen::Off);
        s.set("grpc_listen", "127.0.0.1:19848").unwrap();
        assert_eq!(s.grpc_listen.to_string(), "127.0.0.1:19848");
        assert!(s
            .set("grpc_listen", "9848")
            .unwrap_err()
            .contains("grpc_listen"));
        // Text settings take the text as it is, quotes included.
        s.set("database", "\"postgres://db\"").unwrap();
        assert_eq!(
            s.database.as_ref().unwrap().expose_secret(),
            "\"postgres://db\""
        );
        assert!(
            s.set("sync_poll_ms", "0x64").is_err(),
            "numbers are plain decimals"
        );
        assert!(s.set("trust_forwarded_for", "yes").is_err());
        let err = s.set("sync_poll_ms", "soon").unwrap_err();
        assert!(err.contains("sync_poll_ms"), "{err}");
        assert!(s
            .set("lissen", "x")
            .unwrap_err()
            .contains("unknown setting"));
    }

    #[test]
    fn every_setting_is_listed_once_with_its_default() {
        let keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        let listen = SETTINGS.iter().find(|s| s.key == "listen").unwrap();
        assert_eq!((listen.default)(), "127.0.0.1:8848");
        assert_eq!(listen.flag_name(), "listen");
        let password = SETTINGS.iter().find(|s| s.key == "admin_password").unwrap();
        assert!(!password.flag, "a password is never a flag");
        let poll = SETTINGS.iter().find(|s| s.key == "sync_poll_ms").unwrap();
        assert_eq!(
            ((poll.default)(), poll.flag_name()),
            ("100".to_owned(), "sync-poll-ms".to_owned())
        );
    }

    #[test]
    fn grpc_is_on_the_http_port_plus_1000_unless_told_otherwise() {
        let mut s = Settings::default();
        let http: SocketAddr = "127.0.0.1:8848".parse().unwrap();
        assert_eq!(
            s.grpc_address(http),
            Ok(Some("127.0.0.1:9848".parse().unwrap()))
        );
        assert!(s.grpc_address("127.0.0.1:65000".parse().unwrap()).is_err());
        s.listen = "127.0.0.1:0".parse().unwrap();
        let random: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        assert_eq!(
            s.grpc_address(random),
            Ok(Some("127.0.0.1:0".parse().unwrap()))
        );
        s.grpc_listen = GrpcListen::Off;
        assert_eq!(s.grpc_address(http), Ok(None));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::from_toml("admin_password = \"hunter22\"").unwrap();
        assert!(!format!("{s:?}").contains("hunter22"));
        assert_eq!(s.admin_password.unwrap().expose_secret(), "hunter22");
    }
}
