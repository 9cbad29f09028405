//! `pgdrill restore`: the drilled restore, for real, onto a server the user names. Without
//! `--confirm` it is a dry run that prints the plan; with `--confirm DBNAME` (the live
//! database's own name) it runs the strategy's steps as phases, timed against the RTO, and
//! leaves the same report, evidence and audit events as a drill.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::drill::preview::Preview;
use crate::error::{Error, Exit};
use crate::options::RestoreOptions;
use crate::plan::parse_duration;
use crate::repo::audit::{self, Action, Object, Outcome};
use crate::report::{PhaseId, Verdict};

/// `pgdrill restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The server and the live database the restore replaces
    /// (postgresql://user:password@host:5432/DBNAME); a role that can create databases and
    /// owns the live one (or a superuser).
    #[arg(long, value_name = "URL")]
    target_dsn: String,
    /// The pg_dump -Fc archive to restore (its manifest and globals beside it are used).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "repo",
        conflicts_with = "repo"
    )]
    backup_file: Option<PathBuf>,
    /// Restore the repository's newest backup (or the newest at or before --at).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Only `newest` (the default): the backup a restore tonight would use.
    #[arg(long, value_enum, default_value_t = NewestOnly::Newest, requires = "repo")]
    pick: NewestOnly,
    /// With --repo: the newest backup taken at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME", requires = "repo", value_parser = parse_time)]
    at: Option<chrono::DateTime<chrono::Utc>>,
    /// The team's application: stopped before the restore, started after it, judged.
    #[command(flatten)]
    app: super::AppArgs,
    /// Where to send the outcome.
    #[command(flatten)]
    notify: super::NotifyArgs,
    /// With --confirm: also write (atomically) a Prometheus textfile of the restore
    /// (`pgdrill_restore_*`: when it ran, its verdict, each budget's used and limit seconds).
    #[arg(long, value_name = "FILE")]
    prom: Option<PathBuf>,
    /// How long the checklist watches the started application.
    #[arg(long, value_name = "DUR", default_value = "3s", value_parser = parse_duration)]
    observe: Duration,
    /// The strategy's literal steps (dropdb, createdb, pg_restore) for a server without room
    /// for a side copy; the live database is dumped first.
    #[arg(long)]
    in_place: bool,
    /// Keep the replaced database as <db>__pgdrill_before_<time> (the default).
    #[arg(long, conflicts_with = "drop_previous")]
    keep_previous: bool,
    /// Drop the replaced database once the application is healthy.
    #[arg(long)]
    drop_previous: bool,
    /// With --in-place: where the dump of the live database goes (default: the repo's
    /// safety/ directory).
    #[arg(long, value_name = "PATH")]
    safety_dump: Option<PathBuf>,
    /// With --in-place: drop the live database without a dump of it first.
    #[arg(long)]
    no_safety_dump: bool,
    /// Run it: the live database's name, typed. Without it, a dry run that changes nothing.
    #[arg(long, value_name = "DBNAME")]
    confirm: Option<String>,
    /// Print the dry run's plan as JSON.
    #[arg(long)]
    json: bool,
    /// Where the report goes (default reports/<id>/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// pg_restore's parallel jobs (default: the number of cores).
    #[arg(long, value_name = "N")]
    jobs: Option<u32>,
    /// Roles to create when missing, instead of the globals file beside the backup.
    #[arg(long, value_name = "FILE")]
    globals: Option<PathBuf>,
    /// The database_restore budget.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    budget_restore: Duration,
    /// The app_restart budget.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    budget_app: Duration,
    /// The verification budget.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    budget_verify: Duration,
    /// The total RTO.
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = parse_duration)]
    budget_total: Duration,
    /// Who runs the restore (default $USER@host).
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    /// The incident or change ticket.
    #[arg(long, value_name = "ID")]
    ticket: Option<String>,
    /// Why the restore is run.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// An emergency contact (repeatable), e.g. "Database Admin=Jane Doe, +1 555 0100": in
    /// the plan, in every failure message and in the report.
    #[arg(long = "contact", value_name = "ROLE=REACH", value_parser = crate::contacts::Contact::parse)]
    contacts: Vec<crate::contacts::Contact>,
    /// With --backup-file: the audit log to record the restore in (with --repo, the repo's).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// SQL run on the restored database before verification, to prove it catches damage.
    #[arg(long, value_name = "SQL", help_heading = "Testing the tester")]
    tamper_sql: Option<String>,
}

