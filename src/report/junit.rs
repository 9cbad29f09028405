//! junit.xml: the drill as test results a CI tool can track from drill to drill.
//!
//! Four suites whose names never change (`pgdrill.phases`, `pgdrill.objectives`,
//! `pgdrill.controls`, `pgdrill.checklist`), so a test's identity (suite, `classname`, name)
//! is the same in every drill: a phase's `classname` is the budget it counts against, or
//! `drill` for the phases outside the RTO; the budgets are `budgets`, the recovery point
//! `rpo`, the negative controls `controls`, the checklist items `checklist`.
//!
//! One fault is one `<failure>`: a test case that failed only because another one did (the
//! checklist items decided by a failed phase, the `checklist` phase failing on those items,
//! a budget not judged after a failure) is `<skipped>` with a message naming where the fault
//! is. A budget whose time ran out is a failure of its own, whatever else failed.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use super::vocab::{CheckItem, ControlOutcome};
use super::{BudgetVerdict, FailedAt, Phase, PhaseId, Report, Status, Verdict};
use crate::plan::BudgetName;
use crate::rpo::RpoVerdict;

/// The `classname` of phases that count against no budget.
const NO_BUDGET: &str = "drill";

/// What one test case says.
enum Outcome {
    Pass,
    /// A fault of its own: the type (a failure class) when known, and the full detail.
    Fail {
        ty: Option<String>,
        detail: String,
    },
    /// Not run, or not counted: why (the first line is the message), and the detail.
    Skip {
        why: String,
        detail: Option<String>,
    },
}

/// The message of a detail: its first line in full, never cut; a line that only announces a
/// list (`2 difference(s):`) is followed by the list's first item so the message alone says
/// what failed.
fn message(detail: &str) -> String {
    let mut lines = detail.lines().map(str::trim_end).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("failed");
    match lines.next() {
        Some(next) if first.ends_with(':') => format!("{first} {}", next.trim_start()),
        _ => first.to_string(),
    }
}

fn case(
    name: &str,
    classname: &str,
    outcome: Outcome,
    ms: Option<u64>,
    kind: NonSuccessKind,
) -> TestCase {
    let status = match outcome {
        Outcome::Pass => TestCaseStatus::success(),
        Outcome::Fail { ty, detail } => {
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(message(&detail));
            if let Some(ty) = ty {
                s.set_type(ty);
            }
            s.set_description(detail);
            s
        }
        Outcome::Skip { why, detail } => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(message(&why));
            let body = match detail {
                Some(d) if d != why => Some(format!("{why}\n{d}")),
                _ if why.contains('\n') => Some(why),
                _ => None,
            };
            if let Some(body) = body {
                s.set_description(body);
            }
            s
        }
    };
    let mut c = TestCase::new(name.to_string(), status);
    c.set_classname(classname.to_string());
    if let Some(ms) = ms {
        c.set_time(Duration::from_millis(ms));
    }
    c
}

/// Where the fault of a case that failed because a phase did is reported.
fn follows_from(phase: PhaseId) -> String {
    format!("it follows from the failure of phase {phase} (pgdrill.phases)")
}

/// The failed phase among `phases` whose failure explains a case, if any.
fn failed_among(r: &Report, phases: &[PhaseId]) -> Option<PhaseId> {
    r.phases
        .iter()
        .find(|p| p.status == Status::Fail && phases.contains(&p.name))
        .map(|p| p.name)
}

/// A phase's case. A phase that failed only through cases of its own elsewhere (the
/// checklist through its items, the negative controls through a missed control, `rpo`
/// through the objective) points at them.
fn phase_outcome(r: &Report, p: &Phase) -> Outcome {
    match p.status {
        Status::Pass => Outcome::Pass,
        Status::Skipped => Outcome::Skip {
            why: p.detail.clone(),
            detail: None,
        },
        Status::Fail => {
            let elsewhere = match p.name {
                PhaseId::Checklist if r.checklist.iter().any(|c| c.status == Status::Fail) => {
                    Some("the failing items of the checklist (pgdrill.checklist)")
                }
                PhaseId::NegativeControls
                    if r.detection.as_ref().is_some_and(|d| {
                        d.controls
                            .iter()
                            .any(|c| c.outcome == ControlOutcome::Missed)
                    }) =>
                {
                    Some("the missed negative controls (pgdrill.controls)")
                }
                PhaseId::Rpo
                    if r.rpo
                        .as_ref()
                        .is_some_and(|o| o.verdict == RpoVerdict::Fail) =>
                {
                    Some("the recovery point objective (pgdrill.objectives, rpo)")
                }
                _ => None,
            };
            match elsewhere {
                Some(there) => Outcome::Skip {
                    why: format!("not a failure of its own: it is reported as {there}"),
                    detail: Some(p.detail.clone()),
                },
                None => Outcome::Fail {
                    ty: r
                        .failure
                        .as_ref()
                        .filter(|f| f.phase == FailedAt::Phase(p.name))
                        .map(|f| f.class.as_str().to_string()),
                    detail: p.detail.clone(),
                },
            }
        }
    }
}

