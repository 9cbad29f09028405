//! `pgdrill clean`: removes what killed drills left behind, one line per leftover.

use clap::Args;

use crate::env::leftovers;
use crate::error::{Error, Exit};

/// Flags of `pgdrill clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only list what would be removed (exit 1 when there is something).
    #[arg(long)]
    pub dry_run: bool,
}

/// `pgdrill clean`: one line per leftover removed (or, with `--dry-run`, to remove).
pub fn run(args: CleanArgs) -> Result<Exit, Error> {
    let found = leftovers::find(&std::env::temp_dir());
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
    let (removed, failed) = leftovers::remove(found);
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
