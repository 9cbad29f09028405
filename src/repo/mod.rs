//! The backup repository as the strategy lays it out: `<repo>/database/` with
//! `backup_YYYYmmdd_HHMMSS.dump` (+ `.manifest.json`, `.globals.sql`), `<repo>/config/` with
//! `config_YYYYmmdd_HHMMSS.tar.age` (+ `.manifest.json`), and the append-only
//! `audit.ndjson`. Listing never follows a symlink and names every file it does not know.

pub mod audit;
pub mod lock;
pub mod prune;
pub mod verify;

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::{self, Manifest, ManifestError};

/// The database backups' directory under a repo.
pub const DATABASE_DIR: &str = "database";
/// The configuration backups' directory under a repo.
pub const CONFIG_DIR: &str = "config";
/// The audit log's file name under a repo.
pub const AUDIT_FILE: &str = "audit.ndjson";
/// The drill history's file name under a repo.
pub const HISTORY_FILE: &str = "history.ndjson";
/// The lock file serialising backups into one repo.
pub const BACKUP_LOCK: &str = ".backup.lock";
/// The audit log's lock file.
pub const AUDIT_LOCK: &str = ".audit.lock";

/// `--repo`'s default when neither the flag nor `$PGDRILL_REPO` is given.
pub const DEFAULT_REPO: &str = "/backups";

/// Problems reading or writing a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The repo cannot be read or written here.
    #[error("{context}: {source}")]
    Io {
        /// What pgdrill was doing, naming the path.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The repo's content is not what pgdrill wrote (a directory that is a symlink, say).
    #[error("{0}")]
    Layout(String),
    /// The directory a reading command was given is no repository (see [`Repo::open`]);
    /// nothing was written to it.
    #[error("{}", not_a_repo(path, *origin, *missing))]
    NotARepo {
        /// The directory.
        path: PathBuf,
        /// Where its path came from.
        origin: Origin,
        /// It does not exist at all.
        missing: bool,
    },
    /// Another backup held the repo lock for all of `--lock-timeout`.
    #[error("gave up waiting for the repo lock {path} after {}s (--lock-timeout): it is held by {holder}. That backup is still running or hung; check that process, or raise --lock-timeout", waited.as_secs_f64())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as it recorded itself.
        holder: String,
        /// How long this backup waited.
        waited: std::time::Duration,
    },
}

/// Where a repository's path came from, so that a refusal names the fix that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--repo DIR`.
    Flag,
    /// `$PGDRILL_REPO`.
    Env,
    /// Neither was given: the strategy's [`DEFAULT_REPO`].
    Default,
}

/// The message of [`RepoError::NotARepo`]: what was given, what is wrong, the fix.
fn not_a_repo(path: &Path, origin: Origin, missing: bool) -> String {
    let p = path.display();
    let (given, fix) = match origin {
        Origin::Flag => (
            format!("--repo {p}"),
            "give the repository that `pgdrill backup --repo DIR` writes to",
        ),
        Origin::Env => (
            format!("PGDRILL_REPO={p}"),
            "set PGDRILL_REPO to the repository that `pgdrill backup` writes to, or pass --repo DIR",
        ),
        Origin::Default => (
            format!("{p} (the strategy's default repository: no --repo DIR was given and PGDRILL_REPO is not set)"),
            "pass --repo DIR or set PGDRILL_REPO to the repository that `pgdrill backup` writes to",
        ),
    };
    if missing {
        format!("{given}: no such directory; {fix}")
    } else {
        format!(
            "{given}: not a backup repository: it holds none of {DATABASE_DIR}/, {CONFIG_DIR}/, {AUDIT_FILE}, and nothing was written to it; {fix}, or start one there with `pgdrill backup --repo {p}`"
        )
    }
}

impl RepoError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RepoError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The configuration manifest's fields pgdrill relies on (the config engineer's writer adds
/// more; unknown fields are kept out of the way by serde).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfigManifest {
    /// Layout version.
    pub manifest_version: u32,
    /// The archive's file name.
    pub file: String,
    /// The archive's size.
    pub size_bytes: u64,
    /// The archive's SHA-256, hex.
    pub sha256: String,
    /// When it was taken, RFC 3339.
    pub created_at: String,
    /// Scheduled or manual.
    pub kind: String,
    /// Why, when given.
    #[serde(default)]
    pub reason: Option<String>,
    /// Whether the archive is age-encrypted.
    pub encrypted: bool,
}

