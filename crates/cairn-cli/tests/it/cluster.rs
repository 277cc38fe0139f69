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

use cairn_client::{Client, ExposeSecret as _, Key, Publish, WatchKey};
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
        Self::start_with(database, data_dir, None).await
    }

    /// A node; with `tls`, a directory of `write_certificates`' files, it serves TLS
    /// with its own certificate (`{node}.crt`), asks clients for theirs, and this
    /// test's client presents `client.crt`.
    async fn start_with(database: &str, data_dir: &Path, tls: Option<(&Path, &str)>) -> Node {
        let mut command = Command::new(BIN);
        command.args(["server", "--listen", "127.0.0.1:0"]);
        if let Some((certs, node)) = tls {
            command
                .arg("--tls-cert")
                .arg(certs.join(format!("{node}.crt")))
                .arg("--tls-key")
                .arg(certs.join(format!("{node}.key")))
                .arg("--tls-client-ca")
                .arg(certs.join("ca.pem"));
        }
        let mut child = command
            .arg("--data-dir")
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
            // The tests' webhook receivers listen on loopback.
            .env("CAIRN_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
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
        let mut builder = Client::builder(&url);
        if let Some((certs, _)) = tls {
            builder = builder
                .ca_file(certs.join("ca.pem"))
                .client_certificate(certs.join("client.crt"), certs.join("client.key"));
        }
        let anonymous = builder.build().unwrap();
        let token = anonymous
            .login("admin", PASSWORD)
            .await
            .unwrap()
            .token
            .expose_secret()
            .to_owned();
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

/// A grant given on one node takes effect on another without a restart, and taken away
/// there it ends the user's held watch.
async fn grants_travel_between_nodes(engine: Engine) {
    let Some(db) = Scratch::create(engine).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&db.url, &dir.path().join("a")).await;
    let b = Node::start(&db.url, &dir.path().join("b")).await;
    let k = key("granted.yaml");
    a.client.publish(&k, &Publish::new("x: 1")).await.unwrap();
    a.client
        .create_user("reader", "reader-password-1", "user")
        .await
        .unwrap();
    let on_b = Client::builder(&b.url).build().unwrap();
    let token = on_b
        .login("reader", "reader-password-1")
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let reader = on_b.with_token(token);
    let refused = reader.get(&k).await;
    assert!(
        format!("{:?}", refused.err()).contains("forbidden"),
        "no grant yet"
    );
    let user = cairn_client::GrantSubject::User("reader".into());
    a.client
        .grant(&user, "public", "*", "*", "read")
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the grant on B", || async {
        reader.get(&k).await.is_ok()
    })
    .await;

    let held = {
        let reader = reader.clone();
        let md5 = reader.get(&k).await.unwrap().unwrap().md5;
        let keys = vec![WatchKey::new(&k, &md5)];
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = reader.watch(&keys, Duration::from_secs(30)).await;
            (answer, started.elapsed())
        })
    };
    eventually(Duration::from_secs(10), "the watch held on B", || async {
        b.client
            .listeners(&k, false)
            .await
            .is_ok_and(|l| l.listeners.len() == 1)
    })
    .await;
    a.client.revoke(&user, "public", "*", "*").await.unwrap();
    let (answer, held_for) = tokio::time::timeout(Duration::from_secs(15), held)
        .await
        .expect("the held watch on B ends when A takes the grant away")
        .unwrap();
    assert!(answer.unwrap().is_empty());
    assert!(held_for < Duration::from_secs(20), "{held_for:?}");
    let refused = reader
        .watch(&[WatchKey::new(&k, "")], Duration::from_secs(1))
        .await;
    assert!(format!("{:?}", refused.err()).contains("forbidden"));

    // A password changed on A ends the user's watch held on B too.
    a.client
        .grant(&user, "public", "*", "*", "read")
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the grant on B again", || async {
        reader.get(&k).await.is_ok()
    })
    .await;
    let held = {
        let reader = reader.clone();
        let md5 = reader.get(&k).await.unwrap().unwrap().md5;
        let keys = vec![WatchKey::new(&k, &md5)];
        tokio::spawn(async move { reader.watch(&keys, Duration::from_secs(30)).await })
    };
    eventually(
        Duration::from_secs(10),
        "the second watch held on B",
        || async {
            b.client
                .listeners(&k, false)
                .await
                .is_ok_and(|l| l.listeners.len() == 1)
        },
    )
    .await;
    a.client
        .set_password("reader", "reader-password-2", None)
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(15), held)
        .await
        .expect("the watch on B ends when A changes the password")
        .unwrap();
    assert!(answer.unwrap().is_empty());
    a.kill().await;
    b.kill().await;
    db.drop_database().await;
}

