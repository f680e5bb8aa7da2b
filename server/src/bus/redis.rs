//! Redis pub/sub bus: one channel per room, a separate connection for PUBLISH.
//!
//! Subscriptions live on a RESP3 `ConnectionManager` whose push messages are handed straight to
//! the [`Inbox`] (no intermediate queue), and which re-subscribes by itself when Redis comes
//! back after a restart. Publishes go through the bounded, ordered queue of `publish` over one
//! `link`, and leave in pipelined batches, so a burst costs one round trip, and one sender's
//! messages keep their order.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::aio::{AsyncPushSender, ConnectionManager, ConnectionManagerConfig, SendError};
use redis::{PushInfo, PushKind};

use super::contract::{BusError, Inbox, Outgoing, hand_in};
use super::health::RedisHealth;
use super::link::{Link, connection_info, no_answer};
use super::publish::{Publisher, Transport};
use crate::metrics::{Metrics, RedisOp};

/// How often Redis is pinged to notice outages (and to make the connections reconnect).
pub const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// Where the bus connects and how long it waits: the worker's Redis settings.
pub struct RedisSettings<'a> {
    pub url: &'a str,
    pub prefix: &'a str,
    pub timeout: Duration,
    /// Most messages waiting for Redis before new ones are refused (`--publish-queue`).
    pub publish_queue: usize,
}

#[derive(Clone)]
pub struct RedisBus {
    prefix: Arc<str>,
    subscriber: ConnectionManager,
    publisher: Publisher<OneRedis>,
    health: Arc<RedisHealth>,
    timeout: Duration,
}

impl RedisBus {
    /// Prepares both connections; they connect lazily, so a worker starts (and reports itself
    /// unhealthy) even while Redis is down.
    pub fn start(
        settings: RedisSettings<'_>,
        inbox: Arc<dyn Inbox>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let RedisSettings {
            url,
            prefix,
            timeout,
            publish_queue,
        } = settings;
        let client = redis::Client::open(connection_info(url)?)
            .map_err(|e| anyhow::anyhow!("invalid Redis URL {url:?}: {e}"))?;
        let push = PushToInbox {
            prefix: prefix.into(),
            inbox: inbox.clone(),
            metrics: metrics.clone(),
        };
        let subscriber = ConnectionManager::new_lazy_with_config(
            client.clone(),
            manager_config(timeout)
                .set_push_sender(push)
                .set_automatic_resubscription(),
        )?;
        let health = Arc::new(RedisHealth::new(metrics.clone()));
        let transport = OneRedis {
            link: Link::new(client, timeout),
            prefix: prefix.into(),
            timeout,
        };
        let publisher = Publisher::start(
            transport,
            publish_queue,
            inbox,
            metrics.clone(),
            health.clone(),
        );
        let bus = RedisBus {
            prefix: prefix.into(),
            subscriber,
            publisher,
            health,
            timeout,
        };
        tokio::spawn(bus.clone().watch_health());
        Ok(bus)
    }

    fn channel(&self, room: &str) -> String {
        format!("{}{room}", self.prefix)
    }

    pub async fn subscribe(&self, room: &str) -> Result<(), BusError> {
        let mut conn = self.subscriber.clone();
        let result = self.bounded(conn.subscribe(self.channel(room))).await;
        self.record(RedisOp::Subscribe, result)
    }

    pub async fn unsubscribe(&self, room: &str) -> Result<(), BusError> {
        let mut conn = self.subscriber.clone();
        let result = self.bounded(conn.unsubscribe(self.channel(room))).await;
        self.record(RedisOp::Unsubscribe, result)
    }

    /// Queues the message (or refuses it at once with `busy`); see `publish`.
    pub fn publish(&self, message: Outgoing) {
        self.publisher.publish(message);
    }

    pub async fn flush(&self) {
        self.publisher.flush().await;
    }

    pub fn health(&self) -> Result<(), String> {
        self.health.check()
    }

    async fn bounded<T>(
        &self,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(no_answer(self.timeout)),
        }
    }

    fn record(&self, op: RedisOp, result: Result<(), String>) -> Result<(), BusError> {
        result.map_err(|e| {
            self.health.failed(op, &e);
            BusError::Unavailable(e)
        })
    }

    /// Pings both connections: detects outages for /healthz, and makes the subscriber
    /// connection reconnect (and so re-subscribe) as soon as Redis is back.
    async fn watch_health(self) {
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = match self.publisher.ping().await {
                Ok(()) => self.bounded(ping(self.subscriber.clone())).await.map(drop),
                Err(e) => Err(e),
            };
            self.health.pinged(result);
        }
    }
}

async fn ping(mut conn: ConnectionManager) -> redis::RedisResult<String> {
    redis::cmd("PING").query_async(&mut conn).await
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

/// Publishes every batch as one pipeline of PUBLISH on one link: the whole batch shares one
/// outcome.
struct OneRedis {
    link: Link,
    prefix: Arc<str>,
    timeout: Duration,
}

impl Transport for OneRedis {
    async fn publish(&self, batch: &[Outgoing], outcomes: &mut Vec<Result<(), BusError>>) {
        let mut pipe = redis::pipe();
        for m in batch {
            pipe.publish(format!("{}{}", self.prefix, m.room), m.payload.as_str())
                .ignore();
        }
        let outcome = self.send(&pipe).await;
        outcomes.clear();
        outcomes.extend(batch.iter().map(|_| outcome.clone()));
    }

    async fn ping(&self) -> Result<(), String> {
        self.link.ping().await
    }
}

impl OneRedis {
    /// Sends one batch: `Unavailable` if it never reached a connection, `OutcomeUnknown` if it
    /// did and Redis did not confirm it.
    async fn send(&self, pipe: &redis::Pipeline) -> Result<(), BusError> {
        let mut conn = self.link.get().await.map_err(BusError::Unavailable)?;
        // From here on the batch is Redis's: written, or about to be, on a live connection.
        match tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // A broken connection is not reused; a server error reply gets a fresh one too.
                self.link.discard().await;
                Err(BusError::OutcomeUnknown(e.to_string()))
            }
            // Kept: the connection is fine as far as we know, and its late replies are
            // matched to the requests that timed out.
            Err(_) => Err(BusError::OutcomeUnknown(no_answer(self.timeout))),
        }
    }
}

/// Receives pub/sub pushes on the Redis reader task and hands them to the inbox.
struct PushToInbox {
    prefix: String,
    inbox: Arc<dyn Inbox>,
    metrics: Arc<Metrics>,
}

impl AsyncPushSender for PushToInbox {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Message => {
                if let [
                    redis::Value::BulkString(channel),
                    redis::Value::BulkString(payload),
                ] = &info.data[..]
                {
                    hand_in(&*self.inbox, &self.metrics, &self.prefix, channel, payload);
                }
            }
            PushKind::Disconnection => {
                self.metrics.redis_up.store(false, Relaxed);
            }
            _ => {}
        }
        Ok(())
    }
}
