//! Phase `checklist`: the strategy's ten items, decided by [`crate::checklist`] from what
//! verification and the restarted application showed, and judged: the phase fails naming
//! every failing item.

use super::app::AppOutcome;
use super::verify::Verified;
use crate::checklist;
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::report::{ChecklistItem, Status};

/// The ten items from the evidence.
pub(in crate::drill) fn items(ctx: &Ctx, v: &Verified, app: AppOutcome) -> Vec<ChecklistItem> {
    let mut out = checklist::database_items(
        v.connected.as_deref(),
        v.snapshot.as_ref(),
        v.integrity.as_ref().map(|i| &i.comparison),
    );
    // A physical restore has no S0: the data items cannot be judged against one, and say so
    // rather than fail for a comparison that does not apply.
    if matches!(ctx.plan.source, crate::plan::Source::Pitr(_)) && v.integrity.is_none() {
        for i in out
            .iter_mut()
            .filter(|i| checklist::CRITICAL_TABLES.iter().any(|(c, _)| *c == i.item))
        {
            i.status = Status::Skipped;
            i.evidence = "a physical restore (pgBackRest) has no pg_dump manifest (S0) to compare with; the recovery target was checked in recovery_replay".into();
        }
    }
    match app {
        AppOutcome::Observed(items) => out.extend(items),
        other => {
            let why = match other {
                AppOutcome::NoApp => "no application under drill",
                AppOutcome::DidNotStart => "the application did not start after the restore",
                _ => "the application was not observed",
            };
            let status = if ctx.plan.app.is_some() {
                Status::Fail
            } else {
                Status::Skipped
            };
            out.extend(checklist::not_observed(status, why));
        }
    }
    out
}

/// Phase `checklist`: fails naming every failing item and its evidence.
pub(in crate::drill) async fn run(ctx: &mut Ctx, items: &[ChecklistItem]) -> Option<()> {
    let failed = checklist::failures(items);
    let n_pass = items.iter().filter(|i| i.status == Status::Pass).count();
    let n_skip = items.iter().filter(|i| i.status == Status::Skipped).count();
    ctx.rec
        .step(PhaseId::Checklist, async move {
            if failed.is_empty() {
                Ok((
                    (),
                    format!("{n_pass} items pass, {n_skip} skipped (reasons in the checklist)"),
                ))
            } else {
                Err(StepFail::checklist(failed.join("\n")))
            }
        })
        .await
}
