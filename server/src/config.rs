//! Worker configuration: every limit and address a worker runs with, from flags or environment.
//!
//! One struct, parsed by clap, so that `chat-server worker --help` documents every knob and the
//! cluster master can hand the same settings to each worker it starts. Roles that embed a
//! worker start from [`WorkerConfig::default`]: the same defaults as the flags, but never read
//! from `CHAT_*` environment variables (a variable left in someone's shell must not change an
//! embedded worker).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use clap::{Args, ValueEnum};
use roomstorm_protocol::duration::{DURATION_HINT, parse_duration};

/// Which message bus carries room messages between workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// The Redis Cluster when `--redis-cluster` is given, else Redis pub/sub when `--redis` is,
    /// else the in-process bus.
    Auto,
    /// In-process only: one worker, no Redis. For trying the server out.
    Local,
    /// Redis pub/sub, one channel per room: the multi-worker setup.
    Redis,
    /// Redis Cluster sharded pub/sub (`--redis-cluster`), one channel per room on the master
    /// that owns its slot.
    RedisCluster,
}

/// How a worker process schedules its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// One thread runs every task: no work stealing, no cross-thread wake-ups. A cluster runs
    /// one worker process per core, so each already has its core.
    CurrentThread,
    /// A thread per core, stealing work from each other (tokio's default).
    MultiThread,
}

