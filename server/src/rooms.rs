//! This worker's rooms: who is a local member, which channels to hold, and delivery to members.
//!
//! A room exists here while at least one local socket holds it (joining or joined). The first
//! hold subscribes the worker to the room's channel and the last release unsubscribes, both
//! serialized per room so a join racing a leave can never end up unsubscribed.
//! Delivery hands one encoded packet to every local member: socketioxide serializes a broadcast
//! once and shares the bytes between recipients. A broadcast's errors do not say which member
//! failed, so a room where one failed for a full queue is delivered member by member until a
//! message reaches all of them: that tells `slow` who is not reading.
//!
//! A SUBSCRIBE or UNSUBSCRIBE that fails leaves Redis's view of the channel unknown: an
//! UNSUBSCRIBE that never arrived leaves the channel subscribed (and the Redis client
//! re-subscribes it after every reconnect); a SUBSCRIBE that timed out may still have arrived.
//! Such rooms are kept aside and settled by [`Rooms::run_reconciler`], which unsubscribes every
//! one nobody holds, retrying until Redis confirms: so the channels a worker is subscribed to
//! converge to the rooms it has members in.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketIo};
use socketioxide_core::adapter::errors::{BroadcastError, SocketError};

use crate::bus::{Bus, BusError, Inbox};
use crate::metrics::Metrics;
use crate::reply::reply_error;
use crate::slow::SlowConsumers;
use roomstorm_protocol::{EVENT_MESSAGE, ErrorCode};

/// One room with local members.
pub struct Room {
    name: Arc<str>,
    /// Local members, changed together with socketioxide's room membership so that delivery
    /// counts exactly the sockets it sends to.
    members: Mutex<usize>,
    /// Sockets holding the room (joining or joined), and whether its channel is subscribed.
    subscription: tokio::sync::Mutex<Subscription>,
    /// A delivery failed for a full queue and no later one reached every member: deliver
    /// member by member, to learn which one (see the module docs).
    has_full_member: AtomicBool,
}

#[derive(Default)]
struct Subscription {
    holders: usize,
    subscribed: bool,
}

impl Room {
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn members(&self) -> MutexGuard<'_, usize> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the socket a recipient of this room's messages.
    pub fn add_member(&self, socket: &SocketRef, metrics: &Metrics) {
        let mut members = self.members();
        socket.join(self.name.to_string());
        *members += 1;
        metrics.members.fetch_add(1, Relaxed);
        if *members == 1 {
            metrics.rooms.fetch_add(1, Relaxed);
        }
    }

    /// Stops delivering this room's messages to the socket.
    pub fn remove_member(&self, socket: &SocketRef, metrics: &Metrics) {
        let mut members = self.members();
        socket.leave(self.name.to_string());
        *members = members.saturating_sub(1);
        metrics.members.fetch_sub(1, Relaxed);
        if *members == 0 {
            metrics.rooms.fetch_sub(1, Relaxed);
        }
    }
}

/// Deliberate misbehaviour, for proving that measurement tools notice it (hidden flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Chaos {
    pub drop_every: u64,
    pub duplicate_every: u64,
}

/// Sends room messages coming from the bus to this worker's members of the room.
pub struct Delivery {
    io: SocketIo,
    rooms: Arc<Mutex<HashMap<Arc<str>, Arc<Room>>>>,
    metrics: Arc<Metrics>,
    chaos: Chaos,
    chat_messages: std::sync::atomic::AtomicU64,
    slow: Arc<SlowConsumers>,
}

impl Inbox for Delivery {
    /// Delivers one room message (the JSON of `{event, data}`) to every local member.
    fn deliver(&self, room: &str, payload: &str) {
        self.metrics.bus_received.fetch_add(1, Relaxed);
        let Ok(data) = serde_json::from_str::<&RawValue>(payload) else {
            self.metrics.bus_malformed.fetch_add(1, Relaxed);
            tracing::warn!(room, "dropped a bus message that is not JSON");
            return;
        };
        let Some(room) = self.lock_rooms().get(room).cloned() else {
            return; // no local member (a message still in flight after the last one left)
        };
        let members = room.members();
        if *members == 0 {
            return;
        }
        let copies = self.chaos_copies(payload);
        for _ in 0..copies {
            self.broadcast(&room, *members, data);
        }
    }

    /// Tells the sender what became of its message: refused (`busy`), not sent
    /// (`unavailable`), or maybe delivered (`outcome_unknown`).
    fn not_published(&self, origin: &SocketRef, error: &BusError) {
        let (code, message) = match error {
            BusError::Busy(_) => (ErrorCode::Busy, error.to_string()),
            BusError::Unavailable(_) => {
                (ErrorCode::Unavailable, format!("message not sent: {error}"))
            }
            BusError::OutcomeUnknown(_) => (ErrorCode::OutcomeUnknown, error.to_string()),
        };
        reply_error(origin, &self.metrics, code, &message);
    }
}

