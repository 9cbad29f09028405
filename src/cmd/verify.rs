//! `pgdrill verify`: the repo's daily verification, as a table or JSON (and a Prometheus
//! textfile), recorded in its audit log.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use crate::duration::{parse_duration, parse_time};
use crate::env::PgTools;
use crate::error::{Error, Exit};
use crate::pitr;
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
    /// Also (or, without --repo and $PGDRILL_REPO, only) verify this pgBackRest stanza: the
    /// newest archived WAL's age against --rpo, the WAL from each backup to the newest
    /// segment with no gap, and `pgbackrest verify`'s own check. Read only.
    #[arg(long, value_name = "NAME")]
    pub pgbackrest_stanza: Option<String>,
    /// With --pgbackrest-stanza: pgBackRest's configuration file (default: its own,
    /// /etc/pgbackrest/pgbackrest.conf); it must be readable by the `postgres` user.
    #[arg(long, value_name = "FILE", requires = "pgbackrest_stanza")]
    pub pgbackrest_config: Option<PathBuf>,
    /// Also (or, without --repo and $PGDRILL_REPO, only) verify this Barman server: the
    /// newest archived WAL's age against --rpo, the WAL from each finished backup to the
    /// newest segment with no gap, the backups Barman marked FAILED, and `barman check`'s
    /// failed checks. Read only (run as root or as Barman's user).
    #[arg(long, value_name = "NAME")]
    pub barman_server: Option<String>,
    /// With --barman-server: Barman's configuration file (default: its own,
    /// /etc/barman.conf).
    #[arg(long, value_name = "FILE", requires = "barman_server")]
    pub barman_config: Option<PathBuf>,
    /// Where to send the outcome.
    #[command(flatten)]
    pub notify: super::NotifyArgs,
}

/// The JSON of a verify that checked a stanza or a Barman server: the repo's outcome (when
/// one was checked) and each archive's.
#[derive(serde::Serialize)]
struct Both<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<&'a verify::Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pgbackrest: Option<&'a pitr::verify::StanzaOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    barman: Option<&'a pitr::verify::ServerOutcome>,
}

/// `pgdrill verify`: the repo, a stanza, a Barman server, or several. With
/// --pgbackrest-stanza or --barman-server the repo is checked only when named (--repo or
/// $PGDRILL_REPO), never the default /backups: a team on pgBackRest or Barman alone has no
/// dump repository.
pub async fn run(mut args: VerifyArgs) -> Result<Exit, Error> {
    let notifier = args.notify.notifier(false)?;
    let (stanza, server) = (args.pgbackrest_stanza.take(), args.barman_server.take());
    if stanza.is_none() && server.is_none() {
        return run_repo(args, notifier).await;
    }
    let at = args.at.unwrap_or_else(Utc::now);
    let opts = pitr::verify::Options { rpo: args.rpo, at };
    // The archives first: a wrong name is refused before the repo's audit log is written.
    let stanza_checked = match &stanza {
        Some(stanza) => {
            let tool =
                pitr::pgbackrest::Pgbackrest::for_stanza(stanza, args.pgbackrest_config.take())
                    .map_err(|e| Error::stanza(stanza, e))?;
            Some(
                pitr::verify::run(&tool, &opts)
                    .await
                    .map_err(|e| Error::stanza(stanza, e))?,
            )
        }
        None => None,
    };
    let server_checked = match &server {
        Some(server) => {
            let barman = |e| Error::pitr(pitr::PitrTool::Barman, server, e);
            let tool = pitr::barman::Barman::for_server(server, args.barman_config.take())
                .map_err(barman)?;
            Some(
                pitr::verify::run_barman(&tool, &opts)
                    .await
                    .map_err(barman)?,
            )
        }
        None => None,
    };
    let (repo_dir, origin) = Repo::resolve_with_origin(args.repo.clone());
    let named = origin != crate::repo::Origin::Default;
    let (json, prom) = (args.json, args.prom.take());
    let repo = if named {
        // Printed below, beside the archives', as one document.
        args.at = Some(at);
        Some(check_repo(args).await?)
    } else {
        None
    };
    let ok = repo.as_ref().is_none_or(|r| r.ok)
        && stanza_checked.as_ref().is_none_or(|o| o.ok)
        && server_checked.as_ref().is_none_or(|o| o.ok);
    if let Some(n) = &notifier {
        let mut what = Vec::new();
        let mut findings = Vec::new();
        if let Some(r) = &repo {
            what.push(format!("repository {}", repo_dir.root().display()));
            findings.extend(r.findings.iter());
        }
        if let Some(o) = &stanza_checked {
            what.push(format!("pgBackRest stanza {}", o.stanza));
            findings.extend(o.findings.iter());
        }
        if let Some(o) = &server_checked {
            what.push(format!("Barman server {}", o.server));
            findings.extend(o.findings.iter());
        }
        super::notify(n, &event(what.join(", "), ok, &findings), None).await;
    }
    if let Some(prom) = &prom {
        let mut text = repo.as_ref().map(|r| r.prometheus()).unwrap_or_default();
        if let Some(o) = &stanza_checked {
            text.push_str(&o.prometheus());
        }
        if let Some(o) = &server_checked {
            text.push_str(&o.prometheus());
        }
        crate::digest::write_atomic(prom, text.as_bytes()).map_err(|source| Error::Output {
            path: prom.clone(),
            source,
        })?;
    }
    if json {
        let both = Both {
            ok,
            repo: repo.as_ref(),
            pgbackrest: stanza_checked.as_ref(),
            barman: server_checked.as_ref(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&both).expect("outcome serialises")
        );
    } else {
        if let Some(r) = &repo {
            print!("{}", r.table());
        }
        if let Some(o) = &stanza_checked {
            print!("{}", o.table());
        }
        if let Some(o) = &server_checked {
            print!("{}", o.table());
        }
    }
    Ok(if ok { Exit::Pass } else { Exit::Fail })
}

