//! The Apollo compatibility surface: the config service (`/configs`, `/configfiles`,
//! `/notifications/v2`) and the meta server (`/services/config`), so existing Apollo
//! clients read and watch Cairn unchanged.
//!
//! The mapping onto Cairn's one model:
//! - Apollo env → namespace. Clients do not send their env; a node serves
//!   `apollo_namespace` (default `public`) at the root, and any other namespace under
//!   the prefix `/apollo/{namespace}`, which clients take as their meta-server URL.
//! - appId → group.
//! - Apollo namespace → data id: `application` (a `.properties` suffix is dropped) is a
//!   properties config served key by key; `x.yaml`, `x.json`, `x.xml`, `x.txt` keep
//!   their suffix and are served as one key, `content`. Names are matched exactly, then
//!   ignoring case.
//! - cluster → for `default`, the data id itself; for another cluster `c`, the data id
//!   `c:namespace`. Lookup order: the requested cluster, the data center, `default`.
//! - notification id → the sequence of the key's last change (≥ 1).
//! - gray rules see the client's `ip` (else `X-Forwarded-For`, else the peer) and its
//!   `label` as the label `label=<value>`.

mod ids;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cairn_core::{ClientInfo, ConfigKey, DataId, Group, Label, Namespace};
use serde::Deserialize;
use serde_json::{json, Value};

pub use ids::Index;
use ids::{NotificationIds, Stated};

use super::{ApiError, Identity, SharedState};
use crate::access_keys::Refusal;
use crate::cache::View;
use crate::listeners::{Listener, Protocol};

type Answer = Result<Response, ApolloError>;

/// What the Apollo surface keeps of its own: the namespace served at the root, and its
/// index of the changes (notification ids, names ignoring case).
pub struct Surface {
    pub root: Namespace,
    pub index: Arc<Index>,
    pub polls: Arc<Polls>,
    pub rendered: Renderings,
}

/// How many bytes of rendered `configurations` are kept.
const RENDERED_BYTES: u64 = 64 << 20;

/// Apollo's `configurations` of each content, rendered once per version: parsing
/// properties is most of an Apollo read's cost, and a version's content never changes.
/// Keyed by the content's md5 and whether it is read key by key.
pub struct Renderings {
    cache: quick_cache::sync::Cache<(String, bool), Arc<Rendered>, ByBytes>,
}

/// One content's `configurations`, as a map and as JSON text.
struct Rendered {
    pairs: BTreeMap<String, String>,
    json: Box<serde_json::value::RawValue>,
}

/// Weighs a rendering by its size, so the cache is bounded in memory, not entries.
#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<(String, bool), Arc<Rendered>> for ByBytes {
    fn weight(&self, _: &(String, bool), rendered: &Arc<Rendered>) -> u64 {
        // The map holds about what the JSON text does.
        2 * rendered.json.get().len() as u64 + 64
    }
}

impl Default for Renderings {
    fn default() -> Self {
        Renderings {
            cache: quick_cache::sync::Cache::with_weighter(4096, RENDERED_BYTES, ByBytes),
        }
    }
}

impl Renderings {
    /// `view`'s `configurations` as a client asking for `namespace` reads them.
    fn of(&self, view: &View, namespace: &str) -> Arc<Rendered> {
        let key = (view.md5().to_owned(), is_properties(namespace));
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        let pairs = configurations(view, namespace);
        let json =
            serde_json::value::to_raw_value(&pairs).expect("a map of strings always serializes");
        let rendered = Arc::new(Rendered { pairs, json });
        self.cache.insert(key, rendered.clone());
        rendered
    }
}

/// Who holds a notification poll: an app at an address (the `ip` it states, else its
/// connection's). Apollo's clients hold one poll per app at a time.
type PollHolder = (String, Option<std::net::IpAddr>);

/// The notification polls each client holds, so that one client (a bug that polls in a
/// loop) cannot take the node's capacity for held requests.
#[derive(Default)]
pub struct Polls {
    held: dashmap::DashMap<PollHolder, usize>,
}

/// One held poll; counted until dropped.
struct PollSlot {
    polls: Arc<Polls>,
    holder: PollHolder,
}

