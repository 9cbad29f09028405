//! Snapshots and their comparison against real PostgreSQL: each test gets its own disposable
//! server and creates databases on it.

use std::process::Command;

use pgdrill::snapshot::{self, compare, Snapshot, SnapshotError, Verdict};
use tokio_postgres::{Client, NoTls};

use crate::support::TestServer;

const ROLES_SQL: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/roles.sql"));
const SCHEMA_SQL: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/schema.sql"));

async fn connect(dsn: &str, dbname: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(&format!("{dsn} dbname={dbname}"), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {dbname}: {e}"));
    tokio::spawn(connection);
    client
}

/// A fresh, uniquely named database on the test's server (which goes away with the test).
struct TestDb {
    dsn: String,
    name: String,
}

impl TestDb {
    async fn create(server: &TestServer, tag: &str) -> TestDb {
        let name = server.create_db(&format!("snap_{tag}")).await;
        TestDb {
            dsn: server.dsn(),
            name,
        }
    }

    /// A copy of `template` (no session may be connected to it).
    async fn copy_of(server: &TestServer, template: &TestDb, tag: &str) -> TestDb {
        let db = TestDb::create(server, tag).await;
        let admin = server.connect("postgres").await;
        admin
            .batch_execute(&format!("DROP DATABASE {}", db.name))
            .await
            .unwrap();
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                db.name, template.name
            ))
            .await
            .unwrap();
        db
    }

    async fn client(&self) -> Client {
        connect(&self.dsn, &self.name).await
    }

    fn conn_str(&self) -> String {
        format!("{} dbname={}", self.dsn, self.name)
    }
}

/// The fixtures' schema with a few hand-written rows.
async fn generated_db(server: &TestServer, tag: &str, reverse: bool) -> TestDb {
    let db = TestDb::create(server, tag).await;
    let c = db.client().await;
    c.batch_execute(ROLES_SQL).await.unwrap();
    c.batch_execute(SCHEMA_SQL).await.unwrap();
    insert_rows(&c, reverse).await;
    db
}

/// Rows with explicit ids, so two databases can hold the same rows in a different physical
/// order (`reverse`).
async fn insert_rows(c: &Client, reverse: bool) {
    let mut plans = [
        "(1, 'basic', 'Basic', 900, 'EUR', 0.2, '1 month')".to_string(),
        "(2, 'pro', 'Pro', 2900, 'EUR', 0.2, '1 month')".to_string(),
        "(3, 'team', 'Team', 9900, 'USD', 0.0725, '1 year')".to_string(),
    ];
    let mut users = Vec::new();
    let mut subscriptions = Vec::new();
    let mut payments = Vec::new();
    let statuses = ["active", "trialing", "past_due", "cancelled"];
    let pay_statuses = ["succeeded", "failed", "refunded", "pending"];
    for i in 1..=40i64 {
        let deleted = if i % 10 == 0 {
            "'2024-03-01 12:00:00+00'"
        } else {
            "NULL"
        };
        users.push(format!(
            "({i}, 'user{i}@Example.com', 'User ''{i}'' Ünïcode\\tTab\nNewline', 'FR', '2024-01-{:02} 10:00:00.123456+00', {deleted}, '{{\"n\": {i}, \"f\": 1.5e-7}}')",
            (i % 28) + 1
        ));
        let status = statuses[(i % 4) as usize];
        let cancelled = if status == "cancelled" {
            "'2024-04-01 00:00:00+00'"
        } else {
            "NULL"
        };
        subscriptions.push(format!(
            "({i}, {i}, {}, '{status}', '2024-02-01 00:00:00+00', '2024-05-01 00:00:00+00', {cancelled}, NULL, '2024-02-01 00:00:00+00')",
            (i % 3) + 1
        ));
        for k in 0..3i64 {
            let id = i * 3 + k;
            let ps = pay_statuses[(id % 4) as usize];
            let refunded = if ps == "refunded" {
                "'2024-03-05 00:00:00+00'"
            } else {
                "NULL"
            };
            payments.push(format!(
                "({id}, {i}, {}, 'EUR', '{ps}', '2024-02-01 00:00:00+00', '2024-02-0{} 09:30:00+00', {refunded}, 'ref-{id}', '{{\"card\": \"visa\"}}')",
                100 * (k + 1) + i,
                k + 1
            ));
        }
    }
    if reverse {
        plans.reverse();
        users.reverse();
        subscriptions.reverse();
        payments.reverse();
    }
    let sql = format!(
        "INSERT INTO plans VALUES {};
         INSERT INTO users (id, email, full_name, country, created_at, deleted_at, profile) VALUES {};
         INSERT INTO subscriptions (id, user_id, plan_id, status, started_at, current_period_end, cancelled_at, metadata, updated_at) VALUES {};
         INSERT INTO payments VALUES {};
         INSERT INTO worker_heartbeats VALUES ('billing', '2024-05-01 00:00:00+00', 7);
         SELECT setval('users_id_seq', 40), setval('subscriptions_id_seq', 40), setval('payments_id_seq', 122);",
        plans.join(","),
        users.join(","),
        subscriptions.join(","),
        payments.join(",")
    );
    c.batch_execute(&sql).await.unwrap();
}

