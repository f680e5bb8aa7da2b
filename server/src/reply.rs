//! The `error` event: sent to one socket when its request is refused or its message is lost.
//!
//! Its own module because two layers send it: `chat` for refused requests, and `rooms` for
//! messages the bus reports it could not publish. Neither has to call into the other.

use socketioxide::extract::SocketRef;

use crate::metrics::Metrics;
use roomstorm_protocol::{EVENT_ERROR, ErrorCode, ErrorPayload};

/// Sends an `error` event to this socket only, and counts the rejection.
pub fn reply_error(socket: &SocketRef, metrics: &Metrics, code: ErrorCode, message: &str) {
    metrics.reject(code);
    let payload = ErrorPayload {
        code: code.as_str().to_string(),
        message: message.to_string(),
    };
    // A socket that is gone or whose queue is full cannot be told; the rejection is counted.
    let _ = socket.emit(EVENT_ERROR, &payload);
}
