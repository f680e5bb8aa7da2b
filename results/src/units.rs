//! Durations and percentages as people write them in scenario files ("500ms", "1.5s", "2m",
//! "0.1%"), and back.
//!
//! This exists so one strict reader serves every duration and percentage in the scenario schema
//! and in the threshold rules results.json carries (a bare number is refused: "30" could mean
//! seconds or milliseconds), and so results echo values in the same form they were written,
//! exactly (integer arithmetic, no float round trip). Percentages live here, in
//! `roomstorm-results`, because reading a results file parses its rules; durations are read and
//! written by `roomstorm_protocol::duration` (re-exported here under the same names), the one
//! duration parser of the workspace, which the chat server uses too.

pub use roomstorm_protocol::duration::{
    DURATION_HINT, format_duration, parse_duration, parse_plain_number,
};

/// What a percentage looks like, for error messages.
pub const PERCENT_HINT: &str = "a percentage like \"0.1%\" (0% to 100%)";

/// Reads a percentage such as `"0.1%"` and returns it as a fraction (`0.001`).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    percent_as_written(text).map(|percent| percent / 100.0)
}

/// Reads a percentage and returns the number as written (`"0.1%"` gives `0.1`), so it can be
/// displayed again without float noise.
pub fn percent_as_written(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let refuse = || format!("`{text}` is not {PERCENT_HINT}");
    let number = text.strip_suffix('%').ok_or_else(refuse)?;
    let value = parse_plain_number(number.trim_end()).ok_or_else(refuse)?;
    if value > 100.0 {
        return Err(format!("`{text}` is over 100%"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_fractions() {
        assert_eq!(parse_percent("0.1%"), Ok(0.1 / 100.0));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        assert_eq!(parse_percent("0 %"), Ok(0.0));
        assert!(
            parse_percent("0.1")
                .unwrap_err()
                .contains("not a percentage")
        );
        assert!(parse_percent("101%").unwrap_err().contains("over 100%"));
        assert!(parse_percent("-1%").is_err());
    }
}
