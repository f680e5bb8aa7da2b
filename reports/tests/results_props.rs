//! Property tests of the results.json loader behind `report`, `compare` and `merge`: a
//! truncated or doctored file must be refused with a clear error, and a file the loader accepts
//! must report, compare and merge without a panic. Inputs are real runs' results
//! (tests/fixtures), truncated, or with one value replaced or one key removed.
//!
//! `cargo test` tries 64 doctored files per property (each renders a report);
//! `PROPTEST_CASES=5000` runs a longer search.

use std::path::Path;

use proptest::prelude::*;
use roomstorm_reports::{RunLabels, render_comparison, render_report};
use roomstorm_results::{Results, merge};
use serde_json::Value;

fn fixtures() -> Vec<String> {
    ["smoke", "failover"]
        .iter()
        .map(|name| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(format!("{name}.json"));
            std::fs::read_to_string(path).expect("fixture")
        })
        .collect()
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

/// Every leaf of the document, as a JSON pointer.
fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                leaves(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(0)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(-1e300)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(i64::MIN)),
        Just(serde_json::json!("")),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!(true)),
        Just(serde_json::json!("HISTFAAAAB94nJNpmSzMwMDAxAABzFCaEUwzAQA")),
        "\\PC{0,16}".prop_map(Value::String),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
    ]
}

#[derive(Debug, Clone)]
enum Doctoring {
    Replace(prop::sample::Index, Value),
    Remove(prop::sample::Index),
}

fn doctoring() -> impl Strategy<Value = Doctoring> {
    prop_oneof![
        (any::<prop::sample::Index>(), odd_value()).prop_map(|(i, v)| Doctoring::Replace(i, v)),
        any::<prop::sample::Index>().prop_map(Doctoring::Remove),
    ]
}

fn doctor(text: &str, doctoring: &Doctoring) -> String {
    let mut doc: Value = serde_json::from_str(text).expect("fixture parses");
    let mut paths = Vec::new();
    leaves(&doc, String::new(), &mut paths);
    match doctoring {
        Doctoring::Replace(at, value) => {
            if let Some(slot) = doc.pointer_mut(&paths[at.index(paths.len())]) {
                *slot = value.clone();
            }
        }
        Doctoring::Remove(at) => {
            let path = &paths[at.index(paths.len())];
            let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
            match doc.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = key.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
    serde_json::to_string(&doc).expect("serializes")
}

/// What `report`, `compare` and `merge` do with a loaded file: errors are fine, panics are not.
fn use_everywhere(results: &Results, other: &Results) {
    let _ = render_report(results);
    let _ = render_comparison(other, results, 0.1, &RunLabels::default());
    let _ = render_comparison(results, other, 0.1, &RunLabels::default());
    let _ = merge(&[results.clone(), other.clone()]);
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn a_truncated_results_file_is_refused_clearly(which in 0usize..2, at in any::<prop::sample::Index>()) {
        let text = &fixtures()[which];
        let mut end = at.index(text.trim_end().len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let error = Results::from_json(&text[..end]).expect_err("a truncated file is refused");
        let shown = format!("{error:#}");
        prop_assert!(shown.contains("not a roomstorm results file"), "{}", shown);
        prop_assert!(shown.len() < 1_000, "a short message: {}", shown);
    }

    #[test]
    fn a_doctored_results_file_is_refused_or_reports(which in 0usize..2, doctoring in doctoring()) {
        let files = fixtures();
        let text = doctor(&files[which], &doctoring);
        match Results::from_json(&text) {
            Ok(results) => {
                let other = Results::from_json(&files[1 - which]).expect("fixture loads");
                use_everywhere(&results, &other);
            }
            Err(error) => {
                let shown = format!("{error:#}");
                prop_assert!(!shown.is_empty() && shown.len() < 2_000, "{}", shown);
            }
        }
    }
}
