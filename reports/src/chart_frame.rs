//! The frame every chart of a report shares, drawn with plotters' SVG backend: sizes,
//! fonts and colors, the legend strip on top (drawn here, so it never hides data), axes with
//! labelled ticks and units, the "no data" note, and the SVG's final shape (a `viewBox`
//! without fixed width and height, and a `<title>`). Kept apart from the chart kinds
//! (`charts`) so that a new chart is only its data and marks.

use std::ops::Range;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::{latency_ticks, linear_ticks, time_ticks};
use crate::format;

/// The drawing size of a chart, in SVG user units (the page scales it to its column). Each
/// chart is drawn twice: [`Size::WIDE`] for screens and paper, [`Size::NARROW`] for phones,
/// where a wide chart scaled down to 360 px would have 6 px text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub w: u32,
    pub h: u32,
}

impl Size {
    pub const WIDE: Size = Size { w: 720, h: 400 };
    pub const NARROW: Size = Size { w: 420, h: 380 };

    pub(crate) fn narrow(self) -> bool {
        self.w < 600
    }

    /// How many ticks an axis of this chart gets at most.
    pub(crate) fn ticks(self) -> usize {
        if self.narrow() { 5 } else { 7 }
    }

    pub(crate) fn y_label_area(self) -> u32 {
        if self.narrow() { 72 } else { 84 }
    }
}

/// Font sizes as plotters takes them (it writes `size / 1.24` px into the SVG).
pub(crate) const TICK_FONT: f64 = 16.0;
pub(crate) const DESC_FONT: f64 = 17.0;
const LEGEND_FONT: f64 = 16.0;
const NOTE_FONT: f64 = 20.0;
pub(crate) const FONT: &str = "sans-serif";

pub const INK: RGBColor = RGBColor(0x1f, 0x29, 0x37);
pub const MUTED: RGBColor = RGBColor(0x6b, 0x72, 0x80);
pub(crate) const GRID: RGBColor = RGBColor(0xe5, 0xe7, 0xeb);
pub(crate) const AXIS: RGBColor = RGBColor(0x9c, 0xa3, 0xaf);
pub const BLUE: RGBColor = RGBColor(0x25, 0x63, 0xeb);
pub const ORANGE: RGBColor = RGBColor(0xea, 0x58, 0x0c);
pub const GREEN: RGBColor = RGBColor(0x16, 0xa3, 0x4a);
pub const PURPLE: RGBColor = RGBColor(0x93, 0x33, 0xea);
pub const RED: RGBColor = RGBColor(0xdc, 0x26, 0x26);
pub const TEAL: RGBColor = RGBColor(0x0d, 0x94, 0x88);
pub const SLATE: RGBColor = RGBColor(0x47, 0x55, 0x69);
pub const AMBER: RGBColor = RGBColor(0xd9, 0x77, 0x06);
pub const PINK: RGBColor = RGBColor(0xdb, 0x27, 0x77);

/// Colors of error kinds, in order of frequency.
pub const KIND_COLORS: [RGBColor; 8] = [RED, ORANGE, PURPLE, AMBER, PINK, TEAL, SLATE, BLUE];

/// One drawn chart: its anchor id, title, one-line caption, and its SVG markup at both sizes.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub caption: String,
    /// The SVG drawn at [`Size::WIDE`] and at [`Size::NARROW`].
    pub svg: (String, String),
}

/// Draws a chart at both sizes.
pub fn both(draw: impl Fn(Size) -> anyhow::Result<String>) -> anyhow::Result<(String, String)> {
    Ok((draw(Size::WIDE)?, draw(Size::NARROW)?))
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Line,
    Dashed,
    Box,
    Band,
}

/// A legend entry.
#[derive(Debug, Clone)]
pub struct Legend {
    pub label: String,
    pub color: RGBColor,
    pub mark: Mark,
}

impl Legend {
    pub fn new(label: impl Into<String>, color: RGBColor, mark: Mark) -> Self {
        Legend {
            label: label.into(),
            color,
            mark,
        }
    }
}

/// An axis: range, tick values, description, tick formatter.
pub(crate) struct Axis {
    pub(crate) range: Range<f64>,
    pub(crate) ticks: Vec<f64>,
    pub(crate) desc: String,
    pub(crate) fmt: Box<dyn Fn(f64) -> String>,
}

impl Axis {
    /// A log axis of µs values, in log10 space.
    pub(crate) fn latency(size: Size, lo_us: f64, hi_us: f64, desc: &str) -> Axis {
        let (lo, hi) = log_range(lo_us, hi_us);
        let ticks = latency_ticks(10f64.powf(lo), 10f64.powf(hi), size.ticks());
        Axis {
            range: lo..hi,
            ticks: ticks.iter().map(|t| t.log10()).collect(),
            desc: desc.to_owned(),
            fmt: Box::new(|x| format::us_tick(10f64.powf(x))),
        }
    }

