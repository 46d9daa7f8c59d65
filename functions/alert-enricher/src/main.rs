//! Lambda `alert-enricher`: SQS `alert-enrich` → Datto details onto new alert tickets,
//! reporting partial batch failures.

use aws_lambda_events::event::sqs::SqsEvent;
use deskbridge::ports::QueueName;
use deskbridge::services::consumers::sqs_batch;
use deskbridge::{cold_start, hosting};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deskbridge::telemetry::init_lambda();
    let host = cold_start::reported(hosting::aws_host().await).await?.with_queue();
    let ctx = &host.ctx;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(sqs_batch(ctx, QueueName::AlertEnrich, event.payload).await)
    }))
    .await
}
