//! Keeps `docs/cli.md`, the CLI reference the README points to, equal to the real `--help`
//! of every command. Regenerate with `ROOMSTORM_BLESS=1 cargo test -p loadgen --test cli_reference`.

use std::path::Path;

/// Each documented command, as arguments of the loadgen binary (which embeds chat-server).
const COMMANDS: [&[&str]; 12] = [
    &[],
    &["run"],
    &["merge"],
    &["collect"],
    &["report"],
    &["compare"],
    &["plan"],
    &["chat-server"],
    &["chat-server", "worker"],
    &["chat-server", "cluster"],
    &["chat-server", "stack"],
    &["chat-server", "nginx-config"],
];

fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .expect("run loadgen --help");
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

fn title(args: &[&str]) -> String {
    match args {
        ["chat-server", rest @ ..] => format!("chat-server {}", rest.join(" ")).trim().to_string(),
        _ => format!("loadgen {}", args.join(" ")).trim().to_string(),
    }
}

fn render() -> String {
    let mut out = String::from(
        "# Command-line reference\n\nGenerated from the programs' own `--help` by \
         `ROOMSTORM_BLESS=1 cargo test -p loadgen --test cli_reference` (a test fails when this \
         file and the programs disagree). `chat-server` is also embedded in `loadgen` as \
         `loadgen chat-server ...`.\n",
    );
    for args in COMMANDS {
        out.push_str(&format!(
            "\n## `{}`\n\n```text\n{}```\n",
            title(args),
            help(args)
        ));
    }
    out
}

#[test]
fn the_cli_reference_matches_the_real_help() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
    let fresh = render();
    if std::env::var_os("ROOMSTORM_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write docs/cli.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "docs/cli.md is out of date: run ROOMSTORM_BLESS=1 cargo test -p loadgen --test cli_reference"
    );
}
