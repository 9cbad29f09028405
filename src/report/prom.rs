//! `pgdrill drill --prom FILE` and `pgdrill restore --prom FILE`: the Prometheus textfile for
//! node_exporter's textfile collector, beside `verify --prom`'s, read by
//! deploy/prometheus/pgdrill.rules.yml.

use chrono::{DateTime, Utc};

use super::history::Entry;
use super::{Report, Verdict};
use crate::repo::verify::labels;

/// The textfile of a drill's `report`, with `history` (history.ndjson after this drill's line
/// was appended) for the last successful drill and the backup's age. Every series is
/// labelled with the drilled database.
pub fn drill_textfile(report: &Report, history: &[Entry], now: DateTime<Utc>) -> String {
    textfile("pgdrill_drill", report, history, now)
}

/// The same series for a real restore, named `pgdrill_restore_*` (a restore keeps no history:
/// its last success is its own, or 0).
pub fn restore_textfile(report: &Report, now: DateTime<Utc>) -> String {
    textfile("pgdrill_restore", report, &[], now)
}

fn textfile(prefix: &str, report: &Report, history: &[Entry], now: DateTime<Utc>) -> String {
    let db = report.source.database.as_str();
    let l = labels(&[("database", db)]);
    let mut s = String::new();
    let mut one = |name: &str, help: &str, value: String| {
        let name = format!("{prefix}_{name}");
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{l} {value}\n"
        ));
    };
    one(
        "last_run_timestamp_seconds",
        "When the last drill finished (Unix time).",
        now.timestamp().to_string(),
    );
    let last_success = history
        .iter()
        .filter(|e| e.counts() && e.verdict == Verdict::Pass)
        .filter_map(|e| e.time.parse::<DateTime<Utc>>().ok())
        .chain((report.verdict == Verdict::Pass).then_some(now))
        .max();
    // 0 when no drill ever passed: "no successful drill in 8 days" must fire then too.
    one(
        "last_success_timestamp_seconds",
        "When the last drill that passed finished (Unix time; 0: none ever did).",
        last_success.map_or(0, |t| t.timestamp()).to_string(),
    );
    one(
        "success",
        "1 when the last drill passed.",
        u8::from(report.verdict == Verdict::Pass).to_string(),
    );
    if let Some(rpo) = &report.rpo {
        one(
            "rpo_achieved_seconds",
            "The data-loss window the last drill measured.",
            seconds(rpo.achieved_ms),
        );
    }
    // The history line's age, else the same computed from the report (a restore has none).
    if let Some(age) = history
        .iter()
        .rev()
        .find(|e| e.drill_id == report.drill_id)
        .and_then(|e| e.backup_age_ms)
        .or_else(|| report.backup_age_ms())
    {
        one(
            "backup_age_seconds",
            "Age of the backup the last drill restored, when it finished.",
            seconds(age),
        );
    }
    for (name, help, pick) in [
        (
            "budget_used_seconds",
            "Time the last drill's phases used of each RTO budget.",
            (|b: &super::BudgetResult| b.used_ms) as fn(&super::BudgetResult) -> u64,
        ),
        (
            "budget_limit_seconds",
            "Each RTO budget's allowance.",
            |b: &super::BudgetResult| b.limit_ms,
        ),
    ] {
        let name = format!("{prefix}_{name}");
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for b in &report.budgets {
            let budget = serde_json::to_value(b.name)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let l = labels(&[("database", db), ("budget", &budget)]);
            s.push_str(&format!("{name}{l} {}\n", seconds(pick(b))));
        }
    }
    s
}

/// Milliseconds as seconds with three decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}
