//! How to reach a PostgreSQL server ([`Endpoint`]): for a client library, for libpq
//! programs (environment variables) and for applications (a conninfo string), and a
//! connection whose errors name the server (redacted) and a fix.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::env_error::EnvError;

/// How to reach a PostgreSQL server: enough for a client library and for libpq programs.
#[derive(Clone)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Role to connect as.
    pub user: String,
    /// Password, if the server wants one. Its Debug is `[REDACTED]`; read it with
    /// [`Endpoint::password`] only where a client or a child process needs it.
    pub password: Option<SecretString>,
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
            password: Some(SecretString::from(password)),
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

    /// A tokio-postgres configuration for this endpoint (pgdrill's own sessions: without the
    /// server's statement, lock and idle-in-transaction limits).
    pub fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("pgdrill")
            .connect_timeout(CONNECT_TIMEOUT)
            // A peer that vanishes without a RST (a dead NAT entry, a frozen VM) is noticed in
            // about idle + count × interval instead of the kernel's two hours.
            .keepalives(true)
            .keepalives_idle(KEEPALIVES_IDLE)
            .keepalives_interval(KEEPALIVES_INTERVAL)
            .keepalives_retries(KEEPALIVES_COUNT)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
        if let Some(p) = &self.password {
            c.password(p.expose_secret());
        }
        // A production database often limits its sessions (ALTER DATABASE or ROLE … SET
        // statement_timeout, idle_in_transaction_session_timeout). Those limits would cut the
        // snapshot's long reads and the exported-snapshot transaction that waits while pg_dump
        // runs, so, as pg_dump does for itself, pgdrill's own sessions lift them; sent at
        // connect time, after the user's options, they win over every ALTER … SET. The
        // snapshot session then bounds its own idling (`pg::bound_snapshot_session`).
        let lifted = NO_SESSION_LIMITS;
        match &self.options {
            Some(o) => c.options(format!("{o} {lifted}")),
            None => c.options(lifted),
        };
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
            ("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT.as_secs().to_string()),
        ];
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.expose_secret().to_string()));
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
            conninfo_value(&self.host),
            self.port,
            conninfo_value(&self.user),
            conninfo_value(&self.dbname)
        );
        if let Some(p) = &self.password {
            s.push_str(&format!(" password={}", conninfo_value(p.expose_secret())));
        }
        s
    }

    /// `dbname='…'` plus the TCP keepalives and timeouts, for a program's `-d` or database
    /// argument. The host, port and user come from [`Endpoint::libpq_env`]; a bare name
    /// holding `=` (or starting like a URI) would be read by libpq as a whole connection
    /// string, and libpq reads keepalives from a conninfo only, never from the environment.
    pub fn dbname_arg(&self) -> String {
        format!(
            "dbname={} connect_timeout={} keepalives=1 keepalives_idle={} keepalives_interval={} keepalives_count={} tcp_user_timeout={}",
            conninfo_value(&self.dbname),
            CONNECT_TIMEOUT.as_secs(),
            KEEPALIVES_IDLE.as_secs(),
            KEEPALIVES_INTERVAL.as_secs(),
            KEEPALIVES_COUNT,
            TCP_USER_TIMEOUT.as_millis()
        )
    }

    /// The password, for a client or a child process: never for output.
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose_secret())
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
            .or_else(|| std::env::var("PGPASSWORD").ok())
            .map(SecretString::from);
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

/// How long a connection attempt may take before it fails (libpq's `connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence on a connection before the first TCP keepalive probe.
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
/// Between unanswered keepalive probes.
pub const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered keepalive probes before the connection is dropped.
pub const KEEPALIVES_COUNT: u32 = 6;
/// How long sent data may stay unacknowledged before the connection is dropped: above the
/// keepalives' 90 s, so it never cuts a connection they still consider alive.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(120);

/// The startup options that lift a server's session limits for pgdrill's own sessions.
const NO_SESSION_LIMITS: &str =
    "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0";

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

/// A libpq conninfo value: single-quoted, with `\\` and `'` escaped by a backslash, so that
/// spaces, quotes and an empty value survive (libpq's "Keyword/Value Connection Strings").
pub fn conninfo_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('\'');
    for c in v.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_carries_keepalives_and_timeouts() {
        let ep = Endpoint::loopback_superuser("pw").with_db("it's");
        let c = ep.config();
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(c.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));
        assert_eq!(c.get_keepalives_retries(), Some(KEEPALIVES_COUNT));
        assert_eq!(c.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(c.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(
            ep.dbname_arg(),
            r"dbname='it\'s' connect_timeout=10 keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=6 tcp_user_timeout=120000"
        );
    }

    #[test]
    fn conninfo_values_survive_spaces_quotes_and_backslashes() {
        assert_eq!(conninfo_value("a b"), "'a b'");
        assert_eq!(conninfo_value(r"it's \ here"), r"'it\'s \\ here'");
        assert_eq!(conninfo_value(""), "''");
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port: 5433,
            user: "odd user".into(),
            password: Some(r"p w'\x=1 dbname=evil".into()),
            dbname: "shop db".into(),
            options: None,
        };
        let parsed: tokio_postgres::Config = ep.url().parse().unwrap();
        assert_eq!(parsed.get_user(), Some("odd user"));
        assert_eq!(parsed.get_dbname(), Some("shop db"));
        assert_eq!(
            parsed.get_password(),
            Some(r"p w'\x=1 dbname=evil".as_bytes())
        );
        assert_eq!(parsed.get_ports(), &[5433]);
        let shown = format!("{ep:?} {}", ep.display());
        assert!(!shown.contains("evil") && shown.contains("***"), "{shown}");
    }
}
