//! `pgdrill drill`: its flags (and the `--plan` file's keys, which are those flags) become a
//! [`DrillOptions`]; the library validates it into a plan, resolves the inputs, runs the drill;
//! this prints the summary and maps the verdict to the exit code.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::duration::parse_duration;
use crate::env::BackendKind;
use crate::error::{Error, Exit};
use crate::options::{AppChoice, DrillOptions};
use crate::plan::{Disaster, Pick};
use crate::report::Verdict;
use crate::rpo::DisasterAt;
use crate::scope::{Fault, Scope, ScopeOptions};

/// Flags of `pgdrill drill` (the CLI contract in the user guide: docs/src/drills.md#flags).
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct DrillArgs {
    /// Take flags from a TOML drill plan (keys are these flags' long names, e.g.
    /// `rows = 1000000`); flags given on the command line win over the file's.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// The report's record of the plan file, from [`expand_plan`], which read it.
    #[arg(skip)]
    pub plan_note: Option<String>,
    /// Where disposable servers come from.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// Number of generated users (subscriptions and payments follow).
    // Negative numbers are taken as the value, so `--rows -5` is told what --rows needs
    // rather than that `-5` is an unknown flag.
    #[arg(long, default_value_t = 100_000, allow_negative_numbers = true, value_parser = parse_rows, conflicts_with_all = ["source_dsn", "backup_file", "repo"])]
    pub rows: u64,
    /// Seed of the data generator; the same seed gives byte-identical data.
    #[arg(long, default_value_t = 42, conflicts_with_all = ["source_dsn", "backup_file", "repo"])]
    pub seed: u64,
    /// Back up this live database (read-only) instead of generated data.
    #[arg(long, value_name = "URL", conflicts_with = "backup_file")]
    pub source_dsn: Option<String>,
    /// Restore this existing pg_dump -Fc archive (its manifest is used when it sits beside it);
    /// a directory means its newest backup_*.dump.
    #[arg(long, value_name = "PATH")]
    pub backup_file: Option<PathBuf>,
    /// Restore a backup from this repo (`pgdrill backup`'s); the result goes into its audit log.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["source_dsn", "backup_file"])]
    pub repo: Option<PathBuf>,
    /// With --repo: which backup.
    #[arg(long, value_enum, default_value_t = Pick::Newest, requires = "repo")]
    pub pick: Pick,
    /// With --repo --pick random: how far back to pick from.
    #[arg(long, value_name = "DUR", default_value = "7d", value_parser = parse_duration, requires = "repo")]
    pub window: std::time::Duration,
    /// The simulated disaster.
    #[arg(long, value_enum, default_value_t = Disaster::ServerLoss)]
    pub disaster: Disaster,
    /// Parallel jobs for pg_restore (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<u32>,
    /// Abandon the backup when pg_dump writes no byte (or the source answers no query) for
    /// this long: a dead network path, not a slow source.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub stall_timeout: std::time::Duration,
    /// Budget for the database restore steps.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    pub budget_restore: std::time::Duration,
    /// Budget for restarting the application until healthy.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub budget_app: std::time::Duration,
    /// Budget for verification.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    pub budget_verify: std::time::Duration,
    /// Budget for the whole recovery (the RTO).
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = parse_duration)]
    pub budget_total: std::time::Duration,
    /// Directory for report.json, report.md, junit.xml and backup/ (default reports/<drill-id>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the servers running after the drill and print how to connect.
    #[arg(long)]
    pub keep: bool,
    /// The application under drill: `auto` is the sample app for generated data, none otherwise.
    #[arg(long, value_enum, default_value_t = AppChoice::Auto)]
    pub app: AppChoice,
    /// Custom app: shell command that starts it (DATABASE_URL is set for it).
    #[arg(long, value_name = "CMD")]
    pub app_start: Option<String>,
    /// Custom app as a container on the docker backend: its image (instead of --app-start;
    /// its URLs are then paths such as /health, and it gets DATABASE_URL and --app-env as
    /// environment variables).
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["app_start", "app_stop", "app_log"])]
    pub app_image: Option<String>,
    /// Custom app image: the port it listens on inside its container.
    #[arg(long, value_name = "PORT", default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    pub app_port: u16,
    /// Custom app: shell command that stops it (its process group gets SIGTERM anyway).
    #[arg(long, value_name = "CMD")]
    pub app_stop: Option<String>,
    /// Custom app: health URL (http://host:port/path).
    #[arg(long, value_name = "URL")]
    pub app_health_url: Option<String>,
    /// Custom app: one more overall status word that means healthy, besides the known
    /// formats' own (pass, UP, Healthy, ok …).
    #[arg(long, value_name = "STATUS", default_value = "HEALTHY")]
    pub app_healthy_status: String,
    /// How the app's health body is read: `auto` recognises IETF health+json, Spring Boot
    /// actuator, ASP.NET Core, plain text (Kubernetes `ok`), ad-hoc JSON and the sample app's;
    /// `ietf`, `spring`, `aspnet`, `plain` force one; `json-path=$.a.b` takes the status there.
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = super::parse_health_format)]
    pub app_health_format: crate::app::HealthFormat,
    /// Custom app: its log file (default: its own output).
    #[arg(long, value_name = "FILE")]
    pub app_log: Option<PathBuf>,
    /// Custom app: Prometheus metrics URL.
    #[arg(long, value_name = "URL")]
    pub app_metrics_url: Option<String>,
    /// Custom app: JSON version URL.
    #[arg(long, value_name = "URL")]
    pub app_version_url: Option<String>,
    /// Extra environment for the app, KEY=VALUE (repeatable; values are never printed).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub app_env: Vec<(String, String)>,
    /// Extra environment for the app started after the restore only, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub app_restart_env: Vec<(String, String)>,
    /// How long the checklist watches the restarted app (workers, logs, metrics).
    #[arg(long, value_name = "DUR", default_value = "3s", value_parser = parse_duration)]
    pub observe: std::time::Duration,
    /// The oldest worker heartbeat that counts as normal.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub max_heartbeat_age: std::time::Duration,
    /// The history file this drill appends its line to (default reports/history.ndjson).
    #[arg(long, value_name = "FILE", env = "PGDRILL_HISTORY")]
    pub history: Option<PathBuf>,
    /// Leave the dump out of SHA256SUMS (it is listed in UNSEALED instead).
    #[arg(long)]
    pub no_dump_in_bundle: bool,
    /// Sign the sealed bundle with this unencrypted OpenSSH Ed25519 private key: SHA256SUMS.sig,
    /// what `ssh-keygen -Y sign -n pgdrill-evidence` writes (checked before the drill starts).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// Run this SQL on the restored database just before verification, as silent corruption
    /// would change it: the drill must then fail (integrity_mismatch), which proves the
    /// comparison can fail. Its history line is marked `kind: tamper`, never counted in the
    /// pass rate.
    #[arg(long, value_name = "SQL", help_heading = "Testing the tester")]
    pub tamper_sql: Option<String>,
    /// Fail the drill on known pg_dump transformations of the schema too (column order of
    /// inheritance children, partition constraint names), not only warn.
    #[arg(long)]
    pub strict_schema: bool,
    /// The roles (a `pg_dumpall --globals-only` file) to replay before the restore, instead of
    /// the `.globals.sql` beside the backup.
    #[arg(long, value_name = "FILE")]
    pub globals: Option<PathBuf>,
    /// Roles the dump needs that no globals file provides: fail the drill (backup_incomplete)
    /// or create them NOLOGIN on the disposable target.
    #[arg(long, value_enum, default_value = "fail")]
    pub missing_roles: crate::preflight::MissingRoles,
    /// Negative controls: damaged copies (of the restored database, the dump, its manifest)
    /// the drill's own checks must fail, or the drill fails with detection_failed. `auto`: the
    /// cheap ones; `all`: every one; `none`: off.
    #[arg(long, value_enum, default_value_t = crate::plan::NegativeControls::Auto)]
    pub negative_controls: crate::plan::NegativeControls,
    /// Start the restore target with this PostgreSQL setting, KEY=VALUE (repeatable), e.g.
    /// maintenance_work_mem=1GB: restore time depends on them, so give production's. A plan
    /// file's `[server]` table `settings = { shared_buffers = "4GB" }` is the same.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_server_setting, help_heading = "Restore target")]
    pub server_setting: Vec<String>,
    /// Copy the restore-relevant settings (shared_buffers, max_wal_size, checkpoint_timeout,
    /// maintenance_work_mem, max_parallel_maintenance_workers, work_mem, synchronous_commit,
    /// wal_level; never fsync or full_page_writes) of this live server, read-only, as if given
    /// with --server-setting; an explicit --server-setting wins.
    #[arg(long, value_name = "DSN", help_heading = "Restore target")]
    pub server_settings_from: Option<String>,
    /// `--scope`, the full drill's configuration and code, the backup schedule and the RPO.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The record of the exercise for the auditor.
    #[command(flatten)]
    pub record: RecordArgs,
    /// Where to send the outcome.
    #[command(flatten)]
    pub notify: super::NotifyArgs,
    /// Also write (atomically) a Prometheus textfile for node_exporter: the last run and the
    /// last success (from the history), the verdict, each budget's used and limit seconds,
    /// the RPO achieved and the backup's age (deploy/prometheus/pgdrill.rules.yml alerts on them).
    #[arg(long, value_name = "FILE")]
    pub prom: Option<PathBuf>,
    /// Drill into a server you name (the team's staging server) instead of a disposable one:
    /// the backup of --repo or --backup-file is restored beside its database, verified and
    /// swapped in, exactly as `pgdrill restore` does; needs --confirm.
    #[arg(
        long,
        value_name = "URL",
        requires = "confirm",
        conflicts_with = "source_dsn"
    )]
    pub target_dsn: Option<String>,
    /// With --target-dsn: the name of the database the drill replaces, typed.
    #[arg(long, value_name = "DBNAME", requires = "target_dsn")]
    pub confirm: Option<String>,
    /// Drill point-in-time recovery of this pgBackRest stanza (native backend): its backup
    /// restored into a disposable server, WAL replayed to the target, the result verified.
    /// The repository is only read.
    #[arg(long, value_name = "NAME", group = "pitr_source", conflicts_with_all = ["source_dsn", "backup_file", "repo", "target_dsn"], help_heading = "Point-in-time recovery")]
    pub pgbackrest_stanza: Option<String>,
    /// With --pgbackrest-stanza: pgBackRest's configuration file (default: its own,
    /// /etc/pgbackrest/pgbackrest.conf); it must be readable by the `postgres` user.
    #[arg(
        long,
        value_name = "FILE",
        requires = "pgbackrest_stanza",
        help_heading = "Point-in-time recovery"
    )]
    pub pgbackrest_config: Option<PathBuf>,
    /// Drill point-in-time recovery of this Barman server (native backend): `barman recover`
    /// of its backup into a disposable server, WAL replayed to the target, the result
    /// verified. The catalogue is only read.
    #[arg(long, value_name = "NAME", group = "pitr_source", conflicts_with_all = ["source_dsn", "backup_file", "repo", "target_dsn"], help_heading = "Point-in-time recovery")]
    pub barman_server: Option<String>,
    /// With --barman-server: Barman's configuration file (default: its own, /etc/barman.conf).
    #[arg(
        long,
        value_name = "FILE",
        requires = "barman_server",
        help_heading = "Point-in-time recovery"
    )]
    pub barman_config: Option<PathBuf>,
    /// With --pgbackrest-stanza or --barman-server: recover to the end of the archived WAL
    /// (`latest`, the default) or only to the backup's first consistent point (`immediate`).
    #[arg(long, value_name = "latest|immediate", value_parser = crate::pitr::RecoveryTarget::named, requires = "pitr_source", conflicts_with_all = ["target_time", "target_lsn", "target_xid"], help_heading = "Point-in-time recovery")]
    pub target: Option<crate::pitr::RecoveryTarget>,
    /// With --pgbackrest-stanza or --barman-server: recover to this time, with its zone
    /// (2026-12-06T22:11:35Z).
    #[arg(long, value_name = "TIME", value_parser = crate::pitr::RecoveryTarget::time, requires = "pitr_source", conflicts_with_all = ["target_lsn", "target_xid"], help_heading = "Point-in-time recovery")]
    pub target_time: Option<crate::pitr::RecoveryTarget>,
    /// With --pgbackrest-stanza or --barman-server: recover to this WAL location (0/3020D28).
    #[arg(long, value_name = "LSN", value_parser = crate::pitr::RecoveryTarget::lsn, requires = "pitr_source", conflicts_with = "target_xid", help_heading = "Point-in-time recovery")]
    pub target_lsn: Option<crate::pitr::RecoveryTarget>,
    /// With --pgbackrest-stanza or --barman-server: recover to just after this transaction's
    /// commit (its id, as `SELECT pg_current_xact_id()` printed it).
    #[arg(long, value_name = "XID", value_parser = crate::pitr::RecoveryTarget::xid, requires = "pitr_source", help_heading = "Point-in-time recovery")]
    pub target_xid: Option<crate::pitr::RecoveryTarget>,
    /// With --pgbackrest-stanza or --barman-server: restore this backup (its label in
    /// `pgbackrest info`, its id in `barman list-backups`) instead of the newest that fits
    /// the target.
    #[arg(
        long,
        value_name = "LABEL",
        requires = "pitr_source",
        help_heading = "Point-in-time recovery"
    )]
    pub set: Option<String>,
    /// With --pgbackrest-stanza or --barman-server: the source server the repository
    /// archives, reachable and writable. The drill writes its RPO ledger there (schema
    /// pgdrill) for --pitr-window, then takes its own recovery point: one transaction that
    /// fingerprints every table under SHARE locks (writes wait, reads go on) and is the
    /// recovery target; the WAL is switched and waited for in the archive. The restore is
    /// compared exactly with that snapshot and the ledger measures the data lost.
    #[arg(long, value_name = "URL", requires = "pitr_source", conflicts_with_all = ["target", "target_time", "target_lsn", "target_xid"], help_heading = "Point-in-time recovery")]
    pub pitr_source_dsn: Option<String>,
    /// With --pitr-source-dsn: how long the ledger writer commits before the recovery point.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration, requires = "pitr_source_dsn", help_heading = "Point-in-time recovery")]
    pub pitr_window: std::time::Duration,
}