/// The defaults of the flags below, named once for clap and for [`WorkerConfig::default`].
const DEFAULT_RUNTIME: RuntimeKind = RuntimeKind::MultiThread;
const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));
const DEFAULT_CHANNEL_PREFIX: &str = "roomstorm:room:";
const DEFAULT_MAX_PAYLOAD: u64 = 65_536;
const DEFAULT_RATE_PER_SEC: f64 = 50.0;
const DEFAULT_RATE_BURST: f64 = 100.0;
const DEFAULT_FLOOD_STRIKES: u32 = 100;
const DEFAULT_SOCKET_BUFFER: usize = 4096;
const DEFAULT_WS_READ_BUFFER: usize = 1024;
const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;
const DEFAULT_PING_TIMEOUT_MS: u64 = 20_000;
const DEFAULT_CORS_ORIGINS: &str = "*";
const DEFAULT_WEB_DIR: &str = "web";
const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_HEADER_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_SLOW_CONSUMER_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_SLOW_CONSUMER_GRACE_TEXT: &str = "5s";
const DEFAULT_JOIN_DEADLINE: Duration = Duration::from_secs(30);
const DEFAULT_JOIN_DEADLINE_TEXT: &str = "30s";
/// No cap: what a worker can hold depends on the machine (open files, memory), so any fixed
/// number would either sit above that (useless) or below it (refusing capacity the machine has).
/// Operators set it from their own measured capacity.
const DEFAULT_MAX_CONNECTIONS: usize = 0;
/// Four full pipelined batches (1,024 messages each): a brief Redis hiccup is absorbed, and a
/// stall costs at most ~4,096 payloads of memory (about 9 MB at the 2,000-byte text limit)
/// before senders are told `busy`.
const DEFAULT_PUBLISH_QUEUE: usize = 4_096;

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Address to listen on (HTTP, Socket.IO, /healthz, /metrics, the chat page).
    #[arg(long, env = "CHAT_LISTEN", default_value_t = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Redis URL for the cross-worker bus, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "CHAT_REDIS_URL")]
    pub redis: Option<String>,

    /// Redis Cluster nodes for the bus, comma separated (`redis://host:port,...`; a few are
    /// enough, the rest are learnt from them): one sharded channel per room (SSUBSCRIBE /
    /// SPUBLISH, Redis 7).
    #[arg(
        long,
        env = "CHAT_REDIS_CLUSTER",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    pub redis_cluster: Vec<String>,

    /// Message bus: `local` runs one worker without Redis.
    #[arg(long, env = "CHAT_BUS", value_enum, default_value_t = BusKind::Auto)]
    pub bus: BusKind,

    /// Prefix of the per-room Redis channel names.
    #[arg(long, env = "CHAT_CHANNEL_PREFIX", default_value = DEFAULT_CHANNEL_PREFIX)]
    pub channel_prefix: String,

    /// Longest `say` text in bytes.
    #[arg(long, env = "CHAT_MAX_TEXT_BYTES", default_value_t = roomstorm_protocol::DEFAULT_MAX_TEXT_BYTES)]
    pub max_text_bytes: usize,

    /// Largest Engine.IO payload in bytes (a polling POST body or a websocket message).
    #[arg(long, env = "CHAT_MAX_PAYLOAD", default_value_t = DEFAULT_MAX_PAYLOAD)]
    pub max_payload: u64,

    /// Messages per second a socket may send, sustained.
    #[arg(long, env = "CHAT_RATE_PER_SEC", default_value_t = DEFAULT_RATE_PER_SEC)]
    pub rate_per_sec: f64,

    /// Messages a socket may send in one burst above the sustained rate.
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = DEFAULT_RATE_BURST)]
    pub rate_burst: f64,

    /// Rate-limited messages a socket may send before it is disconnected.
    #[arg(long, env = "CHAT_FLOOD_STRIKES", default_value_t = DEFAULT_FLOOD_STRIKES)]
    pub flood_strikes: u32,

    /// Outgoing packets queued per socket before sends to it fail (counted as dropped).
    #[arg(long, env = "CHAT_SOCKET_BUFFER", default_value_t = DEFAULT_SOCKET_BUFFER)]
    pub socket_buffer: usize,

    /// Bytes each websocket connection reads into at once (its resident read buffer; a larger
    /// message still arrives whole, the buffer grows for it).
    #[arg(long, env = "CHAT_WS_READ_BUFFER", default_value_t = DEFAULT_WS_READ_BUFFER)]
    pub ws_read_buffer: usize,

    /// Engine.IO ping interval: milliseconds, or a duration such as `25s`.
    #[arg(long, env = "CHAT_PING_INTERVAL_MS", default_value_t = DEFAULT_PING_INTERVAL_MS, value_parser = parse_millis)]
    pub ping_interval_ms: u64,

    /// Engine.IO ping timeout: milliseconds, or a duration such as `20s`.
    #[arg(long, env = "CHAT_PING_TIMEOUT_MS", default_value_t = DEFAULT_PING_TIMEOUT_MS, value_parser = parse_millis)]
    pub ping_timeout_ms: u64,

    /// Origins allowed to connect from a browser page served elsewhere (comma separated,
    /// each `scheme://host[:port]`, matched exactly; only these may send credentials). `*`
    /// allows any origin, without credentials. Same-origin pages need nothing.
    #[arg(
        long,
        env = "CHAT_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = DEFAULT_CORS_ORIGINS
    )]
    pub cors_origins: Vec<String>,

    /// Folder of the chat page; its `node_modules` provides the socket.io client.
    #[arg(long, env = "CHAT_WEB_DIR", default_value = DEFAULT_WEB_DIR)]
    pub web_dir: std::path::PathBuf,

    /// How long a Redis command may take before it counts as failed: milliseconds, or a
    /// duration such as `2s`.
    #[arg(long, env = "CHAT_REDIS_TIMEOUT_MS", default_value_t = DEFAULT_REDIS_TIMEOUT_MS, value_parser = parse_millis)]
    pub redis_timeout_ms: u64,

    /// How long a client may take to send a request's headers (and an idle keep-alive
    /// connection may wait for its next request) before the worker closes the connection:
    /// milliseconds, or a duration such as `30s`. Bounds slowloris clients.
    #[arg(long, env = "CHAT_HEADER_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_TIMEOUT_MS, value_parser = parse_millis)]
    pub header_timeout_ms: u64,
    /// Room messages that may wait for Redis at once (queued or on their way); past it, a `say`
    /// is refused with the `busy` error instead of growing the worker's memory.
    #[arg(long, env = "CHAT_PUBLISH_QUEUE", default_value_t = DEFAULT_PUBLISH_QUEUE)]
    pub publish_queue: usize,

    /// Fault injection for testing measurement tools: drop every Nth chat message this
    /// worker would deliver (0: never). Counted in `chat_chaos_total{action="drop"}`.
    #[arg(long, env = "CHAT_CHAOS_DROP_EVERY", default_value_t = 0, hide = true)]
    pub chaos_drop_every: u64,

    /// Fault injection: deliver every Nth chat message twice (0: never).
    #[arg(
        long,
        env = "CHAT_CHAOS_DUPLICATE_EVERY",
        default_value_t = 0,
        hide = true
    )]
    pub chaos_duplicate_every: u64,

    /// Index of this worker in its cluster (set by the master; shown in logs and /stats).
    #[arg(long, env = "CHAT_WORKER_ID", default_value_t = 0)]
    pub worker_id: usize,

    /// How long a socket's outgoing queue (--socket-buffer) may stay full before the socket is
    /// disconnected as a slow consumer (a duration such as `5s`).
    #[arg(long, env = "CHAT_SLOW_CONSUMER_GRACE", default_value = DEFAULT_SLOW_CONSUMER_GRACE_TEXT, value_parser = parse_duration)]
    pub slow_consumer_grace: Duration,

    /// Socket.IO connections this worker accepts at once; a handshake beyond it gets HTTP 503
    /// (0: no cap).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// How long a socket may stay connected without a valid `join` before it is closed (a
    /// duration such as `30s`; `0s`: never).
    #[arg(long, env = "CHAT_JOIN_DEADLINE", default_value = DEFAULT_JOIN_DEADLINE_TEXT, value_parser = parse_duration)]
    pub join_deadline: Duration,

    /// The worker's task scheduler: `current-thread` (one thread; a cluster has a worker per
    /// core) or `multi-thread` (a thread per core, work stealing).
    #[arg(long, env = "CHAT_RUNTIME", value_enum, default_value_t = DEFAULT_RUNTIME)]
    pub runtime: RuntimeKind,
}

