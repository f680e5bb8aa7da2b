//! Measures the load generator's cost per received message, end to end on the client side:
//! websocket frame, Engine.IO / Socket.IO framing in `roomstorm_client`, then exactly what a
//! member's receiving task does with it (`loadgen::member::on_event` with the built-in
//! profile: parse, probe, ledger,
//! histograms, timeline).
//!
//! It exists because wall-clock figures on the shared 2-core machine are noise: run it under
//! `valgrind --tool=callgrind` twice (N messages and 0 messages) and divide the difference in
//! instructions by N. The fake server runs in a child process (callgrind does not follow
//! children by default), so only the receiving side is counted.
//!
//!     cargo build --release -p loadgen --example receive_path
//!     valgrind --tool=callgrind target/release/examples/receive_path 20000
//!     valgrind --tool=callgrind target/release/examples/receive_path 0
//!
//! `receive_path N [pace_us]`: the server sends N `broadcast_say` messages from 100 senders of
//! one room (64-byte probe texts, as in `scenarios/capacity-10k.toml`), one websocket frame
//! each, `pace_us` apart (default 0: as fast as TCP takes them, so reads may batch frames).
//! `receive_path serve N pace_us` is the child.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use loadgen::context::LiveCounters;
use loadgen::measure::histograms::Recorder;
use loadgen::measure::ledger::{RoomLedger, SessionLedger};
use loadgen::measure::probe::encode_probe;
use loadgen::measure::timeline::Timeline;
use roomstorm_client::{ClientConfig, RawIncoming};
use tokio_tungstenite::tungstenite::Message;

const SENDERS: u32 = 100;
const START_US: u64 = 1_800_000_000_000_000;

fn say_packet(n: u32) -> String {
    let (sender, seq) = (n % SENDERS, n / SENDERS);
    let mut text = String::new();
    encode_probe(&mut text, sender, seq, START_US + u64::from(n) * 10, 64);
    let json = roomstorm_protocol::RoomEvent::say(&format!("m{sender:06}"), &text).to_json();
    format!(r#"42["message",{json}]"#)
}

async fn serve(n: u32, pace: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let (tcp, _) = listener.accept().await?;
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    let open = r#"0{"sid":"s","upgrades":[],"pingInterval":300000,"pingTimeout":20000,"maxPayload":1000000}"#;
    ws.send(Message::text(open)).await?;
    while let Some(msg) = ws.next().await {
        if matches!(msg?, Message::Text(t) if t.as_str() == "40") {
            break;
        }
    }
    ws.send(Message::text(r#"40{"sid":"x"}"#)).await?;
    let packets: Vec<String> = (0..n).map(say_packet).collect();
    for p in packets {
        ws.send(Message::text(p)).await?;
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    ws.send(Message::text("41")).await?;
    // Wait for the client to go away.
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

async fn receive(n: u32, pace_us: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["serve", &n.to_string(), &pace_us.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or("no child stdout")?),
        &mut port,
    )?;
    let url = format!("http://127.0.0.1:{}", port.trim());
    let (_tx, mut rx) = roomstorm_client::connect(&ClientConfig::new(url)).await?;

    let counters = LiveCounters::default();
    let timeline = Timeline::new(START_US, 3600);
    let room = RoomLedger::new(
        SENDERS,
        n / SENDERS + 1,
        u64::MAX,
        Arc::new(Recorder::new()),
    );
    for i in 0..n {
        room.on_send(i % SENDERS, i / SENDERS, START_US + u64::from(i) * 10);
    }
    let mut ledger = SessionLedger::for_room(&room);
    let profile = loadgen::profile::Profile::roomstorm();
    let records = loadgen::member::Records {
        counters: &counters,
        timeline: &timeline,
        profile: &profile,
        group: None,
    };
    let mut now = START_US;
    while let Some(incoming) = rx.next_raw().await {
        match incoming {
            RawIncoming::Event(event) => {
                now += 10;
                loadgen::member::on_event(&records, (&room, &mut ledger), &event, now + 500);
            }
            // The fake server acknowledges nothing.
            RawIncoming::Ack(_) => {}
            RawIncoming::Disconnected(_) => break,
        }
    }
    let got = counters
        .received_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "received {got} of {n} messages, {} unique in the ledger",
        ledger.unique()
    );
    let _ = child.wait();
    if got != u64::from(n) {
        return Err(format!("expected {n} messages, got {got}").into());
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| {
        args.get(i)
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(default)
    };
    if args.first().map(String::as_str) == Some("serve") {
        let n = u32::try_from(num(1, 0))?;
        return serve(n, Duration::from_micros(num(2, 0))).await;
    }
    let n = u32::try_from(num(0, 20_000))?;
    receive(n, num(1, 0)).await
}
