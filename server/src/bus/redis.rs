//! Redis pub/sub bus: one channel per room, a separate connection for PUBLISH.
//!
//! Subscriptions live on a RESP3 `ConnectionManager` whose push messages are handed straight to
//! the [`Inbox`] (no intermediate queue), and which re-subscribes by itself when Redis comes
//! back after a restart. Publishes go through the bounded, ordered queue of `publish`, and leave
//! in pipelined batches, so a burst costs one round trip, and one sender's messages keep their
//! order.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::aio::{AsyncPushSender, ConnectionManager, ConnectionManagerConfig, SendError};
use redis::{PushInfo, PushKind};

use super::contract::{BusError, Inbox, Outgoing};
use super::health::RedisHealth;
use super::publish::{PublishSettings, Publisher};
use crate::metrics::{Metrics, RedisOp};

/// How often Redis is pinged to notice outages (and to make the connections reconnect).
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

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
    publisher: Publisher,
    health: Arc<RedisHealth>,
    metrics: Arc<Metrics>,
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
        let publisher = Publisher::start(
            PublishSettings {
                client,
                prefix: prefix.into(),
                capacity: publish_queue,
                timeout,
            },
            inbox,
            metrics.clone(),
            health.clone(),
        );
        let bus = RedisBus {
            prefix: prefix.into(),
            subscriber,
            publisher,
            health,
            metrics,
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
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    fn record(&self, op: RedisOp, result: Result<(), String>) -> Result<(), BusError> {
        result.map_err(|e| {
            self.metrics.redis_error(op);
            self.health.mark_down(&e);
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
            match result {
                Ok(()) => self.health.mark_up(),
                Err(e) => {
                    self.metrics.redis_error(RedisOp::Ping);
                    self.health.mark_down(&e);
                }
            }
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

/// Subscriptions through `ConnectionManager` need RESP3 push messages.
/// The URL's connection settings with TCP_NODELAY on: publishes are small commands written back
/// to back, and with Nagle's algorithm each would wait for the ACK of the one before.
fn connection_info(url: &str) -> anyhow::Result<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let info = with_resp3(url)
        .into_connection_info()
        .map_err(|e| anyhow::anyhow!("invalid Redis URL {url:?}: {e}"))?;
    let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
    Ok(info.set_tcp_settings(tcp))
}

fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
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
                    self.deliver(channel, payload);
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

impl PushToInbox {
    fn deliver(&self, channel: &[u8], payload: &[u8]) {
        let room = channel.strip_prefix(self.prefix.as_bytes());
        match (room.map(std::str::from_utf8), std::str::from_utf8(payload)) {
            (Some(Ok(room)), Ok(payload)) => self.inbox.deliver(room, payload),
            _ => {
                self.metrics.bus_malformed.fetch_add(1, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{connection_info, with_resp3};

    #[test]
    fn resp3_is_requested_once() {
        assert_eq!(with_resp3("redis://h:1"), "redis://h:1?protocol=resp3");
        assert_eq!(
            with_resp3("redis://h:1/?db=2"),
            "redis://h:1/?db=2&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h/?protocol=resp3"),
            "redis://h/?protocol=resp3"
        );
    }

    #[test]
    fn connections_have_nagle_off_and_speak_resp3() {
        let info = connection_info("redis://127.0.0.1:6379").expect("valid URL");
        assert!(info.tcp_settings().nodelay());
        assert_eq!(
            info.redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
        assert!(connection_info("not a url").is_err());
    }
}
