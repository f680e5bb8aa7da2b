//! Fault recovery and rate-step judgments, from the run's per-second timeline.
//!
//! One definition for one process and for a run split over several: both judge the same
//! written record, the timeline of results.json (merged exactly for a split run), never the
//! delivery ledgers, which live in the part processes.
//!
//! Why the timeline and not the ledgers, also for a single process: every second of the
//! timeline carries `lost`, the owed deliveries lost of the messages whose intended send time
//! falls in that second (computed in the same walk that settles the ledgers,
//! [`crate::measure::ledger::finalize_counting_losses`]). Rate steps are whole seconds from the
//! run's start (the ramp-up and `traffic.steps.step` are whole seconds), so a step's `lost` is
//! exactly the sum of its seconds: the same number `ledger::lost_between` gives. Fault windows
//! are judged at second resolution: recovery is the start of the first clean whole second after
//! the fault ended, rather than a one-second window sliding from the fault's end. Keeping the
//! ledger-based windows for single runs would have meant two definitions of recovery, and a
//! split run and a single run of the same scenario reporting differently; a second is also the
//! resolution of the fan-out p99 the recovery rule already reads.

use std::time::Duration;

use anyhow::Context;

use crate::context::RunTiming;
use crate::results::histograms::{add_histogram, decode_histogram, new_histogram};
use crate::results::timeline::{SecondStats, TIMELINE_SIGFIG, lost_in_seconds};
use crate::results::{self, Results, StepResult, ThresholdResult};
use crate::scenario::{Metric, RateSteps, Scenario, Threshold};
use crate::target::InjectedFault;

/// When the run's messages were meant to be sent, on the run clock (µs): what the judgments
/// need besides the timeline. The same for every part of a split run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunWindow {
    /// The run's start: second 0 of the timeline.
    pub start_us: u64,
    /// Members send from here (the end of the ramp-up, a whole second)...
    pub send_from_us: u64,
    /// ...until here (a whole second).
    pub send_until_us: u64,
    /// The last intended send time anyone can still be owed: the run's end minus the deadline.
    pub last_owed_us: u64,
    /// How long after its intended send time a message is still owed (`traffic.deadline`).
    pub deadline_us: u64,
}

impl RunWindow {
    /// The window of a run started at `start_us` with these phases, whose messages are due
    /// within `deadline` of their intended send time.
    pub fn new(timing: &RunTiming, start_us: u64, deadline: Duration) -> Self {
        let (send_from_us, send_until_us) = timing.send_window(start_us);
        let deadline_us = deadline.as_micros() as u64;
        RunWindow {
            start_us,
            send_from_us,
            send_until_us,
            last_owed_us: timing.drain_end(start_us).saturating_sub(deadline_us),
            deadline_us,
        }
    }

    /// The second of the timeline that contains `us`.
    fn second_of(&self, us: u64) -> u32 {
        u32::try_from(us.saturating_sub(self.start_us) / 1_000_000).unwrap_or(u32::MAX)
    }

    /// The first second that starts at or after `us`.
    fn second_from(&self, us: u64) -> u32 {
        u32::try_from(us.saturating_sub(self.start_us).div_ceil(1_000_000)).unwrap_or(u32::MAX)
    }

    fn at(&self, second: u32) -> u64 {
        self.start_us + u64::from(second) * 1_000_000
    }
}

/// Judges a finished run, one process's or a split run's merged results alike: its faults and
/// rate steps from the timeline, then every threshold of the scenario.
pub fn judge_run(
    results: &mut Results,
    faults: &[InjectedFault],
    scenario: &Scenario,
    window: &RunWindow,
) -> anyhow::Result<()> {
    judge_faults_and_steps(
        results,
        faults,
        scenario.traffic.steps,
        &scenario.thresholds,
        window,
    )?;
    judge(results, &scenario.thresholds);
    fail_a_run_that_did_not_happen(results, faults);
    Ok(())
}

/// A run that did not happen as the scenario says never passes, whatever the thresholds: one
/// where a fault could not be injected or undone (its action ends in `(failed: why)`), or one
/// where no member ever joined (nothing was measured: every figure would be an empty zero).
fn fail_a_run_that_did_not_happen(results: &mut Results, faults: &[InjectedFault]) {
    if results.counters.joins == 0 || faults.iter().any(|f| f.error.is_some()) {
        results.verdict = results::Verdict::Fail;
    }
}

