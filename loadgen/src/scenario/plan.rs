//! Who is who: every simulated member's room, name, transport and send interval, decided
//! up front from the scenario and its seed.
//!
//! This exists so a run is reproducible (same seed, same rooms, same transports) and so several
//! load generator processes can split one population without talking: each takes a slice of
//! the same plan. The random numbers come from a fixed SplitMix64 here rather than `rand`'s
//! `SmallRng`, whose algorithm may change between versions and platforms.

use std::time::Duration;

use roomstorm_client::Transport;

use super::Scenario;
use super::model::{Burst, Group, Rate, RoomSize, TransportShares};

/// Every room and member of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Rooms, by index.
    pub rooms: Vec<RoomPlan>,
    /// Members, by id; ids are also the join order (rooms fill up together).
    pub members: Vec<MemberPlan>,
}

/// One room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPlan {
    /// Index from 0.
    pub index: u32,
    /// The `roomid` members connect with, e.g. `smoke-r003`.
    pub id: String,
    /// Member ids, in slot order.
    pub members: Vec<u32>,
}

/// One simulated member.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPlan {
    /// Id from 0; also the order in which members start.
    pub id: u32,
    /// Index of its room.
    pub room: u32,
    /// Its position within the room's members.
    pub slot: u32,
    /// Its username, e.g. `m000123` (valid: at most 32 characters).
    pub name: String,
    /// How it connects.
    pub transport: Transport,
    /// Mean time between its messages at the base rate (while it sends, for a bursty
    /// member); `None` if it never sends.
    pub send_interval: Option<Duration>,
    /// Its `[[population.groups]]` entry, by index; `None` without groups.
    pub group: Option<u32>,
    /// Its group's on and off periods, if the group is bursty.
    pub burst: Option<Burst>,
    /// Text length bounds in bytes, inclusive.
    pub message_size: (usize, usize),
    /// Seed for this member's own randomness (jitter, text lengths), derived from the
    /// scenario's seed and the member id.
    pub seed: u64,
}

impl Plan {
    /// The room of `member`.
    pub fn room_of(&self, member: &MemberPlan) -> &RoomPlan {
        &self.rooms[member.room as usize]
    }
}

/// Plans the scenario's members; the same scenario and seed always give the same plan.
pub fn plan(scenario: &Scenario) -> Plan {
    let population = &scenario.population;
    let sizes = room_sizes(
        population.room_size,
        population.rooms,
        population.members,
        scenario.seed,
    );
    let rooms = assign_rooms(&scenario.name, &sizes);
    let transports = assign_transports(
        &scenario.traffic.transports,
        population.members,
        scenario.seed,
    );
    let groups = assign_groups(&population.groups, population.members, scenario.seed);
    let size = scenario.traffic.message_size;
    let mut members: Vec<MemberPlan> = Vec::with_capacity(population.members as usize);
    for room in &rooms {
        for (slot, &id) in room.members.iter().enumerate() {
            let group = groups.get(id as usize).copied();
            let of_group = group.map(|g| &population.groups[g as usize]);
            let rate = match of_group.and_then(|g| g.rate) {
                Some(rate) => Rate::PerMember(rate),
                None => scenario.traffic.rate,
            };
            members.push(MemberPlan {
                id,
                room: room.index,
                slot: slot as u32,
                name: format!("m{id:06}"),
                transport: transports[id as usize],
                send_interval: send_interval(rate, room.members.len()),
                group,
                burst: of_group.and_then(|g| g.burst),
                message_size: (size.min, size.max),
                seed: mix(scenario.seed, u64::from(id)),
            });
        }
    }
    members.sort_by_key(|m| m.id);
    Plan { rooms, members }
}

/// Room sizes adding up to `members`, each at least 1.
fn room_sizes(shape: RoomSize, rooms: u32, members: u32, seed: u64) -> Vec<u32> {
    let weights: Vec<f64> = match shape {
        RoomSize::Fixed => vec![1.0; rooms as usize],
        RoomSize::Uniform { min, max } => {
            let mut rng = SplitMix64::new(mix(seed, STREAM_ROOM_SIZES));
            (0..rooms)
                .map(|_| f64::from(min) + rng.below(u64::from(max - min) + 1) as f64)
                .collect()
        }
        RoomSize::Zipf { s } => (1..=rooms)
            .map(|rank| 1.0 / f64::from(rank).powf(s))
            .collect(),
    };
    let rest = members - rooms;
    apportion(&weights, rest)
        .into_iter()
        .map(|extra| extra + 1)
        .collect()
}

/// Splits `total` into integers proportional to `weights` (largest remainder; ties to the
/// lower index), so the parts add up to `total` exactly.
pub(super) fn apportion(weights: &[f64], total: u32) -> Vec<u32> {
    let sum: f64 = weights.iter().sum();
    let quotas: Vec<f64> = weights.iter().map(|w| w / sum * f64::from(total)).collect();
    let mut parts: Vec<u32> = quotas.iter().map(|q| q.floor() as u32).collect();
    let given: u32 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: equal remainders keep index order.
    order.sort_by(|&a, &b| {
        (quotas[b] - quotas[b].floor()).total_cmp(&(quotas[a] - quotas[a].floor()))
    });
    for &index in order
        .iter()
        .cycle()
        .take(total.saturating_sub(given) as usize)
    {
        parts[index] += 1;
    }
    parts
}

