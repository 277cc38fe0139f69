//! The web console at `/console/`: server-rendered pages over the one service, for the
//! people who manage configuration from a browser. What the console shares with every
//! page lives here: its routes, the session cookie and form tokens, the security
//! headers, the compiled-in assets, and how a failure becomes a page.

mod admin;
mod i18n;
mod pages;
mod permissions;
pub(crate) mod reviews;
mod schemas;
mod webhooks;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};

pub use i18n::Lang;

use super::SharedState;
use crate::auth::{AuthError, Caller};
use crate::service::ServiceError;

/// Where the console lives; every route and link is under it.
pub const ROOT: &str = "/console";
const SESSION_COOKIE: &str = "cairn_session";
const LANG_COOKIE: &str = "cairn_lang";

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/configs") }))
        .route(ROOT, get(|| async { Redirect::to("/console/configs") }))
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/configs") }),
        )
        .route(
            "/console/login",
            get(pages::login_page)
                .post(pages::login)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::api::UNAUTHENTICATED_BODY_LIMIT,
                )),
        )
        .route("/console/logout", axum::routing::post(pages::logout))
        .route("/console/lang/{lang}", get(set_lang))
        .route("/console/assets/{file}", get(asset))
        .route("/console/configs", get(pages::configs))
        .route("/console/new", get(pages::new_page).post(pages::create))
        .route("/console/c/{ns}/{group}/{data_id}", get(pages::config))
        .route(
            "/console/c/{ns}/{group}/{data_id}/edit",
            get(pages::edit_page).post(pages::edit),
        )
        .route(
            "/console/c/{ns}/{group}/{data_id}/delete",
            get(pages::delete_page).post(pages::delete),
        )
        .route(
            "/console/c/{ns}/{group}/{data_id}/history",
            get(pages::history),
        )
        .route(
            "/console/c/{ns}/{group}/{data_id}/listeners",
            get(pages::listeners),
        )
        .route("/console/listeners", get(pages::client_listeners))
        .route("/console/namespaces", get(admin::namespaces))
        .route("/console/namespaces/create", post(admin::create_namespace))
        .route("/console/namespaces/update", post(admin::update_namespace))
        .route(
            "/console/namespaces/apollo",
            post(admin::set_apollo_anonymous),
        )
        .route("/console/namespaces/delete", post(admin::delete_namespace))
        .route("/console/namespaces/review", post(admin::set_review))
        .route("/console/namespaces/export", get(admin::export_namespace))
        .route("/console/namespaces/import", post(admin::import_namespace))
        .route("/console/schemas", get(schemas::schemas))
        .route("/console/schemas/edit", get(schemas::edit_page))
        .route("/console/schemas/set", post(schemas::set))
        .route("/console/schemas/remove", post(schemas::remove))
        .route("/console/reviews", get(reviews::reviews))
        .route("/console/reviews/view", get(reviews::view))
        .route("/console/reviews/approve", post(reviews::approve))
        .route("/console/reviews/reject", post(reviews::reject))
        .route("/console/reviews/rebase", post(reviews::rebase))
        .route("/console/webhooks", get(webhooks::webhooks))
        .route("/console/webhooks/add", post(webhooks::add))
        .route("/console/webhooks/remove", post(webhooks::remove))
        .route("/console/webhooks/deliveries", get(webhooks::deliveries))
        .route("/console/webhooks/redeliver", post(webhooks::redeliver))
        .route("/console/grants", get(permissions::grants))
        .route("/console/audit", get(permissions::audit))
        .route("/console/grants/set", post(permissions::set_grant))
        .route("/console/grants/revoke", post(permissions::revoke_grant))
        .route("/console/roles/add", post(permissions::add_member))
        .route("/console/roles/remove", post(permissions::remove_member))
        .route("/console/users", get(admin::users))
        .route("/console/users/create", post(admin::create_user))
        .route("/console/users/password", post(admin::reset_password))
        .route("/console/users/role", post(admin::set_role))
        .route("/console/users/delete", post(admin::delete_user))
        .route(
            "/console/password",
            get(admin::password_page).post(admin::change_password),
        )
        .route("/console/access-keys", get(admin::access_keys))
        .route(
            "/console/access-keys/create",
            post(admin::create_access_key),
        )
        .route("/console/access-keys/set", post(admin::set_access_key))
        .route(
            "/console/access-keys/delete",
            post(admin::delete_access_key),
        )
        .route("/console/cluster", get(admin::cluster))
        .route(
            "/console/c/{ns}/{group}/{data_id}/gray",
            get(pages::gray_page).post(pages::gray_submit),
        )
        .route(
            "/console/c/{ns}/{group}/{data_id}/gray/{action}",
            post(pages::gray_end),
        )
        .route("/console/c/{ns}/{group}/{data_id}/diff", get(pages::diff))
        .route(
            "/console/c/{ns}/{group}/{data_id}/rollback",
            get(pages::rollback_page).post(pages::rollback),
        )
        .layer(axum::middleware::map_response(secure_headers))
}

