//! Named metrics: FK orphans for every foreign key, sequence positions, invalid indexes, and
//! the domain invariants of the generated schema (only where its tables exist).

use tokio_postgres::Client;

use super::{CheckValue, SequenceSnapshot, SnapshotError, USER_SCHEMA};

/// Value of a passing `sequence_ahead:` check.
pub(super) const AHEAD: &str = "ahead";

/// Prefix of the check an invalid index gets (a valid one gets none: they are many).
pub(super) const INDEX_VALID: &str = "index_valid:";

/// All checks of a snapshot, unsorted.
pub(super) async fn take(client: &Client) -> Result<Vec<CheckValue>, SnapshotError> {
    let mut checks = fk_orphans(client).await?;
    checks.extend(invalid_indexes(client).await?);
    checks.extend(invariants(client).await?);
    Ok(checks)
}

/// `index_valid:<index>` = `invalid` (or `invalid unique`) for every index left invalid, e.g.
/// by a `CREATE INDEX CONCURRENTLY` that failed on a duplicate key. Its expected value is
/// `valid`, so an index that is invalid only after the restore fails the comparison, and one
/// the source already had is a source finding (see `compare`).
async fn invalid_indexes(client: &Client) -> Result<Vec<CheckValue>, SnapshotError> {
    // For a partitioned index: how many of the table's partitions have a valid index attached
    // to it, which tells an index merely left unmarked (all attached) from an incomplete one.
    let sql = format!(
        "SELECT i.indexrelid::regclass::text, i.indisunique, ic.relkind = 'I',
                (SELECT count(*) FROM pg_inherits p WHERE p.inhparent = i.indrelid),
                (SELECT count(*) FROM pg_inherits p JOIN pg_index ci ON ci.indexrelid = p.inhrelid
                 WHERE p.inhparent = i.indexrelid AND ci.indisvalid),
                (SELECT min(p.inhrelid::regclass::text COLLATE \"C\") FROM pg_inherits p
                 WHERE p.inhparent = i.indexrelid)
         FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = ic.relnamespace
         WHERE NOT i.indisvalid AND {USER_SCHEMA}"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(SnapshotError::query("listing invalid indexes"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let unique = if r.get::<_, bool>(1) { " unique" } else { "" };
            let partitions: i64 = r.get(3);
            let attached: i64 = r.get(4);
            let first: Option<String> = r.get(5);
            let value = match (r.get::<_, bool>(2), first) {
                (true, Some(first)) if attached == partitions => format!(
                    "invalid{unique} partitioned index, {ATTACHED_AND_VALID} ({partitions}, e.g. {first})"
                ),
                (true, _) => format!(
                    "invalid{unique} partitioned index, {} of {partitions} partitions without a valid index attached",
                    partitions - attached
                ),
                (false, _) => format!("invalid{unique}"),
            };
            CheckValue {
                name: format!("{INDEX_VALID}{}", r.get::<_, String>(0)),
                value,
                expected: Some("valid".to_string()),
            }
        })
        .collect())
}

/// In an `index_valid:` value: a partitioned index whose every partition has a valid index
/// attached, only not marked valid itself.
pub(super) const ATTACHED_AND_VALID: &str = "every partition's index attached and valid";

/// `sequence_ahead:<seq>`: the next value of a column-owned sequence is past every value in
/// the column, so the application's next INSERT cannot collide with a restored row.
pub(super) fn sequence_ahead(sequence: &SequenceSnapshot) -> CheckValue {
    let next = sequence.next_value();
    let (ahead, extreme, word) = if sequence.increment > 0 {
        let max = sequence.column_max;
        (max.is_none_or(|m| next > i128::from(m)), max, "max")
    } else {
        let min = sequence.column_min;
        (min.is_none_or(|m| next < i128::from(m)), min, "min")
    };
    let value = if ahead {
        AHEAD.to_string()
    } else {
        format!(
            "behind: next value {next}, {word}({}) = {}",
            sequence.owned_by.as_deref().unwrap_or("?"),
            extreme.map_or_else(|| "null".to_string(), |v| v.to_string())
        )
    };
    CheckValue {
        name: format!("sequence_ahead:{}", sequence.name),
        value,
        expected: Some(AHEAD.to_string()),
    }
}

