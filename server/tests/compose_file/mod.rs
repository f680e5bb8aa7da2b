//! Reads docker-compose.yml, the Dockerfile and .dockerignore the way Docker would, for the
//! tests that check them in seconds without a Docker engine (scripts/test-docker uses a real one):
//! server/tests/compose.rs and loadgen/tests/compose_cmd.rs, which includes this file by path.
//!
//! Only what our files use is understood; anything else fails loudly rather than being
//! skipped, so a construct these tests cannot see through is noticed.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// The repository root (both including crates sit one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

pub fn read_repo_file(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// docker-compose.yml with its variables replaced by their defaults: what `docker compose up`
/// sees on a machine where none of them is set.
pub struct Compose {
    pub doc: Value,
}

impl Compose {
    pub fn load() -> Compose {
        Compose::load_with(&[])
    }

    /// docker-compose.yml as compose sees it with these variables set (the others unset).
    pub fn load_with(vars: &[(&str, &str)]) -> Compose {
        let text = read_repo_file("docker-compose.yml");
        let raw: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("docker-compose.yml is not valid YAML: {e}"));
        let doc = interpolate_value(&raw, vars)
            .unwrap_or_else(|e| panic!("docker-compose.yml interpolation: {e}"));
        Compose { doc }
    }

    pub fn service_names(&self) -> Vec<String> {
        self.doc
            .get("services")
            .and_then(Value::as_mapping)
            .expect("docker-compose.yml has a `services` mapping")
            .keys()
            .map(|k| k.as_str().expect("service names are strings").to_string())
            .collect()
    }

    pub fn service(&self, name: &str) -> &Value {
        self.doc
            .get("services")
            .and_then(|s| s.get(name))
            .unwrap_or_else(|| panic!("docker-compose.yml has no service `{name}`"))
    }

    /// A list-valued key of a service (`command`, `entrypoint`, `profiles`, `tmpfs`,
    /// `volumes`...); the list form is required so the tests see exactly what runs.
    pub fn list(&self, service: &str, key: &str) -> Vec<String> {
        match self.service(service).get(key) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items.iter().map(scalar).collect(),
            Some(other) => panic!("services.{service}.{key} must be a list, not {other:?}"),
        }
    }

    /// `environment` as a map (mapping or `KEY=VALUE` list form).
    pub fn environment(&self, service: &str) -> BTreeMap<String, String> {
        match self.service(service).get("environment") {
            None => BTreeMap::new(),
            Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|item| {
                    let item = scalar(item);
                    let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            Some(other) => panic!("services.{service}.environment: unexpected {other:?}"),
        }
    }

    /// The value following `flag` in a service's command.
    pub fn command_flag(&self, service: &str, flag: &str) -> String {
        let command = self.list(service, "command");
        let at = command
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("services.{service}.command has no {flag}: {command:?}"));
        command
            .get(at + 1)
            .unwrap_or_else(|| panic!("services.{service}.command: {flag} has no value"))
            .clone()
    }

    /// The bind mounts of a service: (host path relative to the repository, container path).
    pub fn bind_mounts(&self, service: &str) -> Vec<(String, String)> {
        self.volumes(service, false)
    }

    /// The named volumes of a service: (volume name, container path). Each must be declared
    /// under the top-level `volumes`.
    pub fn named_volumes(&self, service: &str) -> Vec<(String, String)> {
        self.volumes(service, true)
    }

    /// A service's volumes of one kind: named ones, or bind mounts (a path for a source).
    fn volumes(&self, service: &str, named: bool) -> Vec<(String, String)> {
        self.list(service, "volumes")
            .iter()
            .filter_map(|volume| {
                let mut parts = volume.split(':');
                let source = parts.next()?;
                let target = parts
                    .next()
                    .unwrap_or_else(|| panic!("volume `{volume}` has no target"));
                let is_path = source.starts_with('.') || source.starts_with('/');
                (is_path != named).then(|| (source.to_string(), target.to_string()))
            })
            .collect()
    }

    /// Whether the top-level `volumes` declares this one.
    pub fn declares_volume(&self, name: &str) -> bool {
        self.doc.get("volumes").and_then(|v| v.get(name)).is_some()
    }

    /// The default network's pinned subnet.
    pub fn subnet(&self) -> String {
        self.doc
            .get("networks")
            .and_then(|n| n.get("default"))
            .and_then(|n| n.get("ipam"))
            .and_then(|n| n.get("config"))
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("subnet"))
            .map(scalar)
            .expect("docker-compose.yml pins networks.default.ipam.config[0].subnet")
    }
}

