//! Plain config reads answered by the connection layer without the router: a read is
//! the request a config server serves most, and a cached one costs less to answer than
//! to route (hyper's dispatch, the router, the extractors and their boxed futures).
//!
//! Only the common shape is taken here: a native `GET /api/v1/configs/{ns}/{group}/{id}`
//! with no query, a Nacos `GET /nacos/v1/cs/configs` naming `dataId`, `group`, `tenant`
//! and `accessToken` at most, or an Apollo `GET /configs/…` or `/configfiles/json/…`
//! with the parameters those routes read; a caller allowed the read (a valid bearer
//! token, checked as the router checks it, or Apollo's access key); no gray-release
//! identity headers of Cairn's; the config in the cache. Anything else, including every
//! refusal, every miss and every `304`, is left to the router, which answers it (and
//! audits it) as before. Both paths build their answers with the same functions
//! (`native::read_headers`, `nacos::v1::read_headers`, `apollo::read_directly`) and
//! count under the same metrics.

use std::net::SocketAddr;
use std::time::Instant;

use axum::http::{header, HeaderName, HeaderValue, Method};
use cairn_core::{ClientInfo, ConfigKey};

use super::SharedState;
use crate::auth::Caller;
use crate::serve::push_header;

/// The route templates the router knows these reads by, for the request metrics.
const NATIVE_ROUTE: &str = "/api/v1/configs/{namespace}/{group}/{data_id}";
const NACOS_ROUTE: &str = "/nacos/v1/cs/configs";

/// A `GET` request's head, as the connection layer parsed it.
pub struct Head<'a> {
    /// The target's path, before any `?`.
    pub path: &'a str,
    /// The target's query, after the `?`.
    pub query: Option<&'a str>,
    pub headers: &'a [httparse::Header<'a>],
    pub remote: SocketAddr,
}

impl Head<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// The whole response to `head` (status line, headers and content) with `date` as its
/// `Date`, if it is a plain read this node can answer from memory; `None` sends it
/// through the router.
pub fn answer(state: &SharedState, head: &Head<'_>, date: &[u8]) -> Option<Vec<u8>> {
    let started = Instant::now();
    let (route, response) = if let Some(rest) = head.path.strip_prefix("/api/v1/configs/") {
        (NATIVE_ROUTE, native(state, head, rest, date)?)
    } else if head.path == NACOS_ROUTE {
        (NACOS_ROUTE, nacos(state, head, date)?)
    } else if head.path.starts_with("/configs/") || head.path.starts_with("/configfiles/json/") {
        apollo(state, head, date)?
    } else {
        return None;
    };
    crate::metrics::record(route, &Method::GET, 200, started);
    Some(response)
}

fn native(state: &SharedState, head: &Head<'_>, rest: &str, date: &[u8]) -> Option<Vec<u8>> {
    // Escapes, view=json and conditional reads take the router's path.
    if head.query.is_some() || rest.contains('%') || head.header("if-none-match").is_some() {
        return None;
    }
    let mut parts = rest.split('/');
    let (namespace, group, data_id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let key = ConfigKey::parse(namespace, group, data_id).ok()?;
    let token = bearer(head)?;
    let view = readable(state, head, &state.auth.verify(token.trim()).ok()?, &key)?;
    let etag = format!("\"{}\"", view.md5());
    Some(respond(&view, date, |put| {
        put(
            header::CONTENT_TYPE,
            HeaderValue::from_static(view.format().content_type()),
        );
        super::native::read_headers(&view, &etag, put);
    }))
}

fn nacos(state: &SharedState, head: &Head<'_>, date: &[u8]) -> Option<Vec<u8>> {
    let (mut data_id, mut group, mut tenant, mut token) = (None, None, None, None);
    for pair in head.query?.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "dataId" => &mut data_id,
            "group" => &mut group,
            "tenant" => &mut tenant,
            "accessToken" => &mut token,
            // search, export, beta, tag, username and password, or an escaped name.
            _ => return None,
        };
        let value = super::decode_component(value.as_bytes())?;
        // Blank values count as absent, and the first of a repeated name wins, as in
        // `nacos::Params`.
        if slot.is_none() && !value.trim().is_empty() {
            *slot = Some(value);
        }
    }
    // A bearer header wins over the parameter, as in `nacos::authenticate`.
    let token = match bearer(head) {
        Some(bearer) => std::borrow::Cow::Borrowed(bearer),
        None => token?,
    };
    let key = super::nacos::key_of(&data_id?, &group?, tenant.as_deref()).ok()?;
    let view = readable(state, head, &state.auth.verify(token.trim()).ok()?, &key)?;
    Some(respond(&view, date, |put| {
        super::nacos::v1::read_headers(&view, put)
    }))
}

