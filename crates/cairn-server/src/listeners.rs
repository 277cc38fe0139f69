//! Who listens: every watch of every surface on this node, with the client's address,
//! the surface, what the client holds and since when. Every surface's watch registers
//! through the service, which lists it here for as long as the watch lives; the "who
//! listens" views (console, native API, Nacos's listener queries, the CLI) read it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::hub::Waiter;
use cairn_core::{ClientInfo, ConfigKey, Username};
use dashmap::DashMap;

/// The protocol a client listens by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The native long poll (`POST /api/v1/watch`).
    Native,
    /// The native server-sent-events stream.
    NativeStream,
    /// Nacos's HTTP long poll (`/nacos/v1/cs/configs/listener`).
    NacosHttp,
    /// A Nacos 2.x gRPC connection.
    NacosGrpc,
    /// Apollo's notifications long poll.
    Apollo,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::NativeStream => "native-sse",
            Protocol::NacosHttp => "nacos-http",
            Protocol::NacosGrpc => "nacos-grpc",
            Protocol::Apollo => "apollo",
        }
    }
}

/// A watch as the service is handed it.
#[derive(Debug, Clone)]
pub struct Listener {
    pub protocol: Protocol,
    /// Who the client is, as the surface identified it (gray rules use the same).
    pub client: ClientInfo,
    /// Each key with the md5 the client holds (`""`: none), or `None` where the
    /// surface numbers versions itself (Apollo): a held long poll of such a surface
    /// is current by construction, since it is answered as soon as it is not.
    pub held: Vec<(ConfigKey, Option<String>)>,
    /// When the watch began, in Unix milliseconds.
    pub since: i64,
    /// The user whose credentials opened the watch; `None` for surfaces without users
    /// (Apollo's apps). The watch ends when that user loses the right to read a key.
    pub user: Option<Username>,
}

impl Listener {
    pub fn new(
        protocol: Protocol,
        client: ClientInfo,
        held: Vec<(ConfigKey, Option<String>)>,
    ) -> Self {
        Listener {
            protocol,
            client,
            held,
            since: crate::now_millis(),
            user: None,
        }
    }

    /// The same watch, opened with `user`'s credentials.
    pub fn by(mut self, user: &Username) -> Self {
        self.user = Some(user.clone());
        self
    }

    pub fn keys(&self) -> Vec<ConfigKey> {
        self.held.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// A listed watch, and how to end it from outside.
struct Entry {
    listener: Arc<Listener>,
    /// Wakes the watch, which then sees `revoked`.
    waker: Arc<Waiter>,
    revoked: Arc<AtomicBool>,
}

/// Every live watch of the node.
#[derive(Default)]
pub struct Listeners {
    next: AtomicU64,
    /// By id; ids are the node's own, so a fast hash will do.
    all: DashMap<u64, Entry, foldhash::fast::RandomState>,
}

impl Listeners {
    /// Lists `listener` until the returned guard is dropped; `waker` wakes the watch
    /// when it is revoked.
    pub fn add(self: &Arc<Self>, listener: Listener, waker: Arc<Waiter>) -> Listed {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let revoked = Arc::new(AtomicBool::new(false));
        self.all.insert(
            id,
            Entry {
                listener: Arc::new(listener),
                waker,
                revoked: revoked.clone(),
            },
        );
        Listed {
            listeners: self.clone(),
            id,
            revoked,
        }
    }

    /// Ends every watch `lost` says may not go on (its user lost a right, or is gone):
    /// each is woken and sees itself revoked. Returns how many.
    pub fn revoke(&self, lost: impl Fn(&Listener) -> bool) -> usize {
        let mut ended = 0;
        for entry in self.all.iter() {
            if !entry.revoked.load(Ordering::Relaxed) && lost(&entry.listener) {
                entry.revoked.store(true, Ordering::SeqCst);
                entry.waker.wake();
                ended += 1;
            }
        }
        ended
    }

    /// The watches of `key`, each with what its client holds of it.
    pub fn of_key(&self, key: &ConfigKey) -> Vec<(Arc<Listener>, Option<String>)> {
        let mut found: Vec<_> = self
            .all
            .iter()
            .filter_map(|entry| {
                let listener = &entry.listener;
                let held = listener.held.iter().find(|(k, _)| k == key)?.1.clone();
                Some((listener.clone(), held))
            })
            .collect();
        found.sort_by_key(|(l, _)| (l.client.ip, l.since));
        found
    }

    /// The watches of the client at `ip`.
    pub fn of_client(&self, ip: IpAddr) -> Vec<Arc<Listener>> {
        let mut found: Vec<_> = self
            .all
            .iter()
            .filter(|entry| entry.listener.client.ip == Some(ip))
            .map(|entry| entry.listener.clone())
            .collect();
        found.sort_by_key(|l| l.since);
        found
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// A listed watch; unlisted when dropped.
pub struct Listed {
    listeners: Arc<Listeners>,
    id: u64,
    revoked: Arc<AtomicBool>,
}

impl Listed {
    /// Whether the watch was ended from outside and should answer and close.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.listeners.all.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> ConfigKey {
        ConfigKey::parse("public", "DEFAULT_GROUP", id).unwrap()
    }

    #[test]
    fn a_watch_is_listed_while_it_lives() {
        let listeners = Arc::new(Listeners::default());
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let client = ClientInfo::new(Some(ip), Vec::new());
        let a = listeners.add(
            Listener::new(
                Protocol::NacosHttp,
                client.clone(),
                vec![
                    (key("a.yaml"), Some("md5-a".into())),
                    (key("b.yaml"), Some(String::new())),
                ],
            ),
            Arc::default(),
        );
        let b = listeners.add(
            Listener::new(Protocol::Apollo, client, vec![(key("a.yaml"), None)]),
            Arc::default(),
        );
        let of_a = listeners.of_key(&key("a.yaml"));
        assert_eq!(of_a.len(), 2);
        assert!(
            of_a.iter()
                .any(|(l, held)| l.protocol == Protocol::NacosHttp
                    && held.as_deref() == Some("md5-a"))
        );
        assert_eq!(listeners.of_key(&key("b.yaml")).len(), 1);
        assert_eq!(listeners.of_client(ip).len(), 2);
        assert!(listeners.of_client("10.0.0.8".parse().unwrap()).is_empty());
        drop(a);
        assert_eq!(listeners.of_key(&key("b.yaml")).len(), 0);
        drop(b);
        assert!(listeners.is_empty());
    }

    #[tokio::test]
    async fn a_revoked_watch_is_woken_and_sees_it() {
        let listeners = Arc::new(Listeners::default());
        let ann = Username::parse("ann").unwrap();
        let client = ClientInfo::new(None, Vec::new());
        let waker = Arc::new(Waiter::default());
        let held = vec![(key("a.yaml"), Some(String::new()))];
        let mine = listeners.add(
            Listener::new(Protocol::Native, client.clone(), held.clone()).by(&ann),
            waker.clone(),
        );
        let other = listeners.add(
            Listener::new(Protocol::Native, client, held),
            Arc::default(),
        );
        let ended = listeners.revoke(|l| l.user.as_ref() == Some(&ann));
        assert_eq!(ended, 1);
        assert!(mine.revoked() && !other.revoked());
        tokio::time::timeout(std::time::Duration::from_secs(1), waker.woken())
            .await
            .expect("the revoked watch is woken");
        assert_eq!(
            listeners.revoke(|l| l.user.as_ref() == Some(&ann)),
            0,
            "a watch is revoked once"
        );
    }
}
