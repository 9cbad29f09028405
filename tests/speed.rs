//! What makes a restore fast, checked as behaviour (the times themselves are measured by
//! `benches/compare.sh`, never asserted here): archives pg_restore -j can seek in (and a
//! precheck that says when one cannot), the precheck's own reader of data blocks, the
//! precheck beside a lost server's replacement, ANALYZE on several sessions.

use crate::support::{runtime, Pgdrill, TestServer};

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
    assert_eq!(
        pgdrill::pg::archive::data_offsets(&dump),
        Some(pgdrill::pg::archive::DataOffsets {
            tables: 3,
            unset: 0
        })
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

    let file = repo.path().join("piped.dump");
    std::fs::write(&file, server.pg_dump_piped(&db)).unwrap();
    assert_eq!(
        pgdrill::pg::archive::data_offsets(&file),
        Some(pgdrill::pg::archive::DataOffsets {
            tables: 3,
            unset: 3
        }),
        "a pipe cannot seek"
    );
    // A drill of that file says so at its precheck, and still restores it.
    let run = Pgdrill::native(["--backup-file", file.to_str().unwrap()]).run();
    run.assert_pass();
    let detail = run.phase("precheck")["detail"].as_str().unwrap();
    assert!(
        detail.contains("records no data offset for 3 of 3 tables")
            && detail.contains("pg_dump -f"),
        "{detail}"
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
    // The drill's own backup has its offsets: its precheck has nothing to say about them.
    let precheck = run.phase("precheck")["detail"].as_str().unwrap();
    assert!(!precheck.contains("data offset"), "{precheck}");

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

/// The precheck's own reader of data blocks reads a real archive to exactly the rows pg_dump
/// wrote (the `COPY` text of every table, odd bytes included), compressed or not; an archive
/// with large objects (blocks of another shape) is left to pg_restore's full read. A drill of
/// each passes, its precheck saying which read it.
#[test]
fn the_precheck_reads_real_archives_to_exactly_their_rows() {
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db(
        "speed-blocks",
        "blocks",
        &format!(
            "{TABLES}
             CREATE TABLE \"odd name\" (t text, b bytea, j jsonb);
             INSERT INTO \"odd name\" SELECT E'tab\\there\\nline\\\\slash ' || g || ' ünï ☃',
                 decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'n', NULL)
               FROM generate_series(1, 3000) g;
             INSERT INTO \"odd name\" VALUES (NULL, NULL, NULL), ('', '', '{{}}');"
        ),
    ));
    let rows: u64 = rt.block_on(async {
        use futures_util::StreamExt;
        let c = server.connect(&db).await;
        let mut total = 0u64;
        for t in ["a", "b", "c", "\"odd name\""] {
            let copy = c.copy_out(&format!("COPY {t} TO STDOUT")).await.unwrap();
            let mut copy = std::pin::pin!(copy);
            while let Some(chunk) = copy.next().await {
                total += chunk.unwrap().len() as u64;
            }
        }
        total
    });
    let dir = tempfile::tempdir().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    for (name, options) in [("zlib", &[][..]), ("none", &["-Z", "0"][..])] {
        let dump = dir.path().join(format!("{name}.dump"));
        server.pg_dump_with(&db, &dump, options);
        let blocks = pgdrill::pg::archive::data_blocks(&dump).expect("a known layout");
        assert_eq!(blocks.compressed, name == "zlib");
        let read = pgdrill::pg::archive::read_blocks(&dump, &blocks, 2, &stop).unwrap();
        // pg_dump ends each table's rows with five bytes: `\.` and three newlines.
        let data = rows + 4 * 5;
        assert_eq!((read.blocks, read.data_bytes), (4, data), "{name}");
        let run = Pgdrill::native(["--backup-file", dump.to_str().unwrap()]).run();
        run.assert_pass();
        let detail = run.phase("precheck")["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            detail.contains(&format!("pgdrill (its 4 data blocks, {data} bytes of rows")),
            "{detail}"
        );
    }

    rt.block_on(async {
        server
            .connect(&db)
            .await
            .batch_execute("SELECT lo_from_bytea(0, 'a large object')")
            .await
            .unwrap()
    });
    let dump = dir.path().join("lo.dump");
    server.pg_dump(&db, &dump);
    let layout = pgdrill::pg::archive::data_blocks(&dump).expect("a known layout");
    assert!(!layout.rows_only(), "{layout:?}");
    let run = Pgdrill::native(["--backup-file", dump.to_str().unwrap()]).run();
    run.assert_pass();
    let detail = run.phase("precheck")["detail"].as_str().unwrap();
    assert!(
        detail.contains("read through pg_restore") && !detail.contains("pgdrill (its"),
        "{detail}"
    );
}

/// The precheck reads an archive whose blocks it can find on every core, side by side, and
/// still reads every block: damage in any table's data fails it, whichever reader had that
/// table, in pg_restore's words (its full read decides once pgdrill's own reader found damage).
#[test]
fn the_precheck_reads_an_archive_on_every_core_and_misses_no_damaged_block() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("one core: the precheck reads with one pg_restore, as tested elsewhere");
        return;
    }
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db("speed-readers", "readers", TABLES));
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("good.dump");
    server.pg_dump(&db, &dump);
    let run = Pgdrill::native(["--backup-file", dump.to_str().unwrap()]).run();
    run.assert_pass();
    let detail = run.phase("precheck")["detail"].as_str().unwrap();
    assert!(detail.contains("readers side by side"), "{detail}");

    let len = std::fs::metadata(&dump).unwrap().len();
    let mut starts: Vec<u64> = pgdrill::pg::archive::entries(&dump)
        .unwrap()
        .iter()
        .filter_map(|e| match e.offset {
            pgdrill::pg::archive::Offset::At(at) => Some(at),
            _ => None,
        })
        .collect();
    starts.sort_unstable();
    let mut damaged = 0;
    for (i, at) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(len);
        if end - at < 200 {
            continue; // an empty table's block: a header only
        }
        let copy = dir.path().join(format!("damaged-{i}.dump"));
        let mut bytes = std::fs::read(&dump).unwrap();
        let middle = (*at + (end - at) / 2) as usize;
        bytes[middle..middle + 8]
            .copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13, 0x37]);
        std::fs::write(&copy, bytes).unwrap();
        let run = Pgdrill::native(["--backup-file", copy.to_str().unwrap()]).run();
        assert_eq!(run.code(), 1, "block at {at}: {}", run.text());
        let r = run.report();
        assert_eq!(
            (
                r["failure"]["phase"].as_str(),
                r["failure"]["class"].as_str()
            ),
            (Some("precheck"), Some("backup_unusable")),
            "block at {at}: {}",
            r["failure"]
        );
        assert!(
            r["failure"]["message"]
                .as_str()
                .unwrap()
                .contains("does not read through"),
            "{}",
            r["failure"]
        );
        damaged += 1;
    }
    assert!(damaged >= 2, "only {damaged} data blocks were damaged");
}
