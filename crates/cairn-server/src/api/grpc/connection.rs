//! The gRPC connections of a node: who is connected, what each listens to, and the
//! server-to-client requests (pushes) waiting for an answer.
//!
//! A connection is one HTTP/2 transport, known by the client's address: its unary calls
//! and its bidirectional stream arrive on the same transport, which is how Nacos ties
//! them together. It counts as registered once its stream sent `ConnectionSetupRequest`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_core::{ClientInfo, ConfigKey};
use dashmap::DashMap;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::proto::Payload;
use crate::now_millis;

/// A request sent to the client, by its id, until its answer comes or it is given up.
enum Waiting {
    /// A caller waits for the answer: whether it succeeded.
    Caller(oneshot::Sender<bool>),
    /// A push, checked by its connection's watch when it is due again: whether the
    /// client acknowledged it.
    Push(bool),
}

/// What goes to a client on its stream. Boxed: the channel allocates room for 32 items
/// up front, per connection, and most connections only ever carry a push or two.
pub type Outgoing = mpsc::Sender<Result<Box<Payload>, tonic::Status>>;

/// One key a connection listens to.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The md5 the client holds (as it said, or as the last push told it), `""` for none.
    pub md5: String,
    /// The tenant exactly as the client sent it, for pushes naming the key.
    pub tenant: String,
}

/// A registered connection.
pub struct Connection {
    pub id: String,
    pub addr: SocketAddr,
    /// For gray releases: the client's own IP (as it states it, else the transport's)
    /// and its labels.
    pub client: ClientInfo,
    pub client_version: String,
    pub app_name: String,
    /// What goes to the client on its stream.
    out: Outgoing,
    pub listens: Mutex<HashMap<ConfigKey, Listen>>,
    /// Woken when the listened set changes, so the connection's watch re-registers.
    pub listens_changed: Notify,
    /// The user whose token the last listen request carried: the connection's watch
    /// ends when that user may no longer read what it listens to.
    pub user: Mutex<Option<cairn_core::Username>>,
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// When the client last sent anything, in Unix milliseconds.
    last_active: AtomicI64,
    /// Whether a `ClientDetectionRequest` is on its way.
    detecting: AtomicBool,
    /// Cancelled when the connection ends, for whatever reason.
    pub closed: CancellationToken,
}

impl Connection {
    pub fn touch(&self) {
        self.last_active.store(now_millis(), Ordering::Relaxed);
    }

    /// Milliseconds since the client last sent anything.
    pub fn idle_ms(&self) -> i64 {
        now_millis() - self.last_active.load(Ordering::Relaxed)
    }

    /// Sends a request to the client and waits up to `wait` for its answer (and, first,
    /// up to `wait` for room in the client's queue). `false` when the client answered
    /// with a failure, did not answer in time, or is gone.
    pub async fn request(
        &self,
        ids: &AtomicU64,
        kind: &str,
        mut body: serde_json::Value,
        wait: Duration,
    ) -> bool {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        body["requestId"] = json!(id.to_string());
        body["headers"] = json!({});
        let (tx, answer) = oneshot::channel();
        self.waiting().insert(id, Waiting::Caller(tx));
        let payload = Box::new(Payload::json(kind, &body));
        let answered = self.out.send_timeout(Ok(payload), wait).await.is_ok()
            && matches!(tokio::time::timeout(wait, answer).await, Ok(Ok(true)));
        self.waiting().remove(&id);
        answered
    }

    /// Queues the notification of a change of `key` (named with `tenant` as the client
    /// listens to it) without waiting, under a fresh id, which it returns; whether the
    /// client acknowledged it is for [`Connection::acknowledged`] to tell. A full queue
    /// counts as a push the client did not acknowledge.
    pub fn push(&self, ids: &AtomicU64, key: &ConfigKey, tenant: &str) -> u64 {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let body = ChangeNotify {
            data_id: key.data_id.as_str(),
            group: key.group.as_str(),
            tenant,
            module: "config",
            request_id: &id.to_string(),
            headers: Empty {},
        };
        self.waiting().insert(id, Waiting::Push(false));
        let payload = Box::new(Payload::json("ConfigChangeNotifyRequest", &body));
        let _ = self.out.try_send(Ok(payload));
        id
    }