impl DrillArgs {
    /// `drill --target-dsn`: the restore options these flags give.
    fn onto_named_server(&self, target_dsn: String) -> crate::options::RestoreOptions {
        crate::options::RestoreOptions {
            target_dsn,
            backup_file: self.backup_file.clone(),
            repo: self.repo.clone(),
            app: crate::options::AppOptions {
                app_stop: self.app_stop.clone(),
                app_start: self.app_start.clone(),
                app_health_url: self.app_health_url.iter().cloned().collect(),
                app_healthy_status: Some(self.app_healthy_status.clone()),
                app_health_format: self.app_health_format.clone(),
                app_log: self.app_log.clone(),
                app_metrics_url: self.app_metrics_url.clone(),
                ..crate::options::AppOptions::default()
            },
            observe: Some(self.observe),
            jobs: self.jobs,
            budgets: Some(crate::plan::Budgets {
                database_restore: self.budget_restore,
                app_restart: self.budget_app,
                verification: self.budget_verify,
                total: self.budget_total,
                ..crate::plan::Budgets::default()
            }),
            out: self.out.clone(),
            globals: self.globals.clone(),
            record: self.record.clone().into(),
            reason: self.record.purpose.clone(),
            tamper_sql: self.tamper_sql.clone(),
            ..crate::options::RestoreOptions::default()
        }
    }
}

