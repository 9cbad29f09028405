//! `pgdrill config backup|restore` with the real age crate and the real age/age-keygen
//! programs: round trip, interoperability, wrong identity, tampering, keys, picking, modes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Pgdrill, Run};

const CANARY: &str = "CANARY-7f3a9e1d-secret";
const WG: &str = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.0.0.2/32\n\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = vpn.example.org:51820\nAllowedIPs = 0.0.0.0/0\n";

/// A scratch dir with a repo, config files and an identity from the real age-keygen.
struct Fixture {
    dir: tempfile::TempDir,
    public: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-config-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let out = Command::new("age-keygen")
            .arg("-o")
            .arg(d.join("identity.txt"))
            .output()
            .expect("age-keygen runs (scripts/setup.sh installs the age package)");
        assert!(out.status.success(), "{out:?}");
        let public = String::from_utf8(
            Command::new("age-keygen")
                .arg("-y")
                .arg(d.join("identity.txt"))
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string();
        std::fs::create_dir(d.join("etc")).unwrap();
        write(
            &d.join("etc/.env"),
            &format!("DATABASE_URL=postgres://app@db/app\nSTRIPE_KEY={CANARY}\nEMPTY=\n"),
            0o600,
        );
        write(&d.join("etc/api.key"), &format!("{CANARY}-api\n"), 0o640);
        write(&d.join("etc/wg0.conf"), WG, 0o600);
        Fixture { dir, public }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }

    fn backup(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "config".to_string(),
            "backup".into(),
            "--repo".into(),
            self.s("repo"),
        ];
        for f in ["etc/.env", "etc/api.key", "etc/wg0.conf"] {
            args.extend(["--file".into(), self.s(f)]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Pgdrill::new(args).env("PGDRILL_LOG", "debug").run()
    }

    fn restore(&self, to: &str, extra: &[&str]) -> Run {
        let mut args: Vec<String> = ["config", "restore", "--repo"].map(String::from).to_vec();
        args.extend([
            self.s("repo"),
            "--identity".into(),
            self.s("identity.txt"),
            "--to".into(),
            self.s(to),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Pgdrill::new(args).env("PGDRILL_LOG", "debug").run()
    }

    fn archives(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.p("repo/config"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.to_string_lossy().ends_with(".tar.age") || p.to_string_lossy().ends_with(".tar")
            })
            .collect();
        v.sort();
        v
    }
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file under the repo (the archive is ciphertext, so it cannot hold the canary in clear).
fn assert_no_canary(f: &Fixture, runs: &[&Run]) {
    for run in runs {
        assert!(
            !run.text().contains("CANARY"),
            "canary in output:\n{}",
            run.text()
        );
    }
    for e in std::fs::read_dir(f.p("repo/config")).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("CANARY"),
            "canary in {}",
            e.path().display()
        );
    }
}

#[test]
fn config_round_trip_with_age_cli_interop_modes_and_no_secret_anywhere() {
    let f = Fixture::new();
    let b = f.backup(&[
        "--recipient",
        &f.public,
        "--kind",
        "manual",
        "--reason",
        "before deploy 42",
    ]);
    assert_eq!(b.code(), 0, "{}", b.text());
    let archives = f.archives();
    assert_eq!(archives.len(), 1);
    let name = archives[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        name.starts_with("config_") && name.ends_with(".tar.age"),
        "{name}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.p(&format!(
            "repo/config/{}.manifest.json",
            name.trim_end_matches(".tar.age")
        )))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["manifest_version"], 1);
    assert_eq!(manifest["encrypted"], true);
    assert_eq!(manifest["kind"], "manual");
    assert_eq!(manifest["recipients"][0], f.public.as_str());
    assert_eq!(
        manifest["sha256"],
        pgdrill::digest::sha256_hex(&std::fs::read(&archives[0]).unwrap()).as_str()
    );
    assert_eq!(
        manifest["files"][0]["keys"],
        serde_json::json!(["DATABASE_URL", "STRIPE_KEY", "EMPTY"])
    );
    assert_eq!(manifest["files"][0]["mode"], "0600");
    assert_eq!(manifest["files"][2]["keys"][0], "Interface.PrivateKey");

    // Interoperability: the age program decrypts what the age crate wrote, into a tar that
    // holds the three files.
    let out = Command::new("age")
        .args(["--decrypt", "-i"])
        .arg(f.p("identity.txt"))
        .arg("-o")
        .arg(f.p("plain.tar"))
        .arg(&archives[0])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut ar = tar::Archive::new(std::fs::File::open(f.p("plain.tar")).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, [".env", "api.key", "wg0.conf"]);

    let r = f.restore(
        "restored",
        &[
            "--require",
            "STRIPE_KEY",
            "--require",
            "Peer.Endpoint",
            "--require",
            "api.key",
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.text());
    assert_eq!(
        std::fs::read(f.p("restored/.env")).unwrap(),
        std::fs::read(f.p("etc/.env")).unwrap()
    );
    assert_eq!(
        std::fs::read(f.p("restored/wg0.conf")).unwrap(),
        WG.as_bytes()
    );
    assert_eq!(mode(&f.p("restored/.env")), 0o600);
    assert_eq!(mode(&f.p("restored/api.key")), 0o640);
    assert!(
        r.text().contains("wg0.conf parses as a WireGuard config"),
        "{}",
        r.text()
    );
    assert_no_canary(&f, &[&b, &r]);
}

