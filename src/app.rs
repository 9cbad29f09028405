//! The application under drill: start it as a child process in its own process group, probe
//! its health, version and metrics over plain HTTP/1.1, read its log, and stop it. Nothing is
//! ever left running: `stop` escalates from SIGTERM to SIGKILL, and `Drop` kills the group.
//!
//! Secrets rule: values of the app's environment never appear in errors or reports. Only key
//! names are shown, and any text that comes back from the app (log lines, HTTP bodies) has
//! those values and the database password replaced by `***`.
//!
//! On the docker backend the sample app runs as a container instead (see
//! [`crate::env::docker::AppContainer`]); the probes, the log reading and the stop report are
//! the same, and `stop` / [`AppProcess::restart_container`] are `docker stop` / `docker start`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::env::docker::{AppContainer, AppPlacement, DockerBackend};

/// How long `start` waits for sample-app's `listening on` line.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the log is re-read while waiting for that line.
const ADDRESS_POLL: Duration = Duration::from_millis(20);
/// Pause between health probes in `wait_healthy`.
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// One health probe gives up after this long.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// /metrics and /version give up after this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP response read.
const MAX_RESPONSE: u64 = 8 * 1024 * 1024;
/// Characters of an HTTP body kept as evidence.
const BODY_EXCERPT: usize = 500;
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 10;
/// Characters of one quoted log line.
const LOG_LINE_CHARS: usize = 300;
/// A custom stop command run from `Drop` (no async there) is given this long.
const DROP_STOP_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Variables sample-app inherits from the drill; everything else comes from the spec, so a
/// stray API_KEY in the drill's own environment cannot hide a "missing key" fault.
const SAMPLE_INHERITED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];
/// sample-app keys whose values are not secret and stay readable in evidence.
const NON_SECRET_KEYS: [&str; 7] = [
    "LISTEN_ADDR",
    "RELEASE",
    "WORKER_INTERVAL_MS",
    "LOG_FORMAT",
    "SAMPLE_APP_FAULT",
    "RUST_LOG",
    "SAMPLE_APP_ENV_FILE",
];
/// Secret values shorter than this are not redacted: replacing "1" or "on" everywhere would
/// destroy the evidence and protect nothing.
const MIN_REDACTED_LEN: usize = 4;

/// Which application the drill runs.
#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AppSpec {
    /// This project's `sample-app` binary; it gets DATABASE_URL from the drill.
    Sample {
        /// Path of the built binary.
        binary: PathBuf,
        /// Extra environment (API_KEY, VPN_PEER, SAMPLE_APP_FAULT, …); wins over DATABASE_URL.
        #[serde(default, deserialize_with = "env_pairs")]
        env: Vec<(String, String)>,
    },
    /// The user's own application.
    Custom(CustomApp),
}

/// The user's own application, described by commands and URLs.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomApp {
    /// Shell command that starts it (`sh -c`); it inherits the drill's environment.
    pub start: String,
    /// Shell command that stops it; the process group gets SIGTERM afterwards in any case.
    #[serde(default)]
    pub stop: Option<String>,
    /// `http://host:port/path` of its health endpoint.
    pub health_url: String,
    /// Value of the JSON `status` field that means healthy (a non-JSON body: HTTP 200).
    #[serde(default = "default_healthy_status")]
    pub healthy_status: String,
    /// The file it logs to; the start command's own output when absent.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// `http://host:port/path` of its Prometheus metrics.
    #[serde(default)]
    pub metrics_url: Option<String>,
    /// `http://host:port/path` of a JSON version endpoint (`version`, `release`, `build`).
    #[serde(default)]
    pub version_url: Option<String>,
    /// Extra environment for the start and stop commands.
    #[serde(default, deserialize_with = "env_pairs")]
    pub env: Vec<(String, String)>,
    /// Run it from this image as a container on the docker backend instead of `start`; its
    /// URLs are then paths (`/health`) on the container's published port.
    #[serde(default)]
    pub image: Option<AppImage>,
}

/// A custom application that comes as a container image.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppImage {
    /// The image reference.
    pub image: String,
    /// The port it listens on inside its container.
    #[serde(default = "default_app_port")]
    pub port: u16,
}

fn default_app_port() -> u16 {
    8080
}

fn default_healthy_status() -> String {
    "HEALTHY".to_string()
}

/// Accepts a TOML table (`[app.env]`) or a list of `[key, value]` pairs.
fn env_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Table(BTreeMap<String, String>),
        Pairs(Vec<(String, String)>),
    }
    Ok(match Form::deserialize(d)? {
        Form::Table(t) => t.into_iter().collect(),
        Form::Pairs(p) => p,
    })
}

/// Key names only: a spec is printed in plans and errors, its values must not be.
fn env_keys(env: &[(String, String)]) -> Vec<&str> {
    env.iter().map(|(k, _)| k.as_str()).collect()
}

impl fmt::Debug for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppSpec::Sample { binary, env } => f
                .debug_struct("Sample")
                .field("binary", binary)
                .field("env_keys", &env_keys(env))
                .finish(),
            AppSpec::Custom(c) => f.debug_tuple("Custom").field(c).finish(),
        }
    }
}

