//! Logging: `tracing` as JSON lines, one field per fact, never bodies or secrets.
//!
//! Every line written while a request is handled carries the request's span
//! (`span.function`, `span.request_id`, `span.route`, see [`crate::http::serve`]).

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the JSON subscriber once per process.
///
/// The level comes from `RUST_LOG`, else from Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by the
/// template's `LoggingConfig`), else `info`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .map(|level| level.to_lowercase())
        .unwrap_or_else(|_| "info".to_owned());
    let _ = tracing::subscriber::set_global_default(json_subscriber(&filter, std::io::stdout));
}

/// The JSON subscriber every function logs through, writing to `writer` at `filter`
/// (tests capture the very lines a function writes in Lambda).
pub fn json_subscriber<W>(filter: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(filter))
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
}
