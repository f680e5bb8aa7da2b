//! What happened in each second of the run: sends, deliveries, members, errors, fan-out latency.
//!
//! Run-wide percentiles hide a 5-second stall in a 10-minute run, and a fault test needs to see
//! when latency went up and when it came back. So every second has its own counters (atomics in
//! an array sized at creation: no lock, no allocation) and its own fan-out histogram.
//!
//! A second's fan-out histogram holds the messages whose INTENDED send time falls in it,
//! wherever they arrived: a step or a fault window is judged on its own messages, and a stall
//! is charged to the messages it delayed, not to the second in which they finally came in. (The
//! `deliveries` and `duplicates` counters are by receive time: throughput as it happened.)
//!
//! Per-second histograms are recorded per thread, like the run-wide ones: each thread fills a
//! few histograms for the intended seconds it is receiving ([`LocalSecond`] slots) and folds one
//! into that second's shared histogram when it needs the slot for another second (or at
//! [`Timeline::flush`]), so the shared lock is taken a few times per thread per second, never
//! per message. Two significant digits are plenty for a per-second chart and keep each
//! histogram at ~26 KB; seconds more than [`LIVE_SECONDS`] old are packed into their serialized
//! form when the runtime sets the member gauge (and packed again after a late fold reopened
//! them), so a long run does not hold an hour of open histograms.
//!
//! Live progress wants the latency of what is arriving now, so each thread also keeps the
//! receipts of its current RECEIVE second ([`LiveSecond`]), folded into a small ring of recent
//! seconds; [`Timeline::live_p99`] reads the last complete one.
//!
//! Seconds count from `start_us` (same clock as every other time of the process). The written
//! form of a second ([`SecondStats`]) and timeline merges belong to the results schema and live
//! in `roomstorm_results::timeline`, re-exported here.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The server refused a `say` without sending it (`busy`, `unavailable`).
    SendRefused,
    /// The server handed a `say` to Redis without confirmation (`outcome_unknown`).
    OutcomeUnknown,
    /// A received event the protocol profile could not place (`protocol.unmatched`).
    Unmatched,
    /// A say's acknowledgement that never came while its session lasted.
    AckMissing,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::ConnectFailed,
        ErrorKind::JoinTimeout,
        ErrorKind::SendFailed,
        ErrorKind::Disconnected,
        ErrorKind::Reconnected,
        ErrorKind::ServerError,
        ErrorKind::ParseError,
        ErrorKind::SendRefused,
        ErrorKind::OutcomeUnknown,
        ErrorKind::Unmatched,
        ErrorKind::AckMissing,
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
            ErrorKind::SendRefused => "send_refused",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Unmatched => "unmatched",
            ErrorKind::AckMissing => "ack_missing",
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

/// A second whose members gauge was never sampled: the sampler is a task that a starved
/// process runs late, and its interval skips the ticks it missed.
const UNSAMPLED: u64 = u64::MAX;

