//! The console's review pages: the change requests of namespaces that require review
//! (open ones first), one request with its diff and timeline, and the steps a person
//! takes on it: approve, reject with a comment, rebase their own.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use cairn_store::{ChangeRequestRecord, Op, ReviewStatus};
use maud::html;
use serde::Deserialize;

use super::admin::Reply;
use super::pages::{config_url, diff_view, key_heading, time_of, DiffLayout};
use super::{layout, ConsoleForm, Session};
use crate::api::{ClientAddr, SharedState};
use crate::service::ServiceError;

/// Requests shown per page.
const PAGE_SIZE: u32 = 50;

/// Where a person lands after their change was kept for review.
pub fn opened(request: &ChangeRequestRecord) -> Response {
    Redirect::to(&format!(
        "/console/reviews/view?id={}&done=opened",
        request.id
    ))
    .into_response()
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    page: Option<u32>,
}

/// The change requests the user may read, in one state (open by default).
pub async fn reviews(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let wanted = q.status.as_deref().unwrap_or("open");
    let status = ReviewStatus::parse(wanted);
    let page = cairn_store::Page {
        number: q.page.unwrap_or(1).max(1),
        size: PAGE_SIZE,
    };
    let (items, total) = state
        .service
        .change_requests(&session.caller, None, status, page)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let tabs = ["open", "stale", "approved", "rejected", "all"];
    let body = html! {
        h1 { (ctx.t("Reviews")) }
        p.hint { (ctx.t("In a namespace that requires review, a change a person makes waits here until another person with the approve level releases it.")) }
        nav.tabs #review-tabs {
            @for tab in tabs {
                @if tab == wanted || (tab == "all" && status.is_none() && wanted == "all") {
                    span.current { (ctx.t(tab)) }
                } @else {
                    a href={ "/console/reviews?status=" (tab) } { (ctx.t(tab)) }
                }
            }
        }
        @if items.is_empty() {
            p #no-reviews { (ctx.t("No change request here.")) }
        } @else {
            table #reviews {
                thead { tr {
                    th { "#" }
                    th { (ctx.t("Config")) }
                    th { (ctx.t("Change")) }
                    th { (ctx.t("Status")) }
                    th { (ctx.t("Author")) }
                    th.hide-narrow { (ctx.t("Comment")) }
                    th.hide-narrow { (ctx.t("At")) }
                } }
                tbody {
                    @for r in &items {
                        tr {
                            td { a href={ "/console/reviews/view?id=" (r.id) } { (r.id) } }
                            td.key { a href={ "/console/reviews/view?id=" (r.id) } { (r.key.to_string()) } }
                            td { (ctx.t(r.op.as_str())) }
                            td class=(r.status.as_str()) { (ctx.t(r.status.as_str())) }
                            td { (r.author) }
                            td.hide-narrow { (r.comment) }
                            td.hide-narrow { (time_of(r.updated_at)) }
                        }
                    }
                }
            }
            @if total > items.len() as u64 {
                p.muted { (ctx.t("Change requests in all:")) " " (total) }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Reviews"), body, false).into_response())
}

#[derive(Deserialize)]
pub struct ViewQuery {
    id: i64,
    done: Option<String>,
}

/// One request: what it changes, its timeline, and what the user may do with it.
pub async fn view(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<ViewQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let detail = state
        .service
        .change_request(&session.caller, q.id)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let r = &detail.request;
    let me = session.caller.username.as_str();
    let own = me == r.author;
    let moved = detail.current_md5.as_deref().unwrap_or("") != r.base_md5;
    let flash = match q.done.as_deref() {
        Some("opened") => {
            html! { div.flash.ok role="status" { (ctx.t("Kept for review: another person with the approve level releases it.")) } }
        }
        Some("approved") => {
            html! { div.flash.ok role="status" { (ctx.t("Approved and released.")) } }
        }
        Some("rejected") => html! { div.flash.ok role="status" { (ctx.t("Rejected.")) } },
        Some("rebased") => {
            html! { div.flash.ok role="status" { (ctx.t("Rebased onto the current content: it can be reviewed again.")) } }
        }
        Some("stale") => {
            html! { div.flash.error role="alert" { (ctx.t("The config changed since this request was made: nothing was released. Its author must rebase it.")) } }
        }
        _ => html! {},
    };
    let title = format!("{} #{}", ctx.t("Change request"), r.id);
    let step = |action: &'static str, label: &'static str, class: &'static str, required: bool| {
        html! {
            form.panel.review-step method="post" action={ "/console/reviews/" (action) } {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="id" value=(r.id);
                label for={ "comment-" (action) } { (ctx.t("Comment")) }
                input id={ "comment-" (action) } type="text" name="comment" required[required];
                div.actions { button class=(class) type="submit" { (ctx.t(label)) } }
            }
        }
    };
    let body = html! {
        (key_heading(&r.key))
        h2 #review-title { (title) " · " span class=(r.status.as_str()) { (ctx.t(r.status.as_str())) } }
        (flash)
        dl.meta {
            dt { (ctx.t("Change")) } dd { (ctx.t(r.op.as_str())) }
            dt { (ctx.t("Author")) } dd { (r.author) " · " (time_of(r.created_at)) }
            @if !r.comment.is_empty() { dt { (ctx.t("Comment")) } dd { (r.comment) } }
            @if !r.reviewer.is_empty() { dt { (ctx.t("Reviewer")) } dd { (r.reviewer) } }
            @if let Some(revision) = r.released {
                dt { (ctx.t("Released")) }
                dd { a href={ (config_url(&r.key)) "/history" } { (ctx.t("revision")) " " (revision.get()) } }
            }
        }
        @if r.status == ReviewStatus::Open && moved {
            div.flash.error role="alert" { (ctx.t("The config changed since this request was made: approving it will find it stale.")) }
        }
        h3 { (ctx.t("What it changes")) }
        @if r.op == Op::Delete {
            p.panel { (ctx.t("Deletes the config.")) }
        } @else if detail.readable {
            (diff_view(ctx, detail.base.as_deref().unwrap_or(""), &r.content, DiffLayout::Unified))
        } @else {
            p.panel.muted { (ctx.t("Sensitive: only users with read-secret see the content")) }
        }
        h3 { (ctx.t("Timeline")) }
        ol.timeline #review-timeline {
            @for e in &detail.events {
                li {
                    strong { (ctx.t(event_name(&e.event))) } " " (ctx.t("by")) " " (e.actor) " · " span.muted { (time_of(e.at)) }
                    @if !e.comment.is_empty() { div.comment { (e.comment) } }
                }
            }
        }
        @if !r.status.is_final() {
            div.grid2 #review-actions {
                @if r.status == ReviewStatus::Open && !own {
                    (step("approve", "Approve and release", "primary", false))
                }
                @if own {
                    @if r.status == ReviewStatus::Stale || moved {
                        (step("rebase", "Rebase onto the current content", "", false))
                    }
                    (step("reject", "Withdraw", "danger", false))
                } @else {
                    (step("reject", "Reject", "danger", true))
                }
            }
        }
    };
    Ok(layout(ctx, &title, body, false).into_response())
}

