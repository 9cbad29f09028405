//! A real restore's own phases (`pgdrill restore --confirm`): `connect_target` (the named
//! server inspected, refused when a restore may not touch it), the team's application
//! stopped and started with its own commands, `safety_dump` and `drop_live` (in place),
//! `swap` (side restore) and `drop_previous`. The restore itself is the drill's own
//! `precheck`, `roles`, `createdb`, `pg_restore`, `analyze` and verification phases.
//!
//! What the restore made and what it stopped is in [`Live`], which the drill's cleanup
//! settles on every path: a side database never swapped in is dropped, and an application
//! pgdrill stopped is started again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::app::Restart;
use super::provision::Provisioned;
use crate::app::ExternalApp;
use crate::checklist::{self, AppObservation, CheckItem};
use crate::drill::kernel::Recorder;
use crate::drill::{Ctx, Flow, PhaseId, SkipReason, StepFail};
use crate::env::external::ExternalTarget;
use crate::env::{PgTools, Target};
use crate::live::{self, Facts};
use crate::plan::{RestoreMode, RestorePlan};
use crate::report::{FailureClass, RestoreInfo, RestoreModeKind, Status};

/// What a real restore changed on the live server so far, for its cleanup and its report.
pub(in crate::drill) struct Live {
    /// The named server, the live database in `dbname`.
    pub target: crate::env::Endpoint,
    /// The side database, from `createdb` until the swap.
    pub side: Option<String>,
    /// The application, stopped by pgdrill and not started since.
    pub app_down: Option<ExternalApp>,
    /// What the report says of the restore.
    pub info: RestoreInfo,
}

impl Live {
    /// The restore of `r` on the server `facts` describe, before anything is changed.
    pub fn new(r: &RestorePlan, facts: Facts) -> Live {
        Live {
            target: r.target.clone(),
            side: None,
            app_down: None,
            info: info_of(r, Some(facts)),
        }
    }

    /// The report's section, once the cleanup settled everything.
    pub fn into_info(self) -> RestoreInfo {
        let mut info = self.info;
        if let (Some(prev), false) = (&info.previous, info.previous_dropped) {
            info.swap_back = Some(live::swap_back_sql(&info.database, prev));
        }
        info
    }
}

/// The report's restore section as the plan (and, once connected, the server) give it.
pub(in crate::drill) fn info_of(r: &RestorePlan, facts: Option<Facts>) -> RestoreInfo {
    let side = r.mode == RestoreMode::Side;
    RestoreInfo {
        target: r.target.display(),
        database: r.target.dbname.clone(),
        server_version: facts
            .as_ref()
            .map(|f| f.server_version.clone())
            .unwrap_or_default(),
        mode: if side {
            RestoreModeKind::Side
        } else {
            RestoreModeKind::InPlace
        },
        confirmed: r.target.dbname.clone(),
        reason: r.reason.clone(),
        side: side.then(|| live::side_name(&r.target.dbname)),
        sessions_before: facts.map(|f| f.sessions).unwrap_or_default(),
        ..RestoreInfo::default()
    }
}

/// Phase `connect_target`: the named server inspected with this machine's client programs;
/// a standby, a role that cannot create or replace the database, or a leftover side
/// database stop the restore here, before anything is changed.
pub(in crate::drill) async fn connect(
    r: &RestorePlan,
    rec: &mut Recorder,
) -> Option<(Provisioned, Facts)> {
    let target = r.target.clone();
    let in_place = r.mode != crate::plan::RestoreMode::Side;
    rec.step(PhaseId::ConnectTarget, async move {
        let tools = PgTools::discover(crate::pg::tools::CLIENT_PROGRAMS)?;
        let facts = live::inspect(&target).await?;
        if let Some(refused) = facts.refuse(in_place) {
            return Err(refused.into());
        }
        let detail = describe_facts(&facts);
        let server = Target::External(ExternalTarget {
            endpoint: live::maintenance(&target),
            tools,
        });
        let p = Provisioned {
            backend: None,
            server: Some(server),
            app_image: None,
        };
        Ok(((p, facts), detail))
    })
    .await
}

