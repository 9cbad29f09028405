//! Point-in-time recovery of a Barman server (issue 23), with the real `barman`: a native
//! source streamed to a Barman catalogue in a temp dir (`backup_method = postgres`,
//! `pg_receivewal` through `barman receive-wal`, no SSH), a backup, a ledger written after it
//! in two batches, then drills to `latest`, to a time and to a transaction id between the
//! batches, each checked against the ledger's exact boundary; a server Barman does not know
//! is refused before anything starts; the catalogue is never written by a drill; a WAL
//! segment the backup needs, deleted, fails the drill at precheck. Skipped when `barman` is
//! not installed, unless PGDRILL_REQUIRE_BARMAN=1 (CI).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::pitr::{assert_nothing_left, ledger_rows, refused_before_anything};
use crate::support::{self, Pgdrill};

const SERVER: &str = "pg";

/// True when `barman` runs here; otherwise skips, or fails with PGDRILL_REQUIRE_BARMAN=1 (CI).
fn barman_or_skip(test: &str) -> bool {
    support::tool_or_skip("barman", &["--version"], "PGDRILL_REQUIRE_BARMAN", test)
}

/// A source streamed into a Barman catalogue, backed up, with a ledger written after the
/// backup: rows 1–50, a time after their commits, rows 51–100, every WAL segment archived.
struct Catalogue {
    dir: tempfile::TempDir,
    config: PathBuf,
    time_between: String,
    xid_50: String,
    receiver: Option<std::process::Child>,
    source: Option<pgdrill::env::native::NativeTarget>,
}

