//! Where disposable servers come from: the backends, the targets they hand out, and the
//! PostgreSQL client programs used against them.

pub mod docker;
pub mod external;
pub mod leftovers;
pub mod native;

use serde::{Deserialize, Serialize};

use crate::env_error::EnvError;
/// The client programs, now in [`crate::pg::tools`]; this path stays for older callers.
pub use crate::pg::tools as pg_tools;
pub use crate::pg::{connect_config, Endpoint, PgTools, ToolCommand};

/// Which backend provides the disposable servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Native if PostgreSQL binaries are installed, Docker otherwise.
    Auto,
    /// A fresh cluster from the machine's own PostgreSQL binaries.
    Native,
    /// PostgreSQL containers through the Docker engine.
    Docker,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Native => "native",
            BackendKind::Docker => "docker",
        })
    }
}

/// A source of disposable PostgreSQL servers.
pub enum Backend {
    /// Clusters from local binaries.
    Native(native::NativeBackend),
    /// Containers through the Docker engine.
    Docker(docker::DockerBackend),
}

impl Backend {
    /// Resolves `auto` (native when the PostgreSQL binaries are installed, docker otherwise)
    /// and checks that the chosen backend can work on this machine.
    pub async fn open(kind: BackendKind, drill_id: &str) -> Result<Backend, EnvError> {
        match kind {
            BackendKind::Native => Ok(Backend::Native(native::NativeBackend::discover(drill_id)?)),
            BackendKind::Docker => Ok(Backend::Docker(
                docker::DockerBackend::open(drill_id).await?,
            )),
            BackendKind::Auto => match native::NativeBackend::discover(drill_id) {
                Ok(b) => Ok(Backend::Native(b)),
                Err(native) => match docker::DockerBackend::open(drill_id).await {
                    Ok(b) => Ok(Backend::Docker(b)),
                    Err(docker) => Err(EnvError::NoBackend {
                        native: native.to_string(),
                        docker: docker.to_string(),
                    }),
                },
            },
        }
    }

    /// The docker backend, when that is the one in use.
    pub fn docker(&self) -> Option<&docker::DockerBackend> {
        match self {
            Backend::Docker(b) => Some(b),
            Backend::Native(_) => None,
        }
    }

    /// With `--keep`, servers must outlive pgdrill.
    pub fn set_keep(&mut self, keep: bool) {
        match self {
            Backend::Native(b) => b.set_keep(keep),
            Backend::Docker(b) => b.set_keep(keep),
        }
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Native(_) => BackendKind::Native,
            Backend::Docker(_) => BackendKind::Docker,
        }
    }

    /// Creates and starts a new empty server; `role` names it in paths and labels.
    pub async fn provision(&self, role: &str) -> Result<Target, EnvError> {
        self.provision_with(role, &crate::pg::settings::ServerSettings::default())
            .await
    }

    /// Creates a new empty server and starts it with `settings` (the restore target's
    /// `--server-setting`s); `role` names it in paths and labels.
    pub async fn provision_with(
        &self,
        role: &str,
        settings: &crate::pg::settings::ServerSettings,
    ) -> Result<Target, EnvError> {
        match self {
            Backend::Native(b) => Ok(Target::Native(b.provision_with(role, settings).await?)),
            Backend::Docker(b) => Ok(Target::Docker(b.provision_with(role, settings).await?)),
        }
    }

    /// The client programs used against servers the backend did not create (a live source).
    pub fn tools(&self) -> &PgTools {
        match self {
            Backend::Native(b) => b.tools(),
            Backend::Docker(b) => b.tools(),
        }
    }
}

/// A disposable PostgreSQL server created and owned by the drill.
pub enum Target {
    /// A cluster in a temp dir.
    Native(native::NativeTarget),
    /// A container.
    Docker(docker::DockerTarget),
    /// A server the user named (`pgdrill restore`): never destroyed.
    External(external::ExternalTarget),
}

