//! Rate steps (`ramp` scenarios): the latency-throughput curve and the table of steps.
//!
//! A stepped run exists to find the highest rate a cluster holds, so its report leads with the
//! curve of fan-out p99 against the deliveries per second each step made, and a comparison of
//! two stepped runs (ours against a peer, or before and after a change) overlays both curves.
//! Shared by the report and the comparison so both draw the same thing.

use roomstorm_results::{Results, StepResult};

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
    r.thresholds.iter().find_map(|t| {
        let rest = t.rule.trim().strip_prefix("fanout.p99")?;
        let value = rest.trim_start().trim_start_matches(['<', '=', '>', ' ']);
        duration_us(value)
    })
}

/// A duration as scenarios write them ("50ms", "1.5s", "200us"), in µs.
fn duration_us(text: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 6] = [
        ("ms", 1e3),
        ("us", 1.0),
        ("µs", 1.0),
        ("ns", 1e-3),
        ("m", 60e6),
        ("s", 1e6),
    ];
    let text = text.trim();
    UNITS.iter().find_map(|(unit, scale)| {
        let number: f64 = text.strip_suffix(unit)?.trim().parse().ok()?;
        (number.is_finite() && number >= 0.0).then_some(number * scale)
    })
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
    use super::duration_us;

    #[test]
    fn limits_read_as_scenarios_write_them() {
        assert_eq!(duration_us("50ms"), Some(50_000.0));
        assert_eq!(duration_us("1.5s"), Some(1_500_000.0));
        assert_eq!(duration_us("200us"), Some(200.0));
        assert_eq!(duration_us("2m"), Some(120_000_000.0));
        assert_eq!(duration_us("fast"), None);
        assert_eq!(duration_us("-1ms"), None);
    }
}
