//! Reading RESP3, what Redis speaks after `HELLO 3`, for the shard subscriber connections.
//!
//! The redis crate's own connections cannot carry sharded subscriptions safely: they take every
//! `sunsubscribe` push for the reply to the oldest request in flight, so the push Redis sends
//! when a slot moves away shifts every later reply of the connection by one (docs/notes.md).
//! Our subscriber connection reads frames itself, with this parser, and tells a confirmation
//! from such a push by its channel.
//!
//! Zero-copy: a frame borrows from the read buffer, aggregates are walked lazily, and nothing is
//! allocated per frame, so a room message costs no allocation between the socket and the
//! rooms. Untrusted sizes are bounded: nesting ([`MAX_DEPTH`]) and blob length ([`MAX_BLOB`]).

/// Deepest nesting accepted (pub/sub frames are 2 levels deep; `HELLO`'s reply 3).
pub const MAX_DEPTH: usize = 8;
/// Largest blob accepted (a room message is at most `--max-payload`; 64 KiB by default).
pub const MAX_BLOB: usize = 64 << 20;

/// One RESP3 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `+text`, e.g. `PONG`.
    Simple(&'a [u8]),
    /// `-CODE text`, or a blob error `!`.
    Error(&'a [u8]),
    /// `$` bytes, or `=` verbatim text (with its `txt:` prefix).
    Blob(&'a [u8]),
    /// `_`, or RESP2's `$-1` and `*-1`.
    Null,
    /// Any other scalar (`:` integer, `,` double, `#` boolean, `(` big number), as its text.
    Scalar(&'a [u8]),
    /// `>`: out of band (pub/sub messages and (un)subscribe confirmations).
    Push(Items<'a>),
    /// `*` array, `~` set, `%` map (keys and values in turn).
    Aggregate(Items<'a>),
    /// `|`: attributes of the frame that follows; not a reply of its own.
    Attribute(Items<'a>),
}

/// The elements of an aggregate or push, read one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Items<'a> {
    count: usize,
    /// The encoded elements, back to back (checked complete by [`parse`]).
    body: &'a [u8],
}

impl<'a> Items<'a> {
    pub fn iter(&self) -> ItemIter<'a> {
        ItemIter {
            rest: self.body,
            left: self.count,
        }
    }
}

pub struct ItemIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for ItemIter<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        if self.left == 0 {
            return None;
        }
        // `parse` checked the whole body, so every element parses; stop quietly if not.
        let (frame, used) = parse(self.rest).ok().flatten()?;
        self.rest = &self.rest[used..];
        self.left -= 1;
        Some(frame)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown RESP3 type byte {0:#04x}")]
    UnknownType(u8),
    #[error("a RESP3 length or count is not a number: {0:?}")]
    BadLength(String),
    #[error("a RESP3 frame is nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("a RESP3 blob or aggregate of {0} is over the limit of {MAX_BLOB}")]
    TooLarge(usize),
    #[error("a RESP3 line or blob does not end with CRLF")]
    MissingCrlf,
}

/// Parses the frame at the start of `buf`: the frame and the bytes it took, or `None` while it
/// is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    let Some(end) = frame_end(buf, 0, 0)? else {
        return Ok(None);
    };
    Ok(Some((frame_of(&buf[..end])?, end)))
}

/// Where the frame starting at `pos` ends, `None` while incomplete.
fn frame_end(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError::TooDeep);
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((text, after)) = line(buf, pos + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => Ok(Some(after)),
        b'$' | b'=' | b'!' => {
            if kind == b'$' && text == b"-1" {
                return Ok(Some(after));
            }
            let len = size(text)?;
            let end = after + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[after + len..end] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            Ok(Some(end))
        }
        b'*' | b'~' | b'%' | b'>' | b'|' => {
            if kind == b'*' && text == b"-1" {
                return Ok(Some(after));
            }
            let mut at = after;
            for _ in 0..element_count(kind, text)? {
                match frame_end(buf, at, depth + 1)? {
                    Some(end) => at = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        other => Err(ProtocolError::UnknownType(other)),
    }
}

/// The frame of exactly these bytes (checked complete by `frame_end`).
fn frame_of(frame: &[u8]) -> Result<Frame<'_>, ProtocolError> {
    let Some((text, after)) = line(frame, 1)? else {
        return Err(ProtocolError::MissingCrlf);
    };
    let items = |kind| -> Result<Items<'_>, ProtocolError> {
        Ok(Items {
            count: element_count(kind, text)?,
            body: &frame[after..],
        })
    };
    Ok(match frame[0] {
        b'+' => Frame::Simple(text),
        b'-' => Frame::Error(text),
        b'_' => Frame::Null,
        b'$' | b'*' if text == b"-1" => Frame::Null,
        b'$' | b'=' => Frame::Blob(&frame[after..frame.len() - 2]),
        b'!' => Frame::Error(&frame[after..frame.len() - 2]),
        b'>' => Frame::Push(items(b'>')?),
        b'|' => Frame::Attribute(items(b'|')?),
        kind @ (b'*' | b'~' | b'%') => Frame::Aggregate(items(kind)?),
        _ => Frame::Scalar(text),
    })
}

/// The line starting at `start`, without its CRLF, and the index after it.
fn line(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let Some(rest) = buf.get(start..) else {
        return Ok(None);
    };
    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    match newline.checked_sub(1) {
        Some(cr) if rest[cr] == b'\r' => Ok(Some((&rest[..cr], start + newline + 1))),
        _ => Err(ProtocolError::MissingCrlf),
    }
}

/// Elements in an aggregate with this header (a map or attribute has two per entry).
fn element_count(kind: u8, text: &[u8]) -> Result<usize, ProtocolError> {
    let count = size(text)?;
    if matches!(kind, b'%' | b'|') {
        count.checked_mul(2).ok_or(ProtocolError::TooLarge(count))
    } else {
        Ok(count)
    }
}

/// A blob length or element count: decimal digits, at most [`MAX_BLOB`].
fn size(text: &[u8]) -> Result<usize, ProtocolError> {
    let bad = || ProtocolError::BadLength(String::from_utf8_lossy(text).into_owned());
    if text.is_empty() || text.len() > 12 || !text.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let value = text
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    if value > MAX_BLOB {
        return Err(ProtocolError::TooLarge(value));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A value tree to encode, parse back and compare.
    #[derive(Debug, Clone, PartialEq)]
    enum Value {
        Simple(Vec<u8>),
        Error(Vec<u8>),
        Blob(Vec<u8>),
        Null,
        Scalar(u8, Vec<u8>),
        Push(Vec<Value>),
        Array(Vec<Value>),
    }

    fn encode(value: &Value, out: &mut Vec<u8>) {
        let aggregate = |out: &mut Vec<u8>, kind: u8, items: &[Value]| {
            out.push(kind);
            out.extend_from_slice(format!("{}\r\n", items.len()).as_bytes());
            for item in items {
                encode(item, out);
            }
        };
        match value {
            Value::Simple(t) | Value::Error(t) | Value::Scalar(_, t) => {
                out.push(match value {
                    Value::Simple(_) => b'+',
                    Value::Error(_) => b'-',
                    Value::Scalar(kind, _) => *kind,
                    _ => unreachable!("matched above"),
                });
                out.extend_from_slice(t);
                out.extend_from_slice(b"\r\n");
            }
            Value::Blob(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Null => out.extend_from_slice(b"_\r\n"),
            Value::Push(items) => aggregate(out, b'>', items),
            Value::Array(items) => aggregate(out, b'*', items),
        }
    }

    fn decode(frame: Frame<'_>) -> Value {
        match frame {
            Frame::Simple(t) => Value::Simple(t.to_vec()),
            Frame::Error(t) => Value::Error(t.to_vec()),
            Frame::Blob(b) => Value::Blob(b.to_vec()),
            Frame::Null => Value::Null,
            Frame::Scalar(t) => Value::Scalar(b':', t.to_vec()),
            Frame::Push(items) => Value::Push(items.iter().map(decode).collect()),
            Frame::Aggregate(items) => Value::Array(items.iter().map(decode).collect()),
            Frame::Attribute(_) => panic!("no attributes are encoded"),
        }
    }

    fn line_text() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
            0..12,
        )
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            line_text().prop_map(Value::Simple),
            line_text().prop_map(Value::Error),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Blob),
            Just(Value::Null),
            any::<i64>().prop_map(|n| Value::Scalar(b':', n.to_string().into_bytes())),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Push),
                proptest::collection::vec(inner, 0..5).prop_map(Value::Array),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_encoded_value_parses_back_whole_and_no_prefix_parses(v in value(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut bytes = Vec::new();
            encode(&v, &mut bytes);
            let len = bytes.len();
            for cut in 0..len {
                prop_assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix of {} bytes", cut);
            }
            bytes.extend_from_slice(&tail);
            let (frame, used) = parse(&bytes).expect("valid").expect("complete");
            prop_assert_eq!(used, len);
            prop_assert_eq!(decode(frame), v);
        }

        #[test]
        fn any_bytes_give_a_frame_an_error_or_wait_for_more(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((_, used))) = parse(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }
    }

    #[test]
    fn pubsub_frames_as_redis_sends_them() {
        let push = b">3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$5\r\nhello\r\n";
        let (frame, used) = parse(push).expect("valid").expect("complete");
        assert_eq!(used, push.len());
        let Frame::Push(items) = frame else {
            panic!("{frame:?}")
        };
        let parts: Vec<Frame<'_>> = items.iter().collect();
        assert_eq!(
            parts,
            [
                Frame::Blob(b"smessage"),
                Frame::Blob(b"a"),
                Frame::Blob(b"hello")
            ]
        );
        let moved = b"-MOVED 15495 127.0.0.1:7103\r\n";
        assert_eq!(
            parse(moved),
            Ok(Some((
                Frame::Error(b"MOVED 15495 127.0.0.1:7103"),
                moved.len()
            )))
        );
        assert_eq!(parse(b"$-1\r\n"), Ok(Some((Frame::Null, 5))));
        let hello = b"%1\r\n+server\r\n+redis\r\n";
        assert!(
            matches!(parse(hello), Ok(Some((Frame::Aggregate(i), 21))) if i.iter().count() == 2)
        );
    }

    #[test]
    fn hostile_sizes_are_refused_not_waited_for() {
        assert_eq!(
            parse(b"$999999999999\r\n"),
            Err(ProtocolError::TooLarge(999_999_999_999))
        );
        assert!(matches!(
            parse(b"$-5\r\n"),
            Err(ProtocolError::BadLength(_))
        ));
        assert_eq!(parse(b"+ok\n"), Err(ProtocolError::MissingCrlf));
        assert_eq!(parse(b"$2\r\nabcd"), Err(ProtocolError::MissingCrlf));
        assert_eq!(parse(b"?\r\n"), Err(ProtocolError::UnknownType(b'?')));
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert_eq!(parse(deep.as_bytes()), Err(ProtocolError::TooDeep));
    }
}
