//! A minimal HTTP GET for health checks and stats scrapes between our own processes, and
//! polling a check until it passes.
//!
//! The master scrapes every worker each second and the stack waits for readiness; one
//! short-lived HTTP/1.0 request each needs no client library or connection pool.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response body read; our endpoints answer a few KiB.
const MAX_RESPONSE: u64 = 1 << 20;

/// GETs `path` from `addr`; returns the status code and the body.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(timeout, get(addr, path))
        .await
        .with_context(|| format!("GET http://{addr}{path}: no answer within {timeout:?}"))?
}

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut response).await?;
    parse_response(&response).with_context(|| format!("GET http://{addr}{path}"))
}

fn parse_response(response: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code in HTTP response")?;
    Ok((status, body.to_string()))
}

/// Polls `addr` until `path` answers 200 or `deadline` passes (processes starting up).
pub async fn wait_until_ok(addr: SocketAddr, path: &str, deadline: Duration) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    let mut last_error = String::from("no attempt");
    while started.elapsed() < deadline {
        match http_get(addr, path, Duration::from_secs(1)).await {
            Ok((200, _)) => return Ok(()),
            Ok((status, body)) => last_error = format!("status {status}: {}", body.trim()),
            Err(e) => last_error = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("http://{addr}{path} not ready after {deadline:?}: {last_error}")
}

/// Runs `check` until it succeeds (its value) or `deadline` passes (its last error, with
/// `what`): for states that have no event to await, such as a Redis Cluster converging.
pub async fn eventually_ok<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if started.elapsed() >= deadline => {
                return Err(e.context(format!("timed out after {deadline:?} waiting for {what}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn parses_status_and_body() {
        let (status, body) =
            parse_response(b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nredis down\n")
                .unwrap();
        assert_eq!(status, 503);
        assert_eq!(body, "redis down\n");
        assert!(parse_response(b"garbage").is_err());
    }
}
