//! Long polls and plain reads answered beside hyper. hyper keeps two 8 KiB buffers for
//! every connection it serves, parked or not, which at 100,000 held watches would be
//! most of a node's memory. Here a request is read into a buffer that is let go once the
//! request is taken, handed to the same router as every other request, and its answer
//! written directly, so a parked watch holds only its socket and its handler. A plain
//! read of a cached config is answered from memory without the router (`api::reads`),
//! and a plain watch of keys (native or Nacos's listener) waits and is answered
//! without it (`api::listens`).
//!
//! Only plain requests are taken: HTTP/1.1, a `Content-Length` body or none (none for a
//! read), no `Expect` or `Upgrade`. Anything else, including anything malformed or
//! oversized, goes to hyper with the bytes already read, and hyper answers it as it
//! answers every other request.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::SystemTime;

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use axum::http::{StatusCode, Version};
use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFuture;
use tower::ServiceExt;

use super::{push_header, HEADER_READ_TIMEOUT};
use crate::api::listens::Answer as Reply;

/// Largest request head taken here.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body taken here (a Nacos listener naming a few thousand keys).
const MAX_BODY: usize = 256 * 1024;
/// Most header lines taken here.
const MAX_HEADERS: usize = 48;
/// How much room a read of a request has.
const READ_CHUNK: usize = 4096;
/// How much room a read while a request is parked has: a client that closes sends
/// nothing, and one that pipelines its next request sends little.
const PARKED_READ_CHUNK: usize = 512;

/// Whether a request is a long poll: the native watch, Nacos's config listener, or
/// Apollo's notifications (with or without an env prefix). These are the routes that
/// park; every other request goes to hyper.
fn is_long_poll(method: &str, path: &str) -> bool {
    use crate::api::long_poll_paths::{APOLLO_NOTIFICATIONS, NACOS_LISTENER, WATCH};
    match method {
        "POST" => path == WATCH || path == NACOS_LISTENER,
        "GET" => {
            path == APOLLO_NOTIFICATIONS
                || path
                    .strip_prefix("/apollo/")
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(env, rest)| {
                        !env.is_empty() && APOLLO_NOTIFICATIONS.strip_prefix('/') == Some(rest)
                    })
        }
        _ => false,
    }
}

/// Serves requests on `tcp` for as long as they are long polls. Returns the connection
/// and what was read of it once a request of another kind arrives, or `None` once the
/// connection is closed.
pub(super) async fn serve(
    mut tcp: TcpStream,
    remote: SocketAddr,
    port: &super::Port,
) -> Option<(TcpStream, Bytes)> {
    let super::Port {
        router,
        shutdown,
        stats,
        state,
        ..
    } = port;
    let direct = Direct {
        state,
        remote,
        shutdown,
    };
    let mut read = BytesMut::new();
    // One wait on shutdown for the connection's life, not one per request: each wait
    // joins a list shared by every connection of the node.
    let stopping = shutdown.cancelled();
    tokio::pin!(stopping);
    // The client closed its side: what it sent before is still answered.
    let mut eof = false;
    loop {
        let next = next_request(&mut tcp, &mut read, eof, stopping.as_mut(), &direct).await?;
        let (head, body, close) = match next {
            Next::LongPoll { head, body, close } => {
                stats
                    .unbuffered
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (head, body, close)
            }
            Next::Answered(response) => {
                stats
                    .direct_reads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = tcp.write_all(&response).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                    return None;
                }
                continue;
            }
            Next::Other => return Some((tcp, read.freeze())),
        };
        let reply = match crate::api::listens::answer(state, &head, &body, remote) {
            Some(due) => {
                // The wait holds what it needs; the request goes.
                drop((head, body));
                stats
                    .direct_listens
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Boxed: a connection's task is as large as its largest wait, and
                // every connection of the node has one.
                answer(&tcp, &mut read, &mut eof, Box::pin(due)).await?
            }
            None => {
                let body = if body.is_empty() {
                    Body::empty()
                } else {
                    Body::from(body)
                };
                let mut request = Request::from_parts(head, body);
                request.extensions_mut().insert(ConnectInfo(remote));
                let routed = router.clone().oneshot(request);
                let routed = async move {
                    let Ok(response) = routed.await;
                    Reply::Routed(Box::new(response))
                };
                // Boxed, as the direct wait is.
                answer(&tcp, &mut read, &mut eof, Box::pin(routed)).await?
            }
        };
        // Once the node is stopping, each answer is the connection's last.
        let close = close
            || shutdown.is_cancelled()
            || matches!(&reply, Reply::Routed(response) if response
                .headers()
                .get(header::CONNECTION)
                .is_some_and(|v| asks_to_close(v.as_bytes())));
        let written = match reply {
            // Boxed: this write's state is larger than the connection's others.
            Reply::Routed(response) => Box::pin(write_response(&mut tcp, *response, close)).await,
            Reply::Ok { headers, content } => {
                write_ok(&mut tcp, headers, content.as_bytes(), close).await
            }
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "connection ended with an error");
            return None;
        }
        if close {
            let _ = tcp.shutdown().await;
            return None;
        }
    }
}

