//! `loadgen`: run scenarios against a chat cluster, merge partial results.
//!
//! The binary also embeds the chat server (`loadgen chat-server ...`), so the local stack a
//! scenario asks for needs nothing besides this one binary, redis-server and nginx.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let _program = args.next();
    let rest: Vec<_> = args.collect();
    // Whatever this process starts of the chat server is this binary, as `loadgen chat-server`.
    chat_server::process::set_self_prefix(vec!["chat-server".into()]);
    if rest.first().is_some_and(|a| a == "chat-server") {
        // `chat-server` is the embedded server's own name in its usage lines.
        let argv = std::iter::once("chat-server".into()).chain(rest.into_iter().skip(1));
        return match chat_server::cli::main_from::<_, std::ffi::OsString>(argv) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chat-server: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    loadgen::cli::main()
}
