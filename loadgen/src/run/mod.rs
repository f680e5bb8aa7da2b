//! `loadgen run`: one run from scenario file to results.json.
//!
//! The order matters and is kept in one place: load and check the scenario, start (or reach)
//! the target, run the attack in this process or split over several, write and judge the
//! results, always tear the local stack down, then print the summary and write the report.

mod args;
mod collect;
mod folder;
mod hosts;
mod observe;
mod process;
mod spec;
mod split;
mod start;
mod timing;
mod whole;

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, bail};

pub use args::{PartArg, RunArgs};
pub use collect::{CollectArgs, collect};

use crate::clock::now_us;
use crate::resources::{self, Sources};
use crate::results::Verdict;
use crate::scenario::{Overrides, Scenario};
use crate::target::RunningTarget;
use folder::run_folder;
use process::{RunParams, run_process};

/// Members one process holds at most: it may hold 20,000 open files, and a polling member
/// can briefly need two.
pub const MEMBERS_PER_PROCESS: u32 = 15_000;

/// Runs the scenario; Ok(true) when every threshold held.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let scenario = load_scenario(&args)?;
    if let (Some(coordinator), Some(part)) = (&args.coordinator, args.part) {
        return hosts::run_part(&args, &scenario, coordinator, part).await;
    }
    // Before the run folder or anything else exists: a scenario that cannot run as written
    // (faults without the full local stack, --admin beside the local stack) stops here, with
    // exit status 2.
    let start = start::what_to_start(&scenario, args.admin.clone())?;
    let out = run_folder(args.out.as_deref(), &scenario.name, SystemTime::now())?;
    if let Some(part) = args.part {
        let index = part
            .index
            .context("--part auto/N needs --coordinator, which hands the parts out")?;
        return run_part(&args, &scenario, &out, (index, part.of)).await;
    }
    let processes = args
        .processes
        .unwrap_or_else(|| scenario.population.members.div_ceil(MEMBERS_PER_PROCESS))
        .max(1);
    for (name, pid) in &args.samples {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("--sample {name}={pid}: no process {pid} is running");
        }
    }
    let target = start::start_target(start, &out).await?;
    let outcome = if processes > 1 {
        split::run_split(&args, &scenario, &target, &out, processes).await
    } else {
        let sources = observe::sources(&target, Vec::new(), &args.samples).await;
        run_process(RunParams {
            scenario: &scenario,
            target: &target,
            out: &out,
            quiet: args.quiet,
            part: None,
            start_us: now_us(),
            sources,
            hosts: Vec::new(),
        })
        .await
    };
    target.shutdown().await;
    let results = outcome?;
    crate::summary::print_summary(&results, &out);
    // The HTML report of the whole run (merged, for a split run) beside results.json.
    match crate::report::write_report(&results, &out) {
        Ok(path) => println!("  report: {}", path.display()),
        Err(e) => eprintln!("loadgen: the report could not be written: {e:#}"),
    }
    Ok(results.verdict == Verdict::Pass)
}

/// One part of a split run, as a child process: against the parent's target, from the
/// parent's start time, quietly; the parent prints and reports.
async fn run_part(
    args: &RunArgs,
    scenario: &Scenario,
    out: &Path,
    part: (u32, u32),
) -> anyhow::Result<bool> {
    let url = args.target.clone().context("--part needs --target")?;
    // The parent samples the workers, once for the whole run: a part has none.
    let target = RunningTarget::Url {
        url,
        workers: Vec::new(),
    };
    let results = run_process(RunParams {
        scenario,
        target: &target,
        out,
        quiet: true,
        part: Some(part),
        start_us: args.start_at.unwrap_or_else(now_us),
        sources: Sources::generator_only(resources::GENERATOR),
        hosts: Vec::new(),
    })
    .await?;
    Ok(results.verdict == Verdict::Pass)
}

fn load_scenario(args: &RunArgs) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::load(&args.scenario)?;
    let overrides = Overrides {
        members: args.members,
        rooms: args.rooms,
        duration: args.duration,
        rate_per_member: args.rate,
        target_url: args.target.clone(),
        seed: args.seed,
        workers: args.workers,
        nginx_workers: args.nginx_workers,
        // A part of a split run runs against the parent's target; the parent injects the
        // faults. A part of a run across hosts keeps them, to be refused: nobody would inject
        // them.
        without_faults: args.part.is_some() && args.coordinator.is_none(),
    };
    scenario.apply(&overrides)?;
    Ok(scenario)
}
