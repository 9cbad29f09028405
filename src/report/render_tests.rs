//! The `rpo` and `detection` sections in every rendering: report.json (absent when there is
//! none), report.md, the summary, junit.xml and report.html; and report.html as a page: its
//! timeline read back as SVG, the failure box, the sign-off.

use std::collections::BTreeMap;

use serde_json::Value;

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
        archive_timeout_ms: None,
    }
}

/// A small report; `rpo` decides the section under test.
fn report(rpo: Option<RpoReport>) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        drill_id: "d-1".into(),
        kind: crate::report::ReportKind::Drill,
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
            location: None,
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
        contacts: vec![],
        warnings: vec![],
        notifications: vec![],
        restore: None,
        config_restore: None,
        server_settings: None,
        pitr: None,
        forecast: None,
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
        budget(
            BudgetName::Verification,
            1000,
            20,
            BudgetVerdict::Incomplete,
        ),
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

// report.html as a page: the timeline's geometry (read back from the SVG as XML), the failure
// box and the sign-off block.

/// One phase of report.json.
fn phase_json(name: &str, budget: Option<&str>, status: &str, start: u64, ms: u64) -> Value {
    serde_json::json!({
        "name": name, "budget": budget, "status": status,
        "started_ms": start, "duration_ms": ms, "detail": format!("{name} detail"),
    })
}

/// A failed drill with an application, as report.json has it, with `record` added by hand:
/// verification's phases come before and after the application's restart (4.567 s used over
/// 6.77 s), the failure message has two lines.
fn page_fixture() -> Value {
    let mut v = serde_json::to_value(report(None)).unwrap();
    let (db, app, verify) = (
        Some("database_restore"),
        Some("app_restart"),
        Some("verification"),
    );
    let mut at = 0;
    let phases: Vec<Value> = [
        ("provision", None, "pass", 6_600),
        ("seed", None, "pass", 1_400),
        ("app_start", None, "pass", 1_200),
        ("backup", None, "pass", 230),
        ("disaster", None, "pass", 5_570),
        ("stop_app", db, "pass", 120),
        ("precheck", db, "pass", 28),
        ("roles", db, "pass", 140),
        ("createdb", db, "pass", 1_000),
        ("pg_restore", db, "pass", 693),
        ("analyze", db, "pass", 442),
        ("snapshot", verify, "pass", 2_000),
        ("compare", verify, "fail", 300),
        ("amcheck", verify, "pass", 1_000),
        ("negative_controls", None, "pass", 1_100),
        ("start_app", app, "pass", 1_000),
        ("app_healthy", app, "pass", 103),
        ("observe_app", verify, "pass", 1_067),
        ("checklist", verify, "fail", 200),
    ]
    .into_iter()
    .map(|(name, budget, status, ms)| {
        let p = phase_json(name, budget, status, at, ms);
        at += ms;
        p
    })
    .collect();
    v["phases"] = phases.into();
    v["budgets"] = serde_json::json!([
        {"name": "database_restore", "limit_ms": 900_000, "used_ms": 2_423, "verdict": "pass"},
        {"name": "app_restart", "limit_ms": 300_000, "used_ms": 1_103, "verdict": "pass"},
        {"name": "verification", "limit_ms": 5_000, "used_ms": 4_567, "verdict": "pass"},
        {"name": "total", "limit_ms": 1_800_000, "used_ms": 8_093, "verdict": "pass"},
    ]);
    v["verdict"] = "fail".into();
    v["failure"] = serde_json::json!({
        "phase": "compare",
        "class": "integrity_mismatch",
        "message": "1 difference(s):\npublic.users: fingerprint 8840a1a5134d… → 7790bda7d488… (same row count, different content)",
    });
    v["record"] = serde_json::json!({
        "operator": "alice@db-host",
        "approver": "Bob Auditor",
        "ticket": "CHG-1234",
        "purpose": "quarterly restore test",
        "environment": "staging",
        "next_scheduled_test": "2027-03-01",
        "ci_run_url": "https://ci.example/runs/77",
        "pgdrill_commit": "303a5d7",
        "issues_found": ["the app took 1 s to answer its first health check"],
    });
    v
}

