//! Issue 14, part 3: network faults between hosts. `loadgen run` on the local stack with each
//! worker and Redis on a host of its own (`target.local.namespaces`: network namespaces on one
//! bridge), and `partition` faults cutting a worker from Redis, from nginx, and from
//! everything. Each partition must hold messages back inside its window (late or lost), lose
//! nothing outside the windows, and delivery must recover after each.

use serde_json::Value;

mod common;
use common::{assert_losses_only_inside_fault_windows, run_repo_scenario, u};

#[tokio::test]
async fn partitions_hold_messages_back_only_inside_their_windows_and_delivery_recovers() {
    let r = run_repo_scenario("partition").await;
    let faults = assert_losses_only_inside_fault_windows(
        &r,
        &[
            "partition worker 0 from redis for 4s",
            "partition worker 1 from nginx for 4s",
            "partition worker 0 from everything for 3s",
        ],
    );
    for (fault, length_s) in faults.iter().zip([4.0, 4.0, 3.0]) {
        // The partition did something: messages meant to be sent while it held were lost (late
        // or never; with the scenario's 2 s deadline, a 3-4 s stall makes them late at least).
        let from = fault["at_s"].as_f64().expect("at_s");
        let held_back = held_back_between(&r, from, from + length_s);
        assert!(held_back > 0, "nothing held back by {fault}");
    }
}

/// Deliveries lost (late, or never arrived) among messages intended in the seconds from
/// `from_s` to `to_s`.
fn held_back_between(r: &Value, from_s: f64, to_s: f64) -> u64 {
    r["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|s| {
            let t = s["t"].as_f64().expect("t");
            t + 1.0 > from_s && t < to_s
        })
        .map(|s| u(&s["lost"]))
        .sum()
}
