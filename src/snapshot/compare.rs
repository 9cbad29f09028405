//! Comparing snapshots into the report's integrity section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::classify::{self, Warning};
use super::{CheckValue, NotCompared, RelationKind, SequenceSnapshot, Snapshot};

/// Outcome of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing differs and every absolute check holds.
    Pass,
    /// At least one table, sequence, schema object or check differs or fails.
    Fail,
}

/// The report's `integrity` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// `fail` as soon as anything below does not match or pass.
    pub verdict: Verdict,
    /// Every table of either side, sorted by name.
    pub tables: Vec<TableComparison>,
    /// Every sequence of either side, sorted by name.
    pub sequences: Vec<SequenceComparison>,
    /// Schema fingerprints and the descriptors that differ.
    pub schema: SchemaComparison,
    /// Every check of either side, sorted by name.
    pub checks: Vec<CheckResult>,
    /// Differences that do not fail the drill, each named and explained: known pg_dump
    /// transformations, problems the source already had, refreshed materialized views.
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Relations whose rows were not compared, and why.
    #[serde(default)]
    pub not_compared: Vec<NotCompared>,
}

/// One table before and after; `None` where the table is absent or there was no "before".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableComparison {
    /// Qualified table name.
    pub name: String,
    /// Table, partition or materialized view.
    #[serde(default)]
    pub kind: RelationKind,
    /// Rows in the source snapshot.
    pub rows_before: Option<u64>,
    /// Rows in the restored snapshot.
    pub rows_after: Option<u64>,
    /// Content fingerprint in the source snapshot.
    pub fingerprint_before: Option<String>,
    /// Content fingerprint in the restored snapshot.
    pub fingerprint_after: Option<String>,
    /// Rows and fingerprint equal on both sides; `None` when nothing was compared.
    #[serde(rename = "match")]
    pub matches: Option<bool>,
    /// For a materialized view: its restored rows equal what its own query gives on the
    /// restored data, i.e. what the restore's REFRESH stored. `false` means it was changed
    /// after the restore, and its mismatch fails even though the view is refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed: Option<bool>,
}

/// One sequence before and after, as `last_value=… is_called=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceComparison {
    /// Qualified sequence name.
    pub name: String,
    /// State in the source snapshot.
    pub before: Option<String>,
    /// State in the restored snapshot.
    pub after: Option<String>,
    /// The restored sequence is not behind the source; `None` when nothing was compared.
    #[serde(rename = "match")]
    pub matches: Option<bool>,
}

/// Schema fingerprints before and after, and the descriptors on one side only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaComparison {
    /// sha256 of the source's descriptors.
    pub before: Option<String>,
    /// sha256 of the restored database's descriptors.
    pub after: Option<String>,
    /// Same descriptors on both sides; `None` when nothing was compared.
    #[serde(rename = "match")]
    pub matches: Option<bool>,
    /// `missing after: …` / `unexpected after: …`, in descriptor order.
    pub differences: Vec<String>,
}

/// One check: what it had to be and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check name, e.g. `fk_orphans:public.payments.subscription_id`.
    pub name: String,
    /// The absolute expectation, or the value before for an invariant.
    pub expected: Option<String>,
    /// The value after; `None` when the check is absent after.
    pub actual: Option<String>,
    /// `actual` equals `expected`.
    pub pass: bool,
}

/// What the restore was told to change, so that the comparison can tell it from a loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompareOptions {
    /// The restore ran with `pg_restore --no-tablespaces`: an object missing its tablespace
    /// after (in the default one) is a `no_tablespaces` warning, not a difference. An object in
    /// another tablespace than before is still a difference.
    pub no_tablespaces: bool,
}

/// Compares the source snapshot S0 with the restored snapshot S1, for a restore that changed
/// nothing on purpose (see [`compare_with`]).
pub fn compare(before: &Snapshot, after: &Snapshot) -> Comparison {
    compare_with(before, after, CompareOptions::default())
}

