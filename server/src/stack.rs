//! The local stack: Redis (or a Redis Cluster), the cluster and nginx on loopback, started and
//! stopped as one.
//!
//! `chat-server stack` runs it in the foreground for people; the integration tests and the
//! load generator drive the same [`Stack`] from code, including its fault injections (kill or
//! pause a worker, restart Redis; on a Redis Cluster, kill a master or migrate slots). Every
//! part gets a free port, logs into the run folder, and dies with this process.
//!
//! With `--namespaces` each worker and Redis run on a host of their own (a network namespace
//! on one bridge, see `netns`), and nginx's upstream connections come from an address of its
//! own on that bridge, so a partition can cut one worker from Redis, from nginx, or from
//! everything, and heal it again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::process::Child;

use crate::cluster::ClusterStatus;
use crate::config::{BusKind, WorkerConfig};
use crate::netns::{NetHost, Segment};
use crate::nginx::NginxConfig;
pub use crate::ports::free_port;
use crate::ports::{free_port_range, resolve_port, unique_suffix};
use crate::probe::{http_get, wait_until_ok};
pub use crate::process::require;
use crate::process::{find_executable, send_signal, stop_child, tied_command};
use crate::redis_cluster::{MasterKilled, RedisCluster, THROWAWAY_REDIS};

/// How long each part may take to come up (generous: tests start several stacks at once on a
/// 2-core machine).
const READY_DEADLINE: Duration = Duration::from_secs(45);
const STOP_GRACE: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Number of chat workers.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,

    /// Address nginx listens on (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Use this Redis instead of starting one.
    #[arg(long)]
    pub redis: Option<String>,

    /// Run the bus on a Redis Cluster (sharded pub/sub): a number N starts one here, N masters
    /// and N replicas (N >= 3; needs redis-cli); `redis://host:port,...` uses that cluster.
    #[arg(long, value_name = "N|URLS", value_parser = parse_redis_cluster, conflicts_with = "redis")]
    pub redis_cluster: Option<RedisClusterSpec>,

    /// Put each worker and Redis on a host of its own: a network namespace on one bridge,
    /// nginx with an address of its own there (root; needs ip and nft). For partition faults.
    #[arg(long, conflicts_with_all = ["redis", "redis_cluster"])]
    pub namespaces: bool,

    /// nginx worker processes.
    #[arg(long, default_value_t = 2)]
    pub nginx_workers: usize,

    /// Folder for configs and logs (default: a new folder under the temp dir).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,

    /// nginx connections per client address (0: no limit).
    #[arg(long, value_name = "N", default_value_t = crate::nginx::DEFAULT_LIMIT_CONN_PER_ADDRESS)]
    pub nginx_limit_conn: usize,

    /// Extra arguments for every chat worker, after `--`.
    #[arg(last = true)]
    pub worker_args: Vec<String>,
}

/// Which Redis Cluster a stack's bus runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisClusterSpec {
    /// Start one on loopback: this many masters, each with one replica.
    Start { masters: usize },
    /// Use this one (node URLs).
    Use(Vec<String>),
}

/// `--redis-cluster`: a number of masters to start, or node URLs.
fn parse_redis_cluster(text: &str) -> Result<RedisClusterSpec, String> {
    if let Ok(masters) = text.trim().parse::<usize>() {
        if !(3..=16).contains(&masters) {
            return Err(format!(
                "{masters} masters: a Redis Cluster needs 3 to 16 here"
            ));
        }
        return Ok(RedisClusterSpec::Start { masters });
    }
    let urls: Vec<String> = text.split(',').map(|u| u.trim().to_string()).collect();
    if urls.iter().any(|u| !u.starts_with("redis://")) {
        return Err(format!(
            "`{text}` is neither a number of masters nor redis:// URLs"
        ));
    }
    Ok(RedisClusterSpec::Use(urls))
}

