//! Which master owns each slot, as the cluster last said (`CLUSTER SLOTS`), corrected at once by
//! the `MOVED` replies the bus meets between two refreshes.
//!
//! Both halves of the cluster bus route by it: publishes go to the owner of their channel's
//! slot, subscriptions are placed there, and the subscriptions' follower refreshes it to notice
//! slots that moved and masters that failed over.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::slot::SLOTS;
use crate::bus::link::{connection_info, no_answer};

/// A node's address as the cluster names it: `host:port`.
pub type NodeAddr = Arc<str>;

/// Slot owners at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// Per slot, an index into `masters` ([`NO_OWNER`]: nobody serves it).
    owners: Box<[u16]>,
    masters: Vec<NodeAddr>,
}

const NO_OWNER: u16 = u16::MAX;

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap {
            owners: vec![NO_OWNER; SLOTS].into_boxed_slice(),
            masters: Vec::new(),
        }
    }
}

impl SlotMap {
    /// The master serving `slot`, if any is known.
    pub fn owner(&self, slot: u16) -> Option<&NodeAddr> {
        let index = *self.owners.get(usize::from(slot))?;
        self.masters.get(usize::from(index))
    }

    /// Every master that serves at least one slot, in the order of their first slot.
    pub fn masters(&self) -> &[NodeAddr] {
        &self.masters
    }

    /// Whether some slot has no master.
    pub fn has_gaps(&self) -> bool {
        self.owners.contains(&NO_OWNER)
    }

    /// Reads a `CLUSTER SLOTS` reply from node `asked` (whose host stands in where the reply
    /// leaves a host empty, as Redis does for a node that does not know its own address).
    pub fn from_cluster_slots(reply: &Value, asked: &str) -> Result<SlotMap, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS answered {reply:?}"));
        };
        let mut map = SlotMap::default();
        let mut sorted: Vec<(u16, u16, NodeAddr)> = ranges
            .iter()
            .map(|range| slot_range(range, asked))
            .collect::<Result<_, _>>()?;
        sorted.sort_by_key(|(start, _, _)| *start);
        for (start, end, node) in sorted {
            let index = match map.masters.iter().position(|m| *m == node) {
                Some(index) => index,
                None => {
                    map.masters.push(node);
                    map.masters.len() - 1
                }
            };
            let index = u16::try_from(index).map_err(|_| "too many masters".to_string())?;
            for slot in usize::from(start)..=usize::from(end) {
                map.owners[slot] = index;
            }
        }
        Ok(map)
    }

    /// This map with `slot` served by `node` (a `MOVED` reply's correction).
    fn with_owner(&self, slot: u16, node: &str) -> SlotMap {
        let mut map = self.clone();
        let index = match map.masters.iter().position(|m| &**m == node) {
            Some(index) => index,
            None => {
                map.masters.push(node.into());
                map.masters.len() - 1
            }
        };
        if let (Some(owner), Ok(index)) =
            (map.owners.get_mut(usize::from(slot)), u16::try_from(index))
        {
            *owner = index;
        }
        map
    }
}

/// One `[start, end, [host, port, id, ...], replicas...]` entry.
fn slot_range(range: &Value, asked: &str) -> Result<(u16, u16, NodeAddr), String> {
    let bad = || format!("unexpected CLUSTER SLOTS entry {range:?}");
    let Value::Array(parts) = range else {
        return Err(bad());
    };
    let [Value::Int(start), Value::Int(end), Value::Array(master), ..] = &parts[..] else {
        return Err(bad());
    };
    let [host, Value::Int(port), ..] = &master[..] else {
        return Err(bad());
    };
    let host = match host {
        Value::BulkString(host) => String::from_utf8_lossy(host).into_owned(),
        Value::SimpleString(host) => host.clone(),
        _ => return Err(bad()),
    };
    let host = if host.is_empty() || host == "?" {
        host_of(asked).to_string()
    } else {
        host
    };
    let (Ok(start), Ok(end), Ok(port)) = (
        u16::try_from(*start),
        u16::try_from(*end),
        u16::try_from(*port),
    ) else {
        return Err(bad());
    };
    if start > end || usize::from(end) >= SLOTS {
        return Err(bad());
    }
    Ok((start, end, node_addr(&host, port)))
}

/// `host:port`; an IPv6 host stays bare (split at the last colon, see [`host_of`]).
pub fn node_addr(host: &str, port: u16) -> NodeAddr {
    format!("{host}:{port}").into()
}

/// The host part of `host:port`.
pub fn host_of(node: &str) -> &str {
    node.rsplit_once(':').map_or(node, |(host, _)| host)
}

/// The URL of a node, for the redis crate.
pub fn node_url(node: &str) -> String {
    match node.rsplit_once(':') {
        Some((host, port)) if host.contains(':') => format!("redis://[{host}]:{port}"),
        _ => format!("redis://{node}"),
    }
}

/// The shared, refreshable slot map.
pub struct Topology {
    map: RwLock<Arc<SlotMap>>,
    /// The nodes named on the command line: asked when no known master answers.
    seeds: Vec<NodeAddr>,
    timeout: Duration,
    /// The connection `CLUSTER SLOTS` last worked on, reused while it works.
    asking: tokio::sync::Mutex<Option<(NodeAddr, MultiplexedConnection)>>,
}

