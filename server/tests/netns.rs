//! `chat_server::netns`, the test hosts other tests build on (loadgen's runs from several
//! hosts; network partitions): a process inside a host reaches the machine's listeners from the
//! host's own address, a cut link reaches nothing until it is restored, and nothing of the
//! host is left after it is dropped. Needs root (as the project's test machines run).

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use chat_server::netns::NetHost;
use tokio::net::TcpListener;

/// Longest wait for one expected event.
const DEADLINE: Duration = Duration::from_secs(10);

/// Connects from inside `host` to `to` with bash's /dev/tcp, giving up after `seconds`; true
/// when the connection was made.
async fn connects_from(host: &NetHost, to: SocketAddr, seconds: u32) -> bool {
    let script = format!("exec 3<>/dev/tcp/{}/{}", to.ip(), to.port());
    let status = host
        .command("timeout")
        .arg(seconds.to_string())
        .args(["bash", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("ip netns exec runs");
    status.success()
}

fn namespaces() -> String {
    let output = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list runs (apt-get install -y iproute2)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_host_connects_from_its_own_address_can_be_cut_off_and_leaves_nothing() {
    let host = NetHost::create().unwrap_or_else(|e| panic!("{e:#}"));
    let name = host.name().to_owned();
    assert!(namespaces().contains(&name), "namespace {name} exists");
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("listen");
    let at = SocketAddr::new(
        IpAddr::V4(host.gateway()),
        listener.local_addr().unwrap().port(),
    );

    // The peer the machine sees is the host's own address, not loopback or the gateway.
    let (connected, accepted) = tokio::join!(
        connects_from(&host, at, 5),
        tokio::time::timeout(DEADLINE, listener.accept())
    );
    assert!(connected, "a process in {name} reached {at}");
    let (_, peer) = accepted.expect("accepted in time").expect("accept");
    assert_eq!(peer.ip(), IpAddr::V4(host.address()));

    // Cut: the connection attempt from inside fails (gives up after 2 s), none is accepted.
    host.cut().expect("cut");
    assert!(
        !connects_from(&host, at, 2).await,
        "{name} reached {at} while cut"
    );
    // Restored: connections go through again (the link may take a moment to come up).
    host.restore().expect("restore");
    let started = tokio::time::Instant::now();
    while !connects_from(&host, at, 2).await {
        assert!(
            started.elapsed() < DEADLINE,
            "{name} never reached {at} again"
        );
    }

    drop(host);
    assert!(!namespaces().contains(&name), "namespace {name} removed");
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&format!("{name}r")),
        "the veth of {name} removed"
    );
}

#[tokio::test]
async fn hosts_get_distinct_subnets() {
    let a = NetHost::create().unwrap_or_else(|e| panic!("{e:#}"));
    let b = NetHost::create().unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(a.name(), b.name());
    let net = |h: &NetHost| h.address().octets()[..3].to_vec();
    assert_ne!(net(&a), net(&b), "each host has its own /24");
}