/// Everything needed to start a stack from code.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub workers: usize,
    pub listen: SocketAddr,
    pub redis: Option<String>,
    /// A Redis Cluster for the bus instead of one Redis (sharded pub/sub).
    pub redis_cluster: Option<RedisClusterSpec>,
    /// Each worker and Redis in a network namespace of its own (see [`StackArgs::namespaces`]).
    pub namespaces: bool,
    pub nginx_workers: usize,
    /// nginx's limit of connections per client address (0: none).
    pub nginx_limit_conn: usize,
    pub run_dir: Option<PathBuf>,
    pub worker_args: Vec<String>,
    /// The chat-server binary; `None`: this binary (see `process::self_command`).
    pub server_exe: Option<PathBuf>,
    /// Arguments before the subcommand, for a binary that embeds chat-server
    /// (`loadgen chat-server ...`).
    pub server_prefix: Vec<String>,
}

impl StackConfig {
    pub fn from_args(args: StackArgs, server_exe: Option<PathBuf>) -> Self {
        StackConfig {
            workers: args.workers,
            listen: args.listen,
            redis: args.redis,
            redis_cluster: args.redis_cluster,
            namespaces: args.namespaces,
            nginx_workers: args.nginx_workers,
            nginx_limit_conn: args.nginx_limit_conn,
            run_dir: args.run_dir,
            worker_args: args.worker_args,
            server_exe,
            server_prefix: Vec::new(),
        }
    }
}

/// Where each part of a running stack listens.
#[derive(Debug, Clone)]
pub struct StackInfo {
    /// nginx: the address clients connect to.
    pub url: String,
    pub nginx: SocketAddr,
    pub admin: SocketAddr,
    /// The one Redis (empty on a Redis Cluster).
    pub redis_url: String,
    pub redis_port: Option<u16>,
    /// The Redis Cluster's nodes (empty with one Redis).
    pub redis_cluster: Vec<String>,
    pub workers: Vec<SocketAddr>,
    pub run_dir: PathBuf,
}

pub struct Stack {
    info: StackInfo,
    redis: Option<Child>,
    redis_exe: Option<PathBuf>,
    /// Shared, so a long fault on it (a failover takes seconds) need not hold the whole stack.
    redis_cluster: Option<Arc<tokio::sync::Mutex<RedisCluster>>>,
    cluster: Option<Child>,
    nginx: Option<Child>,
    /// The hosts of a `--namespaces` stack (removed when the stack is dropped).
    network: Option<Network>,
}

/// Whom a partition separates a worker from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionFrom {
    /// Redis: every packet between them is dropped inside the worker's host.
    Redis,
    /// nginx (its upstream address): likewise.
    Nginx,
    /// Everything: the worker host's link is taken down.
    Everything,
}

impl PartitionFrom {
    pub fn label(self) -> &'static str {
        match self {
            PartitionFrom::Redis => "redis",
            PartitionFrom::Nginx => "nginx",
            PartitionFrom::Everything => "everything",
        }
    }
}

/// The hosts of a `--namespaces` stack. Hosts first: fields drop in order, the bridge last.
struct Network {
    redis: NetHost,
    workers: Vec<NetHost>,
    /// The address nginx's upstream connections come from.
    nginx: std::net::Ipv4Addr,
    _segment: Segment,
}

impl Network {
    fn create(workers: usize) -> anyhow::Result<Network> {
        crate::netns::require_tools()?;
        let segment = Segment::create().context("cannot create the stack's network")?;
        Ok(Network {
            redis: segment.host()?,
            workers: (0..workers)
                .map(|_| segment.host())
                .collect::<anyhow::Result<_>>()?,
            nginx: segment.add_root_address(254)?,
            _segment: segment,
        })
    }

