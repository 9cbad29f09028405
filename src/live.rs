//! The live database a real restore replaces (`pgdrill restore`, the design's external
//! target): what the server and the database are, whether a restore may touch them, the side
//! database the restore fills, the swap that puts it in the live one's place (undone when it
//! fails half-way), and the literal drop of an in-place restore. Nothing here runs before the
//! user's confirmation, and nothing here creates or alters a role.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::env_error::EnvError;
use crate::pg::{ident, Endpoint};

/// PostgreSQL's limit on a database name, in bytes.
const NAME_MAX: usize = 63;

/// The suffix of the database a side restore fills.
pub const SIDE_SUFFIX: &str = "__pgdrill_restoring";

/// The prefix of the suffix the replaced database is kept under.
pub const BEFORE_SUFFIX: &str = "__pgdrill_before_";

/// What can stop a real restore before or during its work on the live server.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Connecting or a client program failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The server is a standby.
    #[error("the target {server} is a standby (pg_is_in_recovery() is true): a restore goes into the primary; give the primary's DSN in --target-dsn. Nothing was changed")]
    Standby {
        /// The server, redacted.
        server: String,
    },
    /// The role cannot create the side database.
    #[error("role {role} on {server} can create no database (neither superuser nor CREATEDB), and the restore creates one; connect as a role that can (ALTER ROLE {role} CREATEDB, run by a superuser). Nothing was changed")]
    NoCreatedb {
        /// The role.
        role: String,
        /// The server, redacted.
        server: String,
    },
    /// The role may not rename or drop the live database.
    #[error("role {role} does not own database {database} on {server} and is not a superuser, so it cannot rename or drop it; connect as its owner ({owner}) or a superuser. Nothing was changed")]
    NotOwner {
        /// The role.
        role: String,
        /// The live database.
        database: String,
        /// Its owner.
        owner: String,
        /// The server, redacted.
        server: String,
    },
    /// A database under the name the restore needs exists already.
    #[error("database {name} already exists on {server}: the side database of a restore that did not finish? Look at it, drop it (DROP DATABASE {quoted}) if it is not needed, and run again. Nothing was changed")]
    SideExists {
        /// Its name.
        name: String,
        /// The same, quoted for SQL.
        quoted: String,
        /// The server, redacted.
        server: String,
    },
    /// A statement failed.
    #[error("{what} on {server}: {reason}")]
    Sql {
        /// What was being done.
        what: String,
        /// The server, redacted.
        server: String,
        /// The server's words.
        reason: String,
    },
    /// A stop was asked while the live database was being replaced; `state` says where it
    /// stopped and that the names are as they were.
    #[error("interrupted {state}")]
    Interrupted {
        /// The live database.
        database: String,
        /// Where the swap stopped and what the names are now.
        state: String,
    },
    /// Sessions would not leave the database.
    #[error("{count} session(s) are still connected to {database} on {server} after being terminated for 10 s ({who}); stop what reconnects (a pooler, a cron job) and run again")]
    Busy {
        /// The database.
        database: String,
        /// How many are left.
        count: usize,
        /// Who they are.
        who: String,
        /// The server, redacted.
        server: String,
    },
}

/// A session connected to the live database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Its backend pid.
    pub pid: i32,
    /// The role.
    pub user: String,
    /// `application_name`.
    pub application: String,
    /// The client's address, or `local`.
    pub client: String,
    /// `state` (active, idle, …).
    pub state: String,
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} {}@{} ({}{})",
            self.pid,
            self.user,
            self.client,
            self.state,
            if self.application.is_empty() {
                String::new()
            } else {
                format!(", {}", self.application)
            }
        )
    }
}

/// What the server and the live database are, read before anything is changed.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// The server, with the password as `***`.
    pub server: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The role pgdrill connects as.
    pub user: String,
    /// The live database's name.
    pub database: String,
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: i32,
    /// `pg_is_in_recovery()`.
    pub standby: bool,
    /// The role is a superuser.
    pub superuser: bool,
    /// The role may create databases.
    pub createdb: bool,
    /// The live database exists (a restore after it was dropped creates it).
    pub exists: bool,
    /// Its owner, when it exists.
    pub owner: Option<String>,
    /// The role owns it or is a superuser: it may rename and drop it.
    pub may_replace: bool,
    /// `pg_database_size`, when it exists.
    pub size_bytes: Option<i64>,
    /// The sessions connected to it now.
    pub sessions: Vec<Session>,
    /// The side database's name, and whether one exists already.
    pub side: String,
    /// A database of the side's name exists.
    pub side_exists: bool,
}

