//! The drill report: serde model (report.json is the source of truth), and its renderings
//! for people (report.md, report.html), CI (junit.xml, the step summary), and the evidence
//! around it (history, the sealed bundle).

pub mod chart;
pub mod evidence;
pub mod forecast;
pub mod full;
pub mod history;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod notification;
pub mod objectives;
pub mod prom;
#[cfg(test)]
mod render_tests;
pub mod vocab;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::env::BackendKind;
use crate::error::Error;
use crate::plan::BudgetName;
pub use vocab::{CheckItem, DisasterKind, FailedAt, PhaseId, ScopeKind, SourceKind};

/// Version of the report.json layout; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 2;

/// One drill's report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Layout version.
    pub schema_version: u32,
    /// The drill's id.
    pub drill_id: String,
    /// A drill, a real restore onto a server the user named, or a real code rollback.
    #[serde(default)]
    pub kind: ReportKind,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC.
    pub finished_at: String,
    /// The outcome.
    pub verdict: Verdict,
    /// Why it did not pass, when it did not.
    pub failure: Option<Failure>,
    /// The recovery objectives against what this drill achieved: the top of every rendering.
    /// Absent only in reports of pgdrill versions before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectives: Option<Objectives>,
    /// The record of the exercise: who ran it, who approved it, why, what was found.
    /// Absent only in reports of pgdrill versions before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
    /// Where and with what it ran, and who ran it.
    pub environment: Environment,
    /// Where the data came from.
    pub source: SourceInfo,
    /// The backup that was restored.
    pub backup: Option<BackupInfo>,
    /// The simulated disaster.
    pub disaster: DisasterInfo,
    /// Every phase, in order, timed.
    pub phases: Vec<Phase>,
    /// The RTO budgets and what was used of them.
    pub budgets: Vec<BudgetResult>,
    /// The integrity comparison of the data before the backup and after the restore.
    pub integrity: Option<Integrity>,
    /// The recovery point measured by the ledger writer (`--scope full`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<crate::rpo::RpoReport>,
    /// `full` for a full drill (database, configuration, code); absent for a database drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeKind>,
    /// The configuration restored (`--scope full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<full::ConfigRestored>,
    /// The code rolled back (`--scope full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<full::Rollback>,
    /// The negative controls: damaged copies the drill's checks had to fail, and how many did.
    /// Absent only in reports of pgdrill versions before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    /// The strategy's verification checklist.
    pub checklist: Vec<ChecklistItem>,
    /// Anything an auditor should know that has no field of its own.
    pub notes: Vec<String>,
    /// The emergency contacts (`--contact`, `[contacts]`): whom to call when it fails. Empty
    /// in reports of pgdrill versions before it.
    #[serde(default)]
    pub contacts: Vec<crate::contacts::Contact>,
    /// What every reader must see that does not fail the drill: today, a strategy role
    /// without a real emergency contact.
    #[serde(default)]
    pub warnings: Vec<crate::contacts::ContactWarning>,
    /// What happened to each `--notify` webhook (the URL redacted): sent or held back by
    /// `--notify-on`, each attempt's answer. Never part of the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<notification::Delivery>,
    /// A real restore (`kind: restore`): the server, what was replaced and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreInfo>,
    /// A configuration restore (`kind: config_restore`): the backup, the directory, the files
    /// restored and where the previous ones are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_restore: Option<ConfigRestoreInfo>,
    /// The restore target's restore-relevant settings, read from it after the restore, and
    /// where each came from. Absent when no restore finished, and in reports of pgdrill
    /// versions before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_settings: Option<ServerSettingsInfo>,
    /// A point-in-time recovery (`--pgbackrest-stanza`, `--barman-server`): the tool, the stanza or server, the backup
    /// restored, the WAL range, the target and where recovery stopped. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<crate::pitr::PitrReport>,
    /// The RTO forecast of this drill's backend and `-j` over the drill history and this
    /// drill (`pgdrill forecast`), projected at this backup's size; absent when the history
    /// has too few backup sizes for a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<forecast::Group>,
}

