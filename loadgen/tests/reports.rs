//! The `loadgen report` and `loadgen compare` commands, and the report.html of `loadgen run`:
//! pages written where asked, and compare's exit status as a CI gate (0 no regression, 1 a
//! regression, 2 bad input).

use std::path::{Path, PathBuf};
use std::process::Output;

use loadgen::results::Results;
use loadgen::results::histograms::{HistogramKind, Histograms};

mod common;
use common::{explain, repo, scratch};

fn fixture(name: &str) -> PathBuf {
    repo()
        .join("reports/tests/fixtures")
        .join(format!("{name}.json"))
}

fn loadgen(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("loadgen runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The smoke fixture with every fan-out and completion latency `factor` times larger.
fn slower(dir: &Path, factor: f64) -> PathBuf {
    let base = Results::read(&fixture("smoke")).expect("fixture");
    let h = base.decode_histograms().expect("decodes");
    let mut scaled = Histograms::new();
    for metric in HistogramKind::ALL {
        let f = match metric {
            HistogramKind::Fanout | HistogramKind::Completion => factor,
            _ => 1.0,
        };
        for v in h.histogram(metric).iter_recorded() {
            for _ in 0..v.count_at_value() {
                scaled.record(metric, (v.value_iterated_to() as f64 * f) as u64);
            }
        }
    }
    let mut new = base.clone();
    new.set_histograms(&scaled).expect("encodes");
    let path = dir.join(format!("slower-{factor}.json"));
    new.write(&path).expect("writes");
    path
}

#[test]
fn report_renders_a_results_file() {
    let dir = scratch("report");
    let out = dir.join("page.html");
    let output = loadgen(&["report", s(&fixture("failover")), "-o", s(&out)]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let html = std::fs::read_to_string(&out).expect("page written");
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    assert!(String::from_utf8_lossy(&output.stdout).contains(s(&out)));
    // Without -o: report.html beside the results.
    let copy = dir.join("results.json");
    std::fs::copy(fixture("smoke"), &copy).expect("copy");
    let output = loadgen(&["report", s(&copy)]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert!(dir.join("report.html").exists());
}

#[test]
fn compare_passes_equal_runs_and_fails_a_20_percent_p99_regression() {
    let dir = scratch("compare");
    let base = fixture("smoke");
    let page = dir.join("same.html");
    let output = loadgen(&["compare", s(&base), s(&base), "-o", s(&page)]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("no regression"));
    assert!(page.exists());

    let slow = slower(&dir, 1.2);
    let output = loadgen(&["compare", s(&base), s(&slow)]);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("REGRESSION in fanout.p99"), "{stdout}");
    assert!(
        dir.join("compare.html").exists(),
        "written beside the new results"
    );

    let wide = dir.join("wide.html");
    let output = loadgen(&[
        "compare",
        s(&base),
        s(&slow),
        "--tolerance",
        "25%",
        "-o",
        s(&wide),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let back = dir.join("back.html");
    let output = loadgen(&[
        "compare",
        s(&slow),
        s(&base),
        "--tolerance",
        "0.1",
        "-o",
        s(&back),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "an improvement: {}",
        explain(&output)
    );
}

#[test]
fn compare_refuses_bad_input_with_status_2() {
    let dir = scratch("bad");
    let base = fixture("smoke");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"schema\": \"something else\"}").expect("write");
    let missing = dir.join("missing.json");
    for args in [
        vec!["compare", s(&base), s(&missing)],
        vec!["compare", s(&garbage), s(&base)],
        vec!["compare", s(&base), s(&base), "--tolerance", "lots"],
        vec!["compare", s(&base), s(&base), "--tolerance", "-5%"],
        vec!["compare", s(&base), s(&base), "-o", s(&base)],
        vec!["report", s(&garbage)],
    ] {
        let output = loadgen(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            explain(&output)
        );
    }
    let untouched = std::fs::read_to_string(&base).expect("fixture");
    assert!(untouched.starts_with('{'), "an input is never overwritten");
}

/// A split run (two processes, results merged) writes the merged run's report.
#[test]
fn run_writes_report_html_beside_results_json() {
    let dir = scratch("run");
    let scenario = repo().join("scenarios/smoke.toml");
    let output = loadgen(&[
        "run",
        s(&scenario),
        "--out",
        s(&dir),
        "--duration",
        "3s",
        "--members",
        "8",
        "--processes",
        "2",
        "-q",
    ]);
    assert!(
        matches!(output.status.code(), Some(0) | Some(1)),
        "{}",
        explain(&output)
    );
    let report = dir.join("report.html");
    let html = std::fs::read_to_string(&report).expect("report.html written");
    assert!(html.contains("smoke") && html.contains("id=\"chart-fanout-histogram\""));
    assert!(
        html.contains("2 parts"),
        "the merged results of both processes"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("report: {}", report.display())),
        "{stdout}"
    );
}

/// `loadgen figures ... | head`: a reader that closed its end ends the command as it ends any
/// Unix tool, without a panic ("failed printing to stdout") on the way.
#[test]
fn a_closed_stdout_ends_figures_without_a_panic() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader); // nobody will read: every write gets EPIPE
    let smoke = fixture("smoke");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["figures", "-m", "members", "-m", "delivered"])
        .args([s(&smoke), s(&smoke)])
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .output()
        .expect("loadgen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{}", explain(&output));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{}",
        explain(&output)
    );
}
