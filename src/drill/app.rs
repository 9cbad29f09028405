//! The application under drill: `app_start` against the source (it writes during the
//! backup), `stop_app` before the database is touched (strategy step 1), and after the
//! restore `start_app`, `app_healthy` within the `app_restart` budget and `observe_app` for
//! the checklist (steps 6 and 7).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use super::{Ctx, PhaseId, SkipReason, StepFail};
use crate::app::{AppError, AppProcess, AppSpec};
use crate::checklist::{self, CheckItem};
use crate::env::docker::DockerBackend;
use crate::env::{Endpoint, Target};
use crate::error::EnvError;
use crate::report::{ChecklistItem, FailureClass, Status};

/// The files a full drill's application runs with.
#[derive(Debug, Clone)]
pub(super) struct AppFiles {
    /// Its configuration directory (the live files, or the restored ones).
    pub config_dir: PathBuf,
    /// The deploy directory of its release, once one was deployed.
    pub deploy_dir: Option<PathBuf>,
}

/// What became of the application after the restore, for the checklist's items 6–10.
pub(super) enum AppOutcome {
    /// The plan has no application.
    NoApp,
    /// It did not start against the restored server.
    DidNotStart,
    /// It started but was not observed (the drill was stopped).
    NotObserved,
    /// Items 6–10 from watching it.
    Observed(Vec<ChecklistItem>),
}

/// The docker backend and the app's image, when the app runs as a container.
fn container<'a>(
    backend: &'a Option<crate::env::Backend>,
    image: &'a Option<String>,
) -> Option<(&'a DockerBackend, &'a str)> {
    Some((backend.as_ref()?.docker()?, image.as_deref()?))
}

/// Starts the app: a container of `image` on the docker backend's network when `container`
/// is given, else a process on this machine.
async fn start(
    container: Option<(&DockerBackend, &str)>,
    spec: &AppSpec,
    url: &str,
    log: &std::path::Path,
) -> Result<AppProcess, AppError> {
    match container {
        Some((backend, image)) => AppProcess::start_container(backend, image, spec, url, log).await,
        None => AppProcess::start(spec, url, log).await,
    }
}

/// The environment and database URL for the app against `server`, setting the app role's
/// password first: role passwords are never in backups (--no-role-passwords), so after a
/// restore the drill plays the secret store.
async fn launch(
    ctx: &Ctx,
    server: &Target,
    db: &str,
    restart: bool,
) -> Result<(AppSpec, String, PathBuf), StepFail> {
    let app_server = server.app_endpoint(ctx.app_image.is_some());
    let server = server.endpoint();
    let plan = ctx.plan.app.as_ref().expect("app planned");
    let secrets = &ctx.secrets;
    let mut spec = plan.spec.clone();
    let url = match &mut spec {
        AppSpec::Sample { env, .. } => {
            let admin = server.with_db("postgres").connect().await?;
            // Its SCRAM verifier, not the password: the statement's text is in the debug log
            // (PGDRILL_LOG=debug) and in any statement log of the server.
            let verifier = postgres_protocol::password::scram_sha_256(
                secrets.db_password().expose_secret().as_bytes(),
            );
            admin
                .batch_execute(&format!(
                    "ALTER ROLE pgdrill_app PASSWORD {}",
                    crate::restore::literal(&verifier)
                ))
                .await
                .map_err(|e| {
                    // After a restore a missing app role is the restore's fault; before
                    // the disaster it is the drill's own server failing.
                    let class = if restart {
                        FailureClass::RestoreFailed
                    } else {
                        FailureClass::Environment
                    };
                    StepFail::new(
                        class,
                        format!(
                            "cannot set the app role's password: {}",
                            crate::pg::error_text(&e)
                        ),
                    )
                })?;
            let mut base = match &ctx.app_files {
                // A full drill: the configuration is the files' (live, or restored), the
                // code the deployed release's; DATABASE_URL below points it at the server.
                Some(files) => {
                    let mut v = vec![(
                        "SAMPLE_APP_ENV_FILE".to_string(),
                        files.config_dir.join(".env").display().to_string(),
                    )];
                    if let Some(d) = &files.deploy_dir {
                        v.push((
                            "SAMPLE_APP_RELEASE_DIR".to_string(),
                            d.display().to_string(),
                        ));
                    }
                    v
                }
                None => vec![
                    (
                        "API_KEY".to_string(),
                        secrets.api_key().expose_secret().to_string(),
                    ),
                    (
                        "VPN_PEER".to_string(),
                        secrets.vpn_peer().expose_secret().to_string(),
                    ),
                ],
            };
            base.push((
                "RELEASE".to_string(),
                format!("pgdrill-{}", env!("CARGO_PKG_VERSION")),
            ));
            base.append(env);
            *env = base;
            Endpoint {
                user: "pgdrill_app".into(),
                password: Some(secrets.db_password().clone()),
                ..app_server.with_db(db)
            }
            .url()
        }
        AppSpec::Custom(c) => {
            if let Some(files) = &ctx.app_files {
                c.env.push((
                    "PGDRILL_CONFIG_DIR".into(),
                    files.config_dir.display().to_string(),
                ));
                if let Some(d) = &files.deploy_dir {
                    c.env
                        .push(("PGDRILL_DEPLOY_DIR".into(), d.display().to_string()));
                }
            }
            app_server.with_db(db).url()
        }
    };
    if restart {
        match &mut spec {
            AppSpec::Sample { env, .. } => env.extend(plan.restart_env.iter().cloned()),
            AppSpec::Custom(c) => c.env.extend(plan.restart_env.iter().cloned()),
        }
    }
    let dir = ctx.plan.out_dir.join("app");
    std::fs::create_dir_all(&dir)
        .map_err(|e| EnvError::io(format!("cannot create {}", dir.display()), e))?;
    let log = dir.join(if restart {
        "app-after-restore.log"
    } else {
        "app-before-disaster.log"
    });
    Ok((spec, url, log))
}

