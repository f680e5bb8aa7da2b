//! The HTML around the charts: one stylesheet, the page shell, tiles, tables and figures.
//!
//! Reports must open offline, years later, on a phone or on paper: so everything is inline
//! (no script, no web font, no image, no link to anything outside the file), the type is the
//! system's own, the layout is a CSS grid that folds to one column on narrow screens, and a
//! print stylesheet keeps charts and tables whole on paper. Shared by the run report and the
//! comparison.

use std::fmt::Write as _;

use crate::charts::Chart;
use crate::format::esc;

const CSS: &str = r#"
:root {
  --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f3f4f6; --card: #ffffff;
  --pass: #15803d; --pass-bg: #dcfce7; --fail: #b91c1c; --fail-bg: #fee2e2;
  --warn: #b45309; --warn-bg: #fef3c7; --accent: #2563eb;
  --font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 15px/1.5 var(--font); }
.page { max-width: 1480px; margin: 0 auto; padding: 24px clamp(12px, 3vw, 32px) 48px; }
h1 { font-size: clamp(22px, 3vw, 30px); line-height: 1.2; margin: 0; letter-spacing: -0.01em; }
h2 { font-size: 19px; margin: 0 0 12px; letter-spacing: -0.005em; }
h3 { font-size: 15px; margin: 0; }
p { margin: 0; }
.muted { color: var(--muted); }
.num, td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: var(--mono); font-size: 0.92em; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, 0.04); }
section { margin-top: 28px; }

/* The verdict banner */
.banner { display: flex; gap: 20px; align-items: stretch; padding: 0; overflow: hidden; }
.verdict { display: flex; flex-direction: column; justify-content: center; align-items: center;
  min-width: 132px; padding: 18px 20px; color: #fff; font-weight: 800; letter-spacing: 0.06em; }
.verdict .word { font-size: 30px; line-height: 1; }
.verdict .why { font-size: 12px; font-weight: 600; letter-spacing: 0.02em; margin-top: 6px; opacity: 0.92;
  text-align: center; }
.pass .verdict { background: var(--pass); }
.fail .verdict { background: var(--fail); }
.banner .about { padding: 18px 20px 18px 0; flex: 1; min-width: 0; }
.banner .kind { font-size: 12px; font-weight: 700; text-transform: uppercase; letter-spacing: 0.08em;
  color: var(--muted); margin-bottom: 4px; }
.banner .desc { color: var(--muted); margin-top: 6px; max-width: 80ch; }
.meta { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 12px 0 0; padding: 0; }
.meta div { display: flex; gap: 6px; align-items: baseline; min-width: 0; }
.meta dt { color: var(--muted); font-size: 13px; }
.meta dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
nav.toc { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 14px 2px 0; font-size: 13px; }
nav.toc a { color: var(--accent); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.alert { margin-top: 16px; padding: 10px 14px; border-radius: 8px; background: var(--warn-bg);
  color: var(--warn); border: 1px solid #fcd34d; }

/* Summary tiles */
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(168px, 1fr)); gap: 12px; }
.tile { padding: 12px 14px; border-left: 4px solid var(--line); }
.tile .label { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase;
  letter-spacing: 0.05em; }
.tile .value { font-size: 24px; font-weight: 700; font-variant-numeric: tabular-nums; line-height: 1.25;
  margin-top: 2px; overflow-wrap: anywhere; }
.tile .sub { font-size: 13px; color: var(--muted); margin-top: 2px; }
.tile.good { border-left-color: var(--pass); }
.tile.bad { border-left-color: var(--fail); }
.tile.bad .value { color: var(--fail); }
.tile.accent { border-left-color: var(--accent); }

/* Tables */
/* A table wider than the screen scrolls in its card; a shadow on the side that has more to
   show says so (the covers scroll with the table and hide the shadow at either end). */
.table-wrap { overflow-x: auto;
  background:
    linear-gradient(to right, var(--card) 30%, rgba(255,255,255,0)) left / 40px 100% no-repeat local,
    linear-gradient(to left, var(--card) 30%, rgba(255,255,255,0)) right / 40px 100% no-repeat local,
    radial-gradient(farthest-side at 0 50%, rgba(0,0,0,0.18), rgba(0,0,0,0)) left / 14px 100% no-repeat scroll,
    radial-gradient(farthest-side at 100% 50%, rgba(0,0,0,0.18), rgba(0,0,0,0)) right / 14px 100% no-repeat scroll;
  background-color: var(--card); }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th, td { padding: 8px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em;
  background: #f9fafb; }
tr:last-child td { border-bottom: none; }
td.key { white-space: nowrap; }
td .rule { font-size: 12px; color: var(--muted); margin-top: 2px; }
td.worse { color: var(--fail); font-weight: 600; }
td.better { color: var(--pass); font-weight: 600; }
td.wrap { overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 700;
  letter-spacing: 0.04em; }
.badge.pass { background: var(--pass-bg); color: var(--pass); }
.badge.fail { background: var(--fail-bg); color: var(--fail); }
.badge.none { background: #f3f4f6; color: var(--muted); }
.empty { padding: 14px; color: var(--muted); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 460px), 1fr)); gap: 16px; }

