//! Key paths (`traffic.transports.websocket`, `faults[1].at`) and where they sit in the file.
//!
//! This exists because every refusal must name the file, line and key: serde errors carry only
//! a byte span, and semantic checks run on typed values that have forgotten their position. Both
//! are resolved here against toml's spanned document tree (`toml::de::DeTable`), parsed again
//! from the source text only when an error is being reported.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value lives in the document, from the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The path of nested table keys, e.g. `KeyPath::of(&["traffic", "jitter"])`.
    pub(crate) fn of(keys: &[&str]) -> KeyPath {
        KeyPath(
            keys.iter()
                .map(|k| Segment::Key((*k).to_string()))
                .collect(),
        )
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// The last table key, if the path ends in one.
    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position > 0 => write!(f, ".{}", quote_key(key))?,
                Segment::Key(key) => f.write_str(&quote_key(key))?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A key as TOML would need it written: bare when it can be, quoted otherwise
/// (`thresholds."fanout.p99"`).
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The source text with its spanned tree, for lookups in both directions.
pub(crate) struct Document<'t> {
    text: &'t str,
    root: Spanned<DeTable<'t>>,
}

impl<'t> Document<'t> {
    /// Parses `text`; `None` when it is not valid TOML (then only byte spans can be reported).
    pub(crate) fn parse(text: &'t str) -> Option<Document<'t>> {
        let root = DeTable::parse(text).ok()?;
        Some(Document { text, root })
    }

    /// The line of the key at `path`, or of its nearest ancestor present in the file (a missing
    /// key is reported at the table that should hold it). `None` for the root itself.
    pub(crate) fn line_of(&self, path: &KeyPath) -> Option<usize> {
        let span = self.span_of(path)?;
        Some(line_of_offset(self.text, span.start))
    }

    /// The span of the deepest existing element of `path`: the key for a table entry, the
    /// element itself for an array item.
    fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let mut table = Some(self.root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'t>>]> = None;
        let mut found = None;
        for segment in &path.0 {
            let value = match (segment, table, array) {
                (Segment::Key(key), Some(t), _) => t.get_key_value(key.as_str()).map(|(k, v)| {
                    found = Some(k.span());
                    v
                }),
                (Segment::Index(index), _, Some(items)) => items.get(*index).inspect(|v| {
                    found = Some(v.span());
                }),
                _ => None,
            };
            let Some(value) = value else { break };
            table = value.get_ref().as_table();
            array = value.get_ref().as_array().map(|a| a.as_ref());
        }
        found
    }

    /// The path of the innermost key or array item whose key or value contains byte `offset`:
    /// turns a serde error's span back into the key it is about.
    pub(crate) fn path_at(&self, offset: usize) -> KeyPath {
        let mut path = KeyPath::default();
        self.descend_table(self.root.get_ref(), offset, &mut path);
        path
    }

    fn descend_table(&self, table: &DeTable<'t>, offset: usize, path: &mut KeyPath) {
        let hit = table
            .iter()
            .find(|(key, value)| key.span().contains(&offset) || holds(value, offset));
        if let Some((key, value)) = hit {
            path.0.push(Segment::Key(key.get_ref().to_string()));
            self.descend_value(value.get_ref(), offset, path);
        }
    }

    fn descend_value(&self, value: &DeValue<'t>, offset: usize, path: &mut KeyPath) {
        match value {
            DeValue::Table(table) => self.descend_table(table, offset, path),
            DeValue::Array(items) => {
                let hit = items
                    .iter()
                    .enumerate()
                    .find(|(_, item)| holds(item, offset));
                if let Some((index, item)) = hit {
                    path.0.push(Segment::Index(index));
                    self.descend_value(item.get_ref(), offset, path);
                }
            }
            _ => {}
        }
    }
}

/// Whether `offset` falls in `value` or anything inside it. A `[table]`'s own span covers only
/// its header; its keys come after it, so children are searched too.
fn holds(value: &Spanned<DeValue<'_>>, offset: usize) -> bool {
    if value.span().contains(&offset) {
        return true;
    }
    match value.get_ref() {
        DeValue::Table(table) => table
            .iter()
            .any(|(k, v)| k.span().contains(&offset) || holds(v, offset)),
        DeValue::Array(items) => items.iter().any(|item| holds(item, offset)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"x\"\n\n[traffic]\njitter = 0.1\ntransports = { websocket = 1.0 }\n\n[[faults]]\nat = \"1s\"\n\n[[faults]]\nat = \"2s\"\n\n[thresholds]\n\"fanout.p99\" = \"< 5ms\"\n";

    #[test]
    fn paths_display_like_toml() {
        let path = KeyPath::of(&["thresholds"]).key("fanout.p99");
        assert_eq!(path.to_string(), "thresholds.\"fanout.p99\"");
        assert_eq!(
            KeyPath::of(&["faults"]).index(1).key("at").to_string(),
            "faults[1].at"
        );
    }

    #[test]
    fn keys_are_found_at_their_line() {
        let doc = Document::parse(TEXT).unwrap();
        assert_eq!(doc.line_of(&KeyPath::of(&["name"])), Some(1));
        assert_eq!(doc.line_of(&KeyPath::of(&["traffic", "jitter"])), Some(4));
        let websocket = KeyPath::of(&["traffic", "transports", "websocket"]);
        assert_eq!(doc.line_of(&websocket), Some(5));
        assert_eq!(
            doc.line_of(&KeyPath::of(&["faults"]).index(1).key("at")),
            Some(11)
        );
        let p99 = KeyPath::of(&["thresholds"]).key("fanout.p99");
        assert_eq!(doc.line_of(&p99), Some(14));
    }

    #[test]
    fn missing_keys_fall_back_to_their_table() {
        let doc = Document::parse(TEXT).unwrap();
        assert_eq!(doc.line_of(&KeyPath::of(&["traffic", "deadline"])), Some(3));
        assert_eq!(doc.line_of(&KeyPath::of(&["population", "rooms"])), None);
    }

    #[test]
    fn offsets_map_back_to_paths() {
        let doc = Document::parse(TEXT).unwrap();
        let at = |needle: &str| TEXT.find(needle).unwrap();
        assert_eq!(doc.path_at(at("0.1")).to_string(), "traffic.jitter");
        assert_eq!(
            doc.path_at(at("websocket = 1")).to_string(),
            "traffic.transports.websocket"
        );
        assert_eq!(doc.path_at(at("\"2s\"")).to_string(), "faults[1].at");
    }
}
