//! A drill: the scenario's phases run in order, each a module with typed inputs and outputs,
//! timed by the kernel, told to the reporters; whatever the drill started is cleaned up on
//! every path, and the report is assembled from what the phases returned.
//!
//! Adding a phase: a `PhaseId`, a `scenario::Step` and its place in `scenario::scenario`
//! (the one list the drill runs and the report reads), a module here whose function takes
//! `&mut Ctx` and typed inputs and returns its typed output, and one arm in `run_step`.

use crate::app::AppProcess;
use crate::env::{Backend, Target};
use crate::error::EnvError;
use crate::plan::{BudgetName, Plan, Source};
use crate::report::{ChecklistItem, Report};

pub mod builder;
mod events;
mod kernel;
pub mod preview;
mod scenario;

mod assemble;
mod classify;
mod phases;

use phases::{
    app, backup, checklist, code, config, controls, disaster, live, pitr, provision, restore, rpo,
    seed, verify,
};

pub use assemble::evaluate_budgets;
pub use events::{Console, Event, NdjsonFile, Reporter, EVENTS_FILE};
pub use kernel::{Cancel, SkipReason, StepFail, StepResult};
pub use scenario::{phases, PhaseId};

use scenario::{scenario, Step};

use kernel::Recorder;

/// The database name the generated source uses (and the restore recreates).
pub const GENERATED_DB: &str = "pgdrill";

/// The phases a plan goes through, in order, with their budgets.
pub fn planned_phases(plan: &Plan) -> Vec<(&'static str, Option<BudgetName>)> {
    phases(plan)
        .into_iter()
        .map(|p| (p.name(), p.budget()))
        .collect()
}

/// What every phase works with once the servers exist: the plan, the recorder, the notes,
/// the application's secrets, and what the drill owns.
struct Ctx {
    plan: Plan,
    rec: Recorder,
    notes: Vec<String>,
    /// The configuration secrets the drill hands the sample app.
    secrets: crate::app::AppSecrets,
    owned: Owned,
}

impl Ctx {
    /// The drill's private directory, made on first use with the owner marker that lets
    /// `pgdrill clean` find it after a `kill -9`; it holds secrets, so it is the owner's only.
    fn work_dir(&mut self) -> Result<std::path::PathBuf, EnvError> {
        if let Some(w) = &self.owned.work {
            return Ok(w.path().to_path_buf());
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgdrill-{}-work-", self.plan.drill_id))
            .tempdir()
            .map_err(|e| EnvError::io("cannot create the drill's private directory", e))?;
        crate::env::leftovers::mark(dir.path(), &self.plan.drill_id)?;
        let path = dir.path().to_path_buf();
        self.owned.work = Some(dir);
        Ok(path)
    }

    /// Database `db` of the source: a live DSN's session read-only (the server itself
    /// refuses any write from it, whatever pgdrill does), or the drill's own server.
    fn source_endpoint(&self, db: &str) -> Option<crate::env::Endpoint> {
        match (&self.plan.source, &self.owned.source) {
            (Source::Dsn(e), _) => {
                let mut e = e.clone();
                e.options = Some("-c default_transaction_read_only=on".into());
                Some(e)
            }
            // Named for writing: the drill's ledger and recovery point go there.
            (Source::Pitr(p), _) => p.source.as_ref().map(|s| s.endpoint.clone()),
            (_, Some(t)) => Some(t.endpoint().with_db(db)),
            _ => None,
        }
    }
}

/// What the drill started and must stop or destroy on every path (pass, fail, signal): the
/// only state that outlives a phase, because cleanup owns it.
struct Owned {
    /// Where servers come from; opened by `provision` (a real restore has none).
    backend: Option<Backend>,
    /// The drill's own source server (generated data).
    source: Option<Target>,
    /// The server the restore goes into.
    target: Option<Target>,
    /// The running application.
    app: Option<AppProcess>,
    /// An app container stopped before the restore, waiting for its `docker start`.
    stopped_app: Option<AppProcess>,
    /// The ledger writer measuring the RPO, until the disaster cuts it off.
    writer: Option<crate::rpo::Writer>,
    /// The drill's private directory (configuration files, keys, releases, the deploy dir).
    work: Option<tempfile::TempDir>,
    /// A real restore: what it made and stopped on the named server, settled by `cleanup`.
    live: Option<live::Live>,
    /// A configuration restore: what it changed and stopped, settled by `cleanup`.
    config: Option<config::LiveConfig>,
}

impl Owned {
    /// The server the restore goes into (or the source, before a disaster or after drop-db).
    fn restore_target(&self) -> Option<&Target> {
        self.target.as_ref().or(self.source.as_ref())
    }

