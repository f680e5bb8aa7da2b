//! The `loadgen` command line: `run` a scenario, `merge` partial results, `collect` a run
//! across hosts, `report` and `compare` results as HTML, print `figures`. Each command owns
//! its arguments, in its own module; this one only names the commands and dispatches to them.
//!
//! Exit status: 0 when every threshold holds, 1 when one fails, 2 on a setup error (bad
//! scenario, unreachable target, missing program), with a message that says what to do.
//! `compare`: 0 no regression, 1 a regression, 2 bad input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::compare::CompareArgs;
use crate::figures::FiguresArgs;
use crate::merge::MergeArgs;
use crate::plan::PlanArgs;
use crate::report::ReportArgs;
use crate::run::{CollectArgs, RunArgs};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "roomstorm load generator: simulated chat members, exact fan-out measurement"
)]
pub struct Cli {
    /// Log filter for loadgen's own diagnostics (stderr).
    #[arg(long, global = true, env = "LOADGEN_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file.
    Run(Box<RunArgs>),
    /// Merge partial results.json files exactly (histograms added, counters summed).
    Merge(MergeArgs),
    /// Collect a run across hosts from its coordinator: wait for every part, merge and judge.
    Collect(CollectArgs),
    /// Render the HTML report of a results.json (one self-contained file).
    Report(ReportArgs),
    /// Compare two results.json: HTML overlay, exit status 1 when the new run regressed.
    Compare(CompareArgs),
    /// Print figures of results.json files (one row each) and their median, or their slope
    /// against another figure: what the bench/ scripts judge.
    Figures(FiguresArgs),
    /// Plan past the machine: the worker cores, Redis shards, nginx cores and generator hosts
    /// a target load needs, from a run's measured costs, each figure with its assumptions.
    Plan(PlanArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    chat_server::logging::init_logging(&cli.log);
    chat_server::limits::raise_open_files_limit_or_warn("loadgen");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.command.only_prints() {
        stop_quietly_when_stdout_closes();
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => crate::run::run(*args).await,
            Command::Merge(args) => crate::merge::merge(args).await,
            Command::Collect(args) => crate::run::collect(args).await,
            Command::Report(args) => crate::report::report(args),
            Command::Compare(args) => crate::compare::compare(args),
            Command::Figures(args) => crate::figures::main(args),
            Command::Plan(args) => crate::plan::main(args),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

impl Command {
    /// Commands that read files and print (no socket, no child process): a reader that stops
    /// reading their output (`loadgen figures ... | head`) ends them, as it ends any Unix tool.
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Report(_) | Command::Compare(_) | Command::Figures(_) | Command::Plan(_)
        )
    }
}

/// Restores SIGPIPE's default action (Rust ignores it, so `println!` into a closed pipe
/// panicked with "failed printing to stdout"). Only for [`Command::only_prints`]: a run
/// writes to sockets and must survive a peer that went away.
fn stop_quietly_when_stdout_closes() {
    // SAFETY: setting a signal's disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
