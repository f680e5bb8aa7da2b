//! The comparison page of two runs: the CI gate's checks ([`crate::gate`], where the rules
//! live) as a table, then both runs' distributions and timelines overlaid so a reader can see
//! where the difference is.

use std::fmt::Write as _;

use roomstorm_results::histograms::HistogramKind;
use roomstorm_results::{Percentiles, Results, Verdict};

use crate::charts::{self, Chart, HistSeries, Line};
use crate::data;
use crate::format::{self, count, esc, us, us_f};
use crate::page::{self, badge, num, text};
use crate::report::{Decoded, footer, peak_members, target};
use crate::steps;

// The gate, also reachable here as before the rules had a module of their own.
pub use crate::gate::{Check, CheckStatus, ComparisonVerdict, judge};

/// The comparison page and its verdict.
pub fn render(
    base: &Results,
    new: &Results,
    tolerance: f64,
    labels: &RunLabels,
) -> anyhow::Result<(String, ComparisonVerdict)> {
    let verdict = judge(base, new, tolerance)?;
    let (db, dn) = (Decoded::of(base), Decoded::of(new));
    let mut body = String::new();
    body.push_str(&banner(base, new, &verdict, labels));
    body.push_str(&page::toc(&[
        ("checks", "Checks"),
        ("side-by-side", "Side by side"),
        ("charts", "Charts"),
        ("resources", "Resources"),
        ("runs", "The runs"),
    ]));
    for (which, d) in [("base", &db), ("new", &dn)] {
        if let Some(e) = &d.histogram_error {
            let _ = writeln!(
                body,
                "<div class=\"alert\">The {which} run's histograms do not decode ({}).</div>",
                esc(e)
            );
        }
    }
    body.push_str(&page::section("checks", "Checks", &checks_table(&verdict)));
    body.push_str(&page::section(
        "side-by-side",
        "Side by side",
        &side_by_side(base, new),
    ));
    let charts = charts(base, new, &db, &dn)?;
    body.push_str(&page::section("charts", "Charts", &page::charts(&charts)));
    body.push_str(&page::section(
        "resources",
        "CPU and memory by component",
        &resources(base, new),
    ));
    body.push_str(&page::section("runs", "The runs", &runs(base, new, labels)));
    body.push_str(&footer(new));
    let word = if verdict.regressed {
        "REGRESSION"
    } else {
        "no regression"
    };
    let name = new.scenario_name().unwrap_or("unnamed scenario");
    Ok((
        page::document(&format!("{name} · compare · {word} · roomstorm"), &body),
        verdict,
    ))
}

/// What the two runs are in the reader's words (e.g. "node" and "ours"), shown beside "base"
/// and "new": a page opened weeks later must say what was compared, not only when.
#[derive(Debug, Clone, Default)]
pub struct RunLabels {
    pub base: String,
    pub new: String,
}

impl RunLabels {
    /// "base" or "base (node)".
    fn named(which: &str, label: &str) -> String {
        match label.is_empty() {
            true => which.to_string(),
            false => format!("{which} ({label})"),
        }
    }

    fn base_name(&self) -> String {
        RunLabels::named("base", &self.base)
    }

    fn new_name(&self) -> String {
        RunLabels::named("new", &self.new)
    }
}

fn banner(base: &Results, new: &Results, v: &ComparisonVerdict, labels: &RunLabels) -> String {
    let (class, word) = if v.regressed {
        ("fail", "REGRESSION")
    } else {
        ("pass", "OK")
    };
    let regressions: Vec<&str> = v.regressions().map(|c| c.metric).collect();
    let why = if regressions.is_empty() {
        format!("no check worse than {}%", format::rate(v.tolerance * 100.0))
    } else {
        format!("worse: {}", regressions.join(", "))
    };
    let name = new.scenario_name().unwrap_or("unnamed scenario");
    let mut note = String::new();
    if base.scenario_name() != new.scenario_name() {
        note = format!(
            "<p class=\"desc\">Different scenarios: base is {}, new is {}.</p>",
            esc(&format!("{:?}", base.scenario_name().unwrap_or("unnamed"))),
            esc(&format!("{name:?}"))
        );
    }
    let meta = [
        (
            labels.base_name(),
            format!(
                "{} · rev {}",
                format::timestamp(&base.started_at),
                base.environment.git_revision
            ),
        ),
        (
            labels.new_name(),
            format!(
                "{} · rev {}",
                format::timestamp(&new.started_at),
                new.environment.git_revision
            ),
        ),
        (
            "tolerance".to_string(),
            format!("{}%", format::rate(v.tolerance * 100.0)),
        ),
        ("target".to_string(), target(new)),
    ];
    let mut dl = String::new();
    for (k, v) in meta {
        let _ = write!(dl, "<div><dt>{}</dt><dd>{}</dd></div>", esc(&k), esc(&v));
    }
    format!(
        "<header class=\"card banner {class}\" id=\"top\">\n\
         <div class=\"verdict\"><span class=\"word\">{word}</span><span class=\"why\">{}</span></div>\n\
         <div class=\"about\"><div class=\"kind\">roomstorm comparison</div><h1>{}</h1>{}\
         <dl class=\"meta\">{dl}</dl></div>\n</header>\n",
        esc(&why),
        esc(name),
        note,
    )
}

