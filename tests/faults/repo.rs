//! The repo's rows of the fault table: a `pgdrill backup` killed with `kill -9` leaves a temp
//! file that `verify` names and `clean --repo` removes (a running backup's is never touched);
//! four backup loops, one of them killing its backups, with `prune --confirm`, `verify` and
//! `audit verify` running alongside, lose nothing and leave nothing half-written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{runtime, Pgdrill, Run, TestServer};

/// Enough rows that pg_dump writes its archive for a while (several MiB of hex).
const ROWS: &str = "CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 300000) g;";

/// A tiny database: the concurrent loops test the repo, not pg_dump.
const TINY: &str = "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO t SELECT g, 'value ' || g FROM generate_series(1, 50) g;";

fn backup(dsn: &str, repo: &Path) -> Run {
    pgdrill(&[
        "backup",
        "--source-dsn",
        dsn,
        "--repo",
        repo.to_str().unwrap(),
    ])
}

fn spawn_backup(dsn: &str, repo: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["backup", "--source-dsn", dsn, "--repo"])
        .arg(repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `pgdrill ARGS` with TMPDIR an empty directory of its own, so that `clean` never reaps
/// the leftovers another test is looking at.
fn pgdrill(args: &[&str]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    Pgdrill::new(args.iter().map(|s| s.to_string()))
        .env("TMPDIR", tmp.path().to_str().unwrap())
        .run()
}

/// The temp files in `dir`.
fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Name → SHA-256 of every file of a backup set in `dir` (temp files and the lock left out).
fn sets(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .map(|n| {
            let sha = pgdrill::digest::sha256_file_blocking(&dir.join(&n))
                .unwrap()
                .1;
            (n, sha)
        })
        .collect()
}

fn json(r: &Run) -> Value {
    serde_json::from_slice(&r.output.stdout)
        .unwrap_or_else(|e| panic!("no JSON on stdout ({e}):\n{}", r.text()))
}

fn audit_events(repo: &Path) -> Vec<Value> {
    std::fs::read_to_string(repo.join("audit.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A `pgdrill backup` killed with SIGKILL while pg_dump's archive streams into its temp
/// file: `verify` names the temp file (size, age, the fix), `clean --repo` removes it and
/// records it, a later `verify` is clean, and the complete backup before it is untouched.
#[test]
fn kill_9_of_a_backup_leaves_a_temp_file_that_verify_names_and_clean_repo_removes() {
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db("faults-repo-kill", "killed", ROWS));
    let dsn = format!("{} dbname={db}", server.dsn());
    let repo = tempfile::tempdir().unwrap();
    let repo_s = repo.path().to_str().unwrap();
    let dir = repo.path().join("database");
    let first = backup(&dsn, repo.path());
    assert_eq!(first.code(), 0, "{}", first.text());

    // Killed as soon as its temp dump holds bytes; a backup that finishes first is just one
    // more complete backup before the killed one.
    let mut killed = None;
    let mut before = BTreeMap::new();
    for _ in 0..5 {
        before = sets(&dir);
        let mut child = spawn_backup(&dsn, repo.path());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            let writing = temps(&dir)
                .into_iter()
                .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
            if let Some(t) = writing {
                kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
                killed = Some(t);
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = child.wait().unwrap();
        if killed.is_some() {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9)
            );
            break;
        }
    }
    let killed = killed.expect("no backup was caught writing its dump: seed more rows");
    // pg_dump writes the file itself and dies with pgdrill (its parent-death signal), a
    // moment after it: the size is read once nothing holds the file open.
    let started = Instant::now();
    while held_open(&killed) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} still open 10 s after pgdrill died: pg_dump outlived it",
            killed.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        temps(&dir),
        std::slice::from_ref(&killed),
        "one temp file, the killed dump's"
    );
    let size = std::fs::metadata(&killed).unwrap().len();
    assert_eq!(sets(&dir), before, "the complete backups are untouched");

    let v = pgdrill(&["verify", "--repo", repo_s, "--no-config", "--json"]);
    assert_eq!(
        v.code(),
        1,
        "verify must report the temp file:\n{}",
        v.text()
    );
    let out = json(&v);
    let findings = out["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{out:#}");
    let f = &findings[0];
    let name = killed.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(f["kind"], "temp_file", "{f}");
    assert_eq!(f["subject"], format!("database/{name}").as_str());
    let msg = f["message"].as_str().unwrap();
    for needle in [
        format!("{size} bytes"),
        "last written ".into(),
        format!("pgdrill clean --repo {repo_s}"),
        "pgdrill prune --confirm".into(),
    ] {
        assert!(msg.contains(&needle), "{needle} not in {msg}");
    }

    let dry = pgdrill(&["clean", "--dry-run", "--repo", repo_s]);
    assert_eq!(dry.code(), 1, "{}", dry.text());
    assert!(dry.text().contains(&name), "{}", dry.text());
    assert!(killed.exists(), "--dry-run removes nothing");

    let c = pgdrill(&["clean", "--repo", repo_s]);
    assert_eq!(c.code(), 0, "{}", c.text());
    assert!(
        c.text().contains(&format!("removed {}", killed.display())),
        "{}",
        c.text()
    );
    assert!(temps(&dir).is_empty(), "{:?}", temps(&dir));
    assert_eq!(sets(&dir), before, "clean touches nothing else");
    let events = audit_events(repo.path());
    let clean = events
        .iter()
        .find(|e| e["action"] == "clean")
        .expect("a clean event");
    assert_eq!(
        clean["object"]["files"][0]["file"],
        format!("database/{name}").as_str()
    );

    let again = pgdrill(&["verify", "--repo", repo_s, "--no-config", "--json"]);
    assert_eq!(again.code(), 0, "{}", again.text());
    assert_eq!(pgdrill(&["audit", "verify", "--repo", repo_s]).code(), 0);
}

