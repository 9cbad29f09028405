//! The programs pgdrill runs (PostgreSQL's, `docker`, `cp`), traced at debug level: each
//! start with its program and arguments, each end with its exit status. Environment values
//! are never traced: that is where passwords go (PGPASSWORD), never on the command line.
//! A leaf module: it depends on nothing else in pgdrill.

use std::ffi::OsStr;
use std::process::{ExitStatus, Output};

/// Makes the program `cmd` starts receive `signal` when pgdrill dies, even killed outright
/// (SIGKILL): a server or a pg_dump writing a file would otherwise outlive it. Linux sends it
/// when the thread that spawned the child exits; tokio's workers live as long as the runtime.
pub fn die_with_parent(cmd: &mut tokio::process::Command, signal: nix::sys::signal::Signal) {
    // SAFETY: only an async-signal-safe system call between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
}

/// `program arg arg …` of a command, for traces and messages (no environment).
pub fn command_line(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The program's name without its directory, as traces name it.
fn name(cmd: &std::process::Command) -> String {
    std::path::Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned()
}

/// Traces that `cmd` starts; returns the name to trace its end under.
pub fn started(cmd: &std::process::Command) -> String {
    let program = name(cmd);
    tracing::debug!(program = %program, command = %command_line(cmd), "running a program");
    program
}

/// Traces how a program ended (or that it could not be run or waited for).
pub fn ended(program: &str, status: &std::io::Result<ExitStatus>) {
    match status {
        Ok(s) => tracing::debug!(program = %program, status = %s, "program ended"),
        Err(e) => tracing::debug!(program = %program, error = %e, "program could not be run"),
    }
}

/// `tokio`'s `Command::output`, traced.
pub async fn output(cmd: &mut tokio::process::Command) -> std::io::Result<Output> {
    let program = started(cmd.as_std());
    let out = cmd.output().await;
    ended(&program, &out.as_ref().map(|o| o.status).map_err(clone_err));
    out
}

/// `std`'s `Command::output`, traced (for `Drop` and other synchronous places).
pub fn output_sync(cmd: &mut std::process::Command) -> std::io::Result<Output> {
    let program = started(cmd);
    let out = cmd.output();
    ended(&program, &out.as_ref().map(|o| o.status).map_err(clone_err));
    out
}

/// `tokio`'s `Command::spawn`, traced; trace the end with [`ended`] when waiting.
pub fn spawn(
    cmd: &mut tokio::process::Command,
) -> std::io::Result<(tokio::process::Child, String)> {
    let program = started(cmd.as_std());
    match cmd.spawn() {
        Ok(child) => Ok((child, program)),
        Err(e) => {
            ended(&program, &Err(clone_err(&e)));
            Err(e)
        }
    }
}

/// What the machine did to a step, as opposed to what the step found: recognised once, from
/// the OS error (an [`std::io::Error`]), the server's SQLSTATE (`pg::fault`) or, when only a
/// child program's words are left, from its stderr ([`Fault::said_by`]), so no caller matches
/// error text of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A disk filled up (ENOSPC, SQLSTATE 53100).
    DiskFull,
    /// The OS or the server refused access (EACCES/EPERM, SQLSTATE 42501).
    PermissionDenied,
    /// The server went away mid-conversation (SQLSTATE 57P01–57P03, class 08, a closed
    /// connection).
    ServerLost,
    /// Something did not answer in time (ETIMEDOUT).
    Timeout,
}

impl Fault {
    /// The fault an OS error reports, if it is one of these.
    pub fn of_io(e: &std::io::Error) -> Option<Fault> {
        use nix::errno::Errno;
        use std::io::ErrorKind as K;
        let errno = e.raw_os_error().map(Errno::from_raw);
        match (e.kind(), errno) {
            (K::StorageFull, _) | (_, Some(Errno::ENOSPC)) => Some(Fault::DiskFull),
            (K::PermissionDenied, _) | (_, Some(Errno::EACCES | Errno::EPERM)) => {
                Some(Fault::PermissionDenied)
            }
            (K::TimedOut, _) | (_, Some(Errno::ETIMEDOUT)) => Some(Fault::Timeout),
            (K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe, _) => {
                Some(Fault::ServerLost)
            }
            _ => None,
        }
    }

    /// The fault a failed program's stderr names: the C library's words for the errno
    /// (`strerror`), which PostgreSQL's programs and servers print after the file they were
    /// writing. Only for programs whose exit status is all the OS error there is.
    pub fn said_by(stderr: &str) -> Option<Fault> {
        if stderr.contains("No space left on device") {
            Some(Fault::DiskFull)
        } else if stderr.contains("Permission denied") {
            Some(Fault::PermissionDenied)
        } else {
            None
        }
    }
}

fn clone_err(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_has_the_arguments_and_never_the_environment() {
        let mut cmd = std::process::Command::new("/usr/bin/pg_dump");
        cmd.args(["-Fc", "--no-password"])
            .env("PGPASSWORD", "s3cret-value");
        assert_eq!(command_line(&cmd), "/usr/bin/pg_dump -Fc --no-password");
        assert_eq!(name(&cmd), "pg_dump");
    }

    #[test]
    fn faults_are_recognised_from_the_os_error_and_a_program_s_words() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            Fault::of_io(&Error::from_raw_os_error(28)),
            Some(Fault::DiskFull)
        );
        assert_eq!(
            Fault::of_io(&Error::from(ErrorKind::StorageFull)),
            Some(Fault::DiskFull)
        );
        assert_eq!(
            Fault::of_io(&Error::from_raw_os_error(13)),
            Some(Fault::PermissionDenied)
        );
        assert_eq!(
            Fault::of_io(&Error::from(ErrorKind::TimedOut)),
            Some(Fault::Timeout)
        );
        assert_eq!(Fault::of_io(&Error::from(ErrorKind::NotFound)), None);
        assert_eq!(
            Fault::said_by(
                "pg_restore: error: could not extend file \"base/1/2\": No space left on device"
            ),
            Some(Fault::DiskFull)
        );
        assert_eq!(Fault::said_by("pg_restore: error: syntax error"), None);
    }

    #[test]
    fn output_reports_the_real_exit_status() {
        let out = output_sync(std::process::Command::new("false").arg("x")).unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = output_sync(&mut std::process::Command::new("/nonexistent/program"));
        assert!(err.is_err());
    }
}
