//! Pass/fail thresholds: `"fanout.p99" = "< 50ms"` in a scenario's `[thresholds]` table.
//!
//! This exists so a run can judge itself against what its author promised, with each metric
//! bound to the one kind of value that makes sense for it (a latency takes a duration, a ratio
//! a percentage, a count a number), checked when the scenario loads rather than when the
//! results are judged.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::units::{PERCENT_HINT, format_duration, parse_duration, percent_as_written};

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
    /// Messages not received by a member within the deadline.
    Lost,
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
}

impl Metric {
    /// Every metric, in the order the documentation lists them.
    pub const ALL: [Metric; 14] = [
        Metric::FanoutP50,
        Metric::FanoutP90,
        Metric::FanoutP99,
        Metric::FanoutP999,
        Metric::FanoutMax,
        Metric::ConnectP99,
        Metric::JoinP99,
        Metric::CompletionP99,
        Metric::Lost,
        Metric::Duplicated,
        Metric::Reordered,
        Metric::DeliveryRatio,
        Metric::ConnectErrorRate,
        Metric::Errors,
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
            Metric::Duplicated => "duplicated",
            Metric::Reordered => "reordered",
            Metric::DeliveryRatio => "delivery_ratio",
            Metric::ConnectErrorRate => "connect.error_rate",
            Metric::Errors => "errors",
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
            | Metric::CompletionP99 => MetricKind::Latency,
            Metric::DeliveryRatio | Metric::ConnectErrorRate => MetricKind::Ratio,
            Metric::Lost | Metric::Duplicated | Metric::Reordered | Metric::Errors => {
                MetricKind::Count
            }
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

/// The value a threshold compares against, in the metric's kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdValue {
    /// A latency.
    Latency(Duration),
    /// A percentage, kept as written (`0.1` for "0.1%"); see [`ThresholdValue::measured_units`].
    Percent(f64),
    /// A count.
    Count(f64),
}

impl ThresholdValue {
    /// The value in the units measurements come in: microseconds, fractions, or counts.
    pub fn measured_units(self) -> f64 {
        match self {
            ThresholdValue::Latency(d) => d.as_nanos() as f64 / 1_000.0,
            ThresholdValue::Percent(p) => p / 100.0,
            ThresholdValue::Count(n) => n,
        }
    }
}

impl fmt::Display for ThresholdValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdValue::Latency(d) => f.write_str(&format_duration(*d)),
            ThresholdValue::Percent(p) => write!(f, "{p}%"),
            ThresholdValue::Count(n) => write!(f, "{n}"),
        }
    }
}

/// One pass/fail condition, e.g. `fanout.p99 < 50ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub metric: Metric,
    /// How the measurement compares to `value`.
    pub op: Op,
    /// The bound.
    pub value: ThresholdValue,
}

impl Threshold {
    /// Reads the condition text of `metric`, e.g. `"< 50ms"`.
    pub fn parse(metric: Metric, text: &str) -> Result<Threshold, String> {
        let text = text.trim();
        let (op, rest) = split_op(text)?;
        let value = parse_value(metric, rest.trim())?;
        Ok(Threshold { metric, op, value })
    }

    /// Whether `measured` passes: latencies in microseconds, ratios as fractions
    /// (0.001 for 0.1%), counts as they are.
    pub fn holds(&self, measured: f64) -> bool {
        self.op.compare(measured, self.value.measured_units())
    }

    /// The condition without the metric, as a scenario file writes it: `"< 50ms"`.
    pub fn condition(&self) -> String {
        format!("{} {}", self.op, self.value)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op, self.value)
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
fn parse_value(metric: Metric, text: &str) -> Result<ThresholdValue, String> {
    match metric.kind() {
        MetricKind::Latency => parse_duration(text)
            .map(ThresholdValue::Latency)
            .map_err(|e| format!("{e} ({metric} is a latency)")),
        MetricKind::Ratio => percent_as_written(text)
            .map(ThresholdValue::Percent)
            .map_err(|_| format!("`{text}` is not {PERCENT_HINT} ({metric} is a ratio)")),
        MetricKind::Count => super::units::parse_plain_number(text)
            .map(ThresholdValue::Count)
            .ok_or_else(|| format!("`{text}` is not a count like 0 or 10 ({metric} is a count)")),
    }
}

/// Thresholds are written back as the `[thresholds]` table they came from.
pub(crate) fn serialize_thresholds<S: serde::Serializer>(
    thresholds: &[Threshold],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(thresholds.len()))?;
    for threshold in thresholds {
        map.serialize_entry(threshold.metric.as_str(), &threshold.condition())?;
    }
    map.end()
}

impl Serialize for Threshold {
    /// As its display text, `"fanout.p99 < 50ms"`, when serialized on its own.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
}
