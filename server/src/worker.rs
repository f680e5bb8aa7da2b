//! One chat worker: the Socket.IO server, its bus, its rooms, and a clean shutdown.
//!
//! `run` owns the whole lifetime: bind, serve until told to stop, then stop accepting,
//! disconnect every client (so they reconnect to another worker through nginx), flush what is
//! still queued for Redis, and return within the shutdown deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;
use tokio::net::TcpListener;

use crate::app::App;
use crate::bus::{Bus, ClusterBus, ClusterSettings, Inbox, RedisBus, RedisSettings};
use crate::chat;
use crate::config::{BusKind, WorkerConfig};
use crate::conns::{Connections, TrackedListener, note_upgrades};
use crate::metrics::Metrics;
use crate::rooms::Rooms;
use crate::sessions::SessionOwners;
use crate::slow::SlowConsumers;

/// How long a shutdown may take before the worker exits regardless.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);

/// A bound, not yet serving worker; `local_addr` is known before serving (port 0 works).
pub struct Worker {
    app: Arc<App>,
    io: SocketIo,
    router: axum::Router,
    listener: TrackedListener,
}

impl Worker {
    pub async fn bind(config: WorkerConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let metrics = Arc::new(Metrics::default());
        let (layer, io) = SocketIo::builder()
            .ping_interval(config.ping_interval())
            .ping_timeout(config.ping_timeout())
            .max_payload(config.max_payload)
            .ws_max_message_size(config.max_payload as usize)
            .ws_max_frame_size(config.max_payload as usize)
            .max_buffer_size(config.socket_buffer)
            .ws_read_buffer_size(config.ws_read_buffer)
            .build_layer();
        let chaos = crate::rooms::Chaos {
            drop_every: config.chaos_drop_every,
            duplicate_every: config.chaos_duplicate_every,
        };
        if config.chaos_drop_every > 0 || config.chaos_duplicate_every > 0 {
            tracing::warn!(
                ?chaos,
                "CHAOS: this worker drops or duplicates messages on purpose"
            );
        }
        let conns = Arc::new(Connections::default());
        let slow = SlowConsumers::new(config.slow_consumer_grace, conns.clone());
        slow.spawn_sweeper();
        let (rooms, delivery) = Rooms::new(io.clone(), metrics.clone(), chaos, slow);
        let inbox: Arc<dyn Inbox> = delivery;
        let bus = match config.bus_kind() {
            BusKind::Redis => {
                let url = config.redis.as_deref().unwrap_or_default();
                let settings = RedisSettings {
                    url,
                    prefix: &config.channel_prefix,
                    timeout: config.redis_timeout(),
                    publish_queue: config.publish_queue,
                };
                Bus::Redis(RedisBus::start(settings, inbox, metrics.clone())?)
            }
            BusKind::RedisCluster => {
                let settings = ClusterSettings {
                    nodes: &config.redis_cluster,
                    prefix: &config.channel_prefix,
                    timeout: config.redis_timeout(),
                    publish_queue: config.publish_queue,
                };
                Bus::Cluster(ClusterBus::start(settings, inbox, metrics.clone())?)
            }
            BusKind::Local | BusKind::Auto => {
                metrics
                    .redis_up
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Bus::Local {
                    inbox,
                    metrics: metrics.clone(),
                }
            }
        };
        let app = Arc::new(App {
            config,
            metrics,
            bus,
            rooms,
        });
        tokio::spawn({
            let app = app.clone();
            async move { app.rooms.run_reconciler(&app.bus).await }
        });
        let on_connect = {
            let app = app.clone();
            move |socket| chat::on_connect(socket, app.clone())
        };
        io.ns("/", chat::on_connected.with(on_connect));
        let owners = SessionOwners::new(app.config.ping_interval(), app.config.ping_timeout());
        owners.spawn_sweeper();
        let guard = crate::sessions::Guard {
            owners,
            metrics: app.metrics.clone(),
        };
        // Outermost last: CORS, the connection cap, the session guard, then the upgrades noted.
        let router = crate::http::router(app.clone(), layer)
            .layer(tower::util::MapRequestLayer::new(note_upgrades(
                conns.clone(),
            )))
            .layer(axum::middleware::from_fn_with_state(
                guard,
                crate::sessions::guard,
            ))
            .layer(axum::middleware::from_fn_with_state(
                app.clone(),
                crate::admission::gate,
            ))
            .layer(crate::http::cors(&app.config.cors_origins));
        let listener = listen(app.config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", app.config.listen))?;
        Ok(Worker {
            app,
            io,
            router,
            listener: TrackedListener::new(listener, conns),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        axum::serve::Listener::local_addr(&self.listener).map(|peer| peer.addr)
    }

    /// Serves until `stop` resolves, then shuts down cleanly.
    pub async fn serve(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Worker {
            app,
            io,
            router,
            listener,
        } = self;
        tracing::info!(
            worker = app.config.worker_id,
            pid = std::process::id(),
            bus = ?app.config.bus_kind(),
            "listening on {}",
            axum::serve::Listener::local_addr(&listener)?.addr
        );
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let server =
            crate::serve::serve(listener, router, app.config.header_timeout(), async move {
                stop.await;
                let _ = stopped_tx.send(());
            });
        let serving = tokio::spawn(server);
        // Wait for the stop signal (or for the server to fail on its own).
        let _ = stopped_rx.await;
        tracing::info!("shutting down: disconnecting clients");
        let drained = tokio::time::timeout(SHUTDOWN_DEADLINE, async {
            io.close().await;
            app.bus.flush().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown deadline passed with work left");
        }
        // Upgraded websocket connections are detached from the server; do not wait on them.
        let _ = tokio::time::timeout(Duration::from_millis(500), serving).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Pending connections the kernel queues for us. A connect burst (thousands of members per
/// second through nginx) overflows the default of 1024 while the CPU is busy, and nginx then
/// times out connecting and takes the worker out of rotation.
const ACCEPT_BACKLOG: u32 = 4096;

/// Binds the worker's listener. TCP_NODELAY is set on it so every accepted connection inherits
/// it (Linux copies it at accept): room messages are small frames written back to back, and with
/// Nagle's algorithm a frame waits for the ACK of the previous one, which the peer may delay by
/// 40 ms. That showed up as fan-out p99 jumping to tens of milliseconds under moderate load.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Runs a worker until SIGTERM or SIGINT.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let worker = Worker::bind(config).await?;
    worker.serve(crate::signals::terminated()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = listen("127.0.0.1:0".parse().expect("static address")).expect("listen");
        let addr = listener.local_addr().expect("bound");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        assert!(accepted.nodelay().expect("getsockopt"));
    }
}
