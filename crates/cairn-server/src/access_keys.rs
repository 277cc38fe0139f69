//! Access keys of Apollo apps: HMAC secrets an app's clients sign their requests with
//! (`Authorization: Apollo {appId}:{signature}` and `Timestamp`), as Apollo's config
//! service checks them, and which apps each namespace serves unsigned. Apollo reads are
//! signed by default: an unsigned one is served only for an app its namespace names.
//! Kept in memory so checking a request never touches the database.

use std::sync::Arc;

use base64::Engine as _;
use cairn_store::{AccessKeyRecord, Store, StoreError};
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use rand::RngCore;

use crate::now_millis;
use cairn_core::pattern::Wildcard;
use cairn_core::Namespace;

/// The most keys one app may have, as in Apollo.
pub const MAX_KEYS_PER_APP: usize = 5;
/// How far a request's timestamp may be from the server's clock.
const MAX_SKEW_MS: u64 = 60_000;

/// Why a signed request was refused; the names are Apollo's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidAppId,
    RequestTimeTooSkewed,
    Unauthorized,
    /// Unsigned, for an app without keys that the namespace does not serve unsigned.
    Unsigned,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::InvalidAppId => "InvalidAppId",
            Refusal::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Refusal::Unauthorized | Refusal::Unsigned => "Unauthorized",
        }
    }
}

/// Apollo's app id rule: `[0-9a-zA-Z_-]+[0-9a-zA-Z_.-]*`.
pub fn valid_app_id(app_id: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    !app_id.is_empty() && !app_id.starts_with('.') && app_id.chars().all(ok) && app_id.len() <= 128
}

