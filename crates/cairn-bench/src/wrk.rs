//! Load from `wrk`, when the machine has it: a C load generator whose per-request cost
//! is well below a server's, so that a ratio to the bare baseline measures the server,
//! not this process's HTTP client (which tops out first), and a load of publishes
//! leaves the machine's cores to the node and its database.

use std::time::Duration;

use anyhow::{bail, Context};

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Non-2xx answers and socket errors.
    pub errors: u64,
}

/// Whether `wrk` can be run here.
pub fn available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// `GET url` with `headers` from `connections` keep-alive connections over two threads
/// for `duration` (whole seconds, at least one).
pub async fn run(
    url: &str,
    headers: &[(&str, &str)],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<WrkRun> {
    let mut command = command(2, connections, duration);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    finish(command.arg(url)).await
}

/// The requests `script` (wrk's Lua) makes, with `env` in its environment, from
/// `connections` keep-alive connections over as many threads as there are
/// connections, two at most, for `duration`.
pub async fn run_script(
    url: &str,
    script: &std::path::Path,
    env: &[(&str, &str)],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<WrkRun> {
    let mut command = command(connections.min(2), connections, duration);
    command.arg("-s").arg(script).envs(env.iter().copied());
    finish(command.arg(url)).await
}

fn command(threads: usize, connections: usize, duration: Duration) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg("--latency")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)));
    command
}

async fn finish(command: &mut tokio::process::Command) -> anyhow::Result<WrkRun> {
    let out = command.output().await.context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

/// Reads wrk's report (with `--latency`).
fn parse(text: &str) -> anyhow::Result<WrkRun> {
    let mut run = WrkRun {
        per_second: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => run.per_second = n.parse()?,
            ["50%", t] => run.p50_ms = millis(t)?,
            ["99%", t] => run.p99_ms = millis(t)?,
            [n, "requests", "in", ..] => run.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => run.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // `connect 0, read 0, write 0, timeout 0`
                for count in rest.iter().skip(1).step_by(2) {
                    run.errors += count.trim_end_matches(',').parse::<u64>()?;
                }
            }
            _ => {}
        }
    }
    if run.per_second.is_nan() || run.p99_ms.is_nan() {
        bail!("no Requests/sec or latency distribution");
    }
    Ok(run)
}

/// `315.00us`, `1.23ms` or `2.00s` in milliseconds.
fn millis(text: &str) -> anyhow::Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("{text} is not a duration");
    };
    Ok(number.parse::<f64>()? * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read() {
        let report = "Running 1s test @ http://127.0.0.1:1/x
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   430.12us  200.00us   5.00ms   90.00%
    Req/Sec    70.00k     3.00k   75.00k    80.00%
  Latency Distribution
     50%  400.00us
     75%  500.00us
     90%  600.00us
     99%    1.50ms
  140000 requests in 1.00s, 160.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 139500.55
Transfer/sec:    160.00MB
";
        let run = parse(report).unwrap();
        assert_eq!(run.per_second, 139500.55);
        assert!((run.p50_ms - 0.4).abs() < 1e-9);
        assert!((run.p99_ms - 1.5).abs() < 1e-9);
        assert_eq!(run.requests, 140_000);
        assert_eq!(run.errors, 7);
        assert!(parse("nothing").is_err());
    }
}
