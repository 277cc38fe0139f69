//! The connection layer under raw HTTP/1.1: long polls are answered off hyper's path, and
//! a connection moves on to every other kind of request, pipelined or not, without a
//! byte lost; a client that leaves releases its watch; malformed requests get errors.

use std::time::Duration;

use crate::helpers::TestApp;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "public/DEFAULT_GROUP/conn.yaml";

/// One response as a client reads it off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A raw connection that keeps what it read past one response for the next.
struct Conn {
    tcp: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    async fn open(app: &TestApp) -> Conn {
        let addr = app.base.trim_start_matches("http://");
        Conn {
            tcp: TcpStream::connect(addr).await.unwrap(),
            pending: Vec::new(),
        }
    }

    async fn send(&mut self, raw: &[u8]) {
        self.tcp.write_all(raw).await.unwrap();
    }

    /// Reads one response with a `Content-Length` body (or none, for 304).
    async fn answer(&mut self) -> Answer {
        loop {
            let mut lines = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut lines);
            if let httparse::Status::Complete(len) = head.parse(&self.pending).unwrap() {
                let status = head.code.unwrap();
                let headers: Vec<(String, String)> = head
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let body_len = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
                if self.pending.len() >= len + body_len {
                    let body = self.pending[len..len + body_len].to_vec();
                    self.pending.drain(..len + body_len);
                    return Answer {
                        status,
                        headers,
                        body,
                    };
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.tcp.read(&mut chunk))
                .await
                .expect("an answer within 10 s")
                .unwrap();
            assert!(n > 0, "the connection closed before a whole answer");
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the server closes the connection (within 5 s).
    async fn closed_by_server(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.tcp.read(&mut chunk)).await,
            Ok(Ok(0))
        )
    }
}

fn watch_request(app: &TestApp, md5: &str, timeout_ms: u64, extra: &str) -> Vec<u8> {
    let (namespace, rest) = KEY.split_once('/').unwrap();
    let (group, data_id) = rest.split_once('/').unwrap();
    let body = json!({
        "keys": [{ "namespace": namespace, "group": group, "data_id": data_id, "md5": md5 }],
        "timeout_ms": timeout_ms,
    })
    .to_string();
    format!(
        "POST /api/v1/watch HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        app.token,
        body.len()
    )
    .into_bytes()
}

fn read_request(app: &TestApp) -> Vec<u8> {
    read_request_with(app, "")
}

/// A read with `query` after the path (`?view=json`, say), which the router answers.
fn read_request_with(app: &TestApp, query: &str) -> Vec<u8> {
    format!(
        "GET /api/v1/configs/{KEY}{query} HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer {}\r\n\r\n",
        app.token
    )
    .into_bytes()
}

#[tokio::test]
async fn a_parked_watch_is_answered_and_its_connection_serves_reads_after() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "a: 1\n").await;
    let md5 = cairn_core::md5::md5_hex("a: 1\n");

    let mut conn = Conn::open(&app).await;
    conn.send(&watch_request(&app, &md5, 20_000, "")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let revision = app.publish_ok(KEY, "a: 2\n").await;
    let answer = conn.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(answer.header("date").is_some(), "answers carry a Date");
    let changed = answer.json();
    assert_eq!(changed["changed"][0]["revision"], revision);
    assert_eq!(
        changed["changed"][0]["md5"],
        cairn_core::md5::md5_hex("a: 2\n")
    );

    // The same connection goes on to a read the router answers (a query), then to
    // another watch.
    conn.send(&read_request_with(&app, "?view=raw")).await;
    let read = conn.answer().await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, b"a: 2\n");
    conn.send(&watch_request(&app, &md5, 20_000, "")).await;
    assert_eq!(
        conn.answer().await.json()["changed"][0]["revision"],
        revision,
        "a stale md5 is answered at once, after the connection moved to hyper too"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "b: 1\n").await;
    let mut conn = Conn::open(&app).await;
    // A watch with a stale md5 (answered at once), a read (answered directly), another
    // watch, a read the router answers (which hands the connection to hyper with what
    // follows) and a plain read again, in one write.
    let mut all = watch_request(&app, "stale", 20_000, "");
    all.extend(read_request(&app));
    all.extend(watch_request(&app, "stale", 20_000, ""));
    all.extend(read_request_with(&app, "?view=json"));
    all.extend(read_request(&app));
    conn.send(&all).await;
    let first = conn.answer().await;
    assert_eq!(first.json()["changed"][0]["exists"], true);
    let second = conn.answer().await;
    assert_eq!(second.body, b"b: 1\n");
    let third = conn.answer().await;
    assert_eq!(third.json()["changed"][0]["exists"], true);
    let fourth = conn.answer().await;
    assert_eq!(fourth.json()["content"], "b: 1\n");
    let fifth = conn.answer().await;
    assert_eq!(fifth.body, b"b: 1\n");
}

