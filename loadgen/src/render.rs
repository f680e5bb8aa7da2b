//! `loadgen report` and `loadgen compare`, and the report.html written after every run.
//!
//! The pages themselves come from `roomstorm-reports` (which reads results.json without
//! loadgen); this module only reads files, writes pages and turns a comparison into an exit
//! status that can gate CI: 0 no regression, 1 a regression, 2 bad input.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::{CompareArgs, ReportArgs};
use crate::results::Results;

/// Writes `report.html` beside `results.json` in `dir`; returns its path.
pub fn write_report(results: &Results, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("report.html");
    let html = roomstorm_reports::render_report(results)?;
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `loadgen report RESULTS [-o OUT]`: Ok(true) once written.
pub fn report(args: ReportArgs) -> anyhow::Result<bool> {
    let results = Results::read(&args.results)?;
    let out = args
        .output
        .unwrap_or_else(|| beside(&args.results, "report.html"));
    check_output(&[&args.results], &out)?;
    let html = roomstorm_reports::render_report(&results)?;
    std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
    println!("report: {}", out.display());
    Ok(true)
}

/// `loadgen compare BASE NEW [-o OUT] [--tolerance T]`: Ok(false) on a regression.
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

/// `file` in the folder of `path` (the current folder for a bare file name).
fn beside(path: &Path, file: &str) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from(file), |p| p.join(file))
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

/// Refuses to write a page over one of its inputs.
pub fn check_output(inputs: &[&Path], output: &Path) -> anyhow::Result<()> {
    for input in inputs {
        if *input == output {
            bail!("{} is an input; choose another -o", output.display());
        }
    }
    Ok(())
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

    #[test]
    fn pages_go_beside_their_results() {
        assert_eq!(
            beside(Path::new("runs/x/results.json"), "report.html"),
            PathBuf::from("runs/x/report.html")
        );
        assert_eq!(
            beside(Path::new("results.json"), "report.html"),
            PathBuf::from("report.html")
        );
    }
}
