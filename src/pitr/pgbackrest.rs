//! The `pgbackrest` program: `info --output=json`, `repo-ls`, `repo-get` (the timelines'
//! history files), `verify` and `restore` of one stanza, run
//! as the `postgres` user when pgdrill runs as root (as the native backend runs servers:
//! pgBackRest refuses root for some commands, and the files it restores must be the
//! server's). The repository is only read: no command here writes into it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::unistd::User;
use tokio::process::Command;

use super::wal::{WalArchive, DEFAULT_SEGMENT_SIZE};
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

/// pgBackRest's configuration file when `--config` is not given, and the one before 2.x.
const DEFAULT_CONFIG: &str = "/etc/pgbackrest/pgbackrest.conf";
const OLD_DEFAULT_CONFIG: &str = "/etc/pgbackrest.conf";
/// pgBackRest's default `include-path`.
const DEFAULT_INCLUDE: &str = "/etc/pgbackrest/conf.d";
/// pgBackRest's default `repo1-path`.
const DEFAULT_REPO: &str = "/var/lib/pgbackrest";

/// The options `archive-get` of `stanza` sees in pgBackRest's INI configuration `text`:
/// `[global]`, then `[global:archive-get]`, `[STANZA]` and `[STANZA:archive-get]`, each
/// later section overriding the earlier. Comments (`#`) and other sections are skipped.
pub fn config_options(text: &str, stanza: &str) -> std::collections::BTreeMap<String, String> {
    let order = |section: &str| -> Option<u8> {
        match section {
            "global" => Some(0),
            "global:archive-get" => Some(1),
            s if s == stanza => Some(2),
            s if s.strip_suffix(":archive-get") == Some(stanza) => Some(3),
            _ => None,
        }
    };
    let mut found: Vec<(u8, String, String)> = Vec::new();
    let mut section: Option<u8> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = order(name.trim());
            continue;
        }
        if let (Some(rank), Some((k, v))) = (section, line.split_once('=')) {
            found.push((rank, k.trim().to_string(), v.trim().to_string()));
        }
    }
    // Stable: within a section the last line wins, as in pgBackRest.
    found.sort_by_key(|(rank, _, _)| *rank);
    found.into_iter().map(|(_, k, v)| (k, v)).collect()
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
        Pgbackrest::for_stanza(&plan.name, plan.config.clone())
    }

    /// The tool for `stanza` with the configuration `config` (else its default).
    pub fn for_stanza(stanza: &str, config: Option<PathBuf>) -> Result<Pgbackrest, PitrError> {
        let program = on_path("pgbackrest").ok_or(PitrError::NotInstalled {
            tool: PitrTool::Pgbackrest,
        })?;
        Ok(Pgbackrest {
            program,
            config,
            stanza: stanza.to_string(),
            run_as: crate::env::native::server_user()?,
        })
    }

    /// The stanza.
    pub fn stanza(&self) -> &str {
        &self.stanza
    }

    /// What the restored server's `restore_command` (`pgbackrest archive-get`) reads on this
    /// machine: the configuration file, its include directory, and each repository on a
    /// file system (`repoN-type` posix or cifs; the default `/var/lib/pgbackrest` when none
    /// is named). Only paths that exist; a container mounts them read-only.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        let config = self.config.clone().or_else(|| {
            [DEFAULT_CONFIG, OLD_DEFAULT_CONFIG]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        });
        let mut files: Vec<PathBuf> = config.into_iter().collect();
        let mut text = String::new();
        for f in &files {
            text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
            text.push('\n');
        }
        let options = config_options(&text, &self.stanza);
        let include = options
            .get("include-path")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_INCLUDE));
        let mut extra = String::new();
        if let Ok(entries) = std::fs::read_dir(&include) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "conf") {
                    extra.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                    extra.push('\n');
                }
            }
            files.push(include);
        }
        let options = config_options(&format!("{text}{extra}"), &self.stanza);
        let mut repos: Vec<PathBuf> = options
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("repo")?.strip_suffix("-path")?;
                n.parse::<u8>().ok()?;
                let kind = options.get(&format!("repo{n}-type")).map(String::as_str);
                matches!(kind, None | Some("posix") | Some("cifs")).then(|| PathBuf::from(v))
            })
            .collect();
        if !options
            .keys()
            .any(|k| k.starts_with("repo") && k.ends_with("-path"))
        {
            repos.push(PathBuf::from(DEFAULT_REPO));
        }
        files.extend(repos);
        files.retain(|p| p.exists());
        files.sort();
        files.dedup();
        files
    }

    /// `pgbackrest [--config=FILE] --stanza=NAME SUB`, its console quiet so that stdout is the
    /// command's answer and stderr its warnings and errors; its own log file off, so a drill
    /// writes nothing into the team's log directory.
    fn command(&self, sub: &str) -> Command {
        self.command_logging(
            sub,
            &[
                "--log-level-console=off",
                "--log-level-stderr=warn",
                "--log-level-file=off",
            ],
        )
    }

    /// [`Self::command`] with its log on the console at `level` (stdout) and nothing on
    /// stderr: for `verify`, whose findings about each file are only in its log.
    fn command_logged(&self, sub: &str, level: &str) -> Command {
        self.command_logging(
            sub,
            &[
                &format!("--log-level-console={level}"),
                "--log-level-stderr=off",
                "--log-level-file=off",
                "--no-log-timestamp",
            ],
        )
    }

    /// `pgbackrest [--config=FILE] --stanza=NAME LOG… SUB` as the server user.
    fn command_logging(&self, sub: &str, log: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(c) = &self.config {
            cmd.arg(format!("--config={}", c.display()));
        }
        cmd.arg(format!("--stanza={}", self.stanza))
            .args(log)
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
        let info = self.stanza_info().await?;
        if info.backups.is_empty() {
            return Err(PitrError::NoBackup {
                tool: PitrTool::Pgbackrest,
                name: self.stanza.clone(),
            });
        }
        Ok(info)
    }

    /// [`Self::info`], a stanza without a backup included.
    pub async fn stanza_info(&self) -> Result<StanzaInfo, PitrError> {
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
        super::parse_stanza(&String::from_utf8_lossy(&out.stdout), &self.stanza)
    }

    /// `pgbackrest verify`: the repository's own check of every backup and WAL file, read
    /// into [`ToolVerify`]. pgBackRest 2.45 exits 0 even when it finds a damaged file (it
    /// says `status: error`), so its words are read, not only its exit code; a non-zero
    /// exit is [`PitrError::Verify`].
    pub async fn verify(&self) -> Result<ToolVerify, PitrError> {
        let mut cmd = self.command_logged("verify", "info");
        cmd.args(["--output=text", "--verbose"]);
        let out = self.run(cmd).await?;
        if !out.status.success() {
            return Err(PitrError::Verify {
                command: format!("pgbackrest --stanza={} verify", self.stanza),
                code: out.status.code().unwrap_or(-1),
                output: said(&out),
            });
        }
        Ok(parse_verify(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `pgbackrest repo-ls --output=json --recurse PATH`: the repository's files under `path`
    /// (relative to the repository), as JSON; read only.
    pub async fn repo_ls(&self, path: &str) -> Result<String, PitrError> {
        let mut cmd = self.command("repo-ls");
        cmd.args(["--output=json", "--recurse", path]);
        let out = self.run(cmd).await?;
        if !out.status.success() {
            return Err(PitrError::Config {
                tool: PitrTool::Pgbackrest,
                config: self.config.clone(),
                message: format!("`repo-ls {path}`: {}", said(&out)),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The current archive of the stanza (`info`'s newest archive id), listed: every WAL
    /// segment with its size and when it was archived. The segment size is inferred from the
    /// newest backup's start ([`super::wal::infer_segment_size`]), else PostgreSQL's default.
    pub async fn wal_archive(&self, info: &StanzaInfo) -> Result<WalArchive, PitrError> {
        let Some(id) = &info.archive_id else {
            return Ok(WalArchive {
                segment_size: DEFAULT_SEGMENT_SIZE,
                ..WalArchive::default()
            });
        };
        let dir = format!("archive/{}/{id}", self.stanza);
        let json = self.repo_ls(&dir).await?;
        let mut wal =
            WalArchive::from_listing(id, info.segment_size(), &json).map_err(|message| {
                PitrError::Info {
                    tool: PitrTool::Pgbackrest,
                    message,
                }
            })?;
        // Each timeline's history file, read as the restore command would fetch it: one that
        // cannot be is a finding of its own, not a failure of the whole listing.
        let files: Vec<(u32, String)> = wal
            .history
            .files
            .iter()
            .map(|(t, f)| (*t, f.clone()))
            .collect();
        for (timeline, file) in files {
            match self.repo_get(&format!("{dir}/{file}")).await {
                Ok(text) => wal.history.read(timeline, &text),
                Err(e) => {
                    wal.history.unreadable.insert(timeline, e.to_string());
                }
            }
        }
        Ok(wal)
    }

    /// `pgbackrest repo-get PATH`: one file of the repository (relative to it), as text;
    /// read only.
    pub async fn repo_get(&self, path: &str) -> Result<String, PitrError> {
        let mut cmd = self.command("repo-get");
        cmd.arg(path);
        let out = self.run(cmd).await?;
        if !out.status.success() {
            return Err(PitrError::Config {
                tool: PitrTool::Pgbackrest,
                config: self.config.clone(),
                message: format!("`repo-get {path}`: {}", said(&out)),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
        RecoveryTarget::Xid(x) => {
            a.push("--type=xid".into());
            a.push(format!("--target={x}"));
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

/// What `pgbackrest verify` found, from its text output and its log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolVerify {
    /// Its summary said `status: ok` and no file was invalid.
    pub ok: bool,
    /// Every file it found invalid, with its reason, in the order it said them.
    pub invalid: Vec<InvalidFile>,
    /// Each backup's status (`valid`, `invalid` …), by label.
    pub backups: Vec<(String, String)>,
    /// Its warnings (`WARN:` lines), for the report.
    pub warnings: Vec<String>,
}

/// A file `pgbackrest verify` found invalid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InvalidFile {
    /// The file, relative to the stanza's archive or backup directory
    /// (`15-1/0000000100000000/000000010000000000000006-<sha1>.gz`, `<label>/pg_data/…`).
    pub file: String,
    /// The tool's words (`[29] raised from local-1 protocol: unexpected eof in compressed data`).
    pub reason: String,
}

/// Reads `pgbackrest verify --output=text --verbose` with its log at `info` on stdout
/// (2.45): `invalid result FILE: REASON` lines, the summary's `status: ok|error`, each
/// `backup: LABEL, status: S` and the warnings. A summary that never says `status: ok` is
/// not ok: silence is never a pass.
pub fn parse_verify(out: &str) -> ToolVerify {
    let mut v = ToolVerify::default();
    let mut status_ok = false;
    let mut status_error = false;
    for line in out.lines() {
        // Log lines start `P00   INFO: `; the summary's own lines are bare.
        let text = match line.find(": ") {
            Some(at)
                if line[..at].ends_with("INFO")
                    || line[..at].ends_with("WARN")
                    || line[..at].ends_with("ERROR") =>
            {
                if line[..at].ends_with("WARN") || line[..at].ends_with("ERROR") {
                    v.warnings.push(line[at + 2..].trim().to_string());
                }
                &line[at + 2..]
            }
            _ => line,
        }
        .trim();
        if let Some(rest) = text.strip_prefix("invalid result ") {
            let (file, reason) = rest.split_once(": ").unwrap_or((rest, ""));
            if !v.invalid.iter().any(|f| f.file == file) {
                v.invalid.push(InvalidFile {
                    file: file.to_string(),
                    reason: reason.trim().to_string(),
                });
            }
        } else if let Some((what, file)) = quoted_file(text) {
            if !v.invalid.iter().any(|f| f.file == file) {
                v.invalid.push(InvalidFile {
                    file: file.to_string(),
                    reason: what.to_string(),
                });
            }
        } else if text == "status: ok" {
            status_ok = true;
        } else if text == "status: error" {
            status_error = true;
        } else if let Some(rest) = text.strip_prefix("backup: ") {
            let mut parts = rest.split(", ");
            let label = parts.next().unwrap_or_default().to_string();
            if let Some(status) = parts.find_map(|p| p.strip_prefix("status: ")) {
                if !v.backups.iter().any(|(l, _)| *l == label) {
                    v.backups.push((label, status.to_string()));
                }
            }
        }
    }
    v.ok = status_ok && !status_error && v.invalid.is_empty();
    v
}

/// `invalid checksum 'FILE'`, `invalid size 'FILE'`, `file missing 'FILE'`: what was wrong and
/// the file.
fn quoted_file(text: &str) -> Option<(&str, &str)> {
    let (what, rest) = text.split_once(" '")?;
    let file = rest.strip_suffix('\'')?;
    (what.starts_with("invalid ") || what.ends_with("missing")).then_some((what, file))
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
    fn archive_get_sees_global_then_its_stanza_and_its_command_sections() {
        let text = "# a comment\n[global]\nrepo1-path=/a\nrepo2-path = /b\nrepo2-type=s3\n\n[other]\nrepo1-path=/no\n[s:archive-get]\nrepo1-path=/d\n[s]\nrepo1-path=/c\ninclude-path=/etc/x\n";
        let o = config_options(text, "s");
        assert_eq!(o["repo1-path"], "/d", "{o:?}");
        assert_eq!(o["repo2-path"], "/b");
        assert_eq!(o["repo2-type"], "s3");
        assert_eq!(o["include-path"], "/etc/x");
        assert_eq!(config_options(text, "other")["repo1-path"], "/no");
    }

    /// What pgBackRest 2.45 said about a WAL segment and a backup file, each with bytes
    /// overwritten in its middle (and it exited 0).
    const DAMAGED: &str = "P00   INFO: verify command begin 2.45: --config=/tmp/x/pgbackrest.conf --stanza=T --verbose
P01   INFO: invalid result 15-1/0000000100000000/000000010000000000000006-1cdce788689a70a60108440584941cb70ad621e2.gz: [29] raised from local-1 protocol: unexpected eof in compressed data
P01   INFO: invalid checksum '20261207-022412F/pg_data/base/1/112.gz'
P00   WARN: file missing '15-1/0000000100000000/000000010000000000000009-0aff43259eb81fc2c4f73aed112d09bec775f573.gz'
P00   INFO: stanza: T
            status: error
              archiveId: 15-1, total WAL checked: 7, total valid WAL: 6
                missing: 0, checksum invalid: 0, size invalid: 0, other: 1
              backup: 20261207-022412F, status: invalid, total files checked: 964, total valid files: 963
                missing: 0, checksum invalid: 1, size invalid: 0, other: 0
stanza: T
status: error
  archiveId: 15-1, total WAL checked: 7, total valid WAL: 6
    missing: 0, checksum invalid: 0, size invalid: 0, other: 1
  backup: 20261207-022412F, status: invalid, total files checked: 964, total valid files: 963
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
P00   INFO: verify command end: completed successfully
";

    #[test]
    fn verify_s_damaged_files_are_read_from_its_log_although_it_exits_0() {
        let v = parse_verify(DAMAGED);
        assert!(!v.ok);
        assert_eq!(
            v.invalid
                .iter()
                .map(|f| (f.file.as_str(), f.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                ("15-1/0000000100000000/000000010000000000000006-1cdce788689a70a60108440584941cb70ad621e2.gz", "[29] raised from local-1 protocol: unexpected eof in compressed data"),
                ("20261207-022412F/pg_data/base/1/112.gz", "invalid checksum"),
                ("15-1/0000000100000000/000000010000000000000009-0aff43259eb81fc2c4f73aed112d09bec775f573.gz", "file missing"),
            ]
        );
        assert_eq!(
            v.backups,
            [("20261207-022412F".to_string(), "invalid".to_string())]
        );
        assert_eq!(v.warnings.len(), 1);
        let healthy = "stanza: T\nstatus: ok\n  backup: 20261207-022412F, status: valid, total files checked: 964, total valid files: 964\n";
        let v = parse_verify(healthy);
        assert!(v.ok, "{v:?}");
        assert!(!parse_verify("").ok, "silence is no pass");
        assert!(!parse_verify("status: ok\nstatus: error\n").ok);
    }

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
