//! `loadgen merge`: partial results.json files merged exactly (histograms added, counters
//! summed), the thresholds judged again on the merged values.

use std::path::PathBuf;

use clap::Args;

use crate::judging::judge;
use crate::results::{self, Results, Verdict};
use crate::scenario::Threshold;

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Partial results to merge.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged results.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// `loadgen merge`: exact merge, thresholds judged again on the merged values.
pub async fn merge(args: MergeArgs) -> anyhow::Result<bool> {
    let parts = args
        .inputs
        .iter()
        .map(|p| Results::read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let thresholds = parts_thresholds(&parts)?;
    let mut merged = results::merge(&parts)?;
    judge(&mut merged, &thresholds);
    merged.write(&args.output)?;
    println!(
        "merged {} parts into {}",
        parts.len(),
        args.output.display()
    );
    Ok(merged.verdict == Verdict::Pass)
}

/// The thresholds the parts were judged by, typed as results.json carries them. Every part of
/// one run has the same rules; parts that disagree are not parts of one run.
fn parts_thresholds(parts: &[Results]) -> anyhow::Result<Vec<Threshold>> {
    let rules =
        |part: &Results| -> Vec<Threshold> { part.thresholds.iter().map(|t| t.rule).collect() };
    let first = parts.first().map(rules).unwrap_or_default();
    for (i, part) in parts.iter().enumerate().skip(1) {
        anyhow::ensure!(
            rules(part) == first,
            "part {} was judged by other thresholds than part 1: not parts of one run",
            i + 1
        );
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::results::{Environment, ThresholdResult};

    fn judged(rule: &str, measured: f64) -> ThresholdResult {
        ThresholdResult::of(rule.parse().expect("rule"), measured)
    }

    #[test]
    fn merge_judges_with_the_rules_the_parts_carry() {
        let part = |rules: &[&str]| {
            let mut r = Results::new(
                serde_json::json!({"name": "t"}),
                Environment::of_machine("h".into(), 1, "linux".into(), "abc".into()),
                std::time::UNIX_EPOCH,
                Duration::from_secs(1),
            );
            r.apply_thresholds(rules.iter().map(|t| judged(t, 0.0)).collect());
            r
        };
        let rules = ["lost == 0", "fanout.p99 < 50ms"];
        let got = parts_thresholds(&[part(&rules), part(&rules)]).expect("same rules");
        let want: Vec<Threshold> = rules.iter().map(|t| t.parse().expect("rule")).collect();
        assert_eq!(got, want);
        let err = parts_thresholds(&[part(&rules), part(&["lost == 0"])]).expect_err("differ");
        assert!(err.to_string().contains("part 2"), "{err}");
    }
}
