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
    secrets: app::AppSecrets,
    /// The application's image when it runs as a container (docker backend).
    app_image: Option<String>,
}

impl Ctx {
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
        secrets: app::AppSecrets::new(),
        app_image: None,
    };
    let mut ev = Evidence {
        database,
        ..Evidence::default()
    };
    let _ = execute(&mut ctx, &mut ev).await;
    cleanup(&mut ctx).await;
    assemble::report(ctx, ev, started_at)
}

/// The scenario, phase group by phase group; the order is `scenario::phases`' (a test holds
/// the two together). `None` as soon as a phase failed: the rest is recorded as skipped.
async fn execute(ctx: &mut Ctx, ev: &mut Evidence) -> Option<()> {
    ev.backend_kind = Some(provision::run(ctx).await?);
    let mut clock = ctx.plan.scope.cadence.clock(ctx.plan.scope.disaster_seed);
    let (backups, struck) = match ctx.plan.source.clone() {
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
                if ctx.plan.app.is_some() {
                    app::start_on_source(ctx, &ev.database).await?;
                }
            }
            if ctx.plan.scope.rpo.is_some() {
                rpo::start(ctx, &ev.database).await?;
            }
            let backups = backup::run(ctx, &ev.database, &clock).await?;
            ev.backup = Some(backups.newest().clone());
            let happened =
                disaster::run(ctx, &ev.database, &mut clock, Some(backups.first_started)).await?;
            ev.disaster = happened.detail;
            (Some(backups), happened.struck)
        }
    };
    let set = ev.backup.as_ref()?;
    app::stop(ctx).await?;
    ev.precheck = Some(restore::precheck(ctx, set).await?);
    ev.database = restore::run(ctx, set, &ev.database).await?;
    verify::run(ctx, set, &ev.database, &mut ev.verified).await?;
    if let (Some(backups), Some(struck)) = (&backups, &struck) {
        ev.rpo = rpo::assess(ctx, &ev.database, backups, struck).await;
    }
    let app_items = app::restart(ctx, &ev.database).await;
    ev.checklist = checklist::items(ctx, &ev.verified, app_items);
    checklist::run(ctx, &ev.checklist).await
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
}
