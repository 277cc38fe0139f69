//! TLS on a node's HTTP port: certificates a test CA signed, served on every route,
//! renewed without a restart, and client certificates required when configured.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{settings, TestApp, TestCa, ADMIN_PASSWORD};

/// A node serving a certificate `ca` signed for `127.0.0.1`; `adjust` changes the
/// settings further.
async fn tls_node(
    ca: &TestCa,
    client: reqwest::ClientBuilder,
    adjust: impl FnOnce(&mut cairn_server::Settings, &std::path::Path),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (cert, key) = ca.issue(&certs, "node", &["127.0.0.1", "localhost"]);
    let mut s = settings(dir.path());
    s.tls_cert = Some(cert);
    s.tls_key = Some(key);
    adjust(&mut s, &certs);
    TestApp::start_with_client(dir, s, client.build().unwrap()).await
}

/// Whether a fresh connection from `client` gets an answer from `/health`.
async fn answers(client: &reqwest::Client, base: &str) -> bool {
    client
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

#[tokio::test]
async fn every_surface_is_served_over_tls_and_plain_http_is_not() {
    let ca = TestCa::new("cairn test CA");
    let app = tls_node(&ca, ca.client(), |_, _| {}).await;
    assert!(app.base.starts_with("https://"), "{}", app.base);

    // Native API, a long poll (which over TLS is hyper's), Nacos and Apollo.
    app.publish_ok("public/DEFAULT_GROUP/app.yaml", "a: 1")
        .await;
    let (status, body) = app
        .get_json("/api/v1/configs/public/DEFAULT_GROUP/app.yaml?view=json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["content"], "a: 1");
    let watch = app.spawn_watch(
        json!([{ "namespace": "public", "group": "DEFAULT_GROUP", "data_id": "app.yaml",
                 "md5": body["md5"] }]),
        20_000,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.publish_ok("public/DEFAULT_GROUP/app.yaml", "a: 2")
        .await;
    let (status, changed, held) = watch.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(held < Duration::from_secs(10), "the watch waited {held:?}");
    let nacos = app
        .http
        .get(format!(
            "{}/nacos/v1/cs/configs?dataId=app.yaml&group=DEFAULT_GROUP&accessToken={}",
            app.base, app.token
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(nacos.status(), StatusCode::OK);
    assert_eq!(nacos.text().await.unwrap(), "a: 2");

    // The node lists itself under its https address.
    let (_, nodes) = app.get_json("/api/v1/cluster/nodes").await;
    let listed = nodes.to_string();
    assert!(listed.contains("https://127.0.0.1:"), "{listed}");

    // The console's session cookie is Secure.
    let form = app
        .http
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("cairn_login="))
        .and_then(|v| v.split(';').next())
        .expect("the login form sets its cookie")
        .to_owned();
    let no_redirects = ca
        .client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = no_redirects
        .post(format!("{}/console/login", app.base))
        .header("cookie", format!("cairn_login={login_cookie}"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("login_token", login_cookie.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let cookie = session
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cairn_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP to the same port gets no answer, and a client that does not trust the
    // CA does not get past the handshake.
    let plain = app.base.replacen("https://", "http://", 1);
    assert!(!answers(&reqwest::Client::new(), &plain).await);
    let stranger = TestCa::new("another CA").client().build().unwrap();
    let refused = stranger
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    // The Rust client, given the CA file.
    let ca_file = ca.write(app.dir.path(), "ca");
    let client = cairn_client::Client::builder(&app.base)
        .ca_file(&ca_file)
        .token(&app.token)
        .build()
        .unwrap();
    let key = cairn_client::Key::parse("public/DEFAULT_GROUP/app.yaml").unwrap();
    let config = client.get(&key).await.unwrap().expect("the config exists");
    assert_eq!(config.content.as_deref(), Some("a: 2"));
    // Without it the client refuses the server.
    let unverified = cairn_client::Client::builder(&app.base)
        .token(&app.token)
        .build()
        .unwrap();
    let err = unverified.get(&key).await.unwrap_err();
    assert!(matches!(err, cairn_client::Error::Http(_)), "{err:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    // No pooled connections: each request makes a handshake and sees the current
    // certificate.
    let fresh = |ca: &TestCa| ca.client().pool_max_idle_per_host(0).build().unwrap();
    let app = tls_node(&old_ca, old_ca.client(), |_, _| {}).await;
    let (trusts_old, trusts_new) = (fresh(&old_ca), fresh(&new_ca));
    assert!(answers(&trusts_old, &app.base).await);
    assert!(!answers(&trusts_new, &app.base).await);

    let certs = app.dir.path().join("certs");
    new_ca.issue(&certs, "node", &["127.0.0.1"]);
    let mut renewed = false;
    for _ in 0..100 {
        if answers(&trusts_new, &app.base).await {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed, "the new certificate was never served");
    // A new client (one without a TLS session to resume) that trusts only the old CA
    // is now refused.
    assert!(!answers(&fresh(&old_ca), &app.base).await);

    // A renewal gone wrong (a certificate file that is not one) is not taken up: the
    // node goes on serving the last good pair.
    std::fs::write(certs.join("node.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(answers(&trusts_new, &app.base).await);
    app.stop().await;
}

#[tokio::test]
async fn a_client_certificate_is_required_when_a_client_ca_is_set() {
    let ca = TestCa::new("cluster CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue(dir.path(), "client", &["ci-runner"]);
    let pem = [std::fs::read(&key).unwrap(), std::fs::read(&cert).unwrap()].concat();
    let identity = reqwest::Identity::from_pem(&pem).unwrap();
    let app = tls_node(&ca, ca.client().identity(identity), |s, certs| {
        s.tls_client_ca = Some(ca.write(certs, "clients"));
    })
    .await;
    // Logged in, with the certificate.
    let (status, _) = app.get_json("/api/v1/namespaces").await;
    assert_eq!(status, StatusCode::OK);

    // Without one, or with one from another CA, no request gets through.
    assert!(!answers(&ca.client().build().unwrap(), &app.base).await);
    let other = TestCa::new("other CA");
    let (cert, key) = other.issue(dir.path(), "intruder", &["intruder"]);
    let pem = [std::fs::read(&key).unwrap(), std::fs::read(&cert).unwrap()].concat();
    let intruder = ca
        .client()
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    assert!(!answers(&intruder, &app.base).await);

    // The Rust client presents the files it is given.
    let ca_file = ca.write(dir.path(), "ca");
    let client = cairn_client::Client::builder(&app.base)
        .ca_file(&ca_file)
        .client_certificate(dir.path().join("client.crt"), dir.path().join("client.key"))
        .build()
        .unwrap();
    let login = client.login("admin", ADMIN_PASSWORD).await.unwrap();
    assert_eq!(login.username, "admin");
    app.stop().await;
}

#[tokio::test]
async fn unusable_tls_files_stop_the_node_with_the_reason() {
    let ca = TestCa::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = ca.issue(dir.path(), "a", &["127.0.0.1"]);
    let (_, other_key) = ca.issue(dir.path(), "b", &["127.0.0.1"]);
    let build = |adjust: &dyn Fn(&mut cairn_server::Settings)| {
        let mut s = settings(dir.path());
        adjust(&mut s);
        async move {
            match cairn_server::Application::build(s).await {
                Ok(_) => panic!("the node started"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let mismatch = build(&|s| {
        s.tls_cert = Some(cert.clone());
        s.tls_key = Some(other_key.clone());
    })
    .await;
    assert!(mismatch.contains("does not fit tls_cert"), "{mismatch}");
    let missing = build(&|s| {
        s.tls_cert = Some(dir.path().join("nowhere.crt"));
        s.tls_key = Some(other_key.clone());
    })
    .await;
    assert!(missing.contains("cannot read tls_cert"), "{missing}");
    let half = build(&|s| s.tls_cert = Some(cert.clone())).await;
    assert!(half.contains("tls_cert and tls_key go together"), "{half}");
    let ca_alone = build(&|s| s.tls_client_ca = Some(cert.clone())).await;
    assert!(
        ca_alone.contains("tls_client_ca needs tls_cert"),
        "{ca_alone}"
    );
    // A key's content never shows in an error.
    let key_text = std::fs::read_to_string(&other_key).unwrap();
    let body = key_text.lines().nth(1).unwrap();
    assert!(!mismatch.contains(body));
}

#[tokio::test]
async fn nacos_login_and_publish_work_over_tls() {
    let ca = TestCa::new("test CA");
    let app = tls_node(&ca, ca.client(), |_, _| {}).await;
    let login: Value = app
        .http
        .post(format!("{}/nacos/v1/auth/login", app.base))
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().expect("a token");
    let published = app
        .http
        .post(format!("{}/nacos/v1/cs/configs", app.base))
        .form(&[
            ("dataId", "db.properties"),
            ("group", "DEFAULT_GROUP"),
            ("content", "url=x"),
            ("accessToken", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::OK);
    assert_eq!(published.text().await.unwrap(), "true");
    let r = app
        .request(
            Method::GET,
            "/api/v1/configs/public/DEFAULT_GROUP/db.properties",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}
