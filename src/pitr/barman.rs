//! The `barman` program: `list-backups`, `show-backup`, `check`, `check-backup` and
//! `recover` of one server, read through `-f json` where Barman has it. Barman drops to its
//! own user (`barman_user`) when run as root, so the drill's empty data directory is lent to
//! that user for the recovery and given back to the server user after it. The catalogue is
//! only read: nothing here takes a backup, archives or deletes (Barman still appends a line
//! per command to its own log file, as it does for every command).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use chrono::{DateTime, Utc};
use nix::unistd::User;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::pgbackrest::{on_path, said};
use super::wal::WalArchive;
use super::{BackupInfo, BackupKind, PitrError, PitrPlan, PitrTool, RecoveryTarget, StanzaInfo};
use crate::env_error::EnvError;

/// One Barman server's `barman`, with its configuration file.
#[derive(Debug, Clone)]
pub struct Barman {
    program: PathBuf,
    config: Option<PathBuf>,
    server: String,
}

impl Barman {
    /// The tool for `plan`'s server: [`PitrError::NotInstalled`] when `barman` is not on
    /// PATH.
    pub fn locate(plan: &PitrPlan) -> Result<Barman, PitrError> {
        Barman::for_server(&plan.name, plan.config.clone())
    }

    /// The tool for `server` with the configuration `config` (else Barman's own):
    /// [`PitrError::NotInstalled`] when `barman` is not on PATH.
    pub fn for_server(server: &str, config: Option<PathBuf>) -> Result<Barman, PitrError> {
        let program = on_path("barman").ok_or(PitrError::NotInstalled {
            tool: PitrTool::Barman,
        })?;
        Ok(Barman {
            program,
            config,
            server: server.to_string(),
        })
    }

