//! Phase `disaster`: the loss being drilled — the server destroyed and a new empty one
//! provisioned, or the database dropped on the running server.

use super::{Ctx, PhaseId};
use crate::plan::Disaster;

/// Plays the plan's disaster on database `db`; returns what happened, for the report. After
/// it, `ctx.owned.target` is the server the restore goes into.
pub(super) async fn run(ctx: &mut Ctx, db: &str) -> Option<String> {
    match ctx.plan.disaster {
        Disaster::ServerLoss => {
            let old = ctx.owned.source.take();
            let provisioned = ctx.owned.target.take();
            let backend = ctx.owned.backend.as_ref()?;
            let (target, detail) = ctx
                .rec
                .step(PhaseId::Disaster, async move {
                    let (target, detail) = match (old, provisioned) {
                        (Some(t), _) => {
                            let what = t.describe();
                            t.destroy().await?;
                            let target = backend.provision("target").await?;
                            let detail = format!(
                                "destroyed {what}; provisioned a new empty server: {}",
                                target.describe()
                            );
                            (target, detail)
                        }
                        // A source the drill does not own is never touched: the loss is
                        // played by restoring into the empty server made for the restore.
                        (None, Some(target)) => {
                            let detail = format!(
                                "the source is never touched; the restore goes into the empty server provisioned for it: {}",
                                target.describe()
                            );
                            (target, detail)
                        }
                        (None, None) => {
                            let target = backend.provision("target").await?;
                            let detail = format!(
                                "the source is never touched; provisioned a new empty server: {}",
                                target.describe()
                            );
                            (target, detail)
                        }
                    };
                    Ok(((target, detail.clone()), detail))
                })
                .await?;
            ctx.owned.target = Some(target);
            Some(detail)
        }
        Disaster::DropDb => {
            let endpoint = ctx.owned.source.as_ref()?.endpoint().clone();
            let name = db.to_string();
            ctx.rec
                .step(PhaseId::Disaster, async move {
                    let detail = crate::restore::drop_database(&endpoint, &name).await?;
                    Ok(((), detail))
                })
                .await?;
            Some(format!("dropped database {db} on the running server"))
        }
    }
}
