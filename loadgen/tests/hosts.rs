//! Runs across hosts (`loadgen run --part I/N --coordinator redis://...`, issue 14): parts on
//! separate hosts (network namespaces, each with its own address, as root) meet in a real
//! Redis, start together and hand their results in; part 0 merges them into what one host
//! would have measured. A part that never arrives stops every part at the barrier, and a part
//! killed mid-run makes the collection fail naming it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use chat_server::netns::NetHost;
use chat_server::stack::{Stack, StackConfig, free_port, require};
use loadgen::target::fetch_worker_stats;
use serde_json::Value;
use tokio::process::{Child, Command};

mod common;
use common::{explain, loadgen, results, scratch, u, write_scenario};

/// Longest wait for one expected event.
const DEADLINE: Duration = Duration::from_secs(60);

/// 36 members in 6 rooms (2 per part of 3), 4 s of sending, nothing may be lost. Every member
/// connects from its host's one address (`none`): no per-member address, no X-Forwarded-For.
const SCENARIO: &str = r#"
name = "hosts"
duration = "4s"
seed = 14

[target]
local = { workers = 2, nginx_workers = 1 }
client_address = "none"

[population]
rooms = 6
members = 36
ramp = 36

[traffic]
rate_per_member = 1.0
deadline = "2s"

[thresholds]
"lost" = "== 0"
"#;

/// A redis-server of the test's own (the coordinator, and the stack's bus), on `binds`.
struct Redis {
    _child: Child,
    port: u16,
}

