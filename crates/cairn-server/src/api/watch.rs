//! Watching on the native API: a long poll over many keys, and a server-sent-events
//! stream. Both park in the shared hub, so any surface's write wakes them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::{ClientInfo, ConfigKey};
use futures::{Stream, StreamExt};

use super::wire::{ChangedKey, ErrorBody, StreamQuery, WatchRequest, WatchResponse};
use super::{ApiError, ApiJson, ApiQuery, Identity, SharedState};
use crate::auth::Caller;
use crate::cache::View;
use crate::listeners::{Listener, Protocol};
use crate::service::Watch;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(super::long_poll_paths::WATCH, post(watch))
        .route("/api/v1/watch/stream", get(stream))
}

/// A watched key's state as the watch answers it.
fn state_of(key: &ConfigKey, view: Option<View>) -> ChangedKey {
    ChangedKey {
        namespace: key.namespace.to_string(),
        group: key.group.to_string(),
        data_id: key.data_id.to_string(),
        md5: view
            .as_ref()
            .map(|v| v.md5().to_owned())
            .unwrap_or_default(),
        revision: view.as_ref().map(|v| v.revision().get()),
        exists: view.is_some(),
    }
}

fn too_many_keys(count: usize, max: usize) -> ApiError {
    ApiError::bad_request(
        "too_many_keys",
        format!("{count} keys in one watch; the limit is {max}; split them over several requests"),
    )
}

/// Long poll: answers at once if any key's md5 differs from the client's, else when
/// one changes, else after the timeout with an empty `changed` list.
#[utoipa::path(post, path = "/api/v1/watch", tag = "watch", request_body = WatchRequest,
    responses((status = 200, body = WatchResponse), (status = 400, body = ErrorBody),
        (status = 404, description = "a pattern's namespace does not exist", body = ErrorBody)))]
pub async fn watch(
    State(state): State<SharedState>,
    caller: Caller,
    source: super::Source,
    Identity(client): Identity,
    ApiJson(req): ApiJson<WatchRequest>,
) -> Result<Response, ApiError> {
    if !req.patterns.is_empty() {
        if !req.keys.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_argument",
                "a watch gives keys or patterns, not both; send two watches",
            ));
        }
        let timeout = timeout_of(&state, &req);
        return watch_patterns(&state, &caller, &client, req, timeout).await;
    }
    let (held, timeout) = keys_watch(&state, req)?;
    let stale = state
        .service
        .wait_for_changes(
            &caller,
            Protocol::Native,
            &held,
            &client,
            timeout,
            source.via("native"),
        )
        .await?;
    Ok(answer(&stale))
}

/// How long a watch asking `req` is held.
fn timeout_of(state: &SharedState, req: &WatchRequest) -> Duration {
    req.timeout_ms
        .map_or(
            state.settings.watch_default_timeout_ms.get(),
            Duration::from_millis,
        )
        .min(state.settings.watch_max_timeout_ms.get())
}

/// A watch of keys (not patterns), checked: each key with the md5 its client holds,
/// and how long the watch is held.
pub(crate) fn keys_watch(
    state: &SharedState,
    req: WatchRequest,
) -> Result<(Vec<(ConfigKey, String)>, Duration), ApiError> {
    if req.keys.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_argument",
            "a watch needs at least one key or pattern",
        ));
    }
    let max = state.settings.watch_max_keys;
    if req.keys.len() > max {
        return Err(too_many_keys(req.keys.len(), max));
    }
    let timeout = timeout_of(state, &req);
    let held = req
        .keys
        .into_iter()
        .map(|k| {
            let key = ConfigKey::parse(&k.namespace, &k.group, &k.data_id)?;
            Ok((state.service.intern(key), k.md5))
        })
        .collect::<Result<_, ApiError>>()?;
    Ok((held, timeout))
}

/// Most patterns in one watch: each is matched against every change in its namespace.
pub const MAX_PATTERNS: usize = 32;

/// A part of a pattern: `*` wildcards among a name's characters; empty is `*`.
fn wildcard(what: &str, text: Option<&str>) -> Result<cairn_core::pattern::Wildcard, ApiError> {
    let text = text.filter(|t| !t.is_empty()).unwrap_or("*");
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '*');
    if text.len() > 256 || !text.chars().all(name_char) {
        return Err(ApiError::bad_request(
            "invalid_argument",
            format!("{what} pattern {text:?}: names hold letters, digits, _ . : - and * as the wildcard"),
        ));
    }
    Ok(cairn_core::pattern::Wildcard::new(text))
}

