//! Issue 16: loadgen drives a Socket.IO chat that is not ours through a protocol profile.
//!
//! The chat is `peers/profile-chat/server.js`, written for these tests with the official Node
//! `socket.io` package: other event names (`enter`, `post`, `posted`, `presence`), its own path
//! and namespace, an auth token checked at connect, acknowledgements, a room joined by event
//! (or at connect), and broadcasts to the whole room or to the others only, in several payload
//! shapes. Each run must measure it with nothing lost and every figure agreeing with the
//! server's own counts; a wrong profile must fail (a setup error, or a run that fails on its
//! unmatched events), never pass.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

mod common;
use common::{explain, repo, results, scratch, u, write_scenario};

const TOKEN: &str = "t0ken-for-tests";

/// The chat, started with `args`; stopped when dropped.
struct ProfileChat {
    port: u16,
    _process: tokio::process::Child,
}

impl ProfileChat {
    /// `peers/profile-chat/server.js` with the test token and `args`.
    async fn start(args: &[&str]) -> ProfileChat {
        let script = repo().join("peers/profile-chat/server.js");
        let args = [&["--token", TOKEN], args].concat();
        Self::start_script(&script, &args).await
    }

    /// `node SCRIPT ARGS`, with `require` finding peers/profile-chat's pinned modules, once it
    /// printed `profile-chat ready on PORT`.
    async fn start_script(script: &Path, args: &[&str]) -> ProfileChat {
        let node = std::process::Command::new("node").arg("--version").output();
        assert!(
            node.is_ok_and(|o| o.status.success()),
            "node is not installed: apt-get install -y nodejs npm"
        );
        let modules = repo().join("peers/profile-chat/node_modules");
        assert!(
            modules.join("socket.io").exists(),
            "peers/profile-chat/node_modules is missing: run `npm ci --prefix peers/profile-chat`"
        );
        let mut process = tokio::process::Command::new("node")
            .arg(script)
            .args(args)
            .env("NODE_PATH", modules)
            .env("CHAT_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node peers/profile-chat/server.js");
        let stdout = process.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("profile-chat ready within 20 s")
            .expect("read its output")
            .expect("profile-chat exited early");
        let port = line
            .strip_prefix("profile-chat ready on ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        ProfileChat {
            port,
            _process: process,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's own counts (`GET /stats`).
    async fn stats(&self) -> Value {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to /stats");
        tcp.write_all(b"GET /stats HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.expect("response");
        let body = response.split("\r\n\r\n").nth(1).expect("a body");
        serde_json::from_str(body).expect("JSON stats")
    }
}

/// `loadgen run SCENARIO --out DIR -q` with the chat's token in the environment, bounded.
async fn run(scenario: &Path, dir: &Path) -> Output {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ])
        .arg("-q")
        .env("PROFILE_CHAT_TOKEN", TOKEN)
        .env("CHAT_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(240), command)
        .await
        .expect("loadgen finished within 4 minutes")
        .expect("loadgen runs")
}

/// A scenario against `url` with `protocol` as its `[protocol]` tables.
fn scenario(url: &str, protocol: &str) -> String {
    format!(
        r#"name = "profile"
duration = "5s"
seed = 16

[target]
url = "{url}"
client_address = "none"

[population]
rooms = 3
members = 15
ramp = 15

[traffic]
rate_per_member = 2.0
message_size = [40, 120]
transports = {{ websocket = 0.5, polling = 0.25, upgrade = 0.25 }}
deadline = "2s"

[thresholds]
"lost" = "== 0"
"duplicated" = "== 0"
"connect.error_rate" = "== 0%"
"errors" = "== 0"

{protocol}"#
    )
}

/// The profile of the chat as the tests start it by default: join by event with an
/// acknowledgement, says acknowledged, broadcasts to the others only as
/// `posted {from, message: {body, at}}`.
const PROFILE: &str = r#"[protocol]
name = "profile-chat"
path = "/chat-io/"
namespace = "/chat"

[protocol.connect]
auth = { token = "{env:PROFILE_CHAT_TOKEN}" }

[protocol.join]
event = "enter"
payload = { room = "{room}", nick = "{member}" }
done = "ack"
ack_error = "error"

[protocol.say]
event = "post"
payload = { body = "{probe}" }
ack = true
ack_error = "error"

[protocol.receive]
event = "posted"
probe = "message.body"
echo = false
ignore = ["presence"]
"#;

/// Runs `text` against the chat in a fresh folder; returns the output and, when written,
/// results.json.
async fn measured(name: &str, text: &str) -> (Output, Option<Value>, PathBuf) {
    let dir = scratch(name);
    let path = write_scenario(&dir, text);
    let output = run(&path, &dir).await;
    let written = dir.join("results.json").exists().then(|| results(&dir));
    (output, written, dir)
}

/// Every owed delivery made, nothing extra, nothing the profile could not place.
fn assert_whole(r: &Value) {
    let d = &r["deliveries"];
    assert!(u(&d["expected"]) > 100, "{d}");
    assert_eq!(d["delivered"], d["expected"], "{d}");
    for zero in ["lost", "duplicated", "extra", "untracked"] {
        assert_eq!(u(&d[zero]), 0, "{zero}: {d}");
    }
    assert_eq!(
        r["protocol"]["unmatched"],
        serde_json::json!({}),
        "{}",
        r["protocol"]
    );
    assert_eq!(r["verdict"], "pass");
}

#[tokio::test]
async fn a_node_socket_io_chat_with_its_own_events_auth_and_acks_is_measured_exactly() {
    let chat = ProfileChat::start(&[]).await;
    let (output, r, dir) = measured("profile-chat", &scenario(&chat.url(), PROFILE)).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = r.expect("results.json");
    assert_whole(&r);
    let stats = chat.stats().await;
    // Every member joined through `enter`, and every message loadgen made reached the server.
    assert_eq!(u(&stats["refused"]), 0, "{stats}");
    assert_eq!(u(&stats["joins"]), u(&r["counters"]["joins"]), "{stats}");
    assert_eq!(u(&r["counters"]["joins"]), 15);
    let made = u(&r["sends"]["made"]);
    assert!(made > 0);
    assert_eq!(u(&stats["posts"]), made, "{stats}");
    // The app sends to the others only: each message is owed to the rest of its room (rooms
    // of 5), and every `posted` a member received was one of those deliveries.
    assert_eq!(u(&r["deliveries"]["expected"]), made * 4);
    assert_eq!(
        r["counters"]["received_messages_total"],
        r["deliveries"]["delivered"]
    );
    // Every say was acknowledged once; the round trips are the `ack` latency.
    let acks = &r["protocol"]["acks"];
    assert_eq!(u(&acks["requested"]), made, "{acks}");
    assert_eq!(u(&acks["received"]), made, "{acks}");
    for zero in ["refused", "missing", "open_at_leave"] {
        assert_eq!(u(&acks[zero]), 0, "{zero}: {acks}");
    }
    assert_eq!(u(&r["latency"]["ack"]["count"]), made);
    assert!(u(&r["latency"]["ack"]["p99_us"]) > 0);
    // The profile is named, echoed as written, and its secret is nowhere.
    assert_eq!(r["protocol"]["profile"], "profile-chat");
    assert_eq!(
        r["scenario"]["protocol"]["connect"]["auth"]["token"],
        "{env:PROFILE_CHAT_TOKEN}"
    );
    let written = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert!(
        !written.contains(TOKEN),
        "the token leaked into results.json"
    );
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(
        report.contains("profile-chat"),
        "the report names the profile"
    );
    assert!(!report.contains(TOKEN), "the token leaked into the report");
    assert!(report.contains("<section id=\"protocol\">") && report.contains("acks asked"));
    // -q leaves the summary: it names the profile and its acknowledgements.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("protocol profile-chat  unmatched: none  acks"),
        "{stdout}"
    );
}

#[tokio::test]
async fn other_shapes_of_the_same_chat_are_measured_through_their_profiles() {
    // The whole room, the sender included; the room given at connect (no join event); the
    // message as a plain string with the nick in front of it.
    let chat = ProfileChat::start(&["--echo", "all", "--shape", "text", "--join", "query"]).await;
    let profile = r#"[protocol]
name = "text-at-connect"
path = "/chat-io/"
namespace = "/chat"

[protocol.connect]
query = { room = "{room}", nick = "{member}" }
auth = { token = "{env:PROFILE_CHAT_TOKEN}" }

[protocol.say]
event = "post"
payload = { body = "{probe}" }

[protocol.receive]
event = "posted"
probe = "$"
probe_match = "contains"
echo = true
ignore = ["presence"]
"#;
    let (output, r, _) = measured("profile-text", &scenario(&chat.url(), profile)).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = r.expect("results.json");
    assert_whole(&r);
    let made = u(&r["sends"]["made"]);
    assert_eq!(u(&chat.stats().await["posts"]), made);
    assert_eq!(u(&r["deliveries"]["expected"]), made * 5, "the sender too");
    assert!(r["protocol"].get("acks").is_none(), "no acks asked");

    // The body as the second argument, and inside an array.
    for (shape, receive) in [
        ("args", "arg = 1\nprobe = \"$\""),
        ("array", "probe = \"items[0].body\""),
    ] {
        let chat = ProfileChat::start(&["--shape", shape]).await;
        let profile = PROFILE.replace("probe = \"message.body\"", receive);
        let (output, r, _) = measured(
            &format!("profile-{shape}"),
            &scenario(&chat.url(), &profile),
        )
        .await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shape}: {}",
            explain(&output)
        );
        let r = r.expect("results.json");
        assert_whole(&r);
        assert_eq!(
            u(&chat.stats().await["posts"]),
            u(&r["sends"]["made"]),
            "{shape}"
        );
    }
}

