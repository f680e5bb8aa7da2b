//! `loadgen run` and `loadgen merge`: one run from scenario file to results.json.
//!
//! The order matters and is kept in one place: load and check the scenario, start (or reach)
//! the target, run the attack with progress and faults beside it, settle the ledgers, write the
//! results, judge the thresholds, and always tear the local stack down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use crate::cli::{MergeArgs, RunArgs};
use crate::clock::now_us;
use crate::context::{RunContext, RunTiming};
use crate::judging::{RunWindow, judge_faults_and_steps};
use crate::measure::histograms;
use crate::measure::ledger::{DeliveryTotals, LostBySecond, finalize_counting_losses};
use crate::resources::{self, Sampler, Sources};
use crate::results::timeline::{set_lost, set_planned};
use crate::results::{self, Environment, Results, Sends, ThresholdResult, Verdict, WorkerStats};
use crate::scenario::{
    Arrival, Endpoint, LocalStack, Overrides, Scenario, Threshold, parse_duration, plan,
};
use crate::target::{FaultRecord, LocalMode, Target, inject_faults, local_mode};

/// Members one process holds at most: it may hold 20,000 open files, and a polling member
/// can briefly need two.
pub const MEMBERS_PER_PROCESS: u32 = 15_000;

/// Runs the scenario; Ok(true) when every threshold held.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let scenario = load_scenario(&args)?;
    // Before the run folder or anything else exists: a scenario that cannot run as written
    // (faults without the full local stack) stops here, with exit status 2.
    let start = what_to_start(&scenario)?;
    let out = output_dir(&args, &scenario)?;
    if let Some(part) = args.part {
        let url = args.target.clone().context("--part needs --target")?;
        let start_us = args.start_at.unwrap_or_else(now_us);
        let results = run_against(
            &scenario,
            &Target::Url(url),
            &out,
            true,
            Some(part),
            start_us,
            Sources::generator_only(resources::GENERATOR),
        )
        .await?;
        return Ok(results.verdict == Verdict::Pass);
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
    let target = start_target(start, &out).await?;
    let outcome = if processes > 1 {
        run_split(&args, &scenario, &target, &out, processes).await
    } else {
        let sources = sources(&target, Vec::new(), &args.samples).await;
        run_against(
            &scenario,
            &target,
            &out,
            args.quiet,
            None,
            now_us(),
            sources,
        )
        .await
    };
    target.shutdown().await;
    let results = outcome?;
    print_summary(&results, &out);
    // The HTML report of the whole run (merged, for a split run) beside results.json.
    match crate::render::write_report(&results, &out) {
        Ok(path) => println!("  report: {}", path.display()),
        Err(e) => eprintln!("loadgen: the report could not be written: {e:#}"),
    }
    Ok(results.verdict == Verdict::Pass)
}

fn load_scenario(args: &RunArgs) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::load(&args.scenario)?;
    let duration = match &args.duration {
        Some(text) => Some(parse_duration(text).map_err(|e| anyhow::anyhow!("--duration: {e}"))?),
        None => None,
    };
    let overrides = Overrides {
        members: args.members,
        rooms: args.rooms,
        duration,
        rate_per_member: args.rate,
        target_url: args.target.clone(),
        seed: args.seed,
        // A part runs against the parent's target; the parent injects the faults.
        without_faults: args.part.is_some(),
    };
    scenario.apply(&overrides)?;
    Ok(scenario)
}