// Made once per request and taken apart at once; boxing the request would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Next {
    LongPoll {
        head: Parts,
        /// The whole body (empty if none).
        body: Bytes,
        /// The client asked to close the connection after this request.
        close: bool,
    },
    /// A plain read, answered (`api::reads`): the whole response.
    Answered(Vec<u8>),
    Other,
}

/// What answering plain reads directly needs.
struct Direct<'a> {
    state: &'a crate::api::SharedState,
    remote: SocketAddr,
    /// Once the node stops, reads go to hyper, which closes each connection after its
    /// answer.
    shutdown: &'a tokio_util::sync::CancellationToken,
}

/// Reads until `read` holds a whole request, then takes it off `read` if it is a long
/// poll. `None` when the connection closes, fails or times out first, or (before a whole
/// head arrived) when the node stops. As with hyper, the time limit is on the head; a
/// body takes as long as it takes.
async fn next_request(
    tcp: &mut TcpStream,
    read: &mut BytesMut,
    eof: bool,
    mut stopping: Pin<&mut WaitForCancellationFuture<'_>>,
    direct: &Direct<'_>,
) -> Option<Next> {
    let deadline = Instant::now() + HEADER_READ_TIMEOUT;
    loop {
        let head_read = match parse(read, Some(direct)) {
            Parsed::LongPoll {
                head,
                body,
                close,
                len,
            } => {
                read.advance(len);
                // Hold no more buffer while it is parked than what was pipelined behind
                // it, usually nothing.
                *read = if read.is_empty() {
                    BytesMut::new()
                } else {
                    BytesMut::from(&read[..])
                };
                return Some(Next::LongPoll { head, body, close });
            }
            Parsed::Answered { response, len } => {
                // The buffer stays: a connection that reads keeps reading.
                read.advance(len);
                return Some(Next::Answered(response));
            }
            Parsed::Other => return Some(Next::Other),
            Parsed::Incomplete { head } => head,
        };
        if eof {
            return None;
        }
        // Wait for bytes before making room for them: an idle keep-alive connection
        // spends its time here.
        tokio::select! {
            ready = tcp.readable() => ready.ok()?,
            _ = tokio::time::sleep_until(deadline), if !head_read => return None,
            _ = &mut stopping, if !head_read => return None,
        }
        read.reserve(READ_CHUNK);
        match tcp.try_read_buf(read) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

// Made once per request and taken apart at once; boxing the request would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Incomplete {
        /// The head is whole; the body is not.
        head: bool,
    },
    LongPoll {
        head: Parts,
        body: Bytes,
        close: bool,
        /// Bytes of head and body.
        len: usize,
    },
    Answered {
        response: Vec<u8>,
        /// Bytes of the request's head.
        len: usize,
    },
    Other,
}

fn parse(read: &[u8], direct: Option<&Direct<'_>>) -> Parsed {
    if read.is_empty() {
        return Parsed::Incomplete { head: false };
    }
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut lines);
    let head_len = match head.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if read.len() < MAX_HEAD => {
            return Parsed::Incomplete { head: false }
        }
        // Too large, too many headers or malformed: hyper answers it.
        _ => return Parsed::Other,
    };
    let (Some(method), Some(target), Some(1)) = (head.method, head.path, head.version) else {
        return Parsed::Other;
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if !is_long_poll(method, path) {
        return match direct {
            Some(direct) if method == "GET" => read_directly(&head, head_len, target, direct),
            _ => Parsed::Other,
        };
    }
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    let mut body_len = None;
    let mut close = false;
    for line in head.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line.name.as_bytes()),
            HeaderValue::from_bytes(line.value),
        ) else {
            return Parsed::Other;
        };
        match name {
            header::CONTENT_LENGTH => match (body_len, content_length(line.value)) {
                (None, Some(len)) => body_len = Some(len),
                // Repeated, malformed or too large.
                _ => return Parsed::Other,
            },
            header::TRANSFER_ENCODING | header::EXPECT | header::UPGRADE => return Parsed::Other,
            header::CONNECTION => close |= asks_to_close(value.as_bytes()),
            _ => {}
        }
        headers.append(name, value);
    }
    let len = head_len + body_len.unwrap_or(0);
    if read.len() < len {
        return Parsed::Incomplete { head: true };
    }
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method.as_bytes()), Uri::try_from(target))
    else {
        return Parsed::Other;
    };
    // A copy, so the read buffer can go while the request is parked.
    let body = Bytes::copy_from_slice(&read[head_len..len]);
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Parsed::LongPoll {
        head: request.into_parts().0,
        body,
        close,
        len,
    }
}

