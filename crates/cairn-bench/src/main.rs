//! `cairn-bench`: measures a Cairn node against this machine's own ceiling. Every load
//! runs on loopback, is bounded in requests and time, and stops by itself; every figure
//! that depends on the machine is reported next to a baseline measured in the same run.
//!
//! `cargo run --release -p cairn-bench -- all` (or `read`, `publish`, `fanout`, `grpc`,
//! `cross-node`, `startup`, `storm`, `import`, `patterns`); `--tiny` runs each at a size of seconds, for CI.

/// The allocator the `cairn` binary uses too, so the measured node is the shipped one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod grpc_wire;
mod load;
mod procs;
mod scenarios;
mod wrk;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "cairn-bench", about = "Cairn's benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario, one after the other.
    All(Options),
    /// Cached reads of a 1 KiB config vs a bare hyper server.
    Read(Options),
    /// Sequential and concurrent publishes, per database backend.
    Publish(Options),
    /// Watchers held on one key and spread over many; time to notify them all.
    Fanout(Options),
    /// Nacos listeners (HTTP long polls) of one key vs the baseline; time from the publish's send.
    Listener(Options),
    /// Nacos gRPC connections listening to one key beside HTTP long polls; time to push.
    Grpc(Options),
    /// Publish on one node, watcher on another, on PostgreSQL.
    CrossNode(Options),
    /// Start-up time with many configs stored.
    Startup(Options),
    /// Many clients connecting at once, each with a long poll; time until all are held.
    Storm(Options),
    /// Importing many 1 KiB configs in one zip, vs the store writing them alone.
    Import(Options),
    /// Exact watchers woken by a publish, alone and beside pattern watches.
    Patterns(Options),
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        database: Option<String>,
    },
    #[command(hide = true)]
    Baseline,
    #[command(hide = true)]
    GrpcBaseline,
}

/// Sizes and targets of a run.
#[derive(Args, Clone)]
pub struct Options {
    /// Run each scenario at a size of seconds (for CI: checks that it completes).
    #[arg(long)]
    pub tiny: bool,
    /// How long each read load runs.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Keep-alive connections of the read load.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Publishes per publish run.
    #[arg(long, default_value_t = 2_000)]
    pub publishes: u64,
    /// Watcher counts for the fan-out scenario.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub watchers: Vec<usize>,
    /// Clients of the reconnect-storm scenario.
    #[arg(long, default_value_t = 10_000)]
    pub storm_clients: usize,
    /// Exact watchers of the patterns scenario.
    #[arg(long, default_value_t = 10_000)]
    pub pattern_exact_watchers: usize,
    /// Pattern watches of the patterns scenario.
    #[arg(long, default_value_t = 1_000)]
    pub pattern_watchers: usize,
    /// Configs of the import scenario.
    #[arg(long, default_value_t = 10_000)]
    pub import_configs: usize,
    /// Configs stored for the start-up scenario.
    #[arg(long, default_value_t = 100_000)]
    pub startup_configs: usize,
    /// PostgreSQL server for the publish and cross-node scenarios (a scratch database
    /// is made and dropped there).
    #[arg(long, env = "CAIRN_TEST_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// MySQL / MariaDB server for the publish scenario.
    #[arg(long, env = "CAIRN_TEST_MYSQL_URL")]
    pub mysql_url: Option<String>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/latest.json")]
    pub json: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { data_dir, database } => procs::serve(&data_dir, database).await,
            Command::Baseline => procs::run_baseline().await,
            Command::GrpcBaseline => procs::run_grpc_baseline().await,
            Command::All(o) => {
                run(
                    &o,
                    &[
                        "read",
                        "publish",
                        "fanout",
                        "listener",
                        "grpc",
                        "cross-node",
                        "startup",
                        "storm",
                        "import",
                        "patterns",
                    ],
                )
                .await
            }
            Command::Read(o) => run(&o, &["read"]).await,
            Command::Publish(o) => run(&o, &["publish"]).await,
            Command::Fanout(o) => run(&o, &["fanout"]).await,
            Command::Listener(o) => run(&o, &["listener"]).await,
            Command::Grpc(o) => run(&o, &["grpc"]).await,
            Command::CrossNode(o) => run(&o, &["cross-node"]).await,
            Command::Startup(o) => run(&o, &["startup"]).await,
            Command::Storm(o) => run(&o, &["storm"]).await,
            Command::Import(o) => run(&o, &["import"]).await,
            Command::Patterns(o) => run(&o, &["patterns"]).await,
        }
    })
}

