//! Webhooks on the native API (`/api/v1/webhooks/…`): subscribe a URL to a namespace's
//! changes, list and remove subscriptions, read a subscription's delivery log and send
//! a delivery again. Each needs admin of the namespace.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::Namespace;
use cairn_store::{DeliveryRecord, WebhookRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::wire::{timestamp, ErrorBody, PageQuery};
use super::{actor, ApiJson, ApiPath, ApiQuery, ClientAddr, SharedState};
use crate::auth::Caller;
use crate::service::WebhookInput;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/webhooks", get(list_webhooks).post(add_webhook))
        .route(
            "/api/v1/webhooks/{id}",
            get(show_webhook).delete(remove_webhook),
        )
        .route("/api/v1/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

/// A subscription. Its secret is never shown.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: i64,
    pub namespace: String,
    pub url: String,
    /// The event kinds sent; empty: every kind.
    pub events: Vec<String>,
    /// A group wildcard; empty: any.
    pub group: String,
    /// A data-id wildcard; empty: any.
    pub data_id: String,
    pub created_by: String,
    pub created_at: String,
}

impl From<&WebhookRecord> for WebhookView {
    fn from(h: &WebhookRecord) -> Self {
        WebhookView {
            id: h.id,
            namespace: h.namespace.to_string(),
            url: h.url.clone(),
            events: h.events.clone(),
            group: h.group.clone(),
            data_id: h.data_id.clone(),
            created_by: h.created_by.clone(),
            created_at: timestamp(h.created_at),
        }
    }
}

/// One event sent (or being sent) to a subscription.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    /// The event's id, as its payload carries it (the change's revision, or `cr-…` for
    /// a step of a change request).
    pub event_id: String,
    /// `publish`, `rollback`, `delete`, `gray_publish`, `gray_promote`, `gray_abandon`,
    /// `change_request_opened`, `change_request_approved`, `change_request_rejected`.
    pub event: String,
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    /// The last attempt's HTTP status, if the receiver answered.
    pub response_code: Option<u16>,
    /// Why the last attempt failed.
    pub error: String,
    /// How long the last attempt took.
    pub latency_ms: Option<i64>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&DeliveryRecord> for DeliveryView {
    fn from(d: &DeliveryRecord) -> Self {
        DeliveryView {
            id: d.id,
            event_id: crate::webhooks::event_id(d.seq),
            event: d.event.clone(),
            namespace: d.key.namespace.to_string(),
            group: d.key.group.to_string(),
            data_id: d.key.data_id.to_string(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            response_code: d.response_code,
            error: d.error.clone(),
            latency_ms: d.latency_ms,
            next_attempt_at: (d.status == cairn_store::DeliveryStatus::Pending)
                .then(|| timestamp(d.next_attempt_at)),
            created_at: timestamp(d.created_at),
            updated_at: timestamp(d.updated_at),
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this namespace's subscriptions.
    namespace: Option<String>,
}

/// The subscriptions in the namespaces the caller administers.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(ListQuery),
    responses((status = 200, body = [WebhookView]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let namespace = q
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(Namespace::parse)
        .transpose()?;
    let hooks = state.service.webhooks(&caller, namespace.as_ref()).await?;
    Ok(Json(hooks.iter().map(WebhookView::from).collect()))
}

/// A subscription to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddWebhookRequest {
    /// The namespace whose changes are sent.
    namespace: String,
    /// `http://` or `https://`; loopback, private and link-local addresses are refused
    /// unless the node's `webhook_allow_private_targets` allows them.
    url: String,
    /// Signs each request (`X-Cairn-Signature`); 16 to 256 characters. Never shown again.
    secret: String,
    /// Event kinds to send (`publish`, `rollback`, `delete`, `gray_publish`,
    /// `gray_promote`, `gray_abandon`, `change_request_opened`,
    /// `change_request_approved`, `change_request_rejected`); none or empty: every kind.
    #[serde(default)]
    events: Vec<String>,
    /// Only configs of matching groups (`*` matches any run of characters).
    group: Option<String>,
    /// Only configs with matching data ids (`*` matches any run of characters).
    data_id: Option<String>,
}

/// Subscribes a URL to a namespace's changes from now on. Needs admin of the namespace.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = AddWebhookRequest,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn add_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    ApiJson(req): ApiJson<AddWebhookRequest>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let namespace = Namespace::parse(&req.namespace)?;
    let input = WebhookInput {
        url: req.url,
        secret: req.secret,
        events: req.events,
        group: req.group.unwrap_or_default(),
        data_id: req.data_id.unwrap_or_default(),
    };
    let record = state
        .service
        .add_webhook(namespace, input, &actor(&caller, &addr))
        .await?;
    Ok((StatusCode::CREATED, Json(WebhookView::from(&record))))
}

/// One subscription.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn show_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<WebhookView>, ApiError> {
    let hook = state.service.webhook(&caller, id).await?;
    Ok(Json(WebhookView::from(&hook)))
}

/// Removes a subscription and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn remove_webhook(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .remove_webhook(id, &actor(&caller, &addr))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A subscription's deliveries, newest first: status, response code, attempts, latency.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let page = super::page(q.page, q.page_size)?;
    let (items, total) = state.service.deliveries(&caller, id, page).await?;
    Ok(Json(DeliveryPage {
        items: items.iter().map(DeliveryView::from).collect(),
        total,
        page: page.number,
        page_size: page.size,
    }))
}

/// Sends a delivery again now, with a fresh retry window (same event id).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("id" = i64, Path), ("delivery" = i64, Path)),
    responses((status = 202), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn redeliver(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    ApiPath((id, delivery)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .redeliver(id, delivery, &actor(&caller, &addr))
        .await?;
    Ok(StatusCode::ACCEPTED)
}
