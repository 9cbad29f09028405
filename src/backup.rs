//! Taking a backup the way the strategy says (`pg_dump -Fc` to `backup_YYYYmmdd_HHMMSS.dump`),
//! plus what it forgets: the roles (globals), a checksum of the archive, and a
//! manifest holding the integrity snapshot of exactly the data inside the dump.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::progress::{Meter, Progress, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::env::{Endpoint, PgTools};
use crate::env_error::EnvError;
use crate::snapshot::{self, Snapshot};

/// `--stall-timeout`'s default: pg_dump streams rows steadily, and waits in silence only
/// for a table lock; five minutes of nothing is a third of the strategy's 15-minute backup
/// interval, already late for the next scheduled backup, and far above any healthy pause.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 1;

/// The JSON file written beside every dump.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Layout version.
    pub manifest_version: u32,
    /// File name of the dump (same directory as the manifest).
    pub file: String,
    /// Always `custom` (pg_dump -Fc).
    pub format: String,
    /// Size of the dump.
    pub size_bytes: u64,
    /// SHA-256 of the dump, hex, computed before it got its final name.
    pub sha256: String,
    /// When the dump started, RFC 3339 UTC.
    pub created_at: String,
    /// The database that was dumped.
    pub database: String,
    /// Its encoding, so the restore creates a matching database.
    pub encoding: String,
    /// Its LC_COLLATE.
    pub collate: String,
    /// Its LC_CTYPE.
    pub ctype: String,
    /// Its owner.
    pub owner: String,
    /// The source server, password redacted.
    pub source: String,
    /// `SHOW server_version` of the source.
    pub server_version: String,
    /// `--version` of the programs used.
    pub tools: BTreeMap<String, String>,
    /// pgdrill's version.
    pub pgdrill_version: String,
    /// The exported MVCC snapshot shared by pg_dump and the integrity snapshot.
    pub mvcc_snapshot: String,
    /// When that snapshot was taken, by this machine's clock: the RPO measurement's bounds
    /// (absent in manifests written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_taken: Option<SnapshotWindow>,
    /// How long each part took.
    pub timings: Timings,
    /// The roles file, if taken.
    pub globals: Option<FileDigest>,
    /// The integrity snapshot S0 of exactly the data in the dump.
    pub snapshot: Snapshot,
    /// Why the backup was taken (`pgdrill backup --kind`); absent in a drill's own backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<BackupKind>,
    /// The operator's words for it (`pgdrill backup --reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The wall-clock interval (UTC, this machine's clock) in which the exported snapshot was
/// taken: from just before its transaction was sent to just after its id came back. A commit
/// acknowledged before `sent_at` is in the dump; one sent after `returned_at` is not; only
/// those in flight in between may go either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotWindow {
    /// Before `BEGIN … REPEATABLE READ` was sent.
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// After `pg_export_snapshot()` answered.
    pub returned_at: chrono::DateTime<chrono::Utc>,
}

/// Why a backup was taken: the regime's timer, or a person before a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// Taken by the schedule (every 15 minutes in the strategy).
    Scheduled,
    /// Taken by hand, e.g. before a deployment; prune keeps the newest one.
    Manual,
}

impl BackupKind {
    /// The name used in manifests and output.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Scheduled => "scheduled",
            BackupKind::Manual => "manual",
        }
    }
}

/// The labels `pgdrill backup` puts into the manifest.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Scheduled or manual.
    pub kind: Option<BackupKind>,
    /// Free text.
    pub reason: Option<String>,
}

/// Durations of the parts of a backup, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    /// pg_dump until its last byte was written and hashed.
    pub dump_ms: u64,
    /// The integrity snapshot (runs alongside pg_dump).
    pub snapshot_ms: u64,
    /// pg_dumpall --globals-only.
    pub globals_ms: u64,
    /// Everything.
    pub total_ms: u64,
}

/// A file with its size and checksum.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileDigest {
    /// File name (same directory as the manifest).
    pub file: String,
    /// Size.
    pub size_bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A finished backup on disk.
#[derive(Debug, Clone)]
pub struct BackupSet {
    /// The dump.
    pub dump: PathBuf,
    /// The manifest beside it.
    pub manifest_path: PathBuf,
    /// The roles file beside it.
    pub globals: Option<PathBuf>,
    /// The manifest's content.
    pub manifest: Manifest,
}

