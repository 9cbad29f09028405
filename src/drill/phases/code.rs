//! The application's code in a full drill: the bad release deployed as part of the disaster
//! (for the sample app), `code_rollback` (the strategy's "Application Code Rollback": find the
//! target tag, check it out clean, deploy it, record the marker) and, once the application
//! runs again, `app_version` (it reports the target tag and its commit).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::AppProcess;
use crate::checklist::CheckItem;
use crate::code::{
    self, DeploySpec, Release, ReleaseRepo, ReportedVersion, RollbackTo, SAMPLE_DEPLOY_COMMAND,
};
use crate::drill::{Ctx, PhaseId, SkipReason, StepFail};
use crate::plan::RollbackPlan;
use crate::report::full::{ReleaseRef, ReportedRelease, Rollback};
use crate::scope::CodeSource;

/// How long a deploy command may run before it is killed.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Where releases come from and go to in this drill.
#[derive(Debug, Clone)]
pub(in crate::drill) struct Releases {
    /// The git repository (the user's, or the sample's made in the drill's directory).
    pub repo: PathBuf,
    /// The deploy command.
    pub command: String,
    /// The directory releases are deployed into (the application runs from it).
    pub deploy_dir: PathBuf,
    /// Checkouts and the deploy log go here.
    pub work: PathBuf,
}

/// The code's part of the disaster, run inside the disaster phase: for the sample app its
/// release repository is made and the bad release (the newest tag) deployed, as a bad deploy
/// would; for a user's application the deploy directory starts empty (the code is gone).
pub(in crate::drill) async fn bad_release(
    source: &CodeSource,
    work: &Path,
    deployed_by: &str,
) -> Result<(Releases, String), StepFail> {
    let deploy_dir = work.join("deploy");
    std::fs::create_dir_all(&deploy_dir).map_err(|e| {
        crate::error::EnvError::io(format!("cannot create {}", deploy_dir.display()), e)
    })?;
    match source {
        CodeSource::Repo { path, deploy } => Ok((
            Releases {
                repo: path.clone(),
                command: deploy.clone(),
                deploy_dir,
                work: work.to_path_buf(),
            },
            "the application's deployed code is gone (an empty deploy directory)".into(),
        )),
        CodeSource::Sample => {
            let sample = code::create_sample_release_repo(&work.join("release-repo")).await?;
            let releases = Releases {
                repo: sample.path.clone(),
                command: SAMPLE_DEPLOY_COMMAND.into(),
                deploy_dir,
                work: work.to_path_buf(),
            };
            let repo = ReleaseRepo::open(&releases.repo).await?;
            let wt = repo
                .checkout(
                    &sample.bad,
                    &work.join(format!("checkout-{}", sample.bad.tag)),
                )
                .await?;
            code::deploy(&wt, &spec(&releases, deployed_by)).await?;
            let detail = format!(
                "a bad release was deployed: {} ({}) of the sample app's release repository",
                sample.bad.tag,
                sample.bad.short_commit()
            );
            Ok((releases, detail))
        }
    }
}

fn spec(r: &Releases, deployed_by: &str) -> DeploySpec {
    DeploySpec {
        command: r.command.clone(),
        deploy_dir: r.deploy_dir.clone(),
        log: r.work.join("deploy.log"),
        timeout: DEPLOY_TIMEOUT,
        deployed_by: deployed_by.to_string(),
    }
}

/// Phase `code_rollback`: the target release found (`--rollback-to`, or the tag before the
/// deployed one), checked out into a clean directory of the drill's, deployed with the
/// deploy command, its marker written.
pub(in crate::drill) async fn rollback(
    ctx: &mut Ctx,
    full: &crate::scope::FullPlan,
    releases: &Releases,
) -> Option<Rollback> {
    let deployed_by = format!("pgdrill drill {}", ctx.plan.drill_id);
    let dest = |release: &Release| {
        releases
            .work
            .join(format!("checkout-{}-rollback", release.tag))
    };
    let to = full.rollback_to.clone();
    let step = async move {
        let target: RollbackTo = to.parse()?;
        deploy_release(releases, &target, None, dest, &deployed_by).await
    };
    ctx.rec.step(PhaseId::CodeRollback, step).await
}

