//! The console's schema pages: the JSON Schemas attached in the namespaces a user sees,
//! and for a namespace's admins, attaching, changing and detaching them, with the
//! configs a new schema would refuse listed before it takes effect.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cairn_core::Namespace;
use cairn_store::SchemaTarget;
use maud::html;
use serde::Deserialize;

use super::admin::{done, DoneQuery, Reply};
use super::pages::time_of;
use super::{layout, ConsoleForm, Ctx, Session};
use crate::api::{ClientAddr, SharedState};
use crate::service::{schema_target, SchemaInput, ServiceError};

/// The schema form's fields; also what the edit page is opened with.
#[derive(Deserialize, Default)]
pub struct SchemaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    data_id: String,
    #[serde(default)]
    schema: String,
    /// `on` to attach it even though configs break it (a checkbox).
    #[serde(default)]
    force: String,
    #[serde(default)]
    comment: String,
    /// The version the page showed (0: none attached); empty replaces any.
    #[serde(default)]
    expect_version: String,
}

fn target_of(ctx: &Ctx, form: &SchemaForm) -> Result<SchemaTarget, super::PageError> {
    let ns = Namespace::parse(form.namespace.trim())
        .map_err(|e| ctx.fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    schema_target(ns, form.group.trim(), form.data_id.trim()).map_err(|e| ctx.service_error(e))
}

pub(super) fn edit_url(target: &SchemaTarget) -> String {
    let mut link = form_urlencoded::Serializer::new(String::new());
    link.append_pair("namespace", target.namespace.as_str())
        .append_pair("group", &target.group)
        .append_pair("data_id", &target.data_id);
    format!("/console/schemas/edit?{}", link.finish())
}

/// Every schema the user sees, and the form to attach one.
pub async fn schemas(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let list = state
        .service
        .schemas(&session.caller, None)
        .map_err(|e| ctx.service_error(e))?;
    let body = html! {
        h1 { (ctx.t("Schemas")) }
        (done(ctx, q.done.as_deref()))
        p.hint { (ctx.t("A JSON Schema (draft 2020-12) attached to a config, or to every config whose group and data id match (* matches anything), is checked on every publish, rollback, gray release and import of JSON, YAML, TOML and properties content. Every schema that matches a config applies.")) }
        @if list.is_empty() {
            p #no-schemas { (ctx.t("No schema is attached yet.")) }
        } @else {
            table #schemas {
                thead { tr {
                    th { (ctx.t("Namespace")) }
                    th { (ctx.t("Group")) }
                    th { (ctx.t("Data ID")) }
                    th { (ctx.t("Version")) }
                    th.hide-narrow { (ctx.t("Changed by")) }
                    th.hide-narrow { (ctx.t("Changed at")) }
                } }
                tbody {
                    @for s in &list {
                        tr {
                            td.key { a href=(edit_url(&s.target)) { (s.target.namespace.as_str()) } }
                            td { (s.target.group) }
                            td { (s.target.data_id) }
                            td { (s.version) }
                            td.hide-narrow { (s.updated_by) }
                            td.hide-narrow { (time_of(s.updated_at)) }
                        }
                    }
                }
            }
        }
        h2 { (ctx.t("Attach a schema")) }
        (schema_form(ctx, &SchemaForm {
            namespace: "public".into(),
            group: "*".into(),
            data_id: "*.yaml".into(),
            expect_version: "0".into(),
            ..SchemaForm::default()
        }, true))
    };
    Ok(layout(ctx, ctx.t("Schemas"), body, true).into_response())
}

