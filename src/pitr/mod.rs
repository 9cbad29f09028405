//! Point-in-time recovery of the physical backups a team already has (issue 23): what to
//! recover to ([`RecoveryTarget`], [`Lsn`]), the plan of a PITR drill ([`PitrPlan`]), what
//! the tool's repository says about its backups ([`StanzaInfo`], [`BackupInfo`]), how a
//! recovery ended ([`Replayed`], read from the server's log) and the report's `pitr` section
//! ([`PitrReport`]). The tools themselves are run by [`pgbackrest`] and [`barman`], both
//! behind [`Tool`]; nothing here prints.

pub mod barman;
pub mod pgbackrest;
pub mod point;
pub mod verify;
pub mod wal;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::env_error::EnvError;

/// A WAL location (`X/Y` in PostgreSQL's notation), ordered as the server orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl std::str::FromStr for Lsn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("{s:?} is not an LSN: expected two hexadecimal numbers as in 0/3020D28");
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where recovery stops: the tool's recovery types, each its own variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// The end of the archived WAL (`--target latest`): the least data lost.
    Latest,
    /// The first consistent state after the backup (`--target immediate`): the backup alone.
    Immediate,
    /// Just after the last commit at or before this time (`--target-time`).
    Time(DateTime<Utc>),
    /// Just after the WAL record at this location (`--target-lsn`).
    Lsn(Lsn),
    /// Just after this transaction's commit (`--target-xid`).
    Xid(u64),
}

impl RecoveryTarget {
    /// `--target latest|immediate`.
    pub fn named(s: &str) -> Result<RecoveryTarget, String> {
        match s {
            "latest" => Ok(RecoveryTarget::Latest),
            "immediate" => Ok(RecoveryTarget::Immediate),
            other => Err(format!(
                "--target {other:?}: expected latest or immediate (a time or an LSN is --target-time or --target-lsn)"
            )),
        }
    }

    /// `--target-time`: RFC 3339 (`2026-12-06T22:11:35Z`) or PostgreSQL's form
    /// (`2026-12-06 22:11:35.96+00`); a time without a zone is refused, since the server and
    /// pgdrill could read it in different zones.
    pub fn time(s: &str) -> Result<RecoveryTarget, String> {
        let t = s.trim();
        let parsed = DateTime::parse_from_rfc3339(t)
            .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z"))
            .map_err(|_| {
                format!("--target-time {s:?}: expected a time with its zone, e.g. 2026-12-06T22:11:35Z or '2026-12-06 22:11:35+00'")
            })?;
        Ok(RecoveryTarget::Time(parsed.with_timezone(&Utc)))
    }

    /// `--target-lsn`.
    pub fn lsn(s: &str) -> Result<RecoveryTarget, String> {
        s.parse()
            .map(RecoveryTarget::Lsn)
            .map_err(|e| format!("--target-lsn: {e}"))
    }

    /// `--target-xid`: a transaction id as `pg_current_xact_id()` or `txid_current()` print
    /// it (decimal; with its epoch, as those print it, is accepted too).
    pub fn xid(s: &str) -> Result<RecoveryTarget, String> {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|x| *x >= 3)
            .map(RecoveryTarget::Xid)
            .ok_or_else(|| {
                format!("--target-xid {s:?}: expected a transaction id, a decimal number of 3 or more as `SELECT pg_current_xact_id()` prints it")
            })
    }

    /// The report's words for it: `latest`, `immediate`, `time 2026-…Z`, `lsn 0/3020D28`,
    /// `xid 1234`.
    pub fn describe(&self) -> String {
        match self {
            RecoveryTarget::Latest => "latest".into(),
            RecoveryTarget::Immediate => "immediate".into(),
            RecoveryTarget::Time(t) => format!("time {}", pg_time(t)),
            RecoveryTarget::Lsn(l) => format!("lsn {l}"),
            RecoveryTarget::Xid(x) => format!("xid {x}"),
        }
    }
}

/// A time as PostgreSQL's `recovery_target_time` reads it, in UTC with microseconds.
pub fn pg_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// The backup tool whose repository a point-in-time-recovery drill reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PitrTool {
    /// pgBackRest: a stanza (`--pgbackrest-stanza`).
    Pgbackrest,
    /// Barman: a server (`--barman-server`).
    Barman,
}

impl PitrTool {
    /// The program's name (`pgbackrest`, `barman`), also the Debian package's.
    pub fn program(self) -> &'static str {
        match self {
            PitrTool::Pgbackrest => "pgbackrest",
            PitrTool::Barman => "barman",
        }
    }

    /// What the tool calls one database cluster's backups, named: `pgBackRest stanza `T``,
    /// `Barman server `pg``.
    pub fn what(self, name: &str) -> String {
        match self {
            PitrTool::Pgbackrest => format!("pgBackRest stanza `{name}`"),
            PitrTool::Barman => format!("Barman server `{name}`"),
        }
    }

    /// The flag that names it (`--pgbackrest-stanza`, `--barman-server`).
    pub fn flag(self) -> &'static str {
        match self {
            PitrTool::Pgbackrest => "--pgbackrest-stanza",
            PitrTool::Barman => "--barman-server",
        }
    }

    /// The command that lists what the flag can name.
    fn lister(self) -> &'static str {
        match self {
            PitrTool::Pgbackrest => "`pgbackrest info` lists the stanzas",
            PitrTool::Barman => "`barman list-servers` lists the servers",
        }
    }

    /// The command that takes a first backup of `name`.
    fn first_backup(self, name: &str) -> String {
        match self {
            PitrTool::Pgbackrest => format!("pgbackrest --stanza={name} backup --type=full"),
            PitrTool::Barman => format!("barman backup {name}"),
        }
    }
}

impl std::fmt::Display for PitrTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

