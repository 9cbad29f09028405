//! Code rollback (`pgdrill::code`) with the real git: the sample release repository, a
//! user-style repository of the test's own, checkout and deploy without touching the user's
//! repository, the sample app started on a deployed release against a real PostgreSQL, and
//! every refusal with its message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pgdrill::app::{AppProcess, AppSpec};
use pgdrill::code::{
    create_sample_release_repo, deploy, verify_version, CodeError, DeploySpec, DeployedFrom,
    DeploymentMarker, ReleaseRepo, ReportedVersion, RollbackTo, SAMPLE_DEPLOY_COMMAND,
};

use crate::support::{git, TestServer};

const DB_PASSWORD: &str = "db-password-5c20e9b1";

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pgdrill-test-code-")
        .tempdir()
        .unwrap()
}

fn spec(scratch: &Path, deploy_dir: &Path, command: &str) -> DeploySpec {
    DeploySpec {
        command: command.to_string(),
        deploy_dir: deploy_dir.to_path_buf(),
        log: scratch.join("deploy.log"),
        timeout: Duration::from_secs(30),
        deployed_by: "pgdrill test".into(),
    }
}

/// Runs git as a user would, without their global configuration; panics on failure.
/// Every file and directory under `.git` with its size and modification time: a write
/// anywhere in the repository's metadata changes it.
fn git_dir_listing(repo: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, (u64, SystemTime)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            out.insert(
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                (meta.len(), meta.modified().unwrap()),
            );
            if meta.is_dir() {
                walk(&e.path(), root, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&repo.join(".git"), repo, &mut out);
    out
}

#[tokio::test]
async fn the_sample_repository_has_its_releases_and_previous_of_the_bad_one_is_the_good_one() {
    let dir = scratch();
    let sample = create_sample_release_repo(&dir.path().join("releases"))
        .await
        .unwrap();
    assert_eq!(
        (sample.good.tag.as_str(), sample.bad.tag.as_str()),
        ("v1.0.0", "v1.1.0")
    );
    let repo = ReleaseRepo::open(&sample.path).await.unwrap();
    assert_eq!(repo.tags().await.unwrap(), ["v0.9.0", "v1.0.0", "v1.1.0"]);
    // The commits are those git gives for the tags (annotated tags peeled to commits).
    for r in &sample.releases {
        assert_eq!(
            git(
                &sample.path,
                &["rev-parse", &format!("{}^{{commit}}", r.tag)]
            ),
            r.commit
        );
    }
    assert_eq!(
        git(&sample.path, &["show", "v1.1.0:release.env"])
            .lines()
            .last(),
        Some("SAMPLE_APP_FAULT=degraded")
    );

    // Without a marker the deployed release is HEAD's tag.
    let deployed = repo.deployed(None).await.unwrap();
    assert_eq!(
        (deployed.release.clone(), deployed.from),
        (sample.bad.clone(), DeployedFrom::Head)
    );
    let previous = repo.resolve(&RollbackTo::Previous, None).await.unwrap();
    assert_eq!(previous, sample.good);

    // A marker wins over HEAD: with v1.0.0 deployed, the previous release is v0.9.0.
    let deploy_dir = dir.path().join("deploy");
    std::fs::create_dir(&deploy_dir).unwrap();
    DeploymentMarker {
        tag: sample.good.tag.clone(),
        commit: sample.good.commit.clone(),
        deployed_at: chrono::Utc::now(),
        deployed_by: "test".into(),
        how: "by hand".into(),
    }
    .write(&deploy_dir)
    .unwrap();
    let deployed = repo.deployed(Some(&deploy_dir)).await.unwrap();
    assert_eq!(deployed.release, sample.good);
    assert_eq!(
        deployed.from,
        DeployedFrom::Marker(deploy_dir.join("deployment.json"))
    );
    let previous = repo
        .resolve(&RollbackTo::Previous, Some(&deploy_dir))
        .await
        .unwrap();
    assert_eq!(previous, sample.releases[0]);
    assert_eq!(previous.tag, "v0.9.0");

    // From the oldest release there is nothing to roll back to.
    let oldest = repo
        .resolve(&RollbackTo::Tag("v0.9.0".into()), None)
        .await
        .unwrap();
    DeploymentMarker {
        tag: oldest.tag.clone(),
        commit: oldest.commit.clone(),
        deployed_at: chrono::Utc::now(),
        deployed_by: "test".into(),
        how: "by hand".into(),
    }
    .write(&deploy_dir)
    .unwrap();
    let err = repo
        .resolve(&RollbackTo::Previous, Some(&deploy_dir))
        .await
        .unwrap_err();
    assert!(matches!(err, CodeError::NoPrevious { .. }), "{err}");
    assert!(
        err.to_string().contains("no release before v0.9.0 in ")
            && err.to_string().contains("oldest release tag"),
        "{err}"
    );
}

#[tokio::test]
async fn checkout_and_deploy_write_nothing_into_the_users_repository() {
    let dir = scratch();
    let sample = create_sample_release_repo(&dir.path().join("releases"))
        .await
        .unwrap();
    let before = git_dir_listing(&sample.path);
    let refs_before = git(&sample.path, &["for-each-ref"]);
    let head_before = git(&sample.path, &["rev-parse", "HEAD"]);

    let repo = ReleaseRepo::open(&sample.path).await.unwrap();
    let target = repo.resolve(&RollbackTo::Previous, None).await.unwrap();
    let worktree = repo
        .checkout(&target, &dir.path().join("checkout"))
        .await
        .unwrap();
    assert_eq!(worktree.release, sample.good);
    assert_eq!(
        git(&worktree.path, &["rev-parse", "HEAD"]),
        sample.good.commit
    );
    let env = std::fs::read_to_string(worktree.path.join("release.env")).unwrap();
    assert!(
        env.contains("v1.0.0") && !env.contains("SAMPLE_APP_FAULT"),
        "{env}"
    );

    // A previous deploy of the bad release left its settings: the rollback replaces them.
    let deploy_dir = dir.path().join("deploy");
    std::fs::create_dir(&deploy_dir).unwrap();
    std::fs::write(
        deploy_dir.join("release.env"),
        "SAMPLE_APP_FAULT=degraded\n",
    )
    .unwrap();
    let spec = spec(dir.path(), &deploy_dir, SAMPLE_DEPLOY_COMMAND);
    let done = deploy(&worktree, &spec).await.unwrap();
    assert_eq!(done.marker_path, deploy_dir.join("deployment.json"));
    assert_eq!(
        (done.marker.tag.as_str(), done.marker.commit.as_str()),
        (sample.good.tag.as_str(), sample.good.commit.as_str())
    );
    assert_eq!(done.marker.how, SAMPLE_DEPLOY_COMMAND);
    assert_eq!(
        DeploymentMarker::read(&deploy_dir).unwrap(),
        Some(done.marker.clone())
    );
    let deployed_env = std::fs::read_to_string(deploy_dir.join("release.env")).unwrap();
    assert_eq!(deployed_env, env);
    assert!(!deploy_dir.join(".git").exists());
    let log = std::fs::read_to_string(&spec.log).unwrap();
    assert!(
        log.contains(&format!(
            "deployed sample-app v1.0.0 ({}) into {}",
            sample.good.commit,
            deploy_dir.display()
        )),
        "{log}"
    );
    verify_version(&target, &ReportedVersion::from_marker(&deploy_dir).unwrap()).unwrap();

    // The user's repository: same files under .git, same refs, same HEAD, still clean.
    assert_eq!(git_dir_listing(&sample.path), before);
    assert_eq!(git(&sample.path, &["for-each-ref"]), refs_before);
    assert_eq!(git(&sample.path, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        git(&sample.path, &["worktree", "list", "--porcelain"])
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count(),
        1
    );
    ReleaseRepo::open(&sample.path).await.unwrap();

    // A second checkout into the same, now full, directory is refused.
    let err = repo.checkout(&target, &worktree.path).await.unwrap_err();
    assert!(
        err.to_string().contains("is not empty") && err.to_string().contains("new or empty"),
        "{err}"
    );
}

/// A database for the sample app: the fixtures' roles and schema, no rows (the workers still
/// beat). The app connects as pgdrill_app, as in a drill.
async fn app_database(server: &TestServer) -> String {
    let (name, _) = server.sample_app_db("code", DB_PASSWORD).await;
    format!(
        "host={} port={} dbname={name} user=pgdrill_app password={DB_PASSWORD}",
        server.endpoint.host, server.endpoint.port
    )
}

fn sample_app_on(release_dir: &Path) -> AppSpec {
    AppSpec::Sample {
        binary: crate::support::sample_app().to_path_buf(),
        env: [
            ("API_KEY", "code-test-api-key-0b7e"),
            ("VPN_PEER", "vpn-peer-code-test:51820"),
            ("WORKER_INTERVAL_MS", "200"),
            // The marker's tag wins over RELEASE.
            ("RELEASE", "not-the-deployed-one"),
            ("SAMPLE_APP_RELEASE_DIR", &release_dir.display().to_string()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        health_format: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_app_reports_the_deployed_release_and_the_bad_one_is_degraded() {
    let dir = scratch();
    let sample = create_sample_release_repo(&dir.path().join("releases"))
        .await
        .unwrap();
    let repo = ReleaseRepo::open(&sample.path).await.unwrap();
    let mut deployed = Vec::new();
    for (release, name) in [(&sample.bad, "bad"), (&sample.good, "good")] {
        let worktree = repo
            .checkout(release, &dir.path().join(format!("checkout-{name}")))
            .await
            .unwrap();
        let deploy_dir = dir.path().join(format!("deploy-{name}"));
        let done = deploy(
            &worktree,
            &spec(dir.path(), &deploy_dir, SAMPLE_DEPLOY_COMMAND),
        )
        .await
        .unwrap();
        deployed.push((deploy_dir, done.marker));
    }
    let server = TestServer::start("code").await;
    let dsn = app_database(&server).await;

    // The bad release: running, DEGRADED by its release.env, and it says which release it is.
    let (bad_dir, bad_marker) = &deployed[0];
    let mut app = AppProcess::start(&sample_app_on(bad_dir), &dsn, &dir.path().join("bad.log"))
        .await
        .unwrap();
    let err = app.wait_healthy(Duration::from_secs(3)).await.unwrap_err();
    assert!(
        err.to_string().contains("status DEGRADED")
            && err.to_string().contains("SAMPLE_APP_FAULT=degraded"),
        "{err}"
    );
    let health = app.health().await.unwrap();
    assert_eq!(health.check("database").unwrap()["status"], "pass");
    assert_eq!(health.json.as_ref().unwrap()["release"], "v1.1.0");
    let version = app.version().await.unwrap();
    assert_eq!(version.release.as_deref(), Some("v1.1.0"));
    assert_eq!(version.commit.as_deref(), Some(sample.bad.commit.as_str()));
    let reported = ReportedVersion::from(&version);
    verify_version(&sample.bad, &reported).unwrap();
    // Against the rollback target, the bad release is a mismatch naming both versions.
    let err = verify_version(&sample.good, &reported).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CodeError::VersionMismatch(_)), "{msg}");
    assert!(
        msg.contains(&format!(
            "the version endpoint reports release v1.1.0 at commit {}, expected v1.0.0 at commit {}",
            sample.bad.commit, sample.good.commit
        )) && msg.contains("the tag differs"),
        "{msg}"
    );
    assert_eq!(
        version.deployed_at.as_deref(),
        Some(
            bad_marker
                .deployed_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                .as_str()
        )
    );
    app.stop(Duration::from_secs(5)).await.unwrap();

    // The good release: HEALTHY, v1.0.0 with its commit and deploy time.
    let (good_dir, good_marker) = &deployed[1];
    let mut app = AppProcess::start(&sample_app_on(good_dir), &dsn, &dir.path().join("good.log"))
        .await
        .unwrap();
    let health = app.wait_healthy(Duration::from_secs(10)).await.unwrap();
    assert_eq!(health.status.as_deref(), Some("HEALTHY"));
    assert!(health.check("fault").is_none());
    let version = app.version().await.unwrap();
    assert_eq!(
        (version.release.as_deref(), version.commit.as_deref()),
        (Some("v1.0.0"), Some(sample.good.commit.as_str()))
    );
    let deployed_at = version.deployed_at.clone().unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&deployed_at).unwrap(),
        good_marker.deployed_at
    );
    verify_version(&sample.good, &ReportedVersion::from(&version)).unwrap();
    app.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_broken_release_directory_stops_the_sample_app_with_its_path_named() {
    let dir = scratch();
    let missing = dir.path().join("no-such-deploy-dir");
    let err = AppProcess::start(
        &sample_app_on(&missing),
        "host=127.0.0.1 port=1",
        &dir.path().join("app.log"),
    )
    .await
    .err()
    .expect("a missing release directory is a configuration error");
    let msg = err.to_string();
    assert!(
        msg.contains("exit code 2")
            && msg.contains("SAMPLE_APP_RELEASE_DIR")
            && msg.contains("not a directory"),
        "{msg}"
    );
}

/// A repository as a user has one: tags `release-1`, `release-2` (and a `nightly` tag that is
/// no release), a VERSION file, HEAD at release-2.
fn user_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("shop");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "trunk"]);
    for n in 1..=2 {
        std::fs::write(repo.join("VERSION"), format!("{n}\n")).unwrap();
        git(&repo, &["add", "VERSION"]);
        git(&repo, &["commit", "-q", "-m", &format!("release {n}")]);
        git(&repo, &["tag", &format!("release-{n}")]);
    }
    git(&repo, &["tag", "nightly", "HEAD~1"]);
    repo
}

