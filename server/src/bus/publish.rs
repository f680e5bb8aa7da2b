//! The publishing half of the Redis bus: a bounded queue of room messages, sent to Redis in
//! pipelined batches over a connection of its own, with an honest outcome for each message.
//!
//! Bounded, because a queue without a limit turns a slow or stalled Redis into unbounded worker
//! memory: every message a sender offers waits in it. Here at most `capacity` messages are
//! waiting for their outcome (queued, or in the batch on its way to Redis); the next one is
//! refused at once with [`BusError::Busy`], and its sender can retry later.
//!
//! Its own connection (a plain multiplexed connection, not a `ConnectionManager`), because what
//! a sender is told depends on whether its message reached Redis. A `ConnectionManager`
//! reconnects inside the call, so its timeout can mean "never connected" as well as "written,
//! no answer". Here connecting and sending are separate steps: a failure to connect means
//! nothing was handed over ([`BusError::Unavailable`]: not sent, safe to retry); any failure
//! once the batch was handed to the connection means Redis may have published it
//! ([`BusError::OutcomeUnknown`]: a blind retry may duplicate).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, PushInfo, PushKind};
use socketioxide::extract::SocketRef;
use tokio::sync::{mpsc, oneshot};

use super::contract::{BusError, Inbox, Outgoing};
use super::health::RedisHealth;
use crate::metrics::{Metrics, PublishFailure, RedisOp};

/// Most messages sent to Redis in one pipelined write.
const MAX_BATCH: usize = 1024;

enum Command {
    Publish(Outgoing),
    Flush(oneshot::Sender<()>),
}

/// The handle the bus publishes through; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Command>,
    pending: Pending,
    link: Arc<Link>,
    inbox: Arc<dyn Inbox>,
    metrics: Arc<Metrics>,
    health: Arc<RedisHealth>,
    prefix: Arc<str>,
    timeout: Duration,
}

/// Where to publish and how: the bus's settings, handed to [`Publisher::start`].
pub struct PublishSettings {
    pub client: redis::Client,
    pub prefix: Arc<str>,
    pub capacity: usize,
    pub timeout: Duration,
}

impl Publisher {
    /// Starts the task that drains the queue; the connection opens on the first batch or ping.
    pub fn start(
        settings: PublishSettings,
        inbox: Arc<dyn Inbox>,
        metrics: Arc<Metrics>,
        health: Arc<RedisHealth>,
    ) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let publisher = Publisher {
            queue,
            pending: Pending {
                capacity: settings.capacity,
                metrics: metrics.clone(),
            },
            link: Arc::new(Link {
                client: settings.client,
                timeout: settings.timeout,
                live: tokio::sync::Mutex::new(None),
            }),
            inbox,
            metrics,
            health,
            prefix: settings.prefix,
            timeout: settings.timeout,
        };
        tokio::spawn(publisher.clone().run(rx));
        publisher
    }

    /// Queues the message, or refuses it with `busy` when `capacity` messages are waiting.
    pub fn publish(&self, message: Outgoing) {
        if !self.pending.try_take() {
            self.fail(message.origin, &BusError::Busy(self.pending.capacity));
            return;
        }
        if let Err(mpsc::error::SendError(Command::Publish(message))) =
            self.queue.send(Command::Publish(message))
        {
            // The publisher task only stops with the runtime; say so rather than drop silently.
            self.pending.release(1);
            let error = BusError::Unavailable("server is stopping".into());
            self.fail(message.origin, &error);
        }
    }

    /// Waits until every message queued so far has been sent or has failed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// PING over the publishing connection (opening it if needed).
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.link.get().await?;
        let reply = tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match reply {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.link.discard().await;
                Err(e.to_string())
            }
            Err(_) => Err(no_answer(self.timeout)),
        }
    }

    /// Drains the queue in order, one pipelined write per batch.
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        let mut origins: Vec<Option<SocketRef>> = Vec::with_capacity(MAX_BATCH);
        let mut flushed = Vec::new();
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            let mut pipe = redis::pipe();
            for command in commands.drain(..) {
                match command {
                    Command::Publish(m) => {
                        pipe.publish(format!("{}{}", self.prefix, m.room), m.payload)
                            .ignore();
                        origins.push(m.origin);
                    }
                    Command::Flush(done) => flushed.push(done),
                }
            }
            if !origins.is_empty() {
                let outcome = self.send(&pipe).await;
                self.report(outcome, &mut origins);
            }
            for done in flushed.drain(..) {
                let _ = done.send(());
            }
        }
    }

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

    fn report(&self, outcome: Result<(), BusError>, origins: &mut Vec<Option<SocketRef>>) {
        let count = origins.len();
        match outcome {
            Ok(()) => {
                self.metrics.published.fetch_add(count as u64, Relaxed);
                origins.clear();
            }
            Err(error) => {
                self.health.mark_down(&error.to_string());
                for origin in origins.drain(..) {
                    self.metrics.redis_error(RedisOp::Publish);
                    self.fail(origin, &error);
                }
            }
        }
        self.pending.release(count);
    }

    /// Counts a message that was not published (or may not have been) and tells its sender.
    fn fail(&self, origin: Option<SocketRef>, error: &BusError) {
        self.metrics.publish_failed(PublishFailure::from(error));
        if let Some(socket) = origin {
            self.inbox.not_published(&socket, error);
        }
    }
}

