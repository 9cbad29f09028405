//! `pgdrill verify --pgbackrest-stanza` and `--barman-server`: a stanza's or a Barman
//! server's archive checked as the strategy checks a dump repository, with findings of the
//! same kinds ([`crate::repo::verify::Finding`]): the newest archived WAL segment's age
//! against the RPO, the WAL from each backup's first segment to the newest with no gap (the
//! first missing segment named), and the tool's own check, each problem it reports a finding
//! (pgdrill is never weaker than the tool's check): `pgbackrest verify`'s invalid files;
//! the backups Barman marked `FAILED` and the checks `barman check` fails. The WAL part is
//! one judgement for both tools ([`WalOutcome`]). [`assess`] and [`assess_barman`] judge;
//! [`run`] and [`run_barman`] ask the tool; nothing here prints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::barman::{Barman, Check, ServerState};
use super::pgbackrest::{Pgbackrest, ToolVerify};
use super::wal::{Segment, TimelineProblem, TimelineRange, WalArchive, WalGap, WalPath};
use super::{BackupInfo, Lsn, PitrError, StanzaInfo};
use crate::repo::verify::{findings_table, gauge, labels, Finding, Kind};

/// What to check and as of when.
#[derive(Debug, Clone)]
pub struct Options {
    /// The RPO: the newest archived WAL segment's oldest allowed age.
    pub rpo: Duration,
    /// The moment evaluated ("now" unless `--at`).
    pub at: DateTime<Utc>,
}

/// One backup's WAL: from its first segment to the newest of the newest timeline descending
/// from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupWal {
    /// The backup's label.
    pub label: String,
    /// Its first WAL segment.
    pub wal_start: Option<String>,
    /// The last segment a recovery from it reaches without a gap.
    pub reachable_to: Option<String>,
    /// The first segment missing after its start, if any.
    pub first_missing: Option<String>,
    /// The tool's word on the backup: `pgbackrest verify`'s status (`valid`, `invalid` …),
    /// the status Barman records (`DONE`).
    pub tool_status: Option<String>,
    /// The timelines its recovery reads, in order (its own first).
    pub timelines: Vec<u32>,
    /// The timeline a recovery to latest from it ends on; none when it cannot end.
    pub ends_on_timeline: Option<u32>,
    /// What in the timelines stops its recovery, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_problem: Option<String>,
}

/// A timeline's switch from its parent, as its history file records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchOut {
    /// The timeline that began.
    pub timeline: u32,
    /// The one it forked off.
    pub parent: u32,
    /// Where.
    pub switch_lsn: Lsn,
    /// PostgreSQL's words on why.
    pub reason: String,
}

/// An archive's WAL judged, the same for every tool: its segments, its freshness and each
/// backup's WAL with its gaps.
#[derive(Debug, Clone, Serialize)]
pub struct WalOutcome {
    /// The WAL segment size used to find gaps, in bytes.
    pub segment_size_bytes: u64,
    /// WAL segments in the archive.
    pub wal_segments: usize,
    /// Each timeline's archived range.
    pub timelines: Vec<TimelineRange>,
    /// Each timeline switch the history files record.
    pub timeline_switches: Vec<SwitchOut>,
    /// The newest segment a recovery to latest from the newest backup reaches (across its
    /// timelines), else the most recently archived one.
    pub wal_newest: Option<String>,
    /// Its timeline.
    pub wal_newest_timeline: Option<u32>,
    /// Its age at `at` (from when it was archived), seconds.
    pub wal_newest_age_seconds: Option<u64>,
    /// The gaps after the oldest backup's start.
    pub wal_gaps: Vec<WalGap>,
    /// Each backup's WAL range.
    pub backup_wal: Vec<BackupWal>,
}

/// The result of verifying a stanza.
#[derive(Debug, Clone, Serialize)]
pub struct StanzaOutcome {
    /// The stanza.
    pub stanza: String,
    /// The moment evaluated.
    pub at: String,
    /// The current archive (`15-1`).
    pub archive_id: Option<String>,
    /// Backups in the stanza.
    pub backups: usize,
    /// The newest backup's label.
    pub newest_backup: Option<String>,
    /// Its age at `at` (from its end), seconds.
    pub newest_backup_age_seconds: Option<u64>,
    /// The current archive's WAL.
    #[serde(flatten)]
    pub wal: WalOutcome,
    /// `pgbackrest verify` said `status: ok` and named no invalid file.
    pub tool_verify_ok: bool,
    /// Files `pgbackrest verify` found invalid.
    pub invalid_files: usize,
    /// Everything wrong.
    pub findings: Vec<Finding>,
    /// True when there are no findings.
    pub ok: bool,
}

/// The result of verifying a Barman server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerOutcome {
    /// The server.
    pub server: String,
    /// The moment evaluated.
    pub at: String,
    /// Its `wals_directory`, where the segments were listed.
    pub wals_directory: String,
    /// Its finished (`DONE`) backups.
    pub backups: usize,
    /// The newest finished backup's id.
    pub newest_backup: Option<String>,
    /// Its age at `at` (from its end), seconds.
    pub newest_backup_age_seconds: Option<u64>,
    /// The backups Barman marked `FAILED`.
    pub failed_backups: Vec<String>,
    /// Its WAL.
    #[serde(flatten)]
    pub wal: WalOutcome,
    /// Every check of `barman check`.
    pub checks: Vec<Check>,
    /// How many of them failed.
    pub checks_failed: usize,
    /// Everything wrong.
    pub findings: Vec<Finding>,
    /// True when there are no findings.
    pub ok: bool,
}

fn secs(d: chrono::Duration) -> u64 {
    d.num_seconds().max(0) as u64
}

fn human(s: u64) -> String {
    humantime::format_duration(Duration::from_secs(s)).to_string()
}

/// An age for the table, `-` when there is none.
fn age(a: Option<u64>) -> String {
    a.map(human).unwrap_or_else(|| "-".into())
}