/// A timeline event's name, as the translation table knows it.
fn event_name(event: &str) -> &'static str {
    match event {
        "opened" => "opened",
        "rebased" => "rebased",
        "approved" => "approved",
        "rejected" => "rejected",
        "stale" => "stale",
        _ => "changed",
    }
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    csrf: String,
    id: i64,
    #[serde(default)]
    comment: String,
}

/// Approve, reject or rebase, then back to the request.
async fn take_step(
    state: SharedState,
    session: Session,
    addr: ClientAddr,
    form: StepForm,
    action: &'static str,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    let comment = form.comment.trim().to_owned();
    let done = match action {
        "approve" => state.service.approve(form.id, comment, &by).await,
        "reject" => state.service.reject(form.id, comment, &by).await,
        _ => state.service.rebase(form.id, None, comment, &by).await,
    };
    let outcome = match (action, done) {
        (_, Err(ServiceError::StaleChangeRequest { .. })) => "stale",
        (_, Err(e)) => return Err(ctx.service_error(e)),
        ("approve", Ok(_)) => "approved",
        ("reject", Ok(_)) => "rejected",
        (_, Ok(_)) => "rebased",
    };
    Ok(Redirect::to(&format!(
        "/console/reviews/view?id={}&done={outcome}",
        form.id
    ))
    .into_response())
}

pub async fn approve(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<StepForm>,
) -> Reply {
    take_step(state, session, addr, form, "approve").await
}

pub async fn reject(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<StepForm>,
) -> Reply {
    take_step(state, session, addr, form, "reject").await
}

pub async fn rebase(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<StepForm>,
) -> Reply {
    take_step(state, session, addr, form, "rebase").await
}
