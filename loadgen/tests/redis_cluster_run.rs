//! Issue 14: `loadgen run` on the local stack with its bus on a real Redis Cluster
//! (`target.local.redis_cluster`), with the scenario faults `kill_redis_master` and
//! `migrate_slots`. The ledger must show losses only inside the faults' windows, and delivery
//! recovered after each.

use serde_json::Value;

mod common;
use common::{explain, loadgen, repo, results, scratch, timeline_sum, u};

#[tokio::test]
async fn a_run_on_a_redis_cluster_loses_only_inside_its_fault_windows() {
    let dir = scratch("redis-cluster");
    let scenario = repo().join("scenarios/redis-cluster.toml");
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
            "kill_redis_master 0",
            "migrate_slots 1000 from master 1 to master 2"
        ],
        "both faults injected, neither failed"
    );
    for fault in faults {
        assert!(
            fault["recovered_after_ms"].as_u64().is_some(),
            "delivery recovered after {fault}"
        );
    }
    let in_windows: u64 = faults.iter().map(|f| u(&f["lost_in_window"])).sum();
    let lost = u(&r["deliveries"]["lost"]);
    assert_eq!(
        lost, in_windows,
        "every loss inside a fault window: {faults:?}"
    );
    assert_eq!(timeline_sum(&r, "lost"), lost);
    // The killed master's rooms were cut off from the bus until its replica took over.
    assert!(u(&faults[0]["lost_in_window"]) > 0, "{}", faults[0]);
    // Their senders were told (`unavailable`: not sent), not left guessing.
    assert!(u(&r["errors"]["send_refused"]) > 0, "{}", r["errors"]);
    eprintln!(
        "owed {}, lost {lost}: {}",
        r["deliveries"]["expected"],
        faults
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
}
