//! The roomstorm chat protocol: names, limits, validation rules and the room message shape.
//!
//! Both the server (which enforces these rules) and the load generator (which must produce and
//! parse exactly what the server speaks) need the same definitions, so they live here, in one
//! small crate with no I/O. The protocol is the one of the original Node.js design: connect to
//! `/socket.io/?roomid=ID`, emit `join {username}` and `say {text}`, receive
//! `message {event, data}`.

use serde::{Deserialize, Serialize};

pub mod duration;

/// Handshake query parameter naming the room a connection belongs to.
pub const ROOM_QUERY_KEY: &str = "roomid";
/// Client -> server: join the room of this connection.
pub const EVENT_JOIN: &str = "join";
/// Client -> server: say something to the room.
pub const EVENT_SAY: &str = "say";
/// Server -> client: a room message (join, say, quit).
pub const EVENT_MESSAGE: &str = "message";
/// Server -> client: a rejected request, sent to that client only.
pub const EVENT_ERROR: &str = "error";

/// Longest room id, in bytes (room ids are ASCII).
pub const MAX_ROOM_ID_LEN: usize = 64;
/// Longest username, in characters, after trimming.
pub const MAX_USERNAME_CHARS: usize = 32;
/// Default longest `say` text, in bytes (the server makes it configurable).
pub const DEFAULT_MAX_TEXT_BYTES: usize = 2000;

/// What happened in a room; the `event` field of a `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomEventKind {
    #[serde(rename = "join")]
    Join,
    #[serde(rename = "broadcast_say")]
    Say,
    #[serde(rename = "broadcast_quit")]
    Quit,
}

impl RoomEventKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RoomEventKind::Join => "join",
            RoomEventKind::Say => "broadcast_say",
            RoomEventKind::Quit => "broadcast_quit",
        }
    }
}

/// The data of a room message: who, and for `broadcast_say` what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEventData<'a> {
    #[serde(borrow)]
    pub username: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub text: Option<std::borrow::Cow<'a, str>>,
}

/// The payload of a `message` event: `{"event": "...", "data": {...}}`.
///
/// This is also exactly what travels through Redis, so a message is serialized once by the
/// worker that received it and forwarded verbatim by every worker that delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEvent<'a> {
    pub event: RoomEventKind,
    #[serde(borrow)]
    pub data: RoomEventData<'a>,
}

impl<'a> RoomEvent<'a> {
    pub fn join(username: &'a str) -> Self {
        Self::new(RoomEventKind::Join, username, None)
    }
    pub fn say(username: &'a str, text: &'a str) -> Self {
        Self::new(RoomEventKind::Say, username, Some(text))
    }
    pub fn quit(username: &'a str) -> Self {
        Self::new(RoomEventKind::Quit, username, None)
    }
    fn new(event: RoomEventKind, username: &'a str, text: Option<&'a str>) -> Self {
        RoomEvent {
            event,
            data: RoomEventData {
                username: username.into(),
                text: text.map(Into::into),
            },
        }
    }