fn output_dir(args: &RunArgs, scenario: &Scenario) -> anyhow::Result<PathBuf> {
    let dir = match &args.out {
        Some(dir) => dir.clone(),
        None => {
            let stamp = results::rfc3339(SystemTime::now()).replace([':', '-'], "");
            PathBuf::from("runs").join(format!(
                "{}-{}",
                scenario.name,
                &stamp[..15.min(stamp.len())]
            ))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// What a run starts: decided from the scenario and the machine before anything starts.
enum Start {
    Url(String),
    Local(LocalStack, LocalMode),
}

fn what_to_start(scenario: &Scenario) -> anyhow::Result<Start> {
    Ok(match &scenario.target.endpoint {
        // Faults with a url target were refused when the scenario was loaded.
        Endpoint::Url(url) => Start::Url(url.clone()),
        Endpoint::Local(local) => {
            let missing = chat_server::stack::missing_parts(false);
            let mode = local_mode(missing, local, &scenario.faults)
                .with_context(|| scenario.file().to_owned())?;
            Start::Local(*local, mode)
        }
    })
}

async fn start_target(start: Start, out: &Path) -> anyhow::Result<Target> {
    match start {
        Start::Url(url) => {
            check_reachable(&url).await?;
            Ok(Target::Url(url))
        }
        Start::Local(local, LocalMode::FullStack) => {
            eprintln!(
                "starting the local stack: redis, {} workers, nginx (logs in {})",
                local.workers,
                out.join("stack").display()
            );
            Target::start_local(&local, out).await
        }
        Start::Local(local, LocalMode::Embedded { missing }) => {
            eprintln!(
                "{missing} not installed: running against ONE embedded worker (--bus local, \
                 no Redis, no nginx) instead of the {}-worker cluster.\n\
                 For the full cluster: apt-get install -y {missing}",
                local.workers
            );
            Target::start_embedded().await
        }
    }
}

/// Fails early, with the URL named, when nothing answers there.
async fn check_reachable(url: &str) -> anyhow::Result<()> {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let with_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&with_port),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("target {url} is unreachable ({e}): start the server or fix --target"),
        Err(_) => bail!("target {url} did not answer within 5 s"),
    }
}

/// A pause between the join ramp and the first message, so the last joiners have finished
/// joining: with a ramp, every member is owed every message.
const SETTLE: Duration = Duration::from_secs(1);

/// The phases of the run and the goose test plan that drives them.
fn timing(scenario: &Scenario, members: usize) -> (RunTiming, String) {
    let mut steps = scenario.load_steps(members);
    let drain = Duration::from_secs(scenario.traffic.deadline.as_secs_f64().ceil() as u64);
    let mut ramp_up = scenario.ramp_up();
    // Hold the peak a settle second before the sending and a deadline after it, so the
    // first messages find everyone joined and the last ones are owed.
    if matches!(scenario.population.arrival, Arrival::Ramp(_)) && steps.len() >= 2 {
        steps[1].seconds += (SETTLE + drain).as_secs();
        ramp_up += SETTLE;
    }
    let plan = steps
        .iter()
        .map(|s| format!("{},{}", s.users, s.seconds))
        .collect::<Vec<_>>()
        .join(";");
    let total = Duration::from_secs(steps.iter().map(|s| s.seconds).sum());
    let timing = RunTiming {
        ramp_up,
        send: scenario.duration,
        drain,
        ramp_down: total.saturating_sub(ramp_up + scenario.duration + drain),
        total,
    };
    (timing, plan)
}

/// The processes whose CPU and memory the run samples: this one (and `parts`), the local
/// stack's, when it is ours, and those named by `--sample`.
async fn sources(target: &Target, parts: Vec<u32>, named: &[(String, u32)]) -> Sources {
    let mut sources = match target {
        Target::Local(stack) => Sources {
            generator_name: resources::GENERATOR.to_owned(),
            generator_pids: vec![std::process::id()],
            master: stack.lock().await.master_pid(),
            named: Vec::new(),
        },
        Target::Embedded { .. } => Sources::generator_only(resources::GENERATOR_WITH_EMBEDDED),
        Target::Url(_) => Sources::generator_only(resources::GENERATOR),
    };
    sources.generator_pids.extend(parts);
    sources.named = named.to_vec();
    sources
}

async fn run_against(
    scenario: &Scenario,
    target: &Target,
    out: &Path,
    quiet: bool,
    part: Option<(u32, u32)>,
    start_us: u64,
    sources: Sources,
) -> anyhow::Result<Results> {
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
    let sampler = Sampler::start(sources);
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
    let mut results = settle(&ctx, scenario, started_at, (drain_end_us, end_us), &faults)?;
    results.counters.received_at_quiet_point = received_at_quiet;
    results.workers = worker_counts(&before, &at_quiet);
    results.resources = resources;
    results.target = Some(target.kind());
    judge(&mut results, &scenario.thresholds);
    results.write(&out.join("results.json"))?;
    Ok(results)
}

/// The quiet point: the end of the drain, when every message has arrived and nobody has left
/// yet. Members' receipts and the workers' `delivered` are compared there.
fn quiet_point(scenario: &Scenario, send_until_us: u64) -> u64 {
    let drain = scenario.traffic.deadline.as_micros() as u64;
    send_until_us + drain * 9 / 10
}

/// The workers' stats at `at_us` (members per worker at the peak, deliveries so far).
async fn sample_workers(
    at_us: u64,
    workers: Vec<std::net::SocketAddr>,
) -> Vec<chat_server::metrics::StatsSnapshot> {
    tokio::time::sleep_until(crate::clock::instant_at(at_us).into()).await;
    crate::target::fetch_worker_stats(&workers).await
}

/// Keeps only part `i` of `n`: whole rooms (index % n == i), so every fan-out is accounted for
/// inside one process.
fn keep_part(plan: &mut crate::scenario::Plan, i: u32, n: u32) {
    plan.members.retain(|m| m.room % n == i);
    for room in &mut plan.rooms {
        if room.index % n != i {
            room.members.clear();
        }
    }
}

/// Runs `n` child processes, each a part of the rooms, started together; merges their
/// results exactly. This process keeps the target, the faults and the worker sampling.
async fn run_split(
    args: &RunArgs,
    scenario: &Scenario,
    target: &Target,
    out: &Path,
    n: u32,
) -> anyhow::Result<Results> {
    let url = target.url().await;
    let members = plan(scenario).members.len();
    let (timing, _) = timing(scenario, members);
    // Time for the children to start and plan before the common start.
    let start_us = now_us() + 3_000_000;
    let exe = std::env::current_exe().context("cannot find the loadgen binary")?;
    let mut children = Vec::new();
    for i in 0..n {
        let dir = out.join(format!("part-{i}"));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("loadgen.log"))?;
        let mut command = chat_server::process::tied_command(&exe);
        command
            .arg("run")
            .arg(&args.scenario)
            .args(["--target", &url, "--quiet", "--part", &format!("{i}/{n}")])
            .arg("--start-at")
            .arg(start_us.to_string())
            .arg("--out")
            .arg(&dir)
            .args(passed_overrides(args))
            .stdout(std::process::Stdio::from(log.try_clone()?))
            .stderr(std::process::Stdio::from(log));
        children.push((
            i,
            dir,
            command.spawn().context("cannot start a part process")?,
        ));
    }
    eprintln!(
        "running {members} members in {n} processes (logs in {}/part-*)",
        out.display()
    );
    let part_pids = children.iter().filter_map(|(_, _, c)| c.id()).collect();
    let sampler = Sampler::start(sources(target, part_pids, &args.samples).await);
    let before = target.worker_stats().await;
    let (send_from, send_until) = timing.send_window(start_us);
    let quiet_at = quiet_point(scenario, send_until);
    let quiet = tokio::spawn(sample_workers(quiet_at, target.worker_addrs().await));
    let faults = inject_faults(target, &scenario.faults, start_us)?;
    let waits = async {
        let mut done = Vec::new();
        for (i, dir, mut child) in children {
            let status = child.wait().await;
            done.push((i, dir, status));
        }
        done
    };
    let (done, faults) = tokio::join!(waits, faults);
    let resources = sampler.stop();
    let mut parts = Vec::new();
    for (i, dir, status) in done {
        let code = status.ok().and_then(|s| s.code());
        if !matches!(code, Some(0) | Some(1)) {
            bail!(
                "part {i} failed (exit {code:?}); see {}",
                dir.join("loadgen.log").display()
            );
        }
        parts.push(Results::read(&dir.join("results.json"))?);
    }
    let mut merged = results::merge(&parts)?;
    // The scenario as this process ran it: its target and faults (the parts saw neither).
    merged.scenario = serde_json::to_value(scenario)?;
    merged.workers = worker_counts(&before, &quiet.await.unwrap_or_default());
    // This process sampled every process of the run, the parts included.
    merged.resources = resources;
    // What this process ran against (the parts only saw its URL).
    merged.target = Some(target.kind());
    // The parts' timelines, merged, carry every second's losses: faults and steps are judged
    // on them by the same rules as a single process's.
    let deadline_us = scenario.traffic.deadline.as_micros() as u64;
    let window = RunWindow {
        start_us,
        send_from_us: send_from,
        send_until_us: send_until,
        last_owed_us: timing.drain_end(start_us).saturating_sub(deadline_us),
    };
    judge_faults_and_steps(
        &mut merged,
        &faults,
        scenario.traffic.steps,
        &scenario.thresholds,
        &window,
    )?;
    judge(&mut merged, &scenario.thresholds);
    merged.write(&out.join("results.json"))?;
    Ok(merged)
}

