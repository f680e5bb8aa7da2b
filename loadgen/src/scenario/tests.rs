//! Whole-file tests: the shipped scenarios load, every kind of refusal names file, line and
//! key, overrides are re-validated, and plans are reproducible and shaped as asked.

use std::path::PathBuf;
use std::time::Duration;

use roomstorm_client::Transport;

use super::*;

/// A valid scenario; tests edit single lines of it. Line numbers matter to the assertions.
const BASE: &str = r#"name = "t"
duration = "10s"
seed = 1

[target]
local = { workers = 2 }

[population]
rooms = 2
members = 10
ramp = 10

[traffic]
rate_per_member = 1.0
transports = { websocket = 0.8, polling = 0.1, upgrade = 0.1 }

[thresholds]
"fanout.p99" = "< 50ms"
"#;

fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE has no `{from}`");
    BASE.replacen(from, to, 1)
}

/// The refusal of `text`, as displayed.
fn refusal(text: &str) -> String {
    Scenario::from_str(text, "t.toml")
        .expect_err("should be refused")
        .to_string()
}

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn shipped() -> Vec<Scenario> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| Scenario::load(path).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn base_is_valid() {
    let scenario = Scenario::from_str(BASE, "t.toml").unwrap();
    assert_eq!(scenario.duration, Duration::from_secs(10));
    assert_eq!(scenario.target.client_address, ClientAddress::Spread);
    assert_eq!(scenario.traffic.deadline, Duration::from_secs(5));
    assert_eq!(scenario.file(), "t.toml");
}

#[test]
fn every_shipped_scenario_loads() {
    let names: Vec<String> = shipped().into_iter().map(|s| s.name).collect();
    for expected in [
        "smoke",
        "rooms",
        "big-room",
        "polling-mix",
        "failover",
        "redis-restart",
        "ramp",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing scenarios/{expected}.toml"
        );
    }
}

#[test]
fn file_names_match_scenario_names() {
    for scenario in shipped() {
        assert!(
            scenario
                .file()
                .ends_with(&format!("/{}.toml", scenario.name)),
            "{}",
            scenario.file()
        );
    }
}

#[test]
fn the_readme_example_is_valid() {
    let readme = std::fs::read_to_string(scenarios_dir().join("README.md")).unwrap();
    let example = readme
        .split("## Full example")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a full example");
    let scenario = Scenario::from_str(example, "README.md").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.faults.len(), 3);
    assert_eq!(scenario.thresholds.len(), 7);
}

/// The keys the parser accepts in the table where `probe` has `KEY`: read from the refusal of
/// an unknown key there (serde lists the struct's fields), so the list is the parser's own
/// and a key added to it must be documented.
fn allowed_keys(probe: &str) -> Vec<String> {
    let message = refusal(&probe.replace("KEY", "zzz_unknown = 1"));
    let (_, list) = message
        .split_once("zzz_unknown: unknown key; allowed: ")
        .unwrap_or_else(|| panic!("{probe:?}: not refused as an unknown key: {message}"));
    let list = list.lines().next().unwrap_or_default();
    list.split(", ").map(str::to_owned).collect()
}

#[test]
fn the_readme_documents_every_key() {
    let readme = std::fs::read_to_string(scenarios_dir().join("README.md")).unwrap();
    // A row of its own: `| `key` |`, tables as `[key]` or `[[key]]`.
    let row_of = |key: &str| {
        [
            format!("`{key}`"),
            format!("`[{key}]`"),
            format!("`[[{key}]]`"),
        ]
        .iter()
        .find_map(|cell| {
            let start = format!("| {cell} |");
            readme.lines().find(|line| line.starts_with(&start))
        })
        .unwrap_or_else(|| panic!("README.md has no row for `{key}`"))
    };
    let mut documented = 0;
    // Each table of the file; its keys have rows, named with the prefix.
    let tables = [
        ("KEY\n", ""),
        ("[target]\nKEY\n", ""),
        ("[target]\nlocal = { KEY }\n", "local."),
        ("[population]\nKEY\n", ""),
        ("[traffic]\nKEY\n", ""),
        ("[traffic]\nsteps = { KEY }\n", "steps."),
        ("[[faults]]\nKEY\n", ""),
        ("[[population.groups]]\nKEY\n", "groups."),
        ("[protocol]\nKEY\n", ""),
        ("[protocol.connect]\nKEY\n", "connect."),
        ("[protocol.join]\nKEY\n", "join."),
        ("[protocol.say]\nKEY\n", "say."),
        ("[protocol.receive]\nKEY\n", "receive."),
    ];
    for (probe, prefix) in tables {
        for key in allowed_keys(probe) {
            row_of(&format!("{prefix}{key}"));
            documented += 1;
        }
    }
    // Small inline tables: their keys are named in their parent's row.
    let inline = [
        ("[traffic]\ntransports = { KEY }\n", "transports"),
        ("[population]\nphases = [{ KEY }]\n", "phases"),
        ("[[faults]]\npause_worker = { KEY }\n", "pause_worker"),
        ("[[population.groups]]\nburst = { KEY }\n", "groups.burst"),
        (
            "[[population.groups]]\nsignals = [{ KEY }]\n",
            "groups.signals",
        ),
    ];
    for (probe, parent) in inline {
        let row = row_of(parent);
        for key in allowed_keys(probe) {
            assert!(
                row.contains(&format!("`{key}`")) || row.contains(&format!("{key} =")),
                "README.md's `{parent}` row does not name `{key}`: {row}"
            );
            documented += 1;
        }
    }
    // Every table above was found: the file has at least the keys of this writing.
    assert!(documented >= 44, "{documented}");
    for metric in Metric::ALL {
        assert!(
            readme.contains(&format!("`{metric}`")),
            "README.md does not list {metric}"
        );
    }
}

