//! The checks between keys and on ranges that serde cannot make, turning the file-shaped
//! [`RawScenario`] into the typed [`Scenario`].
//!
//! This exists so that every impossible scenario (no members, more rooms than members, shares
//! not adding up, faults against a server we did not start, ...) is refused before anything
//! starts, each refusal naming the key to fix. Defaults are filled in here too, in one place.

use std::time::Duration;

use roomstorm_protocol::{DEFAULT_MAX_TEXT_BYTES, MAX_ROOM_ID_LEN};

use super::error::Problem;
use super::locate::KeyPath;
use super::model::*;
use super::raw::*;
use super::units::format_duration;
use super::{Metric, Threshold};
use super::{Scenario, shape};

/// Default `traffic.deadline`.
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// Default `traffic.message_size`, in bytes.
pub(crate) const DEFAULT_MESSAGE_SIZE: usize = 64;
/// Default `target.local` worker and nginx worker counts.
pub(crate) const DEFAULT_WORKERS: u32 = 2;
/// Most workers of either kind a local stack may have (two cores here; this is a typo guard).
const MAX_WORKERS: u32 = 64;
/// Masters of a local Redis Cluster: Redis needs 3 for a majority; each takes 2 processes.
const REDIS_CLUSTER_MASTERS: std::ops::RangeInclusive<u32> = 3..=16;
/// A per-member rate above this cannot be scheduled at millisecond resolution.
const MAX_RATE: f64 = 1000.0;
/// Shares may miss 1 by this much (0.1 + 0.2 + 0.7 in floats).
const SHARE_TOLERANCE: f64 = 1e-6;

type Checked<T> = Result<T, Problem>;

/// Checks `raw` and builds the typed scenario (its origin is attached by the caller).
pub(crate) fn validate(raw: &RawScenario) -> Checked<Scenario> {
    let mut population = population(&raw.population)?;
    check_name(&raw.name, population.rooms)?;
    let duration = steady_duration(raw, &population.arrival)?;
    let target = target(&raw.target)?;
    let traffic = traffic(&raw.traffic, &population.arrival, duration)?;
    let run_length = shape::run_length(&population, duration);
    let faults = faults(&raw.faults, &target, run_length)?;
    let mut thresholds = thresholds(&raw.thresholds)?;
    let env = |name: &str| std::env::var(name).ok();
    let protocol = super::protocol::profile(raw.protocol.as_ref(), &env)?;
    population.groups = super::groups::groups(
        raw.population.groups.as_deref(),
        (&traffic, &protocol),
        population.members,
        &env,
    )?;
    // A profile of the author's own is checked by the run too: an event it cannot place
    // fails the run unless the file says how many are fine.
    if !protocol.is_builtin() && !thresholds.iter().any(|t| t.metric == Metric::Unmatched) {
        thresholds.push(
            Threshold::parse(Metric::Unmatched, "== 0")
                .map_err(|message| Problem::new(at(&["thresholds", "unmatched"]), message))?,
        );
    }
    Ok(Scenario {
        name: raw.name.clone(),
        description: raw.description.clone().unwrap_or_default(),
        duration,
        seed: raw.seed.unwrap_or(0),
        target,
        population,
        traffic,
        faults,
        thresholds,
        protocol,
        origin: Default::default(),
    })
}

fn at(keys: &[&str]) -> KeyPath {
    KeyPath::of(keys)
}

fn problem<T>(path: KeyPath, message: impl Into<String>) -> Checked<T> {
    Err(Problem::new(path, message))
}

/// The name goes into every room id (`NAME-r007`), so it must be room-id safe and short enough.
fn check_name(name: &str, rooms: u32) -> Checked<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if name.is_empty() || !name.chars().all(allowed) {
        return problem(
            at(&["name"]),
            "must be 1 or more of A-Z a-z 0-9 _ . : - (it prefixes every room id)",
        );
    }
    let digits = rooms.saturating_sub(1).max(1).ilog10() as usize + 1;
    let longest_room_id = name.len() + "-r".len() + digits.max(3);
    if longest_room_id > MAX_ROOM_ID_LEN {
        let most = MAX_ROOM_ID_LEN - 2 - digits.max(3);
        return problem(
            at(&["name"]),
            format!(
                "is too long: room ids are NAME-rNNN, at most {MAX_ROOM_ID_LEN} characters, so at most {most} here"
            ),
        );
    }
    Ok(())
}

