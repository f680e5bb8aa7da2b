//! The state a worker's handlers share: its settings, counters, bus and rooms.
//!
//! It has its own module so that the handlers (`chat` for sockets, `http` for the other routes)
//! and the `worker` that builds and serves them all depend on it, and not on one another.

use std::sync::Arc;

use crate::bus::Bus;
use crate::config::WorkerConfig;
use crate::metrics::Metrics;
use crate::rooms::Rooms;

/// Everything a socket handler needs, shared by all sockets of the worker.
pub struct App {
    pub config: WorkerConfig,
    pub metrics: Arc<Metrics>,
    pub bus: Bus,
    pub rooms: Rooms,
}
