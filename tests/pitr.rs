//! Point-in-time recovery of a pgBackRest stanza (issue 23), with the real `pgbackrest`: a
//! native source archiving WAL into a repository in a temp dir (`archive-push`), a full
//! backup, a ledger written after it in two batches, then drills to `latest` and to an LSN
//! between the batches, each checked against the ledger's exact boundary; a stanza that does
//! not exist is refused before anything starts; the repository is never written by a drill.
//! Skipped when `pgbackrest` is not installed, unless PGDRILL_REQUIRE_PGBACKREST=1 (CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, Pgdrill};

const STANZA: &str = "T";

/// True when `pgbackrest` runs here; otherwise skips, or fails with PGDRILL_REQUIRE_PGBACKREST=1 (CI).
fn pgbackrest_or_skip(test: &str) -> bool {
    support::tool_or_skip(
        "pgbackrest",
        &["version"],
        "PGDRILL_REQUIRE_PGBACKREST",
        test,
    )
}

/// Runs as the server user when we are root: pgBackRest refuses root for some commands, and
/// the repository must be the server's.
fn as_server_user(program: &str) -> Command {
    if nix::unistd::Uid::effective().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn chown_to_server_user(path: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "chown {}", path.display());
    }
}

/// Where the source was between two batches of the ledger: the LSN and the time after the
/// last row of the first batch committed and before the first of the next, and the WAL
/// segment holding that LSN.
#[derive(Debug, Clone)]
struct Mark {
    lsn: String,
    time: String,
    segment: String,
    /// The id of the mark's own transaction (it takes one and commits, with no rows).
    xid: String,
}

/// A source archiving into a pgBackRest stanza, backed up, with a ledger (one commit per row,
/// ids in commit order, empty in the backup) written after the backup in `batches` of 25 rows: a [`Mark`] after
/// each batch, the WAL switched after every second batch (and after the last), every segment
/// archived. With 4 batches: rows 1–25, A, 26–50, switch, 51–75, B, 76–100, switch.
struct Stanza {
    dir: tempfile::TempDir,
    config: PathBuf,
    marks: Vec<Mark>,
    /// When the fixture started, before the backup.
    before_backup: String,
    source: Option<pgdrill::env::native::NativeTarget>,
}

