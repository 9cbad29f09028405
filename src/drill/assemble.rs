//! The report, assembled from what the phases returned: phases that never ran recorded as
//! skipped, budgets judged, the verdict, the closing events.

use super::kernel::Recorder;
use super::{Event, Evidence, SkipReason};
use crate::checklist;
use crate::plan::{BudgetName, NegativeControls, Plan, Source};
use std::path::{Path, PathBuf};

use crate::repo::audit::Who;

use crate::report::{
    BackupInfo, BudgetResult, BudgetVerdict, Detection, DisasterInfo, DisasterKind, Environment,
    Failure, FailureClass, Neighbour, Phase, PhaseId, Record, Report, ScopeKind, SourceInfo,
    SourceKind, Status, Verdict, SCHEMA_VERSION,
};

/// The drill's report; tells the reporters the verdict and that the drill is over.
pub(super) fn report(
    plan: &Plan,
    planned: &[PhaseId],
    mut rec: Recorder,
    notes: Vec<String>,
    ev: Evidence,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Report {
    // Phases that never ran because an earlier one failed are listed as skipped.
    let done: Vec<PhaseId> = rec.phases.iter().map(|p| p.name).collect();
    for &id in planned {
        if !done.contains(&id) {
            let why = match &rec.failure {
                Some(f) => SkipReason::AfterFailure(f.phase),
                None => SkipReason::NotRun,
            };
            rec.skip(id, why);
        }
    }
    let budgets = {
        let rec = &rec;
        evaluate_budgets(plan, &rec.phases, |p| rec.not_run(p))
    };
    if rec.failure.is_none() {
        if let Some(b) = budgets.iter().find(|b| b.verdict == BudgetVerdict::Fail) {
            rec.failure = Some(Failure {
                phase: b.name.into(),
                class: FailureClass::BudgetExceeded,
                message: format!(
                    "{} took {} but the budget is {}",
                    b.name.as_str(),
                    crate::report::markdown::secs(b.used_ms),
                    crate::report::markdown::secs(b.limit_ms)
                ),
            });
        }
    }
    let verdict = match &rec.failure {
        None => Verdict::Pass,
        Some(f) if f.class == FailureClass::Environment => Verdict::Error,
        Some(_) => Verdict::Fail,
    };
    // A configuration restore or a code rollback has no checklist: its items are about
    // restored data.
    let checklist = if plan.config_restore.is_some() || plan.rollback.is_some() {
        Vec::new()
    } else if ev.checklist.is_empty() {
        checklist::all(
            Status::Skipped,
            "not run: the drill stopped before verification",
        )
    } else {
        ev.checklist
    };
    let (seed, rows) = match plan.source {
        // A code rollback generates no data.
        _ if plan.rollback.is_some() => (None, None),
        Source::Generated { rows, seed } => (Some(seed), Some(rows)),
        _ => (None, None),
    };
    let precheck = ev.precheck.as_ref();
    let backup = ev.backup.as_ref().map(|b| BackupInfo {
        file: b.dump.display().to_string(),
        size_bytes: b
            .manifest
            .as_ref()
            .map(|m| m.size_bytes)
            .or(precheck.map(|p| p.size_bytes))
            .unwrap_or(0),
        sha256: b
            .manifest
            .as_ref()
            .map(|m| m.sha256.clone())
            .or(precheck.map(|p| p.sha256.clone()))
            .unwrap_or_default(),
        duration_ms: b.duration_ms,
        created_at: b.manifest.as_ref().map(|m| m.created_at.clone()),
        manifest: b.manifest_path.as_ref().map(|p| p.display().to_string()),
        globals: b.globals.as_ref().map(|p| p.display().to_string()),
        manifest_sha256: None,
        database_size_bytes: None,
        previous: None,
        next: None,
        retention: None,
        repo_last_verify: None,
    });
    for text in &notes {
        rec.emit(Event::Note { text: text.clone() });
    }
    rec.emit(Event::Verdict {
        verdict,
        class: rec.failure.as_ref().map(|f| f.class),
    });
    rec.finish();
    let mut tools = ev.verified.tools;
    if let Some(git) = ev.git {
        tools.insert("git".into(), git);
    }
    let millis =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let backup =
        backup.map(|b| with_context(plan, b, &ev.earlier_backups, ev.verified.database_size));
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        drill_id: plan.drill_id.clone(),
        kind: if plan.restore.is_some() {
            crate::report::ReportKind::Restore
        } else if plan.config_restore.is_some() {
            crate::report::ReportKind::ConfigRestore
        } else if plan.rollback.is_some() {
            crate::report::ReportKind::Rollback
        } else {
            crate::report::ReportKind::Drill
        },
        started_at: millis(started_at),
        finished_at: millis(chrono::Utc::now()),
        verdict,
        failure: rec.failure.clone(),
        environment: Environment {
            backend: ev.backend_kind.unwrap_or(plan.backend),
            server_version: ev.verified.server_version,
            tools,
            pgdrill_version: env!("CARGO_PKG_VERSION").into(),
            host: Who::current().host,
            run_by: run_by(),
        },
        source: match (&plan.rollback, &plan.config_restore, &plan.source) {
            (Some(r), _, _) => SourceInfo {
                kind: SourceKind::Release,
                seed: None,
                rows: None,
                dsn: None,
                database: String::new(),
                location: Some(r.code_repo.display().to_string()),
                generated: None,
            },
            (None, Some(_), source) => SourceInfo {
                kind: SourceKind::ConfigBackup,
                seed: None,
                rows: None,
                dsn: None,
                database: String::new(),
                location: match source {
                    Source::BackupFile(p) => Some(p.display().to_string()),
                    _ => None,
                },
                generated: None,
            },
            (None, None, source) => SourceInfo {
                kind: SourceKind::from(source),
                seed,
                rows,
                dsn: match source {
                    Source::Dsn(e) => Some(e.display()),
                    _ => None,
                },
                database: ev.database,
                location: None,
                generated: ev.generated,
            },
        },
        backup,
        disaster: DisasterInfo {
            kind: match plan.source {
                _ if plan.is_live() || plan.rollback.is_some() => DisasterKind::None,
                Source::BackupFile(_) | Source::Pitr(_) => DisasterKind::None,
                _ => plan.disaster.into(),
            },
            detail: ev.disaster,
        },
        phases: rec.phases.clone(),
        budgets,
        integrity: ev.verified.integrity,
        // A code rollback restores no data for a control to damage.
        detection: plan.rollback.is_none().then(|| ev.detection.unwrap_or_else(|| {
            let why = match plan.negative_controls {
                _ if matches!(plan.source, Source::Pitr(_)) => "not built yet for point-in-time recovery: the controls damage a dump or its manifest, which a physical backup does not have",
                NegativeControls::None => "negative controls off (--negative-controls none): nothing in this drill shows that its checks can fail",
                _ => "not run: the drill stopped before the negative controls",
            };
            Detection::of(plan.negative_controls, Vec::new(), Some(why.into()))
        })),
        checklist,
        notes,
        rpo: ev.rpo,
        scope: plan.full().map(|_| ScopeKind::Full),
        config: ev.config,
        rollback: ev.rollback,
        objectives: None,
        record: None,
        contacts: plan.record.contacts.clone(),
        warnings: crate::contacts::warnings(&plan.record.contacts),
        notifications: Vec::new(),
        restore: ev.restore,
        config_restore: ev.config_restore,
        server_settings: ev.server_settings,
        pitr: ev.pitr,
        forecast: None,
    };
    // Beside the restart, in words: the app was put back on data that failed the compare.
    if let Some(warning) = crate::report::objectives::app_on_failed_data(&report) {
        if let Some(p) = report
            .phases
            .iter_mut()
            .find(|p| p.name == PhaseId::StartApp)
        {
            p.detail = format!("WARNING: {warning}. {}", p.detail);
        }
    }
    let objective = plan.scope.objective.as_millis() as u64;
    report.objectives = Some(crate::report::objectives::of(
        &report,
        objective,
        ev.disaster_at,
    ));
    report.record = Some(record(plan, &report));
    report
}

