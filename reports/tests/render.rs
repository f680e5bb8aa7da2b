//! The run report rendered from every kind of fixture results (issue 4's acceptance): a normal
//! run, zero traffic, a single sample, a failed threshold, faults, hour-long latencies. Each
//! page is parsed to check that the sections and the eight charts are there, titled, with
//! axes and legends, that nothing points to the network, and that an hour-long run stays light.

mod support;

use roomstorm_reports::render_report;
use roomstorm_results::Results;
use scraper::Html;
use support::*;

const SECTIONS: [&str; 12] = [
    "summary",
    "thresholds",
    "charts",
    "steps",
    "percentiles",
    "groups",
    "protocol",
    "errors",
    "faults",
    "resources",
    "scenario",
    "environment",
];

const CHARTS: [(&str, &str); 8] = [
    ("chart-fanout-histogram", "Fan-out latency histogram"),
    ("chart-percentiles", "Latency by percentile"),
    ("chart-completion-histogram", "Fan-out completion time"),
    ("chart-fanout-size", "Fan-out size"),
    (
        "chart-throughput-timeline",
        "Members and throughput over time",
    ),
    ("chart-latency-timeline", "Fan-out latency over time"),
    ("chart-worker-balance", "Per-worker balance"),
    ("chart-errors-timeline", "Errors over time"),
];

