//! Engine.IO 4 and Socket.IO 5 wire format as pure functions.
//!
//! This module exists so the framing rules live in one place that can be unit-tested without
//! a network: the connection code (`connect.rs`, `sender.rs`, `receiver.rs`) only moves text
//! between sockets and these functions. Decoding borrows from the input (`&str` slices, no
//! allocation), so the load generator can classify thousands of packets per second without
//! building JSON values.
//!
//! Engine.IO packet: `<type digit><data>`, types 0 open, 1 close, 2 ping, 3 pong, 4 message,
//! 5 upgrade, 6 noop; `b<base64>` is a binary message inside a polling payload; polling payloads
//! join packets with the record separator `\x1e`.
//!
//! Socket.IO packet (carried in an Engine.IO message):
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`, types 0 CONNECT,
//! 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT, 6 BINARY_ACK. The namespace is
//! omitted when it is the main namespace `/`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Separator between packets of one HTTP long-polling payload.
pub const RECORD_SEPARATOR: char = '\x1e';

/// A packet that does not follow the Engine.IO 4 / Socket.IO 5 grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {layer} packet ({reason}): {excerpt:?}")]
pub struct CodecError {
    /// "Engine.IO" or "Socket.IO".
    pub layer: &'static str,
    /// What was wrong.
    pub reason: &'static str,
    /// The start of the offending text (at most 64 bytes).
    pub excerpt: String,
}

impl CodecError {
    fn new(layer: &'static str, reason: &'static str, text: &str) -> Self {
        let mut end = text.len().min(64);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        CodecError {
            layer,
            reason,
            excerpt: text[..end].to_owned(),
        }
    }
}

/// One decoded Engine.IO 4 text packet, borrowing its data from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0{json}`: handshake, see [`Handshake`].
    Open(&'a str),
    /// `1`: the session is closed.
    Close,
    /// `2` or `2probe`.
    Ping(&'a str),
    /// `3` or `3probe`.
    Pong(&'a str),
    /// `4<data>`: a message; for Socket.IO, a [`SocketPacket`].
    Message(&'a str),
    /// `5`: upgrade to the probed transport.
    Upgrade,
    /// `6`: no operation (used to release a pending long-poll).
    Noop,
    /// `b<base64>`: binary message, only inside polling payloads (base64 text, not decoded).
    Binary(&'a str),
}

impl<'a> EnginePacket<'a> {
    /// Decodes one text packet (one websocket text frame, or one polling payload segment).
    pub fn decode(text: &'a str) -> Result<Self, CodecError> {
        let mut chars = text.char_indices();
        let Some((_, first)) = chars.next() else {
            return Err(CodecError::new("Engine.IO", "empty packet", text));
        };
        // All type markers are ASCII, so the data starts at byte 1.
        let data = &text[first.len_utf8()..];
        Ok(match first {
            '0' => EnginePacket::Open(data),
            '1' => EnginePacket::Close,
            '2' => EnginePacket::Ping(data),
            '3' => EnginePacket::Pong(data),
            '4' => EnginePacket::Message(data),
            '5' => EnginePacket::Upgrade,
            '6' => EnginePacket::Noop,
            'b' => EnginePacket::Binary(data),
            _ => return Err(CodecError::new("Engine.IO", "unknown packet type", text)),
        })
    }

    /// Appends the text form of this packet to `out`.
    pub fn encode_into(&self, out: &mut String) {
        let (ty, data) = match *self {
            EnginePacket::Open(d) => ('0', d),
            EnginePacket::Close => ('1', ""),
            EnginePacket::Ping(d) => ('2', d),
            EnginePacket::Pong(d) => ('3', d),
            EnginePacket::Message(d) => ('4', d),
            EnginePacket::Upgrade => ('5', ""),
            EnginePacket::Noop => ('6', ""),
            EnginePacket::Binary(d) => ('b', d),
        };
        out.push(ty);
        out.push_str(data);
    }

    /// The text form of this packet.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }
}

/// The Engine.IO open packet's JSON (`0{...}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// Engine.IO session id, sent back as `sid=` on polling requests and the upgrade.
    pub sid: String,
    /// Transports the session may upgrade to (`["websocket"]` for polling sessions).
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Milliseconds between server pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong.
    pub ping_timeout: u64,
    /// Largest payload in bytes the server accepts in one polling POST.
    #[serde(default)]
    pub max_payload: Option<u64>,
}

impl Handshake {
    /// Parses the data of an open packet (the text after the `0`).
    pub fn parse(data: &str) -> Result<Self, CodecError> {
        serde_json::from_str(data)
            .map_err(|_| CodecError::new("Engine.IO", "invalid handshake JSON", data))
    }
}

/// Splits a polling payload into Engine.IO packets. An empty body holds no packet.
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(RECORD_SEPARATOR).filter(|p| !p.is_empty())
}

/// Joins Engine.IO packets (already encoded) into one polling payload.
pub fn join_payload<'a>(packets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, p) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.push_str(p);
    }
    out
}