/// Judges every threshold of the scenario against the results.
pub fn judge(results: &mut Results, thresholds: &[Threshold]) {
    let judged = thresholds
        .iter()
        .map(|&t| ThresholdResult::judge(t, results))
        .collect();
    results.apply_thresholds(judged);
}

/// Sets `results.faults`, `results.steps` and `results.highest_step_held` from
/// `results.timeline` (which must carry its seconds' `lost`).
fn judge_faults_and_steps(
    results: &mut Results,
    faults: &[InjectedFault],
    steps: Option<RateSteps>,
    thresholds: &[Threshold],
    window: &RunWindow,
) -> anyhow::Result<()> {
    results.faults = faults
        .iter()
        .map(|f| fault_result(f, &results.timeline, window))
        .collect();
    results.steps = judge_steps(steps, thresholds, &results.timeline, window)?;
    results.highest_step_held = highest_held(&results.steps);
    Ok(())
}

/// How far after a fault's end recovery is looked for.
const RECOVERY_HORIZON_S: u32 = 300;

/// Messages lost around a fault, and when delivery was back to normal: the start of the first
/// whole second from the fault's end on in which messages were sent, none of them was lost,
/// and the fan-out p99 of what arrived was back near its level before the fault (at most twice
/// it, or 10 ms above it). A second in which nobody sent shows nothing, so it is skipped: a
/// fault that silenced every member, or one after the sending ended, does not recover.
/// `lost_in_window` counts the deliveries lost among messages intended from the first second
/// with messages still owed when the fault began (the deadline before it: a message sent just
/// before a link went down was still on its way) until then (until the run's end when it
/// never recovered).
pub fn fault_result(
    fault: &InjectedFault,
    timeline: &[SecondStats],
    window: &RunWindow,
) -> results::FaultResult {
    let injected = window.second_of(fault.injected_us);
    let normal_p99 = baseline_p99(timeline, injected);
    let clean = |second: u32| {
        timeline.iter().find(|s| s.t == second).is_some_and(|s| {
            s.sends > 0 && s.lost == 0 && (s.deliveries == 0 || s.fanout_p99_us <= normal_p99)
        })
    };
    let first = window.second_from(fault.ended_us.unwrap_or(fault.injected_us));
    // Only seconds whose every message could still be owed when the run ended.
    let judged = |second: u32| window.at(second + 1) <= window.last_owed_us;
    let recovered = (first..first.saturating_add(RECOVERY_HORIZON_S))
        .take_while(|&second| judged(second))
        .find(|&second| clean(second));
    results::FaultResult {
        at_s: fault.at_s,
        action: match &fault.error {
            Some(e) => format!("{} (failed: {e})", fault.action),
            None => fault.action.clone(),
        },
        recovered_after_ms: recovered
            .map(|second| window.at(second).saturating_sub(fault.injected_us) / 1_000),
        lost_in_window: lost_in_seconds(
            timeline,
            window.second_of(fault.injected_us.saturating_sub(window.deadline_us)),
            recovered.unwrap_or(u32::MAX),
        ),
    }
}

/// The fan-out p99 considered normal: from the (up to) five seconds before `second`, with
/// deliveries, their median p99; allowed twice that or 10 ms more, whichever is larger.
fn baseline_p99(timeline: &[SecondStats], second: u32) -> u64 {
    let mut before: Vec<u64> = timeline
        .iter()
        .filter(|s| s.t < second && s.t + 5 >= second && s.deliveries > 0)
        .map(|s| s.fanout_p99_us)
        .collect();
    before.sort_unstable();
    let median = before.get(before.len() / 2).copied().unwrap_or(10_000);
    (median * 2).max(median + 10_000)
}

