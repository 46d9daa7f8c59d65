//! Lambda `helpdesk-api`: the helpdesk API router served through lambda_http.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let host = deskbridge::hosting::aws_host().await?.with_queue().with_mailer();
    lambda_http::run(deskbridge::http::helpdesk_router(host.ctx)).await
}