/// A schema attached on one node holds for publishes on another from its next
/// heartbeat, and detached there, no longer does.
async fn schemas_travel_between_nodes(engine: Engine) {
    let Some(db) = Scratch::create(engine).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&db.url, &dir.path().join("a")).await;
    let b = Node::start(&db.url, &dir.path().join("b")).await;
    let set = cairn_client::SchemaSet {
        schema: serde_json::json!({ "properties": { "port": { "maximum": 65535 } } }),
        force: false,
        expect_version: Some(0),
        comment: None,
    };
    a.client
        .set_schema("public", "*", "*.yaml", &set)
        .await
        .unwrap();
    let k = key("svc.yaml");
    eventually(Duration::from_secs(10), "the schema on B", || async {
        let refused = b.client.publish(&k, &Publish::new("port: 70000")).await;
        format!("{:?}", refused.err()).contains("greater than the maximum of 65535")
    })
    .await;
    let listed = b.client.schemas(Some("public")).await.unwrap();
    assert_eq!(listed[0].data_id, "*.yaml");
    b.client
        .remove_schema("public", "*", "*.yaml", None)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the removal on A", || async {
        a.client
            .publish(&k, &Publish::new("port: 70000"))
            .await
            .is_ok()
    })
    .await;
    a.kill().await;
    b.kill().await;
    db.drop_database().await;
}

/// A webhook receiver on a loopback port: the event ids it accepted, in order. It
/// refuses every request (503) while `refusing`.
struct Receiver {
    url: String,
    ids: Arc<Mutex<Vec<String>>>,
    refusing: Arc<AtomicBool>,
}

