//! The team's restore runbook (`pgdrill runbook`): the strategy's procedures (database
//! restore in its seven steps, configuration restore, code rollback, the ten-item checklist)
//! with this deployment's real commands, paths and names filled in from the drill plan, the
//! emergency contacts, the newest backups in the repository and their ages, and the last
//! drill's measured times against the RTO. [`gather`] reads the inputs into a typed
//! [`Runbook`]; [`markdown`] and [`html`] render one document from it, so the two pages say
//! the same. A missing input is said in the runbook, never guessed.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::contacts::{Contact, ContactWarning};
use crate::duration::human_ms;
use crate::env::Endpoint;
use crate::error::Error;
use crate::options::DrillOptions;
use crate::plan::Budgets;
use crate::report::forecast::{Forecast, Group};
use crate::report::history::{self, Entry};
use crate::report::vocab::CheckItem;

/// What the runbook is made from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The drill plan's options (`--plan FILE`), when one was given.
    pub plan: Option<DrillOptions>,
    /// The plan file's path, for the runbook's header.
    pub plan_file: Option<PathBuf>,
    /// The backup repository (`--repo`, else the plan's `repo`, else `$PGDRILL_REPO`).
    pub repo: Option<PathBuf>,
    /// The drill history (`--history`, else as `pgdrill history` finds it).
    pub history: PathBuf,
    /// The moment the ages are counted to.
    pub now: DateTime<Utc>,
}

/// The database to restore into: from the plan's `--source-dsn` (the database that is backed
/// up), else from the newest backup's manifest. Never a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The role to connect as.
    pub user: String,
    /// The database's name.
    pub name: String,
    /// Where these came from, in words.
    pub from: String,
}

impl Database {
    /// `postgresql://user:$PGPASSWORD@host:port/name`: the shell puts the password in, the
    /// runbook never holds it.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{}:$PGPASSWORD@{}:{}/{}",
            self.user,
            url_host(&self.host),
            self.port,
            self.name
        )
    }

    /// `-h host -p port -U user`, for the PostgreSQL client programs.
    pub fn client_args(&self) -> String {
        format!(
            "-h {} -p {} -U {}",
            shell(&self.host),
            self.port,
            shell(&self.user)
        )
    }
}

/// A host as a URL holds it: an IPv6 address in brackets.
fn url_host(h: &str) -> String {
    if h.contains(':') {
        format!("[{h}]")
    } else {
        h.to_string()
    }
}

/// This deployment's application, code and configuration, from the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    /// The database to restore into, when the plan or a backup names one.
    pub database: Option<Database>,
    /// `app_stop`: how the application is stopped.
    pub app_stop: Option<String>,
    /// `app_start`: how it is started.
    pub app_start: Option<String>,
    /// `app_health_url`.
    pub app_health_url: Option<String>,
    /// `app_version_url`.
    pub app_version_url: Option<String>,
    /// `app_log`.
    pub app_log: Option<PathBuf>,
    /// `code_repo`: the application's git repository with its release tags.
    pub code_repo: Option<PathBuf>,
    /// `deploy`: how a checked-out release is deployed.
    pub deploy: Option<String>,
    /// `rollback_to`: a tag, or `previous`.
    pub rollback_to: String,
    /// `config_file`: the application's configuration files.
    pub config_files: Vec<PathBuf>,
    /// `require`: keys the restored configuration must hold.
    pub require: Vec<String>,
    /// `server_setting` (the `[server]` table): the settings the drills' restore target ran
    /// with, `(name, value)`, which a new production server must get for the measured RTO
    /// to hold.
    pub server_settings: Vec<(String, String)>,
}

/// The newest database backup in the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseBackup {
    /// The dump.
    pub dump: PathBuf,
    /// Its roles file, when there is one.
    pub globals: Option<PathBuf>,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Its age at [`Inputs::now`].
    pub age_ms: u64,
    /// Its size and SHA-256, from its manifest (absent when the manifest cannot be read).
    pub size_bytes: Option<u64>,
    /// See `size_bytes`.
    pub sha256: Option<String>,
    /// The database it holds, from its manifest.
    pub database: Option<String>,
    /// The source server as its manifest names it (password redacted).
    pub source: Option<String>,
    /// Rows per table at the backup (its manifest's integrity snapshot), for step 5.
    pub tables: Vec<(String, u64)>,
    /// Why its manifest cannot be read, when it cannot.
    pub manifest_problem: Option<String>,
}

/// One file of the newest configuration backup: where it goes back, and its key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The path it was backed up from (where it is restored to).
    pub path: String,
    /// Its name inside the archive (and in the restore directory).
    pub name: String,
    /// Its key names (never a value).
    pub keys: Vec<String>,
}

/// The newest configuration backup in the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigBackup {
    /// `config_YYYYmmdd_HHMMSS`.
    pub name: String,
    /// The archive.
    pub archive: Option<PathBuf>,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Its age at [`Inputs::now`].
    pub age_ms: u64,
    /// Whether it is age-encrypted (an identity is needed to restore it).
    pub encrypted: Option<bool>,
    /// Its files, from its manifest.
    pub files: Vec<ConfigFile>,
}

/// What the repository holds, or why the runbook has no backups to name.
// Made once per runbook: the size of the listing does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Backups {
    /// No `--repo`, no plan `repo`, no `$PGDRILL_REPO`.
    NoRepo,
    /// The repository, read.
    Repo {
        /// Its directory.
        dir: PathBuf,
        /// The newest database backup with a dump, if any.
        database: Option<DatabaseBackup>,
        /// How many database backups it holds.
        database_count: usize,
        /// The newest configuration backup, if any.
        config: Option<ConfigBackup>,
        /// How many configuration backups it holds.
        config_count: usize,
    },
}