/// pg_dump -Fc of `source` restored with pg_restore into a new database.
async fn dump_and_restore(server: &TestServer, source: &TestDb, tag: &str) -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.dump");
    let dump = Command::new(server.program("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(&file)
        .arg(format!("--dbname={}", source.conn_str()))
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let target = TestDb::create(server, tag).await;
    let restore = Command::new(server.program("pg_restore"))
        .args(["--exit-on-error", "-d"])
        .arg(target.conn_str())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&restore.stderr)
    );
    target
}

async fn take(db: &TestDb) -> Snapshot {
    snapshot::take(&db.client().await).await.unwrap()
}

fn table<'a>(s: &'a Snapshot, name: &str) -> &'a snapshot::TableSnapshot {
    s.tables
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} not in snapshot"))
}

fn check<'a>(s: &'a Snapshot, name: &str) -> &'a snapshot::CheckValue {
    s.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("check {name} not in snapshot: {:?}", s.checks))
}

#[tokio::test]
async fn a_snapshot_taken_twice_is_equal_and_describes_the_database() {
    let server = TestServer::start("snapshot").await;
    let db = generated_db(&server, "twice", false).await;
    let a = take(&db).await;
    let b = take(&db).await;
    assert_eq!(a, b);
    assert_eq!(compare(&a, &b).verdict, Verdict::Pass);

    let names: Vec<&str> = a.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "public.payments",
            "public.plans",
            "public.subscriptions",
            "public.users",
            "public.worker_heartbeats"
        ]
    );
    assert_eq!(table(&a, "public.users").rows, 40);
    assert_eq!(table(&a, "public.payments").rows, 120);
    assert_eq!(table(&a, "public.users").fingerprint.len(), 32);

    let seqs: Vec<&str> = a.sequences.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        seqs,
        [
            "public.payments_id_seq",
            "public.subscriptions_id_seq",
            "public.users_id_seq"
        ]
    );
    let users_seq = &a.sequences[2];
    assert_eq!(users_seq.owned_by.as_deref(), Some("public.users.id"));
    assert_eq!(users_seq.column_max, Some(40));
    assert_eq!((users_seq.last_value, users_seq.is_called), (40, true));

    assert_eq!(
        check(&a, "fk_orphans:public.payments.subscription_id").value,
        "0"
    );
    assert_eq!(
        check(&a, "fk_orphans:public.subscriptions.user_id").value,
        "0"
    );
    assert_eq!(
        check(&a, "fk_orphans:public.subscriptions.plan_id").value,
        "0"
    );
    assert_eq!(
        check(&a, "sequence_ahead:public.users_id_seq").value,
        "ahead"
    );
    assert_eq!(
        check(&a, "invariant:payments.count[status=succeeded]").value,
        "30"
    );
    assert_eq!(
        check(&a, "invariant:subscriptions.count[status=active]").value,
        "10"
    );
    assert_eq!(check(&a, "invariant:users.deleted").value, "4");
    assert_eq!(check(&a, "invariant:users.email_duplicates").value, "0");
    // Active (i % 4 == 0) and past_due (i % 4 == 2) subscriptions on plan (i % 3) + 1.
    let prices = [900, 2900, 9900];
    let mrr: i64 = (1..=40)
        .filter(|i| i % 4 == 0 || i % 4 == 2)
        .map(|i| prices[(i % 3) as usize])
        .sum();
    assert_eq!(check(&a, "invariant:mrr_cents").value, mrr.to_string());

    let objects = &a.schema.objects;
    let has = |prefix: &str| objects.iter().any(|o| o.starts_with(prefix));
    for expected in [
        "schema public owner=pg_database_owner",
        "acl schema public: pgdrill_owner=UC/pg_database_owner",
        "relation public.users kind=r owner=pgdrill_owner",
        "column public.users email type=public.citext not_null=t",
        "column_order public.users inherits=false: id,email,",
        "column public.payments id type=bigint not_null=t default=nextval('public.payments_id_seq'::regclass)",
        "constraint public.payments payments_refund_has_date type=c clone=false: CHECK",
        "index public.payments_failed_idx on public.payments clustered=f replica_identity=f: CREATE INDEX payments_failed_idx ON public.payments USING btree (paid_at) WHERE (status = 'failed'::public.payment_status)",
        "trigger public.subscriptions subscriptions_touch_updated_at enabled=O: CREATE TRIGGER",
        "definition public.mrr_by_plan:",
        "function public.touch_updated_at() kind=f owner=pgdrill_owner definition_sha256=",
        "type public.subscription_status kind=e owner=pgdrill_owner labels={trialing,active,past_due,cancelled}",
        "extension citext version=",
        "sequence public.users_id_seq type=bigint start=1 increment=1",
        "acl relation public.payments: pgdrill_app=arw/pgdrill_owner",
        "acl relation public.plans: pgdrill_readonly=r/pgdrill_owner",
        "acl sequence public.users_id_seq: pgdrill_app=U/pgdrill_owner",
        "acl function public.touch_updated_at(): =X/pgdrill_owner",
    ] {
        assert!(has(expected), "no descriptor starting {expected:?} in:\n{}", objects.join("\n"));
    }
    assert!(
        !objects
            .iter()
            .any(|o| o.contains("citext(") || o.contains("public.citext_")),
        "extension members must be left out"
    );
    assert!(!objects
        .iter()
        .any(|o| o.contains("pg_catalog.") && o.starts_with("relation")));
    assert_eq!(a.schema.fingerprint.len(), 64);

    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), a);
}

