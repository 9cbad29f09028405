//! `--source-dsn`: a live database the project did not create is backed up read-only and
//! left exactly as it was.

use pgdrill::env::native::NativeBackend;

use crate::support::Pgdrill;

const SHOP: &str = r#"
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, tags text[]);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers(id),
    total numeric(10,2) NOT NULL CHECK (total >= 0),
    placed_at timestamptz NOT NULL DEFAULT '2026-01-01T00:00:00Z'
);
INSERT INTO customers SELECT g, 'customer ' || g, ARRAY['t' || (g % 3)] FROM generate_series(1, 50) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 50, g * 1.25 FROM generate_series(1, 400) g;
"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn source_dsn_is_backed_up_read_only_and_left_unchanged() {
    let rt = runtime();
    let backend = NativeBackend::discover("test-source-dsn").unwrap();
    let server = rt.block_on(backend.provision("external")).unwrap();
    let admin = server.endpoint.clone();
    let shop = admin.with_db("shop");
    let before = rt.block_on(async {
        let c = admin.connect().await.unwrap();
        c.batch_execute("CREATE DATABASE shop").await.unwrap();
        let c = shop.connect().await.unwrap();
        c.batch_execute(SHOP).await.unwrap();
        pgdrill::snapshot::take(&c).await.unwrap()
    });
    let dsn = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/shop",
        admin.password().unwrap(),
        admin.port
    );
    let run = Pgdrill::drill(["--backend", "native", "--source-dsn", &dsn]).run();
    let r = run.assert_pass();
    assert_eq!(r["source"]["kind"], "dsn");
    assert_eq!(r["source"]["database"], "shop");
    let password = admin.password().unwrap().to_string();
    assert!(r["source"]["dsn"].as_str().unwrap().contains("***"));
    let report_text = std::fs::read_to_string(run.out.path().join("report.json")).unwrap()
        + &std::fs::read_to_string(run.out.path().join("report.md")).unwrap()
        + &std::fs::read_to_string(run.dump().with_extension("manifest.json")).unwrap();
    assert!(
        !report_text.contains(&password),
        "the password leaked into the report"
    );
    assert!(
        !run.text().contains(&password),
        "the password leaked into the output"
    );
    let tables = run.integrity_tables();
    assert_eq!(tables, ["public.customers", "public.orders"]);
    // Checklist items about the generated schema's tables do not apply here, and say so.
    assert_eq!(r["checklist"][2]["status"], "skipped");

    let after = rt.block_on(async {
        let c = shop.connect().await.unwrap();
        pgdrill::snapshot::take(&c).await.unwrap()
    });
    assert_eq!(before, after, "the source database changed");
    rt.block_on(server.destroy()).unwrap();
}

#[test]
fn wrong_password_is_refused_before_provisioning_without_showing_it() {
    let rt = runtime();
    let backend = NativeBackend::discover("test-wrong-pw").unwrap();
    let server = rt.block_on(backend.provision("external")).unwrap();
    let dsn = format!(
        "postgresql://postgres:not-the-password@127.0.0.1:{}/postgres",
        server.endpoint.port
    );
    // Checked before anything is provisioned: a usage error naming the DSN, no report.
    let run = Pgdrill::drill(["--backend", "native", "--source-dsn", &dsn]).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(run.report.is_none(), "{}", run.text());
    let msg = run.text();
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(
        msg.contains("--source-dsn postgresql://postgres:***@127.0.0.1:"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password"));
    rt.block_on(server.destroy()).unwrap();
}