impl Target {
    /// How to connect as the superuser to the maintenance database.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Target::Native(t) => &t.endpoint,
            Target::Docker(t) => &t.endpoint,
            Target::External(t) => &t.endpoint,
        }
    }

    /// How the application under drill reaches this server: the loopback endpoint for a
    /// process on this machine, the container's name on the drill's network for an app
    /// container.
    pub fn app_endpoint(&self, app_in_container: bool) -> Endpoint {
        match self {
            Target::Docker(t) if app_in_container => t.network_endpoint(),
            _ => self.endpoint().clone(),
        }
    }

    /// The PostgreSQL programs to run against this server.
    pub fn tools(&self) -> PgTools {
        match self {
            Target::Native(t) => t.tools.clone(),
            Target::Docker(t) => t.tools.clone(),
            Target::External(t) => t.tools.clone(),
        }
    }

    /// A human-readable description (data directory, container id).
    pub fn describe(&self) -> String {
        match self {
            Target::Native(t) => t.describe(),
            Target::Docker(t) => t.describe(),
            Target::External(t) => t.describe(),
        }
    }

    /// Stops the server and removes everything it had, now.
    pub async fn destroy(self) -> Result<(), EnvError> {
        match self {
            Target::Native(t) => t.destroy().await,
            Target::Docker(t) => t.destroy().await,
            // Not pgdrill's to destroy: the restore's own side database is dropped by the
            // restore's cleanup.
            Target::External(_) => Ok(()),
        }
    }

    /// Keeps the server running after pgdrill exits (`--keep`); returns how to connect.
    pub fn keep(self) -> String {
        match self {
            Target::Native(t) => t.keep(),
            Target::Docker(t) => t.keep(),
            Target::External(t) => format!("{} stays as it is", t.describe()),
        }
    }
}

/// Whether a server the drill owns is still running, asked when a step fails: a lost server
/// is the machine's fault, whatever the step's own error says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// It is running.
    Alive,
    /// Its postmaster or container ended, and how.
    Exited(ServerEnd),
    /// Neither its process nor its container can be found any more.
    Gone,
}

/// How a lost server ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEnd {
    /// The postmaster exited with this code.
    Code(i32),
    /// The postmaster was killed by this signal.
    Signal(nix::sys::signal::Signal),
    /// The container stopped with this exit code; `oom_killed` when the kernel's OOM killer
    /// stopped it.
    Container {
        /// The container's exit code (137 after a SIGKILL).
        code: i64,
        /// Docker's `State.OOMKilled`.
        oom_killed: bool,
    },
}

impl std::fmt::Display for ServerEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerEnd::Code(c) => write!(f, "exit code {c}"),
            ServerEnd::Signal(s) => write!(f, "signal {} ({})", *s as i32, s.as_str()),
            ServerEnd::Container {
                code,
                oom_killed: true,
            } => write!(f, "exit code {code}, killed by the kernel's OOM killer"),
            ServerEnd::Container { code, .. } => write!(f, "exit code {code}"),
        }
    }
}

/// How to ask about one server without owning it: made from a [`Target`] before a step and
/// asked when the step fails (the step may hold the target's endpoint, never the target).
#[derive(Debug, Clone)]
pub struct Watch {
    /// Which server this is, for messages (`source server`, `target server`).
    pub role: &'static str,
    probe: Probe,
}

#[derive(Debug, Clone)]
enum Probe {
    Native {
        pid: u32,
        data: std::path::PathBuf,
        log: std::path::PathBuf,
    },
    Docker {
        id: String,
        name: String,
    },
}

impl Watch {
    /// The server as a message names it: `the target server, pid 123` or `the target
    /// server, container pgdrill-…-db`.
    pub fn describe(&self) -> String {
        match &self.probe {
            Probe::Native { pid, .. } => format!("the {}, pid {pid}", self.role),
            Probe::Docker { name, .. } => format!("the {}, container {name}", self.role),
        }
    }

    /// Whether the server is still running. Never reaps the postmaster: its owner does.
    pub async fn liveness(&self) -> Liveness {
        match &self.probe {
            Probe::Native { pid, data, .. } => native::liveness(*pid, data),
            Probe::Docker { id, .. } => docker::liveness(id).await,
        }
    }

    /// Where the server writes its data, as its own messages' relative paths start from.
    pub fn data_dir(&self) -> std::path::PathBuf {
        match &self.probe {
            Probe::Native { data, .. } => data.clone(),
            Probe::Docker { .. } => std::path::PathBuf::from(docker::DATA_DIR),
        }
    }