/// The settings the restore ran with: the measured RTO is this server's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerSettingsInfo {
    /// Each restore-relevant setting (then any other given with `--server-setting`), as the
    /// server reported it after the restore.
    pub settings: Vec<EffectiveSetting>,
    /// The server `--server-settings-from` copied settings from, password as `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
    /// What the settings mean for the measured RTO (`fsync` or `full_page_writes` off):
    /// shown with the report's warnings, never failing the drill.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One setting of the restore target after the restore.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EffectiveSetting {
    /// The parameter.
    pub name: String,
    /// Its value, as `SHOW` says it.
    pub value: String,
    /// Who set it: `default` (pgdrill did not), `server_setting`, `copied`.
    pub origin: crate::pg::settings::SettingOrigin,
    /// The value given, when pgdrill gave one (the server may spell it otherwise: `1024MB`
    /// shows as `1GB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// `pg_settings.source`: `default`, `configuration file`, `command line`…
    pub source: String,
}

impl ServerSettingsInfo {
    /// The report's section from what the server said and what the plan asked for.
    pub fn of(
        effective: Vec<crate::pg::settings::Effective>,
        asked: &crate::pg::settings::ServerSettings,
    ) -> ServerSettingsInfo {
        use crate::pg::settings::SettingOrigin;
        let warnings = crate::pg::settings::durability_warning(&effective)
            .into_iter()
            .collect();
        let settings = effective
            .into_iter()
            .map(|e| {
                let given = asked.get(&e.name);
                EffectiveSetting {
                    origin: given.map_or(SettingOrigin::Default, |g| g.origin),
                    requested: given.map(|g| g.value.clone()),
                    name: e.name,
                    value: e.value,
                    source: e.source,
                }
            })
            .collect();
        ServerSettingsInfo {
            settings,
            copied_from: asked.copied_from.clone(),
            warnings,
        }
    }

    /// `shared_buffers 1GB, max_wal_size 4GB …`: the settings in one line.
    pub fn line(&self) -> String {
        self.settings
            .iter()
            .map(|s| format!("{} {}", s.name, s.value))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a report is of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// A drill into servers pgdrill made and destroyed.
    #[default]
    Drill,
    /// `pgdrill restore`: the real restore onto a server the user named.
    Restore,
    /// `pgdrill config restore --confirm`: the configuration restored into the
    /// application's live directory.
    ConfigRestore,
    /// `pgdrill rollback`: the real code rollback of the team's own deployment.
    Rollback,
}

/// A configuration restore's facts: what was put where, what was kept, the application.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConfigRestoreInfo {
    /// The backup restored (`config_YYYYmmdd_HHMMSS`).
    pub backup: String,
    /// SHA-256 of its archive, once checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_sha256: Option<String>,
    /// The application's configuration directory (`--to`).
    pub target: String,
    /// The confirmation given (`--confirm`).
    pub confirmed: String,
    /// `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The checked files were put in place.
    pub restored: bool,
    /// Every file of the backup and the directory: changed, added, unchanged, kept.
    pub files: Vec<crate::config::replace::Change>,
    /// Where the files the restore replaced are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Every check made, in words.
    pub checks: Vec<String>,
    /// The command that stopped the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_stop: Option<String>,
    /// The command that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_start: Option<String>,
    /// The health endpoints asked after the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_urls: Vec<String>,
    /// The cleanup started the application again (the restore ended before `start_app`).
    pub app_restarted_by_cleanup: bool,
}

/// How a real restore replaced the live database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreModeKind {
    /// Into `<db>__pgdrill_restoring`, verified, then swapped in.
    #[default]
    Side,
    /// `dropdb`, `createdb`, `pg_restore` (`--in-place`).
    InPlace,
}

