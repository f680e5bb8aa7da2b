//! One simulated member's life, apart from goose: connecting and joining, and the turns that
//! notice a dropped connection, reconnect when due, churn and send when due.
//!
//! This exists so that the same member logic runs under either driver in `attack`: one goose
//! user per member (its `say` transaction takes the turns), or one tokio task per member of a
//! goose user that drives several (`batch`). A turn never sleeps longer than [`MAX_SLEEP`], so
//! either driver can stop its members promptly.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::clock::{instant_at, now_us};
use crate::context::RunContext;
use crate::member::{Schedule, Session, open_session};
use crate::scenario::Reconnect;
use crate::signals::Signals;

/// Longest a turn sleeps, so goose can stop users (and a user its members) promptly.
pub(super) const MAX_SLEEP: Duration = Duration::from_secs(1);

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

    /// Leaves cleanly: closes its session, if it has one, and counts it gone.
    pub(super) async fn leave(&mut self, ctx: &RunContext) {
        if let Some(session) = self.session.take() {
            session.close().await;
            ctx.counters.members.fetch_sub(1, Relaxed);
        }
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
pub(super) async fn step(ctx: &Arc<RunContext>, state: &mut MemberState) -> StepOutcome {
    if state.session.as_ref().is_some_and(|s| !s.is_alive()) {
        if let Some(dead) = state.session.take() {
            Box::pin(dead.close()).await;
        }
        ctx.counters.members.fetch_sub(1, Relaxed);
        state.retry_at = Some(Instant::now() + backoff(1));
        state.attempts = 1;
    }
    if state.session.is_none() {
        return reconnect_when_due(ctx, state).await;
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
    let wake = |t: u64| signal_wake.map_or(t, |s| s.min(t));
    let Some(schedule) = state.schedule.as_mut() else {
        return sleep_until_us(wake(now + MAX_SLEEP.as_micros() as u64)).await;
    };
    // Only intended times before the window's end are sent. A lagging member still sends its
    // backlog, in order, each message stamped with its intended time, until the send phase
    // ends; what is left then is unsent (planned − made).
    let next = schedule.next_us();
    if next >= ctx.send_until_us || now >= ctx.send_until_us + SEND_GRACE_US {
        let until = if now < ctx.send_until_us {
            ctx.send_until_us
        } else {
            now + MAX_SLEEP.as_micros() as u64
        };
        return sleep_until_us(wake(until)).await;
    }
    if next > now {
        return sleep_until_us(wake(next)).await;
    }
    let Some(session) = state.session.as_ref() else {
        return StepOutcome::Idle;
    };
    match schedule.send_due(ctx, member, session).await {
        Ok(took) => StepOutcome::Sent(took),
        Err(e) => StepOutcome::SendFailed(e),
    }
}

async fn reconnect_when_due(ctx: &Arc<RunContext>, state: &mut MemberState) -> StepOutcome {
    let due = state.retry_at.unwrap_or_else(Instant::now);
    if ctx.scenario.traffic.reconnect == Reconnect::None || now_us() >= ctx.send_until_us {
        return sleep_until_us(now_us() + MAX_SLEEP.as_micros() as u64).await;
    }
    if due > Instant::now() {
        tokio::time::sleep(due.saturating_duration_since(Instant::now()).min(MAX_SLEEP)).await;
        return StepOutcome::Idle;
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
    let session = state.session.take()?;
    session.close().await;
    ctx.counters.members.fetch_sub(1, Relaxed);
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

async fn sleep_until_us(target_us: u64) -> StepOutcome {
    let deadline = instant_at(target_us).min(Instant::now() + MAX_SLEEP);
    tokio::time::sleep_until(deadline.into()).await;
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