/// The phases whose time counts against `budget` (all of them for the total).
fn in_budget(r: &Report, budget: BudgetName) -> Vec<PhaseId> {
    r.phases
        .iter()
        .filter(|p| match budget {
            BudgetName::Total => p.budget.is_some(),
            b => p.budget == Some(b),
        })
        .map(|p| p.name)
        .collect()
}

/// A budget's case: a failure only when its time ran out.
fn budget_outcome(r: &Report, b: &super::BudgetResult) -> Outcome {
    let used = format!(
        "{} used {} of its {} budget",
        b.name.as_str(),
        super::markdown::secs(b.used_ms),
        super::markdown::secs(b.limit_ms)
    );
    let origin = failed_among(r, &in_budget(r, b.name)).or(match r.failure.as_ref() {
        Some(super::Failure {
            phase: FailedAt::Phase(p),
            ..
        }) => Some(*p),
        _ => None,
    });
    match b.verdict {
        BudgetVerdict::Pass => Outcome::Pass,
        BudgetVerdict::Fail => Outcome::Fail {
            ty: Some(super::FailureClass::BudgetExceeded.as_str().into()),
            detail: format!(
                "{} took {} but the budget is {}",
                b.name.as_str(),
                super::markdown::secs(b.used_ms),
                super::markdown::secs(b.limit_ms)
            ),
        },
        // Unfinished or not run: no failure of its own; the phase that stopped it is one.
        // Skipped by design (no application): its reason, not a failure elsewhere.
        BudgetVerdict::Skipped
            if !b
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with(super::BudgetResult::NONE_RAN)) =>
        {
            Outcome::Skip {
                why: format!(
                    "skipped: {}",
                    b.reason.as_deref().unwrap_or(super::BudgetResult::NONE_RAN)
                ),
                detail: Some(used),
            }
        }
        BudgetVerdict::Incomplete | BudgetVerdict::Skipped => Outcome::Skip {
            why: match origin {
                Some(p) => format!("{}: {}", b.verdict.as_str(), follows_from(p)),
                None => format!(
                    "{}: {}",
                    b.verdict.as_str(),
                    b.reason.as_deref().unwrap_or("its phases did not all run")
                ),
            },
            detail: Some(match &b.reason {
                Some(r) => format!("{used}; {r}"),
                None => used,
            }),
        },
    }
}

/// A checklist item's case: a failing item decided by a phase that failed is that phase's
/// fault, not one more.
fn item_outcome(r: &Report, item: CheckItem, status: Status, evidence: &str) -> Outcome {
    match status {
        Status::Pass => Outcome::Pass,
        Status::Skipped => Outcome::Skip {
            why: evidence.to_string(),
            detail: None,
        },
        Status::Fail => match failed_among(r, item.decided_by()) {
            Some(p) => Outcome::Skip {
                why: format!("not a failure of its own: {}", follows_from(p)),
                detail: Some(evidence.to_string()),
            },
            None => Outcome::Fail {
                ty: Some(super::FailureClass::ChecklistFailed.as_str().into()),
                detail: evidence.to_string(),
            },
        },
    }
}

/// The drill's record on every suite: what a CI tool shows beside the results.
fn properties(r: &Report) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("drill_id", r.drill_id.clone()),
        (
            "verdict",
            match r.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "fail",
                Verdict::Error => "error",
            }
            .to_string(),
        ),
        ("backend", r.environment.backend.to_string()),
        ("server_version", r.environment.server_version.clone()),
        ("pgdrill_version", r.environment.pgdrill_version.clone()),
        ("source", r.source.kind.as_str().to_string()),
    ];
    if let Some(b) = &r.backup {
        v.push(("backup_file", b.file.clone()));
        v.push(("backup_sha256", b.sha256.clone()));
    }
    v
}

/// A suite with the drill's start and record; `timed`: its time is its cases' (the budgets
/// overlap, so theirs is not added up).
fn suite(r: &Report, name: &str, cases: Vec<TestCase>, timed: bool) -> TestSuite {
    let mut s = TestSuite::new(name.to_string());
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&r.started_at) {
        s.set_timestamp(t);
    }
    for (k, v) in properties(r) {
        s.add_property((k, v.as_str()));
    }
    if timed {
        s.set_time(cases.iter().filter_map(|c| c.time).sum());
    }
    s.add_test_cases(cases);
    s
}

