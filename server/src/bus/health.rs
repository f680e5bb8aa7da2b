//! Whether Redis is reachable, as the Redis bus last saw it: the reason behind `/healthz`'s 503,
//! the `chat_redis_up` gauge, and the reconnect count.
//!
//! Its own module because two parts of the bus report into it, the subscriber side (`redis`)
//! and the publisher (`publish`), and neither should import the other.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use crate::metrics::{Metrics, RedisOp};

pub struct RedisHealth {
    /// Why Redis counts as unreachable; `None` while it answers.
    last_error: Mutex<Option<String>>,
    connected_once: AtomicBool,
    metrics: Arc<Metrics>,
}

impl RedisHealth {
    /// Starts as unreachable ("not connected yet") until the first successful ping.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        RedisHealth {
            last_error: Mutex::new(Some("not connected yet".into())),
            connected_once: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        match &*self.last_error.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(()),
            Some(e) => Err(format!("redis unreachable: {e}")),
        }
    }

    /// A Redis command that failed: counted by operation, and Redis marked unreachable.
    pub fn failed(&self, op: RedisOp, error: &str) {
        self.metrics.redis_error(op);
        self.mark_down(error);
    }

    /// What a health ping found.
    pub fn pinged(&self, result: Result<(), String>) {
        match result {
            Ok(()) => self.mark_up(),
            Err(e) => self.failed(RedisOp::Ping, &e),
        }
    }

    pub fn mark_down(&self, error: &str) {
        self.metrics.redis_up.store(false, Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none() {
            tracing::warn!("redis unreachable: {error}");
        }
        *last = Some(error.to_string());
    }

    pub fn mark_up(&self) {
        let was_down = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some();
        self.metrics.redis_up.store(true, Relaxed);
        if was_down {
            if self.connected_once.swap(true, Relaxed) {
                self.metrics.redis_reconnects.fetch_add(1, Relaxed);
                tracing::info!("redis reachable again");
            } else {
                tracing::info!("redis connected");
            }
        }
    }
}
