//! Rust client for Cairn: read configs (raw, or typed by their format), publish with
//! compare-and-set, watch them through one long-poll loop, keep working from local
//! snapshots when no server answers, and merge them with arguments, environment and
//! files in a layered [`layered::Manager`].
//!
//! # Quick start
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_client::Error> {
//! use cairn_client::{Client, Key, Publish};
//!
//! #[derive(serde::Deserialize)]
//! struct Settings { port: u16 }
//!
//! let client = Client::builder("http://127.0.0.1:8848")  // or "http://a:8848,http://b:8848"
//!     .credentials("admin", "secret-password")           // token fetched and renewed
//!     .snapshot_dir("/var/lib/myapp/cairn")              // served when no server answers
//!     .build()?;
//! let key = Key::parse("public/DEFAULT_GROUP/app.yaml")?;
//! client.publish(&key, &Publish::new("port: 8080\n")).await?;
//! let settings: Settings = client.get_as(&key).await?.expect("just published");
//! assert_eq!(settings.port, 8080);
//!
//! // Called with each change in order, never with stale content.
//! let listener = client
//!     .add_listener(key, |change| println!("now: {:?}", change.config.and_then(|c| c.content)))
//!     .await?;
//! # listener.remove();
//! # Ok(()) }
//! ```
//!
//! Every key a client watches, through [`Client::add_listener`] and
//! [`Client::watch_stream`] alike, shares one loop of batched long polls. Runnable
//! examples are in `examples/` (`cargo run -p cairn-client --example quickstart`).
//!
//! This crate depends on no server crate; its types mirror the API's JSON.
//!
//! # Features
//!
//! - `layered` (default): the [`layered`] module, with file watching; it turns on `yaml`
//!   and `toml`.
//! - `yaml`, `toml`: reading configs of these formats typed, with [`Client::get_as`].
//!
//! With `default-features = false` the crate is [`Client`] alone, with JSON and
//! properties decoding.

#![warn(missing_docs)]

mod format;
#[cfg(feature = "layered")]
pub mod layered;
mod lenient;
mod local;
mod patterns;
mod types;
mod watch;

pub use patterns::PatternStream;
/// Tokens and access-key secrets arrive as `SecretString`; `expose_secret()` reads one.
pub use secrecy::{ExposeSecret, SecretString};
pub use types::*;
pub use watch::{Listener, WatchStream};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use url::{Host, Url};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request; `code` is stable, `message` is for people.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// A machine-readable code such as `config_not_found` or `cas_conflict`;
        /// `http_error` when the answer was not an API error body.
        code: String,
        /// What went wrong, for people.
        message: String,
    },
    /// The namespace requires review: nothing changed yet, and this change request
    /// waits for another person to approve it.
    #[error("namespace {} requires review: change request {} is open for another person to approve", .0.namespace, .0.id)]
    PendingReview(Box<ChangeRequest>),
    /// No node could be reached, the connection broke or timed out, or the answer could
    /// not be read.
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    /// A server address that is not an `http` or `https` URL with a host, or no address.
    #[error("invalid server address {0:?}")]
    BadUrl(String),
    /// A key path that is not `namespace/group/data_id` with valid names.
    #[error("{0:?} is not of the form namespace/group/data_id")]
    BadKey(String),
    /// The layered manager has no value at this key.
    #[error("no configuration value at {key:?}")]
    Missing {
        /// The dotted key asked for.
        key: String,
    },
    /// The layered manager's value at this key does not convert to the requested type.
    #[error("configuration value {key:?} does not fit the requested type: {message}")]
    Value {
        /// The dotted key asked for.
        key: String,
        /// Why the value does not convert.
        message: String,
    },
    /// A source of the layered manager cannot be read.
    #[error("cannot read configuration source {origin}: {message}")]
    Source {
        /// The source: a file path or a config key.
        origin: String,
        /// Why it cannot be read or parsed.
        message: String,
    },
    /// A CA or client certificate file given to [`ClientBuilder::ca_file`] or
    /// [`ClientBuilder::client_certificate`] cannot be read or used.
    #[error("cannot use TLS file {path}: {message}")]
    TlsFile {
        /// The file.
        path: String,
        /// Why not.
        message: String,
    },
    /// A config's content does not parse as its format or does not fit the requested type
    /// ([`Client::get_as`]).
    #[error("config {key} ({format}) does not fit the requested type: {message}")]
    Decode {
        /// The config's key, `namespace/group/data_id`.
        key: String,
        /// The config's format.
        format: String,
        /// The parser's error.
        message: String,
    },
}

impl Error {
    /// The API error code, if the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How long an export or import may take: a namespace of thousands of configs is
/// more than an ordinary request.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

/// A result whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings for a [`Client`].
pub struct ClientBuilder {
    server: String,
    token: Option<String>,
    timeout: Duration,
    labels: Vec<String>,
    client_ip: Option<String>,
    snapshot_dir: Option<std::path::PathBuf>,
    failover_dir: Option<std::path::PathBuf>,
    credentials: Option<(String, String)>,
    discover_every: Option<Duration>,
    ca_file: Option<std::path::PathBuf>,
    client_certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl ClientBuilder {
    /// Learn the cluster's live nodes (as [`Client::discover`] does) on the first
    /// request and again every `interval` after, so that requests fail over to nodes
    /// this client was not given, and nodes added later are found. Off by default.
    pub fn discover_every(mut self, interval: Duration) -> Self {
        self.discover_every = Some(interval);
        self
    }

    /// Log in with this user name and password; the client gets a token on its first
    /// request and a new one before the current one expires.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// The access token from [`Client::login`].
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Labels this client declares (`zone=eu-1`), matched by gray releases' rules.
    pub fn labels(mut self, labels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// The IP this client wants gray releases to see it as (default: its connection's).
    pub fn client_ip(mut self, ip: impl Into<String>) -> Self {
        self.client_ip = Some(ip.into());
        self
    }

    /// Where every config received is kept (written atomically); when no server
    /// answers, reads are served from here and a log line says so.
    pub fn snapshot_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.snapshot_dir = Some(dir.into());
        self
    }

    /// An operator's override: a file `dir/namespace/group/data_id` is served instead of
    /// the server's content, for as long as it exists.
    pub fn failover_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.failover_dir = Some(dir.into());
        self
    }