#[tokio::test]
async fn a_client_that_closes_its_side_after_pipelining_still_gets_its_answers() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "f: 1\n").await;
    let md5 = cairn_core::md5::md5_hex("f: 1\n");
    let mut conn = Conn::open(&app).await;
    // A parked watch with another pipelined behind it, then the client's FIN: as with
    // hyper, requests already sent are answered, then the connection closes.
    let mut all = watch_request(&app, &md5, 20_000, "");
    all.extend(watch_request(&app, &md5, 20_000, ""));
    conn.send(&all).await;
    conn.tcp.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let revision = app.publish_ok(KEY, "f: 2\n").await;
    for _ in 0..2 {
        assert_eq!(
            conn.answer().await.json()["changed"][0]["revision"],
            revision
        );
    }
    assert!(conn.closed_by_server().await);
}

#[tokio::test]
async fn a_watch_that_times_out_answers_empty_and_keeps_the_connection() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "c: 1\n").await;
    let md5 = cairn_core::md5::md5_hex("c: 1\n");
    let mut conn = Conn::open(&app).await;
    for _ in 0..2 {
        conn.send(&watch_request(&app, &md5, 300, "")).await;
        let answer = conn.answer().await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["changed"], json!([]));
    }
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "d: 1\n").await;
    let mut conn = Conn::open(&app).await;
    conn.send(&watch_request(
        &app,
        "stale",
        20_000,
        "Connection: close\r\n",
    ))
    .await;
    let answer = conn.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(conn.closed_by_server().await);
}

