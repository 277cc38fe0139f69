//! The console's administration pages: namespaces, users, Apollo apps' access keys, the
//! cluster's nodes, and a user's own password. Changes to namespaces, users and keys
//! need the admin role, as on the native API; everyone may look at namespaces and the
//! cluster, and change their own password.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cairn_core::{Namespace, Role, Username};
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::time_of;
use super::{layout, ConsoleForm, Ctx, PageError, Session};
use crate::api::{ClientAddr, SharedState};
use crate::auth::AuthError;
use crate::settings::Secret;

pub(super) type Reply = Result<Response, PageError>;

fn require_admin(session: &Session) -> Result<(), PageError> {
    if session.caller.role == Role::Admin {
        Ok(())
    } else {
        Err(session.ctx.fail(
            StatusCode::FORBIDDEN,
            "this needs the admin role; ask an admin",
        ))
    }
}

/// An admin's form: this session's, and the session an admin's.
fn admin_form(session: &Session, csrf: &str) -> Result<(), PageError> {
    session.ctx.check_csrf(csrf)?;
    require_admin(session)
}

pub(super) fn auth_failure(ctx: &Ctx, e: AuthError) -> PageError {
    let status = match e {
        AuthError::Forbidden | AuthError::Denied(_) => StatusCode::FORBIDDEN,
        AuthError::UserExists(_) | AuthError::LastAdmin(_) => StatusCode::CONFLICT,
        AuthError::UserNotFound(_) => StatusCode::NOT_FOUND,
        AuthError::Store(_) | AuthError::Hash(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    ctx.fail(status, e.to_string())
}

#[derive(Deserialize)]
pub struct DoneQuery {
    pub(super) done: Option<String>,
}

pub(super) fn done(ctx: &Ctx, what: Option<&str>) -> Markup {
    let text = match what {
        Some("saved") => ctx.t("Saved."),
        Some("deleted") => ctx.t("Deleted."),
        Some("imported") => ctx.t("Imported."),
        _ => return html! {},
    };
    html! { div.flash.ok role="status" { (text) } }
}

// ---------------------------------------------------------------------------------------
// Namespaces

pub async fn namespaces(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let list = state
        .service
        .namespaces(&session.caller)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let admin = session.caller.role == Role::Admin;
    let body = html! {
        h1 { (ctx.t("Namespaces")) }
        (done(ctx, q.done.as_deref()))
        table #namespaces {
            thead { tr {
                th { (ctx.t("Namespace")) }
                th { (ctx.t("Display name")) }
                th.hide-narrow { (ctx.t("Description")) }
                th { (ctx.t("Configs")) }
                th.hide-narrow { (ctx.t("Size")) }
                th { (ctx.t("Review before release")) }
                @if admin {
                    th { (ctx.t("Apollo apps served unsigned")) }
                    th {}
                }
            } }
            tbody {
                @for info in &list {
                    @let name = info.record.name.as_str();
                    tr {
                        td.key {
                            a href={ "/console/configs?ns=" (name) } { (name) }
                            div.exports {
                                a href={ "/console/namespaces/export?name=" (name) "&format=nacos" } download { (ctx.t("Export zip")) }
                                " · "
                                a href={ "/console/namespaces/export?name=" (name) "&format=cairn" } download { (ctx.t("Export (Cairn)")) }
                                " · "
                                a href={ "/console/namespaces/export?name=" (name) "&format=cairn&history=true" } download { (ctx.t("Export with history (Cairn)")) }
                            }
                        }
                        @if admin && !info.record.name.is_public() {
                            td colspan="2" {
                                form.inline method="post" action="/console/namespaces/update" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="name" value=(name);
                                    input type="text" name="display_name" value=(info.record.display_name) aria-label=(ctx.t("Display name"));
                                    input type="text" name="description" value=(info.record.description) aria-label=(ctx.t("Description"));
                                    button type="submit" { (ctx.t("Save")) }
                                }
                            }
                        } @else {
                            td { (info.record.display_name) }
                            td.hide-narrow { (info.record.description) }
                        }
                        td.quota { (info.usage.configs) " / " (of_quota(ctx, info.limits.max_configs, |n| n.to_string())) }
                        td.quota.hide-narrow { (bytes(info.usage.bytes)) " / " (of_quota(ctx, info.limits.max_total_bytes, bytes)) }
                        td.review {
                            @if info.record.require_review { strong { (ctx.t("required")) } } @else { span.muted { (ctx.t("not required")) } }
                            @if admin {
                                form.inline method="post" action="/console/namespaces/review" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="name" value=(name);
                                    input type="hidden" name="on" value=(!info.record.require_review);
                                    button type="submit" {
                                        @if info.record.require_review { (ctx.t("Stop requiring")) } @else { (ctx.t("Require")) }
                                    }
                                }
                            }
                        }
                        @if admin {
                            td {
                                form.inline method="post" action="/console/namespaces/apollo" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="name" value=(name);
                                    input type="text" name="apollo_anonymous_apps" value=(info.record.apollo_anonymous.join(", "))
                                        placeholder=(ctx.t("none: every read signed")) aria-label=(ctx.t("Apollo apps served unsigned"));
                                    button type="submit" { (ctx.t("Save")) }
                                }
                            }
                            td {
                                @if !info.record.name.is_public() && info.config_count == 0 {
                                    form method="post" action="/console/namespaces/delete" {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="name" value=(name);
                                        button.danger type="submit" data-confirm=(ctx.t("Delete this namespace?")) { (ctx.t("Delete")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t("Import")) }
        form.panel.filters #import method="post" action="/console/namespaces/import" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            div {
                label for="import-name" { (ctx.t("Namespace")) }
                select #import-name name="name" {
                    @for info in &list { option value=(info.record.name.as_str()) { (info.record.name.as_str()) } }
                }
            }
            div {
                label for="import-policy" { (ctx.t("If a config exists")) }
                select #import-policy name="policy" {
                    option value="abort" { (ctx.t("import nothing")) }
                    option value="skip" { (ctx.t("keep it")) }
                    option value="overwrite" { (ctx.t("overwrite it")) }
                }
            }
            div {
                label for="import-file" { (ctx.t("Nacos zip or Cairn export")) }
                input #import-file type="file" name="file" required;
            }
            div { button.primary type="submit" { (ctx.t("Import")) } }
        }
        @if admin {
            h2 { (ctx.t("New namespace")) }
            form.panel.filters #new-namespace method="post" action="/console/namespaces/create" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                div { label for="name" { (ctx.t("Namespace")) } input #name type="text" name="name" required; }
                div { label for="display_name" { (ctx.t("Display name")) } input #display_name type="text" name="display_name"; }
                div { label for="description" { (ctx.t("Description")) } input #description type="text" name="description"; }
                div { button.primary type="submit" { (ctx.t("Create")) } }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Namespaces"), body, false).into_response())
}

/// A quota as shown beside its use: its value, or "unlimited" for 0.
fn of_quota(ctx: &Ctx, limit: u64, show: impl Fn(u64) -> String) -> String {
    if limit == 0 {
        ctx.t("unlimited").to_owned()
    } else {
        show(limit)
    }
}

/// Bytes in the largest binary unit that keeps a whole number before the point.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A comma-separated list from a form field, each item trimmed, empty ones dropped.
fn list_of(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Deserialize)]
pub struct ApolloAnonymousForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    apollo_anonymous_apps: String,
}

/// Which Apollo apps a namespace serves unsigned (global admins only: it bypasses every
/// grant). Apollo's checks read it from memory, so this node reloads it at once.
pub async fn set_apollo_anonymous(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<ApolloAnonymousForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = namespace_of(ctx, &form.name)?;
    let apps = list_of(&form.apollo_anonymous_apps);
    let detail = format!(
        "namespace {name}; unsigned Apollo reads: {}",
        apps.join(",")
    );
    let result = state
        .service
        .update_namespace(
            &name,
            cairn_store::NamespaceUpdate {
                display_name: None,
                description: None,
                apollo_anonymous: Some(apps),
                ..Default::default()
            },
        )
        .await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(&by, "namespace.update", name.as_str(), detail, result)
        .map_err(|e| ctx.service_error(e))?;
    state
        .access_keys
        .reload()
        .await
        .map_err(|e| ctx.service_error(crate::service::ServiceError::from(e)))?;
    Ok(Redirect::to("/console/namespaces?done=saved").into_response())
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    on: bool,
}

/// Turns review before release on or off for a namespace (admin).
pub async fn set_review(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<ReviewForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = namespace_of(ctx, &form.name)?;
    let result = state
        .service
        .update_namespace(
            &name,
            cairn_store::NamespaceUpdate {
                require_review: Some(form.on),
                ..Default::default()
            },
        )
        .await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    let detail = format!("namespace {name}; require review: {}", form.on);
    state
        .auth
        .audit()
        .done(&by, "namespace.update", name.as_str(), detail, result)
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/namespaces?done=saved").into_response())
}

#[derive(Deserialize)]
pub struct NamespaceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
}

fn namespace_of(ctx: &Ctx, name: &str) -> Result<Namespace, PageError> {
    Namespace::parse(name.trim()).map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))
}

pub async fn create_namespace(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<NamespaceForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = namespace_of(ctx, &form.name)?;
    let result = state
        .service
        .create_namespace(
            name.clone(),
            form.display_name.trim().into(),
            form.description.trim().into(),
        )
        .await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            "namespace.create",
            name.as_str(),
            format!("namespace {name}"),
            result,
        )
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/namespaces?done=saved").into_response())
}