    /// Trust the CA certificates in this PEM file for `https://` servers, besides the
    /// system's roots (for a cluster whose certificates a private CA signed).
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Present this certificate (PEM chain) with its private key (PEM) to servers that
    /// ask for client certificates (`tls_client_ca`).
    pub fn client_certificate(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.client_certificate = Some((cert.into(), key.into()));
        self
    }

    /// The extra roots and the client identity the TLS settings name, read now so that
    /// a wrong path fails at `build`, not at the first request.
    fn tls_files(&self) -> Result<(Vec<reqwest::Certificate>, Option<reqwest::Identity>)> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| Error::TlsFile {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        };
        let roots = match &self.ca_file {
            None => Vec::new(),
            Some(path) => reqwest::Certificate::from_pem_bundle(&read(path)?)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| Error::TlsFile {
                    path: path.display().to_string(),
                    message: "no PEM certificate in it".into(),
                })?,
        };
        let identity = match &self.client_certificate {
            None => None,
            Some((cert, key)) => {
                let mut pem = read(key)?;
                pem.push(b'\n');
                pem.extend(read(cert)?);
                Some(
                    reqwest::Identity::from_pem(&pem).map_err(|e| Error::TlsFile {
                        path: format!("{} and {}", cert.display(), key.display()),
                        message: format!("not a PEM certificate and private key: {e}"),
                    })?,
                )
            }
        };
        Ok((roots, identity))
    }

    /// Timeout of ordinary requests (watches add their own hold time). Default 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Makes the client, without contacting any server; fails with [`Error::BadUrl`] if a
    /// server address is not an `http` or `https` URL.
    pub fn build(self) -> Result<Client> {
        let endpoints = self
            .server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_endpoint)
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::BadUrl(self.server));
        }
        let (roots, identity) = self.tls_files()?;
        let pool = || {
            let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(3));
            for root in &roots {
                builder = builder.add_root_certificate(root.clone());
            }
            if let Some(identity) = &identity {
                builder = builder.identity(identity.clone());
            }
            builder.build()
        };
        Ok(Client {
            http: pool()?,
            watch_http: pool()?,
            endpoints: Arc::new(RwLock::new(endpoints)),
            current: Arc::new(AtomicUsize::new(0)),
            token: self.token,
            timeout: self.timeout,
            labels: (!self.labels.is_empty()).then(|| self.labels.join(",")),
            client_ip: self.client_ip,
            local: Arc::new(local::Local::new(self.snapshot_dir, self.failover_dir)),
            session: self.credentials.map(|(username, password)| {
                Arc::new(Session {
                    username,
                    password: password.into(),
                    token: tokio::sync::Mutex::new(None),
                })
            }),
            watcher: Arc::default(),
            discovery: self.discover_every.map(|every| {
                Arc::new(Discovery {
                    every,
                    next: std::sync::Mutex::new(None),
                })
            }),
        })
    }
}

fn parse_endpoint(server: &str) -> Result<Url> {
    Url::parse(server.trim_end_matches('/'))
        .ok()
        .filter(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some())
        .ok_or_else(|| Error::BadUrl(server.to_owned()))
}

/// Points `url` at another node: same path and query, that node's scheme, host and port.
fn rebase(url: &mut Url, endpoint: &Url) {
    let _ = url.set_scheme(endpoint.scheme());
    let _ = url.set_host(endpoint.host_str());
    let _ = url.set_port(endpoint.port());
}

/// A connection to a Cairn server, or to the nodes of a cluster: when a node cannot be
/// reached, a request goes to the next one (nodes differ only in scheme, host and port).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Long polls have connections of their own: a server parks a connection that has
    /// only ever carried long polls more cheaply than one that served other requests.
    watch_http: reqwest::Client,
    endpoints: Arc<RwLock<Vec<Url>>>,
    /// The endpoint that answered last; requests start there.
    current: Arc<AtomicUsize>,
    token: Option<String>,
    timeout: Duration,
    /// Sent as `X-Cairn-Labels`.
    labels: Option<String>,
    /// Sent as `X-Cairn-Client-Ip`.
    client_ip: Option<String>,
    /// Snapshot and failover directories.
    local: Arc<local::Local>,
    /// Credentials, and the token they last earned, when the client logs itself in.
    session: Option<Arc<Session>>,
    /// The keys this client watches, shared by clones that send the same identity.
    watcher: Arc<watch::Watcher>,
    /// When set, the node list is refreshed from the cluster now and then.
    discovery: Option<Arc<Discovery>>,
}

/// A client's periodic learning of the cluster's nodes.
struct Discovery {
    every: Duration,
    /// When the next refresh is due; `None`: at the first request.
    next: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A client that logs itself in: its credentials and current token with the time it
/// should be renewed.
struct Session {
    username: String,
    password: SecretString,
    token: tokio::sync::Mutex<Option<(SecretString, std::time::Instant)>>,
}

impl Client {
    /// Starts building a client for the server at `server` (e.g. `http://127.0.0.1:8848`),
    /// or for several nodes given as a comma-separated list.
    pub fn builder(server: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            server: server.into(),
            token: None,
            timeout: Duration::from_secs(10),
            labels: Vec::new(),
            client_ip: None,
            snapshot_dir: None,
            failover_dir: None,
            credentials: None,
            discover_every: None,
            ca_file: None,
            client_certificate: None,
        }
    }