/// Socket.IO 5 packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 0
    Connect,
    /// 1
    Disconnect,
    /// 2
    Event,
    /// 3
    Ack,
    /// 4
    ConnectError,
    /// 5
    BinaryEvent,
    /// 6
    BinaryAck,
}

impl PacketType {
    /// The wire digit of this type.
    pub fn as_char(self) -> char {
        match self {
            PacketType::Connect => '0',
            PacketType::Disconnect => '1',
            PacketType::Event => '2',
            PacketType::Ack => '3',
            PacketType::ConnectError => '4',
            PacketType::BinaryEvent => '5',
            PacketType::BinaryAck => '6',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// One Socket.IO 5 packet, borrowing namespace and data from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketPacket<'a> {
    /// Packet type.
    pub ty: PacketType,
    /// Namespace, `/` when omitted on the wire.
    pub namespace: &'a str,
    /// Number of binary attachments (binary types only, else 0).
    pub attachments: u32,
    /// Acknowledgement id, if the sender wants an ACK.
    pub ack_id: Option<u64>,
    /// The JSON data as text (may be empty, e.g. for `0` or `1`).
    pub data: &'a str,
}

impl<'a> SocketPacket<'a> {
    /// An EVENT packet on the main namespace with `data` as the JSON array `["name",...]`.
    pub fn event(data: &'a str) -> Self {
        SocketPacket {
            ty: PacketType::Event,
            namespace: "/",
            attachments: 0,
            ack_id: None,
            data,
        }
    }

    /// Decodes the text of a Socket.IO packet (the data of an Engine.IO message, without `4`).
    ///
    /// The JSON data is checked only for its first character (an array for events and acks,
    /// present for CONNECT_ERROR); full JSON parsing is left to the caller.
    pub fn decode(text: &'a str) -> Result<Self, CodecError> {
        let err = |reason| CodecError::new("Socket.IO", reason, text);
        let bytes = text.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(err("empty packet"));
        };
        let ty = PacketType::from_byte(first).ok_or_else(|| err("unknown packet type"))?;
        let mut i = 1;

        let mut attachments = 0;
        if ty.is_binary() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start || bytes.get(i) != Some(&b'-') {
                return Err(err("binary packet without attachment count"));
            }
            attachments = text[start..i]
                .parse()
                .map_err(|_| err("attachment count out of range"))?;
            i += 1;
        }

        let mut namespace = "/";
        if bytes.get(i) == Some(&b'/') {
            let start = i;
            match text[i..].find(',') {
                Some(comma) => {
                    namespace = &text[start..i + comma];
                    i += comma + 1;
                }
                None => {
                    namespace = &text[start..];
                    i = bytes.len();
                }
            }
        }

        let mut ack_id = None;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            ack_id = Some(
                text[start..i]
                    .parse::<u64>()
                    .map_err(|_| err("ack id out of range"))?,
            );
        }

