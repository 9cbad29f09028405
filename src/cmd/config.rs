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
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Back up configuration files into one age-encrypted archive in <repo>/config/.
    Backup(BackupArgs),
    /// Restore a config backup into a new directory after checking it whole.
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
    /// The directory to create with the restored files (must be new or empty).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// A key that must be present and non-empty (repeatable): NAME of a .env, Section.Key or
    /// Key of a VPN config, or the file name of an API key file.
    #[arg(long, value_name = "KEY")]
    pub require: Vec<String>,
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
pub fn run(args: ConfigArgs) -> Result<Exit, Error> {
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
        ConfigCommand::Restore(a) => {
            let req = RestoreRequest {
                repo: a.repo.dir.clone(),
                pick: match (a.backup, a.at) {
                    (Some(n), _) => Pick::Name(n),
                    (None, Some(t)) => Pick::At(t),
                    (None, None) => Pick::Newest,
                },
                identity: a.identity,
                to: a.to,
                require: a.require,
            };
            let res = config::restore(&req);
            let recorded = record(
                &a.repo.dir,
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
    }
}
