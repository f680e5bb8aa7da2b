//! The `loadgen` command line: `run` a scenario, `merge` partial results, `report` and
//! `compare` results as HTML.
//!
//! Exit status: 0 when every threshold holds, 1 when one fails, 2 on a setup error (bad
//! scenario, unreachable target, missing program), with a message that says what to do.
//! `compare`: 0 no regression, 1 a regression, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    Run(RunArgs),
    /// Merge partial results.json files exactly (histograms added, counters summed).
    Merge(MergeArgs),
    /// Render the HTML report of a results.json (one self-contained file).
    Report(ReportArgs),
    /// Compare two results.json: HTML overlay, exit status 1 when the new run regressed.
    Compare(CompareArgs),
    /// Print figures of results.json files (one row each) and their median, or their slope
    /// against another figure: what the bench/ scripts judge.
    Figures(crate::figures::FiguresArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario, e.g. scenarios/smoke.toml.
    pub scenario: PathBuf,
    /// Run against this server instead of the scenario's target (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub target: Option<String>,
    /// Folder for results.json and logs (default: runs/<scenario>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the number of members.
    #[arg(long)]
    pub members: Option<u32>,
    /// Override the number of rooms.
    #[arg(long)]
    pub rooms: Option<u32>,
    /// Override the steady-phase duration, e.g. 30s or 2m.
    #[arg(long)]
    pub duration: Option<String>,
    /// Override the per-member message rate (messages per second).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Override the random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No live progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// Split the members over this many processes (whole rooms each; results merged exactly).
    /// Default: one process per 15,000 members (a process may hold 20,000 open files).
    #[arg(long)]
    pub processes: Option<u32>,
    /// Also sample the CPU and memory of this process and all its descendants (children of
    /// children included, found again every few seconds) into results.json `resources`, as
    /// the component NAME: e.g. `--sample "chat workers=$(pgrep -f 'chat-server cluster')"`.
    /// Repeatable. For a server this run did not start (a `--target` URL); a local stack's
    /// processes are sampled anyway.
    #[arg(long = "sample", value_name = "NAME=PID", value_parser = crate::resources::parse_sample)]
    pub samples: Vec<(String, u32)>,
    /// Internal: run only part I of N (rooms whose index % N == I), as a child process.
    #[arg(long, hide = true, value_parser = parse_part)]
    pub part: Option<(u32, u32)>,
    /// Internal: the run clock time (µs since the epoch) at which every part starts.
    #[arg(long, hide = true)]
    pub start_at: Option<u64>,
}

fn parse_part(text: &str) -> Result<(u32, u32), String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N")?;
    let i: u32 = i.parse().map_err(|_| "I is not a number")?;
    let n: u32 = n.parse().map_err(|_| "N is not a number")?;
    if n == 0 || i >= n {
        return Err(format!("part {i}/{n} does not exist"));
    }
    Ok((i, n))
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Partial results to merge.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged results.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The results to render.
    pub results: PathBuf,
    /// Where to write the page (default: report.html beside the results).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The reference run's results.json.
    pub base: PathBuf,
    /// The run to judge against it.
    pub new: PathBuf,
    /// Where to write the page (default: compare.html beside the new results).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// How much worse tail latency and error rates may get: `10%` or `0.1`.
    #[arg(long, default_value = "10%", value_parser = crate::render::parse_tolerance)]
    pub tolerance: f64,
    /// What the base run is, e.g. `node` (default: its folder's name, for a results.json).
    #[arg(long)]
    pub base_label: Option<String>,
    /// What the new run is, e.g. `ours` (default: its folder's name, for a results.json).
    #[arg(long)]
    pub new_label: Option<String>,
}

/// A failure before any measurement: exit status 2.
#[derive(Debug)]
pub struct SetupError(pub anyhow::Error);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for SetupError {}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    chat_server::logging::init_logging(&cli.log);
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => crate::run::run(args).await,
            Command::Merge(args) => crate::run::merge(args).await,
            Command::Report(args) => crate::render::report(args),
            Command::Compare(args) => crate::render::compare(args),
            Command::Figures(args) => crate::figures::main(args),
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
