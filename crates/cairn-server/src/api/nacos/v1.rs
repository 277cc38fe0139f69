//! Nacos's v1 HTTP API: configs, long-poll listener, login, history, namespaces and the
//! server list.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::pattern::Wildcard;
use cairn_core::{ConfigKey, DataId, Group, Namespace};
use cairn_store::{HistoryRecord, Op, Page};
use serde_json::{json, Value};

use super::{
    authenticate, caused, config_key, content_type, http_date, iso_time, namespace, no_cache,
    parse_type, plain, tenant_of, Params,
};
use crate::api::{ClientAddr, Identity, SharedState};
use crate::auth::{Caller, Role};
use crate::service::{Actor, GrayInput, ListFilter, PublishInput, ServiceError};
use crate::settings::Secret;

type Answer = Result<Response, Response>;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/nacos/v1/cs/configs",
            get(get_config).post(publish).delete(delete),
        )
        .route("/nacos/v1/cs/configs/listener", post(listen))
        .route("/nacos/v1/auth/login", post(login))
        .route("/nacos/v1/auth/users/login", post(login))
        .route("/nacos/v1/cs/history", get(history))
        .route("/nacos/v1/cs/history/previous", get(history_previous))
        .route("/nacos/v1/cs/history/configs", get(history_configs))
        .route(
            "/nacos/v1/console/namespaces",
            get(namespaces)
                .post(create_namespace)
                .put(update_namespace)
                .delete(delete_namespace),
        )
        .route("/nacos/serverlist", get(server_list))
}

