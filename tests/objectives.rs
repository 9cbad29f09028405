//! The report tells an auditor the exact truth: the objectives first, budgets judged on what
//! was measured (never `skipped` after it was), no pass without work, the RTO clock naming
//! what it covers (the replacement server inside it), the record of the exercise and the
//! backup's context.

use serde_json::Value;

use crate::support::{sample_app, synth, Pgdrill};

fn budget<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("budget {name}: {r:#}"))
}

fn phase<'a>(r: &'a Value, name: &str) -> Option<&'a Value> {
    r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
}

#[test]
fn a_database_drill_opens_with_the_objectives_and_says_the_rpo_was_not_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("step-summary.md");
    let run = Pgdrill::native(["--negative-controls", "none"])
        .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
        .run();
    let r = run.assert_pass();

    let rpo = &r["objectives"]["rpo"];
    assert_eq!(rpo["verdict"], "not_measured", "{rpo:#}");
    assert!(rpo["achieved_ms"].is_null(), "{rpo:#}");
    assert_eq!(rpo["objective_ms"], 900_000);
    let age = rpo["backup_age_ms"].as_u64().expect("the backup's age");
    // Backed up moments before the disaster: its age is the drill's own seconds, not zero and
    // not more than the drill's whole run.
    let took = chrono::DateTime::parse_from_rfc3339(r["finished_at"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
    assert!(age < took.num_milliseconds() as u64, "{age} ms vs {took}");
    assert_eq!(rpo["backup_age_verdict"], "pass");
    let note = rpo["note"].as_str().unwrap();
    assert!(
        note.contains("RPO: not measured in this drill (database scope)"),
        "{note}"
    );

    // Every rendering opens with the table: report.md and the step summary before anything else.
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    let objectives = md.find("## Objectives").expect("objectives in report.md");
    assert!(objectives < md.find("## Drill").unwrap(), "{md}");
    assert!(objectives < md.find("## Phases").unwrap(), "{md}");
    for row in [
        "| RTO total | 30m |",
        "| RTO: database restore | 15m |",
        "| RTO: verification | 10m |",
        "| RPO (data lost) | 15m | not measured in this drill | not measured |",
        "| Backup age at the disaster | 15m |",
    ] {
        assert!(md.contains(row), "{row} in\n{md}");
    }
    let step = std::fs::read_to_string(&summary).unwrap();
    assert!(step.contains("| RPO (data lost) |"), "{step}");
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    let h_obj = html
        .find("id=\"h-objectives\"")
        .expect("objectives in report.html");
    assert!(h_obj < html.find("id=\"h-timeline\"").unwrap());
    assert!(html.contains("not measured in this drill"));
}

#[test]
fn without_an_application_nothing_passes_in_no_time() {
    let run = Pgdrill::native(["--negative-controls", "none"]).run();
    let r = run.assert_pass();
    let app = budget(r, "app_restart");
    assert_eq!(app["verdict"], "skipped", "{app:#}");
    assert_eq!(app["reason"], "no application under drill", "{app:#}");
    for p in ["start_app", "app_healthy"] {
        let p = phase(r, p).unwrap();
        assert_eq!(p["status"], "skipped", "{p:#}");
    }
    // Skipped by design: the rest of the recovery was whole, so the total holds.
    assert_eq!(budget(r, "total")["verdict"], "pass");
    // The checklist items that need an application are skipped with it, never passed.
    let app_items = [
        "Application health checks pass",
        "Background workers running",
        "No errors in logs",
        "System state is HEALTHY",
        "Monitoring shows normal metrics",
    ];
    for c in r["checklist"].as_array().unwrap() {
        if app_items.contains(&c["item"].as_str().unwrap()) {
            assert_eq!(c["status"], "skipped", "{c:#}");
        }
    }
}

#[test]
fn a_failed_drill_judges_every_budget_it_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("step-summary.md");
    // Two rows changed: the failure message has a headline and a line per difference.
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--negative-controls",
        "none",
        "--tamper-sql",
        "UPDATE users SET country = 'ZZ' WHERE id IN (2, 3); UPDATE plans SET name = name || 'x'",
    ])
    .env("PGDRILL_SAMPLE_APP", sample_app().to_str().unwrap())
    .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
    .run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["failure"]["class"], "integrity_mismatch");
    for b in r["budgets"].as_array().unwrap() {
        assert_ne!(b["verdict"], "skipped", "measured, so judged: {b:#}");
    }
    // The database was restored whole; verification ran to its end around the failed compare.
    assert_eq!(budget(r, "database_restore")["verdict"], "pass");

    // The app restarted on data that failed the comparison: said beside the restart, in words.
    let start = phase(r, "start_app").unwrap();
    assert_eq!(
        start["status"], "pass",
        "the sample app restarts: {start:#}"
    );
    {
        let d = start["detail"].as_str().unwrap();
        assert!(d.contains("FAILED the integrity comparison"), "{d}");
        let issues = r["record"]["issues_found"].as_array().unwrap();
        assert!(
            issues.iter().any(|i| i
                .as_str()
                .unwrap()
                .contains("FAILED the integrity comparison")),
            "{issues:?}"
        );
    }

    // The step summary holds the whole failure message, never cut.
    let message = r["failure"]["message"].as_str().unwrap();
    assert!(message.lines().count() > 1, "{message}");
    let step = std::fs::read_to_string(&summary).unwrap();
    for line in message.lines() {
        assert!(step.contains(line), "{line:?} in\n{step}");
    }
}