    /// `barman [-c FILE] ARGS…`.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(c) = &self.config {
            cmd.arg("-c").arg(c);
        }
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    async fn run(&self, mut cmd: Command) -> Result<std::process::Output, PitrError> {
        crate::program::output(&mut cmd).await.map_err(|source| {
            PitrError::Env(EnvError::Spawn {
                program: "barman".into(),
                source,
            })
        })
    }

    /// A `-f json` command's answer: Barman's `_ERROR` (an unknown server …) is
    /// [`PitrError::NoStanza`], a failure with no JSON (a configuration it cannot read)
    /// [`PitrError::Config`].
    async fn json(&self, args: &[&str]) -> Result<serde_json::Value, PitrError> {
        self.json_of(args, false).await
    }

    /// [`Barman::json`], also for a command whose failing exit still answers in JSON
    /// (`any_exit`: `barman check` exits 1 when a check fails).
    async fn json_of(&self, args: &[&str], any_exit: bool) -> Result<serde_json::Value, PitrError> {
        let mut all = vec!["-f", "json"];
        all.extend_from_slice(args);
        let out = self.run(self.command(&all)).await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let value: Option<serde_json::Value> = serde_json::from_str(text.trim()).ok();
        if let Some(errors) = value.as_ref().and_then(|v| v.get("_ERROR")) {
            let message = errors
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_else(|| errors.to_string());
            return Err(PitrError::NoStanza {
                tool: PitrTool::Barman,
                name: self.server.clone(),
                message,
            });
        }
        match value {
            Some(v) if out.status.success() || any_exit => Ok(v),
            _ => Err(PitrError::Config {
                tool: PitrTool::Barman,
                config: self.config.clone(),
                message: said(&out),
            }),
        }
    }

    /// `barman switch-wal --archive`: the server's current WAL segment closed (through
    /// Barman's own connection) and waited for until it is in the catalogue, `timeout` at most.
    pub async fn switch_wal(&self, timeout: std::time::Duration) -> Result<(), PitrError> {
        let secs = timeout.as_secs().max(1).to_string();
        let args = [
            "switch-wal",
            "--archive",
            "--archive-timeout",
            secs.as_str(),
            self.server.as_str(),
        ];
        let out = self.run(self.command(&args)).await?;
        if out.status.success() {
            return Ok(());
        }
        Err(PitrError::Verify {
            command: format!("barman {}", args.join(" ")),
            code: out.status.code().unwrap_or(-1),
            output: said(&out),
        })
    }

    /// `barman --version`, as `Barman 3.4.0`.
    pub async fn version(&self) -> Option<String> {
        let out = self.run(self.command(&["--version"])).await.ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v = text.split_whitespace().next()?;
        out.status.success().then(|| format!("Barman {v}"))
    }

    /// The server's finished backups (`list-backups`, then `show-backup` of each), oldest
    /// first, and its archived WAL: from the oldest backup's first segment to the newest
    /// segment Barman holds.
    pub async fn info(&self) -> Result<StanzaInfo, PitrError> {
        let list = self.json(&["list-backups", &self.server]).await?;
        let ids = parse_list(&list, &self.server)?;
        let mut backups = Vec::new();
        let mut wal_max = None;
        for id in ids {
            let shown = self.json(&["show-backup", &self.server, &id]).await?;
            let b = parse_backup(&shown, &self.server)?;
            wal_max = b.newest_wal.or(wal_max);
            backups.push(b.info);
        }
        backups.sort_by_key(|b| b.stopped_at);
        if backups.is_empty() {
            return Err(PitrError::NoBackup {
                tool: PitrTool::Barman,
                name: self.server.clone(),
            });
        }
        Ok(StanzaInfo {
            name: self.server.clone(),
            wal_min: backups[0].wal_start.clone(),
            wal_max,
            archive_id: None,
            backups,
        })
    }

    /// `barman check-backup SERVER ID` (every WAL segment the backup needs is there) must
    /// pass; `barman check SERVER`'s failures are told in what this returns, not failed on:
    /// most concern the live server (its connection, streaming, the slot), which a restore
    /// made during an outage does without.
    pub async fn check(&self, backup_id: &str) -> Result<String, PitrError> {
        let out = self
            .run(self.command(&["check-backup", &self.server, backup_id]))
            .await?;
        if !out.status.success() {
            return Err(PitrError::Verify {
                command: format!("barman check-backup {} {backup_id}", self.server),
                code: out.status.code().unwrap_or(-1),
                output: said(&out),
            });
        }
        // check-backup exits 0 even when a segment is missing: it records its verdict in the
        // backup's status (FAILED, with the first missing segment in backup.info's error).
        let shown = self.json(&["show-backup", &self.server, backup_id]).await?;
        let status = of_server(&shown, &self.server)?
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string();
        if status != "DONE" {
            let why = self.backup_error(backup_id).await.unwrap_or_default();
            return Err(PitrError::Verify {
                command: format!("barman check-backup {} {backup_id}", self.server),
                code: out.status.code().unwrap_or(-1),
                output: format!("backup {backup_id} is now {status}{why}"),
            });
        }
        let failed = match self.checks().await {
            Ok(checks) => checks
                .iter()
                .filter(|c| !c.ok)
                .map(Check::describe)
                .collect(),
            Err(PitrError::Config { message, .. }) => vec![message],
            Err(_) => Vec::new(),
        };
        Ok(if failed.is_empty() {
            format!("barman check-backup {backup_id} passed; barman check: every check OK")
        } else {
            format!(
                "barman check-backup {backup_id} passed; barman check FAILED {} (told, not failed on: a restore does not need the live server): {}",
                failed.len(),
                failed.join("; ")
            )
        })
    }

    /// The `error=` line of a backup's `backup.info` (Barman's `-f json` leaves it out), as
    /// `: At least one WAL file is missing. The first missing WAL file is …`.
    async fn backup_error(&self, backup_id: &str) -> Option<String> {
        let dirs = self.directories().await.ok()?;
        recorded_error(&dirs.basebackups, backup_id).map(|e| format!(": {e}"))
    }

    /// `barman -f json check SERVER`: every check with its status (Barman exits 1 when one
    /// fails; its answer is read either way).
    pub async fn checks(&self) -> Result<Vec<Check>, PitrError> {
        let v = self.json_of(&["check", &self.server], true).await?;
        Ok(parse_checks(&v, &self.server))
    }

    /// `barman -f json show-servers SERVER`: where the server's backups and WAL are.
    pub async fn directories(&self) -> Result<Directories, PitrError> {
        let v = self.json(&["show-servers", &self.server]).await?;
        parse_directories(&v, &self.server)
    }

    /// The server's `wals` directory listed (the segments `recover` copies from), for the
    /// drill's checks of where recovery must end.
    pub async fn wal_archive(&self, info: &StanzaInfo) -> Result<WalArchive, PitrError> {
        let dirs = self.directories().await?;
        list_wals(&dirs.wals, info.segment_size())
    }

    /// What `pgdrill verify --barman-server` judges, read only: every backup Barman lists
    /// with its status (and the error it recorded for a failed one), the finished ones shown,
    /// the files of the server's `wals` directory (the ones `barman check-backup` and
    /// `recover` look for: Barman's WAL index, `xlog.db`, can name a file that is gone) and
    /// `barman check`.
    pub async fn state(&self) -> Result<ServerState, PitrError> {
        let list = self.json(&["list-backups", &self.server]).await?;
        let listed = parse_listed(&list, &self.server)?;
        let dirs = self.directories().await?;
        let mut backups = Vec::new();
        let mut all = Vec::new();
        for b in listed {
            if b.status == DONE {
                let shown = self
                    .json(&["show-backup", &self.server, &b.backup_id])
                    .await?;
                backups.push(parse_backup(&shown, &self.server)?.info);
            }
            let error = (b.status == FAILED)
                .then(|| recorded_error(&dirs.basebackups, &b.backup_id))
                .flatten();
            all.push(ListedBackup {
                id: b.backup_id,
                status: b.status,
                ended_at: b
                    .end_time_timestamp
                    .and_then(|t| t.parse().ok())
                    .and_then(|t| DateTime::from_timestamp(t, 0)),
                error,
            });
        }
        backups.sort_by_key(|b| b.stopped_at);
        let info = StanzaInfo {
            name: self.server.clone(),
            wal_min: backups.first().and_then(|b| b.wal_start.clone()),
            wal_max: None,
            archive_id: None,
            backups,
        };
        let wal = list_wals(&dirs.wals, info.segment_size())?;
        let checks = self.checks().await?;
        Ok(ServerState {
            server: self.server.clone(),
            listed: all,
            info,
            directories: dirs,
            wal,
            checks,
        })
    }

    /// `barman diagnose`'s `barman_user`: who Barman runs as, and so who must be able to
    /// write the recovery's destination.
    async fn user(&self) -> Result<Option<User>, PitrError> {
        let out = self.run(self.command(&["diagnose"])).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| PitrError::Config {
                tool: PitrTool::Barman,
                config: self.config.clone(),
                message: format!("`barman diagnose` printed no JSON ({e}): {}", said(&out)),
            })?;
        let Some(name) = v
            .pointer("/global/config/barman_user")
            .and_then(|u| u.as_str())
        else {
            return Ok(None);
        };
        User::from_name(name)
            .map_err(|e| EnvError::io(format!("cannot look up user {name}"), e.into()).into())
    }

    /// `barman recover` of `backup` into `dir/data`, tablespaces under `dir/tablespaces`,
    /// with the recovery settings of `target` (promoting once it is reached). The data
    /// directory is Barman's user's while it writes, then the server user's again, and `dir`
    /// opens to traversal only for that time.
    pub async fn restore(
        &self,
        dir: &Path,
        target: &RecoveryTarget,
        backup: &BackupInfo,
    ) -> Result<String, PitrError> {
        let data = dir.join("data");
        let server_user = crate::env::native::server_user()?;
        let barman_user = if nix::unistd::Uid::effective().is_root() {
            self.user().await?
        } else {
            None
        };
        let shown = self
            .json(&["show-backup", &self.server, &backup.label])
            .await?;
        let spaces = parse_backup(&shown, &self.server)?.tablespaces;
        let mut mapped = Vec::new();
        for name in &spaces {
            let loc = dir.join("tablespaces").join(name);
            std::fs::create_dir_all(&loc)
                .map_err(|e| EnvError::io(format!("cannot create {}", loc.display()), e))?;
            mapped.push((name.clone(), loc));
        }
        let lend = |to: Option<&User>| -> Result<(), EnvError> {
            let Some(u) = to else { return Ok(()) };
            chown_tree(&data, u)?;
            if dir.join("tablespaces").exists() {
                chown_tree(&dir.join("tablespaces"), u)?;
            }
            Ok(())
        };
        let mode = |m: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(m))
                .map_err(|e| EnvError::io(format!("cannot set the mode of {}", dir.display()), e))
        };
        lend(barman_user.as_ref())?;
        if barman_user.is_some() {
            mode(0o711)?;
        }
        let mut cmd = self.command(&["recover"]);
        cmd.args(recover_args(target, &mapped))
            .arg(&self.server)
            .arg(&backup.label)
            .arg(&data);
        let out = self.run(cmd).await;
        // Given back whatever happened: the server user starts it, cleanup removes it.
        let back = lend(server_user.as_ref()).and(if barman_user.is_some() {
            mode(0o700)
        } else {
            Ok(())
        });
        let out = out?;
        if !out.status.success() {
            return Err(PitrError::Restore {
                tool: PitrTool::Barman,
                code: out.status.code().unwrap_or(-1),
                output: said(&out),
            });
        }
        back?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let flagged: Vec<&str> = stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(" line ") && l.contains(" = "))
            .collect();
        Ok(if flagged.is_empty() {
            String::new()
        } else {
            format!(
                "barman flagged as dangerous: {} (the drill starts the server on its own port and socket, archiving off)",
                flagged.join("; ")
            )
        })
    }
}

