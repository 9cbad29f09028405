//! Telling a real difference from a known pg_dump transformation or a problem the source
//! already had. Every rule is narrow: it pairs one missing descriptor with one unexpected one
//! that differ only in what pg_dump is known to change, so a different definition under the
//! same name is still a failure.

use serde::{Deserialize, Serialize};

/// Why a difference did not fail the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// An inheritance child's columns in another physical order, same names and definitions.
    ColumnOrder,
    /// A partition's copy of its parent's constraint under another name, same definition.
    PartitionConstraintName,
    /// A check that already failed on the source and that the restore reproduced.
    SourceFinding,
    /// A materialized view whose rows differ because the restore refreshed it.
    StaleMaterializedView,
    /// Tables or indexes in the default tablespace because the restore ran with
    /// `pg_restore --no-tablespaces` (the target lacked the tablespace).
    NoTablespaces,
    /// A sub-partitioned index that a parallel pg_restore left not marked valid although every
    /// partition's index is attached and valid.
    PartitionedIndexUnmarked,
    /// The database's own settings, comment, connection limit or grants, which the dump holds
    /// but `pg_restore` without `--create` does not apply.
    DatabaseProperties,
}

impl WarningKind {
    /// The kind as report.json spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::ColumnOrder => "column_order",
            WarningKind::PartitionConstraintName => "partition_constraint_name",
            WarningKind::SourceFinding => "source_finding",
            WarningKind::StaleMaterializedView => "stale_materialized_view",
            WarningKind::NoTablespaces => "no_tablespaces",
            WarningKind::PartitionedIndexUnmarked => "partitioned_index_unmarked",
            WarningKind::DatabaseProperties => "database_properties",
        }
    }

    /// A known pg_dump transformation of the schema: fails the drill under `--strict-schema`.
    pub fn is_schema_transformation(self) -> bool {
        matches!(
            self,
            WarningKind::ColumnOrder
                | WarningKind::PartitionConstraintName
                | WarningKind::NoTablespaces
                | WarningKind::PartitionedIndexUnmarked
                | WarningKind::DatabaseProperties
        )
    }
}

/// One explained difference: the report's `integrity.warnings[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// What kind of known difference this is.
    pub kind: WarningKind,
    /// The relation, constraint, sequence or check it concerns.
    pub object: String,
    /// One line saying why it is not a restore failure.
    pub reason: String,
}

impl Warning {
    /// The warning as one line for the console and report.md.
    pub fn line(&self) -> String {
        format!("{} {}: {}", self.kind.as_str(), self.object, self.reason)
    }
}

/// Removes from `missing` and `unexpected` every pair a known transformation explains, and
/// returns one warning per pair.
pub(super) fn schema(missing: &mut Vec<&String>, unexpected: &mut Vec<&String>) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < missing.len() {
        let found = unexpected
            .iter()
            .position(|u| explain(missing[i], u).is_some());
        match found {
            Some(j) => {
                let warning = explain(missing[i], unexpected[j]).expect("just matched");
                warnings.push(warning);
                missing.remove(i);
                unexpected.remove(j);
            }
            None => i += 1,
        }
    }
    warnings
}

fn explain(before: &str, after: &str) -> Option<Warning> {
    column_order(before, after).or_else(|| partition_constraint_name(before, after))
}

/// `column_order R inherits=true: a,b` against `…: b,a`: same columns, another order, on a
/// table that inherits (pg_dump creates a child with its parent's columns first).
fn column_order(before: &str, after: &str) -> Option<Warning> {
    fn parse(s: &str) -> Option<(&str, Vec<&str>)> {
        let rest = s.strip_prefix("column_order ")?;
        let (relation, rest) = word(rest)?;
        let columns = rest.strip_prefix(" inherits=true: ")?;
        let mut columns = split_outside_quotes(columns, ',');
        columns.sort_unstable();
        Some((relation, columns))
    }
    let (relation, columns) = parse(before)?;
    if parse(after)? != (relation, columns) {
        return None;
    }
    Some(Warning {
        kind: WarningKind::ColumnOrder,
        object: relation.to_string(),
        reason: "pg_dump creates an inheritance child with its parent's columns first; same columns and definitions, rows compared by column name".to_string(),
    })
}

