//! The console's pages: login, the config list, a config, its editor (validate, review
//! the diff, publish with compare-and-set, merge on conflict), history, diffs,
//! rollback and delete, gray releases and who listens. Each handler calls the service
//! as the other surfaces do and renders its answer; every value from a user goes
//! through maud's escaping. This module holds the list, a config's page and what the
//! others share.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cairn_core::diff::{hunks, Line, LineKind};
use cairn_core::{ConfigKey, Format, FormatError, Namespace, Revision};
use cairn_store::{ConfigRecord, Expect, Op, Page};
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::{
    is_console_path, layout, session_cookie, Anonymous, ConsoleForm, Ctx, PageError, Session,
};
use crate::api::{ClientAddr, SharedState};
use crate::auth::AuthError;
use crate::service::{Actor, GrayInput, ListFilter, Proposal, PublishInput, ServiceError};
use crate::settings::Secret;

type Reply = Result<Response, PageError>;

const PAGE_SIZE: u32 = 50;
const HISTORY_PAGE_SIZE: u32 = 20;
const DEFAULT_GROUP: &str = "DEFAULT_GROUP";

mod edit;
mod gray;
mod history;
mod listening;
mod login;

pub use edit::*;
pub use gray::*;
pub use history::*;
pub use listening::*;
pub use login::*;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    ns: Option<String>,
    data_id: Option<String>,
    group: Option<String>,
    tag: Option<String>,
    format: Option<String>,
    content: Option<String>,
    page: Option<u32>,
    done: Option<String>,
}

