//! The connection: [`connect`], the cloneable [`Sender`] and the [`Receiver`].
//!
//! This exists to run the Engine.IO / Socket.IO session without a background task per
//! connection, so the load generator can hold thousands of them cheaply:
//! - the [`Receiver`] owns the read side and does all protocol work while it is polled:
//!   it answers pings, watches for missing pings, runs the single long-poll GET, and hands out
//!   events (as borrowed text on the fast path);
//! - the [`Sender`] owns the write side behind an async mutex, so clones can emit from any task,
//!   and polling POSTs are never concurrent.
//!
//! Consequence: heartbeats are only answered while someone is awaiting [`Receiver::next`] (or
//! [`Receiver::next_raw`]). Every user of this crate reads its events anyway; a member that
//! stops reading is disconnected by the server after `pingInterval + pingTimeout`, which is
//! what a real stuck browser tab would see too.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::codec::{
    self, EnginePacket, EventHead, Handshake, PacketType, RECORD_SEPARATOR, SocketPacket,
};
use crate::config::{ClientConfig, Target, Transport};
use crate::error::{ConnectError, SendError};
use crate::net::{self, HttpError, PollTarget, WsStream};

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
    /// A Socket.IO EVENT on the main namespace.
    Event(RawEvent<'a>),
    /// The connection ended (same meaning as [`Incoming::Disconnected`]).
    Disconnected(&'a str),
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

enum Writer {
    Ws(SplitSink<WsStream, Message>),
    Polling(Arc<PollTarget>),
    Closed,
}

impl Writer {
    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), SendError> {
        match self {
            Writer::Ws(sink) => sink.send(Message::Text(text)).await.map_err(ws_send_error),
            // Boxed: an HTTP request future is large, and this future is part of every
            // emit (and of the receiver's pong), websocket or not.
            Writer::Polling(t) => Box::pin(t.post(Bytes::from(text)))
                .await
                .map_err(http_send_error),
            Writer::Closed => Err(SendError::Closed),
        }
    }
}

struct Shared {
    writer: Mutex<Writer>,
    /// Set by [`Sender::close`] and when the receiver ends the connection.
    closed: AtomicBool,
    /// Set only by [`Sender::close`], to report the right disconnect reason.
    closed_by_client: AtomicBool,
    engine_sid: Box<str>,
    socket_sid: Box<str>,
}

impl Shared {
    async fn send_text(&self, text: Utf8Bytes) -> Result<(), SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        self.writer.lock().await.send_text(text).await
    }

    /// Best-effort shutdown of the write side; `engine_close` first sends Engine.IO `1`.
    async fn shutdown(&self, engine_close: bool) {
        self.closed.store(true, Ordering::Release);
        let fut = async {
            let mut w = self.writer.lock().await;
            match std::mem::replace(&mut *w, Writer::Closed) {
                Writer::Ws(mut sink) => {
                    if engine_close {
                        let _ = sink.feed(Message::Text(Utf8Bytes::from_static("1"))).await;
                    }
                    let _ = sink.close().await;
                }
                Writer::Polling(t) => {
                    if engine_close {
                        let _ = t.post(Bytes::from_static(b"1")).await;
                    }
                }
                Writer::Closed => {}
            }
        };
        // Bounded so a stalled peer cannot hang the receiver.
        let _ = tokio::time::timeout(Duration::from_secs(2), fut).await;
    }
}

