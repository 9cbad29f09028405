//! The backup regime's commands on a repo: `backup`, `verify`, `prune`, `audit verify|show`,
//! and the repo side of `drill --repo` (picking the backup, recording the result). Each
//! command appends one event to the repo's audit log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::backup::{self, BackupKind, Labels};
use crate::duration::{parse_duration, parse_time};
use crate::env::{Endpoint, PgTools};
use crate::error::{EnvError, Error, Exit};
use crate::progress::Progress;
use crate::repo::audit::{self, Action, FileRef, Object, Outcome};
use crate::repo::{prune, verify, Repo, RepoError};

/// Flags of `pgdrill backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The database to back up (read-only session); URL or key=value form.
    #[arg(long, value_name = "URL")]
    pub source_dsn: String,
    /// The repository (default `$PGDRILL_REPO`, then /backups).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Why the backup is taken.
    #[arg(long, value_enum, default_value_t = BackupKind::Scheduled)]
    pub kind: BackupKind,
    /// Free text for the manifest and the audit log (e.g. "before deploy 4.2").
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// Flags of `pgdrill verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The repository (default `$PGDRILL_REPO`, then /backups).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Database RPO: oldest allowed age of the newest dump, longest allowed gap.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    pub rpo: Duration,
    /// Config RPO: oldest allowed age of the newest config backup.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub config_rpo: Duration,
    /// The repo holds no configuration backups by design: no `no_backup`/`stale` finding for
    /// config/ (archives there are still checked).
    #[arg(long, conflicts_with = "config_rpo")]
    pub no_config: bool,
    /// How far back gaps and sizes are examined.
    #[arg(long, value_name = "DUR", default_value = "24h", value_parser = parse_duration)]
    pub window: Duration,
    /// Evaluate as of this moment (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Read every file again, even those the audit log records as verified.
    #[arg(long)]
    pub full: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a Prometheus textfile (atomically) for node_exporter.
    #[arg(long, value_name = "FILE")]
    pub prom: Option<PathBuf>,
}

/// Flags of `pgdrill prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The repository (default `$PGDRILL_REPO`, then /backups).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Keep database backups this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub keep_days: u32,
    /// Keep config backups this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub config_keep_days: u32,
    /// Always keep the newest N of each kind.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_keep: usize,
    /// Delete; without it nothing is touched (dry run).
    #[arg(long)]
    pub confirm: bool,
    /// Compute retention as of this moment (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
}

/// `pgdrill audit …`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What to do with the log.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 naming the first bad event.
    Verify {
        /// The repository (default `$PGDRILL_REPO`, then /backups).
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
    },
    /// Print the events.
    Show {
        /// The repository (default `$PGDRILL_REPO`, then /backups).
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Only events younger than this (e.g. 7d).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        since: Option<Duration>,
    },
}

/// How `drill --repo` chooses a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pick {
    /// The newest backup.
    Newest,
    /// Uniformly at random within `--window`, so that over months every age gets drilled.
    Random,
}

