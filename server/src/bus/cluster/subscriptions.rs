//! The sharded channels this worker wants, where each is subscribed, and the follower that
//! moves them when their slot moves.
//!
//! Each wanted channel is subscribed on the master that owns its slot, over that master's
//! [`ShardLink`]. A channel leaves its master without being asked when its slot migrates away
//! (Redis pushes `sunsubscribe`) or when the master goes away (its connection closes, a replica
//! takes over). Either way it is marked lost, and the follower subscribes it again on the slot's
//! owner as soon as the slot map says who that is: subscriptions follow slot moves and
//! failovers by themselves, as the single Redis bus re-subscribes after a Redis restart. Rooms
//! never see it; messages published while a channel is between masters are not delivered here
//! (the load generator's ledger counts them).
//!
//! Every change of a channel's state and the command it implies happen under one lock, and a
//! master's commands reach it in the order queued, so Redis ends where the last change says.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::shard::{Reply, Request, ShardError, ShardEvents, ShardLink};
use super::slot::key_slot;
use super::topology::{NodeAddr, Topology};
use crate::bus::contract::{Inbox, hand_in};
use crate::metrics::Metrics;

/// How often the follower checks the slot map when nothing wakes it.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);
/// How many `MOVED` replies a subscribe follows before giving up.
const MAX_REDIRECTS: usize = 3;

/// Where a wanted channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// An SSUBSCRIBE to `node` is on its way.
    Subscribing,
    /// `node` confirmed it.
    Placed,
    /// Not subscribed anywhere (pushed out, or its master went away): the follower's job.
    Lost,
}

struct Want {
    node: NodeAddr,
    placement: Placement,
}

/// What the shard connections report into; apart from [`Subscriptions`] so the connections
/// hold no reference back to their owner.
struct Shared {
    prefix: Arc<str>,
    inbox: Arc<dyn Inbox>,
    metrics: Arc<Metrics>,
    wanted: Mutex<HashMap<Arc<str>, Want>>,
    /// Wakes the follower: a channel was lost.
    lost: tokio::sync::Notify,
}

impl Shared {
    fn wanted(&self) -> MutexGuard<'_, HashMap<Arc<str>, Want>> {
        self.wanted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks lost the channels `node` held that `lose` picks; wakes the follower if any.
    fn lose(&self, node: &NodeAddr, mut lose: impl FnMut(&str) -> bool) {
        let mut wanted = self.wanted();
        let mut any = false;
        for (channel, want) in wanted.iter_mut() {
            if want.node == *node && want.placement != Placement::Lost && lose(channel) {
                want.placement = Placement::Lost;
                any = true;
            }
        }
        self.count_unplaced(&wanted);
        drop(wanted);
        if any {
            self.lost.notify_one();
        }
    }

    fn count_unplaced(&self, wanted: &HashMap<Arc<str>, Want>) {
        let lost = wanted
            .values()
            .filter(|w| w.placement == Placement::Lost)
            .count();
        self.metrics.cluster_unplaced.store(lost as i64, Relaxed);
    }
}

impl ShardEvents for Shared {
    fn message(&self, channel: &[u8], payload: &[u8]) {
        hand_in(&*self.inbox, &self.metrics, &self.prefix, channel, payload);
    }

    fn pushed_out(&self, node: &NodeAddr, channel: &[u8]) {
        self.metrics.cluster_pushed_out.fetch_add(1, Relaxed);
        self.lose(node, |c| c.as_bytes() == channel);
    }

    fn disconnected(&self, node: &NodeAddr) {
        self.lose(node, |_| true);
    }
}

pub struct Subscriptions {
    shared: Arc<Shared>,
    topology: Arc<Topology>,
    links: Mutex<HashMap<NodeAddr, ShardLink>>,
    timeout: Duration,
}

