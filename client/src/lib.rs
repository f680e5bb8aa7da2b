//! `roomstorm-client`: a small Engine.IO 4 / Socket.IO 5 client: one namespace per connection
//! (the main one by default), a CONNECT `auth` payload, emits with acknowledgements.
//!
//! It exists because the available Rust Socket.IO clients cannot bind a source address, build
//! an HTTP client per connection, or fail against socketioxide (see the stack facts). It serves
//! the chat server's integration tests and the load generator, which runs thousands of
//! connections per process, so a connection is two small structs and no background task:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use roomstorm_client::{ClientConfig, Incoming, Transport, connect};
//! let cfg = ClientConfig::new("http://127.0.0.1:8080")
//!     .query("roomid", "r1")
//!     .transport(Transport::WebSocket);
//! let (tx, mut rx) = connect(&cfg).await?;
//! tx.emit("say", &serde_json::json!({"text": "hi"})).await?;
//! while let Some(msg) = rx.next().await {
//!     match msg {
//!         Incoming::Event { name, data, .. } => println!("{name}: {data}"),
//!         Incoming::Disconnected { reason } => println!("gone: {reason}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Heartbeats are answered while the [`Receiver`] is being awaited (see its docs). Modules:
//! [`codec`] (pure wire format, public for tests and tools), `connect` (the handshake),
//! `sender` (the write side), `receiver` (the read side, heartbeats, polling), `config`,
//! `error`, `net` (bound sockets, websocket handshake, shared HTTP pool). Calls go one way:
//! connect → receiver → sender.

pub mod codec;
mod config;
mod connect;
mod error;
mod net;
mod receiver;
mod sender;

pub use codec::EventHead;
pub use config::{ClientConfig, Transport};
pub use connect::connect;
pub use error::{BoxError, ConnectError, SendError};
pub use receiver::{Incoming, RawAck, RawEvent, RawIncoming, Receiver};
pub use sender::Sender;
