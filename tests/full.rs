//! `pgdrill drill --scope full`, the monthly drill: the database, the application's
//! configuration and its code restored together, and the RPO measured against the ledger the
//! writer kept. The sample app with the release repository the drill makes; a user-style
//! application made here (a git repository with tagged releases and a deploy script, a `.env`
//! and a WireGuard file); every fault failing at its phase with its class; no secret of a
//! configuration file in any output; every usage error naming its flag. Time is compressed
//! (backups two seconds apart), never a real 15 minutes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use clap::Parser;
use rstest::rstest;
use serde_json::{json, Value};

use crate::support::{git, leftovers, sample_app, Pgdrill, Run, TestServer, CADENCE};

/// The phases of a full drill on generated data with an application, in order.
const FULL_PHASES: &[&str] = &[
    "provision",
    "seed",
    "config_backup",
    "app_start",
    "writer_start",
    "backup",
    "disaster",
    "stop_app",
    "precheck",
    "roles",
    "createdb",
    "pg_restore",
    "analyze",
    "config_restore",
    "code_rollback",
    "snapshot",
    "compare",
    "amcheck",
    "rpo",
    "start_app",
    "app_healthy",
    "observe_app",
    "app_version",
    "checklist",
];

/// A full drill on the native backend, watched for a second after the restart.
const FULL: &[&str] = &["--scope", "full", "--backend", "native", "--observe", "1s"];

/// The flag groups, in order, as one argument list.
fn args<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// The phase names of a report, in order.
fn phase_names(r: &Value) -> Vec<&str> {
    r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

/// Nothing of the drill is left: no server, no app started by it, no temp dir, and in
/// particular not its private directory (configuration, identity, releases, deploy dir).
fn assert_nothing_left(r: &Value) {
    let id = r["drill_id"].as_str().unwrap();
    let left = leftovers(id);
    assert!(left.is_empty(), "left behind: {left:?}");
    let work = format!("pgdrill-{id}-work-");
    let dirs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&work))
        .collect();
    assert!(
        dirs.is_empty(),
        "the drill's private directory is left: {dirs:?}"
    );
}

/// A drill that failed at `phase` with `class` (exit 1, or 3 for the environment); returns
/// the failure's message. Every phase after it was skipped, and nothing is left behind.
fn assert_failed_at<'a>(run: &'a Run, phase: &str, class: &str) -> &'a str {
    assert_failed_then(run, phase, class, &[])
}

/// As [`assert_failed_at`], but the phases `still_ran` after the failed one ran and passed.
fn assert_failed_then<'a>(run: &'a Run, phase: &str, class: &str, still_ran: &[&str]) -> &'a str {
    let r = run.report();
    let (code, verdict) = if class == "environment" {
        (3, "error")
    } else {
        (1, "fail")
    };
    assert_eq!(
        (run.code(), r["verdict"].as_str()),
        (code, Some(verdict)),
        "failure={}\n{}",
        r["failure"],
        run.text()
    );
    assert_eq!(
        (
            r["failure"]["phase"].as_str(),
            r["failure"]["class"].as_str()
        ),
        (Some(phase), Some(class)),
        "{}",
        r["failure"]
    );
    assert_eq!(run.phase(phase)["status"], "fail");
    let names = phase_names(r);
    let at = names.iter().position(|n| *n == phase).unwrap();
    for p in &r["phases"].as_array().unwrap()[..at] {
        assert_eq!(p["status"], "pass", "{p}");
    }
    for p in &r["phases"].as_array().unwrap()[at + 1..] {
        let ran = still_ran.iter().any(|n| p["name"] == *n);
        assert_eq!(p["status"], if ran { "pass" } else { "skipped" }, "{p}");
    }
    assert_nothing_left(r);
    r["failure"]["message"].as_str().unwrap()
}

/// An RFC 3339 time of the report.
fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .with_timezone(&Utc)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Everything a drill wrote: its stdout, its stderr, and every file under `--out` (the
/// report files, the events, the backups, the configuration archive and its manifest, the
/// app's logs), each with its name.
fn outputs(run: &Run) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("stdout".to_string(), run.output.stdout.clone()),
        ("stderr".to_string(), run.output.stderr.clone()),
    ];
    for f in files_under(run.out.path()) {
        let name = f
            .strip_prefix(run.out.path())
            .unwrap()
            .display()
            .to_string();
        out.push((name, std::fs::read(&f).unwrap()));
    }
    out
}

/// The outputs `needle` appears in.
fn found_in(outputs: &[(String, Vec<u8>)], needle: &str) -> Vec<String> {
    outputs
        .iter()
        .filter(|(_, bytes)| contains(bytes, needle.as_bytes()))
        .map(|(name, _)| name.clone())
        .collect()
}