/// The status of a finished backup.
const DONE: &str = "DONE";
/// The status of a backup Barman gave up on (its copy failed, or `check-backup` found a
/// segment it needs missing).
const FAILED: &str = "FAILED";

/// The `error=` line Barman recorded in a backup's `backup.info` (`-f json` leaves it out).
fn recorded_error(basebackups: &Path, backup_id: &str) -> Option<String> {
    let info = std::fs::read_to_string(basebackups.join(backup_id).join("backup.info")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("error="))
        .map(str::to_string)
}

/// The WAL segment files under Barman's `wals` directory (`<timeline+log>/<segment>`, each
/// file's time when Barman archived it) and the timelines' history files beside them
/// (`0000000N.history`), read; an archive not created yet is empty.
fn list_wals(wals: &Path, segment_size: u64) -> Result<WalArchive, PitrError> {
    let cannot = |p: &Path, e: std::io::Error| {
        PitrError::Env(EnvError::io(
            format!(
                "cannot read Barman's WAL archive {} (run pgdrill verify as root or as Barman's user)",
                p.display()
            ),
            e,
        ))
    };
    let mut files = Vec::new();
    let top = match std::fs::read_dir(wals) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(WalArchive::from_files("", segment_size, files))
        }
        Err(e) => return Err(cannot(wals, e)),
    };
    let mut histories = Vec::new();
    for dir in top {
        let dir = dir.map_err(|e| cannot(wals, e))?;
        let name = dir.file_name().to_string_lossy().into_owned();
        // Barman keeps each timeline's history file beside the hash directories.
        if let Some(timeline) = super::wal::history_timeline(&name) {
            histories.push((timeline, std::fs::read_to_string(dir.path())));
            continue;
        }
        // Only the hash directories hold segments; xlog.db and sync-wals.info sit beside them.
        if name.len() != 16 || !dir.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(dir.path()).map_err(|e| cannot(&dir.path(), e))? {
            let f = f.map_err(|e| cannot(&dir.path(), e))?;
            let meta = f.metadata().map_err(|e| cannot(&f.path(), e))?;
            if !meta.is_file() {
                continue;
            }
            let at = meta
                .modified()
                .map(DateTime::<Utc>::from)
                .map_err(|e| cannot(&f.path(), e))?;
            files.push((
                format!("{name}/{}", f.file_name().to_string_lossy()),
                meta.len(),
                at,
            ));
        }
    }
    let mut wal = WalArchive::from_files("", segment_size, files);
    for (timeline, text) in histories {
        wal.history
            .files
            .insert(timeline, super::wal::history_name(timeline));
        match text {
            Ok(text) => wal.history.read(timeline, &text),
            Err(e) => {
                wal.history.unreadable.insert(timeline, e.to_string());
            }
        }
    }
    Ok(wal)
}

