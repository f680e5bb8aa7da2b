//! results.json: the written record of a run, and exact merges of partial records.
//!
//! One machine cannot hold a large run (20,000 open files per process), so a run is split over
//! processes and machines, each writing its own results; merging them must give exactly what
//! one big process would have written. Hence the record keeps raw material, not just
//! summaries: full histograms (HdrHistogram V2, base64) from which every percentile is
//! recomputed after a merge, per-second histograms for the timeline, and plain counters.
//! Every field is documented in `docs/results-schema.md`; the schema is versioned
//! ([`SCHEMA`]) and merges refuse anything else.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::measure::histograms::{EncodedHistograms, Histograms, Metric, Percentiles};
use crate::measure::ledger::DeliveryTotals;
use crate::measure::timeline::{SecondStats, merge_timelines};

/// The schema this code writes and merges. Change it with any incompatible change.
pub const SCHEMA: &str = "roomstorm.results/1";

/// A run's results (or a part of one; see [`merge`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: String,
    /// The scenario as run (overrides applied), echoed by the runtime; `name` identifies it.
    pub scenario: serde_json::Value,
    pub environment: Environment,
    /// When the run started, RFC 3339 UTC with milliseconds.
    pub started_at: String,
    /// How long it ran, seconds.
    pub duration_s: f64,
    pub counters: Counters,
    pub deliveries: Deliveries,
    pub latency: Latency,
    pub histograms: EncodedHistograms,
    pub timeline: Vec<SecondStats>,
    #[serde(default)]
    pub workers: Vec<WorkerStats>,
    #[serde(default)]
    pub faults: Vec<FaultRecord>,
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    pub verdict: Verdict,
    /// How many partial results this one is made of (1 for a single process).
    pub parts: u32,
}

/// Where the run ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Host name; after a merge, the distinct hosts joined by `,`.
    pub host: String,
    /// Cores available to the process; after a merge, summed over distinct hosts.
    pub cores: u32,
    /// Operating system; after a merge, the distinct values joined by `,` (so do the next two).
    pub os: String,
    pub loadgen_version: String,
    /// `git rev-parse --short HEAD` of the loadgen source, or `unknown`.
    pub git_revision: String,
    /// Cores by host name: what `host` and `cores` are computed from after a merge, so that
    /// merging merged results stays exact.
    #[serde(default)]
    pub machines: BTreeMap<String, u32>,
}

impl Environment {
    /// Reads this machine's environment.
    pub fn detect() -> Environment {
        Environment::of_machine(
            hostname(),
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            os_description(),
            git_revision(),
        )
    }

    /// The environment of one process on `host`.
    pub fn of_machine(host: String, cores: u32, os: String, git_revision: String) -> Environment {
        Environment {
            machines: BTreeMap::from([(host.clone(), cores)]),
            host,
            cores,
            os,
            loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision,
        }
    }

    /// `machines`, or for a record without it, its own host and cores.
    fn machines(&self) -> BTreeMap<String, u32> {
        if self.machines.is_empty() {
            BTreeMap::from([(self.host.clone(), self.cores)])
        } else {
            self.machines.clone()
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// E.g. `linux 6.1.0-25-amd64 x86_64`.
fn os_description() -> String {
    let release = read_trimmed("/proc/sys/kernel/osrelease");
    let parts = [
        Some(std::env::consts::OS.to_owned()),
        release,
        Some(std::env::consts::ARCH.to_owned()),
    ];
    parts.into_iter().flatten().collect::<Vec<_>>().join(" ")
}

/// The revision of the source this binary was built from when that checkout still exists,
/// else of the working directory, else `unknown`.
fn git_revision() -> String {
    let dirs = [
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()),
        std::env::current_dir().ok(),
    ];
    dirs.into_iter()
        .flatten()
        .find_map(|dir| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(dir)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            let rev = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !rev.trim().is_empty()).then(|| rev.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// RFC 3339 in UTC with milliseconds, e.g. `2024-11-26T01:10:00.123Z`. Fixed width, so such
/// timestamps also sort as text.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Plain event counts. All summed on merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// `say` probes handed to a socket.
    pub sends: u64,
    /// `say` writes that failed.
    pub send_failures: u64,
    /// Every `message` event received (join and quit included, non-probes included).
    pub received_messages_total: u64,
    /// Successful connections (Socket.IO CONNECT acknowledged).
    pub connects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Joins completed (own join broadcast seen).
    pub joins: u64,
    /// Joins whose broadcast did not come in time.
    pub join_timeouts: u64,
    /// Connections lost or closed by the server.
    pub disconnects: u64,
    /// Reconnections after a loss.
    pub reconnects: u64,
    /// Engine.IO pings answered.
    pub heartbeats: u64,
    /// `message` events received by the quiet point (the end of the drain, when nothing is in
    /// flight and nobody has left yet): comparable with the workers' `delivered`, which are
    /// sampled at the same moment.
    #[serde(default)]
    pub received_at_quiet_point: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.sends += o.sends;
        self.send_failures += o.send_failures;
        self.received_messages_total += o.received_messages_total;
        self.connects += o.connects;
        self.connect_errors += o.connect_errors;
        self.joins += o.joins;
        self.join_timeouts += o.join_timeouts;
        self.disconnects += o.disconnects;
        self.reconnects += o.reconnects;
        self.heartbeats += o.heartbeats;
        self.received_at_quiet_point += o.received_at_quiet_point;
    }
}

/// The delivery ledger's outcome (see `docs/measurement.md` for the definitions).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Deliveries {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub extra: u64,
    pub untracked: u64,
    #[serde(default)]
    pub untracked_sends: u64,
    /// Messages tracked by the ledger, and how many of them some owed member never got.
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub incomplete: u64,
    /// delivered / expected (1 when nothing was owed).
    pub delivery_ratio: f64,
}

impl From<&DeliveryTotals> for Deliveries {
    fn from(t: &DeliveryTotals) -> Self {
        Deliveries {
            expected: t.expected,
            delivered: t.delivered,
            lost: t.lost,
            duplicated: t.duplicated,
            reordered: t.reordered,
            extra: t.extra,
            untracked: t.untracked,
            untracked_sends: t.untracked_sends,
            messages: t.messages,
            incomplete: t.incomplete,
            delivery_ratio: t.delivery_ratio(),
        }
    }
}

impl Deliveries {
    fn totals(&self) -> DeliveryTotals {
        DeliveryTotals {
            expected: self.expected,
            delivered: self.delivered,
            lost: self.lost,
            duplicated: self.duplicated,
            reordered: self.reordered,
            extra: self.extra,
            untracked: self.untracked,
            untracked_sends: self.untracked_sends,
            messages: self.messages,
            incomplete: self.incomplete,
        }
    }
}

/// Summaries of the run-wide histograms, recomputed from [`Results::histograms`] on merge.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    pub fanout: Percentiles,
    pub connect: Percentiles,
    pub join: Percentiles,
    pub completion: Percentiles,
    /// Sessions owed per message (counts, despite the `_us` field names).
    pub fanout_size: Percentiles,
}

