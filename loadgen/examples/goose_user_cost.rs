//! Measures what one idle goose user costs in memory, apart from any connection: starts N
//! users whose only transaction sleeps, and prints the process RSS once all are running.
//!
//!     cargo run --release -p loadgen --example goose_user_cost -- 5000

use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;

async fn idle(_user: &mut GooseUser) -> TransactionResult {
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let before = rss_kib();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let after = rss_kib();
        println!(
            "{users} idle goose users: RSS {before} KiB -> {after} KiB, {:.1} KiB per user",
            (after - before) as f64 / users as f64
        );
    });
    GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new().without_cookies(),
        )?
        .register_scenario(scenario!("idle").register_transaction(transaction!(idle)))
        .set_default(GooseDefault::Host, "http://127.0.0.1:1")?
        .set_default(
            GooseDefault::TestPlan,
            format!("{users},1s;{users},5s;0,0").as_str(),
        )?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::Quiet, 1)?
        .execute()
        .await?;
    Ok(())
}
