//! The native API's error type: an HTTP status, a stable `code` and a message a person
//! can act on. Every failure of a request on the native surface becomes one of these.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_core::{KeyPathError, NameError};

use super::wire::ErrorBody;
use crate::auth::AuthError;
use crate::service::{ErrorKind, ServiceError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// Every `code` an error answer of the native API can carry, as its document lists
/// them (`ErrorBody.code`). Debug builds (and so every test) refuse to answer with a
/// code missing here.
pub const CODES: &[&str] = &[
    "access_key_not_found",
    "bad_credentials",
    "body_too_slow",
    "cas_conflict",
    "change_request_not_found",
    "change_request_stale",
    "concurrent_change",
    "config_not_found",
    "content_too_large",
    "current_password_required",
    "database_unavailable",
    "delivery_not_found",
    "encryption_key_mismatch",
    "forbidden",
    "grant_not_found",
    "gray_not_found",
    "internal",
    "invalid_argument",
    "invalid_content",
    "invalid_format",
    "invalid_gray_rules",
    "invalid_import",
    "invalid_name",
    "invalid_schema",
    "invalid_token",
    "invalid_webhook",
    "last_admin",
    "malformed_request",
    "method_not_allowed",
    "missing_token",
    "namespace_exists",
    "namespace_not_empty",
    "namespace_not_found",
    "no_encryption_key",
    "not_a_member",
    "not_found",
    "own_change_request",
    "payload_too_large",
    "public_namespace",
    "quota_exceeded",
    "review_required",
    "review_state",
    "revision_is_deletion",
    "revision_not_found",
    "role_not_found",
    "schema_not_found",
    "schema_rejects_content",
    "schema_violation",
    "token_exists",
    "token_expired",
    "token_not_found",
    "too_many_access_keys",
    "too_many_attempts",
    "too_many_keys",
    "too_many_patterns",
    "user_exists",
    "user_not_found",
    "weak_password",
    "webhook_not_found",
    "wrong_password",
];

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            CODES.contains(&code),
            "error code {code:?} is missing from api::error::CODES, which the document lists"
        );
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Logs the whole cause chain of an error the client cannot fix.
pub(crate) fn log_chain(error: &dyn std::error::Error) {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, "request failed");
}

/// The HTTP status of a kind of service failure, as every HTTP surface answers it.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        // As Kubernetes answers a write over a resource quota: the request is
        // well-formed, and refused until the namespace's quota or use changes.
        ErrorKind::QuotaExceeded => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        let code = match &e {
            E::InvalidContent(_) => "invalid_content",
            E::ContentTooLarge { .. } => "content_too_large",
            E::InvalidArgument(_) => "invalid_argument",
            E::NamespaceNotFound(_) => "namespace_not_found",
            E::NamespaceExists(_) => "namespace_exists",
            E::NamespaceNotEmpty(_) => "namespace_not_empty",
            E::PublicNamespace => "public_namespace",
            E::ConfigNotFound(_) => "config_not_found",
            E::GrayNotFound(_) => "gray_not_found",
            E::InvalidGray(_) => "invalid_gray_rules",
            E::RevisionNotFound { .. } => "revision_not_found",
            E::RevisionIsDeletion(_) => "revision_is_deletion",
            E::CasConflict { .. } => "cas_conflict",
            E::ConcurrentChange(_) => "concurrent_change",
            E::Denied(_) | E::AdminOnly(_) => "forbidden",
            E::QuotaExceeded(_) => "quota_exceeded",
            E::SchemaViolation(_) => "schema_violation",
            E::InvalidSchema(_) => "invalid_schema",
            E::SchemaRejectsContent { .. } => "schema_rejects_content",
            E::SchemaNotFound(_) => "schema_not_found",
            E::InvalidWebhook(_) => "invalid_webhook",
            E::WebhookNotFound(_) => "webhook_not_found",
            E::DeliveryNotFound(..) => "delivery_not_found",
            E::ReviewRequired { .. } => "review_required",
            E::ChangeRequestNotFound(_) => "change_request_not_found",
            E::ReviewState(_) => "review_state",
            E::OwnChangeRequest(_) => "own_change_request",
            E::StaleChangeRequest { .. } => "change_request_stale",
            E::Unavailable(_) => "database_unavailable",
            E::Internal(_) => "internal",
        };
        let status = status_of(e.kind());
        if status.is_server_error() {
            log_chain(&e);
        }
        ApiError::new(status, code, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use AuthError as E;
        let (status, code) = match &e {
            E::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            E::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            E::CurrentPasswordRequired => (StatusCode::BAD_REQUEST, "current_password_required"),
            E::MissingToken => (StatusCode::UNAUTHORIZED, "missing_token"),
            E::Expired => (StatusCode::UNAUTHORIZED, "token_expired"),
            E::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            E::Forbidden | E::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            E::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            E::WeakPassword => (StatusCode::BAD_REQUEST, "weak_password"),
            E::UnknownRole(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            E::UserExists(_) => (StatusCode::CONFLICT, "user_exists"),
            E::TokenExists(_) => (StatusCode::CONFLICT, "token_exists"),
            E::UserNotFound(_) => (StatusCode::NOT_FOUND, "user_not_found"),
            E::LastAdmin(_) => (StatusCode::CONFLICT, "last_admin"),
            E::Store(inner) if inner.is_outage() => {
                log_chain(&e);
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            E::Store(_) | E::Hash(_) => {
                log_chain(&e);
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = match &e {
            E::Store(inner) if inner.is_outage() => {
                "the database is unavailable; try again shortly".to_owned()
            }
            E::Store(_) | E::Hash(_) => "internal error; see the server log".to_owned(),
            _ => e.to_string(),
        };
        ApiError::new(status, code, message)
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        ApiError::bad_request("invalid_name", e.to_string())
    }
}

impl From<KeyPathError> for ApiError {
    fn from(e: KeyPathError) -> Self {
        ApiError::bad_request("invalid_name", e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if let Some(slow) = super::body::too_slow(&r) {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_too_slow",
                slow.to_string(),
            );
        }
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is far larger than any content this server accepts (see max_content_bytes)",
            );
        }
        let status = match r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "malformed_request", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("malformed_request", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("malformed_request", r.body_text())
    }
}
