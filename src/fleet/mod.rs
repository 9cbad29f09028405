//! Fleets: many databases drilled by an engine the team already runs (Docker Swarm,
//! Kubernetes, GitHub Actions), not by a scheduler of pgdrill's own.
//!
//! A fleet file ([`Fleet`]) lists the databases, each as the keys of a drill plan file plus
//! where its secrets come from. [`plan`] writes what each engine runs: one task per database,
//! each task `pgdrill fleet run --index N`, which drills the N-th database. [`report`] gathers
//! the tasks' reports into one fleet report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub mod plan;
pub mod report;

/// The image a fleet's tasks run when the fleet file names none (`scripts/build-images.sh`).
pub const DEFAULT_IMAGE: &str = "pgdrill/pgdrill:local";
/// Where a task finds the fleet file: the Swarm config and the Kubernetes ConfigMap are
/// mounted there.
pub const FILE_IN_TASK: &str = "/etc/pgdrill/fleet.toml";
/// Where Docker mounts a service's secrets, read when a `*_env` variable is not set.
pub const SECRETS_DIR: &str = "/run/secrets";

/// Drill flags whose values are credentials: a fleet file may not hold them inline.
const SECRET_FLAGS: [&str; 5] = [
    "source_dsn",
    "target_dsn",
    "pitr_source_dsn",
    "server_settings_from",
    "notify",
];

/// Keys of a `[[database]]` that are the fleet's, not drill flags.
const OWN_KEYS: [&str; 1] = ["name"];

/// Why a fleet file, an index or a reports directory is unusable.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The fleet file cannot be read.
    #[error("cannot read the fleet file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The fleet file is wrong; the message names the key and the fix.
    #[error("fleet file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and the fix.
        message: String,
    },
    /// `fleet run` was not told which database, or the index is past the list.
    #[error("{0}")]
    Index(String),
    /// A secret the database needs is in neither the environment nor the secrets directory.
    #[error("database `{database}`: {flag} comes from {source_desc}, which is not there: {fix}")]
    SecretMissing {
        /// The database.
        database: String,
        /// The drill flag the secret is for (`--source-dsn`).
        flag: String,
        /// `$BILLING_DSN or /run/secrets/BILLING_DSN`.
        source_desc: String,
        /// How to provide it.
        fix: String,
    },
    /// A reports directory (`fleet report DIR`) or a report in it cannot be read.
    #[error("cannot read {path}: {message}")]
    Reports {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl FleetError {
    /// Whether this is a wrong argument or file (exit 2) rather than the machine's problem.
    pub fn is_usage(&self) -> bool {
        !matches!(self, FleetError::SecretMissing { .. })
    }
}

/// A wrong fleet file, index or reports directory is a usage error (exit 2); a secret the
/// task's environment lacks is the machine's (exit 3).
impl From<FleetError> for crate::error::Error {
    fn from(e: FleetError) -> Self {
        if e.is_usage() {
            crate::error::Error::Usage(e.to_string())
        } else {
            crate::error::Error::CannotRun(e.to_string())
        }
    }
}

/// Where one secret of a database comes from when its task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable (`source_dsn_env = "BILLING_DSN"`); on Swarm, the Docker
    /// secret of the same name under /run/secrets.
    Env {
        /// The variable.
        var: String,
    },
    /// A file (`source_dsn_file = "/run/secrets/billing"`), its content trimmed.
    File {
        /// The file.
        path: PathBuf,
    },
}

/// One secret drill flag of a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    /// The drill key it gives, `source_dsn`.
    pub key: String,
    /// Where its value is read at run time.
    pub source: SecretSource,
}

/// One database of the fleet: a drill plan's keys and its secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Database {
    /// Its name: a DNS label, the reports' subdirectory and the alert's `database`.
    pub name: String,
    /// The drill keys, the fleet's `[defaults]` under the database's own.
    #[serde(skip)]
    pub drill: toml::Table,
    /// Its secret flags.
    pub secrets: Vec<Secret>,
}

/// A directory a task mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The path inside the task.
    pub path: String,
    /// On Swarm: a host directory (absolute) or a volume's name.
    pub swarm: Option<String>,
    /// On Kubernetes: a PersistentVolumeClaim's name.
    pub kubernetes: Option<String>,
    /// Mounted read-only (backups: the drill only reads them).
    pub read_only: bool,
}

