//! `pgdrill forecast` through the real binary: a written history with a known line (the
//! text, `--json`, the exit codes, a group chosen with `--backend`/`--jobs`, a bad `--size`),
//! and three real drills at three sizes into one history: the forecast fits their three
//! points, the third drill's report carries it, and so does the runbook.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{Pgdrill, Run};

fn pgdrill(args: &[&str]) -> Run {
    Pgdrill::new(args.iter().copied()).run()
}

fn stdout(r: &Run) -> String {
    String::from_utf8_lossy(&r.output.stdout).into_owned()
}

const MIB: u64 = 1_048_576;

/// A history line: drill `i` on `backend -j jobs` restored `mib` MiB in 2000 ms + 30 ms/MiB.
fn line(i: usize, mib: u64, backend: &str, jobs: u32) -> String {
    json!({
        "drill_id": format!("weekly-{i}"),
        "time": format!("2026-11-{:02}T03:00:00Z", 1 + i),
        "kind": "drill",
        "scope": "database",
        "backup_file": "/backups/b.dump",
        "backup_size_bytes": mib * MIB,
        "backup_age_ms": 3_600_000,
        "verdict": "pass",
        "failed": null,
        "budgets": [
            {"name": "database_restore", "used_ms": 2000 + 30 * mib, "limit_ms": 900_000},
        ],
        "integrity": null,
        "report": format!("/drills/weekly-{i}/report.json"),
        "report_sha256": "00",
        "backend": backend,
        "jobs": jobs,
    })
    .to_string()
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_known_line_is_projected_with_exit_codes_for_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.ndjson");
    let h = history.to_str().unwrap();
    // docker -j 4 first (older), then native -j 2 at four sizes: the newest drill's group.
    let mut lines = vec![line(0, 100, "docker", 4), line(1, 200, "docker", 4)];
    for (i, mib) in [100, 200, 400, 800].into_iter().enumerate() {
        lines.push(line(2 + i, mib, "native", 2));
    }
    write(&history, &lines);

    // 50 GB at 30 ms/MiB: about 24 minutes, over the 15-minute budget: exit 1.
    let over = pgdrill(&["forecast", "--history", h, "--size", "50GB"]);
    assert_eq!(over.code(), 1, "{}", over.text());
    let text = stdout(&over);
    // The line crosses 900 000 ms at (900000 - 2000) / 30 MiB = 29 933 MiB ≈ 31.4 GB.
    for needle in [
        "native -j 2",
        "projected database restore at 50.0 GB",
        "95 % prediction interval",
        "R² 1.000",
        "4 drills of 4 backup sizes",
        "WARNING: the projection is over the database_restore budget of 15m (the newest drill's)",
        "reaches it at 31.4 GB",
        "other groups (--backend, --jobs): docker -j 4 (2 drills)",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }

    // 10 GiB: within.
    let within = pgdrill(&["forecast", "--history", h, "--size", "10GiB"]);
    assert_eq!(within.code(), 0, "{}", within.text());
    assert!(
        stdout(&within).contains("within the database_restore budget of 15m"),
        "{}",
        within.text()
    );
    // --budget moves the line: 50 GB within an hour.
    let hour = pgdrill(&[
        "forecast",
        "--history",
        h,
        "--size",
        "50GB",
        "--budget",
        "1h",
    ]);
    assert_eq!(hour.code(), 0, "{}", hour.text());

    // --json: the typed result.
    let json = pgdrill(&["forecast", "--history", h, "--size", "50GB", "--json"]);
    assert_eq!(json.code(), 1, "{}", json.text());
    let v: Value = serde_json::from_slice(&json.output.stdout).unwrap();
    let g = &v["group"];
    assert_eq!(v["size_bytes"], 50_000_000_000u64);
    assert_eq!(g["backend"], "native");
    assert_eq!(g["jobs"], 2);
    assert_eq!(g["points"].as_array().unwrap().len(), 4);
    assert_eq!(g["outlook"], "over");
    assert_eq!(g["budget_ms"], 900_000);
    assert_eq!(g["budget_from"], "history");
    let fit = &g["fit"];
    assert!(
        (fit["ms_per_mib"].as_f64().unwrap() - 30.0).abs() < 1e-6,
        "{fit}"
    );
    assert!(
        (fit["intercept_ms"].as_f64().unwrap() - 2000.0).abs() < 1e-3,
        "{fit}"
    );
    let p = &g["projection"];
    let want = 2000.0 + 30.0 * 50e9 / MIB as f64;
    assert!(
        (p["restore_ms"].as_f64().unwrap() - want).abs() < 1.0,
        "{p}"
    );
    assert_eq!(p["confidence"], 0.95);
    assert!(
        g["crosses_budget_at_bytes"].as_u64().unwrap() / MIB == 29_933,
        "{g}"
    );
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);

    // The docker group has two sizes: nothing projected, exit 0, and said.
    let docker = pgdrill(&[
        "forecast",
        "--history",
        h,
        "--size",
        "50GB",
        "--backend",
        "docker",
    ]);
    assert_eq!(docker.code(), 0, "{}", docker.text());
    assert!(
        stdout(&docker).contains("not enough drills to forecast: 2 drills of 2 backup sizes (docker -j 4); 3 different sizes are needed"),
        "{}",
        docker.text()
    );
    let dj: Value = serde_json::from_slice(
        &pgdrill(&[
            "forecast",
            "--history",
            h,
            "--size",
            "1GB",
            "--jobs",
            "4",
            "--json",
        ])
        .output
        .stdout,
    )
    .unwrap();
    assert_eq!(dj["group"]["outlook"], "not_enough");
    assert!(dj["group"]["projection"].is_null());

    // A group no drill ran with: exit 2, naming the ones there are.
    let none = pgdrill(&["forecast", "--history", h, "--size", "1GB", "--jobs", "9"]);
    assert_eq!(none.code(), 2, "{}", none.text());
    assert!(
        none.text().contains("native -j 2, docker -j 4"),
        "{}",
        none.text()
    );
}