/// A plain read answered from memory (`api::reads`), or `Other`. Requests with a body,
/// an `Expect` or `Upgrade`, or that ask to close are left to hyper.
fn read_directly(
    head: &httparse::Request<'_, '_>,
    head_len: usize,
    target: &str,
    direct: &Direct<'_>,
) -> Parsed {
    // Only a target hyper would read exactly as sent: it drops a fragment and refuses
    // characters a URI may not hold, and the router sees what it made of it. Most
    // targets hold only characters every URI parser takes as they are, which is checked
    // without parsing (and allocating) for every read.
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~/?&=:+,@".contains(&b);
    let exact = target.bytes().all(plain)
        || Uri::try_from(target)
            .ok()
            .and_then(|uri| uri.path_and_query().map(|pq| pq.as_str() == target))
            .unwrap_or(false);
    if !exact || direct.shutdown.is_cancelled() {
        return Parsed::Other;
    }
    for line in head.headers.iter() {
        let name = line.name;
        let plain = if name.eq_ignore_ascii_case("content-length") {
            line.value == b"0"
        } else if name.eq_ignore_ascii_case("connection") {
            !asks_to_close(line.value)
        } else {
            !(name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("expect")
                || name.eq_ignore_ascii_case("upgrade"))
        };
        if !plain {
            return Parsed::Other;
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let request = crate::api::reads::Head {
        path,
        query,
        headers: head.headers,
        remote: direct.remote,
    };
    match date(|now| crate::api::reads::answer(direct.state, &request, now)) {
        Some(response) => Parsed::Answered {
            response,
            len: head_len,
        },
        None => Parsed::Other,
    }
}

fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value)
        .ok()?
        .parse()
        .ok()
        .filter(|&len| len <= MAX_BODY)
}

fn asks_to_close(connection: &[u8]) -> bool {
    std::str::from_utf8(connection).is_ok_and(|tokens| {
        tokens
            .split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("close"))
    })
}

/// Waits for a long poll's answer. If the client goes away first, the handler is
/// dropped (which releases its watch) and `None` returned; bytes it sends meanwhile (a
/// pipelined request) are kept in `read`, and if it then closes its side, `eof` is set
/// and they are still answered.
async fn answer(
    tcp: &TcpStream,
    read: &mut BytesMut,
    eof: &mut bool,
    reply: impl Future<Output = Reply>,
) -> Option<Reply> {
    tokio::pin!(reply);
    loop {
        tokio::select! {
            reply = &mut reply => return Some(reply),
            ready = tcp.readable(), if !*eof && read.len() < MAX_HEAD => {
                ready.ok()?;
                read.reserve(PARKED_READ_CHUNK);
                match tcp.try_read_buf(read) {
                    Ok(0) if read.is_empty() => return None,
                    Ok(0) => *eof = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
        }
    }
}

/// Writes a `200 OK` with `headers` (whole lines) and `content`, in one write.
async fn write_ok(
    tcp: &mut TcpStream,
    headers: &[u8],
    content: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(96 + headers.len() + content.len());
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    out.extend_from_slice(headers);
    if close {
        push_header(&mut out, "connection", b"close");
    }
    date(|now| crate::api::reads::finish(&mut out, content, now));
    tcp.write_all(&out).await
}

/// Writes `response` as HTTP/1.1: with its length when the body's size is known (one
/// write for head and body), chunked otherwise.
async fn write_response(
    tcp: &mut TcpStream,
    response: Response<Body>,
    close: bool,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // Framing is this writer's to say.
        if matches!(
            *name,
            header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::CONNECTION
        ) {
            continue;
        }
        push_header(&mut out, name.as_str(), value.as_bytes());
    }
    if !parts.headers.contains_key(header::DATE) {
        date(|now| push_header(&mut out, "date", now));
    }
    if close {
        push_header(&mut out, "connection", b"close");
    }
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        out.extend_from_slice(b"\r\n");
        return tcp.write_all(&out).await;
    }
    if body.size_hint().exact().is_some() {
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(io::Error::other)?;
        push_header(
            &mut out,
            "content-length",
            body.len().to_string().as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        return tcp.write_all(&out).await;
    }
    push_header(&mut out, "transfer-encoding", b"chunked");
    out.extend_from_slice(b"\r\n");
    tcp.write_all(&out).await?;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(io::Error::other)?;
        if chunk.is_empty() {
            continue;
        }
        tcp.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await?;
        tcp.write_all(&chunk).await?;
        tcp.write_all(b"\r\n").await?;
    }
    tcp.write_all(b"0\r\n\r\n").await
}

