//! Test hosts on one machine: Linux network namespaces, each joined to the root namespace by a
//! veth pair, with addresses of its own.
//!
//! Why: a run "from several hosts" must come from several real source addresses (nginx's
//! `ip_hash` hashes the first three octets of the TCP peer), and a network fault between hosts
//! needs a link that can be cut. A [`NetHost`] is one such host: the namespace, a veth pair
//! whose root end has `A.B.C.1/24` and whose inner end has `A.B.C.2/24` (each host its own
//! /24), loopback up. A process started with [`NetHost::command`] sees only that network and
//! reaches the root namespace's listeners (those on `0.0.0.0` or on the root end's address) at
//! [`NetHost::gateway`]. [`NetHost::cut`] and [`NetHost::restore`] take the link down and up.
//!
//! Needs root and `ip` (iproute2). Names are unique per process (`rs<pid>x<n>`), so concurrent
//! test runs never share a namespace; everything is removed on drop, and namespaces left by a
//! process that died without dropping them (SIGKILL) are removed by the next [`NetHost::create`].
//! Creation is serialized across processes by a lock file, so two runs never pick one /24.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

use crate::process::tied_command;
use crate::stack::require;

/// Where [`NetHost::create`] looks for free /24s: 10.240.0.0/12's upper part, far from the
/// addresses Docker and common LANs use.
const POOL_SECOND_OCTETS: std::ops::RangeInclusive<u8> = 240..=250;

/// Serializes namespace creation between processes (the /24 chosen, then taken).
const LOCK_FILE: &str = "/tmp/roomstorm-netns.lock";

/// The prefix of every namespace this module makes: `rs<pid>x<n>`.
const PREFIX: &str = "rs";

/// One network namespace with a veth link to the root namespace; removed on drop.
#[derive(Debug)]
pub struct NetHost {
    name: String,
    subnet: [u8; 3],
}

impl NetHost {
    /// A host on the first free /24 of the module's pool (10.240-250.x.0/24).
    pub fn create() -> anyhow::Result<NetHost> {
        let pool = POOL_SECOND_OCTETS.flat_map(|b| (0..=255u8).map(move |c| [10, b, c]));
        Self::create_in(pool)
    }

    /// A host on the first of `candidates` (the first three octets of a /24) that no address
    /// of the root namespace is in.
    pub fn create_in(candidates: impl IntoIterator<Item = [u8; 3]>) -> anyhow::Result<NetHost> {
        require("ip", "iproute2")?;
        require_root()?;
        let _lock = Lock::take()?;
        remove_orphans();
        let taken = root_subnets()?;
        let subnet = candidates
            .into_iter()
            .find(|c| !taken.contains(c))
            .context("no free /24 among the candidates for a network namespace")?;
        let host = NetHost {
            name: unique_name(),
            subnet,
        };
        // From here on, a failure drops `host`, which removes what was made.
        host.set_up()?;
        Ok(host)
    }

    /// The namespace's name (`ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's own address, inside the namespace: what its peers see as the source.
    pub fn address(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 2)
    }

    /// The root namespace's end of the link: where the host reaches the machine's listeners.
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// `program` to be run inside the namespace (`ip netns exec NAME program`); like every
    /// process the stack starts, it gets SIGTERM when this process dies.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut command = tied_command("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Takes the link down: the host can reach nothing and nothing can reach it.
    pub fn cut(&self) -> anyhow::Result<()> {
        ip(&["link", "set", &self.root_end(), "down"])
    }

    /// Brings the link back up after [`NetHost::cut`].
    pub fn restore(&self) -> anyhow::Result<()> {
        ip(&["link", "set", &self.root_end(), "up"])
    }

    fn root_end(&self) -> String {
        format!("{}r", self.name)
    }

    fn inner_end(&self) -> String {
        format!("{}i", self.name)
    }

    fn set_up(&self) -> anyhow::Result<()> {
        let (name, root, inner) = (&self.name, self.root_end(), self.inner_end());
        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        ip(&["netns", "add", name])?;
        ip(&[
            "link", "add", &root, "type", "veth", "peer", "name", &inner, "netns", name,
        ])?;
        ip(&["addr", "add", &cidr(self.gateway()), "dev", &root])?;
        ip(&["link", "set", &root, "up"])?;
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &cidr(self.address()),
            "dev",
            &inner,
        ])?;
        ip(&["-n", name, "link", "set", &inner, "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])
    }
}

impl Drop for NetHost {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth end, and with it the root end.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.root_end()]);
    }
}

/// `ip ARGS`, its error output in the error.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = std::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (apt-get install -y iproute2)")?;
    if !output.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("network namespaces (ip netns add) need root: run this as root");
    }
    Ok(())
}

fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // At most 2 + 7 + 1 + 4 characters, so `NAMEr` fits a 15-character interface name.
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
    format!("{PREFIX}{}x{n}", std::process::id())
}

/// The /24s of the root namespace's IPv4 addresses.
fn root_subnets() -> anyhow::Result<Vec<[u8; 3]>> {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .context("cannot run `ip -4 -o addr show`")?;
    Ok(subnets_in(&String::from_utf8_lossy(&output.stdout)))
}

/// The /24s of the `inet A.B.C.D/len` entries of `ip -o addr` output.
fn subnets_in(text: &str) -> Vec<[u8; 3]> {
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "inet")
        .filter_map(|w| w[1].split('/').next()?.parse::<Ipv4Addr>().ok())
        .map(|a| {
            let [x, y, z, _] = a.octets();
            [x, y, z]
        })
        .collect()
}

/// Removes namespaces of this module whose creating process is gone.
fn remove_orphans() {
    let Ok(output) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if let Some(pid) = creator_of(name)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["netns", "del", name]);
            let _ = ip(&["link", "del", &format!("{name}r")]);
        }
    }
}

/// The pid in a name made by [`unique_name`], if it is one.
fn creator_of(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix(PREFIX)?.split_once('x')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// An exclusive lock on [`LOCK_FILE`], held until dropped.
struct Lock(std::fs::File);

impl Lock {
    fn take() -> anyhow::Result<Lock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .with_context(|| format!("cannot open {LOCK_FILE}"))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "cannot lock {LOCK_FILE}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(Lock(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_read_from_ip_addr_output() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                    4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n";
        assert_eq!(subnets_in(text), vec![[127, 0, 0], [192, 0, 2]]);
        assert!(subnets_in("").is_empty());
    }

    #[test]
    fn only_names_this_module_makes_have_a_creator() {
        assert_eq!(creator_of("rs1234x7"), Some(1234));
        assert_eq!(creator_of("rs1234"), None);
        assert_eq!(creator_of("rsyncx1"), None);
        assert_eq!(creator_of("other"), None);
        assert!(unique_name().len() <= 14);
    }
}