#[test]
fn bad_input_exits_2_naming_the_problem_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.ndjson");
    write(&history, &[line(0, 100, "native", 2)]);
    let h = history.to_str().unwrap();
    let bad = pgdrill(&["forecast", "--history", h, "--size", "50XB"]);
    assert_eq!(bad.code(), 2, "{}", bad.text());
    assert!(
        bad.text().contains("unknown unit `XB`") && bad.text().contains("50GiB"),
        "{}",
        bad.text()
    );
    let missing = pgdrill(&[
        "forecast",
        "--history",
        "/nonexistent/h.ndjson",
        "--size",
        "1GB",
    ]);
    assert_eq!(missing.code(), 2, "{}", missing.text());
    assert!(
        missing.text().contains("/nonexistent/h.ndjson")
            && missing.text().contains("--history FILE"),
        "{}",
        missing.text()
    );
    let no_size = pgdrill(&["forecast", "--history", h]);
    assert_eq!(no_size.code(), 2, "{}", no_size.text());
    // One drill: nothing projected, exit 0.
    let one = pgdrill(&["forecast", "--history", h, "--size", "1GB"]);
    assert_eq!(one.code(), 0, "{}", one.text());
    assert!(stdout(&one).contains("not enough drills"), "{}", one.text());
}

#[test]
fn three_real_drills_at_three_sizes_are_fitted_and_projected() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.ndjson");
    let h = history.to_str().unwrap();
    let mut last = None;
    for rows in ["2000", "6000", "12000"] {
        let run = Pgdrill::native(["--rows", rows, "--history", h]).run();
        assert_eq!(run.code(), 0, "{}", run.text());
        last = Some(run);
    }
    let last = last.unwrap();
    // The third drill's report fits the two before it and itself.
    let r = last.report();
    let f = &r["forecast"];
    assert_eq!(f["backend"], "native", "{f}");
    assert_eq!(f["jobs"], 2, "{f}");
    assert_eq!(f["points"].as_array().unwrap().len(), 3, "{f}");
    assert_eq!(
        f["projection"]["size_bytes"], r["backup"]["size_bytes"],
        "projected at this drill's backup size"
    );
    let md = std::fs::read_to_string(last.out.path().join("report.md")).unwrap();
    assert!(md.contains("## RTO forecast"), "{md}");
    let html = std::fs::read_to_string(last.out.path().join("report.html")).unwrap();
    assert!(
        html.contains("<ul id=\"forecast\">"),
        "report.html has the forecast"
    );

    let run = pgdrill(&["forecast", "--history", h, "--size", "1GB", "--json"]);
    assert!(run.code() == 0 || run.code() == 1, "{}", run.text());
    let v: Value = serde_json::from_slice(&run.output.stdout).unwrap();
    let g = &v["group"];
    assert_eq!(g["fit"]["points"], 3, "{g}");
    assert_eq!(g["fit"]["sizes"], 3, "{g}");
    assert!(g["projection"]["restore_ms"].is_number(), "{g}");
    // A bigger backup takes longer on this machine: the sizes differ by 6x.
    let sizes: Vec<u64> = g["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size_bytes"].as_u64().unwrap())
        .collect();
    assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "{sizes:?}");
    let text = pgdrill(&["forecast", "--history", h, "--size", "1GB"]);
    assert!(
        stdout(&text).contains("3 drills of 3 backup sizes"),
        "{}",
        text.text()
    );

    // The runbook, from the same history.
    let book = tmp.path().join("runbook.md");
    let rb = pgdrill(&["runbook", "--history", h, "--out", book.to_str().unwrap()]);
    assert_eq!(rb.code(), 0, "{}", rb.text());
    let md = std::fs::read_to_string(&book).unwrap();
    assert!(
        md.contains("### RTO forecast") && md.contains("projected database restore at"),
        "{md}"
    );
}
