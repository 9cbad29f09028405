//! Point-in-time recovery of a Barman server (issue 23), with the real `barman`: a native
//! source streamed to a Barman catalogue in a temp dir (`backup_method = postgres`,
//! `pg_receivewal` through `barman receive-wal`, no SSH), a backup, a ledger written after it
//! in two batches, then drills to `latest`, to a time and to a transaction id between the
//! batches, each checked against the ledger's exact boundary; a server Barman does not know
//! is refused before anything starts; the catalogue is never written by a drill; a WAL
//! segment the backup needs, deleted, fails the drill at precheck. `pgdrill verify
//! --barman-server` of a healthy streaming server is clean, judged a day later is `stale`,
//! names a segment deleted from the middle of the range as a `gap` and a check `barman check`
//! fails as a `tool_check`, refuses an unknown server, a configuration Barman cannot read
//! and a missing `barman`, and leaves every file of the catalogue as it was. Skipped when
//! `barman` is not installed, unless PGDRILL_REQUIRE_BARMAN=1 (CI).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::pitr::{assert_nothing_left, json_of, ledger_rows, refused_before_anything};
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
        // immediate_checkpoint: pg_basebackup's default spread checkpoint paces the source's
        // dirty buffers over its checkpoint_timeout, which a test would wait out.
        std::fs::write(
            &config,
            format!(
                "[barman]\nbarman_user = {user}\nbarman_home = {home}\nlog_file = {log}\nlog_level = INFO\n\n[{SERVER}]\ndescription = pgdrill test source\nconninfo = {conn} dbname=postgres\nstreaming_conninfo = {conn}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = pgdrill_test\nimmediate_checkpoint = true\npath_prefix = {bin}\n",
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

    /// [`Catalogue::files`] with each file's modification time: a file rewritten with the
    /// same size differs too.
    fn stamps(&self) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
        self.files()
            .into_iter()
            .map(|(p, size)| {
                let t = std::fs::metadata(&p).unwrap().modified().unwrap();
                (p, (size, t))
            })
            .collect()
    }

    /// The archived WAL segments' files (`pg/wals/<timeline+log>/<segment>`), in order.
    fn segments(&self) -> Vec<PathBuf> {
        self.files()
            .into_keys()
            .filter(|p| p.parent().and_then(|d| d.parent()) == Some(&self.home().join("pg/wals")))
            .filter(|p| p.file_name().is_some_and(|n| n.len() == 24))
            .collect()
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

    // The same on the docker backend: `barman recover` copies the WAL the recovery needs
    // into the data directory, which the container mounts; the catalogue is never mounted.
    if crate::docker::postgres_image_or_skip("barman drill on docker") {
        let mut args = vec![
            "--backend",
            "docker",
            "--app",
            "none",
            "--barman-server",
            SERVER,
            "--barman-config",
            cat.config.to_str().unwrap(),
        ];
        args.extend(["--target-xid", &cat.xid_50]);
        let run = Pgdrill::drill(args).run();
        run.assert_pass();
        assert_eq!(ledger_rows(&run), 50, "{}", run.report()["pitr"]);
        assert_eq!(run.report()["environment"]["backend"], "docker");
        assert_nothing_left(&run);
        crate::docker::assert_no_docker_leftovers(run.report()["drill_id"].as_str().unwrap());
    }

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

    // The segment after the backup's, which holds the ledger's commits, damaged where
    // recovery must read it (its first page header): Barman keeps no checksum of a WAL file
    // to tell, PostgreSQL's replay takes the damage for the end of the WAL and would promote
    // there with every ledger row lost; `latest` must fail naming the segment, never pass.
    let segments = cat.segments();
    assert!(segments.len() >= 2, "{segments:?}");
    let damaged = segments[1].clone();
    let original = std::fs::read(&damaged).unwrap();
    let mut bytes = original.clone();
    bytes[..16].copy_from_slice(&[0xA5; 16]);
    std::fs::write(&damaged, &bytes).unwrap();
    let run = drill(&cat, &["--target", "latest"]);
    std::fs::write(&damaged, &original).unwrap();
    let r = run.report();
    assert_eq!(r["verdict"], "fail", "{}", run.text());
    assert_eq!(r["failure"]["class"], "backup_unusable", "{}", r["failure"]);
    support::assert_mentions(
        r["failure"]["message"].as_str().unwrap_or_default(),
        &[damaged.file_name().unwrap().to_str().unwrap()],
    );
    assert_nothing_left(&run);

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

/// `pgdrill verify --barman-server` of the catalogue's server (no dump repo), plus `extra`.
fn verify(cat: &Catalogue, extra: &[&str]) -> support::Run {
    let mut args = vec![
        "verify",
        "--barman-server",
        SERVER,
        "--barman-config",
        cat.config.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    Pgdrill::new(args).env("PGDRILL_REPO", "").run()
}

/// The findings of `kind` in a verify's `barman` document.
fn findings<'a>(b: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    b["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

#[test]
fn verify_of_a_barman_server_names_stale_wal_a_gap_and_barman_s_failed_checks_read_only() {
    if !barman_or_skip("barman verify") {
        return;
    }
    let rt = support::runtime();
    let mut cat = rt.block_on(Catalogue::create());
    // Two more segments, so that one in the middle of the range can go.
    for _ in 0..2 {
        cat.barman(&["switch-wal", "--force", "--archive", SERVER]);
    }

    // Healthy and streaming: no finding, exit 0, the metrics labelled with tool and server.
    let prom = cat.dir.path().join("pgdrill.prom");
    let run = verify(&cat, &["--rpo", "1h", "--prom", prom.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.text());
    let v = json_of(&run);
    let b = &v["barman"];
    assert_eq!(
        (v["ok"].as_bool(), b["ok"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    assert!(
        v.get("repo").is_none() && v.get("pgbackrest").is_none(),
        "{v}"
    );
    assert_eq!(b["server"], SERVER);
    assert_eq!(b["backups"], 1, "{b}");
    assert_eq!(b["wal_gaps"], serde_json::json!([]));
    assert_eq!(b["checks_failed"], 0, "{b}");
    assert!(!b["checks"].as_array().unwrap().is_empty(), "{b}");
    assert_eq!(b["backup_wal"][0]["reachable_to"], b["wal_newest"], "{b}");
    assert_eq!(b["backup_wal"][0]["tool_status"], "DONE", "{b}");
    let segments = cat.segments();
    assert_eq!(
        b["wal_newest"].as_str(),
        segments
            .last()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str()),
        "{b}"
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    for line in [
        "pgdrill_wal_gaps{tool=\"barman\",server=\"pg\"} 0\n",
        "pgdrill_barman_checks_failed{tool=\"barman\",server=\"pg\"} 0\n",
        "pgdrill_barman_verify_ok{tool=\"barman\",server=\"pg\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }

    // With its source, a drill takes its own recovery point, waits for Barman to archive it
    // (`barman switch-wal --archive`), recovers to it and compares exactly with S0.
    let dsn = cat
        .source
        .as_ref()
        .unwrap()
        .endpoint
        .with_db("ledger_db")
        .url();
    let mut args = vec![
        "--barman-server",
        SERVER,
        "--barman-config",
        cat.config.to_str().unwrap(),
    ];
    args.extend(["--pitr-source-dsn", &dsn, "--pitr-window", "1s"]);
    let run = Pgdrill::native(args).run();
    run.assert_pass();
    for phase in ["recovery_point", "compare", "rpo"] {
        assert_eq!(
            run.phase(phase)["status"],
            "pass",
            "{phase}: {}",
            run.text()
        );
    }
    let rpo = &run.report()["rpo"];
    let (acked, restored, lost) = (
        rpo["acknowledged_commits"].as_u64().unwrap(),
        rpo["restored_commits"].as_u64().unwrap(),
        rpo["lost_commits"].as_u64().unwrap(),
    );
    assert!(restored >= 5, "{rpo}");
    assert_eq!(restored + lost, acked, "{rpo}");
    assert!(rpo["achieved_ms"].as_u64().unwrap() < 1000, "{rpo}");
    eprintln!(
        "barman recovery point: rpo {rpo}, point {}",
        run.report()["pitr"]["recovery_point"]
    );
    assert_nothing_left(&run);

    // The same archive judged a day later: its newest segment is stale.
    let later = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let run = verify(&cat, &["--rpo", "1h", "--at", &later]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let v = json_of(&run);
    let f = &v["barman"]["findings"];
    assert_eq!(f.as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f[0]["kind"], "stale");
    support::assert_mentions(
        f[0]["subject"].as_str().unwrap(),
        &[v["barman"]["wal_newest"].as_str().unwrap()],
    );
    assert!(f[0]["seconds"].as_u64().unwrap() > 86_000, "{f}");

    // From here nothing but pgdrill could write the catalogue.
    cat.stop_streaming();
    let before = cat.stamps();
    let config = cat.config.to_str().unwrap();

    // A server Barman does not know, a configuration it cannot read: exit 2 naming the fix.
    let run = Pgdrill::new([
        "verify",
        "--barman-server",
        "no_such_server",
        "--barman-config",
        config,
    ])
    .env("PGDRILL_REPO", "")
    .run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(
        &run.text(),
        &[
            "--barman-server no_such_server",
            "Unknown server",
            "barman list-servers",
        ],
    );
    let missing = cat.dir.path().join("no-such.conf");
    let run = Pgdrill::new([
        "verify",
        "--barman-server",
        SERVER,
        "--barman-config",
        missing.to_str().unwrap(),
    ])
    .env("PGDRILL_REPO", "")
    .run();
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), &["--barman-config"]);
    // `barman` missing: exit 3, naming the package.
    let run = Pgdrill::new([
        "verify",
        "--barman-server",
        SERVER,
        "--barman-config",
        config,
    ])
    .env("PGDRILL_REPO", "")
    .env("PATH", "/nonexistent")
    .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    support::assert_mentions(&run.text(), &["apt-get install barman"]);

    // A segment from the middle of the range gone: a gap naming it, recovery from the backup
    // reaching the segment before it; `receive-wal` stopped, Barman's own check fails and
    // pgdrill says which.
    let start = b["backup_wal"][0]["wal_start"]
        .as_str()
        .unwrap()
        .to_string();
    let after: Vec<&PathBuf> = segments
        .iter()
        .filter(|p| p.file_name().unwrap().to_str().unwrap() > start.as_str())
        .collect();
    assert!(after.len() >= 2, "segments after {start}: {segments:?}");
    let gone = after[0].clone();
    let name = gone.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&gone).unwrap();
    let run = verify(&cat, &["--rpo", "1h"]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let v = json_of(&run);
    let b = &v["barman"];
    assert_eq!(b["wal_gaps"][0]["first_missing"], name.as_str(), "{b}");
    assert_eq!(b["backup_wal"][0]["first_missing"], name.as_str(), "{b}");
    assert_eq!(b["backup_wal"][0]["reachable_to"], start.as_str(), "{b}");
    let gaps = findings(b, "gap");
    assert_eq!(gaps.len(), 1, "{b}");
    support::assert_mentions(gaps[0]["subject"].as_str().unwrap(), &[&name]);
    support::assert_mentions(gaps[0]["message"].as_str().unwrap(), &[&name, "is missing"]);
    let checks = findings(b, "tool_check");
    assert!(
        checks.iter().any(|f| f["subject"]
            .as_str()
            .unwrap()
            .contains("receive_wal_running")),
        "{b}"
    );
    assert!(b["checks_failed"].as_u64().unwrap() >= 1, "{b}");

    // Every verify only read the catalogue: its files, sizes and times as they were, but for
    // the segment the test deleted (Barman's lock files are left out of the listing).
    let mut expected = before;
    expected.remove(&gone);
    assert_eq!(cat.stamps(), expected, "verify wrote into the catalogue");
}