/// Compares the source snapshot S0 with the restored snapshot S1.
///
/// Tables must have equal rows and fingerprints; the schema equal descriptors; invariants
/// equal values; absolute checks (FK orphans, sequences ahead) their expected value after.
/// A sequence matches when the restored one is not behind the source: sequences are not
/// transactional, so on a source taking writes pg_dump may read them later than S0 did.
pub fn compare_with(before: &Snapshot, after: &Snapshot, options: CompareOptions) -> Comparison {
    let mut warnings = Vec::new();
    let tables: Vec<TableComparison> = merge(&before.tables, &after.tables, |t| &t.name)
        .into_iter()
        .map(|(name, b, a)| TableComparison {
            name: name.to_string(),
            kind: b.or(a).map(|t| t.kind).unwrap_or_default(),
            rows_before: b.map(|t| t.rows),
            rows_after: a.map(|t| t.rows),
            fingerprint_before: b.map(|t| t.fingerprint.clone()),
            fingerprint_after: a.map(|t| t.fingerprint.clone()),
            matches: Some(matches!((b, a), (Some(b), Some(a)) if same_rows(b, a))),
            refreshed: a.and_then(|a| {
                a.query
                    .as_ref()
                    .map(|q| (q.rows, &q.fingerprint) == (a.rows, &a.fingerprint))
            }),
        })
        .collect();
    for t in &tables {
        if t.matches == Some(false) && t.is_refreshed_view() {
            warnings.push(classify::stale_materialized_view(&t.name));
        }
    }

    let sequences = merge(&before.sequences, &after.sequences, |s| &s.name)
        .into_iter()
        .map(|(name, b, a)| SequenceComparison {
            name: name.to_string(),
            before: b.map(SequenceSnapshot::state),
            after: a.map(SequenceSnapshot::state),
            matches: Some(matches!((b, a), (Some(b), Some(a)) if not_behind(b, a))),
        })
        .collect();

    let (mut missing, mut unexpected) =
        schema_differences(&before.schema.objects, &after.schema.objects);
    warnings.extend(classify::schema(&mut missing, &mut unexpected));
    warnings.extend(classify::database_properties(&mut missing, &mut unexpected));
    if options.no_tablespaces {
        warnings.extend(classify::no_tablespaces(&mut missing, &unexpected));
    }
    // In descriptor order across both sides, as the multiset difference produced them.
    let mut differences: Vec<(&String, &str)> = missing
        .iter()
        .map(|d| (*d, "missing after"))
        .chain(unexpected.iter().map(|d| (*d, "unexpected after")))
        .collect();
    differences.sort_by(|a, b| a.0.cmp(b.0));
    let differences: Vec<String> = differences
        .into_iter()
        .map(|(d, side)| format!("{side}: {d}"))
        .collect();
    let schema = SchemaComparison {
        before: Some(before.schema.fingerprint.clone()),
        after: Some(after.schema.fingerprint.clone()),
        matches: Some(differences.is_empty()),
        differences,
    };

    let mut checks: Vec<CheckResult> = merge(&before.checks, &after.checks, |c| &c.name)
        .into_iter()
        .map(|(name, b, a)| check_result(name, b, a, &mut warnings))
        .collect();
    if before.format != after.format {
        checks.insert(
            0,
            CheckResult {
                name: "snapshot_format".to_string(),
                expected: Some(before.format.to_string()),
                actual: Some(after.format.to_string()),
                pass: false,
            },
        );
    }

    let mut c = Comparison::with_verdict(tables, sequences, schema, checks);
    c.warnings = warnings;
    c.not_compared = after.not_compared.clone();
    c
}

