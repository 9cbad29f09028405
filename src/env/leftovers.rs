//! Leftovers of drills whose process is gone: a `kill -9` of pgdrill stops its servers (their
//! parent-death signal) but cannot remove their directories. Each directory the native
//! backend makes carries an [`OWNER_FILE`] naming the process that owns it; a directory whose
//! owner is gone is a leftover that the next drill, or `pgdrill clean`, removes.

use std::path::{Path, PathBuf};

use crate::env_error::EnvError;

/// The marker file in each directory pgdrill makes: `pid`, process start time and drill id.
pub const OWNER_FILE: &str = ".pgdrill-owner";
/// The name every such directory starts with (in `$TMPDIR`).
pub const DIR_PREFIX: &str = "pgdrill-";
/// The role in the name of the docker backend's marker directory (`pgdrill-<id>-docker-…`).
pub const DOCKER_ROLE: &str = "docker-";

/// A process, identified across pid reuse by its start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The process id.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: a reused pid has another start time.
    pub start: u64,
}

impl Owner {
    /// The running process.
    pub fn current() -> Option<Owner> {
        let pid = std::process::id();
        start_time(pid).map(|start| Owner { pid, start })
    }

    /// Whether this very process still runs (not merely one with the same pid).
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Writes the marker that makes `dir` this process's, for `drill_id`.
pub fn mark(dir: &Path, drill_id: &str) -> Result<(), EnvError> {
    let owner = Owner::current().ok_or_else(|| EnvError::ServerStart {
        reason: "cannot read this process's start time from /proc/self/stat; pgdrill needs /proc (Linux) to tell its own leftovers from a live drill's".into(),
    })?;
    let path = dir.join(OWNER_FILE);
    std::fs::write(
        &path,
        format!(
            "pid={}\nstart={}\ndrill={drill_id}\n",
            owner.pid, owner.start
        ),
    )
    .map_err(|e| EnvError::io(format!("cannot write {}", path.display()), e))
}

/// Removes the marker, so that a directory kept on purpose (`--keep`) is not a leftover.
pub fn unmark(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(OWNER_FILE));
}

/// A directory of a drill whose process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The directory.
    pub path: PathBuf,
    /// The drill that made it.
    pub drill_id: String,
    /// Its owner, no longer running.
    pub owner: Owner,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (drill {}, pid {} gone)",
            self.path.display(),
            self.drill_id,
            self.owner.pid
        )
    }
}

fn read_marker(dir: &Path) -> Option<(Owner, String)> {
    let text = std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(str::to_string)
    };
    let owner = Owner {
        pid: field("pid")?.parse().ok()?,
        start: field("start")?.parse().ok()?,
    };
    Some((owner, field("drill")?))
}

/// The leftovers in `tmp`: directories named `pgdrill-…` holding a marker whose owner is
/// gone. Directories without a marker (another program's, or a `--keep`) are never listed.
pub fn find(tmp: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    let mut found: Vec<Leftover> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(DIR_PREFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let path = e.path();
            let (owner, drill_id) = read_marker(&path)?;
            (!owner.alive()).then_some(Leftover {
                path,
                drill_id,
                owner,
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Removes each leftover (for a docker drill's marker, also its labelled containers and
/// network); returns one line per thing removed and, for the others, why not.
pub fn remove(leftovers: Vec<Leftover>) -> (Vec<String>, Vec<EnvError>) {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for l in leftovers {
        let docker = l
            .path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&format!("-{DOCKER_ROLE}")));
        if docker {
            removed.extend(crate::engine::remove_labelled(&l.drill_id));
        }
        match std::fs::remove_dir_all(&l.path) {
            Ok(()) => removed.push(l.to_string()),
            // Another drill or clean got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed.push(EnvError::io(
                format!("cannot remove {}", l.path.display()),
                e,
            )),
        }
    }
    (removed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_another_start_time_is_not() {
        let me = Owner::current().unwrap();
        assert!(me.alive());
        assert!(!Owner {
            start: me.start + 1,
            ..me
        }
        .alive());
    }

    #[test]
    fn only_marked_directories_of_dead_owners_are_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join("pgdrill-d1-target-x");
        let live = tmp.path().join("pgdrill-d2-target-y");
        let unmarked = tmp.path().join("pgdrill-d3-target-z");
        let other = tmp.path().join("someone-else");
        for d in [&dead, &live, &unmarked, &other] {
            std::fs::create_dir(d).unwrap();
        }
        mark(&live, "d2").unwrap();
        let me = Owner::current().unwrap();
        let gone = format!("pid={}\nstart={}\ndrill=d1\n", me.pid, me.start + 1);
        std::fs::write(dead.join(OWNER_FILE), &gone).unwrap();
        std::fs::write(other.join(OWNER_FILE), &gone).unwrap();
        let found = find(tmp.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, dead);
        assert_eq!(found[0].drill_id, "d1");
        let (removed, failed) = remove(found);
        assert_eq!((removed.len(), failed.len()), (1, 0));
        assert!(!dead.exists() && live.exists() && unmarked.exists() && other.exists());
    }
}
