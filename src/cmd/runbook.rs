//! `pgdrill runbook`: the team's restore runbook from the drill plan, the repository and the
//! drill history ([`crate::runbook`]), as Markdown on stdout or into `--out FILE` (with the
//! HTML page beside it).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Exit};
use crate::options::DrillOptions;
use crate::runbook::{self, Inputs};

/// Flags of `pgdrill runbook`.
#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// The drill plan (TOML, `pgdrill drill --plan`'s): the application's start and stop
    /// commands, the database, the code repository, the deploy command, the configuration's
    /// keys and the emergency contacts (`[contacts]`) come from it.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// The backup repository whose newest backups the runbook names (default: the plan's
    /// `repo`, else $PGDRILL_REPO).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The drill history the last drill's times come from (default `<repo>/history.ndjson`
    /// with a repository, else reports/history.ndjson, as `pgdrill history`).
    #[arg(long, value_name = "FILE", env = "PGDRILL_HISTORY")]
    pub history: Option<PathBuf>,
    /// Write the Markdown to FILE and the HTML page beside it (FILE with .html); without it
    /// the Markdown goes to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The plan file's options, read as `pgdrill drill --plan FILE` reads them (its keys are the
/// drill's flags), so that the runbook and the drill cannot read one plan two ways.
fn plan_options(path: &std::path::Path) -> Result<DrillOptions, Error> {
    let bytes = super::drill::read_plan(path)?;
    let flags = super::drill::plan_flags(path, bytes)?;
    let argv: Vec<OsString> = ["pgdrill", "drill"]
        .into_iter()
        .map(OsString::from)
        .chain(flags)
        .collect();
    let cli = <super::Cli as clap::Parser>::try_parse_from(argv).map_err(|e| {
        let said = e.to_string();
        let first = said.lines().next().unwrap_or_default();
        Error::Usage(format!(
            "--plan {}: {}",
            path.display(),
            first.strip_prefix("error: ").unwrap_or(first)
        ))
    })?;
    match cli.command {
        super::Command::Drill(d) => Ok(DrillOptions::from(d)),
        _ => unreachable!("parsed as `pgdrill drill`"),
    }
}

/// `pgdrill runbook`: exit 0 with the runbook written; 2 for a plan file that cannot be read
/// or a repository that is not one.
pub fn run(a: RunbookArgs) -> Result<Exit, Error> {
    if let Some(out) = a
        .out
        .as_ref()
        .filter(|o| o.extension().is_some_and(|e| e == "html"))
    {
        return Err(Error::Usage(format!(
            "--out {}: name the Markdown file (e.g. runbook.md); the HTML page is written beside it",
            out.display()
        )));
    }
    let plan = a.plan.as_deref().map(plan_options).transpose()?;
    let repo = a
        .repo
        .or_else(|| plan.as_ref().and_then(|p| p.repo.clone()))
        .or_else(|| {
            std::env::var_os("PGDRILL_REPO")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
    let history = a
        .history
        .unwrap_or_else(|| crate::report::history::default_path(repo.as_deref()));
    let book = runbook::gather(Inputs {
        plan,
        plan_file: a.plan.clone(),
        repo,
        history,
        now: chrono::Utc::now(),
    })?;
    let md = runbook::markdown(&book);
    for w in &book.warnings {
        eprintln!("pgdrill: warning: {}", w.message);
    }
    let Some(out) = a.out else {
        print!("{md}");
        return Ok(Exit::Pass);
    };
    let html_path = out.with_extension("html");
    for (path, text) in [(&out, md), (&html_path, runbook::html(&book))] {
        crate::digest::write_atomic_readable(path, text.as_bytes()).map_err(|source| {
            Error::Output {
                path: path.clone(),
                source,
            }
        })?;
    }
    println!("runbook: {}", out.display());
    println!("html: {}", html_path.display());
    Ok(Exit::Pass)
}
