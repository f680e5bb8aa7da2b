//! `loadgen plan`: how many worker cores, Redis shards, nginx cores and generator hosts a
//! target load needs, from the costs one run measured (CPU per delivery and memory per member
//! of each part of the cluster, in results.json) and assumptions stated beside every figure.
//! Past one machine nobody can run the target to see; this says what it takes, and why.
//!
//! ```text
//! loadgen plan --from runs/x/results.json --members 1000000 --rooms 10000 --rate 0.0167
//! loadgen plan --from runs/x/results.json --members 1000000 --rooms 10000 --rate 0.0167 --json
//! ```
//!
//! `measured` reads (and refuses) the file, `sizing` does the arithmetic, `render` the text.

mod measured;
mod render;
mod sizing;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use crate::results::Results;
use measured::{Costs, Measured};
use sizing::{Assumptions, Plan, Target};

/// The share of a process's open files a plan gives to members: loadgen's own 15,000 members
/// per process of 20,000 files (`run::MEMBERS_PER_PROCESS`); the rest covers a polling
/// member's second connection, listeners, logs and Redis.
pub const MEMBER_SHARE_OF_OPEN_FILES: f64 = 0.75;

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// The results.json of a run of the whole cluster: the local stack, or a --target URL run
    /// with --admin and --sample for its workers, nginx and Redis.
    #[arg(long, value_name = "RESULTS")]
    pub from: PathBuf,
    /// Members to plan for.
    #[arg(long)]
    pub members: u64,
    /// Rooms they are in (planned as rooms of equal size).
    #[arg(long)]
    pub rooms: u64,
    /// Messages per member per second.
    #[arg(long)]
    pub rate: f64,
    /// Provision CPU and memory at this multiple of the computed need (at least 1).
    #[arg(long, default_value_t = 1.5)]
    pub headroom: f64,
    /// Open files one process may hold (this project's machines: 20,000).
    #[arg(long, default_value_t = 20_000)]
    pub open_files: u64,
    /// Client ports per (source address, nginx address) pair: the local port range
    /// (32768-60999 here).
    #[arg(long, default_value_t = 28_232)]
    pub ports_per_address: u64,
    /// Source addresses each generator host connects from.
    #[arg(long, default_value_t = 1)]
    pub source_addresses: u64,
    /// Cores of one generator host.
    #[arg(long, default_value_t = 16)]
    pub host_cores: u64,
    /// Memory of one generator host, GiB.
    #[arg(long, default_value_t = 64.0)]
    pub host_memory_gib: f64,
    /// Print the plan as JSON (the measured figures, the costs, the plan, notes, assumptions).
    #[arg(long)]
    pub json: bool,
}

impl PlanArgs {
    fn target(&self) -> anyhow::Result<Target> {
        if self.members == 0 || self.rooms == 0 || self.rooms > self.members {
            bail!(
                "--members {} --rooms {}: need at least one member per room",
                self.members,
                self.rooms
            );
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!(
                "--rate {}: messages per member per second, above 0",
                self.rate
            );
        }
        Ok(Target {
            members: self.members,
            rooms: self.rooms,
            rate_per_member: self.rate,
        })
    }

    fn assumptions(&self) -> anyhow::Result<Assumptions> {
        if !(self.headroom.is_finite() && self.headroom >= 1.0) {
            bail!("--headroom {}: a factor of at least 1", self.headroom);
        }
        if self.open_files < 4 || self.ports_per_address == 0 || self.source_addresses == 0 {
            bail!("--open-files, --ports-per-address and --source-addresses must be positive");
        }
        if self.host_cores == 0 || !(self.host_memory_gib.is_finite() && self.host_memory_gib > 0.0)
        {
            bail!("--host-cores and --host-memory-gib must be positive");
        }
        Ok(Assumptions {
            headroom: self.headroom,
            open_files: self.open_files,
            member_share_of_open_files: MEMBER_SHARE_OF_OPEN_FILES,
            ports_per_address: self.ports_per_address,
            source_addresses_per_host: self.source_addresses,
            host_cores: self.host_cores,
            host_memory_gib: self.host_memory_gib,
        })
    }
}

/// Prints the plan; an error (exit status 2) for bad flags or a file lacking a figure.
pub fn main(args: PlanArgs) -> anyhow::Result<bool> {
    let target = args.target()?;
    let assumptions = args.assumptions()?;
    let results = Results::read(&args.from)?;
    let from = args.from.display().to_string();
    let measured = Measured::of(&results).with_context(|| format!("cannot plan from {from}"))?;
    let plan = sizing::plan(target, &measured, assumptions);
    let text = if args.json {
        serde_json::to_string_pretty(&json(&plan, &measured, &from))? + "\n"
    } else {
        render::text(&plan, &measured, &from)
    };
    write_out(&text)?;
    Ok(true)
}

/// Writes to stdout; a reader that stopped early (`| head`) is not an error.
fn write_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The plan for scripts: what was measured, the costs per unit, the plan, and the words.
fn json(plan: &Plan, measured: &Measured, from: &str) -> serde_json::Value {
    let assumptions: Vec<serde_json::Value> = render::assumptions(&plan.assumptions, measured)
        .into_iter()
        .map(|(key, text)| serde_json::json!({"key": key, "text": text}))
        .collect();
    serde_json::json!({
        "from": from,
        "measured": measured,
        "costs": Costs::of(measured),
        "plan": plan,
        "notes": render::notes(plan, measured),
        "assumptions": assumptions,
    })
}

#[cfg(test)]
mod tests {
    use super::measured::Role;
    use super::*;

    #[test]
    fn the_member_share_is_loadgens_own_split() {
        let a = PlanArgs {
            from: PathBuf::new(),
            members: 1,
            rooms: 1,
            rate: 1.0,
            headroom: 1.5,
            open_files: 20_000,
            ports_per_address: 1,
            source_addresses: 1,
            host_cores: 1,
            host_memory_gib: 1.0,
            json: false,
        }
        .assumptions()
        .expect("valid");
        assert_eq!(
            sizing::members_per_process(Role::Generator, &a),
            u64::from(crate::run::MEMBERS_PER_PROCESS)
        );
    }
}
