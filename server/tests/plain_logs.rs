//! Logs read by something other than a person at a terminal (`docker compose logs`, journald,
//! a file) are plain text. Found on a real engine (scripts/test-docker): every line of
//! `docker compose logs chat` carried colour escape codes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_worker_logging_to_a_pipe_writes_no_colour_codes() {
    let mut worker = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["worker", "--listen", "127.0.0.1:0", "--bus", "local"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chat-server worker");
    let stderr = worker.stderr.take().expect("piped stderr");
    // The first lines up to the one that says the worker listens (EOF would mean it exited).
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read the worker's stderr");
        let done = line.contains("listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        seen.last().is_some_and(|l| l.contains("listening on")),
        "the worker exited before it listened: {seen:#?}"
    );
    for line in &seen {
        assert!(
            !line.contains('\u{1b}'),
            "a log line written to a pipe has escape codes: {line:?}"
        );
    }
}