/// Gives `path` and everything under it to `user`, symbolic links themselves, never what
/// they point to (pg_tblspc's links lead out of the directory).
fn chown_tree(path: &Path, user: &User) -> Result<(), EnvError> {
    let err = |p: &Path, e: std::io::Error| EnvError::io(format!("chown {}", p.display()), e);
    std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .map_err(|e| err(path, e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| err(path, e))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| err(path, e))? {
            chown_tree(&entry.map_err(|e| err(path, e))?.path(), user)?;
        }
    }
    Ok(())
}

/// The arguments of `barman recover` before the server, backup and destination: the target
/// (none for `latest`: Barman then copies every WAL segment it holds and PostgreSQL replays
/// them all), promotion once a target is reached, and each tablespace mapped.
pub fn recover_args(target: &RecoveryTarget, tablespaces: &[(String, PathBuf)]) -> Vec<String> {
    let mut a = Vec::new();
    match target {
        RecoveryTarget::Latest => {}
        RecoveryTarget::Immediate => a.push("--target-immediate".to_string()),
        RecoveryTarget::Time(t) => {
            a.push("--target-time".into());
            a.push(super::pg_time(t));
        }
        RecoveryTarget::Lsn(l) => {
            a.push("--target-lsn".into());
            a.push(l.to_string());
        }
        RecoveryTarget::Xid(x) => {
            a.push("--target-xid".into());
            a.push(x.to_string());
        }
    }
    if *target != RecoveryTarget::Latest {
        a.push("--target-action".into());
        a.push("promote".into());
    }
    for (name, loc) in tablespaces {
        a.push("--tablespace".into());
        a.push(format!("{name}:{}", loc.display()));
    }
    a
}

