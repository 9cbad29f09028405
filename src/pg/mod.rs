//! PostgreSQL plumbing shared by every domain module: quoting, the server's own words for an
//! error, and the exported-snapshot transaction that makes S0 exact. A leaf below the domain
//! modules (seed, backup, restore, snapshot, app).

pub mod archive;
mod endpoint;
pub mod settings;
pub mod tools;

pub use endpoint::{
    connect_config, Endpoint, CONNECT_TIMEOUT, KEEPALIVES_COUNT, KEEPALIVES_IDLE,
    KEEPALIVES_INTERVAL, TCP_USER_TIMEOUT,
};
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

/// How often pgdrill's exported-snapshot session speaks (a `SELECT 1`) while pg_dump runs,
/// so that it is never idle for long inside its transaction.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the server lets pgdrill's exported-snapshot session sit idle in its transaction
/// before ending it: six heartbeats, so a live pgdrill is never cut, while a pgdrill that
/// went silent (killed, or cut off behind a frozen network path) leaves no open
/// transaction holding back vacuum on the source for longer than this.
pub const SNAPSHOT_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The server-side TCP settings (`tcp_keepalives_*`, and `tcp_user_timeout` from PostgreSQL
/// 12) that make the server drop a session of pgdrill's whose network path died, for a
/// server of `version_num` (`server_version_num`); each is settable by any role, per session.
pub fn server_tcp_settings(version_num: i32) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("tcp_keepalives_idle", KEEPALIVES_IDLE.as_secs().to_string()),
        (
            "tcp_keepalives_interval",
            KEEPALIVES_INTERVAL.as_secs().to_string(),
        ),
        ("tcp_keepalives_count", KEEPALIVES_COUNT.to_string()),
    ];
    if version_num >= 120_000 {
        v.push(("tcp_user_timeout", TCP_USER_TIMEOUT.as_millis().to_string()));
    }
    v
}

/// Bounds pgdrill's exported-snapshot session on the server: it ends when idle in its
/// transaction for [`SNAPSHOT_IDLE_LIMIT`] (pgdrill speaks every [`HEARTBEAT_EVERY`]) or
/// when its TCP peer stops answering. The server's own limits are what end it when pgdrill
/// cannot (its process killed, its packets lost).
pub async fn bound_snapshot_session(
    client: &Client,
    version_num: i32,
) -> Result<(), tokio_postgres::Error> {
    let mut sql = String::new();
    if version_num >= 90_600 {
        sql.push_str(&format!(
            "SET idle_in_transaction_session_timeout = {};",
            SNAPSHOT_IDLE_LIMIT.as_millis()
        ));
    }
    for (k, v) in server_tcp_settings(version_num) {
        sql.push_str(&format!("SET {k} = {v};"));
    }
    client.batch_execute(&sql).await
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
