//! Paths into a received payload (`data.text`, `$.messages[0].body`, `$`): where a profile's
//! probe comes back, what a join confirmation must hold, where an acknowledgement says "no".
//!
//! They exist so a member reads only what it needs of each event: [`JsonPath::find`] walks the
//! JSON text of the event's arguments once, skipping every value off the path without building
//! it (serde's `IgnoredAny`), and hands back the value at the end as borrowed raw JSON. No
//! `serde_json::Value` is built per message, and nothing a server sends can make it panic: a
//! value of another shape than the path expects is simply not found.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A path from one argument of an event (or an acknowledgement) to a value inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    source: String,
    steps: Vec<Step>,
}

/// How a path is written, for error messages.
pub const PATH_FORMS: &str =
    "`data.text`, `$.messages[0].text`, `$[\"a key\"].text`, or `$` for the argument itself";

impl JsonPath {
    /// Parses `text`: an optional `$` (the argument itself), then `.key`, `[index]` or
    /// `["key"]` steps; a path may start with a bare key (`data.text` is `$.data.text`).
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| Err(format!("`{text}`: {why}; write {PATH_FORMS}"));
        if text.is_empty() {
            return bad("an empty path");
        }
        let mut steps = Vec::new();
        let mut rest = text.strip_prefix('$').unwrap_or(text);
        let mut first = !text.starts_with('$');
        while !rest.is_empty() {
            let key_start = if first {
                Some(rest)
            } else {
                rest.strip_prefix('.')
            };
            first = false;
            if let Some(after) = key_start {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = &after[..end];
                if key.is_empty() || key.contains([']', '"', '\'']) {
                    return bad("a key is empty or holds ] or a quote (quote it: [\"a.b\"])");
                }
                steps.push(Step::Key(key.to_owned()));
                rest = &after[end..];
                continue;
            }
            let Some(inner) = rest.strip_prefix('[') else {
                return bad("expected `.key` or `[...]`");
            };
            if let Some(quoted) = inner.strip_prefix('"') {
                let Some(end) = quoted.find("\"]") else {
                    return bad("a quoted key is not closed with \"]");
                };
                steps.push(Step::Key(quoted[..end].to_owned()));
                rest = &quoted[end + 2..];
                continue;
            }
            let Some(end) = inner.find(']') else {
                return bad("`[` is not closed");
            };
            let Ok(index) = inner[..end].parse::<usize>() else {
                return bad("an index is a whole number ≥ 0 (a key is written [\"key\"])");
            };
            steps.push(Step::Index(index));
            rest = &inner[end + 1..];
        }
        Ok(JsonPath {
            source: text.to_owned(),
            steps,
        })
    }

    /// As written in the scenario.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether it is `$`: the argument itself.
    pub fn is_whole_argument(&self) -> bool {
        self.steps.is_empty()
    }

    /// The value at this path in element `element` of the JSON array `array` (an event's
    /// `["name", arg0, ...]`: argument k is element k + 1; an ack's `[arg0, ...]`: element k).
    /// `Ok(None)` when the array has no such element or the path leads nowhere in it; `Err`
    /// only when the text is not JSON.
    pub fn find<'a>(
        &self,
        array: &'a str,
        element: usize,
    ) -> Result<Option<&'a RawValue>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(array);
        let found = (&mut de).deserialize_any(ElementVisitor {
            element,
            steps: &self.steps,
        })?;
        de.end()?;
        Ok(found)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for JsonPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// The text of a JSON string value, borrowed when it has no escapes; `None` for any other
/// kind of value.
pub fn as_text(value: &RawValue) -> Option<Cow<'_, str>> {
    let raw = value.get();
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// Whether a value counts as "yes" where a profile asks (an acknowledgement's error): present
/// and neither `null` nor `false`.
pub fn is_set(value: Option<&RawValue>) -> bool {
    value.is_some_and(|v| !matches!(v.get(), "null" | "false"))
}

/// The `visit_*` methods of a path visitor for scalars (booleans, numbers, strings, null):
/// a path cannot go on inside one, so nothing is found there.
macro_rules! scalars_hold_nothing {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

/// Picks element `element` of the top-level array, then follows `steps` in it.
struct ElementVisitor<'p> {
    element: usize,
    steps: &'p [Step],
}

