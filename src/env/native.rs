//! The native backend: disposable clusters from the machine's own PostgreSQL binaries, each
//! in its own temp dir, on a free loopback port, run as the `postgres` user when we are root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, Uid, User};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

use super::{Endpoint, PgTools};
use crate::env_error::EnvError;
use crate::pg::settings::ServerSettings;

/// How long a new server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a port race with another process is retried.
const PORT_ATTEMPTS: usize = 5;

/// The user servers run as: `postgres` when pgdrill runs as root (initdb refuses root), else
/// pgdrill's own user (`None`). Programs that work on a server's files (pgBackRest) run as it.
pub fn server_user() -> Result<Option<User>, EnvError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| EnvError::ServerStart {
            reason: "running as root, and initdb refuses root, but there is no `postgres` user to run the server as. Create one (`useradd -r postgres`) or run pgdrill as a normal user.".into(),
        })?;
    Ok(Some(user))
}

/// Creates clusters with `initdb` once per drill and copies of that template afterwards, so
/// every later server is ready in a fraction of initdb's time.
pub struct NativeBackend {
    tools: PgTools,
    drill_id: String,
    run_as: Option<User>,
    keep: bool,
    password: String,
    template: OnceCell<tempfile::TempDir>,
}

/// A running disposable cluster.
pub struct NativeTarget {
    /// Superuser connection to the `postgres` database.
    pub endpoint: Endpoint,
    /// The programs to use against it.
    pub tools: PgTools,
    dir: Option<PathBuf>,
    child: Option<Child>,
}

impl NativeBackend {
    /// Finds the binaries and the user to run the server as.
    pub fn discover(drill_id: &str) -> Result<NativeBackend, EnvError> {
        let mut needed: Vec<&str> = crate::pg::tools::SERVER_PROGRAMS.to_vec();
        needed.extend_from_slice(crate::pg::tools::CLIENT_PROGRAMS);
        let tools = PgTools::discover(&needed)?;
        let run_as = server_user()?;
        Ok(NativeBackend {
            tools,
            drill_id: drill_id.to_string(),
            run_as,
            keep: false,
            password: uuid::Uuid::new_v4().simple().to_string(),
            template: OnceCell::new(),
        })
    }

    /// With `--keep`, servers must survive pgdrill's exit, so they are not tied to it.
    pub fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// The PostgreSQL programs in use.
    pub fn tools(&self) -> &PgTools {
        &self.tools
    }

