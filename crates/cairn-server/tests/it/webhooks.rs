//! Webhooks against a real HTTP receiver in the test process: signed payloads of each
//! change, in order per config, retried until the receiver takes them, filtered by
//! kind and pattern, logged per delivery and sent again on request; refused targets
//! and refused callers.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{expect_error, TestApp};

pub const SECRET: &str = "a-webhook-secret-of-32-characters";

/// What a receiver was sent: each request's headers and JSON body, in arrival order.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    /// The status it answers with.
    pub status: Arc<AtomicU16>,
}

impl Receiver {
    /// Starts one on a loopback port; its URL.
    pub async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver.status.store(200, Ordering::SeqCst);
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let status = state.status.load(Ordering::SeqCst);
                    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let signed = verified(&headers, &body);
                    state.got.lock().unwrap().push((
                        headers,
                        json!({ "signed": signed, "body": value, "status": status }),
                    ));
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    /// The bodies of the requests it accepted (answered 2xx), in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["status"].as_u64().is_some_and(|s| s < 300))
            .map(|(_, r)| r["body"].clone())
            .collect()
    }

    /// Waits until `count` requests were accepted; their bodies.
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..300 {
            let accepted = self.accepted();
            if accepted.len() >= count {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{count} deliveries did not arrive: {:?}", self.accepted());
    }
}

