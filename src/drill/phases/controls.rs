//! Phase `negative_controls` (`--negative-controls`): after the real verification, the drill
//! damages copies on purpose (a clone of the restored database, a streamed view of the dump,
//! a half-written copy of the manifest, a backup dated past the RPO) and runs its own checks on
//! them, the same functions the real phases use. Each check must fail with the right class;
//! one that passes a damaged copy could pass a damaged backup, and fails the drill
//! (`detection_failed`). The real restored database and the real backup are never touched.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::backup::{self, BackupSet};
use super::verify;
use crate::drill::{Ctx, PhaseId, StepFail};
use crate::env::{Endpoint, PgTools};
use crate::error::EnvError;
use crate::plan::NegativeControls;
use crate::progress::Progress;
use crate::report::vocab::{Control, ControlOutcome};
use crate::report::{ControlResult, Detection, FailureClass};
use crate::snapshot::{CompareOptions, RelationKind, Snapshot, TableSnapshot};

/// The controls `mode` runs, in order (`wrong_app_version` only in a `full` drill). `auto`
/// keeps those whose cost does not grow with the data (a streamed view cut at half that the
/// manifest's size refuses at once, a copy of the manifest, a date, a version): a weekly drill
/// at real size pays nothing for them. The clones of the restored database (a copy of all its
/// files and a second snapshot) and the flipped byte (a second full read of the dump, for its
/// SHA-256) are `all` only.
pub(in crate::drill) fn selected(mode: NegativeControls, full: bool) -> Vec<Control> {
    use Control as C;
    let every = [
        C::RowLost,
        C::ValueChanged,
        C::ByteFlipped,
        C::Truncated,
        C::ManifestUnreadable,
        C::StaleBackup,
        C::WrongAppVersion,
    ]
    .into_iter()
    .filter(|c| full || *c != C::WrongAppVersion);
    match mode {
        NegativeControls::None => Vec::new(),
        NegativeControls::All => every.collect(),
        NegativeControls::Auto => every.filter(|c| cheap(*c)).collect(),
    }
}

/// Whether `auto` runs `c` (see [`selected`]).
fn cheap(c: Control) -> bool {
    !matches!(
        c,
        Control::RowLost | Control::ValueChanged | Control::ByteFlipped
    )
}

/// What the controls work on: the real backup and the restored database, read only.
pub(in crate::drill) struct Inputs<'a> {
    /// The backup the drill restored.
    pub set: &'a BackupSet,
    /// The restore server's superuser endpoint.
    pub server: Endpoint,
    /// The restored database (cloned, never written).
    pub database: String,
    /// The server's client programs.
    pub tools: PgTools,
    /// S1, when the real snapshot was taken.
    pub s1: Option<&'a Snapshot>,
    /// The options the real comparison ran with.
    pub options: CompareOptions,
    /// The code rollback (full scope), when it ran.
    pub rollback: Option<&'a crate::report::full::Rollback>,
}

/// Runs the controls of `mode`: the detection section, with the controls that ran before any
/// that could not (whose environment failure is the phase's).
pub(in crate::drill) async fn run(
    ctx: &mut Ctx,
    mode: NegativeControls,
    inputs: Inputs<'_>,
) -> Detection {
    let strict = ctx.plan.strict_schema;
    let blind = ctx
        .plan
        .scope
        .faults
        .contains(&crate::scope::Fault::BlindCompare);
    let rpo = ctx.plan.scope.objective;
    // The controls' copies get a directory of their own, gone when the phase ends: the
    // drill's private directory would be made for them alone and kept by `--keep`.
    let work = scratch(&ctx.plan.drill_id);
    let progress = ctx.rec.progress(PhaseId::NegativeControls);
    let mut results: Vec<ControlResult> = Vec::new();
    let list = selected(mode, ctx.plan.full().is_some());
    let outcome = ctx
        .rec
        .step(PhaseId::NegativeControls, async {
            let work = work?;
            let compare = CompareRun {
                set: inputs.set,
                options: inputs.options,
                strict,
                blind,
            };
            for c in list {
                let t = Instant::now();
                let mut r = match c {
                    Control::RowLost | Control::ValueChanged => {
                        data_control(c, &inputs, &compare, &progress).await?
                    }
                    Control::ByteFlipped => byte_flipped(&inputs, &progress).await?,
                    Control::Truncated => truncated(&inputs, &progress).await?,
                    Control::ManifestUnreadable => {
                        manifest_unreadable(&inputs, work.path(), &progress).await?
                    }
                    Control::StaleBackup => stale_backup(inputs.set, rpo),
                    Control::WrongAppVersion => wrong_app_version(inputs.rollback),
                };
                r.duration_ms = t.elapsed().as_millis() as u64;
                results.push(r);
            }
            verdict(&results).map(|d| ((), d))
        })
        .await;
    let note = outcome
        .is_none()
        .then(|| "the negative controls stopped early: see phase negative_controls".to_string());
    Detection::of(mode, results, note)
}

