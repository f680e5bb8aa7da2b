//! Worker configuration: every limit and address a worker runs with, from flags or environment.
//!
//! One struct, parsed by clap, so that `chat-server worker --help` documents every knob and the
//! cluster master can hand the same settings to each worker it starts.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Which message bus carries room messages between workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// Redis pub/sub when `--redis` is given, else the in-process bus.
    Auto,
    /// In-process only: one worker, no Redis. For trying the server out.
    Local,
    /// Redis pub/sub, one channel per room: the multi-worker setup.
    Redis,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Address to listen on (HTTP, Socket.IO, /healthz, /metrics, the chat page).
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Redis URL for the cross-worker bus, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "CHAT_REDIS_URL")]
    pub redis: Option<String>,

    /// Message bus: `local` runs one worker without Redis.
    #[arg(long, env = "CHAT_BUS", value_enum, default_value_t = BusKind::Auto)]
    pub bus: BusKind,

    /// Prefix of the per-room Redis channel names.
    #[arg(long, env = "CHAT_CHANNEL_PREFIX", default_value = "roomstorm:room:")]
    pub channel_prefix: String,

    /// Longest `say` text in bytes.
    #[arg(long, env = "CHAT_MAX_TEXT_BYTES", default_value_t = roomstorm_protocol::DEFAULT_MAX_TEXT_BYTES)]
    pub max_text_bytes: usize,

    /// Largest Engine.IO payload in bytes (a polling POST body or a websocket message).
    #[arg(long, env = "CHAT_MAX_PAYLOAD", default_value_t = 65_536)]
    pub max_payload: u64,

    /// Messages per second a socket may send, sustained.
    #[arg(long, env = "CHAT_RATE_PER_SEC", default_value_t = 50.0)]
    pub rate_per_sec: f64,

    /// Messages a socket may send in one burst above the sustained rate.
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = 100.0)]
    pub rate_burst: f64,

    /// Rate-limited messages a socket may send before it is disconnected.
    #[arg(long, env = "CHAT_FLOOD_STRIKES", default_value_t = 100)]
    pub flood_strikes: u32,

    /// Outgoing packets queued per socket before sends to it fail (counted as dropped).
    #[arg(long, env = "CHAT_SOCKET_BUFFER", default_value_t = 4096)]
    pub socket_buffer: usize,

    /// Bytes each websocket connection reads into at once (its resident read buffer; a larger
    /// message still arrives whole, the buffer grows for it).
    #[arg(long, env = "CHAT_WS_READ_BUFFER", default_value_t = 1024)]
    pub ws_read_buffer: usize,

    /// Engine.IO ping interval in milliseconds.
    #[arg(long, env = "CHAT_PING_INTERVAL_MS", default_value_t = 25_000)]
    pub ping_interval_ms: u64,

    /// Engine.IO ping timeout in milliseconds.
    #[arg(long, env = "CHAT_PING_TIMEOUT_MS", default_value_t = 20_000)]
    pub ping_timeout_ms: u64,

    /// Origins allowed to connect from a browser page served elsewhere (comma separated;
    /// `*` allows any). Same-origin pages need nothing.
    #[arg(
        long,
        env = "CHAT_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,

    /// Folder of the chat page; its `node_modules` provides the socket.io client.
    #[arg(long, env = "CHAT_WEB_DIR", default_value = "web")]
    pub web_dir: std::path::PathBuf,

    /// How long a Redis command may take before it counts as failed, in milliseconds.
    #[arg(long, env = "CHAT_REDIS_TIMEOUT_MS", default_value_t = 2_000)]
    pub redis_timeout_ms: u64,

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
}

impl WorkerConfig {
    /// The bus this configuration resolves to.
    pub fn bus_kind(&self) -> BusKind {
        match (self.bus, &self.redis) {
            (BusKind::Auto, Some(_)) => BusKind::Redis,
            (BusKind::Auto, None) => BusKind::Local,
            (kind, _) => kind,
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

    /// Refuses settings that cannot work, before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.bus_kind() == BusKind::Redis && self.redis.is_none() {
            anyhow::bail!("--bus redis needs --redis URL (or CHAT_REDIS_URL)");
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
        Ok(())
    }
}