#[test]
fn config_restore_refuses_wrong_identity_tampering_and_missing_or_empty_keys() {
    let f = Fixture::new();
    let b = f.backup(&["--recipient", &f.public]);
    assert_eq!(b.code(), 0, "{}", b.text());

    let missing = f.restore("t1", &["--require", "NOT_THERE"]);
    assert_eq!(missing.code(), 1, "{}", missing.text());
    assert!(
        missing.text().contains("required key NOT_THERE is missing"),
        "{}",
        missing.text()
    );
    let empty = f.restore("t2", &["--require", "EMPTY"]);
    assert_eq!(empty.code(), 1, "{}", empty.text());
    assert!(
        empty.text().contains("required key EMPTY is empty in .env"),
        "{}",
        empty.text()
    );

    let other = Command::new("age-keygen")
        .arg("-o")
        .arg(f.p("other.txt"))
        .output()
        .unwrap();
    assert!(other.status.success());
    let mut args: Vec<String> = ["config", "restore", "--repo"].map(String::from).to_vec();
    args.extend([
        f.s("repo"),
        "--identity".into(),
        f.s("other.txt"),
        "--to".into(),
        f.s("t3"),
    ]);
    let wrong = Pgdrill::new(args).run();
    assert_eq!(wrong.code(), 2, "{}", wrong.text());
    assert!(wrong.text().contains("wrong identity"), "{}", wrong.text());

    // One byte changed in the archive, and the manifest's SHA-256 updated too so that the age
    // authentication is what catches it.
    let archive = &f.archives()[0];
    let mut bytes = std::fs::read(archive).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(archive, &bytes).unwrap();
    let tampered = f.restore("t4", &[]);
    assert_eq!(tampered.code(), 1, "{}", tampered.text());
    assert!(
        tampered.text().contains("damaged or tampered with") && tampered.text().contains("SHA-256"),
        "{}",
        tampered.text()
    );
    let mpath = PathBuf::from(
        archive
            .to_string_lossy()
            .replace(".tar.age", ".manifest.json"),
    );
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m["sha256"] = pgdrill::digest::sha256_hex(&bytes).into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let forged = f.restore("t5", &[]);
    assert_eq!(forged.code(), 1, "{}", forged.text());
    assert!(
        forged.text().contains("does not authenticate"),
        "{}",
        forged.text()
    );

    // Nothing half-written: no target, no temp dir beside it.
    for t in ["t1", "t2", "t3", "t4", "t5"] {
        assert!(!f.p(t).exists(), "{t} was written");
    }
    let stray: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".pgdrill-config-restore-")
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert_no_canary(&f, &[&b, &missing, &empty, &wrong, &tampered, &forged]);
}

