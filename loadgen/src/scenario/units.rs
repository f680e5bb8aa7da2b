//! The scenario schema's serde helpers for durations and thresholds.
//!
//! The readers and writers themselves live in `roomstorm_results::units` and
//! `roomstorm_results::threshold` (one parser for scenario files and results files); what stays
//! here is how a [`Scenario`](super::Scenario) writes itself back in its file's own shape.

use std::time::Duration;

pub use roomstorm_results::threshold::Threshold;
pub use roomstorm_results::units::{DURATION_HINT, format_duration, parse_duration, parse_percent};

/// Serde helper: writes a [`Duration`] as its scenario-file text, e.g. `"15s"`.
pub(crate) fn serialize_duration<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*duration))
}

/// Thresholds are written back as the `[thresholds]` table they came from.
pub(crate) fn serialize_thresholds<S: serde::Serializer>(
    thresholds: &[Threshold],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(thresholds.len()))?;
    for threshold in thresholds {
        map.serialize_entry(threshold.metric.as_str(), &threshold.condition())?;
    }
    map.end()
}
