//! The command line (clap), turned into a validated [`Plan`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::app::{AppSpec, CustomApp};
use crate::env::{BackendKind, Endpoint};
use crate::error::Error;
use crate::plan::{self, AppPlan, Budgets, Disaster, Plan, Source};

/// Disaster-recovery drills for PostgreSQL backups.
#[derive(Debug, Parser)]
#[command(name = "pgdrill", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per process: the size of the drill's flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one drill end to end: provision, load, backup, disaster, restore, verify, report.
    Drill(DrillArgs),
    /// Remove what killed drills left behind: their temp directories (and, when Docker is
    /// there, their labelled containers and networks); a live drill's are never touched.
    Clean(CleanArgs),
    /// Back up or restore configuration files (.env, API keys, VPN configs), age-encrypted.
    Config(crate::config::command::ConfigArgs),
    /// Take one database backup into the repo (`database/backup_YYYYmmdd_HHMMSS.dump`).
    Backup(crate::regime::BackupArgs),
    /// Check the repo: freshness against the RPO, gaps, sizes, checksums, the newest dump read through.
    Verify(crate::regime::VerifyArgs),
    /// Retention: what goes (dry run) or delete it (--confirm), with floors.
    Prune(crate::regime::PruneArgs),
    /// The repo's audit log: verify its hash chain or show it.
    Audit(crate::regime::AuditArgs),
    /// Summarise past drills: pass rate, RTO used, restore time against backup size, staleness.
    History(HistoryArgs),
    /// Check a drill's sealed evidence bundle.
    Evidence(EvidenceArgs),
}

/// Flags of `pgdrill history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The history file (default `<repo>/history.ndjson` with --repo, else reports/history.ndjson).
    #[arg(long, value_name = "FILE", env = "PGDRILL_HISTORY")]
    pub history: Option<PathBuf>,
    /// The backup repository whose drills to summarise (its history.ndjson).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Only drills that finished this long before --at.
    #[arg(long, value_name = "DUR", default_value = "90d", value_parser = plan::parse_duration)]
    pub since: std::time::Duration,
    /// Exit 1 unless a drill passed within this long before --at (the staleness alarm).
    #[arg(long, value_name = "DUR", value_parser = plan::parse_duration)]
    pub max_age: Option<std::time::Duration>,
    /// Evaluate as of this moment (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = crate::duration::parse_time)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write an overview page with the charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl HistoryArgs {
    /// The query these flags ask.
    pub fn query(&self) -> crate::report::history::Query {
        crate::report::history::Query {
            path: self
                .history
                .clone()
                .unwrap_or_else(|| crate::report::history::default_path(self.repo.as_deref())),
            at: self.at,
            since: self.since,
            max_age: self.max_age,
            json: self.json,
            html: self.html.clone(),
        }
    }
}

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

/// Flags of `pgdrill clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only list what would be removed (exit 1 when there is something).
    #[arg(long)]
    pub dry_run: bool,
}

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
    /// The sample app's binary, when a library user names it (else [`sample_app_binary`]).
    #[arg(skip)]
    pub sample_app: Option<PathBuf>,
    /// Where disposable servers come from.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// Number of generated users (subscriptions and payments follow).
    #[arg(long, default_value_t = 100_000, conflicts_with_all = ["source_dsn", "backup_file", "repo"])]
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
    #[arg(long, value_enum, default_value_t = crate::regime::Pick::Newest, requires = "repo")]
    pub pick: crate::regime::Pick,
    /// With --repo --pick random: how far back to pick from.
    #[arg(long, value_name = "DUR", default_value = "7d", value_parser = plan::parse_duration, requires = "repo")]
    pub window: std::time::Duration,
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
    /// Custom app: the JSON `status` that means healthy.
    #[arg(long, value_name = "STATUS", default_value = "HEALTHY")]
    pub app_healthy_status: String,
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
    #[arg(long, value_name = "DUR", default_value = "3s", value_parser = plan::parse_duration)]
    pub observe: std::time::Duration,
    /// The oldest worker heartbeat that counts as normal.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = plan::parse_duration)]
    pub max_heartbeat_age: std::time::Duration,
    /// The history file this drill appends its line to (default reports/history.ndjson).
    #[arg(long, value_name = "FILE", env = "PGDRILL_HISTORY")]
    pub history: Option<PathBuf>,
    /// Leave the dump out of SHA256SUMS (it is listed in UNSEALED instead).
    #[arg(long)]
    pub no_dump_in_bundle: bool,
    /// Test hook: SQL run on the restored database before verification (simulated corruption).
    #[arg(long, hide = true, value_name = "SQL")]
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
    /// `--scope`, the full drill's configuration and code, the backup schedule and the RPO.
    #[command(flatten)]
    pub scope: crate::scope::ScopeArgs,
}