/* Charts: auto-fill, not auto-fit, so that a lone chart (rate steps, CPU) keeps the width of
   one column instead of stretching over the page with twice as large text. */
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 600px), 1fr)); gap: 16px; }
/* A chart followed by its table (rate steps, resources): keep them apart like the cards. */
section > .charts + * { margin-top: 16px; }
figure.chart { margin: 0; padding: 14px 14px 8px; min-width: 0; }
figure.chart figcaption { margin: 0 4px 8px; }
figure.chart figcaption p { font-size: 13px; color: var(--muted); margin-top: 2px; }
figure.chart svg { display: block; width: 100%; height: auto; }
figure.chart svg text { font-family: var(--font); }
figure.chart .narrow { display: none; }
footer { margin-top: 36px; font-size: 12px; color: var(--muted); text-align: center; }

@media (max-width: 640px) {
  body { font-size: 14px; }
  .banner { flex-direction: column; gap: 0; }
  .verdict { flex-direction: row; gap: 12px; min-width: 0; padding: 12px 16px; justify-content: flex-start; }
  .verdict .word { font-size: 24px; }
  .verdict .why { margin-top: 0; text-align: left; }
  .banner .about { padding: 14px 16px; }
  .tiles { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
  .tile { padding: 10px 10px; }
  .tile .value { font-size: 19px; }
  figure.chart { padding: 10px 6px 4px; }
  figure.chart .wide { display: none; }
  figure.chart .narrow { display: block; }
  th, td { padding: 7px 8px; }
}
@media print {
  body { background: #fff; font-size: 11pt; }
  .page { max-width: none; padding: 0; }
  .card { box-shadow: none; }
  nav.toc { display: none; }
  .charts { grid-template-columns: 1fr 1fr; }
  /* Half a page wide, the wide drawing's ticks come out at 4-5 pt: print the narrow one. */
  figure.chart .wide { display: none; }
  figure.chart .narrow { display: block; }
  figure.chart, .tile, tr, .banner { break-inside: avoid; }
  .table-wrap { overflow: visible; background: none; }
  table { font-size: 8.5pt; }
  th, td { padding: 4px 6px; }
  section { break-inside: auto; }
  h2 { break-after: avoid; }
  .verdict { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
@page { margin: 12mm; }
"#;

/// A whole page: `<head>` with the stylesheet, then `body`.
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"roomstorm-reports {}\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<div class=\"page\">\n{body}\n</div>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(title)
    )
}

/// A summary tile.
pub struct Tile {
    pub label: String,
    pub value: String,
    pub sub: String,
    /// `good`, `bad`, `accent` or empty.
    pub class: &'static str,
}

impl Tile {
    pub fn new(label: &str, value: String, sub: String, class: &'static str) -> Tile {
        Tile {
            label: label.to_owned(),
            value,
            sub,
            class,
        }
    }
}

pub fn tiles(tiles: &[Tile]) -> String {
    let mut out = String::from("<div class=\"tiles\">\n");
    for t in tiles {
        let _ = writeln!(
            out,
            "<div class=\"tile card {}\"><div class=\"label\">{}</div><div class=\"value\">{}</div>\
             <div class=\"sub\">{}</div></div>",
            t.class,
            esc(&t.label),
            esc(&t.value),
            esc(&t.sub)
        );
    }
    out.push_str("</div>\n");
    out
}

/// A table cell: text (escaped) or markup, and a class.
pub struct Cell {
    pub html: String,
    pub class: &'static str,
}

/// Plain text, left aligned.
pub fn text(s: &str) -> Cell {
    Cell {
        html: esc(s),
        class: "",
    }
}

/// A number, right aligned.
pub fn num(s: &str) -> Cell {
    Cell {
        html: esc(s),
        class: "num",
    }
}

/// Markup as is (badges).
pub fn raw(html: String, class: &'static str) -> Cell {
    Cell { html, class }
}

/// A verdict badge.
pub fn badge(passed: Option<bool>) -> Cell {
    let (class, word) = match passed {
        Some(true) => ("pass", "PASS"),
        Some(false) => ("fail", "FAIL"),
        None => ("none", "n/a"),
    };
    raw(format!("<span class=\"badge {class}\">{word}</span>"), "")
}

/// A table; `heads` ending in `#` are right aligned (numbers).
pub fn table(heads: &[&str], rows: Vec<Vec<Cell>>, empty: &str) -> String {
    if rows.is_empty() {
        return format!("<div class=\"card empty\">{}</div>\n", esc(empty));
    }
    let mut out = String::from("<div class=\"card table-wrap\"><table>\n<thead><tr>");
    for h in heads {
        match h.strip_suffix('#') {
            Some(h) => {
                let _ = write!(out, "<th class=\"num\">{}</th>", esc(h));
            }
            None => {
                let _ = write!(out, "<th>{}</th>", esc(h));
            }
        }
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            if cell.class.is_empty() {
                let _ = write!(out, "<td>{}</td>", cell.html);
            } else {
                let _ = write!(out, "<td class=\"{}\">{}</td>", cell.class, cell.html);
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// A section with an id (for the table of contents) and a heading.
pub fn section(id: &str, title: &str, content: &str) -> String {
    format!(
        "<section id=\"{id}\">\n<h2>{}</h2>\n{content}</section>\n",
        esc(title)
    )
}

/// The charts grid.
pub fn charts(charts: &[Chart]) -> String {
    let mut out = String::from("<div class=\"charts\">\n");
    for c in charts {
        let _ = writeln!(
            out,
            "<figure class=\"chart card\" id=\"chart-{}\">\n<figcaption><h3>{}</h3><p>{}</p></figcaption>\n\
             <div class=\"wide\">{}</div><div class=\"narrow\">{}</div></figure>",
            c.id,
            esc(&c.title),
            esc(&c.caption),
            c.svg.0,
            c.svg.1
        );
    }
    out.push_str("</div>\n");
    out
}

/// Links to the sections.
pub fn toc(entries: &[(&str, &str)]) -> String {
    let mut out = String::from("<nav class=\"toc\">");
    for (id, title) in entries {
        let _ = write!(out, "<a href=\"#{id}\">{}</a>", esc(title));
    }
    out.push_str("</nav>\n");
    out
}

/// The scenario as run, flattened to dotted keys (`traffic.rate_per_member`), sorted by key.
pub fn flatten(value: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) if !map.is_empty() => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by_key(|(k, _)| *k);
                for (k, v) in entries {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Array(items) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_nested_scenarios() {
        let v = serde_json::json!({"name": "x", "target": {"local": {"workers": 2}},
            "faults": [{"at": "10s"}], "thresholds": {}});
        assert_eq!(
            flatten(&v),
            [
                ("faults[0].at".to_owned(), "10s".to_owned()),
                ("name".to_owned(), "x".to_owned()),
                ("target.local.workers".to_owned(), "2".to_owned()),
                ("thresholds".to_owned(), "{}".to_owned()),
            ]
        );
    }

    #[test]
    fn empty_tables_say_so() {
        assert!(table(&["a"], Vec::new(), "nothing here").contains("nothing here"));
        let t = table(&["kind", "count#"], vec![vec![text("<x>"), num("1")]], "");
        assert!(t.contains("<th class=\"num\">count</th>") && t.contains("&lt;x&gt;"));
    }
}