/// The last drill the history counts, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum LastDrill {
    /// No history file at that path.
    NoHistory(PathBuf),
    /// The file holds no real drill (only test drills, or nothing).
    NoDrill(PathBuf),
    /// The newest real drill.
    Found {
        /// The history file.
        path: PathBuf,
        /// Its line.
        entry: Box<Entry>,
        /// How long ago it finished, when its time reads.
        age_ms: Option<u64>,
    },
}

/// Everything the runbook says, read from the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The plan file it was made from.
    pub plan_file: Option<PathBuf>,
    /// The deployment's commands, paths and names.
    pub deployment: Deployment,
    /// The emergency contacts.
    pub contacts: Vec<Contact>,
    /// What is wrong with them.
    pub warnings: Vec<ContactWarning>,
    /// The RTO budgets (the plan's, else the strategy's).
    pub budgets: Budgets,
    /// The RPO (the plan's, else the strategy's 15 minutes).
    pub rpo_ms: u64,
    /// The newest backups.
    pub backups: Backups,
    /// The last drill's measured times.
    pub last_drill: LastDrill,
    /// The RTO forecast of the newest drill's backend and `-j`, projected at the newest
    /// backup's size (else the last drill's), when the history has a line.
    pub forecast: Option<crate::report::forecast::Group>,
}

/// Reads the inputs: the repository (listed as `pgdrill verify` lists it) and the history.
/// A repository that is not one is an error naming the fix (exit 2); so is a damaged history
/// line; a history file that is not there is said in the runbook.
pub fn gather(inputs: Inputs) -> Result<Runbook, Error> {
    let plan = inputs.plan.clone().unwrap_or_default();
    let backups = match &inputs.repo {
        None => Backups::NoRepo,
        Some(dir) => read_repo(dir, inputs.now)?,
    };
    let entries = if inputs.history.exists() {
        history::read(&inputs.history)?
    } else {
        Vec::new()
    };
    let last_drill = last_drill(&inputs.history, &entries, inputs.now);
    let from_plan = plan
        .source_dsn
        .as_deref()
        .and_then(|dsn| Endpoint::from_dsn(dsn).ok())
        .map(|e| database_of(&e, "the plan's source_dsn, the database that is backed up"));
    let from_backup = match &backups {
        Backups::Repo {
            database: Some(b), ..
        } => b
            .source
            .as_deref()
            .and_then(|dsn| Endpoint::from_dsn(dsn).ok())
            .map(|e| {
                let mut d = database_of(&e, "the newest backup's manifest, its source server");
                if let Some(name) = &b.database {
                    d.name = name.clone();
                }
                d
            }),
        _ => None,
    };
    let deployment = Deployment {
        database: from_plan.or(from_backup),
        app_stop: plan.app_stop.clone(),
        app_start: plan.app_start.clone(),
        app_health_url: plan.app_health_url.clone(),
        app_version_url: plan.app_version_url.clone(),
        app_log: plan.app_log.clone(),
        code_repo: plan.scope.code_repo.clone(),
        deploy: plan.scope.deploy.clone(),
        rollback_to: plan.scope.rollback_to.clone(),
        config_files: plan.scope.config_file.clone(),
        require: plan.scope.require.clone(),
        // Checked when the plan was parsed (the flag's own parser): none is refused here.
        server_settings: plan
            .server_settings
            .iter()
            .filter_map(|kv| crate::pg::settings::parse_pair(kv).ok())
            .collect(),
    };
    let contacts = plan.record.contacts.clone();
    Ok(Runbook {
        generated_at: inputs.now,
        plan_file: inputs.plan_file,
        deployment,
        warnings: crate::contacts::warnings(&contacts),
        contacts,
        budgets: Budgets {
            database_restore: plan.budget_restore,
            app_restart: plan.budget_app,
            verification: plan.budget_verify,
            config_restore: plan.scope.budget_config,
            code_rollback: plan.scope.budget_code,
            total: plan.budget_total,
        },
        rpo_ms: plan.scope.rpo.as_millis() as u64,
        forecast: forecast(&entries, &backups, &last_drill),
        backups,
        last_drill,
    })
}

/// The forecast at the newest backup's size (else the last drill's) for the newest drill's
/// group, when it has a line.
fn forecast(entries: &[Entry], backups: &Backups, last: &LastDrill) -> Option<Group> {
    let size = match (backups, last) {
        (
            Backups::Repo {
                database: Some(b), ..
            },
            _,
        ) if b.size_bytes.is_some() => b.size_bytes,
        (_, LastDrill::Found { entry, .. }) => entry.backup_size_bytes,
        _ => None,
    }?;
    Forecast::of(entries, size, None)
        .groups
        .into_iter()
        .next()
        .filter(|g| g.fit.is_some())
}

fn database_of(e: &Endpoint, from: &str) -> Database {
    Database {
        host: e.host.clone(),
        port: e.port,
        user: e.user.clone(),
        name: e.dbname.clone(),
        from: from.into(),
    }
}

fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> u64 {
    u64::try_from((now - at).num_milliseconds()).unwrap_or(0)
}