#[tokio::test]
async fn a_pg_dump_restore_compares_equal() {
    let server = TestServer::start("snapshot").await;
    let source = generated_db(&server, "dumpsrc", false).await;
    let restored = dump_and_restore(&server, &source, "dumpdst").await;
    let before = take(&source).await;
    let after = take(&restored).await;
    let c = compare(&before, &after);
    assert_eq!(c.verdict, Verdict::Pass, "{:#?}", c.differences());
    assert!(c.differences().is_empty());
    assert_eq!(before.tables, after.tables);
    assert_eq!(before.schema, after.schema);
}

/// A copy of a generated database with `sql` applied to it, compared with the original.
async fn tampered(tag: &str, sql: &str) -> Vec<String> {
    let server = TestServer::start("snapshot").await;
    let source = generated_db(&server, tag, false).await;
    let copy = TestDb::copy_of(&server, &source, tag).await;
    copy.client().await.batch_execute(sql).await.unwrap();
    let c = compare(&take(&source).await, &take(&copy).await);
    assert_eq!(
        c.verdict,
        Verdict::Fail,
        "tampering with {sql} went unnoticed"
    );
    c.differences()
}

fn assert_names(differences: &[String], expected: &str) {
    assert!(
        differences.iter().any(|d| d.starts_with(expected)),
        "no difference starting {expected:?} in {differences:#?}"
    );
}

#[tokio::test]
async fn a_deleted_row_is_named() {
    let d = tampered("delrow", "DELETE FROM payments WHERE id = 42").await;
    assert_names(&d, "public.payments: rows 120 → 119");
    assert_names(
        &d,
        "check invariant:payments.count[status=refunded]: expected 30, got 29",
    );
}

#[tokio::test]
async fn an_updated_value_is_named() {
    let d = tampered("updval", "UPDATE users SET country = 'DE' WHERE id = 7").await;
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_names(&d, "public.users: fingerprint ");
}

#[tokio::test]
async fn a_changed_grant_is_named() {
    let d = tampered("grant", "REVOKE UPDATE ON payments FROM pgdrill_app").await;
    assert_eq!(
        d,
        [
            "schema: unexpected after: acl relation public.payments: pgdrill_app=ar/pgdrill_owner",
            "schema: missing after: acl relation public.payments: pgdrill_app=arw/pgdrill_owner",
        ]
    );
}

#[tokio::test]
async fn a_dropped_index_is_named() {
    let d = tampered("dropidx", "DROP INDEX payments_failed_idx").await;
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_names(
        &d,
        "schema: missing after: index public.payments_failed_idx on public.payments",
    );
}

