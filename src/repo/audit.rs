//! The repo's audit log, `audit.ndjson`: one JSON event per line, each carrying its sequence
//! number, its own SHA-256 and its predecessor's, so that editing, removing, reordering or
//! inserting a line breaks the chain at the first bad event. Appends hold an exclusive
//! `flock` and are fsynced. Events name files and checksums, never a secret.
//!
//! Other commands record themselves with [`append`]:
//!
//! ```no_run
//! use pgdrill::repo::audit::{self, Action, Object, Outcome};
//! let object = Object::file("config/config_20261201_030000.tar.age", "ab12…");
//! audit::append(std::path::Path::new("/backups"), Action::ConfigBackup, object, Outcome::Ok, None)?;
//! # Ok::<(), pgdrill::repo::RepoError>(())
//! ```

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RepoError, AUDIT_FILE, AUDIT_LOCK};

/// The `prev_sha256` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `pgdrill backup`.
    Backup,
    /// `pgdrill verify`.
    Verify,
    /// `pgdrill prune --confirm` (a dry run is not recorded: it changes nothing).
    Prune,
    /// `pgdrill clean --repo`: temp files of dead backups removed.
    Clean,
    /// `pgdrill drill --repo`.
    Drill,
    /// `pgdrill config backup`.
    ConfigBackup,
    /// `pgdrill config restore`.
    ConfigRestore,
    /// `pgdrill restore --confirm`: about to change the named server.
    RestoreStarted,
    /// `pgdrill restore --confirm`: done, with its verdict.
    RestoreFinished,
    /// `pgdrill config restore --confirm`: about to change the application's configuration.
    ConfigRestoreStarted,
    /// `pgdrill config restore --confirm`: done, with its verdict.
    ConfigRestoreFinished,
    /// `pgdrill rollback --confirm`: about to deploy an earlier release.
    RollbackStarted,
    /// `pgdrill rollback --confirm`: done, with its verdict.
    RollbackFinished,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done, nothing wrong.
    Ok,
    /// Done, with findings (verify).
    Findings,
    /// A drill passed.
    Pass,
    /// A drill ran and failed.
    Fail,
    /// Could not be done.
    Failed,
}

impl Outcome {
    /// The name in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Findings => "findings",
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Failed => "failed",
        }
    }
}

/// A file and its checksum.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRef {
    /// Path relative to the repo (or absolute for a report outside it).
    pub file: String,
    /// SHA-256, hex.
    pub sha256: String,
}

/// What an event is about.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Object {
    /// The main file (a dump, an archive), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A drill's report.json and its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<FileRef>,
    /// Files read and found to match their manifest (verify), or deleted (prune).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRef>,
}

