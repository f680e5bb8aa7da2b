//! What the charts draw, computed from results.json: log-spaced histogram bins, percentile
//! curves on a "nines" axis, and a timeline bucketed so that an hour-long run stays light.
//!
//! Kept apart from the drawing so that the numbers can be tested without parsing SVG, and so
//! that the rules (which percentile a bucket shows, how long runs are thinned) live in one
//! place.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use roomstorm_results::histograms::decode_histogram;
use roomstorm_results::timeline::{SecondStats, TIMELINE_SIGFIG};

/// At most this many points per timeline series: a one-hour run (3,600 seconds) is drawn in
/// 6-second buckets, keeping each chart a few tens of KB.
pub const MAX_TIMELINE_POINTS: usize = 600;

/// Bins per decade of the log-spaced latency histograms.
pub const BINS_PER_DECADE: u32 = 10;

/// One bin of a histogram: `[lo, hi)` and the share of all values in it (0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
    pub share: f64,
}

/// Log-spaced bins (`BINS_PER_DECADE` per decade) covering every recorded value; values
/// below 1 (a latency of 0 µs) go to the first bin. Empty for an empty histogram.
pub fn log_bins(hist: &Histogram<u64>) -> Vec<Bin> {
    if hist.is_empty() {
        return Vec::new();
    }
    let step = 1.0 / f64::from(BINS_PER_DECADE);
    let index = |v: u64| -> i64 { ((v.max(1) as f64).log10() / step).floor() as i64 };
    let first = index(hist.min());
    let last = index(hist.max());
    let n = (last - first + 1) as usize;
    let mut counts = vec![0u64; n];
    for v in hist.iter_recorded() {
        let i = (index(v.value_iterated_to()) - first).clamp(0, n as i64 - 1) as usize;
        counts[i] += v.count_at_value();
    }
    let total = hist.len() as f64;
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let k = (first + i as i64) as f64;
            Bin {
                lo: 10f64.powf(k * step),
                hi: 10f64.powf((k + 1.0) * step),
                count,
                share: count as f64 / total,
            }
        })
        .collect()
}

/// Linear bins of integer values (recipients per message): one bin per value when there are
/// at most `max_bins` distinct values in range, wider bins otherwise.
pub fn linear_bins(hist: &Histogram<u64>, max_bins: u64) -> Vec<Bin> {
    if hist.is_empty() {
        return Vec::new();
    }
    let (min, max) = (hist.min(), hist.max());
    let width = (max - min).div_ceil(max_bins.max(1)).max(1);
    let n = ((max - min) / width + 1) as usize;
    let mut counts = vec![0u64; n];
    for v in hist.iter_recorded() {
        let value = hist.lowest_equivalent(v.value_iterated_to());
        let i = ((value.saturating_sub(min)) / width).min(n as u64 - 1) as usize;
        counts[i] += v.count_at_value();
    }
    let total = hist.len() as f64;
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let lo = (min + i as u64 * width) as f64;
            Bin {
                lo,
                hi: lo + width as f64,
                count,
                share: count as f64 / total,
            }
        })
        .collect()
}

/// A percentile curve: (nines, value) points from p0 up to the percentile the sample size
/// supports (`log10(count)` nines, at least 1), every 0.05 nines, plus the maximum.
pub fn percentile_curve(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    if hist.is_empty() {
        return Vec::new();
    }
    let top = (hist.len() as f64).log10().max(1.0);
    let steps = (top / 0.05).ceil() as usize;
    let mut points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let x = (i as f64 * 0.05).min(top);
            let q = 1.0 - 10f64.powf(-x);
            (x, hist.value_at_quantile(q) as f64)
        })
        .collect();
    points.push((top, hist.max() as f64));
    points
}

/// One bucket of the timeline: `width` seconds from `t`, per-second rates, and fan-out
/// percentiles of all its deliveries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bucket {
    /// Start, seconds since the run's start.
    pub t: f64,
    /// Seconds in the bucket.
    pub width: f64,
    /// The most members connected in any of its seconds.
    pub members: u64,
    pub sends_per_s: f64,
    pub deliveries_per_s: f64,
    /// Errors by kind in the whole bucket.
    pub errors: BTreeMap<String, u64>,
    /// Fan-out p50 and p99 of the bucket's deliveries, µs (`None` without deliveries).
    pub fanout_p50_us: Option<u64>,
    pub fanout_p99_us: Option<u64>,
}

