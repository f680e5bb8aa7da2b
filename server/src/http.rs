//! The worker's HTTP surface besides Socket.IO: health, metrics, stats, and the chat page.
//!
//! The page's files are read from the web folder on request (they are small and rarely asked
//! for); the socket.io browser client comes from that folder's `node_modules`, installed from
//! npm rather than copied into the repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use socketioxide::layer::SocketIoLayer;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::app::App;

/// The files of the chat page, by URL path: (path inside the web folder, content type).
const PAGE_FILES: [(&str, &str, &str); 4] = [
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/app.js", "app.js", "text/javascript; charset=utf-8"),
    ("/style.css", "style.css", "text/css; charset=utf-8"),
    (
        "/vendor/socket.io.min.js",
        "node_modules/socket.io-client/dist/socket.io.min.js",
        "text/javascript; charset=utf-8",
    ),
];

pub fn router(app: Arc<App>, socketio: SocketIoLayer) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats));
    for (url, file, content_type) in PAGE_FILES {
        router = router.route(
            url,
            get(move |State(app): State<Arc<App>>| page_file(app, file, content_type)),
        );
    }
    router
        .with_state(app.clone())
        .layer(socketio)
        // Before socketioxide: its sessions keep the request parts for their whole life.
        .layer(tower::util::MapRequestLayer::new(
            crate::compact::compact_request,
        ))
}

/// CORS for pages served from another origin. The default (`*`) lets any page connect but
/// never with credentials (cookies, HTTP auth): a page elsewhere must not act as a visitor
/// who is logged in here. A configured list is matched exactly (scheme, host and port, as
/// browsers send `Origin`), and only those origins may send credentials. The worker wraps its
/// whole service in it, so a page elsewhere can read every refusal too (a full worker's 503).
pub fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE]);
    if allows_any_origin(origins) {
        return layer.allow_origin(AllowOrigin::any());
    }
    let listed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    let credentials_for = listed.clone();
    layer
        .allow_origin(AllowOrigin::list(listed))
        // tower-http would otherwise send `allow-credentials: true` to every origin.
        .allow_credentials(AllowCredentials::predicate(move |origin, _| {
            credentials_for.contains(origin)
        }))
}

/// Whether `--cors-origins` is the wildcard (validation refuses `*` mixed with origins).
pub fn allows_any_origin(origins: &[String]) -> bool {
    origins.iter().any(|o| o.trim() == "*")
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.bus.health() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render_prometheus(app.config.worker_id),
    )
        .into_response()
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    axum::Json(
        app.metrics
            .snapshot(app.config.worker_id, app.bus.uses_redis()),
    )
    .into_response()
}

async fn page_file(app: Arc<App>, file: &str, content_type: &'static str) -> Response {
    let path = web_dir(&app.config.web_dir).join(file);
    match tokio::fs::read(&path).await {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => {
            // The reason and the folder go to the log, never to the client: a file system
            // path tells a stranger how the host is laid out.
            let hint = if file.starts_with("node_modules") {
                "install the socket.io browser client: npm ci --prefix web"
            } else {
                "set --web-dir (CHAT_WEB_DIR) to the project's web/ folder"
            };
            tracing::warn!("{} not readable ({e}): {hint}", path.display());
            (StatusCode::NOT_FOUND, NOT_FOUND).into_response()
        }
    }
}

/// The body of every 404 this worker writes itself.
pub const NOT_FOUND: &str = "not found\n";

/// The configured web folder, or the repository's own when run from elsewhere via cargo.
fn web_dir(configured: &Path) -> PathBuf {
    if configured.is_dir() {
        return configured.to_path_buf();
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    if configured == Path::new("web") && built_in.is_dir() {
        built_in
    } else {
        configured.to_path_buf()
    }
}
