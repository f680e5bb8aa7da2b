//! End-to-end runs of the `loadgen` binary against real stacks (redis-server, the cluster,
//! nginx), checking what issue 3 asks: every owed delivery made and agreeing with the workers,
//! members spread over workers, honest measurement (a pause shows as latency, drops as lost,
//! duplicates as duplicated), exact multi-process merges, other servers of the protocol, and
//! clear refusals.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use chat_server::stack::{Stack, StackConfig};
use roomstorm_results::{Results, TargetKind};
use serde_json::Value;

mod common;
use common::{explain, loadgen, repo, results, scratch, timeline_sum, u, write_scenario};

/// `loadgen run SCENARIO --out DIR -q`.
async fn run_scenario(scenario: &Path, dir: &Path) -> Output {
    let (scenario, dir) = (scenario.to_str().unwrap(), dir.to_str().unwrap());
    loadgen(&["run", scenario, "--out", dir, "-q"]).await
}

/// Runs `text` as a scenario in `dir` to its end; it must exit with `status` (what its
/// thresholds must say of this run: 0 all held, 1 one failed). Returns its output and
/// results.json.
async fn measured_run(dir: &Path, text: &str, status: i32) -> (Output, Value) {
    let scenario = write_scenario(dir, text);
    let output = run_scenario(&scenario, dir).await;
    assert_eq!(output.status.code(), Some(status), "{}", explain(&output));
    let r = results(dir);
    assert_eq!(r["verdict"], if status == 0 { "pass" } else { "fail" });
    (output, r)
}

/// `loadgen run SCENARIO --out DIR`, with progress: for runs that fail before starting.
async fn run_scenario_loud(scenario: &Path, dir: &Path) -> Output {
    let (scenario, dir) = (scenario.to_str().unwrap(), dir.to_str().unwrap());
    loadgen(&["run", scenario, "--out", dir]).await
}

/// A local stack whose workers are loadgen's embedded chat-server, with extra worker flags.
async fn stack(workers: usize, worker_args: &[&str]) -> Stack {
    let config = StackConfig {
        workers,
        listen: "127.0.0.1:0".parse().expect("address"),
        redis: None,
        redis_cluster: None,
        namespaces: false,
        nginx_workers: 1,
        nginx_limit_conn: chat_server::nginx::DEFAULT_LIMIT_CONN_PER_ADDRESS,
        run_dir: None,
        worker_args: worker_args.iter().map(|s| s.to_string()).collect(),
        server_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_loadgen"))),
        server_prefix: vec!["chat-server".into()],
    };
    Stack::start(config)
        .await
        .unwrap_or_else(|e| panic!("cannot start the stack: {e:#}"))
}

/// The timeline's per-second `lost` (by intended send second), summed.
fn timeline_lost(r: &Value) -> u64 {
    timeline_sum(r, "lost")
}

