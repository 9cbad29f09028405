//! The integrity snapshot: what a database holds, taken so that two snapshots of the same data
//! are equal on any server, and compared so that any difference names its table and metric.
//!
//! S0 is taken on the source inside the MVCC snapshot pg_dump exports, S1 on the restored
//! database; [`compare`] turns the pair into the report's integrity section.

mod checks;
mod classify;
mod compare;
mod rows;
mod schema;

use std::pin::pin;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

pub use classify::{Warning, WarningKind};
pub use compare::{
    compare, compare_across_formats, compare_with, self_consistency, CheckResult, CompareOptions,
    Comparison, SchemaComparison, SequenceComparison, TableComparison, Verdict,
};

/// Version of the fingerprint and descriptor formats; snapshots of different formats never match.
/// 2: rows fingerprinted by column name, materialized views and large objects compared.
/// 3: tablespaces, invalid indexes, operators, casts, collations, text search, foreign-data
/// and publication objects described (an S0 of format 2 lacks their lines, so it is compared
/// across formats rather than failing a faithful restore on them).
/// 4: the database's own properties (owner, settings, comment, connection limit, grants).
pub const FORMAT: u32 = 4;

/// Everything the drill compares about one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`FORMAT`] at the time the snapshot was taken.
    pub format: u32,
    /// `current_database()`; informational, never compared.
    pub database: String,
    /// `server_version_num` of the server; informational, never compared.
    pub server_version: String,
    /// Every table with storage in a user schema, sorted by name.
    pub tables: Vec<TableSnapshot>,
    /// Every sequence in a user schema, sorted by name.
    pub sequences: Vec<SequenceSnapshot>,
    /// Catalog descriptors of the schema, grants and owners.
    pub schema: SchemaSnapshot,
    /// Named metrics: FK orphan counts, sequence positions, domain invariants; sorted by name.
    pub checks: Vec<CheckValue>,
    /// Relations that hold or front data but are not fingerprinted, each with the reason.
    #[serde(default)]
    pub not_compared: Vec<NotCompared>,
}

/// A relation left out of the row comparison, and why: nothing is skipped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCompared {
    /// Qualified relation name.
    pub name: String,
    /// Why its rows are not fingerprinted.
    pub reason: String,
}

/// What kind of relation a fingerprinted one is; decides how a mismatch is judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// A plain, unlogged or inheritance table.
    #[default]
    Table,
    /// A leaf partition of a partitioned table.
    Partition,
    /// A populated materialized view: restored by REFRESH, not copied.
    MaterializedView,
}

/// Row count and order-independent content fingerprint of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// Qualified name as `regclass` prints it with an empty search_path, e.g. `public.users`.
    pub name: String,
    /// Table, partition or materialized view.
    #[serde(default)]
    pub kind: RelationKind,
    /// Rows COPY produced.
    pub rows: u64,
    /// 32 hex digits: xxh3-128 of the row count and the wrapping sum of every row's xxh3-128,
    /// rows read with the columns in name order, so a physical column order does not count.
    pub fingerprint: String,
    /// For a materialized view: the rows and fingerprint its defining query gives in the same
    /// snapshot, i.e. what a REFRESH would store. After a restore (which refreshes it) the
    /// view must equal this, or it was changed after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QueryDigest>,
}

/// Rows and fingerprint of a materialized view's defining query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryDigest {
    /// Rows the query returned.
    pub rows: u64,
    /// Fingerprint as [`TableSnapshot::fingerprint`].
    pub fingerprint: String,
}

/// State of one sequence and, when a column owns it, that column's extremes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceSnapshot {
    /// Qualified name, e.g. `public.users_id_seq`.
    pub name: String,
    /// `last_value` of the sequence.
    pub last_value: i64,
    /// `is_called`: whether `last_value` has been handed out already.
    pub is_called: bool,
    /// `increment`, to know which way "ahead" is.
    pub increment: i64,
    /// Owning column (serial or identity), e.g. `public.users.id`.
    pub owned_by: Option<String>,
    /// `max()` of the owning column when it is an integer column; `None` when empty or not owned.
    pub column_max: Option<i64>,
    /// `min()` of the owning column, for descending sequences.
    pub column_min: Option<i64>,
}