async fn start_redis(binds: &[Ipv4Addr]) -> Redis {
    let exe = require("redis-server", "redis-server").unwrap_or_else(|e| panic!("{e:#}"));
    let port = free_port().expect("a free port");
    let binds: Vec<String> = binds.iter().map(ToString::to_string).collect();
    let child = Command::new(exe)
        .arg("--bind")
        .args(&binds)
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        // Reached from the test hosts' addresses, not only loopback.
        .args(["--protected-mode", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server starts");
    let started = tokio::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(started.elapsed() < DEADLINE, "redis-server never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Redis {
        _child: child,
        port,
    }
}

/// The local stack (2 workers, loadgen's embedded chat-server) listening on `listen`, with
/// `redis` as its bus.
async fn start_stack(listen: &str, redis: &Redis) -> Stack {
    let config = StackConfig {
        workers: 2,
        listen: listen.parse().expect("address"),
        redis: Some(format!("redis://127.0.0.1:{}", redis.port)),
        redis_cluster: None,
        namespaces: false,
        nginx_workers: 1,
        nginx_limit_conn: chat_server::nginx::DEFAULT_LIMIT_CONN_PER_ADDRESS,
        run_dir: None,
        worker_args: Vec::new(),
        server_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_loadgen"))),
        server_prefix: vec!["chat-server".into()],
    };
    Stack::start(config)
        .await
        .unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

/// The worker nginx's `ip_hash` picks for a client in `net` (its first three octets) among
/// `peers` equal upstreams, as ngx_http_upstream_ip_hash_module computes it.
fn ip_hash_peer(net: [u8; 3], peers: u32) -> u32 {
    let hash = net
        .iter()
        .fold(89u32, |hash, &octet| (hash * 113 + u32::from(octet)) % 6271);
    hash % peers
}

/// /24s that nginx sends to worker `worker` of 2.
fn subnets_for(worker: u32) -> impl Iterator<Item = [u8; 3]> {
    (240..=250u8)
        .flat_map(|b| (0..=255u8).map(move |c| [10, b, c]))
        .filter(move |&net| ip_hash_peer(net, 2) == worker)
}

/// A test host whose address nginx sends to `worker`.
fn host_on(worker: u32) -> NetHost {
    NetHost::create_in(subnets_for(worker)).unwrap_or_else(|e| panic!("a test host: {e:#}"))
}

/// `loadgen ARGS` as a child process (inside `host`, when given), killed when dropped.
fn spawn_loadgen(host: Option<&NetHost>, args: &[&str]) -> Child {
    let exe = env!("CARGO_BIN_EXE_loadgen");
    let mut command = match host {
        Some(host) => host.command(exe),
        None => Command::new(exe),
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("loadgen starts")
}

async fn finish(child: Child) -> Output {
    tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("loadgen finished within 4 minutes")
        .expect("loadgen ran")
}

/// A run id no other test run shares.
fn run_id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Each worker's deliveries so far.
async fn delivered(stack: &Stack) -> Vec<u64> {
    let stats = fetch_worker_stats(&stack.info().workers).await;
    stats.iter().map(|s| s.delivered).collect()
}

#[tokio::test]
async fn three_parts_on_three_hosts_merge_to_what_one_host_measures() {
    // Hosts 0 and 2 reach worker 0, host 1 worker 1, by their own source addresses.
    let hosts = [host_on(0), host_on(1), host_on(0)];
    let gateways: Vec<Ipv4Addr> = hosts.iter().map(NetHost::gateway).collect();
    let redis = start_redis(&[&[Ipv4Addr::LOCALHOST][..], &gateways].concat()).await;
    // nginx on every address of the machine, so each host reaches it at its own gateway.
    let stack = start_stack("0.0.0.0:0", &redis).await;
    let nginx_port = stack.info().nginx.port();
    let before = delivered(&stack).await;

    let dir = scratch("hosts");
    let scenario = write_scenario(&dir, SCENARIO);
    let (s, out, one) = (
        scenario.to_str().unwrap(),
        dir.join("across"),
        dir.join("one"),
    );
    let id = run_id("three");
    let parts: Vec<Child> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let target = format!("http://{}:{nginx_port}", host.gateway());
            let coordinator = format!("redis://{}:{}", host.gateway(), redis.port);
            let part = format!("{i}/3");
            let args = [
                "run",
                s,
                "--target",
                &target,
                "--part",
                &part,
                "--coordinator",
                &coordinator,
                "--run-id",
                &id,
                "--out",
                out.to_str().unwrap(),
                "-q",
            ];
            spawn_loadgen(Some(host), &args)
        })
        .collect();
    // The same scenario on one host, at the same time, against a stack of its own.
    let one_args = ["run", s, "--out", one.to_str().unwrap(), "-q"];
    let one_host = loadgen(&one_args);
    let (one_output, outputs) = tokio::join!(
        one_host,
        futures_util::future::join_all(parts.into_iter().map(finish))
    );
    for output in outputs.iter().chain([&one_output]) {
        assert_eq!(output.status.code(), Some(0), "{}", explain(output));
    }
    let (merged, single) = (results(&out), results(&one));

    // Part 0 wrote the whole run, merged as a split run is, from three parts.
    assert_eq!(merged["parts"], 3);
    assert_eq!(merged["target"], "url");
    assert_eq!(merged["verdict"], "pass");
    for key in ["messages", "expected", "delivered", "lost", "duplicated"] {
        assert_eq!(
            merged["deliveries"][key], single["deliveries"][key],
            "deliveries.{key}"
        );
    }
    assert!(u(&merged["deliveries"]["expected"]) > 0);
    for key in ["sends", "joins", "connects"] {
        assert_eq!(
            merged["counters"][key], single["counters"][key],
            "counters.{key}"
        );
    }
    assert_eq!(merged["sends"]["planned"], single["sends"]["planned"]);
    assert_eq!(
        merged["latency"]["fanout"]["count"],
        single["latency"]["fanout"]["count"]
    );
    // Each part's host and clock, measured against the coordinator.
    let recorded: Vec<&Value> = merged["hosts"].as_array().expect("hosts").iter().collect();
    let numbers: Vec<u64> = recorded.iter().map(|h| u(&h["part"])).collect();
    assert_eq!(numbers, [0, 1, 2]);
    for h in &recorded {
        assert!(h["host"].as_str().is_some_and(|s| !s.is_empty()), "{h}");
        assert!(h["clock_offset_us"].is_i64(), "{h}");
        assert_eq!(h["beyond_limit"], false, "one machine's clock: {h}");
    }
    // Both workers delivered: nginx saw the hosts' own addresses (one /24 each), not one
    // address for all of them.
    let after = delivered(&stack).await;
    for (worker, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a > b, "worker {worker} delivered nothing ({b} -> {a})");
    }

    // The parts' own results, merged by `loadgen merge`, give the same record.
    let merged_again = dir.join("merged.json");
    let part_files: Vec<String> = (0..3)
        .map(|i| format!("{}/part-{i}/results.json", out.display()))
        .collect();
    let mut args = vec!["merge"];
    args.extend(part_files.iter().map(String::as_str));
    args.extend(["-o", merged_again.to_str().unwrap()]);
    let output = loadgen(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(&merged_again).unwrap()).unwrap();
    assert_eq!(again["deliveries"], merged["deliveries"]);
    assert_eq!(again["histograms"], merged["histograms"]);
    assert_eq!(again["hosts"], merged["hosts"]);
    stack.stop().await;
}

/// `loadgen run SCENARIO` against `target`, coordinated by `coordinator` (the part and the
/// run id follow).
fn part_args<'a>(scenario: &'a str, target: &'a str, coordinator: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        scenario,
        "--target",
        target,
        "--coordinator",
        coordinator,
        "-q",
    ]
}

