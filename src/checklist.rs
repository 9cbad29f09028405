//! The strategy's 10-item verification checklist: every item decided here, from typed
//! evidence the drill gathered (never assumed). Items 1–5 come from the restored database
//! ([`database_items`]), 6–10 from watching the restarted application ([`observe`],
//! [`app_items`]) or why it was not watched ([`not_observed`]). The drill's `checklist` phase
//! (`drill/checklist.rs`) only hands this module its evidence and judges the result, so the
//! rules can be read and tested without a drill, and this module never depends on the
//! executor.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::app::{is_error_line, AppProcess, CheckStatus as HealthStatus, HealthReport};
use crate::report::{ChecklistItem, Status};
use crate::snapshot::{Comparison, Snapshot};

/// The item names live in the report's vocabulary (report.json has their titles).
pub use crate::report::vocab::CheckItem;

/// The tables behind the three data-integrity items.
pub const CRITICAL_TABLES: [(CheckItem, &str); 3] = [
    (CheckItem::UserData, "public.users"),
    (CheckItem::SubscriptionData, "public.subscriptions"),
    (CheckItem::PaymentData, "public.payments"),
];

/// Builds a checklist item.
pub fn item(which: CheckItem, status: Status, evidence: impl Into<String>) -> ChecklistItem {
    ChecklistItem {
        item: which,
        status,
        evidence: evidence.into(),
    }
}

/// Every item with the same status and reason: what the report lists when the drill stopped
/// before verification.
pub fn all(status: Status, why: &str) -> Vec<ChecklistItem> {
    CheckItem::ALL
        .iter()
        .map(|i| item(*i, status, why))
        .collect()
}

/// Items 6–10 when the application was not watched: `status` is fail when the plan has an
/// application (it should have run), skipped when it has none.
pub fn not_observed(status: Status, why: &str) -> Vec<ChecklistItem> {
    CheckItem::APP
        .iter()
        .map(|i| item(*i, status, why))
        .collect()
}

/// The failing items, each `title: evidence`, for the `checklist` phase's message.
pub fn failures(items: &[ChecklistItem]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.status == Status::Fail)
        .map(|i| format!("{}: {}", i.item, i.evidence))
        .collect()
}

/// Whether the checklist as a whole passes: no item failed. Skipped items carry their reason.
pub fn passes(items: &[ChecklistItem]) -> bool {
    items.iter().all(|i| i.status != Status::Fail)
}

/// Items 1–5 from the restored database: how the drill connected (`None`: it could not),
/// snapshot S1, and S1 against S0 (`None`: no comparison was made).
pub fn database_items(
    connected: Option<&str>,
    snapshot: Option<&Snapshot>,
    integrity: Option<&Comparison>,
) -> Vec<ChecklistItem> {
    let mut out = Vec::new();
    out.push(match connected {
        Some(ev) => item(CheckItem::DatabaseConnection, Status::Pass, ev),
        None => item(
            CheckItem::DatabaseConnection,
            Status::Fail,
            "could not connect to the restored database",
        ),
    });
    out.push(critical_tables_have_data(snapshot));
    out.extend(data_integrity(integrity));
    out
}

/// The tables whose rows the checklist counts: the strategy's three when present, else every
/// table that had rows.
fn critical(s: &Snapshot) -> Vec<String> {
    if CRITICAL_TABLES
        .iter()
        .any(|(_, t)| s.tables.iter().any(|x| x.name == *t))
    {
        CRITICAL_TABLES.iter().map(|(_, t)| t.to_string()).collect()
    } else {
        s.tables
            .iter()
            .filter(|t| t.rows > 0)
            .map(|t| t.name.clone())
            .collect()
    }
}

fn critical_tables_have_data(after: Option<&Snapshot>) -> ChecklistItem {
    let which = CheckItem::CriticalTablesHaveData;
    let Some(s) = after else {
        return item(which, Status::Fail, "no snapshot of the restored database");
    };
    let counts: Vec<(String, u64)> = critical(s)
        .into_iter()
        .map(|n| {
            let rows = s
                .tables
                .iter()
                .find(|t| t.name == n)
                .map(|t| t.rows)
                .unwrap_or(0);
            (n, rows)
        })
        .collect();
    let ev = counts
        .iter()
        .map(|(n, c)| format!("SELECT count(*) FROM {n} = {c}"))
        .collect::<Vec<_>>()
        .join("; ");
    if counts.is_empty() {
        item(
            which,
            Status::Fail,
            "the restored database has no table with rows",
        )
    } else if counts.iter().all(|(_, c)| *c > 0) {
        item(which, Status::Pass, ev)
    } else {
        item(which, Status::Fail, ev)
    }
}

