//! The chart kinds of a report (latency histograms, percentiles on a "nines" axis, timelines,
//! worker balance, errors, rate steps): what each one draws from the results, inside the frame
//! every chart shares ([`crate::chart_frame`]: sizes, legend, axes, the "no data" note). Latency
//! axes are logarithmic with 1-2-5 ticks in µs/ms/s, since one run can hold 2 ms deliveries and
//! a 20-minute stall; the percentile chart uses HdrHistogram's "nines" axis.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart_frame::{
    AXIS, Area, Axis, Ctx, DESC_FONT, FONT, GRID, TICK_FONT, empty, err, frame, note, render,
    text_width, tick_text_width, vline,
};
// The frame's public part, which the pages use through this module.
pub use crate::chart_frame::{
    AMBER, BLUE, Chart, GREEN, INK, KIND_COLORS, Legend, MUTED, Mark, ORANGE, PINK, PURPLE, RED,
    SLATE, Size, TEAL, both,
};
use crate::data::{Bin, Bucket, linear_ticks};
use crate::format;

/// A series of a line chart: points, color, and whether dashed.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub dashed: bool,
    /// Runs of points; a gap (a second without data) separates runs.
    pub runs: Vec<Vec<(f64, f64)>>,
}

/// One run's latency histogram for the log-spaced histogram charts.
#[derive(Debug, Clone)]
pub struct HistSeries {
    pub label: String,
    pub color: RGBColor,
    pub bins: Vec<Bin>,
}

/// A latency histogram on log-spaced bins: bars for one run, outlines for several (a
/// comparison), and dashed markers (e.g. p50/p99/p99.9).
pub fn latency_histogram(
    size: Size,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[HistSeries],
    markers: &[(String, f64, RGBColor)],
) -> anyhow::Result<String> {
    let mut legend: Vec<Legend> = series
        .iter()
        .map(|s| {
            let mark = if series.len() == 1 {
                Mark::Box
            } else {
                Mark::Line
            };
            Legend::new(s.label.clone(), s.color, mark)
        })
        .collect();
    legend.extend(
        markers
            .iter()
            .map(|(label, _, color)| Legend::new(label.clone(), *color, Mark::Dashed)),
    );
    let bins = || series.iter().flat_map(|s| s.bins.iter());
    let (Some(lo), Some(hi)) = (
        bins().map(|b| b.lo).reduce(f64::min),
        bins().map(|b| b.hi).reduce(f64::max),
    ) else {
        return empty(size, title, x_desc, y_desc, "no data", &legend);
    };
    let top = bins().map(|b| b.share * 100.0).fold(0.0, f64::max) * 1.12;
    let x = Axis::latency(size, lo, hi, x_desc);
    let y = Axis::linear(size, 0.0, top.max(1.0), y_desc, Box::new(pct_tick));
    render(size, title, &legend, |area| {
        let mut chart = frame(size, area, &x, &y)?;
        if let [only] = series {
            let gap = 0.1 / f64::from(crate::data::BINS_PER_DECADE) * 0.5;
            chart
                .draw_series(only.bins.iter().filter(|b| b.count > 0).map(|b| {
                    let (x0, x1) = (b.lo.max(1.0).log10() + gap, b.hi.log10() - gap);
                    Rectangle::new(
                        [(x.clamp(x0), 0.0), (x.clamp(x1), b.share * 100.0)],
                        only.color.mix(0.85).filled(),
                    )
                }))
                .map_err(err)?;
        } else {
            for s in series {
                let mut points = Vec::new();
                for b in &s.bins {
                    let (x0, x1) = (x.clamp(b.lo.max(1.0).log10()), x.clamp(b.hi.log10()));
                    points.push((x0, b.share * 100.0));
                    points.push((x1, b.share * 100.0));
                }
                if let (Some(first), Some(last)) = (points.first().copied(), points.last().copied())
                {
                    points.insert(0, (first.0, 0.0));
                    points.push((last.0, 0.0));
                }
                chart
                    .draw_series(LineSeries::new(points, s.color.stroke_width(2)))
                    .map_err(err)?;
            }
        }
        for (_, value, color) in markers {
            vline(&mut chart, x.clamp(value.max(1.0).log10()), &y, *color)?;
        }
        Ok(())
    })
}