/// `constraint R N1 type=f clone=true: DEF` against the same with N2: a partition's copy of its
/// parent's key, which pg_dump recreates under the name the parent's key gives it.
fn partition_constraint_name(before: &str, after: &str) -> Option<Warning> {
    fn parse(s: &str) -> Option<(&str, &str, &str, &str)> {
        let rest = s.strip_prefix("constraint ")?;
        let (relation, rest) = word(rest)?;
        let (name, rest) = word(rest.strip_prefix(' ')?)?;
        let (kind, definition) = rest.strip_prefix(" type=")?.split_once(" clone=true: ")?;
        Some((relation, name, kind, definition))
    }
    let (relation, old_name, kind, definition) = parse(before)?;
    let (r, new_name, k, d) = parse(after)?;
    if (r, k, d) != (relation, kind, definition) || old_name == new_name {
        return None;
    }
    Some(Warning {
        kind: WarningKind::PartitionConstraintName,
        object: format!("{relation} {old_name} → {new_name}"),
        reason: "a partition's copy of its parent's constraint is recreated by pg_dump under the name the parent gives it; same definition".to_string(),
    })
}

/// Objects the restore put in the default tablespace because it ran with `pg_restore
/// --no-tablespaces`: a `tablespace K R: T` line missing after, with no `tablespace K R:` line
/// after at all (an object in *another* tablespace after is still a failure). Call it only when
/// the restore really ran so. One warning per tablespace, naming its objects.
pub(super) fn no_tablespaces(missing: &mut Vec<&String>, unexpected: &[&String]) -> Vec<Warning> {
    /// `tablespace K R: T` → (`tablespace K R`, `T`).
    fn parse(s: &str) -> Option<(&str, &str)> {
        let rest = s.strip_prefix("tablespace ")?;
        let (kind, rest) = rest.split_once(' ')?;
        if !matches!(kind, "relation" | "index") {
            return None;
        }
        let (object, tablespace) = word(rest)?;
        object.strip_suffix(':')?;
        let key = &s[..s.len() - tablespace.len() - 1];
        Some((key, tablespace.strip_prefix(' ')?))
    }
    let mut by_tablespace: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    missing.retain(|m| {
        let Some((key, tablespace)) = parse(m) else {
            return true;
        };
        let moved = unexpected
            .iter()
            .any(|u| parse(u).is_some_and(|(k, _)| k == key));
        if moved {
            return true;
        }
        let object = key.strip_prefix("tablespace ").unwrap_or(key);
        by_tablespace
            .entry(tablespace)
            .or_default()
            .push(object.to_string());
        false
    });
    by_tablespace
        .into_iter()
        .map(|(tablespace, objects)| {
            const SHOWN: usize = 5;
            let mut named = objects.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
            if objects.len() > SHOWN {
                named.push_str(&format!(" and {} more", objects.len() - SHOWN));
            }
            Warning {
                kind: WarningKind::NoTablespaces,
                object: format!("tablespace {tablespace}"),
                reason: format!(
                    "the target server has no such tablespace, so the restore ran with pg_restore --no-tablespaces and {} object(s) are in the default tablespace ({named}); their rows and definitions are compared as usual",
                    objects.len()
                ),
            }
        })
        .collect()
}

