//! Durations and moments as people write them on the command line: `15m`, `90s`, `1h30m`,
//! `7d`; times as RFC 3339; and durations printed as a person says them (`1m 12s`, `350 ms`,
//! `8 days`). A leaf module: every other module may use it.

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

/// A duration as a person says it, at the precision that matters at its size: `350 ms`,
/// `4.6 s`, `42 s`, `1m 12s`, `2h 05m`, `8 days`, `1 day 4h`. The one human form of a
/// duration in pgdrill's text (JSON has integer milliseconds).
pub fn human(d: Duration) -> String {
    human_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`human`] of a number of milliseconds.
pub fn human_ms(ms: u64) -> String {
    const SEC: u64 = 1000;
    const MIN: u64 = 60 * SEC;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    match ms {
        0..SEC => format!("{ms} ms"),
        // Tenths below ten seconds: a restore in 4.6 s is not one in 4 s.
        SEC..10_000 => format!("{}.{} s", ms / SEC, ms % SEC / 100),
        10_000..MIN => format!("{} s", ms / SEC),
        MIN..HOUR => match ms % MIN / SEC {
            0 => format!("{}m", ms / MIN),
            s => format!("{}m {s:02}s", ms / MIN),
        },
        HOUR..DAY => match ms % HOUR / MIN {
            0 => format!("{}h", ms / HOUR),
            m => format!("{}h {m:02}m", ms / HOUR),
        },
        _ => {
            let days = ms / DAY;
            let unit = if days == 1 { "day" } else { "days" };
            match ms % DAY / HOUR {
                0 => format!("{days} {unit}"),
                h => format!("{days} {unit} {h}h"),
            }
        }
    }
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

    #[rstest]
    #[case(0, "0 ms")]
    #[case(350, "350 ms")]
    #[case(999, "999 ms")]
    #[case(1_000, "1.0 s")]
    #[case(4_567, "4.5 s")]
    #[case(42_900, "42 s")]
    #[case(60_000, "1m")]
    #[case(72_000, "1m 12s")]
    #[case(3_599_999, "59m 59s")]
    #[case(7_500_000, "2h 05m")]
    #[case(86_400_000, "1 day")]
    #[case(8 * 86_400_000, "8 days")]
    #[case(28 * 3_600_000, "1 day 4h")]
    fn durations_as_people_say_them(#[case] ms: u64, #[case] said: &str) {
        assert_eq!(human_ms(ms), said);
    }

    #[test]
    fn the_longest_duration_is_said_in_days_not_a_panic() {
        assert!(
            human(Duration::MAX).contains(" days"),
            "{}",
            human(Duration::MAX)
        );
        assert_eq!(human(parse_duration("8d").unwrap()), "8 days");
    }

    #[test]
    fn times() {
        let t = parse_time("2026-12-01T03:00:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T02:00:00+00:00");
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