/// The patterns of a watch, checked: at most [`MAX_PATTERNS`], each a namespace with a
/// group and data-id wildcard.
fn parse_patterns<'a>(
    given: impl ExactSizeIterator<Item = (&'a str, Option<&'a str>, Option<&'a str>)>,
) -> Result<Vec<crate::hub::Pattern>, ApiError> {
    if given.len() > MAX_PATTERNS {
        return Err(ApiError::bad_request(
            "too_many_patterns",
            format!(
                "{} patterns in one watch; the limit is {MAX_PATTERNS}; split them over several watches",
                given.len()
            ),
        ));
    }
    given
        .map(|(namespace, group, data_id)| {
            Ok(crate::hub::Pattern {
                namespace: cairn_core::Namespace::parse(namespace)?,
                group: wildcard("group", group)?,
                data_id: wildcard("data id", data_id)?,
            })
        })
        .collect()
}

async fn watch_patterns(
    state: &SharedState,
    caller: &Caller,
    client: &ClientInfo,
    req: WatchRequest,
    timeout: Duration,
) -> Result<Response, ApiError> {
    let patterns = parse_patterns(req.patterns.iter().map(|p| {
        (
            p.namespace.as_str(),
            p.group.as_deref(),
            p.data_id.as_deref(),
        )
    }))?;
    let answer = state
        .service
        .wait_for_pattern(caller, patterns, req.since.max(0), client, timeout)
        .await?;
    Ok(Json(WatchResponse {
        seq: Some(answer.seq),
        complete: Some(answer.complete),
        ..response_of(&answer.changed)
    })
    .into_response())
}

/// The watch's answer as serde writes it.
fn response_of(stale: &[(ConfigKey, Option<View>)]) -> WatchResponse {
    WatchResponse {
        changed: stale
            .iter()
            .map(|(key, view)| state_of(key, view.clone()))
            .collect(),
        seq: None,
        complete: None,
    }
}

/// The watch's answer, a [`WatchResponse`] in JSON. One change can wake thousands of
/// watches at once, so the answer is written directly: a `ConfigKey`'s names are
/// `[A-Za-z0-9_.:-]` by construction and md5s are hex, so nothing needs escaping, and
/// nothing is allocated per key. Should an md5 ever need escaping, serde writes it.
pub(crate) fn answer(stale: &[(ConfigKey, Option<View>)]) -> Response {
    match answer_text(stale) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response(),
        None => Json(response_of(stale)).into_response(),
    }
}

/// A watch's answer as JSON text, written directly; `None` when an md5 would need
/// escaping (never one this node computed), for serde to write.
pub(crate) fn answer_text(stale: &[(ConfigKey, Option<View>)]) -> Option<String> {
    let plain = |s: &str| !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    if !stale
        .iter()
        .all(|(_, view)| view.as_ref().is_none_or(|v| plain(v.md5())))
    {
        return None;
    }
    let mut out = String::with_capacity(16 + stale.len() * 160);
    out.push_str("{\"changed\":[");
    for (i, (key, view)) in stale.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (md5, revision) = match view {
            Some(v) => (v.md5(), Some(v.revision().get())),
            None => ("", None),
        };
        for (name, value) in [
            ("{\"namespace\":\"", key.namespace.as_str()),
            ("\",\"group\":\"", key.group.as_str()),
            ("\",\"data_id\":\"", key.data_id.as_str()),
            ("\",\"md5\":\"", md5),
        ] {
            out.push_str(name);
            out.push_str(value);
        }
        out.push_str("\",\"revision\":");
        match revision {
            Some(revision) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{revision}");
            }
            None => out.push_str("null"),
        }
        out.push_str(if view.is_some() {
            ",\"exists\":true}"
        } else {
            ",\"exists\":false}"
        });
    }
    out.push_str("]}");
    Some(out)
}

struct StreamState {
    state: SharedState,
    client: ClientInfo,
    registration: Watch,
    /// The md5 last sent per key; `None` before the first event.
    sent: Vec<Option<String>>,
    pending: VecDeque<ChangedKey>,
}

/// The longest a stream may be asked to last.
const MAX_STREAM_MS: u64 = 86_400_000;

