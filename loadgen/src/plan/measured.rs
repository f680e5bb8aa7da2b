//! What a run cost, as `loadgen plan` reads it from results.json: each part of the cluster's
//! CPU during the run's send window and its memory at the peak, set against the deliveries,
//! messages and members of that window. Kept apart from the arithmetic of a plan so that every
//! refusal (a figure the file lacks) is decided here, once, before anything is computed.
//!
//! Definitions (docs/measurement.md, "Costs for a plan"): the send window is the timeline's
//! seconds with planned sends, from the first with the members at their peak; a component's CPU there is the mean of its samples whose whole
//! interval lies inside the window, placed on the run's clock by `resources.series_origin_s`.

use serde::Serialize;

use crate::results::{Component, Resources, Results, TargetKind, is_generator};

/// Samples a component needs inside the send window for its mean to mean something.
pub const MIN_WINDOW_SAMPLES: usize = 5;

/// A part of the system a plan sizes, and which components of `resources` make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `chat worker N` and `master` (a local stack), or a `--sample` name starting `chat`.
    Workers,
    /// `nginx` (master and workers), or a `--sample` name starting `nginx`.
    Nginx,
    /// `redis`, or a `--sample` name starting `redis`.
    Redis,
    /// The load generator's processes (`loadgen`, its parts).
    Generator,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Workers, Role::Nginx, Role::Redis, Role::Generator];

    /// How the plan names it.
    pub const fn label(self) -> &'static str {
        match self {
            Role::Workers => "chat workers",
            Role::Nginx => "nginx",
            Role::Redis => "Redis",
            Role::Generator => "load generator",
        }
    }

    /// The role of a component of `resources`; `None` for a name the plan cannot place.
    pub fn of(component: &str) -> Option<Role> {
        if is_generator(component) {
            Some(Role::Generator)
        } else if component.starts_with("chat") || component == "master" {
            Some(Role::Workers)
        } else if component.starts_with("nginx") {
            Some(Role::Nginx)
        } else if component.starts_with("redis") {
            Some(Role::Redis)
        } else {
            None
        }
    }

    /// What to do when the run sampled none of this role's processes.
    fn missing_hint(self) -> &'static str {
        match self {
            Role::Generator => "the load generator always samples itself: is this file edited?",
            Role::Workers => {
                "for a --target URL, name them: loadgen run --sample \"chat workers=PID\" \
                 (the cluster master's pid: its workers are sampled with it)"
            }
            Role::Nginx => {
                "for a --target URL, name it: loadgen run --sample nginx=PID (nginx's master \
                 pid: its workers are sampled with it)"
            }
            Role::Redis => "for a --target URL, name it: loadgen run --sample redis=PID",
        }
    }
}

/// One role's use of the machine during the send window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleUse {
    pub role: Role,
    /// The components of `resources` that make it.
    pub components: Vec<String>,
    /// Mean cores busy during the send window, its components added.
    pub cores: f64,
    /// The fewest window samples of one of its components.
    pub samples: usize,
    /// Its components' peak resident memory added, KiB (each component's own peak: an upper
    /// bound of their sum at any one moment).
    pub peak_rss_kib: u64,
}

/// The figures of one run a plan is made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    pub scenario: String,
    /// Where it ran: host names and their cores (`environment`).
    pub host: String,
    pub host_cores: u32,
    /// The send window, seconds since the run's start: `[from_s, to_s)`.
    pub window_from_s: u32,
    pub window_to_s: u32,
    /// First receipts per second in the window (`timeline[].deliveries`).
    pub deliveries_per_s: f64,
    /// Messages sent per second in the window (`timeline[].sends`).
    pub messages_per_s: f64,
    /// The most members connected in one second (`timeline[].members`).
    pub peak_members: u64,
    /// The scenario's rooms.
    pub rooms: u64,
    /// Chat worker processes (`workers[]`).
    pub worker_processes: u64,
    /// Rooms with members on a worker, added over workers, per room: how many workers each
    /// room's Redis channel reaches (`workers[].rooms`).
    pub workers_per_room: f64,
    /// The load generator used more CPU than the server (`resources.generator_bound`).
    pub generator_bound: bool,
    /// Per role, in [`Role::ALL`] order.
    pub uses: Vec<RoleUse>,
}

/// Why a results file cannot be planned from: a setup error (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

fn refuse<T>(message: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(message.into()))
}

