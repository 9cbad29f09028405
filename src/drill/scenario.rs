//! The phases a plan goes through, in order: the one place a phase is named and given its
//! budget.

use crate::plan::{BudgetName, Plan, Source};

/// One phase of a drill: its name in report.json and the budget it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseId {
    /// A disposable server for the source (or the restore when there is no source).
    Provision,
    /// The generated data set.
    Seed,
    /// The application against the source, writing during the backup.
    AppStart,
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
    /// The `--tamper-sql` test hook.
    TamperHook,
    /// Snapshot S1 of the restored database.
    Snapshot,
    /// S1 against S0 (or its own consistency checks).
    Compare,
    /// pg_amcheck --heapallindexed.
    Amcheck,
    /// The application restarted against the restored server.
    StartApp,
    /// Its health endpoint answering within the app_restart budget.
    AppHealthy,
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
            Backup => "backup",
            Disaster => "disaster",
            StopApp => "stop_app",
            Precheck => "precheck",
            Roles => "roles",
            Createdb => "createdb",
            PgRestore => "pg_restore",
            Analyze => "analyze",
            TamperHook => "tamper_hook",
            Snapshot => "snapshot",
            Compare => "compare",
            Amcheck => "amcheck",
            StartApp => "start_app",
            AppHealthy => "app_healthy",
            ObserveApp => "observe_app",
            Checklist => "checklist",
        }
    }

    /// The budget the phase's time counts against, if any.
    pub fn budget(self) -> Option<BudgetName> {
        use PhaseId::*;
        match self {
            Provision | Seed | AppStart | Backup | Disaster | TamperHook => None,
            StopApp | Precheck | Roles | Createdb | PgRestore | Analyze => {
                Some(BudgetName::DatabaseRestore)
            }
            StartApp | AppHealthy => Some(BudgetName::AppRestart),
            Snapshot | Compare | Amcheck | ObserveApp | Checklist => Some(BudgetName::Verification),
        }
    }
}

impl std::fmt::Display for PhaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The phases `plan` goes through, in the order they run.
pub fn phases(plan: &Plan) -> Vec<PhaseId> {
    use PhaseId::*;
    let mut v = vec![Provision];
    match plan.source {
        Source::Generated { .. } => {
            v.push(Seed);
            if plan.app.is_some() {
                v.push(AppStart);
            }
            v.extend([Backup, Disaster]);
        }
        Source::Dsn(_) => v.extend([Backup, Disaster]),
        Source::BackupFile(_) => {}
    }
    v.extend([StopApp, Precheck, Roles, Createdb, PgRestore, Analyze]);
    if plan.tamper_sql.is_some() {
        v.push(TamperHook);
    }
    // The strategy verifies the data (step 5) before the application restarts (step 6):
    // once the app runs, it writes, and S1 would no longer be the restored state.
    v.extend([Snapshot, Compare, Amcheck, StartApp, AppHealthy]);
    if plan.app.is_some() {
        v.push(ObserveApp);
    }
    v.push(Checklist);
    v
}
