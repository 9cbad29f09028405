//! Why the machine cannot host a drill: [`EnvError`], a leaf that every layer may use (the
//! servers, the container engine, the domain steps), below the top [`crate::error::Error`].

/// Why the environment cannot host a drill; never a verdict on the backup itself.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A PostgreSQL program could not be found.
    #[error("PostgreSQL program `{program}` not found (looked in `pg_config --bindir` and PATH). Install the server and client packages (Debian/Ubuntu: `apt-get install postgresql-15 postgresql-client-15`), put their bin directory on PATH, or use `--backend docker`.")]
    MissingBinary {
        /// The program name, e.g. `initdb`.
        program: String,
    },
    /// A client tool is older than the server it must talk to.
    #[error("{tool} {tool_version} is older than the server ({server_version}); it cannot dump or restore it reliably. Install PostgreSQL client tools of major version {server_major} or newer.")]
    ToolTooOld {
        /// The tool, e.g. `pg_dump`.
        tool: String,
        /// Its version string.
        tool_version: String,
        /// The server's version string.
        server_version: String,
        /// The server's major version.
        server_major: u32,
    },
    /// A disposable server did not come up.
    #[error("could not start a disposable PostgreSQL server: {reason}")]
    ServerStart {
        /// What went wrong, with the server's log excerpt when there is one.
        reason: String,
    },
    /// The restore target would not start with a setting it was given (`--server-setting`,
    /// or one copied by `--server-settings-from`).
    #[error("the restore target would not start with the setting {setting} ({origin}): PostgreSQL said: {said}. Fix the value or drop the setting. The server's start-up output:\n{log}")]
    ServerSetting {
        /// `name=value`.
        setting: String,
        /// Where it came from (`--server-setting`, `copied` from `--server-settings-from`).
        origin: &'static str,
        /// PostgreSQL's line naming it.
        said: String,
        /// The whole start-up failure, its log included.
        log: String,
    },
    /// Running a program failed at the operating-system level.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Connecting to a server failed.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The server, with any password redacted.
        target: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// Docker is not available or refused an operation.
    #[error("docker: {0}")]
    Docker(String),
    /// No Docker engine answers, or the docker CLI is missing.
    #[error("no Docker engine: {reason}. Start Docker (e.g. `systemctl start docker`), check DOCKER_HOST and that this user may use the Docker socket, or use `--backend native`.")]
    NoDockerEngine {
        /// What was tried and what it said.
        reason: String,
    },
    /// A container image that is neither present locally nor pullable.
    #[error("image `{image}` is not available: it is not present locally and `docker pull` failed ({reason}). Build the local images with `scripts/build-images.sh` (pgdrill/postgres:15-local), pull the image where a registry is reachable, or name another image with PGDRILL_POSTGRES_IMAGE.")]
    DockerImage {
        /// The image reference, e.g. `postgres:15`.
        image: String,
        /// What `docker pull` said.
        reason: String,
    },
    /// The application's image is neither present locally nor pullable.
    #[error("application image `{image}` is not available: it is not present locally and `docker pull` failed ({reason}). {fix}, or run the drill with --app none.")]
    AppImage {
        /// The image reference.
        image: String,
        /// What `docker pull` said.
        reason: String,
        /// How to get it.
        fix: String,
    },
    /// `--backend auto` found neither local PostgreSQL binaries nor a Docker engine.
    #[error("--backend auto found no way to run a disposable PostgreSQL server: no local PostgreSQL binaries ({native}) and no usable Docker engine ({docker}). Install the PostgreSQL server and client packages, or start Docker.")]
    NoBackend {
        /// Why the native backend cannot work.
        native: String,
        /// Why the docker backend cannot work.
        docker: String,
    },
    /// Any other I/O problem on this machine (temp dirs, disk space).
    #[error("{context}: {source}")]
    Io {
        /// What pgdrill was doing.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A disk of the drill's machine filled up (ENOSPC) under something the drill runs.
    #[error("No space left on device: {place} is full; {fix}. What failed:\n{said}")]
    DiskFull {
        /// What filled up and its path, e.g. the target's data directory.
        place: String,
        /// How to make room.
        fix: String,
        /// The failing program's own words.
        said: String,
    },
    /// A server the drill owns stopped while a step ran: whatever the step then said, the
    /// backup is not to blame.
    #[error(transparent)]
    ServerLost(Box<ServerLost>),
    /// A server the drill owns crashed and restarted (a PANIC in its log) while a step ran,
    /// closing the step's connections.
    #[error(transparent)]
    ServerCrashed(Box<ServerCrashed>),
    /// The drill was interrupted by a signal before it could finish.
    #[error("interrupted by {0}; every server the drill started has been stopped")]
    Interrupted(&'static str),
    /// `pgdrill backup` was interrupted by a signal (it starts no server of its own).
    #[error("pgdrill backup interrupted by {signal} {stage}")]
    BackupInterrupted {
        /// The signal's name.
        signal: &'static str,
        /// Where the backup was.
        stage: BackupStage,
    },
}

/// Where `pgdrill backup` was when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupStage {
    /// Waiting for another backup to release the repo lock.
    WaitingForLock,
    /// Taking the backup, under the lock.
    Dumping,
}

impl std::fmt::Display for BackupStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackupStage::WaitingForLock => {
                "while waiting for the repo lock; no backup was started and the repo is unchanged"
            }
            BackupStage::Dumping => {
                "during the backup; no file was left under a final name and the repo lock is released"
            }
        })
    }
}

impl EnvError {
    /// Wraps an I/O error with what pgdrill was doing at the time.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EnvError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A server the drill owns that stopped while a step ran.
#[derive(Debug, thiserror::Error)]
#[error("{server}, exited during {phase}: {how}. A lost server is a fault of the drill's machine, not of the backup: find what stopped it ({hint}; its log: {log}) and run the drill again. What {phase} said:\n{said}")]
pub struct ServerLost {
    /// The server, e.g. `the target server, pid 123`.
    pub server: String,
    /// The phase that was running.
    pub phase: String,
    /// How it ended (exit code, signal, OOM).
    pub how: String,
    /// Where to look for the cause.
    pub hint: String,
    /// Where its log is.
    pub log: String,
    /// The step's own error.
    pub said: String,
}

/// A server the drill owns that crashed and restarted while a step ran.
#[derive(Debug, thiserror::Error)]
#[error("{server} crashed during {phase} (its log: {log}):\n{lines}\nWhat {phase} said:\n{said}")]
pub struct ServerCrashed {
    /// The server, e.g. `the source server, pid 123`.
    pub server: String,
    /// The phase that was running.
    pub phase: String,
    /// The log's PANIC and FATAL lines.
    pub lines: String,
    /// Where its log is.
    pub log: String,
    /// The step's own error.
    pub said: String,
}
