//! The config requests of Nacos's gRPC protocol, answered through the service with the
//! same rules as Nacos's HTTP API (validation, compare-and-set, beta releases by IP).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::connection::{Connection, Listen};
use super::Surface;
use crate::api::nacos::common::{publish, NacosPublish};
use crate::api::nacos::{key_of, NacosError};
use crate::auth::Caller;
use crate::service::{Actor, Origin, ServiceError};
use cairn_store::Expect;

/// The fields Nacos's config requests carry; each request reads its own. Unknown fields
/// are ignored and nulls are absent, as Nacos's own decoder treats them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigRequest {
    data_id: Option<String>,
    group: Option<String>,
    tenant: Option<String>,
    /// A string from Java and Rust clients, a bool or `""` from others: only a non-empty
    /// string names a tag.
    tag: Value,
    content: Option<String>,
    cas_md5: Option<String>,
    #[serde(deserialize_with = "null_as_default")]
    addition_map: HashMap<String, Value>,
    #[serde(deserialize_with = "null_as_default")]
    listen: bool,
    #[serde(deserialize_with = "null_as_default")]
    config_listen_contexts: Vec<ListenContext>,
}

/// A field whose `null` means the same as its absence.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenContext {
    data_id: Option<String>,
    group: Option<String>,
    tenant: Option<String>,
    md5: Option<String>,
}

/// A refusal in the request's own response type, as Nacos answers them: `resultCode`
/// 500 with the `errorCode` and message of `error`.
pub fn refusal(error: &NacosError) -> Value {
    let (code, message) = error.grpc();
    json!({ "resultCode": 500, "errorCode": code, "message": message, "success": false })
}

fn ok(mut body: Value) -> Value {
    body["resultCode"] = json!(200);
    body["errorCode"] = json!(0);
    body["success"] = json!(true);
    body
}

impl ConfigRequest {
    fn key(&self) -> Result<cairn_core::ConfigKey, NacosError> {
        if self.tag.as_str().is_some_and(|t| !t.trim().is_empty()) {
            return Err(NacosError::invalid(
                "tags (tagged copies of a config) are not supported by Cairn; \
                 use a gray release by label instead",
            ));
        }
        let data_id = self.data_id.as_deref().filter(|d| !d.trim().is_empty());
        let group = self.group.as_deref().filter(|g| !g.trim().is_empty());
        key_of(
            data_id.ok_or_else(|| NacosError::missing("dataId"))?,
            group.ok_or_else(|| NacosError::missing("group"))?,
            self.tenant.as_deref(),
        )
    }

    /// An `additionMap` entry as text (clients send strings; a number is taken as
    /// written), absent when blank.
    fn addition(&self, name: &str) -> Option<String> {
        let text = match self.addition_map.get(name)? {
            Value::String(s) => s.clone(),
            Value::Null => return None,
            other => other.to_string(),
        };
        (!text.trim().is_empty()).then_some(text)
    }
}

/// `ConfigQueryRequest`: the config as this connection's client sees it (a beta release
/// for the IPs it names), or 300 when there is none.
pub fn query(
    surface: &Surface,
    connection: &Connection,
    caller: &Caller,
    request: &ConfigRequest,
) -> Value {
    let key = match request.key() {
        Ok(key) => key,
        Err(e) => return query_refusal(&e),
    };
    if let Err(e) = surface
        .state
        .service
        .may_read(caller, &key, origin(connection))
    {
        return query_refusal(&NacosError::Service(e));
    }
    match surface.state.service.view(&key, &connection.client) {
        Some(view) => ok(json!({
            "content": view.content(),
            "encryptedDataKey": "",
            "contentType": view.format().as_str(),
            "md5": view.md5(),
            "lastModified": view.gray.as_ref().map_or(view.config.updated_at, |g| g.created_at),
            "beta": view.is_gray(),
        })),
        None => query_refusal(&NacosError::Service(ServiceError::ConfigNotFound(key))),
    }
}

/// A query's refusal carries the fields a query's answer always has (clients decode
/// them even from failures).
pub fn query_refusal(error: &NacosError) -> Value {
    let mut body = refusal(error);
    body["lastModified"] = json!(0);
    body["beta"] = json!(false);
    body
}

fn origin(connection: &Connection) -> Origin {
    Origin {
        source: Some(connection.addr.ip()),
        surface: "nacos-grpc",
    }
}