        let data = &text[i..];
        match ty {
            PacketType::Event
            | PacketType::BinaryEvent
            | PacketType::Ack
            | PacketType::BinaryAck
                if !data.starts_with('[') =>
            {
                return Err(err("data is not a JSON array"));
            }
            PacketType::ConnectError if data.is_empty() => {
                return Err(err("CONNECT_ERROR without data"));
            }
            PacketType::Connect | PacketType::Disconnect | PacketType::ConnectError
                if ack_id.is_some() =>
            {
                return Err(err("ack id on a packet type that has none"));
            }
            _ => {}
        }
        Ok(SocketPacket {
            ty,
            namespace,
            attachments,
            ack_id,
            data,
        })
    }

    /// Appends the Socket.IO text of this packet (without the Engine.IO `4`) to `out`.
    pub fn encode_into(&self, out: &mut String) {
        out.push(self.ty.as_char());
        if self.ty.is_binary() {
            out.push_str(&self.attachments.to_string());
            out.push('-');
        }
        if self.namespace != "/" && !self.namespace.is_empty() {
            out.push_str(self.namespace);
            out.push(',');
        }
        if let Some(id) = self.ack_id {
            out.push_str(&id.to_string());
        }
        out.push_str(self.data);
    }

    /// The Socket.IO text of this packet (without the Engine.IO `4`).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + 8);
        self.encode_into(&mut out);
        out
    }

    /// The Engine.IO message carrying this packet (`4` + Socket.IO text).
    pub fn encode_engine(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + 9);
        out.push('4');
        self.encode_into(&mut out);
        out
    }
}

/// Builds the Engine.IO text `42["event",<data>]` for an emit on the main namespace.
pub fn encode_event<T: Serialize + ?Sized>(event: &str, data: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(event.len() + 32);
    out.extend_from_slice(b"42");
    serde_json::to_writer(&mut out, &(event, data))?;
    // serde_json writes valid UTF-8 and the prefix is ASCII; this never fails.
    String::from_utf8(out).map_err(|e| de::Error::custom(e.to_string()))
}

/// Builds `42["event",<json>]` from JSON text that the caller vouches for (not validated).
pub fn encode_event_raw_json(event: &str, json: &str) -> String {
    let mut out = Vec::with_capacity(event.len() + json.len() + 8);
    out.extend_from_slice(b"42[");
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, event);
    out.push(b',');
    out.extend_from_slice(json.as_bytes());
    out.push(b']');
    String::from_utf8(out).unwrap_or_default()
}

/// Builds the Engine.IO text of a Socket.IO CONNECT to `namespace`, with the `auth` payload
/// (JSON text of an object, the caller vouches for it) when there is one: `40`, `40/chat,`,
/// `40{"token":"t"}`, `40/chat,{"token":"t"}`.
pub fn encode_connect(namespace: &str, auth: Option<&str>) -> String {
    let mut out = String::with_capacity(4 + namespace.len() + auth.map_or(0, str::len));
    out.push_str("40");
    push_namespace(&mut out, namespace);
    out.push_str(auth.unwrap_or(""));
    out
}

/// Builds the Engine.IO text of an emit of `event` with `args_json` (the JSON text of the
/// arguments after the name, comma-separated, the caller vouches for it; empty for none) on
/// `namespace`, asking for an acknowledgement `ack_id` when given:
/// `42["say",{"text":"hi"}]`, `42/chat,7["say","hi"]`.
pub fn encode_emit(namespace: &str, ack_id: Option<u64>, event: &str, args_json: &str) -> String {
    let mut out = Vec::with_capacity(event.len() + args_json.len() + namespace.len() + 28);
    out.extend_from_slice(b"42");
    if namespace != "/" && !namespace.is_empty() {
        out.extend_from_slice(namespace.as_bytes());
        out.push(b',');
    }
    if let Some(id) = ack_id {
        out.extend_from_slice(id.to_string().as_bytes());
    }
    out.push(b'[');
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, event);
    if !args_json.is_empty() {
        out.push(b',');
        out.extend_from_slice(args_json.as_bytes());
    }
    out.push(b']');
    String::from_utf8(out).unwrap_or_default()
}

/// Builds the Engine.IO text of a Socket.IO DISCONNECT from `namespace`: `41`, `41/chat,`.
pub fn encode_disconnect(namespace: &str) -> String {
    let mut out = String::from("41");
    push_namespace(&mut out, namespace);
    out
}