/// The database's own properties (`database …` lines) missing after a restore into a database
/// that createdb made: pg_restore applies them only with `--create`. Narrow: the restored side
/// may differ only by lacking them and by its owner; any `database …` line the restore has
/// that the source did not (a setting, a grant, a comment) is still a failure. One warning.
pub(super) fn database_properties(
    missing: &mut Vec<&String>,
    unexpected: &mut Vec<&String>,
) -> Vec<Warning> {
    const PREFIX: &str = "database ";
    const OWNER: &str = "database owner=";
    let lost: Vec<&String> = missing
        .iter()
        .copied()
        .filter(|m| m.starts_with(PREFIX))
        .collect();
    let other_owner = unexpected.iter().any(|u| u.starts_with(OWNER));
    let only_owner_after = unexpected
        .iter()
        .filter(|u| u.starts_with(PREFIX))
        .all(|u| u.starts_with(OWNER));
    if lost.is_empty()
        || !only_owner_after
        || other_owner != lost.iter().any(|m| m.starts_with(OWNER))
    {
        return Vec::new();
    }
    let named: Vec<&str> = lost
        .iter()
        .map(|m| m.strip_prefix(PREFIX).unwrap_or(m))
        .collect();
    missing.retain(|m| !m.starts_with(PREFIX));
    unexpected.retain(|u| !u.starts_with(PREFIX));
    vec![Warning {
        kind: WarningKind::DatabaseProperties,
        object: "database".to_string(),
        reason: format!(
            "the dump holds the database's own properties, but createdb + pg_restore -d (the strategy's restore) leaves them behind: pg_restore applies them only with --create. Not restored: {}. After a real restore, apply them: pg_restore --create --schema-only -f - DUMP prints them (its DATABASE PROPERTIES, COMMENT and ACL entries) as SQL",
            named.join("; ")
        ),
    }]
}

/// A source finding: an absolute check that already failed on the source, reproduced.
pub(super) fn source_finding(check: &str, value: &str, expected: &str) -> Warning {
    let consequence = if check.starts_with("sequence_ahead:") {
        "the application's next INSERT will collide with an existing row after any restore"
    } else if check.starts_with(super::checks::INDEX_VALID) {
        "pg_dump recreates a partitioned table's index as invalid as it was; queries cannot use it until every partition's index is attached (ALTER INDEX ... ATTACH PARTITION)"
    } else {
        "the application will hit it after any restore"
    };
    Warning {
        kind: WarningKind::SourceFinding,
        object: check.to_string(),
        reason: format!(
            "already so in the source ({value}, should be {expected}) and faithfully restored; {consequence}"
        ),
    }
}

/// An index invalid in the source (a failed `CREATE INDEX CONCURRENTLY` or `REINDEX
/// CONCURRENTLY`) that the restore does not have, because pg_dump leaves invalid indexes out.
pub(super) fn invalid_index_left_out(check: &str, value: &str) -> Warning {
    let index = check
        .strip_prefix(super::checks::INDEX_VALID)
        .unwrap_or(check);
    let unique = if value.contains("unique") {
        " It is a unique index: the failed build most likely met duplicate keys, which the source (and so the restore) still holds, and the uniqueness it partly enforced on new rows in the source is gone after the restore; find them with SELECT <columns>, count(*) ... GROUP BY 1 HAVING count(*) > 1 before building it again."
    } else {
        ""
    };
    Warning {
        kind: WarningKind::SourceFinding,
        object: check.to_string(),
        reason: format!(
            "index {index} is {value} in the source (a CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY that failed) and unused by queries there; pg_dump leaves invalid indexes out, so the restored database does not have it. Fix it on the source: DROP INDEX {index}, then CREATE INDEX CONCURRENTLY again.{unique}"
        ),
    }
}

