//! What a received event is to a profile: a message with a probe, a notice, an event to
//! ignore, the app's error, or something the profile cannot place.
//!
//! It exists so that nothing a server sends is dropped without a count: an event that does not
//! match the profile is [`Heard::Unmatched`], with the reason, and the run reports how many
//! (results.json `protocol.unmatched`). A wrong profile (a misspelt event name, a probe path
//! into the wrong field) therefore shows as unmatched events beside the lost deliveries, never
//! as a run that quietly measured nothing. Per message it reads the event name, then only the
//! value at the probe's path.

use std::borrow::Cow;

use super::model::{ProbeMatch, Profile};
use super::path::{JsonPath, as_text};
use crate::measure::probe::{MessageKind, Probe, decode_probe, find_probe, parse_message_packet};

/// What one received event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// A room message carrying a probe.
    Probe(Probe),
    /// A room message that carries no probe by design (the built-in join and quit notices).
    Notice,
    /// An event the profile names as carrying no probe (`receive.ignore`, the join
    /// confirmation's event).
    Ignored,
    /// The built-in profile's `error {code, message}`: the whole packet, for its code.
    Error(&'a str),
    /// An event this profile cannot place.
    Unmatched(Unmatched),
}

impl Heard<'_> {
    /// Whether it is a room message (an event of `receive.events`, with or without its probe):
    /// counted in `received_messages_total`.
    pub fn is_message(&self) -> bool {
        matches!(
            self,
            Heard::Probe(_)
                | Heard::Notice
                | Heard::Unmatched(Unmatched::NoTextAtPath | Unmatched::NoProbeInText)
        )
    }
}

/// Why an event did not match the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unmatched {
    /// An event the profile does not name (`receive.events`, `receive.ignore`, the join
    /// confirmation), or not a Socket.IO event array at all.
    UnexpectedEvent,
    /// A room message without a string at `receive.probe` (in argument `receive.arg`).
    NoTextAtPath,
    /// A string there, but not a probe (`probe_match = "whole"`) or holding none
    /// (`"contains"`): someone else's text, or a path to the wrong field.
    NoProbeInText,
    /// An acknowledgement that no emit of the session waits for (an unknown or repeated id).
    UnexpectedAck,
}

impl Unmatched {
    /// Every reason, in the order of per-reason arrays.
    pub const ALL: [Unmatched; 4] = [
        Unmatched::UnexpectedEvent,
        Unmatched::NoTextAtPath,
        Unmatched::NoProbeInText,
        Unmatched::UnexpectedAck,
    ];

    /// The name in results.json (`protocol.unmatched`).
    pub const fn name(self) -> &'static str {
        match self {
            Unmatched::UnexpectedEvent => "unexpected_event",
            Unmatched::NoTextAtPath => "no_text_at_path",
            Unmatched::NoProbeInText => "no_probe_in_text",
            Unmatched::UnexpectedAck => "unexpected_ack",
        }
    }

    /// Its index in [`Unmatched::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What a received event is to `profile` (see [`Heard`]). Inlined: it runs once per received
/// message, and its caller matches on what it returns.
#[inline(always)]
pub fn hear<'a>(profile: &Profile, event: &roomstorm_client::RawEvent<'a>) -> Heard<'a> {
    if profile.is_builtin() {
        hear_roomstorm(event.packet())
    } else {
        hear_custom(profile, event.args_json())
    }
}

/// The built-in profile, on `measure::probe`'s fast path: `message` events (join and quit
/// notices, says with a probe), `error` events, and anything else unmatched.
#[inline(always)]
fn hear_roomstorm(packet: &str) -> Heard<'_> {
    if let Some(message) = parse_message_packet(packet) {
        if message.kind != MessageKind::Say {
            return Heard::Notice;
        }
        return match message.text.as_deref() {
            None => Heard::Unmatched(Unmatched::NoTextAtPath),
            Some(text) => match decode_probe(text) {
                Some(probe) => Heard::Probe(probe),
                None => Heard::Unmatched(Unmatched::NoProbeInText),
            },
        };
    }
    match event_name(packet.trim_start_matches(|c: char| c.is_ascii_digit())) {
        Some(name) if name == roomstorm_protocol::EVENT_ERROR => Heard::Error(packet),
        // A `message` the fast and the full parse both refused: not a room message's shape.
        Some(name) if name == roomstorm_protocol::EVENT_MESSAGE => {
            Heard::Unmatched(Unmatched::NoTextAtPath)
        }
        _ => Heard::Unmatched(Unmatched::UnexpectedEvent),
    }
}

