//! Lambda `scheduled-alert-sync`: the EventBridge schedule queues a Datto sync run, and the
//! SQS `datto-sync` queue (fed by the schedule and `POST /api/sync/datto`) runs it.

use deskbridge::{cold_start, hosting};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deskbridge::telemetry::init_lambda();
    let host = cold_start::reported(hosting::aws_host().await).await?.with_queue();
    let ctx = &host.ctx;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async move {
        let answer = deskbridge::services::datto_sync::lambda_event(ctx, event.payload).await?;
        Ok::<_, lambda_runtime::Error>(answer)
    }))
    .await
}
