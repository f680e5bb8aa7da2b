//! Acceptance 2 and 7: the official JavaScript clients and the chat page in a real browser.
//!
//! socket.io-client 4 (Engine.IO 4) through nginx over websocket and polling, socket.io-client
//! 2 (Engine.IO 3) straight to a worker, and the page in headless Chromium driven by
//! playwright-core: two pages on different workers chat through nginx, and markup typed by a
//! user is shown as text. The node scripts live in `compat/` (see its README).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use roomstorm_client::{ClientConfig, Transport};
use tokio::io::{AsyncBufReadExt, BufReader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails with what to install when node or the npm modules are missing.
fn require_node_modules(folder: &str, package: &str) {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed: apt-get install -y nodejs npm"
    );
    let module = repo().join(folder).join("node_modules").join(package);
    assert!(
        module.exists(),
        "{} is missing: run `npm ci --prefix {folder}`",
        module.display()
    );
}

/// Runs `node compat/<script> args...`; returns its JSON line, failing with its stderr.
async fn run_script(script: &str, args: &[String]) -> serde_json::Value {
    require_node_modules("compat", "socket.io-client");
    let output = tokio::process::Command::new("node")
        .arg(repo().join("compat").join(script))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 60 s"))
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

fn chat_args(url: &str, room: &str, transport: &str) -> Vec<String> {
    [
        "--url",
        url,
        "--room",
        room,
        "--transport",
        transport,
        "--members",
        "4",
        "--messages",
        "10",
        "--check-errors",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn socket_io_client_4_through_nginx_over_both_transports() {
    let stack = start_stack(2, &[]).await;
    for transport in ["websocket", "polling", "upgrade"] {
        let room = format!("sio4-{transport}");
        let result = run_script(
            "sio4-chat.mjs",
            &chat_args(&stack.info().url, &room, transport),
        )
        .await;
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["says_received"], 4 * 4 * 10, "{result}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn socket_io_client_2_engine_io_3_directly_to_a_worker() {
    let stack = start_stack(1, &[]).await;
    let worker = format!("http://{}", stack.info().workers[0]);
    for transport in ["websocket", "polling"] {
        let room = format!("sio2-{transport}");
        let result = run_script("sio2-chat.cjs", &chat_args(&worker, &room, transport)).await;
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["engine_io"], 3, "{result}");
    }
    stack.stop().await;
}

/// Finds one forwarded address per worker: nginx trusts X-Forwarded-For from loopback and
/// ip_hash routes on it, so a browser page can be steered to a chosen worker.
async fn forwarded_address_per_worker(stack: &chat_server::stack::Stack) -> Vec<String> {
    let workers = stack.info().workers.clone();
    let mut found: Vec<Option<String>> = vec![None; workers.len()];
    for k in 1..=50u8 {
        let mut config = ClientConfig::new(stack.info().url.clone()).query("roomid", "probe");
        config.forwarded_for = Some(member_addr(k));
        config.transport = Transport::WebSocket;
        let (tx, rx) = roomstorm_client::connect(&config)
            .await
            .expect("probe connect");
        for (i, worker) in workers.iter().enumerate() {
            if found[i].is_none() && worker_stats(*worker).await.sockets > 0 {
                found[i] = Some(member_addr(k).to_string());
            }
        }
        let _ = tx.close().await;
        drop(rx);
        for worker in &workers {
            let worker = *worker;
            eventually("probe socket gone", Duration::from_secs(5), || async move {
                worker_stats(worker).await.sockets == 0
            })
            .await;
        }
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().collect();
        }
    }
    panic!("no forwarded address reached every worker: {found:?}");
}

#[tokio::test]
async fn the_chat_page_in_chromium_chats_across_workers_through_nginx() {
    require_node_modules("web", "socket.io-client");
    require_node_modules("compat", "playwright-core");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "chromium is not installed: apt-get install -y chromium"
    );
    let stack = start_stack(2, &[]).await;
    let addresses = forwarded_address_per_worker(&stack).await;
    let args = [
        "--url".to_string(),
        stack.info().url.clone(),
        "--forwarded-for".to_string(),
        addresses.join(","),
        "--room".to_string(),
        "page-test".to_string(),
    ];
    let result = run_script("chat-page.mjs", &args).await;
    assert_eq!(result["ok"], true, "{result}");
    // Both workers carried a page: each delivered messages.
    for worker in &stack.info().workers {
        assert!(
            worker_stats(*worker).await.delivered > 0,
            "worker {worker} delivered nothing"
        );
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_page_from_another_origin_connects_when_allowed() {
    require_node_modules("web", "socket.io-client");
    require_node_modules("compat", "playwright-core");
    let stack = start_stack(1, &[]).await;
    let port = chat_server::stack::free_port().expect("free port");
    let mut server = tokio::process::Command::new("node")
        .arg(repo().join("compat/serve-web.cjs"))
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start compat/serve-web.cjs");
    let stdout = server.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("serve-web.cjs did not start")
        .expect("read serve-web.cjs output");
    let page_origin = format!("http://127.0.0.1:{port}");
    let args = [
        "--url".to_string(),
        page_origin,
        "--server".to_string(),
        stack.info().url.clone(),
        "--transport".to_string(),
        "polling".to_string(),
    ];
    let result = run_script("chat-page.mjs", &args).await;
    assert_eq!(result["ok"], true, "{result}");
    let _ = server.kill().await;
    stack.stop().await;
}
