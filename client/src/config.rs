//! Connection settings and the request targets derived from them.
//!
//! This exists to turn the user's [`ClientConfig`] into what the transports need once per
//! connection (host, port, request paths with the Engine.IO query, validated headers), so
//! configuration mistakes surface as [`ConnectError::InvalidConfig`] before any I/O.

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::ConnectError;

/// How the client talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Straight to a websocket (`transport=websocket`, no polling phase).
    #[default]
    WebSocket,
    /// HTTP long-polling only.
    Polling,
    /// Polling handshake and Socket.IO CONNECT, then upgrade to a websocket
    /// (`2probe` / `3probe` / `5`), like the JavaScript client.
    Upgrade,
}

/// Everything [`connect`](crate::connect()) needs to open one Socket.IO connection.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server base URL, e.g. `http://127.0.0.1:8080` (`http://` or `ws://`; no TLS).
    pub base_url: String,
    /// Engine.IO request path, default `/socket.io/`.
    pub path: String,
    /// Extra query parameters, e.g. `[("roomid", "r1")]`; percent-encoded by the client.
    pub query: Vec<(String, String)>,
    /// Transport to use.
    pub transport: Transport,
    /// Local source address for every socket of this connection (websocket and each polling
    /// request), e.g. `127.0.3.1`, so nginx `ip_hash` keeps the session on one worker.
    pub bind_addr: Option<IpAddr>,
    /// When set, `X-Forwarded-For: <ip>` is sent on every HTTP request, including the
    /// websocket upgrade.
    pub forwarded_for: Option<IpAddr>,
    /// Limit for the whole connect: TCP, Engine.IO handshake, upgrade and CONNECT ack.
    pub connect_timeout: Duration,
    /// Extra HTTP headers on every request, e.g. `("Origin", "http://example")`.
    pub extra_headers: Vec<(String, String)>,
    /// The Socket.IO namespace to connect to, `/` (the main one) by default, e.g. `/chat`.
    pub namespace: String,
    /// The Socket.IO CONNECT payload (`auth` of the JavaScript client), as the JSON text of an
    /// object, e.g. `{"token":"abc"}`; `None` sends none. Not shown by `Debug` (it may hold a
    /// secret).
    pub auth: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("transport", &self.transport)
            .field("bind_addr", &self.bind_addr)
            .field("forwarded_for", &self.forwarded_for)
            .field("connect_timeout", &self.connect_timeout)
            .field("extra_headers", &self.extra_headers)
            .field("namespace", &self.namespace)
            .field("auth", &self.auth.as_ref().map(|_| "<not shown>"))
            .finish()
    }
}

impl ClientConfig {
    /// A websocket configuration for `base_url` with the default path and a 10 s timeout.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            path: "/socket.io/".to_owned(),
            query: Vec::new(),
            transport: Transport::WebSocket,
            bind_addr: None,
            forwarded_for: None,
            connect_timeout: Duration::from_secs(10),
            extra_headers: Vec::new(),
            namespace: "/".to_owned(),
            auth: None,
        }
    }

    /// Sets the transport.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Adds one query parameter.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }
}

/// The parsed, validated form of a [`ClientConfig`], shared by all requests of a connection.
#[derive(Debug)]
pub(crate) struct ResolvedConfig {
    /// Host as written in the URL (IP literal or name), without brackets.
    pub host: String,
    pub port: u16,
    /// `host:port` for URLs and the Host header (IPv6 in brackets).
    pub authority: String,
    /// Path plus `?EIO=4` plus the user's query, without `transport=` and `sid=`.
    pub path_and_query: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The namespace, `/` or `/name`.
    pub namespace: String,
    /// The CONNECT packet: `40`, with the namespace and the auth object when set.
    pub connect_packet: String,
}

impl ResolvedConfig {
    pub fn from_config(cfg: &ClientConfig) -> Result<Self, ConnectError> {
        let bad = |m: String| ConnectError::InvalidConfig(m);
        let uri: http::Uri = cfg
            .base_url
            .parse()
            .map_err(|e| bad(format!("base_url {:?}: {e}", cfg.base_url)))?;
        match uri.scheme_str() {
            Some("http") | Some("ws") => {}
            other => {
                return Err(bad(format!(
                    "base_url {:?}: scheme {other:?} is not supported (use http:// or ws://)",
                    cfg.base_url
                )));
            }
        }
        let host = uri
            .host()
            .ok_or_else(|| bad(format!("base_url {:?} has no host", cfg.base_url)))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };

        let mut path_and_query = String::with_capacity(64);
        if !cfg.path.starts_with('/') {
            path_and_query.push('/');
        }
        path_and_query.push_str(&cfg.path);
        path_and_query.push_str("?EIO=4");
        for (k, v) in &cfg.query {
            path_and_query.push('&');
            percent_encode_into(k, &mut path_and_query);
            path_and_query.push('=');
            percent_encode_into(v, &mut path_and_query);
        }