/// One line on the target for the report.
pub fn describe_facts(f: &Facts) -> String {
    format!(
        "{} (PostgreSQL {}), primary; role {}{}; database {} {}",
        f.server,
        f.server_version,
        f.user,
        if f.superuser {
            " (superuser)"
        } else {
            " (CREATEDB)"
        },
        f.database,
        match (f.exists, f.size_bytes) {
            (true, Some(size)) => format!(
                "exists ({} bytes, {} session(s) connected)",
                size,
                f.sessions.len()
            ),
            _ => "does not exist: the restore creates it".to_string(),
        }
    )
}

/// Phase `stop_app` of a real restore (strategy step 1): the team's application stopped
/// with its own command, after the backup passed its precheck.
pub(in crate::drill) async fn stop_app(ctx: &mut Ctx) -> Option<()> {
    let Some(app) = ctx.plan.team_app().cloned() else {
        ctx.rec.skip(PhaseId::StopApp, SkipReason::NoApp);
        return Some(());
    };
    let command = app.control.stop_command();
    let untouched = match &ctx.owned.config {
        Some(c) => format!("nothing in {} was changed", c.info.target),
        None => "nothing was changed on the database server".to_string(),
    };
    let ran = ctx
        .rec
        .step(PhaseId::StopApp, async {
            let ran = app.stop().await.map_err(|e| {
                StepFail::new(
                    FailureClass::Environment,
                    format!("cannot stop the application: {e}; {untouched}"),
                )
            })?;
            let detail = format!(
                "ran `{}` ({} ms){}",
                ran.command,
                ran.took.as_millis(),
                if ran.output.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ran.output)
                }
            );
            Ok((ran, detail))
        })
        .await;
    // Stopped or maybe half-stopped: either way it is started again if the restore ends
    // before `start_app`.
    if let Some(live) = ctx.owned.live.as_mut() {
        live.info.app_stop = Some(command);
        live.app_down = Some(app);
    } else if let Some(c) = ctx.owned.config.as_mut() {
        c.info.app_stop = Some(command);
        c.app_down = Some(app);
    }
    ran.map(|_| ())
}

/// Phase `safety_dump` (in place): the live database dumped to `path` with `pg_dump -Fc`
/// before it is dropped.
pub(in crate::drill) async fn safety_dump(ctx: &mut Ctx, path: PathBuf) -> Option<()> {
    let Some(target) = ctx.owned.live.as_ref().map(|l| l.target.clone()) else {
        return crate::drill::missing(ctx, PhaseId::SafetyDump, "named server").await;
    };
    let Some(tools) = ctx.owned.target.as_ref().map(Target::tools) else {
        return crate::drill::missing(ctx, PhaseId::SafetyDump, "client programs").await;
    };
    let done = ctx
        .rec
        .step(PhaseId::SafetyDump, async {
            let (size, sha256) = dump(&tools, &target, &path).await?;
            Ok((
                (size, sha256.clone()),
                format!(
                    "pg_dump -Fc of {} into {} ({size} bytes, sha256 {sha256}) before it is dropped",
                    target.dbname,
                    path.display()
                ),
            ))
        })
        .await?;
    if let Some(live) = ctx.owned.live.as_mut() {
        live.info.safety_dump = Some(crate::report::SafetyDump {
            file: path.display().to_string(),
            size_bytes: done.0,
            sha256: done.1,
        });
    }
    Some(())
}

/// `pg_dump -Fc` of `db`'s database into `path` (a `.partial` renamed when whole); its size
/// and SHA-256.
async fn dump(
    tools: &PgTools,
    db: &crate::env::Endpoint,
    path: &Path,
) -> Result<(u64, String), StepFail> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StepFail::new(
                FailureClass::Environment,
                format!("cannot create {} for the safety dump: {e}", dir.display()),
            )
        })?;
    }
    let partial = path.with_extension("dump.partial");
    let out = tools
        .command("pg_dump", db)
        .args(["-Fc", "--no-password", "-f"])
        .arg(&partial)
        .arg(db.dbname_arg())
        .run()
        .await?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(StepFail::new(
            FailureClass::Environment,
            format!(
                "the safety dump failed ({}): {}; the live database was not dropped",
                out.status,
                crate::backup::tail(&String::from_utf8_lossy(&out.stderr))
            ),
        ));
    }
    std::fs::rename(&partial, path).map_err(|e| {
        StepFail::new(
            FailureClass::Environment,
            format!("cannot rename the safety dump into {}: {e}", path.display()),
        )
    })?;
    let (size, sha) = crate::digest::sha256_file_blocking(path).map_err(|e| {
        StepFail::new(
            FailureClass::Environment,
            format!("cannot read back the safety dump {}: {e}", path.display()),
        )
    })?;
    Ok((size, sha))
}

