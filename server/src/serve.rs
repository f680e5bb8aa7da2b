//! Serves the worker's router over HTTP with a deadline on request headers.
//!
//! `axum::serve` hands hyper no timer, and hyper then applies no header read timeout at all: a
//! client that trickles its request headers one byte at a time (slowloris) holds its
//! connection, and a file descriptor, forever. This accept loop is axum's, plus that timer.

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

/// Accepts connections until `stop` resolves, then asks every connection to finish its request
/// and close, and returns when all have (the caller bounds that wait). HTTP/1.1 only: nginx
/// and every Socket.IO client speak it.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    header_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) where
    L: Listener,
    L::Addr: Clone + Send + Sync + std::fmt::Debug + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let (shutdown, shutdown_seen) = tokio::sync::watch::channel(());
    tokio::pin!(stop);
    loop {
        // The listener's accept retries failed accepts itself (pausing when out of
        // descriptors), as axum::serve does.
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let service = TowerToHyperService::new(with_peer(router.clone(), peer.clone()));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut shutdown_seen = shutdown_seen.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = shutdown_seen.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::trace!("connection from {peer:?} ended: {e}");
            }
        });
    }
    drop(listener);
    drop(shutdown_seen);
    let _ = shutdown.send(());
    shutdown.closed().await;
}

/// The router, with the listener's peer (its address) in each request as axum's `ConnectInfo`.
fn with_peer<A: Clone + Send + Sync + 'static>(
    router: Router,
    peer: A,
) -> impl tower::Service<
    http::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    router.map_request(move |request: http::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer.clone()));
        request
    })
}