impl Measured {
    /// Reads the figures a plan needs, refusing a run that lacks one or whose costs would
    /// mislead (faults, losses, the embedded worker).
    pub fn of(r: &Results) -> Result<Measured, Refused> {
        check_kind(r)?;
        let resources = sampled(r)?;
        let (from, to) = send_window(r)?;
        let seconds = f64::from(to - from);
        let in_window = r.timeline.iter().filter(|s| s.t >= from && s.t < to);
        let deliveries: u64 = in_window.clone().map(|s| s.deliveries).sum();
        let sends: u64 = in_window.map(|s| s.sends).sum();
        if deliveries == 0 || sends == 0 {
            return refuse(format!(
                "nothing was sent or delivered in the send window ({from}-{to} s): no cost per \
                 delivery can be measured"
            ));
        }
        let peak_members = r.timeline.iter().map(|s| s.members).max().unwrap_or(0);
        let rooms = scenario_rooms(r)?;
        let (worker_processes, workers_per_room) = room_spread(r, rooms)?;
        let uses = role_uses(resources, (from, to))?;
        Ok(Measured {
            scenario: r.scenario_name().unwrap_or("(unnamed)").to_owned(),
            host: r.environment.host.clone(),
            host_cores: r.environment.cores,
            window_from_s: from,
            window_to_s: to,
            deliveries_per_s: deliveries as f64 / seconds,
            messages_per_s: sends as f64 / seconds,
            peak_members,
            rooms,
            worker_processes,
            workers_per_room,
            generator_bound: resources.generator_bound,
            uses,
        })
    }

    pub fn role(&self, role: Role) -> &RoleUse {
        self.uses
            .iter()
            .find(|u| u.role == role)
            .expect("every role is measured")
    }

    /// CPU µs of `role` per delivery: its cores over the deliveries per second.
    pub fn us_per_delivery(&self, role: Role) -> f64 {
        self.role(role).cores / self.deliveries_per_s * 1e6
    }

    /// Messages Redis wrote to subscribed workers per second: each message reaches the
    /// workers its room spans.
    pub fn subscriber_deliveries_per_s(&self) -> f64 {
        self.messages_per_s * self.workers_per_room
    }

    /// Redis CPU µs per subscriber delivery (a PUBLISH's own cost folded in).
    pub fn redis_us_per_subscriber_delivery(&self) -> f64 {
        self.role(Role::Redis).cores / self.subscriber_deliveries_per_s() * 1e6
    }

    /// Peak resident KiB of `role` per member at the peak.
    pub fn kib_per_member(&self, role: Role) -> f64 {
        self.role(role).peak_rss_kib as f64 / self.peak_members as f64
    }

    /// Members per room at the peak.
    pub fn members_per_room(&self) -> f64 {
        self.peak_members as f64 / self.rooms as f64
    }
}

/// The measured costs per unit, as a plan uses them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Costs {
    pub workers_us_per_delivery: f64,
    pub nginx_us_per_delivery: f64,
    pub generator_us_per_delivery: f64,
    pub redis_us_per_subscriber_delivery: f64,
    pub workers_kib_per_member: f64,
    pub nginx_kib_per_member: f64,
    pub redis_kib_per_member: f64,
    pub generator_kib_per_member: f64,
}

impl Costs {
    pub fn of(m: &Measured) -> Costs {
        Costs {
            workers_us_per_delivery: m.us_per_delivery(Role::Workers),
            nginx_us_per_delivery: m.us_per_delivery(Role::Nginx),
            generator_us_per_delivery: m.us_per_delivery(Role::Generator),
            redis_us_per_subscriber_delivery: m.redis_us_per_subscriber_delivery(),
            workers_kib_per_member: m.kib_per_member(Role::Workers),
            nginx_kib_per_member: m.kib_per_member(Role::Nginx),
            redis_kib_per_member: m.kib_per_member(Role::Redis),
            generator_kib_per_member: m.kib_per_member(Role::Generator),
        }
    }
}

fn check_kind(r: &Results) -> Result<(), Refused> {
    if r.target == Some(TargetKind::Embedded) {
        return refuse(
            "this run measured the embedded worker (no Redis, no nginx; the worker's CPU is \
             inside loadgen's): plan from a run of the local stack (apt-get install -y \
             redis-server nginx) or of a URL target with --sample",
        );
    }
    if !r.faults.is_empty() {
        return refuse(format!(
            "this run injected {} fault(s): its costs are those of a cluster recovering; plan \
             from a run without faults",
            r.faults.len()
        ));
    }
    if r.deliveries.lost > 0 {
        return refuse(format!(
            "this run lost {} deliveries: its costs are those of an overloaded or failing \
             cluster; plan from a run that delivered everything on time",
            r.deliveries.lost
        ));
    }
    Ok(())
}

