//! Export and import of a namespace's configs, in Nacos's zip format or Cairn's own, on
//! the native API (`/api/v1/namespaces/{namespace}/export` and `/import`). Nacos's own
//! routes for the same are in `nacos/v1.rs`; both go through `Service::export` and
//! `Service::import`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::Namespace;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::wire::ErrorBody;
use super::{ApiPath, ApiQuery, SharedState};
use crate::auth::Caller;
use crate::service::{Actor, Conflict, ImportPolicy, ListFilter};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/export",
            get(export_namespace),
        )
        .route(
            "/api/v1/namespaces/{namespace}/import",
            post(import_namespace),
        )
        .route("/api/v1/namespaces/{namespace}/clone", post(clone_into))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this group; `*` matches any run of characters.
    group: Option<String>,
    /// Only matching data ids; `*` matches any run of characters.
    data_id: Option<String>,
    /// Only configs with this tag.
    tag: Option<String>,
    /// Leave out `.metadata.yml` (format, description, tags), as Nacos 1.x's export
    /// does; default false.
    #[serde(default)]
    bare: bool,
    /// `nacos` (the default): Nacos's zip; `cairn`: Cairn's own JSON lines, with
    /// every config's md5 and gray release.
    format: Option<String>,
    /// With each config's earlier versions (`format=cairn` only): an import into a
    /// namespace without the config writes them as its history; default false.
    #[serde(default)]
    history: bool,
}

/// The configs of a namespace (or those matching the filters) that the caller may read,
/// as a Nacos export zip.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/export", tag = "transfer",
    params(("namespace" = String, Path), ExportQuery),
    responses((status = 200, description = "a Nacos export zip, or with `format=cairn` Cairn's JSON lines",
            content(("application/zip"), ("application/x-ndjson"))),
        (status = 404, body = ErrorBody)))]
async fn export_namespace(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(namespace): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let namespace = Namespace::parse(&namespace)?;
    let filter = ListFilter {
        tag: q.tag.filter(|t| !t.is_empty()),
        ..ListFilter::within(namespace.clone(), q.group.as_deref(), q.data_id.as_deref())
    };
    // Only Cairn's format carries history, so asking for history chooses it.
    let format = match q.format.as_deref().filter(|f| !f.is_empty()) {
        None if q.history => Some("cairn"),
        chosen => chosen,
    };
    if q.history && format != Some("cairn") {
        return Err(ApiError::bad_request(
            "invalid_argument",
            "history is carried only by Cairn's format: add format=cairn",
        ));
    }
    let items = state.service.export(&caller, &filter, q.history).await?;
    export_answer(&namespace, &items, format, q.bare)
}

/// `items` as a download in `format` (`nacos`, the default, or `cairn`).
pub fn export_answer(
    namespace: &Namespace,
    items: &[crate::transfer::Item],
    format: Option<&str>,
    bare: bool,
) -> Result<Response, ApiError> {
    match format.unwrap_or("nacos") {
        "nacos" => zip_answer(namespace, items, !bare),
        "cairn" => {
            let exported_at = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let file = crate::transfer::write_cairn(namespace.as_str(), exported_at, items);
            let disposition = format!("attachment; filename=\"{namespace}.cairn.jsonl\"");
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-ndjson"),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_str(&disposition)
                            .unwrap_or(HeaderValue::from_static("attachment")),
                    ),
                ],
                file,
            )
                .into_response())
        }
        other => Err(ApiError::bad_request(
            "invalid_argument",
            format!("format {other:?} is not nacos or cairn"),
        )),
    }
}

/// A zip of `items` as a download named after `namespace`.
pub fn zip_answer(
    namespace: &Namespace,
    items: &[crate::transfer::Item],
    with_metadata: bool,
) -> Result<Response, ApiError> {
    let zip = crate::transfer::write_zip(items, with_metadata).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot write the export: {e}"),
        )
    })?;
    let disposition = format!("attachment; filename=\"{namespace}.zip\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        zip,
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// What to do about a config that exists: `abort` (the default: import nothing and
    /// say which exist), `skip` them, or `overwrite` them.
    policy: Option<String>,
    /// Leave out what cannot be imported (an entry that is not a config, a name, size,
    /// format or content Cairn refuses) and list it under `refused`, instead of
    /// importing nothing; default false.
    #[serde(default)]
    skip_invalid: bool,
}

/// What an import did.
#[derive(Serialize, ToSchema)]
pub struct ImportAnswer {
    /// How many configs were written.
    imported: usize,
    /// Bytes of content written.
    bytes: u64,
    /// How many were already stored exactly so, and were not written again.
    unchanged: usize,
    /// Configs left as they were (policy `skip`), as `namespace/group/data_id`.
    skipped: Vec<String>,
    /// What was left out with `skip_invalid`, and why.
    refused: Vec<Refused>,
    /// Gray releases started (Cairn's format carries them).
    grays: usize,
    /// Earlier versions written as history (Cairn's format with history; only for the
    /// configs the import created).
    history: usize,
}

