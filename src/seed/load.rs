//! Streaming the generated COPY chunks into the server, inside the caller's transaction.

use super::generate::{Table, TableChunks, CHUNK_BYTES};
use super::{detail, SeedError, SeedSpec, SeedStats};
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::progress::{Progress, Unit};

/// Chunks in flight between the generator thread and the connection (each ~1 MiB).
const PIPELINE_DEPTH: usize = 4;

/// Memory for re-creating the indexes after the load (each is built with one sort).
const INDEX_BUILD_MEMORY: &str = "256MB";

enum Message {
    /// COPY bytes, and the table's rows encoded up to the end of them.
    Chunk(Bytes, u64),
    EndOfTable,
}

fn step(step: &'static str) -> impl Fn(tokio_postgres::Error) -> SeedError {
    move |source| SeedError::Finish {
        step,
        detail: detail(&source),
        source,
    }
}

/// Loads everything; the caller owns BEGIN and COMMIT/ROLLBACK.
pub(super) async fn run(
    client: &Client,
    spec: &SeedSpec,
    progress: &Progress,
) -> Result<SeedStats, SeedError> {
    for table in Table::LOAD_ORDER {
        let sql = format!("SELECT EXISTS (SELECT FROM {})", table.name());
        let non_empty: bool = client
            .query_one(&sql, &[])
            .await
            .map_err(step("the emptiness check"))?
            .get(0);
        if non_empty {
            return Err(SeedError::NotEmpty {
                table: table.name(),
            });
        }
    }
    let keys = DeferredKeys::capture(client).await?;
    keys.drop_all(client).await?;
    // Emptied in this transaction, so COPY may FREEZE (the tables are empty: nothing is lost).
    client
        .batch_execute("TRUNCATE plans, users, subscriptions, payments")
        .await
        .map_err(step("TRUNCATE before COPY FREEZE"))?;

    let stats = copy_all(client, spec, progress).await?;

    keys.recreate_all(client).await?;
    // COPY with explicit ids does not advance the identity and serial sequences; without this
    // the application's first INSERT would collide with id 1.
    client
        .batch_execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), coalesce(max(id), 0) + 1, false) FROM users;
             SELECT setval(pg_get_serial_sequence('subscriptions', 'id'), coalesce(max(id), 0) + 1, false) FROM subscriptions;
             SELECT setval(pg_get_serial_sequence('payments', 'id'), coalesce(max(id), 0) + 1, false) FROM payments;",
        )
        .await
        .map_err(step("setval on the id sequences"))?;
    client
        .batch_execute("ANALYZE plans, users, subscriptions, payments")
        .await
        .map_err(step("ANALYZE"))?;
    Ok(stats)
}

/// The COPYs, fed by a generator thread.
///
/// Generation runs one table after the other on a blocking thread, ahead of the COPYs by at
/// most PIPELINE_DEPTH chunks: the CPU makes the next chunk while the server ingests this one.
/// Each chunk sent reports the users loaded of the total (while `users` loads) and the rows
/// of all tables loaded so far; the rows' total is known when the last table is done.
async fn copy_all(
    client: &Client,
    spec: &SeedSpec,
    progress: &Progress,
) -> Result<SeedStats, SeedError> {
    let (tx, mut rx) = mpsc::channel::<Message>(PIPELINE_DEPTH);
    let gen_spec = *spec;
    let generator = tokio::task::spawn_blocking(move || {
        for table in Table::LOAD_ORDER {
            let mut chunks = TableChunks::new(&gen_spec, table, CHUNK_BYTES);
            while let Some(chunk) = chunks.next() {
                if tx
                    .blocking_send(Message::Chunk(chunk, chunks.rows()))
                    .is_err()
                {
                    return; // the loader gave up; its error is reported there
                }
            }
            if tx.blocking_send(Message::EndOfTable).is_err() {
                return;
            }
        }
    });

    let mut rows = [0u64; 4];
    let mut bytes_sent = 0u64;
    let mut rows_before = 0u64;
    for (i, table) in Table::LOAD_ORDER.into_iter().enumerate() {
        let copy_error = |source: tokio_postgres::Error| match crate::pg::fault(&source) {
            // The server failed, not the data: the hint about empty tables would mislead.
            Some(fault) => SeedError::CopyFault {
                table: table.name(),
                fault,
                detail: detail(&source),
                source,
            },
            None => SeedError::Copy {
                table: table.name(),
                detail: detail(&source),
                source,
            },
        };
        let statement = table
            .copy_statement()
            .replace("(FORMAT binary)", "(FORMAT binary, FREEZE)");
        let sink = client
            .copy_in::<_, Bytes>(&statement)
            .await
            .map_err(copy_error)?;
        let mut sink = std::pin::pin!(sink);
        loop {
            match rx.recv().await {
                Some(Message::Chunk(chunk, table_rows)) => {
                    bytes_sent += chunk.len() as u64;
                    sink.send(chunk).await.map_err(copy_error)?;
                    if table == Table::Users {
                        progress.report(table_rows, Some(spec.rows), Unit::Users);
                    }
                    progress.report(rows_before + table_rows, None, Unit::Rows);
                }
                Some(Message::EndOfTable) => break,
                None => {
                    let why = match generator.await {
                        Err(e) => e.to_string(),
                        Ok(()) => format!("its stream ended inside table {}", table.name()),
                    };
                    return Err(SeedError::Generator(why));
                }
            }
        }
        rows[i] = sink.as_mut().finish().await.map_err(copy_error)?;
        rows_before += rows[i];
    }
    progress.report(rows_before, Some(rows_before), Unit::Rows);
    generator
        .await
        .map_err(|e| SeedError::Generator(e.to_string()))?;
    Ok(SeedStats {
        plans: rows[0],
        users: rows[1],
        subscriptions: rows[2],
        payments: rows[3],
        bytes_sent,
    })
}