impl fmt::Debug for CustomApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomApp")
            .field("health_url", &self.health_url)
            .field("healthy_status", &self.healthy_status)
            .field("log_file", &self.log_file)
            .field("metrics_url", &self.metrics_url)
            .field("version_url", &self.version_url)
            .field("has_stop_command", &self.stop.is_some())
            .field("env_keys", &env_keys(&self.env))
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl AppSpec {
    /// Checks what can be checked before a drill starts: URLs, env keys, the binary's presence.
    pub fn validate(&self) -> Result<(), AppError> {
        match self {
            AppSpec::Sample { binary, .. } => {
                if !binary.is_file() {
                    return Err(AppError::Spawn {
                        what: format!("sample-app binary {}", binary.display()),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                    });
                }
            }
            AppSpec::Custom(c) if c.image.is_some() => {
                let urls = [
                    Some(&c.health_url),
                    c.metrics_url.as_ref(),
                    c.version_url.as_ref(),
                ];
                for url in urls.into_iter().flatten() {
                    if !url.starts_with('/') {
                        return Err(AppError::Spec {
                            reason: format!(
                                "{url:?}: the URLs of an app image are paths on its port, such as /health"
                            ),
                        });
                    }
                }
                if c.stop.is_some() || c.log_file.is_some() {
                    return Err(AppError::Spec {
                        reason: "an app image is stopped with docker stop and logs to its container's output: leave out the stop command and the log file".into(),
                    });
                }
            }
            AppSpec::Custom(c) => {
                if c.start.trim().is_empty() {
                    return Err(AppError::Spec {
                        reason: "the start command is empty".into(),
                    });
                }
                HttpUrl::parse(&c.health_url)?;
                for url in [&c.metrics_url, &c.version_url].into_iter().flatten() {
                    HttpUrl::parse(url)?;
                }
            }
        }
        self.validate_env()
    }

    /// Checks the environment's key names.
    fn validate_env(&self) -> Result<(), AppError> {
        for (key, _) in self.env() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(AppError::Spec {
                    reason: format!("environment key {key:?} is not a valid variable name"),
                });
            }
        }
        Ok(())
    }

    /// The image of a custom app that runs as a container.
    pub fn image(&self) -> Option<&AppImage> {
        match self {
            AppSpec::Custom(c) => c.image.as_ref(),
            AppSpec::Sample { .. } => None,
        }
    }

    fn env(&self) -> &[(String, String)] {
        match self {
            AppSpec::Sample { env, .. } => env,
            AppSpec::Custom(c) => &c.env,
        }
    }
}

/// What can go wrong with the application under drill. Messages carry key names, exit
/// statuses, URLs and redacted log lines, never configuration values.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The spec itself is unusable.
    #[error("invalid application spec: {reason}; fix the [app] section of the drill")]
    Spec {
        /// What is wrong.
        reason: String,
    },
    /// The log file cannot be opened for the child's output.
    #[error("cannot open the application log {path}: {source}; check that its directory exists and is writable")]
    LogOpen {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log cannot be read back.
    #[error(
        "cannot read the application log {path}: {source}; check the log_file setting of the app"
    )]
    LogRead {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The process could not be spawned.
    #[error(
        "cannot start the application ({what}): {source}; check that it is built and executable"
    )]
    Spawn {
        /// What was being started.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The process ended when it should be running.
    #[error(
        "the application exited ({exit}) {during}; last log lines:\n{log_tail}\n(full log: {log})"
    )]
    Exited {
        /// How it ended, e.g. `exit code 2`.
        exit: String,
        /// When, e.g. `before it became healthy`.
        during: &'static str,
        /// The last lines of its output, redacted.
        log_tail: String,
        /// The log file.
        log: PathBuf,
    },
    /// sample-app did not say where it listens.
    #[error("sample-app printed no `listening on` line within {}; see its log {log}", humantime::format_duration(*.waited))]
    NoAddress {
        /// How long `start` waited.
        waited: Duration,
        /// The log file.
        log: PathBuf,
    },
    /// Healthy was not reached in time.
    #[error("the application did not become healthy within {}; last seen: {last_seen}; see its log {log}", humantime::format_duration(*.waited))]
    NotHealthy {
        /// The allowed time.
        waited: Duration,
        /// The last health answer (or failure) seen.
        last_seen: String,
        /// The log file.
        log: PathBuf,
    },
    /// An HTTP request failed or answered badly.
    #[error("GET {url} failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A URL this client cannot use.
    #[error("unsupported URL {url:?}: {reason}; use http://host:port/path")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// An endpoint the spec does not describe.
    #[error("the application has no {what} configured; set {fix} in the app spec")]
    NotConfigured {
        /// Which endpoint.
        what: &'static str,
        /// The spec field to set.
        fix: &'static str,
    },
    /// Signalling the process group failed.
    #[error("cannot signal the application's process group {pgid}: {source}")]
    Signal {
        /// The group.
        pgid: i32,
        /// The errno.
        source: nix::Error,
    },
    /// The docker engine refused something the app container needed.
    #[error("{reason}")]
    Container {
        /// The engine's answer, with the fix.
        reason: String,
    },
    /// Waiting for the process failed.
    #[error("cannot wait for the application process {pid}: {source}")]
    Wait {
        /// The process.
        pid: u32,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One answer of the health endpoint, as evidence.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The URL probed.
    pub url: String,
    /// HTTP status code.
    pub http_status: u16,
    /// The JSON `status` field, when the body is JSON and has one.
    pub status: Option<String>,
    /// Whether this answer means healthy under the spec's rule.
    pub healthy: bool,
    /// The parsed body (redacted), when it is JSON.
    pub json: Option<serde_json::Value>,
    /// The first 500 characters of the body (redacted).
    pub body_excerpt: String,
    /// Round-trip time.
    pub elapsed_ms: u64,
}

