//! The checks of a scenario's `[protocol]` table, turning it into a [`Profile`].
//!
//! This exists so a profile that cannot work stops the run before anything starts, naming the
//! key: a say without `{probe}`, a probe path that cannot be parsed or can never hold the probe
//! as sent, a template with an unknown placeholder or an unset environment variable, an event
//! name Socket.IO keeps for itself, options that contradict each other. What cannot be known
//! before the run (the app's real event names and shapes) is counted while it runs instead
//! (`protocol.unmatched` in results.json). Without `[protocol]` the scenario uses the built-in
//! profile, the original design's protocol.

use super::error::Problem;
use super::locate::KeyPath;
use super::raw::{
    RawConnect, RawJoin, RawJoinDone, RawProbeMatch, RawProtocol, RawReceive, RawSay,
};
use crate::profile::template::{PathStep, ValuePath};
use crate::profile::{
    Connect, Join, JoinDone, JsonPath, ProbeAllowed, ProbeMatch, Profile, RESERVED_EVENTS,
    ROOMSTORM, Receive, Say, Template, ValueTemplate,
};

type Checked<T> = Result<T, Problem>;

/// Reads an environment variable (`{env:NAME}`).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Default `protocol.name`.
const DEFAULT_NAME: &str = "custom";
/// Most arguments before the one holding the message (a typo guard).
const MAX_ARG: u32 = 16;

fn at(keys: &[&str]) -> KeyPath {
    let mut path = KeyPath::of(&["protocol"]);
    for key in keys {
        path = path.key(key);
    }
    path
}

fn problem<T>(path: KeyPath, message: impl Into<String>) -> Checked<T> {
    Err(Problem::new(path, message))
}

/// The scenario's profile: the built-in one without `[protocol]`.
pub(crate) fn profile(raw: Option<&RawProtocol>, env: Env<'_>) -> Checked<Profile> {
    let Some(raw) = raw else {
        return Ok(Profile::roomstorm());
    };
    let name = name(raw.name.as_deref())?;
    let path = request_path(raw.path.as_deref())?;
    let namespace = namespace(raw.namespace.as_deref())?;
    engine_io(raw.engine_io)?;
    let connect = connect(raw.connect.as_ref(), env)?;
    let Some(say_raw) = &raw.say else {
        return problem(
            at(&["say"]),
            "missing [protocol.say]: the event and payload that carry a member's message",
        );
    };
    let say = say(say_raw, env)?;
    let Some(receive_raw) = &raw.receive else {
        return problem(
            at(&["receive"]),
            "missing [protocol.receive]: the event(s) and path where the message comes back",
        );
    };
    let join = join(raw.join.as_ref(), env)?;
    let receive = receive(receive_raw, &say, &join)?;
    Ok(Profile::custom(
        name,
        (path, namespace),
        connect,
        join,
        say,
        receive,
    ))
}

fn name(raw: Option<&str>) -> Checked<String> {
    let Some(name) = raw else {
        return Ok(DEFAULT_NAME.to_owned());
    };
    if name == ROOMSTORM {
        return problem(
            at(&["name"]),
            "roomstorm is the built-in profile (the original design's protocol): leave \
             [protocol] out to use it, or give yours another name",
        );
    }
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return problem(
            at(&["name"]),
            "must be 1 to 64 characters without control characters",
        );
    }
    Ok(name.to_owned())
}

fn request_path(raw: Option<&str>) -> Checked<String> {
    let path = raw.unwrap_or("/socket.io/");
    let fine = path.starts_with('/')
        && !path.contains(['?', '#'])
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    if fine {
        Ok(path.to_owned())
    } else {
        problem(
            at(&["path"]),
            format!("`{path}` must start with / and hold no ?, # or spaces (e.g. \"/socket.io/\")"),
        )
    }
}

fn namespace(raw: Option<&str>) -> Checked<String> {
    let namespace = raw.unwrap_or("/");
    let fine = namespace.starts_with('/')
        && !namespace.contains([',', '?', '#'])
        && !namespace
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if fine {
        Ok(namespace.to_owned())
    } else {
        problem(
            at(&["namespace"]),
            format!(
                "`{namespace}` must be / or /name (no comma, ?, # or spaces), as the server's \
                 io.of(\"/name\")"
            ),
        )
    }
}

fn engine_io(raw: Option<u32>) -> Checked<()> {
    match raw {
        None | Some(4) => Ok(()),
        Some(3) => problem(
            at(&["engine_io"]),
            "3 is not supported: loadgen's client speaks Engine.IO 4 (socket.io 3 and 4 \
             servers; a socket.io 2 server speaks only 3); allowed: 4",
        ),
        Some(other) => problem(
            at(&["engine_io"]),
            format!("{other} is not an Engine.IO version; allowed: 4"),
        ),
    }
}

