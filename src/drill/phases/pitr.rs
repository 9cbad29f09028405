//! Point-in-time recovery of a pgBackRest stanza (`--pgbackrest-stanza`) or a Barman server
//! (`--barman-server`), native backend: `precheck` (the backups read and the tool's own
//! check), `pitr_restore` (the backup restored into a new empty data directory) and
//! `recovery_replay` (the server
//! started, WAL replayed until PostgreSQL promotes it at the target, the target checked).
//! The drill never promotes by hand: an early promotion would pass a recovery that cannot
//! reach its target.

use std::time::{Duration, Instant};

use crate::drill::{Ctx, PhaseId, StepFail};
use crate::env::{Backend, Target};
use crate::pitr::{
    BackupInfo, PitrError, PitrPlan, RecoveryLog, RecoveryTarget, Replayed, StanzaInfo, Tool,
};

/// What `precheck` found: the tool, the stanza and the backup the restore starts from.
pub(in crate::drill) struct Prechecked {
    /// The stanza's `pgbackrest`, the server's `barman`.
    pub tool: Tool,
    /// The backups and archived WAL the tool lists.
    pub info: StanzaInfo,
    /// The backup a restore to the target starts from.
    pub backup: BackupInfo,
    /// The tool's version.
    pub version: Option<String>,
}

