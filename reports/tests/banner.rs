//! The report's banner says what the run measured: the local stack, ONE embedded worker (the
//! fallback without redis-server and nginx, whose scenario still names the cluster), or a
//! URL. Results written before `target` was recorded show the scenario's target as before.

mod support;

use roomstorm_reports::render_report;
use roomstorm_results::{Results, TargetKind};
use serde_json::json;
use support::*;

/// The text of the banner's `target` entry.
fn banner_target(results: &Results) -> String {
    let html = render_report(results).expect("renders");
    let doc = scraper::Html::parse_document(&html);
    let entries = select(&doc, "header.banner dl.meta > div");
    let entry = entries
        .iter()
        .find(|div| select_in(div, "dt") == "target")
        .expect("the banner has a target entry");
    select_in(entry, "dd")
}

fn select_in(el: &scraper::ElementRef<'_>, css: &str) -> String {
    let selector = scraper::Selector::parse(css).expect("selector");
    el.select(&selector)
        .next()
        .map(|e| text_of(&e))
        .unwrap_or_default()
}

#[test]
fn the_banner_names_the_kind_of_target_that_ran() {
    // The smoke fixture's scenario names the local stack with 2 workers and 2 nginx workers.
    let mut r = normal();
    r.target = Some(TargetKind::LocalStack);
    assert_eq!(
        banner_target(&r),
        "the local stack (2 workers, 2 nginx workers)"
    );

    // The same scenario run on the fallback: the banner must not say "2 workers".
    r.target = Some(TargetKind::Embedded);
    let embedded = banner_target(&r);
    assert!(
        embedded.starts_with("ONE embedded worker (no Redis, no nginx)"),
        "{embedded}"
    );
    assert!(
        embedded.contains("not the 2-worker local stack"),
        "{embedded}"
    );

    r.target = Some(TargetKind::Url);
    r.scenario["target"] = json!({"url": "http://10.0.0.7:8080", "client_address": "forwarded"});
    assert_eq!(banner_target(&r), "url http://10.0.0.7:8080");
}

#[test]
fn older_results_show_the_scenarios_target_as_before() {
    let r = normal();
    assert_eq!(r.target, None, "the fixture predates the field");
    assert_eq!(banner_target(&r), "local stack: 2 workers, 2 nginx workers");
}
