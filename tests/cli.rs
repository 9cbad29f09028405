//! Bad input gets a clear message and the contract's exit code.

use rstest::rstest;

use crate::support::Pgdrill;

#[rstest]
#[case::unknown_flag(&["drill", "--no-such-flag"], "--no-such-flag")]
#[case::bad_duration(&["drill", "--budget-restore", "soon"], "15m")]
#[case::zero_rows(&["drill", "--rows", "0"], "--rows must be a whole number ≥ 1")]
#[case::zero_jobs(&["drill", "--jobs", "0"], "--jobs must be at least 1")]
#[case::bad_backend(&["drill", "--backend", "cloud"], "native")]
#[case::two_sources(&["drill", "--source-dsn", "host=x", "--backup-file", "/x.dump"], "cannot be used with")]
#[case::app_image_on_native(&["drill", "--backend", "native", "--app-image", "shop:1", "--app-health-url", "/health"], "use --backend docker")]
#[case::app_image_with_a_full_url(&["drill", "--app-image", "shop:1", "--app-health-url", "http://127.0.0.1:8080/health"], "paths on its port")]
#[case::app_image_without_health(&["drill", "--app-image", "shop:1"], "--app-health-url")]
#[case::missing_plan(&["drill", "--plan", "/nonexistent/weekly.toml"], "--plan /nonexistent/weekly.toml: cannot read it")]
#[case::drop_db_on_source(&["drill", "--source-dsn", "host=127.0.0.1 dbname=prod", "--disaster", "drop-db"], "never writes to the source")]
fn usage_errors_exit_2(#[case] args: &[&str], #[case] says: &str) {
    assert_usage_error(Pgdrill::new(args.iter().copied()).run(), says);
}

/// Exit 2, `says` in the output, and no drill started.
fn assert_usage_error(run: crate::support::Run, says: &str) {
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(
        run.text().contains(says),
        "expected {says:?} in:\n{}",
        run.text()
    );
    assert!(run.report.is_none(), "no drill may start on a usage error");
}

#[test]
fn missing_postgres_binaries_is_an_environment_error() {
    let bin = tempfile::tempdir().unwrap();
    let run = Pgdrill::drill(["--backend", "native"])
        .env("PATH", bin.path().to_str().unwrap())
        .env("PGDRILL_PG_BINDIR", bin.path().to_str().unwrap())
        .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    assert!(
        run.text().contains("apt-get install postgresql"),
        "{}",
        run.text()
    );
    let r = run.report();
    assert_eq!(r["verdict"], "error");
    assert_eq!(r["failure"]["phase"], "provision");
    assert_eq!(r["failure"]["class"], "environment");
    // junit.xml tells CI the drill could not run (an error), not that the backup failed.
    let junit = std::fs::read_to_string(run.out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("<error") && !junit.contains("<failure"),
        "{junit}"
    );
}