pub async fn configs(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let namespaces = state
        .service
        .namespaces(&session.caller)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let ns = non_empty(&q.ns).unwrap_or("public");
    let namespace =
        Namespace::parse(ns).map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    let format = match non_empty(&q.format) {
        Some(f) => Some(
            f.parse::<Format>()
                .map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
        None => None,
    };
    let filter = ListFilter {
        namespace: Some(namespace.clone()),
        group: non_empty(&q.group).map(cairn_core::pattern::Wildcard::new),
        data_id: non_empty(&q.data_id).map(cairn_core::pattern::Wildcard::new),
        tag: non_empty(&q.tag).map(str::to_owned),
        format,
        content: non_empty(&q.content).map(str::to_owned),
    };
    let number = q.page.unwrap_or(1).max(1);
    let (items, total) = state.service.list(
        &session.caller,
        &filter,
        Page {
            number,
            size: PAGE_SIZE,
        },
    );
    let pages = total.div_ceil(PAGE_SIZE as usize).max(1) as u32;
    let page_link = |n: u32| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("ns", ns);
        for (name, value) in [
            ("data_id", &q.data_id),
            ("group", &q.group),
            ("tag", &q.tag),
            ("format", &q.format),
            ("content", &q.content),
        ] {
            if let Some(v) = non_empty(value) {
                query.append_pair(name, v);
            }
        }
        query.append_pair("page", &n.to_string());
        format!("/console/configs?{}", query.finish())
    };
    let body = html! {
        h1 { (ctx.t("Configs")) }
        @if let Some(done) = q.done.as_deref() {
            (done_flash(ctx, done))
        }
        form.panel.filters method="get" action="/console/configs" {
            div {
                label for="ns" { (ctx.t("Namespace")) }
                select #ns name="ns" data-autosubmit {
                    @for info in &namespaces {
                        @let name = info.record.name.as_str();
                        option value=(name) selected[name == ns] {
                            (if info.record.display_name.is_empty() { name } else { info.record.display_name.as_str() })
                            " (" (info.config_count) ")"
                        }
                    }
                }
            }
            div {
                label for="data_id" { (ctx.t("Data ID")) }
                input #data_id type="search" name="data_id" placeholder="app-*.yaml"
                    value=(non_empty(&q.data_id).unwrap_or(""));
            }
            div {
                label for="group" { (ctx.t("Group")) }
                input #group type="search" name="group" placeholder="*"
                    value=(non_empty(&q.group).unwrap_or(""));
            }
            div {
                label for="tag" { (ctx.t("Tags")) }
                input #tag type="search" name="tag" value=(non_empty(&q.tag).unwrap_or(""));
            }
            div {
                label for="format" { (ctx.t("Format")) }
                select #format name="format" {
                    option value="" { (ctx.t("All")) }
                    @for f in Format::ALL {
                        option value=(f.as_str()) selected[format == Some(f)] { (f.as_str()) }
                    }
                }
            }
            div {
                label for="content" { (ctx.t("Content contains")) }
                input #content type="search" name="content"
                    value=(non_empty(&q.content).unwrap_or(""));
            }
            div { button.primary type="submit" { (ctx.t("Search")) } }
        }
        div.actions {
            a.button.primary href={ "/console/new?ns=" (enc(ns)) } { (ctx.t("New config")) }
            span.muted #count { (total) " " (ctx.t(if total == 1 { "config" } else { "configs" })) }
        }
        @if items.is_empty() {
            p.panel.muted { (ctx.t("No configs match.")) }
        } @else {
            table #configs {
                thead { tr {
                    th { (ctx.t("Data ID")) }
                    th { (ctx.t("Group")) }
                    th.hide-narrow { (ctx.t("Format")) }
                    th.hide-narrow { (ctx.t("Tags")) }
                    th { (ctx.t("Revision")) }
                    th.hide-narrow { (ctx.t("Changed at")) }
                } }
                tbody {
                    @for c in &items {
                        tr {
                            td.key { a href=(config_url(&c.key)) { (c.key.data_id.as_str()) } }
                            td.key { (c.key.group.as_str()) }
                            td.hide-narrow { (c.format.as_str()) }
                            td.hide-narrow { @for t in &c.tags { span.tag { (t) } } }
                            td { (c.revision.get()) }
                            td.hide-narrow.muted { (time_of(c.updated_at)) }
                        }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pager aria-label="pages" {
                @if number > 1 { a href=(page_link(number - 1)) { (ctx.t("Previous")) } }
                span.current { (number) " / " (pages) }
                @if number < pages { a href=(page_link(number + 1)) { (ctx.t("Next")) } }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Configs"), body, false).into_response())
}

/// A query field that says something: present and not blank.
fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn done_flash(ctx: &Ctx, done: &str) -> Markup {
    let text = match done {
        "published" => ctx.t("Published."),
        "deleted" => ctx.t("Deleted."),
        "rolled_back" => ctx.t("Rolled back."),
        "gray_started" => ctx.t("Gray release started."),
        "promoted" => ctx.t("Promoted: every client reads it now."),
        "abandoned" => ctx.t("Abandoned: every client reads the main content."),
        _ => return html! {},
    };
    html! { div.flash.ok role="status" { (text) } }
}

/// What a path segment or query value escapes: everything but RFC 3986's unreserved
/// characters.
const ESCAPED: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

pub(super) fn config_url(key: &ConfigKey) -> String {
    format!(
        "/console/c/{}/{}/{}",
        enc(key.namespace.as_str()),
        enc(key.group.as_str()),
        enc(key.data_id.as_str())
    )
}

pub(super) fn time_of(millis: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The config a page names, once the session's user is known to be allowed to read it.
fn key_of(
    state: &SharedState,
    session: &Session,
    (ns, group, data_id): (String, String, String),
) -> Result<ConfigKey, PageError> {
    let ctx = &session.ctx;
    let key = ConfigKey::parse(&ns, &group, &data_id)
        .map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    state
        .service
        .may_read(&session.caller, &key, session.origin())
        .map_err(|e| ctx.service_error(e))?;
    Ok(key)
}

fn existing(
    state: &SharedState,
    ctx: &Ctx,
    key: &ConfigKey,
) -> Result<std::sync::Arc<ConfigRecord>, PageError> {
    state
        .service
        .get(key)
        .ok_or_else(|| ctx.service_error(ServiceError::ConfigNotFound(key.clone())))
}

fn actor(session: &Session, addr: &ClientAddr) -> Actor {
    crate::api::actor_via("console", &session.caller, addr)
}

/// The key's heading: namespace / group / data id.
pub(super) fn key_heading(key: &ConfigKey) -> Markup {
    html! {
        h1 {
            span.muted { (key.namespace.as_str()) " / " (key.group.as_str()) " / " }
            (key.data_id.as_str())
        }
    }
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

pub async fn config(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(&state, &session, path)?;
    let c = existing(&state, ctx, &key)?;
    let url = config_url(&key);
    let body = html! {
        (key_heading(&key))
        @if let Some(done) = q.done.as_deref() { (done_flash(ctx, done)) }
        div.actions {
            a.button.primary href={ (url) "/edit" } { (ctx.t("Edit")) }
            a.button href={ (url) "/history" } { (ctx.t("History")) }
            a.button href={ (url) "/listeners" } { (ctx.t("Who listens")) }
            a.button href={ (url) "/gray" } { (ctx.t("Gray release")) }
            a.button.danger href={ (url) "/delete" } { (ctx.t("Delete")) }
        }
        div.panel {
            dl.meta #meta {
                dt { (ctx.t("Format")) } dd { (c.format.as_str()) }
                dt { (ctx.t("Revision")) } dd { (c.revision.get()) }
                dt { (ctx.t("MD5")) } dd.mono { (c.md5) }
                dt { (ctx.t("Tags")) } dd { @for t in &c.tags { span.tag { (t) } } }
                dt { (ctx.t("Description")) } dd { (c.description) }
                @if crate::access::is_sensitive(&c.key, c.sensitive) {
                    dt { (ctx.t("Sensitive")) } dd { span.tag { "read-secret" } }
                }
                dt { (ctx.t("Changed by")) } dd { (c.updated_by) }
                dt { (ctx.t("Changed at")) } dd { (time_of(c.updated_at)) }
            }
        }
        h2 { (ctx.t("Content")) }
        textarea #content readonly data-editor data-format=(c.format.as_str()) aria-label=(ctx.t("Content")) { (c.content) }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, true).into_response())
}

/// The items of a comma-separated field, trimmed, blanks left out.
fn list_of(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a change confirmed on a page expects: the md5 the page showed, or no config.
fn expect_of(md5: &str) -> Expect {
    if md5.is_empty() {
        Expect::Absent
    } else {
        Expect::Md5(md5.to_owned())
    }
}
