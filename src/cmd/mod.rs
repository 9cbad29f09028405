//! The `pgdrill` command line: one module per command, each with its clap flags, its `run`
//! and its printing (the library never prints). This module holds the parser, the dispatch
//! and [`main`]: logging, the async runtime, and the mapping of errors to exit codes.
//!
//! To add a command: a module here with its `Args` and `run`, and its variant in [`Command`].

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{Error, Exit};

pub mod audit;
pub mod backup;
pub mod clean;
pub mod config;
pub mod drill;
pub mod evidence;
pub mod fleet;
pub mod forecast;
pub mod history;
pub mod prune;
pub mod restore;
pub mod rollback;
pub mod runbook;
pub mod verify;

/// Disaster-recovery drills for PostgreSQL backups.
#[derive(Debug, Parser)]
#[command(name = "pgdrill", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per process: the size of the drill's flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one drill end to end: provision, load, backup, disaster, restore, verify, report.
    Drill(drill::DrillArgs),
    /// Remove what killed drills left behind: their temp directories (and, when Docker is
    /// there, their labelled containers and networks); a live drill's are never touched.
    Clean(clean::CleanArgs),
    /// Back up or restore configuration files (.env, API keys, VPN configs), age-encrypted.
    Config(config::ConfigArgs),
    /// Take one database backup into the repo (`database/backup_YYYYmmdd_HHMMSS.dump`).
    Backup(backup::BackupArgs),
    /// Check the repo: freshness against the RPO, gaps, sizes, checksums, the newest dump read through.
    Verify(verify::VerifyArgs),
    /// Retention: what goes (dry run) or delete it (--confirm), with floors.
    Prune(prune::PruneArgs),
    /// The repo's audit log: verify its hash chain or show it.
    Audit(audit::AuditArgs),
    /// Summarise past drills: pass rate, RTO used, restore time against backup size, staleness.
    History(history::HistoryArgs),
    /// Project the database restore time at a backup size from the drill history (a line
    /// per backend and -j), with its interval, against the restore budget.
    Forecast(forecast::ForecastArgs),
    /// Check a drill's sealed evidence bundle.
    Evidence(evidence::EvidenceArgs),
    /// The real restore onto a server you name: a dry run without --confirm, the strategy's
    /// steps timed and verified with --confirm DBNAME.
    Restore(restore::RestoreArgs),
    /// The real code rollback of your deployment: a dry run without --confirm, the
    /// strategy's checkout, deploy, version and health checks with --confirm TAG.
    Rollback(rollback::RollbackArgs),
    /// Write the team's restore runbook: the strategy's procedures with this deployment's
    /// commands, the contacts, the newest backups and the last drill's times against the RTO.
    Runbook(runbook::RunbookArgs),
    /// Many databases on the engine you run (Docker Swarm, Kubernetes, GitHub Actions): the
    /// engine's plan from a fleet file, one database's drill in each task, one fleet report.
    Fleet(fleet::FleetArgs),
}

/// Why a command line did not parse.
#[derive(Debug)]
pub enum ParseFailure {
    /// clap's own answer, to print as clap does (help and version included).
    Clap(clap::Error),
    /// The plan file given with `--plan` is unusable.
    Plan(Error),
}

/// Parses a command line, with `drill --plan FILE` expanded by [`drill::expand_plan`] and the
/// plan file's record kept for the report.
pub fn parse(args: Vec<OsString>) -> Result<Cli, ParseFailure> {
    let (args, note) = drill::expand_plan(args).map_err(ParseFailure::Plan)?;
    let mut cli = Cli::try_parse_from(args).map_err(ParseFailure::Clap)?;
    if let Command::Drill(drill) = &mut cli.command {
        drill.plan_note = note;
    }
    Ok(cli)
}

/// The `pgdrill` binary: parses the command line, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(ParseFailure::Clap(e)) => {
            let code = if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
        Err(ParseFailure::Plan(e)) => {
            eprintln!("pgdrill: {e}");
            return e.exit().into();
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGDRILL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them, not in CI logs and files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgdrill: cannot start the async runtime: {e}");
            return Exit::Environment.into();
        }
    };
    let exit = runtime.block_on(run(cli));
    exit.into()
}

/// Runs a parsed command line and returns the exit code; errors are printed here.
pub async fn run(cli: Cli) -> Exit {
    match execute(cli).await {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("pgdrill: {e}");
            e.exit()
        }
    }
}

async fn execute(cli: Cli) -> Result<Exit, Error> {
    match cli.command {
        Command::Drill(args) => drill::run(args).await,
        Command::Clean(args) => clean::run(args),
        Command::Config(args) => config::run(args).await,
        Command::Backup(args) => backup::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Prune(args) => prune::run(args),
        Command::Audit(args) => audit::run(args),
        Command::History(args) => history::run(args),
        Command::Forecast(args) => forecast::run(args),
        Command::Evidence(args) => evidence::run(args),
        Command::Restore(args) => restore::run(args).await,
        Command::Rollback(args) => rollback::run(args).await,
        Command::Runbook(args) => runbook::run(args),
        Command::Fleet(args) => fleet::run(args).await,
    }
}