impl Delivery {
    /// How many times to deliver this message: 1, or 0 / 2 when chaos says so.
    fn chaos_copies(&self, payload: &str) -> usize {
        let Chaos {
            drop_every,
            duplicate_every,
        } = self.chaos;
        if drop_every == 0 && duplicate_every == 0
            || !payload.starts_with(r#"{"event":"broadcast_say""#)
        {
            return 1;
        }
        let n = self.chat_messages.fetch_add(1, Relaxed) + 1;
        if drop_every > 0 && n.is_multiple_of(drop_every) {
            self.metrics.chaos_dropped.fetch_add(1, Relaxed);
            0
        } else if duplicate_every > 0 && n.is_multiple_of(duplicate_every) {
            self.metrics.chaos_duplicated.fetch_add(1, Relaxed);
            2
        } else {
            1
        }
    }

    fn broadcast(&self, room: &Room, members: usize, data: &RawValue) {
        if room.has_full_member.load(Relaxed) {
            return self.deliver_one_by_one(room, data);
        }
        // The local adapter broadcasts synchronously: the future is ready on its first poll.
        let sent = self
            .io
            .to(room.name.to_string())
            .emit(EVENT_MESSAGE, data)
            .now_or_never();
        let failed = match sent {
            Some(Ok(())) => 0,
            Some(Err(BroadcastError::Socket(errors))) => self.count_failures(room, &errors),
            Some(Err(e)) => {
                tracing::error!(room = &*room.name, "broadcast failed: {e}");
                self.metrics
                    .delivery_failed_closed
                    .fetch_add(members as u64, Relaxed);
                members
            }
            None => {
                tracing::error!(
                    room = &*room.name,
                    "broadcast did not complete synchronously"
                );
                self.metrics
                    .delivery_failed_closed
                    .fetch_add(members as u64, Relaxed);
                members
            }
        };
        self.metrics
            .delivered
            .fetch_add(members.saturating_sub(failed) as u64, Relaxed);
    }

    fn count_failures(&self, room: &Room, errors: &[SocketError]) -> usize {
        for error in errors {
            let counter = match error {
                SocketError::InternalChannelFull => {
                    room.has_full_member.store(true, Relaxed);
                    &self.metrics.delivery_failed_full
                }
                SocketError::Closed => &self.metrics.delivery_failed_closed,
            };
            counter.fetch_add(1, Relaxed);
        }
        errors.len()
    }

    /// Delivers to each member on its own (the message is encoded once per member), telling
    /// the slow-consumer watch whose queue was full and whose was not. Back to one broadcast
    /// once a message reached every member.
    fn deliver_one_by_one(&self, room: &Room, data: &RawValue) {
        let now = Instant::now();
        let mut full = 0;
        for socket in self.io.to(room.name.to_string()).sockets() {
            let counter = match socket.emit(EVENT_MESSAGE, data) {
                Ok(()) => {
                    self.slow.delivered(socket.id);
                    &self.metrics.delivered
                }
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    full += 1;
                    self.slow.found_full(&socket, now);
                    &self.metrics.delivery_failed_full
                }
                Err(SendError::Socket(SocketError::Closed)) => &self.metrics.delivery_failed_closed,
                Err(SendError::Serialize(e)) => {
                    tracing::error!(room = &*room.name, "cannot encode a message: {e}");
                    &self.metrics.delivery_failed_closed
                }
            };
            counter.fetch_add(1, Relaxed);
        }
        if full == 0 {
            room.has_full_member.store(false, Relaxed);
        }
    }

