//! The command line (clap), turned into a validated [`Plan`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::env::{BackendKind, Endpoint};
use crate::error::Error;
use crate::plan::{self, Budgets, Disaster, Plan, Source};

/// Disaster-recovery drills for PostgreSQL backups.
#[derive(Debug, Parser)]
#[command(name = "pgdrill", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one drill end to end: provision, load, backup, disaster, restore, verify, report.
    Drill(DrillArgs),
}

/// Flags of `pgdrill drill` (the CLI contract in DESIGN.md).
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Where disposable servers come from.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// Number of generated users (subscriptions and payments follow).
    #[arg(long, default_value_t = 100_000, conflicts_with_all = ["source_dsn", "backup_file"])]
    pub rows: u64,
    /// Seed of the data generator; the same seed gives byte-identical data.
    #[arg(long, default_value_t = 42, conflicts_with_all = ["source_dsn", "backup_file"])]
    pub seed: u64,
    /// Back up this live database (read-only) instead of generated data.
    #[arg(long, value_name = "URL", conflicts_with = "backup_file")]
    pub source_dsn: Option<String>,
    /// Restore this existing pg_dump -Fc archive (its manifest is used when it sits beside it);
    /// a directory means its newest backup_*.dump.
    #[arg(long, value_name = "PATH")]
    pub backup_file: Option<PathBuf>,
    /// The simulated disaster.
    #[arg(long, value_enum, default_value_t = Disaster::ServerLoss)]
    pub disaster: Disaster,
    /// Parallel jobs for pg_restore (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<u32>,
    /// Budget for the database restore steps.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = plan::parse_duration)]
    pub budget_restore: std::time::Duration,
    /// Budget for restarting the application until healthy.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = plan::parse_duration)]
    pub budget_app: std::time::Duration,
    /// Budget for verification.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = plan::parse_duration)]
    pub budget_verify: std::time::Duration,
    /// Budget for the whole recovery (the RTO).
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = plan::parse_duration)]
    pub budget_total: std::time::Duration,
    /// Directory for report.json, report.md, junit.xml and backup/ (default reports/<drill-id>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the servers running after the drill and print how to connect.
    #[arg(long)]
    pub keep: bool,
    /// Test hook: SQL run on the restored database before verification (simulated corruption).
    #[arg(long, hide = true, value_name = "SQL")]
    pub tamper_sql: Option<String>,
}

impl DrillArgs {
    /// Validates the flags into a plan.
    pub fn into_plan(self, now: chrono::DateTime<chrono::Utc>) -> Result<Plan, Error> {
        let drill_id = plan::new_drill_id(now);
        let source = match (self.source_dsn, self.backup_file) {
            (Some(dsn), _) => Source::Dsn(
                Endpoint::from_dsn(&dsn).map_err(|e| Error::Usage(format!("--source-dsn: {e}")))?,
            ),
            (None, Some(path)) if path.is_dir() => Source::BackupFile(newest_backup(&path)?),
            (None, Some(path)) => Source::BackupFile(path),
            (None, None) => {
                if self.rows == 0 {
                    return Err(Error::Usage("--rows must be at least 1".into()));
                }
                Source::Generated {
                    rows: self.rows,
                    seed: self.seed,
                }
            }
        };
        let jobs = match self.jobs {
            Some(0) => return Err(Error::Usage("--jobs must be at least 1".into())),
            Some(j) => j,
            None => std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(2),
        };
        let budgets = Budgets {
            database_restore: self.budget_restore,
            app_restart: self.budget_app,
            verification: self.budget_verify,
            total: self.budget_total,
        };
        let out_dir = self
            .out
            .unwrap_or_else(|| PathBuf::from("reports").join(&drill_id));
        Ok(Plan {
            drill_id,
            backend: self.backend,
            source,
            disaster: self.disaster,
            jobs,
            budgets,
            out_dir,
            keep: self.keep,
            tamper_sql: self.tamper_sql,
        })
    }
}

/// The newest `backup_YYYYmmdd_HHMMSS.dump` in a directory: the names sort by time.
pub fn newest_backup(dir: &std::path::Path) -> Result<PathBuf, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Usage(format!("--backup-file {}: {e}", dir.display())))?;
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("backup_") && n.ends_with(".dump"))
        })
        .max()
        .ok_or_else(|| {
            Error::Usage(format!(
                "--backup-file {}: the directory holds no backup_*.dump file",
                dir.display()
            ))
        })
}
