//! A real Redis Cluster on loopback for the local stack: N masters, each with one replica,
//! made with `redis-cli --cluster create`, and the faults the stack injects into it: a master
//! SIGKILLed (its replica takes over, then it comes back as a replica) and slots migrated
//! between masters (`redis-cli --cluster reshard`).
//!
//! Masters are named by index in the order of their first slot (master 0 serves slot 0), as the
//! cluster is at the moment asked, so a scenario can say "master 1" without knowing node ids.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use redis::Value;
use tokio::process::Child;

use crate::ports::free_cluster_port;
use crate::probe::eventually_ok;
use crate::process::{require, send_signal, stop_child, tied_command};

/// How long a node may take to notice a master is gone before its replica takes over. Short,
/// so faults recover in seconds; long enough that a node busy on 2 shared cores is not taken
/// for dead.
pub const NODE_TIMEOUT_MS: u64 = 2_000;
/// Longest wait for the cluster to agree (creation, failover, a migration).
const CONVERGE_DEADLINE: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(8);

/// One master as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub port: u16,
    pub id: String,
    pub slots: Vec<RangeInclusive<u16>>,
}

impl Master {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|r| r.contains(&slot))
    }

    /// The first `count` slots it serves, lowest first (the ones `reshard` moves).
    fn lowest_slots(&self, count: usize) -> Vec<u16> {
        self.slots
            .iter()
            .flat_map(|r| r.clone())
            .take(count)
            .collect()
    }
}

/// What a master kill did.
#[derive(Debug, Clone)]
pub struct MasterKilled {
    /// The killed master's port (it runs again, as a replica).
    pub port: u16,
    /// The replica that took its slots over.
    pub promoted: u16,
}

pub struct RedisCluster {
    server: PathBuf,
    cli: PathBuf,
    dir: PathBuf,
    /// Every node: the masters at creation first, then their replicas.
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    child: Option<Child>,
}

/// How every redis-server the stack starts runs: nothing saved (room channels hold no data),
/// in the foreground (the stack supervises it), and with room for a pub/sub subscriber that
/// falls behind under a burst (256 MB, or 64 MB for a minute) before Redis cuts it off.
pub const THROWAWAY_REDIS: [&str; 11] = [
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    "--client-output-buffer-limit",
    "pubsub",
    "256mb",
    "64mb",
    "60",
];

