//! The configuration restore into the application's live directory (`pgdrill config restore
//! --confirm`): what would change, and the change itself. The checked files are written into
//! a staging directory inside the target first; every file the restore replaces is kept
//! (hard-linked, or copied) in `<dir>/.pgdrill_before_<time>/`; then each file is renamed
//! into place, so that at every moment a name holds either the old or the restored file.
//! Both directories are inside the target so that every move is a rename on one file
//! system, even when the target is a mount point.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{io, mode_of, Checked, ConfigError, FileEntry};
use crate::digest::{sha256_hex, sync_dir};

/// The prefix of the directory that keeps the files a restore replaced.
pub const BEFORE_PREFIX: &str = ".pgdrill_before_";
/// The prefix of the staging directory (removed when the restore ends).
const STAGING_PREFIX: &str = ".pgdrill_staging_";

/// What a restore does to one file of the live directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// In the directory with other content or mode: replaced, the previous file kept.
    Changed,
    /// Not in the directory: added.
    Added,
    /// Identical content and mode: left as it is.
    Unchanged,
    /// In the directory but not in the backup: left as it is.
    Kept,
}

impl ChangeKind {
    /// The word the dry run and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Changed => "changed",
            ChangeKind::Added => "added",
            ChangeKind::Unchanged => "unchanged",
            ChangeKind::Kept => "kept",
        }
    }
}

/// One file of the live directory or the backup, compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The file's name in the directory.
    pub name: String,
    /// What the restore does to it.
    pub kind: ChangeKind,
    /// SHA-256 of the backup's file (absent for a kept file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The backup's mode, octal (absent for a kept file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// SHA-256 of the file in the directory before the restore (absent for an added one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_sha256: Option<String>,
}

/// What a restore into a live directory did.
#[derive(Debug, Clone)]
pub struct Replaced {
    /// Where the replaced files are kept (none when nothing was replaced).
    pub before: Option<PathBuf>,
    /// Every file, compared.
    pub changes: Vec<Change>,
    /// The read-back check of the files put in place, in words.
    pub check: String,
}

/// `dir`'s files against the backup's `files`: changed, added, unchanged, and the files only
/// the directory has (kept). Reads the directory, writes nothing.
pub fn changes(dir: &Path, files: &[FileEntry]) -> Result<Vec<Change>, ConfigError> {
    let mut out = Vec::new();
    for f in files {
        let path = dir.join(&f.name);
        let current = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
            Ok(m) if !m.is_file() => return Err(ConfigError::NotAFile(path.display().to_string())),
            Ok(m) => {
                let bytes =
                    std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
                Some((sha256_hex(&bytes), format!("{:04o}", mode_of(&m))))
            }
        };
        let kind = match &current {
            None => ChangeKind::Added,
            Some((sha, mode)) if *sha == f.sha256 && *mode == f.mode => ChangeKind::Unchanged,
            Some(_) => ChangeKind::Changed,
        };
        out.push(Change {
            name: f.name.clone(),
            kind,
            sha256: Some(f.sha256.clone()),
            mode: Some(f.mode.clone()),
            current_sha256: current.map(|(sha, _)| sha),
        });
    }
    let listing = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
    };
    let mut kept = Vec::new();
    for e in listing.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // pgdrill's own copies of earlier restores are not the application's files.
        if name.starts_with(BEFORE_PREFIX)
            || name.starts_with(STAGING_PREFIX)
            || files.iter().any(|f| f.name == name)
        {
            continue;
        }
        let current_sha256 = std::fs::read(e.path()).ok().map(|b| sha256_hex(&b));
        kept.push(Change {
            name,
            kind: ChangeKind::Kept,
            sha256: None,
            mode: None,
            current_sha256,
        });
    }
    kept.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(kept);
    Ok(out)
}

