//! `docker compose up` must work the first time. scripts/test-docker runs the compose file on a
//! real engine (minutes: an image build); these tests check in seconds, without an engine,
//! what can be checked that way:
//! docker-compose.yml (services, profiles, health checks, `depends_on` conditions, that every
//! mounted or built path exists), the Dockerfile (every COPY source exists and is not ignored,
//! every workspace crate is in the cached dependency layer and the source layer, the runtime
//! image has what the commands and health checks use), that the nginx-config service renders
//! an upstream for every worker the cluster starts, whatever CHAT_WORKERS says, into the file
//! nginx reads, and that the render passes `nginx -t` with the compose host names mapped to
//! loopback, that Redis accepts the compose arguments, and that every command the image runs
//! is a real `chat-server` subcommand with real flags. The loadgen service's
//! command is checked in loadgen/tests/compose_cmd.rs.

mod compose_file;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use compose_file::{Compose, Dockerfile, dockerignore, ignored, read_repo_file, repo_root};
use serde_yaml::Value;

const SERVICES: [&str; 5] = ["redis", "chat", "nginx-config", "nginx", "loadgen"];
/// The one-shot service that renders nginx's config.
const RENDER: &str = "nginx-config";

fn server_exe() -> &'static str {
    env!("CARGO_BIN_EXE_chat-server")
}

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[String]) -> Output {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `chat-server ARGS --help`: exits 0 only when every flag before it exists and every value
/// parses, so a renamed flag or a bad value fails here.
fn help_of(args: &[String]) -> String {
    let mut with_help = args.to_vec();
    with_help.push("--help".into());
    let output = run(server_exe(), &with_help);
    assert!(
        output.status.success(),
        "`chat-server {}` is not accepted by the binary:\n{}",
        with_help.join(" "),
        text(&output)
    );
    text(&output)
}

/// The chat service's command split at `--`: (cluster flags, worker flags).
fn chat_command(compose: &Compose) -> (Vec<String>, Vec<String>) {
    let command = compose.list("chat", "command");
    assert_eq!(
        command.first().map(String::as_str),
        Some("chat-server"),
        "services.chat.command runs the image's chat-server"
    );
    match command.iter().position(|a| a == "--") {
        Some(at) => (command[1..at].to_vec(), command[at + 1..].to_vec()),
        None => (command[1..].to_vec(), Vec::new()),
    }
}

fn worker_flag(worker_args: &[String], flag: &str) -> String {
    let at = worker_args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("the chat workers get no {flag}: {worker_args:?}"));
    worker_args[at + 1].clone()
}

/// (workers, base port) of the chat cluster with compose's defaults.
fn chat_workers(compose: &Compose) -> (u16, u16) {
    let workers: u16 = compose
        .command_flag("chat", "--workers")
        .parse()
        .expect("--workers is a number");
    let base: u16 = compose
        .command_flag("chat", "--base-port")
        .parse()
        .expect("--base-port is a number");
    (workers, base)
}

/// The container port nginx listens on (the target side of its one published port).
fn nginx_port(compose: &Compose) -> u16 {
    let ports = compose.list("nginx", "ports");
    assert_eq!(ports.len(), 1, "nginx publishes one port: {ports:?}");
    ports[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("services.nginx.ports: cannot read `{}`", ports[0]))
}

fn healthcheck(compose: &Compose, service: &str) -> Vec<String> {
    let test = compose
        .service(service)
        .get("healthcheck")
        .and_then(|h| h.get("test"))
        .unwrap_or_else(|| panic!("services.{service} has no healthcheck.test"));
    let Value::Sequence(items) = test else {
        panic!("services.{service}.healthcheck.test must be a list ([\"CMD\", ...]): {test:?}");
    };
    let items: Vec<String> = items.iter().map(compose_file::scalar).collect();
    assert_eq!(
        items.first().map(String::as_str),
        Some("CMD"),
        "services.{service}.healthcheck runs a program directly (CMD), not a shell"
    );
    items[1..].to_vec()
}

