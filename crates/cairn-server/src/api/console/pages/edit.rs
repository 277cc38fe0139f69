//! Creating and editing a config: the editor, validation at a line, the review of
//! the diff, and compare-and-set publishing that shows a conflict to merge.

use super::*;

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
    /// `on` when the config is to be sensitive (a checkbox).
    #[serde(default)]
    sensitive: String,
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
    let names = namespace_names(&state, &session).await?;
    let form = EditForm {
        namespace: q.ns.unwrap_or_else(|| "public".into()),
        group: DEFAULT_GROUP.into(),
        ..EditForm::default()
    };
    Ok(editor(
        &state,
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
            let names = namespace_names(&state, &session).await?;
            return Ok(editor(
                &state,
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
    let key = key_of(&state, &session, path)?;
    let c = existing(&state, ctx, &key)?;
    let form = EditForm {
        content: c.content.clone(),
        format: c.format.as_str().into(),
        description: c.description.clone(),
        tags: c.tags.join(", "),
        sensitive: if c.sensitive {
            "on".into()
        } else {
            String::new()
        },
        base_md5: c.md5.clone(),
        base_revision: c.revision.get().to_string(),
        ..EditForm::default()
    };
    Ok(editor(
        &state,
        ctx,
        Some(&key),
        &form,
        &[],
        None,
        StatusCode::OK,
    ))
}

pub async fn edit(
    State(state): State<SharedState>,
    session: Session,
    addr: ClientAddr,
    Path(path): Path<(String, String, String)>,
    ConsoleForm(form): ConsoleForm<EditForm>,
) -> Reply {
    session.ctx.check_csrf(&form.csrf)?;
    let key = key_of(&state, &session, path)?;
    submit(&state, &session, &addr, key, form, false).await
}

/// The namespaces the session's user sees, for the new-config form.
async fn namespace_names(state: &SharedState, session: &Session) -> Result<Vec<String>, PageError> {
    Ok(state
        .service
        .namespaces(&session.caller)
        .await
        .map_err(|e| session.ctx.service_error(e))?
        .iter()
        .map(|n| n.record.name.to_string())
        .collect())
}

/// What is wrong with an edit, shown above the editor.
pub(super) enum Problem {
    Content(FormatError),
    /// The content breaks a schema: each location and rule on a line of its own.
    Schema(crate::schemas::Violation),
    Message(String),
}

/// What is wrong, above an editor; schema problems one location per line.
pub(super) fn problem_view(ctx: &Ctx, problem: Option<&Problem>) -> Markup {
    html! {
        @match problem {
            Some(Problem::Content(e)) => div.flash.error role="alert" #problem { (e.to_string()) },
            Some(Problem::Message(m)) => div.flash.error role="alert" #problem { (m) },
            Some(Problem::Schema(v)) => div.flash.error role="alert" #problem {
                p { (ctx.t("The content breaks its schema:")) " " (v.schemas.join(", ")) }
                ul.schema-problems { @for line in &v.problems { li { code { (line) } } } }
            },
            None => {},
        }
    }
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
        namespace_names(state, session).await?
    } else {
        Vec::new()
    };
    let shown_key = (!creating).then_some(&key);
    // A new config starts from nothing: what the form claims as its base is shown only
    // to someone who may read the config it names.
    let base = if state
        .service
        .may_read(&session.caller, &key, session.origin())
        .is_ok()
    {
        base_content(state, &session.caller, &key, &form).await
    } else {
        None
    };
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
                    state,
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
                    state,
                    ctx,
                    shown_key,
                    &form,
                    &names,
                    Some(Problem::Content(e)),
                    StatusCode::BAD_REQUEST,
                ));
            }
            let marked = form.sensitive == "on";
            if let Err(v) = state
                .service
                .check_schemas(&key, effective, &form.content, marked)
            {
                return Ok(editor(
                    state,
                    ctx,
                    shown_key,
                    &form,
                    &names,
                    Some(Problem::Schema(v)),
                    StatusCode::BAD_REQUEST,
                ));
            }
            Ok(review(
                ctx,
                &key,
                &form,
                base.as_deref().unwrap_or(""),
                creating,
                state.service.requires_review(&key.namespace),
            ))
        }
        "publish" => {
            let tags = list_of(&form.tags);
            let expect = expect_of(&form.base_md5);
            let input = PublishInput {
                content: form.content.clone(),
                format,
                description: Some(form.description.trim().to_owned()),
                tags: Some(tags),
                sensitive: Some(form.sensitive == "on"),
                expect,
                force: false,
                comment: Some(form.message.trim().to_owned()).filter(|m| !m.is_empty()),
                emergency: false,
            };
            match state
                .service
                .propose_publish(key.clone(), input, &actor(session, addr))
                .await
            {
                Ok(Proposal::Opened(request)) => Ok(crate::api::console::reviews::opened(&request)),
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
                    state,
                    ctx,
                    shown_key,
                    &form,
                    &names,
                    Some(Problem::Content(e)),
                    StatusCode::BAD_REQUEST,
                )),
                Err(ServiceError::SchemaViolation(v)) => Ok(editor(
                    state,
                    ctx,
                    shown_key,
                    &form,
                    &names,
                    Some(Problem::Schema(v)),
                    StatusCode::BAD_REQUEST,
                )),
                Err(e) => {
                    let status = ctx.service_error(e);
                    let problem = Problem::Message(status.message.clone());
                    Ok(editor(
                        state,
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
        _ => Ok(editor(
            state,
            ctx,
            shown_key,
            &form,
            &names,
            None,
            StatusCode::OK,
        )),
    }
}

/// The content the edit started from: the revision it names, or nothing for a new
/// config.
async fn base_content(
    state: &SharedState,
    caller: &crate::auth::Caller,
    key: &ConfigKey,
    form: &EditForm,
) -> Option<String> {
    if form.base_md5.is_empty() {
        return None;
    }
    if let Some(current) = state.service.get(key).filter(|c| c.md5 == form.base_md5) {
        return Some(current.content.clone());
    }
    let revision = form.base_revision.trim().parse::<Revision>().ok()?;
    state
        .service
        .history_entry(caller, key, revision)
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
        input type="hidden" name="sensitive" value=(form.sensitive);
        input type="hidden" name="base_md5" value=(form.base_md5);
        input type="hidden" name="base_revision" value=(form.base_revision);
        @if with_content {
            textarea.hidden-field name="content" hidden { (form.content) }
        }
    }
}