/// A YAML scalar as compose reads it (numbers and booleans as their text).
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

fn interpolate_value(value: &Value, vars: &[(&str, &str)]) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(interpolate_with(s, vars)?),
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .map(|item| interpolate_value(item, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(map) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, v) in map {
                out.insert(k.clone(), interpolate_value(v, vars)?);
            }
            Value::Mapping(out)
        }
        other => other.clone(),
    })
}

/// Compose variable interpolation with every variable unset: `${VAR:-default}` and
/// `${VAR-default}` give the default, `$$` a dollar sign. A variable without a default is an
/// error: a first run must not depend on something the user has to guess.
pub fn interpolate(text: &str) -> Result<String, String> {
    interpolate_with(text, &[])
}

/// Interpolation with these variables set (non-empty) and every other one unset.
pub fn interpolate_with(text: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in `{text}`"))?;
            let expr = &inner[..end];
            let name_end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            let set = vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
            if let Some(alternative) = op.strip_prefix(":+").or_else(|| op.strip_prefix('+')) {
                // Set: the alternative; unset: nothing.
                if set.is_some() {
                    out.push_str(alternative);
                }
            } else if let Some(value) = set {
                out.push_str(value);
            } else if let Some(default) = op.strip_prefix(":-").or_else(|| op.strip_prefix('-')) {
                out.push_str(default);
            } else {
                return Err(format!(
                    "${{{expr}}} in `{text}` has no default (write ${{{name}:-...}})"
                ));
            }
            rest = &inner[end + 1..];
        } else {
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            return Err(format!(
                "${} in `{text}` has no default (write ${{{}:-...}})",
                &after[..name_end],
                &after[..name_end]
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One instruction, continuation lines joined and comment lines dropped.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// Index of the build stage (FROM) it belongs to.
    pub stage: usize,
    /// Upper-case keyword: FROM, COPY, RUN...
    pub keyword: String,
    pub args: String,
    /// 1-based line of its first line.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub image: String,
    pub name: Option<String>,
}

pub struct Dockerfile {
    pub instructions: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// A COPY instruction taken apart.
#[derive(Debug, Clone)]
pub struct Copy {
    pub stage: usize,
    pub from: Option<String>,
    pub sources: Vec<String>,
    pub dest: String,
    pub line: usize,
}

impl Dockerfile {
    pub fn load() -> Dockerfile {
        Dockerfile::parse(&read_repo_file("Dockerfile"))
    }

    pub fn parse(text: &str) -> Dockerfile {
        let mut instructions = Vec::new();
        let mut stages = Vec::new();
        let mut current: Option<(usize, String)> = None;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (current.is_none() && trimmed.is_empty()) {
                continue;
            }
            let (start, mut joined) = current.take().unwrap_or((index + 1, String::new()));
            let continued = trimmed.ends_with('\\');
            joined.push_str(trimmed.trim_end_matches('\\').trim());
            joined.push(' ');
            if continued {
                current = Some((start, joined));
                continue;
            }
            let joined = joined.trim().to_string();
            let (keyword, args) = joined.split_once(' ').unwrap_or((&joined, ""));
            let keyword = keyword.to_ascii_uppercase();
            if keyword == "FROM" {
                let words: Vec<&str> = args.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                    [_] => None,
                    _ => panic!("Dockerfile:{start}: unexpected FROM {args}"),
                };
                stages.push(Stage {
                    image: words[0].to_string(),
                    name,
                });
            }
            instructions.push(Instruction {
                stage: stages.len().saturating_sub(1),
                keyword,
                args: args.trim().to_string(),
                line: start,
            });
        }
        assert!(current.is_none(), "Dockerfile ends inside a continued line");
        Dockerfile {
            instructions,
            stages,
        }
    }

    pub fn stage_named(&self, name: &str) -> usize {
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("Dockerfile has no stage `{name}`"))
    }

    /// The last stage: the image that compose runs.
    pub fn final_stage(&self) -> usize {
        self.stages.len() - 1
    }

    pub fn in_stage<'a>(
        &'a self,
        stage: usize,
        keyword: &'a str,
    ) -> impl Iterator<Item = &'a Instruction> + 'a {
        self.instructions
            .iter()
            .filter(move |i| i.stage == stage && i.keyword == keyword)
    }

    pub fn copies(&self) -> Vec<Copy> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == "COPY")
            .map(|i| {
                assert!(
                    !i.args.starts_with('['),
                    "Dockerfile:{}: use the plain COPY form",
                    i.line
                );
                let mut from = None;
                let mut paths = Vec::new();
                for word in i.args.split_whitespace() {
                    if let Some(stage) = word.strip_prefix("--from=") {
                        from = Some(stage.to_string());
                    } else if word.starts_with("--") {
                        // --chown, --chmod, --link: no effect on what is copied.
                    } else {
                        paths.push(word.to_string());
                    }
                }
                let dest = paths
                    .pop()
                    .unwrap_or_else(|| panic!("Dockerfile:{}: COPY without paths", i.line));
                assert!(
                    !paths.is_empty(),
                    "Dockerfile:{}: COPY without a source",
                    i.line
                );
                Copy {
                    stage: i.stage,
                    from,
                    sources: paths,
                    dest,
                    line: i.line,
                }
            })
            .collect()
    }

    /// The exec form (JSON array) of the final stage's `keyword` (CMD, ENTRYPOINT).
    pub fn exec_form(&self, keyword: &str) -> Option<Vec<String>> {
        let last = self.in_stage(self.final_stage(), keyword).last()?;
        Some(serde_json::from_str(&last.args).unwrap_or_else(|e| {
            panic!(
                "Dockerfile:{}: {keyword} must use the exec form (a JSON array): {e}",
                last.line
            )
        }))
    }

    /// `ENV K=V ...` of the final stage.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.in_stage(self.final_stage(), "ENV")
            .flat_map(|i| {
                i.args
                    .split_whitespace()
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or_else(|| {
                            panic!("Dockerfile:{}: write ENV KEY=VALUE", i.line)
                        });
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The final stage's WORKDIR (the folder compose runs commands in).
    pub fn workdir(&self) -> String {
        self.in_stage(self.final_stage(), "WORKDIR")
            .last()
            .map(|i| i.args.clone())
            .expect("the runtime stage sets WORKDIR")
    }
}

// ---------------------------------------------------------------------------------------------
// .dockerignore

/// The patterns of .dockerignore (cleaned like Docker does: no trailing slash).
pub fn dockerignore() -> Vec<String> {
    read_repo_file(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            assert!(
                !l.starts_with('!'),
                ".dockerignore exceptions (!{l}) are not understood by these tests"
            );
            l.trim_start_matches("./").trim_end_matches('/').to_string()
        })
        .collect()
}