/// Phase `code_rollback` of `pgdrill rollback`: the confirmed release checked out clean and
/// deployed on the team's own deployment, the same steps as a full drill's; a tag that no
/// longer points at the commit confirmed is refused before anything is deployed.
pub(in crate::drill) async fn release_rollback(
    ctx: &mut Ctx,
    plan: &RollbackPlan,
) -> Option<Rollback> {
    let releases = Releases {
        repo: plan.code_repo.clone(),
        command: plan.deploy.clone(),
        deploy_dir: plan.deploy_dir.clone(),
        // The deploy log is evidence: it goes beside the report.
        work: ctx.plan.out_dir.clone(),
    };
    let deployed_by = format!(
        "pgdrill rollback {} ({})",
        ctx.plan.drill_id,
        ctx.plan.record.operator.clone().unwrap_or_else(|| {
            let who = crate::repo::audit::Who::current();
            format!("{}@{}", who.user, who.host)
        })
    );
    let target = RollbackTo::Tag(plan.target.tag.clone());
    let checkout = plan.checkout.clone();
    let step = async move {
        deploy_release(
            &releases,
            &target,
            Some(&plan.target),
            |_| checkout,
            &deployed_by,
        )
        .await
    };
    ctx.rec.step(PhaseId::CodeRollback, step).await
}

/// The strategy's steps 1 to 3: the target resolved among the tags, checked out into
/// `dest(release)`, deployed, the marker written; `expected` is the release confirmed, when
/// one was.
async fn deploy_release(
    releases: &Releases,
    target: &RollbackTo,
    expected: Option<&Release>,
    dest: impl FnOnce(&Release) -> PathBuf,
    deployed_by: &str,
) -> Result<(Rollback, String), StepFail> {
    let repo = ReleaseRepo::open(&releases.repo).await?;
    let from = repo
        .deployed(Some(&releases.deploy_dir))
        .await
        .ok()
        .map(|d| d.release);
    let release = repo.resolve(target, Some(&releases.deploy_dir)).await?;
    if let Some(expected) = expected.filter(|e| e.commit != release.commit) {
        return Err(code::CodeError::TagMoved {
            tag: release.tag.clone(),
            expected: expected.commit.clone(),
            found: release.commit.clone(),
        }
        .into());
    }
    let wt = repo.checkout(&release, &dest(&release)).await?;
    let d = code::deploy(&wt, &spec(releases, deployed_by)).await?;
    let detail = format!(
        "{} → {} ({}): checked out clean into {}, deployed by `{}` in {} ms, marker {}",
        from.as_ref()
            .map(|f| format!("{} ({})", f.tag, f.short_commit()))
            .unwrap_or_else(|| "nothing deployed".into()),
        release.tag,
        release.short_commit(),
        wt.path.display(),
        releases.command,
        d.duration.as_millis(),
        d.marker_path.display()
    );
    Ok((
        Rollback {
            repository: releases.repo.display().to_string(),
            from: from.as_ref().map(release_ref),
            to: release_ref(&release),
            marker: d.marker_path.display().to_string(),
            deploy_ms: d.duration.as_millis() as u64,
            reported: None,
            deploy_command: Some(releases.command.clone()),
            deploy_dir: Some(releases.deploy_dir.display().to_string()),
            checkout: Some(wt.path.display().to_string()),
        },
        detail,
    ))
}

/// Phase `app_version`: the restarted application reports the release rolled back to (its
/// version endpoint, or the deployment marker when it has none).
pub(in crate::drill) async fn check_version(
    ctx: &mut Ctx,
    rollback: &mut Rollback,
    deploy_dir: &Path,
) -> Option<()> {
    let app: Option<&AppProcess> = ctx.owned.app.as_ref();
    let has_endpoint = ctx
        .plan
        .app
        .as_ref()
        .is_some_and(|a| a.is_sample() || a.spec.version_url().is_some());
    let reported = match (app, has_endpoint) {
        (Some(app), true) => app
            .version()
            .await
            .map(|v| ReportedVersion::from(&v))
            .map_err(|e| e.to_string()),
        _ => ReportedVersion::from_marker(deploy_dir).map_err(|e| e.to_string()),
    };
    judge_version(ctx, rollback, reported).await
}