    /// `--worker-netns` for the cluster master: `NS@ADDR` per worker.
    fn worker_netns(&self) -> String {
        self.workers
            .iter()
            .map(|host| format!("{}@{}", host.name(), host.address()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Stack {
    /// Starts Redis (unless given), the cluster and nginx, and waits until all answer.
    pub async fn start(config: StackConfig) -> anyhow::Result<Stack> {
        let nginx_exe = require("nginx", "nginx")?;
        if config.namespaces && (config.redis.is_some() || config.redis_cluster.is_some()) {
            bail!(
                "--namespaces starts its own Redis on a host of its own: not with --redis or --redis-cluster"
            );
        }
        let network = if config.namespaces {
            Some(Network::create(config.workers)?)
        } else {
            None
        };
        let redis_exe = match (&config.redis, &config.redis_cluster) {
            (None, None) => Some(require("redis-server", "redis-server")?),
            _ => None,
        };
        let run_dir = match &config.run_dir {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!(
                "roomstorm-stack-{}-{}",
                std::process::id(),
                unique_suffix()
            )),
        };
        std::fs::create_dir_all(run_dir.join("nginx-temp"))
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        // nginx reads a relative `-c` under its `-p` prefix: a relative run folder (loadgen's
        // default `runs/<scenario>-<time>`) became runs/x/stack/runs/x/stack/nginx.conf.
        let run_dir = std::path::absolute(&run_dir)
            .with_context(|| format!("cannot resolve {}", run_dir.display()))?;
        let nginx_addr = resolve_port(config.listen)?;
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let base_port = free_port_range(config.workers)?;
        let worker_host = |i: usize| match &network {
            Some(network) => std::net::IpAddr::from(network.workers[i].address()),
            None => std::net::IpAddr::from([127, 0, 0, 1]),
        };
        let workers: Vec<SocketAddr> = (0..config.workers)
            .map(|i| SocketAddr::new(worker_host(i), base_port + i as u16))
            .collect();
        let redis_host = match &network {
            Some(network) => network.redis.address(),
            None => std::net::Ipv4Addr::LOCALHOST,
        };
        let (redis_url, redis_port) = match (&config.redis, &config.redis_cluster) {
            (Some(url), _) => (url.clone(), None),
            (None, Some(_)) => (String::new(), None),
            (None, None) => {
                let port = free_port()?;
                (format!("redis://{redis_host}:{port}"), Some(port))
            }
        };
        let mut stack = Stack {
            info: StackInfo {
                url: format!("http://{nginx_addr}"),
                nginx: nginx_addr,
                admin,
                redis_url: redis_url.clone(),
                redis_port,
                redis_cluster: Vec::new(),
                workers,
                run_dir: run_dir.clone(),
            },
            redis: None,
            redis_exe,
            redis_cluster: None,
            cluster: None,
            nginx: None,
            network,
        };
        // On any failure below, `stack` is dropped and its children are killed.
        if stack.redis_exe.is_some() {
            stack.start_redis().await?;
        }
        match &config.redis_cluster {
            Some(RedisClusterSpec::Start { masters }) => {
                let cluster = RedisCluster::start(*masters, &run_dir.join("redis-cluster")).await?;
                stack.info.redis_cluster = cluster.urls();
                stack.redis_cluster = Some(Arc::new(tokio::sync::Mutex::new(cluster)));
            }
            Some(RedisClusterSpec::Use(urls)) => stack.info.redis_cluster = urls.clone(),
            None => {}
        }
        let (redis_flag, redis_value) = if stack.info.redis_cluster.is_empty() {
            ("--redis", redis_url)
        } else {
            ("--redis-cluster", stack.info.redis_cluster.join(","))
        };
        let mut cluster = server_command(&config);
        cluster.arg("cluster");
        if let Some(network) = &stack.network {
            cluster.arg("--worker-netns").arg(network.worker_netns());
        }
        stack.cluster = Some(spawn_logged(
            cluster
                .arg("--workers")
                .arg(config.workers.to_string())
                .arg("--base-port")
                .arg(base_port.to_string())
                .arg(redis_flag)
                .arg(&redis_value)
                .arg("--admin")
                .arg(admin.to_string())
                .arg("--")
                .args(&config.worker_args),
            &run_dir.join("cluster.log"),
        )?);
        for worker in &stack.info.workers {
            wait_until_ok(*worker, "/healthz", READY_DEADLINE)
                .await
                .with_context(|| {
                    format!(
                        "worker {worker} (log: {})",
                        run_dir.join("cluster.log").display()
                    )
                })?;
        }
        stack
            .start_nginx(&nginx_exe, config.nginx_workers, config.nginx_limit_conn)
            .await?;
        Ok(stack)
    }

    pub fn info(&self) -> &StackInfo {
        &self.info
    }

    async fn start_redis(&mut self) -> anyhow::Result<()> {
        let (Some(exe), Some(port)) = (&self.redis_exe, self.info.redis_port) else {
            bail!(
                "this stack uses an external Redis ({})",
                self.info.redis_url
            );
        };
        let log = self.info.run_dir.join("redis.log");
        // On its own host it listens on that host's address, for the workers on theirs; its
        // protected mode (no password: loopback clients only) would refuse them with -DENIED.
        let (mut command, host) = match &self.network {
            Some(network) => {
                let mut command = network.redis.command(exe);
                command.args(["--protected-mode", "no"]);
                (command, network.redis.address())
            }
            None => (tied_command(exe), std::net::Ipv4Addr::LOCALHOST),
        };
        self.redis = Some(spawn_logged(
            command
                .arg("--bind")
                .arg(host.to_string())
                .arg("--port")
                .arg(port.to_string())
                .args(THROWAWAY_REDIS),
            &log,
        )?);
        wait_for_redis(SocketAddr::from((host, port)))
            .await
            .with_context(|| format!("redis-server (log: {})", log.display()))
    }

    async fn start_nginx(
        &mut self,
        exe: &Path,
        workers: usize,
        limit_conn_per_address: usize,
    ) -> anyhow::Result<()> {
        let dir = &self.info.run_dir;
        let config = NginxConfig {
            listen: self.info.nginx.to_string(),
            upstreams: self.info.workers.iter().map(ToString::to_string).collect(),
            real_ip_from: vec!["127.0.0.0/8".into()],
            worker_processes: workers.max(1),
            rlimit_nofile: crate::nginx::DEFAULT_RLIMIT_NOFILE,
            prefix: dir.display().to_string(),
            // As root, nginx workers would run as `nobody`, which cannot enter a private
            // temp folder; keep them as the user who started the stack.
            user: if is_root() {
                "root root".into()
            } else {
                String::new()
            },
            limit_conn_per_address,
            proxy_bind: self.network.as_ref().map(|network| network.nginx.into()),
        };
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config.render()?)?;
        self.nginx = Some(spawn_logged(
            tied_command(exe).arg("-p").arg(dir).arg("-c").arg(&conf),
            &dir.join("nginx.log"),
        )?);
        wait_until_ok(self.info.nginx, "/healthz", READY_DEADLINE)
            .await
            .with_context(|| format!("nginx (log: {})", dir.join("nginx-error.log").display()))
    }

    /// The master's view of its workers (pids, connections, restarts).
    pub async fn cluster_status(&self) -> anyhow::Result<ClusterStatus> {
        let (status, body) = http_get(self.info.admin, "/workers", Duration::from_secs(2)).await?;
        anyhow::ensure!(status == 200, "admin answered {status}: {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// The pid of worker `index`, if it runs.
    pub async fn worker_pid(&self, index: usize) -> anyhow::Result<u32> {
        self.cluster_status()
            .await?
            .workers
            .get(index)
            .and_then(|w| w.pid)
            .with_context(|| format!("worker {index} is not running"))
    }

    /// SIGKILLs worker `index`; the master restarts it.
    pub async fn kill_worker(&self, index: usize) -> anyhow::Result<u32> {
        self.signal_worker(index, libc::SIGKILL).await
    }

    /// Freezes worker `index` (SIGSTOP) until [`Stack::resume_worker`].
    pub async fn pause_worker(&self, index: usize) -> anyhow::Result<u32> {
        self.signal_worker(index, libc::SIGSTOP).await
    }

    pub async fn resume_worker(&self, index: usize) -> anyhow::Result<u32> {
        self.signal_worker(index, libc::SIGCONT).await
    }

    async fn signal_worker(&self, index: usize, signal: libc::c_int) -> anyhow::Result<u32> {
        let pid = self.worker_pid(index).await?;
        anyhow::ensure!(
            send_signal(pid, signal),
            "worker {index} (pid {pid}) is gone"
        );
        Ok(pid)
    }

    /// The pid of the cluster master.
    pub fn master_pid(&self) -> Option<u32> {
        self.cluster.as_ref().and_then(Child::id)
    }

    /// Stops the stack's own Redis (the workers stay up and report it unreachable).
    pub async fn stop_redis(&mut self) -> anyhow::Result<()> {
        self.refuse_on_cluster()?;
        let mut redis = self.redis.take().context("redis is not running")?;
        stop_child(&mut redis, STOP_GRACE).await;
        Ok(())
    }

    /// Starts the stack's own Redis again on the same port.
    pub async fn restart_redis(&mut self) -> anyhow::Result<()> {
        self.refuse_on_cluster()?;
        anyhow::ensure!(self.redis.is_none(), "redis is already running");
        self.start_redis().await
    }

    fn refuse_on_cluster(&self) -> anyhow::Result<()> {
        if !self.info.redis_cluster.is_empty() {
            bail!(
                "this stack runs on a Redis Cluster: kill one of its masters instead (kill_redis_master)"
            );
        }
        Ok(())
    }

    /// Separates worker `index` from `from` until [`Stack::heal_worker`]; needs a stack with
    /// `--namespaces`. Its connections stall (no reset): what they do next is the worker's,
    /// Redis's and nginx's own timeouts, as in a real partition.
    pub fn partition_worker(&self, index: usize, from: PartitionFrom) -> anyhow::Result<()> {
        let (network, host) = self.worker_host(index)?;
        match from {
            PartitionFrom::Redis => host.block(&[network.redis.address()]),
            PartitionFrom::Nginx => host.block(&[network.nginx]),
            PartitionFrom::Everything => host.cut(),
        }
        .with_context(|| format!("cannot cut worker {index} from {}", from.label()))
    }

    /// Ends [`Stack::partition_worker`].
    pub fn heal_worker(&self, index: usize, from: PartitionFrom) -> anyhow::Result<()> {
        let (_, host) = self.worker_host(index)?;
        match from {
            PartitionFrom::Redis | PartitionFrom::Nginx => host.unblock(),
            PartitionFrom::Everything => host.restore(),
        }
        .with_context(|| format!("cannot reconnect worker {index} to {}", from.label()))
    }

    fn worker_host(&self, index: usize) -> anyhow::Result<(&Network, &NetHost)> {
        let network = self.network.as_ref().context(
            "this stack's workers share the machine's network: a partition needs a stack with --namespaces \
             (target.local.namespaces = true in a scenario)",
        )?;
        let host = network
            .workers
            .get(index)
            .with_context(|| format!("worker {index} does not exist"))?;
        Ok((network, host))
    }

    /// The Redis Cluster the stack started, if it did: its masters, and its faults without
    /// holding the stack.
    pub fn redis_cluster(&self) -> anyhow::Result<Arc<tokio::sync::Mutex<RedisCluster>>> {
        self.redis_cluster.clone().context(
            "this stack did not start a Redis Cluster (--redis-cluster N): no master to kill and no slot to migrate",
        )
    }

    /// SIGKILLs master `index` of the stack's Redis Cluster (masters in the order of their
    /// first slot); returns once its replica took over and the killed node is back as a replica.
    pub async fn kill_redis_master(&self, index: usize) -> anyhow::Result<MasterKilled> {
        self.redis_cluster()?.lock().await.kill_master(index).await
    }

    /// Migrates the lowest `count` slots of master `from` to master `to`; returns them.
    pub async fn migrate_slots(
        &self,
        from: usize,
        to: usize,
        count: usize,
    ) -> anyhow::Result<Vec<u16>> {
        self.redis_cluster()?
            .lock()
            .await
            .migrate_slots(from, to, count)
            .await
    }

    /// Stops nginx, the cluster (gracefully: workers disconnect their clients) and Redis.
    pub async fn stop(mut self) {
        for child in [self.nginx.take(), self.cluster.take(), self.redis.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            stop_child(&mut child, STOP_GRACE).await;
        }
        if let Some(cluster) = &self.redis_cluster {
            cluster.lock().await.stop().await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Not stopped through `stop` (an error or a panic): make sure nothing is left.
        for child in [&mut self.nginx, &mut self.cluster, &mut self.redis]
            .into_iter()
            .flatten()
        {
            if let Some(pid) = child.id() {
                send_signal(pid, libc::SIGTERM);
            }
        }
    }
}

/// What is missing for the full stack, if anything.
///
/// `ROOMSTORM_PRETEND_MISSING=nginx,redis-server` makes installed programs count as missing, so
/// the fallback of a machine without them can be tested on one that has them.
/// With `redis_cluster`, the Redis Cluster's tools count too: `redis-cli` creates it, and is
/// named by its package, `redis-tools`.
pub fn missing_parts(external_redis: bool, redis_cluster: bool) -> Option<String> {
    let pretend = std::env::var("ROOMSTORM_PRETEND_MISSING").unwrap_or_default();
    let absent = |program: &str| {
        pretend.split(',').any(|p| p.trim() == program) || find_executable(program).is_none()
    };
    let mut missing = Vec::new();
    if absent("nginx") {
        missing.push("nginx");
    }
    if !external_redis && absent("redis-server") {
        missing.push("redis-server");
    }
    if redis_cluster && !external_redis && absent("redis-cli") {
        missing.push("redis-tools");
    }
    (!missing.is_empty()).then(|| missing.join(" "))
}

/// Runs a stack in the foreground until SIGINT/SIGTERM. Without nginx or redis-server it
/// says so and serves one embedded worker instead, so trying the chat needs nothing else.
pub async fn run(args: StackArgs) -> anyhow::Result<()> {
    let cluster = args.redis_cluster.is_some();
    if let Some(missing) = missing_parts(
        args.redis.is_some() || matches!(args.redis_cluster, Some(RedisClusterSpec::Use(_))),
        cluster,
    ) {
        if cluster {
            bail!(
                "--redis-cluster needs the full stack, and {missing} is not installed: apt-get install -y {missing}"
            );
        }
        eprintln!(
            "{missing} not installed: running ONE embedded worker (--bus local, no Redis, no nginx) \
             on http://{listen}/\nFor the full cluster: apt-get install -y {missing}",
            listen = args.listen
        );
        let config = WorkerConfig {
            listen: args.listen,
            bus: BusKind::Local,
            ..WorkerConfig::default()
        };
        return crate::worker::run(config).await;
    }
    let stack = Stack::start(StackConfig::from_args(args, None)).await?;
    let info = stack.info();
    println!("roomstorm stack is up");
    println!("  chat page and Socket.IO: {}/", info.url);
    println!("  nginx:                   {}", info.nginx);
    for (i, worker) in info.workers.iter().enumerate() {
        println!("  worker {i}:                {worker} (http://{worker}/metrics)");
    }
    println!("  cluster admin:           http://{}/workers", info.admin);
    if info.redis_cluster.is_empty() {
        println!("  redis:                   {}", info.redis_url);
    } else {
        println!(
            "  redis cluster:           {}",
            info.redis_cluster.join(",")
        );
    }
    println!("  logs:                    {}", info.run_dir.display());
    println!("Ctrl-C stops everything.");
    crate::signals::terminated().await;
    stack.stop().await;
    println!("stack stopped");
    Ok(())
}

fn server_command(config: &StackConfig) -> tokio::process::Command {
    match &config.server_exe {
        Some(exe) => {
            let mut command = tied_command(exe);
            command.args(&config.server_prefix);
            command
        }
        None => crate::process::self_command(),
    }
}

fn spawn_logged(command: &mut tokio::process::Command, log: &Path) -> anyhow::Result<Child> {
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    command
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        // Not kill_on_drop: a SIGKILLed nginx master leaves its workers running. Dropping the
        // stack sends SIGTERM instead (see `Drop for Stack`), and every child also gets SIGTERM
        // from the kernel when this process dies.
        .kill_on_drop(false)
        .spawn()
        .with_context(|| format!("cannot start {program}"))
}

async fn wait_for_redis(address: SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
            let mut reply = [0u8; 7];
            if stream.write_all(b"PING\r\n").await.is_ok()
                && stream.read_exact(&mut reply).await.is_ok()
                && &reply == b"+PONG\r\n"
            {
                return Ok(());
            }
        }
        if started.elapsed() > READY_DEADLINE {
            bail!("redis on {address} not ready after {READY_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
