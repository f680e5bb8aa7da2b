//! Measures the client's resident memory per idle connection.
//!
//! It exists to keep the "small per-connection state" promise checkable: it opens N
//! connections to a running server (e.g. the `echo_server` example, in another process so its
//! memory is not counted), waits for them to sit idle through a few pings, and prints the RSS
//! growth per connection from /proc/self/status.
//!
//! Usage: `idle_conns URL N [websocket|polling|upgrade] [held|tasks]`
//! - `held`: Sender/Receiver pairs kept in a Vec, nobody awaiting the receivers (pure state);
//! - `tasks` (default): each receiver awaited in its own task, as the load generator does.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use roomstorm_client::{ClientConfig, Transport, connect};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9100".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let transport = match args.next().as_deref() {
        Some("polling") => Transport::Polling,
        Some("upgrade") => Transport::Upgrade,
        _ => Transport::WebSocket,
    };
    let tasks = args.next().as_deref() != Some("held");

    let mut base = ClientConfig::new(url)
        .query("roomid", "mem")
        .transport(transport);
    base.connect_timeout = Duration::from_secs(30);

    // Warm up: one connection so lazy statics, pools and the runtime are already counted.
    let warm = connect(&base).await?;
    let before = rss_kib();

    let mut held = Vec::new();
    let mut handles = Vec::new();
    for i in 0..n {
        let mut cfg = base.clone();
        cfg.bind_addr = Some(IpAddr::V4(Ipv4Addr::new(127, 0, (i % 200) as u8 + 1, 1)));
        let (tx, mut rx) = connect(&cfg).await?;
        if tasks {
            handles.push(tokio::spawn(async move {
                while let Some(m) = rx.next().await {
                    if let roomstorm_client::Incoming::Disconnected { reason } = m {
                        eprintln!("disconnected: {reason}");
                    }
                }
            }));
            held.push((tx, None));
        } else {
            held.push((tx, Some(rx)));
        }
    }
    // Idle through a few server pings (default interval 25 s would be long; this just lets
    // buffers settle after the connect burst).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    println!(
        "{n} {transport:?} connections ({}): RSS {before} KiB -> {after} KiB, {:.1} KiB per connection",
        if tasks {
            "receiver awaited in a task each"
        } else {
            "held, not awaited"
        },
        (after.saturating_sub(before)) as f64 / n as f64
    );
    drop(warm);
    drop(held);
    Ok(())
}