impl Subscriptions {
    pub fn new(
        prefix: Arc<str>,
        topology: Arc<Topology>,
        timeout: Duration,
        inbox: Arc<dyn Inbox>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Subscriptions {
            shared: Arc::new(Shared {
                prefix,
                inbox,
                metrics,
                wanted: Mutex::default(),
                lost: tokio::sync::Notify::new(),
            }),
            topology,
            links: Mutex::default(),
            timeout,
        }
    }

    fn channel(&self, room: &str) -> Arc<str> {
        format!("{}{room}", self.shared.prefix).into()
    }

    /// The subscriber connection of `node`, started on first use.
    fn link(&self, node: &NodeAddr) -> ShardLink {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links
            .entry(node.clone())
            .or_insert_with(|| ShardLink::spawn(node.clone(), self.timeout, self.shared.clone()))
            .clone()
    }

    /// The master that owns the channel's slot, refreshing the slot map if it knows none.
    async fn owner(&self, channel: &str) -> Result<NodeAddr, String> {
        let slot = key_slot(channel.as_bytes());
        if let Some(owner) = self.topology.current().owner(slot) {
            return Ok(owner.clone());
        }
        self.topology.refresh().await?;
        self.topology
            .current()
            .owner(slot)
            .cloned()
            .ok_or_else(|| format!("no master serves slot {slot}"))
    }

    /// SSUBSCRIBEs the room's channel on its slot's master, following `MOVED` replies. On
    /// failure the channel is not wanted (the SSUBSCRIBE may still have arrived: the rooms'
    /// reconciler unsubscribes it).
    pub async fn subscribe(&self, room: &str) -> Result<(), String> {
        let channel = self.channel(room);
        let mut last_error = String::new();
        for _ in 0..MAX_REDIRECTS {
            let node = self.owner(&channel).await?;
            let reply = {
                let mut wanted = self.shared.wanted();
                wanted.insert(
                    channel.clone(),
                    Want {
                        node: node.clone(),
                        placement: Placement::Subscribing,
                    },
                );
                self.link(&node).send(Request::Subscribe, &channel)
            };
            match self.answer(reply).await {
                Ok(()) => {
                    self.settle(&channel, &node, Placement::Placed);
                    return Ok(());
                }
                Err(error) => {
                    self.forget(&channel, &node);
                    let Some((slot, owner)) = error.moved() else {
                        return Err(error.to_string());
                    };
                    self.shared.metrics.cluster_redirects.fetch_add(1, Relaxed);
                    self.topology.moved(slot, owner);
                    last_error = error.to_string();
                }
            }
        }
        Err(format!(
            "still redirected after {MAX_REDIRECTS} tries: {last_error}"
        ))
    }

    /// SUNSUBSCRIBEs the room's channel where it was placed (or on its slot's master). A master
    /// that no longer owns the slot, or a connection that is gone, holds no subscription: done.
    /// On failure the channel stays wanted, as lost: until the rooms' reconciler settles it,
    /// the room may be held again, and its subscription must then be there.
    pub async fn unsubscribe(&self, room: &str) -> Result<(), String> {
        let channel = self.channel(room);
        // Where to send it if the channel is not wanted (a failed subscribe left it behind).
        let fallback = self.owner(&channel).await;
        let (node, reply) = {
            let mut wanted = self.shared.wanted();
            let node = match (wanted.remove(&channel), fallback) {
                (Some(want), _) => want.node,
                (None, Ok(owner)) => owner,
                (None, Err(e)) => return Err(e),
            };
            self.shared.count_unplaced(&wanted);
            let reply = self.link(&node).send(Request::Unsubscribe, &channel);
            (node, reply)
        };
        match self.answer(reply).await {
            Ok(()) => Ok(()),
            Err(error) if error.moved().is_some() => Ok(()),
            Err(error) => {
                let mut wanted = self.shared.wanted();
                wanted.entry(channel).or_insert(Want {
                    node,
                    placement: Placement::Lost,
                });
                self.shared.count_unplaced(&wanted);
                drop(wanted);
                self.shared.lost.notify_one();
                Err(error.to_string())
            }
        }
    }

