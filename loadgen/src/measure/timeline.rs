//! What happened in each second of the run: sends, deliveries, members, errors, fan-out latency.
//!
//! Run-wide percentiles hide a 5-second stall in a 10-minute run, and a fault test needs to see
//! when latency went up and when it came back. So every second has its own counters (atomics in
//! an array sized at creation: no lock, no allocation) and its own fan-out histogram.
//!
//! Per-second histograms are recorded per thread, like the run-wide ones: each thread fills a
//! histogram for the second it is in and folds it into that second's shared histogram when it
//! sees the second change (or at [`Timeline::flush`]), so the shared lock is taken about once
//! per thread per second, never per message. Two significant digits are plenty for a per-second
//! chart and keep each histogram at ~26 KB; seconds more than [`LIVE_SECONDS`] old are packed
//! into their serialized form when the runtime sets the member gauge, so a long run does not
//! hold an hour of open histograms.
//!
//! Seconds count from `start_us` (same clock as every other time of the process). The written
//! form of a second ([`SecondStats`]) and timeline merges belong to the results schema and live
//! in `roomstorm_results::timeline`, re-exported here.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hdrhistogram::Histogram;

pub use roomstorm_results::timeline::{SecondStats, TIMELINE_SIGFIG, merge_timelines};

use super::histograms::{
    add_histogram, decode_histogram, encode_histogram, new_histogram, record_clamped,
};
use super::ledger::ReceiptKind;
use super::per_thread::{PerThread, lock};

/// Seconds kept as open histograms behind the current one before being packed.
pub const LIVE_SECONDS: usize = 5;

/// What went wrong. To add a kind: a variant, its place in [`ErrorKind::ALL`], and a name;
/// the arrays and outputs follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    ConnectFailed,
    JoinTimeout,
    SendFailed,
    Disconnected,
    Reconnected,
    ServerError,
    ParseError,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::ConnectFailed,
        ErrorKind::JoinTimeout,
        ErrorKind::SendFailed,
        ErrorKind::Disconnected,
        ErrorKind::Reconnected,
        ErrorKind::ServerError,
        ErrorKind::ParseError,
    ];

    /// The name used in results.json (`errors` maps).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::JoinTimeout => "join_timeout",
            ErrorKind::SendFailed => "send_failed",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Reconnected => "reconnected",
            ErrorKind::ServerError => "server_error",
            ErrorKind::ParseError => "parse_error",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

const ERROR_KINDS: usize = ErrorKind::ALL.len();

/// A second's shared fan-out histogram in one of its lives.
enum SecondHist {
    Empty,
    Live(Box<Histogram<u64>>),
    /// Serialized (see [`SecondStats::fanout_hist`]) to free memory; reopened if a late fold
    /// arrives.
    Packed(String),
}

impl SecondHist {
    /// Adds a thread's histogram for this second.
    fn add(&mut self, local: &Histogram<u64>) {
        let mut hist = match std::mem::replace(self, SecondHist::Empty) {
            SecondHist::Empty => Box::new(new_histogram(TIMELINE_SIGFIG)),
            SecondHist::Live(hist) => hist,
            // Our own encoding: it decodes; should it not, the late fold still counts.
            SecondHist::Packed(text) => Box::new(
                decode_histogram(&text, TIMELINE_SIGFIG)
                    .unwrap_or_else(|_| new_histogram(TIMELINE_SIGFIG)),
            ),
        };
        add_histogram(&mut hist, local);
        *self = SecondHist::Live(hist);
    }

    /// Serializes a live histogram to free its memory.
    fn pack(&mut self) {
        if let SecondHist::Live(hist) = self
            && let Ok(text) = encode_histogram(hist)
        {
            *self = SecondHist::Packed(text);
        }
    }

    fn histogram(&self) -> anyhow::Result<Histogram<u64>> {
        match self {
            SecondHist::Empty => Ok(new_histogram(TIMELINE_SIGFIG)),
            SecondHist::Live(hist) => Ok((**hist).clone()),
            SecondHist::Packed(text) => decode_histogram(text, TIMELINE_SIGFIG),
        }
    }
}