impl SequenceSnapshot {
    /// The value `nextval()` would return next (ignoring exhaustion).
    pub fn next_value(&self) -> i128 {
        if self.is_called {
            i128::from(self.last_value) + i128::from(self.increment)
        } else {
            i128::from(self.last_value)
        }
    }

    /// `last_value=… is_called=…`, the state as the report shows it.
    pub fn state(&self) -> String {
        format!(
            "last_value={} is_called={}",
            self.last_value, self.is_called
        )
    }
}

/// The schema as a sorted list of one-line descriptors and their sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSnapshot {
    /// sha256 hex of `objects` joined by newlines.
    pub fingerprint: String,
    /// Sorted descriptors, free of OIDs and server-specific detail.
    pub objects: Vec<String>,
}

/// A named metric of a snapshot.
///
/// `expected: Some(v)` makes it an absolute check that passes when the value is `v` on the
/// database it was taken on (FK orphans `0`, sequences `ahead`); `None` makes it an invariant
/// that must be equal before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckValue {
    /// e.g. `fk_orphans:public.payments.subscription_id`, `invariant:mrr_cents`.
    pub name: String,
    /// The measured value, as text.
    pub value: String,
    /// The value it must have on its own, if it is an absolute check.
    #[serde(default)]
    pub expected: Option<String>,
}

/// Why a snapshot could not be taken. A snapshot is never partial: any of these fails it whole.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A query of the snapshot failed.
    #[error("snapshot: {what} failed: {detail}. The snapshot needs a role that can read the catalogs, every table and every sequence (a superuser, the owner, or a member of pg_read_all_data) and a live connection")]
    Query {
        /// What was being read.
        what: String,
        /// The server's message and SQLSTATE, or the connection error.
        detail: String,
        /// The error from tokio-postgres.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The caller's transaction cannot give one consistent view of all tables.
    #[error("snapshot: the open transaction is {level}, so each table would be read at a different moment; open it with BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY (or take the snapshot outside any transaction)")]
    IsolationTooWeak {
        /// `transaction_isolation` of the open transaction.
        level: String,
    },
    /// The caller's transaction has already failed.
    #[error("snapshot: the open transaction is aborted by an earlier error; roll it back and start a new one before taking a snapshot")]
    AbortedTransaction,
    /// The COPY stream of a table ended in the middle of a row.
    #[error("snapshot: COPY of {table} ended mid-row after {rows} rows ({trailing_bytes} bytes without a newline); the connection was cut or the server misbehaved, take the snapshot again")]
    TruncatedCopy {
        /// The table being read.
        table: String,
        /// Complete rows read before the cut.
        rows: u64,
        /// Bytes of the incomplete row.
        trailing_bytes: usize,
    },
}

impl SnapshotError {
    fn query(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let what = what.into();
        move |source| SnapshotError::Query {
            what,
            detail: describe(&source),
            source,
        }
    }
}

/// tokio-postgres prints a server error as just "db error"; the message is what helps.
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// Text output settings pinned so that the same data prints the same bytes on any server.
/// An empty search_path makes every name in catalog deparsing schema-qualified, and
/// row_security off makes a table hidden by a policy an error rather than a silent subset.
const SESSION_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC';
SET LOCAL DateStyle = 'ISO, YMD';
SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 3;
SET LOCAL bytea_output = 'hex';
SET LOCAL lc_monetary = 'C';
SET LOCAL standard_conforming_strings = on;
SET LOCAL quote_all_identifiers = off;
SET LOCAL search_path = '';
SET LOCAL row_security = off;";

