//! The Nacos 2.x gRPC surface, on the HTTP port + 1000 as Nacos serves it: unary
//! `Request/request` and the bidirectional `BiRequestStream/requestBiStream` on one
//! HTTP/2 connection. Requests are Nacos's JSON bodies in a protobuf envelope; config
//! requests go to the one service, and a change to a listened config is pushed to the
//! connection (`ConfigChangeNotifyRequest`), retried until the client acknowledges it.

mod config;
mod connection;
pub mod proto;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::Grpc;
use tonic::{Status, Streaming};
use tonic_prost::ProstCodec;

use cairn_core::{ClientInfo, Label};
pub use connection::Connections;
use connection::{Connection, Setup};
use proto::Payload;

use super::nacos::NacosError;
use super::SharedState;
use crate::auth::{AuthError, Caller};
use crate::listeners::{Listener, Protocol};

pub const UNARY_PATH: &str = "/Request/request";
pub const STREAM_PATH: &str = "/BiRequestStream/requestBiStream";

/// How long a pushed change waits for its acknowledgement before it is sent again, as
/// in Nacos.
const PUSH_WAIT: Duration = Duration::from_secs(3);
/// Sends of one change before a connection that never acknowledges is ended (its client
/// reconnects and listens again). Waits between sends grow by 2 s each.
const PUSH_TRIES: u32 = 5;
/// A connection silent this long is asked whether its client is still there, as in
/// Nacos; one that does not answer within `DETECT_WAIT` is ended.
const IDLE: Duration = Duration::from_secs(20);
const DETECT_WAIT: Duration = Duration::from_secs(5);
/// A stream must say who it is within this time.
const SETUP_WAIT: Duration = Duration::from_secs(10);

/// Request types of Nacos's service discovery, which Cairn does not serve.
const NAMING: &[&str] = &[
    "InstanceRequest",
    "BatchInstanceRequest",
    "PersistentInstanceRequest",
    "ServiceListRequest",
    "ServiceQueryRequest",
    "SubscribeServiceRequest",
    "NotifySubscriberRequest",
];

/// The gRPC surface of a node.
pub struct Surface {
    state: SharedState,
    connections: Arc<Connections>,
}

impl Surface {
    pub fn new(state: SharedState) -> Arc<Surface> {
        Arc::new(Surface {
            connections: state.grpc_connections.clone(),
            state,
        })
    }

