//! The application's release repository: opening it (absent, non-git and dirty ones refused),
//! its release tags in version order, the deployed release, the rollback target, and a clean
//! checkout of the target that writes nothing into the repository.

use std::path::{Path, PathBuf};

use super::deploy::DeploymentMarker;
use super::git::Git;
use super::{CodeError, Release, RollbackTo, Worktree};

/// Paths of a dirty working tree named in the error.
const DIRTY_SHOWN: usize = 5;
/// Existing tags named when a requested tag does not exist.
const NEAREST_SHOWN: usize = 3;

/// An application's git repository, opened for a rollback.
#[derive(Debug, Clone)]
pub struct ReleaseRepo {
    path: PathBuf,
    git: Git,
    pattern: Option<String>,
}

/// Where the deployed release was read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployedFrom {
    /// The deployment marker in the deploy directory.
    Marker(PathBuf),
    /// `git describe --tags --exact-match HEAD` in the repository.
    Head,
}

/// The release deployed now, as far as the marker or the repository's HEAD tell.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeployedRelease {
    /// Its tag and commit.
    pub release: Release,
    /// Where that was read.
    pub from: DeployedFrom,
}

impl ReleaseRepo {
    /// Opens the repository at `path` (its top level; a bare repository is accepted) and
    /// refuses one whose working tree has uncommitted changes.
    pub async fn open(path: &Path) -> Result<ReleaseRepo, CodeError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CodeError::RepoAbsent {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(CodeError::io("cannot read", path, e)),
        };
        if !meta.is_dir() {
            return Err(CodeError::NotARepo {
                path: path.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        let canonical = path
            .canonicalize()
            .map_err(|e| CodeError::io("cannot resolve", path, e))?;
        let git = Git::at(&canonical);
        let args = ["rev-parse", "--is-bare-repository"];
        let out = git.output(args).await?;
        if !out.status.success() {
            let err = git.failure(&args, &out);
            return Err(match err {
                CodeError::Git { detail, .. } if detail.contains("not a git repository") => {
                    CodeError::NotARepo {
                        path: path.to_path_buf(),
                        reason: "git finds no repository there".into(),
                    }
                }
                other => other,
            });
        }
        let bare = String::from_utf8_lossy(&out.stdout).trim() == "true";
        // git also answers from a subdirectory (or a directory under another repository),
        // which would silently roll back the wrong repository.
        let top = if bare {
            git.run(["rev-parse", "--absolute-git-dir"]).await?
        } else {
            match git.run(["rev-parse", "--show-toplevel"]).await {
                Ok(top) => top,
                Err(CodeError::Git { detail, .. }) => {
                    return Err(CodeError::NotARepo {
                        path: path.to_path_buf(),
                        reason: detail,
                    })
                }
                Err(e) => return Err(e),
            }
        };
        let top = PathBuf::from(top);
        if top.canonicalize().ok().as_deref() != Some(canonical.as_path()) {
            return Err(CodeError::NotTopLevel {
                path: path.to_path_buf(),
                top_level: top,
            });
        }
        let repo = ReleaseRepo {
            path: canonical,
            git,
            pattern: None,
        };
        if !bare {
            repo.refuse_dirty().await?;
        }
        Ok(repo)
    }

    /// Only tags matching this `git tag -l` pattern (e.g. `v*`) count as releases.
    pub fn with_tag_pattern(mut self, pattern: impl Into<String>) -> ReleaseRepo {
        self.pattern = Some(pattern.into());
        self
    }

    /// The repository's top-level directory (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn refuse_dirty(&self) -> Result<(), CodeError> {
        let status = self.git.run(["status", "--porcelain"]).await?;
        let paths: Vec<&str> = status
            .lines()
            .filter(|l| l.len() > 3)
            .map(|l| &l[3..])
            .collect();
        if paths.is_empty() {
            return Ok(());
        }
        let mut first = paths[..paths.len().min(DIRTY_SHOWN)].join(", ");
        if paths.len() > DIRTY_SHOWN {
            first.push_str(", …");
        }
        Err(CodeError::Dirty {
            path: self.path.clone(),
            count: paths.len(),
            first,
        })
    }

    /// The release tags, oldest first in version order (`git tag -l --sort=v:refname`:
    /// v1.9.0 before v1.10.0).
    pub async fn tags(&self) -> Result<Vec<String>, CodeError> {
        let mut args = vec!["tag", "-l", "--sort=v:refname"];
        if let Some(p) = &self.pattern {
            args.push("--");
            args.push(p);
        }
        let out = self.git.run(&args).await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    async fn tags_or_none(&self) -> Result<Vec<String>, CodeError> {
        let tags = self.tags().await?;
        if tags.is_empty() {
            return Err(CodeError::NoTags {
                path: self.path.clone(),
                pattern: self.pattern.clone(),
            });
        }
        Ok(tags)
    }

    /// The release `tag` names (it must be one of [`ReleaseRepo::tags`]).
    pub async fn release(&self, tag: &str) -> Result<Release, CodeError> {
        let tags = self.tags_or_none().await?;
        if !tags.iter().any(|t| t == tag) {
            return Err(self.missing(tag, &tags));
        }
        self.peel(tag).await
    }

    /// The commit a tag points at (annotated tags peeled).
    async fn peel(&self, tag: &str) -> Result<Release, CodeError> {
        // A fully qualified ref, so that a tag is never read as an option or a branch.
        let args = ["rev-parse", "--verify"];
        let spec = format!("refs/tags/{tag}^{{commit}}");
        let out = self
            .git
            .output(args.iter().copied().chain([spec.as_str()]))
            .await?;
        if !out.status.success() {
            let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(CodeError::NotACommit {
                tag: tag.to_string(),
                path: self.path.clone(),
                detail,
            });
        }
        Ok(Release {
            tag: tag.to_string(),
            commit: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        })
    }

    fn missing(&self, tag: &str, tags: &[String]) -> CodeError {
        // The closest names by edit distance, shown in version order: a typo'd or
        // never-tagged version lands next to its neighbours.
        let mut by_distance: Vec<(usize, usize)> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| (strsim::levenshtein(tag, t), usize::MAX - i))
            .collect();
        by_distance.sort();
        let mut nearest: Vec<usize> = by_distance
            .iter()
            .take(NEAREST_SHOWN)
            .map(|(_, rev)| usize::MAX - rev)
            .collect();
        nearest.sort();
        CodeError::TagMissing {
            tag: tag.to_string(),
            path: self.path.clone(),
            nearest: nearest
                .iter()
                .map(|&i| tags[i].as_str())
                .collect::<Vec<_>>()
                .join(", "),
            count: tags.len(),
            newest: tags.last().cloned().unwrap_or_default(),
        }
    }

    /// The deployed release: the deployment marker in `deploy_dir` when there is one, else
    /// the tag at the repository's HEAD.
    pub async fn deployed(&self, deploy_dir: Option<&Path>) -> Result<DeployedRelease, CodeError> {
        let mut no_marker = String::new();
        if let Some(dir) = deploy_dir {
            if let Some(marker) = DeploymentMarker::read(dir)? {
                return Ok(DeployedRelease {
                    release: Release {
                        tag: marker.tag,
                        commit: marker.commit,
                    },
                    from: DeployedFrom::Marker(DeploymentMarker::path_in(dir)),
                });
            }
            no_marker = format!(
                "{} holds no deployment marker and ",
                DeploymentMarker::path_in(dir).display()
            );
        }
        let args = ["describe", "--tags", "--exact-match", "HEAD"];
        let out = self.git.output(args).await?;
        if !out.status.success() {
            let head = self
                .git
                .run(["rev-parse", "--short", "HEAD"])
                .await
                .unwrap_or_else(|_| "no commit".into());
            return Err(CodeError::DeployedUnknown {
                path: self.path.clone(),
                why: format!("{no_marker}HEAD ({head}) is not at a tag"),
            });
        }
        let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(DeployedRelease {
            release: self.peel(&tag).await?,
            from: DeployedFrom::Head,
        })
    }

    /// The release to roll back to: the tag named, or the tag before the deployed one (read
    /// as [`ReleaseRepo::deployed`] does, from `deploy_dir`'s marker or HEAD).
    pub async fn resolve(
        &self,
        to: &RollbackTo,
        deploy_dir: Option<&Path>,
    ) -> Result<Release, CodeError> {
        match to {
            RollbackTo::Tag(tag) => self.release(tag).await,
            RollbackTo::Previous => {
                let deployed = self.deployed(deploy_dir).await?.release.tag;
                let tags = self.tags_or_none().await?;
                let at = tags.iter().position(|t| *t == deployed).ok_or_else(|| {
                    CodeError::DeployedNotListed {
                        deployed: deployed.clone(),
                        path: self.path.clone(),
                        count: tags.len(),
                        newest: tags.last().cloned().unwrap_or_default(),
                    }
                })?;
                if at == 0 {
                    return Err(CodeError::NoPrevious {
                        deployed,
                        path: self.path.clone(),
                    });
                }
                self.peel(&tags[at - 1]).await
            }
        }
    }

    /// Checks `release` out into `dest` (absent or an empty directory): a shallow clone of
    /// just that tag, detached at its commit. git reads the repository and writes only under
    /// `dest` (a `git worktree add` or a checkout would write into the user's `.git`).
    pub async fn checkout(&self, release: &Release, dest: &Path) -> Result<Worktree, CodeError> {
        match std::fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(CodeError::CheckoutDest {
                        path: dest.to_path_buf(),
                        reason: "the directory is not empty".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CodeError::CheckoutDest {
                    path: dest.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        }
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // --no-local: through the pack protocol, so that --depth applies and nothing is
        // hard-linked to the user's object files.
        let args: Vec<&std::ffi::OsStr> = vec![
            "-c".as_ref(),
            "advice.detachedHead=false".as_ref(),
            "clone".as_ref(),
            "--quiet".as_ref(),
            "--no-local".as_ref(),
            "--depth".as_ref(),
            "1".as_ref(),
            "--branch".as_ref(),
            release.tag.as_ref(),
            "--".as_ref(),
            self.path.as_os_str(),
            dest.as_os_str(),
        ];
        let clone = Git::at(parent);
        let out = clone.output(&args).await?;
        if !out.status.success() {
            return Err(clone.failure(&args, &out));
        }
        let found = Git::at(dest).run(["rev-parse", "HEAD"]).await?;
        if found != release.commit {
            return Err(CodeError::TagMoved {
                tag: release.tag.clone(),
                expected: release.commit.clone(),
                found,
            });
        }
        Ok(Worktree {
            release: release.clone(),
            path: dest.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with tags out of lexical order, made with the real git.
    async fn repo_with(tags: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::isolated(dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
        git.run(["init", "-q", "-b", "main"]).await.unwrap();
        for tag in tags {
            std::fs::write(dir.path().join("f"), tag).unwrap();
            git.run(["add", "f"]).await.unwrap();
            git.run(["commit", "-q", "-m", tag]).await.unwrap();
            git.run(["tag", tag]).await.unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn tags_sort_by_version_and_missing_tags_name_their_neighbours() {
        let dir = repo_with(&["other", "v1.10.0", "v1.9.0", "v1.2.0"]).await;
        let repo = ReleaseRepo::open(dir.path()).await.unwrap();
        assert_eq!(
            repo.tags().await.unwrap(),
            ["other", "v1.2.0", "v1.9.0", "v1.10.0"]
        );
        let repo = repo.with_tag_pattern("v*");
        assert_eq!(repo.tags().await.unwrap(), ["v1.2.0", "v1.9.0", "v1.10.0"]);
        let err = repo.release("v1.9.1").await.unwrap_err().to_string();
        assert!(
            err.contains("tag v1.9.1 does not exist")
                && err.contains("v1.2.0, v1.9.0, v1.10.0")
                && err.contains("newest v1.10.0"),
            "{err}"
        );
        // HEAD is at v1.2.0, the last commit but the oldest version: nothing before it.
        let prev = repo.resolve(&RollbackTo::Previous, None).await.unwrap_err();
        assert!(
            prev.to_string().contains("no release before v1.2.0"),
            "{prev}"
        );
        let r = repo.release("v1.9.0").await.unwrap();
        assert_eq!(r.commit.len(), 40);
    }

    #[tokio::test]
    async fn a_subdirectory_is_not_the_repository() {
        let dir = repo_with(&["v1"]).await;
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let err = ReleaseRepo::open(&sub).await.unwrap_err();
        assert!(matches!(err, CodeError::NotTopLevel { .. }), "{err}");
        assert!(err.to_string().contains("not its top level"), "{err}");
    }

    #[tokio::test]
    async fn previous_without_a_tagged_head_or_marker_says_why() {
        let dir = repo_with(&["v1", "v2"]).await;
        let git = Git::isolated(dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
        git.run(["commit", "-q", "--allow-empty", "-m", "untagged"])
            .await
            .unwrap();
        let repo = ReleaseRepo::open(dir.path()).await.unwrap();
        let deploy = tempfile::tempdir().unwrap();
        let err = repo
            .resolve(&RollbackTo::Previous, Some(deploy.path()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot tell which release")
                && err.contains("holds no deployment marker")
                && err.contains("is not at a tag"),
            "{err}"
        );
        // A named tag needs no deployed release.
        let v1 = repo
            .resolve(&RollbackTo::Tag("v1".into()), None)
            .await
            .unwrap();
        assert_eq!(v1.tag, "v1");
    }
}