/// Takes a snapshot, read-only, inside the caller's open transaction if there is one.
///
/// In a transaction it must be REPEATABLE READ or SERIALIZABLE (e.g. the one that exported the
/// snapshot pg_dump uses, or one that did `SET TRANSACTION SNAPSHOT`); its settings are left
/// as they were (the work runs in a savepoint that is rolled back). Outside a transaction it
/// opens and ends its own `REPEATABLE READ, READ ONLY` one. It writes nothing and creates no
/// objects, so it also works on a `default_transaction_read_only` session.
/// With a `tokio_postgres::Transaction`, pass `tx.client()`.
pub async fn take(client: &Client) -> Result<Snapshot, SnapshotError> {
    let scope = Scope::enter(client).await?;
    let taken = take_in_scope(client).await;
    let left = scope.leave(client).await;
    let snapshot = taken?;
    left?;
    Ok(snapshot)
}

/// Like [`take`], but the sequence, catalog and check queries run on `helper` while the
/// tables are read on `client`, and `helper` then reads tables too, taking the largest not
/// yet started: on two cores neither the checks nor one large table leave a core idle. Both
/// must be in REPEATABLE READ transactions that see the same snapshot (`helper` did
/// `SET TRANSACTION SNAPSHOT` of one `client` exported), or the two halves could disagree.
pub async fn take_split(
    client: &Client,
    helper: &Client,
    progress: &crate::progress::Progress,
) -> Result<Snapshot, SnapshotError> {
    take_split_in_pieces(client, helper, progress, PIECE_BLOCKS)
        .await
        .map(|(s, _)| s)
}

/// Heap pages per piece when two sessions share a large table (16 MiB of 8 kB pages).
const PIECE_BLOCKS: i64 = 2048;
/// A table is cut into at most this many pieces.
const MAX_PIECES: i64 = 16;

/// [`take_split`] with large tables cut into pieces of `piece_blocks` heap pages, each read
/// by `ctid` range (PostgreSQL 14 and later scan only those pages), so one table no longer
/// leaves a session idle; also how many pieces were read. Row sums add up, so the pieces'
/// fingerprint is the whole table's. Not API: tests choose small pieces.
#[doc(hidden)]
pub async fn take_split_in_pieces(
    client: &Client,
    helper: &Client,
    progress: &crate::progress::Progress,
    piece_blocks: i64,
) -> Result<(Snapshot, usize), SnapshotError> {
    let scope = Scope::enter(client).await?;
    let helper_scope = match Scope::enter(helper).await {
        Ok(s) => s,
        Err(e) => {
            let _ = scope.leave(client).await;
            return Err(e);
        }
    };
    let work = async {
        let head = read_head(client).await?;
        let (relations, not_compared) = relations(client).await?;
        // A ctid range before 14 is a filter on a scan of the whole table, once per piece.
        let piece_blocks = match head.1.parse::<u32>() {
            Ok(v) if v >= 140000 => Some(piece_blocks.max(1)),
            _ => None,
        };
        let queue = Tables::new(relations, progress, piece_blocks);
        let (mine, rest) = tokio::join!(queue.work(client), async {
            let rest = read_rest(helper).await;
            // A failed half ends the snapshot anyway: no point reading on.
            let theirs = match rest {
                Ok(_) => queue.work(helper).await,
                Err(_) => Ok(Vec::new()),
            };
            (rest, theirs)
        });
        let (rest, theirs) = rest;
        let (rest, mine, theirs) = (rest?, mine?, theirs?);
        let pieces = queue.pieces();
        let tables = queue.assemble(mine, theirs);
        Ok::<_, SnapshotError>((
            assemble((head.0, head.1, tables, not_compared), rest),
            pieces,
        ))
    };
    let snapshot = work.await;
    let left = scope.leave(client).await;
    let helper_left = helper_scope.leave(helper).await;
    let snapshot = snapshot?;
    left?;
    helper_left?;
    Ok(snapshot)
}

/// One unit of reading: a whole relation, or a `ctid` range of a large table.
enum Work {
    Whole(Relation),
    Piece { name: String, copy: String },
}

