//! Failure classification, in one place: every library error a phase can return becomes a
//! [`StepFail`] of one [`FailureClass`] here (`From<…> for StepFail`), the named constructors
//! a phase uses for its own judgments are here, and so is the CLI's exit code for an error
//! ([`Error::exit`]), because a configuration error counts differently in a drill and on the
//! command line and both columns belong in one table.
//!
//! Faults of the machine (`program::Fault`: a full disk, refused access, a lost server, a timeout)
//! are recognised where they are observed (`program::Fault::of_io` from the OS error,
//! `pg::fault` from the SQLSTATE, `program::Fault::said_by` from a program's stderr) and
//! arrive here typed, never as text to match.

use super::kernel::StepFail;
use crate::backup::BackupError;
use crate::code::CodeError;
use crate::config::ConfigError;
use crate::error::{EnvError, Error, Exit};
use crate::preflight::PreflightError;
use crate::report::FailureClass;
use crate::restore::RestoreError;
use crate::rpo::RpoError;

impl From<crate::regime::PickError> for StepFail {
    fn from(e: crate::regime::PickError) -> Self {
        use crate::regime::PickError as P;
        match e {
            // An empty repository is the finding a restore would make: nothing to restore.
            P::NoBackup(m) => StepFail::backup_unusable(m),
            P::Repo(e) => StepFail::environment(e.to_string()),
        }
    }
}

impl StepFail {
    /// A step without an input the scenario guarantees: a fault in pgdrill itself, said as
    /// one (class `environment`: no verdict on the backup) rather than a panic.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        StepFail::new(
            FailureClass::Environment,
            format!("internal error: {what}; this is a bug in pgdrill, please report it with this report"),
        )
    }

    /// The backup was not taken.
    pub fn backup_failed(message: impl Into<String>) -> Self {
        StepFail::new(FailureClass::BackupFailed, message)
    }

    /// The machine could not run the step (not a verdict on the backup).
    pub fn environment(message: impl Into<String>) -> Self {
        StepFail::new(FailureClass::Environment, message)
    }

    /// The backup cannot be used as it is.
    pub fn backup_unusable(message: impl Into<String>) -> Self {
        StepFail::new(FailureClass::BackupUnusable, message)
    }

    /// The backup set lacks something a restore needs.
    pub fn backup_incomplete(message: impl Into<String>) -> Self {
        StepFail::new(FailureClass::BackupIncomplete, message)
    }

    /// A restore step (or one around it) failed.
    pub fn restore_failed(message: impl Into<String>) -> Self {
        StepFail::new(FailureClass::RestoreFailed, message)
    }

    /// The restored data is not what was backed up.
    pub fn integrity(message: impl Into<String>) -> Self {
        StepFail::new(FailureClass::IntegrityMismatch, message)
    }

    /// A checklist item failed.
    pub fn checklist(message: impl Into<String>) -> Self {
        StepFail::new(FailureClass::ChecklistFailed, message)
    }
}

impl From<crate::live::LiveError> for StepFail {
    fn from(e: crate::live::LiveError) -> Self {
        match e {
            crate::live::LiveError::Env(e) => e.into(),
            crate::live::LiveError::Standby { .. }
            | crate::live::LiveError::NoCreatedb { .. }
            | crate::live::LiveError::NotOwner { .. }
            | crate::live::LiveError::SideExists { .. }
            | crate::live::LiveError::Busy { .. }
            | crate::live::LiveError::Interrupted { .. } => {
                StepFail::new(FailureClass::Environment, e.to_string())
            }
            crate::live::LiveError::Sql { .. } => {
                StepFail::new(FailureClass::RestoreFailed, e.to_string())
            }
        }
    }
}

impl From<crate::pitr::PitrError> for StepFail {
    fn from(e: crate::pitr::PitrError) -> Self {
        use crate::pitr::PitrError as P;
        match e {
            P::Env(e) => e.into(),
            // The machine or its configuration, not the backups.
            e @ (P::NotInstalled { .. } | P::Config { .. } | P::Info { .. }) => {
                StepFail::environment(e.to_string())
            }
            // Nothing to restore, a repository that fails its own check, or an archive that
            // cannot bring recovery to its target: the backups cannot be used as asked.
            e @ (P::NoStanza { .. }
            | P::NoBackup { .. }
            | P::NoSuchBackup { .. }
            | P::Verify { .. }
            | P::Damaged { .. }
            | P::WalGap { .. }
            | P::Timeline { .. }
            | P::AfterArchive { .. }
            | P::NotArchived { .. }
            | P::TargetMissed(_)) => StepFail::backup_unusable(e.to_string()),
            // The source refused the drill's lock, schema or WAL switch: its permissions.
            e @ P::Point { .. } => StepFail::environment(e.to_string()),
            e @ P::Restore { .. } => StepFail::restore_failed(e.to_string()),
        }
    }
}

impl From<EnvError> for StepFail {
    fn from(e: EnvError) -> Self {
        StepFail::environment(e.to_string())
    }
}

impl From<BackupError> for StepFail {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Env(e) => e.into(),
            // A source that went silent is the network's fault, not the backup's.
            e @ BackupError::Stalled { .. } => StepFail::environment(e.to_string()),
            other => StepFail::new(FailureClass::BackupFailed, other.to_string()),
        }
    }
}