impl Facts {
    /// Why a restore cannot touch this server, if it cannot; `in_place` needs no side
    /// database.
    pub fn refuse(&self, in_place: bool) -> Option<LiveError> {
        if self.standby {
            return Some(LiveError::Standby {
                server: self.server.clone(),
            });
        }
        if !self.createdb && !self.superuser {
            return Some(LiveError::NoCreatedb {
                role: self.user.clone(),
                server: self.server.clone(),
            });
        }
        if self.exists && !self.may_replace {
            return Some(LiveError::NotOwner {
                role: self.user.clone(),
                database: self.database.clone(),
                owner: self.owner.clone().unwrap_or_default(),
                server: self.server.clone(),
            });
        }
        if self.side_exists && !in_place {
            return Some(LiveError::SideExists {
                name: self.side.clone(),
                quoted: ident(&self.side),
                server: self.server.clone(),
            });
        }
        None
    }
}

/// `db` with `suffix`, the name cut (at a character) so that the whole fits PostgreSQL's 63
/// bytes: a long live name still gets a side database beside it.
pub fn suffixed(db: &str, suffix: &str) -> String {
    let room = NAME_MAX.saturating_sub(suffix.len());
    let mut cut = db.len().min(room);
    while !db.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &db[..cut])
}

/// The database the side restore fills.
pub fn side_name(db: &str) -> String {
    suffixed(db, SIDE_SUFFIX)
}

/// The name the replaced database is kept under, stamped with the swap's moment.
pub fn before_name(db: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    suffixed(
        db,
        &format!("{BEFORE_SUFFIX}{}", at.format("%Y%m%dT%H%M%SZ")),
    )
}

/// The maintenance database's endpoint on `target`'s server: `postgres`, where pgdrill's
/// sessions never hold the databases it renames.
pub fn maintenance(target: &Endpoint) -> Endpoint {
    target.with_db("postgres")
}

fn sql_err(what: &str, server: &str, e: &tokio_postgres::Error) -> LiveError {
    LiveError::Sql {
        what: what.to_string(),
        server: server.to_string(),
        reason: crate::pg::error_text(e),
    }
}

/// Reads what the server and the live database `target.dbname` are; changes nothing.
pub async fn inspect(target: &Endpoint) -> Result<Facts, LiveError> {
    let server = target.display();
    let admin = maintenance(target);
    let c = admin.connect().await?;
    let db = target.dbname.clone();
    let side = side_name(&db);
    let q =
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int, \
             pg_is_in_recovery(), r.rolsuper, r.rolcreatedb \
             FROM pg_roles r WHERE r.rolname = current_user";
    let row = c.query_one(q, &[]).await.map_err(|e| {
        sql_err(
            "reading the server's version and the role's rights",
            &server,
            &e,
        )
    })?;
    let (server_version, server_version_num, standby, superuser, createdb): (
        String,
        i32,
        bool,
        bool,
        bool,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let q = "SELECT pg_get_userbyid(d.datdba), pg_database_size(d.oid), \
             pg_has_role(current_user, d.datdba, 'MEMBER') \
             FROM pg_database d WHERE d.datname = $1";
    let live = c
        .query_opt(q, &[&db])
        .await
        .map_err(|e| sql_err("reading the live database", &server, &e))?;
    let (owner, size_bytes, owns) = match &live {
        Some(r) => (
            Some(r.get::<_, String>(0)),
            Some(r.get::<_, i64>(1)),
            r.get(2),
        ),
        None => (None, None, false),
    };
    let side_exists = c
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&side])
        .await
        .map_err(|e| sql_err("looking for a side database", &server, &e))?
        .is_some();
    let sessions = sessions(&c, &db, &server).await?;
    Ok(Facts {
        server,
        host: target.host.clone(),
        port: target.port,
        user: target.user.clone(),
        exists: live.is_some(),
        database: db,
        server_version,
        server_version_num,
        standby,
        superuser,
        createdb,
        owner,
        may_replace: superuser || owns,
        size_bytes,
        sessions,
        side,
        side_exists,
    })
}

async fn sessions(c: &Client, db: &str, server: &str) -> Result<Vec<Session>, LiveError> {
    let rows = c
        .query(
            "SELECT pid, coalesce(usename, ''), coalesce(application_name, ''), \
             coalesce(host(client_addr), 'local'), coalesce(state, '') \
             FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() ORDER BY pid",
            &[&db],
        )
        .await
        .map_err(|e| sql_err("listing the database's sessions", server, &e))?;
    Ok(rows
        .iter()
        .map(|r| Session {
            pid: r.get(0),
            user: r.get(1),
            application: r.get(2),
            client: r.get(3),
            state: r.get(4),
        })
        .collect())
}

