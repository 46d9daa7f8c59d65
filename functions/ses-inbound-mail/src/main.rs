//! Lambda `ses-inbound-mail`: SES receipt events → raw mail from S3 → alert intake.

use aws_lambda_events::event::ses::SimpleEmailEvent;
use deskbridge::{cold_start, hosting};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    deskbridge::telemetry::init_lambda();
    let host = cold_start::reported(hosting::aws_host().await).await?.with_queue();
    let source = cold_start::reported(host.mail_source()).await?;
    let ctx = &host.ctx;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SimpleEmailEvent>| {
        let source = &source;
        async move {
            let summary = deskbridge::services::alert_intake::ses_event(ctx, source, event.payload).await?;
            Ok::<_, lambda_runtime::Error>(summary)
        }
    }))
    .await
}