/// A real restore's facts, for the auditor and for the on-call engineer after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RestoreInfo {
    /// The named server, the password as `***`.
    pub target: String,
    /// The live database.
    pub database: String,
    /// The server's `server_version`.
    pub server_version: String,
    /// Side restore and swap, or in place.
    pub mode: RestoreModeKind,
    /// The confirmation given (`--confirm`).
    pub confirmed: String,
    /// `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The side database the restore filled (side mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    /// The side database was swapped in as the live one.
    pub swapped: bool,
    /// The side database was dropped by the cleanup (not swapped in).
    pub side_dropped: bool,
    /// The name the replaced database is kept under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// `--drop-previous` dropped it.
    pub previous_dropped: bool,
    /// The SQL that swaps the previous database back, while it is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_back: Option<String>,
    /// The sessions connected to the live database before the restore started.
    pub sessions_before: Vec<crate::live::Session>,
    /// The sessions pgdrill terminated (after the application was stopped).
    pub sessions_terminated: Vec<crate::live::Session>,
    /// The in-place restore's safety dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_dump: Option<SafetyDump>,
    /// The command that stopped the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_stop: Option<String>,
    /// The command that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_start: Option<String>,
    /// The cleanup started the application again (the restore ended before `start_app`).
    pub app_restarted_by_cleanup: bool,
}

/// The dump of the live database an in-place restore takes before dropping it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SafetyDump {
    /// Where it is.
    pub file: String,
    /// Its size.
    pub size_bytes: u64,
    /// Its SHA-256.
    pub sha256: String,
}

/// The outcome of a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every phase passed, the data is identical, every budget held.
    Pass,
    /// The drill ran and something about the backup or the recovery is wrong.
    Fail,
    /// The drill could not run here (environment); not a verdict on the backup.
    Error,
}

/// What failed first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "FailureJson")]
pub struct Failure {
    /// The phase that failed, or the budget that was exceeded.
    pub phase: FailedAt,
    /// The kind of failure.
    pub class: FailureClass,
    /// What went wrong, for people.
    pub message: String,
}

/// report.json's `failure` as read: a budget named like a phase is the budget when the class
/// says so (see [`FailedAt::as_budget`]).
#[derive(Deserialize)]
struct FailureJson {
    phase: FailedAt,
    class: FailureClass,
    message: String,
}

impl From<FailureJson> for Failure {
    fn from(j: FailureJson) -> Self {
        let phase = match j.class {
            FailureClass::BudgetExceeded => j.phase.as_budget(),
            _ => j.phase,
        };
        Failure {
            phase,
            class: j.class,
            message: j.message,
        }
    }
}

/// `phase: class`, as history.ndjson's `failed` has it.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.phase, self.class)
    }
}

/// The kinds of failure, stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Taking the backup failed.
    BackupFailed,
    /// The backup file is missing, unreadable, truncated, corrupted or not what its manifest says.
    BackupUnusable,
    /// The backup set lacks what a restore needs from elsewhere (roles no globals file holds).
    BackupIncomplete,
    /// pg_restore or a step around it failed.
    RestoreFailed,
    /// The restored data differs from what was backed up.
    IntegrityMismatch,
    /// A verification checklist item failed.
    ChecklistFailed,
    /// A phase group took longer than its RTO budget.
    BudgetExceeded,
    /// The measured data-loss window was longer than the recovery point objective.
    RpoExceeded,
    /// A negative control was not detected: a check the drill relies on cannot fail.
    DetectionFailed,
    /// The machine could not run the drill.
    Environment,
}

impl FailureClass {
    /// The name in report.json (the serde rename gives the same string).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::BackupFailed => "backup_failed",
            FailureClass::BackupUnusable => "backup_unusable",
            FailureClass::BackupIncomplete => "backup_incomplete",
            FailureClass::RestoreFailed => "restore_failed",
            FailureClass::IntegrityMismatch => "integrity_mismatch",
            FailureClass::ChecklistFailed => "checklist_failed",
            FailureClass::BudgetExceeded => "budget_exceeded",
            FailureClass::RpoExceeded => "rpo_exceeded",
            FailureClass::DetectionFailed => "detection_failed",
            FailureClass::Environment => "environment",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where the drill ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// `native` or `docker`.
    pub backend: BackendKind,
    /// `SELECT version()` of the restore target.
    pub server_version: String,
    /// `--version` of each PostgreSQL program used.
    pub tools: BTreeMap<String, String>,
    /// pgdrill's version.
    pub pgdrill_version: String,
    /// Host name of the machine that ran the drill.
    pub host: String,
    /// The OS user who ran it (and the CI run, when there is one).
    pub run_by: String,
}

