//! The text a simulated member says, and reading it back out of what the server delivers.
//!
//! Fan-out latency is measured end to end without any side channel: the sender writes who it
//! is, which message this is and when it was MEANT to be sent into the `say` text itself, and
//! every receiver reads those back from the `broadcast_say` it gets. The format is plain text so
//! that a human in the same room (or the original Node clients) sees something readable, and a
//! version tag (`rs1`) so that other texts (a person typing, another tool) are simply ignored.
//!
//! ```text
//! rs1 <sender_slot> <seq> <intended_us> xxxxxxxx...
//! ```
//!
//! Both directions run once per message on the hot path, so neither allocates: encoding reuses
//! the caller's `String`, decoding parses digits by hand, and [`parse_message_packet`] borrows
//! every string from the packet (JSON strings without escapes, which is all our own texts).

use std::borrow::Cow;
use std::fmt::Write as _;

use roomstorm_protocol::ErrorCode;
pub use roomstorm_protocol::RoomEventKind;
use serde::Deserialize;

/// What a received room message is: join, say or quit (the protocol's `event` field).
pub type MessageKind = RoomEventKind;

/// Tag that starts every probe: bump it if the format ever changes, so old and new loadgens in
/// one room ignore each other instead of mis-reading.
const TAG: &str = "rs1 ";

/// Padding byte: ASCII so that the text's byte length is exactly what was asked for.
const PAD: char = 'x';

/// What a probe text says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The sender's slot in its room (room-local member index).
    pub sender_slot: u32,
    /// The sender's message number, counted per sender slot from 0. `u32::MAX` never appears:
    /// the delivery ledger keeps half-open ranges and needs `seq + 1` to exist.
    pub seq: u32,
    /// When the message was meant to be sent, in µs on the sending process's clock.
    pub intended_us: u64,
}

/// Writes the probe text for one message into `out` (cleared first, its capacity reused).
///
/// The header is `rs1 <slot> <seq> <intended_us> ` (note the trailing space), followed by `x`
/// up to `size` bytes. If `size` is smaller than the header the header alone is written: a
/// probe that cannot be decoded would be worth nothing.
pub fn encode_probe(out: &mut String, sender_slot: u32, seq: u32, intended_us: u64, size: usize) {
    out.clear();
    out.reserve(size);
    // Writing integers into a String cannot fail.
    let _ = write!(out, "{TAG}{sender_slot} {seq} {intended_us} ");
    let pad = size.saturating_sub(out.len());
    out.extend(std::iter::repeat_n(PAD, pad));
}

/// Reads a probe text back; `None` for any text that is not exactly one of ours.
///
/// Accepted: the tag, three decimal numbers separated by single spaces, then either the end
/// of the text (a server that trims trailing spaces) or a space followed by padding `x` only.
pub fn decode_probe(text: &str) -> Option<Probe> {
    let rest = text.strip_prefix(TAG)?;
    let (sender_slot, rest) = split_number(rest)?;
    let (seq, rest) = split_number(rest)?;
    let (intended_us, rest) = split_number(rest)?;
    // Without an early exit, so that it vectorizes: the padding is most of the text.
    let padding_ok = rest.bytes().fold(true, |ok, b| ok & (b == PAD as u8));
    let sender_slot = u32::try_from(sender_slot).ok()?;
    let seq = u32::try_from(seq).ok().filter(|&s| s != u32::MAX)?;
    padding_ok.then_some(Probe {
        sender_slot,
        seq,
        intended_us,
    })
}

/// Finds a probe inside a longer text (an app that adds a name or a time around what was
/// said): the first `rs1 ` tag followed by the three numbers, a space or the end, and padding
/// `x` up to whatever follows. The same numbers as [`decode_probe`] gives for the probe alone.
pub fn find_probe(text: &str) -> Option<Probe> {
    let mut from = 0;
    while let Some(at) = text[from..].find(TAG) {
        let start = from + at;
        let rest = &text[start + TAG.len()..];
        let header = split_number(rest).and_then(|(slot, rest)| {
            let (seq, rest) = split_number(rest)?;
            let (intended, _) = split_number(rest)?;
            Some((slot, seq, intended))
        });
        if let Some((slot, seq, intended_us)) = header {
            let probe = u32::try_from(slot)
                .ok()
                .zip(u32::try_from(seq).ok().filter(|&s| s != u32::MAX));
            if let Some((sender_slot, seq)) = probe {
                return Some(Probe {
                    sender_slot,
                    seq,
                    intended_us,
                });
            }
        }
        from = start + TAG.len();
    }
    None
}

