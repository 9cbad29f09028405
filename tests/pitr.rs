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

/// True when `pgbackrest` runs here; otherwise says why and skips, or fails with
/// PGDRILL_REQUIRE_PGBACKREST=1 (CI).
fn pgbackrest_or_skip(test: &str) -> bool {
    let installed = Command::new("pgbackrest")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return true;
    }
    if std::env::var("PGDRILL_REQUIRE_PGBACKREST").is_ok_and(|v| v == "1") {
        panic!("PGDRILL_REQUIRE_PGBACKREST=1 but `pgbackrest` is not installed (scripts/setup.sh installs it)");
    }
    eprintln!("skipped: {test}: `pgbackrest` is not installed (scripts/setup.sh installs it)");
    false
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

/// A source archiving into a pgBackRest stanza, backed up, with a ledger written after the
/// backup: rows 1–50, the LSN after them, rows 51–100, every WAL segment archived.
struct Stanza {
    dir: tempfile::TempDir,
    config: PathBuf,
    lsn_between: String,
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

    async fn create() -> Stanza {
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
        std::fs::write(
            &config,
            format!(
                "[global]\nrepo1-path={repo}\nrepo1-retention-full=9\nlock-path={d}/lock\nlog-path={d}/log\nlog-level-file=off\nstart-fast=y\n\n[{STANZA}]\npg1-path={data}\npg1-port={port}\npg1-socket-path={sock}\npg1-user=postgres\n",
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
        let mut stanza = Stanza {
            dir,
            config,
            lsn_between: String::new(),
            source: None,
        };
        stanza.pgbackrest(&["stanza-create"], &password);
        stanza.pgbackrest(&["backup", "--type=full"], &password);
        let admin = source.endpoint.connect().await.unwrap();
        admin
            .batch_execute("CREATE DATABASE ledger_db")
            .await
            .unwrap();
        let c = source
            .endpoint
            .with_db("ledger_db")
            .connect()
            .await
            .unwrap();
        c.batch_execute(
            "CREATE TABLE ledger (id int PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT clock_timestamp())",
        )
        .await
        .unwrap();
        // One commit per row, so that recovery to any point restores a prefix of the ids.
        for id in 1..=50 {
            c.execute("INSERT INTO ledger (id) VALUES ($1)", &[&id])
                .await
                .unwrap();
        }
        let lsn: String = c
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        for id in 51..=100 {
            c.execute("INSERT INTO ledger (id) VALUES ($1)", &[&id])
                .await
                .unwrap();
        }
        let segment: String = c
            .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
            .await
            .unwrap()
            .get(0);
        // Every commit is in the archive before the drills start.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let archived: Option<String> = c
                .query_one("SELECT last_archived_wal FROM pg_stat_archiver", &[])
                .await
                .unwrap()
                .get(0);
            if archived.as_deref().is_some_and(|a| a >= segment.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "segment {segment} not archived after 60s (last: {archived:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stanza.lsn_between = lsn;
        stanza.source = Some(source);
        stanza
    }

    /// Every file under the repository with its size.
    fn repo_files(&self) -> BTreeMap<PathBuf, u64> {
        support::files_under(&self.repo())
    }
}

fn drill(stanza: &Stanza, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "--pgbackrest-stanza",
        STANZA,
        "--pgbackrest-config",
        stanza.config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Pgdrill::native(args).run()
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

#[test]
fn pitr_drills_of_a_pgbackrest_stanza_reach_their_target_and_never_write_the_repo() {
    if !pgbackrest_or_skip("pitr drills") {
        return;
    }
    let rt = support::runtime();
    let mut stanza = rt.block_on(Stanza::create());
    // The source stops: nothing but a drill could change the repository from here on.
    if let Some(source) = stanza.source.take() {
        rt.block_on(source.destroy()).unwrap();
    }
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

    // An LSN between the batches: rows 1–50, none after.
    let run = drill(&stanza, &["--target-lsn", &stanza.lsn_between]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 50, "{}", run.report()["pitr"]);
    let promoted = run.report()["pitr"]["recovery"]["promoted_lsn"]
        .as_str()
        .unwrap()
        .parse::<pgdrill::pitr::Lsn>()
        .unwrap();
    assert!(promoted >= stanza.lsn_between.parse().unwrap());
    assert_nothing_left(&run);

    // The drills only read the repository.
    assert_eq!(
        stanza.repo_files(),
        before,
        "a drill wrote into the repository"
    );
}
