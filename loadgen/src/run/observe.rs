//! What a run watches beside its members: the CPU and memory of the processes involved, and
//! the workers' own counters before the run and at its quiet point.

use crate::resources::{self, Sources};
use crate::results::WorkerStats;
use crate::target::RunningTarget;

/// The processes whose CPU and memory the run samples: this one (and `parts`), the local
/// stack's, when it is ours, and those named by `--sample`.
pub(super) async fn sources(
    target: &RunningTarget,
    parts: Vec<u32>,
    named: &[(String, u32)],
) -> Sources {
    let mut sources = match target {
        RunningTarget::Local(stack) => Sources {
            generator_name: resources::GENERATOR.to_owned(),
            generator_pids: vec![std::process::id()],
            master: stack.lock().await.master_pid(),
            named: Vec::new(),
        },
        RunningTarget::Embedded { .. } => {
            Sources::generator_only(resources::GENERATOR_WITH_EMBEDDED)
        }
        // Not this machine's processes, even when `--admin` named the workers.
        RunningTarget::Url { .. } => Sources::generator_only(resources::GENERATOR),
    };
    sources.generator_pids.extend(parts);
    sources.named = named.to_vec();
    sources
}

/// The workers' stats at `at_us` (members per worker at the peak, deliveries so far).
pub(super) async fn sample_workers(
    at_us: u64,
    workers: Vec<std::net::SocketAddr>,
) -> Vec<chat_server::metrics::StatsSnapshot> {
    tokio::time::sleep_until(crate::clock::instant_at(at_us).into()).await;
    crate::target::fetch_worker_stats(&workers).await
}

/// Per worker: members and connections at the quiet point, and deliveries since the start
/// (a worker restarted meanwhile counts from its restart).
pub(super) fn worker_counts(
    before: &[chat_server::metrics::StatsSnapshot],
    at_quiet: &[chat_server::metrics::StatsSnapshot],
) -> Vec<WorkerStats> {
    at_quiet
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let b = before.get(i).cloned().unwrap_or_default();
            let delivered = if q.pid == b.pid {
                q.delivered.saturating_sub(b.delivered)
            } else {
                q.delivered
            };
            WorkerStats {
                index: i as u32,
                members: q.members.max(0) as u64,
                connections: q.sockets.max(0) as u64,
                delivered,
                rooms: q.rooms.max(0) as u64,
            }
        })
        .collect()
}
