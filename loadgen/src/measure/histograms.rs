//! Latency and fan-out-size histograms, recorded per thread and merged exactly at the end.
//!
//! Recording happens once per received message, so each thread writes into its own
//! histograms (see `per_thread`): no shared lock, no allocation (bounds are fixed, so a record
//! never resizes). The histograms themselves, their codec and summaries belong to the results
//! schema and live in `roomstorm_results::histograms`, re-exported here.

pub use roomstorm_results::histograms::{
    EncodedHistograms, HistogramKind, Histograms, MAX_VALUE, Percentiles, SIGFIG, add_histogram,
    decode_histogram, encode_histogram, new_histogram, percentiles, record_clamped,
};

use super::per_thread::PerThread;

/// Records into per-thread [`Histograms`] and merges them on demand.
///
/// A run owns one (in its `RunContext`) and hands it to whatever records: the rooms' ledgers,
/// the members' connect and join. Tests make their own, so they can run in parallel without
/// seeing each other's values.
pub struct Recorder {
    threads: PerThread<Histograms>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            threads: PerThread::new(Histograms::new),
        }
    }

    /// Records into the calling thread's histograms: no allocation after the thread's first
    /// record, no lock shared with other recording threads.
    pub fn record(&self, metric: HistogramKind, value: u64) {
        self.threads.with(|h| h.record(metric, value));
    }

    /// The sum of every thread's histograms so far (threads keep recording meanwhile).
    pub fn merged(&self) -> Histograms {
        let mut total = Histograms::new();
        self.threads.for_each(|h| total.add(h));
        total
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn records_per_thread_and_merges_exactly() {
        let recorder = Arc::new(Recorder::new());
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let recorder = Arc::clone(&recorder);
                std::thread::spawn(move || {
                    for v in 1..=1000 {
                        recorder.record(HistogramKind::Fanout, v * 1000 + t);
                    }
                    recorder.record(HistogramKind::FanoutSize, 10 + t);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let merged = recorder.merged();
        let fanout = merged.summary(HistogramKind::Fanout);
        assert_eq!(fanout.count, 4000);
        assert_eq!(fanout.min_us, 1000);
        assert!(
            merged
                .histogram(HistogramKind::Fanout)
                .equivalent(fanout.max_us, 1_000_003)
        );
        assert!(
            merged
                .histogram(HistogramKind::Fanout)
                .equivalent(fanout.p50_us, 500_000)
        );
        assert_eq!(merged.summary(HistogramKind::FanoutSize).count, 4);
        assert_eq!(
            merged.summary(HistogramKind::Connect),
            Percentiles::default()
        );
    }
}