/// The team's running application, as `pgdrill restore` and `pgdrill config restore` name
/// it: one clap struct, so that both commands take the same flags.
#[derive(Debug, clap::Args)]
pub struct AppArgs {
    /// The shell command that stops the application before the restore changes anything;
    /// with --app-start.
    #[arg(long, value_name = "CMD", requires = "app_start")]
    app_stop: Option<String>,
    /// The shell command that starts it again after the restore; with --app-stop.
    #[arg(long, value_name = "CMD", requires = "app_stop")]
    app_start: Option<String>,
    /// An existing container: `docker stop NAME` / `docker start NAME`.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["app_stop", "app_unit"])]
    app_container: Option<String>,
    /// A systemd unit: `systemctl stop NAME` / `systemctl start NAME`.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["app_stop", "app_container"])]
    app_unit: Option<String>,
    /// The application's health endpoint (repeatable): each must answer healthy after the start.
    #[arg(long, value_name = "URL")]
    app_health_url: Vec<String>,
    /// The JSON `status` value that means healthy (any other body: HTTP 200).
    #[arg(long, value_name = "STATUS")]
    app_healthy_status: Option<String>,
    /// How the health answers are read: auto, ietf, spring, aspnet, plain, or
    /// json-path=EXPR (see the user guide's health formats).
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = parse_health_format)]
    app_health_format: crate::app::HealthFormat,
    /// The application's log file, read for ERROR lines after the start.
    #[arg(long, value_name = "FILE")]
    app_log: Option<std::path::PathBuf>,
    /// The application's Prometheus metrics.
    #[arg(long, value_name = "URL")]
    app_metrics_url: Option<String>,
}

impl AppArgs {
    /// The library's options for these flags.
    fn options(&self) -> crate::options::AppOptions {
        crate::options::AppOptions {
            app_stop: self.app_stop.clone(),
            app_start: self.app_start.clone(),
            app_container: self.app_container.clone(),
            app_unit: self.app_unit.clone(),
            app_health_url: self.app_health_url.clone(),
            app_healthy_status: self.app_healthy_status.clone(),
            app_health_format: self.app_health_format.clone(),
            app_log: self.app_log.clone(),
            app_metrics_url: self.app_metrics_url.clone(),
        }
    }
}

/// `--notify` and its options, shared by `drill`, `restore` and `verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct NotifyArgs {
    /// POST the outcome to this webhook (http or https). Its path and query, where webhook
    /// tokens live, are never printed or written: give it through $PGDRILL_NOTIFY to keep it
    /// off the command line too.
    #[arg(
        long,
        value_name = "URL",
        env = "PGDRILL_NOTIFY",
        hide_env_values = true
    )]
    pub notify: Option<String>,
    /// The body: json (pgdrill's own), slack (an incoming webhook's {"text"}) or
    /// alertmanager (the v2 alerts API).
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        default_value = "json",
        requires = "notify"
    )]
    pub notify_format: crate::notify::NotifyFormat,
    /// When to send: failure (not a pass), always, or change (the verdict differs from the
    /// previous drill's in the history; drill only).
    #[arg(
        long,
        value_name = "WHEN",
        value_enum,
        default_value = "failure",
        requires = "notify"
    )]
    pub notify_on: crate::notify::NotifyOn,
    /// How long one attempt may take (a 5xx or no answer is retried 3 times with backoff).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = crate::duration::parse_duration, requires = "notify")]
    pub notify_timeout: std::time::Duration,
}

impl NotifyArgs {
    /// The notifier, checked before anything runs; `history` says whether the command keeps
    /// the verdicts `--notify-on change` compares with.
    pub fn notifier(&self, history: bool) -> Result<Option<crate::notify::Notifier>, Error> {
        let Some(url) = &self.notify else {
            return Ok(None);
        };
        crate::notify::check_url(url).map_err(Error::Usage)?;
        if self.notify_on == crate::notify::NotifyOn::Change && !history {
            return Err(Error::Usage(
                "--notify-on change compares with the previous verdict in a drill's history (history.ndjson), which only `pgdrill drill` keeps: use --notify-on failure or always here".into(),
            ));
        }
        Ok(Some(crate::notify::Notifier {
            url: url.clone(),
            format: self.notify_format,
            on: self.notify_on,
            timeout: self.notify_timeout,
        }))
    }
}

