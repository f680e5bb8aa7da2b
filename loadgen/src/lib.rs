//! roomstorm's load generator: simulated chat members driven by goose, measuring what matters
//! for chat (connect and join times, end-to-end fan-out latency from the intended send time,
//! delivery completeness), against our cluster or any server speaking the original protocol.
//!
//! Kept apart like oha: `scenario` (what to run), `member` and `attack` (the client side:
//! simulated members as goose users; `pace`, when they mean to send; `profile`, how they talk
//! to the app: the protocol profile), `measure` (histograms,
//! delivery ledger, timeline: the monitor), `results` (the written record, exact merges),
//! `progress` (the live printer), `summary` (the printed end of a run), `judging` (thresholds,
//! faults and rate steps), `target` (the system under test and its faults), `admin` (a URL
//! target's workers, from its cluster master), `coord` (the coordinator Redis of a run across
//! hosts) and `run` (the order of it all). Each command owns its arguments: `run` (and
//! `collect`), `merge`, `report`, `compare`, `figures`; `cli` only dispatches.

pub mod acks;
pub mod admin;
pub mod attack;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod context;
pub mod coord;
pub mod figures;
pub mod groups;
pub mod judging;
pub mod measure;
pub mod member;
pub mod merge;
pub mod pace;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod report;
pub mod resources;
/// results.json: the `roomstorm-results` crate, so that reports can read it without loadgen.
pub use roomstorm_results as results;
pub mod run;
pub mod scenario;
pub mod signals;
pub mod summary;
pub mod target;

#[cfg(test)]
mod results_tests;