/// No secret appears in any output; the messages never quote the secret itself.
fn assert_no_secret(run: &Run, secrets: &[&str]) {
    let outputs = outputs(run);
    for (i, s) in secrets.iter().enumerate() {
        let found = found_in(&outputs, s);
        assert!(found.is_empty(), "secret #{i} appears in {found:?}");
    }
    // What was searched: everything a leak could end up in.
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    for must in ["events.ndjson", "report.json", "report.md", "junit.xml"] {
        assert!(names.contains(&must), "no {must} in {names:?}");
    }
    for (prefix, suffix) in [
        ("backup/config/config_", ".tar.age"),
        ("backup/config/config_", ".manifest.json"),
        ("backup/backup_", ".dump"),
        ("app/", ".log"),
    ] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(prefix) && n.ends_with(suffix)),
            "no {prefix}*{suffix} in {names:?}"
        );
    }
    // The search sees what is there: the drill id is in the report, the events and the log.
    let id = run.report()["drill_id"].as_str().unwrap();
    let seen = found_in(&outputs, id);
    for must in ["stdout", "events.ndjson", "report.json"] {
        assert!(
            seen.iter().any(|n| n == must),
            "the drill id not found in {must}: {seen:?}"
        );
    }
}

/// Whether `bytes` holds `prefix` followed by `hex` hex digits, at the start of a word.
fn has_shaped(bytes: &[u8], prefix: &str, hex: usize) -> bool {
    let p = prefix.as_bytes();
    (0..bytes.len()).any(|i| {
        bytes[i..].starts_with(p)
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            && bytes.len() >= i + p.len() + hex
            && bytes[i + p.len()..i + p.len() + hex]
                .iter()
                .all(u8::is_ascii_hexdigit)
    })
}

/// The sample app's configuration the drill writes holds secrets it generates: an API_KEY
/// `ak-<32 hex>`, a VPN_PEER `peer-<12 hex>`, and in DATABASE_URL the app role's password,
/// which the drill sets on each server. None of them appears in any output, and the role's
/// password is sent as a SCRAM verifier, never in clear in SQL (whose text debug logs show).
fn assert_no_generated_secret(run: &Run) {
    let outputs = outputs(run);
    for (name, bytes) in &outputs {
        assert!(
            !has_shaped(bytes, "ak-", 32),
            "the sample API_KEY appears in {name}"
        );
        assert!(
            !has_shaped(bytes, "peer-", 12),
            "the sample VPN_PEER appears in {name}"
        );
        assert!(
            !contains(bytes, b"postgres://pgdrill_app:")
                && !contains(bytes, b"postgresql://pgdrill_app:"),
            "the sample DATABASE_URL with its password appears in {name}"
        );
    }
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    let set: Vec<&str> = stderr
        .match_indices("PASSWORD '")
        .map(|(i, m)| &stderr[i + m.len()..])
        .collect();
    // Debug logs show the statements: the one setting the app role's password is among them.
    assert!(
        !set.is_empty(),
        "PGDRILL_LOG=debug shows no ALTER ROLE … PASSWORD"
    );
    for rest in set {
        assert!(
            rest.starts_with("SCRAM-SHA-256$"),
            "a role password is set in clear in SQL that the debug log shows"
        );
    }
}

/// The configuration manifest lists the key names of the backed-up files (never a value).
fn config_manifest(run: &Run) -> String {
    let dir = run.out.path().join("backup/config");
    let m = files_under(&dir)
        .into_iter()
        .find(|f| f.to_string_lossy().ends_with(".manifest.json"))
        .expect("a config manifest");
    std::fs::read_to_string(m).unwrap()
}

/// Every file and directory under `dir` with its size, mode and modification time, and each
/// file's bytes: a write anywhere under it changes this.
type Listing = BTreeMap<PathBuf, (u64, u32, SystemTime, Option<Vec<u8>>)>;

fn listing(dir: &Path) -> Listing {
    fn walk(dir: &Path, root: &Path, out: &mut Listing) {
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            let bytes = meta.is_file().then(|| std::fs::read(e.path()).unwrap());
            out.insert(
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                (
                    meta.len(),
                    meta.permissions().mode(),
                    meta.modified().unwrap(),
                    bytes,
                ),
            );
            if meta.is_dir() {
                walk(&e.path(), root, out);
            }
        }
    }
    let mut out = Listing::new();
    walk(dir, dir, &mut out);
    out
}

