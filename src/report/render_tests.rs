//! The `rpo` and `detection` sections in every rendering: report.json (absent when there is
//! none), report.md, the summary, junit.xml and report.html.

use std::collections::BTreeMap;

use super::*;
use crate::rpo::{IdRange, RpoReport, RpoVerdict};

fn rpo(verdict: RpoVerdict) -> RpoReport {
    RpoReport {
        objective_ms: 900_000,
        achieved_ms: if verdict == RpoVerdict::Pass {
            12_345
        } else {
            912_345
        },
        lost_commits: 17,
        lost_ids: Some(IdRange {
            first: 613,
            last: 629,
        }),
        worst_case_ms: 901_200,
        worst_case_fits: false,
        verdict,
        acknowledged_commits: 629,
        restored_commits: 612,
        in_flight_at_snapshot: 1,
        failed_commits: 1,
        newest_restored_at: Some("2026-12-01T03:00:10.123456Z".into()),
        disaster_at: if verdict == RpoVerdict::Pass {
            "2026-12-01T03:00:22.468456Z"
        } else {
            "2026-12-01T03:15:22.468456Z"
        }
        .into(),
        snapshot_taken: [
            "2026-12-01T03:00:10.120000Z".into(),
            "2026-12-01T03:00:10.124000Z".into(),
        ],
        backup_interval_ms: 900_000,
        backup_duration_ms: 1_200,
        backups_taken: 3,
        rate_per_sec: 50,
        ledger: "pgdrill.rpo_ledger".into(),
        note: crate::rpo::WorstCase {
            interval: std::time::Duration::from_secs(900),
            backup_duration: std::time::Duration::from_millis(1200),
            backups_taken: 3,
        }
        .note(std::time::Duration::from_secs(900)),
    }
}

/// A small report; `rpo` decides the section under test.
fn report(rpo: Option<RpoReport>) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        drill_id: "d-1".into(),
        started_at: "2026-12-01T03:00:00.000Z".into(),
        finished_at: "2026-12-01T03:01:00.000Z".into(),
        verdict: Verdict::Pass,
        failure: None,
        objectives: None,
        record: None,
        environment: Environment {
            backend: crate::env::BackendKind::Native,
            server_version: "PostgreSQL 15".into(),
            tools: BTreeMap::new(),
            pgdrill_version: "0.1.0".into(),
            host: "host".into(),
            run_by: "tester".into(),
        },
        source: SourceInfo {
            kind: super::SourceKind::Generated,
            seed: Some(42),
            rows: Some(300),
            dsn: None,
            database: "shop".into(),
            generated: None,
        },
        backup: None,
        disaster: DisasterInfo {
            kind: super::DisasterKind::ServerLoss,
            detail: "source destroyed".into(),
        },
        phases: vec![Phase {
            name: super::PhaseId::PgRestore,
            budget: Some(BudgetName::DatabaseRestore),
            status: Status::Pass,
            started_ms: 0,
            duration_ms: 1500,
            detail: "restored".into(),
        }],
        budgets: vec![],
        integrity: None,
        rpo,
        scope: None,
        config: None,
        rollback: None,
        detection: None,
        checklist: vec![],
        notes: vec![],
    }
}

/// The `## Recovery point` section of report.md, up to the next section.
fn md_section(r: &Report) -> String {
    md_named(r, "## Recovery point")
}

/// The section of report.md starting with `heading`, up to the next section.
fn md_named(r: &Report, heading: &str) -> String {
    let md = markdown::render(r);
    let start = md.find(heading).expect("the section");
    let end = md[start + 2..]
        .find("\n## ")
        .map_or(md.len(), |e| start + 2 + e);
    md[start..end].to_string()
}

#[test]
fn no_rpo_leaves_every_rendering_as_it_was() {
    let r = report(None);
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("\"rpo\""), "{json}");
    assert!(!markdown::render(&r).contains("Recovery point"));
    assert!(!r.summary().contains("rpo"));
    assert!(!junit::render(&r).contains("\"rpo\""));
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r, "an older report.json still reads");
}

