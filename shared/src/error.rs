//! The one error type that crosses layers: domain refusals and port failures, each kept
//! typed so that `http::error` can map it to a status in a single place.

use crate::domain::DomainError;
use crate::ports::{MailError, QueueError, SecretError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl Error {
    /// True when a retry of the same request may succeed (backend down, throttled).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Store(StoreError::Unavailable(_))
                | Error::Queue(QueueError::Unavailable(_))
                | Error::Mail(crate::ports::MailError::Unavailable(_))
                | Error::Secret(SecretError::Unavailable(_))
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
