//! Where disposable servers come from: the backends, the targets they hand out, and the
//! PostgreSQL client programs used against them.

pub mod docker;
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
        match self {
            Backend::Native(b) => Ok(Target::Native(b.provision(role).await?)),
            Backend::Docker(b) => Ok(Target::Docker(b.provision(role).await?)),
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
}

impl Target {
    /// How to connect as the superuser to the maintenance database.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Target::Native(t) => &t.endpoint,
            Target::Docker(t) => &t.endpoint,
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
        }
    }

    /// A human-readable description (data directory, container id).
    pub fn describe(&self) -> String {
        match self {
            Target::Native(t) => t.describe(),
            Target::Docker(t) => t.describe(),
        }
    }

    /// Stops the server and removes everything it had, now.
    pub async fn destroy(self) -> Result<(), EnvError> {
        match self {
            Target::Native(t) => t.destroy().await,
            Target::Docker(t) => t.destroy().await,
        }
    }

    /// Keeps the server running after pgdrill exits (`--keep`); returns how to connect.
    pub fn keep(self) -> String {
        match self {
            Target::Native(t) => t.keep(),
            Target::Docker(t) => t.keep(),
        }
    }
}
