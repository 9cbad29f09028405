//! The scenario: the steps a plan goes through, in order, each carrying its inputs from the
//! plan. Each phase's name and budget are [`PhaseId`]'s, in [`crate::report::vocab`].

use crate::pitr::PitrPlan;
use crate::plan::{
    AppPlan, NegativeControls, Plan, Previous, RepoPick, RestoreMode, RestorePlan, RollbackPlan,
    Source,
};
use crate::scope::{FullPlan, RpoPlan};

/// The phase names live in the report's vocabulary, which knows nothing of the drill.
pub use crate::report::vocab::PhaseId;

/// One step of a drill's scenario: a phase, carrying what the plan gives that phase alone, so
/// a step that runs has its inputs by construction.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// See [`PhaseId::Provision`].
    Provision,
    /// See [`PhaseId::PickBackup`].
    PickBackup(RepoPick),
    /// See [`PhaseId::Seed`].
    Seed {
        /// Number of users.
        rows: u64,
        /// The generator's seed.
        seed: u64,
    },
    /// See [`PhaseId::ConfigBackup`].
    ConfigBackup(FullPlan),
    /// See [`PhaseId::AppStart`].
    AppStart(AppPlan),
    /// See [`PhaseId::WriterStart`].
    WriterStart(RpoPlan),
    /// See [`PhaseId::Backup`].
    Backup,
    /// See [`PhaseId::Disaster`].
    Disaster,
    /// See [`PhaseId::StopApp`].
    StopApp,
    /// See [`PhaseId::ReplaceServer`].
    ReplaceServer,
    /// See [`PhaseId::Precheck`].
    Precheck,
    /// See [`PhaseId::Roles`].
    Roles,
    /// See [`PhaseId::Createdb`].
    Createdb,
    /// See [`PhaseId::PgRestore`].
    PgRestore,
    /// See [`PhaseId::Analyze`].
    Analyze,
    /// See [`PhaseId::ConfigRestore`].
    ConfigRestore(FullPlan),
    /// See [`PhaseId::CodeRollback`].
    CodeRollback(FullPlan),
    /// See [`PhaseId::TamperHook`].
    TamperHook(String),
    /// See [`PhaseId::Snapshot`].
    Snapshot,
    /// See [`PhaseId::Compare`].
    Compare,
    /// See [`PhaseId::Amcheck`].
    Amcheck,
    /// See [`PhaseId::Rpo`].
    Rpo(RpoPlan),
    /// See [`PhaseId::NegativeControls`].
    NegativeControls(NegativeControls),
    /// See [`PhaseId::StartApp`].
    StartApp,
    /// See [`PhaseId::AppHealthy`].
    AppHealthy,
    /// See [`PhaseId::ObserveApp`].
    ObserveApp(AppPlan),
    /// See [`PhaseId::AppVersion`].
    AppVersion,
    /// See [`PhaseId::Checklist`].
    Checklist,
    /// See [`PhaseId::ConnectTarget`].
    ConnectTarget,
    /// See [`PhaseId::SafetyDump`]: the file it writes.
    SafetyDump(std::path::PathBuf),
    /// See [`PhaseId::DropLive`].
    DropLive,
    /// See [`PhaseId::Swap`].
    Swap,
    /// See [`PhaseId::DropPrevious`].
    DropPrevious,
    /// [`PhaseId::ObserveApp`] of the team's own application after a real restore: the
    /// window.
    ObserveLive(std::time::Duration),
    /// [`PhaseId::ConfigRestore`] of `pgdrill config restore --confirm`: the checked files
    /// put into the application's live directory, the replaced ones kept.
    ConfigReplace,
    /// [`PhaseId::CodeRollback`] of `pgdrill rollback`: the confirmed release checked out and
    /// deployed on the team's own deployment.
    DeployRelease(Box<RollbackPlan>),
    /// [`PhaseId::Precheck`] of a point-in-time recovery: `pgbackrest info` and `verify`.
    PitrPrecheck(PitrPlan),
    /// See [`PhaseId::RecoveryPoint`].
    RecoveryPoint(PitrPlan),
    /// See [`PhaseId::PitrRestore`].
    PitrRestore(PitrPlan),
    /// See [`PhaseId::RecoveryReplay`].
    RecoveryReplay(PitrPlan),
}

