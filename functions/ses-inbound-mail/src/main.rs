//! Lambda `ses-inbound-mail`: SES receipt events → raw mail from S3 → alert intake.

use aws_lambda_events::event::ses::SimpleEmailEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let host = deskbridge::hosting::aws_host().await?;
    let source = host.mail_source()?;
    let (store, clock) = (host.state.store.clone(), host.state.clock.clone());
    lambda_runtime::run(service_fn(|event: LambdaEvent<SimpleEmailEvent>| {
        let (store, source, clock) = (&store, &source, &clock);
        async move {
            let outcomes = deskbridge::intake::ses::handle_ses_event(store, source, event.payload, clock.now()).await?;
            Ok::<_, lambda_runtime::Error>(deskbridge::intake::ses::summary(&outcomes))
        }
    }))
    .await
}
