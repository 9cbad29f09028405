//! The strategy's 10-item verification checklist, each item decided from evidence gathered
//! by the drill (never assumed).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::app::{is_error_line, AppProcess, HealthReport};
use crate::report::{ChecklistItem, Status};

/// One of the strategy's ten "Verification Checklist" items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckItem {
    /// 1. Database connection successful.
    DatabaseConnection,
    /// 2. All critical tables have data.
    CriticalTablesHaveData,
    /// 3. User data integrity verified.
    UserData,
    /// 4. Subscription data integrity verified.
    SubscriptionData,
    /// 5. Payment data integrity verified.
    PaymentData,
    /// 6. Application health checks pass.
    AppHealth,
    /// 7. Background workers running.
    WorkersRunning,
    /// 8. No errors in logs.
    NoLogErrors,
    /// 9. System state is HEALTHY.
    SystemHealthy,
    /// 10. Monitoring shows normal metrics.
    NormalMetrics,
}

impl CheckItem {
    /// The ten items in the strategy's order.
    pub const ALL: [CheckItem; 10] = [
        CheckItem::DatabaseConnection,
        CheckItem::CriticalTablesHaveData,
        CheckItem::UserData,
        CheckItem::SubscriptionData,
        CheckItem::PaymentData,
        CheckItem::AppHealth,
        CheckItem::WorkersRunning,
        CheckItem::NoLogErrors,
        CheckItem::SystemHealthy,
        CheckItem::NormalMetrics,
    ];

    /// The items judged from the running application (6–10).
    pub const APP: [CheckItem; 5] = [
        CheckItem::AppHealth,
        CheckItem::WorkersRunning,
        CheckItem::NoLogErrors,
        CheckItem::SystemHealthy,
        CheckItem::NormalMetrics,
    ];

    /// The item's title, worded as in the strategy (and in report.json).
    pub fn title(self) -> &'static str {
        use CheckItem::*;
        match self {
            DatabaseConnection => "Database connection successful",
            CriticalTablesHaveData => "All critical tables have data",
            UserData => "User data integrity verified",
            SubscriptionData => "Subscription data integrity verified",
            PaymentData => "Payment data integrity verified",
            AppHealth => "Application health checks pass",
            WorkersRunning => "Background workers running",
            NoLogErrors => "No errors in logs",
            SystemHealthy => "System state is HEALTHY",
            NormalMetrics => "Monitoring shows normal metrics",
        }
    }
}

impl std::fmt::Display for CheckItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.title())
    }
}

/// The tables behind the three data-integrity items.
pub const CRITICAL_TABLES: [(CheckItem, &str); 3] = [
    (CheckItem::UserData, "public.users"),
    (CheckItem::SubscriptionData, "public.subscriptions"),
    (CheckItem::PaymentData, "public.payments"),
];

/// Builds a checklist item.
pub fn item(which: CheckItem, status: Status, evidence: impl Into<String>) -> ChecklistItem {
    ChecklistItem {
        item: which.title().to_string(),
        status,
        evidence: evidence.into(),
    }
}

/// Whether `i` is the report's record of item `which`.
pub fn is(i: &ChecklistItem, which: CheckItem) -> bool {
    i.item == which.title()
}

/// Whether the checklist as a whole passes: no item failed. Skipped items carry their reason.
pub fn passes(items: &[ChecklistItem]) -> bool {
    items.iter().all(|i| i.status != Status::Fail)
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

    // 6. Application health checks pass: every check in the health answer, at both ends.
    out.push(match (&o.health_before, &o.health_after) {
        (Ok(a), Ok(b)) if a.healthy && b.healthy && failing_checks(b).is_empty() => item(
            CheckItem::AppHealth,
            Pass,
            format!(
                "GET {} → {} at the start and {} after {w}",
                b.url,
                a.summary(),
                b.summary()
            ),
        ),
        (_, Ok(b)) => item(
            CheckItem::AppHealth,
            Fail,
            format!("GET {} → {}; body: {}", b.url, b.summary(), b.body_excerpt),
        ),
        (_, Err(e)) => item(
            CheckItem::AppHealth,
            Fail,
            format!("health endpoint unreachable after {w}: {e}"),
        ),
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

    // 9. System state is HEALTHY, at the end of the window.
    out.push(match &o.health_after {
        Ok(h) if h.status.as_deref() == Some("HEALTHY") => item(
            CheckItem::SystemHealthy,
            Pass,
            format!("status HEALTHY after {w}"),
        ),
        Ok(h) if h.status.is_none() && h.healthy => item(
            CheckItem::SystemHealthy,
            Pass,
            format!("HTTP {} (no JSON status field)", h.http_status),
        ),
        Ok(h) => item(
            CheckItem::SystemHealthy,
            Fail,
            format!(
                "status {} after {w}",
                h.status.as_deref().unwrap_or("absent")
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
    checks(h)
        .into_iter()
        .filter(|(n, _)| n.starts_with("worker"))
        .map(|(n, _)| n)
        .collect()
}

fn worker_failures(h: &HealthReport) -> Vec<String> {
    checks(h)
        .into_iter()
        .filter(|(n, s)| n.starts_with("worker") && s != "pass")
        .map(|(n, _)| n)
        .collect()
}

fn failing_checks(h: &HealthReport) -> Vec<String> {
    checks(h)
        .into_iter()
        .filter(|(_, s)| s != "pass")
        .map(|(n, _)| n)
        .collect()
}

fn checks(h: &HealthReport) -> Vec<(String, String)> {
    h.json
        .as_ref()
        .and_then(|j| j.get("checks"))
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c.get("name")
                            .and_then(|v| v.as_str())
                            .unwrap_or("?")
                            .to_string(),
                        c.get("status")
                            .and_then(|v| v.as_str())
                            .unwrap_or("?")
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