/// A point-in-time-recovery drill of a pgBackRest stanza (`--pgbackrest-stanza`) or a Barman
/// server (`--barman-server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitrPlan {
    /// The tool that keeps the backups.
    pub tool: PitrTool,
    /// The stanza (pgBackRest) or the server (Barman).
    pub name: String,
    /// `--pgbackrest-config`, `--barman-config`: the tool's configuration file (else its own
    /// default).
    pub config: Option<PathBuf>,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// `--set`: the backup to restore (else the newest that fits the target, as the tool
    /// would pick it).
    pub set: Option<String>,
    /// `--pitr-source-dsn`: the source the repository archives, reachable, where the drill
    /// writes its RPO ledger and takes its own recovery point.
    pub source: Option<PitrSource>,
}

/// The source of a PITR drill that pgdrill can reach and write to (`--pitr-source-dsn`).
#[derive(Debug, Clone)]
pub struct PitrSource {
    /// The source database, as the DSN names it.
    pub endpoint: crate::env::Endpoint,
    /// How long the ledger writer commits before the recovery point (`--pitr-window`).
    pub window: std::time::Duration,
    /// How long the archive may take to hold the recovery point's segment.
    pub archive_timeout: std::time::Duration,
}

// An endpoint is compared by the URL it names (it has no PartialEq of its own), as plans are compared
// in tests: two plans of the same source are the same plan.
impl PartialEq for PitrSource {
    fn eq(&self, other: &Self) -> bool {
        self.endpoint.url() == other.endpoint.url()
            && self.window == other.window
            && self.archive_timeout == other.archive_timeout
    }
}

impl Eq for PitrSource {}

/// One repository's tool, ready to run: what the drill's phases call, whichever tool it is.
#[derive(Debug, Clone)]
pub enum Tool {
    /// A pgBackRest stanza.
    Pgbackrest(pgbackrest::Pgbackrest),
    /// A Barman server.
    Barman(barman::Barman),
}

impl Tool {
    /// The plan's tool: [`PitrError::NotInstalled`] when its program is not on PATH.
    pub fn locate(plan: &PitrPlan) -> Result<Tool, PitrError> {
        Ok(match plan.tool {
            PitrTool::Pgbackrest => Tool::Pgbackrest(pgbackrest::Pgbackrest::locate(plan)?),
            PitrTool::Barman => Tool::Barman(barman::Barman::locate(plan)?),
        })
    }

    /// Its version (`pgBackRest 2.45`, `Barman 3.4.0`).
    pub async fn version(&self) -> Option<String> {
        match self {
            Tool::Pgbackrest(t) => t.version().await,
            Tool::Barman(t) => t.version().await,
        }
    }

    /// The repository's backups and archived WAL.
    pub async fn info(&self) -> Result<StanzaInfo, PitrError> {
        match self {
            Tool::Pgbackrest(t) => t.info().await,
            Tool::Barman(t) => t.info().await,
        }
    }

    /// Restores `backup` (pgBackRest: `set`, else its own pick, the same one) into the empty
    /// `dir/data`, tablespaces under `dir/tablespaces`, with the recovery settings of
    /// `target`; the restored server never archives into the repository.
    pub async fn restore(
        &self,
        dir: &std::path::Path,
        target: &RecoveryTarget,
        backup: &BackupInfo,
        set: Option<&str>,
    ) -> Result<String, PitrError> {
        match self {
            Tool::Pgbackrest(t) => {
                t.restore(
                    &dir.join("data"),
                    &dir.join("tablespaces"),
                    dir,
                    target,
                    set,
                )
                .await
            }
            Tool::Barman(t) => t.restore(dir, target, backup).await,
        }
    }

    /// The program the restored server's `restore_command` runs, which a container image
    /// must hold: `pgbackrest` (archive-get); none for Barman, whose `recover` copies the WAL
    /// into the data directory.
    pub fn restore_program(&self) -> Option<&'static str> {
        match self {
            Tool::Pgbackrest(_) => Some("pgbackrest"),
            Tool::Barman(_) => None,
        }
    }

    /// What the restored server's `restore_command` reads on this machine, mounted read-only
    /// into a container: pgBackRest's configuration and repositories; nothing for Barman.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        match self {
            Tool::Pgbackrest(t) => t.read_paths(),
            Tool::Barman(_) => Vec::new(),
        }
    }

    /// Closes the source's current WAL segment and waits, at most `timeout`, until the
    /// archive holds `segment` (and so every segment before it): pgBackRest's listing polled
    /// after `pg_switch_wal()` on `source`; Barman's own `switch-wal --archive`, which
    /// switches through its connection and waits for the file. Returns how long it took.
    pub async fn archive_through(
        &self,
        source: &tokio_postgres::Client,
        segment: &str,
        timeout: std::time::Duration,
    ) -> Result<std::time::Duration, PitrError> {
        let started = std::time::Instant::now();
        let (tool, newest) = match self {
            Tool::Pgbackrest(t) => {
                // The archive id the listing reads does not change while the drill waits.
                let info = t.info().await?;
                point::switch_wal(source).await?;
                loop {
                    let wal = t.wal_archive(&info).await?;
                    let newest = wal.segments.iter().map(|s| s.name.clone()).max();
                    if wal.segments.iter().any(|s| s.name == segment) {
                        return Ok(started.elapsed());
                    }
                    if started.elapsed() > timeout {
                        break (PitrTool::Pgbackrest, newest);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
            Tool::Barman(t) => {
                t.switch_wal(timeout).await?;
                let info = t.info().await?;
                let newest = info.wal_max.clone();
                if newest.as_deref().is_some_and(|n| n >= segment) {
                    return Ok(started.elapsed());
                }
                (PitrTool::Barman, newest)
            }
        };
        Err(PitrError::NotArchived {
            tool,
            segment: segment.into(),
            waited: started.elapsed(),
            newest: newest.unwrap_or_else(|| "none".into()),
        })
    }
}

/// The kind of a pgBackRest backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// A full copy.
    Full,
    /// Changes since the last full backup.
    Diff,
    /// Changes since the last backup of any kind.
    Incr,
}

/// One backup of a stanza, as `pgbackrest info --output=json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// Its label (`20261206-221124F`), what `--set` names.
    pub label: String,
    /// Full, differential or incremental.
    #[serde(rename = "type")]
    pub kind: BackupKind,
    /// When the backup started.
    pub started_at: DateTime<Utc>,
    /// When it stopped: the earliest time a recovery from it can reach.
    pub stopped_at: DateTime<Utc>,
    /// The WAL location where it started.
    pub lsn_start: Option<Lsn>,
    /// Where it stopped: the earliest location a recovery from it can reach.
    pub lsn_stop: Option<Lsn>,
    /// The first WAL segment it needs.
    pub wal_start: Option<String>,
    /// The last WAL segment it needs.
    pub wal_stop: Option<String>,
    /// The database's size in the backup, in bytes.
    pub size_bytes: u64,
    /// Its size in the repository (compressed), in bytes.
    pub repo_size_bytes: u64,
    /// pgBackRest found a page checksum error while taking it.
    pub error: bool,
    /// The archive its WAL is in (`15-1`), when `info` says.
    #[serde(default, skip_serializing)]
    pub archive_id: Option<String>,
}

