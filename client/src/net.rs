//! Sockets and HTTP for the transports: bound TCP connects, the websocket handshake, and the
//! shared HTTP client used by long-polling.
//!
//! This exists to keep every network detail that the load-balancing setup depends on in one
//! place: each socket (websocket or polling request) is bound to the configured source address
//! so nginx `ip_hash` sends all requests of a session to the same worker, and the
//! `X-Forwarded-For` / extra headers go on every request.
//!
//! Polling uses hyper-util's pooled client. A pool can only bind one source address, so there
//! is one client per (tokio runtime, source address), created on first use and shared by all
//! connections of the process; keying by runtime keeps pooled connections from being reused
//! after the runtime that drives them (e.g. one `#[tokio::test]`) is gone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::client::{Response as WsResponse, generate_request};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::config::ResolvedConfig;
use crate::error::{BoxError, ConnectError, body_excerpt};

/// The websocket type used by this crate.
pub(crate) type WsStream = WebSocketStream<TcpStream>;

/// Read buffer per websocket. tungstenite allocates it up front and zero-fills all of it on
/// the first read, so it is resident in every connection, idle or not: 4 KiB was the largest
/// item of a load-generator member. Chat frames are ~100-200 bytes, so 512 bytes still read
/// a few frames per syscall; a larger frame grows the buffer to fit (tungstenite reserves the
/// frame's length), so nothing breaks, it only costs a reallocation.
const WS_READ_BUFFER: usize = 512;
/// Largest accepted polling response body.
const MAX_POLL_BODY: usize = 16 << 20;
/// Largest accepted websocket message.
const MAX_WS_MESSAGE: usize = 16 << 20;

/// Opens a TCP connection to the target, bound to `bind` when set.
pub(crate) async fn tcp_connect(
    target: &ResolvedConfig,
    bind: Option<IpAddr>,
) -> Result<TcpStream, ConnectError> {
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|error| ConnectError::Io {
            during: "resolving the server address",
            error,
        })?;
    let mut last_err = None;
    for addr in addrs {
        if bind.is_some_and(|b| b.is_ipv4() != addr.is_ipv4()) {
            continue;
        }
        match connect_one(addr, bind).await {
            Ok(s) => return Ok(s),
            Err(e) => last_err = Some(e),
        }
    }
    Err(match last_err {
        Some(error) => ConnectError::Io {
            during: "TCP connect",
            error,
        },
        None => ConnectError::InvalidConfig(format!(
            "no address of {:?} matches the family of bind_addr {bind:?}",
            target.host
        )),
    })
}

async fn connect_one(addr: SocketAddr, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind {
        bind_address_no_port(&sock);
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = sock.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Lets the kernel pick the source port at connect time (per destination) instead of at bind
/// time, so one source address can hold more than one port range's worth of connections
/// spread over several destinations. Best effort.
#[cfg(target_os = "linux")]
fn bind_address_no_port(sock: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: the fd is owned by `sock` and open; the pointer and length describe `one`,
    // which outlives the call. A failure only loses the optimisation.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_sock: &TcpSocket) {}

/// Opens the websocket (`transport=websocket`, with `sid` when upgrading).
pub(crate) async fn open_websocket(
    target: &ResolvedConfig,
    bind: Option<IpAddr>,
    sid: Option<&str>,
) -> Result<WsStream, ConnectError> {
    let url = target.websocket_url(sid);
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::InvalidConfig(format!("websocket URL {url:?}: {e}")))?;
    for (k, v) in &target.headers {
        req.headers_mut().append(k.clone(), v.clone());
    }
    let mut tcp = tcp_connect(target, bind).await?;
    let tail = upgrade(&mut tcp, req).await?;
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE));
    Ok(WebSocketStream::from_partially_read(tcp, tail, Role::Client, Some(config)).await)
}

/// Largest HTTP response head accepted for the websocket upgrade.
const MAX_UPGRADE_RESPONSE: usize = 16 << 10;

/// The client side of the websocket upgrade (RFC 6455 4.1), with tungstenite's own request
/// writer and response parser; returns the bytes the server sent after the response head.
///
/// Done here rather than by tungstenite's handshake because that one reads into a 4 KiB buffer
/// which then becomes the connection's read buffer for good, whatever `read_buffer_size` says:
/// it was the largest per-connection cost of the load generator. Here the response is read
/// into a small temporary buffer, and only what follows its head (frames the server may
/// already have sent) is handed to the websocket.
async fn upgrade(tcp: &mut TcpStream, req: Request<()>) -> Result<Vec<u8>, ConnectError> {
    const DURING: &str = "websocket upgrade";
    let ws_err = |e: WsError| ws_connect_error(DURING, e);
    let (request, key) = generate_request(req).map_err(ws_err)?;
    tcp.write_all(&request)
        .await
        .map_err(|e| ws_err(WsError::Io(e)))?;
    let mut buf = Vec::with_capacity(256);
    let (head_len, response) = loop {
        if let Some(parsed) = WsResponse::try_parse(&buf).map_err(ws_err)? {
            break parsed;
        }
        if buf.len() >= MAX_UPGRADE_RESPONSE {
            return Err(ws_err(WsError::Capacity(CapacityError::TooManyHeaders)));
        }
        buf.reserve(256);
        if tcp
            .read_buf(&mut buf)
            .await
            .map_err(|e| ws_err(WsError::Io(e)))?
            == 0
        {
            return Err(ws_err(WsError::Protocol(
                ProtocolError::HandshakeIncomplete,
            )));
        }
    };
    let tail = buf.split_off(head_len);
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(ConnectError::HttpStatus {
            during: DURING,
            status: response.status().as_u16(),
            body: body_excerpt(&tail),
        });
    }
    let header_is = |name: &str, want: &str| {
        response
            .headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.eq_ignore_ascii_case(want))
    };
    if !header_is("Upgrade", "websocket") {
        return Err(ws_err(WsError::Protocol(
            ProtocolError::MissingUpgradeWebSocketHeader,
        )));
    }
    if !header_is("Connection", "Upgrade") {
        return Err(ws_err(WsError::Protocol(
            ProtocolError::MissingConnectionUpgradeHeader,
        )));
    }
    let accept = derive_accept_key(key.as_bytes());
    if response
        .headers()
        .get("Sec-WebSocket-Accept")
        .is_none_or(|h| h.as_bytes() != accept.as_bytes())
    {
        return Err(ws_err(WsError::Protocol(
            ProtocolError::SecWebSocketAcceptKeyMismatch,
        )));
    }
    Ok(tail)
}

