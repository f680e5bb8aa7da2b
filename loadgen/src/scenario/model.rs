//! The typed parts of a validated scenario: durations as [`Duration`], choices as enums,
//! defaults filled in.
//!
//! This exists so the rest of loadgen never re-reads strings or re-checks invariants: once a
//! [`Scenario`](super::Scenario) exists, these values are known to be consistent. They
//! serialize back in the file's own shape (durations as "15s", `room_size = "fixed"`), so the
//! scenario echoed into results.json reads like the file that produced it.

use std::time::Duration;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::units::serialize_duration;

/// `[target]`: what the members connect to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// A running server, or the local stack loadgen starts.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// How members get distinct client addresses for nginx's `ip_hash`.
    pub client_address: ClientAddress,
}

/// Where the chat cluster is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `url = "http://host:port"`: a server that is already running.
    Url(String),
    /// `local = { workers, nginx_workers, redis_cluster, namespaces }`: the project's stack (Redis, workers, nginx),
    /// started and stopped by loadgen; the only target faults can be injected into.
    Local(LocalStack),
}

/// The size of the local stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LocalStack {
    /// Chat worker processes.
    pub workers: u32,
    /// nginx worker processes (each holds 2 fds per member, under a 20,000 fd limit).
    pub nginx_workers: u32,
    /// 0: one Redis; N: a Redis Cluster of N masters and N replicas (sharded pub/sub).
    pub redis_cluster: u32,
    /// Each worker and Redis on a host of its own (a network namespace), so `partition`
    /// faults can cut one worker off; needs root, ip and nft.
    pub namespaces: bool,
}

/// How members present distinct client addresses, so nginx's `ip_hash` spreads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAddress {
    /// Bind each member's socket to its own loopback /24 (127.0.K.1): loopback targets only.
    Spread,
    /// Send a per-member `X-Forwarded-For` (nginx must trust the load generator's network).
    Forwarded,
    /// Neither: every member comes from the same address.
    None,
}

/// `[population]`: who joins which room, and how fast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Population {
    /// Number of rooms.
    pub rooms: u32,
    /// Number of members over all rooms.
    pub members: u32,
    /// How members are shared among rooms.
    pub room_size: RoomSize,
    /// How members arrive and leave.
    #[serde(flatten)]
    pub arrival: Arrival,
    /// Members that behave alike (`[[population.groups]]`); empty: everyone as `[traffic]` says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Consecutive members one goose user drives (≥ 1): goose costs about 9 KiB per user, so
    /// large runs share a user among several members. Left out of the echo when 1 (the default).
    #[serde(skip_serializing_if = "is_one")]
    pub members_per_user: u32,
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

impl Population {
    /// Members one goose user drives, as a count (validation keeps it at least 1).
    pub fn per_user(&self) -> usize {
        self.members_per_user.max(1) as usize
    }
}

/// A group of members that behave alike: its share of the members, its own message rate,
/// bursts, and signals (typing, presence) it sends besides its messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Names it in results.json and the report.
    pub name: String,
    /// Its share of the members, relative to the other groups' weights.
    pub weight: f64,
    /// Messages per second per member while it sends; `None`: the traffic's rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Sends only during `on` periods, each member on its own phase of the cycle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<Burst>,
    /// Events sent besides the messages, counted and not probed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<Signal>,
}

/// On and off periods of a bursty member.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Burst {
    /// Sending at the group's rate.
    #[serde(serialize_with = "serialize_duration")]
    pub on: Duration,
    /// Silent.
    #[serde(serialize_with = "serialize_duration")]
    pub off: Duration,
}

/// An event a group's members send besides their messages (typing, presence).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// The event name.
    pub event: String,
    /// Its argument (none: the event carries none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<crate::profile::ValueTemplate>,
    /// Per member, per second.
    pub rate: f64,
}

/// How room sizes are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoomSize {
    /// As even as possible.
    Fixed,
    /// Random sizes in `[min, max]`, then scaled so they add up to the members.
    Uniform {
        /// Smallest drawn size.
        min: u32,
        /// Largest drawn size.
        max: u32,
    },
    /// Room k (from 1) gets a share proportional to 1/k^s; every room gets at least one.
    Zipf {
        /// The exponent: larger is more skewed.
        s: f64,
    },
}

impl Serialize for RoomSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            RoomSize::Fixed => serializer.serialize_str("fixed"),
            RoomSize::Uniform { min, max } => single_entry(serializer, "uniform", &[min, max]),
            RoomSize::Zipf { s } => single_entry(serializer, "zipf", &s),
        }
    }
}

/// How members arrive (and leave at the end).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// `ramp = N`: N members per second join, stay for `duration`, then leave at N per second.
    Ramp(f64),
    /// `phases = [...]`: an explicit shape of member counts over time.
    Phases(Vec<Phase>),
}

/// One phase of an explicit population shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// `{ ramp = "5s", to = 40 }`: move linearly to `to` members over `over`.
    Ramp {
        /// How long the move takes (whole seconds).
        over: Duration,
        /// The member count reached.
        to: u32,
    },
    /// `{ hold = "30s" }`: keep the current members.
    Hold(Duration),
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = |d: &Duration| super::units::format_duration(*d);
        match self {
            Phase::Ramp { over, to } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("ramp", &text(over))?;
                map.serialize_entry("to", to)?;
                map.end()
            }
            Phase::Hold(hold) => single_entry(serializer, "hold", &text(hold)),
        }
    }
}

