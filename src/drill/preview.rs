//! The dry run of a real restore (`pgdrill restore` without `--confirm`): the server and the
//! database it would replace, the backup and its precheck, every step with what it would
//! run, and the confirmation to type. It reads the server and the backup and writes nothing
//! anywhere.

use serde::Serialize;

use crate::live::Facts;
use crate::plan::{Plan, RestoreMode};

/// What `pgdrill restore` would do.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// Always true: nothing was changed.
    pub dry_run: bool,
    /// Every check passed: the restore can run as planned.
    pub can_run: bool,
    /// Why it cannot, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The named server and the live database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Facts>,
    /// The backup it would restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupPreview>,
    /// The backup's precheck, run now (the whole archive read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precheck: Option<PrecheckPreview>,
    /// Every step, in order.
    pub steps: Vec<StepPreview>,
    /// `side` or `in_place`.
    pub mode: crate::report::RestoreModeKind,
    /// The confirmation that runs it: `--confirm DBNAME`.
    pub confirm: String,
    /// Whom to call.
    pub contacts: Vec<crate::contacts::Contact>,
    /// Strategy roles without a real contact.
    pub warnings: Vec<crate::contacts::ContactWarning>,
}

/// The backup a restore would use.
#[derive(Debug, Clone, Serialize)]
pub struct BackupPreview {
    /// The dump.
    pub file: String,
    /// How it was chosen (`--repo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
    /// Its size on disk.
    pub size_bytes: u64,
    /// The manifest beside it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// When it was taken (the manifest's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Its age now, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<String>,
    /// The manifest's SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The pg_dump version that wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    /// The database it was taken of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// The precheck's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PrecheckPreview {
    /// It passed.
    pub passed: bool,
    /// What it found.
    pub detail: String,
}

/// One step of the restore.
#[derive(Debug, Clone, Serialize)]
pub struct StepPreview {
    /// The phase.
    pub phase: crate::report::PhaseId,
    /// Its RTO budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<&'static str>,
    /// What it does, with the exact commands.
    pub does: String,
}

/// The dry run of `plan` (a restore plan): inspects the server, picks and prechecks the
/// backup; changes nothing.
pub async fn preview(plan: &Plan, now: chrono::DateTime<chrono::Utc>) -> Preview {
    let r = plan.restore.as_ref().expect("a restore plan");
    let db = r.target.dbname.clone();
    let mut refused = Vec::new();
    let target = match crate::live::inspect(&r.target).await {
        Ok(f) => {
            if let Some(e) = f.refuse(r.mode != RestoreMode::Side) {
                refused.push(e.to_string());
            }
            Some(f)
        }
        Err(e) => {
            refused.push(e.to_string());
            None
        }
    };
    let (dump, chosen) = match (&plan.repo, &plan.source) {
        (Some(repo), _) => match crate::regime::pick_backup(
            &repo.dir,
            crate::plan::Pick::Newest,
            repo.window,
            repo.at.unwrap_or(now),
        ) {
            Ok((d, note)) => (Some(d), Some(note)),
            Err(e) => {
                refused.push(e.to_string());
                (None, None)
            }
        },
        (None, crate::plan::Source::BackupFile(p)) => (Some(p.clone()), None),
        _ => (None, None),
    };
    let mut backup = None;
    let mut precheck = None;
    if let Some(dump) = dump {
        let (set, _) = super::phases::backup::adopt_file(dump.clone());
        let m = set.manifest.as_ref();
        let created = m.and_then(|m| crate::duration::parse_time(&m.created_at).ok());
        backup = Some(BackupPreview {
            file: dump.display().to_string(),
            chosen,
            size_bytes: std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0),
            manifest: set.manifest_path.as_ref().map(|p| p.display().to_string()),
            created_at: m.map(|m| m.created_at.clone()),
            age: created
                .map(|c| crate::duration::human_ms((now - c).num_milliseconds().max(0) as u64)),
            sha256: m.map(|m| m.sha256.clone()),
            pg_dump_version: m.and_then(|m| m.tools.get("pg_dump").cloned()),
            database: m.map(|m| m.database.clone()),
        });
        let checked = match crate::pg::PgTools::discover(crate::pg::tools::CLIENT_PROGRAMS) {
            Ok(tools) => {
                super::phases::restore::check_set(&set, &tools, &crate::progress::Progress::none())
                    .await
                    .map(|p| p.detail)
                    .map_err(|f| f.message)
            }
            Err(e) => Err(e.to_string()),
        };
        precheck = Some(match checked {
            Ok(detail) => PrecheckPreview {
                passed: true,
                detail,
            },
            Err(message) => {
                refused.push(format!("the backup fails its precheck: {message}"));
                PrecheckPreview {
                    passed: false,
                    detail: message,
                }
            }
        });
    }
    let steps = super::phases(plan)
        .into_iter()
        .map(|phase| StepPreview {
            phase,
            budget: phase.budget().map(|b| b.as_str()),
            does: does(plan, phase),
        })
        .collect();
    Preview {
        dry_run: true,
        can_run: refused.is_empty(),
        refused: (!refused.is_empty()).then(|| refused.join("; ")),
        target,
        backup,
        precheck,
        steps,
        mode: if r.mode == RestoreMode::Side {
            crate::report::RestoreModeKind::Side
        } else {
            crate::report::RestoreModeKind::InPlace
        },
        confirm: format!("--confirm {db}"),
        contacts: plan.record.contacts.clone(),
        warnings: crate::contacts::warnings(&plan.record.contacts),
    }
}

