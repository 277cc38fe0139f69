//! The console's pages: login, the config list, a config, its editor (validate, review
//! the diff, publish with compare-and-set, merge on conflict), history, diffs,
//! rollback and delete. Each handler calls the service as the other surfaces do and
//! renders its answer; every value from a user goes through maud's escaping.

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
use crate::service::{Actor, GrayInput, ListFilter, PublishInput, ServiceError};
use crate::settings::Secret;

type Reply = Result<Response, PageError>;

const PAGE_SIZE: u32 = 50;
const HISTORY_PAGE_SIZE: u32 = 20;
const DEFAULT_GROUP: &str = "DEFAULT_GROUP";

// ---------------------------------------------------------------------------------------
// Login and logout

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(Anonymous(ctx): Anonymous, Query(q): Query<LoginQuery>) -> Response {
    login_form(&ctx, q.next.as_deref(), "", None, StatusCode::OK)
}

fn login_form(
    ctx: &Ctx,
    next: Option<&str>,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let body = html! {
        div.login.panel {
            h1 { "Cairn" }
            @if let Some(error) = error {
                div.flash.error role="alert" { (error) }
            }
            form method="post" action="/console/login" {
                input type="hidden" name="next" value=(next.unwrap_or(""));
                label for="username" { (ctx.t("User name")) }
                input #username type="text" name="username" value=(username)
                    autocomplete="username" required autofocus;
                label for="password" { (ctx.t("Password")) }
                input #password type="password" name="password"
                    autocomplete="current-password" required;
                div.actions {
                    button.primary type="submit" { (ctx.t("Log in")) }
                }
            }
        }
    };
    (status, layout(ctx, ctx.t("Log in"), body, false)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<SharedState>,
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<LoginForm>,
) -> Response {
    let next = Some(form.next.as_str()).filter(|n| is_console_path(n));
    match state
        .auth
        .open_session(&form.username, &Secret::from(form.password))
        .await
    {
        Ok((id, _)) => {
            // Behind a TLS-terminating proxy the node trusts, the cookie is Secure.
            let secure = state.settings.trust_forwarded_for
                && headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let cookie = session_cookie(
                secrecy::ExposeSecret::expose_secret(&id),
                secure,
                state.settings.token_ttl_secs.get().as_secs(),
            );
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to(next.unwrap_or("/console/configs")),
            )
                .into_response()
        }
        Err(AuthError::BadCredentials) => login_form(
            &ctx,
            next,
            &form.username,
            Some(
                "the user name or password is wrong; check both (names are case-sensitive) \
                 or ask an admin to reset your password",
            ),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => login_form(
            &ctx,
            next,
            &form.username,
            Some(&e.to_string()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<SharedState>,
    session: Session,
    ConsoleForm(form): ConsoleForm<CsrfForm>,
) -> Reply {
    session.ctx.check_csrf(&form.csrf)?;
    state.auth.close_session(&session.id).await.map_err(|e| {
        session
            .ctx
            .fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    })?;
    Ok((
        [(header::SET_COOKIE, session_cookie("", false, 0))],
        Redirect::to("/console/login"),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// The config list

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
        .namespaces()
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

// ---------------------------------------------------------------------------------------
// One config

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

fn config_url(key: &ConfigKey) -> String {
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

fn key_of(
    ctx: &Ctx,
    (ns, group, data_id): (String, String, String),
) -> Result<ConfigKey, PageError> {
    ConfigKey::parse(&ns, &group, &data_id)
        .map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))
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
    Actor {
        username: session.caller.username.to_string(),
        source: addr.0.clone(),
    }
}

/// The key's heading: namespace / group / data id.
fn key_heading(key: &ConfigKey) -> Markup {
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
    let key = key_of(ctx, path)?;
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
                dt { (ctx.t("Changed by")) } dd { (c.updated_by) }
                dt { (ctx.t("Changed at")) } dd { (time_of(c.updated_at)) }
            }
        }
        h2 { (ctx.t("Content")) }
        textarea #content readonly data-editor data-format=(c.format.as_str()) aria-label=(ctx.t("Content")) { (c.content) }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, true).into_response())
}

// ---------------------------------------------------------------------------------------
// Creating and editing

#[derive(Deserialize, Default, Clone)]
pub struct EditForm {
    #[serde(default)]
    csrf: String,
    /// Only when creating: the new config's key.
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    data_id: String,
    #[serde(default)]
    content: String,
    /// Empty: keep the config's format (a new one's comes from its data id).
    #[serde(default)]
    format: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    message: String,
    /// The md5 and revision the edit started from; empty when creating.
    #[serde(default)]
    base_md5: String,
    #[serde(default)]
    base_revision: String,
    /// `edit`, `review` or `publish`.
    #[serde(default)]
    step: String,
}

#[derive(Deserialize)]
pub struct NewQuery {
    ns: Option<String>,
}

pub async fn new_page(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<NewQuery>,
) -> Reply {
    let namespaces = state
        .service
        .namespaces()
        .await
        .map_err(|e| session.ctx.service_error(e))?;
    let form = EditForm {
        namespace: q.ns.unwrap_or_else(|| "public".into()),
        group: DEFAULT_GROUP.into(),
        ..EditForm::default()
    };
    let names: Vec<String> = namespaces
        .iter()
        .map(|n| n.record.name.to_string())
        .collect();
    Ok(editor(
        &session.ctx,
        None,
        &form,
        &names,
        None,
        StatusCode::OK,
    ))
}

pub async fn create(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<EditForm>,
) -> Reply {
    session.ctx.check_csrf(&form.csrf)?;
    let key = match ConfigKey::parse(
        form.namespace.trim(),
        form.group.trim(),
        form.data_id.trim(),
    ) {
        Ok(key) => key,
        Err(e) => {
            let names = namespace_names(&state, &session.ctx).await?;
            return Ok(editor(
                &session.ctx,
                None,
                &form,
                &names,
                Some(Problem::Message(e.to_string())),
                StatusCode::BAD_REQUEST,
            ));
        }
    };
    submit(&state, &session, &addr, key, form, true).await
}

pub async fn edit_page(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(ctx, path)?;
    let c = existing(&state, ctx, &key)?;
    let form = EditForm {
        content: c.content.clone(),
        format: c.format.as_str().into(),
        description: c.description.clone(),
        tags: c.tags.join(", "),
        base_md5: c.md5.clone(),
        base_revision: c.revision.get().to_string(),
        ..EditForm::default()
    };
    Ok(editor(ctx, Some(&key), &form, &[], None, StatusCode::OK))
}

pub async fn edit(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(form): ConsoleForm<EditForm>,
) -> Reply {
    session.ctx.check_csrf(&form.csrf)?;
    let key = key_of(&session.ctx, path)?;
    submit(&state, &session, &addr, key, form, false).await
}

async fn namespace_names(state: &SharedState, ctx: &Ctx) -> Result<Vec<String>, PageError> {
    Ok(state
        .service
        .namespaces()
        .await
        .map_err(|e| ctx.service_error(e))?
        .iter()
        .map(|n| n.record.name.to_string())
        .collect())
}

/// What is wrong with an edit, shown above the editor.
enum Problem {
    Content(FormatError),
    Message(String),
}

/// One step of an edit: back to the editor, the review of its diff, or the publish.
async fn submit(
    state: &SharedState,
    session: &Session,
    addr: &ClientAddr,
    key: ConfigKey,
    mut form: EditForm,
    creating: bool,
) -> Reply {
    let ctx = &session.ctx;
    let names = if creating {
        namespace_names(state, ctx).await?
    } else {
        Vec::new()
    };
    let shown_key = (!creating).then_some(&key);
    let base = base_content(state, &key, &form).await;
    // Browsers send a textarea's line breaks as CRLF; content that had none keeps none.
    if !base.as_deref().unwrap_or("").contains('\r') {
        form.content = form.content.replace("\r\n", "\n");
    }
    let format = match form.format.trim() {
        "" => None,
        f => match f.parse::<Format>() {
            Ok(f) => Some(f),
            Err(e) => {
                let problem = Problem::Message(e.to_string());
                return Ok(editor(
                    ctx,
                    shown_key,
                    &form,
                    &names,
                    Some(problem),
                    StatusCode::BAD_REQUEST,
                ));
            }
        },
    };
    let effective = format
        .or_else(|| state.service.get(&key).map(|c| c.format))
        .or_else(|| Format::from_file_name(key.data_id.as_str()))
        .unwrap_or_default();
    match form.step.as_str() {
        "review" => {
            if let Err(e) = effective.validate(&form.content) {
                return Ok(editor(
                    ctx,
                    shown_key,
                    &form,
                    &names,
                    Some(Problem::Content(e)),
                    StatusCode::BAD_REQUEST,
                ));
            }
            Ok(review(
                ctx,
                &key,
                &form,
                base.as_deref().unwrap_or(""),
                creating,
            ))
        }
        "publish" => {
            let tags: Vec<String> = form
                .tags
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            let expect = if form.base_md5.is_empty() {
                Expect::Absent
            } else {
                Expect::Md5(form.base_md5.clone())
            };
            let input = PublishInput {
                content: form.content.clone(),
                format,
                description: Some(form.description.trim().to_owned()),
                tags: Some(tags),
                expect,
                force: false,
                comment: Some(form.message.trim().to_owned()).filter(|m| !m.is_empty()),
            };
            match state
                .service
                .publish(key.clone(), input, &actor(session, addr))
                .await
            {
                Ok(_) => Ok(
                    Redirect::to(&format!("{}?done=published", config_url(&key))).into_response(),
                ),
                Err(ServiceError::CasConflict { .. }) => Ok(conflict(
                    state,
                    ctx,
                    &key,
                    form,
                    base.as_deref().unwrap_or(""),
                    creating,
                    &names,
                )),
                Err(ServiceError::InvalidContent(e)) => Ok(editor(
                    ctx,
                    shown_key,
                    &form,
                    &names,
                    Some(Problem::Content(e)),
                    StatusCode::BAD_REQUEST,
                )),
                Err(e) => {
                    let status = ctx.service_error(e);
                    let problem = Problem::Message(status.message.clone());
                    Ok(editor(
                        ctx,
                        shown_key,
                        &form,
                        &names,
                        Some(problem),
                        status.status,
                    ))
                }
            }
        }
        _ => Ok(editor(ctx, shown_key, &form, &names, None, StatusCode::OK)),
    }
}

/// The content the edit started from: the revision it names, or nothing for a new
/// config.
async fn base_content(state: &SharedState, key: &ConfigKey, form: &EditForm) -> Option<String> {
    if form.base_md5.is_empty() {
        return None;
    }
    if let Some(current) = state.service.get(key).filter(|c| c.md5 == form.base_md5) {
        return Some(current.content.clone());
    }
    let revision = form.base_revision.trim().parse::<Revision>().ok()?;
    state
        .service
        .history_entry(key, revision)
        .await
        .ok()
        .map(|entry| entry.content)
}

/// The hidden fields that carry an edit from one step to the next.
fn carried(ctx: &Ctx, form: &EditForm, with_content: bool) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(ctx.csrf);
        input type="hidden" name="namespace" value=(form.namespace);
        input type="hidden" name="group" value=(form.group);
        input type="hidden" name="data_id" value=(form.data_id);
        input type="hidden" name="format" value=(form.format);
        input type="hidden" name="description" value=(form.description);
        input type="hidden" name="tags" value=(form.tags);
        input type="hidden" name="base_md5" value=(form.base_md5);
        input type="hidden" name="base_revision" value=(form.base_revision);
        @if with_content {
            textarea.hidden-field name="content" hidden { (form.content) }
        }
    }
}

fn editor(
    ctx: &Ctx,
    key: Option<&ConfigKey>,
    form: &EditForm,
    namespaces: &[String],
    problem: Option<Problem>,
    status: StatusCode,
) -> Response {
    editor_below(ctx, key, form, namespaces, problem, html! {}, status)
}

/// The editor, with `above` between the heading and the form.
fn editor_below(
    ctx: &Ctx,
    key: Option<&ConfigKey>,
    form: &EditForm,
    namespaces: &[String],
    problem: Option<Problem>,
    above: Markup,
    status: StatusCode,
) -> Response {
    let action = match key {
        Some(key) => format!("{}/edit", config_url(key)),
        None => "/console/new".to_owned(),
    };
    let (error_line, error_column) = match &problem {
        Some(Problem::Content(e)) => (e.line, e.column),
        _ => (None, None),
    };
    let title = match key {
        Some(key) => key.data_id.as_str().to_owned(),
        None => ctx.t("New config").to_owned(),
    };
    let body = html! {
        @match key {
            Some(key) => (key_heading(key)),
            None => h1 { (ctx.t("New config")) },
        }
        @match &problem {
            Some(Problem::Content(e)) => div.flash.error role="alert" #problem { (e.to_string()) },
            Some(Problem::Message(m)) => div.flash.error role="alert" #problem { (m) },
            None => {},
        }
        (above)
        form #editor method="post" action=(action) {
            input type="hidden" name="csrf" value=(ctx.csrf);
            input type="hidden" name="base_md5" value=(form.base_md5);
            input type="hidden" name="base_revision" value=(form.base_revision);
            @if key.is_none() {
                div.grid2 {
                    div {
                        label for="namespace" { (ctx.t("Namespace")) }
                        select #namespace name="namespace" {
                            @for n in namespaces {
                                option value=(n) selected[*n == form.namespace] { (n) }
                            }
                        }
                    }
                    div {
                        label for="group" { (ctx.t("Group")) }
                        input #group type="text" name="group" value=(form.group) required;
                    }
                }
                label for="data_id" { (ctx.t("Data ID")) }
                input #data_id type="text" name="data_id" value=(form.data_id) placeholder="application.yaml" required;
            }
            div.grid2 {
                div {
                    label for="format" { (ctx.t("Format")) }
                    select #format name="format" {
                        @if key.is_none() {
                            option value="" selected[form.format.is_empty()] { "(from the data id)" }
                        }
                        @for f in Format::ALL {
                            option value=(f.as_str()) selected[form.format == f.as_str()] { (f.as_str()) }
                        }
                    }
                }
                div {
                    label for="tags" { (ctx.t("Tags (comma-separated)")) }
                    input #tags type="text" name="tags" value=(form.tags);
                }
            }
            label for="description" { (ctx.t("Description")) }
            input #description type="text" name="description" value=(form.description);
            label for="content" { (ctx.t("Content")) }
            textarea #content name="content" data-editor data-format-select="format"
                data-format=(if form.format.is_empty() { "text" } else { form.format.as_str() })
                data-error-line=[error_line] data-error-column=[error_column] { (form.content) }
            div.actions {
                button.primary type="submit" name="step" value="review" { (ctx.t("Review changes")) }
                a.button href=(key.map_or_else(|| "/console/configs".to_owned(), config_url)) { (ctx.t("Cancel")) }
            }
        }
    };
    (status, layout(ctx, &title, body, true)).into_response()
}

