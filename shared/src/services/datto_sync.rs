//! Datto sync runs: the button (`POST /api/sync/datto`), the EventBridge schedule and the
//! local scheduler all queue a run (`request_run`); the `datto-sync` consumer runs it.
//!
//! A run is a record (`store::SyncRun`: queued → running → done, failed or skipped, with
//! counts and errors) plus a message `{run_id}` on the `datto-sync` queue. The consumer
//! runs `jobs::alert_sync::run_once` under `RUN_TIMEOUT`, which is shorter than the
//! scheduled-alert-sync Lambda's timeout, so a run always ends with its state written.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde::{Deserialize, Serialize};

use super::consumers::sqs_batch;
use super::{Actor, Context, ServiceError, ServiceResult, Vendor};
use crate::jobs::alert_sync::run_once;
use crate::jobs::{run_batch, BatchOutcome, Failure, JobError};
use crate::ports::QueueName;
use crate::store::{Listing, PageRequest, SyncRun, SyncRunState, SyncSummary, SyncTrigger};

/// The longest one run may take before it is cut off and marked failed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(270);

/// The `datto-sync` message.
#[derive(Debug, Serialize, Deserialize)]
struct RunRequest {
    run_id: u64,
}

/// Queue a run. A run asked for through the API needs the Datto API configured (409
/// otherwise); a scheduled one is queued regardless and records why it was skipped.
pub async fn request_run(ctx: &Context, actor: &Actor, trigger: SyncTrigger) -> ServiceResult<SyncRun> {
    actor.require_admin("starting a sync")?;
    if trigger == SyncTrigger::Api {
        ctx.datto_api().await?;
    }
    let run = ctx.store.queue_sync_run(trigger).await?;
    let body = serde_json::to_string(&RunRequest { run_id: run.run_id }).expect("json");
    ctx.queue.send(QueueName::DattoSync, &body).await?;
    tracing::info!(run_id = run.run_id, ?trigger, "Datto sync run queued");
    Ok(run)
}

pub async fn run(ctx: &Context, actor: &Actor, id: u64) -> ServiceResult<SyncRun> {
    actor.require_admin("reading sync runs")?;
    Ok(ctx.store.sync_run(id).await?.0)
}

/// The most recent runs first.
pub async fn runs(ctx: &Context, actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<SyncRun>> {
    actor.require_admin("reading sync runs")?;
    Ok(ctx.store.sync_runs(page).await?)
}

/// `datto-sync`: run each queued run once.
pub async fn consume(ctx: &Context, messages: Vec<(String, String)>) -> BatchOutcome {
    // Runs share one lease, so they go one at a time.
    run_batch(messages, 1, |body| async move { execute_message(ctx, &body).await }).await
}

async fn execute_message(ctx: &Context, body: &str) -> Result<(), JobError> {
    let req: RunRequest = serde_json::from_str(body).map_err(|e| JobError::bad_message("datto-sync", e))?;
    let (mut run, version) = match ctx.store.sync_run(req.run_id).await {
        Ok(found) => found,
        Err(crate::Error::Domain(_)) => {
            return Err(JobError::Permanent(Failure::Gone(format!(
                "sync run {} is unknown",
                req.run_id
            ))))
        }
        Err(e) => return Err(e.into()),
    };
    let now = ctx.clock.now();
    let crashed = run.state == SyncRunState::Running
        && run
            .started_at
            .is_some_and(|s| now - s > chrono::Duration::from_std(RUN_TIMEOUT * 2).expect("small"));
    if run.state != SyncRunState::Queued && !crashed {
        tracing::info!(run_id = run.run_id, state = ?run.state, "sync run already handled");
        return Ok(());
    }
    run.state = SyncRunState::Running;
    run.started_at = Some(now);
    ctx.store.save_sync_run(&run, Some(version)).await?;
    let (state, summary) = execute(ctx, run.run_id).await;
    run.state = state;
    run.summary = summary;
    run.finished_at = Some(ctx.clock.now());
    ctx.store.save_sync_run(&run, Some(version + 1)).await?;
    tracing::info!(run_id = run.run_id, state = ?run.state, summary = ?run.summary, "Datto sync run finished");
    Ok(())
}

/// Run one sync and say how it ended.
async fn execute(ctx: &Context, run_id: u64) -> (SyncRunState, SyncSummary) {
    let failed = |reason: String| {
        let summary = SyncSummary {
            reason: Some(reason),
            ..SyncSummary::default()
        };
        (SyncRunState::Failed, summary)
    };
    let api = match ctx.datto_api().await {
        Ok(api) => api,
        Err(ServiceError::NotConfigured(Vendor::Datto)) => {
            let summary = SyncSummary {
                skipped: true,
                reason: Some("Datto API not configured".into()),
                ..SyncSummary::default()
            };
            return (SyncRunState::Skipped, summary);
        }
        Err(e) => {
            tracing::warn!(error = %e, "Datto sync could not connect");
            return failed(format!("could not connect to the Datto RMM API: {e}"));
        }
    };
    let holder = format!("run-{run_id}");
    let ran = tokio::time::timeout(
        RUN_TIMEOUT,
        run_once(&ctx.store, ctx.queue.as_ref(), api.as_ref(), &holder),
    )
    .await;
    match ran {
        Ok(Ok(summary)) if summary.skipped => (SyncRunState::Skipped, summary),
        Ok(Ok(summary)) => (SyncRunState::Done, summary),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Datto sync failed");
            failed(format!("the sync stopped: {e}"))
        }
        Err(_) => failed(format!(
            "the sync took longer than {} s and was stopped; the next run continues",
            RUN_TIMEOUT.as_secs()
        )),
    }
}

/// The scheduled-alert-sync Lambda: an EventBridge schedule event queues a run, an SQS
/// `datto-sync` event runs the queued ones (answering the partial batch failures).
pub async fn lambda_event(ctx: &Context, event: serde_json::Value) -> ServiceResult<serde_json::Value> {
    let from_sqs = event["Records"]
        .as_array()
        .is_some_and(|r| r.iter().all(|m| m["eventSource"] == "aws:sqs"));
    if from_sqs {
        let sqs: SqsEvent = serde_json::from_value(event)
            .map_err(|e| ServiceError::invalid("Records", format!("not an SQS event: {e}")))?;
        let response = sqs_batch(ctx, QueueName::DattoSync, sqs).await;
        return Ok(serde_json::to_value(response).expect("serializable"));
    }
    let run = request_run(ctx, &Actor::System, SyncTrigger::Schedule).await?;
    Ok(serde_json::to_value(run).expect("serializable"))
}
