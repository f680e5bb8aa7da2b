//! The scenario file exactly as written: serde types that mirror the TOML, before any checks
//! between keys.
//!
//! This exists to keep the two stages of refusal apart: serde (with `deny_unknown_fields`
//! everywhere) refuses unknown keys and wrong types with the byte span of the culprit, then
//! `validate` turns these loose types into the typed [`Scenario`](super::Scenario). Overrides
//! are applied to these types too, so an overridden scenario goes through the same checks.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::units::{DURATION_HINT, parse_duration};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: String,
    pub description: Option<String>,
    pub duration: Option<DurationText>,
    pub seed: Option<u64>,
    pub target: RawTarget,
    pub population: RawPopulation,
    pub traffic: RawTraffic,
    #[serde(default)]
    pub faults: Vec<RawFault>,
    #[serde(default)]
    pub thresholds: RawThresholds,
    pub protocol: Option<RawProtocol>,
}

/// `[protocol]`: how members talk to the app (absent: the original design's protocol).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProtocol {
    pub name: Option<String>,
    pub path: Option<String>,
    pub namespace: Option<String>,
    pub engine_io: Option<u32>,
    pub connect: Option<RawConnect>,
    pub join: Option<RawJoin>,
    pub say: Option<RawSay>,
    pub receive: Option<RawReceive>,
}

/// `[protocol.connect]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnect {
    pub query: Option<std::collections::BTreeMap<String, String>>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub auth: Option<toml::Value>,
}

/// `[protocol.join]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJoin {
    pub event: Option<String>,
    pub payload: Option<toml::Value>,
    pub done: Option<RawJoinDone>,
    #[serde(rename = "match")]
    pub matches: Option<std::collections::BTreeMap<String, String>>,
    pub ack_error: Option<String>,
}

/// `protocol.join.done`: `"sent"`, `"ack"` or `{ event = "name" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawJoinDone {
    Sent,
    Ack,
    Event(String),
}

/// `[protocol.say]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSay {
    pub event: String,
    pub payload: toml::Value,
    pub ack: Option<bool>,
    pub ack_error: Option<String>,
}

/// `[protocol.receive]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReceive {
    pub event: Option<String>,
    pub events: Option<Vec<String>>,
    pub arg: Option<u32>,
    pub probe: String,
    pub probe_match: Option<RawProbeMatch>,
    pub echo: Option<bool>,
    pub ignore: Option<Vec<String>>,
}

/// `protocol.receive.probe_match`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawProbeMatch {
    Whole,
    Contains,
}

/// `[target]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub url: Option<String>,
    pub local: Option<RawLocal>,
    pub client_address: Option<RawClientAddress>,
}

/// `target.local`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocal {
    pub workers: Option<u32>,
    pub nginx_workers: Option<u32>,
    pub redis_cluster: Option<u32>,
    pub namespaces: Option<bool>,
}

/// `target.client_address`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawClientAddress {
    Spread,
    Forwarded,
    None,
}

/// `[population]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPopulation {
    pub rooms: u32,
    pub members: u32,
    pub room_size: Option<RawRoomSize>,
    pub ramp: Option<f64>,
    pub phases: Option<Vec<RawPhase>>,
    pub groups: Option<Vec<RawGroup>>,
    pub members_per_user: Option<u32>,
}

/// One of `[[population.groups]]`: members that behave alike.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub name: String,
    pub weight: f64,
    pub rate: Option<f64>,
    pub burst: Option<RawBurst>,
    pub signals: Option<Vec<RawSignal>>,
}

/// `burst = { on = "2s", off = "8s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBurst {
    pub on: DurationText,
    pub off: DurationText,
}

/// One of a group's `signals`: `{ event = "typing", payload = ..., rate = 0.5 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSignal {
    pub event: String,
    pub payload: Option<toml::Value>,
    pub rate: f64,
}

/// `population.room_size`: `"fixed"`, `{ uniform = [min, max] }` or `{ zipf = s }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawRoomSize {
    Fixed,
    Uniform(Pair<u32>),
    Zipf(f64),
}

/// One of `population.phases`: `{ ramp = "5s", to = 40 }` or `{ hold = "30s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPhase {
    pub ramp: Option<DurationText>,
    pub to: Option<u32>,
    pub hold: Option<DurationText>,
}

