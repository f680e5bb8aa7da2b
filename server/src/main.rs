//! `chat-server`: see `cli` for the subcommands.

fn main() -> std::process::ExitCode {
    match chat_server::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