/// Copies VERSION into `current/` and writes what a version endpoint would answer.
const USER_DEPLOY: &str = r#"set -e
test "$PWD" = "$PGDRILL_RELEASE_WORKTREE"
mkdir -p "$PGDRILL_DEPLOY_DIR/current"
cp VERSION "$PGDRILL_DEPLOY_DIR/current/VERSION"
printf '{"tag":"%s","commit":"%s"}\n' "$PGDRILL_RELEASE_TAG" "$(git rev-parse --short=9 HEAD)" > "$PGDRILL_DEPLOY_DIR/version.json"
echo "shop $PGDRILL_RELEASE_TAG is live""#;

#[tokio::test]
async fn a_users_repository_and_deploy_command_go_through_the_same_steps() {
    let dir = scratch();
    let path = user_repo(dir.path());
    let repo = ReleaseRepo::open(&path)
        .await
        .unwrap()
        .with_tag_pattern("release-*");
    assert_eq!(repo.tags().await.unwrap(), ["release-1", "release-2"]);
    let target = repo.resolve(&RollbackTo::Previous, None).await.unwrap();
    assert_eq!(target.tag, "release-1");
    assert_eq!(target.commit, git(&path, &["rev-parse", "release-1"]));
    let worktree = repo
        .checkout(&target, &dir.path().join("checkout"))
        .await
        .unwrap();
    let deploy_dir = dir.path().join("srv");
    let spec = spec(dir.path(), &deploy_dir, USER_DEPLOY);
    deploy(&worktree, &spec).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(deploy_dir.join("current/VERSION")).unwrap(),
        "1\n"
    );
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy_dir.join("version.json")).unwrap())
            .unwrap();
    let reported = ReportedVersion::from_json("version.json", &body);
    assert_eq!(reported.commit.as_ref().map(String::len), Some(9));
    verify_version(&target, &reported).unwrap();
    // Now the marker says release-1 is deployed: a tag of the pattern, nothing before it.
    let err = repo
        .resolve(&RollbackTo::Previous, Some(&deploy_dir))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no release before release-1"),
        "{err}"
    );
    // A tag outside the pattern is no release.
    let err = repo
        .resolve(&RollbackTo::Tag("nightly".into()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, CodeError::TagMissing { .. }), "{err}");
    assert!(std::fs::read_to_string(&spec.log)
        .unwrap()
        .contains("shop release-1 is live"));
}