/// Closes `db` to new sessions and terminates the ones it has, waiting up to 10 s for them to
/// go; returns who was terminated. `ALLOW_CONNECTIONS false` stays until [`reopen`].
async fn empty(c: &Client, db: &str, server: &str) -> Result<Vec<Session>, LiveError> {
    c.batch_execute(&format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
        ident(db)
    ))
    .await
    .map_err(|e| sql_err(&format!("closing {db} to new sessions"), server, &e))?;
    let terminated = sessions(c, db, server).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .map_err(|e| sql_err(&format!("terminating the sessions of {db}"), server, &e))?;
        let left = sessions(c, db, server).await?;
        if left.is_empty() {
            return Ok(terminated);
        }
        if std::time::Instant::now() >= deadline {
            let _ = reopen(c, db).await;
            return Err(LiveError::Busy {
                database: db.to_string(),
                count: left.len(),
                who: left
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                server: server.to_string(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn reopen(c: &Client, db: &str) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(&format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
        ident(db)
    ))
    .await
}

/// What the swap did.
#[derive(Debug, Clone, Serialize)]
pub struct Swapped {
    /// The name the replaced database is kept under, when there was one.
    pub previous: Option<String>,
    /// The sessions terminated on the live database before it was renamed.
    pub terminated: Vec<Session>,
}

/// The swap: the live database `db` (when it exists) renamed to `before`, then `side`
/// renamed to `db`. A second rename that fails undoes the first, so `db` always names a
/// whole database. A stop asked through `cancel` is honoured only where it leaves the names
/// as they were: before the first rename, or by cancelling a rename still waiting on a lock
/// (and undoing the first); a swap whose renames both took effect is reported done, so the
/// report can say the swap happened.
pub async fn swap(
    target: &Endpoint,
    db: &str,
    side: &str,
    before: &str,
    cancel: &CancellationToken,
) -> Result<Swapped, LiveError> {
    let server = target.display();
    let interrupted = |state: String| LiveError::Interrupted {
        database: db.to_string(),
        state,
    };
    let c = maintenance(target).connect().await?;
    let exists = c
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .map_err(|e| sql_err("looking for the live database", &server, &e))?
        .is_some();
    let terminated = if exists {
        let terminated = empty(&c, db, &server).await?;
        if cancel.is_cancelled() {
            let _ = reopen(&c, db).await;
            return Err(interrupted(format!(
                "before the first rename: {db} is untouched and takes sessions again"
            )));
        }
        let first = format!("ALTER DATABASE {} RENAME TO {}", ident(db), ident(before));
        let (r, stopped) = exec_or_cancel(&c, &first, cancel).await;
        if let Err(e) = r {
            let _ = reopen(&c, db).await;
            if stopped {
                return Err(interrupted(format!(
                    "during the first rename, which was cancelled: {db} is untouched"
                )));
            }
            return Err(sql_err(&format!("renaming {db} to {before}"), &server, &e));
        }
        terminated
    } else {
        Vec::new()
    };
    let second = format!("ALTER DATABASE {} RENAME TO {}", ident(side), ident(db));
    // A stop before the second rename began means it never runs; one that came while it
    // waited cancels it, unless it took effect first.
    let failed = if cancel.is_cancelled() {
        Some("interrupted before the second rename".to_string())
    } else {
        exec_or_cancel(&c, &second, cancel)
            .await
            .0
            .err()
            .map(|e| crate::pg::error_text(&e))
    };
    let stopped = cancel.is_cancelled();
    if let Some(mut reason) = failed {
        let mut undone = !exists;
        if exists {
            let undo = format!("ALTER DATABASE {} RENAME TO {}", ident(before), ident(db));
            match c.batch_execute(&undo).await {
                Ok(()) => {
                    let _ = reopen(&c, db).await;
                    undone = true;
                    reason.push_str(&format!(
                        "; the first rename was undone: {db} is the database it was before"
                    ));
                }
                Err(e) => reason.push_str(&format!(
                    "; undoing the first rename failed too ({}): the live database is now named {before}; rename it back with ALTER DATABASE {} RENAME TO {}",
                    crate::pg::error_text(&e),
                    ident(before),
                    ident(db)
                )),
            }
        }
        if stopped && undone {
            return Err(interrupted(format!(
                "during the swap, which was undone: {db} is the database it was before"
            )));
        }
        return Err(LiveError::Sql {
            what: format!("renaming {side} to {db}"),
            server,
            reason,
        });
    }
    // The kept database takes sessions again, for a look or a manual swap back.
    if exists {
        reopen(&c, before)
            .await
            .map_err(|e| sql_err(&format!("reopening {before}"), &server, &e))?;
    }
    Ok(Swapped {
        previous: exists.then(|| before.to_string()),
        terminated,
    })
}

/// Runs `sql` on `c`; when `cancel` fires first, asks the server to cancel it and waits for
/// its end, so the caller knows whether it took effect. The flag says a stop was asked.
async fn exec_or_cancel(
    c: &Client,
    sql: &str,
    cancel: &CancellationToken,
) -> (Result<(), tokio_postgres::Error>, bool) {
    let run = c.batch_execute(sql);
    tokio::pin!(run);
    tokio::select! {
        biased;
        r = &mut run => (r, cancel.is_cancelled()),
        _ = cancel.cancelled() => {
            let _ = c.cancel_token().cancel_query(tokio_postgres::NoTls).await;
            (run.await, true)
        }
    }
}

/// Drops database `name` (its sessions terminated first), when it exists; returns who was
/// terminated.
pub async fn drop_database(target: &Endpoint, name: &str) -> Result<Vec<Session>, LiveError> {
    let server = target.display();
    let c = maintenance(target).connect().await?;
    let exists = c
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| sql_err(&format!("looking for {name}"), &server, &e))?
        .is_some();
    if !exists {
        return Ok(Vec::new());
    }
    let terminated = empty(&c, name, &server).await?;
    c.batch_execute(&format!("DROP DATABASE {}", ident(name)))
        .await
        .map_err(|e| sql_err(&format!("dropping {name}"), &server, &e))?;
    Ok(terminated)
}

/// The SQL to swap back by hand after a swap to `previous`: the restored `db` kept as
/// `<db>__pgdrill_failed…`, the previous database back under its name.
pub fn swap_back_sql(db: &str, previous: &str) -> String {
    let failed = suffixed(db, "__pgdrill_swapped_out");
    format!(
        "ALTER DATABASE {db_q} RENAME TO {failed_q}; ALTER DATABASE {prev_q} RENAME TO {db_q};",
        db_q = ident(db),
        failed_q = ident(&failed),
        prev_q = ident(previous)
    )
}

/// The globals file's statements for the roles the server lacks: `CREATE ROLE` and
/// `ALTER ROLE` of a missing role, and `GRANT … TO` a missing role. A role that exists is
/// never altered, whatever the backup says of it.
pub fn missing_roles_sql(globals: &str, existing: &std::collections::BTreeSet<String>) -> String {
    let mut out = String::new();
    for line in globals.lines() {
        let keep = if let Some(rest) = line
            .strip_prefix("CREATE ROLE ")
            .or_else(|| line.strip_prefix("ALTER ROLE "))
        {
            let name = leading_name(rest);
            !existing.contains(&name)
        } else if line.starts_with("GRANT ") {
            // `GRANT a TO b …`: a membership of a new role b.
            line.find(" TO ")
                .map(|at| leading_name(&line[at + 4..]))
                .is_some_and(|grantee| !existing.contains(&grantee))
        } else {
            false
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The role name a statement starts with: a quoted identifier (with `""` inside) or a bare
/// word up to a space or `;`.
fn leading_name(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    name.push('"');
                } else {
                    break;
                }
            } else {
                name.push(c);
            }
        }
        name
    } else {
        s.split([' ', ';']).next().unwrap_or("").to_string()
    }
}