    async fn answer(&self, reply: Reply) -> Result<(), ShardError> {
        match tokio::time::timeout(self.timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ShardError::NotConnected("the bus is stopping".into())),
            Err(_) => Err(ShardError::Broken(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Records the outcome of an SSUBSCRIBE to `node`, unless the channel changed meanwhile
    /// (left, lost, or sent elsewhere: that change decides).
    fn settle(&self, channel: &Arc<str>, node: &NodeAddr, placement: Placement) {
        let mut wanted = self.shared.wanted();
        if let Some(want) = wanted.get_mut(channel)
            && want.node == *node
            && want.placement == Placement::Subscribing
        {
            want.placement = placement;
        }
        self.shared.count_unplaced(&wanted);
    }

    /// Drops the channel after a failed SSUBSCRIBE to `node`, unless it changed meanwhile.
    fn forget(&self, channel: &Arc<str>, node: &NodeAddr) {
        let mut wanted = self.shared.wanted();
        if wanted
            .get(channel)
            .is_some_and(|w| w.node == *node && w.placement == Placement::Subscribing)
        {
            wanted.remove(channel);
        }
    }

    /// Keeps every wanted channel subscribed on its slot's master, for the worker's life:
    /// wakes when a channel is lost, and every [`FOLLOW_INTERVAL`] to notice moves nobody
    /// pushed (a slot map that changed, a `MOVED` met by a publish).
    pub async fn follow(&self) {
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.shared.lost.notified() => {}
            }
            if let Err(e) = self.topology.refresh().await {
                tracing::debug!("cluster slot map not refreshed: {e}");
            }
            if self.repair().await {
                // A MOVED: the map is corrected already, try again at once.
                self.shared.lost.notify_one();
            }
        }
    }

    /// One pass: every channel that is lost, or placed on a master that no longer owns its
    /// slot, is subscribed on the owner. True when a `MOVED` asks for another pass.
    async fn repair(&self) -> bool {
        let map = self.topology.current();
        let mut moves = Vec::new();
        {
            let mut wanted = self.shared.wanted();
            for (channel, want) in wanted.iter_mut() {
                let Some(owner) = map.owner(key_slot(channel.as_bytes())) else {
                    continue; // nobody serves the slot yet (a failover in progress)
                };
                let stray = match want.placement {
                    Placement::Lost => false,
                    Placement::Placed if want.node != *owner => true,
                    Placement::Placed | Placement::Subscribing => continue,
                };
                if stray {
                    // Placed on a master that lost the slot without telling us: leave it.
                    drop(self.link(&want.node).send(Request::Unsubscribe, channel));
                }
                want.node = owner.clone();
                want.placement = Placement::Subscribing;
                let reply = self.link(owner).send(Request::Subscribe, channel);
                moves.push((channel.clone(), owner.clone(), reply));
            }
        }
        let answers = futures_util::future::join_all(moves.into_iter().map(
            |(channel, node, reply)| async move { (channel, node, self.answer(reply).await) },
        ))
        .await;
        let mut again = false;
        for (channel, node, answer) in answers {
            match answer {
                Ok(()) => {
                    self.settle(&channel, &node, Placement::Placed);
                    self.shared
                        .metrics
                        .cluster_resubscribed
                        .fetch_add(1, Relaxed);
                }
                Err(error) => {
                    if let Some((slot, owner)) = error.moved() {
                        self.shared.metrics.cluster_redirects.fetch_add(1, Relaxed);
                        self.topology.moved(slot, owner);
                        again = true;
                    }
                    tracing::debug!(channel = &*channel, "re-subscribing failed: {error}");
                    self.settle(&channel, &node, Placement::Lost);
                }
            }
        }
        let wanted = self.shared.wanted();
        self.shared.count_unplaced(&wanted);
        again
    }
}
