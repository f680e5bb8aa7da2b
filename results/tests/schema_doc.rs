//! Keeps `docs/results-schema.md`, the field-by-field reference of results.json, equal to what
//! the Rust types write: a fully populated [`Results`] (every optional field present, every
//! list and map non-empty) is serialized, and each of its field names must be documented in
//! its section of the doc, while each field the doc's tables and `{a, b}` lists name must be
//! written. The record is built from struct literals without `..`, so a new field does not
//! compile here until it is given a value, and then must be documented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use roomstorm_results::{
    AckCounts, Component, Counters, Deliveries, EncodedHistograms, Environment, FaultResult,
    GroupResult, Latency, PartHost, Percentiles, ProtocolResult, ResourceSample, Resources,
    Results, SCHEMA, SecondStats, Sends, StepResult, TargetKind, ThresholdResult, Verdict,
    WorkerStats,
};
use serde_json::Value;

/// Objects whose keys are data (host names, error kinds, metric names), not field names.
const MAPS: [&str; 5] = [
    "environment.machines",
    "errors",
    "timeline[].errors",
    "histograms.clamped",
    "protocol.unmatched",
];

/// The scenario is echoed in the scenario file's own shape (documented with the scenarios).
const OPAQUE: [&str; 1] = ["scenario"];

fn percentiles() -> Percentiles {
    Percentiles {
        count: 10,
        min_us: 1,
        p50_us: 2,
        p90_us: 3,
        p99_us: 4,
        p999_us: 5,
        max_us: 6,
        mean_us: 2.5,
        clamped: 1,
    }
}

fn one_of_each() -> BTreeMap<String, u64> {
    BTreeMap::from([("kind".to_owned(), 1)])
}

/// A [`Results`] with every field written: no `None`, no empty list or map.
fn full_results() -> Results {
    Results {
        schema: SCHEMA.to_owned(),
        scenario: serde_json::json!({"name": "full"}),
        environment: Environment {
            host: "h".into(),
            cores: 2,
            os: "linux".into(),
            loadgen_version: "0".into(),
            git_revision: "abc".into(),
            machines: BTreeMap::from([("h".to_owned(), 2)]),
        },
        started_at: "2024-11-26T00:13:20.123Z".into(),
        duration_s: 1.0,
        counters: Counters {
            sends: 1,
            send_failures: 1,
            received_messages_total: 1,
            connects: 1,
            connect_errors: 1,
            joins: 1,
            join_timeouts: 1,
            disconnects: 1,
            reconnects: 1,
            close_timeouts: 1,
            heartbeats: 1,
            received_at_quiet_point: 1,
        },
        sends: Sends {
            planned: 2,
            made: 1,
            unsent: 1,
        },
        deliveries: deliveries(),
        latency: Latency {
            fanout: percentiles(),
            connect: percentiles(),
            join: percentiles(),
            completion: percentiles(),
            fanout_size: percentiles(),
            ack: percentiles(),
        },
        histograms: EncodedHistograms {
            fanout: "HISTF".into(),
            connect: "HISTF".into(),
            join: "HISTF".into(),
            completion: "HISTF".into(),
            fanout_size: "HISTF".into(),
            ack: "HISTF".into(),
            clamped: BTreeMap::from([("fanout".to_owned(), 1)]),
        },
        timeline: vec![SecondStats {
            t: 0,
            members: 1,
            planned: 1,
            sends: 1,
            deliveries: 1,
            duplicates: 1,
            lost: 1,
            late: 1,
            errors: one_of_each(),
            fanout_p50_us: 1,
            fanout_p99_us: 1,
            fanout_max_us: 1,
            fanout_hist: "HISTF".into(),
        }],
        workers: vec![WorkerStats {
            index: 0,
            members: 1,
            delivered: 1,
            connections: 1,
            rooms: 1,
        }],
        faults: vec![FaultResult {
            at_s: 1.0,
            action: "kill worker 1".into(),
            recovered_after_ms: Some(100),
            lost_in_window: 1,
        }],
        thresholds: vec![ThresholdResult {
            rule: "fanout.p99 < 50ms".parse().expect("a rule"),
            measured: 4.0,
            passed: true,
        }],
        errors: one_of_each(),
        verdict: Verdict::Pass,
        parts: 1,
        resources: Some(Resources {
            interval_s: 1.0,
            components: vec![Component {
                name: "loadgen".into(),
                cpu_seconds: 1.0,
                peak_rss_kib: 1,
                series: vec![ResourceSample {
                    t: 0.0,
                    cpu_percent: 1.0,
                    rss_kib: 1,
                }],
            }],
            generator_bound: false,
            series_origin_s: Some(0.5),
        }),
        steps: vec![StepResult {
            index: 0,
            multiplier: 1.0,
            from_s: 0.0,
            to_s: 1.0,
            sends: 1,
            planned: 1,
            deliveries_per_s: 1.0,
            fanout_p99_us: 1,
            fanout_max_us: 1,
            lost: 1,
            held: true,
        }],
        highest_step_held: Some(0),
        target: Some(TargetKind::LocalStack),
        hosts: vec![PartHost {
            part: 0,
            host: "h".into(),
            clock_offset_us: -12,
            clock_rtt_us: 80,
            clock_offset_limit_us: 100_000,
            beyond_limit: false,
        }],
        protocol: Some(ProtocolResult {
            profile: "my-chat".into(),
            unmatched: one_of_each(),
            acks: Some(AckCounts {
                requested: 4,
                received: 2,
                refused: 1,
                missing: 1,
                open_at_leave: 1,
            }),
        }),
        groups: vec![GroupResult {
            name: "lurkers".into(),
            members: 3,
            sends: Sends {
                planned: 2,
                made: 1,
                unsent: 1,
            },
            signals: 1,
            signal_failures: 1,
            deliveries: deliveries(),
            fanout: percentiles(),
            fanout_hist: "HISTF".into(),
        }],
    }
}

