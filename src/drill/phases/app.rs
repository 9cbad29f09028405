//! The application under drill: `app_start` against the source (it writes during the
//! backup), `stop_app` before the database is touched (strategy step 1), and after the
//! restore `start_app`, `app_healthy` within the `app_restart` budget and `observe_app` for
//! the checklist (steps 6 and 7).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::app::{AppError, AppProcess, AppSpec};
use crate::checklist::{self, CheckItem};
use crate::drill::{Ctx, Flow, PhaseId, RestoreServer, SkipReason, StepFail};
use crate::env::docker::DockerBackend;
use crate::env::Endpoint;
use crate::error::EnvError;
use crate::plan::AppPlan;
use crate::report::{ChecklistItem, FailureClass, Status};
use crate::scope::FullPlan;

/// The files a full drill's application runs with.
#[derive(Debug, Clone)]
pub(in crate::drill) struct AppFiles {
    /// Its configuration directory (the live files, or the restored ones).
    pub config_dir: PathBuf,
    /// The deploy directory of its release, once one was deployed.
    pub deploy_dir: Option<PathBuf>,
}

/// What became of the application after the restore, for the checklist's items 6–10.
pub(in crate::drill) enum AppOutcome {
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
    image: Option<&'a str>,
) -> Option<(&'a DockerBackend, &'a str)> {
    Some((backend.as_ref()?.docker()?, image?))
}

/// The application's restart after the restore, as far as it got: what `start_app`,
/// `app_healthy` and `observe_app` hand one another and the checklist.
pub(in crate::drill) enum Restart {
    /// `start_app` has not run.
    NotYet,
    /// The plan has no application.
    NoApp,
    /// It did not start against the restored server.
    DidNotStart,
    /// It started; `healthy` once it answered within the app_restart budget.
    Started {
        /// When `start_app` began: the app_restart budget counts from here.
        started: Instant,
        /// Where its log began, for the checklist's log reading.
        log_offset: u64,
        /// It answered healthy within the budget.
        healthy: bool,
    },
    /// It started but was not observed (the drill was stopped).
    NotObserved,
    /// Items 6–10 from watching it.
    Observed(Vec<ChecklistItem>),
}

impl Restart {
    /// Whether the application's version can be asked: it was watched running, or there is
    /// none and the deployment marker answers.
    pub fn version_checkable(&self) -> bool {
        matches!(self, Restart::NoApp | Restart::Observed(_))
    }

    /// Why a phase that needs the started application is skipped, when it was not started.
    pub fn not_started(&self) -> SkipReason {
        match self {
            Restart::NoApp => SkipReason::NoApp,
            _ => SkipReason::AppDidNotStart,
        }
    }

