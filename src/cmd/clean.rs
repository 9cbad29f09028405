//! `pgdrill clean`: removes what killed drills left behind, one line per leftover; with
//! `--repo`, also the temp files of killed backups in that repo.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::env::leftovers;
use crate::error::{Error, Exit};
use crate::repo::audit::{self, Action, FileRef, Object, Outcome};
use crate::repo::{Repo, StaleTemps, TempFile};

/// Flags of `pgdrill clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only list what would be removed (exit 1 when there is something).
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove the temp files that killed `pgdrill backup` runs left in this repo
    /// (never those of a backup running now).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
}

/// `pgdrill clean`: one line per leftover removed (or, with `--dry-run`, to remove).
pub fn run(args: CleanArgs) -> Result<Exit, Error> {
    let repo = match args.repo {
        Some(dir) if !dir.is_dir() => {
            return Err(Error::Usage(format!(
                "--repo {}: no such directory; give the repository that `pgdrill backup` writes to",
                dir.display()
            )))
        }
        Some(dir) => Some(Repo::new(dir)),
        None => None,
    };
    let found = leftovers::find(&std::env::temp_dir());
    if args.dry_run {
        for l in &found {
            println!("would remove {l}");
        }
        let temps = match &repo {
            Some(r) => r.stale_temps()?,
            None => StaleTemps::default(),
        };
        for t in &temps.files {
            println!("would remove {}", describe(&t.path, t));
        }
        running(repo.as_ref(), &temps);
        return Ok(if found.is_empty() && temps.files.is_empty() {
            Exit::Pass
        } else {
            Exit::Fail
        });
    }
    let (removed, failed) = leftovers::remove(found);
    for l in &removed {
        println!("removed {l}");
    }
    let temps = match &repo {
        Some(r) => {
            let temps = r.remove_stale_temps()?;
            if !temps.files.is_empty() {
                let (files, note) = removed_refs(r, &temps);
                audit::append(
                    r.root(),
                    Action::Clean,
                    Object {
                        files,
                        ..Object::default()
                    },
                    Outcome::Ok,
                    Some(note),
                )?;
            }
            temps
        }
        None => StaleTemps::default(),
    };
    for t in &temps.files {
        println!("removed {}", describe(&t.path, t));
    }
    running(repo.as_ref(), &temps);
    if removed.is_empty() && failed.is_empty() && temps.files.is_empty() {
        println!("nothing to clean");
    }
    for e in &failed {
        eprintln!("pgdrill: {e}");
    }
    Ok(if failed.is_empty() {
        Exit::Pass
    } else {
        Exit::Environment
    })
}

/// `PATH (N bytes, last written AGE ago)`: a temp file as `clean` and `prune` print it.
pub(super) fn describe(path: &Path, t: &TempFile) -> String {
    let age = (chrono::Utc::now() - t.modified).num_seconds().max(0) as u64;
    format!(
        "{} (temp file of a backup that never completed, {} bytes, last written {} ago)",
        path.display(),
        t.size_bytes,
        humantime::format_duration(std::time::Duration::from_secs(age))
    )
}

/// Says that a running backup's temp files were left alone.
pub(super) fn running(repo: Option<&Repo>, temps: &StaleTemps) {
    if let (Some(r), true) = (repo, temps.backup_running) {
        println!(
            "a backup is running (it holds {}): temp files in {} left alone",
            r.database_dir().join(crate::repo::BACKUP_LOCK).display(),
            r.database_dir().display()
        );
    }
}

/// The audit log's record of removed temp files: their references (no checksum: they were
/// never complete) and a note naming them (empty when there are none).
pub(super) fn removed_refs(repo: &Repo, temps: &StaleTemps) -> (Vec<FileRef>, String) {
    let rel = |p: &Path| {
        p.strip_prefix(repo.root())
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let refs = temps
        .files
        .iter()
        .map(|t| FileRef {
            file: rel(&t.path),
            sha256: String::new(),
        })
        .collect();
    let names: Vec<String> = temps
        .files
        .iter()
        .map(|t| format!("{} ({} bytes)", rel(&t.path), t.size_bytes))
        .collect();
    let note = match names.len() {
        0 => String::new(),
        n => format!(
            "{n} temp file(s) of backups whose writer is gone removed: {}",
            names.join(", ")
        ),
    };
    (refs, note)
}
