//! `loadgen report`, and the report.html written after every run.
//!
//! The page itself comes from `roomstorm-reports` (which reads results.json without loadgen);
//! this module only reads results, writes the page, and decides where pages go (beside their
//! results, never over an input), for `compare` too.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use crate::results::Results;

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The results to render.
    pub results: PathBuf,
    /// Where to write the page (default: report.html beside the results).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

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

/// `file` in the folder of `path` (the current folder for a bare file name).
pub fn beside(path: &Path, file: &str) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from(file), |p| p.join(file))
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