/// Member ids to rooms round by round (round r gives the next id to every room with more than
/// r members), so rooms grow together while members join in id order.
fn assign_rooms(name: &str, sizes: &[u32]) -> Vec<RoomPlan> {
    let mut rooms: Vec<RoomPlan> = sizes
        .iter()
        .enumerate()
        .map(|(index, &size)| RoomPlan {
            index: index as u32,
            id: format!("{name}-r{index:03}"),
            members: Vec::with_capacity(size as usize),
        })
        .collect();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut next_id = 0;
    for round in 0..largest {
        for (room, &size) in rooms.iter_mut().zip(sizes) {
            if size > round {
                room.members.push(next_id);
                next_id += 1;
            }
        }
    }
    rooms
}

/// Exact transport counts by share, shuffled over member ids by the seed.
fn assign_transports(shares: &TransportShares, members: u32, seed: u64) -> Vec<Transport> {
    let kinds = [Transport::WebSocket, Transport::Polling, Transport::Upgrade];
    let counts = apportion(&[shares.websocket, shares.polling, shares.upgrade], members);
    let mut transports: Vec<Transport> = kinds
        .iter()
        .zip(counts)
        .flat_map(|(&kind, count)| std::iter::repeat_n(kind, count as usize))
        .collect();
    let mut rng = SplitMix64::new(mix(seed, STREAM_TRANSPORTS));
    for i in (1..transports.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        transports.swap(i, j);
    }
    transports
}

/// Each member's group index, by member id: exact counts by weight, shuffled by the seed (as
/// transports are); empty without groups.
fn assign_groups(groups: &[Group], members: u32, seed: u64) -> Vec<u32> {
    let weights: Vec<f64> = groups.iter().map(|g| g.weight).collect();
    let counts = apportion(&weights, members);
    let mut assigned: Vec<u32> = counts
        .iter()
        .enumerate()
        .flat_map(|(group, &count)| std::iter::repeat_n(group as u32, count as usize))
        .collect();
    let mut rng = SplitMix64::new(mix(seed, STREAM_GROUPS));
    for i in (1..assigned.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        assigned.swap(i, j);
    }
    assigned
}

/// A member's interval at the base rate; with a room rate its members share the room's rate.
fn send_interval(rate: Rate, room_size: usize) -> Option<Duration> {
    let per_second = match rate {
        Rate::PerMember(rate) => rate,
        Rate::PerRoom(rate) => rate / room_size as f64,
    };
    (per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / per_second))
}

/// Separate random streams, so changing one draw does not shift the others.
const STREAM_ROOM_SIZES: u64 = 1;
const STREAM_TRANSPORTS: u64 = 2;
const STREAM_GROUPS: u64 = 3;

/// Combines a seed with a stream or member number into a new, well-spread seed.
fn mix(seed: u64, stream: u64) -> u64 {
    SplitMix64::new(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever, which is the point.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (bound > 0); the multiply-shift keeps the bias negligible.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_exact_and_even() {
        assert_eq!(apportion(&[1.0; 4], 10), vec![3, 3, 2, 2]);
        assert_eq!(apportion(&[0.5, 0.3, 0.2], 7), vec![4, 2, 1]);
        assert_eq!(apportion(&[1.0, 0.0, 0.0], 5), vec![5, 0, 0]);
        assert_eq!(apportion(&[1.0; 3], 0), vec![0, 0, 0]);
    }

    #[test]
    fn rooms_fill_round_by_round() {
        let rooms = assign_rooms("t", &[3, 1, 2]);
        assert_eq!(rooms[0].members, vec![0, 3, 5]);
        assert_eq!(rooms[1].members, vec![1]);
        assert_eq!(rooms[2].members, vec![2, 4]);
        assert_eq!(rooms[2].id, "t-r002");
    }

    #[test]
    fn room_rate_is_shared() {
        assert_eq!(
            send_interval(Rate::PerRoom(20.0), 2000),
            Some(Duration::from_secs(100))
        );
        assert_eq!(
            send_interval(Rate::PerMember(4.0), 7),
            Some(Duration::from_millis(250))
        );
        assert_eq!(send_interval(Rate::PerMember(0.0), 7), None);
    }

    #[test]
    fn groups_get_exact_shares_spread_over_rooms_and_their_own_rates() {
        let text = r#"name = "g"
duration = "10s"
seed = 5
[target]
url = "http://127.0.0.1:1"
[population]
rooms = 4
members = 40
ramp = 40
[traffic]
rate_per_member = 1.0
[[population.groups]]
name = "talkers"
weight = 1
rate = 4.0
[[population.groups]]
name = "lurkers"
weight = 2
rate = 0
[[population.groups]]
name = "as-traffic"
weight = 1
burst = { on = "1s", off = "3s" }
"#;
        let scenario = Scenario::from_str(text, "g.toml").expect("valid");
        let plan = plan(&scenario);
        let of = |g: u32| plan.members.iter().filter(move |m| m.group == Some(g));
        assert_eq!((of(0).count(), of(1).count(), of(2).count()), (10, 20, 10));
        assert!(of(0).all(|m| m.send_interval == Some(Duration::from_millis(250))));
        assert!(of(1).all(|m| m.send_interval.is_none()));
        assert!(
            of(2).all(|m| m.send_interval == Some(Duration::from_secs(1)) && m.burst.is_some())
        );
        // Shuffled: every room has lurkers, and the same seed gives the same plan.
        for room in 0..4 {
            assert!(of(1).any(|m| m.room == room), "room {room} has no lurker");
        }
        assert_eq!(plan, super::plan(&scenario));
        // Without groups nobody has one.
        let plain = Scenario::from_str(&text[..text.find("[[population").unwrap()], "g.toml")
            .expect("valid");
        assert!(
            super::plan(&plain)
                .members
                .iter()
                .all(|m| m.group.is_none())
        );
    }

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First outputs for seed 1234567 from the reference implementation.
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
    }
}
