//! One host's part of a run across hosts (`loadgen run --part I/N --coordinator URL`).
//!
//! The part registers with the coordinator, waits at the barrier, starts at the common start
//! (converted to its own clock), runs its whole rooms against the URL target, and hands its
//! results in. Part 0 then collects the whole run (`collect.rs`), so one command per host is
//! all a run across hosts needs. Every part writes its own results to `OUT/part-I/`; part 0
//! writes the merged results.json and report into OUT, as a split run does; OUT defaults to
//! `runs/<scenario>-<common start>`, the same folder name on every host.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};

use super::args::{PartArg, RunArgs};
use super::collect::collect_run;
use super::folder::run_folder;
use super::process::{RunParams, run_process};
use super::spec::{RunSpec, fingerprint};
use super::start::{check_reachable, workers_of};
use crate::clock::now_us;
use crate::coord::{ClockOffset, Coordinator, PartRecord, PartWanted, Registration, Seat};
use crate::resources::{GENERATOR, Sources};
use crate::results::{Environment, PartHost, Results, Verdict};
use crate::scenario::{Endpoint, Scenario, format_duration};
use crate::target::RunningTarget;

/// From the moment the last part registers to the common start: time for every part to see
/// it (they look every 100 ms) and plan its members.
const LEAD: Duration = Duration::from_secs(3);

/// Runs this host's part; part 0 also collects the whole run. Ok(true) when the thresholds
/// held (part 0: the whole run's; another part: its own share's).
pub(super) async fn run_part(
    args: &RunArgs,
    scenario: &Scenario,
    coordinator: &str,
    part: PartArg,
) -> anyhow::Result<bool> {
    let url = part_target(scenario)?;
    check_reachable(&url).await?;
    let run_id = args.run_id.clone().unwrap_or_else(|| scenario.name.clone());
    let coord = Coordinator::connect(coordinator, &run_id).await?;
    let clock = coord.measure_clock().await?;
    let host = Environment::detect().host;
    let seat = register(&coord, args, scenario, part, &url, (&host, clock)).await?;
    eprintln!(
        "part {}/{} of run {run_id:?} (from {host}) is registered at {coordinator}; waiting up to \
         {} for the other parts",
        seat.part,
        seat.parts,
        format_duration(args.barrier_timeout)
    );
    warn_about_clock(clock, args.max_clock_offset);
    let heartbeat = coord.heartbeat(seat);
    let start_at = tokio::select! {
        start = coord.wait_for_start(seat, args.barrier_timeout) => start?,
        _ = chat_server::signals::terminated() => {
            coord.leave(seat).await;
            bail!("interrupted while waiting for the other parts");
        }
    };
    let this = PartHost {
        part: seat.part,
        host,
        clock_offset_us: clock.offset_us,
        clock_rtt_us: clock.rtt_us,
        clock_offset_limit_us: args.max_clock_offset.as_micros() as u64,
        beyond_limit: clock.offset_us.unsigned_abs() > args.max_clock_offset.as_micros() as u64,
    };
    let ran = run_and_hand_in(&coord, args, scenario, seat, (url, clock, start_at), this).await;
    drop(heartbeat);
    let (out, results) = ran?;
    if seat.part != 0 {
        println!(
            "part {} handed its results to {coordinator}; part 0 (or `loadgen collect \
             --coordinator {coordinator} --run-id {run_id}`) writes the merged results",
            seat.part
        );
        return Ok(results.verdict == Verdict::Pass);
    }
    let run = coord.run_at(seat.generation).await?;
    let merged = collect_run(&coord, &run, clock, &out).await?;
    Ok(merged.verdict == Verdict::Pass)
}