/// Where the data came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceInfo {
    /// `generated`, `dsn`, `backup_file`, `release` or `config_backup`.
    pub kind: SourceKind,
    /// Generator seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Generated users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The source database, password redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    /// The database name that was backed up and restored (empty for a code rollback or a
    /// configuration restore, which touch no database).
    pub database: String,
    /// The code repository (a rollback) or the configuration archive (a configuration
    /// restore) the work came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Row counts loaded by the generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<serde_json::Value>,
}

/// The backup that was restored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupInfo {
    /// Path of the dump.
    pub file: String,
    /// Its size.
    pub size_bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// How long taking it took (0 when an existing file was restored).
    pub duration_ms: u64,
    /// When it was taken, if known.
    pub created_at: Option<String>,
    /// The manifest beside it, if any.
    pub manifest: Option<String>,
    /// The globals (roles) file, if any.
    pub globals: Option<String>,
    /// The manifest's own SHA-256, hex, when there is a manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// The restored database's size on the target (`pg_database_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_size_bytes: Option<u64>,
    /// The backup before this one in its directory, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Neighbour>,
    /// The backup after this one in its directory, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Neighbour>,
    /// Where this backup stands in the strategy's retention (kept 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// The repository's last `pgdrill verify`, from its audit log (`--repo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_last_verify: Option<String>,
}

/// Another backup in the same directory: its file and when it was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Neighbour {
    /// Its absolute path.
    pub file: String,
    /// When it was taken (its manifest's time, else the file's modification time).
    pub taken_at: Option<String>,
}

/// The simulated disaster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DisasterInfo {
    /// `server-loss` or `drop-db`, or `none` for `--backup-file`.
    pub kind: DisasterKind,
    /// What was destroyed, what was created.
    pub detail: String,
}

/// One timed step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    /// Step name, e.g. `pg_restore`.
    pub name: PhaseId,
    /// The budget it counts against, if any.
    pub budget: Option<BudgetName>,
    /// Outcome.
    pub status: Status,
    /// Offset from the drill's start, for the timeline.
    pub started_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// What it did or why it failed or was skipped.
    pub detail: String,
}

/// Outcome of a phase or a checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran and passed.
    Pass,
    /// It ran and failed, or could not run when it had to.
    Fail,
    /// It did not run; the detail says why.
    Skipped,
}

/// One budget's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetResult {
    /// Budget name.
    pub name: BudgetName,
    /// Allowance.
    pub limit_ms: u64,
    /// Time used by its phases (those that ran).
    pub used_ms: u64,
    /// What the measured time says against the allowance.
    pub verdict: BudgetVerdict,
    /// Why the verdict is `incomplete` or `skipped`: which phases did not run, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl BudgetResult {
    /// How the `reason` of a budget none of whose phases ran (the drill stopped first) begins;
    /// any other `skipped` budget was skipped by design (no application), and its reason says so.
    pub const NONE_RAN: &'static str = "none of its phases ran";
}

/// A budget's verdict. A budget whose phases ran (all or some) is always judged on the time
/// they used; `skipped` is only for one none of whose phases ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetVerdict {
    /// Every phase of it ran, in less than the allowance.
    Pass,
    /// Its phases used more than the allowance (whether or not all of them ran).
    Fail,
    /// Some of its phases ran, within the allowance so far, and the rest did not (the drill
    /// stopped): the recovery did not finish, so the budget is not shown to hold.
    Incomplete,
    /// None of its phases ran; `reason` says why.
    Skipped,
}

impl BudgetVerdict {
    /// Its name in report.json.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetVerdict::Pass => "pass",
            BudgetVerdict::Fail => "fail",
            BudgetVerdict::Incomplete => "incomplete",
            BudgetVerdict::Skipped => "skipped",
        }
    }
}

/// The recovery objectives against the drill's achievements: the RTO rows are `budgets`;
/// this adds what the RTO clock covered and the recovery point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Objectives {
    /// What the RTO clock (the total budget) measured, in words: from which phase to which,
    /// and what it leaves out.
    pub rto_clock: String,
    /// The phase the clock starts at (the first one counted in a budget).
    pub clock_starts: Option<PhaseId>,
    /// The last phase counted.
    pub clock_ends: Option<PhaseId>,
    /// The recovery point objective against this drill.
    pub rpo: RpoObjective,
}