/// A service error as Nacos would answer it.
pub(super) fn service_error(e: ServiceError) -> Response {
    match &e {
        ServiceError::ConfigNotFound(_) => {
            plain(StatusCode::NOT_FOUND, "config data not exist\n".into())
        }
        ServiceError::CasConflict { .. } => caused(
            StatusCode::CONFLICT,
            "Cas publish fail, server md5 may have changed.",
        ),
        ServiceError::Unavailable(_) => caused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        ServiceError::Internal(_) => {
            tracing::error!(error = %e, "Nacos request failed");
            caused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            )
        }
        ServiceError::ConcurrentChange(_) => caused(StatusCode::CONFLICT, &e.to_string()),
        ServiceError::NamespaceNotFound(_) | ServiceError::GrayNotFound(_) => {
            caused(StatusCode::NOT_FOUND, &e.to_string())
        }
        ServiceError::ContentTooLarge { max, .. } => caused(
            StatusCode::BAD_REQUEST,
            &format!("invalid content, over {max}"),
        ),
        _ => caused(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

fn actor(caller: &crate::auth::Caller, addr: &ClientAddr) -> Actor {
    crate::api::actor(caller, addr)
}

/// GET /nacos/v1/cs/configs: the content as this client sees it, with Nacos's headers;
/// with `beta=true` the beta (gray) release; with `search` a page of configs.
async fn get_config(
    State(state): State<SharedState>,
    Identity(client): Identity,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    authenticate(&state, &headers, &params).await?;
    if params.get("search").is_some() {
        return search(&state, &params);
    }
    let key = config_key(&params, "tenant")?;
    if params.flag("beta") {
        let data = state.service.gray(&key).ok().map(|gray| {
            json!({
                "id": gray.revision.to_string(),
                "dataId": key.data_id.as_str(),
                "group": key.group.as_str(),
                "content": gray.content,
                "md5": gray.md5,
                "encryptedDataKey": "",
                "tenant": tenant_of(&key.namespace),
                "appName": "",
                "type": gray.format.as_str(),
                "betaIps": gray.rules.ips_text(),
            })
        });
        return Ok(
            Json(json!({ "code": 200, "message": "query beta ok", "data": data })).into_response(),
        );
    }
    let Some(view) = state.service.view(&key, &client) else {
        return Err(plain(
            StatusCode::NOT_FOUND,
            "config data not exist\n".into(),
        ));
    };
    let modified = view
        .gray
        .as_ref()
        .map_or(view.config.updated_at, |g| g.created_at);
    let mut response = view.content_bytes().into_response();
    let h = response.headers_mut();
    h.insert(
        "Config-Type",
        HeaderValue::from_static(view.format().as_str()),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(view.format())),
    );
    if let Ok(md5) = HeaderValue::from_str(view.md5()) {
        h.insert("Content-MD5", md5);
    }
    if let Ok(date) = HeaderValue::from_str(&http_date(modified)) {
        h.insert(header::LAST_MODIFIED, date);
    }
    no_cache(h);
    if view.is_gray() {
        h.insert("isBeta", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// GET /nacos/v1/cs/configs?search=accurate|blur: a page of configs with content.
fn search(state: &SharedState, params: &Params) -> Answer {
    let blur = params.get("search") == Some("blur");
    let pattern = |name: &str| {
        params.get(name).map(|v| {
            if blur && !v.contains('*') {
                Wildcard::new(&format!("*{v}*"))
            } else {
                Wildcard::new(v)
            }
        })
    };
    let filter = ListFilter {
        namespace: Some(namespace(params.get("tenant"))?),
        group: pattern("group"),
        data_id: pattern("dataId"),
        tag: params.get("config_tags").map(str::to_owned),
        content: None,
    };
    let page = page_of(params)?;
    let (items, total) = state.service.list(&filter, page);
    // A page of full contents is bounded in bytes as well as in entries.
    let mut budget: usize = 32 << 20;
    let items: Vec<Value> = items
        .iter()
        .take_while(|c| {
            let fits = c.content.len() <= budget;
            budget = budget.saturating_sub(c.content.len());
            fits
        })
        .map(|c| {
            json!({
                "id": c.revision.to_string(),
                "dataId": c.key.data_id.as_str(),
                "group": c.key.group.as_str(),
                "content": c.content,
                "md5": c.md5,
                "tenant": tenant_of(&c.key.namespace),
                "appName": "",
                "type": c.format.as_str(),
            })
        })
        .collect();
    Ok(Json(page_json(total as u64, page, items)).into_response())
}

pub(super) fn page_of(params: &Params) -> Result<Page, Response> {
    Ok(Page {
        number: params.number("pageNo")?.unwrap_or(1).max(1),
        size: params.number("pageSize")?.unwrap_or(100).clamp(1, 500),
    })
}

pub(super) fn page_json(total: u64, page: Page, items: Vec<Value>) -> Value {
    json!({
        "totalCount": total,
        "pageNumber": page.number,
        "pagesAvailable": total.div_ceil(u64::from(page.size)),
        "pageItems": items,
    })
}

/// Publishes through Nacos parameters; shared by v1 and v2. `Ok(true)` on success.
pub(super) async fn publish_from(
    state: &SharedState,
    headers: &HeaderMap,
    params: &Params,
    key: ConfigKey,
    caller: &Caller,
    actor: &Actor,
) -> Result<(), Response> {
    let Some(content) = params.get("content") else {
        return Err(caused(StatusCode::BAD_REQUEST, "content is blank : "));
    };
    let description = params.get("desc").map(str::to_owned);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 128)
    {
        return Err(caused(StatusCode::BAD_REQUEST, "too long desc, over 128"));
    }
    let tags = params
        .get("config_tags")
        .or_else(|| params.get("configTags"))
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
    if tags.as_ref().is_some_and(|t| t.len() > 5) {
        return Err(caused(
            StatusCode::BAD_REQUEST,
            "too much config_tags, over 5",
        ));
    }
    // Nacos stores a publish without a type as text, whatever the data id's extension,
    // and never parses it; clients publish without one by default.
    let format = Some(parse_type(params.get("type")).unwrap_or(cairn_core::Format::Text));
    let beta_ips = headers
        .get("betaIps")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(ips) = beta_ips {
        let input = GrayInput {
            content: content.to_owned(),
            format,
            ips: ips
                .split(',')
                .map(|ip| ip.trim().to_owned())
                .filter(|ip| !ip.is_empty())
                .collect(),
            labels: Vec::new(),
            force: false,
            comment: Some("beta release through the Nacos API".into()),
        };
        return match state.service.gray_publish(key, input, actor).await {
            Ok(_) => Ok(()),
            Err(ServiceError::ConfigNotFound(k)) => Err(caused(
                StatusCode::BAD_REQUEST,
                &format!("config {k} must be published before a beta release"),
            )),
            Err(e) => Err(service_error(e)),
        };
    }
    let cas_md5 = headers
        .get("casMd5")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        // Nacos's CAS publishes over that md5, or creates when there is nothing yet.
        .map(|md5| {
            if state.service.get(&key).is_some() {
                md5.to_owned()
            } else {
                String::new()
            }
        });
    let input = PublishInput {
        content: content.to_owned(),
        format,
        description,
        tags,
        cas_md5,
        force: false,
        comment: Some("published through the Nacos API".into()),
    };
    match state
        .service
        .publish(key.clone(), input.clone(), actor)
        .await
    {
        Ok(_) => Ok(()),
        // Nacos clients publish into any tenant id: the namespace is made on first use,
        // once the publish is otherwise valid, when the caller may make namespaces.
        Err(ServiceError::NamespaceNotFound(_)) if caller.role == Role::Admin => {
            match state
                .service
                .create_namespace(
                    key.namespace.clone(),
                    String::new(),
                    "created by a Nacos client".into(),
                )
                .await
            {
                Ok(_) | Err(ServiceError::NamespaceExists(_)) => {}
                Err(e) => return Err(service_error(e)),
            }
            state
                .service
                .publish(key, input, actor)
                .await
                .map(drop)
                .map_err(service_error)
        }
        Err(e) => Err(service_error(e)),
    }
}

fn json_true() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        "true",
    )
        .into_response()
}

/// POST /nacos/v1/cs/configs: publish (or, with a `betaIps` header, a beta release).
async fn publish(
    State(state): State<SharedState>,
    addr: ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let key = config_key(&params, "tenant")?;
    publish_from(
        &state,
        &headers,
        &params,
        key,
        &caller,
        &actor(&caller, &addr),
    )
    .await?;
    Ok(json_true())
}

/// DELETE /nacos/v1/cs/configs: delete (idempotent, as in Nacos); with `beta=true`,
/// stop the beta release.
async fn delete(
    State(state): State<SharedState>,
    addr: ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let key = config_key(&params, "tenant")?;
    let actor = actor(&caller, &addr);
    if params.flag("beta") {
        return match state.service.gray_abandon(key, &actor).await {
            Ok(_) | Err(ServiceError::GrayNotFound(_)) => Ok(Json(
                json!({ "code": 200, "message": "stop beta ok", "data": true }),
            )
            .into_response()),
            Err(e) => {
                tracing::warn!(error = %e, "stopping a beta release failed");
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(
                        json!({ "code": 500, "message": "remove beta data error", "data": false }),
                    ),
                )
                    .into_response())
            }
        };
    }
    match state.service.delete(key, None, &actor).await {
        Ok(_) | Err(ServiceError::ConfigNotFound(_)) => Ok(json_true()),
        Err(e) => Err(service_error(e)),
    }
}