/// The record of the exercise: the operator's fields, the CI run, the build, the issues.
fn record(plan: &Plan, report: &Report) -> Record {
    let r = &plan.record;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let ci_run_url = match (
        env("GITHUB_SERVER_URL"),
        env("GITHUB_REPOSITORY"),
        env("GITHUB_RUN_ID"),
    ) {
        (Some(server), Some(repo), Some(run)) => {
            Some(format!("{server}/{repo}/actions/runs/{run}"))
        }
        _ => None,
    };
    Record {
        operator: r.operator.clone().unwrap_or_else(|| {
            let who = Who::current();
            format!("{}@{}", who.user, who.host)
        }),
        approver: r.approver.clone(),
        ticket: r.ticket.clone(),
        purpose: r.purpose.clone(),
        environment: r.environment.clone(),
        next_scheduled_test: r
            .next_test
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ci_run_url,
        pgdrill_commit: option_env!("PGDRILL_COMMIT").map(str::to_string),
        issues_found: crate::report::objectives::issues_found(report, &r.issues),
    }
}

/// The strategy's retention of database backups ("kept 7 days").
const RETENTION_DAYS: i64 = 7;

/// The backup with its context, as pgBackRest's `info` and Barman's `show-backup` give it:
/// absolute paths, the manifest's own hash, the restored database's size, the backups before
/// and after it, its place in the retention, and the repository's last verify.
fn with_context(
    plan: &Plan,
    mut b: BackupInfo,
    earlier: &[(PathBuf, Option<String>)],
    database_size: Option<u64>,
) -> BackupInfo {
    let abs = |p: &str| {
        std::path::absolute(p)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| p.to_string())
    };
    b.file = abs(&b.file);
    b.manifest = b.manifest.as_deref().map(abs);
    b.globals = b.globals.as_deref().map(abs);
    b.manifest_sha256 = b
        .manifest
        .as_deref()
        .and_then(|m| crate::digest::sha256_file_blocking(Path::new(m)).ok())
        .map(|(_, hex)| hex);
    b.database_size_bytes = database_size;
    let dump = PathBuf::from(&b.file);
    // A repository's backups sit in <repo>/database/; its listing knows their times.
    let in_repo = dump
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "database"))
        .and_then(Path::parent)
        .and_then(|root| crate::repo::Repo::new(root).list().ok());
    match in_repo {
        Some(listing) => {
            let at = |i: usize| {
                listing.database.get(i).and_then(|d| {
                    d.dump.as_ref().map(|f| Neighbour {
                        file: f.display().to_string(),
                        taken_at: Some(
                            d.created_at()
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        ),
                    })
                })
            };
            if let Some(i) = listing.database.iter().position(|d| {
                d.dump
                    .as_deref()
                    .and_then(|f| std::path::absolute(f).ok())
                    .as_deref()
                    == Some(dump.as_path())
            }) {
                b.previous = i.checked_sub(1).and_then(at);
                b.next = at(i + 1);
            }
        }
        None => {
            b.previous = earlier.last().map(|(f, t)| Neighbour {
                file: abs(&f.display().to_string()),
                taken_at: t.clone(),
            });
        }
    }
    b.retention = b
        .created_at
        .as_deref()
        .and_then(|t| crate::duration::parse_time(t).ok())
        .map(|taken| {
            let until = taken + chrono::TimeDelta::days(RETENTION_DAYS);
            let now = chrono::Utc::now();
            if until > now {
                format!(
                    "kept until {} under the strategy's {RETENTION_DAYS}-day retention ({} left)",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    crate::duration::human_ms(u64::try_from((until - now).num_milliseconds()).unwrap_or(0))
                )
            } else {
                format!("older than the strategy's {RETENTION_DAYS}-day retention: `pgdrill prune` would remove it")
            }
        });
    b.repo_last_verify = plan.repo.as_ref().map(|repo| {
        let last = crate::repo::audit::events(&repo.dir)
            .ok()
            .and_then(|events| {
                events
                    .into_iter()
                    .rev()
                    .find(|e| e.action == crate::repo::audit::Action::Verify)
            });
        match last {
            Some(e) => format!(
                "{} at {}{}",
                e.result.as_str(),
                e.time,
                e.detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
            None => "never: no `pgdrill verify` in the repository's audit log".into(),
        }
    });
    b
}

