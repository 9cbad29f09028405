//! Taking a backup the way the strategy says (`pg_dump -Fc` to `backup_YYYYmmdd_HHMMSS.dump`),
//! plus what it forgets: the roles (globals), a checksum computed while writing, and a
//! manifest holding the integrity snapshot of exactly the data inside the dump.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::progress::{Meter, Progress, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::env::{Endpoint, PgTools};
use crate::env_error::EnvError;
use crate::snapshot::{self, Snapshot};

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
    /// SHA-256 of the dump, hex, computed while it was written.
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

/// Reads a manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read manifest {}: {e}", path.display()))?;
    crate::json::from_str(&text)
        .map_err(|e| format!("manifest {} is not valid: {e}", path.display()))
}

/// Takes a backup of `source` (its `dbname`) into `dir`.
pub async fn take(
    source: &Endpoint,
    tools: &PgTools,
    dir: &Path,
    now: chrono::DateTime<chrono::Utc>,
    progress: &Progress,
) -> Result<BackupSet, BackupError> {
    take_labelled(source, tools, dir, now, &Labels::default(), progress).await
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
    progress: &Progress,
) -> Result<BackupSet, BackupError> {
    let t0 = Instant::now();
    std::fs::create_dir_all(dir)
        .map_err(|e| EnvError::io(format!("cannot create {}", dir.display()), e))?;
    let client = source.connect().await?;
    let server_version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let mut tool_versions = BTreeMap::new();
    for t in ["pg_dump", "pg_dumpall"] {
        tool_versions.insert(
            t.to_string(),
            tools.check_not_older(t, &server_version).await?,
        );
    }
    let db = client
        .query_one(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba)
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    // One MVCC snapshot for both the integrity snapshot and pg_dump: S0 describes exactly
    // the rows in the dump, even while the source keeps taking writes.
    let sent_at = chrono::Utc::now();
    let snap_id = crate::pg::export_snapshot(&client).await?;
    let snapshot_taken = SnapshotWindow {
        sent_at,
        returned_at: chrono::Utc::now(),
    };

    let dump = dir.join(dump_file_name(now));
    let dump_tmp = temp_beside(&dump)?;
    let mut cmd = tools.command("pg_dump", source);
    cmd.args(["-Fc", "--no-password"])
        .arg(format!("--snapshot={snap_id}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.start()?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let dump_path = dump.clone();
    let tmp_file = dump_tmp
        .as_file()
        .try_clone()
        .map_err(|e| io_err(&dump, e))?;
    let t_dump = Instant::now();
    let writer = async move {
        let r = copy_hashing(
            stdout,
            tokio::fs::File::from_std(tmp_file),
            &dump_path,
            progress,
        )
        .await;
        (r, t_dump.elapsed())
    };
    let t_snap = Instant::now();
    let snap = async {
        let s = snapshot::take(&client).await;
        (s, t_snap.elapsed())
    };
    let ((written, dump_elapsed), (s0, snap_elapsed), err_text) =
        tokio::join!(writer, snap, read_all(stderr));
    let status = cmd.wait(&mut child).await?;
    let _ = client.batch_execute("COMMIT").await;
    // Our side failing to write (a full disk) kills pg_dump with SIGPIPE: the write error,
    // naming the path, is the cause to report, not pg_dump's signal.
    let written = written?;
    if !status.success() {
        return Err(BackupError::Tool {
            program: "pg_dump".into(),
            status: status.to_string(),
            stderr: tail(&err_text),
        });
    }
    let (size_bytes, sha256) = written;
    let s0 = s0?;

    let t_glob = Instant::now();
    let globals = globals_path(&dump);
    // To stdout, not -f: the program may run where our file system is not (a container).
    let out = tools
        .command("pg_dumpall", source)
        .args(["--globals-only", "--no-role-passwords", "--no-password"])
        .run()
        .await?;
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
async fn copy_hashing(
    mut from: impl tokio::io::AsyncRead + Unpin,
    file: tokio::fs::File,
    to: &Path,
    progress: &Progress,
) -> Result<(u64, String), EnvError> {
    let mut meter = Meter::new(progress, Unit::Bytes, None, crate::progress::BYTES_EVERY);
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    loop {
        let n = from.read(&mut buf).await.map_err(|e| io_err(to, e))?;
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
    Ok((size, hex::encode(hasher.finalize())))
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