impl Polls {
    fn enter(self: &Arc<Self>, holder: PollHolder, max: usize) -> Option<PollSlot> {
        let mut count = self.held.entry(holder.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        drop(count);
        Some(PollSlot {
            polls: self.clone(),
            holder,
        })
    }
}

impl Drop for PollSlot {
    fn drop(&mut self) {
        self.polls.held.remove_if_mut(&self.holder, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

pub fn router() -> Router<SharedState> {
    let mut router = Router::new();
    for prefix in ["", "/apollo/{env}"] {
        router = router
            .route(
                &format!("{prefix}/configs/{{app}}/{{cluster}}/{{namespace}}"),
                get(configs),
            )
            .route(
                &format!("{prefix}/configfiles/{{app}}/{{cluster}}/{{namespace}}"),
                get(config_file),
            )
            .route(
                &format!("{prefix}/configfiles/json/{{app}}/{{cluster}}/{{namespace}}"),
                get(config_file_json),
            )
            .route(
                &format!("{prefix}/configfiles/raw/{{app}}/{{cluster}}/{{namespace}}"),
                get(config_file_raw),
            )
            .route(
                &format!("{prefix}{}", super::long_poll_paths::APOLLO_NOTIFICATIONS),
                get(notifications),
            )
            .route(&format!("{prefix}/services/config"), get(services))
            .route(&format!("{prefix}/services/admin"), get(services));
    }
    router
}

/// The config a request names; an `env` segment, when present, is read by `target`.
#[derive(Deserialize)]
struct ConfigPath {
    app: String,
    cluster: String,
    namespace: String,
}

/// Why an Apollo request is refused.
#[derive(Debug)]
enum Reason {
    UnknownEnv,
    /// No such config (or app or cluster) for this client.
    NotFound,
    BadRequest(String),
    /// The app's access key refused the request's signature.
    Refused(Refusal),
    /// Unsigned, and the namespace does not serve the app unsigned.
    Unsigned {
        app: String,
        namespace: Namespace,
    },
    NodeListUnavailable,
    TooManyPolls {
        app: String,
        max: usize,
    },
}

/// A refused Apollo request, with the path it was sent to (Spring's error body names it).
#[derive(Debug)]
pub struct ApolloError {
    reason: Reason,
    path: String,
}

impl ApolloError {
    fn new(reason: Reason, path: &str) -> Self {
        Self {
            reason,
            path: path.to_owned(),
        }
    }
}

/// Rendered as Spring's error body, which Apollo answers with; clients look only at the
/// status.
impl IntoResponse for ApolloError {
    fn into_response(self) -> Response {
        let (status, message) = match self.reason {
            Reason::UnknownEnv => (StatusCode::NOT_FOUND, "unknown env".to_owned()),
            Reason::NotFound => (
                StatusCode::NOT_FOUND,
                "Could not load configurations".to_owned(),
            ),
            Reason::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Reason::Unsigned { app, namespace } => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Unauthorized: Apollo reads must be signed. Create a key with `cairn \
                     access-key create {app}` and give its secret to the app's clients, or \
                     let namespace {namespace} serve the app unsigned (apollo_anonymous_apps: \
                     `cairn ns update {namespace} --apollo-anonymous {app}`)",
                ),
            ),
            Reason::Refused(refusal) => {
                let status = match refusal {
                    Refusal::InvalidAppId => StatusCode::BAD_REQUEST,
                    Refusal::RequestTimeTooSkewed | Refusal::Unauthorized | Refusal::Unsigned => {
                        StatusCode::UNAUTHORIZED
                    }
                };
                (status, refusal.name().to_owned())
            }
            Reason::TooManyPolls { app, max } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this client of app {app} already holds {max} notification polls, the \
                     most one client may (apollo_max_polls_per_client); wait for one to be \
                     answered before sending another"
                ),
            ),
            Reason::NodeListUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the node list is unavailable".to_owned(),
            ),
        };
        (
            status,
            Json(json!({
                "status": status.as_u16(),
                "error": status.canonical_reason().unwrap_or(""),
                "message": message,
                "path": self.path,
                "timestamp": crate::now_millis(),
            })),
        )
            .into_response()
    }
}

/// What a request is about: the Cairn namespace of its env, and where it was sent.
struct Target {
    namespace: Namespace,
    /// `""`, or `/apollo/{env}` when the env came from the path.
    prefix: String,
    /// The raw path and query as received, for signatures.
    raw: String,
    path: String,
}