/// A profile from a scenario: `args` is the event's JSON array `["name", arg0, ...]`.
fn hear_custom<'a>(profile: &Profile, args: &'a str) -> Heard<'a> {
    let Some(name) = event_name(args) else {
        return Heard::Unmatched(Unmatched::UnexpectedEvent);
    };
    let receive = &profile.receive;
    if receive.events.iter().any(|e| *e == name) {
        return probe_at(&receive.probe, receive.arg, receive.probe_match, args);
    }
    let ignored = receive.ignore.iter().any(|e| *e == name)
        || profile.join_event().is_some_and(|e| e == name);
    if ignored {
        Heard::Ignored
    } else {
        Heard::Unmatched(Unmatched::UnexpectedEvent)
    }
}

/// The probe in argument `arg` at `path` of a room message.
fn probe_at<'a>(path: &JsonPath, arg: usize, how: ProbeMatch, args: &'a str) -> Heard<'a> {
    let value = match path.find(args, arg + 1) {
        Ok(Some(value)) => value,
        Ok(None) | Err(_) => return Heard::Unmatched(Unmatched::NoTextAtPath),
    };
    let Some(text) = as_text(value) else {
        return Heard::Unmatched(Unmatched::NoTextAtPath);
    };
    let probe = match how {
        ProbeMatch::Whole => decode_probe(&text),
        ProbeMatch::Contains => find_probe(&text),
    };
    probe.map_or(Heard::Unmatched(Unmatched::NoProbeInText), Heard::Probe)
}