/// An entry or config an import left out.
#[derive(Serialize, ToSchema)]
pub struct Refused {
    /// The config (`namespace/group/data_id`) or the zip entry.
    item: String,
    /// Why it was left out.
    reason: String,
}

impl From<crate::service::ImportReport> for ImportAnswer {
    fn from(report: crate::service::ImportReport) -> Self {
        ImportAnswer {
            imported: report.imported.len(),
            bytes: report.bytes,
            unchanged: report.unchanged.len(),
            skipped: report.skipped.iter().map(ToString::to_string).collect(),
            refused: report
                .refused
                .into_iter()
                .map(|(item, reason)| Refused { item, reason })
                .collect(),
            grays: report.grays,
            history: report.history,
        }
    }
}

/// Imports a Nacos export zip (either layout) or a file in Cairn's format into a
/// namespace, all or nothing: every entry is checked before anything is written, and a
/// refusal names each problem. Gray releases in Cairn's format start once the configs
/// are in.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/import", tag = "transfer",
    params(("namespace" = String, Path), ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "a Nacos export zip, or Cairn's JSON lines: told apart by their first bytes, whatever the Content-Type"),
    responses((status = 200, body = ImportAnswer), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn import_namespace(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(namespace): ApiPath<String>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    zip: Bytes,
) -> Result<Json<ImportAnswer>, ApiError> {
    let namespace = Namespace::parse(&namespace)?;
    let policy = ImportPolicy {
        conflict: policy_of(q.policy.as_deref())?,
        skip_invalid: q.skip_invalid,
    };
    let (items, unreadable) = read_upload(&zip, q.skip_invalid)?;
    let mut report = state.service.import(&namespace, items, policy, &by).await?;
    report
        .refused
        .splice(0..0, unreadable.into_iter().map(|p| (p.entry, p.why)));
    Ok(Json(ImportAnswer::from(report)))
}

/// What to copy into a namespace, and from where.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// The namespace to copy from.
    from: String,
    /// Only this group of it (`*` matches any run of characters).
    group: Option<String>,
    /// Only matching data ids (`*` matches any run of characters).
    data_id: Option<String>,
    /// Put the copies in this group instead of their own.
    to_group: Option<String>,
    /// `abort` (the default), `skip` or `overwrite`, as for an import.
    policy: Option<String>,
}

/// Copies configs from another namespace (those the caller may read there), optionally
/// into another group, as Nacos's console clones: checked whole and written in one
/// transaction, as an import is.
#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/clone", tag = "transfer",
    params(("namespace" = String, Path)), request_body = CloneRequest,
    responses((status = 200, body = ImportAnswer), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn clone_into(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(namespace): ApiPath<String>,
    super::ApiJson(req): super::ApiJson<CloneRequest>,
) -> Result<Json<ImportAnswer>, ApiError> {
    let namespace = Namespace::parse(&namespace)?;
    let from = Namespace::parse(&req.from)?;
    let policy = policy_of(req.policy.as_deref())?;
    let to_group = req
        .to_group
        .filter(|g| !g.is_empty())
        .map(|g| cairn_core::Group::parse(&g))
        .transpose()?;
    let from = ListFilter::within(from, req.group.as_deref(), req.data_id.as_deref());
    let report = state
        .service
        .clone_into(&namespace, &from, to_group, policy, &by)
        .await?;
    Ok(Json(ImportAnswer::from(report)))
}

/// An import's policy, `abort` when none is given.
pub fn policy_of(text: Option<&str>) -> Result<Conflict, ApiError> {
    match text.filter(|p| !p.is_empty()) {
        None => Ok(Conflict::Abort),
        Some(text) => text
            .parse()
            .map_err(|e: String| ApiError::bad_request("invalid_argument", e)),
    }
}

/// The configs of an uploaded file in either format, and (with `skip_invalid`) the
/// problems of the entries left out; without it, a refusal naming every bad entry.
pub fn read_upload(
    file: &[u8],
    skip_invalid: bool,
) -> Result<(Vec<crate::transfer::Item>, Vec<crate::transfer::Problem>), ApiError> {
    let (items, problems) = if crate::transfer::is_cairn_format(file) {
        crate::transfer::read_cairn(file).map_err(refusal)?
    } else {
        crate::transfer::read_zip_lenient(file).map_err(refusal)?
    };
    if !skip_invalid && !problems.is_empty() {
        return Err(refusal(problems));
    }
    Ok((items, problems))
}

/// The configs of an uploaded zip, or a refusal naming every bad entry.
pub fn read_items(zip: &[u8]) -> Result<Vec<crate::transfer::Item>, ApiError> {
    crate::transfer::read_zip(zip).map_err(refusal)
}

fn refusal(problems: Vec<crate::transfer::Problem>) -> ApiError {
    let listed: Vec<String> = problems.iter().take(50).map(ToString::to_string).collect();
    ApiError::bad_request(
        "invalid_import",
        format!(
            "nothing was imported; {} problem(s) in the file: {}",
            problems.len(),
            listed.join("; ")
        ),
    )
}