/// The recovery point objective against what a drill shows of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpoObjective {
    /// The objective (`--rpo`, the strategy's 15 minutes).
    pub objective_ms: u64,
    /// The data-loss window measured by the ledger writer (`--scope full`), when it was.
    pub achieved_ms: Option<u64>,
    /// `pass`, `fail` or `not_measured` (a database-scope drill has no writer).
    pub verdict: ObjectiveVerdict,
    /// How old the restored backup was at the moment of the disaster (or, restoring an
    /// existing file, when the drill started): the most a restore of it can have lost.
    pub backup_age_ms: Option<u64>,
    /// The backup's age against the objective.
    pub backup_age_verdict: ObjectiveVerdict,
    /// What was and was not measured, in words.
    pub note: String,
}

/// An objective's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveVerdict {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// This drill did not measure it; the note says why.
    NotMeasured,
}

impl ObjectiveVerdict {
    /// Its name in report.json.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectiveVerdict::Pass => "pass",
            ObjectiveVerdict::Fail => "fail",
            ObjectiveVerdict::NotMeasured => "not_measured",
        }
    }

    /// Met when `achieved` ≤ `objective`.
    pub fn of(achieved: u64, objective: u64) -> Self {
        if achieved <= objective {
            ObjectiveVerdict::Pass
        } else {
            ObjectiveVerdict::Fail
        }
    }
}

/// The record of the exercise an auditor files: who, why, under which ticket, what was found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Who ran the drill (`--operator`, default `$USER@host`).
    pub operator: String,
    /// Who approved it (`--approver`).
    pub approver: Option<String>,
    /// The change or incident ticket (`--ticket`).
    pub ticket: Option<String>,
    /// Why it ran (`--purpose`), e.g. "monthly full restore test".
    pub purpose: Option<String>,
    /// The environment drilled (`--environment`): staging, production…
    pub environment: Option<String>,
    /// When the next test is scheduled (`--next-test`), RFC 3339.
    pub next_scheduled_test: Option<String>,
    /// The CI run that ran it (`$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`).
    pub ci_run_url: Option<String>,
    /// The git commit pgdrill was built from.
    pub pgdrill_commit: Option<String>,
    /// The issues found: the operator's (`--issue`) and those the drill found itself.
    pub issues_found: Vec<String>,
}

/// The integrity section: the comparison plus what it was compared against.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Integrity {
    /// What the restored data was compared with.
    pub basis: String,
    /// The comparison.
    #[serde(flatten)]
    pub comparison: crate::snapshot::Comparison,
}

/// The negative controls of a drill (`--negative-controls`) and the coverage they give.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Detection {
    /// `auto`, `all` or `none`.
    pub mode: crate::plan::NegativeControls,
    /// Each control, in the order run.
    pub controls: Vec<ControlResult>,
    /// Controls that ran (not those not applicable).
    pub run: usize,
    /// Of those, the ones that failed as they should.
    pub detected: usize,
    /// `detected / run`, absent when none ran.
    pub coverage: Option<f64>,
    /// Time spent on the controls, apart from (never in) the RTO budgets.
    pub duration_ms: u64,
    /// Why no control ran, when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One negative control: what was damaged, what the drill's check had to say, what it said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlResult {
    /// Which control.
    pub control: vocab::Control,
    /// What was injected, and into which copy.
    pub injected: String,
    /// The failure class the check must produce.
    pub expected: FailureClass,
    /// The class it produced, when it failed.
    pub produced: Option<FailureClass>,
    /// `detected`, `missed` or `not_applicable`.
    pub outcome: vocab::ControlOutcome,
    /// How long it took.
    pub duration_ms: u64,
    /// The check's own words, or why the control did not apply.
    pub detail: String,
}

impl Detection {
    /// The section of a drill with `mode` and these controls, coverage counted.
    pub fn of(
        mode: crate::plan::NegativeControls,
        controls: Vec<ControlResult>,
        note: Option<String>,
    ) -> Detection {
        use vocab::ControlOutcome as O;
        let run = controls
            .iter()
            .filter(|c| c.outcome != O::NotApplicable)
            .count();
        let detected = controls.iter().filter(|c| c.outcome == O::Detected).count();
        Detection {
            mode,
            duration_ms: controls.iter().map(|c| c.duration_ms).sum(),
            controls,
            run,
            detected,
            coverage: (run > 0).then(|| detected as f64 / run as f64),
            note,
        }
    }

