//! Unit tests of the comparison: pairing, classification and verdicts on built snapshots.

use super::super::{SchemaSnapshot, TableSnapshot, FORMAT};
use super::*;

fn snapshot() -> Snapshot {
    Snapshot {
        format: FORMAT,
        database: "src".into(),
        server_version: "150000".into(),
        tables: vec![
            TableSnapshot {
                kind: Default::default(),
                name: "public.plans".into(),
                rows: 3,
                fingerprint: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                query: None,
            },
            TableSnapshot {
                kind: Default::default(),
                name: "public.users".into(),
                rows: 2000,
                fingerprint: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
                query: None,
            },
        ],
        sequences: vec![SequenceSnapshot {
            name: "public.users_id_seq".into(),
            last_value: 2000,
            is_called: true,
            increment: 1,
            owned_by: Some("public.users.id".into()),
            column_max: Some(2000),
            column_min: Some(1),
        }],
        schema: SchemaSnapshot {
            fingerprint: "f1".into(),
            objects: vec![
                "acl relation public.users: a=r/o".into(),
                "relation public.users".into(),
            ],
        },
        checks: vec![
            CheckValue {
                name: "fk_orphans:public.payments.subscription_id".into(),
                value: "0".into(),
                expected: Some("0".into()),
            },
            CheckValue {
                name: "invariant:mrr_cents".into(),
                value: "12300".into(),
                expected: None,
            },
        ],
        not_compared: Vec::new(),
    }
}

#[test]
fn equal_snapshots_pass_with_the_report_shape() {
    let s = snapshot();
    let c = compare(&s, &s.clone());
    assert_eq!(c.verdict, Verdict::Pass);
    assert!(c.differences().is_empty());
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["tables"][1]["name"], "public.users");
    assert_eq!(json["tables"][1]["rows_before"], 2000);
    assert_eq!(json["tables"][1]["match"], true);
    assert_eq!(
        json["sequences"][0]["before"],
        "last_value=2000 is_called=true"
    );
    assert_eq!(json["schema"]["match"], true);
    assert_eq!(json["checks"][0]["expected"], "0");
    assert_eq!(json["checks"][1]["expected"], "12300");
    assert_eq!(json["checks"][1]["pass"], true);
    let back: Comparison = serde_json::from_value(json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn every_kind_of_difference_fails_and_is_named() {
    let before = snapshot();
    let mut after = before.clone();
    after.tables[1].rows = 1995;
    after.tables[0].fingerprint = "cccccccccccccccccccccccccccccccc".into();
    after.sequences[0].last_value = 1500;
    after.schema.fingerprint = "f2".into();
    after.schema.objects[0] = "acl relation public.users: b=r/o".into();
    after.checks[0].value = "3".into();
    after.checks[1].value = "12000".into();
    let c = compare(&before, &after);
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.differences(),
        vec![
            "public.plans: fingerprint aaaaaaaaaaaa… → cccccccccccc… (same row count, different content)",
            "public.users: rows 2000 → 1995",
            "sequence public.users_id_seq: last_value=2000 is_called=true → last_value=1500 is_called=true, behind the source (would hand out values the backed-up rows use)",
            "schema: missing after: acl relation public.users: a=r/o",
            "schema: unexpected after: acl relation public.users: b=r/o",
            "check fk_orphans:public.payments.subscription_id: expected 0, got 3",
            "check invariant:mrr_cents: expected 12300, got 12000",
        ]
    );
}

#[test]
fn a_table_on_one_side_only_fails_with_null_on_the_other() {
    let before = snapshot();
    let mut after = before.clone();
    let users = after.tables.pop().unwrap();
    after.tables.push(TableSnapshot {
        kind: Default::default(),
        name: "public.zzz".into(),
        ..users
    });
    let c = compare(&before, &after);
    assert_eq!(c.verdict, Verdict::Fail);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["tables"][1]["rows_after"], serde_json::Value::Null);
    assert_eq!(json["tables"][1]["match"], false);
    assert_eq!(json["tables"][2]["rows_before"], serde_json::Value::Null);
    assert_eq!(
        c.differences(),
        vec![
            "public.users: table missing after (rows before 2000)",
            "public.zzz: table not in the source (rows after 2000)",
        ]
    );
}

#[test]
fn a_sequence_ahead_of_the_source_matches_one_behind_does_not() {
    let before = snapshot();
    let mut after = before.clone();
    after.sequences[0].last_value = 2100;
    assert_eq!(compare(&before, &after).verdict, Verdict::Pass);
    // Behind S0's own value but past every backed-up row: a source taking writes while
    // pg_dump read the sequence earlier than S0 did.
    after.sequences[0].last_value = 2000;
    after.sequences[0].is_called = true;
    let mut ahead_of_rows = before.clone();
    ahead_of_rows.sequences[0].last_value = 2500;
    assert_eq!(compare(&ahead_of_rows, &after).verdict, Verdict::Pass);
    after.sequences[0].last_value = 2000;
    after.sequences[0].is_called = false;
    assert_eq!(compare(&before, &after).verdict, Verdict::Fail);
}