pub async fn update_namespace(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<NamespaceForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = namespace_of(ctx, &form.name)?;
    let result = state
        .service
        .update_namespace(
            &name,
            cairn_store::NamespaceUpdate {
                display_name: Some(form.display_name.trim().into()),
                description: Some(form.description.trim().into()),
                apollo_anonymous: None,
                ..Default::default()
            },
        )
        .await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            "namespace.update",
            name.as_str(),
            format!("namespace {name}"),
            result,
        )
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/namespaces?done=saved").into_response())
}

pub async fn delete_namespace(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<NamespaceForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = namespace_of(ctx, &form.name)?;
    let result = state.service.delete_namespace(&name).await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            "namespace.delete",
            name.as_str(),
            format!("namespace {name}"),
            result,
        )
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/namespaces?done=deleted").into_response())
}

// ---------------------------------------------------------------------------------------
// Users and passwords

pub async fn users(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    require_admin(&session)?;
    let users = state
        .auth
        .list_users()
        .await
        .map_err(|e| auth_failure(ctx, e))?;
    let body = html! {
        h1 { (ctx.t("Users")) }
        (done(ctx, q.done.as_deref()))
        table #users {
            thead { tr {
                th { (ctx.t("User name")) }
                th { (ctx.t("Role")) }
                th.hide-narrow { (ctx.t("Created")) }
                th { (ctx.t("Reset password")) }
                th {}
            } }
            tbody {
                @for u in &users {
                    @let name = u.username.as_str();
                    tr {
                        td { (name) }
                        td {
                            form.inline method="post" action="/console/users/role" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                input type="hidden" name="username" value=(name);
                                select name="role" aria-label=(ctx.t("Role")) {
                                    option value="user" selected[u.role == Role::User] { "user" }
                                    option value="admin" selected[u.role == Role::Admin] { "admin" }
                                }
                                button type="submit" { (ctx.t("Save")) }
                            }
                        }
                        td.hide-narrow.muted { (time_of(u.created_at)) }
                        td {
                            form.inline method="post" action="/console/users/password" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                input type="hidden" name="username" value=(name);
                                input type="password" name="password" autocomplete="new-password" aria-label=(ctx.t("New password")) placeholder=(ctx.t("New password"));
                                button type="submit" { (ctx.t("Save")) }
                            }
                        }
                        td {
                            @if name != session.caller.username.as_str() {
                                form method="post" action="/console/users/delete" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="username" value=(name);
                                    button.danger type="submit" data-confirm=(ctx.t("Delete this user?")) { (ctx.t("Delete")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t("New user")) }
        form.panel.filters #new-user method="post" action="/console/users/create" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            div { label for="username" { (ctx.t("User name")) } input #username type="text" name="username" required; }
            div { label for="password" { (ctx.t("Password")) } input #password type="password" name="password" autocomplete="new-password" required; }
            div {
                label for="role" { (ctx.t("Role")) }
                select #role name="role" {
                    option value="user" { "user" }
                    option value="admin" { "admin" }
                }
            }
            div { button.primary type="submit" { (ctx.t("Create")) } }
        }
    };
    Ok(layout(ctx, ctx.t("Users"), body, false).into_response())
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

fn username_of(ctx: &Ctx, name: &str) -> Result<Username, PageError> {
    Username::parse(name.trim()).map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))
}

pub async fn create_user(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<UserForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = username_of(ctx, &form.username)?;
    let role = Role::parse(&form.role)
        .ok_or_else(|| auth_failure(ctx, AuthError::UnknownRole(form.role.clone())))?;
    let result = state
        .auth
        .add_user(&name, &Secret::from(form.password), role)
        .await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            "user.create",
            "",
            format!("user {name} ({role})"),
            result,
        )
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/users?done=saved").into_response())
}