/// Parses a leading decimal `u64` followed by a single space or the end of the text, and
/// returns it with the text after that space. Hand-written so that no input can make it
/// allocate and anything unexpected (sign, leading `+`, overflow, empty) is a plain `None`.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits_end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    if digits_end == 0 || digits_end > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for b in text[..digits_end].bytes() {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let rest = &text[digits_end..];
    match rest.as_bytes().first() {
        None => Some((value, rest)),
        Some(b' ') => Some((value, &rest[1..])),
        Some(_) => None,
    }
}

/// One room message as received, borrowed from the packet when its strings have no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'a> {
    /// Join, say or quit.
    pub kind: RoomEventKind,
    /// Who joined, spoke or left.
    pub username: Cow<'a, str>,
    /// What was said (`broadcast_say` only; `None` if the server sent none).
    pub text: Option<Cow<'a, str>>,
}

/// A `Cow<str>` that borrows when it can. serde only borrows a `Cow` field marked `borrow`
/// when the field's type is exactly `Cow`; inside an `Option` it would always allocate, so the
/// optional `text` goes through this newtype.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// `["message", {...}]`: exactly the two arguments every room message has.
#[derive(Deserialize)]
struct MessageArgs<'a>(#[serde(borrow)] Str<'a>, #[serde(borrow)] Envelope<'a>);

#[derive(Deserialize)]
struct Envelope<'a> {
    event: RoomEventKind,
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    username: Str<'a>,
    #[serde(default, borrow)]
    text: Option<Str<'a>>,
}

/// Parses the raw Engine.IO text of a server event, e.g.
/// `42["message",{"event":"broadcast_say","data":{"username":"m7","text":"rs1 7 42 ..."}}]`.
///
/// `None` for anything that is not a well-formed `message` event on the main namespace: other
/// events (`error`), unknown `event` kinds, pings, malformed JSON.
pub fn parse_message_packet(raw: &str) -> Option<Received<'_>> {
    scan_plain_message(raw).or_else(|| parse_message_packet_fully(raw))
}

/// The code of an `error` event (`42["error",{"code":"busy",...}]`); `None` for any other
/// packet, or a code this protocol does not define.
pub fn parse_error_packet(raw: &str) -> Option<ErrorCode> {
    #[derive(Deserialize)]
    struct Payload<'a> {
        #[serde(borrow)]
        code: Cow<'a, str>,
    }
    let args = raw.strip_prefix("42")?;
    let (name, payload): (Cow<str>, Payload) = serde_json::from_str(args).ok()?;
    if name != roomstorm_protocol::EVENT_ERROR {
        return None;
    }
    ErrorCode::from_name(&payload.code)
}

/// [`parse_message_packet`] through serde_json, for every shape.
fn parse_message_packet_fully(raw: &str) -> Option<Received<'_>> {
    let args = raw.strip_prefix("42")?;
    // An ack id (digits) may sit between the type and the array; the server never asks for
    // acks on broadcasts, but skipping it costs nothing.
    let args = args.trim_start_matches(|c: char| c.is_ascii_digit());
    parse_message_args(args)
}

/// What every room message the chat server sends starts with, up to the event kind.
const PLAIN_HEAD: &str = r#"42["message",{"event":""#;

