//! Restore preflight: the roles, extensions and tablespaces an archive needs, read from its own
//! schema script before `pg_restore`, and compared with what the target server has. A dump
//! whose owners nobody backed up fails here with the roles named and the fix, not halfway
//! through `pg_restore` with `role "x" does not exist`; tablespaces a new server lacks are
//! found here too, so that the restore can leave them out (`--no-tablespaces`) and say so.

use std::collections::BTreeSet;
use std::path::Path;

use crate::env::{Endpoint, PgTools};
use crate::env_error::EnvError;

/// What to do about roles the archive needs that the target lacks (`--missing-roles`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingRoles {
    /// Fail the drill at the `roles` step as `backup_incomplete`.
    #[default]
    Fail,
    /// Create them NOLOGIN on the disposable target, so owners and grants are still compared.
    Create,
}

/// What an archive's objects refer to outside the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Owners, grantees and `FOR ROLE` roles.
    pub roles: BTreeSet<String>,
    /// Extensions the archive creates.
    pub extensions: BTreeSet<String>,
    /// Tablespaces the archive's tables and indexes are created in (`SET default_tablespace`).
    pub tablespaces: BTreeSet<String>,
}

/// Why the preflight stopped the restore.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The backup set lacks the roles its objects need.
    #[error("the backup set is incomplete: the dump needs role(s) {} that the target server does not have and no globals file provides. A real restore on a new server would fail with `role ... does not exist`. Fix: back up the roles with `pg_dumpall --globals-only` beside the dump, pass them with `--globals FILE`, or for a drill only use `--missing-roles create`", list(.roles))]
    BackupIncomplete {
        /// The roles missing on the target.
        roles: Vec<String>,
    },
    /// The target lacks an extension the dump creates.
    #[error("the target server lacks extension(s) {} that the dump creates (not in pg_available_extensions). Fix: install the extension's package on the restore server (the same major version as the source) before restoring", list(.extensions))]
    MissingExtension {
        /// The extensions not available on the target.
        extensions: Vec<String>,
    },
    /// pg_restore could not print the archive's schema, or a query failed.
    #[error("restore preflight: {0}")]
    Failed(String),
    /// The machine failed.
    #[error(transparent)]
    Env(#[from] EnvError),
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the preflight found and did, for the `roles` step's detail and the report's notes.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One line for the step.
    pub detail: String,
    /// Said plainly in the report's notes (roles created for the drill only).
    pub note: Option<String>,
    /// Tablespaces the archive uses that the target lacks, sorted. When not empty, the caller
    /// restores with `pg_restore --no-tablespaces` (every target a drill makes is disposable)
    /// and compares with [`crate::snapshot::CompareOptions::no_tablespaces`]; see
    /// [`Outcome::tablespace_note`].
    pub missing_tablespaces: Vec<String>,
}

impl Outcome {
    /// Whether the restore must run with `pg_restore --no-tablespaces`.
    pub fn no_tablespaces(&self) -> bool {
        !self.missing_tablespaces.is_empty()
    }

    /// The report note for tablespaces the target lacks: what was done and what a real
    /// restore on a new server needs.
    pub fn tablespace_note(&self) -> Option<String> {
        self.no_tablespaces().then(|| {
            format!(
                "the target server has no tablespace {} that the dump's tables or indexes are in: restored with pg_restore --no-tablespaces, so those objects are in the default tablespace (a known transformation in the integrity warnings). For a real restore on a new server, create the tablespace(s) first (CREATE TABLESPACE ... LOCATION '<dir>') or restore with --no-tablespaces as the drill did",
                list(&self.missing_tablespaces)
            )
        })
    }
}

