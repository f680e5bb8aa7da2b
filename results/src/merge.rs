//! Exact merges of partial results: one run split over processes and machines must merge
//! into exactly what one big process would have written.

use std::collections::BTreeMap;

use anyhow::{Context, bail, ensure};

use crate::environment::Environment;
use crate::histograms::Histograms;
use crate::histograms::{
    Percentiles, SIGFIG, add_histogram, decode_histogram, encode_histogram, percentiles,
};
use crate::resources::Resources;
use crate::schema::{
    Counters, DeliveryTotals, GroupResult, ProtocolResult, Results, SCHEMA, Sends, Verdict,
    WorkerStats,
};
use crate::timeline::merge_timelines;
use hdrhistogram::Histogram;

/// Merges partial results of one run into the results of the whole, exactly: counters,
/// deliveries and errors summed; histograms added and every percentile recomputed from the
/// sums; timelines added second by second (aligned on `t`, so the parts must have started
/// together); workers summed by index; faults and the parts' `hosts` concatenated. The
/// environment lists the distinct hosts; `started_at` is the earliest and `duration_s` the
/// longest.
///
/// Thresholds cannot be merged: the result has none, and its verdict is `fail` if any part
/// failed, else `pass`, until the caller judges the merged values again
/// ([`Results::measured`], [`ThresholdResult::judge`], [`Results::apply_thresholds`]).
///
/// Refuses an empty list, other schema versions, and parts of different scenarios.
pub fn merge(parts: &[Results]) -> anyhow::Result<Results> {
    let Some(first) = parts.first() else {
        bail!("no results to merge");
    };
    check_compatible(parts)?;
    let mut out = first.clone();
    out.environment = merge_environments(parts);
    out.started_at = parts
        .iter()
        .map(|p| p.started_at.as_str())
        .min()
        .unwrap_or_default()
        .to_owned();
    out.duration_s = parts.iter().map(|p| p.duration_s).fold(0.0, f64::max);
    out.parts = parts.iter().map(|p| p.parts).sum();
    out.counters = Counters::default();
    out.sends = Sends::default();
    let mut deliveries = DeliveryTotals::default();
    let mut histograms = Histograms::new();
    for (i, part) in parts.iter().enumerate() {
        out.counters.add(&part.counters);
        out.sends.add(&part.sends);
        deliveries.add(&part.deliveries.totals());
        let h = part
            .decode_histograms()
            .with_context(|| format!("part {}", i + 1))?;
        histograms.add(&h);
    }
    out.set_deliveries(&deliveries);
    out.set_histograms(&histograms)?;
    out.timeline = merge_timelines(parts.iter().map(|p| p.timeline.as_slice()))?;
    out.workers = merge_workers(parts);
    out.faults = parts
        .iter()
        .flat_map(|p| p.faults.iter().cloned())
        .collect();
    out.errors = merge_errors(parts);
    out.hosts = parts.iter().flat_map(|p| p.hosts.iter().cloned()).collect();
    out.hosts.sort_by_key(|h| h.part);
    out.resources = merge_resources(parts);
    out.protocol = merge_protocols(parts);
    out.groups = merge_groups(parts)?;
    out.thresholds.clear();
    let failed = parts.iter().any(|p| p.verdict == Verdict::Fail);
    out.verdict = if failed { Verdict::Fail } else { Verdict::Pass };
    Ok(out)
}

fn check_compatible(parts: &[Results]) -> anyhow::Result<()> {
    for (i, part) in parts.iter().enumerate() {
        ensure!(
            part.schema == SCHEMA,
            "part {} has results schema {:?}; this loadgen merges only {SCHEMA:?}",
            i + 1,
            part.schema
        );
    }
    let name = parts[0].scenario_name();
    for (i, part) in parts.iter().enumerate().skip(1) {
        ensure!(
            part.scenario_name() == name,
            "part {} is of scenario {:?} but part 1 of {:?}: not parts of one run",
            i + 1,
            part.scenario_name().unwrap_or("(unnamed)"),
            name.unwrap_or("(unnamed)")
        );
    }
    Ok(())
}

