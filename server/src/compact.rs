//! Copies each request's URI and header values out of hyper's connection read buffer.
//!
//! Why it exists: hyper parses a request head without copying, so the URI and every header
//! value are slices of the connection's read buffer (8-16 KiB). engineioxide keeps the request
//! parts of every session for its whole life (`req_parts`), so each connected member pinned its
//! whole read buffer: measured with heaptrack, 16.4 KiB of the 41 KiB of heap per idle
//! websocket member. Rebuilding the URI and values from one exact-size copy (a few hundred
//! bytes) frees that buffer as soon as the upgrade is done; nothing else changes (same
//! headers, same order, same sensitivity flags, same extensions; axum's `OriginalUri`, a clone
//! of the URI kept in the extensions, is pointed at the copy as well).

use axum::extract::{OriginalUri, Request};
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue};
use http::{Uri, request::Parts};

/// Returns the request with its URI and header values backed by one compact buffer.
pub fn compact_request(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    compact_parts(&mut parts);
    Request::from_parts(parts, body)
}

fn compact_parts(parts: &mut Parts) {
    let uri = parts.uri.to_string();
    let size = uri.len() + parts.headers.values().map(|v| v.len()).sum::<usize>();
    let mut buf = BytesMut::with_capacity(size);
    buf.put_slice(uri.as_bytes());
    for value in parts.headers.values() {
        buf.put_slice(value.as_bytes());
    }
    let buf: Bytes = buf.freeze();
    let mut at = uri.len();
    // The text came from a valid URI: it parses again (if not, the original is kept).
    if let Ok(copy) = Uri::from_maybe_shared(buf.slice(..at)) {
        // axum's router keeps a clone of the URI as it arrived; that clone pins the buffer too.
        if let Some(original) = parts.extensions.get_mut::<OriginalUri>()
            && original.0 == copy
        {
            original.0 = copy.clone();
        }
        parts.uri = copy;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in parts.headers.iter() {
        let end = at + value.len();
        let copy = match HeaderValue::from_maybe_shared(buf.slice(at..end)) {
            Ok(mut copy) => {
                copy.set_sensitive(value.is_sensitive());
                copy
            }
            // Same bytes as an accepted value, so this does not happen; keep the original.
            Err(_) => value.clone(),
        };
        at = end;
        headers.append(name.clone(), copy);
    }
    parts.headers = headers;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_request_in_a_compact_buffer() {
        // Like hyper: the URI and the values are slices of one shared read buffer.
        let head = Bytes::from_static(
            b"/socket.io/?EIO=4&transport=websocket&roomid=r1 websocket x1 x2 \xe9t\xe9",
        );
        let piece = |text: &[u8]| {
            let at = head.windows(text.len()).position(|w| w == text).unwrap();
            head.slice(at..at + text.len())
        };
        let value = |text: &[u8]| HeaderValue::from_maybe_shared(piece(text)).unwrap();
        let mut req = Request::new(axum::body::Body::empty());
        *req.uri_mut() =
            Uri::from_maybe_shared(piece(b"/socket.io/?EIO=4&transport=websocket&roomid=r1"))
                .unwrap();
        let h = req.headers_mut();
        h.insert("upgrade", value(b"websocket"));
        h.append("x-forwarded-for", value(b"x1"));
        h.append("x-forwarded-for", value(b"x2"));
        let mut secret = value(b"\xe9t\xe9");
        secret.set_sensitive(true);
        h.insert("cookie", secret);
        let before = (req.uri().clone(), req.headers().clone());

        let req = compact_request(req);
        assert_eq!(req.uri(), &before.0);
        assert_eq!(
            req.uri().query(),
            Some("EIO=4&transport=websocket&roomid=r1")
        );
        assert_eq!(req.headers(), &before.1);
        let forwarded: Vec<_> = req.headers().get_all("x-forwarded-for").iter().collect();
        assert_eq!(forwarded, ["x1", "x2"]);
        assert!(req.headers()["cookie"].is_sensitive());
        assert_eq!(req.headers()["cookie"].as_bytes(), b"\xe9t\xe9");
    }
}