/// One backup as `barman -f json show-backup` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// The fields every tool's backup has.
    pub info: BackupInfo,
    /// The newest WAL segment Barman holds (`wal_information.last_available`).
    pub newest_wal: Option<String>,
    /// The tablespaces' names.
    pub tablespaces: Vec<String>,
}

/// A backup as `barman list-backups` lists it, whatever its status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedBackup {
    /// Its id.
    pub id: String,
    /// `DONE`, `FAILED`, `WAITING_FOR_WALS`, `STARTED` …
    pub status: String,
    /// When it ended (finished backups and those waiting for their WAL).
    pub ended_at: Option<DateTime<Utc>>,
    /// What Barman recorded about a failed one (`backup.info`'s `error`).
    pub error: Option<String>,
}

/// One check of `barman check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Its name as `-f json` writes it (`wal_maximum_age`, `receive_wal_running` …).
    pub name: String,
    /// It passed.
    pub ok: bool,
    /// Barman's hint, when it gave one.
    pub hint: String,
}

impl Check {
    /// `name` or `name: hint`.
    pub fn describe(&self) -> String {
        if self.hint.is_empty() {
            self.name.clone()
        } else {
            format!("{}: {}", self.name, self.hint)
        }
    }
}

/// Where a server's catalogue keeps its backups and its WAL (`barman show-servers`).
#[derive(Debug, Clone, PartialEq)]
pub struct Directories {
    /// `basebackups_directory`.
    pub basebackups: PathBuf,
    /// `wals_directory`: the archived segments, under `<timeline+log>/`.
    pub wals: PathBuf,
}

/// A server's catalogue as `pgdrill verify --barman-server` judges it ([`Barman::state`]).
#[derive(Debug, Clone)]
pub struct ServerState {
    /// The server.
    pub server: String,
    /// Every backup Barman lists, newest first.
    pub listed: Vec<ListedBackup>,
    /// The finished (`DONE`) backups, shown, oldest first.
    pub info: StanzaInfo,
    /// Its directories.
    pub directories: Directories,
    /// The segments in its `wals` directory.
    pub wal: WalArchive,
    /// `barman check`.
    pub checks: Vec<Check>,
}

