//! One clock for a whole run: microseconds on the Unix epoch, read from a monotonic source.
//!
//! Intended send times travel inside messages and are compared with receive times in the same
//! process, so they must never jump (NTP steps would fake latency); anchoring a monotonic
//! `Instant` to the wall clock once keeps them comparable with other processes' timelines.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Anchor {
    instant: Instant,
    unix_us: u64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| Anchor {
        instant: Instant::now(),
        unix_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default(),
    })
}

/// Now, in microseconds since the Unix epoch (monotonic within this process).
pub fn now_us() -> u64 {
    let a = anchor();
    a.unix_us + a.instant.elapsed().as_micros() as u64
}

/// The `Instant` at which the run clock reads `unix_us` (for sleeping until a send time).
pub fn instant_at(unix_us: u64) -> Instant {
    let a = anchor();
    let offset = std::time::Duration::from_micros(unix_us.saturating_sub(a.unix_us));
    a.instant + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_convertible() {
        let a = now_us();
        let b = now_us();
        assert!(b >= a);
        let at = instant_at(b + 1_000_000);
        assert!(at > Instant::now());
    }
}
