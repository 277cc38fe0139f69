//! Watching on the native API: a long poll over many keys, and a server-sent-events
//! stream. Both park in the shared hub, so any surface's write wakes them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::{ClientInfo, ConfigKey};
use futures::Stream;

use super::wire::{ChangedKey, ErrorBody, StreamQuery, WatchRequest, WatchResponse};
use super::{ApiError, ApiJson, ApiQuery, Identity, SharedState};
use crate::auth::Caller;
use crate::cache::{Cache, View};
use crate::hub::Registration;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/watch", post(watch))
        .route("/api/v1/watch/stream", get(stream))
}

/// What `client` would read of `key` now.
fn current_state(cache: &Cache, key: &ConfigKey, client: &ClientInfo) -> ChangedKey {
    state_of(key, cache.view(key, client))
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
        revision: view.as_ref().map(|v| v.revision()),
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
    responses((status = 200, body = WatchResponse), (status = 400, body = ErrorBody)))]
pub async fn watch(
    State(state): State<SharedState>,
    _: Caller,
    Identity(client): Identity,
    ApiJson(req): ApiJson<WatchRequest>,
) -> Result<Json<WatchResponse>, ApiError> {
    let max = state.settings.watch_max_keys;
    if req.keys.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_argument",
            "a watch needs at least one key",
        ));
    }
    if req.keys.len() > max {
        return Err(too_many_keys(req.keys.len(), max));
    }
    let held = req
        .keys
        .into_iter()
        .map(|k| Ok((ConfigKey::parse(&k.namespace, &k.group, &k.data_id)?, k.md5)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let timeout = req
        .timeout_ms
        .map_or(
            state.settings.watch_default_timeout(),
            Duration::from_millis,
        )
        .min(state.settings.watch_max_timeout());
    let stale = state
        .service
        .wait_for_changes(&held, &client, timeout)
        .await;
    Ok(Json(WatchResponse {
        changed: stale
            .into_iter()
            .map(|(key, view)| state_of(&key, view))
            .collect(),
    }))
}

struct StreamState {
    state: SharedState,
    client: ClientInfo,
    registration: Registration,
    /// The md5 last sent per key; `None` before the first event.
    sent: Vec<Option<String>>,
    pending: VecDeque<ChangedKey>,
}

/// Server-sent events: one `change` event per key at once with its current state, then
/// one each time a key's content changes. Ends when the server shuts down.
#[utoipa::path(get, path = "/api/v1/watch/stream", tag = "watch", params(StreamQuery),
    responses((status = 200, description = "text/event-stream of ChangedKey events", body = ChangedKey),
        (status = 400, body = ErrorBody)))]
pub async fn stream(
    State(state): State<SharedState>,
    _: Caller,
    Identity(client): Identity,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let keys = q
        .keys
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
    let registration = state.service.hub().register(keys);
    let initial = StreamState {
        sent: vec![None; registration.keys().len()],
        state,
        client,
        registration,
        pending: VecDeque::new(),
    };
    let events = futures::stream::unfold(initial, |mut s| async move {
        loop {
            if let Some(change) = s.pending.pop_front() {
                let event = Event::default()
                    .event("change")
                    .json_data(&change)
                    .unwrap_or_else(|_| Event::default().comment("unserializable"));
                return Some((Ok(event), s));
            }
            let cache = s.state.service.cache();
            for (i, key) in s.registration.keys().iter().enumerate() {
                let md5 = cache.md5_for(key, &s.client).unwrap_or_default();
                if s.sent[i].as_deref() != Some(md5.as_str()) {
                    s.sent[i] = Some(md5);
                    s.pending.push_back(current_state(cache, key, &s.client));
                }
            }
            if !s.pending.is_empty() {
                continue;
            }
            tokio::select! {
                _ = s.registration.changed() => {}
                _ = s.state.shutdown.cancelled() => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
