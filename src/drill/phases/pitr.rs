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
use crate::pitr::wal::{Segment, WalArchive, WalPath};
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
    /// The archive's WAL segments, listed before the restore.
    pub wal: Option<WalArchive>,
    /// The WAL recovery from the backup follows, across timelines (pgBackRest's).
    pub path: Option<WalPath>,
}

/// Phase `precheck` of a PITR drill: the tool's list of backups read (`pgbackrest info`,
/// `barman show-backup`), the backup the target needs found (a target before the end of
/// every backup, or after the newest archived WAL, is refused: recovery could not stop
/// there), then the tool's own check. pgBackRest: the archive listed and the WAL the recovery
/// must replay checked for a gap (`latest` would otherwise promote at the gap as if the
/// archive ended there) along the timelines the history files lead it to (a missing history
/// file fails `latest`, a newest timeline that does not descend from the backup every
/// target), then `pgbackrest verify`, whose every invalid file fails it. Barman:
/// `barman check-backup` of the backup.
pub(in crate::drill) async fn precheck(ctx: &mut Ctx, p: &PitrPlan) -> Option<Prechecked> {
    ctx.rec
        .step(PhaseId::Precheck, async {
            let tool = Tool::locate(p)?;
            let version = tool.version().await;
            let info = tool.info().await?;
            let (backup, wal, checked) = match &tool {
                Tool::Pgbackrest(t) => {
                    let wal = t.wal_archive(&info).await?;
                    let backup = info.check_target(p, Some(&wal))?.clone();
                    if let Some(problem) = info.timeline_problem(&backup, &p.target, &wal) {
                        return Err(PitrError::Timeline {
                            stanza: p.name.clone(),
                            backup: backup.label.clone(),
                            target: p.target.describe(),
                            problem: Box::new(problem),
                        }
                        .into());
                    }
                    if let Some(gap) = info.gap_for(&backup, &p.target, &wal) {
                        return Err(PitrError::WalGap {
                            stanza: p.name.clone(),
                            target: p.target.describe(),
                            gap: Box::new(gap),
                        }
                        .into());
                    }
                    let checked = t.verify().await?;
                    if !checked.ok {
                        return Err(PitrError::Damaged {
                            stanza: p.name.clone(),
                            files: checked.invalid,
                        }
                        .into());
                    }
                    let timelines = info
                        .path_for(&backup, &wal)
                        .map(|w| w.timelines())
                        .unwrap_or_default();
                    let mut said = format!(
                        "pgbackrest verify passed; {} segments archived, no gap from the backup on{}",
                        wal.segments.len(),
                        if timelines.len() > 1 {
                            let t: Vec<String> = timelines.iter().map(u32::to_string).collect();
                            format!(" (timelines {})", t.join(" → "))
                        } else {
                            String::new()
                        }
                    );
                    if !checked.warnings.is_empty() {
                        said.push_str(&format!("; it warned: {}", checked.warnings.join("; ")));
                    }
                    (backup, Some(wal), said)
                }
                Tool::Barman(t) => {
                    let backup = info.check_target(p, None)?.clone();
                    let said = t.check(&backup.label).await?;
                    // Barman keeps no checksum of a WAL file: a damaged one is found only
                    // where replay stops, which `latest` holds against this listing.
                    let wal = t.wal_archive(&info).await?;
                    (backup, Some(wal), said)
                }
            };
            let detail = format!(
                "{checked}; backup {} ({:?}, {} bytes, LSN {}–{}), WAL archived {}–{}; target {}",
                backup.label,
                backup.kind,
                backup.size_bytes,
                opt(backup.lsn_start),
                opt(backup.lsn_stop),
                info.wal_min.as_deref().unwrap_or("-"),
                info.wal_max.as_deref().unwrap_or("-"),
                p.target.describe()
            );
            let path = wal.as_ref().and_then(|w| info.path_for(&backup, w));
            Ok((
                Prechecked {
                    tool,
                    info,
                    backup,
                    version,
                    wal,
                    path,
                },
                detail,
            ))
        })
        .await
}