/// A directory for the controls' copies, marked as drill `id`'s so that `pgdrill clean`
/// finds it after a `kill -9`.
fn scratch(id: &str) -> Result<tempfile::TempDir, StepFail> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pgdrill-{id}-controls-"))
        .tempdir()
        .map_err(|e| EnvError::io("cannot create the negative controls' directory", e))?;
    crate::env::leftovers::mark(dir.path(), id)?;
    Ok(dir)
}

/// The phase's detail when every control that ran was detected, or `detection_failed`.
fn verdict(results: &[ControlResult]) -> Result<String, StepFail> {
    let missed: Vec<String> = results
        .iter()
        .filter(|r| r.outcome == ControlOutcome::Missed)
        .map(|r| {
            format!(
                "{} (expected {}, got {}): {}",
                r.control,
                r.expected,
                r.produced.map_or("a pass".to_string(), |c| c.to_string()),
                first_line(&r.detail)
            )
        })
        .collect();
    let run = results
        .iter()
        .filter(|r| r.outcome != ControlOutcome::NotApplicable)
        .count();
    if !missed.is_empty() {
        return Err(StepFail::new(
            FailureClass::DetectionFailed,
            format!(
                "{} of {run} negative control(s) not detected, so a check this drill relies on cannot fail and its pass proves nothing: {}",
                missed.len(),
                missed.join("; ")
            ),
        ));
    }
    if run == 0 {
        return Ok("no negative control applies to this drill (see detection)".into());
    }
    let names: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome == ControlOutcome::Detected)
        .map(|r| r.control.name())
        .collect();
    Ok(format!(
        "{run}/{run} negative controls detected ({})",
        names.join(", ")
    ))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The comparison as the `compare` phase ran it.
struct CompareRun<'a> {
    set: &'a BackupSet,
    options: CompareOptions,
    strict: bool,
    blind: bool,
}

/// A control that does not apply to this drill, and why.
fn not_applicable(control: Control, expected: FailureClass, why: &str) -> ControlResult {
    ControlResult {
        control,
        injected: "nothing".into(),
        expected,
        produced: None,
        outcome: ControlOutcome::NotApplicable,
        duration_ms: 0,
        detail: why.into(),
    }
}

/// A control's result from its check's own verdict: detected when the check failed with
/// `expected` and, when `names` is given, named it.
fn judged(
    control: Control,
    injected: String,
    expected: FailureClass,
    got: Result<String, StepFail>,
    names: Option<&str>,
) -> ControlResult {
    let (outcome, produced, detail) = match got {
        Ok(detail) => (
            ControlOutcome::Missed,
            None,
            format!("the check passed the damaged copy: {detail}"),
        ),
        Err(f) if f.class == expected && names.is_none_or(|n| f.message.contains(n)) => {
            (ControlOutcome::Detected, Some(f.class), f.message)
        }
        Err(f) => (ControlOutcome::Missed, Some(f.class), f.message),
    };
    ControlResult {
        control,
        injected,
        expected,
        produced,
        outcome,
        duration_ms: 0,
        detail: clip(&detail),
    }
}

/// The first lines of a check's message: a comparison lists every difference.
fn clip(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= 6 {
        return s.to_string();
    }
    format!(
        "{}\n… ({} more lines)",
        lines[..6].join("\n"),
        lines.len() - 6
    )
}

