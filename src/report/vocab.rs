//! The report's fixed vocabulary: phases, checklist items, where a drill failed, and the
//! kinds of backend, source, disaster and scope. Each is an enum serialised (serde renames)
//! and displayed as exactly the string report.json has always had, so a typo is a compile
//! error and report.json stays byte-identical. This module knows nothing of the drill: the
//! report, the events and the history use it without depending on the executor.

use serde::{Deserialize, Serialize};

use crate::plan::BudgetName;

/// Writes `s` honouring width and alignment (`{:<14}`), as a `&str` would.
fn pad(f: &mut std::fmt::Formatter<'_>, s: &str) -> std::fmt::Result {
    f.pad(s)
}

/// One phase of a drill: its name in report.json and the budget it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseId {
    /// A disposable server for the source (or the restore when there is no source).
    Provision,
    /// `--repo`: the backup to restore chosen from the repository (`--pick`).
    PickBackup,
    /// The generated data set.
    Seed,
    /// The application against the source, writing during the backup.
    AppStart,
    /// The application's configuration files backed up, encrypted (full scope).
    ConfigBackup,
    /// The ledger writer that measures the RPO, started.
    WriterStart,
    /// pg_dump, the globals and the manifest with S0.
    Backup,
    /// The loss being drilled.
    Disaster,
    /// The application stopped before the database is touched.
    StopApp,
    /// A new empty server provisioned for the lost one (server-loss): part of the recovery.
    ReplaceServer,
    /// The backup file checked against its manifest and its TOC.
    Precheck,
    /// Roles from the globals file.
    Roles,
    /// The database recreated with the manifest's settings.
    Createdb,
    /// pg_restore itself.
    PgRestore,
    /// A point-in-time recovery's own target on its source (`--pitr-source-dsn`): snapshot
    /// S0 in one transaction under SHARE locks, the ledger stopped, the WAL switched and
    /// archived. The source counts as lost from here.
    RecoveryPoint,
    /// A physical backup restored into a new empty data directory (`pgbackrest restore`).
    PitrRestore,
    /// The restored server started, its WAL replayed to the target, promoted: checked.
    RecoveryReplay,
    /// ANALYZE after the restore.
    Analyze,
    /// The configuration restored from its newest backup before the disaster, and checked.
    ConfigRestore,
    /// The code rolled back to the target release: checked out clean and deployed.
    CodeRollback,
    /// The `--tamper-sql` test hook.
    TamperHook,
    /// Snapshot S1 of the restored database.
    Snapshot,
    /// S1 against S0 (or its own consistency checks).
    Compare,
    /// pg_amcheck --heapallindexed.
    Amcheck,
    /// The restored ledger against the writer's acknowledged commits: the RPO achieved.
    Rpo,
    /// The application restarted against the restored server.
    StartApp,
    /// Its health endpoint answering within the app_restart budget.
    AppHealthy,
    /// The restarted application reports the rolled-back release and commit.
    AppVersion,
    /// The restarted application watched for the checklist.
    ObserveApp,
    /// The strategy's ten-item checklist.
    Checklist,
    /// Damaged copies the drill's own checks must fail (`--negative-controls`).
    NegativeControls,
    /// A real restore: the named server inspected (reachable, primary, rights, sessions).
    ConnectTarget,
    /// An in-place restore: the live database dumped first, so nothing is lost.
    SafetyDump,
    /// An in-place restore: the live database dropped (the strategy's `dropdb`).
    DropLive,
    /// A side restore: the verified database renamed into the live one's place.
    Swap,
    /// A side restore with `--drop-previous`: the replaced database dropped once the
    /// application is healthy.
    DropPrevious,
}

