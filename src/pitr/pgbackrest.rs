//! The `pgbackrest` program: `info --output=json`, `verify` and `restore` of one stanza, run
//! as the `postgres` user when pgdrill runs as root (as the native backend runs servers:
//! pgBackRest refuses root for some commands, and the files it restores must be the
//! server's). The repository is only read: no command here writes into it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::unistd::User;
use tokio::process::Command;

use super::{PitrError, PitrPlan, PitrTool, RecoveryTarget, StanzaInfo};
use crate::env_error::EnvError;

/// One stanza's `pgbackrest`, with the configuration and the user it runs as.
#[derive(Debug, Clone)]
pub struct Pgbackrest {
    program: PathBuf,
    config: Option<PathBuf>,
    stanza: String,
    run_as: Option<User>,
}

/// The program on PATH, if any.
pub(super) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Pgbackrest {
    /// The tool for `plan`'s stanza: [`PitrError::NotInstalled`] when `pgbackrest` is not
    /// on PATH.
    pub fn locate(plan: &PitrPlan) -> Result<Pgbackrest, PitrError> {
        let program = on_path("pgbackrest").ok_or(PitrError::NotInstalled {
            tool: PitrTool::Pgbackrest,
        })?;
        Ok(Pgbackrest {
            program,
            config: plan.config.clone(),
            stanza: plan.name.clone(),
            run_as: crate::env::native::server_user()?,
        })
    }

    /// `pgbackrest [--config=FILE] --stanza=NAME SUB`, its console quiet so that stdout is the
    /// command's answer and stderr its warnings and errors; its own log file off, so a drill
    /// writes nothing into the team's log directory.
    fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(c) = &self.config {
            cmd.arg(format!("--config={}", c.display()));
        }
        cmd.arg(format!("--stanza={}", self.stanza))
            .args([
                "--log-level-console=off",
                "--log-level-stderr=warn",
                "--log-level-file=off",
            ])
            .arg(sub)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(u) = &self.run_as {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        cmd
    }

    async fn run(&self, mut cmd: Command) -> Result<std::process::Output, PitrError> {
        crate::program::output(&mut cmd).await.map_err(|source| {
            PitrError::Env(EnvError::Spawn {
                program: "pgbackrest".into(),
                source,
            })
        })
    }

    /// `pgbackrest version`, e.g. `pgBackRest 2.45`.
    pub async fn version(&self) -> Option<String> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("version").stdin(Stdio::null());
        let out = crate::program::output(&mut cmd).await.ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `pgbackrest info --output=json`, read: a configuration the tool refuses is
    /// [`PitrError::Config`], a stanza it does not have [`PitrError::NoStanza`].
    pub async fn info(&self) -> Result<StanzaInfo, PitrError> {
        let mut cmd = self.command("info");
        cmd.arg("--output=json");
        let out = self.run(cmd).await?;
        if !out.status.success() {
            return Err(PitrError::Config {
                tool: PitrTool::Pgbackrest,
                config: self.config.clone(),
                message: said(&out),
            });
        }
        super::parse_info(&String::from_utf8_lossy(&out.stdout), &self.stanza)
    }

    /// `pgbackrest verify`: the repository's own check of every backup and WAL file; what it
    /// said (its warnings), or [`PitrError::Verify`].
    pub async fn verify(&self) -> Result<String, PitrError> {
        let out = self.run(self.command("verify")).await?;
        if !out.status.success() {
            return Err(PitrError::Verify {
                command: format!("pgbackrest --stanza={} verify", self.stanza),
                code: out.status.code().unwrap_or(-1),
                output: said(&out),
            });
        }
        Ok(said(&out))
    }

    /// `pgbackrest restore` into the empty data directory `data` (the server user's): the
    /// recovery settings for `target`, the restored server's archiving off so it can never
    /// push WAL into the team's repository, every tablespace mapped under `tablespaces` so
    /// that no path outside the drill's directory is written, and pgBackRest's lock files in
    /// `lock_dir`.
    pub async fn restore(
        &self,
        data: &Path,
        tablespaces: &Path,
        lock_dir: &Path,
        target: &RecoveryTarget,
        set: Option<&str>,
    ) -> Result<String, PitrError> {
        let mut cmd = self.command("restore");
        cmd.args(restore_args(data, tablespaces, lock_dir, target, set));
        let out = self.run(cmd).await?;
        if !out.status.success() {
            return Err(PitrError::Restore {
                tool: PitrTool::Pgbackrest,
                code: out.status.code().unwrap_or(-1),
                output: said(&out),
            });
        }
        Ok(said(&out))
    }
}

/// The arguments of `pgbackrest restore` after the command (see [`Pgbackrest::restore`]).
pub fn restore_args(
    data: &Path,
    tablespaces: &Path,
    lock_dir: &Path,
    target: &RecoveryTarget,
    set: Option<&str>,
) -> Vec<String> {
    let mut a = vec![
        format!("--pg1-path={}", data.display()),
        format!("--tablespace-map-all={}", tablespaces.display()),
        format!("--lock-path={}", lock_dir.display()),
        "--archive-mode=off".to_string(),
    ];
    // pgBackRest refuses --target-action with its default type (the end of the archive),
    // where PostgreSQL promotes by itself once the archive has no more WAL.
    match target {
        RecoveryTarget::Latest => a.push("--type=default".into()),
        RecoveryTarget::Immediate => a.push("--type=immediate".into()),
        RecoveryTarget::Time(t) => {
            a.push("--type=time".into());
            a.push(format!("--target={}", super::pg_time(t)));
        }
        RecoveryTarget::Lsn(l) => {
            a.push("--type=lsn".into());
            a.push(format!("--target={l}"));
        }
    }
    if *target != RecoveryTarget::Latest {
        a.push("--target-action=promote".into());
    }
    if let Some(set) = set {
        a.push(format!("--set={set}"));
    }
    a
}

/// What a command said: its stderr, else its stdout, trimmed.
pub(super) fn said(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if err.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_never_archives_and_promotes_only_at_its_target() {
        let p = Path::new;
        let latest = restore_args(p("/d"), p("/t"), p("/l"), &RecoveryTarget::Latest, None);
        assert!(latest.contains(&"--archive-mode=off".to_string()));
        assert!(latest.contains(&"--type=default".to_string()));
        assert!(!latest.iter().any(|a| a.starts_with("--target")));
        let lsn = RecoveryTarget::lsn("0/3020D28").unwrap();
        let a = restore_args(p("/d"), p("/t"), p("/l"), &lsn, Some("X"));
        assert_eq!(
            a[4..],
            [
                "--type=lsn",
                "--target=0/3020D28",
                "--target-action=promote",
                "--set=X"
            ]
        );
    }
}
