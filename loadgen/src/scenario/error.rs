//! Why a scenario was refused, as `file:line: key: what is wrong; allowed: ...`.
//!
//! This exists so a bad scenario stops the run before anything starts, with a message that
//! points at the exact line and key. toml's serde errors are rewritten from serde's vocabulary
//! ("unknown field", "expected u32") into the scenario file's ("unknown key; allowed: ...").

use std::fmt;

use super::locate::{Document, KeyPath, line_of_offset};

/// A scenario that could not be read or is not valid.
#[derive(Debug)]
pub enum ScenarioError {
    /// The file could not be read.
    Read {
        /// The file as given.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file, or the scenario after overrides, is not valid.
    Invalid {
        /// The file as given.
        file: String,
        /// 1-based line of the key (or of the table that lacks it); `None` when the value came
        /// from an override or the key has no place in the file.
        line: Option<usize>,
        /// The key, as a TOML path (`traffic.transports.websokt`, `faults[0].at`); empty for
        /// TOML syntax errors.
        key: String,
        /// What is wrong, with the allowed values where there is a fixed set.
        message: String,
    },
}

impl ScenarioError {
    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ScenarioError::Invalid { line, .. } => *line,
            ScenarioError::Read { .. } => None,
        }
    }

    /// The key the error is about (empty when it is not about one key).
    pub fn key(&self) -> &str {
        match self {
            ScenarioError::Invalid { key, .. } => key,
            ScenarioError::Read { .. } => "",
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Read { file, source } => write!(f, "{file}: cannot read: {source}"),
            ScenarioError::Invalid {
                file,
                line,
                key,
                message,
            } => {
                f.write_str(file)?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                if !key.is_empty() {
                    write!(f, ": {key}")?;
                }
                write!(f, ": {message}")
            }
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScenarioError::Read { source, .. } => Some(source),
            ScenarioError::Invalid { .. } => None,
        }
    }
}

/// A semantic problem found by validation, before it is placed in the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub path: KeyPath,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: KeyPath, message: impl Into<String>) -> Problem {
        Problem {
            path,
            message: message.into(),
        }
    }
}

/// Places a validation problem: at its key's line, or marked as coming from an override.
pub(crate) fn locate_problem(
    file: &str,
    text: &str,
    problem: Problem,
    overridden: &[KeyPath],
) -> ScenarioError {
    let by_override = overridden.contains(&problem.path);
    let line = if by_override {
        None
    } else {
        Document::parse(text).and_then(|doc| doc.line_of(&problem.path))
    };
    let message = if by_override {
        format!("{} (value from an override)", problem.message)
    } else {
        problem.message
    };
    ScenarioError::Invalid {
        file: file.to_string(),
        line,
        key: problem.path.to_string(),
        message,
    }
}

/// Turns toml's deserialization error into one naming the line and the key.
pub(crate) fn from_toml(file: &str, text: &str, error: &toml::de::Error) -> ScenarioError {
    let message = error.message().trim();
    let span = error.span();
    let Some(doc) = Document::parse(text) else {
        let line = span.map(|span| line_of_offset(text, span.start));
        return invalid(
            file,
            line,
            String::new(),
            format!("invalid TOML: {message}"),
        );
    };
    // serde reports a key missing from the document root with an empty span at 0.
    let offset = span.filter(|span| !span.is_empty()).map(|span| span.start);
    let line = offset.map(|offset| line_of_offset(text, offset));
    let path = offset.map(|offset| doc.path_at(offset)).unwrap_or_default();
    let (path, message) = rewrite(path, message);
    invalid(file, line, path.to_string(), message)
}

fn invalid(file: &str, line: Option<usize>, key: String, message: String) -> ScenarioError {
    ScenarioError::Invalid {
        file: file.to_string(),
        line,
        key,
        message,
    }
}

