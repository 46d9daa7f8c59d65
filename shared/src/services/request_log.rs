//! The intake request log: every webhook, mail and outbound event lands there with its
//! outcome; refusals are completed with the status `http` answered them with. And its listing.

use super::{Actor, Context, ServiceError, ServiceResult};
use crate::store::{Listing, PageRequest, RequestLogEntry, RequestLogFilter};

/// An intake request refused: the error, and the request-log entry to complete with the
/// answer's status (`http` decides it) and keep (none when not even the credentials could
/// be checked).
#[derive(Debug)]
pub struct Refusal {
    pub error: ServiceError,
    pub log: Option<RequestLogEntry>,
    /// The body, kept in the log when it is evidence of a sender's bug.
    pub raw: Option<Vec<u8>>,
}

impl Refusal {
    pub fn new(error: impl Into<ServiceError>, log: RequestLogEntry, raw: Option<&[u8]>) -> Box<Self> {
        Box::new(Refusal {
            error: error.into(),
            log: Some(log),
            raw: raw.map(<[u8]>::to_vec),
        })
    }

    /// A refusal that is answered but not logged.
    pub fn unlogged(error: impl Into<ServiceError>) -> Box<Self> {
        Box::new(Refusal {
            error: error.into(),
            log: None,
            raw: None,
        })
    }
}

/// Complete a refused request's log entry with the status and message it was answered
/// with and keep it. A log failure does not change the answer (the refusal stands), but
/// is logged.
pub async fn log_refusal(ctx: &Context, log: Option<RequestLogEntry>, raw: Option<&[u8]>, status: u16, message: &str) {
    let Some(mut log) = log else {
        return;
    };
    log.status = status;
    log.outcome = if status == 401 { "unauthorized" } else { "rejected" }.to_string();
    log.reason = Some(message.to_string());
    // The body is evidence of the sender's mistake only when the request was refused
    // for what it said, not when we failed to store it.
    if let Some(raw) = raw.filter(|_| (400..500).contains(&status)) {
        log.keep_raw(raw);
    }
    if let Err(e) = ctx.store.log_request(&log).await {
        tracing::error!(error = %e, "could not write the request log");
    }
}

/// Keep the log entry of an accepted intake request.
pub async fn log_answer(ctx: &Context, mut log: RequestLogEntry, outcome: &str, reason: Option<String>) {
    log.status = 200;
    log.outcome = outcome.to_string();
    log.reason = reason;
    if let Err(e) = ctx.store.log_request(&log).await {
        tracing::error!(error = %e, "could not write the request log");
    }
}

/// `GET /api/request-log`.
pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: &RequestLogFilter,
    page: &PageRequest,
) -> ServiceResult<Listing<RequestLogEntry>> {
    actor.require_admin("reading the request log")?;
    Ok(ctx.store.request_log(filter, page).await?)
}