fn rel(repo: &Repo, p: &Path) -> String {
    p.strip_prefix(repo.root())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// `pgdrill backup`.
pub async fn backup(args: BackupArgs) -> Result<Exit, Error> {
    let mut source = Endpoint::from_dsn(&args.source_dsn)
        .map_err(|e| Error::Usage(format!("--source-dsn: {e}")))?;
    // The server itself refuses any write from this session, as in the drill.
    source.options = Some("-c default_transaction_read_only=on".into());
    let repo = Repo::resolve(args.repo);
    let dir = repo.ensure_writable()?;
    let tools = PgTools::discover(&["pg_dump", "pg_dumpall"])?;
    let lock = lock_backups(&dir).await?;
    let labels = Labels {
        kind: Some(args.kind),
        reason: args.reason,
    };
    // Under the lock, a name already taken this second waits for the next one: two
    // backups into one repo never share a name.
    let mut now = Utc::now();
    while dir.join(backup::dump_file_name(now)).exists() {
        tokio::time::sleep(Duration::from_millis(
            1000 - now.timestamp_subsec_millis() as u64,
        ))
        .await;
        now = Utc::now();
    }
    let name = format!("database/{}", backup::dump_file_name(now));
    let progress = Progress::none();
    let take = backup::take_labelled(&source, &tools, &dir, now, &labels, &progress);
    let result = tokio::select! {
        r = take => r.map_err(Error::from),
        s = interrupted() => Err(Error::Environment(EnvError::Interrupted(s))),
    };
    drop(lock);
    match result {
        Ok(set) => {
            let m = &set.manifest;
            audit::append(
                repo.root(),
                Action::Backup,
                Object::file(&name, &m.sha256),
                Outcome::Ok,
                Some(format!(
                    "{} bytes, kind {}",
                    m.size_bytes,
                    args.kind.as_str()
                )),
            )?;
            println!(
                "backup {} ({} bytes, sha256 {}), manifest {}, globals {}",
                set.dump.display(),
                m.size_bytes,
                m.sha256,
                set.manifest_path.display(),
                set.globals
                    .as_ref()
                    .map(|g| g.display().to_string())
                    .unwrap_or_else(|| "-".into())
            );
            Ok(Exit::Pass)
        }
        Err(e) => {
            let event = audit::append(
                repo.root(),
                Action::Backup,
                Object {
                    file: Some(name),
                    ..Object::default()
                },
                Outcome::Failed,
                Some(e.to_string()),
            );
            if let Err(a) = event {
                eprintln!("pgdrill: the failure could not be recorded in the audit log: {a}");
            }
            Err(e)
        }
    }
}

/// Holds `database/.backup.lock` exclusively until dropped.
async fn lock_backups(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Error> {
    let path = dir.join(crate::repo::BACKUP_LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RepoError::io(format!("cannot open {}", path.display()), e))?;
    tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| {
            RepoError::io(format!("cannot lock {}", path.display()), errno.into())
        })
    })
    .await
    .map_err(|e| RepoError::io("waiting for the backup lock", std::io::Error::other(e)))?
    .map_err(Error::from)
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// `pgdrill verify`.
pub async fn verify(args: VerifyArgs) -> Result<Exit, Error> {
    let repo = Repo::resolve(args.repo);
    if !repo.root().is_dir() {
        return Err(Error::Usage(format!(
            "--repo {}: no such directory; give the repository that `pgdrill backup` writes to",
            repo.root().display()
        )));
    }
    let listing = repo.list()?;
    let history: Vec<_> = audit::read_events(&repo.audit_path())?
        .into_iter()
        .flatten()
        .collect();
    let tools = PgTools::discover(&["pg_restore"])?;
    let opts = verify::Options {
        rpo: args.rpo,
        config_rpo: args.config_rpo,
        config: !args.no_config,
        window: args.window,
        at: args.at.unwrap_or_else(Utc::now),
        full: args.full,
    };
    let mut outcome = verify::run(&repo, &listing, &history, &tools, &opts).await?;
    if let Err(b) = audit::verify_chain(&repo.audit_path())? {
        outcome.findings.push(verify::Finding {
            kind: verify::Kind::AuditLog,
            subject: crate::repo::AUDIT_FILE.into(),
            message: format!("line {}: {}; run `pgdrill audit verify`", b.line, b.reason),
            start: None,
            seconds: None,
        });
        outcome.ok = false;
    }
    if let Some(prom) = &args.prom {
        crate::digest::write_atomic(prom, outcome.prometheus().as_bytes()).map_err(|source| {
            Error::Output {
                path: prom.clone(),
                source,
            }
        })?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).expect("outcome serialises")
        );
    } else {
        print!("{}", outcome.table());
    }
    audit::append(
        repo.root(),
        Action::Verify,
        Object {
            files: outcome.files_verified.clone(),
            ..Object::default()
        },
        if outcome.ok {
            Outcome::Ok
        } else {
            Outcome::Findings
        },
        Some(format!(
            "{} findings, {} files read, {} verified before",
            outcome.findings.len(),
            outcome.files_read,
            outcome.files_skipped
        )),
    )?;
    Ok(if outcome.ok { Exit::Pass } else { Exit::Fail })
}

/// `pgdrill prune`.
pub fn prune(args: PruneArgs) -> Result<Exit, Error> {
    let repo = Repo::resolve(args.repo);
    if !repo.root().is_dir() {
        return Err(Error::Usage(format!(
            "--repo {}: no such directory",
            repo.root().display()
        )));
    }
    if args.keep_days == 0 || args.config_keep_days == 0 {
        return Err(Error::Usage(
            "--keep-days and --config-keep-days must be at least 1".into(),
        ));
    }
    let listing = repo.list()?;
    let history = audit::events(repo.root())?;
    let day = Duration::from_secs(86_400);
    let opts = prune::Options {
        keep_days: day * args.keep_days,
        config_keep_days: day * args.config_keep_days,
        min_keep: args.min_keep,
        at: args.at.unwrap_or_else(Utc::now),
    };
    let plan = prune::plan(&listing, &history, &opts);
    print!("{}", plan.table(args.confirm));
    if !args.confirm {
        return Ok(Exit::Pass);
    }
    let deleted = prune::apply(&repo, &plan)?;
    let sha_of = |name: &str| {
        listing
            .database
            .iter()
            .find(|b| b.name == name)
            .and_then(|b| b.manifest.as_ref().ok().map(|m| m.sha256.clone()))
            .or_else(|| {
                listing
                    .config
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(|c| c.manifest.as_ref().ok().map(|m| m.sha256.clone()))
            })
            .unwrap_or_default()
    };
    let files = plan
        .decisions
        .iter()
        .filter(|d| d.keep.is_none())
        .map(|d| FileRef {
            file: format!("{}/{}", d.area, d.name),
            sha256: sha_of(&d.name),
        })
        .collect();
    audit::append(
        repo.root(),
        Action::Prune,
        Object {
            files,
            ..Object::default()
        },
        Outcome::Ok,
        Some(format!("{} files deleted", deleted.len())),
    )?;
    Ok(Exit::Pass)
}