/// The fleet-wide settings (`[fleet]`, `[reports]`, `[swarm]`, `[kubernetes]`, `[github]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// The fleet's name: the service's, the Job's and the workflow's.
    pub name: String,
    /// The image every task runs.
    pub image: String,
    /// At most this many drills at once.
    pub concurrency: u32,
    /// When the fleet runs: a cron expression in UTC (Kubernetes' CronJob, GitHub's schedule).
    pub schedule: String,
    /// How often a failed task is tried again (0: a failed drill is a verdict, not a flake).
    pub retries: u32,
    /// How long one task may run before the engine stops it.
    pub task_deadline: Duration,
    /// Where each task writes its reports: `<reports>/<database>/<time>/`.
    pub reports: Mount,
    /// The other directories every task mounts (backups, repositories).
    pub mounts: Vec<Mount>,
    /// Swarm: the network the tasks join (`host` to reach servers on the node's loopback).
    pub swarm_network: Option<String>,
    /// Kubernetes: the namespace.
    pub namespace: String,
    /// Kubernetes: the Secret whose keys are the `*_env` variables.
    pub kubernetes_secret: String,
    /// GitHub Actions: the runner label.
    pub runs_on: String,
}

/// A fleet file, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file's bytes, for the Swarm config and the ConfigMap.
    #[serde(skip)]
    pub text: String,
    /// The fleet-wide settings.
    pub settings: Settings,
    /// The databases, in the file's order: a task's index is a place in this list.
    pub databases: Vec<Database>,
}

impl Fleet {
    /// Reads and checks a fleet file.
    pub fn read(path: &Path) -> Result<Fleet, FleetError> {
        let bytes = std::fs::read(path).map_err(|source| FleetError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| FleetError::Invalid {
            path: path.to_path_buf(),
            message: "not UTF-8 text".into(),
        })?;
        Fleet::parse(path, text)
    }

    /// Checks a fleet file's text; `path` names it in errors.
    pub fn parse(path: &Path, text: String) -> Result<Fleet, FleetError> {
        let bad = |message: String| FleetError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let table = crate::plan::toml_table(&text).map_err(&bad)?;
        for key in table.keys() {
            if ![
                "fleet",
                "defaults",
                "database",
                "mount",
                "reports",
                "swarm",
                "kubernetes",
                "github",
            ]
            .contains(&key.as_str())
            {
                return Err(bad(format!(
                    "unknown table `{key}`; a fleet file has [fleet], [defaults], [[database]], [[mount]], [reports], [swarm], [kubernetes] and [github]"
                )));
            }
        }
        let fleet = sub_table(&table, "fleet").map_err(&bad)?;
        let name = string(&fleet, "fleet", "name")
            .map_err(&bad)?
            .ok_or_else(|| bad("[fleet] needs `name`, e.g. name = \"shop\"".into()))?;
        dns_label(&name).map_err(|m| bad(format!("[fleet] name: {m}")))?;
        check_keys(
            &fleet,
            "fleet",
            &[
                "name",
                "image",
                "concurrency",
                "schedule",
                "retries",
                "task_deadline",
            ],
        )
        .map_err(&bad)?;
        let concurrency = integer(&fleet, "fleet", "concurrency")
            .map_err(&bad)?
            .unwrap_or(1);
        if concurrency < 1 {
            return Err(bad(
                "[fleet] concurrency must be at least 1 (the drills run at once)".into(),
            ));
        }
        let retries = integer(&fleet, "fleet", "retries")
            .map_err(&bad)?
            .unwrap_or(0);
        let schedule = string(&fleet, "fleet", "schedule")
            .map_err(&bad)?
            .unwrap_or_else(|| "0 3 * * 0".into());
        if schedule.split_whitespace().count() != 5 {
            return Err(bad(format!(
                "[fleet] schedule = \"{schedule}\": expected a cron expression of five fields (minute hour day month weekday), e.g. \"0 3 * * 0\" for Sundays at 03:00 UTC"
            )));
        }

        let defaults = sub_table(&table, "defaults").map_err(&bad)?;
        for key in defaults.keys() {
            if OWN_KEYS.contains(&key.as_str()) {
                return Err(bad(format!(
                    "[defaults] `{key}` belongs to each [[database]], not to the defaults"
                )));
            }
        }
        let Some(list) = table.get("database") else {
            return Err(bad(
                "no [[database]]: list each database to drill, e.g. [[database]] name = \"billing\" source_dsn_env = \"BILLING_DSN\"".into(),
            ));
        };
        let list = list.as_array().ok_or_else(|| {
            bad("`database` must be an array of tables: write each one as [[database]]".into())
        })?;
        let mut databases: Vec<Database> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let t = item
                .as_table()
                .ok_or_else(|| bad(format!("database {i} is not a table: write [[database]]")))?;
            let db = database(i, t, &defaults).map_err(&bad)?;
            if databases.iter().any(|d| d.name == db.name) {
                return Err(bad(format!(
                    "two databases are named `{}`: each needs its own name (its reports' directory)",
                    db.name
                )));
            }
            databases.push(db);
        }
        if databases.is_empty() {
            return Err(bad(
                "[[database]] is empty: list at least one database".into()
            ));
        }