impl Default for WorkerConfig {
    /// What `chat-server worker` runs with given no flag and no `CHAT_*` variable.
    fn default() -> Self {
        WorkerConfig {
            listen: DEFAULT_LISTEN,
            redis: None,
            redis_cluster: Vec::new(),
            bus: BusKind::Auto,
            channel_prefix: DEFAULT_CHANNEL_PREFIX.into(),
            max_text_bytes: roomstorm_protocol::DEFAULT_MAX_TEXT_BYTES,
            max_payload: DEFAULT_MAX_PAYLOAD,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            rate_burst: DEFAULT_RATE_BURST,
            flood_strikes: DEFAULT_FLOOD_STRIKES,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
            ws_read_buffer: DEFAULT_WS_READ_BUFFER,
            ping_interval_ms: DEFAULT_PING_INTERVAL_MS,
            ping_timeout_ms: DEFAULT_PING_TIMEOUT_MS,
            cors_origins: vec![DEFAULT_CORS_ORIGINS.into()],
            web_dir: DEFAULT_WEB_DIR.into(),
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
            publish_queue: DEFAULT_PUBLISH_QUEUE,
            chaos_drop_every: 0,
            chaos_duplicate_every: 0,
            worker_id: 0,
            slow_consumer_grace: DEFAULT_SLOW_CONSUMER_GRACE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            join_deadline: DEFAULT_JOIN_DEADLINE,
            runtime: DEFAULT_RUNTIME,
        }
    }
}

/// Reads a `*-ms` flag: a whole number of milliseconds (the old form, `25000`) or a duration
/// such as `25s` or `1.5s`, in whole milliseconds.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    if let Ok(millis) = text.trim().parse::<u64>() {
        return Ok(millis);
    }
    let refuse = || format!("`{text}` is neither milliseconds (`25000`) nor {DURATION_HINT}");
    let duration = parse_duration(text).map_err(|_| refuse())?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("`{text}` is not a whole number of milliseconds"));
    }
    u64::try_from(duration.as_millis()).map_err(|_| format!("`{text}` is too long"))
}

impl WorkerConfig {
    /// The bus this configuration resolves to.
    pub fn bus_kind(&self) -> BusKind {
        match (self.bus, &self.redis, self.redis_cluster.is_empty()) {
            (BusKind::Auto, _, false) => BusKind::RedisCluster,
            (BusKind::Auto, Some(_), true) => BusKind::Redis,
            (BusKind::Auto, None, true) => BusKind::Local,
            (kind, _, _) => kind,
        }
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout_ms)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// Refuses settings that cannot work, before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.bus_kind() == BusKind::Redis && self.redis.is_none() {
            anyhow::bail!("--bus redis needs --redis URL (or CHAT_REDIS_URL)");
        }
        if self.bus_kind() == BusKind::RedisCluster && self.redis_cluster.is_empty() {
            anyhow::bail!("--bus redis-cluster needs --redis-cluster URLS (or CHAT_REDIS_CLUSTER)");
        }
        if self.redis.is_some() && !self.redis_cluster.is_empty() {
            anyhow::bail!(
                "--redis and --redis-cluster exclude each other: one Redis, or a cluster"
            );
        }
        if !(self.rate_per_sec > 0.0 && self.rate_burst >= 1.0) {
            anyhow::bail!("--rate-per-sec must be > 0 and --rate-burst >= 1");
        }
        if self.max_text_bytes == 0 || self.max_text_bytes as u64 >= self.max_payload {
            anyhow::bail!("--max-text-bytes must be between 1 and --max-payload");
        }
        if self.ws_read_buffer == 0 {
            anyhow::bail!("--ws-read-buffer must be at least 1");
        }
        if self.socket_buffer == 0 {
            anyhow::bail!("--socket-buffer must be at least 1");
        }
        if self.header_timeout_ms == 0 {
            anyhow::bail!("--header-timeout-ms must be at least 1 ms");
        }
        validate_cors_origins(&self.cors_origins)?;
        if self.publish_queue == 0 {
            anyhow::bail!("--publish-queue must be at least 1");
        }
        Ok(())
    }
}