pub async fn set_role(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<UserForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = username_of(ctx, &form.username)?;
    let role = Role::parse(&form.role)
        .ok_or_else(|| auth_failure(ctx, AuthError::UnknownRole(form.role.clone())))?;
    let result = state.auth.set_role(&name, role).await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            "user.role",
            "",
            format!("user {name} -> {role}"),
            result,
        )
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/users?done=saved").into_response())
}

pub async fn reset_password(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<UserForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = username_of(ctx, &form.username)?;
    let result = state
        .auth
        .set_password(&name, &Secret::from(form.password))
        .await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(&by, "user.password", "", format!("user {name}"), result)
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/users?done=saved").into_response())
}

pub async fn delete_user(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<UserForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let name = username_of(ctx, &form.username)?;
    let result = state.auth.delete_user(&name).await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(&by, "user.delete", "", format!("user {name}"), result)
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/users?done=deleted").into_response())
}

pub async fn password_page(session: Session, Query(q): Query<DoneQuery>) -> Response {
    let ctx = &session.ctx;
    let body = html! {
        h1 { (ctx.t("Change your password")) }
        (done(ctx, q.done.as_deref()))
        form.panel #password-form method="post" action="/console/password" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            label for="current" { (ctx.t("Current password")) }
            input #current type="password" name="current" autocomplete="current-password" required;
            label for="new" { (ctx.t("New password")) }
            input #new type="password" name="new" autocomplete="new-password" required;
            div.actions { button.primary type="submit" { (ctx.t("Save")) } }
        }
    };
    layout(ctx, ctx.t("Change your password"), body, false).into_response()
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

