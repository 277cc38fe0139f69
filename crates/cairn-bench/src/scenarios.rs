//! The benchmark's scenarios. Each starts its own processes on loopback with fresh data,
//! is bounded in requests and time, and returns its figures.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::{json, Value};

use crate::grpc_wire;
use crate::load::{self, histogram, Body};
use crate::procs::{self, PASSWORD};
use crate::Options;
use cairn_store::{ConfigStore as _, Store as _};

fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"));
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string()))),
        None => builder.body(Full::new(Bytes::new())),
    }
    .expect("a valid request")
}

async fn login(addr: SocketAddr) -> anyhow::Result<String> {
    let mut conn = load::connect(addr).await?;
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({ "username": "admin", "password": PASSWORD }).to_string(),
        )))?;
    let (status, body) = load::send(&mut conn, req).await?;
    anyhow::ensure!(status == 200, "login failed: {status}");
    let body: Value = serde_json::from_slice(&body)?;
    Ok(body["token"].as_str().context("a token")?.to_owned())
}

/// Publishes and returns the new md5.
async fn publish(
    addr: SocketAddr,
    token: &str,
    data_id: &str,
    content: &str,
) -> anyhow::Result<String> {
    let mut conn = load::connect(addr).await?;
    let path = format!("/api/v1/configs/public/bench/{data_id}");
    let (status, body) = load::send(
        &mut conn,
        request(
            "PUT",
            addr,
            &path,
            token,
            Some(json!({ "content": content })),
        ),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "publish failed: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let body: Value = serde_json::from_slice(&body)?;
    Ok(body["md5"].as_str().context("an md5")?.to_owned())
}

/// A gauge from `/metrics`.
async fn gauge(addr: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let mut conn = load::connect(addr).await?;
    let req = Request::builder()
        .uri("/metrics")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let (_, body) = load::send(&mut conn, req).await?;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no {name} in /metrics"))
}

fn percentiles(h: &hdrhistogram::Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
        "count": h.len(),
    })
}

/// read: a 1 KiB config over keep-alive connections, and the same load against a bare
/// hyper server answering the same bytes from memory. Both run throughout; the loads
/// alternate in rounds so that the machine's drift hits both alike, and a ratio is the
/// median of the rounds'. With wrk on the machine, wrk drives the load through every
/// surface's read route; without it, this process's hyper client drives the native route
/// (and saturates before the servers do: the ratio is then a lower bound).
pub async fn read(opts: &Options) -> anyhow::Result<Value> {
    if crate::wrk::available() {
        read_with_wrk(opts).await
    } else {
        read_with_hyper_client(opts).await
    }
}

/// A read route as a client of one surface calls it.
struct ReadRoute {
    name: &'static str,
    /// Path and query.
    target: String,
    headers: Vec<(&'static str, String)>,
}

/// The read routes a client of each surface calls.
fn read_routes(token: &str) -> Vec<ReadRoute> {
    let route = |name, target: String, headers| ReadRoute {
        name,
        target,
        headers,
    };
    vec![
        route(
            "native",
            "/api/v1/configs/public/bench/read.properties".to_owned(),
            vec![("Authorization", format!("Bearer {token}"))],
        ),
        route(
            "nacos_v1",
            format!("/nacos/v1/cs/configs?dataId=read.properties&group=bench&accessToken={token}"),
            Vec::new(),
        ),
        route(
            "apollo",
            "/configs/bench/default/application".to_owned(),
            Vec::new(),
        ),
        route(
            "apollo_configfiles_json",
            "/configfiles/json/bench/default/application".to_owned(),
            Vec::new(),
        ),
    ]
}

async fn read_with_wrk(opts: &Options) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rounds: usize = if opts.tiny { 1 } else { 3 };
    let each = if opts.tiny {
        Duration::from_secs(1)
    } else {
        Duration::from_secs((opts.duration_secs / rounds as u64).max(1))
    };
    let node = procs::cairn(&dir.path().join("node"), None).await?;
    let token = login(node.addr).await?;
    publish(node.addr, &token, "read.properties", &procs::body_1k()).await?;
    publish(node.addr, &token, "application", &procs::body_1k()).await?;
    // Apollo's clients read unsigned here, as an installation without access keys does.
    let mut conn = load::connect(node.addr).await?;
    let body = json!({ "apollo_anonymous_apps": ["bench"] });
    let (status, _) = load::send(
        &mut conn,
        request(
            "PUT",
            node.addr,
            "/api/v1/namespaces/public",
            &token,
            Some(body),
        ),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "cannot open the namespace to Apollo: {status}"
    );
    let base = procs::baseline().await?;
    let routes = read_routes(&token);
    let mut baseline_runs = Vec::new();
    let mut route_runs: Vec<Vec<crate::wrk::WrkRun>> = vec![Vec::new(); routes.len()];
    for _ in 0..rounds {
        let base_url = format!(
            "http://{}/api/v1/configs/public/bench/read.properties",
            base.addr
        );
        baseline_runs.push(crate::wrk::run(&base_url, &[], opts.connections, each).await?);
        for (i, route) in routes.iter().enumerate() {
            let url = format!("http://{}{}", node.addr, route.target);
            let headers: Vec<(&str, &str)> = route
                .headers
                .iter()
                .map(|(n, v)| (*n, v.as_str()))
                .collect();
            route_runs[i].push(crate::wrk::run(&url, &headers, opts.connections, each).await?);
        }
    }
    node.stop().await;
    base.stop().await;
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let median = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let errors: u64 = baseline_runs
        .iter()
        .chain(route_runs.iter().flatten())
        .map(|r| r.errors)
        .sum();
    if errors > 0 {
        bail!("read: {errors} failed requests");
    }
    let mut by_route = serde_json::Map::new();
    for (route, runs) in routes.iter().zip(&route_runs) {
        let ratios = runs
            .iter()
            .zip(&baseline_runs)
            .map(|(r, b)| r.per_second / b.per_second)
            .collect::<Vec<_>>();
        by_route.insert(
            route.name.to_owned(),
            json!({
                "rps": median(runs.iter().map(|r| r.per_second).collect()).round(),
                "ratio": round3(median(ratios.clone())),
                "round_ratios": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
                "p50_ms": round3(median(runs.iter().map(|r| r.p50_ms).collect())),
                "p99_ms": round3(median(runs.iter().map(|r| r.p99_ms).collect())),
            }),
        );
    }
    let native = by_route["native"].clone();
    Ok(json!({
        "load_generator": format!("wrk -t2 -c{}", opts.connections),
        "connections": opts.connections,
        "rounds": rounds,
        "seconds_per_run": each.as_secs(),
        "ratio": native["ratio"],
        "cairn_rps": native["rps"],
        "baseline_rps": median(baseline_runs.iter().map(|r| r.per_second).collect()).round(),
        "cairn_latency": { "p50_ms": native["p50_ms"], "p99_ms": native["p99_ms"] },
        "baseline_latency": {
            "p50_ms": round3(median(baseline_runs.iter().map(|r| r.p50_ms).collect())),
            "p99_ms": round3(median(baseline_runs.iter().map(|r| r.p99_ms).collect())),
        },
        "routes": by_route,
    }))
}