/// The checks, verdict first: on a phone the table is wider than the screen and scrolls, and
/// the verdict, last, was the column out of sight.
fn checks_table(v: &ComparisonVerdict) -> String {
    let rows = v
        .checks
        .iter()
        .map(|c| {
            let status = match c.status {
                CheckStatus::Regressed => badge(Some(false)),
                CheckStatus::NoData => badge(None),
                _ => page::raw(
                    format!("<span class=\"badge pass\">{}</span>", c.status.word()),
                    "",
                ),
            };
            vec![
                status,
                page::raw(
                    format!(
                        "<code>{}</code><div class=\"rule\">{}</div>",
                        esc(c.metric),
                        esc(&c.rule)
                    ),
                    "",
                ),
                num(&c.base_text),
                num(&c.new_text),
                page::raw(
                    esc(&format::change(c.base, c.new)),
                    match c.status {
                        CheckStatus::Regressed => "num worse",
                        CheckStatus::Improved => "num better",
                        _ => "num",
                    },
                ),
            ]
        })
        .collect();
    page::table(
        &["verdict", "metric and rule", "base#", "new#", "change#"],
        rows,
        "",
    )
}

/// Which way a side-by-side metric improves (for coloring its change).
#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
    Neither,
}

fn side_by_side(base: &Results, new: &Results) -> String {
    type Row = (&'static str, fn(&Results) -> (f64, String), Better);
    let rows: [Row; 18] = [
        (
            "peak members",
            |r| {
                let (n, _) = peak_members(r);
                (n as f64, count(n))
            },
            Better::Neither,
        ),
        (
            "messages sent",
            |r| (r.counters.sends as f64, count(r.counters.sends)),
            Better::Neither,
        ),
        (
            "deliveries owed",
            |r| (r.deliveries.expected as f64, count(r.deliveries.expected)),
            Better::Neither,
        ),
        (
            "deliveries on time",
            |r| (r.deliveries.delivered as f64, count(r.deliveries.delivered)),
            Better::Higher,
        ),
        (
            "late",
            |r| (r.deliveries.late as f64, count(r.deliveries.late)),
            Better::Lower,
        ),
        (
            "never received",
            |r| (r.deliveries.never as f64, count(r.deliveries.never)),
            Better::Lower,
        ),
        (
            "delivery ratio",
            |r| {
                (
                    r.deliveries.delivery_ratio,
                    format::pct(r.deliveries.delivery_ratio),
                )
            },
            Better::Higher,
        ),
        (
            "lost",
            |r| (r.deliveries.lost as f64, count(r.deliveries.lost)),
            Better::Lower,
        ),
        (
            "duplicated",
            |r| {
                (
                    r.deliveries.duplicated as f64,
                    count(r.deliveries.duplicated),
                )
            },
            Better::Lower,
        ),
        (
            "reordered",
            |r| (r.deliveries.reordered as f64, count(r.deliveries.reordered)),
            Better::Lower,
        ),
        (
            "fan-out p50",
            |r| pl(&r.latency.fanout, r.latency.fanout.p50_us),
            Better::Lower,
        ),
        (
            "fan-out p99",
            |r| pl(&r.latency.fanout, r.latency.fanout.p99_us),
            Better::Lower,
        ),
        (
            "fan-out p99.9",
            |r| pl(&r.latency.fanout, r.latency.fanout.p999_us),
            Better::Lower,
        ),
        (
            "fan-out max",
            |r| pl(&r.latency.fanout, r.latency.fanout.max_us),
            Better::Lower,
        ),
        (
            "completion p99",
            |r| pl(&r.latency.completion, r.latency.completion.p99_us),
            Better::Lower,
        ),
        (
            "connect p99",
            |r| pl(&r.latency.connect, r.latency.connect.p99_us),
            Better::Lower,
        ),
        (
            "join p99",
            |r| pl(&r.latency.join, r.latency.join.p99_us),
            Better::Lower,
        ),
        (
            "errors",
            |r| {
                let n: u64 = r.errors.values().sum();
                (n as f64, count(n))
            },
            Better::Lower,
        ),
    ];
    let rows = rows
        .into_iter()
        .map(|(name, get, better)| {
            let (bv, bt) = get(base);
            let (nv, nt) = get(new);
            let class = match better {
                _ if bv == nv => "num",
                Better::Lower if nv > bv => "num worse",
                Better::Higher if nv < bv => "num worse",
                Better::Neither => "num",
                _ => "num better",
            };
            vec![
                text(name),
                num(&bt),
                num(&nt),
                page::raw(esc(&format::change(bv, nv)), class),
            ]
        })
        .collect();
    page::table(&["metric", "base#", "new#", "change#"], rows, "")
}

fn pl(p: &Percentiles, v: u64) -> (f64, String) {
    if p.count == 0 {
        (0.0, "–".to_owned())
    } else {
        (v as f64, us(v))
    }
}

fn charts(base: &Results, new: &Results, db: &Decoded, dn: &Decoded) -> anyhow::Result<Vec<Chart>> {
    const BASE: plotters::style::RGBColor = charts::SLATE;
    const NEW: plotters::style::RGBColor = charts::ORANGE;
    let curve = |d: &Decoded, metric, label: &str, color, dashed| {
        d.percentile_line(metric, label, color, dashed)
    };
    let t1 = "Fan-out and completion by percentile";
    let c1 = Chart {
        id: "compare-percentiles",
        title: t1.to_owned(),
        caption: "Both runs on HdrHistogram's nines axis; completion dashed.".to_owned(),
        svg: charts::both(|size| {
            charts::percentile_chart(
                size,
                t1,
                &[
                    curve(db, HistogramKind::Fanout, "base fan-out", BASE, false),
                    curve(dn, HistogramKind::Fanout, "new fan-out", NEW, false),
                    curve(db, HistogramKind::Completion, "base completion", BASE, true),
                    curve(dn, HistogramKind::Completion, "new completion", NEW, true),
                ],
            )
        })?,
    };
    let t2 = "Fan-out latency histogram";
    let bins = |d: &Decoded| {
        d.hist(HistogramKind::Fanout)
            .map(data::log_bins)
            .unwrap_or_default()
    };
    let c2 = Chart {
        id: "compare-fanout-histogram",
        title: t2.to_owned(),
        caption: "Share of each run's deliveries per log-spaced latency bucket.".to_owned(),
        svg: charts::both(|size| {
            charts::latency_histogram(
                size,
                t2,
                "fan-out latency (log scale)",
                "share of deliveries (%)",
                &[
                    HistSeries {
                        label: format!("base ({})", count(base.latency.fanout.count)),
                        color: BASE,
                        bins: bins(db),
                    },
                    HistSeries {
                        label: format!("new ({})", count(new.latency.fanout.count)),
                        color: NEW,
                        bins: bins(dn),
                    },
                ],
                &[],
            )
        })?,
    };
    let t3 = "Fan-out p99 over time";
    let runs = |d: &Decoded| -> Vec<Vec<(f64, f64)>> {
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for b in &d.buckets {
            match b.fanout_p99_us {
                Some(v) => runs
                    .last_mut()
                    .expect("a run")
                    .push((b.t + b.width / 2.0, v as f64)),
                None => runs.push(Vec::new()),
            }
        }
        runs.retain(|r| !r.is_empty());
        runs
    };
    let c3 = Chart {
        id: "compare-latency-timeline",
        title: t3.to_owned(),
        caption: "Each run's per-second fan-out p99, aligned on the time since its start."
            .to_owned(),
        svg: charts::both(|size| {
            charts::latency_timeline(
                size,
                t3,
                &[
                    Line {
                        label: "base p99".to_owned(),
                        color: BASE,
                        dashed: false,
                        runs: runs(db),
                    },
                    Line {
                        label: "new p99".to_owned(),
                        color: NEW,
                        dashed: false,
                        runs: runs(dn),
                    },
                ],
                db.span.max(dn.span),
                &[],
            )
        })?,
    };
    let t4 = "Connect and join by percentile";
    let c4 = Chart {
        id: "compare-connect-join",
        title: t4.to_owned(),
        caption: "Connect solid, join dashed.".to_owned(),
        svg: charts::both(|size| {
            charts::percentile_chart(
                size,
                t4,
                &[
                    curve(db, HistogramKind::Connect, "base connect", BASE, false),
                    curve(dn, HistogramKind::Connect, "new connect", NEW, false),
                    curve(db, HistogramKind::Join, "base join", BASE, true),
                    curve(dn, HistogramKind::Join, "new join", NEW, true),
                ],
            )
        })?,
    };
    let mut out = vec![c1, c2, c3, c4];
    if !base.steps.is_empty() || !new.steps.is_empty() {
        out.push(step_curves(base, new, BASE, NEW)?);
    }
    Ok(out)
}

/// Both runs' latency-throughput curves, with each run's highest step held.
fn step_curves(
    base: &Results,
    new: &Results,
    base_color: plotters::style::RGBColor,
    new_color: plotters::style::RGBColor,
) -> anyhow::Result<Chart> {
    let held = |r: &Results| {
        steps::highest_held(r).map_or("none".to_owned(), |s| {
            format!("{}/s", format::rate(s.deliveries_per_s))
        })
    };
    let ratio = match (steps::highest_held(base), steps::highest_held(new)) {
        (Some(b), Some(n)) if b.deliveries_per_s > 0.0 => {
            format!(
                " New / base: ×{:.2}.",
                n.deliveries_per_s / b.deliveries_per_s
            )
        }
        _ => String::new(),
    };
    let caption = format!(
        "One dot per rate step, filled where the step held. Highest step held: base {}, new {}.{ratio}",
        held(base),
        held(new)
    );
    steps::chart(
        &[
            steps::series(base, "base", base_color),
            steps::series(new, "new", new_color),
        ],
        steps::p99_limit_us(new).or_else(|| steps::p99_limit_us(base)),
        caption,
    )
}

/// Each component's CPU and peak memory in both runs, and the CPU each run spent per delivery,
/// server and generator apart: the efficiency side of a comparison.
fn resources(base: &Results, new: &Results) -> String {
    let component = |r: &Results, name: &str| {
        r.resources
            .as_ref()
            .and_then(|res| res.components.iter().find(|c| c.name == name))
            .map(|c| (c.cpu_seconds, c.peak_rss_kib))
    };
    let mut names: Vec<&str> = Vec::new();
    for r in [base, new] {
        for c in r.resources.iter().flat_map(|res| &res.components) {
            if !names.contains(&c.name.as_str()) {
                names.push(&c.name);
            }
        }
    }
    let cpu = |v: Option<(f64, u64)>| v.map_or("–".to_owned(), |(s, _)| format!("{s:.2} s"));
    let rss = |v: Option<(f64, u64)>| {
        v.map_or("–".to_owned(), |(_, kib)| format!("{} KiB", count(kib)))
    };
    let mut rows: Vec<Vec<page::Cell>> = names
        .iter()
        .map(|name| {
            let (b, n) = (component(base, name), component(new, name));
            vec![
                text(name),
                num(&cpu(b)),
                num(&cpu(n)),
                num(&rss(b)),
                num(&rss(n)),
            ]
        })
        .collect();
    if !rows.is_empty() {
        for (label, generator) in [
            ("server CPU per delivery", false),
            ("generator CPU per delivery", true),
        ] {
            let per = |r: &Results| cpu_per_delivery(r, generator).map_or("–".to_owned(), us_f);
            rows.push(vec![
                text(label),
                num(&per(base)),
                num(&per(new)),
                num(""),
                num(""),
            ]);
        }
    }
    let mut out = String::new();
    for (which, r) in [("base", base), ("new", new)] {
        if r.resources.as_ref().is_some_and(|x| x.generator_bound) {
            let _ = writeln!(
                out,
                "<div class=\"alert\">In the {which} run the load generator used more CPU than \
                 the server: the generator, not the server, was measured.</div>"
            );
        }
    }
    out.push_str(&page::table(
        &[
            "component",
            "base CPU#",
            "new CPU#",
            "base peak RSS#",
            "new peak RSS#",
        ],
        rows,
        "Neither run sampled CPU and memory (only local runs and sampled processes are).",
    ));
    out
}

/// CPU µs per delivery made, of the generator or of every server component together.
fn cpu_per_delivery(r: &Results, generator: bool) -> Option<f64> {
    let res = r.resources.as_ref()?;
    let seconds: f64 = res
        .components
        .iter()
        .filter(|c| roomstorm_results::is_generator(&c.name) == generator)
        .map(|c| c.cpu_seconds)
        .sum();
    let delivered = r.deliveries.delivered;
    (delivered > 0 && seconds > 0.0).then(|| seconds * 1e6 / delivered as f64)
}

fn runs(base: &Results, new: &Results, labels: &RunLabels) -> String {
    let row = |name: &str, r: &Results| {
        vec![
            text(name),
            text(r.scenario_name().unwrap_or("unnamed")),
            text(&format::timestamp(&r.started_at)),
            num(&format::seconds(r.duration_s)),
            text(&r.environment.git_revision),
            text(&r.environment.host),
            if r.verdict == Verdict::Pass {
                badge(Some(true))
            } else {
                badge(Some(false))
            },
        ]
    };
    page::table(
        &[
            "run",
            "scenario",
            "started",
            "duration#",
            "revision",
            "host",
            "own verdict",
        ],
        vec![row(&labels.base_name(), base), row(&labels.new_name(), new)],
        "",
    )
}