/// A free loopback port for a user's app (it binds it itself).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A WireGuard key: 32 random bytes in standard base64.
fn wg_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// The user's release tags, oldest first; HEAD is at the newest (the bad release deployed when
/// the disaster strikes), so `previous` is v1.0.0.
const USER_TAGS: [&str; 3] = ["v0.9.0", "v1.0.0", "v1.1.0"];

/// The user's deploy script, in every release: copies the release's `release.env` into the
/// deploy directory and writes nothing else.
const USER_DEPLOY_SH: &str = r#"#!/bin/sh
# Deploys a release of the billing service: its release.env goes into the deploy directory.
set -eu
cp "$PGDRILL_RELEASE_WORKTREE/release.env" "$PGDRILL_DEPLOY_DIR/release.env"
echo "deployed billing $PGDRILL_RELEASE_TAG"
"#;

/// The deploy command a user would give for that script.
const USER_DEPLOY: &str = r#"sh "$PGDRILL_RELEASE_WORKTREE/deploy.sh""#;

/// A user's application as a user has it: the sample-app binary run by a start command, its
/// configuration in a `.env` and a WireGuard file of their own (with canary secrets), its
/// code in a git repository with tagged releases and a deploy script.
struct UserApp {
    /// Holds everything; removed when the test ends.
    dir: tempfile::TempDir,
    repo: PathBuf,
    env_file: PathBuf,
    wg_file: PathBuf,
    /// The `.env`'s API_KEY: a canary that must appear in no output.
    api_key: String,
    /// The WireGuard file's PrivateKey: another canary.
    wg_private_key: String,
    /// The `.env`'s VPN_PEER: a third.
    vpn_peer: String,
    /// Tag → commit.
    commits: BTreeMap<String, String>,
    port: u16,
}

/// What the user owns, before and after a drill: it must not change.
#[derive(Debug, PartialEq)]
struct UserState {
    status: String,
    refs: String,
    head: String,
    repo: Listing,
    config: Listing,
}