/// For a rate-stepping scenario: each step judged on its own messages (those meant to be sent
/// in its seconds), by the scenario's thresholds that can be judged per step
/// ([`StepMeasures::measured`]).
pub fn judge_steps(
    steps: Option<RateSteps>,
    thresholds: &[Threshold],
    timeline: &[SecondStats],
    window: &RunWindow,
) -> anyhow::Result<Vec<StepResult>> {
    let Some(steps) = steps else {
        return Ok(Vec::new());
    };
    let step_us = steps.step.as_micros() as u64;
    let mut out = Vec::new();
    for index in 0..steps.max_steps {
        let from = window.send_from_us + u64::from(index) * step_us;
        if from >= window.send_until_us {
            break;
        }
        let last = index + 1 == steps.max_steps;
        let to = if last {
            window.send_until_us
        } else {
            (from + step_us).min(window.send_until_us)
        };
        // The seconds that start inside the step (all of it: its bounds are whole seconds).
        let (first, end) = (window.second_from(from), window.second_from(to));
        let in_step: Vec<&SecondStats> = timeline
            .iter()
            .filter(|s| (first..end).contains(&s.t))
            .collect();
        let fanout = step_fanout(&in_step)?;
        let (p99, max) = (fanout.p99_us, fanout.max_us);
        let lost = lost_in_seconds(timeline, first, end);
        let span_s = (to - from) as f64 / 1e6;
        let mut result = StepResult {
            index,
            multiplier: steps.multiplier_at(Duration::from_micros(from - window.send_from_us)),
            from_s: (from - window.start_us) as f64 / 1e6,
            to_s: (to - window.start_us) as f64 / 1e6,
            sends: in_step.iter().map(|s| s.sends).sum(),
            planned: in_step.iter().map(|s| s.planned).sum(),
            deliveries_per_s: fanout.receipts as f64 / span_s,
            fanout_p99_us: p99,
            fanout_max_us: max,
            lost,
            held: true,
        };
        let measures = StepMeasures {
            fanout_p99_us: p99,
            fanout_max_us: max,
            lost,
            late: in_step.iter().map(|s| s.late).sum(),
            unsent: in_step
                .iter()
                .map(|s| s.planned.saturating_sub(s.sends))
                .sum(),
        };
        result.held = step_holds(thresholds, &measures);
        out.push(result);
    }
    Ok(out)
}

/// The fan-out of the messages meant to be sent in some seconds, wherever they arrived.
struct StepFanout {
    /// Their first receipts.
    receipts: u64,
    p99_us: u64,
    max_us: u64,
}

/// The step's seconds' histograms added (each holds the messages intended in its second). A
/// histogram that does not decode is a corrupt results file: an error, never a silent gap.
fn step_fanout(seconds: &[&SecondStats]) -> anyhow::Result<StepFanout> {
    let mut sum = new_histogram(TIMELINE_SIGFIG);
    for second in seconds.iter().filter(|s| !s.fanout_hist.is_empty()) {
        let h = decode_histogram(&second.fanout_hist, TIMELINE_SIGFIG)
            .with_context(|| format!("timeline second {}", second.t))?;
        add_histogram(&mut sum, &h);
    }
    if sum.is_empty() {
        return Ok(StepFanout {
            receipts: 0,
            p99_us: 0,
            max_us: 0,
        });
    }
    Ok(StepFanout {
        receipts: sum.len(),
        p99_us: sum.value_at_quantile(0.99),
        max_us: sum.max(),
    })
}

/// What a step's own messages measured, for the thresholds that can be judged per step. Its
/// seconds (by intended send time) carry each of these; the run-wide rest (percentiles other
/// than p99, connects, ratios...) has no per-second record to judge a step by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StepMeasures {
    fanout_p99_us: u64,
    fanout_max_us: u64,
    /// Owed deliveries of the step's messages not received in time: `late + never`.
    lost: u64,
    /// Of `lost`, those received after the deadline.
    late: u64,
    /// Sends the schedules called for in the step that were not made (planned − sent, per
    /// second).
    unsent: u64,
}

impl StepMeasures {
    /// The step's value of `metric`, in the units thresholds compare (µs, counts); `None` for a
    /// metric not judged per step.
    fn measured(&self, metric: Metric) -> Option<f64> {
        let value = match metric {
            Metric::FanoutP99 => self.fanout_p99_us,
            Metric::FanoutMax => self.fanout_max_us,
            Metric::Lost => self.lost,
            Metric::Late => self.late,
            Metric::Never => self.lost.saturating_sub(self.late),
            Metric::Unsent => self.unsent,
            _ => return None,
        };
        Some(value as f64)
    }
}

