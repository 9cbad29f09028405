//! The docker backend: disposable PostgreSQL servers as containers started through
//! testcontainers, on a network made for the drill, every container and the network labelled
//! `pgdrill.drill=<drill-id>` so that leftovers can always be found.
//!
//! testcontainers creates and starts the containers and answers questions about them (port,
//! state, logs). The docker CLI runs the client programs inside them (`docker exec`, whose
//! stdin and stdout the drill streams like a local program's) and removes containers in
//! `Drop`, which must work synchronously on every exit path, a panic included.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{AccessMode, IntoContainerPort, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::{Endpoint, PgTools};
use crate::engine::{
    docker_sync, error_chain, hand_over, have_image, image_present, remove_sync, split_image,
    Reaper, START_TIMEOUT,
};
pub use crate::engine::{LABEL_DRILL, LABEL_ROLE};
use crate::env_error::EnvError;
use crate::pg::settings::ServerSettings;
use crate::pg::tools::{short_id, CLIENT_PROGRAMS};

/// The image a CI user would use: the official image of the PostgreSQL major pgdrill targets.
pub const DEFAULT_IMAGE: &str = "postgres:15";
/// The image scripts/build-images.sh builds where nothing can be pulled.
pub const LOCAL_IMAGE: &str = "pgdrill/postgres:15-local";
/// Overrides [`DEFAULT_IMAGE`]; an image named here is never replaced by another.
pub const IMAGE_ENV: &str = "PGDRILL_POSTGRES_IMAGE";
/// A fixed host port for the servers (default: one Docker picks).
pub const PORT_ENV: &str = "PGDRILL_DOCKER_PORT";
/// How long a new container may take to answer a query (a duration such as `90s`).
pub const READY_TIMEOUT_ENV: &str = "PGDRILL_DOCKER_READY_TIMEOUT";

/// The server's port inside its container.
const PG_PORT: u16 = 5432;
/// `--no-sync` as in the native backend's initdb: a disposable server needs no durability
/// during initialisation. Locale and encoding as native, so fingerprints and collations match.
const INITDB_ARGS: &str = "--locale=C -E UTF8 --no-sync";
/// The superuser password reaches the entrypoint as a file (POSTGRES_PASSWORD_FILE), so it
/// is not in `docker inspect`'s environment.
const PASSWORD_FILE: &str = "/run/secrets/pgdrill-password";
/// Docker's default /dev/shm (64 MB) starves parallel index builds of big restores.
const SHM_BYTES: u64 = 512 << 20;
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts when a port Docker picked turns out to be taken by another process.
const PORT_ATTEMPTS: usize = 3;
/// Two answers this far apart with the same postmaster start time: the final server.
const STABLE_FOR: Duration = Duration::from_millis(100);

/// Starts PostgreSQL containers for one drill, on the drill's own network.
pub struct DockerBackend {
    drill_id: String,
    network: String,
    image: String,
    image_note: Option<String>,
    engine: String,
    host_tools: PgTools,
    keep: bool,
    /// Targets handed over with `--keep`: while any exists, the network stays.
    kept: Arc<AtomicUsize>,
    password: String,
    fixed_port: Option<u16>,
    ready_timeout: Duration,
    /// A marked temp dir naming this process (`leftovers`): after a `kill -9` it stays, and
    /// `pgdrill clean` then removes the drill's labelled containers and network.
    _owner: tempfile::TempDir,
}

/// A running PostgreSQL container owned by the drill; removed with its data when dropped.
pub struct DockerTarget {
    /// Superuser connection to the `postgres` database through the published port.
    pub endpoint: Endpoint,
    /// The programs inside this container.
    pub tools: PgTools,
    /// Boxed: the handle carries the whole container request.
    container: Option<Box<ContainerAsync<GenericImage>>>,
    id: String,
    name: String,
    image: String,
    image_note: Option<String>,
    network: String,
    ready: Duration,
    kept: Arc<AtomicUsize>,
    /// A physical restore's host directory (`data`, the log, the access rules), mounted at
    /// the same path: removed with the target.
    dir: Option<PathBuf>,
}

/// What a container started on a physical restore's data directory needs beside the image's
/// own start: see [`DockerBackend::start_restored`].
struct Restored<'a> {
    dir: &'a Path,
    read_only: &'a [PathBuf],
    user: String,
    ready: Duration,
}