#[tokio::test]
async fn a_wrong_profile_fails_and_says_why() {
    let chat = ProfileChat::start(&[]).await;

    // No {probe} in the say: refused before anything starts, at its line.
    let text = scenario(
        &chat.url(),
        &PROFILE.replace("{ body = \"{probe}\" }", "{ body = \"hi\" }"),
    );
    let (output, r, _) = measured("profile-no-probe", &text).await;
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    assert!(r.is_none(), "nothing ran");
    let line = text
        .lines()
        .position(|l| l == "payload = { body = \"hi\" }")
        .unwrap()
        + 1;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "scenario.toml:{line}: protocol.say.payload: has no {{probe}}"
        )),
        "{stderr}"
    );
    assert_eq!(u(&chat.stats().await["connections"]), 0);

    // The probe looked for in the wrong field: every message arrives, none is readable.
    let wrong_path = PROFILE.replace("probe = \"message.body\"", "probe = \"message.text\"");
    let (output, r, _) = measured("profile-wrong-path", &scenario(&chat.url(), &wrong_path)).await;
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let r = r.expect("results.json");
    let unmatched = u(&r["protocol"]["unmatched"]["no_text_at_path"]);
    assert_eq!(unmatched, u(&r["counters"]["received_messages_total"]));
    assert!(unmatched > 0);
    assert_eq!(r["deliveries"]["lost"], r["deliveries"]["expected"]);
    assert_eq!(u(&r["errors"]["unmatched"]), unmatched);
    assert_failed(&r, "unmatched");

    // An event the profile does not name (`presence`, not ignored): the deliveries are whole,
    // and the run still fails on what it could not place.
    let unnamed = PROFILE.replace("ignore = [\"presence\"]\n", "");
    let (output, r, _) = measured("profile-unnamed", &scenario(&chat.url(), &unnamed)).await;
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let r = r.expect("results.json");
    assert_eq!(u(&r["deliveries"]["lost"]), 0);
    assert!(
        u(&r["protocol"]["unmatched"]["unexpected_event"]) > 0,
        "{}",
        r["protocol"]
    );
    assert_failed(&r, "unmatched");

    // Acknowledgements read where the app says yes as if it said no: every message counts as
    // refused, taken back from the sends made, and what the members received anyway is extra.
    let refusing = PROFILE.replace(
        "ack = true\nack_error = \"error\"",
        "ack = true\nack_error = \"ok\"",
    );
    assert_ne!(refusing, PROFILE);
    let (output, r, _) = measured("profile-refused", &scenario(&chat.url(), &refusing)).await;
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let r = r.expect("results.json");
    let acks = &r["protocol"]["acks"];
    assert!(u(&acks["requested"]) > 0, "{acks}");
    assert_eq!(acks["refused"], acks["requested"], "{acks}");
    assert_eq!(acks["received"], acks["requested"], "{acks}");
    assert_eq!(u(&r["sends"]["made"]), 0);
    assert_eq!(u(&r["errors"]["send_refused"]), u(&acks["refused"]));
    assert_failed(&r, "errors");

    // The wrong token: the app refuses every connect.
    let wrong_token = PROFILE.replace("{env:PROFILE_CHAT_TOKEN}", "wrong");
    let before = u(&chat.stats().await["refused"]);
    let (output, r, _) = measured("profile-token", &scenario(&chat.url(), &wrong_token)).await;
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let r = r.expect("results.json");
    assert_eq!(u(&r["counters"]["connects"]), 0);
    assert!(u(&r["counters"]["connect_errors"]) >= 15);
    assert_eq!(
        u(&chat.stats().await["refused"]) - before,
        u(&r["counters"]["connect_errors"])
    );
    assert_failed(&r, "connect.error_rate");
}