/// The command-line overrides a part must repeat.
fn passed_overrides(args: &RunArgs) -> Vec<String> {
    let mut out = Vec::new();
    let mut pass = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push(flag.to_string());
            out.push(v);
        }
    };
    pass("--members", args.members.map(|v| v.to_string()));
    pass("--rooms", args.rooms.map(|v| v.to_string()));
    pass("--duration", args.duration.clone());
    pass("--rate", args.rate.map(|v| v.to_string()));
    pass("--seed", args.seed.map(|v| v.to_string()));
    out
}

/// Per worker: members and connections at the quiet point, and deliveries since the start
/// (a worker restarted meanwhile counts from its restart).
fn worker_counts(
    before: &[chat_server::metrics::StatsSnapshot],
    at_quiet: &[chat_server::metrics::StatsSnapshot],
) -> Vec<WorkerStats> {
    at_quiet
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let b = before.get(i).cloned().unwrap_or_default();
            let delivered = if q.pid == b.pid {
                q.delivered.saturating_sub(b.delivered)
            } else {
                q.delivered
            };
            WorkerStats {
                index: i as u32,
                members: q.members.max(0) as u64,
                connections: q.sockets.max(0) as u64,
                delivered,
                rooms: q.rooms.max(0) as u64,
            }
        })
        .collect()
}