impl Catalogue {
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn barman(&self, args: &[&str]) -> String {
        let out = Command::new("barman")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "barman {args:?}: {text}");
        text
    }

    async fn create() -> Catalogue {
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-barman-")
            .tempdir()
            .unwrap();
        // Barman drops to its own user when run as root; it must reach its home and log.
        let user = if nix::unistd::Uid::effective().is_root() {
            "barman".to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["home", "log"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        if nix::unistd::Uid::effective().is_root() {
            let out = Command::new("chown")
                .args(["-R", "barman:barman"])
                .arg(dir.path().join("home"))
                .arg(dir.path().join("log"))
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let backend = pgdrill::env::native::NativeBackend::discover("test-barman").unwrap();
        let mut settings = pgdrill::pg::settings::ServerSettings::default();
        for (k, v) in [("wal_level", "replica"), ("max_wal_senders", "4")] {
            settings.set(
                k.into(),
                v.into(),
                pgdrill::pg::settings::SettingOrigin::ServerSetting,
            );
        }
        let source = backend
            .provision_with("barman-source", &settings)
            .await
            .unwrap_or_else(|e| panic!("cannot start the streamed source: {e}"));
        let password = source.endpoint.password().unwrap_or_default().to_string();
        let bindir = String::from_utf8(
            Command::new("pg_config")
                .arg("--bindir")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres password={password}",
            source.endpoint.port
        );
        let config = dir.path().join("barman.conf");
        std::fs::write(
            &config,
            format!(
                "[barman]\nbarman_user = {user}\nbarman_home = {home}\nlog_file = {log}\nlog_level = INFO\n\n[{SERVER}]\ndescription = pgdrill test source\nconninfo = {conn} dbname=postgres\nstreaming_conninfo = {conn}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = pgdrill_test\npath_prefix = {bin}\n",
                home = dir.path().join("home").display(),
                log = dir.path().join("log/barman.log").display(),
                bin = bindir.trim(),
            ),
        )
        .unwrap();
        let mut cat = Catalogue {
            dir,
            config,
            time_between: String::new(),
            xid_50: String::new(),
            receiver: None,
            source: None,
        };
        // `check` creates the server's directories (as `barman cron` would), which the WAL
        // archiving of `switch-wal --archive` needs; it fails only for want of WAL yet.
        let _ = Command::new("barman")
            .arg("-c")
            .arg(&cat.config)
            .args(["check", SERVER])
            .output();
        cat.barman(&["receive-wal", "--create-slot", SERVER]);
        // pg_receivewal, in the foreground of a child this test owns and ends.
        cat.receiver = Some(
            Command::new("barman")
                .arg("-c")
                .arg(&cat.config)
                .args(["receive-wal", SERVER])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        // The slot reserves no WAL until pg_receivewal streams from it: a segment switched
        // before that would never reach the catalogue.
        let admin = source.endpoint.connect().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let streaming: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if streaming > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "barman receive-wal did not stream within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cat.barman(&["switch-wal", "--force", "--archive", SERVER]);
        cat.barman(&["backup", "--wait", SERVER]);
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
        c.batch_execute("CREATE TABLE ledger (id int PRIMARY KEY)")
            .await
            .unwrap();
        // One commit per row, so that recovery to any point restores a prefix of the ids.
        for id in 1..50 {
            c.execute("INSERT INTO ledger (id) VALUES ($1)", &[&id])
                .await
                .unwrap();
        }
        // The 50th commit's transaction id: a --target-xid between the batches.
        cat.xid_50 = c
            .query_one(
                "INSERT INTO ledger (id) VALUES (50) RETURNING pg_current_xact_id()::text",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        // Read after the 50th commit returned, before the 51st began: between them.
        tokio::time::sleep(Duration::from_millis(20)).await;
        cat.time_between = c
            .query_one(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        for id in 51..=100 {
            c.execute("INSERT INTO ledger (id) VALUES ($1)", &[&id])
                .await
                .unwrap();
        }
        // Every commit is in the catalogue before the drills start.
        cat.barman(&["switch-wal", "--force", "--archive", SERVER]);
        cat.source = Some(source);
        cat
    }

    /// Every file under the catalogue with its size, but Barman's lock files (`.pg-*.lock`
    /// at its home's top), which Barman itself creates for a recovery as for every command
    /// that takes a lock: they hold a process id, not backups or WAL.
    fn files(&self) -> BTreeMap<PathBuf, u64> {
        let mut out = support::files_under(&self.home());
        out.retain(|p, _| {
            !(p.parent() == Some(self.home().as_path())
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.') && n.ends_with(".lock")))
        });
        out
    }

    /// Ends the streaming, so that nothing but a drill could change the catalogue.
    fn stop_streaming(&mut self) {
        if let Some(mut child) = self.receiver.take() {
            let _ = Command::new("barman")
                .arg("-c")
                .arg(&self.config)
                .args(["receive-wal", "--stop", SERVER])
                .output();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Catalogue {
    fn drop(&mut self) {
        self.stop_streaming();
    }
}

fn drill(cat: &Catalogue, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "--barman-server",
        SERVER,
        "--barman-config",
        cat.config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Pgdrill::native(args).run()
}

#[test]
fn pitr_drills_of_a_barman_server_reach_their_target_and_never_write_the_catalogue() {
    if !barman_or_skip("barman drills") {
        return;
    }
    let rt = support::runtime();
    let mut cat = rt.block_on(Catalogue::create());
    cat.stop_streaming();
    if let Some(source) = cat.source.take() {
        rt.block_on(source.destroy()).unwrap();
    }
    let before = cat.files();
    assert!(!before.is_empty());

    // A server Barman does not know: refused before anything is provisioned.
    refused_before_anything(
        [
            "--barman-server",
            "no_such_server",
            "--barman-config",
            cat.config.to_str().unwrap(),
        ],
        &["no_such_server", "Unknown server"],
    );

    // Latest: every committed row.
    let run = drill(&cat, &["--target", "latest"]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 100, "{}", run.report()["pitr"]);
    let pitr = &run.report()["pitr"];
    assert_eq!(pitr["tool"], "barman");
    assert_eq!(pitr["server"], SERVER);
    assert!(pitr.get("stanza").is_none(), "{pitr}");
    assert_eq!(run.report()["source"]["kind"], "barman");
    assert!(pitr["tool_version"]
        .as_str()
        .unwrap()
        .starts_with("Barman "));
    assert!(pitr["backup"]["lsn_stop"].is_string());
    assert!(pitr["wal_max"].is_string());
    assert_eq!(run.phase("precheck")["status"], "pass");
    support::assert_mentions(
        run.phase("precheck")["detail"].as_str().unwrap(),
        &["barman check-backup"],
    );
    assert_eq!(run.phase("recovery_replay")["status"], "pass");
    assert_eq!(run.phase("amcheck")["status"], "pass");
    assert_nothing_left(&run);

    // A time between the batches: rows 1–50, none after.
    let run = drill(&cat, &["--target-time", &cat.time_between]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 50, "{}", run.report()["pitr"]);
    support::assert_mentions(
        run.phase("recovery_replay")["detail"].as_str().unwrap(),
        &["recovery stopping before commit"],
    );
    assert_nothing_left(&run);

    // The 50th commit's transaction: rows 1–50, none after.
    let run = drill(&cat, &["--target-xid", &cat.xid_50]);
    run.assert_pass();
    assert_eq!(ledger_rows(&run), 50, "{}", run.report()["pitr"]);
    assert_nothing_left(&run);

    // The drills only read the catalogue.
    let after = cat.files();
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, size)| after.get(*p) != Some(*size))
        .map(|(p, _)| p.display().to_string())
        .chain(
            after
                .keys()
                .filter(|p| !before.contains_key(*p))
                .map(|p| format!("new: {}", p.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "a drill wrote into the catalogue: {changed:?}"
    );

    // The WAL segment the backup starts in, lost from the catalogue: Barman's own check
    // fails, and so does the drill, at precheck, as backup_unusable naming the check; it is
    // never recovered into a pass.
    let first = cat
        .files()
        .into_keys()
        .filter(|p| p.parent().and_then(|d| d.parent()) == Some(&cat.home().join("pg/wals")))
        .min()
        .expect("an archived segment");
    std::fs::remove_file(&first).unwrap();
    let run = drill(&cat, &["--target", "latest"]);
    let r = run.report();
    assert_eq!(r["verdict"], "fail", "{}", run.text());
    assert_eq!(
        (
            r["failure"]["phase"].as_str(),
            r["failure"]["class"].as_str()
        ),
        (Some("precheck"), Some("backup_unusable")),
        "{}",
        r["failure"]
    );
    support::assert_mentions(
        r["failure"]["message"].as_str().unwrap_or_default(),
        &[
            "barman check-backup",
            first.file_name().unwrap().to_str().unwrap(),
        ],
    );
    assert_ne!(run.code(), 0);
    assert_nothing_left(&run);
}