/// The whole preflight: every extension the archive creates must be available on the target,
/// and every role it needs must exist there (after the globals, if any, were replayed), or be
/// created NOLOGIN under `--missing-roles create`.
pub async fn run(
    target: &Endpoint,
    tools: &PgTools,
    dump: &Path,
    policy: MissingRoles,
) -> Result<Outcome, PreflightError> {
    let needs = needs(tools, dump).await?;
    let extensions = missing_extensions(target, &needs).await?;
    if !extensions.is_empty() {
        return Err(PreflightError::MissingExtension { extensions });
    }
    let missing_tablespaces = missing_tablespaces(target, &needs).await?;
    let roles = missing_roles(target, &needs).await?;
    let mut base = format!(
        "the dump needs {} role(s), {} extension(s) and {} tablespace(s)",
        needs.roles.len(),
        needs.extensions.len(),
        needs.tablespaces.len()
    );
    if !missing_tablespaces.is_empty() {
        base.push_str(&format!(
            "; tablespace(s) {} missing on the target: restoring with --no-tablespaces",
            list(&missing_tablespaces)
        ));
    }
    if roles.is_empty() {
        return Ok(Outcome {
            detail: format!("{base}; all roles and extensions present on the target"),
            note: None,
            missing_tablespaces,
        });
    }
    match policy {
        MissingRoles::Fail => Err(PreflightError::BackupIncomplete { roles }),
        MissingRoles::Create => {
            create_roles(target, &roles).await?;
            Ok(Outcome {
                detail: format!("{base}; created missing role(s) {} NOLOGIN (--missing-roles create)", list(&roles)),
                note: Some(format!(
                    "the backup set lacks role(s) {}: a real restore of this backup set would have failed; the drill created them NOLOGIN (--missing-roles create) so that owners and grants could be restored and compared",
                    list(&roles)
                )),
                missing_tablespaces,
            })
        }
    }
}

/// Reads the archive's schema script (`pg_restore --schema-only -f -`) for what it needs.
pub async fn needs(tools: &PgTools, dump: &Path) -> Result<Needs, PreflightError> {
    let out = tools
        .read_archive(dump, &["--schema-only", "-f", "-"])
        .await?;
    if !out.status.success() {
        return Err(PreflightError::Failed(format!(
            "pg_restore --schema-only could not read {}: {}",
            dump.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_script(&String::from_utf8_lossy(&out.stdout)))
}

/// The roles and extensions a pg_dump script refers to, from the statement lines pg_dump
/// writes for them (a function body never starts a line with these at column 0 in practice,
/// and a false role only makes the preflight ask for one more role, never pass a missing one).
pub fn parse_script(script: &str) -> Needs {
    let mut needs = Needs::default();
    for line in script.lines() {
        // pg_dump sets the tablespace before each table or index that has one, and '' after.
        if let Some(rest) = line.strip_prefix("SET default_tablespace = ") {
            if let Some((name, _)) = identifier(rest) {
                needs.tablespaces.insert(name);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("CREATE EXTENSION IF NOT EXISTS ") {
            if let Some((name, _)) = identifier(rest) {
                needs.extensions.insert(name);
            }
            continue;
        }
        if line.starts_with("ALTER ") {
            if let Some(i) = line.rfind(" OWNER TO ") {
                if let Some((role, _)) = identifier(&line[i + " OWNER TO ".len()..]) {
                    needs.roles.insert(role);
                }
            }
            if let Some(i) = line.find(" FOR ROLE ") {
                if let Some((role, _)) = identifier(&line[i + " FOR ROLE ".len()..]) {
                    needs.roles.insert(role);
                }
            }
        }
        let grantees = if line.starts_with("GRANT ") || line.contains(" GRANT ") {
            line.rfind(" TO ").map(|i| &line[i + 4..])
        } else if line.starts_with("REVOKE ") || line.contains(" REVOKE ") {
            line.rfind(" FROM ").map(|i| &line[i + 6..])
        } else {
            None
        };
        if let Some(mut rest) = grantees {
            while let Some((role, after)) = identifier(rest.trim_start()) {
                if !role.eq_ignore_ascii_case("public") {
                    needs.roles.insert(role);
                }
                match after.strip_prefix(',') {
                    Some(next) => rest = next,
                    None => break,
                }
            }
        }
    }
    needs
}

/// One SQL identifier at the start of `s` (quoted with `""` escapes, or bare), and the rest.
fn identifier(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, ch)) = chars.next() {
            if ch == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    chars.next();
                    name.push('"');
                } else {
                    return Some((name, &body[i + 1..]));
                }
            } else {
                name.push(ch);
            }
        }
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_string(), &s[end..]))
}