/// The fast path of [`parse_message_packet`]: the exact text the chat server serializes,
/// `42["message",{"event":"<kind>","data":{"username":"<u>"[,"text":"<t>"]}}]`, whose
/// strings need no unescaping, recognised by comparing bytes (no JSON parser, no allocation).
///
/// `None` means "not exactly this shape" (whitespace, other field order, extra fields, an
/// escape in a string, an ack id, ...), never "invalid": the caller then runs the full parse.
/// Whenever this returns `Some`, the full parse returns the same value: the text is valid
/// JSON of the expected shape, and strings without `\` or control characters decode to
/// themselves.
fn scan_plain_message(raw: &str) -> Option<Received<'_>> {
    let rest = raw.strip_prefix(PLAIN_HEAD)?;
    let (kind, rest) = if let Some(rest) = rest.strip_prefix("broadcast_say\"") {
        (RoomEventKind::Say, rest)
    } else if let Some(rest) = rest.strip_prefix("join\"") {
        (RoomEventKind::Join, rest)
    } else if let Some(rest) = rest.strip_prefix("broadcast_quit\"") {
        (RoomEventKind::Quit, rest)
    } else {
        return None;
    };
    let rest = rest.strip_prefix(r#","data":{"username":"#)?;
    let (username, rest) = plain_string(rest)?;
    let (text, rest) = match rest.strip_prefix(r#","text":"#) {
        Some(rest) => {
            let (text, rest) = plain_string(rest)?;
            (Some(Cow::Borrowed(text)), rest)
        }
        None => (None, rest),
    };
    (rest == "}}]").then_some(Received {
        kind,
        username: Cow::Borrowed(username),
        text,
    })
}

/// A JSON string at the start of `text` that decodes to its own bytes: `"`, then anything but
/// `\`, `"` and control characters, then `"`. Returns the content and what follows the quote.
fn plain_string(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    // `find` of one ASCII byte is a memchr; the check of the content then runs without an
    // early exit so that it vectorizes (both matter: this runs on every received message).
    let end = body.find('"')?;
    let content = &body[..end];
    let plain = content
        .bytes()
        .fold(true, |ok, b| ok & (b != b'\\') & (b >= 0x20));
    plain.then(|| (content, &body[end + 1..]))
}

