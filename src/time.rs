//! RFC 3339 UTC formatting of capture timestamps (never the wall clock), on top of `rules::time`.

/// Nanoseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, like Zeek and
/// Suricata logs).
pub fn rfc3339_ns(ts_ns: u64) -> String {
    let secs = i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
    let nanos = u32::try_from(ts_ns % 1_000_000_000).unwrap_or(0);
    rules::time::format_rfc3339_micros(secs, nanos)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_s(secs: i64) -> String {
    rules::time::format_rfc3339(secs)
}

/// Capture time in whole Unix seconds.
pub fn secs_of(ts_ns: u64) -> i64 {
    i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX)
}