/// Settles every room's ledger and assembles the results of this process; `(drain_end_us,
/// end_us)`: the end of the drain (members there then are owed every message) and of the run.
fn settle(
    ctx: &Arc<RunContext>,
    scenario: &Scenario,
    started_at: SystemTime,
    (drain_end_us, end_us): (u64, u64),
    faults: &[FaultRecord],
) -> anyhow::Result<Results> {
    let deadline_us = scenario.traffic.deadline.as_micros() as u64;
    let mut totals = DeliveryTotals::default();
    let mut losses = LostBySecond::new(ctx.start_us);
    for room in &ctx.rooms {
        let sessions = room.take_finished();
        let room_totals =
            finalize_counting_losses(&room.ledger, &sessions, drain_end_us, &mut losses);
        totals.add(&room_totals);
    }
    // After finalize, which records fan-out sizes and completion times.
    let histograms = histograms::merged();
    let scenario_json = serde_json::to_value(scenario)?;
    let duration = Duration::from_micros(end_us.saturating_sub(ctx.start_us));
    let mut results = Results::new(scenario_json, Environment::detect(), started_at, duration);
    results.set_histograms(&histograms)?;
    results.set_deliveries(&totals);
    results.timeline = ctx.timeline.stats()?;
    set_lost(&mut results.timeline, losses.lost(), losses.late());
    // Before judging: each step's `planned` is the sum of its seconds'.
    set_planned(&mut results.timeline, &ctx.planned.per_second);
    results.sends = Sends::new(ctx.planned.total, ctx.counters.sends.load(Relaxed));
    results.errors = ctx.timeline.error_totals();
    results.counters = counters(ctx);
    let window = RunWindow {
        start_us: ctx.start_us,
        send_from_us: ctx.send_from_us,
        send_until_us: ctx.send_until_us,
        last_owed_us: drain_end_us.saturating_sub(deadline_us),
    };
    judge_faults_and_steps(
        &mut results,
        faults,
        scenario.traffic.steps,
        &scenario.thresholds,
        &window,
    )?;
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

/// Judges every threshold of the scenario against the results.
pub fn judge(results: &mut Results, thresholds: &[Threshold]) {
    let judged = thresholds
        .iter()
        .map(|&t| ThresholdResult::judge(t, results))
        .collect();
    results.apply_thresholds(judged);
}

fn print_summary(results: &Results, out: &Path) {
    let d = &results.deliveries;
    let f = &results.latency.fanout;
    let fmt = roomstorm_reports::format::us;
    println!("{}", results.scenario_name().unwrap_or("run"));
    println!(
        "  members joined {}  connect errors {}  messages sent {} of {} planned ({} unsent)",
        results.counters.joins,
        results.counters.connect_errors,
        results.sends.made,
        results.sends.planned,
        results.sends.unsent
    );
    println!(
        "  deliveries owed {}  on time {}  late {}  never {}  (lost {})  duplicated {}  \
         reordered {}  ratio {:.6}",
        d.expected,
        d.delivered,
        d.late,
        d.never,
        d.lost,
        d.duplicated,
        d.reordered,
        d.delivery_ratio
    );
    println!(
        "  fan-out p50 {}  p99 {}  p99.9 {}  max {}   connect p99 {}  join p99 {}",
        fmt(f.p50_us),
        fmt(f.p99_us),
        fmt(f.p999_us),
        fmt(f.max_us),
        fmt(results.latency.connect.p99_us),
        fmt(results.latency.join.p99_us)
    );
    for w in &results.workers {
        println!(
            "  worker {}: members {}  delivered {}",
            w.index, w.members, w.delivered
        );
    }
    if let Some(r) = &results.resources {
        let cpu = |generator: bool| -> f64 {
            r.components
                .iter()
                .filter(|c| results::is_generator(&c.name) == generator)
                .map(|c| c.cpu_seconds)
                .sum()
        };
        let server = if r.components.iter().any(|c| !results::is_generator(&c.name)) {
            format!("{:.1}", cpu(false))
        } else {
            "not sampled (not a local target)".to_string()
        };
        println!(
            "  cpu seconds: load generator {:.1}  server {server}{}",
            cpu(true),
            if r.generator_bound {
                "   WARNING: the load generator used more CPU than the server: the generator, \
                 not the server, was measured"
            } else {
                ""
            }
        );
    }
    for fault in &results.faults {
        let recovered = fault
            .recovered_after_ms
            .map_or("not within the run".to_string(), |ms| format!("{ms} ms"));
        println!(
            "  fault at {}s {}: recovered after {recovered}, lost {}",
            fault.at_s, fault.action, fault.lost_in_window
        );
    }
    for step in &results.steps {
        println!(
            "  step {} (rate x{:.2}): {:.0} deliveries/s, fan-out p99 {}, lost {} -> {}",
            step.index,
            step.multiplier,
            step.deliveries_per_s,
            fmt(step.fanout_p99_us),
            step.lost,
            if step.held { "held" } else { "broke" }
        );
    }
    if !results.steps.is_empty() {
        match results
            .highest_step_held
            .and_then(|i| results.steps.get(i as usize))
        {
            Some(step) => println!(
                "  highest step held: {} ({:.0} deliveries/s)",
                step.index, step.deliveries_per_s
            ),
            None => println!("  highest step held: none (the first step already broke)"),
        }
    }
    for t in &results.thresholds {
        println!("  {}", threshold_line(t));
    }
    println!(
        "  verdict: {}   results: {}",
        if results.verdict == Verdict::Pass {
            "PASS"
        } else {
            "FAIL"
        },
        out.join("results.json").display()
    );
}

/// A judged threshold as the summary prints it, the measured value in the rule's unit:
/// `PASS fanout.p99 < 250ms  (measured 6.89ms)`.
fn threshold_line(t: &ThresholdResult) -> String {
    format!(
        "{} {}  (measured {})",
        if t.passed { "PASS" } else { "FAIL" },
        t.rule,
        t.measured_text()
    )
}

/// `loadgen merge`: exact merge, thresholds judged again on the merged values.
pub async fn merge(args: MergeArgs) -> anyhow::Result<bool> {
    let parts = args
        .inputs
        .iter()
        .map(|p| Results::read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let thresholds = parts_thresholds(&parts)?;
    let mut merged = results::merge(&parts)?;
    judge(&mut merged, &thresholds);
    merged.write(&args.output)?;
    println!(
        "merged {} parts into {}",
        parts.len(),
        args.output.display()
    );
    Ok(merged.verdict == Verdict::Pass)
}

/// The thresholds the parts were judged by, typed as results.json carries them. Every part of
/// one run has the same rules; parts that disagree are not parts of one run.
fn parts_thresholds(parts: &[Results]) -> anyhow::Result<Vec<Threshold>> {
    let rules =
        |part: &Results| -> Vec<Threshold> { part.thresholds.iter().map(|t| t.rule).collect() };
    let first = parts.first().map(rules).unwrap_or_default();
    for (i, part) in parts.iter().enumerate().skip(1) {
        anyhow::ensure!(
            rules(part) == first,
            "part {} was judged by other thresholds than part 1: not parts of one run",
            i + 1
        );
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(rule: &str, measured: f64) -> ThresholdResult {
        let rule: Threshold = rule.parse().expect("rule");
        ThresholdResult {
            rule,
            measured,
            passed: rule.holds(measured),
        }
    }

    #[test]
    fn the_summary_prints_measured_values_in_the_rules_unit() {
        assert_eq!(
            threshold_line(&judged("fanout.p99 < 250ms", 6_891.0)),
            "PASS fanout.p99 < 250ms  (measured 6.89ms)"
        );
        assert_eq!(
            threshold_line(&judged("delivery_ratio >= 80%", 1.0)),
            "PASS delivery_ratio >= 80%  (measured 100%)"
        );
        assert_eq!(
            threshold_line(&judged("never == 0", 12.0)),
            "FAIL never == 0  (measured 12)"
        );
    }

    #[test]
    fn merge_judges_with_the_rules_the_parts_carry() {
        let part = |rules: &[&str]| {
            let mut r = Results::new(
                serde_json::json!({"name": "t"}),
                Environment::of_machine("h".into(), 1, "linux".into(), "abc".into()),
                std::time::UNIX_EPOCH,
                Duration::from_secs(1),
            );
            r.apply_thresholds(rules.iter().map(|t| judged(t, 0.0)).collect());
            r
        };
        let rules = ["lost == 0", "fanout.p99 < 50ms"];
        let got = parts_thresholds(&[part(&rules), part(&rules)]).expect("same rules");
        let want: Vec<Threshold> = rules.iter().map(|t| t.parse().expect("rule")).collect();
        assert_eq!(got, want);
        let err = parts_thresholds(&[part(&rules), part(&["lost == 0"])]).expect_err("differ");
        assert!(err.to_string().contains("part 2"), "{err}");
    }
}