/// Which application runs under the drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppChoice {
    /// The sample app for generated data; none for other sources.
    Auto,
    /// This project's sample-app (needs the generated schema).
    Sample,
    /// The user's application (--app-start, --app-health-url, …).
    Custom,
    /// No application: its phases and checklist items are skipped with that reason.
    None,
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// The sample-app binary: `PGDRILL_SAMPLE_APP`, else beside the running pgdrill.
pub fn sample_app_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PGDRILL_SAMPLE_APP") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("sample-app")))
        .unwrap_or_else(|| PathBuf::from("sample-app"))
}

impl DrillArgs {
    /// How this drill publishes its evidence after the report is written.
    pub fn publish(&self) -> crate::report::evidence::Publish {
        crate::report::evidence::Publish {
            history: self
                .history
                .clone()
                .unwrap_or_else(|| crate::report::history::default_path(self.repo.as_deref())),
            dump_in_bundle: !self.no_dump_in_bundle,
        }
    }

    fn app_plan(&mut self, generated: bool) -> Result<Option<AppPlan>, Error> {
        let custom_flags =
            self.app_start.is_some() || self.app_health_url.is_some() || self.app_image.is_some();
        let choice = match self.app {
            AppChoice::Auto if custom_flags => AppChoice::Custom,
            AppChoice::Auto if generated => AppChoice::Sample,
            AppChoice::Auto => AppChoice::None,
            c => c,
        };
        let spec = match choice {
            AppChoice::None => return Ok(None),
            AppChoice::Sample => {
                let binary = self.sample_app.take().unwrap_or_else(sample_app_binary);
                if !binary.is_file() {
                    return Err(Error::Environment(crate::error::EnvError::MissingBinary {
                        program: format!(
                            "sample-app (looked for {}; build it with `cargo build --release --bins`, set PGDRILL_SAMPLE_APP, or pass --app none)",
                            binary.display()
                        ),
                    }));
                }
                AppSpec::Sample {
                    binary,
                    env: std::mem::take(&mut self.app_env),
                }
            }
            AppChoice::Custom => {
                let image = self.app_image.take().map(|image| crate::app::AppImage {
                    image,
                    port: self.app_port,
                });
                let start = self.app_start.take();
                let (true, Some(health_url)) = (
                    start.is_some() || image.is_some(),
                    self.app_health_url.take(),
                ) else {
                    return Err(Error::Usage(
                        "--app custom needs --app-start CMD (or --app-image IMAGE) and --app-health-url URL (a path such as /health with --app-image)".into(),
                    ));
                };
                AppSpec::Custom(CustomApp {
                    image,
                    start: start.unwrap_or_default(),
                    stop: self.app_stop.take(),
                    health_url,
                    healthy_status: self.app_healthy_status.clone(),
                    log_file: self.app_log.take(),
                    metrics_url: self.app_metrics_url.take(),
                    version_url: self.app_version_url.take(),
                    env: std::mem::take(&mut self.app_env),
                })
            }
            AppChoice::Auto => unreachable!("resolved above"),
        };
        spec.validate()
            .map_err(|e| Error::Usage(format!("application: {e}")))?;
        Ok(Some(AppPlan {
            spec,
            restart_env: std::mem::take(&mut self.app_restart_env),
            observe: self.observe,
            max_heartbeat_age: self.max_heartbeat_age,
        }))
    }

