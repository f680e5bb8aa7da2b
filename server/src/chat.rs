//! The chat protocol on one socket: handshake check, `join`, `say`, errors, and the goodbye.
//!
//! socketioxide spawns one task per incoming event, so events of one socket can run out of
//! order in async handlers. Everything that must keep a socket's order (validation, the rate
//! limit, and handing messages to the bus) therefore runs in [`Inbound`], an extractor that
//! socketioxide calls synchronously, in arrival order, before it spawns the (empty) handler.
//! Only the join's subscription wait is async, and `say` is refused until the join finished.
//!
//! socketioxide sends the CONNECT ack a moment before it marks the socket connected, and a
//! socket that is not yet marked connected cannot be emitted to. A client that emits right
//! after the ack can land in that gap, so events that arrive before the connect handler ran
//! wait in the member's [`Gate`] and are handled, in order, by that handler.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::SocketRef;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide_core::Value;

use crate::admission::{is_full, refusal};
use crate::app::App;
use crate::bus::Outgoing;
use crate::metrics::{ClosedFor, DisconnectLabel, RefusedLabel};
use crate::reply::reply_error;
use crate::rooms::Room;
use roomstorm_protocol::{
    EVENT_JOIN, EVENT_SAY, ErrorCode, ROOM_QUERY_KEY, RoomEvent, normalize_username,
    validate_room_id, validate_text,
};

/// Per-socket chat state, kept in the socket's extensions.
pub struct Member {
    app: Arc<App>,
    room: Arc<str>,
    state: Mutex<State>,
    limiter: Mutex<RateLimiter>,
    gate: Gate,
}

/// Holds events that arrived before the socket could be answered (see the module docs).
struct Gate {
    /// Fast path: set once the early events were handled; never cleared.
    open: AtomicBool,
    early: Mutex<Vec<Value>>,
}

/// Early events held per socket at most; a client that sends more before its own CONNECT ack
/// reached it is flooding, and the excess is counted as rate-limited.
const EARLY_EVENTS_MAX: usize = 16;

enum State {
    Connected,
    Joining,
    Joined { username: Arc<str>, room: Arc<Room> },
    Gone,
}

/// The connect middleware: runs before socketioxide acknowledges the connection, so a client
/// that emits `join` right after its CONNECT ack always finds the handlers in place.
pub async fn on_connect(socket: SocketRef, app: Arc<App>) -> Result<(), ConnectRefused> {
    let room = match room_from_query(socket.req_parts().uri.query()) {
        Ok(room) => room,
        Err(reason) => {
            app.metrics.refuse_connect(RefusedLabel::BadRoomid);
            return Err(ConnectRefused(reason));
        }
    };
    // Takes the slot before checking it: concurrent handshakes that all passed the HTTP gate
    // (`admission`) cannot together exceed the cap.
    let before = app.metrics.sockets.fetch_add(1, Relaxed);
    if is_full(before, app.config.max_connections) {
        app.metrics.sockets.fetch_sub(1, Relaxed);
        app.metrics.refuse_connect(RefusedLabel::MaxConnections);
        return Err(ConnectRefused(refusal(app.config.max_connections)));
    }
    let member = Arc::new(Member {
        limiter: Mutex::new(RateLimiter::new(&app)),
        app: app.clone(),
        room: room.into(),
        state: Mutex::new(State::Connected),
        gate: Gate {
            open: AtomicBool::new(false),
            early: Mutex::new(Vec::new()),
        },
    });
    socket.extensions.insert(member.clone());
    socket.on_fallback(async |_: Inbound| {});
    if !app.config.join_deadline.is_zero() {
        tokio::spawn(close_unless_joined(
            socket.clone(),
            member.clone(),
            app.config.join_deadline,
        ));
    }
    socket.on_disconnect(async move |socket: SocketRef, reason: DisconnectReason| {
        member.on_disconnect(socket, reason).await;
    });
    Ok(())
}

/// The join deadline: a socket that has not sent a valid `join` by then is told so and
/// closed. One timer per connection (not per message); a socket that left meanwhile is in
/// state `Gone` and is left alone.
async fn close_unless_joined(socket: SocketRef, member: Arc<Member>, deadline: Duration) {
    tokio::time::sleep(deadline).await;
    // Held until the disconnect is queued, so a `join` cannot start in between.
    let state = member.state();
    if !matches!(*state, State::Connected) {
        return;
    }
    let app = &member.app;
    socket
        .extensions
        .insert(ClosedFor(DisconnectLabel::JoinDeadline));
    let message = format!(
        "no join within {}: closing",
        roomstorm_protocol::duration::format_duration(deadline)
    );
    reply_error(&socket, &app.metrics, ErrorCode::NotJoined, &message);
    tracing::debug!(sid = %socket.id, "closing a socket that never joined");
    // A queue too full for the disconnect packet is the slow-consumer watch's business.
    let _ = socket.disconnect();
    drop(state);
}

