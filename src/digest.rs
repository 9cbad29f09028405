//! SHA-256 of files and streams, and files written atomically. A leaf module: the backup,
//! precheck, repository, evidence and container code all hash and write through it.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Buffer size for streaming reads: large enough that hashing, not syscalls, is the cost.
pub const CHUNK: usize = 1 << 18;

/// Hex SHA-256 of bytes in memory.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An incremental SHA-256 that also counts the bytes it has seen.
#[derive(Default, Clone)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A new, empty hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no byte was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The size and hex digest.
    pub fn finish(self) -> (u64, String) {
        (self.len, hex::encode(self.inner.finalize()))
    }
}

/// Size and hex SHA-256 of a file, read once in chunks (blocking: call from
/// `spawn_blocking` or [`sha256_file`]).
pub fn sha256_file_blocking(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Size and hex SHA-256 of a file, on the blocking pool.
pub async fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || sha256_file_blocking(&p))
        .await
        .map_err(std::io::Error::other)?
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one:
/// a temporary file in the same directory, fsynced, renamed over `path`, the directory fsynced.
/// The file is readable only by its owner (0600, the temporary file's mode).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, bytes, None)
}

/// [`write_atomic`] for a file meant to be handed on (the reports and the seal of an evidence
/// bundle): it gets the mode any new file gets, 0666 less the umask (0644 under the usual
/// 022), as `std::fs::write` gives, instead of the temporary file's 0600.
pub fn write_atomic_readable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // open(2) applies the umask to the mode asked for.
    write_atomic_mode(path, bytes, Some(std::fs::Permissions::from_mode(0o666)))
}

fn write_atomic_mode(
    path: &Path,
    bytes: &[u8],
    mode: Option<std::fs::Permissions>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".pgdrill-tmp-");
    if let Some(mode) = mode {
        builder.permissions(mode);
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// fsyncs a directory, so that a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_memory_digests_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(sha256_file_blocking(&p).unwrap(), (5, sha256_hex(b"hello")));
        assert_eq!(
            sha256_hex(b"hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        write_atomic(&p, b"bye").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"bye");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    /// A file to hand on gets the mode `std::fs::write` gives; a private one stays 0600.
    #[test]
    fn readable_files_get_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        write_atomic_readable(&dir.path().join("handed-on"), b"x").unwrap();
        write_atomic(&dir.path().join("private"), b"x").unwrap();
        assert_eq!(mode("handed-on"), mode("plain"));
        assert_eq!(mode("private"), 0o600);
    }
}