/// `base64(HMAC-SHA1(secret, timestamp + "\n" + target))`.
pub fn signature(secret: &str, timestamp: &str, target: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(target.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn verify(secret: &str, timestamp: &str, target: &str, provided: &[u8]) -> bool {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(target.as_bytes());
    mac.verify_slice(provided).is_ok()
}

/// Every app's access keys, mirrored from the database.
pub struct AccessKeys {
    store: Arc<dyn Store>,
    by_app: DashMap<String, Vec<AccessKeyRecord>>,
    /// Per namespace, the apps whose unsigned reads it serves.
    anonymous: DashMap<Namespace, Vec<Wildcard>>,
    /// Refuse unsigned reads even where a namespace allows them.
    require_for_all: bool,
    /// One reload at a time, so an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
}

impl AccessKeys {
    pub async fn load(store: Arc<dyn Store>, require_for_all: bool) -> Result<Self, StoreError> {
        let keys = Self {
            store,
            by_app: DashMap::new(),
            anonymous: DashMap::new(),
            require_for_all,
            reloading: tokio::sync::Mutex::new(()),
        };
        keys.reload().await?;
        Ok(keys)
    }

    /// Re-reads every key, picking up other nodes' changes.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let all = self.store.access_keys().await?;
        let mut grouped: std::collections::HashMap<String, Vec<AccessKeyRecord>> =
            std::collections::HashMap::new();
        for key in all {
            grouped.entry(key.app_id.clone()).or_default().push(key);
        }
        self.by_app.retain(|app, _| grouped.contains_key(app));
        for (app, keys) in grouped {
            self.by_app.insert(app, keys);
        }
        let namespaces = self.store.list_namespaces().await?;
        self.anonymous.retain(|ns, _| {
            namespaces
                .iter()
                .any(|n| &n.name == ns && !n.apollo_anonymous.is_empty())
        });
        for ns in namespaces {
            if !ns.apollo_anonymous.is_empty() {
                let apps = ns
                    .apollo_anonymous
                    .iter()
                    .map(|a| Wildcard::new(a))
                    .collect();
                self.anonymous.insert(ns.name, apps);
            }
        }
        Ok(())
    }

    /// Whether `namespace` serves `app_id`'s unsigned reads.
    fn serves_unsigned(&self, namespace: &Namespace, app_id: &str) -> bool {
        self.anonymous
            .get(namespace)
            .is_some_and(|apps| apps.iter().any(|a| a.matches(app_id)))
    }

    pub fn list(&self, app_id: &str) -> Vec<AccessKeyRecord> {
        self.by_app
            .get(app_id)
            .map(|k| k.clone())
            .unwrap_or_default()
    }

    /// Makes a new, enabled key with a random secret, signing for `namespaces` (empty:
    /// every namespace).
    pub async fn create(
        &self,
        app_id: &str,
        namespaces: Vec<String>,
    ) -> Result<AccessKeyRecord, StoreError> {
        let mut id = [0u8; 4];
        let mut secret = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let key = AccessKeyRecord {
            app_id: app_id.to_owned(),
            id: hex::encode(id),
            secret: hex::encode(secret),
            enabled: true,
            created_at: now_millis(),
            namespaces,
        };
        self.store.create_access_key(&key, MAX_KEYS_PER_APP).await?;
        self.reload().await?;
        Ok(key)
    }

    pub async fn set_enabled(
        &self,
        app_id: &str,
        id: &str,
        enabled: bool,
    ) -> Result<(), StoreError> {
        self.store
            .set_access_key_enabled(app_id, id, enabled)
            .await?;
        self.reload().await
    }

    pub async fn delete(&self, app_id: &str, id: &str) -> Result<(), StoreError> {
        self.store.delete_access_key(app_id, id).await?;
        self.reload().await
    }

    /// Checks an Apollo request of `app_id` in `namespace`: it must be signed (over
    /// `target`, the raw path and query as received) with an enabled key of the app that
    /// signs for the namespace, unless the app has no such key and the namespace serves
    /// it unsigned. `Ok(true)` when the request was signed.
    pub fn check(
        &self,
        app_id: &str,
        namespace: &Namespace,
        authorization: Option<&str>,
        timestamp: Option<&str>,
        target: &str,
    ) -> Result<bool, Refusal> {
        if !valid_app_id(app_id) {
            return Err(Refusal::InvalidAppId);
        }
        let secrets: Vec<String> = self
            .by_app
            .get(app_id)
            .map(|keys| {
                keys.iter()
                    .filter(|k| {
                        k.enabled
                            && (k.namespaces.is_empty()
                                || k.namespaces.iter().any(|n| n == namespace.as_str()))
                    })
                    .map(|k| k.secret.clone())
                    .collect()
            })
            .unwrap_or_default();
        if secrets.is_empty() {
            return if self.require_for_all {
                Err(Refusal::Unauthorized)
            } else if self.serves_unsigned(namespace, app_id) {
                Ok(false)
            } else {
                Err(Refusal::Unsigned)
            };
        }
        let timestamp = timestamp.unwrap_or("").trim();
        // As Apollo: a missing or unreadable timestamp counts as 0, which is too skewed.
        let sent: i64 = timestamp.parse().unwrap_or(0);
        if now_millis().abs_diff(sent) >= MAX_SKEW_MS {
            return Err(Refusal::RequestTimeTooSkewed);
        }
        let signature = authorization
            .and_then(|a| a.strip_prefix("Apollo "))
            .and_then(|a| a.split_once(':'))
            .map(|(_, sig)| sig.trim())
            .and_then(|sig| base64::engine::general_purpose::STANDARD.decode(sig).ok())
            .ok_or(Refusal::Unauthorized)?;
        if secrets
            .iter()
            .any(|secret| verify(secret, timestamp, target, &signature))
        {
            Ok(true)
        } else {
            Err(Refusal::Unauthorized)
        }
    }
}

/// An access key as the audit log names it: its app and the namespaces it signs for.
pub fn describe(app: &str, namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        format!("access key of app {app} for every namespace")
    } else {
        format!("access key of app {app} for {}", namespaces.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_apollo() {
        // HMAC-SHA1 of "1700000000000\n/configs/app/default/application" keyed "secret".
        let sig = signature(
            "secret",
            "1700000000000",
            "/configs/app/default/application",
        );
        // Computed independently with Python's hmac and hashlib.
        assert_eq!(sig, "wzZN+nMxBGaYmsj0aMU7E4LQ3Ts=");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        assert!(verify(
            "secret",
            "1700000000000",
            "/configs/app/default/application",
            &raw
        ));
        assert!(!verify(
            "other",
            "1700000000000",
            "/configs/app/default/application",
            &raw
        ));
        assert!(!verify(
            "secret",
            "1700000000001",
            "/configs/app/default/application",
            &raw
        ));
    }

    #[test]
    fn app_ids_follow_apollo_rules() {
        assert!(valid_app_id("shop-service_1.v2"));
        assert!(!valid_app_id(".hidden"));
        assert!(!valid_app_id("a b"));
        assert!(!valid_app_id(""));
    }
}
