//! Nacos's v1 HTTP API: configs, long-poll listener, login, history, namespaces and the
//! server list.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::pattern::Wildcard;
use cairn_core::{ConfigKey, DataId, Group, Namespace, Revision};
use cairn_store::Expect;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::common::{config_infos, history_item, history_page, page_json, page_of, publish_from};
use super::error::Result;
use super::{
    authenticate, config_key, content_type, http_date, namespace, no_cache, plain, tenant_of,
    NacosError, Params,
};
use crate::api::{ClientAddr, Identity, SharedState};
use crate::auth::{AuthError, Caller, Role};
use crate::listeners::Protocol;
use crate::service::{Actor, ListFilter, ServiceError};
use crate::settings::Secret;

type Answer = Result<Response>;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route(
            "/nacos/v1/cs/configs",
            get(get_config).post(publish_or_import).delete(delete),
        )
        .route(
            crate::api::long_poll_paths::NACOS_LISTENER,
            post(listen).get(listeners_of_config),
        )
        .route("/nacos/v1/cs/listener", get(listeners_of_client))
        .route("/nacos/v1/auth/login", post(login).layer(login_limit()))
        .route(
            "/nacos/v1/auth/users/login",
            post(login).layer(login_limit()),
        )
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
        .route("/nacos/v1/cs/capacity", get(capacity).post(set_capacity))
}

/// `GET /nacos/v1/cs/configs?export=true` (or `exportV2=true`, with `.metadata.yml`): a
/// tenant's configs, or those `group` and `dataId` name, as Nacos's export zip.
async fn export(state: &SharedState, caller: &crate::auth::Caller, params: &Params) -> Answer {
    let namespace = super::namespace(params.get("tenant"))?;
    let filter = crate::service::ListFilter::within(
        namespace.clone(),
        params.get("group"),
        params.get("dataId"),
    );
    let items = state.service.export(caller, &filter, false).await?;
    crate::api::transfer::zip_answer(&namespace, &items, params.flag("exportV2"))
        .map_err(|e| NacosError::invalid(e.message))
}

/// `POST /nacos/v1/cs/configs` publishes, or with `import=true` imports the zip in the
/// multipart field `file`: a form body and a multipart one are read differently.
async fn publish_or_import(
    State(state): State<SharedState>,
    request: axum::extract::Request,
) -> Response {
    let importing = request.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "import" && v == "true")
    });
    if importing {
        import(state, request).await.into_response()
    } else {
        axum::handler::Handler::call(publish, request, state).await
    }
}

/// `POST /nacos/v1/cs/configs?import=true&namespace=…&policy=ABORT|SKIP|OVERWRITE`:
/// all or nothing, answered as Nacos answers (`succCount`, `skipCount`, `skipData`).
async fn import(state: SharedState, request: axum::extract::Request) -> Answer {
    use axum::extract::{FromRequest, FromRequestParts};
    let (mut parts, body) = request.into_parts();
    let addr = ClientAddr::from_request_parts(&mut parts, &state)
        .await
        .unwrap_or_else(|never| match never {});
    // The token and the parameters are in the query: the body is the upload.
    let query = axum::extract::Request::from_parts(parts.clone(), axum::body::Body::empty());
    let params = Params::from_request(query, &state).await?;
    let caller = authenticate(&state, &parts.headers, &params).await?;
    let namespace = super::namespace(params.get("namespace").or(params.get("tenant")))?;
    let policy = crate::api::transfer::policy_of(params.get("policy"))
        .map_err(|e| NacosError::invalid(e.message))?;
    let request = axum::extract::Request::from_parts(parts, body);
    let mut form = axum::extract::Multipart::from_request(request, &state)
        .await
        .map_err(|e| NacosError::invalid(format!("the upload is not a multipart form: {e}")))?;
    let mut zip = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| NacosError::invalid(format!("the upload cannot be read: {e}")))?
    {
        if field.name() == Some("file") {
            zip = Some(field.bytes().await.map_err(|e| {
                NacosError::invalid(format!("the uploaded file cannot be read: {e}"))
            })?);
        }
    }
    let zip = zip.ok_or_else(|| NacosError::invalid("no file field in the upload"))?;
    let items =
        crate::api::transfer::read_items(&zip).map_err(|e| NacosError::invalid(e.message))?;
    let report = state
        .service
        .import(&namespace, items, policy.into(), &actor(&caller, &addr))
        .await?;
    let skipped: Vec<Value> = report
        .skipped
        .iter()
        .map(|k| json!({ "dataId": k.data_id.as_str(), "group": k.group.as_str() }))
        .collect();
    Ok(Json(json!({
        "code": 200,
        "message": "import ok",
        "data": {
            "succCount": report.imported.len(),
            "skipCount": skipped.len(),
            "skipData": skipped,
            "failData": [],
        },
    }))
    .into_response())
}