impl From<RestoreError> for StepFail {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Unusable(m) => StepFail::backup_unusable(m),
            RestoreError::Manifest(e) => StepFail::backup_unusable(e.to_string()),
            // A full disk on the target is the drill machine's problem, not the backup's.
            RestoreError::DiskFull(m) => StepFail::environment(m),
            RestoreError::Failed(m) => StepFail::restore_failed(m),
            RestoreError::Env(e) => e.into(),
        }
    }
}

impl From<PreflightError> for StepFail {
    fn from(e: PreflightError) -> Self {
        match e {
            PreflightError::BackupIncomplete { .. } => StepFail::backup_incomplete(e.to_string()),
            PreflightError::Env(e) => e.into(),
            other => StepFail::restore_failed(other.to_string()),
        }
    }
}

impl From<RpoError> for StepFail {
    fn from(e: RpoError) -> Self {
        let class = match &e {
            e if e.is_environment() => FailureClass::Environment,
            RpoError::Integrity { .. } => FailureClass::IntegrityMismatch,
            _ => FailureClass::RestoreFailed,
        };
        StepFail::new(class, e.to_string())
    }
}

impl From<CodeError> for StepFail {
    fn from(e: CodeError) -> Self {
        use CodeError as C;
        let class = match &e {
            // The release to roll back to is not in the code's "backup", the repository.
            C::TagMissing { .. } | C::NoTags { .. } | C::NoPrevious { .. } => {
                FailureClass::BackupIncomplete
            }
            C::GitMissing { .. } => FailureClass::Environment,
            _ => FailureClass::RestoreFailed,
        };
        StepFail::new(class, e.to_string())
    }
}

impl From<ConfigError> for StepFail {
    fn from(e: ConfigError) -> Self {
        StepFail::new(config(&e).0, e.to_string())
    }
}

/// How a configuration error counts: its class in a drill, and the exit code of the
/// `pgdrill config` command that met it. A wrong identity is the operator's input on the
/// command line, like a bad flag, but in a drill the identity is the drill's own, so the
/// backup was not encrypted to it; a damaged backup or a missing key is a finding about the
/// backup either way.
fn config(e: &ConfigError) -> (FailureClass, Exit) {
    use ConfigError as C;
    use FailureClass as F;
    match e {
        C::NoRecipient
        | C::BadRecipient(_)
        | C::BadFile { .. }
        | C::BadIdentity { .. }
        | C::UnknownBackup { .. }
        | C::TargetNotEmpty(_)
        | C::NotAFile(_) => (F::RestoreFailed, Exit::Usage),
        C::WrongIdentity { .. } => (F::BackupUnusable, Exit::Usage),
        C::Tampered { .. } | C::WireGuard { .. } => (F::BackupUnusable, Exit::Fail),
        C::MissingKey { .. } | C::EmptyKey { .. } | C::NoBackup { .. } => {
            (F::BackupIncomplete, Exit::Fail)
        }
        C::Exists(_) => (F::RestoreFailed, Exit::Environment),
        C::Io { .. } => (F::Environment, Exit::Environment),
    }
}

impl Error {
    /// Why pgdrill cannot work with pgBackRest stanza `stanza` before anything started
    /// (`pgdrill verify`): [`Error::pitr`] for pgBackRest.
    pub fn stanza(stanza: &str, e: crate::pitr::PitrError) -> Error {
        Error::pitr(crate::pitr::PitrTool::Pgbackrest, stanza, e)
    }

    /// Why pgdrill cannot work with `tool`'s stanza or server `name` before anything started
    /// (the drill's check of its source, `pgdrill verify`): the tool missing or the machine's
    /// fault is exit 3; a stanza, server, configuration or target the tool's answers refuse
    /// is exit 2, named with the flag.
    pub fn pitr(tool: crate::pitr::PitrTool, name: &str, e: crate::pitr::PitrError) -> Error {
        use crate::pitr::PitrError as P;
        match e {
            P::Env(e) => e.into(),
            e @ P::NotInstalled { .. } => Error::CannotRun(e.to_string()),
            e => Error::Usage(format!("{} {name}: {e}", tool.flag())),
        }
    }

    /// The exit code the CLI returns for this error.
    pub fn exit(&self) -> Exit {
        match self {
            // A directory that is no repository is a wrong argument, refused before any work.
            Error::Usage(_) | Error::Repo(crate::repo::RepoError::NotARepo { .. }) => Exit::Usage,
            Error::Environment(_)
            | Error::Output { .. }
            | Error::Repo(_)
            | Error::Backup(_)
            | Error::CannotRun(_) => Exit::Environment,
            Error::Config(e) => config(e).1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_the_machine_s_problem_and_keeps_its_message() {
        let f: StepFail = RestoreError::DiskFull("ERROR: could not extend file".into()).into();
        assert_eq!(f.class, FailureClass::Environment);
        assert_eq!(f.message, "ERROR: could not extend file");
        let f: StepFail = RestoreError::Failed("ERROR: syntax error".into()).into();
        assert_eq!(f.class, FailureClass::RestoreFailed);
    }

    #[test]
    fn a_config_error_counts_by_one_table_in_a_drill_and_on_the_command_line() {
        let e = ConfigError::Exists("x".into());
        assert_eq!(StepFail::from(e).class, FailureClass::RestoreFailed);
        let e = Error::Config(ConfigError::Exists("x".into()));
        assert_eq!(e.exit(), Exit::Environment);
        assert_eq!(Error::Config(ConfigError::NoRecipient).exit(), Exit::Usage);
    }
}
