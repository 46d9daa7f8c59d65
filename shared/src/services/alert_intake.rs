//! Datto alert intake as use cases: the monitor webhook, a raw alert e-mail (the local
//! stand-in for SES) and the SES receipt event. Each ends in `intake::accept`, the one
//! "ingest, then ask for enrichment" path the poll takes too, with one failure rule: once
//! the decision is durable the intake succeeded; a lost enrichment request is only logged.

use aws_lambda_events::event::ses::SimpleEmailEvent;
use serde::Serialize;

use super::request_log::Refusal;
use super::{Context, InputError, ServiceError, ServiceResult};
use crate::datto::state as webhook_state;
use crate::datto::webhook::{interpret, parse_body, state_of, Parsed, WebhookCall};
use crate::domain::json::first_repeated_key;
use crate::intake::mail::{ingest_mail, MailOutcome};
use crate::intake::{accept, ses, IntakeResult};
use crate::ports::MailSource;
use crate::store::RequestLogEntry;

/// Request-log source of webhook calls.
pub const WEBHOOK_SOURCE: &str = "datto-webhook";

/// The `result` of Datto's Test button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestResult {
    TestAccepted,
}

/// What a webhook call led to.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum WebhookAnswer {
    /// Datto's Test button (placeholders not substituted): `{"result": "test_accepted"}`.
    Test { result: TestResult },
    /// A real event, applied durably.
    Applied(IntakeResult),
}

/// `POST /datto/webhook`: require JSON, parse (repairing Datto's unescaped substitutions),
/// check `state` (constant time; the previous one too for 24 hours after a rotation),
/// interpret and accept the event. Every call lands in the request log.
pub async fn webhook(
    ctx: &Context,
    content_type: Option<&str>,
    body: Result<&[u8], InputError>,
) -> Result<WebhookAnswer, Box<Refusal>> {
    let now = ctx.clock.now();
    let mut log = RequestLogEntry::new(WEBHOOK_SOURCE, now);
    let bytes = match body {
        Ok(b) => b,
        Err(e) => return Err(Refusal::new(e, log, None)),
    };
    let ct = content_type.unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        let got = if ct.is_empty() { "none" } else { ct }.to_string();
        let e = InputError::UnsupportedMediaType {
            expected: "application/json",
            got,
        };
        return Err(Refusal::new(e, log, None));
    }
    let parsed = match parse_body(bytes) {
        Ok(p) => p,
        Err(e) => {
            let e = InputError::MalformedJson {
                field: "body".into(),
                message: e.to_string(),
            };
            return Err(Refusal::new(e, log, Some(bytes)));
        }
    };
    if let Parsed::Repaired(_, what) = &parsed {
        tracing::warn!(repair = what, "webhook body needed repair");
    }
    let body = parsed.value();
    let stored_state = webhook_state::load(ctx.secrets.as_ref())
        .await
        .map_err(Refusal::unlogged)?;
    let authorised = match (state_of(body), &stored_state) {
        (Some(given), Some(st)) => st.accepts(given, now),
        _ => false,
    };
    if !authorised {
        let why = if state_of(body).is_none() {
            "state: missing"
        } else {
            "state: wrong or expired"
        };
        return Err(Refusal::new(ServiceError::Unauthorized(why.into()), log, None));
    }
    if let Some(key) = first_repeated_key(bytes) {
        let e = InputError::Invalid {
            field: key,
            message: "appears twice in the body: each key may appear once".into(),
        };
        return Err(Refusal::new(e, log, Some(bytes)));
    }
    let ev = match interpret(body, now) {
        Ok(WebhookCall::Event(ev)) => ev,
        Ok(WebhookCall::Test) => return test_accepted(ctx, log).await,
        Err(e) => return Err(Refusal::new(e, log, Some(bytes))),
    };
    let settings = ctx.store.datto_settings().await;
    let accepted = match settings {
        Ok(settings) => accept(&ctx.store, ctx.queue.as_ref(), &settings, &ev, Some(log.clone())).await,
        Err(e) => Err(e),
    };
    accepted.map(WebhookAnswer::Applied).map_err(|e| {
        log.alert_uid = Some(ev.uid.to_string());
        Refusal::new(e, log, Some(bytes))
    })
}

async fn test_accepted(ctx: &Context, mut log: RequestLogEntry) -> Result<WebhookAnswer, Box<Refusal>> {
    log.status = 200;
    log.outcome = "test_accepted".into();
    log.reason = Some("Datto's Test button (placeholders not substituted)".into());
    tracing::info!("datto webhook test accepted");
    ctx.store.log_request(&log).await.map_err(Refusal::unlogged)?;
    Ok(WebhookAnswer::Test {
        result: TestResult::TestAccepted,
    })
}

/// `POST /local/mail` (local server): one raw alert e-mail, answered like the webhook; a
/// refused mail is in the request log and answers 403 (sender) or 422 (no `Alert{uid}`).
pub async fn mail(ctx: &Context, raw: &[u8]) -> ServiceResult<IntakeResult> {
    match ingest_mail(&ctx.store, ctx.queue.as_ref(), raw, ctx.clock.now()).await? {
        MailOutcome::Applied(r) => Ok(r),
        MailOutcome::Dropped(reason) => Err(ServiceError::MailDropped(reason)),
        MailOutcome::Unusable(reason) => Err(ServiceError::MailUnusable(reason)),
    }
}

/// How long one SES event may take; shorter than the ses-inbound-mail Lambda's `Timeout`
/// (a test checks), so a slow store fails the invocation (and Lambda retries it) rather
/// than having Lambda kill it.
pub const SES_EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);

/// The ses-inbound-mail Lambda: every record of one SES receipt event; a transient
/// failure fails the invocation so SES retries. Answers a summary for the log.
pub async fn ses_event(
    ctx: &Context,
    source: &dyn MailSource,
    event: SimpleEmailEvent,
) -> ServiceResult<serde_json::Value> {
    let handled = ses::handle_ses_event(&ctx.store, ctx.queue.as_ref(), source, event, ctx.clock.now());
    let outcomes = tokio::time::timeout(SES_EVENT_TIMEOUT, handled).await.map_err(|_| {
        ServiceError::TimedOut(format!(
            "the SES event took longer than {} s",
            SES_EVENT_TIMEOUT.as_secs()
        ))
    })??;
    Ok(ses::summary(&outcomes))
}
