//! The generated source database: roles, schema, and deterministic realistic data loaded with
//! binary COPY.
//!
//! Generation is pure and synchronous ([`encode_all`], [`TableChunks`]): the same
//! [`SeedSpec`] always gives byte-identical COPY streams. [`seed`] runs the generator on a
//! blocking thread and streams its chunks into the server while the next ones are being made.

mod copy;
mod generate;
mod vocab;

pub use generate::{
    encode_all, EncodedTables, Table, TableChunks, CHUNK_BYTES, HISTORY_SPAN, REFERENCE_INSTANT,
};
pub use vocab::{Plan, PLANS};

use bytes::Bytes;
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// fixtures/roles.sql: the cluster roles the schema needs (idempotent).
pub const ROLES_SQL: &str = include_str!("../../fixtures/roles.sql");

/// fixtures/schema.sql: extensions, types, tables, indexes, view, trigger, grants.
pub const SCHEMA_SQL: &str = include_str!("../../fixtures/schema.sql");

/// What to generate: `rows` users, from the random seed `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSpec {
    /// Number of users; subscriptions and payments follow from it (about 0.9 and 6.5 per user).
    pub rows: u64,
    /// Seed of every random choice; the same spec always yields the same bytes.
    pub seed: u64,
}

/// Rows loaded per table and the COPY bytes sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedStats {
    /// Rows in `plans`.
    pub plans: u64,
    /// Rows in `users`.
    pub users: u64,
    /// Rows in `subscriptions`.
    pub subscriptions: u64,
    /// Rows in `payments`.
    pub payments: u64,
    /// Binary COPY bytes sent for all tables.
    pub bytes_sent: u64,
}

/// Why creating roles, loading the schema or seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// fixtures/roles.sql failed.
    #[error("creating the pgdrill roles failed: {detail}; connect as a superuser (or a role with CREATEROLE)")]
    Roles {
        /// The server's message.
        detail: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// fixtures/schema.sql failed.
    #[error(
        "loading fixtures/schema.sql failed: {detail}; load it as a superuser into an empty \
         database after create_roles, on a server with the citext and pgcrypto extensions installed"
    )]
    Schema {
        /// The server's message.
        detail: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A COPY into one table failed.
    #[error(
        "COPY into {table} failed: {detail}; seed expects the empty tables of a freshly loaded \
         fixtures/schema.sql (run load_schema on a new database)"
    )]
    Copy {
        /// The table being loaded.
        table: &'static str,
        /// The server's message.
        detail: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement after the COPYs (transaction, sequences, ANALYZE) failed.
    #[error("seeding failed while running {step}: {detail}; check the server log and that the connection is still open")]
    Finish {
        /// What was being done.
        step: &'static str,
        /// The server's message.
        detail: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The generator thread panicked or stopped early.
    #[error("the data generator stopped unexpectedly ({0}); this is a bug in pgdrill's seed generator, please report it")]
    Generator(String),
}

/// The server's own message when there is one (the driver's Display says only "db error").
fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Creates the cluster roles of fixtures/roles.sql (idempotent).
pub async fn create_roles(client: &tokio_postgres::Client) -> Result<(), SeedError> {
    client
        .batch_execute(ROLES_SQL)
        .await
        .map_err(|source| SeedError::Roles { detail: detail(&source), source })
}

/// Loads fixtures/schema.sql into the connected (empty) database.
pub async fn load_schema(client: &tokio_postgres::Client) -> Result<(), SeedError> {
    client
        .batch_execute(SCHEMA_SQL)
        .await
        .map_err(|source| SeedError::Schema { detail: detail(&source), source })
}

/// Chunks in flight between the generator thread and the connection (each ~1 MiB).
const PIPELINE_DEPTH: usize = 4;

enum Message {
    Chunk(Bytes),
    EndOfTable,
}

/// Loads `spec`'s data into the schema's empty tables in one transaction: plans, users,
/// subscriptions and payments by binary COPY, then moves the id sequences past the loaded ids
/// and runs ANALYZE.
///
/// The client must not be inside a transaction. On error the transaction is rolled back
/// (best effort) and nothing is left behind.
pub async fn seed(client: &tokio_postgres::Client, spec: &SeedSpec) -> Result<SeedStats, SeedError> {
    let finish = |step: &'static str| {
        move |source: tokio_postgres::Error| SeedError::Finish { step, detail: detail(&source), source }
    };
    client.batch_execute("BEGIN").await.map_err(finish("BEGIN"))?;
    match load(client, spec).await {
        Ok(stats) => {
            client.batch_execute("COMMIT").await.map_err(finish("COMMIT"))?;
            Ok(stats)
        }
        Err(e) => {
            // The original error is the one worth reporting; a failed ROLLBACK adds nothing.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn load(client: &tokio_postgres::Client, spec: &SeedSpec) -> Result<SeedStats, SeedError> {
    let finish = |step: &'static str| {
        move |source: tokio_postgres::Error| SeedError::Finish { step, detail: detail(&source), source }
    };
    // Generation runs on its own thread, one table after the other, ahead of the COPYs by at
    // most PIPELINE_DEPTH chunks: the CPU makes the next chunk while the server ingests this one.
    let (tx, mut rx) = mpsc::channel::<Message>(PIPELINE_DEPTH);
    let gen_spec = *spec;
    let generator = tokio::task::spawn_blocking(move || {
        for table in Table::LOAD_ORDER {
            for chunk in TableChunks::new(&gen_spec, table, CHUNK_BYTES) {
                if tx.blocking_send(Message::Chunk(chunk)).is_err() {
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
    for (i, table) in Table::LOAD_ORDER.into_iter().enumerate() {
        let copy_error = |source: tokio_postgres::Error| SeedError::Copy {
            table: table.name(),
            detail: detail(&source),
            source,
        };
        let sink = client
            .copy_in::<_, Bytes>(table.copy_statement())
            .await
            .map_err(copy_error)?;
        let mut sink = std::pin::pin!(sink);
        loop {
            match rx.recv().await {
                Some(Message::Chunk(chunk)) => {
                    bytes_sent += chunk.len() as u64;
                    sink.send(chunk).await.map_err(copy_error)?;
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
    }
    generator.await.map_err(|e| SeedError::Generator(e.to_string()))?;

    // COPY with explicit ids does not advance the identity and serial sequences; without this
    // the application's first INSERT would collide with id 1.
    client
        .batch_execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), coalesce(max(id), 0) + 1, false) FROM users;
             SELECT setval(pg_get_serial_sequence('subscriptions', 'id'), coalesce(max(id), 0) + 1, false) FROM subscriptions;
             SELECT setval(pg_get_serial_sequence('payments', 'id'), coalesce(max(id), 0) + 1, false) FROM payments;",
        )
        .await
        .map_err(finish("setval on the id sequences"))?;
    client
        .batch_execute("ANALYZE plans, users, subscriptions, payments")
        .await
        .map_err(finish("ANALYZE"))?;

    Ok(SeedStats {
        plans: rows[0],
        users: rows[1],
        subscriptions: rows[2],
        payments: rows[3],
        bytes_sent,
    })
}