/// A login is read before anyone is known: only a name and password's worth of it.
fn login_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(crate::api::UNAUTHENTICATED_BODY_LIMIT)
}

fn actor(caller: &crate::auth::Caller, addr: &ClientAddr) -> Actor {
    crate::api::actor_via("nacos", caller, addr)
}

/// GET /nacos/v1/cs/configs: the content as this client sees it, with Nacos's headers;
/// with `beta=true` the beta (gray) release; with `search` a page of configs.
async fn get_config(
    State(state): State<SharedState>,
    source: crate::api::Source,
    Identity(client): Identity,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    if params.get("search").is_some() {
        return search(&state, &caller, &params);
    }
    if params.flag("export") || params.flag("exportV2") {
        return export(&state, &caller, &params).await;
    }
    let key = config_key(&params, "tenant")?;
    state.service.may_read(&caller, &key, source.via("nacos"))?;
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
        return Err(ServiceError::ConfigNotFound(key).into());
    };
    let mut response = view.content_bytes().into_response();
    let h = response.headers_mut();
    read_headers(&view, &mut |name, value| {
        h.insert(name, value);
    });
    Ok(response)
}

/// The headers of a config read, as Nacos sends them. The connection layer answers
/// plain reads itself (`api::reads`) with the same ones.
pub(crate) fn read_headers(
    view: &crate::cache::View,
    put: &mut dyn FnMut(HeaderName, HeaderValue),
) {
    let modified = view
        .gray
        .as_ref()
        .map_or(view.config.updated_at, |g| g.created_at);
    put(
        HeaderName::from_static("config-type"),
        HeaderValue::from_static(view.format().as_str()),
    );
    put(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(view.format())),
    );
    if let Ok(md5) = HeaderValue::from_str(view.md5()) {
        put(HeaderName::from_static("content-md5"), md5);
    }
    if let Ok(date) = HeaderValue::from_str(&http_date(modified)) {
        put(header::LAST_MODIFIED, date);
    }
    for (name, value) in super::NO_CACHE {
        put(name, HeaderValue::from_static(value));
    }
    if view.is_gray() {
        put(
            HeaderName::from_static("isbeta"),
            HeaderValue::from_static("true"),
        );
    }
}

/// GET /nacos/v1/cs/configs?search=accurate|blur: a page of configs with content.
fn search(state: &SharedState, caller: &Caller, params: &Params) -> Answer {
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
        format: None,
        content: None,
    };
    let page = page_of(params)?;
    let (items, total) = state.service.list(caller, &filter, page);
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
            Err(e) => Err(NacosError::BetaNotStopped(e)),
        };
    }
    match state.service.delete(key, Expect::Any, &actor).await {
        Ok(_) | Err(ServiceError::ConfigNotFound(_)) => Ok(json_true()),
        Err(e) => Err(e.into()),
    }
}

/// A listened config as an answer names it: its data id, group and tenant exactly as
/// the client wrote them (or it does not recognise the change), form-encoded as Nacos
/// writes them (`dataId%02group[%02tenant]%01`). Made as the request is read, so that
/// a publish waking thousands of listeners does not encode the same names for each.
type Echo = String;

