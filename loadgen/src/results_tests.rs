//! Tests of `loadgen::results` (the `roomstorm-results` crate) fed by the load generator's own
//! measurement: exact merges of what real recorders and timelines produced, and measured
//! values for every metric a scenario can name. They live here, not in the results crate,
//! because they need loadgen's recorder, timeline and scenario types.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::measure::histograms::Recorder;
use crate::measure::ledger::ReceiptKind;
use crate::measure::timeline::{ErrorKind, Timeline};
use crate::results::{
    Counters, DeliveryTotals, Environment, FaultResult, HistogramKind, Results, SCHEMA,
    ThresholdResult, Verdict, WorkerStats, merge,
};
use crate::scenario::{Metric as ScenarioMetric, Threshold};

const S: u64 = 1_000_000;

/// What one process measured: the raw material of a `Results`.
struct Process {
    recorder: Arc<Recorder>,
    timeline: Timeline,
    counters: Counters,
    deliveries: DeliveryTotals,
    workers: Vec<WorkerStats>,
    faults: Vec<FaultResult>,
}

impl Process {
    fn new() -> Self {
        Process {
            recorder: Arc::new(Recorder::new()),
            timeline: Timeline::new(0, 60),
            counters: Counters::default(),
            deliveries: DeliveryTotals::default(),
            workers: Vec::new(),
            faults: Vec::new(),
        }
    }

    fn results(&self, host: &str, start: SystemTime, verdict: Verdict) -> Results {
        let env = Environment::of_machine(host.into(), 2, "linux".into(), "abc1234".into());
        let mut r = Results::new(
            json!({"name": "synthetic", "seed": 1}),
            env,
            start,
            Duration::from_secs(30),
        );
        r.counters = self.counters;
        r.set_deliveries(&self.deliveries);
        r.set_histograms(&self.recorder.merged())
            .expect("histograms encode");
        r.timeline = self.timeline.stats().expect("timeline");
        r.errors = self.timeline.error_totals();
        r.workers = self.workers.clone();
        r.faults = self.faults.clone();
        r.verdict = verdict;
        r
    }
}

/// One synthetic event, applied to the whole and to one half.
fn event(rng: &mut SmallRng, targets: [&mut Process; 2]) {
    let at = rng.random_range(0..30 * S);
    let value = rng.random_range(0..2_000_000u64);
    let kind = rng.random_range(0..6);
    let metric = HistogramKind::ALL[rng.random_range(0..HistogramKind::ALL.len())];
    let worker = rng.random_range(0..3);
    for p in targets {
        match kind {
            0 => {
                p.timeline.send(at);
                p.counters.sends += 1;
            }
            1 => {
                p.timeline
                    .receipt(at, at.saturating_sub(value), ReceiptKind::First);
                p.recorder.record(HistogramKind::Fanout, value);
                p.counters.received_messages_total += 1;
            }
            2 => p.timeline.receipt(at, 0, ReceiptKind::Duplicate),
            3 => {
                p.timeline.error(at, ErrorKind::ALL[(value % 7) as usize]);
                p.counters.connect_errors += 1;
            }
            4 => p.recorder.record(metric, value),
            _ => p.workers.push(WorkerStats {
                index: worker,
                members: 1,
                delivered: value,
                connections: 1,
                rooms: 1,
            }),
        }
    }
}