impl Topology {
    pub fn new(seeds: Vec<NodeAddr>, timeout: Duration) -> Self {
        Topology {
            map: RwLock::new(Arc::new(SlotMap::default())),
            seeds,
            timeout,
            asking: tokio::sync::Mutex::new(None),
        }
    }

    /// The slot map as last known (empty before the first refresh).
    pub fn current(&self) -> Arc<SlotMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies a `MOVED slot node` reply at once; the next refresh confirms the rest.
    pub fn moved(&self, slot: u16, node: &str) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.owner(slot).map(|o| &**o) != Some(node) {
            *map = Arc::new(map.with_owner(slot, node));
        }
    }

    /// Asks the cluster for its slots: the node that answered last time, then every known
    /// master, then the seeds. True when the map changed.
    pub async fn refresh(&self) -> Result<bool, String> {
        let mut asking = self.asking.lock().await;
        let mut last_error = String::from("no node to ask");
        if let Some((node, conn)) = asking.as_mut() {
            match self.ask(conn, node).await {
                Ok(map) => return Ok(self.replace(map)),
                Err(e) => last_error = e,
            }
            *asking = None;
        }
        let mut candidates: Vec<NodeAddr> = self.current().masters().to_vec();
        candidates.extend(self.seeds.iter().cloned());
        let mut tried = HashSet::new();
        for node in candidates {
            if !tried.insert(node.clone()) {
                continue;
            }
            let mut conn = match self.connect(&node).await {
                Ok(conn) => conn,
                Err(e) => {
                    last_error = format!("{node}: {e}");
                    continue;
                }
            };
            match self.ask(&mut conn, &node).await {
                Ok(map) => {
                    *asking = Some((node, conn));
                    return Ok(self.replace(map));
                }
                Err(e) => last_error = e,
            }
        }
        Err(format!(
            "no cluster node answered CLUSTER SLOTS (last: {last_error})"
        ))
    }

    async fn connect(&self, node: &str) -> Result<MultiplexedConnection, String> {
        let info = connection_info(&node_url(node)).map_err(|e| e.to_string())?;
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        match tokio::time::timeout(
            self.timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("cannot connect within {:?}", self.timeout)),
        }
    }

    async fn ask(&self, conn: &mut MultiplexedConnection, node: &str) -> Result<SlotMap, String> {
        let mut command = redis::cmd("CLUSTER");
        command.arg("SLOTS");
        let reply =
            match tokio::time::timeout(self.timeout, command.query_async::<Value>(conn)).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => return Err(format!("{node}: {e}")),
                Err(_) => return Err(format!("{node}: {}", no_answer(self.timeout))),
            };
        let map = SlotMap::from_cluster_slots(&reply, node).map_err(|e| format!("{node}: {e}"))?;
        if map.masters().is_empty() {
            return Err(format!("{node}: serves no slots (not a cluster yet?)"));
        }
        Ok(map)
    }

    fn replace(&self, map: SlotMap) -> bool {
        let mut current = self.map.write().unwrap_or_else(|e| e.into_inner());
        let changed = **current != map;
        if changed {
            *current = Arc::new(map);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, master: Value) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            master,
            node("127.0.0.1", 9),
        ])
    }

    #[test]
    fn cluster_slots_give_each_slot_its_master() {
        let reply = Value::Array(vec![
            range(5461, 16383, node("127.0.0.1", 7002)),
            range(0, 5460, node("", 7001)),
        ]);
        let map = SlotMap::from_cluster_slots(&reply, "10.0.0.9:7001").expect("valid");
        let masters: Vec<&str> = map.masters().iter().map(|m| &**m).collect();
        assert_eq!(masters, ["10.0.0.9:7001", "127.0.0.1:7002"]);
        assert_eq!(map.owner(0).map(|n| &**n), Some("10.0.0.9:7001"));
        assert_eq!(map.owner(5461).map(|n| &**n), Some("127.0.0.1:7002"));
        assert!(!map.has_gaps());
        let moved = map.with_owner(3, "127.0.0.1:7002");
        assert_eq!(moved.owner(3).map(|n| &**n), Some("127.0.0.1:7002"));
        assert_eq!(moved.owner(4).map(|n| &**n), Some("10.0.0.9:7001"));
    }

    #[test]
    fn a_partial_or_odd_reply_is_refused_or_left_with_gaps() {
        let partial = Value::Array(vec![range(0, 99, node("h", 1))]);
        let map = SlotMap::from_cluster_slots(&partial, "h:1").expect("valid");
        assert!(map.has_gaps());
        assert_eq!(map.owner(100), None);
        for bad in [
            Value::Nil,
            Value::Array(vec![range(10, 5, node("h", 1))]),
            Value::Array(vec![range(0, 16384, node("h", 1))]),
            Value::Array(vec![Value::Array(vec![Value::Int(0)])]),
        ] {
            assert!(SlotMap::from_cluster_slots(&bad, "h:1").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_nodes_get_brackets_in_urls() {
        assert_eq!(node_url("127.0.0.1:7000"), "redis://127.0.0.1:7000");
        assert_eq!(node_url("::1:7000"), "redis://[::1]:7000");
        assert_eq!(host_of("::1:7000"), "::1");
    }
}
