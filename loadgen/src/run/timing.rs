//! The phases of a run as the scenario sets them: the goose test plan that drives the members,
//! and the quiet point at which members and workers are compared.

use std::time::Duration;

use crate::context::RunTiming;
use crate::scenario::{Arrival, Scenario};

/// A pause between the join ramp and the first message, so the last joiners have finished
/// joining: with a ramp, every member is owed every message.
const SETTLE: Duration = Duration::from_secs(1);

/// The phases of the run and the goose test plan that drives them.
pub(super) fn timing(scenario: &Scenario, members: usize) -> (RunTiming, String) {
    let mut steps = scenario.load_steps(members);
    let drain = Duration::from_secs(scenario.traffic.deadline.as_secs_f64().ceil() as u64);
    let mut ramp_up = scenario.ramp_up();
    // Hold the peak a settle second before the sending and a deadline after it, so the
    // first messages find everyone joined and the last ones are owed.
    if matches!(scenario.population.arrival, Arrival::Ramp(_)) && steps.len() >= 2 {
        steps[1].seconds += (SETTLE + drain).as_secs();
        ramp_up += SETTLE;
    }
    let plan = steps
        .iter()
        .map(|s| format!("{},{}", s.users, s.seconds))
        .collect::<Vec<_>>()
        .join(";");
    let total = Duration::from_secs(steps.iter().map(|s| s.seconds).sum());
    let timing = RunTiming {
        ramp_up,
        send: scenario.duration,
        drain,
        ramp_down: total.saturating_sub(ramp_up + scenario.duration + drain),
        total,
    };
    (timing, plan)
}

/// The quiet point: the end of the drain, when every message has arrived and nobody has left
/// yet. Members' receipts and the workers' `delivered` are compared there.
pub(super) fn quiet_point(scenario: &Scenario, send_until_us: u64) -> u64 {
    let drain = scenario.traffic.deadline.as_micros() as u64;
    send_until_us + drain * 9 / 10
}