/// Maps a tungstenite error during connect to the matching [`ConnectError`].
pub(crate) fn ws_connect_error(during: &'static str, e: WsError) -> ConnectError {
    match e {
        WsError::Http(resp) => ConnectError::HttpStatus {
            during,
            status: resp.status().as_u16(),
            body: resp.body().as_deref().map(body_excerpt).unwrap_or_default(),
        },
        WsError::Io(error) => ConnectError::Io { during, error },
        WsError::ConnectionClosed | WsError::AlreadyClosed => ConnectError::Closed {
            during,
            detail: "websocket closed".to_owned(),
        },
        other => ConnectError::Transport {
            during,
            error: Box::new(other),
        },
    }
}

/// The pooled HTTP client type used for polling.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

type PoolKey = (tokio::runtime::Id, Option<IpAddr>);

/// The process-wide HTTP client for this runtime and source address.
///
/// Must be called inside a tokio runtime.
pub(crate) fn http_client(bind: Option<IpAddr>) -> HttpClient {
    static POOLS: OnceLock<Mutex<HashMap<PoolKey, HttpClient>>> = OnceLock::new();
    let key = (tokio::runtime::Handle::current().id(), bind);
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    pools
        .entry(key)
        .or_insert_with(|| {
            let mut connector = HttpConnector::new();
            connector.set_local_address(bind);
            connector.set_nodelay(true);
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector)
        })
        .clone()
}

/// Failure of one polling request.
#[derive(Debug)]
pub(crate) enum HttpError {
    Status { status: u16, body: String },
    Io(std::io::Error),
    Transport(BoxError),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Status { status, body } => write!(f, "HTTP {status}: {body}"),
            HttpError::Io(e) => write!(f, "I/O error: {e}"),
            HttpError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl HttpError {
    fn from_boxed(e: BoxError) -> Self {
        // Report the innermost io::Error if there is one (connection refused, reset, ...).
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return HttpError::Io(std::io::Error::new(io.kind(), e.to_string()));
            }
            cur = err.source();
        }
        HttpError::Transport(e)
    }

    pub(crate) fn into_connect_error(self, during: &'static str) -> ConnectError {
        match self {
            HttpError::Status { status, body } => ConnectError::HttpStatus {
                during,
                status,
                body,
            },
            HttpError::Io(error) => ConnectError::Io { during, error },
            HttpError::Transport(error) => ConnectError::Transport { during, error },
        }
    }
}

/// One polling endpoint (URL with or without `sid`) and the headers sent with each request.
pub(crate) struct PollTarget {
    client: HttpClient,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl PollTarget {
    pub(crate) fn new(
        client: HttpClient,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, ConnectError> {
        let uri = url
            .parse()
            .map_err(|e| ConnectError::InvalidConfig(format!("polling URL {url:?}: {e}")))?;
        Ok(PollTarget {
            client,
            uri,
            headers,
        })
    }

    /// Long-poll GET; returns the payload.
    pub(crate) async fn get(&self) -> Result<Bytes, HttpError> {
        self.request(Method::GET, Bytes::new()).await
    }

    /// POST of a payload; the body of the answer (`ok`) is ignored.
    pub(crate) async fn post(&self, payload: Bytes) -> Result<(), HttpError> {
        self.request(Method::POST, payload).await.map(drop)
    }

    async fn request(&self, method: Method, body: Bytes) -> Result<Bytes, HttpError> {
        let is_post = method == Method::POST;
        let mut req = Request::builder().method(method).uri(self.uri.clone());
        if let Some(h) = req.headers_mut() {
            for (k, v) in &self.headers {
                h.append(k.clone(), v.clone());
            }
            if is_post {
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain;charset=UTF-8"),
                );
            }
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| HttpError::Transport(Box::new(e)))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| HttpError::from_boxed(Box::new(e)))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_POLL_BODY)
            .collect()
            .await
            .map_err(HttpError::from_boxed)?
            .to_bytes();
        if !status.is_success() {
            return Err(HttpError::Status {
                status: status.as_u16(),
                body: body_excerpt(&body),
            });
        }
        Ok(body)
    }
}
