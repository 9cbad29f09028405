//! The report, assembled from what the phases returned: phases that never ran recorded as
//! skipped, budgets judged, the verdict, the closing events.

use super::kernel::Recorder;
use super::{Event, Evidence, SkipReason};
use crate::checklist;
use crate::plan::{BudgetName, NegativeControls, Plan, Source};
use crate::report::{
    BackupInfo, BudgetResult, Detection, DisasterInfo, DisasterKind, Environment, Failure,
    FailureClass, Phase, PhaseId, Report, ScopeKind, SourceInfo, SourceKind, Status, Verdict,
    SCHEMA_VERSION,
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
        evaluate_budgets(plan, &rec.phases, |p| rec.not_run(p), rec.failure.is_some())
    };
    if rec.failure.is_none() {
        if let Some(b) = budgets.iter().find(|b| b.verdict == Status::Fail) {
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
    let checklist = if ev.checklist.is_empty() {
        checklist::all(
            Status::Skipped,
            "not run: the drill stopped before verification",
        )
    } else {
        ev.checklist
    };
    let (seed, rows) = match plan.source {
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
    Report {
        schema_version: SCHEMA_VERSION,
        drill_id: plan.drill_id.clone(),
        started_at: millis(started_at),
        finished_at: millis(chrono::Utc::now()),
        verdict,
        failure: rec.failure.clone(),
        environment: Environment {
            backend: ev.backend_kind.unwrap_or(plan.backend),
            server_version: ev.verified.server_version,
            tools,
            pgdrill_version: env!("CARGO_PKG_VERSION").into(),
            host: hostname(),
            run_by: run_by(),
        },
        source: SourceInfo {
            kind: SourceKind::from(&plan.source),
            seed,
            rows,
            dsn: match &plan.source {
                Source::Dsn(e) => Some(e.display()),
                _ => None,
            },
            database: ev.database,
            generated: ev.generated,
        },
        backup,
        disaster: DisasterInfo {
            kind: match plan.source {
                Source::BackupFile(_) => DisasterKind::None,
                _ => plan.disaster.into(),
            },
            detail: ev.disaster,
        },
        phases: rec.phases.clone(),
        budgets,
        integrity: ev.verified.integrity,
        detection: Some(ev.detection.unwrap_or_else(|| {
            let why = match plan.negative_controls {
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
    }
}

/// Sums phase durations per budget and judges them.
pub fn evaluate_budgets(
    plan: &Plan,
    phases: &[Phase],
    not_run: impl Fn(&Phase) -> bool,
    failed: bool,
) -> Vec<BudgetResult> {
    let mut groups = vec![
        BudgetName::DatabaseRestore,
        BudgetName::AppRestart,
        BudgetName::Verification,
    ];
    // The full scope's own restores count in the RTO too.
    if plan.full().is_some() {
        groups.extend([BudgetName::ConfigRestore, BudgetName::CodeRollback]);
    }
    let mut out = Vec::new();
    let mut total = 0;
    let mut all_ran = true;
    for g in groups {
        let ps: Vec<&Phase> = phases.iter().filter(|p| p.budget == Some(g)).collect();
        let used: u64 = ps.iter().map(|p| p.duration_ms).sum();
        total += used;
        let ran = !ps.iter().any(|p| p.status == Status::Fail || not_run(p));
        all_ran &= ran;
        out.push(judge(plan, g, used, ran, failed));
    }
    out.push(judge(plan, BudgetName::Total, total, all_ran, failed));
    out
}

fn judge(plan: &Plan, name: BudgetName, used: u64, ran: bool, failed: bool) -> BudgetResult {
    let limit = name.limit(&plan.budgets).as_millis() as u64;
    let verdict = if used > limit {
        Status::Fail
    } else if ran || !failed {
        Status::Pass
    } else {
        Status::Skipped
    };
    BudgetResult {
        name,
        limit_ms: limit,
        used_ms: used,
        verdict,
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

fn run_by() -> String {
    let uid = nix::unistd::Uid::effective();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"));
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