async fn read_with_hyper_client(opts: &Options) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let rounds: u32 = if opts.tiny { 1 } else { 5 };
    let duration = Duration::from_secs(opts.duration_secs) / rounds;
    let limit = if opts.tiny { 2_000 } else { u64::MAX };

    let node = procs::cairn(&dir.path().join("node"), None).await?;
    let token = login(node.addr).await?;
    publish(node.addr, &token, "read.properties", &procs::body_1k()).await?;
    let base = procs::baseline().await?;
    let (node_addr, base_addr) = (node.addr, base.addr);
    let cairn_request: Arc<dyn Fn(u64) -> Request<Body> + Send + Sync> = Arc::new(move |_| {
        request(
            "GET",
            node_addr,
            "/api/v1/configs/public/bench/read.properties",
            &token,
            None,
        )
    });
    let base_request: Arc<dyn Fn(u64) -> Request<Body> + Send + Sync> = Arc::new(move |_| {
        Request::builder()
            .uri("/api/v1/configs/public/bench/read.properties")
            .header("host", base_addr.to_string())
            .header("authorization", "Bearer x")
            .body(Full::new(Bytes::new()))
            .expect("a valid request")
    });
    let (mut cairn_latency, mut base_latency) = (histogram(), histogram());
    let (mut cairn_ok, mut base_ok, mut errors) = (0u64, 0u64, 0u64);
    let (mut cairn_time, mut base_time) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let c = load::closed_loop(
            node_addr,
            opts.connections,
            duration,
            limit,
            cairn_request.clone(),
        )
        .await?;
        let b = load::closed_loop(
            base_addr,
            opts.connections,
            duration,
            limit,
            base_request.clone(),
        )
        .await?;
        ratios.push(c.per_second() / b.per_second());
        cairn_latency.add(&c.latency)?;
        base_latency.add(&b.latency)?;
        (cairn_ok, base_ok) = (cairn_ok + c.ok, base_ok + b.ok);
        (cairn_time, base_time) = (cairn_time + c.elapsed, base_time + b.elapsed);
        errors += c.errors + b.errors;
    }
    node.stop().await;
    base.stop().await;
    if errors > 0 {
        bail!("read: {errors} failed requests");
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(json!({
        "load_generator": "hyper client (install wrk for a leaner one)",
        "connections": opts.connections,
        "duration_s": opts.duration_secs,
        "rounds": rounds,
        "cairn_rps": (cairn_ok as f64 / cairn_time.as_secs_f64()).round(),
        "baseline_rps": (base_ok as f64 / base_time.as_secs_f64()).round(),
        "ratio": round3(median),
        "round_ratios": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
        "cairn_latency": percentiles(&cairn_latency),
        "baseline_latency": percentiles(&base_latency),
    }))
}

/// `count` publishes by `writers` at once, of 64 configs named `{prefix}0` to
/// `{prefix}63` in turn.
async fn publish_runs(
    addr: SocketAddr,
    token: &str,
    count: u64,
    writers: usize,
    prefix: &'static str,
) -> anyhow::Result<load::Run> {
    let token = token.to_owned();
    let content = Arc::new(procs::body_1k());
    let run = load::closed_loop(
        addr,
        writers,
        Duration::from_secs(600),
        count,
        Arc::new(move |n| {
            // Each write changes the content, as a real publish would.
            let body = json!({ "content": format!("{}# {n}\n", content), "format": "properties" });
            request(
                "PUT",
                addr,
                &format!("/api/v1/configs/public/bench/{prefix}{}.properties", n % 64),
                &token,
                Some(body),
            )
        }),
    )
    .await?;
    if run.errors > 0 {
        bail!("publish: {} failed writes", run.errors);
    }
    Ok(run)
}

/// Writer counts of the publish scenario, in order; the third is compared with the first.
const PUBLISH_WRITERS: [usize; 4] = [1, 4, 16, 64];
/// Alternations of one node and two nodes writing to one database.
const TWO_NODE_ROUNDS: usize = 2;

/// How the publish scenario drives its writers: wrk where the machine has it (the node,
/// its database and the load share the cores, so the leanest load leaves the most to
/// what is measured), else this process's client.
enum Writers {
    Wrk {
        script: tempfile::NamedTempFile,
        each: Duration,
    },
    Client {
        count: u64,
    },
}

/// A publish run's rate and latency.
struct Published {
    per_s: f64,
    latency: Value,
}

impl Writers {
    fn new(opts: &Options) -> anyhow::Result<Self> {
        if !crate::wrk::available() {
            let count = if opts.tiny { 40 } else { opts.publishes };
            return Ok(Writers::Client { count });
        }
        // Each request publishes a new content to the next of 64 configs named
        // `$PREFIX<n>`; wrk's two threads take the even and the odd ones, so one
        // group's publishes are of distinct configs, as this process's writers' are.
        let content = serde_json::to_string(&procs::body_1k())?;
        let head = format!(
            r#"{{"format":"properties","content":{}"#,
            &content[..content.len() - 1]
        );
        let script = format!(
            r##"local head = [==[{head}]==]
local token = os.getenv("TOKEN")
local prefix = os.getenv("PREFIX")
local started = 0
function setup(thread)
  thread:set("id", started)
  started = started + 1
end
local n = 0
function request()
  n = n + 1
  local path = "/api/v1/configs/public/bench/" .. prefix .. ((2 * n + id) % 64) .. ".properties"
  local headers = {{ ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }}
  return wrk.format("PUT", path, headers, head .. "# " .. n .. "\\n\"}}")
end
"##
        );
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut file, script.as_bytes())?;
        let each = Duration::from_secs(if opts.tiny { 1 } else { 4 });
        Ok(Writers::Wrk { script: file, each })
    }

    fn describe(&self) -> Value {
        match self {
            Writers::Wrk { each, .. } => {
                json!({ "load_generator": "wrk", "seconds_per_run": each.as_secs() })
            }
            Writers::Client { count } => json!({
                "load_generator": "hyper client (install wrk for a leaner one)",
                "publishes_per_run": count,
            }),
        }
    }

    /// Publishes through `addr` by `writers` at once, of configs named `prefix…`.
    async fn run(
        &self,
        addr: SocketAddr,
        token: &str,
        writers: usize,
        prefix: &'static str,
    ) -> anyhow::Result<Published> {
        match self {
            Writers::Wrk { script, each } => {
                let env = [("TOKEN", token), ("PREFIX", prefix)];
                let url = format!("http://{addr}");
                let run = crate::wrk::run_script(&url, script.path(), &env, writers, *each).await?;
                if run.errors > 0 {
                    bail!("publish: {} failed writes", run.errors);
                }
                Ok(Published {
                    per_s: run.per_second,
                    latency: json!({
                        "count": run.requests,
                        "p50_ms": run.p50_ms,
                        "p99_ms": run.p99_ms,
                    }),
                })
            }
            Writers::Client { count } => {
                let run = publish_runs(addr, token, *count, writers, prefix).await?;
                Ok(Published {
                    per_s: run.per_second(),
                    latency: percentiles(&run.latency),
                })
            }
        }
    }

    /// Two runs at once of 8 writers each, through `one` and `two`: their rate
    /// together, and each one's latency.
    async fn two_nodes(
        &self,
        (one, one_token): (SocketAddr, &str),
        (two, two_token): (SocketAddr, &str),
    ) -> anyhow::Result<(f64, [Value; 2])> {
        let halved = match self {
            Writers::Client { count } => &Writers::Client { count: count / 2 },
            wrk => wrk,
        };
        let started = Instant::now();
        let (a, b) = tokio::join!(
            halved.run(one, one_token, 8, "w"),
            halved.run(two, two_token, 8, "v")
        );
        let (a, b) = (a?, b?);
        let per_s = match halved {
            // Both ran for the same time.
            Writers::Wrk { .. } => a.per_s + b.per_s,
            // The same count each: from the start until the later one ended.
            Writers::Client { count } => (count * 2) as f64 / started.elapsed().as_secs_f64(),
        };
        Ok((per_s, [a.latency, b.latency]))
    }
}

