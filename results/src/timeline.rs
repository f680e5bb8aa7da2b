//! One second of a run as results.json keeps it, and exact merges of per-second timelines.
//!
//! Run-wide percentiles hide a 5-second stall in a 10-minute run, so results keep a timeline:
//! per second, counters and a fan-out histogram (2 significant digits), so that merged
//! per-second percentiles are exact too. How the load generator fills it without locks is its
//! own business (`loadgen::measure::timeline::Timeline`); this is the written form.

use std::collections::BTreeMap;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::histograms::{add_histogram, decode_histogram, encode_histogram};

/// Significant digits of the per-second fan-out histograms.
pub const TIMELINE_SIGFIG: u8 = 2;

/// One second as results.json keeps it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the run's start.
    pub t: u32,
    /// Members connected (the gauge's last value in that second; summed across parts).
    pub members: u64,
    pub sends: u64,
    /// First receipts (in order or not).
    pub deliveries: u64,
    pub duplicates: u64,
    /// Errors by kind name; only kinds that happened.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    pub fanout_p50_us: u64,
    pub fanout_p99_us: u64,
    pub fanout_max_us: u64,
    /// The second's fan-out histogram (base64 HdrHistogram V2 deflate, 2 significant digits),
    /// `""` when nothing was delivered; kept so merged percentiles stay exact.
    #[serde(default)]
    pub fanout_hist: String,
}

impl SecondStats {
    /// Sets the percentile fields from the second's histogram (empty: all zero, no histogram).
    pub fn set_fanout(&mut self, hist: &Histogram<u64>) -> anyhow::Result<()> {
        if hist.is_empty() {
            (self.fanout_p50_us, self.fanout_p99_us, self.fanout_max_us) = (0, 0, 0);
            self.fanout_hist.clear();
            return Ok(());
        }
        self.fanout_p50_us = hist.value_at_quantile(0.5);
        self.fanout_p99_us = hist.value_at_quantile(0.99);
        self.fanout_max_us = hist.max();
        self.fanout_hist = encode_histogram(hist)?;
        Ok(())
    }

    /// Adds another part's same second: counters and errors summed, histograms added and the
    /// percentiles recomputed from the sum.
    pub fn add(&mut self, other: &SecondStats) -> anyhow::Result<()> {
        self.members += other.members;
        self.sends += other.sends;
        self.deliveries += other.deliveries;
        self.duplicates += other.duplicates;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        let mut hist = decode_histogram(&self.fanout_hist, TIMELINE_SIGFIG)
            .with_context(|| format!("timeline second {}", self.t))?;
        let theirs = decode_histogram(&other.fanout_hist, TIMELINE_SIGFIG)
            .with_context(|| format!("timeline second {}", other.t))?;
        add_histogram(&mut hist, &theirs);
        self.set_fanout(&hist)
    }
}

/// Adds timelines second by second (aligned on `t`); the result covers every second of any.
pub fn merge_timelines<'a>(
    parts: impl IntoIterator<Item = &'a [SecondStats]>,
) -> anyhow::Result<Vec<SecondStats>> {
    let mut by_second: BTreeMap<u32, SecondStats> = BTreeMap::new();
    for part in parts {
        for second in part {
            match by_second.get_mut(&second.t) {
                Some(sum) => sum.add(second)?,
                None => {
                    by_second.insert(second.t, second.clone());
                }
            }
        }
    }
    Ok(by_second.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_histogram_fails_the_merge_with_context() {
        let bad = [SecondStats {
            fanout_hist: "not base64!".into(),
            ..SecondStats::default()
        }];
        let err = merge_timelines([bad.as_slice(), bad.as_slice()]).expect_err("corrupt");
        assert!(format!("{err:#}").contains("timeline second 0"), "{err:#}");
    }
}
