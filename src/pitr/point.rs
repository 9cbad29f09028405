//! The drill's own recovery point on a source pgdrill can reach (`--pitr-source-dsn`): one
//! transaction on the source takes the integrity snapshot S0 and is the recovery target.
//!
//! Why a lock: recovery to a transaction id replays every commit whose record precedes that
//! transaction's commit record, while a REPEATABLE READ snapshot sees only what committed
//! before the snapshot was taken. The two differ by whatever commits in between. So the
//! transaction first takes SHARE locks on every table it will fingerprint (reads go on,
//! writes to those tables wait until it commits), and only then its snapshot (`LOCK` takes
//! none). Between its snapshot and its commit nothing else can change those tables, so the
//! restored state at its commit is exactly what it fingerprinted. Sequences are the exception
//! PostgreSQL itself makes: their WAL is logged ahead, so a recovered sequence may be ahead,
//! never behind, which the comparison already allows.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_postgres::Client;

use super::{Lsn, PitrError};
use crate::backup::SnapshotWindow;
use crate::pg::error_text;
use crate::snapshot::Snapshot;

/// How long the recovery point waits for its locks: a writer that holds a table longer
/// fails the point rather than leaving later writers queued behind the lock request.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The recovery point the drill took: its transaction, snapshot and place in the WAL.
#[derive(Debug, Clone)]
pub struct RecoveryPoint {
    /// The transaction's id: the recovery target (`recovery_target_xid`).
    pub xid: u64,
    /// From before its `LOCK` was sent to after its `COMMIT` returned: commits acknowledged
    /// before it must be restored, commits sent after it must not.
    pub window: SnapshotWindow,
    /// S0: what the source held in the transaction's snapshot.
    pub snapshot: Snapshot,
    /// The source's insert location right after the commit: at or after the commit record.
    pub lsn_after: Lsn,
    /// The WAL segment holding that location, which the archive must hold before a restore.
    pub segment: String,
    /// Tables locked (and fingerprinted).
    pub tables_locked: usize,
    /// How long writers to those tables waited: lock request to commit.
    pub held_ms: u64,
}

/// Takes the recovery point on `client`, a session on the source database (not in a
/// transaction). The tables are listed first, in their own statement: a query inside the
/// transaction would take its snapshot before the locks.
pub async fn take(client: &Client) -> Result<RecoveryPoint, PitrError> {
    let fail = |what: &str, e: tokio_postgres::Error| PitrError::Point {
        what: what.into(),
        message: error_text(&e),
    };
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname !~ '^pg_(toast|temp_)' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| fail("listing the tables to lock", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sent_at = Utc::now();
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL lock_timeout = '{}ms'",
            LOCK_TIMEOUT.as_millis()
        ))
        .await
        .map_err(|e| fail("BEGIN", e))?;
    let inside = async {
        if !tables.is_empty() {
            client
                .batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", tables.join(", ")))
                .await
                .map_err(|e| fail("LOCK TABLE … IN SHARE MODE", e))?;
        }
        // The first statement that needs a snapshot: from here the transaction sees what
        // committed before it and, by the locks, nothing of these tables changes until it ends.
        let xid: i64 = client
            .query_one("SELECT pg_current_xact_id()::text::int8", &[])
            .await
            .map_err(|e| fail("pg_current_xact_id()", e))?
            .get(0);
        let snapshot = crate::snapshot::take(client)
            .await
            .map_err(|e| PitrError::Point {
                what: "the snapshot S0".into(),
                message: e.to_string(),
            })?;
        Ok::<_, PitrError>((xid, snapshot))
    };
    let (xid, snapshot) = match inside.await {
        Ok(v) => v,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| fail("COMMIT", e))?;
    let held_ms = started.elapsed().as_millis() as u64;
    let returned_at = Utc::now();
    let row = client
        .query_one(
            "SELECT pg_current_wal_insert_lsn()::text, pg_walfile_name(pg_current_wal_insert_lsn())",
            &[],
        )
        .await
        .map_err(|e| fail("pg_current_wal_insert_lsn()", e))?;
    let lsn_after: Lsn = row
        .get::<_, String>(0)
        .parse()
        .map_err(|message| PitrError::Point {
            what: "pg_current_wal_insert_lsn()".into(),
            message,
        })?;
    Ok(RecoveryPoint {
        xid: xid as u64,
        window: SnapshotWindow {
            sent_at,
            returned_at,
        },
        snapshot,
        lsn_after,
        segment: row.get(1),
        tables_locked: tables.len(),
        held_ms,
    })
}

/// Closes the source's current WAL segment (`pg_switch_wal()`), so that the archive can hold
/// the recovery point without waiting for the segment to fill or for `archive_timeout`.
pub async fn switch_wal(client: &Client) -> Result<(), PitrError> {
    client
        .query_one("SELECT pg_switch_wal()::text", &[])
        .await
        .map_err(|e| PitrError::Point {
            what: "pg_switch_wal() (the role needs superuser or EXECUTE on it)".into(),
            message: error_text(&e),
        })?;
    Ok(())
}

/// The source's `archive_timeout` (zero when off): how long a quiet server may keep WAL
/// out of the archive, the worst case of archiving by segments.
pub async fn archive_timeout(client: &Client) -> Result<Duration, PitrError> {
    let secs: i32 = client
        .query_one(
            "SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout'",
            &[],
        )
        .await
        .map_err(|e| PitrError::Point {
            what: "reading archive_timeout".into(),
            message: error_text(&e),
        })?
        .get(0);
    Ok(Duration::from_secs(secs.max(0) as u64))
}

/// Drops the RPO ledger from the source after the point (the schema too when nothing else
/// is in it): the restore has it, the source need not keep it.
pub async fn drop_ledger(client: &Client) -> Result<(), PitrError> {
    use crate::pg::ident;
    use crate::rpo::{LEDGER_SCHEMA, LEDGER_TABLE};
    let schema = ident(LEDGER_SCHEMA);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {schema}.{}; \
             DO $$ BEGIN \
               IF NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{LEDGER_SCHEMA}') \
               THEN EXECUTE 'DROP SCHEMA IF EXISTS {schema}'; END IF; END $$",
            ident(LEDGER_TABLE)
        ))
        .await
        .map_err(|e| PitrError::Point {
            what: format!("dropping the ledger {}", crate::rpo::ledger_name()),
            message: error_text(&e),
        })
}
