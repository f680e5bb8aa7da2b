//! `render_comparison`: the regression verdict on fixture runs (issue 4's acceptance: a 20% p99
//! regression is flagged, two equal runs pass) and the comparison page's contents.

mod support;

use roomstorm_reports::{CheckStatus, ComparisonVerdict, RunLabels, render_comparison};
use roomstorm_results::Results;
use scraper::Html;
use support::*;

fn judge(base: &Results, new: &Results, tolerance: f64) -> (Html, ComparisonVerdict) {
    let (html, verdict) =
        render_comparison(base, new, tolerance, &RunLabels::default()).expect("renders");
    if let Ok(dir) = std::env::var("REPORTS_DUMP") {
        let name = format!("compare-{}.html", verdict.regressed);
        std::fs::write(std::path::Path::new(&dir).join(name), &html).expect("dump");
    }
    let doc = Html::parse_document(&html);
    for link in links(&doc) {
        assert!(!is_network(&link), "network link {link:?}");
    }
    assert!(select(&doc, "script").is_empty());
    (doc, verdict)
}

fn status(v: &ComparisonVerdict, metric: &str) -> CheckStatus {
    v.checks
        .iter()
        .find(|c| c.metric == metric)
        .unwrap_or_else(|| panic!("no check {metric}"))
        .status
}

#[test]
fn two_equal_runs_pass() {
    let r = normal();
    let (doc, v) = judge(&r, &r, 0.10);
    assert!(!v.regressed, "{v:?}");
    assert!(v.checks.iter().all(|c| c.status == CheckStatus::Same));
    let banner = text_of(&select(&doc, "header.banner.pass")[0]);
    assert!(banner.contains("OK"));
}

#[test]
fn a_20_percent_p99_regression_is_flagged() {
    let base = normal();
    let new = slower(&base, 1.2);
    let grown = new.latency.fanout.p99_us as f64 / base.latency.fanout.p99_us as f64;
    assert!((1.19..1.21).contains(&grown), "{grown}");
    let (doc, v) = judge(&base, &new, 0.10);
    assert!(v.regressed);
    assert_eq!(status(&v, "fanout.p99"), CheckStatus::Regressed);
    assert_eq!(status(&v, "lost"), CheckStatus::Same);
    let banner = text_of(&select(&doc, "header.banner.fail")[0]);
    assert!(
        banner.contains("REGRESSION") && banner.contains("fanout.p99"),
        "{banner}"
    );
    let checks = text_of(&select(&doc, "section#checks")[0]);
    assert!(checks.contains("+20."), "{checks}");
    // The verdict comes first, so that it stays in sight when the table scrolls on a phone.
    let first = select(&doc, "section#checks tbody tr td:first-child .badge");
    assert_eq!(first.len(), v.checks.len());
    assert!(first.iter().any(|b| text_of(b) == "FAIL"));
    // Within a wider tolerance it passes; the other way round it is an improvement.
    assert!(!judge(&base, &new, 0.25).1.regressed);
    let (_, back) = judge(&new, &base, 0.10);
    assert!(!back.regressed);
    assert_eq!(status(&back, "fanout.p99"), CheckStatus::Improved);
}

#[test]
fn losses_and_connect_errors_after_none_regress() {
    let base = normal();
    let mut lossy = base.clone();
    lossy.deliveries.delivered -= 3;
    lossy.deliveries.lost += 3;
    lossy.deliveries.delivery_ratio =
        lossy.deliveries.delivered as f64 / lossy.deliveries.expected as f64;
    let (_, v) = judge(&base, &lossy, 0.10);
    assert!(v.regressed);
    assert_eq!(status(&v, "lost"), CheckStatus::Regressed);
    assert_eq!(status(&v, "delivery_ratio"), CheckStatus::Regressed);

    let mut refused = base.clone();
    refused.counters.connect_errors = 2;
    let (_, v) = judge(&base, &refused, 0.10);
    assert_eq!(status(&v, "connect errors"), CheckStatus::Regressed);
}

#[test]
fn runs_without_traffic_have_nothing_to_compare() {
    let (doc, v) = judge(&zero_traffic(), &normal(), 0.10);
    assert!(!v.regressed);
    assert_eq!(status(&v, "fanout.p99"), CheckStatus::NoData);
    assert_eq!(select(&doc, "figure.chart").len(), 4);
    let (doc, v) = judge(&extreme(), &single_sample(), 0.10);
    assert!(!v.regressed, "{v:?}");
    let banner = select(&doc, "header.banner p.desc");
    assert_eq!(
        text_of(&banner[0]),
        "Different scenarios: base is \"marathon\", new is \"single\"."
    );
}