    /// The JSON text of this event, as published and as emitted.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and a unit enum into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a request was rejected: the `code` of an `error` event. Stable strings, documented in
/// the README; clients may branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The payload is not the expected shape (not an object, a field of the wrong type).
    BadPayload,
    /// `join`: the username is missing, empty, too long, or has control characters.
    InvalidUsername,
    /// `say`: the text is missing, empty or too long.
    InvalidText,
    /// `join` sent twice on one socket.
    AlreadyJoined,
    /// `say` before `join`.
    NotJoined,
    /// An event name the server does not handle.
    UnknownEvent,
    /// Binary attachments are not part of this protocol.
    BinaryUnsupported,
    /// The socket sends faster than its rate limit.
    RateLimited,
    /// The message bus (Redis) is unreachable; nothing was sent.
    Unavailable,
    /// The message bus is saturated (its publish queue is full); nothing was sent, retry later.
    Busy,
    /// The message was handed to Redis but no answer came in time: it may or may not have
    /// been delivered, so a blind retry may duplicate it.
    OutcomeUnknown,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadPayload,
        ErrorCode::InvalidUsername,
        ErrorCode::InvalidText,
        ErrorCode::AlreadyJoined,
        ErrorCode::NotJoined,
        ErrorCode::UnknownEvent,
        ErrorCode::BinaryUnsupported,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Busy,
        ErrorCode::OutcomeUnknown,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadPayload => "bad_payload",
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::UnknownEvent => "unknown_event",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Busy => "busy",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// The code named `name` (as sent in an `error` event), if there is one.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Position in [`ErrorCode::ALL`], for per-code counters.
    pub fn index(self) -> usize {
        ErrorCode::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or_default()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The payload of an `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    pub code: String,
    pub message: String,
}

/// Checks a room id from the handshake query; the error says why it is refused.
pub fn validate_room_id(room: &str) -> Result<(), String> {
    if room.is_empty() {
        return Err(
            "roomid is empty: connect with ?roomid=ID (1-64 chars of A-Z a-z 0-9 _ . : -)".into(),
        );
    }
    if room.len() > MAX_ROOM_ID_LEN {
        return Err(format!(
            "roomid is {} bytes long; at most {MAX_ROOM_ID_LEN} allowed",
            room.len()
        ));
    }
    if let Some(bad) = room.chars().find(|c| !is_room_char(*c)) {
        return Err(format!(
            "roomid contains {bad:?}; allowed characters are A-Z a-z 0-9 _ . : -"
        ));
    }
    Ok(())
}

fn is_room_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Trims and checks a username; returns the name to use or why it is refused.
pub fn normalize_username(raw: &str) -> Result<&str, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("username is empty".into());
    }
    let chars = name.chars().count();
    if chars > MAX_USERNAME_CHARS {
        return Err(format!(
            "username is {chars} characters long; at most {MAX_USERNAME_CHARS} allowed"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("username contains control characters".into());
    }
    Ok(name)
}

/// Checks a `say` text against the byte limit.
pub fn validate_text(text: &str, max_bytes: usize) -> Result<(), String> {
    if text.is_empty() {
        return Err("text is empty".into());
    }
    if text.len() > max_bytes {
        return Err(format!(
            "text is {} bytes long; at most {max_bytes} allowed",
            text.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids() {
        assert!(validate_room_id("k12_webcourse_room_1").is_ok());
        assert!(validate_room_id("a.b:c-d").is_ok());
        assert!(validate_room_id(&"x".repeat(64)).is_ok());
        assert!(
            validate_room_id(&"x".repeat(65))
                .unwrap_err()
                .contains("64")
        );
        assert!(validate_room_id("").unwrap_err().contains("empty"));
        assert!(validate_room_id("a b").unwrap_err().contains("' '"));
        assert!(validate_room_id("é").is_err());
    }

    #[test]
    fn usernames() {
        assert_eq!(normalize_username("  ann  "), Ok("ann"));
        assert!(normalize_username("   ").is_err());
        assert!(normalize_username(&"é".repeat(32)).is_ok());
        assert!(normalize_username(&"é".repeat(33)).is_err());
        assert!(normalize_username("a\u{7}b").is_err());
    }

    #[test]
    fn texts() {
        assert!(validate_text("hi", 2000).is_ok());
        assert!(validate_text("", 2000).is_err());
        assert!(validate_text(&"x".repeat(2001), 2000).is_err());
    }

    #[test]
    fn room_event_json_matches_original_design() {
        assert_eq!(
            RoomEvent::say("ann", "hi <b>").to_json(),
            r#"{"event":"broadcast_say","data":{"username":"ann","text":"hi <b>"}}"#
        );
        assert_eq!(
            RoomEvent::join("ann").to_json(),
            r#"{"event":"join","data":{"username":"ann"}}"#
        );
        let json = RoomEvent::quit("bo").to_json();
        let parsed: RoomEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed.event, RoomEventKind::Quit);
        assert_eq!(parsed.data.username, "bo");
    }

    #[test]
    fn error_code_index_is_position() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.index(), i);
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::from_name("nope"), None);
    }
}