/// A template, with its key in errors.
fn template(path: KeyPath, text: &str, env: Env<'_>) -> Checked<Template> {
    Template::parse(text, ProbeAllowed::No, env).map_err(|e| Problem::new(path, e))
}

/// A payload, with the key of the offending string in errors.
fn value(
    path: KeyPath,
    raw: &toml::Value,
    probe: ProbeAllowed,
    env: Env<'_>,
) -> Checked<ValueTemplate> {
    ValueTemplate::from_toml(raw, probe, env)
        .map_err(|(inner, e)| Problem::new(extend(path, &inner), e))
}

fn extend(mut path: KeyPath, inner: &ValuePath) -> KeyPath {
    for step in inner {
        path = match step {
            PathStep::Key(key) => path.key(key),
            PathStep::Index(index) => path.index(*index),
        };
    }
    path
}

fn connect(raw: Option<&RawConnect>, env: Env<'_>) -> Checked<Connect> {
    let Some(raw) = raw else {
        return Ok(Connect::default());
    };
    let mut out = Connect::default();
    for (key, text) in raw.query.iter().flatten() {
        if key.is_empty() {
            return problem(at(&["connect", "query"]), "a query parameter needs a name");
        }
        if matches!(key.as_str(), "EIO" | "transport" | "sid") {
            return problem(
                at(&["connect", "query"]).key(key),
                "is Engine.IO's own query parameter; the client sets it",
            );
        }
        let path = at(&["connect", "query"]).key(key);
        out.query.push((key.clone(), template(path, text, env)?));
    }
    for (key, text) in raw.headers.iter().flatten() {
        let path = at(&["connect", "headers"]).key(key);
        if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            return problem(path, "is not a valid HTTP header name");
        }
        out.headers.push((key.clone(), template(path, text, env)?));
    }
    if let Some(auth) = &raw.auth {
        let path = at(&["connect", "auth"]);
        let auth = value(path.clone(), auth, ProbeAllowed::No, env)?;
        if !auth.is_object() {
            return problem(
                path,
                "must be a table (Socket.IO's CONNECT auth is an object), e.g. { token = \"{env:CHAT_TOKEN}\" }",
            );
        }
        out.auth = Some(auth);
    }
    Ok(out)
}

fn event_name(path: KeyPath, name: &str) -> Checked<String> {
    if name.is_empty() {
        return problem(path, "an event name cannot be empty");
    }
    if RESERVED_EVENTS.contains(&name) {
        return problem(
            path,
            format!(
                "`{name}` is reserved by Socket.IO (a server cannot emit it, a client must not); \
                 reserved: {}",
                RESERVED_EVENTS.join(", ")
            ),
        );
    }
    Ok(name.to_owned())
}

fn json_path(path: KeyPath, text: &str) -> Checked<JsonPath> {
    JsonPath::parse(text).map_err(|e| Problem::new(path, e))
}

fn join(raw: Option<&RawJoin>, env: Env<'_>) -> Checked<Join> {
    let Some(raw) = raw else {
        // The room is given at connect (in the query or auth): nothing to emit.
        return Ok(Join {
            event: None,
            payload: None,
            done: JoinDone::Sent,
            ack_error: None,
        });
    };
    let event = raw
        .event
        .as_deref()
        .map(|e| event_name(at(&["join", "event"]), e))
        .transpose()?;
    let payload = match (&raw.payload, &event) {
        (Some(_), None) => {
            return problem(
                at(&["join", "payload"]),
                "a payload needs join.event, the event that carries it",
            );
        }
        (Some(payload), Some(_)) => Some(value(
            at(&["join", "payload"]),
            payload,
            ProbeAllowed::No,
            env,
        )?),
        (None, _) => None,
    };
    let done = match &raw.done {
        None | Some(RawJoinDone::Sent) => JoinDone::Sent,
        Some(RawJoinDone::Ack) if event.is_none() => {
            return problem(
                at(&["join", "done"]),
                "\"ack\" waits for the acknowledgement of join.event, and there is none",
            );
        }
        Some(RawJoinDone::Ack) => JoinDone::Ack,
        Some(RawJoinDone::Event(name)) => JoinDone::Event {
            event: event_name(at(&["join", "done", "event"]), name)?,
            matches: join_matches(raw, env)?,
        },
    };
    if raw.matches.is_some() && !matches!(done, JoinDone::Event { .. }) {
        return problem(
            at(&["join", "match"]),
            "only with done = { event = \"...\" }: what the confirming event must hold",
        );
    }
    let ack_error = match (&raw.ack_error, &done) {
        (None, _) => None,
        (Some(text), JoinDone::Ack) => Some(json_path(at(&["join", "ack_error"]), text)?),
        (Some(_), _) => {
            return problem(
                at(&["join", "ack_error"]),
                "only with done = \"ack\": where the acknowledgement says the join failed",
            );
        }
    };
    Ok(Join {
        event,
        payload,
        done,
        ack_error,
    })
}