/// One entry of `Listening-Configs`, with the tenant exactly as the client sent it.
struct Listened {
    key: ConfigKey,
    md5: String,
    data_id: String,
    group: String,
    tenant: String,
}

fn invalid_probe() -> Response {
    caused(StatusCode::BAD_REQUEST, "invalid probeModify")
}

/// Parses `Listening-Configs`: records `dataId ␂ group ␂ md5 [␂ tenant] ␁`, after a
/// second URL-decoding as Nacos does.
fn parse_listening(raw: &str, max: usize) -> Result<Vec<Listened>, Response> {
    // Java's URLDecoder refuses a `%` without two hex digits, and Nacos answers 400.
    let bytes = raw.as_bytes();
    let malformed_escape = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed_escape {
        return Err(invalid_probe());
    }
    let spaced = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| invalid_probe())?;
    let mut listened = Vec::new();
    for record in decoded.split('\u{1}').filter(|r| !r.is_empty()) {
        let fields: Vec<&str> = record.split('\u{2}').collect();
        if !(3..=4).contains(&fields.len()) {
            return Err(invalid_probe());
        }
        let tenant = fields.get(3).copied().unwrap_or("");
        let key = ConfigKey::new(
            namespace(Some(tenant)).map_err(|_| invalid_probe())?,
            Group::parse(fields[1]).map_err(|_| invalid_probe())?,
            DataId::parse(fields[0]).map_err(|_| invalid_probe())?,
        );
        listened.push(Listened {
            key,
            md5: fields[2].to_owned(),
            data_id: fields[0].to_owned(),
            group: fields[1].to_owned(),
            tenant: tenant.to_owned(),
        });
        if listened.len() > max {
            return Err(invalid_probe());
        }
    }
    if listened.is_empty() {
        return Err(invalid_probe());
    }
    Ok(listened)
}

/// How long a listener asking for `timeout_ms` is held: Nacos answers half a second
/// before the client gives up and never holds for less than 10 s; this node's maximum
/// hold still applies.
fn hold_for(timeout_ms: u64, max: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(timeout_ms.saturating_sub(500).max(10_000)).min(max)
}

