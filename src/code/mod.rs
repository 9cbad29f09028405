//! Application code rollback, as the strategy's "Application Code Rollback" does it: list the
//! release tags, check the target version out, deploy it, verify the deployment marker and the
//! version the app reports. Everything goes through the real `git` program; nothing is written
//! into the user's repository (the target is cloned into a directory the caller owns).
//!
//! - [`ReleaseRepo`]: the app's repository: open (refusing an absent, non-git or dirty one),
//!   tags in version order, the deployed release, [`RollbackTo`] resolved to a [`Release`],
//!   [`ReleaseRepo::checkout`] into a clean worktree.
//! - [`deploy()`]: the user's deploy command (`sh -c`), then the [`DeploymentMarker`].
//! - [`verify_version`]: what the app reports against the target.
//! - [`create_sample_release_repo`]: the sample app's release repository, for drills.

mod deploy;
mod git;
mod repo;
mod sample;
mod verify;

use std::path::PathBuf;
use std::str::FromStr;

pub use deploy::{deploy, DeploySpec, Deployment, DeploymentMarker, MARKER_FILE};
pub use git::git_version;
pub use repo::{DeployedFrom, DeployedRelease, ReleaseRepo};
pub use sample::{create_sample_release_repo, SampleReleaseRepo, SAMPLE_DEPLOY_COMMAND};
pub use verify::{verify_version, ReportedVersion};

/// A release: a tag and the commit it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Release {
    /// The tag, e.g. `v1.0.0`.
    pub tag: String,
    /// The full commit id (`git rev-parse TAG^{commit}`).
    pub commit: String,
}

impl Release {
    /// The commit's usual 12-character abbreviation, for messages.
    pub fn short_commit(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.tag, self.short_commit())
    }
}

/// A checked-out release: a fresh clone at the release's commit, owned by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The release checked out.
    pub release: Release,
    /// The clone's directory (its own `.git` inside).
    pub path: PathBuf,
}

/// Which release to roll back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTo {
    /// This tag.
    Tag(String),
    /// The tag before the deployed one, in version order.
    Previous,
}

impl FromStr for RollbackTo {
    type Err = CodeError;

    /// `previous`, or a tag name.
    fn from_str(s: &str) -> Result<RollbackTo, CodeError> {
        match s.trim() {
            "" => Err(CodeError::EmptyTarget),
            "previous" => Ok(RollbackTo::Previous),
            tag => Ok(RollbackTo::Tag(tag.to_string())),
        }
    }
}

impl std::fmt::Display for RollbackTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollbackTo::Tag(t) => f.write_str(t),
            RollbackTo::Previous => f.write_str("previous"),
        }
    }
}

