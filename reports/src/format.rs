//! Numbers as people read them: µs/ms/s/min/h with three significant digits, counts with
//! thousands separators, ratios as percentages that show their first non-9 digit, and HTML
//! escaping.
//!
//! Reports are read weeks later by someone deciding whether a change made things worse: a raw
//! `16591` (µs? ms?) or `0.999983` invites mistakes, so every number on the page goes through
//! one of these.

use roomstorm_results::threshold::sig3;

/// A duration in µs with three significant digits: `850 µs`, `16.6 ms`, `1.23 s`,
/// `12 min 30 s`, `1 h 02 min`.
pub fn us(v: u64) -> String {
    us_f(v as f64)
}

/// Like [`us`], for fractional values (means).
pub fn us_f(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    let v = v.max(0.0);
    if v < 999.5 {
        format!("{} µs", sig3(v))
    } else if v < 999_500.0 {
        format!("{} ms", sig3(v / 1e3))
    } else if v < 59.95e6 {
        format!("{} s", sig3(v / 1e6))
    } else if v < 3_600e6 {
        let s = (v / 1e6).round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (v / 60e6).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// A short axis label for a duration in µs: `1 ms`, `2.5 s`, `10 min`, `1 h`.
pub fn us_tick(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return "0".to_owned();
    }
    if v < 1_000.0 {
        format!("{} µs", trim(v))
    } else if v < 1_000_000.0 {
        format!("{} ms", trim(v / 1e3))
    } else if v < 60e6 {
        format!("{} s", trim(v / 1e6))
    } else if v < 3_600e6 {
        format!("{} min", trim(v / 60e6))
    } else {
        format!("{} h", trim(v / 3_600e6))
    }
}

/// At most three significant digits, trailing zeros dropped: `2`, `2.5`, `0.25`.
fn trim(v: f64) -> String {
    let text = sig3(v);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count that may be fractional (per-second rates): separators, at most one decimal.
pub fn rate(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    if v >= 100.0 || v.fract() == 0.0 {
        count(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

/// A fraction as a percentage precise enough to tell it from 100%: `100%`, `96.75%`,
/// `99.9990%`.
pub fn pct(f: f64) -> String {
    if !f.is_finite() {
        return "n/a".to_owned();
    }
    roomstorm_results::threshold::format_fraction(f)
}

/// A duration in seconds: `24.0 s`, `5 min 03 s`, `1 h 00 min`.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "n/a".to_owned();
    }
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        us_f(s * 1e6)
    }
}

/// An RFC 3339 UTC timestamp as people read it: `2024-11-26 01:10:00.123 UTC`.
pub fn timestamp(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(t) => format!("{} UTC", t.replacen('T', " ", 1)),
        None => rfc3339.replacen('T', " ", 1),
    }
}

/// Seconds since the start as a clock: `45 s` below two minutes, else `m:ss` or `h:mm:ss`.
pub fn clock(s: f64, span: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if span <= 120.0 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A signed relative change: `+20.0%`, `−3.1%`, `±0%`.
pub fn change(base: f64, new: f64) -> String {
    if base == new {
        return "±0%".to_owned();
    }
    if base == 0.0 || !base.is_finite() || !new.is_finite() {
        return if new > base {
            "new".to_owned()
        } else {
            "gone".to_owned()
        };
    }
    let c = (new - base) / base * 100.0;
    if c >= 0.0 {
        format!("+{c:.1}%")
    } else {
        format!("\u{2212}{:.1}%", -c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_units_and_three_digits() {
        assert_eq!(us(0), "0 µs");
        assert_eq!(us(850), "850 µs");
        assert_eq!(us(1_583), "1.58 ms");
        assert_eq!(us(16_591), "16.6 ms");
        assert_eq!(us(166_000), "166 ms");
        assert_eq!(us(1_230_000), "1.23 s");
        assert_eq!(us(750_000_000), "12 min 30 s");
        assert_eq!(us(3_600_000_000), "1 h 00 min");
        assert_eq!(us(7_380_000_000), "2 h 03 min");
        assert_eq!(us_tick(1_000.0), "1 ms");
        assert_eq!(us_tick(2_500_000.0), "2.5 s");
        assert_eq!(us_tick(600e6), "10 min");
        assert_eq!(us_tick(3_600e6), "1 h");
        assert_eq!(us_tick(200.0), "200 µs");
    }

    #[test]
    fn counts_and_percentages() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(pct(1.0), "100%");
        assert_eq!(pct(0.9675), "96.75%");
        assert_eq!(pct(0.99999), "99.9990%");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(0.0001), "0.010%");
        assert_eq!(pct(0.25), "25.0%");
        assert_eq!(pct(0.999983), "99.9983%");
    }

    #[test]
    fn clocks_and_changes() {
        assert_eq!(clock(45.0, 60.0), "45 s");
        assert_eq!(
            timestamp("2024-11-26T01:10:00.123Z"),
            "2024-11-26 01:10:00.123 UTC"
        );
        assert_eq!(clock(125.0, 600.0), "2:05");
        assert_eq!(clock(3_725.0, 4_000.0), "1:02:05");
        assert_eq!(change(100.0, 120.0), "+20.0%");
        assert_eq!(change(100.0, 90.0), "\u{2212}10.0%");
        assert_eq!(change(0.0, 0.0), "±0%");
        assert_eq!(change(0.0, 3.0), "new");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