/// Runs this part from the common start and hands its results in; hands in the error instead
/// when anything fails, so the collector names it rather than waiting for a silent part.
/// Returns the run's folder and this part's results.
async fn run_and_hand_in(
    coord: &Coordinator,
    args: &RunArgs,
    scenario: &Scenario,
    seat: Seat,
    (url, clock, start_at): (String, ClockOffset, u64),
    this: PartHost,
) -> anyhow::Result<(PathBuf, Results)> {
    let ran = async {
        let common_start = UNIX_EPOCH + Duration::from_micros(start_at);
        let out = run_folder(args.out.as_deref(), &scenario.name, common_start)?;
        let start_us = clock.to_local(start_at);
        let results = run_this_part(args, scenario, seat, (url, start_us), this, &out).await?;
        anyhow::Ok((out, results))
    };
    match ran.await {
        Ok((out, results)) => {
            coord.hand_in(seat, &results.to_json()?).await?;
            Ok((out, results))
        }
        Err(e) => {
            coord.hand_in_failure(seat, &format!("{e:#}")).await;
            Err(e)
        }
    }
}

/// The URL a part runs against. A part cannot start a local stack (the others could not
/// reach it) nor inject faults (no part owns the target): such a scenario is refused.
fn part_target(scenario: &Scenario) -> anyhow::Result<String> {
    if !scenario.faults.is_empty() {
        bail!(
            "{}: a run across hosts cannot inject [[faults]] (no part owns the target); run the \
             faults from one host, or drop them",
            scenario.file()
        );
    }
    match &scenario.target.endpoint {
        Endpoint::Url(url) => Ok(url.clone()),
        Endpoint::Local(_) => bail!(
            "{}: a part of a run across hosts runs against a server every host reaches: give \
             --target URL",
            scenario.file()
        ),
    }
}

async fn register(
    coord: &Coordinator,
    args: &RunArgs,
    scenario: &Scenario,
    part: PartArg,
    url: &str,
    (host, clock): (&str, ClockOffset),
) -> anyhow::Result<Seat> {
    let fingerprint = fingerprint(scenario)?;
    let spec = serde_json::to_string(&RunSpec::of(args, url)?)?;
    let record = PartRecord {
        host: host.to_owned(),
        pid: std::process::id(),
        clock_offset_us: clock.offset_us,
        clock_rtt_us: clock.rtt_us,
    };
    coord
        .register(&Registration {
            part: part.index.map_or(PartWanted::Auto, PartWanted::Index),
            parts: part.of,
            fingerprint: &fingerprint,
            spec: &spec,
            record: &record,
            lead: LEAD,
        })
        .await
}

/// Runs the members of this part from `start_us` (this host's clock) into `out/part-I/`.
async fn run_this_part(
    args: &RunArgs,
    scenario: &Scenario,
    seat: Seat,
    (url, start_us): (String, u64),
    this: PartHost,
    out: &Path,
) -> anyhow::Result<Results> {
    let late_us = now_us().saturating_sub(start_us);
    if late_us > 0 {
        bail!(
            "this part saw the common start {} after it had passed (its host was too slow to \
             answer the coordinator)",
            format_duration(Duration::from_micros(late_us))
        );
    }
    let dir = out.join(format!("part-{}", seat.part));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Part 0 samples the workers once for the whole run (summed by index on merge, so only
    // one part may).
    let workers = match seat.part {
        0 => workers_of(args.admin.clone()).await?,
        _ => Vec::new(),
    };
    let generator = format!("{GENERATOR} (part {} on {})", seat.part, this.host);
    run_process(RunParams {
        scenario,
        target: &RunningTarget::Url { url, workers },
        out: &dir,
        quiet: args.quiet,
        part: Some((seat.part, seat.parts)),
        start_us,
        sources: Sources::generator_only(&generator),
        hosts: vec![this],
    })
    .await
}

fn warn_about_clock(clock: ClockOffset, limit: Duration) {
    if clock.offset_us.unsigned_abs() > limit.as_micros() as u64 {
        eprintln!(
            "warning: this host's clock is {} µs off the coordinator's (more than \
             --max-clock-offset {}): its start is corrected, but its wall-clock times (started_at, \
             logs) are not; results.json `hosts` reports it",
            clock.offset_us,
            format_duration(limit)
        );
    }
}
