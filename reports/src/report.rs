//! The report of one run: verdict banner, summary, thresholds, the eight charts, and the
//! tables (percentiles, errors, faults, scenario, environment), from results.json alone.
//!
//! Whatever the results hold (no traffic, one sample, hour-long stalls, histograms that do not
//! decode), the page renders: a chart without its data says so instead of failing, so that a
//! broken run still gets a report that shows what broke.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use roomstorm_results::histograms::{HistogramKind, Histograms};
use roomstorm_results::{Percentiles, Results, TargetKind, Verdict};

use crate::charts::{self, Chart, FaultMark, HistSeries, Line, WorkerShare};
use crate::data;
use crate::format::{self, count, esc, us};
use crate::page::{self, Tile, badge, num, text};

/// What the charts read from the results, decoded once.
pub(crate) struct Decoded {
    pub histograms: Option<Histograms>,
    pub histogram_error: Option<String>,
    pub buckets: Vec<data::Bucket>,
    /// Seconds the time axes cover.
    pub span: f64,
}

impl Decoded {
    pub fn of(r: &Results) -> Decoded {
        let (histograms, histogram_error) = match r.decode_histograms() {
            Ok(h) => (Some(h), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let buckets = data::buckets(&r.timeline);
        let end = buckets.last().map_or(0.0, |b| b.t + b.width);
        let span = if r.duration_s.is_finite() {
            r.duration_s.max(end)
        } else {
            end
        };
        Decoded {
            histograms,
            histogram_error,
            buckets,
            span: span.max(1.0),
        }
    }

    pub fn hist(&self, metric: HistogramKind) -> Option<&Histogram<u64>> {
        self.histograms.as_ref().map(|h| h.histogram(metric))
    }

    /// The percentile curve of `metric` as a chart line labelled with its sample count.
    pub fn percentile_line(
        &self,
        metric: HistogramKind,
        label: &str,
        color: plotters::style::RGBColor,
        dashed: bool,
    ) -> Line {
        let hist = self.hist(metric);
        let points = hist.map(data::percentile_curve).unwrap_or_default();
        Line {
            label: format!("{label} ({})", count(hist.map_or(0, |h| h.len()))),
            color,
            dashed,
            runs: if points.is_empty() {
                Vec::new()
            } else {
                vec![points]
            },
        }
    }
}

/// Chart markers at p50, p99 and (with `p999`) p99.9 of a latency summary; none without data.
fn percentile_markers(
    p: &Percentiles,
    p999: bool,
) -> Vec<(String, f64, plotters::style::RGBColor)> {
    if p.count == 0 {
        return Vec::new();
    }
    let mut marks = vec![
        (
            format!("p50 {}", us(p.p50_us)),
            p.p50_us as f64,
            charts::GREEN,
        ),
        (
            format!("p99 {}", us(p.p99_us)),
            p.p99_us as f64,
            charts::ORANGE,
        ),
    ];
    if p999 {
        marks.push((
            format!("p99.9 {}", us(p.p999_us)),
            p.p999_us as f64,
            charts::RED,
        ));
    }
    marks
}

/// The whole page for one run.
pub fn render(r: &Results) -> anyhow::Result<String> {
    let d = Decoded::of(r);
    let name = r.scenario_name().unwrap_or("unnamed scenario");
    let verdict = if r.verdict == Verdict::Pass {
        "PASS"
    } else {
        "FAIL"
    };
    let mut body = String::new();
    body.push_str(&banner(r, verdict));
    body.push_str(&page::toc(&[
        ("summary", "Summary"),
        ("thresholds", "Thresholds"),
        ("charts", "Charts"),
        ("steps", "Rate steps"),
        ("percentiles", "Percentiles"),
        ("groups", "Groups"),
        ("protocol", "Protocol"),
        ("errors", "Errors"),
        ("faults", "Faults"),
        ("resources", "Resources"),
        ("scenario", "Scenario"),
        ("environment", "Environment"),
    ]));
    if let Some(e) = &d.histogram_error {
        body.push_str(&format!(
            "<div class=\"alert\">The histograms in these results do not decode ({}); charts that \
             need them show no data, and the percentiles below are the ones stored.</div>\n",
            esc(e)
        ));
    }
    if r.resources.as_ref().is_some_and(|x| x.generator_bound) {
        body.push_str(GENERATOR_BOUND);
    }
    body.push_str(&page::section("summary", "Summary", &summary(r)));
    body.push_str(&page::section("thresholds", "Thresholds", &thresholds(r)));
    let charts = charts(r, &d)?;
    body.push_str(&page::section("charts", "Charts", &page::charts(&charts)));
    body.push_str(&page::section(
        "steps",
        "Rate steps",
        &crate::steps::section(r)?,
    ));
    body.push_str(&page::section(
        "percentiles",
        "Percentiles",
        &percentile_table(r),
    ));
    body.push_str(&page::section(
        "groups",
        "Member groups",
        &crate::groups::section(r),
    ));
    body.push_str(&page::section(
        "protocol",
        "Protocol profile",
        &crate::protocol::section(r),
    ));
    body.push_str(&page::section("errors", "Errors and counters", &errors(r)));
    body.push_str(&page::section("faults", "Faults and recovery", &faults(r)));
    body.push_str(&page::section(
        "resources",
        "CPU and memory by component",
        &resources(r, &d)?,
    ));
    body.push_str(&page::section(
        "scenario",
        "The scenario as run",
        &scenario(r),
    ));
    body.push_str(&page::section(
        "environment",
        "Environment",
        &environment(r),
    ));
    body.push_str(&footer(r));
    Ok(page::document(
        &format!("{name} · {verdict} · roomstorm"),
        &body,
    ))
}

pub(crate) fn footer(r: &Results) -> String {
    format!(
        "<footer>roomstorm report · results schema {} · {} part{} · generated by roomstorm-reports {}</footer>\n",
        esc(&r.schema),
        r.parts,
        if r.parts == 1 { "" } else { "s" },
        env!("CARGO_PKG_VERSION")
    )
}

/// The target as the scenario names it: a URL or the local stack's shape.
/// What the run measured. Results that record the target kind say it first, so a run that fell
/// back to the embedded worker is not taken for one against the cluster its scenario names;
/// older results show the scenario's target alone.
pub(crate) fn target(r: &Results) -> String {
    let t = &r.scenario["target"];
    let url = t["url"].as_str();
    let workers = t.get("local").map(|local| {
        (
            local["workers"].as_u64().unwrap_or(0),
            local["nginx_workers"].as_u64().unwrap_or(0),
        )
    });
    match (r.target, url, workers) {
        (Some(TargetKind::LocalStack), _, Some((workers, nginx))) => {
            format!("the local stack ({workers} workers, {nginx} nginx workers)")
        }
        (Some(TargetKind::LocalStack), _, None) => "the local stack".to_owned(),
        (Some(TargetKind::Embedded), _, Some((workers, _))) => format!(
            "ONE embedded worker (no Redis, no nginx), not the {workers}-worker local stack the \
             scenario names"
        ),
        (Some(TargetKind::Embedded), _, None) => {
            "ONE embedded worker (no Redis, no nginx)".to_owned()
        }
        (Some(TargetKind::Url), Some(url), _) => format!("url {url}"),
        (Some(TargetKind::Url), None, _) => "a url".to_owned(),
        (None, Some(url), _) => url.to_owned(),
        (None, None, Some((workers, nginx))) => {
            format!("local stack: {workers} workers, {nginx} nginx workers")
        }
        (None, None, None) => "unknown".to_owned(),
    }
}

fn banner(r: &Results, verdict: &str) -> String {
    let class = verdict.to_ascii_lowercase();
    let failed = r.thresholds.iter().filter(|t| !t.passed).count();
    let why = if r.thresholds.is_empty() {
        "no thresholds".to_owned()
    } else if failed == 0 {
        format!(
            "{} of {} thresholds held",
            r.thresholds.len(),
            r.thresholds.len()
        )
    } else {
        format!("{failed} of {} thresholds failed", r.thresholds.len())
    };
    let name = r.scenario_name().unwrap_or("unnamed scenario");
    let description = r.scenario["description"].as_str().unwrap_or("");
    let meta = [
        ("started", format::timestamp(&r.started_at)),
        ("duration", format::seconds(r.duration_s)),
        ("git revision", r.environment.git_revision.clone()),
        ("target", target(r)),
        ("protocol", crate::protocol::name(r)),
        ("host", r.environment.host.clone()),
    ];
    let mut dl = String::new();
    for (k, v) in meta {
        dl.push_str(&format!(
            "<div><dt>{}</dt><dd>{}</dd></div>",
            esc(k),
            esc(&v)
        ));
    }
    format!(
        "<header class=\"card banner {class}\" id=\"top\">\n\
         <div class=\"verdict\"><span class=\"word\">{verdict}</span><span class=\"why\">{}</span></div>\n\
         <div class=\"about\"><div class=\"kind\">roomstorm load test report</div><h1>{}</h1>\
         <p class=\"desc\">{}</p><dl class=\"meta\">{dl}</dl></div>\n</header>\n",
        esc(&why),
        esc(name),
        esc(description),
    )
}

/// The most members connected: the timeline's gauge, else the workers' counts at the quiet
/// point, else the joins.
pub(crate) fn peak_members(r: &Results) -> (u64, &'static str) {
    let gauge = r.timeline.iter().map(|s| s.members).max().unwrap_or(0);
    if gauge > 0 {
        return (gauge, "most connected in any second");
    }
    let workers: u64 = r.workers.iter().map(|w| w.members).sum();
    if workers > 0 {
        return (workers, "on the workers at the quiet point");
    }
    (r.counters.joins, "joins completed")
}

/// Messages sent against what the schedules planned; files written before `sends` existed
/// show the sends counter alone.
fn sends_tile(r: &Results) -> Tile {
    let s = &r.sends;
    if s.planned == 0 && s.made == 0 {
        return Tile::new(
            "Messages sent",
            count(r.counters.sends),
            format!("{} send failures", count(r.counters.send_failures)),
            "accent",
        );
    }
    Tile::new(
        "Messages sent",
        count(s.made),
        format!(
            "of {} planned, {} unsent",
            count(s.planned),
            count(s.unsent)
        ),
        if s.unsent > 0 { "bad" } else { "accent" },
    )
}

fn summary(r: &Results) -> String {
    let c = &r.counters;
    let d = &r.deliveries;
    let f = &r.latency.fanout;
    let errors: u64 = r.errors.values().sum();
    let bad = |n: u64| if n > 0 { "bad" } else { "good" };
    let (peak, peak_sub) = peak_members(r);
    let top_errors = {
        let mut kinds: Vec<(&String, &u64)> = r.errors.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        let list: Vec<String> = kinds
            .iter()
            .take(2)
            .map(|(k, n)| format!("{k} {}", count(**n)))
            .collect();
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(", ")
        }
    };
    let lat = |p: &Percentiles, v: u64| {
        if p.count == 0 {
            "–".to_owned()
        } else {
            us(v)
        }
    };
    let tiles = [
        Tile::new("Peak members", count(peak), peak_sub.to_owned(), "accent"),
        sends_tile(r),
        Tile::new(
            "Deliveries owed",
            count(d.expected),
            format!("over {} messages", count(d.messages)),
            "accent",
        ),
        Tile::new(
            "On time",
            count(d.delivered),
            format!("within the deadline; {} extra", count(d.extra)),
            if d.delivered < d.expected {
                "bad"
            } else {
                "good"
            },
        ),
        Tile::new(
            "Late",
            count(d.late),
            "arrived after the deadline".to_owned(),
            bad(d.late),
        ),
        Tile::new(
            "Never received",
            count(d.never),
            "owed, never arrived".to_owned(),
            bad(d.never),
        ),
        Tile::new(
            "Delivery ratio",
            format::pct(d.delivery_ratio),
            "on time / owed".to_owned(),
            if d.delivery_ratio < 1.0 {
                "bad"
            } else {
                "good"
            },
        ),
        Tile::new(
            "Lost",
            count(d.lost),
            format!("late + never; {} messages incomplete", count(d.incomplete)),
            bad(d.lost),
        ),
        Tile::new(
            "Duplicated",
            count(d.duplicated),
            "receipts of a message already had".to_owned(),
            bad(d.duplicated),
        ),
        Tile::new(
            "Reordered",
            count(d.reordered),
            "behind a later one of its sender".to_owned(),
            bad(d.reordered),
        ),
        Tile::new(
            "Fan-out p50",
            lat(f, f.p50_us),
            format!("{} deliveries", count(f.count)),
            "",
        ),
        Tile::new(
            "Fan-out p99",
            lat(f, f.p99_us),
            "1 in 100 slower".to_owned(),
            "",
        ),
        Tile::new(
            "Fan-out p99.9",
            lat(f, f.p999_us),
            "1 in 1,000 slower".to_owned(),
            "",
        ),
        Tile::new(
            "Fan-out max",
            lat(f, f.max_us),
            if f.clamped > 0 {
                format!("{} above 1 h (clamped)", count(f.clamped))
            } else {
                "slowest delivery".to_owned()
            },
            if f.clamped > 0 { "bad" } else { "" },
        ),
        Tile::new(
            "Connect p99",
            lat(&r.latency.connect, r.latency.connect.p99_us),
            format!(
                "{} connects, {} failed",
                count(c.connects),
                count(c.connect_errors)
            ),
            if c.connect_errors > 0 { "bad" } else { "" },
        ),
        Tile::new(
            "Join p99",
            lat(&r.latency.join, r.latency.join.p99_us),
            format!(
                "{} joins, {} timed out",
                count(c.joins),
                count(c.join_timeouts)
            ),
            if c.join_timeouts > 0 { "bad" } else { "" },
        ),
        Tile::new("Errors", count(errors), top_errors, bad(errors)),
    ];
    page::tiles(&tiles)
}

fn thresholds(r: &Results) -> String {
    let rows = r
        .thresholds
        .iter()
        .map(|t| {
            vec![
                page::raw(format!("<code>{}</code>", esc(&t.rule.to_string())), ""),
                // In the rule's unit, so it reads against the rule: `6.89ms` beside `< 250ms`.
                num(&t.measured_text()),
                badge(Some(t.passed)),
            ]
        })
        .collect();
    page::table(
        &["rule", "measured#", "verdict"],
        rows,
        "This scenario has no thresholds: the run passes whatever it measured.",
    )
}

fn charts(r: &Results, d: &Decoded) -> anyhow::Result<Vec<Chart>> {
    let f = &r.latency.fanout;
    let fanout_bins = d
        .hist(HistogramKind::Fanout)
        .map(data::log_bins)
        .unwrap_or_default();
    let markers = percentile_markers(f, true);
    let title1 = "Fan-out latency histogram";
    let c1 = Chart {
        id: "fanout-histogram",
        title: title1.to_owned(),
        caption: format!(
            "Each delivery's latency from the intended send time, in log-spaced buckets ({} per decade).",
            data::BINS_PER_DECADE
        ),
        svg: charts::both(|size| {
            charts::latency_histogram(
                size,
                title1,
                "fan-out latency (log scale)",
                "share of deliveries (%)",
                &[HistSeries {
                    label: format!(
                        "deliveries ({})",
                        count(fanout_bins.iter().map(|b| b.count).sum())
                    ),
                    color: charts::BLUE,
                    bins: fanout_bins.clone(),
                }],
                &markers,
            )
        })?,
    };

    let title2 = "Latency by percentile";
    let curve =
        |metric, label: &str, color, dashed| d.percentile_line(metric, label, color, dashed);
    let c2 = Chart {
        id: "percentiles",
        title: title2.to_owned(),
        caption: "HdrHistogram-style: each curve goes as far into the tail as its sample size \
                  supports (a 99.9th percentile needs 1,000 values)."
            .to_owned(),
        svg: charts::both(|size| {
            charts::percentile_chart(
                size,
                title2,
                &[
                    curve(HistogramKind::Fanout, "fan-out", charts::BLUE, false),
                    curve(HistogramKind::Connect, "connect", charts::ORANGE, false),
                    curve(HistogramKind::Join, "join", charts::GREEN, false),
                ],
            )
        })?,
    };

    let title3 = "Fan-out completion time";
    let completion = d
        .hist(HistogramKind::Completion)
        .map(data::log_bins)
        .unwrap_or_default();
    let cp = &r.latency.completion;
    let cmarkers = percentile_markers(cp, false);
    let c3 = Chart {
        id: "completion-histogram",
        title: title3.to_owned(),
        caption: "Per message: until the last member it was owed to got it (messages some member \
                  never got are not counted here)."
            .to_owned(),
        svg: charts::both(|size| {
            charts::latency_histogram(
                size,
                title3,
                "completion time (log scale)",
                "share of messages (%)",
                &[HistSeries {
                    label: format!(
                        "messages ({})",
                        count(completion.iter().map(|b| b.count).sum())
                    ),
                    color: charts::PURPLE,
                    bins: completion.clone(),
                }],
                &cmarkers,
            )
        })?,
    };

    let title4 = "Fan-out size";
    let sizes = d
        .hist(HistogramKind::FanoutSize)
        .map(|h| data::linear_bins(h, 60))
        .unwrap_or_default();
    let c4 = Chart {
        id: "fanout-size",
        title: title4.to_owned(),
        caption: "Recipients per message: how many members each message was owed to.".to_owned(),
        svg: charts::both(|size| {
            charts::count_histogram(
                size,
                title4,
                "recipients per message (members)",
                "share of messages (%)",
                &format!("messages ({})", count(sizes.iter().map(|b| b.count).sum())),
                &sizes,
            )
        })?,
    };

    let thinned = d.buckets.first().map_or(1.0, |b| b.width);
    let per_point = if thinned > 1.0 {
        format!(
            " Each point covers {} s ({} seconds drawn as {} points).",
            thinned,
            count(r.timeline.len() as u64),
            d.buckets.len()
        )
    } else {
        String::new()
    };
    let title5 = "Members and throughput over time";
    let no_gauge = d.buckets.iter().all(|b| b.members == 0)
        && d.buckets.iter().any(|b| b.deliveries_per_s > 0.0);
    let c5 = Chart {
        id: "throughput-timeline",
        title: title5.to_owned(),
        caption: format!(
            "Members connected, messages due per second (by intended send time) and first \
             receipts per second.{per_point}"
        ),
        svg: charts::both(|size| {
            charts::throughput_timeline(
                size,
                title5,
                &d.buckets,
                d.span,
                no_gauge.then_some("members gauge not recorded in this run"),
            )
        })?,
    };

    let title6 = "Fan-out latency over time";
    let runs = |pick: fn(&data::Bucket) -> Option<u64>| -> Vec<Vec<(f64, f64)>> {
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut current: Vec<(f64, f64)> = Vec::new();
        for b in &d.buckets {
            match pick(b) {
                Some(v) => current.push((b.t + b.width / 2.0, v as f64)),
                None => {
                    if !current.is_empty() {
                        runs.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        if !current.is_empty() {
            runs.push(current);
        }
        runs
    };
    let faults: Vec<FaultMark> = r
        .faults
        .iter()
        .map(|f| FaultMark {
            at_s: f.at_s,
            recovered_after_s: f.recovered_after_ms.map(|ms| ms as f64 / 1000.0),
            label: f.action.clone(),
        })
        .collect();
    let c6 = Chart {
        id: "latency-timeline",
        title: title6.to_owned(),
        caption: format!(
            "Fan-out p50 and p99 of the messages meant to be sent in each second, wherever they \
             arrived (a stall shows in the seconds whose messages it delayed); faults marked \
             from injection to recovery.{per_point}"
        ),
        svg: charts::both(|size| {
            charts::latency_timeline(
                size,
                title6,
                &[
                    Line {
                        label: "p50".to_owned(),
                        color: charts::BLUE,
                        dashed: false,
                        runs: runs(|b| b.fanout_p50_us),
                    },
                    Line {
                        label: "p99".to_owned(),
                        color: charts::ORANGE,
                        dashed: false,
                        runs: runs(|b| b.fanout_p99_us),
                    },
                ],
                d.span,
                &faults,
            )
        })?,
    };

    let title7 = "Per-worker balance";
    let members_total: u64 = r.workers.iter().map(|w| w.members).sum();
    let delivered_total: u64 = r.workers.iter().map(|w| w.delivered).sum();
    let share = |n: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let shares: Vec<WorkerShare> = r
        .workers
        .iter()
        .map(|w| WorkerShare {
            index: w.index,
            members_pct: share(w.members, members_total),
            deliveries_pct: share(w.delivered, delivered_total),
        })
        .collect();
    let c7 = Chart {
        id: "worker-balance",
        title: title7.to_owned(),
        caption: balance_caption(r.workers.len(), members_total, delivered_total),
        svg: charts::both(|size| charts::worker_balance(size, title7, &shares))?,
    };

    let title8 = "Errors over time";
    let kinds = data::error_kinds(&r.timeline);
    let c8 = Chart {
        id: "errors-timeline",
        title: title8.to_owned(),
        caption: format!(
            "Errors by kind, stacked; \"{}\" and \"{}\" count owed deliveries that arrived \
             after the deadline and that never arrived, in the second their message was meant \
             to be sent.{per_point}",
            data::LATE_KIND,
            data::NEVER_KIND
        ),
        svg: charts::both(|size| {
            charts::errors_timeline(size, title8, &d.buckets, &kinds, d.span)
        })?,
    };
    Ok(vec![c1, c2, c3, c4, c5, c6, c7, c8])
}

/// The balance chart's caption; without per-worker counts it says why instead of speaking of
/// "the 0 members" and "the 0 deliveries" (what a run against a URL target used to show).
fn balance_caption(workers: usize, members: u64, delivered: u64) -> String {
    if workers == 0 {
        return "No per-worker counts in these results: loadgen reads them from the chat \
                workers' /stats when it knows the workers: a local stack's, or for a URL target \
                those its cluster master names (loadgen run --admin)."
            .to_owned();
    }
    format!(
        "Each chat worker's share of the {} members (at the quiet point) and of the {} \
         deliveries the workers made (every room message: join and quit notices as well as \
         says); nginx ip_hash should keep them near the even share.",
        count(members),
        count(delivered)
    )
}

fn percentile_table(r: &Results) -> String {
    let l = &r.latency;
    let rows = [
        ("fan-out (per delivery)", &l.fanout, true),
        ("completion (per message)", &l.completion, true),
        ("connect", &l.connect, true),
        ("join", &l.join, true),
        ("fan-out size (members)", &l.fanout_size, false),
        ("ack (per message)", &l.ack, true),
    ]
    .into_iter()
    // Only profiles that ask for acknowledgements have them.
    .filter(|(name, p, _)| !name.starts_with("ack") || p.count > 0)
    .map(|(name, p, time)| {
        let v = |x: u64| {
            if p.count == 0 {
                "–".to_owned()
            } else if time {
                us(x)
            } else {
                count(x)
            }
        };
        let mean = if p.count == 0 {
            "–".to_owned()
        } else if time {
            format::us_f(p.mean_us)
        } else {
            format!("{:.1}", p.mean_us)
        };
        vec![
            text(name),
            num(&count(p.count)),
            num(&v(p.min_us)),
            num(&v(p.p50_us)),
            num(&v(p.p90_us)),
            num(&v(p.p99_us)),
            num(&v(p.p999_us)),
            num(&v(p.max_us)),
            num(&mean),
            num(&count(p.clamped)),
        ]
    })
    .collect();
    page::table(
        &[
            "metric",
            "count#",
            "min#",
            "p50#",
            "p90#",
            "p99#",
            "p99.9#",
            "max#",
            "mean#",
            "above 1 h#",
        ],
        rows,
        "",
    )
}

/// What each error kind means (docs/results-schema.md).
pub(crate) fn error_meaning(kind: &str) -> &'static str {
    match kind {
        "connect_failed" => "a connection attempt failed",
        "join_timeout" => {
            "the join did not complete in time (the built-in profile: the member's own join broadcast)"
        }
        "send_failed" => "writing a message to the socket failed",
        "disconnected" => "the connection was lost or closed by the server",
        "reconnected" => "a member reconnected after a loss",
        "server_error" => "the server answered with an error event",
        "parse_error" => "a packet from the server could not be parsed",
        "send_refused" => "the server refused a message without sending it (busy or unavailable)",
        "outcome_unknown" => {
            "the server could not confirm a message: it may or may not have been delivered"
        }
        "unmatched" => {
            "a received event the protocol profile could not place (see Protocol for why)"
        }
        "ack_missing" => "a message's acknowledgement never came while its session lasted",
        _ => "reported by the runtime",
    }
}

fn errors(r: &Results) -> String {
    let total: u64 = r.errors.values().sum();
    let mut kinds: Vec<(&String, &u64)> = r.errors.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let rows = kinds
        .into_iter()
        .map(|(k, n)| {
            vec![
                page::raw(format!("<code>{}</code>", esc(k)), "key"),
                text(error_meaning(k)),
                num(&count(*n)),
                num(&format::pct(*n as f64 / total.max(1) as f64)),
            ]
        })
        .collect();
    let by_kind = page::table(
        &["kind", "meaning", "count#", "share#"],
        rows,
        "No errors of any kind.",
    );
    let c = &r.counters;
    let d = &r.deliveries;
    let counters: BTreeMap<&str, u64> = BTreeMap::from([
        ("connects", c.connects),
        ("connect errors", c.connect_errors),
        ("joins", c.joins),
        ("join timeouts", c.join_timeouts),
        ("sends", c.sends),
        ("send failures", c.send_failures),
        ("disconnects", c.disconnects),
        ("reconnects", c.reconnects),
        ("heartbeats answered", c.heartbeats),
        ("messages received (all kinds)", c.received_messages_total),
        ("received at the quiet point", c.received_at_quiet_point),
        ("extra receipts (not owed)", d.extra),
        ("untracked receipts", d.untracked),
        ("untracked sends", d.untracked_sends),
    ]);
    let rows = counters
        .into_iter()
        .map(|(k, v)| vec![text(k), num(&count(v))])
        .collect();
    let counters = page::table(&["counter", "value#"], rows, "");
    format!("<div class=\"grid2\"><div>{by_kind}</div><div>{counters}</div></div>\n")
}

fn faults(r: &Results) -> String {
    let rows = r
        .faults
        .iter()
        .map(|f| {
            let recovered = f
                .recovered_after_ms
                .map_or("not within the run".to_owned(), |ms| us(ms * 1000));
            vec![
                num(&format!("{:.1} s", f.at_s)),
                text(&f.action),
                num(&recovered),
                num(&count(f.lost_in_window)),
            ]
        })
        .collect();
    page::table(
        &["at#", "action", "recovered after#", "lost until recovery#"],
        rows,
        "No faults were injected in this run.",
    )
}

/// The warning of a result where the load generator used more CPU than the server.
const GENERATOR_BOUND: &str = "<div class=\"alert\"><strong>Warning: the load generator used more CPU \
     than the server: the generator, not the server, was measured.</strong> See \
     <a href=\"#resources\">CPU and memory by component</a>.</div>\n";

const COMPONENT_COLORS: [plotters::style::RGBColor; 9] = [
    charts::RED,
    charts::BLUE,
    charts::GREEN,
    charts::PURPLE,
    charts::SLATE,
    charts::TEAL,
    charts::AMBER,
    charts::PINK,
    charts::ORANGE,
];

/// CPU over time and peak memory of each local component, sampled from `/proc`.
fn resources(r: &Results, d: &Decoded) -> anyhow::Result<String> {
    let Some(res) = &r.resources else {
        return Ok(
            "<div class=\"card empty\">No resource data: these results were written without \
                   CPU and memory sampling (older loadgen).</div>\n"
                .to_owned(),
        );
    };
    let mut out = String::new();
    if res.generator_bound {
        out.push_str(GENERATOR_BOUND);
    }
    let lines: Vec<Line> = res
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| Line {
            label: c.name.clone(),
            color: COMPONENT_COLORS[i % COMPONENT_COLORS.len()],
            dashed: roomstorm_results::is_generator(&c.name),
            runs: vec![c.series.iter().map(|s| (s.t, s.cpu_percent)).collect()],
        })
        .collect();
    let end = res
        .components
        .iter()
        .filter_map(|c| c.series.last())
        .map(|s| s.t)
        .fold(0.0, f64::max);
    let title = "CPU by component";
    let chart = Chart {
        id: "resources-cpu",
        title: title.to_owned(),
        caption: format!(
            "CPU of each component (its processes summed) in each {} s sample, percent of one \
             core; the load generator dashed.",
            res.interval_s
        ),
        svg: charts::both(|size| charts::cpu_timeline(size, title, &lines, d.span.max(end)))?,
    };
    out.push_str(&page::charts(&[chart]));
    let (members, _) = peak_members(r);
    let rows = res
        .components
        .iter()
        .map(|c| {
            let per_member = if members > 0 {
                format!("{:.1} KiB", c.peak_rss_kib as f64 / members as f64)
            } else {
                "–".to_owned()
            };
            vec![
                text(&c.name),
                num(&format!("{:.2} s", c.cpu_seconds)),
                num(&format!("{} KiB", count(c.peak_rss_kib))),
                num(&per_member),
            ]
        })
        .collect();
    out.push_str(&page::table(
        &[
            "component",
            "CPU seconds#",
            "peak RSS#",
            &format!("peak RSS per member ({} members)#", count(members)),
        ],
        rows,
        "No component was sampled.",
    ));
    Ok(out)
}

fn scenario(r: &Results) -> String {
    let rows = page::flatten(&r.scenario)
        .into_iter()
        .map(|(k, v)| {
            vec![
                page::raw(format!("<code>{}</code>", esc(&k)), "key"),
                page::raw(esc(&v), "wrap"),
            ]
        })
        .collect();
    page::table(&["key", "value"], rows, "The results hold no scenario.")
}

fn environment(r: &Results) -> String {
    let e = &r.environment;
    let mut rows = vec![
        ("host", e.host.clone()),
        ("cores", e.cores.to_string()),
        ("operating system", e.os.clone()),
        ("loadgen version", e.loadgen_version.clone()),
        ("git revision", e.git_revision.clone()),
        ("started", r.started_at.clone()),
        (
            "duration",
            format!("{} ({:.3} s)", format::seconds(r.duration_s), r.duration_s),
        ),
        ("parts (processes merged)", r.parts.to_string()),
        ("results schema", r.schema.clone()),
    ];
    if e.machines.len() > 1 {
        let machines: Vec<String> = e
            .machines
            .iter()
            .map(|(h, c)| format!("{h} ({c} cores)"))
            .collect();
        rows.push(("machines", machines.join(", ")));
    }
    let mut rows: Vec<(String, String)> =
        rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    rows.extend(r.hosts.iter().map(part_host));
    let rows = rows
        .into_iter()
        .map(|(k, v)| vec![text(&k), page::raw(esc(&v), "wrap")])
        .collect();
    page::table(&["what", "value"], rows, "")
}

/// A part of a run across hosts: where it ran and its clock against the coordinator's.
fn part_host(h: &roomstorm_results::PartHost) -> (String, String) {
    let beyond = if h.beyond_limit {
        format!(
            "; beyond the limit of {}: its start was corrected, its wall-clock times were not",
            format::us(h.clock_offset_limit_us)
        )
    } else {
        String::new()
    };
    (
        format!("part {}", h.part),
        format!(
            "{}, clock {:+} µs (± {} µs) against the coordinator's{beyond}",
            h.host,
            h.clock_offset_us,
            h.clock_rtt_us / 2
        ),
    )
}
