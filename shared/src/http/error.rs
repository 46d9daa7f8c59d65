//! The only place where errors become HTTP statuses: `ApiError` and its `From` impls.
//! Bodies are `{"error": CODE, "message"}`; 5xx bodies stay generic, the log gets the cause.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::DomainError;
use crate::error::Error;
use crate::ports::{MailError, QueueError, SecretError, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
    pub fn bad_request(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION", format!("{field}: {message}"))
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }
    fn internal(status: StatusCode, code: &str, message: &str, cause: &dyn std::error::Error) -> Self {
        // The cause chain goes to the log only, never to the client.
        let mut chain = cause.to_string();
        let mut src = cause.source();
        while let Some(s) = src {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            src = s.source();
        }
        tracing::error!(code, cause = %chain, "request failed");
        ApiError::new(status, code, message)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation { .. } => ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION", e.to_string()),
            DomainError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", e.to_string()),
            DomainError::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Domain(d) => d.into(),
            Error::Store(StoreError::ConditionFailed { .. }) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                "the record changed while this request was processed; try again",
            ),
            Error::Store(ref s @ StoreError::Unavailable(_)) => ApiError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "STORE_UNAVAILABLE",
                "storage is unavailable; nothing was saved, try again",
                s,
            ),
            Error::Store(ref s) => {
                ApiError::internal(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error", s)
            }
            Error::Queue(ref q @ QueueError::Unavailable(_)) => ApiError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "QUEUE_UNAVAILABLE",
                "the work queue is unavailable; try again",
                q,
            ),
            Error::Queue(QueueError::NotFound(m)) => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", m),
            Error::Queue(ref q @ QueueError::NotConfigured(_)) => ApiError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "QUEUE_UNAVAILABLE",
                "the work queue is not configured",
                q,
            ),
            Error::Mail(MailError::Rejected(m)) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "MAIL_REJECTED",
                format!("the mail service refused the message: {m}"),
            ),
            Error::Mail(ref m @ MailError::Unavailable(_)) => ApiError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "MAIL_UNAVAILABLE",
                "the mail service is unavailable; try again",
                m,
            ),
            Error::Secret(ref s @ SecretError::Unavailable(_)) => ApiError::internal(
                StatusCode::SERVICE_UNAVAILABLE,
                "SECRETS_UNAVAILABLE",
                "the secret store is unavailable; try again",
                s,
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::warn!(status = self.status.as_u16(), code = %self.code, message = %self.message, "request refused");
        }
        let body = serde_json::json!({"error": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}
