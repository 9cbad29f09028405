//! Configuration backups: `.env`, API key and VPN files in one tar archive encrypted to age
//! recipients, a plaintext manifest with key names only, and a restore that checks everything
//! before anything appears in the target directory.

pub mod keys;
pub mod replace;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::{sha256_hex, sync_dir, write_atomic};
pub use keys::Format;

/// Why a configuration backup or restore did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No recipient and no `--insecure-plaintext`.
    #[error("refusing to write configuration in clear text: give --recipient AGE_PUBLIC_KEY (`age-keygen -y identity.txt` prints it), or --insecure-plaintext to accept an unencrypted archive")]
    NoRecipient,
    /// A recipient is not an age X25519 public key.
    #[error("--recipient {0}: not an age public key (age1…); `age-keygen -y identity.txt` prints the public key of an identity")]
    BadRecipient(String),
    /// A file to back up cannot be read or parsed.
    #[error("--file {path}: {reason}")]
    BadFile {
        /// The path as given.
        path: String,
        /// Why (never a value from the file).
        reason: String,
    },
    /// The identity file cannot be read or holds no identity.
    #[error("--identity {path}: {reason}; give an identity file as written by age-keygen")]
    BadIdentity {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The archive was encrypted to other recipients.
    #[error("wrong identity: {backup} was not encrypted to any key in {identity}; use the identity whose public key is in the manifest's recipients ({recipients})")]
    WrongIdentity {
        /// The backup name.
        backup: String,
        /// The identity file.
        identity: String,
        /// The manifest's recipients.
        recipients: String,
    },
    /// The archive or manifest does not match: changed, truncated or corrupt.
    #[error("{backup} is damaged or tampered with: {reason}")]
    Tampered {
        /// The backup name.
        backup: String,
        /// What did not match.
        reason: String,
    },
    /// A `--require` key is in none of the restored files.
    #[error("required key {key} is missing from the restored files of {backup}")]
    MissingKey {
        /// The key name.
        key: String,
        /// The backup name.
        backup: String,
    },
    /// A `--require` key is present but its value is empty.
    #[error("required key {key} is empty in {file} of {backup}")]
    EmptyKey {
        /// The key name.
        key: String,
        /// The file holding it.
        file: String,
        /// The backup name.
        backup: String,
    },
    /// A restored WireGuard config does not parse.
    #[error("{file} of {backup} is not a usable WireGuard config: {reason}")]
    WireGuard {
        /// The file.
        file: String,
        /// The backup.
        backup: String,
        /// What is wrong.
        reason: String,
    },
    /// `--backup NAME` names no backup in the repo.
    #[error("--backup {name}: no such config backup in {dir}; available: {available}")]
    UnknownBackup {
        /// The name given.
        name: String,
        /// The config directory.
        dir: String,
        /// The names there.
        available: String,
    },
    /// No backup at all, or none at or before `--at`.
    #[error("no config backup in {dir}{when}; take one with `pgdrill config backup`")]
    NoBackup {
        /// The config directory.
        dir: String,
        /// ` at or before TIME`, or empty.
        when: String,
    },
    /// A file of the backup is a directory (or another non-file) in the live directory.
    #[error("{0} is not a regular file; the restore replaces files only, move it away first")]
    NotAFile(String),
    /// `--to` exists and is not empty.
    #[error("--to {0}: exists and is not empty; restore into a new directory")]
    TargetNotEmpty(String),
    /// A backup of this name exists already (two backups in one second).
    #[error("{0} exists already; config backups are named by the second, take the next one a second later")]
    Exists(String),
    /// The machine: reading or writing the repo or the target failed.
    #[error("{context}: {source}")]
    Io {
        /// What pgdrill was doing.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ConfigError {
    let context = context.to_string();
    move |source| ConfigError::Io { context, source }
}

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// By the timer.
    Scheduled,
    /// By hand, e.g. before a deployment.
    Manual,
}

/// The plaintext manifest beside an archive (`config_…manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version, 1.
    pub manifest_version: u32,
    /// The archive's file name.
    pub file: String,
    /// The archive's size.
    pub size_bytes: u64,
    /// SHA-256 of the archive file.
    pub sha256: String,
    /// When the backup was taken.
    pub created_at: DateTime<Utc>,
    /// Scheduled or manual.
    pub kind: Kind,
    /// Why, for manual backups.
    pub reason: Option<String>,
    /// Whether the archive is age-encrypted.
    pub encrypted: bool,
    /// The age public keys it is encrypted to.
    pub recipients: Vec<String>,
    /// The files inside.
    pub files: Vec<FileEntry>,
}