#[test]
fn the_page_overlays_both_runs() {
    let base = normal();
    let (doc, _) = judge(&base, &slower(&base, 1.2), 0.10);
    for id in [
        "compare-percentiles",
        "compare-fanout-histogram",
        "compare-latency-timeline",
        "compare-connect-join",
    ] {
        let svgs = select(&doc, &format!("figure#chart-{id} svg"));
        assert_eq!(svgs.len(), 2, "{id}");
        let texts = text_of(&svgs[0]);
        assert!(
            texts.contains("base") && texts.contains("new"),
            "{id}: {texts}"
        );
    }
    for section in ["checks", "side-by-side", "charts", "runs"] {
        assert_eq!(select(&doc, &format!("section#{section}")).len(), 1);
    }
}

#[test]
fn a_negative_tolerance_is_refused() {
    let r = normal();
    assert!(render_comparison(&r, &r, -0.1, &RunLabels::default()).is_err());
    assert!(render_comparison(&r, &r, f64::NAN, &RunLabels::default()).is_err());
}

#[test]
fn stepped_runs_overlay_their_curves() {
    let base = stepped(
        &normal(),
        &[(4_000.0, 5_000, true), (8_000.0, 90_000, false)],
    );
    let new = stepped(&normal(), &[(4_000.0, 2_000, true), (8_000.0, 9_000, true)]);
    let (doc, _) = judge(&base, &new, 0.10);
    let svgs = select(&doc, "figure#chart-step-curve svg");
    assert_eq!(svgs.len(), 2);
    let texts = text_of(&svgs[0]);
    assert!(texts.contains("base") && texts.contains("new"), "{texts}");
    let caption = text_of(&select(&doc, "figure#chart-step-curve figcaption")[0]);
    assert!(
        caption.contains("base 4,000/s, new 8,000/s") && caption.contains("×2.00"),
        "{caption}"
    );
}

#[test]
fn resources_side_by_side_with_cpu_per_delivery() {
    let mut base = normal();
    base.resources = Some(resources(2.0));
    let mut new = normal();
    new.resources = Some(resources(9.0));
    let (doc, _) = judge(&base, &new, 0.10);
    let section = text_of(&select(&doc, "section#resources")[0]);
    let rows: Vec<String> = select(&doc, "section#resources tbody tr")
        .iter()
        .map(text_of)
        .collect();
    assert!(
        rows[0].contains("loadgen") && rows[0].contains("2.00 s") && rows[0].contains("9.00 s"),
        "{rows:?}"
    );
    let per_delivery =
        |secs: f64| roomstorm_reports::format::us_f(secs * 1e6 / base.deliveries.delivered as f64);
    let generator = rows
        .iter()
        .find(|r| r.contains("generator CPU per delivery"))
        .expect("row");
    assert!(generator.contains(&per_delivery(2.0)), "{generator}");
    // Only the new run was generator-bound (9 s against the server's 3.6 s).
    assert!(
        section.contains("In the new run the load generator used more CPU"),
        "{section}"
    );
    assert!(!section.contains("In the base run"), "{section}");

    base.resources = None;
    new.resources = None;
    let (doc, _) = judge(&base, &new, 0.10);
    assert!(text_of(&select(&doc, "section#resources")[0]).contains("Neither run sampled"));
}

#[test]
fn the_page_says_what_each_run_is() {
    let r = normal();
    let labels = RunLabels {
        base: "node".into(),
        new: "ours".into(),
    };
    let (html, _) = render_comparison(&r, &r, 0.1, &labels).expect("renders");
    let doc = Html::parse_document(&html);
    let banner = text_of(&select(&doc, "header.banner")[0]);
    assert!(
        banner.contains("base (node)") && banner.contains("new (ours)"),
        "{banner}"
    );
    let runs = text_of(&select(&doc, "section#runs")[0]);
    assert!(
        runs.contains("base (node)") && runs.contains("new (ours)"),
        "{runs}"
    );
    // Without labels, just base and new.
    let (doc, _) = judge(&r, &r, 0.1);
    assert!(!text_of(&select(&doc, "header.banner")[0]).contains("base ("));
}