/// Judges a restored database on its own, when there is no source snapshot (a backup file
/// without a manifest).
///
/// Only absolute checks can fail it (FK orphans 0, sequences ahead, no duplicate emails);
/// tables, sequences and the schema are listed with their after values and `match: null`,
/// and invariants are left out, because nothing says what they should be. It proves the
/// restored data is consistent, not that it is complete.
pub fn self_consistency(after: &Snapshot) -> Comparison {
    let tables = after
        .tables
        .iter()
        .map(|t| TableComparison {
            name: t.name.clone(),
            kind: t.kind,
            rows_before: None,
            rows_after: Some(t.rows),
            fingerprint_before: None,
            fingerprint_after: Some(t.fingerprint.clone()),
            matches: None,
            refreshed: None,
        })
        .collect();
    let sequences = after
        .sequences
        .iter()
        .map(|s| SequenceComparison {
            name: s.name.clone(),
            before: None,
            after: Some(s.state()),
            matches: None,
        })
        .collect();
    let schema = SchemaComparison {
        before: None,
        after: Some(after.schema.fingerprint.clone()),
        matches: None,
        differences: Vec::new(),
    };
    let checks = after
        .checks
        .iter()
        .filter_map(|c| {
            let expected = c.expected.clone()?;
            Some(CheckResult {
                name: c.name.clone(),
                pass: c.value == expected,
                expected: Some(expected),
                actual: Some(c.value.clone()),
            })
        })
        .collect();
    let mut c = Comparison::with_verdict(tables, sequences, schema, checks);
    c.not_compared = after.not_compared.clone();
    c
}

/// Compares against an S0 of an older snapshot format (a backup taken by an earlier pgdrill):
/// fingerprints and schema descriptors are not comparable across formats, row counts are.
/// The restored data's own checks apply as in [`self_consistency`]; a table with rows in S0
/// that is missing or has another count after the restore fails.
pub fn compare_across_formats(before: &Snapshot, after: &Snapshot) -> Comparison {
    let base = self_consistency(after);
    let mut tables = base.tables;
    for t in &mut tables {
        if let Some(b) = before.tables.iter().find(|b| b.name == t.name) {
            t.rows_before = Some(b.rows);
            t.matches = Some(t.rows_after == Some(b.rows));
        }
    }
    for b in &before.tables {
        if !tables.iter().any(|t| t.name == b.name) {
            tables.push(TableComparison {
                name: b.name.clone(),
                kind: b.kind,
                rows_before: Some(b.rows),
                rows_after: None,
                fingerprint_before: Some(b.fingerprint.clone()),
                fingerprint_after: None,
                matches: Some(false),
                refreshed: None,
            });
        }
    }
    let mut c = Comparison::with_verdict(tables, base.sequences, base.schema, base.checks);
    c.not_compared = base.not_compared;
    c
}

impl Comparison {
    /// `--strict-schema`: known pg_dump transformations become schema differences that fail.
    pub fn enforce_strict_schema(&mut self) {
        let (strict, kept): (Vec<Warning>, Vec<Warning>) = std::mem::take(&mut self.warnings)
            .into_iter()
            .partition(|w| w.kind.is_schema_transformation());
        self.warnings = kept;
        if strict.is_empty() {
            return;
        }
        self.schema.differences.extend(strict.iter().map(|w| {
            format!(
                "known pg_dump transformation, failing under --strict-schema: {}",
                w.line()
            )
        }));
        self.schema.matches = Some(false);
        self.verdict = Verdict::Fail;
    }

    fn with_verdict(
        tables: Vec<TableComparison>,
        sequences: Vec<SequenceComparison>,
        schema: SchemaComparison,
        checks: Vec<CheckResult>,
    ) -> Comparison {
        // A materialized view is refreshed at restore, not copied: its mismatch is a warning.
        let failed = tables
            .iter()
            .any(|t| t.matches == Some(false) && !t.is_refreshed_view())
            || sequences.iter().any(|s| s.matches == Some(false))
            || schema.matches == Some(false)
            || checks.iter().any(|c| !c.pass);
        Comparison {
            verdict: if failed { Verdict::Fail } else { Verdict::Pass },
            tables,
            sequences,
            schema,
            checks,
            warnings: Vec::new(),
            not_compared: Vec::new(),
        }
    }

