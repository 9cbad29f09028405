//! What a drill restores — the database alone (the weekly drill) or, with `--scope full`,
//! the database, the application's configuration and its code (the monthly verification) —
//! and the backup schedule and ledger writer that measure the RPO.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::duration::parse_duration;
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

/// The flags of `pgdrill drill` for the full scope and the RPO (flattened into `DrillArgs`).
#[derive(Debug, Args, Clone)]
pub struct ScopeArgs {
    /// What the drill restores: `database`, or `full` (database, configuration and code).
    #[arg(long, value_enum, default_value_t = Scope::Database)]
    pub scope: Scope,
    /// --scope full: one of the application's configuration files (repeatable); they are
    /// copied into the drill's own directory, backed up encrypted, lost and restored (the
    /// originals are never touched). Default with the sample app: the drill writes its own.
    #[arg(long, value_name = "PATH")]
    pub config_file: Vec<PathBuf>,
    /// --scope full: a key that must be present and non-empty in the restored configuration
    /// (repeatable; default with the sample app: DATABASE_URL, API_KEY, VPN_PEER).
    #[arg(long, value_name = "KEY")]
    pub require: Vec<String>,
    /// --scope full: the application's git repository with its release tags (default with
    /// the sample app: a release repository the drill makes).
    #[arg(long, value_name = "PATH")]
    pub code_repo: Option<PathBuf>,
    /// --scope full: how a checked-out release is deployed, run with `sh -c`; it gets
    /// PGDRILL_RELEASE_WORKTREE, PGDRILL_RELEASE_TAG, PGDRILL_RELEASE_COMMIT, PGDRILL_DEPLOY_DIR.
    #[arg(long, value_name = "CMD")]
    pub deploy: Option<String>,
    /// --scope full: the release to roll back to: a tag, or `previous` (the tag before the
    /// deployed one).
    #[arg(long, value_name = "TAG", default_value = "previous")]
    pub rollback_to: String,
    /// Budget for restoring the configuration (--scope full).
    #[arg(long, value_name = "DUR", default_value = "2m", value_parser = parse_duration)]
    pub budget_config: Duration,
    /// Budget for rolling the code back, its deploy and the version check (--scope full).
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub budget_code: Duration,
    /// The recovery point objective the measured data-loss window is judged against.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    pub rpo: Duration,
    /// Commits per second of the ledger writer that measures the RPO (default 50 with --scope
    /// full and generated data, else off; 0 turns it off).
    #[arg(long, value_name = "N")]
    pub writer_rate: Option<u32>,
    /// The interval between the drill's backups (the strategy's 15 minutes; compress it for a
    /// drill, e.g. 20s).
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    pub backup_every: Duration,
    /// How many backups the drill takes on that schedule before the disaster.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub backups: u32,
    /// When the disaster strikes: right after the last backup, or at a random moment before the
    /// next one was due.
    #[arg(long, value_enum, default_value_t = DisasterAt::AfterLast)]
    pub disaster_at: DisasterAt,
    /// Seed of the random disaster moment, to repeat a drill (default: drawn, and reported).
    #[arg(long, value_name = "N")]
    pub disaster_seed: Option<u64>,
    /// Test hook: a fault injected into the full drill, to prove it is caught (repeatable).
    #[arg(long, hide = true, value_enum, value_name = "FAULT")]
    pub fault: Vec<Fault>,
}

/// Faults a test injects into a full drill, each of which the drill must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// One byte of the configuration archive changed after the backup.
    ConfigTamper,
    /// The configuration restored with an age identity it was not encrypted to.
    ConfigWrongIdentity,
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

impl ScopeArgs {
    /// Validates the flags for a drill whose source is `generated` (or a live DSN when
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
        if !faults.is_empty() && scope != Scope::Full {
            return Err(usage("--fault applies to --scope full".into()));
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
            for f in &self.config_file {
                if !f.is_file() {
                    return Err(Error::Usage(format!(
                        "--config-file {}: no such file; name the application's configuration files (.env, API keys, VPN config)",
                        f.display()
                    )));
                }
            }
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use crate::cli::{parse, Command};

    fn drill_args(args: &[&str]) -> crate::cli::DrillArgs {
        let argv: Vec<OsString> = ["pgdrill", "drill"]
            .iter()
            .chain(args)
            .map(OsString::from)
            .collect();
        match parse(argv).map_err(|_| "parse").unwrap().command {
            Command::Drill(d) => d,
            _ => unreachable!(),
        }
    }

    /// The plans CI and people use parse: every key is a flag and every value of its kind.
    #[test]
    fn every_shipped_plan_parses_and_the_monthly_one_is_a_full_drill() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/drills");
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                drill_args(&["--plan", p.to_str().unwrap()]);
            }
        }
        let monthly = drill_args(&["--plan", &format!("{dir}/monthly.toml")]);
        assert_eq!(monthly.scope.scope, super::Scope::Full);
        let plan = monthly
            .scope
            .into_plan(true, false, true, false)
            .expect("the monthly plan validates");
        let full = plan.full.expect("full");
        assert_eq!(full.config, super::ConfigSource::Sample);
        assert_eq!(full.code, super::CodeSource::Sample);
        assert_eq!(full.require, super::SAMPLE_REQUIRED_KEYS);
        assert_eq!(plan.rpo.map(|r| r.rate), Some(50));
        assert_eq!(plan.cadence.disaster_at, crate::rpo::DisasterAt::Random);
    }

    #[test]
    fn full_scope_flags_are_refused_where_they_do_not_apply() {
        let err = |args: &[&str], generated, live, sample, custom| {
            drill_args(args)
                .scope
                .into_plan(generated, live, sample, custom)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(&["--config-file", "/etc/hosts"], true, false, true, false)
                .contains("--scope full")
        );
        assert!(err(&["--scope", "full"], false, false, false, true).contains("--backup-file"));
        assert!(err(&["--scope", "full"], true, false, false, false).contains("sample app"));
        assert!(err(&["--scope", "full"], true, false, false, true).contains("--config-file"));
        assert!(err(
            &[
                "--scope",
                "full",
                "--config-file",
                "/etc/hosts",
                "--code-repo",
                "/tmp"
            ],
            true,
            false,
            false,
            true
        )
        .contains("--deploy"));
        assert!(err(&["--writer-rate", "5"], false, false, false, false).contains("live source"));
        assert!(err(
            &["--backups", "2", "--backup-every", "500ms"],
            true,
            false,
            true,
            false
        )
        .contains("at least 1s"));
    }
}