#[test]
fn markdown_summary_and_junit_of_a_passing_rpo() {
    let r = report(Some(rpo(RpoVerdict::Pass)));
    insta::assert_snapshot!("rpo_markdown_pass", md_section(&r));
    insta::assert_snapshot!("rpo_summary_pass", r.summary());
    insta::assert_snapshot!("rpo_junit_pass", junit::render(&r));
    assert!(markdown::step_summary(&r, None).contains("rpo: pass"));
}

#[test]
fn a_failing_rpo_is_a_junit_failure_and_a_drill_failure() {
    let mut r = report(Some(rpo(RpoVerdict::Fail)));
    let f = rpo_failure(r.rpo.as_ref().unwrap()).expect("fails the drill");
    assert_eq!(
        (f.phase.as_str(), f.class),
        ("rpo", FailureClass::RpoExceeded)
    );
    r.verdict = Verdict::Fail;
    r.failure = Some(f);
    insta::assert_snapshot!("rpo_markdown_fail", md_section(&r));
    insta::assert_snapshot!("rpo_junit_fail", junit::render(&r));
    assert!(r.summary().contains("rpo: fail"), "{}", r.summary());
    assert!(rpo_failure(&rpo(RpoVerdict::Pass)).is_none());
}

#[test]
fn report_html_has_an_rpo_section() {
    let r = report(Some(rpo(RpoVerdict::Fail)));
    let value = serde_json::to_value(&r).unwrap();
    let html = html::render(&value);
    let start = html
        .find("<section aria-labelledby=\"h-rpo\">")
        .expect("the section");
    let end = start + html[start..].find("</section>").unwrap();
    insta::assert_snapshot!("rpo_html_fail", &html[start..end]);
    assert!(
        !html.contains("<section class=\"extra\">"),
        "rpo is not also shown as raw JSON"
    );
    let none = html::render(&serde_json::to_value(report(None)).unwrap());
    assert!(!none.contains("h-rpo"));
}

/// Negative controls: three detected, one missed (`missed`), one not applicable.
fn detection(missed: bool) -> Detection {
    use vocab::{Control, ControlOutcome as O};
    let c = |control: Control,
             expected: FailureClass,
             produced: Option<FailureClass>,
             outcome: O,
             ms: u64,
             detail: &str| ControlResult {
        control,
        injected: format!("{control} injected"),
        expected,
        produced,
        outcome,
        duration_ms: ms,
        detail: detail.into(),
    };
    let (row, row_detail) = if missed {
        (
            None,
            "the check passed the damaged copy: 3 tables identical",
        )
    } else {
        (
            Some(FailureClass::IntegrityMismatch),
            "1 difference(s):\npublic.users: rows 300 → 299",
        )
    };
    let row_outcome = if missed { O::Missed } else { O::Detected };
    Detection::of(
        crate::plan::NegativeControls::All,
        vec![
            c(
                Control::RowLost,
                FailureClass::IntegrityMismatch,
                row,
                row_outcome,
                900,
                row_detail,
            ),
            c(
                Control::Truncated,
                FailureClass::BackupUnusable,
                Some(FailureClass::BackupUnusable),
                O::Detected,
                3,
                "backup file x.dump is 50 bytes but its manifest says 100",
            ),
            c(
                Control::ByteFlipped,
                FailureClass::BackupUnusable,
                None,
                O::NotApplicable,
                0,
                "no manifest",
            ),
            c(
                Control::StaleBackup,
                FailureClass::RpoExceeded,
                Some(FailureClass::RpoExceeded),
                O::Detected,
                0,
                "the newest database backup is 16m old",
            ),
        ],
        None,
    )
}

