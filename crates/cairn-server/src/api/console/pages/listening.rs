//! Who listens: a config's listeners on every node, and one client's watches.

use super::*;

pub async fn listeners(
    State(state): State<SharedState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
) -> Reply {
    let ctx = &session.ctx;
    let key = key_of(&state, &session, path)?;
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
        Some(crate::api::peers::client_watches(&state, &session.caller, ip, Some(&token)).await)
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
pub(super) fn cluster_token(state: &SharedState, session: &Session) -> Result<String, PageError> {
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
