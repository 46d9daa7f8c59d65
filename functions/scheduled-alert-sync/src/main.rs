//! Lambda `scheduled-alert-sync`: the EventBridge schedule runs one Datto sync.

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let host = deskbridge::hosting::aws_host().await?.with_queue();
    let state = &host.state;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async move {
        let summary = deskbridge::jobs::alert_sync::scheduled(state, &event.context.request_id).await?;
        Ok::<_, lambda_runtime::Error>(summary)
    }))
    .await
}
