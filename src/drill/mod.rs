//! Sequences the phases of a drill, times them, applies the budgets, handles failure and
//! interruption, and always cleans up what it started.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::app::AppProcess;
use crate::backup::{self, Manifest};
use crate::checklist::{self, CRITICAL_TABLES, ITEMS};
use crate::env::{Backend, Endpoint, Target};
use crate::error::EnvError;
use crate::plan::{BudgetName, Disaster, Plan, Source};
use crate::report::{
    BackupInfo, BudgetResult, ChecklistItem, DisasterInfo, Environment, Failure, FailureClass,
    Integrity, Phase, Report, SourceInfo, Status, Verdict, SCHEMA_VERSION,
};
use crate::restore::{self, DatabaseSpec};
use crate::seed::{self, SeedSpec};
use crate::snapshot::{self, Snapshot};

/// The database name the generated source uses (and the restore recreates).
pub const GENERATED_DB: &str = "pgdrill";

pub mod builder;
mod events;
mod kernel;
mod scenario;

pub use events::{Console, Event, NdjsonFile, Reporter, EVENTS_FILE};
pub use kernel::{Cancel, SkipReason, StepFail, StepResult};
pub use scenario::{phases, PhaseId};

use kernel::Recorder;

/// The phases a plan goes through, in order, with their budgets.
pub fn planned_phases(plan: &Plan) -> Vec<(&'static str, Option<BudgetName>)> {
    phases(plan)
        .into_iter()
        .map(|p| (p.name(), p.budget()))
        .collect()
}

/// The state of one drill run.
struct Drill {
    plan: Plan,
    rec: Recorder,
    started_at: chrono::DateTime<chrono::Utc>,
    backend: Option<Backend>,
    source_target: Option<Target>,
    restore_target: Option<Target>,
    database: String,
    dump: Option<PathBuf>,
    globals: Option<PathBuf>,
    manifest: Option<Manifest>,
    manifest_path: Option<PathBuf>,
    backup_ms: u64,
    precheck: Option<restore::Precheck>,
    generated: Option<serde_json::Value>,
    disaster_detail: String,
    server_version: String,
    tools: BTreeMap<String, String>,
    connected: Option<String>,
    after: Option<Snapshot>,
    integrity: Option<Integrity>,
    /// The restore ran with `pg_restore --no-tablespaces` (the preflight found tablespaces
    /// the target lacks); the comparison is told so.
    no_tablespaces: bool,
    checklist: Vec<ChecklistItem>,
    notes: Vec<String>,
    app: Option<AppProcess>,
    /// An app container stopped before the restore, waiting for its `docker start`.
    stopped_app: Option<AppProcess>,
    /// The sample app's image when it runs as a container (docker backend).
    app_image: Option<String>,
    backend_kind: Option<crate::env::BackendKind>,
    app_secrets: AppSecrets,
    app_items: Vec<ChecklistItem>,
}

/// Configuration secrets the drill hands the sample app; never printed.
struct AppSecrets {
    api_key: String,
    vpn_peer: String,
    db_password: String,
}

impl AppSecrets {
    fn new() -> Self {
        let r = || uuid::Uuid::new_v4().simple().to_string();
        AppSecrets {
            api_key: format!("ak-{}", r()),
            vpn_peer: format!("peer-{}", &r()[..12]),
            db_password: r(),
        }
    }
}

/// Runs a whole drill, reporting to the console and to `events.ndjson` in `--out`, and
/// returns its report; an `--out` that cannot be written is refused before anything starts.
pub async fn run(mut plan: Plan, cancel: Cancel) -> Result<Report, EnvError> {
    let events = NdjsonFile::create(&plan.out_dir)?;
    plan.notes.extend(sweep_leftovers());
    Ok(run_with(
        plan,
        cancel,
        vec![Box::new(Console::new()), Box::new(events)],
    )
    .await)
}

/// Removes the directories of drills killed before they could (see `env::leftovers`) and
/// says so in the report; a live drill's are never touched.
fn sweep_leftovers() -> Vec<String> {
    let found = crate::env::leftovers::find(&std::env::temp_dir());
    let (removed, failed) = crate::env::leftovers::remove(found);
    removed
        .iter()
        .map(|l| format!("removed the leftover of a killed drill: {l}"))
        .chain(failed.iter().map(|e| e.to_string()))
        .collect()
}

/// Runs a whole drill with these reporters; never leaves a server behind unless `--keep`.
pub async fn run_with(plan: Plan, cancel: Cancel, reporters: Vec<Box<dyn Reporter>>) -> Report {
    let started_at = chrono::Utc::now();
    let rec = Recorder::new(cancel, reporters);
    rec.emit(Event::DrillStarted {
        drill_id: plan.drill_id.clone(),
    });
    let database = match &plan.source {
        Source::Generated { .. } => GENERATED_DB.to_string(),
        Source::Dsn(e) => e.dbname.clone(),
        Source::BackupFile(_) => String::new(),
    };
    let notes = plan.notes.clone();
    let mut d = Drill {
        rec,
        plan,
        started_at,
        backend: None,
        source_target: None,
        restore_target: None,
        database,
        dump: None,
        globals: None,
        manifest: None,
        manifest_path: None,
        backup_ms: 0,
        precheck: None,
        generated: None,
        disaster_detail: String::new(),
        server_version: String::new(),
        tools: BTreeMap::new(),
        connected: None,
        after: None,
        integrity: None,
        no_tablespaces: false,
        checklist: Vec::new(),
        notes,
        app: None,
        stopped_app: None,
        app_image: None,
        backend_kind: None,
        app_secrets: AppSecrets::new(),
        app_items: Vec::new(),
    };
    let _ = d.execute().await;
    d.cleanup().await;
    d.into_report()
}