fn schema_form(ctx: &Ctx, form: &SchemaForm, new: bool) -> maud::Markup {
    html! {
        form.panel #schema-form method="post" action="/console/schemas/set" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            input type="hidden" name="expect_version" value=(form.expect_version);
            @if new {
                div.grid2 {
                    div {
                        label for="schema-namespace" { (ctx.t("Namespace")) }
                        input #schema-namespace type="text" name="namespace" value=(form.namespace) required;
                    }
                    div {
                        label for="schema-group" { (ctx.t("Group")) }
                        input #schema-group type="text" name="group" value=(form.group) required;
                    }
                }
                label for="schema-data-id" { (ctx.t("Data ID")) }
                input #schema-data-id type="text" name="data_id" value=(form.data_id) required;
            } @else {
                input type="hidden" name="namespace" value=(form.namespace);
                input type="hidden" name="group" value=(form.group);
                input type="hidden" name="data_id" value=(form.data_id);
            }
            label for="schema" { (ctx.t("JSON Schema")) }
            textarea #schema name="schema" data-editor data-format="json" rows="14" { (form.schema) }
            label for="comment" { (ctx.t("Message (optional)")) }
            input #comment type="text" name="comment" value=(form.comment);
            label.check {
                input #force type="checkbox" name="force" value="on" checked[form.force == "on"];
                " " (ctx.t("Attach even if configs as they are now break it"))
            }
            div.actions {
                button.primary type="submit" { (ctx.t("Save schema")) }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct TargetQuery {
    namespace: String,
    group: String,
    data_id: String,
    done: Option<String>,
}

/// One schema: its document to change, its versions, and the button to detach it.
pub async fn edit_page(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<TargetQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let form = SchemaForm {
        namespace: q.namespace.clone(),
        group: q.group.clone(),
        data_id: q.data_id.clone(),
        ..SchemaForm::default()
    };
    let target = target_of(ctx, &form)?;
    let current = state
        .service
        .schema(&session.caller, &target)
        .map_err(|e| ctx.service_error(e))?;
    let form = SchemaForm {
        schema: pretty(&current.body),
        expect_version: current.version.to_string(),
        ..form
    };
    let flash = done(ctx, q.done.as_deref());
    edit_view(&state, &session, &target, &form, Err(flash), StatusCode::OK).await
}

fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| body.to_owned())
}

async fn edit_view(
    state: &SharedState,
    session: &Session,
    target: &SchemaTarget,
    form: &SchemaForm,
    // A refusal to show, or the flash of what was done.
    problem: Result<&ServiceError, maud::Markup>,
    status: StatusCode,
) -> Reply {
    let ctx = &session.ctx;
    let versions = state
        .service
        .schema_history(&session.caller, target)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let attached = state.service.schema(&session.caller, target).is_ok();
    let title = target.to_string();
    let body = html! {
        h1.key { (ctx.t("Schema")) " " (title) }
        @match &problem {
            Err(flash) => (flash),
            Ok(problem) => div.flash.error role="alert" #problem {
                @match problem {
                    ServiceError::SchemaRejectsContent { count, listed } => {
                        p { (ctx.t("Configs as they are now break this schema; fix them, or attach it anyway.")) }
                        ul.schema-problems {
                            @for line in listed { li { code { (line) } } }
                            @if *count > listed.len() { li { "… " (count - listed.len()) } }
                        }
                    }
                    other => (other.to_string()),
                }
            },
        }
        (schema_form(ctx, form, !attached && versions.is_empty()))
        @if attached {
            form method="post" action="/console/schemas/remove" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="namespace" value=(target.namespace.as_str());
                input type="hidden" name="group" value=(target.group);
                input type="hidden" name="data_id" value=(target.data_id);
                button.danger type="submit" data-confirm=(ctx.t("Detach this schema?")) { (ctx.t("Detach")) }
            }
        }
        @if !versions.is_empty() {
            h2 { (ctx.t("Versions")) }
            table #schema-versions {
                thead { tr {
                    th { (ctx.t("Version")) }
                    th { (ctx.t("Change")) }
                    th { (ctx.t("By")) }
                    th { (ctx.t("At")) }
                    th { (ctx.t("Message")) }
                } }
                tbody {
                    @for v in &versions {
                        tr {
                            td { (v.version) }
                            td { (v.op) }
                            td { (v.operator) }
                            td { (time_of(v.created_at)) }
                            td { (v.comment) }
                        }
                    }
                }
            }
        }
    };
    Ok((status, layout(ctx, &title, body, true)).into_response())
}

pub async fn set(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<SchemaForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let target = target_of(ctx, &form)?;
    let input = SchemaInput {
        body: form.schema.trim().to_owned(),
        force: form.force == "on",
        expect_version: form.expect_version.trim().parse().ok(),
        comment: form.comment.trim().to_owned(),
    };
    let by = crate::api::actor_via("console", &session.caller, &addr);
    match state.service.set_schema(target.clone(), input, &by).await {
        Ok(record) => {
            Ok(Redirect::to(&format!("{}&done=saved", edit_url(&record.target))).into_response())
        }
        Err(e @ (ServiceError::SchemaRejectsContent { .. } | ServiceError::InvalidSchema(_))) => {
            let status = crate::api::error::status_of(e.kind());
            edit_view(&state, &session, &target, &form, Ok(&e), status).await
        }
        Err(e) => Err(ctx.service_error(e)),
    }
}

pub async fn remove(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    ConsoleForm(form): ConsoleForm<SchemaForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let target = target_of(ctx, &form)?;
    let by = crate::api::actor_via("console", &session.caller, &addr);
    state
        .service
        .remove_schema(target, form.comment.trim().to_owned(), &by)
        .await
        .map_err(|e| ctx.service_error(e))?;
    Ok(Redirect::to("/console/schemas?done=deleted").into_response())
}
