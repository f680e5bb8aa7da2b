//! Issue 14, part 3: network faults between hosts. `loadgen run` on the local stack with each
//! worker and Redis on a host of its own (`target.local.namespaces`: network namespaces on one
//! bridge), and `partition` faults cutting a worker from Redis, from nginx, and from
//! everything. Each partition must hold messages back inside its window (late or lost), lose
//! nothing outside the windows, and delivery must recover after each.

use serde_json::Value;

mod common;
use common::{explain, loadgen, repo, results, scratch, timeline_sum, u};

#[tokio::test]
async fn partitions_hold_messages_back_only_inside_their_windows_and_delivery_recovers() {
    let dir = scratch("partition");
    let scenario = repo().join("scenarios/partition.toml");
    let (s, out) = (scenario.to_str().unwrap(), dir.to_str().unwrap());
    let output = loadgen(&["run", s, "--out", out, "-q"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = results(&dir);
    assert_eq!(r["verdict"], "pass");
    assert_eq!(u(&r["deliveries"]["duplicated"]), 0);
    let faults = r["faults"].as_array().expect("faults");
    let actions: Vec<&str> = faults.iter().filter_map(|f| f["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "partition worker 0 from redis for 4s",
            "partition worker 1 from nginx for 4s",
            "partition worker 0 from everything for 3s",
        ],
        "every partition made and healed, none failed"
    );
    let lengths_s = [4.0, 4.0, 3.0];
    for (fault, length_s) in faults.iter().zip(lengths_s) {
        assert!(
            fault["recovered_after_ms"].as_u64().is_some(),
            "delivery recovered after {fault}"
        );
        // The partition did something: messages meant to be sent while it held were lost (late
        // or never; with the scenario's 2 s deadline, a 3-4 s stall makes them late at least).
        let from = fault["at_s"].as_f64().expect("at_s");
        let held_back = held_back_between(&r, from, from + length_s);
        assert!(held_back > 0, "nothing held back by {fault}");
    }
    let in_windows: u64 = faults.iter().map(|f| u(&f["lost_in_window"])).sum();
    let lost = u(&r["deliveries"]["lost"]);
    assert_eq!(
        lost, in_windows,
        "every loss inside a fault window: {faults:?}"
    );
    assert_eq!(timeline_sum(&r, "lost"), lost);
    eprintln!(
        "owed {}, late {}, lost {lost}: {}",
        r["deliveries"]["expected"],
        r["deliveries"]["late"],
        faults
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
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
