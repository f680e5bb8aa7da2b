//! A member that stops reading is disconnected as a slow consumer, and the rest of its room
//! gets every message meanwhile (a real cluster: 2 workers, Redis, nginx).
//!
//! The slow member is our client with its receiving half never polled, connected straight to
//! worker 0 (nginx's buffers in between would only take longer to fill). The others chat
//! through nginx at a steady rate. The fan-out latency the others see is printed with and
//! without the slow member (not asserted: BENCHMARKS.md keeps the figures).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use roomstorm_client::{ClientConfig, Incoming, Sender, Transport};
use serde_json::json;
use tokio::sync::mpsc;

const ROOM: &str = "slow-room";
const OTHERS: u8 = 4;
/// Bytes of padding per message: the slow member's TCP buffers fill after fewer messages.
const PADDING: usize = 4_000;
/// Time between two sends of one sender.
const INTERVAL: Duration = Duration::from_millis(10);

/// What one member's receiving task hands back after a round.
struct Received {
    events: mpsc::UnboundedReceiver<Incoming>,
    latencies_us: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_disconnected_and_the_others_get_everything() {
    slow_member_among_chatters(Transport::WebSocket).await;
}

/// The same over a websocket that replaced a polling session: its connection is not the one
/// the session began on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_member_that_stops_reading_is_disconnected() {
    slow_member_among_chatters(Transport::Upgrade).await;
}

async fn slow_member_among_chatters(transport: Transport) {
    let stack = start_stack(
        2,
        &[
            "--slow-consumer-grace",
            "1s",
            "--socket-buffer",
            "64",
            "--max-text-bytes",
            "8000",
            "--rate-per-sec",
            "1000",
            "--rate-burst",
            "1000",
            // No heartbeat ping during the test: a full queue fails the ping, which would
            // close the slow member under another reason.
            "--ping-interval-ms",
            "10m",
        ],
    )
    .await;
    let url = stack.info().url.clone();
    let mut others = Vec::new();
    for k in 1..=OTHERS {
        others.push(
            Connect::new(&url, ROOM)
                .bind(member_addr(k))
                .join(&format!("m{k}"))
                .await,
        );
    }
    for worker in &stack.info().workers {
        assert!(
            worker_stats(*worker).await.members > 0,
            "ip_hash put no member on worker {worker}: the test would not cross workers"
        );
    }
    let start = Instant::now();
    let baseline = chat_round(&mut others, "a", 200, start).await;

    let worker0 = stack.info().workers[0];
    let others_on_worker0 = worker_stats(worker0).await.sockets;
    let slow = join_and_stop_reading(&format!("http://{worker0}"), transport).await;
    let with_slow = chat_round(&mut others, "b", 400, start).await;

    let metrics = worker_metrics(worker0).await;
    let full = "chat_delivery_failed_total{worker=\"0\",reason=\"buffer_full\"}";
    assert!(
        metric_value(&metrics, full) > 0,
        "the slow queue never filled"
    );
    let kicked = "chat_disconnects_total{worker=\"0\",reason=\"slow_consumer\"}";
    eventually(
        "the slow member is disconnected",
        EVENT_DEADLINE,
        || async { metric_value(&worker_metrics(worker0).await, kicked) == 1 },
    )
    .await;
    eventually(
        "the slow member's socket is gone",
        EVENT_DEADLINE,
        || async { worker_stats(worker0).await.sockets == others_on_worker0 },
    )
    .await;
    drop(slow);
    // The others lost nothing (chat_round checked every message) and are all still here.
    // (Deliveries to the slow member after its cut may count as `closed`: it is gone.)
    let mut sockets = 0;
    for worker in &stack.info().workers {
        sockets += worker_stats(*worker).await.sockets;
    }
    assert_eq!(sockets, i64::from(OTHERS));
    println!(
        "{transport:?}: fan-out to the other {OTHERS} members ({} B messages, {} msg/s): p50/p99/max \
         without a slow member {}, with one {}",
        PADDING,
        u64::from(OTHERS) * 1_000 / INTERVAL.as_millis() as u64,
        summary(baseline),
        summary(with_slow)
    );
    stack.stop().await;
}

