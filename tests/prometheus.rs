//! deploy/prometheus/pgdrill.rules.yml with the real promtool: the rules load, their unit
//! tests pass (each alert fires on what should fire it and not before), and the metrics they
//! name are the ones `drill --prom` and `verify --prom` really write, in a format promtool
//! accepts. (The pgBackRest and Barman series, `pgdrill_wal_*`, `pgdrill_pgbackrest_*`,
//! `pgdrill_barman_*`, are asserted by name in src/pitr/verify.rs's tests and the real-tool
//! tests of tests/pitr.rs and tests/barman.rs.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{self, Pgdrill};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

/// Whether promtool is here; without it the test is skipped, unless
/// PGDRILL_REQUIRE_PROMTOOL=1 (`.ci/run`), where that is a failure.
fn promtool_or_skip(test: &str) -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    assert!(
        std::env::var("PGDRILL_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
        "{test}: promtool is not installed (scripts/setup.sh installs Debian's prometheus package for it)"
    );
    eprintln!("skipped: {test}: promtool is not installed");
    false
}

fn promtool(args: &[&str], stdin: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("promtool");
    cmd.args(args).current_dir(rules_dir());
    if let Some(f) = stdin {
        cmd.stdin(std::fs::File::open(f).unwrap());
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The metric names a textfile defines.
fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn the_alert_rules_load_pass_their_unit_tests_and_name_metrics_pgdrill_writes() {
    let test = "prometheus rules";
    if !promtool_or_skip(test) {
        return;
    }
    let (ok, said) = promtool(&["check", "rules", "pgdrill.rules.yml"], None);
    assert!(ok, "{said}");
    support::assert_mentions(&said, &["SUCCESS: 8 rules found"]);
    let (ok, said) = promtool(&["test", "rules", "pgdrill.rules.test.yml"], None);
    assert!(ok, "{said}");

    // What a drill and a verify write, each accepted by promtool's own linter.
    let dir = tempfile::tempdir().unwrap();
    let (drill_prom, verify_prom) = (
        dir.path().join("drill.prom"),
        dir.path().join("verify.prom"),
    );
    let history = dir.path().join("history.ndjson");
    let run = Pgdrill::native([
        "--prom",
        drill_prom.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
    ])
    .run();
    run.assert_pass();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("database")).unwrap();
    let verify = Pgdrill::new([
        "verify",
        "--repo",
        repo.to_str().unwrap(),
        "--prom",
        verify_prom.to_str().unwrap(),
    ])
    .run();
    assert_eq!(verify.code(), 1, "no backup yet: {}", verify.text());
    let mut written = BTreeSet::new();
    for f in [&drill_prom, &verify_prom] {
        let (ok, said) = promtool(&["check", "metrics"], Some(f));
        assert!(ok, "{}: {said}", f.display());
        written.extend(names(&std::fs::read_to_string(f).unwrap()));
    }
    let drill_text = std::fs::read_to_string(&drill_prom).unwrap();
    let db = run.report()["source"]["database"]
        .as_str()
        .unwrap()
        .to_string();
    for line in [
        format!("pgdrill_drill_success{{database=\"{db}\"}} 1\n"),
        format!(
            "pgdrill_drill_budget_limit_seconds{{database=\"{db}\",budget=\"total\"}} 1800.000\n"
        ),
    ] {
        assert!(drill_text.contains(&line), "{line} not in {drill_text}");
    }
    // The last success is this drill, finished within the last minute.
    let success: i64 = drill_text
        .lines()
        .find(|l| l.starts_with("pgdrill_drill_last_success_timestamp_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{drill_text}"));
    assert!(
        (chrono::Utc::now().timestamp() - success).abs() < 120,
        "{drill_text}"
    );

    let rules = std::fs::read_to_string(rules_dir().join("pgdrill.rules.yml")).unwrap();
    let named: BTreeSet<String> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("pgdrill_drill_") || w.starts_with("pgdrill_backup_"))
        .map(str::to_string)
        .collect();
    assert!(named.len() >= 6, "{named:?}");
    let missing: Vec<&String> = named.difference(&written).collect();
    assert!(
        missing.is_empty(),
        "the rules name metrics pgdrill never writes: {missing:?}"
    );
}
