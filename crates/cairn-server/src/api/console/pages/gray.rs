//! Gray releases: start one, see whom it reaches, promote or abandon it.

use super::*;

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

/// The gray release of a config: its rules, the clients that read it now, the diff from
/// the main content, promote and abandon; or, without one, the form to start one.
pub async fn gray_page(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(&state, &session, path)?;
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
        (super::edit::problem_view(ctx, problem.as_ref()))
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
    let key = key_of(&state, &session, path)?;
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
                Err(ServiceError::SchemaViolation(v)) => invalid(Problem::Schema(v)),
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

/// `POST …/gray/promote` or `…/gray/abandon`: ends the gray release one way or the
/// other.
pub async fn gray_end(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path((ns, group, data_id, action)): Path<(String, String, String, String)>,
    ConsoleForm(form): ConsoleForm<CsrfForm>,
) -> Reply {
    let ctx = &session.ctx;
    ctx.check_csrf(&form.csrf)?;
    let key = key_of(&state, &session, (ns, group, data_id))?;
    let actor = actor(&session, &addr);
    let done = match action.as_str() {
        "promote" => state
            .service
            .gray_promote(key.clone(), &actor)
            .await
            .map(drop),
        "abandon" => state
            .service
            .gray_abandon(key.clone(), &actor)
            .await
            .map(drop),
        _ => {
            return Err(ctx.fail(
                StatusCode::NOT_FOUND,
                "a gray release is promoted or abandoned",
            ))
        }
    };
    done.map_err(|e| ctx.service_error(e))?;
    let flash = if action == "promote" {
        "promoted"
    } else {
        "abandoned"
    };
    Ok(Redirect::to(&format!("{}?done={flash}", config_url(&key))).into_response())
}
