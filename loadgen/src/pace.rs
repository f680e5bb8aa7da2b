//! When each member means to send: its intended send times, a pure function of the plan.
//!
//! The schedule is an open model: it says when a message is due whatever happens at run time
//! (a stalled socket, a dropped connection), so the same seed gives the same intended times,
//! and what was planned can be counted from the plan alone ([`planned`]) and set against what
//! was sent.
//!
//! Why "rate-scaled time": with rate steps, a member's next send used to be one interval at
//! the rate in force at its previous send. With 10 s between a member's sends at x1, the first
//! seconds of a x4 step still ran on gaps drawn at the previous rate, and a ramp's first steps
//! offered a fraction of their multiplier (measured: x4, x5, x6.25 offered 6,970, 17,853 and
//! 24,120 deliveries/s instead of 16,000, 20,000 and 25,000). Here a member's gaps are drawn in
//! rate-scaled time, τ(t) = ∫ multiplier(s) ds from the start of the send window: one base
//! interval (± jitter) of τ between sends, and a gap that crosses a step boundary is rescaled
//! there. So the population's planned sends per second equal base rate × multiplier from the
//! first second of every step.
//!
//! Why the first send is not uniform over one interval: with jitter, uniform phases are not the
//! steady state of the renewal process, and the population's rate would ripple for several
//! intervals after the start (±50 % within the first interval at jitter 0.2). The first gap is
//! drawn as the steady state's residual time instead (a length-biased gap, then a uniform
//! fraction of it), which is stationary from the first second. Without jitter it is uniform over
//! one interval, as before.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::scenario::{Burst, MemberPlan, RateSteps, Traffic};

/// One member's intended send times, in order, with their sequence numbers.
#[derive(Debug, Clone)]
pub struct Pace {
    from_us: u64,
    /// The next intended send time, µs after `from_us`, unrounded (rounding each gap to whole
    /// µs would drift over a long run).
    at: f64,
    /// The rate step that `at` falls in (0 without steps).
    step: u32,
    seq: u32,
    interval_us: f64,
    jitter: f64,
    steps: Option<RateSteps>,
    /// A bursty member's on/off cycle: `at` then counts time in on periods only.
    duty: Option<Duty>,
    rng: SmallRng,
}

/// Distinguishes a bursty member's phase from its schedule's other draws.
const BURST_STREAM: u64 = 0x4255_5253_5450_4841;

/// A bursty member's cycle of `on` and `off` periods, starting at its own phase: its schedule
/// runs in on-time (the time spent in on periods), mapped to the run's clock here. So a member
/// sends at its rate while on and not at all while off, and the same seed gives the same times.
#[derive(Debug, Clone, Copy)]
struct Duty {
    on_us: f64,
    cycle_us: f64,
    /// What is left of the on period the member is in at the window's start (0 when off).
    first_on_us: f64,
    /// When its next cycle starts, µs after the window's start.
    next_cycle_us: f64,
}

impl Duty {
    fn new(burst: Burst, seed: u64) -> Duty {
        let on_us = (burst.on.as_micros() as f64).max(1.0);
        let cycle_us = on_us + burst.off.as_micros() as f64;
        let phase = SmallRng::seed_from_u64(seed ^ BURST_STREAM).random_range(0.0..cycle_us);
        Duty {
            on_us,
            cycle_us,
            first_on_us: (on_us - phase).max(0.0),
            next_cycle_us: cycle_us - phase,
        }
    }

    /// The time on the window's clock (µs after its start) at which `on_time` µs of on
    /// periods have passed.
    fn real(&self, on_time: f64) -> f64 {
        if on_time < self.first_on_us {
            return on_time;
        }
        let rest = on_time - self.first_on_us;
        let cycles = (rest / self.on_us).floor();
        self.next_cycle_us + cycles * self.cycle_us + (rest - cycles * self.on_us)
    }
}

impl Pace {
    /// `member`'s schedule from `from_us` (the start of the send window, when its step 0
    /// starts); `None` for a member that never sends. Its randomness comes from the member's
    /// seed alone.
    pub fn for_member(member: &MemberPlan, traffic: &Traffic, from_us: u64) -> Option<Pace> {
        let interval = member.send_interval?;
        let pace = Pace::new(
            interval.as_micros() as f64,
            traffic.jitter,
            traffic.steps,
            member.seed,
            from_us,
        );
        Some(match member.burst {
            Some(burst) => pace.bursting(burst, member.seed),
            None => pace,
        })
    }

    /// The same schedule, sent only during the on periods of `burst` (its phase drawn from
    /// `seed`): on-time is mapped to the run's clock. Not with rate steps (refused when the
    /// scenario is read).
    pub fn bursting(mut self, burst: Burst, seed: u64) -> Pace {
        self.duty = Some(Duty::new(burst, seed));
        self
    }

