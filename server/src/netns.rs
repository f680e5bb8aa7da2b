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
//!
//! A [`Segment`] is a LAN instead: a bridge inside a namespace of its own (the switch), the
//! root namespace attached to it at `A.B.C.1/24` and hosts at `A.B.C.2`, `.3`, ... They reach
//! each other through the switch, never through the root namespace, whose firewall may drop
//! what it would forward or bridge (Docker sets the FORWARD policy to DROP and loads
//! br_netfilter, which sends bridged packets through it; a new namespace has neither rule nor
//! policy, and per-bridge `nf_call_iptables 0` does not override the global switch). This
//! machine's kernel has no dummy or macvlan links. The local stack puts each worker
//! and Redis on such hosts (`chat-server stack --namespaces`), so a network fault can separate
//! one worker from Redis or from nginx: [`NetHost::block`] drops, inside the host, every packet
//! to and from the given addresses (nftables; this kernel has no `netem`), and
//! [`NetHost::cut`] takes its link down.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

use crate::process::{require, tied_command_in_netns};

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
    address: Ipv4Addr,
    gateway: Ipv4Addr,
    /// The namespace the link's outer end is in: the switch of a [`Segment`]; `None`: root.
    outer_ns: Option<String>,
}

/// The nftables table [`NetHost::block`] fills inside a host.
const BLOCK_TABLE: &str = "roomstorm_partition";

impl NetHost {
    /// A host on the first free /24 of the module's pool (10.240-250.x.0/24).
    pub fn create() -> anyhow::Result<NetHost> {
        Self::create_in(pool())
    }

    /// A host on the first of `candidates` (the first three octets of a /24) that no address
    /// of the root namespace is in.
    pub fn create_in(candidates: impl IntoIterator<Item = [u8; 3]>) -> anyhow::Result<NetHost> {
        let (_lock, [a, b, c]) = claim_subnet(candidates)?;
        let host = NetHost {
            name: unique_name(),
            address: Ipv4Addr::new(a, b, c, 2),
            gateway: Ipv4Addr::new(a, b, c, 1),
            outer_ns: None,
        };
        // From here on, a failure drops `host`, which removes what was made.
        host.add_link()?;
        ip(&["addr", "add", &cidr(host.gateway), "dev", &host.root_end()])?;
        host.bring_up()?;
        Ok(host)
    }

    /// The namespace's name (`ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's own address, inside the namespace: what its peers see as the source.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The root namespace's address on the host's link (or segment): where the host reaches
    /// the machine's listeners.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// `program` to be run inside the namespace (`ip netns exec NAME program`); like every
    /// process the stack starts, it gets SIGTERM when this process dies.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        tied_command_in_netns(&self.name, program)
    }

    /// Takes the link down: the host can reach nothing and nothing can reach it.
    pub fn cut(&self) -> anyhow::Result<()> {
        self.set_outer_end("down")
    }

    /// Brings the link back up after [`NetHost::cut`].
    pub fn restore(&self) -> anyhow::Result<()> {
        self.set_outer_end("up")
    }

    fn set_outer_end(&self, state: &str) -> anyhow::Result<()> {
        let outer = self.root_end();
        match &self.outer_ns {
            Some(ns) => ip(&["-n", ns, "link", "set", &outer, state]),
            None => ip(&["link", "set", &outer, state]),
        }
    }

    /// Drops, inside the host, every packet to or from `peers` until [`NetHost::unblock`]:
    /// connections with them stall (no reset, no error), as behind a failed switch, while the
    /// host's other links carry on. Needs `nft` (nftables).
    pub fn block(&self, peers: &[Ipv4Addr]) -> anyhow::Result<()> {
        anyhow::ensure!(!peers.is_empty(), "no address to block");
        require("nft", "nftables")?;
        let set = peers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let t = BLOCK_TABLE;
        let script = format!(
            "add table inet {t}; \
             add chain inet {t} input {{ type filter hook input priority 0; policy accept; }}; \
             add chain inet {t} output {{ type filter hook output priority 0; policy accept; }}; \
             add rule inet {t} input ip saddr {{ {set} }} drop; \
             add rule inet {t} output ip daddr {{ {set} }} drop"
        );
        self.nft(&script)
    }

    /// Lets through again what [`NetHost::block`] dropped.
    pub fn unblock(&self) -> anyhow::Result<()> {
        self.nft(&format!("delete table inet {BLOCK_TABLE}"))
    }

    fn nft(&self, script: &str) -> anyhow::Result<()> {
        run(
            std::process::Command::new("ip")
                .args(["netns", "exec", &self.name, "nft"])
                .arg(script),
            "nft (apt-get install -y nftables)",
        )
    }

    fn root_end(&self) -> String {
        format!("{}r", self.name)
    }

    fn inner_end(&self) -> String {
        format!("{}i", self.name)
    }

    /// The namespace and its veth pair, the inner end inside.
    fn add_link(&self) -> anyhow::Result<()> {
        let (name, root, inner) = (&self.name, self.root_end(), self.inner_end());
        ip(&["netns", "add", name])?;
        ip(&[
            "link", "add", &root, "type", "veth", "peer", "name", &inner, "netns", name,
        ])
    }

    /// Addresses the inner end and brings both ends and the namespace's loopback up.
    fn bring_up(&self) -> anyhow::Result<()> {
        let (name, inner) = (&self.name, self.inner_end());
        self.set_outer_end("up")?;
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &cidr(self.address),
            "dev",
            &inner,
        ])?;
        ip(&["-n", name, "link", "set", &inner, "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])
    }
}