/// The connect handler: socketioxide calls it once the socket is marked connected, so from
/// here on replies reach the client. Handles the events that arrived before, in order.
pub async fn on_connected(socket: SocketRef) {
    if let Some(member) = socket.extensions.get::<Arc<Member>>() {
        member.open_gate(&socket);
    }
}

/// The Socket.IO connect error sent to a refused client; its text is the reason.
#[derive(Debug)]
pub struct ConnectRefused(String);

impl std::fmt::Display for ConnectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn room_from_query(query: Option<&str>) -> Result<String, String> {
    let room = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == ROOM_QUERY_KEY)
        .map(|(_, value)| value.into_owned());
    let Some(room) = room else {
        return Err(
            "missing roomid: connect with ?roomid=ID (1-64 chars of A-Z a-z 0-9 _ . : -)".into(),
        );
    };
    validate_room_id(&room)?;
    Ok(room)
}

/// A poisoned lock still guards consistent data here: no code panics while holding one.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Extractor that handles the event synchronously, in the socket's arrival order.
pub struct Inbound;

impl FromMessageParts<LocalAdapter> for Inbound {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<LocalAdapter>>,
        value: &mut Value,
        _ack: &Option<i64>,
    ) -> Result<Self, Infallible> {
        if let Some(member) = socket.extensions.get::<Arc<Member>>() {
            member.on_arrival(&SocketRef::from(socket.clone()), value);
        }
        Ok(Inbound)
    }
}

#[derive(Deserialize)]
struct JoinRequest<'a> {
    #[serde(borrow)]
    username: Cow<'a, str>,
}

#[derive(Deserialize)]
struct SayRequest<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// Why an event was refused: the code and the message for the client.
type Rejection = (ErrorCode, String);

impl Member {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Handles an event now, or holds it until the connect handler opens the gate.
    fn on_arrival(self: &Arc<Self>, socket: &SocketRef, value: &Value) {
        if !self.gate.open.load(Acquire) {
            let mut early = lock(&self.gate.early);
            // Re-checked under the lock: the gate opens while holding it.
            if !self.gate.open.load(Acquire) {
                if early.len() < EARLY_EVENTS_MAX {
                    early.push(value.clone());
                } else {
                    self.app.metrics.reject(ErrorCode::RateLimited);
                }
                return;
            }
        }
        self.on_event(socket, value);
    }

    /// Handles the held events, then lets later ones through. Later events wait on the lock
    /// meanwhile, so the socket's order is kept.
    fn open_gate(self: &Arc<Self>, socket: &SocketRef) {
        let mut early = lock(&self.gate.early);
        for value in early.drain(..) {
            self.on_event(socket, &value);
        }
        self.gate.open.store(true, Release);
    }

    fn on_event(self: &Arc<Self>, socket: &SocketRef, value: &Value) {
        if !self.admit(socket) {
            return;
        }
        if let Err((code, message)) = self.dispatch(socket, value) {
            reply_error(socket, &self.app.metrics, code, &message);
        }
    }

    /// The per-socket rate limit; a socket that keeps flooding is disconnected.
    fn admit(&self, socket: &SocketRef) -> bool {
        let verdict = lock(&self.limiter).check(Instant::now());
        match verdict {
            RateDecision::Allow => true,
            RateDecision::Deny => {
                let message = "too many messages: slow down";
                reply_error(socket, &self.app.metrics, ErrorCode::RateLimited, message);
                false
            }
            RateDecision::Drop => {
                self.app.metrics.reject(ErrorCode::RateLimited);
                false
            }
            RateDecision::Disconnect => {
                self.app.metrics.reject(ErrorCode::RateLimited);
                self.app.metrics.flood_disconnects.fetch_add(1, Relaxed);
                tracing::warn!(sid = %socket.id, "disconnecting a flooding socket");
                let _ = socket.clone().disconnect();
                false
            }
        }
    }

    fn dispatch(self: &Arc<Self>, socket: &SocketRef, value: &Value) -> Result<(), Rejection> {
        let (event, data) = parse_event(value)?;
        match &*event {
            EVENT_JOIN => {
                self.app.metrics.received_join.fetch_add(1, Relaxed);
                self.join(socket, data)
            }
            EVENT_SAY => {
                self.app.metrics.received_say.fetch_add(1, Relaxed);
                self.say(socket, data)
            }
            other => {
                self.app.metrics.received_other.fetch_add(1, Relaxed);
                let shown: String = other.chars().take(64).collect();
                Err((
                    ErrorCode::UnknownEvent,
                    format!("unknown event {shown:?}: this server handles \"join\" and \"say\""),
                ))
            }
        }
    }

