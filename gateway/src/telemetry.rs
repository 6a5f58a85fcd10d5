//! JSON logs through tracing. Every line written inside a request carries the request's
//! span, and so its `request_id`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: JSON lines on stdout, filtered by `AURORA_LOG`
/// (default `info`). Safe to call more than once; later calls do nothing.
pub fn init() {
    install(false);
}

/// Like [`init`], but on stderr: for commands whose stdout is their result
/// (`aurora admin create` prints a token there).
pub fn init_stderr() {
    install(true);
}

fn install(stderr: bool) {
    let filter =
        EnvFilter::try_from_env("AURORA_LOG").unwrap_or_else(|_| EnvFilter::new("info,warp=warn"));
    let builder = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true);
    let _ = if stderr {
        builder.with_writer(std::io::stderr).try_init()
    } else {
        builder.try_init()
    };
}
