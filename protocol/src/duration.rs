//! Durations as people write them ("500ms", "1.5s", "2m"), read and written back exactly.
//!
//! One strict reader for every duration in the workspace: scenario files and the threshold rules
//! results.json carries (through `roomstorm-results`), the load generator's flags, and the chat
//! server's `*-ms` flags. A bare number is refused here ("30" could mean seconds or
//! milliseconds); a caller whose old form was an integer of a known unit accepts that itself.
//! Writing is exact (integer arithmetic, no float round trip), so results echo values in the
//! form they were written. It lives in this crate, which has no I/O and few dependencies, so
//! the server need not depend on the results crate to read its flags.

use std::time::Duration;

/// Units a duration may carry, with their length in nanoseconds; longest suffix first so
/// "ms" is not read as "m".
const DURATION_UNITS: [(&str, u64); 7] = [
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
];

/// What a duration looks like, for error messages.
pub const DURATION_HINT: &str =
    "a duration like \"500ms\", \"1.5s\", \"2m\" (units: us, ms, s, m, h)";

/// Reads a duration such as `"500ms"`, `"1.5s"`, `"2m"`, `"200us"`, `"1h"`.
///
/// A unit is required and the number may have a decimal part; the result is rounded to the
/// nanosecond.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let refuse = || format!("`{text}` is not {DURATION_HINT}");
    let (number, unit_nanos) = DURATION_UNITS
        .iter()
        .find_map(|(unit, nanos)| text.strip_suffix(unit).map(|n| (n, *nanos)))
        .ok_or_else(refuse)?;
    let value = parse_plain_number(number).ok_or_else(refuse)?;
    let nanos = (value * unit_nanos as f64).round();
    if nanos > u64::MAX as f64 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// A non-negative decimal number without sign, exponent, `inf` or `nan`: what a person writes.
pub fn parse_plain_number(text: &str) -> Option<f64> {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().any(|c| c.is_ascii_digit());
    if plain { text.parse().ok() } else { None }
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest unit that keeps it
/// exact or readable: `2m`, `90s`, `1.5s`, `50ms`, `200us`.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    const MINUTE: u128 = 60_000_000_000;
    const HOUR: u128 = 60 * MINUTE;
    match nanos {
        0 => "0s".to_string(),
        n if n % HOUR == 0 => format!("{}h", n / HOUR),
        n if n % MINUTE == 0 => format!("{}m", n / MINUTE),
        n if n >= 1_000_000_000 => decimal(n, 1_000_000_000, "s"),
        n if n >= 1_000_000 => decimal(n, 1_000_000, "ms"),
        n => decimal(n, 1_000, "us"),
    }
}

/// `value / unit` written exactly as a decimal with trailing zeros removed, then `suffix`.
fn decimal(value: u128, unit: u128, suffix: &str) -> String {
    let whole = value / unit;
    let fraction = value % unit;
    if fraction == 0 {
        return format!("{whole}{suffix}");
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}{suffix}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("200us"), Ok(Duration::from_micros(200)));
        assert_eq!(parse_duration("200µs"), Ok(Duration::from_micros(200)));
        assert_eq!(parse_duration(" 0.1s "), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_unit_or_number_are_refused() {
        for bad in [
            "30",
            "s",
            "-1s",
            "1e3ms",
            "1.5 weeks",
            "",
            "nans",
            "1..s",
            "fast",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_write_back_exactly() {
        for text in [
            "2m", "90s", "1.5s", "50ms", "200us", "1h", "0s", "1.25ms", "0.5us",
        ] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(format_duration(duration), text);
        }
        assert_eq!(format_duration(Duration::from_millis(120_000)), "2m");
        assert_eq!(format_duration(Duration::from_millis(1000)), "1s");
    }
}
