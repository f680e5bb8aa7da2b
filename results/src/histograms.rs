//! Latency and fan-out-size histograms as results.json keeps them: the metrics, their bounds,
//! the V2 codec, exact addition, and percentile summaries.
//!
//! Percentiles cannot be averaged, so every process keeps full HdrHistograms and ships them
//! (HdrHistogram V2 with deflate, base64: the format of HdrHistogram's log files, readable by
//! its other implementations) for merges across threads, processes and machines. This module
//! is what a reader of results needs (merges, reports); recording them per thread on the hot
//! path is the load generator's business (`loadgen::measure::histograms::Recorder`).
//!
//! Units: microseconds for every metric except [`HistogramKind::FanoutSize`], a count of members.
//! Range: 0 ..= 1 hour in µs at 3 significant digits. Larger values are recorded as the
//! maximum and counted as clamped, so a percentile never silently drops a stall.

use std::io::Cursor;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Largest value kept exactly: one hour in microseconds. Nothing we measure should come close;
/// anything above is a stall that we count (clamped) rather than size every histogram for.
pub const MAX_VALUE: u64 = 3_600_000_000;

/// Significant digits of the run-wide histograms: 0.1% resolution at every magnitude.
pub const SIGFIG: u8 = 3;

/// What a histogram measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistogramKind {
    /// From the connect attempt to the Socket.IO CONNECT ack, µs.
    Connect,
    /// From emitting `join` to seeing one's own join broadcast, µs.
    Join,
    /// One message reaching one member: receive time − intended send time, µs.
    Fanout,
    /// One message reaching every member it was owed to: the slowest of its receipts, µs.
    Completion,
    /// How many sessions one message was owed to (a count, not µs).
    FanoutSize,
    /// A say's acknowledgement (profiles with `say.ack`) reaching its sender: receive time −
    /// intended send time, µs.
    Ack,
}

impl HistogramKind {
    /// Every metric, in declaration order (the order of per-metric arrays).
    pub const ALL: [HistogramKind; 6] = [
        HistogramKind::Connect,
        HistogramKind::Join,
        HistogramKind::Fanout,
        HistogramKind::Completion,
        HistogramKind::FanoutSize,
        HistogramKind::Ack,
    ];

    /// The name used in results.json and threshold rules.
    pub const fn name(self) -> &'static str {
        match self {
            HistogramKind::Connect => "connect",
            HistogramKind::Join => "join",
            HistogramKind::Fanout => "fanout",
            HistogramKind::Completion => "completion",
            HistogramKind::FanoutSize => "fanout_size",
            HistogramKind::Ack => "ack",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Summary of one histogram. Times in µs (for [`HistogramKind::FanoutSize`]: member counts).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    /// Values above [`MAX_VALUE`], recorded as [`MAX_VALUE`].
    #[serde(default)]
    pub clamped: u64,
}

/// Summarizes a histogram (all zero when it is empty). Percentiles are HdrHistogram's
/// "highest equivalent value": an upper bound within the histogram's resolution.
pub fn percentiles(hist: &Histogram<u64>) -> Percentiles {
    if hist.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: hist.len(),
        min_us: hist.min(),
        p50_us: hist.value_at_quantile(0.5),
        p90_us: hist.value_at_quantile(0.9),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        mean_us: hist.mean(),
        clamped: 0,
    }
}

/// An empty histogram over 0 ..= [`MAX_VALUE`] with `sigfig` digits.
pub fn new_histogram(sigfig: u8) -> Histogram<u64> {
    // Both bounds and sigfig are constants within HdrHistogram's limits; this cannot fail.
    Histogram::new_with_bounds(1, MAX_VALUE, sigfig).expect("constant histogram bounds are valid")
}

/// Records `value`, clamping it to [`MAX_VALUE`]; returns whether it was clamped.
pub fn record_clamped(hist: &mut Histogram<u64>, value: u64) -> bool {
    let clamped = value > MAX_VALUE;
    hist.saturating_record(value.min(MAX_VALUE));
    clamped
}

/// Adds `source` into `target`, even when `source` came from elsewhere with other bounds
/// (its values above `target`'s range are clamped, never dropped).
pub fn add_histogram(target: &mut Histogram<u64>, source: &Histogram<u64>) {
    if target.add(source).is_ok() {
        return;
    }
    for value in source.iter_recorded() {
        let at = value.value_iterated_to().min(MAX_VALUE);
        target.saturating_record_n(at, value.count_at_value());
    }
}

