//! Finding and running the PostgreSQL programs (initdb, pg_dump, pg_restore, …) and checking
//! that their versions fit the server.
//!
//! The programs run either on this machine (a bin directory), inside a running server's
//! container (`docker exec`, so client and server versions always match), or in a one-off
//! container of a PostgreSQL image (`docker run --rm --network host`) when the docker backend
//! must reach a server outside its containers and the machine has no client programs.
//! Call sites are the same for all three: [`ToolCommand`] offers the part of tokio's
//! `Command` the drill uses.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::process::{Child, Command};

use super::Endpoint;
use crate::env_error::EnvError;

/// The PostgreSQL programs of one installation: a local bin directory or a container.
#[derive(Debug, Clone)]
pub struct PgTools {
    runner: Runner,
    versions: Arc<Mutex<HashMap<String, String>>>,
}

#[derive(Debug, Clone)]
enum Runner {
    /// Programs of this machine, all from one bin directory.
    Local(PathBuf),
    /// Programs inside a running server's container.
    Container(Arc<InContainer>),
    /// Programs of an image, each run in a one-off container on the host's network.
    Image(Arc<InImage>),
}

/// Files already copied into a container, by local path: (size, mtime, path inside).
type Staged = HashMap<PathBuf, (u64, Option<SystemTime>, PathBuf)>;

#[derive(Debug)]
struct InContainer {
    id: String,
    /// The server's published address: endpoints aimed at it are translated to the
    /// server's own address inside the container.
    published: (String, u16),
    inside: (String, u16),
    staged: Mutex<Staged>,
}

#[derive(Debug)]
struct InImage {
    image: String,
    labels: Vec<(String, String)>,
    /// Local files the programs must read: bind-mounted read-only at the same path.
    staged: Mutex<Vec<PathBuf>>,
}

impl InImage {
    fn mount(&self, path: PathBuf) {
        let mut staged = self.staged.lock().expect("lock");
        if !staged.contains(&path) {
            staged.push(path);
        }
    }
}

/// The server programs a native backend needs.
pub const SERVER_PROGRAMS: &[&str] = &["initdb", "postgres"];
/// The client programs every drill needs.
pub const CLIENT_PROGRAMS: &[&str] = &["pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_amcheck"];

/// libpq settings of the caller that must not redirect a drill to another server.
const STRAY_LIBPQ_ENV: &[&str] = &["PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGSSLMODE"];

impl PgTools {
    fn with_runner(runner: Runner) -> PgTools {
        PgTools {
            runner,
            versions: Arc::default(),
        }
    }

