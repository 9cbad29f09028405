//! The application's code in a full drill: the bad release deployed as part of the disaster
//! (for the sample app), `code_rollback` (the strategy's "Application Code Rollback": find the
//! target tag, check it out clean, deploy it, record the marker) and, once the application
//! runs again, `app_version` (it reports the target tag and its commit).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::AppProcess;
use crate::code::{
    self, DeploySpec, Release, ReleaseRepo, ReportedVersion, RollbackTo, SAMPLE_DEPLOY_COMMAND,
};
use crate::drill::{Ctx, PhaseId, StepFail};
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
    let to = full.rollback_to.clone();
    let deployed_by = format!("pgdrill drill {}", ctx.plan.drill_id);
    ctx.rec
        .step(PhaseId::CodeRollback, async move {
            let target: RollbackTo = to.parse()?;
            let repo = ReleaseRepo::open(&releases.repo).await?;
            let from = repo
                .deployed(Some(&releases.deploy_dir))
                .await
                .ok()
                .map(|d| d.release);
            let release = repo.resolve(&target, Some(&releases.deploy_dir)).await?;
            let dest = releases
                .work
                .join(format!("checkout-{}-rollback", release.tag));
            let wt = repo.checkout(&release, &dest).await?;
            let d = code::deploy(&wt, &spec(releases, &deployed_by)).await?;
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
                },
                detail,
            ))
        })
        .await
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

fn release_ref(r: &Release) -> ReleaseRef {
    ReleaseRef {
        tag: r.tag.clone(),
        commit: r.commit.clone(),
    }
}
