//! The `chat-server` command line: one subcommand per role.

use clap::{Parser, Subcommand};

use crate::config::WorkerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "chat-server",
    version,
    about = "roomstorm chat cluster: Socket.IO workers, Redis fan-out, nginx in front"
)]
pub struct Cli {
    /// Log filter, e.g. `info` or `chat_server=debug`.
    #[arg(long, global = true, env = "CHAT_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one chat worker.
    Worker(WorkerConfig),
    /// Run the cluster master: N workers on consecutive ports, restarted when they die.
    Cluster(crate::cluster::ClusterConfig),
    /// Run Redis, the cluster and nginx on loopback until Ctrl-C.
    Stack(crate::stack::StackArgs),
    /// Print (or write) the nginx config for the given workers.
    NginxConfig(crate::nginx::RenderCommand),
}

/// Parses argv and runs the chosen role; the process exit code is derived from the result.
pub fn main() -> anyhow::Result<()> {
    main_from(std::env::args_os())
}

/// Runs `chat-server` with these arguments (the first is the program name); lets another
/// binary embed the server as a subcommand.
pub fn main_from<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    crate::logging::init_logging(&cli.log);
    crate::limits::raise_open_files_limit_or_warn("chat-server");
    match cli.command {
        Command::Worker(config) => {
            worker_runtime(config.runtime)?.block_on(crate::worker::run(config))
        }
        Command::Cluster(config) => crate::cluster::run(config),
        Command::Stack(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(crate::stack::run(args)),
        Command::NginxConfig(command) => command.run(),
    }
}

fn worker_runtime(kind: crate::config::RuntimeKind) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match kind {
        crate::config::RuntimeKind::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        crate::config::RuntimeKind::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}