/// A partitioned index valid in the source that the restore left unmarked, though complete.
pub(super) fn partitioned_index_unmarked(check: &str, value: &str) -> Warning {
    let index = check
        .strip_prefix(super::checks::INDEX_VALID)
        .unwrap_or(check);
    let child = value
        .rsplit_once("e.g. ")
        .map(|(_, c)| c.trim_end_matches(')'))
        .unwrap_or("<a partition's index>");
    Warning {
        kind: WarningKind::PartitionedIndexUnmarked,
        object: check.to_string(),
        reason: format!(
            "valid in the source; after pg_restore -j it is not marked valid although {}: a parallel restore attached it before its own sub-partitions' indexes were, and PostgreSQL does not re-check it then. Until fixed, no foreign key can be made to reference it. Fix on the restored database: ALTER INDEX {index} ATTACH PARTITION {child} (re-checks and marks it valid)",
            super::checks::ATTACHED_AND_VALID
        ),
    }
}

/// A populated materialized view whose restored rows differ from what the source served.
pub(super) fn stale_materialized_view(name: &str) -> Warning {
    Warning {
        kind: WarningKind::StaleMaterializedView,
        object: name.to_string(),
        reason: "rebuilt by REFRESH at restore; the source served older data".to_string(),
    }
}

/// The first space-separated word of `s` (spaces inside double quotes do not separate) and
/// the rest, starting at that space.
fn word(s: &str) -> Option<(&str, &str)> {
    let mut in_quotes = false;
    for (i, ch) in s.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ' ' if !in_quotes => return (i > 0).then(|| (&s[..i], &s[i..])),
            _ => {}
        }
    }
    None
}