/// Calls `f` with the current time as an HTTP date. Formatted once a second per thread,
/// as hyper does: a wake-up answers thousands of watches within the same second.
fn date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static NOW: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    NOW.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = httpdate::fmt_http_date(now);
        }
        f(text.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn parsed(raw: &str) -> Parsed {
        parse(raw.as_bytes(), None)
    }

    #[test]
    fn only_the_long_poll_routes_are_taken() {
        for (method, path) in [
            ("POST", "/api/v1/watch"),
            ("POST", "/nacos/v1/cs/configs/listener"),
            ("GET", "/notifications/v2"),
            ("GET", "/apollo/prod/notifications/v2"),
        ] {
            assert!(is_long_poll(method, path), "{method} {path}");
        }
        for (method, path) in [
            ("GET", "/api/v1/watch"),
            ("GET", "/api/v1/watch/stream"),
            ("POST", "/api/v1/watch/"),
            ("GET", "/api/v1/configs/public/g/a"),
            ("GET", "/apollo//notifications/v2"),
            ("GET", "/apollo/a/b/notifications/v2"),
            ("HEAD", "/notifications/v2"),
        ] {
            assert!(!is_long_poll(method, path), "{method} {path}");
        }
    }

    #[test]
    fn a_whole_long_poll_is_taken_with_its_body() {
        let raw = "POST /api/v1/watch?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}";
        let Parsed::LongPoll {
            head,
            body,
            close,
            len,
        } = parsed(raw)
        else {
            panic!("taken");
        };
        assert_eq!(len, raw.len());
        assert!(!close);
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri, "/api/v1/watch?x=1");
        assert_eq!(head.headers["host"], "a");
        assert_eq!(&body[..], b"{}");
    }

    #[test]
    fn a_partial_request_waits_for_more() {
        assert!(matches!(parsed(""), Parsed::Incomplete { head: false }));
        assert!(matches!(
            parsed("POST /api/v1/watch HTTP/1.1\r\nHost: a\r\n"),
            Parsed::Incomplete { head: false }
        ));
        assert!(matches!(
            parsed("POST /api/v1/watch HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}"),
            Parsed::Incomplete { head: true }
        ));
    }

    #[test]
    fn anything_unusual_goes_to_hyper() {
        for raw in [
            "GET /api/v1/configs/public/g/a HTTP/1.1\r\n\r\n",
            "POST /api/v1/watch HTTP/1.0\r\n\r\n",
            "POST /api/v1/watch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /api/v1/watch HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            "POST /api/v1/watch HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
            "POST /api/v1/watch HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST /api/v1/watch HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
            "POST /api/v1/watch HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "NOT HTTP AT ALL\r\n\r\n",
        ] {
            assert!(matches!(parsed(raw), Parsed::Other), "{raw:?}");
        }
        let huge = format!(
            "POST /api/v1/watch HTTP/1.1\r\nX-Big: {}",
            "a".repeat(MAX_HEAD)
        );
        assert!(matches!(parsed(&huge), Parsed::Other));
    }

    #[test]
    fn connection_close_is_noticed() {
        let raw = "GET /notifications/v2 HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n";
        assert!(matches!(parsed(raw), Parsed::LongPoll { close: true, .. }));
    }

    /// What hyper's HTTP/1.1 server makes of `bytes` as the first request of a
    /// connection: its method, target, headers and body, or `None` if it refuses them
    /// (or they are not a whole request).
    async fn hyper_reads(bytes: Vec<u8>) -> Option<(Method, String, HeaderMap, Bytes)> {
        use hyper_util::rt::TokioIo;
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&bytes).await.unwrap();
        client.shutdown().await.unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let service = hyper::service::service_fn({
            let seen = seen.clone();
            move |request: Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(Body::new(body), usize::MAX).await;
                    if let Ok(body) = body {
                        let target = parts.uri.to_string();
                        *seen.lock().unwrap() = Some((parts.method, target, parts.headers, body));
                    }
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }
            }
        });
        // The client has sent everything and closed its side, as a test can: hyper must
        // still answer what it read.
        let connection = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), service);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), connection).await;
        let taken = seen.lock().unwrap().take();
        taken
    }

    /// Requests near the long-poll routes, most well formed, some not: the methods,
    /// paths, versions, line ends and headers the head reader decides on.
    fn request_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        // Mostly a long poll with its own method, so that many cases are taken.
        let route = prop_oneof![
            4 => prop::sample::select(vec![
                ("POST", "/api/v1/watch"),
                ("POST", "/api/v1/watch?timeout_ms=5"),
                ("POST", "/nacos/v1/cs/configs/listener"),
                ("GET", "/notifications/v2?appId=a&cluster=default"),
                ("GET", "/apollo/prod/notifications/v2"),
            ]),
            1 => prop::sample::select(vec![
                ("GET", "/api/v1/watch"),
                ("HEAD", "/notifications/v2"),
                ("post", "/api/v1/watch"),
                ("PUT", "/api/v1/configs/public/g/d"),
                ("POST", "http://host/api/v1/watch"),
                ("POST", "/api/v1/watch#frag"),
                ("POST", "/api/v1/wa tch"),
            ]),
        ];
        let version = prop_oneof![
            6 => Just("HTTP/1.1"),
            1 => prop::sample::select(vec!["HTTP/1.0", "HTTP/2.0", "http/1.1"]),
        ];
        let eol = prop_oneof![4 => Just("\r\n"), 1 => Just("\n")];
        let header = prop_oneof![
            5 => prop::sample::select(vec![
                "Host: cairn",
                "Accept: */*",
                "Content-Length: 2",
                "Content-Length: 0",
                "Connection: close",
                "Connection: keep-alive",
                "X-Cairn-Labels: zone=a",
            ]),
            1 => prop::sample::select(vec![
                "Content-Length: +2",
                "Content-Length: 2, 2",
                "Content-Length: 99999999999999999999",
                "Transfer-Encoding: chunked",
                "Expect: 100-continue",
                "Upgrade: h2c",
                "X Bad: name",
                "Bad-Value: a\u{7f}b",
                "Obs-Fold: a\r\n b",
                ": empty",
                "Trailing-Space : x",
            ]),
        ];
        let body = prop::collection::vec(any::<u8>(), 0..=2);
        (
            route,
            version,
            eol,
            prop::collection::vec(header, 0..5),
            body,
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..=1),
        )
            .prop_map(|((method, path), version, eol, headers, body, flips)| {
                let mut raw = format!("{method} {path} {version}{eol}");
                for h in headers {
                    raw.push_str(h);
                    raw.push_str(eol);
                }
                raw.push_str(eol);
                let mut bytes = raw.into_bytes();
                bytes.extend(body);
                // A byte or two replaced anywhere: what no template above thought of.
                for (at, byte) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Whatever the bytes, and however they arrive: the head reader takes a request
        /// only when hyper would read the same request from them (method, target,
        /// headers, body), and a prefix of a request it takes is never read as anything
        /// but "more to come".
        #[test]
        fn the_head_reader_agrees_with_hyper(
            bytes in request_bytes(),
            split in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            if let Parsed::LongPoll { head: parts, body, len, .. } = parse(&bytes, None) {
                let hyper = runtime.block_on(hyper_reads(bytes[..len].to_vec()));
                let (method, target, headers, hyper_body) =
                    hyper.unwrap_or_else(|| panic!("taken, but hyper refuses {:?}", String::from_utf8_lossy(&bytes)));
                proptest::prop_assert_eq!(parts.method, method);
                proptest::prop_assert_eq!(parts.uri.to_string(), target);
                proptest::prop_assert_eq!(parts.headers, headers);
                proptest::prop_assert_eq!(body, hyper_body);
                let cut = split.index(len);
                proptest::prop_assert!(
                    matches!(parse(&bytes[..cut], None), Parsed::Incomplete { .. }),
                    "a prefix of {} bytes was not read as incomplete", cut
                );
            }
        }
    }
}
