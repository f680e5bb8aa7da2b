//! Scenario files: the TOML schema, validation with file/line/key errors, member planning.
//!
//! A scenario (`scenarios/*.toml`, documented in `scenarios/README.md`) says what a load test
//! does: the target, the population of rooms and members and how they arrive, the traffic,
//! faults to inject, and the thresholds that decide pass or fail. This module exists so that
//! all of it is read and checked before anything starts: a bad file is refused with
//! `file:line: key: what is wrong; allowed: ...`, and a loaded [`Scenario`] is known to be
//! consistent. [`plan`] then fixes every member's room, name, transport and rate from the seed,
//! and [`Scenario::goose_test_plan`] gives goose the arrival shape.
//!
//! Reading is two-staged: serde (`raw`, `deny_unknown_fields` everywhere) refuses unknown keys
//! and wrong types, then `validate` checks values and relations between keys (`protocol`: the
//! `[protocol]` table's; `groups`: `[[population.groups]]`). Both report through `error`, which uses `locate` to find the line of
//! a key.

mod error;
mod groups;
mod locate;
mod model;
mod plan;
mod protocol;
mod raw;
mod shape;
mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use error::ScenarioError;
pub use model::{
    Arrival, Burst, ClientAddress, Endpoint, Fault, FaultAction, Group, LocalStack, MessageSize,
    Phase, Population, Rate, RateSteps, Reconnect, RoomSize, Signal, Target, Traffic,
    TransportShares,
};
pub use plan::{MemberPlan, Plan, RoomPlan, plan};
pub use shape::LoadStep;
// The threshold model and the duration reader are `roomstorm-results`' (results files carry
// typed rules); re-exported so the scenario's users find them here.
pub use roomstorm_results::threshold::{Limit, Metric, MetricKind, Op, Threshold};
pub use units::{format_duration, parse_duration, parse_percent};

use crate::profile::Profile;
use locate::KeyPath;
use raw::{DurationText, RawLocal, RawScenario};

/// A validated load test. Serializes in the scenario file's own shape (for results.json).
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Short name; prefixes room ids (`NAME-r003`).
    pub name: String,
    /// What the scenario is for (may be empty).
    pub description: String,
    /// Length of the steady phase, after the ramp-up (with `phases`: the sum of their holds).
    #[serde(serialize_with = "units::serialize_duration")]
    pub duration: Duration,
    /// Seed of every random choice, so runs are reproducible.
    pub seed: u64,
    /// What members connect to.
    pub target: Target,
    /// Rooms, members, arrival.
    pub population: Population,
    /// Message rate, sizes, transports, churn, loss deadline.
    pub traffic: Traffic,
    /// Faults injected into the local stack, in file order.
    pub faults: Vec<Fault>,
    /// Pass/fail conditions, in file order.
    #[serde(serialize_with = "units::serialize_thresholds")]
    pub thresholds: Vec<Threshold>,
    /// How members talk to the app (`[protocol]`); the built-in profile, the original
    /// design's protocol, is left out of the echo (results.json names it in `protocol`).
    #[serde(skip_serializing_if = "Profile::is_builtin")]
    pub protocol: Profile,
    /// Where it came from, for re-validation after overrides.
    #[serde(skip)]
    origin: Origin,
}

/// The source of a scenario, kept to place errors found after overrides.
#[derive(Clone, Default)]
struct Origin {
    file: String,
    text: String,
    raw: Option<RawScenario>,
    overridden: Vec<KeyPath>,
}

impl std::fmt::Debug for Origin {
    /// Just the file: the text and raw values would bury the scenario in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Command-line replacements for scenario values; the result is validated again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `population.members`.
    pub members: Option<u32>,
    /// `population.rooms`.
    pub rooms: Option<u32>,
    /// `duration` (whole seconds; not with `population.phases`).
    pub duration: Option<Duration>,
    /// `traffic.rate_per_member` (replaces `rate_per_room` if the file had one).
    pub rate_per_member: Option<f64>,
    /// `target.url` (replaces `target.local` if the file had one).
    pub target_url: Option<String>,
    /// `seed`.
    pub seed: Option<u64>,
    /// `target.local.workers` (a scenario whose target is a url gets a local stack's error).
    pub workers: Option<u32>,
    /// `target.local.nginx_workers`.
    pub nginx_workers: Option<u32>,
    /// Drop every `[[faults]]` entry (a part of a split run: the parent injects them, and the
    /// part's `target_url` would refuse them).
    pub without_faults: bool,
}