/// `pgdrill audit verify|show`.
pub fn audit(args: AuditArgs) -> Result<Exit, Error> {
    match args.command {
        AuditCommand::Verify { repo } => {
            let repo = Repo::resolve(repo);
            let path = repo.audit_path();
            if !path.is_file() {
                return Err(Error::Usage(format!(
                    "{}: no audit log; give the --repo that pgdrill commands write to",
                    path.display()
                )));
            }
            match audit::verify_chain(&path)? {
                Ok(n) => {
                    println!("audit log {} intact: {n} events", path.display());
                    Ok(Exit::Pass)
                }
                Err(b) => {
                    println!(
                        "audit log {} is broken at line {}: {}",
                        path.display(),
                        b.line,
                        b.reason
                    );
                    Ok(Exit::Fail)
                }
            }
        }
        AuditCommand::Show { repo, since } => {
            let repo = Repo::resolve(repo);
            let from = since.map(|d| {
                Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
            });
            for e in audit::events(repo.root())? {
                if from.is_some_and(|f| e.at().is_some_and(|t| t < f)) {
                    continue;
                }
                let object = e
                    .object
                    .file
                    .clone()
                    .or_else(|| e.object.report.as_ref().map(|r| r.file.clone()))
                    .unwrap_or_else(|| format!("{} files", e.object.files.len()));
                println!(
                    "{:>5} {} {}@{} {:<13} {:<8} {} {}",
                    e.seq,
                    e.time,
                    e.who.user,
                    e.who.host,
                    serde_json::to_value(e.action)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    e.result.as_str(),
                    object,
                    e.detail.as_deref().unwrap_or("")
                );
            }
            Ok(Exit::Pass)
        }
    }
}

/// The dump `drill --repo` restores, and the report's note on how it was chosen.
pub fn pick_backup(
    repo: &Path,
    pick: Pick,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<(PathBuf, String), Error> {
    let repo = Repo::new(repo);
    let listing = repo.list()?;
    let usable: Vec<_> = listing
        .database
        .iter()
        .filter(|b| b.dump.is_some() && b.manifest.is_ok() && b.created_at() <= now)
        .collect();
    let from = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let chosen = match pick {
        Pick::Newest => usable.last().map(|b| {
            (
                *b,
                "--pick newest: the backup that would be restored tonight".to_string(),
            )
        }),
        Pick::Random => {
            use rand::RngExt;
            let within: Vec<_> = usable.iter().filter(|b| b.created_at() >= from).collect();
            (!within.is_empty()).then(|| {
                let b = within[rand::rng().random_range(0..within.len())];
                (
                    *b,
                    format!(
                        "--pick random: chosen uniformly among the {} backups of the last {}, so that over months every age gets drilled",
                        within.len(),
                        humantime::format_duration(window)
                    ),
                )
            })
        }
    };
    let (b, why) = chosen.ok_or_else(|| {
        Error::Usage(format!(
            "--repo {}: no backup with a manifest to drill (in the window for --pick random); run `pgdrill backup` first",
            repo.root().display()
        ))
    })?;
    let dump = b.dump.clone().expect("filtered on a dump");
    let note = format!(
        "backup {} from repo {}; {why}",
        rel(&repo, &dump),
        repo.root().display()
    );
    Ok((dump, note))
}

/// Records a finished drill in the repo's audit log: verdict, report and backup checksums.
pub fn record_drill(
    repo: &Path,
    report: &crate::report::Report,
    out_dir: &Path,
) -> Result<(), Error> {
    let report_path = out_dir.join("report.json");
    let report_sha = crate::digest::sha256_file_blocking(&report_path)
        .map(|(_, s)| s)
        .map_err(|source| Error::Output {
            path: report_path.clone(),
            source,
        })?;
    let r = Repo::new(repo);
    let (file, sha256) = match &report.backup {
        Some(b) => (Some(rel(&r, Path::new(&b.file))), Some(b.sha256.clone())),
        None => (None, None),
    };
    let result = match report.verdict {
        crate::report::Verdict::Pass => Outcome::Pass,
        crate::report::Verdict::Fail => Outcome::Fail,
        crate::report::Verdict::Error => Outcome::Failed,
    };
    audit::append(
        repo,
        Action::Drill,
        Object {
            file,
            sha256,
            report: Some(FileRef {
                file: report_path.display().to_string(),
                sha256: report_sha,
            }),
            files: Vec::new(),
        },
        result,
        report.failure.as_ref().map(|f| f.message.clone()),
    )?;
    Ok(())
}