/// Whether the context path `path` (relative, `/`-separated) is left out of the build context
/// by `patterns`: a pattern matching the path or any of its parent folders excludes it.
pub fn ignored(path: &str, patterns: &[String]) -> Option<String> {
    let segments: Vec<&str> = path
        .trim_start_matches("./")
        .trim_end_matches('/')
        .split('/')
        .collect();
    (1..=segments.len()).find_map(|n| {
        let prefix = &segments[..n];
        patterns.iter().find_map(|pattern| {
            let pattern_segments: Vec<&str> = pattern.split('/').collect();
            glob_segments(&pattern_segments, prefix).then(|| pattern.clone())
        })
    })
}

fn glob_segments(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            glob_segments(&pattern[1..], path)
                || (!path.is_empty() && glob_segments(pattern, &path[1..]))
        }
        (Some(p), Some(s)) => {
            glob_one(p.as_bytes(), s.as_bytes()) && glob_segments(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

/// `*` and `?` within one path segment.
fn glob_one(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_one(&pattern[1..], text) || (!text.is_empty() && glob_one(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob_one(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) => p == t && glob_one(&pattern[1..], &text[1..]),
        _ => false,
    }
}

#[test]
fn dockerignore_matching() {
    let patterns = vec![
        "target".to_string(),
        "**/node_modules".to_string(),
        "*.swp".to_string(),
    ];
    assert_eq!(
        ignored("target/release/x", &patterns).as_deref(),
        Some("target")
    );
    assert_eq!(
        ignored("web/node_modules/a", &patterns).as_deref(),
        Some("**/node_modules")
    );
    assert_eq!(
        ignored("node_modules", &patterns).as_deref(),
        Some("**/node_modules")
    );
    assert_eq!(ignored("server/src/main.rs", &patterns), None);
    assert_eq!(ignored("a.swp", &patterns).as_deref(), Some("*.swp"));
    assert_eq!(ignored("web/a.swp", &patterns), None);
}

#[test]
fn interpolation() {
    assert_eq!(interpolate("${A:-2}x${B-y}$$").unwrap(), "2xy$");
    assert_eq!(interpolate("6[001-${N:-2}]").unwrap(), "6[001-2]");
    assert!(interpolate("${A}").is_err());
    assert!(interpolate("$A").is_err());
    assert_eq!(
        interpolate_with("6[001-${N:-2}]", &[("N", "5")]).unwrap(),
        "6[001-5]"
    );
}
