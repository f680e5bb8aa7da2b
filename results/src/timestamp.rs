//! The one timestamp format of results.json: RFC 3339 in UTC with milliseconds, written by
//! `humantime` (no calendar code of our own).

use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 in UTC with milliseconds, e.g. `2024-11-26T01:10:00.123Z`. Fixed width, so such
/// timestamps also sort as text. A time before 1970 (a clock gone wrong) is written as the
/// epoch, since humantime refuses it.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at.max(UNIX_EPOCH)).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_732_580_000_123);
        assert_eq!(rfc3339(t), "2024-11-26T00:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59.000Z"
        );
    }
}
