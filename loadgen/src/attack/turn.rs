//! One simulated member's life, apart from goose: connecting and joining, and the turns that
//! notice a dropped connection, reconnect when due, churn and send when due.
//!
//! This exists so that the same member logic runs under either driver in `attack`: one goose
//! user per member (its `say` transaction takes the turns), or one tokio task per member of a
//! goose user that drives several (`batch`). How a turn sleeps is the driver's [`Nap`]: under
//! goose never longer than [`MAX_SLEEP`], so goose can stop the user between transactions; in
//! a batch until the member's next due time, woken early by a stop or a dropped connection
//! (a member sending once a minute would otherwise wake 60 times per message: at 100,000
//! members that is 100,000 wake-ups a second of the generator's CPU).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::clock::{instant_at, now_us};
use crate::context::RunContext;
use crate::member::{Schedule, Session, open_session};
use crate::scenario::Reconnect;
use crate::signals::Signals;

/// Longest a turn of a goose user's own member sleeps, so goose can stop users promptly; also
/// the longest a batch's user waits for its members' outcomes.
pub(super) const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How long a batch member sleeps when nothing is due: until stopped, its connection drops, or
/// this long (a bound for the clock arithmetic, not a wake-up anyone needs).
const IDLE_NAP: Duration = Duration::from_secs(3600);

/// How a member's turn sleeps until its next due time.
pub(super) enum Nap<'a> {
    /// At most [`MAX_SLEEP`]: goose stops a user only between transactions.
    Capped,
    /// Until the due time, or earlier when the batch's user says stop (or is gone) or the
    /// member's connection ends.
    UntilWoken(&'a mut tokio::sync::watch::Receiver<bool>),
}

/// How long after the send window's end a member may still send what was due in it: the send
/// phase's end. A member sleeping until a send due just before the window's end wakes a timer
/// tick or a busy scheduler's turn later; without this its on-time message would count unsent.
/// Short against any deadline, so a real backlog is still cut off.
const SEND_GRACE_US: u64 = 25_000;

/// One member's state between turns.
pub(super) struct MemberState {
    index: usize,
    session: Option<Session>,
    schedule: Option<Schedule>,
    /// Its group's signals (typing, presence), if it sends any.
    signals: Option<Signals>,
    /// Reconnect attempts since the last successful join.
    attempts: u32,
    retry_at: Option<Instant>,
    /// When this member next leaves and rejoins (churn), if the scenario churns.
    next_churn: Option<Instant>,
}

impl MemberState {
    /// Member `index` of `ctx.plan.members`, not yet connected; `None` past the last member.
    pub(super) fn new(ctx: &RunContext, index: usize) -> Option<MemberState> {
        let member = ctx.plan.members.get(index)?;
        Some(MemberState {
            index,
            session: None,
            schedule: Schedule::new(member, &ctx.scenario.traffic, ctx.send_from_us),
            signals: Signals::for_member(ctx, member, ctx.send_from_us),
            attempts: 0,
            retry_at: None,
            next_churn: next_churn(ctx.scenario.traffic.churn_per_min),
        })
    }

    /// Leaves cleanly: closes its session, if it has one, and counts it gone. Whether it had
    /// one.
    pub(super) async fn leave(&mut self, ctx: &RunContext) -> bool {
        let Some(session) = self.session.take() else {
            return false;
        };
        session.close().await;
        ctx.counters.members.fetch_sub(1, Relaxed);
        true
    }
}

/// What connecting produced, for goose's request metrics.
pub(super) enum ConnectOutcome {
    Joined {
        connect: Duration,
        join: Duration,
    },
    Failed {
        stage: &'static str,
        took: Duration,
        error: String,
    },
}