/// Renders and checks what every report must have; returns the parsed page. With
/// `REPORTS_DUMP=DIR` the page is also written to `DIR/<scenario>-<verdict>.html`, to look at.
fn render_and_check(results: &Results) -> (String, Html) {
    let html = render_report(results).expect("renders");
    if let Ok(dir) = std::env::var("REPORTS_DUMP") {
        let name = format!(
            "{}-{:?}-{}.html",
            results.scenario_name().unwrap_or("unnamed"),
            results.verdict,
            results.thresholds.len()
        );
        std::fs::write(std::path::Path::new(&dir).join(name), &html).expect("dump");
    }
    let doc = Html::parse_document(&html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for id in SECTIONS {
        let found = select(&doc, &format!("section#{id} > h2"));
        assert_eq!(found.len(), 1, "section {id}");
    }
    let banner = select(&doc, "header.banner");
    assert_eq!(banner.len(), 1);
    let banner_text = text_of(&banner[0]);
    let name = results.scenario_name().unwrap_or("unnamed scenario");
    assert!(banner_text.contains(name), "{banner_text}");
    for field in ["started", "duration", "git revision", "target", "protocol"] {
        assert!(banner_text.contains(field), "banner lacks {field}");
    }
    assert!(banner_text.contains(&results.environment.git_revision));
    let figures = select(&doc, "section#charts figure.chart");
    assert_eq!(figures.len(), CHARTS.len());
    for (id, title) in CHARTS {
        let figure = select(&doc, &format!("figure#{id}"));
        assert_eq!(figure.len(), 1, "{id}");
        let h3 = select(&doc, &format!("figure#{id} h3"));
        assert_eq!(text_of(&h3[0]), title);
        let svgs = select(&doc, &format!("figure#{id} svg"));
        assert_eq!(svgs.len(), 2, "{id}: a wide and a narrow drawing");
        for svg in &svgs {
            assert!(svg.value().attr("viewBox").is_some(), "{id} scales");
            assert!(
                svg.value().attr("width").is_none(),
                "{id} has no fixed width"
            );
            let titles: Vec<String> = svg
                .children()
                .filter_map(scraper::ElementRef::wrap)
                .filter(|e| e.value().name() == "title")
                .map(|e| text_of(&e))
                .collect();
            assert_eq!(titles, [title], "{id}");
            let texts: Vec<String> = svg
                .descendants()
                .filter_map(scraper::ElementRef::wrap)
                .filter(|e| e.value().name() == "text")
                .map(|e| text_of(&e).trim().to_owned())
                .collect();
            // Axis descriptions (with units or scale), and at least a legend or a note.
            assert!(texts.len() >= 4, "{id}: {texts:?}");
        }
    }
    // Self-contained: no script, stylesheet link, image or frame; no network URL anywhere.
    for tag in ["script", "link", "img", "iframe", "object", "embed"] {
        assert!(select(&doc, tag).is_empty(), "<{tag}> in the report");
    }
    for link in links(&doc) {
        assert!(!is_network(&link), "network link {link:?}");
    }
    let style = select(&doc, "style");
    assert_eq!(style.len(), 1);
    let css = text_of(&style[0]);
    assert!(
        !css.contains("url(") && !css.contains("@import"),
        "CSS fetches nothing"
    );
    // A lone chart keeps one column's width (auto-fit stretched it over the page, text twice as
    // large), and paper gets the narrow drawings (the wide ones printed at 4-5 pt).
    assert!(css.contains("repeat(auto-fill, minmax(min(100%, 600px), 1fr))"));
    let print = &css[css.find("@media print").expect("a print stylesheet")..];
    assert!(print.contains("figure.chart .narrow { display: block; }"));
    // A table that scrolls on a phone shows a shadow on the side with more to see: covers that
    // scroll with the content (`local`) over shadows that stay (`scroll`).
    let wrap = &css[css.find(".table-wrap {").expect("the table wrapper's rule")..];
    let wrap = &wrap[..wrap.find('}').expect("rule end")];
    assert!(
        wrap.contains("no-repeat local") && wrap.contains("no-repeat scroll"),
        "{wrap}"
    );
    (html, doc)
}

fn chart_texts(doc: &Html, id: &str) -> String {
    select(doc, &format!("figure#{id} .wide svg"))
        .iter()
        .map(text_of)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_normal_run() {
    let r = normal();
    let (html, doc) = render_and_check(&r);
    assert!(select(&doc, "header.banner.pass").len() == 1);
    let summary = text_of(&select(&doc, "section#summary")[0]);
    for label in [
        "Peak members",
        "Messages sent",
        "Deliveries owed",
        "On time",
        "Late",
        "Never received",
        "Delivery ratio",
        "Lost",
        "Duplicated",
        "Reordered",
        "Fan-out p50",
        "Fan-out p99",
        "Fan-out p99.9",
        "Fan-out max",
        "Connect p99",
        "Join p99",
        "Errors",
    ] {
        assert!(summary.contains(label), "summary lacks {label}");
    }
    assert!(summary.contains("5,970"), "thousands separators: {summary}");
    assert!(summary.contains("100%"));
    // Thresholds table: every rule, its measured value in the rule's unit, and PASS.
    let rows = select(&doc, "section#thresholds tbody tr");
    assert_eq!(rows.len(), r.thresholds.len());
    let thresholds = text_of(&select(&doc, "section#thresholds")[0]);
    assert!(thresholds.contains("fanout.p99 < 250ms") && thresholds.contains("22.9ms"));
    // Axis labels with units, legends.
    let histogram = chart_texts(&doc, "chart-fanout-histogram");
    assert!(histogram.contains("fan-out latency (log scale)"));
    assert!(histogram.contains("share of deliveries (%)"));
    assert!(histogram.contains(" ms"), "ticks carry units: {histogram}");
    assert!(histogram.contains("p99 "));
    let percentiles = chart_texts(&doc, "chart-percentiles");
    for label in ["99%", "99.9%", "fan-out", "connect", "join"] {
        assert!(percentiles.contains(label), "{label}: {percentiles}");
    }
    let workers = chart_texts(&doc, "chart-worker-balance");
    assert!(workers.contains("worker 0") && workers.contains("worker 1"));
    assert!(chart_texts(&doc, "chart-errors-timeline").contains("no errors"));
    // Tables.
    assert_eq!(select(&doc, "section#percentiles tbody tr").len(), 5);
    let scenario = text_of(&select(&doc, "section#scenario")[0]);
    assert!(scenario.contains("traffic.rate_per_member"));
    let env = text_of(&select(&doc, "section#environment")[0]);
    assert!(env.contains(&r.environment.os));
    assert!(html.len() < 400_000, "{} bytes", html.len());
}

#[test]
fn a_run_without_traffic() {
    let (_, doc) = render_and_check(&zero_traffic());
    for id in [
        "chart-fanout-histogram",
        "chart-percentiles",
        "chart-completion-histogram",
        "chart-fanout-size",
        "chart-throughput-timeline",
    ] {
        assert!(chart_texts(&doc, id).contains("no data"), "{id}");
    }
    assert!(chart_texts(&doc, "chart-latency-timeline").contains("no deliveries"));
    assert!(chart_texts(&doc, "chart-worker-balance").contains("no per-worker counts"));
    // Without workers the caption says why, not "the 0 members" (seen on a URL-target run).
    let caption = text_of(&select(&doc, "figure#chart-worker-balance figcaption p")[0]);
    assert!(
        caption.starts_with("No per-worker counts") && !caption.contains(" 0 "),
        "{caption}"
    );
    let summary = text_of(&select(&doc, "section#summary")[0]);
    assert!(
        summary.contains("–"),
        "no latency shown as a dash: {summary}"
    );
    let target = text_of(&select(&doc, "header.banner")[0]);
    assert!(
        target.contains("http://127.0.0.1:9"),
        "target shown as text"
    );
    assert!(
        text_of(&select(&doc, "section#thresholds")[0]).contains("no thresholds"),
        "says there are none"
    );
}

#[test]
fn a_single_sample() {
    let (_, doc) = render_and_check(&single_sample());
    let percentiles = chart_texts(&doc, "chart-percentiles");
    assert!(!percentiles.contains("no data"));
    assert!(percentiles.contains("fan-out (1)"));
    assert!(!chart_texts(&doc, "chart-fanout-histogram").contains("no data"));
    assert!(chart_texts(&doc, "chart-fanout-size").contains("messages (1)"));
    let table = text_of(&select(&doc, "section#percentiles")[0]);
    assert!(table.contains("1.23 ms"), "{table}");
}

#[test]
fn a_failed_threshold() {
    let (html, doc) = render_and_check(&failed_threshold());
    assert_eq!(select(&doc, "header.banner.fail").len(), 1);
    let banner = text_of(&select(&doc, "header.banner")[0]);
    assert!(banner.contains("FAIL") && banner.contains("1 of 3 thresholds failed"));
    let rows = select(&doc, "section#thresholds tbody tr");
    let failed: Vec<String> = rows
        .iter()
        .map(text_of)
        .filter(|t| t.contains("FAIL"))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("fanout.p99 < 1ms"));
    assert!(html.contains("<title>smoke · FAIL · roomstorm</title>"));
    let ratio = rows
        .iter()
        .map(text_of)
        .find(|t| t.contains("delivery_ratio"));
    assert!(ratio.expect("ratio row").contains("100%"));
}

#[test]
fn a_run_with_faults() {
    let r = faults();
    assert!(!r.faults.is_empty(), "the fixture has faults");
    let (_, doc) = render_and_check(&r);
    let rows = select(&doc, "section#faults tbody tr");
    assert_eq!(rows.len(), r.faults.len());
    let timeline = chart_texts(&doc, "chart-latency-timeline");
    assert!(timeline.contains("fault injected"), "{timeline}");
    assert!(timeline.contains(&r.faults[0].action), "{timeline}");
}

#[test]
fn hour_long_latencies_over_an_hour() {
    let r = extreme();
    let (html, doc) = render_and_check(&r);
    // Light enough to open: 3,600 seconds thinned, twice (wide and narrow).
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
    let summary = text_of(&select(&doc, "section#summary")[0]);
    assert!(summary.contains("1 h 00 min"), "{summary}");
    assert!(summary.contains("above 1 h (clamped)"));
    let timeline = chart_texts(&doc, "chart-latency-timeline");
    assert!(
        timeline.contains("h:min:s"),
        "hour-long axes read as clocks"
    );
    assert!(timeline.contains("1:00:00"));
    assert!(timeline.contains("kill worker 3") && timeline.contains("restart redis"));
    let histogram = chart_texts(&doc, "chart-fanout-histogram");
    assert!(
        histogram.contains(" h") || histogram.contains(" min"),
        "{histogram}"
    );
    let errors = chart_texts(&doc, "chart-errors-timeline");
    assert!(errors.contains("errors per 6 s"), "{errors}");
    assert!(errors.contains("connect_failed"));
    assert!(chart_texts(&doc, "chart-worker-balance").contains("worker 7"));
    // On a phone, eight "worker N" labels would overlap: bare indices.
    let narrow: String = select(&doc, "figure#chart-worker-balance .narrow svg")
        .iter()
        .map(text_of)
        .collect();
    assert!(narrow.contains("chat worker (index)"), "{narrow}");
    // Each timeline series is one polyline of at most 600 points, not 3,600.
    let throughput = select(&doc, "figure#chart-throughput-timeline .wide polyline");
    assert!(!throughput.is_empty());
    for line in throughput {
        let points = line.value().attr("points").unwrap_or("");
        assert!(
            points.split_whitespace().count() <= 1_300,
            "{}",
            points.len()
        );
    }
    let faults = text_of(&select(&doc, "section#faults")[0]);
    assert!(faults.contains("not within the run") && faults.contains("1 min 30 s"));
}

#[test]
fn text_from_results_is_escaped() {
    let mut r = single_sample();
    r.scenario["description"] = "<script>alert(1)</script> & <a href=\"https://x\">".into();
    r.errors.insert("<img src=https://x>".into(), 1);
    let (html, doc) = render_and_check(&r);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(select(&doc, "a[href^='https']").is_empty());
}

#[test]
fn corrupt_histograms_still_render() {
    let mut r = normal();
    r.histograms.fanout = "not a histogram".into();
    r.timeline[3].fanout_hist = "nor this".into();
    let (_, doc) = render_and_check(&r);
    assert!(text_of(&select(&doc, ".alert")[0]).contains("do not decode"));
    assert!(chart_texts(&doc, "chart-fanout-histogram").contains("no data"));
}

#[test]
fn the_network_check_catches_urls() {
    assert!(is_network("https://cdn.example/chart.js"));
    assert!(is_network("//cdn.example/x.css"));
    assert!(is_network("http://127.0.0.1/"));
    assert!(!is_network("#summary"));
}

const GENERATOR_BOUND: &str = "the load generator used more CPU than the server: the generator, \
                               not the server, was measured";

#[test]
fn resources_by_component() {
    let mut r = normal();
    r.resources = Some(resources(2.0));
    let (html, doc) = render_and_check(&r);
    let section = text_of(&select(&doc, "section#resources")[0]);
    assert!(section.contains("CPU and memory by component"));
    let rows = select(&doc, "section#resources tbody tr");
    assert_eq!(rows.len(), 6);
    let first = text_of(&rows[0]);
    assert!(
        first.contains("loadgen") && first.contains("2.00 s") && first.contains("40,000 KiB"),
        "{first}"
    );
    assert!(section.contains("per member"), "{section}");
    let chart = chart_texts(&doc, "chart-resources-cpu");
    for label in ["CPU (% of one core)", "chat worker 1", "nginx", "redis"] {
        assert!(chart.contains(label), "{label}: {chart}");
    }
    assert!(
        !html.contains(GENERATOR_BOUND),
        "3.6 s of server against 2 s"
    );

    r.resources = Some(resources(9.0));
    let (html, doc) = render_and_check(&r);
    assert!(html.contains(GENERATOR_BOUND));
    // Prominent: above the summary, and again in the section.
    assert!(html.find(GENERATOR_BOUND) < html.find("id=\"summary\""));
    assert!(text_of(&select(&doc, "section#resources")[0]).contains(GENERATOR_BOUND));
}

#[test]
fn results_without_resources_say_so() {
    let mut r = normal();
    r.resources = None;
    let (html, doc) = render_and_check(&r);
    let section = text_of(&select(&doc, "section#resources")[0]);
    assert!(section.contains("No resource data"), "{section}");
    assert!(select(&doc, "figure#chart-resources-cpu").is_empty());
    assert!(!html.contains(GENERATOR_BOUND));
    // Old results files (no `resources` key) still read.
    let json = r.to_json().expect("serializes");
    assert!(!json.contains("\"resources\""));
    assert_eq!(Results::from_json(&json).expect("reads").resources, None);
}

#[test]
fn a_run_without_steps_says_so() {
    let (_, doc) = render_and_check(&normal());
    let steps = text_of(&select(&doc, "section#steps")[0]);
    assert!(steps.contains("no rate steps"), "{steps}");
    assert!(select(&doc, "figure#chart-step-curve").is_empty());
}

#[test]
fn a_stepped_run_shows_its_curve_and_steps() {
    let results = stepped(
        &normal(),
        &[
            (4_000.0, 5_000, true),
            (8_000.0, 20_000, true),
            (16_000.0, 90_000, false),
        ],
    );
    let (_, doc) = render_and_check(&results);
    let svgs = select(&doc, "section#steps figure#chart-step-curve svg");
    assert_eq!(svgs.len(), 2, "a wide and a narrow drawing");
    let texts = chart_texts(&doc, "chart-step-curve");
    for want in ["deliveries per second", "fan-out p99", "p99 limit"] {
        assert!(texts.contains(want), "{want}: {texts}");
    }
    let caption = text_of(&select(&doc, "figure#chart-step-curve figcaption")[0]);
    assert!(
        caption.contains("step 1 (×2.00): 8,000 deliveries per second"),
        "{caption}"
    );
    let verdicts: Vec<String> = select(&doc, "section#steps tbody tr td:last-child")
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(verdicts, ["PASS", "PASS", "FAIL"]);
}

#[test]
fn planned_and_made_sends_show_in_the_summary_and_per_step() {
    let mut results = stepped(
        &normal(),
        &[(4_000.0, 5_000, true), (8_000.0, 20_000, true)],
    );
    results.sends = roomstorm_results::Sends::new(1_200, 1_150);
    results.steps[1].planned = 812;
    results.steps[1].sends = 790;
    let (_, doc) = render_and_check(&results);
    let summary = text_of(&select(&doc, "section#summary")[0]);
    assert!(
        summary.contains("1,150") && summary.contains("of 1,200 planned, 50 unsent"),
        "{summary}"
    );
    let heads: Vec<String> = select(&doc, "section#steps thead th")
        .iter()
        .map(text_of)
        .collect();
    let column = |name: &str| {
        heads
            .iter()
            .position(|h| h.trim() == name)
            .unwrap_or_else(|| panic!("no {name} column: {heads:?}"))
    };
    let (planned, sent) = (column("planned"), column("sent"));
    let row: Vec<String> = select(&doc, "section#steps tbody tr")
        .get(1)
        .map(|tr| {
            tr.children()
                .filter_map(scraper::ElementRef::wrap)
                .map(|td| text_of(&td).trim().to_owned())
                .collect()
        })
        .expect("step 1's row");
    assert_eq!((row[planned].as_str(), row[sent].as_str()), ("812", "790"));
}

#[test]
fn a_file_without_sends_shows_the_sends_counter() {
    let mut results = normal();
    results.sends = roomstorm_results::Sends::default();
    let (_, doc) = render_and_check(&results);
    let summary = text_of(&select(&doc, "section#summary")[0]);
    assert!(summary.contains("send failures"), "{summary}");
    assert!(!summary.contains("planned"), "{summary}");
}

#[test]
fn a_run_across_hosts_lists_each_parts_host_and_clock() {
    let mut r = normal();
    let host = |part: u32, host: &str, offset: i64| roomstorm_results::PartHost {
        part,
        host: host.into(),
        clock_offset_us: offset,
        clock_rtt_us: 80,
        clock_offset_limit_us: 100_000,
        beyond_limit: offset.unsigned_abs() > 100_000,
    };
    r.hosts = vec![host(0, "loadgen-a", 12), host(1, "loadgen-b", -250_000)];
    let (_, doc) = render_and_check(&r);
    let section = text_of(&select(&doc, "section#environment")[0]);
    assert!(
        section.contains("loadgen-a, clock +12 µs (± 40 µs) against the coordinator's"),
        "{section}"
    );
    assert!(section.contains("loadgen-b, clock -250000 µs"), "{section}");
    assert!(section.contains("beyond the limit of 100 ms"), "{section}");
}

/// A run against another chat through a profile: the banner and the section name it, every
/// unmatched reason is shown with its count and meaning, and the acknowledgements and their
/// round trip appear (in the percentiles too). A results file from before profiles names the
/// built-in one.
#[test]
fn a_run_through_a_protocol_profile() {
    use roomstorm_results::histograms::{HistogramKind, Histograms};
    use roomstorm_results::{AckCounts, ProtocolResult};

    let (_, doc) = render_and_check(&normal());
    assert!(text_of(&select(&doc, "header.banner")[0]).contains("roomstorm (built in)"));
    let section = text_of(&select(&doc, "section#protocol")[0]);
    assert!(
        section.contains("built-in") && section.contains("roomstorm"),
        "{section}"
    );

    let mut r = normal();
    let mut h = r.decode_histograms().expect("histograms");
    let mut acks = Histograms::new();
    for v in [900, 1_000, 1_100, 25_000] {
        acks.record(HistogramKind::Ack, v);
    }
    h.add(&acks);
    r.set_histograms(&h).expect("set");
    r.protocol = Some(ProtocolResult {
        profile: "my-chat".into(),
        unmatched: [
            ("no_text_at_path".to_owned(), 7),
            ("unexpected_ack".to_owned(), 2),
        ]
        .into_iter()
        .collect(),
        acks: Some(AckCounts {
            requested: 5,
            received: 4,
            refused: 1,
            missing: 1,
            open_at_leave: 0,
        }),
    });
    let (_, doc) = render_and_check(&r);
    assert!(text_of(&select(&doc, "header.banner")[0]).contains("my-chat"));
    let section = text_of(&select(&doc, "section#protocol")[0]);
    assert!(section.contains("my-chat"), "{section}");
    let rows: Vec<String> = select(&doc, "section#protocol tbody tr")
        .iter()
        .map(text_of)
        .collect();
    assert!(
        rows.iter()
            .any(|t| t.contains("no_text_at_path") && t.contains("wrong field") && t.contains('7')),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|t| t.contains("unexpected_ack") && t.contains('2')),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|t| t.contains("25.0 ms")),
        "the ack max: {rows:?}"
    );
    assert_eq!(
        select(&doc, "section#percentiles tbody tr").len(),
        6,
        "an ack row"
    );
}

