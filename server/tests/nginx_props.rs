//! Property tests of the nginx config renderer's inputs: any setting either is refused with its
//! flag's name, or renders to a config in which it stays one token (no directive of its own, no
//! brace, no leftover placeholder). `cargo test` tries 256 configs; `PROPTEST_CASES=100000` runs
//! a longer search.

use chat_server::nginx::NginxConfig;
use proptest::prelude::*;

/// Values near the real ones, with the characters that could break out of a directive.
fn setting() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("127.0.0.1".to_string()),
        Just("chat".to_string()),
        Just(":".to_string()),
        Just("6001".to_string()),
        Just("/".to_string()),
        Just("[::1]".to_string()),
        Just("unix:/run/x.sock".to_string()),
        Just(";".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("{{listen}}".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("\"".to_string()),
        Just("#".to_string()),
        Just("$host".to_string()),
        "\\PC{0,3}",
    ];
    prop::collection::vec(piece, 1..5).prop_map(|p| p.concat())
}

fn config() -> impl Strategy<Value = NginxConfig> {
    (
        setting(),
        prop::collection::vec(setting(), 1..4),
        prop::collection::vec(setting(), 1..3),
        prop_oneof![Just(String::new()), setting()],
        prop_oneof![
            Just(String::new()),
            Just("root root".to_string()),
            setting()
        ],
        1usize..16,
        0usize..100_000,
        0usize..5_000,
    )
        .prop_map(
            |(listen, upstreams, real_ip_from, prefix, user, workers, files, per_address)| {
                NginxConfig {
                    listen,
                    upstreams,
                    real_ip_from,
                    worker_processes: workers,
                    rlimit_nofile: files,
                    prefix,
                    user,
                    limit_conn_per_address: per_address,
                    proxy_bind: None,
                }
            },
        )
}

/// Lines that are directives: not blank, not comments.
fn directives(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

proptest! {
    #[test]
    fn a_setting_is_refused_by_name_or_stays_one_token(config in config()) {
        match config.render() {
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.starts_with("--"), "names the flag: {}", shown);
            }
            Ok(text) => {
                prop_assert!(!text.contains("{{"), "a placeholder is left:\n{}", text);
                prop_assert_eq!(text.matches('{').count(), text.matches('}').count());
                for line in directives(&text) {
                    prop_assert!(
                        line.ends_with(';') || line.ends_with('{') || line.ends_with('}'),
                        "a directive spans lines: {:?}", line
                    );
                    prop_assert!(line.matches(';').count() <= 1, "two directives on a line: {:?}", line);
                }
                let servers = directives(&text).filter(|l| l.starts_with("server ") && l.ends_with(';')).count();
                prop_assert_eq!(servers, config.upstreams.len());
            }
        }
    }
}