    /// Validates the flags into a plan.
    pub fn into_plan(mut self, now: chrono::DateTime<chrono::Utc>) -> Result<Plan, Error> {
        let drill_id = plan::new_drill_id(now);
        let mut repo_note = None;
        if let Some(repo) = &self.repo {
            let (dump, note) = crate::regime::pick_backup(repo, self.pick, self.window, now)?;
            self.backup_file = Some(dump);
            repo_note = Some(note);
        }
        let globals = match self.globals.take() {
            Some(g) if !g.is_file() => {
                return Err(Error::Usage(format!(
                    "--globals {}: no such file; pass the output of `pg_dumpall --globals-only`",
                    g.display()
                )))
            }
            g => g,
        };
        let generated = self.source_dsn.is_none() && self.backup_file.is_none();
        let app = self.app_plan(generated)?;
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
            config_restore: self.scope.budget_config,
            code_rollback: self.scope.budget_code,
            total: self.budget_total,
        };
        let scope = self.scope.clone().into_plan(
            matches!(source, Source::Generated { .. }),
            matches!(source, Source::Dsn(_)),
            app.as_ref().is_some_and(|a| a.is_sample()),
            app.as_ref().is_some_and(|a| !a.is_sample()),
        )?;
        let out_dir = self
            .out
            .unwrap_or_else(|| PathBuf::from("reports").join(&drill_id));
        let mut notes: Vec<String> = self.plan_note.take().into_iter().chain(repo_note).collect();
        // An app image runs only as a container: auto means docker then.
        let backend = match (app.as_ref().and_then(|a| a.spec.image()), self.backend) {
            (Some(_), BackendKind::Auto) => {
                notes.push(
                    "--backend auto chose docker: --app-image runs the application as a container"
                        .into(),
                );
                BackendKind::Docker
            }
            (Some(_), BackendKind::Native) => {
                return Err(Error::Usage(
                    "--app-image runs the application as a container: use --backend docker (or auto), or describe it with --app-start for the native backend".into(),
                ))
            }
            (_, b) => b,
        };
        if matches!(source, Source::Dsn(_)) && self.disaster == Disaster::DropDb {
            return Err(Error::Usage(
                "--disaster drop-db cannot be combined with --source-dsn: pgdrill never writes to the source; the restore always goes to a new disposable server (server-loss)".into(),
            ));
        }
        Ok(Plan {
            notes,
            drill_id,
            backend,
            source,
            disaster: self.disaster,
            jobs,
            budgets,
            out_dir,
            keep: self.keep,
            app,
            tamper_sql: self.tamper_sql,
            strict_schema: self.strict_schema,
            globals,
            missing_roles: self.missing_roles,
            scope,
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
            // pg_dump -Fd writes a directory with toc.dat: a backup, but not of the strategy's
            // format, and not a directory of them.
            let why = if dir.join("toc.dat").is_file() {
                "it is a directory-format dump (pg_dump -Fd), not a directory of backups; pgdrill restores custom-format archives: take the backup with pg_dump -Fc (the strategy's format), or convert this one with pg_restore -f - DIR | psql into a scratch database and pg_dump -Fc it"
            } else {
                "the directory holds no backup_*.dump file; name the dump itself, or the directory the strategy's backups are written to (backup_YYYYmmdd_HHMMSS.dump)"
            };
            Error::Usage(format!("--backup-file {}: {why}", dir.display()))
        })
}

fn read_plan(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::Usage(format!(
            "--plan {}: cannot read it ({e}); give the path of a drill plan such as drills/weekly.toml",
            path.display()
        ))
    })
}

/// Why a command line did not parse.
#[derive(Debug)]
pub enum ParseFailure {
    /// clap's own answer, to print as clap does (help and version included).
    Clap(clap::Error),
    /// The plan file given with `--plan` is unusable.
    Plan(Error),
}

/// Parses a command line, with `drill --plan FILE` expanded by [`expand_plan`] and the plan
/// file's record kept for the report.
pub fn parse(args: Vec<OsString>) -> Result<Cli, ParseFailure> {
    let (args, note) = expand_plan(args).map_err(ParseFailure::Plan)?;
    let mut cli = <Cli as clap::Parser>::try_parse_from(args).map_err(ParseFailure::Clap)?;
    if let Command::Drill(drill) = &mut cli.command {
        drill.plan_note = note;
    }
    Ok(cli)
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
    let bad = |what: String| Error::Usage(format!("--plan {}: {what}", path.display()));
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(format!("not valid TOML: {}", e.message())))?;
    let command = <Cli as clap::CommandFactory>::command();
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
    for (key, value) in &table {
        let flag = key.replace('_', "-");
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
    let mut out = args[..=drill_at].to_vec();
    out.extend(flags);
    out.extend_from_slice(&args[drill_at + 1..]);
    Ok((out, Some(note)))
}
