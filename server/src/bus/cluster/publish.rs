//! Publishing to a Redis Cluster: each batch is split by the master that owns each message's
//! slot, and each master gets its share as one pipeline of SPUBLISH over its own link, all
//! masters at once. A message refused with `MOVED` was not published (the master did not run
//! it), so it is sent again to the new owner before the next batch starts: a slot migration
//! costs no message, and one room's messages keep their order.
//!
//! Each message gets its own outcome: a master that could not be reached fails only its share
//! (`unavailable`), one that broke or went silent after the pipeline was written leaves its share
//! `outcome_unknown`, and an error reply other than `MOVED` means that master refused that
//! message: not published (`unavailable`).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::slot::key_slot;
use super::topology::{NodeAddr, Topology, node_url};
use crate::bus::contract::{BusError, Outgoing};
use crate::bus::link::{Link, connection_info, no_answer};
use crate::bus::publish::Transport;
use crate::metrics::Metrics;

/// Rounds of `MOVED` a batch follows before its remaining messages fail.
const MAX_REDIRECTS: usize = 3;

pub struct ClusterTransport {
    topology: Arc<Topology>,
    links: Mutex<HashMap<NodeAddr, Arc<Link>>>,
    prefix: Arc<str>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// What became of one message sent to one master.
enum Sent {
    Done(Result<(), BusError>),
    /// Refused with `MOVED slot node`: not published, to be sent to `node`.
    Moved(u16, String),
}

impl ClusterTransport {
    pub fn new(
        topology: Arc<Topology>,
        prefix: Arc<str>,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        ClusterTransport {
            topology,
            links: Mutex::default(),
            prefix,
            timeout,
            metrics,
        }
    }

    /// The publishing link of `node`, created on first use.
    fn link(&self, node: &NodeAddr) -> Result<Arc<Link>, String> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(link) = links.get(node) {
            return Ok(link.clone());
        }
        let info = connection_info(&node_url(node)).map_err(|e| e.to_string())?;
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let link = Arc::new(Link::new(client, self.timeout));
        links.insert(node.clone(), link.clone());
        Ok(link)
    }

    /// The messages `todo` (indices into `batch`) grouped by their slot's master, in batch
    /// order; those whose slot has no known master fail at once.
    fn group(
        &self,
        batch: &[Outgoing],
        todo: &[usize],
        outcomes: &mut [Result<(), BusError>],
    ) -> Vec<(NodeAddr, Vec<usize>)> {
        let map = self.topology.current();
        let mut groups: Vec<(NodeAddr, Vec<usize>)> = Vec::new();
        let mut channel = Vec::with_capacity(128);
        for &i in todo {
            self.channel_into(&mut channel, &batch[i]);
            let slot = key_slot(&channel);
            let Some(owner) = map.owner(slot) else {
                outcomes[i] = Err(BusError::Unavailable(format!(
                    "no Redis Cluster master is known for slot {slot}"
                )));
                continue;
            };
            match groups.iter_mut().find(|(node, _)| node == owner) {
                Some((_, members)) => members.push(i),
                None => groups.push((owner.clone(), vec![i])),
            }
        }
        groups
    }

    fn channel_into(&self, channel: &mut Vec<u8>, message: &Outgoing) {
        channel.clear();
        channel.extend_from_slice(self.prefix.as_bytes());
        channel.extend_from_slice(message.room.as_bytes());
    }

    /// One master's share as one pipeline; one result per message, in order.
    async fn send(&self, node: &NodeAddr, batch: &[Outgoing], share: &[usize]) -> Vec<Sent> {
        let every = |error: BusError| {
            share
                .iter()
                .map(|_| Sent::Done(Err(error.clone())))
                .collect()
        };
        let link = match self.link(node) {
            Ok(link) => link,
            Err(e) => return every(BusError::Unavailable(format!("{node}: {e}"))),
        };
        let mut conn = match link.get().await {
            Ok(conn) => conn,
            Err(e) => return every(BusError::Unavailable(format!("{node}: {e}"))),
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut channel = Vec::with_capacity(128);
        for &i in share {
            self.channel_into(&mut channel, &batch[i]);
            pipe.cmd("SPUBLISH")
                .arg(&channel[..])
                .arg(batch[i].payload.as_str());
        }
        // From here on the share is Redis's: written, or about to be, on a live connection.
        let replies = pipe.query_async::<Vec<redis::RedisResult<i64>>>(&mut conn);
        match tokio::time::timeout(self.timeout, replies).await {
            Ok(Ok(replies)) => {
                let mut sent: Vec<Sent> = replies.into_iter().map(sent).collect();
                // Fewer replies than commands cannot happen; if it did, say so per message.
                sent.resize_with(share.len(), || {
                    Sent::Done(Err(BusError::OutcomeUnknown(format!("{node}: no reply"))))
                });
                sent
            }
            Ok(Err(e)) => {
                link.discard().await;
                every(BusError::OutcomeUnknown(format!("{node}: {e}")))
            }
            Err(_) => every(BusError::OutcomeUnknown(format!(
                "{node}: {}",
                no_answer(self.timeout)
            ))),
        }
    }
}

/// One SPUBLISH reply: a count of receivers (published), `MOVED`, or a refusal.
fn sent(reply: redis::RedisResult<i64>) -> Sent {
    match reply {
        Ok(_) => Sent::Done(Ok(())),
        Err(e) => match e.redirect_node() {
            Some((node, slot))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) =>
            {
                Sent::Moved(slot, node.to_string())
            }
            _ => Sent::Done(Err(BusError::Unavailable(format!("Redis refused: {e}")))),
        },
    }
}

impl Transport for ClusterTransport {
    async fn publish(&self, batch: &[Outgoing], outcomes: &mut Vec<Result<(), BusError>>) {
        outcomes.clear();
        outcomes.resize_with(batch.len(), || Ok(()));
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        for _ in 0..MAX_REDIRECTS {
            let groups = self.group(batch, &todo, outcomes);
            let sends = groups
                .iter()
                .map(|(node, share)| self.send(node, batch, share));
            let results = futures_util::future::join_all(sends).await;
            todo.clear();
            for ((_, share), results) in groups.iter().zip(results) {
                for (&i, result) in share.iter().zip(results) {
                    match result {
                        Sent::Done(outcome) => outcomes[i] = outcome,
                        Sent::Moved(slot, node) => {
                            self.metrics.cluster_redirects.fetch_add(1, Relaxed);
                            self.topology.moved(slot, &node);
                            todo.push(i);
                        }
                    }
                }
            }
            if todo.is_empty() {
                return;
            }
            // Batch order, so that a room's redirected messages keep their order.
            todo.sort_unstable();
        }
        for i in todo {
            outcomes[i] = Err(BusError::Unavailable(format!(
                "still redirected after {MAX_REDIRECTS} tries"
            )));
        }
    }

    /// PINGs every master of the slot map; an empty map (no node answered yet) is down.
    async fn ping(&self) -> Result<(), String> {
        let map = self.topology.current();
        if map.masters().is_empty() {
            return Err("the Redis Cluster's slot map is not known yet".into());
        }
        for node in map.masters() {
            let link = self.link(node)?;
            link.ping().await.map_err(|e| format!("{node}: {e}"))?;
        }
        if map.has_gaps() {
            return Err("some slots have no master".into());
        }
        Ok(())
    }
}
