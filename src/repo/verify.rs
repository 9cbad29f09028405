//! `pgdrill verify`: the strategy's daily check of a repo, and more. Every finding names the
//! file or the time span and what to do; the newest dump is read through with the drill's
//! own precheck ([`crate::restore::precheck`]); files the audit log already records as
//! verified with the same SHA-256 are not read again unless `full`.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::{Action, Event, FileRef};
use super::{Listing, Repo, RepoError};
use crate::env::PgTools;

/// A size below this fraction of the previous backups' median is a finding. A dump of a live
/// database shrinks by half only when data was lost (a dropped table, a wrong database);
/// compression and vacuum move sizes by a few percent, far from this.
pub const SIZE_LOW: f64 = 0.5;
/// A size above this multiple of the median is a finding: doubling within the window means
/// a runaway table, a bulk import nobody announced, or the wrong database.
pub const SIZE_HIGH: f64 = 2.0;
/// How many previous backups the median is taken over: enough to smooth one odd dump.
pub const SIZE_HISTORY: usize = 10;

/// What to check and as of when.
#[derive(Debug, Clone)]
pub struct Options {
    /// Database RPO: the newest dump's oldest allowed age and the longest allowed gap.
    pub rpo: Duration,
    /// Config RPO.
    pub config_rpo: Duration,
    /// Whether the repo is meant to hold configuration backups: `false` (`--no-config`) for
    /// a team that keeps none, so their absence or age is no finding (archives that are there
    /// are still checked against their manifests).
    pub config: bool,
    /// How far back gaps and sizes are examined.
    pub window: Duration,
    /// The moment evaluated ("now" unless `--at`).
    pub at: DateTime<Utc>,
    /// Read every file, ignoring the audit log's record.
    pub full: bool,
}

/// Kinds of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No database or config backup at all.
    NoBackup,
    /// The newest backup is older than the RPO.
    Stale,
    /// A gap longer than the RPO between consecutive backups.
    Gap,
    /// Zero, or far from the median.
    Size,
    /// A file's SHA-256 or size differs from its manifest.
    Checksum,
    /// A manifest is missing or cannot be parsed.
    Manifest,
    /// A file of a set is missing.
    MissingFile,
    /// The newest dump does not read through.
    Unreadable,
    /// A file pgdrill did not write.
    UnknownFile,
    /// A temp file of a backup whose writer is gone (killed, or its machine lost).
    TempFile,
    /// The audit log's hash chain is broken.
    AuditLog,
    /// The backup tool's own check or record says something is wrong (a `barman check` that
    /// failed, a backup Barman marked `FAILED`).
    ToolCheck,
}

/// One thing wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// The file or backup concerned, relative to the repo.
    pub subject: String,
    /// What is wrong and what to do.
    pub message: String,
    /// For gaps: where it starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// For gaps and ages: seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
}

/// The result of a verify run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The moment evaluated.
    pub at: String,
    /// Database backups seen (up to `at`).
    pub database_backups: usize,
    /// Config backups seen.
    pub config_backups: usize,
    /// The newest database backup's name.
    pub newest: Option<String>,
    /// Its age at `at`, seconds.
    pub newest_age_seconds: Option<u64>,
    /// Its size.
    pub newest_size_bytes: Option<u64>,
    /// The newest config backup's age, seconds.
    pub config_newest_age_seconds: Option<u64>,
    /// Gaps longer than the RPO.
    pub gaps: usize,
    /// Files read and hashed in this run.
    pub files_read: usize,
    /// Files skipped because the audit log records them verified with the same SHA-256.
    pub files_skipped: usize,
    /// Files that matched their manifest (read now or before).
    pub files_verified: Vec<FileRef>,
    /// Everything wrong.
    pub findings: Vec<Finding>,
    /// True when there are no findings.
    pub ok: bool,
}

fn rel(repo: &Repo, p: &std::path::Path) -> String {
    p.strip_prefix(repo.root())
        .unwrap_or(p)
        .display()
        .to_string()
}

fn secs(d: chrono::Duration) -> u64 {
    d.num_seconds().max(0) as u64
}

/// The finding that there is no backup of a kind (`what`) in the repo, and the command that
/// takes one.
fn no_backup(subject: &str, what: &str, command: &str) -> Finding {
    Finding {
        kind: Kind::NoBackup,
        subject: subject.into(),
        message: format!("no {what} backup in the repo: run `{command}` and schedule it"),
        start: None,
        seconds: None,
    }
}

