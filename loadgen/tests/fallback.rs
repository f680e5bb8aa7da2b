//! The README's main command on a machine without redis-server and nginx: loadgen says what
//! it does instead (one embedded worker) and what to install, runs, and still writes results
//! and a report that say so. A scenario with faults cannot run that way (the embedded worker
//! cannot be killed or paused): it is refused before anything starts, as are faults against a
//! URL. The machine is simulated with ROOMSTORM_PRETEND_MISSING.

mod common;

use std::path::Path;
use std::process::Output;

use common::{explain, repo, scratch};

/// `loadgen run ARGS -q` from the repository root, with `pretend_missing` programs missing.
fn loadgen_run(args: &[&str], out: &Path, pretend_missing: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .current_dir(repo())
        .env("ROOMSTORM_PRETEND_MISSING", pretend_missing)
        .output()
        .expect("loadgen runs")
}

/// Processes whose command line names `path` (a local stack's redis-server and nginx are
/// started with their config and logs under the run folder).
fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let entry = entry.expect("entry");
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn without_redis_and_nginx_the_smoke_run_falls_back_and_still_reports() {
    let dir = scratch("fallback");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "scenarios/smoke.toml", "--out"])
        .arg(&dir)
        .arg("-q")
        .current_dir(repo())
        .env("ROOMSTORM_PRETEND_MISSING", "nginx,redis-server")
        .output()
        .expect("loadgen runs");
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ONE embedded worker"), "{stderr}");
    assert!(
        stderr.contains("apt-get install -y nginx redis-server"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("report.html"),
        "prints where the report is: {stdout}"
    );
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("results.json")).expect("results.json written"),
    )
    .expect("results.json is JSON");
    assert_eq!(results["target"], "embedded", "results.json says what ran");
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
    assert!(report.contains("<svg"), "the report has its charts");
    assert!(
        report.contains("ONE embedded worker (no Redis, no nginx)"),
        "the report's banner says what ran"
    );
    assert!(!dir.join("stack").exists(), "no cluster was started");
}

#[test]
fn a_scenario_with_faults_is_refused_without_nginx_before_anything_starts() {
    let out = scratch("fallback-faults").join("run");
    let output = loadgen_run(&["scenarios/failover.toml"], &out, "nginx");
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for part in [
        "kill_worker 1 at 10s",   // which fault needs the stack
        "nginx is not installed", // what is missing
        "apt-get install -y nginx",
    ] {
        assert!(stderr.contains(part), "{part:?} not in: {stderr}");
    }
    assert!(
        !stderr.contains("redis-server"),
        "redis-server is installed: {stderr}"
    );
    assert!(
        !stderr.contains("embedded worker ("),
        "no fallback: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no run, so no summary: {}",
        explain(&output)
    );
    // Refused before the run folder was made, so no stack was started in it.
    assert!(!out.exists(), "the run folder was created");
    assert_eq!(processes_naming(&out), Vec::<String>::new());
}

#[test]
fn faults_against_a_url_given_on_the_command_line_are_refused() {
    let out = scratch("url-faults").join("run");
    // Nothing needs to listen there: the scenario is refused before the target is tried.
    let target = "http://127.0.0.1:9";
    let output = loadgen_run(&["scenarios/failover.toml", "--target", target], &out, "");
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("faults need target.local") && stderr.contains("the stack it started"),
        "{stderr}"
    );
    assert!(!stderr.contains("unreachable"), "refused first: {stderr}");
    assert!(!out.exists(), "the run folder was created");
}