impl Receiver {
    async fn start() -> Receiver {
        let ids: Arc<Mutex<Vec<String>>> = Arc::default();
        let refusing = Arc::new(AtomicBool::new(false));
        let (seen, refuse) = (ids.clone(), refusing.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (seen, refuse) = (seen.clone(), refuse.clone());
                async move {
                    if refuse.load(Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    seen.lock()
                        .unwrap()
                        .push(event["id"].as_str().unwrap().to_owned());
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, ids, refusing }
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

/// Two nodes deliver each event once between them; nodes killed with SIGKILL right
/// after publishes were acknowledged lose none of their events: a restarted node
/// sends them (receivers dedupe by id, which every payload carries).
async fn webhooks_are_delivered_once_and_survive_a_kill(engine: Engine) {
    let Some(db) = Scratch::create(engine).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(&db.url, &dir.path().join("a")).await;
    let b = Node::start(&db.url, &dir.path().join("b")).await;
    let receiver = Receiver::start().await;
    let add = cairn_client::WebhookAdd {
        namespace: "public".into(),
        url: receiver.url.clone(),
        secret: "cluster-webhook-secret-1".into(),
        ..cairn_client::WebhookAdd::default()
    };
    b.client.add_webhook(&add).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        let done = node
            .client
            .publish(
                &key(&format!("hook{i}.txt")),
                &Publish::new(format!("v{i}")),
            )
            .await
            .unwrap();
        expected.push(done.revision.to_string());
    }
    eventually(Duration::from_secs(20), "every event delivered", || async {
        receiver.ids().len() >= expected.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got = receiver.ids();
    got.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(got, wanted, "each event once, by one node");

    // Killed after the acknowledgments, before any of their deliveries was taken: the
    // receiver refuses them until both nodes are gone.
    receiver.refusing.store(true, Ordering::SeqCst);
    let mut more = Vec::new();
    for i in 0..5 {
        let done = a
            .client
            .publish(
                &key(&format!("late{i}.txt")),
                &Publish::new(format!("l{i}")),
            )
            .await
            .unwrap();
        more.push(done.revision.to_string());
    }
    a.kill().await;
    b.kill().await;
    assert_eq!(receiver.ids().len(), expected.len());
    receiver.refusing.store(false, Ordering::SeqCst);
    let c = Node::start(&db.url, &dir.path().join("c")).await;
    eventually(
        Duration::from_secs(40),
        "the late events after a restart",
        || async {
            let got = receiver.ids();
            more.iter().all(|id| got.contains(id))
        },
    )
    .await;
    let mut got = receiver.ids();
    got.sort();
    let mut wanted: Vec<String> = expected.into_iter().chain(more).collect();
    wanted.sort();
    assert_eq!(got, wanted, "each event accepted once");
    c.kill().await;
    db.drop_database().await;
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
    // Who listens, asked on A: nobody on A itself; C's watcher cluster-wide.
    let deadline = Instant::now() + Duration::from_secs(10);
    let on_c = loop {
        let all = a.client.listeners(&k, true).await.unwrap();
        if all.listeners.len() == 1 {
            break all.listeners;
        }
        assert!(Instant::now() < deadline, "C's watcher is listed: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(on_c[0].protocol, "native");
    assert_eq!(on_c[0].md5.as_deref(), Some(""));
    assert!(a
        .client
        .listeners(&k, false)
        .await
        .unwrap()
        .listeners
        .is_empty());
    let c_id = c.client.listeners(&k, false).await.unwrap().listeners[0]
        .node
        .clone();
    assert_eq!(
        on_c[0].node, c_id,
        "listed under the node it is connected to"
    );
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

    // A client that knows one node learns the others, and fails over when its node dies:
    // when asked, and on its own when built to.
    let token = a
        .client
        .login("admin", PASSWORD)
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let asked = Client::builder(&a.url).token(&token).build().unwrap();
    assert_eq!(asked.discover().await.unwrap().len(), 3);
    let client = Client::builder(&a.url)
        .token(token)
        .discover_every(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(client.servers().len(), 1);
    client.get(&k).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the client to learn the nodes",
        || async { client.servers().len() == 3 },
    )
    .await;
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

/// A bound on one writer's writes, in case `stop` never comes.
const MAX_WRITES: u32 = 20_000;

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
    // Several writers through each node, so that A is killed while its publishes are
    // committed in groups.
    let through_a: Vec<_> = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"]
        .into_iter()
        .map(|name| writer(a.client.clone(), name, acked.clone(), stop.clone()))
        .collect();
    let through_b: Vec<_> = ["b0", "b1", "b2", "b3"]
        .into_iter()
        .map(|name| writer(b.client.clone(), name, acked.clone(), stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        through_a.iter().all(|w| !w.is_finished()),
        "A is killed while writes go through it"
    );
    a.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in through_a.into_iter().chain(through_b) {
        writer.await.unwrap();
    }
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

/// A TCP forwarder between the nodes and their database, so the test can make the
/// database go away as a stopped server does: connections refused, and every open one
/// ended by the server (see [`stop_database`]).
struct Proxy {
    port: u16,
    target: String,
    accepting: Mutex<Option<tokio::task::JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            target,
            accepting: Mutex::default(),
            connections: Arc::default(),
        };
        proxy.accept(listener);
        proxy
    }

    fn accept(&self, listener: TcpListener) {
        let (target, list) = (self.target.clone(), self.connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                list.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }

    /// Stops listening (new connections are refused) and drops open ones.
    fn close(&self) {
        if let Some(task) = self.accepting.lock().unwrap().take() {
            task.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Listens again on the same port.
    async fn reopen(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) => assert!(Instant::now() < deadline, "port {}: {e}", self.port),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.accept(listener);
    }
}

/// The database goes away as a server that is shut down does: it ends its sessions
/// with the nodes (PostgreSQL's `57P01` "terminating connection due to administrator
/// command", MySQL's killed connection), and refuses new ones. The database server
/// itself is shared with the rest of the test suite, so it is the nodes' way to it
/// that closes.
async fn stop_database(db: &Scratch, proxy: &Proxy) {
    proxy.close();
    db.terminate_connections()
        .await
        .expect("the database ends the nodes' sessions");
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
    // What B serves during the outage is the node list as it last read it: first let
    // it read both (a node starved on a loaded machine can miss its beats for a while).
    eventually(Duration::from_secs(10), "B to list both nodes", || async {
        b.client.nodes().await.is_ok_and(|nodes| nodes.len() == 2)
    })
    .await;
    stop_database(&db, &proxy).await;
    // Long enough for both nodes to have tried the database (heartbeats every 200 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;

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
    let ready = reqwest::get(format!("{}/ready", a.url)).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    assert!(body.contains("degraded"), "/ready says degraded: {body}");
    assert!(!watcher.is_finished(), "the held watch is still held");

    // New watches work: a stale md5 is answered at once, a current one is held.
    let stale = b
        .client
        .watch(&[WatchKey::new(&k, "stale")], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(stale[0].md5, first.md5);
    let started = Instant::now();
    let held = b
        .client
        .watch(
            &[WatchKey::new(&k, first.md5.clone())],
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert!(held.is_empty() && started.elapsed() >= Duration::from_millis(900));

    // A client that logs itself in still gets in and reads, and the node list (what
    // clients fail over with) is still served.
    let fresh = Client::builder(&b.url)
        .credentials("admin", PASSWORD)
        .build()
        .unwrap();
    let config = fresh.get(&k).await.unwrap().unwrap();
    assert_eq!(config.content.as_deref(), Some("v: 1\n"));
    assert_eq!(b.client.nodes().await.unwrap().len(), 2);
    let wrong = Client::builder(&b.url)
        .credentials("admin", "not-the-password")
        .build()
        .unwrap();
    assert!(wrong.get(&k).await.is_err(), "a wrong password stays wrong");

    proxy.reopen().await;
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
    eventually(Duration::from_secs(5), "B to converge", || async {
        matches!(b.client.get(&k).await, Ok(Some(c)) if c.md5 == second.md5)
    })
    .await;

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

/// Two nodes serving TLS and requiring client certificates: changes travel, and "who
/// listens" asked on one node reaches the other over HTTPS, with the node's own
/// certificate as its client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_asks_its_nodes_over_https() {
    let Some(db) = Scratch::create(Engine::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    crate::common::write_certificates(&certs, &["a", "b", "client"]);
    let a = Node::start_with(&db.url, &dir.path().join("a"), Some((&certs, "a"))).await;
    let b = Node::start_with(&db.url, &dir.path().join("b"), Some((&certs, "b"))).await;
    assert!(a.url.starts_with("https://") && b.url.starts_with("https://"));
    let k = key("tls.yaml");
    let watcher = {
        let client = b.client.clone();
        let held = vec![WatchKey::new(&k, "")];
        tokio::spawn(async move { client.watch(&held, Duration::from_secs(20)).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = a.client.listeners(&k, true).await.unwrap();
        if all.listeners.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's watcher is not listed on A: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.client
        .publish(&k, &Publish::new("secure: true\n"))
        .await
        .unwrap();
    let changed = watcher.await.unwrap().unwrap();
    assert_eq!(changed.len(), 1, "{changed:?}");
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
            async fn grants_travel_between_nodes() {
                super::grants_travel_between_nodes($engine).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn schemas_travel_between_nodes() {
                super::schemas_travel_between_nodes($engine).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn webhooks_are_delivered_once_and_survive_a_kill() {
                super::webhooks_are_delivered_once_and_survive_a_kill($engine).await;
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