#[test]
fn coverage_counts_the_controls_run_and_none_run_is_no_coverage() {
    let d = detection(true);
    assert_eq!((d.run, d.detected, d.duration_ms), (3, 2, 903));
    assert_eq!(d.coverage_text(), "2/3 (67%)");
    let none = Detection::of(
        crate::plan::NegativeControls::None,
        vec![],
        Some("off".into()),
    );
    assert_eq!((none.run, none.coverage), (0, None));
    assert_eq!(none.coverage_text(), "none run");
}

#[test]
fn the_detection_section_in_markdown_summary_junit_and_html() {
    let mut r = report(None);
    r.detection = Some(detection(false));
    insta::assert_snapshot!("detection_markdown_pass", md_named(&r, "## Detection"));
    assert!(
        r.summary()
            .contains("detection: pass (negative controls all: 3/3"),
        "{}",
        r.summary()
    );
    assert!(markdown::step_summary(&r, None).contains("detection: pass"));
    r.detection = Some(detection(true));
    r.verdict = Verdict::Fail;
    insta::assert_snapshot!("detection_markdown_missed", md_named(&r, "## Detection"));
    assert!(r.summary().contains("missed row_lost"), "{}", r.summary());
    insta::assert_snapshot!("detection_junit_missed", junit::render(&r));
    let html = html::render(&serde_json::to_value(&r).unwrap());
    let start = html
        .find("<section aria-labelledby=\"h-detection\">")
        .expect("the section");
    let end = start + html[start..].find("</section>").unwrap();
    insta::assert_snapshot!("detection_html_missed", &html[start..end]);
    let json = serde_json::to_string(&r).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r, "report.json reads back");
}

/// A report whose integrity section has one sequence restored lower than the source's (safe:
/// still past its column), as pg_dump reading a sequence after the snapshot gives.
fn with_sequence() -> Report {
    let mut r = report(None);
    r.integrity = Some(
        serde_json::from_value(serde_json::json!({
            "basis": "S0",
            "verdict": "pass",
            "tables": [],
            "sequences": [{"name": "public.payments_id_seq", "before": "652972 (called)", "after": "652822 (called)", "match": true}],
            "schema": {"before": null, "after": null, "match": null, "differences": []},
            "checks": []
        }))
        .unwrap(),
    );
    r
}

#[test]
fn a_sequence_is_judged_in_the_same_words_in_markdown_and_html() {
    let r = with_sequence();
    let md = markdown::render(&r);
    let html = html::render(&serde_json::to_value(&r).unwrap());
    for text in [markdown::SEQUENCE_COLUMN, markdown::SEQUENCE_RULE] {
        assert!(md.contains(text), "{text} in report.md");
        // minijinja escapes the apostrophes of the rule.
        assert!(
            html.contains(&text.replace('\'', "&#x27;")),
            "{text} in report.html"
        );
    }
    assert!(!html.contains("Not behind"));
    assert!(md.contains("| public.payments_id_seq | 652972 (called) | 652822 (called) | yes |"));
}

#[test]
fn objectives_of_a_database_drill_without_a_manifest_say_what_is_unknown() {
    let mut r = report(None);
    r.objectives = Some(super::objectives::of(&r, 900_000, None));
    let o = r.objectives.as_ref().unwrap();
    assert_eq!(o.rpo.verdict, super::ObjectiveVerdict::NotMeasured);
    assert_eq!(
        o.rpo.backup_age_verdict,
        super::ObjectiveVerdict::NotMeasured
    );
    assert!(o
        .rpo
        .note
        .contains("RPO: not measured in this drill (database scope)"));
    assert!(o.rpo.note.contains("age is unknown"), "{}", o.rpo.note);
    assert_eq!(o.clock_starts, Some(super::PhaseId::PgRestore));
    insta::assert_snapshot!(
        "objectives_markdown_no_backup",
        md_named(&r, "## Objectives")
    );
}

