//! The console's permissions and audit pages: grants (who may read, write or administer
//! which namespaces, groups and data ids) and named roles' members, and the audit log.
//! Everyone sees the grants they may see (their own, and those of the namespaces they
//! administer); admins see and change all, a namespace's admins those within it, as on
//! the native API. The audit log is for admins.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cairn_core::grant::{Level, Scope};
use cairn_core::{Role, RoleName, Username};
use cairn_store::{GrantRecord, Subject};
use maud::html;
use serde::Deserialize;

use super::admin::{auth_failure, done, DoneQuery, Reply};
use super::pages::time_of;
use super::{layout, ConsoleForm, Ctx, PageError, Session};
use crate::api::{ClientAddr, SharedState};

const LEVELS: [Level; 6] = [
    Level::None,
    Level::Read,
    Level::ReadSecret,
    Level::Write,
    Level::Approve,
    Level::Admin,
];

pub async fn grants(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let caller = &session.caller;
    let admin = caller.role == Role::Admin;
    let policy = state.auth.policy();
    let visible = state.auth.visible_grants(caller);
    let manages = |g: &GrantRecord| state.auth.manages(caller, g);
    // Memberships come ordered by role.
    let mut roles: Vec<&RoleName> = policy.members.iter().map(|m| &m.role).collect();
    roles.dedup();
    let body = html! {
        h1 { (ctx.t("Permissions")) }
        (done(ctx, q.done.as_deref()))
        p.muted { (ctx.t("A grant gives a user, or every member of a role, a level over a namespace, or the groups and data ids in it that match a pattern (* matches anything). The most specific grant decides; none takes a part away from a broader grant. Admins may do everything.")) }
        @if visible.is_empty() {
            p.panel.muted { (ctx.t("No grants.")) }
        } @else {
            table #grants {
                thead { tr {
                    th { (ctx.t("Subject")) }
                    th { (ctx.t("Namespace")) }
                    th { (ctx.t("Group")) }
                    th { (ctx.t("Data ID")) }
                    th { (ctx.t("Level")) }
                    th.hide-narrow { (ctx.t("Given by")) }
                    th {}
                } }
                tbody {
                    @for g in &visible {
                        tr {
                            td { span.tag { (g.subject.kind()) } " " (g.subject.name()) }
                            td.mono { (g.scope.namespace.as_str()) }
                            td.mono { (g.scope.group.as_str()) }
                            td.mono { (g.scope.data_id.as_str()) }
                            td { (g.level.as_str()) }
                            td.hide-narrow.muted { (g.created_by) " · " (time_of(g.created_at)) }
                            td {
                                @if manages(g) {
                                    form method="post" action="/console/grants/revoke" {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="subject_kind" value=(g.subject.kind());
                                        input type="hidden" name="subject" value=(g.subject.name());
                                        input type="hidden" name="namespace" value=(g.scope.namespace.as_str());
                                        input type="hidden" name="group" value=(g.scope.group.as_str());
                                        input type="hidden" name="data_id" value=(g.scope.data_id.as_str());
                                        button.danger type="submit" data-confirm=(ctx.t("Take this grant away?")) { (ctx.t("Revoke")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t("Grant")) }
        form.panel.filters #new-grant method="post" action="/console/grants/set" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            div {
                label for="subject_kind" { (ctx.t("To")) }
                select #subject_kind name="subject_kind" {
                    option value="user" { (ctx.t("user")) }
                    option value="role" { (ctx.t("role")) }
                }
            }
            div { label for="subject" { (ctx.t("Name")) } input #subject type="text" name="subject" required; }
            div { label for="namespace" { (ctx.t("Namespace")) } input #namespace type="text" name="namespace" required; }
            div { label for="group" { (ctx.t("Group")) } input #group type="text" name="group" value="*"; }
            div { label for="data_id" { (ctx.t("Data ID")) } input #data_id type="text" name="data_id" value="*"; }
            div {
                label for="level" { (ctx.t("Level")) }
                select #level name="level" {
                    @for level in LEVELS {
                        option value=(level.as_str()) selected[level == Level::Read] { (level.as_str()) }
                    }
                }
            }
            div { button.primary type="submit" { (ctx.t("Grant")) } }
        }
        @if admin {
            h2 { (ctx.t("Roles")) }
            @if roles.is_empty() {
                p.panel.muted { (ctx.t("No role has members.")) }
            } @else {
                table #roles {
                    thead { tr { th { (ctx.t("Role")) } th { (ctx.t("Members")) } } }
                    tbody {
                        @for role in &roles {
                            tr {
                                td { (role.as_str()) }
                                td {
                                    @for m in policy.members.iter().filter(|m| &&m.role == role) {
                                        form.inline method="post" action="/console/roles/remove" {
                                            input type="hidden" name="csrf" value=(ctx.csrf);
                                            input type="hidden" name="role" value=(role.as_str());
                                            input type="hidden" name="username" value=(m.username.as_str());
                                            span.tag { (m.username.as_str()) }
                                            button.link type="submit" title=(ctx.t("Remove from the role")) { "×" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.panel.filters #new-member method="post" action="/console/roles/add" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                div { label for="role" { (ctx.t("Role")) } input #role type="text" name="role" required; }
                div { label for="member" { (ctx.t("User name")) } input #member type="text" name="username" required; }
                div { button.primary type="submit" { (ctx.t("Add to role")) } }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Permissions"), body, false).into_response())
}

#[derive(Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject_kind: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    data_id: String,
    #[serde(default)]
    level: String,
}

fn bad(ctx: &Ctx, message: impl Into<String>) -> PageError {
    ctx.fail(StatusCode::BAD_REQUEST, message)
}

impl GrantForm {
    fn subject(&self, ctx: &Ctx) -> Result<Subject, PageError> {
        let name = self.subject.trim();
        match self.subject_kind.as_str() {
            "user" => Ok(Subject::User(
                Username::parse(name).map_err(|e| bad(ctx, e.to_string()))?,
            )),
            "role" => Ok(Subject::Role(
                RoleName::parse(name).map_err(|e| bad(ctx, e.to_string()))?,
            )),
            other => Err(bad(ctx, format!("{other:?} is neither user nor role"))),
        }
    }

    fn scope(&self, ctx: &Ctx) -> Result<Scope, PageError> {
        let or_any = |s: &str| {
            if s.trim().is_empty() {
                "*".to_owned()
            } else {
                s.trim().to_owned()
            }
        };
        Scope::parse(
            self.namespace.trim(),
            &or_any(&self.group),
            &or_any(&self.data_id),
        )
        .map_err(|e| bad(ctx, e.to_string()))
    }
}

pub async fn set_grant(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<GrantForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let level = Level::parse(&form.level)
        .ok_or_else(|| bad(ctx, format!("unknown level {:?}", form.level)))?;
    state
        .auth
        .grant(
            &crate::api::actor_via("console", &session.caller, &addr),
            form.subject(ctx)?,
            form.scope(ctx)?,
            level,
        )
        .await
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/grants?done=saved").into_response())
}

pub async fn revoke_grant(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<GrantForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    state
        .auth
        .revoke(
            &crate::api::actor_via("console", &session.caller, &addr),
            &form.subject(ctx)?,
            &form.scope(ctx)?,
        )
        .await
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/grants?done=deleted").into_response())
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    username: String,
}

impl MemberForm {
    fn parse(&self, ctx: &Ctx) -> Result<(RoleName, Username), PageError> {
        Ok((
            RoleName::parse(self.role.trim()).map_err(|e| bad(ctx, e.to_string()))?,
            Username::parse(self.username.trim()).map_err(|e| bad(ctx, e.to_string()))?,
        ))
    }
}

pub async fn add_member(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<MemberForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let (role, user) = form.parse(ctx)?;
    state
        .auth
        .add_to_role(
            &crate::api::actor_via("console", &session.caller, &addr),
            &role,
            &user,
        )
        .await
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/grants?done=saved").into_response())
}

pub async fn remove_member(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<MemberForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let (role, user) = form.parse(ctx)?;
    state
        .auth
        .remove_from_role(
            &crate::api::actor_via("console", &session.caller, &addr),
            &role,
            &user,
        )
        .await
        .map_err(|e| auth_failure(ctx, e))?;
    Ok(Redirect::to("/console/grants?done=deleted").into_response())
}

#[derive(Deserialize)]
pub struct AuditForm {
    user: Option<String>,
    namespace: Option<String>,
    action: Option<String>,
    result: Option<String>,
    page: Option<u32>,
}

/// Entries per page of the audit page.
const AUDIT_PAGE: u32 = 100;

/// The audit log, newest first, filtered by user, namespace, action and result (admin).
pub async fn audit(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<AuditForm>,
) -> Reply {
    let ctx = &session.ctx;
    if session.caller.role != Role::Admin {
        return Err(ctx.fail(
            StatusCode::FORBIDDEN,
            "this needs the admin role; ask an admin",
        ));
    }
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_owned();
    let some = |v: String| (!v.is_empty()).then_some(v);
    let (user, namespace, action, result) = (
        text(&q.user),
        text(&q.namespace),
        text(&q.action),
        text(&q.result),
    );
    let query = cairn_store::AuditQuery {
        actor: some(user.clone()),
        namespace: some(namespace.clone()),
        action: some(action.clone()),
        result: some(result.clone()),
        ..Default::default()
    };
    let number = q.page.unwrap_or(1).max(1);
    let (entries, total) = state
        .auth
        .audit_entries(
            &query,
            cairn_store::Page {
                number,
                size: AUDIT_PAGE,
            },
        )
        .await
        .map_err(|e| ctx.service_error(e.into()))?;
    let pages = total.div_ceil(u64::from(AUDIT_PAGE)).max(1);
    let page_link = |n: u32| {
        let mut link = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("user", &user),
            ("namespace", &namespace),
            ("action", &action),
            ("result", &result),
        ] {
            link.append_pair(name, value);
        }
        link.append_pair("page", &n.to_string());
        format!("/console/audit?{}", link.finish())
    };
    let body = html! {
        h1 { (ctx.t("Audit log")) }
        form.panel.filters method="get" action="/console/audit" {
            div { label for="user" { (ctx.t("User name")) } input #user type="search" name="user" value=(user); }
            div { label for="namespace" { (ctx.t("Namespace")) } input #namespace type="search" name="namespace" value=(namespace); }
            div { label for="action" { (ctx.t("Action")) } input #action type="search" name="action" value=(action) placeholder="config, user, login…"; }
            div {
                label for="result" { (ctx.t("Result")) }
                select #result name="result" {
                    option value="" { (ctx.t("any")) }
                    @for r in ["ok", "denied", "failed"] {
                        option value=(r) selected[result == r] { (r) }
                    }
                }
            }
            div { button.primary type="submit" { (ctx.t("Search")) } }
        }
        @if entries.is_empty() {
            p.panel.muted { (ctx.t("No entries.")) }
        } @else {
            table #audit {
                thead { tr {
                    th { (ctx.t("When")) }
                    th { (ctx.t("User name")) }
                    th.hide-narrow { (ctx.t("Source")) }
                    th { (ctx.t("Action")) }
                    th { (ctx.t("Target")) }
                    th { (ctx.t("Result")) }
                    th.hide-narrow { (ctx.t("Detail")) }
                } }
                tbody {
                    @for e in &entries {
                        tr {
                            td.muted { (time_of(e.at)) }
                            td { (e.actor) }
                            td.hide-narrow.mono { (e.source) " · " (e.surface) }
                            td.mono { (e.action) }
                            td.key { (e.target) }
                            td { span.tag { (e.result) } }
                            td.hide-narrow.muted {
                                (e.detail)
                                @if let (Some(before), Some(after)) = (&e.md5_before, &e.md5_after) {
                                    " " span.mono { (before) " → " (after) }
                                }
                            }
                        }
                    }
                }
            }
            p.muted {
                (total) " " (ctx.t("entries")) " · "
                @if number > 1 { a href=(page_link(number - 1)) { "‹ " (ctx.t("Newer")) } " " }
                (number) " / " (pages)
                @if u64::from(number) < pages { " " a href=(page_link(number + 1)) { (ctx.t("Older")) " ›" } }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Audit log"), body, false).into_response())
}
