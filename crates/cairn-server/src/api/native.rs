//! The native JSON API under `/api/v1`: auth, namespaces, configs, history, users.

use axum::extract::ConnectInfo;
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cairn_core::grant::Level;
use cairn_core::grant::Scope;
use cairn_core::pattern::Wildcard;
use cairn_core::{Format, Namespace, Revision, RoleName, Username};
use cairn_store::Expect;
use cairn_store::Subject;
use secrecy::ExposeSecret;
use utoipa::OpenApi;

use super::wire::*;
use super::{
    actor, config_key, page, Admin, ApiError, ApiJson, ApiPath, ApiQuery, ClientAddr, Identity,
    KeyPath, ReadableKey, SharedState,
};
use crate::auth::{Caller, Role};
use crate::service::{Actor, GrayInput, ListFilter, Proposal, PublishInput, ServiceError};
use crate::settings::Secret;

/// The `If-None-Match` header alone (extracting the whole header map would copy it on
/// every read).
struct IfNoneMatch(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/api/v1/auth/login",
            post(login).layer(axum::extract::DefaultBodyLimit::max(
                super::UNAUTHENTICATED_BODY_LIMIT,
            )),
        )
        .route(
            "/api/v1/namespaces",
            get(list_namespaces).post(create_namespace),
        )
        .route(
            "/api/v1/namespaces/{namespace}",
            get(get_namespace)
                .put(update_namespace)
                .delete(delete_namespace),
        )
        .route("/api/v1/configs", get(list_configs))
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}",
            get(get_config).put(publish_config).delete(delete_config),
        )
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}/history",
            get(history),
        )
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}/history/{revision}",
            get(history_entry),
        )
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}/rollback",
            post(rollback),
        )
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}/diff",
            get(diff),
        )
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/users/{username}",
            axum::routing::delete(delete_user),
        )
        .route("/api/v1/users/{username}/password", put(set_password))
        .route("/api/v1/users/{username}/role", put(set_role))
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}/gray",
            get(gray_show).put(gray_publish).delete(gray_abandon),
        )
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}/gray/promote",
            post(gray_promote),
        )
        .route(
            "/api/v1/configs/{namespace}/{group}/{data_id}/listeners",
            get(config_listeners),
        )
        .route("/api/v1/listeners", get(client_listeners))
        .route(
            "/api/v1/grants",
            get(list_grants).put(put_grant).delete(delete_grant),
        )
        .route("/api/v1/roles", get(list_roles))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{name}", axum::routing::delete(revoke_token))
        .route("/api/v1/roles/{role}", axum::routing::delete(delete_role))
        .route(
            "/api/v1/roles/{role}/members/{username}",
            put(add_role_member).delete(remove_role_member),
        )
        .route("/api/v1/cluster/nodes", get(cluster_nodes))
        .route("/api/v1/encryption/rotate", post(rotate_key))
        .route(
            "/api/v1/apps/{app_id}/access-keys",
            get(list_access_keys).post(create_access_key),
        )
        .route(
            "/api/v1/apps/{app_id}/access-keys/{id}",
            put(set_access_key).delete(delete_access_key),
        )
        .route("/api/v1/openapi.json", get(openapi))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cairn", description = "Cairn configuration center: native API"),
    paths(
        login, list_namespaces, create_namespace, get_namespace, update_namespace,
        delete_namespace, list_configs, get_config, publish_config, delete_config, history,
        history_entry, rollback, diff, list_users, create_user, delete_user, set_password, cluster_nodes, gray_show, gray_publish,
        gray_promote, gray_abandon, list_access_keys, create_access_key, set_access_key,
        delete_access_key, config_listeners, client_listeners, set_role, list_grants,
        put_grant, delete_grant, list_roles, audit_log, list_tokens, create_token, revoke_token, add_role_member, remove_role_member, delete_role,
        rotate_key, super::watch::watch, super::watch::stream, super::transfer::export_namespace,
        super::transfer::import_namespace, super::transfer::clone_into,
        super::schemas::list_schemas, super::schemas::show_schema, super::schemas::set_schema,
        super::schemas::remove_schema, super::schemas::schema_history,
        super::webhooks::list_webhooks, super::webhooks::add_webhook,
        super::webhooks::show_webhook, super::webhooks::remove_webhook,
        super::webhooks::list_deliveries, super::webhooks::redeliver,
        super::reviews::list_reviews, super::reviews::show_review, super::reviews::approve,
        super::reviews::reject, super::reviews::rebase, openapi
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of this API: generated from the code, completed by
/// `contract.rs`, made once.
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
        super::contract::complete(&mut doc);
        doc
    })
}

/// This OpenAPI document (for signed-in users, like every API route).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "the OpenAPI 3.1 document of the native API", body = Object)))]
async fn openapi(_: Caller) -> Json<&'static serde_json::Value> {
    Json(document())
}

/// Exchanges a user name and password for an access token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(),
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody)))]
async fn login(
    State(state): State<SharedState>,
    addr: ConnectInfo<std::net::SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let issued = state
        .auth
        .login(
            &req.username,
            &Secret::from(req.password),
            Some(addr.0.ip()),
        )
        .await;
    let source = addr.0.ip().to_string();
    state
        .auth
        .audit_login(&req.username, &source, "native", &issued, true);
    let issued = issued?;
    Ok(Json(LoginResponse {
        token: issued.token.expose_secret().to_owned(),
        token_type: "Bearer",
        expires_in: issued.expires_in_secs,
        username: req.username,
        role: issued.role.as_str(),
    }))
}