/// One file of a config backup: never a value, only key names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// The path as given to `config backup`.
    pub path: String,
    /// Its name inside the archive and in the restore directory.
    pub name: String,
    /// Its size.
    pub size_bytes: u64,
    /// Its permission bits, octal (`0600`).
    pub mode: String,
    /// SHA-256 of its plaintext.
    pub sha256: String,
    /// How its keys were read.
    pub format: Format,
    /// Its key names.
    pub keys: Vec<String>,
}

/// What `config backup` is asked to do.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The repository root (`<repo>/config/` is written).
    pub repo: PathBuf,
    /// The files to back up.
    pub files: Vec<PathBuf>,
    /// age X25519 public keys.
    pub recipients: Vec<String>,
    /// Scheduled or manual.
    pub kind: Kind,
    /// Why.
    pub reason: Option<String>,
    /// Accept an unencrypted archive.
    pub insecure_plaintext: bool,
    /// The backup's time (its name).
    pub now: DateTime<Utc>,
}

/// A written config backup.
#[derive(Debug, Clone)]
pub struct ConfigBackup {
    /// `config_YYYYmmdd_HHMMSS`.
    pub name: String,
    /// The archive.
    pub archive: PathBuf,
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// Its content.
    pub manifest: Manifest,
}

/// Which backup to restore.
#[derive(Debug, Clone)]
pub enum Pick {
    /// The newest.
    Newest,
    /// By name (`config_…`, with or without suffix).
    Name(String),
    /// The newest at or before a moment.
    At(DateTime<Utc>),
}

/// What `config restore` is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The repository root.
    pub repo: PathBuf,
    /// Which backup.
    pub pick: Pick,
    /// An age identity file.
    pub identity: Option<PathBuf>,
    /// The directory to create with the files.
    pub to: PathBuf,
    /// Keys that must be present and non-empty.
    pub require: Vec<String>,
}

/// What a restore put where, and what it checked.
#[derive(Debug, Clone)]
pub struct ConfigRestore {
    /// The backup restored.
    pub backup: String,
    /// SHA-256 of its archive.
    pub sha256: String,
    /// The directory written.
    pub to: PathBuf,
    /// The files restored.
    pub files: Vec<FileEntry>,
    /// Every check made, in words.
    pub checks: Vec<String>,
}