/// The flags of `pgdrill drill` that go into the report's record (flattened into `DrillArgs`).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Record of the exercise")]
pub struct RecordArgs {
    /// Who runs the drill (default: $USER@host).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Who approved the drill; the HTML report has a signature line for them.
    #[arg(long, value_name = "NAME")]
    pub approver: Option<String>,
    /// The change or incident ticket the drill belongs to.
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// Why the drill runs, e.g. "monthly full restore test".
    #[arg(long, value_name = "TEXT")]
    pub purpose: Option<String>,
    /// The environment drilled: staging, production…
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// When the next test is scheduled (RFC 3339, or a duration from now such as 7d).
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub next_test: Option<chrono::DateTime<chrono::Utc>>,
    /// An issue found during the exercise, documented with it (repeatable).
    #[arg(long = "issue", value_name = "TEXT")]
    pub issues: Vec<String>,
    /// An emergency contact (repeatable): a role and how to reach them, e.g.
    /// "Database Admin=Jane Doe <jane@example.com>, +1 555 0100". Every failure message ends
    /// with them; a strategy role (Database Admin, DevOps Lead, On-Call Engineer) without one,
    /// or still `[contact]`, is a warning in every report. A plan file may hold them as a
    /// `[contacts]` table of role = "…".
    #[arg(long = "contact", value_name = "ROLE=REACH", value_parser = crate::contacts::Contact::parse)]
    pub contacts: Vec<crate::contacts::Contact>,
}

