//! `pgdrill config backup|restore`: flags, output, and the one audit call site.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::{self, BackupRequest, Kind, Pick, RestoreRequest};
use crate::error::{Error, Exit};
use crate::repo::audit::{self, Action};

/// Flags of `pgdrill config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Backup or restore.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The config subcommands.
// Parsed once per process: the size of the restore's flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Back up configuration files into one age-encrypted archive in <repo>/config/.
    Backup(BackupArgs),
    /// Restore a config backup after checking it whole: into a new directory, or (a dry run
    /// without --confirm BACKUP) into the application's live directory, stopping and starting
    /// the application around it.
    Restore(RestoreArgs),
}

/// `--repo DIR` of the config subcommands.
#[derive(Debug, Args)]
pub struct RepoDir {
    /// The backup repository.
    #[arg(
        long = "repo",
        id = "repo",
        value_name = "DIR",
        env = "PGDRILL_REPO",
        default_value = "/backups"
    )]
    pub dir: PathBuf,
}

/// Flags of `pgdrill config backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup repository.
    #[command(flatten)]
    pub repo: RepoDir,
    /// A file to back up (repeatable): a .env, an API key file, a WireGuard/VPN config.
    #[arg(long, value_name = "PATH", required = true)]
    pub file: Vec<PathBuf>,
    /// An age X25519 public key to encrypt to (repeatable).
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    pub recipient: Vec<String>,
    /// Why the backup was taken.
    #[arg(long, value_enum, default_value_t = Kind::Scheduled)]
    pub kind: Kind,
    /// A note for the manifest, e.g. the deployment it precedes.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Write the archive unencrypted (the manifest says so).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Test hook: the backup's time instead of now (RFC 3339).
    #[arg(long, hide = true, value_name = "TIME", value_parser = crate::duration::parse_time)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

/// Flags of `pgdrill config restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup repository.
    #[command(flatten)]
    pub repo: RepoDir,
    /// The backup to restore, e.g. config_20261202_060000 (default: the newest).
    #[arg(long, value_name = "NAME", conflicts_with = "at")]
    pub backup: Option<String>,
    /// Restore the newest backup taken at or before this moment (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = crate::duration::parse_time)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// The age identity file (as written by age-keygen).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The directory to restore into: a new or empty one, or the application's live
    /// configuration directory (then a dry run without --confirm).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// A key that must be present and non-empty (repeatable): NAME of a .env, Section.Key or
    /// Key of a VPN config, or the file name of an API key file.
    #[arg(long, value_name = "KEY")]
    pub require: Vec<String>,
    /// The team's application: stopped before the files change, started after, its health asked.
    #[command(flatten)]
    pub app: super::AppArgs,
    /// Run it: the backup's name, typed (the dry run prints it). Without it, a --to that has
    /// files, or a named application, gets a dry run that changes nothing.
    #[arg(long, value_name = "BACKUP")]
    pub confirm: Option<String>,
    /// Print the dry run's plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the report goes (default reports/<id>/), with --confirm.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The config_restore budget: the files decrypted, checked and put in place.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = crate::plan::parse_duration)]
    pub budget_config: std::time::Duration,
    /// The app_restart budget: stop, start, healthy.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = crate::plan::parse_duration)]
    pub budget_app: std::time::Duration,
    /// The whole configuration restore.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = crate::plan::parse_duration)]
    pub budget_total: std::time::Duration,
    /// Who runs the restore (default $USER@host).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// The incident or change ticket.
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// Why the restore is run.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// What a config command did, for the audit log: action, object, result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What was done.
    pub action: Action,
    /// The archive file, when one was chosen or written.
    pub file: Option<String>,
    /// Its SHA-256.
    pub sha256: Option<String>,
    /// `ok`, or the error's text (which never holds a value).
    pub result: Result<(), String>,
}

/// The one audit call site of the config commands: "document all restore operations" holds
/// for configuration too, so a config command whose event cannot be written fails.
fn record(repo: &std::path::Path, outcome: &Outcome) -> Result<(), Error> {
    let object = audit::Object {
        file: outcome.file.clone(),
        sha256: outcome.sha256.clone(),
        ..Default::default()
    };
    let (result, detail) = match &outcome.result {
        Ok(()) => (audit::Outcome::Ok, None),
        Err(e) => (audit::Outcome::Failed, Some(e.clone())),
    };
    audit::append(repo, outcome.action, object, result, detail)?;
    Ok(())
}