#[test]
fn config_plaintext_needs_the_flag_and_at_picks_the_newest_before() {
    let f = Fixture::new();
    let refused = f.backup(&[]);
    assert_eq!(refused.code(), 2, "{}", refused.text());
    assert!(
        refused.text().contains("--insecure-plaintext"),
        "{}",
        refused.text()
    );
    assert!(!f.p("repo/config").exists() || f.archives().is_empty());

    for (now, extra) in [
        ("2026-12-01T10:00:00Z", None),
        ("2026-12-01T11:00:00Z", Some(&f.public)),
        ("2026-12-01T12:00:00Z", None),
    ] {
        let mut args = vec!["--now", now];
        match extra {
            Some(k) => args.extend(["--recipient", k.as_str()]),
            None => args.push("--insecure-plaintext"),
        }
        let b = f.backup(&args);
        assert_eq!(b.code(), 0, "{}", b.text());
    }
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.p("repo/config/config_20261201_100000.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["encrypted"], false);
    assert_eq!(m["file"], "config_20261201_100000.tar");

    let at = f.restore("at", &["--at", "2026-12-01T11:30:00Z"]);
    assert_eq!(at.code(), 0, "{}", at.text());
    assert!(
        at.text().contains("config_20261201_110000"),
        "{}",
        at.text()
    );
    let newest = f.restore("newest", &[]);
    assert!(
        newest.text().contains("config_20261201_120000"),
        "{}",
        newest.text()
    );
    let before_all = f.restore("none", &["--at", "2026-12-01T09:00:00Z"]);
    assert_eq!(before_all.code(), 1, "{}", before_all.text());
    assert!(
        before_all.text().contains("no config backup"),
        "{}",
        before_all.text()
    );
    let unknown = f.restore("unknown", &["--backup", "config_20200101_000000"]);
    assert_eq!(unknown.code(), 2, "{}", unknown.text());
    assert!(
        unknown
            .text()
            .contains("config_20261201_100000, config_20261201_110000"),
        "{}",
        unknown.text()
    );
    let by_name = f.restore("named", &["--backup", "config_20261201_100000.tar"]);
    assert_eq!(by_name.code(), 0, "{}", by_name.text());
    // A directory with files is a live one: without --confirm, a dry run that writes nothing.
    let before = tree(&f.p("named"));
    let again = f.restore("named", &[]);
    assert_eq!(again.code(), 0, "{}", again.text());
    assert!(again.text().contains("DRY RUN"), "{}", again.text());
    assert_eq!(tree(&f.p("named")), before);
}

/// Every entry under `dir`, by relative path: its bytes (none for a directory) and mode.
fn tree(dir: &Path) -> BTreeMap<String, (Option<Vec<u8>>, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(rel, (None, mode(&path)));
                todo.push(path);
            } else {
                out.insert(rel, (Some(std::fs::read(&path).unwrap()), mode(&path)));
            }
        }
    }
    out
}

const BACKUP: &str = "config_20261202_060000";

/// The application's live configuration directory, as it is today: `.env` changed since the
/// backup, `api.key` as backed up, `wg0.conf` lost, and a file the backup does not have.
/// The app's stop and start commands write a line to `trace` with the `.env` they saw.
struct LiveDir {
    dir: PathBuf,
    trace: PathBuf,
}

impl LiveDir {
    fn new(f: &Fixture) -> LiveDir {
        let b = f.backup(&["--recipient", &f.public, "--now", "2026-12-02T06:00:00Z"]);
        assert_eq!(b.code(), 0, "{}", b.text());
        let dir = f.p("live");
        std::fs::create_dir(&dir).unwrap();
        write(
            &dir.join(".env"),
            &format!("DATABASE_URL=postgres://app@db/app\nSTRIPE_KEY={CANARY}-rotated-badly\n"),
            0o600,
        );
        std::fs::copy(f.p("etc/api.key"), dir.join("api.key")).unwrap();
        write(&dir.join("extra.txt"), "added after the backup\n", 0o644);
        LiveDir {
            dir,
            trace: f.p("trace"),
        }
    }

    /// A command that appends `word` and the SHA-256 of the live `.env` to the trace.
    fn command(&self, word: &str) -> String {
        format!(
            "printf '{word} %s\\n' \"$(sha256sum '{}' | cut -c1-64)\" >> '{}'",
            self.dir.join(".env").display(),
            self.trace.display()
        )
    }

