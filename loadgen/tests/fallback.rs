//! The README's main command on a machine without redis-server and nginx: loadgen says what
//! it does instead (one embedded worker) and what to install, runs, and still writes results
//! and a report. The machine is simulated with ROOMSTORM_PRETEND_MISSING.

mod common;

use common::{explain, repo, scratch};

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
    assert!(dir.join("results.json").exists());
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
    assert!(report.contains("<svg"), "the report has its charts");
    assert!(!dir.join("stack").exists(), "no cluster was started");
}
