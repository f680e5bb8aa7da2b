//! Property tests of the protocol profile's parsers (issue 16): paths into payloads, templates,
//! and the payloads rendered from them. A path or a template from a scenario file must parse or
//! be refused, never panic; a path must find a value in, or reject, anything a server sends
//! without panicking; a rendered payload must be valid JSON whatever the member's values are,
//! with the probe exactly where `{probe}` was.
//!
//! `cargo test` tries 256 inputs per property; `PROPTEST_CASES=20000` runs a longer search.

use loadgen::profile::path::as_text;
use loadgen::profile::{JsonPath, ProbeAllowed, Template, ValueTemplate, Vars};
use proptest::prelude::*;

/// Text built from the path grammar's pieces (and JSON's), so the search reaches deep.
fn path_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("$".to_string()),
        Just(".".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("\"".to_string()),
        Just("data".to_string()),
        Just("[0]".to_string()),
        Just("[\"a.b\"]".to_string()),
        "[0-9]{1,22}",
        "\\PC{0,3}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

/// JSON-ish text: arrays and objects of the pieces a chat payload has, often broken.
fn payload_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"data\"".to_string()),
        Just("\"text\"".to_string()),
        Just("\"rs1 1 2 3 xx\"".to_string()),
        Just("\"a\\\"b\"".to_string()),
        Just("null".to_string()),
        Just("12".to_string()),
        "\\PC{0,3}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

/// A TOML-shaped payload whose strings are templates (some with `{probe}`).
fn value_template() -> impl Strategy<Value = toml::Value> {
    let string = prop_oneof![
        Just("{room}".to_string()),
        Just("<{member}> #{member_index}".to_string()),
        Just("{{literal}}".to_string()),
        "[a-z \"\\\\é\\n]{0,6}",
    ];
    let leaf = prop_oneof![
        string.prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        any::<bool>().prop_map(toml::Value::Boolean),
        (-1e9f64..1e9).prop_map(toml::Value::Float),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map("[a-z.\" ]{1,5}", inner, 0..4)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// Puts `{probe}` into the first string of `value`, wrapping it when it has none.
fn with_probe(value: toml::Value) -> toml::Value {
    fn put(value: &mut toml::Value) -> bool {
        match value {
            toml::Value::String(s) => {
                s.push_str("{probe}");
                true
            }
            toml::Value::Array(items) => items.iter_mut().any(put),
            toml::Value::Table(t) => t.iter_mut().any(|(_, v)| put(v)),
            _ => false,
        }
    }
    let mut value = value;
    if put(&mut value) {
        value
    } else {
        let mut table = toml::Table::new();
        table.insert("wrapped".into(), value);
        table.insert("text".into(), toml::Value::String("{probe}".into()));
        toml::Value::Table(table)
    }
}

proptest! {
    #[test]
    fn paths_parse_or_refuse_and_find_or_reject_without_panicking(
        path in path_text(),
        payload in payload_text(),
        element in 0usize..4,
    ) {
        if let Ok(path) = JsonPath::parse(&path) {
            let again = JsonPath::parse(path.source());
            prop_assert_eq!(again.as_ref(), Ok(&path));
            if let Ok(Some(value)) = path.find(&payload, element) {
                // What is found is valid JSON, and a string's text decodes.
                prop_assert!(serde_json::from_str::<serde_json::Value>(value.get()).is_ok());
                let _ = as_text(value);
            }
        }
    }

    #[test]
    fn templates_parse_or_refuse_without_panicking(text in "\\PC{0,12}|[{}a-z:]{0,12}") {
        let env = |name: &str| (name == "SET").then(|| "v".to_owned());
        if let Ok(t) = Template::parse(&text, ProbeAllowed::Yes, &env) {
            let vars = Vars { room: "r", member: "m", member_index: 1 };
            let _ = t.render(&vars);
            prop_assert_eq!(t.source(), text.as_str());
        }
    }

    /// Whatever the member's values (quotes, backslashes, control characters), a rendered
    /// payload is valid JSON, and with the probe put where `{probe}` was, its text is found
    /// again in the string that held it.
    #[test]
    fn rendered_payloads_are_json_with_the_probe_in_place(
        value in value_template(),
        room in "\\PC{0,8}",
        member in "[\"\\\\\\x01a-z]{0,8}",
    ) {
        let template = ValueTemplate::from_toml(&with_probe(value), ProbeAllowed::Yes, &|_| None)
            .map_err(|(_, e)| TestCaseError::fail(e))?;
        let vars = Vars { room: &room, member: &member, member_index: 7 };
        let (before, after) = template
            .render_around_probe(&vars)
            .ok_or_else(|| TestCaseError::fail("a {probe} was put in"))?;
        let probe = "rs1 3 4 5 xxxx";
        let json: serde_json::Value = serde_json::from_str(&format!("{before}{probe}{after}"))
            .map_err(|e| TestCaseError::fail(format!("{e}: {before}{probe}{after}")))?;
        fn holds(v: &serde_json::Value, probe: &str) -> bool {
            match v {
                serde_json::Value::String(s) => s.contains(probe),
                serde_json::Value::Array(items) => items.iter().any(|i| holds(i, probe)),
                serde_json::Value::Object(m) => m.values().any(|i| holds(i, probe)),
                _ => false,
            }
        }
        prop_assert!(holds(&json, probe), "{}", json);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&template.render(&vars)).is_ok());
    }
}