/// POST /nacos/v1/cs/configs/listener: Nacos long polling on the shared watch hub.
async fn listen(
    State(state): State<SharedState>,
    Identity(client): Identity,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    authenticate(&state, &headers, &params).await?;
    let raw = params.get("Listening-Configs").ok_or_else(invalid_probe)?;
    let listened = parse_listening(raw, state.settings.watch_max_keys.min(10_000))?;
    let timeout = match headers
        .get("Long-Pulling-Timeout")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => std::time::Duration::ZERO,
        Some(text) => {
            let ms: u64 = text.trim().parse().map_err(|_| {
                caused(
                    StatusCode::BAD_REQUEST,
                    &format!("For input string: \"{text}\""),
                )
            })?;
            let no_hangup = headers
                .get("Long-Pulling-Timeout-No-Hangup")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if no_hangup {
                std::time::Duration::ZERO
            } else {
                hold_for(ms, state.settings.watch_max_timeout())
            }
        }
    };
    let held: Vec<(ConfigKey, String)> = listened
        .iter()
        .map(|l| (l.key.clone(), l.md5.clone()))
        .collect();
    let stale = state
        .service
        .wait_for_changes(&held, &client, timeout)
        .await;
    if stale.is_empty() {
        return Ok(StatusCode::OK.into_response());
    }
    let stale: std::collections::HashSet<ConfigKey> = stale.into_iter().map(|(k, _)| k).collect();
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    for l in listened.iter().filter(|l| stale.contains(&l.key)) {
        if !seen.insert((&l.data_id, &l.group, &l.tenant)) {
            continue;
        }
        text.push_str(&l.data_id);
        text.push('\u{2}');
        text.push_str(&l.group);
        if !l.tenant.is_empty() {
            text.push('\u{2}');
            text.push_str(&l.tenant);
        }
        text.push('\u{1}');
    }
    let mut body: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    body.push('\n');
    let mut response = plain(StatusCode::OK, body);
    no_cache(response.headers_mut());
    Ok(response)
}

/// POST /nacos/v1/auth/login: `username` and `password` (query or form) → a token.
async fn login(State(state): State<SharedState>, params: Params) -> Answer {
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return Err(plain(StatusCode::FORBIDDEN, "user not found!".into()));
    };
    let issued = state
        .auth
        .login(username, &Secret::new(password))
        .await
        .map_err(|_| plain(StatusCode::FORBIDDEN, "user not found!".into()))?;
    let token = issued.token.expose().to_owned();
    let mut response = Json(json!({
        "accessToken": token,
        "tokenTtl": issued.expires_in_secs,
        "globalAdmin": issued.role == Role::Admin,
        "username": username,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        response.headers_mut().insert(header::AUTHORIZATION, value);
    }
    Ok(response)
}

/// Nacos's operation letter for a history entry.
fn op_type(entry: &HistoryRecord, oldest: bool) -> &'static str {
    match entry.op {
        Op::Delete | Op::GrayAbandon => "D",
        Op::Publish if oldest => "I",
        _ => "U",
    }
}

pub(super) fn history_item(entry: &HistoryRecord, oldest: bool, with_content: bool) -> Value {
    let gray = matches!(entry.op, Op::GrayPublish | Op::GrayAbandon);
    json!({
        "id": entry.revision.to_string(),
        "lastId": -1,
        "dataId": entry.key.data_id.as_str(),
        "group": entry.key.group.as_str(),
        "tenant": tenant_of(&entry.key.namespace),
        "appName": "",
        "md5": with_content.then(|| entry.md5.clone()),
        "content": with_content.then(|| entry.content.clone()),
        "srcIp": entry.source,
        "srcUser": entry.operator,
        "opType": op_type(entry, oldest),
        "publishType": if gray { "gray" } else { "formal" },
        "type": entry.format.as_str(),
        "createdTime": iso_time(entry.created_at),
        "lastModifiedTime": iso_time(entry.created_at),
    })
}

/// A page of a config's history, newest first, as Nacos lists it.
pub(super) async fn history_page(
    state: &SharedState,
    key: &ConfigKey,
    page: Page,
) -> Result<Value, Response> {
    let (items, total) = state
        .service
        .history(key, page)
        .await
        .map_err(service_error)?;
    let first_index = page.offset();
    let items = items
        .iter()
        .enumerate()
        .map(|(i, h)| history_item(h, first_index + i as u64 + 1 == total, false))
        .collect();
    Ok(page_json(total, page, items))
}