/// The config directory of a repo.
pub fn config_dir(repo: &Path) -> PathBuf {
    repo.join("config")
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// Takes a config backup: reads, checks, archives, encrypts, writes archive then manifest.
pub fn backup(req: &BackupRequest) -> Result<ConfigBackup, ConfigError> {
    let recipients = req
        .recipients
        .iter()
        .map(|r| {
            r.trim()
                .parse::<age::x25519::Recipient>()
                .map_err(|_| ConfigError::BadRecipient(r.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if recipients.is_empty() && !req.insecure_plaintext {
        return Err(ConfigError::NoRecipient);
    }
    let mut entries = Vec::new();
    let mut tar = tar::Builder::new(Vec::new());
    for path in &req.files {
        let shown = path.display().to_string();
        let bad = |reason: String| ConfigError::BadFile {
            path: shown.clone(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("has no file name in UTF-8".into()))?
            .to_string();
        if entries.iter().any(|e: &FileEntry| e.name == name) {
            return Err(bad(format!(
                "a second file named {name}; the archive keeps files by name, so back them up separately"
            )));
        }
        let format = keys::detect(&name, &bytes);
        let found = keys::keys(&name, format, &bytes).map_err(bad)?;
        if format == Format::Ini {
            keys::check_wireguard(&bytes)
                .map_err(|r| bad(format!("not a usable WireGuard config: {r}")))?;
        }
        let mode = mode_of(&meta);
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append_data(&mut header, &name, &bytes[..])
            .map_err(io("building the archive"))?;
        entries.push(FileEntry {
            path: shown,
            name,
            size_bytes: bytes.len() as u64,
            mode: format!("{mode:04o}"),
            sha256: sha256_hex(&bytes),
            format,
            keys: found.into_iter().map(|k| k.name).collect(),
        });
    }
    let plain = tar.into_inner().map_err(io("building the archive"))?;
    let encrypted = !recipients.is_empty();
    let archive = if encrypted {
        let enc =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| ConfigError::Io {
                    context: "age encryption".into(),
                    source: std::io::Error::other(e.to_string()),
                })?;
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).map_err(io("age encryption"))?;
        w.write_all(&plain).map_err(io("age encryption"))?;
        w.finish().map_err(io("age encryption"))?;
        out
    } else {
        plain
    };
    let dir = config_dir(&req.repo);
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let name = format!("config_{}", req.now.format("%Y%m%d_%H%M%S"));
    let file = format!("{name}{}", if encrypted { ".tar.age" } else { ".tar" });
    let archive_path = dir.join(&file);
    let manifest_path = dir.join(format!("{name}.manifest.json"));
    if archive_path.exists() || manifest_path.exists() {
        return Err(ConfigError::Exists(manifest_path.display().to_string()));
    }
    // A temp file hard-linked to the final name: complete or absent, and never clobbering a
    // backup another run wrote in the same second.
    let tmp = tempfile::Builder::new()
        .prefix(".config_tmp_")
        .tempfile_in(&dir)
        .map_err(io(format!("writing in {}", dir.display())))?;
    let context = format!("writing {}", archive_path.display());
    tmp.as_file().write_all(&archive).map_err(io(&context))?;
    tmp.as_file().sync_all().map_err(io(&context))?;
    std::fs::hard_link(tmp.path(), &archive_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ConfigError::Exists(archive_path.display().to_string())
        } else {
            io(&context)(e)
        }
    })?;
    drop(tmp);
    let manifest = Manifest {
        manifest_version: 1,
        file,
        size_bytes: archive.len() as u64,
        sha256: sha256_hex(&archive),
        created_at: req.now,
        kind: req.kind,
        reason: req.reason.clone(),
        encrypted,
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        files: entries,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    write_atomic(&manifest_path, &json)
        .map_err(io(format!("writing {}", manifest_path.display())))?;
    sync_dir(&dir).map_err(io(format!("syncing {}", dir.display())))?;
    Ok(ConfigBackup {
        name,
        archive: archive_path,
        manifest_path,
        manifest,
    })
}

/// The backups in a repo's config directory, oldest first: `(name, time)` from the manifests' names.
pub fn list(repo: &Path) -> Result<Vec<(String, DateTime<Utc>)>, ConfigError> {
    let dir = config_dir(repo);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(name) = n.strip_suffix(".manifest.json") else {
            continue;
        };
        let Some(stamp) = name.strip_prefix("config_") else {
            continue;
        };
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d_%H%M%S") {
            out.push((name.to_string(), t.and_utc()));
        }
    }
    out.sort();
    Ok(out)
}

fn pick(repo: &Path, pick: &Pick) -> Result<String, ConfigError> {
    let all = list(repo)?;
    let dir = config_dir(repo).display().to_string();
    let chosen = match pick {
        Pick::Newest => all.last(),
        Pick::At(at) => all.iter().rev().find(|(_, t)| t <= at),
        Pick::Name(n) => {
            let base = n
                .trim_end_matches(".manifest.json")
                .trim_end_matches(".age")
                .trim_end_matches(".tar");
            return all
                .iter()
                .find(|(name, _)| name == base)
                .map(|(name, _)| name.clone())
                .ok_or_else(|| ConfigError::UnknownBackup {
                    name: n.clone(),
                    dir,
                    available: if all.is_empty() {
                        "none".into()
                    } else {
                        all.iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                });
        }
    };
    chosen
        .map(|(n, _)| n.clone())
        .ok_or_else(|| ConfigError::NoBackup {
            dir,
            when: match pick {
                Pick::At(at) => format!(" at or before {}", at.to_rfc3339()),
                _ => String::new(),
            },
        })
}

fn decrypt(
    name: &str,
    manifest: &Manifest,
    archive: &[u8],
    identity: Option<&Path>,
) -> Result<Vec<u8>, ConfigError> {
    let tampered = |reason: String| ConfigError::Tampered {
        backup: name.to_string(),
        reason,
    };
    let Some(identity) = identity else {
        return Err(ConfigError::BadIdentity {
            path: "(none)".into(),
            reason: format!("{name} is encrypted and needs one"),
        });
    };
    let shown = identity.display().to_string();
    let bad_identity = |reason: String| ConfigError::BadIdentity {
        path: shown.clone(),
        reason,
    };
    let text =
        std::fs::read(identity).map_err(|e| bad_identity(format!("cannot read it ({e})")))?;
    let ids = age::IdentityFile::from_buffer(&text[..])
        .map_err(|_| bad_identity("not an age identity file".into()))?
        .into_identities()
        .map_err(|_| bad_identity("not an age identity file".into()))?;
    if ids.is_empty() {
        return Err(bad_identity("holds no identity".into()));
    }
    let dec = age::Decryptor::new_buffered(archive)
        .map_err(|e| tampered(format!("not a readable age file ({e})")))?;
    let mut reader = dec
        .decrypt(ids.iter().map(|i| i.as_ref()))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => ConfigError::WrongIdentity {
                backup: name.to_string(),
                identity: shown.clone(),
                recipients: manifest.recipients.join(", "),
            },
            e => tampered(format!("age could not decrypt it ({e})")),
        })?;
    let mut plain = Vec::new();
    reader
        .read_to_end(&mut plain)
        .map_err(|e| tampered(format!("the encrypted stream does not authenticate ({e})")))?;
    Ok(plain)
}