/// The only pick a real restore takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NewestOnly {
    /// The newest backup.
    Newest,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::duration::parse_time(s).map_err(|e| e.to_string())
}

impl RestoreArgs {
    fn options(&self) -> RestoreOptions {
        RestoreOptions {
            target_dsn: self.target_dsn.clone(),
            backup_file: self.backup_file.clone(),
            repo: self.repo.clone(),
            at: self.at,
            app: self.app.options(),
            observe: Some(self.observe),
            in_place: self.in_place,
            drop_previous: self.drop_previous,
            safety_dump: self.safety_dump.clone(),
            no_safety_dump: self.no_safety_dump,
            jobs: self.jobs,
            budgets: Some(crate::plan::Budgets {
                database_restore: self.budget_restore,
                app_restart: self.budget_app,
                verification: self.budget_verify,
                total: self.budget_total,
                ..crate::plan::Budgets::default()
            }),
            out: self.out.clone(),
            globals: self.globals.clone(),
            record: crate::plan::RecordPlan {
                operator: self.operator.clone(),
                ticket: self.ticket.clone(),
                purpose: self.reason.clone(),
                contacts: self.contacts.clone(),
                ..crate::plan::RecordPlan::default()
            },
            reason: self.reason.clone(),
            tamper_sql: self.tamper_sql.clone(),
        }
    }
}

/// `pgdrill restore`: the dry run (exit 0 when it can run, 3 when it cannot), or, confirmed,
/// the restore (0 pass, 1 fail, 3 when it stopped before changing anything).
pub async fn run(args: RestoreArgs) -> Result<Exit, Error> {
    let now = chrono::Utc::now();
    let plan = args.options().prepare(now)?;
    let Some(confirm) = &args.confirm else {
        let preview = crate::drill::preview::preview(&plan, now).await;
        super::print_dry_run(&preview, args.json, || render(&preview, &args));
        return Ok(super::dry_run_exit(preview.can_run));
    };
    super::no_json_when_confirmed(args.json)?;
    let notifier = args.notify.notifier(false)?;
    confirmed(
        plan,
        confirm,
        args.audit_log.as_deref(),
        args.reason.as_deref(),
        notifier.as_ref(),
        args.prom.as_deref(),
    )
    .await
}

/// The confirmed restore of `plan`: `confirm` must be the live database's name (else exit 2,
/// nothing done); recorded in the repository's audit log (or `audit_log`), reported, sealed.
pub(super) async fn confirmed(
    plan: crate::plan::Plan,
    confirm: &str,
    audit_log: Option<&std::path::Path>,
    reason: Option<&str>,
    notifier: Option<&crate::notify::Notifier>,
    prom: Option<&std::path::Path>,
) -> Result<Exit, Error> {
    let db = plan
        .restore
        .as_ref()
        .map(|r| r.target.dbname.clone())
        .unwrap_or_default();
    if confirm != db {
        return Err(Error::Usage(format!(
            "--confirm {confirm:?} is not the name of the database this restore replaces ({db:?}); nothing was done. Type the database's name exactly: --confirm {db}"
        )));
    }
    let audit_log = match (&plan.repo, audit_log) {
        (Some(r), _) => Some(audit::Log::Repo(r.dir.clone())),
        (None, Some(f)) => Some(audit::Log::File(f.to_path_buf())),
        (None, None) => None,
    };
    let target = plan
        .restore
        .as_ref()
        .map(|r| r.target.display())
        .unwrap_or_default();
    if let Some(log) = &audit_log {
        log.append(
            Action::RestoreStarted,
            Object::default(),
            Outcome::Ok,
            Some(format!(
                "restore of {db} on {target} confirmed; reason: {}",
                reason.unwrap_or("(none given)")
            )),
        )?;
    }
    let (report, out_dir) =
        super::run_sealed_notifying(plan, notifier.map(|n| ("restore", n))).await?;
    if let Some(path) = prom {
        let text = crate::report::prom::restore_textfile(&report, chrono::Utc::now());
        crate::digest::write_atomic(path, text.as_bytes()).map_err(|source| Error::Output {
            path: path.to_path_buf(),
            source,
        })?;
    }
    if let Some(log) = &audit_log {
        crate::regime::record_finished(
            log,
            Action::RestoreFinished,
            Object {
                file: report.backup.as_ref().map(|b| b.file.clone()),
                sha256: report.backup.as_ref().map(|b| b.sha256.clone()),
                ..Object::default()
            },
            &report,
            &out_dir,
            None,
        )?;
    }
    print!("{}", report.summary());
    if let Some(r) = &report.restore {
        if let (Some(prev), false) = (&r.previous, r.previous_dropped) {
            println!("  the replaced database is kept as {prev}");
        }
    }
    println!("  report: {}", out_dir.join("report.md").display());
    // A restore that stopped before it changed anything is not a verdict on the backup
    // restored: the server refused, or the backup failed its precheck.
    let untouched = report.failure.as_ref().is_some_and(|f| {
        matches!(
            f.phase,
            crate::report::FailedAt::Phase(PhaseId::ConnectTarget)
                | crate::report::FailedAt::Phase(PhaseId::PickBackup)
                | crate::report::FailedAt::Phase(PhaseId::Precheck)
        )
    });
    if report.verdict == Verdict::Fail && untouched {
        eprintln!("pgdrill: the restore stopped before it changed anything on {target}");
        return Ok(Exit::Environment);
    }
    Ok(super::exit_of(report.verdict))
}