impl<'de> Visitor<'de> for ElementVisitor<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of arguments")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut index = 0;
        loop {
            if index == self.element {
                match seq.next_element_seed(StepsSeed(self.steps))? {
                    Some(value) => found = value,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            index += 1;
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    scalars_hold_nothing!();
}

/// An object key, borrowed unless it has escapes (serde borrows a `Cow` only when told to).
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// Follows the remaining steps into the value being read; the last one is kept as raw JSON.
struct StepsSeed<'p>(&'p [Step]);

impl<'de> DeserializeSeed<'de> for StepsSeed<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => <&RawValue>::deserialize(d).map(Some),
            Some((step, rest)) => d.deserialize_any(StepVisitor { step, rest }),
        }
    }
}

/// One step: a key of an object or an index of an array; any other value has nothing there.
struct StepVisitor<'p> {
    step: &'p Step,
    rest: &'p [Step],
}

impl<'de> Visitor<'de> for StepVisitor<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.step {
                // The first of repeated keys counts.
                Step::Key(wanted) if found.is_none() && key == wanted.as_str() => {
                    found = map.next_value_seed(StepsSeed(self.rest))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Step::Index(wanted) = *self.step else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        ElementVisitor {
            element: wanted,
            steps: self.rest,
        }
        .visit_seq(seq)
    }

    scalars_hold_nothing!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(path: &str, array: &'a str, element: usize) -> Option<&'a str> {
        JsonPath::parse(path)
            .unwrap()
            .find(array, element)
            .expect("JSON")
            .map(RawValue::get)
    }

    #[test]
    fn paths_parse_in_every_form() {
        let steps = |p: &str| JsonPath::parse(p).unwrap().steps;
        let key = |k: &str| Step::Key(k.to_owned());
        assert_eq!(steps("data.text"), vec![key("data"), key("text")]);
        assert_eq!(steps("$.data.text"), steps("data.text"));
        assert_eq!(steps("$"), vec![]);
        assert_eq!(
            steps("$[2].a[\"b.c\"][0]"),
            vec![Step::Index(2), key("a"), key("b.c"), Step::Index(0)]
        );
        assert_eq!(steps("items[1]"), vec![key("items"), Step::Index(1)]);
        for bad in [
            "", "a..b", "a.", "$.", "a[x]", "a[-1]", "a[1", "$x", "a[\"b]", "a]",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_are_found_in_objects_arrays_and_plain_strings() {
        let event = r#"["chat",{"data":{"text":"rs1 1 2 3 x","n":5},"list":[{"t":"a"},{"t":"b"}]},"second"]"#;
        assert_eq!(at("data.text", event, 1), Some(r#""rs1 1 2 3 x""#));
        assert_eq!(at("data.n", event, 1), Some("5"));
        assert_eq!(at("list[1].t", event, 1), Some(r#""b""#));
        assert_eq!(at("$", event, 2), Some(r#""second""#));
        assert_eq!(at("$", event, 0), Some(r#""chat""#));
        for (path, element) in [
            ("data.nope", 1),
            ("data.text.deeper", 1),
            ("list[2].t", 1),
            ("list.t", 1),
            ("data[0]", 1),
            ("$", 3),
            ("x", 2),
        ] {
            assert_eq!(
                at(path, event, element),
                None,
                "{path} in element {element}"
            );
        }
        // The first of repeated keys.
        assert_eq!(at("a", r#"["e",{"a":1,"a":2}]"#, 1), Some("1"));
        // Not an array at the top: nothing, no error.
        assert_eq!(at("a", r#"{"a":1}"#, 0), None);
        assert!(JsonPath::parse("a").unwrap().find("[1,", 0).is_err());
        assert!(JsonPath::parse("a").unwrap().find("[1] x", 0).is_err());
    }

    #[test]
    fn text_borrows_unless_escaped() {
        let raw: &RawValue = serde_json::from_str(r#""plain""#).unwrap();
        assert!(matches!(as_text(raw), Some(Cow::Borrowed("plain"))));
        let raw: &RawValue = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(as_text(raw).as_deref(), Some("a\"b"));
        let raw: &RawValue = serde_json::from_str("12").unwrap();
        assert_eq!(as_text(raw), None);
        for (text, set) in [
            ("null", false),
            ("false", false),
            ("0", true),
            ("\"no\"", true),
        ] {
            let raw: &RawValue = serde_json::from_str(text).unwrap();
            assert_eq!(is_set(Some(raw)), set, "{text}");
        }
        assert!(!is_set(None));
    }
}
