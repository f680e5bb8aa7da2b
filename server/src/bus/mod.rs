//! The message bus that carries room messages between workers.
//!
//! Every room message takes the same path whatever the bus: the worker that received it
//! publishes it once, and every worker delivers it to its local members only when it comes back
//! from the room's channel. So all workers, and all members, see one order per room.
//! `Local` short-circuits that loop inside one process; `Redis` uses one pub/sub channel per
//! room, subscribed only while the worker has members there.

mod redis;

use std::sync::Arc;

use socketioxide::extract::SocketRef;

pub use self::redis::RedisBus;
use crate::rooms::Delivery;

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

pub enum Bus {
    Local(Arc<Delivery>),
    Redis(RedisBus),
}

impl Bus {
    /// Starts receiving the room's messages (Redis: SUBSCRIBE its channel).
    pub async fn subscribe(&self, room: &str) -> Result<(), BusError> {
        match self {
            Bus::Local(_) => Ok(()),
            Bus::Redis(redis) => redis.subscribe(room).await,
        }
    }

    /// Stops receiving the room's messages (Redis: UNSUBSCRIBE its channel).
    pub async fn unsubscribe(&self, room: &str) -> Result<(), BusError> {
        match self {
            Bus::Local(_) => Ok(()),
            Bus::Redis(redis) => redis.unsubscribe(room).await,
        }
    }

    /// Publishes without waiting; messages given in one order are published in that order.
    /// A failure is reported to `origin` as an `unavailable` error.
    pub fn publish(&self, message: Outgoing) {
        match self {
            Bus::Local(delivery) => {
                delivery
                    .metrics()
                    .published
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                delivery.deliver(&message.room, &message.payload);
            }
            Bus::Redis(redis) => redis.publish(message),
        }
    }

    /// Whether the bus can currently carry messages, and why not.
    pub fn health(&self) -> Result<(), String> {
        match self {
            Bus::Local(_) => Ok(()),
            Bus::Redis(redis) => redis.health(),
        }
    }

    /// Waits until every message handed to `publish` so far has been sent or has failed.
    pub async fn flush(&self) {
        if let Bus::Redis(redis) = self {
            redis.flush().await;
        }
    }

    pub fn uses_redis(&self) -> bool {
        matches!(self, Bus::Redis(_))
    }
}