/// `--cors-origins` is `*` alone, or origins as browsers send them: `http(s)://host[:port]`,
/// no path, no trailing slash (the match is exact, so anything else would never match).
fn validate_cors_origins(origins: &[String]) -> anyhow::Result<()> {
    let origins: Vec<&str> = origins.iter().map(|o| o.trim()).collect();
    if origins.contains(&"*") {
        if origins.len() > 1 {
            anyhow::bail!(
                "--cors-origins: `*` (any origin, no credentials) cannot be mixed with listed origins"
            );
        }
        return Ok(());
    }
    for origin in origins {
        let host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let valid = host.is_some_and(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        });
        if !valid {
            anyhow::bail!(
                "--cors-origins: `{origin}` is not an origin like https://chat.example:8443 \
                 (scheme, host, optional port; no path or trailing slash)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_flags_take_numbers_or_durations() {
        assert_eq!(parse_millis("25000"), Ok(25_000));
        assert_eq!(parse_millis("25s"), Ok(25_000));
        assert_eq!(parse_millis("1.5s"), Ok(1_500));
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("2m"), Ok(120_000));
        assert_eq!(parse_millis("0"), Ok(0));
        assert!(parse_millis("1500us").is_err(), "not whole milliseconds");
        for bad in ["", "fast", "-1", "25 seconds"] {
            let err = parse_millis(bad).unwrap_err();
            assert!(err.contains("neither milliseconds"), "{bad}: {err}");
        }
    }

    #[test]
    fn millisecond_flags_parse_through_clap() {
        let config = parse(&[
            "worker",
            "--ping-interval-ms",
            "30s",
            "--redis-timeout-ms",
            "750",
        ]);
        assert_eq!(config.ping_interval(), Duration::from_secs(30));
        assert_eq!(config.redis_timeout(), Duration::from_millis(750));
        assert_eq!(config.ping_timeout(), Duration::from_secs(20));
    }

    #[test]
    fn cors_origins_are_the_wildcard_alone_or_exact_origins() {
        let check = |list: &[&str]| {
            validate_cors_origins(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert!(check(&["*"]).is_ok());
        assert!(
            check(&[
                "https://chat.example",
                "http://127.0.0.1:8080",
                "http://[::1]:80"
            ])
            .is_ok()
        );
        let mixed = check(&["*", "https://a.example"]).unwrap_err();
        assert!(mixed.to_string().contains("cannot be mixed"), "{mixed}");
        for bad in [
            "chat.example",
            "https://a.example/",
            "https://a.example/path",
            "ftp://a",
            "https://",
            "",
        ] {
            let error = check(&[bad]).unwrap_err();
            assert!(
                error.to_string().contains("is not an origin"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn limit_flags_take_durations() {
        let config = parse(&[
            "worker",
            "--slow-consumer-grace",
            "1.5s",
            "--join-deadline",
            "0s",
            "--max-connections",
            "10",
        ]);
        assert_eq!(config.slow_consumer_grace, Duration::from_millis(1_500));
        assert_eq!(config.join_deadline, Duration::ZERO);
        assert_eq!(config.max_connections, 10);
        assert_eq!(parse(&["worker"]).join_deadline, Duration::from_secs(30));
    }

    #[test]
    fn default_equals_the_flags_defaults() {
        let from_flags = parse(&["worker"]);
        assert_eq!(
            format!("{:?}", WorkerConfig::default()),
            format!("{from_flags:?}")
        );
    }

    /// Parses worker flags with every `env` source removed, so the test's own environment
    /// cannot change the result.
    fn parse(argv: &[&str]) -> WorkerConfig {
        use clap::FromArgMatches;
        let command = WorkerConfig::augment_args(clap::Command::new("worker"))
            .mut_args(|arg| arg.env(None::<&str>));
        let matches = command.try_get_matches_from(argv).expect("valid flags");
        WorkerConfig::from_arg_matches(&matches).expect("complete config")
    }
}