fn target(state: &SharedState, uri: &OriginalUri) -> Result<Target, ApolloError> {
    let path = uri.path().to_owned();
    // Signed as Apollo signs: the raw path, and `?query` only when there is a query.
    let raw = match uri.query().filter(|q| !q.is_empty()) {
        Some(query) => format!("{path}?{query}"),
        None => path.clone(),
    };
    if let Some(rest) = path.strip_prefix("/apollo/") {
        let env = rest.split('/').next().unwrap_or_default();
        let namespace =
            Namespace::parse(env).map_err(|_| ApolloError::new(Reason::UnknownEnv, &path))?;
        return Ok(Target {
            prefix: format!("/apollo/{env}"),
            namespace,
            raw,
            path,
        });
    }
    Ok(Target {
        namespace: state.apollo.root.clone(),
        prefix: String::new(),
        raw,
        path,
    })
}

/// Checks the access key of `app_id` against the request's signature; true when the
/// request was signed (an unsigned read is served only what is not sensitive).
fn guard(
    state: &SharedState,
    app_id: &str,
    headers: &HeaderMap,
    target: &Target,
) -> Result<bool, ApolloError> {
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .access_keys
        .check(
            app_id,
            &target.namespace,
            header_text("authorization"),
            header_text("timestamp"),
            &target.raw,
        )
        .map_err(|refusal| {
            let reason = match refusal {
                Refusal::Unsigned => Reason::Unsigned {
                    app: app_id.to_owned(),
                    namespace: target.namespace.clone(),
                },
                other => Reason::Refused(other),
            };
            ApolloError::new(reason, &target.path)
        })
}

/// The client as gray rules see it: the `ip` parameter, else the first
/// `X-Forwarded-For` address, else the usual identity; its `label` as `label=<value>`.
/// Also which of those the client stated itself (a usable `ip` or forwarded address, a
/// non-empty label, or Cairn's own identity headers), as notification ids need it.
///
/// Apollo reads `X-Forwarded-For` whatever `trust_forwarded_for` says, and so does this
/// surface: the address only selects gray content, which a client can ask for with
/// `ip` anyway, so trusting the header grants nothing.
fn client(
    identity: ClientInfo,
    headers: &HeaderMap,
    ip: Option<&str>,
    label: Option<&str>,
) -> (ClientInfo, Stated) {
    let stated_ip = ip
        .and_then(|ip| ip.trim().parse().ok())
        .or_else(|| super::first_forwarded(headers));
    let label = label
        .filter(|l| !l.is_empty())
        .and_then(|l| Label::parse(&format!("label={l}")).ok());
    let said = Stated {
        ip: stated_ip.is_some() || headers.contains_key(super::CLIENT_IP_HEADER),
        labels: label.is_some() || headers.contains_key(super::LABELS_HEADER),
    };
    let mut labels = identity.labels;
    labels.extend(label);
    (ClientInfo::new(stated_ip.or(identity.ip), labels), said)
}

/// An Apollo namespace name without a `.properties` suffix (any case).
fn strip_properties(name: &str) -> &str {
    let len = name.len();
    if len > 11
        && name.is_char_boundary(len - 11)
        && name[len - 11..].eq_ignore_ascii_case(".properties")
    {
        &name[..len - 11]
    } else {
        name
    }
}

/// The data id of an Apollo namespace in a cluster.
fn data_id(cluster: &str, namespace: &str) -> Option<DataId> {
    if cluster == "default" {
        DataId::parse(namespace).ok()
    } else {
        DataId::parse(&format!("{cluster}:{namespace}")).ok()
    }
}

/// The key of `namespace` in `cluster` that exists, matching exactly, else ignoring case.
fn find_key(
    state: &SharedState,
    ns: &Namespace,
    group: &Group,
    cluster: &str,
    namespace: &str,
) -> Option<ConfigKey> {
    let exact = ConfigKey::new(ns.clone(), group.clone(), data_id(cluster, namespace)?);
    if state.service.get(&exact).is_some() {
        return Some(exact);
    }
    state.apollo.index.find_ignoring_case(&exact)
}

