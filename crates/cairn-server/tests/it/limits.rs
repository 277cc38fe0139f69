//! Namespace quotas and history retention: set by an admin, enforced on every surface
//! with a refusal that names the quota and the use, shown beside the use, and history
//! pruned in the background with the newest revision kept.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect_error, TestApp};

async fn set_limits(app: &TestApp, namespace: &str, limits: Value) -> reqwest::Response {
    app.request(Method::PUT, &format!("/api/v1/namespaces/{namespace}"))
        .json(&limits)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn quotas_hold_on_every_surface_and_say_what_is_used() {
    let app = TestApp::spawn().await;
    let r = app
        .request(Method::POST, "/api/v1/namespaces")
        .json(&json!({ "name": "small" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    // The node's defaults until the namespace sets its own.
    assert_eq!(created["quota"]["max_configs"], 50_000);
    assert_eq!(created["limits"]["max_configs"], Value::Null);

    let r = set_limits(
        &app,
        "small",
        json!({ "max_configs": 2, "max_config_bytes": 20, "max_total_bytes": 30 }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["quota"]["max_configs"], 2);
    assert_eq!(view["limits"]["max_total_bytes"], 30);

    app.publish_ok("small/g/a.txt", "0123456789").await;
    app.publish_ok("small/g/b.txt", "0123456789").await;
    // A third config is one too many.
    let r = app
        .publish("small/g/c.txt", json!({ "content": "x" }))
        .await;
    let message = expect_error(r, StatusCode::FORBIDDEN, "quota_exceeded").await;
    assert!(
        message.contains("namespace small holds 2 configs and would hold 3")
            && message.contains("max_configs is 2"),
        "{message}"
    );
    // Changing one that exists is no new config, but its size and the total count.
    let r = app
        .publish("small/g/a.txt", json!({ "content": "x".repeat(21) }))
        .await;
    let message = expect_error(r, StatusCode::FORBIDDEN, "quota_exceeded").await;
    assert!(message.contains("max_config_bytes is 20"), "{message}");
    app.publish_ok("small/g/a.txt", "012345678901234").await;
    let r = app
        .publish("small/g/b.txt", json!({ "content": "x".repeat(16) }))
        .await;
    let message = expect_error(r, StatusCode::FORBIDDEN, "quota_exceeded").await;
    assert!(
        message.contains("holds 25 bytes of content and would hold 31")
            && message.contains("max_total_bytes is 30"),
        "{message}"
    );
    let (_, view) = app.get_json("/api/v1/namespaces/small").await;
    assert_eq!(view["quota"]["configs"], 2);
    assert_eq!(view["quota"]["bytes"], 25);

    // Nacos's publish meets the same quota, as a 403 with the same words.
    let token = app.nacos_token().await;
    let r = app
        .http
        .post(format!(
            "{}/nacos/v1/cs/configs?accessToken={}",
            app.base, token
        ))
        .form(&[
            ("dataId", "d.txt"),
            ("group", "g"),
            ("tenant", "small"),
            ("content", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.unwrap();
    assert!(text.contains("max_configs is 2"), "{text}");
    // Nacos's capacity routes read and set the same quotas.
    let nacos = |path: &str| format!("{}{path}accessToken={}", app.base, token);
    let r = app
        .http
        .get(nacos("/nacos/v1/cs/capacity?namespaceId=small&"))
        .send()
        .await
        .unwrap();
    let capacity: Value = r.json().await.unwrap();
    assert_eq!(
        (
            &capacity["data"]["quota"],
            &capacity["data"]["usage"],
            &capacity["data"]["maxSize"]
        ),
        (&json!(2), &json!(2), &json!(20)),
        "{capacity}"
    );
    let r = app
        .http
        .post(nacos("/nacos/v1/cs/capacity?"))
        .form(&[("namespaceId", "small"), ("quota", "3"), ("maxSize", "20")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"], true);
    let (_, view) = app.get_json("/api/v1/namespaces/small").await;
    assert_eq!(view["limits"]["max_configs"], 3);
    let r = app
        .http
        .get(nacos("/nacos/v1/cs/capacity?group=g&"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("per namespace"));
    set_limits(&app, "small", json!({ "max_configs": 2 })).await;

    // An import that would go over lands not at all.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("g/e.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"e").unwrap();
    let zip = zip.finish().unwrap().into_inner();
    let r = app
        .request(Method::POST, "/api/v1/namespaces/small/import")
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "quota_exceeded").await;

    // Deleting makes room; `null` gives the node's default back.
    let r = app
        .request(Method::DELETE, "/api/v1/configs/small/g/b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.publish_ok("small/g/c.txt", "x").await;
    let r = set_limits(&app, "small", json!({ "max_configs": null })).await;
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["quota"]["max_configs"], 50_000);
    assert_eq!(view["limits"]["max_configs"], Value::Null);
    assert_eq!(view["limits"]["max_total_bytes"], 30, "the others stay");
    app.stop().await;
}

#[tokio::test]
async fn only_a_global_admin_changes_a_namespaces_limits() {
    let app = TestApp::spawn().await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "nina", "password": "nina-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "nina", "namespace": "public", "level": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let token = app.login("nina", "nina-password-1").await;
    let r = app
        .http
        .put(format!("{}/api/v1/namespaces/public", app.base))
        .bearer_auth(&token)
        .json(&json!({ "max_configs": 1_000_000 }))
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(message.contains("quotas"), "{message}");
    // Her own namespace's description is hers to change.
    let r = app
        .http
        .put(format!("{}/api/v1/namespaces/public", app.base))
        .bearer_auth(&token)
        .json(&json!({ "description": "shared" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn history_is_pruned_to_the_namespaces_retention() {
    let app = TestApp::spawn_with(|s| {
        s.heartbeat_ms = cairn_server::settings::Millis::new(100);
        s.history_prune_interval_secs = cairn_server::settings::Secs::new(1);
    })
    .await;
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(app.publish_ok("public/g/kept.txt", &format!("v{i}")).await);
    }
    let r = set_limits(&app, "public", json!({ "history_max_revisions": 2 })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["history"]["max_revisions"], 2);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = app
            .get_json("/api/v1/configs/public/g/kept.txt/history")
            .await;
        let left: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["revision"].as_i64().unwrap())
            .collect();
        if left.len() == 2 {
            assert_eq!(left, [revisions[4], revisions[3]], "the newest two stay");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A rollback to what was pruned says why it is gone.
    let r = app
        .request(Method::POST, "/api/v1/configs/public/g/kept.txt/rollback")
        .json(&json!({ "revision": revisions[0] }))
        .send()
        .await
        .unwrap();
    let message = expect_error(r, StatusCode::NOT_FOUND, "revision_not_found").await;
    assert!(
        message.contains("keeps the last 2 revisions") && message.contains("pruned"),
        "{message}"
    );
    app.stop().await;
}
