//! Pass/fail thresholds: `"fanout.p99" = "< 50ms"` in a scenario's `[thresholds]` table, and
//! the same rule as results.json writes it, `"fanout.p99 < 50ms"`.
//!
//! This exists so a run can judge itself against what its author promised, with each metric
//! bound to the one kind of value that makes sense for it (a latency takes a duration, a ratio
//! a percentage, a count a number), checked when the scenario loads rather than when the
//! results are judged. It lives in `roomstorm-results` so that the rules are typed once: the
//! load generator parses scenarios and judges with these types, results.json stores them
//! (written as their rule text, read back through the same parser), and the reports and
//! `loadgen merge` read the typed rules from results instead of parsing rule text again.
//!
//! [`Metric`] here names what a threshold can be set on; it is not the crate root's
//! [`crate::Metric`], which names the recorded histograms.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::{
    PERCENT_HINT, format_duration, parse_duration, parse_plain_number, percent_as_written,
};

/// What kind of value a metric is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A latency; thresholds take a duration, measurements are microseconds.
    Latency,
    /// A ratio or rate; thresholds take a percentage, measurements are fractions (0.001 = 0.1%).
    Ratio,
    /// A count of events; thresholds and measurements are plain numbers.
    Count,
}

impl MetricKind {
    /// A measured value (microseconds, a fraction, or a count) written in this kind's unit, the
    /// way rules are written: `6.89ms`, `99.95%`, `12`. `n/a` when nothing was measured (NaN).
    pub fn format(self, measured: f64) -> String {
        if !measured.is_finite() {
            return "n/a".to_owned();
        }
        match self {
            MetricKind::Latency => format_latency_us(measured),
            MetricKind::Ratio => format_fraction(measured),
            MetricKind::Count => format_count(measured),
        }
    }
}

/// A latency in µs with three significant digits in the largest unit that keeps it at least 1:
/// `850us`, `6.89ms`, `1.23s`, `2.50m`, `1.00h`.
pub fn format_latency_us(us: f64) -> String {
    let us = us.max(0.0);
    // Each unit takes over where the previous one would round to 1000 (or to 60 s, 60 min).
    let (unit, scale) = if us < 999.5 {
        ("us", 1.0)
    } else if us < 999_500.0 {
        ("ms", 1e3)
    } else if us < 59.95e6 {
        ("s", 1e6)
    } else if us < 59.95 * 60e6 {
        ("m", 60e6)
    } else {
        ("h", 3_600e6)
    };
    format!("{}{unit}", sig3(us / scale))
}

/// A fraction as a percentage precise enough to tell it from 100% (and from 0%): `100%`,
/// `96.75%`, `99.9990%`, `0.010%`.
pub fn format_fraction(f: f64) -> String {
    if f == 1.0 {
        return "100%".to_owned();
    }
    if f == 0.0 {
        return "0%".to_owned();
    }
    // Enough decimals to show the first digit that differs from 100% (or from 0%).
    let (distance, floor) = if f > 0.5 { (1.0 - f, 2) } else { (f, 1) };
    let percent = distance.abs() * 100.0;
    // Rounded a little so that 0.001000000000006 (float noise) counts as 0.001.
    let digits = (-percent.log10() - 1e-9).ceil() as i64;
    let decimals = (digits + 1).clamp(floor, 6) as usize;
    format!("{:.decimals$}%", f * 100.0)
}

/// A count as a rule writes it: a whole number, no separators.
pub fn format_count(n: f64) -> String {
    format!("{}", n.max(0.0).round() as u64)
}

/// Three significant digits, e.g. `1.58`, `16.6`, `166`, `0.500` (whole numbers from 999.5 on);
/// also the reports' number format.
pub fn sig3(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let decimals = if v < 0.9995 {
        3
    } else if v < 9.995 {
        2
    } else if v < 99.95 {
        1
    } else {
        0
    };
    format!("{v:.decimals$}")
}

