//! The strategy's restore, each step a phase counted against the `database_restore` budget:
//! `precheck` (the whole archive read, SHA-256 against the manifest), `roles` (globals and
//! the preflight), `createdb`, `pg_restore`, `analyze`.

use super::backup::BackupSet;
use super::{Ctx, PhaseId};
use crate::restore::{self, DatabaseSpec, Precheck};

/// The restored database.
pub(super) struct Restored {
    /// Its name.
    pub database: String,
    /// The restore ran with `pg_restore --no-tablespaces` (the preflight found tablespaces
    /// the target lacks); the comparison is told so.
    pub no_tablespaces: bool,
}

/// The strategy's prerequisites: the file exists, its SHA-256 is the manifest's, and the
/// whole archive reads through.
pub(super) async fn precheck(ctx: &mut Ctx, set: &BackupSet) -> Option<Precheck> {
    let tools = ctx.target().tools();
    let progress = ctx.rec.progress(PhaseId::Precheck);
    ctx.rec
        .step(PhaseId::Precheck, async {
            let p = restore::precheck(&set.dump, set.manifest.as_ref(), &tools, &progress).await?;
            let detail = p.detail.clone();
            Ok((p, detail))
        })
        .await
}

/// Restores `set` into the target as database `db` (when empty: the name the archive
/// records).
pub(super) async fn run(ctx: &mut Ctx, set: &BackupSet, db: &str) -> Option<Restored> {
    let tools = ctx.target().tools();
    let dump = set.dump.clone();
    let database = if db.is_empty() {
        restore::archive_dbname(&tools, &dump)
            .await
            .unwrap_or_else(|| "restored".into())
    } else {
        db.to_string()
    };
    let admin = ctx.target().endpoint().clone();
    let policy = ctx.plan.missing_roles;
    let globals = ctx.plan.globals.clone().or_else(|| set.globals.clone());
    let outcome = ctx
        .rec
        .step(PhaseId::Roles, async {
            let replayed = match &globals {
                Some(g) => restore::restore_roles(&admin, &tools, g).await?,
                None => "no globals file (beside the backup or --globals)".to_string(),
            };
            let o = crate::preflight::run(&admin, &tools, &dump, policy).await?;
            let detail = format!("{replayed}; {}", o.detail);
            Ok((o, detail))
        })
        .await?;
    ctx.notes.extend(outcome.note.clone());
    ctx.notes.extend(outcome.tablespace_note());
    let no_tablespaces = outcome.no_tablespaces();
    let m = set.manifest.as_ref();
    let spec = DatabaseSpec {
        name: database.clone(),
        encoding: m.map(|m| m.encoding.clone()),
        collate: m.map(|m| m.collate.clone()),
        ctype: m.map(|m| m.ctype.clone()),
        owner: m.map(|m| m.owner.clone()),
    };
    ctx.rec
        .step(PhaseId::Createdb, async {
            Ok(((), restore::create_database(&admin, &spec).await?))
        })
        .await?;
    let target = admin.with_db(&database);
    let jobs = ctx.plan.jobs;
    let progress = ctx.rec.progress(PhaseId::PgRestore);
    ctx.rec
        .step(PhaseId::PgRestore, async {
            Ok((
                (),
                restore::pg_restore(&target, &tools, &dump, jobs, no_tablespaces, &progress)
                    .await?,
            ))
        })
        .await?;
    ctx.rec
        .step(PhaseId::Analyze, async {
            Ok(((), restore::analyze(&target).await?))
        })
        .await?;
    Some(Restored {
        database,
        no_tablespaces,
    })
}