/// Base64 of the histogram in HdrHistogram's V2 format, deflate-compressed.
pub fn encode_histogram(hist: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(hist, &mut bytes)
        .map_err(|e| anyhow::anyhow!("serializing a histogram: {e:?}"))?;
    Ok(BASE64.encode(bytes))
}

/// Reads what [`encode_histogram`] wrote (V2, compressed or not). An empty string is an empty
/// histogram with `sigfig` digits, so absent data needs no placeholder encoding.
pub fn decode_histogram(text: &str, sigfig: u8) -> anyhow::Result<Histogram<u64>> {
    let mut hist = new_histogram(sigfig);
    if text.is_empty() {
        return Ok(hist);
    }
    let bytes = BASE64
        .decode(text)
        .context("histogram is not valid base64")?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("histogram is not HdrHistogram V2: {e:?}"))?;
    add_histogram(&mut hist, &decoded);
    Ok(hist)
}

/// One set of histograms: one per [`HistogramKind`], plus how many values each had to clamp.
#[derive(Debug, Clone)]
pub struct Histograms {
    hists: [Histogram<u64>; HistogramKind::ALL.len()],
    clamped: [u64; HistogramKind::ALL.len()],
}

impl Default for Histograms {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Histograms {
    fn eq(&self, other: &Self) -> bool {
        self.clamped == other.clamped && self.hists == other.hists
    }
}

/// The serialized form of [`Histograms`], as it appears in results.json under `histograms`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EncodedHistograms {
    pub fanout: String,
    pub connect: String,
    pub join: String,
    pub completion: String,
    pub fanout_size: String,
    /// Empty in files written before it existed, and for runs without acknowledgements.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ack: String,
    /// Values above the 1-hour maximum, per metric name; only metrics with any.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub clamped: std::collections::BTreeMap<String, u64>,
}

impl EncodedHistograms {
    fn field(&self, metric: HistogramKind) -> &str {
        match metric {
            HistogramKind::Connect => &self.connect,
            HistogramKind::Join => &self.join,
            HistogramKind::Fanout => &self.fanout,
            HistogramKind::Completion => &self.completion,
            HistogramKind::FanoutSize => &self.fanout_size,
            HistogramKind::Ack => &self.ack,
        }
    }

    fn field_mut(&mut self, metric: HistogramKind) -> &mut String {
        match metric {
            HistogramKind::Connect => &mut self.connect,
            HistogramKind::Join => &mut self.join,
            HistogramKind::Fanout => &mut self.fanout,
            HistogramKind::Completion => &mut self.completion,
            HistogramKind::FanoutSize => &mut self.fanout_size,
            HistogramKind::Ack => &mut self.ack,
        }
    }
}

impl Histograms {
    pub fn new() -> Self {
        Histograms {
            hists: std::array::from_fn(|_| new_histogram(SIGFIG)),
            clamped: [0; HistogramKind::ALL.len()],
        }
    }

    /// Records one value (µs, or a count for [`HistogramKind::FanoutSize`]).
    pub fn record(&mut self, metric: HistogramKind, value: u64) {
        let i = metric.index();
        if record_clamped(&mut self.hists[i], value) {
            self.clamped[i] += 1;
        }
    }

    pub fn histogram(&self, metric: HistogramKind) -> &Histogram<u64> {
        &self.hists[metric.index()]
    }

    /// How many values of `metric` were above [`MAX_VALUE`].
    pub fn clamped(&self, metric: HistogramKind) -> u64 {
        self.clamped[metric.index()]
    }

    /// Adds every metric of `other` into this one (exact: counts add up bucket by bucket).
    pub fn add(&mut self, other: &Histograms) {
        for metric in HistogramKind::ALL {
            let i = metric.index();
            add_histogram(&mut self.hists[i], &other.hists[i]);
            self.clamped[i] += other.clamped[i];
        }
    }

    pub fn summary(&self, metric: HistogramKind) -> Percentiles {
        Percentiles {
            clamped: self.clamped(metric),
            ..percentiles(self.histogram(metric))
        }
    }