impl Stanza {
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn pgbackrest(&self, args: &[&str], password: &str) {
        let out = as_server_user("pgbackrest")
            .env("PGPASSWORD", password)
            .arg(format!("--config={}", self.config.display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pgbackrest {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn create(batches: i32) -> Stanza {
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-pitr-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("pgbackrest.conf");
        let archive_command = format!(
            "pgbackrest --config={} --stanza={STANZA} archive-push %p",
            config.display()
        );
        let backend = pgdrill::env::native::NativeBackend::discover("test-pitr").unwrap();
        let mut settings = pgdrill::pg::settings::ServerSettings::default();
        for (k, v) in [
            ("archive_mode", "on"),
            ("wal_level", "replica"),
            ("archive_command", archive_command.as_str()),
        ] {
            settings.set(
                k.into(),
                v.into(),
                pgdrill::pg::settings::SettingOrigin::ServerSetting,
            );
        }
        let source = backend
            .provision_with("pitr-source", &settings)
            .await
            .unwrap_or_else(|e| panic!("cannot start the archiving source: {e}"));
        let sdir = source.dir().unwrap().to_path_buf();
        // job-retry=0: a damaged file is reported at once, not after two 15 s retries.
        std::fs::write(
            &config,
            format!(
                "[global]\nrepo1-path={repo}\nrepo1-retention-full=9\nlock-path={d}/lock\nlog-path={d}/log\nlog-level-file=off\nstart-fast=y\njob-retry=0\n\n[{STANZA}]\npg1-path={data}\npg1-port={port}\npg1-socket-path={sock}\npg1-user=postgres\n",
                repo = dir.path().join("repo").display(),
                d = dir.path().display(),
                data = sdir.join("data").display(),
                port = source.endpoint.port,
                sock = sdir.display(),
            ),
        )
        .unwrap();
        chown_to_server_user(dir.path());
        let password = source.endpoint.password().unwrap_or_default().to_string();
        let admin = source.endpoint.connect().await.unwrap();
        let before_backup: String = admin
            .query_one("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", &[])
            .await
            .unwrap()
            .get(0);
        let mut stanza = Stanza {
            dir,
            config,
            marks: Vec::new(),
            before_backup,
            source: None,
        };
        // The ledger's database and table, and a table with rows, before the backup: a
        // recovery to `immediate` has data to verify and an empty ledger. FILE_COPY: a small
        // WAL record instead of the template's pages.
        admin
            .batch_execute("CREATE DATABASE ledger_db STRATEGY FILE_COPY")
            .await
            .unwrap();
        let c = source
            .endpoint
            .with_db("ledger_db")
            .connect()
            .await
            .unwrap();
        c.batch_execute(
            "CREATE TABLE ledger (id int PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT clock_timestamp()); \
             CREATE TABLE accounts AS SELECT generate_series(1, 10) AS id",
        )
        .await
        .unwrap();
        stanza.pgbackrest(&["stanza-create"], &password);
        stanza.pgbackrest(&["backup", "--type=full"], &password);
        // pgBackRest picks a backup for a time target by whole seconds: the marks come at
        // least a second after the backup's stop.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut last = String::new();
        for batch in 0..batches {
            // One commit per row, so that recovery to any point restores a prefix of the ids.
            for id in batch * 25 + 1..=batch * 25 + 25 {
                c.execute("INSERT INTO ledger (id) VALUES ($1)", &[&id])
                    .await
                    .unwrap();
            }
            stanza.marks.push(mark_of(&c).await);
            // The next commit is after the mark's time, whatever the clock's resolution.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if batch % 2 == 1 || batch == batches - 1 {
                last = c
                    .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
                    .await
                    .unwrap()
                    .get(0);
            }
        }
        // Every commit is in the archive before the drills start.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let archived: Option<String> = c
                .query_one("SELECT last_archived_wal FROM pg_stat_archiver", &[])
                .await
                .unwrap()
                .get(0);
            if archived.as_deref().is_some_and(|a| a >= last.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "segment {last} not archived after 60s (last: {archived:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stanza.source = Some(source);
        stanza
    }

    /// The archived file of WAL segment `name` in the repository.
    fn segment_file(&self, name: &str) -> PathBuf {
        let files: Vec<PathBuf> = self
            .repo_files()
            .into_keys()
            .filter(|p| {
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with(&format!("{name}-")))
            })
            .collect();
        assert_eq!(files.len(), 1, "segment {name} in the archive: {files:?}");
        files[0].clone()
    }

    /// Every file under the repository with its size.
    fn repo_files(&self) -> BTreeMap<PathBuf, u64> {
        support::files_under(&self.repo())
    }
}

/// A native PITR drill of `stanza`, plus `extra`, not started yet.
fn drill_of(stanza: &Stanza, extra: &[&str]) -> Pgdrill {
    let mut args = vec![
        "--pgbackrest-stanza",
        STANZA,
        "--pgbackrest-config",
        stanza.config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Pgdrill::native(args)
}

fn drill(stanza: &Stanza, extra: &[&str]) -> support::Run {
    drill_of(stanza, extra).run()
}

/// The restored ledger's rows, from the report's `pitr` section.
pub(crate) fn ledger_rows(run: &support::Run) -> u64 {
    let r = run.report();
    assert_eq!(r["pitr"]["database"], "ledger_db", "{}", r["pitr"]);
    r["pitr"]["tables"]
        .as_array()
        .expect("pitr.tables")
        .iter()
        .find(|t| t["name"] == "public.ledger")
        .and_then(|t| t["rows"].as_u64())
        .unwrap_or_else(|| panic!("no public.ledger in {}", r["pitr"]))
}

/// A drill with `args` exits 2 saying `words`, and nothing was started: no events, no report.
pub(crate) fn refused_before_anything(args: [&str; 4], words: &[&str]) {
    let missing = Pgdrill::native(args);
    let out = missing.out_dir().to_path_buf();
    let run = missing.run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), words);
    assert!(!out.join("events.ndjson").exists(), "a drill started");
    assert!(run.report.is_none());
}

pub(crate) fn assert_nothing_left(run: &support::Run) {
    let id = run.report()["drill_id"].as_str().unwrap().to_string();
    assert_eq!(support::leftovers(&id), Vec::<String>::new());
}

/// `pgdrill verify --pgbackrest-stanza` of `stanza` (no dump repo), plus `extra`.
fn verify(stanza: &Stanza, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "verify",
        "--pgbackrest-stanza",
        STANZA,
        "--pgbackrest-config",
        stanza.config.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    Pgdrill::new(args).env("PGDRILL_REPO", "").run()
}

/// `pgdrill verify --json`'s document.
pub(crate) fn json_of(run: &support::Run) -> serde_json::Value {
    serde_json::from_slice(&run.output.stdout)
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}):\n{}", run.text()))
}

/// A drill refused with exit 2 before anything started, saying `says`.
fn assert_refused(stanza: &Stanza, extra: &[&str], says: &[&str]) {
    let d = drill_of(stanza, extra);
    let out = d.out_dir().to_path_buf();
    let run = d.run();
    assert_eq!(run.code(), 2, "{extra:?}: {}", run.text());
    support::assert_mentions(&run.text(), says);
    assert!(
        !out.join("events.ndjson").exists(),
        "{extra:?}: a drill started"
    );
}