/// The README's worked example, as a new user would take it: its server snippet on the
/// official `socket.io`, and its profile in a copy of `scenarios/smoke.toml` pointed at it.
#[tokio::test]
async fn the_readme_worked_profile_measures_the_readme_chat() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("### Point roomstorm at your own chat")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("README.md has the section");
    let block = |language: &str| {
        section
            .split(&format!("```{language}\n"))
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_else(|| panic!("no {language} block in the section"))
            .to_owned()
    };
    let dir = scratch("profile-readme");
    let server = dir.join("readme-chat.js");
    std::fs::write(
        &server,
        format!(
            "const http = require('http');\nconst {{ Server }} = require('socket.io');\n\
             const httpServer = http.createServer();\nconst io = new Server(httpServer);\n{}\n\
             httpServer.listen(0, '127.0.0.1', () => \
             console.log('profile-chat ready on ' + httpServer.address().port));\n",
            block("js")
        ),
    )
    .expect("write the server");
    let chat = ProfileChat::start_script(&server, &[]).await;
    let smoke = std::fs::read_to_string(repo().join("scenarios/smoke.toml")).expect("smoke");
    let text = smoke.replace(
        "local = { workers = 2, nginx_workers = 2 }",
        &format!("url = \"{}\"\nclient_address = \"none\"", chat.url()),
    ) + "\n"
        + &block("toml");
    let path = write_scenario(&dir, &text);
    let output = run(&path, &dir).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = results(&dir);
    assert_whole(&r);
    assert_eq!(r["protocol"]["profile"], "my-chat");
    let made = u(&r["sends"]["made"]);
    assert_eq!(
        u(&r["deliveries"]["expected"]),
        made * 9,
        "rooms of 10, to the others"
    );
    assert_eq!(u(&r["protocol"]["acks"]["received"]), made);
}