impl Object {
    /// One file and its SHA-256.
    pub fn file(file: impl Into<String>, sha256: impl Into<String>) -> Object {
        Object {
            file: Some(file.into()),
            sha256: Some(sha256.into()),
            ..Object::default()
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Who {
    /// The OS user.
    pub user: String,
    /// The host name.
    pub host: String,
    /// The CI run, from the CI system's environment (GITHUB_RUN_ID, CI_PIPELINE_ID, BUILD_ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run: Option<String>,
}

impl Who {
    /// This process's user, host and CI run.
    pub fn current() -> Who {
        let uid = nix::unistd::geteuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let ci_run = ["GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILD_ID", "CI_JOB_ID"]
            .iter()
            .find_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")));
        Who { user, host, ci_run }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// Who.
    pub who: Who,
    /// What.
    pub action: Action,
    /// On what.
    pub object: Object,
    /// With what result.
    pub result: Outcome,
    /// A short human note (an error message, a count), never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The previous event's `sha256` ([`GENESIS`] for the first).
    pub prev_sha256: String,
    /// SHA-256 of this event's JSON with this field empty.
    pub sha256: String,
}

impl Event {
    /// The checksum this event should carry.
    pub fn compute_sha256(&self) -> String {
        let mut e = self.clone();
        e.sha256 = String::new();
        crate::digest::sha256_hex(
            serde_json::to_string(&e)
                .expect("event serialises")
                .as_bytes(),
        )
    }

    /// The event's time.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        crate::duration::parse_time(&self.time).ok()
    }
}

/// Appends one event to `<repo>/audit.ndjson` under an exclusive lock, fsynced, and returns
/// it. `at` defaults to now.
pub fn append(
    repo: &Path,
    action: Action,
    object: Object,
    result: Outcome,
    detail: Option<String>,
) -> Result<Event, RepoError> {
    append_at(repo, action, object, result, detail, Utc::now())
}

/// [`append`] with an explicit time (tests and `--at`).
pub fn append_at(
    repo: &Path,
    action: Action,
    object: Object,
    result: Outcome,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> Result<Event, RepoError> {
    let path = repo.join(AUDIT_FILE);
    append_to(&path, &lock_path(&path), action, object, result, detail, at)
}

/// Where a command's audit events go: a repository's log, locked by the repository's own
/// lock as every other writer of it is, or a loose file (`--audit-log FILE`, for a backup
/// that is no repository's), locked by `FILE.lock` beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Log {
    /// The audit log of the repository at this directory.
    Repo(std::path::PathBuf),
    /// An audit log file of its own.
    File(std::path::PathBuf),
}

impl Log {
    /// Appends one event, chained to the last.
    pub fn append(
        &self,
        action: Action,
        object: Object,
        result: Outcome,
        detail: Option<String>,
    ) -> Result<Event, RepoError> {
        match self {
            Log::Repo(dir) => append(dir, action, object, result, detail),
            Log::File(path) => append_to_file(path, action, object, result, detail),
        }
    }
}

/// [`append`] to an audit log outside a repository (`pgdrill restore --audit-log FILE`),
/// locked by `FILE.lock` beside it.
pub fn append_to_file(
    path: &Path,
    action: Action,
    object: Object,
    result: Outcome,
    detail: Option<String>,
) -> Result<Event, RepoError> {
    append_to(
        path,
        &lock_path(path),
        action,
        object,
        result,
        detail,
        Utc::now(),
    )
}

fn append_to(
    path: &Path,
    lock: &Path,
    action: Action,
    object: Object,
    result: Outcome,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> Result<Event, RepoError> {
    let ctx = |what: &str| format!("audit log {}: cannot {what}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| RepoError::io(ctx("create its directory"), e))?;
    }
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .map_err(|e| RepoError::io(ctx("open its lock"), e))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| RepoError::io(ctx("lock it"), errno.into()))?;
    let last = read_unlocked(path)?.into_iter().last();
    let (seq, prev) = match last {
        Some(Ok(e)) => (e.seq + 1, e.sha256),
        Some(Err(bad)) => {
            return Err(RepoError::Layout(format!(
                "audit log {}: its last line is not an event ({bad}); run `pgdrill audit verify` and repair the log before appending",
                path.display()
            )))
        }
        None => (1, GENESIS.to_string()),
    };
    let mut event = Event {
        seq,
        time: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        who: Who::current(),
        action,
        object,
        result,
        detail,
        prev_sha256: prev,
        sha256: String::new(),
    };
    event.sha256 = event.compute_sha256();
    let mut line = serde_json::to_string(&event).expect("event serialises");
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| RepoError::io(ctx("open it"), e))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| RepoError::io(ctx("append to it"), e))?;
    Ok(event)
}

/// The lock every writer of the log at `path` holds: a repository's `.audit.lock`, or
/// `FILE.lock` beside a loose log.
fn lock_path(path: &Path) -> PathBuf {
    if path.file_name() == Some(std::ffi::OsStr::new(AUDIT_FILE)) {
        return path.with_file_name(AUDIT_LOCK);
    }
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    PathBuf::from(lock)
}

/// Each line of the log, parsed or the parse error; a missing log is empty.
///
/// Read under a shared lock on the writers' lock: a writer's line is one `write`, but a
/// concurrent read of a regular file may still see half of it, and a prune or verify that
/// read half an event would call a sound log broken.
pub fn read_events(path: &Path) -> Result<Vec<Result<Event, String>>, RepoError> {
    // Read-only, and only if it exists: an auditor may read a log they cannot write, and a
    // log no writer has locked has nobody to wait for.
    let _shared = std::fs::File::open(lock_path(path))
        .ok()
        .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockShared).ok());
    read_unlocked(path)
}

fn read_unlocked(path: &Path) -> Result<Vec<Result<Event, String>>, RepoError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RepoError::io(format!("cannot read {}", path.display()), e)),
    };
    let mut v = Vec::new();
    // Bytes, not lines of text: a line that is not UTF-8 is that line's error, not the file's.
    for line in std::io::BufReader::new(f).split(b'\n') {
        let line = line.map_err(|e| RepoError::io(format!("cannot read {}", path.display()), e))?;
        if line.trim_ascii().is_empty() {
            continue;
        }
        v.push(
            std::str::from_utf8(&line)
                .map_err(|e| e.to_string())
                .and_then(crate::json::from_str::<Event>),
        );
    }
    Ok(v)
}