impl Step {
    /// The phase this step records.
    pub fn id(&self) -> PhaseId {
        use PhaseId as P;
        match self {
            Step::Provision => P::Provision,
            Step::PickBackup(_) => P::PickBackup,
            Step::Seed { .. } => P::Seed,
            Step::ConfigBackup(_) => P::ConfigBackup,
            Step::AppStart(_) => P::AppStart,
            Step::WriterStart(_) => P::WriterStart,
            Step::Backup => P::Backup,
            Step::Disaster => P::Disaster,
            Step::StopApp => P::StopApp,
            Step::ReplaceServer => P::ReplaceServer,
            Step::Precheck => P::Precheck,
            Step::Roles => P::Roles,
            Step::Createdb => P::Createdb,
            Step::PgRestore => P::PgRestore,
            Step::Analyze => P::Analyze,
            Step::ConfigRestore(_) => P::ConfigRestore,
            Step::CodeRollback(_) => P::CodeRollback,
            Step::TamperHook(_) => P::TamperHook,
            Step::Snapshot => P::Snapshot,
            Step::Compare => P::Compare,
            Step::Amcheck => P::Amcheck,
            Step::Rpo(_) => P::Rpo,
            Step::NegativeControls(_) => P::NegativeControls,
            Step::StartApp => P::StartApp,
            Step::AppHealthy => P::AppHealthy,
            Step::ObserveApp(_) => P::ObserveApp,
            Step::AppVersion => P::AppVersion,
            Step::Checklist => P::Checklist,
            Step::ConnectTarget => P::ConnectTarget,
            Step::SafetyDump(_) => P::SafetyDump,
            Step::DropLive => P::DropLive,
            Step::Swap => P::Swap,
            Step::DropPrevious => P::DropPrevious,
            Step::ObserveLive(_) => P::ObserveApp,
            Step::ConfigReplace => P::ConfigRestore,
            Step::DeployRelease(_) => P::CodeRollback,
            Step::PitrPrecheck(_) => P::Precheck,
            Step::RecoveryPoint(_) => P::RecoveryPoint,
            Step::PitrRestore(_) => P::PitrRestore,
            Step::RecoveryReplay(_) => P::RecoveryReplay,
        }
    }
}

/// The scenario of `plan`: its steps in the order they run. The one place the order and the
/// conditions are written: the drill executes this list, and the report's phases, the
/// timeline and the budgets are read from it.
pub(super) fn scenario(plan: &Plan) -> Vec<Step> {
    if let Some(r) = &plan.restore {
        return restore_scenario(plan, r);
    }
    if plan.config_restore.is_some() {
        return config_restore_scenario();
    }
    if let Some(r) = &plan.rollback {
        return rollback_scenario(r);
    }
    if let Source::Pitr(p) = &plan.source {
        return pitr_scenario(plan, p);
    }
    let full = plan.full().cloned();
    let writer = plan.scope.rpo;
    let mut v = vec![Step::Provision];
    let before_backup = |v: &mut Vec<Step>| {
        if let Some(rpo) = writer {
            v.push(Step::WriterStart(rpo));
        }
        v.extend([Step::Backup, Step::Disaster]);
    };
    match plan.source {
        Source::Generated { rows, seed } => {
            v.push(Step::Seed { rows, seed });
            if let Some(f) = &full {
                v.push(Step::ConfigBackup(f.clone()));
            }
            if let Some(app) = &plan.app {
                v.push(Step::AppStart(app.clone()));
            }
            before_backup(&mut v);
        }
        Source::Dsn(_) => {
            if let Some(f) = &full {
                v.push(Step::ConfigBackup(f.clone()));
            }
            before_backup(&mut v);
        }
        // A point-in-time recovery has its own scenario (above).
        Source::BackupFile(_) | Source::Pitr(_) => {}
    }
    if let Some(repo) = &plan.repo {
        v.push(Step::PickBackup(repo.clone()));
    }
    v.push(Step::StopApp);
    // A lost server is replaced inside the RTO clock: a real outage waits for it too.
    if plan.disaster == crate::plan::Disaster::ServerLoss
        && !matches!(plan.source, Source::BackupFile(_))
    {
        v.push(Step::ReplaceServer);
    }
    v.extend([
        Step::Precheck,
        Step::Roles,
        Step::Createdb,
        Step::PgRestore,
        Step::Analyze,
    ]);
    if let Some(f) = &full {
        v.extend([
            Step::ConfigRestore(f.clone()),
            Step::CodeRollback(f.clone()),
        ]);
    }
    if let Some(sql) = &plan.tamper_sql {
        v.push(Step::TamperHook(sql.clone()));
    }
    // The strategy verifies the data (step 5) before the application restarts (step 6):
    // once the app runs, it writes, and S1 would no longer be the restored state.
    v.extend([Step::Snapshot, Step::Compare, Step::Amcheck]);
    if let Some(rpo) = writer {
        v.push(Step::Rpo(rpo));
    }
    // After the real verification, whose verdict comes first, and before the application
    // restarts: its sessions would keep the restored database from being cloned.
    if plan.negative_controls != NegativeControls::None {
        v.push(Step::NegativeControls(plan.negative_controls));
    }
    v.extend([Step::StartApp, Step::AppHealthy]);
    if let Some(app) = &plan.app {
        v.push(Step::ObserveApp(app.clone()));
    }
    if full.is_some() {
        v.push(Step::AppVersion);
    }
    v.push(Step::Checklist);
    v
}

