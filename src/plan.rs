//! The validated plan of one drill: what to restore, where, how, and within which budgets.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::env::{BackendKind, Endpoint};

/// Everything a drill needs, checked before anything starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Unique id of this drill run; names the report directory and labels.
    pub drill_id: String,
    /// Where disposable servers come from.
    pub backend: BackendKind,
    /// Where the data comes from.
    pub source: Source,
    /// `--repo`: the repository the backup is picked from, and how; the drill's result goes
    /// into its audit log.
    pub repo: Option<RepoPick>,
    /// What goes wrong before the restore.
    pub disaster: Disaster,
    /// Parallel jobs for pg_restore.
    pub jobs: u32,
    /// `--stall-timeout`: the longest wait on the source (no byte from pg_dump, no answer).
    pub stall_timeout: Duration,
    /// The RTO allowances.
    pub budgets: Budgets,
    /// Where report.json, report.md and backup/ go.
    pub out_dir: PathBuf,
    /// Keep servers running after the drill.
    pub keep: bool,
    /// The application under drill, if any.
    pub app: Option<AppPlan>,
    /// What the report should say about where the plan came from (a plan file and its hash).
    pub notes: Vec<String>,
    /// SQL run on the restored database just before verification: a test hook that plays
    /// the part of silent corruption, so a test can prove verification catches it.
    pub tamper_sql: Option<String>,
    /// `--strict-schema`: known pg_dump transformations fail the comparison instead of warning.
    pub strict_schema: bool,
    /// `--globals FILE`: roles to replay instead of the globals file beside the backup.
    pub globals: Option<PathBuf>,
    /// `--missing-roles`: what to do about roles the dump needs that the target lacks.
    pub missing_roles: crate::preflight::MissingRoles,
    /// `--negative-controls`.
    pub negative_controls: NegativeControls,
    /// What is restored (`--scope`), the backup schedule and the RPO measurement.
    pub scope: crate::scope::ScopePlan,
    /// The exercise's record: operator, approver, ticket, purpose, environment, next test,
    /// issues found.
    pub record: RecordPlan,
    /// `pgdrill restore`: the real restore onto a server the user names, confirmed; `None`
    /// for a drill.
    pub restore: Option<RestorePlan>,
    /// `pgdrill config restore --confirm`: the configuration restored into the application's
    /// live directory, confirmed; `None` otherwise. No database server is involved.
    pub config_restore: Option<ConfigRestorePlan>,
    /// `pgdrill rollback`: the real code rollback of a deployment the user names, confirmed;
    /// `None` for a drill or a restore.
    pub rollback: Option<RollbackPlan>,
    /// The settings the restore target starts with (`--server-setting`, `[server]`, and
    /// after [`crate::options::copy_server_settings`] those of `--server-settings-from`).
    pub server: crate::pg::settings::ServerSettings,
    /// `--server-settings-from`: the live server whose settings the restore target copies,
    /// until they are copied.
    pub server_settings_from: Option<crate::env::Endpoint>,
}

/// A configuration restore into the application's live directory (`pgdrill config restore
/// --confirm NAME`): the backup, the directory and the application around it.
#[derive(Debug, Clone)]
pub struct ConfigRestorePlan {
    /// The repo, the backup (by the name confirmed), the identity, `--to`, `--require`.
    pub request: crate::config::RestoreRequest,
    /// The backup's name, as confirmed.
    pub backup: String,
    /// The team's running application, when one is named.
    pub app: Option<crate::app::ExternalApp>,
    /// `--reason`.
    pub reason: Option<String>,
}

/// A real code rollback (`pgdrill rollback --confirm TAG`): the application's repository, the
/// release it goes back to, how it is deployed and how the running release is checked.
#[derive(Debug, Clone)]
pub struct RollbackPlan {
    /// `--code-repo`: the application's git repository (its top level), never written.
    pub code_repo: PathBuf,
    /// `--deploy`: the team's deploy command (`sh -c`, in the checkout).
    pub deploy: String,
    /// `--deploy-dir`: where the release goes; the deployment marker is read and written here.
    pub deploy_dir: PathBuf,
    /// The release confirmed: `--to` resolved by the dry run and typed back with `--confirm`;
    /// the rollback refuses to deploy anything else (a tag moved since is refused).
    pub target: crate::code::Release,
    /// The clean checkout of the target (absent or empty): the deploy command runs in it.
    pub checkout: PathBuf,
    /// `--version-url`: the application's version endpoint (JSON `release`/`tag`,
    /// `commit`/`sha`); without it the deployment marker is what reports the version.
    pub version_url: Option<String>,
    /// `--app-health-url` and how its answers are read: the health checks after the deploy.
    pub health: Option<crate::app::ExternalApp>,
    /// `--reason`.
    pub reason: Option<String>,
}