/// The newest entry of a config's history before revision `before`.
pub(super) async fn previous_entry(
    state: &SharedState,
    key: &ConfigKey,
    before: i64,
) -> Result<Option<HistoryRecord>, Response> {
    state
        .service
        .history_before(key, before)
        .await
        .map_err(service_error)
}

/// GET /nacos/v1/cs/history: a page (`search=accurate`) or one entry (`nid`).
async fn history(State(state): State<SharedState>, headers: HeaderMap, params: Params) -> Answer {
    authenticate(&state, &headers, &params).await?;
    let key = config_key(&params, "tenant")?;
    if let Some(nid) = params.number::<i64>("nid")? {
        return Ok(match state.service.history_entry(&key, nid).await {
            Ok(entry) => Json(history_item(&entry, false, true)).into_response(),
            Err(ServiceError::RevisionNotFound { .. }) => StatusCode::OK.into_response(),
            Err(e) => return Err(service_error(e)),
        });
    }
    Ok(Json(history_page(&state, &key, page_of(&params)?).await?).into_response())
}

/// GET /nacos/v1/cs/history/previous: the entry before revision `id`.
async fn history_previous(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    authenticate(&state, &headers, &params).await?;
    let key = config_key(&params, "tenant")?;
    let id: i64 = params.required_number("id")?;
    Ok(match previous_entry(&state, &key, id).await? {
        Some(entry) => Json(history_item(&entry, false, true)).into_response(),
        None => StatusCode::OK.into_response(),
    })
}

pub(super) fn config_infos(state: &SharedState, ns: &Namespace) -> Vec<Value> {
    let filter = ListFilter {
        namespace: Some(ns.clone()),
        ..ListFilter::default()
    };
    let (items, _) = state.service.list(
        &filter,
        Page {
            number: 1,
            size: u32::MAX,
        },
    );
    items
        .iter()
        .map(|c| {
            json!({
                "id": c.revision.to_string(),
                "dataId": c.key.data_id.as_str(),
                "group": c.key.group.as_str(),
                "tenant": tenant_of(&c.key.namespace),
                "appName": "",
                "type": c.format.as_str(),
                "lastModified": c.updated_at,
            })
        })
        .collect()
}

/// GET /nacos/v1/cs/history/configs?tenant: the configs of a namespace.
async fn history_configs(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    authenticate(&state, &headers, &params).await?;
    let ns = namespace(params.get("tenant"))?;
    Ok(Json(config_infos(&state, &ns)).into_response())
}

fn namespace_json(info: &crate::service::NamespaceInfo) -> Value {
    let public = info.record.name.is_public();
    let show = if public {
        Namespace::PUBLIC.to_owned()
    } else if info.record.display_name.is_empty() {
        info.record.name.to_string()
    } else {
        info.record.display_name.clone()
    };
    json!({
        "namespace": tenant_of(&info.record.name),
        "namespaceShowName": show,
        "namespaceDesc": if public { Value::Null } else { Value::String(info.record.description.clone()) },
        "quota": 200,
        "configCount": info.config_count,
        "type": if public { 0 } else { 2 },
    })
}

/// GET /nacos/v1/console/namespaces (or one with `show=all&namespaceId`).
async fn namespaces(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    authenticate(&state, &headers, &params).await?;
    let mut list = state.service.namespaces().await.map_err(service_error)?;
    if params.get("show") == Some("all") {
        let wanted = namespace(params.get("namespaceId"))?;
        let Some(found) = list.iter().find(|n| n.record.name == wanted) else {
            return Err(caused(
                StatusCode::NOT_FOUND,
                &format!("namespace {wanted} does not exist"),
            ));
        };
        return Ok(Json(namespace_json(found)).into_response());
    }
    list.sort_by_key(|n| !n.record.name.is_public());
    let data: Vec<Value> = list.iter().map(namespace_json).collect();
    Ok(Json(json!({ "code": 200, "message": null, "data": data })).into_response())
}

async fn require_admin(
    state: &SharedState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(), Response> {
    let caller = authenticate(state, headers, params).await?;
    if caller.role != Role::Admin {
        return Err(super::forbidden("authorization failed!", params.path()));
    }
    Ok(())
}

fn json_bool(value: bool) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        if value { "true" } else { "false" },
    )
        .into_response()
}