/// Puts the checked files into `dir` (made, owner-only, when missing): staged first, the
/// files it replaces kept in `<dir>/.pgdrill_before_<now>/`, then each renamed into place.
/// When a rename fails, the files already moved are put back and the error returned.
pub fn replace(dir: &Path, checked: &Checked, now: DateTime<Utc>) -> Result<Replaced, ConfigError> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(format!("creating {}", dir.display())))?;
    }
    let changes = changes(dir, &checked.files())?;
    let moving: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Changed | ChangeKind::Added))
        .collect();
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(dir)
        .map_err(io(format!("staging in {}", dir.display())))?;
    for c in &moving {
        let Some((fe, bytes)) = checked.files.iter().find(|(f, _)| f.name == c.name) else {
            continue;
        };
        let ctx = format!("staging {}", dir.join(&fe.name).display());
        super::write_restored(&staging.path().join(&fe.name), fe, bytes).map_err(io(&ctx))?;
    }
    sync_dir(staging.path()).map_err(io("syncing the staging directory"))?;
    let before = if changes.iter().any(|c| c.kind == ChangeKind::Changed) {
        Some(keep_previous(dir, &changes, now)?)
    } else {
        None
    };
    let mut done: Vec<&Change> = Vec::new();
    for c in &moving {
        let from = staging.path().join(&c.name);
        let to = dir.join(&c.name);
        if let Err(e) = std::fs::rename(&from, &to) {
            put_back(dir, before.as_deref(), &done);
            return Err(io(format!(
                "moving the restored {} into {} (the files already moved were put back)",
                c.name,
                dir.display()
            ))(e));
        }
        done.push(c);
    }
    sync_dir(dir).map_err(io(format!("syncing {}", dir.display())))?;
    drop(staging);
    // Read back: what the application will read is what the manifest says.
    for c in changes.iter().filter(|c| c.kind != ChangeKind::Kept) {
        let path = dir.join(&c.name);
        let sha = std::fs::read(&path)
            .map(|b| sha256_hex(&b))
            .map_err(io(format!("reading back {}", path.display())))?;
        if Some(&sha) != c.sha256.as_ref() {
            return Err(ConfigError::Io {
                context: format!("reading back {}", path.display()),
                source: std::io::Error::other(format!(
                    "its SHA-256 is {sha}, the manifest says {}",
                    c.sha256.as_deref().unwrap_or("?")
                )),
            });
        }
    }
    let restored = changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Kept)
        .count();
    Ok(Replaced {
        before,
        check: format!(
            "{restored} file(s) in {} read back with the manifest's SHA-256",
            dir.display()
        ),
        changes,
    })
}

/// Makes `<dir>/.pgdrill_before_<now>` (a suffix when a restore in the same second made one)
/// and keeps there every file the restore replaces: a hard link (the old inode stays whole
/// when the rename replaces the name), or a copy where links are refused.
fn keep_previous(
    dir: &Path,
    changes: &[Change],
    now: DateTime<Utc>,
) -> Result<PathBuf, ConfigError> {
    use std::os::unix::fs::DirBuilderExt;
    let stamp = now.format("%Y%m%d_%H%M%S").to_string();
    let mut n = 1;
    let before = loop {
        let name = if n == 1 {
            format!("{BEFORE_PREFIX}{stamp}")
        } else {
            format!("{BEFORE_PREFIX}{stamp}_{n}")
        };
        let path = dir.join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => break path,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(io(format!("creating {}", path.display()))(e)),
        }
    };
    for c in changes.iter().filter(|c| c.kind == ChangeKind::Changed) {
        let from = dir.join(&c.name);
        let to = before.join(&c.name);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(io(format!(
                "keeping {} in {}",
                from.display(),
                before.display()
            )))?;
        }
    }
    sync_dir(&before).map_err(io(format!("syncing {}", before.display())))?;
    Ok(before)
}

/// Undoes the renames done so far: a replaced file back from the kept copy, an added one
/// removed. Best effort: the kept copies stay where they are either way.
fn put_back(dir: &Path, before: Option<&Path>, done: &[&Change]) {
    for c in done {
        let path = dir.join(&c.name);
        match (c.kind, before) {
            (ChangeKind::Changed, Some(b)) => {
                let kept = b.join(&c.name);
                let _ = std::fs::copy(&kept, &path).and_then(|_| {
                    std::fs::set_permissions(&path, std::fs::metadata(&kept)?.permissions())
                });
            }
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let _ = sync_dir(dir);
}