#[test]
fn objectives_measure_the_backup_age_at_the_disaster() {
    let mut r = report(Some(rpo(RpoVerdict::Fail)));
    r.backup = Some(BackupInfo {
        file: "/backups/database/backup_20261201_024000.dump".into(),
        size_bytes: 1,
        sha256: "ab".into(),
        duration_ms: 0,
        created_at: Some("2026-12-01T02:40:00Z".into()),
        manifest: None,
        globals: None,
        manifest_sha256: None,
        database_size_bytes: None,
        previous: None,
        next: None,
        retention: None,
        repo_last_verify: None,
    });
    let at = crate::duration::parse_time("2026-12-01T03:00:00Z").unwrap();
    r.objectives = Some(super::objectives::of(&r, 900_000, Some(at)));
    let p = &r.objectives.as_ref().unwrap().rpo;
    assert_eq!(p.backup_age_ms, Some(20 * 60_000));
    assert_eq!(p.backup_age_verdict, super::ObjectiveVerdict::Fail);
    assert_eq!(p.verdict, super::ObjectiveVerdict::Fail);
    let issues = super::objectives::issues_found(&r, &["given".into()]);
    assert_eq!(issues[0], "given");
    assert!(issues.iter().any(|i| i.contains("20m old")), "{issues:?}");
}

/// A drill whose compare failed: the data items and the checklist phase that fail only
/// because of it are skipped naming it, a budget not judged after it says why, and a budget
/// whose time ran out is a failure of its own: two faults, two `<failure>`s.
#[test]
fn junit_counts_one_fault_once() {
    let mut r = report(None);
    let phase = |name, budget, status, detail: &str| Phase {
        name,
        budget,
        status,
        started_ms: 0,
        duration_ms: 10,
        detail: detail.into(),
    };
    let diffs = "2 difference(s):\npublic.users: fingerprint differs\npublic.payments: rows 10 → 9";
    r.verdict = Verdict::Fail;
    r.phases = vec![
        phase(PhaseId::Provision, None, Status::Pass, "native server"),
        phase(
            PhaseId::PgRestore,
            Some(BudgetName::DatabaseRestore),
            Status::Pass,
            "restored",
        ),
        phase(
            PhaseId::Compare,
            Some(BudgetName::Verification),
            Status::Fail,
            diffs,
        ),
        phase(
            PhaseId::Checklist,
            Some(BudgetName::Verification),
            Status::Fail,
            "User data integrity verified: public.users: rows 10 → 10; failing: content differs",
        ),
    ];
    r.failure = Some(Failure {
        phase: PhaseId::Compare.into(),
        class: FailureClass::IntegrityMismatch,
        message: diffs.into(),
    });
    let budget = |name, limit_ms, used_ms, verdict| BudgetResult {
        name,
        limit_ms,
        used_ms,
        verdict,
        reason: None,
    };
    r.budgets = vec![
        budget(BudgetName::DatabaseRestore, 5, 10, BudgetVerdict::Fail),
        budget(BudgetName::Verification, 1000, 20, BudgetVerdict::Incomplete),
        budget(BudgetName::Total, 1000, 30, BudgetVerdict::Incomplete),
    ];
    let item = |item, status, evidence: &str| ChecklistItem {
        item,
        status,
        evidence: evidence.into(),
    };
    r.checklist = vec![
        item(CheckItem::DatabaseConnection, Status::Pass, "connected"),
        item(
            CheckItem::UserData,
            Status::Fail,
            "public.users: failing: content differs",
        ),
        item(
            CheckItem::AppHealth,
            Status::Skipped,
            "no application under drill",
        ),
    ];
    let xml = junit::render(&r);
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
    assert!(xml.contains(
        "<failure message=\"2 difference(s): public.users: fingerprint differs\" type=\"integrity_mismatch\">2 difference(s):\npublic.users: fingerprint differs\npublic.payments: rows 10 → 9</failure>"
    ), "{xml}");
    assert!(
        !xml.contains("d-1 "),
        "no drill id in a suite's name: {xml}"
    );
    insta::assert_snapshot!("junit_one_fault_once", xml);
}