    fn lock_rooms(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The registry of local rooms and their channel subscriptions.
pub struct Rooms {
    map: Arc<Mutex<HashMap<Arc<str>, Arc<Room>>>>,
    metrics: Arc<Metrics>,
    /// Rooms whose channel may be subscribed in Redis though nobody here holds them.
    unsettled: Mutex<HashSet<Arc<str>>>,
    /// Wakes the reconciler when a room is set aside.
    unsettled_added: tokio::sync::Notify,
}

/// Pause between reconciling passes that left rooms unsettled: the health check's pace, so
/// rooms settle within about a second of Redis answering again.
const RECONCILE_RETRY: Duration = Duration::from_millis(500);

impl Rooms {
    /// A registry and the delivery that reads it.
    pub fn new(
        io: SocketIo,
        metrics: Arc<Metrics>,
        chaos: Chaos,
        slow: Arc<SlowConsumers>,
    ) -> (Self, Arc<Delivery>) {
        let map = Arc::new(Mutex::new(HashMap::new()));
        let delivery = Arc::new(Delivery {
            io,
            rooms: map.clone(),
            metrics: metrics.clone(),
            chaos,
            chat_messages: Default::default(),
            slow,
        });
        let rooms = Rooms {
            map,
            metrics,
            unsettled: Mutex::default(),
            unsettled_added: tokio::sync::Notify::new(),
        };
        (rooms, delivery)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Room>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room's entry, created if needed; the returned reference counts as a hold in
    /// progress for [`Rooms::forget_if_unused`].
    fn entry(&self, name: &Arc<str>) -> Arc<Room> {
        self.lock()
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Room {
                    name: name.clone(),
                    members: Mutex::new(0),
                    subscription: tokio::sync::Mutex::default(),
                    has_full_member: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// Takes a hold on the room; the first hold subscribes the worker to its channel.
    pub async fn hold(&self, bus: &Bus, name: &Arc<str>) -> Result<Arc<Room>, BusError> {
        let room = self.entry(name);
        let mut sub = room.subscription.lock().await;
        if !sub.subscribed {
            if let Err(e) = bus.subscribe(name).await {
                // The SUBSCRIBE may have reached Redis all the same.
                self.set_aside(name);
                drop(sub);
                self.forget_if_unused(&room);
                return Err(e);
            }
            sub.subscribed = true;
            self.metrics.subscribed_channels.fetch_add(1, Relaxed);
        }
        sub.holders += 1;
        drop(sub);
        Ok(room)
    }

    /// Gives back a hold; the last one unsubscribes the worker from the room's channel.
    pub async fn release(&self, bus: &Bus, room: Arc<Room>) {
        let mut sub = room.subscription.lock().await;
        sub.holders = sub.holders.saturating_sub(1);
        if sub.holders == 0 && sub.subscribed {
            match bus.unsubscribe(&room.name).await {
                Ok(()) => {
                    sub.subscribed = false;
                    self.metrics.subscribed_channels.fetch_sub(1, Relaxed);
                }
                // Still subscribed as far as we know: the reconciler retries the UNSUBSCRIBE
                // (unless a hold reuses the subscription first); a stray message meanwhile
                // finds no member to deliver to.
                Err(e) => {
                    tracing::warn!(room = &*room.name, "unsubscribe failed: {e}");
                    self.set_aside(&room.name);
                }
            }
        }
        drop(sub);
        self.forget_if_unused(&room);
    }

    /// Marks the room for the reconciler. Called under the room's subscription lock, like
    /// [`Rooms::settle`]'s removal, so a later failure is never lost to an earlier settling.
    fn set_aside(&self, name: &Arc<str>) {
        let mut unsettled = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        unsettled.insert(name.clone());
        self.metrics
            .channels_to_reconcile
            .store(unsettled.len() as i64, Relaxed);
        self.unsettled_added.notify_one();
    }

    /// Settles the rooms set aside, retrying until Redis confirms; runs for the worker's life.
    pub async fn run_reconciler(&self, bus: &Bus) {
        loop {
            self.unsettled_added.notified().await;
            while !self.reconcile(bus).await {
                tokio::time::sleep(RECONCILE_RETRY).await;
            }
        }
    }

    /// One pass over the rooms set aside (their UNSUBSCRIBEs pipelined on one connection);
    /// true when every one of them settled.
    async fn reconcile(&self, bus: &Bus) -> bool {
        let names: Vec<Arc<str>> = self
            .unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let settled = futures_util::future::join_all(names.iter().map(|n| self.settle(bus, n)));
        settled.await.into_iter().all(|ok| ok)
    }

    /// Makes Redis agree with the room's holders: a room somebody holds is subscribed (its
    /// hold made sure); one nobody holds is unsubscribed. True once settled.
    async fn settle(&self, bus: &Bus, name: &Arc<str>) -> bool {
        let room = self.entry(name);
        let mut sub = room.subscription.lock().await;
        let settled = sub.holders > 0
            || match bus.unsubscribe(name).await {
                Ok(()) => {
                    if std::mem::take(&mut sub.subscribed) {
                        self.metrics.subscribed_channels.fetch_sub(1, Relaxed);
                    }
                    true
                }
                Err(_) => false,
            };
        if settled {
            let mut unsettled = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
            unsettled.remove(name);
            self.metrics
                .channels_to_reconcile
                .store(unsettled.len() as i64, Relaxed);
        }
        drop(sub);
        self.forget_if_unused(&room);
        settled
    }

    /// Drops the registry entry when nobody holds, waits on, or is subscribed for the room.
    fn forget_if_unused(&self, room: &Arc<Room>) {
        let mut map = self.lock();
        // Two references: the map's and the caller's. Any other is a hold in progress.
        if Arc::strong_count(room) > 2 {
            return;
        }
        if let Ok(sub) = room.subscription.try_lock()
            && sub.holders == 0
            && !sub.subscribed
        {
            map.remove(&room.name);
        }
    }
}
