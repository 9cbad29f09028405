//! PostgreSQL plumbing shared by every domain module: quoting, the server's own words for an
//! error, and the exported-snapshot transaction that makes S0 exact. A leaf below the domain
//! modules (seed, backup, restore, snapshot, app).

mod endpoint;
pub mod tools;

pub use endpoint::{connect_config, Endpoint};
pub use tools::{short_id, PgTools, ToolCommand};

use tokio_postgres::Client;

/// Quotes an SQL identifier (`"my ""odd"" name"`).
pub fn ident(s: &str) -> String {
    postgres_protocol::escape::escape_identifier(s)
}

/// Quotes an SQL string literal (`'it''s'`, or `E'…'` when it holds a backslash).
pub fn literal(s: &str) -> String {
    postgres_protocol::escape::escape_literal(s)
}

/// An error as a person needs it: the server's message, detail, hint and SQLSTATE when the
/// server sent one, else the client's own description with its cause. tokio-postgres's
/// `Display` says only `db error` for server errors.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; DETAIL: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; HINT: {h}"));
            }
            if let Some(w) = db.where_() {
                s.push_str(&format!("; WHERE: {w}"));
            }
            s.push_str(&format!(" (SQLSTATE {})", db.code().code()));
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        }
    }
}

/// The fault a server error reports, if it is one the drill tells apart from a finding: by
/// SQLSTATE (disk full 53100, insufficient privilege 42501, the server shutting down
/// 57P01–57P03, a connection exception of class 08) or a connection that closed under it.
pub fn fault(e: &tokio_postgres::Error) -> Option<crate::program::Fault> {
    use crate::program::Fault;
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return Some(Fault::ServerLost);
    }
    let code = e.code()?;
    if *code == SqlState::DISK_FULL {
        Some(Fault::DiskFull)
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        Some(Fault::PermissionDenied)
    } else if [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ]
    .contains(code)
        || code.code().starts_with("08")
    {
        Some(Fault::ServerLost)
    } else {
        None
    }
}

/// The transaction every exact snapshot is taken in.
pub const SNAPSHOT_BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Opens a `REPEATABLE READ, READ ONLY` transaction on `client` and exports its snapshot; the
/// id can be handed to `pg_dump --snapshot` or to [`join_snapshot`] on another session, and
/// stays valid while this transaction is open.
pub async fn export_snapshot(client: &Client) -> Result<String, tokio_postgres::Error> {
    client.batch_execute(SNAPSHOT_BEGIN).await?;
    Ok(client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await?
        .get(0))
}

/// Opens a transaction on `client` that sees exactly the snapshot `id` exported elsewhere.
pub async fn join_snapshot(client: &Client, id: &str) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "{SNAPSHOT_BEGIN}; SET TRANSACTION SNAPSHOT {}",
            literal(id)
        ))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident(r#"my "odd" name"#), r#""my ""odd"" name""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b"), r" E'a\\b'");
    }
}
