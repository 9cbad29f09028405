//! A source whose tables and indexes live in a tablespace, drilled into a new server that has
//! no such tablespace (server loss): the preflight finds it, the restore runs with
//! `pg_restore --no-tablespaces` and says so, and the comparison names the transformation
//! instead of failing. The plain restore that pgdrill did before is shown to fail.

use std::process::Command;

use crate::support::{Pgdrill, TestServer};

/// A directory for `CREATE TABLESPACE`: empty and owned by the server's user.
fn tablespace_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgdrill-test-tablespace-")
        .tempdir()
        .unwrap();
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "chown postgres {}", dir.path().display());
    dir
}

#[test]
fn a_tablespace_the_new_server_lacks_is_restored_without_it_and_said_so() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Declared before the server, so dropped after it: the server stops first.
    let location = tablespace_dir();
    let server = rt.block_on(TestServer::start("tablespace"));
    let db = rt.block_on(async {
        let admin = server.connect("postgres").await;
        admin
            .batch_execute(&format!(
                "CREATE TABLESPACE \"Fast Disk\" LOCATION '{}'",
                location.path().display()
            ))
            .await
            .unwrap();
        let db = server.create_db("tablespace").await;
        server
            .connect(&db)
            .await
            .batch_execute(
                r#"CREATE TABLE readings (id int PRIMARY KEY, at timestamptz NOT NULL, value float8)
                       TABLESPACE "Fast Disk";
                   CREATE INDEX readings_at ON readings (at) TABLESPACE "Fast Disk";
                   CREATE TABLE plain (id int PRIMARY KEY);
                   INSERT INTO readings SELECT g, '2026-01-01'::timestamptz + g * interval '1 min', g / 7.0
                   FROM generate_series(1, 500) g;
                   INSERT INTO plain SELECT generate_series(1, 10);"#,
            )
            .await
            .unwrap();
        db
    });
    let dsn = format!("{} dbname={db}", server.dsn());
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--app",
        "none",
        "--disaster",
        "server-loss",
        "--source-dsn",
        &dsn,
    ])
    .run();
    let r = run.assert_pass();
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("\\\"Fast Disk\\\"") && notes.contains("--no-tablespaces"),
        "{notes}"
    );
    let roles = run.phase("roles")["detail"].as_str().unwrap().to_string();
    assert!(roles.contains("\"Fast Disk\""), "{roles}");
    let restore = run.phase("pg_restore")["detail"].as_str().unwrap();
    assert!(restore.contains("--no-tablespaces"), "{restore}");
    let warnings = r["integrity"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["kind"], "no_tablespaces");
    assert_eq!(warnings[0]["object"], "tablespace \"Fast Disk\"");
    let reason = warnings[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 object(s)")
            && reason.contains("public.readings")
            && reason.contains("public.readings_at"),
        "{reason}"
    );
    assert!(run.text().contains("no_tablespaces"), "{}", run.text());

    // What pgdrill did before: the same dump, restored plainly into a new server, fails.
    let dump = run.dump();
    let new_server = rt.block_on(TestServer::start("tablespace-plain"));
    let target = rt.block_on(new_server.create_db("plain"));
    let out = new_server
        .client("pg_restore")
        .args(["--exit-on-error", "-d", &target])
        .arg(&dump)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a plain restore passed: {stderr}");
    assert!(
        stderr.contains("default_tablespace") && stderr.contains("Fast Disk"),
        "{stderr}"
    );
    drop(new_server);
    drop(server);
}
