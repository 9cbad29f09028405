//! A server lost under the drill: the restore target's postmaster killed (SIGKILL) while the
//! drill is in pg_restore, snapshot and amcheck is the machine's fault (exit 3, class
//! `environment`, the lost server named), never a verdict on the backup; a source killed
//! mid-dump is a failed backup that leaves nothing under a final name.

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use rstest::rstest;
use serde_json::Value;

use crate::support::{events, read_report, runtime, Pgdrill, TestServer};

/// About 1.5 million rows with three indexes: pg_restore, snapshot and amcheck each take
/// seconds on it, long enough for the test to kill the server while the phase runs.
const BULK: &str = "CREATE TABLE bulk AS
    SELECT g AS id, md5(g::text) AS a, md5((g + 1)::text) AS b FROM generate_series(1, 1500000) g;
    ALTER TABLE bulk ADD PRIMARY KEY (id);
    CREATE INDEX ON bulk (a);
    CREATE INDEX ON bulk (b);";

/// A `pgdrill backup` of [`BULK`] in `repo`; returns the dump.
fn bulk_dump(tag: &str, repo: &Path) -> PathBuf {
    let (server, db) = runtime().block_on(TestServer::with_db(tag, "bulk", BULK));
    let dsn = format!("{} dbname={db}", server.dsn());
    let backup = Pgdrill::new(["backup", "--source-dsn", &dsn, "--repo"])
        .push_arg(repo.display().to_string())
        .run();
    assert_eq!(backup.code(), 0, "{}", backup.text());
    drop(server);
    std::fs::read_dir(repo.join("database"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "dump"))
        .expect("a dump in the repo")
}

/// `(pid, parent pid, command name)` of every process, from /proc/*/stat.
fn processes() -> Vec<(u32, u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so split at its last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let pid = stat[..open].trim().parse().unwrap_or(0);
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        found.push((pid, ppid, comm));
    }
    found
}

/// The processes whose working directory is under `dir` (a server's backends run in its
/// data directory, and outlive a killed postmaster for a moment).
fn working_in(dir: &Path) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(pid, ..)| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .map(|(pid, ..)| pid)
        .collect()
}