    /// One human line per difference, naming the table, sequence or check and the metric.
    pub fn differences(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for t in self
            .tables
            .iter()
            .filter(|t| t.matches == Some(false) && !t.is_refreshed_view())
        {
            let line = match (t.rows_before, t.rows_after) {
                (Some(b), None) => format!("{}: table missing after (rows before {b})", t.name),
                (None, Some(a)) => format!("{}: table not in the source (rows after {a})", t.name),
                _ if t.refreshed == Some(false) => format!(
                    "{}: materialized view rows {} → {}, fingerprint {} → {}, and not what its own query gives on the restored data (which the restore's REFRESH stored): changed after the restore",
                    t.name,
                    t.rows_before.unwrap_or_default(),
                    t.rows_after.unwrap_or_default(),
                    short(t.fingerprint_before.as_deref()),
                    short(t.fingerprint_after.as_deref())
                ),
                (Some(b), Some(a)) if b != a => format!("{}: rows {b} → {a}", t.name),
                _ => format!(
                    "{}: fingerprint {} → {} (same row count, different content)",
                    t.name,
                    short(t.fingerprint_before.as_deref()),
                    short(t.fingerprint_after.as_deref())
                ),
            };
            lines.push(line);
        }
        for s in self.sequences.iter().filter(|s| s.matches == Some(false)) {
            let line = match (&s.before, &s.after) {
                (Some(b), None) => format!("sequence {}: missing after (before {b})", s.name),
                (None, Some(a)) => format!("sequence {}: not in the source (after {a})", s.name),
                (b, a) => format!(
                    "sequence {}: {} → {}, behind the source (would hand out values the backed-up rows use)",
                    s.name,
                    b.as_deref().unwrap_or("null"),
                    a.as_deref().unwrap_or("null")
                ),
            };
            lines.push(line);
        }
        if self.schema.matches == Some(false) {
            if self.schema.differences.is_empty() {
                lines.push(format!(
                    "schema: fingerprint {} → {}",
                    short(self.schema.before.as_deref()),
                    short(self.schema.after.as_deref())
                ));
            }
            lines.extend(
                self.schema
                    .differences
                    .iter()
                    .map(|d| format!("schema: {d}")),
            );
        }
        for c in self.checks.iter().filter(|c| !c.pass) {
            lines.push(format!(
                "check {}: expected {}, got {}",
                c.name,
                c.expected
                    .as_deref()
                    .unwrap_or("nothing (check absent before)"),
                c.actual
                    .as_deref()
                    .unwrap_or("nothing (check absent after)")
            ));
        }
        lines
    }
}

/// The restored sequence hands out no value the backed-up rows already use.
///
/// For a sequence owned by a column that is the whole requirement, measured against the
/// column's max in S0 (exactly the rows in the dump). Comparing with S0's own sequence value
/// would be noise: sequences are not transactional, so with writes going on pg_dump and S0 read
/// them at different moments. A sequence owned by nothing has only its value to go by.
fn not_behind(before: &SequenceSnapshot, after: &SequenceSnapshot) -> bool {
    if before.increment != after.increment {
        return false;
    }
    let ascending = before.increment > 0;
    if before.owned_by.is_some() {
        let ahead_of_column =
            |s: &SequenceSnapshot| match (ascending, before.column_max, before.column_min) {
                (true, Some(max), _) => s.next_value() > i128::from(max),
                (false, _, Some(min)) => s.next_value() < i128::from(min),
                _ => true,
            };
        // A source already behind its column is the baseline (a source finding, see
        // check_result): the restore must not be further behind than it.
        if ahead_of_column(before) {
            return ahead_of_column(after);
        }
    }
    if ascending {
        after.next_value() >= before.next_value()
    } else {
        after.next_value() <= before.next_value()
    }
}