fn pct_tick(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v < 1.0 {
        format!("{v:.1}%")
    } else {
        format!("{}%", format::rate(v))
    }
}

/// One legend entry per line, dashed where the line is.
fn line_legend(lines: &[Line]) -> Vec<Legend> {
    lines
        .iter()
        .map(|l| {
            let mark = if l.dashed { Mark::Dashed } else { Mark::Line };
            Legend::new(l.label.clone(), l.color, mark)
        })
        .collect()
}

/// Latency by percentile on a "nines" axis (0%, 90%, 99%, 99.9%, ...), log latency.
pub fn percentile_chart(size: Size, title: &str, lines: &[Line]) -> anyhow::Result<String> {
    let legend: Vec<Legend> = line_legend(lines);
    let x_desc = "percentile (log scale of 1 − p: “nines”)";
    let y_desc = "latency (log scale)";
    let points = || lines.iter().flat_map(|l| l.runs.iter().flatten());
    let (Some(lo), Some(hi), Some(right)) = (
        points().map(|p| p.1).reduce(f64::min),
        points().map(|p| p.1).reduce(f64::max),
        points().map(|p| p.0).reduce(f64::max),
    ) else {
        return empty(size, title, x_desc, y_desc, "no data", &legend);
    };
    let nines = right.ceil().max(2.0);
    let every = nines_label_every(size, nines);
    let x = Axis {
        range: 0.0..nines,
        ticks: (0..=nines as i64).map(|n| n as f64).collect(),
        desc: x_desc.to_owned(),
        fmt: Box::new(move |n| {
            if (n.round() as i64) % every == 0 {
                nines_label(n)
            } else {
                String::new()
            }
        }),
    };
    let y = Axis::latency(size, lo, hi, y_desc);
    render(size, title, &legend, |area| {
        let mut chart = frame(size, area, &x, &y)?;
        for line in lines {
            draw_line(&mut chart, line, |(a, b)| {
                (x.clamp(a), y.clamp(b.max(1.0).log10()))
            })?;
        }
        Ok(())
    })
}

/// CPU use over time, one line per component, percent of one core.
pub fn cpu_timeline(size: Size, title: &str, lines: &[Line], span: f64) -> anyhow::Result<String> {
    let legend: Vec<Legend> = line_legend(lines);
    let x_desc = "time since start (s)";
    let y_desc = "CPU (% of one core)";
    let Some(hi) = lines
        .iter()
        .flat_map(|l| l.runs.iter().flatten())
        .map(|p| p.1)
        .reduce(f64::max)
    else {
        return empty(size, title, x_desc, y_desc, "no data", &legend);
    };
    let x = Axis::time(size, span);
    let y = Axis::linear(
        size,
        0.0,
        (hi * 1.1).max(10.0),
        y_desc,
        Box::new(|v| format!("{}%", format::rate(v))),
    );
    render(size, title, &legend, |area| {
        let mut chart = frame(size, area, &x, &y)?;
        for line in lines {
            draw_line(&mut chart, line, |(a, b)| (x.clamp(a), y.clamp(b)))?;
        }
        Ok(())
    })
}

/// Every how many nines the percentile axis gets a label: on a phone, six or seven nines
/// leave 40 units per tick for labels like "99.9999%" that need 70, and they ran into each
/// other; unlabelled ticks keep their grid line.
fn nines_label_every(size: Size, nines: f64) -> i64 {
    let plot = f64::from(size.w) - 42.0 - f64::from(size.y_label_area());
    let spacing = plot / nines.max(1.0);
    let widest = tick_text_width(&nines_label(nines)) + 10.0;
    (widest / spacing).ceil().max(1.0) as i64
}

/// `0%`, `90%`, `99%`, `99.9%`, ... for 0, 1, 2, 3 nines.
pub fn nines_label(n: f64) -> String {
    let n = n.round() as i64;
    match n {
        i64::MIN..=0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        n => format!("99.{}%", "9".repeat((n - 2) as usize)).replace("99.%", "99%"),
    }
}