impl HealthReport {
    /// The entry of `checks` with this `name`, if the body has one.
    pub fn check(&self, name: &str) -> Option<&serde_json::Value> {
        self.json
            .as_ref()?
            .get("checks")?
            .as_array()?
            .iter()
            .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name))
    }

    /// One line: HTTP status, status field and the failing checks with their details.
    pub fn summary(&self) -> String {
        let mut text = format!("HTTP {}", self.http_status);
        if let Some(status) = &self.status {
            text.push_str(&format!(", status {status}"));
        }
        let failing: Vec<String> = self
            .json
            .as_ref()
            .and_then(|j| j.get("checks"))
            .and_then(|c| c.as_array())
            .map(|checks| {
                checks
                    .iter()
                    .filter(|c| c.get("status").and_then(|s| s.as_str()) == Some("fail"))
                    .map(|c| {
                        let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                        match c.get("detail").and_then(|d| d.as_str()) {
                            Some(detail) => format!("{name}: {detail}"),
                            None => name.to_string(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !failing.is_empty() {
            text.push_str(&format!(" (failing: {})", failing.join("; ")));
        } else if self.json.is_none() && !self.body_excerpt.is_empty() {
            text.push_str(&format!(": {}", excerpt(&self.body_excerpt, 120)));
        }
        text
    }
}

/// The version endpoint's answer.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// HTTP status code.
    pub http_status: u16,
    /// The `version` field.
    pub version: Option<String>,
    /// The `release` field.
    pub release: Option<String>,
    /// The `build` field.
    pub build: Option<String>,
    /// The first 500 characters of the body (redacted).
    pub body_excerpt: String,
}

/// How a stop went.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    /// True when this call found the app already stopped by an earlier call.
    pub already_stopped: bool,
    /// How the main process ended, e.g. `exit code 0` or `signal 9 (SIGKILL)`.
    pub exit: String,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// SIGKILL was needed because SIGTERM was not obeyed in time.
    pub killed: bool,
    /// Outcome of the custom stop command, when there is one.
    pub stop_command: Option<String>,
    /// Time from the call to the group being gone.
    pub duration_ms: u64,
}

/// What the running process is, for the probes.
enum Flavour {
    Sample,
    Custom(Box<CustomApp>),
}

/// Where the app runs.
enum Runner {
    /// A child process, leader of its own process group.
    Process { child: Mutex<Child>, pid: u32 },
    /// A container; `None` once handed on (restarted or kept).
    Container(Option<Box<AppContainer>>),
}

/// A started application. Killed with its whole process group (or its container removed)
/// on drop.
pub struct AppProcess {
    flavour: Flavour,
    runner: Runner,
    base_url: Option<String>,
    /// Where stdout and stderr go.
    output_log: PathBuf,
    /// Where `log_lines_since` reads: the custom log_file, else `output_log`.
    app_log: PathBuf,
    output_start: u64,
    app_log_start: u64,
    env: Vec<(String, String)>,
    redactor: Redactor,
    stopped: Option<StopReport>,
}

impl AppProcess {
    /// Starts the app with DATABASE_URL set, output appended to `log_path`, in a new process
    /// group. For sample-app, waits for its `listening on ADDR` line to learn the base URL.
    pub async fn start(
        spec: &AppSpec,
        database_url: &str,
        log_path: &Path,
    ) -> Result<AppProcess, AppError> {
        spec.validate()?;
        if spec.image().is_some() {
            return Err(AppError::Spec {
                reason: "an app image runs as a container, on the docker backend only".into(),
            });
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|source| AppError::LogOpen {
                path: log_path.to_path_buf(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| AppError::LogOpen {
            path: log_path.to_path_buf(),
            source,
        })?;
        let output_start = file_len(log_path);

        let (mut cmd, what, flavour) = match spec {
            AppSpec::Sample { binary, .. } => {
                let binary = std::fs::canonicalize(binary).map_err(|source| AppError::Spawn {
                    what: format!("sample-app binary {}", binary.display()),
                    source,
                })?;
                let mut cmd = Command::new(&binary);
                cmd.env_clear();
                for key in SAMPLE_INHERITED {
                    if let Some(value) = std::env::var_os(key) {
                        cmd.env(key, value);
                    }
                }
                // Its directory is the log's, so a stray ./.env where the drill runs is not read.
                if let Some(dir) = log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    cmd.current_dir(dir);
                }
                (
                    cmd,
                    format!("sample-app binary {}", binary.display()),
                    Flavour::Sample,
                )
            }
            AppSpec::Custom(custom) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(&custom.start);
                (
                    cmd,
                    "the custom start command".to_string(),
                    Flavour::Custom(Box::new(custom.clone())),
                )
            }
        };
        cmd.env("DATABASE_URL", database_url);
        for (key, value) in spec.env() {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(true);
        let app_log = match &flavour {
            Flavour::Custom(c) => c.log_file.clone().unwrap_or_else(|| log_path.to_path_buf()),
            Flavour::Sample => log_path.to_path_buf(),
        };
        let app_log_start = file_len(&app_log);
        let child = cmd
            .spawn()
            .map_err(|source| AppError::Spawn { what, source })?;
        let pid = child.id().unwrap_or(0);
        let mut process = AppProcess {
            flavour,
            runner: Runner::Process {
                child: Mutex::new(child),
                pid,
            },
            base_url: None,
            output_log: log_path.to_path_buf(),
            app_log,
            output_start,
            app_log_start,
            env: spec.env().to_vec(),
            redactor: Redactor::new(spec.env(), database_url),
            stopped: None,
        };
        if matches!(process.flavour, Flavour::Sample) {
            // On error `process` is dropped here, which kills the group.
            process.base_url = Some(process.read_address().await?);
        }
        Ok(process)
    }

    /// Waits for `listening on ADDR` in the output written since the start.
    async fn read_address(&self) -> Result<String, AppError> {
        let deadline = Instant::now() + ADDRESS_TIMEOUT;
        let mut offset = self.output_start;
        loop {
            let (lines, next) = read_lines(&self.output_log, offset)?;
            offset = next;
            for line in lines {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    let addr = addr.trim();
                    // A wildcard bind is reached through loopback.
                    let addr = addr
                        .strip_prefix("0.0.0.0:")
                        .map(|port| format!("127.0.0.1:{port}"))
                        .or_else(|| addr.strip_prefix("[::]:").map(|p| format!("[::1]:{p}")))
                        .unwrap_or_else(|| addr.to_string());
                    return Ok(format!("http://{addr}"));
                }
            }
            if let Some(status) = self.exit_status().await? {
                return Err(self.exited(status, "before it printed its address").await);
            }
            if Instant::now() >= deadline {
                return Err(AppError::NoAddress {
                    waited: ADDRESS_TIMEOUT,
                    log: self.output_log.clone(),
                });
            }
            tokio::time::sleep(ADDRESS_POLL).await;
        }
    }

    /// Starts the sample app as a container on the docker backend's network, with
    /// `spec`'s environment and DATABASE_URL in its configuration file and its output
    /// followed into `log_path`.
    pub async fn start_container(
        backend: &DockerBackend,
        image: &str,
        spec: &AppSpec,
        database_url: &str,
        log_path: &Path,
    ) -> Result<AppProcess, AppError> {
        spec.validate_env()?;
        let mut config = vec![("DATABASE_URL".to_string(), database_url.to_string())];
        config.extend(spec.env().iter().cloned());
        let (flavour, placement) = match spec {
            // sample-app reads a configuration file, which keeps secrets out of docker inspect.
            AppSpec::Sample { .. } => (Flavour::Sample, AppPlacement::SampleApp),
            AppSpec::Custom(c) => (
                Flavour::Custom(Box::new(c.clone())),
                AppPlacement::Environment {
                    port: c.image.as_ref().map_or(8080, |i| i.port),
                },
            ),
        };
        let log_start = file_len(log_path);
        let container = backend
            .start_app(image, &config, placement, log_path)
            .await
            .map_err(container_error)?;
        Ok(AppProcess::in_container(
            container,
            flavour,
            spec.env().to_vec(),
            Redactor::new(spec.env(), database_url),
            log_path,
            log_start,
        ))
    }

    /// `docker start` of this stopped app container: the same container with the same
    /// configuration, so its database host name now reaches whatever server answers to it.
    /// Its output from now on goes to `log_path`.
    pub async fn restart_container(mut self, log_path: &Path) -> Result<AppProcess, AppError> {
        let Runner::Container(slot) = &mut self.runner else {
            return Err(AppError::Spec {
                reason: "only an app container can be restarted in place".into(),
            });
        };
        let Some(mut container) = slot.take() else {
            return Err(AppError::Spec {
                reason: "the app container was already handed on".into(),
            });
        };
        let log_start = file_len(log_path);
        container.restart(log_path).await.map_err(container_error)?;
        Ok(AppProcess::in_container(
            *container,
            std::mem::replace(&mut self.flavour, Flavour::Sample),
            std::mem::take(&mut self.env),
            self.redactor.clone(),
            log_path,
            log_start,
        ))
    }

    fn in_container(
        container: AppContainer,
        flavour: Flavour,
        env: Vec<(String, String)>,
        redactor: Redactor,
        log_path: &Path,
        log_start: u64,
    ) -> AppProcess {
        AppProcess {
            flavour,
            base_url: Some(container.base_url()),
            runner: Runner::Container(Some(Box::new(container))),
            output_log: log_path.to_path_buf(),
            app_log: log_path.to_path_buf(),
            output_start: log_start,
            app_log_start: log_start,
            env,
            redactor,
            stopped: None,
        }
    }

    /// Whether it runs as a container.
    pub fn is_container(&self) -> bool {
        matches!(self.runner, Runner::Container(_))
    }

    /// The process id (also its process group id); None for a container.
    pub fn pid(&self) -> Option<u32> {
        match &self.runner {
            Runner::Process { pid, .. } => Some(*pid),
            Runner::Container(_) => None,
        }
    }

    /// `pid N` or the container, for reports.
    pub fn describe(&self) -> String {
        match &self.runner {
            Runner::Process { pid, .. } => format!("pid {pid}"),
            Runner::Container(Some(c)) => c.describe(),
            Runner::Container(None) => "a container handed on".into(),
        }
    }

    /// With `--keep`: leaves a stopped app container in place and says how to start it;
    /// None for a process (it is stopped and gone).
    pub fn keep_container(mut self) -> Option<String> {
        match &mut self.runner {
            Runner::Container(slot) => slot.take().map(|c| c.keep()),
            Runner::Process { .. } => None,
        }
    }

    /// `http://host:port` of sample-app; None for a custom app.
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// The file `log_lines_since` reads.
    pub fn log_path(&self) -> &Path {
        &self.app_log
    }

    /// The log offset at the moment the app was started: "since the restart" begins here.
    pub fn start_log_offset(&self) -> u64 {
        self.app_log_start
    }

    /// The current end of the app's log (0 when it does not exist yet).
    pub fn log_offset(&self) -> u64 {
        file_len(&self.app_log)
    }

    /// Complete lines written after `offset` (redacted) and the offset to continue from. A log
    /// shorter than `offset` was truncated or rotated and is read from its start.
    pub fn log_lines_since(&self, offset: u64) -> Result<(Vec<String>, u64), AppError> {
        let (lines, next) = read_lines(&self.app_log, offset)?;
        Ok((lines.iter().map(|l| self.redactor.apply(l)).collect(), next))
    }

    /// Whether the main process (or the container) is still running.
    pub fn is_running(&self) -> bool {
        match &self.runner {
            Runner::Process { child, .. } => matches!(
                child.lock().unwrap_or_else(|e| e.into_inner()).try_wait(),
                Ok(None)
            ),
            Runner::Container(Some(c)) => c.is_running_now(),
            Runner::Container(None) => false,
        }
    }

    /// One health probe.
    pub async fn health(&self) -> Result<HealthReport, AppError> {
        self.health_within(HEALTH_TIMEOUT).await
    }

    async fn health_within(&self, timeout: Duration) -> Result<HealthReport, AppError> {
        let (url, healthy_status) = match &self.flavour {
            Flavour::Sample => (self.sample_url("/health"), "HEALTHY"),
            Flavour::Custom(c) => (self.custom_url(&c.health_url), c.healthy_status.as_str()),
        };
        let started = Instant::now();
        let response = http_get(&url, timeout).await?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let json = serde_json::from_str::<serde_json::Value>(&response.body)
            .ok()
            .map(|j| self.redactor.apply_json(j));
        let status = json
            .as_ref()
            .and_then(|j| j.get("status"))
            .and_then(|s| s.as_str())
            .map(str::to_string);
        let healthy = match &status {
            Some(s) => s == healthy_status,
            None => response.status == 200,
        };
        Ok(HealthReport {
            url,
            http_status: response.status,
            status,
            healthy,
            json,
            body_excerpt: excerpt(&self.redactor.apply(&response.body), BODY_EXCERPT),
            elapsed_ms,
        })
    }

    /// Polls health every 100 ms until healthy. Fails at once when the process exits, and
    /// after `timeout` with the last answer seen.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<HealthReport, AppError> {
        let deadline = Instant::now() + timeout;
        let mut last_seen;
        loop {
            if let Some(status) = self.exit_status().await? {
                if !self.detached(status) {
                    return Err(self.exited(status, "before it became healthy").await);
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe_timeout = remaining.clamp(Duration::from_millis(50), HEALTH_TIMEOUT);
            match self.health_within(probe_timeout).await {
                Ok(report) if report.healthy => return Ok(report),
                Ok(report) => last_seen = report.summary(),
                Err(e) => last_seen = e.to_string(),
            }
            if Instant::now() >= deadline {
                if let Some(status) = self.exit_status().await? {
                    if !self.detached(status) {
                        return Err(self.exited(status, "before it became healthy").await);
                    }
                }
                return Err(AppError::NotHealthy {
                    waited: timeout,
                    last_seen,
                    log: self.app_log.clone(),
                });
            }
            tokio::time::sleep(HEALTH_POLL.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }

    /// The Prometheus metrics: `name{labels}` as exposed → value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>, AppError> {
        let url = match &self.flavour {
            Flavour::Sample => self.sample_url("/metrics"),
            Flavour::Custom(c) => c.metrics_url.as_deref().map(|u| self.custom_url(u)).ok_or(
                AppError::NotConfigured {
                    what: "metrics URL",
                    fix: "metrics_url",
                },
            )?,
        };
        let response = http_get(&url, FETCH_TIMEOUT).await?;
        if response.status != 200 {
            return Err(AppError::Http {
                url,
                reason: format!(
                    "HTTP {}: {}",
                    response.status,
                    excerpt(&self.redactor.apply(&response.body), 200)
                ),
            });
        }
        Ok(parse_prometheus(&response.body))
    }

    /// The version endpoint's answer.
    pub async fn version(&self) -> Result<VersionInfo, AppError> {
        let url = match &self.flavour {
            Flavour::Sample => self.sample_url("/version"),
            Flavour::Custom(c) => c.version_url.as_deref().map(|u| self.custom_url(u)).ok_or(
                AppError::NotConfigured {
                    what: "version URL",
                    fix: "version_url",
                },
            )?,
        };
        let response = http_get(&url, FETCH_TIMEOUT).await?;
        let json = serde_json::from_str::<serde_json::Value>(&response.body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(|v| v.as_str())
                .map(|v| self.redactor.apply(v))
        };
        Ok(VersionInfo {
            http_status: response.status,
            version: field("version"),
            release: field("release"),
            build: field("build"),
            body_excerpt: excerpt(&self.redactor.apply(&response.body), BODY_EXCERPT),
        })
    }

    /// Stops the app: the custom stop command if any, then SIGTERM to the process group, then
    /// SIGKILL once `timeout` has passed. A second call returns the first call's report.
    pub async fn stop(&mut self, timeout: Duration) -> Result<StopReport, AppError> {
        if let Some(report) = &self.stopped {
            return Ok(StopReport {
                already_stopped: true,
                ..report.clone()
            });
        }
        let started = Instant::now();
        if let Runner::Container(Some(container)) = &mut self.runner {
            let code = container.stop(timeout).await.map_err(container_error)?;
            let report = StopReport {
                already_stopped: false,
                exit: format!("docker stop: exit code {code}"),
                exit_code: Some(code as i32),
                signal: None,
                // 128 + SIGKILL: the grace period ran out.
                killed: code == 137,
                stop_command: None,
                duration_ms: started.elapsed().as_millis() as u64,
            };
            self.stopped = Some(report.clone());
            return Ok(report);
        }
        let deadline = started + timeout;
        let stop_command = match &self.flavour {
            Flavour::Custom(c) => match &c.stop {
                Some(command) => Some(self.run_stop_command(command, timeout).await),
                None => None,
            },
            Flavour::Sample => None,
        };
        let Runner::Process { child, pid } = &mut self.runner else {
            return Err(AppError::Spec {
                reason: "the app container was already handed on".into(),
            });
        };
        let pid = *pid;
        let pgid = Pid::from_raw(pid as i32);
        let child = child.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut killed = false;
        let status = match child
            .try_wait()
            .map_err(|source| AppError::Wait { pid, source })?
        {
            Some(status) => status,
            None => {
                signal_group(pgid, Signal::SIGTERM)?;
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, child.wait()).await {
                    Ok(waited) => waited.map_err(|source| AppError::Wait { pid, source })?,
                    Err(_) => {
                        killed = true;
                        signal_group(pgid, Signal::SIGKILL)?;
                        child
                            .wait()
                            .await
                            .map_err(|source| AppError::Wait { pid, source })?
                    }
                }
            }
        };
        // Whatever else is in the group (a shell's children, helpers) had the same SIGTERM;
        // give it the rest of the time, then SIGKILL.
        while group_alive(pgid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if group_alive(pgid) {
            killed = true;
            signal_group(pgid, Signal::SIGKILL)?;
        }
        let (exit, exit_code, signal) = describe(status);
        let report = StopReport {
            already_stopped: false,
            exit,
            exit_code,
            signal,
            killed,
            stop_command,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.stopped = Some(report.clone());
        Ok(report)
    }

    /// Runs the custom stop command (bounded by `timeout`) and says how it went.
    async fn run_stop_command(&self, command: &str, timeout: Duration) -> String {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).stdin(Stdio::null());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if let Ok(log) = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.output_log)
        {
            if let Ok(log_err) = log.try_clone() {
                cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log_err));
            }
        }
        cmd.process_group(0).kill_on_drop(true);
        let mut helper = match cmd.spawn() {
            Ok(h) => h,
            Err(e) => return format!("could not run: {e}"),
        };
        let helper_group = helper.id().map(|id| Pid::from_raw(id as i32));
        match tokio::time::timeout(timeout, helper.wait()).await {
            Ok(Ok(status)) => describe(status).0,
            Ok(Err(e)) => format!("could not wait: {e}"),
            Err(_) => {
                if let Some(group) = helper_group {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                format!(
                    "killed after {}",
                    humantime::format_duration(Duration::from_millis(timeout.as_millis() as u64))
                )
            }
        }
    }

    /// A custom app's URL as given, or, for an app image, its path on the port Docker
    /// published for the current run (it changes with every start).
    fn custom_url(&self, url: &str) -> String {
        match (url.starts_with('/'), &self.base_url) {
            (true, Some(base)) => format!("{base}{url}"),
            _ => url.to_string(),
        }
    }

    fn sample_url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.base_url.as_deref().unwrap_or("http://127.0.0.1:0")
        )
    }

    async fn exit_status(&self) -> Result<Option<ExitStatus>, AppError> {
        match &self.runner {
            Runner::Process { child, pid } => child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait()
                .map_err(|source| AppError::Wait { pid: *pid, source }),
            Runner::Container(Some(c)) => Ok(c
                .exit_code()
                .await
                .map_err(container_error)?
                .map(|code| ExitStatus::from_raw(((code as i32) & 0xff) << 8))),
            Runner::Container(None) => Ok(None),
        }
    }

    /// A custom start command that exits 0 has handed the app to something else (a daemon,
    /// a container runtime): health decides then, not the shell's exit.
    fn detached(&self, status: ExitStatus) -> bool {
        matches!(self.flavour, Flavour::Custom(_)) && status.success()
    }

    async fn exited(&self, status: ExitStatus, during: &'static str) -> AppError {
        let lines = match &self.runner {
            // The engine has the last lines at once; the follower may not have copied them.
            Runner::Container(Some(c)) => c.log_tail(LOG_TAIL_LINES).await,
            _ => read_lines(&self.output_log, self.output_start)
                .map(|(lines, _)| lines)
                .unwrap_or_default(),
        };
        let tail: Vec<String> = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..]
            .iter()
            .map(|l| format!("  {}", excerpt(&self.redactor.apply(l), LOG_LINE_CHARS)))
            .collect();
        AppError::Exited {
            exit: describe(status).0,
            during,
            log_tail: if tail.is_empty() {
                "  (none)".to_string()
            } else {
                tail.join("\n")
            },
            log: self.output_log.clone(),
        }
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if self.stopped.is_some() {
            return;
        }
        if let Some(command) = match &self.flavour {
            Flavour::Custom(c) => c.stop.as_ref(),
            Flavour::Sample => None,
        } {
            // Drop cannot await: run the stop command synchronously, bounded.
            let mut cmd = std::process::Command::new("sh");
            cmd.arg("-c")
                .arg(command)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (key, value) in &self.env {
                cmd.env(key, value);
            }
            if let Ok(mut helper) = cmd.spawn() {
                let deadline = Instant::now() + DROP_STOP_COMMAND_TIMEOUT;
                while matches!(helper.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = helper.kill();
                let _ = helper.wait();
            }
        }
        // kill_on_drop covers the main process; this covers everything else in its group.
        // A container is removed by its own Drop.
        if let Runner::Process { pid, .. } = &self.runner {
            let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

fn signal_group(pgid: Pid, signal: Signal) -> Result<(), AppError> {
    match killpg(pgid, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(source) => Err(AppError::Signal {
            pgid: pgid.as_raw(),
            source,
        }),
    }
}

fn group_alive(pgid: Pid) -> bool {
    killpg(pgid, None).is_ok()
}

/// `exit code N` or `signal N (NAME)`, with the code and the signal number.
fn describe(status: ExitStatus) -> (String, Option<i32>, Option<i32>) {
    if let Some(code) = status.code() {
        (format!("exit code {code}"), Some(code), None)
    } else if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("?");
        (format!("signal {sig} ({name})"), None, Some(sig))
    } else {
        (format!("{status}"), None, None)
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Complete lines after `offset` and the offset just past the last one; a partial last line
/// is left for the next read.
fn read_lines(path: &Path, offset: u64) -> Result<(Vec<String>, u64), AppError> {
    let read_error = |source| AppError::LogRead {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    let start = if offset > len { 0 } else { offset };
    file.seek(SeekFrom::Start(start)).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_error)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let lines = bytes[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            String::from_utf8_lossy(l)
                .trim_end_matches('\r')
                .to_string()
        })
        .collect();
    Ok((lines, start + complete as u64))
}

/// Whether a log line reports an error: a JSON line whose level/severity is ERROR (or FATAL,
/// CRITICAL, PANIC), a text line with one of those words in capitals or `level=error`, or a
/// Rust panic message.
pub fn is_error_line(line: &str) -> bool {
    const WORDS: [&str; 4] = ["ERROR", "FATAL", "CRITICAL", "PANIC"];
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed) {
            return ["level", "severity", "lvl"].iter().any(|key| {
                map.get(*key)
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| WORDS.contains(&v.to_ascii_uppercase().as_str()))
            });
        }
    }
    let lower = trimmed.to_ascii_lowercase();
    trimmed
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| WORDS.contains(&word))
        || lower.contains("level=error")
        || lower.contains("panicked at")
}

