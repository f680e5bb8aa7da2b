//! A minimal socketioxide 0.18 echo server for trying the client by hand and for measuring the
//! client's memory in a separate process (`idle_conns` example).
//!
//! Usage: `cargo run -p roomstorm-client --example echo_server -- 127.0.0.1:9100`
//! Refuses connections without a `roomid` query; echoes `echo` events back.

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef};
use socketioxide::handler::ConnectHandler;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".to_owned());
    let (layer, io) = SocketIo::builder().build_layer();
    let setup = async |s: SocketRef| {
        let has_room = s
            .req_parts()
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("roomid=")));
        if !has_room {
            return Err("missing roomid query parameter");
        }
        s.on("echo", async |s: SocketRef, Data(v): Data<Value>| {
            s.emit("echo", &v).ok();
        });
        Ok(())
    };
    io.ns("/", (async |_s: SocketRef| {}).with(setup));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
