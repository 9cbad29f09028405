//! Deploying a checked-out release with the user's deploy command, and the deployment marker
//! pgdrill writes into the deploy directory afterwards.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::{CodeError, Worktree};
use crate::digest::write_atomic;

/// The deployment marker's file name in the deploy directory.
pub const MARKER_FILE: &str = "deployment.json";
/// Log lines quoted when the deploy command fails.
const TAIL_LINES: usize = 10;
/// Characters of one quoted log line.
const TAIL_LINE_CHARS: usize = 300;
/// Bytes of the log read for its tail.
const TAIL_BYTES: u64 = 64 * 1024;

/// What was deployed, when and how: written by pgdrill into the deploy directory after the
/// deploy command succeeded, read back to tell the deployed release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentMarker {
    /// The release tag.
    pub tag: String,
    /// The full commit id the tag resolved to.
    pub commit: String,
    /// When the deploy command finished (RFC 3339).
    pub deployed_at: DateTime<Utc>,
    /// Who deployed, as the caller named it (e.g. `pgdrill drill <id>`).
    pub deployed_by: String,
    /// How: the deploy command that ran.
    pub how: String,
}

impl DeploymentMarker {
    /// The marker's path in a deploy directory.
    pub fn path_in(deploy_dir: &Path) -> PathBuf {
        deploy_dir.join(MARKER_FILE)
    }

    /// The marker in `deploy_dir`, `None` when there is none.
    pub fn read(deploy_dir: &Path) -> Result<Option<DeploymentMarker>, CodeError> {
        let path = Self::path_in(deploy_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CodeError::Marker {
                    path,
                    reason: format!("cannot read it ({e}); fix its permissions"),
                })
            }
        };
        crate::json::from_str(&text)
            .map(Some)
            .map_err(|e| CodeError::Marker {
                path,
                reason: format!(
                    "not a deployment marker ({e}); remove it, the next deploy writes a new one"
                ),
            })
    }

    /// Writes the marker into `deploy_dir` atomically (a reader sees the old or the new one).
    pub fn write(&self, deploy_dir: &Path) -> Result<PathBuf, CodeError> {
        let path = Self::path_in(deploy_dir);
        let mut json = serde_json::to_vec_pretty(self).expect("a marker serializes");
        json.push(b'\n');
        write_atomic(&path, &json).map_err(|e| CodeError::Marker {
            path: path.clone(),
            reason: format!("cannot write it ({e}); make the deploy directory writable"),
        })?;
        Ok(path)
    }
}

/// How to deploy a release.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    /// The deploy command, run with `sh -c` in the worktree.
    pub command: String,
    /// Where the release goes (`PGDRILL_DEPLOY_DIR`; created when absent); the marker is
    /// written here.
    pub deploy_dir: PathBuf,
    /// The command's stdout and stderr are appended here (in pgdrill's own directory).
    pub log: PathBuf,
    /// The command is killed (its whole process group) after this long.
    pub timeout: Duration,
    /// Who deploys, for the marker.
    pub deployed_by: String,
}

/// A successful deploy.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The marker written.
    pub marker: DeploymentMarker,
    /// Where it was written.
    pub marker_path: PathBuf,
    /// How long the deploy command ran.
    pub duration: Duration,
}

