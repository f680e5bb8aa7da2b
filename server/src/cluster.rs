//! The cluster master: starts N workers of this same binary, restarts the ones that die, knows
//! the live connection total, and serves it on an admin address.
//!
//! The master runs on a single-threaded runtime: it is light, and its children's death signal
//! (see `process`) is tied to the thread that forked them, which must live as long as it does.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metrics::StatsSnapshot;
use crate::probe::http_get;
use crate::process::{self_command, self_command_in_netns, stop_child};

#[derive(Debug, Clone, Args)]
pub struct ClusterConfig {
    /// Number of workers (default: one per CPU, as the original design).
    #[arg(long, env = "CHAT_WORKERS")]
    pub workers: Option<usize>,

    /// Port of the first worker; worker i listens on base-port + i.
    #[arg(long, env = "CHAT_BASE_PORT", default_value_t = 6001)]
    pub base_port: u16,

    /// Address the workers listen on (0.0.0.0 inside a container).
    #[arg(long, env = "CHAT_WORKER_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Redis URL shared by all workers.
    #[arg(
        long,
        env = "CHAT_REDIS_URL",
        required_unless_present = "redis_cluster"
    )]
    pub redis: Option<String>,

    /// Redis Cluster nodes shared by all workers, comma separated (`redis://host:port,...`):
    /// the workers use sharded pub/sub, one channel per room (see `worker --redis-cluster`).
    #[arg(
        long,
        env = "CHAT_REDIS_CLUSTER",
        value_delimiter = ',',
        value_name = "URLS",
        conflicts_with = "redis"
    )]
    pub redis_cluster: Vec<String>,

    /// Run worker i inside network namespace NS and listen on ADDR, its address there
    /// (`NS@ADDR`, comma separated, one per worker; instead of --host). The local stack's
    /// `--namespaces` uses it, so one worker can be cut from Redis or nginx. Needs root.
    #[arg(long, value_delimiter = ',', value_name = "NS@ADDR", value_parser = parse_worker_netns)]
    pub worker_netns: Vec<WorkerNetns>,

    /// Serve per-worker status as JSON (`/workers`) and Prometheus text (`/metrics`) here.
    #[arg(long, env = "CHAT_ADMIN")]
    pub admin: Option<SocketAddr>,

    /// Seconds between log lines with the live connection total.
    #[arg(long, env = "CHAT_STATUS_INTERVAL", default_value_t = 10)]
    pub status_interval: u64,

    /// Extra arguments for every worker, after `--`, e.g. `-- --rate-per-sec 100`.
    #[arg(last = true)]
    pub worker_args: Vec<String>,
}

impl ClusterConfig {
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
        })
    }

    /// The address worker `index` listens on.
    fn worker_host(&self, index: usize) -> IpAddr {
        self.worker_netns
            .get(index)
            .map_or(self.host, |netns| netns.address)
    }
}

/// A worker's own network namespace and its address there (`--worker-netns NS@ADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerNetns {
    pub netns: String,
    pub address: IpAddr,
}

fn parse_worker_netns(text: &str) -> Result<WorkerNetns, String> {
    let (netns, address) = text
        .split_once('@')
        .ok_or_else(|| format!("`{text}` is not NS@ADDR"))?;
    let address = address
        .parse()
        .map_err(|_| format!("`{address}` in `{text}` is not an IP address"))?;
    if netns.is_empty()
        || !netns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("`{netns}` is not a network namespace name"));
    }
    Ok(WorkerNetns {
        netns: netns.to_string(),
        address,
    })
}

/// What the master knows about one worker; served on the admin address.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WorkerStatus {
    pub index: usize,
    pub port: u16,
    pub pid: Option<u32>,
    pub up: bool,
    pub restarts: u64,
    pub connections: i64,
    pub members: i64,
    pub delivered: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ClusterStatus {
    pub connections: i64,
    pub members: i64,
    pub workers: Vec<WorkerStatus>,
}

type Shared = Arc<Mutex<Vec<WorkerStatus>>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Vec<WorkerStatus>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the master until SIGTERM/SIGINT, then stops every worker.
pub fn run(config: ClusterConfig) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_master(config))
}

