//! results.json: the written record of a run, and exact merges of partial records.
//!
//! One machine cannot hold a large run (20,000 open files per process), so a run is split over
//! processes and machines, each writing its own results; merging them must give exactly what
//! one big process would have written. Hence the record keeps raw material, not just
//! summaries: full histograms (HdrHistogram V2, base64) from which every percentile is
//! recomputed after a merge, per-second histograms for the timeline, and plain counters.
//! Every field is documented in `docs/results-schema.md`; the schema is versioned
//! ([`SCHEMA`]) and merges refuse anything else.
//!
//! A crate of its own so that readers of results (reports, comparisons, merges on another
//! machine) need not build the load generator; `loadgen::results` re-exports it.

pub mod histograms;
pub mod threshold;
pub mod timeline;
pub mod units;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

pub use crate::histograms::{EncodedHistograms, Histograms, Metric, Percentiles};
pub use crate::timeline::{SecondStats, merge_timelines};

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
    /// Messages planned by the members' schedules, made, and left unsent; zeros in files
    /// written before it existed.
    #[serde(default)]
    pub sends: Sends,
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
    /// CPU and memory of each local component, sampled from `/proc` while the run lasted;
    /// `None` in results written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// For a scenario with `traffic.steps`: each step of the message rate and whether it held
    /// the scenario's fan-out and loss thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepResult>,
    /// The highest step that held (and every step before it held too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest_step_held: Option<u32>,
    /// What the run was pointed at; `None` in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetKind>,
}

/// What kind of target a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// The local stack loadgen started: Redis, the cluster's workers, nginx.
    LocalStack,
    /// One chat worker inside loadgen (no Redis, no nginx): the fallback when they are missing.
    Embedded,
    /// A server at a URL loadgen did not start.
    Url,
}

impl TargetKind {
    /// How a person reads it: `local stack`, `embedded worker`, `url`.
    pub const fn label(self) -> &'static str {
        match self {
            TargetKind::LocalStack => "local stack",
            TargetKind::Embedded => "embedded worker",
            TargetKind::Url => "url",
        }
    }
}

/// The members' send schedules against what was sent (see `docs/measurement.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sends {
    /// Sends the schedules called for during the send window (intended times in it), for
    /// every member with a schedule, connected or not.
    pub planned: u64,
    /// Of those, sent: written to the member's socket, stamped with the intended time.
    pub made: u64,
    /// `planned − made`: due while the member was not connected, still in a lagging member's
    /// backlog when the window closed, or whose write failed.
    pub unsent: u64,
}

impl Sends {
    /// From the planned and made counts (`unsent` derived).
    pub fn new(planned: u64, made: u64) -> Sends {
        Sends {
            planned,
            made,
            unsent: planned.saturating_sub(made),
        }
    }

    pub fn add(&mut self, other: &Sends) {
        *self = Sends::new(self.planned + other.planned, self.made + other.made);
    }
}

/// One step of a rate-stepping run, judged on the messages meant to be sent in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub index: u32,
    /// The base rate's multiplier in this step.
    pub multiplier: f64,
    /// Seconds since the run's start.
    pub from_s: f64,
    pub to_s: f64,
    /// Messages meant to be sent in the step (by intended send time) that were sent.
    pub sends: u64,
    /// Messages the schedules called for in the step (by intended send time): the offered
    /// load; 0 in files written before it existed.
    #[serde(default)]
    pub planned: u64,
    /// First receipts per second while the step lasted.
    pub deliveries_per_s: f64,
    /// Fan-out percentiles of the receipts while the step lasted.
    pub fanout_p99_us: u64,
    pub fanout_max_us: u64,
    /// Owed deliveries of the step's messages that never arrived.
    pub lost: u64,
    /// Every threshold of the scenario that can be judged per step held in this step: those on
    /// `fanout.p99`, `fanout.max`, `lost`, `late`, `never` and `unsent`.
    pub held: bool,
}

/// CPU and memory of the run's local processes, grouped by component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Seconds between samples.
    pub interval_s: f64,
    pub components: Vec<Component>,
    /// The load generator used more CPU than every server component together (workers,
    /// master, nginx, Redis): the generator, not the server, was measured. False when no
    /// server component was sampled.
    pub generator_bound: bool,
}