/// Sums phase durations per budget and judges them: a budget is judged on the time its phases
/// that ran used; `incomplete` when some of them did not run (the drill stopped), `skipped`
/// only when none did. `not_run` says whether a skipped phase was meant to run.
pub fn evaluate_budgets(
    plan: &Plan,
    phases: &[Phase],
    not_run: impl Fn(&Phase) -> bool,
) -> Vec<BudgetResult> {
    let mut groups = vec![
        BudgetName::DatabaseRestore,
        BudgetName::AppRestart,
        BudgetName::Verification,
    ];
    // A code rollback restores no database: the deploy (code_rollback) and the health
    // checks (app_restart) are its whole recovery time.
    if plan.rollback.is_some() {
        groups = vec![BudgetName::CodeRollback, BudgetName::AppRestart];
    }
    // The full scope's own restores count in the RTO too.
    if plan.full().is_some() {
        groups.extend([BudgetName::ConfigRestore, BudgetName::CodeRollback]);
    } else if plan.config_restore.is_some() {
        // A configuration restore verifies inside config_restore: no data to verify after.
        groups.retain(|g| *g != BudgetName::Verification);
        groups.push(BudgetName::ConfigRestore);
    }
    let mut out = Vec::new();
    let mut all_ran: Vec<&Phase> = Vec::new();
    // Phases meant to run that did not, over all groups: the total is incomplete with them.
    let mut missed_all: Vec<&Phase> = Vec::new();
    for g in groups {
        let ps: Vec<&Phase> = phases.iter().filter(|p| p.budget == Some(g)).collect();
        let ran: Vec<&Phase> = ps
            .iter()
            .copied()
            .filter(|p| p.status != Status::Skipped)
            .collect();
        let missed: Vec<&Phase> = ps
            .iter()
            .copied()
            .filter(|p| p.status == Status::Skipped && not_run(p))
            .collect();
        let used = covered_ms(&ran);
        all_ran.extend(&ran);
        let limit = limit(plan, g);
        let (verdict, reason) = if used > limit {
            (
                BudgetVerdict::Fail,
                (!missed.is_empty()).then(|| did_not_run(&missed)),
            )
        } else if ran.is_empty() {
            let why = match (missed.first(), ps.first()) {
                (Some(_), _) => format!("{}: {}", BudgetResult::NONE_RAN, did_not_run(&missed)),
                // Skipped by design (no application, say): the phase says why.
                (None, Some(p)) => p.detail.clone(),
                (None, None) => "no phase of this drill counts against it".to_string(),
            };
            (BudgetVerdict::Skipped, Some(why))
        } else if !missed.is_empty() {
            (
                BudgetVerdict::Incomplete,
                Some(format!(
                    "measured until the drill stopped; {}",
                    did_not_run(&missed)
                )),
            )
        } else {
            (BudgetVerdict::Pass, None)
        };
        missed_all.extend(missed);
        out.push(BudgetResult {
            name: g,
            limit_ms: limit,
            used_ms: used,
            verdict,
            reason,
        });
    }
    let total = covered_ms(&all_ran);
    let limit = limit(plan, BudgetName::Total);
    let (verdict, reason) = if total > limit {
        (BudgetVerdict::Fail, None)
    } else if !missed_all.is_empty() {
        (
            BudgetVerdict::Incomplete,
            Some(format!(
                "the recovery did not finish; {}",
                did_not_run(&missed_all)
            )),
        )
    } else {
        (BudgetVerdict::Pass, None)
    };
    out.push(BudgetResult {
        name: BudgetName::Total,
        limit_ms: limit,
        used_ms: total,
        verdict,
        reason,
    });
    out
}