/// Parses the Prometheus text format into `name{labels}` → value. Comments, blank lines and
/// lines that do not parse are skipped; timestamps are ignored.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = match line.find('{') {
            Some(open) if line[..open].find(char::is_whitespace).is_none() => {
                match closing_brace(line, open) {
                    Some(close) => (&line[..=close], &line[close + 1..]),
                    None => continue,
                }
            }
            _ => match line.split_once(char::is_whitespace) {
                Some((name, rest)) => (name, rest),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        if let Some(value) = parse_sample_value(value) {
            out.insert(key.to_string(), value);
        }
    }
    out
}

/// Index of the `}` closing the label set opened at `open`, honouring quoted values.
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(open + i),
            _ => {}
        }
    }
    None
}

fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn container_error(e: crate::error::EnvError) -> AppError {
    AppError::Container {
        reason: e.to_string(),
    }
}

/// Replaces configuration values with `***` in text that came back from the app.
#[derive(Clone)]
struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn new(env: &[(String, String)], database_url: &str) -> Redactor {
        let mut secrets: Vec<String> = env
            .iter()
            .filter(|(key, _)| !NON_SECRET_KEYS.contains(&key.as_str()))
            .map(|(_, value)| value.clone())
            .collect();
        secrets.push(database_url.to_string());
        if let Some(password) = database_url
            .parse::<tokio_postgres::Config>()
            .ok()
            .and_then(|c| {
                c.get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
            })
        {
            secrets.push(password);
        }
        secrets.retain(|s| s.chars().count() >= MIN_REDACTED_LEN);
        // Longest first, so a value containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    fn apply_json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.apply(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.apply_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.apply_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// An `http://host:port/path` URL, the only kind this client speaks.
#[derive(Debug, PartialEq, Eq)]
struct HttpUrl {
    host: String,
    port: u16,
    path: String,
}

impl HttpUrl {
    fn parse(url: &str) -> Result<HttpUrl, AppError> {
        let bad = |reason| AppError::Url {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(bad("bad port")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().map_err(|_| bad("bad port"))?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// Status and body of an HTTP response.
struct HttpResponse {
    status: u16,
    body: String,
}

/// A minimal HTTP/1.1 GET: one connection, `Connection: close`, read to the end. Enough for
/// health, version and metrics endpoints, without an HTTP client dependency.
async fn http_get(url: &str, timeout: Duration) -> Result<HttpResponse, AppError> {
    let parsed = HttpUrl::parse(url)?;
    let fail = |reason: String| AppError::Http {
        url: url.to_string(),
        reason,
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((parsed.host.as_str(), parsed.port))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let host = if parsed.host.contains(':') {
            format!("[{}]", parsed.host)
        } else {
            parsed.host.clone()
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: pgdrill\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            parsed.path, parsed.port
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok::<_, AppError>(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            fail(format!(
                "no complete answer within {}",
                humantime::format_duration(Duration::from_millis(timeout.as_millis() as u64))
            ))
        })??;
    parse_response(&raw).map_err(|reason| fail(reason.to_string()))
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, &'static str> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no complete HTTP header")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "the HTTP header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    if !parts.next().unwrap_or_default().starts_with("HTTP/") {
        return Err("the answer is not HTTP");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("the HTTP status line has no status code")?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            }
        }
    }
    let mut body = &raw[head_end + 4..];
    let decoded;
    if chunked {
        decoded = dechunk(body).ok_or("the chunked HTTP body is malformed")?;
        body = &decoded;
    } else if let Some(length) = length {
        body = &body[..length.min(body.len())];
    }
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_with_labels_comments_and_specials() {
        let text = "# HELP x help\n# TYPE x counter\nx 3\ny{a=\"1\",b=\"has } and \\\" inside\"} 2.5 1700000000\n\nz{w=\"r\"} +Inf\nbad line here\nnan NaN\n";
        let m = parse_prometheus(text);
        assert_eq!(m["x"], 3.0);
        assert_eq!(m["y{a=\"1\",b=\"has } and \\\" inside\"}"], 2.5);
        assert!(m["z{w=\"r\"}"].is_infinite());
        assert!(m["nan"].is_nan());
        assert!(!m.contains_key("bad"));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn handles_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<AppProcess>();
        send_sync::<AppError>();
    }

    #[test]
    fn urls() {
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:8080/health").unwrap(),
            HttpUrl {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/health".into()
            }
        );
        assert_eq!(HttpUrl::parse("http://[::1]:9/m").unwrap().host, "::1");
        assert_eq!(HttpUrl::parse("http://localhost").unwrap().port, 80);
        for bad in [
            "https://x/",
            "http://u:p@x/",
            "http://:80/",
            "http://x:port/",
            "ftp://x",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_responses_plain_and_chunked() {
        let plain =
            parse_response(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nokEXTRA")
                .unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (503, "ok"));
        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, "Wikipedia");
        assert!(parse_response(b"garbage").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }

    #[test]
    fn error_lines_text_json_and_panics() {
        assert!(is_error_line(
            "2024-01-01T00:00:00Z ERROR sample_app::workers: worker tick failed"
        ));
        assert!(is_error_line(
            r#"{"level":"ERROR","fields":{"message":"x"}}"#
        ));
        assert!(is_error_line(r#"{"severity":"fatal"}"#));
        assert!(!is_error_line(
            r#"{"level":"INFO","fields":{"message":"recovered from ERROR"}}"#
        ));
        assert!(!is_error_line(
            "2024-01-01T00:00:00Z  INFO sample_app: listening addr=127.0.0.1:1"
        ));
        assert!(!is_error_line("errors_total is fine"));
        assert!(is_error_line("time=1 level=error msg=boom"));
        assert!(is_error_line("thread 'main' panicked at src/main.rs:1:1"));
    }

    #[test]
    fn redaction_hides_secret_values_and_dsn_password() {
        let env = vec![
            ("API_KEY".to_string(), "k-123456".to_string()),
            ("LOG_FORMAT".to_string(), "json".to_string()),
            ("SHORT".to_string(), "ab".to_string()),
        ];
        let r = Redactor::new(&env, "host=h user=u password=pw-secret dbname=d");
        assert_eq!(
            r.apply("key k-123456 pw pw-secret format json ab"),
            "key *** pw *** format json ab"
        );
        assert_eq!(
            r.apply("dsn host=h user=u password=pw-secret dbname=d"),
            "dsn ***"
        );
        let j = r.apply_json(serde_json::json!({"a": ["x k-123456"], "b": 1}));
        assert_eq!(j, serde_json::json!({"a": ["x ***"], "b": 1}));
    }

    #[test]
    fn spec_from_toml_and_debug_shows_keys_only() {
        let spec: AppSpec = toml::from_str(
            r#"
kind = "custom"
start = "./run.sh"
health_url = "http://127.0.0.1:8080/healthz"
[env]
API_KEY = "s3cr3t-value"
"#,
        )
        .unwrap();
        let AppSpec::Custom(c) = &spec else {
            panic!("expected custom")
        };
        assert_eq!(c.healthy_status, "HEALTHY");
        assert_eq!(c.env, vec![("API_KEY".into(), "s3cr3t-value".into())]);
        let debug = format!("{spec:?}");
        assert!(
            debug.contains("API_KEY") && !debug.contains("s3cr3t"),
            "{debug}"
        );
        spec.validate().unwrap();

        let sample: AppSpec = toml::from_str(
            "kind = \"sample\"\nbinary = \"/nonexistent/sample-app\"\nenv = [[\"A\", \"b\"]]\n",
        )
        .unwrap();
        assert!(matches!(&sample, AppSpec::Sample { env, .. } if env.len() == 1));
        let err = sample.validate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/sample-app"), "{err}");
        assert!(toml::from_str::<AppSpec>("kind = \"custom\"\nstart = \"x\"\n").is_err());
    }

    #[test]
    fn lines_after_an_offset_leave_partial_lines_and_survive_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "one\ntwo\npart").unwrap();
        let (lines, next) = read_lines(&path, 0).unwrap();
        assert_eq!(
            (lines, next),
            (vec!["one".to_string(), "two".to_string()], 8)
        );
        std::fs::write(&path, "one\ntwo\npartial\n").unwrap();
        let (lines, next) = read_lines(&path, 8).unwrap();
        assert_eq!((lines, next), (vec!["partial".to_string()], 16));
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(read_lines(&path, 16).unwrap().0, vec!["new".to_string()]);
        assert!(read_lines(&dir.path().join("missing"), 0).is_err());
    }
}
