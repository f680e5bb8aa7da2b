//! Slow consumers: members whose outgoing queue stays full are disconnected.
//!
//! Why it exists: a member that stops reading keeps its full queue (`--socket-buffer` packets)
//! in memory forever, and every message to its room fails for it. Once a delivery finds its
//! queue full, the member is a suspect; a suspect that a later delivery finds full again after
//! `--slow-consumer-grace`, or that the periodic sweep finds still unrecovered after it, is
//! disconnected (`chat_disconnects_total{reason="slow_consumer"}`). A delivery that reaches it
//! in between clears it. What it missed before stays counted as failed deliveries.
//!
//! A queue that is full cannot carry a disconnect packet, so the kick cuts the member's TCP
//! connection (`conns`); a polling member has none between requests, and its full queue makes
//! the next heartbeat ping fail instead. Nothing here runs per message unless a room has a
//! suspect: the rooms only call in after a delivery failed for a full queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

use crate::conns::{Connections, Peer};
use crate::metrics::{ClosedFor, DisconnectLabel};

/// The slow-consumer watch of one worker.
pub struct SlowConsumers {
    grace: Duration,
    conns: Arc<Connections>,
    suspects: Mutex<HashMap<Sid, Suspect>>,
    /// `suspects.len()`, read without the lock on every per-socket delivery.
    count: AtomicUsize,
}

struct Suspect {
    socket: SocketRef,
    full_since: Instant,
}

/// What became of a member whose queue was found full.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Full for less than the grace: watched.
    Watched,
    /// Full for the whole grace: disconnected.
    Kicked,
}

impl SlowConsumers {
    pub fn new(grace: Duration, conns: Arc<Connections>) -> Arc<Self> {
        Arc::new(SlowConsumers {
            grace,
            conns,
            suspects: Mutex::default(),
            count: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Sid, Suspect>> {
        self.suspects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A delivery to `socket` failed because its queue was full.
    pub fn found_full(&self, socket: &SocketRef, now: Instant) -> Verdict {
        let mut suspects = self.lock();
        let since = suspects
            .entry(socket.id)
            .or_insert_with(|| Suspect {
                socket: socket.clone(),
                full_since: now,
            })
            .full_since;
        let verdict = if now.duration_since(since) >= self.grace {
            suspects.remove(&socket.id);
            Verdict::Kicked
        } else {
            Verdict::Watched
        };
        self.count.store(suspects.len(), Relaxed);
        drop(suspects);
        if verdict == Verdict::Kicked {
            self.kick(socket);
        }
        verdict
    }

    /// A delivery to `sid` was queued: its queue has room again.
    pub fn delivered(&self, sid: Sid) {
        if self.count.load(Relaxed) == 0 {
            return;
        }
        let mut suspects = self.lock();
        suspects.remove(&sid);
        self.count.store(suspects.len(), Relaxed);
    }

    /// Suspects being watched now.
    pub fn watched(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Disconnects the suspects full for the whole grace with no delivery since, and forgets
    /// the ones that left. For rooms too quiet for a later delivery to find them.
    pub fn sweep(&self, now: Instant) {
        let mut expired = Vec::new();
        {
            let mut suspects = self.lock();
            suspects.retain(|_, s| {
                if !s.socket.connected() {
                    return false;
                }
                if now.duration_since(s.full_since) >= self.grace {
                    expired.push(s.socket.clone());
                    return false;
                }
                true
            });
            self.count.store(suspects.len(), Relaxed);
        }
        for socket in &expired {
            self.kick(socket);
        }
    }

    /// Closes the socket, counted as a slow consumer: with a disconnect packet when its queue
    /// has room again, else by cutting its connection.
    fn kick(&self, socket: &SocketRef) {
        socket
            .extensions
            .insert(ClosedFor(DisconnectLabel::SlowConsumer));
        tracing::warn!(sid = %socket.id, grace = ?self.grace, "disconnecting a slow consumer");
        if socket.clone().disconnect().is_ok() {
            return;
        }
        let handshake = socket
            .req_parts()
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map(|info| info.0.id);
        if !self.conns.cut_session(&socket.id.to_string(), handshake) {
            // Polling between requests: its full queue fails the next heartbeat ping, and the
            // close is then counted under this label.
            tracing::debug!(sid = %socket.id, "no connection to cut; the heartbeat closes it");
        }
    }

    /// Sweeps every `grace / 2` (at least every second, at most 20 times a second) while the
    /// watch exists.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let period = (self.grace / 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
        crate::periodic::every(period, self, |watch| {
            if watch.watched() > 0 {
                watch.sweep(Instant::now());
            }
        });
    }
}