/// The timeline in at most [`MAX_TIMELINE_POINTS`] buckets of equal width. A bucket's fan-out
/// percentiles come from the sum of its seconds' histograms (exact); when a histogram does not
/// decode, from the largest per-second value (an upper bound).
pub fn buckets(timeline: &[SecondStats]) -> Vec<Bucket> {
    let Some(last) = timeline.iter().map(|s| s.t).max() else {
        return Vec::new();
    };
    let span = last as usize + 1;
    let width = span.div_ceil(MAX_TIMELINE_POINTS).max(1);
    let n = span.div_ceil(width);
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            t: (i * width) as f64,
            width: width as f64,
            ..Bucket::default()
        })
        .collect();
    let mut hists: Vec<Option<Histogram<u64>>> = vec![None; n];
    let mut fallback: Vec<(u64, u64)> = vec![(0, 0); n];
    let mut sends = vec![0u64; n];
    let mut deliveries = vec![0u64; n];
    for s in timeline {
        let i = s.t as usize / width;
        let b = &mut out[i];
        b.members = b.members.max(s.members);
        sends[i] += s.sends;
        deliveries[i] += s.deliveries;
        for (kind, count) in &s.errors {
            *b.errors.entry(kind.clone()).or_default() += count;
        }
        for (kind, n) in lost_kinds(s) {
            *b.errors.entry(kind.to_owned()).or_default() += n;
        }
        if s.deliveries == 0 && s.fanout_hist.is_empty() && s.fanout_p99_us == 0 {
            continue;
        }
        let fb = &mut fallback[i];
        *fb = (fb.0.max(s.fanout_p50_us), fb.1.max(s.fanout_p99_us));
        if width == 1 {
            continue;
        }
        if let Ok(h) = decode_histogram(&s.fanout_hist, TIMELINE_SIGFIG)
            && !h.is_empty()
        {
            match &mut hists[i] {
                Some(sum) => roomstorm_results::histograms::add_histogram(sum, &h),
                slot => *slot = Some(h),
            }
        }
    }
    for (i, b) in out.iter_mut().enumerate() {
        b.sends_per_s = sends[i] as f64 / width as f64;
        b.deliveries_per_s = deliveries[i] as f64 / width as f64;
        let (p50, p99) = fallback[i];
        let has = p50 > 0 || p99 > 0 || deliveries[i] > 0;
        match &hists[i] {
            Some(h) => {
                b.fanout_p50_us = Some(h.value_at_quantile(0.5));
                b.fanout_p99_us = Some(h.value_at_quantile(0.99));
            }
            None if has => {
                b.fanout_p50_us = Some(p50);
                b.fanout_p99_us = Some(p99);
            }
            None => {}
        }
    }
    out
}

/// The errors chart's kinds for owed deliveries lost, counted in the second their message was
/// meant to be sent (when a worker dies, this is what its members missed, and when): those
/// that arrived after the deadline, and those that never arrived.
pub const LATE_KIND: &str = "late delivery";
pub const NEVER_KIND: &str = "never delivered";

/// A second's lost deliveries as error kinds with their counts (only those that happened).
fn lost_kinds(s: &SecondStats) -> impl Iterator<Item = (&'static str, u64)> {
    let never = s.lost.saturating_sub(s.late);
    [(LATE_KIND, s.late), (NEVER_KIND, never)]
        .into_iter()
        .filter(|&(_, n)| n > 0)
}

/// Error kinds that occur anywhere in the timeline (lost deliveries included), most frequent
/// first.
pub fn error_kinds(timeline: &[SecondStats]) -> Vec<(String, u64)> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for s in timeline {
        for (kind, n) in &s.errors {
            *totals.entry(kind).or_default() += n;
        }
        for (kind, n) in lost_kinds(s) {
            *totals.entry(kind).or_default() += n;
        }
    }
    let mut kinds: Vec<(String, u64)> =
        totals.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kinds
}