/// How one tool's archive is named in findings, and what to do about each.
struct Words<'a> {
    /// The archive's directory, before `<timeline+log>/<segment>`.
    dir: &'a str,
    /// Where to look when the newest segment is older than the RPO.
    stale_fix: &'a str,
    /// What to set up when the archive holds no segment.
    empty_fix: String,
    /// What to do about a missing segment.
    gap_fix: String,
}

/// The WAL of `backups` in `wal` judged: each backup's WAL along the timelines its recovery
/// follows ([`WalArchive::path`]: the history files from its timeline to the newest
/// descending from it) from its first segment to the newest (or to its own last segment,
/// when the archive ends before it: the backup is not even consistent then), what in the
/// timelines stops it, and the newest segment's age on the newest backup's path (the WAL a
/// recovery to `latest` reaches). Findings go to `findings`; `status` is the tool's word on a
/// backup, by label.
fn assess_wal<'b>(
    backups: impl Iterator<Item = &'b BackupInfo>,
    wal: &WalArchive,
    words: &Words,
    status: impl Fn(&str) -> Option<String>,
    opts: &Options,
    findings: &mut Vec<Finding>,
) -> WalOutcome {
    let backups: Vec<&BackupInfo> = backups.collect();
    let path_of = |b: &BackupInfo| {
        wal.path(
            b.wal_start.as_deref()?,
            b.lsn_stop.or(b.lsn_start),
            b.wal_stop.as_deref(),
        )
    };
    let paths: Vec<Option<WalPath>> = backups.iter().map(|b| path_of(b)).collect();

    // Freshness: every commit since the newest segment was archived is only on the source.
    // The newest is the one a recovery to latest from the newest backup reaches, across its
    // timelines; a segment of a timeline it never reaches does not count.
    let newest = match paths.iter().rev().flatten().next() {
        Some(p) => wal.path_newest(p),
        None => wal.newest(),
    };
    let wal_age = newest.map(|n| secs(opts.at - n.archived_at));
    match (newest, wal_age) {
        (Some(n), Some(age)) if age > opts.rpo.as_secs() => findings.push(Finding {
            kind: Kind::Stale,
            subject: format!("{}/{}", words.dir, n.file),
            message: format!(
                "the newest archived WAL segment {} was archived {} ago, longer than the RPO of {}: {} and set archive_timeout below the RPO so a quiet database still archives",
                n.name,
                human(age),
                humantime::format_duration(opts.rpo),
                words.stale_fix,
            ),
            start: None,
            seconds: Some(age),
        }),
        (None, _) if wal.segments.is_empty() => findings.push(Finding {
            kind: Kind::NoBackup,
            subject: words.dir.to_string(),
            message: format!("no WAL segment in the archive: {}", words.empty_fix),
            start: None,
            seconds: None,
        }),
        _ => {}
    }

    // Continuity: each backup's WAL, from its first segment along its timelines.
    let mut gaps: Vec<WalGap> = Vec::new();
    let mut backup_wal = Vec::new();
    let mut problems: Vec<(TimelineProblem, Vec<String>)> = Vec::new();
    for (b, path) in backups.iter().zip(&paths) {
        let found = path.as_ref().map(|p| wal.path_gaps(p)).unwrap_or_default();
        let first = found.first();
        let problem = path.as_ref().and_then(|p| p.problem.clone());
        backup_wal.push(BackupWal {
            label: b.label.clone(),
            wal_start: b.wal_start.clone(),
            reachable_to: match first {
                Some(g) if g.after.is_empty() => None,
                Some(g) => Some(g.after.clone()),
                None => path
                    .as_ref()
                    .and_then(|p| wal.path_newest(p))
                    .map(|s| s.name.clone()),
            },
            first_missing: first.map(|g| g.first_missing.clone()),
            tool_status: status(&b.label),
            timelines: path.as_ref().map(|p| p.timelines()).unwrap_or_default(),
            ends_on_timeline: path
                .as_ref()
                .filter(|p| !p.problem.as_ref().is_some_and(|x| x.is_fatal()))
                .map(|p| p.timeline),
            timeline_problem: problem.as_ref().map(|p| p.to_string()),
        });
        if let Some(problem) = problem {
            match problems.iter_mut().find(|(p, _)| *p == problem) {
                Some((_, labels)) => labels.push(b.label.clone()),
                None => problems.push((problem, vec![b.label.clone()])),
            }
        }
        for g in found {
            if !gaps.iter().any(|x| x.first_missing == g.first_missing) {
                gaps.push(g);
            }
        }
    }
    gaps.sort_by(|a, b| a.first_missing.cmp(&b.first_missing));
    for g in &gaps {
        let cut: Vec<&str> = backup_wal
            .iter()
            .filter(|b| b.first_missing.as_deref() == Some(g.first_missing.as_str()))
            .map(|b| b.label.as_str())
            .collect();
        findings.push(Finding {
            kind: Kind::Gap,
            subject: format!(
                "{}/{}/{}",
                words.dir,
                &g.first_missing[..16],
                g.first_missing
            ),
            message: format!(
                "WAL segment {} is missing{}: a recovery from {} stops {}. {}",
                g.first_missing,
                super::gap_context(g),
                if cut.is_empty() {
                    "any backup before it".to_string()
                } else {
                    format!("backup {}", cut.join(", "))
                },
                if g.after.is_empty() {
                    "before its first segment: it cannot be restored".to_string()
                } else {
                    format!("at {} and loses everything after", g.after)
                },
                words.gap_fix,
            ),
            start: Some(g.first_missing.clone()),
            seconds: None,
        });
    }
    // The timelines: a history file missing or unreadable, or a newest timeline that does not
    // descend from a backup, named by the history file.
    for (problem, labels) in &problems {
        let kind = match problem {
            TimelineProblem::MissingHistory { .. } => Kind::MissingFile,
            TimelineProblem::UnreadableHistory { .. } => Kind::Unreadable,
            TimelineProblem::NotAncestor { .. } | TimelineProblem::ForkedBefore { .. } => Kind::Gap,
        };
        findings.push(Finding {
            kind,
            subject: format!("{}/{}", words.dir, problem.file()),
            message: format!(
                "backup {}: {problem}. {}",
                labels.join(", "),
                super::timeline_fix(problem)
            ),
            start: None,
            seconds: None,
        });
    }
    WalOutcome {
        segment_size_bytes: wal.segment_size,
        wal_segments: wal.segments.len(),
        timelines: wal.timelines(),
        timeline_switches: wal
            .history
            .switches()
            .into_iter()
            .map(|(timeline, s)| SwitchOut {
                timeline,
                parent: s.parent,
                switch_lsn: s.switch,
                reason: s.reason.clone(),
            })
            .collect(),
        wal_newest: newest.map(|n| n.name.clone()),
        wal_newest_timeline: newest
            .and_then(|n| Segment::parse(&n.name, wal.segment_size))
            .map(|s| s.timeline),
        wal_newest_age_seconds: wal_age,
        wal_gaps: gaps,
        backup_wal,
    }
}

