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

/// Milliseconds as a person says them, one style everywhere: `350 ms`, `4.5 s`, `1m 12s`,
/// `15m`, `2h 5m`, `8 days`, `1 day 3h`. Tenths are cut, never rounded up, so a time just
/// under a limit never prints as the limit.
pub fn human_ms(ms: u64) -> String {
    const S: u64 = 1_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;
    const D: u64 = 24 * H;
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        _ => format!("{big}{big_unit} {small}{small_unit}"),
    };
    match ms {
        0..S => format!("{ms} ms"),
        S..M => format!("{}.{} s", ms / S, (ms % S) / 100),
        M..H => pair(ms / M, "m", (ms % M) / S, "s"),
        H..D => pair(ms / H, "h", (ms % H) / M, "m"),
        _ => {
            let days = ms / D;
            let unit = if days == 1 { " day" } else { " days" };
            pair(days, unit, (ms % D) / H, "h")
        }
    }
}

/// A duration as a person says it ([`human_ms`]).
pub fn human(d: Duration) -> String {
    human_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    #[case(0, "0 ms")]
    #[case(350, "350 ms")]
    #[case(4_567, "4.5 s")]
    #[case(59_999, "59.9 s")]
    #[case(72_000, "1m 12s")]
    #[case(900_000, "15m")]
    #[case(7_500_000, "2h 5m")]
    #[case(86_400_000, "1 day")]
    #[case(8 * 86_400_000, "8 days")]
    #[case(97_200_000, "1 day 3h")]
    fn human(#[case] ms: u64, #[case] text: &str) {
        assert_eq!(human_ms(ms), text);
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
