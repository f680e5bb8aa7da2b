//! What a run starts, decided from the scenario and the machine before anything starts, and
//! then started: the local stack, one embedded worker, or a check that a URL answers.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::admin::AdminUrl;
use crate::scenario::{Endpoint, LocalStack, Scenario};
use crate::target::{LocalMode, RunningTarget, local_mode};

/// What a run starts.
pub(super) enum Start {
    /// A URL, and its cluster master's admin address when `--admin` named one.
    Url(String, Option<AdminUrl>),
    Local(LocalStack, LocalMode),
}

pub(super) fn what_to_start(scenario: &Scenario, admin: Option<AdminUrl>) -> anyhow::Result<Start> {
    // loadgen starts the local stack (or the embedded worker) and knows what runs there; an
    // admin address beside it names some other cluster, whose workers would be sampled and
    // reported as this run's.
    if let (Endpoint::Local(_), Some(admin)) = (&scenario.target.endpoint, &admin) {
        bail!(
            "--admin {admin}: this run's target is the local stack loadgen starts, and the local \
             stack's workers are known already; --admin is for a URL target (--target or the \
             scenario's url) that is our cluster"
        );
    }
    Ok(match &scenario.target.endpoint {
        // Faults with a url target were refused when the scenario was loaded.
        Endpoint::Url(url) => Start::Url(url.clone(), admin),
        Endpoint::Local(local) => {
            let missing = chat_server::stack::missing_parts(false, local.redis_cluster > 0);
            let mode = local_mode(missing, local, &scenario.faults)
                .with_context(|| scenario.file().to_owned())?;
            if local.namespaces && mode == LocalMode::FullStack {
                chat_server::netns::require_tools().with_context(|| {
                    format!(
                        "{}: target.local.namespaces puts the workers and Redis in network namespaces",
                        scenario.file()
                    )
                })?;
            }
            Start::Local(*local, mode)
        }
    })
}

pub(super) async fn start_target(start: Start, out: &Path) -> anyhow::Result<RunningTarget> {
    match start {
        Start::Url(url, admin) => {
            check_reachable(&url).await?;
            let workers = workers_of(admin).await?;
            Ok(RunningTarget::Url { url, workers })
        }
        Start::Local(local, LocalMode::FullStack) => {
            let redis = match local.redis_cluster {
                0 => "redis".to_string(),
                masters => format!("a Redis Cluster of {masters} masters and {masters} replicas"),
            };
            let hosts = if local.namespaces {
                " (workers and Redis on hosts of their own)"
            } else {
                ""
            };
            eprintln!(
                "starting the local stack: {redis}, {} workers, nginx{hosts} (logs in {})",
                local.workers,
                out.join("stack").display()
            );
            RunningTarget::start_local(&local, out).await
        }
        Start::Local(local, LocalMode::Embedded { missing }) => {
            eprintln!(
                "{missing} not installed: running against ONE embedded worker (--bus local, \
                 no Redis, no nginx) instead of the {}-worker cluster.\n\
                 For the full cluster: apt-get install -y {missing}",
                local.workers
            );
            RunningTarget::start_embedded().await
        }
    }
}

/// A URL target's chat workers: those its cluster master lists, when `--admin` named it.
pub(super) async fn workers_of(
    admin: Option<AdminUrl>,
) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let Some(admin) = admin else {
        return Ok(Vec::new());
    };
    let workers = admin.worker_addrs().await?;
    let listed: Vec<String> = workers.iter().map(ToString::to_string).collect();
    eprintln!(
        "the cluster master at {admin} lists {} workers: {}",
        workers.len(),
        listed.join(", ")
    );
    Ok(workers)
}

/// Fails early, with the URL named, when nothing answers there.
pub(super) async fn check_reachable(url: &str) -> anyhow::Result<()> {
    let address = socket_address(url)?;
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("target {url} is unreachable ({e}): start the server or fix --target"),
        Err(_) => bail!("target {url} did not answer within 5 s"),
    }
}

/// `host:port` of a target URL, the port its scheme implies when it names none: 443 for
/// https (and wss), else 80. A bare `host:port` is accepted too.
fn socket_address(url: &str) -> anyhow::Result<String> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("target {url} is not a URL: fix --target"))?;
    let host = uri
        .host()
        .with_context(|| format!("target {url} names no host: fix --target"))?;
    let default_port = match uri.scheme_str() {
        Some("https" | "wss") => 443,
        _ => 80,
    };
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_port_uses_its_schemes() {
        let address = |url: &str| socket_address(url).expect("a URL");
        assert_eq!(address("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(address("http://chat.example/socket.io/"), "chat.example:80");
        assert_eq!(address("https://chat.example"), "chat.example:443");
        assert_eq!(address("https://chat.example:8443/x"), "chat.example:8443");
        assert_eq!(address("127.0.0.1:3000"), "127.0.0.1:3000");
        assert_eq!(address("http://[::1]:9000"), "[::1]:9000");
        assert!(socket_address("http://").is_err());
    }
}
