//! Why a Nacos request is refused, as one enum that both API versions render: v1 as
//! Nacos's plain text (`caused: …;`), v2 in its `{code, message, data}` envelope.
//! Authentication refusals are Spring's 403 body in both, as Nacos sends them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::service::{ErrorKind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum NacosError {
    /// A required parameter is absent.
    #[error("Required request parameter '{0}' for method parameter type String is not present")]
    Missing(String),
    /// A parameter Nacos refuses, with Nacos's own message.
    #[error("{0}")]
    Invalid(String),
    /// The namespace a request names does not exist.
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(cairn_core::Namespace),
    #[error("the request body is larger than this server accepts")]
    BodyTooLarge,
    /// No credentials, or ones that do not verify.
    #[error("{message}")]
    Unauthenticated { message: &'static str, path: String },
    /// Authenticated, but not allowed to do this.
    #[error("authorization failed!")]
    Forbidden { path: String },
    /// A login with a wrong name or password.
    #[error("user not found!")]
    LoginRefused,
    /// Stopping a beta release failed.
    #[error("remove beta data error")]
    BetaNotStopped(#[source] ServiceError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

pub type Result<T, E = NacosError> = std::result::Result<T, E>;

impl NacosError {
    pub fn invalid(message: impl Into<String>) -> Self {
        NacosError::Invalid(message.into())
    }

    pub fn missing(name: &str) -> Self {
        NacosError::Missing(name.to_owned())
    }

    fn status(&self) -> StatusCode {
        match self {
            NacosError::Missing(_) | NacosError::Invalid(_) => StatusCode::BAD_REQUEST,
            NacosError::NamespaceNotFound(_) => StatusCode::NOT_FOUND,
            NacosError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NacosError::Unauthenticated { .. }
            | NacosError::Forbidden { .. }
            | NacosError::LoginRefused => StatusCode::FORBIDDEN,
            NacosError::BetaNotStopped(_) => StatusCode::INTERNAL_SERVER_ERROR,
            NacosError::Service(e) => match e.kind() {
                // Nacos refuses oversized content as a bad parameter.
                ErrorKind::TooLarge => StatusCode::BAD_REQUEST,
                kind => crate::api::error::status_of(kind),
            },
        }
    }

    /// The message as Nacos words it.
    fn message(&self) -> String {
        match self {
            NacosError::Service(ServiceError::ConfigNotFound(_)) => {
                "config data not exist".to_owned()
            }
            NacosError::Service(ServiceError::CasConflict { .. }) => {
                "Cas publish fail, server md5 may have changed.".to_owned()
            }
            NacosError::Service(ServiceError::ContentTooLarge { max, .. }) => {
                format!("invalid content, over {max}")
            }
            NacosError::Service(ServiceError::Internal(_)) => {
                "internal error; see the server log".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// As a gRPC response's `errorCode` and message: Nacos's 300 for a missing config,
    /// 403 for refused credentials (clients log in again), else the HTTP status's code.
    pub fn grpc(&self) -> (u16, String) {
        self.log();
        let code = match self {
            NacosError::Unauthenticated { .. }
            | NacosError::Forbidden { .. }
            | NacosError::LoginRefused => 403,
            NacosError::Service(ServiceError::ConfigNotFound(_))
            | NacosError::NamespaceNotFound(_) => 300,
            // Not 403: gRPC clients take that for expired credentials and log in again.
            NacosError::Service(
                ServiceError::QuotaExceeded(_) | ServiceError::ReviewRequired { .. },
            ) => 400,
            other => other.status().as_u16(),
        };
        (code, self.message())
    }

    /// Logs what the operator must see: failures of the node, not of the client.
    fn log(&self) {
        if self.status().is_server_error() {
            crate::api::error::log_chain(self);
        }
    }

    /// Spring's 403 body, which Nacos answers refused credentials with.
    fn spring_forbidden(message: &str, path: &str) -> Response {
        Self::spring_forbidden_because(message, path, None)
    }

    /// Spring's 403 body, with what a person needs to know to get access.
    fn spring_forbidden_because(message: &str, path: &str, detail: Option<String>) -> Response {
        let mut body = json!({
            "timestamp": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "status": 403,
            "error": "Forbidden",
            "message": message,
            "path": path,
        });
        if let Some(detail) = detail {
            body["detail"] = Value::String(detail);
        }
        (StatusCode::FORBIDDEN, Json(body)).into_response()
    }

    /// As Nacos's v1 API answers.
    pub fn v1(self) -> Response {
        self.log();
        let status = self.status();
        match self {
            NacosError::Unauthenticated { message, path } => Self::spring_forbidden(message, &path),
            NacosError::Forbidden { path } => {
                Self::spring_forbidden("authorization failed!", &path)
            }
            // Nacos's words for a missing permission, and Cairn's for what would grant it.
            NacosError::Service(ServiceError::Denied(denied)) => Self::spring_forbidden_because(
                "authorization failed!",
                "",
                Some(denied.to_string()),
            ),
            NacosError::LoginRefused => super::plain(status, "user not found!".to_owned()),
            NacosError::Service(ServiceError::ConfigNotFound(_)) => {
                super::plain(status, "config data not exist\n".to_owned())
            }
            NacosError::BetaNotStopped(_) => (
                status,
                Json(json!({ "code": 500, "message": "remove beta data error", "data": false })),
            )
                .into_response(),
            other => super::caused(status, &other.message()),
        }
    }

    /// As Nacos's v2 API answers: its envelope, with the v1 message as `data`.
    pub fn v2(self) -> Response {
        let status = self.status();
        match self {
            NacosError::Unauthenticated { .. }
            | NacosError::Forbidden { .. }
            | NacosError::Service(ServiceError::Denied(_))
            | NacosError::LoginRefused => return self.v1(),
            _ => self.log(),
        }
        let (code, message) = match (&self, status) {
            (NacosError::Missing(_), _) => (10000, "parameter missing"),
            (_, StatusCode::NOT_FOUND) => (20004, "resource not found"),
            (_, StatusCode::CONFLICT) => (20005, "resource conflict"),
            (_, s) if s.is_server_error() => (30000, "server error"),
            _ => (20002, "parameter validate error"),
        };
        envelope(status, code, message, Value::String(self.message()))
    }
}

/// v1 is the rendering handlers return by default.
impl IntoResponse for NacosError {
    fn into_response(self) -> Response {
        self.v1()
    }
}

/// v2's `{code, message, data}` envelope.
pub fn envelope(status: StatusCode, code: u32, message: &str, data: Value) -> Response {
    (
        status,
        Json(json!({ "code": code, "message": message, "data": data })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn both_versions_render_one_error_as_nacos_does() {
        let missing = || NacosError::missing("dataId");
        let v1 = missing().v1();
        assert_eq!(v1.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body(v1).await,
            "caused: Required request parameter 'dataId' for method parameter type String is not present;"
        );
        let v2: Value = serde_json::from_str(&body(missing().v2()).await).unwrap();
        assert_eq!(
            (v2["code"].as_u64(), v2["message"].as_str()),
            (Some(10000), Some("parameter missing"))
        );

        let conflict = || {
            NacosError::Service(ServiceError::CasConflict {
                key: cairn_core::ConfigKey::parse("public", "g", "d").unwrap(),
                expected: Some("a".into()),
                current: Some("b".into()),
            })
        };
        assert_eq!(conflict().v1().status(), StatusCode::CONFLICT);
        let v2: Value = serde_json::from_str(&body(conflict().v2()).await).unwrap();
        assert_eq!(v2["code"], 20005);
        assert_eq!(v2["data"], "Cas publish fail, server md5 may have changed.");

        let forbidden = NacosError::Unauthenticated {
            message: "token invalid!",
            path: "/nacos/v2/cs/config".into(),
        };
        let v2 = forbidden.v2();
        assert_eq!(v2.status(), StatusCode::FORBIDDEN);
        let spring: Value = serde_json::from_str(&body(v2).await).unwrap();
        assert_eq!(spring["message"], "token invalid!");
        assert_eq!(spring["path"], "/nacos/v2/cs/config");
    }
}
