//! The Rust client against real `cairn server` processes that are stopped and started:
//! snapshots, the failover directory, and many keys watched through one loop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_client::{Client, Key, Publish};
use futures::StreamExt;

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const PASSWORD: &str = "sdk-password-1";

struct Server {
    child: Child,
    address: String,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(data_dir: &Path, listen: &str) -> Server {
        Self::start_with(data_dir, listen, &[])
    }

    fn start_with(data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("CAIRN_ADMIN_PASSWORD", PASSWORD)
            .env("CAIRN_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let address = loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the server exited"
            );
            if let Some(rest) = line.strip_prefix("Cairn is listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        Server {
            child,
            address,
            _stdout: stdout,
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

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
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0");
    let client = client(&server.address, dir.path()).await;
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
    let listen = server.address.trim_start_matches("http://").to_owned();
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
    let server = Server::start(&dir.path().join("data"), &listen);
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
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0");
    let client = client(&server.address, dir.path()).await;
    let keys: Vec<Key> = (0..1_000)
        .map(|i| Key::parse(&format!("public/fleet/k{i}.txt")).unwrap())
        .collect();
    for key in keys.iter().step_by(10) {
        client.publish(key, &Publish::new("v0")).await.unwrap();
    }
    let mut changes = Box::pin(client.watch_stream(keys.clone()));
    // One long poll carries all 1,000 keys.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(&server.address).await;
        if metrics.lines().any(|l| l == "cairn_watchers_held 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch was not held: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let server = Server::start_with(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--token-ttl-secs", "2"],
    );
    let client = client(&server.address, dir.path()).await;
    let key = Key::parse("public/app/renew.txt").unwrap();
    client.publish(&key, &Publish::new("one")).await.unwrap();
    // Past the first token's lifetime: the client has renewed it by itself.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        client.get(&key).await.unwrap().unwrap().content.as_deref(),
        Some("one")
    );
    let wrong = Client::builder(&server.address)
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
    let server = Server::start(&dir.path().join("data"), "127.0.0.1:0");
    let client = client(&server.address, dir.path()).await;
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
