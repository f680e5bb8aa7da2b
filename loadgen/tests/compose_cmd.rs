//! The compose `loadgen` service's command, checked in seconds without a Docker engine
//! (scripts/test-docker runs it on a real one): `docker compose --profile load run loadgen smoke` must run
//! `loadgen run scenarios/smoke.toml` against nginx with forwarded client addresses, and write
//! its results where the host sees them. The rest of docker-compose.yml and the Dockerfile is
//! checked in server/tests/compose.rs (whose reader this file shares).

#[path = "../../server/tests/compose_file/mod.rs"]
mod compose_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use compose_file::{Compose, Dockerfile, repo_root};
use loadgen::scenario::{ClientAddress, Endpoint, Overrides, Scenario};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The repository file the Dockerfile installs as /usr/local/bin/`program`.
fn installed_from(dockerfile: &Dockerfile, program: &str) -> PathBuf {
    let copy = dockerfile
        .copies()
        .into_iter()
        .find(|c| c.from.is_none() && c.dest == format!("/usr/local/bin/{program}"))
        .unwrap_or_else(|| panic!("the Dockerfile does not install /usr/local/bin/{program}"));
    assert_eq!(copy.sources.len(), 1, "{copy:?}");
    repo_root().join(&copy.sources[0])
}

/// The image's working folder as the loadgen service sees it: the compose bind mounts under
/// WORKDIR (here: links to the repository's folders) and `loadgen` on PATH.
struct Container {
    root: PathBuf,
    workdir: PathBuf,
    bin: PathBuf,
    entrypoint: Vec<String>,
    command: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Container {
    fn new(tag: &str) -> Container {
        let compose = Compose::load();
        let dockerfile = Dockerfile::load();
        let root = std::env::temp_dir().join(format!(
            "roomstorm-compose-loadgen-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let image_workdir = dockerfile.workdir();
        let workdir = root.join(image_workdir.trim_start_matches('/'));
        std::fs::create_dir_all(&workdir).expect("workdir");
        for (source, target) in compose.bind_mounts("loadgen") {
            let inside = target
                .strip_prefix(&format!("{image_workdir}/"))
                .unwrap_or_else(|| {
                    panic!("loadgen mounts {source} outside {image_workdir}: {target}")
                });
            std::os::unix::fs::symlink(repo_root().join(&source), workdir.join(inside))
                .expect("link mount");
        }
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_loadgen"), bin.join("loadgen"))
            .expect("link loadgen");
        let entrypoint = compose.list("loadgen", "entrypoint");
        assert_eq!(entrypoint.len(), 1, "{entrypoint:?}");
        std::os::unix::fs::symlink(
            installed_from(&dockerfile, &entrypoint[0]),
            bin.join(&entrypoint[0]),
        )
        .expect("link entrypoint");
        Container {
            root,
            workdir,
            bin,
            entrypoint,
            command: compose.list("loadgen", "command"),
            env: compose.environment("loadgen"),
        }
    }

    /// Runs the entrypoint with `args` (as after `docker compose run loadgen`).
    fn run(&self, args: &[String]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(self.bin.join(&self.entrypoint[0]))
            .args(args)
            .current_dir(&self.workdir)
            .env("PATH", path)
            .envs(&self.env)
            .stdin(Stdio::null())
            .output()
            .expect("run the entrypoint")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn compose_loadgen_command_is_a_real_loadgen_run() {
    let container = Container::new("help");
    // `docker compose --profile load run loadgen smoke`, with --help appended: loadgen parses
    // everything the entrypoint passes and exits 0 only if every flag exists.
    for args in [container.command.clone(), vec!["smoke".to_string()], vec![]] {
        let mut with_help = args.clone();
        with_help.push("--help".into());
        let output = container.run(&with_help);
        assert!(
            output.status.success(),
            "`{} {}` fails:\n{}",
            container.entrypoint[0],
            with_help.join(" "),
            text(&output)
        );
        assert!(
            text(&output).contains("Usage: loadgen run"),
            "{}",
            text(&output)
        );
    }
    // A name that is no scenario is refused, naming the shipped ones.
    let output = container.run(&["no-such-scenario".to_string()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("scenarios/smoke.toml"),
        "{}",
        text(&output)
    );
}

#[test]
fn compose_loadgen_targets_nginx_with_forwarded_addresses() {
    let compose = Compose::load();
    let target = compose
        .environment("loadgen")
        .get("LOADGEN_TARGET")
        .cloned()
        .expect("services.loadgen.environment.LOADGEN_TARGET");
    let authority = target
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("LOADGEN_TARGET is an http URL: {target}"));
    let (host, port) = authority.split_once(':').expect("host:port");
    assert_eq!(host, "nginx", "loadgen goes through nginx, as users do");
    let published = compose.list("nginx", "ports");
    assert!(
        published.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "LOADGEN_TARGET's port {port} is nginx's container port ({published:?})"
    );

    // The scenario the service runs by default, with the target the entrypoint passes: a URL
    // that is not loopback, so every member sends its own X-Forwarded-For.
    let name = &compose.list("loadgen", "command")[0];
    let file = repo_root().join("scenarios").join(format!("{name}.toml"));
    let mut scenario = Scenario::load(&file).expect("the compose scenario loads");
    scenario
        .apply(&Overrides {
            target_url: Some(target.clone()),
            ..Overrides::default()
        })
        .expect("the compose scenario accepts the nginx URL");
    assert_eq!(scenario.target.endpoint, Endpoint::Url(target));
    assert_eq!(
        scenario.target.client_address,
        ClientAddress::Forwarded,
        "members must send distinct X-Forwarded-For addresses through nginx ip_hash"
    );
}

#[test]
fn compose_loadgen_results_land_on_the_host() {
    // loadgen writes to runs/<scenario>-<time> under its working folder by default; the
    // service must mount the host's ./runs exactly there.
    let compose = Compose::load();
    let workdir = Dockerfile::load().workdir();
    let mounts = compose.bind_mounts("loadgen");
    assert!(
        mounts
            .iter()
            .any(|(s, t)| s.trim_start_matches("./") == "runs" && t == &format!("{workdir}/runs")),
        "services.loadgen must mount ./runs at {workdir}/runs: {mounts:?}"
    );
    assert!(
        mounts
            .iter()
            .any(|(s, t)| s.trim_start_matches("./") == "scenarios"
                && t.starts_with(&format!("{workdir}/scenarios"))),
        "services.loadgen mounts ./scenarios, so edited scenarios need no rebuild: {mounts:?}"
    );
    assert!(Path::new(&repo_root().join("runs")).is_dir());
}

#[test]
fn compose_loadgen_asks_the_cluster_master_for_the_workers() {
    // LOADGEN_ADMIN is the chat service's --admin, by its service name: through nginx loadgen
    // cannot see the workers, the master lists them (ports 6001.. on the same host).
    let compose = Compose::load();
    let admin = compose
        .environment("loadgen")
        .get("LOADGEN_ADMIN")
        .cloned()
        .expect("services.loadgen.environment.LOADGEN_ADMIN");
    let listen = compose.command_flag("chat", "--admin");
    let port = listen.rsplit_once(':').expect("host:port").1;
    assert_eq!(admin, format!("http://chat:{port}"));

    // The entrypoint passes it as --admin: a malformed one is refused by loadgen's own check,
    // before any network (exit 2, naming the flag).
    let mut container = Container::new("admin");
    container
        .env
        .insert("LOADGEN_ADMIN".into(), "chat-without-scheme".into());
    let output = container.run(&["smoke".to_string()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("invalid value 'chat-without-scheme' for '--admin <URL>'"),
        "{}",
        text(&output)
    );
}

#[test]
fn compose_loadgen_parts_meet_in_the_compose_redis() {
    // `LOADGEN_PARTS=3 docker compose --profile load up`: three replicas, each one part.
    let compose = Compose::load_with(&[("LOADGEN_PARTS", "3")]);
    let loadgen = compose.service("loadgen");
    assert_eq!(
        compose_file::scalar(&loadgen["deploy"]["replicas"]),
        "3",
        "one container per part"
    );
    let env = compose.environment("loadgen");
    let coordinator = env
        .get("LOADGEN_COORDINATOR")
        .expect("services.loadgen.environment.LOADGEN_COORDINATOR");
    let redis_port = compose
        .list("redis", "command")
        .windows(2)
        .find(|w| w[0] == "--port")
        .map_or("6379".to_owned(), |w| w[1].clone());
    assert_eq!(
        coordinator,
        &format!("redis://redis:{redis_port}"),
        "the parts meet in the compose Redis"
    );

    // The entrypoint makes each container a part taking a free index: loadgen parses it.
    let mut container = Container::new("parts");
    container.env.insert("LOADGEN_PARTS".into(), "3".into());
    let output = container.run(&["smoke".to_string(), "--help".to_string()]);
    assert!(output.status.success(), "{}", text(&output));
    // LOADGEN_RUN_ID reaches --run-id (a bad one is refused by loadgen, before any network).
    container.env.insert("LOADGEN_RUN_ID".into(), "a b".into());
    let output = container.run(&["smoke".to_string()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("invalid value 'a b' for '--run-id <ID>'"),
        "{}",
        text(&output)
    );
    // Without LOADGEN_PARTS (compose's default 1), a plain run, as before.
    assert_eq!(Compose::load().environment("loadgen")["LOADGEN_PARTS"], "1");
    container.env.insert("LOADGEN_PARTS".into(), "three".into());
    let output = container.run(&["smoke".to_string()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("LOADGEN_PARTS must be a number"));
}