/// Raw `barman -f json` answers (3.4).
mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Listed {
        pub backup_id: String,
        pub status: String,
        #[serde(default)]
        pub end_time_timestamp: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Server {
        pub basebackups_directory: String,
        pub wals_directory: String,
    }

    #[derive(Deserialize)]
    pub struct Shown {
        pub backup_id: String,
        pub status: String,
        pub base_backup_information: Base,
        #[serde(default)]
        pub wal_information: Option<Wal>,
        #[serde(default)]
        pub tablespaces: Vec<super::Tablespace>,
    }

    #[derive(Deserialize)]
    pub struct Base {
        pub begin_lsn: Option<String>,
        pub end_lsn: Option<String>,
        pub begin_time: String,
        pub end_time: String,
        pub begin_wal: Option<String>,
        pub end_wal: Option<String>,
        #[serde(default)]
        pub disk_usage_bytes: u64,
        #[serde(default)]
        pub disk_usage_with_wals_bytes: u64,
    }

    #[derive(Deserialize)]
    pub struct Wal {
        pub last_available: Option<String>,
    }
}

/// A tablespace of a Barman backup (`{name, location, oid}`); its name is what
/// `--tablespace NAME:LOCATION` maps.
#[derive(Debug, Clone, Deserialize)]
struct Tablespace {
    name: String,
}

fn unreadable(message: String) -> PitrError {
    PitrError::Info {
        tool: PitrTool::Barman,
        message,
    }
}

/// The answer's part for `server` (`{"pg": …}`).
fn of_server<'a>(
    v: &'a serde_json::Value,
    server: &str,
) -> Result<&'a serde_json::Value, PitrError> {
    v.get(server)
        .ok_or_else(|| unreadable(format!("no entry for server {server:?} in {v}")))
}

/// `barman -f json list-backups SERVER`: the ids of its finished (`DONE`) backups.
pub fn parse_list(v: &serde_json::Value, server: &str) -> Result<Vec<String>, PitrError> {
    Ok(parse_listed(v, server)?
        .into_iter()
        .filter(|b| b.status == DONE)
        .map(|b| b.backup_id)
        .collect())
}

fn parse_listed(v: &serde_json::Value, server: &str) -> Result<Vec<raw::Listed>, PitrError> {
    serde_json::from_value(of_server(v, server)?.clone())
        .map_err(|e| unreadable(format!("list-backups: {e}")))
}

/// `barman -f json show-servers SERVER`: its backups' and WAL's directories.
pub fn parse_directories(v: &serde_json::Value, server: &str) -> Result<Directories, PitrError> {
    let s: raw::Server = serde_json::from_value(of_server(v, server)?.clone())
        .map_err(|e| unreadable(format!("show-servers: {e}")))?;
    Ok(Directories {
        basebackups: s.basebackups_directory.into(),
        wals: s.wals_directory.into(),
    })
}

/// Barman's times: `2026-12-07 02:27:58.883012+00:00`.
fn time(s: &str) -> Result<DateTime<Utc>, PitrError> {
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| unreadable(format!("time {s:?}: {e}")))
}

/// `barman -f json show-backup SERVER ID`, read.
pub fn parse_backup(v: &serde_json::Value, server: &str) -> Result<Shown, PitrError> {
    let s: raw::Shown = serde_json::from_value(of_server(v, server)?.clone())
        .map_err(|e| unreadable(format!("show-backup: {e}")))?;
    let b = s.base_backup_information;
    let lsn = |l: &Option<String>| {
        l.as_deref()
            .map(|l| {
                l.parse()
                    .map_err(|e| unreadable(format!("backup {}: {e}", s.backup_id)))
            })
            .transpose()
    };
    Ok(Shown {
        info: BackupInfo {
            label: s.backup_id.clone(),
            kind: BackupKind::Full,
            started_at: time(&b.begin_time)?,
            stopped_at: time(&b.end_time)?,
            lsn_start: lsn(&b.begin_lsn)?,
            lsn_stop: lsn(&b.end_lsn)?,
            wal_start: b.begin_wal,
            wal_stop: b.end_wal,
            size_bytes: b.disk_usage_bytes,
            repo_size_bytes: b.disk_usage_with_wals_bytes.max(b.disk_usage_bytes),
            error: s.status != "DONE",
            archive_id: None,
        },
        newest_wal: s.wal_information.and_then(|w| w.last_available),
        tablespaces: s.tablespaces.into_iter().map(|t| t.name).collect(),
    })
}

