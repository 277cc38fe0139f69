//! The audit log through the native API: config changes with their md5s, administrative
//! acts, logins and failed logins, and refusals, each with who, from where and through
//! which surface; filters; admins only.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect_error, TestApp};

/// The entries `query` finds once at least `want` are there (entries other than config
/// changes are written in the background, within moments).
async fn entries(app: &TestApp, query: &str, want: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (status, page) = app.get_json(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= want {
            assert_eq!(page["total"], items.len(), "{page}");
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {want} audit entries for {query}");
}

#[tokio::test]
async fn every_change_login_and_refusal_is_audited() {
    let app = TestApp::spawn().await;
    app.publish_ok("public/g/a.yaml", "a: 1").await;
    app.publish_ok("public/g/a.yaml", "a: 2").await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "eve", "password": "eve-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let eve = app.login("eve", "eve-password-1").await;
    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "username": "eve", "password": "not-hers" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A name that is no account's (a password typed in the wrong field) is not kept.
    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "username": "s3cret-typed-here", "password": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .http
        .put(format!("{}/api/v1/configs/public/g/a.yaml", app.base))
        .bearer_auth(&eve)
        .json(&json!({ "content": "a: 666" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .http
        .get(format!("{}/api/v1/audit", app.base))
        .bearer_auth(&eve)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "eve", "namespace": "public", "level": "read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Config changes: in the transaction that made them, with the md5 before and after.
    let changes = entries(&app, "action=config&result=ok", 2).await;
    assert_eq!(changes.len(), 2);
    let latest = &changes[0];
    assert_eq!(latest["action"], "config.publish");
    assert_eq!(latest["user"], "admin");
    assert_eq!(latest["surface"], "native");
    assert_eq!(latest["source"], "127.0.0.1");
    assert_eq!(latest["target"], "public/g/a.yaml");
    assert_eq!(latest["namespace"], "public");
    assert_eq!(latest["result"], "ok");
    assert_eq!(latest["md5_before"], changes[1]["md5_after"]);
    assert_ne!(latest["md5_after"], latest["md5_before"]);
    assert_eq!(
        changes[1]["md5_before"],
        Value::Null,
        "it did not exist before"
    );

    let denied = entries(&app, "result=denied&user=eve", 3).await;
    let actions: Vec<&str> = denied
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["admin", "config.publish", "login"], "{denied:?}");
    assert!(denied[1]["detail"]
        .as_str()
        .unwrap()
        .contains("may not change"));
    assert_eq!(denied[2]["detail"], "user name or password is wrong");
    assert_eq!(denied[0]["target"], "GET /api/v1/audit");

    let unknown = entries(&app, "action=login&user=(unknown)", 1).await;
    assert_eq!(unknown[0]["result"], "denied");
    let all = entries(&app, "page_size=500", 1).await;
    assert!(!serde_json::to_string(&all)
        .unwrap()
        .contains("s3cret-typed-here"));
    let logins = entries(&app, "action=login&result=ok", 2).await;
    assert!(logins.iter().any(|e| e["user"] == "eve"));
    let admin_acts = entries(&app, "user=admin&action=user", 1).await;
    assert_eq!(admin_acts[0]["action"], "user.create");
    assert_eq!(admin_acts[0]["target"], "user eve (user)");
    let grants = entries(&app, "action=grant.set", 1).await;
    assert_eq!(grants[0]["target"], "user eve read on public:*:*");

    // Time bounds, and a clear refusal of a malformed one.
    let none = entries(&app, "from=2999-01-01T00:00:00Z", 0).await;
    assert!(none.is_empty());
    let r = app
        .request(Method::GET, "/api/v1/audit?from=yesterday")
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(message.contains("RFC 3339"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn refused_reads_name_their_source_and_surface() {
    // Behind a trusted proxy, the source is the client the proxy names.
    let app = TestApp::spawn_with(|s| s.trust_forwarded_for = true).await;
    app.publish_ok("public/g/secret.yaml", "k: v").await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "mallory", "password": "mallory-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mallory = app.login("mallory", "mallory-password-1").await;
    let r = app
        .http
        .get(format!("{}/api/v1/configs/public/g/secret.yaml", app.base))
        .bearer_auth(&mallory)
        .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .http
        .get(format!(
            "{}/nacos/v1/cs/configs?dataId=secret.yaml&group=g&accessToken={mallory}",
            app.base
        ))
        .header("x-forwarded-for", "198.51.100.2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let denied = entries(&app, "result=denied&user=mallory&action=config.read", 2).await;
    let seen: Vec<(&str, &str)> = denied
        .iter()
        .map(|e| {
            (
                e["surface"].as_str().unwrap(),
                e["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("nacos", "198.51.100.2"), ("native", "203.0.113.7")]);
    assert!(denied.iter().all(|e| e["target"] == "public/g/secret.yaml"));
    app.stop().await;
}