/// Issue 16 item 2: rooms of talkers, lurkers, bursty members and typists. Each group's own
/// figures are in results.json, the report and the summary, and they add up to the run's;
/// lurkers send nothing and still get everything; typing signals reach the app, counted, never
/// probed; nothing is lost.
#[tokio::test]
async fn member_groups_each_get_their_own_figures() {
    let chat = ProfileChat::start(&[]).await;
    let groups = r#"
[[population.groups]]
name = "talkers"
weight = 1
rate = 3.0

[[population.groups]]
name = "lurkers"
weight = 3
rate = 0

[[population.groups]]
name = "bursty"
weight = 1
rate = 4.0
burst = { on = "1s", off = "2s" }

[[population.groups]]
name = "typists"
weight = 1
rate = 0.5
signals = [{ event = "typing", payload = { room = "{room}" }, rate = 2.0 }]
"#;
    let text = scenario(&chat.url(), PROFILE)
        .replace("members = 15\nramp = 15", "members = 24\nramp = 24")
        .replace(
            "ignore = [\"presence\"]",
            "ignore = [\"presence\", \"typing\"]",
        )
        .replace("\n[traffic]", &format!("{groups}\n[traffic]"));
    let (output, r, dir) = measured("profile-groups", &text).await;
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let r = r.expect("results.json");
    assert_whole(&r);
    let groups = r["groups"].as_array().expect("groups");
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["talkers", "lurkers", "bursty", "typists"]);
    let members: Vec<u64> = groups.iter().map(|g| u(&g["members"])).collect();
    assert_eq!(members, [4, 12, 4, 4]);
    let sum = |f: &dyn Fn(&Value) -> u64| groups.iter().map(f).sum::<u64>();
    // The groups' figures add up to the run's.
    assert_eq!(sum(&|g| u(&g["sends"]["made"])), u(&r["sends"]["made"]));
    assert_eq!(
        sum(&|g| u(&g["sends"]["planned"])),
        u(&r["sends"]["planned"])
    );
    for field in ["expected", "delivered", "lost", "duplicated", "extra"] {
        assert_eq!(
            sum(&|g| u(&g["deliveries"][field])),
            u(&r["deliveries"][field]),
            "{field}"
        );
    }
    let (talkers, lurkers, bursty, typists) = (&groups[0], &groups[1], &groups[2], &groups[3]);
    // Lurkers never send, and as readers get everything, on time.
    assert_eq!(u(&lurkers["sends"]["planned"]), 0);
    assert_eq!(u(&lurkers["sends"]["made"]), 0);
    for g in groups {
        let d = &g["deliveries"];
        assert!(u(&d["expected"]) > 0, "{g}");
        assert_eq!(d["delivered"], d["expected"], "{g}");
        // Each first receipt of its members is in its own latency histogram.
        assert_eq!(u(&g["fanout"]["count"]), u(&d["delivered"]), "{g}");
    }
    // Bursty members send at 4/s a third of the time: fewer than talkers at 3/s.
    let per_member = |g: &Value| u(&g["sends"]["planned"]) as f64 / u(&g["members"]) as f64;
    assert!(
        per_member(bursty) > 0.0 && per_member(bursty) < per_member(talkers),
        "{bursty}"
    );
    // Typing signals: counted for their group, received by the app, never probed.
    let typed = u(&typists["signals"]);
    assert!(typed > 0, "{typists}");
    assert_eq!(u(&chat.stats().await["typing"]), typed);
    assert_eq!(sum(&|g| u(&g["signals"])), typed, "only typists type");
    assert_eq!(u(&r["sends"]["made"]), u(&chat.stats().await["posts"]));
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(report.contains("<section id=\"groups\">") && report.contains("lurkers"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("group lurkers: members 12  sent 0 of 0"),
        "{stdout}"
    );
}

/// The run's rule on `metric` failed.
fn assert_failed(r: &Value, metric: &str) {
    assert_eq!(r["verdict"], "fail");
    let rules = r["thresholds"].as_array().expect("thresholds");
    let rule = rules
        .iter()
        .find(|t| {
            t["rule"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{metric} ")))
        })
        .unwrap_or_else(|| panic!("no rule on {metric}: {rules:?}"));
    assert_eq!(rule["passed"], false, "{rule}");
}
