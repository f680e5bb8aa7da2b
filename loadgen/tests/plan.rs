//! `loadgen plan` from a real run of the local stack (Redis, two workers, nginx): the plan's
//! measured figures are recomputed here from results.json by this test's own reading of the
//! timeline and the CPU samples, and every number of the plan must follow from them by the
//! documented formulas. Files lacking a figure the plan needs are refused with exit status 2.

mod common;

use std::path::Path;

use common::{explain, loadgen, scratch, write_scenario};
use serde_json::Value;

/// Sends for 10 s (about 9 whole CPU samples in the send window), enough deliveries for
/// Redis's CPU to show in one-second samples.
const SCENARIO: &str = r#"
name = "plan-source"
description = "100 members in 10 rooms, 2 messages/s each"
duration = "10s"
seed = 3

[target]
local = { workers = 2, nginx_workers = 1 }

[population]
rooms = 10
members = 100
ramp = 100

[traffic]
rate_per_member = 2.0
deadline = "2s"

[thresholds]
"lost" = "== 0"
"#;

fn require(program: &str) {
    assert!(
        chat_server::process::find_executable(program).is_some(),
        "{program} is not installed; this test runs the local stack: apt-get install -y \
         redis-server nginx (scripts/test installs them)"
    );
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1e-9)
}

#[track_caller]
fn assert_near(what: &str, got: f64, expected: f64) {
    assert!(
        near(got, expected),
        "{what}: plan {got}, from the file {expected}"
    );
}

/// The figures of results.json a plan is made from, read here without loadgen's code.
struct FileFigures {
    deliveries_per_s: f64,
    messages_per_s: f64,
    peak_members: f64,
    workers_per_room: f64,
    /// (cores in the send window, peak RSS KiB) of each role.
    workers: (f64, f64),
    nginx: (f64, f64),
    redis: (f64, f64),
    generator: (f64, f64),
}

fn file_figures(r: &Value) -> FileFigures {
    let timeline = r["timeline"].as_array().expect("timeline");
    let peak_members = timeline
        .iter()
        .map(|s| f(&s["members"]))
        .fold(0.0, f64::max);
    let sending: Vec<&Value> = timeline.iter().filter(|s| f(&s["planned"]) > 0.0).collect();
    // From the first second with sends and (99% of) the members at their peak.
    let steady = sending
        .iter()
        .find(|s| f(&s["members"]) >= 0.99 * peak_members)
        .expect("a steady second");
    let from = f(&steady["t"]);
    let to = f(&sending.last().expect("a send window")["t"]) + 1.0;
    let in_window = |field: &str| -> f64 {
        timeline
            .iter()
            .filter(|s| f(&s["t"]) >= from && f(&s["t"]) < to)
            .map(|s| f(&s[field]))
            .sum::<f64>()
            / (to - from)
    };
    let resources = &r["resources"];
    let origin = f(&resources["series_origin_s"]);
    let role = |matches: &dyn Fn(&str) -> bool| -> (f64, f64) {
        let mut cores = 0.0;
        let mut rss = 0.0;
        for c in resources["components"].as_array().expect("components") {
            if !matches(c["name"].as_str().expect("name")) {
                continue;
            }
            let (mut busy, mut span, mut previous) = (0.0, 0.0, 0.0);
            for s in c["series"].as_array().expect("series") {
                let (start, end) = (previous + origin, f(&s["t"]) + origin);
                previous = f(&s["t"]);
                if start >= from - 0.002 && end <= to + 0.002 {
                    busy += f(&s["cpu_percent"]) / 100.0 * (end - start);
                    span += end - start;
                }
            }
            cores += busy / span;
            rss += f(&c["peak_rss_kib"]);
        }
        (cores, rss)
    };
    let rooms = f(&r["scenario"]["population"]["rooms"]);
    let spanned: f64 = r["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| f(&w["rooms"]))
        .sum();
    FileFigures {
        deliveries_per_s: in_window("deliveries"),
        messages_per_s: in_window("sends"),
        peak_members: timeline
            .iter()
            .map(|s| f(&s["members"]))
            .fold(0.0, f64::max),
        workers_per_room: spanned / rooms,
        workers: role(&|n| n.starts_with("chat worker") || n == "master"),
        nginx: role(&|n| n == "nginx"),
        redis: role(&|n| n == "redis"),
        generator: role(&|n| n == "loadgen"),
    }
}

async fn run_plan(file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "plan",
        "--from",
        file.to_str().expect("path"),
        "--members",
        "200000",
        "--rooms",
        "4000",
        "--rate",
        "0.05",
    ];
    args.extend_from_slice(extra);
    loadgen(&args).await
}

