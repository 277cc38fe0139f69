//! HTTP surfaces. Each router file holds one surface and calls the same service; this
//! module holds what they share: state, extractors and the assembled router.

pub(crate) mod apollo;
pub mod body;
mod console;
mod contract;
pub mod error;
pub mod grpc;
pub(crate) mod listens;
mod nacos;
mod native;
mod ops;
mod peers;
pub(crate) mod reads;
mod reviews;
mod schemas;
pub(crate) mod transfer;
mod watch;
mod webhooks;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Router;
use cairn_core::ConfigKey;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::auth::{Auth, AuthError, Caller, Role};
use crate::metrics::Metrics;
use crate::service::{Actor, Origin, Service};
use crate::settings::Settings;

/// The paths of the long polls, the routes that park a request until a change. The
/// connection layer (`serve/long_poll.rs`) takes exactly these off hyper's path, and the
/// routers register them from here, so the two cannot drift apart.
pub mod long_poll_paths {
    /// `POST`: the native watch.
    pub const WATCH: &str = "/api/v1/watch";
    /// `POST`: Nacos's config listener.
    pub const NACOS_LISTENER: &str = "/nacos/v1/cs/configs/listener";
    /// `GET`: Apollo's notifications, at the root or under `/apollo/{env}`.
    pub const APOLLO_NOTIFICATIONS: &str = "/notifications/v2";
}

/// What every handler can reach.
pub struct AppState {
    pub service: Service,
    pub(crate) apollo: apollo::Surface,
    pub auth: Arc<Auth>,
    pub access_keys: Arc<crate::access_keys::AccessKeys>,
    pub sync: Arc<crate::sync::Sync>,
    pub settings: Settings,
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
    pub connections: Arc<crate::serve::ConnectionStats>,
    /// The gRPC surface's connections, for the metrics.
    pub grpc_connections: Arc<grpc::Connections>,
    /// TLS, when the settings ask for it.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The encryption key (and, during a rotation, the previous one), when configured.
    pub sealer: Option<Arc<cairn_store::Sealer>>,
}

pub type SharedState = Arc<AppState>;

/// JSON body whose rejections are native API errors.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(mut value) =
            axum::Json::<serde_json::Value>::from_request(req, state).await?;
        integral(&mut value);
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| {
                ApiError::bad_request(
                    "malformed_request",
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            })
    }
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
}

/// A JSON body read as [`ApiJson`] reads it, or `None` where it would refuse it.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    let mut value = serde_json::from_slice(body).ok()?;
    integral(&mut value);
    serde_path_to_error::deserialize(value).ok()
}

/// Writes every whole number of `value` as an integer: JSON does not tell `5` from
/// `5.0` or `5e0`, and neither does JSON Schema's `integer`, so neither does the API.
fn integral(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // Within the 53 bits a double holds exactly; larger ones stay floats
                // and are refused where an integer is expected.
                if f.abs() <= 9_007_199_254_740_992.0 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral),
        Value::Object(fields) => fields.values_mut().for_each(integral),
        _ => {}
    }
}

/// Query string whose rejections are native API errors. A parameter that is not UTF-8
/// once decoded is refused, not read with replacement characters.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(what) = parts.uri.query().and_then(not_utf8) {
            return Err(ApiError::bad_request(
                "malformed_request",
                format!("{what} is not UTF-8 once decoded"),
            ));
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// A component of a query or form (`+` for a space, percent-escapes) decoded, if the
/// bytes it stands for are UTF-8; borrowed when it has nothing to decode, as most
/// parameters of a read do.
pub fn decode_component(part: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    if !part.contains(&b'+') {
        return percent_encoding::percent_decode(part).decode_utf8().ok();
    }
    let spaced: Vec<u8> = part
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .ok()
        .map(|text| std::borrow::Cow::Owned(text.into_owned()))
}

/// The first parameter of a query whose name or value is not UTF-8 once decoded, named
/// for a message.
pub fn not_utf8(query: &str) -> Option<String> {
    for pair in query.as_bytes().split(|b| *b == b'&') {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let Some(name) = decode_component(name) else {
            return Some("a parameter name".to_owned());
        };
        if decode_component(value).is_none() {
            return Some(format!("parameter {name}"));
        }
    }
    None
}