impl From<RecordArgs> for crate::plan::RecordPlan {
    fn from(a: RecordArgs) -> Self {
        crate::plan::RecordPlan {
            operator: a.operator.filter(|o| !o.trim().is_empty()),
            approver: a.approver,
            ticket: a.ticket,
            purpose: a.purpose,
            environment: a.environment,
            next_test: a.next_test,
            issues: a.issues,
            contacts: a.contacts,
        }
    }
}

/// `--next-test`: an RFC 3339 moment, or a duration from now (`7d`, `1month`).
fn parse_when(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::duration::parse_time(s).or_else(|time_err| {
        crate::duration::parse_duration(s)
            .map(|d| chrono::Utc::now() + chrono::TimeDelta::from_std(d).unwrap_or_default())
            .map_err(|_| format!("{time_err}, or a duration from now such as 7d"))
    })
}

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
    /// Inject a fault the drill must catch (repeatable): `config-tamper` and
    /// `config-wrong-identity` (--scope full) must fail the drill; `blind-compare` blinds the
    /// comparison, which the negative controls must notice. Its history line is marked
    /// `kind: fault`, never counted in the pass rate.
    #[arg(
        long,
        value_enum,
        value_name = "FAULT",
        help_heading = "Testing the tester"
    )]
    pub fault: Vec<Fault>,
}

/// `--rows`: a whole number of generated users, at least 1.
fn parse_rows(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "--rows must be a whole number ≥ 1 (the generated users), got {s}; e.g. --rows 100000"
        )),
    }
}