/// What phase `recovery_point` leaves: the point, the ledger writer's record and the
/// disaster's moment, and how archiving went.
pub(in crate::drill) struct Pointed {
    /// The recovery point: S0, its transaction (the target) and its place in the WAL.
    pub point: crate::pitr::point::RecoveryPoint,
    /// What the ledger writer saw acknowledged, and when the source was lost.
    pub struck: super::rpo::Struck,
    /// The worst case of the source's archiving.
    pub wal: super::rpo::WalWorstCase,
}

/// Phase `recovery_point`: the ledger writer commits for the plan's window, then one
/// transaction on the source takes S0 under SHARE locks and commits (its id is the recovery
/// target, see [`crate::pitr::point`]); the writer is stopped (the source is lost from that
/// moment: the disaster), the WAL switched and the segment holding the point waited for in
/// the archive. A segment that does not arrive fails the drill: archiving is broken.
pub(in crate::drill) async fn point(ctx: &mut Ctx, p: &PitrPlan) -> Option<Pointed> {
    let writer = ctx.owned.writer.take();
    ctx.rec
        .step(PhaseId::RecoveryPoint, async {
            let Some(src) = p.source.clone() else {
                return Err(StepFail::internal("a recovery point without a source"));
            };
            let Some(writer) = writer else {
                return Err(StepFail::internal("a recovery point without the ledger writer"));
            };
            tokio::time::sleep(src.window).await;
            if !writer.is_running() {
                let acks = writer.stop().await;
                return Err(StepFail::environment(format!(
                    "the ledger writer stopped before the recovery point ({:?} after {} commits): the source stopped accepting writes",
                    acks.stop,
                    acks.commits.len()
                )));
            }
            let client = src.endpoint.connect().await?;
            let point = crate::pitr::point::take(&client).await;
            let acks = writer.stop().await;
            let at = chrono::Utc::now();
            // The source is the team's: its ledger goes once the point holds it, so the next
            // drill starts from an empty one and nothing of this one stays behind there.
            let dropped = crate::pitr::point::drop_ledger(&client).await;
            let point = point?;
            dropped?;
            let archive_timeout = crate::pitr::point::archive_timeout(&client).await?;
            let tool = Tool::locate(p)?;
            let archiving = tool
                .archive_through(&client, &point.segment, src.archive_timeout)
                .await?;
            let detail = format!(
                "{} ledger commits in {}; transaction {} took S0 ({} tables, SHARE-locked for {} ms) and committed before WAL location {}; the source is lost from {}; segment {} archived {} ms after the switch",
                acks.commits.len(),
                crate::duration::human(src.window),
                point.xid,
                point.tables_locked,
                point.held_ms,
                point.lsn_after,
                crate::rpo::time_text(at),
                point.segment,
                archiving.as_millis()
            );
            Ok((
                Pointed {
                    point,
                    struck: super::rpo::Struck { acks, at },
                    wal: super::rpo::WalWorstCase {
                        archive_timeout,
                        archiving,
                    },
                },
                detail,
            ))
        })
        .await
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// Phase `pitr_restore`: a new, empty, disposable data directory from the backend (owned by
/// the drill's cleanup from the moment it exists; on the docker backend a host directory the
/// container mounts later, after the image is checked for the program the restored server's
/// `restore_command` runs), filled by `pgbackrest restore` or `barman recover` on this
/// machine with the recovery settings of the target and archiving off.
pub(in crate::drill) async fn restore(ctx: &mut Ctx, p: &PitrPlan, pre: &Prechecked) -> Option<()> {
    let crate::drill::Owned {
        backend, target, ..
    } = &mut ctx.owned;
    let backend = backend.as_ref();
    ctx.rec
        .step(PhaseId::PitrRestore, async {
            let dir = match backend {
                Some(Backend::Native(b)) => {
                    let t = b.empty_target("restored")?;
                    let dir = t.dir().map(|d| d.to_path_buf());
                    // From here on cleanup stops and removes it, whatever happens next.
                    *target = Some(Target::Native(t));
                    dir
                }
                Some(Backend::Docker(b)) => {
                    if let Some(program) = pre.tool.restore_program() {
                        if !b.image_has(program).await? {
                            return Err(StepFail::environment(format!(
                                "image {} has no {program}, which the restored server's restore_command runs to fetch WAL from the repository; use an image with it (scripts/build-images.sh's {} has it) through {}",
                                b.image(),
                                crate::env::docker::LOCAL_IMAGE,
                                crate::env::docker::IMAGE_ENV
                            )));
                        }
                    }
                    let t = b.empty_target("restored")?;
                    let dir = t.dir().map(|d| d.to_path_buf());
                    *target = Some(Target::Docker(t));
                    dir
                }
                None => None,
            };
            let Some(dir) = dir else {
                return Err(StepFail::internal("a new target without its directory"));
            };
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
/// transaction replayed after it; an LSN target must be passed; `latest` must end on the
/// timeline `path` ends on. Returns where recovery stopped and the database the
/// verification reads: `want` (the source's, when the drill took its own recovery point),
/// else the largest one.
pub(in crate::drill) async fn replay(
    ctx: &mut Ctx,
    p: &PitrPlan,
    wal: Option<&WalArchive>,
    path: Option<&WalPath>,
    want: Option<&str>,
) -> Option<(Replayed, String)> {
    let limit = ctx.plan.budgets.database_restore;
    let settings = ctx.plan.server.clone();
    let crate::drill::Owned {
        backend, target, ..
    } = &mut ctx.owned;
    let (backend, target) = (backend.as_ref(), target.as_mut());
    ctx.rec
        .step(PhaseId::RecoveryReplay, async {
            let dir = match &target {
                Some(Target::Native(t)) => t.dir(),
                Some(Target::Docker(t)) => t.dir(),
                _ => None,
            };
            let Some(log_path) = dir.map(|d| d.join("postgres.log")) else {
                return Err(StepFail::internal("no restored data directory to start"));
            };
            let log = || RecoveryLog::read(&std::fs::read_to_string(&log_path).unwrap_or_default());
            let failed = |e: String| {
                let l = log();
                match &l.fatal {
                    Some(f) => StepFail::from(PitrError::TargetMissed(format!(
                        "recovery failed before promotion: {f}{}",
                        where_wal_ended(&l, wal, path, &p.target)
                    ))),
                    None => StepFail::environment(e),
                }
            };
            let started = Instant::now();
            let begun = match (backend, target) {
                (Some(Backend::Native(b)), Some(Target::Native(t))) => {
                    b.start_restored(t, &settings, limit).await.map(|_| &t.endpoint)
                }
                (Some(Backend::Docker(b)), Some(Target::Docker(t))) => {
                    let reads = Tool::locate(p)?.read_paths();
                    b.start_restored(t, &settings, limit, &reads)
                        .await
                        .map(|_| &t.endpoint)
                }
                _ => return Err(StepFail::internal("a restored target of another backend")),
            };
            let endpoint = begun.map_err(|e| failed(e.to_string()))?;
            let c = endpoint.connect().await.map_err(|e| failed(e.to_string()))?;
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
            let timeline = ended_on(&c, &l).await;
            let replayed = Replayed {
                stopped_lsn: l.redo_done,
                stopped_at,
                stop_line: l.stopping.clone(),
                promoted_lsn,
                replay_ms,
                timeline,
                promoted_timeline: l.new_timeline,
            };
            check_target(&p.target, &l, &replayed)?;
            if p.target == RecoveryTarget::Latest {
                reached_newest(&l, wal, path)?;
                on_newest_timeline(timeline, path)?;
            }
            let db = match want {
                Some(db) => Some(db.to_string()),
                None => c
                .query_opt(
                    "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate \
                     ORDER BY datname = 'postgres', pg_database_size(oid) DESC, datname LIMIT 1",
                    &[],
                )
                .await
                .map_err(|e| failed(crate::pg::error_text(&e)))?
                .map(|r| r.get::<_, String>(0)),
            }
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

/// Why recovery ran out of WAL, from its log's last restored segment and the archive:
/// `; WAL segment N is missing from the archive (the last restored was M)`, `; the archive
/// ends at M …`, or nothing when the log does not say. The segment after M is named on the
/// timeline `path` reads it from (the next timeline's, past a switch).
fn where_wal_ended(
    log: &RecoveryLog,
    wal: Option<&WalArchive>,
    path: Option<&WalPath>,
    target: &RecoveryTarget,
) -> String {
    let (Some(last), Some(wal)) = (log.last_restored.as_deref(), wal) else {
        return String::new();
    };
    let size = wal.segment_size;
    let Some(seg) = Segment::parse(last, size) else {
        return String::new();
    };
    let number = seg.number + 1;
    let next = Segment {
        timeline: path.map_or(seg.timeline, |p| p.timeline_of(number)),
        number,
    }
    .name(size);
    let newest = match path {
        Some(p) => wal.path_newest(p),
        None => wal.last_on(seg.timeline),
    };
    let later = newest
        .and_then(|l| Segment::parse(&l.name, size))
        .is_some_and(|l| l.number > number);
    if wal.segments.iter().any(|s| s.name == next) {
        format!("; WAL segment {next} is in the archive but could not be restored (the last restored was {last}): run `pgbackrest verify`")
    } else if later {
        format!("; WAL segment {next} is missing from the archive (the last restored was {last}, and later segments exist): recovery to {} cannot pass the gap", target.describe())
    } else {
        format!("; the archive ends at {last}, with no commit after the target {}: archive more WAL before drilling to it, or choose an earlier target", target.describe())
    }
}

/// For `latest`: recovery replayed up to the newest archived segment on `path` (the backup's
/// timeline and the ones after it the history files name), so that a segment the restore
/// command could not fetch never passes for the end of the archive.
fn reached_newest(
    log: &RecoveryLog,
    wal: Option<&WalArchive>,
    path: Option<&WalPath>,
) -> Result<(), PitrError> {
    let (Some(done), Some(wal), Some(path)) = (log.redo_done, wal, path) else {
        return Ok(());
    };
    let Some(last) = wal.path_newest(path) else {
        return Ok(());
    };
    let size = wal.segment_size;
    let number = done.0 / size.max(1);
    let stopped = Segment {
        timeline: path.timeline_of(number),
        number,
    };
    match Segment::parse(&last.name, size) {
        Some(newest) if stopped.number < newest.number => Err(PitrError::TargetMissed(format!(
            "recovery to latest stopped at {done} in segment {}, before the newest archived segment {}: the segments after it could not be restored or replayed (missing or damaged); check the archive with `pgdrill verify` and the tool's own check",
            stopped.name(size),
            last.name
        ))),
        _ => Ok(()),
    }
}

/// The timeline recovery replayed last before promotion. Promotion writes the new
/// timeline's history file (`pg_wal/0000000N.history`, N from the log's `selected new
/// timeline ID: N`), whose last line names the timeline it forked off and where: exactly the
/// one recovery ended on. `pg_control_checkpoint()`'s timeline would not do: after promotion
/// it is the new timeline (or, before the first checkpoint on it, the one before), never
/// certainly the one recovery followed. `None` when the log or the file does not say.
async fn ended_on(c: &tokio_postgres::Client, log: &RecoveryLog) -> Option<u32> {
    let new = log.new_timeline?;
    let file = format!("pg_wal/{}", crate::pitr::wal::history_name(new));
    let text: String = c
        .query_one("SELECT pg_read_file($1)", &[&file])
        .await
        .ok()?
        .get(0);
    crate::pitr::wal::TimelineHistory::parse(new, &text)
        .ok()?
        .ancestors
        .last()
        .map(|a| a.parent)
}

/// For `latest`: recovery ended on the timeline the archive's history files lead the backup
/// to, the newest descending from it; on another one it followed the wrong history (or none).
fn on_newest_timeline(ended: Option<u32>, path: Option<&WalPath>) -> Result<(), PitrError> {
    match (ended, path) {
        (Some(ended), Some(path)) if ended != path.timeline => {
            Err(PitrError::TargetMissed(format!(
                "recovery to latest ended on timeline {ended}, but the newest timeline descending from the backup is {} (the archive's history files: timelines {}): the restored server did not follow the archive's timelines to their end",
                path.timeline,
                path.timelines()
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" → ")
            )))
        }
        _ => Ok(()),
    }
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
        // PostgreSQL promotes at an xid target only after replaying that commit; the log
        // must say so, or recovery stopped elsewhere.
        RecoveryTarget::Xid(x) => {
            let said = log.stopping.as_deref().is_some_and(|s| {
                s.contains(&format!("transaction {x},")) || s.ends_with(&format!("transaction {x}"))
            });
            if !said {
                return Err(PitrError::TargetMissed(format!(
                    "the server promoted without saying it stopped at transaction {x} (its log's `recovery stopping` line: {})",
                    log.stopping.as_deref().unwrap_or("none")
                )));
            }
        }
        RecoveryTarget::Latest | RecoveryTarget::Immediate => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pitr::wal::ArchivedSegment;

    fn archive(numbers: &[u64]) -> WalArchive {
        WalArchive {
            archive_id: "15-1".into(),
            segment_size: 16 << 20,
            segments: numbers
                .iter()
                .map(|n| ArchivedSegment {
                    name: format!("0000000100000000{n:08X}"),
                    file: format!("0000000100000000/0000000100000000{n:08X}-x.gz"),
                    size_bytes: 1,
                    archived_at: chrono::DateTime::from_timestamp(1_796_595_200, 0).unwrap(),
                })
                .collect(),
            ..WalArchive::default()
        }
    }

    #[test]
    fn a_recovery_that_ran_out_of_wal_names_the_segment_it_lacked() {
        let log = RecoveryLog::read(
            "LOG:  restored log file \"000000010000000000000003\" from archive\n\
             FATAL:  recovery ended before configured recovery target was reached\n",
        );
        let target = RecoveryTarget::Xid(900);
        let gap = where_wal_ended(&log, Some(&archive(&[2, 3, 5])), None, &target);
        assert!(
            gap.contains("WAL segment 000000010000000000000004 is missing from the archive"),
            "{gap}"
        );
        let end = where_wal_ended(&log, Some(&archive(&[2, 3])), None, &target);
        assert!(
            end.contains("the archive ends at 000000010000000000000003"),
            "{end}"
        );
        let bad = where_wal_ended(&log, Some(&archive(&[2, 3, 4])), None, &target);
        assert!(bad.contains("could not be restored"), "{bad}");
        assert_eq!(where_wal_ended(&log, None, None, &target), "");
        // Past a switch to timeline 2 at 0/4000000, the next segment is timeline 2's.
        let mut a = archive(&[2, 3]);
        a.segments.push(ArchivedSegment {
            name: "000000020000000000000005".into(),
            file: "0000000200000000/000000020000000000000005-x.gz".into(),
            size_bytes: 1,
            archived_at: chrono::DateTime::from_timestamp(1_796_595_200, 0).unwrap(),
        });
        a.history.files.insert(2, "00000002.history".into());
        a.history
            .read(2, "1\t0/4000000\tno recovery target specified\n");
        let path = a.path("000000010000000000000002", None, None);
        let gap = where_wal_ended(&log, Some(&a), path.as_ref(), &target);
        assert!(
            gap.contains("WAL segment 000000020000000000000004 is missing from the archive"),
            "{gap}"
        );
    }

    #[test]
    fn latest_must_replay_into_the_newest_archived_segment() {
        let log = |lsn: &str| RecoveryLog {
            redo_done: lsn.parse().ok(),
            ..RecoveryLog::default()
        };
        let a = archive(&[2, 3, 4]);
        let path = a.path("000000010000000000000002", None, None);
        let path = path.as_ref();
        assert!(reached_newest(&log("0/4000100"), Some(&a), path).is_ok());
        let e = reached_newest(&log("0/3FFFF00"), Some(&a), path).unwrap_err();
        assert!(
            e.to_string()
                .contains("before the newest archived segment 000000010000000000000004"),
            "{e}"
        );
        assert!(reached_newest(&RecoveryLog::default(), Some(&a), path).is_ok());
    }

    #[test]
    fn latest_must_end_on_the_newest_timeline_descending_from_the_backup() {
        let mut a = archive(&[2, 3]);
        a.history.files.insert(2, "00000002.history".into());
        a.history
            .read(2, "1\t0/4000000\tno recovery target specified\n");
        let path = a.path("000000010000000000000002", None, None).unwrap();
        assert_eq!(path.timeline, 2);
        assert!(on_newest_timeline(Some(2), Some(&path)).is_ok());
        assert!(on_newest_timeline(None, Some(&path)).is_ok());
        let e = on_newest_timeline(Some(1), Some(&path)).unwrap_err();
        assert!(
            e.to_string().contains(
                "ended on timeline 1, but the newest timeline descending from the backup is 2"
            ),
            "{e}"
        );
    }
}