fn editor(
    state: &SharedState,
    ctx: &Ctx,
    key: Option<&ConfigKey>,
    form: &EditForm,
    namespaces: &[String],
    problem: Option<Problem>,
    status: StatusCode,
) -> Response {
    let page = editor_below(state, ctx, key, form, namespaces, problem, html! {});
    (status, page).into_response()
}

/// The editor, with `above` between the heading and the form.
fn editor_below(
    state: &SharedState,
    ctx: &Ctx,
    key: Option<&ConfigKey>,
    form: &EditForm,
    namespaces: &[String],
    problem: Option<Problem>,
    above: Markup,
) -> Markup {
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
    let schemas = match key {
        Some(key) => state.service.schemas_for(key),
        None => Vec::new(),
    };
    let body = html! {
        @match key {
            Some(key) => (key_heading(key)),
            None => h1 { (ctx.t("New config")) },
        }
        (problem_view(ctx, problem.as_ref()))
        @if !schemas.is_empty() {
            p.hint #applied-schemas {
                (ctx.t("Checked against:")) " "
                @for (i, s) in schemas.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href=(super::super::schemas::edit_url(&s.target)) { (s.target) " (v" (s.version) ")" }
                }
            }
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
            label.check {
                input #sensitive type="checkbox" name="sensitive" value="on" checked[form.sensitive == "on"];
                " " (ctx.t("Sensitive: only users with read-secret see the content"))
            }
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
    layout(ctx, &title, body, true)
}

/// The review step: what will change, an optional message, and the publish button
/// (which submits the change for review where the namespace requires it).
fn review(
    ctx: &Ctx,
    key: &ConfigKey,
    form: &EditForm,
    base: &str,
    creating: bool,
    reviewed: bool,
) -> Response {
    let action = if creating {
        "/console/new".to_owned()
    } else {
        format!("{}/edit", config_url(key))
    };
    let body = html! {
        (key_heading(key))
        @if reviewed {
            p { (ctx.t("This namespace requires review: this change will wait for another person with the approve level to release it.")) }
        } @else {
            p { (ctx.t("This is what will be published:")) }
        }
        (diff_view(ctx, base, &form.content, DiffLayout::Unified))
        form #review method="post" action=(action) {
            (carried(ctx, form, true))
            label for="message" { (ctx.t("Message (optional)")) }
            input #message type="text" name="message" value=(form.message);
            div.actions {
                button.primary type="submit" name="step" value="publish" {
                    @if reviewed { (ctx.t("Submit for review")) } @else { (ctx.t("Publish")) }
                }
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
    let page = editor_below(
        state,
        ctx,
        (!creating).then_some(key),
        &form,
        names,
        Some(Problem::Message(message.to_owned())),
        diffs,
    );
    (StatusCode::CONFLICT, page).into_response()
}
