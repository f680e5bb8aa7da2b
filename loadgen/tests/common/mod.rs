//! What loadgen's end-to-end tests share: the repository root, scratch folders, and a readable
//! account of a command's output for failed assertions.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh, empty folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn explain(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `loadgen ARGS`, bounded at 4 minutes (a run that hangs fails the test instead of CI).
pub async fn loadgen(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("loadgen finished within 4 minutes")
        .expect("loadgen runs")
}

/// The results.json a run wrote into `dir`.
pub fn results(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json written");
    serde_json::from_str(&text).expect("results.json is JSON")
}

/// Writes `text` as `dir/scenario.toml`.
pub fn write_scenario(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).expect("write scenario");
    path
}

/// A count of results.json.
pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The timeline's per-second values of `field`, summed.
pub fn timeline_sum(r: &Value, field: &str) -> u64 {
    let timeline = r["timeline"].as_array().expect("timeline");
    timeline.iter().map(|s| u(&s[field])).sum()
}

/// Runs `scenarios/NAME.toml` from the repository (exit status 0 required) and returns its
/// results.
pub async fn run_repo_scenario(name: &str) -> Value {
    let dir = scratch(name);
    let scenario = repo().join(format!("scenarios/{name}.toml"));
    let (s, out) = (scenario.to_str().unwrap(), dir.to_str().unwrap());
    let output = loadgen(&["run", s, "--out", out, "-q"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    results(&dir)
}

/// What every fault scenario must show: a pass, nothing duplicated, the faults made as
/// `actions` says (none failed), delivery recovered after each, and every loss inside a
/// fault's window. Returns the faults, and prints them.
pub fn assert_losses_only_inside_fault_windows(r: &Value, actions: &[&str]) -> Vec<Value> {
    assert_eq!(r["verdict"], "pass");
    assert_eq!(u(&r["deliveries"]["duplicated"]), 0);
    let faults = r["faults"].as_array().expect("faults").clone();
    let made: Vec<&str> = faults.iter().filter_map(|f| f["action"].as_str()).collect();
    assert_eq!(made, actions, "every fault made, none failed");
    for fault in &faults {
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
    assert_eq!(timeline_sum(r, "lost"), lost);
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
    faults
}