/// A LAN of hosts: a bridge in a namespace of its own (the switch), the root namespace on it
/// at `A.B.C.1`, hosts from `A.B.C.2` on. Removed on drop (its hosts remove themselves).
#[derive(Debug)]
pub struct Segment {
    /// The switch namespace, named like a host (`rs<pid>x<n>`, so orphans go the same way);
    /// the root namespace's link to it is `<switch>r`.
    switch: String,
    subnet: [u8; 3],
    next_host: AtomicU32,
}

/// The bridge's name inside the switch namespace.
const BRIDGE: &str = "br0";

impl Segment {
    /// A segment on the first free /24 of the module's pool.
    pub fn create() -> anyhow::Result<Segment> {
        let (_lock, subnet) = claim_subnet(pool())?;
        let segment = Segment {
            switch: unique_name(),
            subnet,
            next_host: AtomicU32::new(2),
        };
        // From here on, a failure drops `segment`, which removes what was made.
        let switch = segment.switch.as_str();
        ip(&["netns", "add", switch])?;
        ip(&["-n", switch, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", switch, "link", "set", BRIDGE, "up"])?;
        let root_end = format!("{switch}r");
        segment.plug(&root_end, None)?;
        ip(&["addr", "add", &cidr(segment.gateway()), "dev", &root_end])?;
        ip(&["link", "set", &root_end, "up"])?;
        Ok(segment)
    }

    /// The root namespace's address on the segment.
    pub fn gateway(&self) -> Ipv4Addr {
        self.address(1)
    }

    /// Gives the root namespace one more address on the segment, `A.B.C.last`, for a program
    /// there that must be told apart from the rest of the machine (nginx binds its upstream
    /// connections to one, so a host can be cut from nginx alone).
    pub fn add_root_address(&self, last: u8) -> anyhow::Result<Ipv4Addr> {
        let address = self.address(last);
        let root_end = format!("{}r", self.switch);
        ip(&["addr", "add", &cidr(address), "dev", &root_end])?;
        Ok(address)
    }

    /// A new host on the segment, with the next free address (up to `.253`).
    pub fn host(&self) -> anyhow::Result<NetHost> {
        let last = self.next_host.fetch_add(1, Ordering::Relaxed);
        let last = u8::try_from(last)
            .ok()
            .filter(|l| *l < 254)
            .context("a segment holds at most 252 hosts")?;
        let name = unique_name();
        let host = NetHost {
            address: self.address(last),
            gateway: self.gateway(),
            outer_ns: Some(self.switch.clone()),
            name,
        };
        ip(&["netns", "add", &host.name])?;
        self.plug(&host.root_end(), Some((&host.name, &host.inner_end())))?;
        host.bring_up()?;
        Ok(host)
    }

    /// A veth pair from the switch's bridge: the end `outer` in the root namespace, or, with
    /// `inner = (namespace, name)`, named `name` in that namespace (and `outer` then names the
    /// switch's end).
    fn plug(&self, outer: &str, inner: Option<(&str, &str)>) -> anyhow::Result<()> {
        let switch = self.switch.as_str();
        let port = match inner {
            // The host's end goes to the host, the other end is the switch port `outer`.
            Some((ns, name)) => {
                ip(&[
                    "-n", switch, "link", "add", outer, "type", "veth", "peer", "name", name,
                    "netns", ns,
                ])?;
                outer.to_string()
            }
            // The root's end stays in root as `outer`; the switch port is `<switch>p`.
            None => {
                let port = format!("{switch}p");
                ip(&[
                    "link", "add", outer, "type", "veth", "peer", "name", &port, "netns", switch,
                ])?;
                port
            }
        };
        ip(&["-n", switch, "link", "set", &port, "master", BRIDGE])?;
        ip(&["-n", switch, "link", "set", &port, "up"])
    }

    fn address(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, last)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // Deleting the switch namespace destroys the bridge and every port, and with the
        // ports their peers (the root's link among them).
        let _ = ip(&["netns", "del", &self.switch]);
        let _ = ip(&["link", "del", &format!("{}r", self.switch)]);
    }
}

/// The module's /24s: 10.240-250.x.0/24.
fn pool() -> impl Iterator<Item = [u8; 3]> {
    POOL_SECOND_OCTETS.flat_map(|b| (0..=255u8).map(move |c| [10, b, c]))
}

/// The first of `candidates` that no address of the root namespace is in, with the creation
/// lock held until the caller has taken it (given it an address).
fn claim_subnet(candidates: impl IntoIterator<Item = [u8; 3]>) -> anyhow::Result<(Lock, [u8; 3])> {
    require("ip", "iproute2")?;
    require_root()?;
    let lock = Lock::take()?;
    remove_orphans();
    let taken = root_subnets()?;
    let subnet = candidates
        .into_iter()
        .find(|c| !taken.contains(c))
        .context("no free /24 among the candidates for a network namespace")?;
    Ok((lock, subnet))
}

fn cidr(address: Ipv4Addr) -> String {
    format!("{address}/24")
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
    run(
        std::process::Command::new("ip").args(args),
        "ip (apt-get install -y iproute2)",
    )
}

/// Runs `command` to its end; its error output in the error.
fn run(command: &mut std::process::Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        bail!(
            "{} {}: {}",
            command.get_program().to_string_lossy(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// What a stack on namespace hosts needs, with what to do when it is missing: root, `ip`
/// (iproute2) and `nft` (nftables, for the packet drops of a partition).
pub fn require_tools() -> anyhow::Result<()> {
    require_root()?;
    require("ip", "iproute2")?;
    require("nft", "nftables")?;
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

/// Removes namespaces (hosts and switches) of this module whose creating process is gone.
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
