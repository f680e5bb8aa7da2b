//! `loadgen run`'s arguments, and the ones a split run hands on to its part processes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::admin::AdminUrl;
use crate::scenario::format_duration;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario, e.g. scenarios/smoke.toml.
    pub scenario: PathBuf,
    /// Run against this server instead of the scenario's target (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub target: Option<String>,
    /// With a URL target that is our cluster (e.g. in docker compose): the cluster master's
    /// admin address (`chat-server cluster --admin`), e.g. http://chat:9000. loadgen asks its
    /// /workers once for the workers' ports and samples each worker's /stats at that host, for
    /// results.json `workers` (per-worker counts) as with the local stack.
    #[arg(long, value_name = "URL", value_parser = AdminUrl::parse)]
    pub admin: Option<AdminUrl>,
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
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
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

/// The workspace's one duration parser (scenario files, results, flags), as clap calls it.
fn parse_duration(text: &str) -> Result<Duration, String> {
    roomstorm_results::units::parse_duration(text)
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

impl RunArgs {
    /// The command-line overrides a part must repeat.
    pub(super) fn passed_overrides(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut pass = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push(flag.to_string());
                out.push(v);
            }
        };
        pass("--members", self.members.map(|v| v.to_string()));
        pass("--rooms", self.rooms.map(|v| v.to_string()));
        pass("--duration", self.duration.map(format_duration));
        pass("--rate", self.rate.map(|v| v.to_string()));
        pass("--seed", self.seed.map(|v| v.to_string()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_passed_on_reads_back_the_same() {
        for text in ["30s", "2m", "1.5s", "250ms", "1h", "0.001s"] {
            let duration = parse_duration(text).expect("a duration");
            let args = RunArgs {
                duration: Some(duration),
                ..RunArgs::for_test()
            };
            let passed = args.passed_overrides();
            assert_eq!(passed[0], "--duration");
            assert_eq!(parse_duration(&passed[1]), Ok(duration), "{text}");
        }
    }

    /// `loadgen run x.toml` with no flag.
    impl RunArgs {
        fn for_test() -> Self {
            #[derive(clap::Parser)]
            struct Command {
                #[command(flatten)]
                args: RunArgs,
            }
            <Command as clap::Parser>::try_parse_from(["run", "x.toml"])
                .expect("parses")
                .args
        }
    }
}