async fn run(opts: &Options, which: &[&str]) -> anyhow::Result<()> {
    // Many held connections need many descriptors, here and in the child servers.
    let _ = rlimit::increase_nofile_limit(1 << 20);
    let mut results = serde_json::Map::new();
    let mut failed = Vec::new();
    for scenario in which {
        let started = Instant::now();
        eprintln!("running {scenario}…");
        let result = match *scenario {
            "read" => scenarios::read(opts).await,
            "publish" => scenarios::publish_scenario(opts).await,
            "fanout" => scenarios::fanout(opts).await,
            "listener" => scenarios::listener(opts).await,
            "grpc" => scenarios::grpc(opts).await,
            "cross-node" => scenarios::cross_node(opts).await,
            "storm" => scenarios::storm(opts).await,
            "import" => scenarios::import_scenario(opts).await,
            "patterns" => scenarios::patterns(opts).await,
            _ => scenarios::startup(opts).await,
        };
        // A failed scenario is reported and the others still run.
        let result = result.unwrap_or_else(|e| {
            eprintln!("{scenario} failed: {e:#}");
            failed.push(*scenario);
            json!({ "error": format!("{e:#}") })
        });
        eprintln!(
            "{scenario} done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        results.insert((*scenario).to_owned(), result);
    }
    let report = json!({
        "machine": machine(),
        "tiny": opts.tiny,
        "results": results,
    });
    print_table(&report["results"]);
    if let Some(dir) = opts.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.json, serde_json::to_string_pretty(&report)?)?;
    eprintln!("results written to {}", opts.json.display());
    if !failed.is_empty() {
        anyhow::bail!("scenarios that did not complete: {}", failed.join(", "));
    }
    Ok(())
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    json!({ "cpus": cpus, "cpu": model })
}

