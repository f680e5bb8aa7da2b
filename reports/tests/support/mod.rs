//! Fixture results for the report tests: real runs committed as JSON (a smoke run, a failover
//! run with a killed worker) and edge cases built in code (zero traffic, a single sample, a
//! failed threshold, hour-long latencies over an hour-long timeline), plus helpers that parse
//! the rendered HTML.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use roomstorm_results::histograms::{HistogramKind, Histograms, new_histogram};
use roomstorm_results::threshold::{Metric as M, Threshold};
use roomstorm_results::timeline::{SecondStats, TIMELINE_SIGFIG};
use roomstorm_results::{
    DeliveryTotals, Environment, FaultResult, Results, ThresholdResult, WorkerStats,
};
use scraper::{ElementRef, Html, Selector};
use serde_json::json;

/// A committed fixture, `tests/fixtures/NAME.json`.
pub fn fixture(name: &str) -> Results {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"));
    Results::read(&path).unwrap_or_else(|e| panic!("fixture {name}: {e:#}"))
}

/// A real smoke run on the local stack (40 members, 4 rooms, 15 s).
pub fn normal() -> Results {
    fixture("smoke")
}

/// A real failover run: worker 1 SIGKILLed at 10 s, members reconnecting.
pub fn faults() -> Results {
    fixture("failover")
}

fn env() -> Environment {
    Environment::of_machine("testhost".into(), 2, "linux test".into(), "abc1234".into())
}

fn start() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_732_580_000)
}

/// Nothing happened: no members, no messages, no timeline, empty histograms.
pub fn zero_traffic() -> Results {
    let scenario = json!({
        "name": "idle",
        "description": "a run in which nobody connected",
        "target": {"url": "http://127.0.0.1:9"},
    });
    Results::new(scenario, env(), start(), Duration::from_secs(10))
}

/// One of everything: one member, one message delivered once.
pub fn single_sample() -> Results {
    let scenario = json!({"name": "single", "description": "one message",
        "target": {"local": {"workers": 1, "nginx_workers": 1}}});
    let mut r = Results::new(scenario, env(), start(), Duration::from_secs(3));
    let mut h = Histograms::new();
    h.record(HistogramKind::Fanout, 1_234);
    h.record(HistogramKind::Connect, 2_000);
    h.record(HistogramKind::Join, 900);
    h.record(HistogramKind::Completion, 1_234);
    h.record(HistogramKind::FanoutSize, 1);
    r.set_histograms(&h).expect("encodes");
    r.set_deliveries(&DeliveryTotals {
        expected: 1,
        delivered: 1,
        messages: 1,
        ..DeliveryTotals::default()
    });
    r.counters.sends = 1;
    r.counters.connects = 1;
    r.counters.joins = 1;
    r.timeline = vec![second(0, 1, 1, &[1_234], &[])];
    r.workers = vec![WorkerStats {
        index: 0,
        members: 1,
        delivered: 1,
        connections: 1,
        rooms: 1,
    }];
    r
}

/// A threshold rule as results.json writes it, e.g. `"lost == 0"`.
pub fn rule(text: &str) -> Threshold {
    text.parse().expect("a valid rule")
}

/// The smoke run judged against a threshold it cannot meet.
pub fn failed_threshold() -> Results {
    let mut r = normal();
    r.apply_thresholds(vec![
        ThresholdResult {
            rule: rule("fanout.p99 < 1ms"),
            measured: r.measured(M::FanoutP99),
            passed: false,
        },
        ThresholdResult {
            rule: rule("lost == 0"),
            measured: r.measured(M::Lost),
            passed: true,
        },
        ThresholdResult {
            rule: rule("delivery_ratio >= 99.9%"),
            measured: r.measured(M::DeliveryRatio),
            passed: true,
        },
    ]);
    r
}

