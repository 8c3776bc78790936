//! Policy dates for the analyzer's findings: the CA/B Forum maximum leaf lifetime by issuance
//! date (SC-081v3: 398 / 200 / 100 / 47 days, and the earlier 825-day and 39-month limits) and
//! the Chrome Root Program root term limit (15 years, with its phase-in schedule).
//!
//! Source: `rules/data/policy_dates.json` (copy of shared/data/trust/policy_dates.json,
//! see `rules/data/SOURCE`), embedded and parsed once. The JSON is the authority; the code only
//! reads its `schedule` arrays, so a newer copy of the file updates the limits.

use crate::time::{parse_rfc3339, unix_from_date, SECS_PER_DAY};
use serde_json::Value;
use std::sync::OnceLock;

static POLICY_JSON: &str = include_str!("../data/policy_dates.json");

/// Returned by [`max_lifetime_days`] for issuance dates before any limit in the data
/// (before 2016-07-01): no limit known, so never "exceeds".
pub const NO_LIMIT_DAYS: u32 = u32::MAX;
/// Upper bound in days of a "39 months" limit: 39 months of at most 31 days. Generous on
/// purpose: a lifetime finding must not fire on a certificate that was within policy.
pub const DAYS_39_MONTHS: u32 = 39 * 31;

/// One row of a lifetime schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifetimeRule {
    /// Applies to certificates issued at or after this instant (None = open start).
    pub from: Option<i64>,
    /// ... and before this instant (None = open end).
    pub until: Option<i64>,
    /// Maximum validity in days.
    pub max_days: u32,
    /// The "SHOULD NOT exceed" value, where given.
    pub should_not_exceed_days: Option<u32>,
}

/// Chrome root term-limit phase-in row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermLimitRow {
    /// Key material created from (inclusive), Unix seconds; None = open.
    pub from: Option<i64>,
    /// Key material created until (inclusive, end of day), Unix seconds; None = open.
    pub to: Option<i64>,
    /// Approximate removal date, or None for "15 years from generation".
    pub removal: Option<i64>,
}

/// Parsed policy data.
#[derive(Debug, Clone)]
pub struct PolicyDates {
    /// Current and earlier BR schedules together, sorted by `from`.
    pub lifetime: Vec<LifetimeRule>,
    /// Chrome root term limit in years.
    pub root_term_years: u32,
    /// Chrome phase-in schedule.
    pub term_phase_in: Vec<TermLimitRow>,
}

fn date(v: Option<&Value>) -> Option<i64> {
    let s = v?.as_str()?;
    if s.len() == 10 {
        let y = s.get(0..4)?.parse().ok()?;
        let m = s.get(5..7)?.parse().ok()?;
        let d = s.get(8..10)?.parse().ok()?;
        Some(unix_from_date(y, m, d))
    } else {
        parse_rfc3339(s).ok()
    }
}

fn rows(arr: Option<&Value>) -> Vec<LifetimeRule> {
    let Some(arr) = arr.and_then(Value::as_array) else {
        return Vec::new();
    };
    arr.iter()
        .filter_map(|r| {
            let max_days = match (
                r.get("max_validity_days").and_then(Value::as_u64),
                r.get("max_validity"),
            ) {
                (Some(d), _) => u32::try_from(d).ok()?,
                (None, Some(Value::String(s))) if s.trim() == "39 months" => DAYS_39_MONTHS,
                _ => return None,
            };
            // "issued_after" in the older schedule is an inclusive start like issued_on_or_after.
            let from = date(r.get("issued_on_or_after")).or_else(|| date(r.get("issued_after")));
            Some(LifetimeRule {
                from,
                until: date(r.get("issued_before")),
                max_days,
                should_not_exceed_days: r
                    .get("should_not_exceed_days")
                    .and_then(Value::as_u64)
                    .and_then(|d| u32::try_from(d).ok()),
            })
        })
        .collect()
}