/// A user's own password: the current one first, so an open browser alone cannot take
/// over the account. Every session and token of the user ends with the change, this
/// one too, so the user logs in again.
pub async fn change_password(
    State(state): State<SharedState>,
    session: Session,
    ConsoleForm(form): ConsoleForm<PasswordForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let name = &session.caller.username;
    match state
        .auth
        .check_password(name, &Secret::from(form.current))
        .await
    {
        Ok(()) => {}
        Err(AuthError::BadCredentials) => {
            return Err(ctx.fail(StatusCode::FORBIDDEN, "the current password is wrong"))
        }
        Err(e) => return Err(auth_failure(ctx, e)),
    }
    state
        .auth
        .set_password(name, &Secret::from(form.new))
        .await
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/login").into_response())
}

// ---------------------------------------------------------------------------------------
// Access keys

#[derive(Deserialize)]
pub struct AppQuery {
    app: Option<String>,
    done: Option<String>,
}

pub async fn access_keys(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<AppQuery>,
) -> Reply {
    require_admin(&session)?;
    let app = q.app.as_deref().map(str::trim).unwrap_or("").to_owned();
    keys_page(&state, &session, app, q.done.as_deref(), None)
}

/// An app's keys; `made`, a key just created, is the one whose secret shows, on this
/// answer only (the page it redirects nowhere, so a reload does not show it again).
fn keys_page(
    state: &SharedState,
    session: &Session,
    app: String,
    done_what: Option<&str>,
    made: Option<&cairn_store::AccessKeyRecord>,
) -> Reply {
    let ctx = &session.ctx;
    if !app.is_empty() && !crate::access_keys::valid_app_id(&app) {
        return Err(ctx.fail(
            StatusCode::BAD_REQUEST,
            format!("{app:?} is not a valid Apollo app id"),
        ));
    }
    let keys = if app.is_empty() {
        Vec::new()
    } else {
        state.access_keys.list(&app)
    };
    let body = html! {
        h1 { (ctx.t("Access keys")) }
        p.muted { (ctx.t("With an enabled key, an Apollo app's clients must sign their requests with its secret.")) }
        (done(ctx, done_what))
        @if let Some(made) = made {
            div.flash.ok role="status" #new-key {
                (ctx.t("New key")) " " span.mono { (made.id) } ": " span.mono { (made.secret) }
                " — " (ctx.t("copy the secret now; it is not shown again."))
            }
        }
        form.panel.filters method="get" action="/console/access-keys" {
            div { label for="app" { (ctx.t("Apollo app id")) } input #app type="search" name="app" value=(app) required; }
            div { button.primary type="submit" { (ctx.t("Search")) } }
        }
        @if !app.is_empty() {
            table #access-keys {
                thead { tr {
                    th { "ID" }
                    th { (ctx.t("Secret")) }
                    th { (ctx.t("Enabled")) }
                    th { (ctx.t("Namespaces")) }
                    th.hide-narrow { (ctx.t("Created")) }
                    th {}
                } }
                tbody {
                    @for k in &keys {
                        tr {
                            td.mono { (k.id) }
                            td.mono { "••••••••" }
                            td { (if k.enabled { ctx.t("yes") } else { ctx.t("no") }) }
                            td {
                                @if k.namespaces.is_empty() { span.muted { (ctx.t("all")) } }
                                @else { (k.namespaces.join(", ")) }
                            }
                            td.hide-narrow.muted { (time_of(k.created_at)) }
                            td {
                                form.inline method="post" action="/console/access-keys/set" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="app" value=(app);
                                    input type="hidden" name="id" value=(k.id);
                                    input type="hidden" name="enabled" value=(if k.enabled { "false" } else { "true" });
                                    button type="submit" { (if k.enabled { ctx.t("Disable") } else { ctx.t("Enable") }) }
                                }
                                form.inline method="post" action="/console/access-keys/delete" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="app" value=(app);
                                    input type="hidden" name="id" value=(k.id);
                                    button.danger type="submit" data-confirm=(ctx.t("Delete this key?")) { (ctx.t("Delete")) }
                                }
                            }
                        }
                    }
                }
            }
            form.panel.filters #new-key-form method="post" action="/console/access-keys/create" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="app" value=(app);
                div {
                    label for="namespaces" { (ctx.t("Namespaces (Apollo envs), comma-separated; empty: all")) }
                    input #namespaces type="text" name="namespaces";
                }
                div { button.primary type="submit" { (ctx.t("New key")) } }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Access keys"), body, false).into_response())
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    enabled: String,
    #[serde(default)]
    namespaces: String,
}

