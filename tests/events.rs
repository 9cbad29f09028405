//! The drill's event trail (`events.ndjson` in `--out`), its tracing, and the checks made
//! before anything starts.

use serde_json::Value;

use crate::support::{
    events, kill_drill, runtime, spawn_drill, wait_for_phase, Pgdrill, TestServer,
};

#[test]
fn events_follow_every_phase_and_end_with_the_verdict_and_tracing_shows_them() {
    let run = Pgdrill::drill(["--backend", "native", "--app", "none"])
        .env("PGDRILL_LOG", "pgdrill=debug")
        .run();
    let r = run.assert_pass();
    let ev = events(run.out.path());
    assert_eq!(ev[0]["event"], "drill_started");
    assert_eq!(ev[0]["drill_id"], r["drill_id"]);
    for e in &ev {
        assert!(
            chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).is_ok(),
            "{e}"
        );
    }
    let ended: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "phase_finished" || e["event"] == "phase_skipped")
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    let phases: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ended, phases);
    // Long phases say how far they are: the dump's bytes, the restored tables fingerprinted.
    let progress = |phase: &str| -> Vec<&Value> {
        ev.iter()
            .filter(|e| e["event"] == "progress" && e["phase"] == phase)
            .collect()
    };
    let backup = progress("backup");
    let last = backup.last().expect("progress events of the backup");
    assert_eq!(last["unit"], "bytes", "{last}");
    assert_eq!(last["done"], r["backup"]["size_bytes"], "{last}");
    let snap = progress("snapshot");
    let tables = r["integrity"]["tables"].as_array().unwrap().len() as u64;
    assert_eq!(
        snap.len() as u64,
        tables,
        "one progress event per table: {snap:?}"
    );
    let last = snap.last().unwrap();
    assert_eq!(
        (last["done"].as_u64(), last["total"].as_u64()),
        (Some(tables), Some(tables)),
        "{last}"
    );
    // Seed: users of the total while `users` loads, rows of all tables with their total at
    // the end; precheck: the dump's bytes read; pg_restore: the archive's tables restored.
    let g = &r["source"]["generated"];
    let rows = ["plans", "users", "subscriptions", "payments"]
        .iter()
        .map(|t| g[t].as_u64().unwrap())
        .sum::<u64>();
    let users = g["users"].as_u64().unwrap();
    assert_monotonic_to(&progress("seed"), "users", users);
    assert_monotonic_to(&progress("seed"), "rows", rows);
    let size = r["backup"]["size_bytes"].as_u64().unwrap();
    assert_monotonic_to(&progress("precheck"), "bytes", size);
    // The generated schema's tables each have a TABLE DATA entry in the dump.
    assert_monotonic_to(&progress("pg_restore"), "tables", tables);
    assert!(
        progress("pg_restore")
            .iter()
            .any(|e| e["done"].as_u64() > Some(0) && e["done"].as_u64() < Some(tables)),
        "pg_restore reported no table between the first and the last: {:?}",
        progress("pg_restore")
    );
    let started = ev.iter().filter(|e| e["event"] == "phase_started").count();
    let finished = ev.iter().filter(|e| e["event"] == "phase_finished").count();
    assert_eq!(started, finished);
    let last = ev.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["verdict"].as_str()),
        (Some("verdict"), Some("pass"))
    );
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        stderr.contains("phase started") && stderr.contains("pg_restore"),
        "PGDRILL_LOG=debug shows no tracing events: {stderr}"
    );
}

/// The progress events of one unit never go back and end at `total` of `total`.
fn assert_monotonic_to(events: &[&Value], unit: &str, total: u64) {
    let done: Vec<u64> = events
        .iter()
        .filter(|e| e["unit"] == unit)
        .map(|e| e["done"].as_u64().unwrap())
        .collect();
    assert!(!done.is_empty(), "no {unit} progress in {events:?}");
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]),
        "{unit} went back: {done:?}"
    );
    let last = events.iter().rev().find(|e| e["unit"] == unit).unwrap();
    assert_eq!(
        (last["done"].as_u64(), last["total"].as_u64()),
        (Some(total), Some(total)),
        "{unit}: {last}"
    );
}

#[test]
fn a_drill_killed_with_sigkill_leaves_its_event_trail() {
    // A private TMPDIR: a SIGKILL leaves the drill's server directories behind, and this
    // test must not.
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, out_dir) = spawn_drill("native", tmp.path(), "60000");
    let id = wait_for_phase(out_dir.path(), "seed");
    kill_drill(&mut child, &id);
    let ev = events(out_dir.path());
    assert_eq!(ev[0]["event"], "drill_started");
    assert!(ev
        .iter()
        .any(|e| e["event"] == "phase_finished" && e["phase"] == "provision"));
    assert!(
        !ev.iter().any(|e| e["event"] == "verdict"),
        "killed, yet a verdict"
    );
    assert!(!out_dir.path().join("report.json").exists());
}

#[test]
fn an_out_that_cannot_be_written_is_refused_before_anything_starts() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = file.path().join("out");
    let run = Pgdrill::new([
        "drill",
        "--backend",
        "native",
        "--app",
        "none",
        "--rows",
        "100",
        "--out",
        out.to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let text = run.text();
    assert!(
        text.contains(&format!("--out {} cannot be written", out.display()))
            && text.contains("Not a directory"),
        "{text}"
    );
    assert!(!text.contains("provision"), "something started: {text}");
}

#[test]
fn a_tamper_sql_typo_shows_the_servers_words() {
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--app",
        "none",
        "--tamper-sql",
        "UPDATE userz SET country = 'ZZ'",
    ])
    .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let f = &run.report()["failure"];
    assert_eq!(f["phase"], "tamper_hook");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"relation "userz" does not exist"#) && msg.contains("42P01"),
        "{msg}"
    );
}

#[test]
fn every_program_run_is_traced_at_debug_and_no_password_is() {
    // A source whose password the test knows (a TestServer's generated one): pg_dump,
    // pg_dumpall and the preflight's programs get it through PGPASSWORD only.
    let (server, db) = runtime().block_on(TestServer::with_db(
        "traced",
        "traced",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50);",
    ));
    let password = server.endpoint.password().unwrap().to_string();
    let dsn = format!("{} dbname={db}", server.dsn());
    let run = Pgdrill::drill(["--backend", "native", "--app", "none", "--source-dsn", &dsn])
        .env("PGDRILL_LOG", "pgdrill=debug")
        .run();
    run.assert_pass();
    let text = run.text();
    assert!(
        !text.contains(&password),
        "the password was printed:\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    for program in [
        "initdb",
        "postgres",
        "pg_dump",
        "pg_dumpall",
        "psql",
        "pg_restore",
        "pg_amcheck",
    ] {
        let started = lines.iter().find(|l| {
            l.contains("DEBUG")
                && l.contains("running a program")
                && l.contains(&format!("program={program} "))
        });
        let started = started.unwrap_or_else(|| panic!("no start of {program} traced:\n{text}"));
        assert!(started.contains("command="), "{started}");
        assert!(
            lines.iter().any(|l| l.contains("program ended")
                && l.contains(&format!("program={program} "))
                && l.contains("status=")),
            "no end of {program} traced:\n{text}"
        );
    }
    // The arguments are traced: pg_dump's snapshot and pg_restore's job count.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("program=pg_dump ") && l.contains("--snapshot=")),
        "{text}"
    );
    drop(server);
}