#[tokio::test]
async fn smoke_delivers_everything_and_agrees_with_the_workers() {
    let dir = scratch("smoke");
    let scenario = repo().join("scenarios/smoke.toml");
    let output = run_scenario(&scenario, &dir).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = results(&dir);
    let d = &r["deliveries"];
    assert!(u(&d["expected"]) > 0);
    assert_eq!(d["delivered"], d["expected"], "{d}");
    assert_eq!(u(&d["lost"]), 0);
    assert_eq!(u(&d["duplicated"]), 0);
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["target"], "local_stack");
    // Members really spread over the workers through nginx.
    let workers = r["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| u(&w["members"]) > 0), "{workers:?}");
    // Rooms span workers: their fan-out crosses Redis (4 rooms; counted once per worker).
    let rooms: u64 = workers.iter().map(|w| u(&w["rooms"])).sum();
    assert!(
        rooms > 4,
        "no room has members on both workers: {workers:?}"
    );
    // What members received equals what the workers say they delivered.
    let delivered: u64 = workers.iter().map(|w| u(&w["delivered"])).sum();
    assert_eq!(u(&r["counters"]["received_at_quiet_point"]), delivered);
    // The serialized histograms are there for reports and merges.
    assert!(
        r["histograms"]["fanout"]
            .as_str()
            .is_some_and(|h| h.starts_with("HISTF"))
    );
    for key in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
        assert!(r["latency"]["fanout"][key].is_u64(), "latency.fanout.{key}");
    }
    // CPU and memory of every local component, sampled while the run lasted.
    let resources = &r["resources"];
    assert_eq!(resources["interval_s"], 1.0, "{resources}");
    let components = resources["components"].as_array().expect("components");
    for name in [
        "loadgen",
        "chat worker 0",
        "chat worker 1",
        "master",
        "nginx",
        "redis",
    ] {
        let c = components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no component {name}: {components:?}"));
        let cpu = c["cpu_seconds"].as_f64().expect("cpu_seconds");
        // Every message passes through these; the master only watches its workers, and may
        // use less than the one clock tick (10 ms) the kernel counts in.
        if name != "master" {
            assert!(cpu > 0.0, "{name} did the run's work: {c}");
        }
        assert!(u(&c["peak_rss_kib"]) > 0, "{name}: {c}");
        assert!(
            c["series"].as_array().is_some_and(|s| s.len() >= 10),
            "{name}"
        );
    }
    // The warning flag is the rule applied to these very components: the generator against
    // the whole server.
    let cpu_of = |generator: bool| -> f64 {
        components
            .iter()
            .filter(|c| (c["name"] == "loadgen") == generator)
            .map(|c| c["cpu_seconds"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(
        resources["generator_bound"].as_bool(),
        Some(cpu_of(true) > cpu_of(false)),
        "{resources}"
    );
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
    assert!(report.contains("id=\"resources\"") && report.contains("CPU and memory by component"));
    assert!(report.contains("chat worker 1"));
}

const SMALL: &str = r#"
name = "small"
description = "20 members in 4 rooms"
duration = "5s"
seed = 7

[target]
local = { workers = 2, nginx_workers = 1 }

[population]
rooms = 4
members = 20
ramp = 20

[traffic]
rate_per_member = 2.0
deadline = "2s"

[thresholds]
"lost" = "== 0"
"#;

/// 30 members in 3 rooms of 10, 4 members per goose user: 8 users, the last driving 2.
const SHARED_USERS: &str = r#"
name = "shared"
description = "30 members in 3 rooms, 4 members per goose user"
duration = "5s"
seed = 11

[target]
local = { workers = 2, nginx_workers = 1 }

[population]
rooms = 3
members = 30
ramp = 30
members_per_user = 4

[traffic]
rate_per_member = 2.0
deadline = "2s"

[thresholds]
"lost" = "== 0"
"duplicated" = "== 0"
"#;

#[tokio::test]
async fn several_members_per_goose_user_each_connect_join_and_are_owed_everything() {
    let dir = scratch("shared-users");
    let (_, r) = measured_run(&dir, SHARED_USERS, 0).await;
    // Every member connected and joined once, and its own times are in the histograms.
    assert_eq!(u(&r["counters"]["connects"]), 30, "{}", r["counters"]);
    assert_eq!(u(&r["counters"]["joins"]), 30, "{}", r["counters"]);
    assert_eq!(u(&r["counters"]["connect_errors"]), 0);
    assert_eq!(u(&r["latency"]["connect"]["count"]), 30);
    assert_eq!(u(&r["latency"]["join"]["count"]), 30);
    // All 30 at once on the workers at the quiet point: no member left early or never came.
    let workers = r["workers"].as_array().expect("workers");
    let on_workers: u64 = workers.iter().map(|w| u(&w["members"])).sum();
    assert_eq!(on_workers, 30, "{workers:?}");
    // Every message owed to its whole room (the sender too: the app echoes), and every
    // owed delivery made once.
    let d = &r["deliveries"];
    let messages = u(&d["messages"]);
    assert!(messages > 0, "{d}");
    assert_eq!(messages, u(&r["counters"]["sends"]), "{d}");
    assert_eq!(u(&d["expected"]), messages * 10, "{d}");
    assert_eq!(u(&r["latency"]["fanout_size"]["min_us"]), 10);
    assert_eq!(u(&r["latency"]["fanout_size"]["max_us"]), 10);
    assert_eq!(d["delivered"], d["expected"], "{d}");
    assert_eq!(u(&d["lost"]), 0, "{d}");
    assert_eq!(u(&d["duplicated"]), 0, "{d}");
    assert_eq!(timeline_lost(&r), 0);
    // Every member sent what its schedule planned: none was held back by another.
    assert_eq!(r["sends"]["made"], r["sends"]["planned"], "{}", r["sends"]);
}

/// Members of a shared goose user sleep until their next send (once a minute here), so a
/// member whose worker is killed must be woken by the drop itself to reconnect in time: if it
/// noticed only at its next send, none would be back before the send window ends.
#[tokio::test]
async fn members_of_a_shared_user_notice_a_drop_at_once_and_reconnect() {
    let dir = scratch("shared-users-drop");
    let text = SHARED_USERS
        .replace("duration = \"5s\"", "duration = \"10s\"")
        .replace("rate_per_member = 2.0", "rate_per_member = 0.0166667")
        .replace(
            "deadline = \"2s\"",
            "deadline = \"2s\"\nreconnect = \"backoff\"",
        )
        .replace("\"lost\" = \"== 0\"\n", "")
        + "\n[[faults]]\nat = \"3s\"\nkill_worker = 0\n";
    let (_, r) = measured_run(&dir, &text, 0).await;
    let c = &r["counters"];
    let dropped = u(&c["disconnects"]);
    assert!(dropped > 0, "the killed worker held members: {c}");
    assert_eq!(
        u(&c["reconnects"]),
        dropped,
        "every dropped member came back: {c}"
    );
    let workers = r["workers"].as_array().expect("workers");
    let on_workers: u64 = workers.iter().map(|w| u(&w["members"])).sum();
    assert_eq!(on_workers, 30, "all back at the quiet point: {workers:?}");
}

/// The scenario run twice at once, in one process (results in `one`) and split over two (in
/// `two`).
async fn one_and_two_processes(scenario: &Path, one: &Path, two: &Path) -> (Output, Output) {
    let s = scenario.to_str().unwrap();
    let (one_s, two_s) = (one.to_str().unwrap(), two.to_str().unwrap());
    let one_args = ["run", s, "--out", one_s, "-q", "--processes", "1"];
    let two_args = ["run", s, "--out", two_s, "-q", "--processes", "2"];
    tokio::join!(loadgen(&one_args), loadgen(&two_args))
}

#[tokio::test]
async fn two_processes_merge_to_the_same_totals_as_one() {
    let dir = scratch("merge");
    let scenario = write_scenario(&dir, SMALL);
    let (one, two) = (dir.join("one"), dir.join("two"));
    let (a, b) = one_and_two_processes(&scenario, &one, &two).await;
    assert_eq!(a.status.code(), Some(0), "{}", explain(&a));
    assert_eq!(b.status.code(), Some(0), "{}", explain(&b));
    let (r1, r2) = (results(&one), results(&two));
    assert_eq!(r2["parts"], 2);
    // The parts ran against the parent's URL; the run as a whole against the local stack.
    assert_eq!(r1["target"], "local_stack");
    assert_eq!(r2["target"], "local_stack");
    let part = Results::read(&two.join("part-0/results.json")).expect("part 0");
    assert_eq!(part.target, Some(TargetKind::Url));
    // The parent sampled every process, its parts included, as one load generator.
    let loadgen_cpu = |r: &Value| {
        let components = r["resources"]["components"].as_array().expect("resources");
        let c = components.iter().find(|c| c["name"] == "loadgen");
        c.and_then(|c| c["cpu_seconds"].as_f64())
            .expect("loadgen sampled")
    };
    // Both runs did the same members' work. A parent that sampled only itself (it just waits)
    // would show a small fraction of the single process's CPU.
    assert!(
        loadgen_cpu(&r2) > loadgen_cpu(&r1) / 2.0,
        "the split run's parts are not in its loadgen CPU: {} s against {} s in one process",
        loadgen_cpu(&r2),
        loadgen_cpu(&r1)
    );
    for key in ["messages", "expected", "delivered", "lost", "duplicated"] {
        assert_eq!(
            r1["deliveries"][key], r2["deliveries"][key],
            "deliveries.{key}"
        );
    }
    for key in ["sends", "joins", "connects"] {
        assert_eq!(r1["counters"][key], r2["counters"][key], "counters.{key}");
    }
    assert_eq!(
        r1["latency"]["fanout"]["count"],
        r2["latency"]["fanout"]["count"]
    );

    // `loadgen merge` of the parts gives the same record as the run's own merge.
    let merged = dir.join("merged.json");
    let parts = [
        two.join("part-0/results.json"),
        two.join("part-1/results.json"),
    ];
    let output = loadgen(&[
        "merge",
        parts[0].to_str().unwrap(),
        parts[1].to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(m["deliveries"], r2["deliveries"]);
    assert_eq!(m["histograms"], r2["histograms"]);
    assert_eq!(m["latency"], r2["latency"]);
    // ...judged again by the rules the parts carry: the same rules, measured and verdict.
    assert_eq!(m["thresholds"][0]["rule"], "lost == 0");
    assert_eq!(m["thresholds"], r2["thresholds"]);
    assert_eq!(m["verdict"], r2["verdict"]);
}

#[tokio::test]
async fn a_paused_worker_shows_in_the_maximum_and_in_that_seconds_p99() {
    let dir = scratch("pause");
    let text = SMALL.replace("rate_per_member = 2.0", "rate_per_member = 5.0")
        + "\n[[faults]]\nat = \"4s\"\npause_worker = { worker = 0, for = \"500ms\" }\n";
    // Delayed 500 ms, not lost: the deadline is 2 s, so `lost == 0` holds.
    let (_, r) = measured_run(&dir, &text, 0).await;
    let max = u(&r["latency"]["fanout"]["max_us"]);
    assert!(
        max >= 450_000,
        "a 500 ms pause must show in the maximum, got {max} µs"
    );
    let worst_second = r["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| u(&s["fanout_p99_us"]))
        .max()
        .unwrap_or_default();
    assert!(
        worst_second >= 250_000,
        "the p99 of the pause's second shows it: {worst_second} µs"
    );
    assert_eq!(
        r["faults"][0]["action"]
            .as_str()
            .map(|a| a.starts_with("pause_worker 0")),
        Some(true)
    );
}

/// The value of `chat_chaos_total{action}` on the stack's only worker.
async fn chaos_count(stack: &Stack, action: &str) -> u64 {
    let worker = stack.info().workers[0];
    let (_, body) = chat_server::probe::http_get(worker, "/metrics", Duration::from_secs(2))
        .await
        .expect("metrics");
    let series = format!("chat_chaos_total{{worker=\"0\",action=\"{action}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(series.as_str())?.parse().ok())
        .expect("chaos series")
}

#[tokio::test]
async fn dropped_and_duplicated_messages_are_counted_exactly() {
    let stack = stack(
        1,
        &["--chaos-drop-every", "37", "--chaos-duplicate-every", "41"],
    )
    .await;
    let dir = scratch("chaos");
    let text = SMALL.replace(
        "local = { workers = 2, nginx_workers = 1 }",
        &format!("url = \"{}\"", stack.info().url),
    );
    let scenario = write_scenario(&dir, &text);
    let output = run_scenario(&scenario, &dir).await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "lost == 0 must fail: {}",
        explain(&output)
    );
    let r = results(&dir);
    let (dropped, duplicated) = (
        chaos_count(&stack, "drop").await,
        chaos_count(&stack, "duplicate").await,
    );
    assert!(dropped > 0 && duplicated > 0);
    // One worker: a message dropped or doubled there is so for all 5 members of its room.
    assert_eq!(
        u(&r["deliveries"]["lost"]),
        dropped * 5,
        "{}",
        r["deliveries"]
    );
    assert_eq!(
        u(&r["deliveries"]["duplicated"]),
        duplicated * 5,
        "{}",
        r["deliveries"]
    );
    assert_eq!(r["verdict"], "fail");
    // Every loss is in the second its message was meant to be sent.
    assert_eq!(timeline_lost(&r), u(&r["deliveries"]["lost"]));
    // ...and the report charts them over time, all of them.
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    // Dropped by the server: never received, none late.
    assert_eq!(u(&r["deliveries"]["never"]), u(&r["deliveries"]["lost"]));
    let never = roomstorm_reports::format::count(u(&r["deliveries"]["never"]));
    assert!(
        report.contains(&format!("never delivered ({never})")),
        "the errors chart's legend must count the {never} deliveries never made"
    );

    // The same run split over two processes: the parts' per-second losses merge exactly.
    let split = dir.join("split");
    let (s, out) = (scenario.to_str().unwrap(), split.to_str().unwrap());
    let output = loadgen(&["run", s, "--out", out, "-q", "--processes", "2"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let r2 = results(&split);
    assert_eq!(r2["parts"], 2);
    let dropped_in_split = chaos_count(&stack, "drop").await - dropped;
    assert!(dropped_in_split > 0);
    assert_eq!(u(&r2["deliveries"]["lost"]), dropped_in_split * 5);
    assert_eq!(timeline_lost(&r2), u(&r2["deliveries"]["lost"]));
    stack.stop().await;
}

#[tokio::test]
async fn works_against_the_original_node_design() {
    let modules = repo().join("peers/node-seed/node_modules/socket.io");
    assert!(
        modules.exists(),
        "run `npm ci --prefix peers/node-seed` first"
    );
    let redis_port = chat_server::stack::free_port().expect("port");
    let mut redis = tokio::process::Command::new(
        chat_server::stack::require("redis-server", "redis-server").expect("redis-server"),
    )
    .args([
        "--port",
        &redis_port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .stdout(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("start redis");
    let base = chat_server::stack::free_port().expect("port");
    let mut peer = tokio::process::Command::new("node")
        .arg(repo().join("peers/node-seed/cluster.js"))
        .args(["--workers", "1", "--base-port", &base.to_string()])
        .args(["--redis", &format!("redis://127.0.0.1:{redis_port}")])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the node peer");
    let stdout = peer.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("node peer ready within 20 s")
            .expect("read node output")
            .expect("node peer exited early");
        if line.contains("ready") {
            break;
        }
    }
    let dir = scratch("node");
    let text = SMALL.replace(
        "local = { workers = 2, nginx_workers = 1 }",
        &format!("url = \"http://127.0.0.1:{base}\"\nclient_address = \"none\""),
    );
    let scenario = write_scenario(&dir, &text);
    let output = run_scenario(&scenario, &dir).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = results(&dir);
    assert!(u(&r["deliveries"]["delivered"]) > 0);
    assert_eq!(r["deliveries"]["delivered"], r["deliveries"]["expected"]);
    let _ = peer.kill().await;
    let _ = redis.kill().await;
}

#[tokio::test]
async fn a_bad_scenario_is_refused_with_file_line_and_key() {
    let dir = scratch("bad");
    let text = SMALL.replace(
        "deadline = \"2s\"",
        "deadline = \"2s\"\ntransports = { websokt = 1.0 }",
    );
    let scenario = write_scenario(&dir, &text);
    let output = run_scenario_loud(&scenario, &dir).await;
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scenario.toml:"), "{stderr}");
    assert!(stderr.contains("websokt"), "{stderr}");
    assert!(stderr.contains("websocket, polling, upgrade"), "{stderr}");
    assert!(!dir.join("results.json").exists());
}

#[tokio::test]
async fn an_unreachable_target_is_a_setup_error() {
    let dir = scratch("unreachable");
    let port = chat_server::stack::free_port().expect("port");
    let text = SMALL.replace(
        "local = { workers = 2, nginx_workers = 1 }",
        &format!("url = \"http://127.0.0.1:{port}\""),
    );
    let scenario = write_scenario(&dir, &text);
    let output = run_scenario_loud(&scenario, &dir).await;
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unreachable"));
}

/// `loadgen run SCENARIO --out DIR -q --admin ADMIN [extra]`.
async fn run_with_admin(scenario: &Path, dir: &Path, admin: &str, extra: &[&str]) -> Output {
    let (scenario, dir) = (scenario.to_str().unwrap(), dir.to_str().unwrap());
    let args = [
        &["run", scenario, "--out", dir, "-q", "--admin", admin],
        extra,
    ]
    .concat();
    loadgen(&args).await
}

/// The members each worker had at the quiet point, by index.
fn members_per_worker(r: &Value) -> Vec<u64> {
    let workers = r["workers"].as_array().expect("workers");
    workers.iter().map(|w| u(&w["members"])).collect()
}

#[tokio::test]
async fn a_url_target_gets_per_worker_counts_from_the_cluster_admin() {
    // The cluster as compose runs it: someone else's, reached by URL, with an admin address.
    let stack = stack(2, &[]).await;
    let dir = scratch("admin");
    let text = SMALL.replace(
        "local = { workers = 2, nginx_workers = 1 }",
        &format!("url = \"{}\"", stack.info().url),
    );
    let scenario = write_scenario(&dir, &text);
    let admin = format!("http://{}", stack.info().admin);

    let one = dir.join("one");
    let output = run_with_admin(&scenario, &one, &admin, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = results(&one);
    assert_eq!(r["target"], "url");
    // Both workers, found through the master, with the run's 20 members spread over them
    // (a loopback URL: members bind their own 127.0.K.1 for nginx ip_hash).
    let members = members_per_worker(&r);
    assert_eq!(members.len(), 2, "{}", r["workers"]);
    assert!(members.iter().all(|&m| m > 0), "{}", r["workers"]);
    assert_eq!(members.iter().sum::<u64>(), 20, "{}", r["workers"]);
    // Sampled before the run and at the quiet point: what members received is what the
    // workers say they delivered meanwhile.
    let workers = r["workers"].as_array().expect("workers");
    let delivered: u64 = workers.iter().map(|w| u(&w["delivered"])).sum();
    assert_eq!(u(&r["counters"]["received_at_quiet_point"]), delivered);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("worker 1: members"), "{stdout}");
    let report = std::fs::read_to_string(one.join("report.html")).expect("report.html");
    assert!(
        report.contains("share of the 20 members"),
        "the balance chart has the counts"
    );

    // Split over two processes: the parent samples the same workers for the merged results.
    let two = dir.join("two");
    let output = run_with_admin(&scenario, &two, &admin, &["--processes", "2"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = results(&two);
    assert_eq!(r["parts"], 2);
    assert_eq!(r["target"], "url");
    let members = members_per_worker(&r);
    assert_eq!(members.len(), 2, "{}", r["workers"]);
    assert_eq!(members.iter().sum::<u64>(), 20, "{}", r["workers"]);
    stack.stop().await;
}

#[tokio::test]
async fn an_admin_address_that_is_not_the_cluster_master_is_a_setup_error() {
    let stack = stack(1, &[]).await;
    let dir = scratch("bad-admin");
    let text = SMALL.replace(
        "local = { workers = 2, nginx_workers = 1 }",
        &format!("url = \"{}\"", stack.info().url),
    );
    let scenario = write_scenario(&dir, &text);
    // Nothing listening there; then something that answers, but not the master's /workers.
    let worker = format!("http://{}", stack.info().workers[0]);
    for (admin, says) in [
        ("http://127.0.0.1:1", "GET /workers failed"),
        (worker.as_str(), "GET /workers answered 404"),
    ] {
        let output = run_with_admin(&scenario, &dir.join("run"), admin, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("--admin {admin}")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("chat-server cluster --admin"), "{stderr}");
        assert!(!dir.join("run/results.json").exists());
    }
    // Not a URL at all: refused before anything runs, saying what is expected.
    let output = run_with_admin(&scenario, &dir.join("run"), "chat:9000", &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected http://HOST:PORT"), "{stderr}");
    stack.stop().await;

    // The local stack loadgen starts needs no admin address: refused before it starts.
    let local = write_scenario(&dir, SMALL);
    let output = run_with_admin(&local, &dir.join("local"), "http://127.0.0.1:1", &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("workers are known already"), "{stderr}");
    assert!(!dir.join("local/stack").exists(), "no stack was started");
}

#[tokio::test]
async fn a_rate_stepping_run_judges_every_step() {
    let dir = scratch("steps");
    let text = SMALL
        .replace("duration = \"5s\"", "duration = \"6s\"")
        .replace(
            "deadline = \"2s\"",
            "deadline = \"2s\"\nsteps = { start = 1.0, factor = 2.0, step = \"2s\", max_steps = 3 }",
        );
    // 20 members at most 8 messages/s each: nothing is lost at any step.
    let (output, r) = measured_run(&dir, &text, 0).await;
    let steps = r["steps"].as_array().expect("steps in results.json");
    assert_eq!(steps.len(), 3);
    let multipliers: Vec<f64> = steps
        .iter()
        .map(|s| s["multiplier"].as_f64().unwrap())
        .collect();
    assert_eq!(multipliers, [1.0, 2.0, 4.0]);
    // Twice the rate, about twice the sends: each step measures its own messages.
    let sends: Vec<u64> = steps.iter().map(|s| u(&s["sends"])).collect();
    assert!(sends[1] > sends[0] && sends[2] > sends[1], "{sends:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("highest step held"));
}

/// SMALL with three rate steps of 2 s.
fn stepped() -> String {
    SMALL.replace("duration = \"5s\"", "duration = \"6s\"").replace(
        "deadline = \"2s\"",
        "deadline = \"2s\"\nsteps = { start = 1.0, factor = 2.0, step = \"2s\", max_steps = 3 }",
    )
}

#[tokio::test]
async fn a_split_rate_stepping_run_judges_every_step_like_one_process() {
    let dir = scratch("split-steps");
    let scenario = write_scenario(&dir, &stepped());
    let (one, two) = (dir.join("one"), dir.join("two"));
    let (a, b) = one_and_two_processes(&scenario, &one, &two).await;
    // 20 members at most 8 messages/s each: nothing is lost, `lost == 0` holds, every step
    // holds.
    assert_eq!(a.status.code(), Some(0), "{}", explain(&a));
    assert_eq!(b.status.code(), Some(0), "{}", explain(&b));
    let (r1, r2) = (results(&one), results(&two));
    assert_eq!(r2["parts"], 2);
    let (s1, s2) = (
        r1["steps"].as_array().expect("steps of one process"),
        r2["steps"].as_array().expect("steps of the split run"),
    );
    assert_eq!(s1.len(), 3);
    assert_eq!(s2.len(), s1.len());
    for (x, y) in s1.iter().zip(s2) {
        // Sends are counted by intended send time, which the seed fixes: the same in both.
        for key in ["index", "multiplier", "from_s", "to_s", "sends"] {
            assert_eq!(x[key], y[key], "steps[].{key}");
        }
        assert!(u(&y["sends"]) > 0, "{y}");
        assert_eq!(x["held"], true, "{x}");
        assert_eq!(y["held"], true, "{y}");
        // Whole seconds: the step's losses are its seconds' losses.
        let (from, to) = (y["from_s"].as_f64().unwrap(), y["to_s"].as_f64().unwrap());
        let lost: u64 = r2["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| (from..to).contains(&(u(&s["t"]) as f64)))
            .map(|s| u(&s["lost"]))
            .sum();
        assert_eq!(u(&y["lost"]), lost, "{y}");
    }
    // Twice the rate, about twice the sends, in both.
    let sends: Vec<u64> = s2.iter().map(|s| u(&s["sends"])).collect();
    assert!(sends[1] > sends[0] && sends[2] > sends[1], "{sends:?}");
    // Every step held, so the highest held is the last.
    for r in [&r1, &r2] {
        assert_eq!(r["highest_step_held"], 2, "{}", r["steps"]);
    }
    assert_eq!(timeline_lost(&r2), u(&r2["deliveries"]["lost"]));
    assert!(String::from_utf8_lossy(&b.stdout).contains("highest step held"));

    // `loadgen figures` and the report read the split run's steps.
    let results_json = two.join("results.json");
    let figures = loadgen(&[
        "figures",
        results_json.to_str().unwrap(),
        "-m",
        "held_per_s",
        "--median",
    ])
    .await;
    assert_eq!(figures.status.code(), Some(0), "{}", explain(&figures));
    let held_per_s: f64 = String::from_utf8_lossy(&figures.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {}", explain(&figures)));
    assert_eq!(held_per_s, s2[2]["deliveries_per_s"].as_f64().unwrap());
    let report = std::fs::read_to_string(two.join("report.html")).expect("report.html");
    assert!(!report.contains("This run had no rate steps."));
    assert!(report.contains("The highest step held is step"));
}

/// A split run (2 processes) of SMALL, 8 s of sending, with one fault; its exit status and
/// results.json. Members cut off reconnect: a member that never came back would be owed every
/// later message, and the fault would never be recovered from.
async fn split_run_with_fault(name: &str, fault: &str) -> (PathBuf, Option<i32>, Value) {
    let dir = scratch(name);
    let text = SMALL
        .replace("duration = \"5s\"", "duration = \"8s\"")
        .replace("rate_per_member = 2.0", "rate_per_member = 5.0")
        .replace(
            "deadline = \"2s\"",
            "deadline = \"2s\"\nreconnect = \"backoff\"",
        )
        + "\n[[faults]]\nat = \"3s\"\n"
        + fault
        + "\n";
    let scenario = write_scenario(&dir, &text);
    let (s, out) = (scenario.to_str().unwrap(), dir.to_str().unwrap());
    let output = loadgen(&["run", s, "--out", out, "-q", "--processes", "2"]).await;
    assert!(dir.join("results.json").exists(), "{}", explain(&output));
    let r = results(&dir);
    assert_eq!(r["parts"], 2);
    // The merged record echoes the scenario as the parent ran it, faults included.
    assert_eq!(r["scenario"]["faults"].as_array().map(Vec::len), Some(1));
    (dir, output.status.code(), r)
}

#[tokio::test]
async fn a_split_run_reports_the_recovery_from_a_fault() {
    let pause = "pause_worker = { worker = 0, for = \"1s\" }";
    let kill = "kill_worker = 0";
    for (name, fault, action) in [
        ("split-pause", pause, "pause_worker 0"),
        ("split-kill", kill, "kill_worker 0"),
    ] {
        let (dir, status, r) = split_run_with_fault(name, fault).await;
        let lost = u(&r["deliveries"]["lost"]);
        if action.starts_with("pause") {
            // Delayed 1 s, not lost: the deadline is 2 s and no connection drops.
            assert_eq!(lost, 0, "{}", r["deliveries"]);
        } else {
            // The killed worker's members were owed what their rooms said while they were
            // reconnecting, and the server does not replay it.
            assert!(u(&r["deliveries"]["never"]) > 0, "{}", r["deliveries"]);
        }
        // The merged run is judged again by its one threshold, `lost == 0`, and exits so.
        assert_eq!(
            status,
            Some(if action.starts_with("pause") { 0 } else { 1 }),
            "{action}: lost {lost}"
        );
        assert_eq!(r["verdict"], if lost == 0 { "pass" } else { "fail" });
        let fault = &r["faults"][0];
        assert_eq!(
            fault["action"].as_str().map(|a| a.starts_with(action)),
            Some(true),
            "{fault}"
        );
        // Recovered: the fault was over about 4 s in, and the run sends until 10 s.
        let recovered = fault["recovered_after_ms"].as_u64();
        assert!(
            recovered.is_some(),
            "{action}: no recovery in a split run: {fault}"
        );
        if action.starts_with("pause") {
            assert!(
                recovered >= Some(1_000),
                "not before the pause ended: {fault}"
            );
        }
        assert!(u(&fault["lost_in_window"]) <= lost, "{fault} vs {lost}");
        assert_eq!(timeline_lost(&r), lost, "{action}");
        eprintln!("{action}: {fault}, lost in the run {lost}");
        let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
        assert!(
            !report.contains("not within the run"),
            "{action}: the report shows the recovery"
        );
    }
}