/// `[traffic]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTraffic {
    pub rate_per_member: Option<f64>,
    pub rate_per_room: Option<f64>,
    pub jitter: Option<f64>,
    pub message_size: Option<RawSize>,
    pub transports: Option<RawTransports>,
    pub churn_per_min: Option<f64>,
    pub reconnect: Option<RawReconnect>,
    pub deadline: Option<DurationText>,
    pub steps: Option<RawSteps>,
}

/// `traffic.transports`: the share of members on each transport.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransports {
    pub websocket: Option<f64>,
    pub polling: Option<f64>,
    pub upgrade: Option<f64>,
}

/// `traffic.reconnect`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawReconnect {
    None,
    Backoff,
}

/// `traffic.steps`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSteps {
    pub start: Option<f64>,
    pub factor: Option<f64>,
    pub step: DurationText,
    pub max_steps: u32,
}

/// One `[[faults]]` entry: `at` and exactly one action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    pub at: DurationText,
    pub kill_worker: Option<u32>,
    pub stop_redis: Option<DurationText>,
    pub pause_worker: Option<RawPause>,
    pub kill_redis_master: Option<u32>,
    pub migrate_slots: Option<RawMigrate>,
    pub partition: Option<RawPartition>,
}

/// `partition = { worker = 0, from = "redis", for = "5s" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPartition {
    pub worker: u32,
    pub from: chat_server::stack::PartitionFrom,
    #[serde(rename = "for")]
    pub duration: DurationText,
}

/// `migrate_slots = { from = 0, to = 1, slots = 500 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMigrate {
    pub from: u32,
    pub to: u32,
    pub slots: u32,
}

/// `pause_worker = { worker = 0, for = "500ms" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPause {
    pub worker: u32,
    #[serde(rename = "for")]
    pub duration: DurationText,
}

/// A duration string, read (and refused with its span) while deserializing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = DurationText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DURATION_HINT)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationText, E> {
        parse_duration(text).map(DurationText).map_err(E::custom)
    }
}

/// `traffic.message_size`: a byte count or `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSize {
    pub min: u64,
    pub max: u64,
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl<'de> Visitor<'de> for SizeVisitor {
    type Value = RawSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte count like 64, or [min, max]")
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<RawSize, E> {
        let bytes = u64::try_from(bytes)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))?;
        Ok(RawSize {
            min: bytes,
            max: bytes,
        })
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<RawSize, E> {
        Ok(RawSize {
            min: bytes,
            max: bytes,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawSize, A::Error> {
        let Pair([min, max]) = PairVisitor(PhantomData).visit_seq(seq)?;
        Ok(RawSize { min, max })
    }
}

/// `[min, max]`, exactly two: toml lets `[T; 2]` take the first two of a longer array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pair<T>(pub [T; 2]);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Pair<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(PairVisitor(PhantomData))
    }
}

struct PairVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for PairVisitor<T> {
    type Value = Pair<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[min, max]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pair<T>, A::Error> {
        let min = seq.next_element::<T>()?;
        let max = seq.next_element::<T>()?;
        let extra = seq.next_element::<de::IgnoredAny>()?;
        match (min, max, extra) {
            (Some(min), Some(max), None) => Ok(Pair([min, max])),
            _ => Err(de::Error::custom(
                "expected [min, max]: exactly two numbers",
            )),
        }
    }
}

/// `[thresholds]`: metric name to condition text, in file order (checked in `validate`, which
/// knows each metric's kind of value).
#[derive(Debug, Clone, Default)]
pub(crate) struct RawThresholds(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for RawThresholds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ThresholdsVisitor)
    }
}

struct ThresholdsVisitor;

impl<'de> Visitor<'de> for ThresholdsVisitor {
    type Value = RawThresholds;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of metric = \"condition\", like \"fanout.p99\" = \"< 50ms\"")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawThresholds, A::Error> {
        let mut entries = Vec::new();
        while let Some(metric) = map.next_key::<String>()? {
            let condition = map.next_value_seed(ConditionSeed)?;
            entries.push((metric, condition));
        }
        Ok(RawThresholds(entries))
    }
}

/// A threshold condition string; its own `expecting` tells what a condition looks like.
struct ConditionSeed;

impl<'de> de::DeserializeSeed<'de> for ConditionSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(ConditionVisitor)
    }
}

struct ConditionVisitor;

impl Visitor<'_> for ConditionVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a condition string like \"< 50ms\" or \"== 0\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_string())
    }
}
