//! JSON Schemas attached to configs, on the native API (`/api/v1/schemas/…`): list,
//! show, set, remove and history. The checks themselves run in `Service` on every write
//! of content, whatever surface it came through.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cairn_core::Namespace;
use cairn_store::{SchemaRecord, SchemaVersion};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::wire::{timestamp, ErrorBody};
use super::{actor, ApiJson, ApiPath, ApiQuery, ClientAddr, KeyPath, SharedState};
use crate::auth::Caller;
use crate::service::{schema_target, SchemaInput};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/schemas", get(list_schemas))
        .route(
            "/api/v1/schemas/{namespace}/{group}/{data_id}",
            get(show_schema).put(set_schema).delete(remove_schema),
        )
        .route(
            "/api/v1/schemas/{namespace}/{group}/{data_id}/history",
            get(schema_history),
        )
}

/// An attached schema.
#[derive(Serialize, ToSchema)]
pub struct SchemaView {
    namespace: String,
    /// A group, or a `*` wildcard of groups.
    group: String,
    /// A data id, or a `*` wildcard of data ids.
    data_id: String,
    /// 1 when first attached, one more for each change (a removal counts).
    version: u64,
    /// The JSON Schema (draft 2020-12), as it was set.
    #[schema(value_type = Object)]
    schema: Box<RawValue>,
    created_by: String,
    created_at: String,
    updated_by: String,
    updated_at: String,
}

/// The stored text was checked as JSON when set; should it not parse now, it is shown
/// as a JSON string rather than failing the listing.
fn raw(body: &str) -> Box<RawValue> {
    RawValue::from_string(body.to_owned()).unwrap_or_else(|_| {
        let quoted = serde_json::to_string(body).unwrap_or_else(|_| "null".to_owned());
        RawValue::from_string(quoted).expect("a JSON string is JSON")
    })
}

impl From<&SchemaRecord> for SchemaView {
    fn from(r: &SchemaRecord) -> Self {
        SchemaView {
            namespace: r.target.namespace.to_string(),
            group: r.target.group.clone(),
            data_id: r.target.data_id.clone(),
            version: r.version,
            schema: raw(&r.body),
            created_by: r.created_by.clone(),
            created_at: timestamp(r.created_at),
            updated_by: r.updated_by.clone(),
            updated_at: timestamp(r.updated_at),
        }
    }
}

/// One version of a schema.
#[derive(Serialize, ToSchema)]
pub struct SchemaVersionView {
    version: u64,
    /// `set` or `remove`.
    op: String,
    /// The schema this version set; absent for a removal.
    #[schema(value_type = Option<Object>)]
    schema: Option<Box<RawValue>>,
    by: String,
    comment: String,
    at: String,
}

impl From<&SchemaVersion> for SchemaVersionView {
    fn from(v: &SchemaVersion) -> Self {
        SchemaVersionView {
            version: v.version,
            op: v.op.clone(),
            schema: (v.op != "remove").then(|| raw(&v.body)),
            by: v.operator.clone(),
            comment: v.comment.clone(),
            at: timestamp(v.created_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this namespace's schemas.
    namespace: Option<String>,
}

/// The schemas attached in the namespaces the caller sees.
#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas", params(ListQuery),
    responses((status = 200, body = [SchemaView]), (status = 403, body = ErrorBody)))]
async fn list_schemas(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<SchemaView>>, ApiError> {
    let namespace = q
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(Namespace::parse)
        .transpose()?;
    let all = state.service.schemas(&caller, namespace.as_ref())?;
    Ok(Json(all.iter().map(SchemaView::from).collect()))
}

fn target(path: KeyPath) -> Result<cairn_store::SchemaTarget, ApiError> {
    let ApiPath((namespace, group, data_id)) = path;
    Ok(schema_target(
        Namespace::parse(&namespace)?,
        &group,
        &data_id,
    )?)
}

/// The schema attached at a namespace, group and data id (each of the last two exact,
/// or a `*` wildcard).
#[utoipa::path(get, path = "/api/v1/schemas/{namespace}/{group}/{data_id}", tag = "schemas",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    responses((status = 200, body = SchemaView), (status = 404, body = ErrorBody)))]
async fn show_schema(
    State(state): State<SharedState>,
    caller: Caller,
    path: KeyPath,
) -> Result<Json<SchemaView>, ApiError> {
    let target = target(path)?;
    Ok(Json(SchemaView::from(
        &state.service.schema(&caller, &target)?,
    )))
}

/// Attaches a schema, or changes one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSchemaRequest {
    /// A JSON Schema, draft 2020-12. Remote `$ref`s are not fetched.
    #[schema(value_type = Object)]
    schema: Box<RawValue>,
    /// Attach it even though configs as they are now break it; default false.
    #[serde(default)]
    force: bool,
    /// The version last read (0: none attached yet); refused with 409 if it moved.
    expect_version: Option<u64>,
    comment: Option<String>,
}

/// Attaches a JSON Schema to a config, or to every config whose group and data id
/// match. Checked first against the configs it would govern (refused with 409 and a
/// report unless `force`). Needs admin of the namespace.
#[utoipa::path(put, path = "/api/v1/schemas/{namespace}/{group}/{data_id}", tag = "schemas",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    request_body = SetSchemaRequest,
    responses((status = 200, body = SchemaView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn set_schema(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
    ApiJson(req): ApiJson<SetSchemaRequest>,
) -> Result<Json<SchemaView>, ApiError> {
    let target = target(path)?;
    let input = SchemaInput {
        body: req.schema.get().to_owned(),
        force: req.force,
        expect_version: req.expect_version,
        comment: req.comment.unwrap_or_default(),
    };
    let record = state
        .service
        .set_schema(target, input, &actor(&caller, &addr))
        .await?;
    Ok(Json(SchemaView::from(&record)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    comment: Option<String>,
}

/// Detaches a schema. Needs admin of the namespace.
#[utoipa::path(delete, path = "/api/v1/schemas/{namespace}/{group}/{data_id}", tag = "schemas",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path), RemoveQuery),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_schema(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let target = target(path)?;
    state
        .service
        .remove_schema(
            target,
            q.comment.unwrap_or_default(),
            &actor(&caller, &addr),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every version of a schema, newest first, removals included.
#[utoipa::path(get, path = "/api/v1/schemas/{namespace}/{group}/{data_id}/history", tag = "schemas",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    responses((status = 200, body = [SchemaVersionView]), (status = 403, body = ErrorBody)))]
async fn schema_history(
    State(state): State<SharedState>,
    caller: Caller,
    path: KeyPath,
) -> Result<Json<Vec<SchemaVersionView>>, ApiError> {
    let target = target(path)?;
    let versions = state.service.schema_history(&caller, &target).await?;
    Ok(Json(versions.iter().map(SchemaVersionView::from).collect()))
}
