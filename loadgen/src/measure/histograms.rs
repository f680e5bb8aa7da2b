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

/// One fan-out histogram per member group (`[[population.groups]]`), recorded per thread like
/// [`Recorder`]: the first receipts of each group's members, so each group's latency is its
/// own members' view. Threads grow their list to the groups they see.
pub struct GroupRecorder {
    threads: PerThread<Vec<GroupHistogram>>,
}

/// One group's histogram in one thread, with the values it clamped.
struct GroupHistogram {
    hist: hdrhistogram::Histogram<u64>,
    clamped: u64,
}

impl Default for GroupRecorder {
    fn default() -> Self {
        GroupRecorder {
            threads: PerThread::new(Vec::new),
        }
    }
}

impl GroupRecorder {
    /// Records one receipt's fan-out latency (µs) for `group`.
    pub fn record(&self, group: usize, value: u64) {
        self.threads.with(|groups| {
            while groups.len() <= group {
                groups.push(GroupHistogram {
                    hist: new_histogram(SIGFIG),
                    clamped: 0,
                });
            }
            let mine = &mut groups[group];
            if record_clamped(&mut mine.hist, value) {
                mine.clamped += 1;
            }
        });
    }

    /// Each of `groups` groups' histogram summed over threads, with its clamped count.
    pub fn merged(&self, groups: usize) -> Vec<(hdrhistogram::Histogram<u64>, u64)> {
        let mut out: Vec<_> = (0..groups).map(|_| (new_histogram(SIGFIG), 0)).collect();
        self.threads.for_each(|mine| {
            for (total, part) in out.iter_mut().zip(mine.iter()) {
                add_histogram(&mut total.0, &part.hist);
                total.1 += part.clamped;
            }
        });
        out
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

    #[test]
    fn groups_record_apart_and_merge_over_threads() {
        let recorder = Arc::new(GroupRecorder::default());
        let handles: Vec<_> = (0..3u64)
            .map(|t| {
                let recorder = Arc::clone(&recorder);
                std::thread::spawn(move || {
                    recorder.record(1, 100 + t);
                    recorder.record(0, 10);
                    recorder.record(1, MAX_VALUE * 2);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let merged = recorder.merged(3);
        assert_eq!(merged.len(), 3);
        assert_eq!((merged[0].0.len(), merged[0].1), (3, 0));
        assert_eq!((merged[1].0.len(), merged[1].1), (6, 3));
        assert!(merged[2].0.is_empty(), "a group nobody in it received for");
    }
}
