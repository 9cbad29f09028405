//! `pgdrill rollback`: the full drill's code rollback, for real, on the team's own
//! deployment. Without `--confirm` it is a dry run that lists the tags and prints the plan;
//! with `--confirm TAG` (the release it rolls back to, typed) it checks the release out
//! clean, deploys it, verifies the version and the health as phases timed against budgets,
//! and leaves the same report, evidence and audit events as a restore.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::drill::preview::RollbackPreview;
use crate::error::{Error, Exit};
use crate::options::RollbackOptions;
use crate::plan::parse_duration;
use crate::repo::audit::{self, Action, Object, Outcome};

/// `pgdrill rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The application's git repository (its top level); read, never written.
    #[arg(long, value_name = "PATH")]
    code_repo: PathBuf,
    /// The shell command that deploys a checked-out release (sh -c, in the checkout;
    /// PGDRILL_RELEASE_WORKTREE, PGDRILL_RELEASE_TAG, PGDRILL_RELEASE_COMMIT and
    /// PGDRILL_DEPLOY_DIR are set).
    #[arg(long, value_name = "CMD")]
    deploy: String,
    /// Where the release is deployed: the deployment marker there says what runs now, and is
    /// rewritten after the deploy.
    #[arg(long, value_name = "DIR")]
    deploy_dir: PathBuf,
    /// The release to roll back to: a tag, or `previous` (the tag before the deployed one).
    #[arg(long, value_name = "TAG|previous", default_value = "previous")]
    to: String,
    /// The application's version endpoint (JSON with release/tag and commit/sha); without
    /// it, the deployment marker is what reports the version.
    #[arg(long, value_name = "URL")]
    version_url: Option<String>,
    /// The application's health endpoint (repeatable): each must answer healthy after the
    /// deploy.
    #[arg(long, value_name = "URL")]
    app_health_url: Vec<String>,
    /// The JSON `status` value that means healthy (any other body: HTTP 200).
    #[arg(long, value_name = "STATUS")]
    app_healthy_status: Option<String>,
    /// How the health answers are read: auto, ietf, spring, aspnet, plain, or
    /// json-path=EXPR (see the user guide's health formats).
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = super::parse_health_format)]
    app_health_format: crate::app::HealthFormat,
    /// Where the release is checked out (absent or empty; default: checkout-TAG in --out).
    #[arg(long, value_name = "DIR")]
    checkout_dir: Option<PathBuf>,
    /// Run it: the tag it rolls back to, typed. Without it, a dry run that changes nothing.
    #[arg(long, value_name = "TAG")]
    confirm: Option<String>,
    /// Print the dry run's plan as JSON.
    #[arg(long)]
    json: bool,
    /// Where the report goes (default reports/<id>/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The code_rollback budget: checkout, deploy and the version check.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    budget_code: Duration,
    /// The app_restart budget: the health checks after the deploy.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    budget_app: Duration,
    /// The whole rollback.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    budget_total: Duration,
    /// Who runs the rollback (default $USER@host).
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    /// The incident or change ticket.
    #[arg(long, value_name = "ID")]
    ticket: Option<String>,
    /// Why the rollback is run.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// An emergency contact (repeatable), e.g. "DevOps Lead=Jane Doe, +1 555 0100".
    #[arg(long = "contact", value_name = "ROLE=REACH", value_parser = crate::contacts::Contact::parse)]
    contacts: Vec<crate::contacts::Contact>,
    /// The backup repository whose hash-chained audit log records the rollback.
    #[arg(long, value_name = "DIR", conflicts_with = "audit_log")]
    repo: Option<PathBuf>,
    /// The audit log to record the rollback in, without a repository.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
}

impl RollbackArgs {
    fn options(&self) -> RollbackOptions {
        RollbackOptions {
            code_repo: self.code_repo.clone(),
            deploy: self.deploy.clone(),
            deploy_dir: self.deploy_dir.clone(),
            to: self.to.clone(),
            checkout_dir: self.checkout_dir.clone(),
            version_url: self.version_url.clone(),
            app_health_url: self.app_health_url.clone(),
            app_healthy_status: self.app_healthy_status.clone(),
            app_health_format: self.app_health_format.clone(),
            budgets: Some(crate::plan::Budgets {
                code_rollback: self.budget_code,
                app_restart: self.budget_app,
                total: self.budget_total,
                ..crate::plan::Budgets::default()
            }),
            out: self.out.clone(),
            record: crate::plan::RecordPlan {
                operator: self.operator.clone(),
                ticket: self.ticket.clone(),
                purpose: self.reason.clone(),
                contacts: self.contacts.clone(),
                ..crate::plan::RecordPlan::default()
            },
            reason: self.reason.clone(),
        }
    }

    /// The audit log the rollback is recorded in: the repository's, or `--audit-log`.
    fn audit_log(&self) -> Result<Option<audit::Log>, Error> {
        match (&self.repo, &self.audit_log) {
            (Some(dir), _) => {
                let repo = crate::repo::Repo::open(Some(dir.clone()))?;
                Ok(Some(audit::Log::Repo(repo.root().to_path_buf())))
            }
            (None, Some(f)) => Ok(Some(audit::Log::File(f.clone()))),
            (None, None) => Ok(None),
        }
    }
}

