//! Webhook delivery. The change log is the outbox: every change's entry commits with
//! the change, so one acknowledged is never lost. The node that leads the cluster (the
//! live node first by id) turns new entries into delivery rows, moving a cursor with
//! compare-and-set so each entry becomes deliveries once, then sends each config's
//! deliveries in order: signed JSON over HTTP, retried with exponential backoff and
//! jitter for the retry window, then marked failed. A delivery is taken for an attempt
//! with a lease, so no two nodes send it at once; a node that dies mid-attempt leaves
//! it to be sent again when the lease ends (at least once: the payload's `id` lets
//! receivers drop repeats).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::grant::is_cipher_data_id;
use cairn_core::Revision;
use cairn_store::{
    Attempt, DeliveryRecord, DeliveryStatus, NewDelivery, Op, Store, StoreError, WebhookRecord,
};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::sync::Sync;

/// The event kinds a webhook may subscribe to.
pub const EVENTS: [&str; 9] = [
    "publish",
    "rollback",
    "delete",
    "gray_publish",
    "gray_promote",
    "gray_abandon",
    "change_request_opened",
    "change_request_approved",
    "change_request_rejected",
];

/// How often the leading node looks for due deliveries (retries); a change applied on
/// it wakes it at once, unless the last look found no subscription.
const POLL: Duration = Duration::from_millis(200);
/// Change-log entries turned into deliveries per pass.
const BATCH: u32 = 500;
/// Pending deliveries looked at per pass.
const PENDING: u32 = 2_000;
/// How long one attempt may take, all of it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A taken delivery is left alone this long (longer than an attempt may take); past
/// it, the attempt is taken as lost with its node, and the delivery goes again.
const LEASE_MS: i64 = ATTEMPT_TIMEOUT.as_millis() as i64 + 5_000;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 600_000;
/// Most bytes of a receiver's answer read (and kept, in part, as the error).
const MAX_ANSWER: usize = 64 * 1024;
/// Most characters of a receiver's answer kept with a failed attempt.
const ERROR_CHARS: usize = 300;

/// Whether delivering to `ip` is allowed: never the node's own network (loopback,
/// private, link-local, unique-local, unspecified, multicast, broadcast) unless
/// `allow_private`.
pub fn allowed_ip(ip: IpAddr, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                // 100.64.0.0/10: carrier-grade NAT, private in practice.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return allowed_ip(IpAddr::V4(v4), false);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// A webhook's URL, checked: `http` or `https`, a host, no credentials, and (when the
/// host is an address) one the policy allows. Names are checked when resolved, at
/// every attempt.
pub fn check_url(text: &str, allow_private: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("url {text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url {text:?}: only http and https are sent to"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "url {text:?}: credentials do not belong in the URL; the secret signs each request"
        ));
    }
    match url.host() {
        None => Err(format!("url {text:?} names no host")),
        Some(url::Host::Ipv4(ip)) if !allowed_ip(ip.into(), allow_private) => Err(private(text)),
        Some(url::Host::Ipv6(ip)) if !allowed_ip(ip.into(), allow_private) => Err(private(text)),
        Some(_) => Ok(url),
    }
}

fn private(target: &str) -> String {
    format!(
        "{target} is a loopback, private or link-local address; webhooks go there only when \
         the setting webhook_allow_private_targets allows it"
    )
}