/// The review step: what will change, an optional message, and the publish button.
fn review(ctx: &Ctx, key: &ConfigKey, form: &EditForm, base: &str, creating: bool) -> Response {
    let action = if creating {
        "/console/new".to_owned()
    } else {
        format!("{}/edit", config_url(key))
    };
    let body = html! {
        (key_heading(key))
        p { (ctx.t("This is what will be published:")) }
        (diff_view(ctx, base, &form.content, DiffLayout::Unified))
        form #review method="post" action=(action) {
            (carried(ctx, form, true))
            label for="message" { (ctx.t("Message (optional)")) }
            input #message type="text" name="message" value=(form.message);
            div.actions {
                button.primary type="submit" name="step" value="publish" { (ctx.t("Publish")) }
                button type="submit" name="step" value="edit" { (ctx.t("Back to editing")) }
            }
        }
    };
    layout(ctx, key.data_id.as_str(), body, false).into_response()
}

/// Someone else published since the edit began: their change, the user's, and the
/// editor with the user's content on top of the current revision, to merge and review.
fn conflict(
    state: &SharedState,
    ctx: &Ctx,
    key: &ConfigKey,
    mut form: EditForm,
    base: &str,
    creating: bool,
    names: &[String],
) -> Response {
    let current = state.service.get(key);
    let theirs = current
        .as_ref()
        .map_or("", |c| c.content.as_str())
        .to_owned();
    let mine = form.content.clone();
    form.base_md5 = current.as_ref().map(|c| c.md5.clone()).unwrap_or_default();
    form.base_revision = current
        .as_ref()
        .map(|c| c.revision.get().to_string())
        .unwrap_or_default();
    let message = ctx.t("Someone else published this config while you edited it. Their change is below; your content is kept in the editor. Merge, review and publish again.");
    let diffs = html! {
        section #conflict {
            h2 { (ctx.t("Their change")) }
            (diff_view(ctx, base, &theirs, DiffLayout::Unified))
            h2 { (ctx.t("Your change")) }
            (diff_view(ctx, base, &mine, DiffLayout::Unified))
        }
    };
    editor_below(
        ctx,
        (!creating).then_some(key),
        &form,
        names,
        Some(Problem::Message(message.to_owned())),
        diffs,
        StatusCode::CONFLICT,
    )
}