    /// `4/4 (100%)`, or `none run`.
    pub fn coverage_text(&self) -> String {
        match self.coverage {
            Some(c) => format!("{}/{} ({:.0}%)", self.detected, self.run, c * 100.0),
            None => "none run".into(),
        }
    }
}

/// One item of the strategy's verification checklist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChecklistItem {
    /// The item; report.json has its title, as the strategy words it.
    pub item: CheckItem,
    /// Outcome.
    pub status: Status,
    /// What was looked at and what it showed.
    pub evidence: String,
}

impl Report {
    /// The backup's age when the drill finished (none when the backup's time is unknown).
    pub fn backup_age_ms(&self) -> Option<u64> {
        let b = self.backup.as_ref()?;
        let created = crate::duration::parse_time(b.created_at.as_deref()?).ok()?;
        let finished = crate::duration::parse_time(&self.finished_at).ok()?;
        u64::try_from((finished - created).num_milliseconds()).ok()
    }

    /// Writes report.json, report.md, junit.xml and report.html into `dir`.
    pub fn write_all(&self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Output {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = serde_json::to_string_pretty(self).expect("report serialises");
        write(dir.join("report.json"), json.as_bytes())?;
        write(dir.join("report.md"), markdown::render(self).as_bytes())?;
        write(dir.join("junit.xml"), junit::render(self).as_bytes())?;
        let value: serde_json::Value = serde_json::from_str(&json).expect("report.json parses");
        write(dir.join("report.html"), html::render(&value).as_bytes())?;
        Ok(())
    }

    /// After [`Report::write_all`]: appends the history line, seals `dir` with SHA256SUMS
    /// (signed into SHA256SUMS.sig when the options carry a key), and appends the CI step summary when `$GITHUB_STEP_SUMMARY` names a file; returns the
    /// warnings to show (see [`evidence::publish`]).
    pub fn publish(&self, dir: &Path, opts: &evidence::Publish) -> Result<Vec<String>, Error> {
        evidence::publish(self, dir, opts)
    }

    /// The short summary printed on stdout.
    pub fn summary(&self) -> String {
        markdown::summary(self)
    }

    /// The line that ends every failure message: whom to call.
    pub fn call_line(&self) -> String {
        crate::contacts::call_line(&self.contacts)
    }

    /// Every warning a reader must see, in words: the contacts', then the restore target's
    /// settings' (a restore faster than a durable server's).
    pub fn warning_messages(&self) -> Vec<&str> {
        self.warnings
            .iter()
            .map(|w| w.message.as_str())
            .chain(
                self.server_settings
                    .iter()
                    .flat_map(|s| s.warnings.iter().map(String::as_str)),
            )
            .collect()
    }
}

/// The failure a drill records when its data-loss window exceeded the objective (phase `rpo`,
/// class `rpo_exceeded`); `None` when it held. The schedule's worst case alone never fails a
/// drill: see [`crate::rpo::RpoReport::worst_case_fits`].
pub fn rpo_failure(rpo: &crate::rpo::RpoReport) -> Option<Failure> {
    (rpo.verdict == crate::rpo::RpoVerdict::Fail).then(|| Failure {
        phase: PhaseId::Rpo.into(),
        class: FailureClass::RpoExceeded,
        message: format!(
            "the data-loss window was {} but the recovery point objective is {} ({} acknowledged commits lost)",
            markdown::secs(rpo.achieved_ms),
            markdown::secs(rpo.objective_ms),
            rpo.lost_commits
        ),
    })
}

fn write(path: std::path::PathBuf, bytes: &[u8]) -> Result<(), Error> {
    // A full --out must not leave half a report under its final name; the bundle is handed
    // on, so its files get the mode any new file gets.
    crate::digest::write_atomic_readable(&path, bytes)
        .map_err(|source| Error::Output { path, source })
}
