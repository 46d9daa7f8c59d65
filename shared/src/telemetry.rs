//! One tracing setup for the local server and tests (Lambdas use the runtime's own
//! subscriber, which follows the function's logging config).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install a subscriber writing to stderr: JSON lines when `json`, else plain text, coloured
/// only when stderr is a terminal (a log redirected to a file gets no escape codes). The
/// level comes from `RUST_LOG` (default `info`). Calling it twice is harmless.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