impl Latency {
    fn of(h: &Histograms) -> Latency {
        Latency {
            fanout: h.summary(Metric::Fanout),
            connect: h.summary(Metric::Connect),
            join: h.summary(Metric::Join),
            completion: h.summary(Metric::Completion),
            fanout_size: h.summary(Metric::FanoutSize),
        }
    }
}

/// One load-generator worker's share (filled by the runtime); summed by index on merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerStats {
    pub index: u32,
    pub members: u64,
    pub delivered: u64,
    pub connections: u64,
}

/// An injected fault and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Seconds since the run's start.
    pub at_s: f64,
    /// What was done, e.g. `kill worker 1`.
    pub action: String,
    /// Until the service was back (e.g. deliveries flowing again); `None` if it never was.
    pub recovered_after_ms: Option<u64>,
    /// Deliveries lost among messages sent between the fault and its recovery.
    pub lost_in_window: u64,
}

/// One threshold rule as judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// As written in the scenario, e.g. `fanout.p99 < 50ms`.
    pub rule: String,
    /// The measured value (µs, a count, or a fraction; see [`Results::threshold_inputs`]).
    pub measured: f64,
    pub passed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
}

impl Results {
    /// An empty record of a run: counters zero, no thresholds (verdict `pass`), one part.
    pub fn new(
        scenario: serde_json::Value,
        environment: Environment,
        started_at: SystemTime,
        duration: Duration,
    ) -> Results {
        Results {
            schema: SCHEMA.to_owned(),
            scenario,
            environment,
            started_at: rfc3339(started_at),
            duration_s: duration.as_secs_f64(),
            counters: Counters::default(),
            deliveries: Deliveries::from(&DeliveryTotals::default()),
            latency: Latency::default(),
            histograms: EncodedHistograms::default(),
            timeline: Vec::new(),
            workers: Vec::new(),
            faults: Vec::new(),
            thresholds: Vec::new(),
            errors: BTreeMap::new(),
            verdict: Verdict::Pass,
            parts: 1,
        }
    }

    /// Stores the run-wide histograms and their summaries.
    pub fn set_histograms(&mut self, histograms: &Histograms) -> anyhow::Result<()> {
        self.histograms = histograms.serialize()?;
        self.latency = Latency::of(histograms);
        Ok(())
    }

    /// The stored histograms, decoded.
    pub fn decode_histograms(&self) -> anyhow::Result<Histograms> {
        Histograms::deserialize(&self.histograms)
    }

    pub fn set_deliveries(&mut self, totals: &DeliveryTotals) {
        self.deliveries = Deliveries::from(totals);
    }

    /// Stores judged thresholds and sets the verdict: `pass` iff every rule passed.
    pub fn apply_thresholds(&mut self, thresholds: Vec<ThresholdResult>) {
        let passed = thresholds.iter().all(|t| t.passed);
        self.verdict = if passed { Verdict::Pass } else { Verdict::Fail };
        self.thresholds = thresholds;
    }

    /// The scenario's `name`, if the echo has one.
    pub fn scenario_name(&self) -> Option<&str> {
        self.scenario.get("name").and_then(|n| n.as_str())
    }