/// The write side of a connection. Cheap to clone; usable from any task.
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("engine_sid", &self.shared.engine_sid)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Sender {
    /// Emits `42["event",data]` on the main namespace.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), SendError> {
        let text = codec::encode_event(event, data)?;
        self.shared.send_text(text.into()).await
    }

    /// Emits `42["event",<json>]` where `json` is JSON text the caller vouches for (not
    /// validated: invalid JSON reaches the server as is).
    pub async fn emit_raw_json(&self, event: &str, json: &str) -> Result<(), SendError> {
        let text = codec::encode_event_raw_json(event, json);
        self.shared.send_text(text.into()).await
    }

    /// Sends one Engine.IO text packet exactly as given (e.g. `42["say"` or `4garbage`).
    pub async fn send_raw_engineio(&self, text: String) -> Result<(), SendError> {
        self.shared.send_text(text.into()).await
    }

    /// Sends an Engine.IO binary message: a binary websocket frame, or `b<base64>` on polling.
    pub async fn send_raw_binary(&self, data: Vec<u8>) -> Result<(), SendError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let mut w = self.shared.writer.lock().await;
        match &mut *w {
            Writer::Ws(sink) => sink
                .send(Message::Binary(Bytes::from(data)))
                .await
                .map_err(ws_send_error),
            Writer::Polling(t) => {
                let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
                text.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(&data, &mut text);
                t.post(Bytes::from(text)).await.map_err(http_send_error)
            }
            Writer::Closed => Err(SendError::Closed),
        }
    }

    /// Clean close: Socket.IO DISCONNECT `41`, Engine.IO close `1`, then closes the transport.
    ///
    /// Idempotent. The [`Receiver`] then ends with `Disconnected` ("closed by the client").
    pub async fn close(&self) -> Result<(), SendError> {
        self.shared.closed_by_client.store(true, Ordering::Release);
        self.shared.closed.store(true, Ordering::Release);
        let mut w = self.shared.writer.lock().await;
        match std::mem::replace(&mut *w, Writer::Closed) {
            Writer::Ws(mut sink) => {
                sink.feed(Message::Text(Utf8Bytes::from_static("41")))
                    .await
                    .map_err(ws_send_error)?;
                sink.feed(Message::Text(Utf8Bytes::from_static("1")))
                    .await
                    .map_err(ws_send_error)?;
                sink.close().await.map_err(ws_send_error)
            }
            Writer::Polling(t) => t
                .post(Bytes::from_static(b"41\x1e1"))
                .await
                .map_err(http_send_error),
            Writer::Closed => Ok(()),
        }
    }

    /// True once the connection is closed (by [`Sender::close`] or a disconnect).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// The Engine.IO session id from the handshake.
    pub fn engine_sid(&self) -> &str {
        &self.shared.engine_sid
    }

    /// The Socket.IO socket id from the CONNECT ack (`40{"sid":...}`), empty if absent.
    pub fn socket_sid(&self) -> &str {
        &self.shared.socket_sid
    }
}

type GetFuture = Pin<Box<dyn Future<Output = Result<Bytes, HttpError>> + Send>>;

