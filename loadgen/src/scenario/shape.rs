//! The population over time as goose's `--test-plan`: `"users,seconds;users,seconds;..."`.
//!
//! This exists because goose drives member arrival and departure: each step moves linearly to
//! `users` over `seconds` (whole seconds, goose 0.19's `TestPlan` parser), and a plan whose
//! last step has users never ends. A run split over several processes gives each a share of
//! the members but the same timings, so all processes ramp and stop together. With
//! `population.members_per_user = K` a goose user drives K members, so goose's counts are
//! members / K (rounded up) and each user spaces its members' arrivals out itself
//! ([`member_spacing`]).

use std::time::Duration;

use super::model::{Arrival, Phase, Population};

/// One goose test plan step: reach `users` over `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStep {
    /// Members running at the end of the step.
    pub users: usize,
    /// Length of the step in whole seconds.
    pub seconds: u64,
}

/// Goose's steps for `members` (this process's share of `population.members`): the
/// [`member_steps`] with each step's members counted in goose users of
/// `population.members_per_user` members (rounded up), over the same seconds.
pub(crate) fn load_steps(
    population: &Population,
    steady: Duration,
    members: usize,
) -> Vec<LoadStep> {
    let per_user = population.per_user();
    member_steps(population, steady, members)
        .into_iter()
        .map(|step| LoadStep {
            users: step.users.div_ceil(per_user),
            ..step
        })
        .collect()
}

/// The steps for `members` (this process's share of `population.members`), in members.
///
/// With `ramp = N`: up at N members/s, hold `steady`, down at N members/s, each ramp
/// `ceil(population.members / N)` seconds. With `phases`: each phase, its `to` scaled by
/// `members / population.members`, then an immediate stop if the last phase left members.
fn member_steps(population: &Population, steady: Duration, members: usize) -> Vec<LoadStep> {
    match &population.arrival {
        Arrival::Ramp(rate) => {
            let ramp = ramp_seconds(population.members, *rate);
            vec![
                LoadStep {
                    users: members,
                    seconds: ramp,
                },
                LoadStep {
                    users: members,
                    seconds: steady.as_secs(),
                },
                LoadStep {
                    users: 0,
                    seconds: ramp,
                },
            ]
        }
        Arrival::Phases(phases) => phase_steps(phases, population.members, members),
    }
}

/// Seconds to start `members` at `rate` per second, rounded up to goose's whole seconds.
fn ramp_seconds(members: u32, rate: f64) -> u64 {
    (f64::from(members) / rate).ceil() as u64
}

fn phase_steps(phases: &[Phase], planned: u32, members: usize) -> Vec<LoadStep> {
    let scale = |to: u32| -> usize {
        let scaled =
            (u128::from(to) * members as u128 + u128::from(planned) / 2) / u128::from(planned);
        scaled as usize
    };
    let mut users = 0;
    let mut steps: Vec<LoadStep> = phases
        .iter()
        .map(|phase| {
            let (to, over) = match *phase {
                Phase::Ramp { over, to } => (scale(to), over),
                Phase::Hold(hold) => (users, hold),
            };
            users = to;
            LoadStep {
                users,
                seconds: over.as_secs(),
            }
        })
        .collect();
    if users != 0 {
        // Goose keeps a last step with users running until cancelled: stop at once instead.
        steps.push(LoadStep {
            users: 0,
            seconds: 0,
        });
    }
    steps
}

/// The plan as `--test-plan` text.
pub(crate) fn test_plan_text(steps: &[LoadStep]) -> String {
    let parts: Vec<String> = steps
        .iter()
        .map(|s| format!("{},{}", s.users, s.seconds))
        .collect();
    parts.join(";")
}

/// Total length of the run for the whole population.
pub(crate) fn run_length(population: &Population, steady: Duration) -> Duration {
    let steps = member_steps(population, steady, population.members as usize);
    Duration::from_secs(steps.iter().map(|s| s.seconds).sum())
}

/// Time between two members' arrivals in the first rise of `members` (this process's share):
/// how far apart a goose user driving several members starts them, so members still arrive
/// at about the scenario's rate while goose starts users K times slower. With `ramp` this is
/// the ramp's own rate; with `phases`, the first rising phase's, used for every later phase
/// too (a later, faster phase has each user's members arrive a little slower than it says).
/// Zero when the first rise takes no time.
pub(crate) fn member_spacing(
    population: &Population,
    steady: Duration,
    members: usize,
) -> Duration {
    let mut before = 0;
    for step in member_steps(population, steady, members) {
        if step.users > before {
            let rise = (step.users - before) as u32;
            return Duration::from_secs(step.seconds) / rise;
        }
        before = step.users;
    }
    Duration::ZERO
}

/// Time from the start until the population first reaches its peak (the steady phase starts).
pub(crate) fn ramp_up(population: &Population, steady: Duration) -> Duration {
    let members = population.members as usize;
    let steps = member_steps(population, steady, members);
    let until_peak = steps
        .iter()
        .position(|s| s.users == members)
        .map_or(steps.len(), |i| i + 1);
    Duration::from_secs(steps[..until_peak].iter().map(|s| s.seconds).sum())
}

#[cfg(test)]
mod tests {
    use super::super::model::RoomSize;
    use super::*;

    fn population(arrival: Arrival) -> Population {
        Population {
            rooms: 4,
            members: 40,
            room_size: RoomSize::Fixed,
            arrival,
            groups: Vec::new(),
            members_per_user: 1,
        }
    }