/// Why a backup could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The source could not be reached, or the machine failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A query on the source failed.
    #[error("query on the source failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// pg_dump or pg_dumpall failed.
    #[error("{program} failed ({status}): {stderr}")]
    Tool {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The integrity snapshot failed.
    #[error("integrity snapshot failed: {0}")]
    Snapshot(#[from] snapshot::SnapshotError),
    /// The source stopped answering for the whole stall timeout: a dead network path (a
    /// stalled proxy, a dropped NAT entry, a paused VM), never a finding about the data.
    #[error("the source {server} stopped answering: {point} for {}s (--stall-timeout); the backup was abandoned and pgdrill's sessions on the source ended. Check the network path to the source (a proxy, NAT or firewall that silently drops connections, a paused VM), or raise --stall-timeout if the source is only slow", after.as_secs_f64())]
    Stalled {
        /// The source, password redacted.
        server: String,
        /// What stopped moving.
        point: StallPoint,
        /// The stall timeout that ran out.
        after: Duration,
    },
}

/// What stopped moving when a backup stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallPoint {
    /// A query of pgdrill's own session on the source got no answer.
    Query(&'static str),
    /// pg_dump wrote no byte.
    Dump,
    /// `pg_dumpall --globals-only` did not finish.
    Globals,
}

impl std::fmt::Display for StallPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StallPoint::Query(q) => write!(f, "no answer to {q}"),
            StallPoint::Dump => f.write_str("pg_dump wrote no byte"),
            StallPoint::Globals => f.write_str("pg_dumpall --globals-only did not finish"),
        }
    }
}

/// Every wait on the source bounded by the stall timeout.
struct Bound<'a> {
    source: &'a Endpoint,
    stall: Duration,
}

impl Bound<'_> {
    fn stalled(&self, point: StallPoint) -> BackupError {
        BackupError::Stalled {
            server: self.source.display(),
            point,
            after: self.stall,
        }
    }

    /// `query`, failing as a stall at `point` when the source does not answer in time.
    async fn query<T>(
        &self,
        point: StallPoint,
        query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, BackupError> {
        match tokio::time::timeout(self.stall, query).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(self.stalled(point)),
        }
    }
}

/// Keeps the exported-snapshot transaction from idling while pg_dump runs (the server ends
/// it after [`crate::pg::SNAPSHOT_IDLE_LIMIT`] of silence); never returns.
async fn heartbeat(client: &tokio_postgres::Client) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(crate::pg::HEARTBEAT_EVERY).await;
        // An unanswered beat is the stall watchdog's business; the next one is sent anyway.
        let _ =
            tokio::time::timeout(crate::pg::HEARTBEAT_EVERY, client.simple_query("SELECT 1")).await;
    }
}

/// Ends pgdrill's sessions of a stalled backup on the source over a fresh connection: its
/// snapshot session and pg_dump's. A path that is dead for new connections too fails
/// within the connect timeout; the server's own limits end them then.
async fn reap(source: &Endpoint, session_pid: i32, dump_app: &str) {
    let attempt = async {
        let c = source.connect().await.ok()?;
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE pid <> pg_backend_pid() AND (pid = $1 OR application_name = $2)",
            &[&session_pid, &dump_app],
        )
        .await
        .ok()
    };
    let _ =
        tokio::time::timeout(crate::pg::CONNECT_TIMEOUT + Duration::from_secs(5), attempt).await;
}

/// PGOPTIONS for a program pgdrill runs against the source: the user's options and the
/// server-side TCP limits, so that the server drops the program's session when its network
/// path dies.
fn server_options(source: &Endpoint, version_num: i32) -> String {
    let mut opts: Vec<String> = source.options.iter().cloned().collect();
    for (k, v) in crate::pg::server_tcp_settings(version_num) {
        opts.push(format!("-c {k}={v}"));
    }
    opts.join(" ")
}

/// The strategy's file name: `backup_YYYYmmdd_HHMMSS.dump`, UTC.
pub fn dump_file_name(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("backup_{}.dump", at.format("%Y%m%d_%H%M%S"))
}