/// The docker backend and the app's image, when the app runs as a container.
fn app_container<'a>(
    backend: &'a Option<Backend>,
    image: &'a Option<String>,
) -> Option<(&'a crate::env::docker::DockerBackend, &'a str)> {
    Some((backend.as_ref()?.docker()?, image.as_deref()?))
}

/// Starts the app: a container of `image` on the docker backend's network when `container`
/// is given, else a process on this machine.
async fn start_app(
    container: Option<(&crate::env::docker::DockerBackend, &str)>,
    spec: &crate::app::AppSpec,
    url: &str,
    log: &std::path::Path,
) -> Result<AppProcess, crate::app::AppError> {
    match container {
        Some((backend, image)) => AppProcess::start_container(backend, image, spec, url, log).await,
        None => AppProcess::start(spec, url, log).await,
    }
}

impl Drill {
    async fn execute(&mut self) -> Option<()> {
        self.provision().await?;
        match self.plan.source.clone() {
            Source::Generated { rows, seed } => {
                self.seed(rows, seed).await?;
                if self.plan.app.is_some() {
                    self.app_on_source().await?;
                }
                self.backup().await?;
                self.disaster().await?;
            }
            Source::Dsn(_) => {
                self.backup().await?;
                self.disaster().await?;
            }
            Source::BackupFile(path) => self.adopt_backup_file(path),
        }
        self.restore().await?;
        self.verify().await
    }

    fn backend(&self) -> &Backend {
        self.backend.as_ref().expect("backend opened in provision")
    }

    fn target(&self) -> &Target {
        self.restore_target
            .as_ref()
            .or(self.source_target.as_ref())
            .expect("a target exists")
    }

    async fn provision(&mut self) -> Option<()> {
        let kind = self.plan.backend;
        let drill_id = self.plan.drill_id.clone();
        let keep = self.plan.keep;
        let wants_source = matches!(self.plan.source, Source::Generated { .. });
        let sample_binary = match self.plan.app.as_ref().map(|a| &a.spec) {
            Some(crate::app::AppSpec::Sample { binary, .. }) => Some(binary.clone()),
            _ => None,
        };
        let custom_image = self
            .plan
            .app
            .as_ref()
            .and_then(|a| a.spec.image())
            .map(|i| i.image.clone());
        let result = self
            .rec
            .step(PhaseId::Provision, async {
                let mut backend = Backend::open(kind, &drill_id).await?;
                backend.set_keep(keep);
                // On the docker backend the sample app is a container too; its image is
                // checked before any data is made, so a missing one costs nothing.
                let app_image = match (backend.docker(), &sample_binary, &custom_image) {
                    (Some(b), Some(binary), _) => Some(b.app_image(Some(binary)).await?),
                    (Some(b), None, Some(image)) => Some((b.custom_app_image(image).await?, None)),
                    _ => None,
                };
                let role = if wants_source { "source" } else { "target" };
                let target = backend.provision(role).await?;
                let mut detail = format!(
                    "{} backend ({}): {}",
                    backend.kind(),
                    if kind == crate::env::BackendKind::Auto {
                        "chosen by --backend auto"
                    } else {
                        "requested"
                    },
                    target.describe()
                );
                if let Some((image, _)) = &app_image {
                    detail.push_str(&format!("; the application runs as a container of {image}"));
                }
                Ok(((backend, target, app_image), detail))
            })
            .await;
        let (backend, target, app_image) = result?;
        if let Some((image, note)) = app_image {
            self.app_image = Some(image);
            self.notes.extend(note);
        }
        self.backend_kind = Some(backend.kind());
        self.backend = Some(backend);
        if wants_source {
            self.source_target = Some(target);
        } else {
            self.restore_target = Some(target);
        }
        Some(())
    }

    async fn seed(&mut self, rows: u64, seed: u64) -> Option<()> {
        let endpoint = self.source_target.as_ref()?.endpoint().clone();
        let db = self.database.clone();
        let progress = self.rec.progress(PhaseId::Seed);
        let stats = self
            .rec
            .step(PhaseId::Seed, async move {
                let admin = endpoint.connect().await?;
                let fail = |e: String| StepFail::new(FailureClass::Environment, e);
                seed::create_roles(&admin).await.map_err(|e| fail(e.to_string()))?;
                admin
                    .batch_execute(&format!("CREATE DATABASE {}", restore::ident(&db)))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let client = endpoint.with_db(&db).connect().await?;
                seed::load_schema(&client).await.map_err(|e| fail(e.to_string()))?;
                let stats = seed::seed(&client, &SeedSpec { rows, seed }, &progress)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let detail = format!(
                    "fixtures schema; {} users, {} subscriptions, {} payments (seed {seed}), {} bytes by binary COPY",
                    stats.users, stats.subscriptions, stats.payments, stats.bytes_sent
                );
                Ok((stats, detail))
            })
            .await?;
        self.generated = serde_json::to_value(&stats).ok();
        Some(())
    }