/// Phase `drop_live` (in place, the strategy's `dropdb`): the live database dropped, its
/// sessions terminated first.
pub(in crate::drill) async fn drop_live(ctx: &mut Ctx) -> Option<()> {
    let Some(target) = ctx.owned.live.as_ref().map(|l| l.target.clone()) else {
        return crate::drill::missing(ctx, PhaseId::DropLive, "named server").await;
    };
    let terminated = ctx
        .rec
        .step(PhaseId::DropLive, async {
            let terminated = live::drop_database(&target, &target.dbname).await?;
            let detail = format!(
                "DROP DATABASE {} ({} session(s) terminated first)",
                target.dbname,
                terminated.len()
            );
            Ok((terminated, detail))
        })
        .await?;
    if let Some(live) = ctx.owned.live.as_mut() {
        live.info.sessions_terminated.extend(terminated);
    }
    Some(())
}

/// Marks the side database as the restore's own from `createdb` on: the cleanup drops it
/// unless the swap put it in place.
pub(in crate::drill) fn side_created(ctx: &mut Ctx, name: &str) {
    if let Some(live) = ctx.owned.live.as_mut() {
        if live.target.dbname != name {
            live.side = Some(name.to_string());
        }
    }
}

/// Phase `swap` (side restore): only when every phase before it passed, the live database
/// renamed to `<db>__pgdrill_before_<time>` and the verified side database to its name.
pub(in crate::drill) async fn swap(ctx: &mut Ctx, flow: &mut Flow) -> Option<()> {
    if let Some(f) = &ctx.rec.failure {
        let at = f.phase;
        ctx.rec.skip(PhaseId::Swap, SkipReason::AfterFailure(at));
        return None;
    }
    let Some((target, side)) = ctx
        .owned
        .live
        .as_ref()
        .and_then(|l| Some((l.target.clone(), l.side.clone()?)))
    else {
        return crate::drill::missing(ctx, PhaseId::Swap, "side database").await;
    };
    let db = target.dbname.clone();
    let before = live::before_name(&db, chrono::Utc::now());
    let cancel = ctx.rec.cancel_token();
    let swapped = ctx
        .rec
        .step_shielded(PhaseId::Swap, async {
            let s = live::swap(&target, &db, &side, &before, &cancel).await?;
            let detail = match &s.previous {
                Some(p) => format!(
                    "{db} renamed to {p} ({} session(s) terminated first), then {side} renamed to {db}",
                    s.terminated.len()
                ),
                None => format!("{side} renamed to {db} (there was no database {db})"),
            };
            Ok((s, detail))
        })
        .await?;
    if let Some(restored) = flow.restored.as_mut() {
        restored.database = db.clone();
    }
    if let Some(live) = ctx.owned.live.as_mut() {
        live.side = None;
        live.info.swapped = true;
        live.info.previous = swapped.previous.clone();
        live.info.sessions_terminated.extend(swapped.terminated);
    }
    Some(())
}

