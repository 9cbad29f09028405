//! The top of every report: the recovery objectives against what the drill achieved (what the
//! RTO clock covered, the recovery point and the backup's age), and the issues found. Pure:
//! decided from the report's own sections, so every rendering says the same.

use chrono::{DateTime, Utc};

use super::{
    BudgetVerdict, DisasterKind, FailureClass, ObjectiveVerdict, Objectives, Phase, PhaseId,
    Report, RpoObjective, Status,
};
use crate::duration::human_ms;

/// The objectives of report `r` (its phases, budgets, backup and RPO already filled in):
/// `objective_ms` is the RPO objective, `disaster_at` the moment the disaster struck (none
/// when an existing backup file was restored: its age is taken at the drill's start).
pub fn of(r: &Report, objective_ms: u64, disaster_at: Option<DateTime<Utc>>) -> Objectives {
    let counted: Vec<&Phase> = r
        .phases
        .iter()
        .filter(|p| p.budget.is_some() && p.status != Status::Skipped)
        .collect();
    Objectives {
        rto_clock: rto_clock(r, &counted),
        clock_starts: counted.first().map(|p| p.name),
        clock_ends: counted.last().map(|p| p.name),
        rpo: match r.kind {
            // No data is restored, so no data can be lost: the objective is not measured.
            super::ReportKind::Rollback => RpoObjective {
                objective_ms,
                achieved_ms: None,
                verdict: ObjectiveVerdict::NotMeasured,
                backup_age_ms: None,
                backup_age_verdict: ObjectiveVerdict::NotMeasured,
                note: "RPO: not applicable to a code rollback, which restores no data.".into(),
            },
            _ => rpo(r, objective_ms, disaster_at),
        },
    }
}

/// What the RTO clock covered, in words.
fn rto_clock(r: &Report, counted: &[&Phase]) -> String {
    let (Some(first), Some(last)) = (counted.first(), counted.last()) else {
        return "The RTO clock never started: no phase counted in a budget ran.".into();
    };
    let ran = |id: PhaseId| {
        r.phases
            .iter()
            .find(|p| p.name == id && p.status != Status::Skipped)
    };
    let server = match r.disaster.kind {
        _ if r.kind == super::ReportKind::Rollback => {
            "A code rollback: no server was provisioned and no database touched.".to_string()
        }
        DisasterKind::ServerLoss => match ran(PhaseId::ReplaceServer) {
            Some(p) => format!(
                "The lost server's replacement was provisioned inside it (replace_server, {}).",
                human_ms(p.duration_ms)
            ),
            None => "The lost server's replacement was never provisioned (the drill stopped before replace_server).".into(),
        },
        // No server at all: the files and the team's application.
        DisasterKind::None if r.kind == crate::report::ReportKind::ConfigRestore => "A configuration restore: no database server was provisioned or connected to; the clock covers the application's stop, the files' check and replacement, its start and its health.".into(),
        DisasterKind::DropDb => "The server was not lost (drop-db): the restore went into the running server, so no server was provisioned.".into(),
        DisasterKind::None => format!(
            "No disaster was played (an existing backup was restored): the restore's server was provisioned before the clock started (provision{}), as a standby server would be; a real server loss adds a server's provisioning.",
            ran(PhaseId::Provision).map(|p| format!(", {}", human_ms(p.duration_ms))).unwrap_or_default()
        ),
    };
    let outside: Vec<&str> = r
        .phases
        .iter()
        .filter(|p| p.budget.is_none() && p.status != Status::Skipped)
        .map(|p| p.name.name())
        .collect();
    let groups: Vec<&str> = r
        .budgets
        .iter()
        .filter(|b| b.name != crate::plan::BudgetName::Total)
        .map(|b| b.name.as_str())
        .collect();
    // Phases that ran side by side (the precheck while a lost server was replaced).
    let beside: Vec<String> = counted
        .windows(2)
        .filter(|w| w[1].started_ms < w[0].started_ms + w[0].duration_ms)
        .map(|w| format!("{} ran beside {}", w[1].name, w[0].name))
        .collect();
    let summed = if beside.is_empty() {
        "summed".to_string()
    } else {
        format!(
            "summed, the time two ran at once counted once ({})",
            beside.join(", ")
        )
    };
    format!(
        "The RTO clock runs from {} to {}: the phases counted in the budgets ({}), {summed}. {server} Not counted: {} (the preparation and the disaster before it, and the drill's proof of its own checks).",
        first.name,
        last.name,
        groups.join(", "),
        if outside.is_empty() {
            "nothing".to_string()
        } else {
            outside.join(", ")
        }
    )
}