/// The strategy's restore on a server the user named (`pgdrill restore`): nothing is
/// changed before the backup passed its precheck, and the live database is replaced only by
/// a verified one (side restore), or after a safety dump (in place).
fn restore_scenario(plan: &Plan, r: &RestorePlan) -> Vec<Step> {
    let mut v = vec![Step::ConnectTarget];
    if let Some(repo) = &plan.repo {
        v.push(Step::PickBackup(repo.clone()));
    }
    v.extend([Step::Precheck, Step::StopApp]);
    if let RestoreMode::InPlace { safety_dump } = &r.mode {
        if let Some(path) = safety_dump {
            v.push(Step::SafetyDump(path.clone()));
        }
        v.push(Step::DropLive);
    }
    v.extend([Step::Roles, Step::Createdb, Step::PgRestore, Step::Analyze]);
    if let Some(sql) = &plan.tamper_sql {
        v.push(Step::TamperHook(sql.clone()));
    }
    v.extend([Step::Snapshot, Step::Compare, Step::Amcheck]);
    if r.mode == RestoreMode::Side {
        v.push(Step::Swap);
    }
    v.extend([
        Step::StartApp,
        Step::AppHealthy,
        Step::ObserveLive(r.observe),
    ]);
    if r.mode == RestoreMode::Side && r.previous == Previous::Drop {
        v.push(Step::DropPrevious);
    }
    v.push(Step::Checklist);
    v
}

/// The strategy's configuration restore (`pgdrill config restore --confirm`): the backup
/// checked in memory, then stop the application, restore the files (checked again, whole,
/// before any is put in place), start it, and ask its health. No database server is provisioned or connected to.
fn config_restore_scenario() -> Vec<Step> {
    vec![
        // A backup that fails its checks never costs the application a restart.
        Step::Precheck,
        Step::StopApp,
        Step::ConfigReplace,
        Step::StartApp,
        Step::AppHealthy,
    ]
}

/// The strategy's "Application Code Rollback" on the team's own deployment (`pgdrill
/// rollback`): the confirmed tag checked out clean and deployed, the version it reports, then
/// its health. No server is provisioned and no database touched, so there is no checklist:
/// its items are about restored data.
fn rollback_scenario(r: &RollbackPlan) -> Vec<Step> {
    vec![
        Step::DeployRelease(Box::new(r.clone())),
        Step::AppVersion,
        Step::AppHealthy,
    ]
}

/// A point-in-time-recovery drill of a pgBackRest stanza: the backend opened (no server
/// yet), the stanza checked, its backup restored into a new data directory, WAL replayed to
/// the target, then the verification that applies to a physical restore. The exact
/// comparison stays in the list, to be recorded as skipped with its reason: there is no
/// pg_dump manifest (S0). No negative controls: theirs damage a dump or its manifest.
///
/// With a source to write to (`--pitr-source-dsn`), the ledger writer runs first, the drill
/// takes its own recovery point there (the snapshot S0 the comparison holds the restore
/// against, and the recovery target), and the ledger's `rpo` follows the comparison.
fn pitr_scenario(plan: &Plan, p: &PitrPlan) -> Vec<Step> {
    let rpo = p.source.as_ref().and(plan.scope.rpo);
    let mut v = vec![Step::Provision];
    if let Some(rpo) = rpo {
        v.extend([Step::WriterStart(rpo), Step::RecoveryPoint(p.clone())]);
    }
    v.extend([
        Step::PitrPrecheck(p.clone()),
        Step::PitrRestore(p.clone()),
        Step::RecoveryReplay(p.clone()),
    ]);
    if let Some(sql) = &plan.tamper_sql {
        v.push(Step::TamperHook(sql.clone()));
    }
    v.extend([Step::Snapshot, Step::Compare]);
    if let Some(rpo) = rpo {
        v.push(Step::Rpo(rpo));
    }
    v.extend([Step::Amcheck, Step::StartApp, Step::AppHealthy]);
    if let Some(app) = &plan.app {
        v.push(Step::ObserveApp(app.clone()));
    }
    v.push(Step::Checklist);
    v
}

/// The phases `plan` goes through, in the order they run: its scenario's.
pub fn phases(plan: &Plan) -> Vec<PhaseId> {
    scenario(plan).iter().map(Step::id).collect()
}
