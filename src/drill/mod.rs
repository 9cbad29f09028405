//! A drill: the scenario's phases run in order, each a module with typed inputs and outputs,
//! timed by the kernel, told to the reporters; whatever the drill started is cleaned up on
//! every path, and the report is assembled from what the phases returned.
//!
//! Adding a phase: a `PhaseId` and its place in [`scenario::phases`], a module here whose
//! function takes `&mut Ctx` and typed inputs and returns its typed output, and one line in
//! [`execute`].

use crate::app::AppProcess;
use crate::env::{Backend, Target};
use crate::error::EnvError;
use crate::plan::{BudgetName, Plan, Source};
use crate::report::{ChecklistItem, Report};

pub mod builder;
mod events;
mod kernel;
mod scenario;

mod app;
mod assemble;
mod backup;
mod checklist;
mod classify;
mod code;
mod config;
mod disaster;
mod provision;
mod restore;
mod rpo;
mod seed;
mod verify;

pub use assemble::evaluate_budgets;
pub use events::{Console, Event, NdjsonFile, Reporter, EVENTS_FILE};
pub use kernel::{Cancel, SkipReason, StepFail, StepResult};
pub use scenario::{phases, PhaseId};

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

/// What every phase works with: the plan, the recorder, what the drill owns, the notes.
struct Ctx {
    plan: Plan,
    rec: Recorder,
    owned: Owned,
    notes: Vec<String>,
    /// The configuration secrets the drill hands the sample app.
    secrets: crate::app::AppSecrets,
    /// The application's image when it runs as a container (docker backend).
    app_image: Option<String>,
    /// The configuration and release the application runs with (full scope).
    app_files: Option<app::AppFiles>,
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
            (_, Some(t)) => Some(t.endpoint().with_db(db)),
            _ => None,
        }
    }

    fn backend(&self) -> &Backend {
        self.owned
            .backend
            .as_ref()
            .expect("backend opened in provision")
    }

    /// The server the restore goes into (or the source, before a disaster).
    fn target(&self) -> &Target {
        self.owned
            .target
            .as_ref()
            .or(self.owned.source.as_ref())
            .expect("a target exists")
    }
}

/// What the drill started and must stop or destroy on every path (pass, fail, signal).
#[derive(Default)]
struct Owned {
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
    let rec = Recorder::new(cancel, reporters);
    rec.emit(Event::DrillStarted {
        drill_id: plan.drill_id.clone(),
    });
    let database = match &plan.source {
        Source::Generated { .. } => GENERATED_DB.to_string(),
        Source::Dsn(e) => e.dbname.clone(),
        Source::BackupFile(_) => String::new(),
    };
    let mut ctx = Ctx {
        notes: plan.notes.clone(),
        plan,
        rec,
        owned: Owned::default(),
        secrets: crate::app::AppSecrets::generate(),
        app_image: None,
        app_files: None,
    };
    let mut ev = Evidence {
        database,
        ..Evidence::default()
    };
    let _ = execute(&mut ctx, &mut ev).await;
    cleanup(&mut ctx).await;
    assemble::report(ctx, ev, started_at)
}