impl UserApp {
    fn new() -> UserApp {
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-full-user-")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("billing");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(repo.join("deploy.sh"), USER_DEPLOY_SH).unwrap();
        let mut commits = BTreeMap::new();
        for tag in USER_TAGS {
            // RELEASE is what the app reports when it runs without the drill's marker.
            std::fs::write(
                repo.join("release.env"),
                format!("# billing {tag}\nRELEASE={tag}\nWORKER_INTERVAL_MS=200\n"),
            )
            .unwrap();
            git(&repo, &["add", "--all"]);
            git(
                &repo,
                &["commit", "--quiet", "-m", &format!("billing {tag}")],
            );
            git(&repo, &["tag", "-a", tag, "-m", &format!("billing {tag}")]);
            commits.insert(tag.to_string(), git(&repo, &["rev-parse", "HEAD"]));
        }
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(etc.join("billing")).unwrap();
        std::fs::create_dir_all(etc.join("wireguard")).unwrap();
        let api_key = format!("canary-{}", uuid::Uuid::new_v4().simple());
        let vpn_peer = format!(
            "office-gw-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let env_file = etc.join("billing/.env");
        std::fs::write(
            &env_file,
            format!("# billing service\nAPI_KEY={api_key}\nVPN_PEER={vpn_peer}\n"),
        )
        .unwrap();
        let wg_private_key = wg_key();
        let wg_file = etc.join("wireguard/wg-office.conf");
        std::fs::write(
            &wg_file,
            format!(
                "[Interface]\nPrivateKey = {wg_private_key}\nAddress = 10.88.0.2/32\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.88.0.0/24\nEndpoint = vpn.example.invalid:51820\n",
                wg_key()
            ),
        )
        .unwrap();
        UserApp {
            dir,
            repo,
            env_file,
            wg_file,
            api_key,
            wg_private_key,
            vpn_peer,
            commits,
            port: free_port(),
        }
    }

    fn commit(&self, tag: &str) -> &str {
        &self.commits[tag]
    }

    fn secrets(&self) -> [&str; 3] {
        [&self.api_key, &self.wg_private_key, &self.vpn_peer]
    }

    /// The configuration flags: the user's two files and the keys they must hold.
    fn config_args(&self) -> Vec<String> {
        [
            "--config-file",
            &self.env_file.display().to_string(),
            "--config-file",
            &self.wg_file.display().to_string(),
            "--require",
            "API_KEY",
            "--require",
            "VPN_PEER",
            "--require",
            "PrivateKey",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The application's flags: started by a shell command reading its configuration from
    /// the drill's PGDRILL_CONFIG_DIR and its release from `release_dir` (a shell word),
    /// judged by its URLs; its code deployed with `deploy`.
    fn args(&self, release_dir: &str, deploy: &str) -> Vec<String> {
        let base = format!("http://127.0.0.1:{}", self.port);
        let start = format!(
            r#"LISTEN_ADDR=127.0.0.1:{} SAMPLE_APP_ENV_FILE="$PGDRILL_CONFIG_DIR/.env" SAMPLE_APP_RELEASE_DIR="{release_dir}" exec '{}'"#,
            self.port,
            sample_app().display()
        );
        let mut a: Vec<String> = [
            "--app",
            "custom",
            "--app-start",
            &start,
            "--app-health-url",
            &format!("{base}/health"),
            "--app-version-url",
            &format!("{base}/version"),
            "--app-metrics-url",
            &format!("{base}/metrics"),
            "--code-repo",
            &self.repo.display().to_string(),
            "--deploy",
            deploy,
        ]
        .map(String::from)
        .to_vec();
        a.extend(self.config_args());
        a
    }

    /// The usual application: it runs the release in the deploy directory (empty before the
    /// disaster: PGDRILL_DEPLOY_DIR is set only once a release was deployed).
    fn default_args(&self) -> Vec<String> {
        self.args("$PGDRILL_DEPLOY_DIR", USER_DEPLOY)
    }

    fn state(&self) -> UserState {
        UserState {
            status: git(&self.repo, &["status", "--porcelain"]),
            refs: git(&self.repo, &["show-ref", "--head"]),
            head: git(&self.repo, &["rev-parse", "HEAD"]),
            repo: listing(&self.repo),
            config: listing(&self.dir.path().join("etc")),
        }
    }

    /// Its app no longer answers: the drill stopped what it started.
    fn assert_stopped(&self) {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "the user's app still listens on {} after the drill",
            self.port
        );
    }
}

/// The plan the command line makes of `extra` (for its planned phases).
fn plan_of(extra: &[String]) -> pgdrill::plan::Plan {
    let argv = ["pgdrill", "drill", "--rows", "300"]
        .into_iter()
        .map(String::from)
        .chain(extra.iter().cloned());
    let cli = pgdrill::cli::Cli::try_parse_from(argv).expect("the flags parse");
    let pgdrill::cli::Command::Drill(a) = cli.command else {
        unreachable!("a drill")
    };
    a.into_plan(Utc::now()).expect("a valid plan")
}

#[test]
fn full_drill_with_the_sample_app_restores_config_and_code_and_measures_the_rpo() {
    let run = Pgdrill::drill(args(&[FULL, CADENCE]))
        .env("PGDRILL_LOG", "debug")
        .run();
    let r = run.assert_pass();
    assert_eq!(phase_names(r), FULL_PHASES);
    for p in r["phases"].as_array().unwrap() {
        assert_eq!(p["status"], "pass", "{p}");
    }
    assert_eq!(r["scope"], "full");
    assert_eq!(r["source"]["kind"], "generated");
    assert!(
        r["environment"]["tools"]["git"]
            .as_str()
            .unwrap()
            .starts_with("git version "),
        "{}",
        r["environment"]["tools"]
    );

    // Budgets: the configuration and the code have their own, counted in the total.
    let budgets: Vec<(&str, u64)> = r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["verdict"], "pass", "{b}");
            (b["name"].as_str().unwrap(), b["limit_ms"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        budgets,
        [
            ("database_restore", 900_000),
            ("app_restart", 300_000),
            ("verification", 600_000),
            ("config_restore", 120_000),
            ("code_rollback", 300_000),
            ("total", 1_800_000),
        ]
    );
    let used = |name: &str| {
        r["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap()["used_ms"]
            .as_u64()
            .unwrap()
    };
    assert!(used("config_restore") >= run.phase("config_restore")["duration_ms"].as_u64().unwrap());
    assert!(used("code_rollback") >= run.phase("code_rollback")["duration_ms"].as_u64().unwrap());

    // The configuration: the newest backup before the disaster, every check made.
    let c = &r["config"];
    assert_eq!(c["files"], json!([".env", "wg0.conf"]));
    assert_eq!(
        c["required_keys"],
        json!(["DATABASE_URL", "API_KEY", "VPN_PEER"])
    );
    let checks: Vec<&str> = c["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for want in [
        "2 files' SHA-256 match the manifest",
        "wg0.conf parses as a WireGuard config",
        "required key DATABASE_URL is present and non-empty",
        "required key API_KEY is present and non-empty",
        "required key VPN_PEER is present and non-empty",
    ] {
        assert!(checks.contains(&want), "no check {want:?} in {checks:?}");
    }
    let name = c["backup"].as_str().unwrap();
    let archive = run
        .out
        .path()
        .join("backup/config")
        .join(format!("{name}.tar.age"));
    let bytes = std::fs::read(&archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    assert_eq!(c["sha256"], pgdrill::digest::sha256_hex(&bytes));
    assert!(
        bytes.starts_with(b"age-encryption.org/v1"),
        "not an age file"
    );

    // The code: from the bad release deployed at the disaster back to the good one, which
    // the restarted app reports with the same commit.
    let rb = &r["rollback"];
    assert_eq!(rb["from"]["tag"], "v1.1.0", "{rb}");
    assert_eq!(rb["to"]["tag"], "v1.0.0", "{rb}");
    let to_commit = rb["to"]["commit"].as_str().unwrap();
    assert!(
        to_commit.len() == 40 && to_commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{rb}"
    );
    assert_ne!(rb["from"]["commit"], rb["to"]["commit"]);
    assert_eq!(rb["reported"]["release"], "v1.0.0", "{rb}");
    assert_eq!(rb["reported"]["commit"], to_commit, "{rb}");
    assert_eq!(rb["reported"]["source"], "the version endpoint");
    assert!(rb["marker"].as_str().unwrap().ends_with("deployment.json"));
    assert!(r["disaster"]["detail"]
        .as_str()
        .unwrap()
        .contains("a bad release was deployed: v1.1.0"));

    // The RPO, against the ledger: commits after the newest backup's snapshot were lost.
    let rpo = &r["rpo"];
    let n = |k: &str| {
        rpo[k]
            .as_u64()
            .unwrap_or_else(|| panic!("rpo.{k} missing: {rpo}"))
    };
    assert!(
        r["disaster"]["detail"]
            .as_str()
            .unwrap()
            .contains("--disaster-at random"),
        "{}",
        r["disaster"]
    );
    assert_eq!(n("backups_taken"), 2);
    assert_eq!(n("backup_interval_ms"), 2_000);
    assert_eq!(n("objective_ms"), 900_000);
    assert_eq!(n("rate_per_sec"), 50);
    assert_eq!(rpo["ledger"], "pgdrill.rpo_ledger");
    assert!(n("lost_commits") > 0, "{rpo}");
    assert_eq!(
        n("lost_commits"),
        n("acknowledged_commits") - n("restored_commits"),
        "{rpo}"
    );
    assert_eq!(
        rpo["lost_ids"],
        json!({"first": n("restored_commits") + 1, "last": n("acknowledged_commits")})
    );
    let newest = time(&rpo["newest_restored_at"]);
    let disaster = time(&rpo["disaster_at"]);
    let snapshot_returned = time(&rpo["snapshot_taken"][1]);
    assert!(snapshot_returned <= disaster, "{rpo}");
    let window_us = (disaster - newest).num_microseconds().unwrap();
    let achieved_us = n("achieved_ms") as i64 * 1000;
    assert!(n("achieved_ms") > 0, "{rpo}");
    assert!(
        achieved_us <= window_us && window_us - achieved_us < 1000,
        "achieved_ms {} against {window_us} µs between the newest restored commit and the disaster",
        n("achieved_ms")
    );
    assert_eq!(
        n("worst_case_ms"),
        n("backup_interval_ms") + n("backup_duration_ms")
    );
    assert_eq!(rpo["worst_case_fits"], true);
    assert_eq!(rpo["verdict"], "pass");
    // The history line carries the scope and the RPO, and `pgdrill history` shows them.
    let history = run.out.path().join("history.ndjson");
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(&history).unwrap().trim()).unwrap();
    assert_eq!(line["scope"], "full");
    for k in [
        "objective_ms",
        "achieved_ms",
        "lost_commits",
        "worst_case_ms",
    ] {
        assert_eq!(line["rpo"][k], rpo[k], "{k}: {line}");
    }
    assert_eq!(line["rpo"]["verdict"], "pass");
    let shown = Pgdrill::new(["history", "--history", history.to_str().unwrap()]).run();
    assert_eq!(shown.code(), 0, "{}", shown.text());
    assert!(
        shown.text().contains(&format!(
            "rpo: 1 of 1 full drills within 900.000 s; data lost min {}",
            pgdrill::report::markdown::secs(n("achieved_ms"))
        )),
        "{}",
        shown.text()
    );
    // The restored ledger holds exactly the restored commits, as compared in the integrity
    // snapshot, and it is the newer of the two backups that was restored.
    let ledger = r["integrity"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "pgdrill.rpo_ledger")
        .expect("the ledger in the integrity section");
    assert_eq!(ledger["rows_after"].as_u64(), Some(n("restored_commits")));
    let mut dumps: Vec<String> = files_under(&run.out.path().join("backup"))
        .iter()
        .map(|f| f.display().to_string())
        .filter(|f| f.ends_with(".dump"))
        .collect();
    dumps.sort();
    assert_eq!(dumps.len(), 2, "{dumps:?}");
    assert_eq!(r["backup"]["file"], dumps[1].as_str());

    // The RPO's line in the summary, report.md and junit.xml.
    assert!(
        run.text().contains("rpo: pass (data-loss window"),
        "{}",
        run.text()
    );
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    assert!(md.contains("data-loss window"), "{md}");
    assert!(md.contains("## Configuration restored") && md.contains("## Code rolled back"));
    let junit = std::fs::read_to_string(run.out.path().join("junit.xml")).unwrap();
    assert!(junit.contains(r#"name="rpo""#), "{junit}");
    assert!(junit.contains(r#"name="rpo:objective""#), "{junit}");
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    for section in [
        "Configuration restored",
        "Code rolled back",
        "Recovery point",
    ] {
        assert!(html.contains(section), "report.html lacks {section}");
    }
    assert!(run
        .text()
        .contains("code: v1.1.0 rolled back to v1.0.0, the app reports v1.0.0"));
    assert_no_generated_secret(&run);
    assert_nothing_left(r);
}

#[test]
fn a_user_style_application_goes_through_the_same_phases_and_is_left_unchanged() {
    let user = UserApp::new();
    let before = user.state();
    assert_eq!(before.status, "");
    let extra = args(&[FULL, CADENCE])
        .into_iter()
        .map(String::from)
        .chain(user.default_args())
        .collect::<Vec<_>>();
    let planned: Vec<&str> = pgdrill::drill::planned_phases(&plan_of(&extra))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(planned, FULL_PHASES);
    let run = Pgdrill::drill(extra).env("PGDRILL_LOG", "debug").run();
    let r = run.assert_pass();
    assert_eq!(phase_names(r), planned);
    for p in r["phases"].as_array().unwrap() {
        assert_eq!(p["status"], "pass", "{p}");
    }

    // The user's own files, restored from the encrypted backup, with their keys checked.
    let c = &r["config"];
    assert_eq!(c["files"], json!([".env", "wg-office.conf"]));
    assert_eq!(
        c["required_keys"],
        json!(["API_KEY", "VPN_PEER", "PrivateKey"])
    );
    let checks = c["checks"].to_string();
    for want in [
        "wg-office.conf parses as a WireGuard config",
        "required key API_KEY is present and non-empty",
        "required key PrivateKey is present and non-empty",
    ] {
        assert!(checks.contains(want), "no check {want:?} in {checks}");
    }

    // The user's release before the one at HEAD, deployed by their script, reported by
    // their app (which runs only on the restored configuration and the deployed release).
    let rb = &r["rollback"];
    assert_eq!(rb["repository"], user.repo.display().to_string());
    assert_eq!(
        rb["from"],
        json!({"tag": "v1.1.0", "commit": user.commit("v1.1.0")})
    );
    assert_eq!(
        rb["to"],
        json!({"tag": "v1.0.0", "commit": user.commit("v1.0.0")})
    );
    assert_eq!(rb["reported"]["source"], "the version endpoint");
    assert_eq!(rb["reported"]["release"], "v1.0.0");
    assert_eq!(rb["reported"]["commit"], user.commit("v1.0.0"));
    assert!(run.phase("code_rollback")["detail"]
        .as_str()
        .unwrap()
        .contains(USER_DEPLOY));
    let rpo = &r["rpo"];
    assert_eq!(rpo["backups_taken"], 2);
    assert_eq!(
        rpo["lost_commits"].as_u64().unwrap(),
        rpo["acknowledged_commits"].as_u64().unwrap() - rpo["restored_commits"].as_u64().unwrap()
    );

    // Nothing of the user's changed: the repository (status, refs, HEAD, every byte and
    // mtime under it, .git included) and the configuration files.
    assert_eq!(user.state(), before);
    assert_no_secret(&run, &user.secrets());
    assert!(config_manifest(&run).contains("API_KEY"));
    user.assert_stopped();
    assert_nothing_left(r);
}

#[test]
fn no_secret_of_the_config_files_appears_in_any_output() {
    // The sample app on the user's configuration files: a canary API key and WireGuard
    // private key, with every log at debug.
    let user = UserApp::new();
    let before = user.state();
    let extra = args(&[FULL])
        .into_iter()
        .map(String::from)
        .chain(user.config_args())
        .collect::<Vec<_>>();
    let run = Pgdrill::drill(extra).env("PGDRILL_LOG", "debug").run();
    let r = run.assert_pass();
    assert_eq!(r["config"]["files"], json!([".env", "wg-office.conf"]));
    // The restarted sample app read the restored .env: it has no other API_KEY.
    assert_eq!(run.phase("app_healthy")["status"], "pass");
    assert_no_secret(&run, &user.secrets());
    assert_no_generated_secret(&run);
    // The manifest names the keys (so it is where a leak would show), never their values.
    let manifest = config_manifest(&run);
    for key in ["API_KEY", "VPN_PEER", "PrivateKey"] {
        assert!(manifest.contains(key), "{key} not in the manifest");
    }
    assert_eq!(user.state(), before);
    assert_nothing_left(r);
}

#[test]
fn a_required_key_missing_from_the_config_backup_fails_config_restore_naming_only_the_key() {
    let user = UserApp::new();
    let mut extra: Vec<String> = args(&[FULL]).into_iter().map(String::from).collect();
    extra.extend(user.config_args());
    extra.extend(["--require".into(), "NO_SUCH_KEY".into()]);
    let run = Pgdrill::drill(extra).run();
    let msg = assert_failed_at(&run, "config_restore", "backup_incomplete");
    assert!(msg.contains("required key NO_SUCH_KEY is missing"), "{msg}");
    assert_no_secret(&run, &user.secrets());
}

#[rstest]
#[case::tampered_archive(&["--fault", "config-tamper"], "config_restore", "backup_unusable", &["damaged or tampered with"])]
#[case::wrong_identity(&["--fault", "config-wrong-identity"], "config_restore", "backup_unusable", &["wrong identity", "was not encrypted to any key"])]
#[case::missing_tag(&["--rollback-to", "v9.9.9"], "code_rollback", "backup_incomplete", &["tag v9.9.9 does not exist", "v1.1.0", "of 3"])]
fn a_sample_app_fault_fails_at_its_phase(
    #[case] fault: &[&str],
    #[case] phase: &str,
    #[case] class: &str,
    #[case] names: &[&str],
) {
    let run = Pgdrill::drill(args(&[FULL, fault])).run();
    let msg = assert_failed_at(&run, phase, class);
    for n in names {
        assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
    }
}

/// What goes wrong with the user's application.
#[derive(Debug, Clone, Copy)]
enum UserFault {
    /// Its deploy command exits 7.
    DeployFails,
    /// Its deploy command deploys the working copy (the bad release at HEAD) where the app
    /// runs, not the checked-out release: the app reports another version.
    WrongReleaseDeployed,
    /// Its repository has an uncommitted file.
    DirtyRepo,
}

#[rstest]
#[case::deploy_fails(UserFault::DeployFails)]
#[case::wrong_release_deployed(UserFault::WrongReleaseDeployed)]
#[case::dirty_repo(UserFault::DirtyRepo)]
fn a_user_app_fault_fails_at_its_phase_naming_the_versions(#[case] fault: UserFault) {
    let user = UserApp::new();
    let app = match fault {
        UserFault::DeployFails => user.args(
            "$PGDRILL_DEPLOY_DIR",
            r#"echo "deploying $PGDRILL_RELEASE_TAG: no space left on the app server"; exit 7"#,
        ),
        UserFault::WrongReleaseDeployed => user.args(
            "${PGDRILL_DEPLOY_DIR:+$PGDRILL_DEPLOY_DIR/current}",
            &format!(
                r#"mkdir -p "$PGDRILL_DEPLOY_DIR/current" && cp '{}/release.env' "$PGDRILL_DEPLOY_DIR/current/""#,
                user.repo.display()
            ),
        ),
        UserFault::DirtyRepo => {
            std::fs::write(user.repo.join("hotfix.patch"), "--- a local change\n").unwrap();
            user.default_args()
        }
    };
    let before = user.state();
    let extra = args(&[FULL])
        .into_iter()
        .map(String::from)
        .chain(app)
        .collect::<Vec<_>>();
    let run = Pgdrill::drill(extra).run();
    let good = user.commit("v1.0.0");
    match fault {
        UserFault::DeployFails => {
            let msg = assert_failed_at(&run, "code_rollback", "restore_failed");
            for n in [
                "the deploy command for v1.0.0 failed (exit code 7)",
                "deploying v1.0.0: no space left on the app server",
            ] {
                assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
            }
        }
        UserFault::WrongReleaseDeployed => {
            // The app was observed, so the checklist still runs: the wrong release is healthy.
            let msg = assert_failed_then(&run, "app_version", "restore_failed", &["checklist"]);
            for n in [
                "reports release v1.1.0",
                &format!("expected v1.0.0 at commit {good}"),
            ] {
                assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
            }
            // The code was rolled back; the app just does not run it.
            assert_eq!(run.report()["rollback"]["to"]["tag"], "v1.0.0");
        }
        UserFault::DirtyRepo => {
            let msg = assert_failed_at(&run, "code_rollback", "restore_failed");
            for n in ["uncommitted changes", "hotfix.patch"] {
                assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
            }
        }
    }
    assert_eq!(user.state(), before);
    assert_no_secret(&run, &user.secrets());
    user.assert_stopped();
}

#[test]
fn a_writer_that_cannot_write_is_an_environment_error_before_any_backup() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start("full-writer"));
    let db = rt.block_on(server.create_db("shop"));
    let dsn = format!("{} dbname={db}", server.dsn());
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--source-dsn",
        &dsn,
        "--writer-rate",
        "50",
    ])
    .run();
    let msg = assert_failed_at(&run, "writer_start", "environment");
    assert!(
        msg.contains("the RPO writer cannot write") && msg.contains("read-only"),
        "{msg}"
    );
    assert_eq!(
        phase_names(run.report())[..3],
        ["provision", "writer_start", "backup"]
    );
    // No backup was taken, and the source was not written to.
    let backup_dir = run.out.path().join("backup");
    let dumps: Vec<PathBuf> = if backup_dir.exists() {
        files_under(&backup_dir)
    } else {
        Vec::new()
    };
    assert!(dumps.is_empty(), "a backup was written: {dumps:?}");
    let schemas: i64 = rt.block_on(async {
        server
            .connect(&db)
            .await
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgdrill'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(
        schemas, 0,
        "the writer created its ledger on a read-only source"
    );
}

#[rstest]
#[case::config_file_without_full(&["--config-file", "{file}"], &["--config-file", "--scope full"])]
#[case::require_without_full(&["--require", "API_KEY"], &["--require", "--scope full"])]
#[case::full_with_a_backup_file(&["--scope", "full", "--backup-file", "{file}"], &["--scope full", "--backup-file"])]
#[case::full_without_an_app(&["--scope", "full", "--app", "none"], &["--scope full", "--app none"])]
#[case::custom_app_without_code_repo(&["--scope", "full", "--app", "custom", "--app-start", "true", "--app-health-url", "http://127.0.0.1:9/health", "--config-file", "{file}"], &["--code-repo", "--deploy"])]
#[case::code_repo_without_deploy(&["--scope", "full", "--code-repo", "{dir}"], &["--code-repo needs --deploy"])]
#[case::deploy_without_code_repo(&["--scope", "full", "--deploy", "true"], &["--deploy needs --code-repo"])]
#[case::fault_without_full(&["--fault", "config-tamper"], &["--fault", "--scope full"])]
fn a_full_drill_usage_error_names_the_flag(#[case] flags: &[&str], #[case] names: &[&str]) {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join(".env");
    std::fs::write(&file, "API_KEY=k\n").unwrap();
    let flags: Vec<String> = flags
        .iter()
        .map(|f| {
            f.replace("{file}", &file.display().to_string())
                .replace("{dir}", &scratch.path().display().to_string())
        })
        .collect();
    let run = Pgdrill::drill(flags).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    let err = String::from_utf8_lossy(&run.output.stderr);
    for n in names {
        assert!(err.contains(n), "the usage error must name {n:?}: {err}");
    }
    // Refused before anything started.
    assert!(run.report.is_none());
    assert_eq!(
        files_under(run.out.path()),
        Vec::<PathBuf>::new(),
        "{}",
        run.text()
    );
}

/// The library API drills the full scope as the CLI does.
#[tokio::test(flavor = "multi_thread")]
async fn the_library_builder_runs_a_full_drill() {
    let out = tempfile::tempdir().unwrap();
    let report = pgdrill::Drill::builder()
        .backend(pgdrill::BackendKind::Native)
        .rows(300)
        .scope(pgdrill::Scope::Full)
        .sample_app(crate::support::sample_app())
        .rpo(std::time::Duration::from_secs(60))
        .out(out.path())
        .run()
        .await
        .expect("the drill runs");
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.scope.map(|s| s.as_str()), Some("full"));
    let rollback = report.rollback.as_ref().expect("the rollback section");
    assert_eq!(rollback.to.tag, "v1.0.0");
    let rpo = report.rpo.as_ref().expect("the rpo section");
    assert_eq!(rpo.objective_ms, 60_000);
}
