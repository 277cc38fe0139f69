//! Long polls of keys (the native watch, Nacos's listener) answered by the connection
//! layer without the router. One publish wakes every watch of its key at once, and the
//! last of them waits for all the others' answers, so what an answer costs after the
//! wake is what the person publishing feels: here it is the service's wait and the
//! answer's bytes, without the router's layers, their futures and a header map around
//! them.
//!
//! Only the common shape is taken: a token that verifies (a bearer header, or Nacos's
//! `accessToken`), a body and parameters the router reads alike, no client-identity
//! headers of Cairn's (nor a forwarded address the node trusts), keys rather than
//! patterns. Anything else, including every request the router would refuse before
//! the wait, goes through the router as before. Both paths read the request, wait and
//! write the answer's content with the same functions (`nacos::v1::Listening`,
//! `watch::keys_watch`, `watch::answer_text`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::ClientInfo;

use super::nacos::v1::Listening;
use super::nacos::{token, NacosError, Params, NO_CACHE, PLAIN_TEXT};
use super::wire::WatchRequest;
use super::{long_poll_paths, watch, ApiError, SharedState, Source};
use crate::listeners::Protocol;
use crate::serve::push_header;

/// A long poll's answer.
pub enum Answer {
    /// `200 OK` with these header lines (each ending in CRLF) and content; the
    /// connection layer adds the length and the date.
    Ok {
        headers: &'static [u8],
        content: String,
    },
    /// Any other answer, as the router gives it. Boxed: an answer is moved through the
    /// frame of a connection's task, whose memory a woken watch touches as little as
    /// it can.
    Routed(Box<Response>),
}

/// The answer to the long poll `head` (with its whole `body`) from `remote`, once it is
/// due, if it is one this module takes; `None` sends it through the router. What the
/// returned wait holds is its own: the request can go while it waits.
pub fn answer<'a>(
    state: &'a SharedState,
    head: &Parts,
    body: &[u8],
    remote: SocketAddr,
) -> Option<impl Future<Output = Answer> + 'a> {
    use futures::future::Either;
    if head.method != Method::POST
        || body.len() > super::body_limit(&state.settings)
        || super::reads::states_identity(state, |name| head.headers.contains_key(name))
    {
        return None;
    }
    match head.uri.path() {
        long_poll_paths::NACOS_LISTENER => nacos(state, head, body, remote).map(Either::Left),
        long_poll_paths::WATCH => native(state, head, body, remote).map(Either::Right),
        _ => None,
    }
}

/// The native watch of keys.
fn native<'a>(
    state: &'a SharedState,
    head: &Parts,
    body: &[u8],
    remote: SocketAddr,
) -> Option<impl Future<Output = Answer> + 'a> {
    let json = head
        .headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .split(';')
        .next()?
        .trim()
        .eq_ignore_ascii_case("application/json");
    if !json || head.uri.query().is_some() {
        return None;
    }
    let caller = state
        .auth
        .verify(super::bearer(&head.headers)?.trim())
        .ok()?;
    let request: WatchRequest = super::json_body(body)?;
    if !request.patterns.is_empty() {
        return None;
    }
    let (held, timeout) = watch::keys_watch(state, request).ok()?;
    let client = ClientInfo::new(Some(remote.ip()), Vec::new());
    let origin = Source(Some(remote.ip())).via("native");
    Some(async move {
        let started = Instant::now();
        let waited = state
            .service
            .wait_for_changes(&caller, Protocol::Native, &held, &client, timeout, origin)
            .await;
        let answer = match waited {
            Ok(stale) => match watch::answer_text(&stale) {
                Some(content) => Answer::Ok {
                    headers: b"content-type: application/json\r\n",
                    content,
                },
                None => Answer::Routed(Box::new(watch::answer(&stale))),
            },
            Err(e) => Answer::Routed(Box::new(ApiError::from(e).into_response())),
        };
        recorded(long_poll_paths::WATCH, answer, started)
    })
}

/// Nacos's listener.
fn nacos<'a>(
    state: &'a SharedState,
    head: &Parts,
    body: &[u8],
    remote: SocketAddr,
) -> Option<impl Future<Output = Answer> + 'a> {
    let params = Params::of(&head.uri, &head.headers, Some(body)).ok()?;
    let caller = state
        .auth
        .verify(token(&head.headers, &params)?.trim())
        .ok()?;
    let listening = Listening::read(state, &head.headers, &params).ok()?;
    let client = ClientInfo::new(Some(remote.ip()), Vec::new());
    let origin = Source(Some(remote.ip())).via("nacos");
    Some(async move {
        let started = Instant::now();
        let answer = match listening.wait(state, &caller, &client, origin).await {
            Ok(stale) => match listening.answer(&stale) {
                None => Answer::Ok {
                    headers: b"",
                    content: String::new(),
                },
                Some(content) => Answer::Ok {
                    headers: changed_headers(),
                    content,
                },
            },
            Err(e) => Answer::Routed(Box::new(NacosError::from(e).into_response())),
        };
        recorded(long_poll_paths::NACOS_LISTENER, answer, started)
    })
}

/// `answer`, counted under `route`'s metrics as the router counts its requests.
fn recorded(route: &'static str, answer: Answer, started: Instant) -> Answer {
    let status = match &answer {
        Answer::Ok { .. } => StatusCode::OK,
        Answer::Routed(response) => response.status(),
    };
    crate::metrics::record(route, &Method::POST, status.as_u16(), started);
    answer
}

/// The header lines of a listener's answer naming changes, written once.
fn changed_headers() -> &'static [u8] {
    static LINES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let mut lines = Vec::new();
        push_header(&mut lines, "content-type", PLAIN_TEXT.as_bytes());
        for (name, value) in NO_CACHE {
            push_header(&mut lines, name.as_str(), value.as_bytes());
        }
        lines
    })
}
