//! The recovery point, measured: a [`Writer`] commits small transactions into a ledger table
//! on the source while the drill runs and records every acknowledged commit on this side;
//! after the restore, [`assess`] reads the restored ledger and says which acknowledged
//! commits were lost, how long the data-loss window was (newest restored commit to the
//! disaster), and how that compares with the objective and the schedule's worst case.
//! [`Cadence`] spaces several backups on a compressed schedule and picks the disaster's moment.
//!
//! The ids come from one connection, each sent only after the previous one was acknowledged,
//! so every MVCC snapshot of the ledger sees a prefix `1..k`; the backup's exported snapshot
//! (whose wall-clock window the manifest records) then decides exactly which commits must be
//! in the dump and which must not.

mod assess;
mod cadence;
mod writer;

pub use assess::{assess, Finding, IdList, Inputs, WorstCase};
pub use cadence::{Cadence, Clock, DisasterAt};
pub use writer::{Acknowledged, Commit, InFlight, StopCause, Writer, DEFAULT_RATE_PER_SEC};

use serde::{Deserialize, Serialize};

use crate::env_error::EnvError;

/// The ledger's schema: its own, so that it never collides with an application's tables, a
/// reader of the restored database sees who wrote it, and `DROP SCHEMA pgdrill CASCADE`
/// removes every trace.
pub const LEDGER_SCHEMA: &str = "pgdrill";
/// The ledger table, in [`LEDGER_SCHEMA`].
pub const LEDGER_TABLE: &str = "rpo_ledger";

/// The ledger's qualified name as it appears in reports and in the integrity snapshot.
pub fn ledger_name() -> String {
    format!("{LEDGER_SCHEMA}.{LEDGER_TABLE}")
}

/// Why the RPO could not be measured, or why the restored ledger is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RpoError {
    /// A write rate of zero commits per second.
    #[error("the RPO writer's rate must be at least 1 commit per second")]
    BadRate,
    /// The server could not be reached (environment).
    #[error(transparent)]
    Connect(#[from] EnvError),
    /// The writer's session may not write: read-only, no privilege, or a standby (environment,
    /// found before any backup).
    #[error("the RPO writer cannot write to {target}: {reason}. The RPO is measured by committing into {ledger} on the drill's own source server; a read-only session (default_transaction_read_only, a standby, --source-dsn) or a role without CREATE on the database cannot host it.")]
    CannotWrite {
        /// The server, password redacted.
        target: String,
        /// The server's words.
        reason: String,
        /// The ledger table.
        ledger: String,
    },
    /// The ledger already holds rows, so its ids could not start at 1.
    #[error("{ledger} on {target} already holds {rows} rows from an earlier run: the RPO ledger must start empty (drop schema {schema} there, or use a fresh source)")]
    LedgerNotEmpty {
        /// The server, password redacted.
        target: String,
        /// The ledger table.
        ledger: String,
        /// Its row count.
        rows: i64,
        /// Its schema.
        schema: String,
    },
    /// Reading the restored ledger failed (the restored database, not the machine).
    #[error("reading the restored RPO ledger failed: {0}")]
    Query(String),
    /// The restored ledger is not what the exported snapshot must have seen: a finding about
    /// the backup, not an RPO number.
    #[error("the restored RPO ledger is wrong: {}", findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Integrity {
        /// Every problem found, each naming its ids.
        findings: Vec<Finding>,
    },
}

impl RpoError {
    /// Whether this says the machine or the source cannot host the measurement (exit 3, before
    /// the backup), rather than something about the backup.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            RpoError::BadRate
                | RpoError::Connect(_)
                | RpoError::CannotWrite { .. }
                | RpoError::LedgerNotEmpty { .. }
        )
    }
}

/// The verdict on the recovery point: the measured data-loss window against the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpoVerdict {
    /// The data-loss window was within the objective.
    Pass,
    /// It was longer than the objective.
    Fail,
}

/// The `rpo` section of report.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpoReport {
    /// The recovery point objective (`--rpo`).
    pub objective_ms: u64,
    /// The measured data-loss window: newest restored commit's acknowledgement to the disaster.
    pub achieved_ms: u64,
    /// Acknowledged commits not in the restore.
    pub lost_commits: u64,
    /// Their ids (a contiguous range), when any were lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_ids: Option<IdRange>,
    /// The schedule's worst case: its interval plus the longest backup measured in the drill.
    pub worst_case_ms: u64,
    /// Whether that worst case is within the objective.
    pub worst_case_fits: bool,
    /// Pass when `achieved_ms <= objective_ms`.
    pub verdict: RpoVerdict,
    /// Commits the writer saw acknowledged.
    pub acknowledged_commits: u64,
    /// Commits in the restored ledger.
    pub restored_commits: u64,
    /// Commits that were in flight while the backup's snapshot was taken: the only ones that
    /// may go either way.
    pub in_flight_at_snapshot: u64,
    /// Commits that failed (the server gone); never counted as acknowledged.
    pub failed_commits: u64,
    /// When the newest restored commit was acknowledged (RFC 3339 UTC, µs), if any was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_restored_at: Option<String>,
    /// The disaster (RFC 3339 UTC, µs).
    pub disaster_at: String,
    /// When the restored backup's snapshot was taken: `[sent, returned]` (RFC 3339 UTC, µs).
    pub snapshot_taken: [String; 2],
    /// The schedule's interval between backups.
    pub backup_interval_ms: u64,
    /// The longest backup of the drill (measured).
    pub backup_duration_ms: u64,
    /// Backups taken during the drill.
    pub backups_taken: u32,
    /// The writer's rate.
    pub rate_per_sec: u32,
    /// The ledger table.
    pub ledger: String,
    /// One line on the worst case against the objective.
    pub note: String,
    /// A point-in-time recovery's: the source's `archive_timeout` (0 when off), the worst
    /// case's interval instead of a backup schedule's (`backup_interval_ms` holds it too,
    /// and `backup_duration_ms` the time archiving took).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_timeout_ms: Option<u64>,
}

/// A contiguous range of ledger ids, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// The first id.
    pub first: u64,
    /// The last id.
    pub last: u64,
}

/// A moment as the RPO section writes it: RFC 3339 UTC with microseconds.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