    /// Finds the bin directory through `PGDRILL_PG_BINDIR`, `pg_config --bindir`, then PATH,
    /// requiring every program in `needed`.
    pub fn discover(needed: &[&str]) -> Result<PgTools, EnvError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(d) = std::env::var("PGDRILL_PG_BINDIR") {
            candidates.push(PathBuf::from(d));
        }
        if let Ok(out) =
            crate::program::output_sync(std::process::Command::new("pg_config").arg("--bindir"))
        {
            if out.status.success() {
                let d = String::from_utf8_lossy(&out.stdout).trim().to_string();
                candidates.push(PathBuf::from(d));
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if let Ok(real) = dir
                    .join(needed.first().copied().unwrap_or("psql"))
                    .canonicalize()
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
                None => return Ok(PgTools::with_runner(Runner::Local(dir))),
                Some(p) => missing = p.to_string(),
            }
        }
        Err(EnvError::MissingBinary { program: missing })
    }

    /// The programs inside a running container (`docker exec`). Endpoints aimed at
    /// `published` (the server's address as seen from this machine) are translated to
    /// `inside` (its address within the container, e.g. 127.0.0.1:5432).
    pub fn in_container(id: &str, published: (String, u16), inside: (String, u16)) -> PgTools {
        PgTools::with_runner(Runner::Container(Arc::new(InContainer {
            id: id.to_string(),
            published,
            inside,
            staged: Mutex::default(),
        })))
    }

    /// The programs of `image`, each run in a one-off container on the host's network
    /// (`docker run --rm --network host`) carrying `labels`, so leftovers can be found.
    pub fn in_image(image: &str, labels: Vec<(String, String)>) -> PgTools {
        PgTools::with_runner(Runner::Image(Arc::new(InImage {
            image: image.to_string(),
            labels,
            staged: Mutex::default(),
        })))
    }

    /// The bin directory, when the programs are this machine's.
    pub fn bindir(&self) -> Option<&Path> {
        match &self.runner {
            Runner::Local(d) => Some(d),
            _ => None,
        }
    }

    /// Where the programs run, for humans.
    pub fn describe(&self) -> String {
        match &self.runner {
            Runner::Local(d) => format!("programs in {}", d.display()),
            Runner::Container(c) => format!("programs inside container {}", short_id(&c.id)),
            Runner::Image(i) => format!("programs of image {} in one-off containers", i.image),
        }
    }

    /// Full path of a local program; in a container, the name found on its PATH.
    pub fn program(&self, name: &str) -> PathBuf {
        match &self.runner {
            Runner::Local(d) => d.join(name),
            _ => PathBuf::from(name),
        }
    }

    /// A command for `program` aimed at `endpoint` through libpq environment variables.
    pub fn command(&self, program: &str, endpoint: &Endpoint) -> ToolCommand {
        let endpoint = match &self.runner {
            Runner::Container(c)
                if (endpoint.host.as_str(), endpoint.port)
                    == (c.published.0.as_str(), c.published.1) =>
            {
                Endpoint {
                    host: c.inside.0.clone(),
                    port: c.inside.1,
                    ..endpoint.clone()
                }
            }
            _ => endpoint.clone(),
        };
        let mut cmd = self.plain(program);
        for (k, v) in endpoint.libpq_env() {
            cmd.env(k, v);
        }
        if let (Runner::Image(i), true) = (&self.runner, endpoint.host.starts_with('/')) {
            // A Unix-socket directory on this machine: the one-off container needs it too.
            i.mount(PathBuf::from(&endpoint.host));
        }
        cmd
    }

    /// A command for `program` that does not talk to a server (`--version`, reading archives).
    pub fn plain(&self, program: &str) -> ToolCommand {
        ToolCommand {
            runner: self.runner.clone(),
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            stdout: None,
            stderr: None,
            kill_on_drop: true,
            die_with_parent: false,
        }
    }

    /// The path under which `program` sees a local file: the file itself on this machine;
    /// inside a container, a copy made there (once per file version).
    pub async fn stage(&self, path: &Path) -> Result<PathBuf, EnvError> {
        match &self.runner {
            Runner::Local(_) => Ok(path.to_path_buf()),
            Runner::Image(i) => {
                let abs = std::path::absolute(path)
                    .map_err(|e| EnvError::io(format!("cannot resolve {}", path.display()), e))?;
                i.mount(abs.clone());
                Ok(abs)
            }
            Runner::Container(c) => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| EnvError::io(format!("cannot read {}", path.display()), e))?;
                let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
                let version = (meta.len(), meta.modified().ok());
                let n = {
                    let staged = c.staged.lock().expect("lock");
                    if let Some((len, mtime, inside)) = staged.get(&key) {
                        if (*len, *mtime) == version {
                            return Ok(inside.clone());
                        }
                    }
                    staged.len() + 1
                };
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "file".into());
                let inside = PathBuf::from(format!("/tmp/pgdrill-stage-{n}-{name}"));
                let mut cp = Command::new("docker");
                cp.arg("cp")
                    .arg(path)
                    .arg(format!("{}:{}", c.id, inside.display()))
                    .stdin(Stdio::null());
                let out =
                    crate::program::output(&mut cp)
                        .await
                        .map_err(|source| EnvError::Spawn {
                            program: "docker cp".into(),
                            source,
                        })?;
                if !out.status.success() {
                    return Err(EnvError::Docker(format!(
                        "cannot copy {} into container {}: {}. Check free disk space for Docker's storage (docker system df).",
                        path.display(),
                        short_id(&c.id),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                c.staged
                    .lock()
                    .expect("lock")
                    .insert(key, (version.0, version.1, inside.clone()));
                Ok(inside)
            }
        }
    }

    /// Runs `pg_restore ARGS <dump>` to completion: reading an archive, no server involved
    /// (`--list`, `--schema-only -f -`).
    pub async fn read_archive(
        &self,
        dump: &Path,
        args: &[&str],
    ) -> Result<std::process::Output, EnvError> {
        let staged = self.stage(dump).await?;
        self.plain("pg_restore").args(args).arg(&staged).run().await
    }

    /// The `--version` line of a program, e.g. `pg_dump (PostgreSQL) 15.18 (Debian …)`.
    pub async fn version(&self, program: &str) -> Result<String, EnvError> {
        if let Some(v) = self.versions.lock().expect("lock").get(program) {
            return Ok(v.clone());
        }
        let out = self.plain(program).arg("--version").run().await?;
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // The version line is what counts; an empty one means the program did not run (in a
        // container: missing from the image, or the container is gone).
        if v.is_empty() {
            return Err(EnvError::Spawn {
                program: format!("{program} --version"),
                source: std::io::Error::other(format!(
                    "{} ({}): {}",
                    out.status,
                    self.describe(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            });
        }
        self.versions
            .lock()
            .expect("lock")
            .insert(program.to_string(), v.clone());
        Ok(v)
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

/// A PostgreSQL program ready to run: the part of tokio's `Command` the drill uses, so call
/// sites read the same whether the program runs here or inside a container.
///
/// Environment variables reach a containerised program by name only (`docker exec -e NAME`,
/// the value taken from the docker CLI's own environment), so a password never appears in a
/// process list; `-i` (attach stdin) is passed only when the caller sets stdin.
#[derive(Debug)]
pub struct ToolCommand {
    runner: Runner,
    program: String,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    kill_on_drop: bool,
    die_with_parent: bool,
}

impl ToolCommand {
    /// Makes a program on this machine die with pgdrill, even a pgdrill killed outright
    /// (SIGKILL), for a program that writes a file itself: nothing else would stop it.
    pub fn die_with_parent(&mut self) -> &mut Self {
        self.die_with_parent = true;
        self
    }

    /// Appends an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable of the program.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// The program's stdin; setting it means the program reads it (`docker exec -i`).
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Self {
        self.stdin = Some(cfg.into());
        self
    }

    /// The program's stdout.
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Self {
        self.stdout = Some(cfg.into());
        self
    }

    /// The program's stderr.
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Self {
        self.stderr = Some(cfg.into());
        self
    }

    /// Kills the process (for a container: the docker CLI) when its handle is dropped.
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Self {
        self.kill_on_drop = kill;
        self
    }

    /// Starts the program (traced at debug level; trace its end with [`ToolCommand::wait`]).
    /// Stdio settings are used up: a second spawn gets the defaults.
    pub fn spawn(&mut self) -> std::io::Result<Child> {
        crate::program::spawn(&mut self.build()).map(|(child, _)| child)
    }

    /// [`ToolCommand::spawn`], a failure to start being an [`EnvError::Spawn`].
    pub fn start(&mut self) -> Result<Child, EnvError> {
        self.spawn().map_err(|source| self.spawn_error(source))
    }

    /// Waits for a child this command started, tracing its exit status.
    pub async fn wait(&self, child: &mut Child) -> Result<std::process::ExitStatus, EnvError> {
        let status = child.wait().await;
        crate::program::ended(
            &self.program,
            &status
                .as_ref()
                .copied()
                .map_err(|e| std::io::Error::new(e.kind(), e.to_string())),
        );
        status.map_err(|source| self.spawn_error(source))
    }

    fn spawn_error(&self, source: std::io::Error) -> EnvError {
        EnvError::Spawn {
            program: self.program.clone(),
            source,
        }
    }

    /// Runs the program to completion, collecting stdout and stderr unless set otherwise
    /// (traced at debug level: the command line and the exit status).
    pub async fn output(&mut self) -> std::io::Result<std::process::Output> {
        crate::program::output(&mut self.build()).await
    }

    /// [`ToolCommand::output`], a failure to run it being an [`EnvError::Spawn`].
    pub async fn run(&mut self) -> Result<std::process::Output, EnvError> {
        self.output()
            .await
            .map_err(|source| self.spawn_error(source))
    }

    /// The command line, for error messages: never holds a secret, values stay in the env.
    pub fn display(&self) -> String {
        let mut s = match &self.runner {
            Runner::Local(d) => d.join(&self.program).display().to_string(),
            Runner::Container(c) => format!("docker exec {} {}", short_id(&c.id), self.program),
            Runner::Image(i) => format!("docker run {} {}", i.image, self.program),
        };
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    fn build(&mut self) -> Command {
        let reads_stdin = self.stdin.is_some();
        let mut cmd = match &self.runner {
            Runner::Local(dir) => {
                let mut cmd = Command::new(dir.join(&self.program));
                for k in STRAY_LIBPQ_ENV {
                    cmd.env_remove(k);
                }
                cmd.args(&self.args);
                if self.die_with_parent {
                    crate::program::die_with_parent(&mut cmd, nix::sys::signal::Signal::SIGKILL);
                }
                cmd
            }
            Runner::Container(c) => {
                let mut cmd = Command::new("docker");
                cmd.arg("exec");
                if reads_stdin {
                    cmd.arg("-i");
                }
                for (k, _) in &self.env {
                    cmd.args(["-e", k]);
                }
                cmd.arg(&c.id).arg(&self.program).args(&self.args);
                cmd
            }
            Runner::Image(i) => {
                let mut cmd = Command::new("docker");
                cmd.args(["run", "--rm", "--network", "host", "--log-driver", "none"]);
                if reads_stdin {
                    cmd.arg("-i");
                }
                for (k, v) in &i.labels {
                    cmd.arg("--label").arg(format!("{k}={v}"));
                }
                for (k, _) in &self.env {
                    cmd.args(["-e", k]);
                }
                for p in i.staged.lock().expect("lock").iter() {
                    cmd.arg("-v").arg(format!("{0}:{0}:ro", p.display()));
                }
                cmd.arg("--entrypoint")
                    .arg(&self.program)
                    .arg(&i.image)
                    .args(&self.args);
                cmd
            }
        };
        // Locally the values are the program's environment; for docker they are the CLI's,
        // which forwards exactly the names listed with -e.
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(self.stdin.take().unwrap_or_else(Stdio::null));
        if let Some(s) = self.stdout.take() {
            cmd.stdout(s);
        }
        if let Some(s) = self.stderr.take() {
            cmd.stderr(s);
        }
        cmd.kill_on_drop(self.kill_on_drop);
        // Out of the terminal's process group: Ctrl-C reaches pgdrill alone, which cancels
        // the drill and ends its programs itself, instead of a pg_dump (or the docker CLI in
        // front of one) dying first and turning the interruption into a backup failure.
        cmd.process_group(0);
        cmd
    }
}

/// Docker's 12-character short form of a container id.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
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
    use super::{major_of, PgTools};
    use crate::pg::Endpoint;

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

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            password: Some("s3cret-value".into()),
            dbname: "pgdrill".into(),
            options: None,
        }
    }

    fn argv(cmd: &mut super::ToolCommand) -> Vec<String> {
        let c = cmd.build();
        let std = c.as_std();
        std::iter::once(std.get_program())
            .chain(std.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn env_of(cmd: &mut super::ToolCommand, key: &str) -> Option<String> {
        let c = cmd.build();
        c.as_std()
            .get_envs()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn exec_translates_the_published_address_and_keeps_the_password_off_argv() {
        let tools = PgTools::in_container(
            "0123456789abcdef",
            ("127.0.0.1".into(), 40001),
            ("127.0.0.1".into(), 5432),
        );
        let mut cmd = tools.command("pg_dump", &endpoint(40001));
        cmd.args(["-Fc", "--no-password"]);
        let a = argv(&mut cmd);
        assert_eq!(a[..2], ["docker", "exec"]);
        assert!(!a.contains(&"-i".to_string()), "no stdin was set: {a:?}");
        assert!(a.iter().all(|x| !x.contains("s3cret")), "{a:?}");
        assert!(a.windows(2).any(|w| w == ["-e", "PGPASSWORD"]), "{a:?}");
        let tail: Vec<&str> = a.iter().rev().take(4).rev().map(String::as_str).collect();
        assert_eq!(
            tail,
            ["0123456789abcdef", "pg_dump", "-Fc", "--no-password"]
        );
        let mut cmd = tools.command("pg_dump", &endpoint(40001));
        assert_eq!(env_of(&mut cmd, "PGPORT").as_deref(), Some("5432"));
        let mut cmd = tools.command("pg_dump", &endpoint(40001));
        assert_eq!(
            env_of(&mut cmd, "PGPASSWORD").as_deref(),
            Some("s3cret-value")
        );
        // Another server is not this container's: its address stays as it is.
        let mut cmd = tools.command("pg_dump", &endpoint(40002));
        assert_eq!(env_of(&mut cmd, "PGPORT").as_deref(), Some("40002"));
    }

    #[test]
    fn exec_attaches_stdin_only_when_the_program_reads_it() {
        let tools =
            PgTools::in_container("abc", ("127.0.0.1".into(), 1), ("127.0.0.1".into(), 5432));
        let mut cmd = tools.plain("pg_restore");
        cmd.args(["-f", "/dev/null"])
            .stdin(std::process::Stdio::piped());
        assert_eq!(argv(&mut cmd)[..3], ["docker", "exec", "-i"]);
    }
}
