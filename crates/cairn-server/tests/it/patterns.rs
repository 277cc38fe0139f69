//! Pattern watches on the native long poll: every config of a namespace whose group and
//! data id match, including configs created after the watch began and deletions, and
//! nothing else; a first poll lists them all.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect_error, TestApp};

fn spawn_pattern_watch(
    app: &TestApp,
    token: Option<&str>,
    patterns: Value,
    since: i64,
    timeout_ms: u64,
) -> tokio::task::JoinHandle<(StatusCode, Value, Duration)> {
    let request = app
        .http
        .post(format!("{}/api/v1/watch", app.base))
        .bearer_auth(token.unwrap_or(&app.token))
        .json(&json!({ "patterns": patterns, "since": since, "timeout_ms": timeout_ms }));
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap(), started.elapsed())
    })
}

fn names(answer: &Value) -> Vec<(String, bool)> {
    answer["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}/{}",
                    c["group"].as_str().unwrap(),
                    c["data_id"].as_str().unwrap()
                ),
                c["exists"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_pattern_watch_sees_new_changed_and_deleted_configs_it_matches() {
    let app = TestApp::spawn().await;
    app.publish_ok("public/web/a.yaml", "a: 1").await;
    app.publish_ok("public/web/b.txt", "b").await;
    app.publish_ok("public/jobs/c.yaml", "c: 1").await;
    let web_yaml = json!([{ "namespace": "public", "group": "web", "data_id": "*.yaml" }]);

    // The first poll lists what matches, at once.
    let (status, first, took) = spawn_pattern_watch(&app, None, web_yaml.clone(), 0, 10_000)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(took < Duration::from_secs(5));
    assert_eq!(first["complete"], true);
    assert_eq!(names(&first), [("web/a.yaml".to_owned(), true)]);
    let seq = first["seq"].as_i64().unwrap();

    // A config created after the watch began wakes it.
    let held = spawn_pattern_watch(&app, None, web_yaml.clone(), seq, 10_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.publish_ok("public/web/new.yaml", "n: 1").await;
    let (_, woken, took) = held.await.unwrap();
    assert!(
        took < Duration::from_secs(5),
        "woken by the publish, not the timeout"
    );
    assert_eq!(woken["complete"], false);
    assert_eq!(names(&woken), [("web/new.yaml".to_owned(), true)]);
    let seq = woken["seq"].as_i64().unwrap();

    // What it does not match leaves it asleep until its timeout.
    let held = spawn_pattern_watch(&app, None, web_yaml.clone(), seq, 700);
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.publish_ok("public/jobs/c.yaml", "c: 2").await;
    app.publish_ok("public/web/b.txt", "b2").await;
    let (_, quiet, took) = held.await.unwrap();
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert_eq!(names(&quiet), Vec::<(String, bool)>::new());
    let seq = quiet["seq"].as_i64().unwrap();

    // A deletion is a change too.
    let held = spawn_pattern_watch(&app, None, web_yaml.clone(), seq, 10_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/web/a.yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, deleted, _) = held.await.unwrap();
    assert_eq!(names(&deleted), [("web/a.yaml".to_owned(), false)]);
    app.stop().await;
}

#[tokio::test]
async fn pattern_watches_are_bounded_and_checked() {
    let app = TestApp::spawn().await;
    let watch = |body: Value| {
        app.request(Method::POST, "/api/v1/watch")
            .json(&body)
            .send()
    };
    let both = watch(json!({
        "keys": [{ "namespace": "public", "group": "g", "data_id": "a", "md5": "" }],
        "patterns": [{ "namespace": "public" }],
    }))
    .await
    .unwrap();
    let message = expect_error(both, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert!(message.contains("keys or patterns, not both"), "{message}");
    let many: Vec<Value> = (0..33).map(|_| json!({ "namespace": "public" })).collect();
    let r = watch(json!({ "patterns": many })).await.unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "too_many_patterns").await;
    let r = watch(json!({ "patterns": [{ "namespace": "public", "data_id": "../*" }] }))
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    let r = watch(json!({ "patterns": [{ "namespace": "nowhere" }] }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A user sees only what she may read through a pattern, and not a namespace she
    // may not see at all.
    for ns in ["dev", "prod"] {
        let r = app
            .request(Method::POST, "/api/v1/namespaces")
            .json(&json!({ "name": ns }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    app.publish_ok("dev/open/a.txt", "a").await;
    app.publish_ok("dev/closed/b.txt", "b").await;
    let r = app
        .request(Method::POST, "/api/v1/users")
        .json(&json!({ "username": "pat", "password": "pat-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .request(Method::PUT, "/api/v1/grants")
        .json(&json!({ "user": "pat", "namespace": "dev", "group": "open", "level": "read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let token = app.login("pat", "pat-password-1").await;
    let (status, seen, _) = spawn_pattern_watch(
        &app,
        Some(&token),
        json!([{ "namespace": "dev" }]),
        0,
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(names(&seen), [("open/a.txt".to_owned(), true)]);
    let (status, refused, _) = spawn_pattern_watch(
        &app,
        Some(&token),
        json!([{ "namespace": "prod" }]),
        0,
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    app.stop().await;
}

#[tokio::test]
async fn a_pattern_stream_sends_every_match_then_each_change() {
    let app = TestApp::spawn().await;
    app.publish_ok("public/web/a.yaml", "a: 1").await;
    app.publish_ok("public/web/b.txt", "b").await;
    let r = app
        .request(
            Method::GET,
            "/api/v1/watch/stream?patterns=public/web/*.yaml,public/jobs",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    // Every match at once.
    assert_eq!(
        read_events(&mut body, &mut text, &mut events, 1).await,
        [("web/a.yaml".to_owned(), true)]
    );
    // Then what is created, changed and deleted among them, and nothing else. Each is
    // awaited before the next: changes faster than the stream looks are merged.
    app.publish_ok("public/web/b.txt", "b2").await;
    app.publish_ok("public/jobs/new.txt", "n").await;
    read_events(&mut body, &mut text, &mut events, 2).await;
    app.publish_ok("public/web/a.yaml", "a: 2").await;
    read_events(&mut body, &mut text, &mut events, 3).await;
    let r = app
        .request(Method::DELETE, "/api/v1/configs/public/jobs/new.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let seen = read_events(&mut body, &mut text, &mut events, 4).await;
    assert_eq!(
        seen[1..],
        [
            ("jobs/new.txt".to_owned(), true),
            ("web/a.yaml".to_owned(), true),
            ("jobs/new.txt".to_owned(), false)
        ]
    );

    // Keys and patterns together, and a namespace that does not exist, are refused as
    // the request's status.
    let r = app
        .request(
            Method::GET,
            "/api/v1/watch/stream?keys=public/web/a.yaml&patterns=public",
        )
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_argument").await;
    let r = app
        .request(Method::GET, "/api/v1/watch/stream?patterns=nowhere/*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Reads an event stream until `events` holds `want` `change` events, each as
/// (group/data_id, exists); returns them all.
async fn read_events(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
    events: &mut Vec<(String, bool)>,
    want: usize,
) -> Vec<(String, bool)> {
    use futures::StreamExt;
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while events.len() < want {
            let chunk = body.next().await.expect("stream open").unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                    assert!(event.contains("event: change"), "{event}");
                    let c: Value = serde_json::from_str(data.trim()).unwrap();
                    events.push((
                        format!(
                            "{}/{}",
                            c["group"].as_str().unwrap(),
                            c["data_id"].as_str().unwrap()
                        ),
                        c["exists"].as_bool().unwrap(),
                    ));
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{want} events expected, got {events:?}");
    events.clone()
}
