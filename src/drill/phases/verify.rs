//! Verification of the restored data (strategy step 5), before the application restarts
//! and writes: the `--tamper-sql` hook, `snapshot` S1, `compare` with S0, `amcheck`.

use std::collections::BTreeMap;

use super::backup::BackupSet;
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::env::Endpoint;
use crate::error::EnvError;
use crate::report::Integrity;
use crate::scope::Fault;
use crate::snapshot::{self, Snapshot};

/// What verification found; kept for the report and the checklist whatever failed.
#[derive(Debug, Default)]
pub(in crate::drill) struct Verified {
    /// How the drill connected to the restored database, when it could.
    pub connected: Option<String>,
    /// `SHOW server_version` of the restored server.
    pub server_version: String,
    /// `pg_database_size` of the restored database.
    pub database_size: Option<u64>,
    /// Snapshot S1 of the restored database.
    pub snapshot: Option<Snapshot>,
    /// S1 against S0 (or S1's own consistency checks).
    pub integrity: Option<Integrity>,
    /// The client programs' versions.
    pub tools: BTreeMap<String, String>,
}

/// Phase `amcheck`: `pg_amcheck --heapallindexed` on the restored database `db`; a finding
/// fails the phase and the drill goes on, so the checklist still judges the rest.
pub(in crate::drill) async fn amcheck(ctx: &mut Ctx, db: &Endpoint, tools: &crate::env::PgTools) {
    let jobs = ctx.plan.jobs;
    ctx.rec
        .step(PhaseId::Amcheck, async {
            Ok(((), run_amcheck(db, tools, jobs).await?))
        })
        .await;
}

/// The test hook that plays silent corruption, so tests prove verification catches it.
pub(in crate::drill) async fn tamper(ctx: &mut Ctx, db: &Endpoint, sql: String) -> Option<()> {
    let db = db.clone();
    ctx.rec
        .step(PhaseId::TamperHook, async move {
            let c = db.connect().await?;
            c.batch_execute(&sql).await.map_err(|e| {
                StepFail::environment(format!("tamper SQL failed: {}", crate::pg::error_text(&e)))
            })?;
            Ok((
                (),
                "test hook: ran --tamper-sql on the restored database".to_string(),
            ))
        })
        .await?;
    ctx.notes.push(
        "a test hook modified the restored database before verification (--tamper-sql)".into(),
    );
    Some(())
}

/// Snapshot S1 and the server's version; `None` when the restored server cannot be read.
pub(in crate::drill) async fn snapshot(
    ctx: &mut Ctx,
    db: &Endpoint,
) -> Option<(Snapshot, String, u64)> {
    let sdb = db.clone();
    let progress = ctx.rec.progress(PhaseId::Snapshot);
    ctx.rec
        .step(PhaseId::Snapshot, async move {
            let (s, version, size) = take_snapshot(&sdb, &progress).await?;
            let detail = format!(
                "snapshot S1 of {} tables, {} sequences",
                s.tables.len(),
                s.sequences.len()
            );
            Ok(((s, version, size), detail))
        })
        .await
}

/// A snapshot of database `db`, its server's version and the database's size: the
/// `snapshot` phase's S1, and the negative controls' snapshot of a damaged clone, taken by
/// the same code.
pub(in crate::drill) async fn take_snapshot(
    db: &Endpoint,
    progress: &crate::progress::Progress,
) -> Result<(Snapshot, String, u64), StepFail> {
    let c = db.connect().await?;
    let row = c
        .query_one(
            "SELECT current_setting('server_version'), pg_database_size(current_database())",
            &[],
        )
        .await
        .map_err(|e| StepFail::restore_failed(crate::pg::error_text(&e)))?;
    let version: String = row.get(0);
    let size = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
    // Two sessions in one exported snapshot: the tables are read on one while
    // the checks run on the other.
    let helper = db.connect().await?;
    // A failed BEGIN or pg_export_snapshot() is the restored server failing a read,
    // not a difference in the data.
    let unserved = |e: tokio_postgres::Error| {
        StepFail::restore_failed(format!(
            "the restored server cannot open a snapshot: {}",
            crate::pg::error_text(&e)
        ))
    };
    let exported = crate::pg::export_snapshot(&c).await.map_err(unserved)?;
    crate::pg::join_snapshot(&helper, &exported)
        .await
        .map_err(unserved)?;
    let s = snapshot::take_split(&c, &helper, progress)
        .await
        .map_err(|e| {
            StepFail::integrity(format!(
                "cannot take the snapshot of the restored database: {e}"
            ))
        })?;
    let _ = helper.batch_execute("COMMIT").await;
    let _ = c.batch_execute("COMMIT").await;
    Ok((s, version, size))
}

/// S1 against the manifest's S0; the comparison is returned whether or not it passes.
pub(in crate::drill) async fn compare(
    ctx: &mut Ctx,
    set: &BackupSet,
    s1: &Snapshot,
    options: snapshot::CompareOptions,
) -> Option<Integrity> {
    let strict_schema = ctx.plan.strict_schema;
    let blind = ctx.plan.scope.faults.contains(&Fault::BlindCompare);
    judged(ctx, integrity_of(set, s1, options, strict_schema, blind)).await
}