/// One second's shared counters.
struct Second {
    members: AtomicU64,
    sends: AtomicU64,
    deliveries: AtomicU64,
    duplicates: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS],
    fanout: Mutex<SecondHist>,
}

impl Second {
    fn new() -> Self {
        Second {
            members: AtomicU64::new(0),
            sends: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            fanout: Mutex::new(SecondHist::Empty),
        }
    }

    fn stats(&self, t: usize) -> anyhow::Result<SecondStats> {
        let errors = ErrorKind::ALL
            .into_iter()
            .map(|k| {
                (
                    k.name().to_owned(),
                    self.errors[k.index()].load(Ordering::Relaxed),
                )
            })
            .filter(|&(_, n)| n > 0)
            .collect();
        let mut stats = SecondStats {
            t: u32::try_from(t).unwrap_or(u32::MAX),
            members: self.members.load(Ordering::Relaxed),
            sends: self.sends.load(Ordering::Relaxed),
            deliveries: self.deliveries.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            errors,
            ..SecondStats::default()
        };
        let hist = lock(&self.fanout).histogram()?;
        stats.set_fanout(&hist)?;
        Ok(stats)
    }

    fn is_quiet(stats: &SecondStats) -> bool {
        stats.members == 0
            && stats.sends == 0
            && stats.deliveries == 0
            && stats.duplicates == 0
            && stats.errors.is_empty()
            && stats.fanout_hist.is_empty()
    }
}

/// A thread's fan-out histogram for the second it is currently in.
struct LocalSecond {
    t: Option<usize>,
    hist: Histogram<u64>,
}

impl LocalSecond {
    fn new() -> Self {
        LocalSecond {
            t: None,
            hist: new_histogram(TIMELINE_SIGFIG),
        }
    }

    /// Moves what this thread recorded into its second's shared histogram.
    fn fold_into(&mut self, seconds: &[Second]) {
        if let Some(t) = self.t.take()
            && !self.hist.is_empty()
        {
            lock(&seconds[t].fanout).add(&self.hist);
            self.hist.reset();
        }
    }
}

/// The per-second record of one process.
pub struct Timeline {
    start_us: u64,
    seconds: Box<[Second]>,
    /// Events at times outside `start_us .. start_us + seconds`.
    outside: AtomicU64,
    /// Seconds below this index are packed (or were, before a late fold).
    packed_below: AtomicUsize,
    local: PerThread<LocalSecond>,
}

impl Timeline {
    /// A timeline of `seconds` seconds (the run's length plus a margin) from `start_us`.
    pub fn new(start_us: u64, seconds: usize) -> Self {
        Timeline {
            start_us,
            seconds: (0..seconds.max(1)).map(|_| Second::new()).collect(),
            outside: AtomicU64::new(0),
            packed_below: AtomicUsize::new(0),
            local: PerThread::new(LocalSecond::new),
        }
    }

