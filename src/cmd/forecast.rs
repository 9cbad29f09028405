//! `pgdrill forecast`: the database restore time projected at a backup size from the drill
//! history, with its interval, against the `database_restore` budget.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::duration::parse_duration;
use crate::env::BackendKind;
use crate::error::{Error, Exit};
use crate::report::forecast::{self, Forecast, Group, Outlook};
use crate::report::history;

/// Flags of `pgdrill forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// The history file (default `<repo>/history.ndjson` with --repo, else reports/history.ndjson).
    #[arg(long, value_name = "FILE", env = "PGDRILL_HISTORY")]
    pub history: Option<PathBuf>,
    /// The backup repository whose drills to fit (its history.ndjson).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The backup size to project at: bytes, or a number with kB, MB, GB, TB (powers of
    /// 1000) or KiB, MiB, GiB, TiB (powers of 1024), such as 50GB or 1.5TiB.
    #[arg(long, value_name = "SIZE", value_parser = forecast::parse_size)]
    pub size: u64,
    /// Only the drills on this backend (default: the newest drill's backend and -j).
    #[arg(long, value_name = "BACKEND", value_enum)]
    pub backend: Option<DrilledOn>,
    /// Only the drills whose pg_restore ran with this -j (default: the newest drill's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// The database_restore budget to judge against (default: the newest drill's of the
    /// group, else 15m).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub budget: Option<std::time::Duration>,
    /// Print the forecast as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The backends a drill restores on (`--backend` of `forecast`: never `auto`, which a drill
/// resolves before it records its backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrilledOn {
    /// The native backend.
    Native,
    /// The docker backend.
    Docker,
}

impl From<DrilledOn> for BackendKind {
    fn from(b: DrilledOn) -> BackendKind {
        match b {
            DrilledOn::Native => BackendKind::Native,
            DrilledOn::Docker => BackendKind::Docker,
        }
    }
}

/// What `--json` prints: the group asked for, then every group.
#[derive(Debug, Serialize)]
struct Output<'a> {
    /// The history read.
    history: String,
    /// The size projected at.
    size_bytes: u64,
    /// The group asked for (or the newest drill's).
    group: &'a Group,
    /// Every group of the history, the newest drill's first.
    groups: &'a [Group],
}

/// `pgdrill forecast`: exit 0 when the projection is within the budget (or nothing could
/// be projected: fewer than 3 backup sizes), 1 when the projection is over it, 2 for a
/// missing history file, a bad flag or a backend and -j no drill ran with.
pub fn run(a: ForecastArgs) -> Result<Exit, Error> {
    let path = a
        .history
        .unwrap_or_else(|| history::default_path(a.repo.as_deref()));
    let entries = history::read(&path)?;
    let backend = a.backend.map(BackendKind::from);
    let budget = a
        .budget
        .map(|b| u64::try_from(b.as_millis()).unwrap_or(u64::MAX));
    let f = Forecast::of(&entries, a.size, budget);
    let group = match f.pick(backend, a.jobs) {
        Some(g) => g,
        None if f.groups.is_empty() => return not_enough(&path, a.size, a.json),
        None => {
            let have: Vec<String> = f.groups.iter().map(Group::label).collect();
            return Err(Error::Usage(format!(
                "{} holds no drill on {}: its drills ran on {}; choose one with --backend and --jobs, or drop them for the newest drill's",
                path.display(),
                match (backend, a.jobs) {
                    (Some(b), Some(j)) => format!("{b} -j {j}"),
                    (Some(b), None) => b.to_string(),
                    (None, Some(j)) => format!("-j {j}"),
                    (None, None) => unreachable!("the newest drill's group always matches"),
                },
                have.join(", ")
            )));
        }
    };
    if a.json {
        let out = Output {
            history: path.display().to_string(),
            size_bytes: a.size,
            group,
            groups: &f.groups,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("forecast serialises")
        );
    } else {
        println!("forecast from {} ({}):", path.display(), group.label());
        for l in &group.summary {
            println!("  {l}");
        }
        let others: Vec<String> = f
            .groups
            .iter()
            .filter(|g| !std::ptr::eq(*g, group))
            .map(|g| format!("{} ({} drills)", g.label(), g.points.len()))
            .collect();
        if !others.is_empty() {
            println!("  other groups (--backend, --jobs): {}", others.join(", "));
        }
    }
    Ok(match group.outlook {
        Outlook::Over => Exit::Fail,
        Outlook::Within | Outlook::AtRisk | Outlook::NotEnough => Exit::Pass,
    })
}

/// A history with no drill that counts: nothing projected, exit 0.
fn not_enough(path: &std::path::Path, size: u64, json: bool) -> Result<Exit, Error> {
    let line = format!(
        "not enough drills to forecast: {} holds no drill that restored (test drills and drills that could not run are not counted); {} different backup sizes are needed, nothing is projected",
        path.display(),
        forecast::MIN_SIZES
    );
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "history": path.display().to_string(),
                "size_bytes": size,
                "group": null,
                "groups": [],
                "summary": [line],
            }))
            .expect("forecast serialises")
        );
    } else {
        println!("forecast from {}:\n  {line}", path.display());
    }
    Ok(Exit::Pass)
}
