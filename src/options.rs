//! What a drill is asked to do, before validation: [`DrillOptions`], the one options type that
//! `pgdrill drill`'s flags (and a `--plan` file's keys, which are those flags) and
//! [`crate::Drill::builder`] both fill. [`DrillOptions::into_plan`] validates it into a
//! [`Plan`] without touching the file system; [`resolve_inputs`] is the one step before a
//! drill that does: it names a directory's newest dump and checks that the files the drill
//! reads are there and a `--repo` is a repository. [`DrillOptions::prepare`] does both;
//! [`check_source`] then connects to a `--source-dsn`. All of it before anything is
//! provisioned, so a bad input is exit 2 with nothing started. Picking a `--repo` backup is a
//! phase of the drill itself (`pick_backup`): timed, and reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::{AppSpec, CustomApp};
use crate::env::{BackendKind, Endpoint};
use crate::error::Error;
use crate::plan::{
    self, AppPlan, Budgets, Disaster, NegativeControls, Pick, Plan, RepoPick, Source,
};
use crate::scope::{ConfigSource, ScopeOptions};

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

/// The options of one drill: each field is a flag of `pgdrill drill` (see its `--help`), and
/// [`Default`] is that command without flags.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillOptions {
    /// The report's record of the plan file the flags came from (`--plan`).
    pub plan_note: Option<String>,
    /// The sample app's binary, when a library user names it (else [`sample_app_binary`]).
    pub sample_app: Option<PathBuf>,
    /// `--backend`.
    pub backend: BackendKind,
    /// `--rows`.
    pub rows: u64,
    /// `--seed`.
    pub seed: u64,
    /// `--source-dsn`.
    pub source_dsn: Option<String>,
    /// `--backup-file`: a dump, or a directory whose newest `backup_*.dump` is meant.
    pub backup_file: Option<PathBuf>,
    /// `--repo`: restore a backup from this repository (it wins over `backup_file`).
    pub repo: Option<PathBuf>,
    /// `--pick`.
    pub pick: Pick,
    /// `--window`.
    pub window: Duration,
    /// `--disaster`.
    pub disaster: Disaster,
    /// `--jobs` (default: the number of cores).
    pub jobs: Option<u32>,
    /// `--stall-timeout`.
    pub stall_timeout: Duration,
    /// `--budget-restore`.
    pub budget_restore: Duration,
    /// `--budget-app`.
    pub budget_app: Duration,
    /// `--budget-verify`.
    pub budget_verify: Duration,
    /// `--budget-total`.
    pub budget_total: Duration,
    /// `--out` (default reports/<drill-id>/).
    pub out: Option<PathBuf>,
    /// `--keep`.
    pub keep: bool,
    /// `--app`.
    pub app: AppChoice,
    /// `--app-start`.
    pub app_start: Option<String>,
    /// `--app-image`.
    pub app_image: Option<String>,
    /// `--app-port`.
    pub app_port: u16,
    /// `--app-stop`.
    pub app_stop: Option<String>,
    /// `--app-health-url`.
    pub app_health_url: Option<String>,
    /// `--app-healthy-status`.
    pub app_healthy_status: String,
    /// `--app-health-format`.
    pub app_health_format: crate::app::HealthFormat,
    /// `--app-log`.
    pub app_log: Option<PathBuf>,
    /// `--app-metrics-url`.
    pub app_metrics_url: Option<String>,
    /// `--app-version-url`.
    pub app_version_url: Option<String>,
    /// `--app-env`.
    pub app_env: Vec<(String, String)>,
    /// `--app-restart-env`.
    pub app_restart_env: Vec<(String, String)>,
    /// `--observe`.
    pub observe: Duration,
    /// `--max-heartbeat-age`.
    pub max_heartbeat_age: Duration,
    /// `--history` (default reports/history.ndjson, or the repo's).
    pub history: Option<PathBuf>,
    /// `--no-dump-in-bundle`.
    pub no_dump_in_bundle: bool,
    /// `--sign-key`: the OpenSSH Ed25519 private key that signs the sealed bundle.
    pub sign_key: Option<PathBuf>,
    /// `--tamper-sql` (a test hook).
    pub tamper_sql: Option<String>,
    /// `--strict-schema`.
    pub strict_schema: bool,
    /// `--globals`.
    pub globals: Option<PathBuf>,
    /// `--missing-roles`.
    pub missing_roles: crate::preflight::MissingRoles,
    /// `--negative-controls`.
    pub negative_controls: crate::plan::NegativeControls,
    /// `--scope` and the full drill's options.
    pub scope: ScopeOptions,
    /// `--operator`, `--approver`, `--ticket`, `--purpose`, `--environment`, `--next-test`,
    /// `--issue`, `--contact`.
    pub record: crate::plan::RecordPlan,
    /// `--server-setting`: `KEY=VALUE` pairs for the restore target, in order.
    pub server_settings: Vec<String>,
    /// `--server-settings-from`: a live server whose restore-relevant settings the restore
    /// target copies.
    pub server_settings_from: Option<String>,
    /// `--pgbackrest-stanza` or `--barman-server`, their `--…-config`, `--target…`, `--set`:
    /// a point-in-time-recovery drill of the tool's backups instead of a pg_dump drill.
    pub pitr: Option<crate::pitr::PitrPlan>,
    /// `--pitr-source-dsn`: the PITR drill's source, where it writes its ledger and takes its
    /// own recovery point.
    pub pitr_source_dsn: Option<String>,
    /// `--pitr-window`: how long the ledger writer commits before the recovery point.
    pub pitr_window: Duration,
}

