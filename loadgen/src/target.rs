//! The system under test: a URL given by the user, or the project's local stack that loadgen
//! starts itself, logs into the run folder, injects faults into, and always tears down.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use chat_server::metrics::StatsSnapshot;
use chat_server::stack::{RedisClusterSpec, Stack, StackConfig};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::clock::now_us;
use crate::results::TargetKind;
use crate::scenario::{Fault, FaultAction, LocalStack};

/// A running target; `Local` and `Embedded` are ours, stopped in [`RunningTarget::shutdown`].
pub enum RunningTarget {
    /// A server loadgen did not start; `workers` are its chat workers when the cluster master
    /// named them (`--admin`), else none.
    Url {
        url: String,
        workers: Vec<SocketAddr>,
    },
    Local(Box<Mutex<Stack>>),
    /// One in-process worker (`--bus local`): the fallback without redis-server and nginx.
    Embedded {
        url: String,
        stop: tokio::sync::oneshot::Sender<()>,
        serving: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
}

/// How a `local` target runs on this machine.
#[derive(Debug, PartialEq, Eq)]
pub enum LocalMode {
    /// Redis, the cluster and nginx.
    FullStack,
    /// One embedded worker, because these programs are missing.
    Embedded { missing: String },
}

/// The full stack when redis-server and nginx are installed, else the embedded worker; but
/// never the embedded worker for a scenario with faults: it has no worker to kill or pause and
/// no Redis to stop, so such a run would pass without its faults ever happening. Nor for one
/// that asks for a Redis Cluster, which would then not be measured at all. Both are setup
/// errors (exit 2), decided here before anything starts, naming what to install.
/// `missing` is [`chat_server::stack::missing_parts`]: Debian package names.
pub fn local_mode(
    missing: Option<String>,
    local: &LocalStack,
    faults: &[Fault],
) -> anyhow::Result<LocalMode> {
    let Some(missing) = missing else {
        return Ok(LocalMode::FullStack);
    };
    let shape = if local.redis_cluster > 0 {
        Some((
            format!(
                "runs its stack on a Redis Cluster (target.local.redis_cluster = {})",
                local.redis_cluster
            ),
            "measure no cluster at all",
        ))
    } else if local.namespaces {
        Some((
            "puts its workers and Redis on hosts of their own (target.local.namespaces)".into(),
            "cut no host off",
        ))
    } else {
        None
    };
    if let Some((asks, instead)) = shape {
        bail!(
            "the scenario {asks}, and {missing} is not installed here: without it loadgen would \
             run against one embedded worker and {instead}. Install: apt-get install -y {missing}"
        );
    }
    if faults.is_empty() {
        return Ok(LocalMode::Embedded { missing });
    }
    let programs: Vec<&str> = missing.split_whitespace().collect();
    let verb = if programs.len() > 1 { "are" } else { "is" };
    bail!(
        "the faults ({}) need the local stack loadgen starts (Redis, {} chat workers, nginx), \
         and {} {verb} not installed here. Without them loadgen would run against one embedded \
         worker, which has no worker to kill or pause and no Redis to stop: the faults would \
         not happen. Install: apt-get install -y {missing}",
        describe_faults(faults),
        local.workers,
        programs.join(" and ")
    )
}

/// `kill_worker 1 at 10s, stop_redis for 3s at 20s`: the faults as a person wrote them.
fn describe_faults(faults: &[Fault]) -> String {
    faults
        .iter()
        .map(|f| format!("{} at {:?}", describe_action(f.action), f.at))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_action(action: FaultAction) -> String {
    match action {
        FaultAction::KillWorker(worker) => format!("kill_worker {worker}"),
        FaultAction::StopRedis(down) => format!("stop_redis for {down:?}"),
        FaultAction::PauseWorker { worker, duration } => {
            format!("pause_worker {worker} for {duration:?}")
        }
        FaultAction::KillRedisMaster(master) => format!("kill_redis_master {master}"),
        FaultAction::MigrateSlots { from, to, slots } => {
            format!("migrate_slots {slots} from master {from} to master {to}")
        }
        FaultAction::Partition {
            worker,
            from,
            duration,
        } => format!(
            "partition worker {worker} from {} for {duration:?}",
            from.label()
        ),
    }
}

impl RunningTarget {
    /// Starts the local stack, its logs in `run_dir/stack`.
    pub async fn start_local(local: &LocalStack, run_dir: &Path) -> anyhow::Result<RunningTarget> {
        let config = StackConfig {
            workers: local.workers as usize,
            listen: "127.0.0.1:0".parse()?,
            redis: None,
            redis_cluster: (local.redis_cluster > 0).then_some(RedisClusterSpec::Start {
                masters: local.redis_cluster as usize,
            }),
            namespaces: local.namespaces,
            nginx_workers: local.nginx_workers as usize,
            // The default per-address limit (1,000) is far above this generator's share per
            // address (members spread over 250 loopback addresses: 120 each at 30,000).
            nginx_limit_conn: chat_server::nginx::DEFAULT_LIMIT_CONN_PER_ADDRESS,
            run_dir: Some(run_dir.join("stack")),
            worker_args: Vec::new(),
            server_exe: None,
            server_prefix: Vec::new(),
        };
        let stack = Stack::start(config)
            .await
            .context("cannot start the local stack")?;
        Ok(RunningTarget::Local(Box::new(Mutex::new(stack))))
    }

    /// Starts one worker inside this process, on a free loopback port, without Redis.
    pub async fn start_embedded() -> anyhow::Result<RunningTarget> {
        let config = chat_server::config::WorkerConfig {
            listen: "127.0.0.1:0".parse()?,
            bus: chat_server::config::BusKind::Local,
            ..Default::default()
        };
        let worker = chat_server::worker::Worker::bind(config).await?;
        let url = format!("http://{}", worker.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(worker.serve(async move {
            let _ = stopped.await;
        }));
        Ok(RunningTarget::Embedded { url, stop, serving })
    }

    /// What kind of target this is, for results.json.
    pub fn kind(&self) -> TargetKind {
        match self {
            RunningTarget::Url { .. } => TargetKind::Url,
            RunningTarget::Local(_) => TargetKind::LocalStack,
            RunningTarget::Embedded { .. } => TargetKind::Embedded,
        }
    }

    pub async fn url(&self) -> String {
        match self {
            RunningTarget::Url { url, .. } | RunningTarget::Embedded { url, .. } => url.clone(),
            RunningTarget::Local(stack) => stack.lock().await.info().url.clone(),
        }
    }

    /// The chat workers' addresses: the local stack's, or those a URL target's cluster master
    /// named (`--admin`); none for the embedded worker.
    pub async fn worker_addrs(&self) -> Vec<SocketAddr> {
        match self {
            RunningTarget::Local(stack) => stack.lock().await.info().workers.clone(),
            RunningTarget::Url { workers, .. } => workers.clone(),
            RunningTarget::Embedded { .. } => Vec::new(),
        }
    }

    /// Per-worker counters, when the workers are known ([`RunningTarget::worker_addrs`]).
    pub async fn worker_stats(&self) -> Vec<StatsSnapshot> {
        fetch_worker_stats(&self.worker_addrs().await).await
    }

    pub async fn shutdown(self) {
        match self {
            RunningTarget::Local(stack) => stack.into_inner().stop().await,
            RunningTarget::Embedded { stop, serving, .. } => {
                let _ = stop.send(());
                let _ = serving.await;
            }
            RunningTarget::Url { .. } => {}
        }
    }
}

/// Each worker's `/stats`, by index; a worker that does not answer gets zeros, so indices stay
/// aligned with the workers.
pub async fn fetch_worker_stats(workers: &[SocketAddr]) -> Vec<StatsSnapshot> {
    let mut stats = Vec::with_capacity(workers.len());
    for worker in workers {
        let snapshot =
            match chat_server::probe::http_get(*worker, "/stats", Duration::from_secs(2)).await {
                Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
                _ => StatsSnapshot::default(),
            };
        stats.push(snapshot);
    }
    stats
}

/// A fault as it was injected: when, and whether the injection worked. Judged from the
/// timeline into results.json's `FaultResult` (`judging.rs`).
#[derive(Debug, Clone, Serialize)]
pub struct InjectedFault {
    pub at_s: f64,
    pub action: String,
    pub injected_us: u64,
    pub ended_us: Option<u64>,
    pub error: Option<String>,
}

/// Injects each fault at its time (counted from `start_us`); the future returns what
/// happened. Faults against a target loadgen cannot break (a URL, the embedded worker) are an
/// error, returned before anything is injected: a run must never go on without its faults.
/// (`loadgen run` refuses such scenarios before it starts anything; this is the last guard.)
pub fn inject_faults<'a>(
    target: &'a RunningTarget,
    faults: &'a [Fault],
    start_us: u64,
) -> anyhow::Result<impl Future<Output = Vec<InjectedFault>> + 'a> {
    let stack = match target {
        RunningTarget::Local(stack) => Some(stack),
        _ if faults.is_empty() => None,
        other => bail!(
            "faults ({}) need the local stack loadgen starts, and this run's target is the {}",
            describe_faults(faults),
            other.kind().label()
        ),
    };
    Ok(async move {
        let Some(stack) = stack else {
            return Vec::new();
        };
        let mut records = Vec::new();
        let mut sorted: Vec<&Fault> = faults.iter().collect();
        sorted.sort_by_key(|f| f.at);
        for fault in sorted {
            let due = start_us + fault.at.as_micros() as u64;
            tokio::time::sleep_until(crate::clock::instant_at(due).into()).await;
            let injected_us = now_us();
            let (action, result) = (
                describe_action(fault.action),
                apply(stack, fault.action).await,
            );
            tracing::info!("fault at {:?}: {action}", fault.at);
            records.push(InjectedFault {
                at_s: fault.at.as_secs_f64(),
                action,
                injected_us,
                ended_us: Some(now_us()),
                error: result.err().map(|e| format!("{e:#}")),
            });
        }
        records
    })
}

async fn apply(stack: &Mutex<Stack>, action: FaultAction) -> anyhow::Result<()> {
    match action {
        FaultAction::KillWorker(worker) => stack
            .lock()
            .await
            .kill_worker(worker as usize)
            .await
            .map(drop),
        FaultAction::StopRedis(down) => {
            stack.lock().await.stop_redis().await?;
            tokio::time::sleep(down).await;
            stack.lock().await.restart_redis().await
        }
        // The cluster, not the whole stack, stays locked through a failover or a migration.
        FaultAction::KillRedisMaster(master) => {
            let cluster = stack.lock().await.redis_cluster()?;
            let mut cluster = cluster.lock().await;
            cluster.kill_master(master as usize).await.map(drop)
        }
        FaultAction::MigrateSlots { from, to, slots } => {
            let cluster = stack.lock().await.redis_cluster()?;
            let cluster = cluster.lock().await;
            let moved = cluster.migrate_slots(from as usize, to as usize, slots as usize);
            moved.await.map(drop)
        }
        FaultAction::Partition {
            worker,
            from,
            duration,
        } => {
            stack.lock().await.partition_worker(worker as usize, from)?;
            tokio::time::sleep(duration).await;
            stack.lock().await.heal_worker(worker as usize, from)
        }
        FaultAction::PauseWorker { worker, duration } => {
            stack.lock().await.pause_worker(worker as usize).await?;
            tokio::time::sleep(duration).await;
            stack
                .lock()
                .await
                .resume_worker(worker as usize)
                .await
                .map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: LocalStack = LocalStack {
        workers: 2,
        nginx_workers: 2,
        redis_cluster: 0,
        namespaces: false,
    };

    fn kill(worker: u32, at_s: u64) -> Fault {
        Fault {
            at: Duration::from_secs(at_s),
            action: FaultAction::KillWorker(worker),
        }
    }

    #[test]
    fn falls_back_to_the_embedded_worker_only_when_something_is_missing() {
        assert_eq!(local_mode(None, &STACK, &[]).unwrap(), LocalMode::FullStack);
        assert_eq!(
            local_mode(None, &STACK, &[kill(1, 10)]).unwrap(),
            LocalMode::FullStack
        );
        assert_eq!(
            local_mode(Some("nginx".into()), &STACK, &[]).unwrap(),
            LocalMode::Embedded {
                missing: "nginx".into()
            }
        );
    }

    #[test]
    fn faults_without_the_full_stack_are_refused_naming_what_to_install() {
        let pause = Fault {
            at: Duration::from_secs(20),
            action: FaultAction::PauseWorker {
                worker: 0,
                duration: Duration::from_millis(500),
            },
        };
        let error = local_mode(
            Some("nginx redis-server".into()),
            &STACK,
            &[kill(1, 10), pause],
        )
        .expect_err("faults need the full stack")
        .to_string();
        for part in [
            "kill_worker 1 at 10s, pause_worker 0 for 500ms at 20s",
            "nginx and redis-server are not installed",
            "apt-get install -y nginx redis-server",
        ] {
            assert!(error.contains(part), "{part:?} not in: {error}");
        }
    }

    #[test]
    fn a_redis_cluster_scenario_never_falls_back_to_the_embedded_worker() {
        let cluster = LocalStack {
            redis_cluster: 3,
            ..STACK
        };
        assert_eq!(
            local_mode(None, &cluster, &[]).unwrap(),
            LocalMode::FullStack
        );
        let error = local_mode(Some("redis-tools".into()), &cluster, &[])
            .expect_err("a Redis Cluster scenario needs its cluster")
            .to_string();
        for part in ["redis_cluster = 3", "apt-get install -y redis-tools"] {
            assert!(error.contains(part), "{part:?} not in: {error}");
        }
    }

    #[tokio::test]
    async fn faults_against_a_target_that_cannot_take_them_are_an_error() {
        let url = RunningTarget::Url {
            url: "http://127.0.0.1:9".into(),
            workers: Vec::new(),
        };
        let error = inject_faults(&url, &[kill(0, 1)], now_us())
            .err()
            .expect("no way to inject")
            .to_string();
        assert!(
            error.contains("kill_worker 0 at 1s") && error.contains("target is the url"),
            "{error}"
        );
        // Nothing to inject: nothing to refuse.
        let none = inject_faults(&url, &[], now_us()).expect("no faults").await;
        assert!(none.is_empty());
    }
}
