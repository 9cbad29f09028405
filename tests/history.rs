//! `pgdrill history` through the real binary: a missing history file, a drill that could
//! not run counted apart from one that failed, test drills left out of the pass rate, the
//! size trend only with enough drills, the overview page's charts (read back as SVG) and its
//! links to each drill's report.html, and `--tamper-sql` in `drill --help`.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{Pgdrill, Run};

fn pgdrill(args: &[&str]) -> Run {
    Pgdrill::new(args.iter().copied()).run()
}

#[test]
fn a_missing_history_file_exits_2_naming_it_and_the_fix() {
    let run = pgdrill(&["history", "--history", "/nonexistent/history.ndjson"]);
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(
        run.text().contains("/nonexistent/history.ndjson") && run.text().contains("--history FILE"),
        "{}",
        run.text()
    );
    assert!(run.output.stdout.is_empty(), "no summary of nothing");
    // The same through PGDRILL_HISTORY (the builder points it at a file no drill wrote).
    let run = pgdrill(&["history", "--max-age", "8d"]);
    assert_eq!(run.code(), 2, "{}", run.text());
    assert!(run.text().contains("history.ndjson"), "{}", run.text());
}

#[test]
fn tamper_sql_and_fault_are_in_help_under_testing_the_tester() {
    let run = pgdrill(&["drill", "--help"]);
    assert_eq!(run.code(), 0, "{}", run.text());
    let help = String::from_utf8(run.output.stdout.clone()).unwrap();
    // The help's sections: a heading at the margin ending in ':', its flags indented.
    let mut sections: Vec<(&str, String)> = Vec::new();
    for l in help.lines() {
        match sections.last_mut() {
            _ if !l.starts_with(' ') && l.ends_with(':') => sections.push((l, String::new())),
            Some((_, body)) => body.push_str(&format!("{l}\n")),
            None => {}
        }
    }
    let section = |name: &str| {
        sections
            .iter()
            .find(|(h, _)| *h == name)
            .map(|(_, body)| body.as_str())
            .unwrap_or_else(|| panic!("no '{name}' heading in:\n{help}"))
    };
    let tester = section("Testing the tester:");
    assert!(
        tester.contains("--tamper-sql <SQL>") && tester.contains("--fault <FAULT>"),
        "{tester}"
    );
    assert!(
        !section("Options:").contains("--tamper-sql"),
        "only under its heading"
    );
}

/// A history line of a real drill that ran and passed: `mib` MiB restored in `ms`.
fn line(i: usize, mib: u64, ms: u64) -> pgdrill::report::history::Entry {
    serde_json::from_value(json!({
        "drill_id": format!("weekly-{i}"),
        "time": format!("2026-11-{:02}T03:00:00Z", 1 + i),
        "kind": "drill",
        "scope": "database",
        "backup_file": "/backups/b.dump",
        "backup_size_bytes": mib * 1_048_576,
        "backup_sha256": format!("{i:x}").repeat(64),
        "backup_age_ms": 3_600_000,
        "verdict": "pass",
        "failed": null,
        "budgets": [
            {"name": "database_restore", "used_ms": ms, "limit_ms": 900_000},
            {"name": "total", "used_ms": 2 * ms, "limit_ms": 1_800_000},
        ],
        "integrity": {"tables": 4, "tables_mismatched": 0, "checks": 5, "checks_failed": 0},
        "report": format!("/drills/weekly-{i}/report.json"),
        "report_sha256": "00",
    }))
    .expect("a history line of today's shape")
}

/// The `<svg id=ID>` of `html`, parsed.
fn svg<'a>(html: &'a str, id: &str) -> roxmltree::Document<'a> {
    let start = html
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("no svg {id}"));
    let end = start + html[start..].find("</svg>").unwrap() + "</svg>".len();
    roxmltree::Document::parse(&html[start..end]).expect("the chart is well-formed XML")
}

