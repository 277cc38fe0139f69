//! The HTTP/1.1 connection loop. Most connections a config server holds are parked long
//! polls, so each one's cost is what a node's capacity is counted in. A connection
//! starts on the long-poll path (`long_poll`), which reads request heads itself,
//! answers long polls holding nothing but the socket and the handler while they wait,
//! and answers plain reads of cached configs from memory; the first request of any
//! other kind hands the connection, with the bytes already read, to hyper for the rest
//! of its life.

mod long_poll;
mod prefixed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use prefixed::Prefixed;

/// How long a client may take to send a request's headers, counted from when the
/// connection starts waiting for them (slow-loris protection; it also closes keep-alive
/// connections left idle that long). A parked watch has sent its request long before.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests once held watches were answered.
const DRAIN: Duration = Duration::from_secs(10);

/// What the connection layer counts.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Long polls answered without hyper's per-connection buffers. A long-poll route
    /// that stops being served this way still works, only at a larger cost per parked
    /// watch, so this count is what shows it (and what a test checks).
    pub unbuffered: std::sync::atomic::AtomicU64,
    /// Plain reads answered without the router (`api::reads`).
    pub direct_reads: std::sync::atomic::AtomicU64,
    /// Long polls of keys (native watches, Nacos listeners) answered without the
    /// router (`api::listens`).
    pub direct_listens: std::sync::atomic::AtomicU64,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and
/// waits (up to a bound) for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: crate::api::SharedState,
    router: Router,
    shutdown: CancellationToken,
    stats: Arc<ConnectionStats>,
    max_per_address: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let open = Arc::new(OpenByAddress::default());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let port = Arc::new(Port {
        state,
        router,
        http,
        shutdown: shutdown.clone(),
        stats,
        tls,
    });
    let connections = TaskTracker::new();
    // hyper's connections hear of shutdown through a watch channel, which a connection
    // can check on every poll without contending with the others (a cancellation
    // token's check takes a lock shared by all of them).
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: wait for some to close rather
                    // than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Some(slot) = open.enter(remote.ip(), max_per_address) else {
            // One address holding the node's sockets would starve every other client.
            metrics::counter!("cairn_connections_refused_total", "why" => "per_address")
                .increment(1);
            connections.spawn(refuse(tcp, max_per_address));
            continue;
        };
        // Answers go out at once: a config read is one small response per request.
        let _ = tcp.set_nodelay(true);
        let serving = connection(tcp, remote, port.clone(), graceful.watcher());
        connections.spawn(async move {
            // The address's place is held for as long as the connection is served.
            let _slot = slot;
            serving.await
        });
    }
    drop(listener);
    connections.close();
    let drained = async {
        graceful.shutdown().await;
        connections.wait().await;
    };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::warn!("shutting down with requests still open");
    }
}

/// Open connections by client address.
#[derive(Default)]
struct OpenByAddress {
    counts: dashmap::DashMap<std::net::IpAddr, usize>,
}

/// One open connection of an address; counted until dropped.
struct Slot {
    open: Arc<OpenByAddress>,
    ip: std::net::IpAddr,
}

impl OpenByAddress {
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<Slot> {
        let mut count = self.counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.counts.remove_if_mut(&self.ip, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

/// Answers a connection over its address's cap with a 503 that says so, and closes it.
async fn refuse(mut tcp: TcpStream, max: usize) {
    use tokio::io::AsyncWriteExt as _;
    let body = format!(
        "{{\"code\":\"too_many_connections\",\"message\":\"this address already holds {max} \
         connections to this node (max_connections_per_address); close some, or spread \
         clients over other nodes\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// What every connection of the port shares.
struct Port {
    /// For the plain reads the connection layer answers itself.
    state: crate::api::SharedState,
    router: Router,
    http: http1::Builder,
    shutdown: CancellationToken,
    stats: Arc<ConnectionStats>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

async fn connection(tcp: TcpStream, remote: SocketAddr, port: Arc<Port>, graceful: Watcher) {
    // The address the client reached, for answers that name this node.
    let local = tcp.local_addr().ok().map(crate::api::LocalAddr);
    if let Some(tls) = &port.tls {
        // The long-poll path reads the socket itself, so over TLS hyper serves every
        // request; a parked watch then also holds hyper's and the TLS session's buffers.
        if let Some(stream) = crate::tls::handshake(tls, tcp).await {
            let io = Prefixed::new(Bytes::new(), stream);
            Box::pin(with_hyper(io, local, remote, &port, graceful)).await;
        }
        return;
    }
    let long_polls = long_poll::serve(tcp, remote, &port);
    if let Some((tcp, read)) = long_polls.await {
        // Boxed so that a connection still on the long-poll path does not carry room
        // for hyper's state in its task.
        let io = Prefixed::new(read, tcp);
        Box::pin(with_hyper(io, local, remote, &port, graceful)).await;
    }
}

/// Serves the rest of a connection with hyper.
async fn with_hyper<T>(
    io: Prefixed<T>,
    local: Option<crate::api::LocalAddr>,
    remote: SocketAddr,
    port: &Port,
    graceful: Watcher,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let router = port.router.clone();
    let service = TowerToHyperService::new(tower::service_fn(
        move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            if let Some(local) = local {
                request.extensions_mut().insert(local);
            }
            router.clone().oneshot(request)
        },
    ));
    let connection = port.http.serve_connection(TokioIo::new(io), service);
    // At shutdown: finish the request in flight, if any, then close.
    let ended = graceful.watch(connection).await;
    // A client that goes away mid-request is no server error.
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Writes one header line of a response.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
