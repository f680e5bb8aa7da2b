//! Free loopback ports for the processes the stack starts, reserved inside this process so that
//! stacks started side by side (tests run in parallel) never pick the same one.
//!
//! Its own module because the stack and its Redis Cluster both take ports.

use std::net::{SocketAddr, TcpListener};

use anyhow::bail;

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if reserve(&[port]) {
            return Ok(port);
        }
    }
    bail!("no free port found")
}

/// Ports handed out: stacks started side by side must not pick the same free port before
/// either has bound it, whether they are in this process (tests run in parallel) or in
/// another (several `loadgen run`s at once, each starting its stack: a worker that lost its
/// port to another stack's worker left nginx routing to that one, whose `/healthz` answered).
/// A port stays reserved while the process that reserved it lives.
pub fn reserve(ports: &[u16]) -> bool {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if ports.iter().any(|p| taken.contains(p)) {
        return false;
    }
    let mut claimed = Vec::new();
    for &port in ports {
        if !claims::claim(port) {
            claimed.iter().for_each(|&p| claims::release(p));
            return false;
        }
        claimed.push(port);
    }
    taken.extend_from_slice(ports);
    true
}

/// Reservations between processes: a file per port under the temp folder, holding the pid
/// that reserved it, created whole or not at all (a hard link of a finished file). A file
/// whose process is gone is taken over.
mod claims {
    use std::path::PathBuf;

    fn folder() -> PathBuf {
        std::env::temp_dir().join("roomstorm-ports")
    }

    /// True when this process now holds `port`. Where the folder cannot be written, only this
    /// process's own reservations count (true).
    pub(super) fn claim(port: u16) -> bool {
        let dir = folder();
        if std::fs::create_dir_all(&dir).is_err() {
            return true;
        }
        let me = std::process::id();
        let path = dir.join(port.to_string());
        let draft = dir.join(format!(".{port}.{me}"));
        if std::fs::write(&draft, me.to_string()).is_err() {
            return true;
        }
        let mut held = false;
        for _ in 0..2 {
            if std::fs::hard_link(&draft, &path).is_ok() {
                held = true;
                break;
            }
            match owner(&path) {
                Some(pid) if pid == me => {
                    held = true;
                    break;
                }
                Some(pid) if !alive(pid) => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => break,
            }
        }
        let _ = std::fs::remove_file(&draft);
        held
    }

    /// Gives back a port claimed by this process (when the rest of its range was not free).
    pub(super) fn release(port: u16) {
        let path = folder().join(port.to_string());
        if owner(&path) == Some(std::process::id()) {
            let _ = std::fs::remove_file(path);
        }
    }

    fn owner(path: &std::path::Path) -> Option<u32> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    fn alive(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
}

pub fn resolve_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    Ok(SocketAddr::new(addr.ip(), free_port()?))
}

/// `count` consecutive free ports below the ephemeral range (workers take base..base+count).
pub fn free_port_range(count: usize) -> anyhow::Result<u16> {
    let seed = (std::process::id() as usize).wrapping_mul(7919) + unique_suffix() as usize;
    for attempt in 0..200 {
        let base = 20_000 + (seed + attempt * 97) % 10_000;
        let ports: Vec<u16> = (0..count).map(|i| (base + i) as u16).collect();
        let all_free = ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
        if all_free && reserve(&ports) {
            return Ok(base as u16);
        }
    }
    bail!("no {count} consecutive free ports found in 20000-30000")
}

pub fn unique_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    nanos.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A free port `p` whose cluster bus port `p + 10000` is free too (Redis Cluster listens on
/// both), below the ephemeral range so neither collides with outgoing connections.
pub fn free_cluster_port() -> anyhow::Result<u16> {
    let seed = (std::process::id() as usize).wrapping_mul(7919) + unique_suffix() as usize;
    for attempt in 0..400 {
        let port = 11_000 + (seed + attempt * 131) % 9_000;
        let pair = [port as u16, (port + 10_000) as u16];
        let all_free = pair
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
        if all_free && reserve(&pair) {
            return Ok(pair[0]);
        }
    }
    bail!("no free port pair (p, p + 10000) found in 11000-30000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_claimed_by_a_live_process_is_refused_and_a_dead_ones_is_taken_over() {
        let port = free_port().expect("a port");
        // This process holds it: claiming again is fine, another live pid's is refused.
        assert!(claims::claim(port));
        let path = std::env::temp_dir()
            .join("roomstorm-ports")
            .join(port.to_string());
        std::fs::write(&path, "1").expect("pid 1 takes it over");
        assert!(!claims::claim(port), "pid 1 is alive and holds it");
        // A pid that cannot be running (above the kernel's pid_max).
        std::fs::write(&path, "4194305").expect("a dead owner");
        assert!(claims::claim(port), "a dead process's port is taken over");
        assert_eq!(
            std::fs::read_to_string(&path).expect("claimed").trim(),
            std::process::id().to_string()
        );
    }
}