impl Listened {
    fn echo(&self) -> Echo {
        let mut line = String::with_capacity(self.data_id.len() + self.group.len() + 16);
        let mut put = |text: &str| line.extend(form_urlencoded::byte_serialize(text.as_bytes()));
        put(&self.data_id);
        put("\u{2}");
        put(&self.group);
        if !self.tenant.is_empty() {
            put("\u{2}");
            put(&self.tenant);
        }
        put("\u{1}");
        line
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

fn invalid_probe() -> NacosError {
    NacosError::invalid("invalid probeModify")
}

/// Parses `Listening-Configs`: records `dataId ␂ group ␂ md5 [␂ tenant] ␁`, after a
/// second URL-decoding as Nacos does.
fn parse_listening(raw: &str, max: usize) -> Result<Vec<Listened>> {
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
        .map_err(|_| {
            NacosError::invalid("invalid probeModify: Listening-Configs is not UTF-8 once decoded")
        })?;
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
            // Nacos's text first, which clients look for; then what to do about it.
            return Err(NacosError::invalid(format!(
                "invalid probeModify: more than {max} configs in one listener request; \
                 split them over several"
            )));
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
/// Most listeners are answered by the connection layer instead (`api::listens`), with
/// the same parts as here.
async fn listen(
    State(state): State<SharedState>,
    source: crate::api::Source,
    Identity(client): Identity,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let listening = Listening::read(&state, &headers, &params)?;
    // What the answer does not need goes before the wait: a held listener keeps less,
    // and a publish that wakes thousands of them frees less while it answers them.
    drop((params, headers));
    let stale = listening
        .wait(&state, &caller, &client, source.via("nacos"))
        .await?;
    Ok(match listening.answer(&stale) {
        None => StatusCode::OK.into_response(),
        Some(text) => {
            let mut response = plain(StatusCode::OK, text);
            no_cache(response.headers_mut());
            response
        }
    })
}

/// What a listener request asks for, once read.
pub(crate) struct Listening {
    /// Each key with the md5 the client holds, to wait on.
    held: Vec<(ConfigKey, String)>,
    /// The names as the client wrote them, for the answer.
    echo: Vec<Echo>,
    /// How long the request is held.
    timeout: std::time::Duration,
}

impl Listening {
    /// The keys, md5s and hold of a listener request, or Nacos's refusal of them.
    pub(crate) fn read(state: &SharedState, headers: &HeaderMap, params: &Params) -> Result<Self> {
        let raw = params.get("Listening-Configs").ok_or_else(invalid_probe)?;
        let listened = parse_listening(raw, state.settings.watch_max_keys.min(10_000))?;
        let timeout = match headers
            .get("Long-Pulling-Timeout")
            .map(|v| v.to_str().unwrap_or(""))
        {
            None => std::time::Duration::ZERO,
            Some(text) => {
                let ms: u64 = text
                    .trim()
                    .parse()
                    .map_err(|_| NacosError::invalid(format!("For input string: \"{text}\"")))?;
                let no_hangup = headers
                    .get("Long-Pulling-Timeout-No-Hangup")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if no_hangup {
                    std::time::Duration::ZERO
                } else {
                    hold_for(ms, state.settings.watch_max_timeout_ms.get())
                }
            }
        };
        let (held, echo) = listened
            .into_iter()
            .map(|l| {
                let echo = l.echo();
                ((state.service.intern(l.key), l.md5), echo)
            })
            .unzip();
        Ok(Listening {
            held,
            echo,
            timeout,
        })
    }

    /// The listened keys whose content changed: at once, or once one changes, or none
    /// when the hold ends first.
    pub(crate) async fn wait(
        &self,
        state: &SharedState,
        caller: &Caller,
        client: &cairn_core::ClientInfo,
        origin: crate::service::Origin,
    ) -> std::result::Result<Stale, ServiceError> {
        state
            .service
            .wait_for_changes(
                caller,
                Protocol::NacosHttp,
                &self.held,
                client,
                self.timeout,
                origin,
            )
            .await
    }

    /// The answer's content: `None` when nothing changed (an empty `200`), else the
    /// changed keys as Nacos lists them, sent as [`PLAIN_TEXT`](super::PLAIN_TEXT) with
    /// [`NO_CACHE`](super::NO_CACHE).
    pub(crate) fn answer(&self, stale: &Stale) -> Option<String> {
        (!stale.is_empty()).then(|| changed_text(&self.held, &self.echo, stale))
    }
}

/// The keys of a listener that changed, each with what the client now reads.
pub(crate) type Stale = Vec<(ConfigKey, Option<crate::cache::View>)>;

/// A listener's answer: each changed key it listened to, once, in the order it listed
/// them, as Nacos writes them (`dataId␂group[␂tenant]␁`, form-encoded), then a newline.
/// One publish wakes every listener of a key at once, so for the usual listener (one
/// key, or few changed) nothing but the answer is allocated.
fn changed_text(
    held: &[(ConfigKey, String)],
    echo: &[Echo],
    stale: &[(ConfigKey, Option<crate::cache::View>)],
) -> String {
    use std::collections::HashSet;
    // Sets only where a scan would cost more than they do.
    let many_stale =
        (stale.len() > 8).then(|| stale.iter().map(|(k, _)| k).collect::<HashSet<_>>());
    let is_stale = |key: &ConfigKey| match &many_stale {
        Some(set) => set.contains(key),
        None => stale.iter().any(|(k, _)| k == key),
    };
    let mut seen = (held.len() > 1).then(HashSet::new);
    let mut body = String::with_capacity(64 * stale.len().min(held.len()) + 1);
    for ((key, _), line) in held.iter().zip(echo) {
        if !is_stale(key) {
            continue;
        }
        if let Some(seen) = &mut seen {
            if !seen.insert(line) {
                continue;
            }
        }
        body.push_str(line);
    }
    body.push('\n');
    body
}

/// POST /nacos/v1/auth/login: `username` and `password` (query or form) → a token.
async fn login(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    params: Params,
) -> Answer {
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return Err(NacosError::LoginRefused);
    };
    let issued = state
        .auth
        .login(username, &Secret::from(password), addr.parse().ok())
        .await;
    state
        .auth
        .audit_login(username, &addr, "nacos", &issued, true);
    let issued = issued.map_err(|e| match e {
        // The node failed, not the credentials.
        AuthError::Store(inner) => NacosError::Service(ServiceError::store_failure(inner)),
        _ => NacosError::LoginRefused,
    })?;
    let token = issued.token.expose_secret().to_owned();
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

/// GET /nacos/v1/cs/history: a page (`search=accurate`) or one entry (`nid`).
async fn history(
    State(state): State<SharedState>,
    source: crate::api::Source,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let (caller, key) = super::readable_key(&state, &headers, &params, "tenant", source).await?;
    if let Some(nid) = params.number::<i64>("nid")? {
        // No entry has a number below 1: Nacos answers an empty 200 for it, as for any
        // entry it does not have.
        let Some(nid) = Revision::new(nid) else {
            return Ok(StatusCode::OK.into_response());
        };
        return Ok(
            match state.service.history_entry(&caller, &key, nid).await {
                Ok(entry) => Json(history_item(&entry, false, true)).into_response(),
                Err(ServiceError::RevisionNotFound { .. }) => StatusCode::OK.into_response(),
                Err(e) => return Err(e.into()),
            },
        );
    }
    Ok(Json(history_page(&state, &key, page_of(&params)?).await?).into_response())
}

/// GET /nacos/v1/cs/history/previous: the entry before revision `id`.
async fn history_previous(
    State(state): State<SharedState>,
    source: crate::api::Source,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let (caller, key) = super::readable_key(&state, &headers, &params, "tenant", source).await?;
    let id: i64 = params.required_number("id")?;
    let Some(id) = Revision::new(id) else {
        return Ok(StatusCode::OK.into_response());
    };
    Ok(
        match state.service.history_before(&caller, &key, id).await? {
            Some(entry) => Json(history_item(&entry, false, true)).into_response(),
            None => StatusCode::OK.into_response(),
        },
    )
}

/// GET /nacos/v1/cs/configs/listener?dataId&group&tenant: who listens to a config, as
/// Nacos's console asks (its answer keeps Nacos's spelling).
async fn listeners_of_config(
    State(state): State<SharedState>,
    source: crate::api::Source,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let (_, key) = super::readable_key(&state, &headers, &params, "tenant", source).await?;
    let status: serde_json::Map<String, Value> = state
        .service
        .listeners_of(&key)
        .into_iter()
        .map(|h| {
            let ip = h
                .listener
                .client
                .ip
                .map(|ip| ip.to_string())
                .unwrap_or_default();
            (ip, Value::String(h.held.unwrap_or_default()))
        })
        .collect();
    Ok(Json(json!({ "collectStatus": 200, "lisentersGroupkeyStatus": status })).into_response())
}

/// GET /nacos/v1/cs/listener?ip[&tenant]: what one client listens to, keyed
/// `dataId+group` (`+tenant` outside the public namespace), as Nacos answers.
async fn listeners_of_client(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let reader = state.service.reader(&caller);
    let text = params.get("ip").unwrap_or("").trim();
    let ip: std::net::IpAddr = text
        .parse()
        .map_err(|_| NacosError::invalid(format!("ip {text:?} is not an IP address")))?;
    let tenant = params
        .get("tenant")
        .map(|t| namespace(Some(t)))
        .transpose()?;
    let mut status = serde_json::Map::new();
    for (_, keys) in state.service.listened_by(ip) {
        for h in keys {
            if tenant.as_ref().is_some_and(|ns| *ns != h.key.namespace) || !reader.may_read(&h.key)
            {
                continue;
            }
            let mut name = format!("{}+{}", h.key.data_id, h.key.group);
            if !h.key.namespace.is_public() {
                name.push('+');
                name.push_str(h.key.namespace.as_str());
            }
            status.insert(name, Value::String(h.held.unwrap_or_default()));
        }
    }
    Ok(Json(json!({ "collectStatus": 200, "lisentersGroupkeyStatus": status })).into_response())
}

/// GET /nacos/v1/cs/history/configs?tenant: the configs of a namespace.
async fn history_configs(
    State(state): State<SharedState>,
    headers: HeaderMap,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let ns = namespace(params.get("tenant"))?;
    Ok(Json(config_infos(&state, &caller, &ns)).into_response())
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
        "quota": info.limits.max_configs,
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
    let caller = authenticate(&state, &headers, &params).await?;
    let mut list = state.service.namespaces(&caller).await?;
    if params.get("show") == Some("all") {
        let wanted = namespace(params.get("namespaceId"))?;
        let Some(found) = list.iter().find(|n| n.record.name == wanted) else {
            return Err(NacosError::NamespaceNotFound(wanted));
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
) -> Result<Caller> {
    let caller = authenticate(state, headers, params).await?;
    if caller.role != Role::Admin {
        return Err(NacosError::Forbidden {
            path: params.path().to_owned(),
        });
    }
    Ok(caller)
}

fn json_bool(value: bool) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        if value { "true" } else { "false" },
    )
        .into_response()
}

/// The console's answer to a namespace change: `true`, or `false` for what Nacos's
/// console refuses that way (a name taken, invalid or unknown, a namespace not empty);
/// a failure of the node itself is an error, never a quiet `false`.
fn console_answer(outcome: std::result::Result<(), ServiceError>) -> Answer {
    match outcome {
        Ok(()) => Ok(json_bool(true)),
        Err(e @ (ServiceError::Unavailable(_) | ServiceError::Internal(_))) => Err(e.into()),
        Err(e) => {
            tracing::debug!(error = %e, "namespace change refused");
            Ok(json_bool(false))
        }
    }
}

/// POST /nacos/v1/console/namespaces: `customNamespaceId` (blank: generated),
/// `namespaceName`, `namespaceDesc` → `true` or `false`.
async fn create_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = require_admin(&state, &headers, &params).await?;
    let id = match params.get("customNamespaceId") {
        Some(id) => id.to_owned(),
        // Nacos's console makes a random UUID.
        None => uuid::Uuid::new_v4().to_string(),
    };
    let Ok(name) = Namespace::parse(&id) else {
        return Ok(json_bool(false));
    };
    let text = |param: &str| params.get(param).unwrap_or_default().to_owned();
    let made = state
        .service
        .create_namespace(name.clone(), text("namespaceName"), text("namespaceDesc"))
        .await
        .map(drop);
    let target = format!("namespace {name}");
    let by = actor(&caller, &addr);
    console_answer(
        state
            .auth
            .audit()
            .done(&by, "namespace.create", name.as_str(), target, made),
    )
}

/// PUT /nacos/v1/console/namespaces: `namespace`, `namespaceShowName`, `namespaceDesc`.
async fn update_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let Ok(name) = Namespace::parse(params.required("namespace")?) else {
        return Ok(json_bool(false));
    };
    // A namespace's own admins may change it, as well as global admins.
    state
        .auth
        .access()
        .require_namespace(&caller, &name, cairn_core::grant::Level::Admin)
        .map_err(ServiceError::from)?;
    let text = |param: &str| params.get(param).map(str::to_owned);
    let updated = state
        .service
        .update_namespace(
            &name,
            cairn_store::NamespaceUpdate {
                display_name: text("namespaceShowName"),
                description: text("namespaceDesc"),
                apollo_anonymous: None,
                ..Default::default()
            },
        )
        .await;
    let target = format!("namespace {name}");
    let by = actor(&caller, &addr);
    console_answer(
        state
            .auth
            .audit()
            .done(&by, "namespace.update", name.as_str(), target, updated),
    )
}

/// DELETE /nacos/v1/console/namespaces?namespaceId: `true`, or `false` while it holds
/// configs (Cairn never deletes configs with their namespace).
async fn delete_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = require_admin(&state, &headers, &params).await?;
    let Ok(name) = Namespace::parse(params.required("namespaceId")?) else {
        return Ok(json_bool(false));
    };
    let deleted = state.service.delete_namespace(&name).await;
    let target = format!("namespace {name}");
    let by = actor(&caller, &addr);
    console_answer(
        state
            .auth
            .audit()
            .done(&by, "namespace.delete", name.as_str(), target, deleted),
    )
}