/// A measured quantity a threshold can be set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Fan-out latency (intended send time to receipt by a member), 50th percentile.
    FanoutP50,
    /// Fan-out latency, 90th percentile.
    FanoutP90,
    /// Fan-out latency, 99th percentile.
    FanoutP99,
    /// Fan-out latency, 99.9th percentile.
    FanoutP999,
    /// Fan-out latency, maximum.
    FanoutMax,
    /// Time to open a Socket.IO connection, 99th percentile.
    ConnectP99,
    /// Time from `join` sent to the member's own join message received, 99th percentile.
    JoinP99,
    /// Time until the last member of a room received a message, 99th percentile.
    CompletionP99,
    /// Owed deliveries not received within the deadline: `late + never`.
    Lost,
    /// Owed deliveries received after the deadline.
    Late,
    /// Owed deliveries never received.
    Never,
    /// Sends the members' schedules called for that were not made.
    Unsent,
    /// Messages received more than once by a member.
    Duplicated,
    /// Messages received out of their sender's order.
    Reordered,
    /// Received deliveries over expected deliveries.
    DeliveryRatio,
    /// Failed connection attempts over all connection attempts.
    ConnectErrorRate,
    /// Protocol errors (`error` events) received.
    Errors,
    /// A say's acknowledgement reaching its sender, 99th percentile (profiles with `say.ack`).
    AckP99,
    /// Received events the protocol profile could not place.
    Unmatched,
}

impl Metric {
    /// Every metric, in the order the documentation lists them.
    pub const ALL: [Metric; 19] = [
        Metric::FanoutP50,
        Metric::FanoutP90,
        Metric::FanoutP99,
        Metric::FanoutP999,
        Metric::FanoutMax,
        Metric::ConnectP99,
        Metric::JoinP99,
        Metric::CompletionP99,
        Metric::Lost,
        Metric::Late,
        Metric::Never,
        Metric::Unsent,
        Metric::Duplicated,
        Metric::Reordered,
        Metric::DeliveryRatio,
        Metric::ConnectErrorRate,
        Metric::Errors,
        Metric::AckP99,
        Metric::Unmatched,
    ];

    /// The name used in scenario files and results.
    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::FanoutP50 => "fanout.p50",
            Metric::FanoutP90 => "fanout.p90",
            Metric::FanoutP99 => "fanout.p99",
            Metric::FanoutP999 => "fanout.p999",
            Metric::FanoutMax => "fanout.max",
            Metric::ConnectP99 => "connect.p99",
            Metric::JoinP99 => "join.p99",
            Metric::CompletionP99 => "completion.p99",
            Metric::Lost => "lost",
            Metric::Late => "late",
            Metric::Never => "never",
            Metric::Unsent => "unsent",
            Metric::Duplicated => "duplicated",
            Metric::Reordered => "reordered",
            Metric::DeliveryRatio => "delivery_ratio",
            Metric::ConnectErrorRate => "connect.error_rate",
            Metric::Errors => "errors",
            Metric::AckP99 => "ack.p99",
            Metric::Unmatched => "unmatched",
        }
    }

    /// The metric named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// What kind of value it is measured in.
    pub const fn kind(self) -> MetricKind {
        match self {
            Metric::FanoutP50
            | Metric::FanoutP90
            | Metric::FanoutP99
            | Metric::FanoutP999
            | Metric::FanoutMax
            | Metric::ConnectP99
            | Metric::JoinP99
            | Metric::CompletionP99
            | Metric::AckP99 => MetricKind::Latency,
            Metric::DeliveryRatio | Metric::ConnectErrorRate => MetricKind::Ratio,
            Metric::Lost
            | Metric::Late
            | Metric::Never
            | Metric::Unsent
            | Metric::Duplicated
            | Metric::Reordered
            | Metric::Errors
            | Metric::Unmatched => MetricKind::Count,
        }
    }

    /// All metric names, comma separated, for error messages.
    pub fn names() -> String {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl Op {
    /// Every operator; two-character ones first so `<=` is not read as `<`.
    const ALL: [Op; 5] = [Op::Le, Op::Ge, Op::Eq, Op::Lt, Op::Gt];

    /// The operator as written.
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        }
    }

    /// Whether `left op right` holds. `==` allows float noise of one part in a billion, so a
    /// ratio computed as 999/1000 still equals "99.9%".
    pub fn compare(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => (left - right).abs() <= 1e-9 * right.abs().max(1.0),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bound a threshold compares against, in the metric's kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A latency.
    Latency(Duration),
    /// A percentage, kept as written (`0.1` for "0.1%"); see [`Limit::measured_units`].
    Percent(f64),
    /// A count.
    Count(f64),
}

impl Limit {
    /// The value in the units measurements come in: microseconds, fractions, or counts.
    pub fn measured_units(self) -> f64 {
        match self {
            Limit::Latency(d) => d.as_nanos() as f64 / 1_000.0,
            Limit::Percent(p) => p / 100.0,
            Limit::Count(n) => n,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Latency(d) => f.write_str(&format_duration(*d)),
            Limit::Percent(p) => write!(f, "{p}%"),
            Limit::Count(n) => write!(f, "{n}"),
        }
    }
}