fn app_url(app: &str, extra: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("app", app);
    format!("/console/access-keys?{}{extra}", query.finish())
}

fn key_failure(ctx: &Ctx, e: cairn_store::StoreError) -> PageError {
    let status = match e {
        cairn_store::StoreError::AccessKeyNotFound(..) => StatusCode::NOT_FOUND,
        cairn_store::StoreError::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    ctx.fail(status, e.to_string())
}

fn app_of(ctx: &Ctx, app: &str) -> Result<String, PageError> {
    let app = app.trim();
    if crate::access_keys::valid_app_id(app) {
        Ok(app.to_owned())
    } else {
        Err(ctx.fail(
            StatusCode::BAD_REQUEST,
            format!("{app:?} is not a valid Apollo app id"),
        ))
    }
}

pub async fn create_access_key(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<KeyForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let app = app_of(ctx, &form.app)?;
    let namespaces = list_of(&form.namespaces);
    for namespace in &namespaces {
        namespace_of(ctx, namespace)?;
    }
    let target = crate::access_keys::describe(&app, &namespaces);
    let result = state.access_keys.create(&app, namespaces).await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    let key = state
        .auth
        .audit()
        .done(&by, "access_key.create", "", target, result)
        .map_err(|e| key_failure(ctx, e))?;
    keys_page(&state, &session, app, None, Some(&key))
}

pub async fn set_access_key(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<KeyForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let app = app_of(ctx, &form.app)?;
    let result = state
        .access_keys
        .set_enabled(&app, &form.id, form.enabled == "true")
        .await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            if form.enabled == "true" {
                "access_key.enable"
            } else {
                "access_key.disable"
            },
            "",
            format!("access key {} of app {app}", form.id),
            result,
        )
        .map_err(|e| key_failure(ctx, e))?;
    Ok(Redirect::to(&app_url(&app, "&done=saved")).into_response())
}

