//! What the parts of a run across hosts agree on, and what a collector needs to judge it: the
//! scenario file's text and the command-line overrides, so `loadgen collect` on any machine
//! rebuilds the very scenario the parts ran (its thresholds, phases and rate steps) without
//! the file.

use serde::{Deserialize, Serialize};

use super::args::RunArgs;
use crate::scenario::{Overrides, Scenario, format_duration, parse_duration};

/// The scenario of a run across hosts, as its first part registered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RunSpec {
    /// The file name, for messages.
    pub file: String,
    pub text: String,
    pub members: Option<u32>,
    pub rooms: Option<u32>,
    pub duration: Option<String>,
    pub rate: Option<f64>,
    pub seed: Option<u64>,
    /// The target as the first part reached it.
    pub target: String,
}

impl RunSpec {
    /// The spec of `args`' scenario, against `target`.
    pub fn of(args: &RunArgs, target: &str) -> anyhow::Result<RunSpec> {
        let file = args.scenario.display().to_string();
        let text = std::fs::read_to_string(&args.scenario)
            .map_err(|e| anyhow::anyhow!("reading {file}: {e}"))?;
        Ok(RunSpec {
            file,
            text,
            members: args.members,
            rooms: args.rooms,
            duration: args.duration.map(format_duration),
            rate: args.rate,
            seed: args.seed,
            target: target.to_owned(),
        })
    }

    /// The scenario as the parts ran it.
    pub fn scenario(&self) -> anyhow::Result<Scenario> {
        let mut scenario = Scenario::from_str(&self.text, &self.file)?;
        let duration = match &self.duration {
            Some(text) => Some(parse_duration(text).map_err(|e| anyhow::anyhow!("{e}"))?),
            None => None,
        };
        scenario.apply(&Overrides {
            members: self.members,
            rooms: self.rooms,
            duration,
            rate_per_member: self.rate,
            target_url: Some(self.target.clone()),
            seed: self.seed,
            ..Overrides::default()
        })?;
        Ok(scenario)
    }
}

/// What every part of one run must have in common: the scenario as run, but for its target
/// (hosts may reach one target by different names).
pub(super) fn fingerprint(scenario: &Scenario) -> anyhow::Result<String> {
    let mut value = serde_json::to_value(scenario)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("target");
    }
    Ok(serde_json::to_string(&value)?)
}
