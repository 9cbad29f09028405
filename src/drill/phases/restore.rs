//! The strategy's restore, each step a phase counted against the `database_restore` budget:
//! `precheck` (the whole archive read, SHA-256 against the manifest), `roles` (globals and
//! the preflight), `createdb`, `pg_restore`, `analyze`.

use super::backup::BackupSet;
use crate::backup::Manifest;
use crate::drill::{Ctx, PhaseId, RestoreServer, StepFail};
use crate::env::PgTools;
use crate::restore::{self, DatabaseSpec, Precheck};

/// The database the restore creates and fills.
pub(in crate::drill) struct Restored {
    /// Its name.
    pub database: String,
    /// The restore runs with `pg_restore --no-tablespaces` (the preflight found tablespaces
    /// the target lacks); the comparison is told so.
    pub no_tablespaces: bool,
}

/// Phase `precheck`, the strategy's prerequisites: the file exists, its SHA-256 is the
/// manifest's, and the whole archive reads through.
pub(in crate::drill) async fn precheck(
    ctx: &mut Ctx,
    tools: &PgTools,
    set: &BackupSet,
) -> Option<Precheck> {
    let progress = ctx.rec.progress(PhaseId::Precheck);
    ctx.rec
        .step(PhaseId::Precheck, async {
            let p = check_set(set, tools, &progress).await?;
            let detail = p.detail.clone();
            Ok((p, detail))
        })
        .await
}

/// The precheck of a backup set, without a drill: what phase `precheck` runs, and what the
/// negative controls run on their damaged copies, so a control proves this code can fail.
pub(in crate::drill) async fn check_set(
    set: &BackupSet,
    tools: &PgTools,
    progress: &crate::progress::Progress,
) -> Result<Precheck, StepFail> {
    if let Some(e) = &set.manifest_error {
        return Err(restore::RestoreError::Manifest(e.clone()).into());
    }
    Ok(restore::precheck(&set.dump, set.manifest.as_ref(), tools, progress).await?)
}

/// Phase `roles`: the globals replayed and the preflight of what the archive needs. Names
/// the database the restore creates `db` (when empty: the name the archive records).
pub(in crate::drill) async fn roles(
    ctx: &mut Ctx,
    server: &RestoreServer,
    set: &BackupSet,
    db: &str,
) -> Option<Restored> {
    let tools = &server.tools;
    let dump = &set.dump;
    let database = if db.is_empty() {
        restore::archive_dbname(tools, dump)
            .await
            .unwrap_or_else(|| "restored".into())
    } else {
        db.to_string()
    };
    let admin = &server.admin;
    let policy = ctx.plan.missing_roles;
    let globals = ctx.plan.globals.clone().or_else(|| set.globals.clone());
    // On a server the user named, only the roles it lacks are created: an existing role's
    // attributes and memberships are the team's, never the backup's.
    let only_missing = match (ctx.plan.restore.is_some(), &globals) {
        (true, Some(_)) => Some(ctx.work_dir()),
        _ => None,
    };
    let outcome = ctx
        .rec
        .step(PhaseId::Roles, async {
            let replayed = match (&globals, only_missing) {
                (Some(g), Some(work)) => {
                    let text = std::fs::read_to_string(g).map_err(|e| {
                        restore::RestoreError::Failed(format!("cannot read {}: {e}", g.display()))
                    })?;
                    let existing = crate::live::roles(admin).await?;
                    let sql = crate::live::missing_roles_sql(&text, &existing);
                    if sql.is_empty() {
                        format!(
                            "every role of {} exists on the server: none created, none altered",
                            g.display()
                        )
                    } else {
                        let filtered = work?.join("missing-roles.sql");
                        std::fs::write(&filtered, &sql).map_err(|e| {
                            crate::error::EnvError::io("cannot write the missing roles' SQL", e)
                        })?;
                        let created = sql.lines().filter(|l| l.starts_with("CREATE ROLE")).count();
                        format!(
                            "{created} missing role(s) created from {} (existing roles left as they are): {}",
                            g.display(),
                            restore::restore_roles(admin, tools, &filtered).await?
                        )
                    }
                }
                (Some(g), None) => restore::restore_roles(admin, tools, g).await?,
                (None, _) => "no globals file (beside the backup or --globals)".to_string(),
            };
            let o = crate::preflight::run(admin, tools, dump, policy).await?;
            let detail = format!("{replayed}; {}", o.detail);
            Ok((o, detail))
        })
        .await?;
    ctx.notes.extend(outcome.note.clone());
    ctx.notes.extend(outcome.tablespace_note());
    Some(Restored {
        database,
        no_tablespaces: outcome.no_tablespaces(),
    })
}

/// Phase `createdb`: the database recreated with the manifest's settings.
pub(in crate::drill) async fn createdb(
    ctx: &mut Ctx,
    server: &RestoreServer,
    manifest: Option<&Manifest>,
    database: &str,
) -> Option<()> {
    let spec = DatabaseSpec {
        name: database.to_string(),
        encoding: manifest.map(|m| m.encoding.clone()),
        collate: manifest.map(|m| m.collate.clone()),
        ctype: manifest.map(|m| m.ctype.clone()),
        owner: manifest.map(|m| m.owner.clone()),
    };
    let admin = &server.admin;
    ctx.rec
        .step(PhaseId::Createdb, async {
            Ok(((), restore::create_database(admin, &spec).await?))
        })
        .await
}

/// Phase `pg_restore`: the archive into the new database.
pub(in crate::drill) async fn pg_restore(
    ctx: &mut Ctx,
    server: &RestoreServer,
    set: &BackupSet,
    restored: &Restored,
) -> Option<()> {
    let target = server.admin.with_db(&restored.database);
    let tools = &server.tools;
    let jobs = ctx.plan.jobs;
    let progress = ctx.rec.progress(PhaseId::PgRestore);
    let no_tablespaces = restored.no_tablespaces;
    ctx.rec
        .step(PhaseId::PgRestore, async {
            Ok((
                (),
                restore::pg_restore(&target, tools, &set.dump, jobs, no_tablespaces, &progress)
                    .await?,
            ))
        })
        .await
}

/// Phase `analyze`: planner statistics for the restored database.
pub(in crate::drill) async fn analyze(
    ctx: &mut Ctx,
    server: &RestoreServer,
    restored: &Restored,
) -> Option<()> {
    let target = server.admin.with_db(&restored.database);
    let jobs = ctx.plan.jobs;
    ctx.rec
        .step(PhaseId::Analyze, async {
            Ok(((), restore::analyze(&target, jobs).await?))
        })
        .await
}

/// The restore target's restore-relevant settings (and any other the plan gave it), as it
/// reports them after the restore, for the report beside the RTO; a note says so when they
/// cannot be read.
pub(in crate::drill) async fn server_settings(
    ctx: &mut Ctx,
    admin: &crate::env::Endpoint,
) -> Option<crate::report::ServerSettingsInfo> {
    let mut names: Vec<String> = crate::pg::settings::RESTORE_RELEVANT
        .iter()
        .map(|n| n.to_string())
        .collect();
    for s in &ctx.plan.server.settings {
        if !names.contains(&s.name) {
            names.push(s.name.clone());
        }
    }
    match crate::pg::settings::effective(admin, &names).await {
        Ok(effective) => Some(crate::report::ServerSettingsInfo::of(
            effective,
            &ctx.plan.server,
        )),
        Err(e) => {
            ctx.notes.push(format!(
                "the restore target's settings could not be read: {e}"
            ));
            None
        }
    }
}
