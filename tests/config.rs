//! `pgdrill config backup|restore` with the real age crate and the real age/age-keygen
//! programs: round trip, interoperability, wrong identity, tampering, keys, picking, modes.

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
    let again = f.restore("named", &[]);
    assert_eq!(again.code(), 2, "{}", again.text());
    assert!(again.text().contains("not empty"), "{}", again.text());
}
