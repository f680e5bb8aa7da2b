//! Drives one running chat worker with many joined websocket members, for profiling the worker.
//!
//! It exists because the load generator costs ~24 KiB and a goose user per member and shares
//! the 2 cores: to see the worker's own cost per connection and per delivery (under heaptrack,
//! callgrind or /proc sampling, run in another process) we need a driver that is cheap, exact
//! about what it asks for, and tells when the worker is in the state to be measured.
//!
//! Usage: `member_load URL MEMBERS ROOMS [MESSAGES]`
//! - connects MEMBERS websocket members spread over ROOMS rooms (`ml-r000`, ...), each from its
//!   own loopback /24 so many fit under the port range, and joins each one;
//! - waits until every member saw the join notices of its whole room, prints `joined`;
//! - if MESSAGES > 0: members take turns saying a 64-byte text, MESSAGES in all (paced so at
//!   most 200 are in flight), waits until every owed delivery arrived, prints the counts;
//! - then holds the members until stdin is closed (so the worker can be sampled idle).
//!
//! With `MEMBER_LOAD_GO_FILE=PATH` the messages wait until PATH exists (start a profiler's
//! collection between the joins and the messages).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use roomstorm_client::{ClientConfig, RawIncoming, Transport, connect};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: member_load URL MEMBERS ROOMS [MESSAGES]")?;
    let members: usize = args.next().ok_or("MEMBERS")?.parse()?;
    let rooms: usize = args.next().ok_or("ROOMS")?.parse()?;
    let messages: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);

    let received = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(members);
    let mut room_sizes = vec![0u64; rooms];
    let started = Instant::now();
    // Connect in waves so the worker's accept queue and our ports keep up.
    for wave in (0..members).collect::<Vec<_>>().chunks(200) {
        let mut joins = Vec::new();
        for &i in wave {
            let room = i % rooms;
            room_sizes[room] += 1;
            let mut cfg = ClientConfig::new(url.clone())
                .query("roomid", format!("ml-r{room:03}"))
                .transport(Transport::WebSocket);
            cfg.bind_addr = Some(IpAddr::V4(Ipv4Addr::new(127, 1 + (i % 250) as u8, 1, 1)));
            cfg.connect_timeout = Duration::from_secs(30);
            joins.push(tokio::spawn(async move {
                let (tx, rx) = connect(&cfg).await?;
                tx.emit("join", &serde_json::json!({ "username": format!("u{i}") }))
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((tx, rx))
            }));
        }
        for join in joins {
            let (tx, mut rx) = join.await?.map_err(|e| e.to_string())?;
            let received = received.clone();
            tokio::spawn(async move {
                while let Some(m) = rx.next_raw().await {
                    match m {
                        RawIncoming::Event(_) => {
                            received.fetch_add(1, Relaxed);
                        }
                        // No emit of this example asks for an acknowledgement.
                        RawIncoming::Ack(_) => {}
                        RawIncoming::Disconnected(reason) => {
                            eprintln!("disconnected: {reason}");
                            break;
                        }
                    }
                }
            });
            senders.push(tx);
        }
    }
    // Member k of a room sees the joins of members k.. of its room: n(n+1)/2 per room.
    let join_notices: u64 = room_sizes.iter().map(|n| n * (n + 1) / 2).sum();
    wait_for(&received, join_notices, "join notices").await;
    println!(
        "joined {members} members in {rooms} rooms in {:.1}s ({join_notices} join notices)",
        started.elapsed().as_secs_f64()
    );

    if messages > 0 {
        // Lets a profiler start counting between the joins and the messages.
        if let Ok(go) = std::env::var("MEMBER_LOAD_GO_FILE") {
            while !std::path::Path::new(&go).exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let base = received.load(Relaxed);
        let started = Instant::now();
        let text = "x".repeat(64);
        let mut owed = 0u64;
        for m in 0..messages {
            let i = (m as usize * 7919) % members;
            owed += room_sizes[i % rooms];
            senders[i]
                .emit("say", &serde_json::json!({ "text": text }))
                .await?;
            // Pace: keep at most ~200 messages' worth of deliveries outstanding.
            while owed.saturating_sub(received.load(Relaxed) - base) > 200 * room_sizes[0] {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        wait_for(&received, base + owed, "deliveries").await;
        println!(
            "said {messages} messages, {owed} deliveries received in {:.2}s",
            started.elapsed().as_secs_f64()
        );
    }

    // Hold until stdin closes.
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    drop(senders);
    Ok(())
}

async fn wait_for(counter: &AtomicU64, target: u64, what: &str) {
    let mut last = (counter.load(Relaxed), Instant::now());
    loop {
        let now = counter.load(Relaxed);
        if now >= target {
            return;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(120) {
            eprintln!("stalled waiting for {what}: {now} of {target}");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
