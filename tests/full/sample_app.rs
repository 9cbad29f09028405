//! The full drill with the sample app and the release repository the drill makes: the
//! configuration, the code and the RPO, from the CLI and from the library API.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::secrets::assert_no_generated_secret;
use super::{args, assert_nothing_left, files_under, phase_names, FULL, FULL_PHASES};
use crate::support::{Pgdrill, CADENCE};

/// An RFC 3339 time of the report.
fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .with_timezone(&Utc)
}

#[test]
fn full_drill_with_the_sample_app_restores_config_and_code_and_measures_the_rpo() {
    let run = Pgdrill::drill(args(&[FULL, CADENCE]))
        .env("PGDRILL_LOG", "debug")
        .run();
    let r = run.assert_pass();
    assert_eq!(phase_names(r), FULL_PHASES);
    for p in r["phases"].as_array().unwrap() {
        assert_eq!(p["status"], "pass", "{p}");
    }
    assert_eq!(r["scope"], "full");
    assert_eq!(r["source"]["kind"], "generated");
    assert!(
        r["environment"]["tools"]["git"]
            .as_str()
            .unwrap()
            .starts_with("git version "),
        "{}",
        r["environment"]["tools"]
    );

    // Budgets: the configuration and the code have their own, counted in the total.
    let budgets: Vec<(&str, u64)> = r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["verdict"], "pass", "{b}");
            (b["name"].as_str().unwrap(), b["limit_ms"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        budgets,
        [
            ("database_restore", 900_000),
            ("app_restart", 300_000),
            ("verification", 600_000),
            ("config_restore", 120_000),
            ("code_rollback", 300_000),
            ("total", 1_800_000),
        ]
    );
    let used = |name: &str| {
        r["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap()["used_ms"]
            .as_u64()
            .unwrap()
    };
    assert!(used("config_restore") >= run.phase("config_restore")["duration_ms"].as_u64().unwrap());
    assert!(used("code_rollback") >= run.phase("code_rollback")["duration_ms"].as_u64().unwrap());

    // The configuration: the newest backup before the disaster, every check made.
    let c = &r["config"];
    assert_eq!(c["files"], json!([".env", "wg0.conf"]));
    assert_eq!(
        c["required_keys"],
        json!(["DATABASE_URL", "API_KEY", "VPN_PEER"])
    );
    let checks: Vec<&str> = c["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for want in [
        "2 files' SHA-256 match the manifest",
        "wg0.conf parses as a WireGuard config",
        "required key DATABASE_URL is present and non-empty",
        "required key API_KEY is present and non-empty",
        "required key VPN_PEER is present and non-empty",
    ] {
        assert!(checks.contains(&want), "no check {want:?} in {checks:?}");
    }
    let name = c["backup"].as_str().unwrap();
    let archive = run
        .out
        .path()
        .join("backup/config")
        .join(format!("{name}.tar.age"));
    let bytes = std::fs::read(&archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    assert_eq!(c["sha256"], pgdrill::digest::sha256_hex(&bytes));
    assert!(
        bytes.starts_with(b"age-encryption.org/v1"),
        "not an age file"
    );

    // The code: from the bad release deployed at the disaster back to the good one, which
    // the restarted app reports with the same commit.
    let rb = &r["rollback"];
    assert_eq!(rb["from"]["tag"], "v1.1.0", "{rb}");
    assert_eq!(rb["to"]["tag"], "v1.0.0", "{rb}");
    let to_commit = rb["to"]["commit"].as_str().unwrap();
    assert!(
        to_commit.len() == 40 && to_commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{rb}"
    );
    assert_ne!(rb["from"]["commit"], rb["to"]["commit"]);
    assert_eq!(rb["reported"]["release"], "v1.0.0", "{rb}");
    assert_eq!(rb["reported"]["commit"], to_commit, "{rb}");
    assert_eq!(rb["reported"]["source"], "the version endpoint");
    assert!(rb["marker"].as_str().unwrap().ends_with("deployment.json"));
    assert!(r["disaster"]["detail"]
        .as_str()
        .unwrap()
        .contains("a bad release was deployed: v1.1.0"));

    // The RPO, against the ledger: commits after the newest backup's snapshot were lost.
    let rpo = &r["rpo"];
    let n = |k: &str| {
        rpo[k]
            .as_u64()
            .unwrap_or_else(|| panic!("rpo.{k} missing: {rpo}"))
    };
    assert!(
        r["disaster"]["detail"]
            .as_str()
            .unwrap()
            .contains("--disaster-at random"),
        "{}",
        r["disaster"]
    );
    assert_eq!(n("backups_taken"), 2);
    assert_eq!(n("backup_interval_ms"), 2_000);
    assert_eq!(n("objective_ms"), 900_000);
    assert_eq!(n("rate_per_sec"), 50);
    assert_eq!(rpo["ledger"], "pgdrill.rpo_ledger");
    assert!(n("lost_commits") > 0, "{rpo}");
    assert_eq!(
        n("lost_commits"),
        n("acknowledged_commits") - n("restored_commits"),
        "{rpo}"
    );
    assert_eq!(
        rpo["lost_ids"],
        json!({"first": n("restored_commits") + 1, "last": n("acknowledged_commits")})
    );
    let newest = time(&rpo["newest_restored_at"]);
    let disaster = time(&rpo["disaster_at"]);
    let snapshot_returned = time(&rpo["snapshot_taken"][1]);
    assert!(snapshot_returned <= disaster, "{rpo}");
    let window_us = (disaster - newest).num_microseconds().unwrap();
    let achieved_us = n("achieved_ms") as i64 * 1000;
    assert!(n("achieved_ms") > 0, "{rpo}");
    assert!(
        achieved_us <= window_us && window_us - achieved_us < 1000,
        "achieved_ms {} against {window_us} µs between the newest restored commit and the disaster",
        n("achieved_ms")
    );
    assert_eq!(
        n("worst_case_ms"),
        n("backup_interval_ms") + n("backup_duration_ms")
    );
    assert_eq!(rpo["worst_case_fits"], true);
    assert_eq!(rpo["verdict"], "pass");
    // The history line carries the scope and the RPO, and `pgdrill history` shows them.
    let history = run.out.path().join("history.ndjson");
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(&history).unwrap().trim()).unwrap();
    assert_eq!(line["scope"], "full");
    for k in [
        "objective_ms",
        "achieved_ms",
        "lost_commits",
        "worst_case_ms",
    ] {
        assert_eq!(line["rpo"][k], rpo[k], "{k}: {line}");
    }
    assert_eq!(line["rpo"]["verdict"], "pass");
    let shown = Pgdrill::new(["history", "--history", history.to_str().unwrap()]).run();
    assert_eq!(shown.code(), 0, "{}", shown.text());
    assert!(
        shown.text().contains(&format!(
            "rpo: 1 of 1 full drills within 15m; data lost min {}",
            pgdrill::duration::human_ms(n("achieved_ms"))
        )),
        "{}",
        shown.text()
    );
    // The restored ledger holds exactly the restored commits, as compared in the integrity
    // snapshot, and it is the newer of the two backups that was restored.
    let ledger = r["integrity"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "pgdrill.rpo_ledger")
        .expect("the ledger in the integrity section");
    assert_eq!(ledger["rows_after"].as_u64(), Some(n("restored_commits")));
    let mut dumps: Vec<String> = files_under(&run.out.path().join("backup"))
        .iter()
        .map(|f| f.display().to_string())
        .filter(|f| f.ends_with(".dump"))
        .collect();
    dumps.sort();
    assert_eq!(dumps.len(), 2, "{dumps:?}");
    assert_eq!(r["backup"]["file"], dumps[1].as_str());

    // The RPO's line in the summary, report.md and junit.xml.
    assert!(
        run.text().contains("rpo: pass (data-loss window"),
        "{}",
        run.text()
    );
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    assert!(md.contains("data-loss window"), "{md}");
    assert!(md.contains("## Configuration restored") && md.contains("## Code rolled back"));
    let junit = std::fs::read_to_string(run.out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"name="rpo" classname="verification""#),
        "{junit}"
    );
    assert!(
        junit.contains(r#"name="objective" classname="rpo""#),
        "{junit}"
    );
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    for section in [
        "Configuration restored",
        "Code rolled back",
        "Recovery point",
    ] {
        assert!(html.contains(section), "report.html lacks {section}");
    }
    assert!(run
        .text()
        .contains("code: v1.1.0 rolled back to v1.0.0, the app reports v1.0.0"));
    assert_no_generated_secret(&run);
    assert_nothing_left(r);
}

/// The library API drills the full scope as the CLI does.
#[tokio::test(flavor = "multi_thread")]
async fn the_library_builder_runs_a_full_drill() {
    let out = tempfile::tempdir().unwrap();
    let report = pgdrill::Drill::builder()
        .backend(pgdrill::BackendKind::Native)
        .rows(300)
        .scope(pgdrill::Scope::Full)
        .sample_app(crate::support::sample_app())
        .rpo(std::time::Duration::from_secs(60))
        .out(out.path())
        .run()
        .await
        .expect("the drill runs");
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.scope.map(|s| s.as_str()), Some("full"));
    let rollback = report.rollback.as_ref().expect("the rollback section");
    assert_eq!(rollback.to.tag, "v1.0.0");
    let rpo = report.rpo.as_ref().expect("the rpo section");
    assert_eq!(rpo.objective_ms, 60_000);
}
