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

/// The phases `plan` goes through, in the order they run.
pub fn phases(plan: &Plan) -> Vec<PhaseId> {
    use PhaseId::*;
    let full = plan.full().is_some();
    let writer = plan.scope.rpo.is_some();
    let mut v = vec![Provision];
    let before_backup = |v: &mut Vec<PhaseId>| {
        if writer {
            v.push(WriterStart);
        }
        v.extend([Backup, Disaster]);
    };
    match plan.source {
        Source::Generated { .. } => {
            v.push(Seed);
            if full {
                v.push(ConfigBackup);
            }
            if plan.app.is_some() {
                v.push(AppStart);
            }
            before_backup(&mut v);
        }
        Source::Dsn(_) => {
            if full {
                v.push(ConfigBackup);
            }
            before_backup(&mut v);
        }
        Source::BackupFile(_) => {}
    }
    v.extend([StopApp, Precheck, Roles, Createdb, PgRestore, Analyze]);
    if full {
        v.extend([ConfigRestore, CodeRollback]);
    }
    if plan.tamper_sql.is_some() {
        v.push(TamperHook);
    }
    // The strategy verifies the data (step 5) before the application restarts (step 6):
    // once the app runs, it writes, and S1 would no longer be the restored state.
    v.extend([Snapshot, Compare, Amcheck]);
    if writer {
        v.push(Rpo);
    }
    v.extend([StartApp, AppHealthy]);
    if plan.app.is_some() {
        v.push(ObserveApp);
    }
    if full {
        v.push(AppVersion);
    }
    v.push(Checklist);
    v
}