    async fn backup(&mut self) -> Option<()> {
        let source = match (&self.plan.source, &self.source_target) {
            (Source::Dsn(e), _) => {
                let mut e = e.clone();
                // Belt and braces: the server itself refuses any write from this session.
                e.options = Some("-c default_transaction_read_only=on".into());
                e
            }
            (_, Some(t)) => t.endpoint().with_db(&self.database),
            _ => return None,
        };
        // A live source is dumped with this machine's programs; a drill's own server with its own.
        let tools = match &self.source_target {
            Some(t) => t.tools(),
            None => self.backend().tools().clone(),
        };
        let dir = self.plan.out_dir.join("backup");
        let now = chrono::Utc::now();
        let t = Instant::now();
        let progress = self.rec.progress(PhaseId::Backup);
        let set = self
            .rec
            .step(PhaseId::Backup, async move {
                let set = backup::take(&source, &tools, &dir, now, &progress).await?;
                let m = &set.manifest;
                let detail = format!(
                    "{} ({} bytes, sha256 {}), roles in {}, snapshot S0 of {} tables in the dump's MVCC snapshot",
                    m.file,
                    m.size_bytes,
                    &m.sha256[..16],
                    m.globals.as_ref().map(|g| g.file.as_str()).unwrap_or("-"),
                    m.snapshot.tables.len()
                );
                Ok((set, detail))
            })
            .await?;
        self.backup_ms = t.elapsed().as_millis() as u64;
        self.dump = Some(set.dump);
        self.globals = set.globals;
        self.manifest_path = Some(set.manifest_path);
        self.manifest = Some(set.manifest);
        Some(())
    }

    async fn disaster(&mut self) -> Option<()> {
        let disaster = self.plan.disaster;
        let db = self.database.clone();
        match disaster {
            Disaster::ServerLoss => {
                let old = self.source_target.take();
                let provisioned = self.restore_target.take();
                let backend = self.backend.as_ref()?;
                let target = self
                    .rec
                    .step(PhaseId::Disaster, async move {
                        let (target, detail) = match (old, provisioned) {
                            (Some(t), _) => {
                                let what = t.describe();
                                t.destroy().await?;
                                let target = backend.provision("target").await?;
                                let detail = format!(
                                    "destroyed {what}; provisioned a new empty server: {}",
                                    target.describe()
                                );
                                (target, detail)
                            }
                            // A source the drill does not own is never touched: the loss is
                            // played by restoring into the empty server made for the restore.
                            (None, Some(target)) => {
                                let detail = format!(
                                    "the source is never touched; the restore goes into the empty server provisioned for it: {}",
                                    target.describe()
                                );
                                (target, detail)
                            }
                            (None, None) => {
                                let target = backend.provision("target").await?;
                                let detail = format!(
                                    "the source is never touched; provisioned a new empty server: {}",
                                    target.describe()
                                );
                                (target, detail)
                            }
                        };
                        Ok((target, detail))
                    })
                    .await?;
                self.disaster_detail = self
                    .rec
                    .phases
                    .last()
                    .map(|p| p.detail.clone())
                    .unwrap_or_default();
                self.restore_target = Some(target);
            }
            Disaster::DropDb => {
                let endpoint = self.source_target.as_ref()?.endpoint().clone();
                self.rec
                    .step(PhaseId::Disaster, async move {
                        let detail = restore::drop_database(&endpoint, &db).await?;
                        Ok(((), detail))
                    })
                    .await?;
                self.disaster_detail =
                    format!("dropped database {} on the running server", self.database);
            }
        }
        Some(())
    }

    fn adopt_backup_file(&mut self, path: PathBuf) {
        let mpath = backup::manifest_path(&path);
        if mpath.exists() {
            match backup::read_manifest(&mpath) {
                Ok(m) => {
                    self.database = m.database.clone();
                    self.manifest = Some(m);
                    self.manifest_path = Some(mpath);
                }
                Err(e) => self.notes.push(format!(
                    "{e}; verifying against the restored data's own consistency checks instead"
                )),
            }
        } else {
            self.notes.push(format!(
                "no manifest beside {} (expected {}): the checksum cannot be compared and the restored data is verified by its own consistency checks only",
                path.display(),
                mpath.display()
            ));
        }
        let g = backup::globals_path(&path);
        if g.exists() {
            self.globals = Some(g);
        }
        self.dump = Some(path);
        self.disaster_detail = "restoring an existing backup file into a new empty server".into();
    }

    async fn restore(&mut self) -> Option<()> {
        let tools = self.target().tools();
        let dump = self.dump.clone()?;
        self.stop_app().await?;
        let manifest = self.manifest.clone();
        let progress = self.rec.progress(PhaseId::Precheck);
        let pre = self
            .rec
            .step(PhaseId::Precheck, async {
                let p = restore::precheck(&dump, manifest.as_ref(), &tools, &progress).await?;
                let detail = p.detail.clone();
                Ok((p, detail))
            })
            .await?;
        self.precheck = Some(pre);
        if self.database.is_empty() {
            self.database = restore::archive_dbname(&tools, &dump)
                .await
                .unwrap_or_else(|| "restored".into());
        }
        let admin = self.target().endpoint().clone();
        let policy = self.plan.missing_roles;
        let globals = self.plan.globals.clone().or_else(|| self.globals.clone());
        let outcome = self
            .rec
            .step(PhaseId::Roles, async {
                let replayed = match &globals {
                    Some(g) => restore::restore_roles(&admin, &tools, g).await?,
                    None => "no globals file (beside the backup or --globals)".to_string(),
                };
                let o = crate::preflight::run(&admin, &tools, &dump, policy).await?;
                let detail = format!("{replayed}; {}", o.detail);
                Ok((o, detail))
            })
            .await?;
        self.notes.extend(outcome.note.clone());
        self.notes.extend(outcome.tablespace_note());
        self.no_tablespaces = outcome.no_tablespaces();
        let no_tablespaces = self.no_tablespaces;
        let spec = DatabaseSpec {
            name: self.database.clone(),
            encoding: self.manifest.as_ref().map(|m| m.encoding.clone()),
            collate: self.manifest.as_ref().map(|m| m.collate.clone()),
            ctype: self.manifest.as_ref().map(|m| m.ctype.clone()),
            owner: self.manifest.as_ref().map(|m| m.owner.clone()),
        };
        self.rec
            .step(PhaseId::Createdb, async {
                Ok(((), restore::create_database(&admin, &spec).await?))
            })
            .await?;
        let db = admin.with_db(&self.database);
        let jobs = self.plan.jobs;
        let progress = self.rec.progress(PhaseId::PgRestore);
        self.rec
            .step(PhaseId::PgRestore, async {
                Ok((
                    (),
                    restore::pg_restore(&db, &tools, &dump, jobs, no_tablespaces, &progress)
                        .await?,
                ))
            })
            .await?;
        self.rec
            .step(PhaseId::Analyze, async {
                Ok(((), restore::analyze(&db).await?))
            })
            .await?;
        Some(())
    }