/// Phase `start_app` of a real restore (strategy step 6): the team's start command.
pub(in crate::drill) async fn start_app(ctx: &mut Ctx, flow: &mut Flow) {
    let Some(app) = ctx.plan.team_app().cloned() else {
        ctx.rec.skip(PhaseId::StartApp, SkipReason::NoApp);
        flow.restart = Restart::NoApp;
        return;
    };
    let started = Instant::now();
    let log_offset = app.log_len();
    let after_swap = after_swap_note(ctx);
    let command = app.control.start_command();
    let ok = ctx
        .rec
        .step(PhaseId::StartApp, async {
            let ran = app.start().await.map_err(|e| {
                StepFail::checklist(format!(
                    "{}: the application did not start after the restore: {e}{after_swap}",
                    CheckItem::AppHealth
                ))
            })?;
            Ok((
                (),
                format!("ran `{}` ({} ms)", ran.command, ran.took.as_millis()),
            ))
        })
        .await
        .is_some();
    // Started, or tried: the cleanup does not try again.
    if let Some(live) = ctx.owned.live.as_mut() {
        live.info.app_start = Some(command);
        live.app_down = None;
    } else if let Some(c) = ctx.owned.config.as_mut() {
        c.info.app_start = Some(command);
        c.app_down = None;
    }
    flow.restart = if ok {
        Restart::Started {
            started,
            log_offset,
            healthy: false,
        }
    } else {
        Restart::DidNotStart
    };
}

/// What a failure after the swap adds: the data is restored, and how to swap back (or, for
/// a configuration restore, where the files are and where the previous ones are kept).
fn after_swap_note(ctx: &Ctx) -> String {
    let Some(live) = ctx.owned.live.as_ref() else {
        return ctx
            .owned
            .config
            .as_ref()
            .map(|c| c.restored_note())
            .unwrap_or_default();
    };
    match (&live.info.previous, live.info.swapped) {
        (Some(prev), true) => format!(
            ". The data WAS restored: {db} is the verified restore. The database it replaced is kept as {prev}; to go back to it: psql -d postgres -c '{sql}'",
            db = live.target.dbname,
            sql = live::swap_back_sql(&live.target.dbname, prev)
        ),
        (None, true) => format!(
            ". The data WAS restored: {} is the verified restore",
            live.target.dbname
        ),
        _ => String::new(),
    }
}

/// Phase `app_healthy` of a real restore: every health URL healthy within what is left of
/// the app_restart budget.
pub(in crate::drill) async fn healthy(ctx: &mut Ctx, flow: &mut Flow) {
    let Restart::Started {
        started, healthy, ..
    } = &mut flow.restart
    else {
        ctx.rec
            .skip(PhaseId::AppHealthy, flow.restart.not_started());
        return;
    };
    let Some(app) = ctx.plan.team_app().cloned() else {
        return;
    };
    if app.health_urls.is_empty() {
        // Nothing was asked: a pass here would claim a health the restore never saw.
        ctx.rec.skip(PhaseId::AppHealthy, SkipReason::NoHealthUrl);
        return;
    }
    let remaining = ctx
        .plan
        .budgets
        .app_restart
        .saturating_sub(started.elapsed());
    let after_swap = after_swap_note(ctx);
    *healthy = ctx
        .rec
        .step(PhaseId::AppHealthy, async {
            let reports = app.wait_healthy(remaining).await.map_err(|e| {
                StepFail::checklist(format!("{}: {e}{after_swap}", CheckItem::AppHealth))
            })?;
            let seen: Vec<String> = reports
                .iter()
                .map(|r| format!("{} → {}", r.url, r.summary()))
                .collect();
            Ok(((), seen.join("; ")))
        })
        .await
        .is_some();
}