#[test]
fn a_lost_tablespace_warns_only_when_the_restore_dropped_tablespaces() {
    let mut before = snapshot();
    before
        .schema
        .objects
        .push("tablespace relation public.users: fast".into());
    let after = snapshot();
    let c = compare(&before, &after);
    assert_eq!(
        c.verdict,
        Verdict::Fail,
        "without --no-tablespaces it is a loss"
    );
    assert_eq!(
        c.differences(),
        ["schema: missing after: tablespace relation public.users: fast"]
    );
    let told = CompareOptions {
        no_tablespaces: true,
    };
    let c = compare_with(&before, &after, told);
    assert_eq!(c.verdict, Verdict::Pass, "{:?}", c.differences());
    assert_eq!(c.warnings[0].kind, super::super::WarningKind::NoTablespaces);
    let mut moved = snapshot();
    moved
        .schema
        .objects
        .push("tablespace relation public.users: slow".into());
    let c = compare_with(&before, &moved, told);
    assert_eq!(
        c.verdict,
        Verdict::Fail,
        "another tablespace is not the default"
    );
    assert!(c.warnings.is_empty());
    let mut strict = compare_with(&before, &after, told);
    strict.enforce_strict_schema();
    assert_eq!(strict.verdict, Verdict::Fail);
}

#[test]
fn a_refreshed_view_warns_but_one_changed_after_the_restore_fails() {
    let view = |rows: u64, fp: &str, query: Option<(u64, &str)>| TableSnapshot {
        kind: RelationKind::MaterializedView,
        name: "public.totals".into(),
        rows,
        fingerprint: fp.into(),
        query: query.map(|(rows, f)| super::super::QueryDigest {
            rows,
            fingerprint: f.into(),
        }),
    };
    let mut before = snapshot();
    // Stale in the source: its query already gave other rows.
    before.tables.push(view(2, "old", Some((3, "fresh"))));
    let mut after = snapshot();
    after.tables.push(view(3, "fresh", Some((3, "fresh"))));
    let c = compare(&before, &after);
    assert_eq!(c.verdict, Verdict::Pass, "{:?}", c.differences());
    assert_eq!(
        c.warnings[0].kind,
        super::super::WarningKind::StaleMaterializedView
    );
    let mut tampered = snapshot();
    tampered
        .tables
        .push(view(3, "tampered", Some((3, "fresh"))));
    let c = compare(&before, &tampered);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.warnings.is_empty());
    assert!(
        c.differences()[0].contains("public.totals: materialized view")
            && c.differences()[0].contains("changed after the restore"),
        "{:?}",
        c.differences()
    );
}

#[test]
fn a_complete_partitioned_index_left_unmarked_warns_an_incomplete_one_fails() {
    let before = snapshot();
    let with = |value: &str| {
        let mut s = snapshot();
        s.checks.push(CheckValue {
            name: "index_valid:public.p_pkey".into(),
            value: value.into(),
            expected: Some("valid".into()),
        });
        s
    };
    let unmarked = with(&format!(
        "invalid unique partitioned index, {} (2, e.g. public.p1_pkey)",
        super::super::checks::ATTACHED_AND_VALID
    ));
    let c = compare(&before, &unmarked);
    assert_eq!(c.verdict, Verdict::Pass, "{:?}", c.differences());
    assert_eq!(
        c.warnings[0].kind,
        super::super::WarningKind::PartitionedIndexUnmarked
    );
    assert!(
        c.warnings[0]
            .reason
            .contains("ALTER INDEX public.p_pkey ATTACH PARTITION public.p1_pkey"),
        "{}",
        c.warnings[0].reason
    );
    let incomplete =
        with("invalid unique partitioned index, 1 of 2 partitions without a valid index attached");
    assert_eq!(compare(&before, &incomplete).verdict, Verdict::Fail);
}

#[test]
fn a_check_missing_after_fails() {
    let before = snapshot();
    let mut after = before.clone();
    after.checks.remove(0);
    let c = compare(&before, &after);
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.differences(),
        vec!["check fk_orphans:public.payments.subscription_id: expected 0, got nothing (check absent after)"]
    );
}

#[test]
fn different_snapshot_formats_never_match() {
    let before = snapshot();
    let mut after = before.clone();
    after.format = FORMAT + 1;
    let c = compare(&before, &after);
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(c.checks[0].name, "snapshot_format");
}

#[test]
fn self_consistency_judges_absolute_checks_only() {
    let mut s = snapshot();
    let c = self_consistency(&s);
    assert_eq!(c.verdict, Verdict::Pass);
    assert_eq!(
        c.checks.len(),
        1,
        "the invariant has nothing to compare with"
    );
    assert_eq!(c.tables[0].matches, None);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["tables"][0]["rows_before"], serde_json::Value::Null);
    assert_eq!(json["tables"][0]["match"], serde_json::Value::Null);
    s.checks[0].value = "2".into();
    let c = self_consistency(&s);
    assert_eq!(c.verdict, Verdict::Fail);
    assert_eq!(
        c.differences(),
        vec!["check fk_orphans:public.payments.subscription_id: expected 0, got 2"]
    );
}
