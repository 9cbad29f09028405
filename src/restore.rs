//! The restore procedure of the strategy, one function per step: precheck, roles, createdb,
//! pg_restore, ANALYZE. Each returns a one-line detail for the report or a typed error.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::backup::{file_name, read_all, tail, Manifest, ManifestError};
use crate::digest::Hasher;
use crate::env::{Endpoint, PgTools};
use crate::env_error::EnvError;
use crate::program::Fault;
use crate::progress::{Meter, Progress, Unit, BYTES_EVERY};

/// Why a restore step failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The backup cannot be used: missing, empty, wrong checksum, truncated or corrupted.
    #[error("{0}")]
    Unusable(String),
    /// A restore step ran and failed.
    #[error("{0}")]
    Failed(String),
    /// A restore step failed because the target's disk is full: the machine's problem, not
    /// the backup's. The message is the server's or the program's.
    #[error("{0}")]
    DiskFull(String),
    /// The manifest beside the backup is present but unreadable: nothing can be checked
    /// against it, so the backup is unusable as it stands.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The machine failed (spawn, connect).
    #[error(transparent)]
    Env(#[from] EnvError),
}

impl From<tokio_postgres::Error> for RestoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = crate::pg::error_text(&e);
        match crate::pg::fault(&e) {
            Some(Fault::DiskFull) => RestoreError::DiskFull(text),
            _ => RestoreError::Failed(text),
        }
    }
}

/// What the precheck established.
#[derive(Debug, Clone)]
pub struct Precheck {
    /// Size of the dump.
    pub size_bytes: u64,
    /// Its SHA-256.
    pub sha256: String,
    /// One line for the report.
    pub detail: String,
}