/// One database backup set found in `database/`.
#[derive(Debug, Clone)]
pub struct DatabaseBackup {
    /// `backup_YYYYmmdd_HHMMSS`.
    pub name: String,
    /// The time in its name (UTC).
    pub named_at: DateTime<Utc>,
    /// The dump, if present.
    pub dump: Option<PathBuf>,
    /// The manifest's path (present or not).
    pub manifest_path: PathBuf,
    /// The globals file, if present.
    pub globals: Option<PathBuf>,
    /// The manifest, or why it cannot be read.
    pub manifest: Result<Manifest, ManifestError>,
}

impl DatabaseBackup {
    /// The moment the backup was taken: the manifest's `created_at`, else the name's.
    pub fn created_at(&self) -> DateTime<Utc> {
        taken_at(
            self.manifest.as_ref().map(|m| m.created_at.as_str()),
            self.named_at,
        )
    }

    /// Every file of the set that exists.
    pub fn files(&self) -> Vec<PathBuf> {
        existing(self.dump.iter().chain(&self.globals), &self.manifest_path)
    }
}

/// A manifest's `created_at` when it reads as a time, else the time in the backup's name.
fn taken_at<E>(created_at: Result<&str, &E>, named_at: DateTime<Utc>) -> DateTime<Utc> {
    created_at
        .ok()
        .and_then(|t| crate::duration::parse_time(t).ok())
        .unwrap_or(named_at)
}

/// A set's files: `data` (found in the listing) and its manifest when that exists.
fn existing<'a>(data: impl Iterator<Item = &'a PathBuf>, manifest: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = data.cloned().collect();
    if manifest.is_file() {
        v.push(manifest.to_path_buf());
    }
    v
}

/// One configuration backup found in `config/`.
#[derive(Debug, Clone)]
pub struct ConfigBackup {
    /// `config_YYYYmmdd_HHMMSS`.
    pub name: String,
    /// The time in its name.
    pub named_at: DateTime<Utc>,
    /// The archive, if present.
    pub archive: Option<PathBuf>,
    /// The manifest's path.
    pub manifest_path: PathBuf,
    /// The manifest, or why it cannot be read.
    pub manifest: Result<ConfigManifest, String>,
}

impl ConfigBackup {
    /// The manifest's `created_at`, else the name's time.
    pub fn created_at(&self) -> DateTime<Utc> {
        taken_at(
            self.manifest.as_ref().map(|m| m.created_at.as_str()),
            self.named_at,
        )
    }

    /// Every file of the set that exists.
    pub fn files(&self) -> Vec<PathBuf> {
        existing(self.archive.iter(), &self.manifest_path)
    }
}

/// What a repo holds, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Database backups by time.
    pub database: Vec<DatabaseBackup>,
    /// Configuration backups by time.
    pub config: Vec<ConfigBackup>,
    /// Files and links pgdrill did not write (never deleted, listed by `verify`).
    pub unknown: Vec<PathBuf>,
}

/// A temporary file of a backup in `database/` (`.backup_….dump.tmp-XXXXXX`, and those of
/// its manifest and globals), written under the backup lock and renamed once complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size.
    pub size_bytes: u64,
    /// When it was last written.
    pub modified: DateTime<Utc>,
}

/// The temp files of backups whose writer is gone, as [`Repo::stale_temps`] found them.
#[derive(Debug, Clone, Default)]
pub struct StaleTemps {
    /// The stale temp files, oldest first.
    pub files: Vec<TempFile>,
    /// A backup held the lock: the temp files were left alone, stale or not.
    pub backup_running: bool,
}

/// A backup repository on disk.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

