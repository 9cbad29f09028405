//! `pgdrill history`: the summary of past drills (text or JSON), the overview page, and the
//! staleness alarm.

use std::path::PathBuf;

use chrono::Utc;
use clap::Args;

use crate::duration::{parse_duration, parse_time};
use crate::error::{Error, Exit};
use crate::report::history;

/// Flags of `pgdrill history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The history file (default `<repo>/history.ndjson` with --repo, else reports/history.ndjson).
    #[arg(long, value_name = "FILE", env = "PGDRILL_HISTORY")]
    pub history: Option<PathBuf>,
    /// The backup repository whose drills to summarise (its history.ndjson).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Only drills that finished this long before --at.
    #[arg(long, value_name = "DUR", default_value = "90d", value_parser = parse_duration)]
    pub since: std::time::Duration,
    /// Exit 1 unless a drill passed within this long before --at (the staleness alarm).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_age: Option<std::time::Duration>,
    /// Evaluate as of this moment (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write an overview page to FILE: the pass rate, the RTO used and the restore time
    /// against backup size as charts, and every drill with a link to its report.html.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// `pgdrill history`: prints the summary (text or JSON), writes the page when asked; exit 1
/// when `--max-age` finds no recent passing drill, 2 when the history file does not exist.
pub fn run(a: HistoryArgs) -> Result<Exit, Error> {
    let path = a
        .history
        .unwrap_or_else(|| history::default_path(a.repo.as_deref()));
    let entries = history::read(&path)?;
    let s = history::summarise(&entries, a.at.unwrap_or_else(Utc::now), a.since, a.max_age);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("summary serialises")
        );
    } else {
        print!("{}", history::render_text(&s));
    }
    if let Some(file) = &a.html {
        crate::digest::write_atomic(file, history::render_html(&s, file).as_bytes()).map_err(
            |source| Error::Output {
                path: file.clone(),
                source,
            },
        )?;
    }
    Ok(if s.fresh == Some(false) {
        Exit::Fail
    } else {
        Exit::Pass
    })
}