    /// Serves gRPC on `listener` until `shutdown`; then asks every client to move to
    /// another node (`ConnectResetRequest`) and ends their connections.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: CancellationToken,
    ) {
        let max = self.state.settings.grpc_max_message_bytes;
        let sweeper = {
            let (connections, shutdown) = (self.connections.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3));
                loop {
                    tokio::select! {
                        _ = every.tick() => connections.sweep(IDLE, DETECT_WAIT),
                        _ = shutdown.cancelled() => return,
                    }
                }
            })
        };
        let closing = {
            let (surface, shutdown) = (self.clone(), shutdown.clone());
            async move {
                shutdown.cancelled().await;
                for connection in surface.connections.all() {
                    connection.tell("ConnectResetRequest", json!({ "module": "internal" }));
                    connection.closed.cancel();
                }
            }
        };
        let routes = {
            let (unary, stream) = (self.clone(), self.clone());
            methods(
                max,
                move |addr, payload| unary.clone().unary(addr, payload),
                move |addr, inbound| stream.clone().open_stream(addr, inbound),
            )
        };
        let served = match tls {
            None => {
                transport()
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener)
                            .with_nodelay(Some(true)),
                        closing,
                    )
                    .await
            }
            Some(tls) => {
                transport()
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(
                        crate::tls::incoming(listener, tls, shutdown.clone()),
                        closing,
                    )
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "the gRPC server stopped");
        }
        sweeper.abort();
    }

    /// Answers one unary request. Every failure is a Nacos response, never a dropped
    /// connection.
    async fn unary(self: Arc<Self>, addr: Option<SocketAddr>, payload: Payload) -> Payload {
        let kind = payload.kind().to_owned();
        let Some(addr) = addr else {
            return error(500, "the client's address is unknown");
        };
        if kind == "ServerCheckRequest" {
            return Payload::json(
                "ServerCheckResponse",
                &json!({
                    "resultCode": 200,
                    "errorCode": 0,
                    "connectionId": self.connections.id_for(addr),
                    // No ability negotiation: clients then skip waiting for a setup ack.
                    "supportAbilityNegotiation": false,
                    "success": true,
                }),
            );
        }
        let response_kind = match kind.as_str() {
            "HealthCheckRequest" => "HealthCheckResponse",
            "ConfigQueryRequest" => "ConfigQueryResponse",
            "ConfigPublishRequest" => "ConfigPublishResponse",
            "ConfigRemoveRequest" => "ConfigRemoveResponse",
            "ConfigBatchListenRequest" => "ConfigChangeBatchListenResponse",
            naming if NAMING.contains(&naming) => {
                return error(
                    302,
                    &format!(
                        "{naming} is service discovery, which Cairn does not serve: \
                         Cairn is a configuration center"
                    ),
                )
            }
            "" => return error(302, "the request has no type (metadata.type)"),
            other => return error(302, &format!("no handler for request type {other}")),
        };
        let Some(connection) = self.connections.get(&addr) else {
            // Nacos answers 301, which clients take as "reconnect" — except from a health
            // check, where their shared logic reads any 3xx as "healthy, server still
            // starting". A client whose stream died without it noticing (nacos-sdk-python
            // 2.0 after its node restarted) would then never set up again and never hear
            // of another change; a failure it cannot mistake makes it reconnect.
            if kind == "HealthCheckRequest" {
                return error(500, "Connection is unregistered; connect again.");
            }
            return error(301, "Connection is unregistered.");
        };
        connection.touch();
        let body: Value = match serde_json::from_slice(payload.body()) {
            Ok(body @ Value::Object(_)) => body,
            _ => return error(502, &format!("the body of {kind} is not a JSON object")),
        };
        if kind == "HealthCheckRequest" {
            return Payload::json(
                response_kind,
                &json!({ "resultCode": 200, "errorCode": 0, "success": true }),
            );
        }
        let request = match config::ConfigRequest::deserialize(&body) {
            Ok(request) => request,
            Err(e) => return error(502, &format!("the body of {kind} cannot be read: {e}")),
        };
        let caller = match self.caller(&payload, &body) {
            Ok(caller) => caller,
            Err(e) => {
                let refusal = if kind == "ConfigQueryRequest" {
                    config::query_refusal(&e)
                } else {
                    config::refusal(&e)
                };
                return Payload::json(response_kind, &refusal);
            }
        };
        let answer = match kind.as_str() {
            "ConfigQueryRequest" => config::query(&self, &connection, &caller, &request),
            "ConfigPublishRequest" => {
                config::publish_config(&self, &connection, &caller, &request).await
            }
            "ConfigRemoveRequest" => config::remove(&self, &connection, &caller, &request).await,
            _ => config::batch_listen(&self, &connection, &caller, &request),
        };
        Payload::json(response_kind, &answer)
    }

    /// Who sent a request: its `accessToken` header.
    fn caller(&self, payload: &Payload, body: &Value) -> Result<Caller, NacosError> {
        let path = UNARY_PATH.to_owned();
        let Some(token) = payload.header("accessToken", body) else {
            return Err(NacosError::Unauthenticated {
                message:
                    "no accessToken: log in over HTTP (/nacos/v1/auth/login) and send the token",
                path,
            });
        };
        self.state.auth.verify(token.trim()).map_err(|e| match e {
            AuthError::Store(inner) => {
                NacosError::Service(crate::service::ServiceError::store_failure(inner))
            }
            AuthError::Expired => NacosError::Unauthenticated {
                message: "token expired!",
                path,
            },
            _ => NacosError::Unauthenticated {
                message: "token invalid!",
                path,
            },
        })
    }

    /// Runs one client's stream: registration by its first message, then the client's
    /// answers to pushes, until either side ends it.
    fn open_stream(
        self: Arc<Self>,
        addr: Option<SocketAddr>,
        mut inbound: Streaming<Payload>,
    ) -> impl futures::Stream<Item = Result<Payload, Status>> + Send + 'static {
        let (out, rx) = mpsc::channel::<Result<Box<Payload>, Status>>(64);
        tokio::spawn(async move {
            let Some(addr) = addr else { return };
            let first = tokio::time::timeout(SETUP_WAIT, inbound.next()).await;
            let Ok(Some(Ok(first))) = first else { return };
            if first.kind() != "ConnectionSetupRequest" {
                let _ = out
                    .send(Ok(Box::new(error(
                        301,
                        "a stream starts with ConnectionSetupRequest",
                    ))))
                    .await;
                return;
            }
            if self.state.shutdown.is_cancelled() {
                return;
            }
            // A client setting up again on its transport replaces its registration and
            // is not refused for it.
            let limit = self.state.settings.grpc_max_connections;
            if self.connections.len() >= limit && self.connections.get(&addr).is_none() {
                tracing::warn!(limit, "gRPC connection refused: at grpc_max_connections");
                let _ = out
                    .send(Err(Status::resource_exhausted(format!(
                        "this node serves {limit} gRPC connections, its limit \
                         (grpc_max_connections); try another node"
                    ))))
                    .await;
                return;
            }
            let setup = setup_of(&first, addr);
            let connection = self.connections.register(addr, setup, out);
            tracing::debug!(connection = %connection.id, version = %connection.client_version, app = %connection.app_name, "gRPC client connected");
            let watch = tokio::spawn(self.clone().watch(connection.clone()));
            // Made once, not per message: the node's shutdown token is shared by every
            // connection, and each waiter made and dropped takes its lock.
            let closed = connection.closed.cancelled();
            // Also for a connection registered after shutdown's reset went out.
            let shutdown = self.state.shutdown.cancelled();
            tokio::pin!(closed, shutdown);
            loop {
                let next = tokio::select! {
                    next = inbound.next() => next,
                    _ = &mut closed => break,
                    _ = &mut shutdown => break,
                };
                let Some(Ok(message)) = next else { break };
                connection.touch();
                if message.kind().ends_with("Response") {
                    if let Ok(answer) = serde_json::from_slice::<Answer>(message.body()) {
                        if let Some(id) = answer.request_id {
                            connection.answered(&id, answer.result_code.as_i64() == Some(200));
                        }
                    }
                }
            }
            self.connections.unregister(&connection);
            watch.abort();
            tracing::debug!(connection = %connection.id, "gRPC client disconnected");
        });
        ReceiverStream::new(rx).map(|message| message.map(|payload| *payload))
    }

    /// Pushes a change of any config `connection` listens to, for as long as it lives.
    async fn watch(self: Arc<Self>, connection: Arc<Connection>) {
        let listener = |connection: &Connection| {
            let listens = connection.listens.lock().expect("listens poisoned");
            let held = listens
                .iter()
                .map(|(key, listen)| (key.clone(), Some(listen.md5.clone())))
                .collect();
            let listener = Listener::new(Protocol::NacosGrpc, connection.client.clone(), held);
            match &*connection.user.lock().expect("user poisoned") {
                Some(user) => listener.by(user),
                None => listener,
            }
        };
        // Registered before comparing, so a change in between is not missed; kept across
        // changes (a fan-out wakes every listener of a key at once, and re-registering
        // them all would queue them on that key's lock), re-made when the keys change.
        let mut registration = self.state.service.register(listener(&connection));
        // Pushes not yet acknowledged, oldest first. Checked here when due rather than
        // each on a task and timer of its own: a change wakes thousands of connections
        // at once, and nearly all acknowledge.
        let mut unanswered: VecDeque<Unanswered> = VecDeque::new();
        let closed = connection.closed.cancelled();
        tokio::pin!(closed);
        loop {
            self.push_changes(&connection, &mut unanswered);
            let due = unanswered.iter().map(|u| u.due).min();
            tokio::select! {
                _ = registration.changed() => {}
                _ = connection.listens_changed.notified() => {
                    registration = self.state.service.register(listener(&connection));
                }
                _ = &mut closed => return,
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    if !self.push_again(&connection, &mut unanswered) {
                        tracing::info!(connection = %connection.id, "gRPC client acknowledged no push of a change; connection ended");
                        self.connections.unregister(&connection);
                        return;
                    }
                }
            }
            if registration.closed() {
                // A revoked watch closes the connection: the client connects again, and
                // its next listen is refused with 403 rather than silently not pushed.
                if registration.revoked() {
                    connection.closed.cancel();
                }
                return;
            }
        }
    }

    /// Pushes each listened config whose md5 moved away from what the client holds.
    fn push_changes(
        self: &Arc<Self>,
        connection: &Arc<Connection>,
        unanswered: &mut VecDeque<Unanswered>,
    ) {
        let mut listens = connection.listens.lock().expect("listens poisoned");
        for (key, listen) in listens.iter_mut() {
            let view = self.state.service.view(key, &connection.client);
            let current = view.as_ref().map_or("", |v| v.md5());
            if current != listen.md5 {
                listen.md5 = current.to_owned();
                let id = connection.push(&self.connections.push_ids, key, &listen.tenant);
                // A newer push of the same key supersedes one still unanswered, which
                // is forgotten (an answer to it is no longer waited for).
                unanswered.retain(|u| {
                    let superseded = &u.key == key;
                    if superseded {
                        connection.acknowledged(u.id);
                    }
                    !superseded
                });
                unanswered.push_back(Unanswered::new(id, key.clone(), listen.tenant.clone(), 0));
            }
        }
    }

    /// Sends again the pushes that are due and were not acknowledged; `false` once one
    /// went unacknowledged every time it was sent.
    fn push_again(
        self: &Arc<Self>,
        connection: &Arc<Connection>,
        unanswered: &mut VecDeque<Unanswered>,
    ) -> bool {
        let now = tokio::time::Instant::now();
        let mut kept = VecDeque::with_capacity(unanswered.len());
        for push in unanswered.drain(..) {
            if push.due > now {
                kept.push_back(push);
            } else if connection.acknowledged(push.id) {
                continue;
            } else if push.attempt + 1 >= PUSH_TRIES {
                return false;
            } else {
                let id = connection.push(&self.connections.push_ids, &push.key, &push.tenant);
                kept.push_back(Unanswered::new(id, push.key, push.tenant, push.attempt + 1));
            }
        }
        *unanswered = kept;
        true
    }
}