    async fn verify(&mut self) -> Option<()> {
        let db = self.target().endpoint().with_db(&self.database);
        let tools = self.target().tools();
        if let Some(sql) = self.plan.tamper_sql.clone() {
            let db = db.clone();
            self.rec
                .step(PhaseId::TamperHook, async move {
                    let c = db.connect().await?;
                    c.batch_execute(&sql).await.map_err(|e| {
                        StepFail::new(
                            FailureClass::Environment,
                            format!("tamper SQL failed: {}", crate::pg::error_text(&e)),
                        )
                    })?;
                    Ok((
                        (),
                        "test hook: ran --tamper-sql on the restored database".to_string(),
                    ))
                })
                .await?;
            self.notes.push(
                "a test hook modified the restored database before verification (--tamper-sql)"
                    .into(),
            );
        }
        let sdb = db.clone();
        let progress = self.rec.progress(PhaseId::Snapshot);
        let taken = self
            .rec
            .step(PhaseId::Snapshot, async move {
                let c = sdb.connect().await?;
                let version: String = c
                    .query_one("SHOW server_version", &[])
                    .await
                    .map_err(|e| {
                        StepFail::new(FailureClass::RestoreFailed, crate::pg::error_text(&e))
                    })?
                    .get(0);
                let mismatch = |e: String| StepFail::new(FailureClass::IntegrityMismatch, e);
                // Two sessions in one exported snapshot: the tables are read on one while
                // the checks run on the other.
                let helper = sdb.connect().await?;
                // A failed BEGIN or pg_export_snapshot() is the restored server failing a read,
                // not a difference in the data.
                let unserved = |e: tokio_postgres::Error| {
                    StepFail::new(
                        FailureClass::RestoreFailed,
                        format!(
                            "the restored server cannot open a snapshot: {}",
                            crate::pg::error_text(&e)
                        ),
                    )
                };
                let exported = crate::pg::export_snapshot(&c).await.map_err(unserved)?;
                crate::pg::join_snapshot(&helper, &exported)
                    .await
                    .map_err(unserved)?;
                let s = snapshot::take_split(&c, &helper, &progress)
                    .await
                    .map_err(|e| {
                        mismatch(format!(
                            "cannot take the snapshot of the restored database: {e}"
                        ))
                    })?;
                let _ = helper.batch_execute("COMMIT").await;
                let _ = c.batch_execute("COMMIT").await;
                let detail = format!(
                    "snapshot S1 of {} tables, {} sequences",
                    s.tables.len(),
                    s.sequences.len()
                );
                Ok(((s, version), detail))
            })
            .await;
        let Some((s1, version)) = taken else {
            self.connected = None;
            return None;
        };
        self.server_version = version;
        self.connected = Some(format!(
            "connected to {} as {}; SHOW server_version = {}",
            self.database, db.user, self.server_version
        ));
        let manifest = self.manifest.clone();
        let strict_schema = self.plan.strict_schema;
        let options = snapshot::CompareOptions {
            no_tablespaces: self.no_tablespaces,
        };
        let mut slot: Option<Integrity> = None;
        self.rec
            .step(PhaseId::Compare, async {
                let integrity = match &manifest {
                    Some(m) if m.snapshot.format != s1.format => Integrity {
                        basis: format!(
                            "snapshot S0 from the manifest is of format {} (an earlier pgdrill), this pgdrill takes format {}: row counts compared with S0, fingerprints and schema recorded, not compared; the restored data's own consistency checks apply",
                            m.snapshot.format, s1.format
                        ),
                        comparison: snapshot::compare_across_formats(&m.snapshot, &s1),
                    },
                    Some(m) => Integrity {
                        basis: format!("snapshot S0 from the manifest, taken in the dump's own MVCC snapshot ({})", m.mvcc_snapshot),
                        comparison: snapshot::compare_with(&m.snapshot, &s1, options),
                    },
                    None => Integrity {
                        basis: "no manifest: the restored data's own consistency checks only (row counts and fingerprints recorded, not compared)".into(),
                        comparison: snapshot::self_consistency(&s1),
                    },
                };
                let mut integrity = integrity;
                if strict_schema {
                    integrity.comparison.enforce_strict_schema();
                }
                let diffs = integrity.comparison.differences();
                let warned = integrity.comparison.warnings.len();
                let n = integrity.comparison.tables.len();
                // Kept for the report whether or not the step passes.
                slot = Some(integrity);
                if diffs.is_empty() {
                    Ok(((), format!("{n} tables, sequences, schema and checks identical{}", warned_suffix(warned))))
                } else {
                    Err(StepFail::new(
                        FailureClass::IntegrityMismatch,
                        format!("{} difference(s):\n{}", diffs.len(), diffs.join("\n")),
                    ))
                }
            })
            .await;
        self.integrity = slot;
        self.after = Some(s1);
        let jobs = self.plan.jobs;
        self.rec
            .step(PhaseId::Amcheck, async {
                Ok(((), amcheck(&db, &tools, jobs).await?))
            })
            .await;
        self.tools = tool_versions(&tools).await;
        self.restart_app().await;
        let items = self.checklist_items();
        let failed: Vec<String> = items
            .iter()
            .filter(|i| i.status == Status::Fail)
            .map(|i| format!("{}: {}", i.item, i.evidence))
            .collect();
        let n_pass = items.iter().filter(|i| i.status == Status::Pass).count();
        let n_skip = items.iter().filter(|i| i.status == Status::Skipped).count();
        self.checklist = items;
        self.rec
            .step(PhaseId::Checklist, async move {
                if failed.is_empty() {
                    Ok((
                        (),
                        format!("{n_pass} items pass, {n_skip} skipped (reasons in the checklist)"),
                    ))
                } else {
                    Err(StepFail::new(
                        FailureClass::ChecklistFailed,
                        failed.join("\n"),
                    ))
                }
            })
            .await?;
        Some(())
    }