    /// Whether the client acknowledged push `id`; forgets the push either way.
    pub fn acknowledged(&self, id: u64) -> bool {
        matches!(self.waiting().remove(&id), Some(Waiting::Push(true)))
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().expect("waiting poisoned")
    }

    /// Sends a request the client need not answer (and some clients cannot).
    pub fn tell(&self, kind: &str, mut body: serde_json::Value) {
        body["headers"] = json!({});
        let _ = self.out.try_send(Ok(Box::new(Payload::json(kind, &body))));
    }

    /// Matches the client's answer to a request of this node by its id; an id this node
    /// is not waiting on is ignored.
    pub fn answered(&self, request_id: &str, success: bool) {
        let Ok(id) = request_id.parse::<u64>() else {
            return;
        };
        let mut waiting = self.waiting();
        match waiting.get_mut(&id) {
            Some(Waiting::Push(acknowledged)) => *acknowledged = success,
            Some(Waiting::Caller(_)) => {
                if let Some(Waiting::Caller(tx)) = waiting.remove(&id) {
                    let _ = tx.send(success);
                }
            }
            None => {}
        }
    }
}

/// A `ConfigChangeNotifyRequest`'s body, serialized straight from borrowed names: it is
/// made once per listening connection of a changed config. `tenant` is left out when
/// empty, as the client listened without one.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeNotify<'a> {
    data_id: &'a str,
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    tenant: &'a str,
    module: &'static str,
    request_id: &'a str,
    headers: Empty,
}

#[derive(serde::Serialize)]
struct Empty {}

/// What a connection told at setup.
pub struct Setup {
    pub client: ClientInfo,
    pub client_version: String,
    pub app_name: String,
}

/// Every connection of the node, by client address.
#[derive(Default)]
pub struct Connections {
    registered: DashMap<SocketAddr, Arc<Connection>>,
    /// Ids given out by `ServerCheckRequest` before the stream registered, so that the
    /// registration keeps the id the client was told; forgotten after a minute unused.
    pending: DashMap<SocketAddr, (String, Instant)>,
    /// Ids of pushed requests, unique per node.
    pub push_ids: AtomicU64,
}

impl Connections {
    pub fn get(&self, addr: &SocketAddr) -> Option<Arc<Connection>> {
        self.registered.get(addr).map(|c| c.value().clone())
    }

    pub fn len(&self) -> usize {
        self.registered.len()
    }

    pub fn is_empty(&self) -> bool {
        self.registered.is_empty()
    }

    /// The connection id of the transport at `addr`, as Nacos makes them.
    pub fn id_for(&self, addr: SocketAddr) -> String {
        if let Some(connection) = self.registered.get(&addr) {
            return connection.id.clone();
        }
        self.pending
            .entry(addr)
            .or_insert_with(|| {
                (
                    format!("{}_{}_{}", now_millis(), addr.ip(), addr.port()),
                    Instant::now(),
                )
            })
            .0
            .clone()
    }

    /// Registers the transport at `addr`; replaces an earlier registration of the same
    /// address (a client that set up twice).
    pub fn register(&self, addr: SocketAddr, setup: Setup, out: Outgoing) -> Arc<Connection> {
        let id = self
            .pending
            .remove(&addr)
            .map(|(_, (id, _))| id)
            .unwrap_or_else(|| format!("{}_{}_{}", now_millis(), addr.ip(), addr.port()));
        let connection = Arc::new(Connection {
            id,
            addr,
            client: setup.client,
            client_version: setup.client_version,
            app_name: setup.app_name,
            out,
            listens: Mutex::default(),
            listens_changed: Notify::new(),
            user: Mutex::default(),
            waiting: Mutex::default(),
            last_active: AtomicI64::new(now_millis()),
            detecting: AtomicBool::new(false),
            closed: CancellationToken::new(),
        });
        if let Some(old) = self.registered.insert(addr, connection.clone()) {
            old.closed.cancel();
        }
        connection
    }