    /// A schedule of one send per `interval_us` of rate-scaled time (± `jitter` of it).
    pub fn new(
        interval_us: f64,
        jitter: f64,
        steps: Option<RateSteps>,
        seed: u64,
        from_us: u64,
    ) -> Pace {
        let mut pace = Pace {
            from_us,
            at: 0.0,
            step: 0,
            seq: 0,
            interval_us: interval_us.max(1.0),
            jitter: jitter.clamp(0.0, 1.0),
            steps,
            duty: None,
            rng: SmallRng::seed_from_u64(seed),
        };
        let first = pace.first_gap();
        pace.move_by(first);
        pace
    }

    /// The intended time of the next send (run clock, µs).
    pub fn next_us(&self) -> u64 {
        let at = self.duty.map_or(self.at, |duty| duty.real(self.at));
        self.from_us + at as u64
    }

    /// The sequence number of the next send (counted from 0, skipped sends included).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Moves to the next intended send.
    pub fn advance(&mut self) {
        let gap = self.gap();
        self.move_by(gap);
        self.seq += 1;
    }

    /// Intended sends from the next one on before `until_us`; the schedule is not moved.
    pub fn count_before(&self, until_us: u64) -> u64 {
        let mut pace = self.clone();
        let mut n = 0;
        while pace.next_us() < until_us {
            n += 1;
            pace.advance();
        }
        n
    }

    /// One gap in rate-scaled µs: the base interval moved by up to ± jitter of itself.
    fn gap(&mut self) -> f64 {
        let jitter = if self.jitter > 0.0 {
            self.rng.random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        (self.interval_us * (1.0 + jitter)).max(1.0)
    }

    /// The time to the first send, as the residual of a gap of the steady-state process (see
    /// the module's header): a length-biased gap (density ∝ g on [1 − j, 1 + j] intervals,
    /// drawn by inverting its distribution), then a uniform fraction of it.
    fn first_gap(&mut self) -> f64 {
        let (a, b) = (1.0 - self.jitter, 1.0 + self.jitter);
        let u: f64 = self.rng.random_range(0.0..1.0);
        let biased = (a * a + u * (b * b - a * a)).sqrt();
        let v: f64 = self.rng.random_range(0.0..1.0);
        v * biased * self.interval_us
    }

    /// Moves `at` on by `scaled` µs of rate-scaled time: in a step of multiplier m, one real µs
    /// is m scaled µs; a gap that reaches the step's end continues in the next step at its rate.
    fn move_by(&mut self, mut scaled: f64) {
        let Some(steps) = self.steps else {
            self.at += scaled;
            return;
        };
        let step_us = steps.step.as_micros() as f64;
        loop {
            let multiplier = steps.multiplier(self.step).max(1e-9);
            if self.step + 1 >= steps.max_steps {
                // The last step lasts until the end of the steady phase.
                self.at += scaled / multiplier;
                return;
            }
            let end = f64::from(self.step + 1) * step_us;
            let room = (end - self.at) * multiplier;
            if scaled < room {
                self.at += scaled / multiplier;
                return;
            }
            scaled -= room;
            self.at = end;
            self.step += 1;
        }
    }
}

/// The sends the members' schedules put in a send window: the offered load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Planned {
    pub total: u64,
    /// By intended send second: index t counts intended times in `[start + t s, start + t+1 s)`.
    pub per_second: Vec<u64>,
    /// Per member, in the plan's order (seqs `0..n` are used by member i's sends).
    pub per_member: Vec<u32>,
}

