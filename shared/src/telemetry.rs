//! The tracing setup of every host: the local server and tests (`init`), and the Lambdas
//! (`init_lambda`, which follows the function's logging config); both cap the wire logs.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Directives that cap the AWS SDK's and HTTP stack's own logging at DEBUG whatever the
/// base level: at TRACE the SDK logs raw response bodies (every DynamoDB item read,
/// password hashes and sealed tokens included). The Lambdas log at INFO (template.yaml).
pub const WIRE_LOG_CAP: &str = "aws_smithy_runtime=debug,aws_smithy_runtime_api=debug,aws_smithy_http=debug,aws_sdk_dynamodb=debug,hyper=debug,hyper_util=debug,h2=debug";

/// `base` (an EnvFilter string such as `trace`) with `WIRE_LOG_CAP` on top when `base`
/// enables TRACE anywhere (a base of `info` or `debug` is left as it is: the cap's
/// `=debug` directives would raise those targets above it).
pub fn filter(base: &str) -> EnvFilter {
    let plain = EnvFilter::new(base);
    if plain
        .max_level_hint()
        .is_some_and(|l| l < tracing_subscriber::filter::LevelFilter::DEBUG)
    {
        return plain;
    }
    EnvFilter::new(format!("{base},{WIRE_LOG_CAP}"))
}

/// The filter of a Lambda: Lambda's log level (`AWS_LAMBDA_LOG_LEVEL`, set by the function's
/// logging config) if set, else `RUST_LOG`, else `info`, with `WIRE_LOG_CAP` on top, so a
/// function switched to TRACE still logs no raw SDK body.
pub fn lambda_filter(lambda_log_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    let base = match (lambda_log_level, rust_log) {
        (Some(level), _) if !level.trim().is_empty() => level.trim().to_lowercase(),
        (_, Some(directives)) if !directives.trim().is_empty() => directives.trim().to_string(),
        _ => "info".to_string(),
    };
    filter(&base)
}

/// Install a Lambda's subscriber, as lambda_runtime's default one does (stdout, no time or
/// target, JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`) but with [`lambda_filter`].
/// Calling it twice is harmless.
pub fn init_lambda() {
    let var = |k: &str| std::env::var(k).ok();
    let filter = lambda_filter(var("AWS_LAMBDA_LOG_LEVEL").as_deref(), var("RUST_LOG").as_deref());
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a subscriber with `filter` writes of one TRACE line of ours and one of the SDK.
    fn logged(filter: EnvFilter) -> String {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "deskbridge::store", "ours at trace");
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "raw body with a secret");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "sdk at debug");
        });
        let out = lines.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_lambda_at_trace_still_logs_no_raw_sdk_body() {
        let out = logged(lambda_filter(Some("TRACE"), Some("info")));
        assert!(
            out.contains("ours at trace"),
            "Lambda's level wins over RUST_LOG: {out}"
        );
        assert!(out.contains("sdk at debug"), "{out}");
        assert!(!out.contains("raw body"), "the SDK is capped at DEBUG: {out}");
        let out = logged(lambda_filter(None, Some("trace")));
        assert!(out.contains("ours at trace") && !out.contains("raw body"), "{out}");
        let out = logged(lambda_filter(None, None));
        assert!(
            !out.contains("ours at trace") && !out.contains("sdk at debug"),
            "info by default: {out}"
        );
    }
}
