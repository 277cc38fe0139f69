//! Asking the other live nodes of a cluster, for views that span it (who listens): one
//! GET over HTTP/1.1 (over TLS for an `https://` address) to each node's advertised
//! address, with the caller's token, bounded in time. A node that does not answer is
//! reported, not waited for.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Uri};
use serde::de::DeserializeOwned;

use super::SharedState;

/// How long one node may take to answer.
const PEER_WAIT: Duration = Duration::from_secs(3);

/// What one other node answered.
pub struct PeerAnswer<T> {
    pub node: String,
    pub answer: Result<T, String>,
}

/// `GET path` on every other live node, with `token` as the bearer token, in parallel.
pub async fn ask_others<T: DeserializeOwned>(
    state: &SharedState,
    path: &str,
    token: &str,
) -> Vec<PeerAnswer<T>> {
    let nodes = match state.sync.live_nodes().await {
        Ok(nodes) => nodes,
        Err(e) => {
            return vec![PeerAnswer {
                node: "(cluster)".into(),
                answer: Err(format!("the node list cannot be read: {e}")),
            }]
        }
    };
    let asks = nodes
        .into_iter()
        .filter(|n| !n.this_node)
        .map(|n| async move {
            let url = format!("{}{path}", n.record.address.trim_end_matches('/'));
            let tls = state.tls.as_ref().map(|tls| &tls.peers);
            let answer = match tokio::time::timeout(PEER_WAIT, get(&url, token, tls)).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {} s", PEER_WAIT.as_secs())),
            };
            PeerAnswer {
                node: n.record.id,
                answer,
            }
        });
    futures::future::join_all(asks).await
}

async fn get<T: DeserializeOwned>(
    url: &str,
    token: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<T, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("bad node address {url}: {e}"))?;
    let secure = match (uri.scheme_str(), tls) {
        (Some("http"), _) => false,
        (Some("https"), Some(_)) => true,
        (Some("https"), None) => {
            return Err(format!(
                "{url}: this node has no TLS settings (tls_cert) to reach it with"
            ))
        }
        _ => {
            return Err(format!(
                "{url}: only http:// and https:// nodes can be asked"
            ))
        }
    };
    let host = uri.host().ok_or_else(|| format!("{url} has no host"))?;
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let mut sender = match tls.filter(|_| secure) {
        None => handshake(stream).await?,
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|e| format!("{host} is not a name TLS can verify: {e}"))?;
            let stream = tls
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
            handshake(stream).await?
        }
    };
    let request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| format!("unreadable answer: {e}"))
}

/// An HTTP/1.1 client connection over `io`, driven by a task of its own.
async fn handshake<T>(
    io: T,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Who watches `key`: on this node, and with `token` on every other live node too.
pub async fn listeners(
    state: &SharedState,
    key: &cairn_core::ConfigKey,
    cluster_token: Option<&str>,
) -> super::wire::ListenersView {
    use super::wire::{ListenerView, ListenersView, UnansweredNode};
    let here = state.sync.node_id();
    let mut view = ListenersView {
        listeners: state
            .service
            .listeners_of(key)
            .iter()
            .map(|h| ListenerView::of(here, h))
            .collect(),
        unanswered: Vec::new(),
    };
    let Some(token) = cluster_token else {
        return view;
    };
    let path = format!(
        "/api/v1/configs/{}/{}/{}/listeners",
        key.namespace, key.group, key.data_id
    );
    for peer in ask_others::<ListenersView>(state, &path, token).await {
        match peer.answer {
            Ok(theirs) => view.listeners.extend(theirs.listeners),
            Err(error) => view.unanswered.push(UnansweredNode {
                node: peer.node,
                error,
            }),
        }
    }
    view
}

/// What the client at `ip` watches: on this node, and with `token` on every other live
/// node too.
/// Only the keys `caller` may read are shown (each node filters its own).
pub async fn client_watches(
    state: &SharedState,
    caller: &crate::auth::Caller,
    ip: std::net::IpAddr,
    cluster_token: Option<&str>,
) -> super::wire::ClientWatchesView {
    use super::wire::{ClientWatchView, ClientWatchesView, UnansweredNode, WatchedKeyView};
    let here = state.sync.node_id();
    let reader = state.service.reader(caller);
    let mut view = ClientWatchesView {
        watches: state
            .service
            .listened_by(ip)
            .into_iter()
            .filter_map(|(listener, mut keys)| {
                keys.retain(|h| reader.may_read(&h.key));
                (!keys.is_empty()).then_some((listener, keys))
            })
            .map(|(listener, keys)| ClientWatchView {
                node: here.to_owned(),
                protocol: listener.protocol.as_str().to_owned(),
                since: super::wire::timestamp(listener.since),
                keys: keys
                    .iter()
                    .map(|h| WatchedKeyView {
                        namespace: h.key.namespace.to_string(),
                        group: h.key.group.to_string(),
                        data_id: h.key.data_id.to_string(),
                        md5: h.held.clone(),
                        current: h.current,
                    })
                    .collect(),
            })
            .collect(),
        unanswered: Vec::new(),
    };
    let Some(token) = cluster_token else {
        return view;
    };
    let path = format!("/api/v1/listeners?ip={ip}");
    for peer in ask_others::<ClientWatchesView>(state, &path, token).await {
        match peer.answer {
            Ok(theirs) => view.watches.extend(theirs.watches),
            Err(error) => view.unanswered.push(UnansweredNode {
                node: peer.node,
                error,
            }),
        }
    }
    view
}
