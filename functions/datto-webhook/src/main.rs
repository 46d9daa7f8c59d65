//! Lambda `datto-webhook`: Datto monitor webhooks, served through lambda_http.

use deskbridge::{cold_start, hosting};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let host = cold_start::reported(hosting::aws_host().await).await?.with_queue();
    lambda_http::run(deskbridge::http::datto_router(host.ctx)).await
}
