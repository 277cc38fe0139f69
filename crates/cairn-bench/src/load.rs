//! Load generation on loopback: keep-alive HTTP/1.1 connections driven in a closed loop,
//! and lean raw long-poll watchers that cost the load side as little as possible.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub type Body = Full<Bytes>;

/// Latencies in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// One keep-alive HTTP/1.1 connection.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Body>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer; returns its status and body.
pub async fn send(
    sender: &mut SendRequest<Body>,
    request: Request<Body>,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

pub struct Run {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// `connections` connections each sending `make()` requests back to back until
/// `duration` passes or `limit` requests were sent in all.
pub async fn closed_loop(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    limit: u64,
    make: Arc<dyn Fn(u64) -> Request<Body> + Send + Sync>,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let deadline = started + duration;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let mut sender = connect(addr).await?;
        let (make, counter) = (make.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latency, mut ok, mut errors) = (histogram(), 0u64, 0u64);
            loop {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= limit || Instant::now() >= deadline {
                    break;
                }
                let sent = Instant::now();
                match send(&mut sender, make(n)).await {
                    Ok((status, _)) if status < 400 => {
                        ok += 1;
                        latency.saturating_record(sent.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (latency, ok, errors)
        }));
    }
    let mut run = Run {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    for task in tasks {
        let (latency, ok, errors) = task.await?;
        run.latency.add(&latency).context("merging histograms")?;
        run.ok += ok;
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// The loopback source address for the `i`th watcher: spreading connections over
/// 127.0.0.2, .3, … keeps each below the ephemeral port range.
pub fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 16) as u8))
}

/// A held long poll on a raw connection: the request bytes are written once and the
/// task then waits for the first byte of the answer. Returns when it arrived, and the
/// connection: like a real client's, it stays open after the answer (closing it is no
/// part of being notified, and would load the server while others are still waiting).
pub async fn raw_watch(
    addr: SocketAddr,
    source: IpAddr,
    request: Arc<Vec<u8>>,
) -> anyhow::Result<(Instant, TcpStream)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(addr).await?;
    stream.write_all(&request).await?;
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await?;
    let at = Instant::now();
    anyhow::ensure!(n > 0, "the server closed the watch");
    anyhow::ensure!(
        buf.starts_with(b"HTTP/1.1 200"),
        "the watch was refused: {}",
        String::from_utf8_lossy(&buf[..n.min(120)])
    );
    Ok((at, stream))
}

/// The bytes of a native long-poll request for one key.
pub fn watch_request(host: SocketAddr, token: &str, data_id: &str, md5: &str) -> Vec<u8> {
    let body = format!(
        "{{\"keys\":[{{\"namespace\":\"public\",\"group\":\"bench\",\"data_id\":\"{data_id}\",\"md5\":\"{md5}\"}}],\"timeout_ms\":120000}}"
    );
    format!(
        "POST /api/v1/watch HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