/// `duration`: required with `population.ramp`; with `population.phases` the phases give the
/// shape and the steady length is the sum of their holds.
fn steady_duration(raw: &RawScenario, arrival: &Arrival) -> Checked<Duration> {
    let path = at(&["duration"]);
    match (arrival, raw.duration) {
        (Arrival::Ramp(_), None) => problem(
            path,
            "missing required key (the steady phase length, e.g. \"30s\")",
        ),
        (Arrival::Ramp(_), Some(DurationText(d))) => {
            whole_seconds(&path, d)?;
            positive(&path, d)?;
            Ok(d)
        }
        (Arrival::Phases(_), Some(_)) => problem(
            path,
            "not allowed with population.phases (their holds give the steady length); remove one",
        ),
        (Arrival::Phases(phases), None) => Ok(phases
            .iter()
            .map(|p| match p {
                Phase::Hold(d) => *d,
                Phase::Ramp { .. } => Duration::ZERO,
            })
            .sum()),
    }
}

/// Goose's test plan counts whole seconds; refuse what it would silently round.
fn whole_seconds(path: &KeyPath, duration: Duration) -> Checked<()> {
    if duration.subsec_nanos() == 0 {
        Ok(())
    } else {
        problem(
            path.clone(),
            format!(
                "{} is not whole seconds (goose's test plan counts whole seconds)",
                format_duration(duration)
            ),
        )
    }
}

fn positive(path: &KeyPath, duration: Duration) -> Checked<()> {
    if duration.is_zero() {
        problem(path.clone(), "must be longer than 0s")
    } else {
        Ok(())
    }
}

/// A finite number in `[low, high]`.
fn in_range(path: KeyPath, value: f64, low: f64, high: f64) -> Checked<f64> {
    if value.is_finite() && (low..=high).contains(&value) {
        Ok(value)
    } else {
        problem(
            path,
            format!("{value} is out of range; allowed: {low} to {high}"),
        )
    }
}

fn target(raw: &RawTarget) -> Checked<Target> {
    let endpoint = match (&raw.url, &raw.local) {
        (Some(_), Some(_)) => {
            return problem(
                at(&["target", "local"]),
                "set either target.url (a running server) or target.local (the local stack), not both",
            );
        }
        (None, None) => {
            return problem(
                at(&["target"]),
                "missing target.url (a running server) or target.local (the local stack)",
            );
        }
        (Some(url), None) => Endpoint::Url(check_url(url)?),
        (None, Some(local)) => Endpoint::Local(local_stack(local)?),
    };
    let client_address = client_address(raw.client_address, &endpoint)?;
    Ok(Target {
        endpoint,
        client_address,
    })
}

/// The client speaks plain HTTP and WebSocket only.
fn check_url(url: &str) -> Checked<String> {
    let path = at(&["target", "url"]);
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
    else {
        let tls = url.starts_with("https://") || url.starts_with("wss://");
        let why = if tls {
            " (roomstorm's client has no TLS)"
        } else {
            ""
        };
        return problem(
            path,
            format!("`{url}` must start with http:// or ws://{why}"),
        );
    };
    if host_of(rest).is_empty() {
        return problem(path, format!("`{url}` has no host"));
    }
    Ok(url.to_string())
}