    /// Every metric as base64 HdrHistogram V2 (deflate).
    pub fn serialize(&self) -> anyhow::Result<EncodedHistograms> {
        let mut encoded = EncodedHistograms::default();
        for metric in HistogramKind::ALL {
            if metric == HistogramKind::Ack && self.histogram(metric).is_empty() {
                // Only runs whose profile asks for acknowledgements have this one.
                continue;
            }
            *encoded.field_mut(metric) = encode_histogram(self.histogram(metric))
                .with_context(|| format!("histogram {}", metric.name()))?;
            if self.clamped(metric) > 0 {
                encoded
                    .clamped
                    .insert(metric.name().to_owned(), self.clamped(metric));
            }
        }
        Ok(encoded)
    }

    pub fn deserialize(encoded: &EncodedHistograms) -> anyhow::Result<Self> {
        let mut out = Histograms::new();
        for metric in HistogramKind::ALL {
            out.hists[metric.index()] = decode_histogram(encoded.field(metric), SIGFIG)
                .with_context(|| format!("histogram {}", metric.name()))?;
        }
        for (name, count) in &encoded.clamped {
            let Some(metric) = HistogramKind::ALL.into_iter().find(|m| m.name() == name) else {
                bail!("clamped count for unknown metric {name:?}");
            };
            out.clamped[metric.index()] = *count;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_above_an_hour_are_clamped_and_counted() {
        let mut h = Histograms::new();
        h.record(HistogramKind::Fanout, MAX_VALUE * 5);
        h.record(HistogramKind::Fanout, 10);
        let s = h.summary(HistogramKind::Fanout);
        assert_eq!((s.count, s.clamped), (2, 1));
        assert!(
            h.histogram(HistogramKind::Fanout)
                .equivalent(s.max_us, MAX_VALUE)
        );
    }

    #[test]
    fn zero_is_a_valid_value() {
        let mut h = Histograms::new();
        h.record(HistogramKind::Completion, 0);
        assert_eq!(h.summary(HistogramKind::Completion).count, 1);
        assert_eq!(h.summary(HistogramKind::Completion).max_us, 0);
    }

    #[test]
    fn serialization_round_trips_and_adds_like_the_originals() {
        let mut a = Histograms::new();
        let mut b = Histograms::new();
        for v in 0..5000u64 {
            a.record(HistogramKind::Fanout, v * 37);
            b.record(HistogramKind::Connect, v * v);
        }
        b.record(HistogramKind::Join, u64::MAX);
        let a2 = Histograms::deserialize(&a.serialize().expect("encodes")).expect("decodes");
        let b2 = Histograms::deserialize(&b.serialize().expect("encodes")).expect("decodes");
        assert_eq!(a2, a);
        assert_eq!(b2, b);
        a.add(&b);
        let mut sum = a2;
        sum.add(&b2);
        assert_eq!(sum, a);
        assert_eq!(sum.clamped(HistogramKind::Join), 1);
    }

    #[test]
    fn the_encoding_is_compressed_v2() {
        let mut h = new_histogram(SIGFIG);
        h.saturating_record(42);
        let bytes = BASE64
            .decode(encode_histogram(&h).expect("encodes"))
            .expect("base64");
        // The V2 compressed cookie, big-endian.
        assert_eq!(bytes[..4], [0x1c, 0x84, 0x93, 0x14]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(decode_histogram("!!!", SIGFIG).is_err());
        assert!(decode_histogram("AAAA", SIGFIG).is_err());
        assert!(decode_histogram("", SIGFIG).expect("empty").is_empty());
        let mut encoded = EncodedHistograms::default();
        encoded.clamped.insert("nope".into(), 1);
        assert!(Histograms::deserialize(&encoded).is_err());
    }

    #[test]
    fn a_foreign_histogram_with_a_larger_range_is_clamped_into_ours() {
        let mut foreign: Histogram<u64> =
            Histogram::new_with_bounds(1, MAX_VALUE * 100, 3).expect("bounds");
        foreign.saturating_record(MAX_VALUE * 50);
        foreign.saturating_record(7);
        let text = encode_histogram(&foreign).expect("encodes");
        let ours = decode_histogram(&text, SIGFIG).expect("decodes");
        assert_eq!(ours.len(), 2);
        assert!(ours.equivalent(ours.max(), MAX_VALUE));
    }
}