/// Path parameters whose rejections are native API errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Who the caller is for gray rules: the IP it asks to be seen with
/// (`X-Cairn-Client-Ip`), else the first `X-Forwarded-For` hop when the node trusts its
/// proxy, else the connection's peer; and the labels it declares (`X-Cairn-Labels:
/// zone=eu-1,canary=true`).
pub struct Identity(pub cairn_core::ClientInfo);

pub const CLIENT_IP_HEADER: &str = "x-cairn-client-ip";
pub const LABELS_HEADER: &str = "x-cairn-labels";

impl FromRequestParts<SharedState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().map(str::trim).unwrap_or(""))
        };
        let bad = |what: String| ApiError::bad_request("invalid_argument", what);
        let ip =
            match header(CLIENT_IP_HEADER) {
                Some(text) => Some(text.parse::<std::net::IpAddr>().map_err(|_| {
                    bad(format!("{CLIENT_IP_HEADER} {text:?} is not an IP address"))
                })?),
                None => {
                    let forwarded = state
                        .settings
                        .trust_forwarded_for
                        .then(|| first_forwarded(&parts.headers))
                        .flatten();
                    forwarded.or_else(|| {
                        parts
                            .extensions
                            .get::<ConnectInfo<SocketAddr>>()
                            .map(|c| c.0.ip())
                    })
                }
            };
        let labels = match header(LABELS_HEADER) {
            Some(text) => cairn_core::Label::parse_list(text)
                .map_err(|e| bad(format!("{LABELS_HEADER}: {e}")))?,
            None => Vec::new(),
        };
        Ok(Identity(cairn_core::ClientInfo::new(ip, labels)))
    }
}

/// The first address of an `X-Forwarded-For` header: the client, as the first proxy
/// saw it.
pub fn first_forwarded(headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
    headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The local address of the connection a request came on: the address its client
/// reached this node at.
#[derive(Clone, Copy, Debug)]
pub struct LocalAddr(pub SocketAddr);

/// The URL a client can reach `node` at: its advertised address, or, for this node when
/// it advertises an address on every interface (`0.0.0.0`, `[::]`), which no client can
/// use, the address the client's connection reached (never the `Host` header, which the
/// client chooses). `None` for another such node: its `advertise_url` should be set.
pub fn reachable_url(node: &crate::sync::NodeInfo, local: Option<LocalAddr>) -> Option<String> {
    let address = node.record.address.trim_end_matches('/');
    let unspecified = address.contains("://0.0.0.0") || address.contains("://[::]");
    if !unspecified {
        return Some(address.to_owned());
    }
    match (node.this_node, local) {
        (true, Some(LocalAddr(local))) => {
            let scheme = address
                .split_once("://")
                .map_or("http", |(scheme, _)| scheme);
            Some(format!("{scheme}://{local}"))
        }
        _ => None,
    }
}

/// Where a request came from, for the audit trail: the first `X-Forwarded-For` hop
/// when the node trusts its proxy (`trust_forwarded_for`), else the connection's peer.
pub fn source_of(parts: &Parts, state: &AppState) -> Option<std::net::IpAddr> {
    state
        .settings
        .trust_forwarded_for
        .then(|| first_forwarded(&parts.headers))
        .flatten()
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

/// The request's [`source_of`], as an extractor.
#[derive(Debug, Clone, Copy)]
pub struct Source(pub Option<std::net::IpAddr>);

impl Source {
    /// The origin of a read through `surface`.
    pub fn via(self, surface: &'static str) -> Origin {
        Origin {
            source: self.0,
            surface,
        }
    }
}

impl FromRequestParts<SharedState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Source(source_of(parts, state)))
    }
}

/// The request's [`source_of`] as text, for the audit trail of acts.
pub struct ClientAddr(pub String);

impl FromRequestParts<SharedState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            source_of(parts, state)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
        ))
    }
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(AuthError::MissingToken.into());
        }
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the Authorization header must be `Bearer <token>`",
            )
        })?;
        Ok(state.auth.verify(token.trim())?)
    }
}

/// Who asks on the native API, and from where: for checks and the audit log.
impl FromRequestParts<SharedState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let addr = ClientAddr::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        Ok(actor(&caller, &addr))
    }
}

