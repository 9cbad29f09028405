//! `pgdrill backup`: one database backup into the repo, under its lock, recorded in its audit
//! log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;

use crate::backup::{self, BackupKind, Labels};
use crate::duration::parse_duration;
use crate::env::{Endpoint, PgTools};
use crate::env_error::BackupStage;
use crate::error::{EnvError, Error, Exit};
use crate::progress::Progress;
use crate::repo::audit::{self, Action, Object, Outcome};
use crate::repo::{lock, Repo, RepoError};

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
    /// Abandon the backup when pg_dump writes no byte (or the source answers no query) for
    /// this long: a dead network path, not a slow source.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub stall_timeout: Duration,
    /// Give up when another backup holds the repo lock for this long (0: do not wait).
    #[arg(long, value_name = "DUR", default_value = DEFAULT_LOCK_TIMEOUT, value_parser = crate::duration::parse_wait)]
    pub lock_timeout: Duration,
}

/// `--lock-timeout`'s default: the strategy's backup interval. A backup still waiting when
/// the next scheduled one starts only queues that one behind it; giving up then, with an
/// audit event, leaves the slot to the next backup and the gap visible to `verify`.
const DEFAULT_LOCK_TIMEOUT: &str = "15m";

/// How often a waiter tries the repo lock again.
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// `pgdrill backup`.
pub async fn run(args: BackupArgs) -> Result<Exit, Error> {
    let mut source = Endpoint::from_dsn(&args.source_dsn)
        .map_err(|e| Error::Usage(format!("--source-dsn: {e}")))?;
    if args.stall_timeout < Duration::from_secs(1) {
        return Err(Error::Usage(
            "--stall-timeout must be at least 1s (e.g. 5m): a shorter one abandons healthy backups"
                .into(),
        ));
    }
    // The server itself refuses any write from this session, as in the drill.
    source.options = Some("-c default_transaction_read_only=on".into());
    let repo = Repo::resolve(args.repo);
    let dir = repo.ensure_writable()?;
    let tools = PgTools::discover(&["pg_dump", "pg_dumpall"])?;
    // One watcher from here to the end: a signal between the wait and the backup is not lost.
    let mut signals = super::Interrupts::watch();
    let mut signal = std::pin::pin!(signals.next());
    let lock = match wait_for_lock(&dir, args.lock_timeout, signal.as_mut()).await {
        Ok(lock) => lock,
        Err(e) => {
            record_failure(repo.root(), None, &e);
            return Err(e);
        }
    };
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
    let take = backup::take_labelled(
        &source,
        &tools,
        &dir,
        now,
        &labels,
        args.stall_timeout,
        &progress,
    );
    let result = tokio::select! {
        r = take => r.map_err(Error::from),
        s = signal.as_mut() => Err(Error::Environment(EnvError::BackupInterrupted {
            signal: s,
            stage: BackupStage::Dumping,
        })),
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
            record_failure(repo.root(), Some(name), &e);
            Err(e)
        }
    }
}

/// Records a backup that failed (or never started) in the audit log.
fn record_failure(root: &Path, file: Option<String>, e: &Error) {
    let event = audit::append(
        root,
        Action::Backup,
        Object {
            file,
            ..Object::default()
        },
        Outcome::Failed,
        Some(e.to_string()),
    );
    if let Err(a) = event {
        eprintln!("pgdrill: the failure could not be recorded in the audit log: {a}");
    }
}

/// Takes `database/.backup.lock`, saying whom it waits for, giving up after `timeout` or on
/// a signal.
async fn wait_for_lock(
    dir: &Path,
    timeout: Duration,
    mut signal: std::pin::Pin<&mut impl std::future::Future<Output = &'static str>>,
) -> Result<lock::BackupLock, Error> {
    let started = Instant::now();
    let mut told: Option<Option<lock::Holder>> = None;
    loop {
        let holder = match lock::try_lock(dir)? {
            lock::Attempt::Taken(l) => return Ok(l),
            lock::Attempt::Held(h) => h,
        };
        if told.as_ref() != Some(&holder) {
            match &holder {
                Some(h) => eprintln!("pgdrill: waiting for the repo lock held by {h}"),
                None => eprintln!(
                    "pgdrill: waiting for the repo lock {} (its holder has not recorded itself)",
                    lock::path(dir).display()
                ),
            }
            told = Some(holder.clone());
        }
        if started.elapsed() >= timeout {
            return Err(Error::Repo(RepoError::LockTimeout {
                path: lock::path(dir),
                holder: holder
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "a process that did not record itself".into()),
                waited: started.elapsed(),
            }));
        }
        tokio::select! {
            s = signal.as_mut() => {
                return Err(Error::Environment(EnvError::BackupInterrupted {
                    signal: s,
                    stage: BackupStage::WaitingForLock,
                }))
            }
            _ = tokio::time::sleep(LOCK_RETRY.min(timeout.saturating_sub(started.elapsed()))) => {}
        }
    }
}