/// One second of a timeline with these fan-out latencies and errors.
pub fn second(
    t: u32,
    members: u64,
    sends: u64,
    latencies: &[u64],
    errors: &[(&str, u64)],
) -> SecondStats {
    let mut s = SecondStats {
        t,
        members,
        sends,
        deliveries: latencies.len() as u64,
        errors: errors
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect::<BTreeMap<_, _>>(),
        ..SecondStats::default()
    };
    let mut h = new_histogram(TIMELINE_SIGFIG);
    for &v in latencies {
        h.saturating_record(v);
    }
    s.set_fanout(&h).expect("encodes");
    s
}

/// An hour-long run whose latencies reach hours (clamped at 1 h), with errors of every kind,
/// faults (one never recovered) and eight workers.
pub fn extreme() -> Results {
    let scenario = json!({"name": "marathon", "description": "an hour of stalls",
        "target": {"local": {"workers": 8, "nginx_workers": 4}},
        "faults": [{"at": "600s", "kill_worker": 3}, {"at": "1800s", "restart_redis": true}]});
    let mut r = Results::new(scenario, env(), start(), Duration::from_secs(3_600));
    let kinds = [
        "connect_failed",
        "join_timeout",
        "send_failed",
        "disconnected",
        "reconnected",
        "server_error",
        "parse_error",
    ];
    let mut h = Histograms::new();
    let mut timeline = Vec::new();
    for t in 0..3_600u32 {
        // A slow climb to hour-long latencies, a stall at 30 min.
        let base = 1_000 + u64::from(t) * 1_000_000;
        let lat = [
            base,
            base * 2,
            if t == 1_800 {
                10 * 3_600_000_000
            } else {
                base * 3
            },
        ];
        for &v in &lat {
            h.record(HistogramKind::Fanout, v);
        }
        h.record(HistogramKind::Completion, lat[2]);
        h.record(HistogramKind::FanoutSize, 3 + u64::from(t % 5_000));
        let errors: Vec<(&str, u64)> = if t % 7 == 0 {
            vec![(kinds[(t / 7) as usize % kinds.len()], u64::from(t % 13 + 1))]
        } else {
            Vec::new()
        };
        timeline.push(second(t, 10_000 + u64::from(t), 3, &lat, &errors));
    }
    for i in 0..400u64 {
        h.record(HistogramKind::Connect, 500 + i * 50_000_000);
        h.record(HistogramKind::Join, 100 + i * 10_000_000);
    }
    r.set_histograms(&h).expect("encodes");
    r.set_deliveries(&DeliveryTotals {
        expected: 12_000,
        delivered: 10_800,
        late: 200,
        never: 1_000,
        lost: 1_200,
        duplicated: 17,
        reordered: 4,
        messages: 3_600,
        incomplete: 420,
        ..DeliveryTotals::default()
    });
    r.counters.sends = 10_800;
    r.counters.connects = 10_000;
    r.counters.connect_errors = 123;
    r.counters.joins = 9_990;
    r.errors = BTreeMap::new();
    for s in &timeline {
        for (k, n) in &s.errors {
            *r.errors.entry(k.clone()).or_default() += n;
        }
    }
    r.timeline = timeline;
    r.workers = (0..8)
        .map(|i| WorkerStats {
            index: i,
            members: 1_000 + u64::from(i) * 100,
            delivered: 1_000_000 + u64::from(i) * 5_000,
            connections: 1_000,
            rooms: 1,
        })
        .collect();
    r.faults = vec![
        FaultResult {
            at_s: 600.0,
            action: "kill worker 3".into(),
            recovered_after_ms: Some(90_000),
            lost_in_window: 800,
        },
        FaultResult {
            at_s: 1_800.0,
            action: "restart redis".into(),
            recovered_after_ms: None,
            lost_in_window: 400,
        },
    ];
    r.apply_thresholds(vec![ThresholdResult {
        rule: rule("fanout.p99 < 50ms"),
        measured: r.measured(M::FanoutP99),
        passed: false,
    }]);
    r
}

