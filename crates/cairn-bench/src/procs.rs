//! The processes a benchmark measures: Cairn nodes and the bare hyper baseline, each a
//! child process of this binary (`serve` / `baseline`), so that they run the real code
//! in a process of their own and their memory can be read apart from the load's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

pub const PASSWORD: &str = "bench-password-1";

/// A child process serving HTTP on loopback.
pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
    /// Where a Cairn node serves Nacos's gRPC protocol.
    pub grpc: Option<SocketAddr>,
    pub started: Instant,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident memory of the process, in bytes (Linux).
    pub fn rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn spawn(args: &[&str]) -> anyhow::Result<Proc> {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .env("CAIRN_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting a child process")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
        .await
        .context("the child did not start in time")??
        .context("the child exited before listening")?;
    let Some(addresses) = line.strip_prefix("listening ") else {
        bail!("unexpected first line from the child: {line}");
    };
    let mut addresses = addresses.split_whitespace();
    let addr = addresses.next().context("an address")?.parse()?;
    let grpc = addresses.next().map(str::parse).transpose()?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Proc {
        child,
        addr,
        grpc,
        started,
    })
}

/// CPU time all threads of process `pid` have run, in nanoseconds (Linux; 0 elsewhere).
pub fn cpu_ns(pid: u32) -> u64 {
    thread_files(pid, "schedstat")
        .filter_map(|stat| schedstat_ns(&stat))
        .sum()
}

/// The CPU time in a `schedstat` file's text, in nanoseconds.
pub fn schedstat_ns(stat: &str) -> Option<u64> {
    stat.split_whitespace().next()?.parse().ok()
}

/// The text of file `name` of each thread of process `pid` (none where there is no
/// `/proc`).
fn thread_files(pid: u32, name: &'static str) -> impl Iterator<Item = String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(move |task| std::fs::read_to_string(task.path().join(name)).ok())
}

/// Context switches of all threads of process `pid`, voluntary (it waited: a lock, a
/// futex, an idle poll) and not (Linux; zeros elsewhere).
pub fn context_switches(pid: u32) -> (u64, u64) {
    let count = |status: &str, name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    thread_files(pid, "status").fold((0, 0), |(v, n), status| {
        (
            v + count(&status, "voluntary_ctxt_switches:"),
            n + count(&status, "nonvoluntary_ctxt_switches:"),
        )
    })
}

/// User and kernel CPU time of process `pid`, in clock ticks, and its minor page faults
/// (Linux; zeros elsewhere).
pub fn cpu_ticks(pid: u32) -> (u64, u64, u64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0, 0, 0);
    };
    // Fields after the command name, which may itself hold spaces and parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0);
    (field(11), field(12), field(7))
}

/// Starts a Cairn node on a fresh or given data directory and database.
pub async fn cairn(data_dir: &Path, database: Option<&str>) -> anyhow::Result<Proc> {
    let dir = data_dir.to_str().context("a UTF-8 path")?;
    let mut args = vec!["serve", "--data-dir", dir];
    if let Some(db) = database {
        args.extend(["--database", db]);
    }
    spawn(&args).await
}

/// Starts the baseline: a bare hyper server answering `body` to every request.
pub async fn baseline() -> anyhow::Result<Proc> {
    spawn(&["baseline"]).await
}

/// Starts the gRPC baseline: a node's gRPC transport with nothing behind it.
pub async fn grpc_baseline() -> anyhow::Result<Proc> {
    spawn(&["grpc-baseline"]).await
}

/// `serve`: a Cairn node built exactly as `cairn server` builds it.
pub async fn serve(data_dir: &Path, database: Option<String>) -> anyhow::Result<()> {
    let settings = cairn_server::Settings {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data_dir.to_path_buf(),
        database: database.map(cairn_server::Secret::from),
        admin_password: Some(cairn_server::Secret::from(PASSWORD)),
        watch_max_keys: 1_000_000,
        log_level: "warn".into(),
        ..cairn_server::Settings::default()
    };
    cairn_server::init_tracing(&settings);
    let app = cairn_server::Application::build(settings).await?;
    let grpc = app.grpc_addr().map(|a| a.to_string()).unwrap_or_default();
    println!("listening {} {grpc}", app.local_addr());
    app.run().await
}

/// The 1 KiB body both servers answer with.
pub fn body_1k() -> String {
    let mut body = String::with_capacity(1024);
    while body.len() < 1024 {
        body.push_str("key.number.");
        body.push_str(&body.len().to_string());
        body.push_str("=some-value\n");
    }
    body.truncate(1023);
    body.push('\n');
    body
}