#[test]
fn services_profiles_and_dependencies() {
    let compose = Compose::load();
    let names = compose.service_names();
    for service in SERVICES {
        assert!(
            names.iter().any(|n| n == service),
            "docker-compose.yml has no service `{service}`: {names:?}"
        );
    }
    assert_eq!(
        compose.list("loadgen", "profiles"),
        ["load"],
        "loadgen runs only with --profile load"
    );
    for service in ["redis", "chat", RENDER, "nginx"] {
        assert!(
            compose.list(service, "profiles").is_empty(),
            "{service} must start with a plain `docker compose up`"
        );
    }
    assert_eq!(
        compose
            .service("redis")
            .get("image")
            .map(compose_file::scalar),
        Some("redis:7".to_string())
    );
    assert_eq!(
        compose
            .service("nginx")
            .get("image")
            .map(compose_file::scalar),
        Some("nginx:1.27".to_string())
    );

    let mut conditions = Vec::new();
    for name in &names {
        match compose.service(name).get("depends_on") {
            None => {}
            Some(Value::Mapping(deps)) => {
                for (dep, spec) in deps {
                    let dep = compose_file::scalar(dep);
                    assert!(
                        names.contains(&dep),
                        "services.{name}.depends_on names an unknown service `{dep}`"
                    );
                    let condition = spec.get("condition").map(compose_file::scalar);
                    let condition = condition.unwrap_or_else(|| {
                        panic!("services.{name}.depends_on.{dep} has no condition")
                    });
                    assert!(
                        [
                            "service_started",
                            "service_healthy",
                            "service_completed_successfully"
                        ]
                        .contains(&condition.as_str()),
                        "services.{name}.depends_on.{dep}: unknown condition {condition}"
                    );
                    if condition == "service_healthy" {
                        healthcheck(&compose, &dep);
                    }
                    conditions.push((name.clone(), dep, condition));
                }
            }
            Some(other) => panic!(
                "services.{name}.depends_on must be a mapping with a condition for each service, not {other:?}"
            ),
        }
    }
    // Nothing starts before what it needs is healthy.
    for (service, dep) in [("chat", "redis"), ("nginx", "chat"), ("loadgen", "nginx")] {
        assert!(
            conditions
                .iter()
                .any(|(s, d, c)| s == service && d == dep && c == "service_healthy"),
            "{service} must depend on {dep} with condition service_healthy: {conditions:?}"
        );
    }
    assert!(
        conditions
            .iter()
            .any(|(s, d, c)| s == "nginx" && d == RENDER && c == "service_completed_successfully"),
        "nginx must start only after {RENDER} wrote its config: {conditions:?}"
    );
    // Found on a real engine (scripts/test-docker, CHAT_WORKERS=4 on a running stack): nginx
    // reads its config only at start, so it kept routing to 2 workers after a new render.
    let restart = compose
        .service("nginx")
        .get("depends_on")
        .and_then(|deps| deps.get(RENDER))
        .and_then(|spec| spec.get("restart"))
        .map(compose_file::scalar);
    assert_eq!(
        restart.as_deref(),
        Some("true"),
        "nginx must restart when {RENDER} renders a new config (depends_on.{RENDER}.restart: true)"
    );
}

/// Found on a real engine (scripts/test-docker): `ulimits: nofile: 65536` made the engine refuse
/// to start the containers on a host whose own hard limit is 20,000 ("error setting rlimits").
/// The binaries raise their soft limit to the hard one themselves (chat_server::limits).
#[test]
fn no_service_sets_ulimits() {
    let compose = Compose::load();
    for name in compose.service_names() {
        assert!(
            compose.service(&name).get("ulimits").is_none(),
            "services.{name} sets ulimits: an engine whose hard limit is lower refuses to start it"
        );
    }
}