/// The dry run for a person.
fn render(p: &Preview, args: &RestoreArgs) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "pgdrill restore: DRY RUN, nothing was changed\n");
    match &p.target {
        Some(t) => {
            let _ = writeln!(
                s,
                "target    {} (PostgreSQL {}, {})",
                t.server,
                t.server_version,
                if t.standby { "STANDBY" } else { "primary" }
            );
            let _ = writeln!(
                s,
                "          role {}: {}",
                t.user,
                if t.superuser {
                    "superuser"
                } else if t.createdb {
                    "CREATEDB"
                } else {
                    "cannot create databases"
                }
            );
            if t.exists {
                let _ = writeln!(
                    s,
                    "          database {}: {} bytes, owner {}, {} session(s) connected{}",
                    t.database,
                    t.size_bytes.unwrap_or(0),
                    t.owner.as_deref().unwrap_or("?"),
                    t.sessions.len(),
                    if t.sessions.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ": {}",
                            t.sessions
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
            } else {
                let _ = writeln!(
                    s,
                    "          database {}: does not exist; the restore creates it",
                    t.database
                );
            }
        }
        None => {
            let _ = writeln!(s, "target    not reachable");
        }
    }
    if let Some(b) = &p.backup {
        let _ = writeln!(s, "backup    {} ({} bytes)", b.file, b.size_bytes);
        if let Some(c) = &b.chosen {
            let _ = writeln!(s, "          {c}");
        }
        match &b.manifest {
            Some(m) => {
                let _ = writeln!(
                    s,
                    "          taken {} ({} ago) of database {}, pg_dump {}",
                    b.created_at.as_deref().unwrap_or("?"),
                    b.age.as_deref().unwrap_or("?"),
                    b.database.as_deref().unwrap_or("?"),
                    b.pg_dump_version.as_deref().unwrap_or("?")
                );
                let _ = writeln!(
                    s,
                    "          sha256 {} (manifest {m})",
                    b.sha256.as_deref().unwrap_or("?")
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "          no manifest: verified by its own consistency checks only"
                );
            }
        }
    }
    if let Some(c) = &p.precheck {
        let _ = writeln!(
            s,
            "precheck  {}: {}",
            if c.passed { "pass" } else { "FAIL" },
            c.detail
        );
    }
    let _ = writeln!(s, "\nsteps ({:?} restore):", p.mode);
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
    super::write_contacts(&mut s, &p.contacts, &p.warnings, "Database Admin");
    match &p.refused {
        Some(why) => {
            let _ = writeln!(s, "\nCANNOT RUN: {why}");
        }
        None => {
            let _ = writeln!(
                s,
                "\nTo run it, give the same command with {}{}",
                p.confirm,
                if args.in_place { " --in-place" } else { "" }
            );
        }
    }
    s
}