/// `pgdrill rollback`: the dry run (exit 0 when it can run, 2 for a tag that does not
/// exist, 3 when it cannot run), or, confirmed, the rollback (0 pass, 1 fail, 2 for a
/// confirmation that is not the target tag, 3 when it could not run or was interrupted).
pub async fn run(args: RollbackArgs) -> Result<Exit, Error> {
    let options = args.options();
    options.check()?;
    if args.confirm.is_some() {
        super::no_json_when_confirmed(args.json)?;
    }
    let audit_log = args.audit_log()?;
    let preview = crate::drill::preview::rollback_preview(&options).await;
    let Some(confirm) = &args.confirm else {
        super::print_dry_run(&preview, args.json, || render(&preview));
        return Ok(match (&preview.refused, preview.bad_input) {
            (None, _) => Exit::Pass,
            (Some(_), true) => Exit::Usage,
            (Some(_), false) => Exit::Environment,
        });
    };
    let (Some(target), None) = (preview.target.clone(), &preview.refused) else {
        let why = preview.refused.clone().unwrap_or_default();
        eprintln!("pgdrill: the rollback cannot run; nothing was done");
        return Err(if preview.bad_input {
            Error::Usage(why)
        } else {
            Error::CannotRun(why)
        });
    };
    if *confirm != target.tag {
        return Err(Error::Usage(format!(
            "--confirm {confirm:?} is not the release this rollback deploys ({}); nothing was done. Type the tag exactly: --confirm {}",
            target.tag, target.tag
        )));
    }
    let plan = options.prepare(chrono::Utc::now(), target.clone())?;
    confirmed(plan, audit_log.as_ref(), &preview, args.reason.as_deref()).await
}

/// The confirmed rollback of `plan`: recorded in the audit log when there is one, run as the
/// drill kernel's scenario, reported and sealed.
async fn confirmed(
    plan: crate::plan::Plan,
    audit_log: Option<&audit::Log>,
    preview: &RollbackPreview,
    reason: Option<&str>,
) -> Result<Exit, Error> {
    let target = preview
        .target
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let from = preview
        .deployed
        .as_ref()
        .map(|d| d.release.to_string())
        .unwrap_or_else(|| "an unknown release".into());
    if let Some(log) = audit_log {
        log.append(
            Action::RollbackStarted,
            Object::default(),
            Outcome::Ok,
            Some(format!(
                "rollback of {} from {from} to {target} confirmed; reason: {}",
                preview.repository,
                reason.unwrap_or("(none given)")
            )),
        )?;
    }
    let (report, out_dir) = super::run_sealed(plan).await?;
    if let Some(log) = audit_log {
        crate::regime::record_finished(
            log,
            Action::RollbackFinished,
            Object::default(),
            &report,
            &out_dir,
            Some(format!("{target} deployed and verified")),
        )?;
    }
    print!("{}", report.summary());
    println!("  report: {}", out_dir.join("report.md").display());
    Ok(super::exit_of(report.verdict))
}

/// The dry run for a person.
fn render(p: &RollbackPreview) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "pgdrill rollback: DRY RUN, nothing was changed\n");
    let _ = writeln!(s, "repository  {}", p.repository);
    if !p.tags.is_empty() {
        let _ = writeln!(s, "tags        {}", p.tags.join(", "));
    }
    match (&p.deployed, &p.deployed_unknown) {
        (Some(d), _) => {
            let from = match &d.from {
                crate::code::DeployedFrom::Marker(m) => format!("the marker {}", m.display()),
                crate::code::DeployedFrom::Head => "the repository's HEAD tag".into(),
            };
            let _ = writeln!(s, "deployed    {} (from {from})", d.release);
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "deployed    unknown: {why}");
        }
        (None, None) => {}
    }
    if let Some(t) = &p.target {
        let _ = writeln!(s, "roll back to {t}");
    }
    let _ = writeln!(s, "deploy      {}", p.deploy_command);
    let _ = writeln!(s, "deploy dir  {}", p.deploy_dir);
    if !p.checkout.is_empty() {
        let _ = writeln!(s, "checkout    {}", p.checkout);
    }
    let _ = writeln!(s, "version     {}", p.version_from);
    if !p.steps.is_empty() {
        let _ = writeln!(s, "\nsteps:");
        for (i, step) in p.steps.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {}. {:<13} {:<13} {}",
                i + 1,
                step.phase.name(),
                step.budget.unwrap_or("-"),
                step.does
            );
        }
    }
    super::write_contacts(&mut s, &p.contacts, &p.warnings, "DevOps Lead");
    match (&p.refused, &p.confirm) {
        (Some(why), _) => {
            let _ = writeln!(s, "\nCANNOT RUN: {why}");
        }
        (None, Some(c)) => {
            let _ = writeln!(s, "\nTo run it, give the same command with {c}");
        }
        (None, None) => {}
    }
    s
}