fn join_matches(raw: &RawJoin, env: Env<'_>) -> Checked<Vec<(JsonPath, Template)>> {
    raw.matches
        .iter()
        .flatten()
        .map(|(path, expected)| {
            let key = at(&["join", "match"]).key(path);
            Ok((json_path(key.clone(), path)?, template(key, expected, env)?))
        })
        .collect()
}

fn say(raw: &RawSay, env: Env<'_>) -> Checked<Say> {
    let event = event_name(at(&["say", "event"]), &raw.event)?;
    let payload = value(
        at(&["say", "payload"]),
        &raw.payload,
        ProbeAllowed::Yes,
        env,
    )?;
    let probes: usize = payload.strings().iter().map(|(_, t)| t.probes()).sum();
    if probes != 1 {
        let why = if probes == 0 {
            "has no {probe}: loadgen puts each message's probe (its sender, number and intended \
             send time) there, and without it nothing can be measured; e.g. { text = \"{probe}\" }"
        } else {
            "has {probe} more than once: each message carries one probe"
        };
        return problem(at(&["say", "payload"]), why);
    }
    let ack = raw.ack.unwrap_or(false);
    let ack_error = match &raw.ack_error {
        None => None,
        Some(_) if !ack => {
            return problem(
                at(&["say", "ack_error"]),
                "only with ack = true: where the acknowledgement says the message was refused",
            );
        }
        Some(text) => Some(json_path(at(&["say", "ack_error"]), text)?),
    };
    Ok(Say {
        event,
        payload,
        ack,
        ack_error,
    })
}

fn receive(raw: &RawReceive, say: &Say, join: &Join) -> Checked<Receive> {
    let events = match (&raw.event, &raw.events) {
        (Some(_), Some(_)) => {
            return problem(
                at(&["receive", "events"]),
                "set either receive.event or receive.events, not both",
            );
        }
        (None, None) => {
            return problem(
                at(&["receive", "event"]),
                "missing receive.event (or events = [...]): the event that carries the room's messages",
            );
        }
        (Some(event), None) => vec![event_name(at(&["receive", "event"]), event)?],
        (None, Some(events)) if events.is_empty() => {
            return problem(at(&["receive", "events"]), "must name at least one event");
        }
        (None, Some(events)) => events
            .iter()
            .enumerate()
            .map(|(i, e)| event_name(at(&["receive", "events"]).index(i), e))
            .collect::<Checked<Vec<_>>>()?,
    };
    let arg = raw.arg.unwrap_or(0);
    if arg > MAX_ARG {
        return problem(
            at(&["receive", "arg"]),
            format!("{arg} is out of range; allowed: 0 to {MAX_ARG}"),
        );
    }
    let probe = json_path(at(&["receive", "probe"]), &raw.probe)?;
    let probe_match = match raw.probe_match {
        None | Some(RawProbeMatch::Whole) => ProbeMatch::Whole,
        Some(RawProbeMatch::Contains) => ProbeMatch::Contains,
    };
    if probe_match == ProbeMatch::Whole && !probe_alone(say) {
        return problem(
            at(&["receive", "probe_match"]),
            "say.payload puts other text around {probe}, so the text that comes back is never \
             the probe alone: use probe_match = \"contains\"",
        );
    }
    let Some(echo) = raw.echo else {
        return problem(
            at(&["receive", "echo"]),
            "missing required key: does the app send a member's own messages back to it? \
             true (the whole room, e.g. io.to(room).emit) or false (the others only, e.g. \
             socket.to(room).emit); it decides what each member is owed",
        );
    };
    let ignore = raw.ignore.clone().unwrap_or_default();
    for (i, name) in ignore.iter().enumerate() {
        let path = at(&["receive", "ignore"]).index(i);
        event_name(path.clone(), name)?;
        if events.contains(name) {
            return problem(
                path,
                format!("`{name}` is a receive event: it cannot also be ignored"),
            );
        }
    }
    if let JoinDone::Event { event, .. } = &join.done
        && events.contains(event)
    {
        return problem(
            at(&["join", "done", "event"]),
            format!(
                "`{event}` also carries the room's messages (receive.events): every later \
                 confirmation (another member joining) would be read as a message without its \
                 probe; confirm the join with another event, with done = \"ack\", or \"sent\""
            ),
        );
    }
    Ok(Receive {
        events,
        arg: arg as usize,
        probe,
        probe_match,
        echo,
        ignore,
    })
}