/// Connects and joins the member; on failure, sets when to retry.
pub(super) async fn connect(ctx: &Arc<RunContext>, state: &mut MemberState) -> ConnectOutcome {
    let member = &ctx.plan.members[state.index];
    let started = Instant::now();
    match open_session(ctx, member).await {
        Ok(session) => {
            ctx.counters.members.fetch_add(1, Relaxed);
            let outcome = ConnectOutcome::Joined {
                connect: session.connect_time,
                join: session.join_time,
            };
            state.session = Some(session);
            // What fell due while it had no connection is not sent late in a burst: unsent
            // (counted as planned − made).
            let now = now_us().min(ctx.send_until_us);
            if let Some(schedule) = state.schedule.as_mut() {
                schedule.skip_missed(now);
            }
            if let Some(signals) = state.signals.as_mut() {
                signals.skip_missed(now);
            }
            state.attempts = 0;
            state.retry_at = None;
            outcome
        }
        Err(e) => {
            let stage = match e {
                crate::member::SessionError::Connect(_) => "connect",
                _ => "join",
            };
            state.attempts += 1;
            state.retry_at = Some(Instant::now() + backoff(state.attempts));
            ConnectOutcome::Failed {
                stage,
                took: started.elapsed(),
                error: e.to_string(),
            }
        }
    }
}

/// The official client's reconnection delay: 1 s × 2^attempt, at most 5 s, ±50 %.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1 << attempt.saturating_sub(1).min(3));
    let base = base.min(Duration::from_secs(5));
    let spread = rand::random_range(0.5..1.5);
    base.mul_f64(spread)
}

/// What a turn did, for goose's request metrics.
pub(super) enum StepOutcome {
    /// Nothing to record: it slept, or waits to reconnect.
    Idle,
    /// A message sent, and how long handing it over took.
    Sent(Duration),
    SendFailed(String),
    /// A connect and join: a member's first, a reconnect, or a churn's rejoin.
    Connected(ConnectOutcome),
}

/// One turn of a member: notice a dropped connection, reconnect when due, send when due.
///
/// Its future lives in every member's `say` transaction (or member task) for as long as the
/// member sleeps, so the rare, large parts (closing, connecting: a whole websocket handshake) are boxed and cost
/// nothing until they run.
pub(super) async fn step(
    ctx: &Arc<RunContext>,
    state: &mut MemberState,
    nap: &mut Nap<'_>,
) -> StepOutcome {
    if state.session.as_ref().is_some_and(|s| !s.is_alive()) {
        Box::pin(state.leave(ctx)).await;
        state.retry_at = Some(Instant::now() + backoff(1));
        state.attempts = 1;
    }
    if state.session.is_none() {
        return reconnect_when_due(ctx, state, nap).await;
    }
    if churn_is_due(ctx, state)
        && let Some(outcome) = Box::pin(churn(ctx, state)).await
    {
        return outcome;
    }
    let now = now_us();
    let member = &ctx.plan.members[state.index];
    // Signals first: due ones go out, and the member wakes for the next one.
    let signal_wake = match (state.signals.as_mut(), state.session.as_ref()) {
        (Some(signals), Some(session)) => {
            signals
                .send_due(ctx, member, session, (now, ctx.send_until_us))
                .await;
            signals.next_us().filter(|&t| t < ctx.send_until_us)
        }
        _ => None,
    };
    // A churn time that passed outside the send window is not due; it must not wake the
    // member again and again (it churns at its first turn inside the window).
    let churn_wake = state
        .next_churn
        .filter(|&due| due > Instant::now())
        .map(|due| now + due.saturating_duration_since(Instant::now()).as_micros() as u64);
    let wake = |t: u64| {
        [signal_wake, churn_wake]
            .into_iter()
            .flatten()
            .fold(t, u64::min)
    };
    let session = state.session.as_ref();
    let Some(schedule) = state.schedule.as_mut() else {
        return nap_until_us(wake(now + idle_us(nap)), nap, session).await;
    };
    // Only intended times before the window's end are sent. A lagging member still sends its
    // backlog, in order, each message stamped with its intended time, until the send phase
    // ends; what is left then is unsent (planned − made).
    let next = schedule.next_us();
    if next >= ctx.send_until_us || now >= ctx.send_until_us + SEND_GRACE_US {
        let until = if now < ctx.send_until_us {
            ctx.send_until_us
        } else {
            now + idle_us(nap)
        };
        return nap_until_us(wake(until), nap, session).await;
    }
    if next > now {
        return nap_until_us(wake(next), nap, session).await;
    }
    let Some(session) = session else {
        return StepOutcome::Idle;
    };
    match schedule.send_due(ctx, member, session).await {
        Ok(took) => StepOutcome::Sent(took),
        Err(e) => StepOutcome::SendFailed(e),
    }
}

