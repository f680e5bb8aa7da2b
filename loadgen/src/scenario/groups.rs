//! The checks of `[[population.groups]]`: members that behave alike (talkers, lurkers, bursty
//! members, members that send typing or presence signals), each with its own figures in the
//! results.
//!
//! This exists so a group that cannot be run as written stops the run before anything starts:
//! a group that would get no member, a rate or a burst that cannot be scheduled, a signal on
//! an event Socket.IO keeps for itself or on the profile's say event (it would come back as a
//! message without a probe). Shares are drawn by [`super::plan`]'s apportionment, the same
//! that plans the members, so "no member" here means no member in the run.

use std::time::Duration;

use super::error::Problem;
use super::locate::KeyPath;
use super::model::{Burst, Group, Signal, Traffic};
use super::plan::apportion;
use super::raw::{RawBurst, RawGroup, RawSignal};
use super::units::format_duration;
use crate::profile::{ProbeAllowed, Profile, RESERVED_EVENTS, ValueTemplate};

type Checked<T> = Result<T, Problem>;

/// Most groups a scenario may have: each costs a fan-out histogram per receiving thread.
const MAX_GROUPS: usize = 16;
/// The per-member rate a group or a signal may ask for (as `traffic.rate_per_member`).
const MAX_RATE: f64 = 1000.0;

fn at(index: usize, keys: &[&str]) -> KeyPath {
    let mut path = KeyPath::of(&["population", "groups"]).index(index);
    for key in keys {
        path = path.key(key);
    }
    path
}

fn problem<T>(path: KeyPath, message: impl Into<String>) -> Checked<T> {
    Err(Problem::new(path, message))
}

/// The scenario's groups (none without `[[population.groups]]`), for `members` members.
pub(crate) fn groups(
    raw: Option<&[RawGroup]>,
    (traffic, profile): (&Traffic, &Profile),
    members: u32,
    env: &dyn Fn(&str) -> Option<String>,
) -> Checked<Vec<Group>> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        return problem(
            KeyPath::of(&["population", "groups"]),
            "must have at least one group (or leave it out)",
        );
    }
    if raw.len() > MAX_GROUPS {
        return problem(
            KeyPath::of(&["population", "groups"]),
            format!("{} groups; at most {MAX_GROUPS}", raw.len()),
        );
    }
    let groups = raw
        .iter()
        .enumerate()
        .map(|(i, group)| one_group(i, group, (traffic, profile), env))
        .collect::<Checked<Vec<Group>>>()?;
    for (i, group) in groups.iter().enumerate() {
        if groups[..i].iter().any(|g| g.name == group.name) {
            return problem(
                at(i, &["name"]),
                format!("`{}` names two groups", group.name),
            );
        }
    }
    let weights: Vec<f64> = groups.iter().map(|g| g.weight).collect();
    let sizes = apportion(&weights, members);
    if let Some(i) = sizes.iter().position(|&n| n == 0) {
        return problem(
            at(i, &["weight"]),
            format!(
                "gets none of the {members} members at this weight: its figures would be \
                 empty; raise its weight or population.members"
            ),
        );
    }
    Ok(groups)
}

fn one_group(
    i: usize,
    raw: &RawGroup,
    (traffic, profile): (&Traffic, &Profile),
    env: &dyn Fn(&str) -> Option<String>,
) -> Checked<Group> {
    let fine_name = !raw.name.is_empty()
        && raw.name.len() <= 32
        && raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !fine_name {
        return problem(
            at(i, &["name"]),
            "must be 1 to 32 of A-Z a-z 0-9 _ - . (it names the group's figures)",
        );
    }
    if !(raw.weight.is_finite() && raw.weight > 0.0) {
        return problem(
            at(i, &["weight"]),
            format!("{}: must be above 0", raw.weight),
        );
    }
    let rate = match raw.rate {
        Some(rate) if !(rate.is_finite() && (0.0..=MAX_RATE).contains(&rate)) => {
            return problem(
                at(i, &["rate"]),
                format!("{rate} is out of range; allowed: 0 to {MAX_RATE}"),
            );
        }
        other => other,
    };
    let burst = raw
        .burst
        .as_ref()
        .map(|b| burst(i, b, traffic))
        .transpose()?;
    let signals = raw
        .signals
        .iter()
        .flatten()
        .enumerate()
        .map(|(k, s)| signal(at(i, &["signals"]).index(k), s, profile, env))
        .collect::<Checked<Vec<Signal>>>()?;
    Ok(Group {
        name: raw.name.clone(),
        weight: raw.weight,
        rate,
        burst,
        signals,
    })
}

fn burst(i: usize, raw: &RawBurst, traffic: &Traffic) -> Checked<Burst> {
    for (key, value) in [("on", raw.on.0), ("off", raw.off.0)] {
        if value < Duration::from_millis(1) {
            return problem(
                at(i, &["burst", key]),
                format!("{}: must be at least 1ms", format_duration(value)),
            );
        }
    }
    if traffic.steps.is_some() {
        return problem(
            at(i, &["burst"]),
            "cannot be combined with traffic.steps: a step's offered load would depend on \
             where the members' bursts fall",
        );
    }
    Ok(Burst {
        on: raw.on.0,
        off: raw.off.0,
    })
}