/// `/chat,` for a namespace other than the main one (which the wire leaves out).
fn push_namespace(out: &mut String, namespace: &str) {
    if namespace != "/" && !namespace.is_empty() {
        out.push_str(namespace);
        out.push(',');
    }
}

/// The message of a CONNECT_ERROR data: `{"message":"..."}` gives the message, a JSON string
/// gives the string, anything else is returned as the raw text.
pub fn connect_error_message(data: &str) -> String {
    #[derive(Deserialize)]
    struct ErrData {
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<ErrData>(data) {
        return e.message;
    }
    if let Ok(s) = serde_json::from_str::<String>(data) {
        return s;
    }
    data.to_owned()
}

/// The event name and first argument of an event's JSON array, borrowed when possible.
#[derive(Debug, Clone)]
pub struct EventHead<'a> {
    /// Event name (borrowed unless it contains JSON escapes).
    pub name: Cow<'a, str>,
    /// The first argument after the name, as raw JSON, or `None` if there is none.
    pub first_arg: Option<&'a RawValue>,
    /// How many arguments follow the name.
    pub arg_count: usize,
}

/// Parses `["name", arg0, ...]` without building a `serde_json::Value`.
///
/// Fails if the text is not a JSON array whose first element is a string.
pub fn parse_event_head(args: &str) -> serde_json::Result<EventHead<'_>> {
    struct HeadVisitor;
    #[derive(Deserialize)]
    struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

    impl<'de> Visitor<'de> for HeadVisitor {
        type Value = EventHead<'de>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON array starting with the event name")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let Name(name) = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(0, &self))?;
            let first_arg: Option<&'de RawValue> = seq.next_element()?;
            let mut arg_count = usize::from(first_arg.is_some());
            while seq.next_element::<IgnoredAny>()?.is_some() {
                arg_count += 1;
            }
            Ok(EventHead {
                name,
                first_arg,
                arg_count,
            })
        }
    }

    let mut de = serde_json::Deserializer::from_str(args);
    let head = (&mut de).deserialize_seq(HeadVisitor)?;
    de.end()?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sio(text: &str) -> SocketPacket<'_> {
        SocketPacket::decode(text).expect(text)
    }

    #[test]
    fn engine_packets_from_protocol_docs() {
        assert_eq!(
            EnginePacket::decode("4hello").unwrap(),
            EnginePacket::Message("hello")
        );
        assert_eq!(
            EnginePacket::decode("2probe").unwrap(),
            EnginePacket::Ping("probe")
        );
        assert_eq!(
            EnginePacket::decode("3probe").unwrap(),
            EnginePacket::Pong("probe")
        );
        assert_eq!(EnginePacket::decode("2").unwrap(), EnginePacket::Ping(""));
        assert_eq!(EnginePacket::decode("5").unwrap(), EnginePacket::Upgrade);
        assert_eq!(EnginePacket::decode("6").unwrap(), EnginePacket::Noop);
        assert_eq!(EnginePacket::decode("1").unwrap(), EnginePacket::Close);
        assert_eq!(
            EnginePacket::decode("bAQIDBA==").unwrap(),
            EnginePacket::Binary("AQIDBA==")
        );
        assert!(EnginePacket::decode("").is_err());
        assert!(EnginePacket::decode("7").is_err());
        assert!(EnginePacket::decode("x").is_err());
        assert!(EnginePacket::decode("é").is_err());
    }

    #[test]
    fn engine_encode_roundtrip() {
        for text in [
            "0{}", "1", "2", "2probe", "3", "3probe", "4hello", "5", "6", "bAQID",
        ] {
            assert_eq!(EnginePacket::decode(text).unwrap().encode(), text);
        }
        assert_eq!(EnginePacket::Message("4é").encode(), "44é");
    }

    #[test]
    fn handshake_from_protocol_docs() {
        let open = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}"#;
        let EnginePacket::Open(data) = EnginePacket::decode(open).unwrap() else {
            panic!("not an open packet");
        };
        let hs = Handshake::parse(data).unwrap();
        assert_eq!(hs.sid, "lv_VI97HAXpY6yYWAAAC");
        assert_eq!(hs.upgrades, vec!["websocket".to_owned()]);
        assert_eq!(hs.ping_interval, 25000);
        assert_eq!(hs.ping_timeout, 5000);
        assert_eq!(hs.max_payload, Some(1_000_000));
        assert!(Handshake::parse(r#"{"sid":1}"#).is_err());
        assert!(Handshake::parse("").is_err());
    }

    #[test]
    fn payload_split_and_join() {
        let body = "4hello\x1e2\x1e4world";
        let packets: Vec<_> = split_payload(body).collect();
        assert_eq!(packets, vec!["4hello", "2", "4world"]);
        assert_eq!(join_payload(packets), body);
        assert_eq!(split_payload("").count(), 0);
        assert_eq!(split_payload("6").collect::<Vec<_>>(), vec!["6"]);
        assert_eq!(join_payload(["41", "1"]), "41\x1e1");
        assert_eq!(join_payload(std::iter::empty()), "");
    }

    #[test]
    fn socket_packets_from_protocol_docs() {
        let p = sio("0");
        assert_eq!((p.ty, p.namespace, p.data), (PacketType::Connect, "/", ""));
        let p = sio("0/admin,");
        assert_eq!(
            (p.ty, p.namespace, p.data),
            (PacketType::Connect, "/admin", "")
        );
        let p = sio(r#"0{"token":"123"}"#);
        assert_eq!(p.data, r#"{"token":"123"}"#);
        let p = sio(r#"0/admin,{"token":"123"}"#);
        assert_eq!((p.namespace, p.data), ("/admin", r#"{"token":"123"}"#));
        let p = sio(r#"0{"sid":"oSO0OpakMV_3jnilAAAA"}"#);
        assert_eq!(p.data, r#"{"sid":"oSO0OpakMV_3jnilAAAA"}"#);
        let p = sio(r#"4{"message":"Not authorized"}"#);
        assert_eq!(p.ty, PacketType::ConnectError);
        assert_eq!(connect_error_message(p.data), "Not authorized");

        let p = sio("1");
        assert_eq!((p.ty, p.namespace), (PacketType::Disconnect, "/"));
        let p = sio("1/admin,");
        assert_eq!((p.ty, p.namespace), (PacketType::Disconnect, "/admin"));

        let p = sio(r#"2["foo"]"#);
        assert_eq!(
            (p.ty, p.ack_id, p.data),
            (PacketType::Event, None, r#"["foo"]"#)
        );
        let p = sio(r#"2/admin,["bar"]"#);
        assert_eq!((p.namespace, p.data), ("/admin", r#"["bar"]"#));
        let p = sio(r#"212["foo"]"#);
        assert_eq!((p.ack_id, p.data), (Some(12), r#"["foo"]"#));
        let p = sio(r#"3/admin,13["bar"]"#);
        assert_eq!(
            (p.ty, p.namespace, p.ack_id, p.data),
            (PacketType::Ack, "/admin", Some(13), r#"["bar"]"#)
        );

        let p = sio(r#"51-["baz",{"_placeholder":true,"num":0}]"#);
        assert_eq!((p.ty, p.attachments), (PacketType::BinaryEvent, 1));
        assert_eq!(p.data, r#"["baz",{"_placeholder":true,"num":0}]"#);
        let p = sio(r#"61-/admin,15[{"_placeholder":true,"num":0}]"#);
        assert_eq!(
            (p.ty, p.attachments, p.namespace, p.ack_id),
            (PacketType::BinaryAck, 1, "/admin", Some(15))
        );
    }

    #[test]
    fn socket_encode_roundtrip() {
        for text in [
            "0",
            "0/admin,",
            r#"0{"token":"123"}"#,
            r#"0/admin,{"token":"123"}"#,
            "1",
            "1/admin,",
            r#"2["foo"]"#,
            r#"2/admin,["bar"]"#,
            r#"212["foo"]"#,
            r#"3/admin,13["bar"]"#,
            r#"4{"message":"Not authorized"}"#,
            r#"51-["baz",{"_placeholder":true,"num":0}]"#,
            r#"61-/admin,15[{"_placeholder":true,"num":0}]"#,
        ] {
            assert_eq!(sio(text).encode(), text);
        }
        assert_eq!(
            SocketPacket::event(r#"["a",1]"#).encode_engine(),
            r#"42["a",1]"#
        );
    }

    #[test]
    fn socket_malformed() {
        for bad in [
            "",
            "7",
            "x",
            r#"2"foo""#,
            "2",
            r#"2{"a":1}"#,
            "3",
            "4",
            r#"5["x"]"#,
            r#"5-["x"]"#,
            r#"299999999999999999999999["a"]"#,
            r#"012{}"#,
            "garbage",
        ] {
            assert!(SocketPacket::decode(bad).is_err(), "{bad:?} should fail");
        }
        // namespace without comma and data
        let p = sio("1/admin");
        assert_eq!(p.namespace, "/admin");
    }

    #[test]
    fn event_encoding() {
        assert_eq!(
            encode_event("say", &serde_json::json!({"text": "hi"})).unwrap(),
            r#"42["say",{"text":"hi"}]"#
        );
        assert_eq!(encode_event("a\"b", &1).unwrap(), r#"42["a\"b",1]"#);
        assert_eq!(encode_event("n", &()).unwrap(), r#"42["n",null]"#);
        assert_eq!(
            encode_event_raw_json("say", r#"{"x":[1,2]}"#),
            r#"42["say",{"x":[1,2]}]"#
        );
    }

    #[test]
    fn event_head() {
        let h = parse_event_head(r#"["echo",{"a":[1,2]},3]"#).unwrap();
        assert_eq!(h.name, "echo");
        assert!(matches!(h.name, Cow::Borrowed(_)));
        assert_eq!(h.first_arg.map(RawValue::get), Some(r#"{"a":[1,2]}"#));
        assert_eq!(h.arg_count, 2);

        let h = parse_event_head(r#"["a\"b"]"#).unwrap();
        assert_eq!(h.name, "a\"b");
        assert!(h.first_arg.is_none());
        assert_eq!(h.arg_count, 0);

        for bad in ["[]", "[1]", "{}", r#"["a""#, r#"["a"] x"#, "", r#"["a",]"#] {
            assert!(parse_event_head(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn connect_emit_and_disconnect_on_namespaces() {
        assert_eq!(encode_connect("/", None), "40");
        assert_eq!(encode_connect("/chat", None), "40/chat,");
        assert_eq!(
            encode_connect("/", Some(r#"{"token":"t"}"#)),
            r#"40{"token":"t"}"#
        );
        assert_eq!(
            encode_connect("/chat", Some(r#"{"token":"t"}"#)),
            r#"40/chat,{"token":"t"}"#
        );
        assert_eq!(
            encode_emit("/", None, "say", r#"{"text":"hi"}"#),
            encode_event_raw_json("say", r#"{"text":"hi"}"#)
        );
        assert_eq!(
            encode_emit("/chat", Some(7), "chat message", r#""hi""#),
            r#"42/chat,7["chat message","hi"]"#
        );
        assert_eq!(encode_emit("/", Some(0), "ping", ""), r#"420["ping"]"#);
        assert_eq!(encode_disconnect("/"), "41");
        assert_eq!(encode_disconnect("/chat"), "41/chat,");
        // What we encode, we decode to the same parts.
        let text = encode_emit("/chat", Some(12), "a\"b", "1,2");
        let EnginePacket::Message(m) = EnginePacket::decode(&text).unwrap() else {
            panic!("{text}");
        };
        let p = sio(m);
        assert_eq!(
            (p.ty, p.namespace, p.ack_id, p.data),
            (PacketType::Event, "/chat", Some(12), r#"["a\"b",1,2]"#)
        );
    }

    #[test]
    fn connect_error_messages() {
        assert_eq!(connect_error_message(r#"{"message":"no room"}"#), "no room");
        assert_eq!(
            connect_error_message(r#"{"message":"x","data":{"a":1}}"#),
            "x"
        );
        assert_eq!(connect_error_message(r#""legacy""#), "legacy");
        assert_eq!(connect_error_message("{oops"), "{oops");
    }
}