    /// The second `at_us` falls in, or `None` (counted) outside the timeline.
    fn second(&self, at_us: u64) -> Option<(usize, &Second)> {
        let t = at_us.checked_sub(self.start_us).map(|d| d / 1_000_000);
        let found = t
            .and_then(|t| usize::try_from(t).ok())
            .and_then(|t| Some((t, self.seconds.get(t)?)));
        if found.is_none() {
            self.outside.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Events that fell outside the timeline's seconds (should stay 0: widen the margin).
    pub fn outside(&self) -> u64 {
        self.outside.load(Ordering::Relaxed)
    }

    /// A message was sent (or was due, in the open model) at `at_us`.
    pub fn send(&self, at_us: u64) {
        if let Some((_, s)) = self.second(at_us) {
            s.sends.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A probe meant to be sent at `intended_us` was received at `at_us`, as `kind` (what the
    /// session's ledger said). First receipts count as deliveries with their fan-out latency.
    pub fn receipt(&self, at_us: u64, intended_us: u64, kind: ReceiptKind) {
        let Some((t, s)) = self.second(at_us) else {
            return;
        };
        match kind {
            ReceiptKind::First | ReceiptKind::Reordered => {
                s.deliveries.fetch_add(1, Ordering::Relaxed);
                self.record_fanout(t, at_us.saturating_sub(intended_us));
            }
            ReceiptKind::Duplicate => {
                s.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            ReceiptKind::Invalid => {}
        }
    }

    /// Into this thread's histogram of second `t`, folding the previous second's first.
    fn record_fanout(&self, t: usize, latency_us: u64) {
        self.local.with(|local| {
            if local.t != Some(t) {
                local.fold_into(&self.seconds);
                local.t = Some(t);
            }
            record_clamped(&mut local.hist, latency_us);
        });
    }

    pub fn error(&self, at_us: u64, kind: ErrorKind) {
        if let Some((_, s)) = self.second(at_us) {
            s.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the connected-members gauge of the second of `at_us` (the runtime calls this once a
    /// second); also packs the histograms of seconds that are [`LIVE_SECONDS`] behind.
    pub fn set_members(&self, at_us: u64, members: u64) {
        if let Some((t, s)) = self.second(at_us) {
            s.members.store(members, Ordering::Relaxed);
            self.pack_before(t.saturating_sub(LIVE_SECONDS));
        }
    }

    fn pack_before(&self, t: usize) {
        let from = self.packed_below.fetch_max(t, Ordering::Relaxed);
        for second in self.seconds.get(from..t).unwrap_or_default() {
            lock(&second.fanout).pack();
        }
    }

    /// Folds every thread's pending second into the shared histograms.
    pub fn flush(&self) {
        self.local.for_each(|local| local.fold_into(&self.seconds));
    }

    /// Every second from 0 to the last one with anything in it.
    pub fn stats(&self) -> anyhow::Result<Vec<SecondStats>> {
        self.flush();
        let mut out = self
            .seconds
            .iter()
            .enumerate()
            .map(|(t, s)| s.stats(t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let used = out
            .iter()
            .rposition(|s| !Second::is_quiet(s))
            .map_or(0, |i| i + 1);
        out.truncate(used);
        Ok(out)
    }

    /// Deliveries and fan-out p99 of second `t` as far as threads have folded it (for live
    /// progress: cheap, no serialization; exact totals come from [`Timeline::stats`]).
    pub fn peek(&self, t: usize) -> Option<(u64, u64)> {
        let second = self.seconds.get(t)?;
        let deliveries = second.deliveries.load(Ordering::Relaxed);
        let p99 = match &*lock(&second.fanout) {
            SecondHist::Live(hist) => hist.value_at_quantile(0.99),
            _ => 0,
        };
        Some((deliveries, p99))
    }

    /// Errors of the whole run by kind name (only kinds that happened).
    pub fn error_totals(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for kind in ErrorKind::ALL {
            let n: u64 = self
                .seconds
                .iter()
                .map(|s| s.errors[kind.index()].load(Ordering::Relaxed))
                .sum();
            if n > 0 {
                totals.insert(kind.name().to_owned(), n);
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const S: u64 = 1_000_000;
    const START: u64 = 7 * S + 123;

    #[test]
    fn counts_land_in_their_second() {
        let tl = Timeline::new(START, 10);
        tl.send(START);
        tl.send(START + S - 1);
        tl.send(START + 2 * S);
        tl.receipt(
            START + 2 * S + 5,
            START + 2 * S + 5 - 300,
            ReceiptKind::First,
        );
        tl.receipt(
            START + 2 * S + 6,
            START + 2 * S + 6 - 500,
            ReceiptKind::Reordered,
        );
        tl.receipt(START + 2 * S + 7, 0, ReceiptKind::Duplicate);
        tl.error(START + S, ErrorKind::SendFailed);
        tl.error(START + S, ErrorKind::SendFailed);
        tl.error(START + 3 * S, ErrorKind::Disconnected);
        tl.set_members(START + 3 * S, 42);
        let stats = tl.stats().expect("stats");
        assert_eq!(stats.len(), 4, "trailing quiet seconds are cut");
        assert_eq!(
            stats.iter().map(|s| s.sends).collect::<Vec<_>>(),
            [2, 0, 1, 0]
        );
        assert_eq!(stats[1].errors, BTreeMap::from([("send_failed".into(), 2)]));
        assert_eq!((stats[2].deliveries, stats[2].duplicates), (2, 1));
        assert_eq!(stats[2].fanout_p50_us, hist_max(300));
        assert_eq!(stats[2].fanout_max_us, hist_max(500));
        assert!(!stats[2].fanout_hist.is_empty());
        assert!(stats[0].fanout_hist.is_empty());
        assert_eq!(stats[3].members, 42);
        assert_eq!(
            tl.error_totals(),
            BTreeMap::from([("disconnected".into(), 1), ("send_failed".into(), 2)])
        );
    }

    #[test]
    fn events_outside_the_timeline_are_counted_not_lost_silently() {
        let tl = Timeline::new(START, 2);
        tl.send(START - 1);
        tl.send(START + 2 * S);
        tl.receipt(u64::MAX, 0, ReceiptKind::First);
        assert_eq!(tl.outside(), 3);
        assert!(tl.stats().expect("stats").is_empty());
    }

    #[test]
    fn threads_fold_their_seconds_and_packing_keeps_them() {
        let tl = Arc::new(Timeline::new(START, 30));
        let handles: Vec<_> = (0..3u64)
            .map(|th| {
                let tl = Arc::clone(&tl);
                std::thread::spawn(move || {
                    for t in 0..20u64 {
                        for i in 0..100 {
                            let at = START + t * S + i;
                            tl.receipt(at, at - 1000 * (th + 1), ReceiptKind::First);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        tl.set_members(START + 19 * S, 3); // packs seconds 0..14
        // A late fold into a packed second.
        tl.receipt(START + 2 * S, START + 2 * S - 50_000, ReceiptKind::First);
        let stats = tl.stats().expect("stats");
        assert_eq!(stats.len(), 20);
        for s in &stats {
            let extra = u64::from(s.t == 2);
            assert_eq!(s.deliveries, 300 + extra, "second {}", s.t);
            let hist = decode_histogram(&s.fanout_hist, TIMELINE_SIGFIG).expect("decodes");
            assert_eq!(hist.len(), 300 + extra);
            assert_eq!(s.fanout_p50_us, hist.highest_equivalent(2000));
        }
        assert!(stats[2].fanout_max_us >= 50_000);
        assert_eq!(stats[3].fanout_max_us, hist_max(3000));
    }

    fn hist_max(v: u64) -> u64 {
        let mut h = new_histogram(TIMELINE_SIGFIG);
        h.saturating_record(v);
        h.max()
    }

    #[test]
    fn merged_timelines_equal_one_timeline_of_everything() {
        let whole = Timeline::new(0, 10);
        let a = Timeline::new(0, 10);
        let b = Timeline::new(0, 10);
        for i in 0..1000u64 {
            let at = (i % 7) * S + i;
            let part = if i % 3 == 0 { &a } else { &b };
            for tl in [&whole, part] {
                tl.send(at);
                tl.receipt(at, at.saturating_sub(i * 37), ReceiptKind::First);
                if i % 11 == 0 {
                    tl.error(at, ErrorKind::ServerError);
                }
            }
        }
        a.set_members(0, 5);
        b.set_members(0, 6);
        whole.set_members(0, 11);
        let (sa, sb) = (a.stats().expect("a"), b.stats().expect("b"));
        let merged = merge_timelines([sa.as_slice(), sb.as_slice()]).expect("merges");
        assert_eq!(merged, whole.stats().expect("whole"));
    }
}