/// publish: 1, 4, 16 and 64 concurrent writers of 1 KiB contents, on SQLite and on
/// whichever of PostgreSQL and MySQL has a URL.
pub async fn publish_scenario(opts: &Options) -> anyhow::Result<Value> {
    let load = Writers::new(opts)?;
    let mut results = serde_json::Map::new();
    for (name, server) in backends(opts) {
        let dir = tempfile::tempdir()?;
        let scratch = match server {
            Some((engine, url)) => {
                Some(cairn_store::scratch::Scratch::create_at(engine, &url).await?)
            }
            None => None,
        };
        let node = procs::cairn(
            &dir.path().join("node"),
            scratch.as_ref().map(|s| s.url.as_str()),
        )
        .await?;
        let token = login(node.addr).await?;
        let mut by_writers = serde_json::Map::new();
        let mut rates = Vec::new();
        for writers in PUBLISH_WRITERS {
            let run = load.run(node.addr, &token, writers, "w").await?;
            rates.push(run.per_s);
            by_writers.insert(
                writers.to_string(),
                json!({ "per_s": run.per_s.round(), "latency": run.latency }),
            );
        }
        // On a shared database, a second node: 8 writers through each at once, against
        // 16 through one node alone. Each node's writers publish configs of their own, as
        // teams publishing through different nodes do: publishes of one config wait for
        // each other by design, whichever node they go through. The two are alternated,
        // twice, against the same database as it grows (a run after thousands of
        // publishes is not one on a fresh database), and compared by their sums.
        let two_nodes = match &scratch {
            Some(db) => {
                let (mut one_node, mut both, mut by_node) = (0.0, 0.0, Vec::new());
                for _ in 0..TWO_NODE_ROUNDS {
                    one_node += load.run(node.addr, &token, 16, "w").await?.per_s;
                    let other =
                        procs::cairn(&dir.path().join("other"), Some(db.url.as_str())).await?;
                    let other_token = login(other.addr).await?;
                    let (per_s, latency) = load
                        .two_nodes((node.addr, &token), (other.addr, &other_token))
                        .await?;
                    other.stop().await;
                    both += per_s;
                    by_node.push(json!(latency));
                }
                let rounds = TWO_NODE_ROUNDS as f64;
                Some(json!({
                    "per_s": (both / rounds).round(),
                    "one_node_16_writers_per_s": (one_node / rounds).round(),
                    "latency_by_node": by_node,
                    "ratio_to_one_node": (both / one_node * 100.0).round() / 100.0,
                }))
            }
            None => None,
        };
        node.stop().await;
        if let Some(db) = scratch {
            db.drop_database().await;
        }
        // 16 writers against one, in the same run: what group commit buys.
        let ratio = rates[2] / rates[0];
        results.insert(
            name.to_owned(),
            json!({
                "writers": by_writers,
                "ratio_16_to_1": (ratio * 100.0).round() / 100.0,
                "two_nodes_8_writers_each": two_nodes,
                "load": load.describe(),
            }),
        );
    }
    Ok(Value::Object(results))
}

