//! What a registered part tells the coordinator while and after it runs: a heartbeat (so a
//! part that dies, or whose host does, is known to have stopped instead of being waited for),
//! then its results.json, or the error that stopped it.

use std::time::Duration;

use super::{ALIVE, Coordinator, RUN_TTL, Seat, failed};

/// Between two heartbeats: a fifth of their lifetime, so a few lost ones do not count as dead.
const BEAT: Duration = Duration::from_secs(1);

/// A part's outcome as handed in: `ok`, or `failed: WHY`.
pub(super) const HANDED_IN: &str = "ok";
pub(super) const FAILED_PREFIX: &str = "failed: ";

/// Keeps a part's heartbeat key alive until dropped.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Coordinator {
    /// Starts the heartbeat of `seat` (registration set its first beat).
    pub fn heartbeat(&self, seat: Seat) -> Heartbeat {
        let key = self.key(seat.generation, &format!("alive:{}", seat.part));
        let mut con = self.con();
        Heartbeat(tokio::spawn(async move {
            let mut every = tokio::time::interval(BEAT);
            loop {
                every.tick().await;
                // A beat that fails is retried at the next tick; enough missed ones and the
                // collector counts this part as stopped, which it then has, as far as anyone
                // can tell.
                let _: Result<(), _> = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(ALIVE.as_millis() as u64)
                    .query_async(&mut con)
                    .await;
            }
        }))
    }

    /// Hands in this part's results.json text.
    pub async fn hand_in(&self, seat: Seat, results_json: &str) -> anyhow::Result<()> {
        let results = self.key(seat.generation, &format!("results:{}", seat.part));
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&results)
            .arg(results_json)
            .arg("EX")
            .arg(RUN_TTL.as_secs())
            .ignore()
            .cmd("HSET")
            .arg(self.key(seat.generation, "meta"))
            .arg(format!("done:{}", seat.part))
            .arg(HANDED_IN)
            .ignore()
            .query_async::<()>(&mut self.con())
            .await
            .map_err(|e| failed("handing the results in", &self.url, e))
    }

    /// Tells the coordinator this part failed, and why (best effort: it is failing already).
    pub async fn hand_in_failure(&self, seat: Seat, why: &str) {
        let _: Result<(), _> = redis::cmd("HSET")
            .arg(self.key(seat.generation, "meta"))
            .arg(format!("done:{}", seat.part))
            .arg(format!("{FAILED_PREFIX}{why}"))
            .query_async(&mut self.con())
            .await;
    }
}
