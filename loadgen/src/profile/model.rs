//! The parts of a protocol profile, validated (by `scenario::protocol`) and typed: what the
//! rest of loadgen reads, never the scenario's strings.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::path::JsonPath;
use super::template::{ProbeAllowed, Template, ValueTemplate};

/// The name of the built-in profile, the original design's protocol.
pub const ROOMSTORM: &str = "roomstorm";

/// Event names Socket.IO keeps for itself: a server cannot emit them and a client must not.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// A validated protocol profile. Serializes in the scenario file's shape (templates as written:
/// an `{env:...}` value never reaches results.json).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// Names the profile in results.json and the report.
    pub name: String,
    /// The Engine.IO request path, e.g. `/socket.io/`.
    pub path: String,
    /// The Socket.IO namespace, `/` or `/name`.
    pub namespace: String,
    /// The Engine.IO protocol version (4: socket.io 3 and 4 servers).
    pub engine_io: u8,
    /// What a member sends to connect.
    pub connect: Connect,
    /// How a member joins its room.
    pub join: Join,
    /// How a member says something.
    pub say: Say,
    /// Where the probe comes back.
    pub receive: Receive,
    /// The original design's protocol, read on `measure::probe`'s fast path.
    #[serde(skip)]
    builtin: bool,
}

/// `[protocol.connect]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connect {
    /// Query parameters of every Engine.IO request.
    pub query: Vec<(String, Template)>,
    /// Extra HTTP headers of every request (the websocket upgrade included).
    pub headers: Vec<(String, Template)>,
    /// The Socket.IO CONNECT payload (the JavaScript client's `auth`): a JSON object.
    pub auth: Option<ValueTemplate>,
}

/// `[protocol.join]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Join {
    /// The event a member emits to join its room; `None` when the room is given at connect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Its payload (none: the event is emitted without an argument).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<ValueTemplate>,
    /// When the member counts as in the room (owed the room's messages from then on).
    pub done: JoinDone,
    /// With `done = "ack"`: where in the acknowledgement's first argument the app says the
    /// join failed (a value there that is neither null nor false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_error: Option<JsonPath>,
}

/// When a join is done.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinDone {
    /// Once the join event is written (at the CONNECT ack without a join event).
    Sent,
    /// When the app acknowledges the join event.
    Ack,
    /// When this event arrives with these values at these paths (of its first argument).
    Event {
        event: String,
        matches: Vec<(JsonPath, Template)>,
    },
    /// The built-in profile: the member's own join notice (`message {event: "join"}` with its
    /// username).
    OwnNotice,
}

/// `[protocol.say]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Say {
    /// The event a member emits to say something.
    pub event: String,
    /// Its payload, with `{probe}` exactly once, in a string.
    pub payload: ValueTemplate,
    /// Ask for an acknowledgement of every message (its round trip is the `ack` latency).
    pub ack: bool,
    /// Where in the acknowledgement's first argument the app says it refused the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_error: Option<JsonPath>,
}

/// `[protocol.receive]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receive {
    /// The events that carry the room's messages.
    pub events: Vec<String>,
    /// Which argument of those events holds the message (0: the first after the name).
    pub arg: usize,
    /// Where in that argument the probe's text comes back.
    pub probe: JsonPath,
    /// Whether that text is the probe alone (`whole`) or holds it with other text (`contains`).
    pub probe_match: ProbeMatch,
    /// Whether the app sends a member's own messages back to it (then it is owed them).
    pub echo: bool,
    /// Other events the app sends that carry no probe (typing, presence, ...): not unmatched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
}

/// How the probe sits in the text that comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeMatch {
    /// The text is exactly the probe as sent.
    Whole,
    /// The probe is somewhere in the text (the app adds a name, a time, ...).
    Contains,
}