fn draw_line(
    chart: &mut Ctx<'_, '_>,
    line: &Line,
    map: impl Fn((f64, f64)) -> (f64, f64),
) -> anyhow::Result<()> {
    for run in &line.runs {
        let points: Vec<(f64, f64)> = run.iter().map(|&p| map(p)).collect();
        if points.len() == 1 {
            chart
                .draw_series(std::iter::once(Circle::new(
                    points[0],
                    3,
                    line.color.filled(),
                )))
                .map_err(err)?;
        } else if line.dashed {
            chart
                .draw_series(DashedLineSeries::new(
                    points,
                    8,
                    5,
                    line.color.stroke_width(2),
                ))
                .map_err(err)?;
        } else {
            chart
                .draw_series(LineSeries::new(points, line.color.stroke_width(2)))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A bar histogram of integer values (recipients per message).
pub fn count_histogram(
    size: Size,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    label: &str,
    bins: &[Bin],
) -> anyhow::Result<String> {
    let legend = [Legend::new(label, TEAL, Mark::Box)];
    let (Some(first), Some(last)) = (bins.first(), bins.last()) else {
        return empty(size, title, x_desc, y_desc, "no data", &legend);
    };
    // Bins cover integer values lo..hi; value v is drawn from v - 0.5 to v + 0.5.
    let (lo, hi) = (first.lo - 0.5, last.hi - 0.5);
    let pad = ((10.0 - (hi - lo)) / 2.0).max(0.0) + (hi - lo) * 0.03;
    let top = bins.iter().map(|b| b.share * 100.0).fold(0.0, f64::max) * 1.12;
    let lo_axis = (lo - pad).max(-0.5);
    let ticks: Vec<f64> = linear_ticks(lo_axis.max(0.0), hi + pad, size.ticks())
        .into_iter()
        .filter(|t| t.fract() == 0.0)
        .collect();
    let x = Axis {
        range: lo_axis..hi + pad,
        ticks,
        desc: x_desc.to_owned(),
        fmt: Box::new(|v| format::count(v.max(0.0) as u64)),
    };
    let y = Axis::linear(size, 0.0, top.max(1.0), y_desc, Box::new(pct_tick));
    render(size, title, &legend, |area| {
        let mut chart = frame(size, area, &x, &y)?;
        chart
            .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
                let (x0, x1) = (b.lo - 0.5, b.hi - 0.5);
                let gap = (x1 - x0) * 0.08;
                Rectangle::new(
                    [(x0 + gap, 0.0), (x1 - gap, b.share * 100.0)],
                    TEAL.mix(0.85).filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// Members connected (left axis) and sends and deliveries per second (right axis).
pub fn throughput_timeline(
    size: Size,
    title: &str,
    buckets: &[Bucket],
    span: f64,
    members_note: Option<&str>,
) -> anyhow::Result<String> {
    let legend = [
        Legend::new("members connected (left)", SLATE, Mark::Band),
        Legend::new("sends/s (right)", ORANGE, Mark::Line),
        Legend::new("deliveries/s (right)", BLUE, Mark::Line),
    ];
    let y_desc = "members connected";
    let y2_desc = "messages per second";
    if buckets.is_empty() {
        return empty(
            size,
            title,
            "time since start (s)",
            y_desc,
            "no data",
            &legend,
        );
    }
    let x = Axis::time(size, span);
    let members_max = buckets.iter().map(|b| b.members).max().unwrap_or(0) as f64;
    let rate_max = buckets
        .iter()
        .map(|b| b.sends_per_s.max(b.deliveries_per_s))
        .fold(0.0, f64::max);
    let y = Axis::linear(
        size,
        0.0,
        (members_max * 1.1).max(1.0),
        y_desc,
        Box::new(format::rate),
    )
    .integer();
    let y2 = Axis::linear(
        size,
        0.0,
        (rate_max * 1.1).max(1.0),
        y2_desc,
        Box::new(format::rate),
    );
    render(size, title, &legend, |area| {
        let mut chart = ChartBuilder::on(area)
            .margin_left(8)
            .margin_right(8)
            .margin_top(6)
            .margin_bottom(4)
            .x_label_area_size(52)
            .y_label_area_size(y.label_area(size))
            .right_y_label_area_size(y2.label_area(size))
            .build_cartesian_2d(x.coord(), y.coord())
            .map_err(err)?
            .set_secondary_coord(x.coord(), y2.coord());
        let tick_style = TextStyle::from((FONT, TICK_FONT).into_font()).color(&MUTED);
        let desc_style = TextStyle::from((FONT, DESC_FONT).into_font()).color(&INK);
        let xf = |v: &f64| (x.fmt)(*v);
        let yf = |v: &f64| (y.fmt)(*v);
        let y2f = |v: &f64| (y2.fmt)(*v);
        chart
            .configure_mesh()
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(1))
            .label_style(tick_style.clone())
            .axis_desc_style(desc_style.clone())
            .x_desc(x.desc.as_str())
            .y_desc(y.desc.as_str())
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .axis_style(AXIS.stroke_width(1))
            .label_style(tick_style)
            .axis_desc_style(desc_style)
            .y_desc(y2_desc)
            .y_label_formatter(&y2f)
            .draw()
            .map_err(err)?;
        let step = |b: &Bucket, v: f64| [(b.t, v), (b.t + b.width, v)];
        let members: Vec<(f64, f64)> = buckets
            .iter()
            .flat_map(|b| step(b, b.members as f64))
            .map(|(t, v)| (x.clamp(t), v))
            .collect();
        chart
            .draw_series(AreaSeries::new(members, 0.0, SLATE.mix(0.16)))
            .map_err(err)?;
        let mid = |b: &Bucket| x.clamp(b.t + b.width / 2.0);
        chart
            .draw_secondary_series(LineSeries::new(
                buckets.iter().map(|b| (mid(b), b.sends_per_s)),
                ORANGE.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_secondary_series(LineSeries::new(
                buckets.iter().map(|b| (mid(b), b.deliveries_per_s)),
                BLUE.stroke_width(2),
            ))
            .map_err(err)?;
        if let Some(text) = members_note {
            let area = chart.plotting_area();
            let style = TextStyle::from((FONT, TICK_FONT).into_font())
                .color(&MUTED)
                .pos(Pos::new(HPos::Left, VPos::Top));
            area.strip_coord_spec()
                .draw_text(text, &style, (8, 8))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// The narrowest recovery band, as a share of the time axis, that shows beside its line.
const MIN_VISIBLE_BAND: f64 = 0.003;

/// A fault for the latency timeline: when, how long until recovery (if it recovered), what.
#[derive(Debug, Clone)]
pub struct FaultMark {
    pub at_s: f64,
    pub recovered_after_s: Option<f64>,
    pub label: String,
}

/// Fan-out percentiles over time on a log axis, with faults marked (a dashed line at the
/// injection, a band until recovery).
pub fn latency_timeline(
    size: Size,
    title: &str,
    lines: &[Line],
    span: f64,
    faults: &[FaultMark],
) -> anyhow::Result<String> {
    let mut legend: Vec<Legend> = line_legend(lines);
    if !faults.is_empty() {
        legend.push(Legend::new("fault injected", RED, Mark::Dashed));
        // A band of a few milliseconds on an axis of minutes is hidden under the fault's own
        // line: no legend entry for what cannot be seen.
        let visible = |r: f64| r >= span * MIN_VISIBLE_BAND;
        if faults
            .iter()
            .any(|f| f.recovered_after_s.is_some_and(visible))
        {
            legend.push(Legend::new("until recovered", RED, Mark::Band));
        }
    }
    let y_desc = "fan-out latency (log scale)";
    let values = || {
        lines
            .iter()
            .flat_map(|l| l.runs.iter().flatten().map(|p| p.1))
    };
    let (Some(lo), Some(hi)) = (values().reduce(f64::min), values().reduce(f64::max)) else {
        let x = Axis::time(size, span);
        let y = Axis::linear(size, 0.0, 1.0, y_desc, Box::new(|_| String::new()));
        return render(size, title, &legend, |area| {
            let (labels, area) = fault_strip(area, faults);
            let mut chart = frame(size, &area, &x, &y)?;
            draw_faults(&mut chart, &labels, faults, &x, &y)?;
            note(&chart, "no deliveries", MUTED)
        });
    };
    let x = Axis::time(size, span);
    let y = Axis::latency(size, lo, hi, y_desc);
    render(size, title, &legend, |area| {
        let (labels, area) = fault_strip(area, faults);
        let mut chart = frame(size, &area, &x, &y)?;
        draw_faults(&mut chart, &labels, faults, &x, &y)?;
        for line in lines {
            draw_line(&mut chart, line, |(t, v)| {
                (x.clamp(t), y.clamp(v.max(1.0).log10()))
            })?;
        }
        Ok(())
    })
}

/// Splits off a strip above the plot for the faults' labels (none without faults): drawn
/// inside the plot, a label hid the latency spike its fault caused.
fn fault_strip<'b>(area: &Area<'b>, faults: &[FaultMark]) -> (Area<'b>, Area<'b>) {
    area.split_vertically(if faults.is_empty() { 0 } else { 22 })
}

/// Each fault's band until recovery and dashed line in the plot, its label in `labels` above.
fn draw_faults(
    chart: &mut Ctx<'_, '_>,
    labels: &Area<'_>,
    faults: &[FaultMark],
    x: &Axis,
    y: &Axis,
) -> anyhow::Result<()> {
    let style = TextStyle::from((FONT, TICK_FONT).into_font())
        .color(&RED)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let (base, _) = labels.get_base_pixel();
    let right = chart.plotting_area().get_pixel_range().0.end - base;
    for f in faults {
        let at = x.clamp(f.at_s);
        if let Some(after) = f.recovered_after_s {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(at, y.range.start), (x.clamp(f.at_s + after), y.range.end)],
                    RED.mix(0.12).filled(),
                )))
                .map_err(err)?;
        }
        vline(chart, at, y, RED)?;
        let (px, _) = chart.backend_coord(&(at, y.range.end));
        let width = text_width(&f.label) * 13 / 15;
        let x0 = (px - base + 4).min((right - width).max(0));
        labels.draw_text(&f.label, &style, (x0, 4)).map_err(err)?;
    }
    Ok(())
}

/// One worker's share of members and of deliveries, in percent of the totals.
#[derive(Debug, Clone)]
pub struct WorkerShare {
    pub index: u32,
    pub members_pct: f64,
    pub deliveries_pct: f64,
}

/// Grouped bars per worker (share of members, share of deliveries) against the even share.
pub fn worker_balance(size: Size, title: &str, workers: &[WorkerShare]) -> anyhow::Result<String> {
    let legend = [
        Legend::new("share of members", BLUE, Mark::Box),
        Legend::new("share of deliveries", ORANGE, Mark::Box),
        Legend::new("even share", MUTED, Mark::Dashed),
    ];
    let y_desc = "share of the total (%)";
    if workers.is_empty() {
        return empty(
            size,
            title,
            "worker",
            y_desc,
            "no per-worker counts",
            &legend,
        );
    }
    let n = workers.len();
    let even = 100.0 / n as f64;
    let top = workers
        .iter()
        .map(|w| w.members_pct.max(w.deliveries_pct))
        .fold(even, f64::max)
        * 1.15;
    // "worker 3" while they fit under the plot, else the bare index, every `step`-th one.
    let room = size.w as usize - 120;
    let long = n * 72 <= room;
    let step = (n * 28).div_ceil(room).max(1);
    let labels: Vec<String> = workers
        .iter()
        .map(|w| {
            if long {
                format!("worker {}", w.index)
            } else {
                w.index.to_string()
            }
        })
        .collect();
    let x = Axis {
        range: -0.5..n as f64 - 0.5,
        ticks: (0..n).step_by(step).map(|i| i as f64).collect(),
        desc: if long {
            "chat worker".to_owned()
        } else {
            "chat worker (index)".to_owned()
        },
        fmt: Box::new(move |v| {
            let i = v.round();
            if i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }),
    };
    let y = Axis::linear(
        size,
        0.0,
        top.min(100.0).max(even * 1.15),
        y_desc,
        Box::new(pct_tick),
    );
    render(size, title, &legend, |area| {
        let mut chart = frame(size, area, &x, &y)?;
        let half = 0.38;
        for (i, w) in workers.iter().enumerate() {
            let c = i as f64;
            let bars = [
                (c - half, c - 0.02, w.members_pct, BLUE),
                (c + 0.02, c + half, w.deliveries_pct, ORANGE),
            ];
            chart
                .draw_series(bars.into_iter().map(|(x0, x1, v, color)| {
                    Rectangle::new([(x0, 0.0), (x1, y.clamp(v))], color.mix(0.85).filled())
                }))
                .map_err(err)?;
        }
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x.range.start, even), (x.range.end, even)],
                8,
                5,
                MUTED.stroke_width(2),
            ))
            .map_err(err)?;
        Ok(())
    })
}

/// Errors per bucket by kind, stacked.
pub fn errors_timeline(
    size: Size,
    title: &str,
    buckets: &[Bucket],
    kinds: &[(String, u64)],
    span: f64,
) -> anyhow::Result<String> {
    let legend: Vec<Legend> = kinds
        .iter()
        .enumerate()
        .map(|(i, (k, n))| {
            Legend::new(
                format!("{k} ({})", format::count(*n)),
                KIND_COLORS[i % KIND_COLORS.len()],
                Mark::Box,
            )
        })
        .collect();
    let width = buckets.first().map_or(1.0, |b| b.width);
    let y_desc = if width <= 1.0 {
        "errors per second".to_owned()
    } else {
        format!("errors per {} s", width as u64)
    };
    let x = Axis::time(size, span);
    let top = buckets
        .iter()
        .map(|b| b.errors.values().sum::<u64>())
        .max()
        .unwrap_or(0) as f64;
    let y = Axis::linear(
        size,
        0.0,
        (top * 1.1).max(1.0),
        &y_desc,
        Box::new(format::rate),
    )
    .integer();
    render(size, title, &legend, |area| {
        let mut chart = frame(size, area, &x, &y)?;
        if kinds.is_empty() {
            let message = if buckets.is_empty() {
                "no data"
            } else {
                "no errors"
            };
            let color = if buckets.is_empty() { MUTED } else { GREEN };
            return note(&chart, message, color);
        }
        for b in buckets {
            let mut base = 0.0;
            let mut rects = Vec::new();
            for (i, (kind, _)) in kinds.iter().enumerate() {
                let n = b.errors.get(kind).copied().unwrap_or(0) as f64;
                if n == 0.0 {
                    continue;
                }
                let color = KIND_COLORS[i % KIND_COLORS.len()];
                let x0 = x.clamp(b.t + b.width * 0.08);
                let x1 = x.clamp(b.t + b.width * 0.92);
                rects.push(Rectangle::new(
                    [(x0, base), (x1, base + n)],
                    color.mix(0.9).filled(),
                ));
                base += n;
            }
            chart.draw_series(rects).map_err(err)?;
        }
        Ok(())
    })
}

/// One run's rate steps: a point per step at (deliveries per second, fan-out p99 in µs), and
/// whether the step held.
#[derive(Debug, Clone)]
pub struct StepSeries {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64, bool)>,
}

/// Fan-out p99 against the throughput delivered, one point per rate step: the classic
/// latency-throughput curve. Held steps are filled dots, broken ones hollow; a dashed line marks
/// the p99 limit when the scenario has one.
pub fn step_chart(
    size: Size,
    title: &str,
    series: &[StepSeries],
    limit_us: Option<f64>,
) -> anyhow::Result<String> {
    let mut legend: Vec<Legend> = series
        .iter()
        .map(|s| Legend::new(s.label.clone(), s.color, Mark::Line))
        .collect();
    if limit_us.is_some() {
        legend.push(Legend::new("p99 limit", RED, Mark::Dashed));
    }
    let x_desc = "deliveries per second in the step";
    let y_desc = "fan-out p99 of the step (log scale)";
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (Some(lo), Some(hi), Some(right)) = (
        points().map(|p| p.1).chain(limit_us).reduce(f64::min),
        points().map(|p| p.1).chain(limit_us).reduce(f64::max),
        points().map(|p| p.0).reduce(f64::max),
    ) else {
        return empty(size, title, x_desc, y_desc, "no rate steps", &legend);
    };
    let x = Axis::linear(size, 0.0, right * 1.05, x_desc, Box::new(format::rate));
    let y = Axis::latency(size, lo, hi, y_desc);
    render(size, title, &legend, |area| {
        let mut chart = frame(size, area, &x, &y)?;
        if let Some(limit) = limit_us {
            let level = y.clamp(limit.max(1.0).log10());
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x.range.start, level), (x.range.end, level)],
                    6,
                    5,
                    RED.stroke_width(2),
                ))
                .map_err(err)?;
        }
        for s in series {
            let at =
                |&(rate, p99, _): &(f64, f64, bool)| (x.clamp(rate), y.clamp(p99.max(1.0).log10()));
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().map(at),
                    s.color.stroke_width(2),
                ))
                .map_err(err)?;
            chart
                .draw_series(s.points.iter().map(|p| {
                    let style = if p.2 {
                        s.color.filled()
                    } else {
                        s.color.stroke_width(2)
                    };
                    Circle::new(at(p), 5, style)
                }))
                .map_err(err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_are_labelled_like_hdrhistogram() {
        let labels: Vec<String> = (0..5).map(|n| nines_label(n as f64)).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn nines_labels_thin_out_on_phones() {
        assert_eq!(nines_label_every(Size::WIDE, 7.0), 1);
        assert_eq!(nines_label_every(Size::NARROW, 7.0), 2);
        assert_eq!(nines_label_every(Size::NARROW, 3.0), 1);
        let line = Line {
            label: "fan-out".to_owned(),
            color: BLUE,
            dashed: false,
            runs: vec![vec![(0.0, 100.0), (6.9, 5000.0)]],
        };
        let narrow = percentile_chart(Size::NARROW, "t", std::slice::from_ref(&line)).unwrap();
        assert!(narrow.contains(">\n99.9999%\n<") && !narrow.contains(">\n99.99999%\n<"));
        let wide = percentile_chart(Size::WIDE, "t", &[line]).unwrap();
        assert!(wide.contains(">\n99.99999%\n<"));
    }

    #[test]
    fn fault_labels_sit_above_the_plot() {
        let line = Line {
            label: "p99".to_owned(),
            color: ORANGE,
            dashed: false,
            runs: vec![vec![(5.0, 1000.0), (10.5, 1_400_000.0), (20.0, 1000.0)]],
        };
        let fault = FaultMark {
            at_s: 10.0,
            recovered_after_s: None,
            label: "kill_worker 1".to_owned(),
        };
        let svg = latency_timeline(Size::WIDE, "t", &[line], 30.0, &[fault]).unwrap();
        let y_of = |needle: &str| -> i32 {
            let at = svg.find(needle).expect(needle);
            let tag = &svg[svg[..at].rfind('<').unwrap()..at];
            let y = &tag[tag.find(" y=\"").unwrap() + 4..];
            y[..y.find('"').unwrap()].parse().unwrap()
        };
        // The label (13 units tall, drawn from its top) ends above the spike's highest point.
        let line = &svg[svg
            .find("stroke=\"#EA580C\" stroke-width=\"2\"")
            .expect("the p99 line")..];
        let points = &line[line.find("points=\"").unwrap() + 8..];
        let top = points[..points.find('"').unwrap()]
            .split_whitespace()
            .filter_map(|p| p.split(',').nth(1)?.parse::<i32>().ok())
            .min()
            .unwrap();
        assert!(y_of(">\nkill_worker 1\n<") + 14 <= top, "{svg}");
    }

    #[test]
    fn only_a_visible_recovery_band_is_in_the_legend() {
        let line = Line {
            label: "p99".to_owned(),
            color: ORANGE,
            dashed: false,
            runs: vec![vec![(5.0, 1000.0), (20.0, 1000.0)]],
        };
        let legend_with = |recovered_after_s: f64| {
            let fault = FaultMark {
                at_s: 10.0,
                recovered_after_s: Some(recovered_after_s),
                label: "pause".to_owned(),
            };
            let svg =
                latency_timeline(Size::WIDE, "t", std::slice::from_ref(&line), 30.0, &[fault]);
            svg.unwrap().contains("until recovered")
        };
        assert!(legend_with(2.0), "a two-second band on a 30 s axis shows");
        assert!(!legend_with(0.001), "a 1 ms band on a 30 s axis does not");
    }
}
