//! The application under drill: stopped before the restore, restarted after it, judged by the
//! strategy's 10-item checklist. Faults come through the restarted app's own configuration.

use rstest::rstest;

use crate::support::{leftovers, redact, Pgdrill};

#[test]
fn full_drill_with_the_sample_app_passes_all_ten_items() {
    let run = Pgdrill::drill(["--backend", "native", "--seed", "5"]).run();
    let r = run.assert_pass();
    let checklist = r["checklist"].as_array().unwrap();
    assert_eq!(checklist.len(), 10);
    assert!(
        checklist.iter().all(|c| c["status"] == "pass"),
        "{checklist:#?}"
    );
    assert!(run.phase("stop_app")["detail"]
        .as_str()
        .unwrap()
        .contains("stopped"));
    // The app wrote during the backup; the exact comparison must still hold.
    assert!(run.phase("app_start")["detail"]
        .as_str()
        .unwrap()
        .contains("keeps writing"));
    let items: Vec<serde_json::Value> = checklist
        .iter()
        .map(|c| serde_json::json!({"item": c["item"], "status": c["status"], "evidence": redact(c["evidence"].as_str().unwrap())}))
        .collect();
    insta::assert_json_snapshot!("checklist_sample_app_pass", items);
    assert!(leftovers(r["drill_id"].as_str().unwrap()).is_empty());
}

#[rstest]
#[case::missing_api_key(&["--app-restart-env", "API_KEY="], "start_app", "API_KEY")]
#[case::never_healthy(&["--app-restart-env", "SAMPLE_APP_FAULT=never-healthy", "--budget-app", "3s"], "app_healthy", "UNHEALTHY")]
#[case::degraded(&["--app-restart-env", "SAMPLE_APP_FAULT=degraded", "--budget-app", "3s"], "app_healthy", "DEGRADED")]
#[case::exits(&["--app-restart-env", "SAMPLE_APP_FAULT=exit"], "", "Application health checks pass")]
#[case::error_in_log(&["--app-restart-env", "SAMPLE_APP_FAULT=error-log"], "checklist", "No errors in logs")]
#[case::worker_stops(&["--app-restart-env", "SAMPLE_APP_FAULT=worker-stops"], "checklist", "Background workers running")]
fn an_app_fault_after_restore_fails_the_drill_naming_the_item(
    #[case] args: &[&str],
    #[case] phase: &str,
    #[case] names: &str,
) {
    let run = Pgdrill::drill(["--backend", "native"].iter().chain(args).copied()).run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["verdict"], "fail");
    assert_eq!(
        r["failure"]["class"], "checklist_failed",
        "{}",
        r["failure"]
    );
    if !phase.is_empty() {
        assert_eq!(r["failure"]["phase"], phase, "{}", r["failure"]);
    }
    let msg = r["failure"]["message"].as_str().unwrap();
    assert!(msg.contains(names), "failure must name {names}: {msg}");
    // The data restore itself was fine: the app is what failed.
    assert_eq!(run.phase("compare")["status"], "pass");
    let id = r["drill_id"].as_str().unwrap();
    assert!(leftovers(id).is_empty(), "{:?}", leftovers(id));
}

#[test]
fn a_custom_app_is_started_and_judged_by_its_health_url() {
    // The user's own application, described by commands: here the sample binary started by a
    // shell command, as a user's systemd unit or script would.
    let bin = crate::support::sample_app().display();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = format!("API_KEY=k-custom VPN_PEER=p LISTEN_ADDR=127.0.0.1:{port} exec {bin}");
    let health = format!("http://127.0.0.1:{port}/health");
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--app",
        "custom",
        "--app-start",
        &start,
        "--app-health-url",
        &health,
        "--app-metrics-url",
        &metrics,
    ])
    .run();
    let r = run.assert_pass();
    let checklist = r["checklist"].as_array().unwrap();
    assert_eq!(checklist[5]["status"], "pass", "{}", checklist[5]);
    assert_eq!(checklist[9]["status"], "pass", "{}", checklist[9]);
}
