//! RFC 3339 UTC timestamps with millisecond precision (`2026-11-25T05:13:00.123Z`), without
//! a clock or a calendar library.

use core::fmt::Write;

/// A formatted timestamp: always 24 bytes.
pub type Rfc3339 = heapless::String<24>;

/// The latest instant that formats with a four-digit year: 9999-12-31T23:59:59.999Z.
pub const MAX_UNIX_MS: u64 = 253_402_300_799_999;

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC; `None` past [`MAX_UNIX_MS`].
pub fn format_rfc3339(unix_ms: u64) -> Option<Rfc3339> {
    if unix_ms > MAX_UNIX_MS {
        return None;
    }
    let days = unix_ms / 86_400_000;
    let ms_of_day = unix_ms % 86_400_000;
    let (y, m, d) = civil_from_days(days);
    let mut out = Rfc3339::new();
    write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
    .ok()?;
    Some(out)
}

/// Parses what [`format_rfc3339`] writes (exactly that form) back to milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24 || !s.is_ascii() {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> { s.get(from..to)?.parse::<u64>().ok() };
    let punctuation = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if punctuation.iter().any(|&(i, c)| b.get(i) != Some(&c))
        || b.iter()
            .enumerate()
            .any(|(i, c)| !punctuation.iter().any(|&(p, _)| p == i) && !c.is_ascii_digit())
    {
        return None;
    }
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || d < 1
        || d > days_in_month(y, m)
        || hh > 23
        || mm > 59
        || ss > 59
    {
        return None;
    }
    let days = days_from_civil(y, m, d);
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms, restricted to dates from 1970 on.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_rfc3339(0).unwrap(), "1970-01-01T00:00:00.000Z");
        // The 2022 incident: 15:19 KST on 15 October 2022 is 06:19 UTC.
        assert_eq!(
            format_rfc3339(1_665_814_740_000).unwrap(),
            "2022-10-15T06:19:00.000Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400_123).unwrap(),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            format_rfc3339(MAX_UNIX_MS).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(format_rfc3339(MAX_UNIX_MS + 1), None);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2022-10-15T06:19:00Z",
            "2022-10-15 06:19:00.000Z",
            "2022-02-29T00:00:00.000Z",
            "2022-13-01T00:00:00.000Z",
            "2022-10-15T24:00:00.000Z",
            "+022-10-15T06:19:00.000Z",
            "２０２２-10-15T06:19:00.000Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(ms in 0..=MAX_UNIX_MS) {
            let s = format_rfc3339(ms).unwrap();
            prop_assert_eq!(parse_rfc3339(&s), Some(ms));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
