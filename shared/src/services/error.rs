//! The error every service call returns: the core error (domain, store, queue, mail,
//! secrets), vendor failures, refusals of the request itself. `http::error` maps it.

use crate::domain::DomainError;
use crate::error::Error as CoreError;
use crate::ports::{DattoCallError, MailError, QueueError, SecretError, StoreError};

/// Which vendor API a failure or a missing configuration concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Datto,
    BeyondTrust,
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vendor::Datto => "the Datto RMM API",
            Vendor::BeyondTrust => "the BeyondTrust API",
        })
    }
}

/// A request that could not be read: too large, wrong content type, not the JSON or form
/// expected, a path or query parameter of the wrong form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("request body is larger than {limit_kib} KiB")]
    TooLarge { limit_kib: usize },
    #[error("{0}")]
    BadBody(String),
    #[error("content-type must be {expected}, got {got}")]
    UnsupportedMediaType { expected: &'static str, got: String },
    /// Not JSON at all (syntax error, truncated).
    #[error("{field}: {message}")]
    MalformedJson { field: String, message: String },
    /// Well-formed, but a field is missing or has the wrong type or value.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl InputError {
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        InputError::Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A domain refusal or a port failure.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The request itself could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Missing or wrong credentials (bearer token, webhook state, event token).
    #[error("{0}")]
    Unauthorized(String),
    /// Sign-in is locked for a while after repeated failures (429 with `Retry-After`).
    #[error("too many failed sign-ins; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// Not allowed to this caller (role), or refused by a setting (quick invites off, invites for others off).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// An alert e-mail not from the configured sender, or e-mail intake is off.
    #[error("{0}")]
    MailDropped(String),
    /// An alert e-mail without `Alert{uid}` in its subject, or not a message at all.
    #[error("{0}")]
    MailUnusable(String),
    /// The work did not finish within its time limit; what was done is durable, the rest
    /// may be retried.
    #[error("{0}")]
    TimedOut(String),
    /// The vendor API is not set up yet.
    #[error("{0} is not configured")]
    NotConfigured(Vendor),
    /// The vendor API's settings cannot be used (e.g. a base URL the client refuses).
    #[error("{vendor} settings are unusable: {message}")]
    Misconfigured { vendor: Vendor, message: String },
    /// The Datto RMM API failed or answered unexpectedly.
    #[error("Datto RMM API call failed: {0}")]
    Datto(#[source] DattoCallError),
    /// The BeyondTrust API failed or answered unexpectedly.
    #[error("BeyondTrust API call failed: {0}")]
    BeyondTrust(#[source] crate::beyondtrust::Error),
}

impl From<DomainError> for ServiceError {
    fn from(e: DomainError) -> Self {
        ServiceError::Core(e.into())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Core(e.into())
    }
}

impl From<QueueError> for ServiceError {
    fn from(e: QueueError) -> Self {
        ServiceError::Core(e.into())
    }
}

impl From<MailError> for ServiceError {
    fn from(e: MailError) -> Self {
        ServiceError::Core(e.into())
    }
}

impl From<SecretError> for ServiceError {
    fn from(e: SecretError) -> Self {
        ServiceError::Core(e.into())
    }
}

impl From<DattoCallError> for ServiceError {
    fn from(e: DattoCallError) -> Self {
        ServiceError::Datto(e)
    }
}

impl From<crate::beyondtrust::Error> for ServiceError {
    fn from(e: crate::beyondtrust::Error) -> Self {
        match e {
            crate::beyondtrust::Error::Invalid(message) => ServiceError::Misconfigured {
                vendor: Vendor::BeyondTrust,
                message,
            },
            other => ServiceError::BeyondTrust(other),
        }
    }
}

impl ServiceError {
    /// A refusal because a setting forbids it.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// A field of the request holds a value the service refuses.
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        DomainError::invalid(field, message.to_string()).into()
    }

    /// True when a retry of the same call may succeed (backend down, throttled).
    pub fn is_transient(&self) -> bool {
        match self {
            ServiceError::Core(e) => e.is_transient(),
            ServiceError::Datto(e) => e.retryable,
            ServiceError::BeyondTrust(e) => e.is_transient(),
            ServiceError::TimedOut(_) => true,
            _ => false,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
