//! The bus on a Redis Cluster: one *sharded* channel per room (`SSUBSCRIBE` / `SPUBLISH`, Redis
//! 7), so rooms spread over the cluster's slots and each message goes only to the master that
//! owns its room's slot (and that master's replicas), instead of to every node as classic pub/sub
//! does in a cluster.
//!
//! Not through the redis crate's cluster connection (docs/notes.md has what was checked in its
//! code): it re-subscribes all of a node's sharded channels in one `SSUBSCRIBE`, which Redis
//! refuses (`CROSSSLOT`) as soon as they span slots, and a channel whose slot moved is dropped
//! from its tracking, so nothing subscribes it again on the new owner. Here:
//!
//! - `topology`: the slot map (`CLUSTER SLOTS`, corrected by `MOVED`), and `slot`: CRC16 slots;
//! - `subscriptions` over `shard`: one subscriber connection per master (our own RESP3 reader,
//!   `resp3`), one SSUBSCRIBE per channel, and a follower that moves lost channels to their
//!   slot's new owner;
//! - `publish`: the bounded queue of the single Redis bus (`bus::publish`) over a transport
//!   that splits each batch by master and follows `MOVED`.
//!
//! To the rooms it is the same bus: the same calls, errors, counters and health.

mod publish;
mod resp3;
mod shard;
mod slot;
mod subscriptions;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use self::publish::ClusterTransport;
use self::subscriptions::Subscriptions;
use self::topology::{NodeAddr, Topology, node_addr};
use super::contract::{BusError, Inbox, Outgoing};
use super::health::RedisHealth;
use super::publish::Publisher;
use crate::metrics::{Metrics, RedisOp};

/// How often the masters are pinged to notice outages.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Where the cluster bus connects and how long it waits.
pub struct ClusterSettings<'a> {
    /// Some of the cluster's nodes (`redis://host:port`): the bus learns the rest from them.
    pub nodes: &'a [String],
    pub prefix: &'a str,
    pub timeout: Duration,
    /// Most messages waiting for Redis before new ones are refused (`--publish-queue`).
    pub publish_queue: usize,
}

#[derive(Clone)]
pub struct ClusterBus {
    subscriptions: Arc<Subscriptions>,
    publisher: Publisher<ClusterTransport>,
    health: Arc<RedisHealth>,
}

impl ClusterBus {
    /// Prepares the bus; it connects lazily, so a worker starts (and reports itself unhealthy)
    /// even while the cluster is down.
    pub fn start(
        settings: ClusterSettings<'_>,
        inbox: Arc<dyn Inbox>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let seeds = settings
            .nodes
            .iter()
            .map(|url| seed_node(url))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(
            !seeds.is_empty(),
            "--redis-cluster needs at least one node URL"
        );
        let prefix: Arc<str> = settings.prefix.into();
        let topology = Arc::new(Topology::new(seeds, settings.timeout));
        let subscriptions = Arc::new(Subscriptions::new(
            prefix.clone(),
            topology.clone(),
            settings.timeout,
            inbox.clone(),
            metrics.clone(),
        ));
        let health = Arc::new(RedisHealth::new(metrics.clone()));
        let transport = ClusterTransport::new(topology, prefix, settings.timeout, metrics.clone());
        let publisher = Publisher::start(
            transport,
            settings.publish_queue,
            inbox,
            metrics.clone(),
            health.clone(),
        );
        let bus = ClusterBus {
            subscriptions,
            publisher,
            health,
        };
        tokio::spawn({
            let subscriptions = bus.subscriptions.clone();
            async move { subscriptions.follow().await }
        });
        tokio::spawn(bus.clone().watch_health());
        Ok(bus)
    }

    pub async fn subscribe(&self, room: &str) -> Result<(), BusError> {
        let result = self.subscriptions.subscribe(room).await;
        self.record(RedisOp::Subscribe, result)
    }

    pub async fn unsubscribe(&self, room: &str) -> Result<(), BusError> {
        let result = self.subscriptions.unsubscribe(room).await;
        self.record(RedisOp::Unsubscribe, result)
    }

    /// Queues the message (or refuses it at once with `busy`); see `bus::publish`.
    pub fn publish(&self, message: Outgoing) {
        self.publisher.publish(message);
    }

    pub async fn flush(&self) {
        self.publisher.flush().await;
    }

    pub fn health(&self) -> Result<(), String> {
        self.health.check()
    }

    fn record(&self, op: RedisOp, result: Result<(), String>) -> Result<(), BusError> {
        result.map_err(|e| {
            self.health.failed(op, &e);
            BusError::Unavailable(e)
        })
    }

    /// Pings every master: up only while all of them answer (a master that is failing over
    /// leaves its rooms without a bus until its replica takes over).
    async fn watch_health(self) {
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.health.pinged(self.publisher.ping().await);
        }
    }
}

/// `redis://host:port` → the node's address. Only plain addresses: the subscriber connections
/// speak RESP3 themselves and do not log in or use TLS, so URLs asking for that are refused
/// rather than half honoured.
fn seed_node(url: &str) -> anyhow::Result<NodeAddr> {
    let refuse =
        |why: &str| anyhow::anyhow!("--redis-cluster: {url:?} {why}; expected redis://host:port");
    let rest = url
        .trim()
        .strip_prefix("redis://")
        .ok_or_else(|| refuse("is not a redis:// URL (TLS is not supported on the cluster bus)"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['@', '/', '?']) {
        return Err(refuse(
            "has a user, password, database or options, which the cluster bus does not support",
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| refuse("has no valid port"))?,
        ),
        None => (rest, 6379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(refuse("has no host"));
    }
    Ok(node_addr(host, port))
}

#[cfg(test)]
mod tests {
    use super::seed_node;

    #[test]
    fn seeds_are_plain_node_urls() {
        assert_eq!(
            &*seed_node("redis://127.0.0.1:7001").expect("valid"),
            "127.0.0.1:7001"
        );
        assert_eq!(&*seed_node("redis://h/").expect("valid"), "h:6379");
        assert_eq!(
            &*seed_node("redis://[::1]:7001").expect("valid"),
            "::1:7001"
        );
        for bad in [
            "rediss://h:1",
            "h:1",
            "redis://:pw@h:1",
            "redis://h:1/2",
            "redis://h:x",
            "redis://:1",
        ] {
            assert!(seed_node(bad).is_err(), "{bad}");
        }
    }
}