/// `barman -f json check SERVER`: every check, by name (`{"pg": {"wal_level":
/// {"status": "OK", "hint": ""}, …}}`); a check whose status is not `OK` failed.
pub fn parse_checks(v: &serde_json::Value, server: &str) -> Vec<Check> {
    let Some(checks) = v.get(server).and_then(|c| c.as_object()) else {
        return Vec::new();
    };
    checks
        .iter()
        .map(|(name, c)| Check {
            name: name.clone(),
            ok: c.get("status").and_then(|s| s.as_str()) == Some("OK"),
            hint: c
                .get("hint")
                .and_then(|h| h.as_str())
                .unwrap_or_default()
                .to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN: &str = r#"{"src": {"backup_id": "20261207T022758", "base_backup_information": {"analysis_time": "less than one second", "begin_lsn": "0/3000028", "begin_offset": 40, "begin_time": "2026-12-07 02:27:58.883012+00:00", "begin_time_timestamp": "1796610478", "begin_wal": "000000010000000000000003", "copy_time_seconds": 6.572088, "disk_usage": "22.1 MiB", "disk_usage_bytes": 23179521, "disk_usage_with_wals_bytes": 39956737, "end_lsn": "0/4000000", "end_offset": 0, "end_time": "2026-12-07 02:28:05.467222+00:00", "end_time_timestamp": "1796610485", "end_wal": "000000010000000000000003", "timeline": 1}, "catalog_information": {}, "pgdata_directory": "/tmp/bx/pg", "postgresql_version": 150018, "status": "DONE", "tablespaces": [], "wal_information": {"last_available": "000000010000000000000004", "no_of_files": 1}}}"#;

    #[test]
    fn show_backup_of_barman_3_4_is_read_into_a_typed_backup() {
        let v: serde_json::Value = serde_json::from_str(SHOWN).unwrap();
        let s = parse_backup(&v, "src").unwrap();
        assert_eq!(s.info.label, "20261207T022758");
        assert_eq!(s.info.lsn_stop.unwrap().to_string(), "0/4000000");
        assert_eq!(
            s.info.stopped_at.to_rfc3339(),
            "2026-12-07T02:28:05.467222+00:00"
        );
        assert_eq!(
            s.info.wal_start.as_deref(),
            Some("000000010000000000000003")
        );
        assert_eq!(s.newest_wal.as_deref(), Some("000000010000000000000004"));
        assert!(!s.info.error);
        assert!(parse_backup(&v, "other").is_err());
    }

    #[test]
    fn only_finished_backups_are_listed_and_failed_checks_are_named() {
        let v = serde_json::json!({"pg": [
            {"backup_id": "B", "status": "FAILED"},
            {"backup_id": "A", "status": "DONE"}
        ]});
        assert_eq!(parse_list(&v, "pg").unwrap(), ["A"]);
        let c = serde_json::json!({"pg": {
            "PostgreSQL": {"hint": "", "status": "FAILED"},
            "wal_level": {"hint": "", "status": "OK"},
            "failed_backups": {"hint": "there are 1 failed backups", "status": "FAILED"}
        }});
        let failed: Vec<String> = parse_checks(&c, "pg")
            .iter()
            .filter(|c| !c.ok)
            .map(Check::describe)
            .collect();
        assert_eq!(
            failed,
            ["PostgreSQL", "failed_backups: there are 1 failed backups"]
        );
    }

    #[test]
    fn every_listed_backup_keeps_its_status_and_show_servers_names_the_directories() {
        // Barman 3.4's answers, trimmed: a finished backup and a failed one.
        let v = serde_json::json!({"pg": [
            {"backup_id": "20261207T061512", "end_time": "Mon Dec  7 06:15:19 2026",
             "end_time_timestamp": "1796624119", "retention_status": "-", "size": "22.1 MiB",
             "size_bytes": 23179521, "status": "DONE", "tablespaces": [],
             "wal_size": "16.0 MiB", "wal_size_bytes": 16777216},
            {"backup_id": "20261207T051000", "status": "FAILED"}
        ]});
        let listed = parse_listed(&v, "pg").unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|b| (
                    b.backup_id.as_str(),
                    b.status.as_str(),
                    b.end_time_timestamp.as_deref()
                ))
                .collect::<Vec<_>>(),
            [
                ("20261207T061512", "DONE", Some("1796624119")),
                ("20261207T051000", "FAILED", None)
            ]
        );
        let servers = serde_json::json!({"pg": {"active": true, "backup_directory": "/b/pg",
            "basebackups_directory": "/b/pg/base", "wals_directory": "/b/pg/wals",
            "streaming_archiver": true}});
        assert_eq!(
            parse_directories(&servers, "pg").unwrap(),
            Directories {
                basebackups: "/b/pg/base".into(),
                wals: "/b/pg/wals".into()
            }
        );
        assert!(parse_directories(&serde_json::json!({"pg": {}}), "pg").is_err());
    }

    #[test]
    fn the_wals_directory_is_listed_segment_by_segment_and_the_recorded_error_read() {
        let dir = tempfile::tempdir().unwrap();
        let wals = dir.path().join("wals");
        let hash = wals.join("0000000100000000");
        std::fs::create_dir_all(&hash).unwrap();
        for f in [
            "000000010000000000000003",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000005",
            "000000010000000000000006.partial",
        ] {
            std::fs::write(hash.join(f), b"x").unwrap();
        }
        std::fs::write(wals.join("xlog.db"), b"").unwrap();
        std::fs::write(wals.join("00000002.history"), b"").unwrap();
        let a = list_wals(&wals, crate::pitr::wal::DEFAULT_SEGMENT_SIZE).unwrap();
        assert_eq!(
            a.segments
                .iter()
                .map(|s| s.file.as_str())
                .collect::<Vec<_>>(),
            [
                "0000000100000000/000000010000000000000003",
                "0000000100000000/000000010000000000000005"
            ]
        );
        assert_eq!(
            a.gaps("000000010000000000000003", None)[0].first_missing,
            "000000010000000000000004"
        );
        // A server whose archive was never created has no WAL yet, which is a finding, not an error.
        assert!(list_wals(&dir.path().join("none"), 16 << 20)
            .unwrap()
            .segments
            .is_empty());

        let base = dir.path().join("base");
        std::fs::create_dir_all(base.join("B")).unwrap();
        std::fs::write(
            base.join("B/backup.info"),
            "status=FAILED\nerror=At least one WAL file is missing. The first missing WAL file is 000000010000000000000004\n",
        )
        .unwrap();
        assert_eq!(
            recorded_error(&base, "B").as_deref(),
            Some("At least one WAL file is missing. The first missing WAL file is 000000010000000000000004")
        );
        assert_eq!(recorded_error(&base, "C"), None);
    }

    #[test]
    fn a_recovery_promotes_only_at_a_target_and_maps_every_tablespace() {
        assert!(recover_args(&RecoveryTarget::Latest, &[]).is_empty());
        let lsn = RecoveryTarget::lsn("0/3020D28").unwrap();
        let a = recover_args(
            &lsn,
            &[("ts one".into(), PathBuf::from("/d/tablespaces/ts one"))],
        );
        assert_eq!(
            a,
            [
                "--target-lsn",
                "0/3020D28",
                "--target-action",
                "promote",
                "--tablespace",
                "ts one:/d/tablespaces/ts one"
            ]
        );
        assert_eq!(
            recover_args(&RecoveryTarget::Immediate, &[])[0],
            "--target-immediate"
        );
    }
}