/// `--server-setting`: a known, settable PostgreSQL parameter and its value (checked again
/// by `DrillOptions::into_plan`, for the library's callers).
fn parse_server_setting(s: &str) -> Result<String, String> {
    crate::pg::settings::parse_pair(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

impl From<ScopeArgs> for ScopeOptions {
    fn from(a: ScopeArgs) -> Self {
        ScopeOptions {
            scope: a.scope,
            config_file: a.config_file,
            require: a.require,
            code_repo: a.code_repo,
            deploy: a.deploy,
            rollback_to: a.rollback_to,
            budget_config: a.budget_config,
            budget_code: a.budget_code,
            rpo: a.rpo,
            writer_rate: a.writer_rate,
            backup_every: a.backup_every,
            backups: a.backups,
            disaster_at: a.disaster_at,
            disaster_seed: a.disaster_seed,
            fault: a.fault,
        }
    }
}

impl From<DrillArgs> for DrillOptions {
    fn from(a: DrillArgs) -> Self {
        DrillOptions {
            plan_note: a.plan_note,
            sample_app: None,
            backend: a.backend,
            rows: a.rows,
            seed: a.seed,
            source_dsn: a.source_dsn,
            backup_file: a.backup_file,
            repo: a.repo,
            pick: a.pick,
            window: a.window,
            disaster: a.disaster,
            jobs: a.jobs,
            stall_timeout: a.stall_timeout,
            budget_restore: a.budget_restore,
            budget_app: a.budget_app,
            budget_verify: a.budget_verify,
            budget_total: a.budget_total,
            out: a.out,
            keep: a.keep,
            app: a.app,
            app_start: a.app_start,
            app_image: a.app_image,
            app_port: a.app_port,
            app_stop: a.app_stop,
            app_health_url: a.app_health_url,
            app_healthy_status: a.app_healthy_status,
            app_health_format: a.app_health_format,
            app_log: a.app_log,
            app_metrics_url: a.app_metrics_url,
            app_version_url: a.app_version_url,
            app_env: a.app_env,
            app_restart_env: a.app_restart_env,
            observe: a.observe,
            max_heartbeat_age: a.max_heartbeat_age,
            history: a.history,
            no_dump_in_bundle: a.no_dump_in_bundle,
            sign_key: a.sign_key,
            tamper_sql: a.tamper_sql,
            strict_schema: a.strict_schema,
            globals: a.globals,
            missing_roles: a.missing_roles,
            negative_controls: a.negative_controls,
            scope: a.scope.into(),
            record: a.record.into(),
            server_settings: a.server_setting,
            server_settings_from: a.server_settings_from,
            pitr: {
                use crate::pitr::PitrTool;
                let tool = match (a.pgbackrest_stanza, a.barman_server) {
                    (Some(name), _) => Some((PitrTool::Pgbackrest, name, a.pgbackrest_config)),
                    (None, Some(name)) => Some((PitrTool::Barman, name, a.barman_config)),
                    (None, None) => None,
                };
                tool.map(|(tool, name, config)| crate::pitr::PitrPlan {
                    tool,
                    name,
                    config,
                    target: a
                        .target
                        .or(a.target_time)
                        .or(a.target_lsn)
                        .or(a.target_xid)
                        .unwrap_or(crate::pitr::RecoveryTarget::Latest),
                    set: a.set,
                    source: None,
                })
            },
            pitr_source_dsn: a.pitr_source_dsn,
            pitr_window: a.pitr_window,
        }
    }
}

impl DrillArgs {
    /// The plan of these flags: [`DrillOptions::prepare`] (validated, inputs resolved).
    pub fn into_plan(self, now: chrono::DateTime<chrono::Utc>) -> Result<crate::plan::Plan, Error> {
        DrillOptions::from(self).prepare(now)
    }
}

/// `pgdrill drill`: runs the drill (SIGINT and SIGTERM cancel it), writes and publishes the
/// report, prints its summary; exit 0 pass, 1 fail, 3 when it could not run.
pub async fn run(args: DrillArgs) -> Result<Exit, Error> {
    if let (Some(dsn), Some(confirm)) = (args.target_dsn.clone(), args.confirm.clone()) {
        if !args.server_setting.is_empty() || args.server_settings_from.is_some() {
            return Err(Error::Usage(
                "--server-setting and --server-settings-from configure the disposable restore target; pgdrill never reconfigures a server you name with --target-dsn: drop them (the report lists that server's own settings), or drill into a disposable server without --target-dsn".into(),
            ));
        }
        let notifier = args.notify.notifier(false)?;
        let purpose = args.record.purpose.clone();
        let prom = args.prom.clone();
        let plan = args.onto_named_server(dsn).prepare(chrono::Utc::now())?;
        return super::restore::confirmed(
            plan,
            &confirm,
            None,
            purpose.as_deref(),
            notifier.as_ref(),
            prom.as_deref(),
        )
        .await;
    }
    let notifier = args.notify.notifier(true)?;
    let prom = args.prom.clone();
    let options = DrillOptions::from(args);
    // Before anything starts: a key that cannot sign is a usage error, not a lost drill.
    let publish = options.publish()?;
    let mut plan = options.prepare(chrono::Utc::now())?;
    crate::options::check_source(&plan).await?;
    crate::options::copy_server_settings(&mut plan).await?;
    let repo = plan.repo.as_ref().map(|r| r.dir.clone());
    let out_dir = plan.out_dir.clone();
    let mut report = super::run_cancellable(plan).await?;
    if let Some(n) = &notifier {
        // The last counted drill's verdict, before this one's line is appended.
        let previous = crate::report::history::read(&publish.history)
            .ok()
            .and_then(|h| h.into_iter().rev().find(|e| e.counts()))
            .map(|e| e.verdict);
        let event = crate::notify::Event::of_report("drill", &report, &out_dir.join("report.md"));
        report
            .notifications
            .push(super::notify(n, &event, previous).await);
    }
    // The forecast of this drill's backend and -j, over the history and this drill itself.
    let this = crate::report::history::Entry::of(
        &report,
        &out_dir.join("report.json"),
        String::new(),
        publish.kind,
    );
    report.forecast = crate::report::forecast::for_report(
        crate::report::history::read(&publish.history).unwrap_or_default(),
        this,
    );
    report.write_all(&out_dir)?;
    if let Some(repo) = &repo {
        crate::regime::record_drill(repo, &report, &out_dir)?;
    }
    for warning in report.publish(&out_dir, &publish)? {
        eprintln!("pgdrill: {warning}");
    }
    if let Some(path) = &prom {
        // After the history line: the last success may be this drill.
        let history = crate::report::history::read(&publish.history).unwrap_or_default();
        let text = crate::report::prom::drill_textfile(&report, &history, chrono::Utc::now());
        crate::digest::write_atomic(path, text.as_bytes()).map_err(|source| Error::Output {
            path: path.clone(),
            source,
        })?;
    }
    print!("{}", report.summary());
    println!("  report: {}", out_dir.join("report.md").display());
    println!("  html: {}", out_dir.join("report.html").display());
    if let Some(key) = &publish.sign_key {
        println!(
            "  signed: {} (ED25519 key {})",
            out_dir
                .join(crate::report::evidence::signature::SIG)
                .display(),
            key.fingerprint()
        );
    }
    Ok(match report.verdict {
        Verdict::Pass => Exit::Pass,
        Verdict::Fail => Exit::Fail,
        Verdict::Error => {
            if let Some(f) = &report.failure {
                // The summary above cut the message; so does this last line (report.md
                // keeps all of it).
                let full = out_dir.join("report.md");
                eprint!(
                    "pgdrill: the drill could not run: {}",
                    crate::report::markdown::cut_message(
                        &f.message,
                        "  ",
                        &full.display().to_string()
                    )
                );
                eprintln!("pgdrill: {}", report.call_line());
            }
            Exit::Environment
        }
    })
}

/// A plan file's bytes, or a usage error naming the path and the fix.
pub(super) fn read_plan(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::Usage(format!(
            "--plan {}: cannot read it ({e}); give the path of a drill plan such as drills/weekly.toml",
            path.display()
        ))
    })
}

