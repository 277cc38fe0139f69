//! What Nacos's v1 and v2 APIs share: publishing from Nacos's parameters, history
//! entries and pages, and config listings, in Nacos's JSON shapes.

use axum::http::HeaderMap;
use cairn_core::{ConfigKey, Namespace};
use cairn_store::{Expect, HistoryRecord, Op, Page};
use serde_json::{json, Value};

use super::error::Result;
use super::{iso_time, parse_type, tenant_of, NacosError, Params};
use crate::api::SharedState;
use crate::auth::{Caller, Role};
use crate::service::{Actor, GrayInput, ListFilter, PublishInput, ServiceError};

pub fn page_of(params: &Params) -> Result<Page> {
    Ok(Page {
        number: params.number("pageNo")?.unwrap_or(1).max(1),
        size: params.number("pageSize")?.unwrap_or(100).clamp(1, 500),
    })
}

pub fn page_json(total: u64, page: Page, items: Vec<Value>) -> Value {
    json!({
        "totalCount": total,
        "pageNumber": page.number,
        "pagesAvailable": total.div_ceil(u64::from(page.size)),
        "pageItems": items,
    })
}

/// A publish as Nacos clients express it, whichever transport carried it: HTTP
/// parameters and headers, or a gRPC request and its `additionMap`.
#[derive(Debug, Default)]
pub struct NacosPublish<'a> {
    pub content: Option<&'a str>,
    /// Nacos's `type`.
    pub kind: Option<&'a str>,
    pub desc: Option<&'a str>,
    /// `config_tags`: comma-separated.
    pub tags: Option<&'a str>,
    /// `betaIps`: comma-separated; a beta (gray) release to those IPs.
    pub beta_ips: Option<&'a str>,
    /// `casMd5`: publish only over this md5 (or where there is nothing yet).
    pub cas_md5: Option<&'a str>,
}

/// Publishes through Nacos's HTTP parameters; shared by v1 and v2.
pub async fn publish_from(
    state: &SharedState,
    headers: &HeaderMap,
    params: &Params,
    key: ConfigKey,
    caller: &Caller,
    actor: &Actor,
) -> Result<()> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = NacosPublish {
        content: params.get("content"),
        kind: params.get("type"),
        desc: params.get("desc"),
        tags: params
            .get("config_tags")
            .or_else(|| params.get("configTags")),
        beta_ips: header("betaIps"),
        cas_md5: header("casMd5"),
    };
    publish(state, key, request, caller, actor).await
}

/// Publishes what a Nacos client asked for, with Nacos's validation and messages.
pub async fn publish(
    state: &SharedState,
    key: ConfigKey,
    request: NacosPublish<'_>,
    caller: &Caller,
    actor: &Actor,
) -> Result<()> {
    let Some(content) = request.content else {
        return Err(NacosError::invalid("content is blank : "));
    };
    let description = request.desc.map(str::to_owned);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 128)
    {
        return Err(NacosError::invalid("too long desc, over 128"));
    }
    let tags = request.tags.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    if tags.as_ref().is_some_and(|t| t.len() > 5) {
        return Err(NacosError::invalid("too much config_tags, over 5"));
    }
    // Nacos stores a publish without a type as text, whatever the data id's extension,
    // and never parses it; clients publish without one by default.
    let format = Some(parse_type(request.kind).unwrap_or(cairn_core::Format::Text));
    let beta_ips = request.beta_ips.map(str::trim).filter(|v| !v.is_empty());
    if let Some(ips) = beta_ips {
        let input = GrayInput {
            content: content.to_owned(),
            format,
            ips: ips
                .split(',')
                .map(|ip| ip.trim().to_owned())
                .filter(|ip| !ip.is_empty())
                .collect(),
            labels: Vec::new(),
            force: false,
            comment: Some("beta release through the Nacos API".into()),
        };
        return match state.service.gray_publish(key, input, actor).await {
            Ok(_) => Ok(()),
            Err(ServiceError::ConfigNotFound(k)) => Err(NacosError::invalid(format!(
                "config {k} must be published before a beta release"
            ))),
            Err(e) => Err(e.into()),
        };
    }
    let expect = match request.cas_md5.map(str::trim) {
        // Nacos's CAS publishes over that md5, or creates when there is nothing yet.
        Some(md5) if !md5.is_empty() => Expect::Md5OrAbsent(md5.to_owned()),
        _ => Expect::Any,
    };
    let input = PublishInput {
        content: content.to_owned(),
        format,
        description,
        tags,
        // Nacos marks nothing: `cipher-` data ids are sensitive by name.
        sensitive: None,
        expect,
        force: false,
        comment: Some("published through the Nacos API".into()),
        emergency: false,
    };
    // Nacos clients publish into any tenant id: the namespace is made on first use, once
    // the publish is otherwise valid, when the caller may make namespaces.
    state
        .service
        .publish_creating_namespace(key, input, actor, caller.role == Role::Admin)
        .await?;
    Ok(())
}

/// Nacos's operation letter for a history entry.
fn op_type(entry: &HistoryRecord, oldest: bool) -> &'static str {
    match entry.op {
        Op::Delete | Op::GrayAbandon => "D",
        Op::Publish if oldest => "I",
        _ => "U",
    }
}

pub fn history_item(entry: &HistoryRecord, oldest: bool, with_content: bool) -> Value {
    let gray = matches!(entry.op, Op::GrayPublish | Op::GrayAbandon);
    json!({
        "id": entry.revision.to_string(),
        "lastId": -1,
        "dataId": entry.key.data_id.as_str(),
        "group": entry.key.group.as_str(),
        "tenant": tenant_of(&entry.key.namespace),
        "appName": "",
        "md5": with_content.then(|| entry.md5.clone()),
        "content": with_content.then(|| entry.content.clone()),
        "srcIp": entry.source,
        "srcUser": entry.operator,
        "opType": op_type(entry, oldest),
        "publishType": if gray { "gray" } else { "formal" },
        "type": entry.format.as_str(),
        "createdTime": iso_time(entry.created_at),
        "lastModifiedTime": iso_time(entry.created_at),
    })
}

/// A page of a config's history, newest first, as Nacos lists it.
pub async fn history_page(state: &SharedState, key: &ConfigKey, page: Page) -> Result<Value> {
    let (items, total) = state.service.history(key, page).await?;
    let first_index = page.offset();
    let items = items
        .iter()
        .enumerate()
        .map(|(i, h)| history_item(h, first_index + i as u64 + 1 == total, false))
        .collect();
    Ok(page_json(total, page, items))
}

pub fn config_infos(state: &SharedState, caller: &Caller, ns: &Namespace) -> Vec<Value> {
    let filter = ListFilter {
        namespace: Some(ns.clone()),
        ..ListFilter::default()
    };
    let (items, _) = state.service.list(
        caller,
        &filter,
        Page {
            number: 1,
            size: u32::MAX,
        },
    );
    items
        .iter()
        .map(|c| {
            json!({
                "id": c.revision.to_string(),
                "dataId": c.key.data_id.as_str(),
                "group": c.key.group.as_str(),
                "tenant": tenant_of(&c.key.namespace),
                "appName": "",
                "type": c.format.as_str(),
                "lastModified": c.updated_at,
            })
        })
        .collect()
}
