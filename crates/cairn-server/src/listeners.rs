//! Who listens: every watch of every surface on this node, with the client's address,
//! the surface, what the client holds and since when. Every surface's watch registers
//! through the service, which lists it here for as long as the watch lives; the "who
//! listens" views (console, native API, Nacos's listener queries, the CLI) read it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_core::{ClientInfo, ConfigKey};
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
        }
    }

    pub fn keys(&self) -> Vec<ConfigKey> {
        self.held.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// Every live watch of the node.
#[derive(Default)]
pub struct Listeners {
    next: AtomicU64,
    all: DashMap<u64, Arc<Listener>>,
}

impl Listeners {
    /// Lists `listener` until the returned guard is dropped.
    pub fn add(self: &Arc<Self>, listener: Listener) -> Listed {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.all.insert(id, Arc::new(listener));
        Listed {
            listeners: self.clone(),
            id,
        }
    }

    /// The watches of `key`, each with what its client holds of it.
    pub fn of_key(&self, key: &ConfigKey) -> Vec<(Arc<Listener>, Option<String>)> {
        let mut found: Vec<_> = self
            .all
            .iter()
            .filter_map(|entry| {
                let held = entry.held.iter().find(|(k, _)| k == key)?.1.clone();
                Some((entry.value().clone(), held))
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
            .filter(|entry| entry.client.ip == Some(ip))
            .map(|entry| entry.value().clone())
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
        let a = listeners.add(Listener::new(
            Protocol::NacosHttp,
            client.clone(),
            vec![
                (key("a.yaml"), Some("md5-a".into())),
                (key("b.yaml"), Some(String::new())),
            ],
        ));
        let b = listeners.add(Listener::new(
            Protocol::Apollo,
            client,
            vec![(key("a.yaml"), None)],
        ));
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
}