/// The events of a log that is intact (the audit log is evidence: a broken one is an error).
pub fn events(repo: &Path) -> Result<Vec<Event>, RepoError> {
    let path = repo.join(AUDIT_FILE);
    read_events(&path)?
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            e.map_err(|bad| {
                RepoError::Layout(format!(
                    "audit log {} line {}: not an event ({bad})",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// The first break in the chain: the line, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and what it suggests (edited, removed, reordered, inserted).
    pub reason: String,
}

/// Recomputes the chain; `Ok(n)` with the number of good events, or the first bad one.
pub fn verify_chain(path: &Path) -> Result<Result<usize, Break>, RepoError> {
    let mut prev = GENESIS.to_string();
    let lines = read_events(path)?;
    let n = lines.len();
    for (i, e) in lines.into_iter().enumerate() {
        let line = i + 1;
        let bad = |reason: String| Ok(Err(Break { line, reason }));
        let e = match e {
            Ok(e) => e,
            Err(why) => return bad(format!("not an event ({why}): the line was edited")),
        };
        if e.sha256 != e.compute_sha256() {
            return bad(format!(
                "event seq {}: its content does not match its sha256: the line was edited",
                e.seq
            ));
        }
        if e.seq != line as u64 {
            let what = if e.seq > line as u64 {
                "an event before it was removed"
            } else {
                "an event was inserted or the lines were reordered"
            };
            return bad(format!("expected seq {line}, found seq {}: {what}", e.seq));
        }
        if e.prev_sha256 != prev {
            return bad(format!(
                "event seq {}: prev_sha256 does not match the event before it: an event was removed, inserted or reordered",
                e.seq
            ));
        }
        prev = e.sha256;
    }
    Ok(Ok(n))
}

/// The path of the audit log of `repo`.
pub fn path(repo: &Path) -> PathBuf {
    repo.join(AUDIT_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(n: usize) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            append(
                dir.path(),
                Action::Backup,
                Object::file(format!("database/backup_{i}.dump"), "ab"),
                Outcome::Ok,
                None,
            )
            .unwrap();
        }
        let lines = std::fs::read_to_string(path(dir.path()))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        (dir, lines)
    }

    fn check(dir: &Path, lines: &[String]) -> Result<usize, Break> {
        std::fs::write(path(dir), lines.join("\n") + "\n").unwrap();
        verify_chain(&path(dir)).unwrap()
    }

    #[test]
    fn intact_chain_verifies() {
        let (dir, lines) = log_of(4);
        assert_eq!(check(dir.path(), &lines), Ok(4));
    }

    #[test]
    fn edit_remove_reorder_insert_are_named() {
        let (dir, lines) = log_of(4);
        let mut edited = lines.clone();
        edited[1] = edited[1].replace("backup_1", "backup_9");
        let b = check(dir.path(), &edited).unwrap_err();
        assert_eq!(b.line, 2);
        assert!(b.reason.contains("edited"), "{}", b.reason);

        let mut removed = lines.clone();
        removed.remove(1);
        let b = check(dir.path(), &removed).unwrap_err();
        assert_eq!(b.line, 2);
        assert!(b.reason.contains("removed"), "{}", b.reason);

        let mut reordered = lines.clone();
        reordered.swap(1, 2);
        assert_eq!(check(dir.path(), &reordered).unwrap_err().line, 2);

        let mut inserted = lines.clone();
        inserted.insert(2, lines[0].clone());
        let b = check(dir.path(), &inserted).unwrap_err();
        assert_eq!(b.line, 3);
        assert!(b.reason.contains("inserted"), "{}", b.reason);
    }

    /// CI once saw prune read half of a backup's event and call the log broken: a reader
    /// waits for the writer's lock, so a line written in two pieces is read whole.
    #[test]
    fn a_reader_never_sees_half_of_an_event_being_written() {
        let (dir, lines) = log_of(2);
        let log = path(dir.path());
        let lock = std::fs::File::create(dir.path().join(AUDIT_LOCK)).unwrap();
        let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
        let third = lines[1].replace("backup_1", "backup_2");
        let (head, tail) = third.split_at(third.len() / 2);
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(head.as_bytes()).unwrap();
        let reader = std::thread::spawn({
            let log = log.clone();
            move || read_events(&log).unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        f.write_all(format!("{tail}\n").as_bytes()).unwrap();
        drop(held);
        let read = reader.join().unwrap();
        assert_eq!(read.len(), 3);
        assert!(read.iter().all(Result::is_ok), "{read:?}");
    }
}
