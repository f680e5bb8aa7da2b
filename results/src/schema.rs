//! The schema types of results.json: what a run's record holds, field by field, and how a
//! record is read, written and judged. Environment probing, resource samples and merging
//! live in their own modules; `docs/results-schema.md` documents every field here (a test in
//! `tests/schema_doc.rs` keeps the two equal).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::histograms::{EncodedHistograms, HistogramKind, Histograms, Percentiles};
use crate::resources::Resources;
use crate::threshold;
use crate::timeline::SecondStats;
use crate::timestamp::rfc3339;

/// The schema this code writes and merges. Change it with any incompatible change.
pub const SCHEMA: &str = "roomstorm.results/1";

/// A run's results (or a part of one; see `merge`).
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
    pub faults: Vec<FaultResult>,
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
    /// For a run coordinated across hosts (`loadgen run --coordinator`): each part's host and
    /// its clock against the coordinator's; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<PartHost>,
    /// The protocol profile members spoke, and what it could not place; `None` in files
    /// written before it existed (they all spoke the built-in `roomstorm` profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolResult>,
    /// Each `[[population.groups]]` group's figures; empty without groups (and in files
    /// written before they existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupResult>,
}

/// One member group's figures (see `docs/measurement.md`, "Member groups"): what its members
/// sent, and what they were owed and received as members of their rooms.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupResult {
    /// The group's name in the scenario.
    pub name: String,
    /// Members planned in the group.
    pub members: u64,
    /// Its members' messages: planned by their schedules, made, unsent.
    pub sends: Sends,
    /// Signals (typing, presence) its members sent, and signal writes that failed.
    pub signals: u64,
    pub signal_failures: u64,
    /// What its members were owed and received (as receivers), by the ledger's definitions;
    /// `messages` and `incomplete` are 0 (they are properties of messages).
    pub deliveries: Deliveries,
    /// The fan-out latency of its members' first receipts.
    pub fanout: Percentiles,
    /// That histogram, as `histograms` keeps them (for exact merges).
    pub fanout_hist: String,
}

impl GroupResult {
    /// Adds another part's figures of the same group; the caller recomputes `fanout`.
    pub(crate) fn add(&mut self, other: &GroupResult) {
        self.members += other.members;
        self.sends.add(&other.sends);
        self.signals += other.signals;
        self.signal_failures += other.signal_failures;
        let mut totals = self.deliveries.totals();
        totals.add(&other.deliveries.totals());
        self.deliveries = Deliveries::from(&totals);
    }
}

/// The protocol profile of a run (see `docs/measurement.md`, "Protocol profiles").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProtocolResult {
    /// The profile's name: `roomstorm` for the built-in one (the original design's protocol).
    pub profile: String,
    /// Received events the profile could not place, by reason (`unexpected_event`,
    /// `no_text_at_path`, `no_probe_in_text`, `unexpected_ack`); only reasons with any.
    #[serde(default)]
    pub unmatched: BTreeMap<String, u64>,
    /// The acknowledgements of says, for a profile with `say.ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acks: Option<AckCounts>,
}

impl ProtocolResult {
    /// Every unmatched event, whatever the reason.
    pub fn unmatched_total(&self) -> u64 {
        self.unmatched.values().sum()
    }

    pub(crate) fn add(&mut self, other: &ProtocolResult) {
        for (reason, n) in &other.unmatched {
            *self.unmatched.entry(reason.clone()).or_default() += n;
        }
        match (&mut self.acks, &other.acks) {
            (Some(mine), Some(theirs)) => mine.add(theirs),
            (None, Some(theirs)) => self.acks = Some(*theirs),
            (_, None) => {}
        }
    }
}

/// What became of the acknowledgements members asked for: `requested = received + missing +
/// open_at_leave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AckCounts {
    /// Says written asking for an acknowledgement.
    pub requested: u64,
    /// Acknowledgements received for them (their round trip is the `ack` latency).
    pub received: u64,
    /// Of those, acknowledgements saying the app refused the message (`say.ack_error`): also
    /// counted `send_refused` and taken back from the sends made.
    pub refused: u64,
    /// Never acknowledged while the member's session lasted (a cut-off session's, or a
    /// planned leave's more than a deadline after the message was meant to be sent).
    pub missing: u64,
    /// Not acknowledged yet when the member left on purpose within a deadline of the
    /// message's intended send time (not owed, like the message itself).
    pub open_at_leave: u64,
}

