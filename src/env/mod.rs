//! Where disposable servers come from: the backends, the targets they hand out, and the
//! PostgreSQL client programs used against them.

pub mod docker;
pub mod leftovers;
pub mod native;
pub mod pg_tools;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EnvError;
pub use pg_tools::{PgTools, ToolCommand};

/// How to reach a PostgreSQL server: enough for a client library and for libpq programs.
#[derive(Clone)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// Password, if the server wants one. Never printed.
    pub password: Option<String>,
    /// Database to connect to by default.
    pub dbname: String,
    /// Extra server options sent at connect time (libpq `options`).
    pub options: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Endpoint {
    /// The superuser of a drill's own server on loopback; the port is filled in once known.
    pub fn loopback_superuser(password: &str) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: 0,
            user: "postgres".into(),
            password: Some(password.to_string()),
            dbname: "postgres".into(),
            options: None,
        }
    }

    /// The same server, another database.
    pub fn with_db(&self, dbname: &str) -> Endpoint {
        Endpoint {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// A tokio-postgres configuration for this endpoint.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("pgdrill")
            .connect_timeout(Duration::from_secs(10));
        if let Some(p) = &self.password {
            c.password(p);
        }
        if let Some(o) = &self.options {
            c.options(o);
        }
        c
    }

    /// libpq environment variables for programs such as pg_dump: keeps the password out of
    /// the process list, where a `-d` connection string would show it.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGAPPNAME", "pgdrill".to_string()),
            ("PGCONNECT_TIMEOUT", "10".to_string()),
        ];
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        if let Some(o) = &self.options {
            env.push(("PGOPTIONS", o.clone()));
        }
        env
    }

    /// A connection URL for applications, password included: only ever handed to a child
    /// process's environment, never printed.
    pub fn url(&self) -> String {
        let mut s = format!(
            "host={} port={} user={} dbname={}",
            self.host, self.port, self.user, self.dbname
        );
        if let Some(p) = &self.password {
            s.push_str(&format!(" password={}", quote_libpq(p)));
        }
        s
    }

    /// A printable form with the password shown as `***`.
    pub fn display(&self) -> String {
        format!(
            "postgresql://{}{}@{}:{}/{}",
            self.user,
            if self.password.is_some() { ":***" } else { "" },
            self.host,
            self.port,
            self.dbname
        )
    }

    /// Connects, spawning the connection task; errors name the server (redacted) and a fix.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, EnvError> {
        connect_config(&self.config(), &self.display()).await
    }

    /// Builds an endpoint from a user's DSN (URL or key=value form).
    pub fn from_dsn(dsn: &str) -> Result<Endpoint, String> {
        let cfg: tokio_postgres::Config = dsn
            .parse()
            .map_err(|e| format!("cannot parse the DSN ({e}); expected postgresql://user@host:port/db or 'host=… dbname=…'"))?;
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let user = cfg
            .get_user()
            .map(str::to_string)
            .or_else(|| std::env::var("PGUSER").ok())
            .unwrap_or_else(|| "postgres".to_string());
        let dbname = cfg
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        let password = cfg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .or_else(|| std::env::var("PGPASSWORD").ok());
        Ok(Endpoint {
            host,
            port,
            user,
            password,
            dbname,
            options: cfg.get_options().map(str::to_string),
        })
    }
}

/// Connects with a config, naming `what` (already redacted) in errors.
pub async fn connect_config(
    cfg: &tokio_postgres::Config,
    what: &str,
) -> Result<tokio_postgres::Client, EnvError> {
    match cfg.connect(tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        Err(e) => Err(EnvError::Connect {
            target: what.to_string(),
            reason: explain_connect_error(&e),
        }),
    }
}

fn explain_connect_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let hint = match db.code().code() {
            "28P01" | "28000" => " Check the user name and password (PGPASSWORD or the DSN).",
            "3D000" => " Check the database name in the DSN.",
            _ => "",
        };
        return format!("{}{hint}", db.message());
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    format!("{msg}. Check that the server is running and reachable at that host and port.")
}

fn quote_libpq(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

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
