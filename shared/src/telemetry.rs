//! Logging: `tracing` as JSON lines, one field per fact, never bodies or secrets.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once per process.
///
/// The level comes from `RUST_LOG`, else from Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by the
/// template's `LoggingConfig`), else `info`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .map(|level| level.to_lowercase())
        .unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(filter))
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