fn parse(json: &str) -> PolicyDates {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let br = v.get("cabf_br_subscriber_certificate_max_validity");
    let mut lifetime = rows(
        br.and_then(|b| b.get("earlier_limits"))
            .and_then(|e| e.get("schedule")),
    );
    let current = rows(br.and_then(|b| b.get("schedule")));
    // The current schedule's open-start first row ("issued_before 2026-03-15": 398) overlaps the
    // earlier schedule; start it where the earlier schedule's last row starts.
    let last_earlier_from = lifetime.iter().filter_map(|r| r.from).max();
    for mut r in current {
        if r.from.is_none() {
            if let Some(f) = last_earlier_from {
                if lifetime
                    .iter()
                    .any(|e| e.from == Some(f) && e.until == r.until)
                {
                    continue; // same row in both schedules
                }
                r.from = Some(f);
            }
        }
        lifetime.push(r);
    }
    lifetime.sort_by_key(|r| r.from.unwrap_or(i64::MIN));
    let crt = v.get("chrome_root_term_limit");
    let root_term_years = crt
        .and_then(|c| c.get("max_key_age_years"))
        .and_then(Value::as_u64)
        .and_then(|y| u32::try_from(y).ok())
        .unwrap_or(15);
    let term_phase_in = crt
        .and_then(|c| c.get("phase_in_schedule"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| TermLimitRow {
                    from: date(r.get("key_material_created_from"))
                        .or_else(|| date(r.get("key_material_created_after"))),
                    to: date(r.get("key_material_created_to")).map(|t| t + SECS_PER_DAY - 1),
                    removal: date(r.get("approximate_removal_date")),
                })
                .collect()
        })
        .unwrap_or_default();
    PolicyDates {
        lifetime,
        root_term_years,
        term_phase_in,
    }
}

/// The embedded policy data, parsed once.
pub fn policy_dates() -> &'static PolicyDates {
    static CELL: OnceLock<PolicyDates> = OnceLock::new();
    CELL.get_or_init(|| parse(POLICY_JSON))
}

/// The lifetime rule for a certificate issued (notBefore) at `issued_unix`, if any.
pub fn lifetime_rule(issued_unix: i64) -> Option<&'static LifetimeRule> {
    policy_dates().lifetime.iter().find(|r| {
        r.from.is_none_or(|f| issued_unix >= f) && r.until.is_none_or(|u| issued_unix < u)
    })
}

/// CA/B Forum maximum validity in days for a TLS leaf issued at `issued_unix`:
/// 398 until 2026-03-15, 200 until 2027-03-15, 100 until 2029-03-15, then 47; 825 for
/// 2018-03-01..2020-09-01; 39 months (as [`DAYS_39_MONTHS`]) for 2016-07-01..2018-03-01;
/// [`NO_LIMIT_DAYS`] before.
pub fn max_lifetime_days(issued_unix: i64) -> u32 {
    lifetime_rule(issued_unix).map_or(NO_LIMIT_DAYS, |r| r.max_days)
}

/// Validity period in BR days: notBefore through notAfter inclusive, any fraction of 86,400
/// seconds counting as a whole day (BR 6.3.2). Zero for an inverted range.
pub fn validity_days(not_before: i64, not_after: i64) -> u64 {
    let secs = i128::from(not_after) - i128::from(not_before) + 1;
    if secs <= 0 {
        return 0;
    }
    let days = (secs + i128::from(SECS_PER_DAY) - 1) / i128::from(SECS_PER_DAY);
    u64::try_from(days).unwrap_or(u64::MAX)
}

/// `Some((validity_days, max_days))` when a leaf's validity exceeds the limit for its issuance
/// date (the `cert.lifetime_exceeds_policy` finding).
pub fn lifetime_exceeds_policy(not_before: i64, not_after: i64) -> Option<(u64, u32)> {
    let max = max_lifetime_days(not_before);
    let days = validity_days(not_before, not_after);
    (max != NO_LIMIT_DAYS && days > u64::from(max)).then_some((days, max))
}

/// Chrome Root Program term limit, in years (15).
pub fn chrome_root_term_limit_years() -> u32 {
    policy_dates().root_term_years
}