/// The command line with the flags of `drill --plan FILE` inserted right after `drill`, so
/// that the command line's own flags, which come later, win (`args_override_self`), and the
/// report's note on the file: its path and the SHA-256 of the bytes read. A key that is not a
/// flag of `pgdrill drill`, or a value of the wrong kind, is a usage error naming the file and
/// the key.
pub fn expand_plan(args: Vec<OsString>) -> Result<(Vec<OsString>, Option<String>), Error> {
    let Some(drill_at) = args.iter().position(|a| a == "drill") else {
        return Ok((args, None));
    };
    let mut path = None;
    for (i, a) in args.iter().enumerate().skip(drill_at + 1) {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        if s == "--plan" {
            path = args.get(i + 1).map(PathBuf::from);
        } else if let Some(p) = s.strip_prefix("--plan=") {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else {
        return Ok((args, None));
    };
    let bytes = read_plan(&path)?;
    let note = {
        use sha2::Digest;
        format!(
            "plan file {} (sha256 {:x}); flags on the command line win over it",
            path.display(),
            sha2::Sha256::digest(&bytes)
        )
    };
    let flags = plan_flags(&path, bytes)?;
    let mut out = args[..=drill_at].to_vec();
    out.extend(flags);
    out.extend_from_slice(&args[drill_at + 1..]);
    Ok((out, Some(note)))
}

/// The flags whose values are `NAME=VALUE` pairs: a plan file may give them as a table.
const PAIR_FLAGS: [&str; 3] = ["contact", "app-env", "app-restart-env"];

/// The flags a plan file's bytes stand for (`key = value` → `--key=value`), or a usage error
/// naming `path` and the key.
pub fn plan_flags(path: &Path, bytes: Vec<u8>) -> Result<Vec<OsString>, Error> {
    let bad = |what: String| Error::Usage(format!("--plan {}: {what}", path.display()));
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let table = crate::plan::toml_table(&text).map_err(bad)?;
    table_flags(&format!("--plan {}", path.display()), &table)
}

/// The flags a plan's table stands for (`key = value` → `--key=value`); errors are usage
/// errors that start with `origin` (`--plan FILE`, a fleet's database) and name the key.
pub fn table_flags(origin: &str, table: &toml::Table) -> Result<Vec<OsString>, Error> {
    let bad = |what: String| Error::Usage(format!("{origin}: {what}"));
    let command = <super::Cli as clap::CommandFactory>::command();
    let drill = command
        .find_subcommand("drill")
        .expect("the drill subcommand exists");
    let known: Vec<&str> = drill
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "plan" && *l != "help")
        .collect();
    let mut flags: Vec<OsString> = Vec::new();
    for (key, value) in table {
        if key == "server" {
            flags.extend(server_table(value).map_err(bad)?);
            continue;
        }
        // `[contacts]`, the strategy's section as a table, is the repeatable --contact.
        let flag = match key.as_str() {
            "contacts" => "contact".to_string(),
            k => k.replace('_', "-"),
        };
        if !known.contains(&flag.as_str()) {
            return Err(bad(format!(
                "unknown key `{key}`; the keys are the long flags of `pgdrill drill`: {}",
                known.join(", ")
            )));
        }
        let scalar = |v: &toml::Value| -> Option<String> {
            match v {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Integer(i) => Some(i.to_string()),
                _ => None,
            }
        };
        match value {
            toml::Value::Boolean(true) => flags.push(format!("--{flag}").into()),
            toml::Value::Boolean(false) => {}
            // A table of `name = value` is the repeatable flag `--flag=name=value`, for the
            // flags whose values are such pairs; in name order (toml's tables are sorted; a
            // list of "name=value" keeps its own order).
            toml::Value::Table(entries) if PAIR_FLAGS.contains(&flag.as_str()) => {
                for (name, item) in entries {
                    let v = scalar(item).ok_or_else(|| {
                        bad(format!("`{key}.{name}`: expected a string or a number"))
                    })?;
                    flags.push(format!("--{flag}={name}={v}").into());
                }
            }
            toml::Value::Array(items) => {
                for item in items {
                    let v = scalar(item).ok_or_else(|| {
                        bad(format!("`{key}`: every item must be a string or a number"))
                    })?;
                    flags.push(format!("--{flag}={v}").into());
                }
            }
            v => {
                let v = scalar(v).ok_or_else(|| {
                    bad(format!(
                        "`{key}`: expected a string, a number, true/false or a list"
                    ))
                })?;
                flags.push(format!("--{flag}={v}").into());
            }
        }
    }
    Ok(flags)
}

/// A plan file's `[server]` table: `settings = { name = value, … }` is one
/// `--server-setting=name=value` each (in name order; `true`/`false` are `on`/`off`), and
/// `settings_from = "DSN"` is `--server-settings-from`.
fn server_table(value: &toml::Value) -> Result<Vec<OsString>, String> {
    let toml::Value::Table(server) = value else {
        return Err("`server` must be a table: [server] with settings = { shared_buffers = \"4GB\" } and/or settings_from = \"DSN\"".into());
    };
    let mut flags: Vec<OsString> = Vec::new();
    for (key, item) in server {
        match (key.as_str(), item) {
            ("settings", toml::Value::Table(settings)) => {
                for (name, v) in settings {
                    let v = match v {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        toml::Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
                        _ => {
                            return Err(format!(
                                "`server.settings.{name}`: expected a string, a number or true/false"
                            ))
                        }
                    };
                    flags.push(format!("--server-setting={name}={v}").into());
                }
            }
            ("settings_from", toml::Value::String(dsn)) => {
                flags.push(format!("--server-settings-from={dsn}").into());
            }
            ("settings", _) => {
                return Err("`server.settings` must be a table of PostgreSQL parameters, e.g. settings = { maintenance_work_mem = \"1GB\" }".into())
            }
            ("settings_from", _) => {
                return Err("`server.settings_from` must be a DSN string".into())
            }
            (other, _) => {
                return Err(format!(
                    "unknown key `server.{other}`; [server] takes settings = {{ … }} and settings_from = \"DSN\""
                ))
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::super::{parse, Command};
    use super::DrillArgs;
    use crate::options::DrillOptions;
    use crate::scope::{CodeSource, ConfigSource, ScopeOptions, SAMPLE_REQUIRED_KEYS};

    fn drill_args(args: &[&str]) -> DrillArgs {
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

    /// The library's defaults (`Drill::builder()`) are the command line's.
    #[test]
    fn drill_without_flags_is_the_default_options() {
        assert_eq!(DrillOptions::from(drill_args(&[])), DrillOptions::default());
    }

    /// The plans CI and people use parse: every key is a flag and every value of its kind.
    #[test]
    fn every_shipped_plan_parses_and_the_monthly_one_is_a_full_drill() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/drills");
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "fleet.toml") {
                // Not a plan: a fleet file, whose databases are plans (tests/fleet.rs).
                crate::fleet::Fleet::read(&p).expect("drills/fleet.toml reads");
            } else if p.extension().is_some_and(|x| x == "toml") {
                drill_args(&["--plan", p.to_str().unwrap()]);
            }
        }
        let monthly = drill_args(&["--plan", &format!("{dir}/monthly.toml")]);
        assert_eq!(monthly.scope.scope, super::Scope::Full);
        let plan = ScopeOptions::from(monthly.scope)
            .into_plan(true, false, true, false)
            .expect("the monthly plan validates");
        let full = plan.full.expect("full");
        assert_eq!(full.config, ConfigSource::Sample);
        assert_eq!(full.code, CodeSource::Sample);
        assert_eq!(full.require, SAMPLE_REQUIRED_KEYS);
        assert_eq!(plan.rpo.map(|r| r.rate), Some(50));
        assert_eq!(plan.cadence.disaster_at, crate::rpo::DisasterAt::Random);
    }

    /// `--sign-key` is a plan key like every flag; the key itself is read by `publish`.
    #[test]
    fn a_plan_file_names_the_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("signed.toml");
        std::fs::write(
            &plan,
            "rows = 500\nsign_key = \"/nonexistent/evidence_key\"\n",
        )
        .unwrap();
        let options = DrillOptions::from(drill_args(&["--plan", plan.to_str().unwrap()]));
        assert_eq!(
            options.sign_key.as_deref(),
            Some(std::path::Path::new("/nonexistent/evidence_key"))
        );
        let err = options.publish().unwrap_err().to_string();
        assert!(
            err.starts_with("--sign-key /nonexistent/evidence_key: cannot read it"),
            "{err}"
        );
    }

    /// A plan's `[server]` table is `--server-setting` and `--server-settings-from`; the
    /// command line's `--server-setting` comes later, so it wins.
    #[test]
    fn the_server_table_of_a_plan_is_server_settings() {
        use crate::pg::settings::SettingOrigin;
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("server.toml");
        std::fs::write(
            &plan,
            "rows = 500\n[server]\nsettings = { shared_buffers = \"1GB\", max_parallel_maintenance_workers = 4, fsync = true, checkpoint_completion_target = 0.9 }\nsettings_from = \"postgresql://u@db.internal/shop\"\n",
        )
        .unwrap();
        let options = DrillOptions::from(drill_args(&[
            "--plan",
            plan.to_str().unwrap(),
            "--server-setting",
            "shared_buffers=2GB",
        ]));
        assert_eq!(
            options.server_settings_from.as_deref(),
            Some("postgresql://u@db.internal/shop")
        );
        let plan = options.into_plan(chrono::Utc::now()).unwrap();
        assert_eq!(
            plan.server.assignments(),
            [
                "checkpoint_completion_target=0.9",
                "fsync=on",
                "max_parallel_maintenance_workers=4",
                "shared_buffers=2GB"
            ]
        );
        assert_eq!(
            plan.server.get("fsync").unwrap().origin,
            SettingOrigin::ServerSetting
        );
        std::fs::write(plan_path(&dir), "[server]\nsetings = {}\n").unwrap();
        let argv: Vec<OsString> = [
            "pgdrill",
            "drill",
            "--plan",
            plan_path(&dir).to_str().unwrap(),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let Err(super::super::ParseFailure::Plan(err)) = parse(argv) else {
            panic!("an unknown key of [server] is refused");
        };
        assert!(err.to_string().contains("server.setings"), "{err}");
    }

    fn plan_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
        dir.path().join("bad.toml")
    }

    /// `--app-health-format` is a flag and a plan key; it reaches the app spec.
    #[test]
    fn the_health_format_is_a_flag_and_a_plan_key() {
        use crate::app::HealthFormat;
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("spring.toml");
        std::fs::write(&plan, "rows = 500\napp_health_format = \"spring\"\n").unwrap();
        let options = DrillOptions::from(drill_args(&["--plan", plan.to_str().unwrap()]));
        assert_eq!(options.app_health_format, HealthFormat::Spring);
        let path = DrillOptions::from(drill_args(&["--app-health-format", "json-path=$.a[0]"]));
        let plan = path.into_plan(chrono::Utc::now()).unwrap();
        assert_eq!(
            plan.app.unwrap().spec.health_format().to_string(),
            "json-path=$.a[0]"
        );
        let argv: Vec<OsString> = ["pgdrill", "drill", "--app-health-format", "json-path=a.b"]
            .iter()
            .map(OsString::from)
            .collect();
        let Err(super::super::ParseFailure::Clap(err)) = parse(argv) else {
            panic!("a path without $ is refused by clap");
        };
        let text = err.to_string();
        assert!(text.contains("must start with $"), "{text}");
    }

    #[test]
    fn full_scope_flags_are_refused_where_they_do_not_apply() {
        let err = |args: &[&str], generated, live, sample, custom| {
            ScopeOptions::from(drill_args(args).scope)
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