/// The strategy's prerequisites, done properly: the file exists and is not empty, its
/// SHA-256 equals the manifest's, and the whole archive reads through. `pg_restore --list`
/// alone reads only the table of contents and passes truncated or corrupted dumps, so every
/// data block is read to its end as well: by pgdrill's own readers where it can
/// ([`precheck_blocks`]), else by pg_restore (one `pg_restore -L` per core, or the file
/// streamed once into both the hasher and `pg_restore -f /dev/null`).
pub async fn precheck(
    dump: &Path,
    manifest: Option<&Manifest>,
    tools: &PgTools,
    progress: &Progress,
) -> Result<Precheck, RestoreError> {
    let meta = std::fs::metadata(dump).map_err(|e| {
        RestoreError::Unusable(format!(
            "backup file {} cannot be read: {e}. Check the path (--backup-file) and its permissions.",
            dump.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(RestoreError::Unusable(format!(
            "{} is not a regular file",
            dump.display()
        )));
    }
    let file = tokio::fs::File::open(dump).await.map_err(|e| {
        RestoreError::Unusable(format!(
            "backup file {} cannot be opened: {e}",
            dump.display()
        ))
    })?;
    // Where the blocks are, when this machine's programs read the file (a container's does
    // not see it) and the archive says.
    let layout = tools
        .bindir()
        .and_then(|_| crate::pg::archive::data_blocks(dump));
    let readers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(PRECHECK_READERS);
    let fast = match &layout {
        Some(l) if l.rows_only() => {
            precheck_blocks(
                dump,
                meta.len(),
                l.clone(),
                readers,
                manifest,
                tools,
                progress,
            )
            .await?
        }
        _ => None,
    };
    // pg_restore's lists are only made when pgdrill's own read did not decide.
    let mut checked = match fast {
        Some(checked) => checked,
        None => match layout.as_ref().and_then(|l| split_lists(l, readers)) {
            Some(lists) => {
                precheck_split(dump, meta.len(), lists, manifest, tools, progress).await?
            }
            None => precheck_stream(dump, meta.len(), file, manifest, tools, progress).await?,
        },
    };
    // A layout is only found where every block's start is recorded.
    let offsets = match layout {
        Some(_) => None,
        None => crate::pg::archive::data_offsets(dump),
    };
    if let Some(o) = offsets.filter(|o| o.unset > 0) {
        // Sound, but slow to restore in parallel: worth knowing before the outage.
        checked.detail.push_str(&format!(
            "; its table of contents records no data offset for {} of {} tables (pg_dump wrote it into a pipe), so pg_restore -j reads past the tables before each one it restores: write dumps with pg_dump -f FILE (pgdrill backup does)",
            o.unset, o.tables
        ));
    }
    Ok(checked)
}

/// How many readers (threads, or `pg_restore` processes) read one archive side by side in the
/// precheck, at most.
const PRECHECK_READERS: usize = 4;

/// [`precheck`] with pg_restore reading the table of contents (`--list`) and pgdrill every data
/// block, one thread per core, the file hashed beside them: pg_restore's full read spends on
/// writing SQL out what reading the blocks through does not need, and the blocks are read just
/// as pg_restore reads them (the header names the entry, every chunk whole, the zlib stream
/// decompressed to its end and its checksum). `None` when either did not read: pg_restore's
/// own full read then decides, in its own words, so this path can pass an archive but never
/// fail one pg_restore reads.
async fn precheck_blocks(
    dump: &Path,
    len: u64,
    blocks: crate::pg::archive::DataBlocks,
    readers: usize,
    manifest: Option<&Manifest>,
    tools: &PgTools,
    progress: &Progress,
) -> Result<Option<Precheck>, RestoreError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    size_as_manifest(dump, len, manifest)?;
    let list = async {
        let mut cmd = tools.plain("pg_restore");
        cmd.args(["--list", "-f", "/dev/null"])
            .arg(dump)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.start()?;
        Ok::<_, RestoreError>(cmd.wait(&mut child).await?.success())
    };
    /// Stops the readers when the precheck is dropped (a signal stopped the drill).
    struct StopOnDrop(std::sync::Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = StopOnDrop(std::sync::Arc::new(AtomicBool::new(false)));
    let (path, flag) = (dump.to_path_buf(), stop.0.clone());
    let read = tokio::task::spawn_blocking(move || {
        crate::pg::archive::read_blocks(&path, &blocks, readers, &flag)
    });
    let (sha256, listed, read) = tokio::join!(hash_file(dump, len, progress), list, read);
    let sha256 = sha256?;
    sha_as_manifest(dump, &sha256, manifest)?;
    let read =
        read.map_err(|e| EnvError::io("the precheck's readers", std::io::Error::other(e)))?;
    Ok(match (listed?, read) {
        (true, Ok(r)) if !r.stopped => Some(read_through(
            len,
            sha256,
            manifest,
            &format!(
                "pg_restore --list (its table of contents) and pgdrill (its {} data blocks, {} bytes of rows, decompressed to their end; {readers} readers side by side)",
                r.blocks, r.data_bytes
            ),
        )),
        _ => None,
    })
}

/// The SHA-256 of the `len` bytes of `dump`, the precheck's progress counting them.
async fn hash_file(dump: &Path, len: u64, progress: &Progress) -> Result<String, RestoreError> {
    let mut file = tokio::fs::File::open(dump)
        .await
        .map_err(|e| RestoreError::Unusable(format!("reading {} failed: {e}", dump.display())))?;
    let mut meter = Meter::new(progress, Unit::Bytes, Some(len), BYTES_EVERY);
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; crate::digest::CHUNK];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| {
            RestoreError::Unusable(format!("reading {} failed: {e}", dump.display()))
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        meter.add(n as u64);
    }
    meter.finish();
    Ok(hasher.finish().1)
}

/// The `pg_restore -L` lists that split the reading of an archive of `layout` between
/// `readers` processes, each with its share of the data blocks by size, the first also with
/// every entry that has no data. `None` where one reader is the way: one core, or one block.
fn split_lists(layout: &crate::pg::archive::DataBlocks, readers: usize) -> Option<Vec<String>> {
    if readers < 2 || layout.blocks.len() < 2 {
        return None;
    }
    let mut sized: Vec<(u64, i64)> = layout.blocks.iter().map(|b| (b.span, b.dump_id)).collect();
    // The largest first, each to the reader with the least so far.
    sized.sort_unstable_by(|a, b| b.cmp(a));
    let mut lists = vec![(0u64, String::new()); readers.min(sized.len())];
    for id in &layout.no_data {
        lists[0].1.push_str(&format!("{id}\n"));
    }
    for (size, id) in sized {
        let least = lists
            .iter_mut()
            .min_by_key(|l| l.0)
            .expect("at least two readers");
        least.0 += size;
        least.1.push_str(&format!("{id}\n"));
    }
    Some(lists.into_iter().map(|(_, l)| l).collect())
}

/// [`precheck`] with the archive read by one `pg_restore -f /dev/null -L LIST` per list, side
/// by side, and the file hashed beside them: every entry is in exactly one list, so every data
/// block is still read and decompressed once, and a damaged one fails its reader.
async fn precheck_split(
    dump: &Path,
    len: u64,
    lists: Vec<String>,
    manifest: Option<&Manifest>,
    tools: &PgTools,
    progress: &Progress,
) -> Result<Precheck, RestoreError> {
    size_as_manifest(dump, len, manifest)?;
    let readers = lists.len();
    let mut files = Vec::new();
    for list in &lists {
        let mut f = tempfile::Builder::new()
            .prefix("pgdrill-precheck-")
            .suffix(".list")
            .tempfile()
            .map_err(|e| EnvError::io("cannot write a pg_restore list for the precheck", e))?;
        std::io::Write::write_all(&mut f, list.as_bytes())
            .map_err(|e| EnvError::io("cannot write a pg_restore list for the precheck", e))?;
        files.push(f);
    }
    let read = files.iter().map(|list| async move {
        let mut cmd = tools.plain("pg_restore");
        cmd.args(["-f", "/dev/null", "-L"])
            .arg(list.path())
            .arg(dump)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.start()?;
        let stderr = child.stderr.take().expect("piped");
        let err_text = read_all(stderr).await;
        let status = cmd.wait(&mut child).await?;
        Ok::<_, RestoreError>((status, err_text))
    });
    let (sha256, reads) = tokio::join!(
        hash_file(dump, len, progress),
        futures_util::future::join_all(read)
    );
    let sha256 = sha256?;
    sha_as_manifest(dump, &sha256, manifest)?;
    for r in reads {
        let (status, err_text) = r?;
        if !status.success() {
            return Err(unreadable(dump, status, &err_text));
        }
    }
    Ok(read_through(
        len,
        sha256,
        manifest,
        &format!("pg_restore ({readers} readers side by side)"),
    ))
}

/// [`precheck`] of `len` bytes read from `file`, reported as `dump`: the negative controls
/// run the same check over a truncated or altered view of the dump without writing a copy.
pub async fn precheck_stream(
    dump: &Path,
    len: u64,
    mut file: impl tokio::io::AsyncRead + Unpin,
    manifest: Option<&Manifest>,
    tools: &PgTools,
    progress: &Progress,
) -> Result<Precheck, RestoreError> {
    if len == 0 {
        return Err(RestoreError::Unusable(format!(
            "backup file {} is empty (0 bytes): the backup job wrote nothing",
            dump.display()
        )));
    }
    size_as_manifest(dump, len, manifest)?;
    let mut cmd = tools.plain("pg_restore");
    cmd.args(["-f", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.start()?;
    let mut stdin = child.stdin.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let feed = async {
        let mut meter = Meter::new(progress, Unit::Bytes, Some(len), BYTES_EVERY);
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; crate::digest::CHUNK];
        let mut fed = true;
        let mut ends = Ends::default();
        loop {
            let n = file.read(&mut buf).await.map_err(|e| {
                RestoreError::Unusable(format!("reading {} failed: {e}", dump.display()))
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            ends.add(&buf[..n]);
            // pg_restore may stop reading early on a corrupt archive; keep hashing anyway.
            if fed && stdin.write_all(&buf[..n]).await.is_err() {
                fed = false;
            }
            meter.add(n as u64);
        }
        drop(stdin);
        meter.finish();
        Ok::<_, RestoreError>((hasher.finish().1, ends))
    };
    let (sha, err_text) = tokio::join!(feed, read_all(stderr));
    let (sha256, ends) = sha?;
    let status = cmd.wait(&mut child).await?;
    sha_as_manifest(dump, &sha256, manifest)?;
    if status.success() && ends.tar_without_end() {
        // pg_restore needs neither a tar archive's last members (restore.sql) nor its
        // end-of-archive blocks, so a tar dump cut short of them reads through; pg_dump
        // always writes them, and their absence is the truncation.
        return Err(RestoreError::Unusable(format!(
            "the tar archive {} ends without the two zero blocks pg_dump writes at its end: it is truncated",
            dump.display()
        )));
    }
    if !status.success() {
        if err_text.contains("appears to be a text format dump") {
            return Err(RestoreError::Unusable(format!(
                "{} is a plain-text SQL dump (pg_dump -Fp): pg_restore cannot read it, and a drill restores what pg_restore reads (checked, in parallel, table by table). Take the backup with pg_dump -Fc, the strategy's format",
                dump.display()
            )));
        }
        return Err(unreadable(dump, status, &err_text));
    }
    Ok(read_through(len, sha256, manifest, "pg_restore"))
}

/// The file's size must be the manifest's: a cut or replaced file is told before it is read.
fn size_as_manifest(
    dump: &Path,
    len: u64,
    manifest: Option<&Manifest>,
) -> Result<(), RestoreError> {
    match manifest {
        Some(m) if m.size_bytes != len => Err(RestoreError::Unusable(format!(
            "backup file {} is {} bytes but its manifest says {}: the file was truncated or replaced",
            dump.display(),
            len,
            m.size_bytes
        ))),
        _ => Ok(()),
    }
}

/// The file's SHA-256 must be the manifest's.
fn sha_as_manifest(
    dump: &Path,
    sha256: &str,
    manifest: Option<&Manifest>,
) -> Result<(), RestoreError> {
    match manifest {
        Some(m) if m.sha256 != sha256 => Err(RestoreError::Unusable(format!(
            "SHA-256 of {} is {sha256} but its manifest says {}: the file is corrupted or is not the backup the manifest describes",
            dump.display(),
            m.sha256
        ))),
        _ => Ok(()),
    }
}

/// A `pg_restore -f /dev/null` that did not read the archive through.
fn unreadable(dump: &Path, status: std::process::ExitStatus, err_text: &str) -> RestoreError {
    RestoreError::Unusable(format!(
        "the archive {} does not read through (pg_restore -f /dev/null: {}): it is truncated or corrupted:\n{}",
        dump.display(),
        status,
        tail(err_text)
    ))
}

/// A passed precheck and its line for the report (`how` says how the archive was read).
fn read_through(len: u64, sha256: String, manifest: Option<&Manifest>, how: &str) -> Precheck {
    let detail = format!(
        "{} bytes, sha256 {}{}; whole archive read through {how}",
        len,
        &sha256[..16],
        if manifest.is_some() {
            " = manifest"
        } else {
            " (no manifest beside the file: checksum not compared)"
        }
    );
    Precheck {
        size_bytes: len,
        sha256,
        detail,
    }
}

/// The first block and the last two blocks of an archive as it streams past: enough to tell a
/// tar archive (`ustar` at offset 257) and whether it ends with its end-of-archive blocks.
#[derive(Default)]
struct Ends {
    head: Vec<u8>,
    last: Vec<u8>,
}

/// A tar block.
const TAR_BLOCK: usize = 512;

impl Ends {
    fn add(&mut self, chunk: &[u8]) {
        if self.head.len() < TAR_BLOCK {
            let take = (TAR_BLOCK - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.last.extend_from_slice(chunk);
        let keep = 2 * TAR_BLOCK;
        if self.last.len() > keep {
            self.last.drain(..self.last.len() - keep);
        }
    }

    fn tar_without_end(&self) -> bool {
        let is_tar = self.head.get(257..262) == Some(b"ustar".as_slice());
        is_tar && (self.last.len() < 2 * TAR_BLOCK || self.last.iter().any(|b| *b != 0))
    }
}

/// [`precheck`] of `dump` against the manifest at `manifest` as it is on disk, for any pair
/// of paths: no file there is a precheck without a checksum; a file that is not a readable
/// manifest makes the backup unusable ([`RestoreError::Manifest`]).
pub async fn precheck_files(
    dump: &Path,
    manifest: &Path,
    tools: &PgTools,
    progress: &Progress,
) -> Result<Precheck, RestoreError> {
    let m = crate::backup::read_manifest_if_present(manifest)?;
    precheck(dump, m.as_ref(), tools, progress).await
}

/// Replays the globals file (roles). After a server loss the roles exist nowhere else; a
/// role that already exists (drop-db, or the bootstrap superuser) is fine, any other error
/// fails the step.
///
/// Tablespace statements are left out: their `LOCATION` is a directory of the source's
/// machine, which a disposable target must not write into (on the same machine it is the
/// source's own, in use). The restore preflight then finds the tablespaces missing and the
/// restore runs with `--no-tablespaces`, which the report notes.
pub async fn restore_roles(
    target: &Endpoint,
    tools: &PgTools,
    globals: &Path,
) -> Result<String, RestoreError> {
    let text = std::fs::read_to_string(globals)
        .map_err(|e| RestoreError::Failed(format!("cannot read {}: {e}", globals.display())))?;
    let (kept, tablespaces) = without_tablespaces(&text);
    // Only when there is something to leave out: otherwise the file itself is replayed.
    let filtered = if tablespaces.is_empty() {
        None
    } else {
        let mut f = tempfile::Builder::new()
            .prefix("pgdrill-globals-")
            .suffix(".sql")
            .tempfile()
            .map_err(|e| EnvError::io("cannot write the filtered globals file", e))?;
        std::io::Write::write_all(&mut f, kept.as_bytes())
            .map_err(|e| EnvError::io("cannot write the filtered globals file", e))?;
        Some(f)
    };
    let replayed = filtered.as_ref().map_or(globals, |f| f.path());
    let staged = tools.stage(replayed).await?;
    let admin = target.with_db("postgres");
    let out = tools
        .command("psql", &admin)
        .arg("-d")
        .arg(admin.dbname_arg())
        .args(["-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=0", "-f"])
        .arg(&staged)
        .stdout(Stdio::null())
        .run()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR:")).collect();
    let (existing, real): (Vec<&str>, Vec<&str>) = errors
        .into_iter()
        .partition(|l| l.contains("already exists"));
    if !out.status.success() || !real.is_empty() {
        // psql's ERROR lines are all that is left of the server's SQLSTATE.
        let failed = match Fault::said_by(&stderr) {
            Some(Fault::DiskFull) => RestoreError::DiskFull,
            _ => RestoreError::Failed,
        };
        return Err(failed(format!(
            "replaying {} failed: {}",
            globals.display(),
            if real.is_empty() {
                tail(&stderr)
            } else {
                real.join("\n")
            }
        )));
    }
    let client = target.with_db("postgres").connect().await?;
    let roles: i64 = client
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname !~ '^pg_'", &[])
        .await?
        .get(0);
    let left_out = if tablespaces.is_empty() {
        String::new()
    } else {
        format!(
            "; tablespace(s) {} it defines not created (their LOCATION is a directory of the source's machine)",
            tablespaces
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(format!(
        "{} replayed; {roles} roles on the server ({} already existed){left_out}",
        file_name(globals),
        existing.len()
    ))
}

/// What a pg_restore error is known to mean, as a sentence for the failure's first line (or
/// nothing), so that the console's summary leads with the cause and the fix.
///
/// Seen on PostgreSQL's regression database: with `-j N`, pg_restore may add a foreign key to a
/// sub-partitioned table before the referenced key's partitioned index has all its partitions'
/// indexes attached, so it is not yet valid and the key is refused. A serial restore orders
/// every index attachment before every foreign key.
///
/// Seen on real schemas: a function used by a CHECK constraint, an index or a default names a
/// table without its schema. It works on the source, whose search_path finds the table; the
/// dump's script runs with an empty search_path, so loading the rows fails. Every real restore
/// of this backup fails the same way.
fn known_cause(stderr: &str, jobs: u32) -> String {
    if jobs > 1
        && stderr.contains("there is no unique constraint matching given keys for referenced table")
    {
        format!(
            " This is a known race of parallel pg_restore (-j {jobs}) with foreign keys to partitioned tables: the key was added before the referenced partitioned index had every partition's index attached. A real restore of this backup with -j {jobs} can fail the same way; restore with -j 1 (pgdrill --jobs 1), which attaches every index before adding any foreign key."
        )
    } else if stderr.contains("does not exist")
        && (stderr.contains("QUERY:") || stderr.contains("SQL function"))
    {
        " A function the restore runs (in a CHECK constraint, an index or a default) names an object without its schema: pg_restore runs with an empty search_path, so it is not found, and every real restore of this backup fails the same way. Fix it on the source: schema-qualify the names in the function's body, or pin its path (ALTER FUNCTION … SET search_path = public).".to_string()
    } else {
        String::new()
    }
}

/// A `pg_dumpall --globals-only` script without its tablespace statements (CREATE, ALTER,
/// COMMENT ON, and GRANT/REVOKE on tablespaces: pg_dumpall writes each on one line), and the
/// names of the tablespaces it creates.
pub fn without_tablespaces(globals: &str) -> (String, Vec<String>) {
    let mut kept = String::with_capacity(globals.len());
    let mut created = Vec::new();
    for line in globals.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("CREATE TABLESPACE ") {
            let name = match rest.strip_prefix('"') {
                Some(quoted) => quoted
                    .split_once("\" ")
                    .map(|(n, _)| n.replace("\"\"", "\""))
                    .unwrap_or_default(),
                None => rest.split(' ').next().unwrap_or_default().to_string(),
            };
            created.push(name);
            continue;
        }
        let tablespace_statement = line.starts_with("ALTER TABLESPACE ")
            || line.starts_with("COMMENT ON TABLESPACE ")
            || ((line.starts_with("GRANT ") || line.starts_with("REVOKE "))
                && line.contains(" ON TABLESPACE "));
        if !tablespace_statement {
            kept.push_str(line);
        }
    }
    (kept, created)
}

/// How to create the database: what the manifest knows, or the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct DatabaseSpec {
    /// Name.
    pub name: String,
    /// Encoding, e.g. UTF8.
    pub encoding: Option<String>,
    /// LC_COLLATE.
    pub collate: Option<String>,
    /// LC_CTYPE.
    pub ctype: Option<String>,
    /// Owner role (must exist: roles are restored first).
    pub owner: Option<String>,
}

/// `createdb`: a fresh database from template0 with the source's encoding, locale and owner.
pub async fn create_database(
    target: &Endpoint,
    spec: &DatabaseSpec,
) -> Result<String, RestoreError> {
    let client = target.with_db("postgres").connect().await?;
    if spec.name == "postgres" {
        // Every new server has an empty `postgres` database, so a real restore of a dump of
        // one goes into it, as this one does; only its owner can follow the source's.
        if let Some(o) = &spec.owner {
            client
                .batch_execute(&format!("ALTER DATABASE postgres OWNER TO {}", ident(o)))
                .await?;
        }
        return Ok(
            "no CREATE DATABASE: the dump is of the database postgres, which every new server has (empty); restored into it, as a real restore on a new server would be (its encoding and locale are the server's)"
                .to_string(),
        );
    }
    let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", ident(&spec.name));
    if let Some(e) = &spec.encoding {
        sql.push_str(&format!(" ENCODING {}", literal(e)));
    }
    let mut with_locale = sql.clone();
    if let (Some(c), Some(t)) = (&spec.collate, &spec.ctype) {
        with_locale.push_str(&format!(
            " LC_COLLATE {} LC_CTYPE {}",
            literal(c),
            literal(t)
        ));
    }
    if let Some(o) = &spec.owner {
        let own = format!(" OWNER {}", ident(o));
        sql.push_str(&own);
        with_locale.push_str(&own);
    }
    match client.batch_execute(&with_locale).await {
        Ok(()) => Ok(with_locale),
        Err(e) if with_locale != sql && crate::pg::error_text(&e).contains("locale") => {
            client.batch_execute(&sql).await?;
            Ok(format!(
                "{sql} (the source's locale is not available on this server; server default used)"
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Drops a database (the `drop-db` disaster), first ending every session on it.
pub async fn drop_database(target: &Endpoint, name: &str) -> Result<String, RestoreError> {
    let client = target.with_db("postgres").connect().await?;
    client
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", ident(name)))
        .await?;
    Ok(format!("DROP DATABASE {name} WITH (FORCE)"))
}

/// `pg_restore --exit-on-error -j N` into the database named by `target.dbname`, reporting
/// the tables restored of the archive's total as `pg_restore --verbose` announces them.
///
/// A full disk on the target is the machine's problem, not the backup's: it comes back as
/// [`RestoreError::Env`], naming the target's data directory and the server's words.
///
/// With `no_tablespaces` also `--no-tablespaces` (the target lacks a tablespace the dump
/// uses, see [`crate::preflight::Outcome::no_tablespaces`]).
pub async fn pg_restore(
    target: &Endpoint,
    tools: &PgTools,
    dump: &Path,
    jobs: u32,
    no_tablespaces: bool,
    progress: &Progress,
) -> Result<String, RestoreError> {
    let (tables, format) = archive_contents(tools, dump).await?;
    // pg_restore refuses -j for a tar archive; a real restore of one runs serially.
    let serial = format.as_deref() == Some("TAR") && jobs > 1;
    let jobs = if serial { 1 } else { jobs };
    let staged = tools.stage(dump).await?;
    let extra: &[&str] = if no_tablespaces {
        &["--no-tablespaces"]
    } else {
        &[]
    };
    let mut cmd = tools.command("pg_restore", target);
    cmd.args(["--exit-on-error", "--no-password", "--verbose"])
        .args(extra)
        .arg("-j")
        .arg(jobs.to_string())
        .arg("-d")
        .arg(target.dbname_arg())
        .arg(&staged)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.start()?;
    let stderr = child.stderr.take().expect("piped");
    progress.report(0, Some(tables), Unit::Tables);
    let mut lines = VerboseLog::new(jobs > 1, tables);
    // Read to the end as it comes: a full pipe would stall pg_restore, so the loop does
    // nothing slower than a progress report.
    let mut reader = tokio::io::BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if let Some(done) = lines.push(line.trim_end()) {
                    progress.report(done, Some(tables), Unit::Tables);
                }
            }
        }
    }
    let status = cmd.wait(&mut child).await?;
    if !status.success() {
        let said = tail(&lines.kept());
        if Fault::said_by(&said) == Some(Fault::DiskFull) {
            return Err(disk_full(target, &said).await.into());
        }
        return Err(RestoreError::Failed(format!(
            "pg_restore failed ({status}).{}\n{said}",
            known_cause(&said, jobs)
        )));
    }
    progress.report(tables, Some(tables), Unit::Tables);
    Ok(format!(
        "pg_restore --exit-on-error{} -j {jobs} -d {} {}{}",
        extra.iter().map(|a| format!(" {a}")).collect::<String>(),
        target.dbname,
        file_name(dump),
        if serial {
            " (a tar-format archive: pg_restore restores it serially only; pg_dump -Fc restores in parallel)"
        } else {
            ""
        }
    ))
}

/// The target's disk is full: names its data directory (asked of the server, which still
/// answers after a failed write) and what pg_restore said.
async fn disk_full(target: &Endpoint, said: &str) -> EnvError {
    let dir = async {
        let client = target.with_db("postgres").connect().await.ok()?;
        let row = client.query_one("SHOW data_directory", &[]).await.ok()?;
        Some(row.get::<_, String>(0))
    };
    let dir = tokio::time::timeout(std::time::Duration::from_secs(5), dir)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "(the server no longer answers)".into());
    EnvError::DiskFull {
        place: format!("the target's data directory {dir}"),
        fix: "free space on its disk, or give the drill a larger one (the native backend makes \
              its servers under TMPDIR, the docker backend in Docker's storage)"
            .into(),
        said: said.to_string(),
    }
}

/// `pg_restore --verbose`'s stderr: counts the tables whose data is restored and keeps the
/// lines a person needs when it fails (its errors, not its chatter).
struct VerboseLog {
    parallel: bool,
    total: u64,
    started: u64,
    finished: u64,
    kept: std::collections::VecDeque<String>,
}

/// Lines kept for an error message (the message shows the last few of them).
const KEPT_LINES: usize = 64;

impl VerboseLog {
    fn new(parallel: bool, total: u64) -> Self {
        VerboseLog {
            parallel,
            total,
            started: 0,
            finished: 0,
            kept: Default::default(),
        }
    }

    /// Takes one line; returns the tables restored so far when that count moved.
    fn push(&mut self, line: &str) -> Option<u64> {
        let before = self.done();
        if line.contains("processing data for table ") {
            self.started += 1;
        } else if line.contains("finished item ") && line.contains(" TABLE DATA ") {
            self.finished += 1;
        } else if !is_chatter(line) {
            if self.kept.len() == KEPT_LINES {
                self.kept.pop_front();
            }
            self.kept.push_back(line.to_string());
        }
        let done = self.done();
        (done != before).then_some(done)
    }

    /// Tables restored: in parallel mode the leader says `finished item … TABLE DATA`; a
    /// serial restore loads one table at a time, so a table is done when the next begins.
    fn done(&self) -> u64 {
        let done = if self.parallel {
            self.finished
        } else {
            self.started.saturating_sub(1)
        };
        done.min(self.total)
    }

    fn kept(&self) -> String {
        Vec::from(self.kept.clone()).join("\n")
    }
}

/// A `--verbose` progress line (`pg_restore: creating TABLE …`), as opposed to an error, a
/// warning, or a line that continues one (`Command was: …`).
fn is_chatter(line: &str) -> bool {
    match line.strip_prefix("pg_restore: ") {
        Some(rest) => !["error:", "warning:", "detail:", "hint:", "fatal:"]
            .iter()
            .any(|p| rest.starts_with(p)),
        None => false,
    }
}

/// The archive's TABLE DATA entries (`pg_restore --list`: the tables a restore loads) and its
/// format (`CUSTOM`, `TAR`, `DIRECTORY`) as its header records it.
pub async fn archive_contents(
    tools: &PgTools,
    dump: &Path,
) -> Result<(u64, Option<String>), RestoreError> {
    let out = tools.read_archive(dump, &["--list"]).await?;
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&out.status) {
        // Killed from outside (an operator, the OOM killer): nothing is known of the archive.
        return Err(RestoreError::Failed(format!(
            "pg_restore --list of {} was killed by signal {sig}: the restore did not run; run the drill again (check the kernel log for the OOM killer)",
            dump.display()
        )));
    }
    if !out.status.success() {
        return Err(RestoreError::Unusable(format!(
            "pg_restore --list cannot read {}: {}",
            dump.display(),
            tail(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    let list = String::from_utf8_lossy(&out.stdout);
    Ok((count_table_data(&list), header_field(&list, "Format:")))
}

/// A field of the list's header (`;     Format: CUSTOM`, `;     dbname: shop`).
pub(crate) fn header_field(list: &str, field: &str) -> Option<String> {
    list.lines().filter(|l| l.starts_with(';')).find_map(|l| {
        l.trim_start_matches(';')
            .trim()
            .strip_prefix(field)
            .map(|v| v.trim().to_string())
    })
}

/// TABLE DATA lines of a `pg_restore --list` (`3373; 0 16404 TABLE DATA public users owner`).
pub(crate) fn count_table_data(list: &str) -> u64 {
    list.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| l.split_once("; "))
        .filter(|(_, rest)| {
            let mut words = rest.splitn(3, ' ');
            let _ = (words.next(), words.next());
            words.next().is_some_and(|d| d.starts_with("TABLE DATA "))
        })
        .count() as u64
}

/// ANALYZE, so the restored database plans queries like the original: every relation plain
/// `ANALYZE` would visit (the catalogs too), largest first, on `jobs` sessions side by side:
/// one session leaves every core but one idle while the RTO clock runs.
pub async fn analyze(target: &Endpoint, jobs: u32) -> Result<String, RestoreError> {
    let client = target.connect().await?;
    // Other sessions' temporary tables are skipped by ANALYZE and refused by name;
    // pg_statistic, which ANALYZE writes, it never analyzes.
    let rows = client
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relkind IN ('r', 'm', 'p') AND c.relpersistence <> 't'
                AND c.oid <> 'pg_catalog.pg_statistic'::regclass
              ORDER BY pg_relation_size(c.oid) DESC, c.oid",
            &[],
        )
        .await?;
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let n = tables.len();
    let queue = std::sync::Mutex::new(tables.into_iter());
    let next = || queue.lock().expect("queue lock").next();
    let worker = |client: Option<tokio_postgres::Client>| async {
        let client = match client {
            Some(c) => c,
            None => target.connect().await?,
        };
        while let Some(table) = next() {
            match client.batch_execute(&format!("ANALYZE {table}")).await {
                // Dropped since it was listed: nothing left to plan for.
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
                r => r?,
            }
        }
        Ok::<_, RestoreError>(())
    };
    let sessions = (jobs as usize).clamp(1, n.max(1));
    let mut workers = vec![worker(Some(client))];
    workers.extend((1..sessions).map(|_| worker(None)));
    futures_util::future::try_join_all(workers).await?;
    Ok(format!(
        "ANALYZE on {}: {n} relations, {sessions} at a time",
        target.dbname
    ))
}

/// The database name recorded in an archive's header (`pg_restore --list`).
pub async fn archive_dbname(tools: &PgTools, dump: &Path) -> Option<String> {
    let out = tools.read_archive(dump, &["--list"]).await.ok()?;
    header_field(&String::from_utf8_lossy(&out.stdout), "dbname:")
}

pub use crate::pg::{ident, literal};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parallel_foreign_key_race_is_explained_only_when_parallel() {
        let e = "pg_restore: error: could not execute query: ERROR:  there is no unique constraint matching given keys for referenced table \"pk\"";
        assert!(known_cause(e, 2).contains("-j 1"));
        assert_eq!(known_cause(e, 1), "");
        assert_eq!(known_cause("ERROR: something else", 4), "");
        let trap = "pg_restore: error: COPY failed for table \"subscriptions\": ERROR:  relation \"plans\" does not exist\nQUERY:  SELECT EXISTS (SELECT 1 FROM plans WHERE id = $1)";
        assert!(known_cause(trap, 1).contains("empty search_path"));
    }

    #[test]
    fn globals_lose_their_tablespace_statements_and_name_them() {
        let globals = "CREATE ROLE app;\nALTER ROLE app WITH NOLOGIN;\n\
CREATE TABLESPACE \"Fast \"\"Disk\"\"\" OWNER postgres LOCATION '/srv/fast';\n\
CREATE TABLESPACE slow OWNER app LOCATION '/srv/slow';\n\
ALTER TABLESPACE slow SET (random_page_cost='4');\n\
COMMENT ON TABLESPACE slow IS 'disks';\n\
GRANT ALL ON TABLESPACE slow TO app;\n\
GRANT app TO postgres;\n";
        let (kept, created) = without_tablespaces(globals);
        assert_eq!(created, ["Fast \"Disk\"", "slow"]);
        assert_eq!(
            kept,
            "CREATE ROLE app;\nALTER ROLE app WITH NOLOGIN;\nGRANT app TO postgres;\n"
        );
        let (same, none) = without_tablespaces("CREATE ROLE x;\n");
        assert_eq!((same.as_str(), none.len()), ("CREATE ROLE x;\n", 0));
    }

    #[test]
    fn table_data_entries_are_counted_from_the_list() {
        let list = ";\n; Archive created at 2026-01-01\n;     dbname: pgdrill\n\
            218; 1259 16390 TABLE public users postgres\n\
            3373; 0 16390 TABLE DATA public users postgres\n\
            3374; 0 16404 TABLE DATA \"Legacy App\" \"Orders 2024\" postgres\n\
            3375; 0 16410 MATERIALIZED VIEW DATA public totals postgres\n\
            3376; 0 0 SEQUENCE SET public users_id_seq postgres\n";
        assert_eq!(count_table_data(list), 2);
        assert_eq!(header_field(list, "dbname:").as_deref(), Some("pgdrill"));
        assert_eq!(header_field(list, "Format:"), None);
        let tar = ";\n;     Format: TAR\n;     dbname: shop\n";
        assert_eq!(header_field(tar, "Format:").as_deref(), Some("TAR"));
    }

    #[test]
    fn serial_restores_count_a_table_when_the_next_begins() {
        let mut log = VerboseLog::new(false, 3);
        assert_eq!(
            log.push("pg_restore: creating TABLE \"public.users\""),
            None
        );
        assert_eq!(
            log.push("pg_restore: processing data for table \"public.plans\""),
            None
        );
        assert_eq!(
            log.push("pg_restore: processing data for table \"public.users\""),
            Some(1)
        );
        assert_eq!(
            log.push("pg_restore: processing data for table \"public.payments\""),
            Some(2)
        );
        assert!(log.kept().is_empty(), "chatter is not kept: {}", log.kept());
    }

    #[test]
    fn parallel_restores_count_finished_items_and_never_pass_the_total() {
        let mut log = VerboseLog::new(true, 1);
        assert_eq!(
            log.push("pg_restore: processing data for table \"public.users\""),
            None
        );
        assert_eq!(
            log.push("pg_restore: finished item 3373 TABLE DATA users"),
            Some(1)
        );
        assert_eq!(
            log.push("pg_restore: finished item 3374 TABLE DATA plans"),
            None
        );
    }

    #[test]
    fn errors_and_their_continuation_lines_are_kept() {
        let mut log = VerboseLog::new(false, 1);
        log.push("pg_restore: creating TABLE \"public.t\"");
        log.push(
            "pg_restore: error: could not execute query: ERROR:  relation \"t\" already exists",
        );
        log.push("Command was: CREATE TABLE public.t (id integer);");
        assert_eq!(
            log.kept(),
            "pg_restore: error: could not execute query: ERROR:  relation \"t\" already exists\n\
             Command was: CREATE TABLE public.t (id integer);"
        );
    }
}