/// Headers on every console answer: scripts and styles only from the node itself (no
/// inline script can run, so an escaped-wrongly value still could not), never framed,
/// never sniffed, pages never cached.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
    response
}

/// The console's files, compiled into the binary: it needs nothing from any other host.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/console.js"),
    ),
    (
        "codemirror.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/codemirror.js"),
    ),
    (
        "codemirror.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/codemirror.css"),
    ),
    (
        "mode-yaml.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/mode-yaml.js"),
    ),
    (
        "mode-javascript.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/mode-javascript.js"),
    ),
    (
        "mode-properties.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/mode-properties.js"),
    ),
    (
        "mode-toml.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/mode-toml.js"),
    ),
    (
        "mode-xml.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/mode-xml.js"),
    ),
    (
        "codemirror-LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../../console/vendor/codemirror/LICENSE"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                // Assets change only with the binary; an hour keeps upgrades visible.
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// `GET /console/lang/{lang}?back=…`: remembers the language and goes back.
async fn set_lang(
    Path(lang): Path<String>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(lang) = Lang::parse(&lang) else {
        return (StatusCode::NOT_FOUND, "no such language").into_response();
    };
    let back = query
        .get("back")
        .map(String::as_str)
        .filter(|b| is_console_path(b))
        .unwrap_or("/console/configs");
    let cookie = format!(
        "{LANG_COOKIE}={}; Path={ROOT}; Max-Age=31536000; SameSite=Strict",
        lang.code()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(back)).into_response()
}

/// Whether `path` is a console page, so a redirect to it cannot leave the node.
fn is_console_path(path: &str) -> bool {
    path.starts_with("/console/") && !path.contains("//") && !path.contains('\\')
}

/// Whether two secrets are equal, compared in constant time: a form token is a
/// secret of its session.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie of the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// What every page is rendered with: the language, and for a logged-in user who they
/// are, the form token, and the page's own path (for the language switch).
#[derive(Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub user: Option<Caller>,
    pub csrf: String,
    pub path: String,
}

impl Ctx {
    pub fn t(&self, en: &'static str) -> &'static str {
        self.lang.t(en)
    }

    /// A page failure with the message a person can act on.
    pub fn fail(&self, status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
            ctx: self.clone(),
        }
    }

    pub fn service_error(&self, e: ServiceError) -> PageError {
        let status = crate::api::error::status_of(e.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "console request failed");
        }
        self.fail(status, e.to_string())
    }

    /// The form token check: a form of this session, not one another site made.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if !self.csrf.is_empty() && same_secret(sent, &self.csrf) {
            Ok(())
        } else {
            Err(self.fail(
                StatusCode::FORBIDDEN,
                "this form has expired or came from another site; reload the page and try again",
            ))
        }
    }
}

fn lang_of(parts: &Parts) -> Lang {
    cookie(&parts.headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .or_else(|| {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(Lang::from_accept)
        })
        .unwrap_or_default()
}

fn path_of(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned())
}

/// A form body whose refusal is a console page with the reason, like every other
/// failure, not a line of text.
pub struct ConsoleForm<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ConsoleForm<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let ctx = Ctx {
            lang: lang_of(&parts),
            user: None,
            csrf: String::new(),
            path: path_of(&parts),
        };
        let request = axum::extract::Request::from_parts(parts, body);
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(form)) => Ok(ConsoleForm(form)),
            Err(e) => Err(ctx.fail(e.status(), e.body_text()).into_response()),
        }
    }
}

/// A page for anyone: the language and path, nobody logged in.
pub struct Anonymous(pub Ctx);

impl FromRequestParts<SharedState> for Anonymous {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Anonymous(Ctx {
            lang: lang_of(parts),
            user: None,
            csrf: String::new(),
            path: path_of(parts),
        }))
    }
}

