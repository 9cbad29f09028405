//! Environment faults on the docker backend: exit code 3, a message naming the cause and
//! the fix, and nothing left behind.

use rstest::rstest;
use serde_json::Value;

use super::{
    assert_no_docker_leftovers, docker_or_skip, drill_id, image_present, Sweep, EXITING_IMAGE,
};
use crate::support::Pgdrill;

/// Runs a drill expected to stop on an environment fault: exit 3, a message containing
/// every one of `needles`, nothing left behind.
fn environment_fault(extra: &[&str], env: &[(&str, &str)], needles: &[&str]) -> Value {
    let mut d = Pgdrill::drill(extra.iter().copied());
    for (k, v) in env {
        d = d.env(k, v);
    }
    let run = d.run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(run.code(), 3, "{}", run.text());
    assert_eq!(r["verdict"], "error");
    let message = r["failure"]["message"].as_str().unwrap().to_string();
    for n in needles {
        assert!(message.contains(n), "message lacks {n:?}: {message}");
        assert!(run.text().contains(n), "stderr lacks {n:?}: {}", run.text());
    }
    assert_no_docker_leftovers(&id);
    r
}

/// Faults found while the servers are provisioned: exit 3, a message naming the cause and
/// the fix, no data made, nothing left behind.
#[rstest]
#[case::postgres_image_cannot_be_had(
    ("PGDRILL_POSTGRES_IMAGE", "pgdrill/does-not-exist:1"),
    &["image `pgdrill/does-not-exist:1` is not available", "scripts/build-images.sh"]
)]
#[case::app_image_missing(
    ("PGDRILL_APP_IMAGE", "pgdrill/no-such-app:1"),
    &["application image `pgdrill/no-such-app:1` is not available", "unset PGDRILL_APP_IMAGE", "--app none"]
)]
#[case::container_not_ready_in_time(
    ("PGDRILL_DOCKER_READY_TIMEOUT", "300ms"),
    &["did not answer a query on 127.0.0.1:", "within 300 ms", "PGDRILL_DOCKER_READY_TIMEOUT"]
)]
fn a_fault_at_provision_is_an_environment_error(
    #[case] env: (&str, &str),
    #[case] needles: &[&str],
) {
    if !docker_or_skip(&format!(
        "a_fault_at_provision_is_an_environment_error ({})",
        env.0
    )) {
        return;
    }
    let r = environment_fault(&["--backend", "docker"], &[env], needles);
    assert_eq!(r["failure"]["phase"], "provision");
}

#[test]
fn a_container_that_exits_during_start_up_is_an_environment_error() {
    if !docker_or_skip("a_container_that_exits_during_start_up_is_an_environment_error") {
        return;
    }
    if !image_present(EXITING_IMAGE) {
        eprintln!("skipped: {EXITING_IMAGE} (built by scripts/build-images.sh) is not present");
        return;
    }
    let r = environment_fault(
        &["--backend", "docker"],
        &[("PGDRILL_POSTGRES_IMAGE", EXITING_IMAGE)],
        &["exited with code 0 during start-up"],
    );
    assert_eq!(r["failure"]["phase"], "provision");
}

#[test]
fn a_port_clash_is_an_environment_error() {
    if !docker_or_skip("a_port_clash_is_an_environment_error") {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    environment_fault(
        &["--backend", "docker"],
        &[("PGDRILL_DOCKER_PORT", &port)],
        &[
            "port clash",
            &format!("127.0.0.1:{port}"),
            "PGDRILL_DOCKER_PORT",
        ],
    );
    drop(taken);
}

#[test]
fn no_docker_engine_is_an_environment_error() {
    // Needs no engine at all: the point is that there is none at this address.
    let run = Pgdrill::drill(["--backend", "docker"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    assert!(run.text().contains("no Docker engine"), "{}", run.text());
    assert!(run.text().contains("--backend native"), "{}", run.text());
}