#[tokio::test]
async fn bad_long_polls_get_the_api_errors() {
    let app = TestApp::spawn().await;
    // A body the handler refuses: its own error, through this path.
    let mut conn = Conn::open(&app).await;
    let body = "{\"keys\": 3}";
    conn.send(
        format!(
            "POST /api/v1/watch HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            app.token,
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let answer = conn.answer().await;
    assert_eq!(answer.status, 400);
    assert!(answer.json()["message"].is_string(), "{:?}", answer.json());

    // No token: 401, and the connection stays usable.
    conn.send(b"POST /api/v1/watch HTTP/1.1\r\nHost: cairn\r\nContent-Length: 2\r\n\r\n{}")
        .await;
    assert_eq!(conn.answer().await.status, 401);

    // Framing this path does not take is hyper's to refuse.
    let mut conn = Conn::open(&app).await;
    conn.send(b"POST /api/v1/watch HTTP/1.1\r\nHost: cairn\r\nContent-Length: x\r\n\r\n")
        .await;
    assert_eq!(conn.answer().await.status, 400);
}

#[tokio::test]
async fn a_client_that_goes_away_releases_its_watch() {
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "e: 1\n").await;
    let md5 = cairn_core::md5::md5_hex("e: 1\n");
    let held = || async {
        let text = app.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix("cairn_watchers_held "))
            .map(|v| v.trim().parse::<f64>().unwrap())
            .unwrap()
    };
    let mut conn = Conn::open(&app).await;
    conn.send(&watch_request(&app, &md5, 60_000, "")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while held().await != 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the watch is held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conn);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while held().await != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch is released when its client leaves, not at its timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Has the public namespace serve the Apollo app `shop` unsigned, as an installation
/// that serves its apps unsigned does.
async fn serve_shop_unsigned(app: &TestApp) {
    let r = app
        .request(reqwest::Method::PUT, "/api/v1/namespaces/public")
        .json(&json!({ "apollo_anonymous_apps": ["shop"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Every long-poll route of every surface is answered on the lean path, so a parked
/// watch costs its socket and handler only. A route renamed or added on one side only
/// would still answer, just at hyper's cost per connection: this is what notices.
#[tokio::test]
async fn every_long_poll_route_is_served_without_hyper_buffers() {
    use std::sync::atomic::Ordering;
    let app = TestApp::spawn().await;
    app.publish_ok("public/shop/application", "a=1").await;
    // Unsigned Apollo polls, as an installation that serves its apps unsigned.
    serve_shop_unsigned(&app).await;
    let taken = || app.connections.unbuffered.load(Ordering::Relaxed);
    let listening = "application\u{2}shop\u{2}stale\u{1}";
    let notifications = |prefix: &str| {
        let held: String = form_urlencoded::byte_serialize(
            br#"[{"namespaceName":"application","notificationId":-1}]"#,
        )
        .collect();
        format!(
            "{}{prefix}/notifications/v2?appId=shop&cluster=default&notifications={held}",
            app.base
        )
    };
    // A connection moves to hyper for good at its first other request: each long poll
    // here comes on a connection of its own, as a watching client's do.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let watch = json!({
        "keys": [{"namespace": "public", "group": "shop", "data_id": "application", "md5": "stale"}],
        "timeout_ms": 1000,
    });
    let listener = format!(
        "{}/nacos/v1/cs/configs/listener?accessToken={}",
        app.base, app.token
    );
    let requests = [
        (
            "native watch",
            http.post(format!("{}/api/v1/watch", app.base))
                .bearer_auth(&app.token)
                .json(&watch),
        ),
        (
            "Nacos listener",
            http.post(listener)
                .header("Long-Pulling-Timeout", "30000")
                .form(&[("Listening-Configs", listening)]),
        ),
        ("Apollo notifications", http.get(notifications(""))),
        (
            "Apollo notifications of an env",
            http.get(notifications("/apollo/public")),
        ),
    ];
    for (route, request) in requests {
        let before = taken();
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "{route}: {}",
            response.text().await.unwrap()
        );
        assert_eq!(taken(), before + 1, "{route} went through hyper");
    }
    // A plain read is no long poll.
    let before = taken();
    app.get_json(&format!("/api/v1/configs/{}", "public/shop/application"))
        .await;
    assert_eq!(taken(), before);
}

/// A raw `GET` on a connection of its own, answered.
async fn get(app: &TestApp, target: &str, extra: &str) -> Answer {
    let mut conn = Conn::open(app).await;
    conn.send(format!("GET {target} HTTP/1.1\r\nHost: cairn\r\n{extra}\r\n").as_bytes())
        .await;
    conn.answer().await
}

/// An answer's headers, lower-cased and sorted, without `Date`.
fn head_of(answer: &Answer) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = answer
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| n != "date")
        .collect();
    headers.sort();
    headers
}

/// Plain reads of cached configs (native and Nacos) are answered by the connection
/// layer itself, with exactly the status, headers and content the router gives, always
/// the current content; every other read (a refusal, a miss, a client that names its
/// gray-release identity, a query the direct path does not read) still gets the
/// router's answer.
#[tokio::test]
async fn plain_reads_are_answered_directly_as_the_router_answers_them() {
    use std::sync::atomic::Ordering;
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "a: 1\n").await;
    let direct = || app.connections.direct_reads.load(Ordering::Relaxed);
    let bearer = format!("Authorization: Bearer {}\r\n", app.token);

    // Three reads on one connection, two of them pipelined in one write.
    let before = direct();
    let mut conn = Conn::open(&app).await;
    conn.send(&read_request(&app)).await;
    let first = conn.answer().await;
    assert_eq!((first.status, &first.body[..]), (200, &b"a: 1\n"[..]));
    let revision = app.publish_ok(KEY, "a: 2\n").await;
    conn.send(&[read_request(&app), read_request(&app)].concat())
        .await;
    for _ in 0..2 {
        let read = conn.answer().await;
        assert_eq!(read.body, b"a: 2\n", "the content published since");
        assert_eq!(
            read.header("x-cairn-revision"),
            Some(&*revision.to_string())
        );
    }
    assert_eq!(direct(), before + 3, "answered without the router");

    // The same answer as the router's, which takes any read with a query.
    let plain = get(&app, &format!("/api/v1/configs/{KEY}"), &bearer).await;
    let routed = get(&app, &format!("/api/v1/configs/{KEY}?view=raw"), &bearer).await;
    assert_eq!(routed.body, plain.body);
    assert_eq!(head_of(&plain), head_of(&routed));
    assert!(plain.header("date").is_some(), "a Date like every answer");
    assert_eq!(
        plain.header("etag"),
        Some(&*format!("\"{}\"", cairn_core::md5::md5_hex("a: 2\n")))
    );

    // Nacos's read, with its token as a parameter, as its clients send it.
    let nacos = format!(
        "/nacos/v1/cs/configs?dataId=conn.yaml&group=DEFAULT_GROUP&tenant=&accessToken={}",
        app.token
    );
    let before = direct();
    let plain = get(&app, &nacos, "").await;
    assert_eq!(direct(), before + 1);
    let routed = get(&app, &format!("{nacos}&appName=shop"), "").await;
    assert_eq!(
        direct(),
        before + 1,
        "a parameter it does not read: the router's"
    );
    assert_eq!((plain.status, &plain.body[..]), (200, &b"a: 2\n"[..]));
    assert_eq!(head_of(&plain), head_of(&routed));
    assert_eq!(
        plain.header("content-md5"),
        Some(&*cairn_core::md5::md5_hex("a: 2\n"))
    );

    // Apollo's reads, of an app served unsigned, as its clients send them.
    app.publish_ok("public/shop/application", "a=1\nb=two")
        .await;
    serve_shop_unsigned(&app).await;
    for route in ["/configs", "/configfiles/json"] {
        let target = format!("{route}/shop/default/application?ip=10.0.0.1");
        let before = direct();
        let plain = get(&app, &target, "").await;
        assert_eq!(direct(), before + 1, "{route}");
        let routed = get(&app, &format!("{target}&unread=1"), "").await;
        assert_eq!(
            direct(),
            before + 1,
            "{route}: a parameter it does not read"
        );
        assert_eq!(plain.status, 200, "{route}");
        assert_eq!(plain.body, routed.body, "{route}");
        assert_eq!(head_of(&plain), head_of(&routed), "{route}");
        let body: Value = serde_json::from_slice(&plain.body).unwrap();
        let pairs = if route == "/configs" {
            body["configurations"].clone()
        } else {
            body
        };
        assert_eq!(pairs, json!({ "a": "1", "b": "two" }), "{route}");
    }
    // A client whose release is current gets the router's 304.
    let current: Value = serde_json::from_slice(
        &get(&app, "/configs/shop/default/application", "")
            .await
            .body,
    )
    .unwrap();
    let current = format!(
        "/configs/shop/default/application?releaseKey={}",
        current["releaseKey"].as_str().unwrap()
    );
    let before = direct();
    let unchanged = get(&app, &current, "").await;
    assert_eq!((unchanged.status, direct()), (304, before));
    // A target hyper reads otherwise than as sent (a fragment it drops, a character it
    // refuses) gets hyper's and the router's answer.
    let with_fragment = get(&app, &format!("{current}#x"), "").await;
    assert_eq!(with_fragment.status, 304);
    let refused = get(&app, "/configs/shop/default/application?ip=<x>", "").await;
    assert_eq!(refused.status, 400);
    assert_eq!(direct(), before);

    // Counted under the route's metrics like every request.
    let metrics = app.metrics().await;
    for route in [
        "/api/v1/configs/{namespace}/{group}/{data_id}",
        "/nacos/v1/cs/configs",
        "/configs/{app}/{cluster}/{namespace}",
        "/configfiles/json/{app}/{cluster}/{namespace}",
    ] {
        let line =
            format!("cairn_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"200\"}}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    // What the direct path does not answer still gets the router's answer.
    let before = direct();
    let stranger = app
        .user_with_grant("stranger", "stranger-password-1", "other", "read")
        .await;
    let native = format!("/api/v1/configs/{KEY}");
    let as_stranger = format!("Authorization: Bearer {stranger}\r\n");
    let labelled = format!("{bearer}X-Cairn-Labels: zone=a\r\n");
    let nacos_as_stranger =
        format!("/nacos/v1/cs/configs?dataId=conn.yaml&group=DEFAULT_GROUP&accessToken={stranger}");
    for (what, target, extra, status) in [
        ("no grant", native.as_str(), as_stranger.as_str(), 403),
        (
            "no such config",
            "/api/v1/configs/public/DEFAULT_GROUP/none.yaml",
            &bearer,
            404,
        ),
        ("no token", &native, "", 401),
        ("a client with labels", &native, &labelled, 200),
        ("no grant, on Nacos", &nacos_as_stranger, "", 403),
        (
            "an app not served unsigned",
            "/configs/stranger-app/default/application",
            "",
            401,
        ),
    ] {
        assert_eq!(get(&app, target, extra).await.status, status, "{what}");
    }
    assert_eq!(direct(), before, "all of them the router's");
    // The refusals were audited, as the router audits them (once each: the direct
    // path looked without auditing). The audit log is written behind the answer.
    let mut audit = Value::Null;
    for _ in 0..100 {
        audit = app
            .get_json("/api/v1/audit?user=stranger&action=config.read")
            .await
            .1;
        if audit["total"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(audit["total"], 2, "{audit}");

    // A client that asks to close gets its answer, then the close.
    let mut conn = Conn::open(&app).await;
    conn.send(
        format!(
            "GET /api/v1/configs/{KEY} HTTP/1.1\r\nHost: cairn\r\n{bearer}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let last = conn.answer().await;
    assert_eq!(
        (last.status, last.header("connection")),
        (200, Some("close"))
    );
    assert!(conn.closed_by_server().await);
}

/// A Nacos listener request on a connection of its own: `conn.yaml` held at `md5`,
/// with `token` as its `accessToken` and `extra` header lines.
async fn nacos_listen(app: &TestApp, token: &str, md5: &str, extra: &str) -> Conn {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "Listening-Configs",
            &format!("conn.yaml\u{2}DEFAULT_GROUP\u{2}{md5}\u{1}"),
        )
        .finish();
    let mut conn = Conn::open(app).await;
    conn.send(
        format!(
            "POST /nacos/v1/cs/configs/listener?accessToken={token} HTTP/1.1\r\nHost: cairn\r\n\
             Long-Pulling-Timeout: 30000\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    conn
}

/// Plain Nacos listeners wait and are answered by the connection layer itself, with
/// exactly the status, headers and content the router gives, whether they are answered
/// at once, woken by a publish or let go with nothing changed; a refusal found while
/// waiting is the router's refusal, and what the direct path does not take (a client
/// naming its gray-release identity, a token that does not verify, a request the
/// router refuses) still gets the router's answer.
#[tokio::test]
async fn plain_nacos_listeners_are_answered_directly_as_the_router_answers_them() {
    use std::sync::atomic::Ordering;
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "a: 1\n").await;
    let md5 = cairn_core::md5::md5_hex("a: 1\n");
    let direct = || app.connections.direct_listens.load(Ordering::Relaxed);
    // The router takes a listener whose client names its labels; with no gray release
    // it sees what every client sees.
    let labelled = "X-Cairn-Labels: zone=a\r\n";
    let changed = b"conn.yaml%02DEFAULT_GROUP%01\n";

    // A stale md5: answered at once.
    let before = direct();
    let plain = nacos_listen(&app, &app.token, "stale", "")
        .await
        .answer()
        .await;
    assert_eq!(direct(), before + 1, "answered without the router");
    let routed = nacos_listen(&app, &app.token, "stale", labelled)
        .await
        .answer()
        .await;
    assert_eq!(direct(), before + 1, "labels: the router's");
    assert_eq!((plain.status, &plain.body[..]), (200, &changed[..]));
    assert_eq!(routed.body, plain.body);
    assert_eq!(head_of(&plain), head_of(&routed));
    assert!(plain.header("date").is_some(), "a Date like every answer");
    assert_eq!(plain.header("cache-control"), Some("no-cache,no-store"));

    // Held, then woken by a publish; the connection serves a read after.
    let mut held = nacos_listen(&app, &app.token, &md5, "").await;
    let mut held_routed = nacos_listen(&app, &app.token, &md5, labelled).await;
    assert_eq!(direct(), before + 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.publish_ok(KEY, "a: 2\n").await;
    let woken = tokio::time::timeout(Duration::from_secs(5), held.answer())
        .await
        .expect("woken by the publish");
    let woken_routed = held_routed.answer().await;
    assert_eq!((woken.status, &woken.body[..]), (200, &changed[..]));
    assert_eq!(head_of(&woken), head_of(&woken_routed));
    held.send(&read_request(&app)).await;
    assert_eq!(held.answer().await.body, b"a: 2\n");

    // Nothing changed and the client asks not to be held: an empty 200, as the router's.
    let md5 = cairn_core::md5::md5_hex("a: 2\n");
    let no_hangup = "Long-Pulling-Timeout-No-Hangup: true\r\n";
    let plain = nacos_listen(&app, &app.token, &md5, no_hangup)
        .await
        .answer()
        .await;
    let routed = nacos_listen(&app, &app.token, &md5, &format!("{no_hangup}{labelled}"))
        .await
        .answer()
        .await;
    assert_eq!((plain.status, plain.body.len()), (200, 0));
    assert_eq!(head_of(&plain), head_of(&routed));

    // A user without a grant is refused as the router refuses them.
    let stranger = app
        .user_with_grant("stranger", "stranger-password-1", "other", "read")
        .await;
    let before = direct();
    let plain = nacos_listen(&app, &stranger, &md5, "").await.answer().await;
    assert_eq!(direct(), before + 1);
    let routed = nacos_listen(&app, &stranger, &md5, labelled)
        .await
        .answer()
        .await;
    assert_eq!((plain.status, routed.status), (403, 403));
    // The same error, but for the time it names.
    let without_time = |answer: &Answer| {
        let mut body = answer.json();
        body.as_object_mut().unwrap().remove("timestamp");
        body
    };
    assert_eq!(without_time(&plain), without_time(&routed));
    assert_eq!(plain.header("content-type"), routed.header("content-type"));

    // What the direct path does not take gets the router's answer.
    let before = direct();
    assert_eq!(
        nacos_listen(&app, "not-a-token", &md5, "")
            .await
            .answer()
            .await
            .status,
        403
    );
    let mut conn = Conn::open(&app).await;
    conn.send(
        format!(
            "POST /nacos/v1/cs/configs/listener?accessToken={} HTTP/1.1\r\nHost: cairn\r\n\
             Content-Length: 0\r\n\r\n",
            app.token
        )
        .as_bytes(),
    )
    .await;
    let refused = conn.answer().await;
    assert_eq!(refused.status, 400, "no Listening-Configs");
    assert!(String::from_utf8_lossy(&refused.body).contains("invalid probeModify"));
    assert_eq!(direct(), before);

    // Counted under the route's metrics like every request.
    let metrics = app.metrics().await;
    let line = "cairn_http_requests_total{method=\"POST\",route=\"/nacos/v1/cs/configs/listener\",status=\"200\"}";
    assert!(metrics.contains(line), "{line} in {metrics}");
}

/// A native watch of `conn.yaml` at `md5`, sent on a connection of its own.
async fn native_watch(app: &TestApp, md5: &str, timeout_ms: u64, extra: &str) -> Conn {
    let mut conn = Conn::open(app).await;
    conn.send(&watch_request(app, md5, timeout_ms, extra)).await;
    conn
}

/// Native watches of keys wait and are answered by the connection layer too, as the
/// router answers them; a watch of patterns, or one the router refuses, is the
/// router's.
#[tokio::test]
async fn native_watches_are_answered_directly_as_the_router_answers_them() {
    use std::sync::atomic::Ordering;
    let app = TestApp::spawn().await;
    app.publish_ok(KEY, "a: 1\n").await;
    let md5 = cairn_core::md5::md5_hex("a: 1\n");
    let direct = || app.connections.direct_listens.load(Ordering::Relaxed);
    let labelled = "X-Cairn-Labels: zone=a\r\n";
    // Stale: answered at once, as the router answers.
    let before = direct();
    let plain = native_watch(&app, "stale", 30_000, "").await.answer().await;
    assert_eq!(direct(), before + 1, "answered without the router");
    let routed = native_watch(&app, "stale", 30_000, labelled)
        .await
        .answer()
        .await;
    assert_eq!(direct(), before + 1, "labels: the router's");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.json()["changed"][0]["md5"], md5.as_str());
    assert_eq!(plain.body, routed.body);
    assert_eq!(head_of(&plain), head_of(&routed));

    // Held, then woken by a publish.
    let mut held = native_watch(&app, &md5, 30_000, "").await;
    let mut held_routed = native_watch(&app, &md5, 30_000, labelled).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let revision = app.publish_ok(KEY, "a: 2\n").await;
    let woken = tokio::time::timeout(Duration::from_secs(5), held.answer())
        .await
        .expect("woken by the publish");
    let woken_routed = held_routed.answer().await;
    assert_eq!(woken.json()["changed"][0]["revision"], revision);
    assert_eq!(woken.body, woken_routed.body);
    assert_eq!(head_of(&woken), head_of(&woken_routed));

    // Nothing changed before the timeout: an empty list, as the router's.
    let md5 = cairn_core::md5::md5_hex("a: 2\n");
    let quiet = native_watch(&app, &md5, 50, "").await.answer().await;
    let quiet_routed = native_watch(&app, &md5, 50, labelled).await.answer().await;
    assert_eq!(quiet.json(), json!({ "changed": [] }));
    assert_eq!(quiet.body, quiet_routed.body);
    assert_eq!(head_of(&quiet), head_of(&quiet_routed));
    assert_eq!(direct(), before + 3);

    // A user without a grant: refused as the router refuses.
    let stranger = app
        .user_with_grant("stranger", "stranger-password-1", "other", "read")
        .await;
    let mut conn = Conn::open(&app).await;
    let request = String::from_utf8(watch_request(&app, &md5, 30_000, ""))
        .unwrap()
        .replace(&app.token, &stranger);
    conn.send(request.as_bytes()).await;
    let refused = conn.answer().await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["code"], "forbidden");
    assert_eq!(direct(), before + 4);

    // A watch of patterns, and a malformed one, go through the router.
    let patterns = json!({
        "patterns": [{ "namespace": "public", "group": "DEFAULT_GROUP", "data_id": "*.yaml" }],
        "timeout_ms": 0,
    })
    .to_string();
    let mut conn = Conn::open(&app).await;
    conn.send(
        format!(
            "POST /api/v1/watch HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{patterns}",
            app.token,
            patterns.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(conn.answer().await.status, 200);
    let mut conn = Conn::open(&app).await;
    conn.send(
        format!(
            "POST /api/v1/watch HTTP/1.1\r\nHost: cairn\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{]",
            app.token
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(conn.answer().await.status, 400);
    assert_eq!(direct(), before + 4);
}

/// One address cannot hold more than its share of the node's sockets: the connection
/// over the cap gets a 503 that names the setting, and a freed slot is usable again.
#[tokio::test]
async fn one_address_is_capped_in_open_connections() {
    let app = TestApp::spawn_with(|s| s.max_connections_per_address = 3).await;
    // The test's own HTTP client may keep a pooled connection open: count it out.
    let mut held = Vec::new();
    let refused = loop {
        let mut conn = Conn::open(&app).await;
        conn.send(&read_request(&app)).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), conn.answer())
            .await
            .expect("an answer");
        if answer.status == 503 {
            break answer;
        }
        held.push(conn);
        assert!(held.len() <= 3, "the cap holds");
    };
    assert_eq!(refused.json()["code"], "too_many_connections");
    assert!(refused.json()["message"]
        .as_str()
        .unwrap()
        .contains("max_connections_per_address"));
    // Closing one frees its place.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut conn = Conn::open(&app).await;
        conn.send(&read_request(&app)).await;
        let answer = conn.answer().await;
        if answer.status != 503 {
            again = Some(answer.status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(again, Some(404), "served again once a connection closed");
}

/// A body that trickles in is refused once its deadline passes, with a status and a
/// message that say so, on the native and Nacos surfaces alike.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let app =
        TestApp::spawn_with(|s| s.body_read_timeout_ms = cairn_server::settings::Millis::new(300))
            .await;
    let mut conn = Conn::open(&app).await;
    let head = format!(
        "PUT /api/v1/configs/public/g/slow.txt HTTP/1.1\r\nHost: cairn\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"content\":",
        app.token
    );
    let started = std::time::Instant::now();
    conn.send(head.as_bytes()).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), conn.answer())
        .await
        .expect("answered without the rest of the body");
    assert_eq!(answer.status, 408);
    assert_eq!(answer.json()["code"], "body_too_slow");
    assert!(answer.json()["message"]
        .as_str()
        .unwrap()
        .contains("body_read_timeout_ms"));
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut conn = Conn::open(&app).await;
    let head = format!(
        "POST /nacos/v1/cs/configs?accessToken={} HTTP/1.1\r\nHost: cairn\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ndataId=a",
        app.token
    );
    conn.send(head.as_bytes()).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), conn.answer())
        .await
        .expect("answered without the rest of the body");
    assert_eq!(answer.status, 400);
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    assert!(text.contains("body_read_timeout_ms"), "{text}");
    // Nothing was written.
    let (status, _) = app.get_json("/api/v1/configs/public/g/slow.txt").await;
    assert_eq!(status, 404);
}

/// A login is read before anyone is known, so it may only be small.
#[tokio::test]
async fn an_unauthenticated_body_is_small() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(64 * 1024);
    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "username": "admin", "password": padding }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = app
        .http
        .post(format!("{}/nacos/v1/auth/login", app.base))
        .form(&[("username", "admin"), ("password", padding.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A real login still fits.
    app.login("admin", crate::helpers::ADMIN_PASSWORD).await;
}
