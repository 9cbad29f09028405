//! `pgdrill verify --pgbackrest-stanza`: a stanza's archive checked as the strategy checks a
//! dump repository, with findings of the same kinds ([`crate::repo::verify::Finding`]): the
//! newest archived WAL segment's age against the RPO, the WAL from each backup's first
//! segment to the newest with no gap (the first missing segment named), and the tool's own
//! `pgbackrest verify`, each file it finds invalid a finding (pgdrill is never weaker than
//! the tool's check). [`assess`] judges; [`run`] asks the tool; nothing here prints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::pgbackrest::{Pgbackrest, ToolVerify};
use super::wal::{TimelineRange, WalArchive, WalGap};
use super::{PitrError, StanzaInfo};
use crate::repo::verify::{findings_table, gauge, label, Finding, Kind};

/// What to check and as of when.
#[derive(Debug, Clone)]
pub struct Options {
    /// The RPO: the newest archived WAL segment's oldest allowed age.
    pub rpo: Duration,
    /// The moment evaluated ("now" unless `--at`).
    pub at: DateTime<Utc>,
}

/// One backup's WAL: from its first segment to the newest of its timeline.
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
    /// `pgbackrest verify`'s status of the backup (`valid`, `invalid` …).
    pub tool_status: Option<String>,
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
    /// The WAL segment size used to find gaps, in bytes.
    pub segment_size_bytes: u64,
    /// Backups in the stanza.
    pub backups: usize,
    /// The newest backup's label.
    pub newest_backup: Option<String>,
    /// Its age at `at` (from its end), seconds.
    pub newest_backup_age_seconds: Option<u64>,
    /// WAL segments in the current archive.
    pub wal_segments: usize,
    /// Each timeline's archived range.
    pub timelines: Vec<TimelineRange>,
    /// The most recently archived segment.
    pub wal_newest: Option<String>,
    /// Its age at `at` (from when it was archived), seconds.
    pub wal_newest_age_seconds: Option<u64>,
    /// The gaps after the oldest backup's start.
    pub wal_gaps: Vec<WalGap>,
    /// Each backup's WAL range.
    pub backup_wal: Vec<BackupWal>,
    /// `pgbackrest verify` said `status: ok` and named no invalid file.
    pub tool_verify_ok: bool,
    /// Files `pgbackrest verify` found invalid.
    pub invalid_files: usize,
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

    // Freshness: every commit since the newest segment was archived is only on the source.
    let newest = wal.newest();
    let wal_age = newest.map(|n| secs(opts.at - n.archived_at));
    match (newest, wal_age) {
        (Some(n), Some(age)) if age > opts.rpo.as_secs() => findings.push(Finding {
            kind: Kind::Stale,
            subject: format!("{archive_dir}/{}", n.file),
            message: format!(
                "the newest archived WAL segment {} was archived {} ago, longer than the RPO of {}: check the source's archiving (`pg_stat_archiver`: last_failed_wal, failed_count; archive_command) and set archive_timeout below the RPO so a quiet database still archives",
                n.name,
                human(age),
                humantime::format_duration(opts.rpo)
            ),
            start: None,
            seconds: Some(age),
        }),
        (None, _) => findings.push(Finding {
            kind: Kind::NoBackup,
            subject: archive_dir.clone(),
            message: format!("no WAL segment in the archive: check archive_mode=on and archive_command (`pgbackrest --stanza={stanza} archive-push %p`) on the source, then `pgbackrest --stanza={stanza} check`"),
            start: None,
            seconds: None,
        }),
        _ => {}
    }

    // Continuity: each backup's WAL, from its first segment to the newest of its timeline.
    let mut gaps: Vec<WalGap> = Vec::new();
    let mut backup_wal = Vec::new();
    for b in info.current_backups() {
        let found = b
            .wal_start
            .as_deref()
            .map(|s| wal.gaps(s, None))
            .unwrap_or_default();
        let first = found.first();
        let timeline_last = b
            .wal_start
            .as_deref()
            .and_then(|s| super::wal::Segment::parse(s, wal.segment_size))
            .and_then(|s| wal.last_on(s.timeline))
            .map(|s| s.name.clone());
        backup_wal.push(BackupWal {
            label: b.label.clone(),
            wal_start: b.wal_start.clone(),
            reachable_to: match first {
                Some(g) if g.after.is_empty() => None,
                Some(g) => Some(g.after.clone()),
                None => timeline_last,
            },
            first_missing: first.map(|g| g.first_missing.clone()),
            tool_status: checked
                .backups
                .iter()
                .find(|(l, _)| *l == b.label)
                .map(|(_, s)| s.clone()),
        });
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
            subject: format!("{archive_dir}/{}/{}", &g.first_missing[..16], g.first_missing),
            message: format!(
                "WAL segment {} is missing{}: a recovery from {} stops {}. Push it again from the source's pg_wal if it is still there, or take a new full backup",
                g.first_missing,
                super::gap_context(g),
                if cut.is_empty() { "any backup before it".to_string() } else { format!("backup {}", cut.join(", ")) },
                if g.after.is_empty() { "before its first segment: it cannot be restored".to_string() } else { format!("at {} and loses everything after", g.after) },
            ),
            start: Some(g.first_missing.clone()),
            seconds: None,
        });
    }

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
        segment_size_bytes: wal.segment_size,
        backups: info.backups.len(),
        newest_backup: newest_backup.map(|b| b.label.clone()),
        newest_backup_age_seconds: newest_backup.map(|b| secs(opts.at - b.stopped_at)),
        wal_segments: wal.segments.len(),
        timelines: wal.timelines(),
        wal_newest: newest.map(|n| n.name.clone()),
        wal_newest_age_seconds: wal_age,
        wal_gaps: gaps,
        backup_wal,
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
        let age = |a: Option<u64>| a.map(human).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "pgBackRest stanza {} as of {}", self.stanza, self.at);
        let _ = writeln!(
            s,
            "  backups           {} (newest {}, age {})",
            self.backups,
            self.newest_backup.as_deref().unwrap_or("-"),
            age(self.newest_backup_age_seconds)
        );
        let _ = writeln!(
            s,
            "  WAL archive       {} ({} segments; newest {}, archived {} ago)",
            self.archive_id.as_deref().unwrap_or("-"),
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
        for b in &self.backup_wal {
            let _ = writeln!(
                s,
                "  backup {:<18} WAL {} – {}{}{}",
                b.label,
                b.wal_start.as_deref().unwrap_or("-"),
                b.reachable_to.as_deref().unwrap_or("-"),
                b.first_missing
                    .as_ref()
                    .map(|m| format!(", first missing {m}"))
                    .unwrap_or_default(),
                b.tool_status
                    .as_ref()
                    .map(|t| format!(", pgbackrest verify: {t}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s, "  WAL gaps          {}", self.wal_gaps.len());
        let _ = writeln!(
            s,
            "  pgbackrest verify {} ({} invalid files)",
            if self.tool_verify_ok { "ok" } else { "error" },
            self.invalid_files
        );
        findings_table(&mut s, &self.findings);
        s
    }

    /// The Prometheus textfile lines, labelled with the stanza (beside the dump repo's
    /// `pgdrill_backup_*`).
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let l = label("stanza", &self.stanza);
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "NaN".into());
        let metrics = [
            (
                "pgdrill_wal_newest_age_seconds",
                "Age of the newest archived WAL segment.",
                opt(self.wal_newest_age_seconds),
            ),
            (
                "pgdrill_wal_gaps",
                "Gaps in the WAL from the oldest backup to the newest segment.",
                self.wal_gaps.len().to_string(),
            ),
            (
                "pgdrill_wal_segments",
                "WAL segments in the current archive.",
                self.wal_segments.to_string(),
            ),
            (
                "pgdrill_pgbackrest_backups",
                "Backups in the stanza.",
                self.backups.to_string(),
            ),
            (
                "pgdrill_pgbackrest_newest_backup_age_seconds",
                "Age of the stanza's newest backup (from its end).",
                opt(self.newest_backup_age_seconds),
            ),
            (
                "pgdrill_pgbackrest_invalid_files",
                "Files pgbackrest verify found invalid.",
                self.invalid_files.to_string(),
            ),
            (
                "pgdrill_pgbackrest_findings",
                "Findings of the last verify of the stanza.",
                self.findings.len().to_string(),
            ),
            (
                "pgdrill_pgbackrest_verify_ok",
                "1 when verify found nothing in the stanza.",
                u8::from(self.ok).to_string(),
            ),
        ];
        for (name, help, v) in metrics {
            gauge(&mut s, name, help, &l, &v);
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
        assert_eq!(o.wal_newest_age_seconds, Some(30));
        assert_eq!(
            o.backup_wal[0].reachable_to.as_deref(),
            Some("000000010000000000000006")
        );
        assert_eq!(o.backup_wal[0].tool_status.as_deref(), Some("valid"));
        let prom = o.prometheus();
        assert!(
            prom.contains("pgdrill_wal_newest_age_seconds{stanza=\"T\"} 30\n"),
            "{prom}"
        );
        assert!(prom.contains("pgdrill_wal_gaps{stanza=\"T\"} 0\n"));
        assert!(prom.contains("pgdrill_pgbackrest_verify_ok{stanza=\"T\"} 1\n"));
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
            o.backup_wal[0].first_missing.as_deref(),
            Some("000000010000000000000004")
        );
        assert_eq!(
            o.backup_wal[0].reachable_to.as_deref(),
            Some("000000010000000000000003")
        );
        assert!(o
            .prometheus()
            .contains("pgdrill_wal_gaps{stanza=\"T\"} 1\n"));
        assert!(o.table().contains("FINDINGS: 3"));
        // A tool that says error without a file is still a finding.
        let vague = ToolVerify::default();
        let o = assess(&info, &archive(&[2], at), &vague, &opts);
        assert_eq!(o.findings.len(), 1);
        assert_eq!(o.findings[0].kind, Kind::Unreadable);
    }
}