    /// A linear axis from 0 (or `lo`) to a little above `hi`.
    pub(crate) fn linear(
        size: Size,
        lo: f64,
        hi: f64,
        desc: &str,
        fmt: Box<dyn Fn(f64) -> String>,
    ) -> Axis {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let ticks = linear_ticks(lo, hi, size.ticks() - 1);
        let top = ticks.last().copied().unwrap_or(hi).max(hi);
        Axis {
            range: lo..top,
            ticks,
            desc: desc.to_owned(),
            fmt,
        }
    }

    /// Seconds since the start.
    pub(crate) fn time(size: Size, span: f64) -> Axis {
        let span = span.max(1.0);
        Axis {
            range: 0.0..span,
            // Clock labels (1:00:00) are wide: fewer of them on a phone.
            ticks: time_ticks(span, if size.narrow() { 4 } else { 8 }),
            desc: if span <= 120.0 {
                "time since start (s)".to_owned()
            } else if span < 3600.0 {
                "time since start (min:s)".to_owned()
            } else {
                "time since start (h:min:s)".to_owned()
            },
            fmt: Box::new(move |s| format::clock(s, span)),
        }
    }

    /// Keeps whole-number ticks only (for counts).
    pub(crate) fn integer(mut self) -> Axis {
        self.ticks.retain(|t| t.fract() == 0.0);
        self
    }

    pub(crate) fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.range.start, self.range.end)
    }

    /// The width of a vertical axis' label area: the size's default, or more when the widest
    /// tick label needs it, so that the rotated description never runs into the ticks (seen on
    /// phones: "messages per second" over "200,000" on the throughput chart's right axis).
    pub(crate) fn label_area(&self, size: Size) -> u32 {
        let widest = self
            .ticks
            .iter()
            .map(|t| tick_text_width(&(self.fmt)(*t)))
            .fold(0.0, f64::max);
        // Tick mark and gaps (14) plus the rotated description's line (22).
        size.y_label_area().max((widest + 36.0).ceil() as u32)
    }
}

/// Approximate width of a tick label at [`TICK_FONT`], SVG units (digits are ~0.62 em).
pub(crate) fn tick_text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 0.62 * TICK_FONT / 1.24
}

/// A log10 range around `lo..hi` µs (values below 1 µs count as 1 µs), at least half a decade
/// wide, padded a little on each side.
fn log_range(lo: f64, hi: f64) -> (f64, f64) {
    let lo = lo.max(1.0).log10();
    let hi = hi.max(1.0).log10().max(lo);
    let pad = ((0.5 - (hi - lo)) / 2.0).max(0.0) + 0.05;
    ((lo - pad).max(0.0), hi + pad)
}

/// A linear f64 coordinate whose grid lines and labels are exactly the ticks we chose (1-2-5
/// steps in log space, whole minutes, nines), formatted by the axis' own formatter.
#[derive(Debug, Clone)]
pub(crate) struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span <= 0.0 || !v.is_finite() {
            return (limit.0 + limit.1) / 2;
        }
        let f = (v - self.range.start) / span;
        limit.0 + ((limit.1 - limit.0) as f64 * f).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl Axis {
    pub(crate) fn coord(&self) -> Ticked {
        Ticked {
            range: self.range.clone(),
            ticks: self
                .ticks
                .iter()
                .copied()
                .filter(|t| self.range.contains(t) || *t == self.range.end)
                .collect(),
        }
    }
}

pub(crate) type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;
pub(crate) type Coords = Cartesian2d<Ticked, Ticked>;
pub(crate) type Ctx<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Coords>;