/// What reading a [`Work`] gave.
enum Read {
    Whole(TableSnapshot),
    Piece(rows::RowDigest),
}

/// A table read in pieces: its name and kind, and how many pieces are still unread.
struct Cut {
    name: String,
    kind: RelationKind,
    left: usize,
}

/// The tables still to read, shared by the sessions of one snapshot, largest first.
struct Tables<'a> {
    todo: std::sync::Mutex<Vec<(usize, i64, Work)>>,
    cut: std::sync::Mutex<std::collections::BTreeMap<usize, Cut>>,
    pieces: usize,
    total: u64,
    done: std::sync::atomic::AtomicU64,
    progress: &'a crate::progress::Progress,
}

impl<'a> Tables<'a> {
    /// The queue; tables of more than one piece of `piece_blocks` pages are cut when given.
    fn new(
        relations: Vec<Relation>,
        progress: &'a crate::progress::Progress,
        piece_blocks: Option<i64>,
    ) -> Self {
        let total = relations.len() as u64;
        let mut todo = Vec::new();
        let mut cut = std::collections::BTreeMap::new();
        let mut pieces = 0;
        for (i, r) in relations.into_iter().enumerate() {
            let cut_in = match (piece_blocks, r.piece_copy.as_deref()) {
                (Some(b), Some(template)) if r.blocks / b >= 2 => {
                    Some(((r.blocks / b).min(MAX_PIECES), template.to_string()))
                }
                _ => None,
            };
            let Some((n, template)) = cut_in else {
                todo.push((i, r.size, Work::Whole(r)));
                continue;
            };
            let step = r.blocks / n;
            for k in 0..n {
                // The last piece is open-ended: pages added since the size was read (not
                // visible in this snapshot, but scanned) still belong to some piece.
                let bounds = if k + 1 == n {
                    format!("ctid >= '({},0)'::tid", k * step)
                } else {
                    format!(
                        "ctid >= '({},0)'::tid AND ctid < '({},0)'::tid",
                        k * step,
                        (k + 1) * step
                    )
                };
                todo.push((
                    i,
                    r.size / n,
                    Work::Piece {
                        name: r.name.clone(),
                        copy: format!("{template}{bounds}) TO STDOUT"),
                    },
                ));
            }
            pieces += n as usize;
            cut.insert(
                i,
                Cut {
                    name: r.name,
                    kind: r.kind,
                    left: n as usize,
                },
            );
        }
        // Popped from the end: the largest last in the vector.
        todo.sort_by_key(|(i, size, _)| (*size, std::cmp::Reverse(*i)));
        Tables {
            todo: std::sync::Mutex::new(todo),
            cut: std::sync::Mutex::new(cut),
            pieces,
            total,
            done: Default::default(),
            progress,
        }
    }

    /// How many pieces of cut tables there were.
    fn pieces(&self) -> usize {
        self.pieces
    }

    /// Reads until nothing is left; each result with its table's place in name order.
    async fn work(&self, client: &Client) -> Result<Vec<(usize, Read)>, SnapshotError> {
        let mut out = Vec::new();
        loop {
            let next = self.todo.lock().expect("tables lock").pop();
            let Some((i, _, work)) = next else {
                return Ok(out);
            };
            let (read, table_done) = match work {
                Work::Whole(relation) => (
                    fingerprint_table(client, relation).await.map(Read::Whole),
                    true,
                ),
                Work::Piece { name, copy } => {
                    let read = fingerprint_copy(client, &name, &copy)
                        .await
                        .map(Read::Piece);
                    let mut cut = self.cut.lock().expect("tables lock");
                    let left = cut.get_mut(&i).map(|c| {
                        c.left -= 1;
                        c.left
                    });
                    (read, left == Some(0))
                }
            };
            match read {
                Ok(r) => out.push((i, r)),
                Err(e) => {
                    // The snapshot has failed: the other session stops after its table.
                    self.todo.lock().expect("tables lock").clear();
                    return Err(e);
                }
            }
            if table_done {
                let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                self.progress
                    .report(done, Some(self.total), crate::progress::Unit::Tables);
            }
        }
    }

