//! Phase `seed`: the fixtures schema and its deterministic generated data on the source.

use crate::drill::{Ctx, PhaseId, StepFail};
use crate::seed::{self, SeedSpec};

/// Creates database `db` on the drill's source and loads `rows` users generated from `seed`;
/// returns the loaded counts for the report.
pub(in crate::drill) async fn run(
    ctx: &mut Ctx,
    source: &crate::env::Endpoint,
    db: &str,
    rows: u64,
    seed: u64,
) -> Option<serde_json::Value> {
    let endpoint = source.clone();
    let db = db.to_string();
    let progress = ctx.rec.progress(PhaseId::Seed);
    let stats = ctx
        .rec
        .step(PhaseId::Seed, async move {
            let admin = endpoint.connect().await?;
            let fail = |e: String| StepFail::environment(e);
            seed::create_roles(&admin).await.map_err(|e| fail(e.to_string()))?;
            admin
                .batch_execute(&format!("CREATE DATABASE {}", crate::restore::ident(&db)))
                .await
                .map_err(|e| fail(crate::pg::error_text(&e)))?;
            let client = endpoint.with_db(&db).connect().await?;
            seed::load_schema(&client).await.map_err(|e| fail(e.to_string()))?;
            let stats = seed::seed(&client, &SeedSpec { rows, seed }, &progress)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let detail = format!(
                "fixtures schema; {} users, {} subscriptions, {} payments (seed {seed}), {} bytes by binary COPY",
                stats.users, stats.subscriptions, stats.payments, stats.bytes_sent
            );
            Ok((stats, detail))
        })
        .await?;
    serde_json::to_value(&stats).ok()
}
