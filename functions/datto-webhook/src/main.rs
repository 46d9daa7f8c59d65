//! Lambda `datto-webhook`: Datto monitor webhooks, served through lambda_http.

use deskbridge::{cold_start, hosting};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    deskbridge::telemetry::init_lambda();
    let host = cold_start::reported(hosting::aws_host().await).await?.with_queue();
    lambda_http::run(deskbridge::http::datto_router(host.ctx)).await
}
