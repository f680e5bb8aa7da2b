//! Integration tests of the client against a real socketioxide 0.18 server, for each
//! transport (websocket, polling, polling upgraded to websocket).
//!
//! They exist to prove the behaviour the chat server's tests and the load generator rely on:
//! echo round trips, refusal messages, source-address binding and X-Forwarded-For on every
//! request, heartbeats, clean close, server kicks, malformed frames and binary attachments.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{WAIT, expect_disconnect, expect_event, next, start};
use roomstorm_client::{ConnectError, Incoming, RawIncoming, Transport, connect};
use serde_json::json;
use socketioxide::socket::DisconnectReason;

const ALL: [Transport; 3] = [Transport::WebSocket, Transport::Polling, Transport::Upgrade];

async fn echo_and_close(transport: Transport) {
    let mut server = start(None).await;
    let (tx, mut rx) = connect(&server.config(transport)).await.expect("connect");

    let common::ServerEvent::Connected { sid, roomid, .. } = server.next_event().await else {
        panic!("expected Connected first");
    };
    assert_eq!(sid, tx.socket_sid());
    assert_eq!(roomid, "r1");
    assert!(!tx.engine_sid().is_empty());

    // Emitted by the server's connect handler right after the ack.
    let (welcome, _) = expect_event(&mut rx, "welcome").await;
    assert_eq!(welcome, json!({ "sid": sid }));

    // \u{1e} is the polling record separator: it must survive JSON escaping and splitting.
    let payload = json!({ "n": 1, "text": "héllo \u{1e} \"world\"", "list": [1, 2, 3] });
    tx.emit("echo", &payload).await.expect("emit");
    let (data, raw) = expect_event(&mut rx, "echo").await;
    assert_eq!(data, payload);
    assert!(raw.starts_with(r#"42["echo","#), "{raw}");

    tx.emit_raw_json("echo", r#"[1,"two"]"#)
        .await
        .expect("emit raw");
    let (data, _) = expect_event(&mut rx, "echo").await;
    assert_eq!(data, json!([1, "two"]));

    // Fast path: borrowed text, head parsed without a Value.
    tx.emit("echo", &json!({"k": "v"})).await.expect("emit");
    match tokio::time::timeout(WAIT, rx.next_raw())
        .await
        .expect("wait")
    {
        Some(RawIncoming::Event(ev)) => {
            let head = ev.head().expect("head");
            assert_eq!(head.name, "echo");
            assert_eq!(head.first_arg.map(|r| r.get()), Some(r#"{"k":"v"}"#));
            assert_eq!(ev.packet(), r#"42["echo",{"k":"v"}]"#);
            assert_eq!(ev.args_json(), r#"["echo",{"k":"v"}]"#);
        }
        other => panic!("expected an event, got {other:?}"),
    }

    // A clone works from another task.
    let tx2 = tx.clone();
    tokio::spawn(async move { tx2.emit("echo", &"from task").await })
        .await
        .expect("join")
        .expect("emit from task");
    let (data, _) = expect_event(&mut rx, "echo").await;
    assert_eq!(data, json!("from task"));

    tx.close().await.expect("close");
    assert!(tx.is_closed());
    assert_eq!(
        server.disconnected(&sid).await,
        DisconnectReason::ClientNSDisconnect
    );
    let reason = expect_disconnect(&mut rx).await;
    assert_eq!(reason, "closed by the client");
    assert!(rx.next().await.is_none());
    assert!(matches!(
        tx.emit("echo", &1).await,
        Err(roomstorm_client::SendError::Closed)
    ));
    // Idempotent.
    tx.close().await.expect("second close");
}

#[tokio::test]
async fn websocket_echo_and_close() {
    echo_and_close(Transport::WebSocket).await;
}

#[tokio::test]
async fn polling_echo_and_close() {
    echo_and_close(Transport::Polling).await;
}

#[tokio::test]
async fn upgrade_echo_and_close() {
    echo_and_close(Transport::Upgrade).await;
}

#[tokio::test]
async fn refused_without_roomid() {
    let server = start(None).await;
    for transport in ALL {
        let mut cfg = server.config(transport);
        cfg.query.clear();
        match connect(&cfg).await {
            Err(ConnectError::Refused { message }) => {
                assert_eq!(message, "missing roomid query parameter")
            }
            other => panic!("{transport:?}: expected Refused, got {other:?}"),
        }
    }
    // Display carries the message.
    let mut cfg = server.config(Transport::WebSocket);
    cfg.query.clear();
    let err = connect(&cfg).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "server refused the connection: missing roomid query parameter"
    );
}

#[tokio::test]
async fn bind_addr_and_forwarded_for_on_every_request() {
    let mut server = start(None).await;
    let source: IpAddr = "127.0.0.5".parse().unwrap();
    for (i, transport) in ALL.into_iter().enumerate() {
        let room = format!("bind{i}");
        let mut cfg = server.config(transport);
        cfg.query = vec![("roomid".into(), room.clone())];
        cfg.bind_addr = Some(source);
        cfg.forwarded_for = Some("10.9.8.7".parse().unwrap());
        cfg.extra_headers
            .push(("Origin".into(), "http://roomstorm.test".into()));
        let (tx, mut rx) = connect(&cfg).await.expect("connect");

        let common::ServerEvent::Connected {
            sid,
            peer,
            forwarded_for,
            origin,
            roomid,
            ..
        } = server.next_event().await
        else {
            panic!("expected Connected");
        };
        assert_eq!(roomid, room);
        assert_eq!(peer.map(|p| p.ip()), Some(source), "{transport:?}");
        assert_eq!(forwarded_for.as_deref(), Some("10.9.8.7"));
        assert_eq!(origin.as_deref(), Some("http://roomstorm.test"));

        // Some traffic in both directions so polling does several GETs and POSTs.
        for n in 0..3 {
            tx.emit("echo", &n).await.expect("emit");
            let (data, _) = expect_event(&mut rx, "echo").await;
            assert_eq!(data, json!(n));
        }

        let reqs: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.query.contains(&format!("roomid={room}")))
            .collect();
        let expected_min = match transport {
            Transport::WebSocket => 1,
            Transport::Polling => 6, // handshake, POST 40, GET ack, POSTs and GETs of the echos
            Transport::Upgrade => 4, // handshake, POST 40, GET ack, websocket
        };
        assert!(reqs.len() >= expected_min, "{transport:?}: {reqs:?}");
        for r in &reqs {
            assert_eq!(r.peer.ip(), source, "{transport:?}: {r:?}");
            assert_eq!(r.forwarded_for.as_deref(), Some("10.9.8.7"), "{r:?}");
            assert_eq!(r.origin.as_deref(), Some("http://roomstorm.test"), "{r:?}");
        }
        let ws_requests = reqs
            .iter()
            .filter(|r| r.query.contains("transport=websocket"))
            .count();
        let post_requests = reqs.iter().filter(|r| r.method == "POST").count();
        match transport {
            Transport::WebSocket => assert_eq!((ws_requests, post_requests), (1, 0)),
            Transport::Polling => {
                assert_eq!(ws_requests, 0);
                assert!(post_requests >= 4, "{reqs:?}");
            }
            Transport::Upgrade => {
                assert_eq!(ws_requests, 1);
                // Only the CONNECT (and maybe pongs) went by POST: the echos used the websocket.
                assert!(post_requests >= 1, "{reqs:?}");
                let ws = reqs
                    .iter()
                    .find(|r| r.query.contains("transport=websocket"))
                    .expect("ws request");
                assert!(
                    ws.query.contains(&format!("sid={}", tx.engine_sid())),
                    "{ws:?}"
                );
            }
        }
        tx.close().await.expect("close");
        expect_disconnect(&mut rx).await;
        server.disconnected(&sid).await;
    }
}

/// The server pings every 50 ms, and socketioxide sends the next ping only after the pong
/// of the previous one: seeing six pings proves five pongs arrived. The generous pong timeout
/// (5 s) keeps a slow machine from failing the test.
#[tokio::test]
async fn heartbeats_are_answered() {
    let mut server = start(Some((Duration::from_millis(50), Duration::from_secs(5)))).await;
    for transport in ALL {
        let (tx, mut rx) = connect(&server.config(transport)).await.expect("connect");
        let common::ServerEvent::Connected { sid, .. } = server.next_event().await else {
            panic!("expected Connected");
        };
        // Idle reader: poll the receiver until several pings were seen and answered.
        let guard = tokio::time::Instant::now() + WAIT;
        while rx.pings_received() < 6 {
            assert!(tokio::time::Instant::now() < guard, "too few pings");
            match tokio::time::timeout(Duration::from_millis(20), rx.next()).await {
                Err(_) | Ok(Some(Incoming::Event { .. })) => {}
                Ok(other) => panic!("{transport:?}: unexpected {other:?}"),
            }
        }
        // Still connected on both sides.
        tx.emit("echo", &"alive").await.expect("emit");
        let (data, _) = expect_event(&mut rx, "echo").await;
        assert_eq!(data, json!("alive"));
        assert!(server.events.try_recv().is_err(), "server saw an event");
        tx.close().await.expect("close");
        assert_eq!(
            server.disconnected(&sid).await,
            DisconnectReason::ClientNSDisconnect
        );
    }
}

/// Without a reader the pings go unanswered: the server ends the session (heartbeat
/// timeout) and the receiver reports it when it is polled again.
#[tokio::test]
async fn unanswered_pings_end_the_session() {
    let mut server = start(Some((Duration::from_millis(30), Duration::from_millis(60)))).await;
    let (_tx, mut rx) = connect(&server.config(Transport::WebSocket))
        .await
        .expect("connect");
    let common::ServerEvent::Connected { sid, .. } = server.next_event().await else {
        panic!("expected Connected");
    };
    assert_eq!(
        server.disconnected(&sid).await,
        DisconnectReason::HeartbeatTimeout
    );
    let reason = expect_disconnect(&mut rx).await;
    assert!(!reason.is_empty());
}

#[tokio::test]
async fn server_kick_is_reported() {
    let mut server = start(None).await;
    for transport in ALL {
        let (tx, mut rx) = connect(&server.config(transport)).await.expect("connect");
        let common::ServerEvent::Connected { sid, .. } = server.next_event().await else {
            panic!("expected Connected");
        };
        tx.emit("kick", &()).await.expect("emit");
        let reason = expect_disconnect(&mut rx).await;
        assert!(reason.contains("41"), "{transport:?}: {reason}");
        assert_eq!(
            server.disconnected(&sid).await,
            DisconnectReason::ServerNSDisconnect
        );
        assert!(rx.next().await.is_none());
        assert!(tx.emit("echo", &1).await.is_err());
    }
}

#[tokio::test]
async fn malformed_client_frames_get_us_disconnected() {
    let mut server = start(None).await;
    for transport in ALL {
        for bad in [r#"42["say""#, "4garbage"] {
            let (tx, mut rx) = connect(&server.config(transport)).await.expect("connect");
            let common::ServerEvent::Connected { sid, .. } = server.next_event().await else {
                panic!("expected Connected");
            };
            // The frame goes out unmodified; what happens next is the server's business
            // (socketioxide closes the session), the client must just report it.
            let _ = tx.send_raw_engineio(bad.to_owned()).await;
            let reason = expect_disconnect(&mut rx).await;
            assert!(!reason.is_empty());
            let server_reason = server.disconnected(&sid).await;
            assert_eq!(
                server_reason,
                DisconnectReason::PacketParsingError,
                "{transport:?} {bad}"
            );
        }
    }
}

#[tokio::test]
async fn binary_attachment() {
    let server = start(None).await;
    for transport in ALL {
        let (tx, mut rx) = connect(&server.config(transport)).await.expect("connect");
        tx.send_raw_engineio(r#"451-["bin",{"_placeholder":true,"num":0}]"#.to_owned())
            .await
            .expect("send header");
        tx.send_raw_binary(vec![1, 2, 3, 4, 5])
            .await
            .expect("send binary");
        let (len, _) = expect_event(&mut rx, "bin_len").await;
        assert_eq!(len, json!(5), "{transport:?}");
        tx.close().await.expect("close");
    }
}

/// Events emitted by the server while the client connects and upgrades are delivered once
/// each, in order, whatever side of the polling/websocket switch they fall on.
#[tokio::test]
async fn no_packet_lost_or_duplicated_around_connect_and_upgrade() {
    let server = start(None).await;
    for transport in ALL {
        let cfg = server.config(transport).query("burst", "100");
        let (tx, mut rx) = connect(&cfg).await.expect("connect");
        expect_event(&mut rx, "welcome").await;
        for i in 0..100 {
            let (n, _) = expect_event(&mut rx, "burst").await;
            assert_eq!(n, json!(i), "{transport:?}");
        }
        // Nothing else pending: the next event is our echo.
        tx.emit("echo", &"end").await.expect("emit");
        match next(&mut rx).await {
            Incoming::Event { name, data, .. } => {
                assert_eq!(
                    (name.as_str(), data),
                    ("echo", json!("end")),
                    "{transport:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        tx.close().await.expect("close");
    }
}

/// `next` may be cancelled at any point (the load generator wraps it in timeouts): no event
/// is lost and polling never runs two GETs at once (the server would close the session).
#[tokio::test]
async fn cancelled_next_loses_nothing() {
    let server = start(None).await;
    for transport in ALL {
        let (tx, mut rx) = connect(&server.config(transport)).await.expect("connect");
        expect_event(&mut rx, "welcome").await;
        for i in 0..50 {
            tx.emit("echo", &i).await.expect("emit");
        }
        let mut got = Vec::new();
        let guard = tokio::time::Instant::now() + WAIT;
        while got.len() < 50 {
            assert!(
                tokio::time::Instant::now() < guard,
                "{transport:?}: stuck at {got:?}"
            );
            match tokio::time::timeout(Duration::from_micros(50), rx.next()).await {
                Err(_) => {}
                Ok(Some(Incoming::Event { name, data, .. })) => {
                    assert_eq!(name, "echo");
                    got.push(data);
                }
                Ok(other) => panic!("{transport:?}: {other:?}"),
            }
        }
        assert_eq!(got, (0..50).map(|i| json!(i)).collect::<Vec<_>>());
        tx.close().await.expect("close");
    }
}

#[tokio::test]
async fn connect_errors_are_distinguishable() {
    // Nothing listens on this port (bound, then dropped).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for transport in ALL {
        let cfg = roomstorm_client::ClientConfig::new(format!("http://127.0.0.1:{port}"))
            .transport(transport);
        let err = connect(&cfg).await.expect_err("nothing listens");
        assert!(
            matches!(err, ConnectError::Io { .. }),
            "{transport:?}: {err:?}"
        );
        assert!(err.to_string().contains("I/O error"), "{err}");
    }

    // Wrong path: the server answers 404 to polling and to the websocket upgrade.
    let server = start(None).await;
    for transport in ALL {
        let mut cfg = server.config(transport);
        cfg.path = "/nope/".into();
        let err = connect(&cfg).await.expect_err("404");
        match &err {
            ConnectError::HttpStatus { status, .. } => assert_eq!(*status, 404),
            other => panic!("{transport:?}: {other:?}"),
        }
        assert!(err.to_string().starts_with("HTTP 404"), "{err}");
    }

    // A server that accepts and never answers: the connect timeout fires.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    for transport in ALL {
        let mut cfg = roomstorm_client::ClientConfig::new(format!("http://{silent_addr}"))
            .transport(transport);
        cfg.connect_timeout = Duration::from_millis(200);
        let err = connect(&cfg).await.expect_err("timeout");
        assert!(
            matches!(err, ConnectError::Timeout(d) if d == Duration::from_millis(200)),
            "{err:?}"
        );
        assert!(err.to_string().contains("timed out"));
    }
    keep.abort();

    // Bad configuration.
    let err = connect(&roomstorm_client::ClientConfig::new(
        "https://example.invalid",
    ))
    .await
    .expect_err("https");
    assert!(matches!(err, ConnectError::InvalidConfig(_)), "{err:?}");
    let mut cfg = server.config(Transport::WebSocket);
    cfg.bind_addr = Some("::1".parse().unwrap());
    let err = connect(&cfg).await.expect_err("family");
    assert!(matches!(err, ConnectError::InvalidConfig(_)), "{err:?}");
}
