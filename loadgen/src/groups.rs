//! Each member group's figures (`[[population.groups]]`): what its members sent, and what they
//! were owed and received, for results.json's `groups`.
//!
//! Kept apart from the run's order: it only reads what the run counted (the plan, the groups'
//! counters and fan-out histograms, the ledgers' per-group totals), so the run's code gains one
//! call, and a group's figures are defined in one place (docs/measurement.md, "Member groups").

use std::sync::atomic::Ordering::Relaxed;

use crate::context::RunContext;
use crate::measure::histograms::{encode_histogram, percentiles};
use crate::measure::ledger::DeliveryTotals;
use crate::results::{Deliveries, GroupResult, Percentiles, Sends};

/// The figures of every group of the scenario (none without groups); `by_group` are the
/// ledgers' per-group totals summed over this process's rooms.
pub fn group_results(
    ctx: &RunContext,
    by_group: &[DeliveryTotals],
) -> anyhow::Result<Vec<GroupResult>> {
    let groups = &ctx.scenario.population.groups;
    let fanout = ctx.group_fanout.merged(groups.len());
    groups
        .iter()
        .zip(&ctx.groups)
        .zip(fanout)
        .enumerate()
        .map(|(g, ((group, live), (hist, clamped)))| {
            let (members, planned) = members_and_planned(ctx, g as u32);
            Ok(GroupResult {
                name: group.name.clone(),
                members,
                sends: Sends::new(planned, live.sends.load(Relaxed)),
                signals: live.signals.load(Relaxed),
                signal_failures: live.signal_failures.load(Relaxed),
                deliveries: Deliveries::from(&by_group.get(g).copied().unwrap_or_default()),
                fanout: Percentiles {
                    clamped,
                    ..percentiles(&hist)
                },
                fanout_hist: encode_histogram(&hist)?,
            })
        })
        .collect()
}

/// How many of this process's members are in group `g`, and the sends their schedules plan.
fn members_and_planned(ctx: &RunContext, g: u32) -> (u64, u64) {
    ctx.plan
        .members
        .iter()
        .zip(&ctx.planned.per_member)
        .filter(|(m, _)| m.group == Some(g))
        .fold((0, 0), |(members, planned), (_, &n)| {
            (members + 1, planned + u64::from(n))
        })
}