#[test]
fn mounted_and_built_paths_exist() {
    let compose = Compose::load();
    let root = repo_root();
    for name in compose.service_names() {
        let service = compose.service(&name);
        if let Some(build) = service.get("build") {
            let (context, dockerfile) = match build {
                Value::String(context) => (context.clone(), "Dockerfile".to_string()),
                Value::Mapping(_) => (
                    build
                        .get("context")
                        .map(compose_file::scalar)
                        .unwrap_or_else(|| ".".into()),
                    build
                        .get("dockerfile")
                        .map(compose_file::scalar)
                        .unwrap_or_else(|| "Dockerfile".into()),
                ),
                other => panic!("services.{name}.build: unexpected {other:?}"),
            };
            let context = root.join(context);
            assert!(
                context.is_dir(),
                "services.{name}.build context {} does not exist",
                context.display()
            );
            assert!(
                context.join(&dockerfile).is_file(),
                "services.{name}.build: {dockerfile} does not exist in {}",
                context.display()
            );
        } else {
            let image = service
                .get("image")
                .map(compose_file::scalar)
                .unwrap_or_else(|| panic!("services.{name} has neither build nor image"));
            let tag = image.rsplit_once(':').map(|(_, t)| t);
            assert!(
                tag.is_some_and(|t| t != "latest"),
                "services.{name}.image `{image}` must name a version"
            );
        }
        for (volume, target) in compose.named_volumes(&name) {
            assert!(
                compose.declares_volume(&volume),
                "services.{name}.volumes: `{volume}` (mounted at {target}) is not declared under the top-level volumes"
            );
        }
        for (source, target) in compose.bind_mounts(&name) {
            assert!(
                !source.starts_with('/'),
                "services.{name}.volumes: {source} is an absolute host path; use one in the repository"
            );
            let path = root.join(&source);
            assert!(
                path.exists(),
                "services.{name}.volumes: {source} (mounted at {target}) does not exist in the repository"
            );
        }
    }
}

/// Workspace members from the root Cargo.toml.
fn workspace_members() -> Vec<String> {
    let manifest: toml::Value = toml::from_str(&read_repo_file("Cargo.toml")).expect("Cargo.toml");
    manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .iter()
        .map(|m| m.as_str().expect("member path").to_string())
        .collect()
}

