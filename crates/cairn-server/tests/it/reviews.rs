//! Review before release, as people and machines meet it: a person's change in a
//! namespace that requires review waits as a change request until another person with
//! the approve level releases it (compare-and-set: a moved config makes it stale, and
//! a rebase brings it back); rejections, self-approval, emergency changes, the audit
//! log and webhooks; machine surfaces and service tokens refused unless allowed.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect_error, TestApp};
use crate::webhooks::Receiver;

const KEY: &str = "prod/web/app.yaml";

/// A node with namespace `prod` requiring review, holding `a: 1` at `KEY`, and its
/// people: alice (write), bob (approve), carol (write), and the admin.
async fn reviewed() -> (TestApp, String, String, String) {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private_targets = true).await;
    let r = app
        .request(Method::POST, "/api/v1/namespaces")
        .json(&json!({ "name": "prod" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    app.publish_ok(KEY, "a: 1\n").await;
    let alice = app
        .user_with_grant("alice", "alice-password-1", "prod", "write")
        .await;
    let bob = app
        .user_with_grant("bob", "bob-password-12", "prod", "approve")
        .await;
    let carol = app
        .user_with_grant("carol", "carol-password-1", "prod", "write")
        .await;
    let (status, ns) = set_review(&app, &app.token, true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ns["require_review"], true, "{ns}");
    (app, alice, bob, carol)
}

async fn set_review(app: &TestApp, token: &str, on: bool) -> (StatusCode, Value) {
    let r = app
        .http
        .put(format!("{}/api/v1/namespaces/prod", app.base))
        .bearer_auth(token)
        .json(&json!({ "require_review": on }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn as_user(app: &TestApp, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
}

async fn publish_as(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    as_user(app, token, Method::PUT, &format!("/api/v1/configs/{KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn step(app: &TestApp, token: &str, id: i64, action: &str, body: Value) -> reqwest::Response {
    as_user(
        app,
        token,
        Method::POST,
        &format!("/api/v1/reviews/{id}/{action}"),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

/// Opens a change request as `token` proposing `content`; its id.
async fn propose(app: &TestApp, token: &str, content: &str, comment: &str) -> i64 {
    let r = publish_as(
        app,
        token,
        json!({ "content": content, "comment": comment }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED, "a person's publish waits");
    let request: Value = r.json().await.unwrap();
    assert_eq!(request["status"], "open", "{request}");
    request["id"].as_i64().unwrap()
}

async fn content(app: &TestApp) -> String {
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .send()
        .await
        .unwrap();
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_change_waits_for_another_persons_approval() {
    let (app, alice, bob, carol) = reviewed().await;
    let (receiver, url) = Receiver::start().await;
    let r = app
        .request(Method::POST, "/api/v1/webhooks")
        .json(&json!({ "namespace": "prod", "url": url, "secret": crate::webhooks::SECRET }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let id = propose(&app, &alice, "a: 2\n", "raise a").await;
    assert_eq!(content(&app).await, "a: 1\n", "nothing released yet");

    let r = step(&app, &alice, id, "approve", json!({})).await;
    let message = expect_error(r, StatusCode::FORBIDDEN, "own_change_request").await;
    assert!(message.contains("another person"), "{message}");
    let r = step(&app, &carol, id, "approve", json!({})).await;
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    let (status, page) = app
        .get_json("/api/v1/reviews?namespace=prod&status=open")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["id"], id);
    let (_, detail) = app.get_json(&format!("/api/v1/reviews/{id}")).await;
    let diff = detail["diff"].as_str().unwrap();
    assert!(diff.contains("-a: 1") && diff.contains("+a: 2"), "{diff}");
    assert_eq!(detail["content"], "a: 2\n");
    assert_eq!(detail["events"][0]["event"], "opened");
    assert_eq!(detail["events"][0]["comment"], "raise a");

    let r = step(
        &app,
        &bob,
        id,
        "approve",
        json!({ "comment": "looks right" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let approved: Value = r.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["reviewer"], "bob");
    let revision = approved["released_revision"].as_i64().unwrap();
    assert_eq!(content(&app).await, "a: 2\n", "released");
    let (_, entry) = app
        .get_json(&format!("/api/v1/configs/{KEY}/history/{revision}"))
        .await;
    let comment = entry["comment"].as_str().unwrap();
    assert!(
        comment.contains(&format!("change request {id} by alice, approved by bob")),
        "{comment}"
    );
    let r = step(&app, &bob, id, "approve", json!({})).await;
    let message = expect_error(r, StatusCode::CONFLICT, "review_state").await;
    assert!(message.contains("is approved"), "{message}");

    // Opened, then the publish it released and the approval (recorded once the
    // release committed, so either may be sent first), each signed.
    let sent = receiver.wait_for(3).await;
    let mut events: Vec<&str> = sent.iter().map(|b| b["event"].as_str().unwrap()).collect();
    assert_eq!(events[0], "change_request_opened");
    events.sort_unstable();
    assert_eq!(
        events,
        [
            "change_request_approved",
            "change_request_opened",
            "publish"
        ]
    );
    let by_event = |event: &str| sent.iter().find(|b| b["event"] == event).unwrap().clone();
    let (approval, publish) = (by_event("change_request_approved"), by_event("publish"));
    assert_eq!(sent[0]["change_request"], id);
    assert_eq!(sent[0]["author"], "alice");
    assert!(
        sent[0]["diff"].as_str().unwrap().contains("+a: 2"),
        "{}",
        sent[0]
    );
    assert_eq!(approval["author"], "bob");
    assert_eq!(approval["revision"], revision);
    assert_eq!(publish["revision"], revision);
    assert!(sent[0]["id"].as_str().unwrap().starts_with("cr-"));
    assert!(receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .all(|(_, r)| r["signed"] == true));
    app.stop().await;
}

#[tokio::test]
async fn a_request_the_config_moved_under_goes_stale_until_rebased() {
    let (app, alice, bob, _) = reviewed().await;
    let (receiver, url) = Receiver::start().await;
    let r = app
        .request(Method::POST, "/api/v1/webhooks")
        .json(
            &json!({ "namespace": "prod", "url": url, "secret": crate::webhooks::SECRET,
                       "events": ["publish"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = propose(&app, &alice, "a: 3\n", "").await;

    // An admin's emergency change needs a reason, and only an admin may make one.
    let r = app
        .publish(KEY, json!({ "content": "a: 9\n", "emergency": true }))
        .await;
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    let r = publish_as(
        &app,
        &alice,
        json!({ "content": "a: 9\n", "emergency": true, "comment": "outage" }),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .publish(
            KEY,
            json!({ "content": "a: 9\n", "emergency": true, "comment": "pool exhausted" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "released at once");
    let urgent: Value = r.json().await.unwrap();
    let (_, entry) = app
        .get_json(&format!(
            "/api/v1/configs/{KEY}/history/{}",
            urgent["revision"]
        ))
        .await;
    assert_eq!(entry["emergency"], true, "{entry}");
    assert_eq!(entry["comment"], "pool exhausted");
    let sent = receiver.wait_for(1).await;
    assert_eq!(
        (&sent[0]["emergency"], &sent[0]["message"]),
        (&json!(true), &json!("pool exhausted")),
        "{}",
        sent[0]
    );

    let r = step(&app, &bob, id, "approve", json!({})).await;
    let message = expect_error(r, StatusCode::CONFLICT, "change_request_stale").await;
    assert!(message.contains("rebase"), "{message}");
    assert_eq!(content(&app).await, "a: 9\n", "nothing released over it");
    let (_, detail) = app.get_json(&format!("/api/v1/reviews/{id}")).await;
    assert_eq!(detail["status"], "stale");

    let r = step(&app, &bob, id, "rebase", json!({})).await;
    expect_error(r, StatusCode::CONFLICT, "review_state").await;
    let r = step(&app, &alice, id, "rebase", json!({ "content": "a: 10\n" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rebased: Value = r.json().await.unwrap();
    assert_eq!(rebased["status"], "open");
    assert_eq!(rebased["base_md5"], urgent["md5"]);
    let (_, detail) = app.get_json(&format!("/api/v1/reviews/{id}")).await;
    let diff = detail["diff"].as_str().unwrap();
    assert!(diff.contains("-a: 9") && diff.contains("+a: 10"), "{diff}");
    let r = step(&app, &bob, id, "approve", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content(&app).await, "a: 10\n");

    // The audit log tells the emergency and each step of the review.
    let (_, audit) = app.get_json("/api/v1/audit?namespace=prod").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "config.publish.emergency",
        "review.opened",
        "review.stale",
        "review.rebased",
        "review.approved",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn rejections_deletions_and_rollbacks_go_through_review() {
    let (app, alice, bob, _) = reviewed().await;
    let id = propose(&app, &alice, "a: 4\n", "").await;
    let r = step(&app, &bob, id, "reject", json!({})).await;
    let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(message.contains("why"), "{message}");
    let r = step(
        &app,
        &bob,
        id,
        "reject",
        json!({ "comment": "a must stay 1" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = step(&app, &bob, id, "approve", json!({})).await;
    expect_error(r, StatusCode::CONFLICT, "review_state").await;
    let (_, detail) = app.get_json(&format!("/api/v1/reviews/{id}")).await;
    assert_eq!(detail["status"], "rejected");
    assert_eq!(detail["events"][1]["comment"], "a must stay 1");

    // The author may withdraw their own, without a word.
    let own = propose(&app, &alice, "a: 5\n", "").await;
    let r = step(&app, &alice, own, "reject", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = as_user(
        &app,
        &alice,
        Method::DELETE,
        &format!("/api/v1/configs/{KEY}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let deletion: Value = r.json().await.unwrap();
    assert_eq!(deletion["op"], "delete");
    let r = step(
        &app,
        &bob,
        deletion["id"].as_i64().unwrap(),
        "approve",
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .request(Method::GET, &format!("/api/v1/configs/{KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "deleted once approved");

    let (_, history) = app
        .get_json(&format!("/api/v1/configs/{KEY}/history"))
        .await;
    let first = history["items"].as_array().unwrap().last().unwrap()["revision"].clone();
    let r = as_user(
        &app,
        &alice,
        Method::POST,
        &format!("/api/v1/configs/{KEY}/rollback"),
    )
    .json(&json!({ "revision": first }))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "a rollback waits too");
    let rollback: Value = r.json().await.unwrap();
    let r = step(
        &app,
        &bob,
        rollback["id"].as_i64().unwrap(),
        "approve",
        json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content(&app).await, "a: 1\n", "back to the first version");
    app.stop().await;
}

#[tokio::test]
async fn machines_are_refused_unless_their_token_may_skip_review() {
    let (app, alice, _, _) = reviewed().await;
    // Nacos's publish has no way to open a change request.
    let nacos = app.nacos_token().await;
    let r = app
        .http
        .post(format!("{}/nacos/v1/cs/configs", app.base))
        .query(&[("accessToken", nacos.as_str())])
        .form(&[
            ("dataId", "app.yaml"),
            ("group", "web"),
            ("tenant", "prod"),
            ("content", "a: 7"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.unwrap();
    assert!(text.contains("requires review"), "{text}");

    let token = |name: &str, skip: bool| {
        app.request(Method::POST, "/api/v1/tokens")
            .json(&json!({
                "name": name,
                "scopes": [{ "namespace": "prod", "level": "write" }],
                "publish_without_review": skip,
            }))
            .send()
    };
    let plain: Value = token("deploy", false).await.unwrap().json().await.unwrap();
    let trusted: Value = token("pipeline", true).await.unwrap().json().await.unwrap();
    let r = publish_as(
        &app,
        plain["token"].as_str().unwrap(),
        json!({ "content": "a: 7\n" }),
    )
    .await;
    let message = expect_error(r, StatusCode::FORBIDDEN, "review_required").await;
    assert!(message.contains("publish-without-review"), "{message}");
    let r = publish_as(
        &app,
        trusted["token"].as_str().unwrap(),
        json!({ "content": "a: 7\n" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "its pipeline is trusted");
    let (_, tokens) = app.get_json("/api/v1/tokens").await;
    let flags: Vec<(&str, bool)> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["publish_without_review"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, [("deploy", false), ("pipeline", true)]);

    // A gray release would skip review, and so would an import.
    let r = app
        .request(Method::PUT, &format!("/api/v1/configs/{KEY}/gray"))
        .json(&json!({ "content": "a: 8\n", "ips": ["10.0.0.1"] }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "review_required").await;
    let export = app
        .request(Method::GET, "/api/v1/namespaces/prod/export?format=cairn")
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    let export = export.bytes().await.unwrap();
    let r = app
        .request(
            Method::POST,
            "/api/v1/namespaces/prod/import?policy=overwrite",
        )
        .header("content-type", "application/x-ndjson")
        .body(export)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::FORBIDDEN, "review_required").await;

    // A namespace's own admin may turn review on but not off.
    let owner = app
        .user_with_grant("olga", "olga-password-1", "prod", "admin")
        .await;
    let (status, _) = set_review(&app, &owner, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = set_review(&app, &app.token, false).await;
    assert_eq!(status, StatusCode::OK);
    let r = publish_as(&app, &alice, json!({ "content": "a: 11\n" })).await;
    assert_eq!(r.status(), StatusCode::OK, "published at once again");
    app.stop().await;
}
