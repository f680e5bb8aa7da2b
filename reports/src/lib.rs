//! roomstorm's HTML reports: one self-contained page per run, and a comparison of two runs.
//!
//! People read load-test results in a browser, often offline and weeks later, to decide
//! whether a change made things worse. So a report is a single HTML file that needs nothing
//! else: charts drawn by plotters as inline SVG, one inline stylesheet with the system's fonts,
//! no script, no link or image from the network; it scales from a phone to a wide screen and
//! prints. It is rendered from results.json alone (`roomstorm-results`), so it can be rendered
//! again at any time (`loadgen report`), and this crate does not depend on the load generator
//! (which depends on it, to write `report.html` after every run).
//!
//! - [`render_report`]: verdict, summary, thresholds, eight charts (fan-out latency histogram,
//!   percentiles on a "nines" axis, completion time, fan-out size, members and throughput over
//!   time, fan-out latency over time with faults, per-worker balance, errors over time) and the
//!   tables (percentiles, member groups, the protocol profile and what it could not place,
//!   errors, faults, scenario, environment), and for stepped runs the latency-throughput curve with a row per
//!   step.
//! - [`render_comparison`]: both runs overlaid, and a [`ComparisonVerdict`] that says whether
//!   the new run regressed beyond a tolerance (rules in [`gate`], the page in [`compare`]).

mod chart_frame;
mod charts;
pub mod compare;
mod data;
pub mod format;
pub mod gate;
mod groups;
mod page;
mod protocol;
mod report;
mod steps;

pub use compare::RunLabels;
pub use gate::{Check, CheckStatus, ComparisonVerdict};
use roomstorm_results::Results;

/// The report of one run, a complete HTML document.
pub fn render_report(results: &Results) -> anyhow::Result<String> {
    report::render(results)
}

/// The comparison of `new` against `base`, a complete HTML document, and its verdict.
/// `tolerance` is a fraction: 0.1 lets tail latency and error rates grow by 10%. `labels` say
/// what each run is (empty: just "base" and "new").
pub fn render_comparison(
    base: &Results,
    new: &Results,
    tolerance: f64,
    labels: &RunLabels,
) -> anyhow::Result<(String, ComparisonVerdict)> {
    compare::render(base, new, tolerance, labels)
}
