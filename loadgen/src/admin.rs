//! `loadgen run --admin URL`: the cluster master's admin address (`chat-server cluster
//! --admin`), for a URL target that is our own cluster started by someone else (docker
//! compose). loadgen cannot see such a cluster's workers behind nginx; the master can, and its
//! `/workers` names each worker's port. The admin's host with those ports are the workers'
//! addresses, so a URL target gets the per-worker counts (samples before the run and at the
//! quiet point) that a local stack gets.
//!
//! Every way this can go wrong is a setup error naming the admin URL and what was expected:
//! a run that silently had no workers would look like one that never asked.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use chat_server::cluster::ClusterStatus;

/// How long resolving the host, and then the one `/workers` request, may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the master's `/workers` looks like, for error messages.
const EXPECTED_JSON: &str = r#"{"connections":..,"members":..,"workers":[{"index":0,"port":6001,"pid":..,"up":true,..},..]}"#;

/// An admin URL as given, checked to be `http://HOST:PORT` (clap's value parser: a malformed
/// one is refused with exit status 2 before anything runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUrl {
    url: String,
    host: String,
    port: u16,
}

impl fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl AdminUrl {
    /// `http://HOST:PORT` (a trailing `/` allowed): no other scheme, path or query, and the
    /// port written out, since the master has no default one.
    pub fn parse(text: &str) -> Result<AdminUrl, String> {
        let expected = "expected http://HOST:PORT, the address of `chat-server cluster --admin` \
                        (e.g. http://chat:9000)";
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a URL ({e}): {expected}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{text:?} is not an http:// URL: {expected}"));
        }
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or_default();
        if authority.contains('@') || !matches!(path, "" | "/") {
            return Err(format!(
                "{text:?} has more than a host and a port: {expected}"
            ));
        }
        let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
            return Err(format!("{text:?} names no host and port: {expected}"));
        };
        Ok(AdminUrl {
            url: text.trim_end_matches('/').to_owned(),
            // An IPv6 literal is bracketed in a URL, not in a name to resolve.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// The cluster's workers, by index: the admin host's address (the one that answered) with
    /// each worker's port, as the master's `/workers` lists them now.
    pub async fn worker_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let (ip, body) = self.get_workers().await?;
        worker_addrs_from(ip, &body).with_context(|| {
            format!(
                "--admin {}: /workers did not answer what the cluster master answers \
                 (expected JSON like {EXPECTED_JSON})",
                self.url
            )
        })
    }

    /// `GET /workers` from the first of the host's addresses that answers it; the address and
    /// the body.
    async fn get_workers(&self) -> anyhow::Result<(IpAddr, String)> {
        let mut last_error = String::from("the host has no address");
        for addr in self.resolve().await? {
            match chat_server::probe::http_get(addr, "/workers", ADMIN_TIMEOUT).await {
                Ok((200, body)) => return Ok((addr.ip(), body)),
                Ok((status, body)) => bail!(
                    "--admin {}: GET /workers answered {status}{}; expected 200 with the \
                     cluster master's worker list: is this the address of `chat-server cluster \
                     --admin`?",
                    self.url,
                    quoted(&body)
                ),
                Err(e) => last_error = format!("{e:#}"),
            }
        }
        bail!(
            "--admin {}: GET /workers failed ({last_error}); expected the cluster \
             master's admin address (`chat-server cluster --admin`), started and reachable from \
             here",
            self.url
        )
    }

    async fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let resolved = tokio::time::timeout(ADMIN_TIMEOUT, lookup)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {ADMIN_TIMEOUT:?}"))
            .and_then(|r| r.map_err(anyhow::Error::from));
        match resolved {
            Ok(addrs) => Ok(addrs.collect()),
            Err(e) => bail!(
                "--admin {}: cannot resolve {} ({e:#}); expected a host name or address of \
                 the cluster master, as seen from here (in docker compose: its service name)",
                self.url,
                self.host
            ),
        }
    }
}

/// The workers `/workers` lists, sorted by index (results.json's `workers[]` are indexed by
/// position), at `ip`; none listed is an error, never an empty list.
fn worker_addrs_from(ip: IpAddr, body: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let mut status: ClusterStatus =
        serde_json::from_str(body).with_context(|| format!("got{}", quoted(body)))?;
    if status.workers.is_empty() {
        bail!("it lists no workers");
    }
    status.workers.sort_by_key(|w| w.index);
    Ok(status
        .workers
        .iter()
        .map(|w| SocketAddr::new(ip, w.port))
        .collect())
}

/// ` "BODY"` for an error message, by its first line (an HTML error page is not worth quoting
/// whole); nothing for an empty body.
fn quoted(body: &str) -> String {
    match first_line(body) {
        "" => String::new(),
        line => format!(" {line:?}"),
    }
}

fn first_line(body: &str) -> &str {
    let line = body.trim().lines().next().unwrap_or_default();
    match line.char_indices().nth(120) {
        Some((end, _)) => &line[..end],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_url_is_http_host_and_port() {
        let admin = AdminUrl::parse("http://chat:9000/").expect("valid");
        assert_eq!((admin.host.as_str(), admin.port), ("chat", 9000));
        assert_eq!(admin.to_string(), "http://chat:9000");
        let v6 = AdminUrl::parse("http://[::1]:9000").expect("valid");
        assert_eq!(v6.host, "::1");
        for bad in [
            "chat:9000",
            "https://chat:9000",
            "http://chat",
            "http://chat:9000/workers",
            "http://chat:9000/?x=1",
            "http://user@chat:9000",
            "http://",
            "not a url",
        ] {
            let error = AdminUrl::parse(bad).expect_err(bad);
            assert!(
                error.contains("expected http://HOST:PORT"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_workers_are_the_admin_host_with_their_ports_in_index_order() {
        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        let body = r#"{"connections":3,"members":3,"workers":[
            {"index":1,"port":6002,"pid":9,"up":true,"restarts":0,"connections":1,"members":1,"delivered":0},
            {"index":0,"port":6001,"pid":8,"up":true,"restarts":0,"connections":2,"members":2,"delivered":5}]}"#;
        let addrs = worker_addrs_from(ip, body).expect("the master's JSON");
        let expected: Vec<SocketAddr> = vec![
            "10.0.0.7:6001".parse().expect("addr"),
            "10.0.0.7:6002".parse().expect("addr"),
        ];
        assert_eq!(addrs, expected);
    }

    #[test]
    fn anything_but_a_worker_list_is_an_error() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        for body in [
            "<html>not found</html>",
            r#"{"status":"ok"}"#,
            r#"{"connections":0,"members":0,"workers":[]}"#,
            r#"{"connections":0,"members":0,"workers":[{"index":0}]}"#,
        ] {
            assert!(worker_addrs_from(ip, body).is_err(), "{body}");
        }
    }

    #[test]
    fn a_long_body_is_quoted_by_its_start() {
        let long = "x".repeat(500);
        assert_eq!(first_line(&format!("\n{long}\nmore")).len(), 120);
        assert_eq!(first_line("Not Found\n"), "Not Found");
    }
}