fn has_class(n: roxmltree::Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

#[test]
fn a_drill_that_could_not_run_is_counted_apart_and_linked_from_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.ndjson");
    let h = history.to_str().unwrap();
    // A real drill that cannot run here: no PostgreSQL programs (exit 3, verdict error).
    let bin = tempfile::tempdir().unwrap();
    let error = Pgdrill::drill(["--backend", "native"])
        .env("PATH", bin.path().to_str().unwrap())
        .env("PGDRILL_PG_BINDIR", bin.path().to_str().unwrap())
        .env("PGDRILL_HISTORY", h)
        .run();
    assert_eq!(error.code(), 3, "{}", error.text());
    let written: Value =
        serde_json::from_str(std::fs::read_to_string(&history).unwrap().trim()).unwrap();
    assert_eq!(written["kind"], "drill");
    assert_eq!(written["verdict"], "error");
    assert_eq!(
        Path::new(written["out_dir"].as_str().unwrap()),
        error.out.path(),
        "{written}"
    );

    // Four drills that ran: too few to fit a size trend.
    for i in 1..=4 {
        pgdrill::report::history::append(&history, &line(i, i as u64, 1000 * i as u64)).unwrap();
    }
    // As of now (the error drill finished just now), over everything.
    let now = chrono::Utc::now() + chrono::Duration::minutes(1);
    let now = now.to_rfc3339();
    let summary = |extra: &[&str]| {
        let mut args = vec![
            "history",
            "--history",
            h,
            "--at",
            &now,
            "--since",
            "100000d",
        ];
        args.extend_from_slice(extra);
        pgdrill(&args)
    };
    let run = summary(&["--json"]);
    let s: Value = serde_json::from_slice(&run.output.stdout).unwrap();
    assert_eq!(
        (&s["drills"], &s["passed"], &s["errors"], &s["pass_rate"]),
        (&json!(5), &json!(4), &json!(1), &json!(1.0)),
        "an error is not a fail: {s:#}"
    );
    assert_eq!(s["fit"]["status"], "not_enough", "{s:#}");
    let text = summary(&[]).text();
    assert!(
        text.contains("1 could not run (environment error"),
        "{text}"
    );
    assert!(
        text.contains("size trend: not enough drills to fit (4 that restored"),
        "{text}"
    );

    // A fifth drill that ran, and a tamper test: the trend is fitted, the test not counted.
    pgdrill::report::history::append(&history, &line(5, 5, 5000)).unwrap();
    let mut tamper = line(6, 1, 900);
    tamper.kind = pgdrill::report::history::DrillKind::Tamper;
    tamper.verdict = pgdrill::report::Verdict::Fail;
    pgdrill::report::history::append(&history, &tamper).unwrap();
    let run = summary(&["--json", "--max-age", "8d"]);
    let s: Value = serde_json::from_slice(&run.output.stdout).unwrap();
    assert_eq!(
        (&s["drills"], &s["passed"], &s["failed"], &s["test_drills"]),
        (&json!(7), &json!(5), &json!(0), &json!(1)),
        "{s:#}"
    );
    assert_eq!(s["fit"]["status"], "fitted", "{s:#}");
    assert!((s["fit"]["ms_per_mib"].as_f64().unwrap() - 1000.0).abs() < 1e-6);
    assert_eq!(s["max_age"], "8 days");
    let run = summary(&["--max-age", "8d"]);
    assert_eq!(
        run.code(),
        1,
        "no pass within 8 days of now: {}",
        run.text()
    );
    assert!(
        run.text().contains("STALE: no drill passed within 8 days"),
        "{}",
        run.text()
    );
    assert!(
        run.text().contains(
            "size trend: 1000 ms per MiB (R² 1.00, a good fit over 5 drills of 5 backup sizes)"
        ),
        "{}",
        run.text()
    );
    assert!(
        run.text().contains("1 test drill (1 tamper)"),
        "{}",
        run.text()
    );

    // The page: the error stacked apart, five RTO bars, five points and the line; the
    // error drill's link opens its real report.html.
    let page = tmp.path().join("pages").join("history.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    let run = summary(&["--html", page.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.text());
    let html = std::fs::read_to_string(&page).unwrap();
    let outcomes = svg(&html, "pass-rate-chart");
    let count = |class: &str| {
        outcomes
            .descendants()
            .filter(|n| n.has_tag_name("rect") && has_class(*n, class))
            .count()
    };
    assert_eq!((count("error"), count("fail")), (1, 0), "{html}");
    assert!(count("pass") >= 1);
    let rto = svg(&html, "rto-chart");
    let bars: Vec<f64> = rto
        .descendants()
        .filter(|n| n.has_tag_name("rect") && has_class(*n, "bar"))
        .map(|n| n.attribute("height").unwrap().parse().unwrap())
        .collect();
    assert_eq!(bars.len(), 5, "the drills that ran: {html}");
    // Restore times of 1..5 s (totals 2..10 s): heights in the same proportion.
    for (i, h) in bars.iter().enumerate() {
        assert!((h / bars[0] - (i + 1) as f64).abs() < 0.02, "{bars:?}");
    }
    let sizes = svg(&html, "size-chart");
    assert_eq!(
        sizes
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count(),
        5
    );
    assert!(sizes.descendants().any(|n| has_class(n, "fit")));
    let drill_id = error.report()["drill_id"].as_str().unwrap();
    let link = html
        .split("<tr>")
        .find(|row| row.contains(drill_id))
        .and_then(|row| row.split("href=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        // The attribute as a browser reads it: minijinja escapes '/' as an entity.
        .map(|href| href.replace("&#x2f;", "/"))
        .unwrap_or_else(|| panic!("no link for {drill_id} in {html}"));
    assert!(
        !link.starts_with('/') && !link.starts_with("file:"),
        "{link}"
    );
    let target = page.parent().unwrap().join(&link);
    assert!(target.is_file(), "{} does not open", target.display());
    assert_eq!(
        target.canonicalize().unwrap(),
        error.out.path().join("report.html").canonicalize().unwrap()
    );
}
