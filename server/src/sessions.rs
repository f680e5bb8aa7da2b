//! Binds each long-polling session to the client that opened it.
//!
//! Why it exists: engineioxide authorizes a polling request by its `sid` alone. Whoever learns
//! a member's session id (from a proxy log, a shared screen, a leaked URL) could read that
//! member's messages (`GET`), speak in its name (`POST`) or take its session over with a
//! websocket upgrade. So the worker notes who opened each polling session (the handshake's TCP
//! peer address, and the client address a proxy in front stated for it) and answers 403 to
//! any later request of that session from someone else, before engineioxide sees it.
//!
//! Websocket sessions need nothing: engineioxide refuses polling requests and second upgrades
//! for them. Two clients behind one address (a NAT) are one client here; between them the
//! session id's 96 random bits are the protection, as in every Engine.IO server.
//!
//! Cost: one map entry per polling session (about 80 bytes), one lock per polling request;
//! nothing per websocket message. An entry is dropped once its session has made no request
//! for longer than a live polling session can go without one (it must answer every ping).

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use socketioxide::socket::Sid;

use crate::admission::SOCKET_IO_PATH;
use crate::conns::Peer;
use crate::metrics::Metrics;

/// The refusal's text.
pub const FOREIGN_SESSION: &str = "this session was opened by another client\n";

/// The largest handshake body read back for its session id (it is about 120 bytes).
const HANDSHAKE_BODY_LIMIT: usize = 4096;

/// Who opened a session, as the worker can tell clients apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The TCP peer: the client itself, or the proxy in front of it.
    peer: IpAddr,
    /// The client's address as that proxy states it (`X-Real-IP`, else the last
    /// `X-Forwarded-For` entry, which the nearest proxy appended); `None` when absent.
    stated: Option<IpAddr>,
}

impl Owner {
    fn of(req: &Request) -> Option<Owner> {
        let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<Peer>>()?;
        Some(Owner {
            peer: peer.addr.ip(),
            stated: stated_client(req.headers()),
        })
    }
}

fn stated_client(headers: &http::HeaderMap) -> Option<IpAddr> {
    let parse = |text: &str| IpAddr::from_str(text.trim()).ok();
    if let Some(real_ip) = headers.get("x-real-ip") {
        return real_ip.to_str().ok().and_then(parse);
    }
    let forwarded = headers.get_all("x-forwarded-for").iter().next_back()?;
    forwarded.to_str().ok()?.rsplit(',').next().and_then(parse)
}

struct Bound {
    owner: Owner,
    last_request: Instant,
}

/// The owners of this worker's live polling sessions.
pub struct SessionOwners {
    bound: Mutex<HashMap<Sid, Bound>>,
    /// How long a live polling session can go without a request (ping interval + timeout),
    /// with a margin.
    idle_limit: Duration,
}

impl SessionOwners {
    pub fn new(ping_interval: Duration, ping_timeout: Duration) -> Arc<Self> {
        Arc::new(SessionOwners {
            bound: Mutex::default(),
            idle_limit: (ping_interval + ping_timeout) * 2,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Sid, Bound>> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bind(&self, sid: Sid, owner: Owner, now: Instant) {
        let bound = Bound {
            owner,
            last_request: now,
        };
        self.lock().insert(sid, bound);
    }

    /// Whether `owner` may use session `sid` (sessions not bound here are engineioxide's to
    /// judge: unknown, or websocket ones); notes the request when it may.
    fn admits(&self, sid: Sid, owner: Owner, now: Instant) -> bool {
        match self.lock().get_mut(&sid) {
            Some(bound) if bound.owner != owner => false,
            Some(bound) => {
                bound.last_request = now;
                true
            }
            None => true,
        }
    }

    /// Drops the sessions idle past the limit: engineioxide has closed them.
    fn forget_idle(&self, now: Instant) {
        let limit = self.idle_limit;
        self.lock()
            .retain(|_, bound| now.duration_since(bound.last_request) <= limit);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets idle sessions every half limit, for as long as the worker runs.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        crate::periodic::every(self.idle_limit / 2, self, |owners| {
            owners.forget_idle(Instant::now())
        });
    }
}

/// What a request to the Socket.IO path is, for this guard.
enum Kind {
    /// It names a session.
    Session(Sid),
    /// It opens a polling session.
    PollingHandshake,
    /// Anything else: another path, a websocket handshake, a sid that is not one.
    Other,
}

fn kind(req: &Request) -> Kind {
    let Some(rest) = req.uri().path().strip_prefix(SOCKET_IO_PATH) else {
        return Kind::Other;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Kind::Other;
    }
    let mut sid = None;
    let mut polling = false;
    for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        match &*key {
            // An id that does not parse names no session; engineioxide refuses it.
            "sid" => sid = Some(Sid::from_str(&value).ok()),
            "transport" => polling = value == "polling",
            _ => {}
        }
    }
    match sid {
        Some(Some(sid)) => Kind::Session(sid),
        Some(None) => Kind::Other,
        None if polling => Kind::PollingHandshake,
        None => Kind::Other,
    }
}

/// The guard's state: the owners and the counters.
#[derive(Clone)]
pub struct Guard {
    pub owners: Arc<SessionOwners>,
    pub metrics: Arc<Metrics>,
}

/// Middleware: refuses a session's request from a client other than its owner, and binds each
/// new polling session to the client whose handshake opened it.
pub async fn guard(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let now = Instant::now();
    match (kind(&req), Owner::of(&req)) {
        (Kind::Session(sid), Some(owner)) if !guard.owners.admits(sid, owner, now) => {
            guard.metrics.foreign_session_requests.fetch_add(1, Relaxed);
            tracing::debug!(?owner, "refused a request for another client's session");
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                FOREIGN_SESSION,
            )
                .into_response()
        }
        (Kind::PollingHandshake, Some(owner)) => {
            let response = next.run(req).await;
            bind_from_handshake(&guard.owners, owner, response, now).await
        }
        _ => next.run(req).await,
    }
}

/// Reads the session id out of a polling handshake's answer and binds it to `owner`.
async fn bind_from_handshake(
    owners: &SessionOwners,
    owner: Owner,
    response: Response,
    now: Instant,
) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, HANDSHAKE_BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => {
            // Not an answer engineioxide writes; the client gets an error, not an open session
            // nobody guards.
            tracing::warn!("polling handshake answer unreadable: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    match session_id_in(&body) {
        Some(sid) => owners.bind(sid, owner, now),
        None => tracing::warn!("polling handshake answer without a session id"),
    }
    Response::from_parts(parts, Body::from(body))
}

/// The `sid` of an Engine.IO open packet (`0{"sid":"...",...}`, length-prefixed in v3).
fn session_id_in(body: &[u8]) -> Option<Sid> {
    const KEY: &[u8] = br#""sid":""#;
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    let text = std::str::from_utf8(&body[start..start + len]).ok()?;
    Sid::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, peer: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut req = builder.body(Body::empty()).expect("valid request");
        req.extensions_mut().insert(ConnectInfo(Peer {
            id: 1,
            addr: peer.parse().expect("socket address"),
        }));
        req
    }