enum StartError {
    PortClash(String),
    Env(EnvError),
}

impl From<EnvError> for StartError {
    fn from(e: EnvError) -> Self {
        StartError::Env(e)
    }
}

impl DockerBackend {
    /// Checks the engine, settles the image (pulling it, or falling back to the local
    /// build), and creates the drill's network.
    pub async fn open(drill_id: &str) -> Result<DockerBackend, EnvError> {
        let engine = crate::engine::version().await?;
        let fixed_port = match std::env::var(PORT_ENV) {
            Ok(v) if !v.trim().is_empty() => Some(
                v.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        EnvError::Docker(format!("{PORT_ENV}={v} is not a port number (1-65535)"))
                    })?,
            ),
            _ => None,
        };
        let ready_timeout = match std::env::var(READY_TIMEOUT_ENV) {
            Ok(v) if !v.trim().is_empty() => crate::duration::parse_duration(&v)
                .map_err(|e| EnvError::Docker(format!("{READY_TIMEOUT_ENV}: {e}")))?,
            _ => READY_TIMEOUT,
        };
        let (image, image_note) = resolve_image().await?;
        let labels = vec![
            (LABEL_DRILL.to_string(), drill_id.to_string()),
            (LABEL_ROLE.to_string(), "tools".to_string()),
        ];
        // For servers outside the drill's containers (--source-dsn): this machine's programs
        // when it has them, else the image's in one-off containers on the host's network.
        let host_tools = PgTools::discover(CLIENT_PROGRAMS)
            .unwrap_or_else(|_| PgTools::in_image(&image, labels));
        let network = format!("pgdrill-{drill_id}");
        // Removed again if anything below fails or the drill is cancelled meanwhile; from
        // then on the backend's Drop removes it.
        let mut reaper = Reaper::network(&network);
        // Created without an await point between the guard and the network: a cancellation
        // (SIGTERM) can only drop this future before the request or after it, never while the
        // daemon is creating a network no guard would remove (seen under load in the suite).
        let created = docker_sync(&[
            "network",
            "create",
            "--label",
            &format!("{LABEL_DRILL}={drill_id}"),
            "--label",
            &format!("{LABEL_ROLE}=network"),
            &network,
        ]);
        let Some(out) = created else {
            return Err(EnvError::Docker(format!(
                "cannot run `docker network create {network}`"
            )));
        };
        if !out.status.success() {
            return Err(EnvError::Docker(format!(
                "cannot create the drill's network {network}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let owner = tempfile::Builder::new()
            .prefix(&format!(
                "pgdrill-{drill_id}-{}",
                super::leftovers::DOCKER_ROLE
            ))
            .tempdir()
            .map_err(|e| EnvError::io("cannot create a temp dir for the drill's marker", e))?;
        super::leftovers::mark(owner.path(), drill_id)?;
        reaper.disarm();
        Ok(DockerBackend {
            _owner: owner,
            drill_id: drill_id.to_string(),
            network,
            image,
            image_note,
            engine,
            host_tools,
            keep: false,
            kept: Arc::default(),
            password: uuid::Uuid::new_v4().simple().to_string(),
            fixed_port,
            ready_timeout,
        })
    }

    /// With `--keep`, servers outlive pgdrill; [`DockerTarget::keep`] does the handing over.
    pub fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// Whether `--keep` was asked for.
    pub fn keeps(&self) -> bool {
        self.keep
    }

    /// Programs for servers outside the drill's containers (a `--source-dsn`).
    pub fn tools(&self) -> &PgTools {
        &self.host_tools
    }

    /// The image the servers run.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The drill's network.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The engine's version, e.g. `Docker Engine 20.10.24`.
    pub fn engine(&self) -> &str {
        &self.engine
    }

    /// The database server's container name, which is its host name on the drill's network.
    /// The drill's id, which names and labels its containers.
    pub(crate) fn drill_id(&self) -> &str {
        &self.drill_id
    }

    /// The count of containers handed over with `--keep`, shared with each container.
    pub(crate) fn kept_counter(&self) -> Arc<AtomicUsize> {
        self.kept.clone()
    }

    fn db_host(&self) -> String {
        format!("pgdrill-{}-db", self.drill_id)
    }

    /// Starts a new empty server container and waits until it answers a query.
    pub async fn provision(&self, role: &str) -> Result<DockerTarget, EnvError> {
        self.provision_with(role, &ServerSettings::default()).await
    }

    /// Starts a new empty server container running `postgres -c name=value …` for
    /// `settings`; a value the server refuses is [`EnvError::ServerSetting`], in PostgreSQL's
    /// words.
    pub async fn provision_with(
        &self,
        role: &str,
        settings: &ServerSettings,
    ) -> Result<DockerTarget, EnvError> {
        let attempts = if self.fixed_port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last = String::new();
        for _ in 0..attempts {
            match self.start(role, settings, None).await {
                Ok(t) => return Ok(t),
                Err(StartError::Env(e)) => return Err(settings.start_failed(e)),
                Err(StartError::PortClash(m)) => last = m,
            }
        }
        Err(EnvError::ServerStart { reason: last })
    }

    /// A disposable host directory for a physical restore (`pgbackrest restore`, `barman
    /// recover`): marked as the drill's (so `pgdrill clean` finds it after a `kill -9`),
    /// owned by the server user, with an empty `data` directory (mode 0700) and no container
    /// yet. [`DockerBackend::start_restored`] starts one on it; dropping or destroying the
    /// target removes the directory.
    pub fn empty_target(&self, role: &str) -> Result<DockerTarget, EnvError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgdrill-{}-{role}-", self.drill_id))
            .tempdir()
            .map_err(|e| EnvError::io("cannot create a temp dir for the restore", e))?;
        super::leftovers::mark(dir.path(), &self.drill_id)?;
        let data = dir.path().join("data");
        let io = |what: &str, e| EnvError::io(format!("{what} {}", data.display()), e);
        std::fs::create_dir(&data).map_err(|e| io("cannot create", e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("cannot restrict", e))?;
        let user = super::native::server_user()?;
        for p in [dir.path(), data.as_path()] {
            give_to(p, user.as_ref())?;
        }
        Ok(DockerTarget {
            endpoint: Endpoint::loopback_superuser(&self.password),
            tools: self.host_tools.clone(),
            container: None,
            id: String::new(),
            name: self.db_host(),
            image: self.image.clone(),
            image_note: self.image_note.clone(),
            network: self.network.clone(),
            ready: Duration::ZERO,
            kept: self.kept.clone(),
            dir: Some(dir.keep()),
        })
    }

    /// Starts a container on the data directory a physical restore filled in `target` (see
    /// [`DockerBackend::empty_target`]), waiting up to `ready` for a query (a hot standby
    /// answers once recovery is consistent, one that does not once it is promoted).
    ///
    /// The directory is mounted at its own path (the restore wrote that path into the
    /// recovery settings), each of `read_only` (the repository and the tool's configuration,
    /// which the restored server's `restore_command` reads) read-only at its own path, so
    /// the server can never write into them. The server runs as the user who owns the files
    /// (the host's server user), with the restored cluster's roles but not its access rules:
    /// `trust`, reachable only through the port published on 127.0.0.1 and the drill's own
    /// network, as the native backend's restored server is only through its private socket.
    /// Archiving is off; the log goes to `postgres.log` in the directory, for the recovery's
    /// lines.
    pub async fn start_restored(
        &self,
        target: &mut DockerTarget,
        settings: &ServerSettings,
        ready: Duration,
        read_only: &[PathBuf],
    ) -> Result<(), EnvError> {
        let dir = target.dir.take().ok_or_else(|| EnvError::ServerStart {
            reason: "the restored server's directory is gone".into(),
        })?;
        let user = super::native::server_user()?;
        let prepared = super::native::prepare_restored(
            &dir,
            "local all all trust\nhost all all all trust\n",
            user.as_ref(),
        );
        if let Err(e) = prepared {
            target.dir = Some(dir);
            return Err(e);
        }
        let (uid, gid) = match &user {
            Some(u) => (u.uid.as_raw(), u.gid.as_raw()),
            None => (
                nix::unistd::Uid::effective().as_raw(),
                nix::unistd::Gid::effective().as_raw(),
            ),
        };
        let restored = Restored {
            dir: &dir,
            read_only,
            user: format!("{uid}:{gid}"),
            ready,
        };
        let attempts = if self.fixed_port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last = String::new();
        for _ in 0..attempts {
            match self.start("restored", settings, Some(&restored)).await {
                Ok(mut t) => {
                    t.dir = Some(dir);
                    *target = t;
                    return Ok(());
                }
                Err(StartError::Env(e)) => {
                    target.dir = Some(dir);
                    return Err(settings.start_failed(e));
                }
                Err(StartError::PortClash(m)) => last = m,
            }
        }
        target.dir = Some(dir);
        Err(EnvError::ServerStart { reason: last })
    }

    /// Whether `program` is on the image's PATH, asked of a throwaway container with no
    /// network (labelled as the drill's, so cleanup finds it if pgdrill dies meanwhile).
    pub async fn image_has(&self, program: &str) -> Result<bool, EnvError> {
        let mut cmd = tokio::process::Command::new("docker");
        cmd.args(["run", "--rm", "--network", "none", "--label"])
            .arg(format!("{LABEL_DRILL}={}", self.drill_id))
            .args([
                "--entrypoint",
                "sh",
                &self.image,
                "-c",
                "command -v \"$0\"",
                program,
            ])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = crate::program::output(&mut cmd)
            .await
            .map_err(|source| EnvError::Spawn {
                program: "docker".into(),
                source,
            })?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1 | 127) => Ok(false),
            _ => Err(EnvError::Docker(format!(
                "cannot run a container of image {} to look for {program}: {}",
                self.image,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    async fn start(
        &self,
        role: &str,
        settings: &ServerSettings,
        restored: Option<&Restored<'_>>,
    ) -> Result<DockerTarget, StartError> {
        // One name for whichever server is the drill's database: the app container reaches
        // it by this name on the drill's network, and after a server loss the replacement
        // answers to the same name, as a service name or DNS record would be repointed.
        let name = self.db_host();
        // Until a target owns the container, any way out of here (an error, a timeout, the
        // drill cancelled by a signal) removes whatever exists under this name: no container
        // is ever left behind in the "Created" state.
        let mut reaper = Reaper::container(&name);
        let (repo, tag) = split_image(&self.image);
        let host_port = self.fixed_port.map(|p| p.to_string()).unwrap_or_default();
        // The image's entrypoint hands these to its initialisation server and to the final
        // one: `postgres -c name=value …`. Without settings the image's own command runs, as
        // any image the user names expects.
        let mut assignments = settings.assignments();
        if let Some(r) = restored {
            let d = r.dir.display();
            // The restored configuration is the source's: its port, sockets and archiving
            // are overridden for a server inside this container.
            assignments.extend([
                format!("hba_file={d}/pgdrill_hba.conf"),
                format!("ident_file={d}/pgdrill_ident.conf"),
                "listen_addresses=*".to_string(),
                format!("port={PG_PORT}"),
                format!("unix_socket_directories={d}"),
                "archive_mode=off".to_string(),
                "archive_command=".to_string(),
                "logging_collector=on".to_string(),
                format!("log_directory={d}"),
                "log_filename=postgres.log".to_string(),
            ]);
        }
        let command: Vec<String> = std::iter::once("postgres".to_string())
            .chain(assignments.into_iter().flat_map(|a| ["-c".to_string(), a]))
            .collect();
        let plain = settings.is_empty() && restored.is_none();
        let request = GenericImage::new(repo, tag)
            .with_exposed_port(PG_PORT.tcp())
            .with_container_name(&name)
            .with_network(&self.network)
            .with_label(LABEL_DRILL, &self.drill_id)
            .with_label(LABEL_ROLE, role)
            .with_shm_size(SHM_BYTES)
            .with_cmd(if plain { Vec::new() } else { command })
            .with_startup_timeout(START_TIMEOUT)
            .with_host_config_modifier(move |hc: &mut HostConfig| {
                // Loopback only: a disposable superuser must not be reachable from the network.
                hc.publish_all_ports = Some(false);
                hc.port_bindings = Some(HashMap::from([(
                    format!("{PG_PORT}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(host_port.clone()),
                    }]),
                )]));
            });
        // A new server is initialised by the image's entrypoint with pgdrill's password; a
        // restored one already holds a cluster, which the entrypoint starts as it is.
        let request = match restored {
            None => request
                .with_env_var("POSTGRES_PASSWORD_FILE", PASSWORD_FILE)
                .with_env_var("POSTGRES_INITDB_ARGS", INITDB_ARGS)
                .with_copy_to(PASSWORD_FILE, self.password.clone().into_bytes()),
            Some(r) => {
                let dir = r.dir.display().to_string();
                let mut request = request
                    .with_mount(Mount::bind_mount(dir.clone(), dir.clone()))
                    .with_env_var("PGDATA", format!("{dir}/data"))
                    .with_user(r.user.clone());
                for p in r.read_only {
                    let p = p.display().to_string();
                    request = request.with_mount(
                        Mount::bind_mount(p.clone(), p).with_access_mode(AccessMode::ReadOnly),
                    );
                }
                request
            }
        };
        let started = Instant::now();
        let container = request
            .start()
            .await
            .map_err(|e| self.start_error(&name, &error_chain(&e)))?;
        reaper.disarm();
        let id = container.id().to_string();
        let mut target = DockerTarget {
            endpoint: Endpoint::loopback_superuser(&self.password),
            tools: PgTools::in_container(
                &id,
                ("127.0.0.1".into(), 0),
                ("127.0.0.1".into(), PG_PORT),
            ),
            container: Some(Box::new(container)),
            id,
            name,
            image: self.image.clone(),
            image_note: self.image_note.clone(),
            network: self.network.clone(),
            ready: Duration::ZERO,
            kept: self.kept.clone(),
            dir: None,
        };
        let port = match target.container().get_host_port_ipv4(PG_PORT).await {
            Ok(p) => p,
            // A container that already exited has no ports: say that it exited, and why.
            Err(e) => {
                return Err(target
                    .exited()
                    .await
                    .unwrap_or_else(|| {
                        EnvError::Docker(format!(
                            "cannot read the published port of container {}: {e}",
                            target.short()
                        ))
                    })
                    .into())
            }
        };
        target.endpoint.port = port;
        target.tools = PgTools::in_container(
            &target.id,
            ("127.0.0.1".into(), port),
            ("127.0.0.1".into(), PG_PORT),
        );
        target
            .wait_ready(restored.map_or(self.ready_timeout, |r| r.ready))
            .await?;
        target.ready = started.elapsed();
        Ok(target)
    }

    fn start_error(&self, name: &str, msg: &str) -> StartError {
        if msg.contains("address already in use") || msg.contains("port is already allocated") {
            return StartError::PortClash(match self.fixed_port {
                Some(p) => format!(
                    "port clash: 127.0.0.1:{p} ({PORT_ENV}) is already in use ({msg}). Free the port, or unset {PORT_ENV} to let Docker pick a free one."
                ),
                None => format!(
                    "port clash: every port Docker picked for {name} was taken by another process ({msg}). Try again, or name a free port with {PORT_ENV}."
                ),
            });
        }
        if msg.contains("No such image") || msg.contains("pull access denied") {
            return StartError::Env(EnvError::DockerImage {
                image: self.image.clone(),
                reason: msg.to_string(),
            });
        }
        StartError::Env(EnvError::ServerStart {
            reason: format!(
                "container {name} from image {} did not start: {msg}",
                self.image
            ),
        })
    }
}

impl Drop for DockerBackend {
    // Runs after the targets are gone (and on a panic possibly before them): removes every
    // container still carrying the drill's label, then the network. Kept servers keep both.
    fn drop(&mut self) {
        if self.kept.load(Ordering::SeqCst) > 0 {
            return;
        }
        let filter = format!("label={LABEL_DRILL}={}", self.drill_id);
        if let Some(out) = docker_sync(&["ps", "-aq", "--filter", &filter]) {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-fv"];
                args.extend(ids.iter().map(String::as_str));
                docker_sync(&args);
            }
        }
        crate::engine::remove_network_sync(&self.network);
    }
}

impl DockerTarget {
    fn container(&self) -> &ContainerAsync<GenericImage> {
        self.container
            .as_ref()
            .expect("container present until destroyed")
    }

    fn short(&self) -> &str {
        short_id(&self.id)
    }

    /// A physical restore's host directory (its `data`, its `postgres.log`).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Whether a container runs for this target (a physical restore's has none until
    /// [`DockerBackend::start_restored`]).
    pub fn has_container(&self) -> bool {
        self.container.is_some()
    }

    /// The full container id.
    pub fn container_id(&self) -> &str {
        &self.id
    }

    /// The container's name (`pgdrill-<drill-id>-db`), its host name on the drill's network.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The superuser's way in from another container on the drill's network.
    pub fn network_endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.name.clone(),
            port: PG_PORT,
            ..self.endpoint.clone()
        }
    }

    /// How long the container took from `docker create` to answering a query.
    pub fn ready_after(&self) -> Duration {
        self.ready
    }

    /// Container, image, network, address and start-up time, for humans.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "docker container {} ({}) from image {} on network {}, published on 127.0.0.1:{}, ready in {:.1} s",
            self.short(),
            self.name,
            self.image,
            self.network,
            self.endpoint.port,
            self.ready.as_secs_f64()
        );
        if let Some(note) = &self.image_note {
            s.push_str(&format!(" ({note})"));
        }
        s
    }

    /// Ready means a real query answered through the published port by the server's final
    /// start. The official image runs a temporary server during initialisation (socket-only
    /// there, but an image need not be so careful), so one answer is not enough: two answers
    /// at least 100 ms apart must report the same `pg_postmaster_start_time()`. A server that
    /// is stopped and started again in between reports a new start time and restarts the wait.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), EnvError> {
        let started = Instant::now();
        let mut last_error = String::from("no answer yet");
        let mut candidate: Option<(String, Instant)> = None;
        let mut last_state_check = Instant::now();
        loop {
            if last_state_check.elapsed() >= Duration::from_millis(250) {
                last_state_check = Instant::now();
                if let Some(e) = self.exited().await {
                    return Err(e);
                }
            }
            match postmaster_start(&self.endpoint).await {
                Ok(t) => match &candidate {
                    Some((t0, at)) if *t0 == t => {
                        if at.elapsed() >= STABLE_FOR {
                            return Ok(());
                        }
                    }
                    _ => candidate = Some((t, Instant::now())),
                },
                Err(e) => {
                    last_error = e;
                    candidate = None;
                }
            }
            if started.elapsed() > timeout {
                return Err(EnvError::ServerStart {
                    reason: format!(
                        "container {} ({}) did not answer a query on 127.0.0.1:{} within {} (last error: {last_error}); raise {READY_TIMEOUT_ENV} on a slow machine. Log:\n{}",
                        self.short(),
                        self.image,
                        self.endpoint.port,
                        crate::duration::human(timeout),
                        self.log_tail().await
                    ),
                });
            }
            let pause = if candidate.is_some() {
                STABLE_FOR
            } else {
                Duration::from_millis(50)
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// The error for a container that is no longer running, with its exit code and log.
    async fn exited(&self) -> Option<EnvError> {
        if !matches!(self.container().is_running().await, Ok(false)) {
            return None;
        }
        let code = self
            .container()
            .exit_code()
            .await
            .ok()
            .flatten()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unknown".into());
        Some(EnvError::ServerStart {
            reason: format!(
                "container {} ({}) exited with code {code} during start-up; log:\n{}",
                self.short(),
                self.image,
                self.log_tail().await
            ),
        })
    }

    async fn log_tail(&self) -> String {
        let c = self.container();
        let mut parts = Vec::new();
        for (what, bytes) in [
            ("stdout", c.stdout_to_vec().await),
            ("stderr", c.stderr_to_vec().await),
        ] {
            if let Ok(b) = bytes {
                let text = String::from_utf8_lossy(&b);
                let lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    parts.push(format!(
                        "[{what}]\n{}",
                        lines[lines.len().saturating_sub(15)..].join("\n")
                    ));
                }
            }
        }
        if parts.is_empty() {
            "(the container wrote no output)".into()
        } else {
            parts.join("\n")
        }
    }

    /// Removes the container and its data volume (`docker rm -fv`): the server and every
    /// byte of its data are gone.
    pub async fn destroy(mut self) -> Result<(), EnvError> {
        if let Some(c) = self.container.take() {
            if let Err(e) = c.rm().await {
                if !remove_sync(&self.id) {
                    return Err(EnvError::Docker(format!(
                        "cannot remove container {} ({e}); remove it with: docker rm -fv {}",
                        self.short(),
                        self.name
                    )));
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            super::native::remove_dir_retrying(&dir)
                .map_err(|e| EnvError::io(format!("cannot remove {}", dir.display()), e))?;
        }
        Ok(())
    }

    /// Leaves the container (and the drill's network) running; returns how to reach it.
    pub fn keep(mut self) -> String {
        hand_over(&mut self.container, &self.kept);
        let dir = self.dir.take();
        if let Some(d) = &dir {
            super::leftovers::unmark(d);
        }
        let mut how = format!(
            "server kept running: {} in docker container {} ({}), password in PGPASSWORD={}; a shell without password: docker exec -it {} psql -U postgres. Remove it with: docker rm -fv {}; docker network rm {}",
            self.endpoint.display(),
            self.short(),
            self.name,
            self.endpoint.password().unwrap_or_default(),
            self.name,
            self.name,
            self.network
        );
        if let Some(d) = dir {
            how.push_str(&format!("; rm -rf {}", d.display()));
        }
        how
    }
}

impl Drop for DockerTarget {
    // Error paths, panics and cancellation (Ctrl-C, SIGTERM drop the drill's future) all end
    // here: the container goes now, synchronously, not in a task that may never run.
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            remove_sync(&self.id);
            // testcontainers' own Drop needs a runtime and would remove it a second time.
            std::mem::forget(c);
        }
        if let Some(dir) = self.dir.take() {
            let _ = super::native::remove_dir_retrying(&dir);
        }
    }
}

