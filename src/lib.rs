//! pgdrill turns a PostgreSQL team's backup and restore strategy into disaster-recovery
//! drills that run end to end, are timed against the recovery objectives, and leave
//! evidence an auditor can file.
//!
//! The binary is thin: [`main_entry`] parses the command line, runs a [`drill`], writes the
//! [`report`], and maps the outcome to the stable exit codes of [`error::Exit`].
//!
//! # A drill in your own `cargo test`
//!
//! [`Drill::builder`] takes the flags of `pgdrill drill` as methods, validates them as the
//! command line does, runs the drill against disposable servers, and writes report.json,
//! report.md, junit.xml and events.ndjson into `out` (the PostgreSQL 15 programs must be
//! installed, as for the `pgdrill` binary):
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), pgdrill::Error> {
//! let out = tempfile::tempdir().unwrap();
//! let report = pgdrill::Drill::builder()
//!     .backend(pgdrill::BackendKind::Native)
//!     .rows(300)
//!     .seed(7)
//!     .app(pgdrill::AppChoice::None)
//!     .out(out.path())
//!     .run()
//!     .await?;
//! assert!(report.passed(), "{}", report.summary());
//! assert!(out.path().join("report.json").is_file());
//! # Ok(())
//! # }
//! ```

pub mod app;
pub mod backup;
pub mod checklist;
pub mod cli;
pub mod code;
pub mod config;
pub mod digest;
pub mod drill;
pub mod duration;
pub mod engine;
pub mod env;
pub mod env_error;
pub mod error;
pub mod pg;
pub mod plan;
pub mod preflight;
pub mod program;
pub mod progress;
pub mod regime;
pub mod repo;
pub mod report;
pub mod restore;
pub mod rpo;
pub mod scope;
pub mod seed;
pub mod snapshot;

pub use cli::AppChoice;
pub use drill::builder::{Drill, DrillBuilder};
pub use env::BackendKind;
pub use error::Error;
pub use plan::Disaster;
pub use report::Report;
pub use scope::Scope;

use std::process::ExitCode;

use crate::error::Exit;
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
        // Colour codes only where a person reads them, not in CI logs and files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        cli::Command::Backup(args) => regime::backup(args).await,
        cli::Command::Verify(args) => regime::verify(args).await,
        cli::Command::Prune(args) => regime::prune(args),
        cli::Command::Audit(args) => regime::audit(args),
        cli::Command::Config(args) => {
            config::command::run(args)?;
            Ok(Exit::Pass)
        }
        cli::Command::Clean(args) => clean(args),
        cli::Command::Drill(args) => {
            let repo = args.repo.clone();
            let publish = args.publish();
            let plan = args.into_plan(chrono::Utc::now())?;
            let cancel = drill::Cancel::new();
            let signals = tokio::spawn(forward_signals(cancel.clone()));
            let out_dir = plan.out_dir.clone();
            let report = drill::run(plan, cancel).await?;
            signals.abort();
            report.write_all(&out_dir)?;
            if let Some(repo) = &repo {
                regime::record_drill(repo, &report, &out_dir)?;
            }
            report.publish(&out_dir, &publish)?;
            print!("{}", report.summary());
            println!("  report: {}", out_dir.join("report.md").display());
            println!("  html: {}", out_dir.join("report.html").display());
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
        cli::Command::History(a) => report::history::run(&a.query()),
        cli::Command::Evidence(cli::EvidenceArgs {
            command: cli::EvidenceCommand::Verify { dir },
        }) => report::evidence::run_verify(&dir),
    }
}

/// `pgdrill clean`: one line per leftover removed (or, with `--dry-run`, to remove).
fn clean(args: cli::CleanArgs) -> Result<Exit, Error> {
    let found = env::leftovers::find(&std::env::temp_dir());
    if args.dry_run {
        for l in &found {
            println!("would remove {l}");
        }
        return Ok(if found.is_empty() {
            Exit::Pass
        } else {
            Exit::Fail
        });
    }
    let (removed, failed) = env::leftovers::remove(found);
    for l in &removed {
        println!("removed {l}");
    }
    if removed.is_empty() && failed.is_empty() {
        println!("nothing to clean");
    }
    for e in &failed {
        eprintln!("pgdrill: {e}");
    }
    Ok(if failed.is_empty() {
        Exit::Pass
    } else {
        Exit::Environment
    })
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
