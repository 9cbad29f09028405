//! junit.xml: one test case per phase, per budget, for the recovery point, per negative
//! control and per checklist item, so CI shows what failed.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use super::{Report, Status, Verdict};
use crate::rpo::RpoVerdict;

fn case(name: &str, status: Status, detail: &str, ms: u64, fail: NonSuccessKind) -> TestCase {
    let st = match status {
        Status::Pass => TestCaseStatus::success(),
        Status::Fail => {
            let mut s = TestCaseStatus::non_success(fail);
            s.set_message(detail.lines().next().unwrap_or("failed").to_string());
            s.set_description(detail.to_string());
            s
        }
        Status::Skipped => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(detail.to_string());
            s
        }
    };
    let mut c = TestCase::new(name.to_string(), st);
    c.set_time(Duration::from_millis(ms));
    c
}

/// Renders the report as JUnit XML. A drill that could not run (`Verdict::Error`, exit 3)
/// reports its failed steps as `<error>`, one that ran and did not pass as `<failure>`, so CI
/// tells a broken machine from a broken backup.
pub fn render(r: &Report) -> String {
    let fail = match r.verdict {
        Verdict::Error => NonSuccessKind::Error,
        Verdict::Pass | Verdict::Fail => NonSuccessKind::Failure,
    };
    let mut junit = JUnit::new("pgdrill");
    let mut phases = TestSuite::new(format!("{} phases", r.drill_id));
    for p in &r.phases {
        phases.add_test_case(case(
            p.name.name(),
            p.status,
            &p.detail,
            p.duration_ms,
            fail,
        ));
    }
    for b in &r.budgets {
        use super::BudgetVerdict as B;
        let detail = format!(
            "{}: used {} ms of {} ms{}",
            b.verdict.as_str(),
            b.used_ms,
            b.limit_ms,
            b.reason
                .as_deref()
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        );
        // An unfinished budget is no failure of its own: the phase that stopped it is.
        let status = match b.verdict {
            B::Pass => Status::Pass,
            B::Fail => Status::Fail,
            B::Incomplete | B::Skipped => Status::Skipped,
        };
        phases.add_test_case(case(
            &format!("budget:{}", b.name.as_str()),
            status,
            &detail,
            0,
            fail,
        ));
    }
    if let Some(p) = &r.rpo {
        let status = match p.verdict {
            RpoVerdict::Pass => Status::Pass,
            RpoVerdict::Fail => Status::Fail,
        };
        let detail = format!("{}\n{}", super::markdown::rpo_line(p), p.note);
        phases.add_test_case(case("rpo:objective", status, &detail, 0, fail));
    }
    if let Some(d) = &r.detection {
        for c in &d.controls {
            use super::vocab::ControlOutcome as O;
            let status = match c.outcome {
                O::Detected => Status::Pass,
                O::Missed => Status::Fail,
                O::NotApplicable => Status::Skipped,
            };
            let detail = match c.outcome {
                O::NotApplicable => format!("not applicable: {}", c.detail),
                _ => format!(
                    "injected: {}\nexpected {}, produced {}\n{}",
                    c.injected,
                    c.expected,
                    c.produced
                        .map_or("nothing (the check passed)".to_string(), |p| p.to_string()),
                    c.detail
                ),
            };
            let name = format!("control:{}", c.control.name());
            phases.add_test_case(case(&name, status, &detail, c.duration_ms, fail));
        }
    }
    let mut checklist = TestSuite::new(format!("{} checklist", r.drill_id));
    for c in &r.checklist {
        checklist.add_test_case(case(c.item.title(), c.status, &c.evidence, 0, fail));
    }
    junit.add_test_suite(phases);
    junit.add_test_suite(checklist);
    junit.to_string().unwrap_or_default()
}