/// The clusters to try, in Apollo's order: requested, data center, `default`.
fn clusters<'a>(cluster: &'a str, data_center: Option<&'a str>) -> Vec<&'a str> {
    let mut order = Vec::with_capacity(3);
    if cluster != "default" {
        order.push(cluster);
    }
    if let Some(dc) = data_center.filter(|dc| !dc.is_empty() && *dc != cluster && *dc != "default")
    {
        order.push(dc);
    }
    order.push("default");
    order
}

/// The first cluster that has the namespace, with its key.
fn resolve(
    state: &SharedState,
    ns: &Namespace,
    group: &Group,
    cluster: &str,
    data_center: Option<&str>,
    namespace: &str,
) -> Option<(String, ConfigKey)> {
    clusters(cluster, data_center)
        .into_iter()
        .find_map(|c| find_key(state, ns, group, c, namespace).map(|k| (c.to_owned(), k)))
}

/// Whether an Apollo namespace is a properties one: no suffix of another format, as in
/// Apollo (so a config named `application` is read key by key, whatever format it was
/// stored with).
fn is_properties(namespace: &str) -> bool {
    let lower = strip_properties(namespace).to_ascii_lowercase();
    ![".yaml", ".yml", ".json", ".xml", ".txt"]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

/// Apollo's `configurations`: a properties namespace key by key, anything else as one
/// `content` key.
fn configurations(view: &View, namespace: &str) -> BTreeMap<String, String> {
    if is_properties(namespace) {
        if let Ok(pairs) = cairn_core::properties::parse(view.content()) {
            return pairs;
        }
    }
    BTreeMap::from([("content".to_owned(), view.content().to_owned())])
}

fn release_key(view: &View) -> String {
    format!(
        "{}-{}",
        view.revision(),
        &view.md5()[..12.min(view.md5().len())]
    )
}

#[derive(Deserialize, Default)]
struct ConfigQuery {
    #[serde(rename = "releaseKey")]
    release_key: Option<String>,
    ip: Option<String>,
    label: Option<String>,
    #[serde(rename = "dataCenter")]
    data_center: Option<String>,
    /// The notification that led the client here (`{"details":{"app+c+ns":id}}`).
    messages: Option<String>,
}

/// How long a read waits for this node to apply a change the client was notified of
/// by another node.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The newest notification id in a request's `messages`; unreadable ones are ignored,
/// as Apollo ignores them.
fn notified_id(messages: Option<&str>) -> Option<i64> {
    #[derive(Deserialize)]
    struct Messages {
        details: BTreeMap<String, i64>,
    }
    let messages: Messages = serde_json::from_str(messages?).ok()?;
    messages.details.into_values().max()
}

/// A config read as every config route takes it: the request checked against the app's
/// access keys, the namespace found in the first cluster that has it, and the view of
/// it this client gets.
struct ConfigRead {
    app: String,
    /// As the path names it.
    namespace: String,
    /// The cluster the config came from.
    cluster: String,
    release_key: Option<String>,
    view: View,
}

impl axum::extract::FromRequestParts<SharedState> for ConfigRead {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &SharedState,
    ) -> Result<Self, Response> {
        Self::read(parts, state)
            .await
            .map_err(IntoResponse::into_response)
    }
}

