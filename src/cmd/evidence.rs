//! `pgdrill evidence verify DIR` checks a drill's sealed bundle against its SHA256SUMS (and,
//! when asked, SHA256SUMS.sig against an allowed signers file and report.json against the
//! history); `pgdrill evidence sign --key FILE DIR` signs an intact bundle afterwards.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::{Error, Exit};
use crate::report::evidence::{self, allowed_signers::AllowedSigners, signature};

/// `pgdrill evidence …`.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// What to do with the bundle.
    #[command(subcommand)]
    pub command: EvidenceCommand,
}

/// The evidence subcommands.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Check DIR against its SHA256SUMS: exit 1 naming each file changed, added or removed (or
    /// a signature or history line that does not hold).
    Verify {
        /// A drill's --out directory.
        dir: PathBuf,
        /// Also check SHA256SUMS.sig against this OpenSSH allowed signers file (`principal
        /// ssh-ed25519 AAAA…` lines, as `ssh-keygen -Y verify -f` reads): a missing or bad
        /// signature is exit 1.
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
        /// Also check report.json's SHA-256 against the `report_sha256` of its drill's line in
        /// this history file: a different hash or no line is exit 1.
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
    },
    /// Sign DIR's SHA256SUMS into SHA256SUMS.sig (namespace pgdrill-evidence), after checking
    /// that DIR is intact: a tampered bundle is refused (exit 1).
    Sign {
        /// An unencrypted OpenSSH Ed25519 private key (`ssh-keygen -t ed25519 -N ''`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// A drill's --out directory.
        dir: PathBuf,
    },
}

/// `pgdrill evidence verify|sign`: prints the findings; 0 intact (signed), 1 not.
pub fn run(args: EvidenceArgs) -> Result<Exit, Error> {
    match args.command {
        EvidenceCommand::Verify {
            dir,
            allowed_signers,
            history,
        } => {
            // Outside files that do not read are usage errors, before any verdict.
            let signers = allowed_signers
                .as_ref()
                .map(|path| {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        Error::Usage(format!(
                            "--allowed-signers {}: cannot read it ({e}); give an OpenSSH allowed signers file",
                            path.display()
                        ))
                    })?;
                    AllowedSigners::parse(&text).map_err(|e| {
                        Error::Usage(format!(
                            "--allowed-signers {}: {e}; the format is ssh-keygen's ALLOWED SIGNERS: `principal[,principal…] [options] ssh-ed25519 BASE64 [comment]`",
                            path.display()
                        ))
                    })
                })
                .transpose()?;
            let files = evidence::verify(&dir)?;
            let history_check = history
                .as_deref()
                .map(|h| evidence::check_history(&dir, h))
                .transpose()?;
            let signature = signers
                .as_ref()
                .map(|s| signature::check(&dir, s, chrono::Utc::now()))
                .transpose()?;
            let v = evidence::Verification {
                files,
                signature,
                history: history_check,
            };
            print!("{}", evidence::render(&dir, &v, history.as_deref()));
            Ok(if v.is_intact() {
                Exit::Pass
            } else {
                Exit::Fail
            })
        }
        EvidenceCommand::Sign { key, dir } => {
            let key = signature::SigningKey::read(&key)
                .map_err(|e| Error::Usage(format!("--key {}: {e}", key.display())))?;
            let files = evidence::verify(&dir)?;
            if !files.is_intact() {
                let v = evidence::Verification {
                    files,
                    signature: None,
                    history: None,
                };
                print!("{}", evidence::render(&dir, &v, None));
                eprintln!(
                    "pgdrill: refusing to sign {}: it no longer matches its SHA256SUMS, and a signature would vouch for the changes",
                    dir.display()
                );
                return Ok(Exit::Fail);
            }
            let replaced = signature::is_signed(&dir);
            signature::sign(&dir, &key)?;
            println!(
                "signed: {} (ED25519 key {}, namespace {}){}",
                dir.join(signature::SIG).display(),
                key.fingerprint(),
                signature::NAMESPACE,
                if replaced {
                    "; it replaces the earlier signature"
                } else {
                    ""
                }
            );
            Ok(Exit::Pass)
        }
    }
}
