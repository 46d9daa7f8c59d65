//! The only place where errors become HTTP statuses: `ApiError` and its `From` impls for
//! the typed errors of every layer (service, core, input). Bodies are `{"error": CODE,
//! "message"}`; 5xx bodies say what failed in our words, the log gets the cause.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::domain::DomainError;
use crate::error::Error;
use crate::ports::{MailError, QueueError, SecretError, StoreError};
use crate::services::{InputError, ServiceError, Vendor};

/// An error answer. Built only from the typed errors below; read with the getters.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code, e.g. `VALIDATION`, `NOT_FOUND`, `TECHUNAVAILABLE`.
    pub error: String,
    /// What went wrong, in words; a 400 names the field first (`field: problem`).
    pub message: String,
}

/// Requests the router itself refuses.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("no such route")]
    NoRoute,
    #[error("the console has no asset named {0:?}")]
    NoAsset(String),
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 5xx whose cause chain goes to the log only, never to the client.
    fn internal(status: StatusCode, code: &str, message: &str, cause: &dyn std::error::Error) -> Self {
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

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
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
            Error::Mail(ref m @ MailError::Rejected(_)) => ApiError::internal(
                StatusCode::BAD_GATEWAY,
                "MAIL_REJECTED",
                "the mail service refused the message; check the sender address and the recipient",
                m,
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

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        let message = e.to_string();
        match e {
            InputError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message),
            InputError::BadBody(_) => ApiError::new(StatusCode::BAD_REQUEST, "BAD_BODY", message),
            InputError::UnsupportedMediaType { .. } => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", message)
            }
            InputError::MalformedJson { .. } => ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", message),
            InputError::Invalid { .. } => ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION", message),
        }
    }
}

impl From<RoutingError> for ApiError {
    fn from(e: RoutingError) -> Self {
        match e {
            RoutingError::NoRoute | RoutingError::NoAsset(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", e.to_string())
            }
        }
    }
}

fn not_configured(vendor: Vendor) -> ApiError {
    match vendor {
        Vendor::Datto => ApiError::new(
            StatusCode::CONFLICT,
            "DATTO_API_NOT_CONFIGURED",
            "set api_url, api_key and api_secret in /api/config/datto first",
        ),
        Vendor::BeyondTrust => ApiError::new(
            StatusCode::CONFLICT,
            "BEYONDTRUST_NOT_CONFIGURED",
            "set base_url, client_id and client_secret in /api/config/beyondtrust first",
        ),
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Core(e) => e.into(),
            ServiceError::Input(e) => e.into(),
            ServiceError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m),
            ref e @ ServiceError::TooManyAttempts { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_ATTEMPTS", e.to_string())
            },
            ServiceError::Forbidden { code, message } => ApiError::new(StatusCode::FORBIDDEN, code, message),
            ServiceError::MailDropped(m) => ApiError::new(StatusCode::FORBIDDEN, "SENDER_REFUSED", m),
            ServiceError::MailUnusable(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "NO_ALERT_UID", m),
            ServiceError::NotConfigured(vendor) => not_configured(vendor),
            ref t @ ServiceError::TimedOut(_) => ApiError::internal(
                StatusCode::GATEWAY_TIMEOUT,
                "TIMED_OUT",
                "the request took too long and was stopped; what was saved stays saved, try again",
                t,
            ),
            ServiceError::Misconfigured {
                vendor: Vendor::Datto,
                message,
            } => ApiError::new(StatusCode::CONFLICT, "DATTO_API_NOT_CONFIGURED", message),
            ServiceError::Misconfigured {
                vendor: Vendor::BeyondTrust,
                message,
            } => ApiError::new(StatusCode::CONFLICT, "BEYONDTRUST_NOT_CONFIGURED", message),
            ServiceError::Datto(ref d) => ApiError::internal(
                StatusCode::BAD_GATEWAY,
                "DATTO_UNAVAILABLE",
                "the Datto RMM API failed or refused the call; nothing was changed there, try again later",
                d,
            ),
            ServiceError::BeyondTrust(ref b) => ApiError::internal(
                StatusCode::BAD_GATEWAY,
                "BEYONDTRUST_UNAVAILABLE",
                "the BeyondTrust API failed or refused the call; try again later or check the settings with Test Configuration",
                b,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::warn!(status = self.status.as_u16(), code = %self.code, message = %self.message, "request refused");
        }
        let retry_after = self.retry_after;
        let body = ErrorBody {
            error: self.code,
            message: self.message,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}