/// A drill that failed as `backup_unusable` in `phase`, its message naming `names`.
fn assert_unusable(run: &support::Run, phase: &str, names: &[&str]) {
    let f = &run.report()["failure"];
    assert_eq!(
        (run.code(), f["class"].as_str(), f["phase"].as_str()),
        (1, Some("backup_unusable"), Some(phase)),
        "{}",
        run.text()
    );
    support::assert_mentions(f["message"].as_str().unwrap(), names);
    assert_eq!(
        run.phase("checklist")["status"],
        "skipped",
        "{}",
        run.text()
    );
    assert_nothing_left(run);
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The stanza of [`Stanza::create`]`(batches)` with its source stopped (nothing but a drill
/// could change the repository from then on), or `None` when `pgbackrest` is missing.
fn stopped_stanza(test: &str, batches: i32) -> Option<(tokio::runtime::Runtime, Stanza)> {
    if !pgbackrest_or_skip(test) {
        return None;
    }
    let rt = support::runtime();
    let mut stanza = rt.block_on(Stanza::create(batches));
    if let Some(source) = stanza.source.take() {
        rt.block_on(source.destroy()).unwrap();
    }
    Some((rt, stanza))
}

#[test]
fn pitr_drills_of_a_pgbackrest_stanza_reach_their_target_and_never_write_the_repo() {
    // Rows 1–25, A, 26–50, switch, 51–75, B, 76–100, switch.
    let Some((_rt, stanza)) = stopped_stanza("pitr drills", 4) else {
        return;
    };
    let (a, b) = (stanza.marks[0].clone(), stanza.marks[2].clone());
    let before = stanza.repo_files();
    assert!(!before.is_empty());

    // A stanza the repository does not have: refused before anything is provisioned.
    refused_before_anything(
        [
            "--pgbackrest-stanza",
            "no_such_stanza",
            "--pgbackrest-config",
            stanza.config.to_str().unwrap(),
        ],
        &["no_such_stanza", "missing stanza path"],
    );

    // Targets recovery cannot reach, known from `info` and the archive's listing: exit 2.
    assert_refused(
        &stanza,
        &["--target-time", &stanza.before_backup],
        &["no backup ended before the target"],
    );
    assert_refused(
        &stanza,
        &["--target-lsn", "FF/0"],
        &["after the newest archived WAL", "segment"],
    );
    let tomorrow = rfc3339(chrono::Utc::now() + chrono::Duration::days(1));
    assert_refused(
        &stanza,
        &["--target-time", &tomorrow],
        &["after the newest archived WAL", "archived at"],
    );

    // Latest: every committed row.
    let run = drill(&stanza, &["--target", "latest"]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 100, "{}", run.report()["pitr"]);
    let pitr = &run.report()["pitr"];
    assert_eq!(pitr["tool"], "pgbackrest");
    assert_eq!(pitr["stanza"], STANZA);
    assert_eq!(pitr["target"], "latest");
    assert!(pitr["backup"]["label"].as_str().unwrap().ends_with('F'));
    assert!(pitr["backup"]["lsn_stop"].is_string());
    assert!(pitr["wal_max"].is_string());
    assert!(pitr["recovery"]["replay_ms"].is_u64());
    assert_eq!(run.phase("compare")["status"], "skipped");
    assert_eq!(run.phase("recovery_replay")["status"], "pass");
    assert_eq!(run.phase("amcheck")["status"], "pass");
    assert_nothing_left(&run);

    // The LSN after row 75: rows 1–75, none after.
    let run = drill(&stanza, &["--target-lsn", &b.lsn]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 75, "{}", run.report()["pitr"]);
    let promoted = run.report()["pitr"]["recovery"]["promoted_lsn"]
        .as_str()
        .unwrap()
        .parse::<pgdrill::pitr::Lsn>()
        .unwrap();
    assert!(promoted >= b.lsn.parse().unwrap());
    assert_nothing_left(&run);

    // A time between row 25's commit and row 26's: rows 1–25 exactly, the last commit
    // replayed at or before the time.
    let run = drill(&stanza, &["--target-time", &a.time]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 25, "{}", run.report()["pitr"]);
    let stopped: chrono::DateTime<chrono::Utc> = run.report()["pitr"]["recovery"]["stopped_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stopped <= a.time.parse::<chrono::DateTime<chrono::Utc>>().unwrap(),
        "{stopped} after {}",
        a.time
    );
    assert_nothing_left(&run);

    // Just after the commit of the transaction between rows 50 and 51.
    let run = drill(&stanza, &["--target-xid", &stanza.marks[1].xid]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 50, "{}", run.report()["pitr"]);
    support::assert_mentions(
        run.report()["pitr"]["recovery"]["stop_line"]
            .as_str()
            .unwrap(),
        &[&format!("transaction {}", stanza.marks[1].xid)],
    );
    assert_nothing_left(&run);

    // Immediate: the backup alone, from before the ledger's first row.
    let run = drill(&stanza, &["--target", "immediate"]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 0, "{}", run.report()["pitr"]);
    assert_nothing_left(&run);

    // verify: a healthy archive, then the same archive judged a day later.
    let prom = stanza.dir.path().join("pgdrill.prom");
    let run = verify(&stanza, &["--rpo", "1h", "--prom", prom.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.text());
    let v = json_of(&run);
    let p = &v["pgbackrest"];
    assert_eq!(
        (v["ok"].as_bool(), p["ok"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    assert!(v.get("repo").is_none(), "no dump repo was named: {v}");
    assert_eq!(p["wal_gaps"], serde_json::json!([]));
    assert_eq!(p["tool_verify_ok"], true);
    assert_eq!(p["backup_wal"][0]["reachable_to"], p["wal_newest"], "{p}");
    assert_eq!(
        p["wal_newest"].as_str(),
        Some(stanza.marks[3].segment.as_str()),
        "{p}"
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("pgdrill_wal_gaps{tool=\"pgbackrest\",stanza=\"T\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("pgdrill_pgbackrest_verify_ok{tool=\"pgbackrest\",stanza=\"T\"} 1\n"),
        "{text}"
    );
    let later = rfc3339(chrono::Utc::now() + chrono::Duration::days(1));
    let run = verify(&stanza, &["--rpo", "1h", "--at", &later]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let v = json_of(&run);
    let f = &v["pgbackrest"]["findings"];
    assert_eq!(f.as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f[0]["kind"], "stale");
    support::assert_mentions(
        f[0]["subject"].as_str().unwrap(),
        &[&stanza.marks[3].segment],
    );
    assert!(f[0]["seconds"].as_u64().unwrap() > 86_000, "{f}");

    // The drills only read the repository.
    assert_eq!(
        stanza.repo_files(),
        before,
        "a drill wrote into the repository"
    );
}

#[test]
fn pitr_a_gap_or_a_damaged_segment_fails_verify_and_the_drill_naming_it() {
    // Rows 1–25, A, 26–50, switch, 51–75, B, 76–100, switch, 101–125, C, 126–150, switch.
    let Some((_rt, stanza)) = stopped_stanza("pitr faults", 6) else {
        return;
    };
    let (a, b, c) = (
        stanza.marks[0].clone(),
        stanza.marks[2].clone(),
        stanza.marks[4].clone(),
    );
    assert!(
        a.segment < b.segment && b.segment < c.segment,
        "one batch pair per segment: {:?}",
        stanza.marks
    );

    // B's segment gone from the middle of the archive.
    let gap = stanza.segment_file(&b.segment);
    let aside = stanza.dir.path().join("aside");
    std::fs::rename(&gap, &aside).unwrap();

    let run = verify(&stanza, &["--rpo", "1h"]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let v = json_of(&run);
    let p = &v["pgbackrest"];
    assert_eq!(p["wal_gaps"][0]["first_missing"], b.segment.as_str(), "{p}");
    assert_eq!(
        p["backup_wal"][0]["first_missing"],
        b.segment.as_str(),
        "{p}"
    );
    assert_eq!(
        p["backup_wal"][0]["reachable_to"],
        a.segment.as_str(),
        "{p}"
    );
    let gaps: Vec<&serde_json::Value> = p["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "gap")
        .collect();
    assert_eq!(gaps.len(), 1, "{p}");
    assert!(
        gaps[0]["subject"].as_str().unwrap().ends_with(&b.segment),
        "{p}"
    );
    // The tool's own check does not call a gap an error; pgdrill does.
    assert_eq!(p["tool_verify_ok"], true, "{p}");

    // Latest would promote at the gap as if the archive ended there: refused at precheck.
    let run = drill(&stanza, &["--target", "latest"]);
    assert_unusable(&run, "precheck", &[&b.segment, "missing from the archive"]);
    assert_eq!(run.phase("pitr_restore")["status"], "skipped");

    // A time after the gap: PostgreSQL runs out of WAL before the target and stops.
    let run = drill(&stanza, &["--target-time", &c.time]);
    assert_unusable(
        &run,
        "recovery_replay",
        &[
            "recovery ended before configured recovery target was reached",
            &b.segment,
            "missing from the archive",
        ],
    );

    // Before the gap: rows 1–25, as if nothing were missing.
    let run = drill(&stanza, &["--target-time", &a.time]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 25, "{}", run.report()["pitr"]);
    assert_nothing_left(&run);
    std::fs::rename(&aside, &gap).unwrap();

    // C's segment damaged in the middle of its compressed bytes.
    let damaged = stanza.segment_file(&c.segment);
    let name = damaged.file_name().unwrap().to_str().unwrap().to_string();
    let original = std::fs::read(&damaged).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 16].copy_from_slice(b"pgdrill-damaged!");
    std::fs::write(&damaged, &bytes).unwrap();

    let run = verify(&stanza, &["--rpo", "1h"]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let p = &json_of(&run)["pgbackrest"];
    assert_eq!(p["tool_verify_ok"], false, "{p}");
    assert_eq!(p["wal_gaps"], serde_json::json!([]), "{p}");
    let named: Vec<&serde_json::Value> = p["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subject"].as_str().unwrap().ends_with(&name))
        .collect();
    assert_eq!(named.len(), 1, "{p}");
    assert_eq!(named[0]["kind"], "unreadable", "{p}");

    let run = drill(&stanza, &["--target", "latest"]);
    assert_unusable(&run, "precheck", &[&name, "pgbackrest", "verify"]);
    std::fs::write(&damaged, &original).unwrap();

    // A file of the backup itself damaged (the largest, so that its compressed bytes have a
    // middle): pgBackRest's checksum of it fails, and the drill names it before restoring.
    let (file, _) = stanza
        .repo_files()
        .into_iter()
        .filter(|(p, _)| p.components().any(|c| c.as_os_str() == "pg_data"))
        .max_by_key(|(_, size)| *size)
        .expect("a backup file");
    let original = std::fs::read(&file).unwrap();
    let mut bytes = original.clone();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 16].copy_from_slice(b"pgdrill-damaged!");
    std::fs::write(&file, &bytes).unwrap();
    let base = file.file_name().unwrap().to_str().unwrap().to_string();
    let run = verify(&stanza, &["--rpo", "1h"]);
    assert_eq!(run.code(), 1, "{}", run.text());
    assert_eq!(json_of(&run)["pgbackrest"]["tool_verify_ok"], false);
    support::assert_mentions(&run.text(), &[&base]);
    let run = drill(&stanza, &["--target", "latest"]);
    assert_unusable(&run, "precheck", &[&base, "pgbackrest", "verify"]);
    std::fs::write(&file, &original).unwrap();
}

/// With its source reachable (`--pitr-source-dsn`), a drill takes its own recovery point:
/// the ledger writer commits on the source, one transaction fingerprints every table under
/// SHARE locks and is the recovery target, the WAL is switched and archived. The restore is
/// then compared exactly with that snapshot (a changed row fails it), and the ledger gives
/// the data lost: every commit acknowledged before the point restored, none after it.
#[test]
fn pitr_with_its_source_a_drill_recovers_to_its_own_point_exactly_and_measures_the_rpo() {
    if !pgbackrest_or_skip("pitr recovery point") {
        return;
    }
    let rt = support::runtime();
    let mut stanza = rt.block_on(Stanza::create(2));
    let source = stanza.source.take().unwrap();
    let dsn = source.endpoint.with_db("ledger_db").url();

    // A target of its own cannot be held against the point's snapshot: refused.
    let refused = drill(
        &stanza,
        &["--pitr-source-dsn", &dsn, "--target-xid", "1234"],
    );
    assert_eq!(refused.code(), 2, "{}", refused.text());

    let run = drill(&stanza, &["--pitr-source-dsn", &dsn, "--pitr-window", "2s"]);
    run.assert_pass();
    let r = run.report();
    let point = &r["pitr"]["recovery_point"];
    let xid = point["xid"].as_u64().expect("pitr.recovery_point.xid");
    assert_eq!(r["pitr"]["target"], format!("xid {xid}"), "{}", r["pitr"]);
    assert!(point["tables_locked"].as_u64().unwrap() >= 3, "{point}");
    for phase in ["writer_start", "recovery_point", "compare", "rpo"] {
        assert_eq!(
            run.phase(phase)["status"],
            "pass",
            "{phase}: {}",
            run.phase(phase)
        );
    }
    // The ledger: everything acknowledged before the point restored, at least one commit
    // (the one the locks held back) after it and lost, and the window well under a second.
    let rpo = &r["rpo"];
    let acked = rpo["acknowledged_commits"].as_u64().unwrap();
    let restored = rpo["restored_commits"].as_u64().unwrap();
    let lost = rpo["lost_commits"].as_u64().unwrap();
    assert!(restored >= 10, "{rpo}");
    assert_eq!(restored + lost, acked, "{rpo}");
    assert!(rpo["achieved_ms"].as_u64().unwrap() < 1000, "{rpo}");
    assert!(rpo["archive_timeout_ms"].is_u64(), "{rpo}");
    eprintln!(
        "pgbackrest recovery point: rpo {rpo}, point {}",
        r["pitr"]["recovery_point"]
    );
    // The comparison is real: the restored tables against S0, the ledger's among them.
    let tables = r["integrity"]["tables"]
        .as_array()
        .expect("integrity.tables");
    assert!(
        tables
            .iter()
            .any(|t| t["name"] == "pgdrill.rpo_ledger" && t["match"] == true),
        "{tables:?}"
    );
    assert_nothing_left(&run);

    // The source is left as it was: the ledger dropped once the point held it.
    let left: i64 = rt.block_on(async {
        let c = source
            .endpoint
            .with_db("ledger_db")
            .connect()
            .await
            .unwrap();
        c.query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgdrill'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert_eq!(left, 0, "the pgdrill schema stayed on the source");
    // A row changed after the restore: the comparison with S0 fails the drill.
    let tampered = drill(
        &stanza,
        &[
            "--pitr-source-dsn",
            &dsn,
            "--pitr-window",
            "1s",
            "--tamper-sql",
            "UPDATE accounts SET id = 1000 WHERE id = 1",
        ],
    );
    assert_eq!(tampered.code(), 1, "{}", tampered.text());
    assert_eq!(tampered.phase("compare")["status"], "fail");
    support::assert_mentions(&tampered.text(), &["public.accounts"]);
    assert_nothing_left(&tampered);
    rt.block_on(source.destroy()).unwrap();
}

/// A PITR drill of `stanza` on the docker backend, plus `extra`, with `env` set.
fn drill_on_docker(stanza: &Stanza, extra: &[&str], env: &[(&str, &str)]) -> support::Run {
    let mut args = vec![
        "--backend",
        "docker",
        "--app",
        "none",
        "--pgbackrest-stanza",
        STANZA,
        "--pgbackrest-config",
        stanza.config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut d = Pgdrill::drill(args);
    for (k, v) in env {
        d = d.env(k, v);
    }
    d.run()
}

/// On the docker backend pgBackRest restores on this machine into a directory the container
/// mounts, and the restored server fetches WAL with the image's own `pgbackrest archive-get`
/// from the repository, which is mounted read-only: the drill reaches an LSN exactly, a kept
/// container cannot write into the repository, an image without pgbackrest is refused naming
/// it, and nothing is left behind.
#[test]
fn pitr_on_docker_the_restored_server_reads_the_repository_mounted_read_only() {
    let test = "pitr on docker";
    if !crate::docker::postgres_image_or_skip(test) {
        return;
    }
    let Some((_rt, stanza)) = stopped_stanza(test, 4) else {
        return;
    };
    let before = stanza.repo_files();

    // The LSN after row 75: rows 1–75, none after.
    let run = drill_on_docker(&stanza, &["--target-lsn", &stanza.marks[2].lsn], &[]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 75, "{}", run.report()["pitr"]);
    assert_eq!(
        run.report()["environment"]["backend"],
        "docker",
        "{}",
        run.text()
    );
    assert_eq!(run.phase("recovery_replay")["status"], "pass");
    assert_eq!(run.phase("amcheck")["status"], "pass");
    let id = run.report()["drill_id"].as_str().unwrap().to_string();
    assert_nothing_left(&run);
    crate::docker::assert_no_docker_leftovers(&id);

    // Latest, kept: the container has the repository read-only and cannot write into it.
    let run = drill_on_docker(&stanza, &["--target", "latest", "--keep"], &[]);
    let id = run.report()["drill_id"].as_str().unwrap().to_string();
    let ids = String::from_utf8(
        Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=pgdrill.drill={id}")])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let container = ids.split_whitespace().next().map(str::to_string);
    let kept: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("pgdrill-{id}-")))
        })
        .collect();
    let remove = || {
        if let Some(c) = &container {
            Command::new("docker")
                .args(["rm", "-fv", c])
                .output()
                .unwrap();
        }
        Command::new("docker")
            .args(["network", "rm", &format!("pgdrill-{id}")])
            .output()
            .unwrap();
        for d in &kept {
            let _ = std::fs::remove_dir_all(d);
        }
    };
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run.assert_pass();
        assert_eq!(ledger_rows(&run), 100, "{}", run.report()["pitr"]);
        let c = container.as_deref().expect("the kept container");
        let mounts = String::from_utf8(
            Command::new("docker")
                .args(["inspect", "--format", "{{json .Mounts}}", c])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let mounts: serde_json::Value = serde_json::from_str(&mounts).unwrap();
        let repo = stanza.repo().display().to_string();
        let m = mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == repo.as_str())
            .unwrap_or_else(|| panic!("the repository is not mounted: {mounts}"));
        assert_eq!(m["RW"], false, "{m}");
        let wrote = Command::new("docker")
            .args(["exec", c, "touch", &format!("{repo}/pgdrill-was-here")])
            .output()
            .unwrap();
        assert!(!wrote.status.success());
        support::assert_mentions(
            &String::from_utf8_lossy(&wrote.stderr),
            &["Read-only file system"],
        );
    }));
    remove();
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
    crate::docker::assert_no_docker_leftovers(&id);

    // An image without pgbackrest cannot fetch WAL: refused naming the program and the image.
    let run = drill_on_docker(
        &stanza,
        &["--target", "latest"],
        &[(
            "PGDRILL_POSTGRES_IMAGE",
            "pgdrill/debian-base:bookworm-local",
        )],
    );
    assert_eq!(run.code(), 3, "{}", run.text());
    let f = &run.report()["failure"];
    assert_eq!(f["phase"], "pitr_restore", "{f}");
    support::assert_mentions(
        f["message"].as_str().unwrap(),
        &["pgdrill/debian-base:bookworm-local", "has no pgbackrest"],
    );
    let id = run.report()["drill_id"].as_str().unwrap().to_string();
    assert_nothing_left(&run);
    crate::docker::assert_no_docker_leftovers(&id);

    assert_eq!(
        stanza.repo_files(),
        before,
        "a drill wrote into the repository"
    );
}

/// Where the server `c` is now: its insert location, segment, time and a transaction id, as
/// [`Stanza::create`] marks the ledger between batches.
async fn mark_of(c: &tokio_postgres::Client) -> Mark {
    let row = c
        .query_one(
            "SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn()), \
             to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
             pg_current_xact_id()::text",
            &[],
        )
        .await
        .unwrap();
    Mark {
        lsn: row.get(0),
        segment: row.get(1),
        time: row.get(2),
        xid: row.get(3),
    }
}

/// The server a failover starts from the stanza: `pgbackrest restore --type=standby` into a
/// drill-marked temp dir owned by the server user, started by the test WITH archiving into the
/// same stanza (`archive-push` with its own `--pg1-path`, as the promoted primary's
/// configuration would say), so that its promotion pushes `00000002.history` and its WAL.
/// Dropping it stops the server (fast shutdown) and then removes the directory.
struct Failover {
    child: Option<std::process::Child>,
    /// Owns the directory: dropped after the server is stopped.
    target: Option<pgdrill::env::native::NativeTarget>,
    endpoint: pgdrill::env::Endpoint,
}

impl Failover {
    fn start(stanza: &Stanza, source: &pgdrill::env::Endpoint) -> Failover {
        let backend = pgdrill::env::native::NativeBackend::discover("test-pitr").unwrap();
        let target = backend.empty_target("pitr-failover").unwrap();
        let dir = target.dir().unwrap().to_path_buf();
        let data = dir.join("data");
        let password = source.password().unwrap_or_default().to_string();
        stanza.pgbackrest(
            &[
                "restore",
                "--type=standby",
                &format!("--pg1-path={}", data.display()),
            ],
            &password,
        );
        let archive_command = format!(
            "pgbackrest --config={} --stanza={STANZA} --pg1-path={} archive-push %p",
            stanza.config.display(),
            data.display()
        );
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        let mut cmd = Command::new(backend.tools().program("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", "5432", "-k"])
            .arg(&dir)
            // Its socket only, in its own private directory: no port to collide on.
            .args(["-c", "listen_addresses="])
            .args(["-c", "archive_mode=on", "-c", "wal_level=replica"])
            .arg("-c")
            .arg(format!("archive_command={archive_command}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        if let Some(u) = pgdrill::env::native::server_user().unwrap() {
            use std::os::unix::process::CommandExt;
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        let child = cmd.spawn().unwrap();
        let mut endpoint = source.clone();
        endpoint.host = dir.display().to_string();
        endpoint.port = 5432;
        Failover {
            child: Some(child),
            target: Some(target),
            endpoint,
        }
    }

    /// A connection to `db`, once the server accepts them (a standby once consistent).
    async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.endpoint.with_db(db).connect().await {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "the failover server never accepted connections: {e}; log:\n{}",
                    self.log()
                ),
            }
        }
    }

    fn log(&self) -> String {
        self.target
            .as_ref()
            .and_then(|t| t.dir())
            .and_then(|d| std::fs::read_to_string(d.join("postgres.log")).ok())
            .unwrap_or_default()
    }

    /// Fast shutdown, waited for (SIGKILL after 30 s); then the directory goes.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.target.take();
    }
}

impl Drop for Failover {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until the server `c` has archived `segment` (and every segment before it).
async fn archived(c: &tokio_postgres::Client, segment: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last: Option<String> = c
            .query_one("SELECT last_archived_wal FROM pg_stat_archiver", &[])
            .await
            .unwrap()
            .get(0);
        if last.as_deref().is_some_and(|a| a >= segment) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "segment {segment} not archived after 60s (last: {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A failover on a stanza, as it happens: the source (timeline 1, rows 1–25, A, 26–50, the
/// WAL switched) stopped, a copy restored from the stanza as a standby, started archiving
/// into the same stanza and promoted (timeline 2, its history file pushed), rows 51–75, C,
/// switch, 76–100, D, switch on timeline 2. verify follows the history file from the backup
/// on timeline 1 to the newest WAL on timeline 2; drills to latest, to a time on timeline 2
/// and to one on timeline 1 before the switch restore exactly the rows before them; a
/// timeline-2 segment taken out of the path, or the history file, fails verify and `latest`
/// naming it.
#[test]
fn pitr_a_timeline_switch_is_followed_by_verify_and_the_drill() {
    if !pgbackrest_or_skip("pitr timelines") {
        return;
    }
    let rt = support::runtime();
    let mut stanza = rt.block_on(Stanza::create(2));
    let a = stanza.marks[0].clone();
    // The old source stops first: a failover never has two primaries archiving.
    let source = stanza.source.take().unwrap();
    let endpoint = source.endpoint.clone();
    rt.block_on(source.destroy()).unwrap();

    let mut failover = Failover::start(&stanza, &endpoint);
    let (c, d) = rt.block_on(async {
        let admin = failover.connect("postgres").await;
        // Everything archived on timeline 1 replayed, then promoted.
        let until = stanza.marks[1].lsn.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let caught_up: bool = admin
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&until],
                )
                .await
                .unwrap()
                .get(0);
            if caught_up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the standby never replayed {until}:\n{}",
                failover.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let promoted: bool = admin
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .unwrap()
            .get(0);
        assert!(promoted, "{}", failover.log());
        let ledger = failover.connect("ledger_db").await;
        let mut marks = Vec::new();
        for batch in 2..4 {
            for id in batch * 25 + 1..=batch * 25 + 25 {
                ledger
                    .execute("INSERT INTO ledger (id) VALUES ($1)", &[&id])
                    .await
                    .unwrap();
            }
            marks.push(mark_of(&ledger).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
            ledger
                .query_one("SELECT pg_switch_wal()", &[])
                .await
                .unwrap();
        }
        archived(&ledger, &marks[1].segment).await;
        (marks[0].clone(), marks[1].clone())
    });
    failover.stop();
    assert!(
        c.segment.starts_with("00000002")
            && d.segment.starts_with("00000002")
            && c.segment < d.segment,
        "timeline 2, one segment per batch: {c:?} {d:?}"
    );
    let history = stanza
        .repo()
        .join("archive")
        .join(STANZA)
        .join("15-1")
        .join("00000002.history");
    assert!(
        history.is_file(),
        "{:?}",
        stanza.repo_files().keys().collect::<Vec<_>>()
    );

    // verify follows the history file: no gap, the newest segment on timeline 2.
    let prom = stanza.dir.path().join("pgdrill.prom");
    let run = verify(&stanza, &["--rpo", "1h", "--prom", prom.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.text());
    let p = &json_of(&run)["pgbackrest"];
    assert_eq!(p["wal_gaps"], serde_json::json!([]), "{p}");
    // The promoted server's shutdown switched its WAL once more (archiving is on), so the
    // newest segment is D's or the one after it, on timeline 2.
    let newest = p["wal_newest"].as_str().unwrap_or_default();
    assert!(
        newest.starts_with("00000002") && newest >= d.segment.as_str(),
        "{p}"
    );
    assert_eq!(p["wal_newest_timeline"], 2, "{p}");
    assert_eq!(
        p["backup_wal"][0]["timelines"],
        serde_json::json!([1, 2]),
        "{p}"
    );
    assert_eq!(p["backup_wal"][0]["ends_on_timeline"], 2, "{p}");
    assert_eq!(p["backup_wal"][0]["reachable_to"], newest, "{p}");
    assert_eq!(p["timeline_switches"][0]["parent"], 1, "{p}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("pgdrill_wal_newest_timeline{tool=\"pgbackrest\",stanza=\"T\"} 2\n")
            && text.contains("pgdrill_wal_gaps{tool=\"pgbackrest\",stanza=\"T\"} 0\n"),
        "{text}"
    );

    // Latest: every row of both timelines, recovery ended on timeline 2 (promoted to 3).
    let run = drill(&stanza, &["--target", "latest"]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 100, "{}", run.report()["pitr"]);
    let recovery = &run.report()["pitr"]["recovery"];
    assert_eq!(
        (
            recovery["timeline"].as_u64(),
            recovery["promoted_timeline"].as_u64()
        ),
        (Some(2), Some(3)),
        "{recovery}"
    );
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    assert!(
        md.contains("| Timeline | recovery ended on 2, promotion began 3 |"),
        "{md}"
    );
    assert_nothing_left(&run);

    // A time on timeline 2: rows 1–75 exactly.
    let run = drill(&stanza, &["--target-time", &c.time]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 75, "{}", run.report()["pitr"]);
    assert_nothing_left(&run);

    // A time on timeline 1 before the switch: rows 1–25 exactly.
    let run = drill(&stanza, &["--target-time", &a.time]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 25, "{}", run.report()["pitr"]);
    assert_nothing_left(&run);

    // Timeline 2's first segment, in the middle of the path, gone.
    let gap = stanza.segment_file(&c.segment);
    let aside = stanza.dir.path().join("aside");
    std::fs::rename(&gap, &aside).unwrap();
    let run = verify(&stanza, &["--rpo", "1h"]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let p = &json_of(&run)["pgbackrest"];
    assert_eq!(p["wal_gaps"][0]["first_missing"], c.segment.as_str(), "{p}");
    assert_eq!(
        p["backup_wal"][0]["first_missing"],
        c.segment.as_str(),
        "{p}"
    );
    assert!(
        p["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "gap" && f["subject"].as_str().unwrap().ends_with(&c.segment)),
        "{p}"
    );
    let run = drill(&stanza, &["--target", "latest"]);
    assert_unusable(&run, "precheck", &[&c.segment, "missing from the archive"]);
    // A time after it: PostgreSQL runs out of WAL at the switch, and the segment it lacked is
    // named on timeline 2, not the parent's.
    let run = drill(&stanza, &["--target-time", &d.time]);
    assert_unusable(
        &run,
        "recovery_replay",
        &[
            "recovery ended before configured recovery target was reached",
            &c.segment,
            "missing from the archive",
        ],
    );
    std::fs::rename(&aside, &gap).unwrap();

    // The history file gone: PostgreSQL would stay on timeline 1 and lose rows 51–100.
    std::fs::rename(&history, &aside).unwrap();
    let run = verify(&stanza, &["--rpo", "1h"]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let p = &json_of(&run)["pgbackrest"];
    let missing: Vec<&serde_json::Value> = p["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "missing_file")
        .collect();
    assert_eq!(missing.len(), 1, "{p}");
    assert!(
        missing[0]["subject"]
            .as_str()
            .unwrap()
            .ends_with("00000002.history"),
        "{p}"
    );
    let run = drill(&stanza, &["--target", "latest"]);
    assert_unusable(&run, "precheck", &["00000002.history", "timeline 2"]);
    std::fs::rename(&aside, &history).unwrap();
}