/// Every intended send time in `[from_us, until_us)` of every member with a schedule,
/// connected or not, counted by second of the run clock that starts at `start_us`.
pub fn planned(
    members: &[MemberPlan],
    traffic: &Traffic,
    start_us: u64,
    (from_us, until_us): (u64, u64),
) -> Planned {
    let mut out = Planned {
        per_member: Vec::with_capacity(members.len()),
        ..Planned::default()
    };
    for member in members {
        let mut sent = 0u32;
        if let Some(mut pace) = Pace::for_member(member, traffic, from_us) {
            while pace.next_us() < until_us {
                let second = (pace.next_us().saturating_sub(start_us) / 1_000_000) as usize;
                if out.per_second.len() <= second {
                    out.per_second.resize(second + 1, 0);
                }
                out.per_second[second] += 1;
                sent += 1;
                pace.advance();
            }
        }
        out.total += u64::from(sent);
        out.per_member.push(sent);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: u64 = 1_000_000;

    fn ramp(start: f64, factor: f64, step_s: u64, max_steps: u32) -> RateSteps {
        RateSteps {
            start,
            factor,
            step: Duration::from_secs(step_s),
            max_steps,
        }
    }

    /// Intended sends per second of `[from, from + seconds)` by `members` schedules of
    /// `interval_s` at the base rate.
    fn per_second(
        members: u64,
        interval_s: f64,
        jitter: f64,
        steps: Option<RateSteps>,
        seconds: u64,
    ) -> Vec<u64> {
        let from = 5 * SECOND;
        let mut counts = vec![0u64; seconds as usize];
        for seed in 0..members {
            let mut pace = Pace::new(interval_s * 1e6, jitter, steps, seed, from);
            while pace.next_us() < from + seconds * SECOND {
                counts[((pace.next_us() - from) / SECOND) as usize] += 1;
                pace.advance();
            }
        }
        counts
    }

    /// The ramp (x4, x5, x6.25, steps of 6 s) with 10 s between a member's sends at
    /// x1: every second of every step, its first included, offers base rate × multiplier.
    #[test]
    fn every_second_of_a_step_offers_its_multiplier() {
        let members = 10_000;
        let steps = ramp(4.0, 1.25, 6, 3);
        for jitter in [0.0, 0.2, 1.0] {
            let counts = per_second(members, 10.0, jitter, Some(steps), 18);
            for (second, &n) in counts.iter().enumerate() {
                let multiplier = steps.multiplier_at(Duration::from_secs(second as u64));
                let expected = members as f64 / 10.0 * multiplier;
                let off = (n as f64 - expected).abs() / expected;
                // The spread of 10,000 independent phases is about 1 % of these counts.
                assert!(
                    off < 0.05,
                    "jitter {jitter}, second {second} (x{multiplier}): {n} planned, {expected} expected"
                );
            }
        }
    }

    #[test]
    fn without_steps_the_rate_is_the_base_rate_from_the_first_second() {
        let counts = per_second(10_000, 4.0, 0.5, None, 12);
        for (second, &n) in counts.iter().enumerate() {
            assert!(
                (n as f64 - 2_500.0).abs() < 125.0,
                "second {second}: {n} planned, 2500 expected"
            );
        }
    }

    #[test]
    fn a_gap_that_crosses_a_step_boundary_is_rescaled_there() {
        // No jitter, 1 s at x1: the first send lands at u s (u < 1), then one second apart
        // until the 2 s boundary, where the rate doubles: the gap that crosses it is half a
        // second after the boundary for what is left of it.
        let steps = ramp(1.0, 2.0, 2, 2);
        let mut pace = Pace::new(1e6, 0.0, Some(steps), 3, 0);
        let first = pace.next_us();
        assert!(first < SECOND);
        let mut times = vec![first];
        for _ in 0..5 {
            pace.advance();
            times.push(pace.next_us());
        }
        let u = first as f64;
        let expected = [
            u,
            u + 1e6,
            2e6 + (u + 2e6 - 2e6) / 2.0,
            2e6 + u / 2.0 + 0.5e6,
            2e6 + u / 2.0 + 1e6,
            2e6 + u / 2.0 + 1.5e6,
        ];
        for (got, want) in times.iter().zip(expected) {
            assert!(
                (*got as f64 - want).abs() <= 1.0,
                "{times:?} vs {expected:?}"
            );
        }
        assert_eq!(pace.seq(), 5);
    }

    /// A bursty member sends at its rate in its on periods and never in its off periods;
    /// over many members the offered load is rate × on / (on + off), steady from the first
    /// second (each member on its own phase).
    #[test]
    fn a_bursty_schedule_sends_only_in_its_on_periods() {
        let burst = Burst {
            on: Duration::from_secs(2),
            off: Duration::from_secs(6),
        };
        let from = 5 * SECOND;
        let mut counts = vec![0u64; 40];
        for seed in 0..4_000u64 {
            let duty = Duty::new(burst, seed);
            let mut pace = Pace::new(250_000.0, 0.2, None, seed, from).bursting(burst, seed);
            let mut last = 0;
            while pace.next_us() < from + 40 * SECOND {
                let t = pace.next_us() - from;
                assert!(t >= last, "in order");
                last = t;
                // On iff its position in the member's cycle is in [0, on).
                let position = (t as f64 - duty.next_cycle_us).rem_euclid(duty.cycle_us);
                assert!(
                    position < duty.on_us + 1.0 || (t as f64) < duty.first_on_us + 1.0,
                    "seed {seed}: a send at {t} µs falls in an off period"
                );
                counts[(t / SECOND) as usize] += 1;
                pace.advance();
            }
        }
        // 4 messages a second while on, on a quarter of the time: 1 a second per member.
        for (second, &n) in counts.iter().enumerate() {
            assert!(
                (n as f64 - 4_000.0).abs() < 400.0,
                "second {second}: {n} planned, 4000 expected"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_intended_times() {
        let steps = Some(ramp(1.0, 1.5, 3, 4));
        let a = Pace::new(700_000.0, 0.3, steps, 42, 1_000);
        let b = Pace::new(700_000.0, 0.3, steps, 42, 1_000);
        let c = Pace::new(700_000.0, 0.3, steps, 43, 1_000);
        let times = |mut p: Pace| {
            (0..50)
                .map(|_| {
                    let t = p.next_us();
                    p.advance();
                    t
                })
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (times(a), times(b), times(c));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "in order: {a:?}");
    }
}