/// An absolute check that already failed on the source passes when the restore reproduced the
/// source's value exactly: the source is the baseline, and the problem a source finding.
fn check_result(
    name: &str,
    before: Option<&CheckValue>,
    after: Option<&CheckValue>,
    warnings: &mut Vec<Warning>,
) -> CheckResult {
    // pg_dump leaves out an invalid index (except on a partitioned table): absent after is
    // what a faithful restore of it gives.
    if let (Some(b), None) = (before, after) {
        if name.starts_with(super::checks::INDEX_VALID) {
            warnings.push(classify::invalid_index_left_out(name, &b.value));
            return CheckResult {
                name: name.to_string(),
                expected: Some("absent (pg_dump leaves invalid indexes out)".to_string()),
                actual: None,
                pass: true,
            };
        }
    }
    // A partitioned index valid in the source, complete but unmarked after a parallel restore.
    if let (None, Some(a)) = (before, after) {
        if name.starts_with(super::checks::INDEX_VALID)
            && a.value.contains(super::checks::ATTACHED_AND_VALID)
        {
            warnings.push(classify::partitioned_index_unmarked(name, &a.value));
            return CheckResult {
                name: name.to_string(),
                expected: Some("valid".to_string()),
                actual: Some(a.value.clone()),
                pass: true,
            };
        }
    }
    let absolute = after
        .and_then(|c| c.expected.clone())
        .or_else(|| before.and_then(|c| c.expected.clone()));
    if let (Some(abs), Some(b), Some(a)) = (&absolute, before, after) {
        if b.value != *abs && a.value == b.value {
            warnings.push(classify::source_finding(name, &b.value, abs));
            return CheckResult {
                name: name.to_string(),
                expected: Some(b.value.clone()),
                actual: Some(a.value.clone()),
                pass: true,
            };
        }
    }
    let expected = absolute.or_else(|| before.map(|c| c.value.clone()));
    let actual = after.map(|c| c.value.clone());
    CheckResult {
        name: name.to_string(),
        pass: expected.is_some() && expected == actual,
        expected,
        actual,
    }
}

impl TableComparison {
    /// A materialized view present on both sides whose restored rows are what its query
    /// gives (or, in a snapshot without the query's digest, any): rebuilt by REFRESH, so a
    /// mismatch warns.
    fn is_refreshed_view(&self) -> bool {
        self.kind == RelationKind::MaterializedView
            && self.rows_before.is_some()
            && self.rows_after.is_some()
            && self.refreshed != Some(false)
    }
}

/// Same rows: count and fingerprint (the query digest of a view is not part of its data).
fn same_rows(before: &super::TableSnapshot, after: &super::TableSnapshot) -> bool {
    (before.rows, &before.fingerprint) == (after.rows, &after.fingerprint)
}

/// Pairs items of both sides by key, in key order.
fn merge<'a, T>(
    before: &'a [T],
    after: &'a [T],
    key: impl Fn(&T) -> &String,
) -> Vec<(&'a str, Option<&'a T>, Option<&'a T>)> {
    let mut pairs: BTreeMap<&'a str, (Option<&'a T>, Option<&'a T>)> = BTreeMap::new();
    for item in before {
        pairs.entry(key(item).as_str()).or_default().0 = Some(item);
    }
    for item in after {
        pairs.entry(key(item).as_str()).or_default().1 = Some(item);
    }
    pairs.into_iter().map(|(k, (b, a))| (k, b, a)).collect()
}

/// Descriptors on one side only (missing after, unexpected after), as a multiset difference
/// in descriptor order.
fn schema_differences<'a>(
    before: &'a [String],
    after: &'a [String],
) -> (Vec<&'a String>, Vec<&'a String>) {
    let mut before: Vec<&String> = before.iter().collect();
    let mut after: Vec<&String> = after.iter().collect();
    before.sort();
    after.sort();
    let (mut i, mut j) = (0, 0);
    let (mut missing, mut unexpected) = (Vec::new(), Vec::new());
    loop {
        match (before.get(i), after.get(j)) {
            (None, None) => break,
            (Some(b), Some(a)) if b == a => {
                i += 1;
                j += 1;
            }
            (Some(b), a) if a.is_none_or(|a| b < a) => {
                missing.push(*b);
                i += 1;
            }
            (_, Some(a)) => {
                unexpected.push(*a);
                j += 1;
            }
            (Some(_), None) => unreachable!("handled by the arm above"),
        }
    }
    (missing, unexpected)
}

/// The first 12 hex digits of a fingerprint, enough to tell two apart in a message.
fn short(fingerprint: Option<&str>) -> String {
    match fingerprint {
        None => "null".to_string(),
        Some(f) if f.len() > 12 => format!("{}…", &f[..12]),
        Some(f) => f.to_string(),
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