/// A real restore (`pgdrill restore --confirm DBNAME`): the server and database it replaces,
/// how, and the application around it.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// `--target-dsn`: the server, and the live database it names.
    pub target: Endpoint,
    /// Side restore and swap, or the strategy's literal in-place steps.
    pub mode: RestoreMode,
    /// What becomes of the replaced database after a side restore.
    pub previous: Previous,
    /// The team's running application, when one is named.
    pub app: Option<crate::app::ExternalApp>,
    /// `--reason`.
    pub reason: Option<String>,
    /// How long the checklist watches the restarted application.
    pub observe: Duration,
}

/// How a real restore replaces the live database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreMode {
    /// Restored into `<db>__pgdrill_restoring`, verified there, then swapped in by two renames.
    Side,
    /// `--in-place`: `dropdb`, `createdb`, `pg_restore`, after a safety dump (unless refused).
    InPlace {
        /// Where the safety dump of the live database goes; `None` with `--no-safety-dump`.
        safety_dump: Option<PathBuf>,
    },
}

/// What becomes of the database a side restore replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Previous {
    /// Kept as `<db>__pgdrill_before_<time>` (the default).
    #[default]
    Keep,
    /// Dropped once the application is healthy (`--drop-previous`).
    Drop,
}

/// The record fields of a drill (`--operator`, `--approver`, `--ticket`, `--purpose`,
/// `--environment`, `--next-test`, `--issue`, `--contact`), as given; the report adds what the
/// drill knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordPlan {
    /// Who runs the drill; `None` means `$USER@host`.
    pub operator: Option<String>,
    /// Who approved it.
    pub approver: Option<String>,
    /// The change or incident ticket.
    pub ticket: Option<String>,
    /// Why it runs.
    pub purpose: Option<String>,
    /// The environment drilled (staging, production…).
    pub environment: Option<String>,
    /// When the next test is scheduled.
    pub next_test: Option<chrono::DateTime<chrono::Utc>>,
    /// Issues the operator found and documents with the drill.
    pub issues: Vec<String>,
    /// The emergency contacts (`--contact`, `[contacts]`), in the order given.
    pub contacts: Vec<crate::contacts::Contact>,
}

impl Plan {
    /// The team's own application a real restore or a configuration restore stops and
    /// starts with its own commands.
    pub fn team_app(&self) -> Option<&crate::app::ExternalApp> {
        match (&self.restore, &self.config_restore) {
            (Some(r), _) => r.app.as_ref(),
            (None, Some(c)) => c.app.as_ref(),
            (None, None) => None,
        }
    }

    /// A real restore or a configuration restore: the team's application and data, not a
    /// drill's disposable ones.
    pub fn is_live(&self) -> bool {
        self.restore.is_some() || self.config_restore.is_some()
    }

    /// The full scope's configuration and code, with `--scope full`.
    pub fn full(&self) -> Option<&crate::scope::FullPlan> {
        self.scope.full.as_ref()
    }
}

/// The application under drill and how it is judged.
#[derive(Debug, Clone)]
pub struct AppPlan {
    /// How to start, stop and probe it.
    pub spec: crate::app::AppSpec,
    /// Extra environment for the app started after the restore only (a restored config).
    pub restart_env: Vec<(String, String)>,
    /// How long the checklist watches the restarted app (workers, logs, metrics).
    pub observe: Duration,
    /// The oldest worker heartbeat that still counts as normal.
    pub max_heartbeat_age: Duration,
}

impl AppPlan {
    /// Whether this is the project's sample application.
    pub fn is_sample(&self) -> bool {
        matches!(self.spec, crate::app::AppSpec::Sample { .. })
    }
}

/// Where the data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The fixtures schema with deterministic generated data.
    Generated {
        /// Number of users.
        rows: u64,
        /// RNG seed; the same seed gives byte-identical data.
        seed: u64,
    },
    /// A live database, read-only.
    Dsn(Endpoint),
    /// An existing `pg_dump -Fc` archive (with its manifest beside it, when there is one).
    /// Until [`crate::options::resolve_inputs`] has run, the path as given: possibly a
    /// directory of backups; with [`Plan::repo`], the repository until the drill's
    /// `pick_backup` phase has picked the dump.
    BackupFile(PathBuf),
    /// A pgBackRest stanza or a Barman server, restored to a point in time
    /// (`--pgbackrest-stanza`, `--barman-server`): a physical restore of the whole cluster,
    /// with no pg_dump manifest.
    Pitr(crate::pitr::PitrPlan),
}