/// `report` with every phase's and budget's times multiplied by `k`.
fn scaled(report: &Value, k: f64) -> Value {
    let mut v = report.clone();
    let times = |o: &mut Value, keys: &[&str]| {
        for key in keys {
            o[*key] = ((o[*key].as_u64().unwrap() as f64 * k).round() as u64).into();
        }
    };
    for p in v["phases"].as_array_mut().unwrap() {
        times(p, &["started_ms", "duration_ms"]);
    }
    for b in v["budgets"].as_array_mut().unwrap() {
        times(b, &["used_ms"]);
    }
    v
}

/// The `<svg id="timeline">` element of report.html.
fn timeline_svg(html: &str) -> &str {
    let start = html.find("<svg id=\"timeline\"").expect("the timeline");
    let end = start + html[start..].find("</svg>").expect("its end") + "</svg>".len();
    &html[start..end]
}

/// What a reader sees in the timeline, read back from its SVG.
#[derive(Debug)]
struct Drawn {
    /// The axis's tick labels: value and unit.
    ticks: Vec<(f64, f64, String)>,
    /// Phase and budget rectangles by name: `(x, width)`.
    phases: BTreeMap<String, (f64, f64)>,
    bands: BTreeMap<String, (f64, f64)>,
}

fn read_timeline(svg: &str) -> Drawn {
    let doc = roxmltree::Document::parse(svg)
        .unwrap_or_else(|e| panic!("the timeline is well-formed SVG: {e}\n{svg}"));
    let num = |n: roxmltree::Node, a: &str| -> f64 {
        n.attribute(a)
            .unwrap_or_else(|| panic!("{a} on {n:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("{a} of {n:?}: {e}"))
    };
    let class = |n: &roxmltree::Node, c: &str| {
        n.attribute("class")
            .is_some_and(|v| v.split_whitespace().any(|x| x == c))
    };
    let ticks = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && class(n, "tick"))
        .map(|n| {
            let label = n.text().unwrap_or_default();
            let (value, unit) = label
                .split_once(' ')
                .unwrap_or_else(|| panic!("a tick is a number and a unit: {label:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("tick {label:?}: {e}"));
            (num(n, "x"), value, unit.to_string())
        })
        .collect();
    let rects = |attr: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name("rect"))
            .filter_map(|n| {
                let name = n.attribute(attr)?.to_string();
                Some((name, (num(n, "x"), num(n, "width"))))
            })
            .collect::<BTreeMap<_, _>>()
    };
    Drawn {
        ticks,
        phases: rects("data-phase"),
        bands: rects("data-budget"),
    }
}

/// Coordinates are rounded to a tenth of a unit; a start plus a width to two of them.
const PX: f64 = 0.1 + 1e-9;

/// Checks report.html's timeline for `report`: round ticks in one unit; every phase and every
/// budget band drawn to the scale the ticks set, a band exactly as long as the time it used;
/// no two budget bands (the total apart) over the same moment, none before its first phase.
/// Returns the axis unit.
fn check_timeline(report: &Value) -> String {
    let html = html::render(report);
    let d = read_timeline(timeline_svg(&html));
    let ctx = || format!("{d:#?}");
    assert!(d.ticks.len() >= 3, "at least 3 ticks: {}", ctx());
    let unit = d.ticks[0].2.clone();
    assert!(
        d.ticks.iter().all(|t| t.2 == unit),
        "one unit on the axis: {}",
        ctx()
    );
    let unit_ms = match unit.as_str() {
        "ms" => 1.0,
        "s" => 1_000.0,
        "min" => 60_000.0,
        other => panic!("unit {other:?} is not ms, s or min"),
    };
    assert_eq!(d.ticks[0].1, 0.0, "the axis starts at 0: {}", ctx());
    let step = d.ticks[1].1;
    let mantissa = step / 10f64.powf(step.log10().floor());
    assert!(
        [1.0, 2.0, 5.0, 10.0]
            .iter()
            .any(|m: &f64| (mantissa - m).abs() < 1e-6),
        "a round step (1, 2 or 5 × 10ⁿ), not {step}: {}",
        ctx()
    );
    for (k, t) in d.ticks.iter().enumerate() {
        assert!(
            (t.1 - k as f64 * step).abs() < step * 1e-6,
            "tick {k} is {k} steps of {step}: {}",
            ctx()
        );
    }
    let origin = d.ticks[0].0;
    let last = d.ticks.last().unwrap();
    // Pixels per millisecond, as the axis sets it.
    let scale = (last.0 - origin) / (last.1 * unit_ms);
    for t in &d.ticks {
        assert!(
            (t.0 - (origin + t.1 * unit_ms * scale)).abs() <= 2.0 * PX,
            "ticks evenly spaced: {}",
            ctx()
        );
    }
    let mut end = 0.0f64;
    for p in report["phases"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let (x, w) = d.phases[name];
        let (start, ms) = (
            p["started_ms"].as_u64().unwrap() as f64,
            p["duration_ms"].as_u64().unwrap() as f64,
        );
        assert!(
            (x - (origin + start * scale)).abs() <= PX,
            "{name} drawn from its start"
        );
        // A phase too short to see is drawn as a sliver of 1.5.
        let want = (ms * scale).max(1.5);
        assert!(
            (w - want).abs() <= PX,
            "{name}: {ms} ms drawn {w} wide, want {want}"
        );
        end = end.max(x + w);
    }
    let mut groups = Vec::new();
    for b in report["budgets"].as_array().unwrap() {
        let name = b["name"].as_str().unwrap();
        let (x, w) = d.bands[name];
        let used = b["used_ms"].as_u64().unwrap() as f64;
        assert!(
            (w - used * scale).abs() <= PX,
            "band {name}: {used} ms used, drawn {w} wide, want {}",
            used * scale
        );
        let first = report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["budget"]
                    .as_str()
                    .is_some_and(|pb| name == "total" || pb == name)
            })
            .map(|p| d.phases[p["name"].as_str().unwrap()].0)
            .fold(f64::INFINITY, f64::min);
        assert!(
            x >= first - PX,
            "band {name} starts at its first phase or later"
        );
        end = end.max(x + w);
        if name != "total" {
            groups.push((x, x + w, name));
        }
    }
    groups.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in groups.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0 + 2.0 * PX,
            "band {} ends at {} after band {} starts at {}: they overlap",
            pair[0].2,
            pair[0].1,
            pair[1].2,
            pair[1].0
        );
    }
    assert!(
        last.0 >= end - 2.0 * PX,
        "the last tick covers every phase and band"
    );
    unit
}