/// The namespace a capacity request names; Cairn keeps quotas per namespace, not
/// per group.
fn capacity_namespace(params: &Params) -> Result<Namespace> {
    if params.get("group").is_some_and(|g| !g.is_empty())
        && params.get("namespaceId").is_none_or(str::is_empty)
    {
        return Err(NacosError::invalid(
            "Cairn keeps quotas per namespace, not per group; give namespaceId \
             (empty for public)",
        ));
    }
    namespace(params.get("namespaceId"))
}

/// GET /nacos/v1/cs/capacity?namespaceId: a namespace's quota and use, as Nacos's
/// tenant capacity (`quota`: most configs, `usage`: configs held, `maxSize`: most bytes
/// of one config).
async fn capacity(State(state): State<SharedState>, headers: HeaderMap, params: Params) -> Answer {
    let caller = authenticate(&state, &headers, &params).await?;
    let name = capacity_namespace(&params)?;
    state
        .auth
        .access()
        .require_visible(&caller, &name)
        .map_err(ServiceError::from)?;
    let info = state.service.namespace(&name).await?;
    Ok(Json(json!({
        "code": 200,
        "message": null,
        "data": {
            "id": 0,
            "tenant": tenant_of(&name),
            "quota": info.limits.max_configs,
            "usage": info.usage.configs,
            "maxSize": info.limits.max_config_bytes,
            "maxAggrCount": 0,
            "maxAggrSize": 0,
            "gmtCreate": info.record.created_at,
            "gmtModified": info.record.created_at,
        },
    }))
    .into_response())
}

