//! The system under test: a URL given by the user, or the project's local stack that loadgen
//! starts itself, logs into the run folder, injects faults into, and always tears down.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chat_server::stack::{Stack, StackConfig};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::clock::now_us;
use crate::scenario::{Fault, FaultAction, LocalStack};

/// A running target; `Local` owns the stack and stops it in [`Target::shutdown`].
pub enum Target {
    Url(String),
    Local(Box<Mutex<Stack>>),
}

impl Target {
    /// Starts the local stack, its logs in `run_dir/stack`.
    pub async fn start_local(local: &LocalStack, run_dir: &Path) -> anyhow::Result<Target> {
        let config = StackConfig {
            workers: local.workers as usize,
            listen: "127.0.0.1:0".parse()?,
            redis: None,
            nginx_workers: local.nginx_workers as usize,
            run_dir: Some(run_dir.join("stack")),
            worker_args: Vec::new(),
            server_exe: None,
            server_prefix: Vec::new(),
        };
        let stack = Stack::start(config)
            .await
            .context("cannot start the local stack")?;
        Ok(Target::Local(Box::new(Mutex::new(stack))))
    }

    pub async fn url(&self) -> String {
        match self {
            Target::Url(url) => url.clone(),
            Target::Local(stack) => stack.lock().await.info().url.clone(),
        }
    }

    /// Per-worker counters, when the target is ours and local.
    pub async fn worker_stats(&self) -> Vec<chat_server::metrics::StatsSnapshot> {
        let Target::Local(stack) = self else {
            return Vec::new();
        };
        let workers = stack.lock().await.info().workers.clone();
        let mut stats = Vec::new();
        for worker in workers {
            match chat_server::probe::http_get(worker, "/stats", Duration::from_secs(2)).await {
                Ok((200, body)) => {
                    if let Ok(s) = serde_json::from_str(&body) {
                        stats.push(s);
                    }
                }
                _ => stats.push(chat_server::metrics::StatsSnapshot::default()),
            }
        }
        stats
    }

    pub async fn shutdown(self) {
        if let Target::Local(stack) = self {
            stack.into_inner().stop().await;
        }
    }
}

/// A fault as it happened, for results.json.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub at_s: f64,
    pub action: String,
    pub injected_us: u64,
    pub ended_us: Option<u64>,
    pub error: Option<String>,
}

/// Injects each fault at its time (counted from `start_us`); returns what happened.
pub async fn inject_faults(target: &Target, faults: &[Fault], start_us: u64) -> Vec<FaultRecord> {
    let Target::Local(stack) = target else {
        return Vec::new();
    };
    let mut records = Vec::new();
    let mut sorted: Vec<&Fault> = faults.iter().collect();
    sorted.sort_by_key(|f| f.at);
    for fault in sorted {
        let due = start_us + fault.at.as_micros() as u64;
        tokio::time::sleep_until(crate::clock::instant_at(due).into()).await;
        let injected_us = now_us();
        let (action, result) = apply(stack, fault.action).await;
        tracing::info!("fault at {:?}: {action}", fault.at);
        records.push(FaultRecord {
            at_s: fault.at.as_secs_f64(),
            action,
            injected_us,
            ended_us: Some(now_us()),
            error: result.err().map(|e| format!("{e:#}")),
        });
    }
    records
}

async fn apply(stack: &Mutex<Stack>, action: FaultAction) -> (String, anyhow::Result<()>) {
    match action {
        FaultAction::KillWorker(worker) => {
            let result = stack
                .lock()
                .await
                .kill_worker(worker as usize)
                .await
                .map(drop);
            (format!("kill_worker {worker}"), result)
        }
        FaultAction::StopRedis(down) => {
            let result = async {
                stack.lock().await.stop_redis().await?;
                tokio::time::sleep(down).await;
                stack.lock().await.restart_redis().await
            }
            .await;
            (format!("stop_redis for {down:?}"), result)
        }
        FaultAction::PauseWorker { worker, duration } => {
            let result = async {
                stack.lock().await.pause_worker(worker as usize).await?;
                tokio::time::sleep(duration).await;
                stack
                    .lock()
                    .await
                    .resume_worker(worker as usize)
                    .await
                    .map(drop)
            }
            .await;
            (format!("pause_worker {worker} for {duration:?}"), result)
        }
    }
}
