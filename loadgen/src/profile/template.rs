//! Templates: the texts and payloads of a protocol profile, with the member's values put in
//! when it connects (`{room}`, `{member}`, `{member_index}`, `{env:NAME}`) and the probe when
//! it says something (`{probe}`).
//!
//! They exist so a profile can describe any app's query, auth object and event payloads in the
//! scenario file, checked when it is loaded (an unknown placeholder, an unset environment
//! variable or a `{probe}` where none can go is a setup error), and rendered cheaply at run time:
//! a say payload is rendered once per session into the JSON text before and after the probe, so
//! each message costs one concatenation. A template remembers how it was written, and that is
//! what it serializes as: the scenario echoed into results.json shows `{env:CHAT_TOKEN}`, never
//! the token.

use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// The member's values a template can hold.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The room id, e.g. `smoke-r003` (`{room}`).
    pub room: &'a str,
    /// The member's name, e.g. `m000123` (`{member}`).
    pub member: &'a str,
    /// The member's id, from 0 over the whole run (`{member_index}`).
    pub member_index: u32,
}

/// One piece of a template's text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Room,
    Member,
    MemberIndex,
    /// `{env:NAME}`, read when the scenario was loaded.
    Env {
        value: String,
    },
    Probe,
}

/// Where `{probe}` may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAllowed {
    /// Nowhere (connect and join templates).
    No,
    /// In this template (the say payload).
    Yes,
}

/// A text with placeholders, e.g. `"room-{room}"`, `"Bearer {env:CHAT_TOKEN}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`; `env` reads an environment variable (`std::env::var` outside tests).
    /// `{{` and `}}` stand for literal braces.
    pub fn parse(
        source: &str,
        probe: ProbeAllowed,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
                continue;
            }
            if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!(
                    "`{source}`: a lone `}}` (write `}}}}` for a brace)"
                ));
            }
            let Some(end) = tail.find('}') else {
                return Err(format!(
                    "`{source}`: `{{` is not closed (write `{{{{` for a brace)"
                ));
            };
            let name = &tail[1..end];
            let part = placeholder(name, probe, env).map_err(|why| format!("`{source}`: {why}"))?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// How many `{probe}` it holds.
    pub fn probes(&self) -> usize {
        self.parts.iter().filter(|p| **p == Part::Probe).count()
    }

    /// Whether it is exactly `{probe}`, with nothing around it.
    pub fn is_probe_alone(&self) -> bool {
        self.parts == [Part::Probe]
    }

    /// The text for `vars` (a `{probe}` renders as nothing: callers that send probes use
    /// [`ValueTemplate::render_around_probe`]).
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            push_part(&mut out, part, vars);
        }
        out
    }

    /// As written in the scenario.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn push_part(out: &mut String, part: &Part, vars: &Vars<'_>) {
    match part {
        Part::Literal(text) => out.push_str(text),
        Part::Room => out.push_str(vars.room),
        Part::Member => out.push_str(vars.member),
        // Writing into a String cannot fail.
        Part::MemberIndex => {
            let _ = write!(out, "{}", vars.member_index);
        }
        Part::Env { value } => out.push_str(value),
        Part::Probe => {}
    }
}

/// Every placeholder's name, for error messages.
pub const PLACEHOLDERS: &str = "{room}, {member}, {member_index}, {env:NAME}, {probe} (say.payload only), {{ and }} for braces";