/// What `pgbackrest info --output=json` says about a stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct StanzaInfo {
    /// The stanza's name.
    pub name: String,
    /// Its backups, oldest first.
    pub backups: Vec<BackupInfo>,
    /// The oldest archived WAL segment of the current database.
    pub wal_min: Option<String>,
    /// The newest archived WAL segment.
    pub wal_max: Option<String>,
    /// The current database's archive (`15-1`), where new WAL goes.
    pub archive_id: Option<String>,
}

impl StanzaInfo {
    /// The backups whose WAL is in the current archive, oldest first.
    pub fn current_backups(&self) -> impl DoubleEndedIterator<Item = &BackupInfo> {
        self.backups
            .iter()
            .filter(|b| b.archive_id.is_none() || b.archive_id == self.archive_id)
    }

    /// The WAL segment size, from the newest backup whose start says it
    /// ([`wal::infer_segment_size`]), else PostgreSQL's default of 16 MiB.
    pub fn segment_size(&self) -> u64 {
        self.current_backups()
            .rev()
            .find_map(|b| wal::infer_segment_size(b.lsn_start?, b.wal_start.as_deref()?))
            .unwrap_or(wal::DEFAULT_SEGMENT_SIZE)
    }

    /// The backup a restore as `plan` asks starts from, refused with the reason when
    /// recovery cannot stop at its target: `--set` names no backup, the target is before the
    /// end of every backup (or of `--set`'s), or after the newest archived WAL (an LSN past
    /// the newest segment, a time after that segment was archived: `wal`, when listed).
    pub fn check_target(
        &self,
        plan: &PitrPlan,
        wal: Option<&wal::WalArchive>,
    ) -> Result<&BackupInfo, PitrError> {
        let refuse = |why: String| PitrError::NoSuchBackup {
            tool: plan.tool,
            name: plan.name.clone(),
            why,
            labels: self
                .backups
                .iter()
                .map(|b| b.label.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let target = &plan.target;
        let Some(backup) = self.backup_for(plan.tool, target, plan.set.as_deref()) else {
            return Err(refuse(match &plan.set {
                Some(set) => format!("--set {set} names no backup"),
                None => format!(
                    "no backup ended before the target ({}): recovery cannot stop before a backup's end{}",
                    target.describe(),
                    if plan.tool == PitrTool::Pgbackrest {
                        " (pgBackRest compares whole seconds: a target in the second a backup stopped needs --set LABEL)"
                    } else {
                        ""
                    }
                ),
            }));
        };
        let before_end = match target {
            RecoveryTarget::Time(t) => *t < backup.stopped_at,
            RecoveryTarget::Lsn(l) => backup.lsn_stop.is_some_and(|s| *l < s),
            RecoveryTarget::Latest | RecoveryTarget::Immediate | RecoveryTarget::Xid(_) => false,
        };
        if before_end {
            return Err(refuse(format!(
                "the target ({}) is before the end of backup {} (stopped at {}, LSN {}): recovery cannot stop there",
                target.describe(),
                backup.label,
                backup.stopped_at.to_rfc3339(),
                backup.lsn_stop.map(|l| l.to_string()).unwrap_or_default()
            )));
        }
        let Some(wal) = wal else { return Ok(backup) };
        let size = wal.segment_size;
        // The WAL recovery follows from this backup, across timeline switches: its newest
        // segment is where the archive ends for this recovery.
        let path = self.path_for(backup, wal);
        let newest = path.as_ref().and_then(|p| wal.path_newest(p));
        let after = match (target, &path) {
            (RecoveryTarget::Lsn(l), Some(path)) => newest.and_then(|last| {
                let number = l.0 / size.max(1);
                let needed = wal::Segment {
                    timeline: path.timeline_of(number),
                    number,
                };
                (wal::Segment::parse(&last.name, size)?.number < number)
                    .then(|| (last, format!("it is in segment {}", needed.name(size))))
            }),
            // Every commit in a segment happened before the segment was archived; the
            // repository's file times are whole seconds, so the archiving may have happened up
            // to a second after the time shown.
            (RecoveryTarget::Time(t), _) => newest.or_else(|| wal.newest()).and_then(|n| {
                (*t >= n.archived_at + chrono::Duration::seconds(1)).then(|| {
                    (
                        n,
                        format!(
                            "the newest segment was archived at {}",
                            n.archived_at.to_rfc3339()
                        ),
                    )
                })
            }),
            _ => None,
        };
        match after {
            Some((newest, why)) => Err(PitrError::AfterArchive {
                stanza: plan.name.clone(),
                target: target.describe(),
                newest: newest.name.clone(),
                why,
            }),
            None => Ok(backup),
        }
    }

    /// The WAL a recovery from `backup` replays to the end of `wal`, across the timeline
    /// switches its history files record ([`wal::WalArchive::path`]); `None` when the backup
    /// names no first segment.
    pub fn path_for(&self, backup: &BackupInfo, wal: &wal::WalArchive) -> Option<wal::WalPath> {
        wal.path(
            backup.wal_start.as_deref()?,
            backup.lsn_stop.or(backup.lsn_start),
            backup.wal_stop.as_deref(),
        )
    }

    /// The first gap in the WAL a recovery from `backup` to `target` must replay, along its
    /// [`Self::path_for`]: from the backup's first segment to its last (`immediate`, a time:
    /// the rest is known only while replaying), to the target's segment (an LSN), or to the
    /// newest archived segment of the newest timeline descending from it (`latest`, where
    /// PostgreSQL would otherwise promote at the gap as if the archive ended there).
    pub fn gap_for(
        &self,
        backup: &BackupInfo,
        target: &RecoveryTarget,
        wal: &wal::WalArchive,
    ) -> Option<wal::WalGap> {
        let path = self.path_for(backup, wal)?;
        let size = wal.segment_size;
        let path = match target {
            RecoveryTarget::Latest => path,
            RecoveryTarget::Immediate | RecoveryTarget::Time(_) | RecoveryTarget::Xid(_) => {
                let stop = backup.wal_stop.as_deref().or(backup.wal_start.as_deref())?;
                path.through(wal::Segment::parse(stop, size)?.number)
            }
            RecoveryTarget::Lsn(l) => path.through(l.0 / size.max(1)),
        };
        wal.path_gaps(&path).into_iter().next()
    }

    /// What in the archive's timelines stops a recovery from `backup` to `target`: a
    /// problem that fails every recovery from it (the newest timeline does not descend from
    /// it, its history file cannot be read), or, for `latest`, a timeline PostgreSQL would
    /// never reach (a history file missing).
    pub fn timeline_problem(
        &self,
        backup: &BackupInfo,
        target: &RecoveryTarget,
        wal: &wal::WalArchive,
    ) -> Option<wal::TimelineProblem> {
        self.path_for(backup, wal)?
            .problem
            .filter(|p| p.is_fatal() || *target == RecoveryTarget::Latest)
    }

    /// The backup a restore to `target` starts from, as `tool` chooses it: `set` when given;
    /// for a time, the newest backup that stopped before it (pgBackRest compares whole
    /// seconds, the target's second with the backup's; pgdrill picks Barman's backup itself,
    /// to the microsecond Barman records); for an LSN, the newest that ended at or before it;
    /// otherwise the newest.
    pub fn backup_for(
        &self,
        tool: PitrTool,
        target: &RecoveryTarget,
        set: Option<&str>,
    ) -> Option<&BackupInfo> {
        if let Some(set) = set {
            return self.backups.iter().find(|b| b.label == set);
        }
        let fits = |b: &&BackupInfo| match target {
            RecoveryTarget::Time(t) if tool == PitrTool::Pgbackrest => {
                b.stopped_at.timestamp() < t.timestamp()
            }
            RecoveryTarget::Time(t) => b.stopped_at <= *t,
            RecoveryTarget::Lsn(l) => b.lsn_stop.is_some_and(|s| s <= *l),
            // Where a transaction committed is known only while replaying.
            RecoveryTarget::Latest | RecoveryTarget::Immediate | RecoveryTarget::Xid(_) => true,
        };
        self.backups.iter().rev().find(fits)
    }
}

/// How recovery ended, from the restored server and its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    /// The last WAL record replayed (the log's `redo done at`), when the log says it.
    pub stopped_lsn: Option<Lsn>,
    /// `pg_last_xact_replay_timestamp()`: the commit time of the last transaction replayed.
    pub stopped_at: Option<DateTime<Utc>>,
    /// The log line saying why recovery stopped (`recovery stopping after …`), if any.
    pub stop_line: Option<String>,
    /// `pg_current_wal_lsn()` after promotion.
    pub promoted_lsn: Option<Lsn>,
    /// From the server's start to its promotion, in milliseconds.
    pub replay_ms: u64,
    /// The timeline recovery replayed last, before promotion began a new one: the parent in
    /// the new timeline's history file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The timeline promotion began (the log's `selected new timeline ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_timeline: Option<u32>,
}

/// The lines of a recovering server's log pgdrill reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryLog {
    /// `recovery stopping before/after …`.
    pub stopping: Option<String>,
    /// `consistent recovery state reached at …`.
    pub consistent: bool,
    /// `redo done at X/Y`.
    pub redo_done: Option<Lsn>,
    /// The last `restored log file "…" from archive`: the newest segment recovery got.
    pub last_restored: Option<String>,
    /// The log's `selected new timeline ID: N`: the timeline promotion began.
    pub new_timeline: Option<u32>,
    /// The first FATAL or PANIC of the startup process (`recovery ended before configured
    /// recovery target was reached` …), not a client refused during start-up.
    pub fatal: Option<String>,
}

