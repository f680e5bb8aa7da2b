//! A run split over several processes: `n` child processes (`loadgen run --part I/N`), each
//! whole rooms, started together; their results merged exactly. This process keeps the
//! target, the faults, the sampling and the judging.

use std::path::Path;

use anyhow::{Context, bail};

use super::args::RunArgs;
use super::observe::{sample_workers, sources, worker_counts};
use super::timing::{quiet_point, timing};
use super::whole::{Whole, merge_and_judge};
use crate::clock::now_us;
use crate::judging::RunWindow;
use crate::resources::Sampler;
use crate::results::Results;
use crate::scenario::{Scenario, plan};
use crate::target::{RunningTarget, inject_faults};

/// Time for the children to start and plan before the common start.
const CHILDREN_START: u64 = 3_000_000;

/// Runs `n` child processes, each a part of the rooms, started together; merges their
/// results exactly and writes them, judged.
pub(super) async fn run_split(
    args: &RunArgs,
    scenario: &Scenario,
    target: &RunningTarget,
    out: &Path,
    n: u32,
) -> anyhow::Result<Results> {
    let url = target.url().await;
    let members = plan(scenario).members.len();
    let (timing, _) = timing(scenario, members);
    let start_us = now_us() + CHILDREN_START;
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
            .args(args.passed_overrides())
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
    let sampler = Sampler::start(sources(target, part_pids, &args.samples).await, start_us);
    let before = target.worker_stats().await;
    let (_, send_until) = timing.send_window(start_us);
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
    let whole = Whole {
        scenario,
        window: RunWindow::new(&timing, start_us, scenario.traffic.deadline),
        faults: &faults,
        // This process sampled the workers, and every process of the run, the parts included.
        observed: Some((
            worker_counts(&before, &quiet.await.unwrap_or_default()),
            resources,
        )),
        // What this process ran against (the parts only saw its URL).
        target: target.kind(),
    };
    merge_and_judge(&parts, whole, out)
}