/// Restores a config backup into a new directory once every check passed.
pub fn restore(req: &RestoreRequest) -> Result<ConfigRestore, ConfigError> {
    let to_shown = req.to.display().to_string();
    if let Ok(mut rd) = std::fs::read_dir(&req.to) {
        if rd.next().is_some() {
            return Err(ConfigError::TargetNotEmpty(to_shown));
        }
    } else if req.to.exists() {
        return Err(ConfigError::TargetNotEmpty(to_shown));
    }
    let checked = check(req)?;
    write_all(&req.to, &checked.files)?;
    Ok(ConfigRestore {
        backup: checked.backup,
        sha256: checked.sha256,
        to: req.to.clone(),
        files: checked.files.into_iter().map(|(f, _)| f).collect(),
        checks: checked.checks,
    })
}

/// The backup `pick` names in `repo`: its name (`config_…`).
pub fn pick_name(repo: &Path, which: &Pick) -> Result<String, ConfigError> {
    pick(repo, which)
}

/// A backup's manifest as written beside its archive (nothing is decrypted).
pub fn read_manifest(repo: &Path, name: &str) -> Result<Manifest, ConfigError> {
    let path = config_dir(repo).join(format!("{name}.manifest.json"));
    let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| ConfigError::Tampered {
        backup: name.to_string(),
        reason: format!("its manifest is not valid ({e})"),
    })
}

/// A backup decrypted and checked in memory, not yet written anywhere.
pub struct Checked {
    /// The backup's name.
    pub backup: String,
    /// SHA-256 of its archive.
    pub sha256: String,
    /// Every check made, in words.
    pub checks: Vec<String>,
    /// The files and their plaintext: private, so that no caller prints a value.
    files: Vec<(FileEntry, Vec<u8>)>,
}

impl Checked {
    /// The files' manifest entries (names, modes, SHA-256; never a value).
    pub fn files(&self) -> Vec<FileEntry> {
        self.files.iter().map(|(f, _)| f.clone()).collect()
    }
}

impl std::fmt::Debug for Checked {
    // The plaintext stays out of any debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("backup", &self.backup)
            .field("files", &self.files().len())
            .finish()
    }
}

