//! `pgdrill evidence verify DIR`: checks a drill's sealed bundle against its SHA256SUMS.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::{Error, Exit};
use crate::report::evidence;

/// `pgdrill evidence …`.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// What to do with the bundle.
    #[command(subcommand)]
    pub command: EvidenceCommand,
}

/// The evidence subcommands.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Check DIR against its SHA256SUMS: exit 1 naming each file changed, added or removed.
    Verify {
        /// A drill's --out directory.
        dir: PathBuf,
    },
}

/// `pgdrill evidence verify DIR`: prints the findings; 0 intact, 1 not.
pub fn run(args: EvidenceArgs) -> Result<Exit, Error> {
    let EvidenceCommand::Verify { dir } = args.command;
    let f = evidence::verify(&dir)?;
    print!("{}", evidence::render(&dir, &f));
    Ok(if f.is_intact() {
        Exit::Pass
    } else {
        Exit::Fail
    })
}
