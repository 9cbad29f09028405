//! The application under drill: start it as a child process in its own process group, probe
//! its health, version and metrics over plain HTTP/1.1, read its log, and stop it. Nothing is
//! ever left running: `stop` escalates from SIGTERM to SIGKILL, and `Drop` kills the group.
//!
//! Secrets rule: values of the app's environment never appear in errors or reports. Only key
//! names are shown, and any text that comes back from the app (log lines, HTTP bodies) has
//! those values and the database password replaced by `***`.
//!
//! On the docker backend the sample app runs as a container instead (see
//! [`container::AppContainer`]); the probes, the log reading and the stop report are
//! the same, and `stop` / [`AppProcess::restart_container`] are `docker stop` / `docker start`.

pub(crate) mod container;
pub mod external;
mod health;
mod log;
mod probe;
mod process;
mod secrets;
mod spec;
pub(crate) mod url;

use std::path::PathBuf;
use std::time::Duration;

pub use container::{AppContainer, AppPlacement};
pub use external::{AppControl, ExternalApp};
pub use health::{
    detect as detect_health_format, BodyFormat, Check, CheckStatus, Health, HealthFormat,
    HealthFormatError, JsonPath,
};
pub use log::is_error_line;
pub(crate) use probe::http_get;
pub use probe::{parse_prometheus, HealthReport, VersionInfo};
pub use process::{AppProcess, StopReport};
pub use secrets::{secret_env, AppSecrets, SecretEnv};
pub use spec::{AppImage, AppSpec, CustomApp};

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
    #[error("sample-app printed no `listening on` line within {}; see its log {log}", crate::duration::human(*.waited))]
    NoAddress {
        /// How long `start` waited.
        waited: Duration,
        /// The log file.
        log: PathBuf,
    },
    /// Healthy was not reached in time.
    #[error("the application did not become healthy within {}; last seen: {last_seen}; see its log {log}", crate::duration::human(*.waited))]
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
