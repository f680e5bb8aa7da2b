//! The connection cap (`--max-connections`): a handshake beyond it is refused before it costs
//! anything.
//!
//! Why it exists: past what a worker can hold (open files, memory), accepting more members
//! degrades every member it has. A new Engine.IO session starts with a request to the
//! Socket.IO path without a `sid` (a polling handshake, or a websocket upgrade straight away);
//! that request gets HTTP 503 with a short body while the worker is full, before socketioxide
//! creates a session or upgrades the connection. Requests of existing sessions pass. The check
//! reads the live socket count, so concurrent handshakes can pass it together; the connect
//! middleware (`chat::on_connect`) takes the slot itself and refuses the excess, which keeps
//! the cap exact.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::metrics::RefusedLabel;

/// socketioxide's default request path.
const SOCKET_IO_PATH: &str = "/socket.io";

/// Whether `sockets` sockets already fill a cap of `max` (0: no cap).
pub fn is_full(sockets: i64, max: usize) -> bool {
    max > 0 && sockets >= i64::try_from(max).unwrap_or(i64::MAX)
}

/// The refusal's text, the same for the HTTP 503 and the Socket.IO connect error.
pub fn refusal(max: usize) -> String {
    format!("this worker is full ({max} connections): try again later")
}

/// Middleware: answers 503 to a new session's first request while the worker is full.
pub async fn gate(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let max = app.config.max_connections;
    if is_full(app.metrics.sockets.load(Relaxed), max) && opens_a_session(&req) {
        app.metrics.refuse_connect(RefusedLabel::MaxConnections);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("{}\n", refusal(max)),
        )
            .into_response();
    }
    next.run(req).await
}

/// A request to the Socket.IO path that carries no session id.
fn opens_a_session(req: &Request) -> bool {
    socket_io_query(req)
        .is_some_and(|query| !form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "sid"))
}

/// The query string (empty when none) of a request to the Socket.IO path; `None` for any
/// other path.
pub fn socket_io_query(req: &Request) -> Option<&str> {
    let rest = req.uri().path().strip_prefix(SOCKET_IO_PATH)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| req.uri().query().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("valid request")
    }

    #[test]
    fn only_a_new_session_is_gated() {
        assert!(opens_a_session(&request(
            "/socket.io/?EIO=4&transport=polling&roomid=a"
        )));
        assert!(opens_a_session(&request(
            "/socket.io/?EIO=4&transport=websocket"
        )));
        assert!(!opens_a_session(&request(
            "/socket.io/?EIO=4&transport=polling&sid=x"
        )));
        assert!(!opens_a_session(&request("/metrics")));
        assert!(!opens_a_session(&request("/socket.iox/?EIO=4")));
    }

    #[test]
    fn zero_means_no_cap() {
        assert!(!is_full(1_000_000, 0));
        assert!(!is_full(2, 3));
        assert!(is_full(3, 3));
    }
}