/// Phase `app_version` of `pgdrill rollback`: the version endpoint (`--version-url`), or
/// else the deployment marker, must report the release rolled back to. The endpoint is asked
/// again while it does not answer (the application may still be starting); its first answer
/// is judged.
pub(in crate::drill) async fn release_version(
    ctx: &mut Ctx,
    plan: &RollbackPlan,
    rollback: &mut Rollback,
) -> Option<()> {
    let reported = match &plan.version_url {
        Some(url) => read_version_url(url).await,
        None => ReportedVersion::from_marker(&plan.deploy_dir).map_err(|e| e.to_string()),
    };
    judge_version(ctx, rollback, reported).await
}

/// How long the version endpoint may refuse connections (or answer other than 200) before
/// the rollback's version check fails.
const VERSION_WAIT: Duration = Duration::from_secs(60);

/// The version endpoint's first JSON answer, asked until [`VERSION_WAIT`].
async fn read_version_url(url: &str) -> Result<ReportedVersion, String> {
    let deadline = std::time::Instant::now() + VERSION_WAIT;
    loop {
        let last = match crate::app::http_get(url, Duration::from_secs(5)).await {
            Ok(r) if r.status == 200 => {
                return serde_json::from_str::<serde_json::Value>(&r.body)
                    .map(|body| ReportedVersion::from_json(format!("GET {url}"), &body))
                    .map_err(|e| format!("GET {url} answered HTTP 200 but not JSON ({e})"));
            }
            Ok(r) => format!("GET {url} answered HTTP {}", r.status),
            Err(e) => e.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "{last} (asked for {})",
                humantime::format_duration(VERSION_WAIT)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `app_version` step: `reported` against the release rolled back to, kept in the
/// report's rollback section when it matches.
async fn judge_version(
    ctx: &mut Ctx,
    rollback: &mut Rollback,
    reported: Result<ReportedVersion, String>,
) -> Option<()> {
    let expected = Release {
        tag: rollback.to.tag.clone(),
        commit: rollback.to.commit.clone(),
    };
    let result = ctx
        .rec
        .step(PhaseId::AppVersion, async {
            let reported = reported.map_err(|e| {
                StepFail::restore_failed(format!("cannot read the application's version: {e}"))
            })?;
            code::verify_version(&expected, &reported)?;
            let detail = format!(
                "{} reports {} at {}",
                reported.source,
                reported.release.as_deref().unwrap_or("-"),
                reported.commit.as_deref().unwrap_or("-")
            );
            Ok((reported, detail))
        })
        .await;
    if let Some(r) = result {
        rollback.reported = Some(ReportedRelease {
            source: r.source,
            release: r.release,
            commit: r.commit,
            deployed_at: r.deployed_at,
        });
        return Some(());
    }
    None
}

/// Phase `app_healthy` of `pgdrill rollback`: every `--app-health-url` answers healthy
/// within the budget; skipped, saying so, without one (a pass would claim a health nobody
/// asked about).
pub(in crate::drill) async fn release_healthy(ctx: &mut Ctx) {
    let Some(app) = ctx.plan.rollback.as_ref().and_then(|r| r.health.clone()) else {
        ctx.rec.skip(PhaseId::AppHealthy, SkipReason::NoHealthUrl);
        return;
    };
    let within = ctx.plan.budgets.app_restart;
    ctx.rec
        .step(PhaseId::AppHealthy, async {
            let reports = app
                .wait_healthy(within)
                .await
                .map_err(|e| StepFail::checklist(format!("{}: {e}", CheckItem::AppHealth)))?;
            let seen: Vec<String> = reports
                .iter()
                .map(|r| format!("{} → {}", r.url, r.summary()))
                .collect();
            Ok(((), seen.join("; ")))
        })
        .await;
}

fn release_ref(r: &Release) -> ReleaseRef {
    ReleaseRef {
        tag: r.tag.clone(),
        commit: r.commit.clone(),
    }
}
