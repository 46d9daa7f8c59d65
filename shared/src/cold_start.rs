//! A Lambda cold start that fails is reported to the Runtime API (`/init/error`) before the
//! process exits, so Lambda and `cargo lambda watch` show why instead of a bare exit or a hang.

use lambda_runtime_api_client::body::Body;

/// Pass a successful start through; report a failed one to `/init/error`, then return it.
///
/// Lambda mains wrap their set-up with it: `let host = cold_start::reported(aws_host().await).await?;`.
pub async fn reported<T, E>(started: Result<T, E>) -> Result<T, lambda_runtime_api_client::BoxError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match started {
        Ok(value) => Ok(value),
        Err(error) => {
            let message = error.to_string();
            if let Err(report) = report_init_error(&message).await {
                eprintln!("could not report the init error to the Lambda Runtime API: {report}");
            }
            Err(Box::new(error))
        }
    }
}

/// POST `{errorType, errorMessage}` to `/2018-06-01/runtime/init/error`.
async fn report_init_error(message: &str) -> Result<(), lambda_runtime_api_client::BoxError> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return Err("AWS_LAMBDA_RUNTIME_API is not set (not running under a Lambda runtime)".into());
    }
    let body = serde_json::json!({"errorType": "Runtime.InitError", "errorMessage": message});
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body)?))?;
    let client = lambda_runtime_api_client::Client::builder().build()?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("the Runtime API answered {}", response.status()).into());
    }
    Ok(())
}
