//! Clusters of real `cairn server` processes sharing one PostgreSQL or MySQL database:
//! changes travel between nodes, a node killed with SIGKILL loses nothing acknowledged,
//! and a database outage degrades the nodes without stopping reads and watches.
//!
//! These need `CAIRN_TEST_POSTGRES_URL` / `CAIRN_TEST_MYSQL_URL`; without them they say
//! so and skip. `.ci/run` always sets both.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::{Client, Key, Publish, WatchKey};
use cairn_store::scratch::{Engine, Scratch};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const PASSWORD: &str = "cluster-password-1";

struct Node {
    child: Child,
    url: String,
    client: Client,
}

impl Node {
    async fn start(database: &str, data_dir: &Path) -> Node {
        let mut child = Command::new(BIN)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--database", database])
            .args([
                "--sync-poll-ms",
                "50",
                "--heartbeat-ms",
                "200",
                "--node-ttl-ms",
                "3000",
            ])
            .env("CAIRN_ADMIN_PASSWORD", PASSWORD)
            .env("CAIRN_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("the node starts in time")
                .unwrap()
                .expect("the node printed its address before exiting");
            if let Some(rest) = line.strip_prefix("Cairn is listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining stdout so the node never writes to a full or closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let anonymous = Client::builder(&url).build().unwrap();
        let token = anonymous.login("admin", PASSWORD).await.unwrap().token;
        Node {
            child,
            client: anonymous.with_token(token),
            url,
        }
    }

    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

fn key(data_id: &str) -> Key {
    Key::new("public", "DEFAULT_GROUP", data_id)
}

/// Polls until `check` holds, or fails after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn three_nodes_share_changes(engine: Engine) {
    let Some(db) = Scratch::create(engine).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&db.url, &dir.path().join("a")).await;
    let b = Node::start(&db.url, &dir.path().join("b")).await;
    let c = Node::start(&db.url, &dir.path().join("c")).await;
    let k = key("shared.yaml");

    // A watcher on C that has nothing yet; a publish on A wakes it.
    let watcher = {
        let client = c.client.clone();
        let held = vec![WatchKey::new(&k, "")];
        tokio::spawn(async move {
            let started = Instant::now();
            let changed = client.watch(&held, Duration::from_secs(20)).await.unwrap();
            (changed, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published = a
        .client
        .publish(&k, &Publish::new("port: 1\n"))
        .await
        .unwrap();
    let (changed, waited) = watcher.await.unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].revision, Some(published.revision));
    assert!(
        waited < Duration::from_secs(5),
        "woken promptly: {waited:?}"
    );
    // Other nodes apply it within a poll interval (at once on PostgreSQL).
    eventually(Duration::from_secs(5), "B to have it", || async {
        matches!(b.client.get(&k).await, Ok(Some(c)) if c.content.as_deref() == Some("port: 1\n"))
    })
    .await;

    // A deletion on B reaches A.
    b.client.delete(&k, None).await.unwrap();
    eventually(Duration::from_secs(5), "the deletion on A", || async {
        matches!(a.client.get(&k).await, Ok(None))
    })
    .await;

    // A gray release made on A reaches a matching watcher on C, and only matching reads.
    let main = a
        .client
        .publish(&k, &Publish::new("port: 3\n"))
        .await
        .unwrap();
    let canary_on_c = c.client.clone().with_labels(["canary=true"]);
    eventually(
        Duration::from_secs(5),
        "C to have the main content",
        || async {
            matches!(canary_on_c.get(&k).await, Ok(Some(c)) if c.revision == main.revision)
        },
    )
    .await;
    let watcher = {
        let client = canary_on_c.clone();
        let held = vec![WatchKey::new(&k, main.md5.clone())];
        tokio::spawn(async move { client.watch(&held, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gray = a
        .client
        .gray_publish(
            &k,
            &cairn_client::GrayPublish {
                content: "port: 4\n".into(),
                labels: vec!["canary=true".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let changed = watcher.await.unwrap().unwrap();
    assert_eq!(changed[0].md5, gray.md5);
    let seen = canary_on_c.get(&k).await.unwrap().unwrap();
    assert!(seen.gray);
    assert_eq!(seen.content.as_deref(), Some("port: 4\n"));
    eventually(
        Duration::from_secs(5),
        "B to know the gray release",
        || async { matches!(b.client.gray(&k).await, Ok(Some(g)) if g.revision == gray.revision) },
    )
    .await;
    let plain = b.client.get(&k).await.unwrap().unwrap();
    assert_eq!(
        (plain.gray, plain.content.as_deref()),
        (false, Some("port: 3\n"))
    );

    // Every node lists the three live nodes.
    let nodes = b.client.nodes().await.unwrap();
    let mut addresses: Vec<_> = nodes.iter().map(|n| n.address.clone()).collect();
    addresses.sort();
    let mut expected = vec![a.url.clone(), b.url.clone(), c.url.clone()];
    expected.sort();
    assert_eq!(addresses, expected);

    // A client that knows one node learns the others, and fails over when its node dies.
    let token = a.client.login("admin", PASSWORD).await.unwrap().token;
    let client = Client::builder(&a.url).token(token).build().unwrap();
    assert_eq!(client.discover().await.unwrap().len(), 3);
    a.client
        .publish(&k, &Publish::new("port: 2\n"))
        .await
        .unwrap();
    let a_url = a.url.clone();
    a.kill().await;
    eventually(Duration::from_secs(5), "a read after failover", || async {
        matches!(client.get(&k).await, Ok(Some(c)) if c.content.as_deref() == Some("port: 2\n"))
    })
    .await;
    assert_ne!(client.server().trim_end_matches('/'), a_url);

    for node in [b, c] {
        node.kill().await;
    }
    db.drop_database().await;
}

type Acked = Arc<Mutex<Vec<(Key, i64, String)>>>;

/// Most writes one writer makes, so the test's size does not depend on machine speed.
const MAX_WRITES: u32 = 300;

/// Publishes through `client` until `stop`, each write to a key of its own, recording
/// every acknowledged write. A key per write means a change a node failed to apply
/// cannot hide behind a later write to the same key.
fn writer(
    client: Client,
    name: &'static str,
    acked: Acked,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in 0..MAX_WRITES {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let k = key(&format!("{name}-{i}.txt"));
            let content = format!("written through {name}, #{i}");
            match client.publish(&k, &Publish::new(content.clone())).await {
                Ok(config) => acked.lock().unwrap().push((k, config.revision, content)),
                // The node is gone; its unacknowledged write may or may not have landed.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
}

async fn killed_node_loses_nothing_acknowledged(engine: Engine) {
    let Some(db) = Scratch::create(engine).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&db.url, &dir.path().join("a")).await;
    let b = Node::start(&db.url, &dir.path().join("b")).await;
    let c = Node::start(&db.url, &dir.path().join("c")).await;

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let through_a = writer(a.client.clone(), "a", acked.clone(), stop.clone());
    let through_b = writer(b.client.clone(), "b", acked.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    through_a.await.unwrap();
    through_b.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.iter().any(|w| w.2.contains("through a")),
        "writes went through A"
    );
    assert!(
        acked.iter().any(|w| w.2.contains("through b")),
        "writes went through B"
    );

    let a = Node::start(&db.url, &dir.path().join("a")).await;
    // Every acknowledged write is served by every node (C and B tailed it, A reloaded),
    // with its content and revision, and recorded in history exactly once.
    for node in [&a, &b, &c] {
        for (k, revision, content) in &acked {
            eventually(
                Duration::from_secs(10),
                "the write on every node",
                || async {
                    matches!(
                        node.client.get(k).await,
                        Ok(Some(config)) if config.revision == *revision
                            && config.content.as_deref() == Some(content.as_str())
                    )
                },
            )
            .await;
        }
    }
    for (k, _, _) in &acked {
        assert_eq!(
            b.client.history(k, 1, 10).await.unwrap().total,
            1,
            "{k} once"
        );
    }

    for node in [a, b, c] {
        node.kill().await;
    }
    db.drop_database().await;
}

/// A TCP forwarder the test can cut, standing in for the database going away.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (flag, list) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "down"
                }
                let target = target.clone();
                list.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Proxy {
            port,
            up,
            connections,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by `127.0.0.1:port`; returns the old ones too.
fn through_port(url: &str, port: u16) -> (String, String) {
    let start = url.find("://").unwrap() + 3;
    let end = start + url[start..].find('/').unwrap();
    let authority = &url[start..end];
    let (user, host) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    (
        format!("{}{user}127.0.0.1:{port}{}", &url[..start], &url[end..]),
        host.to_owned(),
    )
}

async fn database_outage_degrades_and_recovers(engine: Engine) {
    let Some(db) = Scratch::create(engine).await else {
        return;
    };
    let (_, target) = through_port(&db.url, 0);
    let proxy = Proxy::start(target).await;
    let (url, _) = through_port(&db.url, proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&url, &dir.path().join("a")).await;
    let b = Node::start(&url, &dir.path().join("b")).await;
    let k = key("outage.yaml");
    let first = a.client.publish(&k, &Publish::new("v: 1\n")).await.unwrap();
    eventually(Duration::from_secs(5), "B to have v1", || async {
        matches!(b.client.get(&k).await, Ok(Some(_)))
    })
    .await;

    let watcher = {
        let client = b.client.clone();
        let held = vec![WatchKey::new(&k, first.md5.clone())];
        tokio::spawn(async move { client.watch(&held, Duration::from_secs(60)).await })
    };
    proxy.cut();

    // Reads keep working from memory; writes are refused with a clear 503.
    for node in [&a, &b] {
        let config = node.client.get(&k).await.unwrap().unwrap();
        assert_eq!(config.content.as_deref(), Some("v: 1\n"));
    }
    let refused = a
        .client
        .publish(&k, &Publish::new("v: 2\n"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("database_unavailable"), "{refused}");
    assert_eq!(ready_status(&a).await, 503, "/ready says degraded");
    assert!(!watcher.is_finished(), "the held watch is still held");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        match a.client.publish(&k, &Publish::new("v: 2\n")).await {
            Ok(config) => break config,
            Err(e) => assert!(Instant::now() < deadline, "writes still fail: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let changed = tokio::time::timeout(Duration::from_secs(15), watcher)
        .await
        .expect("the watcher on B is woken after recovery")
        .unwrap()
        .unwrap();
    assert_eq!(changed[0].md5, second.md5);
    assert_eq!(ready_status(&a).await, 200);

    for node in [a, b] {
        node.kill().await;
    }
    db.drop_database().await;
}

/// The HTTP status of a node's `/ready`.
async fn ready_status(node: &Node) -> u16 {
    match node.client.ready().await {
        Ok(()) => 200,
        Err(cairn_client::Error::Api { status, .. }) => status,
        Err(e) => panic!("{e}"),
    }
}

macro_rules! engine_tests {
    ($module:ident, $engine:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn three_nodes_share_changes() {
                super::three_nodes_share_changes($engine).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn killed_node_loses_nothing_acknowledged() {
                super::killed_node_loses_nothing_acknowledged($engine).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn database_outage_degrades_and_recovers() {
                super::database_outage_degrades_and_recovers($engine).await;
            }
        }
    };
}

engine_tests!(postgres, Engine::Postgres);
engine_tests!(mysql, Engine::MySql);
