//! What makes a restore fast, checked as behaviour (the times themselves are measured by
//! `benches/compare.sh`, never asserted here): archives pg_restore -j can seek in, the
//! precheck beside a lost server's replacement, ANALYZE on several sessions.

use std::path::Path;

use crate::support::{runtime, Pgdrill, TestServer};

/// Where each TABLE DATA entry's data starts, as pg_restore reads it from the table of
/// contents of a custom-format archive (pg_backup_archiver.c ReadHead/ReadToc, archive
/// versions 1.12 to 1.14: PostgreSQL 11 to 15): `K_OFFSET_POS_SET` (2) when pg_dump could
/// seek back and record it, `K_OFFSET_POS_NOT_SET` (1) when it wrote into a pipe.
fn table_data_offset_flags(archive: &Path) -> Vec<(String, u8)> {
    let bytes = std::fs::read(archive).unwrap();
    let mut r = Archive {
        bytes: &bytes,
        at: 0,
        int_size: 0,
    };
    assert_eq!(
        r.take(5),
        b"PGDMP",
        "{} is no custom archive",
        archive.display()
    );
    let version = r.take(3);
    assert!(
        version[0] == 1 && (12..=14).contains(&version[1]),
        "archive version {version:?}: this reader knows 1.12 to 1.14"
    );
    let (int_size, off_size) = {
        let sizes = r.take(3);
        (sizes[0] as usize, sizes[1] as usize)
    };
    r.int_size = int_size;
    r.int(); // compression
    for _ in 0..7 {
        r.int(); // the creation time
    }
    for _ in 0..3 {
        r.string(); // dbname, server and pg_dump versions
    }
    let mut flags = Vec::new();
    for _ in 0..r.int() {
        r.int(); // dump id
        r.int(); // had dumper
        r.string(); // table oid
        r.string(); // oid
        let tag = r.string().unwrap_or_default();
        let desc = r.string().unwrap_or_default();
        r.int(); // section
        for _ in 0..8 {
            r.string(); // defn, drop, copy, namespace, tablespace, table AM, owner, with oids
        }
        while r.string().is_some() {} // dependencies
        let flag = r.take(1)[0];
        r.take(off_size);
        if desc == "TABLE DATA" {
            flags.push((tag, flag));
        }
    }
    flags
}

/// A reader of pg_dump's archive integers (a sign byte, then little-endian bytes) and
/// strings (a length, -1 for NULL, then the bytes).
struct Archive<'a> {
    bytes: &'a [u8],
    at: usize,
    int_size: usize,
}

impl Archive<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        self.at += n;
        &self.bytes[self.at - n..self.at]
    }

    fn int(&mut self) -> i64 {
        let negative = self.take(1)[0] != 0;
        let n = self.int_size;
        let v = self
            .take(n)
            .iter()
            .rev()
            .fold(0i64, |acc, b| (acc << 8) | i64::from(*b));
        if negative {
            -v
        } else {
            v
        }
    }

    fn string(&mut self) -> Option<String> {
        let len = self.int();
        (len >= 0).then(|| String::from_utf8_lossy(self.take(len as usize)).into_owned())
    }
}

const TABLES: &str =
    "CREATE TABLE a AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g;
                      CREATE TABLE b AS SELECT g AS id FROM generate_series(1, 500) g;
                      CREATE TABLE c (id int PRIMARY KEY);";

/// pgdrill's own backups are written by pg_dump into a file it can seek in, so their table of
/// contents says where every table's data starts (what `pg_restore -j` needs to load tables
/// side by side); the same dump written into a pipe does not, which shows the reader can tell.
#[test]
fn a_backup_records_where_each_table_s_data_starts() {
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db("speed-offsets", "offsets", TABLES));
    let repo = tempfile::tempdir().unwrap();
    let r = Pgdrill::new([
        "backup",
        "--source-dsn",
        &format!("{} dbname={db}", server.dsn()),
        "--repo",
        repo.path().to_str().unwrap(),
    ])
    .run();
    assert_eq!(r.code(), 0, "{}", r.text());
    let dump = std::fs::read_dir(repo.path().join("database"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "dump"))
        .expect("a dump in the repository");
    let flags = table_data_offset_flags(&dump);
    let tags: Vec<&str> = flags.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, ["a", "b", "c"], "{flags:?}");
    assert!(
        flags.iter().all(|(_, f)| *f == 2),
        "offsets not set: {flags:?}"
    );
    // `pgdrill verify` still agrees with the manifest's checksum, taken after pg_dump's rewrite.
    let v = Pgdrill::new([
        "verify",
        "--repo",
        repo.path().to_str().unwrap(),
        "--no-config",
    ])
    .run();
    assert_eq!(v.code(), 0, "{}", v.text());

    let e = &server.endpoint;
    let piped = std::process::Command::new(server.program("pg_dump"))
        .args([
            "-Fc",
            "-h",
            &e.host,
            "-p",
            &e.port.to_string(),
            "-U",
            &e.user,
            "-d",
            &db,
        ])
        .env("PGPASSWORD", e.password().unwrap_or_default())
        .output()
        .unwrap();
    assert!(piped.status.success());
    let file = repo.path().join("piped.dump");
    std::fs::write(&file, &piped.stdout).unwrap();
    let flags = table_data_offset_flags(&file);
    assert!(
        flags.iter().all(|(_, f)| *f == 1),
        "a pipe cannot seek: {flags:?}"
    );
}

