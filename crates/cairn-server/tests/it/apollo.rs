//! The Apollo surface against a real node: configs, config files, notifications, the
//! meta server and access-key signatures, as Apollo's config service answers them.

use std::time::{Duration, Instant};

use crate::helpers::TestApp;
use base64::Engine as _;
use hmac::Mac;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

/// A node whose `public` namespace serves every app's unsigned Apollo reads, as an
/// installation of Apollo clients without keys sets it up.
async fn spawn() -> TestApp {
    let app = spawn_signed_only().await;
    allow_unsigned(&app, "public", json!(["*"])).await;
    app
}

/// A node as installed: every Apollo read must be signed.
async fn spawn_signed_only() -> TestApp {
    TestApp::spawn_with(|s| s.apollo_poll_timeout_ms = cairn_server::settings::Millis::new(1_000))
        .await
}

async fn allow_unsigned(app: &TestApp, namespace: &str, apps: Value) {
    let r = app
        .request(Method::PUT, &format!("/api/v1/namespaces/{namespace}"))
        .json(&json!({ "apollo_anonymous_apps": apps }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["apollo_anonymous_apps"], apps);
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

fn notifications(entries: Value) -> String {
    let encoded: String = form_urlencoded::byte_serialize(entries.to_string().as_bytes()).collect();
    format!("/notifications/v2?appId=shop&cluster=default&notifications={encoded}")
}

/// A notification poll held in the background on one namespace, answered with its
/// status and body.
fn hold_poll(
    app: &TestApp,
    namespace: &str,
    held_id: i64,
    extra_query: &str,
    headers: &[(&'static str, &'static str)],
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let url = format!(
        "{}{}{extra_query}",
        app.base,
        notifications(json!([{ "namespaceName": namespace, "notificationId": held_id }]))
    );
    let mut request = app.http.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    tokio::spawn(async move {
        let r = request.send().await.unwrap();
        (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
    })
}

/// Publishes a gray release of `public/shop/application`; returns its revision.
async fn put_gray(app: &TestApp, body: Value) -> i64 {
    let r = app
        .request(Method::PUT, "/api/v1/configs/public/shop/application/gray")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["revision"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn configs_and_config_files() {
    let app = spawn().await;
    app.publish_ok(
        "public/shop/application",
        "db.url=jdbc:pg://db\ntimeout = 30\n",
    )
    .await;
    let r = app
        .publish(
            "public/shop/application",
            json!({ "content": "db.url=jdbc:pg://db\ntimeout = 30\n", "format": "properties" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.publish_ok("public/shop/app.yaml", "server:\n  port: 8080\n")
        .await;

    let r = get(&app, "/configs/shop/default/application").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["appId"], "shop");
    assert_eq!(body["cluster"], "default");
    assert_eq!(body["namespaceName"], "application");
    assert_eq!(
        body["configurations"],
        json!({ "db.url": "jdbc:pg://db", "timeout": "30" })
    );
    let release = body["releaseKey"].as_str().unwrap().to_owned();

    // The release key the client holds: 304. A `.properties` suffix (any case) is the
    // same namespace, echoed as sent.
    let r = get(
        &app,
        &format!("/configs/shop/default/application?releaseKey={release}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = get(&app, "/configs/shop/default/application.PROPERTIES").await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["namespaceName"], "application.PROPERTIES");
    assert_eq!(body["releaseKey"], release.as_str());

    // Other formats are one `content` key; names match ignoring case.
    let r = get(&app, "/configs/shop/default/APP.yaml").await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["configurations"],
        json!({ "content": "server:\n  port: 8080\n" })
    );
    assert_eq!(
        get(&app, "/configs/shop/default/missing").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/configs/nobody/default/application")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Config files: properties text, JSON, and raw with the suffix's type.
    let r = get(&app, "/configfiles/shop/default/application").await;
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/plain;charset=UTF-8"
    );
    assert_eq!(
        r.text().await.unwrap(),
        "db.url=jdbc\\:pg\\://db\ntimeout=30\n"
    );
    let r = get(&app, "/configfiles/json/shop/default/application").await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "db.url": "jdbc:pg://db", "timeout": "30" })
    );
    let r = get(&app, "/configfiles/raw/shop/default/app.yaml").await;
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/yaml;charset=UTF-8"
    );
    assert_eq!(r.text().await.unwrap(), "server:\n  port: 8080\n");
}

#[tokio::test]
async fn clusters_fall_back_to_data_center_then_default() {
    let app = spawn().await;
    app.publish_ok("public/shop/application", "who=default\n")
        .await;
    app.publish_ok("public/shop/sh:application", "who=shanghai\n")
        .await;
    let cluster = |path: &'static str| {
        let app = &app;
        async move {
            let body: Value = get(app, path).await.json().await.unwrap();
            (
                body["cluster"].as_str().unwrap().to_owned(),
                body["configurations"]["who"].as_str().unwrap().to_owned(),
            )
        }
    };
    assert_eq!(
        cluster("/configs/shop/sh/application").await,
        ("sh".into(), "shanghai".into())
    );
    assert_eq!(
        cluster("/configs/shop/bj/application?dataCenter=sh").await,
        ("sh".into(), "shanghai".into())
    );
    assert_eq!(
        cluster("/configs/shop/bj/application").await,
        ("default".into(), "default".into())
    );
}

#[tokio::test]
async fn notifications_answer_hold_and_wake() {
    let app = spawn().await;
    let first = app.publish_ok("public/shop/application", "a=1\n").await;

    // -1: answered at once with the current id, echoing the name exactly as sent.
    let r = get(
        &app,
        &notifications(
            json!([{ "namespaceName": "application.properties", "notificationId": -1 }]),
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{ "namespaceName": "application.properties", "notificationId": first, "messages": { "details": { "shop+default+application": first } } }])
    );

    // Current id: held, then 304 when nothing changed.
    let started = Instant::now();
    let r = get(
        &app,
        &notifications(json!([{ "namespaceName": "application", "notificationId": first }])),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Held, and woken by a publish through the native API.
    let held = {
        let url = format!(
            "{}{}",
            app.base,
            notifications(json!([{ "namespaceName": "application", "notificationId": first }]))
        );
        let http = app.http.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http.get(url).send().await.unwrap();
            (
                r.status(),
                r.json::<Value>().await.unwrap_or(Value::Null),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = app.publish_ok("public/shop/application", "a=2\n").await;
    let (status, body, waited) = held.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(waited < Duration::from_millis(900), "woken by the publish");
    assert_eq!(body[0]["notificationId"], second);

    // A gray release wakes the polls of clients it is for, and no other.
    let (ip_in, ip_out) = ("&ip=10.9.9.9", "&ip=10.0.0.8");
    let (held_canary, held_other) = (
        hold_poll(&app, "application", second, ip_in, &[]),
        hold_poll(&app, "application", second, ip_out, &[]),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gray_id = put_gray(&app, json!({ "content": "a=3\n", "ips": ["10.9.9.9"] })).await;
    let (status, body) = held_canary.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["notificationId"], gray_id);
    assert_eq!(held_other.await.unwrap().0, StatusCode::NOT_MODIFIED);

    // Abandoning it notifies the canary (it goes back to the main content) only.
    let (held_canary, held_other) = (
        hold_poll(&app, "application", gray_id, ip_in, &[]),
        hold_poll(&app, "application", second, ip_out, &[]),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .request(
            Method::DELETE,
            "/api/v1/configs/public/shop/application/gray",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (status, body) = held_canary.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let abandoned = body[0]["notificationId"].as_i64().unwrap();
    assert!(abandoned > gray_id);
    assert_eq!(held_other.await.unwrap().0, StatusCode::NOT_MODIFIED);
    let body: Value = get(&app, "/configs/shop/default/application?ip=10.9.9.9")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["configurations"]["a"], "2");

    // A release by label: a poll that states no label (many Apollo clients send none)
    // is told, and its client's read then decides; one that states another is not.
    let label_id = put_gray(
        &app,
        json!({ "content": "a=4\n", "labels": ["label=canary"] }),
    )
    .await;
    let (status, body) = hold_poll(&app, "application", abandoned, ip_out, &[])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["notificationId"], label_id);
    let other = "&ip=10.0.0.8&label=other";
    let r = hold_poll(&app, "application", second, other, &[]);
    assert_eq!(r.await.unwrap().0, StatusCode::NOT_MODIFIED);

    // A poll that states no IP is told of a release by IP; one whose X-Forwarded-For
    // names the client is told only if it matches.
    let ip_id = put_gray(&app, json!({ "content": "a=5\n", "ips": ["10.1.1.1"] })).await;
    let (status, body) = hold_poll(&app, "application", second, "&label=other", &[])
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["notificationId"], ip_id);
    let forwarded = [("x-forwarded-for", "10.1.1.1, 192.168.0.1")];
    let elsewhere = [("x-forwarded-for", "10.2.2.2")];
    let (matching, not_matching) = (
        hold_poll(&app, "application", second, "&label=other", &forwarded),
        hold_poll(&app, "application", second, "&label=other", &elsewhere),
    );
    let (status, body) = matching.await.unwrap();
    assert_eq!(status, StatusCode::OK, "the forwarded address matches");
    assert_eq!(body[0]["notificationId"], ip_id);
    assert_eq!(not_matching.await.unwrap().0, StatusCode::NOT_MODIFIED);

    // Promoting notifies everyone.
    let (held_canary, held_other) = (
        hold_poll(&app, "application", ip_id, "&label=other", &forwarded),
        hold_poll(&app, "application", second, other, &[]),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .request(
            Method::POST,
            "/api/v1/configs/public/shop/application/gray/promote",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for held in [held_canary, held_other] {
        let (status, body) = held.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body[0]["notificationId"].as_i64().unwrap() > ip_id);
    }

    // A namespace never published is held (and then 304), not an error.
    let r = get(
        &app,
        &notifications(json!([{ "namespaceName": "later.yaml", "notificationId": -1 }])),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // Malformed requests are 400.
    for bad in [
        "/notifications/v2?appId=shop&cluster=default&notifications=not-json".to_owned(),
        notifications(json!([])),
        notifications(json!([{ "notificationId": 1 }])),
        "/notifications/v2?appId=shop&cluster=default".to_owned(),
    ] {
        assert_eq!(
            get(&app, &bad).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    // So are malformed identity headers and queries, in Apollo's error shape (the one
    // its clients log), saying what was wrong.
    let path = notifications(json!([{ "namespaceName": "application", "notificationId": -1 }]));
    for (header, value) in [("x-cairn-client-ip", "not-an-ip"), ("x-cairn-labels", "=")] {
        let r = app
            .http
            .get(format!("{}{path}", app.base))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{header}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 400, "{body}");
        assert_eq!(body["path"], "/notifications/v2", "{body}");
        assert!(body["message"].as_str().unwrap().contains(header), "{body}");
    }
    let r = get(
        &app,
        "/notifications/v2?appId=shop&appId=other&cluster=default",
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 400, "{body}");
}

#[tokio::test]
async fn meta_server_and_envs() {
    let app = spawn().await;
    let r = get(&app, "/services/config?appId=shop&ip=10.0.0.1").await;
    let list: Value = r.json().await.unwrap();
    assert_eq!(list[0]["appName"], "APOLLO-CONFIGSERVICE");
    assert_eq!(list[0]["homepageUrl"], format!("{}/", app.base));
    let list: Value = get(&app, "/apollo/dev/services/config")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["homepageUrl"], format!("{}/apollo/dev/", app.base));
    let list: Value = get(&app, "/services/admin").await.json().await.unwrap();
    assert_eq!(list[0]["homepageUrl"], format!("{}/", app.base));

    // The env prefix selects the namespace.
    let r = app
        .request(Method::POST, "/api/v1/namespaces")
        .json(&json!({ "name": "dev" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    allow_unsigned(&app, "dev", json!(["shop"])).await;
    app.publish_ok("dev/shop/application", "env=dev\n").await;
    app.publish_ok("public/shop/application", "env=public\n")
        .await;
    let body: Value = get(&app, "/apollo/dev/configs/shop/default/application")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["configurations"]["env"], "dev");
    let body: Value = get(&app, "/configs/shop/default/application")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["configurations"]["env"], "public");
}

fn sign(secret: &str, timestamp: &str, target: &str) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{target}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn access_keys_require_signatures() {
    let app = spawn_signed_only().await;
    app.publish_ok("public/shop/application", "a=1\n").await;
    app.publish_ok("public/web-1/application", "a=1\n").await;
    // Signed by default: an unsigned read says what to do about it.
    let r = get(&app, "/configs/shop/default/application").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let message = r.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("cairn access-key create shop")
            && message.contains("apollo_anonymous_apps")
            && message.contains("cairn ns update public --apollo-anonymous shop"),
        "{message}"
    );
    let poll = notifications(json!([{ "namespaceName": "application", "notificationId": -1 }]));
    assert_eq!(get(&app, &poll).await.status(), StatusCode::UNAUTHORIZED);
    // A namespace serves the apps it names unsigned, and no others.
    allow_unsigned(&app, "public", json!(["web-*"])).await;
    let web = get(&app, "/configs/web-1/default/application").await;
    assert_eq!(web.status(), StatusCode::OK);
    let shop = get(&app, "/configs/shop/default/application").await;
    assert_eq!(shop.status(), StatusCode::UNAUTHORIZED);
    allow_unsigned(&app, "public", json!(["web-*", "shop"])).await;
    assert_eq!(
        get(&app, "/configs/shop/default/application")
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .request(Method::PUT, "/api/v1/namespaces/public")
        .json(&json!({ "apollo_anonymous_apps": ["no spaces"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A key for another env does not sign here, and does not take the allowance away.
    let r = app
        .request(Method::POST, "/api/v1/apps/shop/access-keys")
        .json(&json!({ "namespaces": ["dev"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let dev_key: Value = r.json().await.unwrap();
    assert_eq!(dev_key["namespaces"], json!(["dev"]));
    assert_eq!(
        get(&app, "/configs/shop/default/application")
            .await
            .status(),
        StatusCode::OK
    );
    let dev_id = dev_key["id"].as_str().unwrap();
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/v1/apps/shop/access-keys/{dev_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = app
        .request(Method::POST, "/api/v1/apps/shop/access-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let key: Value = r.json().await.unwrap();
    let secret = key["secret"].as_str().unwrap().to_owned();
    let id = key["id"].as_str().unwrap().to_owned();

    let target = "/configs/shop/default/application?ip=10.0.0.1";
    let signed = |timestamp: i64, secret: &str| {
        let ts = timestamp.to_string();
        app.http
            .get(format!("{}{target}", app.base))
            .header("Timestamp", &ts)
            .header(
                "Authorization",
                format!("Apollo shop:{}", sign(secret, &ts, target)),
            )
            .send()
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    assert_eq!(get(&app, target).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        signed(now(), &secret).await.unwrap().status(),
        StatusCode::OK
    );
    let r = signed(now() - 120_000, &secret).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "RequestTimeTooSkewed"
    );
    let r = signed(now(), "not-the-secret").await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "Unauthorized");
    // No timestamp counts as time 0, as in Apollo.
    let r = app
        .http
        .get(format!("{}{target}", app.base))
        .header("Authorization", "Apollo shop:c2lnbmF0dXJl")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "RequestTimeTooSkewed"
    );

    // Long polls are signed too, with the env prefix part of what is signed.
    let polls = [
        notifications(json!([{ "namespaceName": "application", "notificationId": -1 }])),
        format!(
            "/apollo/public{}",
            notifications(json!([{ "namespaceName": "application", "notificationId": -1 }]))
        ),
    ];
    for poll in &polls {
        assert_eq!(get(&app, poll).await.status(), StatusCode::UNAUTHORIZED);
        let ts = now().to_string();
        let r = app
            .http
            .get(format!("{}{poll}", app.base))
            .header("Timestamp", &ts)
            .header(
                "Authorization",
                format!("Apollo shop:{}", sign(&secret, &ts, poll)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{poll}");
    }

    // Disabled keys do not count: the app reads unsigned again, as its namespace allows.
    // Keys are per app.
    let r = app
        .request(Method::PUT, &format!("/api/v1/apps/shop/access-keys/{id}"))
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&app, target).await.status(), StatusCode::OK);
    let (_, keys) = app.get_json("/api/v1/apps/shop/access-keys").await;
    assert_eq!(keys[0]["enabled"], false);
    for _ in 0..4 {
        let r = app
            .request(Method::POST, "/api/v1/apps/shop/access-keys")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = app
        .request(Method::POST, "/api/v1/apps/shop/access-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "five keys at most");
    let r = app
        .request(Method::DELETE, "/api/v1/apps/shop/access-keys/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/configs/.bad/default/application")
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn keys_can_be_required_of_every_app() {
    let app = TestApp::spawn_with(|s| s.apollo_require_access_key = true).await;
    allow_unsigned(&app, "public", json!(["*"])).await;
    app.publish_ok("public/shop/application", "a=1\n").await;
    let r = get(&app, "/configs/shop/default/application").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "an app without keys");
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "Unauthorized");
    let poll = notifications(json!([{ "namespaceName": "application", "notificationId": -1 }]));
    assert_eq!(get(&app, &poll).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn names_are_matched_ignoring_case_and_echoed_as_sent() {
    let app = spawn().await;
    let first = app.publish_ok("public/shop/application", "a=1\n").await;
    // Two spellings of one namespace: answered once, under the spelling with the lower
    // id, with details keyed by the stored name.
    let r = get(
        &app,
        &notifications(json!([
            { "namespaceName": "APPLICATION", "notificationId": -1 },
            { "namespaceName": "application.properties", "notificationId": first },
        ])),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{ "namespaceName": "APPLICATION", "notificationId": first, "messages": { "details": { "shop+default+application": first } } }])
    );
    // A poll on the other case is woken by a change.
    let held = hold_poll(&app, "Application", first, "", &[]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = app.publish_ok("public/shop/application", "a=2\n").await;
    let (status, body) = held.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["namespaceName"], "Application");
    assert_eq!(body[0]["notificationId"], second);

    // A config whose name differs only in case is a namespace of its own.
    let other = app.publish_ok("public/shop/Application", "b=1\n").await;
    let r = get(
        &app,
        &notifications(json!([
            { "namespaceName": "Application", "notificationId": second },
            { "namespaceName": "application", "notificationId": second },
        ])),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{ "namespaceName": "Application", "notificationId": other, "messages": { "details": { "shop+default+Application": other } } }])
    );
}

#[tokio::test]
async fn reads_wait_briefly_for_a_change_they_were_notified_of() {
    let app = spawn().await;
    let first = app.publish_ok("public/shop/application", "a=1\n").await;
    let messages = |id: i64| {
        let text = json!({ "details": { "shop+default+application": id } }).to_string();
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        format!("/configs/shop/default/application?messages={encoded}")
    };
    // A change this node has: answered at once.
    let started = Instant::now();
    let r = get(&app, &messages(first)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500));
    // One it has not applied yet: the read waits for it, and gets it.
    let read = {
        let (http, url) = (
            app.http.clone(),
            format!("{}{}", app.base, messages(first + 1)),
        );
        tokio::spawn(async move { http.get(url).send().await.unwrap().json::<Value>().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.publish_ok("public/shop/application", "a=2\n").await;
    assert_eq!(read.await.unwrap().unwrap()["configurations"]["a"], "2");
    // One that never comes: the wait is bounded, and the read answers what there is.
    let started = Instant::now();
    let r = get(&app, &messages(first + 1_000)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn gray_rules_see_apollo_ip_and_label() {
    let app = spawn().await;
    app.publish_ok("public/shop/application", "color=blue\n")
        .await;
    let r = app
        .request(Method::PUT, "/api/v1/configs/public/shop/application/gray")
        .json(
            &json!({ "content": "color=green\n", "ips": ["10.0.0.9"], "labels": ["label=canary"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let color = |path: &'static str| {
        let app = &app;
        async move {
            let body: Value = get(app, path).await.json().await.unwrap();
            body["configurations"]["color"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(
        color("/configs/shop/default/application?ip=10.0.0.9").await,
        "green"
    );
    assert_eq!(
        color("/configs/shop/default/application?ip=10.0.0.8&label=canary").await,
        "green"
    );
    assert_eq!(
        color("/configs/shop/default/application?ip=10.0.0.8").await,
        "blue"
    );
}

#[tokio::test]
async fn a_notification_poll_is_bounded_in_namespaces_and_says_by_what() {
    let app = TestApp::spawn_with(|s| {
        s.apollo_poll_timeout_ms = cairn_server::settings::Millis::new(1_000);
        s.watch_max_keys = 3;
    })
    .await;
    allow_unsigned(&app, "public", json!(["*"])).await;
    let entries: Vec<Value> = (0..4)
        .map(|i| json!({ "namespaceName": format!("ns{i}"), "notificationId": -1 }))
        .collect();
    let r = get(&app, &notifications(json!(entries))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("4 namespaces") && message.contains("watch_max_keys"),
        "{body}"
    );
    // Three, two of them one namespace spelt twice, are within it: answered with the
    // lower id's spelling, once.
    app.publish_ok("public/shop/application", "a=1").await;
    let r = get(
        &app,
        &notifications(json!([
            { "namespaceName": "application", "notificationId": 5 },
            { "namespaceName": "application.properties", "notificationId": -1 },
            { "namespaceName": "other", "notificationId": -1 },
        ])),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespaceName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["application.properties"], "{body}");
}

#[tokio::test]
async fn one_client_holds_a_bounded_number_of_polls() {
    let app = TestApp::spawn_with(|s| {
        s.apollo_poll_timeout_ms = cairn_server::settings::Millis::new(1_500);
        s.apollo_max_polls_per_client = 2;
    })
    .await;
    allow_unsigned(&app, "public", json!(["*"])).await;
    let held: Vec<_> = (0..2)
        .map(|_| hold_poll(&app, "quiet", -1, "&ip=10.0.0.1", &[]))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = get(
        &app,
        &format!(
            "{}&ip=10.0.0.1",
            notifications(json!([{ "namespaceName": "quiet", "notificationId": -1 }]))
        ),
    )
    .await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = third.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("apollo_max_polls_per_client") && message.contains("shop"),
        "{body}"
    );
    // Another client is not held back by this one.
    let other = hold_poll(&app, "quiet", -1, "&ip=10.0.0.2", &[]);
    for poll in held {
        assert_eq!(poll.await.unwrap().0, StatusCode::NOT_MODIFIED);
    }
    assert_eq!(other.await.unwrap().0, StatusCode::NOT_MODIFIED);
    // Once its polls were answered, the client may poll again.
    let again = hold_poll(&app, "quiet", -1, "&ip=10.0.0.1", &[]);
    assert_eq!(again.await.unwrap().0, StatusCode::NOT_MODIFIED);
    app.stop().await;
}

#[tokio::test]
async fn a_sensitive_config_is_served_to_signed_reads_only() {
    let app = spawn().await;
    let r = app
        .publish(
            "public/shop/application",
            json!({ "content": "password=Hunter2", "format": "properties", "sensitive": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Unsigned, as the namespace allows for the app: as if it did not exist.
    let r = get(&app, "/configs/shop/default/application").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!r.text().await.unwrap().contains("Hunter2"));
    let r = get(&app, "/configfiles/json/shop/default/application").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Once the app signs its reads, it gets it.
    let r = app
        .request(Method::POST, "/api/v1/apps/shop/access-keys")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let key: Value = r.json().await.unwrap();
    let secret = key["secret"].as_str().unwrap();
    let path = "/configs/shop/default/application";
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .header("Timestamp", &timestamp)
        .header(
            "Authorization",
            format!("Apollo shop:{}", sign(secret, &timestamp, path)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["configurations"]["password"], "Hunter2");
    app.stop().await;
}