/// A push waiting for the client's acknowledgement.
struct Unanswered {
    id: u64,
    key: cairn_core::ConfigKey,
    tenant: String,
    /// How many times it was sent before this one (0: the first).
    attempt: u32,
    /// When it is checked, and sent again if unacknowledged: the answer's wait, then a
    /// pause that grows with each attempt.
    due: tokio::time::Instant,
}

impl Unanswered {
    fn new(id: u64, key: cairn_core::ConfigKey, tenant: String, attempt: u32) -> Self {
        let due = tokio::time::Instant::now()
            + PUSH_WAIT
            + Duration::from_secs(2 * u64::from(attempt + 1));
        Self {
            id,
            key,
            tenant,
            attempt,
            due,
        }
    }
}

/// What a client's answer to a request of the node says; the rest of it is not read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(borrow, default)]
    request_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    result_code: Value,
}

/// What a connection's setup says: its labels (for gray rules), version and app.
fn setup_of(first: &Payload, addr: SocketAddr) -> Setup {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct ConnectionSetup {
        client_version: String,
        labels: std::collections::HashMap<String, String>,
    }
    let setup: ConnectionSetup = serde_json::from_slice(first.body()).unwrap_or_default();
    // The IP the client states (its own interface) when it gives one, as Nacos uses
    // for beta releases; else the address it connects from.
    let stated = first
        .metadata
        .as_ref()
        .and_then(|m| m.client_ip.parse().ok());
    let labels = setup
        .labels
        .iter()
        .filter_map(|(k, v)| Label::parse(&format!("{k}={v}")).ok())
        .collect();
    Setup {
        client: ClientInfo::new(Some(stated.unwrap_or(addr.ip())), labels),
        app_name: setup.labels.get("AppName").cloned().unwrap_or_default(),
        client_version: setup.client_version,
    }
}