impl RedisCluster {
    /// Starts `masters` masters and as many replicas under `dir`, creates the cluster and waits
    /// until every node agrees on it.
    pub async fn start(masters: usize, dir: &Path) -> anyhow::Result<RedisCluster> {
        anyhow::ensure!(
            masters >= 3,
            "a Redis Cluster needs at least 3 masters (asked for {masters})"
        );
        let server = require("redis-server", "redis-server")?;
        let cli = require("redis-cli", "redis-tools")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut cluster = RedisCluster {
            server,
            cli,
            dir: dir.to_path_buf(),
            nodes: Vec::new(),
        };
        // On any failure below, `cluster` is dropped and its nodes are stopped.
        for _ in 0..masters * 2 {
            let port = free_cluster_port()?;
            let child = cluster.spawn(port)?;
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for node in &cluster.nodes {
            wait_for_ping(node.port).await?;
        }
        cluster.create().await?;
        cluster.wait_converged(masters).await?;
        Ok(cluster)
    }

    fn spawn(&self, port: u16) -> anyhow::Result<Child> {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(self.dir.join(format!("{port}.log")))?;
        tied_command(&self.server)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(dir.join("nodes.conf"))
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(THROWAWAY_REDIS)
            // A replica syncs at once (not after the default 5 s), and may take over however
            // long it was cut off from its master: a master killed right after the cluster was
            // made must still fail over (room channels hold no data to lose).
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--cluster-replica-validity-factor", "0"])
            .stdout(std::process::Stdio::from(log.try_clone()?))
            .stderr(std::process::Stdio::from(log))
            .kill_on_drop(false)
            .spawn()
            .with_context(|| format!("cannot start {}", self.server.display()))
    }

    async fn create(&self) -> anyhow::Result<()> {
        let mut command = tied_command(&self.cli);
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port));
        }
        command.args(["--cluster-replicas", "1", "--cluster-yes"]);
        self.run_cli(command, "cluster-create.log").await
    }

    /// Runs a `redis-cli --cluster` command, its output in `log`; fails on a non-zero exit.
    async fn run_cli(&self, mut command: tokio::process::Command, log: &str) -> anyhow::Result<()> {
        let path = self.dir.join(log);
        let output = command
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.cli.display()))?;
        let mut text = output.stdout;
        text.extend_from_slice(&output.stderr);
        std::fs::write(&path, &text)?;
        if !output.status.success() {
            bail!(
                "redis-cli failed ({}); its output is in {}",
                output.status,
                path.display()
            );
        }
        Ok(())
    }

    /// Waits until every running node reports `cluster_state:ok` and the same masters, and
    /// every replica is in sync with its master (so it can take over).
    async fn wait_converged(&self, masters: usize) -> anyhow::Result<()> {
        eventually_ok("the Redis Cluster to agree", CONVERGE_DEADLINE, || async {
            let mut views = Vec::new();
            for port in self.running_ports() {
                let info = query_text(port, &["CLUSTER", "INFO"]).await?;
                anyhow::ensure!(info.contains("cluster_state:ok"), "node {port}: {info}");
                let replication = query_text(port, &["INFO", "replication"]).await?;
                anyhow::ensure!(
                    !replication.contains("role:slave")
                        || replication.contains("master_link_status:up"),
                    "replica {port} not in sync: {replication}"
                );
                views.push(masters_at(port).await?);
            }
            let first = views.first().context("no node runs")?;
            anyhow::ensure!(
                first.len() == masters,
                "{} masters, not {masters}",
                first.len()
            );
            anyhow::ensure!(
                views.iter().all(|v| v == first),
                "nodes disagree: {views:?}"
            );
            Ok(())
        })
        .await
    }

    fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Every node's URL (`redis://127.0.0.1:PORT`), masters and replicas.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The masters, in the order of their first slot, as a running node reports them.
    pub async fn masters(&self) -> anyhow::Result<Vec<Master>> {
        let mut last = None;
        for port in self.running_ports() {
            match masters_at(port).await {
                Ok(masters) => return Ok(masters),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no Redis Cluster node runs")))
    }

    /// SIGKILLs master `index`, waits until its replica serves its slots (the cluster agrees
    /// again), then starts the killed node again: it rejoins as a replica.
    pub async fn kill_master(&mut self, index: usize) -> anyhow::Result<MasterKilled> {
        let masters = self.masters().await?;
        let count = masters.len();
        let victim = masters
            .get(index)
            .with_context(|| format!("master {index} does not exist; there are {count}"))?
            .clone();
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == victim.port)
            .context("the master is not one of the stack's nodes")?;
        let mut child = node.child.take().context("the master is not running")?;
        let pid = child.id().context("the master has exited")?;
        send_signal(pid, libc::SIGKILL);
        let _ = child.wait().await;
        let slot = victim.slots.first().map_or(0, |r| *r.start());
        let promoted = eventually_ok(
            "a replica to take the killed master's slots",
            CONVERGE_DEADLINE,
            || async {
                self.wait_converged(count).await?;
                let masters = self.masters().await?;
                let owner = masters
                    .iter()
                    .find(|m| m.owns(slot))
                    .context("nobody owns the slot")?;
                anyhow::ensure!(owner.port != victim.port, "still the killed master");
                Ok(owner.port)
            },
        )
        .await?;
        let child = self.spawn(victim.port)?;
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == victim.port) {
            node.child = Some(child);
        }
        wait_for_ping(victim.port).await?;
        self.wait_converged(count).await?;
        Ok(MasterKilled {
            port: victim.port,
            promoted,
        })
    }

    /// Moves the lowest `count` slots of master `from` to master `to` with `redis-cli --cluster
    /// reshard`, waits until every node agrees, and returns the slots moved.
    pub async fn migrate_slots(
        &self,
        from: usize,
        to: usize,
        count: usize,
    ) -> anyhow::Result<Vec<u16>> {
        let masters = self.masters().await?;
        let named = |index: usize| {
            masters.get(index).with_context(|| {
                format!("master {index} does not exist; there are {}", masters.len())
            })
        };
        let (source, target) = (named(from)?, named(to)?);
        anyhow::ensure!(
            source.port != target.port,
            "migrate_slots: from and to are the same master"
        );
        let slots = source.lowest_slots(count);
        anyhow::ensure!(
            slots.len() == count,
            "master {from} serves {} slots, fewer than {count}",
            slots.len()
        );
        let mut command = tied_command(&self.cli);
        command
            .args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{}", source.port))
            .args(["--cluster-from", &source.id, "--cluster-to", &target.id])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"]);
        self.run_cli(
            command,
            &format!("reshard-{}.log", crate::ports::unique_suffix()),
        )
        .await?;
        let target_port = target.port;
        eventually_ok(
            "every node to see the migrated slots",
            CONVERGE_DEADLINE,
            || async {
                self.wait_converged(masters.len()).await?;
                let now = self.masters().await?;
                let owner = now
                    .iter()
                    .find(|m| m.port == target_port)
                    .context("target gone")?;
                anyhow::ensure!(slots.iter().all(|s| owner.owns(*s)), "not moved yet");
                Ok(())
            },
        )
        .await?;
        Ok(slots)
    }

    /// Stops every node.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                stop_child(&mut child, STOP_GRACE).await;
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Some(pid) = node.child.as_ref().and_then(Child::id) {
                send_signal(pid, libc::SIGTERM);
            }
        }
    }
}

