//! The library API for a user's own `cargo test`: [`Drill::builder`] gives a [`DrillBuilder`]
//! whose setters are the flags of `pgdrill drill`; they fill the [`DrillOptions`] the command
//! line fills, turned into a plan by the same code ([`DrillOptions::prepare`]), so a test and
//! the CLI cannot disagree.

use std::path::PathBuf;

use crate::env::BackendKind;
use crate::error::Error;
use crate::options::{AppChoice, DrillOptions};
use crate::plan::Disaster;
use crate::report::{Report, Verdict};

/// The entry point of the library API: `pgdrill::Drill::builder()…run().await`.
pub struct Drill;

impl Drill {
    /// A drill with the command line's defaults (`pgdrill drill` without flags).
    pub fn builder() -> DrillBuilder {
        DrillBuilder {
            options: DrillOptions::default(),
        }
    }
}

/// A drill being described; [`DrillBuilder::run`] runs it. Each setter is a `pgdrill drill` flag.
#[derive(Debug)]
pub struct DrillBuilder {
    options: DrillOptions,
}

impl DrillBuilder {
    /// `--rows`: number of generated users.
    pub fn rows(mut self, rows: u64) -> Self {
        self.options.rows = rows;
        self
    }

    /// `--contact`: an emergency contact, named in every failure message and report.
    pub fn contact(mut self, role: impl Into<String>, reach: impl Into<String>) -> Self {
        self.options.record.contacts.push(crate::contacts::Contact {
            role: role.into(),
            reach: reach.into(),
        });
        self
    }

    /// `--seed`: the data generator's seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = seed;
        self
    }

    /// `--backup-file`: restore this pg_dump -Fc archive (or a directory's newest backup).
    pub fn backup_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.backup_file = Some(path.into());
        self
    }

    /// `--source-dsn`: back up this live database (read-only) instead of generated data.
    pub fn source_dsn(mut self, url: impl Into<String>) -> Self {
        self.options.source_dsn = Some(url.into());
        self
    }

    /// `--negative-controls`: which damaged copies the drill's checks must fail.
    pub fn negative_controls(mut self, mode: crate::plan::NegativeControls) -> Self {
        self.options.negative_controls = mode;
        self
    }

    /// `--app`: the application under drill.
    pub fn app(mut self, app: AppChoice) -> Self {
        self.options.app = app;
        self
    }

    /// `--app-health-format`: how the app's health body is read (recognised by default).
    pub fn app_health_format(mut self, format: crate::app::HealthFormat) -> Self {
        self.options.app_health_format = format;
        self
    }

    /// `--backend`: where disposable servers come from.
    pub fn backend(mut self, backend: BackendKind) -> Self {
        self.options.backend = backend;
        self
    }

    /// `--disaster`: the simulated disaster.
    pub fn disaster(mut self, disaster: Disaster) -> Self {
        self.options.disaster = disaster;
        self
    }

    /// `--jobs`: parallel jobs for pg_restore.
    pub fn jobs(mut self, jobs: u32) -> Self {
        self.options.jobs = Some(jobs);
        self
    }

    /// `--stall-timeout`: how long the backup waits on a source that sends nothing.
    pub fn stall_timeout(mut self, stall: std::time::Duration) -> Self {
        self.options.stall_timeout = stall;
        self
    }

    /// `--scope`: the database alone, or `Scope::Full` (database, configuration, code, and
    /// the RPO measured: the sample app's by default).
    pub fn scope(mut self, scope: crate::scope::Scope) -> Self {
        self.options.scope.scope = scope;
        self
    }

    /// `--rpo`: the recovery point objective the measured data-loss window is judged against.
    pub fn rpo(mut self, objective: std::time::Duration) -> Self {
        self.options.scope.rpo = objective;
        self
    }

    /// The sample app's binary (instead of `PGDRILL_SAMPLE_APP` or the one beside pgdrill).
    pub fn sample_app(mut self, binary: impl Into<PathBuf>) -> Self {
        self.options.sample_app = Some(binary.into());
        self
    }

    /// `--keep`: keep the servers running after the drill.
    pub fn keep(mut self, keep: bool) -> Self {
        self.options.keep = keep;
        self
    }

    /// `--server-setting KEY=VALUE`: one PostgreSQL setting of the restore target (checked
    /// when the drill runs: a bad one is a usage error).
    pub fn server_setting(mut self, key_value: impl Into<String>) -> Self {
        self.options.server_settings.push(key_value.into());
        self
    }

    /// `--out`: where report.json, report.md, junit.xml, events.ndjson and backup/ go.
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.out = Some(dir.into());
        self
    }

    /// Validates the description as the CLI does, runs the drill, writes its report files
    /// into `out`, and returns the report. A drill that ran and failed is `Ok` with
    /// [`Report::passed`] false; `Err` means it could not be described or run at all.
    pub async fn run(self) -> Result<Report, Error> {
        let mut plan = self.options.prepare(chrono::Utc::now())?;
        crate::options::check_source(&plan).await?;
        crate::options::copy_server_settings(&mut plan).await?;
        let out_dir = plan.out_dir.clone();
        let report = super::run(plan, super::Cancel::new()).await?;
        report.write_all(&out_dir)?;
        Ok(report)
    }
}

impl Report {
    /// Whether the drill passed: every step really passed and every budget was met.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}