impl PhaseId {
    /// The phase's name, as in report.json (the serde rename gives the same string).
    pub fn name(self) -> &'static str {
        use PhaseId::*;
        match self {
            Provision => "provision",
            PickBackup => "pick_backup",
            Seed => "seed",
            AppStart => "app_start",
            ConfigBackup => "config_backup",
            WriterStart => "writer_start",
            Backup => "backup",
            Disaster => "disaster",
            StopApp => "stop_app",
            ReplaceServer => "replace_server",
            Precheck => "precheck",
            Roles => "roles",
            Createdb => "createdb",
            PgRestore => "pg_restore",
            RecoveryPoint => "recovery_point",
            PitrRestore => "pitr_restore",
            RecoveryReplay => "recovery_replay",
            Analyze => "analyze",
            ConfigRestore => "config_restore",
            CodeRollback => "code_rollback",
            TamperHook => "tamper_hook",
            Snapshot => "snapshot",
            Compare => "compare",
            Amcheck => "amcheck",
            Rpo => "rpo",
            StartApp => "start_app",
            AppHealthy => "app_healthy",
            AppVersion => "app_version",
            ObserveApp => "observe_app",
            Checklist => "checklist",
            NegativeControls => "negative_controls",
            ConnectTarget => "connect_target",
            SafetyDump => "safety_dump",
            DropLive => "drop_live",
            Swap => "swap",
            DropPrevious => "drop_previous",
        }
    }

    /// The budget the phase's time counts against, if any.
    pub fn budget(self) -> Option<BudgetName> {
        use PhaseId::*;
        match self {
            Provision | Seed | AppStart | ConfigBackup | WriterStart | Backup | Disaster
            | RecoveryPoint | TamperHook => None,
            // A control's time is the drill proving itself, not recovering: never in the RTO.
            NegativeControls => None,
            // Housekeeping after the recovery is complete.
            DropPrevious => None,
            // Finding the file to restore is part of a real restore's time.
            // Provisioning the server that replaces a lost one is recovery time too.
            // A point-in-time recovery's restore and WAL replay are its database restore.
            PickBackup | StopApp | ReplaceServer | Precheck | Roles | Createdb | PgRestore
            | Analyze | ConnectTarget | SafetyDump | DropLive | Swap | PitrRestore
            | RecoveryReplay => Some(BudgetName::DatabaseRestore),
            ConfigRestore => Some(BudgetName::ConfigRestore),
            CodeRollback | AppVersion => Some(BudgetName::CodeRollback),
            StartApp | AppHealthy => Some(BudgetName::AppRestart),
            Snapshot | Compare | Amcheck | Rpo | ObserveApp | Checklist => {
                Some(BudgetName::Verification)
            }
        }
    }
}

impl std::fmt::Display for PhaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        pad(f, self.name())
    }
}

/// A negative control: a deliberate damage, on a copy, that one of the drill's checks must
/// catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// A row deleted in a clone of the restored database: the comparison must name the table.
    RowLost,
    /// One column of one row changed in a clone: a fingerprint mismatch naming the table.
    ValueChanged,
    /// One byte in the middle of the dump flipped, in a streamed view: precheck must refuse it.
    ByteFlipped,
    /// The dump cut to half its length, in a streamed view: precheck must refuse it.
    Truncated,
    /// A half-written copy of the manifest: the backup must be refused as unusable.
    ManifestUnreadable,
    /// The backup dated older than the RPO: the freshness check must flag it.
    StaleBackup,
    /// The wrong release deployed in the rollback (full scope): the version check must fail.
    WrongAppVersion,
}

impl Control {
    /// Its name in report.json.
    pub fn name(self) -> &'static str {
        match self {
            Control::RowLost => "row_lost",
            Control::ValueChanged => "value_changed",
            Control::ByteFlipped => "byte_flipped",
            Control::Truncated => "truncated",
            Control::ManifestUnreadable => "manifest_unreadable",
            Control::StaleBackup => "stale_backup",
            Control::WrongAppVersion => "wrong_app_version",
        }
    }
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        pad(f, self.name())
    }
}

/// What a negative control showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlOutcome {
    /// The check failed with the expected class (and, for data, named the table).
    Detected,
    /// The check passed the damaged copy, or failed with another class: it cannot be trusted.
    Missed,
    /// The control cannot apply to this drill (no manifest, no rows, not a full drill).
    NotApplicable,
}