/// The event name of `["name", ...]` (after an Engine.IO/Socket.IO prefix `42`, skipped by
/// the caller or absent): borrowed without a JSON parser when it has no escapes.
pub(crate) fn event_name(args: &str) -> Option<Cow<'_, str>> {
    let args = args.strip_prefix("42").unwrap_or(args);
    if let Some(rest) = args.strip_prefix("[\"")
        && let Some(end) = rest.find('"')
        && !rest[..end].contains('\\')
    {
        return Some(Cow::Borrowed(&rest[..end]));
    }
    roomstorm_client::codec::parse_event_head(args)
        .ok()
        .map(|head| head.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::probe::encode_probe;
    use crate::profile::{Join, JoinDone, Receive, Say, ValueTemplate, template::ProbeAllowed};

    fn probe_text() -> String {
        let mut text = String::new();
        encode_probe(&mut text, 3, 9, 1_700_000_000_000_000, 40);
        text
    }

    fn custom(probe: &str, arg: usize, how: ProbeMatch) -> Profile {
        let payload = ValueTemplate::String(
            crate::profile::Template::parse("{probe}", ProbeAllowed::Yes, &|_| None).unwrap(),
        );
        Profile::custom(
            "test".into(),
            ("/socket.io/".into(), "/chat".into()),
            Default::default(),
            Join {
                event: Some("enter".into()),
                payload: None,
                done: JoinDone::Event {
                    event: "entered".into(),
                    matches: Vec::new(),
                },
                ack_error: None,
            },
            Say {
                event: "post".into(),
                payload,
                ack: false,
                ack_error: None,
            },
            Receive {
                events: vec!["posted".into(), "history item".into()],
                arg,
                probe: JsonPath::parse(probe).unwrap(),
                probe_match: how,
                echo: false,
                ignore: vec!["typing".into()],
            },
        )
    }

    fn expected() -> Heard<'static> {
        Heard::Probe(decode_probe(&probe_text()).unwrap())
    }

    #[test]
    fn a_profile_finds_its_probe_in_objects_strings_arrays_and_later_arguments() {
        let p = probe_text();
        let cases = [
            (
                custom("msg.body", 0, ProbeMatch::Whole),
                format!(r#"["posted",{{"msg":{{"body":"{p}","at":1}}}}]"#),
            ),
            (
                custom("$", 0, ProbeMatch::Whole),
                format!(r#"["posted","{p}"]"#),
            ),
            (
                custom("$", 1, ProbeMatch::Whole),
                format!(r#"["posted","alice","{p}"]"#),
            ),
            (
                custom("list[1].t", 0, ProbeMatch::Whole),
                format!(r#"["history item",{{"list":[{{"t":"x"}},{{"t":"{p}"}}]}}]"#),
            ),
            (
                custom("text", 0, ProbeMatch::Contains),
                format!(r#"["posted",{{"text":"alice: {p} (12:00)"}}]"#),
            ),
            (
                custom("text", 0, ProbeMatch::Whole),
                format!(r#"["posted",{{"text":"{p}","text":"second"}}]"#),
            ),
        ];
        for (profile, args) in &cases {
            assert_eq!(listen_hear(profile, args), expected(), "{args}");
            assert!(expected().is_message());
        }
    }

    fn listen_hear<'a>(profile: &Profile, args: &'a str) -> Heard<'a> {
        hear_custom(profile, args)
    }

    #[test]
    fn what_does_not_match_is_unmatched_with_its_reason() {
        let p = probe_text();
        let profile = custom("msg.body", 0, ProbeMatch::Whole);
        for (args, heard) in [
            (r#"["typing",{"who":"a"}]"#.to_owned(), Heard::Ignored),
            (r#"["entered",{"room":"r"}]"#.to_owned(), Heard::Ignored),
            (
                r#"["welcome"]"#.to_owned(),
                Heard::Unmatched(Unmatched::UnexpectedEvent),
            ),
            (
                r#"{"not":"an array"}"#.to_owned(),
                Heard::Unmatched(Unmatched::UnexpectedEvent),
            ),
            (
                r#"[1,2]"#.to_owned(),
                Heard::Unmatched(Unmatched::UnexpectedEvent),
            ),
            (
                r#"["posted",{"msg":{"text":"hi"}}]"#.to_owned(),
                Heard::Unmatched(Unmatched::NoTextAtPath),
            ),
            (
                r#"["posted",{"msg":{"body":12}}]"#.to_owned(),
                Heard::Unmatched(Unmatched::NoTextAtPath),
            ),
            (
                r#"["posted"]"#.to_owned(),
                Heard::Unmatched(Unmatched::NoTextAtPath),
            ),
            (
                r#"["posted",{"msg":{"body":"hello"}}]"#.to_owned(),
                Heard::Unmatched(Unmatched::NoProbeInText),
            ),
            (
                format!(r#"["posted",{{"msg":{{"body":"> {p}"}}}}]"#),
                Heard::Unmatched(Unmatched::NoProbeInText),
            ),
            (
                format!(r#"["posted",{{"msg":{{"body":"{p}"}}"#),
                Heard::Unmatched(Unmatched::NoTextAtPath),
            ),
        ] {
            assert_eq!(hear_custom(&profile, &args), heard, "{args}");
        }
    }

    #[test]
    fn the_builtin_profile_reads_the_original_protocol() {
        let p = probe_text();
        let say = format!(
            r#"42["message",{{"event":"broadcast_say","data":{{"username":"m3","text":"{p}"}}}}]"#
        );
        assert_eq!(hear_roomstorm(&say), expected());
        for (packet, heard) in [
            (
                r#"42["message",{"event":"join","data":{"username":"m3"}}]"#,
                Heard::Notice,
            ),
            (
                r#"42["message",{"event":"broadcast_quit","data":{"username":"m3"}}]"#,
                Heard::Notice,
            ),
            (
                r#"42["message",{"event":"broadcast_say","data":{"username":"m3","text":"hi"}}]"#,
                Heard::Unmatched(Unmatched::NoProbeInText),
            ),
            (
                r#"42["message",{"event":"broadcast_say","data":{"username":"m3"}}]"#,
                Heard::Unmatched(Unmatched::NoTextAtPath),
            ),
            (
                r#"42["message",{"event":"typing","data":{"username":"m3"}}]"#,
                Heard::Unmatched(Unmatched::NoTextAtPath),
            ),
            (
                r#"42["error",{"code":"busy","message":"m"}]"#,
                Heard::Error(r#"42["error",{"code":"busy","message":"m"}]"#),
            ),
            (
                r#"42["other",1]"#,
                Heard::Unmatched(Unmatched::UnexpectedEvent),
            ),
        ] {
            assert_eq!(hear_roomstorm(packet), heard, "{packet}");
        }
    }

    #[test]
    fn event_names_are_read_with_and_without_escapes() {
        assert_eq!(
            event_name(r#"["chat message",1]"#).as_deref(),
            Some("chat message")
        );
        assert!(matches!(event_name(r#"["a",1]"#), Some(Cow::Borrowed("a"))));
        assert_eq!(event_name(r#"["a\"b",1]"#).as_deref(), Some("a\"b"));
        assert_eq!(event_name(r#"42["x"]"#).as_deref(), Some("x"));
        assert_eq!(event_name(r#"[ "spaced" ]"#).as_deref(), Some("spaced"));
        for bad in ["", "[]", "[1]", "{}", "[\"a"] {
            assert_eq!(event_name(bad), None, "{bad:?}");
        }
    }
}