/// Phase `precheck` of a PITR drill: the tool's list of backups read (`pgbackrest info`,
/// `barman show-backup`), the backup the target needs found (a target before the end of
/// every backup is refused: recovery could not stop there), then the tool's own check of it
/// (`pgbackrest verify`, `barman check-backup`).
pub(in crate::drill) async fn precheck(ctx: &mut Ctx, p: &PitrPlan) -> Option<Prechecked> {
    ctx.rec
        .step(PhaseId::Precheck, async {
            let tool = Tool::locate(p)?;
            let version = tool.version().await;
            let info = tool.info().await?;
            let labels = || {
                info.backups
                    .iter()
                    .map(|b| b.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let Some(backup) = info.backup_for(&p.target, p.set.as_deref()).cloned() else {
                let why = match &p.set {
                    Some(set) => format!("--set {set} names no backup"),
                    None => format!(
                        "no backup ended before the target ({}): recovery cannot stop before a backup's end",
                        p.target.describe()
                    ),
                };
                return Err(PitrError::NoSuchBackup {
                    tool: p.tool,
                    name: p.name.clone(),
                    why,
                    labels: labels(),
                }
                .into());
            };
            let before_end = match p.target {
                RecoveryTarget::Time(t) => t < backup.stopped_at,
                RecoveryTarget::Lsn(l) => backup.lsn_stop.is_some_and(|s| l < s),
                RecoveryTarget::Latest | RecoveryTarget::Immediate => false,
            };
            if before_end {
                return Err(PitrError::NoSuchBackup {
                    tool: p.tool,
                    name: p.name.clone(),
                    why: format!(
                        "the target ({}) is before the end of backup {} (stopped at {}, LSN {}): recovery cannot stop there",
                        p.target.describe(),
                        backup.label,
                        backup.stopped_at.to_rfc3339(),
                        backup.lsn_stop.map(|l| l.to_string()).unwrap_or_default()
                    ),
                    labels: labels(),
                }
                .into());
            }
            let said = tool.check(&backup).await?;
            let mut detail = format!(
                "{} passed; backup {} ({:?}, {} bytes, LSN {}–{}), WAL archived {}–{}; target {}",
                match p.tool {
                    crate::pitr::PitrTool::Pgbackrest => "pgbackrest verify",
                    crate::pitr::PitrTool::Barman => "barman check-backup",
                },
                backup.label,
                backup.kind,
                backup.size_bytes,
                opt(backup.lsn_start),
                opt(backup.lsn_stop),
                info.wal_min.as_deref().unwrap_or("-"),
                info.wal_max.as_deref().unwrap_or("-"),
                p.target.describe()
            );
            if !said.is_empty() {
                detail.push_str(&format!("; it said: {said}"));
            }
            Ok((
                Prechecked {
                    tool,
                    info,
                    backup,
                    version,
                },
                detail,
            ))
        })
        .await
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// Phase `pitr_restore`: a new, empty, disposable data directory from the native backend
/// (owned by the drill's cleanup from the moment it exists), filled by `pgbackrest restore`
/// or `barman recover` with the recovery settings of the target and archiving off.
pub(in crate::drill) async fn restore(ctx: &mut Ctx, p: &PitrPlan, pre: &Prechecked) -> Option<()> {
    let crate::drill::Owned {
        backend, target, ..
    } = &mut ctx.owned;
    let backend = match backend.as_ref() {
        Some(Backend::Native(b)) => Some(b),
        _ => None,
    };
    ctx.rec
        .step(PhaseId::PitrRestore, async {
            let Some(b) = backend else {
                return Err(StepFail::environment(
                    "point-in-time recovery runs on the native backend only (the docker backend is not built yet)",
                ));
            };
            let t = b.empty_target("restored")?;
            let Some(dir) = t.dir().map(|d| d.to_path_buf()) else {
                return Err(StepFail::internal("a new target without its directory"));
            };
            // From here on cleanup stops and removes it, whatever happens next.
            *target = Some(Target::Native(t));
            let said = pre
                .tool
                .restore(&dir, &p.target, &pre.backup, p.set.as_deref())
                .await?;
            let mut detail = format!(
                "{} of backup {} into {} (target {}, never archiving into the repository)",
                match p.tool {
                    crate::pitr::PitrTool::Pgbackrest => "pgbackrest restore",
                    crate::pitr::PitrTool::Barman => "barman recover",
                },
                pre.backup.label,
                dir.join("data").display(),
                p.target.describe()
            );
            if !said.is_empty() {
                detail.push_str(&format!("; it said: {said}"));
            }
            Ok(((), detail))
        })
        .await
}

/// Phase `recovery_replay`: the restored server started (archiving off), waited for until
/// PostgreSQL itself ends recovery at the target and promotes (bounded by the
/// database_restore budget), then the target checked: a time target must have stopped
/// recovery (the log's `recovery stopping …` or `consistent recovery state reached`) with no
/// transaction replayed after it; an LSN target must be passed. Returns where recovery
/// stopped and the database the verification reads.
pub(in crate::drill) async fn replay(ctx: &mut Ctx, p: &PitrPlan) -> Option<(Replayed, String)> {
    let limit = ctx.plan.budgets.database_restore;
    let settings = ctx.plan.server.clone();
    let crate::drill::Owned {
        backend, target, ..
    } = &mut ctx.owned;
    let parts = match (backend.as_ref(), target.as_mut()) {
        (Some(Backend::Native(b)), Some(Target::Native(t))) => Some((b, t)),
        _ => None,
    };
    ctx.rec
        .step(PhaseId::RecoveryReplay, async {
            let Some((b, t)) = parts else {
                return Err(StepFail::internal("no restored data directory to start"));
            };
            let Some(log_path) = t.dir().map(|d| d.join("postgres.log")) else {
                return Err(StepFail::internal("a restored target without its directory"));
            };
            let log = || RecoveryLog::read(&std::fs::read_to_string(&log_path).unwrap_or_default());
            let failed = |e: String| match log().fatal {
                Some(f) => StepFail::from(PitrError::TargetMissed(format!(
                    "recovery failed before promotion: {f}"
                ))),
                None => StepFail::environment(e),
            };
            let started = Instant::now();
            if let Err(e) = b.start_restored(t, &settings, limit).await {
                return Err(failed(e.to_string()));
            }
            let c = t.endpoint.connect().await.map_err(|e| failed(e.to_string()))?;
            loop {
                let row = c
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map_err(|e| failed(crate::pg::error_text(&e)))?;
                if !row.get::<_, bool>(0) {
                    break;
                }
                if started.elapsed() > limit {
                    return Err(StepFail::restore_failed(format!(
                        "recovery did not end within {} (the database_restore budget); the server is still replaying WAL",
                        crate::duration::human(limit)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let replay_ms = started.elapsed().as_millis() as u64;
            let row = c
                .query_one(
                    "SELECT pg_current_wal_lsn()::text, \
                     (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8",
                    &[],
                )
                .await
                .map_err(|e| failed(crate::pg::error_text(&e)))?;
            let promoted_lsn = row.get::<_, String>(0).parse().ok();
            let stopped_at = row
                .get::<_, Option<i64>>(1)
                .and_then(chrono::DateTime::from_timestamp_micros);
            let l = log();
            let replayed = Replayed {
                stopped_lsn: l.redo_done,
                stopped_at,
                stop_line: l.stopping.clone(),
                promoted_lsn,
                replay_ms,
            };
            check_target(&p.target, &l, &replayed)?;
            let db = c
                .query_opt(
                    "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate \
                     ORDER BY datname = 'postgres', pg_database_size(oid) DESC, datname LIMIT 1",
                    &[],
                )
                .await
                .map_err(|e| failed(crate::pg::error_text(&e)))?
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|| "postgres".into());
            let detail = format!(
                "promoted after {} ms of recovery; stopped at {} (last commit replayed {}){}; target {} reached",
                replay_ms,
                opt(replayed.stopped_lsn),
                replayed
                    .stopped_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "-".into()),
                replayed
                    .stop_line
                    .as_ref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default(),
                p.target.describe()
            );
            Ok(((replayed, db), detail))
        })
        .await
}

/// Whether recovery stopped where `target` asked, from its log and the promoted server.
fn check_target(target: &RecoveryTarget, log: &RecoveryLog, r: &Replayed) -> Result<(), PitrError> {
    match target {
        RecoveryTarget::Time(t) => {
            if log.stopping.is_none() && !log.consistent {
                return Err(PitrError::TargetMissed(format!(
                    "the server promoted without saying where recovery stopped (no `recovery stopping` nor `consistent recovery state reached` in its log) for target {}",
                    target.describe()
                )));
            }
            if let Some(at) = r.stopped_at.filter(|at| at > t) {
                return Err(PitrError::TargetMissed(format!(
                    "a transaction committed at {} was replayed, after the target {}",
                    at.to_rfc3339(),
                    target.describe()
                )));
            }
        }
        RecoveryTarget::Lsn(l) => match r.promoted_lsn {
            Some(at) if at >= *l => {}
            at => {
                return Err(PitrError::TargetMissed(format!(
                    "the promoted server is at WAL location {}, before the target {}",
                    opt(at),
                    target.describe()
                )))
            }
        },
        RecoveryTarget::Latest | RecoveryTarget::Immediate => {}
    }
    Ok(())
}
