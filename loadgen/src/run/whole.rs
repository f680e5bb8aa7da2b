//! The whole of a run made of parts: their results merged exactly and judged as one run.
//!
//! One function for both ways a run is split, so they cannot drift apart: over processes of
//! one machine (`--processes`, whose parent also sampled the workers and every process and
//! injected the faults) and over hosts (`--coordinator`, where the parts' own records are all
//! there is).

use std::path::Path;

use crate::judging::{RunWindow, judge_run};
use crate::results::{self, Resources, Results, TargetKind, WorkerStats};
use crate::scenario::Scenario;
use crate::target::InjectedFault;

/// What the run as a whole was, beside its parts' results.
pub(super) struct Whole<'a> {
    /// The scenario as the whole ran it (its target and faults, which the parts did not see).
    pub scenario: &'a Scenario,
    pub window: RunWindow,
    pub faults: &'a [InjectedFault],
    /// What was measured of the whole, replacing the parts' own: the workers at the quiet
    /// point and every process's CPU and memory (a split run's parent saw them all). `None`:
    /// keep the parts' merged records.
    pub observed: Option<(Vec<WorkerStats>, Option<Resources>)>,
    pub target: TargetKind,
}

/// Merges `parts` exactly, judges the merged record as one run and writes it as
/// `out/results.json`.
pub(super) fn merge_and_judge(
    parts: &[Results],
    whole: Whole<'_>,
    out: &Path,
) -> anyhow::Result<Results> {
    let mut merged = results::merge(parts)?;
    merged.scenario = serde_json::to_value(whole.scenario)?;
    if let Some((workers, resources)) = whole.observed {
        merged.workers = workers;
        merged.resources = resources;
    }
    merged.target = Some(whole.target);
    // The parts' timelines, merged, carry every second's losses: faults and steps are judged
    // on them by the same rules as a single process's.
    judge_run(&mut merged, whole.faults, whole.scenario, &whole.window)?;
    merged.write(&out.join("results.json"))?;
    Ok(merged)
}