/// Distinct values in first-seen order, joined by `,` (values already joined are split).
fn join_distinct<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for v in values.flat_map(|v| v.split(',')) {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join(",")
}

fn merge_environments(parts: &[Results]) -> Environment {
    let envs = || parts.iter().map(|p| &p.environment);
    let mut machines = BTreeMap::new();
    for env in envs() {
        machines.extend(env.machines());
    }
    Environment {
        host: machines.keys().cloned().collect::<Vec<_>>().join(","),
        cores: machines.values().sum(),
        os: join_distinct(envs().map(|e| e.os.as_str())),
        loadgen_version: join_distinct(envs().map(|e| e.loadgen_version.as_str())),
        git_revision: join_distinct(envs().map(|e| e.git_revision.as_str())),
        machines,
    }
}

fn merge_workers(parts: &[Results]) -> Vec<WorkerStats> {
    let mut by_index: BTreeMap<u32, WorkerStats> = BTreeMap::new();
    for w in parts.iter().flat_map(|p| &p.workers) {
        let sum = by_index.entry(w.index).or_insert(WorkerStats {
            index: w.index,
            ..WorkerStats::default()
        });
        sum.members += w.members;
        sum.delivered += w.delivered;
        sum.connections += w.connections;
        sum.rooms += w.rooms;
    }
    by_index.into_values().collect()
}

/// Groups by name, in the order they first appear: counts summed, the fan-out histograms
/// added and their percentiles recomputed.
fn merge_groups(parts: &[Results]) -> anyhow::Result<Vec<GroupResult>> {
    let mut merged: Vec<(GroupResult, Histogram<u64>)> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        for group in &part.groups {
            let hist = decode_histogram(&group.fanout_hist, SIGFIG)
                .with_context(|| format!("part {}: group {}", i + 1, group.name))?;
            match merged.iter_mut().find(|(g, _)| g.name == group.name) {
                Some((mine, total)) => {
                    mine.add(group);
                    mine.fanout.clamped += group.fanout.clamped;
                    add_histogram(total, &hist);
                }
                None => merged.push((group.clone(), hist)),
            }
        }
    }
    merged
        .into_iter()
        .map(|(mut group, hist)| {
            group.fanout = Percentiles {
                clamped: group.fanout.clamped,
                ..percentiles(&hist)
            };
            group.fanout_hist = encode_histogram(&hist)?;
            Ok(group)
        })
        .collect()
}

/// The parts ran one scenario, so one profile: its unmatched events and acknowledgements
/// summed.
fn merge_protocols(parts: &[Results]) -> Option<ProtocolResult> {
    let mut merged: Option<ProtocolResult> = None;
    for protocol in parts.iter().filter_map(|p| p.protocol.as_ref()) {
        match &mut merged {
            Some(m) => m.add(protocol),
            None => merged = Some(protocol.clone()),
        }
    }
    merged
}

/// The parts' components side by side (each part sampled its own processes). When every part
/// knows where its series start on the run's clock, the series are moved onto the earliest
/// part's origin (the parts' own sampling started at different moments); otherwise the merged
/// record has no origin.
fn merge_resources(parts: &[Results]) -> Option<Resources> {
    let sampled: Vec<&Resources> = parts.iter().filter_map(|p| p.resources.as_ref()).collect();
    let first = sampled.first()?;
    let origins: Option<Vec<f64>> = sampled.iter().map(|r| r.series_origin_s).collect();
    let common = origins
        .as_ref()
        .map(|o| o.iter().copied().fold(f64::INFINITY, f64::min));
    let mut components = Vec::new();
    for (i, resources) in sampled.iter().enumerate() {
        let shift = match (&origins, common) {
            (Some(o), Some(c)) => o[i] - c,
            _ => 0.0,
        };
        for component in &resources.components {
            let mut component = component.clone();
            for sample in &mut component.series {
                sample.t = ((sample.t + shift) * 1000.0).round() / 1000.0;
            }
            components.push(component);
        }
    }
    let merged = Resources::new(first.interval_s, components);
    Some(match common {
        Some(origin) => merged.with_series_origin(origin),
        None => merged,
    })
}

