//! The application's configuration in a full drill: `config_backup` (the live files backed up
//! age-encrypted before the disaster, as the strategy's hourly config backup does), their loss
//! in the disaster, and `config_restore` (the newest backup before the disaster restored into
//! a new directory: every SHA-256, the required keys, the VPN config checked); and the
//! configuration restore of `pgdrill config restore --confirm` (`replace_live`: the same
//! checks, then the files put into the application's live directory, the replaced ones kept).

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use crate::config;
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::error::EnvError;
use crate::scope::{ConfigSource, Fault, FullPlan};

/// The live configuration the application runs with, and its backup.
pub(in crate::drill) struct ConfigSet {
    /// The directory the application reads its configuration from before the disaster.
    pub live: PathBuf,
    /// The repository the backup went into (`<out>/backup`, archive under `config/`).
    pub repo: PathBuf,
    /// The age identity that decrypts it (in the drill's private directory).
    pub identity: PathBuf,
    /// The backup's name.
    pub name: String,
    /// The files, by name.
    pub files: Vec<String>,
}

/// Where the restored configuration is, and the report's record of it.
pub(in crate::drill) struct RestoredConfig {
    /// The directory.
    pub dir: PathBuf,
    /// For report.json's `config` section.
    pub report: crate::report::full::ConfigRestored,
}

/// Phase `config_backup`: writes the sample app's configuration (or copies the user's
/// `--config-file`s) into the drill's private directory, where the application reads it, and
/// backs it up encrypted to a key made for this drill.
pub(in crate::drill) async fn backup(
    ctx: &mut Ctx,
    full: &FullPlan,
    source_url: Option<String>,
) -> Option<ConfigSet> {
    let full = full.clone();
    let work = ctx.work_dir();
    let repo = ctx.plan.out_dir.join("backup");
    let drill_id = ctx.plan.drill_id.clone();
    let secrets = (
        ctx.secrets.api_key().expose_secret().to_string(),
        ctx.secrets.vpn_peer().expose_secret().to_string(),
    );
    ctx.rec
        .step(PhaseId::ConfigBackup, async move {
            let work = work?;
            let live = work.join("config");
            mkdir_private(&live)?;
            let files = match &full.config {
                ConfigSource::Sample => {
                    let url = source_url.unwrap_or_default();
                    write_sample(&live, &url, &secrets.0, &secrets.1)?
                }
                ConfigSource::Files(paths) => copy_files(paths, &live)?,
            };
            let identity = age::x25519::Identity::generate();
            let identity_path = work.join("config-identity.txt");
            write_private(
                &identity_path,
                format!("{}\n", identity.to_string().expose_secret()).as_bytes(),
            )?;
            let req = config::BackupRequest {
                repo: repo.clone(),
                files: files.iter().map(|f| live.join(f)).collect(),
                recipients: vec![identity.to_public().to_string()],
                kind: config::Kind::Manual,
                reason: Some(format!("drill {drill_id}: the configuration before the disaster")),
                insecure_plaintext: false,
                now: chrono::Utc::now(),
            };
            let b = tokio::task::spawn_blocking(move || config::backup(&req))
                .await
                .map_err(|e| StepFail::environment(e.to_string()))??;
            let detail = format!(
                "{} ({} bytes, sha256 {}): {} file(s) ({}) age-encrypted to a key made for this drill; key names only in its manifest",
                b.archive.display(),
                b.manifest.size_bytes,
                &b.manifest.sha256[..16],
                files.len(),
                files.join(", ")
            );
            Ok((
                ConfigSet {
                    live,
                    repo,
                    identity: identity_path,
                    name: b.name,
                    files,
                },
                detail,
            ))
        })
        .await
}

/// The configuration's part of the disaster: the live files in `live` are gone. Returns
/// what was lost.
pub(in crate::drill) fn lose(live: &Path, files: &[String]) -> Result<String, EnvError> {
    std::fs::remove_dir_all(live)
        .map_err(|e| EnvError::io(format!("cannot remove {}", live.display()), e))?;
    Ok(format!(
        "the application's configuration files are gone ({})",
        files.join(", ")
    ))
}