#[test]
fn smoke_is_short() {
    let smoke = Scenario::load(&scenarios_dir().join("smoke.toml")).unwrap();
    assert!(
        smoke.run_length() < Duration::from_secs(20),
        "{:?}",
        smoke.run_length()
    );
    assert_eq!(smoke.goose_test_plan(40), "40,1;40,15;0,1");
}

#[test]
fn every_goose_test_plan_parses_in_goose() {
    for scenario in shipped() {
        for members in [1, scenario.population.members as usize] {
            let text = scenario.goose_test_plan(members);
            let parsed: goose::test_plan::TestPlan = text
                .parse()
                .unwrap_or_else(|_| panic!("{}: goose refused {text}", scenario.name));
            // Goose users, each driving `members_per_user` members (the last one fewer).
            let per_user = scenario.population.members_per_user as usize;
            assert_eq!(parsed.total_users(), members.div_ceil(per_user), "{text}");
            assert_eq!(
                parsed.steps.last().map(|s| s.0),
                Some(0),
                "{text} must end with 0 users"
            );
        }
    }
}

#[test]
fn scenarios_serialize_back_into_the_same_scenario() {
    for scenario in shipped() {
        let text = toml::to_string(&scenario).unwrap();
        let again =
            Scenario::from_str(&text, "echo.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let json = |s: &Scenario| serde_json::to_value(s).unwrap();
        assert_eq!(json(&scenario), json(&again), "{text}");
    }
}

#[test]
fn results_echo_reads_like_the_file() {
    let json = serde_json::to_value(Scenario::from_str(BASE, "t.toml").unwrap()).unwrap();
    assert_eq!(json["duration"], "10s");
    assert_eq!(json["target"]["local"]["workers"], 2);
    assert_eq!(json["target"]["client_address"], "spread");
    assert_eq!(json["population"]["room_size"], "fixed");
    assert_eq!(json["population"]["ramp"], 10.0);
    assert_eq!(json["traffic"]["rate_per_member"], 1.0);
    assert_eq!(json["traffic"]["deadline"], "5s");
    assert_eq!(json["thresholds"]["fanout.p99"], "< 50ms");
}

// ---- refusals: file, line, key ----

#[test]
fn unknown_top_level_key() {
    let text = edited("seed = 1\n", "seed = 1\ncolour = \"red\"\n");
    let message = refusal(&text);
    assert!(
        message.starts_with("t.toml:4: colour: unknown key; allowed: name, description"),
        "{message}"
    );
}

#[test]
fn unknown_nested_key_lists_allowed_keys() {
    let text = edited("websocket = 0.8", "websokt = 0.8");
    assert_eq!(
        refusal(&text),
        "t.toml:15: traffic.transports.websokt: unknown key; allowed: websocket, polling, upgrade"
    );
}

#[test]
fn unknown_key_in_a_table_of_its_own() {
    let text = edited("ramp = 10\n", "ramp = 10\nroom_sise = \"fixed\"\n");
    let message = refusal(&text);
    assert!(
        message.starts_with(
            "t.toml:12: population.room_sise: unknown key; allowed: rooms, members, room_size"
        ),
        "{message}"
    );
}

#[test]
fn wrong_type() {
    let message = refusal(&edited("members = 10", "members = \"ten\""));
    assert!(message.starts_with("t.toml:10: population.members: wrong type: found string \"ten\", expected a whole number"), "{message}");
    let message = refusal(&edited("local = { workers = 2 }", "local = 2"));
    assert!(
        message.starts_with("t.toml:6: target.local: wrong type"),
        "{message}"
    );
}

#[test]
fn unknown_value_lists_allowed_values() {
    let text = edited(
        "rate_per_member = 1.0\n",
        "rate_per_member = 1.0\nreconnect = \"sometimes\"\n",
    );
    assert_eq!(
        refusal(&text),
        "t.toml:15: traffic.reconnect: unknown value `sometimes`; allowed: none, backoff"
    );
    let text = edited("ramp = 10\n", "ramp = 10\nroom_size = \"zipfian\"\n");
    assert_eq!(
        refusal(&text),
        "t.toml:12: population.room_size: unknown value `zipfian`; allowed: fixed, uniform, zipf"
    );
}

#[test]
fn missing_required_key_points_at_its_table() {
    let message = refusal(&edited("members = 10\n", ""));
    assert_eq!(
        message,
        "t.toml:8: population.members: missing required key"
    );
    let message = refusal(&edited(
        "transports",
        "steps = { step = \"5s\" }\ntransports",
    ));
    assert_eq!(
        message,
        "t.toml:15: traffic.steps.max_steps: missing required key"
    );
    let message = refusal(&format!("{BASE}\n[[faults]]\nkill_worker = 1\n"));
    assert_eq!(message, "t.toml:20: faults[0].at: missing required key");
    // A key missing from the top level has no line to point at.
    assert_eq!(
        refusal(&edited("name = \"t\"\n", "")),
        "t.toml: name: missing required key"
    );
}

#[test]
fn zero_members() {
    let message = refusal(&edited("members = 10", "members = 0"));
    assert_eq!(message, "t.toml:10: population.members: must be at least 1");
}

#[test]
fn members_per_user_defaults_to_one_and_refuses_zero() {
    let scenario = Scenario::from_str(BASE, "t.toml").unwrap();
    assert_eq!(scenario.population.members_per_user, 1);
    assert_eq!(scenario.goose_test_plan(10), "10,1;10,10;0,1");
    let text = edited("ramp = 10\n", "ramp = 10\nmembers_per_user = 4\n");
    let scenario = Scenario::from_str(&text, "t.toml").unwrap();
    assert_eq!(scenario.population.members_per_user, 4);
    assert_eq!(scenario.goose_test_plan(10), "3,1;3,10;0,1");
    // The echo names it, and reads back as the same scenario.
    let json = serde_json::to_value(&scenario).unwrap();
    assert_eq!(json["population"]["members_per_user"], 4);
    let message = refusal(&edited("ramp = 10\n", "ramp = 10\nmembers_per_user = 0\n"));
    assert_eq!(
        message,
        "t.toml:12: population.members_per_user: must be at least 1 (the members one goose user drives)"
    );
    let message = refusal(&edited("ramp = 10\n", "ramp = 10\nmembers_per_user = -2\n"));
    assert!(
        message.starts_with("t.toml:12: population.members_per_user: "),
        "{message}"
    );
}

#[test]
fn more_rooms_than_members() {
    let message = refusal(&edited("rooms = 2", "rooms = 11"));
    assert!(
        message.starts_with("t.toml:9: population.rooms: 11 rooms for 10 members"),
        "{message}"
    );
}

#[test]
fn shares_must_add_up_to_one() {
    let message = refusal(&edited("websocket = 0.8", "websocket = 0.7"));
    assert!(
        message.starts_with("t.toml:15: traffic.transports: shares add up to 0.9"),
        "{message}"
    );
}

#[test]
fn url_and_local_together() {
    let text = edited("[target]\n", "[target]\nurl = \"http://127.0.0.1:8080\"\n");
    let message = refusal(&text);
    assert!(
        message.starts_with("t.toml:7: target.local: set either target.url"),
        "{message}"
    );
}

#[test]
fn faults_need_the_local_stack() {
    let text = edited("local = { workers = 2 }", "url = \"http://127.0.0.1:8080\"")
        + "\n[[faults]]\nat = \"5s\"\nkill_worker = 1\n";
    let message = refusal(&text);
    assert!(
        message.starts_with("t.toml:20: faults[0]: faults need target.local"),
        "{message}"
    );
}

#[test]
fn fault_details() {
    let with_fault = |fault: &str| format!("{BASE}\n[[faults]]\nat = \"5s\"\n{fault}\n");
    let message = refusal(&with_fault("kill_worker = 2"));
    assert!(
        message.starts_with("t.toml:22: faults[0].kill_worker: worker 2 does not exist"),
        "{message}"
    );
    let message = refusal(&with_fault("kill_worker = 1\nstop_redis = \"3s\""));
    assert!(
        message.starts_with("t.toml:20: faults[0]: set exactly one of"),
        "{message}"
    );
    let message = refusal(&format!(
        "{BASE}\n[[faults]]\nat = \"1m\"\nstop_redis = \"3s\"\n"
    ));
    assert!(
        message.starts_with("t.toml:21: faults[0].at: 1m is not before the end of the run (12s)"),
        "{message}"
    );
    let late = format!(
        "{BASE}\n[[faults]]\nat = \"1s\"\nkill_worker = 0\n\n[[faults]]\nat = \"2s\"\npause_worker = {{ worker = 0, for = \"0s\" }}\n"
    );
    let message = refusal(&late);
    assert!(
        message.starts_with("t.toml:26: faults[1].pause_worker.for: must be longer than 0s"),
        "{message}"
    );
}

#[test]
fn redis_cluster_faults_need_a_redis_cluster_and_name_its_masters() {
    let cluster = edited(
        "local = { workers = 2 }",
        "local = { workers = 2, redis_cluster = 3 }",
    );
    let with_fault =
        |base: &str, fault: &str| format!("{base}\n[[faults]]\nat = \"5s\"\n{fault}\n");
    let scenario = Scenario::from_str(
        &with_fault(
            &cluster,
            "migrate_slots = { from = 0, to = 2, slots = 500 }",
        ),
        "t.toml",
    )
    .expect("valid");
    let Endpoint::Local(local) = scenario.target.endpoint else {
        panic!("a local target")
    };
    assert_eq!(local.redis_cluster, 3);
    assert_eq!(
        scenario.faults[0].action,
        FaultAction::MigrateSlots {
            from: 0,
            to: 2,
            slots: 500
        }
    );
    let killed = Scenario::from_str(&with_fault(&cluster, "kill_redis_master = 2"), "t.toml")
        .expect("valid");
    assert_eq!(killed.faults[0].action, FaultAction::KillRedisMaster(2));
    for (base, fault, expected) in [
        (
            BASE,
            "kill_redis_master = 0",
            "t.toml:22: faults[0].kill_redis_master: needs a Redis Cluster: set target.local.redis_cluster",
        ),
        (
            &cluster,
            "kill_redis_master = 3",
            "t.toml:22: faults[0].kill_redis_master: master 3 does not exist; the Redis Cluster has masters 0 to 2",
        ),
        (
            &cluster,
            "migrate_slots = { from = 1, to = 1, slots = 5 }",
            "t.toml:22: faults[0].migrate_slots.to: must be another master than from",
        ),
        (
            &cluster,
            "migrate_slots = { from = 0, to = 1, slots = 6000 }",
            "t.toml:22: faults[0].migrate_slots.slots: 6000: between 1 and 5461",
        ),
        (
            &cluster,
            "stop_redis = \"3s\"",
            "t.toml:22: faults[0].stop_redis: the local stack runs a Redis Cluster",
        ),
        (
            &cluster,
            "kill_redis_master = 0\nkill_worker = 0",
            "t.toml:20: faults[0]: set exactly one of kill_worker, stop_redis, pause_worker, kill_redis_master, migrate_slots, partition",
        ),
    ] {
        let message = refusal(&with_fault(base, fault));
        assert!(message.starts_with(expected), "{fault}: {message}");
    }
    let message = refusal(&edited(
        "local = { workers = 2 }",
        "local = { workers = 2, redis_cluster = 2 }",
    ));
    assert!(
        message.starts_with(
            "t.toml:6: target.local.redis_cluster: 2 masters: a Redis Cluster here has 3 to 16"
        ),
        "{message}"
    );
}

#[test]
fn bad_duration_string() {
    let message = refusal(&edited("duration = \"10s\"", "duration = \"10 secs\""));
    assert!(
        message.starts_with("t.toml:2: duration: `10 secs` is not a duration like"),
        "{message}"
    );
    let message = refusal(&edited("duration = \"10s\"", "duration = 10"));
    assert!(
        message
            .starts_with("t.toml:2: duration: wrong type: found integer `10`, expected a duration"),
        "{message}"
    );
    let message = refusal(&edited("duration = \"10s\"", "duration = \"1.5s\""));
    assert!(
        message.contains("duration: 1.5s is not whole seconds"),
        "{message}"
    );
}

#[test]
fn unknown_threshold_metric_lists_the_metrics() {
    let message = refusal(&edited("\"fanout.p99\"", "\"fanout.p98\""));
    assert_eq!(
        message,
        format!(
            "t.toml:18: thresholds.\"fanout.p98\": unknown metric; allowed: {}",
            Metric::names()
        )
    );
    assert!(
        message
            .contains("fanout.p50, fanout.p90, fanout.p99, fanout.p999, fanout.max, connect.p99")
    );
}

#[test]
fn bad_threshold_value() {
    let message = refusal(&edited("\"< 50ms\"", "\"< 50\""));
    assert!(
        message.starts_with("t.toml:18: thresholds.\"fanout.p99\": `50` is not a duration"),
        "{message}"
    );
    let message = refusal(&edited("\"< 50ms\"", "50"));
    assert!(
        message.starts_with("t.toml:18: thresholds.\"fanout.p99\": wrong type"),
        "{message}"
    );
}

#[test]
fn other_impossible_values() {
    let cases = [
        (
            edited("ramp = 10", "ramp = 0"),
            "t.toml:11: population.ramp: 0 members per second",
        ),
        (
            edited("rate_per_member = 1.0", "rate_per_member = -1.0"),
            "t.toml:14: traffic.rate_per_member: -1 is out of range",
        ),
        (
            edited("transports", "jitter = 2\ntransports"),
            "t.toml:15: traffic.jitter: 2 is out of range; allowed: 0 to 1",
        ),
        (
            edited("transports", "message_size = [100, 10]\ntransports"),
            "t.toml:15: traffic.message_size: [100, 10] must have",
        ),
        (
            edited("transports", "message_size = 5000\ntransports"),
            "t.toml:15: traffic.message_size: [5000, 5000]",
        ),
        (
            edited("local = { workers = 2 }", "url = \"https://x.example\""),
            "t.toml:6: target.url: `https://x.example` must start with http:// or ws:// (roomstorm's client has no TLS)",
        ),
        (
            edited(
                "local = { workers = 2 }",
                "url = \"http://10.1.2.3:80\"\nclient_address = \"spread\"",
            ),
            "t.toml:7: target.client_address: spread binds loopback",
        ),
        (
            edited("ramp = 10", "ramp = 10\nroom_size = { uniform = [5, 2] }"),
            "t.toml:12: population.room_size.uniform: [5, 2] must have 1 <= min <= max",
        ),
        (
            edited(
                "ramp = 10",
                "ramp = 10\nroom_size = { uniform = [1, 2, 3] }",
            ),
            "t.toml:12: population.room_size.uniform: expected [min, max]: exactly two numbers",
        ),
        (
            edited("ramp = 10", "ramp = 10\nroom_size = { zipf = 0 }"),
            "t.toml:12: population.room_size.zipf: 0 is out of range",
        ),
        (
            edited("name = \"t\"", "name = \"has space\""),
            "t.toml:1: name: must be 1 or more of",
        ),
        (
            edited(
                "transports",
                "steps = { step = \"5s\", max_steps = 3 }\ntransports",
            ),
            "t.toml:15: traffic.steps.max_steps: 3 steps of 5s need a steady phase of 15s, but duration is 10s",
        ),
        (
            edited(
                "transports",
                "steps = { step = \"1500ms\", max_steps = 2 }\ntransports",
            ),
            "t.toml:15: traffic.steps.step: 1.5s is not whole seconds",
        ),
        (
            edited(
                "rate_per_member = 1.0",
                "rate_per_member = 1.0\nrate_per_room = 1.0",
            ),
            "t.toml:15: traffic.rate_per_room: set either",
        ),
    ];
    for (text, expected) in cases {
        let message = refusal(&text);
        assert!(
            message.starts_with(expected),
            "expected `{expected}`, got `{message}`"
        );
    }
}

#[test]
fn phases_instead_of_ramp() {
    let text = edited("duration = \"10s\"\n", "").replace(
        "ramp = 10",
        "phases = [ { ramp = \"5s\", to = 10 }, { hold = \"30s\" }, { ramp = \"5s\", to = 0 } ]",
    );
    let scenario = Scenario::from_str(&text, "t.toml").unwrap();
    assert_eq!(scenario.duration, Duration::from_secs(30));
    assert_eq!(scenario.goose_test_plan(10), "10,5;10,30;0,5");
    assert_eq!(scenario.ramp_up(), Duration::from_secs(5));
    assert_eq!(scenario.run_length(), Duration::from_secs(40));

    let message = refusal(&text.replace("to = 10", "to = 8"));
    assert!(
        message.starts_with("t.toml:10: population.phases: the phases peak at 8 members"),
        "{message}"
    );
    let message = refusal(&text.replace("{ hold = \"30s\" }", "{ hold = \"30s\", to = 3 }"));
    assert!(
        message.starts_with("t.toml:10: population.phases[1]: a phase is either"),
        "{message}"
    );
    let message = refusal(&format!("duration = \"10s\"\n{text}"));
    assert!(
        message.starts_with("t.toml:1: duration: not allowed with population.phases"),
        "{message}"
    );
}

#[test]
fn toml_syntax_error() {
    let message = refusal(&edited("rooms = 2", "rooms = = 2"));
    assert!(message.starts_with("t.toml:9: invalid TOML"), "{message}");
}

#[test]
fn unreadable_file() {
    let error = Scenario::load(&scenarios_dir().join("no-such.toml")).unwrap_err();
    assert!(matches!(error, ScenarioError::Read { .. }));
    assert!(error.to_string().contains("no-such.toml: cannot read"));
}

// ---- overrides ----

#[test]
fn overrides_replace_and_revalidate() {
    let mut scenario = Scenario::from_str(BASE, "t.toml").unwrap();
    let overrides = Overrides {
        members: Some(100),
        rooms: Some(5),
        duration: Some(Duration::from_secs(60)),
        rate_per_member: Some(0.5),
        target_url: Some("http://10.0.0.1:8080".into()),
        seed: Some(9),
        ..Overrides::default()
    };
    scenario.apply(&overrides).unwrap();
    assert_eq!(scenario.population.members, 100);
    assert_eq!(scenario.population.rooms, 5);
    assert_eq!(scenario.duration, Duration::from_secs(60));
    assert_eq!(scenario.traffic.rate, Rate::PerMember(0.5));
    assert_eq!(
        scenario.target.endpoint,
        Endpoint::Url("http://10.0.0.1:8080".into())
    );
    assert_eq!(scenario.target.client_address, ClientAddress::Forwarded);
    assert_eq!(scenario.seed, 9);
}

#[test]
fn a_bad_override_is_named_and_changes_nothing() {
    let mut scenario = Scenario::from_str(BASE, "t.toml").unwrap();
    let error = scenario
        .apply(&Overrides {
            members: Some(0),
            ..Overrides::default()
        })
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "t.toml: population.members: must be at least 1 (value from an override)"
    );
    assert_eq!(scenario.population.members, 10);

    let error = scenario
        .apply(&Overrides {
            members: Some(1),
            ..Overrides::default()
        })
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("t.toml:9: population.rooms: 2 rooms for 1 members"),
        "{error}"
    );

    let mut failover = Scenario::load(&scenarios_dir().join("failover.toml")).unwrap();
    let url = Overrides {
        target_url: Some("http://127.0.0.1:8080".into()),
        ..Overrides::default()
    };
    let error = failover.apply(&url).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("faults[0]: faults need target.local"),
        "{error}"
    );
    // A part of a split run: the parent injects the faults, the part runs against a url.
    let part = Overrides {
        without_faults: true,
        ..url
    };
    failover.apply(&part).unwrap_or_else(|e| panic!("{e}"));
    assert!(failover.faults.is_empty());
}

