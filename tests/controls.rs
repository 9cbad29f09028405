//! Negative controls: every drill proves it can fail (issue 19 §2). Each control damages a
//! copy (a clone of the restored database, a streamed view of the dump, a half-written copy of
//! the manifest, a backup dated past the RPO) and the drill's own check must fail it.

use serde_json::Value;

use crate::support::{leftovers, Pgdrill};

/// The detection section's controls as (name, outcome).
fn outcomes(r: &Value) -> Vec<(String, String)> {
    r["detection"]["controls"]
        .as_array()
        .expect("detection.controls")
        .iter()
        .map(|c| {
            (
                c["control"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn control<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["detection"]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["control"] == name)
        .unwrap_or_else(|| panic!("no control {name}: {}", r["detection"]))
}

#[test]
fn a_default_drill_detects_every_auto_control_apart_from_the_budgets() {
    let run = Pgdrill::native(Vec::<String>::new()).run();
    let r = run.assert_pass();
    let d = &r["detection"];
    assert_eq!(d["mode"], "auto");
    assert_eq!(
        outcomes(r),
        [
            ("truncated".into(), "detected".into()),
            ("manifest_unreadable".into(), "detected".into()),
            ("stale_backup".into(), "detected".into()),
        ],
        "{d:#}"
    );
    assert_eq!(
        (d["run"].as_u64(), d["detected"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(d["coverage"].as_f64(), Some(1.0));
    for (name, class) in [
        ("truncated", "backup_unusable"),
        ("manifest_unreadable", "backup_unusable"),
        ("stale_backup", "rpo_exceeded"),
    ] {
        let c = control(r, name);
        assert_eq!(
            (&c["expected"], &c["produced"]),
            (&class.into(), &class.into()),
            "{c:#}"
        );
    }
    // Counted apart: the phase has no budget, and the total is the budgets' sum without it.
    let phase = run.phase("negative_controls");
    assert_eq!(phase["status"], "pass", "{phase}");
    assert!(phase["budget"].is_null(), "{phase}");
    let budgets = r["budgets"].as_array().unwrap();
    let used = |n: &str| {
        budgets.iter().find(|b| b["name"] == n).unwrap()["used_ms"]
            .as_u64()
            .unwrap()
    };
    let parts: u64 = ["database_restore", "app_restart", "verification"]
        .iter()
        .map(|n| used(n))
        .sum();
    assert_eq!(used("total"), parts);
    // The real backup is untouched: its SHA-256 is still the manifest's, nothing beside it.
    let dump = run.dump();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dump.with_extension("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["backup"]["sha256"], manifest["sha256"]);
    assert_eq!(
        manifest["size_bytes"].as_u64(),
        Some(std::fs::metadata(&dump).unwrap().len())
    );
    // Every rendering shows the section.
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    assert!(md.contains("## Detection: pass"), "{md}");
    let junit = std::fs::read_to_string(run.out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testcase name="manifest_unreadable" classname="controls""#),
        "{junit}"
    );
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    assert!(html.contains("id=\"h-detection\""));
    assert!(run.text().contains("detection: pass"), "{}", run.text());
    assert_eq!(
        leftovers(r["drill_id"].as_str().unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn negative_controls_none_runs_none_and_says_so() {
    let run = Pgdrill::native(["--negative-controls", "none"]).run();
    let r = run.assert_pass();
    let d = &r["detection"];
    assert_eq!(d["mode"], "none");
    assert_eq!(d["controls"], serde_json::json!([]));
    assert_eq!(d["run"], 0);
    assert!(d["coverage"].is_null());
    assert!(
        d["note"]
            .as_str()
            .unwrap()
            .contains("--negative-controls none"),
        "{d}"
    );
    assert!(r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["name"] != "negative_controls"));
    assert!(run.text().contains("detection: not run"), "{}", run.text());
}

#[test]
fn all_controls_damage_clones_and_views_and_each_check_names_what_it_caught() {
    let run = Pgdrill::native(["--negative-controls", "all"]).run();
    let r = run.assert_pass();
    assert_eq!(
        outcomes(r)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        [
            "row_lost",
            "value_changed",
            "byte_flipped",
            "truncated",
            "manifest_unreadable",
            "stale_backup"
        ]
    );
    assert!(
        outcomes(r).iter().all(|(_, o)| o == "detected"),
        "{:#}",
        r["detection"]
    );
    for name in ["row_lost", "value_changed"] {
        let c = control(r, name);
        assert_eq!(c["produced"], "integrity_mismatch", "{c:#}");
        let injected = c["injected"].as_str().unwrap();
        let table = injected
            .split_whitespace()
            .find(|w| w.starts_with("public."))
            .unwrap_or_else(|| panic!("{injected}"));
        assert!(c["detail"].as_str().unwrap().contains(table), "{c:#}");
    }
    assert!(control(r, "byte_flipped")["detail"]
        .as_str()
        .unwrap()
        .contains("SHA-256"));
    // The real restore was compared and passed before any control ran.
    assert_eq!(r["integrity"]["verdict"], "pass");
}

#[test]
fn a_check_that_cannot_fail_fails_the_drill_with_detection_failed() {
    // The test hook wires the comparison to the restored data itself: the real compare passes
    // (it always would), and only the controls can tell.
    let run = Pgdrill::native(["--negative-controls", "all", "--fault", "blind-compare"]).run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["verdict"], "fail");
    assert_eq!(
        r["failure"]["phase"], "negative_controls",
        "{}",
        r["failure"]
    );
    assert_eq!(r["failure"]["class"], "detection_failed");
    let msg = r["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("row_lost") && msg.contains("value_changed"),
        "{msg}"
    );
    assert_eq!(run.phase("compare")["status"], "pass");
    for name in ["row_lost", "value_changed"] {
        let c = control(r, name);
        assert_eq!(c["outcome"], "missed", "{c:#}");
        assert!(c["produced"].is_null(), "{c:#}");
    }
    assert_eq!(control(r, "truncated")["outcome"], "detected");
    assert!(r["detection"]["coverage"].as_f64().unwrap() < 1.0);
    let junit = std::fs::read_to_string(run.out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testcase name="row_lost" classname="controls""#),
        "{junit}"
    );
    assert_eq!(
        leftovers(r["drill_id"].as_str().unwrap()),
        Vec::<String>::new()
    );
}
