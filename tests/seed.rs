//! Seeding a real PostgreSQL: roles, schema, binary COPY, sequences, determinism across
//! databases. Each test gets its own disposable server and creates databases on it.

use pgdrill::seed::{create_roles, load_schema, seed, SeedError, SeedSpec, SeedStats};
use tokio_postgres::Client;

use crate::support::TestServer;

/// A database of its own on the test's server (which goes away with the test).
struct TestDb {
    client: Client,
}

impl TestDb {
    async fn create(server: &TestServer, tag: &str) -> TestDb {
        let name = server.create_db(&format!("pgdrill_seed_{tag}")).await;
        TestDb {
            client: server.connect(&name).await,
        }
    }
}

async fn seeded(server: &TestServer, tag: &str, spec: &SeedSpec) -> (TestDb, SeedStats) {
    let db = TestDb::create(server, tag).await;
    create_roles(&db.client).await.expect("create_roles");
    load_schema(&db.client).await.expect("load_schema");
    let stats = seed(&db.client, spec, &pgdrill::progress::Progress::none())
        .await
        .expect("seed");
    (db, stats)
}

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// Column 3 (full_name) of every tuple of a binary COPY stream of `users`.
fn full_names_in_copy_stream(stream: &[u8]) -> Vec<String> {
    let mut at = 19; // header
    let mut names = Vec::new();
    let next = |n: usize, at: &mut usize| {
        let s = &stream[*at..*at + n];
        *at += n;
        s
    };
    while i16::from_be_bytes(next(2, &mut at).try_into().unwrap()) != -1 {
        for field in 0..7 {
            let len = i32::from_be_bytes(next(4, &mut at).try_into().unwrap());
            let value = next(len.max(0) as usize, &mut at);
            if field == 2 {
                names.push(String::from_utf8(value.to_vec()).unwrap());
            }
        }
    }
    names
}

/// Every constraint and index of schema public, as definitions (OIDs excluded).
async fn key_definitions(c: &Client) -> String {
    c.query_one(
        "SELECT string_agg(d, E'\\n' ORDER BY d) FROM (
           SELECT format('%s %s %s valid=%s', conrelid::regclass, conname, pg_get_constraintdef(oid), convalidated) AS d
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace
           UNION ALL
           SELECT pg_get_indexdef(indexrelid) FROM pg_index
           WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)) s",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

const TABLES: [&str; 4] = ["plans", "users", "subscriptions", "payments"];

async fn fingerprints(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for t in TABLES {
        let sql =
            format!("SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') FROM {t} t");
        out.push(c.query_one(&sql, &[]).await.unwrap().get::<_, String>(0));
    }
    out
}

