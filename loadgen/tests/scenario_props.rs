//! Property tests of the scenario loader: a malformed scenario file must be refused with
//! `file:line: key: why` (exit 2 in the CLI), never a panic, and a file the loader accepts must
//! plan without one. Inputs are the shipped scenarios, mutated: truncated, a line dropped, a
//! value replaced by an odd one, a line inserted.
//!
//! `cargo test` tries 256 mutations per property; `PROPTEST_CASES=20000` runs a longer search.

use std::path::Path;

use loadgen::scenario::Scenario;
use proptest::prelude::*;

fn shipped() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(p).expect("read a scenario"))
        })
        .collect()
}

/// Values that are wrong in some way for nearly every key.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e309".to_string()),
        Just("nan".to_string()),
        Just("18446744073709551616".to_string()),
        Just("4294967296".to_string()),
        Just("\"\"".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"1000000h\"".to_string()),
        Just("\"-5s\"".to_string()),
        Just("\"100%\"".to_string()),
        Just("\"1000%\"".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[".to_string()),
        Just("\"".to_string()),
        "\"\\PC{0,12}\"",
        "[0-9]{1,12}",
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    DropLine(prop::sample::Index),
    ReplaceValue(prop::sample::Index, String),
    InsertLine(prop::sample::Index, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        any::<prop::sample::Index>().prop_map(Mutation::DropLine),
        (any::<prop::sample::Index>(), odd_value()).prop_map(|(i, v)| Mutation::ReplaceValue(i, v)),
        (
            any::<prop::sample::Index>(),
            "[a-z_.]{1,20} = \\PC{0,10}|\\[\\[?[a-z_.]{1,12}\\]\\]?"
        )
            .prop_map(|(i, l)| Mutation::InsertLine(i, l)),
    ]
}

fn mutate(text: &str, mutation: &Mutation) -> String {
    let lines: Vec<&str> = text.lines().collect();
    match mutation {
        Mutation::Truncate(at) => {
            let mut end = at.index(text.len() + 1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_string()
        }
        Mutation::DropLine(at) => {
            let drop = at.index(lines.len().max(1));
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
                .join("\n")
        }
        Mutation::ReplaceValue(at, value) => {
            let with_values: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            if !with_values.is_empty() {
                let i = with_values[at.index(with_values.len())];
                let (key, _) = lines[i].split_once(" = ").unwrap_or((lines[i], ""));
                out[i] = format!("{key} = {value}");
            }
            out.join("\n")
        }
        Mutation::InsertLine(at, line) => {
            let mut out: Vec<&str> = lines.clone();
            out.insert(at.index(lines.len() + 1), line);
            out.join("\n")
        }
    }
}

proptest! {
    #[test]
    fn a_mutated_scenario_is_refused_with_its_place_or_plans(
        which in any::<prop::sample::Index>(),
        mutation in mutation(),
    ) {
        let files = shipped();
        let (name, text) = &files[which.index(files.len())];
        let text = mutate(text, &mutation);
        match Scenario::from_str(&text, name) {
            Ok(scenario) => {
                // Accepted: everything the run derives from it must work too.
                let members = 1 + which.index(5_000);
                let _ = scenario.load_steps(members);
                let _ = scenario.goose_test_plan(members);
                let _ = scenario.ramp_up();
                let _ = scenario.run_length();
                let _ = loadgen::scenario::plan(&scenario);
            }
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.starts_with(name.as_str()), "names the file: {}", shown);
                if let Some(line) = e.line() {
                    prop_assert!(line >= 1 && line <= text.lines().count() + 1,
                        "line {} is in the file of {} lines: {}", line, text.lines().count(), shown);
                    let place = format!("{name}:{line}");
                    prop_assert!(shown.starts_with(&place), "{}", shown);
                }
                prop_assert!(shown.len() < 2_000, "a short message: {}", shown);
            }
        }
    }
}