    #[test]
    fn ramp_rounds_up_to_whole_seconds() {
        let steps = load_steps(
            &population(Arrival::Ramp(200.0)),
            Duration::from_secs(15),
            40,
        );
        assert_eq!(test_plan_text(&steps), "40,1;40,15;0,1");
        let steps = load_steps(&population(Arrival::Ramp(3.0)), Duration::from_secs(15), 40);
        assert_eq!(test_plan_text(&steps), "40,14;40,15;0,14");
    }

    #[test]
    fn a_share_of_members_keeps_the_timings() {
        let steps = load_steps(&population(Arrival::Ramp(4.0)), Duration::from_secs(30), 10);
        assert_eq!(test_plan_text(&steps), "10,10;10,30;0,10");
    }

    #[test]
    fn phases_scale_and_end_at_zero() {
        let pop = population(Arrival::Phases(phases()));
        let steps = load_steps(&pop, Duration::ZERO, 10);
        assert_eq!(test_plan_text(&steps), "5,5;5,10;10,5;10,30;0,0");
        assert_eq!(run_length(&pop, Duration::ZERO), Duration::from_secs(50));
        assert_eq!(ramp_up(&pop, Duration::ZERO), Duration::from_secs(20));
    }

    fn shared(arrival: Arrival, members_per_user: u32) -> Population {
        Population {
            members_per_user,
            ..population(arrival)
        }
    }

    fn phases() -> Vec<Phase> {
        vec![
            Phase::Ramp {
                over: Duration::from_secs(5),
                to: 20,
            },
            Phase::Hold(Duration::from_secs(10)),
            Phase::Ramp {
                over: Duration::from_secs(5),
                to: 40,
            },
            Phase::Hold(Duration::from_secs(30)),
        ]
    }

    #[test]
    fn several_members_per_user_count_users_rounded_up_over_the_same_seconds() {
        let steady = Duration::from_secs(30);
        let pop = shared(Arrival::Ramp(4.0), 4);
        assert_eq!(
            test_plan_text(&load_steps(&pop, steady, 40)),
            "10,10;10,30;0,10"
        );
        // A share that is not a multiple: the last user drives fewer members.
        assert_eq!(
            test_plan_text(&load_steps(&pop, steady, 10)),
            "3,10;3,30;0,10"
        );
        let pop = shared(Arrival::Phases(phases()), 3);
        assert_eq!(
            test_plan_text(&load_steps(&pop, Duration::ZERO, 10)),
            "2,5;2,10;4,5;4,30;0,0"
        );
        let text = test_plan_text(&load_steps(&pop, Duration::ZERO, 40));
        let parsed: goose::test_plan::TestPlan = text.parse().expect("goose refused the plan");
        assert_eq!(parsed.total_users(), 14, "{text}");
    }

    #[test]
    fn several_members_per_user_keep_the_run_in_members() {
        // 19 of 20 members would round to the peak's one user: the peak is still the 20th.
        let phases = vec![
            Phase::Ramp {
                over: Duration::from_secs(5),
                to: 19,
            },
            Phase::Ramp {
                over: Duration::from_secs(5),
                to: 40,
            },
            Phase::Hold(Duration::from_secs(10)),
        ];
        for per_user in [1, 40] {
            let pop = shared(Arrival::Phases(phases.clone()), per_user);
            assert_eq!(ramp_up(&pop, Duration::ZERO), Duration::from_secs(10));
            assert_eq!(run_length(&pop, Duration::ZERO), Duration::from_secs(20));
            let pop = shared(Arrival::Ramp(4.0), per_user);
            assert_eq!(
                ramp_up(&pop, Duration::from_secs(30)),
                Duration::from_secs(10)
            );
            assert_eq!(
                run_length(&pop, Duration::from_secs(30)),
                Duration::from_secs(50)
            );
        }
    }

    #[test]
    fn members_of_a_user_arrive_at_the_members_rate() {
        let steady = Duration::from_secs(30);
        let pop = shared(Arrival::Ramp(4.0), 4);
        // 40 members over 10 s; a process with a share of 10 spreads them over the same 10 s.
        assert_eq!(member_spacing(&pop, steady, 40), Duration::from_millis(250));
        assert_eq!(member_spacing(&pop, steady, 10), Duration::from_secs(1));
        // Phases: the first rise, 5 of 10 members over 5 s.
        let pop = shared(Arrival::Phases(phases()), 4);
        assert_eq!(
            member_spacing(&pop, Duration::ZERO, 10),
            Duration::from_secs(1)
        );
        let at_once = vec![
            Phase::Ramp {
                over: Duration::ZERO,
                to: 40,
            },
            Phase::Hold(Duration::from_secs(5)),
        ];
        let pop = shared(Arrival::Phases(at_once), 4);
        assert_eq!(member_spacing(&pop, Duration::ZERO, 40), Duration::ZERO);
    }

    #[test]
    fn goose_parses_the_plan() {
        let pop = population(Arrival::Ramp(200.0));
        let text = test_plan_text(&load_steps(&pop, Duration::from_secs(15), 40));
        let parsed: goose::test_plan::TestPlan = text.parse().expect("goose refused the plan");
        assert_eq!(parsed.steps, vec![(40, 1_000), (40, 15_000), (0, 1_000)]);
        assert_eq!(parsed.total_users(), 40);
    }
}
