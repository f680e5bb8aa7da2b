//! Issue 14: `loadgen run` on the local stack with its bus on a real Redis Cluster
//! (`target.local.redis_cluster`), with the scenario faults `kill_redis_master` and
//! `migrate_slots`. The ledger must show losses only inside the faults' windows, and delivery
//! recovered after each.

mod common;
use common::{assert_losses_only_inside_fault_windows, run_repo_scenario, u};

#[tokio::test]
async fn a_run_on_a_redis_cluster_loses_only_inside_its_fault_windows() {
    let r = run_repo_scenario("redis-cluster").await;
    let faults = assert_losses_only_inside_fault_windows(
        &r,
        &[
            "kill_redis_master 0",
            "migrate_slots 1000 from master 1 to master 2",
        ],
    );
    // The killed master's rooms were cut off from the bus until its replica took over.
    assert!(u(&faults[0]["lost_in_window"]) > 0, "{}", faults[0]);
    // Their senders were told (`unavailable`: not sent), not left guessing.
    assert!(u(&r["errors"]["send_refused"]) > 0, "{}", r["errors"]);
}
