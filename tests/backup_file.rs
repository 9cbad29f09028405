//! Restoring an existing backup file: a good one passes; a truncated or overwritten one fails
//! at precheck as `backup_unusable` and no restore is attempted, with or without a manifest.

use std::io::{Seek, SeekFrom, Write};

use rstest::rstest;

use crate::support::{assert_mentions, copy_backup, leftovers, runtime, Pgdrill, Run, TestServer};

/// A good backup, made by a passing drill. Owned by the test, so its directory is removed
/// when the test ends (a shared static would never be dropped, and nextest runs each test in
/// its own process anyway).
fn good_backup() -> Run {
    let run = Pgdrill::drill(["--backend", "native", "--seed", "11", "--app", "none"]).run();
    run.assert_pass();
    run
}

#[test]
fn a_good_backup_file_with_its_manifest_restores_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let dump = copy_backup(&good_backup().dump(), dir.path(), true);
    let run = restore(dump.to_str().unwrap());
    let r = run.assert_pass();
    assert_eq!(r["source"]["kind"], "backup_file");
    assert_eq!(r["source"]["database"], "pgdrill");
    assert!(r["integrity"]["basis"]
        .as_str()
        .unwrap()
        .contains("S0 from the manifest"));
    assert!(r["integrity"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["match"] == true));
}

#[test]
fn a_backup_file_without_manifest_is_verified_by_consistency_checks_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let dump = copy_backup(&good_backup().dump(), dir.path(), false);
    let run = restore(dump.to_str().unwrap());
    let r = run.assert_pass();
    assert!(
        r["integrity"]["basis"]
            .as_str()
            .unwrap()
            .contains("no manifest"),
        "{}",
        r["integrity"]["basis"]
    );
    assert!(r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("no manifest")));
    assert!(run.phase("precheck")["detail"]
        .as_str()
        .unwrap()
        .contains("not compared"));
}

#[rstest]
fn a_damaged_dump_fails_at_precheck(
    #[values("truncated", "overwritten")] damage: &str,
    #[values(true, false)] with_manifest: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let dump = copy_backup(&good_backup().dump(), dir.path(), with_manifest);
    let len = std::fs::metadata(&dump).unwrap().len();
    match damage {
        "truncated" => std::fs::OpenOptions::new()
            .write(true)
            .open(&dump)
            .unwrap()
            .set_len(len / 2)
            .unwrap(),
        _ => {
            let mut f = std::fs::OpenOptions::new().write(true).open(&dump).unwrap();
            f.seek(SeekFrom::Start(len * 6 / 10)).unwrap();
            f.write_all(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13, 0x37])
                .unwrap();
        }
    }
    let run = restore(dump.to_str().unwrap());
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["failure"]["phase"], "precheck", "{}", r["failure"]);
    assert_eq!(r["failure"]["class"], "backup_unusable");
    for later in ["roles", "createdb", "pg_restore", "snapshot"] {
        assert_eq!(
            run.phase(later)["status"],
            "skipped",
            "{later} must not run after a failed precheck"
        );
    }
    let msg = r["failure"]["message"].as_str().unwrap();
    if with_manifest {
        assert!(msg.contains("manifest"), "{msg}");
    } else {
        assert!(msg.contains("truncated or corrupted"), "{msg}");
    }
    assert!(leftovers(r["drill_id"].as_str().unwrap()).is_empty());
}

/// A file that is not there is a usage error before anything is provisioned (the other bad
/// inputs are in tests/cli.rs).
#[test]
fn a_missing_backup_file_is_refused_with_the_path_before_provisioning() {
    let run = restore("/nonexistent/backup_x.dump");
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(run.report.is_none(), "{}", run.text());
    assert!(
        run.text()
            .contains("--backup-file /nonexistent/backup_x.dump: cannot read it"),
        "{}",
        run.text()
    );
}

/// `pgdrill drill --backend native --backup-file PATH --out <tmp>`, run to completion.
fn restore(path: &str) -> Run {
    Pgdrill::drill(["--backend", "native", "--backup-file", path]).run()
}

/// A manifest written by an earlier pgdrill (an older snapshot format, whose fingerprints
/// mean something else) must not fail a faithful restore, and must still catch lost rows.
#[test]
fn a_manifest_of_an_older_snapshot_format_compares_row_counts_and_still_catches_lost_rows() {
    let good = good_backup();
    let older = |rows_delta: i64| {
        let dir = tempfile::tempdir().unwrap();
        let dump = copy_backup(&good.dump(), dir.path(), true);
        let mpath = dump.with_extension("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
        m["snapshot"]["format"] = 1.into();
        for t in m["snapshot"]["tables"].as_array_mut().unwrap() {
            t["fingerprint"] = "fingerprint-of-another-format".into();
            if t["name"] == "public.payments" {
                let rows = t["rows"].as_i64().unwrap();
                t["rows"] = (rows + rows_delta).into();
            }
        }
        std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        (dir, dump)
    };

    let (_keep, dump) = older(0);
    let run = restore(dump.to_str().unwrap());
    let r = run.assert_pass();
    let basis = r["integrity"]["basis"].as_str().unwrap();
    assert!(
        basis.contains("format 1") && basis.contains("row counts compared"),
        "{basis}"
    );
    let payments = r["integrity"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "public.payments")
        .unwrap();
    assert_eq!(payments["match"], true);
    assert_eq!(payments["rows_before"], payments["rows_after"]);

    // S0 says the backup held one more payment than the restore has: a lost row.
    let (_keep, dump) = older(1);
    let run = restore(dump.to_str().unwrap());
    let r = run.report();
    assert_eq!(run.code(), 1, "{}", run.text());
    assert_eq!(r["failure"]["class"], "integrity_mismatch");
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("public.payments"),
        "{}",
        r["failure"]["message"]
    );
}