fn placeholder(
    name: &str,
    probe: ProbeAllowed,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Part, String> {
    Ok(match name {
        "room" => Part::Room,
        "member" => Part::Member,
        "member_index" => Part::MemberIndex,
        "probe" if probe == ProbeAllowed::Yes => Part::Probe,
        "probe" => {
            return Err(
                "{probe} goes in protocol.say.payload only (it is the text of one message)"
                    .to_owned(),
            );
        }
        _ => match name.strip_prefix("env:") {
            Some(var) if !var.is_empty() => match env(var) {
                Some(value) => Part::Env { value },
                None => {
                    return Err(format!(
                        "the environment variable {var} is not set (set it before loadgen starts)"
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "unknown placeholder {{{name}}}; allowed: {PLACEHOLDERS}"
                ));
            }
        },
    })
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// A JSON value whose strings are templates: an event payload or the auth object, as a TOML
/// value of the scenario (tables, arrays, strings, numbers, booleans).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(Template),
    Array(Vec<ValueTemplate>),
    /// Keys sorted (as the TOML table gives them; a JSON object has no order).
    Object(Vec<(String, ValueTemplate)>),
}

/// A path to a string inside a [`ValueTemplate`], for errors: keys and array indices.
pub type ValuePath = Vec<PathStep>;

/// One step of a [`ValuePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

impl ValueTemplate {
    /// Reads a TOML value; a string that is not a valid template gives its path in `value`.
    pub fn from_toml(
        value: &toml::Value,
        probe: ProbeAllowed,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ValueTemplate, (ValuePath, String)> {
        Ok(match value {
            toml::Value::String(s) => {
                ValueTemplate::String(Template::parse(s, probe, env).map_err(|e| (Vec::new(), e))?)
            }
            toml::Value::Integer(n) => ValueTemplate::Integer(*n),
            toml::Value::Float(f) if f.is_finite() => ValueTemplate::Float(*f),
            toml::Value::Float(f) => {
                return Err((Vec::new(), format!("{f} has no JSON form")));
            }
            toml::Value::Boolean(b) => ValueTemplate::Bool(*b),
            toml::Value::Datetime(d) => {
                return Err((
                    Vec::new(),
                    format!("{d}: a TOML date has no JSON form; write it as a string"),
                ));
            }
            toml::Value::Array(items) => ValueTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        Self::from_toml(item, probe, env).map_err(|(mut path, e)| {
                            path.insert(0, PathStep::Index(i));
                            (path, e)
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(table) => ValueTemplate::Object(
                table
                    .iter()
                    .map(|(key, item)| {
                        Self::from_toml(item, probe, env)
                            .map(|v| (key.clone(), v))
                            .map_err(|(mut path, e)| {
                                path.insert(0, PathStep::Key(key.clone()));
                                (path, e)
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The templates it holds, with their paths.
    pub fn strings(&self) -> Vec<(ValuePath, &Template)> {
        let mut out = Vec::new();
        self.collect_strings(&mut Vec::new(), &mut out);
        out
    }

    fn collect_strings<'a>(&'a self, at: &mut ValuePath, out: &mut Vec<(ValuePath, &'a Template)>) {
        match self {
            ValueTemplate::String(t) => out.push((at.clone(), t)),
            ValueTemplate::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push(PathStep::Index(i));
                    item.collect_strings(at, out);
                    at.pop();
                }
            }
            ValueTemplate::Object(entries) => {
                for (key, item) in entries {
                    at.push(PathStep::Key(key.clone()));
                    item.collect_strings(at, out);
                    at.pop();
                }
            }
            ValueTemplate::Bool(_) | ValueTemplate::Integer(_) | ValueTemplate::Float(_) => {}
        }
    }

    /// Whether it is a JSON object (what Socket.IO's CONNECT auth must be).
    pub fn is_object(&self) -> bool {
        matches!(self, ValueTemplate::Object(_))
    }

    /// The JSON text for `vars` (a `{probe}` renders as nothing).
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        let mut after = None;
        self.write_json(&mut out, vars, &mut after);
        if let Some(rest) = after {
            out.push_str(&rest);
        }
        out
    }

    /// The JSON text for `vars`, cut where the probe goes: `(before, after)`, so that
    /// `before + probe + after` is the payload with the probe's text in its string (the probe
    /// is plain ASCII without quotes or backslashes: it needs no escaping). `None` without a
    /// `{probe}`.
    pub fn render_around_probe(&self, vars: &Vars<'_>) -> Option<(String, String)> {
        let mut before = String::new();
        let mut after = None;
        self.write_json(&mut before, vars, &mut after);
        after.map(|after| (before, after))
    }

    /// Writes the JSON text; once a `{probe}` is reached, the rest goes into `after`.
    fn write_json(&self, out: &mut String, vars: &Vars<'_>, after: &mut Option<String>) {
        let target = |out: &mut String, after: &mut Option<String>, text: &str| match after {
            Some(rest) => rest.push_str(text),
            None => out.push_str(text),
        };
        match self {
            ValueTemplate::Bool(b) => target(out, after, if *b { "true" } else { "false" }),
            ValueTemplate::Integer(n) => target(out, after, &n.to_string()),
            ValueTemplate::Float(f) => target(out, after, &json_text(&serde_json::json!(f))),
            ValueTemplate::String(t) => {
                target(out, after, "\"");
                for part in &t.parts {
                    if *part == Part::Probe && after.is_none() {
                        *after = Some(String::new());
                        continue;
                    }
                    let mut text = String::new();
                    push_part(&mut text, part, vars);
                    let quoted = json_text(&serde_json::Value::String(text));
                    target(out, after, &quoted[1..quoted.len() - 1]);
                }
                target(out, after, "\"");
            }
            ValueTemplate::Array(items) => {
                target(out, after, "[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        target(out, after, ",");
                    }
                    match after {
                        Some(rest) => item.write_json(rest, vars, &mut None),
                        None => item.write_json(out, vars, after),
                    }
                }
                target(out, after, "]");
            }
            ValueTemplate::Object(entries) => {
                target(out, after, "{");
                for (i, (key, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        target(out, after, ",");
                    }
                    target(
                        out,
                        after,
                        &json_text(&serde_json::Value::String(key.clone())),
                    );
                    target(out, after, ":");
                    match after {
                        Some(rest) => item.write_json(rest, vars, &mut None),
                        None => item.write_json(out, vars, after),
                    }
                }
                target(out, after, "}");
            }
        }
    }
}

/// serde_json's text of a value (a `Value` always serializes).
fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

impl Serialize for ValueTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ValueTemplate::Bool(b) => serializer.serialize_bool(*b),
            ValueTemplate::Integer(n) => serializer.serialize_i64(*n),
            ValueTemplate::Float(f) => serializer.serialize_f64(*f),
            ValueTemplate::String(t) => t.serialize(serializer),
            ValueTemplate::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            ValueTemplate::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, item) in entries {
                    map.serialize_entry(key, item)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "t\"0k".to_owned())
    }

    const VARS: Vars<'static> = Vars {
        room: "chat-r001",
        member: "m000007",
        member_index: 7,
    };

    #[test]
    fn placeholders_render_and_the_source_is_what_serializes() {
        let t = Template::parse(
            "{room}/{member}#{member_index} {env:TOKEN} {{x}}",
            ProbeAllowed::No,
            &env,
        )
        .unwrap();
        assert_eq!(t.render(&VARS), "chat-r001/m000007#7 t\"0k {x}");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#""{room}/{member}#{member_index} {env:TOKEN} {{x}}""#,
            "the environment's value never leaves the process"
        );
    }

    #[test]
    fn bad_templates_say_why() {
        for (source, why) in [
            ("{rooom}", "unknown placeholder {rooom}"),
            ("{room", "is not closed"),
            ("a}b", "lone"),
            ("{env:NOPE}", "NOPE is not set"),
            ("{env:}", "unknown placeholder"),
            ("{probe}", "say.payload only"),
        ] {
            let e = Template::parse(source, ProbeAllowed::No, &no_env).unwrap_err();
            assert!(e.contains(why), "{source}: {e}");
        }
        let t = Template::parse("said {probe}!", ProbeAllowed::Yes, &no_env).unwrap();
        assert_eq!((t.probes(), t.is_probe_alone()), (1, false));
        let t = Template::parse("{probe}", ProbeAllowed::Yes, &no_env).unwrap();
        assert!(t.is_probe_alone());
    }

    fn value(toml_text: &str) -> ValueTemplate {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        ValueTemplate::from_toml(&table["v"], ProbeAllowed::Yes, &env).unwrap()
    }

    #[test]
    fn payloads_render_as_json_with_the_probe_cut_out() {
        let v = value(
            r#"v = { room = "{room}", msg = { text = "<{member}> {probe}", tags = ["a\"", 1, 2.5, true] } }"#,
        );
        let (before, after) = v.render_around_probe(&VARS).unwrap();
        let probe = "rs1 3 4 5 xxxx";
        let json: serde_json::Value =
            serde_json::from_str(&format!("{before}{probe}{after}")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "room": "chat-r001",
                "msg": { "text": "<m000007> rs1 3 4 5 xxxx", "tags": ["a\"", 1, 2.5, true] },
            })
        );
        // A plain string payload.
        let v = value(r#"v = "{probe}""#);
        assert_eq!(
            v.render_around_probe(&VARS),
            Some(("\"".to_owned(), "\"".to_owned()))
        );
        // No probe: no cut.
        let v = value(r#"v = { token = "{env:TOKEN}" }"#);
        assert_eq!(v.render_around_probe(&VARS), None);
        assert_eq!(v.render(&VARS), r#"{"token":"t\"0k"}"#);
        assert_eq!(
            v.strings()
                .iter()
                .map(|(p, _)| p.clone())
                .collect::<Vec<_>>(),
            vec![vec![PathStep::Key("token".into())]]
        );
    }

    #[test]
    fn a_bad_string_deep_inside_names_its_path() {
        let table: toml::Table = toml::from_str(r#"v = { a = [1, { b = "{nope}" }] }"#).unwrap();
        let (path, e) =
            ValueTemplate::from_toml(&table["v"], ProbeAllowed::No, &no_env).unwrap_err();
        assert_eq!(
            path,
            vec![
                PathStep::Key("a".into()),
                PathStep::Index(1),
                PathStep::Key("b".into())
            ]
        );
        assert!(e.contains("{nope}"), "{e}");
    }
}