/// One pass/fail condition, e.g. `fanout.p99 < 50ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub metric: Metric,
    /// How the measurement compares to `limit`.
    pub op: Op,
    /// The bound.
    pub limit: Limit,
}

impl Threshold {
    /// Reads the condition text of `metric`, e.g. `"< 50ms"`.
    pub fn parse(metric: Metric, text: &str) -> Result<Threshold, String> {
        let text = text.trim();
        let (op, rest) = split_op(text)?;
        let limit = parse_limit(metric, rest.trim())?;
        Ok(Threshold { metric, op, limit })
    }

    /// Reads a whole rule as results.json writes it, e.g. `"fanout.p99 < 50ms"`: the metric
    /// name up to the operator, then the condition ([`Threshold::parse`]).
    pub fn parse_rule(rule: &str) -> Result<Threshold, String> {
        let rule = rule.trim();
        let split = rule.find(['<', '>', '=']).unwrap_or(rule.len());
        let (name, condition) = rule.split_at(split);
        let name = name.trim();
        let metric = Metric::from_name(name).ok_or_else(|| {
            format!(
                "threshold rule `{rule}`: unknown metric `{name}`; allowed: {}",
                Metric::names()
            )
        })?;
        Threshold::parse(metric, condition).map_err(|e| format!("threshold rule `{rule}`: {e}"))
    }

    /// Whether `measured` passes: latencies in microseconds, ratios as fractions
    /// (0.001 for 0.1%), counts as they are.
    pub fn holds(&self, measured: f64) -> bool {
        self.op.compare(measured, self.limit.measured_units())
    }

    /// A measured value of this rule's metric, written in the rule's unit (`6.89ms`, `100%`,
    /// `12`): see [`MetricKind::format`].
    pub fn format_measured(&self, measured: f64) -> String {
        self.metric.kind().format(measured)
    }

    /// The condition without the metric, as a scenario file writes it: `"< 50ms"`.
    pub fn condition(&self) -> String {
        format!("{} {}", self.op, self.limit)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op, self.limit)
    }
}

/// Splits the leading operator off a condition.
fn split_op(text: &str) -> Result<(Op, &str), String> {
    Op::ALL
        .into_iter()
        .find_map(|op| text.strip_prefix(op.as_str()).map(|rest| (op, rest)))
        .ok_or_else(|| {
            format!("`{text}` does not start with an operator; allowed: <, <=, >, >=, ==")
        })
}

/// Reads the bound in the kind `metric` needs.
fn parse_limit(metric: Metric, text: &str) -> Result<Limit, String> {
    match metric.kind() {
        MetricKind::Latency => parse_duration(text)
            .map(Limit::Latency)
            .map_err(|e| format!("{e} ({metric} is a latency)")),
        MetricKind::Ratio => percent_as_written(text)
            .map(Limit::Percent)
            .map_err(|_| format!("`{text}` is not {PERCENT_HINT} ({metric} is a ratio)")),
        MetricKind::Count => parse_plain_number(text)
            .map(Limit::Count)
            .ok_or_else(|| format!("`{text}` is not a count like 0 or 10 ({metric} is a count)")),
    }
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(rule: &str) -> Result<Threshold, String> {
        Threshold::parse_rule(rule)
    }
}

impl Serialize for Threshold {
    /// As its display text, `"fanout.p99 < 50ms"`, when serialized on its own.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    /// From the rule text, through [`Threshold::parse_rule`]: a rule that does not parse is an
    /// error naming it.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rule = String::deserialize(deserializer)?;
        Threshold::parse_rule(&rule).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(metric: &str, text: &str) -> Threshold {
        Threshold::parse(Metric::from_name(metric).unwrap(), text).unwrap()
    }

    #[test]
    fn every_metric_name_round_trips() {
        for metric in Metric::ALL {
            assert_eq!(Metric::from_name(metric.as_str()), Some(metric));
        }
        assert_eq!(Metric::from_name("fanout.p98"), None);
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(
            threshold("fanout.p99", "< 50ms").to_string(),
            "fanout.p99 < 50ms"
        );
        assert_eq!(threshold("lost", "==0").to_string(), "lost == 0");
        let rate = threshold("connect.error_rate", "<= 0.1%");
        assert_eq!(rate.to_string(), "connect.error_rate <= 0.1%");
        assert_eq!(
            threshold("join.p99", ">= 1.5s").to_string(),
            "join.p99 >= 1.5s"
        );
    }