impl ControlOutcome {
    /// Its name in report.json.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlOutcome::Detected => "detected",
            ControlOutcome::Missed => "missed",
            ControlOutcome::NotApplicable => "not_applicable",
        }
    }
}

/// Where a drill failed first: a phase, or a budget its phases overran. Serialised as the
/// bare name (`"pg_restore"`, `"database_restore"`), as report.json has always had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FailedAt {
    /// A phase failed.
    Phase(PhaseId),
    /// A budget was exceeded (class `budget_exceeded`).
    Budget(BudgetName),
}

impl FailedAt {
    /// The name in report.json.
    pub fn as_str(self) -> &'static str {
        match self {
            FailedAt::Phase(p) => p.name(),
            FailedAt::Budget(b) => b.as_str(),
        }
    }

    /// `config_restore` and `code_rollback` name both a phase and a budget, and untagged
    /// deserialisation reads them as the phase: the failure's class (`budget_exceeded`) says
    /// which it was, so a report read back equals the one written.
    pub(crate) fn as_budget(self) -> FailedAt {
        match self {
            FailedAt::Phase(PhaseId::ConfigRestore) => FailedAt::Budget(BudgetName::ConfigRestore),
            FailedAt::Phase(PhaseId::CodeRollback) => FailedAt::Budget(BudgetName::CodeRollback),
            other => other,
        }
    }
}

impl From<PhaseId> for FailedAt {
    fn from(p: PhaseId) -> Self {
        FailedAt::Phase(p)
    }
}

impl From<BudgetName> for FailedAt {
    fn from(b: BudgetName) -> Self {
        FailedAt::Budget(b)
    }
}

impl std::fmt::Display for FailedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        pad(f, self.as_str())
    }
}

/// One of the strategy's ten "Verification Checklist" items; report.json has its title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckItem {
    /// 1. Database connection successful.
    #[serde(rename = "Database connection successful")]
    DatabaseConnection,
    /// 2. All critical tables have data.
    #[serde(rename = "All critical tables have data")]
    CriticalTablesHaveData,
    /// 3. User data integrity verified.
    #[serde(rename = "User data integrity verified")]
    UserData,
    /// 4. Subscription data integrity verified.
    #[serde(rename = "Subscription data integrity verified")]
    SubscriptionData,
    /// 5. Payment data integrity verified.
    #[serde(rename = "Payment data integrity verified")]
    PaymentData,
    /// 6. Application health checks pass.
    #[serde(rename = "Application health checks pass")]
    AppHealth,
    /// 7. Background workers running.
    #[serde(rename = "Background workers running")]
    WorkersRunning,
    /// 8. No errors in logs.
    #[serde(rename = "No errors in logs")]
    NoLogErrors,
    /// 9. System state is HEALTHY.
    #[serde(rename = "System state is HEALTHY")]
    SystemHealthy,
    /// 10. Monitoring shows normal metrics.
    #[serde(rename = "Monitoring shows normal metrics")]
    NormalMetrics,
}

impl CheckItem {
    /// The ten items in the strategy's order.
    pub const ALL: [CheckItem; 10] = [
        CheckItem::DatabaseConnection,
        CheckItem::CriticalTablesHaveData,
        CheckItem::UserData,
        CheckItem::SubscriptionData,
        CheckItem::PaymentData,
        CheckItem::AppHealth,
        CheckItem::WorkersRunning,
        CheckItem::NoLogErrors,
        CheckItem::SystemHealthy,
        CheckItem::NormalMetrics,
    ];

    /// The items judged from the running application (6–10).
    pub const APP: [CheckItem; 5] = [
        CheckItem::AppHealth,
        CheckItem::WorkersRunning,
        CheckItem::NoLogErrors,
        CheckItem::SystemHealthy,
        CheckItem::NormalMetrics,
    ];