/// In a server loss the precheck reads the backup while the new server is provisioned: the
/// two phases overlap in time, the database_restore budget counts the overlap once, and the
/// report says so; the drill still restores only what passed the precheck.
#[test]
fn the_precheck_runs_beside_the_replacement_server_and_is_counted_once() {
    let run = Pgdrill::native(["--disaster", "server-loss"]).run();
    let r = run.assert_pass();
    let replace = run.phase("replace_server");
    let precheck = run.phase("precheck");
    let (rs, rd) = (
        replace["started_ms"].as_u64().unwrap(),
        replace["duration_ms"].as_u64().unwrap(),
    );
    let ps = precheck["started_ms"].as_u64().unwrap();
    assert!(
        ps < rs + rd.max(1),
        "precheck started at {ps} ms, after replace_server ({rs}+{rd} ms)"
    );
    let phases = r["phases"].as_array().unwrap();
    let sum: u64 = phases
        .iter()
        .filter(|p| p["budget"] == "database_restore" && p["status"] != "skipped")
        .map(|p| p["duration_ms"].as_u64().unwrap())
        .sum();
    let used = r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "database_restore")
        .unwrap()["used_ms"]
        .as_u64()
        .unwrap();
    let overlap = (rs + rd).min(ps + precheck["duration_ms"].as_u64().unwrap()) - ps;
    assert_eq!(
        used,
        sum - overlap,
        "budget {used} ms, phases {sum} ms, overlap {overlap} ms"
    );
    let clock = r["objectives"]["rto_clock"].as_str().unwrap_or_default();
    assert!(
        clock.contains("precheck ran beside replace_server"),
        "{clock}"
    );
    // Restored after the precheck passed, in order.
    let roles = run.phase("roles")["started_ms"].as_u64().unwrap();
    assert!(roles >= ps + precheck["duration_ms"].as_u64().unwrap());
}

/// ANALYZE runs on as many sessions as `--jobs` asks, and every table gets statistics,
/// odd names and partitions included.
#[test]
fn analyze_runs_on_the_jobs_sessions_and_leaves_statistics_everywhere() {
    let run = Pgdrill::native(["--disaster", "drop-db"]).run();
    run.assert_pass();
    let detail = run.phase("analyze")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("2 at a time"), "{detail}");

    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db(
        "speed-analyze",
        "analyze",
        &format!(
            "{TABLES}
             CREATE SCHEMA \"Odd Schema\";
             CREATE TABLE \"Odd Schema\".\"Mixed Case\" AS SELECT g AS id FROM generate_series(1, 100) g;
             CREATE TABLE p (id int) PARTITION BY RANGE (id);
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
             INSERT INTO p SELECT generate_series(0, 999);
             CREATE MATERIALIZED VIEW m AS SELECT count(*) FROM a;"
        ),
    ));
    let never = rt.block_on(async {
        let target = server.endpoint.with_db(&db);
        let detail = pgdrill::restore::analyze(&target, 3).await.unwrap();
        assert!(detail.contains("3 at a time"), "{detail}");
        server
            .connect(&db)
            .await
            .query(
                "SELECT relname::text FROM pg_stat_all_tables
                  WHERE last_analyze IS NULL AND schemaname NOT IN ('pg_toast', 'information_schema')
                    AND relid <> 'pg_statistic'::regclass",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    });
    assert!(never.is_empty(), "relations never analyzed: {never:?}");
}