impl ConfigRead {
    async fn read(
        parts: &mut axum::http::request::Parts,
        state: &SharedState,
    ) -> Result<Self, ApolloError> {
        use axum::extract::FromRequestParts;
        use axum::extract::{Path, Query};
        let uri = OriginalUri::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        let Identity(identity) = Identity::from_request_parts(parts, state)
            .await
            .map_err(|e| ApolloError::new(Reason::BadRequest(e.message), uri.path()))?;
        let target = target(state, &uri)?;
        refuse_undecodable(&uri, &target.path)?;
        let not_found = || ApolloError::new(Reason::NotFound, &target.path);
        let Path(ConfigPath {
            app,
            cluster,
            namespace,
        }) = Path::<ConfigPath>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        let Query(query) = Query::<ConfigQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApolloError::new(Reason::BadRequest(e.body_text()), &target.path))?;
        let signed = guard(state, &app, &parts.headers, &target)?;
        let group = Group::parse(&app).map_err(|_| not_found())?;
        let path = ConfigPath {
            app,
            cluster,
            namespace,
        };
        // A client notified by another node of a change this node has not applied yet
        // would read the old release and then wait on the new id: wait for the change
        // (briefly: the tailer applies it within milliseconds).
        if let Some(wanted) = behind(state, &target, &group, &path, &query) {
            state.service.wait_applied(wanted, CATCH_UP_WAIT).await;
        }
        Self::located(
            state,
            identity,
            &parts.headers,
            &target,
            signed,
            &group,
            path,
            query,
        )
    }

    /// The read once its request is checked and this node is caught up.
    #[allow(clippy::too_many_arguments)]
    fn located(
        state: &SharedState,
        identity: ClientInfo,
        headers: &HeaderMap,
        target: &Target,
        signed: bool,
        group: &Group,
        path: ConfigPath,
        query: ConfigQuery,
    ) -> Result<Self, ApolloError> {
        let not_found = || ApolloError::new(Reason::NotFound, &target.path);
        let (used, key) = find(state, target, group, &path, &query).ok_or_else(not_found)?;
        let (client, _) = client(
            identity,
            headers,
            query.ip.as_deref(),
            query.label.as_deref(),
        );
        let view = state.service.view(&key, &client).ok_or_else(not_found)?;
        // A sensitive config is read by apps that sign their requests only: an app
        // served unsigned could be anyone who knows its id.
        if !signed && crate::access::is_sensitive(&key, view.config.sensitive) {
            return Err(not_found());
        }
        Ok(ConfigRead {
            app: path.app,
            namespace: path.namespace,
            cluster: used,
            release_key: query.release_key,
            view,
        })
    }
}

/// The cluster and key a read names.
fn find(
    state: &SharedState,
    target: &Target,
    group: &Group,
    path: &ConfigPath,
    query: &ConfigQuery,
) -> Option<(String, ConfigKey)> {
    resolve(
        state,
        &target.namespace,
        group,
        &path.cluster,
        query.data_center.as_deref(),
        strip_properties(&path.namespace),
    )
}

/// The change a read's `messages` announce, if this node has not applied it yet.
fn behind(
    state: &SharedState,
    target: &Target,
    group: &Group,
    path: &ConfigPath,
    query: &ConfigQuery,
) -> Option<i64> {
    let wanted = notified_id(query.messages.as_deref())?;
    let here = find(state, target, group, path, query).is_some_and(|(_, key)| {
        state
            .service
            .key_state(&key)
            .epoch
            .is_some_and(|e| e.get() >= wanted)
    });
    (!here).then_some(wanted)
}

/// Route templates of the reads the connection layer answers itself, for the metrics.
const CONFIGS_ROUTE: &str = "/configs/{app}/{cluster}/{namespace}";
const JSON_FILE_ROUTE: &str = "/configfiles/json/{app}/{cluster}/{namespace}";

/// A read of `/configs/…` or `/configfiles/json/…` (no env prefix) answered from memory
/// for the connection layer (`api::reads`): its route template, content type and body.
/// `None` for anything the router should answer: a refusal, a miss, a `304`, a change
/// another node announced that this one has yet to apply, escapes in the path, or a
/// query parameter the route does not read.
pub(crate) fn read_directly(
    state: &SharedState,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    identity: ClientInfo,
) -> Option<(&'static str, &'static str, Vec<u8>)> {
    let (route, rest) = if let Some(rest) = path.strip_prefix("/configs/") {
        (CONFIGS_ROUTE, rest)
    } else {
        (JSON_FILE_ROUTE, path.strip_prefix("/configfiles/json/")?)
    };
    if rest.contains('%') {
        return None;
    }
    let mut segments = rest.split('/');
    let (app, cluster, namespace) = (segments.next()?, segments.next()?, segments.next()?);
    if segments.next().is_some() || [app, cluster, namespace].contains(&"") {
        return None;
    }
    let config_query = match query {
        Some(query) => direct_query(query)?,
        None => ConfigQuery::default(),
    };
    let target = Target {
        namespace: state.apollo.root.clone(),
        prefix: String::new(),
        raw: match query.filter(|q| !q.is_empty()) {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        },
        path: path.to_owned(),
    };
    let signed = guard(state, app, headers, &target).ok()?;
    let group = Group::parse(app).ok()?;
    let path = ConfigPath {
        app: app.to_owned(),
        cluster: cluster.to_owned(),
        namespace: namespace.to_owned(),
    };
    if behind(state, &target, &group, &path, &config_query).is_some() {
        return None;
    }
    let read = ConfigRead::located(
        state,
        identity,
        headers,
        &target,
        signed,
        &group,
        path,
        config_query,
    )
    .ok()?;
    if route == CONFIGS_ROUTE {
        Some((route, "application/json", configs_body(state, &read)?))
    } else {
        let rendered = state.apollo.rendered.of(&read.view, &read.namespace);
        Some((
            route,
            JSON_FILE_CONTENT_TYPE,
            rendered.json.get().as_bytes().to_vec(),
        ))
    }
}