/// `[traffic]`: what members say, how, and what counts as lost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traffic {
    /// The base message rate.
    #[serde(flatten)]
    pub rate: Rate,
    /// Each interval is moved by up to ± this fraction of itself (0 to 1).
    pub jitter: f64,
    /// Text length in bytes.
    pub message_size: MessageSize,
    /// The share of members on each transport.
    pub transports: TransportShares,
    /// Fraction of members leaving and rejoining per minute.
    pub churn_per_min: f64,
    /// What a member does when its connection drops.
    pub reconnect: Reconnect,
    /// A message not received this long after its intended send time is lost.
    #[serde(serialize_with = "serialize_duration")]
    pub deadline: Duration,
    /// Optional stepping of the message rate during the steady phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<RateSteps>,
}

/// The base message rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// Messages per second sent by each member.
    #[serde(rename = "rate_per_member")]
    PerMember(f64),
    /// Messages per second sent into each room, shared by its members.
    #[serde(rename = "rate_per_room")]
    PerRoom(f64),
}

/// Text length bounds in bytes, inclusive; equal for a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSize {
    /// Shortest text.
    pub min: usize,
    /// Longest text.
    pub max: usize,
}

impl Serialize for MessageSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.min == self.max {
            serializer.serialize_u64(self.min as u64)
        } else {
            [self.min, self.max].serialize(serializer)
        }
    }
}

/// The share of members on each transport; the three add up to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TransportShares {
    /// Straight to a websocket.
    pub websocket: f64,
    /// HTTP long-polling only.
    pub polling: f64,
    /// Polling first, then upgraded to a websocket.
    pub upgrade: f64,
}

/// What a member does when its connection drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconnect {
    /// Stay disconnected (its missed messages count as lost).
    None,
    /// Reconnect like the official client: 1 s × 2^attempt, at most 5 s, randomized by 0.5.
    Backoff,
}

/// Stepping the message rate up during the steady phase (the `ramp` scenario).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateSteps {
    /// Multiplier of the base rate in the first step.
    pub start: f64,
    /// Each step multiplies the rate by this.
    pub factor: f64,
    /// Length of each step.
    #[serde(serialize_with = "serialize_duration")]
    pub step: Duration,
    /// Number of steps; the last one lasts until the end of the steady phase.
    pub max_steps: u32,
}

impl RateSteps {
    /// The multiplier of the base rate `elapsed` after the steady phase started:
    /// `start × factor^k` in step k, k capped at `max_steps - 1`.
    pub fn multiplier_at(&self, elapsed: Duration) -> f64 {
        self.multiplier(self.step_at(elapsed))
    }

    /// The multiplier of step `index` (from 0): `start × factor^index`.
    pub fn multiplier(&self, index: u32) -> f64 {
        self.start * self.factor.powi(index as i32)
    }

    /// The step (from 0) running `elapsed` after the steady phase started.
    pub fn step_at(&self, elapsed: Duration) -> u32 {
        let index = elapsed.as_nanos() / self.step.as_nanos().max(1);
        index.min(u128::from(self.max_steps.saturating_sub(1))) as u32
    }
}

/// One `[[faults]]` entry: something done to the local stack during the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fault {
    /// When, counted from the start of the run (the first member starting).
    #[serde(serialize_with = "serialize_duration")]
    pub at: Duration,
    /// What.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// `kill_worker = N`: SIGKILL worker N (the master restarts it).
    KillWorker(u32),
    /// `stop_redis = "3s"`: stop Redis, start it again after this long.
    StopRedis(#[serde(serialize_with = "serialize_duration")] Duration),
    /// `pause_worker = { worker, for }`: SIGSTOP worker `worker`, SIGCONT after `for`.
    PauseWorker {
        /// Which worker.
        worker: u32,
        /// How long it stays stopped.
        #[serde(rename = "for", serialize_with = "serialize_duration")]
        duration: Duration,
    },
    /// `kill_redis_master = N`: SIGKILL master N of the Redis Cluster (masters numbered by
    /// their first slot); its replica takes over, then it comes back as a replica.
    KillRedisMaster(u32),
    /// `migrate_slots = { from, to, slots }`: move the lowest `slots` slots of master `from`
    /// to master `to` (`redis-cli --cluster reshard`).
    MigrateSlots {
        /// The master giving the slots.
        from: u32,
        /// The master taking them.
        to: u32,
        /// How many.
        slots: u32,
    },
    /// `partition = { worker, from, for }`: cut worker `worker` from Redis, from nginx, or
    /// from everything for `for`, then heal it (needs `target.local.namespaces`).
    Partition {
        /// Which worker.
        worker: u32,
        /// From whom.
        from: chat_server::stack::PartitionFrom,
        /// How long.
        #[serde(rename = "for", serialize_with = "serialize_duration")]
        duration: Duration,
    },
}

/// Writes `{ key = value }`, the shape of a one-key inline table.
fn single_entry<S: Serializer, V: Serialize + ?Sized>(
    serializer: S,
    key: &str,
    value: &V,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_steps_multiply_then_stop() {
        let steps = RateSteps {
            start: 1.0,
            factor: 2.0,
            step: Duration::from_secs(10),
            max_steps: 3,
        };
        assert_eq!(steps.multiplier_at(Duration::ZERO), 1.0);
        assert_eq!(steps.multiplier_at(Duration::from_millis(9_999)), 1.0);
        assert_eq!(steps.multiplier_at(Duration::from_secs(10)), 2.0);
        assert_eq!(steps.multiplier_at(Duration::from_secs(25)), 4.0);
        assert_eq!(steps.multiplier_at(Duration::from_secs(500)), 4.0);
        assert_eq!(steps.step_at(Duration::from_secs(500)), 2);
    }
}
