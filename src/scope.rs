//! What a drill restores — the database alone (the weekly drill) or, with `--scope full`,
//! the database, the application's configuration and its code (the monthly verification) —
//! and the backup schedule and ledger writer that measure the RPO.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::rpo::{Cadence, DisasterAt};

/// What a drill restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Scope {
    /// The database (the weekly drill).
    #[default]
    Database,
    /// The database, the application's configuration and its code (the monthly drill).
    Full,
}

impl Scope {
    /// The name on the command line and in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Database => "database",
            Scope::Full => "full",
        }
    }
}

/// The sample application's required configuration keys.
pub const SAMPLE_REQUIRED_KEYS: [&str; 3] = ["DATABASE_URL", "API_KEY", "VPN_PEER"];

/// The full scope's and the RPO's options of a drill (the flags `pgdrill drill` takes for them,
/// named alike); [`Default`] is those flags' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeOptions {
    /// `--scope`.
    pub scope: Scope,
    /// `--config-file` (repeatable).
    pub config_file: Vec<PathBuf>,
    /// `--require` (repeatable).
    pub require: Vec<String>,
    /// `--code-repo`.
    pub code_repo: Option<PathBuf>,
    /// `--deploy`.
    pub deploy: Option<String>,
    /// `--rollback-to`: a tag, or `previous`.
    pub rollback_to: String,
    /// `--budget-config`.
    pub budget_config: Duration,
    /// `--budget-code`.
    pub budget_code: Duration,
    /// `--rpo`.
    pub rpo: Duration,
    /// `--writer-rate` (default 50 with --scope full and generated data, else off).
    pub writer_rate: Option<u32>,
    /// `--backup-every`.
    pub backup_every: Duration,
    /// `--backups`.
    pub backups: u32,
    /// `--disaster-at`.
    pub disaster_at: DisasterAt,
    /// `--disaster-seed`.
    pub disaster_seed: Option<u64>,
    /// `--fault` (test hooks).
    pub fault: Vec<Fault>,
}

impl Default for ScopeOptions {
    fn default() -> Self {
        ScopeOptions {
            scope: Scope::Database,
            config_file: Vec::new(),
            require: Vec::new(),
            code_repo: None,
            deploy: None,
            rollback_to: "previous".into(),
            budget_config: Duration::from_secs(2 * 60),
            budget_code: Duration::from_secs(5 * 60),
            rpo: Duration::from_secs(15 * 60),
            writer_rate: None,
            backup_every: Duration::from_secs(15 * 60),
            backups: 1,
            disaster_at: DisasterAt::AfterLast,
            disaster_seed: None,
            fault: Vec::new(),
        }
    }
}

/// Faults a test injects into a drill: the config faults (full scope) the drill must catch,
/// and a blinded check, which the negative controls must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// One byte of the configuration archive changed after the backup.
    ConfigTamper,
    /// The configuration restored with an age identity it was not encrypted to.
    ConfigWrongIdentity,
    /// The comparison compares the restored data with itself (as a check wired to the wrong
    /// snapshot would), so it cannot fail; the negative controls must notice.
    BlindCompare,
}

/// Where the application's configuration comes from in a full drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The sample app's `.env` and WireGuard file, written by the drill.
    Sample,
    /// The user's files (copied; never modified).
    Files(Vec<PathBuf>),
}

/// Where the application's code comes from in a full drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeSource {
    /// The sample app's release repository, made by the drill.
    Sample,
    /// The user's repository and deploy command.
    Repo {
        /// The git repository.
        path: PathBuf,
        /// The deploy command (`sh -c`).
        deploy: String,
    },
}

/// What `--scope full` adds to a drill, validated.
#[derive(Debug, Clone)]
pub struct FullPlan {
    /// The configuration files.
    pub config: ConfigSource,
    /// Keys the restored configuration must have.
    pub require: Vec<String>,
    /// The code.
    pub code: CodeSource,
    /// The release to roll back to (`previous` or a tag).
    pub rollback_to: String,
}

/// The RPO measurement: the writer and the objective.
#[derive(Debug, Clone, Copy)]
pub struct RpoPlan {
    /// Commits per second.
    pub rate: u32,
    /// The objective.
    pub objective: Duration,
}

/// The schedule and scope parts of a plan, validated from the flags.
#[derive(Debug, Clone)]
pub struct ScopePlan {
    /// What is restored.
    pub scope: Scope,
    /// The full scope's configuration and code, with `--scope full`.
    pub full: Option<FullPlan>,
    /// The ledger writer, when it runs.
    pub rpo: Option<RpoPlan>,
    /// The backup schedule and the disaster moment.
    pub cadence: Cadence,
    /// The seed of a random disaster moment, when given.
    pub disaster_seed: Option<u64>,
    /// The RPO objective (also judged without a writer when a backup's age is known).
    pub objective: Duration,
    /// Test hooks: faults injected on purpose.
    pub faults: Vec<Fault>,
}