/// What `phase` does in this restore, with its exact commands.
fn does(plan: &Plan, phase: crate::report::PhaseId) -> String {
    use crate::report::PhaseId as P;
    let r = plan.restore.as_ref().expect("a restore plan");
    let db = &r.target.dbname;
    let side = crate::live::side_name(db);
    let app = r.app.as_ref();
    let into = match r.mode {
        RestoreMode::Side => side.clone(),
        RestoreMode::InPlace { .. } => db.clone(),
    };
    match phase {
        P::ConnectTarget => "connect; refuse a standby, a role that cannot create or replace the database, a leftover side database".into(),
        P::PickBackup => "the newest backup of the repository (at or before --at)".into(),
        P::Precheck => "the whole archive read; its SHA-256 against the manifest".into(),
        P::StopApp => match app {
            Some(a) => format!("run `{}`", a.control.stop_command()),
            None => "skipped: no application named".into(),
        },
        P::SafetyDump => match &r.mode {
            RestoreMode::InPlace {
                safety_dump: Some(p),
            } => format!("pg_dump -Fc {db} -f {}", p.display()),
            _ => String::new(),
        },
        P::DropLive => format!("terminate the sessions of {db}, then DROP DATABASE {db} (the strategy's dropdb)"),
        P::Roles => "create the roles the archive needs that the server lacks (existing roles are never altered)".into(),
        P::Createdb => format!("CREATE DATABASE {into} (encoding, collation and owner from the manifest)"),
        P::PgRestore => format!("pg_restore --exit-on-error -j {} -d {into}", plan.jobs),
        P::Analyze => format!("ANALYZE {into}"),
        P::TamperHook => "testing the tester: run --tamper-sql on the restored database".into(),
        P::Snapshot => format!("integrity snapshot S1 of {into}"),
        P::Compare => "S1 against the manifest's snapshot S0 (row counts, fingerprints, schema, sequences)".into(),
        P::Amcheck => format!("pg_amcheck --heapallindexed on {into}"),
        P::Swap => format!(
            "only if every step before passed: terminate the sessions of {db}, ALTER DATABASE {db} RENAME TO {}, then ALTER DATABASE {side} RENAME TO {db}",
            crate::live::suffixed(db, &format!("{}<time>", crate::live::BEFORE_SUFFIX))
        ),
        P::StartApp => match app {
            Some(a) => format!("run `{}`", a.control.start_command()),
            None => "skipped: no application named".into(),
        },
        P::AppHealthy => match app {
            Some(a) if !a.health_urls.is_empty() => {
                format!("GET {} until healthy, within the app_restart budget", a.health_urls.join(", "))
            }
            _ => "skipped: no --app-health-url".into(),
        },
        P::ObserveApp => "watch the application: health, log errors, metrics".into(),
        P::DropPrevious => "DROP DATABASE of the replaced database, once the application is healthy".into(),
        P::Checklist => "the strategy's 10-item checklist, with evidence".into(),
        other => other.name().to_string(),
    }
}

/// What `pgdrill config restore` would do to the application's live directory.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigPreview {
    /// Always true: nothing was changed.
    pub dry_run: bool,
    /// The backup passed every check and the directory can take it: the restore can run.
    pub can_run: bool,
    /// Why it cannot, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The backup it would restore (`config_YYYYmmdd_HHMMSS`).
    pub backup: String,
    /// When it was taken (its manifest's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Its archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// The archive's SHA-256 (the manifest's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The checks run now, in memory (the archive decrypted, never written).
    pub checks: Vec<String>,
    /// The application's configuration directory (`--to`).
    pub target: String,
    /// Every file of the backup and the directory: would be changed, added, left unchanged,
    /// or kept (in the directory only).
    pub files: Vec<crate::config::replace::Change>,
    /// Where the files it replaces would be kept.
    pub previous: String,
    /// Every step, in order.
    pub steps: Vec<StepPreview>,
    /// The confirmation that runs it: `--confirm BACKUP`.
    pub confirm: String,
}