/// Runs `pgdrill config …` and prints its result.
pub async fn run(args: ConfigArgs) -> Result<Exit, Error> {
    match args.command {
        ConfigCommand::Backup(a) => {
            let req = BackupRequest {
                repo: a.repo.dir.clone(),
                files: a.file,
                recipients: a.recipient,
                kind: a.kind,
                reason: a.reason,
                insecure_plaintext: a.insecure_plaintext,
                now: a.now.unwrap_or_else(chrono::Utc::now),
            };
            let res = config::backup(&req);
            let recorded = record(
                &a.repo.dir,
                &Outcome {
                    action: Action::ConfigBackup,
                    file: res.as_ref().ok().map(|b| b.archive.display().to_string()),
                    sha256: res.as_ref().ok().map(|b| b.manifest.sha256.clone()),
                    result: res.as_ref().map(|_| ()).map_err(|e| e.to_string()),
                },
            );
            let b = res?;
            recorded?;
            let m = &b.manifest;
            println!(
                "config backup {}: {} file(s), {}",
                b.name,
                m.files.len(),
                if m.encrypted {
                    format!("encrypted to {} recipient(s)", m.recipients.len())
                } else {
                    "NOT encrypted (--insecure-plaintext)".into()
                }
            );
            println!("  archive:  {} (sha256 {})", b.archive.display(), m.sha256);
            println!("  manifest: {}", b.manifest_path.display());
            for f in &m.files {
                println!(
                    "  {} ({}, mode {}): keys {}",
                    f.name,
                    format!("{:?}", f.format).to_lowercase(),
                    f.mode,
                    f.keys.join(", ")
                );
            }
            Ok(Exit::Pass)
        }
        ConfigCommand::Restore(a) => restore(a).await,
    }
}

/// Whether `dir` holds anything: then it is a live directory, never written without
/// --confirm.
fn has_files(dir: &std::path::Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => rd.next().is_some(),
        Err(_) => dir.exists(),
    }
}

/// `pgdrill config restore`: into a new directory (today's restore), a dry run of the
/// restore into a live directory, or, confirmed, that restore as a scenario of the drill.
async fn restore(a: RestoreArgs) -> Result<Exit, Error> {
    let req = RestoreRequest {
        repo: a.repo.dir.clone(),
        pick: match (a.backup.clone(), a.at) {
            (Some(n), _) => Pick::Name(n),
            (None, Some(t)) => Pick::At(t),
            (None, None) => Pick::Newest,
        },
        identity: a.identity.clone(),
        to: a.to.clone(),
        require: a.require.clone(),
    };
    let live = has_files(&a.to) || a.app.options().given();
    if a.confirm.is_none() && !live {
        if a.json {
            return Err(Error::Usage(
                "--json prints the dry run of a restore into a live directory; --to is new or empty, so the restore writes it directly".into(),
            ));
        }
        return into_new_dir(&a.repo.dir, req);
    }
    let now = chrono::Utc::now();
    // Read only: which backup the flags name, so that the plan and --confirm are about it.
    let name = config::pick_name(&a.repo.dir, &req.pick)?;
    let options = crate::options::ConfigRestoreOptions {
        request: req,
        backup: name.clone(),
        app: a.app.options(),
        budgets: crate::plan::Budgets {
            config_restore: a.budget_config,
            app_restart: a.budget_app,
            total: a.budget_total,
            ..crate::plan::Budgets::default()
        },
        out: a.out.clone(),
        record: crate::plan::RecordPlan {
            operator: a.operator.clone(),
            ticket: a.ticket.clone(),
            purpose: a.reason.clone(),
            ..crate::plan::RecordPlan::default()
        },
        reason: a.reason.clone(),
    };
    let Some(confirm) = &a.confirm else {
        let plan = options.prepare(now)?;
        let preview =
            tokio::task::spawn_blocking(move || crate::drill::preview::config_preview(&plan))
                .await
                .map_err(|e| Error::Usage(format!("the dry run did not finish: {e}")))?;
        super::print_dry_run(&preview, a.json, || render(&preview));
        return Ok(super::dry_run_exit(preview.can_run));
    };
    super::no_json_when_confirmed(a.json)?;
    if *confirm != name {
        return Err(Error::Usage(format!(
            "--confirm {confirm:?} is not the name of the backup this restore would put into {} ({name:?}); nothing was done. Run the dry run (leave out --confirm), check the backup, and type its name: --confirm {name}",
            a.to.display()
        )));
    }
    let plan = options.prepare(now)?;
    confirmed(plan, &a.repo.dir).await
}

