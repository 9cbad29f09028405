//! Running the real `git` program: in a named directory, with the variables that would point
//! it at another repository removed, no prompts, C-locale messages (pgdrill reads some of
//! them), and git's stderr kept for the error.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::process::Command;

use super::CodeError;

/// Variables that make git work on another repository than the one named with `-C` (they
/// are set, for example, when pgdrill runs from a git hook).
const REPO_VARS: [&str; 9] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];
/// Lines of git's stderr quoted in an error.
const STDERR_LINES: usize = 4;

/// git, run in one directory.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    dir: PathBuf,
    /// Ignore the user's and the system's git configuration (for repositories pgdrill makes).
    isolated: bool,
    env: Vec<(String, String)>,
}

impl Git {
    /// git working in `dir`, with the user's configuration (their safe.directory, their
    /// version sort).
    pub(crate) fn at(dir: &Path) -> Git {
        Git {
            dir: dir.to_path_buf(),
            isolated: false,
            env: Vec::new(),
        }
    }

    /// git working in `dir` that reads no global or system configuration, so that a
    /// repository pgdrill makes is the same on every machine (no signing, no hooks, no
    /// template from the user's settings).
    pub(crate) fn isolated(dir: &Path) -> Git {
        Git {
            isolated: true,
            ..Git::at(dir)
        }
    }

    /// The same, with one more environment variable.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Git {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        // --no-optional-locks: `git status` would otherwise refresh and rewrite the index of
        // the user's repository, and pgdrill writes nothing there.
        cmd.arg("-C").arg(&self.dir).arg("--no-optional-locks");
        cmd.args(args);
        for var in REPO_VARS {
            cmd.env_remove(var);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C");
        if self.isolated {
            cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// Runs git and returns its output whatever the exit status.
    pub(crate) async fn output<I, S>(&self, args: I) -> Result<Output, CodeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args)
            .output()
            .await
            .map_err(|source| CodeError::GitMissing { source })
    }

    /// Runs git; its trimmed stdout on success, else the error git's stderr explains.
    pub(crate) async fn run<I, S>(&self, args: I) -> Result<String, CodeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.output(&args).await?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string());
        }
        Err(self.failure(&args, &out))
    }

    /// The error for a failed run: `UnsafeRepo` when git distrusts the owner.
    pub(crate) fn failure<S: AsRef<OsStr>>(&self, args: &[S], out: &Output) -> CodeError {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("dubious ownership") {
            return CodeError::UnsafeRepo {
                path: self.dir.clone(),
            };
        }
        let command = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        CodeError::Git {
            command,
            dir: self.dir.clone(),
            detail: stderr_tail(&stderr, out),
        }
    }
}

/// The last lines of git's stderr, or the exit status when it said nothing.
pub(crate) fn stderr_tail(stderr: &str, out: &Output) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return format!("git ended with {}", out.status);
    }
    lines[lines.len().saturating_sub(STDERR_LINES)..].join(" / ")
}

/// `git --version`, e.g. `git version 2.47.3`, for the report's tools.
pub async fn git_version() -> Result<String, CodeError> {
    Git::isolated(&std::env::temp_dir())
        .run(["--version"])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn version_and_failures_name_the_command() {
        let v = git_version().await.unwrap();
        assert!(v.starts_with("git version "), "{v}");
        let dir = tempfile::tempdir().unwrap();
        let err = Git::isolated(dir.path())
            .run(["rev-parse", "--verify", "no-such-ref"])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`git rev-parse --verify no-such-ref` failed")
                && err.contains("not a git repository"),
            "{err}"
        );
    }
}