#[tokio::test]
async fn seed_loads_counted_valid_rows_and_is_identical_across_databases() {
    let server = TestServer::start("seed").await;
    let spec = SeedSpec {
        rows: 2000,
        seed: 42,
    };
    let (a, stats) = seeded(&server, "a", &spec).await;
    let c = &a.client;

    // Row counts are what seed reported, and the same as the pure encoder's.
    assert_eq!(
        stats.plans,
        count(c, "SELECT count(*) FROM plans").await as u64
    );
    assert_eq!(
        stats.users,
        count(c, "SELECT count(*) FROM users").await as u64
    );
    assert_eq!(
        stats.subscriptions,
        count(c, "SELECT count(*) FROM subscriptions").await as u64
    );
    assert_eq!(
        stats.payments,
        count(c, "SELECT count(*) FROM payments").await as u64
    );
    assert_eq!(stats.users, 2000);
    assert_eq!(stats, pgdrill::seed::encode_all(&spec).stats);

    // seed re-created every key, index and foreign key exactly as the schema declares them.
    let fresh = TestDb::create(&server, "fresh").await;
    create_roles(&fresh.client).await.unwrap();
    load_schema(&fresh.client).await.unwrap();
    let declared = key_definitions(&fresh.client).await;
    assert!(
        declared.contains("FOREIGN KEY (subscription_id) REFERENCES subscriptions(id)"),
        "{declared}"
    );
    assert_eq!(key_definitions(c).await, declared);

    // The constraints held during COPY (PostgreSQL enforced them); check the rules it cannot.
    let zero_checks = [
        "SELECT count(*) FROM payments p JOIN subscriptions s ON s.id = p.subscription_id WHERE p.period_start < s.started_at",
        "SELECT count(*) FROM payments p JOIN subscriptions s ON s.id = p.subscription_id JOIN plans pl ON pl.id = s.plan_id WHERE p.amount_cents <> pl.price_cents",
        "SELECT count(*) FROM subscriptions s JOIN users u ON u.id = s.user_id WHERE s.started_at < u.created_at",
        "SELECT count(*) FROM (SELECT lower(email::text) FROM users GROUP BY 1 HAVING count(*) > 1) d",
        "SELECT count(*) FROM users u JOIN subscriptions s ON s.user_id = u.id WHERE u.deleted_at IS NOT NULL AND s.status <> 'cancelled'",
        "SELECT count(*) FROM (SELECT DISTINCT ON (p.subscription_id) p.subscription_id, p.status FROM payments p \
         JOIN subscriptions s ON s.id = p.subscription_id WHERE s.status = 'past_due' \
         ORDER BY p.subscription_id, p.paid_at DESC, p.id DESC) last WHERE status <> 'failed'",
        "SELECT count(*) FROM payments WHERE paid_at > '2026-01-01T00:00:00Z' OR refunded_at > '2026-01-01T00:00:00Z'",
    ];
    for sql in zero_checks {
        assert_eq!(count(c, sql).await, 0, "{sql}");
    }
    // Unicode survived the round trip byte for byte: the names read back are the encoded ones.
    let encoded_names = full_names_in_copy_stream(&pgdrill::seed::encode_all(&spec).users);
    let stored_names: Vec<String> = c
        .query("SELECT full_name FROM users ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored_names, encoded_names);
    assert!(
        count(
            c,
            "SELECT count(*) FROM users WHERE full_name ~ '[^\\x01-\\x7f]'"
        )
        .await
            > 400
    );
    assert!(
        count(
            c,
            "SELECT count(*) FROM plans WHERE vat_rate = 0.2000 AND billing_interval = '1 month'"
        )
        .await
            == 3
    );

    // Sequences were moved past the loaded ids: the application's next insert does not collide.
    let next_user: i64 = c
        .query_one("INSERT INTO users (email, full_name, country, created_at) VALUES ('new@example.com', 'New', 'DE', now()) RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next_user, 2001);
    let next_sub: i64 = c
        .query_one("INSERT INTO subscriptions (user_id, plan_id, status, started_at, current_period_end, updated_at) \
                    VALUES (2001, 1, 'trialing', now(), now() + interval '14 days', now()) RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next_sub as u64, stats.subscriptions + 1);
    let next_pay: i64 = c
        .query_one("INSERT INTO payments (subscription_id, amount_cents, currency, status, period_start, paid_at, provider_ref) \
                    VALUES ($1, 490, 'EUR', 'pending', now(), now(), 'pi_test') RETURNING id", &[&next_sub])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next_pay as u64, stats.payments + 1);
    // citext: uniqueness holds case-insensitively, so an upper-cased duplicate is rejected.
    let dup = c
        .execute("INSERT INTO users (email, full_name, country, created_at) SELECT upper(email::text), 'x', 'DE', now() FROM users LIMIT 1", &[])
        .await;
    assert!(dup.is_err(), "citext unique index accepted a case variant");
    // ANALYZE ran: the planner knows the tables' sizes.
    assert!(
        count(
            c,
            "SELECT reltuples::bigint FROM pg_class WHERE relname = 'payments'"
        )
        .await
            > 0
    );

    // The same spec in another database gives the same table contents.
    c.batch_execute("DELETE FROM payments WHERE provider_ref = 'pi_test'; \
                     DELETE FROM subscriptions WHERE user_id = 2001; DELETE FROM users WHERE id = 2001")
        .await
        .unwrap();
    let (b, stats_b) = seeded(&server, "b", &spec).await;
    assert_eq!(stats, stats_b);
    assert_eq!(fingerprints(&a.client).await, fingerprints(&b.client).await);

    // And another seed does not.
    let (other, _) = seeded(
        &server,
        "c",
        &SeedSpec {
            rows: 2000,
            seed: 43,
        },
    )
    .await;
    let (fa, fo) = (
        fingerprints(&a.client).await,
        fingerprints(&other.client).await,
    );
    assert_eq!(fa[0], fo[0], "plans are fixed");
    assert_ne!(fa[1], fo[1]);
    assert_ne!(fa[3], fo[3]);
}

#[tokio::test]
async fn seeding_twice_fails_cleanly_and_leaves_the_first_load() {
    let server = TestServer::start("seed").await;
    let spec = SeedSpec { rows: 50, seed: 1 };
    let (db, stats) = seeded(&server, "twice", &spec).await;
    let err = seed(&db.client, &spec, &pgdrill::progress::Progress::none())
        .await
        .expect_err("second seed into loaded tables");
    assert!(
        matches!(err, SeedError::NotEmpty { table: "plans" }),
        "{err:?}"
    );
    assert!(err.to_string().contains("freshly loaded"), "{err}");
    // Rolled back: the first load is intact and the connection is usable.
    assert_eq!(
        count(&db.client, "SELECT count(*) FROM users").await as u64,
        stats.users
    );
}

#[tokio::test]
async fn loading_the_schema_twice_reports_a_schema_error() {
    let server = TestServer::start("seed").await;
    let db = TestDb::create(&server, "schema2").await;
    create_roles(&db.client).await.expect("create_roles");
    create_roles(&db.client)
        .await
        .expect("create_roles is idempotent");
    load_schema(&db.client).await.expect("load_schema");
    let err = load_schema(&db.client)
        .await
        .expect_err("objects already exist");
    assert!(matches!(err, SeedError::Schema { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(err.to_string().contains("empty database"), "{err}");
}
