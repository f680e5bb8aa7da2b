//! Acceptance 1: through nginx with 2 workers, members of one room on different workers get
//! every message exactly once and in per-sender order, over every transport; rooms are isolated.

mod common;

use std::collections::HashMap;

use common::*;
use roomstorm_client::Transport;

const MEMBERS: u8 = 6;
const MESSAGES: usize = 20;

async fn fanout_through_nginx(transport: Transport) {
    let stack = start_stack(2, &[]).await;
    let url = stack.info().url.clone();
    let room = format!("fanout-{transport:?}");
    let mut members = Vec::new();
    for k in 1..=MEMBERS {
        let member = Connect::new(&url, &room)
            .transport(transport)
            .bind(member_addr(k))
            .join(&format!("m{k}"))
            .await;
        members.push(member);
    }
    for worker in &stack.info().workers {
        let stats = worker_stats(*worker).await;
        assert!(
            stats.members > 0,
            "ip_hash put no member on worker {worker}: the test would not cross workers"
        );
    }
    let mut outsider = Connect::new(&url, "another-room")
        .transport(transport)
        .bind(member_addr(MEMBERS + 1))
        .join("outsider")
        .await;

    for i in 0..MESSAGES {
        for member in &members {
            member.say(&format!("{}:{i}", member.name)).await;
        }
    }
    let senders: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    for member in &mut members {
        receive_all_in_order(member, &senders).await;
    }
    // No duplicate trails behind: the next message after everything is a fresh marker.
    members[0].say("marker").await;
    for member in &mut members {
        let next = member.next_message().await;
        assert_eq!(
            next["data"]["text"], "marker",
            "{}: extra message {next}",
            member.name
        );
    }
    // Nothing crossed rooms.
    outsider
        .expect_nothing_before_marker("outsider-marker")
        .await;
    stack.stop().await;
}

/// Receives every sender's MESSAGES says, each exactly once and in the order sent.
async fn receive_all_in_order(member: &mut Member, senders: &[String]) {
    let mut next_seq: HashMap<&str, usize> = senders.iter().map(|s| (s.as_str(), 0)).collect();
    let mut received = 0;
    while received < senders.len() * MESSAGES {
        let message = member.next_message().await;
        match message["event"].as_str() {
            Some("join") => continue, // later members joining
            Some("broadcast_say") => {}
            other => panic!("{}: unexpected {other:?}: {message}", member.name),
        }
        let username = message["data"]["username"].as_str().unwrap_or_default();
        let text = message["data"]["text"].as_str().unwrap_or_default();
        let (sender, seq) = text.split_once(':').expect("text is sender:seq");
        assert_eq!(sender, username, "username is the joined one");
        let seq: usize = seq.parse().expect("sequence number");
        let expected = next_seq
            .get_mut(sender)
            .unwrap_or_else(|| panic!("message from unknown sender {sender}"));
        assert_eq!(
            seq, *expected,
            "{}: {sender}'s messages out of order or duplicated",
            member.name
        );
        *expected += 1;
        received += 1;
    }
}

#[tokio::test]
async fn websocket_members_on_two_workers_get_everything_once_in_order() {
    fanout_through_nginx(Transport::WebSocket).await;
}

#[tokio::test]
async fn polling_members_on_two_workers_get_everything_once_in_order() {
    fanout_through_nginx(Transport::Polling).await;
}

#[tokio::test]
async fn upgraded_members_on_two_workers_get_everything_once_in_order() {
    fanout_through_nginx(Transport::Upgrade).await;
}

#[tokio::test]
async fn the_sender_gets_its_echo_and_quit_is_announced() {
    let stack = start_stack(2, &[]).await;
    let url = stack.info().url.clone();
    let mut ann = Connect::new(&url, "echo")
        .bind(member_addr(1))
        .join("ann")
        .await;
    let mut bob = Connect::new(&url, "echo")
        .bind(member_addr(2))
        .join("bob")
        .await;
    ann.expect_message(|m| m["event"] == "join" && m["data"]["username"] == "bob")
        .await;
    // Extra fields are ignored; the username is always the joined one.
    ann.emit(
        "say",
        serde_json::json!({"text": "hi", "type": 0, "username": "mallory"}),
    )
    .await;
    for member in [&mut ann, &mut bob] {
        let m = member.next_message().await;
        assert_eq!(
            m,
            serde_json::json!({"event": "broadcast_say", "data": {"username": "ann", "text": "hi"}})
        );
    }
    ann.close().await;
    let quit = bob.next_message().await;
    assert_eq!(
        quit,
        serde_json::json!({"event": "broadcast_quit", "data": {"username": "ann"}})
    );
    stack.stop().await;
}

/// Sends a preflight-free polling handshake with an `Origin` and returns the CORS header.
async fn allowed_origin(worker: std::net::SocketAddr, origin: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(worker)
        .await
        .expect("connect");
    let request = format!(
        "GET /socket.io/?EIO=4&transport=polling&roomid=cors HTTP/1.0\r\nHost: {worker}\r\nOrigin: {origin}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
        .lines()
        .find_map(|l| l.strip_prefix("access-control-allow-origin: "))
        .map(str::to_string)
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let stack = start_stack(
        1,
        &["--cors-origins", "http://chat.example,http://other.example"],
    )
    .await;
    let worker = stack.info().workers[0];
    assert_eq!(
        allowed_origin(worker, "http://chat.example")
            .await
            .as_deref(),
        Some("http://chat.example")
    );
    assert_eq!(allowed_origin(worker, "http://evil.example").await, None);
    stack.stop().await;
}