/// Approximate Chrome removal date of a root whose key was created at `key_created_unix` (use
/// the notBefore of the earliest certificate with that key): the phase-in schedule for keys from
/// 2006 to 2014-04-14, 15 years after creation for later keys. Keys older than the schedule get
/// its first date (they are already due).
pub fn chrome_root_term_end(key_created_unix: i64) -> i64 {
    let pd = policy_dates();
    let years_later = || {
        let (y, m, d) = crate::time::civil_from_days(key_created_unix.div_euclid(SECS_PER_DAY));
        let d = if m == 2 && d == 29 { 28 } else { d };
        unix_from_date(y + i64::from(pd.root_term_years), m, d)
            + key_created_unix.rem_euclid(SECS_PER_DAY)
    };
    for row in &pd.term_phase_in {
        let after_from = row.from.is_none_or(|f| key_created_unix >= f);
        let before_to = row.to.is_none_or(|t| key_created_unix <= t);
        if after_from && before_to {
            return row.removal.unwrap_or_else(years_later);
        }
    }
    match pd
        .term_phase_in
        .iter()
        .filter_map(|r| r.from.map(|f| (f, r.removal)))
        .min()
    {
        Some((first_from, Some(first_removal))) if key_created_unix < first_from => first_removal,
        _ => years_later(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339 as t;

    fn at(s: &str) -> i64 {
        t(s).unwrap()
    }

    #[test]
    fn br_schedule() {
        assert_eq!(max_lifetime_days(at("2026-03-14T23:59:59Z")), 398);
        assert_eq!(max_lifetime_days(at("2026-03-15T00:00:00Z")), 200);
        assert_eq!(max_lifetime_days(at("2027-03-14T23:59:59Z")), 200);
        assert_eq!(max_lifetime_days(at("2027-03-15T00:00:00Z")), 100);
        assert_eq!(max_lifetime_days(at("2029-03-15T00:00:00Z")), 47);
        assert_eq!(max_lifetime_days(at("2040-01-01T00:00:00Z")), 47);
        assert_eq!(max_lifetime_days(at("2020-09-01T00:00:00Z")), 398);
        assert_eq!(max_lifetime_days(at("2020-08-31T00:00:00Z")), 825);
        assert_eq!(
            max_lifetime_days(at("2017-01-01T00:00:00Z")),
            DAYS_39_MONTHS
        );
        assert_eq!(max_lifetime_days(at("2015-01-01T00:00:00Z")), NO_LIMIT_DAYS);
        assert_eq!(policy_dates().lifetime.len(), 6);
    }

    #[test]
    fn br_day_counting() {
        let nb = at("2026-04-01T00:00:00Z");
        // 200 days minus one second, inclusive: exactly 200 days
        assert_eq!(validity_days(nb, nb + 200 * 86_400 - 1), 200);
        assert_eq!(validity_days(nb, nb + 200 * 86_400), 201);
        assert_eq!(lifetime_exceeds_policy(nb, nb + 200 * 86_400 - 1), None);
        assert_eq!(
            lifetime_exceeds_policy(nb, nb + 200 * 86_400),
            Some((201, 200))
        );
        assert_eq!(validity_days(nb, nb - 5), 0);
    }

    #[test]
    fn chrome_term_limit() {
        assert_eq!(chrome_root_term_limit_years(), 15);
        assert_eq!(
            chrome_root_term_end(at("2006-11-17T00:00:00Z")),
            at("2026-04-15T00:00:00Z")
        );
        assert_eq!(
            chrome_root_term_end(at("2009-12-31T12:00:00Z")),
            at("2027-04-15T00:00:00Z")
        );
        assert_eq!(
            chrome_root_term_end(at("2014-04-14T10:00:00Z")),
            at("2029-04-15T00:00:00Z")
        );
        assert_eq!(
            chrome_root_term_end(at("2016-06-09T01:02:03Z")),
            at("2031-06-09T01:02:03Z")
        );
        assert_eq!(
            chrome_root_term_end(at("1998-01-01T00:00:00Z")),
            at("2026-04-15T00:00:00Z")
        );
    }
}
