//! Where a run ran: host, cores, OS and source revision, probed from `/proc`, the
//! environment and `git`, so that a results file says what machine produced it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where the run ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Host name; after a merge, the distinct hosts joined by `,`.
    pub host: String,
    /// Cores available to the process; after a merge, summed over distinct hosts.
    pub cores: u32,
    /// Operating system; after a merge, the distinct values joined by `,` (so do the next two).
    pub os: String,
    pub loadgen_version: String,
    /// `git rev-parse --short HEAD` of the loadgen source, or `unknown`.
    pub git_revision: String,
    /// Cores by host name: what `host` and `cores` are computed from after a merge, so that
    /// merging merged results stays exact.
    #[serde(default)]
    pub machines: BTreeMap<String, u32>,
}

impl Environment {
    /// Reads this machine's environment.
    pub fn detect() -> Environment {
        Environment::of_machine(
            hostname(),
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            os_description(),
            git_revision(),
        )
    }

    /// The environment of one process on `host`.
    pub fn of_machine(host: String, cores: u32, os: String, git_revision: String) -> Environment {
        Environment {
            machines: BTreeMap::from([(host.clone(), cores)]),
            host,
            cores,
            os,
            // The workspace's version: this crate and loadgen share it (`version.workspace`).
            loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision,
        }
    }

    /// `machines`, or for a record without it, its own host and cores.
    pub(crate) fn machines(&self) -> BTreeMap<String, u32> {
        if self.machines.is_empty() {
            BTreeMap::from([(self.host.clone(), self.cores)])
        } else {
            self.machines.clone()
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// E.g. `linux 6.1.0-25-amd64 x86_64`.
fn os_description() -> String {
    let release = read_trimmed("/proc/sys/kernel/osrelease");
    let parts = [
        Some(std::env::consts::OS.to_owned()),
        release,
        Some(std::env::consts::ARCH.to_owned()),
    ];
    parts.into_iter().flatten().collect::<Vec<_>>().join(" ")
}

/// The revision of the source this binary was built from when that checkout still exists,
/// else of the working directory, else `unknown`.
fn git_revision() -> String {
    let dirs = [
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()),
        std::env::current_dir().ok(),
    ];
    dirs.into_iter()
        .flatten()
        .find_map(|dir| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(dir)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            let rev = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !rev.trim().is_empty()).then(|| rev.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_environment() {
        let env = Environment::detect();
        assert!(!env.host.is_empty());
        assert!(env.cores >= 1);
        assert!(env.os.starts_with(std::env::consts::OS));
        assert_eq!(env.loadgen_version, env!("CARGO_PKG_VERSION"));
        assert!(!env.git_revision.is_empty());
    }
}