        let task_deadline = match string(&fleet, "fleet", "task_deadline").map_err(&bad)? {
            Some(d) => crate::duration::parse_duration(&d)
                .map_err(|e| bad(format!("[fleet] task_deadline = \"{d}\": {e}")))?,
            None => default_deadline(&databases).map_err(&bad)?,
        };
        let reports_t = sub_table(&table, "reports").map_err(&bad)?;
        check_keys(&reports_t, "reports", &["path", "swarm", "kubernetes"]).map_err(&bad)?;
        let reports = Mount {
            path: string(&reports_t, "reports", "path")
                .map_err(&bad)?
                .unwrap_or_else(|| "/reports".into()),
            swarm: Some(
                string(&reports_t, "reports", "swarm")
                    .map_err(&bad)?
                    .unwrap_or_else(|| "pgdrill-reports".into()),
            ),
            kubernetes: Some(
                string(&reports_t, "reports", "kubernetes")
                    .map_err(&bad)?
                    .unwrap_or_else(|| "pgdrill-reports".into()),
            ),
            read_only: false,
        };
        absolute(&reports.path, "[reports] path").map_err(&bad)?;
        let mut mounts = Vec::new();
        if let Some(m) = table.get("mount") {
            let m = m
                .as_array()
                .ok_or_else(|| bad("`mount` must be written as [[mount]] tables".into()))?;
            for (i, item) in m.iter().enumerate() {
                let what = format!("mount {i}");
                let t = item
                    .as_table()
                    .ok_or_else(|| bad(format!("{what} is not a table: write [[mount]]")))?;
                check_keys(t, &what, &["path", "swarm", "kubernetes", "read_only"])
                    .map_err(&bad)?;
                let path = string(t, &what, "path")
                    .map_err(&bad)?
                    .ok_or_else(|| bad(format!("{what} needs `path`, where the task sees it")))?;
                absolute(&path, &format!("{what} path")).map_err(&bad)?;
                let read_only = match t.get("read_only") {
                    None => true,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(_) => {
                        return Err(bad(format!("{what} read_only: expected true or false")))
                    }
                };
                mounts.push(Mount {
                    swarm: string(t, &what, "swarm").map_err(&bad)?,
                    kubernetes: string(t, &what, "kubernetes").map_err(&bad)?,
                    path,
                    read_only,
                });
            }
        }
        let swarm = sub_table(&table, "swarm").map_err(&bad)?;
        check_keys(&swarm, "swarm", &["network"]).map_err(&bad)?;
        let kube = sub_table(&table, "kubernetes").map_err(&bad)?;
        check_keys(&kube, "kubernetes", &["namespace", "secret"]).map_err(&bad)?;
        let github = sub_table(&table, "github").map_err(&bad)?;
        check_keys(&github, "github", &["runs_on"]).map_err(&bad)?;
        let settings = Settings {
            image: string(&fleet, "fleet", "image")
                .map_err(&bad)?
                .unwrap_or_else(|| DEFAULT_IMAGE.into()),
            concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
            schedule,
            retries: u32::try_from(retries).unwrap_or(u32::MAX),
            task_deadline,
            reports,
            mounts,
            swarm_network: string(&swarm, "swarm", "network").map_err(&bad)?,
            namespace: string(&kube, "kubernetes", "namespace")
                .map_err(&bad)?
                .unwrap_or_else(|| "default".into()),
            kubernetes_secret: string(&kube, "kubernetes", "secret")
                .map_err(&bad)?
                .unwrap_or_else(|| format!("{name}-pgdrill")),
            runs_on: string(&github, "github", "runs_on")
                .map_err(&bad)?
                .unwrap_or_else(|| "ubuntu-latest".into()),
            name,
        };
        Ok(Fleet {
            path: path.to_path_buf(),
            text,
            settings,
            databases,
        })
    }

    /// The database a task runs: `index` counts from 0 in the file's order.
    pub fn at(&self, index: usize) -> Result<&Database, FleetError> {
        self.databases.get(index).ok_or_else(|| {
            FleetError::Index(format!(
                "index {index} is past the fleet's {} databases (0 to {}) in {}",
                self.databases.len(),
                self.databases.len() - 1,
                self.path.display()
            ))
        })
    }

    /// The database of this name.
    pub fn named(&self, name: &str) -> Result<(usize, &Database), FleetError> {
        self.databases
            .iter()
            .enumerate()
            .find(|(_, d)| d.name == name)
            .ok_or_else(|| {
                FleetError::Index(format!(
                    "no database `{name}` in {}; it lists {}",
                    self.path.display(),
                    self.databases
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The environment variables the databases' secrets come from, sorted, once each.
    pub fn secret_vars(&self) -> Vec<String> {
        let mut vars: Vec<String> = self
            .databases
            .iter()
            .flat_map(|d| &d.secrets)
            .filter_map(|s| match &s.source {
                SecretSource::Env { var } => Some(var.clone()),
                SecretSource::File { .. } => None,
            })
            .collect();
        vars.sort();
        vars.dedup();
        vars
    }

    /// How many rounds of `concurrency` tasks the fleet takes.
    pub fn waves(&self) -> u32 {
        let n = u32::try_from(self.databases.len()).unwrap_or(u32::MAX);
        n.div_ceil(self.settings.concurrency)
    }
}

impl Database {
    /// The drill keys with the secrets read: from the environment (`env`) or, for a
    /// variable that is not set, the file of the same name in `secrets_dir` (Docker's); from
    /// a file for `*_file`.
    pub fn resolved(
        &self,
        env: impl Fn(&str) -> Option<String>,
        secrets_dir: &Path,
    ) -> Result<toml::Table, FleetError> {
        let mut drill = self.drill.clone();
        for s in &self.secrets {
            let flag = format!("--{}", s.key.replace('_', "-"));
            let value = match &s.source {
                SecretSource::Env { var } => match env(var).filter(|v| !v.is_empty()) {
                    Some(v) => v,
                    None => {
                        let file = secrets_dir.join(var);
                        read_secret(&file).ok_or_else(|| FleetError::SecretMissing {
                            database: self.name.clone(),
                            flag: flag.clone(),
                            source_desc: format!("${var} or {}", file.display()),
                            fix: format!(
                                "set {var} in the task's environment (Kubernetes: the Secret's key {var}; GitHub: secrets.{var}) or, on Swarm, create the secret: printf %s \"$DSN\" | docker secret create {var} -"
                            ),
                        })?
                    }
                },
                SecretSource::File { path } => {
                    read_secret(path).ok_or_else(|| FleetError::SecretMissing {
                        database: self.name.clone(),
                        flag: flag.clone(),
                        source_desc: path.display().to_string(),
                        fix: "mount the file into the task, or name an environment variable instead (`_env`)".into(),
                    })?
                }
            };
            drill.insert(s.key.clone(), toml::Value::String(value));
        }
        Ok(drill)
    }

    /// The RTO total this database's drill is held to (`budget_total`, 30 min by default).
    pub fn rto_total(&self) -> Result<Duration, String> {
        match self.drill.get("budget_total") {
            None => Ok(Duration::from_secs(30 * 60)),
            Some(toml::Value::String(s)) => crate::duration::parse_duration(s)
                .map_err(|e| format!("database `{}`: budget_total = \"{s}\": {e}", self.name)),
            Some(_) => Err(format!(
                "database `{}`: budget_total must be a duration string such as \"30m\"",
                self.name
            )),
        }
    }
}

/// A secret file's content, trimmed of the newline editors and `echo` add.
fn read_secret(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Twice the largest RTO total: the drill's own phases (provisioning, the load, the backup)
/// come on top of the recovery the RTO measures.
fn default_deadline(databases: &[Database]) -> Result<Duration, String> {
    let mut longest = Duration::ZERO;
    for d in databases {
        longest = longest.max(d.rto_total()?);
    }
    Ok(longest * 2)
}

/// One `[[database]]`, checked; `defaults` go under its own keys.
fn database(i: usize, t: &toml::Table, defaults: &toml::Table) -> Result<Database, String> {
    let what = format!("database {i}");
    let name = string(t, &what, "name")?
        .ok_or_else(|| format!("{what} needs `name`, e.g. name = \"billing\""))?;
    dns_label(&name).map_err(|m| format!("{what} name: {m}"))?;
    let what = format!("database `{name}`");
    let mut merged: BTreeMap<String, toml::Value> = BTreeMap::new();
    for (k, v) in defaults.iter().chain(t.iter()) {
        if OWN_KEYS.contains(&k.as_str()) {
            continue;
        }
        merged.insert(k.clone(), v.clone());
    }
    let mut drill = toml::Table::new();
    let mut secrets = Vec::new();
    for (k, v) in merged {
        if k == "server" && v.get("settings_from").is_some() {
            return Err(format!(
                "{what}: `server.settings_from` holds a credential and is never written in a fleet file: give server_settings_from_env = \"VAR\" or server_settings_from_file = \"/path\""
            ));
        }
        if SECRET_FLAGS.contains(&k.as_str()) {
            return Err(format!(
                "{what}: `{k}` holds a credential and is never written in a fleet file: give {k}_env = \"VAR\" (an environment variable, or on Swarm the Docker secret VAR) or {k}_file = \"/path\""
            ));
        }
        let secret = SECRET_FLAGS.iter().find_map(|f| {
            if k == format!("{f}_env") {
                Some((*f, true))
            } else if k == format!("{f}_file") {
                Some((*f, false))
            } else {
                None
            }
        });
        match secret {
            Some((flag, is_env)) => {
                let value = v
                    .as_str()
                    .ok_or_else(|| format!("{what}: `{k}` must be a string"))?
                    .to_string();
                if secrets.iter().any(|s: &Secret| s.key == flag) {
                    return Err(format!("{what}: both {flag}_env and {flag}_file: give one"));
                }
                let source = if is_env {
                    env_name(&value).map_err(|m| format!("{what}: {k} = \"{value}\": {m}"))?;
                    SecretSource::Env { var: value }
                } else {
                    SecretSource::File {
                        path: PathBuf::from(value),
                    }
                };
                secrets.push(Secret {
                    key: flag.to_string(),
                    source,
                });
            }
            None => {
                if matches!(k.as_str(), "out" | "history" | "plan") {
                    return Err(format!(
                        "{what}: `{k}` is chosen by the fleet ({}), not per database",
                        match k.as_str() {
                            "out" => "each drill writes <reports>/<database>/<time>/",
                            "history" => "each database keeps <reports>/<database>/history.ndjson",
                            _ => "a fleet file's [defaults] is its shared plan",
                        }
                    ));
                }
                drill.insert(k, v);
            }
        }
    }
    Ok(Database {
        name,
        drill,
        secrets,
    })
}

/// A DNS label (RFC 1123), as Kubernetes names and Swarm services need: lower-case letters,
/// digits and `-`, at most 40 characters so that `pgdrill-<fleet>-…` names still fit.
fn dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` must be lower-case letters, digits and '-' (not first or last), at most 40 characters: it names directories, Kubernetes objects and Swarm services"
        ))
    }
}

/// An environment variable's name as shells and Docker secrets accept it.
fn env_name(var: &str) -> Result<(), String> {
    let mut chars = var.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("expected an environment variable's name: letters, digits and '_', not starting with a digit".into())
    }
}

fn absolute(path: &str, what: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{what} = \"{path}\": a path inside the task must be absolute, e.g. \"/reports\""
        ))
    }
}

fn sub_table(t: &toml::Table, key: &str) -> Result<toml::Table, String> {
    match t.get(key) {
        None => Ok(toml::Table::new()),
        Some(toml::Value::Table(t)) => Ok(t.clone()),
        Some(_) => Err(format!("`{key}` must be a table: write [{key}]")),
    }
}

fn check_keys(t: &toml::Table, table: &str, known: &[&str]) -> Result<(), String> {
    for k in t.keys() {
        if !known.contains(&k.as_str()) {
            return Err(format!(
                "[{table}] has an unknown key `{k}`; its keys are {}",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

fn string(t: &toml::Table, table: &str, key: &str) -> Result<Option<String>, String> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("[{table}] {key} must be a string")),
    }
}

fn integer(t: &toml::Table, table: &str, key: &str) -> Result<Option<i64>, String> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i)),
        Some(_) => Err(format!("[{table}] {key} must be a whole number, 0 or more")),
    }
}

#[cfg(test)]
mod tests;
