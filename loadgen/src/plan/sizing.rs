//! The arithmetic of a plan: a target load (members, rooms, rate), a run's measured costs and
//! the stated assumptions give the cores, processes, memory, Redis shards and generator hosts
//! the target needs. Pure functions of their inputs, so that tests can check every formula
//! with figures chosen to tell a wrong one apart.

use serde::Serialize;

use super::measured::{Measured, Role};

/// The load to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub members: u64,
    pub rooms: u64,
    /// Messages per member per second.
    pub rate_per_member: f64,
}

/// What the plan takes for granted beyond the measured figures; each is a flag.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assumptions {
    /// CPU and memory are provisioned at this multiple of the computed need (≥ 1).
    pub headroom: f64,
    /// Open files one process may hold.
    pub open_files: u64,
    /// The share of a process's open files given to members' connections (the rest: a polling
    /// member's second connection, listeners, logs, Redis).
    pub member_share_of_open_files: f64,
    /// Client ports per (source address, nginx address) pair: the local port range.
    pub ports_per_address: u64,
    /// Source addresses each generator host connects from.
    pub source_addresses_per_host: u64,
    /// Cores of one generator host.
    pub host_cores: u64,
    /// Memory of one generator host, GiB.
    pub host_memory_gib: f64,
}

/// Open files a member takes in each process it passes through.
pub const fn files_per_member(role: Role) -> u64 {
    match role {
        // The client's side and the worker's side of nginx's proxied connection.
        Role::Nginx => 2,
        Role::Workers | Role::Generator => 1,
        // Redis holds workers' connections, not members'.
        Role::Redis => 0,
    }
}

/// The target's traffic in the steady state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Load {
    /// Members per room (rooms of equal size).
    pub members_per_room: f64,
    /// `members × rate`.
    pub messages_per_s: f64,
    /// `messages × members per room`: every member of a room gets each message, its sender too.
    pub deliveries_per_s: f64,
}

impl Load {
    pub fn of(t: &Target) -> Load {
        let members_per_room = t.members as f64 / t.rooms as f64;
        let messages_per_s = t.members as f64 * t.rate_per_member;
        Load {
            members_per_room,
            messages_per_s,
            deliveries_per_s: messages_per_s * members_per_room,
        }
    }
}

/// What one part of the system needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Need {
    /// CPU, cores: the load × the measured cost × headroom.
    pub cores: f64,
    /// Resident memory, GiB: members × the measured memory per member × headroom.
    pub memory_gib: f64,
    /// Processes the CPU alone calls for (one per core; for Redis one shard per core).
    pub processes_by_cpu: u64,
    /// Processes the open-file limit alone calls for (0 where members hold no files).
    pub processes_by_open_files: u64,
    /// The larger of the two: chat worker processes, nginx worker processes, Redis shards,
    /// loadgen processes.
    pub processes: u64,
}

/// Generator hosts, by each limit of one host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hosts {
    pub by_cpu: u64,
    pub by_memory: u64,
    /// Members over client ports: ports per address × source addresses per host.
    pub by_ports: u64,
    /// The largest of the three.
    pub hosts: u64,
}

/// Redis's share of a plan: how many workers a room's channel reaches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fanout {
    /// Expected workers a room spans ([`workers_per_room`]).
    pub workers_per_room: f64,
    /// `messages × workers per room`: messages Redis writes to subscribed workers.
    pub subscriber_deliveries_per_s: f64,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub target: Target,
    pub load: Load,
    pub fanout: Fanout,
    pub assumptions: Assumptions,
    pub workers: Need,
    pub nginx: Need,
    pub redis: Need,
    pub generator: Need,
    pub generator_hosts: Hosts,
}

/// The expected number of distinct workers among a room's members when each member lands on
/// one of `workers` workers at random (nginx `ip_hash` over many client networks):
/// `W × (1 − (1 − 1/W)^S)`.
pub fn workers_per_room(workers: u64, members_per_room: f64) -> f64 {
    if workers == 0 {
        return 0.0;
    }
    let w = workers as f64;
    w * (1.0 - (1.0 - 1.0 / w).powf(members_per_room))
}

/// Members one process may hold: its open files' member share over the files each member takes.
pub fn members_per_process(role: Role, a: &Assumptions) -> u64 {
    let files = files_per_member(role);
    if files == 0 {
        return u64::MAX;
    }
    ((a.open_files as f64 * a.member_share_of_open_files) / files as f64).floor() as u64
}

/// The whole number at or above `x`, float noise below it ignored (`200.00000000000003` is
/// 200 cores, not 201).
pub fn whole(x: f64) -> u64 {
    (x - 1e-9).ceil().max(0.0) as u64
}