/// What a user may hand over besides the strategy's `pg_dump -Fc`: a plain-text or a
/// directory-format dump is named for what it is, with the fix; and a custom-format dump of the
/// `postgres` database, which every new server already has, restores into it.
#[test]
fn other_dump_formats_are_named_and_a_dump_of_postgres_restores_into_it() {
    let server = runtime().block_on(async {
        let server = TestServer::start("formats").await;
        server
            .connect("postgres")
            .await
            .batch_execute(
                "CREATE TABLE t (id int PRIMARY KEY, v text);
                 INSERT INTO t SELECT g, g::text FROM generate_series(1, 20) g;",
            )
            .await
            .unwrap();
        server
    });
    let dir = tempfile::tempdir().unwrap();
    let dump = |format: &str| {
        let to = dir.path().join(format!("postgres.{format}"));
        let out = std::process::Command::new(server.program("pg_dump"))
            .arg(format!("-F{format}"))
            .arg("-f")
            .arg(&to)
            .envs(server.endpoint.libpq_env())
            .output()
            .expect("run pg_dump");
        assert!(out.status.success(), "{out:?}");
        to.display().to_string()
    };

    let plain = restore(&dump("p"));
    assert_eq!(plain.code(), 1, "{}", plain.text());
    let f = &plain.report()["failure"];
    assert_eq!(
        (f["phase"].as_str(), f["class"].as_str()),
        (Some("precheck"), Some("backup_unusable")),
        "{f}"
    );
    assert_mentions(
        f["message"].as_str().unwrap(),
        &["plain-text SQL dump (pg_dump -Fp)", "pg_dump -Fc"],
    );

    let directory = restore(&dump("d"));
    assert_eq!(directory.code(), 2, "{}", directory.text());
    assert!(
        directory
            .text()
            .contains("directory-format dump (pg_dump -Fd)"),
        "{}",
        directory.text()
    );

    // A tar archive restores too, serially: pg_restore refuses -j for it.
    let tar = restore(&dump("t"));
    tar.assert_pass();
    let restored = tar.phase("pg_restore")["detail"].as_str().unwrap();
    assert!(
        restored.contains("-j 1") && restored.contains("tar-format"),
        "{restored}"
    );

    let custom = restore(&dump("c"));
    let r = custom.assert_pass();
    assert_eq!(r["source"]["database"], "postgres");
    let createdb = custom.phase("createdb")["detail"].as_str().unwrap();
    assert!(createdb.contains("no CREATE DATABASE"), "{createdb}");
    let t = r["integrity"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "public.t")
        .expect("the table restored into postgres is compared");
    assert_eq!(t["rows_after"], 20, "{t}");
}

/// A manifest that is there but unreadable (half-written, or JSON with the wrong fields)
/// makes the backup unusable: the drill fails at precheck naming the file and the parse
/// error, never "no manifest … identical", and `pgdrill verify` flags the same file with the
/// same words.
#[rstest]
fn an_unreadable_manifest_is_backup_unusable_and_verify_says_the_same(
    #[values("half-written", "wrong fields")] damage: &str,
) {
    let repo = tempfile::tempdir().unwrap();
    let db = repo.path().join("database");
    std::fs::create_dir_all(&db).unwrap();
    let dump = copy_backup(&good_backup().dump(), &db, true);
    let manifest = dump.with_extension("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let garbage = match damage {
        "half-written" => text[..text.len() / 2].to_string(),
        _ => r#"{"manifest_version": 1, "file": "backup.dump"}"#.to_string(),
    };
    std::fs::write(&manifest, garbage).unwrap();

    let run = restore(dump.to_str().unwrap());
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["failure"]["phase"], "precheck", "{}", r["failure"]);
    assert_eq!(r["failure"]["class"], "backup_unusable");
    for later in ["roles", "pg_restore", "snapshot", "compare"] {
        assert_eq!(run.phase(later)["status"], "skipped", "{later}");
    }
    let msg = r["failure"]["message"].as_str().unwrap();
    assert_mentions(
        msg,
        &[
            &format!("{} is not a valid pgdrill manifest:", manifest.display()),
            "at line ",
            " column ",
            "remove it to drill the dump without a checksum, or restore it from the repo",
        ],
    );
    assert!(!msg.contains("no manifest"), "{msg}");

    let v = Pgdrill::new([
        "verify",
        "--repo",
        repo.path().to_str().unwrap(),
        "--no-config",
        "--json",
    ])
    .run();
    assert_eq!(v.code(), 1, "{}", v.text());
    let out: serde_json::Value = serde_json::from_slice(&v.output.stdout).unwrap();
    let findings: Vec<_> = out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "manifest")
        .collect();
    assert_eq!(findings.len(), 1, "{out:#}");
    let subject = format!(
        "database/{}",
        manifest.file_name().unwrap().to_string_lossy()
    );
    assert_eq!(findings[0]["subject"], subject.as_str());
    assert_eq!(
        findings[0]["message"], msg,
        "the drill and verify must agree"
    );
}