    /// What became of the application, for the checklist (taken: the checklist is last).
    pub fn take_outcome(&mut self) -> AppOutcome {
        match std::mem::replace(self, Restart::NotYet) {
            Restart::NoApp => AppOutcome::NoApp,
            Restart::DidNotStart => AppOutcome::DidNotStart,
            Restart::Observed(items) => AppOutcome::Observed(items),
            Restart::NotYet | Restart::Started { .. } | Restart::NotObserved => {
                AppOutcome::NotObserved
            }
        }
    }
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
    plan: &AppPlan,
    files: Option<&AppFiles>,
    (server, app_server): (&Endpoint, &Endpoint),
    db: &str,
    restart: bool,
) -> Result<(AppSpec, String, PathBuf), StepFail> {
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
            let mut base = match files {
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
            if let Some(files) = files {
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
pub(in crate::drill) fn sample_database_url(
    ctx: &Ctx,
    full: &FullPlan,
    in_container: bool,
    db: &str,
) -> Option<String> {
    if full.config != crate::scope::ConfigSource::Sample {
        return None;
    }
    let server = ctx.owned.source.as_ref()?;
    Some(
        Endpoint {
            user: "pgdrill_app".into(),
            password: Some(ctx.secrets.db_password().clone()),
            ..server.app_endpoint(in_container).with_db(db)
        }
        .url(),
    )
}

/// Phase `app_start`: the application against the source, so that the backup is taken
/// while it writes.
pub(in crate::drill) async fn start_on_source(
    ctx: &mut Ctx,
    plan: &AppPlan,
    flow: &Flow,
    db: &str,
) -> Option<()> {
    let Some(source) = ctx.owned.source.as_ref() else {
        return crate::drill::missing(ctx, PhaseId::AppStart, "source server").await;
    };
    let endpoints = (
        &source.endpoint().clone(),
        &source.app_endpoint(flow.app_image.is_some()),
    );
    let launched = launch(ctx, plan, flow.app_files.as_ref(), endpoints, db, false).await;
    let container = container(&ctx.owned.backend, flow.app_image.as_deref());
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
pub(in crate::drill) async fn stop(ctx: &mut Ctx) -> Option<()> {
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

/// Phase `start_app` (strategy step 6): the application started against the restored
/// database `db` on `server`.
pub(in crate::drill) async fn restart(
    ctx: &mut Ctx,
    flow: &mut Flow,
    server: &RestoreServer,
    db: &str,
) {
    let Some(plan) = ctx.plan.app.clone() else {
        ctx.rec.skip(PhaseId::StartApp, SkipReason::NoApp);
        flow.restart = Restart::NoApp;
        return;
    };
    let in_container = flow.app_image.is_some();
    let app_server = if in_container {
        &server.app_in_container
    } else {
        &server.app
    };
    let endpoints = (&server.admin, app_server);
    let launched = launch(ctx, &plan, flow.app_files.as_ref(), endpoints, db, true).await;
    let started = Instant::now();
    let stopped = ctx.owned.stopped_app.take();
    // A full drill restores the configuration and rolls the code back: `docker start` of the
    // old container would run the old ones.
    let new_config = !plan.restart_env.is_empty() || flow.app_files.is_some();
    let container = container(&ctx.owned.backend, flow.app_image.as_deref());
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
    flow.restart = match app {
        Some(app) => {
            let log_offset = app.start_log_offset();
            ctx.owned.app = Some(app);
            Restart::Started {
                started,
                log_offset,
                healthy: false,
            }
        }
        None => Restart::DidNotStart,
    };
}

/// A checklist failure: the application's phases after the restore fail the checklist.
fn fail(m: String) -> StepFail {
    StepFail::checklist(m)
}

/// Phase `app_healthy` (strategy step 6): its health endpoint answering within what is left
/// of the app_restart budget.
pub(in crate::drill) async fn healthy(ctx: &mut Ctx, flow: &mut Flow) {
    let Restart::Started {
        started, healthy, ..
    } = &mut flow.restart
    else {
        ctx.rec
            .skip(PhaseId::AppHealthy, flow.restart.not_started());
        return;
    };
    let Some(app) = ctx.owned.app.as_ref() else {
        crate::drill::missing(ctx, PhaseId::AppHealthy, "started application").await;
        return;
    };
    let remaining = ctx
        .plan
        .budgets
        .app_restart
        .saturating_sub(started.elapsed());
    *healthy = ctx
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
        .await
        .is_some();
}

/// Phase `observe_app` (strategy step 7): the restarted application watched for the
/// checklist's items 6–10, reading database `db` for the sample app's heartbeats.
pub(in crate::drill) async fn observe(
    ctx: &mut Ctx,
    flow: &mut Flow,
    plan: &AppPlan,
    db: &Endpoint,
) {
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
    let client = db.connect().await.ok();
    let Some(app) = ctx.owned.app.as_ref() else {
        crate::drill::missing(ctx, PhaseId::ObserveApp, "started application").await;
        return;
    };
    let sample = plan.is_sample();
    let (window, max_age) = (plan.observe, plan.max_heartbeat_age);
    // Faults found here fail the checklist step, which names the item and its evidence.
    let items = ctx
        .rec
        .step(PhaseId::ObserveApp, async {
            let obs =
                checklist::observe(app, client.as_ref().filter(|_| sample), window, log_offset)
                    .await;
            let items = checklist::app_items(&obs, max_age);
            Ok(observed(items, window))
        })
        .await;
    flow.restart = judged(items, healthy);
}

/// `observe_app`'s value and detail line: the items and how many fail.
pub(in crate::drill) fn observed(
    items: Vec<ChecklistItem>,
    window: Duration,
) -> (Vec<ChecklistItem>, String) {
    let bad = items.iter().filter(|i| i.status == Status::Fail).count();
    let detail = format!(
        "watched the application for {}: {bad} of {} app checklist items failing",
        crate::duration::human(window),
        items.len()
    );
    (items, detail)
}

/// What `observe_app` leaves for the checklist: its items, with "health checks pass" failed
/// when the app was not healthy within the app_restart budget (healthy for a moment after
/// the budget ran out is still a failed restart).
pub(in crate::drill) fn judged(items: Option<Vec<ChecklistItem>>, healthy: bool) -> Restart {
    let Some(mut items) = items else {
        return Restart::NotObserved;
    };
    if !healthy {
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
    Restart::Observed(items)
}
