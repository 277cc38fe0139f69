//! Nacos listeners answered by the connection layer without the router. One publish
//! wakes every listener of its key at once, and the last of them waits for all the
//! others' answers, so what an answer costs after the wake is what the person
//! publishing feels: here it is the service's wait and the answer's bytes, without the
//! router's layers, their futures and a header map around them.
//!
//! Only the common shape is taken: a token (a bearer header or `accessToken`) that
//! verifies, parameters the router reads alike, no client-identity headers of Cairn's
//! (nor a forwarded address the node trusts). Anything else, including every request
//! the router would refuse before the wait, goes through the router as before. Both
//! paths read the request with the same `Listening`, wait with it and take its answer.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::ClientInfo;

use super::nacos::v1::Listening;
use super::nacos::{token, NacosError, Params, NO_CACHE, PLAIN_TEXT};
use super::{long_poll_paths, SharedState, Source};
use crate::serve::push_header;

/// A long poll's answer.
pub enum Answer {
    /// `200 OK` with these header lines (each ending in CRLF) and content; the
    /// connection layer adds the length and the date.
    Ok { headers: Vec<u8>, content: String },
    /// Any other answer, as the router gives it.
    Routed(Response),
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
    if head.method != Method::POST
        || head.uri.path() != long_poll_paths::NACOS_LISTENER
        || body.len() > super::body_limit(&state.settings)
        || super::reads::states_identity(state, |name| head.headers.contains_key(name))
    {
        return None;
    }
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
                    headers: Vec::new(),
                    content: String::new(),
                },
                Some(content) => {
                    let mut headers = Vec::with_capacity(128);
                    push_header(&mut headers, "content-type", PLAIN_TEXT.as_bytes());
                    for (name, value) in NO_CACHE {
                        push_header(&mut headers, name.as_str(), value.as_bytes());
                    }
                    Answer::Ok { headers, content }
                }
            },
            Err(e) => Answer::Routed(NacosError::from(e).into_response()),
        };
        let status = match &answer {
            Answer::Ok { .. } => StatusCode::OK,
            Answer::Routed(response) => response.status(),
        };
        crate::metrics::record(
            long_poll_paths::NACOS_LISTENER,
            &Method::POST,
            status.as_u16(),
            started,
        );
        answer
    })
}