impl Scenario {
    /// Reads and validates the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        Scenario::from_str(&text, &file)
    }

    /// Parses and validates scenario `text`; `file_name` is used in error messages.
    pub fn from_str(text: &str, file_name: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario =
            toml::from_str(text).map_err(|e| error::from_toml(file_name, text, &e))?;
        let origin = Origin {
            file: file_name.to_string(),
            text: text.to_string(),
            raw: Some(raw),
            overridden: Vec::new(),
        };
        Scenario::checked(origin)
    }

    /// Replaces values from the command line and validates the result; on error `self` is
    /// unchanged and the error names the overridden key.
    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), ScenarioError> {
        let mut origin = self.origin.clone();
        let Some(raw) = origin.raw.as_mut() else {
            // Only scenarios built by `from_str` carry their source; nothing to re-check.
            return Ok(());
        };
        origin.overridden.extend(override_raw(raw, overrides));
        *self = Scenario::checked(origin)?;
        Ok(())
    }

    /// Validates `origin.raw` into a scenario that keeps its origin.
    fn checked(origin: Origin) -> Result<Scenario, ScenarioError> {
        let raw = origin
            .raw
            .as_ref()
            .expect("an origin being checked has its raw scenario");
        match validate::validate(raw) {
            Ok(scenario) => Ok(Scenario { origin, ..scenario }),
            Err(problem) => Err(error::locate_problem(
                &origin.file,
                &origin.text,
                problem,
                &origin.overridden,
            )),
        }
    }

    /// The file the scenario was read from, as given (empty if it was not read from one).
    pub fn file(&self) -> &str {
        &self.origin.file
    }

    /// Goose's `--test-plan` for this process's `members` (at least 1): ramp-up, steady
    /// `duration`, ramp-down (or the `phases`), with the whole population's timings, so
    /// processes sharing a run stay in step. E.g. `"40,1;40,15;0,1"`. Its counts are goose
    /// users: members / `population.members_per_user`, rounded up.
    pub fn goose_test_plan(&self, members: usize) -> String {
        shape::test_plan_text(&self.load_steps(members))
    }

    /// The same plan as steps.
    pub fn load_steps(&self, members: usize) -> Vec<LoadStep> {
        shape::load_steps(&self.population, self.duration, members)
    }

    /// How far apart a goose user starts the members it drives (`population.members_per_user`),
    /// for this process's `members`: see [`shape::member_spacing`].
    pub fn member_spacing(&self, members: usize) -> Duration {
        shape::member_spacing(&self.population, self.duration, members)
    }

    /// From the start until the population first reaches its peak: when the steady phase (and
    /// `traffic.steps`) starts.
    pub fn ramp_up(&self) -> Duration {
        shape::ramp_up(&self.population, self.duration)
    }

    /// The whole run: ramp-up, steady phase and ramp-down (fault times must fall inside it).
    pub fn run_length(&self) -> Duration {
        shape::run_length(&self.population, self.duration)
    }
}

/// The scenario's `target.local`, made if it had none: sizing a stack that a url target does
/// not have then fails validation saying to set one or the other.
fn local_of(raw: &mut RawScenario) -> &mut RawLocal {
    raw.target.local.get_or_insert_with(RawLocal::default)
}

/// Writes `overrides` into `raw` and returns the paths of the keys that changed.
fn override_raw(raw: &mut RawScenario, overrides: &Overrides) -> Vec<KeyPath> {
    let mut changed = Vec::new();
    let mut mark = |keys: &[&str]| changed.push(KeyPath::of(keys));
    if let Some(members) = overrides.members {
        raw.population.members = members;
        mark(&["population", "members"]);
    }
    if let Some(rooms) = overrides.rooms {
        raw.population.rooms = rooms;
        mark(&["population", "rooms"]);
    }
    if let Some(duration) = overrides.duration {
        raw.duration = Some(DurationText(duration));
        mark(&["duration"]);
    }
    if let Some(rate) = overrides.rate_per_member {
        raw.traffic.rate_per_member = Some(rate);
        raw.traffic.rate_per_room = None;
        mark(&["traffic", "rate_per_member"]);
    }
    if let Some(url) = &overrides.target_url {
        raw.target.url = Some(url.clone());
        raw.target.local = None;
        mark(&["target", "url"]);
    }
    if let Some(seed) = overrides.seed {
        raw.seed = Some(seed);
        mark(&["seed"]);
    }
    if let Some(workers) = overrides.workers {
        local_of(raw).workers = Some(workers);
        mark(&["target", "local", "workers"]);
    }
    if let Some(nginx_workers) = overrides.nginx_workers {
        local_of(raw).nginx_workers = Some(nginx_workers);
        mark(&["target", "local", "nginx_workers"]);
    }
    if overrides.without_faults && !raw.faults.is_empty() {
        raw.faults.clear();
        mark(&["faults"]);
    }
    changed
}