/// Renders the report as JUnit XML (Jenkins' junit-10.xsd; see the module docs for the test
/// identities). A drill that could not run (`Verdict::Error`, exit 3) reports its faults as
/// `<error>`, one that ran and did not pass as `<failure>`, so CI tells a broken machine from
/// a broken backup.
pub fn render(r: &Report) -> String {
    let kind = match r.verdict {
        Verdict::Error => NonSuccessKind::Error,
        Verdict::Pass | Verdict::Fail => NonSuccessKind::Failure,
    };
    let phases = r
        .phases
        .iter()
        .map(|p| {
            let class = p.budget.map_or(NO_BUDGET, |b| b.as_str());
            case(
                p.name.name(),
                class,
                phase_outcome(r, p),
                Some(p.duration_ms),
                kind,
            )
        })
        .collect();
    let mut objectives: Vec<TestCase> = r
        .budgets
        .iter()
        .map(|b| {
            let mut c = case(b.name.as_str(), "budgets", budget_outcome(r, b), None, kind);
            c.set_time(Duration::from_millis(b.used_ms));
            c
        })
        .collect();
    if let Some(p) = &r.rpo {
        let detail = format!("{}\n{}", super::markdown::rpo_line(p), p.note);
        let outcome = match p.verdict {
            RpoVerdict::Pass => Outcome::Pass,
            RpoVerdict::Fail => Outcome::Fail {
                ty: Some(super::FailureClass::RpoExceeded.as_str().into()),
                detail,
            },
        };
        objectives.push(case("objective", "rpo", outcome, None, kind));
    }
    let controls = r
        .detection
        .iter()
        .flat_map(|d| &d.controls)
        .map(|c| {
            let outcome = match c.outcome {
                ControlOutcome::Detected => Outcome::Pass,
                ControlOutcome::Missed => Outcome::Fail {
                    ty: Some(super::FailureClass::DetectionFailed.as_str().into()),
                    detail: format!(
                        "{} was not detected: injected {}; expected {}, produced {}\n{}",
                        c.control.name(),
                        c.injected,
                        c.expected,
                        c.produced
                            .map_or("nothing (the check passed)".to_string(), |p| p.to_string()),
                        c.detail
                    ),
                },
                ControlOutcome::NotApplicable => Outcome::Skip {
                    why: format!("not applicable: {}", c.detail),
                    detail: None,
                },
            };
            case(
                c.control.name(),
                "controls",
                outcome,
                Some(c.duration_ms),
                kind,
            )
        })
        .collect();
    let checklist = r
        .checklist
        .iter()
        .map(|c| {
            let outcome = item_outcome(r, c.item, c.status, &c.evidence);
            case(c.item.title(), "checklist", outcome, None, kind)
        })
        .collect();
    let mut junit = JUnit::new("pgdrill");
    junit.add_test_suites([
        suite(r, "pgdrill.phases", phases, true),
        suite(r, "pgdrill.objectives", objectives, false),
        suite(r, "pgdrill.controls", controls, true),
        suite(r, "pgdrill.checklist", checklist, false),
    ]);
    let xml = junit.to_string().unwrap_or_default();
    without_root_skipped(xml, junit.skipped)
}

/// Jenkins' junit-10.xsd (what its xunit plugin validates against) has no `skipped` on the
/// `<testsuites>` root, which quick-junit always writes; each `<testsuite>` keeps its count.
fn without_root_skipped(xml: String, skipped: usize) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml;
    };
    let end = xml[start..].find('>').map_or(xml.len(), |e| start + e);
    let attr = format!(" skipped=\"{skipped}\"");
    match xml[start..end].find(&attr) {
        Some(at) => {
            let at = start + at;
            format!("{}{}", &xml[..at], &xml[at + attr.len()..])
        }
        None => xml,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_the_whole_first_line_and_a_list_s_first_item() {
        assert_eq!(message("one line"), "one line");
        let long = "x".repeat(500);
        assert_eq!(message(&long), long, "never cut");
        assert_eq!(
            message("2 difference(s):\npublic.users: rows 300 → 299\npublic.payments: differs"),
            "2 difference(s): public.users: rows 300 → 299"
        );
        assert_eq!(message("\n\nsecond"), "second");
        assert_eq!(message(""), "failed");
    }

    #[test]
    fn only_the_root_s_skipped_count_is_dropped() {
        let xml = "<?xml?>\n<testsuites name=\"pgdrill\" tests=\"3\" skipped=\"2\" failures=\"0\">\n<testsuite name=\"a\" skipped=\"2\">".to_string();
        assert_eq!(
            without_root_skipped(xml, 2),
            "<?xml?>\n<testsuites name=\"pgdrill\" tests=\"3\" failures=\"0\">\n<testsuite name=\"a\" skipped=\"2\">"
        );
    }
}