#[test]
fn overrides_size_the_local_stack_and_a_url_target_refuses_them() {
    let mut scenario = Scenario::load(&scenarios_dir().join("capacity.toml")).unwrap();
    scenario
        .apply(&Overrides {
            workers: Some(8),
            nginx_workers: Some(16),
            ..Overrides::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let Endpoint::Local(local) = scenario.target.endpoint else {
        panic!("capacity.toml's target is the local stack");
    };
    assert_eq!((local.workers, local.nginx_workers), (8, 16));

    let mut remote = Scenario::from_str(BASE, "t.toml").unwrap();
    let error = remote
        .apply(&Overrides {
            target_url: Some("http://10.0.0.1:8080".into()),
            workers: Some(4),
            ..Overrides::default()
        })
        .unwrap_err();
    assert!(
        error.to_string().contains("set either target.url"),
        "{error}"
    );
}

// ---- plans ----

fn scenario_with(room_size: &str, members: u32, rooms: u32, seed: u64) -> Scenario {
    let text = edited("ramp = 10", &format!("ramp = 10\nroom_size = {room_size}"))
        .replace("members = 10", &format!("members = {members}"))
        .replace("rooms = 2", &format!("rooms = {rooms}"))
        .replace("seed = 1", &format!("seed = {seed}"));
    Scenario::from_str(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn sizes(plan: &Plan) -> Vec<usize> {
    plan.rooms.iter().map(|r| r.members.len()).collect()
}

#[test]
fn plans_are_reproducible_per_seed() {
    let a = plan(&scenario_with("{ uniform = [1, 50] }", 500, 20, 1));
    let b = plan(&scenario_with("{ uniform = [1, 50] }", 500, 20, 1));
    let c = plan(&scenario_with("{ uniform = [1, 50] }", 500, 20, 2));
    assert_eq!(a, b);
    assert_ne!(sizes(&a), sizes(&c));
    let transports = |p: &Plan| p.members.iter().map(|m| m.transport).collect::<Vec<_>>();
    assert_ne!(transports(&a), transports(&c));
}

#[test]
fn room_sizes_add_up_and_no_room_is_empty() {
    for room_size in [
        "\"fixed\"",
        "{ uniform = [1, 50] }",
        "{ uniform = [10, 10] }",
        "{ zipf = 1.2 }",
        "{ zipf = 3.0 }",
    ] {
        for (members, rooms) in [(10, 10), (11, 3), (500, 20), (2000, 100), (7, 1)] {
            let plan = plan(&scenario_with(room_size, members, rooms, 5));
            let sizes = sizes(&plan);
            assert_eq!(sizes.len(), rooms as usize);
            assert_eq!(
                sizes.iter().sum::<usize>(),
                members as usize,
                "{room_size} {members}/{rooms}"
            );
            assert!(sizes.iter().all(|&s| s >= 1), "{room_size}: {sizes:?}");
        }
    }
}

#[test]
fn fixed_rooms_are_even() {
    let sizes = sizes(&plan(&scenario_with("\"fixed\"", 103, 10, 1)));
    assert_eq!(sizes, vec![11, 11, 11, 10, 10, 10, 10, 10, 10, 10]);
}

#[test]
fn zipf_rooms_are_skewed() {
    let sizes = sizes(&plan(&scenario_with("{ zipf = 1.2 }", 2000, 100, 1)));
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert!(sizes[0] > 20 * sizes[99], "{sizes:?}");
    assert!(sizes[0] > 300, "{sizes:?}");
}

#[test]
fn members_and_rooms_agree() {
    let plan = plan(&scenario_with("{ zipf = 1.2 }", 500, 20, 3));
    for (id, member) in plan.members.iter().enumerate() {
        assert_eq!(member.id as usize, id);
        let room = plan.room_of(member);
        assert_eq!(room.members[member.slot as usize], member.id);
        assert!(
            roomstorm_protocol::validate_room_id(&room.id).is_ok(),
            "{}",
            room.id
        );
        assert_eq!(
            roomstorm_protocol::normalize_username(&member.name),
            Ok(member.name.as_str())
        );
    }
    assert_eq!(plan.members[123].name, "m000123");
    assert_eq!(plan.rooms[3].id, "t-r003");
}

#[test]
fn transport_shares_are_respected() {
    let plan = plan(&scenario_with("\"fixed\"", 1000, 10, 4));
    let count = |t: Transport| plan.members.iter().filter(|m| m.transport == t).count();
    assert_eq!(
        (
            count(Transport::WebSocket),
            count(Transport::Polling),
            count(Transport::Upgrade)
        ),
        (800, 100, 100)
    );
    // Shuffled, not in blocks: the first room gets some of each.
    let first_room: Vec<Transport> = plan.rooms[0]
        .members
        .iter()
        .map(|&id| plan.members[id as usize].transport)
        .collect();
    assert!(first_room.contains(&Transport::Polling) || first_room.contains(&Transport::Upgrade));

    let mix = Scenario::load(&scenarios_dir().join("polling-mix.toml")).unwrap();
    let plan = super::plan(&mix);
    let share =
        |t: Transport| plan.members.iter().filter(|m| m.transport == t).count() as f64 / 400.0;
    assert!((share(Transport::WebSocket) - 0.5).abs() <= 1.0 / 400.0);
    assert!((share(Transport::Polling) - 0.3).abs() <= 1.0 / 400.0);
    assert!((share(Transport::Upgrade) - 0.2).abs() <= 1.0 / 400.0);
}

#[test]
fn room_rates_are_shared_by_members() {
    let big = Scenario::load(&scenarios_dir().join("big-room.toml")).unwrap();
    let plan = plan(&big);
    assert_eq!(plan.rooms.len(), 1);
    assert!(
        plan.members
            .iter()
            .all(|m| m.send_interval == Some(Duration::from_secs(100)))
    );
    let smoke = Scenario::load(&scenarios_dir().join("smoke.toml")).unwrap();
    assert!(
        super::plan(&smoke)
            .members
            .iter()
            .all(|m| m.send_interval == Some(Duration::from_secs(1)))
    );
}

/// A profile that cannot work is refused at the line of its key; a good one gets the
/// implicit `unmatched == 0` rule, and is echoed without the environment's values.
#[test]
fn a_protocol_profile_is_checked_at_its_lines() {
    let profile = r#"
[protocol]
name = "other"
[protocol.say]
event = "post"
payload = { body = "hello" }
[protocol.receive]
event = "posted"
probe = "body"
echo = true
"#;
    let text = format!("{BASE}{profile}");
    let line = text
        .lines()
        .position(|l| l.starts_with("payload"))
        .map(|i| i + 1);
    assert_eq!(
        refusal(&text),
        format!(
            "t.toml:{}: protocol.say.payload: has no {{probe}}: loadgen puts each message's \
             probe (its sender, number and intended send time) there, and without it nothing \
             can be measured; e.g. {{ text = \"{{probe}}\" }}",
            line.unwrap()
        )
    );
    let good = Scenario::from_str(&text.replace("\"hello\"", "\"{probe}\""), "t.toml").unwrap();
    assert_eq!(good.protocol.name, "other");
    let rules: Vec<String> = good.thresholds.iter().map(|t| t.to_string()).collect();
    assert_eq!(rules, ["fanout.p99 < 50ms", "unmatched == 0"]);
    let echo = serde_json::to_value(&good).unwrap();
    assert_eq!(echo["protocol"]["say"]["payload"]["body"], "{probe}");
    // The built-in profile is not echoed, and gets no extra rule.
    let base = Scenario::from_str(BASE, "t.toml").unwrap();
    assert!(
        serde_json::to_value(&base)
            .unwrap()
            .get("protocol")
            .is_none()
    );
    assert_eq!(base.thresholds.len(), 1);
}

#[test]
fn a_partition_needs_workers_on_hosts_of_their_own_and_names_one() {
    use chat_server::stack::PartitionFrom;
    let hosts = edited(
        "local = { workers = 2 }",
        "local = { workers = 2, namespaces = true }",
    );
    let with_fault =
        |base: &str, fault: &str| format!("{base}\n[[faults]]\nat = \"5s\"\n{fault}\n");
    let scenario = Scenario::from_str(
        &with_fault(
            &hosts,
            "partition = { worker = 1, from = \"nginx\", for = \"3s\" }",
        ),
        "t.toml",
    )
    .expect("valid");
    let Endpoint::Local(local) = scenario.target.endpoint else {
        panic!("a local target")
    };
    assert!(local.namespaces);
    assert_eq!(
        scenario.faults[0].action,
        FaultAction::Partition {
            worker: 1,
            from: PartitionFrom::Nginx,
            duration: Duration::from_secs(3)
        }
    );
    for (base, fault, expected) in [
        (
            BASE,
            "partition = { worker = 0, from = \"redis\", for = \"3s\" }",
            "t.toml:22: faults[0].partition: a partition needs each worker on a host of its own: set target.local.namespaces = true",
        ),
        (
            &hosts,
            "partition = { worker = 2, from = \"redis\", for = \"3s\" }",
            "t.toml:22: faults[0].partition.worker: worker 2 does not exist",
        ),
        (
            &hosts,
            "partition = { worker = 0, from = \"redis\", for = \"0s\" }",
            "t.toml:22: faults[0].partition.for: must be longer than 0s",
        ),
        (
            &hosts,
            "partition = { worker = 0, from = \"dns\", for = \"1s\" }",
            "t.toml:22",
        ),
    ] {
        let message = refusal(&with_fault(base, fault));
        assert!(message.starts_with(expected), "{fault}: {message}");
    }
    let message = refusal(&edited(
        "local = { workers = 2 }",
        "local = { workers = 2, namespaces = true, redis_cluster = 3 }",
    ));
    assert!(
        message.contains("target.local.namespaces: namespaces put one Redis on a host of its own"),
        "{message}"
    );
}
