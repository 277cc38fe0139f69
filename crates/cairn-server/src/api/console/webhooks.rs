//! The console's webhook pages: the subscriptions in the namespaces a user
//! administers, adding and removing them, and each one's delivery log with "send again".

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cairn_core::Namespace;
use maud::html;
use serde::Deserialize;

use super::admin::{done, DoneQuery, Reply};
use super::pages::time_of;
use super::{layout, ConsoleForm, Session};
use crate::api::{ClientAddr, SharedState};
use crate::service::WebhookInput;
use crate::webhooks::EVENTS;

/// Deliveries shown per page.
const PAGE_SIZE: u32 = 50;

/// Every subscription the user administers, and the form to add one.
pub async fn webhooks(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let list = state
        .service
        .webhooks(&session.caller, None)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let any = |p: &str| {
        if p.is_empty() {
            "*".to_owned()
        } else {
            p.to_owned()
        }
    };
    let body = html! {
        h1 { (ctx.t("Webhooks")) }
        (done(ctx, q.done.as_deref()))
        p.hint { (ctx.t("Each change of a namespace (or of its configs matching a group and data id, * matches anything) is sent as signed JSON to the URL, in order per config, retried until the receiver answers 2xx. The README says how to check the signature.")) }
        @if list.is_empty() {
            p #no-webhooks { (ctx.t("No webhook yet.")) }
        } @else {
            table #webhooks {
                thead { tr {
                    th { (ctx.t("Namespace")) }
                    th { "URL" }
                    th { (ctx.t("Events")) }
                    th { (ctx.t("Group")) " / " (ctx.t("Data ID")) }
                    th.hide-narrow { (ctx.t("Added by")) }
                    th {}
                } }
                tbody {
                    @for h in &list {
                        tr {
                            td.key { a href={ "/console/webhooks/deliveries?id=" (h.id) } { (h.namespace.as_str()) " #" (h.id) } }
                            td { code { (h.url) } }
                            td { @if h.events.is_empty() { (ctx.t("all")) } @else { (h.events.join(", ")) } }
                            td { (any(&h.group)) " / " (any(&h.data_id)) }
                            td.hide-narrow { (h.created_by) " · " (time_of(h.created_at)) }
                            td {
                                form.inline method="post" action="/console/webhooks/remove" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="id" value=(h.id);
                                    button.danger type="submit" data-confirm=(ctx.t("Remove this webhook and its delivery log?")) { (ctx.t("Remove")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t("Add a webhook")) }
        form.panel #webhook-form method="post" action="/console/webhooks/add" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            div.grid2 {
                div {
                    label for="webhook-namespace" { (ctx.t("Namespace")) }
                    input #webhook-namespace type="text" name="namespace" value="public" required;
                }
                div {
                    label for="webhook-url" { "URL" }
                    input #webhook-url type="text" inputmode="url" name="url" placeholder="https://" required;
                }
            }
            label for="webhook-secret" { (ctx.t("Secret (16 characters or more; never shown again)")) }
            input #webhook-secret type="password" name="secret" autocomplete="new-password" minlength="16" required;
            div.grid2 {
                div {
                    label for="webhook-group" { (ctx.t("Group")) }
                    input #webhook-group type="text" name="group" placeholder="*";
                }
                div {
                    label for="webhook-data-id" { (ctx.t("Data ID")) }
                    input #webhook-data-id type="text" name="data_id" placeholder="*";
                }
            }
            label for="webhook-events" { (ctx.t("Events (comma-separated; empty: all)")) }
            input #webhook-events type="text" name="events" placeholder=(EVENTS.join(","));
            div.actions {
                button.primary type="submit" { (ctx.t("Add webhook")) }
            }
        }
    };
    Ok(layout(ctx, ctx.t("Webhooks"), body, false).into_response())
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    data_id: String,
    #[serde(default)]
    events: String,
}

pub async fn add(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<AddForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let namespace = Namespace::parse(form.namespace.trim())
        .map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    let input = WebhookInput {
        url: form.url.trim().to_owned(),
        secret: form.secret,
        events: form.events.split(',').map(str::to_owned).collect(),
        group: any_as_empty(form.group),
        data_id: any_as_empty(form.data_id),
    };
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .service
        .add_webhook(namespace, input, &by)
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/webhooks?done=saved").into_response())
}

/// A pattern field: `*` (the placeholder's "any") or nothing means any.
fn any_as_empty(pattern: String) -> String {
    match pattern.trim() {
        "" | "*" => String::new(),
        text => text.to_owned(),
    }
}

#[derive(Deserialize)]
pub struct IdForm {
    #[serde(default)]
    csrf: String,
    id: i64,
    #[serde(default)]
    delivery: i64,
}

pub async fn remove(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<IdForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .service
        .remove_webhook(form.id, &by)
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/webhooks?done=deleted").into_response())
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    id: i64,
    page: Option<u32>,
    done: Option<String>,
}

/// One subscription's deliveries, newest first, each with "send again".
pub async fn deliveries(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DeliveriesQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let hook = state
        .service
        .webhook(&session.caller, q.id)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let page = cairn_store::Page {
        number: q.page.unwrap_or(1).max(1),
        size: PAGE_SIZE,
    };
    let (items, total) = state
        .service
        .deliveries(&session.caller, q.id, page)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let title = format!("{} #{}", ctx.t("Webhook"), hook.id);
    let flash = match q.done.as_deref() {
        Some("sent") => html! { div.flash.ok role="status" { (ctx.t("It will be sent again.")) } },
        other => done(ctx, other),
    };
    let body = html! {
        h1 { (title) }
        (flash)
        p { code { (hook.url) } " · " (hook.namespace.as_str()) }
        @if items.is_empty() {
            p #no-deliveries { (ctx.t("Nothing sent yet: deliveries appear with the namespace's next changes.")) }
        } @else {
            table #deliveries {
                thead { tr {
                    th { (ctx.t("Event")) }
                    th { (ctx.t("Config")) }
                    th { (ctx.t("Status")) }
                    th { (ctx.t("Response")) }
                    th { (ctx.t("Attempts")) }
                    th.hide-narrow { (ctx.t("Latency")) }
                    th.hide-narrow { (ctx.t("At")) }
                    th {}
                } }
                tbody {
                    @for d in &items {
                        tr {
                            td { (d.event) " " span.muted { "#" (d.seq) } }
                            td.key { (d.key.group.as_str()) "/" (d.key.data_id.as_str()) }
                            td class=(d.status.as_str()) { (ctx.t(d.status.as_str())) }
                            td {
                                (d.response_code.map_or("-".to_owned(), |c| c.to_string()))
                                @if !d.error.is_empty() { br; small.muted { (d.error) } }
                            }
                            td { (d.attempts) }
                            td.hide-narrow { (d.latency_ms.map_or("-".to_owned(), |l| format!("{l} ms"))) }
                            td.hide-narrow { (time_of(d.updated_at)) }
                            td {
                                form.inline method="post" action="/console/webhooks/redeliver" {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    input type="hidden" name="id" value=(hook.id);
                                    input type="hidden" name="delivery" value=(d.id);
                                    button type="submit" { (ctx.t("Send again")) }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { (ctx.t("Deliveries in all:")) " " (total) }
        }
    };
    Ok(layout(ctx, &title, body, false).into_response())
}

pub async fn redeliver(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<IdForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .service
        .redeliver(form.id, form.delivery, &by)
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to(&format!(
        "/console/webhooks/deliveries?id={}&done=sent",
        form.id
    ))
    .into_response())
}