fn apollo(state: &SharedState, head: &Head<'_>, date: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    let client = identity(state, head)?;
    // Apollo reads the signature's and the client's headers by name.
    let mut headers = axum::http::HeaderMap::with_capacity(head.headers.len());
    for line in head.headers {
        headers.append(
            HeaderName::from_bytes(line.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(line.value).ok()?,
        );
    }
    let (route, content_type, body) =
        super::apollo::read_directly(state, head.path, head.query, &headers, client)?;
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    push_header(&mut out, "content-type", content_type.as_bytes());
    finish(&mut out, &body, date);
    Some((route, out))
}

/// The token of an `Authorization: Bearer` header.
fn bearer<'a>(head: &Head<'a>) -> Option<&'a str> {
    let value = head
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))?
        .value;
    let value = std::str::from_utf8(value).ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
}

/// The client as gray rules see it: the connection's address. Requests that say who
/// the client is (Cairn's gray-release headers, a forwarded address the node trusts)
/// take the router's path, which reads those.
fn identity(state: &SharedState, head: &Head<'_>) -> Option<ClientInfo> {
    let stated = states_identity(state, |name| head.header(name).is_some());
    (!stated).then(|| ClientInfo::new(Some(head.remote.ip()), Vec::new()))
}

/// Whether a request with the headers `has` names says who its client is (Cairn's
/// gray-release headers, or a forwarded address the node trusts): the router's path
/// reads those.
pub(crate) fn states_identity(state: &SharedState, has: impl Fn(&str) -> bool) -> bool {
    has(super::CLIENT_IP_HEADER)
        || has(super::LABELS_HEADER)
        || (state.settings.trust_forwarded_for && has("x-forwarded-for"))
}

/// What `caller` sees of `key`, if they may read it and it is cached.
fn readable(
    state: &SharedState,
    head: &Head<'_>,
    caller: &Caller,
    key: &ConfigKey,
) -> Option<crate::cache::View> {
    let client = identity(state, head)?;
    if !state.service.reads(caller, key) {
        return None;
    }
    state.service.view(key, &client)
}

/// A `200` with `view`'s content and the headers `headers` puts.
fn respond(
    view: &crate::cache::View,
    date: &[u8],
    headers: impl FnOnce(&mut dyn FnMut(HeaderName, HeaderValue)),
) -> Vec<u8> {
    let content = view.content().as_bytes();
    let mut out = Vec::with_capacity(320 + content.len());
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    headers(&mut |name, value| push_header(&mut out, name.as_str(), value.as_bytes()));
    finish(&mut out, content, date);
    out
}

/// Ends a response's head with its length and date, then adds the content.
pub(crate) fn finish(out: &mut Vec<u8>, content: &[u8], date: &[u8]) {
    out.extend_from_slice(b"content-length: ");
    push_decimal(out, content.len());
    out.extend_from_slice(b"\r\n");
    push_header(out, "date", date);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(content);
}

/// Writes `n` in decimal, in place: thousands of answers go out at once after a
/// publish, and the formatting machinery costs more than the digits.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn lengths_are_written_in_decimal() {
        for n in [0, 7, 10, 1234, usize::MAX] {
            let mut out = Vec::new();
            super::push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