/// `SELECT pg_postmaster_start_time()` over a fresh connection.
async fn postmaster_start(endpoint: &Endpoint) -> Result<String, String> {
    let mut cfg = endpoint.config();
    cfg.connect_timeout(Duration::from_secs(2));
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| crate::pg::error_text(&e))?;
    let conn = tokio::spawn(conn);
    let row = client
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .map_err(|e| crate::pg::error_text(&e));
    drop(client);
    let _ = conn.await;
    Ok(row?.get(0))
}

/// The image to run: `PGDRILL_POSTGRES_IMAGE` or the default, present or pulled. Only the
/// default falls back to the local build (with a note saying so): an image the user named
/// is never silently replaced.
async fn resolve_image() -> Result<(String, Option<String>), EnvError> {
    let named = std::env::var(IMAGE_ENV)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let wanted = named.clone().unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    let Err(reason) = have_image(&wanted).await? else {
        return Ok((wanted, None));
    };
    if named.is_none() && image_present(LOCAL_IMAGE).await? {
        let note = format!(
            "{DEFAULT_IMAGE} is not present locally and cannot be pulled, so the local {LOCAL_IMAGE} built by scripts/build-images.sh is used"
        );
        return Ok((LOCAL_IMAGE.to_string(), Some(note)));
    }
    Err(EnvError::DockerImage {
        image: wanted,
        reason,
    })
}