/// The manifest's path for a dump: `backup_….manifest.json` beside it.
pub fn manifest_path(dump: &Path) -> PathBuf {
    dump.with_extension("manifest.json")
}

/// The globals file's path for a dump: `backup_….globals.sql` beside it.
pub fn globals_path(dump: &Path) -> PathBuf {
    dump.with_extension("globals.sql")
}

/// Why the manifest of a dump cannot be used. The drill's precheck and `pgdrill verify` both
/// read manifests through [`read_manifest`], so they name the same file with the same words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// No file at the manifest's path.
    #[error("manifest {} is missing", .0.display())]
    Missing(PathBuf),
    /// A file is there but cannot be read (permissions, a directory, an I/O error).
    #[error("manifest {} cannot be read: {reason}; make it readable, or remove it to drill the dump without a checksum", path.display())]
    Unreadable {
        /// The manifest's path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// A file is there but is not a manifest pgdrill wrote: not JSON, half-written, wrong
    /// fields. Nothing can be compared with it, so it must never count as "no manifest".
    #[error("{} is not a valid pgdrill manifest: {reason}; remove it to drill the dump without a checksum, or restore it from the repo", path.display())]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// The parser's error, with its line and column.
        reason: String,
    },
}

/// Reads a manifest: [`ManifestError::Missing`] when there is no file, otherwise it must
/// parse.
pub fn read_manifest(path: &Path) -> Result<Manifest, ManifestError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ManifestError::Missing(path.to_path_buf()),
        _ => ManifestError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let text = String::from_utf8_lossy(&bytes);
    crate::json::from_str(&text).map_err(|reason| ManifestError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// [`read_manifest`], with a missing manifest as `None` (a dump may be drilled without one;
/// one that is present must be readable).
pub fn read_manifest_if_present(path: &Path) -> Result<Option<Manifest>, ManifestError> {
    match read_manifest(path) {
        Ok(m) => Ok(Some(m)),
        Err(ManifestError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes a backup of `source` (its `dbname`) into `dir`; `stall` bounds every wait on the
/// source (`--stall-timeout`: no byte from pg_dump, no answer to a query).
pub async fn take(
    source: &Endpoint,
    tools: &PgTools,
    dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
    stall: Duration,
    progress: &Progress,
) -> Result<BackupSet, BackupError> {
    take_labelled(source, tools, dir, now, &Labels::default(), stall, progress).await
}

/// [`take`], with the kind and reason recorded in the manifest. Every file is written under
/// a temporary name in `dir`, fsynced and renamed, the manifest last: a crash, a signal or a
/// full disk leaves no partial file under a final name, and the temporary files are removed
/// when this future fails or is dropped.
pub async fn take_labelled(
    source: &Endpoint,
    tools: &PgTools,
    dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
    labels: &Labels,
    stall: Duration,
    progress: &Progress,
) -> Result<BackupSet, BackupError> {
    let t0 = Instant::now();
    std::fs::create_dir_all(dir)
        .map_err(|e| EnvError::io(format!("cannot create {}", dir.display()), e))?;
    let client = source.connect().await?;
    let bound = Bound { source, stall };
    let row = bound
        .query(
            StallPoint::Query("SHOW server_version"),
            client.query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int4, pg_backend_pid()",
                &[],
            ),
        )
        .await?;
    let (server_version, version_num, session_pid): (String, i32, i32) =
        (row.get(0), row.get(1), row.get(2));
    let mut tool_versions = BTreeMap::new();
    for t in ["pg_dump", "pg_dumpall"] {
        tool_versions.insert(
            t.to_string(),
            tools.check_not_older(t, &server_version).await?,
        );
    }
    let db = bound
        .query(
            StallPoint::Query("the database's encoding and owner"),
            client.query_one(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba)
             FROM pg_database WHERE datname = current_database()",
                &[],
            ),
        )
        .await?;
    bound
        .query(
            StallPoint::Query("the snapshot session's limits"),
            crate::pg::bound_snapshot_session(&client, version_num),
        )
        .await?;
    // One MVCC snapshot for both the integrity snapshot and pg_dump: S0 describes exactly
    // the rows in the dump, even while the source keeps taking writes.
    let sent_at = chrono::Utc::now();
    let snap_id = bound
        .query(
            StallPoint::Query("pg_export_snapshot()"),
            crate::pg::export_snapshot(&client),
        )
        .await?;
    let snapshot_taken = SnapshotWindow {
        sent_at,
        returned_at: chrono::Utc::now(),
    };

    let dump = dir.join(dump_file_name(now));
    let dump_tmp = temp_beside(&dump)?;
    // pg_dump writes into a file it can seek in when it runs on this machine: the table of
    // contents it rewrites at the end then records where each table's data starts, which
    // `pg_restore -j` needs to load tables side by side (from a pipe the archive has no
    // offsets, and every worker reads the archive from the start). A program in a container
    // does not see this file system, so it writes to its stdout, hashed on the way.
    let to_file = tools.bindir().is_some();
    // pg_dump's own session is named apart, so that a stalled one can be found and ended.
    let dump_app = format!("pgdrill pg_dump {}", std::process::id());
    let mut cmd = tools.command("pg_dump", source);
    cmd.args(["-Fc", "--no-password"])
        .arg(format!("--snapshot={snap_id}"))
        .env("PGAPPNAME", dump_app.clone())
        .env("PGOPTIONS", server_options(source, version_num))
        .arg("-d")
        .arg(source.dbname_arg())
        .stderr(Stdio::piped());
    if to_file {
        cmd.arg("-f")
            .arg(dump_tmp.path())
            .stdout(Stdio::null())
            .die_with_parent();
    } else {
        cmd.stdout(Stdio::piped());
    }
    let mut child = cmd.start()?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take().expect("piped");
    let dump_path = dump.clone();
    let tmp_file = dump_tmp
        .as_file()
        .try_clone()
        .map_err(|e| io_err(&dump, e))?;
    let stalled = tokio::sync::Notify::new();
    let dumped = tokio::sync::Notify::new();
    let t_dump = Instant::now();
    let child_ref = &mut child;
    let writer = async {
        let r = match stdout {
            Some(stdout) => copy_hashing(
                stdout,
                tokio::fs::File::from_std(tmp_file),
                &dump_path,
                stall,
                progress,
            )
            .await
            .map(|w| w.map(|(size, sha)| (size, Some(sha)))),
            None => watch_growth(child_ref, dump_tmp.path(), &dump_path, stall, progress)
                .await
                .map(|w| w.map(|size| (size, None))),
        };
        if let Ok(None) = r {
            // No byte for the whole stall timeout: pg_dump waits on a dead path and would
            // wait forever; ending it also ends its stderr, which is read below.
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            stalled.notify_one();
        }
        dumped.notify_one();
        (r, t_dump.elapsed())
    };
    let t_snap = Instant::now();
    let snap = async {
        tokio::select! {
            s = snapshot::take(&client) => Some((s, t_snap.elapsed())),
            // Its queries would wait on the same dead path.
            _ = stalled.notified() => None,
            // Once pg_dump is done its bytes no longer prove the path alive: a beat queued
            // behind the snapshot's query must come back within the stall timeout.
            _ = async {
                dumped.notified().await;
                while tokio::time::timeout(stall, client.simple_query("SELECT 1")).await.is_ok() {
                    tokio::time::sleep(crate::pg::HEARTBEAT_EVERY).await;
                }
            } => None,
        }
    };
    let work = async { tokio::join!(writer, snap, read_all(stderr)) };
    let ((written, dump_elapsed), s0, err_text) = tokio::select! {
        r = work => r,
        never = heartbeat(&client) => match never {},
    };
    let status = cmd.wait(&mut child).await?;
    // Our side failing to write (a full disk) kills pg_dump with SIGPIPE: the write error,
    // naming the path, is the cause to report, not pg_dump's signal.
    let Some((size_bytes, sha256)) = written? else {
        drop(client);
        reap(source, session_pid, &dump_app).await;
        return Err(bound.stalled(StallPoint::Dump));
    };
    let _ = tokio::time::timeout(stall, client.batch_execute("COMMIT")).await;
    // The snapshot is no longer needed: the session ends now, not with this function.
    drop(client);
    if !status.success() {
        // pg_dump writing the file itself reports a full disk in its own words; the
        // repository's path and the fix are what the operator needs.
        if to_file
            && crate::program::Fault::said_by(&err_text) == Some(crate::program::Fault::DiskFull)
        {
            return Err(io_err(
                &dump,
                std::io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32),
            )
            .into());
        }
        return Err(BackupError::Tool {
            program: "pg_dump".into(),
            status: status.to_string(),
            stderr: tail(&err_text),
        });
    }
    // Only a stall ends the snapshot early: pg_dump's (returned above) or the snapshot's own
    // after the dump.
    let Some((s0, snap_elapsed)) = s0 else {
        reap(source, session_pid, &dump_app).await;
        return Err(bound.stalled(StallPoint::Query("the integrity snapshot's queries")));
    };
    let s0 = s0?;

    let t_glob = Instant::now();
    let globals = globals_path(&dump);
    // To stdout, not -f: the program may run where our file system is not (a container).
    let mut globals_cmd = tools.command("pg_dumpall", source);
    globals_cmd
        .args(["--globals-only", "--no-role-passwords", "--no-password"])
        .env("PGOPTIONS", server_options(source, version_num))
        .arg("-d")
        .arg(source.dbname_arg());
    let globals_run = globals_cmd.run();
    // The file pg_dump wrote is hashed (from the page cache) while the roles are dumped.
    let digest = async {
        match sha256 {
            Some(sha) => Ok::<_, EnvError>((size_bytes, sha)),
            None => {
                // pg_dump syncs its output too; this keeps the rename after it safe whatever
                // pg_dump's --no-sync default becomes.
                dump_tmp
                    .as_file()
                    .sync_all()
                    .map_err(|e| io_err(&dump, e))?;
                let d = file_digest(dump_tmp.path()).await?;
                Ok((d.size_bytes, d.sha256))
            }
        }
    };
    // A few kilobytes of roles: not done within the stall timeout means a dead path.
    let (out, digest) = tokio::join!(tokio::time::timeout(stall, globals_run), digest);
    let (size_bytes, sha256) = digest?;
    let out = out.map_err(|_| bound.stalled(StallPoint::Globals))??;
    if !out.status.success() {
        return Err(BackupError::Tool {
            program: "pg_dumpall --globals-only".into(),
            status: out.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    let globals_tmp = write_temp(&globals, &out.stdout)?;
    let globals_digest = FileDigest {
        file: file_name(&globals),
        size_bytes: out.stdout.len() as u64,
        sha256: crate::digest::sha256_hex(&out.stdout),
    };
    let globals_ms = t_glob.elapsed().as_millis() as u64;

    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        file: file_name(&dump),
        format: "custom".into(),
        size_bytes,
        sha256,
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        database: source.dbname.clone(),
        encoding: db.get(0),
        collate: db.get(1),
        ctype: db.get(2),
        owner: db.get(3),
        source: source.display(),
        server_version,
        tools: tool_versions,
        pgdrill_version: env!("CARGO_PKG_VERSION").into(),
        mvcc_snapshot: snap_id,
        snapshot_taken: Some(snapshot_taken),
        timings: Timings {
            dump_ms: dump_elapsed.as_millis() as u64,
            snapshot_ms: snap_elapsed.as_millis() as u64,
            globals_ms,
            total_ms: t0.elapsed().as_millis() as u64,
        },
        globals: Some(globals_digest),
        snapshot: s0,
        kind: labels.kind,
        reason: labels.reason.clone(),
    };
    let manifest_path = manifest_path(&dump);
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    let manifest_tmp = write_temp(&manifest_path, &json)?;
    // The manifest is renamed last: a dump without one is visibly incomplete to `verify`.
    globals_tmp
        .persist(&globals)
        .map_err(|e| io_err(&globals, e.error))?;
    dump_tmp
        .persist(&dump)
        .map_err(|e| io_err(&dump, e.error))?;
    manifest_tmp
        .persist(&manifest_path)
        .map_err(|e| io_err(&manifest_path, e.error))?;
    crate::digest::sync_dir(dir).map_err(|e| io_err(dir, e))?;
    Ok(BackupSet {
        dump,
        manifest_path,
        globals: Some(globals),
        manifest,
    })
}

/// A temporary file beside `path` (same directory, so the rename is atomic), removed when
/// dropped unless persisted.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, EnvError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(&format!(".{}.tmp-", file_name(path)))
        .tempfile_in(dir)
        .map_err(|e| io_err(path, e))
}

/// `bytes` in a fsynced temporary file beside `path`, to be renamed onto it.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, EnvError> {
    use std::io::Write;
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes).map_err(|e| io_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| io_err(path, e))?;
    Ok(tmp)
}

