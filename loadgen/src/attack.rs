//! The goose side: every simulated member is a GooseUser running three transactions.
//!
//! `on_start` connects and joins (recorded as goose custom requests `WS connect` and
//! `SIO join`), `say` sends whenever the member's open-model schedule says so (and reconnects
//! per the scenario's policy), `on_stop` leaves cleanly. Transactions never block longer than
//! a second, because goose stops users only between transactions.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::metrics::GooseMetrics;
use goose::prelude::*;

use crate::clock::{instant_at, now_us};
use crate::context::RunContext;
use crate::member::{Schedule, Session, open_session};
use crate::scenario::Reconnect;
use crate::signals::Signals;

/// Longest a transaction sleeps, so goose can stop users promptly.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How long after the send window's end a member may still send what was due in it: the send
/// phase's end. A member sleeping until a send due just before the window's end wakes a timer
/// tick or a busy scheduler's turn later; without this its on-time message would count unsent.
/// Short against any deadline, so a real backlog is still cut off.
const SEND_GRACE_US: u64 = 25_000;

/// Per-user state, kept in goose's session data (which must be `Clone`: hence the handle).
#[derive(Clone)]
struct MemberHandle(Arc<tokio::sync::Mutex<MemberState>>);

struct MemberState {
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

/// Runs the attack to the end of `test_plan`; members are `ctx.plan.members` in order.
pub async fn run(ctx: Arc<RunContext>, test_plan: &str) -> anyhow::Result<GooseMetrics> {
    let config = GooseConfiguration::default();
    let scenario = scenario!("member")
        .register_transaction(transaction(&ctx, start).set_name("join").set_on_start())
        .register_transaction(transaction(&ctx, say).set_name("say"))
        .register_transaction(transaction(&ctx, stop).set_name("leave").set_on_stop());
    let metrics = GooseAttack::initialize_with_config(config)?
        .set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new().without_cookies(),
        )?
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, ctx.target_url.as_str())?
        .set_default(GooseDefault::TestPlan, test_plan)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoTransactionMetrics, true)?
        .set_default(GooseDefault::Quiet, 1)?
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("goose: {e:?}"))?;
    Ok(metrics)
}

type Step =
    fn(Arc<RunContext>, &mut GooseUser) -> futures_util::future::BoxFuture<'_, TransactionResult>;

fn transaction(ctx: &Arc<RunContext>, step: Step) -> Transaction {
    let ctx = ctx.clone();
    Transaction::new(Arc::new(move |user| step(ctx.clone(), user)))
}

fn start(
    ctx: Arc<RunContext>,
    user: &mut GooseUser,
) -> futures_util::future::BoxFuture<'_, TransactionResult> {
    Box::pin(async move {
        let index = user.weighted_users_index;
        let Some(member) = ctx.plan.members.get(index) else {
            return Ok(()); // more users than planned members: they idle
        };
        let schedule = Schedule::new(member, &ctx.scenario.traffic, ctx.send_from_us);
        let mut state = MemberState {
            index,
            session: None,
            schedule,
            signals: Signals::for_member(&ctx, member, ctx.send_from_us),
            attempts: 0,
            retry_at: None,
            next_churn: next_churn(ctx.scenario.traffic.churn_per_min),
        };
        let outcome = connect(&ctx, index, &mut state).await;
        user.set_session_data(MemberHandle(Arc::new(tokio::sync::Mutex::new(state))));
        record_connect(user, outcome).await
    })
}

/// What connecting produced, for goose's request metrics.
enum ConnectOutcome {
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

async fn connect(ctx: &Arc<RunContext>, index: usize, state: &mut MemberState) -> ConnectOutcome {
    let member = &ctx.plan.members[index];
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

async fn record_connect(user: &mut GooseUser, outcome: ConnectOutcome) -> TransactionResult {
    match outcome {
        ConnectOutcome::Joined { connect, join } => {
            user.record_custom_request_duration("WS", "connect", connect, true, None, None)
                .await?;
            user.record_custom_request_duration("SIO", "join", join, true, None, None)
                .await?;
        }
        ConnectOutcome::Failed { stage, took, error } => {
            let (method, name) = if stage == "connect" {
                ("WS", "connect")
            } else {
                ("SIO", "join")
            };
            user.record_custom_request_duration(method, name, took, false, None, Some(&error))
                .await?;
        }
    }
    Ok(())
}

/// The official client's reconnection delay: 1 s × 2^attempt, at most 5 s, ±50 %.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1 << attempt.saturating_sub(1).min(3));
    let base = base.min(Duration::from_secs(5));
    let spread = rand::random_range(0.5..1.5);
    base.mul_f64(spread)
}

fn say(
    ctx: Arc<RunContext>,
    user: &mut GooseUser,
) -> futures_util::future::BoxFuture<'_, TransactionResult> {
    Box::pin(async move {
        let Some(handle) = user.get_session_data::<MemberHandle>().cloned() else {
            tokio::time::sleep(MAX_SLEEP).await;
            return Ok(());
        };
        let outcome = step(&ctx, &mut *handle.0.lock().await).await;
        match outcome {
            StepOutcome::Idle => Ok(()),
            StepOutcome::Sent(took) => {
                user.record_custom_request_duration("SIO", "say", took, true, None, None)
                    .await?;
                Ok(())
            }
            StepOutcome::SendFailed(error) => {
                user.record_custom_request_duration(
                    "SIO",
                    "say",
                    Duration::ZERO,
                    false,
                    None,
                    Some(&error),
                )
                .await?;
                Ok(())
            }
            StepOutcome::Reconnected(outcome) => record_connect(user, outcome).await,
        }
    })
}

enum StepOutcome {
    Idle,
    Sent(Duration),
    SendFailed(String),
    Reconnected(ConnectOutcome),
}

/// One turn of a member: notice a dropped connection, reconnect when due, send when due.
///
/// Its future lives in every member's `say` transaction for as long as the member sleeps, so
/// the rare, large parts (closing, connecting: a whole websocket handshake) are boxed and cost
/// nothing until they run.
async fn step(ctx: &Arc<RunContext>, state: &mut MemberState) -> StepOutcome {
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
    let outcome = Box::pin(connect(ctx, state.index, state)).await;
    if matches!(outcome, ConnectOutcome::Joined { .. }) {
        ctx.counters.reconnects.fetch_add(1, Relaxed);
    }
    StepOutcome::Reconnected(outcome)
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
    let outcome = connect(ctx, state.index, state).await;
    if matches!(outcome, ConnectOutcome::Joined { .. }) {
        ctx.counters.reconnects.fetch_add(1, Relaxed);
    }
    Some(StepOutcome::Reconnected(outcome))
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

fn stop(
    ctx: Arc<RunContext>,
    user: &mut GooseUser,
) -> futures_util::future::BoxFuture<'_, TransactionResult> {
    Box::pin(async move {
        let handle = user.get_session_data::<MemberHandle>().cloned();
        if let Some(handle) = handle
            && let Some(session) = handle.0.lock().await.session.take()
        {
            session.close().await;
            ctx.counters.members.fetch_sub(1, Relaxed);
        }
        Ok(())
    })
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
