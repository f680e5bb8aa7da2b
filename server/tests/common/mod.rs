//! Shared harness for the integration tests: a real stack (redis-server, the cluster, nginx)
//! on free loopback ports, and simulated members built on our Socket.IO client.
//!
//! Members pump their receiver in a task, so heartbeats are answered while a test does other
//! things, and tests await events with a deadline instead of sleeping.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chat_server::stack::{Stack, StackConfig};
use roomstorm_client::{ClientConfig, ConnectError, Incoming, Sender, Transport};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Longest a test waits for any single expected event before failing.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(10);

pub fn server_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chat-server"))
}

/// Starts a stack with `workers` workers; extra worker flags in `worker_args`.
pub async fn start_stack(workers: usize, worker_args: &[&str]) -> Stack {
    start_stack_with(stack_config(workers, worker_args)).await
}

/// The configuration [`start_stack`] uses, for a test that changes more than worker flags.
pub fn stack_config(workers: usize, worker_args: &[&str]) -> StackConfig {
    StackConfig {
        workers,
        listen: "127.0.0.1:0".parse().expect("static address"),
        redis: None,
        nginx_workers: 2,
        nginx_limit_conn: chat_server::nginx::DEFAULT_LIMIT_CONN_PER_ADDRESS,
        run_dir: None,
        worker_args: worker_args.iter().map(|s| s.to_string()).collect(),
        server_exe: Some(server_exe()),
        server_prefix: Vec::new(),
    }
}

pub async fn start_stack_with(config: StackConfig) -> Stack {
    match Stack::start(config).await {
        Ok(stack) => stack,
        Err(e) => panic!("cannot start the local stack: {e:#}"),
    }
}

/// The source address of simulated member `k`: its own /24, so nginx ip_hash tells them apart.
pub fn member_addr(k: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, k, 1))
}

/// A connected Socket.IO client whose incoming events queue up in `events`.
pub struct Member {
    pub tx: Sender,
    pub events: mpsc::UnboundedReceiver<Incoming>,
    pub name: String,
}

pub struct Connect {
    pub url: String,
    pub room: Option<String>,
    pub transport: Transport,
    pub bind: Option<IpAddr>,
}

impl Connect {
    pub fn new(url: &str, room: &str) -> Self {
        Connect {
            url: url.to_string(),
            room: Some(room.to_string()),
            transport: Transport::WebSocket,
            bind: None,
        }
    }
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }
    pub fn bind(mut self, addr: IpAddr) -> Self {
        self.bind = Some(addr);
        self
    }
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.url.clone()).transport(self.transport);
        if let Some(room) = &self.room {
            config = config.query("roomid", room.clone());
        }
        config.bind_addr = self.bind;
        config
    }

    pub async fn try_connect(&self) -> Result<Member, ConnectError> {
        let (tx, mut rx) = roomstorm_client::connect(&self.config()).await?;
        let (events_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = rx.next().await {
                if events_tx.send(event).is_err() {
                    break;
                }
            }
        });
        Ok(Member {
            tx,
            events,
            name: String::new(),
        })
    }

    pub async fn connect(&self) -> Member {
        match self.try_connect().await {
            Ok(member) => member,
            Err(e) => panic!("connect to {} failed: {e}", self.url),
        }
    }

    /// Connects and joins as `name`, returning once the member saw its own join notice.
    pub async fn join(&self, name: &str) -> Member {
        let mut member = self.connect().await;
        member.join(name).await;
        member
    }
}

impl Member {
    pub async fn emit(&self, event: &str, data: Value) {
        self.tx
            .emit(event, &data)
            .await
            .unwrap_or_else(|e| panic!("{}: emit {event} failed: {e}", self.name));
    }

    pub async fn join(&mut self, name: &str) {
        self.name = name.to_string();
        self.emit("join", json!({ "username": name })).await;
        self.expect_message(|m| m["event"] == "join" && m["data"]["username"] == name)
            .await;
    }

    pub async fn say(&self, text: &str) {
        self.emit("say", json!({ "text": text })).await;
    }

    /// The next event, or None if nothing came within `deadline`.
    pub async fn next_within(&mut self, deadline: Duration) -> Option<Incoming> {
        tokio::time::timeout(deadline, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    pub async fn next_event(&mut self) -> Incoming {
        match self.next_within(EVENT_DEADLINE).await {
            Some(event) => event,
            None => panic!("{}: no event within {EVENT_DEADLINE:?}", self.name),
        }
    }

    /// The data of the next `message` event, failing on anything else.
    pub async fn next_message(&mut self) -> Value {
        match self.next_event().await {
            Incoming::Event { name, data, .. } if name == "message" => data,
            other => panic!("{}: expected a message, got {other:?}", self.name),
        }
    }

    /// Skips events until a `message` matching `want` arrives; returns it.
    pub async fn expect_message(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next_event().await {
                Incoming::Event { name, data, .. } if name == "message" && want(&data) => {
                    return data;
                }
                Incoming::Disconnected { reason } => {
                    panic!("{}: disconnected ({reason}) while waiting", self.name)
                }
                _ => {}
            }
        }
    }

    /// The next `error` event's payload; fails on a message or a disconnect first.
    pub async fn expect_error(&mut self) -> Value {
        match self.next_event().await {
            Incoming::Event { name, data, .. } if name == "error" => data,
            other => panic!("{}: expected an error event, got {other:?}", self.name),
        }
    }

    /// Waits for the disconnect, skipping other events; returns its reason.
    pub async fn expect_disconnect(&mut self) -> String {
        loop {
            if let Incoming::Disconnected { reason } = self.next_event().await {
                return reason;
            }
        }
    }

    /// Proves nothing else is queued for this member: says a marker and requires that the
    /// next message it receives is that marker (room order is per sender, and the marker was
    /// sent last).
    pub async fn expect_nothing_before_marker(&mut self, marker: &str) {
        self.say(marker).await;
        let next = self.next_message().await;
        assert_eq!(
            (next["event"].as_str(), next["data"]["text"].as_str()),
            (Some("broadcast_say"), Some(marker)),
            "{}: something arrived before the marker: {next}",
            self.name
        );
    }

    pub async fn close(self) {
        let _ = self.tx.close().await;
    }
}

/// A worker's `/stats`, parsed.
pub async fn worker_stats(addr: SocketAddr) -> chat_server::metrics::StatsSnapshot {
    let (status, body) = chat_server::probe::http_get(addr, "/stats", Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("stats of {addr}: {e:#}"));
    assert_eq!(status, 200, "stats of {addr}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats of {addr}: {e}: {body}"))
}

/// A worker's `/metrics` text.
pub async fn worker_metrics(addr: SocketAddr) -> String {
    let (status, body) = chat_server::probe::http_get(addr, "/metrics", Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("metrics of {addr}: {e:#}"));
    assert_eq!(status, 200);
    body
}

/// The value of one Prometheus sample line, e.g. `chat_rejected_total{worker="0",code="x"}`.
pub fn metric_value(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("series {series} not in metrics"))
}

/// Polls `check` until it holds, for state that has no event to await (process exits,
/// Redis subscription counts). Fails with `what` after the deadline.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