/// The host of `host[:port][/path]` (IPv6 in brackets).
fn host_of(authority_and_path: &str) -> &str {
    let authority = authority_and_path.split(['/', '?']).next().unwrap_or("");
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// Whether `url` points at this machine (then members can spread over 127.0.K.1).
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = host_of(rest);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn local_stack(raw: &RawLocal) -> Checked<LocalStack> {
    let count = |key: &str, value: Option<u32>| {
        let value = value.unwrap_or(DEFAULT_WORKERS);
        if (1..=MAX_WORKERS).contains(&value) {
            Ok(value)
        } else {
            problem(
                at(&["target", "local", key]),
                format!("{value} is out of range; allowed: 1 to {MAX_WORKERS}"),
            )
        }
    };
    let redis_cluster = match raw.redis_cluster {
        None | Some(0) => 0,
        Some(masters) if REDIS_CLUSTER_MASTERS.contains(&masters) => masters,
        Some(masters) => {
            return problem(
                at(&["target", "local", "redis_cluster"]),
                format!(
                    "{masters} masters: a Redis Cluster here has {} to {} (0 or none: one Redis)",
                    REDIS_CLUSTER_MASTERS.start(),
                    REDIS_CLUSTER_MASTERS.end()
                ),
            );
        }
    };
    let namespaces = raw.namespaces.unwrap_or(false);
    if namespaces && redis_cluster > 0 {
        return problem(
            at(&["target", "local", "namespaces"]),
            "namespaces put one Redis on a host of its own; not with redis_cluster",
        );
    }
    Ok(LocalStack {
        workers: count("workers", raw.workers)?,
        nginx_workers: count("nginx_workers", raw.nginx_workers)?,
        redis_cluster,
        namespaces,
    })
}

/// Spread for the local stack and loopback URLs, forwarded for remote ones; spread cannot
/// reach a remote host (its source addresses are loopback ones).
fn client_address(raw: Option<RawClientAddress>, endpoint: &Endpoint) -> Checked<ClientAddress> {
    let loopback = match endpoint {
        Endpoint::Local(_) => true,
        Endpoint::Url(url) => is_loopback(url),
    };
    match raw {
        None if loopback => Ok(ClientAddress::Spread),
        None => Ok(ClientAddress::Forwarded),
        Some(RawClientAddress::Spread) if !loopback => problem(
            at(&["target", "client_address"]),
            "spread binds loopback addresses (127.0.K.1) and cannot reach a remote target; allowed here: forwarded, none",
        ),
        Some(RawClientAddress::Spread) => Ok(ClientAddress::Spread),
        Some(RawClientAddress::Forwarded) => Ok(ClientAddress::Forwarded),
        Some(RawClientAddress::None) => Ok(ClientAddress::None),
    }
}

fn population(raw: &RawPopulation) -> Checked<Population> {
    if raw.members == 0 {
        return problem(at(&["population", "members"]), "must be at least 1");
    }
    if raw.rooms == 0 {
        return problem(at(&["population", "rooms"]), "must be at least 1");
    }
    if raw.rooms > raw.members {
        return problem(
            at(&["population", "rooms"]),
            format!(
                "{} rooms for {} members: every room needs a member; at most {}",
                raw.rooms, raw.members, raw.members
            ),
        );
    }
    Ok(Population {
        rooms: raw.rooms,
        members: raw.members,
        room_size: room_size(raw.room_size)?,
        arrival: arrival(raw)?,
        // Checked once the traffic and the profile are known (`groups`).
        groups: Vec::new(),
        members_per_user: members_per_user(raw.members_per_user)?,
    })
}

/// `population.members_per_user`: 1 unless set; 0 would leave members without a goose user.
fn members_per_user(raw: Option<u32>) -> Checked<u32> {
    match raw {
        None => Ok(1),
        Some(0) => problem(
            at(&["population", "members_per_user"]),
            "must be at least 1 (the members one goose user drives)",
        ),
        Some(per_user) => Ok(per_user),
    }
}

fn room_size(raw: Option<RawRoomSize>) -> Checked<RoomSize> {
    let path = at(&["population", "room_size"]);
    match raw {
        None | Some(RawRoomSize::Fixed) => Ok(RoomSize::Fixed),
        Some(RawRoomSize::Uniform(Pair([min, max]))) if min == 0 || min > max => problem(
            path.key("uniform"),
            format!("[{min}, {max}] must have 1 <= min <= max"),
        ),
        Some(RawRoomSize::Uniform(Pair([min, max]))) => Ok(RoomSize::Uniform { min, max }),
        Some(RawRoomSize::Zipf(s)) if !(s.is_finite() && s > 0.0 && s <= 10.0) => problem(
            path.key("zipf"),
            format!("{s} is out of range; allowed: above 0, up to 10"),
        ),
        Some(RawRoomSize::Zipf(s)) => Ok(RoomSize::Zipf { s }),
    }
}

fn arrival(raw: &RawPopulation) -> Checked<Arrival> {
    match (raw.ramp, &raw.phases) {
        (Some(_), Some(_)) => problem(
            at(&["population", "phases"]),
            "set either population.ramp (members per second) or population.phases, not both",
        ),
        (None, None) => problem(
            at(&["population", "ramp"]),
            "missing population.ramp (members joining per second) or population.phases",
        ),
        (Some(rate), None) if !(rate.is_finite() && rate > 0.0) => problem(
            at(&["population", "ramp"]),
            format!("{rate} members per second: must be above 0"),
        ),
        (Some(rate), None) => Ok(Arrival::Ramp(rate)),
        (None, Some(phases)) => phases_of(phases, raw.members).map(Arrival::Phases),
    }
}

fn phases_of(raw: &[RawPhase], members: u32) -> Checked<Vec<Phase>> {
    let base = at(&["population", "phases"]);
    if raw.is_empty() {
        return problem(base, "must have at least one phase");
    }
    let phases = raw
        .iter()
        .enumerate()
        .map(|(index, phase)| one_phase(&base.index(index), phase, members))
        .collect::<Checked<Vec<Phase>>>()?;
    let peak = phases
        .iter()
        .filter_map(|p| match p {
            Phase::Ramp { to, .. } => Some(*to),
            Phase::Hold(_) => None,
        })
        .max()
        .unwrap_or(0);
    if peak != members {
        return problem(
            base,
            format!(
                "the phases peak at {peak} members but population.members is {members}: planned members would never join"
            ),
        );
    }
    Ok(phases)
}

fn one_phase(path: &KeyPath, raw: &RawPhase, members: u32) -> Checked<Phase> {
    match (raw.ramp, raw.to, raw.hold) {
        (Some(DurationText(over)), Some(to), None) => {
            whole_seconds(&path.key("ramp"), over)?;
            if to > members {
                return problem(
                    path.key("to"),
                    format!("{to} is more than population.members ({members})"),
                );
            }
            Ok(Phase::Ramp { over, to })
        }
        (None, None, Some(DurationText(hold))) => {
            whole_seconds(&path.key("hold"), hold)?;
            positive(&path.key("hold"), hold)?;
            Ok(Phase::Hold(hold))
        }
        _ => problem(
            path.clone(),
            "a phase is either { ramp = \"5s\", to = N } or { hold = \"30s\" }",
        ),
    }
}

fn traffic(raw: &RawTraffic, arrival: &Arrival, steady: Duration) -> Checked<Traffic> {
    let path = |key: &str| at(&["traffic", key]);
    let deadline = raw.deadline.map_or(DEFAULT_DEADLINE, |d| d.0);
    positive(&path("deadline"), deadline)?;
    Ok(Traffic {
        rate: rate(raw)?,
        jitter: in_range(path("jitter"), raw.jitter.unwrap_or(0.0), 0.0, 1.0)?,
        message_size: message_size(raw.message_size)?,
        transports: transports(raw.transports.as_ref())?,
        churn_per_min: in_range(
            path("churn_per_min"),
            raw.churn_per_min.unwrap_or(0.0),
            0.0,
            60.0,
        )?,
        reconnect: match raw.reconnect {
            None | Some(RawReconnect::None) => Reconnect::None,
            Some(RawReconnect::Backoff) => Reconnect::Backoff,
        },
        deadline,
        steps: raw
            .steps
            .as_ref()
            .map(|s| steps(s, arrival, steady))
            .transpose()?,
    })
}

fn rate(raw: &RawTraffic) -> Checked<Rate> {
    let check = |key: &str, value: f64| in_range(at(&["traffic", key]), value, 0.0, MAX_RATE);
    match (raw.rate_per_member, raw.rate_per_room) {
        (Some(_), Some(_)) => problem(
            at(&["traffic", "rate_per_room"]),
            "set either traffic.rate_per_member or traffic.rate_per_room, not both",
        ),
        (None, None) => problem(
            at(&["traffic", "rate_per_member"]),
            "missing traffic.rate_per_member or traffic.rate_per_room (messages per second)",
        ),
        (Some(rate), None) => check("rate_per_member", rate).map(Rate::PerMember),
        (None, Some(rate)) => check("rate_per_room", rate).map(Rate::PerRoom),
    }
}

/// Texts must be accepted by a server with the default limit.
fn message_size(raw: Option<RawSize>) -> Checked<MessageSize> {
    let Some(RawSize { min, max }) = raw else {
        return Ok(MessageSize {
            min: DEFAULT_MESSAGE_SIZE,
            max: DEFAULT_MESSAGE_SIZE,
        });
    };
    let limit = DEFAULT_MAX_TEXT_BYTES as u64;
    if min == 0 || min > max || max > limit {
        return problem(
            at(&["traffic", "message_size"]),
            format!(
                "[{min}, {max}] must have 1 <= min <= max <= {limit} (the server's text limit)"
            ),
        );
    }
    Ok(MessageSize {
        min: min as usize,
        max: max as usize,
    })
}

fn transports(raw: Option<&RawTransports>) -> Checked<TransportShares> {
    let Some(raw) = raw else {
        return Ok(TransportShares {
            websocket: 1.0,
            polling: 0.0,
            upgrade: 0.0,
        });
    };
    let share = |key: &str, value: Option<f64>| {
        in_range(
            at(&["traffic", "transports", key]),
            value.unwrap_or(0.0),
            0.0,
            1.0,
        )
    };
    let shares = TransportShares {
        websocket: share("websocket", raw.websocket)?,
        polling: share("polling", raw.polling)?,
        upgrade: share("upgrade", raw.upgrade)?,
    };
    let sum = shares.websocket + shares.polling + shares.upgrade;
    if (sum - 1.0).abs() > SHARE_TOLERANCE {
        return problem(
            at(&["traffic", "transports"]),
            format!(
                "shares add up to {} (websocket {} + polling {} + upgrade {}); they must add up to 1",
                // Rounded: 0.7 + 0.1 + 0.1 should read 0.9, not 0.8999999999999999.
                (sum * 1e6).round() / 1e6,
                shares.websocket,
                shares.polling,
                shares.upgrade
            ),
        );
    }
    Ok(shares)
}

/// Steps need a steady phase long enough to run them all.
fn steps(raw: &RawSteps, arrival: &Arrival, steady: Duration) -> Checked<RateSteps> {
    let path = |key: &str| at(&["traffic", "steps", key]);
    if matches!(arrival, Arrival::Phases(_)) {
        return problem(
            at(&["traffic", "steps"]),
            "needs population.ramp: steps run during the steady phase, which phases do not define",
        );
    }
    let multiplier = |key: &str, value: Option<f64>, default: f64| {
        let value = value.unwrap_or(default);
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            problem(path(key), format!("{value}: must be above 0"))
        }
    };
    let step = raw.step.0;
    positive(&path("step"), step)?;
    // Steps are judged on whole seconds of the timeline (sends, fan-out, lost by second).
    whole_seconds(&path("step"), step)?;
    if raw.max_steps == 0 {
        return problem(path("max_steps"), "must be at least 1");
    }
    let needed = step.saturating_mul(raw.max_steps);
    if needed > steady {
        return problem(
            path("max_steps"),
            format!(
                "{} steps of {} need a steady phase of {}, but duration is {}",
                raw.max_steps,
                format_duration(step),
                format_duration(needed),
                format_duration(steady)
            ),
        );
    }
    Ok(RateSteps {
        start: multiplier("start", raw.start, 1.0)?,
        factor: multiplier("factor", raw.factor, 2.0)?,
        step,
        max_steps: raw.max_steps,
    })
}

