//! Rate steps (`ramp` scenarios): the latency-throughput curve and the table of steps.
//!
//! A stepped run exists to find the highest rate a cluster holds, so its report leads with the
//! curve of fan-out p99 against the deliveries per second each step made, and a comparison of
//! two stepped runs (ours against a peer, or before and after a change) overlays both curves.
//! Shared by the report and the comparison so both draw the same thing.

use roomstorm_results::{Results, StepResult, threshold};

use crate::charts::{self, Chart, StepSeries};
use crate::format::{count, rate, us};
use crate::page::{self, badge, num};

/// The highest step that held, every step before it holding too (as the run judged it).
pub fn highest_held(r: &Results) -> Option<&StepResult> {
    let index = r.highest_step_held?;
    r.steps.iter().find(|s| s.index == index)
}

/// One run's steps as a chart series.
pub fn series(r: &Results, label: &str, color: plotters::style::RGBColor) -> StepSeries {
    StepSeries {
        label: label.to_owned(),
        color,
        points: r
            .steps
            .iter()
            .map(|s| (s.deliveries_per_s, s.fanout_p99_us as f64, s.held))
            .collect(),
    }
}

/// The fan-out p99 limit of the run's thresholds (`fanout.p99 < 50ms`), in µs.
pub fn p99_limit_us(r: &Results) -> Option<f64> {
    r.thresholds
        .iter()
        .find(|t| t.rule.metric == threshold::Metric::FanoutP99)
        .map(|t| t.rule.limit.measured_units())
}

/// The step chart of one or more runs.
pub fn chart(runs: &[StepSeries], limit_us: Option<f64>, caption: String) -> anyhow::Result<Chart> {
    let title = "Fan-out p99 against throughput, by rate step";
    Ok(Chart {
        id: "step-curve",
        title: title.to_owned(),
        caption,
        svg: charts::both(|size| charts::step_chart(size, title, runs, limit_us))?,
    })
}

/// The report's section: the curve and a row per step.
pub fn section(r: &Results) -> anyhow::Result<String> {
    if r.steps.is_empty() {
        return Ok(page::table(&[], Vec::new(), "This run had no rate steps."));
    }
    let limit = p99_limit_us(r);
    let verdict = match highest_held(r) {
        Some(s) => format!(
            "The highest step held is step {} (×{:.2}): {} deliveries per second.",
            s.index,
            s.multiplier,
            rate(s.deliveries_per_s)
        ),
        None => "No step held.".to_owned(),
    };
    let caption = format!(
        "One dot per step: filled where the step held (every fan-out latency and loss threshold \
         met by its messages), hollow where it broke; a step counts as held when every step \
         before it held too. {verdict}"
    );
    let chart = chart(&[series(r, "fan-out p99", charts::BLUE)], limit, caption)?;
    let rows = r
        .steps
        .iter()
        .map(|s| {
            vec![
                num(&s.index.to_string()),
                num(&format!("×{:.2}", s.multiplier)),
                num(&format!("{:.0}-{:.0} s", s.from_s, s.to_s)),
                num(&count(s.planned)),
                num(&count(s.sends)),
                num(&rate(s.deliveries_per_s)),
                num(&us(s.fanout_p99_us)),
                num(&us(s.fanout_max_us)),
                num(&count(s.lost)),
                badge(Some(s.held)),
            ]
        })
        .collect();
    let table = page::table(
        &[
            "step#",
            "rate#",
            "time#",
            "planned#",
            "sent#",
            "deliveries/s#",
            "fan-out p99#",
            "fan-out max#",
            "lost#",
            "held",
        ],
        rows,
        "",
    );
    Ok(format!("{}{table}", page::charts(&[chart])))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use roomstorm_results::{Environment, Results, ThresholdResult};

    use super::p99_limit_us;

    /// The fan-out p99 limit of a run judged by `rules`.
    fn limit(rules: &[&str]) -> Option<f64> {
        let mut r = Results::new(
            serde_json::json!({"name": "t"}),
            Environment::of_machine("h".into(), 1, "linux".into(), "abc".into()),
            UNIX_EPOCH,
            Duration::from_secs(1),
        );
        r.thresholds = rules
            .iter()
            .map(|rule| ThresholdResult {
                rule: rule.parse().expect("rule"),
                measured: 0.0,
                passed: true,
            })
            .collect();
        p99_limit_us(&r)
    }

    #[test]
    fn limits_read_as_scenarios_write_them() {
        assert_eq!(limit(&["fanout.p99 < 50ms"]), Some(50_000.0));
        assert_eq!(limit(&["fanout.p99 <= 1.5s"]), Some(1_500_000.0));
        assert_eq!(limit(&["lost == 0", "fanout.p99 < 200us"]), Some(200.0));
        assert_eq!(limit(&["fanout.p99 < 2m"]), Some(120_000_000.0));
        assert_eq!(limit(&["fanout.max < 50ms", "lost == 0"]), None);
        assert_eq!(limit(&[]), None);
    }
}