impl Profile {
    /// The original design's protocol: `/socket.io/`, `?roomid={room}`, `join {username}` done
    /// at the member's own join notice, `say {text}`, `message {event, data: {username, text}}`
    /// to the whole room, the sender included.
    pub fn roomstorm() -> Profile {
        let text = |s: &str| {
            Template::parse(s, ProbeAllowed::Yes, &|_| None).expect("a valid built-in template")
        };
        Profile {
            name: ROOMSTORM.to_owned(),
            path: "/socket.io/".to_owned(),
            namespace: "/".to_owned(),
            engine_io: 4,
            connect: Connect {
                query: vec![(
                    roomstorm_protocol::ROOM_QUERY_KEY.to_owned(),
                    text("{room}"),
                )],
                ..Connect::default()
            },
            join: Join {
                event: Some(roomstorm_protocol::EVENT_JOIN.to_owned()),
                payload: Some(ValueTemplate::Object(vec![(
                    "username".to_owned(),
                    ValueTemplate::String(text("{member}")),
                )])),
                done: JoinDone::OwnNotice,
                ack_error: None,
            },
            say: Say {
                event: roomstorm_protocol::EVENT_SAY.to_owned(),
                payload: ValueTemplate::Object(vec![(
                    "text".to_owned(),
                    ValueTemplate::String(text("{probe}")),
                )]),
                ack: false,
                ack_error: None,
            },
            receive: Receive {
                events: vec![roomstorm_protocol::EVENT_MESSAGE.to_owned()],
                arg: 0,
                probe: JsonPath::parse("data.text").expect("a valid built-in path"),
                probe_match: ProbeMatch::Whole,
                echo: true,
                ignore: Vec::new(),
            },
            builtin: true,
        }
    }

    /// A profile read from a scenario (see `scenario::validate`).
    pub fn custom(
        name: String,
        (path, namespace): (String, String),
        connect: Connect,
        join: Join,
        say: Say,
        receive: Receive,
    ) -> Profile {
        Profile {
            name,
            path,
            namespace,
            engine_io: 4,
            connect,
            join,
            say,
            receive,
            builtin: false,
        }
    }

    /// Whether this is the built-in profile (then results.json's scenario leaves it out).
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    /// The event a join confirmation arrives as, if the profile waits for one.
    pub fn join_event(&self) -> Option<&str> {
        match &self.join.done {
            JoinDone::Event { event, .. } => Some(event),
            _ => None,
        }
    }
}

impl Serialize for Connect {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.query.is_empty() {
            map.serialize_entry("query", &Pairs(&self.query))?;
        }
        if !self.headers.is_empty() {
            map.serialize_entry("headers", &Pairs(&self.headers))?;
        }
        if let Some(auth) = &self.auth {
            map.serialize_entry("auth", auth)?;
        }
        map.end()
    }
}

/// Key/template pairs written as a table.
struct Pairs<'a>(&'a [(String, Template)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for JoinDone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JoinDone::Sent => serializer.serialize_str("sent"),
            JoinDone::Ack => serializer.serialize_str("ack"),
            JoinDone::OwnNotice => serializer.serialize_str("own_notice"),
            JoinDone::Event { event, matches } => {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("event", event)?;
                if !matches.is_empty() {
                    let pairs: Vec<(String, Template)> = matches
                        .iter()
                        .map(|(path, value)| (path.source().to_owned(), value.clone()))
                        .collect();
                    map.serialize_entry("match", &Pairs(&pairs))?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::profile::template::Vars;

    #[test]
    fn the_builtin_profile_sends_what_the_original_clients_send() {
        let p = Profile::roomstorm();
        assert!(p.is_builtin());
        let vars = Vars {
            room: "r1",
            member: "m000001",
            member_index: 1,
        };
        let (before, after) = p.say.payload.render_around_probe(&vars).expect("a probe");
        assert_eq!(
            format!("{before}rs1 0 0 1 {after}"),
            r#"{"text":"rs1 0 0 1 "}"#
        );
        let join = p.join.payload.as_ref().expect("a join payload");
        assert_eq!(join.render(&vars), r#"{"username":"m000001"}"#);
        assert_eq!(p.connect.query[0].1.render(&vars), "r1");
    }
}