/// `row_lost` and `value_changed`: the damage done in a clone of the restored database
/// (`CREATE DATABASE … TEMPLATE`), the clone snapshotted and compared with S0 by the code of
/// the `snapshot` and `compare` phases; the clone is dropped on every path.
async fn data_control(
    control: Control,
    inputs: &Inputs<'_>,
    compare: &CompareRun<'_>,
    progress: &Progress,
) -> Result<ControlResult, StepFail> {
    let expected = FailureClass::IntegrityMismatch;
    let Some(s1) = inputs.s1 else {
        return Ok(not_applicable(
            control,
            expected,
            "no snapshot S1 of the restored database: verification did not run",
        ));
    };
    let has_s0 = inputs
        .set
        .manifest
        .as_ref()
        .is_some_and(|m| m.snapshot.format == s1.format);
    if !has_s0 && !compare.blind {
        return Ok(not_applicable(
            control,
            expected,
            "no manifest with a snapshot S0 of this pgdrill's format: the restored data is checked by its own consistency checks only, which a lost row or a changed value does not break",
        ));
    }
    let Some(table) = s1
        .tables
        .iter()
        .find(|t| t.kind != RelationKind::MaterializedView && t.rows > 0)
    else {
        return Ok(not_applicable(
            control,
            expected,
            "the restored database has no table with rows",
        ));
    };
    let clone = format!("pgdrill_control_{}", control.name());
    let admin = inputs.server.with_db("postgres");
    let c = admin.connect().await?;
    let env = |what: &str, e: tokio_postgres::Error| {
        StepFail::environment(format!(
            "negative control {control}: {what}: {}",
            crate::pg::error_text(&e)
        ))
    };
    let q = crate::pg::ident(&clone);
    // One statement each: CREATE DATABASE refuses to run in a multi-statement query.
    let drop = format!("DROP DATABASE IF EXISTS {q} WITH (FORCE)");
    c.batch_execute(&drop)
        .await
        .map_err(|e| env("cannot drop a leftover clone", e))?;
    c.batch_execute(&format!(
        "CREATE DATABASE {q} TEMPLATE {}",
        crate::pg::ident(&inputs.database)
    ))
    .await
    .map_err(|e| env("cannot clone the restored database", e))?;
    let result = damage_and_check(control, inputs, compare, table, &clone, progress).await;
    let dropped = c.batch_execute(&drop).await;
    let result = result?;
    dropped.map_err(|e| env("cannot drop its clone", e))?;
    Ok(result)
}

/// The damage of `control` done to `table` in database `clone`, then the clone's snapshot
/// compared as the real one was.
async fn damage_and_check(
    control: Control,
    inputs: &Inputs<'_>,
    compare: &CompareRun<'_>,
    table: &TableSnapshot,
    clone: &str,
    progress: &Progress,
) -> Result<ControlResult, StepFail> {
    let db = inputs.server.with_db(clone);
    let c = db.connect().await?;
    let env = |e: tokio_postgres::Error| {
        StepFail::environment(format!(
            "negative control {control} in {clone}: {}",
            crate::pg::error_text(&e)
        ))
    };
    // Triggers and foreign keys off: the damage is one row or one value, nothing cascades.
    c.batch_execute("BEGIN; SET LOCAL session_replication_role = replica")
        .await
        .map_err(env)?;
    let name = &table.name;
    let injected = match control {
        Control::RowLost => {
            let n = c
                .execute(
                    &format!(
                        "DELETE FROM {name} WHERE ctid = (SELECT ctid FROM {name} LIMIT 1)"
                    ),
                    &[],
                )
                .await
                .map_err(env)?;
            format!("{n} row of {name} deleted in {clone}, a clone of the restored database")
        }
        _ => match change_one_value(&c, name).await.map_err(env)? {
            Some(column) => format!(
                "column {column} of one row of {name} changed in {clone}, a clone of the restored database"
            ),
            None => {
                let _ = c.batch_execute("ROLLBACK").await;
                return Ok(not_applicable(
                    control,
                    FailureClass::IntegrityMismatch,
                    &format!("no column of {name} can be changed in place (numeric, text, boolean or date)"),
                ));
            }
        },
    };
    c.batch_execute("COMMIT").await.map_err(env)?;
    drop(c);
    let (snap, _, _) = verify::take_snapshot(&db, progress).await?;
    let integrity = verify::integrity_of(
        compare.set,
        &snap,
        compare.options,
        compare.strict,
        compare.blind,
    );
    Ok(judged(
        control,
        injected,
        FailureClass::IntegrityMismatch,
        verify::judge(&integrity),
        Some(name.as_str()),
    ))
}