/// POST /nacos/v1/cs/capacity: `namespaceId`, `quota` (most configs), `maxSize` (most
/// bytes of one config) set a namespace's quotas (admin). Nacos's aggregate-config
/// bounds (`maxAggrCount`, `maxAggrSize`) have nothing to bound in Cairn.
async fn set_capacity(
    State(state): State<SharedState>,
    headers: HeaderMap,
    addr: ClientAddr,
    params: Params,
) -> Answer {
    let caller = require_admin(&state, &headers, &params).await?;
    let name = capacity_namespace(&params)?;
    let number = |param: &str| -> Result<Option<Option<u64>>> {
        match params.get(param).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => text.parse::<u64>().map(|n| Some(Some(n))).map_err(|_| {
                NacosError::invalid(format!("{param} must be a whole number, not {text:?}"))
            }),
        }
    };
    let limits = cairn_store::LimitsUpdate {
        max_configs: number("quota")?,
        max_config_bytes: number("maxSize")?,
        ..Default::default()
    };
    let detail = format!(
        "namespace {name}; capacity quota {:?}, maxSize {:?}",
        params.get("quota"),
        params.get("maxSize")
    );
    let updated = state
        .service
        .update_namespace(
            &name,
            cairn_store::NamespaceUpdate {
                limits,
                ..Default::default()
            },
        )
        .await;
    let by = actor(&caller, &addr);
    state
        .auth
        .audit()
        .done(&by, "namespace.update", name.as_str(), detail, updated)?;
    Ok(Json(json!({ "code": 200, "message": null, "data": true })).into_response())
}

