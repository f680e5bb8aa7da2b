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
    /// Messages the schedules called for with their intended send time in this second (the
    /// offered load); 0 in files written before it existed.
    #[serde(default)]
    pub planned: u64,
    /// Of those, sent (by intended send time).
    pub sends: u64,
    /// First receipts (in order or not).
    pub deliveries: u64,
    pub duplicates: u64,
    /// Owed deliveries lost of the messages whose INTENDED send time falls in this second
    /// (not when the loss was noticed): summed across parts like the other counters, so a
    /// split run can judge fault recovery and rate steps exactly as one process does.
    /// Absent (0) in results written before it existed.
    #[serde(default)]
    pub lost: u64,
    /// Of `lost`, the deliveries that did arrive, after the deadline (by intended send time
    /// too); `lost − late` never arrived. 0 in files written before it existed.
    #[serde(default)]
    pub late: u64,
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
        self.planned += other.planned;
        self.sends += other.sends;
        self.deliveries += other.deliveries;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.late += other.late;
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

/// Writes `lost[t]` (owed deliveries lost, late or never, of the messages intended in second
/// `t`) and `late[t]` (of those, the ones that arrived after the deadline) into the timeline's
/// seconds, adding the seconds it does not have yet (a loss in a second after the last busy
/// one still counts).
pub fn set_lost(timeline: &mut Vec<SecondStats>, lost: &[u64], late: &[u64]) {
    set_per_second(timeline, lost, |s| &mut s.lost);
    set_per_second(timeline, late, |s| &mut s.late);
}

/// Writes `counts[t]` into the field `field` of second `t`, adding missing seconds.
fn set_per_second(
    timeline: &mut Vec<SecondStats>,
    counts: &[u64],
    field: fn(&mut SecondStats) -> &mut u64,
) {
    for (t, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let t = u32::try_from(t).unwrap_or(u32::MAX);
        let at = timeline.partition_point(|s| s.t < t);
        match timeline.get_mut(at) {
            Some(second) if second.t == t => *field(second) = n,
            _ => {
                let mut second = SecondStats {
                    t,
                    ..SecondStats::default()
                };
                *field(&mut second) = n;
                timeline.insert(at, second);
            }
        }
    }
}

/// Writes `planned[t]` (sends the schedules called for with their intended time in second
/// `t`) into the timeline's seconds, adding the seconds it does not have yet (a second in which
/// nobody could send was still planned).
pub fn set_planned(timeline: &mut Vec<SecondStats>, planned: &[u64]) {
    set_per_second(timeline, planned, |s| &mut s.planned);
}

/// Owed deliveries lost of the messages intended in seconds `from..to` (of the run clock).
pub fn lost_in_seconds(timeline: &[SecondStats], from: u32, to: u32) -> u64 {
    timeline
        .iter()
        .filter(|s| (from..to).contains(&s.t))
        .map(|s| s.lost)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u32, lost: u64) -> SecondStats {
        SecondStats {
            t,
            sends: 1,
            lost,
            ..SecondStats::default()
        }
    }

    #[test]
    fn merged_seconds_add_their_losses_and_keep_every_second() {
        let a = [second(0, 0), second(1, 3), second(2, 1)];
        let b = [second(1, 4), second(3, 2)];
        let merged = merge_timelines([a.as_slice(), b.as_slice()]).expect("merge");
        let lost: Vec<(u32, u64)> = merged.iter().map(|s| (s.t, s.lost)).collect();
        assert_eq!(lost, [(0, 0), (1, 7), (2, 1), (3, 2)]);
        assert_eq!(lost_in_seconds(&merged, 1, 3), 8);
        assert_eq!(lost_in_seconds(&merged, 0, 100), 10);
    }

    #[test]
    fn losses_land_in_their_seconds_even_past_the_last_busy_one() {
        let mut timeline = vec![second(0, 0), second(2, 0)];
        set_lost(&mut timeline, &[0, 5, 1, 0, 2], &[0, 1]);
        let lost: Vec<(u32, u64)> = timeline.iter().map(|s| (s.t, s.lost)).collect();
        assert_eq!(lost, [(0, 0), (1, 5), (2, 1), (4, 2)]);
        assert_eq!(timeline[1].late, 1);
        assert_eq!(timeline[2].sends, 1, "the existing second is kept");
    }

    #[test]
    fn planned_sends_land_in_their_seconds_even_where_nothing_was_sent() {
        let mut timeline = vec![second(0, 0), second(2, 0)];
        set_planned(&mut timeline, &[3, 0, 4, 7]);
        let planned: Vec<(u32, u64, u64)> =
            timeline.iter().map(|s| (s.t, s.planned, s.sends)).collect();
        assert_eq!(planned, [(0, 3, 1), (2, 4, 1), (3, 7, 0)]);
    }

    #[test]
    fn a_second_written_before_lost_existed_loads_with_none_lost() {
        let old = r#"{"t":3,"members":5,"sends":2,"deliveries":10,"duplicates":0,
            "fanout_p50_us":1,"fanout_p99_us":2,"fanout_max_us":3,"fanout_hist":""}"#;
        let second: SecondStats = serde_json::from_str(old).expect("old second loads");
        assert_eq!((second.t, second.lost), (3, 0));
    }

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