fn actor(caller: &Caller, connection: &Connection) -> Actor {
    Actor {
        caller: caller.clone(),
        source: connection.addr.ip().to_string(),
        surface: "nacos-grpc",
    }
}

/// `ConfigPublishRequest`, with `additionMap`'s `type`, `desc`, `config_tags` and
/// `betaIps` read as the HTTP API reads the same parameters.
pub async fn publish_config(
    surface: &Surface,
    connection: &Connection,
    caller: &Caller,
    request: &ConfigRequest,
) -> Value {
    let key = match request.key() {
        Ok(key) => key,
        Err(e) => return refusal(&e),
    };
    let (kind, desc, tags, beta_ips) = (
        request.addition("type"),
        request.addition("desc"),
        request.addition("config_tags"),
        request.addition("betaIps"),
    );
    let publish_request = NacosPublish {
        content: request.content.as_deref().filter(|c| !c.is_empty()),
        kind: kind.as_deref(),
        desc: desc.as_deref(),
        tags: tags.as_deref(),
        beta_ips: beta_ips.as_deref(),
        cas_md5: request.cas_md5.as_deref(),
    };
    match publish(
        &surface.state,
        key,
        publish_request,
        caller,
        &actor(caller, connection),
    )
    .await
    {
        Ok(()) => ok(json!({})),
        Err(e) => refusal(&e),
    }
}

/// `ConfigRemoveRequest`: removing a config that is not there succeeds, as in Nacos.
pub async fn remove(
    surface: &Surface,
    connection: &Connection,
    caller: &Caller,
    request: &ConfigRequest,
) -> Value {
    let key = match request.key() {
        Ok(key) => key,
        Err(e) => return refusal(&e),
    };
    let actor = actor(caller, connection);
    match surface.state.service.delete(key, Expect::Any, &actor).await {
        Ok(_) | Err(ServiceError::ConfigNotFound(_)) => ok(json!({})),
        Err(e) => refusal(&NacosError::Service(e)),
    }
}

/// `ConfigBatchListenRequest`: `listen` true adds the keys (answering with those whose
/// md5 already differs from the client's), false removes them.
///
/// A key the caller may not read refuses the whole request with 403.
pub fn batch_listen(
    surface: &Surface,
    connection: &Arc<Connection>,
    caller: &Caller,
    request: &ConfigRequest,
) -> Value {
    let mut parsed = Vec::with_capacity(request.config_listen_contexts.len());
    for context in &request.config_listen_contexts {
        let key = key_of(
            context.data_id.as_deref().unwrap_or_default(),
            context.group.as_deref().unwrap_or_default(),
            context.tenant.as_deref(),
        );
        match key {
            Ok(key) => parsed.push((key, context)),
            Err(e) => return refusal(&e),
        }
    }
    if request.listen {
        let keys = parsed.iter().map(|(key, _)| key);
        let origin = origin(connection);
        if let Err(e) = surface.state.service.may_read_all(caller, keys, origin) {
            return refusal(&NacosError::Service(e));
        }
        *connection.user.lock().expect("user poisoned") = Some(caller.username.clone());
    }
    let mut changed = Vec::new();
    {
        let mut listens = connection.listens.lock().expect("listens poisoned");
        if !request.listen {
            for (key, _) in &parsed {
                listens.remove(key);
            }
        } else {
            let max = surface.state.settings.grpc_max_listens;
            let adding = parsed
                .iter()
                .filter(|(k, _)| !listens.contains_key(k))
                .count();
            if listens.len() + adding > max {
                return refusal(&NacosError::invalid(format!(
                    "this connection would listen to {} configs; the limit is {max} \
                     (grpc_max_listens)",
                    listens.len() + adding
                )));
            }
            for (key, context) in parsed {
                let held = context.md5.clone().unwrap_or_default();
                let current = surface
                    .state
                    .service
                    .view(&key, &connection.client)
                    .map(|v| v.md5().to_owned())
                    .unwrap_or_default();
                let tenant = context.tenant.clone().unwrap_or_default();
                if held != current {
                    changed.push(json!({
                        "dataId": key.data_id.as_str(),
                        "group": key.group.as_str(),
                        "tenant": tenant,
                    }));
                }
                // What the client will hold once it reads the change it is told of now.
                listens.insert(
                    key,
                    Listen {
                        md5: current,
                        tenant,
                    },
                );
            }
        }
    }
    connection.listens_changed.notify_one();
    ok(json!({ "changedConfigs": changed }))
}
