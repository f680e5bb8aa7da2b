//! A goose user that drives several members (`population.members_per_user`): one tokio task
//! per member, and a channel of what they did for the user to record.
//!
//! goose costs about 9 KiB per user (its user task, its weighted users, its metrics), more
//! than a member itself, so large runs share a user among several members. Each member still
//! runs on its own, so none waits for another: a member's sends are on time however busy the
//! others are (fan-out latency counts from the intended send time, so a send held back by a
//! neighbour would read as latency). Every member's connect and join times go into the
//! histograms as they happen (`member::open_session`); the user records the outcomes in goose's
//! request metrics too, as a user of one member does.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::turn::{MAX_SLEEP, MemberState, Nap, StepOutcome, connect, step};
use crate::context::RunContext;

/// The members goose user `user` drives: `per_user` consecutive members of this process's
/// `members`, the last user fewer, users past the last member none.
pub(super) fn members_of_user(user: usize, per_user: usize, members: usize) -> Range<usize> {
    let first = user.saturating_mul(per_user).min(members);
    first..first.saturating_add(per_user).min(members)
}

/// The running members of one goose user.
pub(super) struct Batch {
    /// Set to tell every member to leave; dropping it tells them too.
    stop: watch::Sender<bool>,
    members: Vec<JoinHandle<()>>,
    outcomes: mpsc::UnboundedReceiver<StepOutcome>,
}

impl Batch {
    /// Starts `members` (indices into `ctx.plan.members`), the i-th of them `spacing × i` from
    /// now: they arrive at the scenario's rate, as if goose had started each as a user.
    pub(super) fn start(ctx: &Arc<RunContext>, members: Range<usize>, spacing: Duration) -> Batch {
        let (stop, stopped) = watch::channel(false);
        let (report, outcomes) = mpsc::unbounded_channel();
        let members = members
            .enumerate()
            .filter_map(|(order, index)| {
                let state = MemberState::new(ctx, index)?;
                let arrive_after = spacing.saturating_mul(u32::try_from(order).unwrap_or(u32::MAX));
                let member = run_member(
                    ctx.clone(),
                    state,
                    arrive_after,
                    stopped.clone(),
                    report.clone(),
                );
                Some(tokio::spawn(member))
            })
            .collect();
        Batch {
            stop,
            members,
            outcomes,
        }
    }

    /// What the members did since the last call: waits at most [`MAX_SLEEP`] for something
    /// (goose stops a user only between transactions), then takes whatever else is there.
    pub(super) async fn outcomes(&mut self) -> Vec<StepOutcome> {
        let first = match tokio::time::timeout(MAX_SLEEP, self.outcomes.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => {
                // Every member has ended: nothing will come; do not spin.
                tokio::time::sleep(MAX_SLEEP).await;
                return Vec::new();
            }
            Err(_) => return Vec::new(),
        };
        let mut all = vec![first];
        while let Ok(more) = self.outcomes.try_recv() {
            all.push(more);
        }
        all
    }

    /// Tells every member to leave and waits until each has closed its session (they leave
    /// side by side, within a turn: at most [`MAX_SLEEP`] plus a close). Returns what they did
    /// that was not taken yet.
    pub(super) async fn stop(&mut self) -> Vec<StepOutcome> {
        self.stop.send_replace(true);
        for member in self.members.drain(..) {
            // A member that panicked has nothing left to close.
            let _ = member.await;
        }
        let mut left = Vec::new();
        while let Ok(outcome) = self.outcomes.try_recv() {
            left.push(outcome);
        }
        left
    }
}

/// Whether the member's user has told it to leave (or is gone).
fn told_to_stop(stopped: &watch::Receiver<bool>) -> bool {
    stopped.has_changed().is_err() || *stopped.borrow()
}

/// One member of a batch: after `arrive_after` it connects, then takes turns until told to
/// stop, then leaves; it `report`s every outcome worth recording. Its future lives as long as
/// the member, so the large, rare parts (connecting, closing) are boxed, as in [`step`].
async fn run_member(
    ctx: Arc<RunContext>,
    mut state: MemberState,
    arrive_after: Duration,
    mut stopped: watch::Receiver<bool>,
    report: mpsc::UnboundedSender<StepOutcome>,
) {
    if !arrive_after.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(arrive_after) => {}
            // Stopped before it arrived: it never connects.
            _ = stopped.changed() => return,
        }
    }
    if told_to_stop(&stopped) {
        return;
    }
    let joined = Box::pin(connect(&ctx, &mut state)).await;
    // The user may be gone already (then nothing records it; it leaves below all the same).
    let _ = report.send(StepOutcome::Connected(joined));
    while !told_to_stop(&stopped) {
        match step(&ctx, &mut state, &mut Nap::UntilWoken(&mut stopped)).await {
            StepOutcome::Idle => {}
            outcome => {
                let _ = report.send(outcome);
            }
        }
    }
    Box::pin(state.leave(&ctx)).await;
}

#[cfg(test)]
mod tests {
    use super::members_of_user;

    #[test]
    fn users_drive_consecutive_members_the_last_one_fewer() {
        let ranges: Vec<_> = (0..9).map(|user| members_of_user(user, 4, 30)).collect();
        assert_eq!(
            ranges,
            vec![
                0..4,
                4..8,
                8..12,
                12..16,
                16..20,
                20..24,
                24..28,
                28..30,
                30..30
            ]
        );
        // Every member exactly once, in order.
        let all: Vec<usize> = ranges.into_iter().flatten().collect();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        // One member per user is today's: user i drives member i.
        assert_eq!(members_of_user(7, 1, 30), 7..8);
        assert_eq!(members_of_user(30, 1, 30), 30..30);
        assert_eq!(members_of_user(usize::MAX, 10, 30), 30..30);
    }
}