/// A page for a logged-in user: the session cookie names a live session. Anyone else
/// is sent to the login page, which brings them back here afterwards.
pub struct Session {
    pub ctx: Ctx,
    pub caller: Caller,
    pub id: String,
    /// Where the request came from, for the audit trail.
    pub source: Option<std::net::IpAddr>,
}

impl Session {
    /// The origin of a read through the console.
    pub fn origin(&self) -> crate::service::Origin {
        crate::api::Source(self.source).via("console")
    }
}

impl FromRequestParts<SharedState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Response> {
        let lang = lang_of(parts);
        let path = path_of(parts);
        let to_login = || {
            let next = if parts.method == axum::http::Method::GET {
                path.clone()
            } else {
                "/console/configs".to_owned()
            };
            let target = format!(
                "/console/login?next={}",
                percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
            );
            Redirect::to(&target).into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        match state.auth.session(id).await {
            Ok(session) => Ok(Session {
                ctx: Ctx {
                    lang,
                    user: Some(session.caller.clone()),
                    csrf: session.csrf,
                    path,
                },
                caller: session.caller,
                id: id.to_owned(),
                source: crate::api::source_of(parts, state),
            }),
            Err(AuthError::InvalidToken | AuthError::Expired) => Err(to_login()),
            Err(e) => {
                let ctx = Ctx {
                    lang,
                    user: None,
                    csrf: String::new(),
                    path,
                };
                Err(ctx
                    .fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    .into_response())
            }
        }
    }
}

/// The cookie that holds a session; `Secure` when the console was reached over TLS.
fn session_cookie(id: &str, secure: bool, max_age_secs: u64) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path={ROOT}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A failed console request, shown as a page with its message.
pub struct PageError {
    status: StatusCode,
    message: String,
    ctx: Ctx,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (title) }
            div.flash.error role="alert" { (self.message) }
            p { a href="/console/configs" { (self.ctx.t("Configs")) } }
        };
        (self.status, layout(&self.ctx, title, body, false)).into_response()
    }
}

/// A whole page: the top bar and `body`. `editor` loads the code editor's scripts.
pub fn layout(ctx: &Ctx, title: &str, body: Markup, editor: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.html()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cairn" }
                @if editor {
                    link rel="stylesheet" href="/console/assets/codemirror.css";
                }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                header.top {
                    a.brand href="/console/configs" { "Cairn" }
                    nav {
                        @if let Some(user) = &ctx.user {
                            a href="/console/configs" { (ctx.t("Configs")) }
                            a href="/console/reviews" { (ctx.t("Reviews")) }
                            a href="/console/namespaces" { (ctx.t("Namespaces")) }
                            a href="/console/schemas" { (ctx.t("Schemas")) }
                            a href="/console/webhooks" { (ctx.t("Webhooks")) }
                            a href="/console/listeners" { (ctx.t("Who listens")) }
                            a href="/console/grants" { (ctx.t("Permissions")) }
                            @if user.role == crate::auth::Role::Admin {
                                a href="/console/users" { (ctx.t("Users")) }
                                a href="/console/access-keys" { (ctx.t("Access keys")) }
                                a href="/console/audit" { (ctx.t("Audit log")) }
                            }
                            a href="/console/cluster" { (ctx.t("Cluster")) }
                        }
                    }
                    span.switch {
                        span.muted { (ctx.t("Language")) ":" }
                        @let back = percent_encoding::utf8_percent_encode(&ctx.path, percent_encoding::NON_ALPHANUMERIC).to_string();
                        a href={ "/console/lang/en?back=" (back) } lang="en" { "English" }
                        a href={ "/console/lang/zh?back=" (back) } lang="zh-CN" { "中文" }
                    }
                    @if let Some(user) = &ctx.user {
                        a.who href="/console/password" title=(ctx.t("Change your password")) { (user.username.as_str()) " (" (user.role.as_str()) ")" }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            button.link type="submit" { (ctx.t("Log out")) }
                        }
                    }
                }
                main { (body) }
                @if editor {
                    script src="/console/assets/codemirror.js" {}
                    script src="/console/assets/mode-yaml.js" {}
                    script src="/console/assets/mode-javascript.js" {}
                    script src="/console/assets/mode-properties.js" {}
                    script src="/console/assets/mode-toml.js" {}
                    script src="/console/assets/mode-xml.js" {}
                }
                script src="/console/assets/console.js" {}
            }
        }
    }
}
