//! The repo side of `drill --repo`: picking the backup to restore, and recording the drill's
//! result in the repo's audit log. (The regime's commands, `backup`, `verify`, `prune` and
//! `audit`, are in [`crate::cmd`].)

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::plan::Pick;
use crate::repo::audit::{self, Action, FileRef, Object, Outcome};
use crate::repo::Repo;

fn rel(repo: &Repo, p: &Path) -> String {
    p.strip_prefix(repo.root())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Why `drill --repo` has no backup to restore.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    /// The repository cannot be read.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// It holds no backup that can be drilled.
    #[error("{0}")]
    NoBackup(String),
}

/// The dump `drill --repo` restores, and the report's note on how it was chosen.
pub fn pick_backup(
    repo: &Path,
    pick: Pick,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<(PathBuf, String), PickError> {
    let repo = Repo::new(repo);
    let listing = repo.list()?;
    let usable: Vec<_> = listing
        .database
        .iter()
        .filter(|b| b.dump.is_some() && b.manifest.is_ok() && b.created_at() <= now)
        .collect();
    let from = crate::duration::before(now, window);
    let chosen = match pick {
        Pick::Newest => usable.last().map(|b| {
            (
                *b,
                "--pick newest: the backup that would be restored tonight".to_string(),
            )
        }),
        Pick::Random => {
            use rand::RngExt;
            let within: Vec<_> = usable.iter().filter(|b| b.created_at() >= from).collect();
            (!within.is_empty()).then(|| {
                let b = within[rand::rng().random_range(0..within.len())];
                (
                    *b,
                    format!(
                        "--pick random: chosen uniformly among the {} backups of the last {}, so that over months every age gets drilled",
                        within.len(),
                        humantime::format_duration(window)
                    ),
                )
            })
        }
    };
    let (b, why) = chosen.ok_or_else(|| {
        PickError::NoBackup(format!(
            "--repo {}: no backup with a manifest to drill (in the window for --pick random); run `pgdrill backup` first",
            repo.root().display()
        ))
    })?;
    let dump = b.dump.clone().expect("filtered on a dump");
    let note = format!(
        "backup {} from repo {}; {why}",
        rel(&repo, &dump),
        repo.root().display()
    );
    Ok((dump, note))
}

/// Records a finished drill in the repo's audit log: verdict, report and backup checksums.
pub fn record_drill(
    repo: &Path,
    report: &crate::report::Report,
    out_dir: &Path,
) -> Result<(), Error> {
    let r = Repo::new(repo);
    let (file, sha256) = match &report.backup {
        Some(b) => (Some(rel(&r, Path::new(&b.file))), Some(b.sha256.clone())),
        None => (None, None),
    };
    record_finished(
        &audit::Log::Repo(repo.to_path_buf()),
        Action::Drill,
        Object {
            file,
            sha256,
            ..Object::default()
        },
        report,
        out_dir,
        None,
    )
}

/// The audit log's word for a report's verdict.
pub fn outcome(verdict: crate::report::Verdict) -> Outcome {
    match verdict {
        crate::report::Verdict::Pass => Outcome::Pass,
        crate::report::Verdict::Fail => Outcome::Fail,
        crate::report::Verdict::Error => Outcome::Failed,
    }
}

/// Records the end of a drill, a restore, a rollback or a configuration restore in the audit
/// `log`: `action` with the verdict, `object` (what it worked on) with the sealed
/// report's path and SHA-256, and the failure's message, else `done`.
pub fn record_finished(
    log: &audit::Log,
    action: Action,
    object: Object,
    report: &crate::report::Report,
    out_dir: &Path,
    done: Option<String>,
) -> Result<(), Error> {
    let report_path = out_dir.join("report.json");
    let report_sha = crate::digest::sha256_file_blocking(&report_path)
        .map(|(_, s)| s)
        .map_err(|source| Error::Output {
            path: report_path.clone(),
            source,
        })?;
    log.append(
        action,
        Object {
            report: Some(FileRef {
                file: report_path.display().to_string(),
                sha256: report_sha,
            }),
            ..object
        },
        outcome(report.verdict),
        report.failure.as_ref().map(|f| f.message.clone()).or(done),
    )?;
    Ok(())
}