/// Lists namespaces with their config counts.
#[utoipa::path(get, path = "/api/v1/namespaces", tag = "namespaces",
    responses((status = 200, body = [NamespaceView])))]
async fn list_namespaces(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<Vec<NamespaceView>>, ApiError> {
    let list = state.service.namespaces(&caller).await?;
    Ok(Json(list.iter().map(NamespaceView::from).collect()))
}

/// Creates a namespace (admin).
#[utoipa::path(post, path = "/api/v1/namespaces", tag = "namespaces",
    request_body = CreateNamespace,
    responses((status = 201, body = NamespaceView), (status = 409, body = ErrorBody)))]
async fn create_namespace(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiJson(req): ApiJson<CreateNamespace>,
) -> Result<(StatusCode, Json<NamespaceView>), ApiError> {
    let name = Namespace::parse(&req.name)?;
    let made = state
        .service
        .create_namespace(name.clone(), req.display_name, req.description)
        .await;
    audit(&state).done(
        &by,
        "namespace.create",
        name.as_str(),
        format!("namespace {name}"),
        made,
    )?;
    let created = state.service.namespace(&name).await?;
    Ok((StatusCode::CREATED, Json(NamespaceView::from(&created))))
}

/// Reads one namespace.
#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path)),
    responses((status = 200, body = NamespaceView), (status = 404, body = ErrorBody)))]
async fn get_namespace(
    State(state): State<SharedState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<NamespaceView>, ApiError> {
    let name = Namespace::parse(&name)?;
    state
        .auth
        .access()
        .require_visible(&caller, &name)
        .map_err(ServiceError::from)?;
    Ok(Json(NamespaceView::from(
        &state.service.namespace(&name).await?,
    )))
}

/// Changes a namespace's display name or description (admin, or admin of the namespace).
#[utoipa::path(put, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path)), request_body = UpdateNamespace,
    responses((status = 200, body = NamespaceView), (status = 404, body = ErrorBody)))]
async fn update_namespace(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateNamespace>,
) -> Result<Json<NamespaceView>, ApiError> {
    let name = Namespace::parse(&name)?;
    let anonymous_changed = req.apollo_anonymous_apps.is_some();
    let limits = req.limits();
    for (column, change) in limits.columns() {
        if let Some(Some(value)) = change {
            if i64::try_from(value).is_err() {
                return Err(ApiError::bad_request(
                    "invalid_argument",
                    format!("{column} {value} is over the largest limit, {}", i64::MAX),
                ));
            }
        }
    }
    let limits_changed = limits != cairn_store::LimitsUpdate::default();
    let mut detail = match &req.apollo_anonymous_apps {
        Some(apps) => format!(
            "namespace {name}; unsigned Apollo reads: {}",
            apps.join(",")
        ),
        None => format!("namespace {name}"),
    };
    if let Some(on) = req.require_review {
        detail.push_str(&format!("; require review: {on}"));
    }
    for (column, change) in limits.columns() {
        match change {
            Some(Some(value)) => detail.push_str(&format!("; {column}: {value}")),
            Some(None) => detail.push_str(&format!("; {column}: the default")),
            None => {}
        }
    }
    // Its own admins may change a namespace, as well as global admins; opening it to
    // unsigned Apollo reads takes a global admin, since that bypasses every grant, and
    // so do its quotas and retention, which bound what its own admins may store.
    let allowed = if anonymous_changed && by.caller.role != Role::Admin {
        Err(ServiceError::AdminOnly(
            "serving a namespace to unsigned Apollo reads".to_owned(),
        ))
    } else if limits_changed && by.caller.role != Role::Admin {
        Err(ServiceError::AdminOnly(
            "changing a namespace's quotas or history retention".to_owned(),
        ))
    } else if req.require_review == Some(false) && by.caller.role != Role::Admin {
        // Otherwise a namespace's own admin could lift the review over their changes.
        Err(ServiceError::AdminOnly(
            "turning off review before release".to_owned(),
        ))
    } else {
        state
            .auth
            .access()
            .require_namespace(&by.caller, &name, Level::Admin)
            .map_err(ServiceError::from)
    };
    let updated = match allowed {
        Ok(()) => {
            state
                .service
                .update_namespace(
                    &name,
                    cairn_store::NamespaceUpdate {
                        display_name: req.display_name,
                        description: req.description,
                        apollo_anonymous: req.apollo_anonymous_apps,
                        limits,
                        require_review: req.require_review,
                    },
                )
                .await
        }
        Err(refused) => Err(refused),
    };
    audit(&state).done(&by, "namespace.update", name.as_str(), detail, updated)?;
    if anonymous_changed {
        // Apollo's checks read the allowance from memory; other nodes catch up at
        // their next heartbeat.
        state
            .access_keys
            .reload()
            .await
            .map_err(ServiceError::from)?;
    }
    Ok(Json(NamespaceView::from(
        &state.service.namespace(&name).await?,
    )))
}

