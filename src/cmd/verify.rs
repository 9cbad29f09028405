//! `pgdrill verify`: the repo's daily verification, as a table or JSON (and a Prometheus
//! textfile), recorded in its audit log.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use crate::duration::{parse_duration, parse_time};
use crate::env::PgTools;
use crate::error::{Error, Exit};
use crate::repo::audit::{self, Action, Object, Outcome};
use crate::repo::{verify, Repo};

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

/// `pgdrill verify`.
pub async fn run(args: VerifyArgs) -> Result<Exit, Error> {
    // Before anything is written: verify records itself in the audit log of a real repo only.
    let repo = Repo::open(args.repo)?;
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