    fn join(
        self: &Arc<Self>,
        socket: &SocketRef,
        data: Option<&RawValue>,
    ) -> Result<(), Rejection> {
        let request: JoinRequest = parse_data(data, "join", r#"{"username": string}"#)?;
        let username =
            normalize_username(&request.username).map_err(|e| (ErrorCode::InvalidUsername, e))?;
        {
            let mut state = self.state();
            if !matches!(*state, State::Connected) {
                return Err((
                    ErrorCode::AlreadyJoined,
                    "this socket has already joined".into(),
                ));
            }
            *state = State::Joining;
        }
        let member = self.clone();
        let username: Arc<str> = username.into();
        let socket = socket.clone();
        tokio::spawn(async move { member.finish_join(socket, username).await });
        Ok(())
    }

    /// Subscribes (if this is the room's first local member), then joins and announces.
    async fn finish_join(self: Arc<Self>, socket: SocketRef, username: Arc<str>) {
        let app = &self.app;
        let room = match app.rooms.hold(&app.bus, &self.room).await {
            Ok(room) => room,
            Err(e) => {
                let mut state = self.state();
                if matches!(*state, State::Joining) {
                    *state = State::Connected;
                }
                drop(state);
                reply_error(
                    &socket,
                    &app.metrics,
                    ErrorCode::Unavailable,
                    &e.to_string(),
                );
                return;
            }
        };
        if !self.announce_join(&socket, username, &room) {
            // Disconnected while subscribing: nothing to announce.
            app.rooms.release(&app.bus, room).await;
        }
    }

    /// Becomes a member and announces it, unless the socket left meanwhile.
    fn announce_join(&self, socket: &SocketRef, username: Arc<str>, room: &Arc<Room>) -> bool {
        let mut state = self.state();
        if !matches!(*state, State::Joining) {
            return false;
        }
        room.add_member(socket, &self.app.metrics);
        // Published under the state lock: no `say` of this socket can be queued before it.
        self.app.bus.publish(Outgoing {
            room: self.room.clone(),
            payload: RoomEvent::join(&username).to_json(),
            origin: Some(socket.clone()),
        });
        *state = State::Joined {
            username,
            room: room.clone(),
        };
        true
    }

    fn say(&self, socket: &SocketRef, data: Option<&RawValue>) -> Result<(), Rejection> {
        let request: SayRequest = parse_data(data, "say", r#"{"text": string}"#)?;
        validate_text(&request.text, self.app.config.max_text_bytes)
            .map_err(|e| (ErrorCode::InvalidText, e))?;
        let state = self.state();
        let State::Joined { username, .. } = &*state else {
            let message = match *state {
                State::Joining => "join is still in progress: wait for your join message",
                _ => "join the room before saying anything",
            };
            return Err((ErrorCode::NotJoined, message.into()));
        };
        self.app.bus.publish(Outgoing {
            room: self.room.clone(),
            payload: RoomEvent::say(username, &request.text).to_json(),
            origin: Some(socket.clone()),
        });
        Ok(())
    }

    async fn on_disconnect(&self, socket: SocketRef, reason: DisconnectReason) {
        let app = &self.app;
        app.metrics.sockets.fetch_sub(1, Relaxed);
        // Closed on purpose (slow consumer, join deadline): counted under that reason, not
        // the transport's.
        match socket.extensions.get::<ClosedFor>() {
            Some(ClosedFor(label)) => app.metrics.disconnect_as(label),
            None => app.metrics.disconnect(reason),
        }
        let previous = std::mem::replace(&mut *self.state(), State::Gone);
        if let State::Joined { username, room } = previous {
            room.remove_member(&socket, &app.metrics);
            app.bus.publish(Outgoing {
                room: self.room.clone(),
                payload: RoomEvent::quit(&username).to_json(),
                origin: None,
            });
            app.rooms.release(&app.bus, room).await;
        }
        socket.extensions.remove::<Arc<Member>>();
    }
}

/// Splits a Socket.IO event into its name and first argument, refusing binary attachments.
fn parse_event(value: &Value) -> Result<(Cow<'_, str>, Option<&RawValue>), Rejection> {
    let text = match value {
        Value::Str(_, Some(bins)) if !bins.is_empty() => return Err(binary_refused()),
        Value::Bytes(_) => return Err(binary_refused()),
        Value::Str(text, _) => text.as_str(),
    };
    let parts: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        (
            ErrorCode::BadPayload,
            format!("event is not a JSON array: {e}"),
        )
    })?;
    let name = parts
        .first()
        .and_then(|raw| serde_json::from_str::<Cow<str>>(raw.get()).ok())
        .ok_or((
            ErrorCode::BadPayload,
            "event name is not a string".to_string(),
        ))?;
    Ok((name, parts.get(1).copied()))
}