/// One second's shared counters.
struct Second {
    /// The members gauge's last sample in this second, or [`UNSAMPLED`].
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
            members: AtomicU64::new(UNSAMPLED),
            sends: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            fanout: Mutex::new(SecondHist::Empty),
        }
    }

    /// This second's figures; `members_before` is the gauge as last sampled before it, the
    /// value of a second the sampler missed (a gauge holds its value until it changes: a
    /// missed sample is not 0 members).
    fn stats(&self, t: usize, members_before: u64) -> anyhow::Result<SecondStats> {
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
            members: match self.members.load(Ordering::Relaxed) {
                UNSAMPLED => members_before,
                sampled => sampled,
            },
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

/// How many intended seconds a thread keeps open histograms for: receipts of a second still
/// arrive while the next second's begin (and, under a stall, for much longer).
const LOCAL_SLOTS: usize = 4;

/// A thread's fan-out histograms for the intended seconds it is receiving, and for its current
/// receive second.
struct LocalSecond {
    slots: [Slot; LOCAL_SLOTS],
    live: LiveSecond,
}

/// One thread's histogram of one intended second.
struct Slot {
    t: Option<usize>,
    hist: Histogram<u64>,
}

impl LocalSecond {
    fn new() -> Self {
        LocalSecond {
            slots: std::array::from_fn(|_| Slot {
                t: None,
                hist: new_histogram(TIMELINE_SIGFIG),
            }),
            live: LiveSecond {
                t: None,
                hist: new_histogram(TIMELINE_SIGFIG),
            },
        }
    }

    /// This thread's histogram of intended second `t`: its slot, or a free one, or the one of
    /// the oldest second, folded into `seconds` first.
    fn slot_for(&mut self, t: usize, seconds: &[Second]) -> &mut Histogram<u64> {
        let i = match self.slots.iter().position(|s| s.t == Some(t)) {
            Some(i) => i,
            None => {
                let i = (0..LOCAL_SLOTS)
                    .min_by_key(|&i| self.slots[i].t.map_or((0, 0), |t| (1, t)))
                    .unwrap_or(0);
                self.slots[i].fold_into(seconds);
                self.slots[i].t = Some(t);
                i
            }
        };
        &mut self.slots[i].hist
    }

    /// Moves everything this thread recorded into the shared histograms.
    fn fold_into(&mut self, seconds: &[Second]) {
        for slot in &mut self.slots {
            slot.fold_into(seconds);
        }
    }
}

impl Slot {
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

/// One thread's receipts of one RECEIVE second, for live progress.
struct LiveSecond {
    t: Option<usize>,
    hist: Histogram<u64>,
}

impl LiveSecond {
    fn fold_into(&mut self, recent: &Mutex<Recent>) {
        if let Some(t) = self.t.take()
            && !self.hist.is_empty()
        {
            lock(recent).add(t, &self.hist);
            self.hist.reset();
        }
    }
}

/// Fan-out histograms of the last few receive seconds (a ring indexed by second).
struct Recent {
    seconds: [(Option<usize>, Histogram<u64>); RECENT_SECONDS],
}

const RECENT_SECONDS: usize = 4;

impl Recent {
    fn new() -> Self {
        Recent {
            seconds: std::array::from_fn(|_| (None, new_histogram(TIMELINE_SIGFIG))),
        }
    }

    fn add(&mut self, t: usize, hist: &Histogram<u64>) {
        let (slot_t, slot) = &mut self.seconds[t % RECENT_SECONDS];
        match *slot_t {
            Some(old) if old > t => return, // a fold older than the ring: too late to show
            Some(old) if old == t => {}
            _ => {
                slot.reset();
                *slot_t = Some(t);
            }
        }
        add_histogram(slot, hist);
    }

    fn get(&self, t: usize) -> Option<&Histogram<u64>> {
        let (slot_t, slot) = &self.seconds[t % RECENT_SECONDS];
        (*slot_t == Some(t)).then_some(slot)
    }
}

/// The per-second record of one process.
pub struct Timeline {
    start_us: u64,
    seconds: Box<[Second]>,
    /// Events at times outside `start_us .. start_us + seconds`.
    outside: AtomicU64,
    local: PerThread<LocalSecond>,
    recent: Mutex<Recent>,
}

impl Timeline {
    /// A timeline of `seconds` seconds (the run's length plus a margin) from `start_us`.
    pub fn new(start_us: u64, seconds: usize) -> Self {
        Timeline {
            start_us,
            seconds: (0..seconds.max(1)).map(|_| Second::new()).collect(),
            outside: AtomicU64::new(0),
            local: PerThread::new(LocalSecond::new),
            recent: Mutex::new(Recent::new()),
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
    /// Deliveries and duplicates count in the second of `at_us`; the fan-out latency goes into
    /// the histogram of the INTENDED second (and the live one of the receive second).
    pub fn receipt(&self, at_us: u64, intended_us: u64, kind: ReceiptKind) {
        let Some((received, s)) = self.second(at_us) else {
            return;
        };
        match kind {
            ReceiptKind::First | ReceiptKind::Reordered => {
                s.deliveries.fetch_add(1, Ordering::Relaxed);
                let intended = self.second(intended_us).map(|(t, _)| t);
                self.record_fanout(intended, received, at_us.saturating_sub(intended_us));
            }
            ReceiptKind::Duplicate => {
                s.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            ReceiptKind::Invalid => {}
        }
    }

    /// Into this thread's histograms of intended second `intended` (if on the timeline) and of
    /// receive second `received`.
    fn record_fanout(&self, intended: Option<usize>, received: usize, latency_us: u64) {
        self.local.with(|local| {
            if let Some(t) = intended {
                record_clamped(local.slot_for(t, &self.seconds), latency_us);
            }
            if local.live.t != Some(received) {
                local.live.fold_into(&self.recent);
                local.live.t = Some(received);
            }
            record_clamped(&mut local.live.hist, latency_us);
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

    /// Packs every open histogram of the seconds before `t` (one uncontended lock per second:
    /// a late fold may have reopened any of them).
    fn pack_before(&self, t: usize) {
        for second in self.seconds.get(..t).unwrap_or_default() {
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
        // Gaps in the members gauge are filled up to its last sample, not past it: after
        // the sampler stopped, nobody is left to count.
        let last_sample = self
            .seconds
            .iter()
            .rposition(|s| s.members.load(Ordering::Relaxed) != UNSAMPLED);
        let mut out: Vec<SecondStats> = Vec::with_capacity(self.seconds.len());
        for (t, second) in self.seconds.iter().enumerate() {
            let members_before = match out.last() {
                Some(previous) if last_sample.is_some_and(|last| t < last) => previous.members,
                _ => 0,
            };
            out.push(second.stats(t, members_before)?);
        }
        let used = out
            .iter()
            .rposition(|s| !Second::is_quiet(s))
            .map_or(0, |i| i + 1);
        out.truncate(used);
        Ok(out)
    }

    /// The fan-out p99 of the first receipts that ARRIVED in second `t` (for live progress),
    /// `None` if there were none or `t` is no longer among the last few seconds. Complete once
    /// `t` is over: every thread's receipts of `t` and before are folded here first.
    pub fn live_p99(&self, t: usize) -> Option<u64> {
        self.local.for_each(|local| {
            if local.live.t.is_some_and(|own| own <= t) {
                local.live.fold_into(&self.recent);
            }
        });
        let recent = lock(&self.recent);
        let hist = recent.get(t).filter(|h| !h.is_empty())?;
        Some(hist.value_at_quantile(0.99))
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
    fn a_second_the_members_sampler_missed_holds_the_last_sample_not_zero() {
        let tl = Timeline::new(START, 10);
        tl.set_members(START, 7);
        tl.set_members(START + S, 9);
        // Seconds 2 and 3 missed (a starved process), then 12, then nothing after second 4.
        tl.set_members(START + 4 * S, 12);
        tl.send(START + 6 * S);
        let members: Vec<u64> = tl
            .stats()
            .expect("stats")
            .iter()
            .map(|s| s.members)
            .collect();
        assert_eq!(members, [7, 9, 9, 9, 12, 0, 0]);
    }

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
        // Received in second 2, meant to be sent at the end of second 1: latency of second 1.
        assert_eq!(stats[1].fanout_p50_us, hist_max(300));
        assert_eq!(stats[1].fanout_max_us, hist_max(500));
        assert!(!stats[1].fanout_hist.is_empty());
        assert!(stats[2].fanout_hist.is_empty());
        assert!(stats[0].fanout_hist.is_empty());
        assert_eq!(stats[3].members, 42);
        assert_eq!(stats[2].members, 0, "before the first sample: nobody");
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
                            let at = START + t * S + 5_000 + i;
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
        // A late fold into a packed second: received in second 2, meant for second 1.
        tl.receipt(START + 2 * S, START + 2 * S - 50_000, ReceiptKind::First);
        let stats = tl.stats().expect("stats");
        assert_eq!(stats.len(), 20);
        for s in &stats {
            let received = u64::from(s.t == 2);
            assert_eq!(s.deliveries, 300 + received, "second {}", s.t);
            let hist = decode_histogram(&s.fanout_hist, TIMELINE_SIGFIG).expect("decodes");
            let intended = u64::from(s.t == 1);
            assert_eq!(hist.len(), 300 + intended);
            assert_eq!(s.fanout_p50_us, hist.highest_equivalent(2000));
        }
        assert!(stats[1].fanout_max_us >= 50_000);
        assert_eq!(stats[3].fanout_max_us, hist_max(3000));
    }

    /// A stall: messages meant for seconds 1 and 2 all arrive in second 6. Their latency belongs
    /// to seconds 1 and 2 (a step or fault window is judged on its own messages); second 6 only
    /// counts them as deliveries.
    #[test]
    fn latency_lands_in_the_second_the_message_was_meant_for() {
        let tl = Timeline::new(START, 10);
        for i in 0..50u64 {
            tl.receipt(
                START + S + 2_000 + i,
                START + S + 1_000 + i,
                ReceiptKind::First,
            );
        }
        for i in 0..100u64 {
            let intended = START + S + (i % 2) * S + 2_000 + i;
            tl.receipt(START + 6 * S + i, intended, ReceiptKind::First);
        }
        let stats = tl.stats().expect("stats");
        let hist = |t: usize| decode_histogram(&stats[t].fanout_hist, TIMELINE_SIGFIG).unwrap();
        assert_eq!((hist(1).len(), hist(2).len()), (100, 50));
        assert!(stats[6].fanout_hist.is_empty());
        assert_eq!((stats[1].deliveries, stats[6].deliveries), (50, 100));
        assert!(
            stats[1].fanout_p99_us >= 4 * S,
            "{}",
            stats[1].fanout_p99_us
        );
        assert!(stats[2].fanout_p50_us >= 3 * S);
    }

    /// Live progress reads the receipts that arrived in the last complete second, also those
    /// still held by threads that have not received anything since.
    #[test]
    fn live_p99_sees_every_threads_receipts_of_a_finished_second() {
        let tl = Arc::new(Timeline::new(START, 10));
        let handles: Vec<_> = (1..=3u64)
            .map(|th| {
                let tl = Arc::clone(&tl);
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let at = START + 3 * S + 5_000 + i;
                        tl.receipt(at, at - 1_000 * th, ReceiptKind::First);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(tl.live_p99(3), Some(hist_max(3_000)));
        assert_eq!(tl.live_p99(2), None, "nothing arrived in second 2");
        // The ring keeps a few seconds: second 3 is gone once second 7 arrives.
        tl.receipt(START + 7 * S, START + 7 * S - 10, ReceiptKind::First);
        assert_eq!(tl.live_p99(7), Some(hist_max(10)));
        assert_eq!(tl.live_p99(3), None);
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
