//! UTC RFC 3339 timestamps <-> Unix seconds (and nanoseconds).
//!
//! Why not chrono/time: trustmap only needs UTC instants — rule dates, certificate validity and
//! packet timestamps — and one formatting style. A proleptic-Gregorian day counter (Howard
//! Hinnant's `days_from_civil`) does that exactly, for every `i64` second, with no panics.
//!
//! Parsing accepts the RFC 3339 `date-time` production: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`,
//! `t`/`z` in lower case and a space instead of `T` (RFC 3339 §5.6 note). A leap second (`:60`)
//! is accepted and folds onto the next second, as Unix time does. Offsets are applied, so the
//! result is always UTC. Up to 9 fraction digits are kept; more are rejected.

use std::fmt;

/// Seconds in a day; BR "day" definition too (policy dates).
pub const SECS_PER_DAY: i64 = 86_400;
/// Longest input we look at (a full timestamp with 9 fraction digits and an offset is 35 bytes).
const MAX_LEN: usize = 64;

/// Why a timestamp was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeError {
    /// Input longer than any valid RFC 3339 timestamp.
    TooLong,
    /// The text does not follow the `date-time` grammar; the message says where.
    Syntax(&'static str),
    /// A field is out of range (month 13, day 31 in April, hour 24, ...).
    Range(&'static str),
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeError::TooLong => write!(f, "timestamp too long"),
            TimeError::Syntax(m) => write!(f, "not an RFC 3339 timestamp: {m}"),
            TimeError::Range(m) => write!(f, "RFC 3339 timestamp out of range: {m}"),
        }
    }
}

impl std::error::Error for TimeError {}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12, day 1..=31).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Unix seconds of a UTC calendar date at midnight.
/// Saturates instead of overflowing for absurd years (callers may feed hostile certificate
/// dates through date arithmetic).
pub fn unix_from_date(y: i64, m: u32, d: u32) -> i64 {
    let y = y.clamp(-(1 << 40), 1 << 40);
    days_from_civil(y, m, d).saturating_mul(SECS_PER_DAY)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize, what: &'static str) -> Result<u32, TimeError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            let c = *self.b.get(self.i).ok_or(TimeError::Syntax(what))?;
            if !c.is_ascii_digit() {
                return Err(TimeError::Syntax(what));
            }
            v = v * 10 + u32::from(c - b'0');
            self.i += 1;
        }
        Ok(v)
    }
    fn expect(&mut self, set: &[u8], what: &'static str) -> Result<u8, TimeError> {
        match self.b.get(self.i) {
            Some(c) if set.contains(c) => {
                self.i += 1;
                Ok(*c)
            }
            _ => Err(TimeError::Syntax(what)),
        }
    }
}

/// Parse an RFC 3339 timestamp into (Unix seconds, nanoseconds 0..1e9).
pub fn parse_rfc3339_nanos(s: &str) -> Result<(i64, u32), TimeError> {
    if s.len() > MAX_LEN {
        return Err(TimeError::TooLong);
    }
    let mut c = Cursor {
        b: s.trim().as_bytes(),
        i: 0,
    };
    let year = c.digits(4, "year (YYYY)")?;
    c.expect(b"-", "'-' after year")?;
    let month = c.digits(2, "month (MM)")?;
    c.expect(b"-", "'-' after month")?;
    let day = c.digits(2, "day (DD)")?;
    c.expect(b"Tt ", "'T' between date and time")?;
    let hour = c.digits(2, "hour (hh)")?;
    c.expect(b":", "':' after hour")?;
    let min = c.digits(2, "minute (mm)")?;
    c.expect(b":", "':' after minute")?;
    let sec = c.digits(2, "second (ss)")?;
    let mut nanos: u32 = 0;
    if c.b.get(c.i) == Some(&b'.') {
        c.i += 1;
        let start = c.i;
        while c.b.get(c.i).is_some_and(|b| b.is_ascii_digit()) {
            c.i += 1;
        }
        let n = c.i - start;
        if n == 0 {
            return Err(TimeError::Syntax("digits after '.'"));
        }
        if n > 9 {
            return Err(TimeError::Range("more than 9 fraction digits"));
        }
        for k in 0..9 {
            let d = if k < n {
                c.b.get(start + k).map_or(0, |b| b - b'0')
            } else {
                0
            };
            nanos = nanos * 10 + u32::from(d);
        }
    }
    let offset: i64 = match c.expect(b"Zz+-", "'Z' or a ±hh:mm offset")? {
        b'+' | b'-' => {
            let neg = c.b.get(c.i - 1) == Some(&b'-');
            let oh = c.digits(2, "offset hour")?;
            c.expect(b":", "':' in offset")?;
            let om = c.digits(2, "offset minute")?;
            if oh > 23 || om > 59 {
                return Err(TimeError::Range("offset"));
            }
            let o = i64::from(oh * 3600 + om * 60);
            if neg {
                -o
            } else {
                o
            }
        }
        _ => 0,
    };
    if c.i != c.b.len() {
        return Err(TimeError::Syntax("trailing characters"));
    }
    if !(1..=12).contains(&month) {
        return Err(TimeError::Range("month"));
    }
    if day == 0 || day > days_in_month(i64::from(year), month) {
        return Err(TimeError::Range("day"));
    }
    if hour > 23 {
        return Err(TimeError::Range("hour"));
    }
    if min > 59 {
        return Err(TimeError::Range("minute"));
    }
    if sec > 60 {
        return Err(TimeError::Range("second"));
    }
    let secs = unix_from_date(i64::from(year), month, day)
        + i64::from(hour * 3600 + min * 60 + sec)
        - offset;
    Ok((secs, nanos))
}