    /// The same client, sending `token` from now on.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self.watcher = Arc::default();
        self
    }

    /// The node requests go to first.
    pub fn server(&self) -> String {
        let endpoints = self.endpoints.read().expect("endpoint list poisoned");
        endpoints[self.current.load(Ordering::Relaxed) % endpoints.len()].to_string()
    }

    /// Every node this client knows, the current one first.
    pub fn servers(&self) -> Vec<String> {
        let endpoints = self.endpoints.read().expect("endpoint list poisoned");
        let start = self.current.load(Ordering::Relaxed);
        (0..endpoints.len())
            .map(|i| endpoints[(start + i) % endpoints.len()].to_string())
            .collect()
    }

    /// Learns the cluster's live nodes from the server, so that later requests can fail
    /// over to any of them. The nodes this client was given stay first (they may be a
    /// load balancer or a proxy); nodes advertising an unspecified address such as
    /// `0.0.0.0` are skipped. Returns every node now known.
    pub async fn discover(&self) -> Result<Vec<String>> {
        let nodes = self.nodes().await?;
        let mut endpoints = self.endpoints.write().expect("endpoint list poisoned");
        for node in &nodes {
            let Ok(url) = parse_endpoint(&node.address) else {
                continue;
            };
            let unspecified = match url.host() {
                Some(Host::Ipv4(ip)) => ip.is_unspecified(),
                Some(Host::Ipv6(ip)) => ip.is_unspecified(),
                _ => false,
            };
            if !unspecified && !endpoints.contains(&url) {
                endpoints.push(url);
            }
        }
        drop(endpoints);
        Ok(self.servers())
    }

    /// Starts a node-list refresh in the background when one is due.
    fn discover_if_due(&self) {
        let Some(discovery) = &self.discovery else {
            return;
        };
        let now = std::time::Instant::now();
        {
            let mut next = discovery.next.lock().expect("discovery poisoned");
            if next.is_some_and(|due| now < due) {
                return;
            }
            *next = Some(now + discovery.every);
        }
        // The refresh's own request must not start another one.
        let mut quiet = self.clone();
        quiet.discovery = None;
        tokio::spawn(async move {
            if let Err(e) = quiet.discover().await {
                tracing::debug!(error = %e, "could not refresh the node list");
            }
        });
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = Url::parse(&self.server()).expect("endpoints are valid URLs");
        url.path_segments_mut()
            .expect("http URLs have paths")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn config_url(&self, key: &Key, tail: &[&str]) -> Url {
        let mut segments = vec![
            "api",
            "v1",
            "configs",
            &key.namespace,
            &key.group,
            &key.data_id,
        ];
        segments.extend_from_slice(tail);
        self.url(&segments)
    }

    /// The same client, declaring `labels` to gray releases.
    pub fn with_labels(mut self, labels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let labels: Vec<String> = labels.into_iter().map(Into::into).collect();
        self.labels = (!labels.is_empty()).then(|| labels.join(","));
        self.with_new_identity()
    }

    /// The same client, asking gray releases to see it as `ip`.
    pub fn with_client_ip(mut self, ip: impl Into<String>) -> Self {
        self.client_ip = Some(ip.into());
        self.with_new_identity()
    }

    /// Watches and snapshots depend on what gray releases serve this client, so a
    /// client with another identity keeps both apart.
    fn with_new_identity(mut self) -> Self {
        self.watcher = Arc::default();
        self.local = Arc::new(
            self.local
                .for_identity(self.labels.as_deref(), self.client_ip.as_deref()),
        );
        self
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut request = self.http.request(method, url).timeout(self.timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(labels) = &self.labels {
            request = request.header("x-cairn-labels", labels);
        }
        if let Some(ip) = &self.client_ip {
            request = request.header("x-cairn-client-ip", ip);
        }
        request
    }

    /// The session's token, logging in first when there is none or it is due for renewal
    /// (at four fifths of its lifetime).
    async fn session_token(&self, session: &Session) -> Result<SecretString> {
        let mut token = session.token.lock().await;
        if let Some((value, renew_at)) = token.as_ref() {
            if std::time::Instant::now() < *renew_at {
                return Ok(value.clone());
            }
        }
        let request = self
            .http
            .post(self.url(&["api", "v1", "auth", "login"]))
            .timeout(self.timeout)
            .json(&serde_json::json!({
                "username": session.username,
                "password": session.password.expose_secret(),
            }))
            .build()?;
        let login: LoginResponse = self.send_built(request).await?.json().await?;
        let renew_at = std::time::Instant::now() + Duration::from_secs(login.expires_in * 4 / 5);
        *token = Some((login.token.clone(), renew_at));
        Ok(login.token)
    }

    /// Sends a request with the session's token (when the client logs itself in) to the
    /// current node, or the next ones while a node cannot be reached.
    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response> {
        self.discover_if_due();
        let mut request = request.build()?;
        if let Some(session) = &self.session {
            if !request.url().path().ends_with("/api/v1/auth/login") {
                let token = self.session_token(session).await?;
                let bearer = format!("Bearer {}", token.expose_secret());
                if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&bearer) {
                    value.set_sensitive(true);
                    request
                        .headers_mut()
                        .insert(reqwest::header::AUTHORIZATION, value);
                }
            }
        }
        self.send_built(request).await
    }

    /// Sends a built request to the current node, and to the next ones while a node
    /// cannot be connected to.
    async fn send_built(&self, request: reqwest::Request) -> Result<reqwest::Response> {
        let watch =
            request.method() == Method::POST && request.url().path().ends_with("/api/v1/watch");
        let http = if watch { &self.watch_http } else { &self.http };
        // Reads, and the watch (a POST that changes nothing), may go again to another node.
        let retryable = request.method() == Method::GET || watch;
        let endpoints = self
            .endpoints
            .read()
            .expect("endpoint list poisoned")
            .clone();
        let start = self.current.load(Ordering::Relaxed);
        let mut unreachable = None;
        for step in 0..endpoints.len() {
            let index = (start + step) % endpoints.len();
            let mut attempt = request
                .try_clone()
                .expect("request bodies are buffered, never streamed");
            rebase(attempt.url_mut(), &endpoints[index]);
            match http.execute(attempt).await {
                Ok(response) => {
                    if step > 0 {
                        self.current.store(index, Ordering::Relaxed);
                    }
                    return Self::check(response).await;
                }
                // Nothing was sent, so any request may go to the next node; reads may
                // also be repeated after a broken or timed-out connection.
                Err(e) if e.is_connect() || (retryable && !e.is_builder()) => unreachable = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Http(
            unreachable.expect("there is at least one endpoint"),
        ))
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response> {
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(body) => Error::Api {
                status,
                code: body.code,
                message: body.message,
            },
            Err(_) => Error::Api {
                status,
                code: "http_error".to_owned(),
                message: text,
            },
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        Ok(self.send(request).await?.json().await?)
    }

    /// Sends a change; a `202` (kept for review) is [`Error::PendingReview`].
    async fn change(&self, request: RequestBuilder) -> Result<reqwest::Response> {
        let response = self.send(request).await?;
        if response.status() == StatusCode::ACCEPTED {
            return Err(Error::PendingReview(Box::new(response.json().await?)));
        }
        Ok(response)
    }

    /// Exchanges a user name and password for a token.
    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResponse> {
        let url = self.url(&["api", "v1", "auth", "login"]);
        self.json(
            self.request(Method::POST, url)
                .json(&serde_json::json!({ "username": username, "password": password })),
        )
        .await
    }

    /// A config with its content and metadata; `None` if it does not exist.
    ///
    /// A file in the failover directory wins over the server. What the server answers is
    /// kept in the snapshot directory; when no server can be reached, the snapshot is
    /// served instead (and a warning logged).
    pub async fn get(&self, key: &Key) -> Result<Option<Config>> {
        if let Some(config) = self.local.failover(key) {
            return Ok(Some(config));
        }
        match self.fetch(key).await {
            // Unreachable, or a proxy in front of it says no server is behind it.
            Err(e @ (Error::Http(_) | Error::Api { status: 500.., .. })) => {
                match self.local.snapshot(key) {
                    Some(config) => {
                        tracing::warn!(key = %key, error = %e, "no server answers; serving the local snapshot");
                        Ok(Some(config))
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// A config from the server only (no failover file, no snapshot fallback); what it
    /// answers is kept as the snapshot.
    pub(crate) async fn fetch(&self, key: &Key) -> Result<Option<Config>> {
        let request = self
            .request(Method::GET, self.config_url(key, &[]))
            .query(&[("view", "json")]);
        match self.json::<Config>(request).await {
            Ok(config) => {
                self.local.keep(key, &config);
                Ok(Some(config))
            }
            Err(Error::Api {
                status: 404, code, ..
            }) if code == "config_not_found" => {
                self.local.forget(key);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A config's content deserialized by its format (yaml, json, toml, or properties as
    /// a flat map of its keys, whose strings convert to the numbers and bools `T` asks
    /// for); `None` if it does not exist. YAML and TOML need the `yaml` and `toml`
    /// features (on by default); without them such a config is an [`Error::Decode`].
    pub async fn get_as<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>> {
        let Some(config) = self.get(key).await? else {
            return Ok(None);
        };
        let content = config.content.unwrap_or_default();
        let fail = |message: String| Error::Decode {
            key: key.to_string(),
            format: config.format.clone(),
            message,
        };
        // Read as the layered manager reads it: properties' strings convert to the
        // numbers and bools `T` asks for. Formats with no structure of their own are
        // taken as JSON.
        let value = match config.format.parse().unwrap_or_default() {
            cairn_core::Format::Text | cairn_core::Format::Xml | cairn_core::Format::Html => {
                serde_json::from_str(&content).map_err(|e| fail(e.to_string()))?
            }
            format => format::parse(format, &content).map_err(fail)?,
        };
        let value = lenient::from_value(value).map_err(|e| fail(e.to_string()))?;
        Ok(Some(value))
    }

    /// Creates or replaces a config.
    ///
    /// In a namespace that requires review, a person's publish is kept as a change
    /// request: [`Error::PendingReview`] carries it.
    pub async fn publish(&self, key: &Key, publish: &Publish) -> Result<Config> {
        let request = self
            .request(Method::PUT, self.config_url(key, &[]))
            .json(publish);
        Ok(self.change(request).await?.json().await?)
    }

    /// Deletes a config, optionally only if its md5 is `cas_md5`.
    pub async fn delete(&self, key: &Key, cas_md5: Option<&str>) -> Result<()> {
        let options = ChangeOptions {
            cas_md5: cas_md5.map(str::to_owned),
            ..ChangeOptions::default()
        };
        self.delete_with(key, &options).await
    }

    /// Deletes a config as `options` say (where review is required, a person's
    /// deletion is kept as a change request: [`Error::PendingReview`]).
    pub async fn delete_with(&self, key: &Key, options: &ChangeOptions) -> Result<()> {
        let mut request = self.request(Method::DELETE, self.config_url(key, &[]));
        if let Some(md5) = &options.cas_md5 {
            request = request.query(&[("cas_md5", md5)]);
        }
        if let Some(comment) = &options.comment {
            request = request.query(&[("comment", comment)]);
        }
        if options.emergency {
            request = request.query(&[("emergency", "true")]);
        }
        self.change(request).await.map(drop)
    }

    /// The change requests the caller may read, newest first: of a namespace and in a
    /// state (`open`, `approved`, `rejected`, `stale`) when given.
    pub async fn reviews(
        &self,
        namespace: Option<&str>,
        status: Option<&str>,
        page: u32,
        page_size: u32,
    ) -> Result<Page<ChangeRequest>> {
        let mut request = self
            .request(Method::GET, self.url(&["api", "v1", "reviews"]))
            .query(&[("page", page), ("page_size", page_size)]);
        if let Some(ns) = namespace {
            request = request.query(&[("namespace", ns)]);
        }
        if let Some(status) = status {
            request = request.query(&[("status", status)]);
        }
        self.json(request).await
    }

    /// A change request with its diff and timeline.
    pub async fn review(&self, id: i64) -> Result<ChangeRequestDetail> {
        let url = self.url(&["api", "v1", "reviews", &id.to_string()]);
        self.json(self.request(Method::GET, url)).await
    }

    /// Approves someone else's open change request and releases it; a request whose
    /// config moved meanwhile is marked stale instead (`change_request_stale`).
    pub async fn approve(&self, id: i64, comment: &str) -> Result<ChangeRequest> {
        self.review_step(id, "approve", serde_json::json!({ "comment": comment }))
            .await
    }

    /// Rejects a change request (a reviewer must say why), or withdraws one's own.
    pub async fn reject(&self, id: i64, comment: &str) -> Result<ChangeRequest> {
        self.review_step(id, "reject", serde_json::json!({ "comment": comment }))
            .await
    }

    /// Moves one's own change request onto the config's current content, with new
    /// content or the same, to be reviewed again.
    pub async fn rebase(
        &self,
        id: i64,
        content: Option<&str>,
        comment: &str,
    ) -> Result<ChangeRequest> {
        let body = serde_json::json!({ "content": content, "comment": comment });
        self.review_step(id, "rebase", body).await
    }

    async fn review_step(
        &self,
        id: i64,
        step: &str,
        body: serde_json::Value,
    ) -> Result<ChangeRequest> {
        let url = self.url(&["api", "v1", "reviews", &id.to_string(), step]);
        self.json(self.request(Method::POST, url).json(&body)).await
    }

    /// Lists and searches configs.
    pub async fn list(&self, query: &ListQuery) -> Result<Page<Config>> {
        let url = self.url(&["api", "v1", "configs"]);
        self.json(self.request(Method::GET, url).query(query)).await
    }

    /// A page of a config's history, newest first.
    pub async fn history(
        &self,
        key: &Key,
        page: u32,
        page_size: u32,
    ) -> Result<Page<HistoryEntry>> {
        let request = self
            .request(Method::GET, self.config_url(key, &["history"]))
            .query(&[("page", page), ("page_size", page_size)]);
        self.json(request).await
    }

    /// The clients watching a config: on the node this client talks to, or with
    /// `cluster` on every live node.
    pub async fn listeners(&self, key: &Key, cluster: bool) -> Result<Listeners> {
        let request = self
            .request(Method::GET, self.config_url(key, &["listeners"]))
            .query(&[("cluster", cluster)]);
        self.json(request).await
    }

    /// One historical version, with content.
    pub async fn history_entry(&self, key: &Key, revision: i64) -> Result<HistoryEntry> {
        let revision = revision.to_string();
        self.json(self.request(Method::GET, self.config_url(key, &["history", &revision])))
            .await
    }

    /// Publishes revision `revision`'s content again as a new revision.
    pub async fn rollback(&self, key: &Key, revision: i64) -> Result<Config> {
        self.rollback_with(key, revision, &ChangeOptions::default())
            .await
    }

    /// Rolls back as `options` say (where review is required, a person's rollback is
    /// kept as a change request: [`Error::PendingReview`]).
    pub async fn rollback_with(
        &self,
        key: &Key,
        revision: i64,
        options: &ChangeOptions,
    ) -> Result<Config> {
        let request = self
            .request(Method::POST, self.config_url(key, &["rollback"]))
            .json(&serde_json::json!({
                "revision": revision,
                "cas_md5": options.cas_md5,
                "comment": options.comment,
                "emergency": options.emergency,
            }));
        Ok(self.change(request).await?.json().await?)
    }

    /// A unified diff from revision `from` to `to` (default: the current content).
    pub async fn diff(&self, key: &Key, from: i64, to: Option<i64>) -> Result<String> {
        let mut request = self
            .request(Method::GET, self.config_url(key, &["diff"]))
            .query(&[("from", from)]);
        if let Some(to) = to {
            request = request.query(&[("to", to)]);
        }
        Ok(self.send(request).await?.text().await?)
    }

    /// A namespace's configs that this client may read (those matching the `group` and
    /// `data_id` wildcards when given) as a Nacos export zip, with `.metadata.yml`.
    pub async fn export_namespace(
        &self,
        namespace: &str,
        group: Option<&str>,
        data_id: Option<&str>,
    ) -> Result<Vec<u8>> {
        let options = ExportOptions {
            group: group.map(str::to_owned),
            data_id: data_id.map(str::to_owned),
            ..ExportOptions::default()
        };
        self.export_namespace_with(namespace, &options).await
    }

    /// As [`Client::export_namespace`], with [`ExportOptions`]: Cairn's format (JSON
    /// lines with every config's md5 and gray release, and with `history` its earlier
    /// versions; [`Client::import_namespace`] reads both formats).
    pub async fn export_namespace_with(
        &self,
        namespace: &str,
        options: &ExportOptions,
    ) -> Result<Vec<u8>> {
        let url = self.url(&["api", "v1", "namespaces", namespace, "export"]);
        let format = match options.format.as_str() {
            "" => "nacos",
            other => other,
        };
        let mut request = self
            .request(Method::GET, url)
            .timeout(TRANSFER_TIMEOUT)
            .query(&[("format", format)]);
        if let Some(group) = &options.group {
            request = request.query(&[("group", group)]);
        }
        if let Some(data_id) = &options.data_id {
            request = request.query(&[("data_id", data_id)]);
        }
        if options.history {
            request = request.query(&[("history", "true")]);
        }
        Ok(self.send(request).await?.bytes().await?.to_vec())
    }

    /// Imports a Nacos export zip (either of Nacos's layouts) or a file in Cairn's
    /// format into `namespace`, all or nothing. `policy` says what to do about configs that exist: `abort`, `skip` or
    /// `overwrite`.
    pub async fn import_namespace(
        &self,
        namespace: &str,
        zip: Vec<u8>,
        policy: &str,
    ) -> Result<ImportReport> {
        let options = ImportOptions {
            policy: policy.to_owned(),
            ..ImportOptions::default()
        };
        self.import_namespace_with(namespace, zip, &options).await
    }

    /// Imports a Nacos export zip into `namespace` as `options` say.
    pub async fn import_namespace_with(
        &self,
        namespace: &str,
        zip: Vec<u8>,
        options: &ImportOptions,
    ) -> Result<ImportReport> {
        let url = self.url(&["api", "v1", "namespaces", namespace, "import"]);
        let skip_invalid = if options.skip_invalid {
            "true"
        } else {
            "false"
        };
        let request = self
            .request(Method::POST, url)
            .timeout(TRANSFER_TIMEOUT)
            .query(&[
                ("policy", options.policy.as_str()),
                ("skip_invalid", skip_invalid),
            ])
            .header(
                reqwest::header::CONTENT_TYPE,
                if zip.first() == Some(&b'{') {
                    "application/x-ndjson"
                } else {
                    "application/zip"
                },
            )
            .body(zip);
        self.json(request).await
    }

    /// Copies configs of namespace `from` (this client may read there; `group` and
    /// `data_id` wildcards narrow them) into `namespace`, into `to_group` when given, as
    /// an import does: all or nothing, `policy` for configs that exist.
    pub async fn clone_into(
        &self,
        namespace: &str,
        from: &str,
        group: Option<&str>,
        data_id: Option<&str>,
        to_group: Option<&str>,
        policy: &str,
    ) -> Result<ImportReport> {
        let url = self.url(&["api", "v1", "namespaces", namespace, "clone"]);
        let body = serde_json::json!({
            "from": from, "group": group, "data_id": data_id, "to_group": to_group,
            "policy": policy,
        });
        let request = self
            .request(Method::POST, url)
            .timeout(TRANSFER_TIMEOUT)
            .json(&body);
        self.json(request).await
    }

    /// One poll of a pattern watch: the configs `patterns` match that changed after
    /// `since` (the `seq` of the previous poll), waiting up to `timeout` for one. With
    /// `since` 0 (or older than the server keeps) it answers at once with every
    /// matching config, `complete`. Configs created after the watch began, and
    /// deletions (`exists: false`), are changes like any other.
    ///
    /// ```no_run
    /// # async fn run(client: cairn_client::Client) -> cairn_client::Result<()> {
    /// use cairn_client::WatchPattern;
    /// let patterns = [WatchPattern::namespace("prod").group("web").data_id("*.yaml")];
    /// let mut since = 0;
    /// loop {
    ///     let poll = client
    ///         .watch_pattern(&patterns, since, std::time::Duration::from_secs(30))
    ///         .await?;
    ///     for change in &poll.changed {
    ///         println!("{}/{} is now {:?}", change.group, change.data_id, change.revision);
    ///     }
    ///     since = poll.seq;
    /// }
    /// # }
    /// ```
    pub async fn watch_pattern(
        &self,
        patterns: &[WatchPattern],
        since: i64,
        timeout: Duration,
    ) -> Result<PatternChanges> {
        let url = self.url(&["api", "v1", "watch"]);
        let request = self
            .request(Method::POST, url)
            .timeout(timeout + self.timeout)
            .json(&serde_json::json!({
                "patterns": patterns,
                "since": since,
                "timeout_ms": timeout.as_millis() as u64,
            }));
        let response: WatchResponse = self.json(request).await?;
        Ok(PatternChanges {
            changed: response.changed,
            seq: response.seq.unwrap_or(since),
            complete: response.complete.unwrap_or(false),
        })
    }

    /// One long poll: returns the keys whose md5 differs from the one given, waiting up
    /// to `timeout` for a change; empty when nothing changed.
    pub async fn watch(&self, keys: &[WatchKey], timeout: Duration) -> Result<Vec<ChangedKey>> {
        let url = self.url(&["api", "v1", "watch"]);
        let request = self
            .request(Method::POST, url)
            .timeout(timeout + self.timeout)
            .json(&serde_json::json!({ "keys": keys, "timeout_ms": timeout.as_millis() as u64 }));
        let response: WatchResponse = self.json(request).await?;
        Ok(response.changed)
    }

    /// Creates or replaces a config's gray release.
    pub async fn gray_publish(&self, key: &Key, gray: &GrayPublish) -> Result<Gray> {
        self.json(
            self.request(Method::PUT, self.config_url(key, &["gray"]))
                .json(gray),
        )
        .await
    }

    /// A config's gray release with its content; `None` if it has none.
    pub async fn gray(&self, key: &Key) -> Result<Option<Gray>> {
        match self
            .json(self.request(Method::GET, self.config_url(key, &["gray"])))
            .await
        {
            Ok(gray) => Ok(Some(gray)),
            Err(Error::Api {
                status: 404, code, ..
            }) if code == "gray_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes the gray content the main content for everyone.
    pub async fn gray_promote(&self, key: &Key) -> Result<Config> {
        self.json(self.request(Method::POST, self.config_url(key, &["gray", "promote"])))
            .await
    }

    /// Ends the gray release; its clients go back to the main content.
    pub async fn gray_abandon(&self, key: &Key) -> Result<()> {
        self.send(self.request(Method::DELETE, self.config_url(key, &["gray"])))
            .await
            .map(drop)
    }

    /// The schemas attached in `namespace`, or in every namespace you see.
    pub async fn schemas(&self, namespace: Option<&str>) -> Result<Vec<Schema>> {
        let mut url = self.url(&["api", "v1", "schemas"]);
        if let Some(ns) = namespace {
            url.query_pairs_mut().append_pair("namespace", ns);
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// The schema attached at `namespace/group/data_id` (the last two exact or `*`
    /// wildcards), if any.
    pub async fn schema(
        &self,
        namespace: &str,
        group: &str,
        data_id: &str,
    ) -> Result<Option<Schema>> {
        let url = self.url(&["api", "v1", "schemas", namespace, group, data_id]);
        match self.json(self.request(Method::GET, url)).await {
            Ok(schema) => Ok(Some(schema)),
            Err(Error::Api {
                status: 404, code, ..
            }) if code == "schema_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Attaches a schema or changes it (admin of the namespace). Refused when configs
    /// as they are now break it, unless `set.force`.
    pub async fn set_schema(
        &self,
        namespace: &str,
        group: &str,
        data_id: &str,
        set: &SchemaSet,
    ) -> Result<Schema> {
        let url = self.url(&["api", "v1", "schemas", namespace, group, data_id]);
        self.json(self.request(Method::PUT, url).json(set)).await
    }

    /// Detaches a schema (admin of the namespace).
    pub async fn remove_schema(
        &self,
        namespace: &str,
        group: &str,
        data_id: &str,
        comment: Option<&str>,
    ) -> Result<()> {
        let mut url = self.url(&["api", "v1", "schemas", namespace, group, data_id]);
        if let Some(comment) = comment {
            url.query_pairs_mut().append_pair("comment", comment);
        }
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// Every version of a schema, newest first.
    pub async fn schema_history(
        &self,
        namespace: &str,
        group: &str,
        data_id: &str,
    ) -> Result<Vec<SchemaVersion>> {
        let url = self.url(&["api", "v1", "schemas", namespace, group, data_id, "history"]);
        self.json(self.request(Method::GET, url)).await
    }

    /// The webhooks of `namespace`, or of every namespace the caller administers.
    pub async fn webhooks(&self, namespace: Option<&str>) -> Result<Vec<Webhook>> {
        let mut url = self.url(&["api", "v1", "webhooks"]);
        if let Some(ns) = namespace {
            url.query_pairs_mut().append_pair("namespace", ns);
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// Subscribes a URL to a namespace's changes (admin of the namespace).
    pub async fn add_webhook(&self, add: &WebhookAdd) -> Result<Webhook> {
        let url = self.url(&["api", "v1", "webhooks"]);
        self.json(self.request(Method::POST, url).json(add)).await
    }

    /// Removes a webhook and its delivery log.
    pub async fn remove_webhook(&self, id: i64) -> Result<()> {
        let url = self.url(&["api", "v1", "webhooks", &id.to_string()]);
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// A page (from 1) of a webhook's deliveries, newest first.
    pub async fn deliveries(&self, id: i64, page: u32, page_size: u32) -> Result<DeliveryPage> {
        let mut url = self.url(&["api", "v1", "webhooks", &id.to_string(), "deliveries"]);
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("page_size", &page_size.to_string());
        self.json(self.request(Method::GET, url)).await
    }

    /// Sends a webhook's delivery again.
    pub async fn redeliver(&self, id: i64, delivery: i64) -> Result<()> {
        let (id, delivery) = (id.to_string(), delivery.to_string());
        let url = self.url(&[
            "api",
            "v1",
            "webhooks",
            &id,
            "deliveries",
            &delivery,
            "redeliver",
        ]);
        self.send(self.request(Method::POST, url)).await.map(drop)
    }

    /// An Apollo app's access keys, with their secrets (admin).
    pub async fn access_keys(&self, app_id: &str) -> Result<Vec<AccessKey>> {
        self.json(self.request(
            Method::GET,
            self.url(&["api", "v1", "apps", app_id, "access-keys"]),
        ))
        .await
    }

    /// Makes an access key for an Apollo app (admin), signing in every namespace; its
    /// clients must then sign.
    pub async fn create_access_key(&self, app_id: &str) -> Result<AccessKey> {
        self.create_access_key_in(app_id, &[]).await
    }

    /// Makes an access key for an Apollo app that signs only in `namespaces` (Apollo
    /// envs); none: every namespace (admin).
    pub async fn create_access_key_in(
        &self,
        app_id: &str,
        namespaces: &[String],
    ) -> Result<AccessKey> {
        let request = self
            .request(
                Method::POST,
                self.url(&["api", "v1", "apps", app_id, "access-keys"]),
            )
            .json(&serde_json::json!({ "namespaces": namespaces }));
        self.json(request).await
    }

    /// Enables or disables an access key (admin).
    pub async fn set_access_key_enabled(
        &self,
        app_id: &str,
        id: &str,
        enabled: bool,
    ) -> Result<()> {
        let request = self
            .request(
                Method::PUT,
                self.url(&["api", "v1", "apps", app_id, "access-keys", id]),
            )
            .json(&serde_json::json!({ "enabled": enabled }));
        self.send(request).await.map(drop)
    }

    /// Deletes an access key (admin).
    pub async fn delete_access_key(&self, app_id: &str, id: &str) -> Result<()> {
        self.send(self.request(
            Method::DELETE,
            self.url(&["api", "v1", "apps", app_id, "access-keys", id]),
        ))
        .await
        .map(drop)
    }

    /// The live nodes of the cluster the server belongs to.
    pub async fn nodes(&self) -> Result<Vec<ClusterNode>> {
        self.json(self.request(Method::GET, self.url(&["api", "v1", "cluster", "nodes"])))
            .await
    }

    /// Stores every sealed value under the server's current encryption key (admin):
    /// the step of a key rotation after every node was restarted with the new key as
    /// `encryption_key_file` and the old one as `encryption_old_key_file`. Repeatable.
    pub async fn rotate_encryption_key(&self) -> Result<KeyRotation> {
        let url = self.url(&["api", "v1", "encryption", "rotate"]);
        // Every stored value is read and maybe rewritten: far longer than one request.
        let request = self
            .request(Method::POST, url)
            .timeout(Duration::from_secs(3600));
        self.json(request).await
    }

    /// Succeeds when the server and its database answer (`/ready`).
    pub async fn ready(&self) -> Result<()> {
        self.send(self.request(Method::GET, self.url(&["ready"])))
            .await
            .map(drop)
    }

    /// Every namespace, with its config count.
    pub async fn namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        self.json(self.request(Method::GET, self.url(&["api", "v1", "namespaces"])))
            .await
    }

    /// One namespace, with its quotas, use and history retention.
    pub async fn namespace(&self, name: &str) -> Result<NamespaceInfo> {
        self.json(self.request(Method::GET, self.url(&["api", "v1", "namespaces", name])))
            .await
    }

    /// Creates a namespace (admin).
    pub async fn create_namespace(&self, name: &str, description: &str) -> Result<NamespaceInfo> {
        let request = self
            .request(Method::POST, self.url(&["api", "v1", "namespaces"]))
            .json(&serde_json::json!({ "name": name, "description": description }));
        self.json(request).await
    }

    /// Changes a namespace's settings (admin, or admin of the namespace).
    pub async fn update_namespace(
        &self,
        name: &str,
        update: &NamespaceUpdate,
    ) -> Result<NamespaceInfo> {
        let request = self
            .request(Method::PUT, self.url(&["api", "v1", "namespaces", name]))
            .json(update);
        self.json(request).await
    }

    /// Deletes an empty namespace (admin); `public` cannot be deleted.
    pub async fn delete_namespace(&self, name: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, self.url(&["api", "v1", "namespaces", name])))
            .await
            .map(drop)
    }

    /// Every user account (admin).
    pub async fn users(&self) -> Result<Vec<UserInfo>> {
        self.json(self.request(Method::GET, self.url(&["api", "v1", "users"])))
            .await
    }

    /// Creates a user with the role `admin` or `user` (admin).
    pub async fn create_user(&self, username: &str, password: &str, role: &str) -> Result<()> {
        let request = self
            .request(Method::POST, self.url(&["api", "v1", "users"]))
            .json(&serde_json::json!({ "username": username, "password": password, "role": role }));
        self.send(request).await.map(drop)
    }

    /// Sets a user's password. Changing your own needs `current` unless you are admin.
    pub async fn set_password(
        &self,
        username: &str,
        password: &str,
        current: Option<&str>,
    ) -> Result<()> {
        let request = self
            .request(
                Method::PUT,
                self.url(&["api", "v1", "users", username, "password"]),
            )
            .json(&serde_json::json!({ "password": password, "current_password": current }));
        self.send(request).await.map(drop)
    }

    /// Gives a user another role, `admin` or `user` (admin). The last admin cannot be
    /// made a user.
    pub async fn set_role(&self, username: &str, role: &str) -> Result<()> {
        let request = self
            .request(
                Method::PUT,
                self.url(&["api", "v1", "users", username, "role"]),
            )
            .json(&serde_json::json!({ "role": role }));
        self.send(request).await.map(drop)
    }

    /// Deletes a user (admin); the last admin cannot be deleted.
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, self.url(&["api", "v1", "users", username])))
            .await
            .map(drop)
    }

    /// Grants visible to the caller: all for an admin, else those of the namespaces
    /// they administer and their own; narrowed by subject and namespace if given.
    pub async fn grants(
        &self,
        subject: Option<&GrantSubject>,
        namespace: Option<&str>,
    ) -> Result<Vec<GrantInfo>> {
        let mut url = self.url(&["api", "v1", "grants"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(subject) = subject {
                let (field, name) = subject.field();
                query.append_pair(field, name);
            }
            if let Some(namespace) = namespace {
                query.append_pair("namespace", namespace);
            }
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// Gives `subject` `level` over a namespace (or namespace pattern, admins only),
    /// group and data id patterns, replacing what it had over exactly that scope.
    pub async fn grant(
        &self,
        subject: &GrantSubject,
        namespace: &str,
        group: &str,
        data_id: &str,
        level: &str,
    ) -> Result<()> {
        let (field, name) = subject.field();
        let mut body = serde_json::json!({
            "namespace": namespace, "group": group, "data_id": data_id, "level": level,
        });
        body[field] = serde_json::Value::String(name.to_owned());
        let request = self
            .request(Method::PUT, self.url(&["api", "v1", "grants"]))
            .json(&body);
        self.send(request).await.map(drop)
    }

    /// Takes away `subject`'s grant over exactly this scope.
    pub async fn revoke(
        &self,
        subject: &GrantSubject,
        namespace: &str,
        group: &str,
        data_id: &str,
    ) -> Result<()> {
        let mut url = self.url(&["api", "v1", "grants"]);
        let (field, name) = subject.field();
        url.query_pairs_mut()
            .append_pair(field, name)
            .append_pair("namespace", namespace)
            .append_pair("group", group)
            .append_pair("data_id", data_id);
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// One page (from 1, at most 500 entries) of the audit log, newest first (admin).
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        page: u32,
        page_size: u32,
    ) -> Result<AuditPage> {
        let mut url = self.url(&["api", "v1", "audit"]);
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in [
                ("from", &filter.from),
                ("to", &filter.to),
                ("user", &filter.user),
                ("namespace", &filter.namespace),
                ("action", &filter.action),
                ("result", &filter.result),
            ] {
                if let Some(value) = value {
                    query.append_pair(name, value);
                }
            }
            query
                .append_pair("page", &page.to_string())
                .append_pair("page_size", &page_size.to_string());
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// Makes a service token with these scopes (admin); the answer is the only time the
    /// token is shown.
    ///
    /// With `publish_without_review`, it publishes into namespaces that require review
    /// without a change request (a pipeline whose changes are reviewed elsewhere).
    pub async fn create_token(
        &self,
        name: &str,
        scopes: &[TokenScope],
        publish_without_review: bool,
    ) -> Result<CreatedToken> {
        let request = self
            .request(Method::POST, self.url(&["api", "v1", "tokens"]))
            .json(&serde_json::json!({
                "name": name,
                "scopes": scopes,
                "publish_without_review": publish_without_review,
            }));
        self.json(request).await
    }

    /// The service tokens, with their scopes and last use (admin).
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.json(self.request(Method::GET, self.url(&["api", "v1", "tokens"])))
            .await
    }

    /// Revokes a service token (admin).
    pub async fn revoke_token(&self, name: &str) -> Result<()> {
        let url = self.url(&["api", "v1", "tokens", name]);
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// The named roles with their members (admin).
    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        self.json(self.request(Method::GET, self.url(&["api", "v1", "roles"])))
            .await
    }

    /// Makes a user a member of a role (admin).
    pub async fn add_role_member(&self, role: &str, username: &str) -> Result<()> {
        let url = self.url(&["api", "v1", "roles", role, "members", username]);
        self.send(self.request(Method::PUT, url)).await.map(drop)
    }

    /// Takes a user out of a role (admin).
    pub async fn remove_role_member(&self, role: &str, username: &str) -> Result<()> {
        let url = self.url(&["api", "v1", "roles", role, "members", username]);
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// Removes a role with its memberships and grants (admin).
    pub async fn delete_role(&self, role: &str) -> Result<()> {
        let url = self.url(&["api", "v1", "roles", role]);
        self.send(self.request(Method::DELETE, url)).await.map(drop)
    }
}