/// The keys and indexes of the loaded tables, as DROP and re-CREATE statements taken from the
/// catalog, so whatever fixtures/schema.sql declares comes back exactly as it was.
struct DeferredKeys {
    /// Foreign keys on, or referencing, the loaded tables.
    foreign_keys: Vec<(String, String)>,
    /// Primary-key, unique and exclusion constraints.
    key_constraints: Vec<(String, String)>,
    /// Indexes that back no constraint.
    indexes: Vec<(String, String)>,
}

/// The tables whose keys are deferred; `plans` has four rows and keeps its keys.
const DEFERRED_TABLES: &str = "ARRAY['users', 'subscriptions', 'payments']::regclass[]";

impl DeferredKeys {
    async fn capture(client: &Client) -> Result<DeferredKeys, SeedError> {
        let pairs = |rows: Vec<tokio_postgres::Row>| {
            rows.iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect()
        };
        let constraints = |kinds: &str, column: &str| {
            format!(
                "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
                        format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
                 FROM pg_constraint
                 WHERE contype IN ({kinds}) AND {column} = ANY({DEFERRED_TABLES})
                 ORDER BY conrelid::regclass::text, conname"
            )
        };
        let foreign_keys = client
            .query(&constraints("'f'", "conrelid"), &[])
            .await
            .map_err(step("reading the foreign keys"))?;
        let referencing = client
            .query(&constraints("'f'", "confrelid"), &[])
            .await
            .map_err(step("reading the foreign keys"))?;
        let key_constraints = client
            .query(&constraints("'p', 'u', 'x'", "conrelid"), &[])
            .await
            .map_err(step("reading the key constraints"))?;
        let indexes = client
            .query(
                &format!(
                    "SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
                     FROM pg_index i
                     WHERE i.indrelid = ANY({DEFERRED_TABLES})
                       AND NOT EXISTS (SELECT FROM pg_constraint c
                                       WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid)
                     ORDER BY i.indexrelid::regclass::text"
                ),
                &[],
            )
            .await
            .map_err(step("reading the indexes"))?;
        let mut foreign_keys: Vec<(String, String)> = pairs(foreign_keys);
        for fk in pairs(referencing) {
            if !foreign_keys.contains(&fk) {
                foreign_keys.push(fk);
            }
        }
        Ok(DeferredKeys {
            foreign_keys,
            key_constraints: pairs(key_constraints),
            indexes: pairs(indexes),
        })
    }

    async fn drop_all(&self, client: &Client) -> Result<(), SeedError> {
        // Foreign keys first: they depend on the referenced keys' indexes.
        let sql: Vec<&str> = self
            .foreign_keys
            .iter()
            .chain(&self.key_constraints)
            .chain(&self.indexes)
            .map(|(drop, _)| drop.as_str())
            .collect();
        client
            .batch_execute(&sql.join(";\n"))
            .await
            .map_err(step("dropping keys and indexes before the load"))
    }

    async fn recreate_all(&self, client: &Client) -> Result<(), SeedError> {
        client
            .batch_execute(&format!(
                "SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"
            ))
            .await
            .map_err(step("SET LOCAL maintenance_work_mem"))?;
        let sql: Vec<&str> = self
            .key_constraints
            .iter()
            .chain(&self.indexes)
            .chain(&self.foreign_keys)
            .map(|(_, create)| create.as_str())
            .collect();
        client.batch_execute(&sql.join(";\n")).await.map_err(step(
            "re-creating keys, indexes and foreign keys after the load",
        ))
    }
}