/// Whether the request's signature is the HMAC-SHA256 of `{timestamp}.{body}` under
/// the secret, as the README tells receivers to check it.
fn verified(headers: &HeaderMap, body: &[u8]) -> bool {
    let (Some(timestamp), Some(signature)) = (
        headers
            .get("x-cairn-timestamp")
            .and_then(|v| v.to_str().ok()),
        headers
            .get("x-cairn-signature")
            .and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("sha256={}", hex_of(&mac.finalize().into_bytes()));
    expected == signature
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn add(app: &TestApp, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/webhooks")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn private_allowed() -> TestApp {
    TestApp::spawn_with(|s| s.webhook_allow_private_targets = true).await
}

#[tokio::test]
async fn each_change_reaches_the_receiver_signed_and_in_order() {
    let app = private_allowed().await;
    let (receiver, url) = Receiver::start().await;
    app.publish_ok("public/web/before.yaml", "a: 0\n").await;
    let r = add(
        &app,
        json!({ "namespace": "public", "url": url, "secret": SECRET }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let hook: Value = r.json().await.unwrap();
    assert!(
        !hook.to_string().contains(SECRET),
        "the secret is never shown: {hook}"
    );
    let id = hook["id"].as_i64().unwrap();

    let first = app.publish_ok("public/web/app.yaml", "a: 1\n").await;
    let body = json!({ "content": "a: 2\n", "comment": "raise a" });
    let r = app.publish("public/web/app.yaml", body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/web/app.yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let got = receiver.wait_for(3).await;
    // Only changes made after the subscription, in their order.
    let events: Vec<(&str, i64)> = got
        .iter()
        .map(|b| {
            (
                b["event"].as_str().unwrap(),
                b["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("publish", first),
            ("publish", first + 1),
            ("delete", first + 2)
        ]
    );
    assert!(receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .all(|(_, r)| r["signed"] == true));
    let second = &got[1];
    assert_eq!(second["id"], (first + 1).to_string());
    assert_eq!(
        (&second["namespace"], &second["group"], &second["data_id"]),
        (&json!("public"), &json!("web"), &json!("app.yaml"))
    );
    assert_eq!(second["md5_before"], got[0]["md5_after"]);
    assert_eq!(second["author"], "admin");
    assert_eq!(second["message"], "raise a");
    assert_eq!(second["surface"], "native");
    let diff = second["diff"].as_str().unwrap();
    assert!(diff.contains("-a: 1") && diff.contains("+a: 2"), "{diff}");
    assert_eq!(got[2]["md5_after"], Value::Null);
    let headers = receiver.got.lock().unwrap()[0].0.clone();
    assert_eq!(headers["x-cairn-event"], "publish");
    assert_eq!(headers["x-cairn-event-id"], first.to_string().as_str());

    // A sensitive config's changes come without a diff.
    let body = json!({ "content": "password=Hunter2", "sensitive": true });
    let r = app.publish("public/db/secret.properties", body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let got = receiver.wait_for(4).await;
    assert_eq!(got[3]["sensitive"], true);
    assert!(!got[3].to_string().contains("Hunter2"), "{}", got[3]);

    // The log says what was delivered, and a delivery can be sent again.
    let (status, log) = app
        .get_json(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log["total"], 4);
    let newest = &log["items"][0];
    assert_eq!(
        (
            &newest["status"],
            &newest["response_code"],
            &newest["attempts"]
        ),
        (&json!("delivered"), &json!(200), &json!(1))
    );
    assert!(newest["latency_ms"].as_i64().is_some());
    let delivery = log["items"][3]["id"].as_i64().unwrap();
    let r = app
        .request(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let got = receiver.wait_for(5).await;
    assert_eq!(got[4]["id"], got[0]["id"], "the same event, sent again");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_each_config_in_order_once_it_recovers() {
    let app = private_allowed().await;
    let (receiver, url) = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let r = add(
        &app,
        json!({ "namespace": "public", "url": url, "secret": SECRET }),
    )
    .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let first = app.publish_ok("public/web/app.yaml", "a: 1\n").await;
    let second = app.publish_ok("public/web/app.yaml", "a: 2\n").await;
    // Refused at least once, and the second waits behind the first.
    for _ in 0..100 {
        if !receiver.got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, log) = app
        .get_json(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await;
    let oldest = &log["items"][1];
    assert_eq!(oldest["status"], "pending", "{log}");
    assert!(oldest["error"].as_str().unwrap().contains("503"), "{log}");
    assert!(receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .all(|(_, r)| r["body"]["revision"] == first));
    receiver.status.store(200, Ordering::SeqCst);
    let got = receiver.wait_for(2).await;
    let revisions: Vec<i64> = got
        .iter()
        .map(|b| b["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revisions, [first, second]);
    app.stop().await;
}

#[tokio::test]
async fn subscriptions_filter_by_kind_and_pattern() {
    let app = private_allowed().await;
    let (receiver, url) = Receiver::start().await;
    let r = add(
        &app,
        json!({ "namespace": "public", "url": url, "secret": SECRET,
                "events": ["delete", "rollback"], "data_id": "*.yaml" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.publish_ok("public/web/app.yaml", "a: 1\n").await;
    app.publish_ok("public/web/app.properties", "a=1").await;
    for key in ["public/web/app.properties", "public/web/app.yaml"] {
        let r = app
            .request(Method::DELETE, &format!("/api/v1/configs/{key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let got = receiver.wait_for(1).await;
    assert_eq!(
        (&got[0]["event"], &got[0]["data_id"]),
        (&json!("delete"), &json!("app.yaml"))
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.accepted().len(), 1, "{:?}", receiver.accepted());
    app.stop().await;
}

#[tokio::test]
async fn bad_subscriptions_and_callers_are_refused() {
    // By default the node's own network is out of reach.
    let app = TestApp::spawn().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
    ] {
        let r = add(
            &app,
            json!({ "namespace": "public", "url": url, "secret": SECRET }),
        )
        .await;
        let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_webhook").await;
        assert!(
            message.contains("webhook_allow_private_targets"),
            "{message}"
        );
    }
    let cases = [
        (
            json!({ "namespace": "public", "url": "ftp://example.com/", "secret": SECRET }),
            "http",
        ),
        (
            json!({ "namespace": "public", "url": "https://example.com/", "secret": "short" }),
            "16",
        ),
        (
            json!({ "namespace": "public", "url": "https://example.com/", "secret": SECRET, "events": ["publsh"] }),
            "publsh",
        ),
        (
            json!({ "namespace": "public", "url": "https://u:p@example.com/", "secret": SECRET }),
            "credentials",
        ),
    ];
    for (body, says) in cases {
        let r = add(&app, body.clone()).await;
        let message = expect_error(r, StatusCode::BAD_REQUEST, "invalid_webhook").await;
        assert!(message.contains(says), "{body}: {message}");
    }
    let r = add(
        &app,
        json!({ "namespace": "nowhere", "url": "https://example.com/", "secret": SECRET }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = add(&app, json!({ "namespace": "public", "url": "https://example.com/", "secret": SECRET, "extra": 1 })).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A writer of the namespace (not its admin) may not subscribe, and sees none.
    let r = add(
        &app,
        json!({ "namespace": "public", "url": "https://example.com/", "secret": SECRET }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let writer = app
        .user_with_grant("rita", "rita-password-1", "public", "write")
        .await;
    let as_writer = |method: Method, path: String| {
        app.http
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(&writer)
    };
    let r = as_writer(Method::POST, "/api/v1/webhooks".into())
        .json(&json!({ "namespace": "public", "url": "https://example.com/", "secret": SECRET }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = as_writer(Method::GET, "/api/v1/webhooks".into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    let r = as_writer(Method::DELETE, format!("/api/v1/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .request(Method::DELETE, &format!("/api/v1/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = app.get_json(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Each was audited.
    let (_, audit) = app.get_json("/api/v1/audit?action=webhook.add").await;
    assert!(audit.to_string().contains("webhook.add"), "{audit}");
    app.stop().await;
}
