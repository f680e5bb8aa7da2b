//! Signals: the events a group's members send besides their messages (typing, presence), as
//! `[[population.groups]]` `signals` say.
//!
//! They exist to load the app the way real rooms do (most events in a busy room are not
//! messages) without touching what is measured: a signal carries no probe, is owed to nobody
//! and never enters the ledger; each one written is counted for its group (`signals`, and
//! `signal_failures` for failed writes). Like messages they follow an open schedule of their
//! own per member and signal, drawn from the member's seed, in the send window; what fell due
//! while the member had no connection is skipped, not sent in a burst.

use std::sync::atomic::Ordering::Relaxed;

use crate::context::RunContext;
use crate::member::{Session, vars};
use crate::pace::Pace;
use crate::scenario::MemberPlan;

/// Distinguishes a signal's schedule from the member's other draws (plus the signal's index).
const SIGNAL_STREAM: u64 = 0x5349_474e_414c_5300;

/// One member's signal schedules.
pub struct Signals {
    /// Its group's index.
    group: usize,
    /// `(index into the group's signals, its schedule)`.
    clocks: Vec<(usize, Pace)>,
}

impl Signals {
    /// `member`'s signals from `from_us` (the send window's start); `None` when its group sends
    /// none (or it has no group).
    pub fn for_member(ctx: &RunContext, member: &MemberPlan, from_us: u64) -> Option<Signals> {
        let group = member.group? as usize;
        let signals = &ctx.scenario.population.groups.get(group)?.signals;
        let clocks: Vec<(usize, Pace)> = signals
            .iter()
            .enumerate()
            .map(|(k, signal)| {
                let seed = member.seed ^ SIGNAL_STREAM.wrapping_add(k as u64);
                let interval_us = 1e6 / signal.rate;
                let jitter = ctx.scenario.traffic.jitter;
                (k, Pace::new(interval_us, jitter, None, seed, from_us))
            })
            .collect();
        (!clocks.is_empty()).then_some(Signals { group, clocks })
    }

    /// When the next signal is due.
    pub fn next_us(&self) -> Option<u64> {
        self.clocks.iter().map(|(_, pace)| pace.next_us()).min()
    }

    /// Skips the signals that fell due before `now_us` (the member has just joined again).
    pub fn skip_missed(&mut self, now_us: u64) {
        for (_, pace) in &mut self.clocks {
            while pace.next_us() < now_us {
                pace.advance();
            }
        }
    }

    /// Writes every signal due by `now_us` and before `until_us` (the send window's end) on
    /// `session`, counting each for the group.
    pub async fn send_due(
        &mut self,
        ctx: &RunContext,
        member: &MemberPlan,
        session: &Session,
        (now_us, until_us): (u64, u64),
    ) {
        let group = &ctx.scenario.population.groups[self.group];
        let Some(live) = ctx.groups.get(self.group) else {
            return;
        };
        for (k, pace) in &mut self.clocks {
            while pace.next_us() <= now_us && pace.next_us() < until_us {
                pace.advance();
                let signal = &group.signals[*k];
                let payload = signal
                    .payload
                    .as_ref()
                    .map(|p| p.render(&vars(ctx, member)))
                    .unwrap_or_default();
                match session.tx.emit_args(&signal.event, &payload).await {
                    Ok(()) => live.signals.fetch_add(1, Relaxed),
                    Err(_) => live.signal_failures.fetch_add(1, Relaxed),
                };
            }
        }
    }
}
