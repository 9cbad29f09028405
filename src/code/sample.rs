//! The sample app's release repository, made for a drill: three tagged releases of its
//! deployable files (the binary itself is pgdrill's sample-app build), the newest one bad in a
//! way its health check sees, and the `deploy.sh` the default sample deploy command runs.

use std::path::{Path, PathBuf};

use super::git::Git;
use super::{CodeError, Release};

/// The deploy command for the sample release repository: the release's own `deploy.sh`.
pub const SAMPLE_DEPLOY_COMMAND: &str = r#"sh "$PGDRILL_RELEASE_WORKTREE/deploy.sh""#;

/// Copies the release's files into the deploy directory, where sample-app reads them at
/// start (`SAMPLE_APP_RELEASE_DIR`).
const DEPLOY_SH: &str = r#"#!/bin/sh
# Deploys this release of sample-app: copies the release's files (not .git) into the deploy
# directory, where sample-app reads them at start (SAMPLE_APP_RELEASE_DIR). pgdrill runs it
# with PGDRILL_RELEASE_WORKTREE, PGDRILL_RELEASE_TAG, PGDRILL_RELEASE_COMMIT and
# PGDRILL_DEPLOY_DIR set, and writes the deployment marker once it succeeded.
set -eu
: "${PGDRILL_RELEASE_WORKTREE:?is set by pgdrill: the checked-out release}"
: "${PGDRILL_DEPLOY_DIR:?is set by pgdrill: where the release goes}"
mkdir -p "$PGDRILL_DEPLOY_DIR"
# The previous release's settings go first, so that nothing of it lingers.
rm -f "$PGDRILL_DEPLOY_DIR/release.env"
for f in "$PGDRILL_RELEASE_WORKTREE"/*; do
    cp -R "$f" "$PGDRILL_DEPLOY_DIR/"
done
echo "deployed sample-app ${PGDRILL_RELEASE_TAG:-?} (${PGDRILL_RELEASE_COMMIT:-?}) into $PGDRILL_DEPLOY_DIR"
"#;

const README: &str =
    "# sample-app releases\n\nThe deployable files of pgdrill's sample app, one tag per release. \
`deploy.sh` copies a release into the deploy directory; sample-app reads its `release.env` \
and the deployment marker from there (SAMPLE_APP_RELEASE_DIR).\n";

/// One release: its tag, its `release.env`, and its commit time (fixed, so that the commit
/// ids are the same on every machine).
struct Spec {
    tag: &'static str,
    release_env: &'static str,
    date: &'static str,
}

const RELEASES: [Spec; 3] = [
    Spec {
        tag: "v0.9.0",
        release_env: "# sample-app v0.9.0\n",
        date: "1704110400 +0000",
    },
    Spec {
        tag: "v1.0.0",
        release_env: "# sample-app v1.0.0: a good release\n",
        date: "1706788800 +0000",
    },
    Spec {
        tag: "v1.1.0",
        release_env: "# sample-app v1.1.0: a bad release, its health check reports DEGRADED\nSAMPLE_APP_FAULT=degraded\n",
        date: "1709294400 +0000",
    },
];
/// The good release a drill rolls back to (the one before the bad one).
const GOOD: usize = 1;
/// The bad release a drill deploys before the disaster (the newest, at HEAD).
const BAD: usize = 2;

/// The sample release repository.
#[derive(Debug, Clone)]
pub struct SampleReleaseRepo {
    /// The repository (a plain git repository with a working tree, clean, HEAD at the bad
    /// release).
    pub path: PathBuf,
    /// Every release, oldest first.
    pub releases: Vec<Release>,
    /// v1.0.0: healthy; the release before the bad one.
    pub good: Release,
    /// v1.1.0: its `release.env` sets `SAMPLE_APP_FAULT=degraded`.
    pub bad: Release,
}

/// Makes the sample app's release repository in `dir` (absent or empty), with the real git
/// and no global configuration (the identity is set in the repository).
pub async fn create_sample_release_repo(dir: &Path) -> Result<SampleReleaseRepo, CodeError> {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(CodeError::CheckoutDest {
            path: dir.to_path_buf(),
            reason: "the directory is not empty".into(),
        });
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CodeError::io("cannot create the release repository", dir, e))?;
    let git = Git::isolated(dir);
    git.run(["init", "--quiet", "--initial-branch=main"])
        .await?;
    for (key, value) in [
        ("user.name", "pgdrill sample releases"),
        ("user.email", "sample-app@pgdrill.invalid"),
        ("commit.gpgSign", "false"),
        ("tag.gpgSign", "false"),
    ] {
        git.run(["config", "--local", key, value]).await?;
    }
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| CodeError::io("cannot write the sample release file", &path, e))
    };
    write("README.md", README)?;
    write("deploy.sh", DEPLOY_SH)?;
    let mut releases = Vec::new();
    for spec in &RELEASES {
        write("release.env", spec.release_env)?;
        let dated = git
            .clone()
            .env("GIT_AUTHOR_DATE", spec.date)
            .env("GIT_COMMITTER_DATE", spec.date);
        dated.run(["add", "--all"]).await?;
        let message = format!("sample-app {}", spec.tag);
        dated
            .run(["commit", "--quiet", "--message", &message])
            .await?;
        dated
            .run(["tag", "--annotate", "--message", &message, spec.tag])
            .await?;
        let commit = git.run(["rev-parse", "HEAD"]).await?;
        releases.push(Release {
            tag: spec.tag.to_string(),
            commit,
        });
    }
    Ok(SampleReleaseRepo {
        path: dir.to_path_buf(),
        good: releases[GOOD].clone(),
        bad: releases[BAD].clone(),
        releases,
    })
}
