//! results.json files written before the timeline's per-second `lost` existed still load and
//! merge (the fixtures are real runs of that time).

use std::path::{Path, PathBuf};

use roomstorm_results::timeline::lost_in_seconds;
use roomstorm_results::{Results, merge};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../reports/tests/fixtures")
        .join(format!("{name}.json"))
}

#[test]
fn an_old_results_file_loads_with_no_losses_by_second() {
    let path = fixture("failover");
    let text = std::fs::read_to_string(&path).expect("fixture");
    assert!(
        !text.contains("\"lost\":0,\"errors\""),
        "the fixture is of the old format"
    );
    let r = Results::read(&path).expect("an old results.json loads");
    assert!(!r.timeline.is_empty());
    assert!(r.timeline.iter().all(|s| s.lost == 0));
    // Written again, it has the field.
    let again = serde_json::to_value(&r).expect("serializes");
    assert_eq!(again["timeline"][0]["lost"], 0);
}

#[test]
fn merging_sums_the_losses_of_each_second() {
    let mut a = Results::read(&fixture("failover")).expect("fixture");
    let mut b = a.clone();
    let t = a.timeline[3].t;
    a.timeline[3].lost = 4;
    b.timeline[3].lost = 5;
    b.timeline[5].lost = 1;
    let merged = merge(&[a.clone(), b]).expect("merges");
    assert_eq!(merged.timeline.len(), a.timeline.len());
    assert_eq!(lost_in_seconds(&merged.timeline, t, t + 1), 9);
    assert_eq!(lost_in_seconds(&merged.timeline, 0, u32::MAX), 10);
    // An old part (no losses recorded) merged with a new one keeps the new one's losses.
    let old = Results::read(&fixture("failover")).expect("fixture");
    let merged = merge(&[old, a]).expect("merges");
    assert_eq!(lost_in_seconds(&merged.timeline, 0, u32::MAX), 4);
}

#[test]
fn an_old_results_file_reads_its_deliveries_as_on_time_and_never() {
    let r = Results::read(&fixture("failover")).expect("an old results.json loads");
    let d = &r.deliveries;
    assert!(d.expected > 0, "{d:?}");
    // Written before late existed: every owed receipt counted delivered, the rest lost.
    assert_eq!((d.on_time, d.late, d.never), (d.delivered, 0, d.lost));
    assert_eq!(r.sends, roomstorm_results::Sends::default());
    assert_eq!(r.target, None);
    assert_eq!(r.counters.close_timeouts, 0);
    assert!(r.timeline.iter().all(|s| s.late == 0 && s.planned == 0));
}
