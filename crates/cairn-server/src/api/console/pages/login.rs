//! Logging in and out of the console.

use super::*;

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_page(Anonymous(ctx): Anonymous, Query(q): Query<LoginQuery>) -> Response {
    login_form(&ctx, q.next.as_deref(), "", None, StatusCode::OK)
}

/// The cookie that ties a login form to the browser it was served to.
const LOGIN_COOKIE: &str = "cairn_login";

fn login_form(
    ctx: &Ctx,
    next: Option<&str>,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    // No session yet to derive a form token from, so the form and a cookie carry the
    // same random value (another site can make a browser post the form, but cannot
    // read or set the cookie, which SameSite=Strict also keeps off its requests): a
    // login only a page of this node started.
    let token = {
        use rand::RngCore as _;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let cookie = format!(
        "{LOGIN_COOKIE}={token}; Path=/console/login; Max-Age=3600; HttpOnly; SameSite=Strict"
    );
    let body = html! {
        div.login.panel {
            h1 { "Cairn" }
            @if let Some(error) = error {
                div.flash.error role="alert" { (error) }
            }
            form method="post" action="/console/login" {
                input type="hidden" name="login_token" value=(token);
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
    (
        status,
        [(header::SET_COOKIE, cookie)],
        layout(ctx, ctx.t("Log in"), body, false),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    login_token: String,
}

pub async fn login(
    State(state): State<SharedState>,
    Anonymous(ctx): Anonymous,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<LoginForm>,
) -> Response {
    let next = Some(form.next.as_str()).filter(|n| is_console_path(n));
    let served = super::super::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if form.login_token.is_empty() || !super::super::same_secret(served, &form.login_token) {
        return login_form(
            &ctx,
            next,
            &form.username,
            Some("this login form has expired or came from another site; log in again here"),
            StatusCode::FORBIDDEN,
        );
    }
    let opened = state
        .auth
        .open_session(
            &form.username,
            &Secret::from(form.password),
            addr.parse().ok(),
        )
        .await;
    state
        .auth
        .audit_login(&form.username, &addr, "console", &opened, true);
    match opened {
        Ok((id, _)) => {
            // Served over TLS, or behind a TLS-terminating proxy the node trusts, the
            // cookie is Secure.
            let secure = state.tls.is_some()
                || state.settings.trust_forwarded_for
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
        Err(e @ AuthError::Throttled(_)) => login_form(
            &ctx,
            next,
            &form.username,
            Some(&e.to_string()),
            StatusCode::TOO_MANY_REQUESTS,
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
    pub(super) csrf: String,
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