    /// The phases whose evidence decides the item: when one of them failed, the item's
    /// failure is that phase's fault, not another (junit.xml counts it once).
    pub fn decided_by(self) -> &'static [PhaseId] {
        use CheckItem::*;
        match self {
            DatabaseConnection | CriticalTablesHaveData => &[PhaseId::Snapshot],
            UserData | SubscriptionData | PaymentData => &[PhaseId::Snapshot, PhaseId::Compare],
            AppHealth | WorkersRunning | NoLogErrors | SystemHealthy | NormalMetrics => {
                &[PhaseId::StartApp, PhaseId::AppHealthy, PhaseId::ObserveApp]
            }
        }
    }

    /// The item's title, worded as in the strategy (and in report.json).
    pub fn title(self) -> &'static str {
        use CheckItem::*;
        match self {
            DatabaseConnection => "Database connection successful",
            CriticalTablesHaveData => "All critical tables have data",
            UserData => "User data integrity verified",
            SubscriptionData => "Subscription data integrity verified",
            PaymentData => "Payment data integrity verified",
            AppHealth => "Application health checks pass",
            WorkersRunning => "Background workers running",
            NoLogErrors => "No errors in logs",
            SystemHealthy => "System state is HEALTHY",
            NormalMetrics => "Monitoring shows normal metrics",
        }
    }
}

impl std::fmt::Display for CheckItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        pad(f, self.title())
    }
}

/// Where a drill's data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The fixtures schema with generated data.
    Generated,
    /// A live database (`--source-dsn`).
    Dsn,
    /// An existing archive (`--backup-file`).
    BackupFile,
    /// A code rollback's application repository (`pgdrill rollback`): no database.
    Release,
    /// A configuration restore's age archive (`pgdrill config restore`): no database.
    ConfigBackup,
    /// A pgBackRest stanza restored to a point in time (`--pgbackrest-stanza`).
    Pgbackrest,
    /// A Barman server restored to a point in time (`--barman-server`).
    Barman,
}

impl SourceKind {
    /// The name in report.json.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Generated => "generated",
            SourceKind::Dsn => "dsn",
            SourceKind::BackupFile => "backup_file",
            SourceKind::Release => "release",
            SourceKind::ConfigBackup => "config_backup",
            SourceKind::Pgbackrest => "pgbackrest",
            SourceKind::Barman => "barman",
        }
    }
}

impl From<&crate::plan::Source> for SourceKind {
    fn from(s: &crate::plan::Source) -> Self {
        use crate::plan::Source;
        match s {
            Source::Generated { .. } => SourceKind::Generated,
            Source::Dsn(_) => SourceKind::Dsn,
            Source::BackupFile(_) => SourceKind::BackupFile,
            Source::Pitr(p) => match p.tool {
                crate::pitr::PitrTool::Pgbackrest => SourceKind::Pgbackrest,
                crate::pitr::PitrTool::Barman => SourceKind::Barman,
            },
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        pad(f, self.as_str())
    }
}

/// The disaster a report records: the plan's, or none when an existing archive is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisasterKind {
    /// The server and all it had are gone.
    ServerLoss,
    /// The database was dropped on the running server.
    DropDb,
    /// Nothing was destroyed: `--backup-file` restores an archive it did not take.
    None,
}

impl DisasterKind {
    /// The name in report.json.
    pub fn as_str(self) -> &'static str {
        match self {
            DisasterKind::ServerLoss => "server-loss",
            DisasterKind::DropDb => "drop-db",
            DisasterKind::None => "none",
        }
    }
}

impl From<crate::plan::Disaster> for DisasterKind {
    fn from(d: crate::plan::Disaster) -> Self {
        match d {
            crate::plan::Disaster::ServerLoss => DisasterKind::ServerLoss,
            crate::plan::Disaster::DropDb => DisasterKind::DropDb,
        }
    }
}

impl std::fmt::Display for DisasterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        pad(f, self.as_str())
    }
}

/// What a drill restored: the database alone, or with the configuration and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// The database (report.json leaves `scope` out; history says `database`).
    Database,
    /// Database, configuration and code (`--scope full`).
    Full,
}

