//! Wall-clock helpers: epoch milliseconds and their ISO-8601 form, the one format hookwire prints times in.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Days since the epoch of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses ISO-8601 UTC (`2026-11-22T10:34:05Z`, with optional fraction, `+00:00` for `Z`, or a date alone,
/// `2026-11-22`, meaning its midnight) into epoch milliseconds. Other offsets are refused: times are UTC.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text.trim();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes().all(|byte| byte.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if text.get(4..5)? != "-" || text.get(7..8)? != "-" || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if text.len() == 10 {
        return Some(ms);
    }
    if !matches!(text.get(10..11)?, "T" | "t" | " ") || text.get(13..14)? != ":" || text.get(16..17)? != ":" {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    ms += (hour * 3600 + minute * 60 + second) * 1000;
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let millis: String = fraction[..digits].chars().chain("000".chars()).take(3).collect();
        ms += millis.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    matches!(rest, "Z" | "z" | "+00:00" | "").then_some(ms)
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
    fn formats_epoch_milliseconds_as_iso8601_utc() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(1_795_343_645_123), "2026-11-22T10:34:05.123Z");
        assert_eq!(iso8601_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso8601_ms(-1000), "1969-12-31T23:59:59.000Z");
    }
}
