//! What the bus and its users agree on: the message going out, the inbox for what comes back,
//! and the error. Apart from `bus/mod.rs` so that each bus implementation (`redis`) and the
//! `Bus` that chooses between them both import it, and not each other.

use std::sync::Arc;

use socketioxide::extract::SocketRef;

/// Why the bus could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the message bus (Redis) is unreachable: {0}")]
    Unavailable(String),
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

    /// A message `origin` handed to `Bus::publish` will not be published; `why` is meant
    /// for the sender.
    fn not_published(&self, origin: &SocketRef, why: &str);
}
