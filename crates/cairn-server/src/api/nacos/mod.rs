//! The Nacos compatibility surface: Nacos's v1 and v2 HTTP config API on the same port
//! and paths, so existing Nacos clients work unchanged. It maps onto the one service:
//! Nacos tenant → namespace (`""` and `public` → `public`), group → group, dataId →
//! data id, `type` → format, `betaIps` → a gray release by IP.
//!
//! Answers follow Nacos's own, bodies and headers included, with one deliberate
//! difference: a client's mistake is never a 500 (Nacos answers some with 500).

mod auth;
pub(crate) mod common;
mod error;
pub(crate) mod v1;
mod v2;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cairn_core::{ConfigKey, DataId, Format, Group, Namespace};
use time::OffsetDateTime;

pub use error::NacosError;
use error::Result;

use super::SharedState;
use crate::auth::{AuthError, Caller};
use crate::service::ServiceError;
use crate::settings::Secret;

pub fn router() -> Router<SharedState> {
    v1::router().merge(v2::router()).merge(auth::router())
}

/// Request parameters as Nacos reads them: the query string and a form body, merged
/// (the query wins); blank values count as absent.
pub struct Params {
    values: HashMap<String, String>,
    path: String,
}

impl FromRequest<SharedState> for Params {
    type Rejection = NacosError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self> {
        let mut params = Params::of(request.uri(), request.headers(), None)?;
        if is_form(request.headers()) {
            let body = Bytes::from_request(request, state).await.map_err(|e| {
                match crate::api::body::too_slow(&e) {
                    Some(slow) => NacosError::invalid(slow.to_string()),
                    None => NacosError::BodyTooLarge,
                }
            })?;
            params.add(&body)?;
        }
        Ok(params)
    }
}

/// Whether a request's body is a form, which Nacos reads parameters from.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// `name=value` pairs of a query or form, decoded; a name or value that is not UTF-8
/// once decoded is refused (storing it with replacement characters would change what
/// the client sent).
fn strict_pairs(text: &[u8]) -> Result<Vec<(String, String)>> {
    let decode = |part: &[u8]| {
        crate::api::decode_component(part)
            .map(std::borrow::Cow::into_owned)
            .ok_or(())
    };
    text.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name)
                .map_err(|_| NacosError::invalid("a parameter name is not UTF-8 once decoded"))?;
            let value = decode(value).map_err(|_| {
                NacosError::invalid(format!("parameter {name} is not UTF-8 once decoded"))
            })?;
            Ok((name, value))
        })
        .collect()
}

impl Params {
    /// The parameters of a request with this target and headers, and this body read
    /// whole; the body counts only if the headers say it is a form.
    pub fn of(uri: &axum::http::Uri, headers: &HeaderMap, body: Option<&[u8]>) -> Result<Self> {
        let mut params = Params {
            values: HashMap::new(),
            path: uri.path().to_owned(),
        };
        if let Some(query) = uri.query() {
            params.add(query.as_bytes())?;
        }
        if let Some(form) = body.filter(|_| is_form(headers)) {
            params.add(form)?;
        }
        Ok(params)
    }

    /// Adds the pairs of a query or form; those already given win. Blank values count
    /// as absent, so they are skipped: a blank query value must not hide the form's.
    fn add(&mut self, text: &[u8]) -> Result<()> {
        for (k, v) in strict_pairs(text)? {
            if !v.trim().is_empty() {
                self.values.entry(k).or_insert(v);
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A required parameter, or Nacos's refusal of its absence (as a 400: a client
    /// mistake, where Nacos itself answers 500).
    pub fn required(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| NacosError::missing(name))
    }

    /// A numeric parameter if given, or Nacos's message for a malformed one.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| NacosError::invalid(format!("invalid {name} : {v}")))
            })
            .transpose()
    }

    /// A required numeric parameter.
    pub fn required_number<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        self.number(name)?.ok_or_else(|| NacosError::missing(name))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Nacos's plain-text error: `caused: <message>;`.
pub fn caused(status: StatusCode, message: &str) -> Response {
    plain(status, format!("caused: {message};"))
}

/// The type of Nacos's plain-text answers.
pub const PLAIN_TEXT: &str = "text/plain;charset=UTF-8";

pub fn plain(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, PLAIN_TEXT)], body).into_response()
}

/// The token a request carries: a bearer header's, else an `accessToken` parameter.
pub fn token<'a>(headers: &'a HeaderMap, params: &'a Params) -> Option<&'a str> {
    crate::api::bearer(headers).or_else(|| params.get("accessToken"))
}