/// The roles of `needs` the target lacks, sorted.
pub async fn missing_roles(
    target: &Endpoint,
    needs: &Needs,
) -> Result<Vec<String>, PreflightError> {
    absent(target, &needs.roles, "pg_roles", "rolname").await
}

/// The extensions of `needs` the target cannot create, sorted.
pub async fn missing_extensions(
    target: &Endpoint,
    needs: &Needs,
) -> Result<Vec<String>, PreflightError> {
    absent(target, &needs.extensions, "pg_available_extensions", "name").await
}

/// The tablespaces of `needs` the target lacks, sorted.
pub async fn missing_tablespaces(
    target: &Endpoint,
    needs: &Needs,
) -> Result<Vec<String>, PreflightError> {
    absent(target, &needs.tablespaces, "pg_tablespace", "spcname").await
}

/// The names of `wanted` that no row of the target's `catalog` has in `column`, sorted.
async fn absent(
    target: &Endpoint,
    wanted: &BTreeSet<String>,
    catalog: &str,
    column: &str,
) -> Result<Vec<String>, PreflightError> {
    let client = target.with_db("postgres").connect().await?;
    let wanted: Vec<String> = wanted.iter().cloned().collect();
    let sql = format!(
        "SELECT w FROM unnest($1::text[]) AS w WHERE NOT EXISTS (SELECT 1 FROM {catalog} c WHERE c.{column} = w) ORDER BY 1"
    );
    let rows = client
        .query(sql.as_str(), &[&wanted])
        .await
        .map_err(|e| PreflightError::Failed(crate::pg::error_text(&e)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Creates `roles` NOLOGIN on the (disposable) target.
pub async fn create_roles(target: &Endpoint, roles: &[String]) -> Result<(), PreflightError> {
    let client = target.with_db("postgres").connect().await?;
    for role in roles {
        client
            .batch_execute(&format!("CREATE ROLE {} NOLOGIN", crate::pg::ident(role)))
            .await
            .map_err(|e| PreflightError::Failed(crate::pg::error_text(&e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_owners_grantees_and_extensions_from_a_pg_dump_script() {
        let script = r#"
CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;
SET default_tablespace = '';
SET default_tablespace = "My TS";
SET default_tablespace = fast;
ALTER SCHEMA "Legacy App" OWNER TO "Shop ""Owner""";
ALTER TABLE public.orders OWNER TO shop_owner;
GRANT SELECT ON TABLE public.orders TO reporting, "Mixed Case";
GRANT USAGE ON SCHEMA public TO PUBLIC;
REVOKE ALL ON TABLE public.orders FROM auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE deployer IN SCHEMA public GRANT SELECT ON TABLES TO reader;
"#;
        let n = parse_script(script);
        assert_eq!(
            n.roles.into_iter().collect::<Vec<_>>(),
            [
                "Mixed Case",
                "Shop \"Owner\"",
                "auditor",
                "deployer",
                "reader",
                "reporting",
                "shop_owner"
            ]
        );
        assert_eq!(n.extensions.into_iter().collect::<Vec<_>>(), ["citext"]);
        assert_eq!(
            n.tablespaces.into_iter().collect::<Vec<_>>(),
            ["My TS", "fast"]
        );
    }

    #[test]
    fn the_tablespace_note_names_them_and_the_fix() {
        let none = Outcome::default();
        assert!(!none.no_tablespaces() && none.tablespace_note().is_none());
        let o = Outcome {
            missing_tablespaces: vec!["fast".into()],
            ..Outcome::default()
        };
        let note = o.tablespace_note().unwrap();
        for needle in ["\"fast\"", "--no-tablespaces", "CREATE TABLESPACE"] {
            assert!(note.contains(needle), "{note}");
        }
    }

    #[test]
    fn the_message_names_every_role_and_the_fix() {
        let e = PreflightError::BackupIncomplete {
            roles: vec!["shop_owner".into(), "reporting".into()],
        };
        let m = e.to_string();
        for needle in [
            "\"shop_owner\"",
            "\"reporting\"",
            "pg_dumpall --globals-only",
            "--globals",
            "--missing-roles create",
        ] {
            assert!(m.contains(needle), "{m}");
        }
    }
}
