//! Grants on every HTTP surface: a user with `read` on `dev` reads `dev`, cannot publish
//! there, cannot read `prod`, and sees only `dev` in lists; a watch of what they may not
//! read is refused; a grant taken away ends their held watches; Nacos's auth API gives
//! and takes the same grants. (gRPC's side is in `grpc.rs`.)

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect_error, TestApp};

const READER_PASSWORD: &str = "reader-password-1";

/// A node with `dev/g/a.yaml` and `prod/g/b.yaml`, and a user `reader` with read on
/// `dev` only; returns the reader's token.
async fn setup() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    for ns in ["dev", "prod"] {
        let r = app
            .request(Method::POST, "/api/v1/namespaces")
            .json(&json!({ "name": ns }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    app.publish_ok("dev/g/a.yaml", "a: 1").await;
    app.publish_ok("prod/g/b.yaml", "b: 1").await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "reader", "password": READER_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    grant(&app, "dev", "read").await;
    let token = app.login("reader", READER_PASSWORD).await;
    (app, token)
}

async fn grant(app: &TestApp, namespace: &str, level: &str) {
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "reader", "namespace": namespace, "level": level }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

fn as_user(app: &TestApp, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
}

#[tokio::test]
async fn the_native_api_enforces_grants_and_lists_only_what_may_be_read() {
    let (app, token) = setup().await;
    let get = |path: &str| as_user(&app, &token, Method::GET, path).send();

    let r = get("/api/v1/configs/dev/g/a.yaml").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "a: 1");
    let r = as_user(&app, &token, Method::PUT, "/api/v1/configs/dev/g/a.yaml")
        .json(&json!({ "content": "a: 2" }))
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(
        message.contains("reader may not change config dev/g/a.yaml"),
        "{message}"
    );
    assert!(
        message.contains("cairn grant"),
        "says what grants it: {message}"
    );
    for path in [
        "/api/v1/configs/prod/g/b.yaml",
        "/api/v1/configs/prod/g/b.yaml/history",
        "/api/v1/configs/prod/g/b.yaml/history/1",
        "/api/v1/configs/prod/g/b.yaml/listeners",
        "/api/v1/namespaces/prod",
    ] {
        let r = get(path).await.unwrap();
        expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let r = as_user(&app, &token, Method::DELETE, "/api/v1/configs/dev/g/a.yaml")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    let (_, all) = app.get_json("/api/v1/configs").await;
    assert_eq!(all["total"], 2, "an admin sees everything: {all}");
    let r = get("/api/v1/configs").await.unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["namespace"], "dev");
    let r = get("/api/v1/namespaces").await.unwrap();
    let namespaces: Value = r.json().await.unwrap();
    let names: Vec<&str> = namespaces
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dev"]);

    // A watch of a key that may not be read is refused, never silently empty.
    let r = as_user(&app, &token, Method::POST, "/api/v1/watch")
        .json(&json!({ "keys": [
            { "namespace": "dev", "group": "g", "data_id": "a.yaml", "md5": "" },
            { "namespace": "prod", "group": "g", "data_id": "b.yaml", "md5": "" },
        ], "timeout_ms": 1000 }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = get("/api/v1/watch/stream?keys=prod/g/b.yaml")
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    // Managing grants needs the admin role, or admin on the namespace.
    let r = as_user(&app, &token, Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "reader", "namespace": "prod", "level": "write" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    grant(&app, "dev", "admin").await;
    let r = as_user(&app, &token, Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "reader", "namespace": "dev", "group": "g", "level": "write" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "a namespace's admin grants in it"
    );
    let r = as_user(&app, &token, Method::PUT, "/api/v1/namespaces/dev")
        .json(&json!({ "description": "ours" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "and changes its settings");
    let r = as_user(&app, &token, Method::PUT, "/api/v1/namespaces/dev")
        .json(&json!({ "apollo_anonymous_apps": ["*"] }))
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(
        message.contains("admin role"),
        "opening it to anyone is not theirs: {message}"
    );
    let r = as_user(&app, &token, Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "reader", "namespace": "*", "level": "write" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = get("/api/v1/grants").await.unwrap();
    let grants: Value = r.json().await.unwrap();
    assert_eq!(grants.as_array().unwrap().len(), 2, "{grants}");
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "nobody", "namespace": "dev", "level": "read" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "user_not_found").await;
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "reader", "namespace": "dev", "level": "all" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    app.stop().await;
}

#[tokio::test]
async fn nacos_http_answers_a_missing_grant_with_its_403() {
    let (app, token) = setup().await;
    let nacos = |method: Method, path: &str| {
        app.http
            .request(method, format!("{}{path}", app.base))
            .query(&[("accessToken", token.as_str())])
    };
    let r = nacos(
        Method::GET,
        "/nacos/v1/cs/configs?dataId=a.yaml&group=g&tenant=dev",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "a: 1");
    let r = nacos(Method::POST, "/nacos/v1/cs/configs")
        .form(&[
            ("dataId", "a.yaml"),
            ("group", "g"),
            ("tenant", "dev"),
            ("content", "a: 2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "authorization failed!", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("reader may not change"),
        "{body}"
    );
    for path in [
        "/nacos/v1/cs/configs?dataId=b.yaml&group=g&tenant=prod",
        "/nacos/v1/cs/history?search=accurate&dataId=b.yaml&group=g&tenant=prod",
        "/nacos/v2/cs/config?dataId=b.yaml&group=g&namespaceId=prod",
    ] {
        let r = nacos(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let r = nacos(Method::POST, "/nacos/v1/cs/configs/listener")
        .header("Long-Pulling-Timeout", "30000")
        .form(&[("Listening-Configs", "b.yaml\u{2}g\u{2}\u{2}prod\u{1}")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a listener of prod is refused"
    );
    let r = nacos(
        Method::GET,
        "/nacos/v1/cs/configs?search=blur&dataId=&group=&tenant=prod",
    )
    .send()
    .await
    .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["totalCount"], 0, "{page}");
    let r = nacos(Method::GET, "/nacos/v1/console/namespaces")
        .send()
        .await
        .unwrap();
    let namespaces: Value = r.json().await.unwrap();
    let ids: Vec<&str> = namespaces["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dev"], "{namespaces}");
    app.stop().await;
}

#[tokio::test]
async fn a_grant_taken_away_ends_the_users_held_watches() {
    let (app, token) = setup().await;
    let (_, config) = app.get_json("/api/v1/configs/dev/g/a.yaml?view=json").await;
    let md5 = config["md5"].as_str().unwrap().to_owned();
    let keys = json!([{ "namespace": "dev", "group": "g", "data_id": "a.yaml", "md5": md5 }]);
    let poll = as_user(&app, &token, Method::POST, "/api/v1/watch")
        .json(&json!({ "keys": keys, "timeout_ms": 30_000 }))
        .send();
    let stream = as_user(
        &app,
        &token,
        Method::GET,
        "/api/v1/watch/stream?keys=dev/g/a.yaml",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let poll = tokio::spawn(poll);
    // Both are held before the grant goes.
    for _ in 0..100 {
        let (_, watching) = app.get_json("/api/v1/configs/dev/g/a.yaml/listeners").await;
        if watching["listeners"].as_array().map_or(0, Vec::len) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let r = app
        .request(Method::DELETE, "/api/v1/grants?user=reader&namespace=dev")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let answered = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the held poll is answered when the grant goes")
        .unwrap()
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["changed"], json!([]));
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.text())
        .await
        .expect("the stream ends when the grant goes")
        .unwrap();
    assert!(
        rest.contains("event: change"),
        "the stream had sent its first state: {rest}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = as_user(&app, &token, Method::POST, "/api/v1/watch")
        .json(&json!({ "keys": keys, "timeout_ms": 1000 }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .request(Method::DELETE, "/api/v1/grants?user=reader&namespace=dev")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "grant_not_found").await;
    app.stop().await;
}

/// Nacos's `RestResult` message of an answer.
async fn nacos_message(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 200, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn nacos_auth_api_gives_and_takes_the_same_grants() {
    let (app, reader) = setup().await;
    let as_admin = |method: Method, path: &str| {
        app.http
            .request(method, format!("{}{path}", app.base))
            .query(&[("accessToken", app.token.as_str())])
    };
    let r = as_admin(Method::POST, "/nacos/v1/auth/users")
        .form(&[("username", "ops"), ("password", "ops-password-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(nacos_message(r).await, "create user ok!");
    let r = as_admin(Method::POST, "/nacos/v1/auth/roles")
        .form(&[("role", "dev-readers"), ("username", "ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(nacos_message(r).await, "add role ok!");
    let r = as_admin(Method::POST, "/nacos/v1/auth/permissions")
        .form(&[
            ("role", "dev-readers"),
            ("resource", "dev:*:*"),
            ("action", "r"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(nacos_message(r).await, "add permission ok!");

    let r = app
        .http
        .post(format!("{}/nacos/v1/auth/login", app.base))
        .form(&[("username", "ops"), ("password", "ops-password-1")])
        .send()
        .await
        .unwrap();
    let login: Value = r.json().await.unwrap();
    let ops = login["accessToken"].as_str().unwrap().to_owned();
    let read = |tenant: &'static str, data_id: &'static str| {
        app.http
            .get(format!("{}/nacos/v1/cs/configs", app.base))
            .query(&[("dataId", data_id), ("group", "g"), ("tenant", tenant)])
            .query(&[("accessToken", ops.as_str())])
            .send()
    };
    assert_eq!(
        read("dev", "a.yaml").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        read("prod", "b.yaml").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    let r = as_admin(
        Method::GET,
        "/nacos/v1/auth/permissions?role=dev-readers&pageNo=1&pageSize=10",
    )
    .send()
    .await
    .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["totalCount"], 1, "{page}");
    assert_eq!(
        page["pageItems"][0],
        json!({ "role": "dev-readers", "resource": "dev:*:*", "action": "r" })
    );
    let r = as_admin(
        Method::GET,
        "/nacos/v1/auth/roles?username=ops&pageNo=1&pageSize=10",
    )
    .send()
    .await
    .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(
        page["pageItems"],
        json!([{ "role": "dev-readers", "username": "ops" }])
    );
    // The same grant, seen through the native API.
    let (_, grants) = app.get_json("/api/v1/grants?role=dev-readers").await;
    assert_eq!(grants[0]["namespace"], "dev", "{grants}");
    assert_eq!(grants[0]["level"], "read");
    // Users never leak their password hashes.
    let r = as_admin(Method::GET, "/nacos/v1/auth/users?pageNo=1&pageSize=10")
        .send()
        .await
        .unwrap();
    let users: Value = r.json().await.unwrap();
    assert!(users["pageItems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["password"] == ""));

    // Only admins manage users, roles and permissions.
    let r = app
        .http
        .post(format!("{}/nacos/v1/auth/users", app.base))
        .query(&[("accessToken", reader.as_str())])
        .form(&[("username", "eve"), ("password", "eve-password-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let r = as_admin(Method::DELETE, "/nacos/v1/auth/permissions")
        .query(&[
            ("role", "dev-readers"),
            ("resource", "dev:*:*"),
            ("action", "r"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(nacos_message(r).await, "delete permission ok!");
    assert_eq!(
        read("dev", "a.yaml").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let r = as_admin(Method::POST, "/nacos/v1/auth/roles")
        .form(&[("role", "ROLE_ADMIN"), ("username", "ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(nacos_message(r).await, "add role ok!");
    assert_eq!(
        read("prod", "b.yaml").await.unwrap().status(),
        StatusCode::OK,
        "ROLE_ADMIN is the global admin"
    );
    app.stop().await;
}

#[tokio::test]
async fn service_tokens_are_scoped_shown_once_and_revocable() {
    let (app, _) = setup().await;
    let r = app
        .request(Method::POST, "/api/v1/tokens")
        .json(&json!({ "name": "ci", "scopes": [{ "namespace": "dev", "level": "read" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().await.unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cst_") && token.len() > 60, "{token}");
    let again = app
        .request(Method::POST, "/api/v1/tokens")
        .json(&json!({ "name": "ci", "scopes": [{ "namespace": "dev", "level": "read" }] }))
        .send()
        .await
        .unwrap();
    let message = expect_error(again, StatusCode::CONFLICT, "token_exists").await;
    assert!(message.contains("revoke it first"), "{message}");
    for (body, code) in [
        (
            json!({ "name": "", "scopes": [{ "namespace": "dev", "level": "read" }] }),
            "invalid_argument",
        ),
        (
            json!({ "name": "bad:name", "scopes": [{ "namespace": "dev", "level": "read" }] }),
            "invalid_argument",
        ),
        (json!({ "name": "x", "scopes": [] }), "invalid_argument"),
        (
            json!({ "name": "x", "scopes": [{ "namespace": "dev", "level": "root" }] }),
            "invalid_argument",
        ),
        (
            json!({ "name": "x", "scopes": [{ "namespace": "*", "level": "admin" }] }),
            "invalid_argument",
        ),
    ] {
        let r = app
            .request(Method::POST, "/api/v1/tokens")
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, StatusCode::BAD_REQUEST, code).await;
    }

    // Accepted wherever a login token is, within its scope.
    let r = as_user(&app, &token, Method::GET, "/api/v1/configs/dev/g/a.yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .http
        .get(format!("{}/nacos/v1/cs/configs", app.base))
        .query(&[
            ("dataId", "a.yaml"),
            ("group", "g"),
            ("tenant", "dev"),
            ("accessToken", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = as_user(&app, &token, Method::GET, "/api/v1/configs/prod/g/b.yaml")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = as_user(&app, &token, Method::PUT, "/api/v1/configs/dev/g/a.yaml")
        .json(&json!({ "content": "a: 2" }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = as_user(&app, &token, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    // Listed with its last use, never with the token.
    let (_, tokens) = app.get_json("/api/v1/tokens").await;
    assert_eq!(tokens[0]["name"], "ci");
    assert_eq!(
        tokens[0]["scopes"],
        json!([{ "namespace": "dev", "level": "read" }])
    );
    assert!(tokens[0]["last_used_at"].is_string(), "{tokens}");
    assert!(!tokens.to_string().contains(&token));

    // Revoked: its held watch ends, and it is refused from then on.
    let keys = json!([{ "namespace": "dev", "group": "g", "data_id": "a.yaml", "md5": "x" }]);
    let (_, config) = app.get_json("/api/v1/configs/dev/g/a.yaml?view=json").await;
    let keys = {
        let mut k = keys;
        k[0]["md5"] = config["md5"].clone();
        k
    };
    let poll = tokio::spawn(
        as_user(&app, &token, Method::POST, "/api/v1/watch")
            .json(&json!({ "keys": keys, "timeout_ms": 30_000 }))
            .send(),
    );
    for _ in 0..100 {
        let (_, watching) = app.get_json("/api/v1/configs/dev/g/a.yaml/listeners").await;
        if !watching["listeners"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = app
        .request(Method::DELETE, "/api/v1/tokens/ci")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let answered = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the token's held watch ends when it is revoked")
        .unwrap()
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let r = as_user(&app, &token, Method::GET, "/api/v1/configs/dev/g/a.yaml")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = app
        .request(Method::DELETE, "/api/v1/tokens/ci")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "token_not_found").await;
    // Audit entries of acts other than config changes are written in the background.
    let mut actions = Vec::new();
    for _ in 0..100 {
        let (_, audit) = app.get_json("/api/v1/audit?action=token&result=ok").await;
        actions = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        if actions.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(actions, ["token.revoke", "token.create"]);
    app.stop().await;
}

#[tokio::test]
async fn sensitive_configs_are_shown_only_with_read_secret() {
    let (app, token) = setup().await;
    let r = app
        .publish(
            "dev/db/app.properties",
            json!({ "content": "password=Hunter2", "sensitive": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let published: Value = r.json().await.unwrap();
    assert_eq!(published["sensitive"], true);
    // Nacos's convention: a `cipher-` data id is sensitive by its name.
    app.publish_ok("dev/db/cipher-aes-key", "wrapped-key").await;
    let get = |path: &str| as_user(&app, &token, Method::GET, path).send();
    let refused = |path: &str| {
        let request = get(path);
        async move {
            let message =
                expect_error(request.await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;
            assert!(message.contains("read-secret"), "{message}");
            assert!(!message.contains("Hunter2"), "{message}");
        }
    };

    // With read only: refused on every read, left out of lists, exports and watches.
    refused("/api/v1/configs/dev/db/app.properties").await;
    refused("/api/v1/configs/dev/db/cipher-aes-key?view=json").await;
    refused("/api/v1/configs/dev/db/app.properties/history").await;
    let nacos = |path: &str| {
        app.http
            .get(format!("{}{path}", app.base))
            .query(&[("accessToken", token.as_str())])
            .send()
    };
    let r = nacos("/nacos/v1/cs/configs?dataId=app.properties&group=db&tenant=dev")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!r.text().await.unwrap().contains("Hunter2"));
    // The same token reads what is not sensitive there.
    let r = nacos("/nacos/v1/cs/configs?dataId=a.yaml&group=g&tenant=dev")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = get("/api/v1/configs?namespace=dev").await.unwrap();
    let listed: Value = r.json().await.unwrap();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.yaml"]);
    let r = get("/api/v1/namespaces/dev/export?format=cairn")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let exported = r.text().await.unwrap();
    assert!(
        !exported.contains("Hunter2") && !exported.contains("wrapped-key"),
        "{exported}"
    );
    let r = as_user(&app, &token, Method::POST, "/api/v1/watch")
        .json(&json!({ "keys": [{ "namespace": "dev", "group": "db", "data_id": "app.properties", "md5": "" }], "timeout_ms": 100 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = as_user(&app, &token, Method::POST, "/api/v1/watch")
        .json(&json!({ "patterns": [{ "namespace": "dev" }], "since": 0 }))
        .send()
        .await
        .unwrap();
    let matched: Value = r.json().await.unwrap();
    let names: Vec<&str> = matched["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.yaml"], "a pattern watch leaves them out too");

    // A read-secret grant opens them.
    grant(&app, "dev", "read-secret").await;
    let r = get("/api/v1/configs/dev/db/app.properties").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "password=Hunter2");
    let r = get("/api/v1/configs/dev/db/cipher-aes-key").await.unwrap();
    assert_eq!(r.text().await.unwrap(), "wrapped-key");
    let exported = get("/api/v1/namespaces/dev/export?format=cairn")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(exported.contains("\"sensitive\":true"), "{exported}");
    // Read-secret does not include writing.
    let r = as_user(
        &app,
        &token,
        Method::PUT,
        "/api/v1/configs/dev/db/app.properties",
    )
    .json(&json!({ "content": "password=mine" }))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The mark stays through later publishes that do not mention it, and a writer can
    // take it off; what was written while it was on stays behind read-secret, in
    // history, in diffs, and through a rollback.
    grant(&app, "dev", "read").await;
    let r = app
        .publish(
            "dev/db/app.properties",
            json!({ "content": "password=Second" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = r.json::<Value>().await.unwrap()["revision"]
        .as_i64()
        .unwrap();
    refused("/api/v1/configs/dev/db/app.properties").await;
    let r = app
        .publish(
            "dev/db/app.properties",
            json!({ "content": "password=public", "sensitive": false }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let public = r.json::<Value>().await.unwrap()["revision"]
        .as_i64()
        .unwrap();
    let r = get("/api/v1/configs/dev/db/app.properties").await.unwrap();
    assert_eq!(r.text().await.unwrap(), "password=public");
    let r = get(&format!(
        "/api/v1/configs/dev/db/app.properties/history/{public}"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    refused(&format!(
        "/api/v1/configs/dev/db/app.properties/history/{second}"
    ))
    .await;
    refused(&format!(
        "/api/v1/configs/dev/db/app.properties/diff?from={second}"
    ))
    .await;
    let r = nacos(&format!(
        "/nacos/v1/cs/history?nid={second}&dataId=app.properties&group=db&tenant=dev"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = nacos(&format!(
        "/nacos/v1/cs/history?nid={public}&dataId=app.properties&group=db&tenant=dev"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .request(
            Method::POST,
            "/api/v1/configs/dev/db/app.properties/rollback",
        )
        .json(&json!({ "revision": second }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rolled: Value = r.json().await.unwrap();
    assert_eq!(rolled["sensitive"], true, "{rolled}");
    refused("/api/v1/configs/dev/db/app.properties").await;
    app.stop().await;
}
