//! End-to-end tests of the native API against a real node on port 0.

use std::time::{Duration, Instant};

use crate::helpers::{expect_error, TestApp, ADMIN_PASSWORD};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "public/DEFAULT_GROUP/app.yaml";

#[tokio::test]
async fn publish_get_watch_history_rollback_diff() {
    let app = TestApp::spawn().await;
    let r1 = app.publish_ok(KEY, "port: 8080\n").await;

    // Raw read: content, md5 as ETag, format as content type.
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let md5 = cairn_core::md5::md5_hex("port: 8080\n");
    assert_eq!(r.headers()[header::ETAG], format!("\"{md5}\"").as_str());
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/yaml; charset=utf-8"
    );
    assert_eq!(r.headers()["x-cairn-revision"], r1.to_string().as_str());
    assert_eq!(r.text().await.unwrap(), "port: 8080\n");

    // A client that already holds this version gets 304.
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .header(header::IF_NONE_MATCH, format!("\"{md5}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // JSON view with metadata.
    let (status, meta) = app
        .get_json(&format!("/api/v1/configs/{KEY}?view=json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["format"], "yaml");
    assert_eq!(meta["content"], "port: 8080\n");
    assert_eq!(meta["created_by"], "admin");

    // A watcher holding the current md5 waits; a publish wakes it with the new state.
    let keys = json!([{ "namespace": "public", "group": "DEFAULT_GROUP", "data_id": "app.yaml", "md5": md5 }]);
    let watcher = app.spawn_watch(keys, 20_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r2 = app.publish_ok(KEY, "port: 9090\n").await;
    let (_, changed, waited) = watcher.await.unwrap();
    assert!(
        waited >= Duration::from_millis(150),
        "the watch was held until the change"
    );
    assert!(
        waited < Duration::from_secs(5),
        "the watch answered promptly: {waited:?}"
    );
    assert_eq!(changed["changed"][0]["revision"], r2);
    assert_eq!(
        changed["changed"][0]["md5"],
        cairn_core::md5::md5_hex("port: 9090\n")
    );
    assert_eq!(changed["changed"][0]["exists"], true);

    // History, newest first; one version with content.
    let (_, history) = app
        .get_json(&format!("/api/v1/configs/{KEY}/history"))
        .await;
    assert_eq!(history["total"], 2);
    assert_eq!(history["items"][0]["revision"], r2);
    assert_eq!(history["items"][1]["revision"], r1);
    let (_, entry) = app
        .get_json(&format!("/api/v1/configs/{KEY}/history/{r1}"))
        .await;
    assert_eq!(entry["content"], "port: 8080\n");
    assert_eq!(entry["source"], "127.0.0.1");

    // Rollback makes a new revision with the old content, recorded in history.
    let r = app
        .request(Method::POST, &format!("/api/v1/configs/{KEY}/rollback"))
        .json(&json!({ "revision": r1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r3 = r.json::<Value>().await.unwrap()["revision"]
        .as_i64()
        .unwrap();
    assert!(r3 > r2);
    let body = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(body.text().await.unwrap(), "port: 8080\n");
    let (_, history) = app
        .get_json(&format!("/api/v1/configs/{KEY}/history"))
        .await;
    assert_eq!(history["items"][0]["op"], "rollback");
    assert_eq!(
        history["items"][0]["comment"],
        format!("rollback to revision {r1}")
    );

    // Diff between two revisions, and against the current content.
    let diff = app
        .request(
            Method::GET,
            &format!("/api/v1/configs/{KEY}/diff?from={r1}&to={r2}"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(diff.contains("-port: 8080\n+port: 9090\n"), "{diff}");
    let diff = app
        .request(
            Method::GET,
            &format!("/api/v1/configs/{KEY}/diff?from={r2}"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(diff.contains("-port: 9090\n+port: 8080\n"), "{diff}");
}

#[tokio::test]
async fn compare_and_set_refuses_stale_writers() {
    let app = TestApp::spawn().await;
    // `""` means create only.
    let r = app
        .publish(KEY, json!({ "content": "a: 1", "cas_md5": "" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let first_md5 = r.json::<Value>().await.unwrap()["md5"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .publish(KEY, json!({ "content": "a: 2", "cas_md5": "" }))
        .await;
    expect_error(r, StatusCode::CONFLICT, "cas_conflict").await;

    // Two editors read the same version; the second to write is refused.
    let r = app
        .publish(KEY, json!({ "content": "a: 2", "cas_md5": first_md5 }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .publish(KEY, json!({ "content": "a: 3", "cas_md5": first_md5 }))
        .await;
    let message = expect_error(r, StatusCode::CONFLICT, "cas_conflict").await;
    assert!(message.contains("changed by someone else"), "{message}");
    let body = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        body.text().await.unwrap(),
        "a: 2",
        "the losing write changed nothing"
    );

    let r = app
        .request(
            Method::DELETE,
            &format!("/api/v1/configs/{KEY}?cas_md5={first_md5}"),
        )
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::CONFLICT, "cas_conflict").await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let app = TestApp::spawn_with(|s| {
        s.max_content_bytes = 1024;
        s.watch_max_keys = 3;
    })
    .await;

    let r = app
        .publish("public/DEFAULT_GROUP/bad%20name", json!({ "content": "x" }))
        .await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "invalid_name").await;
    assert!(m.contains("data id"), "{m}");
    let r = app
        .publish(
            &format!("public/{}/x", "g".repeat(129)),
            json!({ "content": "x" }),
        )
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_name").await;

    let r = app
        .publish(KEY, json!({ "content": "a: 1\n b: 2\nc: [" }))
        .await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "invalid_content").await;
    assert!(m.contains("invalid yaml at line 2"), "{m}");
    let r = app
        .publish("public/g/x.json", json!({ "content": "{\"a\": }" }))
        .await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "invalid_content").await;
    assert!(m.contains("line 1, column 7"), "{m}");
    let r = app
        .publish(KEY, json!({ "content": "a: [", "force": true }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "force stores it anyway");

    let r = app
        .publish("public/g/x", json!({ "content": "x", "format": "ini" }))
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_format").await;
    let r = app
        .publish(
            "public/g/x",
            json!({ "content": "x", "tags": ["no spaces"] }),
        )
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;

    let r = app
        .publish("public/g/big", json!({ "content": "x".repeat(1025) }))
        .await;
    let m = expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "content_too_large").await;
    assert!(m.contains("1024"), "{m}");
    let r = app
        .publish("public/g/huge", json!({ "content": "x".repeat(200_000) }))
        .await;
    expect_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let r = app
        .request(Method::PUT, "/api/v1/configs/public/g/x")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"content\": ")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "malformed_request").await;
    let r = app
        .request(Method::PUT, "/api/v1/configs/public/g/x")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"contents\": \"x\"}")
        .send()
        .await
        .unwrap();
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert!(m.contains("content"), "{m}");

    let r = app.publish("nowhere/g/x", json!({ "content": "x" })).await;
    expect_error(r, StatusCode::NOT_FOUND, "namespace_not_found").await;
    let r = app
        .request(Method::GET, "/api/v1/configs/public/g/missing")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "config_not_found").await;
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/g/missing")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "config_not_found").await;
    let r = app
        .request(
            Method::GET,
            &format!("/api/v1/configs/{KEY}/history/999999"),
        )
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "revision_not_found").await;
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}/history/abc"))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "malformed_request").await;
    // Revisions are positive: zero or less is the caller's mistake, said as such.
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}/history/0"))
        .send()
        .await
        .unwrap();
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert!(m.contains("positive"), "{m}");
    let r = app
        .request(Method::POST, &format!("/api/v1/configs/{KEY}/rollback"))
        .json(&json!({ "revision": -4 }))
        .send()
        .await
        .unwrap();
    let m = expect_error(r, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert!(m.contains("positive"), "{m}");
    let r = app
        .request(Method::GET, "/api/v1/configs?page_size=100000")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;

    let key = |d: &str| json!({ "namespace": "public", "group": "g", "data_id": d });
    let r = app
        .watch(json!([key("a"), key("b"), key("c"), key("d")]), 0)
        .await;
    let m = expect_error(r, StatusCode::BAD_REQUEST, "too_many_keys").await;
    assert!(m.contains("limit is 3"), "{m}");
    let r = app.watch(json!([]), 0).await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;

    let r = app
        .request(Method::GET, "/api/v1/nothing-here")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .request(Method::PATCH, &format!("/api/v1/configs/{KEY}"))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    // Rolling back to a deletion is refused with the reason.
    app.publish_ok("public/g/gone", "x").await;
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/g/gone")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, history) = app.get_json("/api/v1/configs/public/g/gone/history").await;
    let deletion = history["items"][0]["revision"].as_i64().unwrap();
    let r = app
        .request(Method::POST, "/api/v1/configs/public/g/gone/rollback")
        .json(&json!({ "revision": deletion }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "revision_is_deletion").await;
}

#[tokio::test]
async fn auth_is_required_and_enforced() {
    let app = TestApp::spawn().await;
    let anonymous = reqwest::Client::new();

    let r = anonymous
        .get(format!("{}/api/v1/configs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    expect_error(r, StatusCode::UNAUTHORIZED, "missing_token").await;
    let r = anonymous
        .get(format!("{}/api/v1/configs", app.base))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = anonymous
        .get(format!("{}/api/v1/configs", app.base))
        .header(header::AUTHORIZATION, "Basic YWRtaW46eA==")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = anonymous
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "username": "admin", "password": "wrong-password" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "bad_credentials").await;
    let r = anonymous
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "username": "nobody", "password": "wrong-password" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "bad_credentials").await;

    // Health, readiness and metrics are open.
    for path in ["/health", "/ready", "/metrics"] {
        let r = anonymous
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }

    // A plain user can publish but not manage users or namespaces.
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "bob", "password": "short" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "weak_password").await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "bob", "password": "bob-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let bob = app.login("bob", "bob-password-1").await;
    let as_bob = |method: Method, path: &str| {
        app.http
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(&bob)
    };
    // A new user may do nothing until granted something.
    let r = as_bob(Method::PUT, "/api/v1/configs/public/g/bob.txt")
        .json(&json!({ "content": "hi" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "bob", "namespace": "public", "level": "write" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = as_bob(Method::PUT, "/api/v1/configs/public/g/bob.txt")
        .json(&json!({ "content": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = as_bob(Method::POST, "/api/v1/namespaces")
        .json(&json!({ "name": "prod" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = as_bob(Method::GET, "/api/v1/users").send().await.unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = as_bob(Method::PUT, "/api/v1/users/admin/password")
        .json(&json!({ "password": "taken-over-1" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    // Changing your own password needs the current one; then the old tokens are void.
    let r = as_bob(Method::PUT, "/api/v1/users/bob/password")
        .json(&json!({ "password": "bob-password-2" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "current_password_required").await;
    let r = as_bob(Method::PUT, "/api/v1/users/bob/password")
        .json(&json!({ "password": "bob-password-2", "current_password": "guess-123" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "wrong_password").await;
    let r = as_bob(Method::PUT, "/api/v1/users/bob/password")
        .json(&json!({ "password": "bob-password-2", "current_password": "bob-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = as_bob(Method::GET, "/api/v1/configs").send().await.unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let bob2 = app.login("bob", "bob-password-2").await;

    // Roles: only an admin gives them; the change holds for the user's live token; the
    // last admin cannot be made a user; an unknown role is refused by name.
    let role = |who: &str, role: &str, token: &str| {
        app.http
            .put(format!("{}/api/v1/users/{who}/role", app.base))
            .bearer_auth(token)
            .json(&json!({ "role": role }))
    };
    let r = role("bob", "admin", &bob2).send().await.unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = role("admin", "user", &app.token).send().await.unwrap();
    expect_error(r, StatusCode::CONFLICT, "last_admin").await;
    let r = role("bob", "root", &app.token).send().await.unwrap();
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(message.contains("root"), "{message}");
    let r = role("bob", "admin", &app.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .http
        .get(format!("{}/api/v1/users", app.base))
        .bearer_auth(&bob2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "bob's token now acts as an admin"
    );
    let r = role("bob", "user", &app.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // An admin changing their own password also needs the current one: a stolen admin
    // token alone cannot lock the owner out.
    let r = app
        .request(Method::PUT, "/api/v1/users/admin/password")
        .json(&json!({ "password": "taken-over-2" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "current_password_required").await;

    // Deleting a user voids their tokens; the last admin cannot be deleted.
    let r = app
        .request(Method::DELETE, "/api/v1/users/bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .http
        .get(format!("{}/api/v1/configs", app.base))
        .bearer_auth(&bob2)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = app
        .request(Method::DELETE, "/api/v1/users/admin")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::CONFLICT, "last_admin").await;
}

#[tokio::test]
async fn failed_logins_slow_down_that_name_before_any_hashing() {
    let app = TestApp::spawn().await;
    let login = |password: &'static str| {
        app.http
            .post(format!("{}/api/v1/auth/login", app.base))
            .json(&json!({ "username": "admin", "password": password }))
            .send()
    };
    for _ in 0..5 {
        let r = login("wrong-password").await.unwrap();
        expect_error(r, StatusCode::UNAUTHORIZED, "bad_credentials").await;
    }
    // The sixth attempt waits, even with the right password.
    let r = login(ADMIN_PASSWORD).await.unwrap();
    let message = expect_error(r, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert!(message.contains("try again in 1 s"), "{message}");
    // Nacos's login refuses it the Nacos way.
    let r = app
        .http
        .post(format!(
            "{}/nacos/v1/auth/login?username=admin&password={ADMIN_PASSWORD}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let r = login(ADMIN_PASSWORD).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "after the wait the right password works"
    );
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let app =
        TestApp::spawn_with(|s| s.token_ttl_secs = cairn_server::settings::Secs::new(1)).await;
    let r = app
        .request(Method::GET, "/api/v1/configs")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = app
        .request(Method::GET, "/api/v1/configs")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "token_expired").await;
}

#[tokio::test]
async fn watch_timeouts_default_and_are_clamped() {
    let app = TestApp::spawn_with(|s| {
        s.watch_default_timeout_ms = cairn_server::settings::Millis::new(600);
        s.watch_max_timeout_ms = cairn_server::settings::Millis::new(1_200);
    })
    .await;
    let key = json!({ "namespace": "public", "group": "g", "data_id": "quiet.txt", "md5": "" });
    // No timeout given: the default.
    let started = Instant::now();
    let r = app
        .request(Method::POST, "/api/v1/watch")
        .json(&json!({ "keys": [key] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "changed": [] }));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(590) && waited < Duration::from_millis(1_150),
        "{waited:?}"
    );
    // More than the maximum: held for the maximum only.
    let started = Instant::now();
    let r = app.watch(json!([key]), 3_600_000).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "changed": [] }));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1_190) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn missing_things_are_404_not_empty_pages() {
    let app = TestApp::spawn().await;
    let r = app
        .request(Method::GET, "/api/v1/configs/public/g/never.txt/history")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "config_not_found").await;
    let r = app
        .request(Method::GET, "/api/v1/configs?namespace=nosuch")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "namespace_not_found").await;
    // An existing namespace with nothing matching is an empty page; a deleted config
    // keeps its history.
    let (status, page) = app.get_json("/api/v1/configs?namespace=public").await;
    assert_eq!((status, page["total"].as_u64()), (StatusCode::OK, Some(0)));
    app.publish_ok("public/g/gone.txt", "x").await;
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/g/gone.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, history) = app
        .get_json("/api/v1/configs/public/g/gone.txt/history")
        .await;
    assert_eq!(
        (status, history["total"].as_u64()),
        (StatusCode::OK, Some(2))
    );
}

#[tokio::test]
async fn watch_times_out_fires_on_creation_and_deletion() {
    let app = TestApp::spawn().await;
    let key = json!({ "namespace": "public", "group": "g", "data_id": "later.json", "md5": "" });

    // Nothing exists and the client holds nothing: held until the timeout, then empty.
    let started = Instant::now();
    let r = app.watch(json!([key]), 300).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "changed": [] }));
    assert!(started.elapsed() >= Duration::from_millis(290));

    // Creation wakes a watcher of a key that did not exist.
    let waiting = app.spawn_watch(json!([key]), 20_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.publish_ok("public/g/later.json", "{}").await;
    let (_, created, _) = waiting.await.unwrap();
    assert_eq!(created["changed"][0]["exists"], true);
    let md5 = created["changed"][0]["md5"].as_str().unwrap().to_owned();

    // A stale md5 is answered at once.
    let started = Instant::now();
    let r = app.watch(json!([key]), 20_000).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["changed"][0]["md5"],
        md5.as_str()
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Deletion wakes a watcher holding the current md5.
    let mut current = key.clone();
    current["md5"] = json!(md5);
    let waiting = app.spawn_watch(json!([current]), 20_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/g/later.json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, deleted, _) = waiting.await.unwrap();
    assert_eq!(
        deleted["changed"][0],
        json!({ "namespace": "public", "group": "g", "data_id": "later.json", "md5": "", "revision": null, "exists": false })
    );
}

#[tokio::test]
async fn a_change_wakes_only_watchers_of_that_key() {
    let app = TestApp::spawn().await;
    let watch = |data_id: &str| {
        let key = json!({ "namespace": "public", "group": "g", "data_id": data_id, "md5": "" });
        app.spawn_watch(json!([key]), 1_500)
    };
    let a = watch("a");
    let b = watch("b");
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.publish_ok("public/g/a", "x").await;
    assert_eq!(a.await.unwrap().1["changed"][0]["data_id"], "a");
    assert_eq!(
        b.await.unwrap().1,
        json!({ "changed": [] }),
        "b timed out untouched"
    );
}

#[tokio::test]
async fn shutdown_answers_held_watches() {
    let app = TestApp::spawn().await;
    let key = json!({ "namespace": "public", "group": "g", "data_id": "x", "md5": "" });
    let waiting = app.spawn_watch(json!([key]), 60_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    let base = app.base.clone();
    app.stop().await;
    let (status, body, held) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "changed": [] }));
    assert!(
        held < Duration::from_secs(10),
        "answered at shutdown, not at the timeout"
    );
    assert!(stopping.elapsed() < Duration::from_secs(10));
    assert!(
        reqwest::get(format!("{base}/health")).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn list_and_search() {
    let app = TestApp::spawn().await;
    let r = app
        .request(Method::POST, "/api/v1/namespaces")
        .json(&json!({ "name": "dev", "description": "Development" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    for (key, content, tags) in [
        (
            "public/shop/db.properties",
            "url=jdbc:pg://db\n",
            vec!["db"],
        ),
        ("public/shop/app.yaml", "name: shop\n", vec!["web"]),
        ("public/blog/app.yaml", "name: blog\n", vec!["web"]),
        ("dev/shop/app.yaml", "name: shop-dev\n", vec![]),
    ] {
        let r = app
            .publish(key, json!({ "content": content, "tags": tags }))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{key}");
    }
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}/{}/{}",
                    c["namespace"].as_str().unwrap(),
                    c["group"].as_str().unwrap(),
                    c["data_id"].as_str().unwrap()
                )
            })
            .collect()
    };
    let (_, all) = app.get_json("/api/v1/configs").await;
    assert_eq!(all["total"], 4);
    assert!(
        all["items"][0].get("content").is_none(),
        "lists carry no content"
    );
    let (_, public) = app.get_json("/api/v1/configs?namespace=public").await;
    assert_eq!(
        ids(&public),
        [
            "public/blog/app.yaml",
            "public/shop/app.yaml",
            "public/shop/db.properties"
        ]
    );
    let (_, yaml) = app
        .get_json("/api/v1/configs?data_id=*.yaml&group=sh*")
        .await;
    assert_eq!(ids(&yaml), ["dev/shop/app.yaml", "public/shop/app.yaml"]);
    let (_, web) = app.get_json("/api/v1/configs?tag=web").await;
    assert_eq!(web["total"], 2);
    let (_, text) = app.get_json("/api/v1/configs?q=jdbc").await;
    assert_eq!(ids(&text), ["public/shop/db.properties"]);
    let (_, page2) = app.get_json("/api/v1/configs?page=2&page_size=3").await;
    assert_eq!((page2["total"].as_u64(), ids(&page2).len()), (Some(4), 1));

    let (_, namespaces) = app.get_json("/api/v1/namespaces").await;
    assert_eq!(namespaces[0]["name"], "dev");
    assert_eq!(namespaces[0]["config_count"], 1);
    let r = app
        .request(Method::DELETE, "/api/v1/namespaces/dev")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::CONFLICT, "namespace_not_empty").await;
    let r = app
        .request(Method::DELETE, "/api/v1/namespaces/public")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::CONFLICT, "public_namespace").await;
    let r = app
        .request(Method::POST, "/api/v1/namespaces")
        .json(&json!({ "name": "dev" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::CONFLICT, "namespace_exists").await;
    let r = app
        .request(Method::DELETE, "/api/v1/configs/dev/shop/app.yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .request(Method::DELETE, "/api/v1/namespaces/dev")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = app.get_json("/api/v1/namespaces/dev").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn server_sent_events_stream_changes() {
    let app = TestApp::spawn().await;
    app.publish_ok("public/g/a.txt", "one").await;
    let r = app
        .request(
            Method::GET,
            "/api/v1/watch/stream?keys=public/g/a.txt,public/g/b.txt",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = r.bytes_stream();
    let mut text = String::new();
    // The current state of both keys comes first.
    read_until(&mut body, &mut text, "\"data_id\":\"b.txt\"").await;
    assert!(text.contains("\"data_id\":\"a.txt\""), "{text}");
    let rev = app.publish_ok("public/g/b.txt", "two").await;
    read_until(&mut body, &mut text, &format!("\"revision\":{rev}")).await;
    assert!(text.contains("event: change"), "{text}");
}

/// Reads a byte stream into `text` until it contains `needle`.
async fn read_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
    needle: &str,
) {
    use futures::StreamExt;
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while !text.contains(needle) {
            let chunk = body.next().await.expect("stream open").unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(found.is_ok(), "no {needle:?} in {text:?}");
}

#[tokio::test]
async fn data_survives_a_restart() {
    let app = TestApp::spawn().await;
    let rev = app.publish_ok(KEY, "kept: true\n").await;
    let dir = app.stop().await;
    // The restarted node is not given the admin password: the user exists already.
    let mut settings = crate::helpers::settings(dir.path());
    settings.admin_password = None;
    let again = TestApp::start(dir, settings).await;
    let (status, config) = again
        .get_json(&format!("/api/v1/configs/{KEY}?view=json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (config["content"].as_str(), config["revision"].as_i64()),
        (Some("kept: true\n"), Some(rev))
    );
    let (_, users) = again.get_json("/api/v1/users").await;
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "no second admin on restart"
    );
    assert!(!again.login("admin", ADMIN_PASSWORD).await.is_empty());
}

#[tokio::test]
async fn openapi_and_metrics_describe_the_node() {
    let app = TestApp::spawn().await;
    let r = reqwest::get(format!("{}/api/v1/openapi.json", app.base))
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "missing_token").await;
    let (status, doc) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/configs/{namespace}/{group}/{data_id}",
        "/api/v1/watch",
        "/api/v1/auth/login",
        "/api/v1/namespaces",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(doc["components"]["schemas"].get("PublishRequest").is_some());
    app.publish_ok(KEY, "a: 1").await;
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("cairn_http_requests_total{method=\"PUT\",route=\"/api/v1/configs/{namespace}/{group}/{data_id}\",status=\"200\"}"), "{text}");
    assert!(
        text.contains("cairn_http_request_duration_seconds_bucket"),
        "{text}"
    );
    // Gauges are process-wide and other tests' nodes set them too; check they render.
    assert!(
        text.lines().any(|l| l.starts_with("cairn_configs_cached ")),
        "{text}"
    );
    assert!(text.contains("cairn_watchers_held"), "{text}");
    assert!(text.contains("cairn_sync_applied_seq"), "{text}");
}

#[tokio::test]
async fn parameters_that_are_not_utf8_are_refused_not_mangled() {
    let app = TestApp::spawn().await;
    // `%FF` is no UTF-8 byte sequence: read leniently, it would become U+FFFD.
    let r = app
        .request(Method::GET, "/api/v1/audit?action=%FF")
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::BAD_REQUEST, "malformed_request").await;
    assert!(
        message.contains("parameter action is not UTF-8"),
        "{message}"
    );
    for path in [
        "/configs/shop/default/application?ip=%C3%28",
        "/configfiles/json/shop/default/application?label=%FF",
        "/notifications/v2?appId=shop&cluster=default&notifications=%5B%5D&ip=%FF",
    ] {
        let r = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("is not UTF-8 once decoded"), "{path}: {body}");
    }
    app.stop().await;
}
