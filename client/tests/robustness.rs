//! Tests against scripted fake servers that misbehave in ways socketioxide never does.
//!
//! They exist to prove that malformed or missing server frames end in a readable error or a
//! `Disconnected`, never a panic or a hang: garbage packets, broken JSON, missing pings,
//! garbage handshakes, and abrupt closes.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomstorm_client::{ClientConfig, ConnectError, Incoming, RawIncoming, Transport, connect};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);
const OPEN: &str = r#"0{"sid":"fake","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;

/// A websocket server for one connection: sends `open`, waits for `40`, answers with
/// `ack` (if any), then sends `script` and keeps reading until the client goes away.
async fn fake_ws(
    open: &'static str,
    ack: Option<&'static str>,
    script: Vec<Message>,
) -> SocketAddr {
    fake_ws_paced(open, ack, script, Duration::ZERO).await.0
}

/// Like [`fake_ws`], with a pause between scripted messages; returns the text messages the
/// client sent after the CONNECT ack.
async fn fake_ws_paced(
    open: &'static str,
    ack: Option<&'static str>,
    script: Vec<Message>,
    pace: Duration,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        ws.send(Message::text(open)).await.unwrap();
        let Some(ack) = ack else {
            // Close right after the open packet.
            ws.close(None).await.ok();
            return;
        };
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "40" => break,
                Some(Ok(_)) => {}
                _ => return,
            }
        }
        ws.send(Message::text(ack)).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m {
                    seen_tx.send(t.as_str().to_owned()).ok();
                }
            }
        });
        for m in script {
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            if sink.send(m).await.is_err() {
                return;
            }
        }
        reader.await.ok();
    });
    (addr, seen)
}

fn ws_config(addr: SocketAddr) -> ClientConfig {
    let mut cfg = ClientConfig::new(format!("http://{addr}")).transport(Transport::WebSocket);
    cfg.connect_timeout = WAIT;
    cfg
}

async fn next(rx: &mut roomstorm_client::Receiver) -> Option<Incoming> {
    tokio::time::timeout(WAIT, rx.next()).await.expect("hang")
}

