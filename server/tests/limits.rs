//! Connection limits on a real stack (Redis, the cluster, nginx): a worker's `--max-connections`,
//! the `--join-deadline`, and nginx's per-address connection limit.

mod common;

use common::*;
use roomstorm_client::{ConnectError, Transport};

fn expect_503(result: Result<Member, ConnectError>, what: &str) -> String {
    match result {
        Err(ConnectError::HttpStatus {
            status: 503, body, ..
        }) => body,
        Err(other) => panic!("{what}: expected HTTP 503, got {other}"),
        Ok(_) => panic!("{what}: connected beyond the limit"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_max_connections_gets_503_and_is_counted() {
    const MAX: usize = 3;
    let stack = start_stack(1, &["--max-connections", &MAX.to_string()]).await;
    let url = stack.info().url.clone();
    let worker = stack.info().workers[0];
    let mut members = Vec::new();
    for k in 0..MAX {
        members.push(Connect::new(&url, "capped").join(&format!("m{k}")).await);
    }
    for transport in [Transport::WebSocket, Transport::Polling] {
        let refused = Connect::new(&url, "capped")
            .transport(transport)
            .try_connect()
            .await;
        let body = expect_503(refused, &format!("{transport:?} handshake"));
        assert!(body.contains("worker is full (3 connections)"), "{body}");
    }
    // A page served from elsewhere can read the refusal: the 503 carries the CORS headers.
    let head = format!(
        "GET /socket.io/?EIO=4&transport=polling&roomid=capped HTTP/1.1\r\nHost: {worker}\r\n\
         Origin: https://elsewhere.example"
    );
    let refused = raw_request(worker, None, head.as_bytes(), b"").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("access-control-allow-origin"), Some("*"));
    let refused_series = "chat_connects_refused_total{worker=\"0\",reason=\"max_connections\"}";
    assert_eq!(
        metric_value(&worker_metrics(worker).await, refused_series),
        3
    );
    assert_eq!(worker_stats(worker).await.sockets, MAX as i64);

    // A freed slot is taken again.
    members.pop().expect("a member").close().await;
    eventually(
        "the closed member's slot is free",
        EVENT_DEADLINE,
        || async { worker_stats(worker).await.sockets < MAX as i64 },
    )
    .await;
    let mut again = Connect::new(&url, "capped").join("again").await;
    again.expect_nothing_before_marker("still chatting").await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_joins_is_closed_after_the_deadline() {
    // One worker: both timers run in one process, the joined member's first.
    let stack = start_stack(1, &["--join-deadline", "1s"]).await;
    let url = stack.info().url.clone();
    let mut joined = Connect::new(&url, "deadline").join("joined").await;
    let mut idle = Connect::new(&url, "deadline").connect().await;
    idle.name = "idle".into();

    let error = idle.expect_error().await;
    assert_eq!(error["code"], "not_joined", "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("no join within 1s"), "{error}");
    let reason = idle.expect_disconnect().await;
    assert!(!reason.is_empty());
    let worker = stack.info().workers[0];
    let series = "chat_disconnects_total{worker=\"0\",reason=\"join_deadline\"}";
    assert_eq!(metric_value(&worker_metrics(worker).await, series), 1);

    // The joined member's deadline passed before the idle one's: it is still here.
    joined.expect_nothing_before_marker("still here").await;
    assert_eq!(worker_stats(worker).await.sockets, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refuses_connections_beyond_the_per_address_limit() {
    const LIMIT: usize = 2;
    let mut config = stack_config(2, &[]);
    config.nginx_limit_conn = LIMIT;
    let stack = start_stack_with(config).await;
    let url = stack.info().url.clone();
    let crowded = member_addr(9);
    let mut held = Vec::new();
    for k in 0..LIMIT {
        held.push(
            Connect::new(&url, "per-address")
                .bind(crowded)
                .join(&format!("c{k}"))
                .await,
        );
    }
    let refused = Connect::new(&url, "per-address")
        .bind(crowded)
        .try_connect()
        .await;
    expect_503(refused, "one connection too many from one address");

    // Another address is not affected.
    let mut other = Connect::new(&url, "per-address")
        .bind(member_addr(10))
        .join("other")
        .await;
    other.expect_nothing_before_marker("other address").await;

    // nginx says why in its error log.
    let log = stack.info().run_dir.join("nginx-error.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("limiting connections by zone \"per_address\""),
        "{}: {text}",
        log.display()
    );
    stack.stop().await;
}