fn deliveries() -> Deliveries {
    Deliveries {
        expected: 4,
        on_time: 1,
        late: 1,
        never: 1,
        delivered: 1,
        lost: 2,
        duplicated: 1,
        reordered: 1,
        extra: 1,
        untracked: 1,
        untracked_sends: 1,
        messages: 1,
        incomplete: 1,
        delivery_ratio: 0.25,
    }
}

/// Every field path below `prefix` (`timeline[].errors`), maps' and opaque values' contents
/// left out.
fn field_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if !prefix.is_empty() {
        out.insert(prefix.to_owned());
    }
    if MAPS.contains(&prefix) || OPAQUE.contains(&prefix) {
        return;
    }
    match value {
        Value::Object(fields) => {
            for (name, v) in fields {
                let path = match prefix {
                    "" => name.clone(),
                    _ => format!("{prefix}.{name}"),
                };
                field_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                field_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// The field names a piece of the doc lists: backticked names in its tables' first column, and
/// the names of `{a, b, c}` lists.
struct Section {
    /// The names of its tables' first column.
    table: BTreeSet<String>,
    /// The names of its `{a, b}` lists.
    listed: BTreeSet<String>,
    /// Every backticked word, for names given in prose (`Keys fanout, connect, ...`).
    backticked: BTreeSet<String>,
}

impl Section {
    fn names(&self) -> impl Iterator<Item = &String> {
        self.table.iter().chain(&self.listed)
    }

    fn documents(&self, name: &str) -> bool {
        self.table.contains(name) || self.listed.contains(name) || self.backticked.contains(name)
    }
}

/// The words between backticks in `text`.
fn backticked(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split('`').skip(1).step_by(2).map(str::to_owned)
}

/// Names of `{a, b, c}` lists: braces holding only field names and commas.
fn brace_lists(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for chunk in text.split('{').skip(1) {
        let Some(inside) = chunk.split('}').next() else {
            continue;
        };
        let items: Vec<&str> = inside.split(',').map(str::trim).collect();
        let is_field = |s: &&str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if items.len() > 1 && items.iter().all(is_field) {
            names.extend(items.iter().map(|s| s.to_string()));
        }
    }
    names
}

/// The doc's `##` sections by the top-level field they document (`top` for "Top level"; the
/// first backticked name of the heading otherwise, `[]` dropped).
fn sections(doc: &str) -> BTreeMap<String, Section> {
    let mut out = BTreeMap::new();
    for part in doc.split("\n## ").skip(1) {
        let (heading, body) = part.split_once('\n').unwrap_or((part, ""));
        let key = backticked(heading)
            .next()
            .map_or("top".to_owned(), |k| k.trim_end_matches("[]").to_owned());
        let table = body
            .lines()
            .filter(|l| l.starts_with('|') && !l.starts_with("| field") && !l.starts_with("| ---"))
            .filter_map(|l| l.split('|').nth(1))
            .flat_map(backticked)
            .collect();
        let section = Section {
            table,
            listed: brace_lists(body),
            backticked: backticked(body).collect(),
        };
        out.insert(key, section);
    }
    out
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results-schema.md");
    std::fs::read_to_string(&path).expect("docs/results-schema.md")
}

fn written_paths() -> BTreeSet<String> {
    let value = serde_json::to_value(full_results()).expect("serializes");
    let mut paths = BTreeSet::new();
    field_paths(&value, "", &mut paths);
    paths
}

/// The names of a path's fields (`timeline[].errors` → `timeline`, `errors`).
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('.').map(|c| c.trim_end_matches("[]"))
}

#[test]
fn the_full_record_reads_back_equal() {
    let full = full_results();
    let back = Results::from_json(&full.to_json().expect("writes")).expect("reads");
    assert_eq!(
        back, full,
        "a field is written but not read, or read differently"
    );
}

#[test]
fn every_written_field_is_documented() {
    let sections = sections(&doc());
    let top = &sections["top"];
    let mut missing = Vec::new();
    for path in written_paths() {
        let mut names = components(&path);
        let first = names.next().expect("a name");
        if !top.table.contains(first) {
            if components(&path).nth(1).is_none() {
                missing.push(format!("`{first}` is not in the top-level table"));
            }
            continue;
        }
        let rest: Vec<&str> = names.collect();
        if rest.is_empty() {
            continue;
        }
        let Some(section) = sections.get(first) else {
            missing.push(format!("{path}: no section `## {first}`"));
            continue;
        };
        for name in rest.into_iter().filter(|n| !section.documents(n)) {
            missing.push(format!(
                "{path}: `{name}` is not in the section of `{first}`"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/results-schema.md lacks fields results.json has:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_documented_field_is_written() {
    let written = written_paths();
    let top_level: BTreeSet<&str> = written
        .iter()
        .filter_map(|p| components(p).next())
        .collect();
    let mut unknown = Vec::new();
    for (key, section) in sections(&doc()) {
        let names_under_key: BTreeSet<&str> = match key.as_str() {
            "top" => top_level.clone(),
            _ => written
                .iter()
                .filter(|p| components(p).next() == Some(key.as_str()))
                .flat_map(|p| components(p).skip(1))
                .collect(),
        };
        for name in section.names() {
            if !names_under_key.contains(name.as_str()) {
                unknown.push(format!("`{name}` (section `{key}`)"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/results-schema.md lists fields results.json does not have:\n{}",
        unknown.join("\n")
    );
}