/// Items 3–5: each critical table's rows and fingerprint against S0, and its checks.
fn data_integrity(integrity: Option<&Comparison>) -> Vec<ChecklistItem> {
    let mut out = Vec::new();
    for (which, table) in CRITICAL_TABLES {
        let Some(c) = integrity else {
            out.push(item(
                which,
                Status::Fail,
                "no integrity comparison was made",
            ));
            continue;
        };
        let Some(t) = c.tables.iter().find(|t| t.name == table) else {
            out.push(item(
                which,
                Status::Skipped,
                format!("no table {table} in this database"),
            ));
            continue;
        };
        let short = table.trim_start_matches("public.");
        let fk_bad: Vec<_> = c
            .checks
            .iter()
            .filter(|k| k.name.contains(short) && !k.pass)
            .map(|k| k.name.clone())
            .collect();
        let count = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        let short_fp =
            |f: Option<&str>| f.map(|f| &f[..f.len().min(12)]).unwrap_or("-").to_string();
        let ev = format!(
            "{table}: rows {} → {}, fingerprint {} → {}; {} related checks",
            count(t.rows_before),
            count(t.rows_after),
            short_fp(t.fingerprint_before.as_deref()),
            short_fp(t.fingerprint_after.as_deref()),
            c.checks.iter().filter(|k| k.name.contains(short)).count()
        );
        if t.matches != Some(false) && fk_bad.is_empty() {
            let ev = if t.matches.is_none() {
                format!("{ev} (no S0 to compare with: consistency checks only)")
            } else {
                ev
            };
            out.push(item(which, Status::Pass, ev));
        } else {
            let failing = if fk_bad.is_empty() {
                "content differs".to_string()
            } else {
                fk_bad.join(", ")
            };
            out.push(item(
                which,
                Status::Fail,
                format!("{ev}; failing: {failing}"),
            ));
        }
    }
    out
}

/// What the checklist saw of the restarted application over its observation window.
#[derive(Debug)]
pub struct AppObservation {
    /// Health at the start of the window.
    pub health_before: Result<HealthReport, String>,
    /// Health at the end.
    pub health_after: Result<HealthReport, String>,
    /// Metrics at the start (Err when the app has no metrics URL or it failed).
    pub metrics_before: Result<BTreeMap<String, f64>, String>,
    /// Metrics at the end.
    pub metrics_after: Result<BTreeMap<String, f64>, String>,
    /// Worker heartbeats read from the database at the start (sample app), µs since epoch.
    pub beats_before: Option<BTreeMap<String, i64>>,
    /// The same at the end.
    pub beats_after: Option<BTreeMap<String, i64>>,
    /// ERROR lines the app logged since its restart.
    pub error_lines: Result<Vec<String>, String>,
    /// Length of the window.
    pub window: Duration,
}