/// The recovery point: measured by the ledger writer, or not measured (database scope), and
/// always the backup's age at the disaster against the objective.
fn rpo(r: &Report, objective_ms: u64, disaster_at: Option<DateTime<Utc>>) -> RpoObjective {
    let at_start = crate::duration::parse_time(&r.started_at).ok();
    let (moment, moment_words) = match disaster_at {
        Some(t) => (Some(t), "at the disaster"),
        None => (at_start, "when the drill started"),
    };
    let taken = r
        .backup
        .as_ref()
        .and_then(|b| b.created_at.as_deref())
        .and_then(|t| crate::duration::parse_time(t).ok());
    let backup_age_ms = match (taken, moment) {
        (Some(taken), Some(at)) => {
            Some(u64::try_from((at - taken).num_milliseconds()).unwrap_or(0))
        }
        _ => None,
    };
    let backup_age_verdict = backup_age_ms.map_or(ObjectiveVerdict::NotMeasured, |a| {
        ObjectiveVerdict::of(a, objective_ms)
    });
    let age = match backup_age_ms {
        Some(a) => format!(
            "The restored backup was {} old {moment_words}, against the {} objective ({}): the most a restore of it can have lost.",
            human_ms(a),
            human_ms(objective_ms),
            match backup_age_verdict {
                ObjectiveVerdict::Pass => "within it",
                _ => "OLDER than the objective",
            }
        ),
        None => "The restored backup's age is unknown: it has no manifest with the time it was taken.".into(),
    };
    match &r.rpo {
        Some(p) => RpoObjective {
            objective_ms,
            achieved_ms: Some(p.achieved_ms),
            verdict: match p.verdict {
                crate::rpo::RpoVerdict::Pass => ObjectiveVerdict::Pass,
                crate::rpo::RpoVerdict::Fail => ObjectiveVerdict::Fail,
            },
            backup_age_ms,
            backup_age_verdict,
            note: format!(
                "Measured by the ledger writer: a data-loss window of {} with {} acknowledged commits lost. {age}",
                human_ms(p.achieved_ms),
                p.lost_commits
            ),
        },
        None => RpoObjective {
            objective_ms,
            achieved_ms: None,
            verdict: ObjectiveVerdict::NotMeasured,
            backup_age_ms,
            backup_age_verdict,
            note: format!(
                "RPO: not measured in this drill ({}): no writes were recorded around the backup (`--scope full` measures it). {age}",
                match r.scope {
                    Some(_) => "no ledger writer",
                    None => "database scope",
                }
            ),
        },
    }
}

/// The issues this drill found, after the operator's own (`--issue`): the failure, budgets
/// exceeded, the recovery point or the backup's age over the objective, integrity warnings,
/// negative controls missed, the application restarted on data that failed the comparison.
pub fn issues_found(r: &Report, given: &[String]) -> Vec<String> {
    let mut out: Vec<String> = given.to_vec();
    if let Some(f) = &r.failure {
        out.push(format!(
            "{} failed ({}): {}",
            f.phase,
            f.class,
            f.message.lines().next().unwrap_or("")
        ));
    }
    for b in &r.budgets {
        let is_the_failure = r
            .failure
            .as_ref()
            .is_some_and(|f| f.class == FailureClass::BudgetExceeded && f.phase == b.name.into());
        if b.verdict == BudgetVerdict::Fail && !is_the_failure {
            out.push(format!(
                "budget {} exceeded: {} used of {}",
                b.name.as_str(),
                human_ms(b.used_ms),
                human_ms(b.limit_ms)
            ));
        }
    }
    if let Some(o) = &r.objectives {
        if o.rpo.backup_age_verdict == ObjectiveVerdict::Fail {
            out.push(format!(
                "the restored backup was {} old, older than the {} recovery point objective",
                human_ms(o.rpo.backup_age_ms.unwrap_or(0)),
                human_ms(o.rpo.objective_ms)
            ));
        }
    }
    if let Some(i) = &r.integrity {
        for w in &i.comparison.warnings {
            out.push(format!("integrity warning: {}", w.line()));
        }
    }
    if let Some(d) = &r.detection {
        for c in d
            .controls
            .iter()
            .filter(|c| c.outcome == super::vocab::ControlOutcome::Missed)
        {
            out.push(format!(
                "negative control {} was not detected: {}",
                c.control,
                c.detail.lines().next().unwrap_or("")
            ));
        }
    }
    if let Some(w) = app_on_failed_data(r) {
        out.push(w);
    }
    out
}

/// The warning when the application was restarted on restored data that failed the
/// integrity comparison: a real restore must not put the application back on it.
pub fn app_on_failed_data(r: &Report) -> Option<String> {
    let compare_failed = r
        .phases
        .iter()
        .any(|p| p.name == PhaseId::Compare && p.status == Status::Fail);
    let started = r
        .phases
        .iter()
        .any(|p| p.name == PhaseId::StartApp && p.status == Status::Pass);
    (compare_failed && started).then(|| {
        "the application was restarted on restored data that FAILED the integrity comparison (compare): in a real restore it must stay stopped until the data is right".to_string()
    })
}