/// Whether the say payload's `{probe}` is a whole string, with no text around it.
fn probe_alone(say: &Say) -> bool {
    say.payload
        .strings()
        .iter()
        .any(|(_, t)| t.probes() == 1 && t.is_probe_alone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::raw::RawScenario;

    const BASE: &str = r#"
name = "p"
duration = "5s"
[target]
url = "http://127.0.0.1:1"
[population]
rooms = 1
members = 2
ramp = 2
[traffic]
rate_per_member = 1.0
"#;

    const GOOD: &str = r#"
[protocol]
name = "my-chat"
namespace = "/chat"
[protocol.connect]
query = { room = "{room}" }
auth = { token = "{env:CHAT_TOKEN}", user = "{member}" }
[protocol.join]
event = "join room"
payload = "{room}"
done = "ack"
ack_error = "error"
[protocol.say]
event = "chat message"
payload = { text = "{probe}", room = "{room}" }
ack = true
[protocol.receive]
event = "chat message"
probe = "text"
echo = false
ignore = ["typing"]
"#;

    fn env(name: &str) -> Option<String> {
        (name == "CHAT_TOKEN").then(|| "s3cret".to_owned())
    }

    fn checked(protocol: &str) -> Checked<Profile> {
        let raw: RawScenario = toml::from_str(&format!("{BASE}{protocol}")).expect("toml");
        profile(raw.protocol.as_ref(), &env)
    }

    #[test]
    fn a_full_profile_is_read_and_serializes_without_the_secret() {
        let p = checked(GOOD).expect("valid");
        assert!(!p.is_builtin());
        assert_eq!(
            (p.name.as_str(), p.namespace.as_str()),
            ("my-chat", "/chat")
        );
        assert_eq!(p.join.done, JoinDone::Ack);
        assert!(p.say.ack);
        assert!(!p.receive.echo);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("{env:CHAT_TOKEN}"), "{json}");
        assert!(!json.contains("s3cret"), "{json}");
        assert_eq!(checked("").expect("no [protocol]"), Profile::roomstorm());
    }

    #[test]
    fn a_profile_that_cannot_work_names_the_key() {
        let cases = [
            (
                GOOD.replace(
                    r#"{ text = "{probe}", room = "{room}" }"#,
                    r#"{ text = "hi" }"#,
                ),
                "protocol.say.payload",
                "no {probe}",
            ),
            (
                GOOD.replace(r#""{probe}", room"#, r#""{probe} {probe}", room"#),
                "protocol.say.payload",
                "more than once",
            ),
            (
                GOOD.replace(r#"probe = "text""#, r#"probe = "text..x""#),
                "protocol.receive.probe",
                "write",
            ),
            (
                GOOD.replace(r#"text = "{probe}""#, r#"text = "<{member}> {probe}""#),
                "protocol.receive.probe_match",
                "contains",
            ),
            (
                GOOD.replace("echo = false\n", ""),
                "protocol.receive.echo",
                "own messages",
            ),
            (
                GOOD.replace(r#"user = "{member}""#, r#"user = "{membr}""#),
                "protocol.connect.auth.user",
                "unknown placeholder",
            ),
            (
                GOOD.replace("CHAT_TOKEN", "NOT_SET_ANYWHERE"),
                "protocol.connect.auth.token",
                "NOT_SET_ANYWHERE is not set",
            ),
            (
                GOOD.replace(r#"event = "join room""#, r#"event = "disconnect""#),
                "protocol.join.event",
                "reserved",
            ),
            (
                GOOD.replace(r#"ignore = ["typing"]"#, r#"ignore = ["chat message"]"#),
                "protocol.receive.ignore[0]",
                "cannot also be ignored",
            ),
            (
                GOOD.replace(r#"namespace = "/chat""#, r#"namespace = "chat""#),
                "protocol.namespace",
                "must be /",
            ),
            (
                GOOD.replace("[protocol.connect]", "engine_io = 3\n[protocol.connect]"),
                "protocol.engine_io",
                "Engine.IO 4",
            ),
            (
                GOOD.replace(r#"done = "ack""#, r#"done = { event = "chat message" }"#)
                    .replace("ack_error = \"error\"\n", ""),
                "protocol.join.done.event",
                "also carries",
            ),
            (
                GOOD.replace("ack = true\n", "ack_error = \"e\"\n"),
                "protocol.say.ack_error",
                "only with ack = true",
            ),
            (
                GOOD.replace(
                    r#"query = { room = "{room}" }"#,
                    r#"query = { room = "{probe}" }"#,
                ),
                "protocol.connect.query.room",
                "say.payload only",
            ),
        ];
        for (text, key, why) in cases {
            match checked(&text) {
                Ok(p) => panic!("accepted {key}: {p:?}"),
                Err(problem) => {
                    assert_eq!(problem.path.to_string(), key, "{}", problem.message);
                    assert!(problem.message.contains(why), "{key}: {}", problem.message);
                }
            }
        }
    }
}