impl WalOutcome {
    /// The table's lines for the archive (named `archive`), each timeline, each backup's WAL
    /// (with `tool`'s word on it) and the gaps.
    fn table(&self, s: &mut String, archive: &str, tool: &str) {
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "  WAL archive       {archive} ({} segments; newest {}, archived {} ago)",
            self.wal_segments,
            self.wal_newest.as_deref().unwrap_or("-"),
            age(self.wal_newest_age_seconds)
        );
        for t in &self.timelines {
            let _ = writeln!(
                s,
                "  timeline {:<8} {} – {} ({} segments)",
                t.timeline, t.first, t.last, t.segments
            );
        }
        for w in &self.timeline_switches {
            let _ = writeln!(
                s,
                "  timeline {:<8} forked off timeline {} at {} ({})",
                w.timeline, w.parent, w.switch_lsn, w.reason
            );
        }
        for b in &self.backup_wal {
            let _ = writeln!(
                s,
                "  backup {:<18} WAL {} – {}{}{}{}",
                b.label,
                b.wal_start.as_deref().unwrap_or("-"),
                b.reachable_to.as_deref().unwrap_or("-"),
                if b.timelines.len() > 1 {
                    let t: Vec<String> = b.timelines.iter().map(u32::to_string).collect();
                    format!(" (timelines {})", t.join(" → "))
                } else {
                    String::new()
                },
                b.first_missing
                    .as_ref()
                    .map(|m| format!(", first missing {m}"))
                    .unwrap_or_default(),
                b.tool_status
                    .as_ref()
                    .map(|t| format!(", {tool}: {t}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s, "  WAL gaps          {}", self.wal_gaps.len());
    }

    /// The `pgdrill_wal_*` gauges, labelled with `l`.
    fn prometheus(&self, s: &mut String, l: &str) {
        let metrics = [
            (
                "pgdrill_wal_newest_age_seconds",
                "Age of the newest archived WAL segment.",
                sample(self.wal_newest_age_seconds),
            ),
            (
                "pgdrill_wal_gaps",
                "Gaps in the WAL from the oldest backup to the newest segment.",
                self.wal_gaps.len().to_string(),
            ),
            (
                "pgdrill_wal_segments",
                "WAL segments in the archive.",
                self.wal_segments.to_string(),
            ),
            (
                "pgdrill_wal_newest_timeline",
                "Timeline of the newest WAL segment a recovery to latest reaches.",
                sample(self.wal_newest_timeline.map(u64::from)),
            ),
        ];
        for (name, help, v) in metrics {
            gauge(s, name, help, l, &v);
        }
    }
}

/// An optional number as a Prometheus sample (`NaN` when there is none).
fn sample(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "NaN".into())
}

/// Asks the tool (`info`, `repo-ls` of the current archive, `verify`) and judges
/// ([`assess`]). A stanza the repository lacks, a configuration it refuses, or the tool
/// missing is an error; everything about the backups and the WAL is a finding.
pub async fn run(tool: &Pgbackrest, opts: &Options) -> Result<StanzaOutcome, PitrError> {
    let info = tool.stanza_info().await?;
    let wal = tool.wal_archive(&info).await?;
    let checked = tool.verify().await?;
    Ok(assess(&info, &wal, &checked, opts))
}

/// The findings about a stanza from what the tool said: `info`, its archive's listing and
/// `pgbackrest verify`.
pub fn assess(
    info: &StanzaInfo,
    wal: &WalArchive,
    checked: &ToolVerify,
    opts: &Options,
) -> StanzaOutcome {
    let stanza = info.name.as_str();
    let archive_dir = format!("archive/{stanza}/{}", wal.archive_id);
    let mut findings = Vec::new();
    let newest_backup = info.backups.last();
    if newest_backup.is_none() {
        findings.push(Finding {
            kind: Kind::NoBackup,
            subject: format!("backup/{stanza}"),
            message: format!("no backup in the stanza: run `pgbackrest --stanza={stanza} backup --type=full` and schedule it (deploy/systemd/pgbackrest-*.timer)"),
            start: None,
            seconds: None,
        });
    }
    for b in info.backups.iter().filter(|b| b.error) {
        findings.push(Finding {
            kind: Kind::Checksum,
            subject: format!("backup/{stanza}/{}", b.label),
            message: "pgBackRest found page checksum errors while taking this backup (`error: true` in `pgbackrest info`): the database had damaged pages; see `pgbackrest info --set` and take a new backup once they are repaired".into(),
            start: None,
            seconds: None,
        });
    }

    let words = Words {
        dir: &archive_dir,
        stale_fix: "check the source's archiving (`pg_stat_archiver`: last_failed_wal, failed_count; archive_command)",
        empty_fix: format!("check archive_mode=on and archive_command (`pgbackrest --stanza={stanza} archive-push %p`) on the source, then `pgbackrest --stanza={stanza} check`"),
        gap_fix: "Push it again from the source's pg_wal if it is still there, or take a new full backup".into(),
    };
    let wal_outcome = assess_wal(
        info.current_backups(),
        wal,
        &words,
        |label| {
            checked
                .backups
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, s)| s.clone())
        },
        opts,
        &mut findings,
    );

