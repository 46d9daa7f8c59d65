//! Lambda `datto-webhook`: Datto monitor webhooks, served through lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let host = deskbridge::hosting::aws_host().await?.with_queue();
    lambda_http::run(deskbridge::http::datto_router(host.ctx)).await
}