pub async fn delete_access_key(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<KeyForm>,
) -> Reply {
    let ctx = &session.ctx;
    admin_form(&session, &form.csrf)?;
    let app = app_of(ctx, &form.app)?;
    let result = state.access_keys.delete(&app, &form.id).await;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .auth
        .audit()
        .done(
            &by,
            "access_key.delete",
            "",
            format!("access key {} of app {app}", form.id),
            result,
        )
        .map_err(|e| key_failure(ctx, e))?;
    Ok(Redirect::to(&app_url(&app, "&done=deleted")).into_response())
}

// ---------------------------------------------------------------------------------------
// The cluster

pub async fn cluster(State(state): State<SharedState>, session: Session) -> Reply {
    let ctx = &session.ctx;
    let nodes = state
        .sync
        .live_nodes()
        .await
        .map_err(|e| ctx.service_error(e.into()))?;
    let newest = nodes
        .iter()
        .map(|n| n.record.applied_seq)
        .max()
        .unwrap_or(0);
    let body = html! {
        h1 { (ctx.t("Cluster")) }
        table #nodes {
            thead { tr {
                th { (ctx.t("Node")) }
                th { (ctx.t("Address")) }
                th { (ctx.t("Applied")) }
                th { (ctx.t("Behind")) }
                th { (ctx.t("Version")) }
                th.hide-narrow { (ctx.t("Started")) }
                th.hide-narrow { (ctx.t("Last heartbeat")) }
            } }
            tbody {
                @for n in &nodes {
                    tr {
                        td.mono { (n.record.id) @if n.this_node { " " span.tag { (ctx.t("this node")) } } }
                        td.mono { (n.record.address) }
                        td { (n.record.applied_seq) }
                        td { (newest - n.record.applied_seq) }
                        td { (n.record.version) }
                        td.hide-narrow.muted { (time_of(n.record.started_at)) }
                        td.hide-narrow.muted { (time_of(n.record.heartbeat_at)) }
                    }
                }
            }
        }
        p.muted { (ctx.t("A node is listed while its heartbeats arrive; one that stops is dropped after the node time-to-live.")) }
    };
    Ok(layout(ctx, ctx.t("Cluster"), body, false).into_response())
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    name: String,
    format: Option<String>,
    #[serde(default)]
    history: bool,
}

/// A namespace's configs that this user may read, as a download.
pub async fn export_namespace(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<ExportQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let name = namespace_of(ctx, &q.name)?;
    let filter = crate::service::ListFilter::within(name.clone(), None, None);
    let items = state
        .service
        .export(&session.caller, &filter, q.history)
        .await
        .map_err(|e| ctx.service_error(e))?;
    crate::api::transfer::export_answer(&name, &items, q.format.as_deref(), false)
        .map_err(|e| ctx.fail(e.status, e.message))
}

/// An uploaded Nacos zip or Cairn export imported into a namespace, all or nothing,
/// under the user's own rights.
pub async fn import_namespace(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    mut form: axum::extract::Multipart,
) -> Reply {
    let ctx = &session.ctx;
    let (mut csrf, mut name, mut policy, mut file) = (String::new(), String::new(), None, None);
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        ctx.fail(
            StatusCode::BAD_REQUEST,
            format!("the upload cannot be read: {e}"),
        )
    };
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(unreadable)?,
            Some("name") => name = field.text().await.map_err(unreadable)?,
            Some("policy") => policy = Some(field.text().await.map_err(unreadable)?),
            Some("file") => file = Some(field.bytes().await.map_err(unreadable)?),
            _ => {}
        }
    }
    ctx.check_csrf(&csrf)?;
    let name = namespace_of(ctx, &name)?;
    let file = file.ok_or_else(|| ctx.fail(StatusCode::BAD_REQUEST, "choose a file to import"))?;
    let conflict = crate::api::transfer::policy_of(policy.as_deref())
        .map_err(|e| ctx.fail(e.status, e.message))?;
    let (items, _) = crate::api::transfer::read_upload(&file, false)
        .map_err(|e| ctx.fail(e.status, e.message))?;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .service
        .import(&name, items, conflict.into(), &by)
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/namespaces?done=imported").into_response())
}
