//! Phase `disaster`: the loss being drilled — the server destroyed and a new empty one
//! provisioned, or the database dropped on the running server — at the moment the schedule
//! says; the ledger writer, if any, is cut off by it.

use std::time::Instant;

use super::code::Releases;
use super::rpo::Struck;
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::plan::Disaster;
use crate::rpo::{Clock, DisasterAt};

/// What the disaster did.
pub(in crate::drill) struct Happened {
    /// For the report.
    pub detail: String,
    /// The moment it struck.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The writer's record, when a writer ran.
    pub struck: Option<Struck>,
    /// Where releases come from and go to, when the full scope's code part ran.
    pub releases: Option<Releases>,
}

/// What else a full drill's disaster takes (the configuration files, the code), run right
/// after the database's loss; its detail line and the releases it set up.
pub(in crate::drill) type Also = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(String, Option<Releases>), StepFail>> + Send>,
>;

/// Waits for the schedule's moment (`--disaster-at`, from the first backup's start
/// `first_backup`), then plays the plan's disaster on database `db`. After it,
/// `ctx.owned.target` is the server the restore goes into.
pub(in crate::drill) async fn run(
    ctx: &mut Ctx,
    db: &str,
    clock: &mut Clock,
    first_backup: Option<Instant>,
    also: Option<Also>,
) -> Option<Happened> {
    let wait = match (ctx.plan.scope.cadence.disaster_at, first_backup) {
        (DisasterAt::Random, Some(t)) => clock.until_disaster(t.elapsed()),
        _ => std::time::Duration::ZERO,
    };
    let waited = (!wait.is_zero()).then(|| {
        format!(
            "struck {} after the last backup finished (--disaster-at random, --disaster-seed {}); ",
            crate::duration::human_ms(wait.as_millis() as u64),
            clock.seed()
        )
    });
    let writer = ctx.owned.writer.take();
    let happened = match ctx.plan.disaster {
        Disaster::ServerLoss => {
            let old = ctx.owned.source.take();
            ctx.rec
                .step(PhaseId::Disaster, async move {
                    tokio::time::sleep(wait).await;
                    let at = chrono::Utc::now();
                    let detail = match old {
                        Some(t) => {
                            let what = t.describe();
                            t.destroy().await?;
                            format!("destroyed {what}; its replacement is provisioned by replace_server, inside the RTO clock")
                        }
                        // A source the drill does not own is never touched: the loss is
                        // played by restoring into a new empty server.
                        None => "the source is never touched; the restore goes into a new empty server provisioned by replace_server, inside the RTO clock".to_string(),
                    };
                    let happened = cut_off(writer, at, detail, also).await?;
                    let detail = happened.detail.clone();
                    Ok((happened, detail))
                })
                .await?
        }
        Disaster::DropDb => {
            let endpoint = ctx.owned.source.as_ref().map(|t| t.endpoint().clone());
            let name = db.to_string();
            ctx.rec
                .step(PhaseId::Disaster, async move {
                    // The plan refuses drop-db for any source the drill does not own.
                    let endpoint = endpoint.ok_or_else(|| {
                        StepFail::internal("drop-db without a server of the drill's own")
                    })?;
                    tokio::time::sleep(wait).await;
                    let at = chrono::Utc::now();
                    let sql = crate::restore::drop_database(&endpoint, &name).await?;
                    let detail = format!("dropped database {name} on the running server: {sql}");
                    let happened = cut_off(writer, at, detail, also).await?;
                    let detail = happened.detail.clone();
                    Ok((happened, detail))
                })
                .await?
        }
    };
    Some(Happened {
        detail: format!("{}{}", waited.unwrap_or_default(), happened.detail),
        ..happened
    })
}

/// Stops the ledger writer the disaster cut off, runs the rest of a full drill's disaster,
/// and says what happened.
async fn cut_off(
    writer: Option<crate::rpo::Writer>,
    at: chrono::DateTime<chrono::Utc>,
    mut detail: String,
    also: Option<Also>,
) -> Result<Happened, StepFail> {
    let struck = match writer {
        Some(w) => {
            let acks = w.stop().await;
            detail.push_str(&format!(
                "; the ledger writer had {} acknowledged commits when it was cut off",
                acks.commits.len()
            ));
            Some(Struck { acks, at })
        }
        None => None,
    };
    let releases = match also {
        Some(f) => {
            let (more, releases) = f.await?;
            detail.push_str(&format!("; {more}"));
            releases
        }
        None => None,
    };
    Ok(Happened {
        detail,
        at,
        struck,
        releases,
    })
}

/// Phase `replace_server` (server-loss): a new empty server for the lost one, which the
/// restore goes into; timed in the database_restore budget, as an outage waits for it.
pub(in crate::drill) async fn replace_server(ctx: &mut Ctx) -> Option<()> {
    let Some(backend) = ctx.owned.backend.as_ref() else {
        return crate::drill::missing(ctx, PhaseId::ReplaceServer, "backend").await;
    };
    let settings = &ctx.plan.server;
    let target = ctx
        .rec
        .step(PhaseId::ReplaceServer, replacement(backend, settings))
        .await?;
    ctx.owned.target = Some(target);
    Some(())
}

/// The lost server's replacement, started with the restore target's settings.
async fn replacement(
    backend: &crate::env::Backend,
    settings: &crate::pg::settings::ServerSettings,
) -> crate::drill::StepResult<crate::env::Target> {
    let target = backend.provision_with("target", settings).await?;
    let mut detail = format!(
        "provisioned a new empty server for the lost one: {}",
        target.describe()
    );
    if !settings.is_empty() {
        detail.push_str(&format!(
            "; started with {}",
            settings.assignments().join(", ")
        ));
    }
    Ok((target, detail))
}

/// Phases `replace_server` and `precheck` side by side: the precheck reads only the backup
/// file, so in a real server loss it runs while the new server is provisioned, and nothing
/// is restored before it passed. Only where the restore's programs are this machine's (the
/// native backend): in a container the new server's own `pg_restore` reads the archive, and
/// an older one on the host could refuse an archive it would read.
pub(in crate::drill) async fn replace_server_beside_precheck(
    ctx: &mut Ctx,
    set: &super::backup::BackupSet,
) -> Option<crate::restore::Precheck> {
    let Some(backend) = ctx.owned.backend.as_ref() else {
        crate::drill::missing(ctx, PhaseId::ReplaceServer, "backend").await;
        return None;
    };
    let tools = backend.tools().clone();
    let settings = &ctx.plan.server;
    let progress = ctx.rec.progress(PhaseId::Precheck);
    let (target, precheck) = ctx
        .rec
        .step_pair(
            (PhaseId::ReplaceServer, replacement(backend, settings)),
            (PhaseId::Precheck, async {
                let p = super::restore::check_set(set, &tools, &progress).await?;
                let detail = p.detail.clone();
                Ok((p, detail))
            }),
        )
        .await;
    // Kept even when the precheck failed: cleanup destroys what the drill owns.
    if let Some(t) = target {
        ctx.owned.target = Some(t);
        precheck
    } else {
        None
    }
}