/// The component names of the load generator: `loadgen`, or `loadgen (...)` when something
/// else runs inside its process (the embedded worker).
pub fn is_generator(name: &str) -> bool {
    name == "loadgen" || name.starts_with("loadgen ")
}

impl Resources {
    pub fn new(interval_s: f64, components: Vec<Component>) -> Resources {
        let generator_bound = generator_bound(&components);
        Resources {
            interval_s,
            components,
            generator_bound,
        }
    }
}

/// True when the load generator's CPU seconds exceed the server components' together, and
/// some server component was sampled.
pub fn generator_bound(components: &[Component]) -> bool {
    let (generator, server): (Vec<&Component>, Vec<&Component>) =
        components.iter().partition(|c| is_generator(&c.name));
    let cpu = |cs: &[&Component]| cs.iter().map(|c| c.cpu_seconds).sum::<f64>();
    !server.is_empty() && cpu(&generator) > cpu(&server)
}

/// One component (`loadgen`, `chat worker 0`, `master`, `nginx`, `redis`): its processes
/// summed, restarted processes included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    /// CPU time (user + system) used while sampled, seconds.
    pub cpu_seconds: f64,
    /// The highest resident memory seen in one sample, KiB.
    pub peak_rss_kib: u64,
    pub series: Vec<ResourceSample>,
}

/// One sample of a component.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    /// Seconds since the sampling started.
    pub t: f64,
    /// CPU used since the previous sample, percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    pub rss_kib: u64,
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
            // The workspace's version: this crate and loadgen share it (`version.workspace`).
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
    /// Planned leaves whose close took longer than 5 s: the member's receipts were settled
    /// with what it had received by then.
    #[serde(default)]
    pub close_timeouts: u64,
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
        self.close_timeouts += o.close_timeouts;
        self.heartbeats += o.heartbeats;
        self.received_at_quiet_point += o.received_at_quiet_point;
    }
}

/// The delivery ledger's outcome of a room (or, added up, of a run), as the ledger computes it
/// (`loadgen::measure::ledger`); [`Deliveries`] is its written form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryTotals {
    /// Deliveries owed: Σ over tracked sent messages of the sessions they were owed to.
    pub expected: u64,
    /// Owed and received within the deadline (on time).
    pub delivered: u64,
    /// Owed and received, but after the deadline.
    pub late: u64,
    /// Owed and never received.
    pub never: u64,
    /// `late + never`.
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub extra: u64,
    /// First receipts of messages beyond the ledger's capacity.
    pub untracked: u64,
    /// Sends beyond the ledger's capacity.
    pub untracked_sends: u64,
    /// Tracked sent messages.
    pub messages: u64,
    /// Tracked sent messages that some owed session never got.
    pub incomplete: u64,
}

impl DeliveryTotals {
    /// Adds another room's totals.
    pub fn add(&mut self, other: &DeliveryTotals) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.late += other.late;
        self.never += other.never;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.extra += other.extra;
        self.untracked += other.untracked;
        self.untracked_sends += other.untracked_sends;
        self.messages += other.messages;
        self.incomplete += other.incomplete;
    }

    /// delivered / expected; 1 when nothing was owed (nothing could be lost).
    pub fn delivery_ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.delivered as f64 / self.expected as f64
        }
    }
}

