//! Lambda `helpdesk-api`: the helpdesk API router served through lambda_http.

use deskbridge::{cold_start, hosting};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    deskbridge::telemetry::init_lambda();
    let host = cold_start::reported(hosting::aws_host().await)
        .await?
        .with_queue()
        .with_mailer();
    lambda_http::run(deskbridge::http::helpdesk_router(host.ctx)).await
}
