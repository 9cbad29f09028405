//! Durations and moments as people write them on the command line: `15m`, `90s`, `1h30m`,
//! `7d`; times as RFC 3339. A leaf module: every other module may use it.

use std::time::Duration;

/// Parses a positive duration such as `15m`, `90s`, `1h30m` or `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_wait(s)?;
    if d.is_zero() {
        return Err(format!("duration `{s}` must be greater than zero"));
    }
    Ok(d)
}

/// Parses a duration that may be zero (a wait: `0s` means do not wait), such as `15m`.
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration `{s}` ({e}); use forms like 15m, 90s, 1h30m"))
}

/// The moment `d` before `at`, or the earliest moment there is when `d` reaches further back
/// (`--since 1000000y`, `--keep-days 4294967295`): chrono's own subtraction panics there.
pub fn before(at: chrono::DateTime<chrono::Utc>, d: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// Parses an RFC 3339 moment such as `2026-12-01T03:00:00Z` into UTC.
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!("invalid time `{s}` ({e}); use RFC 3339, for example 2026-12-01T03:00:00Z")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("15m", 900)]
    #[case("90s", 90)]
    #[case("1h30m", 5400)]
    #[case("7d", 604800)]
    fn durations(#[case] s: &str, #[case] secs: u64) {
        assert_eq!(parse_duration(s).unwrap(), Duration::from_secs(secs));
    }

    #[rstest]
    #[case("15 minutes please")]
    #[case("0s")]
    #[case("")]
    fn bad_durations(#[case] s: &str) {
        assert!(parse_duration(s).is_err());
    }

    #[test]
    fn a_moment_too_far_back_is_the_earliest_not_a_panic() {
        let now = chrono::Utc::now();
        let earliest = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        assert_eq!(before(now, Duration::from_secs(u64::MAX)), earliest);
        assert_eq!(before(now, parse_duration("1000000y").unwrap()), earliest);
        assert_eq!(
            before(now, Duration::from_secs(60)),
            now - chrono::TimeDelta::seconds(60)
        );
    }

    #[test]
    fn times() {
        let t = parse_time("2026-12-01T03:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T02:00:00+00:00");
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
