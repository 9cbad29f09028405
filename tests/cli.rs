//! Bad input gets a clear message and the contract's exit code.

use rstest::rstest;

use crate::support::Pgdrill;

#[rstest]
#[case::unknown_flag(&["drill", "--no-such-flag"], "--no-such-flag")]
#[case::bad_duration(&["drill", "--budget-restore", "soon"], "15m")]
#[case::zero_rows(&["drill", "--rows", "0"], "--rows must be at least 1")]
#[case::zero_jobs(&["drill", "--jobs", "0"], "--jobs must be at least 1")]
#[case::bad_backend(&["drill", "--backend", "cloud"], "native")]
#[case::two_sources(&["drill", "--source-dsn", "host=x", "--backup-file", "/x.dump"], "cannot be used with")]
#[case::drop_db_on_source(&["drill", "--source-dsn", "host=127.0.0.1 dbname=prod", "--disaster", "drop-db"], "never writes to the source")]
fn usage_errors_exit_2(#[case] args: &[&str], #[case] says: &str) {
    let run = Pgdrill::new(args.iter().copied()).run();
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