fn whole_and_halves() -> (Results, Results, Results) {
    let mut rng = SmallRng::seed_from_u64(3);
    let (mut whole, mut a, mut b) = (Process::new(), Process::new(), Process::new());
    for i in 0..20_000 {
        let half = if i % 3 == 0 { &mut a } else { &mut b };
        event(&mut rng, [&mut whole, half]);
    }
    let da = DeliveryTotals {
        expected: 10,
        delivered: 9,
        never: 1,
        lost: 1,
        messages: 3,
        incomplete: 1,
        ..Default::default()
    };
    let db = DeliveryTotals {
        expected: 20,
        delivered: 20,
        duplicated: 2,
        reordered: 1,
        extra: 4,
        untracked: 1,
        messages: 5,
        ..Default::default()
    };
    (a.deliveries, b.deliveries) = (da, db);
    whole.deliveries = da;
    whole.deliveries.add(&db);
    let fault = FaultResult {
        at_s: 10.0,
        action: "kill worker 1".into(),
        recovered_after_ms: Some(1500),
        lost_in_window: 3,
    };
    a.faults.push(fault.clone());
    whole.faults.push(fault);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_732_580_000);
    (
        whole.results("h1", t0, Verdict::Pass),
        a.results("h1", t0, Verdict::Pass),
        b.results("h2", t0 + Duration::from_millis(3), Verdict::Pass),
    )
}

#[test]
fn two_merged_halves_equal_the_whole() {
    let (whole, a, b) = whole_and_halves();
    let merged = merge(&[a, b]).expect("merges");
    assert_eq!(merged.counters, whole.counters);
    assert_eq!(merged.deliveries, whole.deliveries);
    assert_eq!(merged.histograms, whole.histograms);
    assert_eq!(
        merged.decode_histograms().expect("decodes"),
        whole.decode_histograms().expect("decodes")
    );
    assert_eq!(merged.latency, whole.latency);
    assert_eq!(merged.timeline, whole.timeline);
    assert_eq!(merged.errors, whole.errors);
    assert_eq!(merged.faults, whole.faults);
    assert_eq!(merged.parts, 2);
    assert_eq!(merged.environment.host, "h1,h2");
    assert_eq!(merged.environment.cores, 4);
    assert_eq!(merged.started_at, whole.started_at);
    for metric in crate::scenario::Metric::ALL {
        assert_eq!(merged.measured(metric), whole.measured(metric), "{metric}");
    }
    // Workers are summed by index (the whole recorded them one event at a time).
    let whole_workers = merge(std::slice::from_ref(&whole)).expect("merges").workers;
    assert_eq!(merged.workers, whole_workers);
    assert!(merged.latency.fanout.count > 1000);
    assert!(merged.timeline.len() == 30);
}

#[test]
fn merging_is_associative_and_counts_parts() {
    let (_, a, b) = whole_and_halves();
    let ab = merge(&[a.clone(), b.clone()]).expect("merges");
    let aab = merge(&[a.clone(), ab]).expect("merges");
    let flat = merge(&[a.clone(), a, b]).expect("merges");
    assert_eq!(aab.parts, 3);
    assert_eq!(aab, flat);
}

#[test]
fn round_trips_through_json() {
    let (whole, _, _) = whole_and_halves();
    let text = whole.to_json().expect("serializes");
    let back = Results::from_json(&text).expect("parses");
    assert_eq!(back, whole);
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(value["schema"], SCHEMA);
    assert_eq!(value["verdict"], "pass");
    assert!(
        value["histograms"]["fanout"]
            .as_str()
            .is_some_and(|s| s.starts_with("HISTF"))
    );
}

#[test]
fn refuses_other_schemas_and_other_scenarios() {
    let (_, a, b) = whole_and_halves();
    let mut old = b.clone();
    old.schema = "roomstorm.results/0".into();
    let err = merge(&[a.clone(), old.clone()]).expect_err("schema");
    assert!(
        err.to_string()
            .contains("part 2 has results schema \"roomstorm.results/0\""),
        "{err}"
    );
    let text = serde_json::to_string(&old).expect("json");
    assert!(Results::from_json(&text).is_err());
    let mut other = b;
    other.scenario = json!({"name": "other"});
    let err = merge(&[a, other]).expect_err("scenario");
    assert!(err.to_string().contains("scenario \"other\""), "{err}");
    assert!(merge(&[]).is_err());
}

