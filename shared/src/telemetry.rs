//! One tracing setup for the local server and tests (Lambdas use the runtime's own
//! subscriber, which follows the function's logging config).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Directives that cap the AWS SDK's and HTTP stack's own logging at DEBUG whatever the
/// base level: at TRACE the SDK logs raw response bodies (every DynamoDB item read,
/// password hashes and sealed tokens included). The Lambdas log at INFO (template.yaml).
pub const WIRE_LOG_CAP: &str = "aws_smithy_runtime=debug,aws_smithy_runtime_api=debug,aws_smithy_http=debug,aws_sdk_dynamodb=debug,hyper=debug,hyper_util=debug,h2=debug";

/// `base` (an EnvFilter string such as `trace`) with `WIRE_LOG_CAP` on top.
pub fn filter(base: &str) -> EnvFilter {
    EnvFilter::new(format!("{base},{WIRE_LOG_CAP}"))
}

/// Install a subscriber writing to stderr: JSON lines when `json`, else plain text, coloured
/// only when stderr is a terminal (a log redirected to a file gets no escape codes). The
/// level comes from `RUST_LOG` (default `info`). Calling it twice is harmless.
pub fn init(json: bool) {
    let filter = filter(&std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