impl ScopeKind {
    /// The name in report.json and history.ndjson.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Database => "database",
            ScopeKind::Full => "full",
        }
    }
}

impl From<crate::scope::Scope> for ScopeKind {
    fn from(s: crate::scope::Scope) -> Self {
        match s {
            crate::scope::Scope::Database => ScopeKind::Database,
            crate::scope::Scope::Full => ScopeKind::Full,
        }
    }
}

impl std::fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        pad(f, self.as_str())
    }
}

/// The column header and the rule of the sequences' comparison, in the same words in every
/// rendering.
pub const SEQUENCE_COLUMN: &str = "Safe to use";
/// See [`SEQUENCE_COLUMN`].
pub const SEQUENCE_RULE: &str = "A sequence is safe to use when its next value cannot collide with the data: an owned sequence's next value must be past the highest value of its column, any other must not be behind the source's. Sequences are not transactional, so pg_dump can read a value other than the snapshot's: a restored value lower than the source's is safe while it is still past the data.";

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde rename and the display name are the same string, for every value.
    fn same<T: Serialize + std::fmt::Display>(v: T) {
        assert_eq!(serde_json::to_value(&v).unwrap(), v.to_string());
    }

    #[test]
    fn serde_names_are_the_display_names() {
        use PhaseId::*;
        for p in [
            Provision,
            PickBackup,
            Seed,
            AppStart,
            ConfigBackup,
            WriterStart,
            Backup,
            Disaster,
            StopApp,
            Precheck,
            Roles,
            Createdb,
            PgRestore,
            Analyze,
            ConfigRestore,
            CodeRollback,
            TamperHook,
            Snapshot,
            Compare,
            Amcheck,
            Rpo,
            StartApp,
            AppHealthy,
            AppVersion,
            ObserveApp,
            Checklist,
            NegativeControls,
        ] {
            same(p);
            same(FailedAt::Phase(p));
        }
        for i in CheckItem::ALL {
            same(i);
        }
        for k in [
            SourceKind::Generated,
            SourceKind::Dsn,
            SourceKind::BackupFile,
        ] {
            same(k);
        }
        for d in [
            DisasterKind::ServerLoss,
            DisasterKind::DropDb,
            DisasterKind::None,
        ] {
            same(d);
        }
        for c in [
            Control::RowLost,
            Control::ValueChanged,
            Control::ByteFlipped,
            Control::Truncated,
            Control::ManifestUnreadable,
            Control::StaleBackup,
            Control::WrongAppVersion,
        ] {
            same(c);
        }
        for o in [
            ControlOutcome::Detected,
            ControlOutcome::Missed,
            ControlOutcome::NotApplicable,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        same(ScopeKind::Database);
        same(ScopeKind::Full);
        same(FailedAt::Budget(BudgetName::DatabaseRestore));
        use crate::report::FailureClass as C;
        for c in [
            C::BackupFailed,
            C::BackupUnusable,
            C::BackupIncomplete,
            C::RestoreFailed,
            C::IntegrityMismatch,
            C::ChecklistFailed,
            C::BudgetExceeded,
            C::RpoExceeded,
            C::DetectionFailed,
            C::Environment,
        ] {
            same(c);
        }
        assert_eq!(
            format!("{:<6}|", PhaseId::Rpo),
            "rpo   |",
            "width is honoured"
        );
    }

    #[test]
    fn a_budget_shares_its_name_with_a_phase_and_reads_back_as_either() {
        let read: FailedAt = serde_json::from_str("\"config_restore\"").unwrap();
        assert_eq!(read, FailedAt::Phase(PhaseId::ConfigRestore));
        assert_eq!(
            read.as_budget(),
            FailedAt::Budget(BudgetName::ConfigRestore)
        );
        let total: FailedAt = serde_json::from_str("\"total\"").unwrap();
        assert_eq!(total, FailedAt::Budget(BudgetName::Total));
    }
}