#[tokio::test]
async fn a_missing_tag_names_the_nearest_existing_ones() {
    let dir = scratch();
    let sample = create_sample_release_repo(&dir.path().join("releases"))
        .await
        .unwrap();
    let repo = ReleaseRepo::open(&sample.path).await.unwrap();
    let err = repo
        .resolve(&RollbackTo::Tag("v1.0.1".into()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, CodeError::TagMissing { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "tag v1.0.1 does not exist in {}; the nearest existing tags: v0.9.0, v1.0.0, v1.1.0 \
             (of 3, newest v1.1.0): choose one of them, or `previous`",
            sample.path.canonicalize().unwrap().display()
        )
    );
}

#[tokio::test]
async fn a_dirty_repository_is_refused_naming_its_changes() {
    let dir = scratch();
    let sample = create_sample_release_repo(&dir.path().join("releases"))
        .await
        .unwrap();
    std::fs::write(sample.path.join("release.env"), "SAMPLE_APP_FAULT=exit\n").unwrap();
    std::fs::write(sample.path.join("notes.txt"), "wip\n").unwrap();
    let err = ReleaseRepo::open(&sample.path).await.unwrap_err();
    assert!(matches!(err, CodeError::Dirty { count: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("has uncommitted changes (2 path(s): release.env, notes.txt)")
            && msg.contains("a rollback from a dirty repository is refused")
            && msg.contains("commit, stash or discard them"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_absent_path_or_a_plain_directory_is_no_repository() {
    let dir = scratch();
    let absent = dir.path().join("gone");
    let err = ReleaseRepo::open(&absent).await.unwrap_err();
    assert!(matches!(err, CodeError::RepoAbsent { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "code repository {} does not exist: give the path of the application's git repository",
            absent.display()
        )
    );
    let err = ReleaseRepo::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, CodeError::NotARepo { .. }), "{err}");
    assert!(
        err.to_string().contains("is not a git repository")
            && err.to_string().contains("give the top-level directory"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_deploy_command_gives_its_exit_status_and_log_tail() {
    let dir = scratch();
    let sample = create_sample_release_repo(&dir.path().join("releases"))
        .await
        .unwrap();
    let repo = ReleaseRepo::open(&sample.path).await.unwrap();
    let worktree = repo
        .checkout(&sample.good, &dir.path().join("checkout"))
        .await
        .unwrap();
    let deploy_dir = dir.path().join("deploy");
    let spec = spec(
        dir.path(),
        &deploy_dir,
        "echo copying release files; echo 'rsync: connection refused' >&2; exit 3",
    );
    let err = deploy(&worktree, &spec).await.unwrap_err();
    assert!(matches!(err, CodeError::DeployFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("the deploy command for v1.0.0 failed (exit code 3); its log ")
            && msg.contains("  copying release files\n  rsync: connection refused\n")
            && msg.contains("fix the deploy command or the release"),
        "{msg}"
    );
    // No marker: a failed deploy is not a deployment.
    assert_eq!(DeploymentMarker::read(&deploy_dir).unwrap(), None);

    // One that hangs is killed at its time limit, with what it started in the background.
    let pid_file = dir.path().join("background.pid");
    let spec = DeploySpec {
        command: format!(
            "echo starting; sleep 30 & echo $! > {}; wait",
            pid_file.display()
        ),
        timeout: Duration::from_millis(500),
        ..spec
    };
    let err = deploy(&worktree, &spec).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("did not finish within 500ms and was killed") && msg.contains("  starting"),
        "{msg}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    // Gone, or a zombie waiting for init: either way not running.
    while std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .unwrap()
            .1
            .trim_start()
            .starts_with('Z')
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the deploy's background process {pid} is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