/// Tick values (µs) for a logarithmic latency axis over `lo..=hi` µs: 1-2-5 steps up to
/// 20 s, then whole minutes and hours (30 s, 1 min, 2 min, 5 min, 10 min, 30 min, 1 h, ...),
/// so that labels read `10 ms`, `1 min`, `1 h` rather than `1.67 min`. With more than `max`
/// ticks in range: only the decades (1 ms, 10 ms, ..., 10 s, 1 min, 10 min, 1 h), then every
/// other one counting down from the top. Fewer than two nice values in range: its ends.
pub fn latency_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    const S: f64 = 1e6;
    const MIN: f64 = 60.0 * S;
    const H: f64 = 3_600.0 * S;
    let (lo, hi) = (lo.max(1e-3), hi.max(lo.max(1e-3)));
    let within = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let mut fine = Vec::new();
    let mut major = Vec::new();
    for e in -3..=7 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if v <= 20.0 * S {
                fine.push(v);
                if m == 1.0 {
                    major.push(v);
                }
            }
        }
    }
    fine.extend([
        30.0 * S,
        MIN,
        2.0 * MIN,
        5.0 * MIN,
        10.0 * MIN,
        20.0 * MIN,
        30.0 * MIN,
    ]);
    major.extend([MIN, 10.0 * MIN]);
    for h in [1.0, 2.0, 5.0, 10.0, 24.0, 100.0] {
        fine.push(h * H);
        if h == 1.0 || h == 10.0 || h == 100.0 {
            major.push(h * H);
        }
    }
    let fine: Vec<f64> = fine.into_iter().filter(within).collect();
    if fine.len() <= max {
        return if fine.len() >= 2 { fine } else { vec![lo, hi] };
    }
    let major: Vec<f64> = major.into_iter().filter(within).collect();
    let mut every = 1;
    loop {
        // Counted from the top, so that the largest value keeps its label.
        let mut thinned: Vec<f64> = major.iter().rev().copied().step_by(every).collect();
        thinned.reverse();
        if thinned.len() <= max {
            return thinned;
        }
        every += 1;
    }
}

/// Nice tick values for a linear axis over `0..=hi`: steps of 1, 2 or 5 × 10^k.
pub fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / max.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= max as f64)
        .unwrap_or(10.0 * mag);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