impl RecoveryLog {
    /// Reads a server log's recovery lines (PostgreSQL's English messages).
    pub fn read(log: &str) -> RecoveryLog {
        let mut out = RecoveryLog::default();
        for line in log.lines() {
            if let Some(at) = line.find("recovery stopping ") {
                out.stopping = Some(line[at..].trim().to_string());
            }
            if let Some(at) = line.find("restored log file \"") {
                let rest = &line[at + "restored log file \"".len()..];
                // History files are restored too (`00000002.history`): only segments count.
                if let Some((name, _)) = rest.split_once('"').filter(|(n, _)| n.len() == 24) {
                    out.last_restored = Some(name.to_string());
                }
            }
            if let Some(at) = line.find("selected new timeline ID: ") {
                let rest = &line[at + "selected new timeline ID: ".len()..];
                out.new_timeline = rest.split_whitespace().next().and_then(|t| t.parse().ok());
            }
            if line.contains("consistent recovery state reached") {
                out.consistent = true;
            }
            if let Some(at) = line.find("redo done at ") {
                let rest = &line[at + "redo done at ".len()..];
                out.redo_done = rest.split_whitespace().next().and_then(|l| l.parse().ok());
            }
            // A client refused while the server starts is no fault of the recovery.
            let refused = line.contains("the database system is starting up")
                || line.contains("not yet accepting connections");
            if let Some(at) = line.find("FATAL:").or_else(|| line.find("PANIC:")) {
                if !refused {
                    out.fatal
                        .get_or_insert_with(|| line[at..].trim().to_string());
                }
            }
        }
        out
    }
}