/// Streams `from` into `file` (destined for `to`), hashing on the way: one pass, no re-read.
/// `None` when `from` sent nothing for `stall`.
async fn copy_hashing(
    mut from: impl tokio::io::AsyncRead + Unpin,
    file: tokio::fs::File,
    to: &Path,
    stall: Duration,
    progress: &Progress,
) -> Result<Option<(u64, String)>, EnvError> {
    let mut meter = Meter::new(progress, Unit::Bytes, None, crate::progress::BYTES_EVERY);
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    loop {
        let Ok(n) = tokio::time::timeout(stall, from.read(&mut buf)).await else {
            return Ok(None);
        };
        let n = n.map_err(|e| io_err(to, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).await.map_err(|e| io_err(to, e))?;
        meter.add(n as u64);
    }
    meter.finish();
    let size = meter.done();
    file.flush().await.map_err(|e| io_err(to, e))?;
    file.into_inner()
        .sync_all()
        .await
        .map_err(|e| io_err(to, e))?;
    Ok(Some((size, hex::encode(hasher.finalize()))))
}

/// Waits for pg_dump writing `file` itself (`-f`), metering its growth; `None` when the
/// file did not grow for `stall` (pg_dump waits on a dead path). The size when it exited.
async fn watch_growth(
    child: &mut tokio::process::Child,
    file: &Path,
    to: &Path,
    stall: Duration,
    progress: &Progress,
) -> Result<Option<u64>, EnvError> {
    let mut meter = Meter::new(progress, Unit::Bytes, None, crate::progress::BYTES_EVERY);
    let mut size = 0u64;
    let mut grew = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100).min(stall));
    loop {
        tokio::select! {
            // Its status is read again (and traced) by the caller: tokio keeps it.
            _ = child.wait() => break,
            _ = tick.tick() => {}
        }
        let now = std::fs::metadata(file).map_err(|e| io_err(to, e))?.len();
        if now != size {
            meter.add(now.saturating_sub(size));
            size = now;
            grew = Instant::now();
        } else if grew.elapsed() >= stall {
            return Ok(None);
        }
    }
    let end = std::fs::metadata(file).map_err(|e| io_err(to, e))?.len();
    meter.add(end.saturating_sub(size));
    meter.finish();
    Ok(Some(end))
}