    #[test]
    fn the_owner_is_the_peer_and_the_address_its_proxy_states() {
        let direct = Owner::of(&request("/", "10.0.0.1:5000", &[])).expect("owner");
        assert_eq!(direct.peer, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(direct.stated, None);
        let real_ip = [("x-real-ip", "192.0.2.7")];
        let proxied = Owner::of(&request("/", "127.0.0.1:5000", &real_ip)).expect("owner");
        assert_eq!(proxied.stated, Some(IpAddr::from([192, 0, 2, 7])));
        // Without X-Real-IP, the nearest proxy's entry: the last one.
        let forwarded = [
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.5, 192.0.2.9"),
        ];
        let chained = Owner::of(&request("/", "127.0.0.1:5000", &forwarded)).expect("owner");
        assert_eq!(chained.stated, Some(IpAddr::from([192, 0, 2, 9])));
        // Another port on the same address is the same client (a new TCP connection).
        let again = Owner::of(&request("/", "10.0.0.1:6000", &[])).expect("owner");
        assert_eq!(again, direct);
    }

    #[test]
    fn only_a_sessions_owner_is_admitted_and_idle_sessions_are_forgotten() {
        let owners = SessionOwners::new(Duration::from_secs(25), Duration::from_secs(20));
        let sid = Sid::new();
        let owner = Owner::of(&request("/", "10.0.0.1:1", &[])).expect("owner");
        let stranger = Owner::of(&request("/", "10.0.0.2:1", &[])).expect("owner");
        let spoofer = Owner::of(&request("/", "10.0.0.2:1", &[("x-real-ip", "10.0.0.1")]));
        let t0 = Instant::now();
        owners.bind(sid, owner, t0);
        assert!(owners.admits(sid, owner, t0));
        assert!(!owners.admits(sid, stranger, t0));
        assert!(!owners.admits(sid, spoofer.expect("owner"), t0));
        // A session this worker did not bind is engineioxide's to judge.
        assert!(owners.admits(Sid::new(), stranger, t0));
        // Each admitted request keeps the session; 90 s without one ends it.
        let later = t0 + Duration::from_secs(60);
        assert!(owners.admits(sid, owner, later));
        owners.forget_idle(later + Duration::from_secs(90));
        assert_eq!(owners.len(), 1);
        owners.forget_idle(later + Duration::from_secs(91));
        assert!(owners.is_empty());
    }

    #[test]
    fn requests_are_told_apart() {
        let sid = Sid::new();
        let peer = "10.0.0.1:1";
        let of = |uri: &str| kind(&request(uri, peer, &[]));
        let with_sid = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        assert!(matches!(of(&with_sid), Kind::Session(s) if s == sid));
        let upgrade = format!("/socket.io/?EIO=4&transport=websocket&sid={sid}");
        assert!(matches!(of(&upgrade), Kind::Session(s) if s == sid));
        assert!(matches!(
            of("/socket.io/?EIO=4&transport=polling&roomid=a"),
            Kind::PollingHandshake
        ));
        assert!(matches!(
            of("/socket.io/?EIO=4&transport=websocket"),
            Kind::Other
        ));
        assert!(matches!(
            of("/socket.io/?EIO=4&transport=polling&sid=%FF"),
            Kind::Other
        ));
        assert!(matches!(of("/stats?sid=x"), Kind::Other));
        assert!(matches!(of("/socket.iox/?transport=polling"), Kind::Other));
    }

    #[test]
    fn the_session_id_is_read_from_the_open_packet() {
        let sid = Sid::new();
        let v4 = format!(r#"0{{"sid":"{sid}","upgrades":["websocket"],"pingInterval":25000}}"#);
        assert_eq!(session_id_in(v4.as_bytes()), Some(sid));
        let v3 = format!(r#"97:0{{"sid":"{sid}","upgrades":[]}}"#);
        assert_eq!(session_id_in(v3.as_bytes()), Some(sid));
        assert_eq!(session_id_in(br#"0{"sid":"short"}"#), None);
        assert_eq!(session_id_in(br#"0{"sid":"#), None);
        assert_eq!(session_id_in(b""), None);
    }
}
