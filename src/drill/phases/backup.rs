//! Phase `backup` (pg_dump in an exported snapshot with S0, the globals, the manifest), or
//! the adoption of an existing backup file, which has no phase of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backup::{self, Manifest, ManifestError};
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::rpo::Clock;

/// The backup the restore uses: taken by the drill or found on disk.
#[derive(Debug, Clone)]
pub(in crate::drill) struct BackupSet {
    /// The dump.
    pub dump: PathBuf,
    /// The roles file beside it (or none).
    pub globals: Option<PathBuf>,
    /// The manifest, when there is a readable one.
    pub manifest: Option<Manifest>,
    /// Where the manifest is.
    pub manifest_path: Option<PathBuf>,
    /// Why the manifest that is there cannot be read: the precheck fails on it.
    pub manifest_error: Option<ManifestError>,
    /// How long taking it took (0 for a file that already existed).
    pub duration_ms: u64,
}

/// The backups a drill took on its schedule (one, unless `--backups`).
#[derive(Debug, Clone)]
pub(in crate::drill) struct Backups {
    /// The newest backup: the one a restore after the disaster uses.
    pub newest: BackupSet,
    /// Those taken before it, in the order taken.
    pub earlier: Vec<BackupSet>,
    /// When the first one started: the schedule's origin.
    pub first_started: Instant,
}

impl Backups {
    /// How many backups the drill took.
    pub fn count(&self) -> usize {
        self.earlier.len() + 1
    }

    /// The longest backup of the drill (the schedule's worst case adds it to the interval).
    pub fn longest(&self) -> Duration {
        let each = self
            .earlier
            .iter()
            .chain([&self.newest])
            .map(|s| s.duration_ms);
        Duration::from_millis(each.max().unwrap_or(0))
    }
}

/// Backs up database `db` of the source (a live DSN read-only, or the drill's own server)
/// into `--out/backup/`, `--backups` times on the `--backup-every` schedule of `clock`.
pub(in crate::drill) async fn run(ctx: &mut Ctx, db: &str, clock: &Clock) -> Option<Backups> {
    let source = ctx.source_endpoint(db);
    // A live source is dumped with this machine's programs; a drill's own server with its own.
    let tools = match (&ctx.owned.source, &ctx.owned.backend) {
        (Some(t), _) => t.tools(),
        (None, Some(b)) => b.tools().clone(),
        (None, None) => {
            crate::drill::missing(ctx, PhaseId::Backup, "backend").await;
            return None;
        }
    };
    let dir = ctx.plan.out_dir.join("backup");
    let count = ctx.plan.scope.cadence.backups;
    let every = ctx.plan.scope.cadence.every;
    let stall = ctx.plan.stall_timeout;
    let progress = ctx.rec.progress(PhaseId::Backup);
    ctx.rec
        .step(PhaseId::Backup, async move {
            let source = source.ok_or_else(|| StepFail::internal("no source to back up"))?;
            let first_started = Instant::now();
            let mut sets = Vec::new();
            let mut lines = Vec::new();
            for n in 0..count {
                // Backups start on the schedule, as a timer would start them.
                tokio::time::sleep(clock.until_backup(n, first_started.elapsed())).await;
                let t = Instant::now();
                let set = backup::take(&source, &tools, &dir, chrono::Utc::now(), stall, &progress)
                    .await?;
                let m = &set.manifest;
                lines.push(format!(
                    "{} ({} bytes, sha256 {}), roles in {}, snapshot S0 of {} tables in the dump's MVCC snapshot",
                    m.file,
                    m.size_bytes,
                    &m.sha256[..16],
                    m.globals.as_ref().map(|g| g.file.as_str()).unwrap_or("-"),
                    m.snapshot.tables.len()
                ));
                sets.push(BackupSet {
                    dump: set.dump,
                    globals: set.globals,
                    manifest: Some(set.manifest),
                    manifest_path: Some(set.manifest_path),
                    manifest_error: None,
                    duration_ms: t.elapsed().as_millis() as u64,
                });
            }
            let Some(newest) = sets.pop() else {
                return Err(StepFail::backup_failed(
                    "the schedule took no backup (--backups 0): there is nothing to restore",
                ));
            };
            let detail = match lines.as_slice() {
                [one] => one.clone(),
                many => format!(
                    "{} backups every {}: {}",
                    many.len(),
                    crate::duration::human(every),
                    many.iter()
                        .enumerate()
                        .map(|(i, l)| format!("{}. {l}", i + 1))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            Ok((
                Backups {
                    newest,
                    earlier: sets,
                    first_started,
                },
                detail,
            ))
        })
        .await
}

/// An existing backup file with whatever sits beside it (manifest, globals). A missing
/// manifest goes into the notes, and verification falls back to the restored data's own
/// consistency checks; one that is there but unreadable is kept for the precheck to fail on.
pub(in crate::drill) fn adopt(ctx: &mut Ctx, path: PathBuf) -> BackupSet {
    let (set, notes) = adopt_file(path);
    ctx.notes.extend(notes);
    set
}

/// [`adopt`] without a drill: the set, and the notes on what is missing or unreadable. The
/// `manifest_unreadable` negative control adopts its damaged copy with this same code.
pub(in crate::drill) fn adopt_file(path: PathBuf) -> (BackupSet, Vec<String>) {
    let mpath = backup::manifest_path(&path);
    let mut notes = Vec::new();
    let mut set = BackupSet {
        dump: path.clone(),
        globals: None,
        manifest: None,
        manifest_path: None,
        manifest_error: None,
        duration_ms: 0,
    };
    match backup::read_manifest_if_present(&mpath) {
        Ok(Some(m)) => {
            set.manifest = Some(m);
            set.manifest_path = Some(mpath);
        }
        Ok(None) => notes.push(format!(
            "no manifest beside {} (expected {}): the checksum cannot be compared and the restored data is verified by its own consistency checks only",
            path.display(),
            mpath.display()
        )),
        Err(e) => {
            set.manifest_path = Some(mpath);
            set.manifest_error = Some(e);
        }
    }
    let g = backup::globals_path(&path);
    if g.exists() {
        set.globals = Some(g);
    }
    (set, notes)
}

/// Phase `pick_backup` (`--repo`): the backup the repository's `--pick` rule chooses, with
/// the reason in the report's notes; a repository without a backup to drill fails the drill
/// (`backup_unusable`), which is what a restore tonight would find.
pub(in crate::drill) async fn pick(ctx: &mut Ctx, repo: &crate::plan::RepoPick) -> Option<PathBuf> {
    let (dump, note) = ctx
        .rec
        .step(PhaseId::PickBackup, async {
            let (dump, note) = crate::regime::pick_backup(
                &repo.dir,
                repo.pick,
                repo.window,
                repo.at.unwrap_or_else(chrono::Utc::now),
            )?;
            Ok(((dump, note.clone()), note))
        })
        .await?;
    ctx.notes.push(note);
    Some(dump)
}
