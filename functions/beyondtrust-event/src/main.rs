//! Lambda `beyondtrust-event`: BeyondTrust outbound events (`POST /beyondtrust/events/{token}`),
//! served through lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let host = deskbridge::hosting::aws_host().await?.with_queue();
    lambda_http::run(deskbridge::http::beyondtrust_router(host.ctx)).await
}
