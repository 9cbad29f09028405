//! `pgdrill prune`: retention with floors, a dry run unless `--confirm`, recorded in the
//! repo's audit log.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use crate::duration::parse_time;
use crate::error::{Error, Exit};
use crate::repo::audit::{self, Action, FileRef, Object, Outcome};
use crate::repo::{prune, Repo};

/// Flags of `pgdrill prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The repository (default `$PGDRILL_REPO`, then /backups).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Keep database backups this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub keep_days: u32,
    /// Keep config backups this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub config_keep_days: u32,
    /// Always keep the newest N of each kind.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_keep: usize,
    /// Delete; without it nothing is touched (dry run).
    #[arg(long)]
    pub confirm: bool,
    /// Compute retention as of this moment (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
}

/// `pgdrill prune`.
pub fn run(args: PruneArgs) -> Result<Exit, Error> {
    let repo = Repo::open(args.repo)?;
    if args.keep_days == 0 || args.config_keep_days == 0 {
        return Err(Error::Usage(
            "--keep-days and --config-keep-days must be at least 1".into(),
        ));
    }
    let listing = repo.list()?;
    let history = audit::events(repo.root())?;
    let day = Duration::from_secs(86_400);
    let opts = prune::Options {
        keep_days: day * args.keep_days,
        config_keep_days: day * args.config_keep_days,
        min_keep: args.min_keep,
        at: args.at.unwrap_or_else(Utc::now),
    };
    let plan = prune::plan(&listing, &history, &opts);
    print!("{}", plan.table(args.confirm));
    if !args.confirm {
        for t in &repo.stale_temps()?.files {
            println!("would remove {}", super::clean::describe(&t.path, t));
        }
        return Ok(Exit::Pass);
    }
    let deleted = prune::apply(&repo, &plan)?;
    let temps = repo.remove_stale_temps()?;
    for t in &temps.files {
        println!("removed {}", super::clean::describe(&t.path, t));
    }
    super::clean::running(Some(&repo), &temps);
    let sha_of = |name: &str| {
        listing
            .database
            .iter()
            .find(|b| b.name == name)
            .and_then(|b| b.manifest.as_ref().ok().map(|m| m.sha256.clone()))
            .or_else(|| {
                listing
                    .config
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(|c| c.manifest.as_ref().ok().map(|m| m.sha256.clone()))
            })
            .unwrap_or_default()
    };
    let mut files: Vec<FileRef> = plan
        .decisions
        .iter()
        .filter(|d| d.keep.is_none())
        .map(|d| FileRef {
            file: format!("{}/{}", d.area, d.name),
            sha256: sha_of(&d.name),
        })
        .collect();
    let (temp_refs, temp_note) = super::clean::removed_refs(&repo, &temps);
    files.extend(temp_refs);
    let mut detail = format!("{} files deleted", deleted.len());
    if !temp_note.is_empty() {
        detail = format!("{detail}; {temp_note}");
    }
    audit::append(
        repo.root(),
        Action::Prune,
        Object {
            files,
            ..Object::default()
        },
        Outcome::Ok,
        Some(detail),
    )?;
    Ok(Exit::Pass)
}