/// A caller with the admin role. Handlers that take it cannot run for anyone else; the
/// refusal of anyone else is audited.
pub struct Admin(pub Actor);

impl FromRequestParts<SharedState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let actor = Actor::from_request_parts(parts, state).await?;
        if actor.caller.role != Role::Admin {
            let target = format!("{} {}", parts.method, parts.uri.path());
            let refused = AuthError::Forbidden;
            state.auth.audit().act(
                &actor,
                "admin",
                "",
                target,
                crate::audit::Outcome::Denied,
                refused.to_string(),
            );
            return Err(refused.into());
        }
        Ok(Admin(actor))
    }
}

/// The most a request may send before anyone is known: a login's name and password.
/// Routes that read a body only after authenticating keep the general limit.
pub const UNAUTHENTICATED_BODY_LIMIT: usize = 16 * 1024;

/// A config route's caller and key, once the caller is known to be allowed to read it.
pub struct ReadableKey {
    pub caller: Caller,
    pub key: ConfigKey,
}

impl FromRequestParts<SharedState> for ReadableKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let key = config_key(KeyPath::from_request_parts(parts, state).await?)?;
        let origin = Source(source_of(parts, state)).via("native");
        state.service.may_read(&caller, &key, origin)?;
        Ok(ReadableKey { caller, key })
    }
}

/// A native API request's actor.
pub fn actor(caller: &Caller, addr: &ClientAddr) -> Actor {
    actor_via("native", caller, addr)
}

/// The actor of a request that came through `surface`.
pub fn actor_via(surface: &'static str, caller: &Caller, addr: &ClientAddr) -> Actor {
    Actor {
        caller: caller.clone(),
        source: addr.0.clone(),
        surface,
    }
}

/// The `{namespace}/{group}/{data_id}` path parameters of a config route.
pub type KeyPath = ApiPath<(String, String, String)>;

/// A config route's key, validated.
pub fn config_key(ApiPath((namespace, group, data_id)): KeyPath) -> Result<ConfigKey, ApiError> {
    Ok(ConfigKey::parse(&namespace, &group, &data_id)?)
}

/// Page number and size from a query, defaulted and bounded.
pub fn page(number: Option<u32>, size: Option<u32>) -> Result<cairn_store::Page, ApiError> {
    let number = number.unwrap_or(1);
    let size = size.unwrap_or(50);
    if number == 0 {
        return Err(ApiError::bad_request(
            "invalid_argument",
            "page starts at 1",
        ));
    }
    if size == 0 || size > 500 {
        return Err(ApiError::bad_request(
            "invalid_argument",
            "page_size must be between 1 and 500",
        ));
    }
    Ok(cairn_store::Page { number, size })
}

/// The largest request body the router takes.
pub(crate) fn body_limit(settings: &crate::Settings) -> usize {
    // Form encoding triples a content's non-ASCII bytes (JSON escaping can double
    // others); leave room for the other fields.
    settings.max_content_bytes.saturating_mul(3) + 64 * 1024
}

/// Every surface, with the shared layers.
pub fn router(state: SharedState) -> Router {
    let body_limit = body_limit(&state.settings);
    let body_deadline = state.settings.body_read_timeout_ms.get();
    let api = native::router()
        .merge(watch::router())
        .merge(transfer::router())
        .merge(schemas::router())
        .merge(webhooks::router())
        .merge(reviews::router())
        .route_layer(crate::metrics::Track);
    Router::new()
        .merge(api)
        .merge(nacos::router().route_layer(crate::metrics::Track))
        .merge(apollo::router().route_layer(crate::metrics::Track))
        .merge(ops::router())
        .merge(console::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        // One stack, added at once: every `layer` call boxes each request's future once
        // more, and a parked long poll keeps them all (see BENCHMARKS.md).
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    |_: Box<dyn std::any::Any + Send>| {
                        axum::response::IntoResponse::into_response(ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            "internal error; see the server log",
                        ))
                    },
                ))
                .layer(DefaultBodyLimit::max(body_limit))
                .layer(tower::util::MapRequestLayer::new(move |request| {
                    body::with_deadline(request, body_deadline)
                })),
        )
        .with_state(state)
}
