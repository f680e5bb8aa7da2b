//! A part's clock against the coordinator's: several `TIME` round trips, the one with the
//! smallest round trip kept (the least time for the answer to wait in queues, so the best
//! estimate), offset = local − (Redis time + RTT/2), known to within RTT/2.
//!
//! The run clock (`crate::clock`) is the local side: the common start, published as Redis time,
//! becomes local time by adding the offset. Latencies never cross hosts (a room's members are
//! all in one part), so the offset only places each part's start.

use super::{Coordinator, failed};
use crate::clock::now_us;

/// Round trips measured; the best is kept.
const SAMPLES: usize = 9;

/// A part's clock against the coordinator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockOffset {
    /// Local clock minus the coordinator's, µs.
    pub offset_us: i64,
    /// The round trip the offset came from, µs.
    pub rtt_us: u64,
}

impl ClockOffset {
    /// The local run-clock time at which the coordinator's clock reads `coordinator_us`.
    pub fn to_local(&self, coordinator_us: u64) -> u64 {
        coordinator_us.saturating_add_signed(self.offset_us)
    }

    /// The coordinator's time when the local clock reads `local_us`.
    pub fn to_coordinator(&self, local_us: u64) -> u64 {
        local_us.saturating_add_signed(-self.offset_us)
    }
}

/// One round trip: local times before sending and after the answer, and Redis's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    sent_us: u64,
    received_us: u64,
    redis_us: u64,
}

/// The offset from the sample with the smallest round trip; `None` without samples.
fn best(samples: &[Sample]) -> Option<ClockOffset> {
    let s = samples
        .iter()
        .min_by_key(|s| s.received_us.saturating_sub(s.sent_us))?;
    let rtt_us = s.received_us.saturating_sub(s.sent_us);
    let redis_at_receipt = (s.redis_us + rtt_us / 2) as i128;
    let offset = s.received_us as i128 - redis_at_receipt;
    Some(ClockOffset {
        offset_us: i64::try_from(offset).unwrap_or(i64::MAX),
        rtt_us,
    })
}

impl Coordinator {
    /// Measures this host's clock against the coordinator's.
    pub async fn measure_clock(&self) -> anyhow::Result<ClockOffset> {
        let mut con = self.con();
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let sent_us = now_us();
            let (seconds, micros): (u64, u64) = redis::cmd("TIME")
                .query_async(&mut con)
                .await
                .map_err(|e| failed("TIME", &self.url, e))?;
            let received_us = now_us();
            samples.push(Sample {
                sent_us,
                received_us,
                redis_us: seconds * 1_000_000 + micros,
            });
        }
        best(&samples).ok_or_else(|| anyhow::anyhow!("no clock sample"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_round_trip_gives_the_offset() {
        // Local clock 500 µs ahead. A slow answer (RTT 900) whose Redis time was read late
        // would say 150 µs; the fast one (RTT 100) says 500 within 50.
        let samples = [
            Sample {
                sent_us: 10_000,
                received_us: 10_900,
                redis_us: 10_000 - 500 + 800,
            },
            Sample {
                sent_us: 20_000,
                received_us: 20_100,
                redis_us: 20_000 - 500 + 50,
            },
        ];
        let offset = best(&samples).expect("samples");
        assert_eq!(offset.rtt_us, 100);
        assert_eq!(offset.offset_us, 500);
        assert!(best(&[]).is_none());
    }

    #[test]
    fn offsets_convert_both_ways_and_may_be_negative() {
        let behind = ClockOffset {
            offset_us: -2_000_000,
            rtt_us: 10,
        };
        assert_eq!(behind.to_local(10_000_000), 8_000_000);
        assert_eq!(behind.to_coordinator(8_000_000), 10_000_000);
        let ahead = ClockOffset {
            offset_us: 3,
            rtt_us: 10,
        };
        assert_eq!(ahead.to_coordinator(ahead.to_local(77)), 77);
    }
}