    /// Where the server's log is, for messages.
    pub fn log_place(&self) -> String {
        match &self.probe {
            Probe::Native { log, .. } => log.display().to_string(),
            Probe::Docker { name, .. } => format!("docker logs {name}"),
        }
    }

    /// The server's log lines written since `since` (a byte offset for a native log, a
    /// time for a container's); empty when it cannot be read.
    pub async fn log_since(&self, since: &LogMark) -> String {
        match (&self.probe, since) {
            (Probe::Native { log, .. }, LogMark::Offset(at)) => native::log_from(log, *at),
            (Probe::Docker { id, .. }, LogMark::Time(at)) => docker::log_since(id, *at).await,
            _ => String::new(),
        }
    }

    /// Where the log ends now, to read what a step adds to it.
    pub fn log_mark(&self) -> LogMark {
        match &self.probe {
            Probe::Native { log, .. } => {
                LogMark::Offset(std::fs::metadata(log).map(|m| m.len()).unwrap_or(0))
            }
            Probe::Docker { .. } => LogMark::Time(chrono::Utc::now()),
        }
    }
}

/// Where a server's log stood when a step started.
#[derive(Debug, Clone, Copy)]
pub enum LogMark {
    /// A byte offset into a native server's log file.
    Offset(u64),
    /// A moment, for `docker logs --since`.
    Time(chrono::DateTime<chrono::Utc>),
}

impl Target {
    /// A way to ask about this server while a step holds only its endpoint; `role` names it.
    pub fn watch(&self, role: &'static str) -> Option<Watch> {
        let probe = match self {
            Target::Native(t) => {
                let dir = t.dir()?;
                Probe::Native {
                    pid: t.pid()?,
                    data: dir.join("data"),
                    log: dir.join("postgres.log"),
                }
            }
            // A physical restore's target has no container until its server starts.
            Target::Docker(t) if !t.has_container() => return None,
            Target::Docker(t) => Probe::Docker {
                id: t.container_id().to_string(),
                name: t.name().to_string(),
            },
            // Its life is not pgdrill's to watch: a failure is told by the step's own error.
            Target::External(_) => return None,
        };
        Some(Watch { role, probe })
    }
}

impl Watch {
    /// What happened to this server while phase `phase` ran, if it is why the phase failed:
    /// it stopped ([`EnvError::ServerLost`]), or it crashed and restarted (a PANIC in its log
    /// since `mark`): for a full disk [`EnvError::DiskFull`] naming the file the server
    /// could not write, otherwise [`EnvError::ServerCrashed`] with the log's lines. `said`
    /// is the phase's own error, kept in the message.
    pub async fn lost(&self, phase: &str, mark: &LogMark, said: &str) -> Option<EnvError> {
        let log = self.log_place();
        let mut liveness = self.liveness().await;
        if liveness == Liveness::Alive {
            // A postmaster killed as the step failed closes its sockets a moment before it
            // is a zombie: ask once more after that moment.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            liveness = self.liveness().await;
        }
        let end = match liveness {
            Liveness::Alive => None,
            Liveness::Exited(end) => Some(Some(end)),
            Liveness::Gone => Some(None),
        };
        // A server that died of a full disk (a PANIC on its WAL write) is named by its
        // disk, the cause, before its death, the consequence.
        let text = self.log_since(mark).await;
        let lines = crash_lines(&text);
        if let Some(full) = self.disk_full(&lines, said) {
            return Some(full);
        }
        if let Some(end) = end {
            use nix::sys::signal::Signal;
            let killed = matches!(
                end,
                Some(ServerEnd::Signal(Signal::SIGKILL))
                    | Some(ServerEnd::Container { code: 137, .. })
                    | Some(ServerEnd::Container {
                        oom_killed: true,
                        ..
                    })
            );
            let hint = if killed {
                "a SIGKILL comes from the kernel's OOM killer (see `dmesg`) or from an operator"
            } else {
                "an operator, a resource limit, or the server's log"
            };
            return Some(EnvError::ServerLost(Box::new(
                crate::env_error::ServerLost {
                    server: self.describe(),
                    phase: phase.to_string(),
                    how: end.map_or_else(|| "its process is gone".into(), |e| e.to_string()),
                    hint: hint.into(),
                    log,
                    said: said.to_string(),
                },
            )));
        }
        if lines.is_empty() {
            return None;
        }
        let joined = lines.join("\n");
        Some(EnvError::ServerCrashed(Box::new(
            crate::env_error::ServerCrashed {
                server: self.describe(),
                phase: phase.to_string(),
                lines: joined,
                log,
                said: said.to_string(),
            },
        )))
    }