/// Rewrites serde's message (and completes the path when the message names the key).
fn rewrite(path: KeyPath, message: &str) -> (KeyPath, String) {
    if let Some((name, rest)) = quoted_after(message, "unknown field `") {
        let path = with_last_key(path, name);
        return (path, format!("unknown key{}", allowed(rest)));
    }
    if let Some((name, _)) = quoted_after(message, "missing field `") {
        return (
            with_last_key(path, name),
            "missing required key".to_string(),
        );
    }
    if let Some((name, rest)) = quoted_after(message, "unknown variant `") {
        return (path, format!("unknown value `{name}`{}", allowed(rest)));
    }
    let hint = form_hint(&path);
    let message = match message.strip_prefix("invalid type: ") {
        Some(rest) => format!("wrong type: found {}", humanize(rest)),
        None => humanize(message),
    };
    (path, format!("{message}{hint}"))
}

/// For `prefix` + "`name`" + rest, returns name and rest.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<(&'m str, &'m str)> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`')
}

/// The path ending in key `name`: serde's span may point at the key itself or at its table.
fn with_last_key(path: KeyPath, name: &str) -> KeyPath {
    if path.last_key() == Some(name) {
        path
    } else {
        path.key(name)
    }
}

/// "; allowed: a, b, c" from serde's ", expected one of `a`, `b`, `c`" (or "expected `a` or
/// `b`", or "expected `a`"). Names never contain spaces or commas.
fn allowed(rest: &str) -> String {
    let list = rest
        .trim_start_matches(',')
        .trim()
        .trim_start_matches("expected one of")
        .trim_start_matches("expected");
    let names: Vec<&str> = list
        .split([',', ' '])
        .filter(|word| *word != "or")
        .map(|name| name.trim().trim_matches('`'))
        .filter(|name| !name.is_empty() && !name.contains("no fields"))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("; allowed: {}", names.join(", "))
    }
}

/// serde's Rust type names in words a scenario author knows.
fn humanize(message: &str) -> String {
    const WORDS: [(&str, &str); 6] = [
        (
            "unit variant, expected newtype variant",
            "a bare name, expected { name = value }",
        ),
        ("expected u32", "expected a whole number (0 to 4294967295)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected an array"),
    ];
    let mut text = message.to_string();
    for (from, to) in WORDS {
        text = text.replace(from, to);
    }
    // Our private serde types ("struct RawTarget") mean nothing to the author.
    for (prefix, words) in [
        ("struct Raw", "a table"),
        ("enum Raw", "one of the allowed values"),
    ] {
        if let Some(at) = text.find(prefix) {
            let name_end = text[at + prefix.len()..]
                .find(|c: char| !c.is_alphanumeric())
                .map_or(text.len(), |n| at + prefix.len() + n);
            text.replace_range(at..name_end, words);
        }
    }
    text
}

/// The accepted forms of keys whose values come in several shapes.
fn form_hint(path: &KeyPath) -> String {
    let hint = match path.last_key() {
        Some("room_size") => "\"fixed\", { uniform = [min, max] }, { zipf = s }",
        Some("client_address") => "spread, forwarded, none",
        Some("reconnect") => "none, backoff",
        _ => return String::new(),
    };
    format!("; allowed: {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_scenario_words() {
        let path = KeyPath::of(&["traffic", "transports"]);
        let (path, message) = rewrite(
            path,
            "unknown field `websokt`, expected one of `websocket`, `polling`, `upgrade`",
        );
        assert_eq!(path.to_string(), "traffic.transports.websokt");
        assert_eq!(message, "unknown key; allowed: websocket, polling, upgrade");

        let (_, message) = rewrite(
            KeyPath::of(&["seed"]),
            "invalid type: string \"x\", expected u64",
        );
        assert_eq!(
            message,
            "wrong type: found string \"x\", expected a whole number (0 or more)"
        );

        let (_, message) = rewrite(
            KeyPath::of(&["target"]),
            "invalid type: integer `1`, expected struct RawTarget",
        );
        assert_eq!(message, "wrong type: found integer `1`, expected a table");
    }

    #[test]
    fn errors_display_file_line_key() {
        let error = ScenarioError::Invalid {
            file: "scenarios/x.toml".into(),
            line: Some(12),
            key: "population.members".into(),
            message: "must be at least 1".into(),
        };
        assert_eq!(
            error.to_string(),
            "scenarios/x.toml:12: population.members: must be at least 1"
        );
        assert_eq!(error.line(), Some(12));
    }
}