    /// The tables in name order, as one session would have read them; a cut table's pieces
    /// summed into its fingerprint.
    fn assemble(&self, mine: Vec<(usize, Read)>, theirs: Vec<(usize, Read)>) -> Vec<TableSnapshot> {
        let mut whole = std::collections::BTreeMap::new();
        let mut sums: std::collections::BTreeMap<usize, rows::RowDigest> = Default::default();
        for (i, r) in mine.into_iter().chain(theirs) {
            match r {
                Read::Whole(t) => {
                    whole.insert(i, t);
                }
                Read::Piece(d) => {
                    let sum = sums.entry(i).or_insert(rows::RowDigest { rows: 0, sum: 0 });
                    sum.rows += d.rows;
                    sum.sum = sum.sum.wrapping_add(d.sum);
                }
            }
        }
        let cut = std::mem::take(&mut *self.cut.lock().expect("tables lock"));
        for (i, c) in cut {
            let d = sums
                .remove(&i)
                .unwrap_or(rows::RowDigest { rows: 0, sum: 0 });
            whole.insert(
                i,
                TableSnapshot {
                    fingerprint: d.fingerprint(),
                    rows: d.rows,
                    name: c.name,
                    kind: c.kind,
                    query: None,
                },
            );
        }
        whole.into_values().collect()
    }
}

/// Where `take` runs: a savepoint in the caller's transaction, or a transaction of its own.
enum Scope {
    Savepoint,
    OwnTransaction,
}

const SAVEPOINT: &str = "pgdrill_snapshot";

impl Scope {
    async fn enter(client: &Client) -> Result<Scope, SnapshotError> {
        // SAVEPOINT fails outside a transaction block: the one reliable way for a client
        // library that does not expose the server's transaction status to learn it.
        let scope = match client
            .batch_execute(&format!("SAVEPOINT {SAVEPOINT}"))
            .await
        {
            Ok(()) => Scope::Savepoint,
            Err(e) if e.code() == Some(&SqlState::NO_ACTIVE_SQL_TRANSACTION) => {
                client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await
                    .map_err(SnapshotError::query("opening a read-only transaction"))?;
                Scope::OwnTransaction
            }
            Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
                return Err(SnapshotError::AbortedTransaction)
            }
            Err(e) => return Err(SnapshotError::query("opening a savepoint")(e)),
        };
        let level: Result<String, _> = client
            .query_one("SELECT current_setting('transaction_isolation')", &[])
            .await
            .and_then(|row| row.try_get(0));
        let outcome = match level {
            // The output settings are pinned once per scope (SET LOCAL: undone on leaving).
            Ok(level) if level == "repeatable read" || level == "serializable" => client
                .batch_execute(SESSION_SETTINGS)
                .await
                .map_err(SnapshotError::query("pinning the output settings")),
            Ok(level) => Err(SnapshotError::IsolationTooWeak { level }),
            Err(e) => Err(SnapshotError::query("reading transaction_isolation")(e)),
        };
        match outcome {
            Ok(()) => Ok(scope),
            Err(e) => {
                // The error to report is the one above; a failure to clean up adds nothing.
                let _ = scope.leave(client).await;
                Err(e)
            }
        }
    }

    async fn leave(self, client: &Client) -> Result<(), SnapshotError> {
        let sql = match self {
            // Rolling back to the savepoint also undoes the SET LOCALs, and recovers the
            // caller's transaction if one of our queries failed in it.
            Scope::Savepoint => {
                format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}")
            }
            Scope::OwnTransaction => "ROLLBACK".to_string(),
        };
        client
            .batch_execute(&sql)
            .await
            .map_err(SnapshotError::query(
                "ending the snapshot's transaction scope",
            ))
    }
}

async fn take_in_scope(client: &Client) -> Result<Snapshot, SnapshotError> {
    Ok(assemble(
        read_tables(client).await?,
        read_rest(client).await?,
    ))
}