pub(crate) fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Draws a chart into an SVG string: white background, the legend strip, then `draw` on the
/// rest; returns the SVG made responsive and titled.
pub(crate) fn render(
    size: Size,
    title: &str,
    legend: &[Legend],
    draw: impl FnOnce(&Area<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (size.w, size.h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let rows = legend_rows(size, legend);
        let strip = 10 + 24 * rows.len() as u32;
        let (top, body) = root.split_vertically(strip);
        draw_legend(&top, &rows)?;
        draw(&body)?;
        root.present().map_err(err)?;
    }
    Ok(finish_svg(size, &buf, title))
}

/// Removes the fixed size (the page sizes it through CSS and the `viewBox`), adds a role and
/// a `<title>`.
fn finish_svg(size: Size, svg: &str, title: &str) -> String {
    let fixed = format!("width=\"{}\" height=\"{}\" ", size.w, size.h);
    let svg = svg.replacen(&fixed, "role=\"img\" ", 1);
    match svg.find('>') {
        Some(end) => format!(
            "{}\n<title>{}</title>{}",
            &svg[..=end],
            format::esc(title),
            &svg[end + 1..]
        ),
        None => svg,
    }
}

/// Approximate width of legend text at [`LEGEND_FONT`], SVG units.
pub(crate) fn text_width(text: &str) -> i32 {
    (text.chars().count() as f64 * 7.4) as i32
}

/// Legend entries laid out in rows that fit the width.
fn legend_rows(size: Size, legend: &[Legend]) -> Vec<Vec<(i32, &Legend)>> {
    let mut rows: Vec<Vec<(i32, &Legend)>> = Vec::new();
    let mut x = 0;
    for item in legend {
        let w = 26 + text_width(&item.label) + 22;
        if rows.is_empty() || x + w > size.w as i32 - 24 {
            rows.push(Vec::new());
            x = 0;
        }
        rows.last_mut().expect("a row").push((x, item));
        x += w;
    }
    rows
}

fn draw_legend(area: &Area<'_>, rows: &[Vec<(i32, &Legend)>]) -> anyhow::Result<()> {
    let style = TextStyle::from((FONT, LEGEND_FONT).into_font())
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (r, row) in rows.iter().enumerate() {
        let y = 16 + 24 * r as i32;
        for &(x0, item) in row {
            let x = 16 + x0;
            let c = item.color;
            match item.mark {
                Mark::Line => area
                    .draw(&PathElement::new(
                        vec![(x, y), (x + 20, y)],
                        c.stroke_width(3),
                    ))
                    .map_err(err)?,
                Mark::Dashed => {
                    for dx in [0, 8, 16] {
                        area.draw(&PathElement::new(
                            vec![(x + dx, y), (x + dx + 5, y)],
                            c.stroke_width(3),
                        ))
                        .map_err(err)?;
                    }
                }
                Mark::Box => area
                    .draw(&Rectangle::new(
                        [(x + 3, y - 7), (x + 17, y + 7)],
                        c.filled(),
                    ))
                    .map_err(err)?,
                Mark::Band => area
                    .draw(&Rectangle::new(
                        [(x, y - 7), (x + 20, y + 7)],
                        c.mix(0.18).filled(),
                    ))
                    .map_err(err)?,
            }
            area.draw_text(&item.label, &style, (x + 26, y))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Axes, grid and ticks on `area`.
pub(crate) fn frame<'a, 'b>(
    size: Size,
    area: &'a Area<'b>,
    x: &Axis,
    y: &Axis,
) -> anyhow::Result<Ctx<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .margin_left(8)
        .margin_right(34)
        .margin_top(6)
        .margin_bottom(4)
        .x_label_area_size(52)
        .y_label_area_size(y.label_area(size))
        .build_cartesian_2d(x.coord(), y.coord())
        .map_err(err)?;
    let tick_style = TextStyle::from((FONT, TICK_FONT).into_font()).color(&MUTED);
    let desc_style = TextStyle::from((FONT, DESC_FONT).into_font()).color(&INK);
    let xf = |v: &f64| (x.fmt)(*v);
    let yf = |v: &f64| (y.fmt)(*v);
    chart
        .configure_mesh()
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.stroke_width(1))
        .label_style(tick_style)
        .axis_desc_style(desc_style)
        .x_desc(x.desc.as_str())
        .y_desc(y.desc.as_str())
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .set_tick_mark_size(LabelAreaPosition::Left, 4)
        .set_tick_mark_size(LabelAreaPosition::Bottom, 4)
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// A note in the middle of the plotting area ("no data", "no errors").
pub(crate) fn note(chart: &Ctx<'_, '_>, text: &str, color: RGBColor) -> anyhow::Result<()> {
    let area = chart.plotting_area();
    let (w, h) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, NOTE_FONT).into_font())
        .color(&color)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.strip_coord_spec()
        .draw_text(text, &style, (w as i32 / 2, h as i32 / 2))
        .map_err(err)
}

/// An empty frame with a note: what a chart shows when results lack its data.
pub(crate) fn empty(
    size: Size,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    message: &str,
    legend: &[Legend],
) -> anyhow::Result<String> {
    let x = Axis::linear(size, 0.0, 1.0, x_desc, Box::new(|_| String::new()));
    let y = Axis::linear(size, 0.0, 1.0, y_desc, Box::new(|_| String::new()));
    render(size, title, legend, |area| {
        let chart = frame(size, area, &x, &y)?;
        note(&chart, message, MUTED)
    })
}

/// A vertical dashed line over the whole y range.
pub(crate) fn vline(
    chart: &mut Ctx<'_, '_>,
    x: f64,
    y: &Axis,
    color: RGBColor,
) -> anyhow::Result<()> {
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x, y.range.start), (x, y.range.end)],
            6,
            5,
            color.stroke_width(2),
        ))
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_areas_fit_the_widest_tick() {
        let axis = Axis::linear(
            Size::NARROW,
            0.0,
            200_000.0,
            "messages per second",
            Box::new(format::rate),
        );
        assert!(axis.label_area(Size::NARROW) > Size::NARROW.y_label_area());
        let small = Axis::linear(Size::NARROW, 0.0, 40.0, "members", Box::new(format::rate));
        assert_eq!(small.label_area(Size::NARROW), Size::NARROW.y_label_area());
    }

    #[test]
    fn svg_is_titled_and_scalable() {
        let svg = empty(Size::WIDE, "A title <&>", "x", "y", "no data", &[]).expect("renders");
        assert!(svg.contains("<title>A title &lt;&amp;&gt;</title>"));
        assert!(svg.contains("viewBox=\"0 0 720 400\""));
        let open = &svg[..svg.find('>').expect("a tag")];
        assert!(!open.contains("width="), "{open}");
        assert!(svg.contains("no data"));
    }
}