/// The time in a `<prefix>_YYYYmmdd_HHMMSS` stem.
fn stem_time(stem: &str, prefix: &str) -> Option<DateTime<Utc>> {
    let ts = stem.strip_prefix(prefix)?.strip_prefix('_')?;
    if ts.len() != 15 {
        return None;
    }
    NaiveDateTime::parse_from_str(ts, "%Y%m%d_%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

impl Repo {
    /// The repo at `root` (not touched until used).
    pub fn new(root: impl Into<PathBuf>) -> Repo {
        Repo { root: root.into() }
    }

    /// `--repo`, else `$PGDRILL_REPO`, else `/backups`.
    pub fn resolve(flag: Option<PathBuf>) -> Repo {
        Repo::resolve_with_origin(flag).0
    }

    /// [`Repo::resolve`], and where the path came from.
    pub fn resolve_with_origin(flag: Option<PathBuf>) -> (Repo, Origin) {
        match (flag, std::env::var_os("PGDRILL_REPO")) {
            (Some(dir), _) => (Repo::new(dir), Origin::Flag),
            (None, Some(env)) if !env.is_empty() => (Repo::new(env), Origin::Env),
            (None, _) => (Repo::new(DEFAULT_REPO), Origin::Default),
        }
    }

    /// The repository a reading command (`verify`, `prune`, `drill --repo`) works on:
    /// resolved as [`Repo::resolve`], and refused unless it is a directory that
    /// [`Repo::is_repo`]; checked before anything is written there.
    pub fn open(flag: Option<PathBuf>) -> Result<Repo, RepoError> {
        let (repo, origin) = Repo::resolve_with_origin(flag);
        let refuse = |missing| RepoError::NotARepo {
            path: repo.root.clone(),
            origin,
            missing,
        };
        if !repo.root.is_dir() {
            return Err(refuse(true));
        }
        if !repo.is_repo() {
            return Err(refuse(false));
        }
        Ok(repo)
    }

    /// Whether the directory is a backup repository: it holds what `pgdrill backup` (or the
    /// strategy's own scripts) write there, a `database/` or `config/` directory or the audit
    /// log. An empty directory is not one yet.
    pub fn is_repo(&self) -> bool {
        self.database_dir().is_dir() || self.config_dir().is_dir() || self.audit_path().is_file()
    }

    /// The repo's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<repo>/database`.
    pub fn database_dir(&self) -> PathBuf {
        self.root.join(DATABASE_DIR)
    }

    /// `<repo>/config`.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join(CONFIG_DIR)
    }

    /// `<repo>/audit.ndjson`.
    pub fn audit_path(&self) -> PathBuf {
        self.root.join(AUDIT_FILE)
    }

    /// Creates `database/` and proves it writable with a temporary file, so a read-only or
    /// full repo is named before any work starts.
    pub fn ensure_writable(&self) -> Result<PathBuf, RepoError> {
        let dir = self.database_dir();
        let fix = "make it writable for this user, free space, or choose another --repo DIR (or $PGDRILL_REPO)";
        std::fs::create_dir_all(&dir).map_err(|e| {
            RepoError::io(
                format!("the repo {} cannot be created: {fix}", dir.display()),
                e,
            )
        })?;
        let probe = tempfile::Builder::new()
            .prefix(".pgdrill-probe-")
            .tempfile_in(&dir)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(b"probe")?;
                f.as_file().sync_all()
            });
        probe.map_err(|e| {
            RepoError::io(
                format!("the repo {} is not writable: {fix}", dir.display()),
                e,
            )
        })?;
        Ok(dir)
    }

    /// The temp files in `database/` whose writer is gone. A backup writes them only while
    /// it holds `database/.backup.lock`, so when that lock can be taken without waiting, no
    /// backup runs and every temp file there is a dead backup's; while a backup holds it,
    /// none is reported (its own temp files cannot be told from older ones). Writes nothing.
    pub fn stale_temps(&self) -> Result<StaleTemps, RepoError> {
        self.temps_while_idle(false)
    }

    /// Removes the temp files of [`Repo::stale_temps`], holding the backup lock so that no
    /// backup starts meanwhile; returns those removed (another cleaner's are left out).
    pub fn remove_stale_temps(&self) -> Result<StaleTemps, RepoError> {
        self.temps_while_idle(true)
    }

    fn temps_while_idle(&self, remove: bool) -> Result<StaleTemps, RepoError> {
        let running = StaleTemps {
            files: Vec::new(),
            backup_running: true,
        };
        let dir = self.database_dir();
        if !dir.is_dir() {
            return Ok(StaleTemps::default());
        }
        refuse_symlink(&dir)?;
        let lock_path = dir.join(BACKUP_LOCK);
        // Removing needs the lock held, so the file is created as a backup would create it;
        // a mere look writes nothing and checks afterwards that no backup began meanwhile.
        let file = if remove {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        } else {
            std::fs::File::open(&lock_path)
        };
        let lock = match file {
            // Shared: cleaners and verifiers do not exclude each other, only backups.
            Ok(f) => match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock) {
                Ok(l) => Some(l),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(running),
                Err((_, errno)) => {
                    return Err(RepoError::io(
                        format!("cannot lock {}", lock_path.display()),
                        errno.into(),
                    ))
                }
            },
            Err(e) if !remove && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(RepoError::io(
                    format!("cannot open {}", lock_path.display()),
                    e,
                ))
            }
        };
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| RepoError::io(format!("cannot list {}", dir.display()), e))?;
        let mut files = Vec::new();
        for e in rd {
            let e = e.map_err(|e| RepoError::io(format!("cannot list {}", dir.display()), e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if !is_backup_temp(&name) || !meta.file_type().is_file() {
                continue;
            }
            let path = e.path();
            if remove {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    // Another cleaner got there first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(RepoError::io(
                            format!("cannot remove {}", path.display()),
                            e,
                        ))
                    }
                }
            }
            files.push(TempFile {
                path,
                size_bytes: meta.len(),
                modified: meta
                    .modified()
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| Utc::now()),
            });
        }
        // No lock file when the listing began: a backup that created it since may own some
        // of what was listed.
        if lock.is_none() && lock_path.exists() {
            return Ok(running);
        }
        if remove && !files.is_empty() {
            crate::digest::sync_dir(&dir)
                .map_err(|e| RepoError::io(format!("cannot sync {}", dir.display()), e))?;
        }
        drop(lock);
        files.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
        Ok(StaleTemps {
            files,
            backup_running: false,
        })
    }

    /// Lists the repo. A missing repo or subdirectory is an empty listing; a subdirectory
    /// that is a symlink is refused (it would lead outside the repo).
    pub fn list(&self) -> Result<Listing, RepoError> {
        let mut listing = Listing::default();
        let mut db = std::collections::BTreeMap::<String, DatabaseBackup>::new();
        let mut cfg = std::collections::BTreeMap::<String, ConfigBackup>::new();
        if self.root.exists() {
            for (name, path, is_file) in entries(&self.root)? {
                let known = matches!(
                    name.as_str(),
                    AUDIT_FILE | HISTORY_FILE | AUDIT_LOCK | BACKUP_LOCK
                );
                let dir_ok = (name == DATABASE_DIR || name == CONFIG_DIR) && path.is_dir();
                if !(known && is_file || dir_ok && !is_symlink(&path)) {
                    listing.unknown.push(path);
                }
            }
        }
        let ddir = self.database_dir();
        if ddir.exists() {
            refuse_symlink(&ddir)?;
            for (name, path, is_file) in entries(&ddir)? {
                let parsed = is_file
                    .then(|| split_db_name(&name))
                    .flatten()
                    .and_then(|(stem, part)| Some((stem_time(stem, "backup")?, stem, part)));
                let Some((at, stem, part)) = parsed else {
                    if name != BACKUP_LOCK {
                        listing.unknown.push(path);
                    }
                    continue;
                };
                let e = db
                    .entry(stem.to_string())
                    .or_insert_with(|| DatabaseBackup {
                        name: stem.to_string(),
                        named_at: at,
                        dump: None,
                        manifest_path: ddir.join(format!("{stem}.manifest.json")),
                        globals: None,
                        manifest: Err(ManifestError::Missing(
                            ddir.join(format!("{stem}.manifest.json")),
                        )),
                    });
                match part {
                    "dump" => e.dump = Some(path),
                    "globals.sql" => e.globals = Some(path),
                    _ => {}
                }
            }
        }
        for b in db.values_mut() {
            b.manifest = backup::read_manifest(&b.manifest_path);
        }
        let cdir = self.config_dir();
        if cdir.exists() {
            refuse_symlink(&cdir)?;
            for (name, path, is_file) in entries(&cdir)? {
                let parsed = is_file
                    .then(|| split_config_name(&name))
                    .flatten()
                    .and_then(|(stem, part)| Some((stem_time(stem, "config")?, stem, part)));
                let Some((at, stem, part)) = parsed else {
                    listing.unknown.push(path);
                    continue;
                };
                let e = cfg.entry(stem.to_string()).or_insert_with(|| ConfigBackup {
                    name: stem.to_string(),
                    named_at: at,
                    archive: None,
                    manifest_path: cdir.join(format!("{stem}.manifest.json")),
                    manifest: Err("missing".into()),
                });
                if part != "manifest.json" {
                    e.archive = Some(path);
                }
            }
        }
        for c in cfg.values_mut() {
            c.manifest = read_config_manifest(&c.manifest_path);
        }
        listing.database = db.into_values().collect();
        listing
            .database
            .sort_by_key(|b| (b.created_at(), b.name.clone()));
        listing.config = cfg.into_values().collect();
        listing
            .config
            .sort_by_key(|c| (c.created_at(), c.name.clone()));
        listing.unknown.sort();
        Ok(listing)
    }
}