/// The sample app's DATABASE_URL on the source, for the configuration file a full drill
/// writes for it (the app's role and its password, as the restart will use them).
pub(super) fn sample_database_url(ctx: &Ctx, db: &str) -> Option<String> {
    if ctx.plan.full()?.config != crate::scope::ConfigSource::Sample {
        return None;
    }
    let server = ctx.owned.source.as_ref()?;
    Some(
        Endpoint {
            user: "pgdrill_app".into(),
            password: Some(ctx.secrets.db_password().clone()),
            ..server.app_endpoint(ctx.app_image.is_some()).with_db(db)
        }
        .url(),
    )
}

/// Phase `app_start`: the application against the source, so that the backup is taken
/// while it writes.
pub(super) async fn start_on_source(ctx: &mut Ctx, db: &str) -> Option<()> {
    let launched = launch(ctx, ctx.owned.source.as_ref()?, db, false).await;
    let container = container(&ctx.owned.backend, &ctx.app_image);
    let app = ctx
        .rec
        .step(PhaseId::AppStart, async move {
            let (spec, url, log) = launched?;
            let env_err = |e: AppError| {
                StepFail::environment(format!(
                    "the application did not start against the source: {e}"
                ))
            };
            let app = start(container, &spec, &url, &log).await.map_err(env_err)?;
            let h = app
                .wait_healthy(Duration::from_secs(60))
                .await
                .map_err(env_err)?;
            let detail = format!(
                "application running against the source ({}), {}; it keeps writing during the backup",
                app.describe(),
                h.summary()
            );
            Ok((app, detail))
        })
        .await?;
    ctx.owned.app = Some(app);
    Some(())
}

/// Phase `stop_app` (strategy step 1): the application stopped before the database is
/// touched; a container waits for its `docker start`.
pub(super) async fn stop(ctx: &mut Ctx) -> Option<()> {
    match ctx.owned.app.take() {
        Some(mut app) => {
            let app = ctx
                .rec
                .step(PhaseId::StopApp, async move {
                    let r = app.stop(Duration::from_secs(30)).await.map_err(|e| {
                        StepFail::restore_failed(format!("cannot stop the application: {e}"))
                    })?;
                    let detail = format!(
                        "application stopped before the database is touched ({}): {} after {} ms{}",
                        app.describe(),
                        r.exit,
                        r.duration_ms,
                        if r.killed { " (SIGKILL needed)" } else { "" }
                    );
                    Ok((app, detail))
                })
                .await?;
            if app.is_container() {
                ctx.owned.stopped_app = Some(app);
            }
        }
        None if ctx.plan.app.is_some() => {
            ctx.rec.skip(PhaseId::StopApp, SkipReason::AppNotOnSource)
        }
        None => ctx.rec.skip(PhaseId::StopApp, SkipReason::NoApp),
    }
    Some(())
}

