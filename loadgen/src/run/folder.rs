//! Where a run writes: `--out`, or `runs/<scenario>-<time>` (the same name for every part of a
//! run across hosts, which all know its common start).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;

use crate::results;

/// `out`, or `runs/<scenario>-<at, to the second>`; created.
pub(super) fn run_folder(
    out: Option<&Path>,
    scenario: &str,
    at: SystemTime,
) -> anyhow::Result<PathBuf> {
    let dir = match out {
        Some(dir) => dir.to_path_buf(),
        None => {
            let stamp = results::rfc3339(at).replace([':', '-'], "");
            PathBuf::from("runs").join(format!("{scenario}-{}", &stamp[..15.min(stamp.len())]))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