async fn heartbeats(db: &tokio_postgres::Client) -> Option<BTreeMap<String, i64>> {
    let rows = db
        .query(
            "SELECT worker, (extract(epoch FROM beat_at) * 1000000)::bigint FROM worker_heartbeats",
            &[],
        )
        .await
        .ok()?;
    Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Watches the app for `window`: probes at both ends, then reads its log since `log_offset`.
pub async fn observe(
    app: &AppProcess,
    db: Option<&tokio_postgres::Client>,
    window: Duration,
    log_offset: u64,
) -> AppObservation {
    let health_before = app.health().await.map_err(|e| e.to_string());
    let metrics_before = app.metrics().await.map_err(|e| e.to_string());
    let beats_before = match db {
        Some(c) => heartbeats(c).await,
        None => None,
    };
    tokio::time::sleep(window).await;
    let health_after = app.health().await.map_err(|e| e.to_string());
    let metrics_after = app.metrics().await.map_err(|e| e.to_string());
    let beats_after = match db {
        Some(c) => heartbeats(c).await,
        None => None,
    };
    let error_lines = app
        .log_lines_since(log_offset)
        .map(|(lines, _)| lines.into_iter().filter(|l| is_error_line(l)).collect())
        .map_err(|e| e.to_string());
    AppObservation {
        health_before,
        health_after,
        metrics_before,
        metrics_after,
        beats_before,
        beats_after,
        error_lines,
        window,
    }
}

/// Items 6–10 of the checklist, from an observation.
pub fn app_items(o: &AppObservation, max_heartbeat_age: Duration) -> Vec<ChecklistItem> {
    use Status::*;
    let mut out = Vec::new();
    let w = humantime::format_duration(o.window);

    // 6. Application health checks pass: healthy at both ends, and no check failed at the
    // end. A warning (IETF warn, ASP.NET Degraded) passes and is shown; an unknown check
    // status is shown and fails nothing by itself.
    out.push(match (&o.health_before, &o.health_after) {
        (_, Err(e)) => item(
            CheckItem::AppHealth,
            Fail,
            format!("health endpoint unreachable after {w}: {e}"),
        ),
        (Ok(a), Ok(b)) if a.healthy && b.healthy && failing_checks(b).is_empty() => item(
            CheckItem::AppHealth,
            Pass,
            format!(
                "{}GET {} after {w} → {} (healthy at the start too: HTTP {}{})",
                if warned(b) { "with warnings: " } else { "" },
                b.url,
                b.summary(),
                a.http_status,
                a.status
                    .as_deref()
                    .map(|s| format!(", status {s}"))
                    .unwrap_or_default()
            ),
        ),
        (before, Ok(b)) => {
            let mut why = Vec::new();
            if !b.healthy {
                why.push(format!("not healthy after {w}"));
            }
            let failing = failing_checks(b);
            if !failing.is_empty() {
                why.push(format!("failed checks: {}", failing.join(", ")));
            }
            match before {
                Ok(a) if !a.healthy => {
                    why.push(format!("not healthy at the start: {}", a.summary()))
                }
                Err(e) => why.push(format!("unreachable at the start: {e}")),
                Ok(_) => {}
            }
            item(
                CheckItem::AppHealth,
                Fail,
                format!(
                    "GET {} → {}; {}; body: {}",
                    b.url,
                    b.summary(),
                    why.join("; "),
                    b.body_excerpt
                ),
            )
        }
    });

    // 7. Background workers running: heartbeats advance during the window, and the app's
    // own worker checks pass at its end. Existing heartbeats from before the restore prove
    // nothing, so the database values must move.
    out.push(match (&o.beats_before, &o.beats_after) {
        (Some(a), Some(b)) if !b.is_empty() => {
            let stale: Vec<String> = b
                .iter()
                .filter(|(k, v)| a.get(*k).is_none_or(|old| *v <= old))
                .map(|(k, _)| k.clone())
                .collect();
            let unhealthy = o
                .health_after
                .as_ref()
                .map(worker_failures)
                .unwrap_or_default();
            let ev = format!(
                "worker_heartbeats over {w}: {}",
                b.iter()
                    .map(|(k, v)| format!(
                        "{k} +{} ms",
                        (v - a.get(k).copied().unwrap_or(*v)) / 1000
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if stale.is_empty() && unhealthy.is_empty() {
                item(CheckItem::WorkersRunning, Pass, ev)
            } else {
                item(
                    CheckItem::WorkersRunning,
                    Fail,
                    format!(
                        "{ev}; not advancing: {}; failing worker checks: {}",
                        list(&stale),
                        list(&unhealthy)
                    ),
                )
            }
        }
        _ => match &o.health_after {
            Ok(h) => {
                let workers = worker_checks(h);
                if workers.is_empty() {
                    item(
                        CheckItem::WorkersRunning,
                        Skipped,
                        "the app reports no worker checks and no heartbeat table is readable",
                    )
                } else {
                    let bad = worker_failures(h);
                    if bad.is_empty() {
                        item(
                            CheckItem::WorkersRunning,
                            Pass,
                            format!(
                                "health worker checks pass after {w}: {}",
                                workers.join(", ")
                            ),
                        )
                    } else {
                        item(
                            CheckItem::WorkersRunning,
                            Fail,
                            format!("health worker checks failing after {w}: {}", bad.join(", ")),
                        )
                    }
                }
            }
            Err(e) => item(
                CheckItem::WorkersRunning,
                Fail,
                format!("cannot read worker state: {e}"),
            ),
        },
    });

    // 8. No errors in logs since the restart.
    out.push(match &o.error_lines {
        Ok(lines) if lines.is_empty() => item(
            CheckItem::NoLogErrors,
            Pass,
            "no ERROR lines in the app log since the restart",
        ),
        Ok(lines) => item(
            CheckItem::NoLogErrors,
            Fail,
            format!(
                "{} ERROR line(s) since the restart, first: {}",
                lines.len(),
                lines[0].chars().take(300).collect::<String>()
            ),
        ),
        Err(e) => item(
            CheckItem::NoLogErrors,
            Fail,
            format!("cannot read the app log: {e}"),
        ),
    });

    // 9. System state is HEALTHY, at the end of the window: the body's overall status in
    // its own words (a warning passes, shown); without a readable one, HTTP and the checks.
    out.push(match &o.health_after {
        Ok(h) if h.healthy => {
            let format = &h.health.format;
            let ev = match (&h.health.overall, &h.status) {
                (Some(HealthStatus::Pass), Some(s)) => format!("status {s} ({format}) after {w}"),
                (Some(HealthStatus::Warn), Some(s)) => {
                    format!("with a warning: status {s} ({format}) after {w}")
                }
                (_, Some(s)) => format!(
                    "HTTP {} after {w}; the status {s:?} is unknown ({format}), no check failed",
                    h.http_status
                ),
                (_, None) => format!(
                    "HTTP {} after {w} ({format}, no overall status), no check failed",
                    h.http_status
                ),
            };
            item(CheckItem::SystemHealthy, Pass, ev)
        }
        Ok(h) => item(
            CheckItem::SystemHealthy,
            Fail,
            format!(
                "status {} (HTTP {}, {}) after {w}",
                h.status.as_deref().unwrap_or("absent"),
                h.http_status,
                h.health.format
            ),
        ),
        Err(e) => item(
            CheckItem::SystemHealthy,
            Fail,
            format!("health endpoint unreachable: {e}"),
        ),
    });

    // 10. Monitoring shows normal metrics: errors not increasing, heartbeats fresh, up.
    out.push(match (&o.metrics_before, &o.metrics_after) {
        (Ok(a), Ok(b)) => {
            let mut problems = Vec::new();
            let mut seen = Vec::new();
            for (k, v) in b {
                if k.contains("errors_total") {
                    let old = a.get(k).copied().unwrap_or(0.0);
                    seen.push(format!("{k} {old} → {v}"));
                    if *v > old {
                        problems.push(format!("{k} rose from {old} to {v}"));
                    }
                } else if k.contains("heartbeat_age_seconds") {
                    seen.push(format!("{k} = {v}"));
                    if *v > max_heartbeat_age.as_secs_f64() {
                        problems.push(format!(
                            "{k} = {v}s exceeds {}",
                            humantime::format_duration(max_heartbeat_age)
                        ));
                    }
                } else if k.ends_with("_up") {
                    seen.push(format!("{k} = {v}"));
                    if *v != 1.0 {
                        problems.push(format!("{k} = {v}"));
                    }
                }
            }
            if seen.is_empty() {
                item(
                    CheckItem::NormalMetrics,
                    Fail,
                    format!(
                        "no errors_total, heartbeat_age_seconds or _up metric among {} metrics",
                        b.len()
                    ),
                )
            } else if problems.is_empty() {
                item(CheckItem::NormalMetrics, Pass, seen.join("; "))
            } else {
                item(CheckItem::NormalMetrics, Fail, problems.join("; "))
            }
        }
        (_, Err(e)) if e.contains("no metrics") => {
            item(CheckItem::NormalMetrics, Skipped, e.clone())
        }
        (Err(e), _) | (_, Err(e)) => item(
            CheckItem::NormalMetrics,
            Fail,
            format!("cannot read metrics: {e}"),
        ),
    });
    out
}

fn worker_checks(h: &HealthReport) -> Vec<String> {
    h.health
        .checks
        .iter()
        .filter(|c| c.name.starts_with("worker"))
        .map(|c| c.name.clone())
        .collect()
}

/// Worker checks that failed; a warned or unknown one is not a failure (its evidence is in
/// item 6).
fn worker_failures(h: &HealthReport) -> Vec<String> {
    h.health
        .checks
        .iter()
        .filter(|c| c.name.starts_with("worker") && c.status == HealthStatus::Fail)
        .map(|c| c.name.clone())
        .collect()
}

fn failing_checks(h: &HealthReport) -> Vec<String> {
    h.health
        .with_status(&HealthStatus::Fail)
        .into_iter()
        .map(|c| c.name.clone())
        .collect()
}

/// Whether the answer carries a warning: its overall status or a check.
fn warned(h: &HealthReport) -> bool {
    h.health.overall == Some(HealthStatus::Warn)
        || !h.health.with_status(&HealthStatus::Warn).is_empty()
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