/// The scenario, phase group by phase group; the order is `scenario::phases`' (debug builds
/// assert it). A phase the rest cannot go on without returns `None` when it fails, and the
/// rest is recorded as skipped; a failed comparison, amcheck, RPO or version check goes on,
/// so that the checklist still judges everything there is to judge.
async fn execute(ctx: &mut Ctx, ev: &mut Evidence) -> Option<()> {
    ev.backend_kind = Some(provision::run(ctx).await?);
    let mut clock = ctx.plan.scope.cadence.clock(ctx.plan.scope.disaster_seed);
    let (backups, happened) = match ctx.plan.source.clone() {
        Source::BackupFile(path) => {
            let set = backup::adopt(ctx, path);
            if let Some(m) = &set.manifest {
                ev.database = m.database.clone();
            }
            ev.disaster = "restoring an existing backup file into a new empty server".into();
            ev.backup = Some(set);
            (None, None)
        }
        source => {
            if let Source::Generated { rows, seed } = source {
                ev.generated = Some(seed::run(ctx, &ev.database, rows, seed).await?);
            }
            let config_set = match ctx.plan.full() {
                Some(_) => {
                    let url = app::sample_database_url(ctx, &ev.database);
                    let set = config::backup(ctx, url).await?;
                    ctx.app_files = Some(app::AppFiles {
                        config_dir: set.live.clone(),
                        deploy_dir: None,
                    });
                    Some(set)
                }
                None => None,
            };
            if matches!(ctx.plan.source, Source::Generated { .. }) && ctx.plan.app.is_some() {
                app::start_on_source(ctx, &ev.database).await?;
            }
            if ctx.plan.scope.rpo.is_some() {
                rpo::start(ctx, &ev.database).await?;
            }
            let backups = backup::run(ctx, &ev.database, &clock).await?;
            ev.backup = Some(backups.newest().clone());
            let also = full_disaster(ctx, config_set.as_ref());
            let happened = disaster::run(
                ctx,
                &ev.database,
                &mut clock,
                Some(backups.first_started),
                also,
            )
            .await?;
            ev.disaster = happened.detail.clone();
            (Some(backups), Some((happened, config_set)))
        }
    };
    let set = ev.backup.as_ref()?;
    app::stop(ctx).await?;
    ev.precheck = Some(restore::precheck(ctx, set).await?);
    let restored = restore::run(ctx, set, &ev.database).await?;
    ev.database = restored.database.clone();
    let mut releases = None;
    if let Some((h, Some(config_set))) = &happened {
        let restored = config::restore(ctx, config_set, h.at).await?;
        ev.config = Some(restored.report);
        let r = h.releases.clone()?;
        ev.git = crate::code::git_version().await.ok();
        ev.rollback = Some(code::rollback(ctx, &r).await?);
        ctx.app_files = Some(app::AppFiles {
            config_dir: restored.dir,
            deploy_dir: Some(r.deploy_dir.clone()),
        });
        releases = Some(r);
    }
    verify::run(ctx, set, &restored, &mut ev.verified).await?;
    if let (Some(backups), Some((h, _))) = (&backups, &happened) {
        if let Some(struck) = &h.struck {
            ev.rpo = rpo::assess(ctx, &ev.database, backups, struck).await;
        }
    }
    let outcome = app::restart(ctx, &ev.database).await;
    if let (Some(r), Some(rollback)) = (&releases, ev.rollback.as_mut()) {
        match outcome {
            app::AppOutcome::DidNotStart | app::AppOutcome::NotObserved => ctx
                .rec
                .skip(PhaseId::AppVersion, SkipReason::AppDidNotStart),
            _ => {
                code::check_version(ctx, rollback, &r.deploy_dir).await;
            }
        }
    }
    ev.checklist = checklist::items(ctx, &ev.verified, outcome);
    checklist::run(ctx, &ev.checklist).await
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

/// Stops the application and destroys the servers (or keeps them with `--keep`).
async fn cleanup(ctx: &mut Ctx) {
    let keep = ctx.plan.keep && !ctx.rec.interrupted();
    for mut app in [ctx.owned.app.take(), ctx.owned.stopped_app.take()]
        .into_iter()
        .flatten()
    {
        if let Err(e) = app.stop(std::time::Duration::from_secs(10)).await {
            ctx.notes
                .push(format!("cleanup: stopping the application: {e}"));
        }
        if keep {
            let note = format!("--keep: the application was stopped ({})", app.describe());
            match app.keep_container() {
                Some(how) => {
                    ctx.rec.println(&how);
                    ctx.notes.push(format!("{note}; {how}"));
                }
                None => ctx
                    .notes
                    .push(format!("{note}; start it again against the kept server")),
            }
        }
    }
    for t in [ctx.owned.source.take(), ctx.owned.target.take()]
        .into_iter()
        .flatten()
    {
        if keep {
            let how = t.keep();
            ctx.rec.println(&how);
            ctx.notes.push("--keep: servers were left running".into());
        } else if let Err(e) = t.destroy().await {
            ctx.notes.push(format!("cleanup: {e}"));
        }
    }
    ctx.owned.backend = None;
    if let Some(work) = ctx.owned.work.take() {
        if keep {
            let path = work.keep();
            crate::env::leftovers::unmark(&path);
            ctx.notes.push(format!(
                "--keep: the drill's private directory (configuration, releases, deploy directory) was kept: {}",
                path.display()
            ));
        }
    }
}
