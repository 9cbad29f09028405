//! The drill's event trail (`events.ndjson` in `--out`), its tracing, and the checks made
//! before anything starts.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{leftovers, Pgdrill};

fn events(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.ndjson"))
        .expect("events.ndjson written")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

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

#[test]
fn a_drill_killed_with_sigkill_leaves_its_event_trail() {
    // A private TMPDIR: a SIGKILL leaves the drill's server directories behind, and this
    // test must not.
    let tmp = tempfile::tempdir().unwrap();
    let d = Pgdrill::new([
        "drill",
        "--backend",
        "native",
        "--app",
        "none",
        "--rows",
        "60000",
    ])
    .env("TMPDIR", tmp.path().to_str().unwrap());
    let out = d.out_dir().display().to_string();
    let (mut child, out_dir) = d.push_arg("--out").push_arg(out).spawn();
    let path = out_dir.path().join("events.ndjson");
    let started = Instant::now();
    let seeded = || {
        std::fs::read_to_string(&path)
            .map(|t| {
                t.lines()
                    .any(|l| l.contains(r#""phase_finished""#) && l.contains(r#""phase":"seed""#))
            })
            .unwrap_or(false)
    };
    while !seeded() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seeded(), "the drill never finished its seed");
    child.kill().unwrap();
    child.wait().unwrap();
    let ev = events(out_dir.path());
    assert_eq!(ev[0]["event"], "drill_started");
    let id = ev[0]["drill_id"].as_str().unwrap().to_string();
    assert!(ev
        .iter()
        .any(|e| e["event"] == "phase_finished" && e["phase"] == "provision"));
    assert!(
        !ev.iter().any(|e| e["event"] == "verdict"),
        "killed, yet a verdict"
    );
    assert!(!out_dir.path().join("report.json").exists());
    // The servers stop by their parent-death signal; wait for them before removing the dirs.
    let started = Instant::now();
    while leftovers(&id).iter().any(|l| l.starts_with("process"))
        && started.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let procs: Vec<String> = leftovers(&id)
        .into_iter()
        .filter(|l| l.starts_with("process"))
        .collect();
    assert!(procs.is_empty(), "{procs:?}");
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
