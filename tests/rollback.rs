//! `pgdrill rollback`: the full drill's code rollback on a deployment of the test's own, with
//! the real git, the real binary, a real deploy command and a real HTTP version endpoint;
//! the dry run that changes nothing, the confirmation, the audit chain, and every failure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use pgdrill::code::{create_sample_release_repo, deploy, DeploySpec, ReleaseRepo};
use serde_json::Value;

use crate::support::{runtime, Pgdrill, Run};

/// The sample's deploy script, then the version file the test's endpoint serves: what a
/// deploy that restarts the application on the new release makes it report.
const DEPLOY: &str = r#"sh "$PGDRILL_RELEASE_WORKTREE/deploy.sh" && printf '{"release":"%s","commit":"%s"}' "$PGDRILL_RELEASE_TAG" "$PGDRILL_RELEASE_COMMIT" > "$PGDRILL_DEPLOY_DIR/version.json""#;

/// A deployment: the sample release repository, its bad release v1.1.0 deployed (marker
/// written) into a deploy directory, and a scratch directory for the rest.
struct Deployment {
    dir: tempfile::TempDir,
    repo: PathBuf,
    deploy_dir: PathBuf,
    good_commit: String,
}

impl Deployment {
    fn new() -> Deployment {
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-rollback-")
            .tempdir()
            .unwrap();
        let deploy_dir = dir.path().join("deploy");
        let (repo, good_commit) = runtime().block_on(async {
            let sample = create_sample_release_repo(&dir.path().join("app"))
                .await
                .unwrap();
            let repo = ReleaseRepo::open(&sample.path).await.unwrap();
            let wt = repo
                .checkout(&sample.bad, &dir.path().join("first-checkout"))
                .await
                .unwrap();
            deploy(
                &wt,
                &DeploySpec {
                    command: DEPLOY.into(),
                    deploy_dir: deploy_dir.clone(),
                    log: dir.path().join("first-deploy.log"),
                    timeout: std::time::Duration::from_secs(60),
                    deployed_by: "the test's first deploy".into(),
                },
            )
            .await
            .unwrap();
            (sample.path, sample.good.commit)
        });
        Deployment {
            dir,
            repo,
            deploy_dir,
            good_commit,
        }
    }

    /// `pgdrill rollback` on this deployment with `deploy` as the deploy command, plus `extra`.
    fn rollback(&self, deploy: &str, extra: &[&str]) -> Pgdrill {
        let mut p = Pgdrill::new([
            "rollback",
            "--code-repo",
            self.repo.to_str().unwrap(),
            "--deploy",
            deploy,
            "--deploy-dir",
            self.deploy_dir.to_str().unwrap(),
        ]);
        let out = p.out_dir().display().to_string();
        for a in extra {
            p = p.push_arg(*a);
        }
        p.push_arg("--out").push_arg(out)
    }