async fn reconnect_when_due(
    ctx: &Arc<RunContext>,
    state: &mut MemberState,
    nap: &mut Nap<'_>,
) -> StepOutcome {
    let due = state.retry_at.unwrap_or_else(Instant::now);
    let now = now_us();
    if ctx.scenario.traffic.reconnect == Reconnect::None || now >= ctx.send_until_us {
        return nap_until_us(now + idle_us(nap), nap, None).await;
    }
    if due > Instant::now() {
        let wait = due.saturating_duration_since(Instant::now()).as_micros() as u64;
        return nap_until_us(now + wait, nap, None).await;
    }
    let outcome = Box::pin(connect(ctx, state)).await;
    if matches!(outcome, ConnectOutcome::Joined { .. }) {
        ctx.counters.reconnects.fetch_add(1, Relaxed);
    }
    StepOutcome::Connected(outcome)
}

/// Whether this member's churn time has come (sending phase only).
fn churn_is_due(ctx: &RunContext, state: &MemberState) -> bool {
    let Some(due) = state.next_churn else {
        return false;
    };
    let now = now_us();
    Instant::now() >= due && now >= ctx.send_from_us && now < ctx.send_until_us
}

/// Leaves and rejoins at once (see [`churn_is_due`]).
async fn churn(ctx: &Arc<RunContext>, state: &mut MemberState) -> Option<StepOutcome> {
    state.next_churn = next_churn(ctx.scenario.traffic.churn_per_min);
    if !state.leave(ctx).await {
        return None;
    }
    let outcome = connect(ctx, state).await;
    if matches!(outcome, ConnectOutcome::Joined { .. }) {
        ctx.counters.reconnects.fetch_add(1, Relaxed);
    }
    Some(StepOutcome::Connected(outcome))
}

/// The next churn time: a Poisson process of `per_min` events per member per minute.
fn next_churn(per_min: f64) -> Option<Instant> {
    if per_min <= 0.0 {
        return None;
    }
    let uniform: f64 = rand::random_range(f64::EPSILON..1.0);
    let seconds = -uniform.ln() * 60.0 / per_min;
    Some(Instant::now() + Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// How far ahead a member with nothing due sleeps.
fn idle_us(nap: &Nap<'_>) -> u64 {
    match nap {
        Nap::Capped => MAX_SLEEP,
        Nap::UntilWoken(_) => IDLE_NAP,
    }
    .as_micros() as u64
}

/// Sleeps until `target_us` (run clock) as `nap` allows; `session`, if any, ends the sleep
/// when its connection does.
async fn nap_until_us(target_us: u64, nap: &mut Nap<'_>, session: Option<&Session>) -> StepOutcome {
    let deadline = instant_at(target_us);
    match nap {
        Nap::Capped => {
            let deadline = deadline.min(Instant::now() + MAX_SLEEP);
            tokio::time::sleep_until(deadline.into()).await;
        }
        Nap::UntilWoken(stopped) => {
            let dropped = async {
                match session {
                    Some(session) => session.ended().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => {}
                // A closed channel (the user is gone) reads as a stop; the caller checks.
                _ = stopped.changed() => {}
                () = dropped => {}
            }
        }
    }
    StepOutcome::Idle
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_follows_the_official_client() {
        for attempt in 1..10 {
            let d = backoff(attempt);
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_millis(7_500),
                "{d:?}"
            );
        }
        assert!(backoff(1) <= Duration::from_millis(1_500));
    }
}
