//! A namespace other than `/`, the CONNECT `auth` payload and acknowledgements, against a real
//! socketioxide server over every transport.
//!
//! The server: namespace `/chat` only (the main namespace does not exist, so nothing can work
//! by accident there), a connect middleware that refuses a wrong `auth.token`, a `say` handler
//! that acknowledges with `{"ok":true,"n":<count>}` and emits `said` with the payload.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use roomstorm_client::{ClientConfig, ConnectError, RawIncoming, Receiver, Transport, connect};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "s3cret";

async fn start() -> SocketAddr {
    let (layer, io) = SocketIo::builder().build_layer();
    let check = async |s: SocketRef, Data(auth): Data<Value>| {
        if auth["token"] != TOKEN {
            return Err("bad token");
        }
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        s.on(
            "say",
            async move |s: SocketRef, Data(v): Data<Value>, ack: AckSender| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                ack.send(&json!({ "ok": true, "n": n })).ok();
                s.emit("said", &v).ok();
            },
        );
        Ok(())
    };
    io.ns("/chat", (async |_: SocketRef| {}).with(check));
    let app = Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    addr
}

fn config(addr: SocketAddr, transport: Transport, token: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(format!("http://{addr}")).transport(transport);
    cfg.namespace = "/chat".into();
    cfg.auth = Some(json!({ "token": token }).to_string());
    cfg.connect_timeout = WAIT;
    cfg
}

/// The next event or ack, as owned text: `("event", args)` or `("ack <id>", args)`.
async fn next(rx: &mut Receiver) -> (String, String) {
    match tokio::time::timeout(WAIT, rx.next_raw()).await {
        Ok(Some(RawIncoming::Event(e))) => ("event".into(), e.args_json().to_owned()),
        Ok(Some(RawIncoming::Ack(a))) => (format!("ack {}", a.id()), a.args_json().to_owned()),
        other => panic!("expected an event or an ack, got {other:?}"),
    }
}

#[tokio::test]
async fn a_namespace_with_auth_and_acks_over_every_transport() {
    let addr = start().await;
    for transport in [Transport::WebSocket, Transport::Polling, Transport::Upgrade] {
        let (tx, mut rx) = connect(&config(addr, transport, TOKEN))
            .await
            .unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        assert_eq!(tx.namespace(), "/chat");
        let (first, second) = (tx.next_ack_id(), tx.next_ack_id());
        assert_eq!((first, second), (0, 1), "ids count from 0 per connection");
        tx.emit_with_ack(first, "say", r#"{"text":"one"}"#)
            .await
            .expect("emit");
        tx.emit_with_ack(second, "say", r#"{"text":"two"}"#)
            .await
            .expect("emit");
        tx.emit_args("say", r#"{"text":"three"}"#)
            .await
            .expect("emit");
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(next(&mut rx).await);
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                ("ack 0".to_owned(), r#"[{"n":1,"ok":true}]"#.to_owned()),
                ("ack 1".to_owned(), r#"[{"n":2,"ok":true}]"#.to_owned()),
                ("event".to_owned(), r#"["said",{"text":"one"}]"#.to_owned()),
                (
                    "event".to_owned(),
                    r#"["said",{"text":"three"}]"#.to_owned()
                ),
                ("event".to_owned(), r#"["said",{"text":"two"}]"#.to_owned()),
            ],
            "{transport:?}"
        );
        // `next` (the owned API) skips nothing but acks: the emit answered by an event only.
        tx.emit("say", &json!({"text": "four"}))
            .await
            .expect("emit");
        match tokio::time::timeout(WAIT, rx.next()).await {
            Ok(Some(roomstorm_client::Incoming::Event { name, data, .. })) => {
                assert_eq!((name.as_str(), data), ("said", json!({"text": "four"})));
            }
            other => panic!("{other:?}"),
        }
        tx.close().await.expect("close");
    }
}

#[tokio::test]
async fn a_wrong_token_or_namespace_is_refused_with_the_servers_message() {
    let addr = start().await;
    match connect(&config(addr, Transport::WebSocket, "wrong")).await {
        Err(ConnectError::Refused { message }) => assert_eq!(message, "bad token"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut cfg = config(addr, Transport::Polling, TOKEN);
    cfg.namespace = "/nope".into();
    match connect(&cfg).await {
        Err(ConnectError::Refused { message }) => {
            assert!(message.to_lowercase().contains("namespace"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
