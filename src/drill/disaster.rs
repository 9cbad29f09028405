//! Phase `disaster`: the loss being drilled — the server destroyed and a new empty one
//! provisioned, or the database dropped on the running server — at the moment the schedule
//! says; the ledger writer, if any, is cut off by it.

use std::time::Instant;

use super::rpo::Struck;
use super::{Ctx, PhaseId};
use crate::plan::Disaster;
use crate::rpo::{Clock, DisasterAt};

/// What the disaster did.
pub(super) struct Happened {
    /// For the report.
    pub detail: String,
    /// The writer's record and the moment, when a writer ran.
    pub struck: Option<Struck>,
}

/// Waits for the schedule's moment (`--disaster-at`, from the first backup's start
/// `first_backup`), then plays the plan's disaster on database `db`. After it,
/// `ctx.owned.target` is the server the restore goes into.
pub(super) async fn run(
    ctx: &mut Ctx,
    db: &str,
    clock: &mut Clock,
    first_backup: Option<Instant>,
) -> Option<Happened> {
    let wait = match (ctx.plan.scope.cadence.disaster_at, first_backup) {
        (DisasterAt::Random, Some(t)) => clock.until_disaster(t.elapsed()),
        _ => std::time::Duration::ZERO,
    };
    let waited = (!wait.is_zero()).then(|| {
        format!(
            "struck {} after the last backup finished (--disaster-at random, --disaster-seed {}); ",
            humantime::format_duration(std::time::Duration::from_millis(wait.as_millis() as u64)),
            clock.seed()
        )
    });
    let writer = ctx.owned.writer.take();
    let happened = match ctx.plan.disaster {
        Disaster::ServerLoss => {
            let old = ctx.owned.source.take();
            let provisioned = ctx.owned.target.take();
            let backend = ctx.owned.backend.as_ref()?;
            let (target, happened) = ctx
                .rec
                .step(PhaseId::Disaster, async move {
                    tokio::time::sleep(wait).await;
                    let at = chrono::Utc::now();
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
                    let happened = cut_off(writer, at, detail).await;
                    let detail = happened.detail.clone();
                    Ok(((target, happened), detail))
                })
                .await?;
            ctx.owned.target = Some(target);
            happened
        }
        Disaster::DropDb => {
            let endpoint = ctx.owned.source.as_ref()?.endpoint().clone();
            let name = db.to_string();
            ctx.rec
                .step(PhaseId::Disaster, async move {
                    tokio::time::sleep(wait).await;
                    let at = chrono::Utc::now();
                    let sql = crate::restore::drop_database(&endpoint, &name).await?;
                    let detail = format!("dropped database {name} on the running server: {sql}");
                    let happened = cut_off(writer, at, detail).await;
                    let detail = happened.detail.clone();
                    Ok((happened, detail))
                })
                .await?
        }
    };
    Some(Happened {
        detail: format!("{}{}", waited.unwrap_or_default(), happened.detail),
        struck: happened.struck,
    })
}

/// Stops the ledger writer the disaster cut off and says how far it got.
async fn cut_off(
    writer: Option<crate::rpo::Writer>,
    at: chrono::DateTime<chrono::Utc>,
    detail: String,
) -> Happened {
    let Some(w) = writer else {
        return Happened {
            detail,
            struck: None,
        };
    };
    let acks = w.stop().await;
    let detail = format!(
        "{detail}; the ledger writer had {} acknowledged commits when it was cut off",
        acks.commits.len()
    );
    Happened {
        detail,
        struck: Some(Struck { acks, at }),
    }
}
