//! `loadgen compare`: two results.json as one HTML overlay, and an exit status that can gate
//! CI: 0 no regression, 1 a regression, 2 bad input.
//!
//! The page and the regression rules come from `roomstorm-reports`; this module owns the
//! command's arguments, the runs' labels and the printed verdict.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::report::{beside, check_output};
use crate::results::Results;

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The reference run's results.json.
    pub base: PathBuf,
    /// The run to judge against it.
    pub new: PathBuf,
    /// Where to write the page (default: compare.html beside the new results).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// How much worse tail latency and error rates may get: `10%` or `0.1`.
    #[arg(long, default_value = "10%", value_parser = parse_tolerance)]
    pub tolerance: f64,
    /// What the base run is, e.g. `node` (default: its folder's name, for a results.json).
    #[arg(long)]
    pub base_label: Option<String>,
    /// What the new run is, e.g. `ours` (default: its folder's name, for a results.json).
    #[arg(long)]
    pub new_label: Option<String>,
}

/// `loadgen compare BASE NEW [-o OUT] [--tolerance T]`: Ok(false) on a regression.
pub fn compare(args: CompareArgs) -> anyhow::Result<bool> {
    let base = Results::read(&args.base)?;
    let new = Results::read(&args.new)?;
    let out = args
        .output
        .unwrap_or_else(|| beside(&args.new, "compare.html"));
    check_output(&[&args.base, &args.new], &out)?;
    let labels = roomstorm_reports::RunLabels {
        base: args.base_label.unwrap_or_else(|| run_label(&args.base)),
        new: args.new_label.unwrap_or_else(|| run_label(&args.new)),
    };
    let (html, verdict) =
        roomstorm_reports::render_comparison(&base, &new, args.tolerance, &labels)?;
    std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
    for check in &verdict.checks {
        println!(
            "  {:<9} {:<15} base {:<22} new {}",
            check.status.word(),
            check.metric,
            check.base_text,
            check.new_text
        );
    }
    let regressions: Vec<&str> = verdict.regressions().map(|c| c.metric).collect();
    let tolerance = roomstorm_reports::format::rate(args.tolerance * 100.0);
    if regressions.is_empty() {
        println!(
            "no regression (tolerance {tolerance}%)   comparison: {}",
            out.display()
        );
    } else {
        println!(
            "REGRESSION in {} (tolerance {tolerance}%)   comparison: {}",
            regressions.join(", "),
            out.display()
        );
    }
    Ok(!verdict.regressed)
}

/// A results file's name for the reader: its folder's for the usual `<run>/results.json`
/// (`runs/b1/run-1/node/results.json` is "node"), else its file stem.
fn run_label(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let folder = path
        .parent()
        .and_then(Path::file_name)
        .map(|s| s.to_string_lossy().into_owned());
    match (stem.as_deref(), folder) {
        (Some("results"), Some(folder)) => folder,
        (stem, _) => stem.unwrap_or_default().to_string(),
    }
}

/// Parses a tolerance: `10%` (a percentage) or `0.1` (a fraction, at most 1).
pub fn parse_tolerance(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse::<f64>()
            .map(|v| v / 100.0)
            .map_err(|_| format!("{text:?} is not a percentage like 10%"))?,
        None => {
            let v: f64 = text
                .parse()
                .map_err(|_| format!("{text:?} is not a tolerance like 10% or 0.1"))?;
            if v > 1.0 {
                return Err(format!(
                    "{text:?}: write a percentage with % (e.g. {text}%) or a fraction up to 1"
                ));
            }
            v
        }
    };
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?}: the tolerance must be 0 or more"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_are_percentages_or_fractions() {
        assert_eq!(parse_tolerance("10%"), Ok(0.1));
        assert_eq!(parse_tolerance(" 2.5 % "), Ok(0.025));
        assert_eq!(parse_tolerance("0.2"), Ok(0.2));
        assert_eq!(parse_tolerance("0"), Ok(0.0));
        assert!(parse_tolerance("10").is_err());
        assert!(parse_tolerance("-5%").is_err());
        assert!(parse_tolerance("ten").is_err());
    }

    #[test]
    fn runs_are_named_by_their_folder() {
        let label = |p: &str| run_label(Path::new(p));
        assert_eq!(label("runs/b1/run-1/node/results.json"), "node");
        assert_eq!(label("reports/tests/fixtures/smoke.json"), "smoke");
        assert_eq!(label("results.json"), "results");
    }
}
