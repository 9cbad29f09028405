//! The backup regime on a repo: `pgdrill backup`, `verify`, `prune`, `audit`, `drill --repo`,
//! against real PostgreSQL servers. Time-dependent cases use `--at` on synthetic repos (one
//! real dump copied under many names, manifests with the `created_at` they need), never sleeps.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::support::{read_report, runtime, synth, Pgdrill, TestServer, Tmpfs};

/// A server with a small database; returns it and a key=value DSN to that database.
fn source(rt: &tokio::runtime::Runtime, tag: &str, sql: &str) -> (TestServer, String) {
    let (server, db) = rt.block_on(TestServer::with_db(tag, "regime", sql));
    let dsn = format!("{} dbname={db}", server.dsn());
    (server, dsn)
}

/// One real `pgdrill backup` of a SMALL database (its server gone again): the repo holding
/// it and its dump.
fn real_backup(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let (_server, dsn) = source(&runtime(), tag, SMALL);
    let real = tempfile::tempdir().unwrap();
    assert_eq!(backup(&dsn, real.path(), &[]).code(), 0);
    let db = real.path().join("database");
    let dump = files(&db)
        .into_iter()
        .find(|n| n.ends_with(".dump"))
        .unwrap();
    (real, db.join(dump))
}

const SMALL: &str = "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO t SELECT g, 'value ' || g FROM generate_series(1, 200) g;";

