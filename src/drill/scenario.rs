//! The phases a plan goes through, in order. Each phase's name and budget are
//! [`PhaseId`]'s, in [`crate::report::vocab`].

use crate::plan::{Plan, Source};
/// The phase names live in the report's vocabulary, which knows nothing of the drill.
pub use crate::report::vocab::PhaseId;

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
