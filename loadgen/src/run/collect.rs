//! Collecting a run across hosts: wait until every part has handed its results to the
//! coordinator, merge them exactly and judge them as one run (the merge of `--processes`),
//! then write results.json and report.html. Part 0 does it at the end of its own part;
//! `loadgen collect` does it from any machine that reaches the coordinator.
//!
//! A part that failed, stopped beating (killed, its host or network gone) or never finished
//! makes the collection a setup error naming it: the merged record would undercount the run.
//! The parts that did hand in are still written to `OUT/part-I/results.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::spec::RunSpec;
use super::timing::timing;
use super::whole::{Whole, merge_and_judge};
use crate::clock::{instant_at, now_us};
use crate::coord::{ClockOffset, Coordinator, PartOutcome, StartedRun, parse_run_id};
use crate::judging::RunWindow;
use crate::results::{Results, TargetKind, Verdict};
use crate::scenario::{format_duration, plan};

/// How long after the run's planned end the collector still waits for a part that beats.
const OVERRUN: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Args)]
pub struct CollectArgs {
    /// The coordinator of the run (the parts' --coordinator), e.g. redis://10.0.0.5:6379.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// The run's id (the parts' --run-id; theirs defaults to their scenario's name).
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    pub run_id: String,
    /// Folder for the merged results.json and report.html, and each part's results
    /// (part-I/results.json).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// How long to wait for the run to start, when it has not started yet.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub wait: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    roomstorm_results::units::parse_duration(text)
}

/// `loadgen collect`: Ok(true) when every threshold held.
pub async fn collect(args: CollectArgs) -> anyhow::Result<bool> {
    let coord = Coordinator::connect(&args.coordinator, &args.run_id).await?;
    let run = coord.started_run(args.wait).await?;
    let clock = coord.measure_clock().await?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let merged = collect_run(&coord, &run, clock, &args.out).await?;
    Ok(merged.verdict == Verdict::Pass)
}

/// Waits for every part of `run`, merges and judges their results into `out`, prints the
/// summary and writes the report.
pub(super) async fn collect_run(
    coord: &Coordinator,
    run: &StartedRun,
    clock: ClockOffset,
    out: &Path,
) -> anyhow::Result<Results> {
    let spec: RunSpec =
        serde_json::from_str(&run.spec).context("the run's scenario in the coordinator")?;
    let scenario = spec.scenario()?;
    let (timing, _) = timing(&scenario, plan(&scenario).members.len());
    let end_us = clock.to_local(run.start_us) + (timing.total + OVERRUN).as_micros() as u64;
    eprintln!(
        "collecting the {} parts of run {:?} from {}",
        run.parts,
        coord.run_id(),
        coord.url()
    );
    let outcomes = coord
        .wait_for_parts(run, instant_at(end_us.max(now_us())).into())
        .await?;
    let parts = handed_in(run, outcomes, out)?;
    let whole = Whole {
        scenario: &scenario,
        window: RunWindow::new(&timing, run.start_us, scenario.traffic.deadline),
        faults: &[],
        observed: None,
        target: TargetKind::Url,
    };
    let merged = merge_and_judge(&parts, whole, out)?;
    crate::summary::print_summary(&merged, out);
    match crate::report::write_report(&merged, out) {
        Ok(path) => println!("  report: {}", path.display()),
        Err(e) => eprintln!("loadgen: the report could not be written: {e:#}"),
    }
    Ok(merged)
}

/// The handed-in results, each also written to `out/part-I/results.json`; an error naming
/// every part that did not hand in.
fn handed_in(
    run: &StartedRun,
    outcomes: Vec<PartOutcome>,
    out: &Path,
) -> anyhow::Result<Vec<Results>> {
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let name = run.part_name(i as u32);
        match outcome {
            PartOutcome::HandedIn(text) => {
                let results = Results::from_json(&text).with_context(|| name.clone())?;
                let dir = out.join(format!("part-{i}"));
                std::fs::create_dir_all(&dir)?;
                results.write(&dir.join("results.json"))?;
                parts.push(results);
            }
            PartOutcome::Failed(why) => problems.push(format!("{name} failed: {why}")),
            PartOutcome::Stopped => problems.push(format!(
                "{name} stopped without handing in its results (killed, or its host or network \
                 gone)"
            )),
            PartOutcome::StillRunning => problems.push(format!(
                "{name} was still running {} after the run's planned end",
                format_duration(OVERRUN)
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "the run is incomplete, so no merged results were written: {}. The results of \
             the parts that handed in are in {}",
            problems.join("; "),
            out.join("part-*").display()
        );
    }
    Ok(parts)
}
