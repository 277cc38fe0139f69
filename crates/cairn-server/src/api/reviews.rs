//! Change requests on the native API (`/api/v1/reviews/…`): the requests a caller may
//! read, one with its diff and timeline, and the steps: approve, reject, rebase. A
//! request is opened by publishing, rolling back or deleting as a person in a namespace
//! that requires review (`202` with the request instead of the change).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::Namespace;
use cairn_store::{ChangeRequestRecord, ReviewEventRecord, ReviewStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::wire::{timestamp, ErrorBody};
use super::{ApiJson, ApiPath, ApiQuery, SharedState};
use crate::auth::Caller;
use crate::service::{Actor, ReviewDetail};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/reviews", get(list_reviews))
        .route("/api/v1/reviews/{id}", get(show_review))
        .route("/api/v1/reviews/{id}/approve", post(approve))
        .route("/api/v1/reviews/{id}/reject", post(reject))
        .route("/api/v1/reviews/{id}/rebase", post(rebase))
}

/// A change proposed for review.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ChangeRequestView {
    pub id: i64,
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    /// `publish` or `delete`.
    pub op: String,
    /// `open`, `approved`, `rejected` or `stale` (the config changed after it was made:
    /// rebase it).
    pub status: String,
    pub author: String,
    /// Why, as its author wrote it.
    pub comment: String,
    /// Who approved or rejected it; empty while open.
    pub reviewer: String,
    /// The md5 of the content it was made against; empty: the config did not exist.
    pub base_md5: String,
    /// The revision it was made against; absent: the config did not exist.
    pub base_revision: Option<i64>,
    /// The md5 of the proposed content (empty for a deletion).
    pub md5: String,
    /// The revision its approval released.
    pub released_revision: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ChangeRequestRecord> for ChangeRequestView {
    fn from(r: &ChangeRequestRecord) -> Self {
        ChangeRequestView {
            id: r.id,
            namespace: r.key.namespace.to_string(),
            group: r.key.group.to_string(),
            data_id: r.key.data_id.to_string(),
            op: r.op.as_str().to_owned(),
            status: r.status.as_str().to_owned(),
            author: r.author.clone(),
            comment: r.comment.clone(),
            reviewer: r.reviewer.clone(),
            base_md5: r.base_md5.clone(),
            base_revision: r.base_revision.map(|v| v.get()),
            md5: r.md5.clone(),
            released_revision: r.released.map(|v| v.get()),
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
        }
    }
}

/// One step of a request's life.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReviewEventView {
    /// `opened`, `rebased`, `approved`, `rejected` or `stale`.
    pub event: String,
    pub actor: String,
    pub comment: String,
    pub at: String,
}

impl From<&ReviewEventRecord> for ReviewEventView {
    fn from(e: &ReviewEventRecord) -> Self {
        ReviewEventView {
            event: e.event.clone(),
            actor: e.actor.clone(),
            comment: e.comment.clone(),
            at: timestamp(e.at),
        }
    }
}

/// A request with what it would change and its timeline.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ChangeRequestDetail {
    #[serde(flatten)]
    pub request: ChangeRequestView,
    /// The proposed content; absent for a deletion and for a caller without
    /// `read-secret` on a sensitive config.
    pub content: Option<String>,
    /// A unified diff from the content it was made against; absent where the content is.
    pub diff: Option<String>,
    /// The config's md5 now (absent: it does not exist); when it is not `base_md5`,
    /// approving finds the request stale.
    pub current_md5: Option<String>,
    /// Oldest first.
    pub events: Vec<ReviewEventView>,
}

impl From<&ReviewDetail> for ChangeRequestDetail {
    fn from(d: &ReviewDetail) -> Self {
        let r = &d.request;
        ChangeRequestDetail {
            request: ChangeRequestView::from(r),
            content: (d.readable && r.op != cairn_store::Op::Delete).then(|| r.content.clone()),
            diff: d.diff.clone(),
            current_md5: d.current_md5.clone(),
            events: d.events.iter().map(ReviewEventView::from).collect(),
        }
    }
}

/// A page of change requests, newest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ChangeRequestPage {
    pub items: Vec<ChangeRequestView>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Only this namespace's requests.
    namespace: Option<String>,
    /// Only requests in this state: `open`, `approved`, `rejected` or `stale`.
    status: Option<String>,
    page: Option<u32>,
    /// At most 500; default 50.
    page_size: Option<u32>,
}

/// A step's comment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewComment {
    /// Recorded in the request's timeline and the audit log (and, for an approval, in
    /// history). Required to reject someone else's request.
    #[serde(default)]
    comment: String,
}

/// A rebase onto the config's current content.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebaseRequest {
    /// New proposed content; absent: the same content, now against the current one.
    content: Option<String>,
    #[serde(default)]
    comment: String,
}

/// The change requests the caller may read, newest first.
#[utoipa::path(get, path = "/api/v1/reviews", tag = "reviews", params(ReviewQuery),
    responses((status = 200, body = ChangeRequestPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_reviews(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> Result<Json<ChangeRequestPage>, ApiError> {
    let namespace = q
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(Namespace::parse)
        .transpose()?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(ReviewStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_argument",
                format!("unknown status {s:?}; expected open, approved, rejected or stale"),
            )
        })?),
    };
    let page = super::page(q.page, q.page_size)?;
    let (items, total) = state
        .service
        .change_requests(&caller, namespace.as_ref(), status, page)
        .await?;
    Ok(Json(ChangeRequestPage {
        items: items.iter().map(ChangeRequestView::from).collect(),
        total,
        page: page.number,
        page_size: page.size,
    }))
}

/// One change request with its diff and timeline.
#[utoipa::path(get, path = "/api/v1/reviews/{id}", tag = "reviews",
    params(("id" = i64, Path)),
    responses((status = 200, body = ChangeRequestDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn show_review(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ChangeRequestDetail>, ApiError> {
    let detail = state.service.change_request(&caller, id).await?;
    Ok(Json(ChangeRequestDetail::from(&detail)))
}

/// Approves someone else's open request and releases it (needs the approve level on
/// its config). If the config changed after the request was made, nothing is
/// released: the request is marked stale (`409 change_request_stale`).
#[utoipa::path(post, path = "/api/v1/reviews/{id}/approve", tag = "reviews",
    params(("id" = i64, Path)), request_body = ReviewComment,
    responses((status = 200, body = ChangeRequestView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReviewComment>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    let done = state.service.approve(id, req.comment, &by).await?;
    Ok(Json(ChangeRequestView::from(&done)))
}

/// Rejects an open or stale request, with a comment (needs the approve level), or
/// withdraws one's own.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/reject", tag = "reviews",
    params(("id" = i64, Path)), request_body = ReviewComment,
    responses((status = 200, body = ChangeRequestView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reject(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReviewComment>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    let done = state.service.reject(id, req.comment, &by).await?;
    Ok(Json(ChangeRequestView::from(&done)))
}

/// Moves one's own open or stale request onto the config's current content (with new
/// content, or the same), to be reviewed again.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/rebase", tag = "reviews",
    params(("id" = i64, Path)), request_body = RebaseRequest,
    responses((status = 200, body = ChangeRequestView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn rebase(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RebaseRequest>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    let done = state
        .service
        .rebase(id, req.content, req.comment, &by)
        .await?;
    Ok(Json(ChangeRequestView::from(&done)))
}