/// Server-sent events: one `change` event per key at once with its current state, then
/// one each time a key's content changes. Ends when the server shuts down, or after
/// `timeout_ms`.
#[utoipa::path(get, path = "/api/v1/watch/stream", tag = "watch", params(StreamQuery),
    responses((status = 200, description = "`change` events, each a ChangedKey as JSON", body = String,
            content_type = "text/event-stream"),
        (status = 400, body = ErrorBody),
        (status = 404, description = "a pattern's namespace does not exist", body = ErrorBody)))]
pub async fn stream(
    State(state): State<SharedState>,
    caller: Caller,
    source: super::Source,
    Identity(client): Identity,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let lasts = match q.timeout_ms {
        Some(ms) if ms == 0 || ms > MAX_STREAM_MS => {
            return Err(ApiError::bad_request(
                "invalid_argument",
                format!("timeout_ms must be between 1 and {MAX_STREAM_MS} (a day)"),
            ))
        }
        Some(ms) => Some(Duration::from_millis(ms)),
        None => None,
    };
    let events = if q.patterns.is_empty() {
        key_stream(state, caller, source, client, &q.keys)?.boxed()
    } else if q.keys.is_empty() {
        pattern_stream(state, caller, client, &q.patterns)
            .await?
            .boxed()
    } else {
        return Err(ApiError::bad_request(
            "invalid_argument",
            "a stream gives keys or patterns, not both; open two streams",
        ));
    };
    let events = match lasts {
        Some(lasts) => events.take_until(tokio::time::sleep(lasts)).boxed(),
        None => events,
    };
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The events of a stream of keys.
fn key_stream(
    state: SharedState,
    caller: Caller,
    source: super::Source,
    client: ClientInfo,
    keys: &str,
) -> Result<impl Stream<Item = Result<Event, Infallible>>, ApiError> {
    let keys = keys
        .split(',')
        .filter(|k| !k.is_empty())
        .map(ConfigKey::parse_path)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_argument",
            "a stream needs at least one key",
        ));
    }
    if keys.len() > state.settings.watch_max_keys {
        return Err(too_many_keys(keys.len(), state.settings.watch_max_keys));
    }
    state
        .service
        .may_read_all(&caller, keys.iter(), source.via("native"))?;
    let listed = keys.into_iter().map(|k| (k, None)).collect();
    let registration = state.service.register(
        Listener::new(Protocol::NativeStream, client.clone(), listed).by(&caller.username),
    );
    let initial = StreamState {
        sent: vec![None; registration.keys().len()],
        state,
        client,
        registration,
        pending: VecDeque::new(),
    };
    Ok(futures::stream::unfold(initial, |mut s| async move {
        loop {
            if let Some(change) = s.pending.pop_front() {
                return Some((Ok(change_event(&change)), s));
            }
            for (i, key) in s.registration.keys().iter().enumerate() {
                let view = s.state.service.view(key, &s.client);
                let md5 = view.as_ref().map_or("", |v| v.md5());
                if s.sent[i].as_deref() != Some(md5) {
                    s.sent[i] = Some(md5.to_owned());
                    s.pending.push_back(state_of(key, view));
                }
            }
            if !s.pending.is_empty() {
                continue;
            }
            // The hub is closed at shutdown, and the watch revoked when its user loses a
            // right: either wakes the stream, which ends.
            if s.registration.closed() {
                return None;
            }
            s.registration.changed().await;
        }
    }))
}

fn change_event(change: &ChangedKey) -> Event {
    Event::default()
        .event("change")
        .json_data(change)
        .unwrap_or_else(|_| Event::default().comment("unserializable"))
}

/// How long each wait of a pattern stream is held before it waits again: bounds how
/// long a revoked right goes unnoticed.
const PATTERN_STREAM_HOLD: Duration = Duration::from_secs(25);

struct PatternStreamState {
    state: SharedState,
    caller: Caller,
    client: ClientInfo,
    patterns: Vec<crate::hub::Pattern>,
    /// The applied sequence the stream has caught up to.
    since: i64,
    /// The md5 last sent per existing matching config.
    sent: std::collections::HashMap<ConfigKey, String>,
    pending: VecDeque<ChangedKey>,
    ended: bool,
}