/// Resolves names for deliveries and leaves out the addresses the policy refuses, so
/// a name that points (or is re-pointed) at the node's own network is never called.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allowed_ip(a.ip(), allow_private))
                .collect();
            if allowed.is_empty() {
                return Err(private(&host).into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`: what the
/// `X-Cairn-Signature` header carries.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver gets.
#[derive(Debug, Serialize)]
pub struct Payload {
    /// The event's identity, the same for every attempt and every subscription.
    pub id: String,
    pub event: String,
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    pub revision: i64,
    pub md5_before: Option<String>,
    pub md5_after: Option<String>,
    pub author: String,
    pub time: String,
    pub message: String,
    pub surface: String,
    pub sensitive: bool,
    /// An admin's emergency change, released without the review its namespace
    /// requires; `message` is the reason.
    pub emergency: bool,
    /// The change request an event of review is about (`change_request_…` events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_request: Option<i64>,
    /// A unified diff from the version before (for a change request, from the content
    /// it was made against to the one it proposes); never for a sensitive config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// The id of the event a delivery sends: a change's revision, or for a step of a
/// change request (stored under its event's id negated) `cr-` and that id.
pub fn event_id(seq: i64) -> String {
    if seq < 0 {
        format!("cr-{}", -seq)
    } else {
        seq.to_string()
    }
}

/// The delivery engine of one node.
pub struct Webhooks {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    /// How long a delivery is retried before it is marked failed.
    retry_ms: i64,
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn Store>,
        allow_private: bool,
        retry: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("Cairn-Webhook/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .build()?;
        Ok(Webhooks {
            store,
            client,
            retry_ms: i64::try_from(retry.as_millis()).unwrap_or(i64::MAX),
        })
    }

    /// Delivers until shutdown, while this node leads the cluster. `applied` moves
    /// with every change this node applies, so a new change is sent without waiting
    /// for the next poll.
    pub async fn run(
        self: Arc<Self>,
        sync: Arc<Sync>,
        mut applied: tokio::sync::watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) {
        let mut failing = false;
        // When the last look found no subscription: until the next poll, a change is
        // not worth another (under a stream of publishes, a query per pass of the tail).
        // A subscription made meanwhile loses nothing: its deliveries start from its own
        // sequence, whenever they are made.
        let mut none_at: Option<tokio::time::Instant> = None;
        loop {
            let changed = tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                Ok(()) = applied.changed() => true,
                _ = shutdown.cancelled() => return,
            };
            if !sync.leads() || (changed && none_at.is_some_and(|at| at.elapsed() < POLL)) {
                continue;
            }
            let looked = tokio::time::Instant::now();
            match self.pass(sync.applied()).await {
                Ok(subscribed) => {
                    none_at = (!subscribed).then_some(looked);
                    if failing {
                        tracing::info!("webhook deliveries going again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "webhook deliveries stopped; retrying");
                    }
                    failing = true;
                }
            }
        }
    }

    /// One pass: new changes up to `applied` (the sequence this node has applied
    /// every change up to) into deliveries, then every due delivery that heads its
    /// config's queue sent. Returns whether there is any subscription.
    pub async fn pass(self: &Arc<Self>, applied: i64) -> Result<bool, StoreError> {
        // Without subscriptions there is nothing to do, and nothing is written: the
        // first subscription moves the cursor to its own start.
        if self.store.webhooks(None).await?.is_empty() {
            return Ok(false);
        }
        self.enqueue(applied).await?;
        self.send_due().await?;
        Ok(true)
    }

    async fn enqueue(&self, applied: i64) -> Result<(), StoreError> {
        let cursor = self.store.webhook_cursor().await?;
        let mut changes = self.store.changes_since(cursor, BATCH).await?;
        // Publishes overlap, so a change past `applied` may have a lower one still to
        // commit before it; the cursor moves past none such.
        changes.retain(|c| c.seq.get() <= applied);
        let Some(last) = changes.last() else {
            return Ok(());
        };
        // Read after the changes: a subscription missing from this list was made
        // after them, so none of them is its.
        let hooks = self.store.webhooks(None).await?;
        let mut deliveries = Vec::new();
        for change in &changes {
            for hook in hooks.iter().filter(|h| {
                change.seq.get() > h.after_seq && subscribed(h, change.op.as_str(), &change.key)
            }) {
                deliveries.push(NewDelivery {
                    webhook_id: hook.id,
                    seq: change.seq.get(),
                    event: change.op,
                    key: change.key.clone(),
                    md5: change.md5.clone(),
                    at: change.created_at,
                });
            }
        }
        self.store
            .enqueue_deliveries(cursor, last.seq.get(), &deliveries)
            .await?;
        Ok(())
    }

    async fn send_due(self: &Arc<Self>) -> Result<(), StoreError> {
        let pending = self.store.pending_deliveries(PENDING).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let now = self.store.clock().await?;
        // Per config and subscription, only the oldest pending delivery may go: the
        // next waits until it is delivered or has failed.
        let mut heads = HashSet::new();
        for delivery in pending {
            if !heads.insert((delivery.webhook_id, delivery.key.clone())) {
                continue;
            }
            // One being sent is not due: its claim moved its next attempt past the
            // attempt's timeout.
            if delivery.next_attempt_at > now
                || !self
                    .store
                    .claim_delivery(delivery.id, now, now + LEASE_MS)
                    .await?
            {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                let id = delivery.id;
                if let Err(e) = this.attempt(delivery).await {
                    tracing::warn!(delivery = id, error = %e, "could not record a webhook attempt");
                }
            });
        }
        Ok(())
    }

    /// Sends one delivery and records how it went.
    async fn attempt(&self, delivery: DeliveryRecord) -> Result<(), StoreError> {
        let Some(hook) = self.store.webhook(delivery.webhook_id).await? else {
            // Removed meanwhile; its deliveries went with it.
            return Ok(());
        };
        let payload = self.payload(&delivery).await?;
        let body = serde_json::to_vec(&payload).expect("a payload serializes");
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let started = Instant::now();
        let sent = self
            .client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-cairn-event", &payload.event)
            .header("x-cairn-event-id", &payload.id)
            .header("x-cairn-delivery", delivery.id.to_string())
            .header("x-cairn-timestamp", timestamp.to_string())
            .header(
                "x-cairn-signature",
                signature(&hook.secret, timestamp, &body),
            )
            .body(body)
            .send()
            .await;
        let (code, error) = match sent {
            Ok(answer) => {
                let status = answer.status();
                let text = read_answer(answer).await;
                let error = if status.is_success() {
                    String::new()
                } else {
                    format!(
                        "answered {status}: {}",
                        text.chars().take(ERROR_CHARS).collect::<String>()
                    )
                };
                (Some(status.as_u16()), error)
            }
            Err(e) => (None, describe(&e)),
        };
        let latency_ms = started.elapsed().as_millis() as i64;
        let now = self.store.clock().await?;
        let delivered = error.is_empty();
        let (status, next_attempt_at) = if delivered {
            (DeliveryStatus::Delivered, now)
        } else {
            let next = now + backoff(delivery.attempts + 1);
            if next - delivery.created_at > self.retry_ms {
                (DeliveryStatus::Failed, now)
            } else {
                (DeliveryStatus::Pending, next)
            }
        };
        if !delivered {
            tracing::info!(delivery = delivery.id, webhook = hook.id, attempts = delivery.attempts + 1, %error, final = status == DeliveryStatus::Failed, "webhook attempt failed");
        }
        let attempt = Attempt {
            response_code: code,
            error,
            latency_ms,
            status,
            next_attempt_at,
            at: now,
        };
        self.store.finish_delivery(delivery.id, &attempt).await
    }

    /// The payload of `delivery`, from the history entry its change wrote and the one
    /// before (a pruned entry leaves out what only it knew).
    async fn payload(&self, delivery: &DeliveryRecord) -> Result<Payload, StoreError> {
        if delivery.seq < 0 {
            return self.review_payload(delivery).await;
        }
        let key = &delivery.key;
        let revision = Revision::new(delivery.seq);
        let entry = match revision {
            Some(r) => self.store.history_entry(key, r).await?,
            None => None,
        };
        let before = match revision {
            Some(r) => self.store.history_before(key, r).await?,
            None => None,
        };
        let sensitive = is_cipher_data_id(key.data_id.as_str())
            || entry.as_ref().is_some_and(|e| e.sensitive)
            || before.as_ref().is_some_and(|e| e.sensitive);
        let deleted = delivery.event == Op::Delete.as_str();
        let diff = match (&entry, &before) {
            (Some(entry), before) if !sensitive && !deleted => {
                let old = before
                    .as_ref()
                    .map_or("", |b| b.content.as_str())
                    .to_owned();
                let new = entry.content.clone();
                let (from, to) = (
                    before
                        .as_ref()
                        .map_or_else(|| format!("{key}@0"), |b| format!("{key}@{}", b.revision)),
                    format!("{key}@{}", delivery.seq),
                );
                tokio::task::spawn_blocking(move || {
                    cairn_core::diff::unified(&old, &new, &from, &to)
                })
                .await
                .ok()
            }
            _ => None,
        };
        let at = entry.as_ref().map_or(delivery.created_at, |e| e.created_at);
        Ok(Payload {
            id: event_id(delivery.seq),
            event: delivery.event.clone(),
            namespace: key.namespace.to_string(),
            group: key.group.to_string(),
            data_id: key.data_id.to_string(),
            revision: delivery.seq,
            md5_before: before
                .as_ref()
                .map(|b| b.md5.clone())
                .filter(|m| !m.is_empty()),
            md5_after: (!deleted).then(|| delivery.md5.clone()),
            author: entry
                .as_ref()
                .map(|e| e.operator.clone())
                .unwrap_or_default(),
            time: crate::api::wire::timestamp(at),
            message: entry
                .as_ref()
                .map(|e| e.comment.clone())
                .unwrap_or_default(),
            surface: entry
                .as_ref()
                .map(|e| e.surface.clone())
                .unwrap_or_default(),
            sensitive,
            emergency: entry.as_ref().is_some_and(|e| e.emergency),
            change_request: None,
            diff,
        })
    }

    /// The payload of a step of a change request: the request as it is now, the
    /// step's actor and comment, and the diff it proposes.
    async fn review_payload(&self, delivery: &DeliveryRecord) -> Result<Payload, StoreError> {
        let key = &delivery.key;
        let event = self.store.review_event(-delivery.seq).await?;
        let request = match &event {
            Some(e) => self.store.change_request(e.request_id).await?,
            None => None,
        };
        let sensitive = is_cipher_data_id(key.data_id.as_str())
            || request.as_ref().is_some_and(|r| r.sensitive == Some(true));
        let mut diff = None;
        if let Some(r) = request
            .as_ref()
            .filter(|r| !sensitive && r.op != Op::Delete)
        {
            let base = match r.base_revision {
                Some(revision) => self.store.history_entry(key, revision).await?,
                None => None,
            };
            // A base that was sensitive stays out of the payload.
            if !base.as_ref().is_some_and(|b| b.sensitive) {
                let old = base.map(|b| b.content).unwrap_or_default();
                let new = r.content.clone();
                let from = format!("{key}@{}", r.base_revision.map_or(0, |v| v.get()));
                let to = format!("{key} (change request {})", r.id);
                diff = tokio::task::spawn_blocking(move || {
                    cairn_core::diff::unified(&old, &new, &from, &to)
                })
                .await
                .ok();
            }
        }
        let at = event.as_ref().map_or(delivery.created_at, |e| e.at);
        Ok(Payload {
            id: event_id(delivery.seq),
            event: delivery.event.clone(),
            namespace: key.namespace.to_string(),
            group: key.group.to_string(),
            data_id: key.data_id.to_string(),
            revision: request
                .as_ref()
                .and_then(|r| r.released)
                .map_or(0, |v| v.get()),
            md5_before: request
                .as_ref()
                .map(|r| r.base_md5.clone())
                .filter(|m| !m.is_empty()),
            md5_after: request
                .as_ref()
                .map(|r| r.md5.clone())
                .filter(|m| !m.is_empty()),
            author: event.as_ref().map(|e| e.actor.clone()).unwrap_or_default(),
            time: crate::api::wire::timestamp(at),
            message: event.map(|e| e.comment).unwrap_or_default(),
            surface: "review".to_owned(),
            sensitive,
            emergency: false,
            change_request: request.map(|r| r.id),
            diff,
        })
    }
}

/// Whether `hook` takes `event` (an op's name, or a change request's
/// `change_request_…`) of `key`.
pub fn subscribed(hook: &WebhookRecord, event: &str, key: &cairn_core::ConfigKey) -> bool {
    let matches = |pattern: &str, name: &str| {
        pattern.is_empty() || cairn_core::pattern::Wildcard::new(pattern).matches(name)
    };
    hook.namespace == key.namespace
        && (hook.events.is_empty() || hook.events.iter().any(|e| e == event))
        && matches(&hook.group, key.group.as_str())
        && matches(&hook.data_id, key.data_id.as_str())
}

/// The wait after the `attempts`th failed attempt: doubling from a second, at most
/// ten minutes, each spread by ±50% so receivers that failed together are not hit
/// together again.
fn backoff(attempts: u32) -> i64 {
    let base = 1_000i64.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    let base = base.min(MAX_BACKOFF_MS);
    let jitter: f64 = rand::random::<f64>() + 0.5;
    (base as f64 * jitter) as i64
}

/// At most [`MAX_ANSWER`] bytes of a receiver's answer, as text: a slow or huge answer
/// is cut off, never waited for or held whole.
async fn read_answer(mut answer: reqwest::Response) -> String {
    let mut read = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        let room = MAX_ANSWER - read.len();
        read.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if read.len() >= MAX_ANSWER {
            break;
        }
    }
    String::from_utf8_lossy(&read).into_owned()
}

/// A failed send, as a person reads it (the innermost cause says most).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "could not send".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_own_network_is_refused_unless_allowed() {
        for refused in [
            "http://127.0.0.1:9000/x",
            "http://10.0.0.5/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            let why = check_url(refused, false).unwrap_err();
            assert!(
                why.contains("webhook_allow_private_targets"),
                "{refused}: {why}"
            );
            assert!(check_url(refused, true).is_ok(), "{refused}");
        }
        assert!(check_url("https://hooks.example.com/cairn", false).is_ok());
        assert!(check_url("http://93.184.216.34/", false).is_ok());
        assert!(check_url("ftp://example.com/", true)
            .unwrap_err()
            .contains("http"));
        assert!(check_url("https://u:p@example.com/", true)
            .unwrap_err()
            .contains("credentials"));
        assert!(check_url("not a url", true).is_err());
    }

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_and_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn backoff_doubles_within_its_bounds() {
        for attempts in 1..40 {
            let wait = backoff(attempts);
            let base = (1_000i64 << (attempts - 1).min(20)).min(MAX_BACKOFF_MS);
            assert!(
                wait >= base / 2 && wait <= base * 3 / 2,
                "{attempts}: {wait}"
            );
        }
    }
}
