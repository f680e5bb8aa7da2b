//! `loadgen figures`: the few numbers the bench/ scripts judge, read from results.json files,
//! with their median over several runs or their slope against another figure (memory per
//! member between stages of different sizes). Kept here so that scripts do not parse JSON.
//!
//! ```text
//! loadgen figures -m held_per_s -m cpu_s:server runs/x/ours-*/results.json
//! loadgen figures --median -m fanout_p99_ms runs/x/*/results.json     # one line: the medians
//! loadgen figures --per members -m rss_kib:server stage-*/results.json # one line: the slopes
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use crate::results::{Component, Results, is_generator};

#[derive(Debug, Clone, Args)]
pub struct FiguresArgs {
    /// The results.json files, one row each.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A figure to print (repeatable, in order). `members` (peak connected), `connects`,
    /// `connect_errors`, `join_timeouts`, `errors`, `expected`, `delivered`, `lost`,
    /// `received` (every message event received), `fanout_p50_ms`, `fanout_p99_ms`,
    /// `fanout_p999_ms`, `fanout_max_ms`, `deliveries_per_s` (first receipts per second from
    /// the first to the last second with messages due), `held_per_s` (deliveries/s of the highest step
    /// held, 0 if none), `cpu_s:C` (CPU seconds) and `rss_kib:C` (peak resident memory of the
    /// summed samples) of components C: a name from `resources`, `NAME*` for every component
    /// starting with NAME, `loadgen` (the generator's processes) or `server` (every other
    /// component); `us_per_delivery:C` (CPU µs of components C per chat delivery made, the
    /// `delivered` count); `generator_us_per_received` (loadgen CPU µs per message event
    /// received).
    #[arg(short, long = "metric", value_name = "FIGURE", required = true)]
    pub metrics: Vec<String>,
    /// Print only the median of each figure over the files, tab-separated, on one line.
    #[arg(long, conflicts_with = "per")]
    pub median: bool,
    /// Print only each figure's slope against this figure (least squares over the files),
    /// tab-separated, on one line: e.g. `--per members -m rss_kib:server` gives KiB per member.
    #[arg(long, value_name = "FIGURE")]
    pub per: Option<String>,
}

pub fn main(args: FiguresArgs) -> anyhow::Result<bool> {
    let mut rows = Vec::new();
    for file in &args.files {
        let results = Results::read(file)?;
        let row = args
            .metrics
            .iter()
            .map(|m| figure(&results, m))
            .collect::<anyhow::Result<Vec<f64>>>()
            .with_context(|| file.display().to_string())?;
        let x = match &args.per {
            Some(per) => Some(figure(&results, per).with_context(|| file.display().to_string())?),
            None => None,
        };
        rows.push((row, x));
    }
    let column = |i: usize| rows.iter().map(|(r, _)| r[i]).collect::<Vec<f64>>();
    if args.median {
        let medians: Vec<String> = (0..args.metrics.len())
            .map(|i| format_value(median(&column(i))))
            .collect();
        println!("{}", medians.join("\t"));
        return Ok(true);
    }
    if let Some(per) = &args.per {
        let xs: Vec<f64> = rows.iter().filter_map(|(_, x)| *x).collect();
        let mut slopes = Vec::new();
        for i in 0..args.metrics.len() {
            let Some(s) = slope(&xs, &column(i)) else {
                bail!("--per {per}: needs at least two files with different {per}");
            };
            slopes.push(format_value(s));
        }
        println!("{}", slopes.join("\t"));
        return Ok(true);
    }
    let mut table: Vec<Vec<String>> = Vec::new();
    table.push(
        std::iter::once("file".to_owned())
            .chain(args.metrics.iter().cloned())
            .collect(),
    );
    for (file, (row, _)) in args.files.iter().zip(&rows) {
        table.push(
            std::iter::once(file.display().to_string())
                .chain(row.iter().map(|v| format_value(*v)))
                .collect(),
        );
    }
    if rows.len() > 1 {
        table.push(
            std::iter::once("median".to_owned())
                .chain((0..args.metrics.len()).map(|i| format_value(median(&column(i)))))
                .collect(),
        );
    }
    print!("{}", align(&table));
    Ok(true)
}