impl AckCounts {
    pub(crate) fn add(&mut self, o: &AckCounts) {
        self.requested += o.requested;
        self.received += o.received;
        self.refused += o.refused;
        self.missing += o.missing;
        self.open_at_leave += o.open_at_leave;
    }
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

/// Plain event counts. All summed on merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// `say` probes handed to a socket.
    pub sends: u64,
    /// `say` writes that failed.
    pub send_failures: u64,
    /// Every room message received: an event of the profile's `receive.events` (the built-in
    /// profile's `message`: join and quit included), non-probes included.
    pub received_messages_total: u64,
    /// Successful connections (Socket.IO CONNECT acknowledged).
    pub connects: u64,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Joins completed (the profile's `join.done`; the built-in: own join broadcast seen).
    pub joins: u64,
    /// Joins that did not complete in time.
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
    pub(crate) fn add(&mut self, o: &Counters) {
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

    pub(crate) fn totals(&self) -> DeliveryTotals {
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
    /// Acknowledgements of says (profiles with `say.ack`); zeros otherwise and in files
    /// written before it existed.
    #[serde(default)]
    pub ack: Percentiles,
}

impl Latency {
    fn of(h: &Histograms) -> Latency {
        Latency {
            fanout: h.summary(HistogramKind::Fanout),
            connect: h.summary(HistogramKind::Connect),
            join: h.summary(HistogramKind::Join),
            completion: h.summary(HistogramKind::Completion),
            fanout_size: h.summary(HistogramKind::FanoutSize),
            ack: h.summary(HistogramKind::Ack),
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

/// One part of a run coordinated across hosts: where it ran, and how its clock stood against
/// the coordinator's (Redis `TIME`) when it registered. Concatenated on merge, by part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHost {
    /// The part's index I of `--part I/N`.
    pub part: u32,
    /// The host name of the machine (or container) the part ran on.
    pub host: String,
    /// Its clock minus the coordinator's, µs, from the `TIME` round trip with the smallest RTT.
    pub clock_offset_us: i64,
    /// That round trip, µs: the offset is known to within half of it.
    pub clock_rtt_us: u64,
    /// The largest offset the run accepted without a report (`--max-clock-offset`), µs.
    pub clock_offset_limit_us: u64,
    /// `|clock_offset_us|` exceeded the limit: reported when the run ended.
    pub beyond_limit: bool,
}

/// An injected fault as judged: what it did to delivery, and when delivery recovered (as
/// `StepResult` and `ThresholdResult` are a step's and a rule's judgment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultResult {
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
        Self::of(rule, results.measured(rule.metric))
    }

    /// `rule` judged against a value measured in its metric's units.
    pub fn of(rule: threshold::Threshold, measured: f64) -> ThresholdResult {
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
            hosts: Vec::new(),
            protocol: None,
            groups: Vec::new(),
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
            M::AckP99 => l.ack.p99_us as f64,
            M::Unmatched => self
                .protocol
                .as_ref()
                .map_or(0, ProtocolResult::unmatched_total) as f64,
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

    /// Parses results.json text; refuses other schemas, and counts no run can reach (which
    /// would overflow the sums `report`, `compare` and `merge` compute: `sanity`).
    pub fn from_json(text: &str) -> anyhow::Result<Results> {
        let doc: serde_json::Value =
            serde_json::from_str(text).context("not a roomstorm results file")?;
        crate::sanity::check_counts(&doc).context("a corrupt results file")?;
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

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

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
        r.latency.ack = ms(500);
        r.protocol = Some(ProtocolResult {
            profile: "p".into(),
            unmatched: BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]),
            acks: None,
        });
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
            (M::AckP99, 502.0),
            (M::Unmatched, 3.0),
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
