//! `TestApp`: a real node on port 0 with its own data directory, built through the same
//! `Application::build` that `cairn server` uses, plus typed request helpers.

#![allow(dead_code)]

use std::time::Duration;

use cairn_server::{Application, Secret, Settings};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const ADMIN_PASSWORD: &str = "correct-horse-battery";

pub struct TestApp {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
    pub connections: std::sync::Arc<cairn_server::ConnectionStats>,
    /// Where Nacos's gRPC protocol is served.
    pub grpc: Option<std::net::SocketAddr>,
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        cairn_server::init_tracing(&Settings::default());
    }
}

pub fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        admin_password: Some(Secret::from(ADMIN_PASSWORD)),
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        adjust(&mut s);
        Self::start(dir, s).await
    }

    pub async fn start(dir: tempfile::TempDir, settings: Settings) -> TestApp {
        Self::start_with_client(dir, settings, reqwest::Client::new()).await
    }

    /// A node whose requests go through `http` (one that trusts the node's certificate,
    /// when it serves TLS).
    pub async fn start_with_client(
        dir: tempfile::TempDir,
        settings: Settings,
        http: reqwest::Client,
    ) -> TestApp {
        init_logs();
        let scheme = if settings.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let app = Application::build(settings).await.expect("the node builds");
        let base = format!("{scheme}://{}", app.local_addr());
        let shutdown = app.shutdown_token();
        let connections = app.connection_stats();
        let grpc = app.grpc_addr();
        let server = tokio::spawn(app.run());
        let mut test = TestApp {
            base,
            token: String::new(),
            http,
            shutdown,
            server,
            dir,
            connections,
            grpc,
        };
        test.token = test.login("admin", ADMIN_PASSWORD).await;
        test
    }

    /// Stops the node and waits for it to finish; returns the data directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the node stops in time")
            .unwrap()
            .unwrap();
        self.dir
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login as {username}");
        let body: Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a user with a grant of `level` over `namespace`; returns their token.
    pub async fn user_with_grant(
        &self,
        username: &str,
        password: &str,
        namespace: &str,
        level: &str,
    ) -> String {
        let r = self
            .request(Method::POST, "/api/v1/users")
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "create {username}");
        let r = self
            .request(Method::PUT, "/api/v1/grants")
            .json(&json!({ "user": username, "namespace": namespace, "level": level }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "grant {username}");
        self.login(username, password).await
    }

    /// The admin's token from Nacos's own login route.
    pub async fn nacos_token(&self) -> String {
        let login = self
            .http
            .post(format!(
                "{}/nacos/v1/auth/login?username=admin&password={ADMIN_PASSWORD}",
                self.base
            ))
            .send()
            .await
            .unwrap();
        let token: Value = login.json().await.unwrap();
        token["accessToken"].as_str().unwrap().to_owned()
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn publish(&self, key: &str, body: Value) -> Response {
        self.request(Method::PUT, &format!("/api/v1/configs/{key}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Publishes and asserts success; returns the new revision.
    pub async fn publish_ok(&self, key: &str, content: &str) -> i64 {
        let r = self.publish(key, json!({ "content": content })).await;
        assert_eq!(r.status(), StatusCode::OK, "publish {key}");
        r.json::<Value>().await.unwrap()["revision"]
            .as_i64()
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.request(Method::GET, path).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self.request(Method::GET, "/metrics").send().await.unwrap();
        r.text().await.unwrap()
    }

    /// A long poll running in the background; yields its status, body and how long the
    /// server held it.
    pub fn spawn_watch(
        &self,
        keys: Value,
        timeout_ms: u64,
    ) -> tokio::task::JoinHandle<(StatusCode, Value, Duration)> {
        self.spawn_watch_as(keys, timeout_ms, "")
    }

    /// A long poll from a client declaring `labels` (`X-Cairn-Labels`).
    pub fn spawn_watch_as(
        &self,
        keys: Value,
        timeout_ms: u64,
        labels: &str,
    ) -> tokio::task::JoinHandle<(StatusCode, Value, Duration)> {
        let request = self
            .request(Method::POST, "/api/v1/watch")
            .header("x-cairn-labels", labels)
            .json(&json!({ "keys": keys, "timeout_ms": timeout_ms }));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = request.send().await.unwrap();
            let status = r.status();
            (status, r.json().await.unwrap(), started.elapsed())
        })
    }

    pub async fn watch(&self, keys: Value, timeout_ms: u64) -> Response {
        self.request(Method::POST, "/api/v1/watch")
            .json(&json!({ "keys": keys, "timeout_ms": timeout_ms }))
            .send()
            .await
            .unwrap()
    }
}

/// Asserts an error response's status and code; returns its message.
pub async fn expect_error(r: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status, "status");
    let body: Value = r.json().await.expect("an error body is JSON");
    assert_eq!(body["code"], code, "code in {body}");
    let message = body["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    message
}

/// A certificate authority of the test's own, and certificates it signs, as PEM files.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// Writes the CA's certificate to `dir/{stem}.pem`.
    pub fn write(&self, dir: &std::path::Path, stem: &str) -> std::path::PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A certificate for `names` (host names or IPs), good for servers and clients,
    /// written to `dir/{stem}.crt` and its key to `dir/{stem}.key`.
    pub fn issue(
        &self,
        dir: &std::path::Path,
        stem: &str,
        names: &[&str],
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        // The key first: a node that looks between the two writes sees a pair that does
        // not match, which it must ignore.
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::write(&cert_path, cert.pem()).unwrap();
        (cert_path, key_path)
    }

    /// A client that trusts this CA only.
    pub fn client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
    }
}

/// A zip of raw entries, as another Nacos installation might send.
pub fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
