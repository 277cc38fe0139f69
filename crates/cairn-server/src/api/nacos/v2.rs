//! Nacos's v2 HTTP API: the same operations as v1, with `namespaceId` and the
//! `{code, message, data}` envelope.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use cairn_core::Revision;
use cairn_store::Expect;
use serde_json::Value;

use super::common::{config_infos, history_item, history_page, page_of, publish_from};
use super::error::{envelope, Result};
use super::{authenticate, namespace, Params};
use crate::api::{ClientAddr, Identity, SharedState};
use crate::service::ServiceError;

type Answer = Result<Response>;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/nacos/v2/cs/config",
            get(get_config).post(publish).delete(delete),
        )
        .route("/nacos/v2/cs/history/list", get(history_list))
        .route("/nacos/v2/cs/history", get(history_entry))
        .route("/nacos/v2/cs/history/previous", get(history_previous))
        .route("/nacos/v2/cs/history/configs", get(history_configs))
}

fn ok(data: Value) -> Response {
    envelope(StatusCode::OK, 0, "success", data)
}

async fn v2<F>(answer: F) -> Response
where
    F: std::future::Future<Output = Answer>,
{
    match answer.await {
        Ok(response) => response,
        Err(refusal) => refusal.v2(),
    }
}

/// GET /nacos/v2/cs/config: `data` is the content as this client sees it.
async fn get_config(
    State(state): State<SharedState>,
    source: crate::api::Source,
    Identity(client): Identity,
    headers: HeaderMap,
    params: Params,
) -> Response {
    v2(async {
        let (_, key) =
            super::readable_key(&state, &headers, &params, "namespaceId", source).await?;
        match state.service.view(&key, &client) {
            Some(view) => Ok(ok(Value::String(view.content().to_owned()))),
            None => Err(ServiceError::ConfigNotFound(key).into()),
        }
    })
    .await
}

/// POST /nacos/v2/cs/config (form): publish; `data` is `true`.
async fn publish(
    State(state): State<SharedState>,
    addr: ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    v2(async {
        let caller = authenticate(&state, &headers, &params).await?;
        let key = super::config_key(&params, "namespaceId")?;
        let actor = crate::api::actor_via("nacos", &caller, &addr);
        publish_from(&state, &headers, &params, key, &caller, &actor).await?;
        Ok(ok(Value::Bool(true)))
    })
    .await
}

/// DELETE /nacos/v2/cs/config: `data` is `true`, whether or not it existed.
async fn delete(
    State(state): State<SharedState>,
    addr: ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    v2(async {
        let caller = authenticate(&state, &headers, &params).await?;
        let key = super::config_key(&params, "namespaceId")?;
        let actor = crate::api::actor_via("nacos", &caller, &addr);
        match state.service.delete(key, Expect::Any, &actor).await {
            Ok(_) | Err(ServiceError::ConfigNotFound(_)) => Ok(ok(Value::Bool(true))),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// GET /nacos/v2/cs/history/list: a page of a config's history.
async fn history_list(
    State(state): State<SharedState>,
    source: crate::api::Source,
    headers: HeaderMap,
    params: Params,
) -> Response {
    v2(async {
        let (_, key) =
            super::readable_key(&state, &headers, &params, "namespaceId", source).await?;
        Ok(ok(history_page(&state, &key, page_of(&params)?).await?))
    })
    .await
}

/// GET /nacos/v2/cs/history?nid: one entry, or `null`.
async fn history_entry(
    State(state): State<SharedState>,
    source: crate::api::Source,
    headers: HeaderMap,
    params: Params,
) -> Response {
    v2(async {
        let (caller, key) =
            super::readable_key(&state, &headers, &params, "namespaceId", source).await?;
        let nid: i64 = params.required_number("nid")?;
        let Some(nid) = Revision::new(nid) else {
            return Ok(ok(Value::Null));
        };
        match state.service.history_entry(&caller, &key, nid).await {
            Ok(entry) => Ok(ok(history_item(&entry, false, true))),
            Err(ServiceError::RevisionNotFound { .. }) => Ok(ok(Value::Null)),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// GET /nacos/v2/cs/history/previous?id: the entry before revision `id`, or `null`.
async fn history_previous(
    State(state): State<SharedState>,
    source: crate::api::Source,
    headers: HeaderMap,
    params: Params,
) -> Response {
    v2(async {
        let (caller, key) =
            super::readable_key(&state, &headers, &params, "namespaceId", source).await?;
        let id: i64 = params.required_number("id")?;
        let Some(id) = Revision::new(id) else {
            return Ok(ok(Value::Null));
        };
        Ok(ok(state
            .service
            .history_before(&caller, &key, id)
            .await?
            .map_or(Value::Null, |e| history_item(&e, false, true))))
    })
    .await
}

/// GET /nacos/v2/cs/history/configs?namespaceId: the configs of a namespace.
async fn history_configs(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    v2(async {
        let caller = authenticate(&state, &headers, &params).await?;
        let ns = namespace(params.get("namespaceId"))?;
        Ok(ok(Value::Array(config_infos(&state, &caller, &ns))))
    })
    .await
}