fn print_table(results: &Value) {
    let get = |v: &Value, path: &[&str]| -> String {
        let mut cur = v;
        for p in path {
            cur = &cur[*p];
        }
        match cur {
            Value::Null => "-".into(),
            other => other.to_string(),
        }
    };
    // Several figures of one result on a line, e.g. "p50/p99/max".
    let joined = |v: &Value, paths: &[Vec<&str>], sep: &str| -> String {
        paths
            .iter()
            .map(|p| get(v, p))
            .collect::<Vec<_>>()
            .join(sep)
    };
    println!("{:<44} {:>14}", "figure", "value");
    let row = |name: String, value: String| println!("{name:<44} {value:>14}");
    if let Some(r) = results.get("read") {
        row(
            "read: cairn / baseline req/s (ratio)".into(),
            get(r, &["ratio"]),
        );
        row("read: load generator".into(), get(r, &["load_generator"]));
        if let Some(Value::Object(routes)) = r.get("routes") {
            for (name, route) in routes {
                row(
                    format!("read {name}: req/s (ratio to baseline)"),
                    format!("{} ({})", get(route, &["rps"]), get(route, &["ratio"])),
                );
                row(
                    format!("read {name}: p50 / p99 ms"),
                    joined(route, &[vec!["p50_ms"], vec!["p99_ms"]], " / "),
                );
            }
        }
        row("read: cairn req/s".into(), get(r, &["cairn_rps"]));
        row("read: baseline req/s".into(), get(r, &["baseline_rps"]));
        row(
            "read: cairn p50 / p99 ms".into(),
            format!(
                "{} / {}",
                get(r, &["cairn_latency", "p50_ms"]),
                get(r, &["cairn_latency", "p99_ms"])
            ),
        );
        row(
            "read: baseline p50 / p99 ms".into(),
            format!(
                "{} / {}",
                get(r, &["baseline_latency", "p50_ms"]),
                get(r, &["baseline_latency", "p99_ms"])
            ),
        );
    }
    if let Some(Value::Object(backends)) = results.get("publish") {
        for (name, b) in backends {
            for writers in ["1", "4", "16", "64"] {
                row(
                    format!("publish {name}: {writers} writers /s, p99 ms"),
                    format!(
                        "{} / {}",
                        get(b, &["writers", writers, "per_s"]),
                        get(b, &["writers", writers, "latency", "p99_ms"])
                    ),
                );
            }
            row(
                format!("publish {name}: 16 writers / 1"),
                get(b, &["ratio_16_to_1"]),
            );
            if b["two_nodes_8_writers_each"].is_object() {
                row(
                    format!("publish {name}: 2 nodes × 8 writers /s / 1 node × 16"),
                    format!(
                        "{} / {} ({})",
                        get(b, &["two_nodes_8_writers_each", "per_s"]),
                        get(
                            b,
                            &["two_nodes_8_writers_each", "one_node_16_writers_per_s"]
                        ),
                        get(b, &["two_nodes_8_writers_each", "ratio_to_one_node"])
                    ),
                );
            }
        }
    }
    if let Some(Value::Array(rows)) = results.get("listener") {
        for l in rows {
            let name = format!("nacos listeners {}", get(l, &["listeners"]));
            let p50_p99 = |at: &'static str| vec![vec![at, "p50_ms"], vec![at, "p99_ms"]];
            row(
                format!("{name}: p50/p99 ms from send"),
                joined(l, &p50_p99("latency_from_send"), "/"),
            );
            row(
                format!("{name}: bare hyper p50/p99 ms"),
                joined(l, &p50_p99("baseline_latency_from_send"), "/"),
            );
            row(
                format!("{name}: p99 cairn / bare hyper"),
                get(l, &["p99_ratio"]),
            );
        }
    }
    if let Some(Value::Array(rows)) = results.get("fanout") {
        for f in rows {
            let name = format!(
                "fanout {} watchers / {} keys",
                get(f, &["watchers"]),
                get(f, &["keys"])
            );
            // The same fields under one key.
            let under = |at: &'static str, fields: &[&'static str]| -> Vec<Vec<&'static str>> {
                fields.iter().map(|field| vec![at, *field]).collect()
            };
            const LATENCY: [&str; 3] = ["p50_ms", "p99_ms", "max_ms"];
            const SWITCHES: [&str; 2] = ["voluntary", "involuntary"];
            row(
                format!("{name}: p50/p99/max ms"),
                joined(f, &under("latency", &LATENCY), "/"),
            );
            row(
                format!("{name}: from send p50/p99/max ms"),
                joined(f, &under("latency_from_send", &LATENCY), "/"),
            );
            if f.get("baseline_latency").is_some() {
                row(
                    format!("{name}: bare hyper p50/p99/max ms"),
                    joined(f, &under("baseline_latency", &LATENCY), "/"),
                );
                row(
                    format!("{name}: p99 cairn / bare hyper"),
                    get(f, &["p99_ratio"]),
                );
                row(
                    format!("{name}: p99 cairn / bare hyper, from send"),
                    get(f, &["p99_ratio_from_send"]),
                );
                row(
                    format!("{name}: kernel share of CPU, node / bare"),
                    joined(
                        f,
                        &[vec!["server_kernel_share"], vec!["baseline_kernel_share"]],
                        " / ",
                    ),
                );
                row(
                    format!("{name}: page faults per watcher, node / bare"),
                    joined(
                        f,
                        &[
                            vec!["server_page_faults_per_watcher"],
                            vec!["baseline_page_faults_per_watcher"],
                        ],
                        " / ",
                    ),
                );
                row(
                    format!("{name}: context switches per watcher, node / bare"),
                    format!(
                        "{} / {}",
                        joined(
                            f,
                            &under("server_context_switches_per_watcher", &SWITCHES),
                            "+"
                        ),
                        joined(
                            f,
                            &under("baseline_context_switches_per_watcher", &SWITCHES),
                            "+"
                        ),
                    ),
                );
                row(
                    format!("{name}: CPU µs per watcher, node / bare / load"),
                    joined(
                        f,
                        &[
                            vec!["server_cpu_us_per_watcher"],
                            vec!["baseline_cpu_us_per_watcher"],
                            vec!["load_cpu_us_per_watcher"],
                        ],
                        " / ",
                    ),
                );
            }
            row(
                format!("{name}: server RSS MiB"),
                get(f, &["server_rss_mib"]),
            );
            row(
                format!("{name}: RSS per watcher B"),
                get(f, &["rss_per_watcher_bytes"]),
            );
        }
    }
    if let Some(Value::Array(rows)) = results.get("grpc") {
        for g in rows {
            let name = format!("grpc {} listeners / 1 key", get(g, &["connections"]));
            row(
                format!("{name}: push p50/p99/max ms"),
                joined(
                    g,
                    &[
                        vec!["latency", "p50_ms"],
                        vec!["latency", "p99_ms"],
                        vec!["latency", "max_ms"],
                    ],
                    "/",
                ),
            );
            row(
                format!("{name}: HTTP long poll p99 ms"),
                get(g, &["http_latency", "p99_ms"]),
            );
            row(
                format!("{name}: bare tonic push p99 ms"),
                get(g, &["bare_latency", "p99_ms"]),
            );
            row(
                format!("{name}: p99 gRPC / HTTP long poll"),
                get(g, &["p99_ratio"]),
            );
            row(
                format!("{name}: p99 gRPC / bare tonic"),
                get(g, &["p99_ratio_to_bare"]),
            );
            row(
                format!("{name}: from send, p99 gRPC / bare hyper hold"),
                format!(
                    "{} ({} / {} ms)",
                    get(g, &["p99_from_send_ratio_to_hyper"]),
                    get(g, &["latency_from_send", "p99_ms"]),
                    get(g, &["hyper_latency_from_send", "p99_ms"])
                ),
            );
            row(
                format!("{name}: RSS per connection B, node / bare tonic"),
                joined(
                    g,
                    &[
                        vec!["rss_per_connection_bytes"],
                        vec!["bare_rss_per_connection_bytes"],
                    ],
                    " / ",
                ),
            );
        }
    }
    if let Some(c) = results.get("cross-node") {
        row(
            "cross-node (PostgreSQL): p50 / p99 ms".into(),
            format!(
                "{} / {}",
                get(c, &["latency", "p50_ms"]),
                get(c, &["latency", "p99_ms"])
            ),
        );
    }
    if let Some(s) = results.get("startup") {
        row(
            format!("startup with {} configs: ms", get(s, &["configs"])),
            get(s, &["start_to_serving_ms"]),
        );
        row(
            "memory per cached 1 KiB config: bytes (/ content)".into(),
            format!(
                "{} ({})",
                get(s, &["rss_per_config_bytes"]),
                get(s, &["rss_per_content_byte"])
            ),
        );
    }
    if let Some(r) = results.get("storm") {
        row(
            format!(
                "storm: {} clients connect, all held: ms",
                get(r, &["clients"])
            ),
            get(r, &["all_held_ms"]),
        );
        row(
            format!(
                "storm: {} gRPC clients connect, all listening: ms",
                get(r, &["clients"])
            ),
            get(r, &["grpc_all_listening_ms"]),
        );
    }
    if let Some(r) = results.get("patterns") {
        row(
            format!(
                "{} watchers woken, p99 ms alone / beside {} patterns",
                get(r, &["exact_watchers"]),
                get(r, &["pattern_watchers"])
            ),
            joined(
                r,
                &[vec!["p99_ms_alone"], vec!["p99_ms_beside_patterns"]],
                " / ",
            ),
        );
    }
    if let Some(Value::Object(backends)) = results.get("import") {
        for (name, r) in backends {
            row(
                format!(
                    "import {} configs, {name}: s (store alone)",
                    get(r, &["configs"])
                ),
                joined(r, &[vec!["import_s"], vec!["store_alone_s"]], " / "),
            );
        }
    }
}
