//! The read side of a connection: the [`Receiver`] and what it yields.
//!
//! No background task runs per connection, so the load generator can hold thousands of them
//! cheaply: the receiver owns the read half and does all protocol work while it is polled. It
//! answers pings, watches for missing pings, runs the single long-poll GET, and hands out
//! events (as borrowed text on the fast path).
//!
//! Consequence: heartbeats are only answered while someone is awaiting [`Receiver::next`] (or
//! [`Receiver::next_raw`]). Every user of this crate reads its events anyway; a member that
//! stops reading is disconnected by the server after `pingInterval + pingTimeout`, which is
//! what a real stuck browser tab would see too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::codec::{self, EnginePacket, EventHead, PacketType, RECORD_SEPARATOR, SocketPacket};
use crate::net::{HttpError, PollTarget, WsStream};
use crate::sender::{Sender, Shared};

/// What the [`Receiver`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A Socket.IO EVENT on the main namespace.
    Event {
        /// Event name.
        name: String,
        /// First argument after the name, `Null` if there is none.
        data: serde_json::Value,
        /// The whole Engine.IO packet text, e.g. `42["echo",{"a":1}]`.
        raw: String,
    },
    /// The connection ended; this is the last item, `next` returns `None` afterwards.
    Disconnected {
        /// Human-readable cause: server DISCONNECT (`41`), Engine.IO close, transport error,
        /// ping timeout, malformed packet, or a close by this client.
        reason: String,
    },
}

/// The fast-path form of [`Incoming`], borrowing from the receiver's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawIncoming<'a> {
    /// A Socket.IO EVENT on the connection's namespace.
    Event(RawEvent<'a>),
    /// A Socket.IO ACK on the connection's namespace: the server's answer to an emit made with
    /// [`Sender::emit_with_ack`] (or an ack nobody asked for: the id tells). Only this fast
    /// path yields them; [`Receiver::next`] skips them.
    Ack(RawAck<'a>),
    /// The connection ended (same meaning as [`Incoming::Disconnected`]).
    Disconnected(&'a str),
}

/// An acknowledgement as text, valid until the next call on the [`Receiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAck<'a> {
    id: u64,
    args: &'a str,
}

impl<'a> RawAck<'a> {
    /// The id of the emit this acknowledges.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The acknowledgement's arguments as the JSON array the server sent (`[]`, `[{"ok":true}]`);
    /// only its first character has been checked.
    pub fn args_json(&self) -> &'a str {
        self.args
    }
}

/// An event as text, valid until the next call on the [`Receiver`].
///
/// Only the Socket.IO framing has been checked; the JSON is parsed on demand, e.g. with
/// [`RawEvent::head`] which borrows the name and first argument without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent<'a> {
    packet: &'a str,
    args: &'a str,
    ack_id: Option<u64>,
}

impl<'a> RawEvent<'a> {
    /// The whole Engine.IO packet, e.g. `42["echo",{"a":1}]`.
    pub fn packet(&self) -> &'a str {
        self.packet
    }

    /// The JSON array `["name",arg0,...]`.
    pub fn args_json(&self) -> &'a str {
        self.args
    }

    /// The ack id if the server asked for an acknowledgement (not answered by this client).
    pub fn ack_id(&self) -> Option<u64> {
        self.ack_id
    }

    /// Parses the event name and the first argument as raw JSON.
    pub fn head(&self) -> serde_json::Result<EventHead<'a>> {
        codec::parse_event_head(self.args)
    }

    /// Builds the owned [`Incoming::Event`].
    pub fn to_incoming(&self) -> serde_json::Result<Incoming> {
        let head = self.head()?;
        let data = match head.first_arg {
            Some(raw) => serde_json::from_str(raw.get())?,
            None => serde_json::Value::Null,
        };
        Ok(Incoming::Event {
            name: head.name.into_owned(),
            data,
            raw: self.packet.to_owned(),
        })
    }
}

type GetFuture = Pin<Box<dyn Future<Output = Result<Bytes, HttpError>> + Send>>;

pub(crate) enum Source {
    Ws(SplitStream<WsStream>),
    Polling {
        target: Arc<PollTarget>,
        /// The one long-poll GET in flight. Kept here (not on the stack of `next`) so that
        /// cancelling `next` (e.g. by a timeout) neither loses its response nor starts a
        /// second concurrent GET.
        inflight: Option<GetFuture>,
    },
    Done,
}