fn at(s: &str) -> DateTime<Utc> {
    pgdrill::duration::parse_time(s).unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn audit_events(repo: &Path) -> Vec<Value> {
    std::fs::read_to_string(repo.join("audit.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn backup(dsn: &str, repo: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "backup".to_string(),
        "--source-dsn".into(),
        dsn.into(),
        "--repo".into(),
        repo.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Pgdrill::new(args).run()
}

fn run(args: &[&str]) -> crate::support::Run {
    Pgdrill::new(args.iter().map(|s| s.to_string())).run()
}

fn edit_manifest(dump: &Path, f: impl FnOnce(&mut Value)) {
    let p = dump.with_extension("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut m);
    std::fs::write(p, m.to_string()).unwrap();
}

/// A config backup as the config engineer's command writes it (archive + manifest).
fn synth_config(repo: &Path, t: DateTime<Utc>) {
    let dir = repo.join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let stem = format!("config_{}", t.format("%Y%m%d_%H%M%S"));
    let body = b"age-encryption.org/v1 (test archive bytes)";
    std::fs::write(dir.join(format!("{stem}.tar.age")), body).unwrap();
    let m = serde_json::json!({
        "manifest_version": 1,
        "file": format!("{stem}.tar.age"),
        "size_bytes": body.len(),
        "sha256": pgdrill::digest::sha256_hex(body),
        "created_at": t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "kind": "scheduled",
        "reason": null,
        "encrypted": true,
    });
    std::fs::write(dir.join(format!("{stem}.manifest.json")), m.to_string()).unwrap();
}

fn json_of(r: &crate::support::Run) -> Value {
    serde_json::from_slice(&r.output.stdout)
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}):\n{}", r.text()))
}

fn kinds(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn backup_verify_drill_and_audit_on_one_repo() {
    let rt = runtime();
    let (server, dsn) = source(&rt, "regime-main", SMALL);
    let canary = server.endpoint.password().unwrap().to_string();
    let repo = tempfile::tempdir().unwrap();
    let r = backup(
        &dsn,
        repo.path(),
        &["--kind", "manual", "--reason", "before deploy 4.2"],
    );
    assert_eq!(r.code(), 0, "{}", r.text());
    let db = repo.path().join("database");
    let names = files(&db);
    let dump = names.iter().find(|n| n.ends_with(".dump")).unwrap().clone();
    let manifest_text =
        std::fs::read_to_string(db.join(&dump).with_extension("manifest.json")).unwrap();
    let m: Value = serde_json::from_str(&manifest_text).unwrap();
    assert_eq!(
        (m["kind"].as_str(), m["reason"].as_str()),
        (Some("manual"), Some("before deploy 4.2"))
    );
    assert_eq!(m["snapshot"]["tables"].as_array().unwrap().len(), 1);
    assert!(
        names.iter().all(|n| !n.contains(".tmp-")),
        "a temporary file was left: {names:?}"
    );

    // Two at once into one repo: both succeed under distinct names (the lock serialises them).
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_pgdrill"))
            .args(["backup", "--source-dsn", &dsn, "--repo"])
            .arg(repo.path())
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    let dumps: Vec<String> = files(&db)
        .into_iter()
        .filter(|n| n.ends_with(".dump"))
        .collect();
    assert_eq!(dumps.len(), 3, "{dumps:?}");

    synth_config(repo.path(), Utc::now());
    let repo_s = repo.path().display().to_string();
    let first = run(&["verify", "--repo", &repo_s, "--json"]);
    let v = json_of(&first);
    assert_eq!(first.code(), 0, "{}", first.text());
    assert_eq!(kinds(&v), Vec::<String>::new());
    // 3 dumps, 3 globals, 1 config archive.
    assert_eq!(
        (v["files_read"].as_u64(), v["files_skipped"].as_u64()),
        (Some(7), Some(0))
    );
    let second = json_of(&run(&["verify", "--repo", &repo_s, "--json"]));
    // Only the newest dump is read again; the rest the audit log records as verified.
    assert_eq!(
        (
            second["files_read"].as_u64(),
            second["files_skipped"].as_u64()
        ),
        (Some(1), Some(6))
    );
    let full = json_of(&run(&["verify", "--repo", &repo_s, "--json", "--full"]));
    assert_eq!(full["files_read"].as_u64(), Some(7));

    let d = Pgdrill::drill([
        "--backend",
        "native",
        "--app",
        "none",
        "--repo",
        &repo_s,
        "--pick",
        "random",
        "--window",
        "7d",
    ])
    .run();
    let report = d.assert_pass();
    let notes = report["notes"].to_string();
    assert!(notes.contains("--pick random"), "{notes}");
    // Picking is a timed phase of the restore, before the application stops.
    let pick = d.phase("pick_backup");
    assert_eq!(pick["status"], "pass", "{pick}");
    assert_eq!(pick["budget"], "database_restore", "{pick}");
    assert!(
        pick["detail"].as_str().unwrap().contains("--pick random"),
        "{pick}"
    );
    let names: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &names[..3],
        ["provision", "pick_backup", "stop_app"],
        "{names:?}"
    );
    let events = audit_events(repo.path());
    let last = events.last().unwrap();
    assert_eq!(
        (last["action"].as_str(), last["result"].as_str()),
        (Some("drill"), Some("pass"))
    );
    let report_sha = pgdrill::digest::sha256_file_blocking(&d.out.path().join("report.json"))
        .unwrap()
        .1;
    assert_eq!(
        last["object"]["report"]["sha256"].as_str(),
        Some(report_sha.as_str())
    );
    assert_eq!(last["object"]["sha256"], report["backup"]["sha256"]);

    let shown = run(&["audit", "show", "--repo", &repo_s, "--since", "1h"]);
    assert_eq!(shown.code(), 0);
    for word in ["backup", "verify", "drill", "pass"] {
        assert!(shown.text().contains(word), "{}", shown.text());
    }
    assert_eq!(run(&["audit", "verify", "--repo", &repo_s]).code(), 0);

    // The canary: the source password is nowhere in the repo or the output.
    let mut everything = first.text() + &r.text() + &shown.text() + &d.text();
    for f in files(&db) {
        everything += &String::from_utf8_lossy(&std::fs::read(db.join(f)).unwrap());
    }
    everything += &std::fs::read_to_string(repo.path().join("audit.ndjson")).unwrap();
    everything += &std::fs::read_to_string(d.out.path().join("report.json")).unwrap();
    assert!(!everything.contains(&canary), "the source password leaked");

    // An edited event breaks the chain at that event.
    let log = repo.path().join("audit.ndjson");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[1] = lines[1].replacen("bytes", "bytez", 1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let broken = run(&["audit", "verify", "--repo", &repo_s]);
    assert_eq!(broken.code(), 1, "{}", broken.text());
    assert!(
        broken.text().contains("line 2") && broken.text().contains("edited"),
        "{}",
        broken.text()
    );
}

#[test]
fn verify_names_gaps_sizes_checksums_manifests_and_unknown_files() {
    let (_real, dump) = real_backup("regime-verify");
    let repo = tempfile::tempdir().unwrap();
    let t0 = at("2026-11-30T00:00:00Z");
    let times: Vec<_> = [0, 15, 30, 90, 105, 120]
        .iter()
        .map(|m| t0 + Duration::minutes(*m))
        .collect();
    let sets = synth(&dump, repo.path(), &times);
    // 00:15: one flipped byte; 00:30: a tiny dump whose manifest agrees (a size finding only).
    let mut bytes = std::fs::read(&sets[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&sets[1], bytes).unwrap();
    std::fs::write(&sets[2], b"PGDMP tiny").unwrap();
    edit_manifest(&sets[2], |m| {
        m["size_bytes"] = 10.into();
        m["sha256"] = pgdrill::digest::sha256_hex(b"PGDMP tiny").into();
    });
    // 00:20: a corrupt manifest; an unknown file.
    let corrupt = repo
        .path()
        .join("database/backup_20261130_002000.manifest.json");
    std::fs::write(&corrupt, "{ not json").unwrap();
    std::fs::write(repo.path().join("database/notes.txt"), "hello").unwrap();
    synth_config(repo.path(), at("2026-11-30T01:50:00Z"));

    let textfiles = tempfile::tempdir().unwrap();
    let prom = textfiles.path().join("pgdrill.prom");
    let repo_s = repo.path().display().to_string();
    let r = run(&[
        "verify",
        "--repo",
        &repo_s,
        "--at",
        "2026-11-30T02:05:00Z",
        "--json",
        "--prom",
        prom.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 1, "{}", r.text());
    let v = json_of(&r);
    let mut k = kinds(&v);
    k.sort();
    assert_eq!(
        k,
        ["checksum", "gap", "manifest", "size", "unknown_file"],
        "{v:#}"
    );
    let gap = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "gap")
        .unwrap();
    assert_eq!(
        (gap["start"].as_str(), gap["seconds"].as_u64()),
        (Some("2026-11-30T00:30:00Z"), Some(3600))
    );
    let find = |kind: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind)
            .unwrap()["subject"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(find("checksum"), "database/backup_20261130_001500.dump");
    assert_eq!(
        find("manifest"),
        "database/backup_20261130_002000.manifest.json"
    );
    assert_eq!(find("unknown_file"), "database/notes.txt");
    let prom_text = std::fs::read_to_string(&prom).unwrap();
    for line in [
        "pgdrill_backup_gaps 1",
        "pgdrill_backup_verify_ok 0",
        "pgdrill_backup_newest_age_seconds 300",
    ] {
        assert!(prom_text.contains(line), "{prom_text}");
    }
    // An hour later the newest database and config backups are both stale.
    let later = json_of(&run(&[
        "verify",
        "--repo",
        &repo_s,
        "--at",
        "2026-11-30T03:00:00Z",
        "--json",
    ]));
    assert_eq!(
        later["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "stale")
            .count(),
        2
    );
    let table = run(&["verify", "--repo", &repo_s, "--at", "2026-11-30T02:05:00Z"]);
    assert!(table.text().contains("FINDINGS: 5"), "{}", table.text());
    assert_eq!(run(&["verify", "--repo", "/nonexistent/repo"]).code(), 2);
    assert_eq!(
        run(&["verify", "--repo", &repo_s, "--rpo", "soon"]).code(),
        2
    );
}

#[test]
fn prune_keeps_its_floors_and_never_touches_unknown_files() {
    let repo = tempfile::tempdir().unwrap();
    let t0 = at("2026-11-20T00:00:00Z");
    let (_real, dump) = real_backup("regime-prune");
    let times: Vec<_> = (0..11).map(|d| t0 + Duration::days(d)).collect();
    let sets = synth(&dump, repo.path(), &times);
    edit_manifest(&sets[1], |m| m["kind"] = "manual".into());
    // The audit log says a drill passed on day 2's backup.
    pgdrill::repo::audit::append(
        repo.path(),
        pgdrill::repo::audit::Action::Drill,
        pgdrill::repo::audit::Object::file("database/backup_20261122_000000.dump", "ab"),
        pgdrill::repo::audit::Outcome::Pass,
        None,
    )
    .unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("backup_20261101_000000.dump");
    std::fs::write(&victim, "not the repo's").unwrap();
    let db = repo.path().join("database");
    std::os::unix::fs::symlink(&victim, db.join("backup_20261101_000000.dump")).unwrap();
    std::fs::write(db.join("backup_20261102_000000.dump.keep"), "mine").unwrap();
    let before = files(&db);
    let repo_s = repo.path().display().to_string();
    let args = [
        "prune",
        "--repo",
        &repo_s,
        "--keep-days",
        "3",
        "--min-keep",
        "2",
        "--at",
        "2026-11-30T12:00:00Z",
    ];
    let dry = run(&args);
    assert_eq!(dry.code(), 0, "{}", dry.text());
    assert!(dry.text().contains("would delete"), "{}", dry.text());
    assert!(
        dry.text()
            .contains("recovery window before: 2026-11-20T00:00:00Z .. 2026-11-30T00:00:00Z"),
        "{}",
        dry.text()
    );
    assert_eq!(files(&db), before, "a dry run deleted something");

    let mut confirm = args.to_vec();
    confirm.push("--confirm");
    let done = run(&confirm);
    assert_eq!(done.code(), 0, "{}", done.text());
    let stems: std::collections::BTreeSet<String> = files(&db)
        .into_iter()
        .filter_map(|n| n.strip_suffix(".dump").map(str::to_string))
        .collect();
    // Kept: retention (after 11-27T12:00: days 8..10, which also hold the newest 2), the
    // manual (day 1), the drilled (day 2); the link and the unknown file stay as they are.
    let expect: std::collections::BTreeSet<String> = [1, 2, 8, 9, 10]
        .iter()
        .map(|d| {
            pgdrill::backup::dump_file_name(t0 + Duration::days(*d))
                .trim_end_matches(".dump")
                .to_string()
        })
        .chain(["backup_20261101_000000".to_string()])
        .collect();
    assert_eq!(stems, expect);
    // A set goes whole: no manifest or globals left without its dump.
    let left = files(&db);
    assert!(
        !left.iter().any(|n| n.starts_with("backup_20261120_")),
        "{left:?}"
    );
    assert!(left.contains(&"backup_20261102_000000.dump.keep".to_string()));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not the repo's");
    let last = audit_events(repo.path()).pop().unwrap();
    assert_eq!(last["action"], "prune");
    assert_eq!(last["object"]["files"].as_array().unwrap().len(), 6);
}

#[test]
fn backup_faults_are_environment_errors_with_clear_messages() {
    let rt = runtime();
    // Random bytes as hex: about 1 MB of dump that compression cannot shrink much.
    let (server, dsn) = source(
        &rt,
        "regime-faults",
        "CREATE TABLE blob (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO blob SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 64) i)
         FROM generate_series(1, 1000) g;",
    );
    let repo = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = backup(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=x"),
        repo.path(),
        &[],
    );
    assert_eq!(unreachable.code(), 3, "{}", unreachable.text());
    assert!(
        unreachable.text().contains("cannot connect"),
        "{}",
        unreachable.text()
    );
    let wrong = dsn.replace(server.endpoint.password().unwrap(), "wrong-password");
    let denied = backup(&wrong, repo.path(), &[]);
    assert_eq!(denied.code(), 3, "{}", denied.text());
    assert!(
        !denied.text().contains("wrong-password"),
        "{}",
        denied.text()
    );
    let failed: Vec<Value> = audit_events(repo.path());
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e["result"] == "failed"));

    let ro = Tmpfs::mount("ro,size=1m");
    let r = backup(&dsn, ro.path(), &[]);
    assert_eq!(r.code(), 3, "{}", r.text());
    assert!(
        r.text().contains("cannot be created") || r.text().contains("not writable"),
        "{}",
        r.text()
    );

    let small = Tmpfs::mount("size=256k");
    let full = backup(&dsn, small.path(), &[]);
    assert_eq!(full.code(), 3, "{}", full.text());
    assert!(
        full.text().contains("No space left on device"),
        "{}",
        full.text()
    );
    assert!(
        full.text()
            .contains(&small.path().join("database").display().to_string()),
        "{}",
        full.text()
    );
    let left: Vec<String> = files(&small.path().join("database"))
        .into_iter()
        .filter(|n| n != ".backup.lock")
        .collect();
    assert!(left.is_empty(), "files left after a full disk: {left:?}");
    let last = audit_events(small.path()).pop().unwrap();
    assert_eq!(last["result"], "failed");
    assert!(
        last["detail"].as_str().unwrap().contains("No space left"),
        "{last}"
    );
}

#[test]
fn a_repo_without_backups_fails_the_drill_and_regime_usage_errors_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().display().to_string();
    // A repository with nothing to restore (its backups pruned or never taken) is the drill's
    // finding, not a usage error: the pick_backup phase fails, the report says so, and the
    // repo's audit log records it. An empty directory is no repository (below: exit 2).
    let (out, bare) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(bare.path().join("database")).unwrap();
    let (o, b) = (out.path().display(), bare.path().display());
    let (o, b) = (o.to_string(), b.to_string());
    let no_backup = run(&["drill", "--backend", "native", "--repo", &b, "--out", &o]);
    assert_eq!(no_backup.code(), 1, "{}", no_backup.text());
    let r = read_report(out.path()).expect("a report");
    assert_eq!(r["failure"]["phase"], "pick_backup", "{}", r["failure"]);
    assert_eq!(r["failure"]["class"], "backup_unusable", "{}", r["failure"]);
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("run `pgdrill backup` first"),
        "{}",
        r["failure"]
    );
    let last = audit_events(bare.path())
        .pop()
        .expect("the drill is in the audit log");
    assert_eq!(
        (last["action"].as_str(), last["result"].as_str()),
        (Some("drill"), Some("fail"))
    );
    for args in [
        vec!["drill", "--pick", "random"],
        vec!["drill", "--repo", &e, "--rows", "10"],
        vec!["drill", "--backend", "native", "--repo", &e],
        vec!["verify", "--repo", &e],
        vec!["prune", "--repo", &e],
        vec!["backup", "--repo", &e],
        vec![
            "backup",
            "--source-dsn",
            "host=x",
            "--repo",
            &e,
            "--kind",
            "weekly",
        ],
        vec!["prune", "--repo", &e, "--keep-days", "0"],
        vec!["prune", "--repo", &e, "--at", "yesterday"],
        vec!["audit", "verify", "--repo", &e],
    ] {
        let r = run(&args);
        assert_eq!(r.code(), 2, "{args:?}: {}", r.text());
    }
}

#[test]
fn verify_at_ignores_later_audit_entries_and_no_config_drops_the_config_finding() {
    let rt = runtime();
    let (_server, dsn) = source(&rt, "regime-at", SMALL);
    let real = tempfile::tempdir().unwrap();
    assert_eq!(backup(&dsn, real.path(), &[]).code(), 0);
    let dump = real.path().join("database").join(
        files(&real.path().join("database"))
            .into_iter()
            .find(|n| n.ends_with(".dump"))
            .unwrap(),
    );
    let repo = tempfile::tempdir().unwrap();
    let repo_s = repo.path().display().to_string();
    let taken = Utc::now() - Duration::hours(2);
    synth(&dump, repo.path(), &[taken]);

    // A repo without config backups: a finding, unless the team keeps none (--no-config).
    let verify = |extra: &[&str]| {
        let base = ["verify", "--repo", &repo_s, "--rpo", "3h", "--json"];
        run(&[&base[..], extra].concat())
    };
    let with_config = verify(&[]);
    assert_eq!(with_config.code(), 1, "{}", with_config.text());
    let v = json_of(&with_config);
    assert_eq!(kinds(&v), ["no_backup"], "{v}");
    assert_eq!(v["findings"][0]["subject"], "config/");
    let now = verify(&["--no-config"]);
    assert_eq!(now.code(), 0, "{}", now.text());
    let v = json_of(&now);
    // The globals file was verified by the run above (the newest dump is always read).
    assert_eq!(
        (v["files_read"].as_u64(), v["files_skipped"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );

    // As of one hour ago those two verifications had not happened: nothing is skipped.
    let earlier =
        (Utc::now() - Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let then = verify(&["--no-config", "--at", &earlier]);
    assert_eq!(then.code(), 0, "{}", then.text());
    let v = json_of(&then);
    assert_eq!(
        (v["files_read"].as_u64(), v["files_skipped"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );

    let both = run(&[
        "verify",
        "--repo",
        &repo_s,
        "--no-config",
        "--config-rpo",
        "2h",
    ]);
    assert_eq!(both.code(), 2, "{}", both.text());
}

/// Ctrl-C while pg_dump is writing: the temporary dump is removed, nothing is left under a
/// final name, pg_dump is gone, a `failed` event is recorded and the exit code is 3.
#[test]
fn ctrl_c_during_a_backup_leaves_no_partial_file_and_exits_3() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let rt = runtime();
    let (server, dsn) = source(&rt, "regime-sigint", SMALL);
    let db = dsn.rsplit("dbname=").next().unwrap().to_string();
    // pg_dump locks every table ACCESS SHARE first: held off by this lock, it sits still
    // with its temporary file open until the signal comes.
    let blocker = rt.block_on(async {
        let c = server.connect(&db).await;
        c.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        c
    });
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("database");
    let child = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["backup", "--source-dsn", &dsn, "--repo"])
        .arg(repo.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = rt.block_on(async {
        let c = server.connect("postgres").await;
        for _ in 0..600 {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE %'",
                    &[&db],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    });
    assert!(waiting, "pg_dump never waited on the lock");
    let during = files(&dir);
    assert!(
        during.iter().any(|n| n.contains(".dump.tmp-")),
        "the temporary dump exists while pg_dump runs: {during:?}"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let left: Vec<String> = files(&dir)
        .into_iter()
        .filter(|n| n != ".backup.lock")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // pg_dump and pgdrill's own session went with pgdrill: once the lock is released, no session
    // is left on the source's database (a backend waiting on a lock notices its client gone
    // only after the wait).
    drop(blocker);
    let sessions = rt.block_on(async {
        let c = server.connect("postgres").await;
        let mut n = 1;
        for _ in 0..100 {
            n = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
                    &[&db],
                )
                .await
                .unwrap()
                .get::<_, i64>(0);
            if n == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        n
    });
    assert_eq!(sessions, 0, "pg_dump still connected after the interrupt");
    let last = audit_events(repo.path()).pop().unwrap();
    assert_eq!(
        (last["action"].as_str(), last["result"].as_str()),
        (Some("backup"), Some("failed")),
        "{last}"
    );
}

/// `verify` and `prune` on a directory that is no repository say so, exit 2, and write
/// nothing there (no audit log, no lock file).
#[test]
fn verify_and_prune_refuse_a_directory_that_is_no_repo_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a backup").unwrap();
    let d = dir.path().display().to_string();
    for args in [
        vec!["verify", "--repo", &d],
        vec!["verify", "--repo", &d, "--json"],
        vec!["prune", "--repo", &d, "--confirm"],
    ] {
        let r = run(&args);
        assert_eq!(r.code(), 2, "{args:?}: {}", r.text());
        let text = r.text();
        let named = format!("--repo {d}: not a backup repository");
        for says in [
            named.as_str(),
            "database/, config/, audit.ndjson",
            "nothing was written",
            "pgdrill backup --repo",
        ] {
            assert!(text.contains(says), "{args:?}: expected {says:?} in {text}");
        }
        assert_eq!(files(dir.path()), ["notes.txt"], "{args:?} wrote into it");
    }
    // From $PGDRILL_REPO, the message names the variable.
    let r = Pgdrill::new(["verify"]).env("PGDRILL_REPO", &d).run();
    assert_eq!(r.code(), 2, "{}", r.text());
    assert!(
        r.text()
            .contains(&format!("PGDRILL_REPO={d}: not a backup repository")),
        "{}",
        r.text()
    );
    assert_eq!(files(dir.path()), ["notes.txt"]);
    // A directory `pgdrill backup` started is one, even before its first backup.
    std::fs::create_dir(dir.path().join("database")).unwrap();
    let r = run(&["prune", "--repo", &d]);
    assert_eq!(r.code(), 0, "{}", r.text());
}

/// `prune` (and `verify`) without --repo and PGDRILL_REPO fall back to the strategy's
/// /backups, and when that is no repository the message names all three ways to fix it.
#[test]
fn prune_without_a_repo_names_pgdrill_repo_and_the_default() {
    for cmd in ["prune", "verify"] {
        let r = Pgdrill::new([cmd]).env("PGDRILL_REPO", "").run();
        let default = Path::new("/backups");
        if default.join("database").is_dir() || default.join("audit.ndjson").is_file() {
            // This machine keeps a real repository there: the command uses it.
            assert_ne!(r.code(), 2, "{}", r.text());
            continue;
        }
        assert_eq!(r.code(), 2, "{cmd}: {}", r.text());
        for says in [
            "/backups",
            "the strategy's default repository",
            "--repo DIR",
            "PGDRILL_REPO",
        ] {
            assert!(
                r.text().contains(says),
                "{cmd}: expected {says:?} in {}",
                r.text()
            );
        }
    }
}
