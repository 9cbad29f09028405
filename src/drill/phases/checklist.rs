//! The strategy's ten-item checklist, decided from what verification and the restarted
//! application showed, and phase `checklist` that judges it.

use super::app::AppOutcome;
use super::verify::Verified;
use crate::checklist::{item, CheckItem, CRITICAL_TABLES};
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::report::{ChecklistItem, FailureClass, Status};
use crate::snapshot::Snapshot;

/// The ten items from the evidence.
pub(in crate::drill) fn items(ctx: &Ctx, v: &Verified, app: AppOutcome) -> Vec<ChecklistItem> {
    use Status::*;
    let mut out = Vec::new();
    out.push(match &v.connected {
        Some(ev) => item(CheckItem::DatabaseConnection, Pass, ev.clone()),
        None => item(
            CheckItem::DatabaseConnection,
            Fail,
            "could not connect to the restored database",
        ),
    });
    out.push(critical_tables_have_data(v.snapshot.as_ref()));
    out.extend(data_integrity(v));
    match app {
        AppOutcome::Observed(items) => out.extend(items),
        other => {
            let why = match other {
                AppOutcome::NoApp => "no application under drill",
                AppOutcome::DidNotStart => "the application did not start after the restore",
                _ => "the application was not observed",
            };
            let status = if ctx.plan.app.is_some() {
                Fail
            } else {
                Skipped
            };
            out.extend(CheckItem::APP.iter().map(|i| item(*i, status, why)));
        }
    }
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
fn data_integrity(v: &Verified) -> Vec<ChecklistItem> {
    let integrity = v.integrity.as_ref().map(|i| &i.comparison);
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

/// Phase `checklist`: fails naming every failing item and its evidence.
pub(in crate::drill) async fn run(ctx: &mut Ctx, items: &[ChecklistItem]) -> Option<()> {
    let failed: Vec<String> = items
        .iter()
        .filter(|i| i.status == Status::Fail)
        .map(|i| format!("{}: {}", i.item, i.evidence))
        .collect();
    let n_pass = items.iter().filter(|i| i.status == Status::Pass).count();
    let n_skip = items.iter().filter(|i| i.status == Status::Skipped).count();
    ctx.rec
        .step(PhaseId::Checklist, async move {
            if failed.is_empty() {
                Ok((
                    (),
                    format!("{n_pass} items pass, {n_skip} skipped (reasons in the checklist)"),
                ))
            } else {
                Err(StepFail::new(
                    FailureClass::ChecklistFailed,
                    failed.join("\n"),
                ))
            }
        })
        .await
}