/// One figure of one run.
pub fn figure(r: &Results, name: &str) -> anyhow::Result<f64> {
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(match name {
        "members" => r.timeline.iter().map(|s| s.members).max().unwrap_or(0) as f64,
        "connects" => r.counters.connects as f64,
        "connect_errors" => r.counters.connect_errors as f64,
        "join_timeouts" => r.counters.join_timeouts as f64,
        "errors" => r.errors.values().sum::<u64>() as f64,
        "expected" => r.deliveries.expected as f64,
        "delivered" => r.deliveries.delivered as f64,
        "lost" => r.deliveries.lost as f64,
        "received" => r.counters.received_messages_total as f64,
        "fanout_p50_ms" => ms(r.latency.fanout.p50_us),
        "fanout_p99_ms" => ms(r.latency.fanout.p99_us),
        "fanout_p999_ms" => ms(r.latency.fanout.p999_us),
        "fanout_max_ms" => ms(r.latency.fanout.max_us),
        "deliveries_per_s" => {
            let sending: Vec<_> = r.timeline.iter().filter(|s| s.sends > 0).collect();
            let first = sending.first().map_or(0, |s| s.t);
            let last = sending.last().map_or(0, |s| s.t);
            let receipts: u64 = r
                .timeline
                .iter()
                .filter(|s| s.t >= first && s.t <= last)
                .map(|s| s.deliveries)
                .sum();
            if sending.is_empty() {
                0.0
            } else {
                receipts as f64 / f64::from(last - first + 1)
            }
        }
        "held_per_s" => r
            .highest_step_held
            .and_then(|i| r.steps.iter().find(|s| s.index == i))
            .map_or(0.0, |s| s.deliveries_per_s),
        "generator_us_per_received" => {
            let received = r.counters.received_messages_total;
            if received == 0 {
                bail!("no message was received: CPU per message is undefined");
            }
            cpu_seconds(&components(r, "loadgen")?) * 1e6 / received as f64
        }
        _ => {
            if let Some(c) = name.strip_prefix("cpu_s:") {
                cpu_seconds(&components(r, c)?)
            } else if let Some(c) = name.strip_prefix("us_per_delivery:") {
                let delivered = r.deliveries.delivered;
                if delivered == 0 {
                    bail!("nothing was delivered: CPU per delivery is undefined");
                }
                cpu_seconds(&components(r, c)?) * 1e6 / delivered as f64
            } else if let Some(c) = name.strip_prefix("rss_kib:") {
                peak_rss_kib(&components(r, c)?) as f64
            } else {
                bail!("unknown figure {name:?}; see `loadgen figures --help`");
            }
        }
    })
}

/// The components a selector names (see [`FiguresArgs::metrics`]); an error when none.
fn components<'a>(r: &'a Results, selector: &str) -> anyhow::Result<Vec<&'a Component>> {
    let Some(resources) = &r.resources else {
        bail!("no `resources` in these results (written by an older loadgen)");
    };
    let chosen: Vec<&Component> = resources
        .components
        .iter()
        .filter(|c| match selector {
            "loadgen" => is_generator(&c.name),
            "server" => !is_generator(&c.name),
            _ => match selector.strip_suffix('*') {
                Some(prefix) => c.name.starts_with(prefix),
                None => c.name == selector,
            },
        })
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = resources
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        bail!(
            "no component {selector:?} in `resources`; there are: {}",
            names.join(", ")
        );
    }
    Ok(chosen)
}

fn cpu_seconds(cs: &[&Component]) -> f64 {
    cs.iter().map(|c| c.cpu_seconds).sum()
}