    /// A full disk under this server, from its log's lines (`lines`, the crash lines since
    /// the step began) or, when the log (on the same disk) lost them, from the disk's free
    /// space (native backend).
    fn disk_full(&self, lines: &[&str], said: &str) -> Option<EnvError> {
        let fix = match self.probe {
            Probe::Native { .. } => "free space there, or point TMPDIR at a bigger disk (the native backend makes its servers under TMPDIR)",
            Probe::Docker { .. } => "free space on the Docker engine's disk (`docker system df`)",
        };
        if lines.is_empty() {
            // The log shares the full disk and may have lost the server's words: the disk's
            // own free space then says it.
            let Probe::Native { data, .. } = &self.probe else {
                return None;
            };
            let free = native::free_bytes(data)?;
            return (free < native::FULL_BELOW).then(|| EnvError::DiskFull {
                place: format!(
                    "the disk under {} of {} ({free} bytes free)",
                    data.display(),
                    self.describe()
                ),
                fix: fix.into(),
                said: said.to_string(),
            });
        }
        let joined = lines.join("\n");
        if crate::program::Fault::said_by(&joined) == Some(crate::program::Fault::DiskFull) {
            let file = lines
                .iter()
                .find(|l| l.contains("No space left on device"))
                .and_then(|l| quoted(l))
                .map(|f| self.data_dir().join(f));
            let place = match file {
                Some(f) => format!(
                    "the disk under {} of {} ({})",
                    self.data_dir().display(),
                    self.describe(),
                    f.display()
                ),
                None => format!(
                    "the disk under {} of {}",
                    self.data_dir().display(),
                    self.describe()
                ),
            };
            return Some(EnvError::DiskFull {
                place,
                fix: fix.into(),
                said: format!("{joined}\n{said}"),
            });
        }
        None
    }
}

/// The lines of a server log that say why its clients' sessions failed: every PANIC (the
/// server crashed and restarted) and every line naming a full disk (the last 10 at most).
/// FATAL or ERROR alone ends one session or statement, which its client already reported.
fn crash_lines(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("PANIC:")
                || ((l.contains("FATAL:") || l.contains("ERROR:"))
                    && l.contains("No space left on device"))
        })
        .collect();
    lines[lines.len().saturating_sub(10)..].to_vec()
}

/// The first double-quoted part of a server message: the file it names.
fn quoted(line: &str) -> Option<&str> {
    let start = line.find('"')? + 1;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_is_read_from_the_log_s_panic_and_full_disk_lines() {
        let log = "LOG:  checkpoint starting\n\
                   ERROR:  duplicate key value\n\
                   PANIC:  could not write to file \"pg_wal/xlogtemp.42\": No space left on device\n\
                   LOG:  server process (PID 7) was terminated by signal 6: Aborted\n";
        let lines = crash_lines(log);
        assert_eq!(lines.len(), 1);
        assert_eq!(quoted(lines[0]), Some("pg_wal/xlogtemp.42"));
        assert!(crash_lines("FATAL:  password authentication failed\n").is_empty());
        let extend = "ERROR:  could not extend file \"base/5/16384\": No space left on device";
        assert_eq!(crash_lines(extend), vec![extend]);
    }

    #[test]
    fn a_lost_server_s_end_is_said_with_its_signal_or_code() {
        use nix::sys::signal::Signal;
        assert_eq!(
            ServerEnd::Signal(Signal::SIGKILL).to_string(),
            "signal 9 (SIGKILL)"
        );
        assert_eq!(ServerEnd::Code(1).to_string(), "exit code 1");
        let oom = ServerEnd::Container {
            code: 137,
            oom_killed: true,
        };
        assert!(oom.to_string().contains("OOM"));
    }
}