    /// Every file under the deploy directory with its bytes.
    fn deployed_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_path_buf();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.deploy_dir, &self.deploy_dir, &mut out);
        out
    }

    fn marker(&self) -> Value {
        let text = std::fs::read_to_string(self.deploy_dir.join("deployment.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// A real HTTP server on 127.0.0.1 for the life of the test process: `/version` serves the
/// deploy directory's version.json (503 while there is none), `/health` answers healthy.
fn serve(deploy_dir: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = deploy_dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // The rest of the request's head.
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = match path.as_str() {
                "/version" => match std::fs::read_to_string(dir.join("version.json")) {
                    Ok(b) => ("200 OK", b),
                    Err(_) => ("503 Service Unavailable", "{}".to_string()),
                },
                "/health" => ("200 OK", r#"{"status":"HEALTHY"}"#.to_string()),
                _ => ("404 Not Found", "{}".to_string()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

fn phase_status(r: &Run, name: &str) -> String {
    r.report()["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name}: {}", r.report()["phases"]))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_dry_run_lists_the_tags_and_the_plan_and_changes_nothing() {
    let d = Deployment::new();
    let before = d.deployed_files();
    let r = d.rollback(DEPLOY, &[]).run();
    let out = r.text();
    assert_eq!(r.code(), 0, "{out}");
    for needle in [
        "DRY RUN, nothing was changed",
        "v0.9.0, v1.0.0, v1.1.0",
        "deployed    v1.1.0",
        "roll back to v1.0.0",
        "code_rollback",
        "app_version",
        "app_healthy",
        "skipped: no --app-health-url",
        "To run it, give the same command with --confirm v1.0.0",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    assert_eq!(
        d.deployed_files(),
        before,
        "the dry run changed the deployment"
    );
    assert!(r.report.is_none(), "the dry run wrote a report");
    assert!(!r.out.path().join("checkout-v1.0.0").exists());

    let j = d.rollback(DEPLOY, &["--json"]).run();
    assert_eq!(j.code(), 0, "{}", j.text());
    let plan: Value = serde_json::from_slice(&j.output.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["can_run"], true);
    assert_eq!(plan["target"]["tag"], "v1.0.0");
    assert_eq!(plan["target"]["commit"], d.good_commit.as_str());
    assert_eq!(plan["deployed"]["release"]["tag"], "v1.1.0");
    assert_eq!(plan["confirm"], "--confirm v1.0.0");
    assert_eq!(d.deployed_files(), before);
}

#[test]
fn a_wrong_confirmation_is_exit_2_and_deploys_nothing() {
    let d = Deployment::new();
    let before = d.deployed_files();
    let r = d.rollback(DEPLOY, &["--confirm", "v1.1.0"]).run();
    assert_eq!(r.code(), 2, "{}", r.text());
    assert!(
        r.text().contains("nothing was done") && r.text().contains("--confirm v1.0.0"),
        "{}",
        r.text()
    );
    assert_eq!(d.deployed_files(), before);
    assert!(r.report.is_none());
}

#[test]
fn a_confirmed_rollback_deploys_the_previous_tag_reports_it_and_is_audited() {
    let d = Deployment::new();
    let base = serve(&d.deploy_dir);
    let repo = d.dir.path().join("backups");
    std::fs::create_dir_all(repo.join("database")).unwrap();
    let version_url = format!("{base}/version");
    let health_url = format!("{base}/health");
    let r = d
        .rollback(
            DEPLOY,
            &[
                "--version-url",
                &version_url,
                "--app-health-url",
                &health_url,
                "--repo",
                repo.to_str().unwrap(),
                "--ticket",
                "CHG-7",
                "--reason",
                "v1.1.0 is degraded",
                "--confirm",
                "v1.0.0",
            ],
        )
        .run();
    let report = r.assert_pass();
    assert_eq!(report["kind"], "rollback");
    // The report says what the work came from: the repository, no database.
    assert_eq!(report["source"]["kind"], "release", "{}", report["source"]);
    assert_eq!(report["source"]["database"], "");
    assert!(report["source"]["location"]
        .as_str()
        .is_some_and(|l| !l.is_empty()));
    assert_eq!(report["rollback"]["from"]["tag"], "v1.1.0");
    assert_eq!(report["rollback"]["to"]["tag"], "v1.0.0");
    assert_eq!(report["rollback"]["to"]["commit"], d.good_commit.as_str());
    assert_eq!(
        report["rollback"]["reported"]["source"],
        format!("GET {version_url}")
    );
    assert_eq!(report["rollback"]["deploy_command"], DEPLOY);
    assert_eq!(report["record"]["ticket"], "CHG-7");
    for p in ["code_rollback", "app_version", "app_healthy"] {
        assert_eq!(phase_status(&r, p), "pass", "{p}");
    }
    let budgets: Vec<&str> = report["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(budgets, ["code_rollback", "app_restart", "total"]);
    // The deployment now runs v1.0.0: its marker, its version endpoint, its files.
    let marker = d.marker();
    assert_eq!(marker["tag"], "v1.0.0");
    assert_eq!(marker["commit"], d.good_commit.as_str());
    let env = std::fs::read_to_string(d.deploy_dir.join("release.env")).unwrap();
    assert!(env.contains("v1.0.0: a good release"), "{env}");
    for f in [
        "report.json",
        "report.md",
        "report.html",
        "junit.xml",
        "SHA256SUMS",
        "deploy.log",
    ] {
        assert!(r.out.path().join(f).is_file(), "{f} missing");
    }
    let md = std::fs::read_to_string(r.out.path().join("report.md")).unwrap();
    assert!(
        md.starts_with("# Code rollback ")
            && md.contains("## The code rollback")
            && md.contains("| Deploy command |")
            && md.contains("not applicable to a code rollback"),
        "{md}"
    );
    let html = std::fs::read_to_string(r.out.path().join("report.html")).unwrap();
    assert!(html.contains("The code rollback") && !html.contains("class=\"extra\""));
    // The audit chain: started, then finished with the verdict, and it verifies.
    let actions: Vec<String> = std::fs::read_to_string(repo.join("audit.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            format!(
                "{}:{}",
                e["action"].as_str().unwrap(),
                e["result"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(actions, ["rollback_started:ok", "rollback_finished:pass"]);
    let audit = Pgdrill::new(["audit", "verify", "--repo", repo.to_str().unwrap()]).run();
    assert_eq!(audit.code(), 0, "{}", audit.text());
    // Nothing was written into the application's repository.
    let status = crate::support::git(&d.repo, &["status", "--porcelain"]);
    assert_eq!(status, "");
}

#[test]
fn a_failing_deploy_command_is_exit_1_and_the_report_says_so() {
    let d = Deployment::new();
    let log = d.dir.path().join("audit.ndjson");
    let r = d
        .rollback(
            "echo 'cannot reach the app servers' >&2; exit 7",
            &["--audit-log", log.to_str().unwrap(), "--confirm", "v1.0.0"],
        )
        .run();
    assert_eq!(r.code(), 1, "{}", r.text());
    let report = r.report();
    assert_eq!(report["kind"], "rollback");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(phase_status(&r, "code_rollback"), "fail");
    let message = report["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("the deploy command for v1.0.0 failed (exit code 7)")
            && message.contains("cannot reach the app servers"),
        "{message}"
    );
    // The deployment was left as it was: the marker still names v1.1.0.
    assert_eq!(d.marker()["tag"], "v1.1.0");
    let audit = std::fs::read_to_string(&log).unwrap();
    assert!(
        audit.contains("rollback_started") && audit.contains(r#""result":"fail""#),
        "{audit}"
    );
}

#[test]
fn a_version_endpoint_reporting_another_release_is_exit_1() {
    let d = Deployment::new();
    let base = serve(&d.deploy_dir);
    // A deploy that "succeeds" but leaves the application on the bad release.
    let wrong = r#"sh "$PGDRILL_RELEASE_WORKTREE/deploy.sh" && printf '{"release":"v1.1.0","commit":"%s"}' "$PGDRILL_RELEASE_COMMIT" > "$PGDRILL_DEPLOY_DIR/version.json""#;
    let url = format!("{base}/version");
    let r = d
        .rollback(wrong, &["--version-url", &url, "--confirm", "v1.0.0"])
        .run();
    assert_eq!(r.code(), 1, "{}", r.text());
    assert_eq!(phase_status(&r, "code_rollback"), "pass");
    assert_eq!(phase_status(&r, "app_version"), "fail");
    assert_eq!(phase_status(&r, "app_healthy"), "skipped");
    let message = r.report()["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("version mismatch")
            && message.contains("reports release v1.1.0")
            && message.contains("expected v1.0.0")
            && message.contains("the tag differs"),
        "{message}"
    );
}

#[test]
fn a_directory_that_is_no_git_repository_is_refused_with_the_fix() {
    let d = Deployment::new();
    let not_git = d.dir.path().join("not-git");
    std::fs::create_dir_all(&not_git).unwrap();
    let before = d.deployed_files();
    for confirm in [None, Some("v1.0.0")] {
        let mut p = Pgdrill::new([
            "rollback",
            "--code-repo",
            not_git.to_str().unwrap(),
            "--deploy",
            DEPLOY,
            "--deploy-dir",
            d.deploy_dir.to_str().unwrap(),
        ]);
        if let Some(c) = confirm {
            p = p.push_arg("--confirm").push_arg(c);
        }
        let r = p.run();
        assert_eq!(r.code(), 3, "{}", r.text());
        assert!(
            r.text().contains("is not a git repository")
                && r.text().contains("give the top-level directory"),
            "{}",
            r.text()
        );
        assert!(r.report.is_none());
    }
    assert_eq!(d.deployed_files(), before);
}

#[test]
fn a_tag_that_does_not_exist_is_exit_2_naming_the_nearest() {
    let d = Deployment::new();
    let r = d.rollback(DEPLOY, &["--to", "v1.0.1"]).run();
    assert_eq!(r.code(), 2, "{}", r.text());
    assert!(
        r.text().contains("tag v1.0.1 does not exist") && r.text().contains("v1.0.0"),
        "{}",
        r.text()
    );
    let missing = Pgdrill::new(["rollback", "--code-repo", d.repo.to_str().unwrap()]).run();
    assert_eq!(missing.code(), 2, "{}", missing.text());
    assert!(missing.text().contains("--deploy"), "{}", missing.text());
}

#[test]
fn sigint_during_the_deploy_is_exit_3_and_stops_the_deploy_command() {
    let d = Deployment::new();
    let started = d.dir.path().join("deploy-started");
    let finished = d.dir.path().join("deploy-finished");
    let slow = format!(
        "touch '{}'; sleep 60; touch '{}'",
        started.display(),
        finished.display()
    );
    let (child, out) = d.rollback(&slow, &["--confirm", "v1.0.0"]).spawn();
    let t0 = std::time::Instant::now();
    while !started.exists() {
        assert!(
            t0.elapsed().as_secs() < 120,
            "the deploy command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(3), "{text}");
    let report = crate::support::read_report(out.path()).expect("a report after SIGINT");
    assert_eq!(report["kind"], "rollback");
    assert_eq!(report["verdict"], "error", "{}", report["failure"]);
    // The deploy command's process group was killed with it, and nothing was deployed.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!finished.exists(), "the deploy command outlived pgdrill");
    assert_eq!(d.marker()["tag"], "v1.1.0");
}
