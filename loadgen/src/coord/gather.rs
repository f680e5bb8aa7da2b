//! The collector's side: find a run that started, wait until every part has handed in, failed
//! or stopped beating, and take the handed-in results.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, bail};

use super::handin::{FAILED_PREFIX, HANDED_IN};
use super::{Coordinator, PartRecord, failed};

/// How often the collector looks at the parts.
const POLL: Duration = Duration::from_millis(500);

/// A generation of a run that started: what a collector needs to know about it.
#[derive(Debug, Clone)]
pub struct StartedRun {
    pub generation: u64,
    pub parts: u32,
    /// The spec its first part registered (see `Registration::spec`).
    pub spec: String,
    /// The common start, on the coordinator's clock (µs).
    pub start_us: u64,
    /// Each part's registration.
    pub records: BTreeMap<u32, PartRecord>,
}

impl StartedRun {
    /// `part 2 (host b)`, or `part 2` when its record is gone.
    pub fn part_name(&self, part: u32) -> String {
        match self.records.get(&part) {
            Some(r) => format!("part {part} (host {}, pid {})", r.host, r.pid),
            None => format!("part {part}"),
        }
    }
}

/// What became of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    /// Its results.json text.
    HandedIn(String),
    /// It stopped with this error.
    Failed(String),
    /// Its heartbeat stopped without a word: killed, or its host or network gone.
    Stopped,
    /// Still beating when the collector gave up waiting.
    StillRunning,
}

/// A part's state as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    HandedIn,
    Failed(String),
    Running,
    Stopped,
}

/// Each part's state from the run's meta hash and which heartbeats are alive.
fn statuses(meta: &HashMap<String, String>, alive: &[bool]) -> Vec<Status> {
    alive
        .iter()
        .enumerate()
        .map(|(i, &alive)| match meta.get(&format!("done:{i}")) {
            Some(done) if done == HANDED_IN => Status::HandedIn,
            Some(done) => {
                Status::Failed(done.strip_prefix(FAILED_PREFIX).unwrap_or(done).to_owned())
            }
            None if alive => Status::Running,
            None => Status::Stopped,
        })
        .collect()
}

impl Coordinator {
    /// The run's latest generation that started, waiting up to `timeout` for one to start.
    pub async fn started_run(&self, timeout: Duration) -> anyhow::Result<StartedRun> {
        let deadline = tokio::time::Instant::now() + timeout;
        let generation = loop {
            let started: Option<u64> = redis::cmd("GET")
                .arg(format!("{}:started", self.base))
                .query_async(&mut self.con())
                .await
                .map_err(|e| failed("looking for the run", &self.url, e))?;
            if let Some(g) = started {
                break g;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "no run {:?} started at {} within {}",
                    self.run_id,
                    self.url,
                    crate::scenario::format_duration(timeout)
                );
            }
            tokio::time::sleep(POLL).await;
        };
        self.run_at(generation).await
    }

    /// Generation `generation` of the run, which started.
    pub async fn run_at(&self, generation: u64) -> anyhow::Result<StartedRun> {
        let meta = self.meta(generation).await?;
        let field = |name: &str| {
            meta.get(name)
                .with_context(|| format!("run {:?}: its record lacks {name}", self.run_id))
        };
        let number = |name: &str| -> anyhow::Result<u64> {
            let text = field(name)?;
            text.parse()
                .with_context(|| format!("run {:?}: {name} is {text:?}", self.run_id))
        };
        let parts = u32::try_from(number("n")?)?;
        let records = (0..parts)
            .filter_map(|i| {
                let record = meta.get(&format!("reg:{i}"))?;
                Some((i, serde_json::from_str(record).ok()?))
            })
            .collect();
        Ok(StartedRun {
            generation,
            parts,
            spec: field("spec")?.clone(),
            start_us: number("time_s")? * 1_000_000 + number("time_us")? + number("lead_us")?,
            records,
        })
    }

    /// Waits until no part of `run` is still running (or until `deadline`), then gives what
    /// became of each, with the results of those that handed in.
    pub async fn wait_for_parts(
        &self,
        run: &StartedRun,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Vec<PartOutcome>> {
        let statuses = loop {
            let meta = self.meta(run.generation).await?;
            let mut alive = Vec::with_capacity(run.parts as usize);
            for i in 0..run.parts {
                alive.push(self.is_alive(run.generation, i).await?);
            }
            let statuses = statuses(&meta, &alive);
            let running = statuses.contains(&Status::Running);
            if !running || tokio::time::Instant::now() >= deadline {
                break statuses;
            }
            tokio::time::sleep(POLL).await;
        };
        let mut outcomes = Vec::with_capacity(statuses.len());
        for (i, status) in statuses.into_iter().enumerate() {
            outcomes.push(match status {
                Status::HandedIn => self.results_of(run.generation, i as u32).await?,
                Status::Failed(why) => PartOutcome::Failed(why),
                Status::Running => PartOutcome::StillRunning,
                Status::Stopped => PartOutcome::Stopped,
            });
        }
        Ok(outcomes)
    }

    async fn meta(&self, generation: u64) -> anyhow::Result<HashMap<String, String>> {
        redis::cmd("HGETALL")
            .arg(self.key(generation, "meta"))
            .query_async(&mut self.con())
            .await
            .map_err(|e| failed("reading the run", &self.url, e))
    }

    async fn is_alive(&self, generation: u64, part: u32) -> anyhow::Result<bool> {
        redis::cmd("EXISTS")
            .arg(self.key(generation, &format!("alive:{part}")))
            .query_async(&mut self.con())
            .await
            .map_err(|e| failed("reading a heartbeat", &self.url, e))
    }

    async fn results_of(&self, generation: u64, part: u32) -> anyhow::Result<PartOutcome> {
        let text: Option<String> = redis::cmd("GET")
            .arg(self.key(generation, &format!("results:{part}")))
            .query_async(&mut self.con())
            .await
            .map_err(|e| failed("reading results", &self.url, e))?;
        Ok(match text {
            Some(text) => PartOutcome::HandedIn(text),
            None => PartOutcome::Failed("its handed-in results have expired".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_done_failed_running_or_stopped() {
        let meta = HashMap::from([
            ("done:0".to_owned(), HANDED_IN.to_owned()),
            (
                "done:1".to_owned(),
                format!("{FAILED_PREFIX}the attack failed"),
            ),
        ]);
        // Parts 0 and 1 answered (alive or not); 2 beats; 3 went silent.
        assert_eq!(
            statuses(&meta, &[false, true, true, false]),
            vec![
                Status::HandedIn,
                Status::Failed("the attack failed".into()),
                Status::Running,
                Status::Stopped,
            ]
        );
    }
}