/// Deletes an empty namespace (admin). `public` cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_namespace(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let name = Namespace::parse(&name)?;
    let deleted = state.service.delete_namespace(&name).await;
    audit(&state).done(
        &by,
        "namespace.delete",
        name.as_str(),
        format!("namespace {name}"),
        deleted,
    )?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists and searches configs (without their content), in key order.
#[utoipa::path(get, path = "/api/v1/configs", tag = "configs", params(ListQuery),
    responses((status = 200, body = ConfigPage), (status = 400, body = ErrorBody)))]
async fn list_configs(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ConfigPage>, ApiError> {
    let page = page(q.page, q.page_size)?;
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let filter = ListFilter {
        namespace: non_empty(q.namespace)
            .map(|n| Namespace::parse(&n))
            .transpose()?,
        group: non_empty(q.group).map(|g| Wildcard::new(&g)),
        data_id: non_empty(q.data_id).map(|d| Wildcard::new(&d)),
        tag: non_empty(q.tag),
        format: None,
        content: non_empty(q.q),
    };
    let (items, total) = state.service.list(&caller, &filter, page);
    // An empty answer for a namespace that does not exist would hide a typo. Only an
    // empty page asks the database, and an outage does not turn it into an error.
    if total == 0 {
        if let Some(namespace) = &filter.namespace {
            if let Err(e @ ServiceError::NamespaceNotFound(_)) =
                state.service.namespace(namespace).await
            {
                return Err(e.into());
            }
        }
    }
    Ok(Json(ConfigPage {
        items: items.iter().map(|c| ConfigView::new(c, false)).collect(),
        total: total as u64,
        page: page.number,
        page_size: page.size,
    }))
}

/// Reads a config: the raw content with its md5 as ETag and its format as content type,
/// or, with `view=json`, metadata and content as JSON. Honors `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/configs/{namespace}/{group}/{data_id}", tag = "configs",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path), GetQuery),
    responses((status = 200, description = "the raw content, or ConfigView with view=json", body = ConfigView),
        (status = 304, description = "If-None-Match holds the current md5"),
        (status = 404, body = ErrorBody)))]
async fn get_config(
    State(state): State<SharedState>,
    ReadableKey { key, .. }: ReadableKey,
    Identity(client): Identity,
    ApiQuery(q): ApiQuery<GetQuery>,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response, ApiError> {
    let view = state
        .service
        .view(&key, &client)
        .ok_or_else(|| ServiceError::ConfigNotFound(key.clone()))?;
    let etag = format!("\"{}\"", view.md5());
    let mut response = match q.view.as_deref() {
        Some("json") => Json(ConfigView::of_view(&view, true)).into_response(),
        Some("raw") | None => {
            let not_modified = if_none_match
                .as_deref()
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
            let mut response = if not_modified {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                view.content_bytes().into_response()
            };
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(view.format().content_type()),
            );
            response
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_argument",
                format!("unknown view {other:?}; expected raw or json"),
            ))
        }
    };
    let h = response.headers_mut();
    read_headers(&view, &etag, &mut |name, value| {
        h.insert(name, value);
    });
    Ok(response)
}

