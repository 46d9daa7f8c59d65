//! Lambda `ticket-close-propagator`: SQS `ticket-closed` → resolve the alert in Datto,
//! reporting partial batch failures.

use aws_lambda_events::event::sqs::SqsEvent;
use deskbridge::jobs::consumers::{sqs_batch, ticket_closed};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let host = deskbridge::cold_start::reported(deskbridge::hosting::aws_host().await).await?;
    let state = &host.state;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(sqs_batch(event.payload, |m| ticket_closed(state, m)).await)
    }))
    .await
}
