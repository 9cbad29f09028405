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

/// The sample app's /health in each format applications use (SAMPLE_APP_HEALTH_FORMAT, from
/// its real checks), read by `--app-health-format auto` or the format named: the drill
/// passes, and the evidence names the format and the checks that passed.
#[rstest]
#[case::ietf("ietf", "auto", "IETF health+json")]
#[case::spring("spring", "auto", "Spring Boot actuator")]
#[case::aspnet("aspnet", "auto", "ASP.NET Core health checks")]
#[case::plain("plain", "auto", "plain text, status ok")]
#[case::adhoc("adhoc", "auto", "ad-hoc JSON")]
#[case::spring_forced("spring", "spring", "Spring Boot actuator")]
#[case::json_path("adhoc", "json-path=$.healthy", "JSON at $.healthy, status true")]
fn a_drill_reads_the_health_of_each_format(
    #[case] served: &str,
    #[case] read_as: &str,
    #[case] named: &str,
) {
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--observe",
        "1s",
        "--app-env",
        &format!("SAMPLE_APP_HEALTH_FORMAT={served}"),
        "--app-health-format",
        read_as,
    ])
    .run();
    let r = run.assert_pass();
    let health = &r["checklist"][5];
    let evidence = health["evidence"].as_str().unwrap();
    assert_eq!(health["status"], "pass", "{evidence}");
    assert!(evidence.contains(named), "{evidence}");
    // Every format but the plain `ok` and a json-path lists the checks it read.
    if read_as == "auto" && served != "plain" {
        assert!(evidence.contains("passed: "), "{evidence}");
        assert!(evidence.contains("worker"), "{evidence}");
    }
    assert!(
        !evidence.contains("failed:") && !evidence.contains("warned:"),
        "{evidence}"
    );
    assert_eq!(r["checklist"][8]["status"], "pass", "{}", r["checklist"][8]);
    assert!(run.phase("app_healthy")["detail"]
        .as_str()
        .unwrap()
        .contains(named.split(',').next().unwrap()));
}

/// A failing check in each format fails the restart, naming the check and its output.
#[rstest]
#[case::ietf("ietf", "IETF health+json, status fail")]
#[case::spring("spring", "Spring Boot actuator, status DOWN")]
#[case::aspnet("aspnet", "ASP.NET Core health checks, status Unhealthy")]
#[case::plain("plain", "plain text, status healthz check failed")]
#[case::adhoc("adhoc", "ad-hoc JSON, status false")]
fn a_failing_check_in_each_format_fails_the_drill_naming_it(
    #[case] served: &str,
    #[case] status: &str,
) {
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--observe",
        "1s",
        "--budget-app",
        "3s",
        "--app-env",
        &format!("SAMPLE_APP_HEALTH_FORMAT={served}"),
        "--app-restart-env",
        "SAMPLE_APP_FAULT=never-healthy",
    ])
    .run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(
        r["failure"]["class"], "checklist_failed",
        "{}",
        r["failure"]
    );
    assert_eq!(r["failure"]["phase"], "app_healthy", "{}", r["failure"]);
    let msg = r["failure"]["message"].as_str().unwrap();
    assert!(msg.contains(status), "{msg}");
    assert!(
        msg.contains("failed: fault (SAMPLE_APP_FAULT=never-healthy is switched on)"),
        "the failure names the check: {msg}"
    );
    assert_eq!(run.phase("compare")["status"], "pass");
}

/// IETF warn and ASP.NET Degraded are healthy with a warning: the drill passes and the
/// evidence shows what warned. (The sample app's own DEGRADED comes with HTTP 503 and fails:
/// `an_app_fault_after_restore_fails_the_drill_naming_the_item::case_3_degraded`.)
#[rstest]
#[case::ietf("ietf", "status warn (warn)")]
#[case::aspnet("aspnet", "status Degraded (warn)")]
fn a_warning_passes_and_is_shown(#[case] served: &str, #[case] status: &str) {
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--observe",
        "1s",
        "--app-env",
        &format!("SAMPLE_APP_HEALTH_FORMAT={served}"),
        "--app-restart-env",
        "SAMPLE_APP_FAULT=degraded",
    ])
    .run();
    let r = run.assert_pass();
    let evidence = r["checklist"][5]["evidence"].as_str().unwrap();
    assert!(evidence.starts_with("with warnings: "), "{evidence}");
    assert!(evidence.contains(status), "{evidence}");
    assert!(
        evidence.contains("warned: fault (SAMPLE_APP_FAULT=degraded is switched on)"),
        "{evidence}"
    );
    let system = r["checklist"][8]["evidence"].as_str().unwrap();
    assert!(system.starts_with("with a warning: "), "{system}");
}
