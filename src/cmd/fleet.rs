//! `pgdrill fleet plan|run|report`: many databases drilled by Docker Swarm, Kubernetes or
//! GitHub Actions, one task a database, and their reports gathered into one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::{Error, Exit};
use crate::fleet::plan::{Engine, INDEX_VAR, KUBERNETES_INDEX_VAR, SWARM_NODE_VAR, SWARM_SLOT_VAR};
use crate::fleet::{report, Fleet, FleetError};

/// `pgdrill fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FleetCommand,
}

/// The fleet's subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Write what an engine runs for the fleet: a Swarm script, Kubernetes manifests or a
    /// GitHub Actions workflow (to stdout, or into --out DIR).
    Plan(PlanArgs),
    /// Drill one database of the fleet: the N-th (--index, or the engine's own variable).
    Run(RunArgs),
    /// Gather the databases' newest reports into one fleet report; exit 1 when any did not pass.
    Report(ReportArgs),
}

/// `--fleet FILE`, for `plan` and `run`.
#[derive(Debug, Args)]
pub struct FleetFile {
    /// The fleet file.
    #[arg(
        long = "fleet",
        value_name = "FILE",
        env = "PGDRILL_FLEET",
        default_value = "drills/fleet.toml"
    )]
    path: PathBuf,
}

/// `pgdrill fleet plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The fleet file.
    #[command(flatten)]
    fleet: FleetFile,
    /// The engine: swarm, kubernetes or github.
    #[arg(long, value_enum)]
    engine: Engine,
    /// Write the file into this directory instead of printing it.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `pgdrill fleet run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The fleet file.
    #[command(flatten)]
    fleet: FleetFile,
    /// Which database, counting from 0 in the file's order (default: $PGDRILL_FLEET_INDEX,
    /// Kubernetes' $JOB_COMPLETION_INDEX, or Swarm's slot in $PGDRILL_FLEET_SLOT and
    /// $PGDRILL_FLEET_NODE).
    #[arg(long, value_name = "N", conflicts_with = "database")]
    index: Option<usize>,
    /// Which database, by name.
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// Where the reports go instead of the fleet file's [reports] path.
    #[arg(long, value_name = "DIR")]
    reports: Option<PathBuf>,
}

/// `pgdrill fleet report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The fleet's reports directory (<database>/<time>/report.json under it).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The fleet file: its databases are the rows, and one without a report is missing.
    #[arg(long, value_name = "FILE")]
    fleet: Option<PathBuf>,
    /// A database whose newest drill started longer ago than this counts as stale (a failure).
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// Where fleet-report.json, .md, .html and fleet-junit.xml go (default: DIR).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    /// Notification of the fleet's outcome.
    #[command(flatten)]
    notify: super::NotifyArgs,
}

/// Runs `pgdrill fleet …`.
pub async fn run(args: FleetArgs) -> Result<Exit, Error> {
    match args.command {
        FleetCommand::Plan(a) => plan(a),
        FleetCommand::Run(a) => run_one(a).await,
        FleetCommand::Report(a) => gather(a).await,
    }
}

fn plan(a: PlanArgs) -> Result<Exit, Error> {
    let fleet = Fleet::read(&a.fleet.path)?;
    // Every database's drill is parsed as its task will parse it, with stand-ins for the
    // secrets: a wrong key fails here, not in the engine a week later.
    for db in &fleet.databases {
        let stand_in = |_: &str| Some("postgresql://stand-in@localhost/stand_in".to_string());
        let table = db.resolved(stand_in, Path::new("/nonexistent"))?;
        drill_args(&fleet, db, table, Path::new("/reports"))?;
    }
    let files = crate::fleet::plan::plan(&fleet, a.engine, &a.fleet.path.display().to_string());
    match a.out {
        None => {
            for f in files {
                print!("{}", f.text);
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Output {
                path: dir.clone(),
                source,
            })?;
            for f in files {
                let path = dir.join(&f.name);
                crate::digest::write_atomic(&path, f.text.as_bytes()).map_err(|source| {
                    Error::Output {
                        path: path.clone(),
                        source,
                    }
                })?;
                if f.executable {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
                }
                println!("{}", path.display());
            }
        }
    }
    Ok(Exit::Pass)
}

/// The index a task was given: the flag, else the engines' variables.
fn index_of(a: &RunArgs, fleet: &Fleet) -> Result<usize, FleetError> {
    if let Some(name) = &a.database {
        return Ok(fleet.named(name)?.0);
    }
    if let Some(i) = a.index {
        return Ok(i);
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let number = |name: &str, v: String| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| FleetError::Index(format!("${name} = {v:?} is not a number")))
    };
    if let Some(v) = var(INDEX_VAR) {
        return number(INDEX_VAR, v);
    }
    if let Some(v) = var(KUBERNETES_INDEX_VAR) {
        return number(KUBERNETES_INDEX_VAR, v);
    }
    if let Some(v) = var(SWARM_SLOT_VAR) {
        // Swarm renders a replicated job's slot 0 as the node's ID, the others as numbers.
        if var(SWARM_NODE_VAR).is_some_and(|node| node == v) {
            return Ok(0);
        }
        return number(SWARM_SLOT_VAR, v);
    }
    Err(FleetError::Index(format!(
        "which database? give --index N (from 0) or --database NAME; in a task the engine gives it: ${INDEX_VAR}, Kubernetes' ${KUBERNETES_INDEX_VAR} or Swarm's ${SWARM_SLOT_VAR} (`pgdrill fleet plan` sets them up)"
    )))
}

