//! Finding and running the PostgreSQL programs (initdb, pg_dump, pg_restore, …) and checking
//! that their versions fit the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::Endpoint;
use crate::error::EnvError;

/// The PostgreSQL programs of one installation, all from the same bin directory.
#[derive(Debug, Clone)]
pub struct PgTools {
    bindir: PathBuf,
}

// Programs run on this machine. A backend whose servers carry their own programs (docker)
// provides another implementation of the same three methods: `command`, `plain`, `stage`.

/// The server programs a native backend needs.
pub const SERVER_PROGRAMS: &[&str] = &["initdb", "postgres"];
/// The client programs every drill needs.
pub const CLIENT_PROGRAMS: &[&str] = &["pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_amcheck"];

impl PgTools {
    /// Finds the bin directory through `PGDRILL_PG_BINDIR`, `pg_config --bindir`, then PATH,
    /// requiring every program in `needed`.
    pub fn discover(needed: &[&str]) -> Result<PgTools, EnvError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(d) = std::env::var("PGDRILL_PG_BINDIR") {
            candidates.push(PathBuf::from(d));
        }
        if let Ok(out) = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
        {
            if out.status.success() {
                let d = String::from_utf8_lossy(&out.stdout).trim().to_string();
                candidates.push(PathBuf::from(d));
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if let Some(real) = dir
                    .join(needed.first().copied().unwrap_or("psql"))
                    .canonicalize()
                    .ok()
                {
                    if let Some(parent) = real.parent() {
                        candidates.push(parent.to_path_buf());
                    }
                }
                candidates.push(dir);
            }
        }
        let mut missing = needed.first().copied().unwrap_or("psql").to_string();
        for dir in candidates {
            match needed.iter().find(|p| !is_executable(&dir.join(p))) {
                None => return Ok(PgTools { bindir: dir }),
                Some(p) => missing = p.to_string(),
            }
        }
        Err(EnvError::MissingBinary { program: missing })
    }

    /// The bin directory.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Full path of a program.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// A command for `program` aimed at `endpoint` through libpq environment variables.
    pub fn command(&self, program: &str, endpoint: &Endpoint) -> Command {
        let mut cmd = Command::new(self.program(program));
        for (k, v) in endpoint.libpq_env() {
            cmd.env(k, v);
        }
        // A user's PGSERVICE or PGSSLMODE must not redirect a drill to another server.
        for k in ["PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGSSLMODE"] {
            cmd.env_remove(k);
        }
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// A command for `program` that does not talk to a server (`--version`, reading archives).
    pub fn plain(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.program(program));
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// The path under which `program` sees a local file (here: the file itself).
    pub async fn stage(&self, path: &Path) -> Result<PathBuf, EnvError> {
        Ok(path.to_path_buf())
    }

    /// The `--version` line of a program, e.g. `pg_dump (PostgreSQL) 15.18 (Debian …)`.
    pub async fn version(&self, program: &str) -> Result<String, EnvError> {
        let out = self
            .plain(program)
            .arg("--version")
            .output()
            .await
            .map_err(|source| EnvError::Spawn {
                program: program.to_string(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Fails when `program` is of an older major version than the server.
    pub async fn check_not_older(
        &self,
        program: &str,
        server_version: &str,
    ) -> Result<String, EnvError> {
        let tool_version = self.version(program).await?;
        let (Some(tool_major), Some(server_major)) =
            (major_of(&tool_version), major_of(server_version))
        else {
            return Ok(tool_version);
        };
        if tool_major < server_major {
            return Err(EnvError::ToolTooOld {
                tool: program.to_string(),
                tool_version,
                server_version: server_version.to_string(),
                server_major,
            });
        }
        Ok(tool_version)
    }
}

/// The major version in a version string such as `15.18`, `PostgreSQL 15.18 on …` or
/// `pg_dump (PostgreSQL) 16.2`.
pub fn major_of(version: &str) -> Option<u32> {
    version
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.') || w.len() >= 2)
        .and_then(|w| w.split('.').next())
        .and_then(|m| m.parse().ok())
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::major_of;

    #[test]
    fn majors() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(major_of("16.2"), Some(16));
        assert_eq!(major_of("PostgreSQL 9.6.24 on x86_64"), Some(9));
        assert_eq!(major_of("nothing"), None);
    }
}