fn sampled(r: &Results) -> Result<&Resources, Refused> {
    let Some(resources) = &r.resources else {
        return refuse(
            "no CPU samples (`resources`) in this file: written by an older loadgen; run again",
        );
    };
    if resources.series_origin_s.is_none() {
        return refuse(
            "`resources.series_origin_s` is missing: the CPU samples cannot be lined up with \
             the run's timeline (written by an older loadgen); run again",
        );
    }
    Ok(resources)
}

/// The share of the peak members that makes a second part of the steady state.
pub const STEADY_SHARE_OF_PEAK: f64 = 0.99;

/// The send window: from the first second with planned sends and members at the peak (at
/// least [`STEADY_SHARE_OF_PEAK`] of it: a join ramp that lags behind its schedule on a busy
/// machine still connects members while the first messages go out) to the last second with
/// planned sends, `[first, last + 1)`.
fn send_window(r: &Results) -> Result<(u32, u32), Refused> {
    let peak = r.timeline.iter().map(|s| s.members).max().unwrap_or(0);
    let steady = peak as f64 * STEADY_SHARE_OF_PEAK;
    let first = r
        .timeline
        .iter()
        .find(|s| s.planned > 0 && s.members as f64 >= steady);
    let last = r.timeline.iter().rev().find(|s| s.planned > 0);
    match (first, last) {
        (Some(first), Some(last)) if first.t <= last.t => Ok((first.t, last.t + 1)),
        _ => refuse(
            "the timeline has no second with planned sends while the members were at their \
             peak (a run without messages, or a file written before `timeline[].planned` \
             existed): nothing to plan from",
        ),
    }
}

fn scenario_rooms(r: &Results) -> Result<u64, Refused> {
    match r.scenario["population"]["rooms"].as_u64() {
        Some(rooms) if rooms > 0 => Ok(rooms),
        _ => refuse("the scenario echo has no `population.rooms`"),
    }
}

/// Worker processes, and workers per room (`workers[].rooms` added, per room).
fn room_spread(r: &Results, rooms: u64) -> Result<(u64, f64), Refused> {
    let spanned: u64 = r.workers.iter().map(|w| w.rooms).sum();
    if r.workers.is_empty() || spanned == 0 {
        return refuse(
            "no per-worker room counts (`workers[].rooms`): how far rooms spread over workers, \
             which sets Redis's work, is unknown; for a --target URL run with --admin",
        );
    }
    Ok((r.workers.len() as u64, spanned as f64 / rooms as f64))
}

/// Each role's components, their mean cores in the window and their peak memory.
fn role_uses(resources: &Resources, window: (u32, u32)) -> Result<Vec<RoleUse>, Refused> {
    let origin = resources.series_origin_s.unwrap_or(0.0);
    let mut unknown = Vec::new();
    let mut uses: Vec<RoleUse> = Role::ALL
        .iter()
        .map(|&role| RoleUse {
            role,
            components: Vec::new(),
            cores: 0.0,
            samples: usize::MAX,
            peak_rss_kib: 0,
        })
        .collect();
    for c in &resources.components {
        let Some(role) = Role::of(&c.name) else {
            unknown.push(c.name.as_str());
            continue;
        };
        let (cores, samples) = window_cores(c, origin, window);
        if samples < MIN_WINDOW_SAMPLES {
            return refuse(format!(
                "component {:?} has {samples} CPU samples inside the send window ({}-{} s), \
                 fewer than {MIN_WINDOW_SAMPLES}: run with a longer send window (--duration)",
                c.name, window.0, window.1
            ));
        }
        let slot = &mut uses[Role::ALL.iter().position(|r| *r == role).unwrap_or(0)];
        slot.components.push(c.name.clone());
        slot.cores += cores;
        slot.samples = slot.samples.min(samples);
        slot.peak_rss_kib += c.peak_rss_kib;
    }
    if !unknown.is_empty() {
        return refuse(format!(
            "components {unknown:?} of `resources` are none of chat workers (`chat...`, \
             `master`), `nginx...`, `redis...`, `loadgen`: their CPU cannot be placed in a plan"
        ));
    }
    for u in &uses {
        if u.components.is_empty() {
            return refuse(format!(
                "no {} among the sampled processes (`resources`): {}",
                u.role.label(),
                u.role.missing_hint()
            ));
        }
        if u.cores <= 0.0 {
            return refuse(format!(
                "{} used no measurable CPU in the send window: the run's load is too small to \
                 measure its cost; run more members or a higher rate",
                u.role.label()
            ));
        }
    }
    Ok(uses)
}