fn assemble(
    (database, server_version, tables, not_compared): TablesRead,
    (sequences, checks, schema): (Vec<SequenceSnapshot>, Vec<CheckValue>, SchemaSnapshot),
) -> Snapshot {
    Snapshot {
        format: FORMAT,
        database,
        server_version,
        tables,
        sequences,
        schema,
        checks,
        not_compared,
    }
}

/// Database name, server version, fingerprinted relations, and the ones left out.
type TablesRead = (String, String, Vec<TableSnapshot>, Vec<NotCompared>);

/// The database's name and the server's version.
async fn read_head(client: &Client) -> Result<(String, String), SnapshotError> {
    let row = client
        .query_one(
            "SELECT current_database()::text, current_setting('server_version_num')",
            &[],
        )
        .await
        .map_err(SnapshotError::query("reading the database name"))?;
    Ok((row.get(0), row.get(1)))
}

/// The database's name, the server's version and every table's fingerprint, on one session.
async fn read_tables(client: &Client) -> Result<TablesRead, SnapshotError> {
    let (database, version) = read_head(client).await?;
    let (relations, not_compared) = relations(client).await?;
    let none = crate::progress::Progress::none();
    let queue = Tables::new(relations, &none, None);
    let tables = queue.work(client).await?;
    Ok((
        database,
        version,
        queue.assemble(tables, Vec::new()),
        not_compared,
    ))
}

/// Sequences, the schema fingerprint and the checks (sorted by name).
async fn read_rest(
    client: &Client,
) -> Result<(Vec<SequenceSnapshot>, Vec<CheckValue>, SchemaSnapshot), SnapshotError> {
    let (sequences, mut checks) = read_sequences(client).await?;
    let schema = schema::take(client).await?;
    checks.extend(checks::take(client).await?);
    checks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((sequences, checks, schema))
}

/// Keeps user schemas: pg_catalog, information_schema, pg_toast and the temp schemas are the
/// server's (users cannot create schemas named pg_*).
pub(crate) const USER_SCHEMA: &str = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";

/// A relation to fingerprint and the COPY that reads it.
struct Relation {
    name: String,
    kind: RelationKind,
    copy: String,
    /// For a materialized view, the COPY of its defining query.
    query_copy: Option<String>,
    /// Bytes on disk, to read the largest first when sessions share the tables.
    size: i64,
    /// Heap pages when the snapshot began.
    blocks: i64,
    /// For a table that can be read in `ctid` ranges, its COPY up to `WHERE `: a range's
    /// condition and `) TO STDOUT` complete it (names may hold any character, so nothing is
    /// replaced inside it).
    piece_copy: Option<String>,
}