/// Kills the deploy command's process group when dropped: on cancellation (the future is
/// dropped), on a timeout, and after it exits (whatever it left running in its group: starting
/// the app is the drill's step, not the deploy's).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// Runs the deploy command for a checked-out release, then writes the deployment marker.
///
/// The command runs as `sh -c COMMAND` in the worktree, in its own process group, with
/// `PGDRILL_RELEASE_WORKTREE`, `PGDRILL_RELEASE_TAG`, `PGDRILL_RELEASE_COMMIT` and
/// `PGDRILL_DEPLOY_DIR` set; its output goes to `spec.log`.
pub async fn deploy(worktree: &Worktree, spec: &DeploySpec) -> Result<Deployment, CodeError> {
    if spec.command.trim().is_empty() {
        return Err(CodeError::EmptyDeployCommand);
    }
    std::fs::create_dir_all(&spec.deploy_dir)
        .map_err(|e| CodeError::io("cannot create the deploy directory", &spec.deploy_dir, e))?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| CodeError::io("cannot open the deploy log", &spec.log, e))?;
    let release = &worktree.release;
    writeln!(
        log,
        "# pgdrill {}: deploying {} at {} into {}",
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        release.tag,
        release.commit,
        spec.deploy_dir.display()
    )
    .map_err(|e| CodeError::io("cannot write the deploy log", &spec.log, e))?;
    let start_offset = log
        .stream_position()
        .map_err(|e| CodeError::io("cannot write the deploy log", &spec.log, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| CodeError::io("cannot open the deploy log", &spec.log, e))?;

    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .current_dir(&worktree.path)
        .env("PGDRILL_RELEASE_WORKTREE", &worktree.path)
        .env("PGDRILL_RELEASE_TAG", &release.tag)
        .env("PGDRILL_RELEASE_COMMIT", &release.commit)
        .env("PGDRILL_DEPLOY_DIR", &spec.deploy_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|source| CodeError::DeploySpawn { source })?;
    let _guard = GroupGuard(child.id().map(|id| Pid::from_raw(id as i32)));
    let status = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(CodeError::io(
                "cannot wait for the deploy command",
                &spec.log,
                e,
            ))
        }
        Err(_) => {
            return Err(CodeError::DeployTimedOut {
                tag: release.tag.clone(),
                after: humantime::format_duration(spec.timeout).to_string(),
                log: spec.log.clone(),
                tail: log_tail(&spec.log, start_offset),
            })
        }
    };
    let duration = started.elapsed();
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => status.to_string(),
        };
        return Err(CodeError::DeployFailed {
            tag: release.tag.clone(),
            status,
            log: spec.log.clone(),
            tail: log_tail(&spec.log, start_offset),
        });
    }
    let marker = DeploymentMarker {
        tag: release.tag.clone(),
        commit: release.commit.clone(),
        deployed_at: Utc::now(),
        deployed_by: spec.deployed_by.clone(),
        how: spec.command.clone(),
    };
    let marker_path = marker.write(&spec.deploy_dir)?;
    Ok(Deployment {
        marker,
        marker_path,
        duration,
    })
}

/// The last lines the deploy command wrote to the log (after `from`), indented, or a note
/// that it wrote nothing.
fn log_tail(log: &Path, from: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(log)?;
        let len = f.metadata()?.len();
        let start = from.max(len.saturating_sub(TAIL_BYTES));
        f.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let text = match read() {
        Ok(t) => t,
        Err(e) => return format!("  (cannot read the log: {e})"),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "  (the command wrote nothing)".into();
    }
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|l| match l.char_indices().nth(TAIL_LINE_CHARS) {
            Some((cut, _)) => format!("  {}…", &l[..cut]),
            None => format!("  {l}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_a_broken_one_says_how_to_fix_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DeploymentMarker::read(dir.path()).unwrap(), None);
        let m = DeploymentMarker {
            tag: "v1.0.0".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            deployed_at: "2024-05-01T10:00:00.250Z".parse().unwrap(),
            deployed_by: "test".into(),
            how: "true".into(),
        };
        let path = m.write(dir.path()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["deployed_at"], "2024-05-01T10:00:00.250Z");
        assert_eq!(DeploymentMarker::read(dir.path()).unwrap(), Some(m));
        std::fs::write(&path, "{").unwrap();
        let err = DeploymentMarker::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("not a deployment marker") && err.contains("remove it"),
            "{err}"
        );
    }

    #[test]
    fn the_tail_shows_only_this_run_and_cuts_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deploy.log");
        let old = "old run\n";
        std::fs::write(&log, format!("{old}{}\nlast\n", "x".repeat(400))).unwrap();
        let tail = log_tail(&log, old.len() as u64);
        assert!(!tail.contains("old run"), "{tail}");
        assert!(tail.contains(&format!("  {}…", "x".repeat(300))) && tail.ends_with("  last"));
        assert_eq!(
            log_tail(&log, std::fs::metadata(&log).unwrap().len()),
            "  (the command wrote nothing)"
        );
    }
}