    /// The measured value of every metric a threshold can name (the scenario's metric names):
    /// latencies in µs, counts as counts, ratios as fractions.
    pub fn threshold_inputs(&self) -> BTreeMap<&'static str, f64> {
        let l = &self.latency;
        let d = &self.deliveries;
        let c = &self.counters;
        let attempts = c.connects + c.connect_errors;
        let connect_error_rate = if attempts == 0 {
            0.0
        } else {
            c.connect_errors as f64 / attempts as f64
        };
        BTreeMap::from([
            ("fanout.p50", l.fanout.p50_us as f64),
            ("fanout.p90", l.fanout.p90_us as f64),
            ("fanout.p99", l.fanout.p99_us as f64),
            ("fanout.p999", l.fanout.p999_us as f64),
            ("fanout.max", l.fanout.max_us as f64),
            ("connect.p99", l.connect.p99_us as f64),
            ("join.p99", l.join.p99_us as f64),
            ("completion.p99", l.completion.p99_us as f64),
            ("lost", d.lost as f64),
            ("duplicated", d.duplicated as f64),
            ("reordered", d.reordered as f64),
            ("errors", self.errors.values().sum::<u64>() as f64),
            ("delivery_ratio", d.delivery_ratio),
            ("connect.error_rate", connect_error_rate),
        ])
    }

    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses results.json text; refuses other schemas.
    pub fn from_json(text: &str) -> anyhow::Result<Results> {
        let results: Results =
            serde_json::from_str(text).context("not a roomstorm results file")?;
        ensure!(
            results.schema == SCHEMA,
            "results schema {:?} is not {SCHEMA:?} (written by another loadgen version?)",
            results.schema
        );
        Ok(results)
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.to_json()? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(path: &Path) -> anyhow::Result<Results> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Results::from_json(&text).with_context(|| path.display().to_string())
    }
}

/// Merges partial results of one run into the results of the whole, exactly: counters,
/// deliveries and errors summed; histograms added and every percentile recomputed from the
/// sums; timelines added second by second (aligned on `t`, so the parts must have started
/// together); workers summed by index; faults concatenated. The environment lists the distinct
/// hosts; `started_at` is the earliest and `duration_s` the longest.
///
/// Thresholds cannot be merged: the result has none, and its verdict is `fail` if any part
/// failed, else `pass`, until the caller judges the merged values again
/// ([`Results::threshold_inputs`], [`Results::apply_thresholds`]).
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
    let mut deliveries = DeliveryTotals::default();
    let mut histograms = Histograms::new();
    for (i, part) in parts.iter().enumerate() {
        out.counters.add(&part.counters);
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
    }
    by_index.into_values().collect()
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
    use std::sync::Arc;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;
    use crate::measure::histograms::Recorder;
    use crate::measure::ledger::ReceiptKind;
    use crate::measure::timeline::{ErrorKind, Timeline};

    const S: u64 = 1_000_000;

    /// What one process measured: the raw material of a `Results`.
    struct Process {
        recorder: Arc<Recorder>,
        timeline: Timeline,
        counters: Counters,
        deliveries: DeliveryTotals,
        workers: Vec<WorkerStats>,
        faults: Vec<FaultRecord>,
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
        let metric = Metric::ALL[rng.random_range(0..Metric::ALL.len())];
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
                    p.recorder.record(Metric::Fanout, value);
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
        let fault = FaultRecord {
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
        assert_eq!(merged.threshold_inputs(), whole.threshold_inputs());
        // Workers are summed by index (the whole recorded them one event at a time).
        assert_eq!(merged.workers, merge_workers(std::slice::from_ref(&whole)));
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
            rule: "lost == 0".into(),
            measured: 1.0,
            passed: false,
        }]);
        assert_eq!(b.verdict, Verdict::Fail);
        let mut merged = merge(&[a, b]).expect("merges");
        assert_eq!(
            (merged.verdict, merged.thresholds.len()),
            (Verdict::Fail, 0)
        );
        let lost = merged.threshold_inputs()["lost"];
        merged.apply_thresholds(vec![ThresholdResult {
            rule: "lost < 5".into(),
            measured: lost,
            passed: lost < 5.0,
        }]);
        assert_eq!(merged.verdict, Verdict::Pass);
    }

    #[test]
    fn threshold_inputs_cover_every_scenario_metric() {
        let (whole, _, _) = whole_and_halves();
        let inputs = whole.threshold_inputs();
        for metric in crate::scenario::Metric::ALL {
            assert!(inputs.contains_key(metric.as_str()), "{metric}");
        }
        assert_eq!(inputs["connect.error_rate"], 1.0);
        assert_eq!(inputs["delivery_ratio"], 29.0 / 30.0);
    }

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_732_580_000_123);
        assert_eq!(rfc3339(t), "2024-11-26T00:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn detects_the_environment() {
        let env = Environment::detect();
        assert!(!env.host.is_empty());
        assert!(env.cores >= 1);
        assert!(env.os.starts_with(std::env::consts::OS));
        assert_eq!(env.loadgen_version, env!("CARGO_PKG_VERSION"));
        assert!(!env.git_revision.is_empty());
    }
}