/// Waits (up to 5 minutes) until the drill writing into `out` has started `phase`; fails if
/// the drill ends first.
fn wait_for_start(child: &mut Child, out: &Path, phase: &str) {
    let started = Instant::now();
    loop {
        let ev = events(out);
        if ev
            .iter()
            .any(|e| e["event"] == "phase_started" && e["phase"] == phase)
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the drill ended ({status}) before {phase}: {ev:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no {phase} yet: {ev:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that nothing the drill started is left: no process working in `tmp` (its TMPDIR)
/// and nothing in it, waiting up to 30 s for the killed server's backends to notice.
fn assert_nothing_left(tmp: &Path) {
    let started = Instant::now();
    while !working_in(tmp).is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        working_in(tmp),
        Vec::<u32>::new(),
        "processes left in {tmp:?}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "the drill left {left:?}");
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The restore target's postmaster killed with SIGKILL in `phase`: exit 3, class
/// `environment`, the message naming the target server, its pid, the phase and the signal.
#[rstest]
#[case::pg_restore("pg_restore", Duration::from_millis(300))]
#[case::snapshot("snapshot", Duration::ZERO)]
#[case::amcheck("amcheck", Duration::ZERO)]
fn the_target_s_postmaster_killed_is_a_lost_server_not_the_backup_s_fault(
    #[case] phase: &str,
    #[case] after: Duration,
) {
    let repo = tempfile::tempdir().unwrap();
    let dump = bulk_dump(&format!("lost-{phase}"), repo.path());
    let tmp = tempfile::tempdir().unwrap();
    let drill = Pgdrill::native(["--backup-file", dump.to_str().unwrap()])
        .env("TMPDIR", tmp.path().to_str().unwrap());
    let (mut child, out) = drill.spawn();
    wait_for_start(&mut child, out.path(), phase);
    std::thread::sleep(after);
    // The drill's servers are its children; with --backup-file there is one, the target.
    let postmasters: Vec<u32> = processes()
        .into_iter()
        .filter(|(_, ppid, comm)| *ppid == child.id() && comm == "postgres")
        .map(|(pid, ..)| pid)
        .collect();
    assert_eq!(postmasters.len(), 1, "{postmasters:?}");
    let pid = postmasters[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let report: Value = read_report(out.path()).unwrap_or_else(|| panic!("{}", text(&output)));
    let f = &report["failure"];
    assert_eq!(
        (
            output.status.code(),
            f["phase"].as_str(),
            f["class"].as_str()
        ),
        (Some(3), Some(phase), Some("environment")),
        "{f}\n{}",
        text(&output)
    );
    let msg = f["message"].as_str().unwrap();
    let named = format!("the target server, pid {pid}, exited during {phase}: signal 9 (SIGKILL)");
    assert!(msg.starts_with(&named), "{msg}");
    assert!(msg.contains("not of the backup"), "{msg}");
    assert_eq!(report["verdict"], "error");
    assert_nothing_left(tmp.path());
}

/// The source's postmaster killed while `pgdrill backup` dumps it: the backup fails (exit 3,
/// a failed audit event), and no dump, globals or manifest is left under a final name.
#[test]
fn a_source_killed_mid_dump_fails_the_backup_and_leaves_no_partial_file() {
    let (server, db) = runtime().block_on(TestServer::with_db("lost-source", "bulk", BULK));
    let dsn = format!("{} dbname={db}", server.dsn());
    let data_dir: String = runtime().block_on(async {
        let c = server.connect(&db).await;
        c.query_one("SHOW data_directory", &[])
            .await
            .unwrap()
            .get(0)
    });
    let postmaster: i32 = std::fs::read_to_string(Path::new(&data_dir).join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let repo = tempfile::tempdir().unwrap();
    let (mut child, _out) = Pgdrill::new(["backup", "--source-dsn", &dsn, "--repo"])
        .push_arg(repo.path().display().to_string())
        .spawn();
    // Mid-dump: pg_dump runs under pgdrill and has been reading for a moment.
    let started = Instant::now();
    while !processes()
        .iter()
        .any(|(_, ppid, comm)| *ppid == child.id() && comm == "pg_dump")
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no pg_dump under pgdrill backup"
        );
        if let Ok(Some(s)) = child.try_wait() {
            panic!("pgdrill backup ended ({s}) before pg_dump ran");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postmaster),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(text(&output).contains("pg_dump"), "{}", text(&output));
    let files: Vec<String> = std::fs::read_dir(repo.path().join("database"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".backup.lock")
        .collect();
    assert!(
        files.is_empty(),
        "files left after the source died: {files:?}"
    );
    let audit = std::fs::read_to_string(repo.path().join("audit.ndjson")).unwrap_or_default();
    let last: Value = serde_json::from_str(audit.lines().last().expect("an audit event")).unwrap();
    assert_eq!(last["result"], "failed", "{last}");
    drop(server);
}

/// Whether `pid` descends from `ancestor`.
fn descends_from(pid: u32, ancestor: u32, all: &[(u32, u32, String)]) -> bool {
    let mut cur = pid;
    for _ in 0..16 {
        match all.iter().find(|(p, ..)| *p == cur) {
            Some((_, ppid, _)) if *ppid == ancestor => return true,
            Some((_, ppid, _)) if *ppid > 1 => cur = *ppid,
            _ => return false,
        }
    }
    false
}

/// pg_restore itself killed with SIGKILL mid-restore: the restore failed (exit 1,
/// `restore_failed` at pg_restore), the signal named, the target server still alive so not
/// blamed on the machine, and nothing left.
#[test]
fn kill_9_of_pg_restore_is_a_failed_restore_naming_the_signal() {
    let repo = tempfile::tempdir().unwrap();
    let dump = bulk_dump("lost-pg-restore-prog", repo.path());
    let tmp = tempfile::tempdir().unwrap();
    let drill = Pgdrill::native(["--backup-file", dump.to_str().unwrap()])
        .env("TMPDIR", tmp.path().to_str().unwrap());
    let (mut child, out) = drill.spawn();
    wait_for_start(&mut child, out.path(), "pg_restore");
    // pg_restore runs briefly before the restore proper (listing the archive): kill the
    // restore's own pg_restore, found again when an earlier one is already gone.
    let started = Instant::now();
    loop {
        let all = processes();
        // The leader: a pg_restore under the drill whose parent is not a pg_restore (-j forks
        // its workers under itself).
        let leader = all.iter().find(|(p, ppid, comm)| {
            comm == "pg_restore"
                && descends_from(*p, child.id(), &all)
                && !all.iter().any(|(q, _, c)| q == ppid && c == "pg_restore")
        });
        if let Some((p, ..)) = leader {
            let killed = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            if killed.is_ok() {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no pg_restore under the drill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    let report: Value = read_report(out.path()).unwrap_or_else(|| panic!("{}", text(&output)));
    let f = &report["failure"];
    assert_eq!(
        (
            output.status.code(),
            f["phase"].as_str(),
            f["class"].as_str()
        ),
        (Some(1), Some("pg_restore"), Some("restore_failed")),
        "{f}\n{}",
        text(&output)
    );
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("SIGKILL") || msg.contains("signal: 9") || msg.contains("signal 9"),
        "the failure must name the signal: {msg}"
    );
    assert_nothing_left(tmp.path());
}
