//! roomstorm's chat cluster: a Socket.IO chat server whose workers fan room messages out
//! through Redis pub/sub, a master that supervises them, and a local stack behind nginx.
//!
//! Modules, from the socket outwards: `chat` (the protocol on one socket), `rooms` (local
//! membership and delivery), `slow` (members that stop reading), `conns` (the accepted TCP
//! connections, so one can be cut), `bus` (Redis or in-process fan-out), `worker` (one server
//! process), `serve` (its HTTP accept loop, with a header deadline), `app` (the state its
//! handlers share), `admission` (the connection cap), `sessions` (who may use a
//! polling session), `http` (health, metrics, the page),
//! `cluster` (the master), `nginx` (the proxy config), `stack` (everything on loopback, for
//! people and tests), `netns` (test hosts: network namespaces with their own addresses).
//! Calls go one way: chat → rooms → bus; the bus hands messages back in through `bus::Inbox`,
//! which the rooms implement, and no module imports one that imports it. Below the rooms:
//! rooms → slow → conns.

pub mod admission;
pub mod app;
pub mod bus;
pub mod chat;
pub mod cli;
pub mod cluster;
pub mod compact;
pub mod config;
pub mod conns;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod netns;
pub mod nginx;
pub mod periodic;
pub mod ports;
pub mod probe;
pub mod process;
pub mod redis_cluster;
pub mod reply;
pub mod rooms;
pub mod serve;
pub mod sessions;
pub mod signals;
pub mod slow;
pub mod stack;
pub mod worker;
