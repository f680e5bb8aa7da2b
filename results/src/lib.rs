//! results.json: the written record of a run, and exact merges of partial records.
//!
//! One machine cannot hold a large run (20,000 open files per process), so a run is split over
//! processes and machines, each writing its own results; merging them must give exactly what
//! one big process would have written. Hence the record keeps raw material, not just
//! summaries: full histograms (HdrHistogram V2, base64) from which every percentile is
//! recomputed after a merge, per-second histograms for the timeline, and plain counters.
//! Every field is documented in `docs/results-schema.md`; the schema is versioned
//! ([`SCHEMA`]) and merges refuse anything else.
//!
//! A crate of its own so that readers of results (reports, comparisons, merges on another
//! machine) need not build the load generator; `loadgen::results` re-exports it.

pub mod histograms;
pub mod threshold;
pub mod timeline;
pub mod units;

mod environment;
mod merge;
mod resources;
mod sanity;
mod schema;
mod timestamp;

pub use crate::environment::Environment;
pub use crate::histograms::{EncodedHistograms, HistogramKind, Histograms, Percentiles};
pub use crate::merge::merge;
pub use crate::resources::{Component, ResourceSample, Resources, generator_bound, is_generator};
pub use crate::schema::{
    AckCounts, Counters, Deliveries, DeliveryTotals, FaultResult, GroupResult, Latency, PartHost,
    ProtocolResult, Results, SCHEMA, Sends, StepResult, TargetKind, ThresholdResult, Verdict,
    WorkerStats,
};
pub use crate::timeline::{SecondStats, merge_timelines};
pub use crate::timestamp::rfc3339;
