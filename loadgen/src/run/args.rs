//! `loadgen run`'s arguments, and the ones a split run hands on to its part processes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::admin::AdminUrl;
use crate::coord::parse_run_id;
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
    /// Override the local stack's chat workers (`target.local.workers`): each holds one open
    /// file per member, under a 20,000 limit per process here.
    #[arg(long, conflicts_with = "target")]
    pub workers: Option<u32>,
    /// Override the local stack's nginx workers (`target.local.nginx_workers`): each holds two
    /// open files per member it proxies.
    #[arg(long, conflicts_with = "target")]
    pub nginx_workers: Option<u32>,
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
    /// Run only part I of N of the rooms (rooms whose index % N == I; whole rooms, so a room's
    /// senders and receivers share this host's clock). With --coordinator: this host's part of
    /// a run across hosts; `auto/N` takes the lowest part no host took yet. Without it: a child
    /// process of a split run (--processes), started by loadgen itself.
    #[arg(long, value_name = "I/N", value_parser = parse_part)]
    pub part: Option<PartArg>,
    /// A Redis (redis://HOST:PORT) that every part of a run across hosts reaches: the parts
    /// register there, start together at the time it publishes, and hand their results to it;
    /// part 0 then writes the merged results.json and report (or `loadgen collect` does).
    #[arg(
        long,
        value_name = "URL",
        requires = "part",
        conflicts_with = "processes"
    )]
    pub coordinator: Option<String>,
    /// With --coordinator: the run's name in the coordinator, the same on every host
    /// (default: the scenario's name). A new run with the same id never mixes with an old one.
    #[arg(long, value_name = "ID", requires = "coordinator", value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// With --coordinator: how long a part waits for the others; then every part stops with
    /// exit status 2, naming the parts that never arrived.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub barrier_timeout: Duration,
    /// With --coordinator: a part whose clock differs from the coordinator's by more than this
    /// is reported (results.json `hosts`, and a warning). Its start is corrected either way.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "100ms")]
    pub max_clock_offset: Duration,
    /// Internal: the run clock time (µs since the epoch) at which every part starts.
    #[arg(long, hide = true)]
    pub start_at: Option<u64>,
}

/// The workspace's one duration parser (scenario files, results, flags), as clap calls it.
fn parse_duration(text: &str) -> Result<Duration, String> {
    roomstorm_results::units::parse_duration(text)
}

/// `--part I/N` or `auto/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartArg {
    /// I; `None` for `auto`.
    pub index: Option<u32>,
    /// N.
    pub of: u32,
}

fn parse_part(text: &str) -> Result<PartArg, String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N or auto/N")?;
    let n: u32 = n.parse().map_err(|_| "N is not a number")?;
    if n == 0 {
        return Err("a run has at least one part".into());
    }
    if i == "auto" {
        return Ok(PartArg { index: None, of: n });
    }
    let i: u32 = i.parse().map_err(|_| "I is not a number (or auto)")?;
    if i >= n {
        return Err(format!("part {i}/{n} does not exist (parts count from 0)"));
    }
    Ok(PartArg {
        index: Some(i),
        of: n,
    })
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
    fn parts_are_an_index_or_auto_of_n() {
        let part = |index, of| Ok(PartArg { index, of });
        assert_eq!(parse_part("0/3"), part(Some(0), 3));
        assert_eq!(parse_part("2/3"), part(Some(2), 3));
        assert_eq!(parse_part("auto/3"), part(None, 3));
        for bad in ["3/3", "1/0", "auto/0", "x/3", "3", "-1/3"] {
            assert!(parse_part(bad).is_err(), "{bad}");
        }
    }

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