    // The tool's own check: whatever it finds, pgdrill reports.
    for f in &checked.invalid {
        let kind = if f.reason.contains("checksum") || f.reason.contains("size") {
            Kind::Checksum
        } else if f.reason.contains("missing") {
            Kind::MissingFile
        } else {
            Kind::Unreadable
        };
        // Archive files are named from the archive id on, backup files from the label on.
        let subject =
            if !wal.archive_id.is_empty() && f.file.starts_with(&format!("{}/", wal.archive_id)) {
                format!("archive/{stanza}/{}", f.file)
            } else {
                format!("backup/{stanza}/{}", f.file)
            };
        findings.push(Finding {
            kind,
            subject,
            message: format!(
                "`pgbackrest verify` found it invalid: {}. A restore that needs it fails: restore the file from another copy of the repository, or take a new full backup",
                f.reason
            ),
            start: None,
            seconds: None,
        });
    }
    if !checked.ok && checked.invalid.is_empty() {
        findings.push(Finding {
            kind: Kind::Unreadable,
            subject: format!("backup/{stanza}"),
            message: format!("`pgbackrest --stanza={stanza} verify` did not say `status: ok` and named no file: run it with --log-level-console=detail to see why"),
            start: None,
            seconds: None,
        });
    }

    StanzaOutcome {
        stanza: stanza.to_string(),
        at: opts.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        archive_id: info.archive_id.clone(),
        backups: info.backups.len(),
        newest_backup: newest_backup.map(|b| b.label.clone()),
        newest_backup_age_seconds: newest_backup.map(|b| secs(opts.at - b.stopped_at)),
        wal: wal_outcome,
        tool_verify_ok: checked.ok,
        invalid_files: checked.invalid.len(),
        ok: findings.is_empty(),
        findings,
    }
}

impl StanzaOutcome {
    /// The table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "pgBackRest stanza {} as of {}", self.stanza, self.at);
        let _ = writeln!(
            s,
            "  backups           {} (newest {}, age {})",
            self.backups,
            self.newest_backup.as_deref().unwrap_or("-"),
            age(self.newest_backup_age_seconds)
        );
        self.wal.table(
            &mut s,
            self.archive_id.as_deref().unwrap_or("-"),
            "pgbackrest verify",
        );
        let _ = writeln!(
            s,
            "  pgbackrest verify {} ({} invalid files)",
            if self.tool_verify_ok { "ok" } else { "error" },
            self.invalid_files
        );
        findings_table(&mut s, &self.findings);
        s
    }

    /// The Prometheus textfile lines, labelled `{tool="pgbackrest",stanza="NAME"}` (beside
    /// the dump repo's `pgdrill_backup_*` and a Barman server's).
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let l = labels(&[("tool", "pgbackrest"), ("stanza", &self.stanza)]);
        self.wal.prometheus(&mut s, &l);
        Tally {
            prefix: "pgdrill_pgbackrest",
            what: "the stanza",
            backups: self.backups,
            newest_backup_age_seconds: self.newest_backup_age_seconds,
            findings: self.findings.len(),
            ok: self.ok,
        }
        .prometheus(
            &mut s,
            &l,
            [(
                "invalid_files",
                "Files pgbackrest verify found invalid.",
                self.invalid_files.to_string(),
            )],
        );
        s
    }
}

/// What every tool's verify counts, as gauges named `<prefix>_…`.
struct Tally<'a> {
    /// `pgdrill_pgbackrest`, `pgdrill_barman`.
    prefix: &'a str,
    /// What was verified, for the help lines (`the stanza`).
    what: &'a str,
    backups: usize,
    newest_backup_age_seconds: Option<u64>,
    findings: usize,
    ok: bool,
}

impl Tally<'_> {
    /// `<prefix>_backups`, `_newest_backup_age_seconds`, the tool's `own` (name after the
    /// prefix, help, value), `_findings` and `_verify_ok`, each labelled `l`.
    fn prometheus<const N: usize>(&self, s: &mut String, l: &str, own: [(&str, &str, String); N]) {
        let (p, what) = (self.prefix, self.what);
        let mut metrics = vec![
            (
                "backups",
                format!("Finished backups of {what}."),
                self.backups.to_string(),
            ),
            (
                "newest_backup_age_seconds",
                format!("Age of the newest backup of {what} (from its end)."),
                sample(self.newest_backup_age_seconds),
            ),
        ];
        metrics.extend(own.map(|(name, help, v)| (name, help.to_string(), v)));
        metrics.push((
            "findings",
            format!("Findings of the last verify of {what}."),
            self.findings.to_string(),
        ));
        metrics.push((
            "verify_ok",
            format!("1 when verify found nothing in {what}."),
            u8::from(self.ok).to_string(),
        ));
        for (name, help, v) in metrics {
            gauge(s, &format!("{p}_{name}"), &help, l, &v);
        }
    }
}

/// Asks Barman (`list-backups`, `show-backup` of each finished backup, `show-servers`, the
/// `wals` directory's files, `check`: [`Barman::state`]) and judges ([`assess_barman`]). A
/// server Barman does not know, a configuration it cannot read, or `barman` missing is an
/// error; everything about the backups, the WAL and Barman's checks is a finding. Nothing
/// is written: `barman check-backup` is not run, since it rewrites the backup's
/// `backup.info` (and marks a backup `FAILED` for good when a segment is missing); its check,
/// every segment from the backup's first to its last, is part of the gap check here.
pub async fn run_barman(tool: &Barman, opts: &Options) -> Result<ServerOutcome, PitrError> {
    let state = tool.state().await?;
    Ok(assess_barman(&state, opts))
}