/// One part's need from the cores its load takes (before headroom) and its memory per member.
fn need(role: Role, cores: f64, kib_per_member: f64, t: &Target, a: &Assumptions) -> Need {
    let cores = cores * a.headroom;
    let memory_gib = t.members as f64 * kib_per_member * a.headroom / (1024.0 * 1024.0);
    // Not for the generator: loadgen runs many threads in a process, so its processes follow
    // its open files only.
    let processes_by_cpu = match role {
        Role::Generator => 0,
        _ => whole(cores).max(1),
    };
    let processes_by_open_files = match members_per_process(role, a) {
        u64::MAX => 0,
        per => t.members.div_ceil(per.max(1)),
    };
    Need {
        cores,
        memory_gib,
        processes_by_cpu,
        processes_by_open_files,
        processes: processes_by_cpu.max(processes_by_open_files),
    }
}

fn hosts(generator: &Need, t: &Target, a: &Assumptions) -> Hosts {
    let by_cpu = whole(generator.cores / a.host_cores as f64);
    let by_memory = whole(generator.memory_gib / a.host_memory_gib);
    let by_ports = t
        .members
        .div_ceil((a.ports_per_address * a.source_addresses_per_host).max(1));
    Hosts {
        by_cpu,
        by_memory,
        by_ports,
        hosts: by_cpu.max(by_memory).max(by_ports).max(1),
    }
}

