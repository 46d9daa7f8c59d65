//! BeyondTrust sweep runs: `POST /api/sync/beyondtrust`, the EventBridge schedule and the
//! local scheduler queue a run (`request_run`) of the lost-end-event sweep.
//!
//! Same run model as the Datto sync (`store::SyncRun`: queued → running → done, failed or
//! skipped, with counts and errors). The message `{sweep_run_id}` rides the
//! `session-import` queue, so the session-import consumer (which holds the BeyondTrust
//! client) runs it: `jobs::session_sweep::sweep` lists the window and queues imports.

use aws_lambda_events::event::sqs::SqsEvent;
use serde::{Deserialize, Serialize};

use super::consumers::sqs_batch;
use super::{Actor, Context, ServiceError, ServiceResult};
use crate::beyondtrust::Client;
use crate::jobs::{session_sweep, Failure, JobError};
use crate::ports::QueueName;
use crate::store::{Listing, PageRequest, SyncRun, SyncRunState, SyncSummary, SyncTrigger};

/// The sweep's message on the `session-import` queue.
#[derive(Debug, Serialize, Deserialize)]
struct SweepRequest {
    sweep_run_id: u64,
}

/// The sweep run a `session-import` message asks for, if it is one.
pub fn sweep_request(body: &str) -> Option<u64> {
    serde_json::from_str::<SweepRequest>(body).ok().map(|r| r.sweep_run_id)
}

/// Queue a sweep. One asked for through the API needs BeyondTrust configured (409
/// otherwise); a scheduled one without it is recorded `skipped` with the reason and
/// queues nothing.
pub async fn request_run(ctx: &Context, actor: &Actor, trigger: SyncTrigger) -> ServiceResult<SyncRun> {
    actor.require_admin("starting a BeyondTrust sweep")?;
    match ctx.beyondtrust_client().await {
        Ok(_) => {}
        Err(ServiceError::NotConfigured(_)) if trigger == SyncTrigger::Schedule => {
            let (mut run, version) = (ctx.store.queue_sweep_run(trigger).await?, 1);
            run.state = SyncRunState::Skipped;
            run.summary.skipped = true;
            run.summary.reason = Some("BeyondTrust is not configured".into());
            run.finished_at = Some(ctx.clock.now());
            ctx.store.save_sweep_run(&run, Some(version)).await?;
            return Ok(run);
        }
        Err(e) => return Err(e),
    }
    let run = ctx.store.queue_sweep_run(trigger).await?;
    let body = serde_json::to_string(&SweepRequest {
        sweep_run_id: run.run_id,
    })
    .expect("json");
    ctx.queue.send(QueueName::SessionImport, &body).await?;
    tracing::info!(run_id = run.run_id, ?trigger, "BeyondTrust sweep queued");
    Ok(run)
}

pub async fn run(ctx: &Context, actor: &Actor, id: u64) -> ServiceResult<SyncRun> {
    actor.require_admin("reading sweep runs")?;
    Ok(ctx.store.sweep_run(id).await?.0)
}

/// The most recent sweeps first.
pub async fn runs(ctx: &Context, actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<SyncRun>> {
    actor.require_admin("reading sweep runs")?;
    Ok(ctx.store.sweep_runs(page).await?)
}

/// Run the queued sweep `run_id` once (a repeat delivery of a finished one does nothing).
/// A BeyondTrust failure ends the run `failed` with the reason; the next sweep's window
/// overlaps, so nothing is lost.
pub async fn execute(ctx: &Context, client: &Client, run_id: u64) -> Result<(), JobError> {
    let (mut run, version) = match ctx.store.sweep_run(run_id).await {
        Ok(found) => found,
        Err(crate::Error::Domain(_)) => {
            return Err(JobError::Permanent(Failure::Gone(format!(
                "BeyondTrust sweep run {run_id} is unknown"
            ))))
        }
        Err(e) => return Err(e.into()),
    };
    if run.state != SyncRunState::Queued {
        return Ok(());
    }
    run.started_at = Some(ctx.clock.now());
    let (state, summary) = match session_sweep::sweep(&ctx.store, ctx.queue.as_ref(), client).await {
        Ok(summary) => (SyncRunState::Done, summary),
        Err(e) => {
            tracing::warn!(error = %e, "BeyondTrust sweep failed");
            let summary = SyncSummary {
                reason: Some(format!("the sweep stopped: {e}")),
                ..SyncSummary::default()
            };
            (SyncRunState::Failed, summary)
        }
    };
    run.state = state;
    run.summary = summary;
    run.finished_at = Some(ctx.clock.now());
    ctx.store.save_sweep_run(&run, Some(version)).await?;
    tracing::info!(run_id, state = ?run.state, summary = ?run.summary, "BeyondTrust sweep finished");
    Ok(())
}

/// The session-import Lambda: an SQS `session-import` event is consumed (imports and
/// sweeps), an EventBridge schedule event queues a sweep.
pub async fn lambda_event(ctx: &Context, event: serde_json::Value) -> ServiceResult<serde_json::Value> {
    let from_sqs = event["Records"]
        .as_array()
        .is_some_and(|r| r.iter().all(|m| m["eventSource"] == "aws:sqs"));
    if from_sqs {
        let sqs: SqsEvent = serde_json::from_value(event)
            .map_err(|e| ServiceError::invalid("Records", format!("not an SQS event: {e}")))?;
        let response = sqs_batch(ctx, QueueName::SessionImport, sqs).await;
        return Ok(serde_json::to_value(response).expect("serializable"));
    }
    let run = request_run(ctx, &Actor::System, SyncTrigger::Schedule).await?;
    Ok(serde_json::to_value(run).expect("serializable"))
}