/// Parse an RFC 3339 timestamp into Unix seconds (the fraction is dropped, i.e. floored).
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    parse_rfc3339_nanos(s).map(|(s, _)| s)
}

/// Two decimal digits of `v` (0..=99).
fn push2(out: &mut String, v: u32) {
    out.push(char::from(b'0' + (v / 10 % 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// `YYYY-MM-DDTHH:MM:SS`, digits pushed directly (`write!` was a tenth of the event stage).
fn write_base(out: &mut String, secs: i64) {
    use fmt::Write;
    let days = secs.div_euclid(SECS_PER_DAY);
    let rem = u32::try_from(secs.rem_euclid(SECS_PER_DAY)).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    match u32::try_from(y) {
        Ok(y) if y <= 9999 => {
            push2(out, y / 100);
            push2(out, y % 100);
        }
        _ => {
            let _ = write!(out, "{y:04}");
        }
    }
    out.push('-');
    push2(out, m);
    out.push('-');
    push2(out, d);
    out.push('T');
    push2(out, rem / 3600);
    out.push(':');
    push2(out, (rem % 3600) / 60);
    out.push(':');
    push2(out, rem % 60);
}

/// `2024-01-02T03:04:05Z`.
pub fn format_rfc3339(secs: i64) -> String {
    let mut s = String::with_capacity(20);
    write_base(&mut s, secs);
    s.push('Z');
    s
}

/// `2024-01-02T03:04:05.123456Z` with `digits` (1..=9, clamped) fraction digits, truncated.
pub fn format_rfc3339_frac(secs: i64, nanos: u32, digits: u32) -> String {
    let digits = digits.clamp(1, 9);
    // Fold an out-of-range nanosecond count into the seconds instead of printing garbage.
    let secs = secs.saturating_add(i64::from(nanos / 1_000_000_000));
    let nanos = nanos % 1_000_000_000;
    let mut s = String::with_capacity(30);
    write_base(&mut s, secs);
    let scaled = nanos / 10u32.pow(9 - digits);
    s.push('.');
    for i in (0..digits).rev() {
        s.push(char::from(b'0' + (scaled / 10u32.pow(i) % 10) as u8));
    }
    s.push('Z');
    s
}

/// Microsecond precision (`.123456Z`): the precision of classic pcap timestamps and the style of
/// trustmap's event `@timestamp`.
pub fn format_rfc3339_micros(secs: i64, nanos: u32) -> String {
    format_rfc3339_frac(secs, nanos, 6)
}

/// Nanosecond precision (`.123456789Z`), for pcapng captures with nanosecond resolution.
pub fn format_rfc3339_nanos(secs: i64, nanos: u32) -> String {
    format_rfc3339_frac(secs, nanos, 9)
}

/// Capture time (nanoseconds since the Unix epoch) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
/// (microseconds, like Zeek and Suricata logs). Event times are capture times, never the wall clock.
pub fn rfc3339_ns(ts_ns: u64) -> String {
    format_rfc3339_micros(
        secs_of(ts_ns),
        u32::try_from(ts_ns % 1_000_000_000).unwrap_or(0),
    )
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (the same as [`format_rfc3339`]).
pub fn rfc3339_s(secs: i64) -> String {
    format_rfc3339(secs)
}

/// Capture time in whole Unix seconds.
pub fn secs_of(ts_ns: u64) -> i64 {
    i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `write!` formatting the digit pushing replaced.
    fn reference(secs: i64, nanos: u32, digits: u32) -> String {
        let digits = digits.clamp(1, 9);
        let secs = secs.saturating_add(i64::from(nanos / 1_000_000_000));
        let nanos = nanos % 1_000_000_000;
        let days = secs.div_euclid(SECS_PER_DAY);
        let rem = secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:0width$}Z",
            y,
            m,
            d,
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60,
            nanos / 10u32.pow(9 - digits),
            width = digits as usize
        )
    }

    #[test]
    fn formatting_matches_write() {
        let mut secs: i64 = -70_000_000_000;
        let mut nanos: u32 = 7;
        while secs < 400_000_000_000 {
            for digits in [0, 1, 3, 6, 9, 12] {
                assert_eq!(
                    format_rfc3339_frac(secs, nanos, digits),
                    reference(secs, nanos, digits)
                );
            }
            let r = reference(secs, 0, 1);
            assert_eq!(format_rfc3339(secs), format!("{}Z", &r[..r.len() - 3]));
            secs += 987_654_321;
            nanos = nanos.wrapping_mul(2_654_435_761).wrapping_add(secs as u32) % 2_100_000_000;
        }
        for secs in [i64::MIN, i64::MAX, -1, 0, 253_402_300_799, 253_402_300_800] {
            assert_eq!(
                format_rfc3339_frac(secs, 999_999_999, 6),
                reference(secs, 999_999_999, 6)
            );
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2024-11-11T23:59:59Z"), Ok(1_731_369_599));
        assert_eq!(parse_rfc3339("2025-07-31T23:59:59Z"), Ok(1_754_006_399));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Ok(951_782_400));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Ok(-1));
        assert_eq!(format_rfc3339(1_731_369_599), "2024-11-11T23:59:59Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn offsets_and_variants() {
        assert_eq!(
            parse_rfc3339("2017-10-17T19:09:49+02:00"),
            parse_rfc3339("2017-10-17T17:09:49Z")
        );
        assert_eq!(
            parse_rfc3339("2017-10-17T12:09:49-05:00"),
            parse_rfc3339("2017-10-17T17:09:49Z")
        );
        assert_eq!(
            parse_rfc3339("2017-10-17 17:09:49z"),
            parse_rfc3339("2017-10-17T17:09:49Z")
        );
        // leap second folds onto the next second
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339_nanos("2024-01-02T03:04:05.5Z"),
            Ok((1_704_164_645, 500_000_000))
        );
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "2024-01-02",
            "2024-01-02T03:04:05",
            "2024-13-02T03:04:05Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T03:60:00Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05.1234567890Z",
            "2024-01-02T03:04:05Zjunk",
            "2024-01-02T03:04:05+2:00",
            "２０２４-01-02T03:04:05Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_rfc3339(&"9".repeat(100)), Err(TimeError::TooLong));
    }

    #[test]
    fn round_trips() {
        // every day boundary across leap years and a spread of seconds, both directions
        let mut t: i64 = -2_208_988_800; // 1900-01-01
        while t < 4_102_444_800 {
            // 2100-01-01
            let s = format_rfc3339(t);
            assert_eq!(parse_rfc3339(&s), Ok(t), "{s}");
            t += 86_400 * 7 + 3_607;
        }
        let s = format_rfc3339_micros(1_704_164_645, 123_456_789);
        assert_eq!(s, "2024-01-02T03:04:05.123456Z");
        assert_eq!(parse_rfc3339_nanos(&s), Ok((1_704_164_645, 123_456_000)));
        let s = format_rfc3339_nanos(1_704_164_645, 123_456_789);
        assert_eq!(s, "2024-01-02T03:04:05.123456789Z");
        assert_eq!(parse_rfc3339_nanos(&s), Ok((1_704_164_645, 123_456_789)));
        assert_eq!(
            format_rfc3339_micros(0, 7_000),
            "1970-01-01T00:00:00.000007Z"
        );
        for (y, m, d) in [
            (1600, 2, 29),
            (1970, 1, 1),
            (2024, 2, 29),
            (2100, 3, 1),
            (9999, 12, 31),
        ] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let _ = format_rfc3339(i64::MAX / 2);
        let _ = format_rfc3339(i64::MIN / 2);
        let _ = format_rfc3339_nanos(0, u32::MAX);
    }
}