/// The finding that the newest backup of a kind (`what`: "database", "config") is `age` old,
/// older than the objective named `objective` ("RPO", "config RPO"), `rpo` long; `check` says
/// what to look at.
fn stale(
    subject: String,
    what: &str,
    age: chrono::Duration,
    objective: &str,
    rpo: Duration,
    check: &str,
) -> Finding {
    Finding {
        kind: Kind::Stale,
        subject,
        message: format!(
            "the newest {what} backup is {} old, older than the {objective} of {}: {check}",
            humantime::format_duration(Duration::from_secs(secs(age))),
            humantime::format_duration(rpo)
        ),
        start: None,
        seconds: Some(secs(age)),
    }
}

/// The freshness finding of a database backup (`subject`) taken at `created`: older at `at`
/// than the RPO `rpo`, or `None`. `pgdrill verify` and the drill's `stale_backup` negative
/// control judge with this one function.
pub fn stale_database(
    subject: String,
    created: DateTime<Utc>,
    at: DateTime<Utc>,
    rpo: Duration,
) -> Option<Finding> {
    let age = at - created;
    let limit = chrono::Duration::from_std(rpo).unwrap_or(chrono::Duration::MAX);
    (age > limit).then(|| {
        stale(
            subject,
            "database",
            age,
            "RPO",
            rpo,
            "check the backup timer (`systemctl status pgdrill-backup.timer`) and its log",
        )
    })
}