        let mut headers = Vec::new();
        if let Some(ip) = cfg.forwarded_for {
            headers.push((
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(&ip.to_string())
                    .map_err(|e| bad(format!("forwarded_for: {e}")))?,
            ));
        }
        for (k, v) in &cfg.extra_headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad(format!("header name {k:?}: {e}")))?;
            let value =
                HeaderValue::from_str(v).map_err(|e| bad(format!("header {k:?} value: {e}")))?;
            headers.push((name, value));
        }
        let namespace = check_namespace(&cfg.namespace).map_err(bad)?;
        let auth = cfg
            .auth
            .as_deref()
            .map(check_auth)
            .transpose()
            .map_err(bad)?;
        Ok(ResolvedConfig {
            host,
            port,
            authority,
            path_and_query,
            headers,
            connect_packet: crate::codec::encode_connect(&namespace, auth),
            namespace,
        })
    }

    /// `http://host:port/path?EIO=4&transport=polling[&sid=..]&query`
    pub fn polling_url(&self, sid: Option<&str>) -> String {
        self.url("http", "polling", sid)
    }

    /// `ws://host:port/path?EIO=4&transport=websocket[&sid=..]&query`
    pub fn websocket_url(&self, sid: Option<&str>) -> String {
        self.url("ws", "websocket", sid)
    }

    fn url(&self, scheme: &str, transport: &str, sid: Option<&str>) -> String {
        let mut url = format!(
            "{scheme}://{}{}&transport={transport}",
            self.authority, self.path_and_query
        );
        if let Some(sid) = sid {
            url.push_str("&sid=");
            percent_encode_into(sid, &mut url);
        }
        url
    }
}

/// A namespace as the wire writes it: `/` alone, or `/` and a name without `,` (which ends the
/// namespace in a packet) or control characters; an empty one is the main namespace.
fn check_namespace(namespace: &str) -> Result<String, String> {
    if namespace.is_empty() || namespace == "/" {
        return Ok("/".to_owned());
    }
    let fine = namespace.starts_with('/')
        && !namespace.contains(',')
        && !namespace.chars().any(char::is_control);
    if fine {
        Ok(namespace.to_owned())
    } else {
        Err(format!(
            "namespace {namespace:?}: must start with / and hold no comma or control character"
        ))
    }
}

/// The auth payload must be a JSON object: Socket.IO servers refuse anything else.
fn check_auth(auth: &str) -> Result<&str, String> {
    match serde_json::from_str::<serde_json::Value>(auth) {
        Ok(serde_json::Value::Object(_)) => Ok(auth.trim()),
        Ok(_) => Err("auth must be a JSON object".to_owned()),
        Err(e) => Err(format!("auth is not JSON: {e}")),
    }
}

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is percent-encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `s` percent-encoded (UTF-8, upper-case hex) for a query key or value.
fn percent_encode_into(s: &str, out: &mut String) {
    out.extend(utf8_percent_encode(s, NOT_UNRESERVED));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let mut cfg = ClientConfig::new("http://127.0.0.1:8080/")
            .query("roomid", "r 1&x=é")
            .query("name", "bob");
        cfg.forwarded_for = Some("10.1.2.3".parse().unwrap());
        cfg.extra_headers.push(("Origin".into(), "http://x".into()));
        let t = ResolvedConfig::from_config(&cfg).unwrap();
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 8080);
        assert_eq!(
            t.polling_url(None),
            "http://127.0.0.1:8080/socket.io/?EIO=4&roomid=r%201%26x%3D%C3%A9&name=bob&transport=polling"
        );
        assert_eq!(
            t.websocket_url(Some("ab-_c")),
            "ws://127.0.0.1:8080/socket.io/?EIO=4&roomid=r%201%26x%3D%C3%A9&name=bob&transport=websocket&sid=ab-_c"
        );
        assert_eq!(t.headers.len(), 2);
        assert_eq!(t.headers[0].1, "10.1.2.3");
    }

    #[test]
    fn ipv6_and_defaults() {
        let mut cfg = ClientConfig::new("ws://[::1]");
        cfg.path = "chat/".into();
        let t = ResolvedConfig::from_config(&cfg).unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 80);
        assert_eq!(
            t.polling_url(None),
            "http://[::1]:80/chat/?EIO=4&transport=polling"
        );
    }

    #[test]
    fn rejected_configs() {
        for url in ["https://x", "nonsense url", "/relative"] {
            let cfg = ClientConfig::new(url);
            assert!(matches!(
                ResolvedConfig::from_config(&cfg),
                Err(ConnectError::InvalidConfig(_))
            ));
        }
        let mut cfg = ClientConfig::new("http://x");
        cfg.extra_headers.push(("bad header".into(), "v".into()));
        assert!(ResolvedConfig::from_config(&cfg).is_err());
        for (namespace, auth) in [
            ("chat", None),
            ("/a,b", None),
            ("/", Some("[1]")),
            ("/", Some("{oops")),
        ] {
            let mut cfg = ClientConfig::new("http://x");
            cfg.namespace = namespace.into();
            cfg.auth = auth.map(String::from);
            assert!(
                matches!(
                    ResolvedConfig::from_config(&cfg),
                    Err(ConnectError::InvalidConfig(_))
                ),
                "{namespace:?} {auth:?}"
            );
        }
    }

    #[test]
    fn the_connect_packet_carries_namespace_and_auth_and_debug_hides_auth() {
        let mut cfg = ClientConfig::new("http://x");
        assert_eq!(
            ResolvedConfig::from_config(&cfg).unwrap().connect_packet,
            "40"
        );
        cfg.namespace = "/chat".into();
        cfg.auth = Some(r#" {"token":"s3cret"} "#.into());
        let t = ResolvedConfig::from_config(&cfg).unwrap();
        assert_eq!(t.connect_packet, r#"40/chat,{"token":"s3cret"}"#);
        assert_eq!(t.namespace, "/chat");
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }
}
