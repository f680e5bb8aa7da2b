//! 1,000 concurrent websocket connections in one process against one socketioxide server.
//!
//! This exists because the load generator runs thousands of clients per process: it checks
//! that connects do not interfere with each other, that every connection keeps working while
//! all are open, and that every close reaches the server.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use common::{ServerEvent, expect_event, start};
use roomstorm_client::{Transport, connect};
use serde_json::json;
use socketioxide::socket::DisconnectReason;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const N: usize = 1000;

/// Each connection needs two descriptors here (client and server side).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_websockets() {
    raise_fd_limit();
    let mut server = start(None).await;
    let base = server.config(Transport::WebSocket);

    // Connect all, 100 handshakes in flight at a time, from four source /24s.
    let gate = Arc::new(Semaphore::new(100));
    let mut connects = JoinSet::new();
    for i in 0..N {
        let mut cfg = base.clone();
        cfg.bind_addr = Some(IpAddr::V4(Ipv4Addr::new(127, 0, (i % 4) as u8 + 1, 1)));
        let gate = gate.clone();
        connects.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let (tx, mut rx) = connect(&cfg).await.expect("connect");
            expect_event(&mut rx, "welcome").await;
            (i, tx, rx)
        });
    }
    let mut conns = Vec::with_capacity(N);
    while let Some(res) = connects.join_next().await {
        conns.push(res.expect("connect task"));
    }
    assert_eq!(conns.len(), N);

    let mut peers = HashSet::new();
    for _ in 0..N {
        match server.next_event().await {
            ServerEvent::Connected { peer, .. } => {
                peers.insert(peer.expect("peer address").ip());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(peers.len(), 4, "{peers:?}");
    assert_eq!(server.io.sockets().len(), N);

    // Every connection round-trips its own number while all are open.
    let mut echoes = JoinSet::new();
    for (i, tx, mut rx) in conns {
        echoes.spawn(async move {
            tx.emit("echo", &json!({ "i": i })).await.expect("emit");
            let (data, _) = expect_event(&mut rx, "echo").await;
            assert_eq!(data, json!({ "i": i }));
            (tx, rx)
        });
    }
    let mut conns = Vec::with_capacity(N);
    while let Some(res) = echoes.join_next().await {
        conns.push(res.expect("echo task"));
    }

    // Clean close of all; the server sees each one.
    let mut closes = JoinSet::new();
    for (tx, mut rx) in conns {
        closes.spawn(async move {
            tx.close().await.expect("close");
            common::expect_disconnect(&mut rx).await
        });
    }
    while let Some(res) = closes.join_next().await {
        assert_eq!(res.expect("close task"), "closed by the client");
    }
    for _ in 0..N {
        match server.next_event().await {
            ServerEvent::Disconnected { reason, .. } => {
                assert_eq!(reason, DisconnectReason::ClientNSDisconnect)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(server.io.sockets().len(), 0);
}
