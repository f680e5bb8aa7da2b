//! Log setup shared by every role of `chat-server` and by the load generator, which embeds the
//! server: it lives apart from the command line so that borrowing it does not mean depending on
//! the server's CLI.

/// Sends logs to stderr, filtered by `filter` (e.g. `info`, `chat_server=debug`; an invalid
/// filter falls back to `info`). Colours only on a terminal: `docker compose logs`, journald and
/// log files get plain text. A second call does nothing.
pub fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