/// Sends `event` through `n` and says on stderr when it was not delivered (never more: a
/// notification does not change a verdict or an exit code).
async fn notify(
    n: &crate::notify::Notifier,
    event: &crate::notify::Event,
    previous: Option<crate::report::Verdict>,
) -> crate::notify::Delivery {
    let d = crate::notify::send(n, event, previous).await;
    if d.skipped.is_none() && !d.delivered {
        let last = d
            .attempts
            .last()
            .map_or_else(String::new, |a| match (a.status, &a.error) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            });
        eprintln!(
            "pgdrill: the notification to {} was not delivered after {} attempt(s): {last}",
            d.url,
            d.attempts.len()
        );
    }
    d
}

/// `--app-health-format`: the message names what is accepted.
fn parse_health_format(s: &str) -> Result<crate::app::HealthFormat, String> {
    s.parse()
        .map_err(|e: crate::app::HealthFormatError| e.to_string())
}

/// Runs `plan` (a drill, a restore or a rollback) with SIGINT and SIGTERM as its cancellation.
async fn run_cancellable(plan: crate::plan::Plan) -> Result<crate::report::Report, Error> {
    let cancel = crate::drill::Cancel::new();
    let signals = tokio::spawn(forward_signals(Interrupts::watch(), cancel.clone()));
    let report = crate::drill::run(plan, cancel).await?;
    signals.abort();
    Ok(report)
}

/// A confirmed real operation's work between its two audit events (`pgdrill restore`,
/// `rollback`, `config restore`): `plan` run with the signals as its cancellation, its report
/// written and sealed into its `--out` directory, which comes back with it.
async fn run_sealed(
    plan: crate::plan::Plan,
) -> Result<(crate::report::Report, std::path::PathBuf), Error> {
    run_sealed_notifying(plan, None).await
}

/// [`run_sealed`], and `notifier` told before the report is written (the report records
/// what happened to the notification).
async fn run_sealed_notifying(
    plan: crate::plan::Plan,
    notifier: Option<(&str, &crate::notify::Notifier)>,
) -> Result<(crate::report::Report, std::path::PathBuf), Error> {
    let out_dir = plan.out_dir.clone();
    let mut report = run_cancellable(plan).await?;
    if let Some((event, n)) = notifier {
        let e = crate::notify::Event::of_report(event, &report, &out_dir.join("report.md"));
        report.notifications.push(notify(n, &e, None).await);
    }
    report.write_all(&out_dir)?;
    crate::report::evidence::seal(&out_dir, false, &[])?;
    Ok((report, out_dir))
}

/// `--json` with `--confirm`: refused, since only the dry run has a plan to print.
fn no_json_when_confirmed(json: bool) -> Result<(), Error> {
    if json {
        return Err(Error::Usage(
            "--json prints the dry run's plan: leave out --confirm to see it".into(),
        ));
    }
    Ok(())
}

/// A dry run's exit: 0 when the operation can run, 3 when it cannot.
fn dry_run_exit(can_run: bool) -> Exit {
    if can_run {
        Exit::Pass
    } else {
        Exit::Environment
    }
}

/// Prints a real operation's dry run: `preview` as JSON with `--json`, else `text` for a
/// person.
fn print_dry_run(preview: &impl serde::Serialize, json: bool, text: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(preview).expect("the preview serialises")
        );
    } else {
        print!("{}", text());
    }
}

/// A dry run's contacts section for a person: whom to call, the strategy roles without one,
/// and `example`, the role to show in the hint when none is given.
fn write_contacts(
    s: &mut String,
    contacts: &[crate::contacts::Contact],
    warnings: &[crate::contacts::ContactWarning],
    example: &str,
) {
    use std::fmt::Write;
    let _ = writeln!(s, "\ncontacts:");
    if contacts.is_empty() {
        let _ = writeln!(s, "  none given (--contact \"{example}=…\")");
    }
    for c in contacts {
        let _ = writeln!(s, "  {}: {}", c.role, c.reach);
    }
    for w in warnings {
        let _ = writeln!(s, "  WARNING: {}", w.message);
    }
}

/// The exit code of a real operation's verdict: 0 pass, 1 fail, 3 when it could not run.
fn exit_of(verdict: crate::report::Verdict) -> Exit {
    match verdict {
        crate::report::Verdict::Pass => Exit::Pass,
        crate::report::Verdict::Fail => Exit::Fail,
        crate::report::Verdict::Error => Exit::Environment,
    }
}

/// Turns SIGINT and SIGTERM into a cancellation the drill (or restore) notices between and
/// during steps, so that it settles what it started and still writes a report.
async fn forward_signals(mut signals: Interrupts, cancel: crate::drill::Cancel) {
    cancel.cancel(signals.next().await);
}

/// SIGINT and SIGTERM, caught from the moment [`Interrupts::watch`] returns: registered
/// before a command starts its work, so that a signal in its first moments is not fatal.
struct Interrupts(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Interrupts {
    /// Starts catching both signals now.
    fn watch() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Interrupts(Some((int, term))),
            _ => Interrupts(None),
        }
    }

    /// The next signal's name; never, when they cannot be watched.
    async fn next(&mut self) -> &'static str {
        let Some((int, term)) = &mut self.0 else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
}
