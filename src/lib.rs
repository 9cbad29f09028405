//! pgdrill turns a PostgreSQL team's backup and restore strategy into disaster-recovery
//! drills that run end to end, are timed against the recovery objectives, and leave
//! evidence an auditor can file.
//!
//! The binary is thin: [`main_entry`] parses the command line, runs a [`drill`], writes the
//! [`report`], and maps the outcome to the stable exit codes of [`error::Exit`].

pub mod app;
pub mod backup;
pub mod checklist;
pub mod cli;
pub mod digest;
pub mod drill;
pub mod duration;
pub mod env;
pub mod error;
pub mod pg;
pub mod plan;
pub mod progress;
pub mod report;
pub mod restore;
pub mod seed;
pub mod snapshot;

use std::process::ExitCode;

use crate::error::{Error, Exit};
use crate::report::Verdict;

/// Parses the command line, runs the command, returns the process exit code.
pub fn main_entry() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(cli::ParseFailure::Clap(e)) => {
            let code = if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
        Err(cli::ParseFailure::Plan(e)) => {
            eprintln!("pgdrill: {e}");
            return e.exit().into();
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGDRILL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgdrill: cannot start the async runtime: {e}");
            return Exit::Environment.into();
        }
    };
    let exit = runtime.block_on(run(cli));
    exit.into()
}

/// Runs a parsed command line and returns the exit code; errors are printed here.
pub async fn run(cli: cli::Cli) -> Exit {
    match execute(cli).await {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("pgdrill: {e}");
            e.exit()
        }
    }
}

async fn execute(cli: cli::Cli) -> Result<Exit, Error> {
    match cli.command {
        cli::Command::Drill(args) => {
            let plan = args.into_plan(chrono::Utc::now())?;
            if matches!(plan.source, plan::Source::Dsn(_))
                && plan.disaster == plan::Disaster::DropDb
            {
                return Err(Error::Usage(
                    "--disaster drop-db cannot be combined with --source-dsn: pgdrill never writes to the source; the restore always goes to a new disposable server (server-loss)".into(),
                ));
            }
            let cancel = drill::Cancel::new();
            let signals = tokio::spawn(forward_signals(cancel.clone()));
            let out_dir = plan.out_dir.clone();
            let report = drill::run(plan, cancel).await?;
            signals.abort();
            report.write_all(&out_dir)?;
            print!("{}", report.summary());
            println!("  report: {}", out_dir.join("report.md").display());
            Ok(match report.verdict {
                Verdict::Pass => Exit::Pass,
                Verdict::Fail => Exit::Fail,
                Verdict::Error => {
                    if let Some(f) = &report.failure {
                        eprintln!("pgdrill: the drill could not run: {}", f.message);
                    }
                    Exit::Environment
                }
            })
        }
    }
}

/// Turns SIGINT and SIGTERM into a cancellation the drill notices between and during steps,
/// so that it stops its servers and still writes a report.
async fn forward_signals(cancel: drill::Cancel) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    cancel.cancel(name);
}