    fn tempdir(&self, role: &str) -> Result<tempfile::TempDir, EnvError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgdrill-{}-{role}-", self.drill_id))
            .tempdir()
            .map_err(|e| EnvError::io("cannot create a temp dir for the server", e))?;
        super::leftovers::mark(dir.path(), &self.drill_id)?;
        self.give_to_server_user(dir.path())?;
        Ok(dir)
    }

    fn give_to_server_user(&self, path: &Path) -> Result<(), EnvError> {
        if let Some(u) = &self.run_as {
            nix::unistd::chown(path, Some(u.uid), Some(u.gid))
                .map_err(|e| EnvError::io(format!("chown {}", path.display()), e.into()))?;
        }
        Ok(())
    }

    fn as_server_user(&self, cmd: &mut Command) {
        if let Some(u) = &self.run_as {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        // Locale and libpq settings of the caller must not leak into the server.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C");
    }

    /// Runs initdb once; later servers start from a copy of this cluster.
    async fn template(&self) -> Result<&Path, EnvError> {
        let dir =
            self.template
                .get_or_try_init(|| async {
                    let dir = self.tempdir("template")?;
                    let pwfile = dir.path().join("pwfile");
                    std::fs::write(&pwfile, format!("{}\n", self.password))
                        .map_err(|e| EnvError::io("cannot write the password file", e))?;
                    self.give_to_server_user(&pwfile)?;
                    let mut cmd = Command::new(self.tools.program("initdb"));
                    cmd.arg("-D")
                        .arg(dir.path().join("data"))
                        .args([
                            "-U",
                            "postgres",
                            "-A",
                            "scram-sha-256",
                            "-E",
                            "UTF8",
                            "--locale=C",
                            "--no-sync",
                            "--no-instructions",
                        ])
                        .arg(format!("--pwfile={}", pwfile.display()))
                        .stdin(Stdio::null());
                    self.as_server_user(&mut cmd);
                    let out = crate::program::output(&mut cmd).await.map_err(|source| {
                        EnvError::Spawn {
                            program: "initdb".into(),
                            source,
                        }
                    })?;
                    let _ = std::fs::remove_file(&pwfile);
                    if !out.status.success() {
                        return Err(EnvError::ServerStart {
                            reason: format!(
                                "initdb failed: {}",
                                String::from_utf8_lossy(&out.stderr).trim()
                            ),
                        });
                    }
                    Ok(dir)
                })
                .await?;
        Ok(dir.path())
    }

    /// Creates and starts a new empty cluster.
    pub async fn provision(&self, role: &str) -> Result<NativeTarget, EnvError> {
        self.provision_with(role, &ServerSettings::default()).await
    }

    /// Creates a new empty cluster and starts it with `settings` (`-c name=value`); a value
    /// the server refuses is [`EnvError::ServerSetting`], in PostgreSQL's words.
    pub async fn provision_with(
        &self,
        role: &str,
        settings: &ServerSettings,
    ) -> Result<NativeTarget, EnvError> {
        let template = self.template().await?.join("data");
        let dir = self.tempdir(role)?;
        let data = dir.path().join("data");
        let mut cp = Command::new("cp");
        cp.arg("-a")
            .arg(&template)
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let (child, program) =
            crate::program::spawn(&mut cp).map_err(|source| EnvError::Spawn {
                program: "cp".into(),
                source,
            })?;
        // Declared after `dir`, so dropped first: a drill stopped during the copy reaps `cp`
        // before the dir is removed, and nothing writes into it after.
        let mut copying = Reaped(Some(child));
        let (status, stderr) = copying.finish().await;
        crate::program::ended(&program, &status);
        let status = status.map_err(|source| EnvError::Spawn {
            program: "cp".into(),
            source,
        })?;
        if !status.success() {
            return Err(EnvError::ServerStart {
                reason: format!(
                    "cannot copy the template cluster: {}. Check free disk space in {}.",
                    stderr.trim(),
                    std::env::temp_dir().display()
                ),
            });
        }
        // From here on the target owns the dir: dropping it stops the server and removes it.
        let mut target = NativeTarget {
            endpoint: Endpoint::loopback_superuser(&self.password),
            tools: self.tools.clone(),
            dir: Some(dir.keep()),
            child: None,
        };
        self.start_on_free_port(&mut target, settings, &[], READY_TIMEOUT)
            .await?;
        Ok(target)
    }

    /// Starts `target`'s server on a free port, retrying a port another process took
    /// meanwhile; `extra` `-c` assignments come after `settings` and win.
    async fn start_on_free_port(
        &self,
        target: &mut NativeTarget,
        settings: &ServerSettings,
        extra: &[String],
        ready: Duration,
    ) -> Result<(), EnvError> {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match self.start(target, port, settings, extra, ready).await {
                Ok(()) => return Ok(()),
                Err(StartError::PortTaken(log)) => last = log,
                Err(StartError::Env(e)) => return Err(settings.start_failed(e)),
            }
        }
        Err(EnvError::ServerStart {
            reason: format!("no free port after {PORT_ATTEMPTS} attempts; last log: {last}"),
        })
    }

    /// A disposable directory for a physical restore: marked as the drill's (so `pgdrill
    /// clean` finds it after a `kill -9`), owned by the server user, with an empty `data`
    /// directory (mode 0700, as PostgreSQL requires) and no server yet; dropping or
    /// destroying the target removes it. [`NativeBackend::start_restored`] starts it.
    pub fn empty_target(&self, role: &str) -> Result<NativeTarget, EnvError> {
        let dir = self.tempdir(role)?;
        let data = dir.path().join("data");
        let io = |what: &str, e| EnvError::io(format!("{what} {}", data.display()), e);
        std::fs::create_dir(&data).map_err(|e| io("cannot create", e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("cannot restrict", e))?;
        self.give_to_server_user(&data)?;
        let mut endpoint = Endpoint::loopback_superuser(&self.password);
        // Until it starts, its socket directory; the restored cluster's own roles and
        // passwords are the source's, unknown to pgdrill (see `start_restored`).
        endpoint.host = dir.path().display().to_string();
        endpoint.password = None;
        Ok(NativeTarget {
            endpoint,
            tools: self.tools.clone(),
            dir: Some(dir.keep()),
            child: None,
        })
    }

    /// Starts a server on the data directory a physical restore filled in `target` (see
    /// [`NativeBackend::empty_target`]), waiting up to `ready` for it to accept connections
    /// (a hot standby accepts them once recovery is consistent; one that does not, once it
    /// is promoted). The restored cluster keeps its roles but not its access rules: it is
    /// reached only through its Unix socket in the drill's private directory, as the
    /// `postgres` superuser, with `trust` (no TCP listener); its archiving is off
    /// (`archive_mode=off`), so it can never push WAL into the team's repository.
    pub async fn start_restored(
        &self,
        target: &mut NativeTarget,
        settings: &ServerSettings,
        ready: Duration,
    ) -> Result<(), EnvError> {
        let dir = target.dir.clone().ok_or_else(|| EnvError::ServerStart {
            reason: "the restored server's directory is gone".into(),
        })?;
        let (hba, ident) = prepare_restored(&dir, "local all all trust\n", self.run_as.as_ref())?;
        let extra = [
            format!("hba_file={}", hba.display()),
            format!("ident_file={}", ident.display()),
            "listen_addresses=".to_string(),
            "archive_mode=off".to_string(),
            "archive_command=".to_string(),
        ];
        target.endpoint.host = dir.display().to_string();
        target.endpoint.password = None;
        self.start_on_free_port(target, settings, &extra, ready)
            .await
    }

    async fn start(
        &self,
        target: &mut NativeTarget,
        port: u16,
        settings: &ServerSettings,
        extra: &[String],
        ready: Duration,
    ) -> Result<(), StartError> {
        let dir = target.dir.clone().expect("dir present until destroyed");
        let log_path = dir.join("postgres.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| StartError::Env(EnvError::io("cannot create the server log", e)))?;
        if let Err(e) = self.give_to_server_user(&log_path) {
            return Err(StartError::Env(e));
        }
        let mut cmd = Command::new(self.tools.program("postgres"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "logging_collector=off"])
            .args(
                settings
                    .assignments()
                    .iter()
                    .flat_map(|a| ["-c", a.as_str()]),
            )
            .args(extra.iter().flat_map(|a| ["-c", a.as_str()]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        self.as_server_user(&mut cmd);
        if !self.keep {
            // If pgdrill is killed outright (SIGKILL), the server still shuts down.
            crate::program::die_with_parent(&mut cmd, Signal::SIGINT);
        }
        let (child, _) = crate::program::spawn(&mut cmd).map_err(|source| {
            StartError::Env(EnvError::Spawn {
                program: "postgres".into(),
                source,
            })
        })?;
        target.child = Some(child);
        target.endpoint.port = port;
        let started = Instant::now();
        loop {
            if let Some(status) = target
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                crate::program::ended("postgres", &Ok(status));
                target.child = None;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains("could not bind") || log.contains("already in use") {
                    return Err(StartError::PortTaken(tail(&log, 5)));
                }
                return Err(StartError::Env(EnvError::ServerStart {
                    reason: format!(
                        "postgres exited ({status}) during start-up; log:\n{}",
                        tail(&log, 15)
                    ),
                }));
            }
            let mut cfg = target.endpoint.config();
            cfg.connect_timeout(Duration::from_secs(2));
            if let Ok((client, conn)) = cfg.connect(tokio_postgres::NoTls).await {
                drop(client);
                drop(conn);
                return Ok(());
            }
            if started.elapsed() > ready {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(StartError::Env(EnvError::ServerStart {
                    reason: format!(
                        "not ready after {}s; log:\n{}",
                        ready.as_secs(),
                        tail(&log, 15)
                    ),
                }));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

enum StartError {
    PortTaken(String),
    Env(EnvError),
}

impl NativeTarget {
    /// Data directory and port, for humans.
    pub fn describe(&self) -> String {
        format!(
            "native cluster at {} on 127.0.0.1:{}",
            self.dir
                .as_deref()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            self.endpoint.port
        )
    }

    /// The temp dir holding the cluster (and its log).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Fast shutdown, then removal of the data directory.
    pub async fn destroy(mut self) -> Result<(), EnvError> {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            if let Some(pid) = pid {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
            }
            match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
                Ok(status) => crate::program::ended("postgres", &status),
                Err(_) => {
                    let _ = child.start_kill();
                    crate::program::ended("postgres", &child.wait().await);
                }
            }
            // A postmaster that was killed leaves its backends running in the data directory
            // until they notice; they are its process group (it was started as the leader of
            // one), and would keep writing into the directory being removed.
            if let Some(pid) = pid {
                let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
        if let Some(dir) = self.dir.take() {
            let removed = dir.clone();
            tokio::task::spawn_blocking(move || remove_dir_retrying(&removed))
                .await
                .map_err(|e| {
                    EnvError::io("cannot remove the server's dir", std::io::Error::other(e))
                })?
                .map_err(|e| EnvError::io(format!("cannot remove {}", dir.display()), e))?;
        }
        Ok(())
    }

    /// Leaves the server running and its directory in place.
    pub fn keep(mut self) -> String {
        let how = format!(
            "server kept running: {} (password in PGPASSWORD={}). Stop it with: kill -INT {}; rm -rf {}",
            self.endpoint.display(),
            self.endpoint.password().unwrap_or_default(),
            self.pid().unwrap_or(0),
            self.dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default()
        );
        self.child.take();
        if let Some(dir) = self.dir.take() {
            super::leftovers::unmark(&dir);
        }
        how
    }
}

impl Drop for NativeTarget {
    // Runs on error paths, panics and cancellation (Ctrl-C drops the drill future): the
    // server must never outlive the drill.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
                let deadline = Instant::now() + Duration::from_secs(15);
                while Instant::now() < deadline {
                    if matches!(child.try_wait(), Ok(Some(_))) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if !matches!(child.try_wait(), Ok(Some(_))) {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    let _ = wait_blocking(&mut child);
                }
                // As in `destroy`: the backends of a postmaster that did not end cleanly.
                let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = remove_dir_retrying(&dir);
        }
    }
}

/// A child process killed and reaped when dropped before it ended (a cancelled drill).
struct Reaped(Option<Child>);

impl Reaped {
    /// Waits for the child to end; its exit and what it wrote to stderr.
    async fn finish(&mut self) -> (std::io::Result<std::process::ExitStatus>, String) {
        let Some(child) = self.0.as_mut() else {
            return (Err(std::io::ErrorKind::NotFound.into()), String::new());
        };
        let mut stderr = child.stderr.take();
        let read = async {
            let mut text = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = tokio::io::AsyncReadExt::read_to_string(e, &mut text).await;
            }
            text
        };
        let (status, text) = tokio::join!(child.wait(), read);
        self.0 = None;
        (status, text)
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.start_kill();
            let _ = wait_blocking(&mut child);
        }
    }
}

/// Removes `dir`, again after a pause while something that was still ending (a backend of a
/// killed postmaster) writes into it; gives up after five seconds.
/// A physical restore's directory `dir` made startable, for either backend: the access rules
/// pgdrill starts it with (`hba`, an empty ident file; the restored cluster's own rules are
/// the source's) and, for a cluster whose configuration lived outside its data directory
/// (Debian's /etc/postgresql), an empty `postgresql.conf`, without which PostgreSQL will not
/// start; each given to `user`. Returns the hba and ident files.
pub(super) fn prepare_restored(
    dir: &Path,
    hba: &str,
    user: Option<&User>,
) -> Result<(PathBuf, PathBuf), EnvError> {
    let write = |name: &str, text: &str| -> Result<PathBuf, EnvError> {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| EnvError::io(format!("cannot write {}", path.display()), e))?;
        if let Some(u) = user {
            nix::unistd::chown(&path, Some(u.uid), Some(u.gid))
                .map_err(|e| EnvError::io(format!("chown {}", path.display()), e.into()))?;
        }
        Ok(path)
    };
    let hba = write("pgdrill_hba.conf", hba)?;
    let ident = write("pgdrill_ident.conf", "")?;
    if !dir.join("data/postgresql.conf").exists() {
        write("data/postgresql.conf", "")?;
    }
    Ok((hba, ident))
}

pub(super) fn remove_dir_retrying(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(_) if !dir.exists() => return Ok(()),
            Err(e) if tries == 50 => return Err(e),
            Err(_) => tries += 1,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_blocking(child: &mut Child) -> Option<std::process::ExitStatus> {
    for _ in 0..250 {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn free_port() -> Result<u16, EnvError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| EnvError::io("cannot find a free port on 127.0.0.1", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| EnvError::io("cannot read the bound port", e))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether the postmaster `pid`, our child, still runs: `waitid` with `WNOWAIT` reads a dead
/// child's status and leaves it to be reaped by its owner (the target's `Child`). When the
/// process is not our child (already reaped), the data directory's `postmaster.pid` decides.
pub(super) fn liveness(pid: u32, data: &Path) -> super::Liveness {
    use super::{Liveness, ServerEnd};
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {
        Ok(WaitStatus::StillAlive) => Liveness::Alive,
        Ok(WaitStatus::Exited(_, code)) => Liveness::Exited(ServerEnd::Code(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Liveness::Exited(ServerEnd::Signal(sig)),
        Ok(_) => Liveness::Alive,
        Err(_) => {
            let recorded = std::fs::read_to_string(data.join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
            // A zombie still answers kill(0): its state in /proc says it is dead.
            let running = |p: i32| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().to_string()))
                    .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
            };
            match recorded {
                Some(p) if kill(Pid::from_raw(p), None).is_ok() && running(p) => Liveness::Alive,
                _ => Liveness::Gone,
            }
        }
    }
}

/// The server log `log` from byte `at` on (lossy), empty when it cannot be read.
pub(super) fn log_from(log: &Path, at: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        if f.seek(SeekFrom::Start(at)).is_ok() {
            // A server that logs in a loop must not fill pgdrill's memory: the last MB is enough.
            let _ = f.take(1 << 20).read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Below this many free bytes a server's disk counts as full: PostgreSQL cannot extend a
/// relation or write a WAL page there.
pub(super) const FULL_BELOW: u64 = 1 << 20;

/// The bytes an unprivileged writer may still use on the file system holding `path`.
pub(super) fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_reads_a_dead_child_s_signal_and_leaves_it_to_its_owner() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            liveness(child.id(), dir.path()),
            super::super::Liveness::Alive
        );
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = liveness(child.id(), dir.path());
        while seen == super::super::Liveness::Alive && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            seen = liveness(child.id(), dir.path());
        }
        assert_eq!(
            seen,
            super::super::Liveness::Exited(super::super::ServerEnd::Signal(Signal::SIGKILL))
        );
        // Asked twice, the same answer: the status was read, not reaped.
        assert_eq!(liveness(child.id(), dir.path()), seen);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }
}
