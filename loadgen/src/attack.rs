//! The goose side: simulated members driven by GooseUsers running three transactions.
//!
//! `on_start` connects and joins (recorded as goose custom requests `WS connect` and
//! `SIO join`), `say` sends whenever the member's open-model schedule says so (and reconnects
//! per the scenario's policy), `on_stop` leaves cleanly. Transactions never block longer than
//! a second, because goose stops users only between transactions.
//!
//! By default every member is a goose user of its own, taking its turns (`turn`) in `say`.
//! With `population.members_per_user = K` a user drives K members instead (`batch`): `on_start`
//! starts them as tasks of their own, `say` records what they did, `on_stop` makes them leave.

mod batch;
mod turn;

use std::sync::Arc;
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::metrics::GooseMetrics;
use goose::prelude::*;

use crate::context::RunContext;
use batch::{Batch, members_of_user};
use turn::{ConnectOutcome, MAX_SLEEP, MemberState, Nap, StepOutcome, connect, step};

/// Per-user state, kept in goose's session data (which must be `Clone`: hence the handles):
/// one member, or the members of a batch.
#[derive(Clone)]
struct MemberHandle(Arc<tokio::sync::Mutex<MemberState>>);

#[derive(Clone)]
struct BatchHandle(Arc<tokio::sync::Mutex<Batch>>);

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
        let per_user = ctx.scenario.population.per_user();
        if per_user > 1 {
            start_batch(&ctx, user, per_user);
            return Ok(());
        }
        let Some(mut state) = MemberState::new(&ctx, user.weighted_users_index) else {
            return Ok(()); // more users than planned members: they idle
        };
        let outcome = connect(&ctx, &mut state).await;
        user.set_session_data(MemberHandle(Arc::new(tokio::sync::Mutex::new(state))));
        record_connect(user, outcome).await
    })
}

/// Starts the user's members as tasks of their own; `say` records their connects.
fn start_batch(ctx: &Arc<RunContext>, user: &mut GooseUser, per_user: usize) {
    let members = members_of_user(user.weighted_users_index, per_user, ctx.plan.members.len());
    if members.is_empty() {
        return; // more users than planned members: they idle
    }
    let spacing = ctx.scenario.member_spacing(ctx.plan.members.len());
    let batch = Batch::start(ctx, members, spacing);
    user.set_session_data(BatchHandle(Arc::new(tokio::sync::Mutex::new(batch))));
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

fn say(
    ctx: Arc<RunContext>,
    user: &mut GooseUser,
) -> futures_util::future::BoxFuture<'_, TransactionResult> {
    Box::pin(async move {
        if let Some(batch) = user.get_session_data::<BatchHandle>().cloned() {
            let outcomes = batch.0.lock().await.outcomes().await;
            for outcome in outcomes {
                record_step(user, outcome).await?;
            }
            return Ok(());
        }
        let Some(handle) = user.get_session_data::<MemberHandle>().cloned() else {
            tokio::time::sleep(MAX_SLEEP).await;
            return Ok(());
        };
        let outcome = step(&ctx, &mut *handle.0.lock().await, &mut Nap::Capped).await;
        record_step(user, outcome).await
    })
}

/// Records what a member's turn did in goose's request metrics.
async fn record_step(user: &mut GooseUser, outcome: StepOutcome) -> TransactionResult {
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
        StepOutcome::Connected(outcome) => record_connect(user, outcome).await,
    }
}

fn stop(
    ctx: Arc<RunContext>,
    user: &mut GooseUser,
) -> futures_util::future::BoxFuture<'_, TransactionResult> {
    Box::pin(async move {
        if let Some(batch) = user.get_session_data::<BatchHandle>().cloned() {
            // Each member closes its own session as it leaves, as `leave` does below.
            let left = batch.0.lock().await.stop().await;
            for outcome in left {
                record_step(user, outcome).await?;
            }
            return Ok(());
        }
        if let Some(handle) = user.get_session_data::<MemberHandle>().cloned() {
            handle.0.lock().await.leave(&ctx).await;
        }
        Ok(())
    })
}