    fn trace(&self) -> Vec<String> {
        std::fs::read_to_string(&self.trace)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// `pgdrill config restore` into the live directory with the app's trace commands.
    fn restore(&self, f: &Fixture, start: &str, extra: &[&str]) -> Run {
        let mut args: Vec<String> = ["config", "restore", "--repo"].map(String::from).to_vec();
        args.extend([
            f.s("repo"),
            "--identity".into(),
            f.s("identity.txt"),
            "--to".into(),
            self.dir.display().to_string(),
            "--require".into(),
            "STRIPE_KEY".into(),
            "--app-stop".into(),
            self.command("stop"),
            "--app-start".into(),
            start.to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let p = Pgdrill::new(args);
        let out = p.out_dir().display().to_string();
        p.push_arg("--out").push_arg(out).run()
    }
}

/// The manifest's SHA-256 of each file of the backup.
fn manifest_sha(f: &Fixture) -> BTreeMap<String, String> {
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.p(&format!("repo/config/{BACKUP}.manifest.json"))).unwrap(),
    )
    .unwrap();
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sha_of(path: &Path) -> String {
    pgdrill::digest::sha256_hex(&std::fs::read(path).unwrap())
}

/// The audit log's `action:result` entries.
fn audit_actions(f: &Fixture) -> Vec<String> {
    std::fs::read_to_string(f.p("repo/audit.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}:{}",
                e["action"].as_str().unwrap(),
                e["result"].as_str().unwrap()
            )
        })
        .collect()
}

/// A real HTTP server for the app's health: `{"status":"HEALTHY"}` once the trace's last line
/// is the start command's, 503 before (so a health asked before the start would fail).
fn health_server(trace: PathBuf) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let started = std::fs::read_to_string(&trace)
                .unwrap_or_default()
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("start"));
            let (code, body) = if started {
                ("200 OK", r#"{"status":"HEALTHY"}"#)
            } else {
                ("503 Service Unavailable", r#"{"status":"DOWN"}"#)
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/health")
}

#[test]
fn config_restore_into_a_live_dir_is_a_dry_run_and_a_wrong_confirm_changes_nothing() {
    let f = Fixture::new();
    let live = LiveDir::new(&f);
    let before = tree(&live.dir);
    let start = live.command("start");
    let shas = manifest_sha(&f);

    let dry = live.restore(&f, &start, &[]);
    assert_eq!(dry.code(), 0, "{}", dry.text());
    let text = dry.text();
    for want in [
        "DRY RUN",
        BACKUP,
        &shas[".env"],
        &shas["wg0.conf"],
        "changed   .env",
        "added     wg0.conf",
        "unchanged api.key",
        "kept      extra.txt",
        ".pgdrill_before_",
        "decrypted and authenticated",
        "required key STRIPE_KEY is present and non-empty",
        "stop_app",
        "start_app",
        "To run it, give the same command with --confirm config_20261202_060000",
    ] {
        assert!(text.contains(want), "dry run lacks {want:?}:\n{text}");
    }
    assert_eq!(
        tree(&live.dir),
        before,
        "the dry run changed the live directory"
    );
    assert!(live.trace().is_empty(), "the dry run ran an app command");

    let json = live.restore(&f, &start, &["--json"]);
    assert_eq!(json.code(), 0, "{}", json.text());
    let p: serde_json::Value =
        serde_json::from_slice(&json.output.stdout).expect("--json prints JSON");
    assert_eq!(p["dry_run"], true);
    assert_eq!(p["can_run"], true);
    assert_eq!(p["backup"], BACKUP);
    assert_eq!(p["confirm"], format!("--confirm {BACKUP}"));
    let kinds: Vec<String> = p["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["name"].as_str().unwrap(),
                f["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ".env:changed",
            "api.key:unchanged",
            "wg0.conf:added",
            "extra.txt:kept"
        ]
    );

    // An identity that cannot decrypt it: the dry run says it cannot run (exit 3).
    let other = Command::new("age-keygen")
        .arg("-o")
        .arg(f.p("other.txt"))
        .output()
        .unwrap();
    assert!(other.status.success());
    let mut args: Vec<String> = ["config", "restore", "--repo"].map(String::from).to_vec();
    args.extend([
        f.s("repo"),
        "--identity".into(),
        f.s("other.txt"),
        "--to".into(),
        live.dir.display().to_string(),
    ]);
    let cannot = Pgdrill::new(args).run();
    assert_eq!(cannot.code(), 3, "{}", cannot.text());
    assert!(
        cannot.text().contains("CANNOT RUN") && cannot.text().contains("wrong identity"),
        "{}",
        cannot.text()
    );

    let wrong = live.restore(&f, &start, &["--confirm", "config_20261201_060000"]);
    assert_eq!(wrong.code(), 2, "{}", wrong.text());
    assert!(
        wrong.text().contains("nothing was done") && wrong.text().contains(BACKUP),
        "{}",
        wrong.text()
    );
    assert!(wrong.report.is_none(), "a refused confirm writes no report");
    assert_eq!(
        tree(&live.dir),
        before,
        "a wrong confirm changed the live directory"
    );
    assert!(
        live.trace().is_empty(),
        "a wrong confirm ran an app command"
    );
    assert_eq!(audit_actions(&f), ["config_backup:ok"]);
    assert_no_canary(&f, &[&dry, &json, &cannot, &wrong]);
}

#[test]
fn a_confirmed_config_restore_stops_replaces_starts_and_checks_health_keeping_the_previous_files() {
    let f = Fixture::new();
    let live = LiveDir::new(&f);
    let before = tree(&live.dir);
    let old_env = std::fs::read(live.dir.join(".env")).unwrap();
    let shas = manifest_sha(&f);
    let health = health_server(live.trace.clone());
    let run = live.restore(
        &f,
        &live.command("start"),
        &[
            "--confirm",
            BACKUP,
            "--app-health-url",
            &health,
            "--ticket",
            "INC-7",
            "--reason",
            "a bad .env was deployed",
        ],
    );
    let r = run.assert_pass();
    assert_eq!(r["kind"], "config_restore");
    assert_eq!(r["source"]["kind"], "config_backup", "{}", r["source"]);
    assert_eq!(r["source"]["database"], "");
    assert!(r["source"]["location"]
        .as_str()
        .is_some_and(|l| l.ends_with(".age")));
    assert_eq!(r["record"]["ticket"], "INC-7");
    for phase in ["stop_app", "config_restore", "start_app", "app_healthy"] {
        assert_eq!(
            run.phase(phase)["status"],
            "pass",
            "{phase}: {}",
            run.phase(phase)
        );
    }
    // Order: stopped on the old .env, started on the restored one, healthy after the start.
    assert_eq!(
        live.trace(),
        [
            format!("stop {}", sha_of_bytes(&old_env)),
            format!("start {}", shas[".env"]),
        ]
    );
    assert!(run.phase("app_healthy")["detail"]
        .as_str()
        .unwrap()
        .contains(&health));
    // The restored files are the manifest's, in the backup's modes; the rest left alone.
    for (name, sha) in &shas {
        assert_eq!(&sha_of(&live.dir.join(name)), sha, "{name}");
    }
    assert_eq!(mode(&live.dir.join("wg0.conf")), 0o600);
    assert_eq!(mode(&live.dir.join(".env")), 0o600);
    assert_eq!(mode(&live.dir.join("api.key")), 0o640);
    assert_eq!(
        std::fs::read(live.dir.join("extra.txt")).unwrap(),
        b"added after the backup\n"
    );
    // The replaced file kept, byte-identical, beside the restored ones; no staging left.
    let info = &r["config_restore"];
    assert_eq!(info["backup"], BACKUP);
    assert_eq!(info["restored"], true);
    let previous = PathBuf::from(info["previous"].as_str().unwrap());
    assert!(previous.starts_with(&live.dir), "{}", previous.display());
    assert_eq!(std::fs::read(previous.join(".env")).unwrap(), old_env);
    assert_eq!(
        (mode(&previous.join(".env")), before[".env"].1),
        (0o600, 0o600)
    );
    let mut names: Vec<String> = std::fs::read_dir(&live.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with(".pgdrill_before_"))
        .collect();
    names.sort();
    assert_eq!(names, [".env", "api.key", "extra.txt", "wg0.conf"]);
    let kinds: Vec<String> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["name"].as_str().unwrap(),
                f["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ".env:changed",
            "api.key:unchanged",
            "wg0.conf:added",
            "extra.txt:kept"
        ]
    );
    // The same evidence as a drill.
    for file in [
        "report.md",
        "report.html",
        "junit.xml",
        "SHA256SUMS",
        "events.ndjson",
    ] {
        assert!(run.out.path().join(file).is_file(), "no {file}");
    }
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    assert!(
        md.contains("## The configuration restore")
            && md.contains(&previous.display().to_string())
            && md.contains(&shas["wg0.conf"]),
        "{md}"
    );
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    assert!(html.contains("h-config-restore") && !html.contains("class=\"extra\""));
    assert_eq!(
        audit_actions(&f),
        [
            "config_backup:ok",
            "config_restore_started:ok",
            "config_restore_finished:pass"
        ]
    );
    let audit = Pgdrill::new(["audit", "verify", "--repo", &f.s("repo")]).run();
    assert_eq!(audit.code(), 0, "{}", audit.text());
    assert_no_canary(&f, &[&run]);
    let report_text = std::fs::read_to_string(run.out.path().join("report.json")).unwrap();
    assert!(!report_text.contains("CANARY"), "a value in report.json");
}

fn sha_of_bytes(b: &[u8]) -> String {
    pgdrill::digest::sha256_hex(b)
}

#[test]
fn a_tampered_config_backup_is_caught_before_the_app_is_stopped_and_changes_nothing() {
    let f = Fixture::new();
    let live = LiveDir::new(&f);
    // One byte of the archive changed and the manifest's SHA-256 made to match: only the age
    // authentication can catch it, and it does before the application is stopped.
    let archive = &f.archives()[0];
    let mut bytes = std::fs::read(archive).unwrap();
    let i = bytes.len() - 20;
    bytes[i] ^= 1;
    std::fs::write(archive, &bytes).unwrap();
    let mpath = f.p(&format!("repo/config/{BACKUP}.manifest.json"));
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    m["sha256"] = pgdrill::digest::sha256_hex(&bytes).into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let before = tree(&live.dir);

    let run = live.restore(&f, &live.command("start"), &["--confirm", BACKUP]);
    // Exit 3: the restore could not run, and nothing was changed or stopped (as a database
    // restore whose backup fails its precheck); the report names the backup's fault.
    assert_eq!(run.code(), 3, "{}", run.text());
    let r = run.report();
    assert_eq!(r["kind"], "config_restore");
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["failure"]["phase"], "precheck", "{}", r["failure"]);
    assert_eq!(r["failure"]["class"], "backup_unusable", "{}", r["failure"]);
    let msg = r["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("does not authenticate") && msg.contains("was not stopped"),
        "{msg}"
    );
    assert_eq!(
        tree(&live.dir),
        before,
        "a failed check changed the live directory"
    );
    assert!(
        live.trace().is_empty(),
        "a backup that fails its check must not stop the application: {:?}",
        live.trace()
    );
    assert_eq!(r["config_restore"]["restored"], false);
    assert_eq!(r["config_restore"]["app_restarted_by_cleanup"], false);
    assert_eq!(run.phase("stop_app")["status"], "skipped");
    assert_eq!(run.phase("start_app")["status"], "skipped");
    assert_eq!(
        audit_actions(&f),
        [
            "config_backup:ok",
            "config_restore_started:ok",
            "config_restore_finished:fail"
        ]
    );
    assert_no_canary(&f, &[&run]);
}

