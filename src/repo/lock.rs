//! The repo's backup lock (`database/.backup.lock`): one `pgdrill backup` at a time writes
//! into a repo. The holder writes its pid and start time into the file, so a waiter can say
//! whom it waits for; the lock itself is the kernel's `flock`, released when the holder's
//! process ends, however it ends.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{RepoError, BACKUP_LOCK};

/// The lock, held until dropped.
#[derive(Debug)]
pub struct BackupLock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

/// Who holds the lock, as its holder wrote it into the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// When it took the lock.
    pub since: DateTime<Utc>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} since {}",
            self.pid,
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// The outcome of one attempt to take the lock.
#[derive(Debug)]
pub enum Attempt {
    /// Taken: this process holds it now.
    Taken(BackupLock),
    /// Another process holds it; its record, when the file has a readable one.
    Held(Option<Holder>),
}

/// The lock file of the database directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(BACKUP_LOCK)
}

/// Tries once, without waiting, to take the lock of the database directory `dir`; when
/// taken, records this process as the holder.
pub fn try_lock(dir: &Path) -> Result<Attempt, RepoError> {
    let path = path(dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| RepoError::io(format!("cannot open {}", path.display()), e))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            let me = Holder {
                pid: std::process::id(),
                since: Utc::now(),
            };
            let write = |f: &mut std::fs::File| -> std::io::Result<()> {
                f.set_len(0)?;
                f.rewind()?;
                f.write_all(
                    format!("pid={}\nsince={}\n", me.pid, me.since.to_rfc3339()).as_bytes(),
                )?;
                f.flush()
            };
            write(&mut locked)
                .map_err(|e| RepoError::io(format!("cannot write {}", path.display()), e))?;
            Ok(Attempt::Taken(BackupLock { _file: locked }))
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Ok(Attempt::Held(parse_holder(&text)))
        }
        Err((_, errno)) => Err(RepoError::io(
            format!("cannot lock {}", path.display()),
            errno.into(),
        )),
    }
}

/// The holder recorded in a lock file's text (`pid=N`, `since=RFC 3339`); `None` for a
/// file a holder has not written yet (or an older pgdrill's empty one).
pub fn parse_holder(text: &str) -> Option<Holder> {
    let mut pid = None;
    let mut since = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("pid", v)) => pid = v.trim().parse().ok(),
            Some(("since", v)) => since = DateTime::parse_from_rfc3339(v.trim()).ok(),
            _ => {}
        }
    }
    Some(Holder {
        pid: pid?,
        since: since?.with_timezone(&Utc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_sees_the_first_holder_and_takes_it_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let Attempt::Taken(first) = try_lock(dir.path()).unwrap() else {
            panic!("a fresh lock is free");
        };
        // flock is per open file description: a second open in this process conflicts too.
        match try_lock(dir.path()).unwrap() {
            Attempt::Held(Some(h)) => assert_eq!(h.pid, std::process::id()),
            other => panic!("expected the holder, got {other:?}"),
        }
        drop(first);
        assert!(matches!(try_lock(dir.path()).unwrap(), Attempt::Taken(_)));
        assert_eq!(parse_holder(""), None);
        assert_eq!(parse_holder("pid=12\nsince=garbage\n"), None);
    }
}
