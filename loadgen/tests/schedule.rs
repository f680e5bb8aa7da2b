//! The send schedule end to end, against the real local stack (redis-server, the cluster,
//! nginx): a stepped run offers each step's multiplier from its first second
//! (`steps[].planned`), whatever happens to the members, and every planned send is either made
//! or counted unsent (`sends`).

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{explain, loadgen, results, scratch, u};

/// 60 members sending 2 messages a second at x1, stepped x1, x2, x4 every 2 s; worker 1 is
/// killed in the second step, and its members reconnect: while they are away their sends fall
/// due unsent.
const STEPPED_WITH_A_KILL: &str = r#"
name = "stepped-offer"
description = "the planned load of each step, and what became of it"
duration = "6s"
seed = 11

[target]
local = { workers = 2, nginx_workers = 1 }

[population]
rooms = 6
members = 60
ramp = 60

[traffic]
rate_per_member = 2.0
jitter = 0.1
reconnect = "backoff"
deadline = "1s"
steps = { start = 1.0, factor = 2.0, step = "2s", max_steps = 3 }

[[faults]]
at = "4500ms"
kill_worker = 1
"#;

/// `loadgen run` of `scenario` into `dir`, with `extra` arguments; its output and results.json.
async fn run(scenario: &Path, dir: &Path, extra: &[&str]) -> (Output, Value) {
    std::fs::create_dir_all(dir).expect("output dir");
    let (scenario, out) = (scenario.to_str().unwrap(), dir.to_str().unwrap());
    let args: Vec<&str> = ["run", scenario, "--out", out, "-q"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let output = loadgen(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    (output, results(dir))
}

/// Per step and per second of the timeline, the planned sends.
fn planned_by_step_and_second(r: &Value) -> (Vec<u64>, Vec<(u64, u64)>) {
    let steps = r["steps"].as_array().expect("steps");
    let timeline = r["timeline"].as_array().expect("timeline");
    (
        steps.iter().map(|s| u(&s["planned"])).collect(),
        timeline
            .iter()
            .filter(|s| u(&s["planned"]) > 0)
            .map(|s| (u(&s["t"]), u(&s["planned"])))
            .collect(),
    )
}

#[tokio::test]
async fn a_stepped_run_plans_each_steps_rate_and_accounts_for_every_send() {
    let dir = scratch("schedule-steps");
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, STEPPED_WITH_A_KILL).expect("write scenario");
    // The same scenario in one process and split over two, at once (each on its own stack).
    let (one, two) = (dir.join("one"), dir.join("two"));
    let ((output, r), (_, split)) = tokio::join!(
        run(&scenario, &one, &[]),
        run(&scenario, &two, &["--processes", "2"]),
    );

    // Each step offers members × rate × multiplier × its length, its first second included
    // (the schedules are 60 seeded renewal processes: a few percent of spread at most).
    let steps = r["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3);
    for step in steps {
        let multiplier = step["multiplier"].as_f64().unwrap();
        let seconds = step["to_s"].as_f64().unwrap() - step["from_s"].as_f64().unwrap();
        let expected = 60.0 * 2.0 * multiplier * seconds;
        let planned = u(&step["planned"]) as f64;
        assert!(
            (planned - expected).abs() <= expected * 0.05,
            "step x{multiplier}: {planned} planned, {expected} expected"
        );
        assert!(u(&step["sends"]) <= u(&step["planned"]), "{step}");
    }
    let timeline = r["timeline"].as_array().expect("timeline");
    let from = steps[0]["from_s"].as_f64().unwrap() as u64;
    let first = timeline
        .iter()
        .find(|s| u(&s["t"]) == from)
        .expect("the first step's first second");
    assert!(
        (u(&first["planned"]) as f64 - 120.0).abs() <= 12.0,
        "the first second offers the base rate: {first}"
    );

    // Every planned send was made or counted unsent; the kill left some unsent.
    let sends = &r["sends"];
    let (planned, made, unsent) = (u(&sends["planned"]), u(&sends["made"]), u(&sends["unsent"]));
    assert_eq!(planned, made + unsent, "{sends}");
    assert!(
        unsent > 0,
        "members away after the kill had sends due: {sends}"
    );
    assert_eq!(made, u(&r["counters"]["sends"]));
    let by_step: u64 = steps.iter().map(|s| u(&s["planned"])).sum();
    let by_second: u64 = timeline.iter().map(|s| u(&s["planned"])).sum();
    assert_eq!((by_step, by_second), (planned, planned));
    let sent_by_second: u64 = timeline.iter().map(|s| u(&s["sends"])).sum();
    assert_eq!(sent_by_second, made);

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "messages sent {made} of {planned} planned ({unsent} unsent)"
        )),
        "{stdout}"
    );

    // The plan, not the run, decides what was planned: the split run planned exactly the same,
    // step by step and second by second, and accounts for its sends the same way.
    assert_eq!(
        planned_by_step_and_second(&split),
        planned_by_step_and_second(&r)
    );
    let sends = &split["sends"];
    assert_eq!(u(&sends["planned"]), planned);
    assert_eq!(
        u(&sends["planned"]),
        u(&sends["made"]) + u(&sends["unsent"])
    );
}