/// Each member group gets a row with its own figures; a run without groups says so.
#[test]
fn a_run_with_member_groups() {
    use roomstorm_results::{Deliveries, DeliveryTotals, GroupResult, Percentiles, Sends};

    let (_, doc) = render_and_check(&normal());
    assert!(text_of(&select(&doc, "section#groups")[0]).contains("no member groups"));
    let mut r = normal();
    let group = |name: &str, made: u64, lost: u64, p99_us: u64| GroupResult {
        name: name.into(),
        members: 10,
        sends: Sends::new(made, made),
        signals: 7,
        signal_failures: 0,
        deliveries: Deliveries::from(&DeliveryTotals {
            expected: 100,
            delivered: 100 - lost,
            never: lost,
            lost,
            ..DeliveryTotals::default()
        }),
        fanout: Percentiles {
            count: 100 - lost,
            p99_us,
            ..Percentiles::default()
        },
        fanout_hist: String::new(),
    };
    r.groups = vec![
        group("talkers", 55, 0, 1_500),
        group("lurkers", 0, 3, 42_000),
    ];
    let (_, doc) = render_and_check(&r);
    let rows: Vec<String> = select(&doc, "section#groups tbody tr")
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].contains("talkers") && rows[0].contains("55") && rows[0].contains("1.50 ms"),
        "{rows:?}"
    );
    assert!(
        rows[1].contains("lurkers") && rows[1].contains("42.0 ms") && rows[1].contains("97"),
        "{rows:?}"
    );
}
