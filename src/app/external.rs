//! The team's own running application, around a real restore: pgdrill did not start it and
//! never owns it. It is stopped and started with the strategy's own commands (`docker
//! stop/start`, `systemctl stop/start`, or the team's), and judged by its health endpoints,
//! its log and its metrics when they are given.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::probe::{http_get, HealthReport};
use super::AppError;

/// How long a stop or start command may take before it is killed and the step fails.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);

/// How the application is stopped and started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppControl {
    /// The team's own shell commands (`--app-stop`, `--app-start`).
    Commands {
        /// Stops it.
        stop: String,
        /// Starts it.
        start: String,
    },
    /// An existing container (`--app-container`): `docker stop` / `docker start`.
    Container(String),
    /// A systemd unit (`--app-unit`): `systemctl stop` / `systemctl start`.
    Unit(String),
}

impl AppControl {
    /// The command that stops it, as it is run (`sh -c`).
    pub fn stop_command(&self) -> String {
        match self {
            AppControl::Commands { stop, .. } => stop.clone(),
            AppControl::Container(n) => format!("docker stop {}", shell_word(n)),
            AppControl::Unit(n) => format!("systemctl stop {}", shell_word(n)),
        }
    }

    /// The command that starts it, as it is run (`sh -c`).
    pub fn start_command(&self) -> String {
        match self {
            AppControl::Commands { start, .. } => start.clone(),
            AppControl::Container(n) => format!("docker start {}", shell_word(n)),
            AppControl::Unit(n) => format!("systemctl start {}", shell_word(n)),
        }
    }
}

/// `s` quoted for `sh` when it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@:/".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The application around a real restore.
#[derive(Debug, Clone)]
pub struct ExternalApp {
    /// How it is stopped and started.
    pub control: AppControl,
    /// Its health endpoints; every one must answer healthy.
    pub health_urls: Vec<String>,
    /// The JSON `status` value that means healthy too.
    pub healthy_status: String,
    /// How its health answers are read (`--app-health-format`).
    pub health_format: super::HealthFormat,
    /// The file it logs to, for the checklist's "no errors in logs".
    pub log_file: Option<PathBuf>,
    /// Its Prometheus metrics, for the checklist's "normal metrics".
    pub metrics_url: Option<String>,
}

/// What a stop or start command did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The command.
    pub command: String,
    /// How long it took.
    pub took: Duration,
    /// The last lines of its output.
    pub output: String,
}

impl ExternalApp {
    /// Runs the stop command.
    pub async fn stop(&self) -> Result<Ran, AppError> {
        run_control(&self.control.stop_command()).await
    }

    /// Runs the start command.
    pub async fn start(&self) -> Result<Ran, AppError> {
        run_control(&self.control.start_command()).await
    }

    /// One probe of health endpoint `url`.
    pub async fn health(&self, url: &str) -> Result<HealthReport, AppError> {
        let started = Instant::now();
        let r = http_get(url, Duration::from_secs(5)).await?;
        let mut report = HealthReport::read(
            url.to_string(),
            r.status,
            &r.body,
            &self.health_format,
            &self.healthy_status,
        );
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Polls every health endpoint until each answered healthy once, within `timeout`.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Vec<HealthReport>, AppError> {
        let deadline = Instant::now() + timeout;
        let mut healthy = Vec::new();
        for url in &self.health_urls {
            let last_seen = loop {
                let last_seen = match self.health(url).await {
                    Ok(r) if r.healthy => {
                        healthy.push(r);
                        break None;
                    }
                    Ok(r) => r.summary(),
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    break Some(last_seen);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            if let Some(last_seen) = last_seen {
                return Err(AppError::NotHealthy {
                    waited: timeout,
                    last_seen: format!("{url}: {last_seen}"),
                    log: self.log_file.clone().unwrap_or_default(),
                });
            }
        }
        Ok(healthy)
    }

    /// Its metrics, when a URL was given.
    pub async fn metrics(&self) -> Result<std::collections::BTreeMap<String, f64>, AppError> {
        let url = self.metrics_url.as_deref().ok_or(AppError::NotConfigured {
            what: "metrics URL",
            fix: "--app-metrics-url",
        })?;
        let r = http_get(url, Duration::from_secs(5)).await?;
        if r.status != 200 {
            return Err(AppError::Http {
                url: url.to_string(),
                reason: format!("HTTP {}", r.status),
            });
        }
        Ok(super::parse_prometheus(&r.body))
    }

    /// The length of its log now, to read what it writes after the start.
    pub fn log_len(&self) -> u64 {
        self.log_file
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// The log's ERROR lines written after byte `from`.
    pub fn error_lines_since(&self, from: u64) -> Result<Vec<String>, AppError> {
        let path = self.log_file.as_ref().ok_or(AppError::NotConfigured {
            what: "log file",
            fix: "--app-log",
        })?;
        let bytes = std::fs::read(path).map_err(|source| AppError::LogRead {
            path: path.clone(),
            source,
        })?;
        let from = (from as usize).min(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[from..])
            .lines()
            .filter(|l| super::is_error_line(l))
            .map(str::to_string)
            .collect())
    }
}

/// Runs `command` with `sh -c`, killed after [`CONTROL_TIMEOUT`]; a non-zero exit is an
/// error carrying the output's last lines.
pub async fn run_control(command: &str) -> Result<Ran, AppError> {
    let started = Instant::now();
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| AppError::Spawn {
            what: command.to_string(),
            source,
        })?;
    let out = match tokio::time::timeout(CONTROL_TIMEOUT, child.wait_with_output()).await {
        Ok(r) => r.map_err(|source| AppError::Spawn {
            what: command.to_string(),
            source,
        })?,
        Err(_) => {
            return Err(AppError::Container {
                reason: format!(
                    "`{command}` did not finish within {}; it was killed",
                    crate::duration::human(CONTROL_TIMEOUT)
                ),
            })
        }
    };
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let tail: Vec<&str> = text.lines().rev().take(10).collect();
    let output = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    if !out.status.success() {
        return Err(AppError::Container {
            reason: format!(
                "`{command}` failed ({}){}",
                out.status,
                if output.is_empty() {
                    String::new()
                } else {
                    format!(": {output}")
                }
            ),
        });
    }
    Ok(Ran {
        command: command.to_string(),
        took: started.elapsed(),
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strategys_commands_quote_odd_names() {
        assert_eq!(
            AppControl::Container("web-1".into()).stop_command(),
            "docker stop web-1"
        );
        assert_eq!(
            AppControl::Unit("my app's.service".into()).start_command(),
            r"systemctl start 'my app'\''s.service'"
        );
    }
}
