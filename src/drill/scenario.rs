//! The phases a plan goes through, in order: the one place a phase is named and given its
//! budget.

use crate::plan::{AppPlan, BudgetName, Plan, Source};
use crate::scope::{FullPlan, RpoPlan};

/// One phase of a drill: its name in report.json and the budget it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseId {
    /// A disposable server for the source (or the restore when there is no source).
    Provision,
    /// The generated data set.
    Seed,
    /// The application against the source, writing during the backup.
    AppStart,
    /// The application's configuration files backed up, encrypted (full scope).
    ConfigBackup,
    /// The ledger writer that measures the RPO, started.
    WriterStart,
    /// pg_dump, the globals and the manifest with S0.
    Backup,
    /// The loss being drilled.
    Disaster,
    /// The application stopped before the database is touched.
    StopApp,
    /// The backup file checked against its manifest and its TOC.
    Precheck,
    /// Roles from the globals file.
    Roles,
    /// The database recreated with the manifest's settings.
    Createdb,
    /// pg_restore itself.
    PgRestore,
    /// ANALYZE after the restore.
    Analyze,
    /// The configuration restored from its newest backup before the disaster, and checked.
    ConfigRestore,
    /// The code rolled back to the target release: checked out clean and deployed.
    CodeRollback,
    /// The `--tamper-sql` test hook.
    TamperHook,
    /// Snapshot S1 of the restored database.
    Snapshot,
    /// S1 against S0 (or its own consistency checks).
    Compare,
    /// pg_amcheck --heapallindexed.
    Amcheck,
    /// The restored ledger against the writer's acknowledged commits: the RPO achieved.
    Rpo,
    /// The application restarted against the restored server.
    StartApp,
    /// Its health endpoint answering within the app_restart budget.
    AppHealthy,
    /// The restarted application reports the rolled-back release and commit.
    AppVersion,
    /// The restarted application watched for the checklist.
    ObserveApp,
    /// The strategy's ten-item checklist.
    Checklist,
}

impl PhaseId {
    /// The phase's name, as in report.json.
    pub fn name(self) -> &'static str {
        use PhaseId::*;
        match self {
            Provision => "provision",
            Seed => "seed",
            AppStart => "app_start",
            ConfigBackup => "config_backup",
            WriterStart => "writer_start",
            Backup => "backup",
            Disaster => "disaster",
            StopApp => "stop_app",
            Precheck => "precheck",
            Roles => "roles",
            Createdb => "createdb",
            PgRestore => "pg_restore",
            Analyze => "analyze",
            ConfigRestore => "config_restore",
            CodeRollback => "code_rollback",
            TamperHook => "tamper_hook",
            Snapshot => "snapshot",
            Compare => "compare",
            Amcheck => "amcheck",
            Rpo => "rpo",
            StartApp => "start_app",
            AppHealthy => "app_healthy",
            AppVersion => "app_version",
            ObserveApp => "observe_app",
            Checklist => "checklist",
        }
    }

    /// The budget the phase's time counts against, if any.
    pub fn budget(self) -> Option<BudgetName> {
        use PhaseId::*;
        match self {
            Provision | Seed | AppStart | ConfigBackup | WriterStart | Backup | Disaster
            | TamperHook => None,
            StopApp | Precheck | Roles | Createdb | PgRestore | Analyze => {
                Some(BudgetName::DatabaseRestore)
            }
            ConfigRestore => Some(BudgetName::ConfigRestore),
            CodeRollback | AppVersion => Some(BudgetName::CodeRollback),
            StartApp | AppHealthy => Some(BudgetName::AppRestart),
            Snapshot | Compare | Amcheck | Rpo | ObserveApp | Checklist => {
                Some(BudgetName::Verification)
            }
        }
    }
}

impl std::fmt::Display for PhaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a drill's scenario: a phase, carrying what the plan gives that phase alone, so
/// a step that runs has its inputs by construction.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// See [`PhaseId::Provision`].
    Provision,
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
}

impl Step {
    /// The phase this step records.
    pub fn id(&self) -> PhaseId {
        use PhaseId as P;
        match self {
            Step::Provision => P::Provision,
            Step::Seed { .. } => P::Seed,
            Step::ConfigBackup(_) => P::ConfigBackup,
            Step::AppStart(_) => P::AppStart,
            Step::WriterStart(_) => P::WriterStart,
            Step::Backup => P::Backup,
            Step::Disaster => P::Disaster,
            Step::StopApp => P::StopApp,
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
            Step::StartApp => P::StartApp,
            Step::AppHealthy => P::AppHealthy,
            Step::ObserveApp(_) => P::ObserveApp,
            Step::AppVersion => P::AppVersion,
            Step::Checklist => P::Checklist,
        }
    }
}

/// The scenario of `plan`: its steps in the order they run. The one place the order and the
/// conditions are written: the drill executes this list, and the report's phases, the
/// timeline and the budgets are read from it.
pub(super) fn scenario(plan: &Plan) -> Vec<Step> {
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
        Source::BackupFile(_) => {}
    }
    v.extend([
        Step::StopApp,
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

/// The phases `plan` goes through, in the order they run: its scenario's.
pub fn phases(plan: &Plan) -> Vec<PhaseId> {
    scenario(plan).iter().map(Step::id).collect()
}