/// The drill a database's task runs: its keys as flags, its reports under `reports`.
fn drill_args(
    fleet: &Fleet,
    db: &crate::fleet::Database,
    table: toml::Table,
    reports: &Path,
) -> Result<(super::drill::DrillArgs, PathBuf), Error> {
    let origin = format!(
        "fleet file {}, database `{}`",
        fleet.path.display(),
        db.name
    );
    let flags = super::drill::table_flags(&origin, &table)?;
    let dir = reports.join(&db.name);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let short = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let out = dir.join(format!("{stamp}-{short}"));
    let mut argv: Vec<OsString> = vec!["pgdrill".into(), "drill".into()];
    argv.extend(flags);
    argv.push("--out".into());
    argv.push(out.clone().into());
    argv.push("--history".into());
    argv.push(dir.join("history.ndjson").into());
    let cli = <super::Cli as clap::Parser>::try_parse_from(argv)
        .map_err(|e| Error::Usage(format!("{origin}: {}", e.render())))?;
    match cli.command {
        super::Command::Drill(d) => Ok((d, out)),
        _ => Err(Error::Usage(format!("{origin}: not a drill"))),
    }
}

async fn run_one(a: RunArgs) -> Result<Exit, Error> {
    let fleet = Fleet::read(&a.fleet.path)?;
    let index = index_of(&a, &fleet)?;
    let db = fleet.at(index)?;
    let secrets_dir = std::env::var_os("PGDRILL_SECRETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::fleet::SECRETS_DIR));
    let table = db.resolved(|v| std::env::var(v).ok(), &secrets_dir)?;
    let reports = a
        .reports
        .clone()
        .unwrap_or_else(|| PathBuf::from(&fleet.settings.reports.path));
    let (mut drill, out) = drill_args(&fleet, db, table, &reports)?;
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(fleet.text.as_bytes()))
    };
    drill.plan_note = Some(format!(
        "fleet {} database `{}` (index {index}) of {} (sha256 {sha})",
        fleet.settings.name,
        db.name,
        fleet.path.display()
    ));
    eprintln!(
        "pgdrill fleet {}: database `{}` ({} of {}), reports in {}",
        fleet.settings.name,
        db.name,
        index + 1,
        fleet.databases.len(),
        out.display()
    );
    super::drill::run(drill).await
}

async fn gather(a: ReportArgs) -> Result<Exit, Error> {
    let notifier = a.notify.notifier(false)?;
    let fleet = a.fleet.as_deref().map(Fleet::read).transpose()?;
    let r = report::gather(&a.dir, fleet.as_ref(), a.max_age, chrono::Utc::now())?;
    let out = a.out.clone().unwrap_or_else(|| a.dir.clone());
    std::fs::create_dir_all(&out).map_err(|source| Error::Output {
        path: out.clone(),
        source,
    })?;
    let json = serde_json::to_string_pretty(&r).expect("the fleet report serialises");
    for (name, text) in [
        ("fleet-report.json", json.clone()),
        ("fleet-report.md", report::render_markdown(&r)),
        ("fleet-report.html", report::render_html(&r)),
        ("fleet-junit.xml", report::render_junit(&r)),
    ] {
        let path = out.join(name);
        crate::digest::write_atomic(&path, text.as_bytes()).map_err(|source| Error::Output {
            path: path.clone(),
            source,
        })?;
    }
    if a.json {
        println!("{json}");
    } else {
        print!("{}", report::render_markdown(&r));
    }
    if let Some(n) = &notifier {
        let failing: Vec<String> = r
            .rows
            .iter()
            .filter(|row| !row.outcome.passed())
            .map(|row| {
                format!(
                    "{}: {}",
                    row.database,
                    row.why.as_deref().unwrap_or(row.outcome.as_str())
                )
            })
            .collect();
        let name = r
            .fleet
            .clone()
            .unwrap_or_else(|| a.dir.display().to_string());
        let event = crate::notify::Event {
            event: "fleet".into(),
            verdict: r.verdict(),
            drill_id: name.clone(),
            summary: report::summary(&r),
            failure: (!failing.is_empty()).then(|| failing.join("; ")),
            rto: None,
            rpo: None,
            report_path: Some(out.join("fleet-report.html").display().to_string()),
            contacts: Vec::new(),
            database: name,
        };
        super::notify(n, &event, None).await;
    }
    Ok(if r.verdict() == crate::report::Verdict::Pass {
        Exit::Pass
    } else {
        Exit::Fail
    })
}
