//! The RPO measured: `writer_start` (a ledger writer commits into the source while the
//! backups are taken), and after the restore `rpo` (the restored ledger against the commits
//! the writer saw acknowledged, and the data-loss window against `--rpo`).

use chrono::{DateTime, Utc};

use super::backup::Backups;
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::env::Endpoint;
use crate::rpo::{Acknowledged, Inputs, RpoReport, WorstCase, Writer};
use crate::scope::RpoPlan;

/// What the disaster ended: the writer's record and the moment it struck.
pub(in crate::drill) struct Struck {
    /// What the writer saw acknowledged.
    pub acks: Acknowledged,
    /// The moment of the disaster.
    pub at: DateTime<Utc>,
}

/// Phase `writer_start`: the ledger writer on database `db` of the source, committing at the
/// plan's rate until the disaster. A source that cannot be written to is an environment
/// error here, before any backup.
pub(in crate::drill) async fn start(ctx: &mut Ctx, plan: RpoPlan, db: &str) -> Option<()> {
    let endpoint = ctx.source_endpoint(db);
    let token = ctx.rec.cancel_token();
    let writer = ctx
        .rec
        .step(PhaseId::WriterStart, async move {
            let endpoint =
                endpoint.ok_or_else(|| StepFail::internal("no source to write the ledger into"))?;
            let w = Writer::start(&endpoint, plan.rate, &token).await?;
            let detail = format!(
                "ledger {} on {}: {} commits per second, each acknowledgement recorded with its time",
                crate::rpo::ledger_name(),
                endpoint.display(),
                plan.rate
            );
            Ok((w, detail))
        })
        .await?;
    ctx.owned.writer = Some(writer);
    Some(())
}

/// Phase `rpo`: the restored ledger of database `db` held against the writer's record.
pub(in crate::drill) async fn assess(
    ctx: &mut Ctx,
    plan: RpoPlan,
    endpoint: &Endpoint,
    backups: &Backups,
    struck: &Struck,
) -> Option<RpoReport> {
    let snapshot = backups
        .newest
        .manifest
        .as_ref()
        .and_then(|m| m.snapshot_taken);
    let worst_case = WorstCase {
        interval: ctx.plan.scope.cadence.every,
        backup_duration: backups.longest(),
        backups_taken: backups.count() as u32,
    };
    judged(ctx, plan, endpoint, snapshot, worst_case, struck, None).await
}

/// The worst case of archiving WAL by segments: a server lost just before its current
/// segment is archived loses what that segment holds, up to `archive_timeout` of commits
/// (unbounded when it is off) plus the time archiving takes.
pub(in crate::drill) struct WalWorstCase {
    /// The source's `archive_timeout` (zero: off).
    pub archive_timeout: std::time::Duration,
    /// How long the recovery point's segment took to reach the archive.
    pub archiving: std::time::Duration,
}

impl WalWorstCase {
    /// The report's worst case in ms (`u64::MAX`-free: off counts as unbounded, not fitting),
    /// whether it fits `objective`, and its note.
    fn judge(&self, objective: std::time::Duration) -> (u64, bool, String) {
        let human = crate::duration::human;
        if self.archive_timeout.is_zero() {
            return (
                0,
                false,
                format!(
                    "worst case with WAL archiving: unbounded, since archive_timeout is off on the source: a quiet server keeps its current segment out of the archive until it fills, so its last commits can wait there for hours. Set archive_timeout (e.g. 60s, within the {} objective) or stream the WAL (Barman's streaming_archiver, pg_receivewal)",
                    human(objective)
                ),
            );
        }
        let total = self.archive_timeout + self.archiving;
        let ms = total.as_millis() as u64;
        let head = format!(
            "worst case with WAL archiving: archive_timeout {} + archiving {} = {}",
            human(self.archive_timeout),
            human(self.archiving),
            human(total)
        );
        if total <= objective {
            (
                ms,
                true,
                format!("{head}, within the {} objective", human(objective)),
            )
        } else {
            (
                ms,
                false,
                format!(
                    "{head}, longer than the {} objective: lower archive_timeout or stream the WAL",
                    human(objective)
                ),
            )
        }
    }
}

/// Phase `rpo` of a point-in-time recovery to the drill's own recovery point: the restored
/// ledger against the writer's record, split by the point's transaction (`window`), the
/// worst case that of WAL archiving.
pub(in crate::drill) async fn assess_point(
    ctx: &mut Ctx,
    plan: RpoPlan,
    endpoint: &Endpoint,
    window: crate::backup::SnapshotWindow,
    struck: &Struck,
    wal: WalWorstCase,
) -> Option<RpoReport> {
    let worst_case = WorstCase {
        interval: wal.archive_timeout,
        backup_duration: wal.archiving,
        backups_taken: 0,
    };
    judged(
        ctx,
        plan,
        endpoint,
        Some(window),
        worst_case,
        struck,
        Some(wal),
    )
    .await
}

async fn judged(
    ctx: &mut Ctx,
    plan: RpoPlan,
    endpoint: &Endpoint,
    snapshot: Option<crate::backup::SnapshotWindow>,
    worst_case: WorstCase,
    struck: &Struck,
    wal: Option<WalWorstCase>,
) -> Option<RpoReport> {
    let mut slot = None;
    ctx.rec
        .step(PhaseId::Rpo, async {
            let Some(snapshot) = snapshot else {
                return Err(StepFail::backup_unusable("the restored backup's manifest does not say when its snapshot was taken (snapshot_taken), so the lost commits cannot be told exactly",
                ));
            };
            let client = endpoint.connect().await?;
            let inputs = Inputs {
                snapshot,
                disaster_at: struck.at,
                objective: plan.objective,
                worst_case,
            };
            let mut r = crate::rpo::assess(&client, &struck.acks, &inputs).await?;
            if let Some(wal) = &wal {
                (r.worst_case_ms, r.worst_case_fits, r.note) = wal.judge(plan.objective);
                r.archive_timeout_ms = Some(wal.archive_timeout.as_millis() as u64);
            }
            let detail = format!(
                "{} of {} acknowledged commits restored, {} lost; data-loss window {} against the RPO {}; schedule worst case {}",
                r.restored_commits,
                r.acknowledged_commits,
                r.lost_commits,
                crate::report::markdown::secs(r.achieved_ms),
                crate::report::markdown::secs(r.objective_ms),
                crate::report::markdown::secs(r.worst_case_ms),
            );
            let failed = crate::report::rpo_failure(&r);
            slot = Some(r);
            match failed {
                Some(f) => Err(StepFail::new(f.class, f.message)),
                None => Ok(((), detail)),
            }
        })
        .await;
    slot
}