/// Phase `config_restore`: the newest configuration backup taken before `disaster_at`,
/// restored into a new directory once its archive, its decryption, every file's SHA-256,
/// the required keys and the VPN config have passed.
pub(in crate::drill) async fn restore(
    ctx: &mut Ctx,
    full: &FullPlan,
    set: &ConfigSet,
    disaster_at: chrono::DateTime<chrono::Utc>,
) -> Option<RestoredConfig> {
    let full = full.clone();
    let faults = ctx.plan.scope.faults.clone();
    let work = ctx.work_dir();
    let repo = set.repo.clone();
    let mut identity = set.identity.clone();
    let name = set.name.clone();
    ctx.rec
        .step(PhaseId::ConfigRestore, async move {
            let work = work?;
            if faults.contains(&Fault::ConfigTamper) {
                tamper_archive(&repo, &name)?;
            }
            if faults.contains(&Fault::ConfigWrongIdentity) {
                identity = work.join("another-identity.txt");
                let other = age::x25519::Identity::generate();
                write_private(
                    &identity,
                    format!("{}\n", other.to_string().expose_secret()).as_bytes(),
                )?;
            }
            let to = work.join("config-restored");
            let req = config::RestoreRequest {
                repo,
                pick: config::Pick::At(disaster_at),
                identity: Some(identity),
                to: to.clone(),
                require: full.require.clone(),
            };
            let r = tokio::task::spawn_blocking(move || config::restore(&req))
                .await
                .map_err(|e| StepFail::environment(e.to_string()))??;
            // The sample app's VPN config must be there and parse; a user's when it has one.
            if full.config == ConfigSource::Sample
                && !r.checks.iter().any(|c| c.contains("WireGuard"))
            {
                return Err(StepFail::backup_incomplete(format!(
                    "{}: no WireGuard config among the restored files ({})",
                    r.backup,
                    r.files
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let detail = format!(
                "{} (sha256 {}) restored into {}: {}",
                r.backup,
                &r.sha256[..16],
                r.to.display(),
                r.checks.join("; ")
            );
            let report = crate::report::full::ConfigRestored {
                backup: r.backup.clone(),
                sha256: r.sha256.clone(),
                files: r.files.iter().map(|f| f.name.clone()).collect(),
                required_keys: full.require.clone(),
                checks: r.checks.clone(),
            };
            Ok((RestoredConfig { dir: to, report }, detail))
        })
        .await
}

/// What a configuration restore changed and stopped so far, for its cleanup and its report.
pub(in crate::drill) struct LiveConfig {
    /// The application, stopped by pgdrill and not started since.
    pub app_down: Option<crate::app::ExternalApp>,
    /// What the report says of the restore.
    pub info: crate::report::ConfigRestoreInfo,
}

impl LiveConfig {
    /// The restore `c` plans, before anything is changed.
    pub fn new(c: &crate::plan::ConfigRestorePlan) -> LiveConfig {
        LiveConfig {
            app_down: None,
            info: crate::report::ConfigRestoreInfo {
                backup: c.backup.clone(),
                target: c.request.to.display().to_string(),
                confirmed: c.backup.clone(),
                reason: c.reason.clone(),
                health_urls: c
                    .app
                    .as_ref()
                    .map(|a| a.health_urls.clone())
                    .unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    /// What a failure after the files were put in place adds: where they are, where the
    /// previous ones are kept.
    pub fn restored_note(&self) -> String {
        if !self.info.restored {
            return String::new();
        }
        match &self.info.previous {
            Some(p) => format!(
                ". The configuration WAS restored into {}; the previous files are kept in {p}",
                self.info.target
            ),
            None => format!(
                ". The configuration WAS restored into {} (no file was replaced)",
                self.info.target
            ),
        }
    }
}

/// Phase `precheck` of `pgdrill config restore --confirm`: the backup decrypted and checked
/// in memory before the application is stopped, so a backup that cannot be restored costs
/// no downtime; nothing is written.
pub(in crate::drill) async fn precheck_live(ctx: &mut Ctx) -> Option<()> {
    let Some(c) = ctx.plan.config_restore.clone() else {
        return crate::drill::missing(ctx, PhaseId::Precheck, "configuration restore plan").await;
    };
    let dir = c.request.to.display().to_string();
    ctx.rec
        .step(PhaseId::Precheck, async move {
            let checked = tokio::task::spawn_blocking(move || config::check(&c.request))
                .await
                .map_err(|e| StepFail::environment(e.to_string()))?
                .map_err(|e| {
                    let mut f = StepFail::from(e);
                    f.message = format!(
                        "{}; the application was not stopped and nothing in {dir} was changed",
                        f.message
                    );
                    f
                })?;
            let detail = format!(
                "{} (sha256 {}) decrypted and checked in memory: {}; nothing written",
                checked.backup,
                &checked.sha256[..16.min(checked.sha256.len())],
                checked.checks.join("; ")
            );
            Ok(((), detail))
        })
        .await
}

/// Phase `config_restore` of `pgdrill config restore --confirm` (strategy steps 2 and 3):
/// the confirmed backup decrypted and checked in memory again (every SHA-256, the required keys,
/// the VPN config); only then are the files it replaces kept in `.pgdrill_before_<time>/`
/// and the checked files renamed into the live directory, each read back.
pub(in crate::drill) async fn replace_live(ctx: &mut Ctx) -> Option<()> {
    let Some(c) = ctx.plan.config_restore.clone() else {
        return crate::drill::missing(ctx, PhaseId::ConfigRestore, "configuration restore plan")
            .await;
    };
    let dir = c.request.to.display().to_string();
    let now = chrono::Utc::now();
    let done = ctx
        .rec
        .step(PhaseId::ConfigRestore, async move {
            let to = c.request.to.clone();
            let unchanged = dir.clone();
            let (checked, replaced) = tokio::task::spawn_blocking(move || {
                let checked = config::check(&c.request).map_err(|e| {
                    let mut f = StepFail::from(e);
                    f.message = format!("{}; nothing in {unchanged} was changed", f.message);
                    f
                })?;
                let replaced = config::replace::replace(&to, &checked, now)?;
                Ok::<_, StepFail>((checked, replaced))
            })
            .await
            .map_err(|e| StepFail::environment(e.to_string()))??;
            let count = |k: config::replace::ChangeKind| {
                replaced.changes.iter().filter(|c| c.kind == k).count()
            };
            use config::replace::ChangeKind as K;
            let detail = format!(
                "{} (sha256 {}) checked: {}; into {dir}: {} changed, {} added, {} unchanged, {} other file(s) kept; {}{}",
                checked.backup,
                &checked.sha256[..16.min(checked.sha256.len())],
                checked.checks.join("; "),
                count(K::Changed),
                count(K::Added),
                count(K::Unchanged),
                count(K::Kept),
                replaced.check,
                replaced
                    .before
                    .as_ref()
                    .map(|b| format!("; the replaced files are kept in {}", b.display()))
                    .unwrap_or_default()
            );
            Ok(((checked, replaced), detail))
        })
        .await?;
    if let Some(live) = ctx.owned.config.as_mut() {
        let (checked, replaced) = done;
        live.info.restored = true;
        live.info.archive_sha256 = Some(checked.sha256.clone());
        live.info.checks = checked.checks.clone();
        live.info.checks.push(replaced.check.clone());
        live.info.files = replaced.changes;
        live.info.previous = replaced.before.map(|b| b.display().to_string());
    }
    Some(())
}

/// The configuration restore's part of the cleanup, on every path: the application, if
/// pgdrill stopped it and did not start it, started again.
pub(in crate::drill) async fn settle(live: &mut LiveConfig, notes: &mut Vec<String>) {
    if let Some(app) = live.app_down.take() {
        live.info.app_restarted_by_cleanup = super::live::start_again(&app, notes).await;
    }
}

/// The sample app's configuration: `.env` (its three required keys) and a WireGuard file.
fn write_sample(
    dir: &Path,
    database_url: &str,
    api_key: &str,
    vpn_peer: &str,
) -> Result<Vec<String>, StepFail> {
    let env = format!(
        "# sample-app configuration (written by the drill)\nDATABASE_URL=\"{database_url}\"\nAPI_KEY=\"{api_key}\"\nVPN_PEER=\"{vpn_peer}\"\n"
    );
    write_private(&dir.join(".env"), env.as_bytes())?;
    // WireGuard keys are 32 random bytes in standard base64.
    let key = || {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    };
    let wg = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.2/32\n\n[Peer]\n# {vpn_peer}\nPublicKey = {}\nAllowedIPs = 10.77.0.0/24\nEndpoint = vpn.drill.invalid:51820\n",
        key(),
        key()
    );
    write_private(&dir.join("wg0.conf"), wg.as_bytes())?;
    Ok(vec![".env".into(), "wg0.conf".into()])
}

/// Copies the user's files into `dir` by name; the originals are only read.
fn copy_files(paths: &[PathBuf], dir: &Path) -> Result<Vec<String>, StepFail> {
    let mut names: Vec<String> = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.is_empty() || names.contains(&name) {
            return Err(StepFail::environment(format!(
                    "--config-file {}: two configuration files named {name:?}; the restore puts them in one directory by name",
                    p.display()
                ),
            ));
        }
        let bytes = std::fs::read(p)
            .map_err(|e| EnvError::io(format!("cannot read --config-file {}", p.display()), e))?;
        write_private(&dir.join(&name), &bytes)?;
        names.push(name);
    }
    Ok(names)
}

/// Test hook (`--fault config-tamper`): one byte of the archive changed after the backup.
fn tamper_archive(repo: &Path, name: &str) -> Result<(), StepFail> {
    let dir = config::config_dir(repo);
    let archive = std::fs::read_dir(&dir)
        .map_err(|e| EnvError::io(format!("cannot list {}", dir.display()), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            n.starts_with(name) && !n.ends_with(".manifest.json")
        })
        .ok_or_else(|| StepFail::environment(format!("no archive of {name}")))?;
    let mut bytes = std::fs::read(&archive)
        .map_err(|e| EnvError::io(format!("cannot read {}", archive.display()), e))?;
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&archive, bytes)
        .map_err(|e| EnvError::io(format!("cannot write {}", archive.display()), e))?;
    Ok(())
}

fn mkdir_private(dir: &Path) -> Result<(), EnvError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| EnvError::io(format!("cannot create {}", dir.display()), e))
}

/// Writes a file only its owner can read: it holds secrets.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EnvError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EnvError::io(format!("cannot write {}", path.display()), e))?;
    f.write_all(bytes)
        .map_err(|e| EnvError::io(format!("cannot write {}", path.display()), e))
}