/// A config read's query as the direct path takes it: each parameter the routes read at
/// most once, UTF-8 once decoded; `None` for anything else.
fn direct_query(query: &str) -> Option<ConfigQuery> {
    let mut read = ConfigQuery::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "releaseKey" => &mut read.release_key,
            "ip" => &mut read.ip,
            "label" => &mut read.label,
            "dataCenter" => &mut read.data_center,
            "messages" => &mut read.messages,
            _ => return None,
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(crate::api::decode_component(value.as_bytes())?.into_owned());
    }
    Some(read)
}

/// GET /configs/{appId}/{cluster}/{namespace}: the configurations and release key, or
/// 304 when the client's release key is current.
async fn configs(State(state): State<SharedState>, read: ConfigRead) -> Answer {
    Ok(match configs_body(&state, &read) {
        Some(body) => typed("application/json", body),
        None => StatusCode::NOT_MODIFIED.into_response(),
    })
}

/// The JSON of `/configs/…`, or `None` when the client's release key is current.
fn configs_body(state: &SharedState, read: &ConfigRead) -> Option<Vec<u8>> {
    let key = release_key(&read.view);
    if read.release_key.as_deref() == Some(key.as_str()) {
        return None;
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Configs<'a> {
        app_id: &'a str,
        cluster: &'a str,
        namespace_name: &'a str,
        configurations: &'a serde_json::value::RawValue,
        release_key: String,
    }
    let rendered = state.apollo.rendered.of(&read.view, &read.namespace);
    serde_json::to_vec(&Configs {
        app_id: &read.app,
        cluster: &read.cluster,
        namespace_name: &read.namespace,
        configurations: &rendered.json,
        release_key: key,
    })
    .ok()
}

const JSON_FILE_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

fn typed(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body.into(),
    )
        .into_response()
}

/// GET /configfiles/{appId}/{cluster}/{namespace}: the configurations as properties text.
async fn config_file(State(state): State<SharedState>, read: ConfigRead) -> Answer {
    let rendered = state.apollo.rendered.of(&read.view, &read.namespace);
    Ok(typed(
        "text/plain;charset=UTF-8",
        cairn_core::properties::to_text(&rendered.pairs),
    ))
}

/// GET /configfiles/json/…: the configurations as a JSON object.
async fn config_file_json(State(state): State<SharedState>, read: ConfigRead) -> Answer {
    let rendered = state.apollo.rendered.of(&read.view, &read.namespace);
    Ok(typed(
        JSON_FILE_CONTENT_TYPE,
        rendered.json.get().to_owned(),
    ))
}

/// GET /configfiles/raw/…: a properties namespace as properties text, any other as its
/// content, typed by its suffix.
async fn config_file_raw(state: State<SharedState>, read: ConfigRead) -> Answer {
    if is_properties(&read.namespace) {
        return config_file(state, read).await;
    }
    let lower = read.namespace.to_ascii_lowercase();
    let content_type = if lower.ends_with(".json") {
        "application/json;charset=UTF-8"
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        "application/yaml;charset=UTF-8"
    } else if lower.ends_with(".xml") {
        "application/xml;charset=UTF-8"
    } else {
        "text/plain;charset=UTF-8"
    };
    Ok(typed(content_type, read.view.content_bytes()))
}