#[tokio::test]
async fn a_sequence_set_backwards_is_named() {
    let d = tampered("setval", "SELECT setval('users_id_seq', 30)").await;
    assert_names(
        &d,
        "sequence public.users_id_seq: last_value=40 is_called=true → last_value=30 is_called=true, behind the source",
    );
    assert_names(
        &d,
        "check sequence_ahead:public.users_id_seq: expected ahead, got behind: next value 31, max(public.users.id) = 40",
    );
}

#[tokio::test]
async fn fk_orphans_are_counted() {
    let d = tampered(
        "orphan",
        "ALTER TABLE payments DISABLE TRIGGER ALL; ALTER TABLE subscriptions DISABLE TRIGGER ALL;
         DELETE FROM subscriptions WHERE id = 5;",
    )
    .await;
    assert_names(
        &d,
        "check fk_orphans:public.payments.subscription_id: expected 0, got 3",
    );
    assert_names(&d, "public.subscriptions: rows 40 → 39");
}

#[tokio::test]
async fn the_same_rows_in_another_physical_order_have_the_same_fingerprint() {
    let server = TestServer::start("snapshot").await;
    let forward = generated_db(&server, "fwd", false).await;
    let backward = generated_db(&server, "bwd", true).await;
    let first_id = |db: &TestDb| {
        let (dsn, name) = (db.dsn.clone(), db.name.clone());
        async move {
            let c = connect(&dsn, &name).await;
            c.query_one("SELECT id FROM users LIMIT 1", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_ne!(
        first_id(&forward).await,
        first_id(&backward).await,
        "the test needs the rows stored in a different order"
    );
    let c = compare(&take(&forward).await, &take(&backward).await);
    assert_eq!(c.verdict, Verdict::Pass, "{:#?}", c.differences());
}

#[tokio::test]
async fn a_duplicated_row_changes_the_fingerprint() {
    let server = TestServer::start("snapshot").await;
    let db = TestDb::create(&server, "dup").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('a'), ('b'), ('b')")
        .await
        .unwrap();
    let abb = take(&db).await;
    c.batch_execute("DELETE FROM notes WHERE body = 'b'; INSERT INTO notes VALUES ('c'), ('c')")
        .await
        .unwrap();
    let acc = take(&db).await;
    // Same row count; with xor both would be fingerprinted as the lone 'a'.
    assert_eq!(abb.tables[0].rows, 3);
    assert_eq!(acc.tables[0].rows, 3);
    assert_ne!(abb.tables[0].fingerprint, acc.tables[0].fingerprint);
    c.batch_execute("INSERT INTO notes VALUES ('c')")
        .await
        .unwrap();
    let accc = take(&db).await;
    assert_ne!(acc.tables[0].fingerprint, accc.tables[0].fingerprint);
    let d = compare(&acc, &accc).differences();
    assert_eq!(d, ["public.notes: rows 3 → 4"]);
}

#[tokio::test]
async fn a_read_only_session_works_and_keeps_its_settings() {
    let server = TestServer::start("snapshot").await;
    let db = generated_db(&server, "ro", false).await;
    let expected = take(&db).await;
    let c = db.client().await;
    c.batch_execute("SET default_transaction_read_only = on; SET TimeZone = 'Asia/Tokyo'; SET search_path = public")
        .await
        .unwrap();
    assert_eq!(snapshot::take(&c).await.unwrap(), expected);
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .unwrap();
    assert_eq!(snapshot::take(&c).await.unwrap(), expected);
    // The caller's transaction is usable and its settings are untouched.
    let row = c
        .query_one("SELECT current_setting('TimeZone'), current_setting('search_path'), count(*) FROM users", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Asia/Tokyo");
    assert_eq!(row.get::<_, String>(1), "public");
    c.batch_execute("COMMIT").await.unwrap();
    let tz: String = c.query_one("SHOW TimeZone", &[]).await.unwrap().get(0);
    assert_eq!(tz, "Asia/Tokyo");
}

#[tokio::test]
async fn a_read_committed_transaction_is_refused_and_left_usable() {
    let server = TestServer::start("snapshot").await;
    let db = generated_db(&server, "rc", false).await;
    let c = db.client().await;
    c.batch_execute("BEGIN").await.unwrap();
    let err = snapshot::take(&c).await.unwrap_err();
    assert!(
        matches!(err, SnapshotError::IsolationTooWeak { ref level } if level == "read committed"),
        "{err}"
    );
    assert!(err.to_string().contains("REPEATABLE READ"));
    c.query_one("SELECT 1", &[]).await.unwrap();
    c.batch_execute("ROLLBACK").await.unwrap();

    c.batch_execute("BEGIN; SELECT 1/0").await.unwrap_err();
    let err = snapshot::take(&c).await.unwrap_err();
    assert!(matches!(err, SnapshotError::AbortedTransaction), "{err}");
}

#[tokio::test]
async fn a_snapshot_in_an_exported_mvcc_snapshot_ignores_later_writes() {
    let server = TestServer::start("snapshot").await;
    let db = generated_db(&server, "mvcc", false).await;
    let exporter = db.client().await;
    let id = export_snapshot(&exporter).await;
    let s0_in_exporter = snapshot::take(&exporter).await.unwrap();

    let writer = db.client().await;
    writer
        .batch_execute(
            "INSERT INTO payments (subscription_id, amount_cents, currency, status, period_start, paid_at, provider_ref)
             VALUES (1, 500, 'EUR', 'succeeded', now(), now(), 'late-write')",
        )
        .await
        .unwrap();

    let reader = db.client().await;
    reader
        .batch_execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    join_snapshot(&reader, &id).await;
    let s0_in_reader = snapshot::take(&reader).await.unwrap();
    // Split over the two sessions of one snapshot (tables on one, checks on the other): the
    // same rows and schema, the late write still unseen. (Sequences are not transactional.)
    let split = snapshot::take_split(&exporter, &reader, &pgdrill::progress::Progress::none())
        .await
        .unwrap();
    assert_eq!(split.tables, s0_in_exporter.tables);
    assert_eq!(split.schema, s0_in_exporter.schema);
    assert_eq!(
        check(&split, "fk_orphans:public.payments.subscription_id").value,
        "0"
    );
    // The checks ran on the helper session: they too must not see the late payment.
    let succeeded = "invariant:payments.count[status=succeeded]";
    assert_eq!(
        check(&split, succeeded).value,
        check(&s0_in_exporter, succeeded).value
    );
    reader.batch_execute("COMMIT").await.unwrap();
    exporter.batch_execute("COMMIT").await.unwrap();

    let tables = |s: &Snapshot| s.tables.clone();
    assert_eq!(tables(&s0_in_reader), tables(&s0_in_exporter));
    assert_eq!(s0_in_reader.schema, s0_in_exporter.schema);
    let now = take(&db).await;
    let d = compare(&s0_in_reader, &now).differences();
    assert_names(&d, "public.payments: rows 120 → 121");
    assert_ne!(
        check(&now, succeeded).value,
        check(&split, succeeded).value,
        "a later snapshot counts the late payment"
    );
}

/// Large tables read in `ctid` ranges by two sessions give the fingerprints one session
/// gives reading each whole: odd names, text with tabs and newlines, NULLs, dead rows, HOT
/// updates, an inheritance child, generated columns, and a row written after the snapshot
/// into a page past the last range's start.
#[tokio::test]
async fn tables_read_in_pieces_fingerprint_as_whole_ones() {
    let (server, db) = TestServer::with_db(
        "snapshot",
        "pieces",
        "CREATE SCHEMA \"Odd.Schema\";
         CREATE TABLE \"Odd.Schema\".\"Wide Table\" (id int PRIMARY KEY, t text, n numeric, j jsonb,
             g int GENERATED ALWAYS AS (id * 2) STORED);
         INSERT INTO \"Odd.Schema\".\"Wide Table\" (id, t, n, j)
             SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('x' || chr(9) || chr(10), g % 13) END,
                    g / 3.0, jsonb_build_object('g', g)
             FROM generate_series(1, 20000) g;
         DELETE FROM \"Odd.Schema\".\"Wide Table\" WHERE id % 5 = 0;
         UPDATE \"Odd.Schema\".\"Wide Table\" SET n = n + 1 WHERE id % 11 = 0;
         CREATE TABLE parent (a int, b text);
         CREATE TABLE child (c int) INHERITS (parent);
         INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 3000) g;
         INSERT INTO child SELECT g, 'c' || g, g FROM generate_series(1, 3000) g;
         CREATE TABLE tiny (a int); INSERT INTO tiny VALUES (1);",
    )
    .await;
    let exporter = server.connect(&db).await;
    let id = export_snapshot(&exporter).await;
    let whole = snapshot::take(&exporter).await.unwrap();
    server
        .connect(&db)
        .await
        .batch_execute("INSERT INTO \"Odd.Schema\".\"Wide Table\" (id, t) SELECT g, 'late' FROM generate_series(100001, 103000) g")
        .await
        .unwrap();
    let reader = server.connect(&db).await;
    join_snapshot(&reader, &id).await;
    let none = pgdrill::progress::Progress::none();
    let (split, pieces) = snapshot::take_split_in_pieces(&exporter, &reader, &none, 8)
        .await
        .unwrap();
    assert!(
        pieces >= 10,
        "only {pieces} pieces: the tables were not cut"
    );
    assert_eq!(split.tables, whole.tables);
    let wide = whole
        .tables
        .iter()
        .find(|t| t.name == "\"Odd.Schema\".\"Wide Table\"")
        .unwrap();
    assert_eq!(wide.rows, 16000);
    // With one piece per table (pieces larger than any table) nothing is cut.
    let (_, pieces) = snapshot::take_split_in_pieces(&exporter, &reader, &none, 1 << 30)
        .await
        .unwrap();
    assert_eq!(pieces, 0);
}

#[tokio::test]
async fn any_user_database_gets_the_generic_checks() {
    let server = TestServer::start("snapshot").await;
    let db = TestDb::create(&server, "generic").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE SCHEMA \"Odd Schema\";
         CREATE TABLE \"Odd Schema\".parent (a int, b text, PRIMARY KEY (a, b));
         CREATE TABLE \"Odd Schema\".\"child.table\" (id serial PRIMARY KEY, a int, b text,
             FOREIGN KEY (a, b) REFERENCES \"Odd Schema\".parent MATCH FULL);
         INSERT INTO \"Odd Schema\".parent VALUES (1, 'x');
         INSERT INTO \"Odd Schema\".\"child.table\" (a, b) VALUES (1, 'x'), (NULL, NULL);
         CREATE TABLE measures (t timestamptz, v float8, m money, i interval, d date, bin bytea)
             PARTITION BY RANGE (t);
         CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO measures VALUES ('2024-06-01 12:00+02', 0.1, 12.5, '1 day 2 hours', '2024-06-01', '\\x00ff');",
    )
    .await
    .unwrap();
    let s = take(&db).await;
    let names: Vec<&str> = s.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "\"Odd Schema\".\"child.table\"",
            "\"Odd Schema\".parent",
            "public.measures_2024"
        ]
    );
    let orphans = check(&s, "fk_orphans:\"Odd Schema\".\"child.table\".a,b");
    assert_eq!(
        (orphans.value.as_str(), orphans.expected.as_deref()),
        ("0", Some("0"))
    );
    check(&s, "sequence_ahead:\"Odd Schema\".\"child.table_id_seq\"");
    assert!(!s
        .checks
        .iter()
        .any(|c| c.name.starts_with("invariant:payments")));

    // The text of every type is pinned by take's settings, whatever the session's.
    let other = db.client().await;
    other
        .batch_execute(
            "SET TimeZone = 'America/New_York'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'iso_8601';
             SET extra_float_digits = 0; SET bytea_output = 'escape'",
        )
        .await
        .unwrap();
    assert_eq!(snapshot::take(&other).await.unwrap(), s);

    let restored = dump_and_restore(&server, &db, "genericdst").await;
    let c = compare(&s, &take(&restored).await);
    assert_eq!(c.verdict, Verdict::Pass, "{:#?}", c.differences());
}

#[tokio::test]
async fn a_role_that_cannot_read_everything_gets_an_error_not_a_partial_snapshot() {
    let server = TestServer::start("snapshot").await;
    let db = generated_db(&server, "noread", false).await;
    let c = db.client().await;
    // The application role may use the sequences but not read them.
    c.batch_execute("SET ROLE pgdrill_app").await.unwrap();
    let err = snapshot::take(&c).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, SnapshotError::Query { ref what, .. } if what == "reading sequence public.payments_id_seq"),
        "{message}"
    );
    assert!(
        message.contains("permission denied for sequence payments_id_seq (SQLSTATE 42501)"),
        "{message}"
    );
    assert!(message.contains("pg_read_all_data"), "{message}");
}

/// Opens a read-only repeatable-read transaction on `c` and exports its snapshot, as a backup
/// does for pg_dump and S0.
async fn export_snapshot(c: &tokio_postgres::Client) -> String {
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .unwrap();
    c.query_one("SELECT pg_export_snapshot()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Makes `c` see exactly the exported snapshot `id`, as the second session of S1 does.
async fn join_snapshot(c: &tokio_postgres::Client, id: &str) {
    c.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"
    ))
    .await
    .unwrap();
}