/// The read side of a connection; drives heartbeats and polling while awaited.
///
/// `next` and `next_raw` are cancel-safe: dropping their future (e.g. in `select!` or
/// `tokio::time::timeout`) loses no packet.
///
/// Server pings are answered only while `next`/`next_raw` is awaited, and polling only
/// fetches while it is awaited; keep one task reading. Missing server pings (nothing for
/// `pingInterval + pingTimeout`) end the connection with `Disconnected`. Dropping the receiver
/// does not close the connection while a [`Sender`] clone lives: call [`Sender::close`].
pub struct Receiver {
    shared: Arc<Shared>,
    source: Source,
    /// Current websocket message or polling payload, consumed from `pos`.
    buf: Utf8Bytes,
    pos: usize,
    /// `buf` is a polling payload (packets separated by `\x1e`).
    split: bool,
    deadline: Pin<Box<Sleep>>,
    ping_window: Duration,
    pong_pending: bool,
    pings: u32,
    /// Set once `Disconnected` was returned; holds its reason.
    finished: Option<Box<str>>,
    finished_reported: bool,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("engine_sid", &self.shared.engine_sid)
            .field("finished", &self.finished)
            .finish()
    }
}

/// What one buffered packet means to the receiver.
pub(crate) enum Step {
    Skip,
    Ping,
    Event {
        args_start: usize,
        ack_id: Option<u64>,
    },
    Ack {
        args_start: usize,
        id: u64,
    },
    Disconnect {
        reason: String,
        engine_close: bool,
    },
}

/// What `packet` means to a receiver on `namespace`.
pub(crate) fn classify(packet: &str, namespace: &str) -> Step {
    let msg = match EnginePacket::decode(packet) {
        Ok(EnginePacket::Message(m)) => m,
        Ok(EnginePacket::Ping(_)) => return Step::Ping,
        Ok(EnginePacket::Close) => {
            return Step::Disconnect {
                reason: "server closed the Engine.IO session (1)".to_owned(),
                engine_close: false,
            };
        }
        Ok(_) => return Step::Skip,
        Err(e) => {
            return Step::Disconnect {
                reason: e.to_string(),
                engine_close: true,
            };
        }
    };
    let p = match SocketPacket::decode(msg) {
        Ok(p) => p,
        Err(e) => {
            return Step::Disconnect {
                reason: e.to_string(),
                engine_close: true,
            };
        }
    };
    if !same_namespace(p.namespace, namespace) {
        return Step::Skip;
    }
    match p.ty {
        PacketType::Event => Step::Event {
            args_start: packet.len() - p.data.len(),
            ack_id: p.ack_id,
        },
        PacketType::Ack => match p.ack_id {
            Some(id) => Step::Ack {
                args_start: packet.len() - p.data.len(),
                id,
            },
            // An ACK names the emit it answers; one without an id answers nothing.
            None => Step::Skip,
        },
        PacketType::Disconnect => Step::Disconnect {
            reason: "server disconnected the socket (41)".to_owned(),
            engine_close: true,
        },
        PacketType::ConnectError => Step::Disconnect {
            reason: format!(
                "server sent CONNECT_ERROR: {}",
                codec::connect_error_message(p.data)
            ),
            engine_close: true,
        },
        // Duplicate CONNECT acks and binary packets (attachments are not supported) are
        // ignored.
        PacketType::Connect | PacketType::BinaryEvent | PacketType::BinaryAck => Step::Skip,
    }
}

/// Whether two namespaces as `SocketPacket::decode` gives them are one. Every namespace starts
/// with `/`, so two of length 1 are both the main one: the common case needs no `memcmp` call
/// (this runs once per received packet).
#[inline]
fn same_namespace(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.len() == 1 || a == b)
}

/// Next non-empty packet range in `text` from `*pos`; `split` selects polling payloads.
pub(crate) fn next_range(text: &str, pos: &mut usize, split: bool) -> Option<(usize, usize)> {
    while *pos < text.len() {
        let start = *pos;
        let end = if split {
            text[start..]
                .find(RECORD_SEPARATOR)
                .map_or(text.len(), |i| start + i)
        } else {
            text.len()
        };
        *pos = end + 1;
        if end > start {
            return Some((start, end));
        }
    }
    None
}

/// What [`Receiver::next_raw`] found, before it borrows the buffer to hand it out.
enum Packet {
    Event(Option<u64>),
    Ack(u64),
}