/// Refuses a query with a parameter that is not UTF-8 once decoded, rather than reading
/// it with replacement characters.
fn refuse_undecodable(uri: &OriginalUri, path: &str) -> Result<(), ApolloError> {
    match uri.query().and_then(crate::api::not_utf8) {
        Some(what) => Err(ApolloError::new(
            Reason::BadRequest(format!("{what} is not UTF-8 once decoded")),
            path,
        )),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct NotificationQuery {
    #[serde(rename = "appId")]
    app_id: Option<String>,
    cluster: Option<String>,
    notifications: Option<String>,
    #[serde(rename = "dataCenter")]
    data_center: Option<String>,
    ip: Option<String>,
    label: Option<String>,
}

#[derive(Deserialize)]
struct Held {
    #[serde(rename = "namespaceName")]
    namespace_name: Option<String>,
    #[serde(rename = "notificationId", default = "minus_one")]
    notification_id: i64,
}

fn minus_one() -> i64 {
    -1
}

/// One namespace a notification request watches.
struct Watched {
    /// Exactly as the client sent it: clients ignore answers naming it otherwise.
    echo: String,
    held_id: i64,
    /// `(detail key, config key)` for each cluster in lookup order.
    keys: Vec<(String, ConfigKey)>,
}

/// GET /notifications/v2: answers at once with the namespaces whose notification id is
/// newer than the client's; else holds (60 s by default) for a change, else 304.
async fn notifications(
    State(state): State<SharedState>,
    uri: OriginalUri,
    headers: HeaderMap,
    identity: Result<Identity, ApiError>,
    query: Result<axum::extract::Query<NotificationQuery>, QueryRejection>,
) -> Answer {
    let target = target(&state, &uri)?;
    refuse_undecodable(&uri, &target.path)?;
    // Malformed identity headers or query are answered in Apollo's error shape, as every
    // other answer of this surface is.
    let Identity(identity) =
        identity.map_err(|e| ApolloError::new(Reason::BadRequest(e.message), &target.path))?;
    let axum::extract::Query(query) =
        query.map_err(|e| ApolloError::new(Reason::BadRequest(e.body_text()), &target.path))?;
    let (client, said) = client(
        identity,
        &headers,
        query.ip.as_deref(),
        query.label.as_deref(),
    );
    let bad =
        |message: &str| ApolloError::new(Reason::BadRequest(message.to_owned()), &target.path);
    let (Some(app), Some(cluster), Some(raw)) =
        (&query.app_id, &query.cluster, &query.notifications)
    else {
        return Err(bad("appId, cluster and notifications are required"));
    };
    guard(&state, app, &headers, &target)?;
    let invalid = || {
        bad(&format!(
            "invalid notifications format:{}",
            raw.chars().take(200).collect::<String>()
        ))
    };
    let held: Vec<Held> = serde_json::from_str(raw).map_err(|_| invalid())?;
    let max = state.settings.watch_max_keys;
    if held.len() > max {
        return Err(bad(&format!(
            "{} namespaces in one request; the limit is {max} (watch_max_keys)",
            held.len()
        )));
    }
    let group = Group::parse(app).map_err(|_| bad("invalid appId"))?;
    let mut watched: Vec<Watched> = Vec::new();
    // Where each namespace's keys are in `watched`, so that spotting two spellings of
    // one namespace stays linear in the request's size.
    let mut seen: std::collections::HashMap<Vec<ConfigKey>, usize> =
        std::collections::HashMap::new();
    for entry in held {
        let Some(echo) = entry.namespace_name.filter(|n| !n.is_empty()) else {
            continue;
        };
        let name = strip_properties(&echo).to_owned();
        let keys: Vec<(String, ConfigKey)> = clusters(cluster, query.data_center.as_deref())
            .into_iter()
            .filter_map(|c| {
                let key = find_key(&state, &target.namespace, &group, c, &name).or_else(|| {
                    Some(ConfigKey::new(
                        target.namespace.clone(),
                        group.clone(),
                        data_id(c, &name)?,
                    ))
                })?;
                // Details are keyed by the namespace's stored name, as Apollo keys them.
                let stored = key.data_id.as_str();
                let stored = stored.strip_prefix(&format!("{c}:")).unwrap_or(stored);
                Some((format!("{app}+{c}+{stored}"), key))
            })
            .collect();
        // Two spellings of one namespace: keep the one with the lower id, as Apollo does.
        let config_keys: Vec<ConfigKey> = keys.iter().map(|(_, k)| k.clone()).collect();
        if let Some(&at) = seen.get(&config_keys) {
            let existing = &mut watched[at];
            if entry.notification_id < existing.held_id {
                existing.held_id = entry.notification_id;
                existing.echo = echo;
            }
            continue;
        }
        seen.insert(config_keys, watched.len());
        watched.push(Watched {
            echo,
            held_id: entry.notification_id,
            keys,
        });
    }
    if watched.is_empty() {
        return Err(invalid());
    }
    let index = &state.apollo.index;
    let answer = |watched: &[Watched]| -> Vec<Value> {
        watched
            .iter()
            .filter_map(|w| {
                let per_key: Vec<(&String, NotificationIds)> = w
                    .keys
                    .iter()
                    .filter_map(|(detail, key)| {
                        let key_state = state.service.key_state(key);
                        let ids = index.notification_ids(key, &key_state, &client, said)?;
                        Some((detail, ids))
                    })
                    .collect();
                let namespace = per_key
                    .iter()
                    .map(|(_, ids)| *ids)
                    .reduce(NotificationIds::merge)?;
                let id = namespace.for_held(w.held_id);
                (id > w.held_id).then(|| {
                    let details: serde_json::Map<String, Value> = per_key
                        .iter()
                        .map(|(detail, ids)| {
                            let shown = if id > namespace.mine && ids.newest == id {
                                id
                            } else {
                                ids.mine
                            };
                            ((*detail).clone(), json!(shown))
                        })
                        .collect();
                    json!({
                        "namespaceName": w.echo,
                        "notificationId": id,
                        "messages": { "details": details },
                    })
                })
            })
            .collect()
    };
    // Any change to a watched key (main or gray, for any client) wakes the poll, which
    // answers if this client's notification id moved.
    let listener = || {
        let held = watched
            .iter()
            .flat_map(|w| w.keys.iter().map(|(_, k)| (k.clone(), None)))
            .collect();
        Listener::new(Protocol::Apollo, client.clone(), held)
    };
    let max = state.settings.apollo_max_polls_per_client;
    let holder = (app.clone(), client.ip);
    let Some(_slot) = state.apollo.polls.enter(holder, max) else {
        metrics::counter!("cairn_apollo_polls_refused_total").increment(1);
        let refused = Reason::TooManyPolls {
            app: app.clone(),
            max,
        };
        return Err(ApolloError::new(refused, &target.path));
    };
    let timeout = state.settings.apollo_poll_timeout_ms.get();
    let changed = state
        .service
        .wait_until(listener, timeout, || {
            let changed = answer(&watched);
            (!changed.is_empty()).then_some(changed)
        })
        .await;
    Ok(match changed {
        Some(changed) => Json(changed).into_response(),
        None => StatusCode::NOT_MODIFIED.into_response(),
    })
}

/// GET /services/config (and /services/admin, which some tools ask): the live nodes as
/// Apollo's meta server lists config services, each with a URL the client can reach.
async fn services(
    State(state): State<SharedState>,
    uri: OriginalUri,
    local: Option<axum::Extension<super::LocalAddr>>,
) -> Answer {
    let target = target(&state, &uri)?;
    let nodes = state
        .sync
        .live_nodes()
        .await
        .map_err(|_| ApolloError::new(Reason::NodeListUnavailable, &target.path))?;
    let local = local.map(|l| l.0);
    let list: Vec<Value> = nodes
        .iter()
        .filter_map(|n| {
            let address = super::reachable_url(n, local)?;
            let home = format!("{address}{}/", target.prefix);
            Some(json!({ "appName": "APOLLO-CONFIGSERVICE", "instanceId": home, "homepageUrl": home }))
        })
        .collect();
    Ok(Json(list).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_suffixes_are_dropped_in_any_case() {
        assert_eq!(strip_properties("application.properties"), "application");
        assert_eq!(strip_properties("application.PROPERTIES"), "application");
        assert_eq!(strip_properties("app.yaml"), "app.yaml");
        assert_eq!(strip_properties(".properties"), ".properties");
    }

    #[test]
    fn clusters_fall_back_in_order() {
        assert_eq!(clusters("sh", Some("dc1")), ["sh", "dc1", "default"]);
        assert_eq!(clusters("default", Some("dc1")), ["dc1", "default"]);
        assert_eq!(clusters("default", None), ["default"]);
        assert_eq!(clusters("sh", Some("sh")), ["sh", "default"]);
    }
}