#[test]
fn the_timeline_draws_used_time_to_scale_on_round_ticks_in_one_unit() {
    let page = page_fixture();
    // Verification used 4.567 s between 17.4 s and 24.2 s: drawn 4.567 s long, not 6.77 s.
    assert_eq!(check_timeline(&page), "s");
    // The same drill shorter and longer: each unit of the axis, and its boundaries.
    let mut units = Vec::new();
    for k in [0.01, 0.05, 0.0826, 0.1, 0.5, 2.0, 4.9, 5.0, 40.0, 500.0] {
        units.push(check_timeline(&scaled(&page, k)));
    }
    for unit in ["ms", "s", "min"] {
        assert!(units.iter().any(|u| u == unit), "{unit} tested: {units:?}");
    }
    // The smallest report: one phase, no budget.
    check_timeline(&serde_json::to_value(report(None)).unwrap());
    let html = html::render(&page);
    insta::assert_snapshot!("timeline_svg", timeline_svg(&html));
}

#[test]
fn the_failure_box_keeps_the_message_lines() {
    let html = html::render(&page_fixture());
    let start = html
        .find("<div class=\"failure\"")
        .expect("the failure box");
    let end = start + html[start..].find("</header>").unwrap();
    insta::assert_snapshot!("failure_box", &html[start..end]);
    let css = html::environment()
        .get_template("style.css")
        .unwrap()
        .render(())
        .unwrap();
    assert!(
        css.contains(".failure .message { white-space: pre-wrap;"),
        "the message's newlines are shown: {css}"
    );
}