fn faults(raw: &[RawFault], target: &Target, run_length: Duration) -> Checked<Vec<Fault>> {
    let base = at(&["faults"]);
    let local = match (&target.endpoint, raw.is_empty()) {
        (_, true) => return Ok(Vec::new()),
        (Endpoint::Local(local), false) => *local,
        (Endpoint::Url(_), false) => {
            return problem(
                base.index(0),
                "faults need target.local: loadgen can only break the stack it started, and the target is a url",
            );
        }
    };
    raw.iter()
        .enumerate()
        .map(|(index, fault)| one_fault(&base.index(index), fault, &local, run_length))
        .collect()
}

fn one_fault(
    path: &KeyPath,
    raw: &RawFault,
    local: &LocalStack,
    run_length: Duration,
) -> Checked<Fault> {
    let workers = local.workers;
    let at_time = raw.at.0;
    if at_time >= run_length {
        return problem(
            path.key("at"),
            format!(
                "{} is not before the end of the run ({})",
                format_duration(at_time),
                format_duration(run_length)
            ),
        );
    }
    let worker = |key: &[&str], index: u32| {
        if index < workers {
            Ok(index)
        } else {
            let mut p = path.clone();
            for k in key {
                p = p.key(k);
            }
            problem(
                p,
                format!(
                    "worker {index} does not exist; the local stack has workers 0 to {}",
                    workers - 1
                ),
            )
        }
    };
    let actions = [
        raw.kill_worker.is_some(),
        raw.stop_redis.is_some(),
        raw.pause_worker.is_some(),
        raw.kill_redis_master.is_some(),
        raw.migrate_slots.is_some(),
        raw.partition.is_some(),
    ];
    if actions.iter().filter(|set| **set).count() != 1 {
        return problem(
            path.clone(),
            "set exactly one of kill_worker, stop_redis, pause_worker, kill_redis_master, migrate_slots, partition",
        );
    }
    let action = if let Some(index) = raw.kill_worker {
        FaultAction::KillWorker(worker(&["kill_worker"], index)?)
    } else if let Some(DurationText(down)) = raw.stop_redis {
        positive(&path.key("stop_redis"), down)?;
        if local.redis_cluster > 0 {
            return problem(
                path.key("stop_redis"),
                "the local stack runs a Redis Cluster (target.local.redis_cluster): stop one of \
                 its masters with kill_redis_master instead",
            );
        }
        FaultAction::StopRedis(down)
    } else if let Some(pause) = &raw.pause_worker {
        positive(&path.key("pause_worker").key("for"), pause.duration.0)?;
        FaultAction::PauseWorker {
            worker: worker(&["pause_worker", "worker"], pause.worker)?,
            duration: pause.duration.0,
        }
    } else if let Some(index) = raw.kill_redis_master {
        FaultAction::KillRedisMaster(master(&path.key("kill_redis_master"), local, index)?)
    } else if let Some(migrate) = &raw.migrate_slots {
        migrate_slots(&path.key("migrate_slots"), local, migrate)?
    } else if let Some(partition) = &raw.partition {
        if !local.namespaces {
            return problem(
                path.key("partition"),
                "a partition needs each worker on a host of its own: set target.local.namespaces = true \
                 (network namespaces; root, ip and nft)",
            );
        }
        positive(&path.key("partition").key("for"), partition.duration.0)?;
        FaultAction::Partition {
            worker: worker(&["partition", "worker"], partition.worker)?,
            from: partition.from,
            duration: partition.duration.0,
        }
    } else {
        return problem(path.clone(), "no action set");
    };
    Ok(Fault {
        at: at_time,
        action,
    })
}