    /// The servers the drill owns, to ask about when a step fails.
    fn watches(&self) -> Vec<crate::env::Watch> {
        let source = self.source.as_ref().and_then(|t| t.watch("source server"));
        let target = self.target.as_ref().and_then(|t| t.watch("target server"));
        target.into_iter().chain(source).collect()
    }
}

/// What the phases hand one another: each slot is filled by the phase that produces it and
/// read by the phases after it (which the scenario's order guarantees).
struct Flow {
    /// The compressed backup schedule and the disaster's moment.
    clock: crate::rpo::Clock,
    /// The application's image when it runs as a container (docker backend).
    app_image: Option<String>,
    /// The configuration and release the application runs with (full scope).
    app_files: Option<app::AppFiles>,
    /// The configuration backed up before the disaster (full scope).
    config_set: Option<config::ConfigSet>,
    /// Every backup the schedule took.
    backups: Option<backup::Backups>,
    /// What the disaster did.
    happened: Option<disaster::Happened>,
    /// The database the restore creates and fills.
    restored: Option<restore::Restored>,
    /// The directory the configuration was restored into (full scope).
    restored_config: Option<std::path::PathBuf>,
    /// The application's restart after the restore, as far as it got.
    restart: app::Restart,
    /// A point-in-time recovery's stanza and backup, from its precheck.
    pitr: Option<pitr::Prechecked>,
    /// A point-in-time recovery's own recovery point on its source, when it took one.
    point: Option<pitr::Pointed>,
}

/// What the phases returned, kept for the report whether or not a later phase failed.
#[derive(Default)]
struct Evidence {
    database: String,
    backend_kind: Option<crate::env::BackendKind>,
    generated: Option<serde_json::Value>,
    backup: Option<backup::BackupSet>,
    disaster: String,
    precheck: Option<crate::restore::Precheck>,
    verified: verify::Verified,
    rpo: Option<crate::rpo::RpoReport>,
    config: Option<crate::report::full::ConfigRestored>,
    rollback: Option<crate::report::full::Rollback>,
    /// `git --version`, when the code was rolled back with it.
    git: Option<String>,
    checklist: Vec<ChecklistItem>,
    /// The negative controls, when they ran.
    detection: Option<crate::report::Detection>,
    /// The moment the disaster struck, when one did.
    disaster_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The drill's own backups before the restored one (`--backups N`), oldest first.
    earlier_backups: Vec<(std::path::PathBuf, Option<String>)>,
    /// A real restore's facts.
    restore: Option<crate::report::RestoreInfo>,
    /// A configuration restore's facts.
    config_restore: Option<crate::report::ConfigRestoreInfo>,
    /// The restore target's settings, read after the restore.
    server_settings: Option<crate::report::ServerSettingsInfo>,
    /// A point-in-time recovery's facts (the report's `pitr` section).
    pitr: Option<crate::pitr::PitrReport>,
}

/// Runs a whole drill, reporting to the console and to `events.ndjson` in `--out`, and
/// returns its report; an `--out` that cannot be written is refused before anything starts.
pub async fn run(mut plan: Plan, cancel: Cancel) -> Result<Report, EnvError> {
    let events = NdjsonFile::create(&plan.out_dir)?;
    plan.notes.extend(sweep_leftovers());
    Ok(run_with(
        plan,
        cancel,
        vec![Box::new(Console::new()), Box::new(events)],
    )
    .await)
}

/// Removes the directories of drills killed before they could (see `env::leftovers`) and
/// says so in the report; a live drill's are never touched.
fn sweep_leftovers() -> Vec<String> {
    let found = crate::env::leftovers::find(&std::env::temp_dir());
    let (removed, failed) = crate::env::leftovers::remove(found);
    removed
        .iter()
        .map(|l| format!("removed the leftover of a killed drill: {l}"))
        .chain(failed.iter().map(|e| e.to_string()))
        .collect()
}

/// Runs a whole drill with these reporters; never leaves a server behind unless `--keep`.
pub async fn run_with(plan: Plan, cancel: Cancel, reporters: Vec<Box<dyn Reporter>>) -> Report {
    let started_at = chrono::Utc::now();
    let mut rec = Recorder::new(cancel, reporters);
    rec.emit(Event::DrillStarted {
        drill_id: plan.drill_id.clone(),
    });
    let database = match &plan.source {
        Source::Generated { .. } => GENERATED_DB.to_string(),
        Source::Dsn(e) => e.dbname.clone(),
        Source::BackupFile(_) | Source::Pitr(_) => String::new(),
    };
    let mut ev = Evidence {
        database,
        ..Evidence::default()
    };
    let mut notes = plan.notes.clone();
    let steps = scenario(&plan);
    // The report lists the phases of the scenario that runs, from the same list.
    let planned: Vec<PhaseId> = steps.iter().map(Step::id).collect();
    let mut steps = steps.into_iter();
    // The first step opens what every other runs on, so it runs before the context exists.
    let mut live = None;
    let mut live_config = None;
    let provisioned = if let Some(c) = &plan.config_restore {
        // A configuration restore works on files and the team's application: no server.
        live_config = Some(config::LiveConfig::new(c));
        Some(provision::Provisioned::nothing())
    } else if plan.rollback.is_some() {
        // A code rollback works on the team's own deployment: no server, no backend, nothing
        // to open before its first step, which is an ordinary one.
        Some(provision::Provisioned::nothing())
    } else {
        match (steps.next(), &plan.restore) {
            (Some(Step::Provision), _) => provision::run(&plan, &mut rec, &mut notes).await,
            (Some(Step::ConnectTarget), Some(r)) => {
                live::connect(r, &mut rec).await.map(|(p, facts)| {
                    live = Some(live::Live::new(r, facts));
                    p
                })
            }
            _ => None,
        }
    };
    let Some(p) = provisioned else {
        ev.restore = plan.restore.as_ref().map(|r| live::info_of(r, None));
        return assemble::report(&plan, &planned, rec, notes, ev, started_at);
    };
    ev.backend_kind = p.backend.as_ref().map(Backend::kind);
    // Generated data starts on the drill's own source; any other source restores into the
    // server provisioned first.
    let (source, target) = match plan.source {
        Source::Generated { .. } => (p.server, None),
        _ => (None, p.server),
    };
    let mut flow = Flow {
        clock: plan.scope.cadence.clock(plan.scope.disaster_seed),
        app_image: p.app_image,
        app_files: None,
        config_set: None,
        backups: None,
        happened: None,
        restored: None,
        restored_config: None,
        restart: app::Restart::NotYet,
        pitr: None,
        point: None,
    };
    let mut ctx = Ctx {
        owned: Owned {
            backend: p.backend,
            source,
            target,
            app: None,
            stopped_app: None,
            writer: None,
            work: None,
            live,
            config: live_config,
        },
        plan,
        rec,
        notes,
        secrets: crate::app::AppSecrets::generate(),
    };
    let _ = execute(&mut ctx, steps, &mut flow, &mut ev).await;
    let (plan, rec, notes, restore, config_restore) = cleanup(ctx).await;
    ev.restore = restore;
    ev.config_restore = config_restore;
    assemble::report(&plan, &planned, rec, notes, ev, started_at)
}

/// Runs the scenario's steps after `provision`, in its order. A step the rest cannot go on
/// without returns `None` when it fails, and the rest is recorded as skipped; a failed
/// comparison, amcheck, RPO or application check goes on, so that the checklist still judges
/// everything there is to judge.
async fn execute(
    ctx: &mut Ctx,
    steps: impl Iterator<Item = Step>,
    flow: &mut Flow,
    ev: &mut Evidence,
) -> Option<()> {
    let config_only = ctx.plan.config_restore.is_some();
    if let (Source::BackupFile(path), None, false) =
        (ctx.plan.source.clone(), &ctx.plan.repo, config_only)
    {
        // The user's backup file is the backup: adopted as it is, with no phase of its own.
        adopt(ctx, ev, path);
    }
    let mut steps = steps.peekable();
    while let Some(step) = steps.next() {
        // Asked when the step fails; the disaster stops the source on purpose.
        let watched = match step {
            Step::Disaster => Vec::new(),
            _ => ctx.owned.watches(),
        };
        ctx.rec.watch(watched);
        let beside = matches!(step, Step::ReplaceServer)
            && matches!(steps.peek(), Some(Step::Precheck))
            && matches!(ctx.owned.backend, Some(Backend::Native(_)));
        if let (true, Some(set)) = (beside, ev.backup.as_ref()) {
            steps.next();
            ev.precheck = Some(disaster::replace_server_beside_precheck(ctx, set).await?);
            continue;
        }
        run_step(ctx, step, flow, ev).await?;
    }
    Some(())
}

/// An existing backup file (`--backup-file`, or the one `--repo` picked) becomes the backup
/// the drill restores.
fn adopt(ctx: &mut Ctx, ev: &mut Evidence, path: std::path::PathBuf) {
    let set = backup::adopt(ctx, path);
    if let Some(m) = &set.manifest {
        ev.database = m.database.clone();
    }
    ev.disaster = "restoring an existing backup file into a new empty server".into();
    ev.backup = Some(set);
}

/// One step: its typed inputs taken from what earlier steps produced, its outputs kept for
/// the steps after it and for the report.
async fn run_step(ctx: &mut Ctx, step: Step, flow: &mut Flow, ev: &mut Evidence) -> Option<()> {
    let id = step.id();
    match step {
        Step::Provision => {
            missing(ctx, id, "second run (provision runs once, first)").await;
            return None;
        }
        Step::PickBackup(repo) => {
            let dump = backup::pick(ctx, &repo).await?;
            adopt(ctx, ev, dump);
        }
        Step::Seed { rows, seed } => {
            let source = ctx.owned.source.as_ref().map(|t| t.endpoint().clone());
            let Some(source) = source else {
                return missing(ctx, id, "source server").await;
            };
            ev.generated = Some(seed::run(ctx, &source, &ev.database, rows, seed).await?);
        }
        Step::ConfigBackup(full) => {
            let url = app::sample_database_url(ctx, &full, flow.app_image.is_some(), &ev.database);
            let set = config::backup(ctx, &full, url).await?;
            flow.app_files = Some(app::AppFiles {
                config_dir: set.live.clone(),
                deploy_dir: None,
            });
            flow.config_set = Some(set);
        }
        Step::AppStart(plan) => app::start_on_source(ctx, &plan, flow, &ev.database).await?,
        Step::WriterStart(rpo) => rpo::start(ctx, rpo, &ev.database).await?,
        Step::Backup => {
            let backups = backup::run(ctx, &ev.database, &flow.clock).await?;
            ev.backup = Some(backups.newest.clone());
            ev.earlier_backups = backups
                .earlier
                .iter()
                .map(|b| {
                    (
                        b.dump.clone(),
                        b.manifest.as_ref().map(|m| m.created_at.clone()),
                    )
                })
                .collect();
            flow.backups = Some(backups);
        }
        Step::Disaster => {
            let also = full_disaster(ctx, flow.config_set.as_ref());
            let first_backup = flow.backups.as_ref().map(|b| b.first_started);
            let happened =
                disaster::run(ctx, &ev.database, &mut flow.clock, first_backup, also).await?;
            ev.disaster = happened.detail.clone();
            ev.disaster_at = Some(happened.at);
            flow.happened = Some(happened);
        }
        Step::StopApp if ctx.plan.is_live() => live::stop_app(ctx).await?,
        Step::StopApp => app::stop(ctx).await?,
        Step::ReplaceServer => disaster::replace_server(ctx).await?,
        Step::Precheck if ctx.plan.config_restore.is_some() => config::precheck_live(ctx).await?,
        Step::Precheck => {
            let server = restore_server(ctx, id).await?;
            let Some(set) = ev.backup.as_ref() else {
                return missing(ctx, id, "backup").await;
            };
            ev.precheck = Some(restore::precheck(ctx, &server.tools, set).await?);
        }
        Step::Roles => {
            let server = restore_server(ctx, id).await?;
            let Some(set) = ev.backup.as_ref() else {
                return missing(ctx, id, "backup").await;
            };
            // A real restore fills a side database, or the live one once it was dropped.
            let db = match &ctx.plan.restore {
                Some(r) if r.mode == crate::plan::RestoreMode::Side => {
                    crate::live::side_name(&r.target.dbname)
                }
                Some(r) => r.target.dbname.clone(),
                None => ev.database.clone(),
            };
            flow.restored = Some(restore::roles(ctx, &server, set, &db).await?);
        }
        Step::Createdb => {
            let server = restore_server(ctx, id).await?;
            let Some(restored) = flow.restored.as_ref() else {
                return missing(ctx, id, "database").await;
            };
            let manifest = ev.backup.as_ref().and_then(|b| b.manifest.as_ref());
            let database = restored.database.clone();
            live::side_created(ctx, &database);
            restore::createdb(ctx, &server, manifest, &database).await?;
        }
        Step::PgRestore => {
            let server = restore_server(ctx, id).await?;
            let (Some(restored), Some(set)) = (flow.restored.as_ref(), ev.backup.as_ref()) else {
                return missing(ctx, id, "backup or database").await;
            };
            restore::pg_restore(ctx, &server, set, restored).await?;
        }
        Step::Analyze => {
            let server = restore_server(ctx, id).await?;
            let Some(restored) = flow.restored.as_ref() else {
                return missing(ctx, id, "database").await;
            };
            let analyzed = restore::analyze(ctx, &server, restored).await;
            // Read whether or not ANALYZE passed: the restore ran with them either way. Not
            // timed in a phase: a single query, not part of any recovery step.
            ev.server_settings = restore::server_settings(ctx, &server.admin).await;
            analyzed?;
            ev.database = restored.database.clone();
        }
        Step::ConfigRestore(full) => {
            let (Some(h), Some(set)) = (flow.happened.as_ref(), flow.config_set.as_ref()) else {
                return missing(ctx, id, "disaster or configuration backup").await;
            };
            let restored = config::restore(ctx, &full, set, h.at).await?;
            ev.config = Some(restored.report);
            flow.restored_config = Some(restored.dir);
        }
        Step::CodeRollback(full) => {
            let releases = flow.happened.as_ref().and_then(|h| h.releases.as_ref());
            let (Some(releases), Some(config_dir)) = (releases, flow.restored_config.clone())
            else {
                return missing(ctx, id, "releases or restored configuration").await;
            };
            ev.git = crate::code::git_version().await.ok();
            ev.rollback = Some(code::rollback(ctx, &full, releases).await?);
            flow.app_files = Some(app::AppFiles {
                config_dir,
                deploy_dir: Some(releases.deploy_dir.clone()),
            });
        }
        Step::TamperHook(sql) => {
            let db = restored_db(ctx, id, flow).await?;
            verify::tamper(ctx, &db.admin, sql).await?;
        }
        Step::Snapshot => {
            let db = restored_db(ctx, id, flow).await?;
            let (s1, version, size) = verify::snapshot(ctx, &db.admin).await?;
            ev.verified.database_size = Some(size);
            ev.verified.connected = Some(format!(
                "connected to {} as {}; SHOW server_version = {version}",
                db.admin.dbname, db.admin.user
            ));
            ev.verified.server_version = version;
            if let Some(p) = ev.pitr.as_mut() {
                p.tables = s1
                    .tables
                    .iter()
                    .map(|t| crate::pitr::TableRows {
                        name: t.name.clone(),
                        rows: t.rows,
                    })
                    .collect();
            }
            ev.verified.snapshot = Some(s1);
        }
        Step::Compare if matches!(ctx.plan.source, Source::Pitr(_)) => {
            let (Some(pt), Some(s1)) = (flow.point.as_ref(), ev.verified.snapshot.as_ref()) else {
                ctx.rec.skip(id, SkipReason::NoManifest);
                return Some(());
            };
            let basis = format!(
                "snapshot S0 taken on the source by transaction {} under SHARE locks, the recovery target: the restore must hold exactly what it saw",
                pt.point.xid
            );
            ev.verified.integrity = verify::compare_to(ctx, basis, &pt.point.snapshot, s1).await;
        }
        Step::Compare => {
            let (Some(set), Some(s1)) = (ev.backup.as_ref(), ev.verified.snapshot.as_ref()) else {
                return missing(ctx, id, "backup or snapshot S1").await;
            };
            let options = crate::snapshot::CompareOptions {
                no_tablespaces: flow.restored.as_ref().is_some_and(|r| r.no_tablespaces),
            };
            let integrity = verify::compare(ctx, set, s1, options).await;
            ev.verified.integrity = integrity;
        }
        Step::Amcheck => {
            let db = restored_db(ctx, id, flow).await?;
            verify::amcheck(ctx, &db.admin, &db.tools).await;
            ev.verified.tools = verify::tool_versions(&db.tools).await;
        }
        Step::Rpo(rpo) if flow.point.is_some() => {
            let db = restored_db(ctx, id, flow).await?;
            let Some(pt) = flow.point.as_ref() else {
                return Some(());
            };
            let wal = rpo::WalWorstCase {
                archive_timeout: pt.wal.archive_timeout,
                archiving: pt.wal.archiving,
            };
            ev.rpo = rpo::assess_point(ctx, rpo, &db.admin, pt.point.window, &pt.struck, wal).await;
        }
        Step::Rpo(rpo) => {
            let server = restore_server(ctx, id).await?;
            let struck = flow.happened.as_ref().and_then(|h| h.struck.as_ref());
            let (Some(backups), Some(struck)) = (flow.backups.as_ref(), struck) else {
                return missing(ctx, id, "backups or the ledger writer's record").await;
            };
            let db = server.admin.with_db(&ev.database);
            ev.rpo = rpo::assess(ctx, rpo, &db, backups, struck).await;
        }
        Step::NegativeControls(mode) => {
            let server = restore_server(ctx, id).await?;
            let (Some(set), Some(restored)) = (ev.backup.as_ref(), flow.restored.as_ref()) else {
                return missing(ctx, id, "backup or restored database").await;
            };
            let inputs = controls::Inputs {
                set,
                server: server.admin,
                database: restored.database.clone(),
                tools: server.tools,
                s1: ev.verified.snapshot.as_ref(),
                options: crate::snapshot::CompareOptions {
                    no_tablespaces: restored.no_tablespaces,
                },
                rollback: ev.rollback.as_ref(),
            };
            let detection = controls::run(ctx, mode, inputs).await;
            ev.detection = Some(detection);
        }
        Step::StartApp if ctx.plan.is_live() => live::start_app(ctx, flow).await,
        Step::AppHealthy if ctx.plan.is_live() => live::healthy(ctx, flow).await,
        Step::AppHealthy if ctx.plan.rollback.is_some() => code::release_healthy(ctx).await,
        Step::StartApp => {
            let server = restore_server(ctx, id).await?;
            app::restart(ctx, flow, &server, &ev.database).await;
        }
        Step::AppHealthy => app::healthy(ctx, flow).await,
        Step::ObserveApp(plan) => {
            let server = restore_server(ctx, id).await?;
            let db = server.admin.with_db(&ev.database);
            app::observe(ctx, flow, &plan, &db).await;
        }
        Step::AppVersion if ctx.plan.rollback.is_some() => {
            let (Some(r), Some(rollback)) = (ctx.plan.rollback.clone(), ev.rollback.as_mut())
            else {
                return missing(ctx, id, "rollback").await;
            };
            // A mismatch is the verdict, but the health checks still run: both are evidence.
            code::release_version(ctx, &r, rollback).await;
        }
        Step::AppVersion => {
            let releases = flow.happened.as_ref().and_then(|h| h.releases.as_ref());
            let (Some(releases), Some(rollback)) = (releases, ev.rollback.as_mut()) else {
                return missing(ctx, id, "releases or rollback").await;
            };
            if flow.restart.version_checkable() {
                code::check_version(ctx, rollback, &releases.deploy_dir).await;
            } else {
                ctx.rec.skip(id, SkipReason::AppDidNotStart);
            }
        }
        Step::ConnectTarget => {
            missing(ctx, id, "second run (connect_target runs once, first)").await;
            return None;
        }
        Step::SafetyDump(path) => live::safety_dump(ctx, path).await?,
        Step::DropLive => live::drop_live(ctx).await?,
        Step::Swap => {
            live::swap(ctx, flow).await?;
            if let Some(r) = &flow.restored {
                ev.database = r.database.clone();
            }
        }
        Step::DropPrevious => live::drop_previous(ctx).await?,
        Step::ObserveLive(window) => live::observe(ctx, flow, window).await,
        Step::ConfigReplace => config::replace_live(ctx).await?,
        Step::DeployRelease(r) => {
            ev.git = crate::code::git_version().await.ok();
            ev.rollback = Some(code::release_rollback(ctx, &r).await?);
        }
        Step::PitrPrecheck(p) => {
            let p = to_point(p, flow);
            let barman = p.tool == crate::pitr::PitrTool::Barman;
            ev.pitr = Some(crate::pitr::PitrReport {
                tool: p.tool,
                tool_version: None,
                stanza: (!barman).then(|| p.name.clone()),
                server: barman.then(|| p.name.clone()),
                target: p.target.describe(),
                backup: None,
                wal_min: None,
                wal_max: None,
                backups_in_stanza: 0,
                recovery: None,
                database: None,
                tables: Vec::new(),
                recovery_point: flow.point.as_ref().map(|pt| crate::pitr::PointReport {
                    source: p
                        .source
                        .as_ref()
                        .map(|s| s.endpoint.display())
                        .unwrap_or_default(),
                    xid: pt.point.xid,
                    lsn_after: pt.point.lsn_after,
                    segment: pt.point.segment.clone(),
                    tables_locked: pt.point.tables_locked,
                    locked_ms: pt.point.held_ms,
                    archived_ms: pt.wal.archiving.as_millis() as u64,
                }),
            });
            let pre = pitr::precheck(ctx, &p).await?;
            if let Some(r) = ev.pitr.as_mut() {
                r.tool_version = pre.version.clone();
                r.backup = Some(pre.backup.clone());
                r.wal_min = pre.info.wal_min.clone();
                r.wal_max = pre.info.wal_max.clone();
                r.backups_in_stanza = pre.info.backups.len();
            }
            if flow.point.is_none() {
                ev.disaster = format!(
                    "point-in-time recovery of {} into a new empty server",
                    p.tool.what(&p.name)
                );
            }
            flow.pitr = Some(pre);
        }
        Step::RecoveryPoint(p) => {
            let pointed = pitr::point(ctx, &p).await?;
            ev.disaster = format!(
                "the source lost right after the drill's recovery point (transaction {}); point-in-time recovery of {} into a new empty server",
                pointed.point.xid,
                p.tool.what(&p.name)
            );
            ev.disaster_at = Some(pointed.struck.at);
            flow.point = Some(pointed);
        }
        Step::PitrRestore(p) => {
            let Some(pre) = flow.pitr.as_ref() else {
                return missing(ctx, id, "backup tool's precheck").await;
            };
            let p = to_point(p, flow);
            pitr::restore(ctx, &p, pre).await?;
        }
        Step::RecoveryReplay(p) => {
            let p = to_point(p, flow);
            let wal = flow.pitr.as_ref().and_then(|pre| pre.wal.as_ref());
            let path = flow.pitr.as_ref().and_then(|pre| pre.path.as_ref());
            let want = p.source.as_ref().map(|s| s.endpoint.dbname.clone());
            let (replayed, db) = pitr::replay(ctx, &p, wal, path, want.as_deref()).await?;
            if let Some(r) = ev.pitr.as_mut() {
                r.recovery = Some(replayed);
                r.database = Some(db.clone());
            }
            ev.database = db.clone();
            flow.restored = Some(restore::Restored {
                database: db,
                no_tablespaces: false,
            });
        }
        Step::Checklist => {
            ev.checklist = checklist::items(ctx, &ev.verified, flow.restart.take_outcome());
            checklist::run(ctx, &ev.checklist).await?;
        }
    }
    Some(())
}

/// A PITR plan with the drill's own recovery point, once taken, as its target.
fn to_point(mut p: crate::pitr::PitrPlan, flow: &Flow) -> crate::pitr::PitrPlan {
    if let Some(pt) = &flow.point {
        p.target = crate::pitr::RecoveryTarget::Xid(pt.point.xid);
    }
    p
}

/// Fails phase `id` because an input an earlier phase should have produced is missing: a
/// fault in the scenario, reported with the drill's report rather than a panic.
async fn missing(ctx: &mut Ctx, id: PhaseId, what: &str) -> Option<()> {
    let fail = StepFail::internal(format!("phase {id} has no {what} to work on"));
    ctx.rec.step::<(), _>(id, async move { Err(fail) }).await
}

/// What the phases after the disaster need of the server the restore goes into.
pub(super) struct RestoreServer {
    /// Its superuser endpoint.
    pub admin: crate::env::Endpoint,
    /// The endpoint the application reaches it at (from the host, or from a container).
    pub app: crate::env::Endpoint,
    /// The same for an application container on the drill's network.
    pub app_in_container: crate::env::Endpoint,
    /// Its client programs.
    pub tools: crate::env::PgTools,
}

/// The server phase `id` restores into, or the phase's failure saying it is missing.
async fn restore_server(ctx: &mut Ctx, id: PhaseId) -> Option<RestoreServer> {
    let server = ctx.owned.restore_target().map(|t| RestoreServer {
        admin: t.endpoint().clone(),
        app: t.app_endpoint(false),
        app_in_container: t.app_endpoint(true),
        tools: t.tools(),
    });
    match server {
        Some(s) => Some(s),
        None => {
            missing(ctx, id, "server to restore into").await;
            None
        }
    }
}

/// The restored database on the restore's server (its endpoint in `admin`).
async fn restored_db(ctx: &mut Ctx, id: PhaseId, flow: &Flow) -> Option<RestoreServer> {
    let mut server = restore_server(ctx, id).await?;
    let Some(restored) = flow.restored.as_ref() else {
        missing(ctx, id, "restored database").await;
        return None;
    };
    server.admin = server.admin.with_db(&restored.database);
    Some(server)
}

/// The rest of a full drill's disaster: the configuration files gone and, for the sample
/// app, a bad release deployed.
fn full_disaster(ctx: &mut Ctx, config_set: Option<&config::ConfigSet>) -> Option<disaster::Also> {
    let full = ctx.plan.full()?.clone();
    let live = config_set?.live.clone();
    let files = config_set?.files.clone();
    let work = ctx.work_dir();
    let deployed_by = format!("pgdrill drill {}", ctx.plan.drill_id);
    Some(Box::pin(async move {
        let work = work?;
        let lost = config::lose(&live, &files)?;
        let (releases, detail) = code::bad_release(&full.code, &work, &deployed_by).await?;
        Ok((format!("{lost}; {detail}"), Some(releases)))
    }))
}

/// Stops the application and destroys the servers (or keeps them with `--keep`); gives back
/// what the report is assembled from.
async fn cleanup(
    ctx: Ctx,
) -> (
    Plan,
    Recorder,
    Vec<String>,
    Option<crate::report::RestoreInfo>,
    Option<crate::report::ConfigRestoreInfo>,
) {
    let Ctx {
        plan,
        rec,
        mut notes,
        owned,
        ..
    } = ctx;
    let Owned {
        backend,
        source,
        target,
        app,
        stopped_app,
        writer,
        work,
        live,
        config,
    } = owned;
    // A real restore's side database and stopped application first: the rest is pgdrill's own.
    let restore = match live {
        Some(mut l) => {
            live::settle(&mut l, &mut notes).await;
            Some(l.into_info())
        }
        None => None,
    };
    let config_restore = match config {
        Some(mut c) => {
            config::settle(&mut c, &mut notes).await;
            Some(c.info)
        }
        None => None,
    };
    // A writer the disaster never cut off stops with the drill.
    drop(writer);
    let keep = plan.keep && !rec.interrupted();
    for mut app in [app, stopped_app].into_iter().flatten() {
        if let Err(e) = app.stop(std::time::Duration::from_secs(10)).await {
            notes.push(format!("cleanup: stopping the application: {e}"));
        }
        if keep {
            let note = format!("--keep: the application was stopped ({})", app.describe());
            match app.keep_container() {
                Some(how) => {
                    rec.println(&how);
                    notes.push(format!("{note}; {how}"));
                }
                None => notes.push(format!("{note}; start it again against the kept server")),
            }
        }
    }
    for t in [source, target].into_iter().flatten() {
        if keep {
            let how = t.keep();
            rec.println(&how);
            notes.push("--keep: servers were left running".into());
        } else if let Err(e) = t.destroy().await {
            notes.push(format!("cleanup: {e}"));
        }
    }
    // After its servers: the docker backend's drop removes the drill's network.
    drop(backend);
    if let Some(work) = work {
        if keep {
            let path = work.keep();
            crate::env::leftovers::unmark(&path);
            notes.push(format!(
                "--keep: the drill's private directory (configuration, releases, deploy directory) was kept: {}",
                path.display()
            ));
        }
    }
    (plan, rec, notes, restore, config_restore)
}