/// `results.json` changed by `edit`, written beside it; the plan's output from it.
async fn plan_from_edited(dir: &Path, r: &Value, edit: impl Fn(&mut Value)) -> (i32, String) {
    let mut edited = r.clone();
    edit(&mut edited);
    let path = dir.join("edited.json");
    std::fs::write(&path, edited.to_string()).expect("write");
    let output = run_plan(&path, &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

#[tokio::test]
async fn a_plan_follows_from_a_real_runs_figures() {
    require("redis-server");
    require("nginx");
    let dir = scratch("plan");
    let scenario = write_scenario(&dir, SCENARIO);
    let run_dir = dir.join("run");
    let run = loadgen(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_eq!(run.status.code(), Some(0), "{}", explain(&run));
    let file = run_dir.join("results.json");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("results")).expect("JSON");
    assert_eq!(r["target"], "local_stack");

    let output = run_plan(&file, &["--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let p: Value = serde_json::from_slice(&output.stdout).expect("the plan is JSON");
    let x = file_figures(&r);

    // What was measured, and the costs per unit, from the file's figures.
    let m = &p["measured"];
    assert_near(
        "deliveries/s",
        f(&m["deliveries_per_s"]),
        x.deliveries_per_s,
    );
    assert_near("messages/s", f(&m["messages_per_s"]), x.messages_per_s);
    assert_near("peak members", f(&m["peak_members"]), x.peak_members);
    assert_near(
        "workers per room",
        f(&m["workers_per_room"]),
        x.workers_per_room,
    );
    let c = &p["costs"];
    let per_delivery = |cores: f64| cores / x.deliveries_per_s * 1e6;
    let per_member = |kib: f64| kib / x.peak_members;
    for (name, (cores, rss)) in [
        ("workers", x.workers),
        ("nginx", x.nginx),
        ("generator", x.generator),
    ] {
        assert!(cores > 0.0, "{name} used CPU in the send window");
        let us = f(&c[format!("{name}_us_per_delivery")]);
        assert_near(&format!("{name} µs/delivery"), us, per_delivery(cores));
        let kib = f(&c[format!("{name}_kib_per_member")]);
        assert_near(&format!("{name} KiB/member"), kib, per_member(rss));
    }
    let redis_us = x.redis.0 / (x.messages_per_s * x.workers_per_room) * 1e6;
    assert_near(
        "Redis µs/subscriber delivery",
        f(&c["redis_us_per_subscriber_delivery"]),
        redis_us,
    );

    // The plan: 200,000 members in rooms of 50, a message every 20 s each, headroom 1.5.
    let plan = &p["plan"];
    let (members, messages, deliveries) = (200_000.0, 10_000.0, 500_000.0);
    assert_eq!(f(&plan["load"]["messages_per_s"]), messages);
    assert_eq!(f(&plan["load"]["deliveries_per_s"]), deliveries);
    let gib = |kib_per_member: f64| members * kib_per_member * 1.5 / 1_048_576.0;
    let whole = |v: f64| (v - 1e-9).ceil();

    let w = &plan["workers"];
    let worker_cores = deliveries * per_delivery(x.workers.0) / 1e6 * 1.5;
    assert_near("worker cores", f(&w["cores"]), worker_cores);
    // 15,000 members per worker process: 14 for the open files.
    assert_eq!(f(&w["processes_by_open_files"]), 14.0);
    let workers = whole(worker_cores).max(14.0);
    assert_eq!(f(&w["processes"]), workers);
    assert_near(
        "worker memory",
        f(&w["memory_gib"]),
        gib(per_member(x.workers.1)),
    );

    let spread = workers * (1.0 - (1.0 - 1.0 / workers).powf(50.0));
    assert_near(
        "workers per room",
        f(&plan["fanout"]["workers_per_room"]),
        spread,
    );
    let redis_cores = messages * spread * redis_us / 1e6 * 1.5;
    assert_near("Redis cores", f(&plan["redis"]["cores"]), redis_cores);
    assert_eq!(f(&plan["redis"]["processes"]), whole(redis_cores).max(1.0));

    let nginx_cores = deliveries * per_delivery(x.nginx.0) / 1e6 * 1.5;
    assert_near("nginx cores", f(&plan["nginx"]["cores"]), nginx_cores);
    // 7,500 members per nginx worker process (2 open files each): 27.
    assert_eq!(f(&plan["nginx"]["processes"]), whole(nginx_cores).max(27.0));

    let g = &plan["generator"];
    let generator_cores = deliveries * per_delivery(x.generator.0) / 1e6 * 1.5;
    assert_near("generator cores", f(&g["cores"]), generator_cores);
    assert_eq!(f(&g["processes"]), 14.0);
    let generator_gib = gib(per_member(x.generator.1));
    assert_near("generator memory", f(&g["memory_gib"]), generator_gib);
    // Hosts of 16 cores and 64 GiB; 200,000 members over 28,232 ports: 8 by ports.
    let hosts = whole(generator_cores / 16.0)
        .max(whole(generator_gib / 64.0))
        .max(8.0);
    assert_eq!(f(&plan["generator_hosts"]["hosts"]), hosts);

    // The text says the same, with its sources.
    let text = plan_text(&file).await;
    let first = format!(
        "chat workers: {} cores, {} processes",
        whole(worker_cores),
        workers
    );
    assert!(text.contains(&first), "{first:?} in\n{text}");
    let shards = format!("Redis: {} shards", whole(redis_cores).max(1.0));
    assert!(text.contains(&shards), "{shards:?} in\n{text}");
    assert!(
        text.contains(&format!("load generator: {hosts} hosts")),
        "{text}"
    );
    for cited in [
        "(measured)",
        "[A3 A9 A11]",
        "A5  Redis's CPU",
        "A10 a generator host",
    ] {
        assert!(text.contains(cited), "{cited:?} in\n{text}");
    }

    // Files without the figures a plan needs: exit status 2, saying what is missing.
    let refusals: [(&str, Edit); 4] = [
        (
            "no CPU samples",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("resources");
            }),
        ),
        (
            "series_origin_s",
            Box::new(|v| {
                v["resources"]
                    .as_object_mut()
                    .unwrap()
                    .remove("series_origin_s");
            }),
        ),
        (
            "--sample nginx=PID",
            Box::new(|v| {
                v["target"] = "url".into();
                let components = v["resources"]["components"].as_array_mut().unwrap();
                components.retain(|c| c["name"] != "nginx");
            }),
        ),
        (
            "embedded worker",
            Box::new(|v| {
                v["target"] = "embedded".into();
            }),
        ),
    ];
    for (says, edit) in refusals {
        let (code, stderr) = plan_from_edited(&dir, &r, edit).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(says), "{says:?} in {stderr}");
    }
    let bad = loadgen(&["plan", "--from", file.to_str().unwrap(), "--members", "10"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", explain(&bad));
    let output = run_plan(&file, &["--headroom", "0.5"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--headroom"));
}

/// A change to results.json.
type Edit = Box<dyn Fn(&mut Value)>;

async fn plan_text(file: &Path) -> String {
    let output = run_plan(file, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    String::from_utf8(output.stdout).expect("UTF-8")
}
