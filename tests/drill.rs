//! Full drills on the native backend: every phase, budget, table and checklist item reported.

use rstest::rstest;

use crate::support::{leftovers, runtime, Pgdrill, TestServer, Tmpfs};

const PHASES: &[&str] = &[
    "provision",
    "seed",
    "app_start",
    "backup",
    "disaster",
    "stop_app",
    "replace_server",
    "precheck",
    "roles",
    "createdb",
    "pg_restore",
    "analyze",
    "snapshot",
    "compare",
    "amcheck",
    "negative_controls",
    "start_app",
    "app_healthy",
    "observe_app",
    "checklist",
];

#[rstest]
#[case::server_loss("server-loss")]
#[case::drop_db("drop-db")]
fn full_drill_passes_and_reports_everything(#[case] disaster: &str) {
    let run = Pgdrill::drill(["--backend", "native", "--seed", "7", "--disaster", disaster]).run();
    let r = run.assert_pass();

    let names: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    // Only a lost server is replaced.
    let expected: Vec<&str> = PHASES
        .iter()
        .copied()
        .filter(|p| disaster == "server-loss" || *p != "replace_server")
        .collect();
    assert_eq!(names, expected);
    for p in r["phases"].as_array().unwrap() {
        assert_eq!(p["status"], "pass", "phase {}: {}", p["name"], p["detail"]);
    }
    let budgets: Vec<&str> = r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        budgets,
        ["database_restore", "app_restart", "verification", "total"]
    );
    assert!(r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["verdict"] == "pass"));
    assert_eq!(r["budgets"][0]["limit_ms"], 900_000);

    let tables = run.integrity_tables();
    assert_eq!(
        tables,
        [
            "public.payments",
            "public.plans",
            "public.subscriptions",
            "public.users",
            "public.worker_heartbeats"
        ]
    );
    for t in r["integrity"]["tables"].as_array().unwrap() {
        assert_eq!(t["match"], true, "{t}");
        assert_eq!(t["rows_before"], t["rows_after"]);
        assert_eq!(t["fingerprint_before"], t["fingerprint_after"]);
    }
    assert_eq!(r["integrity"]["tables"][3]["rows_after"], 300);
    assert_eq!(r["integrity"]["schema"]["match"], true);
    assert!(r["integrity"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"].as_str().unwrap().starts_with("fk_orphans:")));

    let checklist = r["checklist"].as_array().unwrap();
    assert_eq!(checklist.len(), 10);
    for c in checklist {
        assert_eq!(c["status"], "pass", "{c}");
    }

    assert_eq!(r["source"]["kind"], "generated");
    assert_eq!(r["environment"]["backend"], "native");
    assert!(
        r["environment"]["server_version"]
            .as_str()
            .unwrap()
            .starts_with("15")
            || !r["environment"]["server_version"]
                .as_str()
                .unwrap()
                .is_empty()
    );
    let dump = run.dump();
    let name = dump.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("backup_")
            && name.ends_with(".dump")
            && name.len() == "backup_20260101_000000.dump".len(),
        "{name}"
    );
    assert_eq!(
        r["backup"]["size_bytes"].as_u64().unwrap(),
        std::fs::metadata(&dump).unwrap().len()
    );
    assert_eq!(r["backup"]["sha256"].as_str().unwrap().len(), 64);
    assert!(run.out.path().join("report.md").exists() && run.out.path().join("junit.xml").exists());
    assert!(leftovers(r["drill_id"].as_str().unwrap()).is_empty());
}

#[test]
fn a_budget_that_is_too_small_fails_the_drill() {
    let run = Pgdrill::drill(["--backend", "native", "--budget-restore", "1ms"]).run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["failure"]["class"], "budget_exceeded");
    assert_eq!(r["failure"]["phase"], "database_restore");
    assert_eq!(r["budgets"][0]["verdict"], "fail");
}

#[test]
fn two_drills_at_once_both_pass() {
    let a = Pgdrill::drill(["--backend", "native", "--seed", "1"]).spawn();
    let b = Pgdrill::drill(["--backend", "native", "--seed", "2"]).spawn();
    for (child, out) in [a, b] {
        let output = child.wait_with_output().unwrap();
        let report = crate::support::read_report(out.path()).expect("report");
        assert_eq!(
            (output.status.code(), report["verdict"].as_str()),
            (Some(0), Some("pass")),
            "{}\n{}",
            report["failure"],
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A full disk under the target's data directory during pg_restore is the drill machine's
/// problem, not the backup's: exit 3, class environment, naming the directory and the
/// system's words. The native backend makes its clusters under TMPDIR: a small tmpfs there
/// holds the template and the empty target (about 40 MB each) but not the restored data.
#[test]
fn a_full_disk_during_pg_restore_is_an_environment_error_naming_the_directory() {
    let (server, db) = runtime().block_on(TestServer::with_db(
        "disk-full",
        "bulk",
        "CREATE TABLE bulk AS
         SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v FROM generate_series(1, 600000) g;",
    ));
    let repo = tempfile::tempdir().unwrap();
    let dsn = format!("{} dbname={db}", server.dsn());
    let backup = Pgdrill::new(["backup", "--source-dsn", &dsn, "--repo"])
        .push_arg(repo.path().display().to_string())
        .run();
    assert_eq!(backup.code(), 0, "{}", backup.text());
    drop(server);
    let dump = std::fs::read_dir(repo.path().join("database"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "dump"))
        .expect("a dump in the repo");

    let tmp = Tmpfs::mount("size=110m");
    let run = Pgdrill::native(["--backup-file", dump.to_str().unwrap()])
        .env("TMPDIR", tmp.path().to_str().unwrap())
        .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let f = &run.report()["failure"];
    assert_eq!(
        (f["phase"].as_str(), f["class"].as_str()),
        (Some("pg_restore"), Some("environment")),
        "{f}"
    );
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("No space left on device")
            && msg.contains(&tmp.path().display().to_string())
            && msg.contains("TMPDIR"),
        "{msg}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "the drill left {left:?} on the full disk");
}
