//! Lambda `alert-enricher`: SQS `alert-enrich` → Datto details onto new alert tickets,
//! reporting partial batch failures.

use aws_lambda_events::event::sqs::SqsEvent;
use deskbridge::jobs::consumers::{alert_enrich, sqs_batch};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let host = deskbridge::cold_start::reported(deskbridge::hosting::aws_host().await).await?;
    let state = &host.state;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(sqs_batch(event.payload, |m| alert_enrich(state, m)).await)
    }))
    .await
}
