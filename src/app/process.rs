//! The application as a child process in its own process group (or, on the docker
//! backend, as a container): start, stop, its log, and nothing left running. `stop`
//! escalates from SIGTERM to SIGKILL, and `Drop` kills the group.

use secrecy::ExposeSecret;

use super::secrets::{secret_env, SecretEnv};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::process::{Child, Command};

use super::container::{AppContainer, AppPlacement};
use super::health::HealthFormat;
use super::log::{excerpt, file_len, read_lines, Redactor};
use super::spec::{AppSpec, CustomApp};
use super::AppError;
use crate::env::docker::DockerBackend;

/// How long `start` waits for sample-app's `listening on` line.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the log is re-read while waiting for that line.
const ADDRESS_POLL: Duration = Duration::from_millis(20);
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 10;
/// Characters of one quoted log line.
const LOG_LINE_CHARS: usize = 300;
/// A custom stop command run from `Drop` (no async there) is given this long.
const DROP_STOP_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Variables sample-app inherits from the drill; everything else comes from the spec, so a
/// stray API_KEY in the drill's own environment cannot hide a "missing key" fault.
const SAMPLE_INHERITED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

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
pub(super) enum Flavour {
    Sample,
    Custom(Box<CustomApp>),
}

/// Where the app runs.
pub(super) enum Runner {
    /// A child process, leader of its own process group.
    Process { child: Mutex<Child>, pid: u32 },
    /// A container; `None` once handed on (restarted or kept).
    Container(Option<Box<AppContainer>>),
}

/// A started application. Killed with its whole process group (or its container removed)
/// on drop.
pub struct AppProcess {
    pub(super) flavour: Flavour,
    pub(super) runner: Runner,
    pub(super) base_url: Option<String>,
    /// Where stdout and stderr go.
    pub(super) output_log: PathBuf,
    /// Where `log_lines_since` reads: the custom log_file, else `output_log`.
    pub(super) app_log: PathBuf,
    pub(super) output_start: u64,
    pub(super) app_log_start: u64,
    pub(super) env: SecretEnv,
    pub(super) redactor: Redactor,
    pub(super) stopped: Option<StopReport>,
    /// How its health body is read (`--app-health-format`).
    pub(super) health_format: HealthFormat,
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
            env: secret_env(spec.env()),
            redactor: Redactor::new(spec.env(), database_url),
            stopped: None,
            health_format: spec.health_format().clone(),
        };
        if matches!(process.flavour, Flavour::Sample) {
            // On error `process` is dropped here, which kills the group.
            process.base_url = Some(process.read_address().await?);
        }
        Ok(process)
    }

    /// Waits for `listening on ADDR` in the output written since the start.
    pub(super) async fn read_address(&self) -> Result<String, AppError> {
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
        let super::container::ContainerConfig { config, copies } =
            super::container::ContainerConfig::of(spec, database_url)?;
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
            .start_app(image, &config, placement, copies, log_path)
            .await
            .map_err(container_error)?;
        Ok(AppProcess::in_container(
            container,
            flavour,
            secret_env(spec.env()),
            Redactor::new(spec.env(), database_url),
            log_path,
            log_start,
        )
        .with_health_format(spec.health_format().clone()))
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
        )
        .with_health_format(std::mem::take(&mut self.health_format)))
    }

    pub(super) fn in_container(
        container: AppContainer,
        flavour: Flavour,
        env: SecretEnv,
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
            health_format: HealthFormat::Auto,
        }
    }

    /// The same app, its health read as `format` says.
    pub(super) fn with_health_format(mut self, format: HealthFormat) -> AppProcess {
        self.health_format = format;
        self
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
    pub(super) async fn run_stop_command(&self, command: &str, timeout: Duration) -> String {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command).stdin(Stdio::null());
        for (key, value) in &self.env {
            cmd.env(key, value.expose_secret());
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
                    crate::duration::human_ms(timeout.as_millis() as u64)
                )
            }
        }
    }
    pub(super) async fn exit_status(&self) -> Result<Option<ExitStatus>, AppError> {
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
    pub(super) fn detached(&self, status: ExitStatus) -> bool {
        matches!(self.flavour, Flavour::Custom(_)) && status.success()
    }

    pub(super) async fn exited(&self, status: ExitStatus, during: &'static str) -> AppError {
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
                cmd.env(key, value.expose_secret());
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
pub(crate) fn container_error(e: crate::env_error::EnvError) -> AppError {
    AppError::Container {
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<AppProcess>();
        send_sync::<AppError>();
    }
}