/// Why a code rollback step did not succeed; each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// `git` cannot be run.
    #[error("cannot run git ({source}): install git and put it on PATH")]
    GitMissing {
        /// The spawn error.
        source: std::io::Error,
    },
    /// A git command failed in a way no other variant describes.
    #[error("`git {command}` failed in {dir}: {detail}")]
    Git {
        /// The arguments.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// git's own message (its last stderr lines).
        detail: String,
    },
    /// git refuses the repository because another user owns it.
    #[error("git refuses {path}: it is owned by another user (dubious ownership); run pgdrill as the repository's owner, or mark it safe with `git config --global --add safe.directory {path}`")]
    UnsafeRepo {
        /// The repository.
        path: PathBuf,
    },
    /// The repository path does not exist.
    #[error(
        "code repository {path} does not exist: give the path of the application's git repository"
    )]
    RepoAbsent {
        /// The path as given.
        path: PathBuf,
    },
    /// The path exists but is no git repository.
    #[error("{path} is not a git repository ({reason}): give the top-level directory of the application's git repository")]
    NotARepo {
        /// The path as given.
        path: PathBuf,
        /// git's or the file system's word for it.
        reason: String,
    },
    /// The path is inside a repository, not its top level.
    #[error(
        "{path} is inside the git repository {top_level}, not its top level: give {top_level}"
    )]
    NotTopLevel {
        /// The path as given.
        path: PathBuf,
        /// The repository's top level.
        top_level: PathBuf,
    },
    /// The working tree has changes: what is deployed may not be any tag.
    #[error("code repository {path} has uncommitted changes ({count} path(s): {first}); a rollback from a dirty repository is refused: commit, stash or discard them (`git -C {path} status` lists them)")]
    Dirty {
        /// The repository.
        path: PathBuf,
        /// How many paths `git status --porcelain` lists.
        count: usize,
        /// The first few of them.
        first: String,
    },
    /// The repository has no tag (matching the pattern).
    #[error("code repository {path} has no release tag{}: tag the releases (`git tag -a v1.0.0 -m v1.0.0`)", pattern.as_ref().map(|p| format!(" matching {p}")).unwrap_or_default())]
    NoTags {
        /// The repository.
        path: PathBuf,
        /// The tag pattern, when one was given.
        pattern: Option<String>,
    },
    /// The rollback target names no existing tag.
    #[error("tag {tag} does not exist in {path}; the nearest existing tags: {nearest} (of {count}, newest {newest}): choose one of them, or `previous`")]
    TagMissing {
        /// The requested tag.
        tag: String,
        /// The repository.
        path: PathBuf,
        /// The closest existing tag names, comma-separated.
        nearest: String,
        /// How many tags exist.
        count: usize,
        /// The newest tag in version order.
        newest: String,
    },
    /// The rollback target was empty.
    #[error("the rollback target is empty: give a tag name or `previous`")]
    EmptyTarget,
    /// The deployed release cannot be told, so `previous` has nothing to count from.
    #[error("cannot tell which release of {path} is deployed: {why}; give the rollback target as a tag instead of `previous`, or deploy a tagged release first")]
    DeployedUnknown {
        /// The repository.
        path: PathBuf,
        /// Why (no marker, HEAD not at a tag, …).
        why: String,
    },
    /// The deployed release's tag is not among the release tags.
    #[error("the deployed release {deployed} is not a release tag of {path} ({count} tag(s), newest {newest}); give the rollback target as a tag instead of `previous`")]
    DeployedNotListed {
        /// The deployed tag.
        deployed: String,
        /// The repository.
        path: PathBuf,
        /// How many tags exist.
        count: usize,
        /// The newest tag.
        newest: String,
    },
    /// `previous` from the oldest tag.
    #[error("no release before {deployed} in {path}: it is the oldest release tag, so there is nothing to roll back to; give a tag, or tag an earlier release")]
    NoPrevious {
        /// The deployed tag.
        deployed: String,
        /// The repository.
        path: PathBuf,
    },
    /// The tag does not point at a commit.
    #[error(
        "tag {tag} in {path} does not point at a commit ({detail}): roll back to a tag of a commit"
    )]
    NotACommit {
        /// The tag.
        tag: String,
        /// The repository.
        path: PathBuf,
        /// git's message.
        detail: String,
    },
    /// The checkout destination is in use.
    #[error("cannot check out into {path}: {reason}; give a new or empty directory")]
    CheckoutDest {
        /// The destination.
        path: PathBuf,
        /// What is in the way.
        reason: String,
    },
    /// The checked-out HEAD is not the commit the tag resolved to.
    #[error("the checkout of {tag} is at commit {found}, not {expected}: the tag moved while pgdrill was working; run the rollback again")]
    TagMoved {
        /// The tag.
        tag: String,
        /// The commit resolved before.
        expected: String,
        /// The commit checked out.
        found: String,
    },
    /// No deploy command.
    #[error("the deploy command is empty: give the command that deploys a checked-out release (it runs with sh -c, PGDRILL_RELEASE_WORKTREE names the checkout)")]
    EmptyDeployCommand,
    /// The deploy command could not be started.
    #[error("cannot start the deploy command with sh -c: {source}")]
    DeploySpawn {
        /// The spawn error.
        source: std::io::Error,
    },
    /// The deploy command failed.
    #[error("the deploy command for {tag} failed ({status}); its log {log} ends with:\n{tail}\nfix the deploy command or the release, then run again")]
    DeployFailed {
        /// The release being deployed.
        tag: String,
        /// How it ended, e.g. `exit code 3`.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// The deploy command ran past its time limit.
    #[error("the deploy command for {tag} did not finish within {after} and was killed; its log {log} ends with:\n{tail}\nmake it finish sooner or give it more time")]
    DeployTimedOut {
        /// The release being deployed.
        tag: String,
        /// The limit, human-readable.
        after: String,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// The deployment marker cannot be read or written.
    #[error("deployment marker {path}: {reason}")]
    Marker {
        /// The marker file.
        path: PathBuf,
        /// What went wrong, with the fix.
        reason: String,
    },
    /// A file system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What pgdrill was doing.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The app reports another release than the one rolled back to.
    #[error("{0}")]
    VersionMismatch(Box<VersionMismatch>),
}

/// What the app reports against what it should: both versions, and which part differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMismatch {
    /// Where the reported version came from.
    pub reported_by: String,
    /// The target tag.
    pub expected_tag: String,
    /// The target commit.
    pub expected_commit: String,
    /// The tag reported, or `none`.
    pub reported_tag: String,
    /// The commit reported, or `none`.
    pub reported_commit: String,
    /// Which part differs.
    pub why: String,
}

impl std::fmt::Display for VersionMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "version mismatch: {} reports release {} at commit {}, expected {} at commit {} ({}); check that the deploy command deployed the checked-out release and that the app was restarted on it",
            self.reported_by,
            self.reported_tag,
            self.reported_commit,
            self.expected_tag,
            self.expected_commit,
            self.why
        )
    }
}

impl CodeError {
    /// An I/O error while doing `what` on `path`.
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        CodeError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_targets_parse() {
        assert_eq!(
            "previous".parse::<RollbackTo>().unwrap(),
            RollbackTo::Previous
        );
        assert_eq!(
            " v1.0.0 ".parse::<RollbackTo>().unwrap(),
            RollbackTo::Tag("v1.0.0".into())
        );
        let err = "".parse::<RollbackTo>().unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("previous"), "{err}");
        assert_eq!(RollbackTo::Tag("v2".into()).to_string(), "v2");
    }

    #[test]
    fn releases_show_a_short_commit() {
        let r = Release {
            tag: "v1.0.0".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
        };
        assert_eq!(r.to_string(), "v1.0.0 (0123456789ab)");
    }
}