/// The time `phases` ran, a moment two of them ran at once counted once: their durations'
/// sum when they ran one after the other.
pub fn covered_ms(phases: &[&Phase]) -> u64 {
    let mut spans: Vec<(u64, u64)> = phases
        .iter()
        .map(|p| (p.started_ms, p.started_ms + p.duration_ms))
        .collect();
    spans.sort_unstable();
    let mut used = 0;
    let mut reached = 0;
    for (from, to) in spans {
        let from = from.max(reached);
        if to > from {
            used += to - from;
            reached = to;
        }
    }
    used
}

fn limit(plan: &Plan, name: BudgetName) -> u64 {
    name.limit(&plan.budgets).as_millis() as u64
}

/// `not run: pg_restore, analyze (not run: phase precheck failed)`.
fn did_not_run(missed: &[&Phase]) -> String {
    let names: Vec<&str> = missed.iter().map(|p| p.name.name()).collect();
    let why = missed.first().map(|p| p.detail.as_str()).unwrap_or("");
    format!("{} did not run ({why})", names.join(", "))
}

fn run_by() -> String {
    let user = Who::current().user;
    match (
        std::env::var("GITHUB_ACTIONS").ok(),
        std::env::var("GITHUB_RUN_ID").ok(),
    ) {
        (Some(_), Some(run)) => format!(
            "{user} (GitHub Actions run {run}, workflow {}, actor {})",
            std::env::var("GITHUB_WORKFLOW").unwrap_or_default(),
            std::env::var("GITHUB_ACTOR").unwrap_or_default()
        ),
        _ if std::env::var("CI").is_ok() => format!("{user} (CI)"),
        _ => user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(name: PhaseId, started_ms: u64, duration_ms: u64) -> Phase {
        Phase {
            name,
            budget: name.budget(),
            status: Status::Pass,
            started_ms,
            duration_ms,
            detail: String::new(),
        }
    }

    #[test]
    fn phases_one_after_another_sum_and_side_by_side_count_once() {
        let one_after = [at(PhaseId::Roles, 0, 10), at(PhaseId::Createdb, 10, 5)];
        assert_eq!(covered_ms(&one_after.iter().collect::<Vec<_>>()), 15);
        let beside = [
            at(PhaseId::ReplaceServer, 100, 300),
            at(PhaseId::Precheck, 100, 700),
            at(PhaseId::Roles, 800, 50),
            at(PhaseId::PgRestore, 1000, 20),
        ];
        assert_eq!(
            covered_ms(&beside.iter().collect::<Vec<_>>()),
            700 + 50 + 20
        );
        let inside = [
            at(PhaseId::Precheck, 0, 700),
            at(PhaseId::ReplaceServer, 10, 20),
        ];
        assert_eq!(covered_ms(&inside.iter().collect::<Vec<_>>()), 700);
        assert_eq!(covered_ms(&[]), 0);
    }
}