/// Relations whose rows are fingerprinted: every one with storage (tables, unlogged tables,
/// leaf partitions, populated materialized views). A partitioned table's rows are its
/// partitions', and COPY of an inheritance parent reads only its own rows, so no row is counted
/// twice. The others (foreign tables, partitioned parents, unpopulated views) are listed with
/// the reason they are not compared.
///
/// Columns are named in byte order of their names, generated ones included: pg_dump may put an
/// inheritance child's columns in another physical order, and that must not count as a change.
/// `COPY t (cols)` is used where it can be (as fast as plain COPY); generated columns cannot be
/// named there before PostgreSQL 18, and a materialized view cannot be copied directly, so those
/// go through `COPY (SELECT …)`.
async fn relations(client: &Client) -> Result<(Vec<Relation>, Vec<NotCompared>), SnapshotError> {
    let sql = format!(
        "SELECT c.oid::regclass::text, c.relkind::text, c.relispartition, c.relispopulated,
                coalesce((SELECT string_agg(quote_ident(a.attname), ',' ORDER BY a.attname::text COLLATE \"C\")
                          FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), ''),
                EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''),
                CASE WHEN c.relkind = 'm' THEN
                    (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum)
                     FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) END,
                CASE WHEN c.relkind = 'm' THEN rtrim(pg_get_viewdef(c.oid), '; ' || chr(10)) END,
                pg_total_relation_size(c.oid),
                pg_relation_size(c.oid) / current_setting('block_size')::bigint
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm', 'p', 'f') AND {USER_SCHEMA}
         ORDER BY c.oid::regclass::text COLLATE \"C\""
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(SnapshotError::query("listing tables"))?;
    let mut relations = Vec::new();
    let mut skipped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let relkind: String = row.get(1);
        let is_partition: bool = row.get(2);
        let populated: bool = row.get(3);
        let columns: String = row.get(4);
        let generated: bool = row.get(5);
        let physical_columns: Option<String> = row.get(6);
        let definition: Option<String> = row.get(7);
        let size: i64 = row.get(8);
        let blocks: i64 = row.get(9);
        let skip = |reason: &str| NotCompared {
            name: name.clone(),
            reason: reason.to_string(),
        };
        let kind = match relkind.as_str() {
            "r" if is_partition => RelationKind::Partition,
            "r" => RelationKind::Table,
            "m" if populated => RelationKind::MaterializedView,
            "m" => {
                skipped.push(skip(
                    "materialized view not populated (WITH NO DATA): it holds no rows to compare",
                ));
                continue;
            }
            "p" => {
                skipped.push(skip(
                    "partitioned table: holds no rows itself; each of its partitions is compared",
                ));
                continue;
            }
            _ => {
                skipped.push(skip("foreign table: its rows live on another server, which pg_dump does not back up"));
                continue;
            }
        };
        let copy = if columns.is_empty() {
            format!("COPY {name} TO STDOUT")
        } else if generated || kind == RelationKind::MaterializedView {
            format!("COPY (SELECT {columns} FROM ONLY {name}) TO STDOUT")
        } else {
            format!("COPY {name} ({columns}) TO STDOUT")
        };
        // The view's own query, its output columns named as the view's (a view may rename
        // them), read in the same column order as the view.
        let query_copy = match (kind, physical_columns, definition) {
            (RelationKind::MaterializedView, Some(physical), Some(definition)) => Some(format!(
                "COPY (SELECT {columns} FROM ({definition}) AS pgdrill_query({physical})) TO STDOUT"
            )),
            _ => None,
        };
        // The same rows and columns as `copy`, from one range of pages: a plain table's heap.
        let piece_copy = match kind {
            RelationKind::Table | RelationKind::Partition if !columns.is_empty() => {
                Some(format!("COPY (SELECT {columns} FROM ONLY {name} WHERE "))
            }
            _ => None,
        };
        relations.push(Relation {
            name,
            kind,
            copy,
            query_copy,
            size,
            blocks,
            piece_copy,
        });
    }
    relations.sort_by(|a, b| a.name.cmp(&b.name));
    skipped.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((relations, skipped))
}

async fn fingerprint_table(
    client: &Client,
    relation: Relation,
) -> Result<TableSnapshot, SnapshotError> {
    let Relation {
        name,
        kind,
        copy,
        query_copy,
        ..
    } = relation;
    let digest = fingerprint_copy(client, &name, &copy).await?;
    let query = match query_copy {
        Some(q) => {
            let d = fingerprint_copy(client, &name, &q).await?;
            Some(QueryDigest {
                rows: d.rows,
                fingerprint: d.fingerprint(),
            })
        }
        None => None,
    };
    Ok(TableSnapshot {
        fingerprint: digest.fingerprint(),
        rows: digest.rows,
        name,
        kind,
        query,
    })
}

/// Rows and fingerprint of one `COPY … TO STDOUT` of `name`.
async fn fingerprint_copy(
    client: &Client,
    name: &str,
    copy: &str,
) -> Result<rows::RowDigest, SnapshotError> {
    let what = || copy.to_string();
    let stream = client
        .copy_out(copy)
        .await
        .map_err(|e| SnapshotError::query(what())(e))?;
    let mut stream = pin!(stream);
    let mut hasher = rows::RowHasher::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| SnapshotError::query(what())(e))?;
        hasher.feed(&chunk);
    }
    hasher.finish().map_err(|cut| SnapshotError::TruncatedCopy {
        table: name.to_string(),
        rows: cut.rows,
        trailing_bytes: cut.trailing_bytes,
    })
}