/// Like [`parse_message_packet`] for the JSON array alone (`["message",{...}]`), as the
/// client's raw event gives it.
pub fn parse_message_args(args: &str) -> Option<Received<'_>> {
    let MessageArgs(Str(name), envelope) = serde_json::from_str(args).ok()?;
    if name != roomstorm_protocol::EVENT_MESSAGE {
        return None;
    }
    Some(Received {
        kind: envelope.event,
        username: envelope.data.username.0,
        text: envelope.data.text.map(|t| t.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(slot: u32, seq: u32, intended: u64, size: usize) -> String {
        let mut out = String::from("leftover");
        encode_probe(&mut out, slot, seq, intended, size);
        out
    }

    #[test]
    fn encodes_header_then_padding_to_the_exact_size() {
        let text = encoded(7, 42, 1_732_580_000_123_456, 40);
        assert_eq!(text, "rs1 7 42 1732580000123456 xxxxxxxxxxxxxx");
        assert_eq!(text.len(), 40);
    }

    #[test]
    fn a_size_below_the_header_writes_the_header_alone() {
        assert_eq!(encoded(1, 2, 3, 0), "rs1 1 2 3 ");
        assert_eq!(encoded(1, 2, 3, 10), "rs1 1 2 3 ");
        assert_eq!(encoded(1, 2, 3, 11), "rs1 1 2 3 x");
    }

    #[test]
    fn encoding_reuses_the_buffer() {
        let mut out = String::with_capacity(64);
        let ptr = out.as_ptr();
        for seq in 0..100 {
            encode_probe(&mut out, 3, seq, 1_000_000 + u64::from(seq), 64);
            assert_eq!(out.len(), 64);
        }
        assert_eq!(
            out.as_ptr(),
            ptr,
            "no reallocation once the buffer is big enough"
        );
    }

    #[test]
    fn round_trips() {
        for (slot, seq, intended, size) in [
            (0, 0, 0, 0),
            (7, 42, 1_732_580_000_123_456, 200),
            (u32::MAX, u32::MAX - 1, u64::MAX, 2000),
        ] {
            let text = encoded(slot, seq, intended, size);
            let probe = decode_probe(&text).expect("our own probe decodes");
            assert_eq!(
                probe,
                Probe {
                    sender_slot: slot,
                    seq,
                    intended_us: intended
                }
            );
        }
    }

    #[test]
    fn a_probe_is_found_inside_a_longer_text() {
        let probe = encoded(7, 42, 1_732_580_000_123_456, 40);
        for text in [
            probe.clone(),
            format!("m000007: {probe}"),
            format!("[12:00] <m7> {probe} (edited)"),
            format!("rs1 no {probe}"),
            "x rs1 7 42 1732580000123456".to_owned(),
        ] {
            assert_eq!(find_probe(&text), decode_probe(&probe), "{text:?}");
        }
        for text in [
            "",
            "rs1 1 2",
            "hello rs1",
            "rs1 1 4294967295 3 ",
            "rs1 4294967296 1 2",
        ] {
            assert_eq!(find_probe(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_trimmed_probe_still_decodes() {
        let probe = decode_probe("rs1 1 2 3").expect("decodes");
        assert_eq!(probe.intended_us, 3);
    }

    #[test]
    fn other_texts_are_not_probes() {
        for text in [
            "",
            "hello",
            "rs1",
            "rs1 ",
            "rs1 1 2",
            "rs1 1 2 ",
            "rs2 1 2 3 ",
            "RS1 1 2 3 ",
            "rs1 -1 2 3 ",
            "rs1 +1 2 3 ",
            "rs1 1  2 3 ",
            "rs1 1 2 3 hello",
            "rs1 1 2 3x",
            "rs1 4294967296 2 3 ",
            "rs1 1 4294967295 3 ",
            "rs1 1 2 18446744073709551616 ",
            "rs1 1 2 99999999999999999999999 ",
            " rs1 1 2 3 ",
            "rs1 1 2 3 xxé",
        ] {
            assert_eq!(decode_probe(text), None, "{text:?}");
        }
    }

    #[test]
    fn parses_a_real_socketio_say_packet_without_copying() {
        let mut text = String::new();
        encode_probe(&mut text, 7, 42, 1_732_580_000_123_456, 48);
        let raw = format!(
            r#"42["message",{{"event":"broadcast_say","data":{{"username":"m000007","text":"{text}"}}}}]"#
        );
        let received = parse_message_packet(&raw).expect("a say");
        assert_eq!(received.kind, RoomEventKind::Say);
        assert!(matches!(received.username, Cow::Borrowed("m000007")));
        let Some(Cow::Borrowed(said)) = received.text else {
            panic!("text should borrow: {:?}", received.text);
        };
        assert_eq!(decode_probe(said).map(|p| p.seq), Some(42));
    }

    #[test]
    fn parses_what_the_server_actually_serializes() {
        let json = roomstorm_protocol::RoomEvent::say("m1", "rs1 1 0 5 ").to_json();
        let raw = format!(r#"42["message",{json}]"#);
        let received = parse_message_packet(&raw).expect("a say");
        assert_eq!(received.text.as_deref(), Some("rs1 1 0 5 "));
        for (event, kind) in [
            (
                roomstorm_protocol::RoomEvent::join("a b"),
                RoomEventKind::Join,
            ),
            (
                roomstorm_protocol::RoomEvent::quit("c"),
                RoomEventKind::Quit,
            ),
        ] {
            let raw = format!(r#"42["message",{}]"#, event.to_json());
            let received = parse_message_packet(&raw).expect("parses");
            assert_eq!(received.kind, kind);
            assert_eq!(received.username, event.data.username);
            assert_eq!(received.text, None);
        }
    }

    #[test]
    fn escaped_strings_are_decoded_into_owned_text() {
        let raw = r#"42["message",{"event":"broadcast_say","data":{"username":"a\"b","text":"line\nbreak","extra":1}}]"#;
        let received = parse_message_packet(raw).expect("parses");
        assert_eq!(received.username, "a\"b");
        assert_eq!(received.text.as_deref(), Some("line\nbreak"));
    }

    #[test]
    fn error_codes_are_read_from_error_events() {
        let busy = r#"42["error",{"code":"busy","message":"retry later"}]"#;
        assert_eq!(parse_error_packet(busy), Some(ErrorCode::Busy));
        let unknown = r#"42["error",{"code":"outcome_unknown","message":"?"}]"#;
        assert_eq!(parse_error_packet(unknown), Some(ErrorCode::OutcomeUnknown));
        for raw in [
            r#"42["error",{"code":"nope","message":""}]"#,
            r#"42["message",{"code":"busy"}]"#,
            r#"42["error"]"#,
            "3",
        ] {
            assert_eq!(parse_error_packet(raw), None, "{raw}");
        }
    }

    #[test]
    fn other_packets_are_ignored() {
        for raw in [
            "2",
            "3probe",
            "40{\"sid\":\"x\"}",
            r#"42["error",{"code":"not_joined","message":"join first"}]"#,
            r#"42["message",{"event":"typing","data":{"username":"a"}}]"#,
            r#"42["message",{"event":"broadcast_say"}]"#,
            r#"42["message",{"event":"join","data":{"username":5}}]"#,
            r#"42["message","#,
            r#"43["message",{"event":"join","data":{"username":"a"}}]"#,
            r#"42/chat,["message",{"event":"join","data":{"username":"a"}}]"#,
        ] {
            assert_eq!(parse_message_packet(raw), None, "{raw}");
        }
    }

    /// The fast path agrees with serde_json wherever it answers: server texts, escapes,
    /// control characters, and every one-byte change of real packets.
    #[test]
    fn the_fast_path_agrees_with_the_full_parse() {
        let mut probe = String::new();
        encode_probe(&mut probe, 7, 42, 1_732_580_000_123_456, 64);
        let mut packets: Vec<String> = [
            roomstorm_protocol::RoomEvent::say("m000007", &probe),
            roomstorm_protocol::RoomEvent::say("é ü", "hello \"you\"\n"),
            roomstorm_protocol::RoomEvent::say("a\u{1}b", "tab\there"),
            roomstorm_protocol::RoomEvent::join("m1"),
            roomstorm_protocol::RoomEvent::quit("m2"),
        ]
        .iter()
        .map(|e| format!(r#"42["message",{}]"#, e.to_json()))
        .collect();
        packets.push(format!(
            r#"42["message",{{"event":"broadcast_say","data":{{"username":"m","text":"{probe}\u0078"}}}}]"#
        ));
        packets.push(
            r#"42["message",{"event":"join","data":{"username":"m","text":"x","more":1}}]"#.into(),
        );
        packets.push(r#"42["message",{"event":"join","data":{"username":"m"}}] "#.into());
        packets
            .push("42[\"message\",{\"event\":\"join\",\"data\":{\"username\":\"a\u{1}\"}}]".into());
        let originals = packets.clone();
        for original in &originals {
            for (i, _) in original.char_indices() {
                for c in ['"', '\\', 'x', '}', ',', ' ', '\u{7}', 'é'] {
                    let mut changed = original.clone();
                    let len = changed[i..].chars().next().map_or(0, char::len_utf8);
                    changed.replace_range(i..i + len, c.encode_utf8(&mut [0; 4]));
                    packets.push(changed);
                }
            }
        }
        let mut fast = 0;
        for raw in &packets {
            if let Some(scanned) = scan_plain_message(raw) {
                fast += 1;
                assert_eq!(Some(scanned), parse_message_packet_fully(raw), "{raw}");
            }
        }
        assert!(
            fast > originals.len(),
            "the fast path answered {fast} times"
        );
        // What our members receive always takes the fast path.
        let received = scan_plain_message(&originals[0]).expect("fast path");
        assert_eq!(
            decode_probe(received.text.as_deref().unwrap_or("")).map(|p| p.seq),
            Some(42)
        );
        assert!(scan_plain_message(&originals[3]).is_some());
        assert!(scan_plain_message(&originals[4]).is_some());
        // Escapes go the slow way.
        assert!(scan_plain_message(&originals[1]).is_none());
        assert!(parse_message_packet(&originals[1]).is_some());
    }

    #[test]
    fn an_ack_id_before_the_array_is_skipped() {
        let raw = r#"4217["message",{"event":"join","data":{"username":"a"}}]"#;
        assert_eq!(
            parse_message_packet(raw).map(|r| r.kind),
            Some(RoomEventKind::Join)
        );
    }
}