/// The report's `pitr` section: which backup was restored, to where, and where recovery
/// stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitrReport {
    /// The backup tool (`pgbackrest`, `barman`).
    pub tool: PitrTool,
    /// Its version (`pgbackrest version`, `barman --version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
    /// The pgBackRest stanza drilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stanza: Option<String>,
    /// The Barman server drilled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The target asked for (`latest`, `immediate`, `time …`, `lsn …`).
    pub target: String,
    /// The backup restored, when the precheck found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupInfo>,
    /// The oldest archived WAL segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_min: Option<String>,
    /// The newest archived WAL segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_max: Option<String>,
    /// How many backups the stanza (or Barman server) holds.
    pub backups_in_stanza: usize,
    /// Where recovery stopped, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Replayed>,
    /// The database snapshotted and checked (a physical restore brings back every database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Its tables' rows in the snapshot of the restored database: with no S0 to compare
    /// with, what the recovery point brought back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableRows>,
    /// The drill's own recovery point on the source (`--pitr-source-dsn`), when it took one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<PointReport>,
}

/// The report's words on the drill's own recovery point ([`point::RecoveryPoint`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointReport {
    /// The source, password redacted.
    pub source: String,
    /// The transaction that took S0: the recovery target.
    pub xid: u64,
    /// The source's insert location right after its commit.
    pub lsn_after: Lsn,
    /// The segment holding it, waited for in the archive.
    pub segment: String,
    /// Tables SHARE-locked (and fingerprinted) in that transaction.
    pub tables_locked: usize,
    /// How long writers to them waited, ms.
    pub locked_ms: u64,
    /// How long the segment took to reach the archive after the WAL switch, ms.
    pub archived_ms: u64,
}

/// One table's rows after the recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// Its qualified name (`public.ledger`).
    pub name: String,
    /// Its rows.
    pub rows: u64,
}