/// The plan for `target` from the costs `m` measured, under `a`.
pub fn plan(target: Target, m: &Measured, a: Assumptions) -> Plan {
    let load = Load::of(&target);
    let cpu = |role: Role| load.deliveries_per_s * m.us_per_delivery(role) / 1e6;
    let workers = need(
        Role::Workers,
        cpu(Role::Workers),
        m.kib_per_member(Role::Workers),
        &target,
        &a,
    );
    let spread = workers_per_room(workers.processes, load.members_per_room);
    let fanout = Fanout {
        workers_per_room: spread,
        subscriber_deliveries_per_s: load.messages_per_s * spread,
    };
    let redis_cores =
        fanout.subscriber_deliveries_per_s * m.redis_us_per_subscriber_delivery() / 1e6;
    let redis = need(
        Role::Redis,
        redis_cores,
        m.kib_per_member(Role::Redis),
        &target,
        &a,
    );
    let nginx = need(
        Role::Nginx,
        cpu(Role::Nginx),
        m.kib_per_member(Role::Nginx),
        &target,
        &a,
    );
    let generator = need(
        Role::Generator,
        cpu(Role::Generator),
        m.kib_per_member(Role::Generator),
        &target,
        &a,
    );
    Plan {
        target,
        load,
        fanout,
        assumptions: a,
        workers,
        nginx,
        redis,
        generator_hosts: hosts(&generator, &target, &a),
        generator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::measured::RoleUse;

    fn assumptions() -> Assumptions {
        Assumptions {
            headroom: 2.0,
            open_files: 20_000,
            member_share_of_open_files: 0.75,
            ports_per_address: 25_000,
            source_addresses_per_host: 2,
            host_cores: 16,
            host_memory_gib: 64.0,
        }
    }

    /// A run of 1,000 members in 10 rooms: 10,000 deliveries/s of 100 messages/s, rooms spread
    /// over 1.6 workers each; each role's cores and peak memory distinct.
    fn measured() -> Measured {
        let role = |role, cores, peak_rss_kib| RoleUse {
            role,
            components: vec![role_name(role)],
            cores,
            samples: 30,
            peak_rss_kib,
        };
        Measured {
            scenario: "t".into(),
            host: "h".into(),
            host_cores: 2,
            window_from_s: 5,
            window_to_s: 35,
            deliveries_per_s: 10_000.0,
            messages_per_s: 100.0,
            peak_members: 1_000,
            rooms: 10,
            worker_processes: 2,
            workers_per_room: 1.6,
            generator_bound: false,
            uses: vec![
                role(Role::Workers, 0.4, 40_000),   // 40 µs/delivery, 40 KiB/member
                role(Role::Nginx, 0.1, 20_000),     // 10 µs, 20 KiB
                role(Role::Redis, 0.032, 5_000),    // 200 µs per subscriber delivery, 5 KiB
                role(Role::Generator, 0.3, 12_000), // 30 µs, 12 KiB
            ],
        }
    }

    fn role_name(role: Role) -> String {
        role.label().into()
    }

    fn target() -> Target {
        // 1,000,000 members in rooms of 50, one message every 20 s each.
        Target {
            members: 1_000_000,
            rooms: 20_000,
            rate_per_member: 0.05,
        }
    }

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn the_load_is_messages_times_room_size() {
        let load = Load::of(&target());
        assert_eq!(load.members_per_room, 50.0);
        assert_eq!(load.messages_per_s, 50_000.0);
        // Not members × rate (50,000), not × rooms: × members per room.
        assert_eq!(load.deliveries_per_s, 2_500_000.0);
    }

    #[test]
    fn rooms_span_the_expected_number_of_workers() {
        // One member: one worker. Two workers, rooms of 100: both, all but surely.
        assert!(near(workers_per_room(7, 1.0), 1.0));
        assert!(near(
            workers_per_room(2, 100.0),
            2.0 * (1.0 - 0.5f64.powi(100))
        ));
        // 100 workers, rooms of 100: 100 × (1 − 0.99^100) = 63.4, not 100, not 1.
        assert!(near(
            workers_per_room(100, 100.0),
            100.0 * (1.0 - 0.99f64.powi(100))
        ));
        assert!((workers_per_room(100, 100.0) - 63.4).abs() < 0.1);
        assert_eq!(workers_per_room(0, 10.0), 0.0);
    }

    #[test]
    fn each_part_needs_its_cost_times_the_load_times_headroom() {
        let p = plan(target(), &measured(), assumptions());
        // Workers: 2.5M deliveries/s × 40 µs = 100 cores, × 2 headroom = 200.
        assert!(near(p.workers.cores, 200.0), "{:?}", p.workers);
        assert_eq!(p.workers.processes_by_cpu, 200);
        // 15,000 members per worker process (20,000 × 0.75 / 1 file): 67.
        assert_eq!(p.workers.processes_by_open_files, 67);
        assert_eq!(p.workers.processes, 200);
        // 1M members × 40 KiB × 2 = 80,000,000 KiB = 76.29 GiB.
        assert!(near(p.workers.memory_gib, 80_000_000.0 / 1_048_576.0));
        // nginx: 2.5M × 10 µs × 2 = 50 cores; 7,500 members per process (2 files each): 134.
        assert!(near(p.nginx.cores, 50.0));
        assert_eq!(p.nginx.processes_by_open_files, 134);
        assert_eq!(p.nginx.processes, 134);
        assert!(near(p.nginx.memory_gib, 40_000_000.0 / 1_048_576.0));
        // Generator: 2.5M × 30 µs × 2 = 150 cores; 67 processes (open files only).
        assert!(near(p.generator.cores, 150.0));
        assert_eq!(p.generator.processes_by_cpu, 0);
        assert_eq!(p.generator.processes, 67);
        assert!(near(p.generator.memory_gib, 24_000_000.0 / 1_048_576.0));
    }

    #[test]
    fn redis_follows_the_workers_each_room_reaches() {
        let p = plan(target(), &measured(), assumptions());
        // 200 worker processes, rooms of 50: each message reaches 200 × (1 − 0.995^50) workers.
        let spread = 200.0 * (1.0 - (1.0 - 1.0 / 200.0f64).powi(50));
        assert!(near(p.fanout.workers_per_room, spread));
        assert!(near(
            p.fanout.subscriber_deliveries_per_s,
            50_000.0 * spread
        ));
        // × 200 µs per subscriber delivery (0.032 cores / (100 messages/s × 1.6)) × 2 headroom.
        let cores = 50_000.0 * spread * 200e-6 * 2.0;
        assert!(near(p.redis.cores, cores), "{} vs {cores}", p.redis.cores);
        assert_eq!(p.redis.processes, whole(cores));
        assert_eq!(p.redis.processes_by_open_files, 0);
        assert!(near(p.redis.memory_gib, 10_000_000.0 / 1_048_576.0));
    }

    #[test]
    fn generator_hosts_take_the_tightest_limit() {
        let p = plan(target(), &measured(), assumptions());
        // 150 cores / 16 = 10 hosts; 22.9 GiB / 64 = 1; 1M members / (25,000 × 2) = 20.
        let h = p.generator_hosts;
        assert_eq!(
            (h.by_cpu, h.by_memory, h.by_ports, h.hosts),
            (10, 1, 20, 20)
        );
        // One source address each: 40 hosts.
        let one = Assumptions {
            source_addresses_per_host: 1,
            ..assumptions()
        };
        assert_eq!(plan(target(), &measured(), one).generator_hosts.hosts, 40);
        // Small hosts: the CPU binds (150 / 4 = 38 > 20).
        let small = Assumptions {
            host_cores: 4,
            ..assumptions()
        };
        let h = plan(target(), &measured(), small).generator_hosts;
        assert_eq!((h.by_cpu, h.hosts), (38, 38));
    }

    #[test]
    fn open_files_bind_when_the_cpu_does_not() {
        // A tenth of the rate: 10 worker cores, but still 67 processes for the open files.
        let quiet = Target {
            rate_per_member: 0.005,
            ..target()
        };
        let p = plan(quiet, &measured(), assumptions());
        assert!(near(p.workers.cores, 20.0));
        assert_eq!(p.workers.processes_by_cpu, 20);
        assert_eq!(p.workers.processes, 67);
        // Redis then spreads over 67 workers per room of 50 at most.
        let spread = 67.0 * (1.0 - (1.0 - 1.0 / 67.0f64).powi(50));
        assert!(near(p.fanout.workers_per_room, spread));
        // Headroom 1: exactly the measured cost.
        let bare = Assumptions {
            headroom: 1.0,
            ..assumptions()
        };
        assert!(near(plan(quiet, &measured(), bare).nginx.cores, 2.5));
    }
}
