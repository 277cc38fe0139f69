//! Gray releases end to end: who is served what, who is woken when, and what history
//! records.

use std::time::Duration;

use crate::helpers::{expect_error, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "public/shop/app.yaml";

fn held(md5: &str) -> Value {
    json!([{ "namespace": "public", "group": "shop", "data_id": "app.yaml", "md5": md5 }])
}

/// Reads the config as a client declaring `labels` / asking to be seen with `ip`.
async fn read_as(app: &TestApp, labels: &str, ip: Option<&str>) -> (String, bool, String) {
    let mut request = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .header("x-cairn-labels", labels);
    if let Some(ip) = ip {
        request = request.header("x-cairn-client-ip", ip);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let gray = r.headers().get("x-cairn-gray").is_some();
    let etag = r.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_owned();
    (r.text().await.unwrap(), gray, etag)
}

#[tokio::test]
async fn gray_publish_promote_and_abandon() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "color: blue\n").await;
    let (_, _, main_md5) = read_as(&app, "", None).await;

    // Two watchers hold the main version; only one is a canary.
    let canary = app.spawn_watch_as(held(&main_md5), 10_000, "canary=true");
    let plain = app.spawn_watch_as(held(&main_md5), 1_500, "zone=eu-1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .request(Method::PUT, &format!("/api/v1/configs/{KEY}/gray"))
        .json(
            &json!({ "content": "color: green\n", "labels": ["canary=true"], "ips": ["10.1.1.1"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let gray: Value = r.json().await.unwrap();
    assert_eq!(gray["labels"], json!(["canary=true"]));

    let (_, woken, waited) = canary.await.unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "the canary is woken at once"
    );
    let gray_md5 = woken["changed"][0]["md5"].as_str().unwrap().to_owned();
    assert_eq!(woken["changed"][0]["revision"], gray["revision"]);
    let (_, untouched, _) = plain.await.unwrap();
    assert_eq!(
        untouched,
        json!({ "changed": [] }),
        "the others are not woken"
    );

    // Reads: matching clients (by label or by IP) get the gray content, others the main.
    assert_eq!(read_as(&app, "canary=true", None).await.0, "color: green\n");
    assert!(read_as(&app, "canary=true", None).await.1, "marked as gray");
    assert_eq!(
        read_as(&app, "", Some("10.1.1.1")).await.0,
        "color: green\n"
    );
    assert_eq!(
        read_as(&app, "zone=eu-1", Some("10.9.9.9")).await,
        ("color: blue\n".to_owned(), false, main_md5.clone())
    );
    let (_, shown) = app.get_json(&format!("/api/v1/configs/{KEY}/gray")).await;
    assert_eq!(shown["content"], "color: green\n");

    // Promotion: the plain watcher (on the old main) wakes; the canary already has it.
    let canary = app.spawn_watch_as(held(&gray_md5), 1_500, "canary=true");
    let plain = app.spawn_watch_as(held(&main_md5), 10_000, "");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .request(Method::POST, &format!("/api/v1/configs/{KEY}/gray/promote"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, woken, _) = plain.await.unwrap();
    assert_eq!(woken["changed"][0]["md5"], gray_md5.as_str());
    assert_eq!(canary.await.unwrap().1, json!({ "changed": [] }));
    assert_eq!(read_as(&app, "", None).await.0, "color: green\n");
    let (status, _) = app.get_json(&format!("/api/v1/configs/{KEY}/gray")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A second gray release, abandoned: the canary goes back to the main content.
    let r = app
        .request(Method::PUT, &format!("/api/v1/configs/{KEY}/gray"))
        .json(&json!({ "content": "color: red\n", "labels": ["canary=true"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let red_md5 = r.json::<Value>().await.unwrap()["md5"]
        .as_str()
        .unwrap()
        .to_owned();
    let canary = app.spawn_watch_as(held(&red_md5), 10_000, "canary=true");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .request(Method::DELETE, &format!("/api/v1/configs/{KEY}/gray"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, woken, _) = canary.await.unwrap();
    assert_eq!(
        woken["changed"][0]["md5"],
        gray_md5.as_str(),
        "back on the main content"
    );
    assert_eq!(read_as(&app, "canary=true", None).await.0, "color: green\n");

    // History shows every step.
    let (_, history) = app
        .get_json(&format!("/api/v1/configs/{KEY}/history"))
        .await;
    let ops: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|h| h["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "publish",
            "gray_publish",
            "gray_promote",
            "gray_publish",
            "gray_abandon"
        ]
    );
}

#[tokio::test]
async fn gray_requests_are_checked() {
    let app = TestApp::spawn().await;
    let put = |body: Value| {
        app.request(Method::PUT, &format!("/api/v1/configs/{KEY}/gray"))
            .json(&body)
            .send()
    };
    let r = put(json!({ "content": "a: 1", "labels": ["x=y"] }))
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "config_not_found").await;
    app.publish_ok(KEY, "a: 1\n").await;
    let r = put(json!({ "content": "a: 2" })).await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_gray_rules").await;
    let r = put(json!({ "content": "a: 2", "ips": ["not-an-ip"] }))
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_gray_rules").await;
    let r = put(json!({ "content": "a: [", "labels": ["x=y"] }))
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_content").await;
    let r = app
        .request(Method::POST, &format!("/api/v1/configs/{KEY}/gray/promote"))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND, "gray_not_found").await;
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .header("x-cairn-labels", "no-equals-sign")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .header("x-cairn-client-ip", "999.1.1.1")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
}

#[tokio::test]
async fn gray_releases_survive_a_restart() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "a: 1\n").await;
    let r = app
        .request(Method::PUT, &format!("/api/v1/configs/{KEY}/gray"))
        .json(&json!({ "content": "a: 2\n", "ips": ["10.0.0.7"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let dir = app.stop().await;
    let mut settings = crate::helpers::settings(dir.path());
    settings.admin_password = None;
    let again = TestApp::start(dir, settings).await;
    assert_eq!(read_as(&again, "", Some("10.0.0.7")).await.0, "a: 2\n");
    assert_eq!(read_as(&again, "", Some("10.0.0.8")).await.0, "a: 1\n");
}

/// A long poll woken by a change its client does not see (a gray release for others)
/// keeps waiting, and the next change it does see answers it at once.
#[tokio::test]
async fn a_watch_woken_by_a_change_it_does_not_see_hears_the_next() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "color: blue\n").await;
    let (_, _, main_md5) = read_as(&app, "", None).await;
    let plain = app.spawn_watch_as(held(&main_md5), 20_000, "zone=eu-1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for content in ["color: green\n", "color: teal\n"] {
        let r = app
            .request(Method::PUT, &format!("/api/v1/configs/{KEY}/gray"))
            .json(&json!({ "content": content, "labels": ["canary=true"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!plain.is_finished(), "nothing this client sees changed");
    }
    app.publish_ok(KEY, "color: red\n").await;
    let (status, woken, waited) = tokio::time::timeout(Duration::from_secs(5), plain)
        .await
        .expect("answered by the change it sees")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        woken["changed"][0]["md5"],
        cairn_core::md5::md5_hex("color: red\n")
    );
    assert!(waited < Duration::from_secs(5));
}