enum Source {
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
enum Step {
    Skip,
    Ping,
    Event {
        args_start: usize,
        ack_id: Option<u64>,
    },
    Disconnect {
        reason: String,
        engine_close: bool,
    },
}

fn classify(packet: &str) -> Step {
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
    if p.namespace != "/" {
        return Step::Skip;
    }
    match p.ty {
        PacketType::Event => Step::Event {
            args_start: packet.len() - p.data.len(),
            ack_id: p.ack_id,
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
        // Duplicate CONNECT acks, ACKs (this client sends no ack requests) and binary
        // packets (attachments are not supported) are ignored.
        PacketType::Connect | PacketType::Ack | PacketType::BinaryEvent | PacketType::BinaryAck => {
            Step::Skip
        }
    }
}

/// Next non-empty packet range in `text` from `*pos`; `split` selects polling payloads.
fn next_range(text: &str, pos: &mut usize, split: bool) -> Option<(usize, usize)> {
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

impl Receiver {
    /// Next event or the final disconnect, as owned values.
    ///
    /// A malformed event from the server ends the connection with `Disconnected`.
    pub async fn next(&mut self) -> Option<Incoming> {
        let parsed = match self.next_raw().await? {
            RawIncoming::Event(ev) => ev.to_incoming(),
            RawIncoming::Disconnected(reason) => {
                return Some(Incoming::Disconnected {
                    reason: reason.to_owned(),
                });
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

    /// Fast path: the next event as borrowed text (no JSON parsing, no allocation).
    ///
    /// Returns `Disconnected` once, then `None`.
    pub async fn next_raw(&mut self) -> Option<RawIncoming<'_>> {
        let (start, end, args_start, ack_id) = loop {
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
                Some((s, e)) => match classify(&self.buf.as_str()[s..e]) {
                    Step::Skip => {}
                    Step::Ping => {
                        self.pong_pending = true;
                        self.pings = self.pings.wrapping_add(1);
                        let at = Instant::now() + self.ping_window;
                        self.deadline.as_mut().reset(at);
                    }
                    Step::Event { args_start, ack_id } => break (s, e, s + args_start, ack_id),
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
        Some(RawIncoming::Event(RawEvent {
            packet: &text[start..end],
            args: &text[args_start..end],
            ack_id,
        }))
    }

    /// How many server pings this receiver has seen since connect (each is answered with a
    /// pong). Useful to check heartbeats in tests.
    pub fn pings_received(&self) -> u32 {
        self.pings
    }

    /// A clone of the matching [`Sender`].
    pub fn sender(&self) -> Sender {
        Sender {
            shared: self.shared.clone(),
        }
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
        let by_client = self.shared.closed_by_client.load(Ordering::Acquire);
        self.shared.shutdown(engine_close && !by_client).await;
        let reason = if by_client {
            "closed by the client".to_owned()
        } else {
            reason
        };
        self.finished = Some(reason.into_boxed_str());
    }
}

fn ws_send_error(e: tokio_tungstenite::tungstenite::Error) -> SendError {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => SendError::Closed,
        WsError::Io(e) => SendError::Io(e),
        other => SendError::Transport(Box::new(other)),
    }
}

fn http_send_error(e: HttpError) -> SendError {
    match e {
        HttpError::Status { status, body } => SendError::HttpStatus { status, body },
        HttpError::Io(e) => SendError::Io(e),
        HttpError::Transport(e) => SendError::Transport(e),
    }
}

/// Opens a Socket.IO connection on the main namespace.
///
/// Returns once the server acknowledged the CONNECT (`40{"sid":..}`): emitting right away is
/// safe. A CONNECT_ERROR gives [`ConnectError::Refused`] with the server's message. The whole
/// call is bounded by `cfg.connect_timeout`.
pub async fn connect(cfg: &ClientConfig) -> Result<(Sender, Receiver), ConnectError> {
    match tokio::time::timeout(cfg.connect_timeout, connect_inner(cfg)).await {
        Ok(res) => res,
        Err(_) => Err(ConnectError::Timeout(cfg.connect_timeout)),
    }
}

/// What the connect phase does with one packet.
enum Handshaking {
    Continue,
    Pong,
    Acked(String),
}

fn connect_step(packet: &str) -> Result<Handshaking, ConnectError> {
    const DURING: &str = "Socket.IO connect";
    let proto = |detail: String| ConnectError::Protocol {
        during: DURING,
        detail,
    };
    let msg = match EnginePacket::decode(packet).map_err(|e| proto(e.to_string()))? {
        EnginePacket::Ping(_) => return Ok(Handshaking::Pong),
        EnginePacket::Close => {
            return Err(ConnectError::Closed {
                during: DURING,
                detail: "server sent Engine.IO close (1)".to_owned(),
            });
        }
        EnginePacket::Message(m) => m,
        _ => return Ok(Handshaking::Continue),
    };
    let p = SocketPacket::decode(msg).map_err(|e| proto(e.to_string()))?;
    if p.namespace != "/" {
        return Ok(Handshaking::Continue);
    }
    match p.ty {
        PacketType::Connect => {
            #[derive(serde::Deserialize)]
            struct Ack {
                sid: String,
            }
            let sid = serde_json::from_str::<Ack>(p.data)
                .map(|a| a.sid)
                .unwrap_or_default();
            Ok(Handshaking::Acked(sid))
        }
        PacketType::ConnectError => Err(ConnectError::Refused {
            message: codec::connect_error_message(p.data),
        }),
        PacketType::Disconnect => Err(ConnectError::Closed {
            during: DURING,
            detail: "server sent DISCONNECT (41)".to_owned(),
        }),
        _ => Ok(Handshaking::Continue),
    }
}

fn parse_open(packet: &str) -> Result<Handshake, ConnectError> {
    let proto = |detail: String| ConnectError::Protocol {
        during: "Engine.IO handshake",
        detail,
    };
    match EnginePacket::decode(packet).map_err(|e| proto(e.to_string()))? {
        EnginePacket::Open(data) => Handshake::parse(data).map_err(|e| proto(e.to_string())),
        _ => Err(proto(format!("expected an open packet, got {packet:?}"))),
    }
}

async fn ws_recv_text(ws: &mut WsStream, during: &'static str) -> Result<Utf8Bytes, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(frame))) => {
                return Err(ConnectError::Closed {
                    during,
                    detail: match frame {
                        Some(f) => {
                            format!("close code {}, {:?}", u16::from(f.code), f.reason.as_str())
                        }
                        None => "close frame".to_owned(),
                    },
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(net::ws_connect_error(during, e)),
            None => {
                return Err(ConnectError::Closed {
                    during,
                    detail: "connection ended".to_owned(),
                });
            }
        }
    }
}

async fn ws_send_text(
    ws: &mut WsStream,
    text: &'static str,
    during: &'static str,
) -> Result<(), ConnectError> {
    ws.send(Message::Text(Utf8Bytes::from_static(text)))
        .await
        .map_err(|e| net::ws_connect_error(during, e))
}

async fn poll_get_text(
    target: &PollTarget,
    during: &'static str,
) -> Result<Utf8Bytes, ConnectError> {
    let body = target
        .get()
        .await
        .map_err(|e| e.into_connect_error(during))?;
    Utf8Bytes::try_from(body).map_err(|_| ConnectError::Protocol {
        during,
        detail: "polling payload is not valid UTF-8".to_owned(),
    })
}

async fn poll_post(
    target: &PollTarget,
    payload: &'static str,
    during: &'static str,
) -> Result<(), ConnectError> {
    target
        .post(Bytes::from_static(payload.as_bytes()))
        .await
        .map_err(|e| e.into_connect_error(during))
}

async fn connect_inner(cfg: &ClientConfig) -> Result<(Sender, Receiver), ConnectError> {
    let target = Target::from_config(cfg)?;
    match cfg.transport {
        Transport::WebSocket => connect_websocket(&target, cfg.bind_addr).await,
        Transport::Polling | Transport::Upgrade => {
            connect_polling(&target, cfg.bind_addr, cfg.transport == Transport::Upgrade).await
        }
    }
}

async fn connect_websocket(
    target: &Target,
    bind: Option<IpAddr>,
) -> Result<(Sender, Receiver), ConnectError> {
    let mut ws = net::open_websocket(target, bind, None).await?;
    let open = ws_recv_text(&mut ws, "Engine.IO handshake").await?;
    let hs = parse_open(&open)?;
    ws_send_text(&mut ws, "40", "Socket.IO connect").await?;
    let socket_sid = loop {
        let text = ws_recv_text(&mut ws, "Socket.IO connect").await?;
        match connect_step(&text)? {
            Handshaking::Continue => {}
            Handshaking::Pong => ws_send_text(&mut ws, "3", "Socket.IO connect").await?,
            Handshaking::Acked(sid) => break sid,
        }
    };
    let (sink, stream) = ws.split();
    Ok(assemble(
        &hs,
        socket_sid,
        Writer::Ws(sink),
        Source::Ws(stream),
        Utf8Bytes::default(),
        0,
        false,
    ))
}

async fn connect_polling(
    target: &Target,
    bind: Option<IpAddr>,
    upgrade: bool,
) -> Result<(Sender, Receiver), ConnectError> {
    let client = net::http_client(bind);
    let handshake_target = PollTarget::new(
        client.clone(),
        &target.polling_url(None),
        target.headers.clone(),
    )?;
    let body = poll_get_text(&handshake_target, "Engine.IO handshake").await?;
    drop(handshake_target);

    let mut pos = 0;
    let (s, e) = next_range(&body, &mut pos, true).ok_or_else(|| ConnectError::Protocol {
        during: "Engine.IO handshake",
        detail: "empty handshake response".to_owned(),
    })?;
    let hs = parse_open(&body[s..e])?;
    let poll = Arc::new(PollTarget::new(
        client,
        &target.polling_url(Some(&hs.sid)),
        target.headers.clone(),
    )?);

    // Anything after the open packet (a ping) is handled like the packets below.
    let mut pending = Some((body, pos));
    poll_post(&poll, "40", "Socket.IO connect").await?;
    let (socket_sid, leftover, leftover_pos) = 'acked: loop {
        let (body, mut pos) = match pending.take() {
            Some(b) => b,
            None => (poll_get_text(&poll, "Socket.IO connect").await?, 0),
        };
        while let Some((s, e)) = next_range(&body, &mut pos, true) {
            match connect_step(&body[s..e])? {
                Handshaking::Continue => {}
                Handshaking::Pong => poll_post(&poll, "3", "Socket.IO connect").await?,
                // Packets after the ack in this payload (e.g. an event emitted by the
                // server's connect handler) go to the receiver.
                Handshaking::Acked(sid) => break 'acked (sid, body, pos),
            }
        }
    };

    if !upgrade {
        return Ok(assemble(
            &hs,
            socket_sid,
            Writer::Polling(poll.clone()),
            Source::Polling {
                target: poll,
                inflight: None,
            },
            leftover,
            leftover_pos,
            true,
        ));
    }

    // Upgrade. No GET or POST of ours is in flight at this point (connect issues them one
    // at a time and awaits each), so polling is already paused: the server's queued packets
    // stay queued and are delivered over the websocket once it sees `5`, and the packets
    // left in the last GET payload are handed to the receiver ahead of them.
    if !hs.upgrades.iter().any(|u| u == "websocket") {
        return Err(ConnectError::Protocol {
            during: "websocket upgrade",
            detail: format!("server offers no websocket upgrade ({:?})", hs.upgrades),
        });
    }
    let mut ws = net::open_websocket(target, bind, Some(&hs.sid)).await?;
    ws_send_text(&mut ws, "2probe", "websocket upgrade").await?;
    let answer = ws_recv_text(&mut ws, "websocket upgrade").await?;
    if answer.as_str() != "3probe" {
        return Err(ConnectError::Protocol {
            during: "websocket upgrade",
            detail: format!("expected 3probe, got {:?}", answer.as_str()),
        });
    }
    ws_send_text(&mut ws, "5", "websocket upgrade").await?;
    drop(poll);
    let (sink, stream) = ws.split();
    Ok(assemble(
        &hs,
        socket_sid,
        Writer::Ws(sink),
        Source::Ws(stream),
        leftover,
        leftover_pos,
        true,
    ))
}

fn assemble(
    hs: &Handshake,
    socket_sid: String,
    writer: Writer,
    source: Source,
    buf: Utf8Bytes,
    pos: usize,
    split: bool,
) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        writer: Mutex::new(writer),
        closed: AtomicBool::new(false),
        closed_by_client: AtomicBool::new(false),
        engine_sid: hs.sid.clone().into_boxed_str(),
        socket_sid: socket_sid.into_boxed_str(),
    });
    let ping_window = Duration::from_millis(hs.ping_interval.saturating_add(hs.ping_timeout));
    let receiver = Receiver {
        shared: shared.clone(),
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
    };
    (Sender { shared }, receiver)
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

    /// Every short string over the grammar's characters: decoding never panics.
    #[test]
    fn no_panic_on_short_inputs() {
        const ALPHABET: [&str; 14] = [
            "0", "1", "2", "4", "5", "6", "/", ",", "-", "[", "\"", "é", "9", "\x1e",
        ];
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let _ = classify(&prefix);
            let _ = parse_open(&prefix);
            let _ = connect_step(&prefix);
            let mut pos = 0;
            while next_range(&prefix, &mut pos, true).is_some() {}
            if prefix.chars().count() < 5 {
                for c in ALPHABET {
                    stack.push(format!("{prefix}{c}"));
                }
            }
        }
    }

    #[test]
    fn classification() {
        assert!(matches!(classify("2"), Step::Ping));
        assert!(matches!(classify("6"), Step::Skip));
        assert!(matches!(classify("40{\"sid\":\"x\"}"), Step::Skip));
        assert!(matches!(
            classify("42[\"a\",1]"),
            Step::Event {
                args_start: 2,
                ack_id: None
            }
        ));
        assert!(matches!(
            classify("427[\"a\"]"),
            Step::Event {
                args_start: 3,
                ack_id: Some(7)
            }
        ));
        assert!(matches!(classify("42/admin,[\"a\"]"), Step::Skip));
        assert!(matches!(classify("41"), Step::Disconnect { .. }));
        assert!(matches!(classify("1"), Step::Disconnect { .. }));
        assert!(matches!(
            classify("44{\"message\":\"x\"}"),
            Step::Disconnect { .. }
        ));
        for bad in ["x", "4", "42", "42{}", "49", "42[\"a\""] {
            // "42[\"a\"" passes framing (array start) and fails later in JSON parsing.
            if bad == "42[\"a\"" {
                assert!(matches!(classify(bad), Step::Event { .. }));
            } else {
                assert!(matches!(classify(bad), Step::Disconnect { .. }), "{bad}");
            }
        }
    }
}