fn read_repo(dir: &Path, now: DateTime<Utc>) -> Result<Backups, Error> {
    let repo = crate::repo::Repo::open(Some(dir.to_path_buf()))?;
    let listing = repo.list()?;
    let database = listing
        .database
        .iter()
        .rev()
        .find(|b| b.dump.is_some())
        .map(|b| {
            let m = b.manifest.as_ref().ok();
            DatabaseBackup {
                dump: b.dump.clone().unwrap_or_default(),
                globals: b.globals.clone(),
                taken_at: b.created_at(),
                age_ms: age(now, b.created_at()),
                size_bytes: m.map(|m| m.size_bytes),
                sha256: m.map(|m| m.sha256.clone()),
                database: m.map(|m| m.database.clone()),
                source: m.map(|m| m.source.clone()),
                tables: m
                    .map(|m| {
                        m.snapshot
                            .tables
                            .iter()
                            .map(|t| (t.name.clone(), t.rows))
                            .collect()
                    })
                    .unwrap_or_default(),
                manifest_problem: b.manifest.as_ref().err().map(|e| e.to_string()),
            }
        });
    let config = listing.config.last().map(|c| {
        // The full manifest (`pgdrill config backup`'s) names the files and their keys; a
        // manifest without them still gives the archive and its time.
        let full: Option<crate::config::Manifest> = std::fs::read_to_string(&c.manifest_path)
            .ok()
            .and_then(|t| crate::json::from_str(&t).ok());
        ConfigBackup {
            name: c.name.clone(),
            archive: c.archive.clone(),
            taken_at: c.created_at(),
            age_ms: age(now, c.created_at()),
            encrypted: c.manifest.as_ref().ok().map(|m| m.encrypted),
            files: full
                .map(|m| {
                    m.files
                        .into_iter()
                        .map(|f| ConfigFile {
                            path: f.path,
                            name: f.name,
                            keys: f.keys,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    });
    Ok(Backups::Repo {
        dir: std::path::absolute(repo.root()).unwrap_or_else(|_| repo.root().to_path_buf()),
        database,
        database_count: listing.database.len(),
        config,
        config_count: listing.config.len(),
    })
}

fn last_drill(path: &Path, entries: &[Entry], now: DateTime<Utc>) -> LastDrill {
    if !path.exists() {
        return LastDrill::NoHistory(path.to_path_buf());
    }
    match entries.iter().rev().find(|e| e.counts() && e.ran()) {
        None => LastDrill::NoDrill(path.to_path_buf()),
        Some(entry) => LastDrill::Found {
            path: path.to_path_buf(),
            age_ms: crate::duration::parse_time(&entry.time)
                .ok()
                .map(|t| age(now, t)),
            entry: Box::new(entry.clone()),
        },
    }
}

/// One piece of the document; [`markdown`] and [`html`] render the same pieces.
#[derive(Debug, Clone)]
enum Block {
    /// A section heading.
    H2(String),
    /// A subsection heading.
    H3(String),
    /// A paragraph; `code` and **bold** spans are kept.
    P(String),
    /// Something that must not be missed.
    Alert(String),
    /// Shell commands, to copy as they are.
    Code(String),
    /// A table: the header, then the rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A bulleted list.
    List(Vec<String>),
    /// Boxes to tick.
    Checklist(Vec<String>),
    /// Numbered steps: a title each, and what to do.
    Steps(Vec<(String, Vec<Block>)>),
}

/// A value for a shell command line: as it is when it is safe bare, else in single quotes.
fn shell(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn p(s: impl Into<String>) -> Block {
    Block::P(s.into())
}

fn code(s: impl Into<String>) -> Block {
    Block::Code(s.into())
}

fn step(title: &str, body: Vec<Block>) -> (String, Vec<Block>) {
    (title.to_string(), body)
}

/// The document: everything the runbook says, in the order an on-call engineer needs it.
fn document(r: &Runbook) -> Vec<Block> {
    let mut d = Vec::new();
    let dep = &r.deployment;
    let from = match &r.plan_file {
        Some(f) => format!("plan `{}`", f.display()),
        None => "no plan file (`--plan FILE` fills in this deployment's commands)".into(),
    };
    d.push(p(format!(
        "Generated by pgdrill {} at {} from {from}. Regenerate it after every change of the plan, and keep a printed copy: `pgdrill runbook --plan FILE --repo DIR --out runbook.md`.",
        env!("CARGO_PKG_VERSION"),
        r.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )));
    d.push(Block::Alert(
        "No automatic restore: every restore is manual. Always verify the backup before the restore, and document every restore operation (the ticket, who, when, what).".into(),
    ));
    if !r.warnings.is_empty() {
        d.push(Block::H2("Warnings".into()));
        d.push(Block::List(
            r.warnings.iter().map(|w| w.message.clone()).collect(),
        ));
    }
    // Contacts first: the first thing to do when a restore is needed is to call.
    d.push(Block::H2("Emergency contacts".into()));
    if r.contacts.is_empty() {
        d.push(p("None given: see the warnings above."));
    } else {
        d.push(Block::Table(
            vec!["Role".into(), "How to reach".into()],
            r.contacts
                .iter()
                .map(|c| vec![c.role.clone(), c.reach.clone()])
                .collect(),
        ));
        d.push(p(
            "Call the Database Admin before dropping anything, and whenever a step below fails.",
        ));
    }
    glance(&mut d, r);
    last_drill_section(&mut d, r);
    database_restore(&mut d, r);
    config_restore(&mut d, r);
    code_rollback(&mut d, dep);
    checklist(&mut d, r);
    d
}

/// The facts at a glance: the database, the newest backups and their ages, the objectives.
fn glance(d: &mut Vec<Block>, r: &Runbook) {
    d.push(Block::H2("At a glance".into()));
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.push(vec![
        "Database".into(),
        match &r.deployment.database {
            Some(db) => format!(
                "`{}` on `{}:{}` as `{}` (from {})",
                db.name, db.host, db.port, db.user, db.from
            ),
            None => "not known: the plan gives no `source_dsn` and the repository no backup; fill in `<host>`, `<user>` and `<database>` below".into(),
        },
    ]);
    match &r.backups {
        Backups::NoRepo => rows.push(vec![
            "Backups".into(),
            "no repository given: pass `--repo DIR` (or `repo` in the plan) to name the newest backups; the commands below say `/backups`, the strategy's location".into(),
        ]),
        Backups::Repo {
            dir,
            database,
            database_count,
            config,
            config_count,
        } => {
            rows.push(vec!["Repository".into(), format!("`{}`", dir.display())]);
            rows.push(vec![
                "Newest database backup".into(),
                match database {
                    Some(b) => format!(
                        "`{}`, taken {} (**{} ago**){}; {database_count} in the repository",
                        b.dump.display(),
                        b.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        human_ms(b.age_ms),
                        b.size_bytes
                            .map(|n| format!(", {n} bytes"))
                            .unwrap_or_default()
                    ),
                    None => "none: the repository holds no database backup; there is nothing to restore from it".into(),
                },
            ]);
            rows.push(vec![
                "Newest configuration backup".into(),
                match config {
                    Some(c) => format!(
                        "`{}`, taken {} (**{} ago**); {config_count} in the repository",
                        c.archive
                            .as_ref()
                            .map(|a| a.display().to_string())
                            .unwrap_or_else(|| c.name.clone()),
                        c.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        human_ms(c.age_ms)
                    ),
                    None => "none in the repository".into(),
                },
            ]);
        }
    }
    let b = &r.budgets;
    rows.push(vec![
        "RTO".into(),
        format!(
            "{} in all: database restore {}, application restart {}, verification {}",
            human_ms(ms(b.total)),
            human_ms(ms(b.database_restore)),
            human_ms(ms(b.app_restart)),
            human_ms(ms(b.verification))
        ),
    ]);
    rows.push(vec![
        "RPO".into(),
        format!(
            "{}: a restore of the newest backup loses what was written since it was taken",
            human_ms(r.rpo_ms)
        ),
    ]);
    d.push(Block::Table(vec!["".into(), "".into()], rows));
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The last drill's measured phase groups against the RTO budgets.
fn last_drill_section(d: &mut Vec<Block>, r: &Runbook) {
    d.push(Block::H2("The last drill against the RTO".into()));
    match &r.last_drill {
        LastDrill::NoHistory(path) => d.push(p(format!(
            "No drill history at `{}`: no restore of these backups has been measured. Run `pgdrill drill --repo DIR` (it appends to the history), or name the history with `--history FILE`.",
            path.display()
        ))),
        LastDrill::NoDrill(path) => d.push(p(format!(
            "`{}` holds no drill that ran (test drills are not counted): no restore has been measured.",
            path.display()
        ))),
        LastDrill::Found { path, entry, age_ms } => {
            d.push(p(format!(
                "Drill `{}` finished {}{}: **{}**{}. From `{}`.",
                entry.drill_id,
                entry.time,
                age_ms
                    .map(|a| format!(" ({} ago)", human_ms(a)))
                    .unwrap_or_default(),
                match entry.verdict {
                    crate::report::Verdict::Pass => "pass",
                    crate::report::Verdict::Fail => "FAIL",
                    crate::report::Verdict::Error => "could not run",
                },
                entry
                    .failed
                    .as_deref()
                    .map(|f| format!(" (failed at {f})"))
                    .unwrap_or_default(),
                path.display()
            )));
            let rows = entry
                .budgets
                .iter()
                .map(|b| {
                    vec![
                        b.name.replace('_', " "),
                        human_ms(b.used_ms),
                        human_ms(b.limit_ms),
                        if b.used_ms <= b.limit_ms {
                            format!("within, {} to spare", human_ms(b.limit_ms - b.used_ms))
                        } else {
                            format!("**over by {}**", human_ms(b.used_ms - b.limit_ms))
                        },
                    ]
                })
                .collect();
            d.push(Block::Table(
                vec![
                    "Budget".into(),
                    "Measured".into(),
                    "Limit".into(),
                    "Against the limit".into(),
                ],
                rows,
            ));
            if let Some(size) = entry.backup_size_bytes {
                d.push(p(format!(
                    "That drill restored a backup of {size} bytes; a larger backup takes longer."
                )));
            }
            if let Some(g) = &r.forecast {
                d.push(Block::H3("RTO forecast".into()));
                d.push(p(format!(
                    "The database restore time fitted against backup size over the drill history (least squares; `pgdrill forecast --history {} --size SIZE` projects at any size):",
                    shell(&path.display().to_string())
                )));
                d.push(Block::List(g.summary.clone()));
            }
        }
    }
}

/// The dump the commands name, and whether it is the repository's (else a placeholder).
fn dump_path(r: &Runbook) -> String {
    match &r.backups {
        Backups::Repo {
            database: Some(b), ..
        } => b.dump.display().to_string(),
        Backups::Repo { dir, .. } => format!("{}/database/backup_<timestamp>.dump", dir.display()),
        Backups::NoRepo => "/backups/database/backup_<timestamp>.dump".into(),
    }
}

fn repo_dir(r: &Runbook) -> String {
    match &r.backups {
        Backups::Repo { dir, .. } => dir.display().to_string(),
        Backups::NoRepo => crate::repo::DEFAULT_REPO.into(),
    }
}

/// The strategy's step 1 or 6 command: the plan's, else the strategy's own with a comment.
fn app_command(cmd: &Option<String>, verb: &str) -> String {
    match cmd {
        Some(c) => c.clone(),
        None => format!(
            "# the plan gives no app_{verb}: the strategy's commands\nsystemctl {verb} app\n# or\ndocker {verb} <app_container>"
        ),
    }
}

/// The flags that name the application to pgdrill's real restores: the plan's stop and
/// start commands (else the strategy's `systemctl … app`) and its health URL.
fn app_flags(dep: &Deployment) -> String {
    let mut f = match (&dep.app_stop, &dep.app_start) {
        (Some(stop), Some(start)) => format!(
            " \\\n  --app-stop {} \\\n  --app-start {}",
            shell(stop),
            shell(start)
        ),
        _ => " \\\n  --app-unit app".to_string(),
    };
    if let Some(h) = &dep.app_health_url {
        let _ = write!(f, " \\\n  --app-health-url {}", shell(h));
    }
    f
}

/// Part 1: the database restore, pgdrill's command first, then the strategy's seven steps.
fn database_restore(d: &mut Vec<Block>, r: &Runbook) {
    let dep = &r.deployment;
    let db = dep.database.clone();
    let name = db
        .as_ref()
        .map(|db| db.name.clone())
        .unwrap_or_else(|| "<database>".into());
    let target = db
        .as_ref()
        .map(Database::url)
        .unwrap_or_else(|| "postgresql://<user>:$PGPASSWORD@<host>:5432/<database>".into());
    let client = db
        .as_ref()
        .map(Database::client_args)
        .unwrap_or_else(|| "-h <host> -p 5432 -U <user>".into());
    let dump = dump_path(r);
    d.push(Block::H2("1. Database restore".into()));
    d.push(p(format!(
        "Budget: {} for the database restore, {} in all. Prerequisites: the application stopped, the backup file there, its integrity checked (pgdrill does all three).",
        human_ms(ms(r.budgets.database_restore)),
        human_ms(ms(r.budgets.total))
    )));
    d.push(Block::H3("With pgdrill (recommended)".into()));
    let mut cmd = format!(
        "pgdrill restore \\\n  --target-dsn \"{target}\" \\\n  --repo {} --pick newest",
        shell(&repo_dir(r))
    );
    cmd.push_str(&app_flags(dep));
    cmd.push_str(" \\\n  --operator \"$USER\" --ticket <INCIDENT-ID> --reason \"<what happened>\"");
    let app_note = match (&dep.app_stop, &dep.app_start) {
        (Some(_), Some(_)) => String::new(),
        _ => " The plan gives no `app_stop` and `app_start`: the command says `--app-unit app` (the strategy's `systemctl … app`); use `--app-container NAME` for a container.".into(),
    };
    d.push(Block::Steps(vec![
        step(
            "Set the password, then run the dry run (it changes nothing and prints the plan)",
            vec![
                p(format!(
                    "The password is never written here: type it into `PGPASSWORD` (percent-encode it if it holds `@`, `/` or `:`).{app_note}"
                )),
                code(format!(
                    "read -rs PGPASSWORD && export PGPASSWORD\n{cmd}"
                )),
            ],
        ),
        step(
            "Read the plan it printed: the backup, its age, the database, what is kept",
            vec![p(
                "The previous database is kept beside the restored one unless you add `--drop-previous`; `--in-place` restores into the database itself.",
            )],
        ),
        step(
            &format!("Run it for real: the same command with `--confirm {name}`"),
            vec![code(format!("{cmd} \\\n  --confirm {}", shell(&name)))],
        ),
        step(
            "Work through the verification checklist (part 4) and file the report it wrote",
            vec![],
        ),
    ]));
    d.push(Block::H3("By hand: the strategy's seven steps".into()));
    d.push(p(format!(
        "When pgdrill cannot be used. Set `PGPASSWORD` first as above. The backup: `{dump}`."
    )));
    let mut verify_backup = vec![];
    if let Backups::Repo {
        database: Some(b), ..
    } = &r.backups
    {
        if let Some(sha) = &b.sha256 {
            verify_backup.push(p(format!(
                "Before anything else, check the backup file's integrity: its SHA-256 must be `{sha}` (from its manifest)."
            )));
            verify_backup.push(code(format!(
                "sha256sum {}\npg_restore --list {} > /dev/null && echo readable",
                shell(&dump),
                shell(&dump)
            )));
        }
        if let Some(why) = &b.manifest_problem {
            verify_backup.push(Block::Alert(format!(
                "Its manifest cannot be read ({why}): its checksum cannot be checked."
            )));
        }
    }
    let globals = match &r.backups {
        Backups::Repo {
            database: Some(b), ..
        } => b.globals.clone(),
        _ => None,
    };
    let mut create = Vec::new();
    if !dep.server_settings.is_empty() {
        // The RTO the drills measured holds only on a server configured as theirs was.
        create.push(p(
            "On a new server, give it the settings the drills measured the RTO with (the plan's `[server]` settings), then restart it:",
        ));
        let mut sql: Vec<String> = dep
            .server_settings
            .iter()
            .map(|(k, v)| {
                let sql = format!("ALTER SYSTEM SET {k} = {}", crate::pg::literal(v));
                // Double quotes read better than nested single ones, where nothing in the
                // value means anything to the shell.
                let plain = v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " ._-,:/".contains(c));
                let arg = if plain {
                    format!("\"{sql}\"")
                } else {
                    shell(&sql)
                };
                format!("psql {client} -d postgres -c {arg}")
            })
            .collect();
        sql.push("sudo systemctl restart postgresql".into());
        create.push(code(sql.join("\n")));
    }
    create.push(code(format!("createdb {client} {}", shell(&name))));
    if let Some(g) = globals {
        create.push(p(
            "On a new server, create the roles first (from the backup's globals file):",
        ));
        create.push(code(format!(
            "psql {client} -d postgres -f {}",
            shell(&g.display().to_string())
        )));
    }
    let counts = match &r.backups {
        Backups::Repo {
            database: Some(b), ..
        } if !b.tables.is_empty() => {
            let mut v = vec![p(
                "Each table's rows at the backup, from its manifest: the restored counts must be the same.",
            )];
            v.push(Block::Table(
                vec!["Table".into(), "Rows at the backup".into()],
                b.tables
                    .iter()
                    .map(|(t, n)| vec![format!("`{t}`"), n.to_string()])
                    .collect(),
            ));
            let sql: Vec<String> = b
                .tables
                .iter()
                .map(|(t, _)| {
                    format!(
                        "psql {client} -d {} -c {}",
                        shell(&name),
                        shell(&format!("SELECT COUNT(*) FROM {t};"))
                    )
                })
                .collect();
            v.push(code(sql.join("\n")));
            v
        }
        _ => vec![code(
            ["users", "subscriptions", "payments"]
                .iter()
                .map(|t| {
                    format!(
                        "psql {client} -d {} -c \"SELECT COUNT(*) FROM {t};\"",
                        shell(&name)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )],
    };
    let mut first = verify_backup;
    first.push(code(app_command(&dep.app_stop, "stop")));
    let mut health: Vec<Block> = match &dep.app_health_url {
        Some(h) => vec![code(format!("curl -fsS {}", shell(h)))],
        None => vec![p(
            "The plan gives no `app_health_url`: check the application's health endpoint.",
        )],
    };
    health.push(Block::List(vec![
        "Check the health endpoint (above).".into(),
        "Verify the database connection.".into(),
        "Check the background workers.".into(),
        match &dep.app_log {
            Some(l) => format!("Monitor the logs for errors: `tail -f {}`.", l.display()),
            None => "Monitor the logs for errors.".into(),
        },
    ]));
    d.push(Block::Steps(vec![
        step("Stop the application", first),
        step(
            "Drop the existing database (if needed)",
            vec![
                Block::Alert(
                    "WARNING: this deletes all data. Call the Database Admin first.".into(),
                ),
                code(format!("dropdb {client} {}", shell(&name))),
            ],
        ),
        step("Create the new database", create),
        step(
            "Restore from the backup",
            vec![code(format!(
                "pg_restore {client} -d {} -v --exit-on-error {}",
                shell(&name),
                shell(&dump)
            ))],
        ),
        step("Verify data integrity", counts),
        step(
            "Restart the application",
            vec![code(app_command(&dep.app_start, "start"))],
        ),
        step("Verify application health", health),
    ]));
}

/// Part 2: the configuration restore, with the newest backup's files and key names.
fn config_restore(d: &mut Vec<Block>, r: &Runbook) {
    let dep = &r.deployment;
    d.push(Block::H2("2. Configuration restore".into()));
    let config = match &r.backups {
        Backups::Repo { config, .. } => config.clone(),
        Backups::NoRepo => None,
    };
    let (name, files) = match &config {
        Some(c) => (c.name.clone(), c.files.clone()),
        None => {
            d.push(p(match &r.backups {
                Backups::NoRepo => "No repository given: the configuration backup's name and files are not known here; `pgdrill config restore` picks the newest by itself.",
                Backups::Repo { .. } => "The repository holds no configuration backup: take one with `pgdrill config backup --repo DIR --file PATH --recipient AGE_KEY` (the strategy: every hour, kept 30 days).",
            }));
            (String::new(), Vec::new())
        }
    };
    let mut restore = format!("pgdrill config restore --repo {}", shell(&repo_dir(r)));
    if !name.is_empty() {
        let _ = write!(restore, " --backup {name}");
    }
    if config.as_ref().and_then(|c| c.encrypted) != Some(false) {
        restore.push_str(" --identity <age identity file>");
    }
    restore.push_str(" --to /tmp/config-restore");
    let required: Vec<String> = if dep.require.is_empty() {
        files.iter().flat_map(|f| f.keys.clone()).collect()
    } else {
        dep.require.clone()
    };
    for k in &dep.require {
        let _ = write!(restore, " --require {}", shell(k));
    }
    let mut copy: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "cp -p /tmp/config-restore/{} {}",
                shell(&f.name),
                shell(&f.path)
            )
        })
        .collect();
    if copy.is_empty() {
        copy = if dep.config_files.is_empty() {
            vec!["cp -p /tmp/config-restore/<file> /app/.env".into()]
        } else {
            dep.config_files
                .iter()
                .map(|f| {
                    let n = f
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!(
                        "cp -p /tmp/config-restore/{} {}",
                        shell(&n),
                        shell(&f.display().to_string())
                    )
                })
                .collect()
        };
    }
    // The live directory: the one the plan's configuration files share.
    let live_dir = {
        let parents: std::collections::BTreeSet<_> = dep
            .config_files
            .iter()
            .filter_map(|f| f.parent().map(|p| p.display().to_string()))
            .collect();
        match parents.len() {
            1 => shell(
                parents
                    .iter()
                    .next()
                    .map(String::as_str)
                    .unwrap_or_default(),
            ),
            _ => "<the application's configuration directory>".to_string(),
        }
    };
    let mut live = format!(
        "{} \\\n  --to {live_dir}{}",
        restore.replace(" --to /tmp/config-restore", ""),
        app_flags(dep)
    );
    live.push_str(
        " \\\n  --operator \"$USER\" --ticket <INCIDENT-ID> --reason \"<what happened>\"",
    );
    d.push(Block::H3("With pgdrill (recommended)".into()));
    d.push(Block::Steps(vec![
        step(
            "Run the dry run: the backup checked in memory, every file it would change, add or keep; nothing is written",
            vec![code(live.clone())],
        ),
        step(
            "Run it: the backup checked, the application stopped, the files put in place (the replaced ones kept in .pgdrill_before_<time>/), the application started and its health asked",
            vec![code(format!("{live} \\\n  --confirm {}", if name.is_empty() { "<backup name from the dry run>" } else { name.as_str() }))],
        ),
    ]));
    d.push(Block::H3("By hand (the strategy's steps)".into()));
    let mut check = vec![p(
        "Check the environment variables, the API keys and the VPN configuration.",
    )];
    if !required.is_empty() {
        check.push(p(format!(
            "These keys must be present and not empty: {}.",
            required
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    d.push(Block::Steps(vec![
        step(
            "Stop the application",
            vec![code(app_command(&dep.app_stop, "stop"))],
        ),
        step(
            "Restore the configuration files (checked whole, into a new directory), then put them in place",
            vec![code(format!("{restore}\n{}", copy.join("\n")))],
        ),
        step("Verify the configuration", check),
        step(
            "Restart the application",
            vec![code(app_command(&dep.app_start, "start"))],
        ),
    ]));
}

/// Part 3: the code rollback, in the plan's repository with its deploy command.
fn code_rollback(d: &mut Vec<Block>, dep: &Deployment) {
    d.push(Block::H2("3. Application code rollback".into()));
    let repo = dep
        .code_repo
        .as_ref()
        .map(|p| shell(&p.display().to_string()))
        .unwrap_or_else(|| "<code repository>".into());
    if dep.code_repo.is_none() {
        d.push(p(
            "The plan gives no `code_repo`: fill in the application's git repository.",
        ));
    }
    let target = if dep.rollback_to == "previous" {
        "<tag before the deployed one>".to_string()
    } else {
        dep.rollback_to.clone()
    };
    let deploy = match &dep.deploy {
        Some(c) => c.clone(),
        None => {
            "# the plan gives no deploy command: follow the standard deployment procedure".into()
        }
    };
    let mut verify = vec![Block::List(vec![
        "Check the application version.".into(),
        "Verify the health checks.".into(),
        "Monitor for errors.".into(),
    ])];
    if let Some(v) = &dep.app_version_url {
        verify.insert(0, code(format!("curl -fsS {}", shell(v))));
    }
    let mut rollback = format!(
        "pgdrill rollback --code-repo {repo} \\\n  --deploy {} \\\n  --deploy-dir <deploy directory> --to {}",
        dep.deploy
            .as_deref()
            .map(shell)
            .unwrap_or_else(|| "<deploy command>".into()),
        shell(&dep.rollback_to)
    );
    if let Some(v) = &dep.app_version_url {
        let _ = write!(rollback, " \\\n  --version-url {}", shell(v));
    }
    if let Some(h) = &dep.app_health_url {
        let _ = write!(rollback, " \\\n  --app-health-url {}", shell(h));
    }
    rollback.push_str(
        " \\\n  --operator \"$USER\" --ticket <INCIDENT-ID> --reason \"<what happened>\"",
    );
    d.push(Block::H3("With pgdrill (recommended)".into()));
    d.push(Block::Steps(vec![
        step(
            "Run the dry run: the tags, the release deployed now, the one it rolls back to; nothing is changed",
            vec![code(rollback.clone())],
        ),
        step(
            "Run it: a clean checkout of the tag, the deploy, the version it reports and the health checks",
            vec![code(format!(
                "{rollback} \\\n  --confirm {}",
                if dep.rollback_to == "previous" {
                    "<the tag the dry run names>".to_string()
                } else {
                    shell(&target)
                }
            ))],
        ),
    ]));
    d.push(Block::H3("By hand (the strategy's steps)".into()));
    d.push(Block::Steps(vec![
        step(
            "Identify the target version",
            vec![code(format!(
                "git -C {repo} tag -l --sort=-creatordate | head\ngit -C {repo} describe --tags   # what is deployed now"
            ))],
        ),
        step(
            "Check out the target version",
            vec![code(format!("git -C {repo} checkout {}", shell(&target)))],
        ),
        step(
            "Deploy the rollback, then verify the deployment marker",
            vec![code(deploy)],
        ),
        step("Verify the rollback", verify),
    ]));
}

/// Part 4: the strategy's ten checklist items, with the command that shows each where there
/// is one.
fn checklist(d: &mut Vec<Block>, r: &Runbook) {
    d.push(Block::H2("4. Verification checklist".into()));
    d.push(p(format!(
        "After the restore; {} for all of it.",
        human_ms(ms(r.budgets.verification))
    )));
    let dep = &r.deployment;
    let items = CheckItem::ALL
        .iter()
        .map(|i| {
            let how = match i {
                CheckItem::DatabaseConnection => dep.database.as_ref().map(|db| {
                    format!(
                        "`psql {} -d {} -c 'SELECT 1'`",
                        db.client_args(),
                        shell(&db.name)
                    )
                }),
                CheckItem::AppHealth | CheckItem::SystemHealthy => dep
                    .app_health_url
                    .as_ref()
                    .map(|h| format!("`curl -fsS {}`", shell(h))),
                CheckItem::NoLogErrors => dep
                    .app_log
                    .as_ref()
                    .map(|l| format!("`grep -i error {}`", shell(&l.display().to_string()))),
                _ => None,
            };
            match how {
                Some(how) => format!("{}: {how}", i.title()),
                None => i.title().to_string(),
            }
        })
        .collect();
    d.push(Block::Checklist(items));
}

/// The runbook as Markdown: numbered steps, commands in fenced blocks.
pub fn markdown(r: &Runbook) -> String {
    let mut s = String::from("# Restore runbook\n\n");
    for b in document(r) {
        md_block(&mut s, &b, "");
    }
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

fn md_block(s: &mut String, b: &Block, indent: &str) {
    match b {
        Block::H2(t) => {
            let _ = writeln!(s, "## {t}\n");
        }
        Block::H3(t) => {
            let _ = writeln!(s, "### {t}\n");
        }
        Block::P(t) => {
            let _ = writeln!(s, "{indent}{t}\n");
        }
        Block::Alert(t) => {
            let _ = writeln!(s, "{indent}> **{t}**\n");
        }
        Block::Code(c) => {
            let _ = writeln!(s, "{indent}```sh");
            for l in c.lines() {
                let _ = writeln!(s, "{indent}{l}");
            }
            let _ = writeln!(s, "{indent}```\n");
        }
        Block::Table(head, rows) => {
            let _ = writeln!(
                s,
                "{indent}| {} |",
                head.iter()
                    .map(|h| md_cell(h))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(s, "{indent}|{}", "---|".repeat(head.len()));
            for row in rows {
                let _ = writeln!(
                    s,
                    "{indent}| {} |",
                    row.iter()
                        .map(|c| md_cell(c))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
            s.push('\n');
        }
        Block::List(items) => {
            for i in items {
                let _ = writeln!(s, "{indent}- {i}");
            }
            s.push('\n');
        }
        Block::Checklist(items) => {
            for i in items {
                let _ = writeln!(s, "{indent}- [ ] {i}");
            }
            s.push('\n');
        }
        Block::Steps(steps) => {
            for (n, (title, body)) in steps.iter().enumerate() {
                let _ = writeln!(s, "{indent}{}. **{title}**\n", n + 1);
                // A list item's own blocks are indented past its number.
                let inner = format!("{indent}   ");
                for b in body {
                    md_block(s, b, &inner);
                }
            }
        }
    }
}

/// The runbook as one self-contained HTML page, from the same document as [`markdown`].
pub fn html(r: &Runbook) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Restore runbook</title>\n<style>\n",
    );
    s.push_str(STYLE);
    s.push_str("</style>\n</head>\n<body>\n<main>\n<h1>Restore runbook</h1>\n");
    for b in document(r) {
        html_block(&mut s, &b);
    }
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

/// Large type and plain boxes: read on a phone or on paper at 3 a.m.
const STYLE: &str = "body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #1f2328; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
code { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
.alert { border-left: 4px solid #cf222e; background: #fff0f0; padding: .5rem .8rem; font-weight: 600; }
ol > li { margin-bottom: .8rem; }
ul.checklist { list-style: none; padding-left: 0; }
@media print { pre, table, li { break-inside: avoid; } }
";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown of the document's text: `code` and **bold**, the rest escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            for (j, text) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<strong>{}</strong>", esc(text));
                } else {
                    out.push_str(&esc(text));
                }
            }
        }
    }
    out
}

fn html_block(s: &mut String, b: &Block) {
    match b {
        Block::H2(t) => {
            let _ = writeln!(s, "<h2>{}</h2>", inline(t));
        }
        Block::H3(t) => {
            let _ = writeln!(s, "<h3>{}</h3>", inline(t));
        }
        Block::P(t) => {
            let _ = writeln!(s, "<p>{}</p>", inline(t));
        }
        Block::Alert(t) => {
            let _ = writeln!(s, "<p class=\"alert\" role=\"alert\">{}</p>", inline(t));
        }
        Block::Code(c) => {
            let _ = writeln!(s, "<pre><code>{}</code></pre>", esc(c));
        }
        Block::Table(head, rows) => {
            s.push_str("<table>\n");
            if head.iter().any(|h| !h.is_empty()) {
                let _ = writeln!(
                    s,
                    "<thead><tr>{}</tr></thead>",
                    head.iter()
                        .map(|h| format!("<th scope=\"col\">{}</th>", inline(h)))
                        .collect::<String>()
                );
            }
            s.push_str("<tbody>\n");
            for row in rows {
                let _ = writeln!(
                    s,
                    "<tr>{}</tr>",
                    row.iter()
                        .map(|c| format!("<td>{}</td>", inline(c)))
                        .collect::<String>()
                );
            }
            s.push_str("</tbody>\n</table>\n");
        }
        Block::List(items) => {
            let _ = writeln!(
                s,
                "<ul>{}</ul>",
                items
                    .iter()
                    .map(|i| format!("<li>{}</li>", inline(i)))
                    .collect::<String>()
            );
        }
        Block::Checklist(items) => {
            let _ = writeln!(
                s,
                "<ul class=\"checklist\">{}</ul>",
                items
                    .iter()
                    .map(|i| format!("<li>&#9744; {}</li>", inline(i)))
                    .collect::<String>()
            );
        }
        Block::Steps(steps) => {
            s.push_str("<ol>\n");
            for (title, body) in steps {
                let _ = writeln!(s, "<li><strong>{}</strong>", inline(title));
                for b in body {
                    html_block(s, b);
                }
                s.push_str("</li>\n");
            }
            s.push_str("</ol>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_values_are_quoted_only_when_they_need_it() {
        assert_eq!(
            shell("/backups/database/backup_1.dump"),
            "/backups/database/backup_1.dump"
        );
        assert_eq!(shell("systemctl stop app"), "'systemctl stop app'");
        assert_eq!(shell("it's"), r"'it'\''s'");
    }

    #[test]
    fn inline_code_and_bold_become_html_and_the_rest_is_escaped() {
        assert_eq!(
            inline("run `a <b>` **now** & <then>"),
            "run <code>a &lt;b&gt;</code> <strong>now</strong> &amp; &lt;then&gt;"
        );
    }

    #[test]
    fn a_runbook_without_inputs_says_what_is_missing_and_holds_no_secret() {
        let plan = DrillOptions {
            source_dsn: Some("postgresql://app:s3cret@db.internal:5433/shop".into()),
            ..DrillOptions::default()
        };
        let r = gather(Inputs {
            plan: Some(plan),
            plan_file: None,
            repo: None,
            history: "/nonexistent/history.ndjson".into(),
            now: Utc::now(),
        })
        .unwrap();
        let md = markdown(&r);
        assert!(!md.contains("s3cret"), "{md}");
        assert!(md.contains("no repository given"), "{md}");
        assert!(md.contains("No drill history at `/nonexistent/history.ndjson`"));
        assert!(md.contains("--target-dsn \"postgresql://app:$PGPASSWORD@db.internal:5433/shop\""));
        assert!(md.contains("--confirm shop"));
        assert!(md.contains("dropdb -h db.internal -p 5433 -U app shop"));
        let html = html(&r);
        assert!(html.contains("<code>pgdrill runbook --plan FILE"), "{html}");
        assert!(!html.contains("s3cret"));
        assert!(!md.contains("ALTER SYSTEM"), "no settings, no step: {md}");
    }

    /// The plan's `[server]` settings are the new server's: the RTO was measured with them.
    #[test]
    fn the_plan_s_server_settings_come_before_the_new_database() {
        let plan = DrillOptions {
            source_dsn: Some("postgresql://app@db.internal:5433/shop".into()),
            server_settings: vec!["maintenance_work_mem=1GB".into(), "work_mem=64MB".into()],
            ..DrillOptions::default()
        };
        let r = gather(Inputs {
            plan: Some(plan),
            plan_file: None,
            repo: None,
            history: "/nonexistent/history.ndjson".into(),
            now: Utc::now(),
        })
        .unwrap();
        let md = markdown(&r);
        let alter = md
            .find("-U app -d postgres -c \"ALTER SYSTEM SET maintenance_work_mem = '1GB'\"")
            .unwrap_or_else(|| panic!("{md}"));
        assert!(md.contains("ALTER SYSTEM SET work_mem = "), "{md}");
        assert!(alter < md.find("createdb -h db.internal").unwrap(), "{md}");
    }
}