/// The data directory inside the official image (`PGDATA`), which the server's messages
/// are relative to.
pub const DATA_DIR: &str = "/var/lib/postgresql/data";

/// Whether container `id` still runs, from `docker inspect`: its exit code and the OOM flag
/// when it stopped, `Gone` when the engine no longer knows it.
pub(super) async fn liveness(id: &str) -> super::Liveness {
    use super::{Liveness, ServerEnd};
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args([
        "inspect",
        "--format",
        "{{.State.Running}} {{.State.ExitCode}} {{.State.OOMKilled}}",
        id,
    ])
    .stdin(std::process::Stdio::null());
    let Ok(out) = crate::program::output(&mut cmd).await else {
        // No answer from the engine is no evidence of a loss.
        return Liveness::Alive;
    };
    if !out.status.success() {
        return Liveness::Gone;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("false"), Some(code), oom) => Liveness::Exited(ServerEnd::Container {
            code: code.parse().unwrap_or(-1),
            oom_killed: oom == Some("true"),
        }),
        _ => Liveness::Alive,
    }
}

/// Container `id`'s log (stdout and stderr) since `at`, empty when it cannot be read.
pub(super) async fn log_since(id: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(["logs", "--since", &at.to_rfc3339(), id])
        .stdin(std::process::Stdio::null());
    match crate::program::output(&mut cmd).await {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => String::new(),
    }
}

/// Gives `path` to `user` (the server user, when pgdrill runs as root).
fn give_to(path: &Path, user: Option<&nix::unistd::User>) -> Result<(), EnvError> {
    if let Some(u) = user {
        nix::unistd::chown(path, Some(u.uid), Some(u.gid))
            .map_err(|e| EnvError::io(format!("chown {}", path.display()), e.into()))?;
    }
    Ok(())
}