/// Picks, reads, decrypts and checks the backup `req` names (every SHA-256, the required
/// keys, the VPN config), in memory: nothing is written and `req.to` is not read.
pub fn check(req: &RestoreRequest) -> Result<Checked, ConfigError> {
    let name = pick(&req.repo, &req.pick)?;
    let dir = config_dir(&req.repo);
    let tampered = |reason: String| ConfigError::Tampered {
        backup: name.clone(),
        reason,
    };
    let manifest_path = dir.join(format!("{name}.manifest.json"));
    let mbytes = std::fs::read(&manifest_path)
        .map_err(io(format!("reading {}", manifest_path.display())))?;
    let manifest: Manifest = serde_json::from_slice(&mbytes)
        .map_err(|e| tampered(format!("its manifest is not valid ({e})")))?;
    let mut checks = Vec::new();
    let archive_path = dir.join(&manifest.file);
    if manifest.file.contains('/') || !manifest.file.starts_with(&name) {
        return Err(tampered(format!(
            "its manifest names the archive {}",
            manifest.file
        )));
    }
    let archive =
        std::fs::read(&archive_path).map_err(io(format!("reading {}", archive_path.display())))?;
    let sha = sha256_hex(&archive);
    if sha != manifest.sha256 || archive.len() as u64 != manifest.size_bytes {
        return Err(tampered(format!(
            "{} has SHA-256 {sha} ({} bytes), the manifest says {} ({} bytes)",
            manifest.file,
            archive.len(),
            manifest.sha256,
            manifest.size_bytes
        )));
    }
    checks.push(format!(
        "archive {} SHA-256 matches the manifest",
        manifest.file
    ));
    let plain = if manifest.encrypted {
        let p = decrypt(&name, &manifest, &archive, req.identity.as_deref())?;
        checks.push("decrypted and authenticated with the identity".into());
        p
    } else {
        archive
    };
    let mut files: Vec<(FileEntry, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(&plain[..]);
    let entries = ar
        .entries()
        .map_err(|e| tampered(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| tampered(format!("a tar entry is unreadable ({e})")))?;
        let ename = entry
            .path()
            .map_err(|e| tampered(format!("a tar entry has a bad name ({e})")))?
            .to_string_lossy()
            .to_string();
        let Some(fe) = manifest
            .files
            .iter()
            .find(|f| f.name == ename && !ename.contains('/') && ename != "..")
        else {
            return Err(tampered(format!(
                "the archive holds {ename}, which the manifest does not list"
            )));
        };
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| tampered(format!("{ename} is unreadable ({e})")))?;
        if sha256_hex(&bytes) != fe.sha256 {
            return Err(tampered(format!(
                "{ename}'s SHA-256 does not match the manifest"
            )));
        }
        files.push((fe.clone(), bytes));
    }
    for fe in &manifest.files {
        if !files.iter().any(|(f, _)| f.name == fe.name) {
            return Err(tampered(format!(
                "{} is listed in the manifest but not in the archive",
                fe.name
            )));
        }
    }
    checks.push(format!("{} files' SHA-256 match the manifest", files.len()));
    let mut all_keys: Vec<(String, keys::Key)> = Vec::new();
    for (fe, bytes) in &files {
        for k in keys::keys(&fe.name, fe.format, bytes)
            .map_err(|r| tampered(format!("{}: {r}", fe.name)))?
        {
            all_keys.push((fe.name.clone(), k));
        }
        if fe.format == Format::Ini {
            match keys::check_wireguard(bytes) {
                Ok(true) => checks.push(format!("{} parses as a WireGuard config", fe.name)),
                Ok(false) => {}
                Err(reason) => {
                    return Err(ConfigError::WireGuard {
                        file: fe.name.clone(),
                        backup: name.clone(),
                        reason,
                    })
                }
            }
        }
    }
    for key in &req.require {
        let found: Vec<_> = all_keys
            .iter()
            .filter(|(_, k)| {
                &k.name == key || k.name.rsplit_once('.').is_some_and(|(_, n)| n == key)
            })
            .collect();
        if found.is_empty() {
            return Err(ConfigError::MissingKey {
                key: key.clone(),
                backup: name.clone(),
            });
        }
        if let Some((file, _)) = found.iter().find(|(_, k)| !k.non_empty) {
            return Err(ConfigError::EmptyKey {
                key: key.clone(),
                file: file.clone(),
                backup: name.clone(),
            });
        }
        checks.push(format!("required key {key} is present and non-empty"));
    }
    Ok(Checked {
        backup: name,
        sha256: sha,
        checks,
        files,
    })
}

/// Writes the files into a temp dir beside `to`, then renames it into place.
fn write_all(to: &Path, files: &[(FileEntry, Vec<u8>)]) -> Result<(), ConfigError> {
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".pgdrill-config-restore-")
        .tempdir_in(&parent)
        .map_err(io(format!("writing in {}", parent.display())))?;
    for (fe, bytes) in files {
        let ctx = format!("writing {}", to.join(&fe.name).display());
        write_restored(&tmp.path().join(&fe.name), fe, bytes).map_err(io(&ctx))?;
    }
    sync_dir(tmp.path()).map_err(io("syncing the restore directory"))?;
    if to.exists() {
        std::fs::remove_dir(to).map_err(io(format!("replacing the empty {}", to.display())))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, to).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        io(format!("moving the restored files into {}", to.display()))(e)
    })?;
    sync_dir(&parent).map_err(io(format!("syncing {}", parent.display())))?;
    Ok(())
}

/// A restored file written new at `path` (never over one that exists), in its backed-up mode
/// and synced: the one way a checked file reaches the disk.
pub(crate) fn write_restored(path: &Path, fe: &FileEntry, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = u32::from_str_radix(&fe.mode, 8).unwrap_or(0o600);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    // Set after writing: the umask would otherwise narrow the mode given to open.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.sync_all()
}