impl Receiver {
    /// The read side of a connection just acknowledged by the server. `buf` holds what the
    /// handshake read past the CONNECT ack, from `pos` (`split`: a polling payload); the
    /// connection ends if no ping comes within `ping_window`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        source: Source,
        (buf, pos, split): (Utf8Bytes, usize, bool),
        ping_window: Duration,
    ) -> Receiver {
        Receiver {
            shared,
            source,
            buf,
            pos,
            split,
            deadline: Box::pin(tokio::time::sleep(ping_window)),
            ping_window,
            pong_pending: false,
            pings: 0,
            finished: None,
            finished_reported: false,
        }
    }

    /// Next event or the final disconnect, as owned values.
    ///
    /// A malformed event from the server ends the connection with `Disconnected`.
    pub async fn next(&mut self) -> Option<Incoming> {
        let parsed = loop {
            match self.next_raw().await? {
                RawIncoming::Event(ev) => break ev.to_incoming(),
                // This API has no acknowledgements (its users ask for none).
                RawIncoming::Ack(_) => {}
                RawIncoming::Disconnected(reason) => {
                    return Some(Incoming::Disconnected {
                        reason: reason.to_owned(),
                    });
                }
            }
        };
        match parsed {
            Ok(incoming) => Some(incoming),
            Err(e) => {
                let reason = format!("malformed event from the server: {e}");
                self.finish(reason, true).await;
                self.finished_reported = true;
                Some(Incoming::Disconnected {
                    reason: self.finished.as_deref().unwrap_or_default().to_owned(),
                })
            }
        }
    }

    /// Fast path: the next event (or acknowledgement) as borrowed text (no JSON parsing, no
    /// allocation).
    ///
    /// Returns `Disconnected` once, then `None`.
    pub async fn next_raw(&mut self) -> Option<RawIncoming<'_>> {
        let (start, end, args_start, kind) = loop {
            if self.finished.is_some() {
                if self.finished_reported {
                    return None;
                }
                self.finished_reported = true;
                return self.finished.as_deref().map(RawIncoming::Disconnected);
            }
            if self.pong_pending {
                if let Err(e) = self.shared.send_text(Utf8Bytes::from_static("3")).await {
                    self.finish(format!("cannot answer ping: {e}"), false).await;
                    continue;
                }
                self.pong_pending = false;
            }
            match next_range(self.buf.as_str(), &mut self.pos, self.split) {
                Some((s, e)) => match classify(&self.buf.as_str()[s..e], &self.shared.namespace) {
                    Step::Skip => {}
                    Step::Ping => {
                        self.pong_pending = true;
                        self.pings = self.pings.wrapping_add(1);
                        let at = Instant::now() + self.ping_window;
                        self.deadline.as_mut().reset(at);
                    }
                    Step::Event { args_start, ack_id } => {
                        break (s, e, s + args_start, Packet::Event(ack_id));
                    }
                    Step::Ack { args_start, id } => break (s, e, s + args_start, Packet::Ack(id)),
                    Step::Disconnect {
                        reason,
                        engine_close,
                    } => self.finish(reason, engine_close).await,
                },
                None => {
                    if let Err(reason) = self.fill().await {
                        self.finish(reason, false).await;
                    }
                }
            }
        };
        let text = self.buf.as_str();
        let args = &text[args_start..end];
        Some(match kind {
            Packet::Event(ack_id) => RawIncoming::Event(RawEvent {
                packet: &text[start..end],
                args,
                ack_id,
            }),
            Packet::Ack(id) => RawIncoming::Ack(RawAck { id, args }),
        })
    }

    /// How many server pings this receiver has seen since connect (each is answered with a
    /// pong). Useful to check heartbeats in tests.
    pub fn pings_received(&self) -> u32 {
        self.pings
    }

    /// A clone of the matching [`Sender`].
    pub fn sender(&self) -> Sender {
        Sender::new(self.shared.clone())
    }

    /// Reads the next websocket message or polling payload into `buf`.
    async fn fill(&mut self) -> Result<(), String> {
        // The previous message is consumed: let go of it before waiting. A websocket message
        // shares tungstenite's read buffer, which can only be reused in place (rather than
        // reallocated) once nothing else holds it.
        self.buf = Utf8Bytes::default();
        self.pos = 0;
        loop {
            match &mut self.source {
                Source::Ws(stream) => {
                    let msg = tokio::select! {
                        biased;
                        msg = stream.next() => msg,
                        () = &mut self.deadline => return Err(self.ping_timeout_reason()),
                    };
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            self.buf = text;
                            self.pos = 0;
                            self.split = false;
                            return Ok(());
                        }
                        Some(Ok(Message::Close(frame))) => {
                            return Err(match frame {
                                Some(f) => format!(
                                    "websocket closed by the server (code {}, {:?})",
                                    u16::from(f.code),
                                    f.reason.as_str()
                                ),
                                None => "websocket closed by the server".to_owned(),
                            });
                        }
                        // Binary messages (attachments) and control frames are skipped;
                        // tungstenite answers websocket pings itself.
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(format!("websocket error: {e}")),
                        None => return Err("websocket connection ended".to_owned()),
                    }
                }
                Source::Polling { target, inflight } => {
                    let get = inflight.get_or_insert_with(|| {
                        let target = target.clone();
                        Box::pin(async move { target.get().await })
                    });
                    let res = tokio::select! {
                        biased;
                        res = get => res,
                        () = &mut self.deadline => return Err(self.ping_timeout_reason()),
                    };
                    *inflight = None;
                    let body = res.map_err(|e| format!("polling GET failed: {e}"))?;
                    self.buf = Utf8Bytes::try_from(body)
                        .map_err(|_| "polling payload is not valid UTF-8".to_owned())?;
                    self.pos = 0;
                    self.split = true;
                    return Ok(());
                }
                Source::Done => return Err("connection closed".to_owned()),
            }
        }
    }

    fn ping_timeout_reason(&self) -> String {
        format!(
            "ping timeout: no ping from the server within {:?}",
            self.ping_window
        )
    }

    /// Ends the connection: drops the read side, shuts the write side, records the reason.
    ///
    /// Boxed: it runs once per connection, and inline its shutdown (a lock, a timeout, the
    /// close frames) would grow every receiver's future, i.e. every reading task, for good.
    fn finish(
        &mut self,
        reason: String,
        engine_close: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.finish_now(reason, engine_close))
    }

    async fn finish_now(&mut self, reason: String, engine_close: bool) {
        if self.finished.is_some() {
            return;
        }
        self.source = Source::Done;
        self.buf = Utf8Bytes::default();
        self.pos = 0;
        let by_client = self.shared.closed_by_client();
        self.shared.shutdown(engine_close && !by_client).await;
        let reason = if by_client {
            "closed by the client".to_owned()
        } else {
            reason
        };
        self.finished = Some(reason.into_boxed_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let text = "42[\"a\"]\x1e2\x1e\x1e6";
        let mut pos = 0;
        let mut got = vec![];
        while let Some((s, e)) = next_range(text, &mut pos, true) {
            got.push(&text[s..e]);
        }
        assert_eq!(got, vec!["42[\"a\"]", "2", "6"]);
        let mut pos = 0;
        assert_eq!(next_range("2\x1e3", &mut pos, false), Some((0, 3)));
        assert_eq!(next_range("2\x1e3", &mut pos, false), None);
        let mut pos = 0;
        assert_eq!(next_range("", &mut pos, true), None);
    }

    #[test]
    fn acks_and_namespaces() {
        assert!(matches!(
            classify("437[{\"ok\":true}]", "/"),
            Step::Ack {
                args_start: 3,
                id: 7
            }
        ));
        assert!(matches!(classify("43[1]", "/"), Step::Skip), "no id");
        assert!(matches!(classify("43/chat,7[]", "/"), Step::Skip));
        assert!(matches!(
            classify("43/chat,7[]", "/chat"),
            Step::Ack {
                args_start: 9,
                id: 7
            }
        ));
        assert!(matches!(
            classify("42/chat,[\"a\"]", "/chat"),
            Step::Event {
                args_start: 8,
                ack_id: None
            }
        ));
        assert!(matches!(classify("42[\"a\"]", "/chat"), Step::Skip));
        assert!(matches!(
            classify("41/chat,", "/chat"),
            Step::Disconnect { .. }
        ));
        assert!(matches!(classify("41", "/chat"), Step::Skip));
    }

    #[test]
    fn classification() {
        assert!(matches!(classify("2", "/"), Step::Ping));
        assert!(matches!(classify("6", "/"), Step::Skip));
        assert!(matches!(classify("40{\"sid\":\"x\"}", "/"), Step::Skip));
        assert!(matches!(
            classify("42[\"a\",1]", "/"),
            Step::Event {
                args_start: 2,
                ack_id: None
            }
        ));
        assert!(matches!(
            classify("427[\"a\"]", "/"),
            Step::Event {
                args_start: 3,
                ack_id: Some(7)
            }
        ));
        assert!(matches!(classify("42/admin,[\"a\"]", "/"), Step::Skip));
        assert!(matches!(classify("41", "/"), Step::Disconnect { .. }));
        assert!(matches!(classify("1", "/"), Step::Disconnect { .. }));
        assert!(matches!(
            classify("44{\"message\":\"x\"}", "/"),
            Step::Disconnect { .. }
        ));
        for bad in ["x", "4", "42", "42{}", "49", "42[\"a\""] {
            // "42[\"a\"" passes framing (array start) and fails later in JSON parsing.
            if bad == "42[\"a\"" {
                assert!(matches!(classify(bad, "/"), Step::Event { .. }));
            } else {
                assert!(
                    matches!(classify(bad, "/"), Step::Disconnect { .. }),
                    "{bad}"
                );
            }
        }
    }
}