#[tokio::test]
async fn a_part_that_never_arrives_stops_every_part_at_the_barrier() {
    let redis = start_redis(&[Ipv4Addr::LOCALHOST]).await;
    // The barrier never opens, so nothing but a listening target is needed.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let target = format!("http://{}", target.local_addr().unwrap());
    let dir = scratch("barrier");
    let scenario = write_scenario(&dir, SCENARIO);
    let coordinator = format!("redis://127.0.0.1:{}", redis.port);
    let id = run_id("barrier");
    let args = part_args(scenario.to_str().unwrap(), &target, &coordinator);
    let extra = ["--run-id", &id, "--barrier-timeout", "2s"];
    let spawn = |part: &str| {
        let part_flags = ["--part", part, "--out", dir.to_str().unwrap()];
        spawn_loadgen(None, &[&args[..], &extra, &part_flags].concat())
    };
    let (a, b) = tokio::join!(finish(spawn("0/3")), finish(spawn("1/3")));
    for output in [&a, &b] {
        assert_eq!(output.status.code(), Some(2), "{}", explain(output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("part 2 of 3 never arrived"),
            "names the missing part: {stderr}"
        );
    }
    assert!(!dir.join("results.json").exists());
}

/// Waits until `path` exists.
async fn appears(path: &Path) {
    let started = tokio::time::Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < DEADLINE,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_part_killed_mid_run_fails_the_collection_naming_it() {
    let redis = start_redis(&[Ipv4Addr::LOCALHOST]).await;
    let stack = start_stack("127.0.0.1:0", &redis).await;
    let dir = scratch("killed");
    let scenario = write_scenario(&dir, SCENARIO);
    let coordinator = format!("redis://127.0.0.1:{}", redis.port);
    let id = run_id("killed");
    let args = part_args(scenario.to_str().unwrap(), &stack.info().url, &coordinator);
    let out = dir.join("out");
    let spawn = |part: &str| {
        let part_flags = [
            "--part",
            part,
            "--out",
            out.to_str().unwrap(),
            "--run-id",
            &id,
        ];
        spawn_loadgen(None, &[&args[..], &part_flags].concat())
    };
    let (zero, mut one) = (spawn("0/2"), spawn("1/2"));
    // Part 1's folder is made once the run has started: kill it then, mid-run.
    appears(&out.join("part-1")).await;
    one.start_kill().expect("kill part 1");
    let killed = finish(one).await;
    assert_eq!(killed.status.code(), None, "killed by a signal");

    let output = finish(zero).await;
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("part 1 (host") && stderr.contains("stopped without handing in"),
        "names the killed part: {stderr}"
    );
    // No merged record (it would undercount the run); part 0's own results are kept.
    assert!(!out.join("results.json").exists());
    let part: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("part-0/results.json")).expect("part 0's results"),
    )
    .expect("JSON");
    assert!(u(&part["counters"]["joins"]) > 0);

    // A new attempt with the same run id starts afresh (the dead one is not joined).
    let again = dir.join("again");
    let spawn = |part: &str| {
        let part_flags = [
            "--part",
            part,
            "--out",
            again.to_str().unwrap(),
            "--run-id",
            &id,
        ];
        spawn_loadgen(None, &[&args[..], &part_flags].concat())
    };
    let (a, b) = tokio::join!(finish(spawn("auto/2")), finish(spawn("auto/2")));
    for output in [&a, &b] {
        assert_eq!(output.status.code(), Some(0), "{}", explain(output));
    }
    assert_eq!(results(&again)["parts"], 2);
    stack.stop().await;
}