impl Default for DrillOptions {
    fn default() -> Self {
        let budgets = Budgets::default();
        DrillOptions {
            plan_note: None,
            sample_app: None,
            backend: BackendKind::Auto,
            rows: 100_000,
            seed: 42,
            source_dsn: None,
            backup_file: None,
            repo: None,
            pick: Pick::Newest,
            window: Duration::from_secs(7 * 86_400),
            disaster: Disaster::ServerLoss,
            jobs: None,
            stall_timeout: crate::backup::DEFAULT_STALL_TIMEOUT,
            budget_restore: budgets.database_restore,
            budget_app: budgets.app_restart,
            budget_verify: budgets.verification,
            budget_total: budgets.total,
            out: None,
            keep: false,
            app: AppChoice::Auto,
            app_start: None,
            app_image: None,
            app_port: 8080,
            app_stop: None,
            app_health_url: None,
            app_healthy_status: "HEALTHY".into(),
            app_health_format: crate::app::HealthFormat::Auto,
            app_log: None,
            app_metrics_url: None,
            app_version_url: None,
            app_env: Vec::new(),
            app_restart_env: Vec::new(),
            observe: Duration::from_secs(3),
            max_heartbeat_age: Duration::from_secs(5),
            history: None,
            no_dump_in_bundle: false,
            sign_key: None,
            tamper_sql: None,
            strict_schema: false,
            globals: None,
            missing_roles: crate::preflight::MissingRoles::Fail,
            negative_controls: crate::plan::NegativeControls::Auto,
            scope: ScopeOptions::default(),
            record: crate::plan::RecordPlan::default(),
            server_settings: Vec::new(),
            server_settings_from: None,
            pitr: None,
            pitr_source_dsn: None,
            pitr_window: Duration::from_secs(5),
        }
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

/// The note a plan carries when `--backend auto` chose docker.
const AUTO_DOCKER_NOTE: &str =
    "--backend auto chose docker: --app-image runs the application as a container";

impl DrillOptions {
    /// How this drill publishes its evidence after the report is written. It reads the
    /// `--sign-key`, so that a key that cannot sign is a usage error before the drill starts.
    pub fn publish(&self) -> Result<crate::report::evidence::Publish, Error> {
        use crate::report::evidence::signature::SigningKey;
        let sign_key = match &self.sign_key {
            Some(path) => Some(
                SigningKey::read(path)
                    .map_err(|e| Error::Usage(format!("--sign-key {}: {e}", path.display())))?,
            ),
            None => None,
        };
        Ok(crate::report::evidence::Publish {
            history: self
                .history
                .clone()
                .unwrap_or_else(|| crate::report::history::default_path(self.repo.as_deref())),
            dump_in_bundle: !self.no_dump_in_bundle,
            sign_key,
            kind: crate::report::history::DrillKind::of(
                self.tamper_sql.is_some(),
                !self.scope.fault.is_empty(),
            ),
        })
    }

    /// Validates, then resolves the inputs: the plan [`DrillOptions::into_plan`] makes, after
    /// [`resolve_inputs`].
    pub fn prepare(self, now: chrono::DateTime<chrono::Utc>) -> Result<Plan, Error> {
        let mut plan = self.into_plan(now)?;
        resolve_inputs(&mut plan)?;
        Ok(plan)
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
            // Whether the binary is there is for `resolve_inputs` to find out.
            AppChoice::Sample => AppSpec::Sample {
                binary: self.sample_app.take().unwrap_or_else(sample_app_binary),
                env: std::mem::take(&mut self.app_env),
                health_format: self.app_health_format.clone(),
            },
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
                    health_format: self.app_health_format.clone(),
                    log_file: self.app_log.take(),
                    metrics_url: self.app_metrics_url.take(),
                    version_url: self.app_version_url.take(),
                    env: std::mem::take(&mut self.app_env),
                })
            }
            AppChoice::Auto => unreachable!("resolved above"),
        };
        let checked = match &spec {
            AppSpec::Sample { .. } => spec.validate_env(),
            AppSpec::Custom(_) => spec.validate(),
        };
        checked.map_err(|e| Error::Usage(format!("application: {e}")))?;
        Ok(Some(AppPlan {
            spec,
            restart_env: std::mem::take(&mut self.app_restart_env),
            observe: self.observe,
            max_heartbeat_age: self.max_heartbeat_age,
        }))
    }

    /// Validates the options into a plan. Pure: nothing is read from the file system here, so
    /// a `--backup-file` directory, a `--repo` and the files named are still as given;
    /// [`resolve_inputs`] resolves and checks them.
    pub fn into_plan(mut self, now: chrono::DateTime<chrono::Utc>) -> Result<Plan, Error> {
        let drill_id = plan::new_drill_id(now);
        let repo = self.repo.take().map(|dir| RepoPick {
            dir,
            pick: self.pick,
            window: self.window,
            at: None,
        });
        let mut pitr = self.pitr.take();
        let is_pitr = pitr.is_some();
        if let Some(dsn) = self.pitr_source_dsn.take() {
            let Some(p) = pitr.as_mut() else {
                return Err(Error::Usage(
                    "--pitr-source-dsn names the source of a point-in-time recovery drill: add --pgbackrest-stanza or --barman-server".into(),
                ));
            };
            if p.target != crate::pitr::RecoveryTarget::Latest {
                return Err(Error::Usage(format!(
                    "--pitr-source-dsn makes the drill take its own recovery point on the source and recover to it; a target of its own ({}) cannot be checked against that point's snapshot: drop --target/--target-time/--target-lsn/--target-xid, or drop --pitr-source-dsn",
                    p.target.describe()
                )));
            }
            if self.pitr_window.is_zero() {
                return Err(Error::Usage(
                    "--pitr-window must be at least 1s (e.g. 5s): the ledger needs commits before the recovery point".into(),
                ));
            }
            let endpoint = Endpoint::from_dsn(&dsn)
                .map_err(|e| Error::Usage(format!("--pitr-source-dsn: {e}")))?;
            p.source = Some(crate::pitr::PitrSource {
                endpoint,
                window: self.pitr_window,
                archive_timeout: Duration::from_secs(120),
            });
        }
        let pitr_source = pitr.as_ref().is_some_and(|p| p.source.is_some());
        if let Some(p) = &pitr {
            if self.source_dsn.is_some() || self.backup_file.is_some() || repo.is_some() {
                return Err(Error::Usage(format!(
                    "{} drills the tool's physical backups: drop --source-dsn, --backup-file and --repo (they name a pg_dump source)",
                    p.tool.flag()
                )));
            }
        }
        let generated =
            self.source_dsn.is_none() && self.backup_file.is_none() && repo.is_none() && !is_pitr;
        let app = self.app_plan(generated)?;
        let source = match (pitr, self.source_dsn, &repo, self.backup_file) {
            (Some(p), ..) => Source::Pitr(p),
            (None, Some(dsn), _, _) => Source::Dsn(
                Endpoint::from_dsn(&dsn).map_err(|e| Error::Usage(format!("--source-dsn: {e}")))?,
            ),
            // Until the drill's `pick_backup` phase picks the dump, the repository itself.
            (None, None, Some(r), _) => Source::BackupFile(r.dir.clone()),
            (None, None, None, Some(path)) => Source::BackupFile(path),
            (None, None, None, None) => {
                if self.rows == 0 {
                    return Err(Error::Usage(
                        "--rows must be a whole number ≥ 1 (the generated users), got 0".into(),
                    ));
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
        if self.stall_timeout < std::time::Duration::from_secs(1) {
            return Err(Error::Usage(
                "--stall-timeout must be at least 1s (e.g. 5m): a shorter one abandons healthy backups".into(),
            ));
        }
        let budgets = Budgets {
            database_restore: self.budget_restore,
            app_restart: self.budget_app,
            verification: self.budget_verify,
            config_restore: self.scope.budget_config,
            code_rollback: self.scope.budget_code,
            total: self.budget_total,
        };
        let mut scope = self.scope.clone().into_plan(
            matches!(source, Source::Generated { .. }),
            matches!(source, Source::Dsn(_)) || pitr_source,
            app.as_ref().is_some_and(|a| a.is_sample()),
            app.as_ref().is_some_and(|a| !a.is_sample()),
        )?;
        if pitr_source && scope.rpo.is_none() {
            scope.rpo = Some(crate::scope::RpoPlan {
                rate: crate::rpo::DEFAULT_RATE_PER_SEC,
                objective: scope.objective,
            });
        }
        let out_dir = self
            .out
            .unwrap_or_else(|| PathBuf::from("reports").join(&drill_id));
        let mut notes: Vec<String> = self.plan_note.take().into_iter().collect();
        // An app image runs only as a container: auto means docker then.
        let backend = match (app.as_ref().and_then(|a| a.spec.image()), self.backend) {
            (Some(_), BackendKind::Auto) => {
                notes.push(AUTO_DOCKER_NOTE.into());
                BackendKind::Docker
            }
            (Some(_), BackendKind::Native) => {
                return Err(Error::Usage(
                    "--app-image runs the application as a container: use --backend docker (or auto), or describe it with --app-start for the native backend".into(),
                ))
            }
            (_, b) => b,
        };
        // The tool restores on this machine either way; auto means native, whose binaries
        // start the restored cluster without an image holding the tool.
        let backend = match (&source, backend) {
            (Source::Pitr(_), BackendKind::Auto) => BackendKind::Native,
            (_, b) => b,
        };
        let mut server = crate::pg::settings::ServerSettings::default();
        for given in &self.server_settings {
            let (name, value) =
                crate::pg::settings::parse_pair(given).map_err(|e| Error::Usage(e.to_string()))?;
            server.set(
                name,
                value,
                crate::pg::settings::SettingOrigin::ServerSetting,
            );
        }
        let server_settings_from = match &self.server_settings_from {
            Some(dsn) => Some(
                Endpoint::from_dsn(dsn)
                    .map_err(|e| Error::Usage(format!("--server-settings-from: {e}")))?,
            ),
            None => None,
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
            repo,
            disaster: self.disaster,
            jobs,
            stall_timeout: self.stall_timeout,
            budgets,
            out_dir,
            keep: self.keep,
            app,
            tamper_sql: self.tamper_sql,
            strict_schema: self.strict_schema,
            globals: self.globals,
            missing_roles: self.missing_roles,
            negative_controls: self.negative_controls,
            scope,
            record: self.record,
            restore: None,
            config_restore: None,
            rollback: None,
            server,
            server_settings_from,
        })
    }
}

/// The one step between a validated plan and a drill that reads the file system: checks that
/// `--globals` is a file, that the
/// sample app's binary is there, names a `--backup-file` directory's newest dump, and checks
/// the full drill's `--config-file`s.
pub fn resolve_inputs(plan: &mut Plan) -> Result<(), Error> {
    if let Some(g) = plan.globals.as_ref().filter(|g| !g.is_file()) {
        return Err(Error::Usage(format!(
            "--globals {}: no such file; pass the output of `pg_dumpall --globals-only`",
            g.display()
        )));
    }
    if let Some(AppSpec::Sample { binary, .. }) = plan.app.as_ref().map(|a| &a.spec) {
        if !binary.is_file() {
            return Err(Error::Environment(crate::error::EnvError::MissingBinary {
                program: format!(
                    "sample-app (looked for {}; build it with `cargo build --release --bins`, set PGDRILL_SAMPLE_APP, or pass --app none)",
                    binary.display()
                ),
            }));
        }
    }
    if let Some(r) = &plan.repo {
        crate::repo::Repo::open(Some(r.dir.clone()))?;
    }
    if let Source::BackupFile(path) = &plan.source {
        if plan.repo.is_none() {
            if path.is_dir() {
                plan.source = Source::BackupFile(newest_backup(path)?);
            } else if let Err(e) = std::fs::File::open(path) {
                return Err(Error::Usage(format!(
                    "--backup-file {}: cannot read it ({e}); name a pg_dump -Fc archive, or the directory the strategy's backups are written to (backup_YYYYmmdd_HHMMSS.dump)",
                    path.display()
                )));
            }
        }
    }
    if let Some(ConfigSource::Files(files)) = plan.full().map(|f| &f.config) {
        for f in files {
            if !f.is_file() {
                return Err(Error::Usage(format!(
                    "--config-file {}: no such file; name the application's configuration files (.env, API keys, VPN config)",
                    f.display()
                )));
            }
        }
    }
    Ok(())
}

/// Before anything is provisioned: a `--source-dsn` must accept a connection (nothing is run
/// on it). A source refused, unresolvable, or that rejects the user or password is an input
/// to fix, told at once (exit 2), not an hour of provisioning later; one that fails later in
/// the drill is the environment's (exit 3).
pub async fn check_source(plan: &Plan) -> Result<(), Error> {
    if let Source::Pitr(p) = &plan.source {
        if let Some(src) = &p.source {
            if let Err(e) = src.endpoint.connect().await {
                return Err(Error::Usage(format!(
                    "--pitr-source-dsn {}: cannot connect: {e}. Nothing was started; fix the DSN, or drop --pitr-source-dsn to drill the archive alone",
                    src.endpoint.display()
                )));
            }
        }
        return check_stanza(p).await;
    }
    let Source::Dsn(source) = &plan.source else {
        return Ok(());
    };
    match source.connect().await {
        Ok(_client) => Ok(()),
        Err(crate::error::EnvError::Connect { reason, .. }) => Err(Error::Usage(format!(
            "--source-dsn {}: cannot connect: {}. Nothing was started; fix the DSN (host, port, database, user, password or PGPASSWORD) or start the source server, and run the drill again",
            source.display(),
            reason.trim_end_matches('.')
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Before anything is provisioned: the tool (`pgbackrest info`, `barman show-backup`) must
/// know the stanza or server, accept its configuration and list a backup (and `--set`'s),
/// and the target must be one recovery can reach (after the backup's end; for pgBackRest,
/// whose archive is listed, not after the newest archived WAL); the tool missing is exit 3,
/// the rest exit 2, each naming the fix ([`Error::pitr`]). The drill's own `precheck` phase
/// asks again, timed, and runs the tool's check.
async fn check_stanza(p: &crate::pitr::PitrPlan) -> Result<(), Error> {
    let refused = |e| Error::pitr(p.tool, &p.name, e);
    let tool = crate::pitr::Tool::locate(p).map_err(refused)?;
    let info = tool.info().await.map_err(refused)?;
    // A target recovery cannot reach is refused now, from the tool's own listing (the
    // precheck asks again, timed).
    let wal = match &tool {
        crate::pitr::Tool::Pgbackrest(t) => Some(t.wal_archive(&info).await.map_err(refused)?),
        crate::pitr::Tool::Barman(_) => None,
    };
    info.check_target(p, wal.as_ref()).map_err(refused)?;
    Ok(())
}

/// Before anything is provisioned: `--server-settings-from`'s server is asked (read-only)
/// for its restore-relevant settings ([`crate::pg::settings::copied`]), which join the
/// plan's; a `--server-setting` of the same name wins. A server that refuses the connection
/// is exit 2, like a `--source-dsn`'s.
pub async fn copy_server_settings(plan: &mut Plan) -> Result<(), Error> {
    let Some(from) = plan.server_settings_from.take() else {
        return Ok(());
    };
    let copied = crate::pg::settings::copy_from(&from)
        .await
        .map_err(|e| match e {
            crate::error::EnvError::Connect { reason, .. } => Error::Usage(format!(
                "--server-settings-from {}: cannot read its settings: {}. Nothing was started; fix the DSN (host, port, database, user, password or PGPASSWORD), or give the settings with --server-setting KEY=VALUE",
                from.display(),
                reason.trim_end_matches('.')
            )),
            e => e.into(),
        })?;
    plan.server.adopt_copied(copied, from.display());
    Ok(())
}

/// The newest `backup_YYYYmmdd_HHMMSS.dump` in a directory: the names sort by time.
pub fn newest_backup(dir: &Path) -> Result<PathBuf, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation reads nothing: files that are not there are found by `resolve_inputs`.
    #[test]
    fn into_plan_reads_nothing_and_resolve_inputs_checks_the_files() {
        let options = DrillOptions {
            app: AppChoice::Sample,
            sample_app: Some("/nonexistent/sample-app".into()),
            backup_file: Some("/nonexistent/dir".into()),
            globals: Some("/nonexistent/globals.sql".into()),
            ..DrillOptions::default()
        };
        let now = chrono::Utc::now();
        let plan = options
            .clone()
            .into_plan(now)
            .expect("validation reads no file");
        assert!(
            matches!(&plan.source, Source::BackupFile(p) if p == Path::new("/nonexistent/dir"))
        );
        let err = options.prepare(now).unwrap_err().to_string();
        assert!(
            err.starts_with("--globals /nonexistent/globals.sql: no such file"),
            "{err}"
        );
    }
}

/// The options of `pgdrill restore` (flags, or the library): the named server, the backup,
/// the application around it and how the live database is replaced.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// `--target-dsn`: the server and the live database it names.
    pub target_dsn: String,
    /// `--backup-file`.
    pub backup_file: Option<PathBuf>,
    /// `--repo`.
    pub repo: Option<PathBuf>,
    /// `--at`: the newest backup of the repository taken at or before this moment.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// The team's application: how it is stopped, started and judged.
    pub app: AppOptions,
    /// `--observe`.
    pub observe: Option<Duration>,
    /// `--in-place`.
    pub in_place: bool,
    /// `--drop-previous`.
    pub drop_previous: bool,
    /// `--safety-dump PATH`.
    pub safety_dump: Option<PathBuf>,
    /// `--no-safety-dump`.
    pub no_safety_dump: bool,
    /// `--jobs`.
    pub jobs: Option<u32>,
    /// `--budget-restore`, `--budget-app`, `--budget-verify`, `--budget-total`.
    pub budgets: Option<Budgets>,
    /// `--out`.
    pub out: Option<PathBuf>,
    /// `--globals`.
    pub globals: Option<PathBuf>,
    /// `--operator`, `--ticket`.
    pub record: crate::plan::RecordPlan,
    /// `--reason`.
    pub reason: Option<String>,
    /// `--tamper-sql` (testing the tester).
    pub tamper_sql: Option<String>,
}

impl RestoreOptions {
    /// The plan of a real restore: validated and its files resolved, the repository's
    /// backup still to be picked by the restore's `pick_backup` phase.
    pub fn prepare(self, now: chrono::DateTime<chrono::Utc>) -> Result<Plan, Error> {
        let target = Endpoint::from_dsn(&self.target_dsn)
            .map_err(|e| Error::Usage(format!("--target-dsn: {e}")))?;
        if target.dbname.is_empty() {
            return Err(Error::Usage(
                "--target-dsn names no database: add it (postgresql://user@host:5432/DBNAME), since the restore replaces that database".into(),
            ));
        }
        if self.backup_file.is_none() && self.repo.is_none() {
            return Err(Error::Usage(
                "give the backup to restore: --backup-file PATH, or --repo DIR (its newest backup, or the newest at or before --at TIME)".into(),
            ));
        }
        let app = self.app.external_app()?;
        if self.drop_previous && self.in_place {
            return Err(Error::Usage(
                "--drop-previous is for the side restore: --in-place replaces the database itself, with the safety dump as its copy".into(),
            ));
        }
        if !self.in_place && (self.safety_dump.is_some() || self.no_safety_dump) {
            return Err(Error::Usage(
                "--safety-dump and --no-safety-dump are for --in-place: the side restore never touches the live database before its swap".into(),
            ));
        }
        let mode = if self.in_place {
            let safety_dump = match (self.no_safety_dump, self.safety_dump, &self.repo) {
                (true, Some(_), _) => {
                    return Err(Error::Usage(
                        "--safety-dump and --no-safety-dump contradict each other: choose one"
                            .into(),
                    ))
                }
                (true, None, _) => None,
                (false, Some(p), _) => Some(p),
                (false, None, Some(repo)) => Some(repo.join("safety").join(format!(
                    "safety_{}_{}.dump",
                    target.dbname,
                    now.format("%Y%m%d_%H%M%S")
                ))),
                (false, None, None) => {
                    return Err(Error::Usage(
                        "--in-place drops the live database: give --safety-dump PATH for the dump taken first (or --repo, where it goes to safety/), or --no-safety-dump to go without one".into(),
                    ))
                }
            };
            crate::plan::RestoreMode::InPlace { safety_dump }
        } else {
            crate::plan::RestoreMode::Side
        };
        let budgets = self.budgets.unwrap_or_default();
        let drill = DrillOptions {
            backend: BackendKind::Native,
            backup_file: self.backup_file,
            repo: self.repo,
            app: AppChoice::None,
            jobs: self.jobs,
            budget_restore: budgets.database_restore,
            budget_app: budgets.app_restart,
            budget_verify: budgets.verification,
            budget_total: budgets.total,
            out: self.out,
            globals: self.globals,
            missing_roles: crate::preflight::MissingRoles::Create,
            negative_controls: NegativeControls::None,
            tamper_sql: self.tamper_sql,
            record: self.record,
            ..DrillOptions::default()
        };
        let mut plan = drill.prepare(now)?;
        if let Some(r) = plan.repo.as_mut() {
            r.at = self.at;
        }
        plan.restore = Some(crate::plan::RestorePlan {
            target,
            mode,
            previous: if self.drop_previous {
                crate::plan::Previous::Drop
            } else {
                crate::plan::Previous::Keep
            },
            app,
            reason: self.reason,
            observe: self.observe.unwrap_or(Duration::from_secs(3)),
        });
        Ok(plan)
    }
}

/// The team's running application as `pgdrill restore` and `pgdrill config restore` name it
/// (`--app-stop/--app-start`, `--app-container`, `--app-unit`) and judge it.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// `--app-stop` and `--app-start`.
    pub app_stop: Option<String>,
    /// See `app_stop`.
    pub app_start: Option<String>,
    /// `--app-container`.
    pub app_container: Option<String>,
    /// `--app-unit`.
    pub app_unit: Option<String>,
    /// `--app-health-url`, each one.
    pub app_health_url: Vec<String>,
    /// `--app-healthy-status`.
    pub app_healthy_status: Option<String>,
    /// `--app-health-format`.
    pub app_health_format: crate::app::HealthFormat,
    /// `--app-log`.
    pub app_log: Option<PathBuf>,
    /// `--app-metrics-url`.
    pub app_metrics_url: Option<String>,
}

impl AppOptions {
    /// Whether any flag names or describes an application.
    pub fn given(&self) -> bool {
        self.app_stop.is_some()
            || self.app_start.is_some()
            || self.app_container.is_some()
            || self.app_unit.is_some()
            || !self.app_health_url.is_empty()
            || self.app_log.is_some()
            || self.app_metrics_url.is_some()
    }

    /// The application these flags name (one way of controlling it), validated; `None` when
    /// none is named. Pure: nothing is run or connected to.
    pub fn external_app(self) -> Result<Option<crate::app::ExternalApp>, Error> {
        let control = match (
            self.app_stop,
            self.app_start,
            self.app_container,
            self.app_unit,
        ) {
            (None, None, None, None) => None,
            (Some(stop), Some(start), None, None) => {
                Some(crate::app::AppControl::Commands { stop, start })
            }
            (None, None, Some(c), None) => Some(crate::app::AppControl::Container(c)),
            (None, None, None, Some(u)) => Some(crate::app::AppControl::Unit(u)),
            (Some(_), None, None, None) | (None, Some(_), None, None) => {
                return Err(Error::Usage(
                    "--app-stop and --app-start go together: the restore stops the application before it changes anything and starts it after".into(),
                ))
            }
            _ => {
                return Err(Error::Usage(
                    "name the application one way: --app-stop/--app-start, --app-container NAME, or --app-unit NAME".into(),
                ))
            }
        };
        let app_flags = !self.app_health_url.is_empty()
            || self.app_log.is_some()
            || self.app_metrics_url.is_some();
        if control.is_none() && app_flags {
            return Err(Error::Usage(
                "--app-health-url, --app-log and --app-metrics-url describe an application the restore stops and starts: name it with --app-stop/--app-start, --app-container or --app-unit".into(),
            ));
        }
        for url in self.app_health_url.iter().chain(&self.app_metrics_url) {
            crate::app::url::HttpUrl::parse(url)
                .map_err(|e| Error::Usage(format!("application URL: {e}")))?;
        }
        Ok(control.map(|control| crate::app::ExternalApp {
            control,
            health_urls: self.app_health_url,
            healthy_status: self
                .app_healthy_status
                .unwrap_or_else(|| "HEALTHY".to_string()),
            health_format: self.app_health_format,
            log_file: self.app_log,
            metrics_url: self.app_metrics_url,
        }))
    }
}

/// The options of `pgdrill config restore --confirm` (flags, or the library): the backup (by
/// its name, as confirmed), the live directory, the application around it.
#[derive(Debug, Clone)]
pub struct ConfigRestoreOptions {
    /// The repo, the backup, the identity, `--to`, `--require`.
    pub request: crate::config::RestoreRequest,
    /// The backup's name (`config_YYYYmmdd_HHMMSS`): the restore runs only this one.
    pub backup: String,
    /// The team's application.
    pub app: AppOptions,
    /// `--budget-config`, `--budget-app`, `--budget-total`.
    pub budgets: Budgets,
    /// `--out`.
    pub out: Option<PathBuf>,
    /// `--operator`, `--ticket`, `--reason`.
    pub record: crate::plan::RecordPlan,
    /// `--reason`.
    pub reason: Option<String>,
}

impl ConfigRestoreOptions {
    /// The plan of a configuration restore: validated, no server, the backup's archive as
    /// its source. Reads the backup's manifest, nothing else.
    pub fn prepare(self, now: chrono::DateTime<chrono::Utc>) -> Result<Plan, Error> {
        let app = self.app.external_app()?;
        let manifest = crate::config::read_manifest(&self.request.repo, &self.backup)?;
        let drill = DrillOptions {
            backend: BackendKind::Native,
            app: AppChoice::None,
            budget_app: self.budgets.app_restart,
            budget_total: self.budgets.total,
            out: self.out,
            negative_controls: NegativeControls::None,
            record: self.record,
            ..DrillOptions::default()
        };
        let mut plan = drill.into_plan(now)?;
        plan.budgets.config_restore = self.budgets.config_restore;
        plan.source =
            Source::BackupFile(crate::config::config_dir(&self.request.repo).join(&manifest.file));
        let mut request = self.request;
        // The backup confirmed, whatever --at or "newest" would pick by the time it runs.
        request.pick = crate::config::Pick::Name(self.backup.clone());
        plan.config_restore = Some(crate::plan::ConfigRestorePlan {
            request,
            backup: self.backup,
            app,
            reason: self.reason,
        });
        Ok(plan)
    }
}

/// The options of `pgdrill rollback` (flags, or the library): the application's repository,
/// the release to go back to, how it is deployed, and how the running release is checked.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// `--code-repo`.
    pub code_repo: PathBuf,
    /// `--deploy`.
    pub deploy: String,
    /// `--deploy-dir`.
    pub deploy_dir: PathBuf,
    /// `--to`: a tag, or `previous`.
    pub to: String,
    /// `--checkout-dir` (default `<out>/checkout-<tag>`).
    pub checkout_dir: Option<PathBuf>,
    /// `--version-url`.
    pub version_url: Option<String>,
    /// `--app-health-url`, each one.
    pub app_health_url: Vec<String>,
    /// `--app-healthy-status`.
    pub app_healthy_status: Option<String>,
    /// `--app-health-format`.
    pub app_health_format: crate::app::HealthFormat,
    /// `--budget-code`, `--budget-app`, `--budget-total`.
    pub budgets: Option<Budgets>,
    /// `--out`.
    pub out: Option<PathBuf>,
    /// `--operator`, `--ticket`, `--contact`.
    pub record: crate::plan::RecordPlan,
    /// `--reason`.
    pub reason: Option<String>,
}

impl RollbackOptions {
    /// The plan of a code rollback, validated without touching the repository: the target is
    /// `target`, the release the dry run resolved `--to` to (see
    /// [`crate::drill::preview::rollback_preview`]).
    pub fn prepare(
        self,
        now: chrono::DateTime<chrono::Utc>,
        target: crate::code::Release,
    ) -> Result<Plan, Error> {
        self.check()?;
        let drill = DrillOptions {
            backend: BackendKind::Native,
            app: AppChoice::None,
            out: self.out,
            negative_controls: NegativeControls::None,
            record: self.record,
            ..DrillOptions::default()
        };
        let mut plan = drill.prepare(now)?;
        plan.budgets = self.budgets.unwrap_or_else(rollback_budgets);
        // Absolute: the deploy command runs in the checkout, and git clones from its parent,
        // so a relative path would name another directory there.
        let checkout = absolute(
            &self
                .checkout_dir
                .unwrap_or_else(|| plan.out_dir.join(format!("checkout-{}", target.tag))),
        );
        let health = (!self.app_health_url.is_empty()).then(|| crate::app::ExternalApp {
            // A rollback never stops or starts the application itself: the deploy command
            // does; only the health endpoints of this value are used.
            control: crate::app::AppControl::Commands {
                stop: String::new(),
                start: self.deploy.clone(),
            },
            health_urls: self.app_health_url,
            healthy_status: self
                .app_healthy_status
                .unwrap_or_else(|| "HEALTHY".to_string()),
            health_format: self.app_health_format,
            log_file: None,
            metrics_url: None,
        });
        plan.rollback = Some(crate::plan::RollbackPlan {
            code_repo: self.code_repo,
            deploy: self.deploy,
            deploy_dir: absolute(&self.deploy_dir),
            target,
            checkout,
            version_url: self.version_url,
            health,
            reason: self.reason,
        });
        Ok(plan)
    }

    /// The flags checked before anything is read: an empty deploy command or target, a URL
    /// that is no http:// URL.
    pub fn check(&self) -> Result<(), Error> {
        if self.deploy.trim().is_empty() {
            return Err(Error::Usage(
                "--deploy is empty: give the command that deploys a checked-out release (it runs with sh -c in the checkout; PGDRILL_RELEASE_WORKTREE, PGDRILL_RELEASE_TAG, PGDRILL_RELEASE_COMMIT and PGDRILL_DEPLOY_DIR name the release and where it goes)".into(),
            ));
        }
        if self.to.trim().is_empty() {
            return Err(Error::Usage(
                "--to is empty: give a release tag, or `previous` (the tag before the deployed one)".into(),
            ));
        }
        if self.deploy_dir.as_os_str().is_empty() {
            return Err(Error::Usage(
                "--deploy-dir is empty: give the directory the release is deployed into (its deployment marker says what runs there)".into(),
            ));
        }
        for url in self.app_health_url.iter().chain(&self.version_url) {
            crate::app::url::HttpUrl::parse(url)
                .map_err(|e| Error::Usage(format!("application URL: {e}")))?;
        }
        Ok(())
    }
}

/// `path` made absolute against the current directory (as given when that fails).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A rollback's budgets: the strategy gives none for a code rollback, so the deploy and its
/// version check get the application restart's (5 minutes) and the health checks the
/// verification's (10 minutes); 15 minutes in all.
pub fn rollback_budgets() -> Budgets {
    let d = Budgets::default();
    Budgets {
        code_rollback: d.app_restart,
        app_restart: d.verification,
        total: d.app_restart + d.verification,
        ..d
    }
}