/// Phase `observe_app` of a real restore (strategy step 7): the application watched for
/// `window` for the checklist's items 6–10; an item pgdrill has nothing to judge by (no log
/// or metrics given) is skipped, naming the flag that would give it.
pub(in crate::drill) async fn observe(ctx: &mut Ctx, flow: &mut Flow, window: Duration) {
    let Restart::Started {
        log_offset,
        healthy,
        ..
    } = flow.restart
    else {
        ctx.rec
            .skip(PhaseId::ObserveApp, flow.restart.not_started());
        return;
    };
    let Some(app) = ctx.plan.team_app().cloned() else {
        return;
    };
    let max_age = Duration::from_secs(60);
    let items = ctx
        .rec
        .step(PhaseId::ObserveApp, async {
            let url = app.health_urls.first().cloned();
            let probe = |url: Option<String>| {
                let app = app.clone();
                async move {
                    match url {
                        Some(u) => app.health(&u).await.map_err(|e| e.to_string()),
                        None => Err("no --app-health-url given".to_string()),
                    }
                }
            };
            let health_before = probe(url.clone()).await;
            let metrics_before = app.metrics().await.map_err(|e| e.to_string());
            tokio::time::sleep(window).await;
            let health_after = probe(url).await;
            let metrics_after = app.metrics().await.map_err(|e| e.to_string());
            let error_lines = app.error_lines_since(log_offset).map_err(|e| e.to_string());
            let obs = AppObservation {
                health_before,
                health_after,
                metrics_before,
                metrics_after,
                beats_before: None,
                beats_after: None,
                error_lines,
                window,
            };
            let mut items = checklist::app_items(&obs, max_age);
            for i in items.iter_mut() {
                let not_given = match i.item {
                    CheckItem::AppHealth | CheckItem::SystemHealthy
                        if app.health_urls.is_empty() =>
                    {
                        Some("no --app-health-url given")
                    }
                    CheckItem::WorkersRunning if app.health_urls.is_empty() => {
                        Some("no --app-health-url given")
                    }
                    CheckItem::NoLogErrors if app.log_file.is_none() => Some("no --app-log given"),
                    CheckItem::NormalMetrics if app.metrics_url.is_none() => {
                        Some("no --app-metrics-url given")
                    }
                    _ => None,
                };
                if let Some(why) = not_given {
                    *i = checklist::item(i.item, Status::Skipped, why);
                }
            }
            Ok(super::app::observed(items, window))
        })
        .await;
    flow.restart = super::app::judged(items, healthy);
}

/// Phase `drop_previous` (`--drop-previous`): the replaced database dropped, once the
/// application is healthy; kept when anything before failed.
pub(in crate::drill) async fn drop_previous(ctx: &mut Ctx) -> Option<()> {
    if let Some(f) = &ctx.rec.failure {
        let at = f.phase;
        ctx.rec
            .skip(PhaseId::DropPrevious, SkipReason::AfterFailure(at));
        return Some(());
    }
    let Some((target, previous)) = ctx
        .owned
        .live
        .as_ref()
        .and_then(|l| Some((l.target.clone(), l.info.previous.clone()?)))
    else {
        ctx.rec
            .skip(PhaseId::DropPrevious, SkipReason::NothingToDrop);
        return Some(());
    };
    ctx.rec
        .step(PhaseId::DropPrevious, async {
            live::drop_database(&target, &previous).await?;
            Ok(((), format!("--drop-previous: DROP DATABASE {previous}")))
        })
        .await?;
    if let Some(live) = ctx.owned.live.as_mut() {
        live.info.previous_dropped = true;
    }
    Some(())
}

/// The restore's part of the cleanup, on every path: the side database, if never swapped
/// in, dropped; the application, if pgdrill stopped it and did not start it, started again.
pub(in crate::drill) async fn settle(live: &mut Live, notes: &mut Vec<String>) {
    if let Some(side) = live.side.take() {
        match live::drop_database(&live.target, &side).await {
            Ok(_) => notes.push(format!(
                "the side database {side} was dropped; the live database {} was not touched",
                live.target.dbname
            )),
            Err(e) => notes.push(format!(
                "cleanup: the side database {side} could not be dropped ({e}); drop it by hand: DROP DATABASE {}",
                crate::pg::ident(&side)
            )),
        }
        live.info.side_dropped = true;
    }
    if let Some(app) = live.app_down.take() {
        live.info.app_restarted_by_cleanup = start_again(&app, notes).await;
    }
}

/// Starts again an application pgdrill stopped and did not start (a restore that ended
/// before `start_app`); says so in the notes, with the command to run by hand when it fails.
pub(in crate::drill) async fn start_again(app: &ExternalApp, notes: &mut Vec<String>) -> bool {
    match app.start().await {
        Ok(ran) => {
            notes.push(format!(
                "the application pgdrill stopped was started again (`{}`)",
                ran.command
            ));
            true
        }
        Err(e) => {
            notes.push(format!(
                "cleanup: the application pgdrill stopped could NOT be started again: {e}; start it by hand: {}",
                app.control.start_command()
            ));
            false
        }
    }
}
