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
        redis_cluster: None,
        namespaces: false,
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

/// An HTTP response read off a raw connection (for requests our client would never send).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (request line and headers, without the blank line; `Connection: close` is
/// added) and `body` from `bind` (or any loopback address), and reads the response to the end.
pub async fn raw_request(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    head: &[u8],
    body: &[u8],
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = connect_from(addr, bind).await;
    let mut request = head.to_vec();
    request.extend_from_slice(
        format!(
            "\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(body);
    stream.write_all(&request).await.expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(EVENT_DEADLINE, stream.read_to_end(&mut raw))
        .await
        .expect("response within the deadline")
        .expect("read response");
    parse_response(&raw)
}

/// A TCP connection to `addr`, from `bind` when given.
pub async fn connect_from(addr: SocketAddr, bind: Option<IpAddr>) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0)).expect("bind source");
    }
    socket.connect(addr).await.expect("connect")
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// A WebSocket connection driven by hand: it reads only when told to (a client that never
/// reads), and sends any frame, invalid UTF-8 included.
pub struct RawWs {
    pub stream: tokio::net::TcpStream,
}

impl RawWs {
    /// Opens `/socket.io/?EIO=4&transport=websocket&QUERY` and reads the Engine.IO open packet.
    pub async fn open(addr: SocketAddr, query: &str) -> RawWs {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut stream = connect_from(addr, None).await;
        let request = format!(
            "GET /socket.io/?EIO=4&transport=websocket&{query} HTTP/1.1\r\nHost: {addr}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("upgrade");
        // Read the 101 response byte by byte, so no frame after it is consumed.
        let mut reader = tokio::io::BufReader::with_capacity(1, &mut stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            let n = reader.read_line(&mut head).await.expect("upgrade reply");
            assert!(n > 0, "closed during upgrade: {head}");
        }
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        drop(reader);
        let mut ws = RawWs { stream };
        let open = ws.read_text().await.expect("open packet");
        assert!(open.starts_with("0{"), "{open}");
        ws
    }

    /// Sends one masked frame (mask key zero: the payload goes as is) with `opcode`.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await
    }

    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send_frame(1, text.as_bytes()).await
    }

    /// The next text frame's payload (answering Engine.IO pings on the way); `None` once the
    /// server closed the connection (a close frame, EOF or a reset).
    pub async fn read_text(&mut self) -> Option<String> {
        loop {
            let (opcode, payload) = self.read_frame().await?;
            match opcode {
                1 if payload == b"2" => self.send_text("3").await.ok()?,
                1 => return Some(String::from_utf8_lossy(&payload).into_owned()),
                8 => return None,
                _ => {}
            }
        }
    }

    async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let read = async {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await?;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await?),
                127 => self.stream.read_u64().await?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await?;
            Ok::<_, std::io::Error>((head[0] & 0x0f, payload))
        };
        tokio::time::timeout(EVENT_DEADLINE, read)
            .await
            .expect("a frame or a close within the deadline")
            .ok()
    }
}

/// This host's address on its default route: a local address that is not loopback, for
/// connecting to a loopback listener as a peer from elsewhere would.
pub fn non_loopback_addr() -> IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    probe
        .connect("203.0.113.1:9")
        .expect("this test needs a default route (a non-loopback address)");
    let addr = probe.local_addr().expect("local address").ip();
    assert!(!addr.is_loopback(), "{addr}");
    addr
}
