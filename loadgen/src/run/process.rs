//! One process's share of a run: the whole run, or one part of a split run (whole rooms).
//! Plans the members, drives the attack with progress and faults beside it, settles the
//! rooms' ledgers and writes this process's judged results.json.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use super::observe::{sample_workers, worker_counts};
use super::timing::{quiet_point, timing};
use crate::clock::now_us;
use crate::context::RunContext;
use crate::judging::{RunWindow, judge_run};
use crate::measure::ledger::{DeliveryTotals, LostBySecond, finalize_counting_losses};
use crate::resources::{Sampler, Sources};
use crate::results::timeline::{set_lost, set_planned};
use crate::results::{self, Environment, PartHost, Results, Sends};
use crate::scenario::{Plan, Scenario, plan};
use crate::target::{RunningTarget, inject_faults};

/// What one process runs, and where.
pub(super) struct RunParams<'a> {
    pub scenario: &'a Scenario,
    pub target: &'a RunningTarget,
    /// The run folder: results.json goes there.
    pub out: &'a Path,
    /// No live progress.
    pub quiet: bool,
    /// Only part I of N of the rooms (rooms whose index % N == I): a part of a split run.
    pub part: Option<(u32, u32)>,
    /// When the attack starts, on the run clock (µs): the same for every part.
    pub start_us: u64,
    /// The processes to sample for CPU and memory.
    pub sources: Sources,
    /// For a part of a run across hosts: its host and clock (results.json `hosts`).
    pub hosts: Vec<PartHost>,
}

/// Runs this process's members and writes its judged results.json.
pub(super) async fn run_process(params: RunParams<'_>) -> anyhow::Result<Results> {
    let RunParams {
        scenario,
        target,
        out,
        quiet,
        part,
        start_us,
        sources,
        hosts,
    } = params;
    let mut plan = plan(scenario);
    if let Some((i, n)) = part {
        keep_part(&mut plan, i, n);
    }
    let members = plan.members.len();
    let (timing, test_plan) = timing(scenario, members);
    let url = target.url().await;
    let before = target.worker_stats().await;
    tokio::time::sleep_until(crate::clock::instant_at(start_us).into()).await;
    let started_at = SystemTime::now();
    let ctx = RunContext::new(scenario.clone(), plan, url, start_us, timing);

    let progress = tokio::spawn(crate::progress::show(
        ctx.clone(),
        timing.total,
        members,
        !quiet,
    ));
    let quiet_at = quiet_point(&ctx.scenario, ctx.send_until_us);
    let at_quiet_sample = tokio::spawn(sample_workers(quiet_at, target.worker_addrs().await));
    let received = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(crate::clock::instant_at(quiet_at).into()).await;
            ctx.counters.received_messages.load(Relaxed)
        })
    };
    let sampler = Sampler::start(sources, start_us);
    let faults = inject_faults(target, &scenario.faults, start_us)?;
    let attack = crate::attack::run(ctx.clone(), &test_plan);
    let (attack, faults) = tokio::select! {
        both = async { tokio::join!(attack, faults) } => both,
        _ = chat_server::signals::terminated() => {
            progress.abort();
            bail!("interrupted: the run was stopped before its end; nothing written");
        }
    };
    progress.abort();
    if !quiet {
        crate::progress::finish();
    }
    let resources = sampler.stop();
    attack.context("the attack failed")?;
    let end_us = now_us();
    let at_quiet = at_quiet_sample.await.unwrap_or_default();
    let received_at_quiet = received.await.unwrap_or_default();

    let drain_end_us = timing.drain_end(start_us);
    let mut results = settle(&ctx, scenario, started_at, (drain_end_us, end_us))?;
    results.counters.received_at_quiet_point = received_at_quiet;
    results.workers = worker_counts(&before, &at_quiet);
    results.resources = resources;
    results.target = Some(target.kind());
    results.hosts = hosts;
    let window = RunWindow::new(&timing, start_us, scenario.traffic.deadline);
    judge_run(&mut results, &faults, scenario, &window)?;
    results.write(&out.join("results.json"))?;
    Ok(results)
}

/// Keeps only part `i` of `n`: whole rooms (index % n == i), so every fan-out is accounted for
/// inside one process.
fn keep_part(plan: &mut Plan, i: u32, n: u32) {
    plan.members.retain(|m| m.room % n == i);
    for room in &mut plan.rooms {
        if room.index % n != i {
            room.members.clear();
        }
    }
}

/// Settles every room's ledger and assembles the results of this process; `(drain_end_us,
/// end_us)`: the end of the drain (members there then are owed every message) and of the run.
fn settle(
    ctx: &Arc<RunContext>,
    scenario: &Scenario,
    started_at: SystemTime,
    (drain_end_us, end_us): (u64, u64),
) -> anyhow::Result<Results> {
    let mut totals = DeliveryTotals::default();
    let mut by_group = vec![DeliveryTotals::default(); ctx.groups.len()];
    let mut losses = LostBySecond::new(ctx.start_us);
    for room in &ctx.rooms {
        let sessions = room.take_finished();
        let settled = finalize_counting_losses(&room.ledger, &sessions, drain_end_us, &mut losses);
        totals.add(&settled.totals);
        for (mine, room) in by_group.iter_mut().zip(&settled.by_group) {
            mine.add(room);
        }
    }
    // After finalize, which records fan-out sizes and completion times.
    let histograms = ctx.recorder.merged();
    let scenario_json = serde_json::to_value(scenario)?;
    let duration = Duration::from_micros(end_us.saturating_sub(ctx.start_us));
    let mut results = Results::new(scenario_json, Environment::detect(), started_at, duration);
    results.set_histograms(&histograms)?;
    results.set_deliveries(&totals);
    results.timeline = ctx.timeline.stats()?;
    // Before judging, which reads each second's `lost`.
    set_lost(&mut results.timeline, losses.lost(), losses.late());
    // Before judging: each step's `planned` is the sum of its seconds'.
    set_planned(&mut results.timeline, &ctx.planned.per_second);
    results.sends = Sends::new(ctx.planned.total, ctx.counters.sends.load(Relaxed));
    results.errors = ctx.timeline.error_totals();
    results.counters = counters(ctx);
    results.protocol = Some(ctx.counters.protocol_result(&ctx.scenario.protocol));
    results.groups = crate::groups::group_results(ctx, &by_group)?;
    Ok(results)
}

fn counters(ctx: &RunContext) -> results::Counters {
    let c = &ctx.counters;
    results::Counters {
        sends: c.sends.load(Relaxed),
        send_failures: c.send_failures.load(Relaxed),
        received_messages_total: c.received_messages.load(Relaxed),
        connects: c.connects.load(Relaxed),
        connect_errors: c.connect_errors.load(Relaxed),
        joins: c.joins.load(Relaxed),
        join_timeouts: c.join_timeouts.load(Relaxed),
        disconnects: c.disconnects.load(Relaxed),
        reconnects: c.reconnects.load(Relaxed),
        close_timeouts: c.close_timeouts.load(Relaxed),
        heartbeats: c.heartbeats.load(Relaxed),
        received_at_quiet_point: 0,
    }
}
