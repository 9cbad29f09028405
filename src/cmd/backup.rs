//! `pgdrill backup`: one database backup into the repo, under its lock, recorded in its audit
//! log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use clap::Args;

use crate::backup::{self, BackupKind, Labels};
use crate::env::{Endpoint, PgTools};
use crate::error::{EnvError, Error, Exit};
use crate::progress::Progress;
use crate::repo::audit::{self, Action, Object, Outcome};
use crate::repo::{Repo, RepoError};

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

/// `pgdrill backup`.
pub async fn run(args: BackupArgs) -> Result<Exit, Error> {
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
        s = super::interrupted() => Err(Error::Environment(EnvError::Interrupted(s))),
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