/// The roles the server has.
pub async fn roles(target: &Endpoint) -> Result<std::collections::BTreeSet<String>, LiveError> {
    let server = target.display();
    let c = maintenance(target).connect().await?;
    let rows = c
        .query("SELECT rolname FROM pg_roles", &[])
        .await
        .map_err(|e| sql_err("listing roles", &server, &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgres_limit_and_keep_the_suffix() {
        assert_eq!(side_name("shop"), "shop__pgdrill_restoring");
        let long = "é".repeat(40);
        let s = side_name(&long);
        assert!(s.len() <= 63 && s.ends_with(SIDE_SUFFIX), "{s}");
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            before_name("shop", at),
            "shop__pgdrill_before_20261206T120000Z"
        );
    }

    #[test]
    fn only_missing_roles_are_created_and_none_altered() {
        let globals = "--\n-- Roles\n--\n\nCREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\nCREATE ROLE \"Odd \"\"Name\";\nALTER ROLE \"Odd \"\"Name\" WITH NOLOGIN;\nGRANT app TO \"Odd \"\"Name\" GRANTED BY postgres;\nGRANT app TO reader GRANTED BY postgres;\n";
        let existing = ["postgres", "reader"]
            .map(String::from)
            .into_iter()
            .collect();
        assert_eq!(
            missing_roles_sql(globals, &existing),
            "CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nCREATE ROLE \"Odd \"\"Name\";\nALTER ROLE \"Odd \"\"Name\" WITH NOLOGIN;\nGRANT app TO \"Odd \"\"Name\" GRANTED BY postgres;\n"
        );
    }
}