/// A backup that is running (held by a table lock with its temp dump open and the repo's
/// lock held) keeps its temp file through `verify`, `clean --repo` and `prune --confirm`,
/// and then completes.
#[test]
fn a_running_backups_temp_file_is_never_flagged_nor_removed() {
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db("faults-repo-live", "live", TINY));
    let dsn = format!("{} dbname={db}", server.dsn());
    // pg_dump locks every table ACCESS SHARE first: held off by this lock, it waits with
    // its temp file open until the lock goes.
    let blocker = rt.block_on(async {
        let c = server.connect(&db).await;
        c.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        c
    });
    let repo = tempfile::tempdir().unwrap();
    let repo_s = repo.path().to_str().unwrap();
    let dir = repo.path().join("database");
    let child = spawn_backup(&dsn, repo.path());
    let waiting = rt.block_on(async {
        let c = server.connect("postgres").await;
        for _ in 0..1200 {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                    &[&db],
                )
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(waiting, "pg_dump never waited on the table lock");
    let live = temps(&dir);
    assert_eq!(live.len(), 1, "{live:?}");

    let v = pgdrill(&["verify", "--repo", repo_s, "--no-config", "--json"]);
    let out = json(&v);
    assert!(
        out["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "temp_file"),
        "a running backup's temp file is no finding: {out:#}"
    );
    let c = pgdrill(&["clean", "--repo", repo_s]);
    assert_eq!(c.code(), 0, "{}", c.text());
    assert!(c.text().contains("a backup is running"), "{}", c.text());
    let p = pgdrill(&["prune", "--repo", repo_s, "--confirm"]);
    assert_eq!(p.code(), 0, "{}", p.text());
    assert_eq!(
        temps(&dir),
        live,
        "the running backup's temp file is untouched"
    );

    // The connection task runs only inside block_on: end the transaction there, or the lock
    // stays held.
    rt.block_on(blocker.batch_execute("ROLLBACK")).unwrap();
    drop(blocker);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "the backup completes");
    assert!(temps(&dir).is_empty());
    let done = pgdrill(&["verify", "--repo", repo_s, "--no-config", "--json"]);
    assert_eq!(done.code(), 0, "{}", done.text());
}

/// Four `pgdrill backup` loops on one repo (one of them killing some of its backups with
/// SIGKILL at varied moments), `prune --confirm` as of three days on, `verify` and `audit
/// verify`, all at once for 10 s (60 s with `PGDRILL_FAULTS=long`). Afterwards, and one last
/// prune later: every backup recorded as taken is either complete (dump, globals and
/// manifest, checksums matching) or recorded as pruned, no temp file is left, and the audit
/// chain is intact.
#[test]
fn four_backup_loops_with_prune_verify_and_audit_lose_nothing() {
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db("faults-repo-loops", "loops", TINY));
    let dsn = format!("{} dbname={db}", server.dsn());
    let repo = tempfile::tempdir().unwrap();
    let repo_s = repo.path().to_str().unwrap();
    let dir = repo.path().join("database");
    let secs = if super::long() { 60 } else { 10 };
    let until = Instant::now() + Duration::from_secs(secs);
    let prune = || {
        let at = (chrono::Utc::now() + chrono::Duration::days(3))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        pgdrill(&[
            "prune",
            "--repo",
            repo_s,
            "--confirm",
            "--keep-days",
            "1",
            "--min-keep",
            "2",
            "--at",
            &at,
        ])
    };
    // verify and prune refuse a directory that is not yet a repository, so the loops start
    // on one that a backup has made.
    let first = backup(&dsn, repo.path());
    assert_eq!(first.code(), 0, "first backup: {}", first.text());
    let mut killed = 0;
    std::thread::scope(|s| {
        let loops: Vec<_> = (0..4)
            .map(|i| {
                let dsn = &dsn;
                let repo = repo.path();
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut killed = 0;
                    while Instant::now() < until {
                        n += 1;
                        // The first iteration kills: under load the three other loops can
                        // hold the lock for this loop's whole window, and a loop whose first
                        // iteration is a plain backup then never gets to kill one.
                        if i == 0 && !n.is_multiple_of(2) {
                            // A kill at a different moment each time: waiting for the lock,
                            // dumping, renaming, or already done; the first one certainly
                            // while the backup is still starting.
                            let mut child = spawn_backup(dsn, repo);
                            let ms = if n == 1 { 20 } else { 50 + (n * 97) % 600 };
                            std::thread::sleep(Duration::from_millis(ms));
                            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                            let st = child.wait().unwrap();
                            killed += usize::from(st.code().is_none());
                            continue;
                        }
                        let r = backup(dsn, repo);
                        assert_eq!(r.code(), 0, "backup loop {i}: {}", r.text());
                    }
                    killed
                })
            })
            .collect();
        let others = [
            s.spawn(|| {
                while Instant::now() < until {
                    let r = prune();
                    assert_eq!(r.code(), 0, "prune: {}", r.text());
                }
            }),
            s.spawn(|| {
                while Instant::now() < until {
                    let r = pgdrill(&["verify", "--repo", repo_s, "--no-config", "--json"]);
                    assert!(matches!(r.code(), 0 | 1), "verify: {}", r.text());
                }
            }),
            s.spawn(|| {
                while Instant::now() < until {
                    let r = pgdrill(&["audit", "verify", "--repo", repo_s]);
                    assert_eq!(r.code(), 0, "audit verify: {}", r.text());
                }
            }),
        ];
        for l in loops {
            killed += l.join().unwrap();
        }
        for o in others {
            o.join().unwrap();
        }
    });
    // With every loop stopped, no backup holds the lock: this prune removes what the killed
    // ones left.
    let last = prune();
    assert_eq!(last.code(), 0, "{}", last.text());

    let events = audit_events(repo.path());
    let taken: BTreeSet<String> = events
        .iter()
        .filter(|e| e["action"] == "backup" && e["result"] == "ok")
        .map(|e| {
            let f = e["object"]["file"].as_str().unwrap();
            f.trim_start_matches("database/")
                .trim_end_matches(".dump")
                .to_string()
        })
        .collect();
    let pruned: BTreeSet<String> = events
        .iter()
        .filter(|e| e["action"] == "prune")
        .flat_map(|e| e["object"]["files"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["file"].as_str().map(str::to_string))
        .filter_map(|f| {
            f.strip_prefix("database/backup_")
                .map(|s| format!("backup_{s}"))
        })
        .collect();
    assert!(
        taken.len() >= 4,
        "too few backups to mean anything: {taken:?}"
    );
    assert!(!pruned.is_empty(), "prune never deleted a set");
    assert!(killed > 0, "no backup was killed");
    assert!(
        temps(&dir).is_empty(),
        "stray temp files: {:?}",
        temps(&dir)
    );

    let files = sets(&dir);
    let present: BTreeSet<String> = files
        .keys()
        .filter_map(|n| n.strip_suffix(".dump").map(str::to_string))
        .collect();
    for name in &taken {
        assert!(
            present.contains(name) || pruned.contains(name),
            "{name} was taken, never pruned, and is gone"
        );
    }
    for name in &present {
        let manifest = pgdrill::backup::read_manifest(&dir.join(format!("{name}.manifest.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            files[&format!("{name}.dump")],
            manifest.sha256,
            "{name}.dump"
        );
        let g = manifest.globals.expect("globals in the manifest");
        assert_eq!(
            files[&format!("{name}.globals.sql")],
            g.sha256,
            "{name}.globals.sql"
        );
    }
    for n in files.keys() {
        let stem = n.split('.').next().unwrap();
        assert!(present.contains(stem), "{n} belongs to no complete set");
    }
    assert_eq!(pgdrill(&["audit", "verify", "--repo", repo_s]).code(), 0);
    let v = pgdrill(&["verify", "--repo", repo_s, "--no-config", "--json"]);
    assert_eq!(v.code(), 0, "{}", v.text());
}

/// Whether any process has `file` open.
fn held_open(file: &Path) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read_dir(p.path().join("fd")).ok())
        .flat_map(|fds| fds.flatten())
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == file))
}