    fn checklist_items(&self) -> Vec<ChecklistItem> {
        use Status::*;
        let mut out = Vec::new();
        out.push(match &self.connected {
            Some(ev) => checklist::item(ITEMS[0], Pass, ev.clone()),
            None => checklist::item(ITEMS[0], Fail, "could not connect to the restored database"),
        });
        let integrity = self.integrity.as_ref().map(|i| &i.comparison);
        let after = self.after.as_ref();
        // Critical tables: the strategy's three when present, else every table that had rows.
        let critical: Vec<String> = match after {
            Some(s)
                if CRITICAL_TABLES
                    .iter()
                    .any(|(_, t)| s.tables.iter().any(|x| x.name == *t)) =>
            {
                CRITICAL_TABLES.iter().map(|(_, t)| t.to_string()).collect()
            }
            Some(s) => s
                .tables
                .iter()
                .filter(|t| t.rows > 0)
                .map(|t| t.name.clone())
                .collect(),
            None => Vec::new(),
        };
        out.push(match after {
            None => checklist::item(ITEMS[1], Fail, "no snapshot of the restored database"),
            Some(s) => {
                let counts: Vec<(String, u64)> = critical
                    .iter()
                    .map(|n| {
                        (
                            n.clone(),
                            s.tables
                                .iter()
                                .find(|t| &t.name == n)
                                .map(|t| t.rows)
                                .unwrap_or(0),
                        )
                    })
                    .collect();
                let ev = counts
                    .iter()
                    .map(|(n, c)| format!("SELECT count(*) FROM {n} = {c}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                if counts.is_empty() {
                    checklist::item(
                        ITEMS[1],
                        Fail,
                        "the restored database has no table with rows",
                    )
                } else if counts.iter().all(|(_, c)| *c > 0) {
                    checklist::item(ITEMS[1], Pass, ev)
                } else {
                    checklist::item(ITEMS[1], Fail, ev)
                }
            }
        });
        for (item, table) in CRITICAL_TABLES {
            let Some(c) = integrity else {
                out.push(checklist::item(
                    item,
                    Fail,
                    "no integrity comparison was made",
                ));
                continue;
            };
            let Some(t) = c.tables.iter().find(|t| t.name == table) else {
                out.push(checklist::item(
                    item,
                    Skipped,
                    format!("no table {table} in this database"),
                ));
                continue;
            };
            let short = table.trim_start_matches("public.");
            let fk_bad: Vec<_> = c
                .checks
                .iter()
                .filter(|k| k.name.contains(short) && !k.pass)
                .map(|k| k.name.clone())
                .collect();
            let ev = format!(
                "{table}: rows {} → {}, fingerprint {} → {}; {} related checks",
                t.rows_before
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                t.rows_after
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                t.fingerprint_before
                    .as_deref()
                    .map(|f| &f[..f.len().min(12)])
                    .unwrap_or("-"),
                t.fingerprint_after
                    .as_deref()
                    .map(|f| &f[..f.len().min(12)])
                    .unwrap_or("-"),
                c.checks.iter().filter(|k| k.name.contains(short)).count()
            );
            if t.matches != Some(false) && fk_bad.is_empty() {
                let ev = if t.matches.is_none() {
                    format!("{ev} (no S0 to compare with: consistency checks only)")
                } else {
                    ev
                };
                out.push(checklist::item(item, Pass, ev));
            } else {
                out.push(checklist::item(
                    item,
                    Fail,
                    format!(
                        "{ev}; failing: {}",
                        if fk_bad.is_empty() {
                            "content differs".to_string()
                        } else {
                            fk_bad.join(", ")
                        }
                    ),
                ));
            }
        }
        if !self.app_items.is_empty() {
            out.extend(self.app_items.iter().cloned());
        } else {
            let why = match (&self.plan.app, &self.app) {
                (None, _) => "no application under drill".to_string(),
                (Some(_), None) => "the application did not start after the restore".to_string(),
                (Some(_), Some(_)) => "the application was not observed".to_string(),
            };
            let status = if self.plan.app.is_some() {
                Fail
            } else {
                Skipped
            };
            for item in &ITEMS[5..] {
                out.push(checklist::item(item, status, why.clone()));
            }
        }
        out
    }

    /// The environment and database URL for the app against `server`, setting the app role's
    /// password first: role passwords are never in backups (--no-role-passwords), so after a
    /// restore the drill plays the secret store.
    async fn app_launch(
        &self,
        server: &Target,
        restart: bool,
    ) -> Result<(crate::app::AppSpec, String, PathBuf), StepFail> {
        let app_server = server.app_endpoint(self.app_image.is_some());
        let server = server.endpoint();
        let plan = self.plan.app.as_ref().expect("app planned");
        let mut spec = plan.spec.clone();
        let url = match &mut spec {
            crate::app::AppSpec::Sample { env, .. } => {
                let admin = server.with_db("postgres").connect().await?;
                admin
                    .batch_execute(&format!(
                        "ALTER ROLE pgdrill_app PASSWORD {}",
                        restore::literal(&self.app_secrets.db_password)
                    ))
                    .await
                    .map_err(|e| {
                        // After a restore a missing app role is the restore's fault; before
                        // the disaster it is the drill's own server failing.
                        let class = if restart {
                            FailureClass::RestoreFailed
                        } else {
                            FailureClass::Environment
                        };
                        StepFail::new(
                            class,
                            format!(
                                "cannot set the app role's password: {}",
                                crate::pg::error_text(&e)
                            ),
                        )
                    })?;
                let mut base = vec![
                    ("API_KEY".to_string(), self.app_secrets.api_key.clone()),
                    ("VPN_PEER".to_string(), self.app_secrets.vpn_peer.clone()),
                    (
                        "RELEASE".to_string(),
                        format!("pgdrill-{}", env!("CARGO_PKG_VERSION")),
                    ),
                ];
                base.append(env);
                *env = base;
                Endpoint {
                    user: "pgdrill_app".into(),
                    password: Some(self.app_secrets.db_password.clone().into()),
                    ..app_server.with_db(&self.database)
                }
                .url()
            }
            crate::app::AppSpec::Custom(_) => app_server.with_db(&self.database).url(),
        };
        if restart {
            match &mut spec {
                crate::app::AppSpec::Sample { env, .. } => {
                    env.extend(plan.restart_env.iter().cloned())
                }
                crate::app::AppSpec::Custom(c) => c.env.extend(plan.restart_env.iter().cloned()),
            }
        }
        let dir = self.plan.out_dir.join("app");
        std::fs::create_dir_all(&dir)
            .map_err(|e| EnvError::io(format!("cannot create {}", dir.display()), e))?;
        let log = dir.join(if restart {
            "app-after-restore.log"
        } else {
            "app-before-disaster.log"
        });
        Ok((spec, url, log))
    }

    async fn app_on_source(&mut self) -> Option<()> {
        let launch = self.app_launch(self.source_target.as_ref()?, false).await;
        let container = app_container(&self.backend, &self.app_image);
        let app = self
            .rec
            .step(PhaseId::AppStart, async move {
                let (spec, url, log) = launch?;
                let env_err = |e: crate::app::AppError| StepFail::new(FailureClass::Environment, format!("the application did not start against the source: {e}"));
                let app = start_app(container, &spec, &url, &log).await.map_err(env_err)?;
                let h = app.wait_healthy(Duration::from_secs(60)).await.map_err(env_err)?;
                let detail = format!("application running against the source ({}), {}; it keeps writing during the backup", app.describe(), h.summary());
                Ok((app, detail))
            })
            .await?;
        self.app = Some(app);
        Some(())
    }

    async fn stop_app(&mut self) -> Option<()> {
        match self.app.take() {
            Some(mut app) => {
                let app = self
                    .rec
                    .step(PhaseId::StopApp, async move {
                        let r = app
                            .stop(Duration::from_secs(30))
                            .await
                            .map_err(|e| StepFail::new(FailureClass::RestoreFailed, format!("cannot stop the application: {e}")))?;
                        let detail = format!("application stopped before the database is touched ({}): {} after {} ms{}", app.describe(), r.exit, r.duration_ms, if r.killed { " (SIGKILL needed)" } else { "" });
                        Ok((app, detail))
                    })
                    .await?;
                // A stopped container waits for its `docker start`; a process is gone.
                if app.is_container() {
                    self.stopped_app = Some(app);
                }
            }
            None if self.plan.app.is_some() => {
                self.rec.skip(PhaseId::StopApp, SkipReason::AppNotOnSource)
            }
            None => self.rec.skip(PhaseId::StopApp, SkipReason::NoApp),
        }
        Some(())
    }

    /// Strategy steps 6 and 7: start the app against the restored server, wait until it is
    /// healthy within the app_restart budget, then watch it for the checklist.
    async fn restart_app(&mut self) {
        if self.plan.app.is_none() {
            self.rec.skip(PhaseId::StartApp, SkipReason::NoApp);
            self.rec.skip(PhaseId::AppHealthy, SkipReason::NoApp);
            return;
        }
        let server = self.target().endpoint().clone();
        let launch = self.app_launch(self.target(), true).await;
        let fail = |m: String| StepFail::new(FailureClass::ChecklistFailed, m);
        let started = Instant::now();
        let stopped = self.stopped_app.take();
        let new_config = !self
            .plan
            .app
            .as_ref()
            .expect("app planned")
            .restart_env
            .is_empty();
        let container = app_container(&self.backend, &self.app_image);
        let app = self
            .rec
            .step(PhaseId::StartApp, async {
                let (spec, url, log) = launch?;
                let not_started = |e: crate::app::AppError| {
                    fail(format!(
                        "{}: the application did not start after the restore: {e}",
                        ITEMS[5]
                    ))
                };
                let (app, how) = match stopped {
                    // The restore procedure's restart: the same container, same configuration;
                    // its database host name now answers from the restored server.
                    Some(old) if !new_config => (
                        old.restart_container(&log).await.map_err(not_started)?,
                        "docker start of the container stopped before the restore",
                    ),
                    Some(old) => {
                        drop(old);
                        (
                            start_app(container, &spec, &url, &log).await.map_err(not_started)?,
                            "a new container: --app-restart-env changes its configuration, which docker start would not",
                        )
                    }
                    None => (
                        start_app(container, &spec, &url, &log).await.map_err(not_started)?,
                        "started",
                    ),
                };
                let detail = format!(
                    "application started against the restored database ({}; {how}), log {}",
                    app.describe(),
                    log.display()
                );
                Ok((app, detail))
            })
            .await;
        let Some(app) = app else {
            self.rec
                .skip(PhaseId::AppHealthy, SkipReason::AppDidNotStart);
            return;
        };
        let remaining = self
            .plan
            .budgets
            .app_restart
            .saturating_sub(started.elapsed());
        let log_offset = app.start_log_offset();
        let healthy = self
            .rec
            .step(PhaseId::AppHealthy, async {
                let h = app
                    .wait_healthy(remaining)
                    .await
                    .map_err(|e| fail(format!("{}: {e}", ITEMS[5])))?;
                Ok((
                    (),
                    format!("GET health → {} within the app_restart budget", h.summary()),
                ))
            })
            .await;
        let db = server.with_db(&self.database).connect().await.ok();
        let sample = self.plan.app.as_ref().is_some_and(|a| a.is_sample());
        let plan = self.plan.app.as_ref().expect("app planned");
        let (window, max_age) = (plan.observe, plan.max_heartbeat_age);
        // Faults found here fail the checklist step, which names the item and its evidence.
        let items = self
            .rec
            .step(PhaseId::ObserveApp, async {
                let obs =
                    checklist::observe(&app, db.as_ref().filter(|_| sample), window, log_offset)
                        .await;
                let items = checklist::app_items(&obs, max_age);
                let bad = items.iter().filter(|i| i.status == Status::Fail).count();
                let detail = format!(
                    "watched the application for {}: {bad} of {} app checklist items failing",
                    humantime::format_duration(window),
                    items.len()
                );
                Ok((items, detail))
            })
            .await;
        self.app_items = items.unwrap_or_default();
        if healthy.is_none()
            && self
                .app_items
                .first()
                .is_some_and(|i| i.status == Status::Pass)
        {
            self.app_items[0] = checklist::item(
                ITEMS[5],
                Status::Fail,
                "the application did not become healthy within the app_restart budget",
            );
        }
        self.app = Some(app);
    }

    async fn cleanup(&mut self) {
        let keep = self.plan.keep && !self.rec.interrupted();
        for mut app in [self.app.take(), self.stopped_app.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = app.stop(Duration::from_secs(10)).await {
                self.notes
                    .push(format!("cleanup: stopping the application: {e}"));
            }
            if keep {
                let note = format!("--keep: the application was stopped ({})", app.describe());
                match app.keep_container() {
                    Some(how) => {
                        self.rec.println(&how);
                        self.notes.push(format!("{note}; {how}"));
                    }
                    None => self
                        .notes
                        .push(format!("{note}; start it again against the kept server")),
                }
            }
        }
        for t in [self.source_target.take(), self.restore_target.take()]
            .into_iter()
            .flatten()
        {
            if self.plan.keep && !self.rec.interrupted() {
                let how = t.keep();
                self.rec.println(&how);
                self.notes.push("--keep: servers were left running".into());
            } else if let Err(e) = t.destroy().await {
                self.notes.push(format!("cleanup: {e}"));
            }
        }
        self.backend = None;
    }

    fn into_report(mut self) -> Report {
        // Phases that never ran because an earlier one failed are listed as skipped.
        let done: Vec<String> = self.rec.phases.iter().map(|p| p.name.clone()).collect();
        for id in phases(&self.plan) {
            if !done.iter().any(|d| d == id.name()) {
                let why = match &self.rec.failure {
                    Some(f) => SkipReason::AfterFailure(f.phase.clone()),
                    None => SkipReason::NotRun,
                };
                self.rec.skip(id, why);
            }
        }
        let rec = &self.rec;
        let budgets = evaluate_budgets(
            &self.plan,
            &self.rec.phases,
            |p| rec.not_run(p),
            self.rec.failure.is_some(),
        );
        if self.rec.failure.is_none() {
            if let Some(b) = budgets.iter().find(|b| b.verdict == Status::Fail) {
                self.rec.failure = Some(Failure {
                    phase: b.name.as_str().to_string(),
                    class: FailureClass::BudgetExceeded,
                    message: format!(
                        "{} took {} but the budget is {}",
                        b.name.as_str(),
                        crate::report::markdown::secs(b.used_ms),
                        crate::report::markdown::secs(b.limit_ms)
                    ),
                });
            }
        }
        let verdict = match &self.rec.failure {
            None => Verdict::Pass,
            Some(f) if f.class == FailureClass::Environment => Verdict::Error,
            Some(_) => Verdict::Fail,
        };
        if self.checklist.is_empty() {
            self.checklist = ITEMS
                .iter()
                .map(|i| {
                    checklist::item(
                        i,
                        Status::Skipped,
                        "not run: the drill stopped before verification",
                    )
                })
                .collect();
        }
        let (seed, rows) = match &self.plan.source {
            Source::Generated { rows, seed } => (Some(*seed), Some(*rows)),
            _ => (None, None),
        };
        let backup = self.dump.as_ref().map(|d| BackupInfo {
            file: d.display().to_string(),
            size_bytes: self
                .manifest
                .as_ref()
                .map(|m| m.size_bytes)
                .or(self.precheck.as_ref().map(|p| p.size_bytes))
                .unwrap_or(0),
            sha256: self
                .manifest
                .as_ref()
                .map(|m| m.sha256.clone())
                .or(self.precheck.as_ref().map(|p| p.sha256.clone()))
                .unwrap_or_default(),
            duration_ms: self.backup_ms,
            created_at: self.manifest.as_ref().map(|m| m.created_at.clone()),
            manifest: self.manifest_path.as_ref().map(|p| p.display().to_string()),
            globals: self.globals.as_ref().map(|p| p.display().to_string()),
        });
        for text in &self.notes {
            self.rec.emit(Event::Note { text: text.clone() });
        }
        self.rec.emit(Event::Verdict {
            verdict,
            class: self.rec.failure.as_ref().map(|f| f.class),
        });
        self.rec.finish();
        Report {
            schema_version: SCHEMA_VERSION,
            drill_id: self.plan.drill_id.clone(),
            started_at: self
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            verdict,
            failure: self.rec.failure.clone(),
            environment: Environment {
                backend: self.backend_kind.unwrap_or(self.plan.backend).to_string(),
                server_version: self.server_version.clone(),
                tools: self.tools.clone(),
                pgdrill_version: env!("CARGO_PKG_VERSION").into(),
                host: hostname(),
                run_by: run_by(),
            },
            source: SourceInfo {
                kind: self.plan.source.kind().into(),
                seed,
                rows,
                dsn: match &self.plan.source {
                    Source::Dsn(e) => Some(e.display()),
                    _ => None,
                },
                database: self.database.clone(),
                generated: self.generated.clone(),
            },
            backup,
            disaster: DisasterInfo {
                kind: match self.plan.source {
                    Source::BackupFile(_) => "none".into(),
                    _ => self.plan.disaster.to_string(),
                },
                detail: self.disaster_detail.clone(),
            },
            phases: self.rec.phases.clone(),
            budgets,
            integrity: self.integrity.clone(),
            checklist: self.checklist.clone(),
            notes: self.notes.clone(),
        }
    }
}

/// Sums phase durations per budget and judges them.
pub fn evaluate_budgets(
    plan: &Plan,
    phases: &[Phase],
    not_run: impl Fn(&Phase) -> bool,
    failed: bool,
) -> Vec<BudgetResult> {
    let groups = [
        BudgetName::DatabaseRestore,
        BudgetName::AppRestart,
        BudgetName::Verification,
    ];
    let mut out = Vec::new();
    let mut total = 0;
    let mut all_ran = true;
    for g in groups {
        let ps: Vec<&Phase> = phases.iter().filter(|p| p.budget == Some(g)).collect();
        let used: u64 = ps.iter().map(|p| p.duration_ms).sum();
        total += used;
        let ran = !ps.iter().any(|p| p.status == Status::Fail || not_run(p));
        all_ran &= ran;
        out.push(judge(plan, g, used, ran, failed));
    }
    out.push(judge(plan, BudgetName::Total, total, all_ran, failed));
    out
}

fn judge(plan: &Plan, name: BudgetName, used: u64, ran: bool, failed: bool) -> BudgetResult {
    let limit = name.limit(&plan.budgets).as_millis() as u64;
    let verdict = if used > limit {
        Status::Fail
    } else if ran || !failed {
        Status::Pass
    } else {
        Status::Skipped
    };
    BudgetResult {
        name,
        limit_ms: limit,
        used_ms: used,
        verdict,
    }
}

async fn amcheck(
    db: &Endpoint,
    tools: &crate::env::PgTools,
    jobs: u32,
) -> Result<String, StepFail> {
    let out = tools
        .command("pg_amcheck", db)
        .args([
            "--install-missing",
            "--heapallindexed",
            "--no-password",
            "-j",
        ])
        .arg(jobs.to_string())
        .arg(&db.dbname)
        .output()
        .await
        .map_err(|source| EnvError::Spawn {
            program: "pg_amcheck".into(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.trim().is_empty() {
        return Err(StepFail::new(
            FailureClass::IntegrityMismatch,
            format!(
                "pg_amcheck reports corruption ({}):\n{}{}",
                out.status,
                crate::backup::tail(&stdout),
                crate::backup::tail(&String::from_utf8_lossy(&out.stderr))
            ),
        ));
    }
    Ok(format!(
        "pg_amcheck --heapallindexed on {}: no corruption found",
        db.dbname
    ))
}

async fn tool_versions(tools: &crate::env::PgTools) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for t in ["pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_amcheck"] {
        if let Ok(v) = tools.version(t).await {
            m.insert(t.to_string(), v);
        }
    }
    m
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

fn run_by() -> String {
    let uid = nix::unistd::Uid::effective();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"));
    match (
        std::env::var("GITHUB_ACTIONS").ok(),
        std::env::var("GITHUB_RUN_ID").ok(),
    ) {
        (Some(_), Some(run)) => format!(
            "{user} (GitHub Actions run {run}, workflow {}, actor {})",
            std::env::var("GITHUB_WORKFLOW").unwrap_or_default(),
            std::env::var("GITHUB_ACTOR").unwrap_or_default()
        ),
        _ if std::env::var("CI").is_ok() => format!("{user} (CI)"),
        _ => user,
    }
}

/// `, N explained warning(s) (integrity.warnings)` for the compare step's detail, or nothing.
fn warned_suffix(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(" apart from {n} explained warning(s) (integrity.warnings)"),
    }
}