/// `results` with every fan-out and completion latency multiplied by `factor`.
pub fn slower(results: &Results, factor: f64) -> Results {
    let h = results.decode_histograms().expect("decodes");
    let mut scaled = Histograms::new();
    for metric in [
        HistogramKind::Connect,
        HistogramKind::Join,
        HistogramKind::FanoutSize,
    ] {
        for v in h.histogram(metric).iter_recorded() {
            for _ in 0..v.count_at_value() {
                scaled.record(metric, v.value_iterated_to());
            }
        }
    }
    for metric in [HistogramKind::Fanout, HistogramKind::Completion] {
        for v in h.histogram(metric).iter_recorded() {
            let value = (v.value_iterated_to() as f64 * factor) as u64;
            for _ in 0..v.count_at_value() {
                scaled.record(metric, value);
            }
        }
    }
    let mut out = results.clone();
    out.set_histograms(&scaled).expect("encodes");
    out
}

pub fn select<'a>(doc: &'a Html, css: &str) -> Vec<ElementRef<'a>> {
    let selector = Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e:?}"));
    doc.select(&selector).collect()
}

pub fn text_of(el: &ElementRef<'_>) -> String {
    el.text().collect::<Vec<_>>().join(" ")
}

/// Every `src`/`href` (and `xlink:href`) value in the document.
pub fn links(doc: &Html) -> Vec<String> {
    let mut out = Vec::new();
    for el in select(doc, "*") {
        for (name, value) in el.value().attrs() {
            let name = name.to_ascii_lowercase();
            if name == "src" || name == "href" || name.ends_with(":href") || name == "srcset" {
                out.push(value.to_owned());
            }
        }
    }
    out
}

/// Whether a link could fetch something: anything but a fragment (`#summary`) or a `data:`
/// URI. Stricter than "a network URL": a self-contained page has no relative links either.
pub fn is_network(link: &str) -> bool {
    let l = link.trim().to_ascii_lowercase();
    !(l.starts_with('#') || l.starts_with("data:"))
}

/// `results` with rate steps at (deliveries/s, fan-out p99 µs, held), doubling the rate each
/// step, and the `fanout.p99 < 50ms` threshold they were judged by.
pub fn stepped(results: &Results, steps: &[(f64, u64, bool)]) -> Results {
    let mut r = results.clone();
    r.steps = steps
        .iter()
        .enumerate()
        .map(|(i, &(rate, p99, held))| roomstorm_results::StepResult {
            index: i as u32,
            multiplier: 2f64.powi(i as i32),
            from_s: i as f64 * 10.0,
            to_s: (i + 1) as f64 * 10.0,
            sends: (rate / 100.0) as u64 * 10,
            planned: (rate / 100.0) as u64 * 10,
            deliveries_per_s: rate,
            fanout_p99_us: p99,
            fanout_max_us: p99 * 2,
            lost: 0,
            held,
        })
        .collect();
    r.highest_step_held = r
        .steps
        .iter()
        .take_while(|s| s.held)
        .last()
        .map(|s| s.index);
    r.thresholds.retain(|t| t.rule.metric != M::FanoutP99);
    r.thresholds.push(roomstorm_results::ThresholdResult {
        rule: rule("fanout.p99 < 50ms"),
        measured: r.latency.fanout.p99_us as f64,
        passed: true,
    });
    r
}

/// Sampled CPU and memory of a local run: the generator used `loadgen_cpu` seconds, the server
/// components 3.6 s together.
pub fn resources(loadgen_cpu: f64) -> roomstorm_results::Resources {
    use roomstorm_results::{Component, ResourceSample, Resources};
    let component = |name: &str, cpu_seconds: f64, peak_rss_kib: u64| Component {
        name: name.into(),
        cpu_seconds,
        peak_rss_kib,
        series: (0..15)
            .map(|t| ResourceSample {
                t: t as f64,
                cpu_percent: cpu_seconds / 15.0 * 100.0,
                rss_kib: peak_rss_kib - 15 + t,
            })
            .collect(),
    };
    Resources::new(
        1.0,
        vec![
            component("loadgen", loadgen_cpu, 40_000),
            component("chat worker 0", 1.5, 20_000),
            component("chat worker 1", 1.25, 21_000),
            component("master", 0.1, 5_000),
            component("nginx", 0.5, 9_000),
            component("redis", 0.25, 4_000),
        ],
    )
}