/// What to do about a `barman check` that failed, by its name.
fn check_fix(name: &str, server: &str) -> String {
    match name {
        "receive_wal_running" | "pg_receivexlog" | "replication_slot" | "postgresql_streaming" => format!(
            "WAL is not streaming into the catalogue: `barman cron` (every minute, deploy/systemd/barman-cron.timer) starts `barman receive-wal {server}`; a missing slot is made by `barman receive-wal --create-slot {server}`"
        ),
        "postgresql" => format!("Barman cannot connect to the source: check `conninfo` of [{server}] in Barman's configuration and that the source is up"),
        "wal_archive" | "wal_maximum_age" => format!("no recent WAL reached Barman: check the source's streaming or archive_command, then `barman switch-wal --archive {server}`"),
        "failed_backups" => format!("see the FAILED backups (`barman list-backups {server}`), then `barman delete {server} ID` them once a newer backup is DONE"),
        "minimum_redundancy_requirements" | "backup_maximum_age" => format!("take a backup (`barman backup {server}`) and schedule it (deploy/systemd/barman-backup.timer)"),
        _ => format!("`barman check {server}` says more"),
    }
}

/// The findings about a Barman server from what Barman said and the files of its `wals`
/// directory.
pub fn assess_barman(state: &ServerState, opts: &Options) -> ServerOutcome {
    let server = state.server.as_str();
    let wals = state.directories.wals.display().to_string();
    let base = state.directories.basebackups.display().to_string();
    let mut findings = Vec::new();
    let newest_backup = state.info.backups.last();
    if newest_backup.is_none() {
        findings.push(Finding {
            kind: Kind::NoBackup,
            subject: base.clone(),
            message: format!("no finished backup of Barman server `{server}`: run `barman backup {server}` and schedule it (deploy/systemd/barman-backup.timer)"),
            start: None,
            seconds: None,
        });
    }
    for b in &state.listed {
        let subject = format!("{base}/{}", b.id);
        let age = b.ended_at.map(|t| secs(opts.at - t));
        match b.status.as_str() {
            "FAILED" => findings.push(Finding {
                kind: Kind::ToolCheck,
                subject,
                message: format!(
                    "Barman marked backup {} FAILED{}: `barman recover` refuses it. When a WAL segment it needs is missing, put it back into {wals} if a copy exists; else take a new backup (`barman backup {server}`) and `barman delete {server} {}`",
                    b.id,
                    b.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
                    b.id,
                ),
                start: None,
                seconds: None,
            }),
            // Barman's cron moves a backup on once its last segment arrives; one still
            // waiting after the RPO lacks WAL.
            "WAITING_FOR_WALS" if age.is_some_and(|a| a > opts.rpo.as_secs()) => {
                findings.push(Finding {
                    kind: Kind::ToolCheck,
                    subject,
                    message: format!(
                        "backup {} ended {} ago and Barman still waits for the WAL that makes it consistent (WAITING_FOR_WALS): check that `barman cron` runs every minute and that WAL reaches Barman (`barman check {server}`)",
                        b.id,
                        human(age.unwrap_or_default()),
                    ),
                    start: None,
                    seconds: age,
                })
            }
            _ => {}
        }
    }

    let words = Words {
        dir: &wals,
        stale_fix: &format!("check that WAL reaches Barman (`barman check {server}`: receive-wal running, replication slot; the source's archive_command if it archives) and that `barman cron` runs every minute"),
        empty_fix: format!("check the source's streaming to Barman (`streaming_archiver = on`, `barman receive-wal {server}` started by `barman cron`) or its archive_command, then `barman switch-wal --archive {server}`"),
        gap_fix: format!("Put it back into {wals} from the source's pg_wal or another copy if it is still there, or take a new backup (`barman backup {server}`)"),
    };
    let status = |id: &str| {
        state
            .listed
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.status.clone())
    };
    let wal_outcome = assess_wal(
        state.info.backups.iter(),
        &state.wal,
        &words,
        status,
        opts,
        &mut findings,
    );

    // Barman's own check: every check it fails, pgdrill reports, naming it.
    for c in state.checks.iter().filter(|c| !c.ok) {
        findings.push(Finding {
            kind: Kind::ToolCheck,
            subject: format!("barman check {server}: {}", c.name),
            message: format!(
                "`barman check {server}` says {} FAILED{}: {}",
                c.name,
                if c.hint.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.hint)
                },
                check_fix(&c.name, server),
            ),
            start: None,
            seconds: None,
        });
    }

    let failed_backups: Vec<String> = state
        .listed
        .iter()
        .filter(|b| b.status == "FAILED")
        .map(|b| b.id.clone())
        .collect();
    ServerOutcome {
        server: server.to_string(),
        at: opts.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wals_directory: wals.clone(),
        backups: state.info.backups.len(),
        newest_backup: newest_backup.map(|b| b.label.clone()),
        newest_backup_age_seconds: newest_backup.map(|b| secs(opts.at - b.stopped_at)),
        failed_backups,
        wal: wal_outcome,
        checks_failed: state.checks.iter().filter(|c| !c.ok).count(),
        checks: state.checks.clone(),
        ok: findings.is_empty(),
        findings,
    }
}