/// Why a pgBackRest stanza or a Barman server cannot be drilled.
#[derive(Debug, thiserror::Error)]
pub enum PitrError {
    /// The tool is not installed.
    #[error("`{tool}` not found on PATH. Install it (Debian/Ubuntu: `apt-get install {tool}`, or scripts/setup.sh) and run the drill again.")]
    NotInstalled {
        /// The tool.
        tool: PitrTool,
    },
    /// The tool refused its configuration (pgBackRest: exit 55 unreadable, 31 invalid …).
    #[error("{tool} refused its configuration{}: {message}. Fix the file (or pass the right one with --{tool}-config FILE; it must be readable by the user the tool runs as) and run the drill again.", config.as_ref().map(|c| format!(" ({})", c.display())).unwrap_or_default())]
    Config {
        /// The tool.
        tool: PitrTool,
        /// `--pgbackrest-config`, `--barman-config`, when given.
        config: Option<PathBuf>,
        /// What the tool said.
        message: String,
    },
    /// The repository has no such stanza or server (or cannot be read).
    #[error("{}: {message}. Check the name ({}) and the repository in the configuration, then run the drill again; nothing was provisioned.", tool.what(name), tool.lister())]
    NoStanza {
        /// The tool.
        tool: PitrTool,
        /// The stanza or server asked for.
        name: String,
        /// The tool's message (`missing stanza path`, `Unknown server 'x'`).
        message: String,
    },
    /// The stanza or server exists but holds no backup to restore.
    #[error("{} has no backup to restore. Take one (`{}`) and run the drill again.", tool.what(name), tool.first_backup(name))]
    NoBackup {
        /// The tool.
        tool: PitrTool,
        /// The stanza or server.
        name: String,
    },
    /// `--set` names no backup, or none ends before the target.
    #[error("{}: {why}. Its backups: {labels}.", tool.what(name))]
    NoSuchBackup {
        /// The tool.
        tool: PitrTool,
        /// The stanza or server.
        name: String,
        /// What does not fit.
        why: String,
        /// The labels it has.
        labels: String,
    },
    /// The target is after the newest WAL in the archive: recovery would end before it.
    #[error("the target ({target}) is after the newest archived WAL of pgBackRest stanza `{stanza}` (segment {newest}; {why}): recovery cannot reach it. Choose an earlier target, or have the source archive its WAL up to the target first (`SELECT pg_switch_wal()` on it), and run the drill again.")]
    AfterArchive {
        /// The stanza.
        stanza: String,
        /// The target asked for.
        target: String,
        /// The newest archived segment.
        newest: String,
        /// Why the target is after it.
        why: String,
    },
    /// A segment recovery needs is missing from the archive.
    #[error("WAL segment {} is missing from the archive of pgBackRest stanza `{stanza}`{}: recovery to {target} cannot pass it. Push the segment again from the source's pg_wal or another copy if it is still there, or take a new full backup (`pgbackrest --stanza={stanza} backup --type=full`); a target before the gap can still be reached.", gap.first_missing, gap_context(gap))]
    WalGap {
        /// The stanza.
        stanza: String,
        /// The target asked for.
        target: String,
        /// The gap (boxed: the error stays small on every other path).
        gap: Box<wal::WalGap>,
    },
    /// The archive's timelines stop the recovery: a history file missing or unreadable, or
    /// the newest timeline not descending from the backup.
    #[error("the WAL of pgBackRest stanza `{stanza}` cannot bring a recovery from backup {backup} to {target}: {problem}. {}", timeline_fix(problem))]
    Timeline {
        /// The stanza.
        stanza: String,
        /// The backup.
        backup: String,
        /// The target asked for.
        target: String,
        /// What is wrong (boxed: the error stays small on every other path).
        problem: Box<wal::TimelineProblem>,
    },
    /// `pgbackrest verify` exited 0 but found damaged or missing files.
    #[error("`pgbackrest --stanza={stanza} verify` found {} in the repository: {}. Do not count on a restore that needs them: restore the files from another copy of the repository, or take a new full backup.", if files.is_empty() { "an error (status: error)".to_string() } else { format!("{} invalid file(s)", files.len()) }, invalid_list(files))]
    Damaged {
        /// The stanza.
        stanza: String,
        /// The files it named, with its reasons.
        files: Vec<pgbackrest::InvalidFile>,
    },
    /// The tool's JSON (`pgbackrest info`, `barman show-backup` …) is not what pgdrill reads.
    #[error("cannot read `{tool}`'s answer: {message}")]
    Info {
        /// The tool.
        tool: PitrTool,
        /// What did not fit.
        message: String,
    },
    /// The tool's own check (`pgbackrest verify`, `barman check-backup`) found a problem.
    #[error("`{command}` failed (exit {code}): {output}")]
    Verify {
        /// The check, as it would be typed.
        command: String,
        /// Its exit code.
        code: i32,
        /// What it said.
        output: String,
    },
    /// The restore (`pgbackrest restore`, `barman recover`) failed.
    #[error("`{tool} {}` failed (exit {code}): {output}", if *tool == PitrTool::Barman { "recover" } else { "restore" })]
    Restore {
        /// The tool.
        tool: PitrTool,
        /// Its exit code.
        code: i32,
        /// What it said.
        output: String,
    },
    /// Recovery ended without reaching its target, or reached another.
    #[error("{0}")]
    TargetMissed(String),
    /// The drill's recovery point could not be taken on the source (`--pitr-source-dsn`).
    #[error("the recovery point on the source failed at {what}: {message}. It needs a role that may lock every table IN SHARE MODE (their owner, or UPDATE on them), create the pgdrill schema, and run pg_switch_wal() (a superuser, or GRANT EXECUTE ON FUNCTION pg_switch_wal() TO it); a writer holding a table longer than 10 s also fails it: run the drill again at a quieter moment.")]
    Point {
        /// The statement that failed.
        what: String,
        /// The server's words.
        message: String,
    },
    /// The segment holding the recovery point did not reach the archive in time.
    #[error("WAL segment {segment} (the drill's recovery point) did not reach the {tool} archive within {}: the newest archived segment is {newest}. Archiving is broken or far behind: check the source's archive_command (`SELECT * FROM pg_stat_archiver`), {}, and run the drill again.", crate::duration::human(*waited), if *tool == PitrTool::Barman { "`barman check` and that `barman cron` runs" } else { "`pgbackrest check`" })]
    NotArchived {
        /// The tool.
        tool: PitrTool,
        /// The segment waited for.
        segment: String,
        /// How long.
        waited: std::time::Duration,
        /// The newest segment the archive held then.
        newest: String,
    },
    /// The machine failed the drill (spawning, the server, a directory).
    #[error(transparent)]
    Env(#[from] EnvError),
}

/// ` (N segments, A to B, between X and Y on timeline T)`: where a gap is.
fn gap_context(g: &wal::WalGap) -> String {
    let mut s = format!(" ({} segment(s)", g.missing);
    if g.missing > 1 {
        s.push_str(&format!(", {} to {}", g.first_missing, g.last_missing));
    }
    match (g.after.is_empty(), g.before.is_empty()) {
        (false, false) => s.push_str(&format!(", between {} and {}", g.after, g.before)),
        (false, true) => s.push_str(&format!(", after {}, the last archived", g.after)),
        (true, false) => s.push_str(&format!(", before {}", g.before)),
        (true, true) => {}
    }
    s.push_str(&format!(" on timeline {})", g.timeline));
    s
}

/// What to do about a timeline problem.
pub(crate) fn timeline_fix(problem: &wal::TimelineProblem) -> String {
    let file = problem.file();
    match problem {
        wal::TimelineProblem::MissingHistory { .. } => format!("Put {file} back into the archive from the promoted server's pg_wal (`pgbackrest --stanza=NAME archive-push pg_wal/{file}` there, or Barman's wals directory for Barman), or take a new full backup on the newest timeline."),
        wal::TimelineProblem::UnreadableHistory { .. } => format!("Replace {file} with the promoted server's own copy from its pg_wal, or take a new full backup on the newest timeline."),
        wal::TimelineProblem::NotAncestor { .. } | wal::TimelineProblem::ForkedBefore { .. } => "A server restored from an older point archived into this repository and began the newest timeline: take a full backup on the timeline the team's primary runs on and restore from it (--set), and keep restored copies from archiving into the team's repository.".to_string(),
    }
}

/// `FILE (REASON); …`, or what to run when the tool named no file.
fn invalid_list(files: &[pgbackrest::InvalidFile]) -> String {
    if files.is_empty() {
        return "it named no file; run it with --log-level-console=detail to see which".into();
    }
    files
        .iter()
        .map(|f| format!("{} ({})", f.file, f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Raw `pgbackrest info --output=json`, as the tool writes it (2.45).
mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Stanza {
        pub name: String,
        pub status: Status,
        #[serde(default)]
        pub backup: Vec<Backup>,
        #[serde(default)]
        pub archive: Vec<Archive>,
    }

    #[derive(Deserialize)]
    pub struct Status {
        pub code: i64,
        pub message: String,
    }

    #[derive(Deserialize)]
    pub struct Backup {
        pub label: String,
        #[serde(rename = "type")]
        pub kind: String,
        pub timestamp: Span<i64>,
        #[serde(default)]
        pub lsn: Option<Span<String>>,
        #[serde(default)]
        pub archive: Option<Span<Option<String>>>,
        pub info: Info,
        #[serde(default)]
        pub error: Option<bool>,
        #[serde(default)]
        pub database: Option<Database>,
    }

    #[derive(Deserialize)]
    pub struct Database {
        pub id: i64,
    }

    #[derive(Deserialize)]
    pub struct Span<T> {
        pub start: T,
        pub stop: T,
    }

    #[derive(Deserialize)]
    pub struct Info {
        pub size: u64,
        pub repository: Repository,
    }

    #[derive(Deserialize)]
    pub struct Repository {
        pub size: u64,
    }

    #[derive(Deserialize)]
    pub struct Archive {
        #[serde(default)]
        pub id: Option<String>,
        #[serde(default)]
        pub database: Option<Database>,
        #[serde(default)]
        pub min: Option<String>,
        #[serde(default)]
        pub max: Option<String>,
    }
}

/// Reads `pgbackrest --stanza=NAME info --output=json` for `stanza`: a stanza the repository
/// lacks is [`PitrError::NoStanza`], one without a backup [`PitrError::NoBackup`].
pub fn parse_info(json: &str, stanza: &str) -> Result<StanzaInfo, PitrError> {
    let info = parse_stanza(json, stanza)?;
    if info.backups.is_empty() {
        return Err(PitrError::NoBackup {
            tool: PitrTool::Pgbackrest,
            name: stanza.to_string(),
        });
    }
    Ok(info)
}

/// [`parse_info`] without refusing a stanza that has no backup yet (`pgdrill verify` makes
/// that a finding).
pub fn parse_stanza(json: &str, stanza: &str) -> Result<StanzaInfo, PitrError> {
    let info = |message: String| PitrError::Info {
        tool: PitrTool::Pgbackrest,
        message,
    };
    let all: Vec<raw::Stanza> = serde_json::from_str(json).map_err(|e| info(e.to_string()))?;
    let Some(s) = all.into_iter().find(|s| s.name == stanza) else {
        return Err(PitrError::NoStanza {
            tool: PitrTool::Pgbackrest,
            name: stanza.to_string(),
            message: "not in `pgbackrest info`'s list".into(),
        });
    };
    // Code 2 is "no valid backups": the stanza is there, only empty.
    if s.status.code != 0 && s.status.code != 2 {
        return Err(PitrError::NoStanza {
            tool: PitrTool::Pgbackrest,
            name: stanza.to_string(),
            message: s.status.message,
        });
    }
    let time = |t: i64| {
        DateTime::from_timestamp(t, 0)
            .ok_or_else(|| info(format!("backup timestamp {t} is out of range")))
    };
    // Each database's archive id, by the database's number.
    let archive_of = |db: &Option<raw::Database>| {
        let id = db.as_ref()?.id;
        s.archive
            .iter()
            .find(|a| a.database.as_ref().is_some_and(|d| d.id == id))
            .and_then(|a| a.id.clone())
    };
    let mut backups = Vec::new();
    for b in s.backup {
        let kind = match b.kind.as_str() {
            "full" => BackupKind::Full,
            "diff" => BackupKind::Diff,
            "incr" => BackupKind::Incr,
            other => return Err(info(format!("backup {}: unknown type {other:?}", b.label))),
        };
        let lsn = |s: &str| {
            s.parse::<Lsn>()
                .map_err(|e| info(format!("backup {}: {e}", b.label)))
        };
        let (lsn_start, lsn_stop) = match &b.lsn {
            Some(l) => (Some(lsn(&l.start)?), Some(lsn(&l.stop)?)),
            None => (None, None),
        };
        let (wal_start, wal_stop) = match b.archive {
            Some(a) => (a.start, a.stop),
            None => (None, None),
        };
        backups.push(BackupInfo {
            started_at: time(b.timestamp.start)?,
            stopped_at: time(b.timestamp.stop)?,
            label: b.label,
            kind,
            lsn_start,
            lsn_stop,
            wal_start,
            wal_stop,
            size_bytes: b.info.size,
            repo_size_bytes: b.info.repository.size,
            error: b.error.unwrap_or(false),
            archive_id: archive_of(&b.database),
        });
    }
    // The current database's archive is the last one listed.
    let archive = s.archive.into_iter().last();
    Ok(StanzaInfo {
        name: s.name,
        backups,
        wal_min: archive.as_ref().and_then(|a| a.min.clone()),
        archive_id: archive.as_ref().and_then(|a| a.id.clone()),
        wal_max: archive.and_then(|a| a.max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000002","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":22992374,"repository":{"delta":3043374,"size":3043374},"size":22992374},"label":"20261206-221124F","lsn":{"start":"0/2000028","stop":"0/2000100"},"prior":null,"reference":null,"timestamp":{"start":1796595084,"stop":1796595089},"type":"full"}],"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7716317119971409353,"version":"15"}],"name":"T","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;
    const MISSING: &str = r#"[{"archive":[],"backup":[],"cipher":"none","db":[],"name":"NOPE","repo":[{"cipher":"none","key":1,"status":{"code":1,"message":"missing stanza path"}}],"status":{"code":1,"lock":{"backup":{"held":false}},"message":"missing stanza path"}}]"#;

    #[test]
    fn info_of_pgbackrest_2_45_is_read_into_typed_backups() {
        let i = parse_info(INFO, "T").unwrap();
        assert_eq!(i.backups.len(), 1);
        let b = &i.backups[0];
        assert_eq!(b.label, "20261206-221124F");
        assert_eq!(b.kind, BackupKind::Full);
        assert_eq!(b.lsn_start, Some(Lsn(0x2000028)));
        assert_eq!(b.lsn_stop.unwrap().to_string(), "0/2000100");
        assert_eq!(b.size_bytes, 22992374);
        assert_eq!(b.repo_size_bytes, 3043374);
        assert_eq!(i.wal_max.as_deref(), Some("000000010000000000000002"));
        assert_eq!(i.archive_id.as_deref(), Some("15-1"));
        assert_eq!(b.archive_id.as_deref(), Some("15-1"));
        assert_eq!(i.segment_size(), 16 << 20);
        assert!(b.stopped_at > b.started_at);
    }

    #[test]
    fn a_target_recovery_cannot_reach_is_refused_and_a_gap_on_the_way_found() {
        let info = parse_info(INFO, "T").unwrap();
        let at = DateTime::from_timestamp(1_796_595_200, 0).unwrap();
        let seg = |n: u64| wal::ArchivedSegment {
            name: format!("0000000100000000{n:08X}"),
            file: format!("0000000100000000/0000000100000000{n:08X}-x.gz"),
            size_bytes: 1,
            archived_at: at,
        };
        let archive = wal::WalArchive {
            archive_id: "15-1".into(),
            segment_size: 16 << 20,
            segments: vec![seg(1), seg(2), seg(4)],
            ..wal::WalArchive::default()
        };
        let plan = |target| PitrPlan {
            tool: PitrTool::Pgbackrest,
            name: "T".into(),
            config: None,
            target,
            set: None,
            source: None,
        };
        let lsn = |l: &str| RecoveryTarget::lsn(l).unwrap();
        let refused = |p: &PitrPlan| {
            info.check_target(p, Some(&archive))
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&plan(lsn("0/2000000"))).contains("no backup ended before the target"));
        let mut set = plan(lsn("0/2000000"));
        set.set = Some("20261206-221124F".into());
        assert!(refused(&set).contains("before the end of backup 20261206-221124F"));
        let after = refused(&plan(lsn("0/5000000")));
        assert!(
            after.contains("after the newest archived WAL")
                && after.contains("000000010000000000000005"),
            "{after}"
        );
        // File times are whole seconds: a time within the newest segment's second may be in it.
        let time = |s: i64| RecoveryTarget::Time(at + chrono::Duration::seconds(s));
        assert!(info.check_target(&plan(time(0)), Some(&archive)).is_ok());
        assert!(refused(&plan(time(1))).contains("archived at"));
        assert!(info.check_target(&plan(time(1)), None).is_ok());
        // pgBackRest picks a backup for a time by whole seconds.
        let stop = info.backups[0].stopped_at + chrono::Duration::milliseconds(500);
        assert!(refused(&plan(RecoveryTarget::Time(stop))).contains("whole seconds"));

        let b = &info.backups[0];
        let first = |t: &RecoveryTarget| info.gap_for(b, t, &archive).map(|g| g.first_missing);
        let third = Some("000000010000000000000003".to_string());
        assert_eq!(first(&RecoveryTarget::Latest), third);
        assert_eq!(first(&lsn("0/3000010")), third);
        assert_eq!(first(&lsn("0/2FFFFFF")), None);
        assert_eq!(first(&RecoveryTarget::Immediate), None);
        assert_eq!(first(&RecoveryTarget::Xid(900)), None);
    }

    #[test]
    fn a_missing_stanza_is_named_with_the_tool_s_words() {
        let e = parse_info(MISSING, "NOPE").unwrap_err();
        assert!(
            matches!(e, PitrError::NoStanza { ref message, .. } if message == "missing stanza path")
        );
        assert!(e.to_string().contains("`NOPE`"));
    }

    #[test]
    fn targets_and_lsns_read_and_print_as_postgres_does() {
        assert_eq!(
            "16/B374D848".parse::<Lsn>().unwrap().to_string(),
            "16/B374D848"
        );
        assert!("0/3020D28".parse::<Lsn>().unwrap() < "1/0".parse::<Lsn>().unwrap());
        assert!("nonsense".parse::<Lsn>().is_err());
        let t = RecoveryTarget::time("2026-12-06 22:11:35.5+01").unwrap();
        assert_eq!(t.describe(), "time 2026-12-06 21:11:35.500000+00");
        assert!(RecoveryTarget::time("2026-12-06 22:11:35").is_err());
        assert_eq!(RecoveryTarget::named("latest"), Ok(RecoveryTarget::Latest));
        assert_eq!(RecoveryTarget::xid("745"), Ok(RecoveryTarget::Xid(745)));
        assert_eq!(RecoveryTarget::Xid(745).describe(), "xid 745");
        assert!(RecoveryTarget::xid("0").is_err());
        assert!(RecoveryTarget::xid("0/3020D28").is_err());
    }

    #[test]
    fn the_log_says_where_recovery_stopped() {
        let log = "LOG:  restored log file \"000000010000000000000003\" from archive\nLOG:  restored log file \"00000002.history\" from archive\nLOG:  consistent recovery state reached at 0/2000100\nLOG:  recovery stopping after WAL location (LSN) \"0/3020D28\"\nLOG:  redo done at 0/3020D28 system usage: CPU: user: 0.00 s\n";
        let r = RecoveryLog::read(log);
        assert!(r.consistent);
        assert_eq!(r.redo_done, Some(Lsn(0x3020D28)));
        assert_eq!(
            r.stopping.as_deref(),
            Some("recovery stopping after WAL location (LSN) \"0/3020D28\"")
        );
        assert_eq!(r.fatal, None);
        assert_eq!(r.last_restored.as_deref(), Some("000000010000000000000003"));
        assert_eq!(r.new_timeline, None);
        let promoted = RecoveryLog::read(
            "LOG:  selected new timeline ID: 3\nLOG:  archive recovery complete\n",
        );
        assert_eq!(promoted.new_timeline, Some(3));
    }
}