/// Strategy steps 6 and 7: start the app against the restored database `db`, wait until it
/// is healthy within the app_restart budget, then watch it for the checklist.
pub(super) async fn restart(ctx: &mut Ctx, db: &str) -> AppOutcome {
    let Some(plan) = ctx.plan.app.clone() else {
        ctx.rec.skip(PhaseId::StartApp, SkipReason::NoApp);
        ctx.rec.skip(PhaseId::AppHealthy, SkipReason::NoApp);
        return AppOutcome::NoApp;
    };
    let server = ctx.target().endpoint().clone();
    let launched = launch(ctx, ctx.target(), db, true).await;
    let fail = |m: String| StepFail::checklist(m);
    let started = Instant::now();
    let stopped = ctx.owned.stopped_app.take();
    // A full drill restores the configuration and rolls the code back: `docker start` of the
    // old container would run the old ones.
    let new_config = !plan.restart_env.is_empty() || ctx.app_files.is_some();
    let container = container(&ctx.owned.backend, &ctx.app_image);
    let app = ctx
        .rec
        .step(PhaseId::StartApp, async {
            let (spec, url, log) = launched?;
            let not_started = |e: AppError| {
                fail(format!(
                    "{}: the application did not start after the restore: {e}",
                    CheckItem::AppHealth
                ))
            };
            let (app, how) = match stopped {
                // The restore procedure's restart: the same container, same configuration;
                // its database host name now answers from the restored server.
                Some(old) if !new_config => (
                    old.restart_container(&log).await.map_err(not_started)?,
                    "docker start of the container stopped before the restore",
                ),
                Some(old) => {
                    drop(old);
                    (
                        start(container, &spec, &url, &log).await.map_err(not_started)?,
                        "a new container: its configuration or release changed (--app-restart-env, or a full drill's restored configuration and rolled-back release), which docker start would not apply",
                    )
                }
                None => (
                    start(container, &spec, &url, &log).await.map_err(not_started)?,
                    "started",
                ),
            };
            let detail = format!(
                "application started against the restored database ({}; {how}), log {}",
                app.describe(),
                log.display()
            );
            Ok((app, detail))
        })
        .await;
    let Some(app) = app else {
        ctx.rec
            .skip(PhaseId::AppHealthy, SkipReason::AppDidNotStart);
        ctx.rec
            .skip(PhaseId::ObserveApp, SkipReason::AppDidNotStart);
        return AppOutcome::DidNotStart;
    };
    let remaining = ctx
        .plan
        .budgets
        .app_restart
        .saturating_sub(started.elapsed());
    let log_offset = app.start_log_offset();
    let healthy = ctx
        .rec
        .step(PhaseId::AppHealthy, async {
            let h = app
                .wait_healthy(remaining)
                .await
                .map_err(|e| fail(format!("{}: {e}", CheckItem::AppHealth)))?;
            Ok((
                (),
                format!("GET health → {} within the app_restart budget", h.summary()),
            ))
        })
        .await;
    let client = server.with_db(db).connect().await.ok();
    let sample = plan.is_sample();
    let (window, max_age) = (plan.observe, plan.max_heartbeat_age);
    // Faults found here fail the checklist step, which names the item and its evidence.
    let items = ctx
        .rec
        .step(PhaseId::ObserveApp, async {
            let obs =
                checklist::observe(&app, client.as_ref().filter(|_| sample), window, log_offset)
                    .await;
            let items = checklist::app_items(&obs, max_age);
            let bad = items.iter().filter(|i| i.status == Status::Fail).count();
            let detail = format!(
                "watched the application for {}: {bad} of {} app checklist items failing",
                humantime::format_duration(window),
                items.len()
            );
            Ok((items, detail))
        })
        .await;
    ctx.owned.app = Some(app);
    let Some(mut items) = items else {
        return AppOutcome::NotObserved;
    };
    // Healthy for a moment after the budget ran out is still a failed restart.
    if healthy.is_none() {
        for i in items.iter_mut() {
            if i.item == CheckItem::AppHealth && i.status == Status::Pass {
                *i = checklist::item(
                    CheckItem::AppHealth,
                    Status::Fail,
                    "the application did not become healthy within the app_restart budget",
                );
            }
        }
    }
    AppOutcome::Observed(items)
}