    /// Forgets `connection` (only if it is still the one registered at its address).
    pub fn unregister(&self, connection: &Arc<Connection>) {
        connection.closed.cancel();
        self.registered
            .remove_if(&connection.addr, |_, c| Arc::ptr_eq(c, connection));
    }

    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.registered.iter().map(|c| c.value().clone()).collect()
    }

    /// Keys listened to, over every connection.
    pub fn listens(&self) -> usize {
        self.registered
            .iter()
            .map(|c| c.listens.lock().expect("listens poisoned").len())
            .sum()
    }

    /// Asks connections idle for `idle` whether their client is still there (Nacos's
    /// `ClientDetectionRequest`), and ends those that do not answer within `wait`; drops
    /// unused pending ids.
    pub fn sweep(self: &Arc<Self>, idle: Duration, wait: Duration) {
        self.pending
            .retain(|_, (_, at)| at.elapsed() < Duration::from_secs(60));
        for connection in self.all() {
            if connection.idle_ms() < idle.as_millis() as i64
                || connection.detecting.swap(true, Ordering::Relaxed)
            {
                continue;
            }
            let connections = self.clone();
            tokio::spawn(async move {
                let there = connection
                    .request(
                        &connections.push_ids,
                        "ClientDetectionRequest",
                        json!({ "module": "internal" }),
                        wait,
                    )
                    .await;
                connection.detecting.store(false, Ordering::Relaxed);
                if there {
                    connection.touch();
                } else {
                    tracing::info!(connection = %connection.id, "gRPC client did not answer a detection request; connection ended");
                    connections.unregister(&connection);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> (
        Arc<Connection>,
        mpsc::Receiver<Result<Box<Payload>, tonic::Status>>,
    ) {
        let (out, sent) = mpsc::channel(8);
        let setup = Setup {
            client: ClientInfo::new(None, Vec::new()),
            client_version: "Nacos-Java-Client:v2.3.0".into(),
            app_name: "app".into(),
        };
        let addr: SocketAddr = "127.0.0.1:9848".parse().unwrap();
        (Connections::default().register(addr, setup, out), sent)
    }

    #[tokio::test]
    async fn a_push_is_waited_for_until_checked_and_stray_answers_are_ignored() {
        let (connection, mut sent) = connection();
        let ids = AtomicU64::new(7);
        let key = ConfigKey::parse("public", "g", "app.yaml").unwrap();
        let first = connection.push(&ids, &key, "");
        let second = connection.push(&ids, &key, "dev");
        let body = |payload: Box<Payload>| -> serde_json::Value {
            assert_eq!(payload.kind(), "ConfigChangeNotifyRequest");
            serde_json::from_slice(payload.body()).unwrap()
        };
        assert_eq!(
            body(sent.recv().await.unwrap().unwrap()),
            json!({ "dataId": "app.yaml", "group": "g", "module": "config", "requestId": "7", "headers": {} }),
            "no tenant when the client listened without one"
        );
        assert_eq!(body(sent.recv().await.unwrap().unwrap())["tenant"], "dev");

        connection.answered(&first.to_string(), true);
        connection.answered("999", true);
        connection.answered("not a number", true);
        assert_eq!(
            connection.waiting().len(),
            2,
            "answers to nothing add nothing"
        );
        assert!(connection.acknowledged(first));
        assert!(!connection.acknowledged(second), "never answered");
        assert!(
            !connection.acknowledged(first),
            "checked once, then forgotten"
        );
        assert!(connection.waiting().is_empty());
    }
}
