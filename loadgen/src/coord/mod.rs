//! The coordinator of a run across hosts: a Redis that the parts of one run (`loadgen run
//! --part I/N --coordinator redis://HOST:PORT`, one per host) meet in.
//!
//! Why Redis: every deployment of the chat cluster has one (the compose file's, or any the
//! hosts can reach), and it gives what the parts need without a process of our own: atomic
//! registration (a Lua script), one clock all parts can read (`TIME`), and a place to hand
//! results to. What happens there, in order:
//!
//! 1. each part measures its clock against Redis's (`clock`), then registers (`barrier`):
//!    it takes its part (or the lowest free one, for `auto`), and the part that completes the
//!    set publishes the common start, as Redis time plus a lead;
//! 2. the parts wait at the barrier, each converting the start to its own clock; a part that
//!    never arrives stops them all at the barrier's timeout, naming it;
//! 3. while a part runs it keeps a heartbeat key alive, and at the end hands in its
//!    results.json, or the error that stopped it (`handin`);
//! 4. a collector (part 0, or `loadgen collect`) waits until every part handed in, failed or
//!    went silent, and takes the results (`gather`).
//!
//! Keys live under `roomstorm:coord:{RUN_ID}` (one hash slot per run), each attempt of a run
//! in its own generation: a new attempt with the same run id never mixes with a stale one, and
//! nothing needs cleaning by hand (every key expires).

mod barrier;
mod clock;
mod gather;
mod handin;

use std::time::Duration;

use anyhow::Context;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

pub use barrier::{Registration, Seat};
pub use clock::ClockOffset;
pub use gather::{PartOutcome, StartedRun};
pub use handin::Heartbeat;

/// Every key of a run expires this long after its last write (a day: long runs, and time to
/// collect them again).
const RUN_TTL: Duration = Duration::from_secs(24 * 3600);
/// A part whose heartbeat key is older than this has stopped (killed, its host gone).
const ALIVE: Duration = Duration::from_secs(5);
/// How long any single command to the coordinator may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Which part a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartWanted {
    /// This one (0-based).
    Index(u32),
    /// The lowest part nobody took: for identical hosts started together (compose replicas).
    Auto,
}

/// What a part tells the others about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub host: String,
    pub pid: u32,
    pub clock_offset_us: i64,
    pub clock_rtt_us: u64,
}

/// A connection to the coordinator, for one run id.
#[derive(Clone)]
pub struct Coordinator {
    con: MultiplexedConnection,
    url: String,
    run_id: String,
    /// `roomstorm:coord:{RUN_ID}`.
    base: String,
}

impl Coordinator {
    /// Connects to the Redis at `url` for run `run_id`.
    pub async fn connect(url: &str, run_id: &str) -> anyhow::Result<Coordinator> {
        parse_run_id(run_id).map_err(|e| anyhow::anyhow!("run id {run_id:?}: {e}"))?;
        let client = redis::Client::open(url).with_context(|| {
            format!("--coordinator {url} is not a Redis URL (redis://HOST:PORT)")
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| {
                format!("the coordinator {url} is unreachable: start Redis or fix --coordinator")
            })?;
        Ok(Coordinator {
            con,
            url: url.to_owned(),
            run_id: run_id.to_owned(),
            base: format!("roomstorm:coord:{{{run_id}}}"),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The key of `what` in generation `generation` of this run.
    fn key(&self, generation: u64, what: &str) -> String {
        format!("{}:{generation}:{what}", self.base)
    }

    fn con(&self) -> MultiplexedConnection {
        self.con.clone()
    }
}

/// A run id names keys: 1-64 characters of `A-Z a-z 0-9 _ . : -`, as a scenario's name (the
/// default run id) may have (clap's value parser).
pub fn parse_run_id(id: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if !ok {
        return Err("use 1-64 characters of A-Z a-z 0-9 _ . : -".into());
    }
    Ok(id.to_owned())
}

/// A redis error, with what was being done.
fn failed(what: &str, url: &str, e: redis::RedisError) -> anyhow::Error {
    anyhow::anyhow!("the coordinator {url}: {what} failed: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_key_safe() {
        for good in ["smoke", "run-2024.11_a:b", &"x".repeat(64)] {
            assert_eq!(parse_run_id(good).as_deref(), Ok(good), "{good}");
        }
        for bad in ["", "a b", "a{b}", "a}", &"x".repeat(65)] {
            assert!(parse_run_id(bad).is_err(), "{bad}");
        }
    }
}