/// `baseline`: the ceiling of this machine for a 1 KiB answer over HTTP/1.1, and for a
/// fan-out: `POST /hold` is held until `POST /fire`, which answers every held request
/// with a watch-sized body (`GET /held` counts them).
pub async fn run_baseline() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    serve_http(
        listener,
        Arc::new(Notify::new()),
        Arc::new(AtomicUsize::new(0)),
    )
    .await
}

/// `grpc-baseline`: a node's gRPC transport (the same tonic server, codecs and limits,
/// from `cairn_server`) with nothing of Cairn behind it. A stream that sets up is held
/// until `POST /fire` on the HTTP address, which pushes each one the notification
/// Cairn pushes; every unary request is answered as a listen is; `GET /held` counts the
/// held streams.
pub async fn run_grpc_baseline() -> anyhow::Result<()> {
    use cairn_server::api::grpc::{methods, proto::Payload, transport};
    use tokio_stream::StreamExt as _;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {} {}", http.local_addr()?, grpc.local_addr()?);
    let (fire, held) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
    let pushes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let listened = |_, _| async {
        Payload::json(
            "ConfigChangeBatchListenResponse",
            &serde_json::json!({ "resultCode": 200, "errorCode": 0, "success": true, "changedConfigs": [] }),
        )
    };
    let stream = {
        let (fire, held) = (fire.clone(), held.clone());
        move |_, mut inbound: tonic::Streaming<Payload>| {
            let (out, rx) = tokio::sync::mpsc::channel::<Box<Payload>>(64);
            let (fire, held, pushes) = (fire.clone(), held.clone(), pushes.clone());
            tokio::spawn(async move {
                let Some(Ok(_setup)) = inbound.next().await else {
                    return;
                };
                let fired = fire.notified();
                tokio::pin!(fired);
                fired.as_mut().enable();
                held.fetch_add(1, Ordering::Relaxed);
                fired.await;
                held.fetch_sub(1, Ordering::Relaxed);
                let id = pushes.fetch_add(1, Ordering::Relaxed).to_string();
                let push = Payload::json(
                    "ConfigChangeNotifyRequest",
                    &serde_json::json!({ "dataId": "fan0.txt", "group": "bench", "module": "config", "requestId": id, "headers": {} }),
                );
                if out.send(Box::new(push)).await.is_ok() {
                    // Held open, as a client's stream is, until the client ends it.
                    while let Some(Ok(_)) = inbound.next().await {}
                }
            });
            tokio_stream::wrappers::ReceiverStream::new(rx).map(|push| Ok(*push))
        }
    };
    let routes = methods(16 << 20, listened, stream);
    tokio::spawn(transport().add_routes(routes).serve_with_incoming(
        tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
    ));
    serve_http(http, fire, held).await
}

/// The baseline's HTTP/1.1 server: a 1 KiB answer to any path but `POST /hold` and
/// `POST /nacos/v1/cs/configs/listener` (held until `POST /fire`), `GET /held` (how many are held, counted in `held`) and
/// `POST /fire` (wakes whatever waits on `fire`).
async fn serve_http(
    listener: tokio::net::TcpListener,
    fire: Arc<Notify>,
    held: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let body = Bytes::from(body_1k());
    loop {
        let (stream, _) = listener.accept().await?;
        // As Cairn does: small answers go out at once.
        stream.set_nodelay(true)?;
        let (body, fire, held) = (body.clone(), fire.clone(), held.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (body, fire, held) = (body.clone(), fire.clone(), held.clone());
                async move {
                    let answer = match request.uri().path() {
                        path @ ("/hold" | "/nacos/v1/cs/configs/listener") => {
                            let fired = fire.notified();
                            tokio::pin!(fired);
                            fired.as_mut().enable();
                            held.fetch_add(1, Ordering::Relaxed);
                            fired.await;
                            held.fetch_sub(1, Ordering::Relaxed);
                            if path == "/hold" {
                                Bytes::from_static(FIRED)
                            } else {
                                Bytes::from_static(NACOS_FIRED)
                            }
                        }
                        "/held" => Bytes::from(held.load(Ordering::Relaxed).to_string()),
                        "/fire" => {
                            fire.notify_waiters();
                            Bytes::from_static(b"fired")
                        }
                        _ => body,
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/plain; charset=utf-8")
                            .header("etag", "\"0123456789abcdef0123456789abcdef\"")
                            .body(Full::new(answer))
                            .expect("a valid response"),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What the baseline answers a held Nacos listener with: Cairn's answer, the changed
/// key as Nacos writes it.
const NACOS_FIRED: &[u8] = b"fan0.txt%02bench%01\n";

/// What the baseline answers a held request with: the size of Cairn's answer to a
/// one-key watch.
const FIRED: &[u8] = br#"{"changed":[{"namespace":"public","group":"bench","data_id":"fan0.txt","md5":"0123456789abcdef0123456789abcdef","revision":2,"exists":true}]}"#;
