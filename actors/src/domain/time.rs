//! Wall-clock helpers: epoch milliseconds and their ISO-8601 form, the one format hookwire prints times in; and the
//! crate's one monotonic clock type, [`Instant`].

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The one monotonic clock of the actors crate: tokio's, so that actor tests can pause and advance time
/// (`tokio::time::pause`, `tokio::time::advance`) and every deadline, timer and measured duration moves with it.
/// Outside a runtime, or with time not paused, it reads the system's monotonic clock as `std::time::Instant` does.
pub use tokio::time::Instant;

/// Returns the current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Formats epoch milliseconds as UTC ISO-8601 with milliseconds, e.g. `2026-11-22T10:34:05.123Z`.
pub fn iso8601_ms(epoch_ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_iso8601_ms(epoch_ms, &mut out);
    out
}

/// Appends epoch milliseconds as UTC ISO-8601 with milliseconds to `out`.
pub fn write_iso8601_ms(epoch_ms: i64, out: &mut String) {
    let (days, ms) = (epoch_ms.div_euclid(86_400_000), epoch_ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let _ = write!(out, "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z");
}

/// Parses ISO-8601 UTC (`2026-11-22T10:34:05Z`, with optional fraction, `+00:00` for `Z`, no offset for UTC, or
/// a date alone, `2026-11-22`, meaning its midnight) into epoch milliseconds. Other offsets are refused: times
/// are UTC. Dates that do not exist (`2026-02-31`) are refused. The parsing is the `time` crate's RFC 3339 parser;
/// this function only adds the shorter forms.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let datetime = if text.len() == 10 {
        time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339).ok()?
    } else {
        // RFC 3339 allows any separator between date and time; ISO-8601 has `T`, and a space reads well.
        if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
            return None;
        }
        // A time without an offset is UTC here; RFC 3339 requires one. With an offset, the `Z` added is refused.
        time::OffsetDateTime::parse(text, &Rfc3339)
            .or_else(|_| time::OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339))
            .ok()?
    };
    if !datetime.offset().is_utc() {
        return None;
    }
    i64::try_from(datetime.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// The UTC day of epoch milliseconds, `YYYY-MM-DD`.
pub fn day(epoch_ms: i64) -> String {
    iso8601_ms(epoch_ms)[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_formats_and_refuses_what_is_not_utc_iso8601() {
        for ms in [0, 1_795_343_645_123, 1_709_251_199_999, -1000] {
            assert_eq!(parse_iso8601(&iso8601_ms(ms)), Some(ms));
        }
        assert_eq!(parse_iso8601("2026-11-22T10:34:05Z"), Some(1_795_343_645_000));
        assert_eq!(parse_iso8601("2026-11-22T10:34:05.1+00:00"), Some(1_795_343_645_100));
        assert_eq!(parse_iso8601("2026-11-22"), Some(1_795_305_600_000));
        for bad in
            ["", "yesterday", "2026-13-01", "2026-11-22T25:00:00Z", "2026-11-22T10:34:05+02:00", "2026-11-22T10:34"]
        {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert_eq!(day(1_795_343_645_123), "2026-11-22");
    }

    #[test]
    fn refuses_dates_that_do_not_exist() {
        for bad in ["2026-02-31", "2026-02-29T00:00:00Z", "2026-04-31T10:00:00Z", "2026-00-10", "2026-11-22T10:34:60Z"]
        {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert_eq!(parse_iso8601("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_iso8601("2026-11-22 10:34:05.123456"), Some(1_795_343_645_123));
        assert_eq!(parse_iso8601("1969-12-31T23:59:59.9995Z"), Some(-1));
    }

    #[test]
    fn the_formatter_agrees_with_the_time_crates_calendar_over_four_centuries() {
        // One instant every ~36 days and some hours, from 1900 to 2300: every month, leap years and century rules.
        let (start, end, step) = (-2_208_988_800_000_i64, 10_413_792_000_000_i64, 3_123_456_789_usize);
        for ms in (start..end).step_by(step) {
            assert_eq!(parse_iso8601(&iso8601_ms(ms)), Some(ms), "{}", iso8601_ms(ms));
        }
    }

    #[test]
    fn formats_epoch_milliseconds_as_iso8601_utc() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(1_795_343_645_123), "2026-11-22T10:34:05.123Z");
        assert_eq!(iso8601_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso8601_ms(-1000), "1969-12-31T23:59:59.000Z");
    }
}