struct ForeignKey {
    name: String,
    table: String,
    table_kind: String,
    referenced: String,
    referenced_kind: String,
    match_full: bool,
    validated: bool,
    columns: Vec<String>,
    columns_quoted: Vec<String>,
    referenced_quoted: Vec<String>,
    operators: Vec<String>,
}

impl ForeignKey {
    /// Rows whose key is not null and has no referenced row: what the constraint forbids.
    fn orphan_query(&self) -> String {
        // RI checks read ONLY the tables of a plain inheritance tree, but a partitioned table
        // with all of its partitions.
        let only = |kind: &str| if kind == "p" { "" } else { "ONLY " };
        let not_null = self
            .columns_quoted
            .iter()
            .map(|c| format!("c.{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        // The constraint's own equality operators, schema-qualified: a bare `=` could resolve
        // to a different operator (citext compared as text would be case-sensitive).
        let matches = self
            .referenced_quoted
            .iter()
            .zip(&self.columns_quoted)
            .zip(&self.operators)
            .map(|((pk, fk), op)| format!("p.{pk} {op} c.{fk}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut sql = format!(
            "SELECT count(*) FROM {}{} AS c WHERE ({not_null} AND NOT EXISTS (SELECT 1 FROM {}{} AS p WHERE {matches}))",
            only(&self.table_kind),
            self.table,
            only(&self.referenced_kind),
            self.referenced,
        );
        if self.match_full && self.columns_quoted.len() > 1 {
            // MATCH FULL also forbids keys that are only partly null.
            let cols = self
                .columns_quoted
                .iter()
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            sql.push_str(&format!(
                " OR (num_nulls({cols}) > 0 AND num_nonnulls({cols}) > 0)"
            ));
        }
        sql
    }
}

/// One check per foreign key in the catalog. A validated key guarantees no orphans, so its
/// check is absolute (0); a NOT VALID key guarantees nothing about old rows, so its count must
/// only be unchanged by the restore.
async fn fk_orphans(client: &Client) -> Result<Vec<CheckValue>, SnapshotError> {
    // conparentid = 0: the per-partition clones of a key on a partitioned table are checked
    // through the parent's key.
    let sql = format!(
        "SELECT c.conname::text, c.conrelid::regclass::text, fr.relkind::text,
                c.confrelid::regclass::text, pr.relkind::text, c.confmatchtype = 'f', c.convalidated,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord),
                ARRAY(SELECT format('OPERATOR(%I.%s)', opn.nspname, o.oprname)
                      FROM unnest(c.conpfeqop) WITH ORDINALITY AS e(op, ord)
                      JOIN pg_operator o ON o.oid = e.op
                      JOIN pg_namespace opn ON opn.oid = o.oprnamespace ORDER BY e.ord)
         FROM pg_constraint c
         JOIN pg_class fr ON fr.oid = c.conrelid
         JOIN pg_namespace n ON n.oid = fr.relnamespace
         JOIN pg_class pr ON pr.oid = c.confrelid
         WHERE c.contype = 'f' AND c.conparentid = 0 AND {USER_SCHEMA}"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(SnapshotError::query("listing foreign keys"))?;
    let keys: Vec<ForeignKey> = rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            table: r.get(1),
            table_kind: r.get(2),
            referenced: r.get(3),
            referenced_kind: r.get(4),
            match_full: r.get(5),
            validated: r.get(6),
            columns: r.get(7),
            columns_quoted: r.get(8),
            referenced_quoted: r.get(9),
            operators: r.get(10),
        })
        .collect();

    let base_name = |k: &ForeignKey| format!("fk_orphans:{}.{}", k.table, k.columns.join(","));
    let mut checks = Vec::with_capacity(keys.len());
    for key in &keys {
        let mut name = base_name(key);
        // Two keys on the same columns (to different tables) need the constraint name apart.
        if keys.iter().filter(|k| base_name(k) == name).count() > 1 {
            name = format!("{name}@{}", key.name);
        }
        let orphans: i64 = client
            .query_one(&key.orphan_query(), &[])
            .await
            .map_err(SnapshotError::query(format!(
                "counting orphans of foreign key {} on {}",
                key.name, key.table
            )))?
            .get(0);
        checks.push(CheckValue {
            name,
            value: orphans.to_string(),
            expected: key.validated.then(|| "0".to_string()),
        });
    }
    Ok(checks)
}

/// Whether `table` exists with all of `columns`.
async fn has_columns(
    client: &Client,
    table: &str,
    columns: &[&str],
) -> Result<bool, SnapshotError> {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attname = ANY($2) AND attnum > 0 AND NOT attisdropped",
            &[&table, &columns],
        )
        .await
        .map_err(SnapshotError::query(format!("looking up {table}")))?
        .get(0);
    Ok(found == columns.len() as i64)
}