impl ScopeOptions {
    /// Validates the options (pure: the `--config-file`s are checked by
    /// [`crate::options::resolve_inputs`]) for a drill whose source is `generated` (or a live DSN when
    /// `live`), whose application is the sample app when `sample` (custom when `custom`).
    pub fn into_plan(
        self,
        generated: bool,
        live: bool,
        sample: bool,
        custom: bool,
    ) -> Result<ScopePlan, Error> {
        let usage = |m: String| Error::Usage(m);
        let cadence = Cadence {
            every: self.backup_every,
            backups: self.backups,
            disaster_at: self.disaster_at,
        };
        cadence.validate().map_err(usage)?;
        // Backups are named by the second they start: two in one second would collide.
        if self.backups > 1 && self.backup_every < Duration::from_secs(1) {
            return Err(usage(
                "--backup-every must be at least 1s when --backups is more than 1".into(),
            ));
        }
        if !(generated || live) && (self.backups != 1 || self.disaster_at != DisasterAt::AfterLast)
        {
            return Err(usage(
                "--backups and --disaster-at need a source to back up (generated data or --source-dsn), not an existing backup file".into(),
            ));
        }
        let rate = match self.writer_rate {
            Some(r) => r,
            None if self.scope == Scope::Full && generated => crate::rpo::DEFAULT_RATE_PER_SEC,
            None => 0,
        };
        if rate > 0 && !(generated || live) {
            return Err(usage(
                "--writer-rate needs a live source to write to (generated data); an existing backup file has none: pass --writer-rate 0".into(),
            ));
        }
        let rpo = (rate > 0).then_some(RpoPlan {
            rate,
            objective: self.rpo,
        });
        let (scope, objective, disaster_seed) = (self.scope, self.rpo, self.disaster_seed);
        let faults = self.fault.clone();
        if faults.iter().any(|f| *f != Fault::BlindCompare) && scope != Scope::Full {
            return Err(usage(
                "--fault config-tamper and config-wrong-identity apply to --scope full".into(),
            ));
        }
        let full = match self.scope {
            Scope::Database => {
                let stray = [
                    (!self.config_file.is_empty(), "--config-file"),
                    (!self.require.is_empty(), "--require"),
                    (self.code_repo.is_some(), "--code-repo"),
                    (self.deploy.is_some(), "--deploy"),
                ];
                if let Some((_, flag)) = stray.iter().find(|(set, _)| *set) {
                    return Err(usage(format!(
                        "{flag} belongs to a full drill: add --scope full (database, configuration and code)"
                    )));
                }
                None
            }
            Scope::Full if !(generated || live) => {
                return Err(usage(
                    "--scope full backs up the database, the configuration and the code itself before the disaster: use generated data or --source-dsn, not an existing backup (--backup-file, --repo)".into(),
                ))
            }
            Scope::Full => Some(self.full_plan(sample, custom)?),
        };
        Ok(ScopePlan {
            scope,
            full,
            rpo,
            cadence,
            disaster_seed,
            objective,
            faults,
        })
    }

    fn full_plan(self, sample: bool, custom: bool) -> Result<FullPlan, Error> {
        if !sample && !custom {
            return Err(Error::Usage(
                "--scope full restores an application's configuration and code, and this drill has no application (--app none, or --source-dsn without --app-start): run it with the sample app (generated data) or your own (--app-start or --app-image with --config-file, --code-repo and --deploy)".into(),
            ));
        }
        let config = if self.config_file.is_empty() {
            if !sample {
                return Err(Error::Usage(
                    "--scope full with your own application needs --config-file PATH (repeatable): the configuration files to back up and restore".into(),
                ));
            }
            ConfigSource::Sample
        } else {
            ConfigSource::Files(self.config_file)
        };
        let code = match (self.code_repo, self.deploy) {
            (Some(path), Some(deploy)) => CodeSource::Repo { path, deploy },
            (None, None) if sample => CodeSource::Sample,
            (Some(_), None) => {
                return Err(Error::Usage(
                    "--code-repo needs --deploy CMD: how a checked-out release is deployed (run with sh -c)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::Usage(
                    "--deploy needs --code-repo PATH: the git repository whose release tags are deployed".into(),
                ))
            }
            (None, None) => {
                return Err(Error::Usage(
                    "--scope full with your own application needs --code-repo PATH and --deploy CMD".into(),
                ))
            }
        };
        let require = if self.require.is_empty() && config == ConfigSource::Sample {
            SAMPLE_REQUIRED_KEYS.iter().map(|k| k.to_string()).collect()
        } else {
            self.require
        };
        Ok(FullPlan {
            config,
            require,
            code,
            rollback_to: self.rollback_to,
        })
    }
}