/// Splits at `sep` outside double quotes (quote_ident doubles embedded quotes, which keeps the
/// toggling right).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        if ch == '"' {
            in_quotes = !in_quotes;
        } else if ch == sep && !in_quotes {
            out.push(&s[start..i]);
            start = i + ch.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(missing: &[&str], unexpected: &[&str]) -> (Vec<String>, Vec<String>, Vec<Warning>) {
        let missing: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
        let unexpected: Vec<String> = unexpected.iter().map(|s| s.to_string()).collect();
        let mut m: Vec<&String> = missing.iter().collect();
        let mut u: Vec<&String> = unexpected.iter().collect();
        let w = schema(&mut m, &mut u);
        (
            m.into_iter().cloned().collect(),
            u.into_iter().cloned().collect(),
            w,
        )
    }

    #[test]
    fn database_properties_left_behind_warn_but_one_the_restore_gained_fails() {
        /// (missing left, unexpected left, warnings) of one call.
        fn run_db(missing: &[&str], unexpected: &[&str]) -> (usize, usize, Vec<Warning>) {
            let (m, u): (Vec<String>, Vec<String>) = (
                missing.iter().map(|s| s.to_string()).collect(),
                unexpected.iter().map(|s| s.to_string()).collect(),
            );
            let mut mm: Vec<&String> = m.iter().collect();
            let mut uu: Vec<&String> = u.iter().collect();
            let w = database_properties(&mut mm, &mut uu);
            (mm.len(), uu.len(), w)
        }
        let lost = [
            "database acl: owner=CONNECT,CREATE,TEMPORARY",
            "database acl: public=TEMPORARY",
            "database owner=shop",
            "database setting: search_path=app, public",
        ];
        let (m, u, w) = run_db(&lost, &["database owner=postgres"]);
        assert_eq!((m, u), (0, 0));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, WarningKind::DatabaseProperties);
        assert!(
            w[0].reason.contains("setting: search_path=app, public"),
            "{}",
            w[0].reason
        );
        assert!(w[0].reason.contains("owner=shop"), "{}", w[0].reason);

        // A setting the restored database has and the source had not (or had otherwise).
        for after in ["database setting: search_path=other", "database comment: x"] {
            let (m, u, w) = run_db(&lost[3..], &[after]);
            assert!(w.is_empty(), "{after}");
            assert_eq!((m, u), (1, 1), "{after}");
        }
        // Another owner alone: createdb's doing too (the owner role, say, made by the restore).
        let (_, _, w) = run_db(&["database owner=shop"], &["database owner=x"]);
        assert_eq!(
            w.len(),
            1,
            "the owner alone is a property createdb left behind"
        );
        let (_, u, w) = run_db(&[], &["database owner=x"]);
        assert!(w.is_empty());
        assert_eq!(u, 1, "an owner line after alone stays a difference");
    }

    #[test]
    fn a_reordered_inheritance_child_is_a_warning() {
        let (m, u, w) = run(
            &[r#"column_order public."Child, x" inherits=true: id,"a,b",note"#],
            &[r#"column_order public."Child, x" inherits=true: id,note,"a,b""#],
        );
        assert!(m.is_empty() && u.is_empty());
        assert_eq!(w[0].kind, WarningKind::ColumnOrder);
        assert_eq!(w[0].object, r#"public."Child, x""#);
    }

    #[test]
    fn a_reordered_table_that_inherits_nothing_or_lost_a_column_fails() {
        let (m, u, w) = run(
            &["column_order public.t inherits=false: a,b"],
            &["column_order public.t inherits=false: b,a"],
        );
        assert!(w.is_empty());
        assert_eq!((m.len(), u.len()), (1, 1));
        let (_, _, w) = run(
            &["column_order public.c inherits=true: a,b,c"],
            &["column_order public.c inherits=true: b,a"],
        );
        assert!(w.is_empty());
    }

    #[test]
    fn a_renamed_partition_clone_is_a_warning_but_a_changed_definition_fails() {
        let before =
            "constraint public.p1 p1_fk type=f clone=true: FOREIGN KEY (a) REFERENCES public.t(id)";
        let renamed = "constraint public.p1 p_a_fkey type=f clone=true: FOREIGN KEY (a) REFERENCES public.t(id)";
        let (m, u, w) = run(&[before], &[renamed]);
        assert!(m.is_empty() && u.is_empty());
        assert_eq!(w[0].kind, WarningKind::PartitionConstraintName);
        assert_eq!(w[0].object, "public.p1 p1_fk → p_a_fkey");

        let changed = "constraint public.p1 p_a_fkey type=f clone=true: FOREIGN KEY (a) REFERENCES public.t(id) ON DELETE CASCADE";
        let (m, u, w) = run(&[before], &[changed]);
        assert!(w.is_empty());
        assert_eq!((m.len(), u.len()), (1, 1));

        let not_clone = "constraint public.p1 p1_fk type=f clone=false: FOREIGN KEY (a) REFERENCES public.t(id)";
        let not_clone_renamed =
            "constraint public.p1 x type=f clone=false: FOREIGN KEY (a) REFERENCES public.t(id)";
        let (_, _, w) = run(&[not_clone], &[not_clone_renamed]);
        assert!(w.is_empty());
    }

    #[test]
    fn objects_put_in_the_default_tablespace_warn_once_per_tablespace_but_a_move_fails() {
        let missing: Vec<String> = [
            r#"tablespace relation public."a b": "My TS""#,
            "tablespace index public.t_i: \"My TS\"",
            "tablespace relation public.moved: fast",
            "relation public.gone kind=r",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let unexpected = ["tablespace relation public.moved: slow".to_string()];
        let mut m: Vec<&String> = missing.iter().collect();
        let u: Vec<&String> = unexpected.iter().collect();
        let w = no_tablespaces(&mut m, &u);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].kind, WarningKind::NoTablespaces);
        assert_eq!(w[0].object, "tablespace \"My TS\"");
        assert!(
            w[0].reason.contains("2 object(s)") && w[0].reason.contains(r#"public."a b""#),
            "{}",
            w[0].reason
        );
        assert_eq!(
            m,
            [
                "tablespace relation public.moved: fast",
                "relation public.gone kind=r"
            ]
        );
    }

    #[test]
    fn words_respect_quotes() {
        assert_eq!(word(r#""a b".c rest"#), Some((r#""a b".c"#, " rest")));
        assert_eq!(word("nospace"), None);
        assert_eq!(
            split_outside_quotes(r#"a,"b,c",d"#, ','),
            ["a", r#""b,c""#, "d"]
        );
    }
}