/// A component's mean cores over the samples whose whole interval (from the previous sample,
/// or from the start of sampling, to this one) lies inside `[from, to)` on the run's clock;
/// and how many there were.
pub fn window_cores(c: &Component, origin_s: f64, (from, to): (u32, u32)) -> (f64, usize) {
    let (from, to) = (f64::from(from), f64::from(to));
    // Sample times are rounded to the millisecond: a sample that ends "at" the window's end
    // may read a millisecond past it.
    const SLACK_S: f64 = 0.002;
    let mut busy_s = 0.0;
    let mut span_s = 0.0;
    let mut samples = 0;
    let mut previous = 0.0;
    for s in &c.series {
        let (start, end) = (previous + origin_s, s.t + origin_s);
        previous = s.t;
        if start >= from - SLACK_S && end <= to + SLACK_S && end > start {
            busy_s += s.cpu_percent / 100.0 * (end - start);
            span_s += end - start;
            samples += 1;
        }
    }
    let cores = if span_s > 0.0 { busy_s / span_s } else { 0.0 };
    (cores, samples)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::results::{Environment, ResourceSample, SecondStats, WorkerStats};

    /// A component sampled every second from 1 s to `n` s of its sampling at `cpu(i)` percent.
    fn component(name: &str, n: u32, cpu: impl Fn(u32) -> f64, rss_kib: u64) -> Component {
        Component {
            name: name.into(),
            cpu_seconds: 0.0,
            peak_rss_kib: rss_kib,
            series: (1..=n)
                .map(|i| ResourceSample {
                    t: f64::from(i),
                    cpu_percent: cpu(i),
                    rss_kib,
                })
                .collect(),
        }
    }

    #[test]
    fn window_cores_take_only_samples_wholly_inside_the_window() {
        // Sampling started 0.5 s into the run: sample i covers run time (i - 0.5, i + 0.5].
        // The window [3, 7) holds the intervals ending at 4.5, 5.5, 6.5: samples 4, 5, 6.
        let c = component("redis", 10, |i| f64::from(i) * 10.0, 1);
        let (cores, samples) = window_cores(&c, 0.5, (3, 7));
        assert_eq!(
            samples, 3,
            "(2.5, 3.5] starts before 3, (6.5, 7.5] ends after 7"
        );
        // At 40%, 50%, 60%: 0.5 cores.
        assert!((cores - 0.5).abs() < 1e-9, "{cores}");
        // Started 0.5 s before the run (a split run's parent): (i - 1.5, i - 0.5], samples 5-7.
        let (cores, samples) = window_cores(&c, -0.5, (3, 7));
        assert_eq!(samples, 3);
        assert!((cores - 0.6).abs() < 1e-9, "{cores}");
        // Lined up with the run (origin 0): samples 4..=7 cover (3, 7].
        let (cores, samples) = window_cores(&c, 0.0, (3, 7));
        assert_eq!(samples, 4);
        assert!((cores - 0.55).abs() < 1e-9, "{cores}");
    }

    /// A local-stack run: 2 workers, 300 members in 10 rooms, sending from 5 s to 25 s.
    fn run() -> Results {
        let mut r = Results::new(
            serde_json::json!({"name": "t", "population": {"rooms": 10, "members": 300}}),
            Environment::of_machine("h".into(), 2, "linux".into(), "abc".into()),
            UNIX_EPOCH,
            Duration::from_secs(30),
        );
        r.target = Some(TargetKind::LocalStack);
        r.timeline = (0..30)
            .map(|t| {
                let sending = (5..25).contains(&t);
                SecondStats {
                    t,
                    members: if t < 3 { 100 * u64::from(t) } else { 300 },
                    planned: if sending { 100 } else { 0 },
                    sends: if sending { 100 } else { 0 },
                    // Outside the window: joins' echoes and the drain, not counted.
                    deliveries: if sending { 3_000 } else { 777 },
                    ..SecondStats::default()
                }
            })
            .collect();
        r.workers = (0..2)
            .map(|index| WorkerStats {
                index,
                rooms: if index == 0 { 10 } else { 5 },
                ..WorkerStats::default()
            })
            .collect();
        // Busy only inside the window, so a wrong window shows.
        let busy = |pct: f64| move |i: u32| if (6..=25).contains(&i) { pct } else { 90.0 };
        let components = vec![
            component("loadgen", 30, busy(60.0), 30_000),
            component("chat worker 0", 30, busy(20.0), 9_000),
            component("chat worker 1", 30, busy(10.0), 6_000),
            component("master", 30, busy(0.0), 1_000),
            component("nginx", 30, busy(15.0), 2_000),
            component("redis", 30, busy(3.0), 3_000),
        ];
        r.resources = Some(Resources::new(1.0, components).with_series_origin(0.0));
        r
    }

    #[test]
    fn measures_each_role_in_the_send_window() {
        let m = Measured::of(&run()).expect("plannable");
        assert_eq!((m.window_from_s, m.window_to_s), (5, 25));
        assert_eq!(m.deliveries_per_s, 3_000.0);
        assert_eq!(m.messages_per_s, 100.0);
        assert_eq!(m.peak_members, 300);
        assert_eq!(m.workers_per_room, 1.5);
        assert_eq!(m.worker_processes, 2);
        assert_eq!(m.members_per_room(), 30.0);
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // Workers: 0.2 + 0.1 + 0 cores over 3,000 deliveries/s = 100 µs each.
        assert!(near(m.role(Role::Workers).cores, 0.3));
        assert_eq!(
            m.role(Role::Workers).components,
            ["chat worker 0", "chat worker 1", "master"]
        );
        assert!(near(m.us_per_delivery(Role::Workers), 100.0));
        assert!(near(m.us_per_delivery(Role::Nginx), 50.0));
        assert!(near(m.us_per_delivery(Role::Generator), 200.0));
        // Redis: 0.03 cores over 100 messages/s × 1.5 workers per room = 200 µs each.
        assert!(near(m.subscriber_deliveries_per_s(), 150.0));
        assert!(near(m.redis_us_per_subscriber_delivery(), 200.0));
        // Memory: peaks added, per peak member.
        assert!(near(m.kib_per_member(Role::Workers), 16_000.0 / 300.0));
        assert!(near(m.kib_per_member(Role::Redis), 10.0));
    }

    fn refusal(r: &Results) -> String {
        Measured::of(r).expect_err("refused").to_string()
    }

    #[test]
    fn refuses_files_without_the_figures_a_plan_needs() {
        let mut r = run();
        r.resources = None;
        assert!(refusal(&r).contains("no CPU samples"));

        let mut r = run();
        r.resources.as_mut().unwrap().series_origin_s = None;
        assert!(refusal(&r).contains("series_origin_s"));

        // A URL target where nginx was not sampled.
        let mut r = run();
        r.target = Some(TargetKind::Url);
        r.resources
            .as_mut()
            .unwrap()
            .components
            .retain(|c| c.name != "nginx");
        let message = refusal(&r);
        assert!(
            message.contains("no nginx") && message.contains("--sample nginx=PID"),
            "{message}"
        );

        let mut r = run();
        r.resources.as_mut().unwrap().components[1].name = "node seed".into();
        assert!(refusal(&r).contains("\"node seed\""));

        let mut r = run();
        r.workers.clear();
        assert!(refusal(&r).contains("--admin"));

        let mut r = run();
        r.target = Some(TargetKind::Embedded);
        assert!(refusal(&r).contains("embedded"));

        let mut r = run();
        r.deliveries.lost = 3;
        assert!(refusal(&r).contains("lost 3"));

        let mut r = run();
        for s in &mut r.timeline {
            s.planned = 0;
        }
        assert!(refusal(&r).contains("no second with planned sends"));

        // Members still joining when the sends start: the window waits for the peak.
        let mut r = run();
        for s in &mut r.timeline[5..7] {
            s.members = 296;
        }
        let m = Measured::of(&r).expect("plannable");
        assert_eq!((m.window_from_s, m.window_to_s), (7, 25));

        // A send window of 4 seconds holds at most 4 whole samples.
        let mut r = run();
        for s in &mut r.timeline {
            s.planned = u64::from((5..9).contains(&s.t));
        }
        assert!(refusal(&r).contains("fewer than 5"));

        // Redis idle in the window: its cost cannot be measured.
        let mut r = run();
        let redis = r.resources.as_mut().unwrap().components.last_mut().unwrap();
        for s in &mut redis.series {
            s.cpu_percent = if (6..=25).contains(&(s.t as u32)) {
                0.0
            } else {
                50.0
            };
        }
        assert!(refusal(&r).contains("Redis used no measurable CPU"));
    }

    #[test]
    fn places_components_by_name() {
        assert_eq!(Role::of("chat worker 3"), Some(Role::Workers));
        assert_eq!(Role::of("chat workers"), Some(Role::Workers));
        assert_eq!(Role::of("master"), Some(Role::Workers));
        assert_eq!(Role::of("nginx"), Some(Role::Nginx));
        assert_eq!(Role::of("redis"), Some(Role::Redis));
        assert_eq!(Role::of("loadgen"), Some(Role::Generator));
        assert_eq!(Role::of("node seed"), None);
    }
}
