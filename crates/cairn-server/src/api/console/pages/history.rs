//! Diffs (unified and side by side), history, rollback and delete.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiffLayout {
    Unified,
    Split,
}

pub(crate) fn diff_view(ctx: &Ctx, old: &str, new: &str, layout: DiffLayout) -> Markup {
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
    let key = key_of(&state, &session, path)?;
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
        .history_entry(&session.caller, &key, from)
        .await
        .map_err(|e| ctx.service_error(e))?;
    let (new_content, to_label) = match to {
        Some(to) => (
            state
                .service
                .history_entry(&session.caller, &key, to)
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
    let key = key_of(&state, &session, path)?;
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
    let key = key_of(&state, &session, path)?;
    let revision = revision_param(ctx, q.revision.as_deref())?;
    let entry = state
        .service
        .history_entry(&session.caller, &key, revision)
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

pub async fn rollback(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(form): ConsoleForm<ChangeForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let key = key_of(&state, &session, path)?;
    let revision = revision_param(ctx, Some(&form.revision))?;
    let proposal = state
        .service
        .propose_rollback(
            key.clone(),
            revision,
            expect_of(&form.md5),
            &actor(&session, &addr),
            None,
        )
        .await
        .map_err(|e| ctx.service_error(e))?;
    if let Proposal::Opened(request) = proposal {
        return Ok(crate::api::console::reviews::opened(&request));
    }
    Ok(Redirect::to(&format!("{}?done=rolled_back", config_url(&key))).into_response())
}

pub async fn delete_page(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(&state, &session, path)?;
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
    let key = key_of(&state, &session, path)?;
    let proposal = state
        .service
        .propose_delete(
            key.clone(),
            expect_of(&form.md5),
            &actor(&session, &addr),
            None,
            None,
        )
        .await
        .map_err(|e| ctx.service_error(e))?;
    if let Proposal::Opened(request) = proposal {
        return Ok(crate::api::console::reviews::opened(&request));
    }
    Ok(Redirect::to(&format!(
        "/console/configs?ns={}&done=deleted",
        enc(key.namespace.as_str())
    ))
    .into_response())
}
