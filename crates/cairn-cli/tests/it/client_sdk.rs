//! The Rust client against real `cairn server` processes that are stopped and started:
//! snapshots, the failover directory, and many keys watched through one loop.

use std::path::Path;
use std::time::Duration;

use cairn_client::{Client, Key, Publish};
use futures::StreamExt;

use crate::common::Server;

const PASSWORD: &str = "sdk-password-1";

async fn client(server: &str, dir: &Path) -> Client {
    Client::builder(server)
        .credentials("admin", PASSWORD)
        .snapshot_dir(dir.join("snapshots"))
        .failover_dir(dir.join("failover"))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_serve_while_no_server_answers_and_failover_wins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let client = client(&server.url, dir.path()).await;
    let key = Key::parse("public/app/db.properties").unwrap();
    client
        .publish(&key, &Publish::new("url=v1\n"))
        .await
        .unwrap();
    assert_eq!(
        client.get(&key).await.unwrap().unwrap().content.as_deref(),
        Some("url=v1\n")
    );
    // Names that differ only in their extension keep snapshots of their own.
    let sibling = Key::parse("public/app/db.yaml").unwrap();
    client
        .publish(&sibling, &Publish::new("url: yaml\n"))
        .await
        .unwrap();
    client.get(&sibling).await.unwrap();

    // The server dies: the client keeps serving what it last received.
    let listen = server.address().to_owned();
    server.kill();
    let kept = client.get(&key).await.unwrap().expect("the snapshot");
    assert_eq!(kept.content.as_deref(), Some("url=v1\n"));
    let kept = client
        .get(&sibling)
        .await
        .unwrap()
        .expect("its own snapshot");
    assert_eq!(kept.content.as_deref(), Some("url: yaml\n"));

    // A client that starts while no server answers starts from the snapshot too.
    let fresh = Client::builder(format!("http://{listen}"))
        .snapshot_dir(dir.path().join("snapshots"))
        .build()
        .unwrap();
    assert_eq!(
        fresh.get(&key).await.unwrap().unwrap().content.as_deref(),
        Some("url=v1\n")
    );
    let unknown = Key::parse("public/app/never.txt").unwrap();
    assert!(
        fresh.get(&unknown).await.is_err(),
        "no snapshot, no server: an error"
    );

    // The server comes back (same address): fresh content again.
    let server = Server::start_on(&dir.path().join("data"), &listen, Some(PASSWORD), &[]);
    client
        .publish(&key, &Publish::new("url=v2\n"))
        .await
        .unwrap();
    assert_eq!(
        client.get(&key).await.unwrap().unwrap().content.as_deref(),
        Some("url=v2\n")
    );

    // An operator's failover file wins over the server until it is removed.
    let pinned = dir.path().join("failover/public/app/db.properties");
    std::fs::create_dir_all(pinned.parent().unwrap()).unwrap();
    std::fs::write(&pinned, "url=pinned\n").unwrap();
    assert_eq!(
        client.get(&key).await.unwrap().unwrap().content.as_deref(),
        Some("url=pinned\n")
    );
    std::fs::remove_file(&pinned).unwrap();
    assert_eq!(
        client.get(&key).await.unwrap().unwrap().content.as_deref(),
        Some("url=v2\n")
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_keys_are_watched_through_one_loop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let client = client(&server.url, dir.path()).await;
    let keys: Vec<Key> = (0..1_000)
        .map(|i| Key::parse(&format!("public/fleet/k{i}.txt")).unwrap())
        .collect();
    for key in keys.iter().step_by(10) {
        client.publish(key, &Publish::new("v0")).await.unwrap();
    }
    let mut changes = client.watch_stream(keys.clone()).await.unwrap();
    // One long poll carries all 1,000 keys.
    wait_for_watchers(&server.url, 1).await;
    // A change to an existing key, a created key and a deleted one are each reported.
    client
        .publish(&keys[500], &Publish::new("v1"))
        .await
        .unwrap();
    client
        .publish(&keys[777], &Publish::new("new"))
        .await
        .unwrap();
    client.delete(&keys[10], None).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change arrives")
            .expect("the stream is open");
        seen.push((
            change.key.data_id.clone(),
            change.config.and_then(|c| c.content),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("k10.txt".to_owned(), None),
            ("k500.txt".to_owned(), Some("v1".to_owned())),
            ("k777.txt".to_owned(), Some("new".to_owned())),
        ]
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_earn_and_renew_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(
        &dir.path().join("data"),
        "127.0.0.1:0",
        Some(PASSWORD),
        &["--token-ttl-secs", "2"],
    );
    let client = client(&server.url, dir.path()).await;
    let key = Key::parse("public/app/renew.txt").unwrap();
    client.publish(&key, &Publish::new("one")).await.unwrap();
    // Past the first token's lifetime: the client has renewed it by itself.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        client.get(&key).await.unwrap().unwrap().content.as_deref(),
        Some("one")
    );
    let wrong = Client::builder(&server.url)
        .credentials("admin", "not-the-password")
        .build()
        .unwrap();
    assert_eq!(
        wrong.get(&key).await.unwrap_err().code(),
        Some("bad_credentials")
    );
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_reads_follow_the_format() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Listen {
        port: u16,
        hosts: Vec<String>,
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let client = client(&server.url, dir.path()).await;
    let yaml = Key::parse("public/app/server.yaml").unwrap();
    client
        .publish(&yaml, &Publish::new("port: 8080\nhosts: [a, b]\n"))
        .await
        .unwrap();
    let toml = Key::parse("public/app/server.toml").unwrap();
    client
        .publish(&toml, &Publish::new("port = 9090\nhosts = [\"c\"]\n"))
        .await
        .unwrap();
    let props = Key::parse("public/app/db.properties").unwrap();
    client
        .publish(&props, &Publish::new("url = jdbc:x\npool.size=5\n"))
        .await
        .unwrap();
    let expected = Listen {
        port: 8080,
        hosts: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        client.get_as::<Listen>(&yaml).await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        client.get_as::<Listen>(&toml).await.unwrap().unwrap().port,
        9090
    );
    let map: std::collections::BTreeMap<String, String> =
        client.get_as(&props).await.unwrap().unwrap();
    assert_eq!(map["pool.size"], "5");
    let err = client.get_as::<Listen>(&props).await.unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
    assert!(client
        .get_as::<Listen>(&Key::parse("public/app/none.yaml").unwrap())
        .await
        .unwrap()
        .is_none());
    server.kill();
}

/// Waits until the server holds `n` watch requests.
async fn wait_for_watchers(address: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(address).await;
        if metrics
            .lines()
            .any(|l| l == format!("cairn_watchers_held {n}"))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} watches were not held: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The contents a listener has been called with (`None`: deleted).
type Calls = std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>;

/// A listener on `key` that records what it is called with.
async fn record(client: &Client, key: &Key) -> (Calls, cairn_client::Listener) {
    let calls: Calls = Default::default();
    let sink = calls.clone();
    let listener = client
        .add_listener(key.clone(), move |change| {
            sink.lock()
                .unwrap()
                .push(change.config.and_then(|c| c.content))
        })
        .await
        .unwrap();
    (calls, listener)
}

async fn wait_for_calls(calls: &Calls, n: usize) -> Vec<Option<String>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while calls.lock().unwrap().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "expected {n} calls, got {:?}",
            calls.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    calls.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_hear_each_change_once_in_order_through_the_shared_loop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let client = client(&server.url, dir.path()).await;
    let key = Key::parse("public/app/flag.txt").unwrap();
    let other = Key::parse("public/app/other.txt").unwrap();
    client.publish(&key, &Publish::new("v0")).await.unwrap();

    let (calls, listener) = record(&client, &key).await;
    let (other_calls, _other) = record(&client, &other).await;
    let _stream = client
        .watch_stream(vec![key.clone(), other.clone()])
        .await
        .unwrap();
    // Two listeners and a stream of the same client: one held long poll.
    wait_for_watchers(&server.url, 1).await;

    for i in 1..=5 {
        client
            .publish(&key, &Publish::new(format!("v{i}")))
            .await
            .unwrap();
        wait_for_calls(&calls, i).await;
    }
    // The same content again is no change.
    client.publish(&key, &Publish::new("v5")).await.unwrap();
    client.delete(&key, None).await.unwrap();
    let seen = wait_for_calls(&calls, 6).await;
    let expected: Vec<Option<String>> = (1..=5)
        .map(|i| Some(format!("v{i}")))
        .chain([None])
        .collect();
    assert_eq!(seen, expected);
    assert!(other_calls.lock().unwrap().is_empty());

    // A burst faster than a round trip: the listener may skip versions it was never
    // shown, but it goes only forward and ends on the last one.
    for i in 10..30 {
        client
            .publish(&key, &Publish::new(format!("v{i}")))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while calls.lock().unwrap().last() != Some(&Some("v29".to_owned())) {
        assert!(std::time::Instant::now() < deadline, "{calls:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let burst: Vec<u32> = calls.lock().unwrap()[6..]
        .iter()
        .map(|c| c.as_deref().unwrap()[1..].parse().unwrap())
        .collect();
    assert!(burst.windows(2).all(|w| w[0] < w[1]), "{burst:?}");

    // Removed: not called again.
    listener.remove();
    let before = calls.lock().unwrap().len();
    client.publish(&other, &Publish::new("o1")).await.unwrap();
    client.publish(&key, &Publish::new("after")).await.unwrap();
    wait_for_calls(&other_calls, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.lock().unwrap().len(), before);
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layered_manager_follows_the_server_and_outlives_it() {
    use cairn_client::layered::{EventKind, Manager};
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Registry {
        interval: u64,
        servers: Vec<String>,
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let listen = server.address().to_owned();
    let client = client(&server.url, dir.path()).await;
    let app = Key::parse("public/svc/app.yaml").unwrap();
    let routes = Key::parse("public/svc/routes.json").unwrap();
    client
        .publish(
            &app,
            &Publish::new("registry:\n  interval: 30\n  servers: [a]\nname: svc\n"),
        )
        .await
        .unwrap();
    client
        .publish(&routes, &Publish::new(r#"{"/a": "x"}"#))
        .await
        .unwrap();
    let env = [("SVC_REGISTRY__INTERVAL", "99"), ("SVC_EXTRA", "from-env")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let manager = Manager::builder()
        .env_from("SVC_", env.clone())
        .remote(&client, app.clone())
        .remote_whole(&client, routes.clone(), "routes")
        .build()
        .await
        .unwrap();
    // Remote beats the environment by default; what only the environment has shows.
    let registry = manager.handle::<Registry>("registry").unwrap();
    assert_eq!(registry.get().interval, 30);
    assert_eq!(manager.get::<String>("extra").unwrap(), "from-env");
    assert_eq!(manager.get::<String>("routes./a").unwrap(), "x");
    let batches = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = batches.clone();
    manager.on_prefix("", move |events| {
        sink.lock().unwrap().push(
            events
                .iter()
                .map(|e| (e.key.clone(), e.kind))
                .collect::<Vec<_>>(),
        )
    });

    // One publish is one batch with every key it changed.
    client
        .publish(
            &app,
            &Publish::new("registry:\n  interval: 5\n  servers: [a, b]\n"),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while batches.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no events");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        batches.lock().unwrap()[0],
        [
            ("name".to_owned(), EventKind::Deleted),
            ("registry.interval".to_owned(), EventKind::Updated),
            ("registry.servers".to_owned(), EventKind::Updated),
        ]
    );
    assert_eq!(
        *registry.get(),
        Registry {
            interval: 5,
            servers: vec!["a".into(), "b".into()]
        }
    );

    // The server dies: values stay. A manager started now starts from the snapshots.
    server.kill();
    assert_eq!(manager.get::<u64>("registry.interval").unwrap(), 5);
    let offline = Client::builder(format!("http://{listen}"))
        .snapshot_dir(dir.path().join("snapshots"))
        .build()
        .unwrap();
    let cold = Manager::builder()
        .remote(&offline, app.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(cold.get::<u64>("registry.interval").unwrap(), 5);

    // The server returns: the watch finds it again and the next publish arrives.
    let server = Server::start_on(&dir.path().join("data"), &listen, Some(PASSWORD), &[]);
    client
        .publish(&routes, &Publish::new(r#"{"/a": "y", "/b": "z"}"#))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while batches.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        batches.lock().unwrap()[1],
        [("routes".to_owned(), EventKind::Updated)]
    );
    assert_eq!(manager.get::<String>("routes./b").unwrap(), "z");
    server.kill();
}

/// `/metrics` read with a plain TCP exchange (it needs no token).
async fn metrics_text(address: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// A client declaring labels or an IP reads the gray content meant for it, and a clone
/// with another identity keeps snapshots apart, so a canary's content never becomes
/// another client's fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gray_identities_read_their_content_and_keep_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let plain = client(&server.url, dir.path()).await;
    let key = Key::parse("public/app/flags.properties").unwrap();
    plain
        .publish(&key, &Publish::new("beta=off\n"))
        .await
        .unwrap();
    let gray = cairn_client::GrayPublish {
        ips: vec!["10.0.0.7".into()],
        labels: vec!["canary=true".into()],
        content: "beta=on\n".into(),
        ..Default::default()
    };
    plain.gray_publish(&key, &gray).await.unwrap();

    let content = |c: &Client| {
        let (c, key) = (c.clone(), key.clone());
        async move { c.get(&key).await.unwrap().unwrap().content.unwrap() }
    };
    let by_label = plain.clone().with_labels(["canary=true"]);
    let by_ip = plain.clone().with_client_ip("10.0.0.7");
    let built_with_label = Client::builder(&server.url)
        .credentials("admin", PASSWORD)
        .labels(["zone=eu-1", "canary=true"])
        .build()
        .unwrap();
    assert_eq!(content(&plain).await, "beta=off\n");
    assert_eq!(content(&by_label).await, "beta=on\n");
    assert_eq!(content(&by_ip).await, "beta=on\n");
    assert_eq!(content(&built_with_label).await, "beta=on\n");
    assert!(by_label.get(&key).await.unwrap().unwrap().gray);

    // Each identity falls back to what it last read.
    server.kill();
    assert_eq!(content(&plain).await, "beta=off\n");
    assert_eq!(content(&by_label).await, "beta=on\n");
    assert_eq!(content(&by_ip).await, "beta=on\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_watch_follows_a_group_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let client = client(&server.url, dir.path()).await;
    let publish = |data_id: &str, content: &str| {
        let key = Key::parse(&format!("public/web/{data_id}")).unwrap();
        let client = client.clone();
        let content = content.to_owned();
        async move { client.publish(&key, &Publish::new(content)).await.unwrap() }
    };
    publish("a.yaml", "a: 1").await;
    let patterns = [cairn_client::WatchPattern::namespace("public")
        .group("web")
        .data_id("*.yaml")];
    let first = client
        .watch_pattern(&patterns, 0, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(first.complete);
    assert_eq!(first.changed.len(), 1);
    assert_eq!(first.changed[0].data_id, "a.yaml");

    let watching = {
        let client = client.clone();
        let patterns = patterns.clone();
        tokio::spawn(async move {
            client
                .watch_pattern(&patterns, first.seq, Duration::from_secs(20))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish("b.txt", "not matched").await;
    publish("created.yaml", "c: 1").await;
    let next = tokio::time::timeout(Duration::from_secs(10), watching)
        .await
        .expect("woken by the new config")
        .unwrap();
    assert!(!next.complete);
    let names: Vec<&str> = next.changed.iter().map(|c| c.data_id.as_str()).collect();
    assert_eq!(names, ["created.yaml"]);
    assert!(next.seq > first.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_stream_and_listener_hand_out_created_changed_and_deleted_configs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(PASSWORD));
    let client = client(&server.url, dir.path()).await;
    let key = |data_id: &str| Key::parse(&format!("public/web/{data_id}")).unwrap();
    client
        .publish(&key("before.yaml"), &Publish::new("b: 1"))
        .await
        .unwrap();
    let patterns = vec![cairn_client::WatchPattern::namespace("public")
        .group("web")
        .data_id("*.yaml")];
    let mut stream = client.pattern_stream(patterns.clone()).await.unwrap();
    let (sent, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let listener = client
        .add_pattern_listener(patterns, move |change| {
            let _ = sent.send(change);
        })
        .await
        .unwrap();
    // What existed before is not reported; a config created after is, with its content.
    client
        .publish(&key("skipped.txt"), &Publish::new("not matched"))
        .await
        .unwrap();
    client
        .publish(&key("new.yaml"), &Publish::new("n: 1"))
        .await
        .unwrap();
    both(
        &mut stream,
        &mut heard,
        ("new.yaml".into(), Some("n: 1".into())),
    )
    .await;
    client
        .publish(&key("before.yaml"), &Publish::new("b: 2"))
        .await
        .unwrap();
    both(
        &mut stream,
        &mut heard,
        ("before.yaml".into(), Some("b: 2".into())),
    )
    .await;
    client.delete(&key("new.yaml"), None).await.unwrap();
    both(&mut stream, &mut heard, ("new.yaml".into(), None)).await;
    listener.remove();

    // A namespace that does not exist is refused when the watch begins.
    let err = client
        .pattern_stream(vec![cairn_client::WatchPattern::namespace("nowhere")])
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), Some("namespace_not_found"), "{err}");
}

/// A change as (data id, content), `None` when deleted.
fn described(change: &cairn_client::Change) -> (String, Option<String>) {
    (
        change.key.data_id.clone(),
        change.config.as_ref().and_then(|c| c.content.clone()),
    )
}

/// Waits for `expected` from both a pattern stream and a listener's channel, so neither
/// sees two changes to one config merged into the latest.
async fn both(
    stream: &mut cairn_client::PatternStream,
    heard: &mut tokio::sync::mpsc::UnboundedReceiver<cairn_client::Change>,
    expected: (String, Option<String>),
) {
    let change = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream does not end");
    assert_eq!(described(&change), expected, "the stream");
    let change = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("the listener is called")
        .unwrap();
    assert_eq!(described(&change), expected, "the listener");
}