fn read_config_manifest(path: &Path) -> Result<ConfigManifest, String> {
    if !path.is_file() {
        return Err(format!("manifest {} is missing", path.display()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read manifest {}: {e}", path.display()))?;
    crate::json::from_str(&text)
        .map_err(|e| format!("manifest {} is not valid: {e}", path.display()))
}

/// `backup_X.dump` → (`backup_X`, `dump`); also `.manifest.json` and `.globals.sql`.
fn split_db_name(name: &str) -> Option<(&str, &str)> {
    ["manifest.json", "globals.sql", "dump"]
        .into_iter()
        .find_map(|ext| Some((name.strip_suffix(ext)?.strip_suffix('.')?, ext)))
}

/// `config_X.tar.age` → (`config_X`, `tar.age`); also `.manifest.json` and a plaintext
/// `.tar` (written only with `--insecure-plaintext`).
fn split_config_name(name: &str) -> Option<(&str, &str)> {
    ["manifest.json", "tar.age", "tar"]
        .into_iter()
        .find_map(|ext| Some((name.strip_suffix(ext)?.strip_suffix('.')?, ext)))
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

fn refuse_symlink(dir: &Path) -> Result<(), RepoError> {
    if is_symlink(dir) {
        return Err(RepoError::Layout(format!(
            "{} is a symbolic link: pgdrill never follows links out of the repo; make it a directory inside the repo",
            dir.display()
        )));
    }
    Ok(())
}

/// A temporary file a backup writes beside its final name (see `backup::temp_beside`).
fn is_backup_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// (name, path, is a regular file, not a link) of a directory's entries.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, RepoError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| RepoError::io(format!("cannot list {}", dir.display()), e))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| RepoError::io(format!("cannot list {}", dir.display()), e))?;
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        let name = e.file_name().to_string_lossy().into_owned();
        // Temporary files are no backup sets nor unknown files: those of a backup in
        // progress are its own business, those of a dead one are `stale_temps`.
        if is_backup_temp(&name) || name.starts_with(".pgdrill-probe-") {
            continue;
        }
        v.push((name, e.path(), is_file));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::new(dir.path());
        let db = repo.database_dir();
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("backup_20261201_031500.dump"), b"x").unwrap();
        std::fs::write(db.join("backup_20261201_031500.manifest.json"), b"{").unwrap();
        std::fs::write(db.join("backup_2026.dump"), b"x").unwrap();
        std::fs::write(db.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", db.join("backup_20261201_033000.dump")).unwrap();
        let l = repo.list().unwrap();
        assert_eq!(l.database.len(), 1);
        let b = &l.database[0];
        assert_eq!(b.named_at.to_rfc3339(), "2026-12-01T03:15:00+00:00");
        assert!(matches!(
            b.manifest.as_ref().unwrap_err(),
            ManifestError::Invalid { .. }
        ));
        let unknown: Vec<String> = l
            .unknown
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            unknown,
            [
                "backup_2026.dump",
                "backup_20261201_033000.dump",
                "notes.txt"
            ]
        );
    }
}