impl From<&BusError> for PublishFailure {
    fn from(error: &BusError) -> Self {
        match error {
            BusError::Unavailable(_) => PublishFailure::Unavailable,
            BusError::Busy(_) => PublishFailure::Busy,
            BusError::OutcomeUnknown(_) => PublishFailure::OutcomeUnknown,
        }
    }
}

fn no_answer(timeout: Duration) -> String {
    format!("no answer within {timeout:?}")
}

/// The count of messages accepted and not yet settled; the `chat_publish_queue` gauge itself,
/// so the metric is exact and cannot pass the bound.
#[derive(Clone)]
struct Pending {
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Pending {
    /// Takes a place in the queue, unless all `capacity` places are taken.
    fn try_take(&self) -> bool {
        let capacity = self.capacity as u64;
        let taken = self
            .metrics
            .publish_queue
            .fetch_update(Relaxed, Relaxed, |n| (n < capacity).then_some(n + 1));
        match taken {
            Ok(before) => {
                self.metrics
                    .publish_queue_peak
                    .fetch_max(before + 1, Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    fn release(&self, count: usize) {
        self.metrics.publish_queue.fetch_sub(count as u64, Relaxed);
    }
}

/// The publishing connection: opened on demand, replaced once it broke.
struct Link {
    client: redis::Client,
    timeout: Duration,
    live: tokio::sync::Mutex<Option<Live>>,
}

struct Live {
    conn: MultiplexedConnection,
    /// Set by the connection's driver (a disconnection push) when the socket closed.
    dropped: Arc<AtomicBool>,
}

impl Link {
    /// The live connection, or a new one. An error here means nothing was sent on it.
    async fn get(&self) -> Result<MultiplexedConnection, String> {
        let mut live = self.live.lock().await;
        if let Some(current) = &*live
            && !current.dropped.load(Relaxed)
        {
            return Ok(current.conn.clone());
        }
        *live = None;
        let dropped = Arc::new(AtomicBool::new(false));
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            // Replies are awaited under the caller's own timeout, which decides the outcome.
            .set_response_timeout(None)
            .set_push_sender(MarkDropped(dropped.clone()));
        let connecting = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let conn = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("cannot connect within {:?}", self.timeout)),
        };
        *live = Some(Live {
            conn: conn.clone(),
            dropped,
        });
        Ok(conn)
    }

    async fn discard(&self) {
        *self.live.lock().await = None;
    }
}

/// Marks a connection broken when its driver reports the disconnection, so that the next batch
/// reconnects instead of writing into a closed socket.
struct MarkDropped(Arc<AtomicBool>);

impl AsyncPushSender for MarkDropped {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if info.kind == PushKind::Disconnection {
            self.0.store(true, Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_never_holds_more_than_its_capacity() {
        let metrics = Arc::new(Metrics::default());
        let pending = Pending {
            capacity: 3,
            metrics: metrics.clone(),
        };
        assert!((0..3).all(|_| pending.try_take()));
        assert!(!pending.try_take(), "a fourth message is refused");
        pending.release(2);
        assert!(pending.try_take());
        assert_eq!(metrics.publish_queue.load(Relaxed), 2);
        assert_eq!(metrics.publish_queue_peak.load(Relaxed), 3);
    }
}