#[test]
fn an_app_that_does_not_start_after_a_config_restore_fails_naming_where_the_previous_files_are() {
    let f = Fixture::new();
    let live = LiveDir::new(&f);
    let shas = manifest_sha(&f);
    let start = format!("{}; exit 7", live.command("start"));
    let run = live.restore(&f, &start, &["--confirm", BACKUP]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["failure"]["phase"], "start_app", "{}", r["failure"]);
    let info = &r["config_restore"];
    assert_eq!(info["restored"], true);
    let previous = info["previous"].as_str().unwrap();
    let msg = r["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("did not start")
            && msg.contains("configuration WAS restored")
            && msg.contains(previous),
        "{msg}"
    );
    assert_eq!(run.phase("app_healthy")["status"], "skipped");
    assert_eq!(sha_of(&live.dir.join(".env")), shas[".env"]);
    assert!(Path::new(previous).join(".env").is_file());
    // Tried once by start_app: the cleanup does not start it a second time.
    assert_eq!(live.trace().len(), 2, "{:?}", live.trace());
    assert!(run.text().contains(previous), "{}", run.text());
}

#[test]
fn an_interrupted_config_restore_starts_the_app_again_changes_nothing_and_exits_3() {
    let f = Fixture::new();
    let live = LiveDir::new(&f);
    let before = tree(&live.dir);
    // The stop command hangs after its trace line (exec: the kill on cancellation reaches it).
    let stop = format!("{}; exec sleep 30", live.command("stop"));
    let mut args: Vec<String> = ["config", "restore", "--repo"].map(String::from).to_vec();
    args.extend([
        f.s("repo"),
        "--identity".into(),
        f.s("identity.txt"),
        "--to".into(),
        live.dir.display().to_string(),
        "--app-stop".into(),
        stop,
        "--app-start".into(),
        live.command("start"),
        "--confirm".into(),
        BACKUP.into(),
    ]);
    let p = Pgdrill::new(args);
    let out = p.out_dir().display().to_string();
    let (mut child, out) = p.push_arg("--out").push_arg(out).spawn();
    let started = std::time::Instant::now();
    while live.trace().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the app was never stopped"
        );
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the restore ended ({st}) before stop_app");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(3));
    let r = crate::support::read_report(out.path()).expect("a report after SIGINT");
    assert_eq!(r["kind"], "config_restore");
    assert_eq!(r["verdict"], "error", "{}", r["failure"]);
    assert_eq!(r["config_restore"]["restored"], false);
    assert_eq!(r["config_restore"]["app_restarted_by_cleanup"], true);
    assert_eq!(
        tree(&live.dir),
        before,
        "an interrupted restore changed the directory"
    );
    let env_sha = sha_of(&live.dir.join(".env"));
    assert_eq!(
        live.trace(),
        [format!("stop {env_sha}"), format!("start {env_sha}")]
    );
    assert_eq!(
        audit_actions(&f).last().map(String::as_str),
        Some("config_restore_finished:failed")
    );
}