// ---------------------------------------------------------------------------------------
// Diffs

#[derive(Clone, Copy, PartialEq, Eq)]
enum DiffLayout {
    Unified,
    Split,
}

fn diff_view(ctx: &Ctx, old: &str, new: &str, layout: DiffLayout) -> Markup {
    let groups = hunks(old, new, 3);
    if groups.is_empty() {
        return html! { p.panel.muted.no-changes { (ctx.t("No changes.")) } };
    }
    let sign = |l: &Line| match l.kind {
        LineKind::Same => " ",
        LineKind::Removed => "-",
        LineKind::Added => "+",
    };
    let class = |l: &Line| match l.kind {
        LineKind::Same => "same",
        LineKind::Removed => "del",
        LineKind::Added => "add",
    };
    let num = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_default();
    html! {
        @match layout {
            DiffLayout::Unified => {
                table.diff.unified {
                    @for (i, group) in groups.iter().enumerate() {
                        @if i > 0 { tr.gap { td colspan="4" { "⋯" } } }
                        @for l in group {
                            tr class=(class(l)) {
                                td.no { (num(l.old)) }
                                td.no { (num(l.new)) }
                                td.sign { (sign(l)) }
                                td.text { (l.text) }
                            }
                        }
                    }
                }
            }
            DiffLayout::Split => {
                table.diff.split {
                    @for (i, group) in groups.iter().enumerate() {
                        @if i > 0 { tr.gap { td colspan="4" { "⋯" } } }
                        @for (left, right) in side_by_side(group) {
                            tr {
                                @match left {
                                    Some(l) => { td.no { (num(l.old)) } td class=(class(l)) { (l.text) } },
                                    None => { td.no {} td {} },
                                }
                                @match right {
                                    Some(l) => { td.no { (num(l.new)) } td class=(class(l)) { (l.text) } },
                                    None => { td.no {} td {} },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Pairs a hunk's lines into rows: unchanged lines on both sides, removed lines beside
/// the added lines that replaced them.
fn side_by_side(group: &[Line]) -> Vec<(Option<&Line>, Option<&Line>)> {
    let mut rows = Vec::new();
    let mut i = 0;
    while i < group.len() {
        if group[i].kind == LineKind::Same {
            rows.push((Some(&group[i]), Some(&group[i])));
            i += 1;
            continue;
        }
        let removed: Vec<&Line> = group[i..]
            .iter()
            .take_while(|l| l.kind == LineKind::Removed)
            .collect();
        i += removed.len();
        let added: Vec<&Line> = group[i..]
            .iter()
            .take_while(|l| l.kind == LineKind::Added)
            .collect();
        i += added.len();
        for row in 0..removed.len().max(added.len()) {
            rows.push((removed.get(row).copied(), added.get(row).copied()));
        }
    }
    rows
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
    view: Option<String>,
}

pub async fn diff(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<DiffQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(ctx, path)?;
    let revision = |text: &Option<String>, what: &str| -> Result<Option<Revision>, PageError> {
        match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => t.parse::<Revision>().map(Some).map_err(|_| {
                ctx.fail(
                    StatusCode::BAD_REQUEST,
                    format!("{what} must be a revision number (1 or more), not {t:?}"),
                )
            }),
        }
    };
    let from = revision(&q.from, "from")?
        .ok_or_else(|| ctx.fail(StatusCode::BAD_REQUEST, "pick the revision to compare from"))?;
    let to = revision(&q.to, "to")?;
    let old = state
        .service
        .history_entry(&key, from)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let (new_content, to_label) = match to {
        Some(to) => (
            state
                .service
                .history_entry(&key, to)
                .await
                .map_err(|e| ctx.service_error(e))?
                .content,
            to.get().to_string(),
        ),
        None => {
            let c = existing(&state, ctx, &key)?;
            (
                c.content.clone(),
                format!("{} ({})", c.revision.get(), ctx.t("current")),
            )
        }
    };
    let layout_kind = if q.view.as_deref() == Some("split") {
        DiffLayout::Split
    } else {
        DiffLayout::Unified
    };
    let url = config_url(&key);
    let to_value = to.map(|t| t.get().to_string()).unwrap_or_default();
    let body = html! {
        (key_heading(&key))
        form.panel.filters method="get" action={ (url) "/diff" } {
            div {
                label for="from" { (ctx.t("From revision")) }
                input #from type="text" name="from" inputmode="numeric" value=(from.get());
            }
            div {
                label for="to" { (ctx.t("To revision")) }
                input #to type="text" name="to" inputmode="numeric" value=(to_value) placeholder=(ctx.t("current"));
            }
            div {
                label for="view" { (ctx.t("Diff")) }
                select #view name="view" {
                    option value="unified" selected[layout_kind == DiffLayout::Unified] { (ctx.t("Unified")) }
                    option value="split" selected[layout_kind == DiffLayout::Split] { (ctx.t("Side by side")) }
                }
            }
            div { button.primary type="submit" { (ctx.t("Apply")) } }
        }
        p.muted { (from.get()) " → " (to_label) }
        (diff_view(ctx, &old.content, &new_content, layout_kind))
        div.actions {
            a.button href={ (url) "/history" } { (ctx.t("History")) }
            a.button href={ (url) "/rollback?revision=" (from.get()) } { (ctx.t("Roll back to this revision")) }
        }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, false).into_response())
}

// ---------------------------------------------------------------------------------------
// History, rollback, delete

#[derive(Deserialize)]
pub struct HistoryQuery {
    page: Option<u32>,
}

fn op_name(ctx: &Ctx, op: Op) -> &'static str {
    ctx.t(match op {
        Op::Publish => "publish",
        Op::Rollback => "rollback",
        Op::Delete => "delete",
        Op::GrayPublish => "gray release",
        Op::GrayPromote => "gray promote",
        Op::GrayAbandon => "gray abandon",
    })
}

pub async fn history(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(ctx, path)?;
    let number = q.page.unwrap_or(1).max(1);
    let (entries, total) = state
        .service
        .history(
            &key,
            Page {
                number,
                size: HISTORY_PAGE_SIZE,
            },
        )
        .await
        .map_err(|e| ctx.service_error(e))?;
    let pages = (total.div_ceil(u64::from(HISTORY_PAGE_SIZE))).max(1) as u32;
    let url = config_url(&key);
    let body = html! {
        (key_heading(&key))
        div.actions {
            a.button href=(url) { (ctx.t("Config")) }
        }
        @if entries.is_empty() {
            p.panel.muted { (ctx.t("Nothing to show.")) }
        } @else {
            table #history {
                thead { tr {
                    th { (ctx.t("Revision")) }
                    th { (ctx.t("Kind")) }
                    th { (ctx.t("Operator")) }
                    th.hide-narrow { (ctx.t("Time")) }
                    th { (ctx.t("Comment")) }
                    th {}
                } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (e.revision.get()) }
                            td { (op_name(ctx, e.op)) }
                            td { (e.operator) }
                            td.hide-narrow.muted { (time_of(e.created_at)) }
                            td { (e.comment) }
                            td {
                                @if !matches!(e.op, Op::Delete | Op::GrayPublish | Op::GrayAbandon) {
                                    a href={ (url) "/diff?from=" (e.revision.get()) } { (ctx.t("Diff")) }
                                    " · "
                                    a href={ (url) "/rollback?revision=" (e.revision.get()) } { (ctx.t("Roll back")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if pages > 1 {
            nav.pager aria-label="pages" {
                @if number > 1 { a href={ (url) "/history?page=" (number - 1) } { (ctx.t("Previous")) } }
                span.current { (number) " / " (pages) }
                @if number < pages { a href={ (url) "/history?page=" (number + 1) } { (ctx.t("Next")) } }
            }
        }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, false).into_response())
}

#[derive(Deserialize)]
pub struct RollbackQuery {
    revision: Option<String>,
}

fn revision_param(ctx: &Ctx, text: Option<&str>) -> Result<Revision, PageError> {
    let text = text.map(str::trim).unwrap_or("");
    text.parse::<Revision>().map_err(|_| {
        ctx.fail(
            StatusCode::BAD_REQUEST,
            format!("revision must be a revision number (1 or more), not {text:?}"),
        )
    })
}

pub async fn rollback_page(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<RollbackQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(ctx, path)?;
    let revision = revision_param(ctx, q.revision.as_deref())?;
    let entry = state
        .service
        .history_entry(&key, revision)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let current = state.service.get(&key);
    let body = html! {
        (key_heading(&key))
        p { (ctx.t("This is what the rollback will change:")) }
        (diff_view(ctx, current.as_ref().map_or("", |c| c.content.as_str()), &entry.content, DiffLayout::Unified))
        form #rollback method="post" action={ (config_url(&key)) "/rollback" } {
            input type="hidden" name="csrf" value=(ctx.csrf);
            input type="hidden" name="revision" value=(revision.get());
            input type="hidden" name="md5" value=(current.as_ref().map_or("", |c| c.md5.as_str()));
            div.actions {
                button.primary type="submit" { (ctx.t("Roll back to this revision")) " " (revision.get()) }
                a.button href={ (config_url(&key)) "/history" } { (ctx.t("Cancel")) }
            }
        }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, false).into_response())
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    md5: String,
}

/// What a change confirmed on a page expects: the md5 the page showed, or no config.
fn expect_of(md5: &str) -> Expect {
    if md5.is_empty() {
        Expect::Absent
    } else {
        Expect::Md5(md5.to_owned())
    }
}

pub async fn rollback(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(form): ConsoleForm<ChangeForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let key = key_of(ctx, path)?;
    let revision = revision_param(ctx, Some(&form.revision))?;
    state
        .service
        .rollback(
            key.clone(),
            revision,
            expect_of(&form.md5),
            &actor(&session, &addr),
        )
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to(&format!("{}?done=rolled_back", config_url(&key))).into_response())
}

pub async fn delete_page(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(ctx, path)?;
    let c = existing(&state, ctx, &key)?;
    let body = html! {
        (key_heading(&key))
        div.flash.error role="alert" { (ctx.t("Delete this config?")) }
        pre.content { (c.content) }
        form #delete method="post" action={ (config_url(&key)) "/delete" } {
            input type="hidden" name="csrf" value=(ctx.csrf);
            input type="hidden" name="md5" value=(c.md5);
            div.actions {
                button.danger type="submit" { (ctx.t("Delete")) }
                a.button href=(config_url(&key)) { (ctx.t("Cancel")) }
            }
        }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, false).into_response())
}

pub async fn delete(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(form): ConsoleForm<ChangeForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let key = key_of(ctx, path)?;
    state
        .service
        .delete(key.clone(), expect_of(&form.md5), &actor(&session, &addr))
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to(&format!(
        "/console/configs?ns={}&done=deleted",
        enc(key.namespace.as_str())
    ))
    .into_response())
}

// ---------------------------------------------------------------------------------------
// Who listens

pub async fn listeners(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(ctx, path)?;
    // Every live node is asked, on the user's behalf, for its own listeners.
    let token = state
        .auth
        .token_for(&session.caller)
        .map_err(|e| ctx.fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let found = crate::api::peers::listeners(
        &state,
        &key,
        Some(secrecy::ExposeSecret::expose_secret(&token)),
    )
    .await;
    let current_md5 = state
        .service
        .get(&key)
        .map(|c| c.md5.clone())
        .unwrap_or_default();
    let here = state.sync.node_id();
    let body = html! {
        (key_heading(&key))
        div.actions {
            a.button href=(config_url(&key)) { (ctx.t("Config")) }
            span.muted #listening { (found.listeners.len()) " " (ctx.t("listening")) }
        }
        @for node in &found.unanswered {
            div.flash.error role="alert" { (ctx.t("A node did not answer")) " (" (node.node) "): " (node.error) }
        }
        @if found.listeners.is_empty() {
            p.panel.muted { (ctx.t("Nobody listens to this config.")) }
        } @else {
            table #listeners {
                thead { tr {
                    th { (ctx.t("Client")) }
                    th { (ctx.t("Protocol")) }
                    th { (ctx.t("Holds")) }
                    th { (ctx.t("Current")) }
                    th.hide-narrow { (ctx.t("Node")) }
                    th.hide-narrow { (ctx.t("Since")) }
                } }
                tbody {
                    @for l in &found.listeners {
                        tr {
                            td.mono {
                                @match &l.client_ip {
                                    Some(ip) => a href={ "/console/listeners?ip=" (enc(ip)) } { (ip) },
                                    None => "-",
                                }
                            }
                            td { (l.protocol) }
                            td.mono { (l.md5.as_deref().map_or("-", |m| if m.is_empty() { "(none)" } else { m })) }
                            td { (if l.current { ctx.t("yes") } else { ctx.t("no") }) }
                            td.hide-narrow.mono { (l.node) @if l.node == here { " " span.tag { (ctx.t("this node")) } } }
                            td.hide-narrow.muted { (l.since) }
                        }
                    }
                }
            }
            p.muted { (ctx.t("Current md5")) ": " span.mono { (current_md5) } }
        }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, false).into_response())
}

#[derive(Deserialize)]
pub struct ClientQuery {
    ip: Option<String>,
}

pub async fn client_listeners(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<ClientQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let text = q.ip.as_deref().unwrap_or("").trim().to_owned();
    let found = if text.is_empty() {
        None
    } else {
        let ip: std::net::IpAddr = text.parse().map_err(|_| {
            ctx.fail(
                StatusCode::BAD_REQUEST,
                format!("{text:?} is not an IP address"),
            )
        })?;
        let token = cluster_token(&state, &session)?;
        Some(crate::api::peers::client_watches(&state, ip, Some(&token)).await)
    };
    let body = html! {
        h1 { (ctx.t("Who listens")) }
        form.panel.filters method="get" action="/console/listeners" {
            div {
                label for="ip" { (ctx.t("Client IP")) }
                input #ip type="search" name="ip" value=(text) placeholder="10.0.0.7";
            }
            div { button.primary type="submit" { (ctx.t("Search")) } }
        }
        @if let Some(found) = &found {
            @for node in &found.unanswered {
                div.flash.error role="alert" { (ctx.t("A node did not answer")) " (" (node.node) "): " (node.error) }
            }
            @if found.watches.is_empty() {
                p.panel.muted { (ctx.t("This client listens to nothing.")) }
            }
            @for watch in &found.watches {
                h2 { (watch.protocol) " · " span.muted { (watch.since) " · " (watch.node) } }
                table.client-watch {
                    thead { tr {
                        th { (ctx.t("Config")) }
                        th { (ctx.t("Holds")) }
                        th { (ctx.t("Current")) }
                    } }
                    tbody {
                        @for k in &watch.keys {
                            @let key_text = format!("{}/{}/{}", k.namespace, k.group, k.data_id);
                            tr {
                                td.key {
                                    a href={ "/console/c/" (enc(&k.namespace)) "/" (enc(&k.group)) "/" (enc(&k.data_id)) } { (key_text) }
                                }
                                td.mono { (k.md5.as_deref().map_or("-", |m| if m.is_empty() { "(none)" } else { m })) }
                                td { (if k.current { ctx.t("yes") } else { ctx.t("no") }) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Who listens"), body, false).into_response())
}

/// A token in the user's name, for asking the cluster's other nodes.
fn cluster_token(state: &SharedState, session: &Session) -> Result<String, PageError> {
    state
        .auth
        .token_for(&session.caller)
        .map(|t| secrecy::ExposeSecret::expose_secret(&t).to_owned())
        .map_err(|e| {
            session
                .ctx
                .fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        })
}

// ---------------------------------------------------------------------------------------
// Gray releases

#[derive(Deserialize, Default)]
pub struct GrayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    content: String,
    /// Comma-separated.
    #[serde(default)]
    ips: String,
    /// Comma-separated `key=value`.
    #[serde(default)]
    labels: String,
    #[serde(default)]
    message: String,
    /// `edit`, `review` or `publish`.
    #[serde(default)]
    step: String,
}

fn list_of(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The gray release of a config: its rules, the clients that read it now, the diff from
/// the main content, promote and abandon; or, without one, the form to start one.
pub async fn gray_page(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(ctx, path)?;
    let main = existing(&state, ctx, &key)?;
    let url = config_url(&key);
    let gray = match state.service.gray(&key) {
        Ok(gray) => gray,
        Err(ServiceError::GrayNotFound(_)) => {
            let form = GrayForm {
                content: main.content.clone(),
                ..GrayForm::default()
            };
            return Ok(gray_editor(
                ctx,
                &key,
                &main.format,
                &form,
                None,
                StatusCode::OK,
            ));
        }
        Err(e) => return Err(ctx.service_error(e)),
    };
    // Who reads it: every listener, on any node, whose address or labels the rules match.
    let token = cluster_token(&state, &session)?;
    let listening = crate::api::peers::listeners(&state, &key, Some(&token)).await;
    let readers: Vec<_> = listening
        .listeners
        .iter()
        .filter(|l| {
            let ip = l.client_ip.as_deref().and_then(|ip| ip.parse().ok());
            let labels = l
                .labels
                .iter()
                .filter_map(|label| cairn_core::Label::parse(label).ok())
                .collect();
            gray.rules.matches(&cairn_core::ClientInfo::new(ip, labels))
        })
        .collect();
    let body = html! {
        (key_heading(&key))
        @if let Some(done) = q.done.as_deref() { (done_flash(ctx, done)) }
        div.panel {
            dl.meta #gray-meta {
                dt { (ctx.t("Target IPs")) } dd.mono { (gray.rules.ips_text()) }
                dt { (ctx.t("Target labels")) } dd.mono { (gray.rules.labels_text()) }
                dt { (ctx.t("Revision")) } dd { (gray.revision.get()) }
                dt { (ctx.t("MD5")) } dd.mono { (gray.md5) }
                dt { (ctx.t("Changed by")) } dd { (gray.created_by) }
                dt { (ctx.t("Changed at")) } dd { (time_of(gray.created_at)) }
            }
        }
        h2 { (ctx.t("Clients reading the gray release now")) }
        @if readers.is_empty() {
            p.panel.muted #gray-readers { (ctx.t("No matching client listens.")) }
        } @else {
            table #gray-readers {
                thead { tr { th { (ctx.t("Client")) } th { (ctx.t("Protocol")) } th { (ctx.t("Current")) } th { (ctx.t("Node")) } } }
                tbody {
                    @for l in &readers {
                        tr {
                            td.mono { (l.client_ip.as_deref().unwrap_or("-")) " " @for label in &l.labels { span.tag { (label) } } }
                            td { (l.protocol) }
                            td { (if l.current { ctx.t("yes") } else { ctx.t("no") }) }
                            td.mono { (l.node) }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t("Gray content against the main content")) }
        (diff_view(ctx, &main.content, &gray.content, DiffLayout::Unified))
        div.actions {
            form #promote method="post" action={ (url) "/gray/promote" } {
                input type="hidden" name="csrf" value=(ctx.csrf);
                button.primary type="submit" data-confirm=(ctx.t("Publish the gray content to every client?")) { (ctx.t("Promote to everyone")) }
            }
            form #abandon method="post" action={ (url) "/gray/abandon" } {
                input type="hidden" name="csrf" value=(ctx.csrf);
                button.danger type="submit" data-confirm=(ctx.t("Send every client back to the main content?")) { (ctx.t("Abandon")) }
            }
            a.button href=(url) { (ctx.t("Config")) }
        }
    };
    Ok(layout(ctx, key.data_id.as_str(), body, false).into_response())
}

fn gray_editor(
    ctx: &Ctx,
    key: &ConfigKey,
    format: &Format,
    form: &GrayForm,
    problem: Option<Problem>,
    status: StatusCode,
) -> Response {
    let (error_line, error_column) = match &problem {
        Some(Problem::Content(e)) => (e.line, e.column),
        _ => (None, None),
    };
    let body = html! {
        (key_heading(key))
        h2 { (ctx.t("Start a gray release")) }
        p.muted { (ctx.t("Clients whose IP is listed, or that declare one of the labels, read this content; every other client keeps the main content.")) }
        @match &problem {
            Some(Problem::Content(e)) => div.flash.error role="alert" #problem { (e.to_string()) },
            Some(Problem::Message(m)) => div.flash.error role="alert" #problem { (m) },
            None => {},
        }
        form #editor method="post" action={ (config_url(key)) "/gray" } {
            input type="hidden" name="csrf" value=(ctx.csrf);
            div.grid2 {
                div {
                    label for="ips" { (ctx.t("Target IPs (comma-separated)")) }
                    input #ips type="text" name="ips" value=(form.ips) placeholder="10.0.0.7, 10.0.0.8";
                }
                div {
                    label for="labels" { (ctx.t("Target labels (comma-separated key=value)")) }
                    input #labels type="text" name="labels" value=(form.labels) placeholder="canary=true";
                }
            }
            label for="content" { (ctx.t("Content")) }
            textarea #content name="content" data-editor data-format=(format.as_str())
                data-error-line=[error_line] data-error-column=[error_column] { (form.content) }
            div.actions {
                button.primary type="submit" name="step" value="review" { (ctx.t("Review changes")) }
                a.button href=(config_url(key)) { (ctx.t("Cancel")) }
            }
        }
    };
    (status, layout(ctx, key.data_id.as_str(), body, true)).into_response()
}

pub async fn gray_submit(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(mut form): ConsoleForm<GrayForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let key = key_of(ctx, path)?;
    let main = existing(&state, ctx, &key)?;
    if !main.content.contains('\r') {
        form.content = form.content.replace("\r\n", "\n");
    }
    let (ips, labels) = (list_of(&form.ips), list_of(&form.labels));
    let invalid = |problem: Problem| {
        Ok(gray_editor(
            ctx,
            &key,
            &main.format,
            &form,
            Some(problem),
            StatusCode::BAD_REQUEST,
        ))
    };
    if let Err(e) = cairn_core::GrayRules::parse(&ips, &labels) {
        return invalid(Problem::Message(e.to_string()));
    }
    if let Err(e) = main.format.validate(&form.content) {
        return invalid(Problem::Content(e));
    }
    match form.step.as_str() {
        "review" => {
            let body = html! {
                (key_heading(&key))
                p { (ctx.t("Clients that match get this instead of the main content:")) }
                dl.meta.panel {
                    dt { (ctx.t("Target IPs")) } dd.mono { (ips.join(", ")) }
                    dt { (ctx.t("Target labels")) } dd.mono { (labels.join(", ")) }
                }
                (diff_view(ctx, &main.content, &form.content, DiffLayout::Unified))
                form #review method="post" action={ (config_url(&key)) "/gray" } {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="hidden" name="ips" value=(form.ips);
                    input type="hidden" name="labels" value=(form.labels);
                    textarea name="content" hidden { (form.content) }
                    label for="message" { (ctx.t("Message (optional)")) }
                    input #message type="text" name="message" value=(form.message);
                    div.actions {
                        button.primary type="submit" name="step" value="publish" { (ctx.t("Start the gray release")) }
                        button type="submit" name="step" value="edit" { (ctx.t("Back to editing")) }
                    }
                }
            };
            Ok(layout(ctx, key.data_id.as_str(), body, false).into_response())
        }
        "publish" => {
            let input = GrayInput {
                content: form.content.clone(),
                format: None,
                ips,
                labels,
                force: false,
                comment: Some(form.message.trim().to_owned()).filter(|m| !m.is_empty()),
            };
            match state
                .service
                .gray_publish(key.clone(), input, &actor(&session, &addr))
                .await
            {
                Ok(_) => Ok(
                    Redirect::to(&format!("{}/gray?done=gray_started", config_url(&key)))
                        .into_response(),
                ),
                Err(ServiceError::InvalidContent(e)) => invalid(Problem::Content(e)),
                Err(e) => {
                    let failed = ctx.service_error(e);
                    Ok(gray_editor(
                        ctx,
                        &key,
                        &main.format,
                        &form,
                        Some(Problem::Message(failed.message.clone())),
                        failed.status,
                    ))
                }
            }
        }
        _ => Ok(gray_editor(
            ctx,
            &key,
            &main.format,
            &form,
            None,
            StatusCode::OK,
        )),
    }
}

pub async fn gray_promote(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(form): ConsoleForm<CsrfForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let key = key_of(ctx, path)?;
    state
        .service
        .gray_promote(key.clone(), &actor(&session, &addr))
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to(&format!("{}?done=promoted", config_url(&key))).into_response())
}

pub async fn gray_abandon(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(form): ConsoleForm<CsrfForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let key = key_of(ctx, path)?;
    state
        .service
        .gray_abandon(key.clone(), &actor(&session, &addr))
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to(&format!("{}?done=abandoned", config_url(&key))).into_response())
}