/// POST /nacos/v1/console/namespaces: `customNamespaceId` (blank: generated),
/// `namespaceName`, `namespaceDesc` → `true` or `false`.
async fn create_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    require_admin(&state, &headers, &params).await?;
    let id = match params.get("customNamespaceId") {
        Some(id) => id.to_owned(),
        None => {
            let bytes: [u8; 16] = rand::random();
            let hex = hex::encode(bytes);
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        }
    };
    let Ok(name) = Namespace::parse(&id) else {
        return Ok(json_bool(false));
    };
    let text = |param: &str| params.get(param).unwrap_or_default().to_owned();
    Ok(json_bool(
        state
            .service
            .create_namespace(name, text("namespaceName"), text("namespaceDesc"))
            .await
            .is_ok(),
    ))
}

/// PUT /nacos/v1/console/namespaces: `namespace`, `namespaceShowName`, `namespaceDesc`.
async fn update_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    require_admin(&state, &headers, &params).await?;
    let Ok(name) = Namespace::parse(params.required("namespace")?) else {
        return Ok(json_bool(false));
    };
    let text = |param: &str| params.get(param).map(str::to_owned);
    Ok(json_bool(
        state
            .service
            .update_namespace(&name, text("namespaceShowName"), text("namespaceDesc"))
            .await
            .is_ok(),
    ))
}

/// DELETE /nacos/v1/console/namespaces?namespaceId: `true`, or `false` while it holds
/// configs (Cairn never deletes configs with their namespace).
async fn delete_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    require_admin(&state, &headers, &params).await?;
    let Ok(name) = Namespace::parse(params.required("namespaceId")?) else {
        return Ok(json_bool(false));
    };
    Ok(json_bool(
        state.service.delete_namespace(&name).await.is_ok(),
    ))
}

/// GET /nacos/serverlist: the live nodes, one `host:port` per line, for clients that
/// discover servers through an address server.
async fn server_list(State(state): State<SharedState>, headers: HeaderMap) -> Answer {
    let nodes = state
        .sync
        .live_nodes()
        .await
        .map_err(|e| service_error(e.into()))?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let mut body = String::new();
    for node in &nodes {
        if let Some(url) = crate::api::reachable_url(node, host) {
            body.push_str(&host_and_port(&url));
            body.push('\n');
        }
    }
    Ok(plain(StatusCode::OK, body))
}

/// `host:port` of a URL, with the scheme's port when it names none.
fn host_and_port(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        authority.to_owned()
    } else if scheme.eq_ignore_ascii_case("https") {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_list_lines_always_name_a_port() {
        assert_eq!(host_and_port("http://10.0.0.1:8848"), "10.0.0.1:8848");
        assert_eq!(
            host_and_port("https://cairn.example.com/"),
            "cairn.example.com:443"
        );
        assert_eq!(host_and_port("http://[::1]"), "[::1]:80");
        assert_eq!(host_and_port("http://[::1]:8848"), "[::1]:8848");
    }

    #[test]
    fn listening_configs_parse_with_and_without_tenant() {
        let raw = "app.yaml\u{2}DEFAULT_GROUP\u{2}abc\u{1}db\u{2}g\u{2}\u{2}dev\u{1}x\u{2}g\u{2}\u{2}\u{1}";
        let parsed = parse_listening(raw, 10).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].key.to_string(), "public/DEFAULT_GROUP/app.yaml");
        assert_eq!(parsed[0].md5, "abc");
        assert_eq!(
            (parsed[1].key.namespace.as_str(), parsed[1].md5.as_str()),
            ("dev", "")
        );
        assert_eq!(parsed[2].tenant, "");
        // URL-encoded once more, as some clients send it.
        let encoded: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        assert_eq!(parse_listening(&encoded, 10).unwrap().len(), 3);
    }

    #[test]
    fn listeners_are_held_as_nacos_holds_them() {
        use std::time::Duration;
        let max = Duration::from_secs(120);
        assert_eq!(hold_for(30_000, max), Duration::from_millis(29_500));
        assert_eq!(hold_for(5_000, max), Duration::from_secs(10));
        assert_eq!(hold_for(0, max), Duration::from_secs(10));
        assert_eq!(hold_for(600_000, max), max);
    }

    #[test]
    fn malformed_listening_configs_are_refused() {
        for bad in [
            "",
            "\u{1}",
            "only-one-field\u{1}",
            "a\u{2}b\u{2}c\u{2}d\u{2}e\u{1}",
            "bad id\u{2}g\u{2}\u{1}",
        ] {
            assert!(parse_listening(bad, 10).is_err(), "{bad:?}");
        }
        let many = "a\u{2}g\u{2}\u{1}".repeat(11);
        assert!(parse_listening(&many, 10).is_err());
    }
}
