//! `pgdrill audit verify|show`: the repo's hash-chained audit log.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Subcommand};

use crate::duration::parse_duration;
use crate::error::{Error, Exit};
use crate::repo::audit;
use crate::repo::Repo;

/// `pgdrill audit …`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What to do with the log.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 naming the first bad event.
    Verify {
        /// The repository (default `$PGDRILL_REPO`, then /backups).
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
    },
    /// Print the events.
    Show {
        /// The repository (default `$PGDRILL_REPO`, then /backups).
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Only events younger than this (e.g. 7d).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        since: Option<Duration>,
    },
}

/// `pgdrill audit verify|show`.
pub fn run(args: AuditArgs) -> Result<Exit, Error> {
    match args.command {
        AuditCommand::Verify { repo } => {
            let repo = Repo::resolve(repo);
            let path = repo.audit_path();
            if !path.is_file() {
                return Err(Error::Usage(format!(
                    "{}: no audit log; give the --repo that pgdrill commands write to",
                    path.display()
                )));
            }
            match audit::verify_chain(&path)? {
                Ok(n) => {
                    println!("audit log {} intact: {n} events", path.display());
                    Ok(Exit::Pass)
                }
                Err(b) => {
                    println!(
                        "audit log {} is broken at line {}: {}",
                        path.display(),
                        b.line,
                        b.reason
                    );
                    Ok(Exit::Fail)
                }
            }
        }
        AuditCommand::Show { repo, since } => {
            let repo = Repo::resolve(repo);
            let from = since.map(|d| crate::duration::before(Utc::now(), d));
            for e in audit::events(repo.root())? {
                if from.is_some_and(|f| e.at().is_some_and(|t| t < f)) {
                    continue;
                }
                let object = e
                    .object
                    .file
                    .clone()
                    .or_else(|| e.object.report.as_ref().map(|r| r.file.clone()))
                    .unwrap_or_else(|| format!("{} files", e.object.files.len()));
                println!(
                    "{:>5} {} {}@{} {:<13} {:<8} {} {}",
                    e.seq,
                    e.time,
                    e.who.user,
                    e.who.host,
                    serde_json::to_value(e.action)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    e.result.as_str(),
                    object,
                    e.detail.as_deref().unwrap_or("")
                );
            }
            Ok(Exit::Pass)
        }
    }
}