/// The highest sum of the components' resident memory in one sampling pass (one sampler
/// writes every component's n-th sample in the same pass), or the sum of their peaks when
/// there are no series.
fn peak_rss_kib(cs: &[&Component]) -> u64 {
    let len = cs.iter().map(|c| c.series.len()).max().unwrap_or(0);
    if len == 0 {
        return cs.iter().map(|c| c.peak_rss_kib).sum();
    }
    (0..len)
        .map(|i| {
            cs.iter()
                .filter_map(|c| c.series.get(i))
                .map(|s| s.rss_kib)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// The median; the mean of the two middle values for an even count; NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The least-squares slope of `ys` against `xs`; None without two different xs.
pub fn slope(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return None;
    }
    let mx = xs[..n].iter().sum::<f64>() / n as f64;
    let my = ys[..n].iter().sum::<f64>() / n as f64;
    let sxx: f64 = xs[..n].iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = xs[..n]
        .iter()
        .zip(&ys[..n])
        .map(|(x, y)| (x - mx) * (y - my))
        .sum();
    Some(sxy / sxx)
}

/// Whole numbers without decimals, others with 3 (trailing zeros dropped).
pub fn format_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let text = format!("{v:.3}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn align(table: &[Vec<String>]) -> String {
    let columns = table.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            table
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in table {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Environment, ResourceSample, Resources};

    #[test]
    fn medians_and_slopes() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        // RSS 100 MiB at 10k members, 260 at 20k, 420 at 30k: 16 KiB per member, whatever
        // the fixed part.
        let xs = [10_000.0, 20_000.0, 30_000.0];
        let ys = [102_400.0, 266_240.0, 430_080.0];
        assert_eq!(slope(&xs, &ys), Some(16.384));
        assert_eq!(slope(&[1.0, 1.0], &[2.0, 3.0]), None);
        assert_eq!(slope(&[1.0], &[2.0]), None);
    }

    #[test]
    fn formats_values() {
        assert_eq!(format_value(29_506.0), "29506");
        assert_eq!(format_value(1.25), "1.25");
        assert_eq!(format_value(2.0 / 3.0), "0.667");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    fn component(name: &str, cpu: f64, rss: &[u64]) -> Component {
        Component {
            name: name.into(),
            cpu_seconds: cpu,
            peak_rss_kib: rss.iter().copied().max().unwrap_or(0),
            series: rss
                .iter()
                .enumerate()
                .map(|(t, r)| ResourceSample {
                    t: t as f64,
                    cpu_percent: 0.0,
                    rss_kib: *r,
                })
                .collect(),
        }
    }

    #[test]
    fn selects_components() {
        let env = Environment::of_machine("h".into(), 2, "linux".into(), "abc1234".into());
        let mut r = Results::new(
            serde_json::json!({"name": "synthetic"}),
            env,
            std::time::SystemTime::now(),
            std::time::Duration::from_secs(30),
        );
        r.counters.received_messages_total = 2_000_000;
        r.resources = Some(Resources::new(
            1.0,
            vec![
                component("loadgen", 4.0, &[10, 20]),
                component("chat worker 0", 1.5, &[100, 300]),
                component("chat worker 1", 2.5, &[300, 100]),
                component("nginx", 1.0, &[50, 50]),
            ],
        ));
        let f = |name: &str| figure(&r, name).unwrap();
        assert_eq!(f("cpu_s:loadgen"), 4.0);
        assert_eq!(f("cpu_s:server"), 5.0);
        assert_eq!(f("cpu_s:chat worker*"), 4.0);
        assert_eq!(f("cpu_s:nginx"), 1.0);
        // The peak of the sum, not the sum of the peaks.
        assert_eq!(f("rss_kib:chat worker*"), 400.0);
        assert_eq!(f("generator_us_per_received"), 2.0);
        let undelivered = figure(&r, "us_per_delivery:chat worker*").unwrap_err();
        assert!(undelivered.to_string().contains("nothing was delivered"));
        r.deliveries.delivered = 1_000_000;
        assert_eq!(figure(&r, "us_per_delivery:chat worker*").unwrap(), 4.0);
        let missing = figure(&r, "cpu_s:redis").unwrap_err().to_string();
        assert!(
            missing.contains("chat worker 0, chat worker 1"),
            "{missing}"
        );
        assert!(figure(&r, "bogus").is_err());
    }
}