/// Size and SHA-256 of a file.
pub async fn file_digest(path: &Path) -> Result<FileDigest, EnvError> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_err(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileDigest {
        file: file_name(path),
        size_bytes: size,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn io_err(path: &Path, e: std::io::Error) -> EnvError {
    let hint = if crate::program::Fault::of_io(&e) == Some(crate::program::Fault::DiskFull) {
        " (the disk is full: free space, or choose another --out or --repo DIR)"
    } else {
        ""
    };
    EnvError::io(format!("writing {}{hint}", path.display()), e)
}

/// The last component of a path, for reports and messages.
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a child's pipe to the end (so it never blocks on a full pipe).
pub(crate) async fn read_all(mut r: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v).await;
    String::from_utf8_lossy(&v).into_owned()
}

/// The last lines of a program's stderr, for error messages.
pub(crate) fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_missing_or_must_parse_and_the_error_says_where_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup_x.manifest.json");
        assert_eq!(read_manifest_if_present(&path), Ok(None));
        assert_eq!(
            read_manifest(&path),
            Err(ManifestError::Missing(path.clone()))
        );
        std::fs::write(&path, "{\n  \"manifest_version\": 1,\n  \"fi").unwrap();
        let e = read_manifest_if_present(&path).unwrap_err();
        assert!(matches!(e, ManifestError::Invalid { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "{} is not a valid pgdrill manifest: EOF while parsing a string at line 3 column 5; remove it to drill the dump without a checksum, or restore it from the repo",
                path.display()
            )
        );
        std::fs::write(&path, "{\"manifest_version\": 1}").unwrap();
        let e = read_manifest(&path).unwrap_err().to_string();
        assert!(
            e.contains("missing field `file` at line 1 column 23"),
            "{e}"
        );
    }
}
