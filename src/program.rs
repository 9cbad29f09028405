//! The programs pgdrill runs (PostgreSQL's, `docker`, `cp`), traced at debug level: each
//! start with its program and arguments, each end with its exit status. Environment values
//! are never traced: that is where passwords go (PGPASSWORD), never on the command line.
//! A leaf module: it depends on nothing else in pgdrill.

use std::ffi::OsStr;
use std::process::{ExitStatus, Output};

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
    fn output_reports_the_real_exit_status() {
        let out = output_sync(std::process::Command::new("false").arg("x")).unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = output_sync(&mut std::process::Command::new("/nonexistent/program"));
        assert!(err.is_err());
    }
}
