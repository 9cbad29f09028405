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
use serde::Deserialize;
use tokio::process::Command;

use super::pgbackrest::{on_path, said};
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
        let program = on_path("barman").ok_or(PitrError::NotInstalled {
            tool: PitrTool::Barman,
        })?;
        Ok(Barman {
            program,
            config: plan.config.clone(),
            server: plan.name.clone(),
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
            Some(v) if out.status.success() => Ok(v),
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
        let checked = self.json(&["check", &self.server]).await;
        let failed = match &checked {
            Ok(v) => parse_check(v, &self.server),
            // `barman check` exits 1 when a check fails; its JSON is still the answer.
            Err(PitrError::Config { message, .. }) => vec![message.clone()],
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
        let servers = self.json(&["show-servers", &self.server]).await.ok()?;
        let base = of_server(&servers, &self.server)
            .ok()?
            .get("basebackups_directory")?
            .as_str()?
            .to_string();
        let info = tokio::fs::read_to_string(Path::new(&base).join(backup_id).join("backup.info"))
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("error="))
            .map(|e| format!(": {e}"))
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

/// Raw `barman -f json` answers (3.4).
mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Listed {
        pub backup_id: String,
        pub status: String,
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
    let listed: Vec<raw::Listed> = serde_json::from_value(of_server(v, server)?.clone())
        .map_err(|e| unreadable(format!("list-backups: {e}")))?;
    Ok(listed
        .into_iter()
        .filter(|b| b.status == "DONE")
        .map(|b| b.backup_id)
        .collect())
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

/// `barman -f json check SERVER`: each check that did not pass, as `name: hint`.
pub fn parse_check(v: &serde_json::Value, server: &str) -> Vec<String> {
    let Some(checks) = v.get(server).and_then(|c| c.as_object()) else {
        return Vec::new();
    };
    checks
        .iter()
        .filter(|(_, c)| c.get("status").and_then(|s| s.as_str()) != Some("OK"))
        .map(|(name, c)| {
            let hint = c.get("hint").and_then(|h| h.as_str()).unwrap_or_default();
            if hint.is_empty() {
                name.clone()
            } else {
                format!("{name}: {hint}")
            }
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
        assert_eq!(
            parse_check(&c, "pg"),
            ["PostgreSQL", "failed_backups: there are 1 failed backups"]
        );
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