#[test]
fn a_failure_before_verification_leaves_its_budgets_skipped_and_the_total_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    // A dump that is not a dump: precheck refuses it, nothing after it runs.
    let dump = tmp.path().join("backup_20261201_030000.dump");
    std::fs::write(&dump, b"not an archive at all").unwrap();
    let run = Pgdrill::native(["--backup-file", dump.to_str().unwrap()]).run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    let restore = budget(r, "database_restore");
    assert_eq!(restore["verdict"], "incomplete", "{restore:#}");
    let why = restore["reason"].as_str().unwrap();
    assert!(
        why.contains("pg_restore") && why.contains("precheck"),
        "{why}"
    );
    let verify = budget(r, "verification");
    assert_eq!(verify["verdict"], "skipped", "{verify:#}");
    assert!(verify["reason"]
        .as_str()
        .unwrap()
        .starts_with("none of its phases ran"));
    assert_eq!(budget(r, "total")["verdict"], "incomplete");
    // No disaster was played: the clock says the server came before it.
    let clock = r["objectives"]["rto_clock"].as_str().unwrap();
    assert!(
        clock.contains("provisioned before the clock started"),
        "{clock}"
    );
}

#[test]
fn server_loss_counts_the_replacement_server_in_the_rto_clock_and_drop_db_does_not() {
    let run = Pgdrill::native(["--negative-controls", "none"]).run();
    let r = run.assert_pass();
    let replace = phase(r, "replace_server").expect("replace_server in a server-loss drill");
    assert_eq!(replace["budget"], "database_restore");
    assert_eq!(replace["status"], "pass");
    let names: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("disaster") < at("replace_server") && at("replace_server") < at("precheck"));
    // Counted: the database_restore budget includes its time, the precheck that ran beside
    // it counted once.
    let mut spans: Vec<(u64, u64)> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["budget"] == "database_restore")
        .map(|p| {
            let from = p["started_ms"].as_u64().unwrap();
            (from, from + p["duration_ms"].as_u64().unwrap())
        })
        .collect();
    spans.sort_unstable();
    let (mut counted, mut reached) = (0, 0);
    for (from, to) in spans {
        counted += to.saturating_sub(from.max(reached));
        reached = reached.max(to);
    }
    assert_eq!(budget(r, "database_restore")["used_ms"], counted);
    let o = &r["objectives"];
    let clock = o["rto_clock"].as_str().unwrap();
    assert!(clock.contains("replace_server"), "{clock}");
    // Without an application stop_app has nothing to do: the clock starts at the replacement.
    assert_eq!(o["clock_starts"], "replace_server");
    assert_eq!(o["clock_ends"], "checklist");

    let run = Pgdrill::native(["--negative-controls", "none", "--disaster", "drop-db"]).run();
    let r = run.assert_pass();
    assert!(phase(r, "replace_server").is_none());
    let clock = r["objectives"]["rto_clock"].as_str().unwrap();
    assert!(
        clock.contains("The server was not lost (drop-db)"),
        "{clock}"
    );
}

