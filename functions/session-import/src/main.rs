//! Lambda `session-import`: SQS `session-import` → BeyondTrust session reports onto tickets,
//! chats or the list for manual linking (and queued lost-end-event sweeps), reporting
//! partial batch failures; its EventBridge schedule queues a sweep.

use deskbridge::{cold_start, hosting};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deskbridge::telemetry::init_lambda();
    let host = cold_start::reported(hosting::aws_host().await).await?.with_queue();
    let ctx = &host.ctx;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async move {
        let answer = deskbridge::services::beyondtrust_sync::lambda_event(ctx, event.payload).await?;
        Ok::<_, lambda_runtime::Error>(answer)
    }))
    .await
}