/// Today's restore: checked whole, then written into a new (or empty) directory.
fn into_new_dir(repo: &std::path::Path, req: RestoreRequest) -> Result<Exit, Error> {
    let res = config::restore(&req);
    let recorded = record(
        repo,
        &Outcome {
            action: Action::ConfigRestore,
            file: res.as_ref().ok().map(|r| r.backup.clone()),
            sha256: res.as_ref().ok().map(|r| r.sha256.clone()),
            result: res.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        },
    );
    let r = res?;
    recorded?;
    println!(
        "config restore {}: {} file(s) into {}",
        r.backup,
        r.files.len(),
        r.to.display()
    );
    for c in &r.checks {
        println!("  ok: {c}");
    }
    Ok(Exit::Pass)
}

/// The confirmed configuration restore: recorded in the repo's audit log before and after,
/// run as the drill kernel's scenario (SIGINT/SIGTERM: the application started again, exit
/// 3), reported and sealed like a drill.
async fn confirmed(plan: crate::plan::Plan, repo: &std::path::Path) -> Result<Exit, Error> {
    let Some(c) = plan.config_restore.clone() else {
        return Err(Error::Usage("not a configuration restore".into()));
    };
    let target = c.request.to.display().to_string();
    let archive = match &plan.source {
        crate::plan::Source::BackupFile(p) => Some(p.display().to_string()),
        _ => None,
    };
    let log = audit::Log::Repo(repo.to_path_buf());
    log.append(
        Action::ConfigRestoreStarted,
        audit::Object {
            file: archive.clone(),
            ..Default::default()
        },
        audit::Outcome::Ok,
        Some(format!(
            "configuration restore of {} into {target} confirmed; reason: {}",
            c.backup,
            c.reason.as_deref().unwrap_or("(none given)")
        )),
    )?;
    let (report, out_dir) = super::run_sealed(plan).await?;
    let info = report.config_restore.as_ref();
    crate::regime::record_finished(
        &log,
        Action::ConfigRestoreFinished,
        audit::Object {
            file: archive,
            sha256: info.and_then(|i| i.archive_sha256.clone()),
            ..Default::default()
        },
        &report,
        &out_dir,
        None,
    )?;
    print!("{}", report.summary());
    if let Some(i) = info {
        if i.restored {
            println!("  the configuration was restored into {}", i.target);
        } else {
            println!("  nothing in {} was changed", i.target);
        }
        if let Some(p) = &i.previous {
            println!("  the previous files are kept in {p}");
        }
    }
    println!("  report: {}", out_dir.join("report.md").display());
    // A backup that failed its check before the application was stopped changed nothing:
    // the restore could not run (as a restore whose backup fails its precheck).
    let untouched = report.failure.as_ref().is_some_and(|f| {
        f.phase == crate::report::FailedAt::Phase(crate::report::PhaseId::Precheck)
    });
    if untouched {
        return Ok(Exit::Environment);
    }
    Ok(super::exit_of(report.verdict))
}

/// The dry run for a person.
fn render(p: &crate::drill::preview::ConfigPreview) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "pgdrill config restore: DRY RUN, nothing was changed\n");
    let _ = writeln!(
        s,
        "backup    {}{}",
        p.backup,
        p.created_at
            .as_deref()
            .map(|t| format!(" (taken {t})"))
            .unwrap_or_default()
    );
    if let (Some(a), Some(sha)) = (&p.archive, &p.sha256) {
        let _ = writeln!(s, "          {a} (sha256 {sha})");
    }
    for c in &p.checks {
        let _ = writeln!(s, "          ok: {c}");
    }
    let _ = writeln!(s, "target    {}", p.target);
    let _ = writeln!(s, "\nfiles:");
    for f in &p.files {
        let what = match f.kind {
            crate::config::replace::ChangeKind::Changed => {
                "would be replaced (the previous file kept)"
            }
            crate::config::replace::ChangeKind::Added => "would be added",
            crate::config::replace::ChangeKind::Unchanged => "unchanged: left as it is",
            crate::config::replace::ChangeKind::Kept => "not in the backup: left as it is",
        };
        let _ = writeln!(
            s,
            "  {:<9} {:<20} {}{}  {what}",
            f.kind.as_str(),
            f.name,
            f.mode
                .as_deref()
                .map(|m| format!("mode {m} "))
                .unwrap_or_default(),
            f.sha256
                .as_deref()
                .map(|h| format!("sha256 {h}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, "  previous files kept in {}", p.previous);
    let _ = writeln!(s, "\nsteps:");
    for (i, step) in p.steps.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>2}. {:<15} {:<17} {}",
            i + 1,
            step.phase.name(),
            step.budget.unwrap_or("-"),
            step.does
        );
    }
    match &p.refused {
        Some(why) => {
            let _ = writeln!(s, "\nCANNOT RUN: {why}");
        }
        None => {
            let _ = writeln!(s, "\nTo run it, give the same command with {}", p.confirm);
        }
    }
    s
}