#[test]
fn the_record_of_the_exercise_is_in_every_rendering() {
    let run = Pgdrill::native([
        "--negative-controls",
        "none",
        "--operator",
        "Ada Operator",
        "--approver",
        "Grace Approver",
        "--ticket",
        "CHG-4711",
        "--purpose",
        "monthly full restore test",
        "--environment",
        "staging",
        "--next-test",
        "2027-01-06T03:00:00Z",
        "--issue",
        "the restore host's disk was 91% full",
    ])
    .env("GITHUB_SERVER_URL", "https://github.example")
    .env("GITHUB_REPOSITORY", "team/db")
    .env("GITHUB_RUN_ID", "77")
    .run();
    let r = run.assert_pass();
    let rec = &r["record"];
    assert_eq!(rec["operator"], "Ada Operator");
    assert_eq!(rec["approver"], "Grace Approver");
    assert_eq!(rec["ticket"], "CHG-4711");
    assert_eq!(rec["purpose"], "monthly full restore test");
    assert_eq!(rec["environment"], "staging");
    assert_eq!(rec["next_scheduled_test"], "2027-01-06T03:00:00Z");
    assert_eq!(
        rec["ci_run_url"],
        "https://github.example/team/db/actions/runs/77"
    );
    let commit = rec["pgdrill_commit"]
        .as_str()
        .expect("built from a git checkout");
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
    assert_eq!(
        rec["issues_found"][0],
        "the restore host's disk was 91% full"
    );
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    // minijinja escapes `/` and `'` in text and attributes alike.
    let html = std::fs::read_to_string(run.out.path().join("report.html"))
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'");
    for text in [
        "Ada Operator",
        "Grace Approver",
        "CHG-4711",
        "monthly full restore test",
        "staging",
        "2027-01-06T03:00:00Z",
        "https://github.example/team/db/actions/runs/77",
        "the restore host's disk was 91% full",
    ] {
        assert!(md.contains(text), "{text} in report.md:\n{md}");
        assert!(html.contains(text), "{text} in report.html");
    }

    // Default operator: $USER@host.
    let r2 = Pgdrill::native(["--negative-controls", "none"]).run();
    let op = r2.assert_pass()["record"]["operator"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(op.contains('@'), "{op}");
    assert_eq!(r2.report()["record"]["issues_found"], serde_json::json!([]));
}

#[test]
fn a_bad_next_test_is_a_usage_error() {
    let run = Pgdrill::native(["--next-test", "next tuesday"]).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(run.text().contains("--next-test"), "{}", run.text());
    assert!(run.text().contains("RFC 3339"), "{}", run.text());
}

#[test]
fn the_backup_s_context_names_its_neighbours_retention_and_the_repo_s_last_verify() {
    // Three scheduled backups of one drill: the restored one is the newest, the one before it
    // its previous.
    let first = Pgdrill::native([
        "--negative-controls",
        "none",
        "--backups",
        "2",
        "--backup-every",
        "2s",
    ])
    .run();
    let r = first.assert_pass();
    let b = &r["backup"];
    let file = b["file"].as_str().unwrap();
    assert!(std::path::Path::new(file).is_absolute(), "{file}");
    let prev = b["previous"]["file"].as_str().expect("the earlier backup");
    assert!(
        std::path::Path::new(prev).is_absolute() && prev != file,
        "{prev}"
    );
    assert!(b["previous"]["taken_at"].is_string());
    assert!(b["next"].is_null());
    let manifest = b["manifest"].as_str().unwrap();
    let bytes = std::fs::read(manifest).unwrap();
    assert_eq!(
        b["manifest_sha256"].as_str().unwrap(),
        pgdrill::digest::sha256_hex(&bytes)
    );
    assert!(b["database_size_bytes"].as_u64().unwrap() > 1_000_000);
    let retention = b["retention"].as_str().unwrap();
    assert!(retention.starts_with("kept until"), "{retention}");

    // In a repository: neighbours from its listing, its last verify from the audit log.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let now = chrono::Utc::now();
    let copies = synth(
        std::path::Path::new(file),
        &repo,
        &[
            now - chrono::TimeDelta::minutes(40),
            now - chrono::TimeDelta::minutes(20),
        ],
    );
    let verify = Pgdrill::new(["verify", "--repo", repo.to_str().unwrap()]).run();
    assert!(
        verify.code() == 0 || verify.code() == 1,
        "{}",
        verify.text()
    );
    let run = Pgdrill::native([
        "--negative-controls",
        "none",
        "--repo",
        repo.to_str().unwrap(),
    ])
    .run();
    let r = run.assert_pass();
    let b = &r["backup"];
    assert_eq!(b["previous"]["file"], copies[0].display().to_string());
    assert!(b["next"].is_null(), "the newest was picked");
    let v = b["repo_last_verify"].as_str().unwrap();
    assert!(!v.starts_with("never"), "{v}");
}