/// The masters as node `port` sees them, in the order of their first slot.
async fn masters_at(port: u16) -> anyhow::Result<Vec<Master>> {
    let reply = query(port, &["CLUSTER", "SLOTS"]).await?;
    let Value::Array(ranges) = reply else {
        bail!("CLUSTER SLOTS answered {reply:?}");
    };
    let mut masters: Vec<Master> = Vec::new();
    for range in &ranges {
        let (slots, port, id) = slot_range(range).with_context(|| format!("{range:?}"))?;
        match masters.iter_mut().find(|m| m.id == id) {
            Some(master) => master.slots.push(slots),
            None => masters.push(Master {
                port,
                id,
                slots: vec![slots],
            }),
        }
    }
    for master in &mut masters {
        master.slots.sort_by_key(|r| *r.start());
    }
    masters.sort_by_key(|m| m.slots.first().map_or(u16::MAX, |r| *r.start()));
    Ok(masters)
}

fn slot_range(range: &Value) -> Option<(RangeInclusive<u16>, u16, String)> {
    let Value::Array(parts) = range else {
        return None;
    };
    let [Value::Int(start), Value::Int(end), Value::Array(master), ..] = &parts[..] else {
        return None;
    };
    let [_, Value::Int(port), Value::BulkString(id), ..] = &master[..] else {
        return None;
    };
    Some((
        u16::try_from(*start).ok()?..=u16::try_from(*end).ok()?,
        u16::try_from(*port).ok()?,
        String::from_utf8_lossy(id).into_owned(),
    ))
}

/// One command on a short-lived connection to node `port`, within 2 s.
pub async fn query(port: u16, args: &[&str]) -> anyhow::Result<Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let timeout = Duration::from_secs(2);
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query_async::<Value>(&mut conn).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.with_context(|| format!("node {port}: {}", args.join(" "))),
        Err(_) => bail!(
            "node {port}: no answer to {} within {timeout:?}",
            args.join(" ")
        ),
    }
}

/// A command whose reply is text (`CLUSTER INFO`).
async fn query_text(port: u16, args: &[&str]) -> anyhow::Result<String> {
    match query(port, args).await? {
        Value::BulkString(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Value::VerbatimString { text, .. } => Ok(text),
        Value::SimpleString(text) => Ok(text),
        other => bail!("node {port}: {} answered {other:?}", args.join(" ")),
    }
}

async fn wait_for_ping(port: u16) -> anyhow::Result<()> {
    eventually_ok(
        "redis-server to answer PING",
        CONVERGE_DEADLINE,
        || async move { query(port, &["PING"]).await.map(drop) },
    )
    .await
    .with_context(|| format!("redis-server on port {port}"))
}
