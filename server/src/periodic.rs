//! Housekeeping that runs on a timer for as long as what it keeps exists.
//!
//! Why it exists: several parts of a worker (the slow-consumer watch, the session owners) sweep
//! their state now and then. Each sweep holds a weak reference, so a sweeper never keeps its
//! state alive, and it ends by itself when the state is dropped (a worker in a test).

use std::sync::{Arc, Weak};
use std::time::Duration;

/// Calls `sweep` on `state` every `period` (late ticks are delayed, not bunched) until `state`
/// is dropped.
pub fn every<T: Send + Sync + 'static>(
    period: Duration,
    state: &Arc<T>,
    sweep: impl Fn(&T) + Send + 'static,
) {
    let state: Weak<T> = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else {
                return;
            };
            sweep(&state);
        }
    });
}