/// Connects straight to a worker, joins, reads until its own join notice, then never reads
/// again. The returned sender keeps the connection open.
async fn join_and_stop_reading(worker_url: &str, transport: Transport) -> Sender {
    let config = ClientConfig::new(worker_url)
        .transport(transport)
        .query("roomid", ROOM);
    let (tx, mut rx) = roomstorm_client::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("slow member: {e}"));
    tx.emit("join", &json!({ "username": "slow" }))
        .await
        .unwrap_or_else(|e| panic!("slow member: join: {e}"));
    loop {
        let event = tokio::time::timeout(EVENT_DEADLINE, rx.next())
            .await
            .unwrap_or_else(|_| panic!("slow member: no join notice"));
        match event {
            Some(Incoming::Event { name, data, .. })
                if name == "message"
                    && data["event"] == "join"
                    && data["data"]["username"] == "slow" =>
            {
                break;
            }
            Some(_) => {}
            None => panic!("slow member: closed before its join notice"),
        }
    }
    // `rx` is leaked on purpose: dropped, it would close the connection; kept, it is never
    // polled, so nothing reads the socket.
    std::mem::forget(rx);
    tx
}

/// Every member sends `per_sender` messages at a steady rate; each member must receive every
/// message of every sender, once and in order. Returns the latencies (send to receipt).
async fn chat_round(
    members: &mut [Member],
    round: &str,
    per_sender: usize,
    start: Instant,
) -> Vec<u64> {
    let senders: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let mut receiving = Vec::new();
    for member in members.iter_mut() {
        let (_, placeholder) = mpsc::unbounded_channel();
        let events = std::mem::replace(&mut member.events, placeholder);
        receiving.push(tokio::spawn(receive_round(
            member.name.clone(),
            events,
            senders.clone(),
            round.to_string(),
            per_sender,
            start,
        )));
    }
    let padding = "p".repeat(PADDING);
    let mut tick = tokio::time::interval(INTERVAL);
    for seq in 0..per_sender {
        tick.tick().await;
        for member in members.iter() {
            let sent = start.elapsed().as_micros();
            let text = format!("{round}:{}:{seq}:{sent}:{padding}", member.name);
            member.say(&text).await;
        }
    }
    let mut latencies = Vec::new();
    for (member, task) in members.iter_mut().zip(receiving) {
        let received = task
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", member.name));
        member.events = received.events;
        latencies.extend(received.latencies_us);
    }
    latencies
}

/// Receives one round: every sender's messages, each once and in order.
async fn receive_round(
    name: String,
    mut events: mpsc::UnboundedReceiver<Incoming>,
    senders: Vec<String>,
    round: String,
    per_sender: usize,
    start: Instant,
) -> Received {
    let mut next: HashMap<String, usize> = senders.iter().map(|s| (s.clone(), 0)).collect();
    let mut latencies_us = Vec::new();
    while latencies_us.len() < senders.len() * per_sender {
        let event = tokio::time::timeout(EVENT_DEADLINE, events.recv())
            .await
            .unwrap_or_else(|_| panic!("{name}: round {round}: nothing for {EVENT_DEADLINE:?}"))
            .unwrap_or_else(|| panic!("{name}: disconnected in round {round}"));
        let now = start.elapsed().as_micros();
        let data = match event {
            Incoming::Event { name: e, data, .. } if e == "message" => data,
            other => panic!("{name}: round {round}: unexpected {other:?}"),
        };
        match data["event"].as_str() {
            Some("broadcast_say") => {}
            // The slow member joining and being disconnected.
            Some("join" | "broadcast_quit") => continue,
            other => panic!("{name}: unexpected {other:?}"),
        }
        let text = data["data"]["text"].as_str().unwrap_or_default();
        let mut fields = text.splitn(5, ':');
        let (r, sender, seq, sent) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().and_then(|s| s.parse::<usize>().ok()),
            fields.next().and_then(|s| s.parse::<u128>().ok()),
        );
        assert_eq!(r, round, "{name}: a message of another round");
        let expected = next
            .get_mut(sender)
            .unwrap_or_else(|| panic!("{name}: unknown sender {sender}"));
        assert_eq!(
            seq,
            Some(*expected),
            "{name}: from {sender} out of order or lost"
        );
        *expected += 1;
        let sent = sent.unwrap_or_else(|| panic!("{name}: no send time in {text:.40}"));
        latencies_us.push(u64::try_from(now.saturating_sub(sent)).unwrap_or(u64::MAX));
    }
    Received {
        events,
        latencies_us,
    }
}

fn summary(mut latencies_us: Vec<u64>) -> String {
    latencies_us.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies_us.len() as f64 * q).ceil() as usize).clamp(1, latencies_us.len());
        latencies_us[i - 1] as f64 / 1_000.0
    };
    format!(
        "{:.2}/{:.2}/{:.2} ms (n={})",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies_us.len()
    )
}