/// Which negative controls a drill runs (`--negative-controls`): deliberately damaged copies
/// that the drill's own checks must fail, so a pass is known to be able to fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NegativeControls {
    /// The cheap controls, fit for every drill at real size.
    #[default]
    Auto,
    /// Every control, including those that copy the restored database or read the dump again.
    All,
    /// No control: the report says that the checks were not shown able to fail.
    None,
}

impl NegativeControls {
    /// Its name, as the flag and report.json spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            NegativeControls::Auto => "auto",
            NegativeControls::All => "all",
            NegativeControls::None => "none",
        }
    }
}

/// How `drill --repo` chooses a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pick {
    /// The newest backup.
    Newest,
    /// Uniformly at random within `--window`, so that over months every age gets drilled.
    Random,
}

/// A backup to be picked from a repository (`--repo`, `--pick`, `--window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPick {
    /// The repository.
    pub dir: PathBuf,
    /// Which backup.
    pub pick: Pick,
    /// With [`Pick::Random`]: how far back to pick from.
    pub window: Duration,
    /// `restore --at TIME`: the newest backup taken at or before this moment.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The simulated disaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Disaster {
    /// The server and all it had are gone; a new empty server is provisioned.
    ServerLoss,
    /// The database is dropped on the running server.
    DropDb,
}

impl std::fmt::Display for Disaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Disaster::ServerLoss => "server-loss",
            Disaster::DropDb => "drop-db",
        })
    }
}

/// The RTO budgets of the strategy (restore 15 min, app restart 5, verification 10, total 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Stop app, precheck, roles, createdb, pg_restore, ANALYZE.
    pub database_restore: Duration,
    /// Start app until healthy.
    pub app_restart: Duration,
    /// Snapshot, comparison, amcheck, checklist.
    pub verification: Duration,
    /// The configuration restored and checked (`--scope full`).
    pub config_restore: Duration,
    /// The code rolled back, deployed and its version checked (`--scope full`).
    pub code_rollback: Duration,
    /// All of the above: the recovery time.
    pub total: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            database_restore: Duration::from_secs(15 * 60),
            app_restart: Duration::from_secs(5 * 60),
            verification: Duration::from_secs(10 * 60),
            config_restore: Duration::from_secs(2 * 60),
            code_rollback: Duration::from_secs(5 * 60),
            total: Duration::from_secs(30 * 60),
        }
    }
}

/// Which budget a phase counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BudgetName {
    /// The database restore allowance.
    DatabaseRestore,
    /// The application restart allowance.
    AppRestart,
    /// The verification allowance.
    Verification,
    /// The configuration restore allowance (full scope).
    ConfigRestore,
    /// The code rollback allowance (full scope).
    CodeRollback,
    /// The whole recovery.
    Total,
}

impl BudgetName {
    /// The allowance for this budget in `b`.
    pub fn limit(self, b: &Budgets) -> Duration {
        match self {
            BudgetName::DatabaseRestore => b.database_restore,
            BudgetName::AppRestart => b.app_restart,
            BudgetName::Verification => b.verification,
            BudgetName::ConfigRestore => b.config_restore,
            BudgetName::CodeRollback => b.code_rollback,
            BudgetName::Total => b.total,
        }
    }

    /// The report's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetName::DatabaseRestore => "database_restore",
            BudgetName::AppRestart => "app_restart",
            BudgetName::Verification => "verification",
            BudgetName::ConfigRestore => "config_restore",
            BudgetName::CodeRollback => "code_rollback",
            BudgetName::Total => "total",
        }
    }
}

/// A TOML file's text as a table, or why not: `line N: not valid TOML: …` (a plan file, a
/// fleet file).
pub fn toml_table(text: &str) -> Result<toml::Table, String> {
    text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| format!("line {}: ", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        format!("{line}not valid TOML: {}", e.message())
    })
}

/// A new drill id: sortable by time, unique across concurrent drills.
pub fn new_drill_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("drill-{}-{}", now.format("%Y%m%dT%H%M%SZ"), &rand[..6])
}

pub use crate::duration::parse_duration;