/// The notification of a verify of `what`: pass without findings, else the first ones.
fn event(what: String, ok: bool, findings: &[&verify::Finding]) -> crate::notify::Event {
    let verdict = if ok {
        crate::report::Verdict::Pass
    } else {
        crate::report::Verdict::Fail
    };
    let named: Vec<String> = findings
        .iter()
        .take(3)
        .map(|f| {
            let kind = serde_json::to_value(f.kind).ok();
            format!(
                "{} {}",
                kind.as_ref().and_then(|k| k.as_str()).unwrap_or("finding"),
                f.subject
            )
        })
        .collect();
    let summary = if findings.is_empty() {
        format!("verify of {what}: no finding")
    } else {
        format!(
            "verify of {what}: {} finding(s): {}{}",
            findings.len(),
            named.join("; "),
            if findings.len() > 3 { "; …" } else { "" }
        )
    };
    crate::notify::Event {
        event: "verify".into(),
        verdict,
        drill_id: format!("verify-{}", Utc::now().format("%Y%m%dT%H%M%SZ")),
        summary,
        failure: findings
            .first()
            .map(|f| format!("{}: {}", f.subject, f.message)),
        rto: None,
        rpo: None,
        report_path: None,
        contacts: Vec::new(),
        database: what,
    }
}

/// `pgdrill verify` of the dump repo alone, as before the stanza.
async fn run_repo(
    args: VerifyArgs,
    notifier: Option<crate::notify::Notifier>,
) -> Result<Exit, Error> {
    let (json, prom) = (args.json, args.prom.clone());
    let (repo_dir, _) = Repo::resolve_with_origin(args.repo.clone());
    let outcome = check_repo(args).await?;
    if let Some(n) = &notifier {
        let findings: Vec<&verify::Finding> = outcome.findings.iter().collect();
        let e = event(
            format!("repository {}", repo_dir.root().display()),
            outcome.ok,
            &findings,
        );
        super::notify(n, &e, None).await;
    }
    if let Some(prom) = &prom {
        crate::digest::write_atomic(prom, outcome.prometheus().as_bytes()).map_err(|source| {
            Error::Output {
                path: prom.clone(),
                source,
            }
        })?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).expect("outcome serialises")
        );
    } else {
        print!("{}", outcome.table());
    }
    Ok(if outcome.ok { Exit::Pass } else { Exit::Fail })
}

/// The dump repo checked and the check recorded in its audit log.
async fn check_repo(args: VerifyArgs) -> Result<verify::Outcome, Error> {
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
    Ok(outcome)
}