fn median(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Checks `repo` as `opts` say. Only environment problems (no pg_restore, an unreadable
/// directory) are errors; everything about the backups is a finding.
pub async fn run(
    repo: &Repo,
    listing: &Listing,
    history: &[Event],
    tools: &PgTools,
    opts: &Options,
) -> Result<Outcome, RepoError> {
    let at = opts.at;
    let rpo = chrono::Duration::from_std(opts.rpo).unwrap_or(chrono::Duration::MAX);
    let crpo = chrono::Duration::from_std(opts.config_rpo).unwrap_or(chrono::Duration::MAX);
    let window_start = crate::duration::before(at, opts.window);
    let mut findings = Vec::new();
    // As of `at`: a verification recorded later had not happened yet.
    let verified_before: BTreeSet<(String, String)> = history
        .iter()
        .filter(|e| e.action == Action::Verify && e.at().is_some_and(|t| t <= at))
        .flat_map(|e| e.object.files.iter())
        .map(|f| (f.file.clone(), f.sha256.clone()))
        .collect();

    let db: Vec<_> = listing
        .database
        .iter()
        .filter(|b| b.created_at() <= at)
        .collect();
    let newest = db.last();
    let newest_age = newest.map(|b| at - b.created_at());
    match newest {
        Some(b) => findings.extend(stale_database(
            format!("{}/{}", super::DATABASE_DIR, b.name),
            b.created_at(),
            at,
            opts.rpo,
        )),
        None => findings.push(no_backup("database/", "database", "pgdrill backup")),
    }
    let mut gaps = 0;
    for pair in db.windows(2) {
        let (a, b) = (pair[0].created_at(), pair[1].created_at());
        if b < window_start || b - a <= rpo {
            continue;
        }
        gaps += 1;
        findings.push(Finding {
            kind: Kind::Gap,
            subject: format!("{}/{}", super::DATABASE_DIR, pair[1].name),
            message: format!(
                "no backup for {} after {} (longer than the RPO of {})",
                humantime::format_duration(std::time::Duration::from_secs(secs(b - a))),
                pair[0].name,
                humantime::format_duration(opts.rpo)
            ),
            start: Some(a.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            seconds: Some(secs(b - a)),
        });
    }
    // Sizes: each backup in the window against the median of the ones before it.
    for (i, b) in db.iter().enumerate() {
        let Ok(m) = &b.manifest else { continue };
        if b.created_at() < window_start {
            continue;
        }
        let size = m.size_bytes;
        let mut prev: Vec<u64> = db[i.saturating_sub(SIZE_HISTORY)..i]
            .iter()
            .filter_map(|p| p.manifest.as_ref().ok().map(|m| m.size_bytes))
            .collect();
        let message = if size == 0 {
            Some("the dump is empty (0 bytes): the backup job wrote nothing".to_string())
        } else if let Some(med) = median(&mut prev) {
            let ratio = size as f64 / med.max(1) as f64;
            (!(SIZE_LOW..=SIZE_HIGH).contains(&ratio)).then(|| {
                format!(
                    "{size} bytes is {ratio:.2}× the median ({med} bytes) of the {} backups before it (allowed {SIZE_LOW}–{SIZE_HIGH}×): check that the right database was dumped and no data was lost",
                    prev.len()
                )
            })
        } else {
            None
        };
        if let Some(message) = message {
            findings.push(Finding {
                kind: Kind::Size,
                subject: format!("{}/{}", super::DATABASE_DIR, b.name),
                message,
                start: None,
                seconds: None,
            });
        }
    }

    // Checksums of every file against its manifest.
    let mut files_read = 0;
    let mut files_skipped = 0;
    let mut files_verified = Vec::new();
    let newest_name = newest.map(|b| b.name.clone());
    for b in &listing.database {
        let m = match &b.manifest {
            Ok(m) => m,
            Err(why) => {
                // An unreadable manifest in the drill's own words (the same error the drill's
                // precheck fails with).
                let message = match why {
                    crate::backup::ManifestError::Missing(_) => format!("{why}: the backup cannot be checked; take a new backup and remove this one"),
                    _ => why.to_string(),
                };
                findings.push(Finding {
                    kind: Kind::Manifest,
                    subject: rel(repo, &b.manifest_path),
                    message,
                    start: None,
                    seconds: None,
                });
                continue;
            }
        };
        let mut expected = vec![(
            b.dump.clone(),
            format!("{}.dump", b.name),
            m.size_bytes,
            m.sha256.clone(),
        )];
        if let Some(g) = &m.globals {
            // Named by the set, not by the manifest's record: a copied set is its own file.
            expected.push((
                b.globals.clone(),
                format!("{}.globals.sql", b.name),
                g.size_bytes,
                g.sha256.clone(),
            ));
        }
        for (path, name, size, sha) in expected {
            let subject = format!("{}/{name}", super::DATABASE_DIR);
            let Some(path) = path else {
                findings.push(Finding {
                    kind: Kind::MissingFile,
                    subject,
                    message: format!(
                        "{name} is listed in {} but missing",
                        rel(repo, &b.manifest_path)
                    ),
                    start: None,
                    seconds: None,
                });
                continue;
            };
            let is_newest_dump = Some(&b.name) == newest_name.as_ref() && name.ends_with(".dump");
            if is_newest_dump {
                // Read through in full by the drill's precheck, which also compares the hash.
                match crate::restore::precheck(
                    &path,
                    Some(m),
                    tools,
                    &crate::progress::Progress::none(),
                )
                .await
                {
                    Ok(_) => {
                        files_read += 1;
                        files_verified.push(FileRef {
                            file: subject,
                            sha256: sha,
                        });
                    }
                    Err(crate::restore::RestoreError::Env(e)) => {
                        return Err(RepoError::Layout(e.to_string()))
                    }
                    Err(e) => {
                        files_read += 1;
                        let kind = if e.to_string().contains("SHA-256")
                            || e.to_string().contains("manifest says")
                        {
                            Kind::Checksum
                        } else {
                            Kind::Unreadable
                        };
                        findings.push(Finding {
                            kind,
                            subject,
                            message: e.to_string(),
                            start: None,
                            seconds: None,
                        });
                    }
                }
                continue;
            }
            let on_disk = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if !opts.full
                && on_disk == size
                && verified_before.contains(&(subject.clone(), sha.clone()))
            {
                files_skipped += 1;
                files_verified.push(FileRef {
                    file: subject,
                    sha256: sha,
                });
                continue;
            }
            files_read += 1;
            match crate::digest::sha256_file(&path).await {
                Ok((n, got)) if n == size && got == sha => {
                    files_verified.push(FileRef { file: subject, sha256: sha })
                }
                Ok((n, got)) => findings.push(Finding {
                    kind: Kind::Checksum,
                    subject,
                    message: format!("{n} bytes with SHA-256 {got}, but the manifest says {size} bytes with {sha}: the file is corrupted or replaced; do not restore it"),
                    start: None,
                    seconds: None,
                }),
                Err(e) => findings.push(Finding {
                    kind: Kind::MissingFile,
                    subject,
                    message: format!("cannot read it: {e}"),
                    start: None,
                    seconds: None,
                }),
            }
        }
    }

    // Config backups: archives against their manifests, and the config RPO.
    let cfg: Vec<_> = listing
        .config
        .iter()
        .filter(|c| c.created_at() <= at)
        .collect();
    let config_age = cfg.last().map(|c| at - c.created_at());
    match (cfg.last(), config_age) {
        _ if !opts.config => {}
        (Some(c), Some(age)) if age > crpo => findings.push(stale(
            format!("{}/{}", super::CONFIG_DIR, c.name),
            "config",
            age,
            "config RPO",
            opts.config_rpo,
            "check the config backup timer",
        )),
        (None, _) => findings.push(no_backup(
            "config/",
            "configuration",
            "pgdrill config backup",
        )),
        _ => {}
    }
    for c in &listing.config {
        let m = match &c.manifest {
            Ok(m) => m,
            Err(why) => {
                findings.push(Finding {
                    kind: Kind::Manifest,
                    subject: rel(repo, &c.manifest_path),
                    message: why.clone(),
                    start: None,
                    seconds: None,
                });
                continue;
            }
        };
        let subject = format!("{}/{}", super::CONFIG_DIR, m.file);
        let Some(path) = &c.archive else {
            findings.push(Finding {
                kind: Kind::MissingFile,
                subject,
                message: "the archive named by its manifest is missing".into(),
                start: None,
                seconds: None,
            });
            continue;
        };
        let on_disk = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if !opts.full
            && on_disk == m.size_bytes
            && verified_before.contains(&(subject.clone(), m.sha256.clone()))
        {
            files_skipped += 1;
            files_verified.push(FileRef {
                file: subject,
                sha256: m.sha256.clone(),
            });
            continue;
        }
        files_read += 1;
        match crate::digest::sha256_file(path).await {
            Ok((n, got)) if n == m.size_bytes && got == m.sha256 => files_verified.push(FileRef { file: subject, sha256: got }),
            Ok((n, got)) => findings.push(Finding {
                kind: Kind::Checksum,
                subject,
                message: format!("{n} bytes with SHA-256 {got}, but the manifest says {} bytes with {}: the archive is corrupted or replaced", m.size_bytes, m.sha256),
                start: None,
                seconds: None,
            }),
            Err(e) => findings.push(Finding { kind: Kind::MissingFile, subject, message: format!("cannot read it: {e}"), start: None, seconds: None }),
        }
    }
    for u in &listing.unknown {
        findings.push(Finding {
            kind: Kind::UnknownFile,
            subject: rel(repo, u),
            message: "not a file pgdrill writes (or a link): move it out of the repo; prune never deletes it".into(),
            start: None,
            seconds: None,
        });
    }
    findings.extend(stale_temps(repo)?);
    Ok(Outcome {
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        database_backups: db.len(),
        config_backups: cfg.len(),
        newest: newest.map(|b| b.name.clone()),
        newest_age_seconds: newest_age.map(secs),
        newest_size_bytes: newest.and_then(|b| b.manifest.as_ref().ok().map(|m| m.size_bytes)),
        config_newest_age_seconds: config_age.map(secs),
        gaps,
        files_read,
        files_skipped,
        files_verified,
        ok: findings.is_empty(),
        findings,
    })
}

/// One finding per temp file a dead backup left in `database/`, with its size, its age and
/// the commands that remove it. Nothing while a backup runs: its temp files are its own.
fn stale_temps(repo: &Repo) -> Result<Vec<Finding>, RepoError> {
    let now = Utc::now();
    Ok(repo
        .stale_temps()?
        .files
        .into_iter()
        .map(|t| {
            let age = secs(now - t.modified);
            Finding {
                kind: Kind::TempFile,
                subject: rel(repo, &t.path),
                message: format!(
                    "a temp file of a backup that never completed ({} bytes, last written {} ago, no backup running): its writer is gone; remove it with `pgdrill clean --repo {}` or `pgdrill prune --confirm`",
                    t.size_bytes,
                    humantime::format_duration(Duration::from_secs(age)),
                    repo.root().display()
                ),
                start: None,
                seconds: Some(age),
            }
        })
        .collect())
}

impl Outcome {
    /// The table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let age = |a: Option<u64>| {
            a.map(|s| humantime::format_duration(Duration::from_secs(s)).to_string())
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(s, "verify as of {}", self.at);
        let _ = writeln!(s, "  database backups  {}", self.database_backups);
        let _ = writeln!(
            s,
            "  newest            {} (age {}, {} bytes)",
            self.newest.as_deref().unwrap_or("-"),
            age(self.newest_age_seconds),
            self.newest_size_bytes.unwrap_or(0)
        );
        let _ = writeln!(
            s,
            "  config backups    {} (newest age {})",
            self.config_backups,
            age(self.config_newest_age_seconds)
        );
        let _ = writeln!(s, "  gaps over RPO     {}", self.gaps);
        let _ = writeln!(
            s,
            "  files verified    {} ({} read now, {} verified before with the same SHA-256)",
            self.files_verified.len(),
            self.files_read,
            self.files_skipped
        );
        findings_table(&mut s, &self.findings);
        s
    }

    /// The Prometheus textfile for node_exporter's textfile collector.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, help: &str, v: String| gauge(&mut s, name, help, "", &v);
        metric(
            "pgdrill_backup_newest_age_seconds",
            "Age of the newest database backup.",
            self.newest_age_seconds
                .map(|v| v.to_string())
                .unwrap_or_else(|| "NaN".into()),
        );
        metric(
            "pgdrill_backup_gaps",
            "Gaps longer than the RPO in the window.",
            self.gaps.to_string(),
        );
        metric(
            "pgdrill_backup_newest_size_bytes",
            "Size of the newest database backup.",
            self.newest_size_bytes.unwrap_or(0).to_string(),
        );
        metric(
            "pgdrill_backup_files_verified",
            "Files matching their manifest.",
            self.files_verified.len().to_string(),
        );
        metric(
            "pgdrill_backup_findings",
            "Findings of the last verify.",
            self.findings.len().to_string(),
        );
        metric(
            "pgdrill_backup_verify_ok",
            "1 when verify found nothing.",
            u8::from(self.ok).to_string(),
        );
        s
    }
}

/// The findings as the table's last lines: `OK: no findings`, or their count and one line
/// each (kind, subject, message). `pgdrill verify`'s repo and stanza tables share it.
pub fn findings_table(s: &mut String, findings: &[Finding]) {
    use std::fmt::Write;
    if findings.is_empty() {
        let _ = writeln!(s, "OK: no findings");
        return;
    }
    let _ = writeln!(s, "FINDINGS: {}", findings.len());
    let _ = writeln!(s, "  {:<13} {:<48} message", "kind", "subject");
    for f in findings {
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(s, "  {:<13} {:<48} {}", kind, f.subject, f.message);
    }
}

/// One Prometheus gauge (its HELP, TYPE and sample) appended to `s`; `labels` is empty or
/// `{name="value",…}` already escaped ([`label`]).
pub fn gauge(s: &mut String, name: &str, help: &str, labels: &str, value: &str) {
    s.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {value}\n"
    ));
}

/// `{key="value"}`, the value escaped as the Prometheus text format wants.
pub fn label(key: &str, value: &str) -> String {
    labels(&[(key, value)])
}

/// `{k1="v1",k2="v2"}`, each value escaped as the Prometheus text format wants.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(key, value)| {
            let v = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stale_and_no_backup_findings_name_the_kind_the_objective_and_the_fix() {
        let day = Duration::from_secs(86_400);
        let f = stale(
            "database/backup_x".into(),
            "database",
            chrono::Duration::hours(25),
            "RPO",
            day,
            "check the backup timer",
        );
        assert_eq!(
            (f.kind, f.subject.as_str()),
            (Kind::Stale, "database/backup_x")
        );
        assert_eq!(
            f.message,
            "the newest database backup is 1day 1h old, older than the RPO of 1day: check the backup timer"
        );
        assert_eq!((f.start, f.seconds), (None, Some(90_000)));
        let f = no_backup("config/", "configuration", "pgdrill config backup");
        assert_eq!((f.kind, f.subject.as_str()), (Kind::NoBackup, "config/"));
        assert_eq!(
            f.message,
            "no configuration backup in the repo: run `pgdrill config backup` and schedule it"
        );
        assert_eq!((f.start, f.seconds), (None, None));
    }
}
