//! Typed errors of the library and the stable exit codes (mapped from errors in
//! `drill::classify`).

use std::process::ExitCode;

pub use crate::env_error::EnvError;

/// Everything that stops pgdrill before it can give a verdict on a backup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or drill plan is wrong; nothing was started.
    #[error("{0}")]
    Usage(String),
    /// The machine cannot run the drill (binaries, Docker, disk, ports, an unreachable source).
    #[error(transparent)]
    Environment(#[from] EnvError),
    /// The backup repository cannot be read or written (`pgdrill backup|verify|prune|audit`).
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// `pgdrill backup` could not take the backup.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// Writing the report or the backup directory failed.
    #[error("cannot write {path}: {source}. Check that the directory is writable and the disk has space (--out DIR chooses another place).")]
    Output {
        /// The file or directory that could not be written.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A config backup or restore failed (see [`crate::config::ConfigError`]).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A command refused to start (a code rollback without a release to go back to, say);
    /// the message names the fix, and nothing was done.
    #[error("{0}")]
    CannotRun(String),
}

/// The stable exit codes of the CLI contract (the user guide: docs/src/drills.md#exit-codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The drill ran and passed.
    Pass = 0,
    /// The drill ran and failed; the report says which phase and why.
    Fail = 1,
    /// The command line was wrong.
    Usage = 2,
    /// The drill could not be run here; not a verdict on the backup.
    Environment = 3,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

// `Error::exit`, the exit code of each error, is in `drill::classify`, beside the failure
// classes: a configuration error counts by one table in both.

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
