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

/// Opens a held long poll for [`await_answers`]: connects from `source` and writes the
/// request; the answer is left unread.
pub async fn open_watch(
    addr: SocketAddr,
    source: IpAddr,
    request: Arc<Vec<u8>>,
) -> anyhow::Result<std::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(addr).await?;
    stream.write_all(&request).await?;
    Ok(stream.into_std()?)
}

/// Waits for the answer on each of `watches`, on a thread of its own that does nothing
/// but poll them (no task per watcher): the load shares the two cores with the server,
/// so the less it spends per answer, the more the figure is the server's. `answered`
/// looks at what a watch has received so far: `Ok(true)` once that is the answer (the
/// time is taken at the read that completed it), an error if it is a refusal. The
/// watches are registered before this returns, so no answer is missed.
pub fn await_answers<F>(
    watches: Vec<std::net::TcpStream>,
    limit: Duration,
    answered: F,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<Answers>>>
where
    F: Fn(&[u8]) -> anyhow::Result<bool> + Send + 'static,
{
    use std::io::Read;
    let mut poll = mio::Poll::new()?;
    let mut sockets: Vec<mio::net::TcpStream> = watches
        .into_iter()
        .map(mio::net::TcpStream::from_std)
        .collect();
    for (i, socket) in sockets.iter_mut().enumerate() {
        poll.registry()
            .register(socket, mio::Token(i), mio::Interest::READABLE)?;
    }
    Ok(std::thread::spawn(move || {
        let cpu_before = thread_cpu_ns();
        let total = sockets.len();
        let mut at: Vec<Option<Instant>> = vec![None; total];
        // What each watch has received, kept only while it is not yet the whole answer.
        let mut seen: Vec<Vec<u8>> = vec![Vec::new(); total];
        let mut left = total;
        let mut events = mio::Events::with_capacity(1024);
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + limit;
        while left > 0 {
            let wait = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(
                !wait.is_zero(),
                "{left} of {total} watchers unanswered after {limit:?}"
            );
            match poll.poll(&mut events, Some(wait)) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other?,
            }
            for event in &events {
                let i = event.token().0;
                if at[i].is_some() {
                    continue;
                }
                let n = match sockets[i].read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                };
                anyhow::ensure!(n > 0, "the server closed a watch");
                let complete = if seen[i].is_empty() {
                    answered(&buf[..n])?
                } else {
                    seen[i].extend_from_slice(&buf[..n]);
                    answered(&seen[i])?
                };
                if complete {
                    at[i] = Some(Instant::now());
                    left -= 1;
                    seen[i] = Vec::new();
                } else if seen[i].is_empty() {
                    seen[i].extend_from_slice(&buf[..n]);
                }
            }
        }
        Ok(Answers {
            at: at.into_iter().flatten().collect(),
            cpu_ns: thread_cpu_ns().saturating_sub(cpu_before),
            open: sockets,
        })
    }))
}

/// [`await_answers`]'s check for an HTTP/1.1 long poll: its first bytes are the answer,
/// which must be a 200.
pub fn http_ok(seen: &[u8]) -> anyhow::Result<bool> {
    anyhow::ensure!(
        seen.starts_with(b"HTTP/1.1 200"),
        "a watch was refused: {}",
        String::from_utf8_lossy(&seen[..seen.len().min(120)])
    );
    Ok(true)
}

/// What [`await_answers`] saw.
pub struct Answers {
    /// When each watch was answered.
    pub at: Vec<Instant>,
    /// CPU time the waiting took.
    pub cpu_ns: u64,
    /// The connections, still open as a real client's would be.
    pub open: Vec<mio::net::TcpStream>,
}

/// CPU time the calling thread has run, in nanoseconds (Linux; 0 elsewhere).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| crate::procs::schedstat_ns(&stat))
        .unwrap_or(0)
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