/// Whether every threshold that can be judged per step holds for the step.
fn step_holds(thresholds: &[Threshold], step: &StepMeasures) -> bool {
    thresholds
        .iter()
        .all(|t| step.measured(t.metric).is_none_or(|v| t.holds(v)))
}

/// The last step of the unbroken run of held steps from the first.
fn highest_held(steps: &[StepResult]) -> Option<u32> {
    steps.iter().take_while(|s| s.held).last().map(|s| s.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: u32, held: bool) -> StepResult {
        StepResult {
            index,
            multiplier: f64::from(1 << index),
            from_s: 0.0,
            to_s: 1.0,
            sends: 1,
            planned: 1,
            deliveries_per_s: 1.0,
            fanout_p99_us: 1,
            fanout_max_us: 1,
            lost: 0,
            held,
        }
    }

    #[test]
    fn the_highest_step_held_is_the_end_of_the_first_unbroken_run() {
        assert_eq!(highest_held(&[]), None);
        assert_eq!(highest_held(&[step(0, false), step(1, true)]), None);
        let steps = [step(0, true), step(1, true), step(2, false), step(3, true)];
        assert_eq!(highest_held(&steps), Some(1));
    }

    const START: u64 = 1_000_000_000;

    fn window() -> RunWindow {
        RunWindow {
            start_us: START,
            send_from_us: START + 2_000_000,
            send_until_us: START + 8_000_000,
            last_owed_us: START + 10_000_000,
            deadline_us: 0,
        }
    }

    /// Seconds 0..12, 10 sends and deliveries each, fan-out p99 1 ms, with `lost` as given.
    fn timeline(lost: &[(u32, u64)]) -> Vec<SecondStats> {
        (0..12)
            .map(|t| SecondStats {
                t,
                sends: 10,
                deliveries: 10,
                fanout_p99_us: 1_000,
                lost: lost.iter().find(|l| l.0 == t).map_or(0, |l| l.1),
                ..SecondStats::default()
            })
            .collect()
    }

    fn fault(injected_s: f64, ended_s: f64) -> InjectedFault {
        InjectedFault {
            at_s: injected_s.floor(),
            action: "pause_worker 0 for 1s".into(),
            injected_us: START + (injected_s * 1e6) as u64,
            ended_us: Some(START + (ended_s * 1e6) as u64),
            error: None,
        }
    }

    #[test]
    fn a_run_whose_fault_failed_or_where_nobody_joined_never_passes() {
        let mut r = Results::new(
            serde_json::json!({"name": "t"}),
            results::Environment::of_machine("h".into(), 1, "linux".into(), "abc".into()),
            std::time::UNIX_EPOCH,
            Duration::from_secs(1),
        );
        r.counters.joins = 1;
        let fine = fault(4.0, 5.0);
        fail_a_run_that_did_not_happen(&mut r, std::slice::from_ref(&fine));
        assert_eq!(r.verdict, results::Verdict::Pass);
        let failed = InjectedFault {
            error: Some("cannot cut worker 0 from redis".into()),
            ..fine.clone()
        };
        fail_a_run_that_did_not_happen(&mut r, &[fine, failed]);
        assert_eq!(r.verdict, results::Verdict::Fail);
        r.verdict = results::Verdict::Pass;
        r.counters.joins = 0;
        fail_a_run_that_did_not_happen(&mut r, &[]);
        assert_eq!(r.verdict, results::Verdict::Fail, "nobody joined");
    }

    #[test]
    fn recovery_is_the_first_clean_whole_second_after_the_fault() {
        // Injected at 4.002 s, over at 5.003 s: second 5 still had the fault in it; 6 lost 2.
        let timeline = timeline(&[(4, 3), (5, 4), (6, 2)]);
        let r = fault_result(&fault(4.002, 5.003), &timeline, &window());
        assert_eq!(r.recovered_after_ms, Some(2_998)); // at 7 s
        assert_eq!(r.lost_in_window, 9);
    }

    #[test]
    fn messages_still_owed_when_the_fault_began_are_in_its_window() {
        // Deadline 1.5 s, fault at 4.002 s: messages of second 2 (due by 3.5-4.5 s) were still
        // owed, so its losses count; those of second 1 were all due before the fault.
        let timeline = timeline(&[(1, 7), (2, 1), (4, 3), (5, 4)]);
        let window = RunWindow {
            deadline_us: 1_500_000,
            ..window()
        };
        let r = fault_result(&fault(4.002, 5.003), &timeline, &window);
        assert_eq!(r.recovered_after_ms, Some(1_998)); // at 6 s
        assert_eq!(r.lost_in_window, 8);
    }

    #[test]
    fn a_slow_second_is_not_recovered_and_the_end_bounds_the_search() {
        let mut slow = timeline(&[]);
        slow[6].fanout_p99_us = 500_000;
        let r = fault_result(&fault(4.002, 5.003), &slow, &window());
        assert_eq!(
            r.recovered_after_ms,
            Some(2_998),
            "second 6 is slow, 7 is not"
        );
        // A second in which nobody sent proves nothing.
        let mut silent = timeline(&[]);
        silent[6].sends = 0;
        let r = fault_result(&fault(4.002, 5.003), &silent, &window());
        assert_eq!(r.recovered_after_ms, Some(2_998), "second 6 is silent");
        for second in &mut silent[6..] {
            second.sends = 0;
        }
        let r = fault_result(&fault(4.002, 5.003), &silent, &window());
        assert_eq!(r.recovered_after_ms, None, "nobody sent after the fault");
        // Losses in every second until the last judged one (9: 10 s is the last owed time).
        let lossy: Vec<(u32, u64)> = (4..10).map(|t| (t, 1)).collect();
        let r = fault_result(&fault(4.002, 5.003), &timeline(&lossy), &window());
        assert_eq!(r.recovered_after_ms, None);
        assert_eq!(r.lost_in_window, 6);
    }

    #[test]
    fn steps_are_judged_on_their_own_seconds() {
        let steps = RateSteps {
            start: 1.0,
            factor: 2.0,
            step: Duration::from_secs(2),
            max_steps: 3,
        };
        let lost = Threshold::parse(Metric::Lost, "== 0").expect("rule");
        let timeline = timeline(&[(1, 50), (4, 1), (8, 7)]);
        let judged = judge_steps(Some(steps), &[lost], &timeline, &window()).expect("judged");
        let summary: Vec<(f64, f64, u64, u64, bool)> = judged
            .iter()
            .map(|s| (s.multiplier, s.from_s, s.sends, s.lost, s.held))
            .collect();
        assert_eq!(
            summary,
            [
                (1.0, 2.0, 20, 0, true),
                (2.0, 4.0, 20, 1, false),
                (4.0, 6.0, 20, 0, true)
            ]
        );
        assert_eq!(highest_held(&judged), Some(0));
    }

    /// Which of three 2 s steps hold `rule`: second 2 had 3 deliveries late (none never),
    /// second 4 lost 2 of which 1 late (so 1 never), second 6 made 10 of 12 planned sends.
    fn held_by(rule: &str) -> Vec<bool> {
        let steps = RateSteps {
            start: 1.0,
            factor: 2.0,
            step: Duration::from_secs(2),
            max_steps: 3,
        };
        let mut timeline = timeline(&[(2, 3), (4, 2)]);
        for second in &mut timeline {
            second.planned = second.sends;
        }
        timeline[2].late = 3;
        timeline[4].late = 1;
        timeline[6].planned = 12;
        let rule: Threshold = rule.parse().expect("rule");
        judge_steps(Some(steps), &[rule], &timeline, &window())
            .expect("judged")
            .iter()
            .map(|s| s.held)
            .collect()
    }

    #[test]
    fn steps_are_judged_by_late_never_and_unsent() {
        assert_eq!(held_by("lost == 0"), [false, false, true]);
        assert_eq!(held_by("late == 0"), [false, false, true]);
        assert_eq!(held_by("never == 0"), [true, false, true]);
        assert_eq!(held_by("unsent == 0"), [true, true, false]);
        assert_eq!(held_by("unsent <= 2"), [true, true, true]);
        // Run-wide metrics have no per-step value: they do not break a step.
        assert_eq!(held_by("delivery_ratio == 100%"), [true, true, true]);
    }
}