/// The headers of a config read besides its content type. The connection layer answers
/// plain reads itself (`api::reads`) with the same ones.
pub(crate) fn read_headers(
    view: &crate::cache::View,
    etag: &str,
    put: &mut dyn FnMut(HeaderName, HeaderValue),
) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        put(header::ETAG, v);
    }
    put(
        HeaderName::from_static("x-cairn-revision"),
        HeaderValue::from(view.revision().get()),
    );
    put(
        HeaderName::from_static("x-cairn-format"),
        HeaderValue::from_static(view.format().as_str()),
    );
    if view.is_gray() {
        put(
            HeaderName::from_static("x-cairn-gray"),
            HeaderValue::from_static("true"),
        );
    }
    put(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// The native API's `cas_md5` as an expectation: absent, anything goes; `""`, the
/// config must not exist yet; else it must have that md5.
fn expectation(cas_md5: Option<String>) -> Expect {
    match cas_md5 {
        None => Expect::Any,
        Some(md5) if md5.is_empty() => Expect::Absent,
        Some(md5) => Expect::Md5(md5),
    }
}

/// What a person's change came to: done, or a change request (`202`) where the
/// namespace requires review.
fn proposed(proposal: Proposal, done: impl FnOnce(Proposal) -> Response) -> Response {
    match proposal {
        Proposal::Opened(request) => (
            StatusCode::ACCEPTED,
            Json(super::reviews::ChangeRequestView::from(&*request)),
        )
            .into_response(),
        other => done(other),
    }
}

/// Creates or replaces a config. Structured formats are validated unless `force` is
/// set; `cas_md5` makes the write conditional on the current content. In a namespace
/// that requires review, a person's publish opens a change request instead (`202`);
/// a service token's is refused unless it may publish without review.
#[utoipa::path(put, path = "/api/v1/configs/{namespace}/{group}/{data_id}", tag = "configs",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    request_body = PublishRequest,
    responses((status = 200, body = ConfigView),
        (status = 202, description = "kept for review", body = super::reviews::ChangeRequestView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn publish_config(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
    ApiJson(req): ApiJson<PublishRequest>,
) -> Result<Response, ApiError> {
    let key = config_key(path)?;
    let input = PublishInput {
        content: req.content,
        format: parse_format(req.format)?,
        description: req.description,
        tags: req.tags,
        sensitive: req.sensitive,
        expect: expectation(req.cas_md5),
        force: req.force,
        comment: req.comment,
        emergency: req.emergency,
    };
    let proposal = state
        .service
        .propose_publish(key, input, &actor(&caller, &addr))
        .await?;
    Ok(proposed(proposal, released))
}

/// The answer to a change made at once.
fn released(proposal: Proposal) -> Response {
    match proposal {
        Proposal::Released(record) => Json(ConfigView::new(&record, false)).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Deletes a config. Its history stays. In a namespace that requires review, a
/// person's deletion opens a change request instead (`202`).
#[utoipa::path(delete, path = "/api/v1/configs/{namespace}/{group}/{data_id}", tag = "configs",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path), DeleteQuery),
    responses((status = 204),
        (status = 202, description = "kept for review", body = super::reviews::ChangeRequestView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_config(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let key = config_key(path)?;
    let emergency = q.emergency.then(|| q.comment.clone().unwrap_or_default());
    let proposal = state
        .service
        .propose_delete(
            key,
            expectation(q.cas_md5),
            &actor(&caller, &addr),
            emergency,
            q.comment,
        )
        .await?;
    Ok(proposed(proposal, released))
}

/// A config's history, newest first (without contents).
#[utoipa::path(get, path = "/api/v1/configs/{namespace}/{group}/{data_id}/history", tag = "history",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path), PageQuery),
    responses((status = 200, body = HistoryPage), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<SharedState>,
    ReadableKey { key, .. }: ReadableKey,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let page = page(q.page, q.page_size)?;
    let (items, total) = state.service.history(&key, page).await?;
    // No history at all: the config never existed (a deleted one keeps its history).
    if total == 0 {
        return Err(ServiceError::ConfigNotFound(key).into());
    }
    Ok(Json(HistoryPage {
        items: items.iter().map(|h| HistoryView::new(h, false)).collect(),
        total,
        page: page.number,
        page_size: page.size,
    }))
}

/// One historical version of a config, with its content.
#[utoipa::path(get, path = "/api/v1/configs/{namespace}/{group}/{data_id}/history/{revision}", tag = "history",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path), ("revision" = i64, Path, minimum = 1)),
    responses((status = 200, body = HistoryView), (status = 404, body = ErrorBody)))]
async fn history_entry(
    State(state): State<SharedState>,
    caller: Caller,
    source: super::Source,
    ApiPath((namespace, group, data_id, revision)): ApiPath<(String, String, String, Revision)>,
) -> Result<Json<HistoryView>, ApiError> {
    let key = cairn_core::ConfigKey::parse(&namespace, &group, &data_id)?;
    state
        .service
        .may_read(&caller, &key, source.via("native"))?;
    let entry = state.service.history_entry(&caller, &key, revision).await?;
    Ok(Json(HistoryView::new(&entry, true)))
}

/// Publishes an earlier revision's content again, as a new revision. In a namespace
/// that requires review, a person's rollback opens a change request instead (`202`).
#[utoipa::path(post, path = "/api/v1/configs/{namespace}/{group}/{data_id}/rollback", tag = "history",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    request_body = RollbackRequest,
    responses((status = 200, body = ConfigView),
        (status = 202, description = "kept for review", body = super::reviews::ChangeRequestView),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rollback(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> Result<Response, ApiError> {
    let key = config_key(path)?;
    let emergency = req.emergency.then(|| req.comment.unwrap_or_default());
    let proposal = state
        .service
        .propose_rollback(
            key,
            req.revision,
            expectation(req.cas_md5),
            &actor(&caller, &addr),
            emergency,
        )
        .await?;
    Ok(proposed(proposal, released))
}

/// A unified diff between two revisions (or a revision and the current content).
#[utoipa::path(get, path = "/api/v1/configs/{namespace}/{group}/{data_id}/diff", tag = "history",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path), DiffQuery),
    responses((status = 200, description = "a unified diff; empty when equal", body = String, content_type = "text/x-diff"),
        (status = 404, body = ErrorBody)))]
async fn diff(
    State(state): State<SharedState>,
    ReadableKey { caller, key }: ReadableKey,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Response, ApiError> {
    let diff = state.service.diff(&caller, &key, q.from, q.to).await?;
    Ok(([(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")], diff).into_response())
}

/// Stores every sealed value under this node's current encryption key (admin): data
/// keys wrapped by `encryption_old_key_file`'s key are wrapped again, values written
/// before encryption was turned on are sealed. Safe to repeat; the nodes serve
/// throughout.
#[utoipa::path(post, path = "/api/v1/encryption/rotate", tag = "encryption",
    responses((status = 200, body = RotateReport), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn rotate_key(
    State(state): State<SharedState>,
    Admin(by): Admin,
) -> Result<Json<RotateReport>, ApiError> {
    let Some(sealer) = state.sealer.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_encryption_key",
            "this node has no encryption key to rotate to: set encryption_key_file (and \
             encryption_old_key_file to the key in use until now) and restart it",
        ));
    };
    let unopenable = |why: String| {
        ApiError::new(
            StatusCode::CONFLICT,
            "encryption_key_mismatch",
            format!("{why}; nothing after it was changed, and what was done stays done"),
        )
    };
    let resealed = state.service.reseal().await;
    let target = match &resealed {
        Ok(d) => format!(
            "{} re-wrapped, {} sealed, {} already current",
            d.rewrapped, d.sealed, d.current
        ),
        Err(_) => "every sealed value".to_owned(),
    };
    let done = match audit(&state).done(&by, "encryption.rotate", "", target, resealed) {
        Ok(done) => done,
        Err(cairn_store::StoreError::Encryption(why)) => return Err(unopenable(why)),
        Err(e) => return Err(crate::service::ServiceError::from(e).into()),
    };
    let dir = state.settings.data_dir.clone();
    let file =
        tokio::task::spawn_blocking(move || crate::auth::reseal_signing_key_file(&dir, &sealer))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .map_err(|e| unopenable(format!("the token signing key file: {e}")))?;
    let mut report = RotateReport {
        rewrapped: done.rewrapped,
        sealed: done.sealed,
        current: done.current,
        raced: done.raced,
    };
    match file {
        Some(cairn_store::seal::Resealed::Rewrapped) => report.rewrapped += 1,
        Some(cairn_store::seal::Resealed::Sealed) => report.sealed += 1,
        Some(cairn_store::seal::Resealed::Current) => report.current += 1,
        None => {}
    }
    Ok(Json(report))
}

/// Lists users (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = [UserView]), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<SharedState>,
    _: Admin,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = state.auth.list_users().await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<StatusCode, ApiError> {
    let username = Username::parse(&req.username)?;
    let role = match req.role.as_deref() {
        None | Some("user") => Role::User,
        Some("admin") => Role::Admin,
        Some(other) => return Err(crate::auth::AuthError::UnknownRole(other.to_owned()).into()),
    };
    let made = state
        .auth
        .add_user(&username, &Secret::from(req.password), role)
        .await;
    let target = format!("user {username} ({role})");
    audit(&state).done(&by, "user.create", "", target, made)?;
    Ok(StatusCode::CREATED)
}

/// Deletes a user (admin). The last admin cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_user(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let username = Username::parse(&username)?;
    let deleted = state.auth.delete_user(&username).await;
    audit(&state).done(&by, "user.delete", "", format!("user {username}"), deleted)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a user another role (admin). The last admin cannot be made a user.
#[utoipa::path(put, path = "/api/v1/users/{username}/role", tag = "users",
    params(("username" = String, Path)), request_body = SetRole,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn set_role(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<SetRole>,
) -> Result<StatusCode, ApiError> {
    let username = Username::parse(&username)?;
    let role = Role::parse(&req.role).ok_or(crate::auth::AuthError::UnknownRole(req.role))?;
    let set = state.auth.set_role(&username, role).await;
    let target = format!("user {username} -> {role}");
    audit(&state).done(&by, "user.role", "", target, set)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's password: your own, or anyone's as admin. Tokens issued before stop
/// working.
#[utoipa::path(put, path = "/api/v1/users/{username}/password", tag = "users",
    params(("username" = String, Path)), request_body = SetPassword,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_password(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(username): ApiPath<String>,
    ApiJson(req): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    use crate::auth::AuthError;
    let username = Username::parse(&username)?;
    let caller = &by.caller;
    let own = caller.username == username;
    let target = format!("user {username}");
    if caller.role != Role::Admin && !own {
        let refused: Result<(), _> = Err(AuthError::Forbidden);
        audit(&state).done(&by, "user.password", "", target.clone(), refused)?;
    }
    // A stolen token alone must not be enough to take over an account.
    match req.current_password {
        Some(current) if own => state
            .auth
            .check_password(&username, &Secret::from(current))
            .await
            .inspect_err(|e| {
                audit(&state).act(
                    &by,
                    "user.password",
                    "",
                    target.clone(),
                    crate::audit::Outcome::Denied,
                    format!("current password: {e}"),
                );
            })
            .map_err(|e| match e {
                AuthError::BadCredentials => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_password",
                    "the current password is wrong",
                ),
                other => other.into(),
            })?,
        // Admins too: a stolen admin token must not be enough to lock the owner out.
        None if own => return Err(AuthError::CurrentPasswordRequired.into()),
        _ => {}
    }
    let set = state
        .auth
        .set_password(&username, &Secret::from(req.password))
        .await;
    audit(&state).done(&by, "user.password", "", target, set)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who watches a config: every client of every surface (native long poll or stream,
/// Nacos HTTP or gRPC, Apollo), with what it holds and whether that is current; on this
/// node, or with `cluster=true` on every live node (asked with the caller's token).
#[utoipa::path(get, path = "/api/v1/configs/{namespace}/{group}/{data_id}/listeners", tag = "configs",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path), ListenersScope),
    responses((status = 200, body = ListenersView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn config_listeners(
    State(state): State<SharedState>,
    ReadableKey { key, .. }: ReadableKey,
    headers: axum::http::HeaderMap,
    ApiQuery(scope): ApiQuery<ListenersScope>,
) -> Result<Json<ListenersView>, ApiError> {
    let token = bearer(&headers);
    Ok(Json(
        super::peers::listeners(&state, &key, scope.cluster.then_some(token)).await,
    ))
}

/// What one client watches, by its IP address: on this node, or with `cluster=true` on
/// every live node (asked with the caller's token).
#[utoipa::path(get, path = "/api/v1/listeners", tag = "configs", params(ListenersQuery),
    responses((status = 200, body = ClientWatchesView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn client_listeners(
    State(state): State<SharedState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<ListenersQuery>,
) -> Result<Json<ClientWatchesView>, ApiError> {
    let ip: std::net::IpAddr = q.ip.trim().parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_argument",
            format!("ip {:?} is not an IP address", q.ip),
        )
    })?;
    let token = bearer(&headers);
    Ok(Json(
        super::peers::client_watches(&state, &caller, ip, q.cluster.then_some(token)).await,
    ))
}

/// The bearer token a request carries, for asking the other nodes in the caller's name.
fn bearer(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(7..))
        .unwrap_or("")
        .trim()
}

/// The live nodes of the cluster (this node alone without a shared database). Clients
/// use it to fail over.
#[utoipa::path(get, path = "/api/v1/cluster/nodes", tag = "cluster",
    responses((status = 200, body = [NodeView]), (status = 503, body = ErrorBody)))]
async fn cluster_nodes(
    State(state): State<SharedState>,
    _: Caller,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    let nodes = state
        .sync
        .live_nodes()
        .await
        .map_err(crate::service::ServiceError::from)?;
    Ok(Json(nodes.iter().map(NodeView::from).collect()))
}

fn parse_format(format: Option<String>) -> Result<Option<Format>, ApiError> {
    format
        .filter(|f| !f.is_empty())
        .map(|f| f.parse::<Format>())
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_format", e.to_string()))
}

/// Creates or replaces the config's gray release: its content goes only to clients whose
/// IP is listed or who declare one of the labels.
#[utoipa::path(put, path = "/api/v1/configs/{namespace}/{group}/{data_id}/gray", tag = "gray",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    request_body = GrayRequest,
    responses((status = 200, body = GrayView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn gray_publish(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
    ApiJson(req): ApiJson<GrayRequest>,
) -> Result<Json<GrayView>, ApiError> {
    let key = config_key(path)?;
    let input = GrayInput {
        content: req.content,
        format: parse_format(req.format)?,
        ips: req.ips,
        labels: req.labels,
        force: req.force,
        comment: req.comment,
    };
    let record = state
        .service
        .gray_publish(key, input, &actor(&caller, &addr))
        .await?;
    Ok(Json(GrayView::new(&record, false)))
}

/// The config's gray release, with its content and rules.
#[utoipa::path(get, path = "/api/v1/configs/{namespace}/{group}/{data_id}/gray", tag = "gray",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    responses((status = 200, body = GrayView), (status = 404, body = ErrorBody)))]
async fn gray_show(
    State(state): State<SharedState>,
    ReadableKey { key, .. }: ReadableKey,
) -> Result<Json<GrayView>, ApiError> {
    let gray = state.service.gray(&key)?;
    Ok(Json(GrayView::new(&gray, true)))
}

/// Makes the gray content the main content for everyone (a new revision).
#[utoipa::path(post, path = "/api/v1/configs/{namespace}/{group}/{data_id}/gray/promote", tag = "gray",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    responses((status = 200, body = ConfigView), (status = 404, body = ErrorBody)))]
async fn gray_promote(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
) -> Result<Json<ConfigView>, ApiError> {
    let key = config_key(path)?;
    let record = state
        .service
        .gray_promote(key, &actor(&caller, &addr))
        .await?;
    Ok(Json(ConfigView::new(&record, false)))
}

/// Ends the gray release: its clients go back to the main content.
#[utoipa::path(delete, path = "/api/v1/configs/{namespace}/{group}/{data_id}/gray", tag = "gray",
    params(("namespace" = String, Path), ("group" = String, Path), ("data_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn gray_abandon(
    State(state): State<SharedState>,
    caller: Caller,
    addr: ClientAddr,
    path: KeyPath,
) -> Result<StatusCode, ApiError> {
    let key = config_key(path)?;
    state
        .service
        .gray_abandon(key, &actor(&caller, &addr))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn access_key_error(e: cairn_store::StoreError) -> ApiError {
    use cairn_store::StoreError as E;
    match e {
        E::Conflict(why) => ApiError::new(StatusCode::CONFLICT, "too_many_access_keys", why),
        E::AccessKeyNotFound(app, id) => ApiError::new(
            StatusCode::NOT_FOUND,
            "access_key_not_found",
            format!("app {app} has no access key {id}"),
        ),
        other => crate::service::ServiceError::from(other).into(),
    }
}

fn app_id(app_id: &str) -> Result<&str, ApiError> {
    if crate::access_keys::valid_app_id(app_id) {
        Ok(app_id)
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!("{app_id:?} is not an app id: letters, digits, _ - and ."),
        ))
    }
}

/// An app's access keys, with their secrets (admin).
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/access-keys", tag = "access keys",
    params(("app_id" = String, Path)),
    responses((status = 200, body = [AccessKeyView]), (status = 403, body = ErrorBody)))]
async fn list_access_keys(
    State(state): State<SharedState>,
    _: Admin,
    ApiPath(app): ApiPath<String>,
) -> Result<Json<Vec<AccessKeyView>>, ApiError> {
    let app = app_id(&app)?;
    Ok(Json(
        state
            .access_keys
            .list(app)
            .iter()
            .map(AccessKeyView::from)
            .collect(),
    ))
}

/// Makes an access key for an app (at most 5), signing for the namespaces (Apollo envs)
/// given, or every namespace. From then on the app's Apollo clients must sign their
/// requests there with an enabled key (admin). The body is optional.
#[utoipa::path(post, path = "/api/v1/apps/{app_id}/access-keys", tag = "access keys",
    params(("app_id" = String, Path)), request_body(content = CreateAccessKey, description = "optional"),
    responses((status = 201, body = AccessKeyView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_access_key(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiPath(app): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<AccessKeyView>), ApiError> {
    let app = app_id(&app)?;
    let req: CreateAccessKey = if body.iter().all(u8::is_ascii_whitespace) {
        CreateAccessKey::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_request", e.to_string()))?
    };
    for ns in &req.namespaces {
        Namespace::parse(ns)?;
    }
    let target = crate::access_keys::describe(app, &req.namespaces);
    let made = state.access_keys.create(app, req.namespaces).await;
    let key = audit(&state)
        .done(&by, "access_key.create", "", target, made)
        .map_err(access_key_error)?;
    Ok((StatusCode::CREATED, Json(AccessKeyView::from(&key))))
}

/// Enables or disables an access key (admin).
#[utoipa::path(put, path = "/api/v1/apps/{app_id}/access-keys/{id}", tag = "access keys",
    params(("app_id" = String, Path), ("id" = String, Path)), request_body = SetAccessKey,
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn set_access_key(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiPath((app, id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<SetAccessKey>,
) -> Result<StatusCode, ApiError> {
    let app = app_id(&app)?;
    let set = state.access_keys.set_enabled(app, &id, req.enabled).await;
    let action = if req.enabled {
        "access_key.enable"
    } else {
        "access_key.disable"
    };
    audit(&state)
        .done(
            &by,
            action,
            "",
            format!("access key {id} of app {app}"),
            set,
        )
        .map_err(access_key_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an access key (admin).
#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/access-keys/{id}", tag = "access keys",
    params(("app_id" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_access_key(
    State(state): State<SharedState>,
    Admin(by): Admin,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = app_id(&app)?;
    let deleted = state.access_keys.delete(app, &id).await;
    audit(&state)
        .done(
            &by,
            "access_key.delete",
            "",
            format!("access key {id} of app {app}"),
            deleted,
        )
        .map_err(access_key_error)?;
    Ok(StatusCode::NO_CONTENT)
}

fn audit(state: &SharedState) -> &crate::audit::AuditLog {
    state.auth.audit()
}

/// The subject a grant request names: exactly one of a user and a role.
fn subject_of(user: Option<String>, role: Option<String>) -> Result<Subject, ApiError> {
    match (user, role) {
        (Some(user), None) => Ok(Subject::User(Username::parse(&user)?)),
        (None, Some(role)) => Ok(Subject::Role(RoleName::parse(&role)?)),
        _ => Err(ApiError::bad_request(
            "invalid_argument",
            "name exactly one of user and role",
        )),
    }
}

fn scope_of(
    namespace: &str,
    group: Option<&str>,
    data_id: Option<&str>,
) -> Result<Scope, ApiError> {
    Ok(Scope::parse(
        namespace,
        group.unwrap_or("*"),
        data_id.unwrap_or("*"),
    )?)
}

/// Grants: an admin sees them all; anyone else those of the namespaces they administer
/// and their own.
#[utoipa::path(get, path = "/api/v1/grants", tag = "permissions", params(GrantsQuery),
    responses((status = 200, body = [GrantView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_grants(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<GrantsQuery>,
) -> Result<Json<Vec<GrantView>>, ApiError> {
    // An empty filter is no filter, as for every list.
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let wanted = match (non_empty(q.user), non_empty(q.role)) {
        (None, None) => None,
        (user, role) => Some(subject_of(user, role)?),
    };
    Ok(Json(
        state
            .auth
            .visible_grants(&caller)
            .iter()
            .filter(|g| wanted.as_ref().is_none_or(|w| &g.subject == w))
            .filter(|g| {
                q.namespace
                    .as_deref()
                    .is_none_or(|ns| g.scope.namespace.as_str() == ns)
            })
            .map(GrantView::from)
            .collect(),
    ))
}

/// Gives a user or role a level over a scope, replacing what it had over exactly that
/// scope. Admins anywhere; a namespace's admins within that namespace. Takes effect at
/// once on this node and within a heartbeat on the others.
#[utoipa::path(put, path = "/api/v1/grants", tag = "permissions", request_body = GrantRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_grant(
    State(state): State<SharedState>,
    by: Actor,
    ApiJson(req): ApiJson<GrantRequest>,
) -> Result<StatusCode, ApiError> {
    let subject = subject_of(req.user, req.role)?;
    let scope = scope_of(&req.namespace, req.group.as_deref(), req.data_id.as_deref())?;
    let level = Level::parse(&req.level).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_argument",
            format!(
                "unknown level {:?}; expected none, read, read-secret, write, approve or admin",
                req.level
            ),
        )
    })?;
    state.auth.grant(&by, subject, scope, level).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a grant away: the subject's grant over exactly this scope.
#[utoipa::path(delete, path = "/api/v1/grants", tag = "permissions", params(RevokeQuery),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_grant(
    State(state): State<SharedState>,
    by: Actor,
    ApiQuery(q): ApiQuery<RevokeQuery>,
) -> Result<StatusCode, ApiError> {
    let subject = subject_of(q.user, q.role)?;
    let scope = scope_of(&q.namespace, q.group.as_deref(), q.data_id.as_deref())?;
    if state.auth.revoke(&by, &subject, &scope).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "grant_not_found",
            format!(
                "{} {} has no grant over {scope}",
                subject.kind(),
                subject.name()
            ),
        ))
    }
}

/// The named roles, with their members and grant counts (admin).
#[utoipa::path(get, path = "/api/v1/roles", tag = "permissions",
    responses((status = 200, body = [RoleView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_roles(
    State(state): State<SharedState>,
    _: Admin,
) -> Result<Json<Vec<RoleView>>, ApiError> {
    let policy = state.auth.policy();
    let mut roles: std::collections::BTreeMap<String, RoleView> = Default::default();
    fn entry<'a>(
        roles: &'a mut std::collections::BTreeMap<String, RoleView>,
        name: &str,
    ) -> &'a mut RoleView {
        roles.entry(name.to_owned()).or_insert_with(|| RoleView {
            role: name.to_owned(),
            members: Vec::new(),
            grants: 0,
        })
    }
    for m in &policy.members {
        entry(&mut roles, m.role.as_str())
            .members
            .push(m.username.to_string());
    }
    for g in &policy.grants {
        if let Subject::Role(r) = &g.subject {
            entry(&mut roles, r.as_str()).grants += 1;
        }
    }
    Ok(Json(roles.into_values().collect()))
}

/// Makes a user a member of a role (admin); the role exists from its first member or
/// grant.
#[utoipa::path(put, path = "/api/v1/roles/{role}/members/{username}", tag = "permissions",
    params(("role" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_role_member(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath((role, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = RoleName::parse(&role)?;
    let username = Username::parse(&username)?;
    state.auth.add_to_role(&by, &role, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a user out of a role (admin).
#[utoipa::path(delete, path = "/api/v1/roles/{role}/members/{username}", tag = "permissions",
    params(("role" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_role_member(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath((role, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let role = RoleName::parse(&role)?;
    let username = Username::parse(&username)?;
    if state.auth.remove_from_role(&by, &role, &username).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_a_member",
            format!("{username} is not a member of role {role}"),
        ))
    }
}

/// Removes a role: its memberships and its grants (admin).
#[utoipa::path(delete, path = "/api/v1/roles/{role}", tag = "permissions",
    params(("role" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_role(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(role): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let role = RoleName::parse(&role)?;
    if state.auth.delete_role(&by, &role).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "role_not_found",
            format!("role {role} has no members and no grants"),
        ))
    }
}

/// An RFC 3339 time as Unix milliseconds.
fn millis_of(name: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(|at| (at.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|e| {
                    ApiError::bad_request(
                        "invalid_argument",
                        format!("{name} {t:?} is not an RFC 3339 time (2026-12-04T09:30:00Z): {e}"),
                    )
                })
        })
        .transpose()
}

/// The audit log, newest first, filtered (admin): every config change, administrative
/// act, login and refusal, from every node.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQueryParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn audit_log(
    State(state): State<SharedState>,
    _: Admin,
    ApiQuery(q): ApiQuery<AuditQueryParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let page = page(q.page, q.page_size)?;
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let query = cairn_store::AuditQuery {
        from: millis_of("from", q.from.as_deref())?,
        to: millis_of("to", q.to.as_deref())?,
        actor: non_empty(q.user),
        namespace: non_empty(q.namespace),
        action: non_empty(q.action),
        result: non_empty(q.result),
    };
    let (items, total) = state
        .auth
        .audit_entries(&query, page)
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(AuditPage {
        items: items.iter().map(AuditEntryView::from).collect(),
        total,
        page: page.number,
        page_size: page.size,
    }))
}

/// Makes a service token for an application or CI (admin): scoped to namespaces and
/// levels, accepted wherever a login token is. The token is in this answer only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "permissions", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_token(
    State(state): State<SharedState>,
    by: Actor,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let scopes = req
        .scopes
        .iter()
        .map(|s| {
            let level = Level::parse(&s.level)
                .filter(|l| *l != Level::None)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_argument",
                        format!("unknown level {:?}; expected read, write or admin", s.level),
                    )
                })?;
            Ok((s.namespace.clone(), level))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let token = state
        .auth
        .create_token(&by, &req.name, scopes, req.publish_without_review)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: req.name,
            token: token.expose_secret().to_owned(),
        }),
    ))
}

/// The service tokens, with their scopes and last use (admin); never the tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "permissions",
    responses((status = 200, body = [TokenView]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<SharedState>,
    _: Admin,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.auth.service_tokens().await?;
    Ok(Json(tokens.iter().map(TokenView::from).collect()))
}

/// Revokes a service token (admin): refused at once on this node and within a heartbeat
/// on the others; its open watches end.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "permissions",
    params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<SharedState>,
    by: Actor,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.auth.revoke_token(&by, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "token_not_found",
            format!("there is no service token {name}"),
        ))
    }
}