/// The sign-off section of report.html.
fn signoff(report: &Value) -> String {
    let html = html::render(report);
    let start = html
        .find("<section aria-labelledby=\"h-signoff\"")
        .expect("the sign-off section");
    let end = start + html[start..].find("</section>").unwrap();
    assert!(
        html[end..].find("<section").is_none(),
        "the sign-off is the page's last section"
    );
    html[start..end].to_string()
}

#[test]
fn the_sign_off_names_the_operator_and_approver_with_empty_lines() {
    let page = page_fixture();
    let with = signoff(&page);
    insta::assert_snapshot!("signoff_record", &with);
    assert!(
        with.contains("<div class=\"value\">alice@db-host</div>"),
        "{with}"
    );
    assert!(
        with.contains("<div class=\"value\">Bob Auditor</div>"),
        "{with}"
    );
    assert_eq!(
        with.matches("<div class=\"value\"></div>").count(),
        4,
        "{with}"
    );
    let html = html::render(&page);
    assert!(
        !html.contains("<section class=\"extra\">"),
        "record is not also shown as raw JSON"
    );
    // No approver yet: a blank line to write one on.
    let mut page = page_fixture();
    page["record"]["approver"] = Value::Null;
    let blank = signoff(&page);
    assert_eq!(
        blank.matches("<div class=\"value\"></div>").count(),
        5,
        "{blank}"
    );
    // A report.json from before `record`: who ran it is the operator.
    let mut old = serde_json::to_value(report(None)).unwrap();
    old.as_object_mut().unwrap().remove("record");
    let fallback = signoff(&old);
    insta::assert_snapshot!("signoff_without_record", &fallback);
    assert!(
        fallback.contains("<div class=\"value\">tester</div>"),
        "{fallback}"
    );
    assert_eq!(fallback.matches("<div class=\"value\"></div>").count(), 5);
}

/// The restore target's settings: a table beside the RTO in report.md and report.html, one
/// line on the console, and fsync off as a warning everywhere; absent, nothing changes.
#[test]
fn the_restore_target_s_settings_beside_the_rto_and_fsync_off_warned() {
    use crate::pg::settings::{Effective, ServerSettings, SettingOrigin};
    let mut asked = ServerSettings::default();
    asked.set("fsync".into(), "off".into(), SettingOrigin::ServerSetting);
    asked.adopt_copied(
        vec![("maintenance_work_mem".into(), "1024MB".into())],
        "postgresql://ro:***@db.internal/postgres".into(),
    );
    let seen = |name: &str, value: &str, source: &str| Effective {
        name: name.into(),
        value: value.into(),
        source: source.into(),
    };
    let info = ServerSettingsInfo::of(
        vec![
            seen("fsync", "off", "command line"),
            seen("shared_buffers", "128MB", "default"),
            seen("maintenance_work_mem", "1GB", "command line"),
        ],
        &asked,
    );
    let mut r = report(None);
    r.server_settings = Some(info);
    let md = md_named(&r, "## Restore target's settings");
    insta::assert_snapshot!("server_settings_markdown", md);
    let warnings = md_named(&r, "## Warnings");
    assert!(
        warnings.contains("fsync off on the restore target: the measured restore is faster than a durable server's"),
        "{warnings}"
    );
    let summary = r.summary();
    assert!(
        summary
            .contains("restore target: fsync off, shared_buffers 128MB, maintenance_work_mem 1GB"),
        "{summary}"
    );
    assert!(
        summary.contains("  warning: fsync off on the restore target"),
        "{summary}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["server_settings"]["settings"][2]["origin"], "copied");
    assert_eq!(
        json["server_settings"]["settings"][2]["requested"],
        "1024MB"
    );
    let html = html::render(&json);
    assert!(html.contains("id=\"server-settings\""));
    assert!(html.contains("1GB (given as 1024MB)"), "{html}");
    assert!(
        !html.contains("<section class=\"extra\">"),
        "not also raw JSON"
    );
    let warning_box = &html[html.find("id=\"warnings\"").expect("a warning box")..];
    assert!(warning_box.contains("fsync off on the restore target"));
    let none = report(None);
    assert!(!markdown::render(&none).contains("Restore target's settings"));
    assert!(!html::render(&serde_json::to_value(&none).unwrap()).contains("server-settings"));
}