impl ServerOutcome {
    /// The table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "Barman server {} as of {}", self.server, self.at);
        let _ = writeln!(
            s,
            "  backups           {} finished (newest {}, age {}), {} failed",
            self.backups,
            self.newest_backup.as_deref().unwrap_or("-"),
            age(self.newest_backup_age_seconds),
            self.failed_backups.len()
        );
        self.wal
            .table(&mut s, &self.wals_directory, "barman status");
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        let _ = writeln!(
            s,
            "  barman check      {} of {} checks failed{}",
            failed.len(),
            self.checks.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", failed.join(", "))
            }
        );
        findings_table(&mut s, &self.findings);
        s
    }

    /// The Prometheus textfile lines, labelled `{tool="barman",server="NAME"}` (beside the
    /// dump repo's `pgdrill_backup_*` and a stanza's), and one `pgdrill_barman_check_ok` per
    /// check of `barman check`, labelled with its name too.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let l = labels(&[("tool", "barman"), ("server", &self.server)]);
        self.wal.prometheus(&mut s, &l);
        Tally {
            prefix: "pgdrill_barman",
            what: "the Barman server",
            backups: self.backups,
            newest_backup_age_seconds: self.newest_backup_age_seconds,
            findings: self.findings.len(),
            ok: self.ok,
        }
        .prometheus(
            &mut s,
            &l,
            [
                (
                    "failed_backups",
                    "Backups Barman marked FAILED.",
                    self.failed_backups.len().to_string(),
                ),
                (
                    "checks_failed",
                    "Checks of barman check that failed.",
                    self.checks_failed.to_string(),
                ),
            ],
        );
        if !self.checks.is_empty() {
            s.push_str("# HELP pgdrill_barman_check_ok 1 when this check of barman check passed.\n# TYPE pgdrill_barman_check_ok gauge\n");
            for c in &self.checks {
                let l = labels(&[
                    ("tool", "barman"),
                    ("server", &self.server),
                    ("check", &c.name),
                ]);
                s.push_str(&format!("pgdrill_barman_check_ok{l} {}\n", u8::from(c.ok)));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pitr::pgbackrest::InvalidFile;
    use crate::pitr::wal::ArchivedSegment;

    const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000006","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":22992374,"repository":{"delta":3043374,"size":3043374},"size":22992374},"label":"20261206-221124F","lsn":{"start":"0/2000028","stop":"0/2000100"},"prior":null,"reference":null,"timestamp":{"start":1796595084,"stop":1796595089},"type":"full"}],"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7716317119971409353,"version":"15"}],"name":"T","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    fn archive(numbers: &[u64], archived_at: DateTime<Utc>) -> WalArchive {
        WalArchive {
            archive_id: "15-1".into(),
            segment_size: 16 << 20,
            segments: numbers
                .iter()
                .map(|n| {
                    let name = format!("0000000100000000{n:08X}");
                    ArchivedSegment {
                        file: format!(
                            "0000000100000000/{name}-0aff43259eb81fc2c4f73aed112d09bec775f573.gz"
                        ),
                        name,
                        size_bytes: 100,
                        archived_at,
                    }
                })
                .collect(),
            ..WalArchive::default()
        }
    }

    fn ok_verify() -> ToolVerify {
        ToolVerify {
            ok: true,
            backups: vec![("20261206-221124F".into(), "valid".into())],
            ..ToolVerify::default()
        }
    }

    #[test]
    fn a_healthy_stanza_has_no_finding_and_its_metrics_carry_the_stanza() {
        let info = crate::pitr::parse_info(INFO, "T").unwrap();
        let at = DateTime::from_timestamp(1_796_600_000, 0).unwrap();
        let wal = archive(&[1, 2, 3, 4, 5, 6], at - chrono::Duration::seconds(30));
        let opts = Options {
            rpo: Duration::from_secs(900),
            at,
        };
        let o = assess(&info, &wal, &ok_verify(), &opts);
        assert!(o.ok, "{:?}", o.findings);
        assert_eq!(o.wal.wal_newest_age_seconds, Some(30));
        assert_eq!(
            o.wal.backup_wal[0].reachable_to.as_deref(),
            Some("000000010000000000000006")
        );
        assert_eq!(o.wal.backup_wal[0].tool_status.as_deref(), Some("valid"));
        let prom = o.prometheus();
        assert!(
            prom.contains("pgdrill_wal_newest_age_seconds{tool=\"pgbackrest\",stanza=\"T\"} 30\n"),
            "{prom}"
        );
        assert!(prom.contains("pgdrill_wal_gaps{tool=\"pgbackrest\",stanza=\"T\"} 0\n"));
        assert!(prom.contains("pgdrill_pgbackrest_verify_ok{tool=\"pgbackrest\",stanza=\"T\"} 1\n"));
        assert!(o.table().contains("OK: no findings"));
    }

    #[test]
    fn a_gap_old_wal_and_the_tool_s_invalid_files_are_findings_naming_them() {
        let info = crate::pitr::parse_info(INFO, "T").unwrap();
        let at = DateTime::from_timestamp(1_796_600_000, 0).unwrap();
        let wal = archive(&[1, 2, 3, 5, 6], at - chrono::Duration::hours(1));
        let checked = ToolVerify {
            ok: false,
            invalid: vec![InvalidFile {
                file: "15-1/0000000100000000/000000010000000000000006-1cdce788689a70a60108440584941cb70ad621e2.gz".into(),
                reason: "[29] raised from local-1 protocol: unexpected eof in compressed data".into(),
            }],
            ..ToolVerify::default()
        };
        let opts = Options {
            rpo: Duration::from_secs(900),
            at,
        };
        let o = assess(&info, &wal, &checked, &opts);
        assert!(!o.ok);
        let kinds: Vec<(Kind, &str)> = o
            .findings
            .iter()
            .map(|f| (f.kind, f.subject.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Kind::Stale, "archive/T/15-1/0000000100000000/000000010000000000000006-0aff43259eb81fc2c4f73aed112d09bec775f573.gz"),
                (Kind::Gap, "archive/T/15-1/0000000100000000/000000010000000000000004"),
                (Kind::Unreadable, "archive/T/15-1/0000000100000000/000000010000000000000006-1cdce788689a70a60108440584941cb70ad621e2.gz"),
            ]
        );
        assert!(
            o.findings[1]
                .message
                .contains("between 000000010000000000000003 and 000000010000000000000005"),
            "{}",
            o.findings[1].message
        );
        assert!(o.findings[1].message.contains("backup 20261206-221124F"));
        assert_eq!(o.findings[0].seconds, Some(3600));
        assert_eq!(
            o.wal.backup_wal[0].first_missing.as_deref(),
            Some("000000010000000000000004")
        );
        assert_eq!(
            o.wal.backup_wal[0].reachable_to.as_deref(),
            Some("000000010000000000000003")
        );
        assert!(o
            .prometheus()
            .contains("pgdrill_wal_gaps{tool=\"pgbackrest\",stanza=\"T\"} 1\n"));
        assert!(o.table().contains("FINDINGS: 3"));
        // A tool that says error without a file is still a finding.
        let vague = ToolVerify::default();
        let o = assess(&info, &archive(&[2], at), &vague, &opts);
        assert_eq!(o.findings.len(), 1);
        assert_eq!(o.findings[0].kind, Kind::Unreadable);
    }

    #[test]
    fn a_newest_timeline_that_forked_off_before_the_backup_is_a_finding_naming_its_history() {
        let info = crate::pitr::parse_info(INFO, "T").unwrap();
        let at = DateTime::from_timestamp(1_796_600_000, 0).unwrap();
        let mut wal = archive(&[1, 2, 3], at - chrono::Duration::seconds(30));
        // A copy restored to 0/1800000 promoted and archived into the stanza: timeline 2
        // forked off before the backup (0/2000028–0/2000100) and PostgreSQL would follow it.
        wal.segments.push(ArchivedSegment {
            name: "000000020000000000000001".into(),
            file: "0000000200000000/000000020000000000000001-x.gz".into(),
            size_bytes: 100,
            archived_at: at,
        });
        wal.history.files.insert(2, "00000002.history".into());
        wal.history
            .read(2, "1\t0/1800000\tbefore 2026-12-06 22:00:00+00\n");
        let opts = Options {
            rpo: Duration::from_secs(900),
            at,
        };
        let o = assess(&info, &wal, &ok_verify(), &opts);
        let f: Vec<(Kind, &str)> = o
            .findings
            .iter()
            .map(|f| (f.kind, f.subject.as_str()))
            .collect();
        assert_eq!(f, [(Kind::Gap, "archive/T/15-1/00000002.history")]);
        assert!(
            o.findings[0]
                .message
                .contains("forked off the backup's timeline 1 at 0/1800000"),
            "{}",
            o.findings[0].message
        );
        assert_eq!(o.wal.backup_wal[0].ends_on_timeline, None);
        assert!(o.wal.backup_wal[0].timeline_problem.is_some());
    }

    /// A Barman server as `Barman::state` reads it: one finished backup starting in segment 3
    /// and ending in it, the segments `numbers` in its wals directory, `barman check`'s
    /// `checks`.
    fn server(
        numbers: &[u64],
        archived_at: DateTime<Utc>,
        checks: &[(&str, bool, &str)],
    ) -> ServerState {
        const SHOWN: &str = r#"{"pg": {"backup_id": "20261207T022758", "base_backup_information": {"begin_lsn": "0/3000028", "begin_time": "2026-12-07 02:27:58.883012+00:00", "begin_wal": "000000010000000000000003", "disk_usage_bytes": 23179521, "end_lsn": "0/3000100", "end_time": "2026-12-07 02:28:05.467222+00:00", "end_wal": "000000010000000000000003", "timeline": 1}, "status": "DONE", "tablespaces": [], "wal_information": {"last_available": "000000010000000000000004"}}}"#;
        let shown =
            crate::pitr::barman::parse_backup(&serde_json::from_str(SHOWN).unwrap(), "pg").unwrap();
        let mut wal = archive(numbers, archived_at);
        wal.archive_id = String::new();
        for s in &mut wal.segments {
            s.file = format!("0000000100000000/{}", s.name);
        }
        ServerState {
            server: "pg".into(),
            listed: vec![crate::pitr::barman::ListedBackup {
                id: "20261207T022758".into(),
                status: "DONE".into(),
                ended_at: Some(shown.info.stopped_at),
                error: None,
            }],
            info: StanzaInfo {
                name: "pg".into(),
                wal_min: shown.info.wal_start.clone(),
                wal_max: None,
                archive_id: None,
                backups: vec![shown.info],
            },
            directories: crate::pitr::barman::Directories {
                basebackups: "/b/pg/base".into(),
                wals: "/b/pg/wals".into(),
            },
            wal,
            checks: checks
                .iter()
                .map(|(name, ok, hint)| Check {
                    name: name.to_string(),
                    ok: *ok,
                    hint: hint.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_healthy_barman_server_has_no_finding_and_its_metrics_carry_tool_and_server() {
        let at = DateTime::from_timestamp(1_796_600_000, 0).unwrap();
        let opts = Options {
            rpo: Duration::from_secs(900),
            at,
        };
        let state = server(
            &[3, 4, 5],
            at - chrono::Duration::seconds(40),
            &[("wal_level", true, "")],
        );
        let o = assess_barman(&state, &opts);
        assert!(o.ok, "{:?}", o.findings);
        assert_eq!(o.wal.wal_newest_age_seconds, Some(40));
        assert_eq!(
            o.wal.backup_wal[0].reachable_to.as_deref(),
            Some("000000010000000000000005")
        );
        assert_eq!(o.wal.backup_wal[0].tool_status.as_deref(), Some("DONE"));
        let prom = o.prometheus();
        for line in [
            "pgdrill_wal_newest_age_seconds{tool=\"barman\",server=\"pg\"} 40\n",
            "pgdrill_wal_gaps{tool=\"barman\",server=\"pg\"} 0\n",
            "pgdrill_barman_backups{tool=\"barman\",server=\"pg\"} 1\n",
            "pgdrill_barman_verify_ok{tool=\"barman\",server=\"pg\"} 1\n",
            "pgdrill_barman_check_ok{tool=\"barman\",server=\"pg\",check=\"wal_level\"} 1\n",
        ] {
            assert!(prom.contains(line), "{line} not in {prom}");
        }
        assert_eq!(
            prom.matches("# TYPE pgdrill_barman_check_ok gauge").count(),
            1
        );
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(
            json["wal_segments"], 3,
            "the WAL's fields sit beside the server's: {json}"
        );
        assert!(o.table().contains("OK: no findings"));
    }

    #[test]
    fn a_barman_server_s_wal_follows_its_history_file_onto_timeline_2() {
        let at = DateTime::from_timestamp(1_796_600_000, 0).unwrap();
        let opts = Options {
            rpo: Duration::from_secs(900),
            at,
        };
        // Timeline 1 to segment 5, then timeline 2 from 6 (the switch at 0/6000000), its
        // history file beside the hash directories, as Barman's wals directory holds them.
        let mut state = server(&[3, 4, 5], at - chrono::Duration::hours(3), &[]);
        for n in [6u64, 7] {
            let name = format!("0000000200000000{n:08X}");
            state.wal.segments.push(ArchivedSegment {
                file: format!("0000000200000000/{name}"),
                name,
                size_bytes: 16 << 20,
                archived_at: at - chrono::Duration::seconds(20),
            });
        }
        state.wal.history.files.insert(2, "00000002.history".into());
        state
            .wal
            .history
            .read(2, "1\t0/6000000\tno recovery target specified\n");
        let o = assess_barman(&state, &opts);
        assert!(o.ok, "{:?}", o.findings);
        assert_eq!(
            o.wal.wal_newest.as_deref(),
            Some("000000020000000000000007")
        );
        assert_eq!(o.wal.wal_newest_timeline, Some(2));
        assert_eq!(o.wal.backup_wal[0].timelines, [1, 2]);
        assert_eq!(o.wal.backup_wal[0].ends_on_timeline, Some(2));
        assert_eq!(
            o.wal.timeline_switches[0].switch_lsn.to_string(),
            "0/6000000"
        );
        assert!(o
            .prometheus()
            .contains("pgdrill_wal_newest_timeline{tool=\"barman\",server=\"pg\"} 2\n"));
        assert!(o.table().contains("(timelines 1 → 2)"), "{}", o.table());

        // A segment of timeline 2 gone: the gap is named on timeline 2.
        let mut gapped = state.clone();
        gapped
            .wal
            .segments
            .retain(|s| s.name != "000000020000000000000006");
        let o = assess_barman(&gapped, &opts);
        assert_eq!(o.wal.wal_gaps[0].first_missing, "000000020000000000000006");
        assert_eq!(o.wal.wal_gaps[0].after, "000000010000000000000005");
        assert_eq!(o.findings[0].kind, Kind::Gap);

        // The history file gone: a missing file naming it, and timeline 1's newest segment,
        // three hours old, is where latest ends: stale.
        state.wal.history = Default::default();
        let o = assess_barman(&state, &opts);
        let kinds: Vec<(Kind, &str)> = o
            .findings
            .iter()
            .map(|f| (f.kind, f.subject.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    Kind::Stale,
                    "/b/pg/wals/0000000100000000/000000010000000000000005"
                ),
                (Kind::MissingFile, "/b/pg/wals/00000002.history"),
            ]
        );
        assert!(o.findings[1].message.contains("backup 20261207T022758"));
        assert_eq!(o.wal.backup_wal[0].ends_on_timeline, Some(1));
    }

    #[test]
    fn a_barman_gap_old_wal_a_failed_backup_and_a_failed_check_are_findings_naming_them() {
        let at = DateTime::from_timestamp(1_796_600_000, 0).unwrap();
        let opts = Options {
            rpo: Duration::from_secs(900),
            at,
        };
        let mut state = server(
            &[3, 5],
            at - chrono::Duration::hours(2),
            &[
                (
                    "receive_wal_running",
                    false,
                    "See the Barman log file for more details",
                ),
                ("wal_level", true, ""),
            ],
        );
        state.listed.push(crate::pitr::barman::ListedBackup {
            id: "20261206T010000".into(),
            status: "FAILED".into(),
            ended_at: None,
            error: Some("failure during backup copy".into()),
        });
        let o = assess_barman(&state, &opts);
        let kinds: Vec<(Kind, &str)> = o
            .findings
            .iter()
            .map(|f| (f.kind, f.subject.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Kind::ToolCheck, "/b/pg/base/20261206T010000"),
                (
                    Kind::Stale,
                    "/b/pg/wals/0000000100000000/000000010000000000000005"
                ),
                (
                    Kind::Gap,
                    "/b/pg/wals/0000000100000000/000000010000000000000004"
                ),
                (Kind::ToolCheck, "barman check pg: receive_wal_running"),
            ]
        );
        assert!(o.findings[0].message.contains("failure during backup copy"));
        assert_eq!(o.findings[1].seconds, Some(7200));
        assert!(
            o.findings[2].message.contains("backup 20261207T022758"),
            "{}",
            o.findings[2].message
        );
        assert!(
            o.findings[3]
                .message
                .contains("receive_wal_running FAILED (See the Barman log file"),
            "{}",
            o.findings[3].message
        );
        assert_eq!(o.failed_backups, ["20261206T010000"]);
        assert_eq!(o.checks_failed, 1);
        let prom = o.prometheus();
        assert!(
            prom.contains("pgdrill_wal_gaps{tool=\"barman\",server=\"pg\"} 1\n"),
            "{prom}"
        );
        assert!(prom.contains("pgdrill_barman_check_ok{tool=\"barman\",server=\"pg\",check=\"receive_wal_running\"} 0\n"));
        assert!(o
            .table()
            .contains("1 of 2 checks failed: receive_wal_running"));

        // The archive ending before the backup's own last segment: it cannot even be made
        // consistent, and no backup at all is a finding too.
        let mut state = server(&[3], at, &[]);
        state.info.backups[0].wal_stop = Some("000000010000000000000004".into());
        let o = assess_barman(&state, &opts);
        assert_eq!(o.wal.wal_gaps[0].first_missing, "000000010000000000000004");
        state.info.backups.clear();
        state.listed.clear();
        let o = assess_barman(&state, &opts);
        assert_eq!(o.findings[0].kind, Kind::NoBackup);
        assert!(o.findings[0].message.contains("barman backup pg"));
    }
}