    #[test]
    fn latencies_compare_in_microseconds() {
        let p99 = threshold("fanout.p99", "< 50ms");
        assert!(p99.holds(49_999.0));
        assert!(!p99.holds(50_000.0));
        assert!(threshold("fanout.max", "<= 200us").holds(200.0));
    }

    #[test]
    fn percentages_compare_as_fractions() {
        let rate = threshold("connect.error_rate", "< 0.1%");
        assert!(rate.holds(0.000_9));
        assert!(!rate.holds(0.001));
        let ratio = threshold("delivery_ratio", "== 99.9%");
        assert!(ratio.holds(999.0 / 1000.0));
        assert!(threshold("delivery_ratio", ">= 100%").holds(1.0));
    }

    #[test]
    fn counts_compare_as_numbers() {
        let lost = threshold("lost", "== 0");
        assert!(lost.holds(0.0));
        assert!(!lost.holds(1.0));
        assert!(threshold("errors", "> 2").holds(3.0));
    }

    #[test]
    fn values_of_the_wrong_kind_are_refused() {
        let p99 = Metric::FanoutP99;
        assert!(
            Threshold::parse(p99, "< 50")
                .unwrap_err()
                .contains("latency")
        );
        assert!(
            Threshold::parse(p99, "50ms")
                .unwrap_err()
                .contains("operator")
        );
        assert!(
            Threshold::parse(p99, "= 50ms")
                .unwrap_err()
                .contains("<, <=, >, >=, ==")
        );
        let rate = Metric::ConnectErrorRate;
        assert!(
            Threshold::parse(rate, "< 0.001")
                .unwrap_err()
                .contains("percentage")
        );
        assert!(
            Threshold::parse(Metric::Lost, "== 5ms")
                .unwrap_err()
                .contains("count")
        );
    }

    #[test]
    fn whole_rules_parse_as_results_write_them() {
        for rule in [
            "fanout.p99 < 50ms",
            "lost == 0",
            "late <= 10",
            "never == 0",
            "unsent < 5",
            "delivery_ratio >= 99.9%",
            "connect.error_rate <= 0.1%",
        ] {
            let parsed = Threshold::parse_rule(rule).unwrap();
            assert_eq!(parsed.to_string(), rule);
            assert_eq!(rule.parse::<Threshold>(), Ok(parsed));
        }
        assert_eq!(
            Threshold::parse_rule("fanout.max<=2s").unwrap(),
            threshold("fanout.max", "<= 2s")
        );
        assert_eq!(threshold("unsent", "== 0").metric.kind(), MetricKind::Count);
        let unknown = Threshold::parse_rule("fanout.p98 < 5ms").unwrap_err();
        assert!(unknown.contains("unknown metric `fanout.p98`"), "{unknown}");
        assert!(unknown.contains("late, never, unsent"), "{unknown}");
        let bad = Threshold::parse_rule("lost == 5ms").unwrap_err();
        assert!(bad.starts_with("threshold rule `lost == 5ms`: "), "{bad}");
        assert!(
            Threshold::parse_rule("lost")
                .unwrap_err()
                .contains("operator")
        );
    }

    #[test]
    fn measured_values_print_in_the_rules_unit() {
        let p99 = threshold("fanout.p99", "< 250ms");
        assert_eq!(p99.format_measured(6_891.0), "6.89ms");
        assert_eq!(p99.format_measured(22_911.0), "22.9ms");
        assert_eq!(p99.format_measured(850.0), "850us");
        assert_eq!(p99.format_measured(1_230_000.0), "1.23s");
        assert_eq!(p99.format_measured(150e6), "2.50m");
        assert_eq!(p99.format_measured(7_200e6), "2.00h");
        assert_eq!(p99.format_measured(0.0), "0us");
        let ratio = threshold("delivery_ratio", ">= 80%");
        assert_eq!(ratio.format_measured(1.0), "100%");
        assert_eq!(ratio.format_measured(0.9675), "96.75%");
        assert_eq!(ratio.format_measured(0.99999), "99.9990%");
        assert_eq!(ratio.format_measured(0.5), "50.0%");
        assert_eq!(ratio.format_measured(0.0001), "0.010%");
        assert_eq!(
            threshold("connect.error_rate", "< 1%").format_measured(0.0),
            "0%"
        );
        let lost = threshold("lost", "== 0");
        assert_eq!(lost.format_measured(12.0), "12");
        assert_eq!(lost.format_measured(1_234_567.0), "1234567");
        assert_eq!(lost.format_measured(f64::NAN), "n/a");
    }
}