/// A master index of the local Redis Cluster (none without one).
fn master(path: &KeyPath, local: &LocalStack, index: u32) -> Checked<u32> {
    match local.redis_cluster {
        0 => problem(
            path.clone(),
            "needs a Redis Cluster: set target.local.redis_cluster (the number of masters)",
        ),
        masters if index < masters => Ok(index),
        masters => problem(
            path.clone(),
            format!(
                "master {index} does not exist; the Redis Cluster has masters 0 to {}",
                masters - 1
            ),
        ),
    }
}

/// `migrate_slots`: two different masters, and at most the slots one master starts with.
fn migrate_slots(path: &KeyPath, local: &LocalStack, raw: &RawMigrate) -> Checked<FaultAction> {
    let from = master(&path.key("from"), local, raw.from)?;
    let to = master(&path.key("to"), local, raw.to)?;
    if from == to {
        return problem(path.key("to"), "must be another master than from");
    }
    let most = 16_384 / local.redis_cluster;
    if !(1..=most).contains(&raw.slots) {
        return problem(
            path.key("slots"),
            format!(
                "{}: between 1 and {most} (the slots one master of {} starts with)",
                raw.slots, local.redis_cluster
            ),
        );
    }
    Ok(FaultAction::MigrateSlots {
        from,
        to,
        slots: raw.slots,
    })
}

fn thresholds(raw: &RawThresholds) -> Checked<Vec<Threshold>> {
    raw.0
        .iter()
        .map(|(name, condition)| {
            let path = at(&["thresholds"]).key(name);
            let Some(metric) = Metric::from_name(name) else {
                return problem(
                    path,
                    format!("unknown metric; allowed: {}", Metric::names()),
                );
            };
            Threshold::parse(metric, condition).map_err(|message| Problem::new(path, message))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://127.3.0.1"));
        assert!(is_loopback("ws://localhost:3000/"));
        assert!(is_loopback("http://[::1]:80"));
        assert!(!is_loopback("http://10.0.0.5:8080"));
        assert!(!is_loopback("http://chat.example.com"));
    }
}