/// Who is calling: a bearer token, an `accessToken` parameter, or `username` and
/// `password` parameters on the request itself, as Nacos accepts them.
pub async fn authenticate(
    state: &SharedState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Caller> {
    let result = match (
        token(headers, params),
        params.get("username"),
        params.get("password"),
    ) {
        (Some(token), _, _) => state.auth.verify(token.trim()),
        (None, Some(user), Some(password)) => {
            // No address here: these credentials ride on every request of old
            // clients, and the throttle per user name already bounds guessing.
            let checked = state
                .auth
                .authenticate(user, &Secret::from(password), None)
                .await;
            state.auth.audit_login(user, "", "nacos", &checked, false);
            checked
        }
        _ => Err(AuthError::MissingToken),
    };
    result.map_err(|e| {
        let message = match e {
            AuthError::Expired => "token expired!",
            AuthError::InvalidToken => "token invalid!",
            AuthError::Throttled(_) => "too many failed logins; try again later",
            // The node failed, not the credentials: say so, not "user not found".
            AuthError::Store(inner) => {
                return NacosError::Service(ServiceError::store_failure(inner))
            }
            _ => "user not found!",
        };
        NacosError::Unauthenticated {
            message,
            path: params.path().to_owned(),
        }
    })
}

/// The namespace a Nacos tenant names: `""` and `public` are the public namespace.
pub fn namespace(tenant: Option<&str>) -> Result<Namespace> {
    match tenant.map(str::trim) {
        None | Some("") | Some(Namespace::PUBLIC) => Ok(Namespace::public()),
        Some(other) => Namespace::parse(other).map_err(|_| NacosError::invalid("invalid tenant")),
    }
}

/// The caller and the config a read names, once the caller is known to be allowed to
/// read it.
pub async fn readable_key(
    state: &SharedState,
    headers: &HeaderMap,
    params: &Params,
    tenant_param: &str,
    source: crate::api::Source,
) -> Result<(Caller, ConfigKey)> {
    let caller = authenticate(state, headers, params).await?;
    let key = config_key(params, tenant_param)?;
    state.service.may_read(&caller, &key, source.via("nacos"))?;
    Ok((caller, key))
}

/// The config key of `dataId`, `group` and a tenant parameter, with Nacos's messages.
pub fn config_key(params: &Params, tenant_param: &str) -> Result<ConfigKey> {
    // A `tag` names a tagged copy of a config in Nacos; Cairn has none, and acting on
    // the main config instead would overwrite or delete what the client did not name.
    if params.get("tag").is_some() {
        return Err(NacosError::invalid(
            "the tag parameter (tagged copies of a config) is not supported by Cairn; \
             use a gray release by label instead",
        ));
    }
    key_of(
        params.required("dataId")?,
        params.required("group")?,
        params.get(tenant_param),
    )
}

/// The config key of a data id, group and tenant, with Nacos's messages; shared by the
/// HTTP and gRPC surfaces.
pub fn key_of(data_id: &str, group: &str, tenant: Option<&str>) -> Result<ConfigKey> {
    let parsed = DataId::parse(data_id.trim())
        .map_err(|_| NacosError::invalid(format!("invalid dataId : {data_id}")))?;
    let group =
        Group::parse(group).map_err(|_| NacosError::invalid(format!("invalid group : {group}")))?;
    Ok(ConfigKey::new(namespace(tenant)?, group, parsed))
}

/// The tenant as Nacos clients expect it back: blank for the public namespace.
pub fn tenant_of(namespace: &Namespace) -> &str {
    if namespace.is_public() {
        ""
    } else {
        namespace.as_str()
    }
}

/// A Nacos `type`; anything unknown is text, as in Nacos.
pub fn parse_type(value: Option<&str>) -> Option<Format> {
    let value = value?.to_ascii_lowercase();
    Some(match value.as_str() {
        "properties" => Format::Properties,
        "xml" => Format::Xml,
        "json" => Format::Json,
        "html" | "htm" => Format::Html,
        "yaml" | "yml" => Format::Yaml,
        "toml" => Format::Toml,
        _ => Format::Text,
    })
}

/// The content type Nacos serves a format with.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json;charset=UTF-8",
        Format::Xml => "application/xml;charset=UTF-8",
        Format::Html => "text/html;charset=UTF-8",
        _ => "text/plain;charset=UTF-8",
    }
}

/// An HTTP date (RFC 1123), as in `Last-Modified`; times outside 1970–9999 (which the
/// format cannot show) are clamped to them.
pub fn http_date(millis: i64) -> String {
    const LAST_MS_OF_9999: i64 = 253_402_300_799_999;
    let since_epoch = std::time::Duration::from_millis(millis.clamp(0, LAST_MS_OF_9999) as u64);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + since_epoch)
}

/// A time as Nacos's JSON shows it: ISO 8601 with milliseconds and offset.
pub fn iso_time(millis: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+00:00"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// The no-cache headers Nacos puts on config reads and listener answers.
pub const NO_CACHE: [(HeaderName, &str); 3] = [
    (header::PRAGMA, "no-cache"),
    (header::EXPIRES, "Thu, 01 Jan 1970 00:00:00 GMT"),
    (header::CACHE_CONTROL, "no-cache,no-store"),
];

/// Puts [`NO_CACHE`] on `headers`.
pub fn no_cache(headers: &mut HeaderMap) {
    for (name, value) in NO_CACHE {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_look_like_nacos_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http_date(-1), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(iso_time(1_500), "1970-01-01T00:00:01.500+00:00");
    }

    #[test]
    fn types_map_to_formats() {
        assert_eq!(parse_type(Some("YAML")), Some(Format::Yaml));
        assert_eq!(parse_type(Some("ini")), Some(Format::Text));
        assert_eq!(parse_type(None), None);
        assert_eq!(content_type(Format::Yaml), "text/plain;charset=UTF-8");
    }
}