/// Nacos's `ErrorResponse`.
fn error(code: u16, message: &str) -> Payload {
    Payload::json(
        "ErrorResponse",
        &json!({ "resultCode": 500, "errorCode": code, "message": message, "success": false }),
    )
}

/// The stream's codec: prost's, with 1 KiB buffers instead of 8 KiB ones. A stream
/// lives as long as its connection and carries pushes of a hundred bytes or so; tonic
/// keeps a decode and an encode buffer per stream, so at the default size they were
/// most of an idle listening connection's memory. Larger messages still fit: the
/// buffers grow.
#[derive(Clone, Copy, Default)]
struct StreamCodec;

impl tonic::codec::Codec for StreamCodec {
    type Encode = Payload;
    type Decode = Payload;
    type Encoder = <ProstCodec<Payload, Payload> as tonic::codec::Codec>::Encoder;
    type Decoder = <ProstCodec<Payload, Payload> as tonic::codec::Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<Payload, Payload>::raw_encoder(stream_buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<Payload, Payload>::raw_decoder(stream_buffers())
    }
}

fn stream_buffers() -> tonic::codec::BufferSettings {
    tonic::codec::BufferSettings::new(1024, 32 * 1024)
}

/// The HTTP/2 server a node's gRPC runs on, without its methods. Public, like
/// [`methods`], so that the benchmark's baseline is the same transport without Cairn.
pub fn transport() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        // Idle listening connections are most of a node's connections: small windows
        // keep each one's buffers small (config bodies are small too).
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(128 * 1024)
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_nodelay(true)
}