impl PatternStreamState {
    /// Queues what differs from what was sent; a `complete` answer also ends the
    /// configs it no longer lists.
    fn take(&mut self, answer: crate::service::PatternAnswer) {
        let mut listed = std::collections::HashSet::new();
        for (key, view) in answer.changed {
            let md5 = view.as_ref().map(|v| v.md5().to_owned());
            if answer.complete {
                listed.insert(key.clone());
            }
            let before = self.sent.get(&key);
            if before == md5.as_ref() {
                continue;
            }
            self.pending.push_back(state_of(&key, view));
            match md5 {
                Some(md5) => self.sent.insert(key, md5),
                None => self.sent.remove(&key),
            };
        }
        if answer.complete {
            let gone: Vec<ConfigKey> = self
                .sent
                .keys()
                .filter(|k| !listed.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                self.sent.remove(&key);
                self.pending.push_back(state_of(&key, None));
            }
        }
        self.since = answer.seq;
    }
}

/// The events of a stream of patterns: every matching config's state at once, then one
/// event per change to a matching config (created, changed or deleted). A right lost
/// meanwhile ends it with an `error` event.
async fn pattern_stream(
    state: SharedState,
    caller: Caller,
    client: ClientInfo,
    patterns: &str,
) -> Result<impl Stream<Item = Result<Event, Infallible>>, ApiError> {
    let given: Vec<(&str, Option<&str>, Option<&str>)> = patterns
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut parts = p.splitn(3, '/');
            let namespace = parts.next().unwrap_or_default();
            (namespace, parts.next(), parts.next())
        })
        .collect();
    let patterns = parse_patterns(given.into_iter())?;
    // The first answer, at once: refusals become the request's status, not an event.
    let first = state
        .service
        .wait_for_pattern(&caller, patterns.clone(), 0, &client, Duration::ZERO)
        .await?;
    let mut initial = PatternStreamState {
        state,
        caller,
        client,
        patterns,
        since: 0,
        sent: std::collections::HashMap::new(),
        pending: VecDeque::new(),
        ended: false,
    };
    initial.take(first);
    Ok(futures::stream::unfold(initial, |mut s| async move {
        loop {
            if let Some(change) = s.pending.pop_front() {
                return Some((Ok(change_event(&change)), s));
            }
            if s.ended || s.state.service.shutting_down() {
                return None;
            }
            let answer = s
                .state
                .service
                .wait_for_pattern(
                    &s.caller,
                    s.patterns.clone(),
                    s.since,
                    &s.client,
                    PATTERN_STREAM_HOLD,
                )
                .await;
            match answer {
                Ok(answer) => s.take(answer),
                Err(e) => {
                    s.ended = true;
                    let error = ApiError::from(e);
                    let event = Event::default()
                        .event("error")
                        .json_data(ErrorBody {
                            code: error.code.to_owned(),
                            message: error.message,
                        })
                        .unwrap_or_else(|_| Event::default().comment("unserializable"));
                    return Some((Ok(event), s));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_store::ConfigRecord;

    use super::*;
    use crate::cache::test_record;

    fn view(key: &ConfigKey, revision: i64, md5: &str) -> View {
        View {
            config: Arc::new(ConfigRecord {
                md5: md5.into(),
                ..test_record(key.clone(), revision, "x")
            }),
            gray: None,
        }
    }

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).expect("the answer is JSON")
    }

    /// What serde writes for the same answer: the written answer must say exactly that.
    fn by_serde(stale: &[(ConfigKey, Option<View>)]) -> serde_json::Value {
        serde_json::to_value(response_of(stale)).unwrap()
    }

    #[tokio::test]
    async fn the_written_answer_is_what_serde_would_write() {
        let a = ConfigKey::parse("public", "DEFAULT_GROUP", "app.yaml").unwrap();
        let b = ConfigKey::parse("team-1", "g:x", "a_b-c.d").unwrap();
        let md5 = cairn_core::md5::md5_hex("x");
        for stale in [
            vec![],
            vec![(a.clone(), Some(view(&a, 42, &md5)))],
            vec![(a.clone(), None)],
            vec![(a.clone(), Some(view(&a, 7, &md5))), (b.clone(), None)],
        ] {
            let response = answer(&stale);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(body(response).await, by_serde(&stale));
        }
    }

    #[tokio::test]
    async fn a_string_that_needs_escaping_goes_through_serde() {
        let a = ConfigKey::parse("public", "g", "d").unwrap();
        let stale = vec![(a.clone(), Some(view(&a, 1, "q\"uote\\")))];
        let written = body(answer(&stale)).await;
        assert_eq!(written, by_serde(&stale));
        assert_eq!(written["changed"][0]["md5"], "q\"uote\\");
    }
}