/// Business invariants of the generated schema (fixtures/schema.sql), each measured only when
/// the columns it reads exist, so any other database gets the generic checks alone.
async fn invariants(client: &Client) -> Result<Vec<CheckValue>, SnapshotError> {
    let mut checks = Vec::new();
    let equal = |name: String, value: String| CheckValue {
        name,
        value,
        expected: None,
    };

    if has_columns(client, "public.payments", &["status", "amount_cents"]).await? {
        let rows = client
            .query(
                "SELECT coalesce(status::text, 'null'), count(*), coalesce(sum(amount_cents)::text, 'null')
                 FROM public.payments GROUP BY 1",
                &[],
            )
            .await
            .map_err(SnapshotError::query("summing payments by status"))?;
        for row in rows {
            let status: String = row.get(0);
            let count: i64 = row.get(1);
            checks.push(equal(
                format!("invariant:payments.count[status={status}]"),
                count.to_string(),
            ));
            checks.push(equal(
                format!("invariant:payments.sum_amount_cents[status={status}]"),
                row.get(2),
            ));
        }
    }

    if has_columns(client, "public.subscriptions", &["status"]).await? {
        let rows = client
            .query(
                "SELECT coalesce(status::text, 'null'), count(*) FROM public.subscriptions GROUP BY 1",
                &[],
            )
            .await
            .map_err(SnapshotError::query("counting subscriptions by status"))?;
        for row in rows {
            let status: String = row.get(0);
            let count: i64 = row.get(1);
            checks.push(equal(
                format!("invariant:subscriptions.count[status={status}]"),
                count.to_string(),
            ));
        }
    }

    if has_columns(client, "public.users", &["deleted_at"]).await? {
        let deleted: i64 = client
            .query_one(
                "SELECT count(*) FROM public.users WHERE deleted_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(SnapshotError::query("counting deleted users"))?
            .get(0);
        checks.push(equal(
            "invariant:users.deleted".to_string(),
            deleted.to_string(),
        ));
    }

    if has_columns(client, "public.users", &["email"]).await? {
        // Absolute: the unique index is on citext, i.e. lower(email); two addresses that
        // differ only in case would mean the index was not enforced.
        let duplicates: i64 = client
            .query_one(
                "SELECT count(email) - count(DISTINCT lower(email::text)) FROM public.users",
                &[],
            )
            .await
            .map_err(SnapshotError::query("counting duplicate emails"))?
            .get(0);
        checks.push(CheckValue {
            name: "invariant:users.email_duplicates".to_string(),
            value: duplicates.to_string(),
            expected: Some("0".to_string()),
        });
    }

    if has_columns(client, "public.subscriptions", &["status", "plan_id"]).await?
        && has_columns(client, "public.plans", &["id", "price_cents"]).await?
    {
        // Live as the mrr_by_plan view defines it; status compared as text so that a database
        // whose status column lacks these labels still runs the query.
        let mrr: String = client
            .query_one(
                "SELECT coalesce(sum(p.price_cents), 0)::text
                 FROM public.subscriptions s JOIN public.plans p ON p.id = s.plan_id
                 WHERE s.status::text IN ('active', 'past_due')",
                &[],
            )
            .await
            .map_err(SnapshotError::query("summing monthly recurring revenue"))?
            .get(0);
        checks.push(equal("invariant:mrr_cents".to_string(), mrr));
    }

    // Large objects live outside every table, so no table fingerprint would notice them gone.
    let large_objects: i64 = client
        .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .await
        .map_err(SnapshotError::query("counting large objects"))?
        .get(0);
    checks.push(equal(
        "invariant:large_objects.count".to_string(),
        large_objects.to_string(),
    ));
    if large_objects > 0 {
        // By content, per OID (pg_dump keeps OIDs), in OID order so the physical order of
        // pg_largeobject pages does not count. lo_get needs only SELECT on each object.
        let content: String = client
            .query_one(
                "SELECT md5(string_agg(m.oid::text || ':' || md5(lo_get(m.oid)), ',' ORDER BY m.oid))
                 FROM pg_largeobject_metadata m",
                &[],
            )
            .await
            .map_err(SnapshotError::query("fingerprinting large objects"))?
            .get(0);
        checks.push(equal(
            "invariant:large_objects.content_md5".to_string(),
            content,
        ));
    }

    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(
        last_value: i64,
        is_called: bool,
        increment: i64,
        max: Option<i64>,
        min: Option<i64>,
    ) -> SequenceSnapshot {
        SequenceSnapshot {
            name: "public.users_id_seq".into(),
            last_value,
            is_called,
            increment,
            owned_by: Some("public.users.id".into()),
            column_max: max,
            column_min: min,
        }
    }

    #[test]
    fn sequence_ahead_compares_the_next_value_with_the_column() {
        assert_eq!(
            sequence_ahead(&sequence(2000, true, 1, Some(2000), Some(1))).value,
            AHEAD
        );
        assert_eq!(
            sequence_ahead(&sequence(2001, false, 1, Some(2000), Some(1))).value,
            AHEAD
        );
        assert_eq!(
            sequence_ahead(&sequence(1, false, 1, None, None)).value,
            AHEAD
        );
        let behind = sequence_ahead(&sequence(2000, false, 1, Some(2000), Some(1)));
        assert_eq!(
            behind.value,
            "behind: next value 2000, max(public.users.id) = 2000"
        );
        assert_eq!(behind.name, "sequence_ahead:public.users_id_seq");
        assert_eq!(behind.expected.as_deref(), Some(AHEAD));
    }

    #[test]
    fn descending_sequences_must_be_below_the_column_min() {
        assert_eq!(
            sequence_ahead(&sequence(-10, true, -1, Some(-1), Some(-10))).value,
            AHEAD
        );
        assert_ne!(
            sequence_ahead(&sequence(-9, true, -1, Some(-1), Some(-10))).value,
            AHEAD
        );
    }

    #[test]
    fn orphan_query_uses_the_constraint_operators_and_only() {
        let key = ForeignKey {
            name: "payments_subscription_id_fkey".into(),
            table: "public.payments".into(),
            table_kind: "r".into(),
            referenced: "public.subscriptions".into(),
            referenced_kind: "p".into(),
            match_full: false,
            validated: true,
            columns: vec!["subscription_id".into()],
            columns_quoted: vec!["subscription_id".into()],
            referenced_quoted: vec!["id".into()],
            operators: vec!["OPERATOR(pg_catalog.=)".into()],
        };
        assert_eq!(
            key.orphan_query(),
            "SELECT count(*) FROM ONLY public.payments AS c WHERE (c.subscription_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM public.subscriptions AS p WHERE p.id OPERATOR(pg_catalog.=) c.subscription_id))"
        );
    }
}