/// The delivery ledger's outcome (see `docs/measurement.md` for the definitions).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Deliveries {
    pub expected: u64,
    /// Owed deliveries received within the deadline; the same number as `delivered`.
    #[serde(default)]
    pub on_time: u64,
    /// Owed deliveries received after the deadline.
    #[serde(default)]
    pub late: u64,
    /// Owed deliveries never received.
    #[serde(default)]
    pub never: u64,
    /// On time (= `on_time`).
    pub delivered: u64,
    /// `late + never`.
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
            on_time: t.delivered,
            late: t.late,
            never: t.never,
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
    /// Files written before `on_time`, `late` and `never` existed counted every owed receipt
    /// as delivered, whatever its latency, and every other owed delivery as lost: read them as
    /// on time and never received.
    fn read_old_fates(&mut self) {
        if self.on_time + self.late + self.never == 0 && self.expected > 0 {
            self.on_time = self.delivered;
            self.never = self.lost;
        }
    }

    fn totals(&self) -> DeliveryTotals {
        DeliveryTotals {
            expected: self.expected,
            delivered: self.delivered,
            late: self.late,
            never: self.never,
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

/// One chat worker's share, scraped from its `/stats` at the quiet point (local targets only);
/// summed by index on merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerStats {
    pub index: u32,
    pub members: u64,
    pub delivered: u64,
    pub connections: u64,
    /// Rooms with members on this worker: summed over workers, more than the scenario's rooms
    /// means rooms span workers (fan-out crosses Redis).
    #[serde(default)]
    pub rooms: u64,
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
    /// The rule; written as the scenario writes it, e.g. `fanout.p99 < 50ms`, and read back
    /// through the scenario's parser (a rule that does not parse makes the file unreadable).
    pub rule: threshold::Threshold,
    /// The measured value (µs, a count, or a fraction; see [`Results::measured`]).
    pub measured: f64,
    pub passed: bool,
}

impl ThresholdResult {
    /// `rule` judged against `results`.
    pub fn judge(rule: threshold::Threshold, results: &Results) -> ThresholdResult {
        let measured = results.measured(rule.metric);
        ThresholdResult {
            rule,
            measured,
            passed: rule.holds(measured),
        }
    }

    /// The measured value in the rule's unit: `6.89ms`, `100%`, `12`.
    pub fn measured_text(&self) -> String {
        self.rule.format_measured(self.measured)
    }
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
            resources: None,
            steps: Vec::new(),
            highest_step_held: None,
            target: None,
            sends: Sends::default(),
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

    /// The measured value of a metric a threshold can name: latencies in µs, counts as
    /// counts, ratios as fractions.
    pub fn measured(&self, metric: threshold::Metric) -> f64 {
        use threshold::Metric as M;
        let l = &self.latency;
        let d = &self.deliveries;
        let c = &self.counters;
        match metric {
            M::FanoutP50 => l.fanout.p50_us as f64,
            M::FanoutP90 => l.fanout.p90_us as f64,
            M::FanoutP99 => l.fanout.p99_us as f64,
            M::FanoutP999 => l.fanout.p999_us as f64,
            M::FanoutMax => l.fanout.max_us as f64,
            M::ConnectP99 => l.connect.p99_us as f64,
            M::JoinP99 => l.join.p99_us as f64,
            M::CompletionP99 => l.completion.p99_us as f64,
            M::Lost => d.lost as f64,
            M::Late => d.late as f64,
            M::Never => d.never as f64,
            M::Unsent => self.sends.unsent as f64,
            M::Duplicated => d.duplicated as f64,
            M::Reordered => d.reordered as f64,
            M::Errors => self.errors.values().sum::<u64>() as f64,
            M::DeliveryRatio => d.delivery_ratio,
            M::ConnectErrorRate => {
                let attempts = c.connects + c.connect_errors;
                if attempts == 0 {
                    0.0
                } else {
                    c.connect_errors as f64 / attempts as f64
                }
            }
        }
    }

    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses results.json text; refuses other schemas.
    pub fn from_json(text: &str) -> anyhow::Result<Results> {
        let mut results: Results =
            serde_json::from_str(text).context("not a roomstorm results file")?;
        results.deliveries.read_old_fates();
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
    out.resources = merge_resources(parts);
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

/// The parts' components side by side (each part sampled its own processes).
fn merge_resources(parts: &[Results]) -> Option<Resources> {
    let sampled: Vec<&Resources> = parts.iter().filter_map(|p| p.resources.as_ref()).collect();
    let first = sampled.first()?;
    let components = sampled
        .iter()
        .flat_map(|r| r.components.iter().cloned())
        .collect();
    Some(Resources::new(first.interval_s, components))
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
    use super::*;

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

    fn component(name: &str, cpu_seconds: f64) -> Component {
        Component {
            name: name.into(),
            cpu_seconds,
            peak_rss_kib: 1,
            series: Vec::new(),
        }
    }

    #[test]
    fn the_generator_is_bound_when_it_outspends_the_whole_server() {
        let server = [
            component("chat worker 0", 1.0),
            component("chat worker 1", 1.0),
            component("nginx", 0.5),
            component("redis", 0.5),
        ];
        let mut all = vec![component("loadgen", 2.9)];
        all.extend(server.iter().cloned());
        assert!(!generator_bound(&all));
        all[0].cpu_seconds = 3.1;
        assert!(generator_bound(&all));
        // Nothing of the server sampled (a URL target): nothing to judge.
        assert!(!generator_bound(&[component("loadgen", 9.0)]));
        assert!(!generator_bound(&[component(
            "loadgen (with the embedded chat worker)",
            9.0
        )]));
        assert!(generator_bound(&[
            component("loadgen (with the embedded chat worker)", 9.0),
            component("redis", 1.0)
        ]));
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

    fn results() -> Results {
        Results::new(
            serde_json::json!({"name": "t"}),
            Environment::of_machine("h".into(), 1, "linux".into(), "abc".into()),
            UNIX_EPOCH,
            Duration::from_secs(1),
        )
    }

    #[test]
    fn threshold_results_round_trip_as_rule_text() {
        let judged = ThresholdResult {
            rule: "fanout.p99 < 50ms".parse().unwrap(),
            measured: 6_891.0,
            passed: true,
        };
        let text = serde_json::to_string(&judged).unwrap();
        assert_eq!(
            text,
            r#"{"rule":"fanout.p99 < 50ms","measured":6891.0,"passed":true}"#
        );
        let back: ThresholdResult = serde_json::from_str(&text).unwrap();
        assert_eq!(back, judged);
        assert_eq!(back.rule.limit.measured_units(), 50_000.0);
        assert_eq!(back.measured_text(), "6.89ms");
    }

    #[test]
    fn a_results_file_with_a_rule_that_does_not_parse_is_refused() {
        let mut value = serde_json::to_value(results()).unwrap();
        value["thresholds"] =
            serde_json::json!([{"rule": "fanout.p99 < 50", "measured": 1.0, "passed": true}]);
        let err = Results::from_json(&value.to_string()).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("threshold rule `fanout.p99 < 50`")
                && message.contains("is a latency"),
            "{message}"
        );
    }

    #[test]
    fn every_threshold_metric_is_measured_from_its_field() {
        use threshold::Metric as M;
        let mut r = results();
        let ms = |n: u64| Percentiles {
            p50_us: n,
            p90_us: n + 1,
            p99_us: n + 2,
            p999_us: n + 3,
            max_us: n + 4,
            ..Percentiles::default()
        };
        r.latency.fanout = ms(100);
        r.latency.connect = ms(200);
        r.latency.join = ms(300);
        r.latency.completion = ms(400);
        r.set_deliveries(&DeliveryTotals {
            expected: 100,
            delivered: 80,
            late: 15,
            never: 5,
            lost: 20,
            duplicated: 3,
            reordered: 4,
            ..DeliveryTotals::default()
        });
        r.sends = Sends::new(50, 44);
        r.counters.connects = 3;
        r.counters.connect_errors = 1;
        r.errors = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 5)]);
        let expected = [
            (M::FanoutP50, 100.0),
            (M::FanoutP90, 101.0),
            (M::FanoutP99, 102.0),
            (M::FanoutP999, 103.0),
            (M::FanoutMax, 104.0),
            (M::ConnectP99, 202.0),
            (M::JoinP99, 302.0),
            (M::CompletionP99, 402.0),
            (M::Lost, 20.0),
            (M::Late, 15.0),
            (M::Never, 5.0),
            (M::Unsent, 6.0),
            (M::Duplicated, 3.0),
            (M::Reordered, 4.0),
            (M::DeliveryRatio, 0.8),
            (M::ConnectErrorRate, 0.25),
            (M::Errors, 7.0),
        ];
        assert_eq!(expected.len(), M::ALL.len(), "every metric listed");
        for (metric, value) in expected {
            assert_eq!(r.measured(metric), value, "{metric}");
        }
        let never: threshold::Threshold = "never == 0".parse().unwrap();
        let judged = ThresholdResult::judge(never, &r);
        assert_eq!((judged.measured, judged.passed), (5.0, false));
    }
}
