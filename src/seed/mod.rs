//! The generated source database: roles, schema, and deterministic realistic data loaded with
//! binary COPY.
//!
//! Generation is pure and synchronous ([`encode_all`], [`TableChunks`]): the same
//! [`SeedSpec`] always gives byte-identical COPY streams. [`seed`] runs the generator on a
//! blocking thread and streams its chunks into the server while the next ones are being made.

mod copy;
mod encode;
mod generate;
mod history;
mod load;
mod vocab;

pub use generate::{
    encode_all, EncodedTables, Table, TableChunks, CHUNK_BYTES, HISTORY_SPAN, REFERENCE_INSTANT,
};
pub use vocab::{Plan, PLANS};

use serde::{Deserialize, Serialize};

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
    /// A COPY into one table failed because of the machine (a full disk, a lost server), not
    /// the data.
    #[error("COPY into {table} failed: {detail}")]
    CopyFault {
        /// The table being loaded.
        table: &'static str,
        /// What the machine did.
        fault: crate::program::Fault,
        /// The server's message.
        detail: String,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The tables already hold rows.
    #[error("table {table} is not empty; seed loads only the empty tables of a freshly loaded fixtures/schema.sql (use a new database)")]
    NotEmpty {
        /// The first non-empty table found.
        table: &'static str,
    },
    /// A statement around the COPYs (transaction, keys and indexes, sequences, ANALYZE) failed.
    #[error("seeding failed while running {step}: {detail}; run seed as a superuser on a connection outside any transaction, and check the server log")]
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

/// The server's message, detail, hint and SQLSTATE (the driver's Display says only "db error").
fn detail(e: &tokio_postgres::Error) -> String {
    crate::pg::error_text(e)
}

/// Creates the cluster roles of fixtures/roles.sql (idempotent).
pub async fn create_roles(client: &tokio_postgres::Client) -> Result<(), SeedError> {
    client
        .batch_execute(ROLES_SQL)
        .await
        .map_err(|source| SeedError::Roles {
            detail: detail(&source),
            source,
        })
}

/// Loads fixtures/schema.sql into the connected (empty) database.
pub async fn load_schema(client: &tokio_postgres::Client) -> Result<(), SeedError> {
    client
        .batch_execute(SCHEMA_SQL)
        .await
        .map_err(|source| SeedError::Schema {
            detail: detail(&source),
            source,
        })
}

/// Loads `spec`'s data into the schema's empty tables in one transaction: plans, users,
/// subscriptions and payments by binary COPY, then moves the id sequences past the loaded ids
/// and runs ANALYZE.
///
/// Like pg_restore, it loads the data before the keys: the tables' primary keys, unique
/// constraints, indexes and foreign keys are dropped inside the transaction and re-created
/// from their catalog definitions after the COPYs (names and definitions unchanged), which
/// builds each index with one sort and checks each foreign key with one join instead of one
/// lookup per row. The COPYs use FREEZE, so the rows need no hint-bit rewrite later.
///
/// Run it as a superuser (or the tables' owner) on a connection that is not inside a
/// transaction. The tables must be empty; on any error everything is rolled back.
///
/// `progress` hears, per COPY batch, the users loaded of `spec.rows` (while `users` loads)
/// and the rows of all four tables loaded so far, with their total at the end.
pub async fn seed(
    client: &tokio_postgres::Client,
    spec: &SeedSpec,
    progress: &crate::progress::Progress,
) -> Result<SeedStats, SeedError> {
    let step = |step: &'static str| {
        move |source: tokio_postgres::Error| SeedError::Finish {
            step,
            detail: detail(&source),
            source,
        }
    };
    client.batch_execute("BEGIN").await.map_err(step("BEGIN"))?;
    match load::run(client, spec, progress).await {
        Ok(stats) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(step("COMMIT"))?;
            Ok(stats)
        }
        Err(e) => {
            // The original error is the one worth reporting; a failed ROLLBACK adds nothing.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}