/// Sequence state through `SELECT … FROM seq`, which works on read-only sessions (it needs
/// only SELECT on the sequence), with a `sequence_ahead:` check for every sequence an integer
/// column owns.
async fn read_sequences(
    client: &Client,
) -> Result<(Vec<SequenceSnapshot>, Vec<CheckValue>), SnapshotError> {
    let sql = format!(
        "SELECT c.oid::regclass::text, s.seqincrement,
                d.refobjid::regclass::text || '.' || quote_ident(a.attname),
                a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
         FROM pg_sequence s
         JOIN pg_class c ON c.oid = s.seqrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
         LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE {USER_SCHEMA}
         ORDER BY c.oid::regclass::text COLLATE \"C\""
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(SnapshotError::query("listing sequences"))?;
    let mut sequences = Vec::with_capacity(rows.len());
    let mut checks = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let increment: i64 = row.get(1);
        let owned_by: Option<String> = row.get(2);
        let integer_column: Option<bool> = row.get(3);
        let state = client
            .query_one(&format!("SELECT last_value, is_called FROM {name}"), &[])
            .await
            .map_err(SnapshotError::query(format!("reading sequence {name}")))?;
        let integer_owner = owned_by.is_some() && integer_column == Some(true);
        let (column_max, column_min) = match &owned_by {
            Some(column) if integer_owner => column_extremes(client, column).await?,
            _ => (None, None),
        };
        let sequence = SequenceSnapshot {
            name,
            last_value: state.get(0),
            is_called: state.get(1),
            increment,
            owned_by,
            column_max,
            column_min,
        };
        if integer_owner {
            checks.push(checks::sequence_ahead(&sequence));
        }
        sequences.push(sequence);
    }
    sequences.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((sequences, checks))
}

/// max() and min() of `table.column` given as the qualified text `owned_by` holds.
async fn column_extremes(
    client: &Client,
    owned_by: &str,
) -> Result<(Option<i64>, Option<i64>), SnapshotError> {
    // owned_by is regclass text + '.' + quote_ident(column): split at the last dot outside quotes.
    let (table, column) = split_qualified_column(owned_by);
    let row = client
        .query_one(
            &format!("SELECT max({column})::int8, min({column})::int8 FROM {table}"),
            &[],
        )
        .await
        .map_err(SnapshotError::query(format!("reading max({owned_by})")))?;
    Ok((row.get(0), row.get(1)))
}

/// Splits `schema.table.column` (identifiers possibly double-quoted) at its last separator.
fn split_qualified_column(qualified: &str) -> (&str, &str) {
    let mut in_quotes = false;
    let mut last_dot = None;
    for (i, ch) in qualified.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => last_dot = Some(i),
            _ => {}
        }
    }
    match last_dot {
        Some(i) => (&qualified[..i], &qualified[i + 1..]),
        None => ("", qualified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_qualified_columns_outside_quotes() {
        assert_eq!(
            split_qualified_column("public.users.id"),
            ("public.users", "id")
        );
        assert_eq!(
            split_qualified_column("\"a.b\".\"c.d\".\"e.f\""),
            ("\"a.b\".\"c.d\"", "\"e.f\"")
        );
    }

    #[test]
    fn next_value_follows_is_called() {
        let mut s = SequenceSnapshot {
            name: "public.s".into(),
            last_value: 10,
            is_called: true,
            increment: 5,
            owned_by: None,
            column_max: None,
            column_min: None,
        };
        assert_eq!(s.next_value(), 15);
        s.is_called = false;
        assert_eq!(s.next_value(), 10);
        s.is_called = true;
        s.last_value = i64::MAX;
        assert_eq!(s.next_value(), i128::from(i64::MAX) + 5);
    }
}