fn binary_refused() -> Rejection {
    (
        ErrorCode::BinaryUnsupported,
        "binary attachments are not supported: send JSON".into(),
    )
}

fn parse_data<'a, T: Deserialize<'a>>(
    data: Option<&'a RawValue>,
    event: &str,
    shape: &str,
) -> Result<T, Rejection> {
    let bad = |detail: String| {
        (
            ErrorCode::BadPayload,
            format!("{event} expects {shape}: {detail}"),
        )
    };
    let raw = data.ok_or_else(|| bad("got no data".into()))?.get();
    // serde would also accept a struct written as an array; the protocol has objects only.
    if !raw.starts_with('{') {
        let shown: String = raw.chars().take(40).collect();
        return Err(bad(format!("got {shown}")));
    }
    serde_json::from_str(raw).map_err(|e| bad(e.to_string()))
}

/// What the rate limiter decides for one arriving event (named apart from a run's pass/fail
/// `Verdict` in results.json).
enum RateDecision {
    Allow,
    Deny,
    Disconnect,
    /// Already being disconnected: drop quietly (counted, but no more replies).
    Drop,
}

/// Token bucket per socket, with a count of refusals since the last accepted message.
struct RateLimiter {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    strikes: u32,
    max_strikes: u32,
    disconnecting: bool,
}

impl RateLimiter {
    fn new(app: &App) -> Self {
        let c = &app.config;
        RateLimiter {
            tokens: c.rate_burst,
            last: Instant::now(),
            rate: c.rate_per_sec,
            burst: c.rate_burst,
            strikes: 0,
            max_strikes: c.flood_strikes,
            disconnecting: false,
        }
    }

    fn check(&mut self, now: Instant) -> RateDecision {
        if self.disconnecting {
            return RateDecision::Drop;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            return RateDecision::Allow;
        }
        self.strikes += 1;
        if self.strikes > self.max_strikes {
            self.disconnecting = true;
            RateDecision::Disconnect
        } else {
            RateDecision::Deny
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(rate: f64, burst: f64, max_strikes: u32) -> RateLimiter {
        RateLimiter {
            tokens: burst,
            last: Instant::now(),
            rate,
            burst,
            strikes: 0,
            max_strikes,
            disconnecting: false,
        }
    }

    #[test]
    fn burst_then_deny_then_disconnect() {
        let mut l = limiter(1.0, 3.0, 2);
        let t = l.last;
        assert!((0..3).all(|_| matches!(l.check(t), RateDecision::Allow)));
        assert!(matches!(l.check(t), RateDecision::Deny));
        assert!(matches!(l.check(t), RateDecision::Deny));
        assert!(matches!(l.check(t), RateDecision::Disconnect));
        assert!(matches!(
            l.check(t + Duration::from_secs(9)),
            RateDecision::Drop
        ));
    }

    #[test]
    fn tokens_refill_at_the_rate() {
        let mut l = limiter(10.0, 1.0, 5);
        let t = l.last;
        assert!(matches!(l.check(t), RateDecision::Allow));
        assert!(matches!(l.check(t), RateDecision::Deny));
        assert!(matches!(
            l.check(t + Duration::from_millis(100)),
            RateDecision::Allow
        ));
    }

    #[test]
    fn room_query() {
        assert_eq!(room_from_query(Some("roomid=r1&EIO=4")), Ok("r1".into()));
        assert!(
            room_from_query(None)
                .unwrap_err()
                .contains("missing roomid")
        );
        assert!(
            room_from_query(Some("roomid=a%20b"))
                .unwrap_err()
                .contains("' '")
        );
    }

    #[test]
    fn events_are_split_and_checked() {
        let v = Value::Str(r#"["say",{"text":"hi"},1]"#.into(), None);
        let (name, data) = parse_event(&v).unwrap();
        assert_eq!(name, "say");
        assert_eq!(data.unwrap().get(), r#"{"text":"hi"}"#);
        let v = Value::Str(r#"[5]"#.into(), None);
        assert_eq!(parse_event(&v).unwrap_err().0, ErrorCode::BadPayload);
        let v = Value::Bytes(bytes::Bytes::from_static(b"x"));
        assert_eq!(parse_event(&v).unwrap_err().0, ErrorCode::BinaryUnsupported);
        let bad: Result<SayRequest, _> = parse_data(None, "say", "{}");
        assert_eq!(bad.err().unwrap().0, ErrorCode::BadPayload);
    }
}