#[test]
fn pg_dump_older_than_the_server_is_refused_with_both_versions() {
    // A bin dir with the real programs, except a pg_dump that reports an old major version.
    let real = String::from_utf8(
        std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let real = std::path::Path::new(real.trim());
    let bin = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(real).unwrap().flatten() {
        if entry.file_name() != "pg_dump" {
            std::os::unix::fs::symlink(entry.path(), bin.path().join(entry.file_name())).unwrap();
        }
    }
    let fake = bin.path().join("pg_dump");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = Pgdrill::drill(["--backend", "native"])
        .env("PGDRILL_PG_BINDIR", bin.path().to_str().unwrap())
        .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let r = run.report();
    assert_eq!(r["failure"]["phase"], "backup");
    let msg = r["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("9.6.24") && msg.contains("15."), "{msg}");
}

/// A plan file's keys are the long flags; the command line wins over the file; the report
/// names the file and the hash of what was read.
#[test]
fn a_plan_file_supplies_flags_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("drill.toml");
    std::fs::write(
        &plan,
        "# a small drill\nbackend = \"native\"\nrows = 5000\nseed = 9\ndisaster = \"drop-db\"\napp = \"none\"\nbudget_restore = \"10m\"\n",
    )
    .unwrap();
    let run = Pgdrill::drill(["--plan", plan.to_str().unwrap(), "--budget-verify", "7m"]).run();
    let r = run.assert_pass();
    // --rows from Pgdrill::drill (the command line) beat the file's 5000; the rest is the file's.
    assert_eq!(r["source"]["rows"].to_string(), crate::support::ROWS);
    assert_eq!(r["source"]["seed"], 9);
    assert_eq!(r["disaster"]["kind"], "drop-db", "{}", r["disaster"]);
    let budget = |n: &str| {
        r["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == n)
            .unwrap()["limit_ms"]
            .clone()
    };
    assert_eq!(budget("database_restore"), 600_000);
    assert_eq!(budget("verification"), 420_000);
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("plan file") && notes.contains("sha256"),
        "{notes}"
    );
}

#[rstest]
#[case::unknown_key("rowz = 10\n", "unknown key `rowz`")]
#[case::bad_toml("rows = \n", "not valid TOML")]
#[case::table_value("observe = { seconds = 3 }\n", "`observe`: expected a string")]
#[case::bad_value("disaster = \"flood\"\n", "flood")]
fn a_bad_plan_file_is_a_usage_error_naming_the_key(#[case] text: &str, #[case] says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.toml");
    std::fs::write(&plan, text).unwrap();
    assert_usage_error(
        Pgdrill::new(["drill", "--plan", plan.to_str().unwrap()]).run(),
        says,
    );
}

/// What a source on this port answers: nothing listens there.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every input that can be checked before a server is provisioned is: the message names the
/// input and the fix, the exit code is 2, and nothing was started (the drill's private TMPDIR
/// stays empty, no process runs from it, no event was written).
#[rstest]
#[case::missing_backup_file(&["--backup-file", "/nonexistent/backup_20260101_000000.dump"], &["--backup-file /nonexistent/backup_20260101_000000.dump: cannot read it", "pg_dump -Fc"])]
#[case::negative_rows(&["--rows", "-5"], &["--rows must be a whole number ≥ 1", "got -5"])]
#[case::words_for_rows(&["--rows", "many"], &["--rows must be a whole number ≥ 1", "got many"])]
#[case::missing_repo(&["--repo", "/nonexistent/repo"], &["--repo /nonexistent/repo: no such directory", "pgdrill backup"])]
#[case::unreachable_source(&["--source-dsn", "postgresql://postgres:secret-pw@127.0.0.1:PORT/shop"], &["--source-dsn postgresql://postgres:***@127.0.0.1:", "cannot connect", "Nothing was started", "start the source server"])]
fn bad_input_is_refused_before_anything_is_provisioned(
    #[case] args: &[&str],
    #[case] says: &[&str],
) {
    let port = closed_port().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("PORT", &port)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let mut all = vec![
        "--backend".to_string(),
        "native".into(),
        "--app".into(),
        "none".into(),
    ];
    all.extend(args);
    let run = Pgdrill::drill(all)
        .env("TMPDIR", tmp.path().to_str().unwrap())
        .run();
    assert_nothing_started(&run, tmp.path());
    for s in says {
        assert!(run.text().contains(s), "expected {s:?} in:\n{}", run.text());
    }
    assert!(!run.text().contains("secret-pw"), "{}", run.text());
}

/// An empty directory is no repository: `drill --repo` says so before provisioning.
#[test]
fn a_directory_that_is_no_repo_is_refused_before_anything_is_provisioned() {
    let (tmp, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--repo",
        empty.path().to_str().unwrap(),
    ])
    .env("TMPDIR", tmp.path().to_str().unwrap())
    .run();
    assert_nothing_started(&run, tmp.path());
    assert!(
        run.text().contains("not a backup repository"),
        "{}",
        run.text()
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing is written into it"
    );
}

/// Exit 2, no report, no event, and no trace of a server: nothing in `tmp` (the run's TMPDIR,
/// where servers would live) and no process naming it.
fn assert_nothing_started(run: &crate::support::Run, tmp: &std::path::Path) {
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(run.report.is_none(), "no report: {}", run.text());
    let events = crate::support::events(run.out.path());
    assert!(
        !events.iter().any(|e| e["phase"] == "provision"),
        "{events:?}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgdrill-"))
        .collect();
    assert!(left.is_empty(), "provisioned before refusing: {left:?}");
    let tmp = tmp.display().to_string();
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&tmp))
        .collect();
    assert!(procs.is_empty(), "{procs:?}");
}