async fn run_master(config: ClusterConfig) -> anyhow::Result<()> {
    let count = config.worker_count();
    anyhow::ensure!(count >= 1, "--workers must be at least 1");
    anyhow::ensure!(
        config.worker_netns.is_empty() || config.worker_netns.len() == count,
        "--worker-netns names {} namespaces for {count} workers",
        config.worker_netns.len()
    );
    anyhow::ensure!(
        (config.base_port as usize) + count <= 65_536,
        "--base-port {} leaves no room for {count} workers",
        config.base_port
    );
    let shared: Shared = Arc::new(Mutex::new(
        (0..count)
            .map(|index| WorkerStatus {
                index,
                port: config.base_port + index as u16,
                ..Default::default()
            })
            .collect(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(admin) = config.admin {
        let listener = tokio::net::TcpListener::bind(admin)
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve admin on {admin}: {e}"))?;
        tracing::info!("admin on http://{}", listener.local_addr()?);
        let app = Router::new()
            .route("/workers", get(admin_json))
            .route("/metrics", get(admin_metrics))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let supervisors: Vec<_> = (0..count)
        .map(|index| {
            tokio::spawn(supervise(
                config.clone(),
                index,
                shared.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    tokio::spawn(scrape_stats(config.clone(), shared.clone()));
    tracing::info!(
        workers = count,
        "master pid {} started workers on ports {}..={}",
        std::process::id(),
        config.base_port,
        config.base_port as usize + count - 1
    );
    crate::signals::terminated().await;
    tracing::info!("stopping workers");
    let _ = stop_tx.send(true);
    for supervisor in supervisors {
        let _ = supervisor.await;
    }
    tracing::info!("all workers stopped");
    Ok(())
}

/// Keeps worker `index` running: restarts it with exponential backoff when it dies.
async fn supervise(
    config: ClusterConfig,
    index: usize,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let port = config.base_port + index as u16;
    let mut backoff = Backoff::default();
    loop {
        let started = tokio::time::Instant::now();
        let mut child = match worker_command(&config, index, port).spawn() {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(worker = index, "cannot start worker: {e}");
                if wait_or_stop(&mut stop, backoff.next(started.elapsed())).await {
                    return;
                }
                continue;
            }
        };
        set_status(&shared, index, |w| {
            w.pid = child.id();
            w.up = true;
        });
        let exit = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(status) = exit else {
            stop_child(&mut child, Duration::from_secs(6)).await;
            set_status(&shared, index, |w| w.up = false);
            return;
        };
        let delay = backoff.next(started.elapsed());
        set_status(&shared, index, |w| {
            w.up = false;
            w.pid = None;
            w.connections = 0;
            w.members = 0;
            w.restarts += 1;
        });
        tracing::warn!(
            worker = index,
            port,
            "worker exited ({status:?}); restarting in {delay:?}"
        );
        if wait_or_stop(&mut stop, delay).await {
            return;
        }
    }
}

/// Sleeps for `delay`; true if the master is stopping.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    let slept = tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    !slept || *stop.borrow()
}

fn worker_command(config: &ClusterConfig, index: usize, port: u16) -> tokio::process::Command {
    let mut command = match config.worker_netns.get(index) {
        Some(host) => self_command_in_netns(&host.netns),
        None => self_command(),
    };
    command
        .arg("worker")
        .arg("--listen")
        .arg(SocketAddr::new(config.worker_host(index), port).to_string());
    match &config.redis {
        Some(url) => command.arg("--redis").arg(url).args(["--bus", "redis"]),
        None => command
            .arg("--redis-cluster")
            .arg(config.redis_cluster.join(","))
            .args(["--bus", "redis-cluster"]),
    };
    command
        .arg("--worker-id")
        .arg(index.to_string())
        .args(&config.worker_args);
    command
}

fn set_status(shared: &Shared, index: usize, update: impl FnOnce(&mut WorkerStatus)) {
    if let Some(worker) = lock(shared).get_mut(index) {
        update(worker);
    }
}

/// Exponential restart delay; a worker that ran for a while starts from the bottom again.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    const STABLE: Duration = Duration::from_secs(30);

    fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Self::STABLE {
            self.failures = 0;
        }
        let delay = Self::FIRST.saturating_mul(1 << self.failures.min(10));
        self.failures += 1;
        delay.min(Self::MAX)
    }
}

/// Scrapes every worker's `/stats` once a second; logs the total now and then.
async fn scrape_stats(config: ClusterConfig, shared: Shared) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let log_every = config.status_interval.max(1);
    let mut seconds = 0u64;
    let mut last_logged = None;
    loop {
        tick.tick().await;
        let targets: Vec<(usize, u16)> = lock(&shared)
            .iter()
            .filter(|w| w.up)
            .map(|w| (w.index, w.port))
            .collect();
        for (index, port) in targets {
            let addr = SocketAddr::new(loopback_for(config.worker_host(index)), port);
            if let Ok((200, body)) = http_get(addr, "/stats", Duration::from_millis(500)).await
                && let Ok(stats) = serde_json::from_str::<StatsSnapshot>(&body)
            {
                set_status(&shared, index, |w| {
                    w.connections = stats.sockets;
                    w.members = stats.members;
                    w.delivered = stats.delivered;
                });
            }
        }
        seconds += 1;
        let total: i64 = lock(&shared).iter().map(|w| w.connections).sum();
        if seconds.is_multiple_of(log_every) && last_logged != Some(total) {
            tracing::info!("socket server connections: {total}");
            last_logged = Some(total);
        }
    }
}

/// Where the master reaches a worker listening on `host`.
fn loopback_for(host: IpAddr) -> IpAddr {
    if host.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host
    }
}

fn cluster_status(shared: &Shared) -> ClusterStatus {
    let workers = lock(shared).clone();
    ClusterStatus {
        connections: workers.iter().map(|w| w.connections).sum(),
        members: workers.iter().map(|w| w.members).sum(),
        workers,
    }
}

async fn admin_json(State(shared): State<Shared>) -> Response {
    axum::Json(cluster_status(&shared)).into_response()
}

async fn admin_metrics(State(shared): State<Shared>) -> Response {
    use std::fmt::Write;
    let status = cluster_status(&shared);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP cluster_connections Live sockets across all workers."
    );
    let _ = writeln!(out, "# TYPE cluster_connections gauge");
    let _ = writeln!(out, "cluster_connections {}", status.connections);
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&WorkerStatus) -> String,
    );
    let families: [Family; 5] = [
        (
            "cluster_worker_connections",
            "gauge",
            "Live sockets of the worker.",
            |w| w.connections.to_string(),
        ),
        (
            "cluster_worker_members",
            "gauge",
            "Joined members of the worker.",
            |w| w.members.to_string(),
        ),
        (
            "cluster_worker_up",
            "gauge",
            "1 while the worker process runs.",
            |w| u8::from(w.up).to_string(),
        ),
        (
            "cluster_worker_restarts_total",
            "counter",
            "Times the master restarted the worker.",
            |w| w.restarts.to_string(),
        ),
        (
            "cluster_worker_delivered_total",
            "counter",
            "Deliveries the worker reported.",
            |w| w.delivered.to_string(),
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for w in &status.workers {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{}\",port=\"{}\"}} {}",
                w.index,
                w.port,
                value(w)
            );
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        assert_eq!(b.next(quick), Duration::from_millis(100));
        assert_eq!(b.next(quick), Duration::from_millis(200));
        for _ in 0..20 {
            b.next(quick);
        }
        assert_eq!(b.next(quick), Backoff::MAX);
        assert_eq!(b.next(Duration::from_secs(60)), Duration::from_millis(100));
    }

    #[test]
    fn a_worker_namespace_is_a_name_and_an_address() {
        assert_eq!(
            parse_worker_netns("rs12x0@10.240.0.3"),
            Ok(WorkerNetns {
                netns: "rs12x0".into(),
                address: IpAddr::from([10, 240, 0, 3])
            })
        );
        for bad in ["rs12x0", "@10.0.0.1", "a b@10.0.0.1", "ns@nowhere"] {
            assert!(parse_worker_netns(bad).is_err(), "{bad}");
        }
    }
}