fn merge_errors(parts: &[Results]) -> BTreeMap<String, u64> {
    let mut errors = BTreeMap::new();
    for (kind, n) in parts.iter().flat_map(|p| &p.errors) {
        *errors.entry(kind.clone()).or_default() += n;
    }
    errors
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::resources::{Component, ResourceSample};
    use crate::schema::PartHost;

    /// A part that sampled one component twice, at 1 s and 2 s of its own sampling.
    fn part(name: &str, origin_s: Option<f64>) -> Results {
        let mut r = Results::new(
            serde_json::json!({"name": "t"}),
            Environment::of_machine(name.into(), 1, "linux".into(), "abc".into()),
            UNIX_EPOCH,
            Duration::from_secs(1),
        );
        let sample = |t: f64| ResourceSample {
            t,
            cpu_percent: 10.0,
            rss_kib: 1,
        };
        let component = Component {
            name: name.into(),
            cpu_seconds: 0.2,
            peak_rss_kib: 1,
            series: vec![sample(1.0), sample(2.0)],
        };
        let resources = Resources::new(1.0, vec![component]);
        r.resources = Some(match origin_s {
            Some(o) => resources.with_series_origin(o),
            None => resources,
        });
        r
    }

    fn times(r: &Results) -> Vec<(String, Vec<f64>)> {
        let resources = r.resources.as_ref().expect("resources");
        resources
            .components
            .iter()
            .map(|c| (c.name.clone(), c.series.iter().map(|s| s.t).collect()))
            .collect()
    }

    #[test]
    fn merged_series_keep_their_place_on_the_run_clock() {
        // a started sampling 0.5 s before the run, b 0.25 s after it.
        let merged = merge(&[part("a", Some(-0.5)), part("b", Some(0.25))]).expect("merges");
        let resources = merged.resources.as_ref().expect("resources");
        assert_eq!(resources.series_origin_s, Some(-0.5));
        // b's samples, at run times 1.25 and 2.25, are 1.75 and 2.75 after the new origin.
        assert_eq!(
            times(&merged),
            [("a".into(), vec![1.0, 2.0]), ("b".into(), vec![1.75, 2.75])]
        );
    }

    #[test]
    fn a_part_without_an_origin_leaves_the_merge_without_one() {
        let merged = merge(&[part("a", Some(-0.5)), part("b", None)]).expect("merges");
        assert_eq!(merged.resources.as_ref().unwrap().series_origin_s, None);
        assert_eq!(
            times(&merged),
            [("a".into(), vec![1.0, 2.0]), ("b".into(), vec![1.0, 2.0])]
        );
    }

    fn host_part(index: u32, host: &str) -> Results {
        let env = Environment::of_machine(host.into(), 2, "linux".into(), "abc".into());
        let mut r = Results::new(
            serde_json::json!({"name": "across"}),
            env,
            UNIX_EPOCH,
            Duration::from_secs(1),
        );
        r.hosts = vec![PartHost {
            part: index,
            host: host.into(),
            clock_offset_us: i64::from(index) - 1,
            clock_rtt_us: 50,
            clock_offset_limit_us: 100_000,
            beyond_limit: false,
        }];
        r
    }

    #[test]
    fn the_parts_hosts_are_kept_in_part_order() {
        let merged =
            merge(&[host_part(2, "c"), host_part(0, "a"), host_part(1, "b")]).expect("merges");
        let hosts: Vec<(u32, &str)> = merged
            .hosts
            .iter()
            .map(|h| (h.part, h.host.as_str()))
            .collect();
        assert_eq!(hosts, [(0, "a"), (1, "b"), (2, "c")]);
        assert_eq!(merged.environment.host, "a,b,c");
        // A merge of merges keeps them all.
        let again = merge(&[merged.clone(), host_part(3, "d")]).expect("merges");
        assert_eq!(again.hosts.len(), 4);
        // Runs not across hosts have none.
        let mut plain = host_part(0, "a");
        plain.hosts.clear();
        assert!(
            merge(&[plain.clone(), plain])
                .expect("merges")
                .hosts
                .is_empty()
        );
    }
}