#[test]
fn a_failed_part_fails_the_merge_until_rejudged() {
    let (_, a, mut b) = whole_and_halves();
    b.apply_thresholds(vec![ThresholdResult {
        rule: "lost == 0".parse().expect("rule"),
        measured: 1.0,
        passed: false,
    }]);
    assert_eq!(b.verdict, Verdict::Fail);
    let mut merged = merge(&[a, b]).expect("merges");
    assert_eq!(
        (merged.verdict, merged.thresholds.len()),
        (Verdict::Fail, 0)
    );
    // Judged again by loadgen's own judge, on the merged values: part a lost 1 of its 10
    // deliveries, part b none of its 20.
    let rule = |text: &str| Threshold::parse(ScenarioMetric::Lost, text).expect("a rule");
    crate::judging::judge(&mut merged, &[rule("< 5")]);
    assert_eq!(merged.verdict, Verdict::Pass);
    assert_eq!(
        (merged.thresholds[0].measured, merged.thresholds[0].passed),
        (1.0, true)
    );
    crate::judging::judge(&mut merged, &[rule("< 5"), rule("== 0")]);
    assert_eq!(merged.verdict, Verdict::Fail);
    let passed: Vec<bool> = merged.thresholds.iter().map(|t| t.passed).collect();
    assert_eq!(passed, [true, false]);
}

#[test]
fn every_scenario_metric_is_measured() {
    use crate::scenario::Metric as M;
    let (whole, _, _) = whole_and_halves();
    for metric in M::ALL {
        assert!(whole.measured(metric).is_finite(), "{metric}");
    }
    assert_eq!(whole.measured(M::ConnectErrorRate), 1.0);
    assert_eq!(whole.measured(M::DeliveryRatio), 29.0 / 30.0);
}

/// Groups merge by name, in the order they first appear: counts summed, the fan-out
/// histograms added, their percentiles recomputed: what one process would have written.
#[test]
fn groups_merge_by_name_exactly() {
    use crate::measure::histograms::{GroupRecorder, encode_histogram, percentiles};
    use crate::results::{Deliveries, GroupResult, Percentiles, Sends};

    let whole = GroupRecorder::default();
    let halves = [GroupRecorder::default(), GroupRecorder::default()];
    let mut rng = SmallRng::seed_from_u64(16);
    for i in 0..4_000usize {
        let (group, value) = (i % 2, rng.random_range(1..5_000_000u64));
        whole.record(group, value);
        halves[rng.random_range(0..2usize)].record(group, value);
    }
    let results = |recorder: &GroupRecorder, made: u64, names: [&str; 2]| {
        let mut r = Results::new(
            json!({"name": "g"}),
            Environment::detect(),
            UNIX_EPOCH,
            Duration::ZERO,
        );
        let hists = recorder.merged(2);
        r.groups = names
            .iter()
            .zip(hists)
            .map(|(name, (hist, clamped))| GroupResult {
                name: (*name).to_owned(),
                members: 5,
                sends: Sends::new(made + 1, made),
                signals: made,
                signal_failures: 0,
                deliveries: Deliveries::from(&DeliveryTotals {
                    expected: 10 * made,
                    delivered: 10 * made,
                    ..DeliveryTotals::default()
                }),
                fanout: Percentiles {
                    clamped,
                    ..percentiles(&hist)
                },
                fanout_hist: encode_histogram(&hist).expect("encodes"),
            })
            .collect();
        r
    };
    let merged = merge(&[
        results(&halves[0], 3, ["talkers", "lurkers"]),
        results(&halves[1], 4, ["talkers", "lurkers"]),
    ])
    .expect("merges");
    let expected = results(&whole, 7, ["talkers", "lurkers"]);
    for (got, want) in merged.groups.iter().zip(&expected.groups) {
        assert_eq!(got.name, want.name);
        assert_eq!(got.fanout, want.fanout);
        assert_eq!(got.fanout_hist, want.fanout_hist);
        assert_eq!(got.members, 10);
        assert_eq!(got.sends, Sends::new(9, 7));
        assert_eq!((got.signals, got.deliveries.expected), (7, 70));
    }
    assert_eq!(merged.groups.len(), 2);
    assert!(merged.groups[0].fanout.count > 1_500);
}