/// Nacos's two methods as routes: each decodes its messages with its codec and hands
/// them to its handler with the client's address (which names the connection).
/// Messages larger than `max` bytes are refused either way.
pub fn methods<U, UF, S, St>(max: usize, unary: U, stream: S) -> tonic::service::Routes
where
    U: Fn(Option<SocketAddr>, Payload) -> UF + Clone + Send + Sync + 'static,
    UF: std::future::Future<Output = Payload> + Send + 'static,
    S: Fn(Option<SocketAddr>, Streaming<Payload>) -> St + Clone + Send + Sync + 'static,
    St: futures::Stream<Item = Result<Payload, Status>> + Send + 'static,
{
    let unary = move |request: axum::extract::Request| {
        let unary = unary.clone();
        async move {
            let handler = tower::service_fn(move |request: tonic::Request<Payload>| {
                let answer = unary(request.remote_addr(), request.into_inner());
                async move { Ok::<_, Status>(tonic::Response::new(answer.await)) }
            });
            Grpc::new(ProstCodec::<Payload, Payload>::default())
                .apply_max_message_size_config(Some(max), Some(max))
                .unary(handler, request)
                .await
        }
    };
    let stream = move |request: axum::extract::Request| {
        let stream = stream.clone();
        async move {
            let handler = tower::service_fn(move |request: tonic::Request<Streaming<Payload>>| {
                let out = stream(request.remote_addr(), request.into_inner());
                async move { Ok::<_, Status>(tonic::Response::new(out)) }
            });
            Grpc::new(StreamCodec)
                .apply_max_message_size_config(Some(max), Some(max))
                .streaming(handler, request)
                .await
        }
    };
    axum::Router::new()
        .route(UNARY_PATH, axum::routing::post(unary))
        .route(STREAM_PATH, axum::routing::post(stream))
        .fallback(|| async { Status::unimplemented("no such method").into_http::<Body>() })
        .into()
}
