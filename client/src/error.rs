//! Error types of the client.
//!
//! They exist so callers (the server's tests, the load generator's error counters) can tell
//! a refused connection from an HTTP error, an I/O error or a timeout without parsing strings,
//! while `Display` stays readable for logs.
//!
//! Each message already ends with its cause's message (callers print these errors with `{}`),
//! so no variant also hands that cause out as its `source()`: a chain printer (`{:#}` of
//! anyhow) would print it twice. The cause stays in the variant for callers that match on it.

use std::time::Duration;

/// Boxed error from a library (hyper, tungstenite) kept as the cause of our errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`connect`](crate::connect()) failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration cannot be used (bad URL, header, address family mismatch).
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
    /// The server answered the Socket.IO CONNECT with CONNECT_ERROR (`44{"message":...}`).
    #[error("server refused the connection: {message}")]
    Refused {
        /// The server's message, verbatim.
        message: String,
    },
    /// An HTTP request (polling, or the websocket upgrade) got a non-success status.
    #[error("HTTP {status} during {during}: {body}")]
    HttpStatus {
        /// Which step failed.
        during: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The response body as text (lossy UTF-8, truncated to 1 KiB).
        body: String,
    },
    /// A socket operation failed (connect, bind, read, write).
    #[error("I/O error during {during}: {error}")]
    Io {
        /// Which step failed.
        during: &'static str,
        /// The underlying error (in the message, not `source()`).
        error: std::io::Error,
    },
    /// The HTTP client or the websocket library failed for a reason other than plain I/O.
    #[error("transport error during {during}: {error}")]
    Transport {
        /// Which step failed.
        during: &'static str,
        /// The underlying error (in the message, not `source()`).
        error: BoxError,
    },
    /// The server sent something the Engine.IO / Socket.IO handshake does not allow.
    #[error("protocol error during {during}: {detail}")]
    Protocol {
        /// Which step failed.
        during: &'static str,
        /// What was received.
        detail: String,
    },
    /// The server closed the connection before the CONNECT ack.
    #[error("connection closed by the server during {during}: {detail}")]
    Closed {
        /// Which step was running.
        during: &'static str,
        /// Close frame or packet details.
        detail: String,
    },
    /// The whole connect (TCP, Engine.IO handshake, Socket.IO CONNECT) took longer than
    /// `connect_timeout`.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
}

/// Why a [`Sender`](crate::Sender) operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection was closed (by [`Sender::close`](crate::Sender::close), or after the
    /// receiver saw a disconnect).
    #[error("connection is closed")]
    Closed,
    /// The data could not be serialized to JSON.
    #[error("cannot serialize event data: {0}")]
    Json(serde_json::Error),
    /// A polling POST got a non-success HTTP status.
    #[error("HTTP {status} on polling POST: {body}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The response body as text (lossy UTF-8, truncated to 1 KiB).
        body: String,
    },
    /// Socket I/O failed.
    #[error("I/O error while sending: {0}")]
    Io(std::io::Error),
    /// The HTTP client or the websocket library failed.
    #[error("transport error while sending: {0}")]
    Transport(BoxError),
}

/// `?` on a serialization result (not `#[from]`, which would also make it the `source()`).
impl From<serde_json::Error> for SendError {
    fn from(e: serde_json::Error) -> Self {
        SendError::Json(e)
    }
}

/// Text of an HTTP body for an error message: lossy UTF-8, at most 1 KiB.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(1024)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a chain printer such as anyhow's `{:#}` writes: each error's message, then its
    /// source's, joined by `: `.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        text
    }

    #[test]
    fn the_cause_is_printed_once_by_display_and_by_a_chain_printer() {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let connect = ConnectError::Io {
            during: "Engine.IO handshake",
            error: refused(),
        };
        let send = SendError::Io(refused());
        let json = SendError::from(serde_json::from_str::<u8>("x").unwrap_err());
        let errors: [&dyn std::error::Error; 3] = [&connect, &send, &json];
        for e in errors {
            assert_eq!(chain(e), e.to_string(), "no cause added by source()");
        }
        assert_eq!(
            connect.to_string(),
            "I/O error during Engine.IO handshake: refused"
        );
        assert_eq!(send.to_string(), "I/O error while sending: refused");
    }
}