/// Tick values for a time axis of `span` seconds: whole seconds, minutes or hours.
pub fn time_ticks(span: f64, max: usize) -> Vec<f64> {
    let steps = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 21600.0, 43200.0, 86400.0,
    ];
    let step = steps
        .into_iter()
        .find(|s| span / s <= max as f64)
        .unwrap_or(86400.0);
    let mut out = Vec::new();
    let mut v = 0.0;
    while v <= span + 1e-9 {
        out.push(v);
        v += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use roomstorm_results::histograms::{encode_histogram, new_histogram};

    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram(3);
        for &v in values {
            h.saturating_record(v);
        }
        h
    }

    #[test]
    fn log_bins_cover_every_value_once() {
        let h = hist(&[0, 1, 9, 10, 11, 999, 1_000, 3_600_000_000]);
        let bins = log_bins(&h);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 8);
        assert!((bins.iter().map(|b| b.share).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(bins.windows(2).all(|w| (w[0].hi - w[1].lo).abs() < 1e-6));
        assert!(bins[0].lo <= 1.0 && bins.last().unwrap().hi >= 3.6e9);
        assert!(log_bins(&hist(&[])).is_empty());
        assert_eq!(log_bins(&hist(&[42])).len(), 1);
    }

    #[test]
    fn linear_bins_are_one_per_value_when_few() {
        let bins = linear_bins(&hist(&[10, 10, 12]), 60);
        assert_eq!(
            bins.iter().map(|b| (b.lo, b.count)).collect::<Vec<_>>(),
            [(10.0, 2), (11.0, 0), (12.0, 1)]
        );
        let wide = linear_bins(&hist(&[1, 5_000]), 50);
        assert!(wide.len() <= 51);
        assert_eq!(wide.iter().map(|b| b.count).sum::<u64>(), 2);
    }

    #[test]
    fn percentile_curves_reach_the_supported_nines() {
        let values: Vec<u64> = (1..=10_000).collect();
        let curve = percentile_curve(&hist(&values));
        let (x, y) = *curve.last().unwrap();
        assert!((x - 4.0).abs() < 1e-9);
        assert!(y >= 9_990.0);
        assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1));
        let single = percentile_curve(&hist(&[7]));
        assert!(single.iter().all(|&(_, v)| v == 7.0));
        assert!((single.last().unwrap().0 - 1.0).abs() < 1e-9);
    }

    fn second(t: u32, deliveries: u64, latency: u64) -> SecondStats {
        let mut s = SecondStats {
            t,
            members: 10,
            sends: 1,
            deliveries,
            ..SecondStats::default()
        };
        if deliveries > 0 {
            let mut h = new_histogram(TIMELINE_SIGFIG);
            h.saturating_record_n(latency, deliveries);
            s.fanout_p50_us = h.value_at_quantile(0.5);
            s.fanout_p99_us = h.value_at_quantile(0.99);
            s.fanout_hist = encode_histogram(&h).unwrap();
        }
        s
    }

    #[test]
    fn an_hour_is_bucketed_and_percentiles_merged() {
        let timeline: Vec<SecondStats> = (0..3_600)
            .map(|t| second(t, 10, if t == 100 { 5_000_000 } else { 1_000 }))
            .collect();
        let b = buckets(&timeline);
        assert!(b.len() <= MAX_TIMELINE_POINTS);
        assert_eq!(b[0].width, 6.0);
        assert!((b[0].deliveries_per_s - 10.0).abs() < 1e-9);
        // The stall's second dominates its bucket's p99 but not its p50.
        let stall = &b[100 / 6];
        assert!(stall.fanout_p99_us.unwrap() >= 4_900_000);
        assert!(stall.fanout_p50_us.unwrap() < 2_000);
    }

    #[test]
    fn lost_deliveries_are_error_kinds_in_their_send_second() {
        let mut lossy = second(1, 5, 2_000);
        (lossy.lost, lossy.late) = (7, 2);
        let timeline = vec![second(0, 5, 2_000), lossy];
        let b = buckets(&timeline);
        assert_eq!(b[0].errors.get(NEVER_KIND), None);
        assert_eq!(b[1].errors.get(NEVER_KIND), Some(&5));
        assert_eq!(b[1].errors.get(LATE_KIND), Some(&2));
        assert_eq!(
            error_kinds(&timeline),
            [(NEVER_KIND.to_owned(), 5), (LATE_KIND.to_owned(), 2)]
        );
    }

    #[test]
    fn short_timelines_keep_their_seconds() {
        let timeline = vec![second(0, 0, 0), second(1, 5, 2_000)];
        let b = buckets(&timeline);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].fanout_p99_us, None);
        assert!(b[1].fanout_p99_us.is_some());
        assert!(buckets(&[]).is_empty());
    }

    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            latency_ticks(1_000.0, 100_000.0, 8),
            [1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5]
        );
        assert_eq!(latency_ticks(3_000.0, 4_000.0, 8), [3_000.0, 4_000.0]);
        // Up to an hour: decades, then minutes and the hour, never 1.67 min.
        let hour = latency_ticks(1_000.0, 3.6e9, 7);
        assert!(hour.len() <= 7, "{hour:?}");
        assert!(hour.contains(&3.6e9), "{hour:?}");
        let labels: Vec<String> = hour.iter().map(|&t| crate::format::us_tick(t)).collect();
        assert!(labels.iter().all(|l| !l.contains('.')), "{labels:?}");
        assert_eq!(
            latency_ticks(20e6, 20.0 * 60e6, 7),
            [20e6, 30e6, 60e6, 120e6, 300e6, 600e6, 1200e6]
        );
        assert_eq!(linear_ticks(0.0, 10.0, 6), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            time_ticks(3_600.0, 8),
            [0.0, 600.0, 1200.0, 1800.0, 2400.0, 3000.0, 3600.0]
        );
    }
}
