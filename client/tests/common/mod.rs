//! A real socketioxide 0.18 server for the client's integration tests.
//!
//! It exists so the client is tested against the same server library the chat cluster uses,
//! over real sockets: axum on 127.0.0.1:0, handlers registered in a connect middleware (see
//! stack-facts: the CONNECT ack is sent before the connect handler runs), every HTTP request
//! recorded with its peer address and headers, and every connect / disconnect reported on a
//! channel so tests await events instead of sleeping.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use roomstorm_client::{ClientConfig, Incoming, Receiver, Transport};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use tokio::sync::mpsc;

/// Guard against hangs: any single wait in a test longer than this fails the test.
pub const WAIT: Duration = Duration::from_secs(20);

/// What the server saw.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    Connected {
        sid: String,
        peer: Option<SocketAddr>,
        forwarded_for: Option<String>,
        origin: Option<String>,
        roomid: String,
    },
    Disconnected {
        sid: String,
        reason: DisconnectReason,
    },
}

/// One HTTP request as seen by the server (polling GET/POST or websocket upgrade).
#[derive(Debug, Clone)]
pub struct HttpRecord {
    pub peer: SocketAddr,
    pub method: String,
    pub query: String,
    pub forwarded_for: Option<String>,
    pub origin: Option<String>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    pub events: mpsc::UnboundedReceiver<ServerEvent>,
    pub requests: Arc<Mutex<Vec<HttpRecord>>>,
    pub io: SocketIo,
}

impl TestServer {
    /// Next server event, failing the test after [`WAIT`].
    pub async fn next_event(&mut self) -> ServerEvent {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("timed out waiting for a server event")
            .expect("server event channel closed")
    }

    /// Waits for the Disconnected event of `sid`, skipping others.
    pub async fn disconnected(&mut self, sid: &str) -> DisconnectReason {
        loop {
            if let ServerEvent::Disconnected { sid: s, reason } = self.next_event().await
                && s == sid
            {
                return reason;
            }
        }
    }

    /// A config for this server with `roomid=r1`.
    pub fn config(&self, transport: Transport) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.url.clone())
            .query("roomid", "r1")
            .transport(transport);
        cfg.connect_timeout = WAIT;
        cfg
    }

    pub fn requests(&self) -> Vec<HttpRecord> {
        self.requests.lock().unwrap().clone()
    }
}

fn header(parts: &http::request::Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

fn http_record(peer: SocketAddr, req: &Request) -> HttpRecord {
    let get = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    HttpRecord {
        peer,
        method: req.method().to_string(),
        query: req.uri().query().unwrap_or_default().to_owned(),
        forwarded_for: get("x-forwarded-for"),
        origin: get("origin"),
    }
}

async fn record(
    State(log): State<Arc<Mutex<Vec<HttpRecord>>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let rec = http_record(peer, &req);
    log.lock().unwrap().push(rec);
    next.run(req).await
}

/// Starts the server. `ping` sets (ping_interval, ping_timeout).
///
/// Behaviour:
/// - refuses a connection without `roomid` query with CONNECT_ERROR "missing roomid query parameter";
/// - after connect emits `welcome {"sid":..}`, then `burst` events 0..N if the query has `burst=N`;
/// - `echo` data -> emits `echo` with the same data;
/// - `bin` with a binary attachment -> emits `bin_len` with its length;
/// - `kick` -> server-side disconnect of the socket.
pub async fn start(ping: Option<(Duration, Duration)>) -> TestServer {
    let (tx, events) = mpsc::unbounded_channel();
    let mut builder = SocketIo::builder();
    if let Some((interval, timeout)) = ping {
        builder = builder.ping_interval(interval).ping_timeout(timeout);
    }
    let (layer, io) = builder.build_layer();

    let setup_tx = tx.clone();
    let setup = move |s: SocketRef| {
        let tx = setup_tx.clone();
        async move {
            let parts = s.req_parts();
            let query = parts.uri.query().unwrap_or_default().to_owned();
            let Some(roomid) = query_param(&query, "roomid") else {
                return Err("missing roomid query parameter");
            };
            s.on("echo", async |s: SocketRef, Data(v): Data<Value>| {
                s.emit("echo", &v).ok();
            });
            s.on("bin", async |s: SocketRef, Data(b): Data<bytes::Bytes>| {
                s.emit("bin_len", &b.len()).ok();
            });
            s.on("kick", async |s: SocketRef| {
                s.disconnect().ok();
            });
            let dtx = tx.clone();
            s.on_disconnect(move |s: SocketRef, reason: DisconnectReason| {
                let tx = dtx.clone();
                async move {
                    tx.send(ServerEvent::Disconnected {
                        sid: s.id.to_string(),
                        reason,
                    })
                    .ok();
                }
            });
            tx.send(ServerEvent::Connected {
                sid: s.id.to_string(),
                peer: parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0),
                forwarded_for: header(parts, "x-forwarded-for"),
                origin: header(parts, "origin"),
                roomid,
            })
            .ok();
            Ok(())
        }
    };
    let handler = async |s: SocketRef| {
        s.emit("welcome", &json!({ "sid": s.id.to_string() })).ok();
        let query = s.req_parts().uri.query().unwrap_or_default().to_owned();
        let burst: u32 = query_param(&query, "burst")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        for i in 0..burst {
            s.emit("burst", &i).ok();
        }
    };
    io.ns("/", handler.with(setup));

    let requests = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .layer(layer)
        .layer(axum::middleware::from_fn_with_state(
            requests.clone(),
            record,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test server");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .ok();
    });
    TestServer {
        addr,
        url: format!("http://{addr}"),
        events,
        requests,
        io,
    }
}

/// Next item from the receiver, failing the test after [`WAIT`].
pub async fn next(rx: &mut Receiver) -> Incoming {
    tokio::time::timeout(WAIT, rx.next())
        .await
        .expect("timed out waiting for the client receiver")
        .expect("receiver ended without Disconnected")
}

/// Next event named `name` (other events are skipped); panics on disconnect.
pub async fn expect_event(rx: &mut Receiver, name: &str) -> (Value, String) {
    loop {
        match next(rx).await {
            Incoming::Event { name: n, data, raw } if n == name => return (data, raw),
            Incoming::Event { .. } => {}
            Incoming::Disconnected { reason } => {
                panic!("disconnected while waiting for {name:?}: {reason}")
            }
        }
    }
}

/// Skips events until the disconnect and returns its reason.
pub async fn expect_disconnect(rx: &mut Receiver) -> String {
    loop {
        if let Incoming::Disconnected { reason } = next(rx).await {
            return reason;
        }
    }
}
