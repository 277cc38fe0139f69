//! The service's webhook operations: subscriptions added, listed and removed by the
//! admins of their namespace, and their deliveries looked at and sent again. Sending
//! is `crate::webhooks`'.

use cairn_core::grant::Level;
use cairn_core::Namespace;
use cairn_store::{DeliveryRecord, Page, WebhookRecord, WebhookWrite};

use super::{Actor, Result, Service, ServiceError};
use crate::auth::Caller;
use crate::webhooks::{check_url, EVENTS};

/// The shortest secret taken: it is all that proves a request came from Cairn.
const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;
const MAX_URL: usize = 2048;

/// A subscription as the surfaces hand it over.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub url: String,
    pub secret: String,
    /// Event kinds; empty: every kind.
    pub events: Vec<String>,
    /// A group wildcard; empty: any.
    pub group: String,
    /// A data-id wildcard; empty: any.
    pub data_id: String,
}

impl Service {
    /// Refuses `caller` unless they administer `namespace` (audited when refused).
    fn may_manage_webhooks(
        &self,
        actor: &Actor,
        namespace: &Namespace,
        action: &str,
    ) -> Result<()> {
        self.may_administer(actor, namespace, action, format!("webhooks of {namespace}"))
    }

    /// Subscribes `input.url` to the changes of `namespace` from now on.
    pub async fn add_webhook(
        &self,
        namespace: Namespace,
        input: WebhookInput,
        actor: &Actor,
    ) -> Result<WebhookRecord> {
        self.may_manage_webhooks(actor, &namespace, "webhook.add")?;
        if input.url.len() > MAX_URL {
            return Err(ServiceError::InvalidWebhook(format!(
                "url is {} bytes; at most {MAX_URL}",
                input.url.len()
            )));
        }
        let url =
            check_url(&input.url, self.private_webhooks).map_err(ServiceError::InvalidWebhook)?;
        let secret_chars = input.secret.chars().count();
        if !(MIN_SECRET..=MAX_SECRET).contains(&secret_chars) {
            return Err(ServiceError::InvalidWebhook(format!(
                "secret has {secret_chars} characters; it needs {MIN_SECRET} to {MAX_SECRET} \
                 (`openssl rand -hex 32` makes one)"
            )));
        }
        let mut events = Vec::new();
        for event in input
            .events
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
        {
            if !EVENTS.contains(&event) {
                return Err(ServiceError::InvalidWebhook(format!(
                    "event {event:?} is not one of {}",
                    EVENTS.join(", ")
                )));
            }
            if !events.iter().any(|e| e == event) {
                events.push(event.to_owned());
            }
        }
        let (group, data_id) = (input.group.trim(), input.data_id.trim());
        // A pattern is a name once its `*`s stand for characters, as a schema's is.
        if !group.is_empty() || !data_id.is_empty() {
            let or_any = |p: &str| {
                if p.is_empty() {
                    "*".to_owned()
                } else {
                    p.to_owned()
                }
            };
            super::schema_target(namespace.clone(), &or_any(group), &or_any(data_id))
                .map_err(|e| ServiceError::InvalidWebhook(e.to_string()))?;
        }
        let write = WebhookWrite {
            namespace,
            url: url.to_string(),
            secret: input.secret,
            events,
            group: group.to_owned(),
            data_id: data_id.to_owned(),
            audit: Self::audit(actor, String::new()),
        };
        let record = self.store.add_webhook(&write).await?;
        tracing::info!(webhook = record.id, namespace = %record.namespace, url = %record.url, by = %actor.caller.username, "webhook added");
        Ok(record)
    }

    /// The subscriptions of `namespace` (or of every namespace) that `caller`
    /// administers.
    pub async fn webhooks(
        &self,
        caller: &Caller,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<WebhookRecord>> {
        let access = self.auth.access();
        let mut hooks = self.store.webhooks(namespace).await?;
        hooks.retain(|h| access.namespace_level(caller, &h.namespace) >= Level::Admin);
        Ok(hooks)
    }

    /// One subscription, if `caller` administers its namespace (to anyone else it
    /// does not exist).
    pub async fn webhook(&self, caller: &Caller, id: i64) -> Result<WebhookRecord> {
        let access = self.auth.access();
        match self.store.webhook(id).await? {
            Some(hook) if access.namespace_level(caller, &hook.namespace) >= Level::Admin => {
                Ok(hook)
            }
            _ => Err(ServiceError::WebhookNotFound(id)),
        }
    }

    /// Removes a subscription and its deliveries.
    pub async fn remove_webhook(&self, id: i64, actor: &Actor) -> Result<()> {
        let hook = self.webhook(&actor.caller, id).await?;
        self.may_manage_webhooks(actor, &hook.namespace, "webhook.remove")?;
        let audit = Self::audit(actor, String::new());
        if !self.store.remove_webhook(id, &audit).await? {
            return Err(ServiceError::WebhookNotFound(id));
        }
        tracing::info!(webhook = id, by = %actor.caller.username, "webhook removed");
        Ok(())
    }

    /// A page of a subscription's deliveries, newest first, and their number.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: i64,
        page: Page,
    ) -> Result<(Vec<DeliveryRecord>, u64)> {
        self.webhook(caller, id).await?;
        Ok(self.store.deliveries(id, page).await?)
    }

    /// Sends a delivery again, with a fresh retry window.
    pub async fn redeliver(&self, id: i64, delivery: i64, actor: &Actor) -> Result<()> {
        let hook = self.webhook(&actor.caller, id).await?;
        self.may_manage_webhooks(actor, &hook.namespace, "webhook.redeliver")?;
        let now = self.store.clock().await?;
        if !self.store.redeliver(id, delivery, now).await? {
            return Err(ServiceError::DeliveryNotFound(id, delivery));
        }
        Ok(())
    }
}