/// GET /nacos/serverlist: the live nodes, one `host:port` per line, for clients that
/// discover servers through an address server.
async fn server_list(
    State(state): State<SharedState>,
    local: Option<axum::Extension<crate::api::LocalAddr>>,
) -> Answer {
    let nodes = state.sync.live_nodes().await.map_err(ServiceError::from)?;
    let local = local.map(|l| l.0);
    let mut body = String::new();
    for node in &nodes {
        if let Some(url) = crate::api::reachable_url(node, local) {
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
    fn a_listener_is_answered_each_changed_key_once_as_it_wrote_it() {
        let raw = "a.yaml\u{2}g\u{2}m1\u{1}b:c\u{2}g\u{2}m2\u{2}public\u{1}\
                   a.yaml\u{2}g\u{2}m1\u{1}quiet\u{2}g\u{2}m3\u{1}";
        let (held, echo): (Vec<_>, Vec<_>) = parse_listening(raw, 10)
            .unwrap()
            .into_iter()
            .map(|l| {
                let echo = l.echo();
                ((l.key, l.md5), echo)
            })
            .unzip();
        let changed = |names: &[&str]| -> Vec<(ConfigKey, Option<crate::cache::View>)> {
            names
                .iter()
                .map(|n| (ConfigKey::parse("public", "g", n).unwrap(), None))
                .collect()
        };
        // The tenant as written, `:` form-encoded, the repeated key once, the quiet one not.
        assert_eq!(
            changed_text(&held, &echo, &changed(&["b:c", "a.yaml"])),
            "a.yaml%02g%01b%3Ac%02g%02public%01\n"
        );
        // Many changed at once: the same answer by a set instead of a scan.
        let many: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        let mut names: Vec<&str> = many.iter().map(String::as_str).collect();
        names.push("quiet");
        assert_eq!(
            changed_text(&held, &echo, &changed(&names)),
            "quiet%02g%01\n"
        );
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
