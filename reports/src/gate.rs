//! The CI gate of a comparison: did the new run get worse than the base beyond a tolerance?
//!
//! `loadgen compare base.json new.json` exits 1 on a regression, so the rules are few,
//! explicit, and kept here apart from the page that shows them (`compare`): tail latency
//! (fan-out p99 and p99.9, completion p99) may not grow by more than the tolerance, and neither
//! may the share of deliveries lost or of connection attempts failed; going from none to some
//! is always a regression.

use roomstorm_results::{Percentiles, Results};

use crate::format::{self, count};

/// How one compared metric came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// Within the tolerance.
    Same,
    /// Better by more than the tolerance.
    Improved,
    /// Worse by more than the tolerance: fails the comparison.
    Regressed,
    /// One of the runs has no data for it (nothing to compare).
    NoData,
}

impl CheckStatus {
    pub fn word(self) -> &'static str {
        match self {
            CheckStatus::Same => "same",
            CheckStatus::Improved => "improved",
            CheckStatus::Regressed => "REGRESSED",
            CheckStatus::NoData => "no data",
        }
    }
}

/// One compared metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The metric, named like a threshold (`fanout.p99`, `lost`, ...).
    pub metric: &'static str,
    /// The compared values: µs for latencies, fractions for rates.
    pub base: f64,
    pub new: f64,
    /// The values as shown (with counts for rates).
    pub base_text: String,
    pub new_text: String,
    pub status: CheckStatus,
    /// The rule applied, in words.
    pub rule: String,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonVerdict {
    /// True when any check regressed.
    pub regressed: bool,
    /// The tolerance applied, as a fraction (0.1 = 10%).
    pub tolerance: f64,
    pub checks: Vec<Check>,
}

impl ComparisonVerdict {
    /// The checks that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Regressed)
    }
}

/// Judges `new` against `base`: every check of the module doc, with `tolerance` a fraction.
pub fn judge(base: &Results, new: &Results, tolerance: f64) -> anyhow::Result<ComparisonVerdict> {
    anyhow::ensure!(
        tolerance.is_finite() && tolerance >= 0.0,
        "the tolerance must be a fraction of 0 or more, not {tolerance}"
    );
    let tol_text = format!("{}%", format::rate(tolerance * 100.0));
    let latency =
        |metric: &'static str, b: &Percentiles, n: &Percentiles, pick: fn(&Percentiles) -> u64| {
            let (bv, nv) = (pick(b) as f64, pick(n) as f64);
            let status = if b.count == 0 || n.count == 0 {
                CheckStatus::NoData
            } else if nv > bv * (1.0 + tolerance) {
                CheckStatus::Regressed
            } else if nv < bv * (1.0 - tolerance) {
                CheckStatus::Improved
            } else {
                CheckStatus::Same
            };
            let show = |p: &Percentiles, v: f64| {
                if p.count == 0 {
                    "no data".to_owned()
                } else {
                    format::us_f(v)
                }
            };
            Check {
                metric,
                base: bv,
                new: nv,
                base_text: show(b, bv),
                new_text: show(n, nv),
                status,
                rule: format!("may grow by at most {tol_text}"),
            }
        };
    // A rate of bad events (lost deliveries, failed connects): worse when the count grew and
    // the rate grew beyond the tolerance (from zero, any growth).
    let rate = |metric: &'static str, (bn, bd): (u64, u64), (nn, nd): (u64, u64), rule: &str| {
        let r = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let (br, nr) = (r(bn, bd), r(nn, nd));
        let status = if nn > bn && nr > br * (1.0 + tolerance) {
            CheckStatus::Regressed
        } else if nr < br * (1.0 - tolerance) {
            CheckStatus::Improved
        } else {
            CheckStatus::Same
        };
        Check {
            metric,
            base: br,
            new: nr,
            base_text: format!("{} ({})", count(bn), format::pct(br)),
            new_text: format!("{} ({})", count(nn), format::pct(nr)),
            status,
            rule: rule.replace("{tol}", &tol_text),
        }
    };
    let (bl, nl) = (&base.latency, &new.latency);
    let (bd, nd) = (&base.deliveries, &new.deliveries);
    let (bc, nc) = (&base.counters, &new.counters);
    let mut ratio = rate(
        "delivery_ratio",
        (bd.expected - bd.delivered.min(bd.expected), bd.expected),
        (nd.expected - nd.delivered.min(nd.expected), nd.expected),
        "may drop by at most {tol} of the base's shortfall (any drop from 100%)",
    );
    (ratio.base, ratio.new) = (bd.delivery_ratio, nd.delivery_ratio);
    (ratio.base_text, ratio.new_text) = (
        format::pct(bd.delivery_ratio),
        format::pct(nd.delivery_ratio),
    );
    let checks = vec![
        latency("fanout.p99", &bl.fanout, &nl.fanout, |p| p.p99_us),
        latency("fanout.p999", &bl.fanout, &nl.fanout, |p| p.p999_us),
        latency("completion.p99", &bl.completion, &nl.completion, |p| {
            p.p99_us
        }),
        rate(
            "lost",
            (bd.lost, bd.expected),
            (nd.lost, nd.expected),
            "share of owed deliveries lost may grow by at most {tol} (any loss after none)",
        ),
        ratio,
        rate(
            "connect errors",
            (bc.connect_errors, bc.connects + bc.connect_errors),
            (nc.connect_errors, nc.connects + nc.connect_errors),
            "share of failed attempts may grow by at most {tol} (any after none)",
        ),
    ];
    let regressed = checks.iter().any(|c| c.status == CheckStatus::Regressed);
    Ok(ComparisonVerdict {
        regressed,
        tolerance,
        checks,
    })
}
