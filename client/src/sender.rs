//! The write side of a connection: the cloneable [`Sender`].
//!
//! It owns the transport's write half behind an async mutex, so clones can emit from any task
//! and polling POSTs are never concurrent; the [`Receiver`](crate::Receiver) shares the same
//! state to answer pings and to shut the connection down when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::codec;
use crate::error::SendError;
use crate::net::{HttpError, PollTarget, WsStream};

pub(crate) enum Writer {
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

pub(crate) struct Shared {
    writer: Mutex<Writer>,
    /// Set by [`Sender::close`] and when the receiver ends the connection.
    closed: AtomicBool,
    /// Set only by [`Sender::close`], to report the right disconnect reason.
    closed_by_client: AtomicBool,
    pub(crate) engine_sid: Box<str>,
    socket_sid: Box<str>,
    /// The Socket.IO namespace this connection joined (`/` or `/name`).
    pub(crate) namespace: Box<str>,
    /// The next acknowledgement id to ask for.
    next_ack_id: AtomicU64,
}

impl Shared {
    /// The shared state of a connection (Engine.IO session `engine_sid`) just acknowledged by
    /// the server on `namespace`.
    pub(crate) fn new(
        writer: Writer,
        (engine_sid, namespace): (&str, &str),
        socket_sid: String,
    ) -> Shared {
        Shared {
            writer: Mutex::new(writer),
            closed: AtomicBool::new(false),
            closed_by_client: AtomicBool::new(false),
            engine_sid: engine_sid.into(),
            socket_sid: socket_sid.into_boxed_str(),
            namespace: namespace.into(),
            next_ack_id: AtomicU64::new(0),
        }
    }

    /// Set only by [`Sender::close`]: the receiver then reports "closed by the client".
    pub(crate) fn closed_by_client(&self) -> bool {
        self.closed_by_client.load(Ordering::Acquire)
    }

    pub(crate) async fn send_text(&self, text: Utf8Bytes) -> Result<(), SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        self.writer.lock().await.send_text(text).await
    }

    /// Best-effort shutdown of the write side; `engine_close` first sends Engine.IO `1`.
    pub(crate) async fn shutdown(&self, engine_close: bool) {
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
    /// The write side of the connection `shared` belongs to.
    pub(crate) fn new(shared: Arc<Shared>) -> Sender {
        Sender { shared }
    }

    /// Emits `42["event",data]` on the connection's namespace.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), SendError> {
        let text = if self.shared.namespace.as_ref() == "/" {
            codec::encode_event(event, data)?
        } else {
            let json = serde_json::to_string(data)?;
            codec::encode_emit(&self.shared.namespace, None, event, &json)
        };
        self.shared.send_text(text.into()).await
    }

    /// Emits `42["event",<json>]` where `json` is JSON text the caller vouches for (not
    /// validated: invalid JSON reaches the server as is), on the connection's namespace.
    pub async fn emit_raw_json(&self, event: &str, json: &str) -> Result<(), SendError> {
        let text = if self.shared.namespace.as_ref() == "/" {
            codec::encode_event_raw_json(event, json)
        } else {
            codec::encode_emit(&self.shared.namespace, None, event, json)
        };
        self.shared.send_text(text.into()).await
    }

    /// Reserves the next acknowledgement id of this connection (ids count from 0), for
    /// [`Sender::emit_with_ack`]: reserved first, so the caller can note what it waits for
    /// before the answer can possibly arrive.
    pub fn next_ack_id(&self) -> u64 {
        self.shared.next_ack_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Emits `event` with the arguments `args_json` (JSON text of the arguments after the
    /// name, comma-separated; empty for none; not validated) on the connection's namespace,
    /// asking the server for an acknowledgement with `ack_id` (from [`Sender::next_ack_id`]);
    /// the server's `43<id>[...]` comes back as [`RawIncoming::Ack`](crate::RawIncoming::Ack).
    pub async fn emit_with_ack(
        &self,
        ack_id: u64,
        event: &str,
        args_json: &str,
    ) -> Result<(), SendError> {
        let text = codec::encode_emit(&self.shared.namespace, Some(ack_id), event, args_json);
        self.shared.send_text(text.into()).await
    }

    /// Emits `event` with the arguments `args_json` (as [`Sender::emit_with_ack`], without
    /// asking for an acknowledgement).
    pub async fn emit_args(&self, event: &str, args_json: &str) -> Result<(), SendError> {
        let text = codec::encode_emit(&self.shared.namespace, None, event, args_json);
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

    /// Clean close: Socket.IO DISCONNECT (`41`, or `41/chat,`), Engine.IO close `1`, then
    /// closes the transport.
    ///
    /// Idempotent. The [`Receiver`] then ends with `Disconnected` ("closed by the client").
    pub async fn close(&self) -> Result<(), SendError> {
        self.shared.closed_by_client.store(true, Ordering::Release);
        self.shared.closed.store(true, Ordering::Release);
        let disconnect = codec::encode_disconnect(&self.shared.namespace);
        let mut w = self.shared.writer.lock().await;
        match std::mem::replace(&mut *w, Writer::Closed) {
            Writer::Ws(mut sink) => {
                sink.feed(Message::Text(disconnect.into()))
                    .await
                    .map_err(ws_send_error)?;
                sink.feed(Message::Text(Utf8Bytes::from_static("1")))
                    .await
                    .map_err(ws_send_error)?;
                sink.close().await.map_err(ws_send_error)
            }
            Writer::Polling(t) => t
                .post(Bytes::from(codec::join_payload([disconnect.as_str(), "1"])))
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

    /// The namespace this connection joined (`/` or `/name`).
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
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
