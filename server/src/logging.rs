//! Log setup shared by every role of `chat-server` and by the load generator, which embeds the
//! server: it lives apart from the command line so that borrowing it does not mean depending on
//! the server's CLI.

/// Sends logs to stderr, filtered by `filter` (e.g. `info`, `chat_server=debug`; an invalid
/// filter falls back to `info`). A second call does nothing.
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
