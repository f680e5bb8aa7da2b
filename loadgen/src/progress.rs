//! Live progress, once a second: elapsed/total, members connected/target, sends/s,
//! deliveries/s, the fan-out p99 of the receipts of the last complete second, errors.
//!
//! Reads only counters and the timeline; on a terminal the line is redrawn in place, in a log
//! it is printed every few seconds.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::clock::now_us;
use crate::context::RunContext;

/// Samples the members gauge into the timeline every second, and prints the progress line
/// when `print` is set.
pub async fn show(ctx: Arc<RunContext>, total: Duration, target_members: usize, print: bool) {
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = Snapshot::take(&ctx);
    let mut seconds = 0u64;
    loop {
        tick.tick().await;
        let now = Snapshot::take(&ctx);
        ctx.timeline.set_members(now_us(), now.members);
        let p99 = last_second_p99(&ctx);
        let line = format!(
            "[{:>4}s/{:>4}s] members {}/{}  sends/s {}  deliveries/s {}  fan-out p99 {}  errors {}",
            seconds,
            total.as_secs(),
            now.members,
            target_members,
            now.sends - last.sends,
            now.received - last.received,
            p99.map_or("-".to_string(), roomstorm_reports::format::us),
            now.errors,
        );
        if !print {
        } else if tty {
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
        } else if seconds.is_multiple_of(5) {
            eprintln!("{line}");
        }
        last = now;
        seconds += 1;
    }
}

/// Ends the redrawn line so later output starts on a fresh one.
pub fn finish() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

struct Snapshot {
    members: u64,
    sends: u64,
    received: u64,
    errors: u64,
}

impl Snapshot {
    fn take(ctx: &RunContext) -> Self {
        let c = &ctx.counters;
        Snapshot {
            members: c.members.load(Relaxed),
            sends: c.sends.load(Relaxed),
            received: c.received_messages.load(Relaxed),
            errors: c.connect_errors.load(Relaxed)
                + c.join_timeouts.load(Relaxed)
                + c.send_failures.load(Relaxed)
                + c.disconnects.load(Relaxed)
                + c.server_errors.load(Relaxed)
                + c.sends_refused.load(Relaxed)
                + c.outcome_unknown.load(Relaxed),
        }
    }
}

/// Fan-out p99 of the receipts that arrived in the last complete second, from the timeline.
fn last_second_p99(ctx: &RunContext) -> Option<u64> {
    let t = now_us().checked_sub(ctx.start_us)? / 1_000_000;
    ctx.timeline
        .live_p99(usize::try_from(t.checked_sub(1)?).ok()?)
}