/// Changes one value of one row of `table` (in the open transaction): the first column whose
/// type can be changed in place and whose change no constraint refuses; its name, or `None`.
async fn change_one_value(
    c: &tokio_postgres::Client,
    table: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let columns = c
        .query(
            "SELECT a.attname::text, t.typcategory::text FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.attgenerated = '' ORDER BY a.attnum",
            &[&table],
        )
        .await?;
    for row in columns {
        let (column, category): (String, String) = (row.get(0), row.get(1));
        let col = crate::pg::ident(&column);
        let changed = match category.as_str() {
            "N" => format!("{col} + 1"),
            "S" => format!("{col} || 'x'"),
            "B" => format!("NOT {col}"),
            "D" => format!("{col} + interval '1 day'"),
            _ => continue,
        };
        c.batch_execute("SAVEPOINT control").await?;
        let sql = format!(
            "UPDATE {table} SET {col} = {changed} WHERE ctid = (SELECT ctid FROM {table} WHERE {col} IS NOT NULL LIMIT 1)"
        );
        match c.execute(&sql, &[]).await {
            Ok(1) => return Ok(Some(column)),
            // A constraint refused it, or no row has a value there: the next column.
            _ => c.batch_execute("ROLLBACK TO SAVEPOINT control").await?,
        }
    }
    Ok(None)
}

/// The dump's length, or the environment failure of a control that cannot read it.
fn dump_len(dump: &Path) -> Result<u64, StepFail> {
    std::fs::metadata(dump)
        .map(|m| m.len())
        .map_err(|e| EnvError::io(format!("cannot read {}", dump.display()), e).into())
}

async fn open(dump: &Path) -> Result<tokio::fs::File, StepFail> {
    tokio::fs::File::open(dump)
        .await
        .map_err(|e| EnvError::io(format!("cannot open {}", dump.display()), e).into())
}

/// `truncated`: the precheck of a streamed view of the dump cut at half its length. With a
/// manifest its size check refuses it before a byte is read; without one, pg_restore reads
/// the half and must find the archive cut.
async fn truncated(inputs: &Inputs<'_>, progress: &Progress) -> Result<ControlResult, StepFail> {
    let dump = &inputs.set.dump;
    let len = dump_len(dump)?;
    let half = len / 2;
    let view = open(dump).await?.take(half);
    let got = crate::restore::precheck_stream(
        dump,
        half,
        view,
        inputs.set.manifest.as_ref(),
        &inputs.tools,
        progress,
    )
    .await;
    Ok(judged(
        Control::Truncated,
        format!("a streamed view of the dump cut to half ({half} of {len} bytes); the file is not touched"),
        FailureClass::BackupUnusable,
        got.map(|p| p.detail).map_err(StepFail::from),
        None,
    ))
}

/// `byte_flipped`: the precheck of a streamed view of the dump with its middle byte inverted;
/// the manifest's SHA-256 must refuse it (without a manifest nothing records the checksum, and
/// a flip inside compressed data may or may not break it: the control does not apply).
async fn byte_flipped(inputs: &Inputs<'_>, progress: &Progress) -> Result<ControlResult, StepFail> {
    let expected = FailureClass::BackupUnusable;
    if inputs.set.manifest.is_none() {
        return Ok(not_applicable(
            Control::ByteFlipped,
            expected,
            "no manifest: nothing records the dump's SHA-256 to compare a flipped byte against",
        ));
    }
    let dump = &inputs.set.dump;
    let len = dump_len(dump)?;
    let mid = len / 2;
    let io = |e: std::io::Error| -> StepFail {
        EnvError::io(format!("cannot read {}", dump.display()), e).into()
    };
    let mut tail = open(dump).await?;
    tail.seek(std::io::SeekFrom::Start(mid)).await.map_err(io)?;
    let mut byte = [0u8; 1];
    tail.read_exact(&mut byte).await.map_err(io)?;
    let flipped = std::io::Cursor::new([!byte[0]]);
    let view = open(dump).await?.take(mid).chain(flipped).chain(tail);
    let got = crate::restore::precheck_stream(
        dump,
        len,
        view,
        inputs.set.manifest.as_ref(),
        &inputs.tools,
        progress,
    )
    .await;
    Ok(judged(
        Control::ByteFlipped,
        format!("a streamed view of the dump with byte {mid} inverted ({:#04x} → {:#04x}); the file is not touched", byte[0], !byte[0]),
        expected,
        got.map(|p| p.detail).map_err(StepFail::from),
        None,
    ))
}

