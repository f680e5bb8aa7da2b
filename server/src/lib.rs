//! roomstorm's chat cluster: a Socket.IO chat server whose workers fan room messages out
//! through Redis pub/sub, a master that supervises them, and a local stack behind nginx.
//!
//! Modules, from the socket outwards: `chat` (the protocol on one socket), `rooms` (local
//! membership and delivery), `bus` (Redis or in-process fan-out), `worker` (one server
//! process), `serve` (its HTTP accept loop, with a header deadline), `app` (the state its
//! handlers share), `http` (health, metrics, the page),
//! `cluster` (the master), `nginx` (the proxy config), `stack` (everything on loopback, for
//! people and tests). Calls go one way: chat → rooms → bus; the bus hands messages back in
//! through `bus::Inbox`, which the rooms implement, and no module imports one that imports it.

pub mod app;
pub mod bus;
pub mod chat;
pub mod cli;
pub mod cluster;
pub mod compact;
pub mod config;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod nginx;
pub mod probe;
pub mod process;
pub mod reply;
pub mod rooms;
pub mod serve;
pub mod signals;
pub mod stack;
pub mod worker;