fn signal(
    path: KeyPath,
    raw: &RawSignal,
    profile: &Profile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Checked<Signal> {
    if raw.event.is_empty() || RESERVED_EVENTS.contains(&raw.event.as_str()) {
        return problem(
            path.key("event"),
            format!(
                "`{}` cannot be emitted: empty, or reserved by Socket.IO ({})",
                raw.event,
                RESERVED_EVENTS.join(", ")
            ),
        );
    }
    if raw.event == profile.say.event {
        return problem(
            path.key("event"),
            format!(
                "`{}` is the profile's say event: the app would broadcast it as a message \
                 without a probe",
                raw.event
            ),
        );
    }
    if !(raw.rate.is_finite() && raw.rate > 0.0 && raw.rate <= MAX_RATE) {
        return problem(
            path.key("rate"),
            format!(
                "{} is out of range; allowed: above 0, up to {MAX_RATE}",
                raw.rate
            ),
        );
    }
    let payload = raw
        .payload
        .as_ref()
        .map(|p| {
            ValueTemplate::from_toml(p, ProbeAllowed::No, env).map_err(|(inner, e)| {
                let mut key = path.key("payload");
                for step in inner {
                    key = match step {
                        crate::profile::template::PathStep::Key(k) => key.key(&k),
                        crate::profile::template::PathStep::Index(n) => key.index(n),
                    };
                }
                Problem::new(key, e)
            })
        })
        .transpose()?;
    Ok(Signal {
        event: raw.event.clone(),
        payload,
        rate: raw.rate,
    })
}

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;

    const BASE: &str = r#"name = "g"
duration = "10s"
[target]
url = "http://127.0.0.1:1"
[population]
rooms = 2
members = 20
ramp = 20
[traffic]
rate_per_member = 1.0
"#;

    const GROUPS: &str = r#"
[[population.groups]]
name = "talkers"
weight = 1
rate = 2.0

[[population.groups]]
name = "lurkers"
weight = 3
rate = 0

[[population.groups]]
name = "bursty"
weight = 1
burst = { on = "1s", off = "4s" }
signals = [{ event = "typing", payload = { room = "{room}" }, rate = 0.5 }]
"#;

    fn load(groups: &str) -> Result<Scenario, String> {
        Scenario::from_str(&format!("{BASE}{groups}"), "g.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn groups_are_read_in_file_order() {
        let s = load(GROUPS).expect("valid");
        let names: Vec<&str> = s
            .population
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, ["talkers", "lurkers", "bursty"]);
        assert_eq!(s.population.groups[1].rate, Some(0.0));
        assert_eq!(s.population.groups[2].signals[0].event, "typing");
        let echo = serde_json::to_value(&s).unwrap();
        assert_eq!(echo["population"]["groups"][2]["burst"]["off"], "4s");
        assert!(
            serde_json::to_value(load("").unwrap()).unwrap()["population"]
                .get("groups")
                .is_none()
        );
    }

    #[test]
    fn a_group_that_cannot_run_names_its_key() {
        for (from, to, key, why) in [
            (
                "weight = 3",
                "weight = 0",
                "population.groups[1].weight",
                "above 0",
            ),
            (
                "weight = 3",
                "weight = 1000",
                "population.groups[0].weight",
                "gets none",
            ),
            (
                "rate = 2.0",
                "rate = -1",
                "population.groups[0].rate",
                "out of range",
            ),
            (
                "name = \"lurkers\"",
                "name = \"talkers\"",
                "population.groups[1].name",
                "names two groups",
            ),
            (
                "name = \"lurkers\"",
                "name = \"a b\"",
                "population.groups[1].name",
                "must be",
            ),
            (
                "off = \"4s\"",
                "off = \"0s\"",
                "population.groups[2].burst.off",
                "at least 1ms",
            ),
            (
                "event = \"typing\"",
                "event = \"say\"",
                "population.groups[2].signals[0].event",
                "say event",
            ),
            (
                "event = \"typing\"",
                "event = \"disconnect\"",
                "population.groups[2].signals[0].event",
                "reserved",
            ),
            (
                "rate = 0.5",
                "rate = 0",
                "population.groups[2].signals[0].rate",
                "out of range",
            ),
            (
                "{room}",
                "{rom}",
                "population.groups[2].signals[0].payload.room",
                "unknown placeholder",
            ),
        ] {
            let e = load(&GROUPS.replace(from, to)).expect_err(key);
            assert!(
                e.contains(&format!(": {key}: ")) && e.contains(why),
                "{key}: {e}"
            );
        }
        let with_steps = BASE.replace(
            "rate_per_member = 1.0",
            "rate_per_member = 1.0\nsteps = { step = \"5s\", max_steps = 2 }",
        );
        let e = Scenario::from_str(&format!("{with_steps}{GROUPS}"), "g.toml").unwrap_err();
        assert!(
            e.to_string()
                .contains("population.groups[2].burst: cannot be combined"),
            "{e}"
        );
    }
}
