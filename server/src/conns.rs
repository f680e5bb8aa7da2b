//! The worker's accepted TCP connections, so that the server can cut one.
//!
//! Why it exists: a socket whose outgoing queue is full cannot be closed through socketioxide
//! (its `disconnect` queues a packet first and gives up when the queue is full), and its
//! websocket task waits on a write the client never reads. Shutting the TCP connection down
//! wakes that task with an error, and the session ends like any lost connection. So the
//! listener registers each connection it accepts (its descriptor, under an id every request on
//! it carries as `ConnectInfo<Peer>`), and notes which connection carries each upgraded
//! websocket session (an upgrade arrives on a new connection, not the handshake's).
//!
//! Cost: one map entry per open connection, a lock per accept and per close, and one per
//! websocket upgrade request; nothing per message.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One accepted connection, as requests see it (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub id: u64,
    pub addr: SocketAddr,
}

/// The open connections of one worker.
#[derive(Default)]
pub struct Connections {
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: HashMap<u64, Open>,
    /// Engine.IO session id → the connection its websocket upgrade arrived on.
    by_session: HashMap<Box<str>, u64>,
}

struct Open {
    fd: RawFd,
    session: Option<Box<str>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, fd: RawFd) -> u64 {
        let id = self.next_id.fetch_add(1, Relaxed);
        self.lock().open.insert(id, Open { fd, session: None });
        id
    }

    /// Called before the descriptor closes, under the lock [`Connections::cut`] takes: a
    /// descriptor number the kernel reuses can never be cut by mistake.
    fn forget(&self, id: u64) {
        let mut state = self.lock();
        if let Some(Open {
            session: Some(session),
            ..
        }) = state.open.remove(&id)
            && state.by_session.get(&session) == Some(&id)
        {
            state.by_session.remove(&session);
        }
    }

    /// Notes that connection `id` carries the websocket of Engine.IO session `session`.
    pub fn note_websocket(&self, session: &str, id: u64) {
        let mut state = self.lock();
        let State { open, by_session } = &mut *state;
        if let Some(conn) = open.get_mut(&id) {
            conn.session = Some(session.into());
            by_session.insert(session.into(), id);
        }
    }

    /// Cuts the connection carrying `session`'s websocket: the one its upgrade arrived on, or
    /// else `handshake` (a client that opened with a websocket). False when neither is open
    /// (a polling session between requests).
    pub fn cut_session(&self, session: &str, handshake: Option<u64>) -> bool {
        let state = self.lock();
        let id = state.by_session.get(session).copied().or(handshake);
        let Some(conn) = id.and_then(|id| state.open.get(&id)) else {
            return false;
        };
        // SAFETY: `fd` is open: it leaves the map (under this lock) before it is closed.
        unsafe { libc::shutdown(conn.fd, libc::SHUT_RDWR) == 0 }
    }

    /// Open connections (for tests and /stats-like checks).
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The engine.io session a websocket upgrade request belongs to (`GET ...?sid=X` with
/// `Upgrade: websocket`); None for everything else.
fn upgrade_session(req: &Request) -> Option<String> {
    let upgrade = req.headers().get(http::header::UPGRADE)?;
    if !upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
        return None;
    }
    form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(key, _)| key == "sid")
        .map(|(_, sid)| sid.into_owned())
}

/// Request mapper: records which connection each websocket upgrade arrives on.
pub fn note_upgrades(conns: Arc<Connections>) -> impl Fn(Request) -> Request + Clone {
    move |req: Request| {
        if let (Some(session), Some(ConnectInfo(peer))) = (
            upgrade_session(&req),
            req.extensions().get::<ConnectInfo<Peer>>(),
        ) {
            conns.note_websocket(&session, peer.id);
        }
        req
    }
}

/// The worker's listener: accepts like axum's, and registers each connection.
pub struct TrackedListener {
    inner: TcpListener,
    conns: Arc<Connections>,
}

impl TrackedListener {
    pub fn new(inner: TcpListener, conns: Arc<Connections>) -> Self {
        TrackedListener { inner, conns }
    }
}

impl Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (TrackedStream, Peer) {
        // axum's own accept: retries, and waits out a lack of descriptors.
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let id = self.conns.register(stream.as_raw_fd());
        let stream = TrackedStream {
            inner: stream,
            id,
            conns: self.conns.clone(),
        };
        (stream, Peer { id, addr })
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            id: u64::MAX,
            addr: self.inner.local_addr()?,
        })
    }
}

impl Connected<IncomingStream<'_, TrackedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        *stream.remote_addr()
    }
}

/// An accepted connection that leaves the registry when it closes.
pub struct TrackedStream {
    inner: TcpStream,
    id: u64,
    conns: Arc<Connections>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        // Runs before `inner` (and its descriptor) is dropped.
        self.conns.forget(self.id);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_cut_connection_ends_and_a_closed_one_leaves_the_registry() {
        let conns = Arc::new(Connections::default());
        let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = inner.local_addr().expect("bound");
        let mut listener = TrackedListener::new(inner, conns.clone());
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (server_side, peer) = listener.accept().await;
        assert_eq!(conns.len(), 1);
        conns.note_websocket("abc", peer.id);
        assert!(conns.cut_session("abc", None), "cut by session");
        let mut byte = [0u8; 1];
        assert_eq!(client.read(&mut byte).await.expect("read"), 0, "EOF");
        drop(server_side);
        assert!(conns.is_empty());
        assert!(!conns.cut_session("abc", Some(peer.id)), "gone");
    }
}
