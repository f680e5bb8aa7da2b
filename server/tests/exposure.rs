//! Issue 13 item 5: nothing public that should not be. Through nginx the public gets the chat
//! page and Socket.IO only; /metrics and /stats answer on the workers' own ports; CORS lets any
//! page connect without credentials unless origins are listed; a 404 reveals no file system path.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;

const ORIGIN: &str = "access-control-allow-origin";
const CREDENTIALS: &str = "access-control-allow-credentials";

async fn get(addr: SocketAddr, path: &str) -> RawResponse {
    get_from(addr, None, path, "").await
}

async fn get_from(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    path: &str,
    headers: &str,
) -> RawResponse {
    let head = format!("GET {path} HTTP/1.1\r\nHost: chat.test{headers}");
    raw_request(addr, bind, head.as_bytes(), b"").await
}

/// A CORS preflight for a polling POST from `origin`.
async fn preflight(addr: SocketAddr, origin: &str) -> RawResponse {
    let head = format!(
        "OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: chat.test\r\n\
         Origin: {origin}\r\nAccess-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: content-type"
    );
    raw_request(addr, None, head.as_bytes(), b"").await
}

/// A simple cross-origin request: the Engine.IO polling handshake with an `Origin`.
async fn handshake_from(addr: SocketAddr, origin: &str) -> RawResponse {
    let response = get_from(
        addr,
        None,
        "/socket.io/?EIO=4&transport=polling",
        &format!("\r\nOrigin: {origin}"),
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.body.starts_with("0{\"sid\""), "{response:?}");
    response
}

#[tokio::test]
async fn only_the_page_and_socket_io_are_public_through_nginx() {
    let stack = start_stack(1, &[]).await;
    let (nginx, worker) = (stack.info().nginx, stack.info().workers[0]);

    for path in [
        "/metrics",
        "/stats",
        "/workers",
        "/nope",
        "/app.js/x",
        "/index.html",
    ] {
        let response = get(nginx, path).await;
        assert_eq!(response.status, 404, "{path} through nginx: {response:?}");
        assert_eq!(response.body, "not found\n", "{path}");
        assert_eq!(
            response.header("server"),
            Some("nginx"),
            "no version: {response:?}"
        );
    }
    for path in ["/metrics", "/stats", "/healthz"] {
        assert_eq!(
            get(worker, path).await.status,
            200,
            "{path} on the worker's own port"
        );
    }

    // The page, exactly what web/index.html loads, and Socket.IO.
    for (path, expect) in [
        ("/", "<script src=\"/app.js\">"),
        ("/app.js", "io("),
        ("/style.css", "{"),
        ("/vendor/socket.io.min.js", "Socket.IO"),
    ] {
        let response = get(nginx, path).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert!(
            response.body.contains(expect),
            "{path}: {}",
            &response.body[..200.min(response.body.len())]
        );
    }
    let handshake = get(nginx, "/socket.io/?EIO=4&transport=polling").await;
    assert!(handshake.body.starts_with("0{\"sid\""), "{handshake:?}");
    let url = stack.info().url.clone();
    let mut ann = Connect::new(&url, "public")
        .bind(member_addr(1))
        .join("ann")
        .await;
    let bob = Connect::new(&url, "public")
        .bind(member_addr(2))
        .transport(roomstorm_client::Transport::Polling)
        .join("bob")
        .await;
    ann.expect_message(|m| m["data"]["username"] == "bob").await;
    bob.say("through nginx").await;
    ann.expect_message(|m| m["data"]["text"] == "through nginx")
        .await;

    // /healthz: nginx's own callers on this host (the compose health check, the stack's
    // readiness probe), whatever X-Forwarded-For says; a peer from elsewhere gets 404.
    assert_eq!(get(nginx, "/healthz").await.status, 200);
    let spoofed = get_from(nginx, None, "/healthz", "\r\nX-Forwarded-For: 203.0.113.7").await;
    assert_eq!(spoofed.status, 200, "{spoofed:?}");
    let outsider = Some(non_loopback_addr());
    let from_outside = get_from(nginx, outsider, "/healthz", "").await;
    assert_eq!(from_outside.status, 404, "{from_outside:?}");
    let forged = get_from(
        nginx,
        outsider,
        "/healthz",
        "\r\nX-Forwarded-For: 127.0.0.1",
    )
    .await;
    assert_eq!(
        forged.status, 404,
        "X-Forwarded-For must not open /healthz: {forged:?}"
    );
    // ...while the page still works from there.
    assert_eq!(get_from(nginx, outsider, "/app.js", "").await.status, 200);
    stack.stop().await;
}

#[tokio::test]
async fn cors_by_default_allows_any_origin_without_credentials() {
    let stack = start_stack(1, &[]).await;
    for addr in [stack.info().workers[0], stack.info().nginx] {
        let response = preflight(addr, "https://elsewhere.example").await;
        assert!((200..300).contains(&response.status), "{response:?}");
        assert_eq!(response.header(ORIGIN), Some("*"), "{response:?}");
        assert_eq!(response.header(CREDENTIALS), None, "{response:?}");
        let response = handshake_from(addr, "https://elsewhere.example").await;
        assert_eq!(response.header(ORIGIN), Some("*"), "{response:?}");
        assert_eq!(response.header(CREDENTIALS), None, "{response:?}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn listed_origins_match_exactly_and_alone_get_credentials() {
    let missing_web = "/nonexistent/roomstorm-web-folder";
    let stack = start_stack(
        1,
        &[
            "--cors-origins",
            "https://chat.example,http://127.0.0.1:9999",
            "--web-dir",
            missing_web,
        ],
    )
    .await;
    for addr in [stack.info().workers[0], stack.info().nginx] {
        for listed in ["https://chat.example", "http://127.0.0.1:9999"] {
            for response in [
                preflight(addr, listed).await,
                handshake_from(addr, listed).await,
            ] {
                assert_eq!(response.header(ORIGIN), Some(listed), "{response:?}");
                assert_eq!(response.header(CREDENTIALS), Some("true"), "{response:?}");
            }
        }
        for other in [
            "http://chat.example",
            "https://chat.example:8443",
            "https://chat.example.evil",
            "https://evil.example",
            "http://127.0.0.1:9998",
            "null",
        ] {
            for response in [
                preflight(addr, other).await,
                handshake_from(addr, other).await,
            ] {
                assert_eq!(response.header(ORIGIN), None, "{other}: {response:?}");
                assert_eq!(response.header(CREDENTIALS), None, "{other}: {response:?}");
            }
        }

        // The page's folder is missing: a plain 404 that does not show where it was looked for.
        let response = get(addr, "/").await;
        assert_eq!(response.status, 404, "{response:?}");
        assert_eq!(response.body, "not found\n");
        assert!(!response.body.contains("nonexistent"), "{response:?}");
    }
    stack.stop().await;
}
