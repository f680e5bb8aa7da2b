//! What the bus and its users agree on: the message going out, the inbox for what comes back,
//! and the error. Apart from `bus/mod.rs` so that each bus implementation (`redis`, `cluster`,
//! `publish`) and the `Bus` that chooses between them all import it, and not each other.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use socketioxide::extract::SocketRef;

use crate::metrics::Metrics;

/// Why the bus could not do what was asked. For a publish, the variant is what the sender is
/// told happened to its message: not sent (`Unavailable`, `Busy`) or not known
/// (`OutcomeUnknown`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// Redis could not be reached: nothing was handed to it.
    #[error("the message bus (Redis) is unreachable: {0}")]
    Unavailable(String),
    /// The publish queue is full (Redis is slow or stalled): the message was refused at once.
    #[error(
        "the message bus is saturated ({0} messages waiting for Redis): nothing was sent, retry later"
    )]
    Busy(usize),
    /// The message was handed to Redis's connection but Redis did not confirm it (no answer
    /// in time, or the connection broke): Redis may still have published it.
    #[error(
        "Redis did not confirm the message ({0}): it may or may not have been delivered; \
         do not blindly retry (a retry may duplicate it)"
    )]
    OutcomeUnknown(String),
}

/// A room message on its way out, with the socket to tell if publishing it fails.
pub struct Outgoing {
    pub room: Arc<str>,
    pub payload: String,
    pub origin: Option<SocketRef>,
}

/// Where the bus hands what it receives; the worker's rooms implement it.
pub trait Inbox: Send + Sync + 'static {
    /// A room message came back from the room's channel (`payload` is the JSON of
    /// `{event, data}`): deliver it to the local members.
    fn deliver(&self, room: &str, payload: &str);

    /// A message `origin` handed to `Bus::publish` was not published, or may not have been:
    /// `error` says which, and is meant for the sender.
    fn not_published(&self, origin: &SocketRef, error: &BusError);
}

/// Hands a message read off a room's channel to the inbox: the room is the channel's name
/// without the prefix. A channel without the prefix, or a name or payload that is not UTF-8, is
/// counted in `chat_bus_malformed_total` and dropped.
pub fn hand_in(inbox: &dyn Inbox, metrics: &Metrics, prefix: &str, channel: &[u8], payload: &[u8]) {
    let room = channel.strip_prefix(prefix.as_bytes());
    match (room.map(std::str::from_utf8), std::str::from_utf8(payload)) {
        (Some(Ok(room)), Ok(payload)) => inbox.deliver(room, payload),
        _ => {
            metrics.bus_malformed.fetch_add(1, Relaxed);
        }
    }
}