/// Phase `compare` against an S0 taken elsewhere than in a manifest (a point-in-time
/// recovery's own recovery point), `basis` saying where.
pub(in crate::drill) async fn compare_to(
    ctx: &mut Ctx,
    basis: String,
    s0: &Snapshot,
    s1: &Snapshot,
) -> Option<Integrity> {
    let strict_schema = ctx.plan.strict_schema;
    let mut integrity = Integrity {
        basis,
        comparison: snapshot::compare(s0, s1),
    };
    if strict_schema {
        integrity.comparison.enforce_strict_schema();
    }
    judged(ctx, integrity).await
}

/// The `compare` step judging `integrity`, which is kept for the report whether or not the
/// step passes.
async fn judged(ctx: &mut Ctx, integrity: Integrity) -> Option<Integrity> {
    let mut slot: Option<Integrity> = None;
    ctx.rec
        .step(PhaseId::Compare, async {
            let verdict = judge(&integrity);
            slot = Some(integrity);
            verdict.map(|detail| ((), detail))
        })
        .await;
    slot
}

/// S1 against the manifest's S0 (or S1's own consistency checks without one): the comparison
/// the `compare` phase and the data controls share. `blind` is the `--fault blind-compare`
/// test hook: S1 compared with itself.
pub(in crate::drill) fn integrity_of(
    set: &BackupSet,
    s1: &Snapshot,
    options: snapshot::CompareOptions,
    strict_schema: bool,
    blind: bool,
) -> Integrity {
    let mut integrity = match &set.manifest {
        _ if blind => Integrity {
            basis: "test hook --fault blind-compare: the restored data compared with itself".into(),
            comparison: snapshot::compare_with(s1, s1, options),
        },
        Some(m) if m.snapshot.format != s1.format => Integrity {
            basis: format!(
                "snapshot S0 from the manifest is of format {} (an earlier pgdrill), this pgdrill takes format {}: row counts compared with S0, fingerprints and schema recorded, not compared; the restored data's own consistency checks apply",
                m.snapshot.format, s1.format
            ),
            comparison: snapshot::compare_across_formats(&m.snapshot, s1),
        },
        Some(m) => Integrity {
            basis: format!(
                "snapshot S0 from the manifest, taken in the dump's own MVCC snapshot ({})",
                m.mvcc_snapshot
            ),
            comparison: snapshot::compare_with(&m.snapshot, s1, options),
        },
        None => Integrity {
            basis: "no manifest: the restored data's own consistency checks only (row counts and fingerprints recorded, not compared)".into(),
            comparison: snapshot::self_consistency(s1),
        },
    };
    if strict_schema {
        integrity.comparison.enforce_strict_schema();
    }
    integrity
}

/// The comparison's verdict: its detail line, or the `integrity_mismatch` listing every
/// difference.
pub(in crate::drill) fn judge(integrity: &Integrity) -> Result<String, StepFail> {
    let diffs = integrity.comparison.differences();
    let warned = integrity.comparison.warnings.len();
    let n = integrity.comparison.tables.len();
    if diffs.is_empty() {
        Ok(format!(
            "{n} tables, sequences, schema and checks identical{}",
            warned_suffix(warned)
        ))
    } else {
        Err(StepFail::integrity(format!(
            "{} difference(s):\n{}",
            diffs.len(),
            diffs.join("\n")
        )))
    }
}

/// `pg_amcheck --heapallindexed` on the restored database.
async fn run_amcheck(
    db: &Endpoint,
    tools: &crate::env::PgTools,
    jobs: u32,
) -> Result<String, StepFail> {
    // pg_amcheck --install-missing creates the amcheck extension; a database that had none
    // is left without it, so a real restore's database is the backup's and nothing more.
    let had_amcheck = match db.connect().await {
        Ok(c) => c
            .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])
            .await
            .ok()
            .map(|r| r.is_some()),
        Err(_) => None,
    };
    let result = amcheck_run(db, tools, jobs).await;
    if had_amcheck == Some(false) {
        if let Ok(c) = db.connect().await {
            let _ = c.batch_execute("DROP EXTENSION IF EXISTS amcheck").await;
        }
    }
    result
}

async fn amcheck_run(
    db: &Endpoint,
    tools: &crate::env::PgTools,
    jobs: u32,
) -> Result<String, StepFail> {
    let out = tools
        .command("pg_amcheck", db)
        .args([
            "--install-missing",
            "--heapallindexed",
            "--no-password",
            "-j",
        ])
        .arg(jobs.to_string())
        .arg(db.dbname_arg())
        .output()
        .await
        .map_err(|source| EnvError::Spawn {
            program: "pg_amcheck".into(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.trim().is_empty() {
        return Err(StepFail::integrity(format!(
            "pg_amcheck reports corruption ({}):\n{}{}",
            out.status,
            crate::backup::tail(&stdout),
            crate::backup::tail(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    Ok(format!(
        "pg_amcheck --heapallindexed on {}: no corruption found",
        db.dbname
    ))
}

/// The client programs' versions, for the report.
pub(in crate::drill) async fn tool_versions(
    tools: &crate::env::PgTools,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for t in ["pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_amcheck"] {
        if let Ok(v) = tools.version(t).await {
            m.insert(t.to_string(), v);
        }
    }
    m
}

/// `, N explained warning(s) (integrity.warnings)` for the compare step's detail, or nothing.
fn warned_suffix(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" apart from {n} explained warning(s) (integrity.warnings)"),
    }
}