#[tokio::test]
async fn missing_pings_are_detected() {
    let open =
        r#"0{"sid":"fake","upgrades":[],"pingInterval":50,"pingTimeout":50,"maxPayload":1000}"#;
    let addr = fake_ws(open, Some(r#"40{"sid":"s1"}"#), vec![]).await;
    let (tx, mut rx) = connect(&ws_config(addr)).await.expect("connect");
    assert_eq!(tx.socket_sid(), "s1");
    assert_eq!(tx.engine_sid(), "fake");
    match next(&mut rx).await {
        Some(Incoming::Disconnected { reason }) => {
            assert!(reason.contains("ping timeout"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(next(&mut rx).await.is_none());
    assert!(tx.is_closed());
}

#[tokio::test]
async fn pings_are_answered_and_reset_the_deadline() {
    // Window 2 s; 15 pings 200 ms apart span 3 s: only resetting the deadline on each
    // ping keeps the connection up until the final event.
    let open =
        r#"0{"sid":"fake","upgrades":[],"pingInterval":1000,"pingTimeout":1000,"maxPayload":1000}"#;
    let mut script: Vec<_> = (0..15).map(|_| Message::text("2")).collect();
    script.push(Message::text(r#"42["done"]"#));
    let (addr, mut seen) =
        fake_ws_paced(open, Some("40"), script, Duration::from_millis(200)).await;
    let (_tx, mut rx) = connect(&ws_config(addr)).await.expect("connect");
    match next(&mut rx).await {
        Some(Incoming::Event { name, data, .. }) => {
            assert_eq!(name, "done");
            assert_eq!(data, serde_json::Value::Null);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.pings_received(), 15);
    for _ in 0..15 {
        let pong = tokio::time::timeout(WAIT, seen.recv()).await.expect("hang");
        assert_eq!(pong.as_deref(), Some("3"));
    }
}

#[tokio::test]
async fn control_and_foreign_packets_are_skipped() {
    let script = vec![
        Message::text("6"),
        Message::binary(vec![1u8, 2, 3]),
        Message::text(""),
        Message::text("3"),
        Message::text("5"),
        Message::text(r#"40{"sid":"again"}"#),
        Message::text(r#"42/other,["ignored"]"#),
        Message::text(r#"43["ack ignored"]"#),
        Message::text(r#"451-["bin",{"_placeholder":true,"num":0}]"#),
        Message::text(r#"42["ok",{"a":1},2]"#),
    ];
    let addr = fake_ws(OPEN, Some("40"), script).await;
    let (_tx, mut rx) = connect(&ws_config(addr)).await.expect("connect");
    match next(&mut rx).await {
        Some(Incoming::Event { name, data, raw }) => {
            assert_eq!(name, "ok");
            assert_eq!(data, json!({"a": 1}));
            assert_eq!(raw, r#"42["ok",{"a":1},2]"#);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_server_frames_end_in_disconnected() {
    for bad in [
        "4garbage",
        "x",
        "42",
        r#"42{"a":1}"#,
        r#"42["unterminated""#,
        "42[1]",
        r#"42["a",}"#,
        "49",
        "44",
        "4",
        r#"4299999999999999999999999["a"]"#,
    ] {
        let script = vec![Message::text(r#"42["ok",1]"#), Message::text(bad)];
        let addr = fake_ws(OPEN, Some("40"), script).await;
        let (tx, mut rx) = connect(&ws_config(addr)).await.expect("connect");
        match next(&mut rx).await {
            Some(Incoming::Event { name, .. }) => assert_eq!(name, "ok"),
            other => panic!("{bad}: {other:?}"),
        }
        match next(&mut rx).await {
            Some(Incoming::Disconnected { reason }) => assert!(!reason.is_empty(), "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
        assert!(next(&mut rx).await.is_none(), "{bad}");
        assert!(tx.emit("x", &1).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn raw_path_leaves_json_errors_to_the_caller() {
    let script = vec![Message::text(r#"42["unterminated""#), Message::text("41")];
    let addr = fake_ws(OPEN, Some("40"), script).await;
    let (_tx, mut rx) = connect(&ws_config(addr)).await.expect("connect");
    match tokio::time::timeout(WAIT, rx.next_raw())
        .await
        .expect("hang")
    {
        Some(RawIncoming::Event(ev)) => {
            assert_eq!(ev.packet(), r#"42["unterminated""#);
            assert!(ev.head().is_err());
            assert!(ev.to_incoming().is_err());
        }
        other => panic!("{other:?}"),
    }
    match tokio::time::timeout(WAIT, rx.next_raw())
        .await
        .expect("hang")
    {
        Some(RawIncoming::Disconnected(reason)) => assert!(reason.contains("41"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(rx.next_raw().await.is_none());
}

#[tokio::test]
async fn server_engine_close_and_websocket_close() {
    let addr = fake_ws(OPEN, Some("40"), vec![Message::text("1")]).await;
    let (_tx, mut rx) = connect(&ws_config(addr)).await.expect("connect");
    match next(&mut rx).await {
        Some(Incoming::Disconnected { reason }) => {
            assert!(reason.contains("Engine.IO"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    let addr = fake_ws(OPEN, Some("40"), vec![Message::Close(None)]).await;
    let (_tx, mut rx) = connect(&ws_config(addr)).await.expect("connect");
    match next(&mut rx).await {
        Some(Incoming::Disconnected { reason }) => {
            assert!(reason.contains("websocket"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_handshakes_are_connect_errors() {
    for open in ["garbage", "0{not json", r#"40{"sid":"x"}"#, "0"] {
        let addr = fake_ws(open, Some("40"), vec![]).await;
        let err = connect(&ws_config(addr)).await.expect_err(open);
        assert!(
            matches!(err, ConnectError::Protocol { .. }),
            "{open}: {err:?}"
        );
        assert!(err.to_string().contains("protocol error"), "{err}");
    }
    // Garbage instead of the CONNECT ack.
    let addr = fake_ws(OPEN, Some("4garbage"), vec![]).await;
    let err = connect(&ws_config(addr)).await.expect_err("garbage ack");
    assert!(matches!(err, ConnectError::Protocol { .. }), "{err:?}");
    // CONNECT_ERROR with a plain string (Socket.IO v4 legacy form).
    let addr = fake_ws(OPEN, Some(r#"44"not today""#), vec![]).await;
    match connect(&ws_config(addr)).await {
        Err(ConnectError::Refused { message }) => assert_eq!(message, "not today"),
        other => panic!("{other:?}"),
    }
    // Server closes right after the open packet.
    let addr = fake_ws(OPEN, None, vec![]).await;
    let err = connect(&ws_config(addr)).await.expect_err("closed");
    assert!(matches!(err, ConnectError::Closed { .. }), "{err:?}");
}

/// A raw HTTP server answering every request with `response`.
async fn fake_http(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                s.write_all(response).await.ok();
                s.shutdown().await.ok();
            });
        }
    });
    addr
}

#[tokio::test]
async fn bad_polling_handshakes_are_connect_errors() {
    for (response, what) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\ngarbage"[..],
            "garbage",
        ),
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n0\xff\xfe"[..],
            "not utf-8",
        ),
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
            "empty",
        ),
    ] {
        let addr = fake_http(response).await;
        let mut cfg = ClientConfig::new(format!("http://{addr}")).transport(Transport::Polling);
        cfg.connect_timeout = WAIT;
        let err = connect(&cfg).await.expect_err(what);
        assert!(
            matches!(err, ConnectError::Protocol { .. }),
            "{what}: {err:?}"
        );
    }
    let addr = fake_http(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 41\r\nConnection: close\r\n\r\n{\"code\":1,\"message\":\"Session ID unknown\"}").await;
    let cfg = ClientConfig::new(format!("http://{addr}")).transport(Transport::Polling);
    match connect(&cfg).await {
        Err(ConnectError::HttpStatus { status, body, .. }) => {
            assert_eq!(status, 400);
            assert!(body.contains("Session ID unknown"), "{body}");
        }
        other => panic!("{other:?}"),
    }
}

/// A server frame (unmasked text frame of fewer than 126 bytes).
fn text_frame(text: &str) -> Vec<u8> {
    let mut frame = vec![0x81, u8::try_from(text.len()).unwrap()];
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// A raw websocket server whose 101 response arrives in one write with the Engine.IO open
/// packet behind it: the client's own upgrade code must hand those bytes to the websocket.
/// With `wrong_accept` it answers a bad `Sec-WebSocket-Accept` instead.
async fn raw_ws_server(wrong_accept: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&seen).to_string();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let accept = if wrong_accept {
            "bm90IHRoZSByaWdodCBrZXk=".to_owned()
        } else {
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
        };
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        out.extend(text_frame(
            r#"0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        ));
        s.write_all(&out).await.ok();
        // The client's masked `40`: 2 header bytes, 4 mask bytes, 2 payload bytes.
        let mut connect = [0u8; 8];
        if s.read_exact(&mut connect).await.is_err() {
            return;
        }
        let mut rest = text_frame(r#"40{"sid":"x"}"#);
        rest.extend(text_frame(r#"42["hi",1]"#));
        s.write_all(&rest).await.ok();
        // Hold the connection until the client goes away.
        let _ = s.read(&mut buf).await;
    });
    addr
}

#[tokio::test]
async fn the_websocket_upgrade_keeps_frames_sent_with_the_response() {
    let addr = raw_ws_server(false).await;
    let mut cfg = ClientConfig::new(format!("http://{addr}"));
    cfg.connect_timeout = WAIT;
    let (tx, mut rx) = connect(&cfg).await.expect("connects");
    assert_eq!(tx.socket_sid(), "x");
    match rx.next().await {
        Some(Incoming::Event { name, data, .. }) => {
            assert_eq!(name, "hi");
            assert_eq!(data, json!(1));
        }
        other => panic!("{other:?}"),
    }

    let addr = raw_ws_server(true).await;
    let mut cfg = ClientConfig::new(format!("http://{addr}"));
    cfg.connect_timeout = WAIT;
    let err = connect(&cfg).await.expect_err("bad accept key");
    assert!(err.to_string().to_lowercase().contains("accept"), "{err}");
}