/// `manifest_unreadable`: the dump (a symbolic link to it, not a copy) beside the first half
/// of its manifest, as a backup job killed while writing it leaves it, adopted and prechecked
/// as the drill adopts and prechecks a `--backup-file`.
async fn manifest_unreadable(
    inputs: &Inputs<'_>,
    work: &Path,
    progress: &Progress,
) -> Result<ControlResult, StepFail> {
    let expected = FailureClass::BackupUnusable;
    let Some(mpath) = inputs.set.manifest_path.as_ref() else {
        return Ok(not_applicable(
            Control::ManifestUnreadable,
            expected,
            "the backup has no manifest to damage a copy of",
        ));
    };
    let dir = work.join("control-manifest");
    let got = async {
        let io = |what: &str, e: std::io::Error| -> StepFail {
            EnvError::io(format!("negative control manifest_unreadable: {what}"), e).into()
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create its directory", e))?;
        let name = inputs.set.dump.file_name().unwrap_or_default();
        let link: PathBuf = dir.join(name);
        std::os::unix::fs::symlink(&inputs.set.dump, &link)
            .map_err(|e| io("cannot link the dump", e))?;
        let text = std::fs::read(mpath).map_err(|e| io("cannot read the manifest", e))?;
        std::fs::write(crate::backup::manifest_path(&link), &text[..text.len() / 2])
            .map_err(|e| io("cannot write the damaged copy", e))?;
        let (set, notes) = backup::adopt_file(link);
        let checked = super::restore::check_set(&set, &inputs.tools, progress)
            .await
            .map(|p| format!("{}; {}", p.detail, notes.join("; ")));
        Ok::<_, StepFail>(checked)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(judged(
        Control::ManifestUnreadable,
        format!(
            "a copy of {} cut to its first half (invalid JSON) beside the dump",
            mpath.display()
        ),
        expected,
        got?,
        None,
    ))
}

/// `stale_backup`: the backup dated one minute past the RPO, judged by the freshness check
/// of `pgdrill verify` ([`crate::repo::verify::stale_database`]).
fn stale_backup(set: &BackupSet, rpo: std::time::Duration) -> ControlResult {
    let now = chrono::Utc::now();
    let past = chrono::Duration::from_std(rpo + std::time::Duration::from_secs(60))
        .unwrap_or(chrono::Duration::MAX);
    let created = now - past;
    let subject = set.dump.display().to_string();
    let got = match crate::repo::verify::stale_database(subject, created, now, rpo) {
        Some(f) => Err(StepFail::new(FailureClass::RpoExceeded, f.message)),
        None => Ok("the freshness check found the backup fresh".to_string()),
    };
    judged(
        Control::StaleBackup,
        format!(
            "the backup's creation time set to {} ago, one minute past the RPO of {}",
            crate::duration::human(past.to_std().unwrap_or_default()),
            crate::duration::human(rpo)
        ),
        FailureClass::RpoExceeded,
        got,
        None,
    )
}

/// `wrong_app_version` (full scope): the release deployed at the disaster reported where the
/// rolled-back one is expected, judged by the version check of phase `app_version`
/// ([`crate::code::verify_version`]).
fn wrong_app_version(rollback: Option<&crate::report::full::Rollback>) -> ControlResult {
    let expected = FailureClass::RestoreFailed;
    let Some(rb) = rollback else {
        return not_applicable(
            Control::WrongAppVersion,
            expected,
            "the code was not rolled back: no release to check a version against",
        );
    };
    // The release the disaster deployed, or, when nothing was deployed, one that never was.
    let (tag, commit) = match &rb.from {
        Some(f) if f.tag != rb.to.tag => (f.tag.clone(), f.commit.clone()),
        _ => (
            format!("{}-not-rolled-back", rb.to.tag),
            "0".repeat(rb.to.commit.len().max(7)),
        ),
    };
    let wrong = crate::code::ReportedVersion {
        source: "negative control wrong_app_version".into(),
        release: Some(tag.clone()),
        commit: Some(commit.clone()),
        deployed_at: None,
    };
    let target = crate::code::Release {
        tag: rb.to.tag.clone(),
        commit: rb.to.commit.clone(),
    };
    let got = crate::code::verify_version(&target, &wrong)
        .map(|()| "the version check accepted it".to_string())
        .map_err(StepFail::from);
    judged(
        Control::WrongAppVersion,
        format!(
            "the application reporting {tag} at {} where {} is expected",
            &commit[..commit.len().min(12)],
            rb.to.tag
        ),
        expected,
        got,
        None,
    )
}