#[test]
fn a_backup_file_that_is_a_directory_in_the_live_dir_cannot_run_and_two_restores_keep_both_previous_sets(
) {
    let f = Fixture::new();
    let live = LiveDir::new(&f);
    // wg0.conf is a directory in the live directory: the restore replaces files only.
    std::fs::create_dir(live.dir.join("wg0.conf")).unwrap();
    let before = tree(&live.dir);
    let dry = live.restore(&f, &live.command("start"), &[]);
    assert_eq!(dry.code(), 3, "{}", dry.text());
    assert!(
        dry.text().contains("CANNOT RUN") && dry.text().contains("is not a regular file"),
        "{}",
        dry.text()
    );
    assert_eq!(tree(&live.dir), before);
    std::fs::remove_dir(live.dir.join("wg0.conf")).unwrap();

    // Two confirmed restores: the second replaces nothing that differs, so it keeps nothing
    // new, and the first one's copy of the previous .env is still there.
    let first = live.restore(&f, &live.command("start"), &["--confirm", BACKUP]);
    first.assert_pass();
    let previous = first.report()["config_restore"]["previous"]
        .as_str()
        .unwrap()
        .to_string();
    write(&live.dir.join("api.key"), "edited by hand\n", 0o640);
    let second = live.restore(&f, &live.command("start"), &["--confirm", BACKUP]);
    let r = second.assert_pass();
    let kept = r["config_restore"]["previous"].as_str().unwrap();
    assert_ne!(
        kept, previous,
        "a second restore must not reuse the first one's copies"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(kept).join("api.key")).unwrap(),
        "edited by hand\n"
    );
    assert!(Path::new(&previous).join(".env").is_file());
    assert_eq!(
        sha_of(&live.dir.join("api.key")),
        manifest_sha(&f)["api.key"]
    );
}