/// The dry run of `plan` (a configuration restore plan): the backup decrypted and checked in
/// memory, the directory compared with it; writes nothing.
pub fn config_preview(plan: &Plan) -> ConfigPreview {
    let c = plan
        .config_restore
        .as_ref()
        .expect("a configuration restore plan");
    let mut refused = Vec::new();
    let manifest = match crate::config::read_manifest(&c.request.repo, &c.backup) {
        Ok(m) => Some(m),
        Err(e) => {
            refused.push(e.to_string());
            None
        }
    };
    let checks = match crate::config::check(&c.request) {
        Ok(checked) => checked.checks.clone(),
        Err(e) => {
            refused.push(format!("the backup fails its checks: {e}"));
            Vec::new()
        }
    };
    let files = match &manifest {
        Some(m) => match crate::config::replace::changes(&c.request.to, &m.files) {
            Ok(f) => f,
            Err(e) => {
                refused.push(e.to_string());
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let steps = super::phases(plan)
        .into_iter()
        .map(|phase| StepPreview {
            phase,
            budget: phase.budget().map(|b| b.as_str()),
            does: config_does(plan, phase),
        })
        .collect();
    let dir = c.request.to.display().to_string();
    ConfigPreview {
        dry_run: true,
        can_run: refused.is_empty(),
        refused: (!refused.is_empty()).then(|| refused.join("; ")),
        backup: c.backup.clone(),
        created_at: manifest.as_ref().map(|m| {
            m.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }),
        archive: manifest.as_ref().map(|m| {
            crate::config::config_dir(&c.request.repo)
                .join(&m.file)
                .display()
                .to_string()
        }),
        sha256: manifest.as_ref().map(|m| m.sha256.clone()),
        checks,
        previous: format!("{dir}/{}<time>/", crate::config::replace::BEFORE_PREFIX),
        target: dir,
        files,
        steps,
        confirm: format!("--confirm {}", c.backup),
    }
}

/// What `phase` does in this configuration restore, with its exact commands.
fn config_does(plan: &Plan, phase: crate::report::PhaseId) -> String {
    use crate::report::PhaseId as P;
    let app = plan.team_app();
    let dir = plan
        .config_restore
        .as_ref()
        .map(|c| c.request.to.display().to_string())
        .unwrap_or_default();
    match phase {
        P::Precheck => "decrypt and check the backup in memory (archive and files SHA-256, --require keys, VPN config); nothing is written, and the application is stopped only if every check passed".into(),
        P::StopApp => match app {
            Some(a) => format!("run `{}`", a.control.stop_command()),
            None => "skipped: no application named".into(),
        },
        P::ConfigRestore => format!(
            "decrypt and check the backup again; only if every check passed: stage the files in {dir}, keep each file it replaces in {dir}/{}<time>/, rename each restored file into place (its mode kept) and read it back",
            crate::config::replace::BEFORE_PREFIX
        ),
        P::StartApp => match app {
            Some(a) => format!("run `{}`", a.control.start_command()),
            None => "skipped: no application named".into(),
        },
        P::AppHealthy => match app {
            Some(a) if !a.health_urls.is_empty() => format!(
                "GET {} until healthy, within the app_restart budget",
                a.health_urls.join(", ")
            ),
            _ => "skipped: no --app-health-url".into(),
        },
        other => other.name().to_string(),
    }
}

/// What `pgdrill rollback` would do (without `--confirm`): the repository's release tags,
/// the release deployed now, the one it would roll back to, every step with its exact
/// commands, and the confirmation to type. It reads the repository and the deployment
/// marker and writes nothing.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPreview {
    /// Always true: nothing was changed.
    pub dry_run: bool,
    /// The rollback can run as planned.
    pub can_run: bool,
    /// Why it cannot, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The refusal is the command line's (a tag that does not exist): exit 2, not 3.
    #[serde(skip)]
    pub bad_input: bool,
    /// The application's repository.
    pub repository: String,
    /// Its release tags, oldest first in version order.
    pub tags: Vec<String>,
    /// The release deployed now, and where that was read (the marker, or HEAD's tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed: Option<crate::code::DeployedRelease>,
    /// Why the deployed release cannot be told, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_unknown: Option<String>,
    /// The release it would roll back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<crate::code::Release>,
    /// The deploy command.
    pub deploy_command: String,
    /// Where the release goes (the marker is written there).
    pub deploy_dir: String,
    /// The clean checkout the deploy command runs in.
    pub checkout: String,
    /// What must report the target after the deploy: the version endpoint or the marker.
    pub version_from: String,
    /// Every step, in order.
    pub steps: Vec<StepPreview>,
    /// The confirmation that runs it: `--confirm TAG`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    /// Whom to call.
    pub contacts: Vec<crate::contacts::Contact>,
    /// Strategy roles without a real contact.
    pub warnings: Vec<crate::contacts::ContactWarning>,
}

/// The dry run of a code rollback: the repository opened (an absent, non-git or dirty one
/// refused), its tags listed, `--to` resolved against the deployed release; changes nothing.
pub async fn rollback_preview(o: &crate::options::RollbackOptions) -> RollbackPreview {
    use crate::code::{CodeError, ReleaseRepo, RollbackTo};
    let deploy_dir = crate::options::absolute(&o.deploy_dir);
    let mut p = RollbackPreview {
        dry_run: true,
        can_run: false,
        refused: None,
        bad_input: false,
        repository: o.code_repo.display().to_string(),
        tags: Vec::new(),
        deployed: None,
        deployed_unknown: None,
        target: None,
        deploy_command: o.deploy.clone(),
        deploy_dir: deploy_dir.display().to_string(),
        checkout: String::new(),
        version_from: match &o.version_url {
            Some(url) => format!("GET {url} (JSON release/tag and commit/sha)"),
            None => format!(
                "the deployment marker {}",
                crate::code::DeploymentMarker::path_in(&deploy_dir).display()
            ),
        },
        steps: Vec::new(),
        confirm: None,
        contacts: o.record.contacts.clone(),
        warnings: crate::contacts::warnings(&o.record.contacts),
    };
    let resolved = async {
        let to: RollbackTo = o.to.parse()?;
        let repo = ReleaseRepo::open(&o.code_repo).await?;
        p.repository = repo.path().display().to_string();
        p.tags = repo.tags().await?;
        match repo.deployed(Some(&deploy_dir)).await {
            Ok(d) => p.deployed = Some(d),
            Err(e) => p.deployed_unknown = Some(e.to_string()),
        }
        repo.resolve(&to, Some(&deploy_dir)).await
    }
    .await;
    let target = match resolved {
        Ok(t) => t,
        Err(e) => {
            p.bad_input = matches!(e, CodeError::TagMissing { .. } | CodeError::EmptyTarget);
            p.refused = Some(e.to_string());
            return p;
        }
    };
    // The plan a confirmed rollback would run: its steps are the scenario's own.
    match o.clone().prepare(chrono::Utc::now(), target.clone()) {
        Ok(plan) => {
            if let Some(r) = &plan.rollback {
                p.checkout = match &o.checkout_dir {
                    Some(_) => r.checkout.display().to_string(),
                    None => format!("checkout-{} in the report directory (--out)", target.tag),
                };
                p.steps = super::phases(&plan)
                    .into_iter()
                    .map(|phase| StepPreview {
                        phase,
                        budget: phase.budget().map(|b| b.as_str()),
                        does: rollback_does(r, phase),
                    })
                    .collect();
            }
        }
        Err(e) => {
            p.bad_input = e.exit() == crate::error::Exit::Usage;
            p.refused = Some(e.to_string());
            return p;
        }
    }
    p.confirm = Some(format!("--confirm {}", target.tag));
    p.target = Some(target);
    p.can_run = true;
    p
}

/// What `phase` does in this code rollback, with its exact commands.
fn rollback_does(r: &crate::plan::RollbackPlan, phase: crate::report::PhaseId) -> String {
    use crate::report::PhaseId as P;
    match phase {
        P::CodeRollback => format!(
            "git clone --depth 1 --branch {tag} (clean, detached at {commit}) into the checkout; there, sh -c '{deploy}' with PGDRILL_DEPLOY_DIR={dir}; then the marker {marker}",
            tag = r.target.tag,
            commit = r.target.short_commit(),
            deploy = r.deploy,
            dir = r.deploy_dir.display(),
            marker = crate::code::DeploymentMarker::path_in(&r.deploy_dir).display(),
        ),
        P::AppVersion => match &r.version_url {
            Some(url) => format!("GET {url} must report {} at {}", r.target.tag, r.target.commit),
            None => format!(
                "the deployment marker must name {} at {} (no --version-url)",
                r.target.tag, r.target.commit
            ),
        },
        P::AppHealthy => match &r.health {
            Some(a) => format!(
                "GET {} until healthy, within the app_restart budget",
                a.health_urls.join(", ")
            ),
            None => "skipped: no --app-health-url".into(),
        },
        other => other.name().to_string(),
    }
}
