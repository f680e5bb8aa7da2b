//! The message bus that carries room messages between workers.
//!
//! Every room message takes the same path whatever the bus: the worker that received it
//! publishes it once, and every worker delivers it to its local members only when it comes back
//! from the room's channel. So all workers, and all members, see one order per room.
//! `Local` short-circuits that loop inside one process; `Redis` uses one pub/sub channel per
//! room, subscribed only while the worker has members there; `Cluster` does the same with one
//! sharded channel per room on a Redis Cluster (`cluster`).
//!
//! Calls go one way: the rooms call the bus, and the bus hands what comes back (and what it
//! could not publish) inward through [`Inbox`] (in `contract`), which the rooms implement. The bus knows
//! nothing of rooms or of the chat protocol.

mod cluster;
mod contract;
mod health;
mod link;
mod publish;
mod redis;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

pub use self::cluster::{ClusterBus, ClusterSettings};
pub use self::contract::{BusError, Inbox, Outgoing};
pub use self::redis::{RedisBus, RedisSettings};
use crate::metrics::Metrics;

pub enum Bus {
    /// One process: a published message goes straight back in.
    Local {
        inbox: Arc<dyn Inbox>,
        metrics: Arc<Metrics>,
    },
    Redis(RedisBus),
    /// A Redis Cluster: sharded pub/sub, one channel per room on its slot's master.
    Cluster(ClusterBus),
}

impl Bus {
    /// Starts receiving the room's messages (Redis: SUBSCRIBE its channel; a cluster:
    /// SSUBSCRIBE it on its slot's master).
    pub async fn subscribe(&self, room: &str) -> Result<(), BusError> {
        match self {
            Bus::Local { .. } => Ok(()),
            Bus::Redis(redis) => redis.subscribe(room).await,
            Bus::Cluster(cluster) => cluster.subscribe(room).await,
        }
    }

    /// Stops receiving the room's messages (Redis: UNSUBSCRIBE its channel).
    pub async fn unsubscribe(&self, room: &str) -> Result<(), BusError> {
        match self {
            Bus::Local { .. } => Ok(()),
            Bus::Redis(redis) => redis.unsubscribe(room).await,
            Bus::Cluster(cluster) => cluster.unsubscribe(room).await,
        }
    }

    /// Publishes without waiting; messages given in one order are published in that order.
    /// A failure (refused as `busy`, not sent, or outcome unknown) is handed to the inbox's
    /// [`Inbox::not_published`] with the message's origin.
    pub fn publish(&self, message: Outgoing) {
        match self {
            Bus::Local { inbox, metrics } => {
                metrics.published.fetch_add(1, Relaxed);
                inbox.deliver(&message.room, &message.payload);
            }
            Bus::Redis(redis) => redis.publish(message),
            Bus::Cluster(cluster) => cluster.publish(message),
        }
    }

    /// Whether the bus can currently carry messages, and why not.
    pub fn health(&self) -> Result<(), String> {
        match self {
            Bus::Local { .. } => Ok(()),
            Bus::Redis(redis) => redis.health(),
            Bus::Cluster(cluster) => cluster.health(),
        }
    }

    /// Waits until every message handed to `publish` so far has been sent or has failed.
    pub async fn flush(&self) {
        match self {
            Bus::Local { .. } => {}
            Bus::Redis(redis) => redis.flush().await,
            Bus::Cluster(cluster) => cluster.flush().await,
        }
    }

    pub fn uses_redis(&self) -> bool {
        matches!(self, Bus::Redis(_) | Bus::Cluster(_))
    }
}
