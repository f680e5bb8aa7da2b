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

/// Ports this process has handed out: stacks started side by side (tests run in parallel)
/// must not pick the same free port before either has bound it.
pub fn reserve(ports: &[u16]) -> bool {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if ports.iter().any(|p| taken.contains(p)) {
        return false;
    }
    taken.extend_from_slice(ports);
    true
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