/// Holds `watchers` raw long polls on `node` (the `i`th sends `requests[i % keys]`),
/// waiting until `held()` counts them, then `fire(k)`s each key and times each watcher's
/// answer from the acknowledgment of its key's fire (`latency`) and from its send
/// (`latency_from_send`: what a user who publishes feels). `answered` tells a watch's
/// answer from what came before it, as for [`load::await_answers`]. Memory per watcher is the slope
/// between a tenth of the watchers held and all of them: the first connections also warm
/// the allocator up (pages freed after start-up are reused), which would blur a
/// difference from the idle node.
async fn hold_and_fire<H, HF, F, FF>(
    node: &procs::Proc,
    watchers: usize,
    requests: &[Arc<Vec<u8>>],
    answered: fn(&[u8]) -> anyhow::Result<bool>,
    held: H,
    fire: F,
) -> anyhow::Result<Value>
where
    H: Fn() -> HF,
    HF: std::future::Future<Output = anyhow::Result<f64>>,
    F: Fn(usize) -> FF,
    FF: std::future::Future<Output = anyhow::Result<()>>,
{
    let keys = requests.len();
    let first = (watchers / 10).max(1);
    let mut opening = Vec::with_capacity(watchers);
    let mut rss_first = 0;
    for (from, to) in [(0, first), (first, watchers)] {
        for i in from..to {
            let request = requests[i % keys].clone();
            opening.push(tokio::spawn(load::open_watch(
                node.addr,
                load::source_ip(i),
                request,
            )));
            if i % 1_000 == 999 {
                // Let the server accept as we go rather than queue every connection.
                tokio::task::yield_now().await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while held().await? < to as f64 {
            if Instant::now() > deadline {
                bail!("only {} of {to} watchers were held", held().await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to == first {
            rss_first = node.rss();
        }
    }
    let rss_held = node.rss();
    let mut watches = Vec::with_capacity(watchers);
    for task in opening {
        watches.push(task.await??);
    }
    let answers = load::await_answers(watches, Duration::from_secs(120), answered)?;
    let cpu_before = (procs::cpu_ns(node.pid()), procs::cpu_ns(std::process::id()));
    let ticks_before = procs::cpu_ticks(node.pid());
    let switches_before = procs::context_switches(node.pid());
    let (mut sent, mut acked) = (Vec::with_capacity(keys), Vec::with_capacity(keys));
    for k in 0..keys {
        sent.push(Instant::now());
        fire(k).await?;
        acked.push(Instant::now());
    }
    let answers = tokio::task::spawn_blocking(move || answers.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the answer collector panicked"))??;
    let per_watcher_us = |ns: u64| (ns as f64 / 1e3 / watchers as f64 * 100.0).round() / 100.0;
    let server_cpu_us = per_watcher_us(procs::cpu_ns(node.pid()).saturating_sub(cpu_before.0));
    // The kernel's share, from the coarser user/system split.
    let ticks = procs::cpu_ticks(node.pid());
    let (user, system) = (
        ticks.0.saturating_sub(ticks_before.0),
        ticks.1.saturating_sub(ticks_before.1),
    );
    // Ticks are 10 ms: a short wake-up has too few to split.
    let kernel_share = (user + system >= 5)
        .then(|| (system as f64 / (user + system) as f64 * 100.0).round() / 100.0);
    let faults = ticks.2.saturating_sub(ticks_before.2) as f64 / watchers as f64;
    let switches = procs::context_switches(node.pid());
    let each = |n: u64| (n as f64 / watchers as f64 * 1000.0).round() / 1000.0;
    let switches = json!({
        "voluntary": each(switches.0.saturating_sub(switches_before.0)),
        "involuntary": each(switches.1.saturating_sub(switches_before.1)),
    });
    // The collector's thread has ended: its time is counted apart.
    let load_cpu_us = per_watcher_us(
        procs::cpu_ns(std::process::id()).saturating_sub(cpu_before.1) + answers.cpu_ns,
    );
    let (mut latency, mut from_send) = (histogram(), histogram());
    for (i, at) in answers.at.iter().enumerate() {
        let since = |then: Instant| at.saturating_duration_since(then).as_micros() as u64;
        latency.saturating_record(since(acked[i % keys]));
        from_send.saturating_record(since(sent[i % keys]));
    }
    drop(answers.open);
    let per_watcher = rss_held.saturating_sub(rss_first) as f64 / (watchers - first).max(1) as f64;
    Ok(json!({
        "watchers": watchers,
        "keys": keys,
        "latency": percentiles(&latency),
        "latency_from_send": percentiles(&from_send),
        "server_rss_mib": (rss_held as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "rss_per_watcher_bytes": per_watcher.round(),
        "server_cpu_us_per_watcher": server_cpu_us,
        "server_kernel_share": kernel_share,
        "server_page_faults_per_watcher": (faults * 100.0).round() / 100.0,
        "server_context_switches_per_watcher": switches,
        "load_cpu_us_per_watcher": load_cpu_us,
    }))
}

/// W watchers on a Cairn node over `keys` keys.
async fn fanout_cairn(watchers: usize, keys: usize) -> anyhow::Result<Value> {
    fanout_cairn_beside_patterns(watchers, keys, 0).await
}

/// As [`fanout_cairn`], with `patterns` pattern watches held first on the fired keys'
/// namespace and group (`*.yaml`, which the fired `fan{k}.txt` do not match): each
/// publish checks them all and wakes none of them.
async fn fanout_cairn_beside_patterns(
    watchers: usize,
    keys: usize,
    patterns: usize,
) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let node = procs::cairn(&dir.path().join("node"), None).await?;
    let addr = node.addr;
    let token = login(addr).await?;
    let mut requests = Vec::with_capacity(keys);
    for k in 0..keys {
        let data_id = format!("fan{k}.txt");
        let md5 = publish(addr, &token, &data_id, "v: 0").await?;
        requests.push(Arc::new(load::watch_request(addr, &token, &data_id, &md5)));
    }
    // A `since` past every change: held until a matching change (none comes).
    let body = format!(
        "{{\"patterns\":[{{\"namespace\":\"public\",\"group\":\"bench\",\"data_id\":\"*.yaml\"}}],\"since\":{},\"timeout_ms\":120000}}",
        i64::MAX / 2
    );
    let pattern_request = Arc::new(
        format!(
            "POST /api/v1/watch HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    let mut held_patterns = Vec::with_capacity(patterns);
    for i in 0..patterns {
        held_patterns
            .push(load::open_watch(addr, load::source_ip(i), pattern_request.clone()).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while gauge(addr, "cairn_watchers_held").await? < patterns as f64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pattern watches were not all held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result = hold_and_fire(
        &node,
        watchers,
        &requests,
        load::http_ok,
        || async move { Ok(gauge(addr, "cairn_watchers_held").await? - patterns as f64) },
        |k| {
            let token = token.clone();
            async move {
                publish(addr, &token, &format!("fan{k}.txt"), "v: 1").await?;
                Ok(())
            }
        },
    )
    .await;
    drop(held_patterns);
    node.stop().await;
    result
}

/// patterns: W exact watchers of one key woken by a publish, with and without P
/// pattern watches over the same namespace and group held beside them (matching none
/// of the fired key), alternately in rounds: a publish costs the watchers it concerns.
pub async fn patterns(opts: &Options) -> anyhow::Result<Value> {
    let (watchers, patterns, rounds) = if opts.tiny {
        (50, 10, 1)
    } else {
        (opts.pattern_exact_watchers, opts.pattern_watchers, 3)
    };
    let p99 = |row: &Value| row["latency"]["p99_ms"].as_f64().unwrap_or(0.0);
    let (mut plain, mut beside, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = fanout_cairn(watchers, 1).await?;
            (
                a,
                fanout_cairn_beside_patterns(watchers, 1, patterns).await?,
            )
        } else {
            let b = fanout_cairn_beside_patterns(watchers, 1, patterns).await?;
            (fanout_cairn(watchers, 1).await?, b)
        };
        if p99(&a) > 0.0 {
            ratios.push(p99(&b) / p99(&a));
        }
        plain.push(p99(&a));
        beside.push(p99(&b));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Ok(json!({
        "exact_watchers": watchers,
        "pattern_watchers": patterns,
        "rounds": rounds,
        "p99_ms_alone": median(plain),
        "p99_ms_beside_patterns": median(beside),
        "p99_ratio": median_ratio(ratios),
    }))
}

/// W watchers of one key on the bare hyper baseline: the machine's floor for the same
/// fan-out, measured with the same watchers.
async fn fanout_baseline(watchers: usize) -> anyhow::Result<Value> {
    let hold = |addr| format!("POST /hold HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n");
    hold_on_baseline(watchers, hold, load::http_ok).await
}

/// W requests `hold(addr)` held on the bare hyper baseline until one fire.
async fn hold_on_baseline(
    watchers: usize,
    hold: impl Fn(SocketAddr) -> String,
    answered: fn(&[u8]) -> anyhow::Result<bool>,
) -> anyhow::Result<Value> {
    let node = procs::baseline().await?;
    let addr = node.addr;
    let hold = hold(addr);
    let ask = |method: &'static str, path: &'static str| async move {
        let mut conn = load::connect(addr).await?;
        let (status, body) = load::send(&mut conn, request(method, addr, path, "", None)).await?;
        anyhow::ensure!(status == 200, "{method} {path}: {status}");
        Ok::<_, anyhow::Error>(body)
    };
    let result = hold_and_fire(
        &node,
        watchers,
        &[Arc::new(hold.into_bytes())],
        answered,
        || async {
            let body = ask("GET", "/held").await?;
            Ok(String::from_utf8_lossy(&body).parse::<f64>()?)
        },
        |_| async {
            ask("POST", "/fire").await?;
            Ok(())
        },
    )
    .await;
    node.stop().await;
    result
}

/// fanout: W watchers of one key, on Cairn and on the bare baseline alternately in
/// rounds (a 10,000-way wake-up on two shared cores varies by a third from one run to
/// the next; alternating lets drift hit both alike), and W spread over 1,000 keys.
/// Each side's row is its median round by p99; the ratio is the median of the rounds'.
pub async fn fanout(opts: &Options) -> anyhow::Result<Value> {
    let (sizes, spread, rounds) = if opts.tiny {
        (vec![50], 10, 1)
    } else {
        (opts.watchers.clone(), 1_000, 3)
    };
    let p99 = |row: &Value| row["latency"]["p99_ms"].as_f64().unwrap_or(0.0);
    let median_by_p99 = |rows: Vec<Value>| median_row(rows, p99);
    let mut rows = Vec::new();
    for w in sizes {
        let (mut cairn, mut bare, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut ratios_from_send = Vec::new();
        for round in 0..rounds {
            let (c, b) = if round % 2 == 0 {
                (fanout_cairn(w, 1).await?, fanout_baseline(w).await?)
            } else {
                let b = fanout_baseline(w).await?;
                (fanout_cairn(w, 1).await?, b)
            };
            // A baseline that answered within the clock's resolution gives no ratio.
            if p99(&b) > 0.0 {
                ratios.push(p99(&c) / p99(&b));
                ratios_from_send.push(p99_from_send(&c) / p99_from_send(&b));
            }
            cairn.push(c);
            bare.push(b);
        }
        let mut one_key = median_by_p99(cairn);
        let bare = median_by_p99(bare);
        one_key["rounds"] = json!(rounds);
        one_key["baseline_latency"] = bare["latency"].clone();
        one_key["baseline_cpu_us_per_watcher"] = bare["server_cpu_us_per_watcher"].clone();
        one_key["baseline_kernel_share"] = bare["server_kernel_share"].clone();
        one_key["baseline_page_faults_per_watcher"] =
            bare["server_page_faults_per_watcher"].clone();
        one_key["baseline_context_switches_per_watcher"] =
            bare["server_context_switches_per_watcher"].clone();
        one_key["p99_ratio"] = json!(median_ratio(ratios));
        one_key["p99_ratio_from_send"] = json!(median_ratio(ratios_from_send));
        one_key["baseline_latency_from_send"] = bare["latency_from_send"].clone();
        rows.push(one_key);
        rows.push(fanout_cairn(w, spread.min(w)).await?);
    }
    Ok(Value::Array(rows))
}

/// W Nacos listeners of one key on a Cairn node, each `POST
/// /nacos/v1/cs/configs/listener` as Nacos's 1.x clients send it (the key and its md5 in
/// `Listening-Configs`, held up to two minutes), woken by one publish.
async fn listener_cairn(watchers: usize) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let node = procs::cairn(&dir.path().join("node"), None).await?;
    let addr = node.addr;
    let token = login(addr).await?;
    let md5 = publish(addr, &token, "fan0.txt", "v: 0").await?;
    let body = format!("Listening-Configs=fan0.txt%02bench%02{md5}%01");
    let request = format!(
        "POST /nacos/v1/cs/configs/listener?accessToken={token} HTTP/1.1\r\nhost: {addr}\r\n\
         long-pulling-timeout: 120000\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let result = hold_and_fire(
        &node,
        watchers,
        &[Arc::new(request.into_bytes())],
        nacos_changed,
        || async move { gauge(addr, "cairn_watchers_held").await },
        |_| {
            let token = token.clone();
            async move {
                publish(addr, &token, "fan0.txt", "v: 1").await?;
                Ok(())
            }
        },
    )
    .await;
    node.stop().await;
    result
}

/// [`load::await_answers`]'s check for a Nacos listener: a 200 that names the changed
/// key (an empty 200 is a listener that timed out).
fn nacos_changed(seen: &[u8]) -> anyhow::Result<bool> {
    load::http_ok(seen)?;
    Ok(seen.windows(8).any(|w| w == b"fan0.txt"))
}

/// A row's p99 from the publish's send, in milliseconds.
fn p99_from_send(row: &Value) -> f64 {
    row["latency_from_send"]["p99_ms"].as_f64().unwrap_or(0.0)
}

/// The median of the rounds' ratios, to two places; `None` without a round.
fn median_ratio(mut ratios: Vec<f64>) -> Option<f64> {
    ratios.sort_by(f64::total_cmp);
    ratios
        .get(ratios.len() / 2)
        .map(|r| (r * 100.0).round() / 100.0)
}

/// The middle row of `rows` by `p99`.
fn median_row(mut rows: Vec<Value>, p99: impl Fn(&Value) -> f64) -> Value {
    rows.sort_by(|a, b| p99(a).total_cmp(&p99(b)));
    rows.swap_remove(rows.len() / 2)
}

/// The connection counts of a fan-out scenario and how many rounds each is run.
fn sizes_and_rounds(opts: &Options) -> (Vec<usize>, usize) {
    if opts.tiny {
        (vec![50], 1)
    } else {
        (opts.watchers.clone(), 3)
    }
}

/// listener: W Nacos listeners of one key on Cairn, and the same listener requests held
/// by the bare hyper baseline (which answers them as Cairn does, with the changed key),
/// alternately in rounds. Latency is from the publish's send, as a person publishing
/// feels it; each side's row is its median round by p99, the ratio the median of the
/// rounds'.
pub async fn listener(opts: &Options) -> anyhow::Result<Value> {
    let (sizes, rounds) = sizes_and_rounds(opts);
    let p99 = p99_from_send;
    let median_by_p99 = |rows: Vec<Value>| median_row(rows, p99);
    let hold = |addr| {
        let body = "Listening-Configs=fan0.txt%02bench%020123456789abcdef0123456789abcdef%01";
        format!(
            "POST /nacos/v1/cs/configs/listener HTTP/1.1\r\nhost: {addr}\r\n\
             long-pulling-timeout: 120000\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut rows = Vec::new();
    for w in sizes {
        let (mut cairn, mut bare, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (c, b) = if round % 2 == 0 {
                let c = listener_cairn(w).await?;
                (c, hold_on_baseline(w, hold, nacos_changed).await?)
            } else {
                let b = hold_on_baseline(w, hold, nacos_changed).await?;
                (listener_cairn(w).await?, b)
            };
            if p99(&b) > 0.0 {
                ratios.push(p99(&c) / p99(&b));
            }
            cairn.push(c);
            bare.push(b);
        }
        let cairn = median_by_p99(cairn);
        let bare = median_by_p99(bare);
        rows.push(json!({
            "listeners": w,
            "rounds": rounds,
            "latency_from_send": cairn["latency_from_send"],
            "baseline_latency_from_send": bare["latency_from_send"],
            "p99_ratio": median_ratio(ratios),
            "server_cpu_us_per_listener": cairn["server_cpu_us_per_watcher"],
            "baseline_cpu_us_per_listener": bare["server_cpu_us_per_watcher"],
        }));
    }
    Ok(Value::Array(rows))
}

/// cross-node: publish on node A, a watcher on node B, both on one PostgreSQL database.
pub async fn cross_node(opts: &Options) -> anyhow::Result<Value> {
    let Some(url) = &opts.postgres_url else {
        return Ok(json!({ "skipped": "no --postgres-url (or CAIRN_TEST_POSTGRES_URL)" }));
    };
    let rounds = if opts.tiny { 5 } else { 200 };
    let db = cairn_store::scratch::Scratch::create_at(cairn_store::scratch::Engine::Postgres, url)
        .await?;
    let dir = tempfile::tempdir()?;
    let a = procs::cairn(&dir.path().join("a"), Some(&db.url)).await?;
    let b = procs::cairn(&dir.path().join("b"), Some(&db.url)).await?;
    let token = login(a.addr).await?;
    let mut md5 = publish(a.addr, &token, "cross.txt", "round: 0").await?;
    let mut latency = histogram();
    for round in 1..=rounds {
        // Wait until B has the current version, then hold a watch there.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = load::connect(b.addr).await?;
        loop {
            let (_, body) = load::send(
                &mut conn,
                request(
                    "GET",
                    b.addr,
                    "/api/v1/configs/public/bench/cross.txt?view=json",
                    &token,
                    None,
                ),
            )
            .await?;
            let seen: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if seen["md5"].as_str() == Some(md5.as_str()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("node B did not catch up with node A within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let request = Arc::new(load::watch_request(b.addr, &token, "cross.txt", &md5));
        let watcher = tokio::spawn(load::raw_watch(b.addr, load::source_ip(0), request));
        let deadline = Instant::now() + Duration::from_secs(10);
        while gauge(b.addr, "cairn_watchers_held").await? < 1.0 {
            if watcher.is_finished() || Instant::now() > deadline {
                bail!("the watcher on B was not held (B behind?)");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        md5 = publish(a.addr, &token, "cross.txt", &format!("round: {round}")).await?;
        let acked = Instant::now();
        let (answered, _) = watcher.await??;
        latency.saturating_record(answered.saturating_duration_since(acked).as_micros() as u64);
    }
    a.stop().await;
    b.stop().await;
    db.drop_database().await;
    Ok(json!({ "rounds": rounds, "latency": percentiles(&latency) }))
}

/// startup: time from process start to serving, with N configs in the database.
pub async fn startup(opts: &Options) -> anyhow::Result<Value> {
    let count = if opts.tiny { 500 } else { opts.startup_configs };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    seed(&data, count).await?;
    let node = procs::cairn(&data, None).await?;
    let addr = node.addr;
    // Serving means answering a read of a config with its content.
    let token = login(addr).await?;
    let mut conn = load::connect(addr).await?;
    let (status, _) = load::send(
        &mut conn,
        request(
            "GET",
            addr,
            &format!("/api/v1/configs/public/bench/s{}.properties", count - 1),
            &token,
            None,
        ),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "the last seeded config is not served: {status}"
    );
    let listening = node.started.elapsed();
    let rss_serving = node.rss();
    // Again once the allocator had time to hand back what the start-up freed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = node.rss();
    node.stop().await;
    // Memory per cached config: against a node with none, started and asked the same.
    let empty_dir = tempfile::tempdir()?;
    let empty = procs::cairn(&empty_dir.path().join("node"), None).await?;
    let token = login(empty.addr).await?;
    let mut conn = load::connect(empty.addr).await?;
    let (status, _) = load::send(
        &mut conn,
        request(
            "GET",
            empty.addr,
            "/api/v1/configs/public/bench/s0.properties",
            &token,
            None,
        ),
    )
    .await?;
    anyhow::ensure!(status == 404, "the empty node has a config: {status}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_empty = empty.rss();
    empty.stop().await;
    let per_config = rss.saturating_sub(rss_empty) as f64 / count as f64;
    Ok(json!({
        "configs": count,
        "start_to_serving_ms": listening.as_millis(),
        "server_rss_mib_at_first_read": (rss_serving as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "server_rss_mib": (rss as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "empty_server_rss_mib": (rss_empty as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "rss_per_config_bytes": per_config.round(),
        "rss_per_content_byte": (per_config / procs::body_1k().len() as f64 * 100.0).round() / 100.0,
    }))
}

/// Writes `count` 1 KiB configs into a SQLite store in `data_dir`, in bulk.
async fn seed(data_dir: &Path, count: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let store = cairn_store::SqlStore::sqlite(&data_dir.join("cairn.db")).await?;
    for chunk in bulk_writes(count).chunks(5_000) {
        store.import(chunk, &[]).await?;
    }
    store.close().await;
    Ok(())
}

/// `count` writes of a 1 KiB properties config each, `public/bench/s{i}.properties`.
fn bulk_writes(count: usize) -> Vec<cairn_store::ConfigWrite> {
    let content = procs::body_1k();
    let md5 = cairn_core::md5::md5_hex(&content);
    (0..count)
        .map(|i| cairn_store::ConfigWrite {
            key: cairn_core::ConfigKey::parse("public", "bench", &format!("s{i}.properties"))
                .expect("a valid key"),
            op: cairn_store::Op::Publish,
            content: content.clone(),
            md5: md5.clone(),
            format: Some(cairn_core::Format::Properties),
            default_format: cairn_core::Format::Properties,
            validated_as: None,
            description: None,
            tags: None,
            sensitive: None,
            expect: cairn_store::Expect::Any,
            audit: cairn_store::Audit {
                operator: "bench".into(),
                source: String::new(),
                comment: String::new(),
                at: 0,
                surface: "import".into(),
                emergency: false,
            },
        })
        .collect()
}

/// An import of `count` 1 KiB configs as a user makes it (a Nacos zip sent to
/// `/api/v1/namespaces/public/import`, timed from the request's send to its answer),
/// per database backend, beside the floor: the same rows written by the store alone in
/// one transaction, in the same run.
pub async fn import_scenario(opts: &Options) -> anyhow::Result<Value> {
    let count = if opts.tiny { 500 } else { opts.import_configs };
    let content = procs::body_1k();
    let items: Vec<cairn_server::transfer::Item> = (0..count)
        .map(|i| cairn_server::transfer::Item {
            group: cairn_core::Group::parse("bench").expect("a valid group"),
            data_id: cairn_core::DataId::parse(&format!("s{i}.properties"))
                .expect("a valid data id"),
            content: content.clone(),
            format: Some(cairn_core::Format::Properties),
            description: String::new(),
            tags: Vec::new(),
            sensitive: false,
            gray: None,
            history: Vec::new(),
        })
        .collect();
    let zip = Bytes::from(cairn_server::transfer::write_zip(&items, true)?);
    let mut results = serde_json::Map::new();
    for (name, server) in backends(opts) {
        let dir = tempfile::tempdir()?;
        let scratch = |engine: Option<(cairn_store::scratch::Engine, String)>| async move {
            match engine {
                Some((engine, url)) => Ok::<_, anyhow::Error>(Some(
                    cairn_store::scratch::Scratch::create_at(engine, &url).await?,
                )),
                None => Ok(None),
            }
        };
        // The floor: the store alone.
        let floor_db = scratch(server.clone()).await?;
        let store: Arc<dyn cairn_store::Store> = match &floor_db {
            Some(db) => cairn_store::open(Some(&db.url), &dir.path().join("floor")).await?,
            None => {
                std::fs::create_dir_all(dir.path().join("floor"))?;
                Arc::new(cairn_store::SqlStore::sqlite(&dir.path().join("floor/cairn.db")).await?)
            }
        };
        let writes = bulk_writes(count);
        let started = Instant::now();
        store.import(&writes, &[]).await?;
        let floor = started.elapsed();
        drop(store);
        if let Some(db) = floor_db {
            db.drop_database().await;
        }

        let node_db = scratch(server).await?;
        let node = procs::cairn(
            &dir.path().join("node"),
            node_db.as_ref().map(|s| s.url.as_str()),
        )
        .await?;
        let token = login(node.addr).await?;
        let mut conn = load::connect(node.addr).await?;
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/namespaces/public/import")
            .header("host", node.addr.to_string())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/zip")
            .body(Full::new(zip.clone()))?;
        let started = Instant::now();
        let (status, body) = load::send(&mut conn, req).await?;
        let took = started.elapsed();
        anyhow::ensure!(
            status == 200,
            "import: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let answer: Value = serde_json::from_slice(&body)?;
        anyhow::ensure!(
            answer["imported"] == count,
            "imported {} of {count}",
            answer["imported"]
        );
        node.stop().await;
        if let Some(db) = node_db {
            db.drop_database().await;
        }
        results.insert(
            name.to_owned(),
            json!({
                "configs": count,
                "zip_bytes": zip.len(),
                "import_s": secs(took),
                "store_alone_s": secs(floor),
                "ratio_to_store": (took.as_secs_f64() / floor.as_secs_f64() * 100.0).round() / 100.0,
            }),
        );
    }
    Ok(Value::Object(results))
}

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The database backends a run covers: SQLite always, the servers given.
fn backends(opts: &Options) -> Vec<(&'static str, Option<(cairn_store::scratch::Engine, String)>)> {
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = &opts.postgres_url {
        backends.push((
            "postgres",
            Some((cairn_store::scratch::Engine::Postgres, url.clone())),
        ));
    }
    if let Some(url) = &opts.mysql_url {
        backends.push((
            "mysql",
            Some((cairn_store::scratch::Engine::MySql, url.clone())),
        ));
    }
    backends
}

/// C gRPC connections listening to one key, then one publish: the time from the
/// publish's acknowledgement to each connection's push, and memory per connection. On
/// the gRPC baseline (`bare`) instead: C held streams, then a fire that pushes them.
async fn grpc_fanout(connections: usize, bare: bool) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let node = if bare {
        procs::grpc_baseline().await?
    } else {
        procs::cairn(&dir.path().join("node"), None).await?
    };
    let (addr, grpc) = (node.addr, node.grpc.context("the node serves gRPC")?);
    let ask = |method: &'static str, path: &'static str| async move {
        let mut conn = load::connect(addr).await?;
        let (status, body) = load::send(&mut conn, request(method, addr, path, "", None)).await?;
        anyhow::ensure!(status == 200, "{method} {path}: {status}");
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&body).into_owned())
    };
    let listening = || async {
        if bare {
            Ok(ask("GET", "/held").await?.parse::<f64>()?)
        } else {
            gauge(addr, "cairn_grpc_listens").await
        }
    };
    let (token, md5) = if bare {
        (String::new(), String::new())
    } else {
        let token = login(addr).await?;
        let md5 = publish(addr, &token, "fan0.txt", "v: 0").await?;
        (token, md5)
    };
    let first = (connections / 10).max(1);
    let mut sockets = Vec::with_capacity(connections);
    let mut rss_first = 0;
    for (from, to) in [(0, first), (first, connections)] {
        // A few dozen handshakes at a time: all at once would overflow the node's accept
        // queue, which real clients (connecting over minutes) never do.
        use futures::StreamExt as _;
        let opened: Vec<_> = futures::stream::iter(from..to)
            .map(|i| {
                let (token, md5) = (token.clone(), md5.clone());
                tokio::spawn(async move {
                    grpc_wire::listen(grpc, load::source_ip(i), &token, "fan0.txt", &md5).await
                })
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for listener in opened {
            sockets.push(listener??);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while listening().await? < to as f64 {
            anyhow::ensure!(Instant::now() < deadline, "not every connection listens");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to == first {
            rss_first = node.rss();
        }
    }
    let rss_held = node.rss();
    let pushed = |seen: &[u8]| {
        Ok(seen
            .windows(grpc_wire::PUSH_MARK.len())
            .any(|w| w == grpc_wire::PUSH_MARK))
    };
    let answers = load::await_answers(sockets, Duration::from_secs(60), pushed)?;
    let cpu_before = procs::cpu_ns(node.pid());
    let sent = Instant::now();
    if bare {
        ask("POST", "/fire").await?;
    } else {
        publish(addr, &token, "fan0.txt", "v: 1").await?;
    }
    let acked = Instant::now();
    let answers = tokio::task::spawn_blocking(move || answers.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the push collector panicked"))??;
    let cpu_us = procs::cpu_ns(node.pid()).saturating_sub(cpu_before) as f64 / 1e3;
    let (mut latency, mut from_send) = (histogram(), histogram());
    for at in &answers.at {
        latency.saturating_record(at.saturating_duration_since(acked).as_micros() as u64);
        from_send.saturating_record(at.saturating_duration_since(sent).as_micros() as u64);
    }
    drop(answers);
    node.stop().await;
    let per_connection =
        rss_held.saturating_sub(rss_first) as f64 / (connections - first).max(1) as f64;
    Ok(json!({
        "connections": connections,
        "latency": percentiles(&latency),
        "latency_from_send": percentiles(&from_send),
        "server_cpu_us_per_push": (cpu_us / connections as f64 * 100.0).round() / 100.0,
        "server_rss_mib": (rss_held as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "rss_per_connection_bytes": per_connection.round(),
    }))
}

/// grpc: C Nacos gRPC connections listening to one key, then one publish, beside the
/// same number of HTTP long polls on one key in the same run (alternating rounds, as
/// `fanout` does); the ratio of their p99s is the median of the rounds'.
pub async fn grpc(opts: &Options) -> anyhow::Result<Value> {
    let (sizes, rounds) = sizes_and_rounds(opts);
    let p99 = |row: &Value| row["latency"]["p99_ms"].as_f64().unwrap_or(0.0);
    let median_by_p99 = |rows: Vec<Value>| median_row(rows, p99);
    let mut rows = Vec::new();
    for c in sizes {
        let (mut cairn, mut bare, mut http) = (Vec::new(), Vec::new(), Vec::new());
        let (mut to_http, mut to_bare) = (Vec::new(), Vec::new());
        // And against the bare hyper server holding HTTP requests, from the send.
        let (mut hyper, mut to_hyper) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let y = fanout_baseline(c).await?;
            // Each round in another order, so that drift hits all three alike.
            let (g, b, h) = match round % 3 {
                0 => {
                    let g = grpc_fanout(c, false).await?;
                    let b = grpc_fanout(c, true).await?;
                    (g, b, fanout_cairn(c, 1).await?)
                }
                1 => {
                    let h = fanout_cairn(c, 1).await?;
                    let b = grpc_fanout(c, true).await?;
                    (grpc_fanout(c, false).await?, b, h)
                }
                _ => {
                    let b = grpc_fanout(c, true).await?;
                    let h = fanout_cairn(c, 1).await?;
                    (grpc_fanout(c, false).await?, b, h)
                }
            };
            if p99(&h) > 0.0 {
                to_http.push(p99(&g) / p99(&h));
            }
            if p99(&b) > 0.0 {
                to_bare.push(p99(&g) / p99(&b));
            }
            if p99_from_send(&y) > 0.0 {
                to_hyper.push(p99_from_send(&g) / p99_from_send(&y));
            }
            hyper.push(y);
            cairn.push(g);
            bare.push(b);
            http.push(h);
        }
        let bare = median_by_p99(bare);
        let mut row = median_by_p99(cairn);
        row["rounds"] = json!(rounds);
        row["http_latency"] = median_by_p99(http)["latency"].clone();
        row["bare_latency"] = bare["latency"].clone();
        row["bare_rss_per_connection_bytes"] = bare["rss_per_connection_bytes"].clone();
        row["p99_ratio"] = json!(median_ratio(to_http));
        row["p99_ratio_to_bare"] = json!(median_ratio(to_bare));
        row["bare_cpu_us_per_push"] = bare["server_cpu_us_per_push"].clone();
        row["hyper_latency_from_send"] = median_by_p99(hyper)["latency_from_send"].clone();
        row["p99_from_send_ratio_to_hyper"] = json!(median_ratio(to_hyper));
        rows.push(row);
    }
    Ok(Value::Array(rows))
}

/// storm: C clients connect at once, as after a node restart or a load balancer's
/// failover, each sending a long poll as its first request; the time from the first
/// connect until the node holds every poll.
pub async fn storm(opts: &Options) -> anyhow::Result<Value> {
    let clients = if opts.tiny { 500 } else { opts.storm_clients };
    let dir = tempfile::tempdir()?;
    let node = procs::cairn(&dir.path().join("node"), None).await?;
    let addr = node.addr;
    let token = login(addr).await?;
    let md5 = publish(addr, &token, "storm.txt", "v: 0").await?;
    let request = Arc::new(load::watch_request(addr, &token, "storm.txt", &md5));
    let started = Instant::now();
    let opening: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(load::open_watch(addr, load::source_ip(i), request.clone())))
        .collect();
    let all_held = counted(addr, "cairn_watchers_held", clients, started, opening).await?;
    node.stop().await;
    Ok(json!({
        "clients": clients,
        "all_held_ms": all_held.as_millis() as u64,
        "grpc_all_listening_ms": grpc_storm(clients).await?.as_millis() as u64,
    }))
}

/// The storm over Nacos gRPC: `clients` connections opened at once on a fresh node,
/// each set up and listening to one key as SDKs do; the time from the first connect
/// until the node counts every listen.
async fn grpc_storm(clients: usize) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let node = procs::cairn(&dir.path().join("node"), None).await?;
    let (addr, grpc) = (node.addr, node.grpc.context("the node serves gRPC")?);
    let token = login(addr).await?;
    let md5 = publish(addr, &token, "storm.txt", "v: 0").await?;
    let started = Instant::now();
    let opening: Vec<_> = (0..clients)
        .map(|i| {
            let (token, md5) = (token.clone(), md5.clone());
            tokio::spawn(async move {
                grpc_wire::listen(grpc, load::source_ip(i), &token, "storm.txt", &md5).await
            })
        })
        .collect();
    let all_listening = counted(addr, "cairn_grpc_listens", clients, started, opening).await?;
    node.stop().await;
    Ok(all_listening)
}

/// Waits until the node's `gauge` counts `clients`, then for the clients' connections
/// (kept open until then); the time from `started` to the count.
async fn counted(
    addr: SocketAddr,
    name: &str,
    clients: usize,
    started: Instant,
    opening: Vec<tokio::task::JoinHandle<anyhow::Result<std::net::TcpStream>>>,
) -> anyhow::Result<Duration> {
    let deadline = started + Duration::from_secs(120);
    while gauge(addr, name).await? < clients as f64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name} did not reach {clients} within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = started.elapsed();
    let mut open = Vec::with_capacity(clients);
    for task in opening {
        open.push(task.await??);
    }
    drop(open);
    Ok(all)
}