/// The words after `marker` in `text` up to the first `;` (e.g. a shell `for x in a b c;`).
fn words_after(text: &str, marker: &str, end: &[char]) -> BTreeSet<String> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` not found in: {text}"));
    let rest = &text[start + marker.len()..];
    let stop = rest.find(end).unwrap_or(rest.len());
    rest[..stop]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn dockerfile_copies_what_the_build_needs() {
    let root = repo_root();
    let dockerfile = Dockerfile::load();
    let patterns = dockerignore();
    let copies = dockerfile.copies();

    // Every COPY from the build context names something that exists and is sent to the daemon.
    for copy in copies.iter().filter(|c| c.from.is_none()) {
        for source in &copy.sources {
            assert!(
                root.join(source).exists(),
                "Dockerfile:{}: COPY {source}: no such file in the repository",
                copy.line
            );
            if let Some(pattern) = ignored(source, &patterns) {
                panic!(
                    "Dockerfile:{}: COPY {source} is excluded by .dockerignore `{pattern}`",
                    copy.line
                );
            }
        }
    }

    // The builder: manifests with stub sources first (the cached dependency layer), then the
    // sources, for every workspace member.
    let builder = dockerfile.stage_named("builder");
    let members = workspace_members();
    let member_set: BTreeSet<String> = members.iter().cloned().collect();
    let runs: Vec<_> = dockerfile.in_stage(builder, "RUN").collect();
    let first_build = runs
        .iter()
        .find(|r| r.args.contains("cargo build"))
        .expect("the builder runs cargo build");
    let second_build = runs
        .iter()
        .rfind(|r| r.args.contains("cargo build"))
        .expect("the builder runs cargo build");
    assert!(
        first_build.line < second_build.line,
        "the builder builds twice: dependencies with stub sources, then the real sources"
    );
    let builder_copies: Vec<_> = copies
        .iter()
        .filter(|c| c.stage == builder && c.from.is_none())
        .collect();
    for member in &members {
        let manifest = format!("{member}/Cargo.toml");
        assert!(
            builder_copies.iter().any(|c| c.line < first_build.line
                && c.sources.contains(&manifest)
                && c.dest.trim_end_matches('/') == member),
            "Dockerfile: the dependency layer does not COPY {manifest} (workspace member `{member}`)"
        );
        assert!(
            builder_copies.iter().any(|c| c.line > first_build.line
                && c.line < second_build.line
                && c.sources.iter().any(|s| s.trim_end_matches('/') == member)),
            "Dockerfile: the source layer does not COPY {member}/"
        );
        assert!(
            first_build.args.contains(&format!("{member}/src")),
            "Dockerfile:{}: the stub sources of {member} are not removed after the dependency build",
            first_build.line
        );
        check_stub_targets(member);
    }
    assert_eq!(
        words_after(&first_build.args, "for crate in", &[';']),
        member_set,
        "Dockerfile:{}: the stub loop must cover exactly the workspace members",
        first_build.line
    );
    assert_eq!(
        words_after(&second_build.args, "find", &['-']),
        member_set,
        "Dockerfile:{}: the sources touched before the real build must be exactly the workspace members",
        second_build.line
    );
    let workspace_version = toml::from_str::<toml::Value>(&read_repo_file("Cargo.toml"))
        .expect("Cargo.toml")["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("workspace.package.rust-version")
        .to_string();
    check_builder_image(&dockerfile.stages[builder].image, &workspace_version);

    // Files compiled in with include_str!/include_bytes! must be in the builder's context.
    for member in &members {
        for (file, included) in included_files(&root.join(member).join("src")) {
            let relative = included
                .strip_prefix(&root)
                .unwrap_or_else(|_| {
                    panic!(
                        "{} includes {} from outside the repository",
                        file.display(),
                        included.display()
                    )
                })
                .to_string_lossy()
                .to_string();
            assert!(
                builder_copies.iter().any(|c| c.line < second_build.line
                    && c.sources.iter().any(|s| {
                        let s = s.trim_end_matches('/');
                        relative == s || relative.starts_with(&format!("{s}/"))
                    })),
                "{} compiles in {relative}, which the Dockerfile's builder does not COPY",
                file.display()
            );
        }
    }

    // Builder and runtime on the same Debian release (glibc).
    let runtime = dockerfile.final_stage();
    assert_eq!(dockerfile.stages[runtime].image, "debian:bookworm-slim");
    assert!(
        dockerfile.stages[builder].image.ends_with("-bookworm"),
        "the builder must be on bookworm like the runtime image: {}",
        dockerfile.stages[builder].image
    );
}

/// `rust:X.Y-slim-bookworm` with X.Y at least the workspace's rust-version.
fn check_builder_image(image: &str, rust_version: &str) {
    let tag = image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("the builder uses the official rust image, not {image}"));
    let version = tag.split('-').next().unwrap_or_default();
    let parse = |v: &str| -> Vec<u32> {
        v.split('.')
            .map(|n| n.parse().unwrap_or_else(|_| panic!("bad version {v}")))
            .collect()
    };
    let (have, need) = (parse(version), parse(rust_version));
    assert!(
        have[..2] >= need[..2],
        "the builder image {image} is older than rust-version {rust_version}"
    );
    assert!(tag.contains("slim"), "use a slim builder image: {image}");
}

/// The dependency layer stubs src/lib.rs and src/main.rs only: a member with another target
/// path or a build script would break it, so say so here rather than in someone's docker build.
fn check_stub_targets(member: &str) {
    let text = read_repo_file(&format!("{member}/Cargo.toml"));
    let manifest: toml::Value = toml::from_str(&text).expect("member manifest");
    let fix = "the Dockerfile's dependency layer only creates src/lib.rs and src/main.rs: \
               extend its stub loop (and this check)";
    if let Some(path) = manifest
        .get("lib")
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
    {
        assert_eq!(path, "src/lib.rs", "{member}: [lib] path {path}: {fix}");
    }
    for bin in manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        let path = bin.get("path").and_then(|p| p.as_str());
        assert!(
            path.is_none_or(|p| p == "src/main.rs"),
            "{member}: [[bin]] path {path:?}: {fix}"
        );
    }
    for kind in ["test", "bench", "example"] {
        assert!(
            manifest.get(kind).is_none(),
            "{member}: explicit [[{kind}]] targets: {fix}"
        );
    }
    let package = &manifest["package"];
    assert!(
        package.get("build").is_none() && !repo_root().join(member).join("build.rs").exists(),
        "{member} has a build script: {fix}"
    );
}

/// (source file, canonical included path) for every include_str!/include_bytes! under `dir`.
fn included_files(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(included_files(&path));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source file");
        for macro_name in ["include_str!(", "include_bytes!("] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = text[at + macro_name.len()..].trim_start();
                let manifest_prefix = "concat!(env!(\"CARGO_MANIFEST_DIR\"),";
                let (base, literal) = if let Some(rest) = rest.strip_prefix('"') {
                    (path.parent().expect("parent").to_path_buf(), rest)
                } else if let Some(rest) = rest.strip_prefix(manifest_prefix) {
                    let member_dir = dir
                        .ancestors()
                        .find(|d| d.join("Cargo.toml").is_file())
                        .expect("crate folder");
                    let rest = rest.trim_start().strip_prefix('"').unwrap_or_else(|| {
                        panic!("{}: {macro_name}{rest:.40} not understood", path.display())
                    });
                    (member_dir.to_path_buf(), rest.trim_start_matches('/'))
                } else {
                    panic!(
                        "{}: {macro_name}{rest:.40}: only string literals and \
                         concat!(env!(\"CARGO_MANIFEST_DIR\"), \"...\") are understood here",
                        path.display()
                    );
                };
                let relative = &literal[..literal.find('"').expect("closing quote")];
                let included = base.join(relative).canonicalize().unwrap_or_else(|e| {
                    panic!("{}: {relative}: {e}", path.display());
                });
                found.push((path.clone(), included));
            }
        }
    }
    found
}

#[test]
fn runtime_image_has_what_the_services_use() {
    let compose = Compose::load();
    let dockerfile = Dockerfile::load();
    let runtime = dockerfile.final_stage();
    let copies: Vec<_> = dockerfile
        .copies()
        .into_iter()
        .filter(|c| c.stage == runtime)
        .collect();
    let runs: String = dockerfile
        .in_stage(runtime, "RUN")
        .map(|r| r.args.clone())
        .collect::<Vec<_>>()
        .join("\n");

    let user = dockerfile
        .in_stage(runtime, "USER")
        .last()
        .map(|u| u.args.clone())
        .expect("the runtime image sets USER");
    let user_name = user.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0"].contains(&user_name),
        "the runtime image must not run as root: USER {user}"
    );
    assert!(
        runs.contains("useradd --uid 1000"),
        "the runtime user has uid 1000 (the usual owner of a bind-mounted ./runs)"
    );

    // Programs the compose services built from this image run: installed on PATH.
    let installed = |program: &str| {
        copies.iter().any(|c| {
            c.dest == format!("/usr/local/bin/{program}")
                || (c.dest == "/usr/local/bin/"
                    && c.sources
                        .iter()
                        .any(|s| Path::new(s).file_name() == Some(program.as_ref())))
        })
    };
    let mut programs = vec![
        compose.list("chat", "command")[0].clone(),
        compose.list("loadgen", "entrypoint")[0].clone(),
        "loadgen".to_string(),
    ];
    programs.push(dockerfile.exec_form("CMD").expect("the image has a CMD")[0].clone());
    for program in &programs {
        assert!(
            installed(program),
            "`{program}` is run in the image but not copied into /usr/local/bin"
        );
    }
    // Health checks of services built from this image use programs it installs.
    for name in compose.service_names() {
        if compose.service(&name).get("build").is_none()
            || compose.service(&name).get("healthcheck").is_none()
        {
            continue;
        }
        let program = healthcheck(&compose, &name)[0].clone();
        assert!(
            installed(&program)
                || (runs.contains("apt-get install")
                    && runs.split_whitespace().any(|w| w == program)),
            "services.{name}.healthcheck runs `{program}`, which the runtime image does not install"
        );
    }

    // The chat page: the web folder the workers are given, with the npm socket.io client.
    let (_, worker_args) = chat_command(&compose);
    let web_dir = worker_flag(&worker_args, "--web-dir");
    assert_eq!(
        dockerfile.env().get("CHAT_WEB_DIR"),
        Some(&web_dir),
        "the image's CHAT_WEB_DIR and the compose --web-dir agree"
    );
    assert!(
        copies
            .iter()
            .any(|c| c.from.is_none() && c.sources == ["web"] && c.dest == web_dir),
        "the runtime image copies web/ to {web_dir}"
    );
    let client = format!("{web_dir}/node_modules/socket.io-client/dist");
    assert!(
        copies
            .iter()
            .any(|c| c.from.as_deref() == Some("web") && c.dest == client),
        "the runtime image copies the socket.io client from the node stage to {client}"
    );
    let node = dockerfile.stage_named("web");
    assert!(
        dockerfile
            .in_stage(node, "RUN")
            .any(|r| r.args.contains("npm ci")),
        "the node stage installs web/'s pinned modules with npm ci"
    );

    // Scenarios and the results folder under the working directory.
    let workdir = dockerfile.workdir();
    assert!(
        copies
            .iter()
            .any(|c| c.sources == ["scenarios"] && c.dest == format!("{workdir}/scenarios")),
        "the runtime image copies scenarios/ to {workdir}/scenarios"
    );
    assert!(
        runs.contains(&format!("mkdir -p {workdir}/runs")),
        "the runtime image creates {workdir}/runs (loadgen's default output folder)"
    );
}

#[test]
fn chat_commands_are_real_subcommands() {
    let compose = Compose::load();
    let (cluster_args, worker_args) = chat_command(&compose);
    assert_eq!(cluster_args.first().map(String::as_str), Some("cluster"));
    let cluster_help = help_of(&cluster_args);
    assert!(
        cluster_help.contains("Usage: chat-server cluster"),
        "{cluster_help}"
    );
    let mut worker = vec!["worker".to_string()];
    worker.extend(worker_args.iter().cloned());
    let worker_help = help_of(&worker);

    // In a container the workers must listen on every interface, for nginx to reach them.
    let host: IpAddr = compose
        .command_flag("chat", "--host")
        .parse()
        .expect("--host is an address");
    assert!(
        host.is_unspecified(),
        "--host must be 0.0.0.0 in a container, not {host}"
    );
    let redis = compose.command_flag("chat", "--redis");
    assert_eq!(
        redis, "redis://redis:6379",
        "the workers use the redis service"
    );

    // Environment variables given to the chat service and baked into the image are read by
    // the cluster or its workers.
    let mut env_names: Vec<String> = compose.environment("chat").into_keys().collect();
    env_names.extend(Dockerfile::load().env().into_keys());
    for name in env_names {
        let marker = format!("[env: {name}=");
        assert!(
            cluster_help.contains(&marker) || worker_help.contains(&marker),
            "{name} is set for the chat service but neither `chat-server cluster` nor `worker` reads it"
        );
    }

    // The image's default command.
    let cmd = Dockerfile::load()
        .exec_form("CMD")
        .expect("the image has a CMD");
    assert_eq!(cmd[0], "chat-server");
    let help = help_of(&cmd[1..]);
    assert!(help.contains("Usage: chat-server"), "{help}");
}

/// curl's URL globbing for numeric ranges, `[001-12]` (zero-padded to the width of the
/// first number), which the chat health check uses to reach every worker.
fn curl_ranges(url: &str) -> Vec<String> {
    let Some(open) = url.find('[') else {
        return vec![url.to_string()];
    };
    assert!(
        !url.contains('{'),
        "curl sets are not understood here: {url}"
    );
    let close = open + url[open..].find(']').expect("closing ]");
    let (from, to) = url[open + 1..close]
        .split_once('-')
        .unwrap_or_else(|| panic!("not a numeric range: {url}"));
    let width = if from.starts_with('0') { from.len() } else { 0 };
    let (a, b): (u32, u32) = (
        from.parse().expect("range start"),
        to.parse().expect("range end"),
    );
    (a..=b)
        .flat_map(|n| curl_ranges(&format!("{}{n:0width$}{}", &url[..open], &url[close + 1..])))
        .collect()
}

#[test]
fn health_checks_cover_what_they_guard() {
    let compose = Compose::load();

    // Chat: every worker's /healthz, failing on the first one that is not healthy.
    let (workers, base) = chat_workers(&compose);
    let check = healthcheck(&compose, "chat");
    assert_eq!(check[0], "curl", "{check:?}");
    assert!(
        check.contains(&"--fail-early".to_string())
            && check
                .iter()
                .any(|a| a == "-f" || a == "--fail" || a == "-fsS"),
        "curl over several URLs reports only the last one's status without -f and --fail-early: {check:?}"
    );
    let urls = curl_ranges(check.last().expect("url"));
    let expected: Vec<String> = (0..workers)
        .map(|i| format!("http://127.0.0.1:{}/healthz", base + i))
        .collect();
    assert_eq!(
        urls, expected,
        "the chat health check must reach every worker"
    );

    // nginx: its own listen port, proxied to a worker's /healthz.
    let check = healthcheck(&compose, "nginx");
    assert_eq!(check[0], "curl");
    assert!(check.iter().any(|a| a == "-f" || a == "-fsS"), "{check:?}");
    assert_eq!(
        check.last().map(String::as_str),
        Some(format!("http://127.0.0.1:{}/healthz", nginx_port(&compose)).as_str())
    );

    let check = healthcheck(&compose, "redis");
    assert_eq!(check, ["redis-cli", "ping"]);
}

/// A scratch folder for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("roomstorm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the nginx-config service's command as compose would with CHAT_WORKERS set to
/// `workers` (None: unset), its output moved into `dir`. Returns the compose file as seen with
/// that variable, and the config written.
fn compose_render(workers: Option<u16>, dir: &Path) -> (Compose, String) {
    let compose = match workers {
        None => Compose::load(),
        Some(n) => Compose::load_with(&[("CHAT_WORKERS", &n.to_string())]),
    };
    let command = compose.list(RENDER, "command");
    assert_eq!(
        command[..2],
        ["chat-server", "nginx-config"],
        "services.{RENDER}.command renders with the image's chat-server"
    );
    let output = compose.command_flag(RENDER, "--output");
    let local = dir.join("nginx.conf");
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| match a == &output {
            true => local.display().to_string(),
            false => a.clone(),
        })
        .collect();
    let result = run(server_exe(), &args);
    assert!(
        result.status.success(),
        "services.{RENDER}.command fails: chat-server {}\n{}",
        args.join(" "),
        text(&result)
    );
    let conf = std::fs::read_to_string(&local).expect("the rendered config");
    (compose, conf)
}

/// The `server host:port` entries of the config's upstream block.
fn upstream_servers(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("upstream "))
        .take_while(|line| *line != "}")
        .filter_map(|line| line.strip_prefix("server "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn nginx_routes_to_every_worker_the_cluster_starts() {
    let scratch = Scratch::new("compose-render");
    for workers in [None, Some(1), Some(2), Some(5), Some(12)] {
        let (compose, conf) = compose_render(workers, &scratch.0);
        let (count, base) = chat_workers(&compose);
        if let Some(n) = workers {
            assert_eq!(count, n, "CHAT_WORKERS={n} sets the cluster's --workers");
        }
        let expected: Vec<String> = (0..count).map(|i| format!("chat:{}", base + i)).collect();
        assert_eq!(
            upstream_servers(&conf),
            expected,
            "with CHAT_WORKERS={workers:?}, nginx must route to exactly the cluster's workers"
        );
        let health = curl_ranges(healthcheck(&compose, "chat").last().expect("url"));
        assert_eq!(
            health.len(),
            usize::from(count),
            "with CHAT_WORKERS={workers:?}, the chat health check must reach every worker"
        );
        assert!(conf.contains("ip_hash;"));
        assert!(conf.contains(&format!("set_real_ip_from {};", compose.subnet())));
        assert!(conf.contains(&format!("listen {} ", nginx_port(&compose))));
    }
}

#[test]
fn nginx_reads_the_config_that_nginx_config_writes() {
    let compose = Compose::load();
    let output = PathBuf::from(compose.command_flag(RENDER, "--output"));
    let out_dir = output
        .parent()
        .expect("--output has a folder")
        .to_string_lossy();
    let written = compose.named_volumes(RENDER);
    let (volume, _) = written
        .iter()
        .find(|(_, target)| *target == out_dir)
        .unwrap_or_else(|| {
            panic!("services.{RENDER} writes into {out_dir}, which is no named volume: {written:?}")
        });
    let read = compose.named_volumes("nginx");
    let (_, nginx_dir) = read
        .iter()
        .find(|(name, _)| name == volume)
        .unwrap_or_else(|| panic!("services.nginx does not mount the volume `{volume}`: {read:?}"));
    let command = compose.list("nginx", "command");
    let config = command
        .iter()
        .position(|a| a == "-c")
        .map_or("/etc/nginx/nginx.conf", |at| command[at + 1].as_str());
    let file = output.file_name().expect("file name").to_string_lossy();
    assert_eq!(
        config,
        format!("{nginx_dir}/{file}"),
        "nginx must read the config {RENDER} writes"
    );

    // The renderer runs as the image's non-root user: a fresh named volume takes the owner of
    // the image's folder at the mount point, so the image must create it for that user.
    let dockerfile = Dockerfile::load();
    let runtime = dockerfile.final_stage();
    let user = dockerfile
        .in_stage(runtime, "USER")
        .last()
        .map(|u| u.args.clone())
        .expect("the runtime image sets USER");
    let owned = dockerfile.in_stage(runtime, "RUN").any(|r| {
        r.args.split("&&").any(|command| {
            let words: Vec<&str> = command.split_whitespace().collect();
            words.first() == Some(&"chown")
                && words
                    .iter()
                    .any(|w| w.split(':').next() == Some(user.as_str()))
                && words.contains(&out_dir.as_ref())
        })
    });
    assert!(
        owned,
        "the runtime image must create {out_dir} owned by {user}, or {RENDER} cannot write the volume"
    );
}

fn require(program: &str, package: &str) -> PathBuf {
    chat_server::process::find_executable(program).unwrap_or_else(|| {
        panic!(
            "{program} is not installed; this test needs it: apt-get install -y {package} \
             (scripts/test installs it)"
        )
    })
}

#[test]
fn compose_nginx_config_passes_nginx_t() {
    let nginx = require("nginx", "nginx");
    let scratch = Scratch::new("compose-nginx");
    let (compose, mut conf) = compose_render(None, &scratch.0);

    // Compose host names resolve only inside the compose network: map them to loopback.
    for service in compose.service_names() {
        conf = conf.replace(&format!("server {service}:"), "server 127.0.0.1:");
    }
    for line in conf.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("server ")
            && let Some((host, _)) = rest.split_once(':')
        {
            assert!(
                host.parse::<IpAddr>().is_ok(),
                "upstream `{line}` names a host that is not a compose service"
            );
        }
    }

    // In the container the temp paths live on the nginx service's tmpfs (nginx creates only the
    // last folder of each); here a fresh folder stands in for each tmpfs.
    let dir = &scratch.0;
    let tmpfs = compose.list("nginx", "tmpfs");
    for line in conf.clone().lines().map(str::trim) {
        let Some((directive, path)) = line.split_once(' ') else {
            continue;
        };
        if !directive.ends_with("_temp_path") {
            continue;
        }
        let path = path.trim_end_matches(';');
        let parent = Path::new(path).parent().expect("parent").to_string_lossy();
        assert!(
            tmpfs.iter().any(|t| t == &parent),
            "{directive} {path}: nginx does not create {parent}; mount a tmpfs there (services.nginx.tmpfs: {tmpfs:?})"
        );
    }
    for (i, mount) in tmpfs.iter().enumerate() {
        let stand_in = dir.join(format!("tmpfs-{i}"));
        std::fs::create_dir_all(&stand_in).expect("tmpfs stand-in");
        conf = conf.replace(&format!("{mount}/"), &format!("{}/", stand_in.display()));
    }
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, &conf).expect("write config");

    // The compose command itself, with the config path swapped and -t added.
    let command = compose.list("nginx", "command");
    assert_eq!(command[0], "nginx");
    let mut args: Vec<String> = command[1..].to_vec();
    let at = args.iter().position(|a| a == "-c").expect("nginx -c");
    args[at + 1] = conf_path.display().to_string();
    args.push("-t".into());
    let output = run(&nginx, &args);
    assert!(
        output.status.success(),
        "nginx -t refuses the config {RENDER} renders (compose names mapped to 127.0.0.1):\n{}",
        text(&output)
    );
}

#[test]
fn redis_accepts_the_compose_arguments() {
    let redis = require("redis-server", "redis-server");
    let compose = Compose::load();
    let command = compose.list("redis", "command");
    assert_eq!(command[0], "redis-server");
    // No TCP port (a private unix socket instead): only the arguments and start-up are
    // exercised.
    let dir = std::env::temp_dir().join(format!("roomstorm-compose-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut child = Command::new(&redis)
        .args(&command[1..])
        .args(["--port", "0", "--daemonize", "no", "--dir"])
        .arg(&dir)
        .arg("--unixsocket")
        .arg(dir.join("redis.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start redis-server");
    let deadline = Instant::now() + Duration::from_millis(800);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            panic!(
                "redis-server refuses the compose arguments {:?} ({status}):\n{}",
                &command[1..],
                text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
