//! The publishing half of a Redis bus: a bounded queue of room messages, sent in pipelined
//! batches by a [`Transport`] (one Redis, or the masters of a Redis Cluster), with an honest
//! outcome for each message.
//!
//! Bounded, because a queue without a limit turns a slow or stalled Redis into unbounded worker
//! memory: every message a sender offers waits in it. Here at most `capacity` messages are
//! waiting for their outcome (queued, or in the batch on its way to Redis); the next one is
//! refused at once with [`BusError::Busy`], and its sender can retry later.
//!
//! A transport publishes over connections of its own (`link`: plain multiplexed connections, not
//! a `ConnectionManager`), because what a sender is told depends on whether its message reached
//! Redis. A `ConnectionManager` reconnects inside the call, so its timeout can mean "never
//! connected" as well as "written, no answer". With a link, connecting and sending are separate
//! steps: a failure to connect means nothing was handed over ([`BusError::Unavailable`]: not
//! sent, safe to retry); any failure once the batch was handed to the connection means Redis may
//! have published it ([`BusError::OutcomeUnknown`]: a blind retry may duplicate).
//!
//! Batches leave one at a time, in queue order, so messages given in one order are published in
//! that order (a transport keeps the order within a batch).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::{mpsc, oneshot};

use super::contract::{BusError, Inbox, Outgoing};
use super::health::RedisHealth;
use crate::metrics::{Metrics, PublishFailure, RedisOp};

/// Most messages sent to Redis in one pipelined write.
const MAX_BATCH: usize = 1024;

/// Where batches go: one Redis, or the masters of a cluster.
pub trait Transport: Send + Sync + 'static {
    /// Publishes `batch` in order and writes one outcome per message into `outcomes` (cleared
    /// first; same order as `batch`).
    fn publish(
        &self,
        batch: &[Outgoing],
        outcomes: &mut Vec<Result<(), BusError>>,
    ) -> impl Future<Output = ()> + Send;

    /// Whether every Redis this transport publishes to answers a PING (opening connections as
    /// needed), and why not.
    fn ping(&self) -> impl Future<Output = Result<(), String>> + Send;
}

enum Command {
    Publish(Outgoing),
    Flush(oneshot::Sender<()>),
}

/// The handle the bus publishes through; cheap to clone.
pub struct Publisher<T> {
    queue: mpsc::UnboundedSender<Command>,
    pending: Pending,
    transport: Arc<T>,
    inbox: Arc<dyn Inbox>,
    metrics: Arc<Metrics>,
    health: Arc<RedisHealth>,
}

impl<T> Clone for Publisher<T> {
    fn clone(&self) -> Self {
        Publisher {
            queue: self.queue.clone(),
            pending: self.pending.clone(),
            transport: self.transport.clone(),
            inbox: self.inbox.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        }
    }
}

impl<T: Transport> Publisher<T> {
    /// Starts the task that drains the queue into `transport`, at most `capacity` messages
    /// waiting.
    pub fn start(
        transport: T,
        capacity: usize,
        inbox: Arc<dyn Inbox>,
        metrics: Arc<Metrics>,
        health: Arc<RedisHealth>,
    ) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let publisher = Publisher {
            queue,
            pending: Pending {
                capacity,
                metrics: metrics.clone(),
            },
            transport: Arc::new(transport),
            inbox,
            metrics,
            health,
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

    /// PING over the transport's connections.
    pub async fn ping(&self) -> Result<(), String> {
        self.transport.ping().await
    }

    /// Drains the queue in order, one batch at a time.
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_BATCH);
        let mut outcomes = Vec::with_capacity(MAX_BATCH);
        let mut flushed = Vec::new();
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            for command in commands.drain(..) {
                match command {
                    Command::Publish(m) => batch.push(m),
                    Command::Flush(done) => flushed.push(done),
                }
            }
            if !batch.is_empty() {
                self.transport.publish(&batch, &mut outcomes).await;
                self.report(&mut batch, &mut outcomes);
            }
            for done in flushed.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Counts each message of the batch by its outcome and tells the senders of failed ones.
    fn report(&self, batch: &mut Vec<Outgoing>, outcomes: &mut Vec<Result<(), BusError>>) {
        let count = batch.len();
        let mut published = 0;
        let mut marked_down = false;
        let mut outcomes = outcomes.drain(..);
        for message in batch.drain(..) {
            // A transport that gave fewer outcomes than messages leaves the rest unknown.
            let outcome = outcomes
                .next()
                .unwrap_or_else(|| Err(BusError::OutcomeUnknown("no outcome reported".into())));
            match outcome {
                Ok(()) => published += 1,
                Err(error) => {
                    if !std::mem::replace(&mut marked_down, true) {
                        self.health.mark_down(&error.to_string());
                    }
                    self.metrics.redis_error(RedisOp::Publish);
                    self.fail(message.origin, &error);
                }
            }
        }
        self.metrics.published.fetch_add(published, Relaxed);
        self.pending.release(count);
    }

    /// Counts a message that was not published (or may not have been) and tells its sender.
    fn fail(&self, origin: Option<socketioxide::extract::SocketRef>, error: &BusError) {
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
