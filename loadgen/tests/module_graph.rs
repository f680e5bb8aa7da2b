//! Inside each crate of the workspace, calls go one way: no module uses a module that (directly
//! or through others) uses it. A newcomer can then read a crate bottom-up, and a change to a
//! low module cannot need a change above it to compile. This test reads every crate's sources
//! and fails, naming the cycle, when a `crate::` or `super::` path closes a loop.
//!
//! Granularity: a module is a source file (`a/b.rs` and `a/b/mod.rs` are `a::b`); a path names
//! the deepest module it reaches (`crate::a::b::Item` → `a::b`, else `a`). A module using its own
//! parent's items is an edge like any other. Test modules (`tests.rs`, `*_tests.rs`, and
//! everything after a `#[cfg(test)]` line) are left out: they look at everything by design.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 6] = [
    "server", "loadgen", "results", "reports", "client", "protocol",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `a/b.rs` or `a/b/mod.rs` under `src` → `["a", "b"]`; the crate roots → `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(file: &Path) -> bool {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The code of a file before its first `#[cfg(test)]` line, without line comments.
fn non_test_code(text: &str) -> String {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers of a path starting at `at` (`a::b::{c, d}` → `[a, b]`): stops at the first
/// character that is not an identifier or `::`.
fn path_segments(text: &str) -> Vec<String> {
    let mut segments = Vec::new();
    for segment in text.split("::") {
        let ident: String = segment
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        let complete = ident.len() == segment.len();
        segments.push(ident);
        if !complete {
            break;
        }
    }
    segments
}

/// The deepest known module that `segments` (from the crate root) reaches.
fn resolve(modules: &BTreeSet<Vec<String>>, segments: &[String]) -> Option<Vec<String>> {
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].to_vec())
        .find(|candidate| modules.contains(candidate))
}

/// For one crate: module → the modules it uses.
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.retain(|f| !is_test_file(f));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(src, file);
        let text = std::fs::read_to_string(file).expect("readable source");
        let code = non_test_code(&text);
        let uses = edges.entry(from.clone()).or_default();
        for (marker, base) in [("crate::", Vec::new()), ("super::", parent_of(&from, file))] {
            for (i, _) in code.match_indices(marker) {
                let before = code[..i].chars().last();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    continue; // `$crate::`, `a::super::`: not ours
                }
                let mut segments = base.clone();
                segments.extend(path_segments(&code[i + marker.len()..]));
                if let Some(to) = resolve(&modules, &segments)
                    && to != from
                    && !to.is_empty()
                {
                    uses.insert(to);
                }
            }
        }
    }
    edges
}

/// The module `super::` refers to from `module` (defined in `file`).
fn parent_of(module: &[String], _file: &Path) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    start: &Vec<String>,
) -> Option<Vec<Vec<String>>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in edges.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

#[test]
fn calls_go_one_way_inside_every_crate() {
    let mut cycles = Vec::new();
    for krate in CRATES {
        let edges = graph(&workspace().join(krate).join("src"));
        assert!(!edges.is_empty(), "{krate}: no sources found");
        let mut reported: BTreeSet<BTreeSet<Vec<String>>> = BTreeSet::new();
        for module in edges.keys() {
            if let Some(cycle) = cycle_from(&edges, module)
                && reported.insert(cycle.iter().cloned().collect())
            {
                let names: Vec<String> = cycle.iter().map(|m| name(m)).collect();
                cycles.push(format!("{krate}: {}", names.join(" -> ")));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that use each other (calls must go one way):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_reader_of_paths_understands_the_forms_we_write() {
    assert_eq!(path_segments("a::b::{c, d}"), ["a", "b"]);
    assert_eq!(path_segments("a::B;"), ["a", "B"]);
    assert_eq!(
        path_segments("measure::ledger::Leave"),
        ["measure", "ledger", "Leave"]
    );
    let modules: BTreeSet<Vec<String>> = [vec!["a".to_owned()], vec!["a".into(), "b".into()]]
        .into_iter()
        .collect();
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        resolve(&modules, &path(&["a", "b", "C"])),
        Some(path(&["a", "b"]))
    );
    assert_eq!(resolve(&modules, &path(&["a", "x"])), Some(path(&["a"])));
    assert_eq!(resolve(&modules, &path(&["z"])), None);
    assert_eq!(
        non_test_code("use x; // crate::y\n#[cfg(test)]\nuse crate::z;"),
        "use x; "
    );
}
