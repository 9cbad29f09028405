//! The docker backend: full drills in containers, the same integrity snapshot as the native
//! backend, server loss that really removes a container, environment faults as exit code 3,
//! and never a container or network left behind.
//!
//! Without a Docker engine (or the PostgreSQL image) these tests print `skipped: …` and
//! pass, unless PGDRILL_REQUIRE_DOCKER=1, which makes them fail instead.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rstest::rstest;
use serde_json::Value;

use crate::support::{assert_mentions, leftovers, read_report, Pgdrill, CADENCE};

const DEFAULT_IMAGE: &str = "postgres:15";
const LOCAL_IMAGE: &str = "pgdrill/postgres:15-local";
/// An image without PostgreSQL whose default command exits at once.
const EXITING_IMAGE: &str = "pgdrill/debian-base:bookworm-local";

fn docker(args: &[&str]) -> Option<std::process::Output> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
}

fn docker_ok(args: &[&str]) -> bool {
    docker(args).is_some_and(|o| o.status.success())
}

fn image_present(image: &str) -> bool {
    docker_ok(&["image", "inspect", "--format", "{{.Id}}", image])
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string()
}

/// Why the docker tests cannot run here, if they cannot: no engine, or no PostgreSQL image
/// (present, pullable, or buildable with scripts/build-images.sh).
fn unavailable() -> &'static Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        match docker(&["info", "--format", "{{.ServerVersion}}"]) {
            None => return Some("no Docker engine (the docker command is not installed)".into()),
            Some(o) if !o.status.success() => {
                return Some(format!(
                    "no Docker engine (docker info: {})",
                    first_line(&o.stderr)
                ))
            }
            Some(_) => {}
        }
        let wanted =
            std::env::var("PGDRILL_POSTGRES_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into());
        if image_present(&wanted)
            || image_present(LOCAL_IMAGE)
            || docker_ok(&["pull", "-q", &wanted])
        {
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-images.sh");
        let built = Command::new(&script)
            .arg("--postgres-only")
            .stdin(Stdio::null())
            .output();
        match built {
            Ok(o) if o.status.success() && image_present(LOCAL_IMAGE) => None,
            Ok(o) => Some(format!(
                "no PostgreSQL image: {wanted} is missing and cannot be pulled, and {} failed: {}",
                script.display(),
                first_line(&o.stderr)
            )),
            Err(e) => Some(format!(
                "no PostgreSQL image, and {} cannot run: {e}",
                script.display()
            )),
        }
    })
}

/// True when the docker tests can run; otherwise says why and skips the test, or fails it
/// when PGDRILL_REQUIRE_DOCKER=1 (CI).
fn docker_or_skip(test: &str) -> bool {
    let Some(why) = unavailable() else {
        return true;
    };
    if std::env::var("PGDRILL_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!("PGDRILL_REQUIRE_DOCKER=1 but {why}");
    }
    eprintln!("skipped: {test}: {why}");
    false
}

const APP_IMAGE: &str = "pgdrill/sample-app:local";

/// True when the sample app's image is there (built now when it is not); otherwise like
/// [`docker_or_skip`].
fn app_image_or_skip(test: &str) -> bool {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    let why = WHY.get_or_init(|| {
        if image_present(APP_IMAGE) {
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-images.sh");
        let built = Command::new(&script)
            .arg("--app-bin")
            .arg(crate::support::sample_app())
            .stdin(Stdio::null())
            .output();
        match built {
            Ok(o) if o.status.success() && image_present(APP_IMAGE) => None,
            Ok(o) => Some(format!(
                "no {APP_IMAGE}, and {} failed: {}",
                script.display(),
                first_line(&o.stderr)
            )),
            Err(e) => Some(format!(
                "no {APP_IMAGE}, and {} cannot run: {e}",
                script.display()
            )),
        }
    });
    let Some(why) = why else {
        return true;
    };
    if std::env::var("PGDRILL_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!("PGDRILL_REQUIRE_DOCKER=1 but {why}");
    }
    eprintln!("skipped: {test}: {why}");
    false
}

/// Containers and networks carrying the drill's label: must be none after a drill.
fn docker_leftovers(drill_id: &str) -> Vec<String> {
    let filter = format!("label=pgdrill.drill={drill_id}");
    let mut found = Vec::new();
    for (what, args) in [
        (
            "container",
            vec![
                "ps",
                "-a",
                "--filter",
                &filter,
                "--format",
                "{{.ID}} {{.Names}} {{.Status}}",
            ],
        ),
        (
            "network",
            vec![
                "network",
                "ls",
                "--filter",
                &filter,
                "--format",
                "{{.Name}}",
            ],
        ),
    ] {
        let out = docker(&args).expect("docker runs");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| format!("{what} {l}")),
        );
    }
    found
}

/// Removes whatever carries the drill's label when the test ends, passed or not, so a
/// failing assertion does not leak containers into the next run.
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        let filter = format!("label=pgdrill.drill={}", self.0);
        if let Some(o) = docker(&["ps", "-aq", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                docker(&["rm", "-fv", id]);
            }
        }
        if let Some(o) = docker(&["network", "ls", "-q", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                docker(&["network", "rm", id]);
            }
        }
    }
}

fn drill_id(r: &Value) -> String {
    r["drill_id"].as_str().expect("drill_id").to_string()
}

fn phase<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name}"))
}

/// Short container ids named in a phase detail (`docker container <12 hex>`), in order.
fn container_ids(detail: &str) -> Vec<String> {
    detail
        .match_indices("docker container ")
        .map(|(i, m)| {
            detail[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect::<String>()
        })
        .filter(|id| id.len() == 12)
        .collect()
}

fn container_exists(id: &str) -> bool {
    let out = docker(&["ps", "-aq", "--filter", &format!("id={id}")]).expect("docker runs");
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// The integrity snapshot S0 recorded in a drill's manifest: per table (name, rows,
/// fingerprint) and the schema fingerprint.
fn manifest_snapshot(report: &Value) -> (Vec<(String, Value, Value)>, Value) {
    let path = report["backup"]["manifest"]
        .as_str()
        .expect("manifest path");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = &m["snapshot"];
    let tables = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["rows"].clone(),
                t["fingerprint"].clone(),
            )
        })
        .collect();
    (tables, s["schema"]["fingerprint"].clone())
}

fn wait_output(child: std::process::Child, out: &Path) -> (std::process::Output, Value) {
    let output = child.wait_with_output().unwrap();
    let report = read_report(out).unwrap_or_else(|| {
        panic!(
            "no report.json; output:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

#[test]
fn docker_drill_passes_and_matches_the_native_snapshot() {
    if !docker_or_skip("docker_drill_passes_and_matches_the_native_snapshot") {
        return;
    }
    let (docker_child, docker_out) =
        Pgdrill::drill(["--backend", "docker", "--seed", "7", "--app", "none"]).spawn();
    let (native_child, native_out) =
        Pgdrill::drill(["--backend", "native", "--seed", "7", "--app", "none"]).spawn();
    let (output, d) = wait_output(docker_child, docker_out.path());
    let _sweep = Sweep(drill_id(&d));
    let (native_output, n) = wait_output(native_child, native_out.path());
    for (o, r) in [(&output, &d), (&native_output, &n)] {
        assert_eq!(
            (o.status.code(), r["verdict"].as_str()),
            (Some(0), Some("pass")),
            "{} drill failed: {}\n{}",
            r["environment"]["backend"],
            r["failure"],
            String::from_utf8_lossy(&o.stderr)
        );
    }

    assert_eq!(d["environment"]["backend"], "docker");
    let provision = phase(&d, "provision")["detail"].as_str().unwrap();
    assert!(
        provision.starts_with("docker backend (requested): docker container "),
        "{provision}"
    );
    assert!(provision.contains("127.0.0.1:"), "{provision}");
    for tool in ["pg_dump", "pg_restore", "pg_amcheck"] {
        let v = d["environment"]["tools"][tool].as_str().unwrap_or_default();
        assert!(v.contains("(PostgreSQL) 15."), "{tool}: {v}");
    }
    for t in d["integrity"]["tables"].as_array().unwrap() {
        assert_eq!(t["match"], true, "{t}");
    }
    assert_eq!(d["integrity"]["tables"][3]["rows_after"], 300);

    // Same seed, same rows: the same data, byte for byte, whichever backend ran it.
    let (docker_tables, docker_schema) = manifest_snapshot(&d);
    let (native_tables, native_schema) = manifest_snapshot(&n);
    assert_eq!(docker_tables.len(), 5);
    assert_eq!(docker_tables, native_tables);
    assert!(docker_schema.is_string());
    assert_eq!(docker_schema, native_schema);

    // Server loss: the restore ran in a new container, and the old one is gone.
    let source = container_ids(provision);
    let disaster = phase(&d, "disaster")["detail"].as_str().unwrap();
    let ids = container_ids(disaster);
    assert_eq!(source.len(), 1, "{provision}");
    assert_eq!(ids.first(), source.first(), "{disaster}");
    assert_eq!(ids.len(), 2, "{disaster}");
    assert_ne!(
        ids[1], source[0],
        "the restored database must live in a new container"
    );

    let id = drill_id(&d);
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
    assert!(leftovers(&drill_id(&n)).is_empty());
}

/// The default drill on the docker backend: the sample app is a container too, stopped with
/// `docker stop` before the restore and brought back with `docker start` of the same
/// container, which then finds the restored server under the lost one's name.
#[test]
fn server_loss_with_the_app_container_passes_and_keep_leaves_server_and_app() {
    if !docker_or_skip("server_loss_with_the_app_container_passes_and_keep_leaves_server_and_app")
        || !app_image_or_skip(
            "server_loss_with_the_app_container_passes_and_keep_leaves_server_and_app",
        )
    {
        return;
    }
    let run = Pgdrill::drill(["--backend", "docker", "--keep"]).run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let sweep = Sweep(id.clone());
    run.assert_pass();
    let checklist = r["checklist"].as_array().unwrap();
    assert_eq!(checklist.len(), 10);
    assert!(
        checklist.iter().all(|c| c["status"] == "pass"),
        "{checklist:#?}"
    );

    // One app container all along: started against the source, stopped, started again.
    let app_phase = |name: &str| phase(&r, name)["detail"].as_str().unwrap().to_string();
    let started = app_phase("app_start");
    let app = container_ids(&started);
    assert_eq!(app.len(), 1, "{started}");
    assert!(started.contains(APP_IMAGE), "{started}");
    let stopped = app_phase("stop_app");
    assert_eq!(container_ids(&stopped), app, "{stopped}");
    assert!(stopped.contains("docker stop: exit code 0"), "{stopped}");
    let restarted = app_phase("start_app");
    assert_eq!(container_ids(&restarted), app, "{restarted}");
    assert!(
        restarted.contains("docker start of the container stopped before the restore"),
        "{restarted}"
    );
    let budget = r["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "app_restart")
        .unwrap();
    assert_eq!(budget["verdict"], "pass", "{budget}");
    // Its log after the restart is its own output since `docker start`, not the old run's.
    let log = std::fs::read_to_string(run.out.path().join("app/app-after-restore.log")).unwrap();
    assert_eq!(log.matches("listening on").count(), 1, "{log}");
    // The dump was written on this machine, in --out, by pg_dump running in the container.
    assert_eq!(
        run.dump().parent(),
        Some(run.out.path().join("backup").as_path())
    );
    let source = container_ids(phase(&r, "provision")["detail"].as_str().unwrap());
    let target = container_ids(phase(&r, "disaster")["detail"].as_str().unwrap());
    assert_eq!((source.len(), target.len()), (1, 2));
    let (source, target) = (&source[0], &target[1]);
    assert!(
        !container_exists(source),
        "the lost server's container {source} still exists"
    );
    assert!(
        container_exists(target),
        "--keep must leave the restore target {target} running"
    );

    // The restored database lives in the new container, and the printed way in works.
    let out = docker(&[
        "exec",
        target,
        "psql",
        "-U",
        "postgres",
        "-d",
        "pgdrill",
        "-Atc",
        "SELECT count(*) FROM users",
    ])
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "300",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = run.text();
    assert!(
        text.contains("server kept running")
            && text.contains("docker rm -fv pgdrill-")
            && text.contains("docker network rm pgdrill-"),
        "{text}"
    );
    let network = format!("pgdrill-{id}");
    assert!(
        docker_ok(&["network", "inspect", &network]),
        "--keep must leave the network {network}"
    );
    // The app container is kept stopped, with the command that starts it again.
    assert!(
        text.contains(&format!("docker start pgdrill-{id}-app")),
        "{text}"
    );
    let state = docker(&["inspect", "--format", "{{.State.Status}}", &app[0]]).unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "exited");

    drop(sweep);
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
}

/// The user's own application as an image (here the sample app's image, configured like any
/// other image through environment variables): `--backend auto` chooses docker, its URLs are
/// paths on whatever port Docker publishes after each start, and no value of its
/// environment reaches the report.
#[test]
fn a_custom_app_image_runs_as_a_container_and_is_judged_by_its_paths() {
    let test = "a_custom_app_image_runs_as_a_container_and_is_judged_by_its_paths";
    if !docker_or_skip(test) || !app_image_or_skip(test) {
        return;
    }
    let secret = "api-key-that-must-not-leak";
    let run = Pgdrill::drill([
        "--app-image",
        APP_IMAGE,
        "--app-port",
        "8080",
        "--app-health-url",
        "/health",
        "--app-metrics-url",
        "/metrics",
        "--app-env",
        &format!("API_KEY={secret}"),
        "--app-env",
        "VPN_PEER=peer-1",
    ])
    .run();
    let r = run.report().clone();
    let _sweep = Sweep(drill_id(&r));
    run.assert_pass();
    assert_eq!(r["environment"]["backend"], "docker");
    assert!(r["notes"]
        .to_string()
        .contains("--backend auto chose docker"));
    let checklist = r["checklist"].as_array().unwrap();
    assert!(
        checklist.iter().all(|c| c["status"] == "pass"),
        "{checklist:#?}"
    );
    let restarted = phase(&r, "start_app")["detail"].as_str().unwrap();
    assert!(
        restarted.contains("docker start of the container stopped before the restore"),
        "{restarted}"
    );
    for file in ["report.json", "report.md", "junit.xml"] {
        let text = std::fs::read_to_string(run.out.path().join(file)).unwrap();
        assert!(!text.contains(secret), "{file} shows an --app-env value");
    }
    assert!(!run.text().contains(secret));
    assert!(
        docker_leftovers(&drill_id(&r)).is_empty(),
        "{:?}",
        docker_leftovers(&drill_id(&r))
    );
}

/// A configuration restored with a fault: the app container is created anew (docker start
/// cannot change its environment), fails its health check within the budget, and the
/// failed drill leaves no container behind.
#[test]
fn an_app_container_restarted_with_a_fault_fails_the_drill_and_leaves_nothing() {
    let test = "an_app_container_restarted_with_a_fault_fails_the_drill_and_leaves_nothing";
    if !docker_or_skip(test) || !app_image_or_skip(test) {
        return;
    }
    let run = Pgdrill::drill([
        "--backend",
        "docker",
        "--disaster",
        "drop-db",
        "--app-restart-env",
        "SAMPLE_APP_FAULT=degraded",
        "--budget-app",
        "3s",
    ])
    .run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(run.code(), 1, "{}", run.text());
    assert_eq!(r["failure"]["phase"], "app_healthy", "{}", r["failure"]);
    assert_eq!(r["failure"]["class"], "checklist_failed");
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("DEGRADED"),
        "{}",
        r["failure"]
    );
    let restarted = phase(&r, "start_app")["detail"].as_str().unwrap();
    assert!(restarted.contains("a new container"), "{restarted}");
    let first = container_ids(phase(&r, "app_start")["detail"].as_str().unwrap());
    assert_ne!(container_ids(restarted), first, "{restarted}");
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
}

#[test]
fn a_full_drill_on_docker_restores_config_and_code_into_a_new_app_container() {
    let test = "a_full_drill_on_docker_restores_config_and_code_into_a_new_app_container";
    if !docker_or_skip(test) || !app_image_or_skip(test) {
        return;
    }
    let full = ["--backend", "docker", "--scope", "full", "--observe", "1s"];
    let run = Pgdrill::drill(full.iter().chain(CADENCE).copied()).run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(run.code(), 0, "{}", run.text());
    // The container read the restored .env (copied into its configuration file) and the
    // rolled-back release (copied in): it reports v1.0.0, not the bad v1.1.0.
    assert_eq!(r["rollback"]["from"]["tag"], "v1.1.0", "{}", r["rollback"]);
    assert_eq!(r["rollback"]["reported"]["release"], "v1.0.0");
    assert_eq!(
        r["rollback"]["reported"]["commit"],
        r["rollback"]["to"]["commit"]
    );
    assert_eq!(phase(&r, "app_version")["status"], "pass");
    let restarted = phase(&r, "start_app")["detail"].as_str().unwrap();
    assert!(restarted.contains("a new container"), "{restarted}");
    assert_ne!(
        container_ids(restarted),
        container_ids(phase(&r, "app_start")["detail"].as_str().unwrap())
    );
    assert!(
        r["rpo"]["lost_commits"].as_u64().unwrap() > 0,
        "{}",
        r["rpo"]
    );
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
}

#[test]
fn a_failing_drop_db_drill_leaves_nothing() {
    if !docker_or_skip("a_failing_drop_db_drill_leaves_nothing") {
        return;
    }
    let run = Pgdrill::drill([
        "--backend",
        "docker",
        "--disaster",
        "drop-db",
        "--tamper-sql",
        "UPDATE users SET full_name = 'tampered' WHERE id = 2",
    ])
    .run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(run.code(), 1, "{}", run.text());
    assert_eq!(
        r["failure"]["class"], "integrity_mismatch",
        "{}",
        r["failure"]
    );
    // drop-db: everything up to the restore passed inside the one running container.
    for p in [
        "provision",
        "seed",
        "backup",
        "disaster",
        "precheck",
        "roles",
        "createdb",
        "pg_restore",
        "analyze",
    ] {
        assert_eq!(
            phase(&r, p)["status"],
            "pass",
            "{p}: {}",
            phase(&r, p)["detail"]
        );
    }
    assert!(
        r["disaster"]["detail"]
            .as_str()
            .unwrap()
            .contains("dropped database"),
        "{}",
        r["disaster"]
    );
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
}

#[test]
fn ctrl_c_during_the_backup_removes_every_container() {
    if !docker_or_skip("ctrl_c_during_the_backup_removes_every_container") {
        return;
    }
    // As a terminal sends Ctrl-C: SIGINT to the whole foreground process group, so pgdrill
    // and any program it runs receive it at once.
    let out = tempfile::Builder::new()
        .prefix("pgdrill-test-out-")
        .tempdir()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args([
            "drill",
            "--backend",
            "docker",
            "--rows",
            "20000",
            "--jobs",
            "2",
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.path().join("backup").exists() && started.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        out.path().join("backup").exists(),
        "the drill never reached its backup"
    );
    std::thread::sleep(Duration::from_millis(150));
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let r = read_report(out.path()).expect("an interrupted drill still writes its report");
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(status.code(), Some(3), "{}", r["failure"]);
    assert_eq!(r["verdict"], "error");
    assert!(
        r["failure"]["message"].as_str().unwrap().contains("SIGINT"),
        "{}",
        r["failure"]
    );
    // pg_dump was running in the container (docker exec) when the signal came.
    assert_eq!(r["failure"]["phase"], "backup", "{}", r["failure"]);
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
}

#[test]
fn sigterm_while_the_container_starts_removes_it() {
    if !docker_or_skip("sigterm_while_the_container_starts_removes_it") {
        return;
    }
    let sources = || -> Vec<String> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            "label=pgdrill.role=source",
            "--format",
            "{{.ID}} {{.Label \"pgdrill.drill\"}}",
        ])
        .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let before = sources();
    let (mut child, out_dir) = Pgdrill::drill(["--backend", "docker"]).spawn();
    // Any new source container; a concurrent test's would only change the timing.
    let started = Instant::now();
    let seen = loop {
        if let Some(new) = sources().into_iter().find(|s| !before.contains(s)) {
            break new;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no container appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let r = read_report(out_dir.path()).expect("an interrupted drill still writes its report");
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(status.code(), Some(3), "{}", r["failure"]);
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("SIGTERM"),
        "{}",
        r["failure"]
    );
    if seen.ends_with(&id) {
        assert_eq!(
            r["failure"]["phase"], "provision",
            "the signal came while the container started"
        );
    }
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
}

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
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
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
    &["did not answer a query on 127.0.0.1:", "within 300ms", "PGDRILL_DOCKER_READY_TIMEOUT"]
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

#[test]
fn auto_picks_docker_without_postgres_programs_and_dumps_a_live_source_with_the_image() {
    if !docker_or_skip(
        "auto_picks_docker_without_postgres_programs_and_dumps_a_live_source_with_the_image",
    ) {
        return;
    }
    // A live source (a native server started here), reached from a one-off container on the
    // host network, since this PATH offers docker and nothing of PostgreSQL.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = pgdrill::env::native::NativeBackend::discover("test-docker-auto").unwrap();
    let server = rt.block_on(backend.provision("external")).unwrap();
    let admin = server.endpoint.clone();
    rt.block_on(async {
        let c = admin.connect().await.unwrap();
        c.batch_execute("CREATE DATABASE shop").await.unwrap();
        let c = admin.with_db("shop").connect().await.unwrap();
        c.batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 120) g;")
            .await
            .unwrap();
    });
    let dsn = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/shop",
        admin.password().unwrap(),
        admin.port
    );
    let bin = tempfile::tempdir().unwrap();
    let docker_bin = which("docker").expect("docker on PATH");
    std::os::unix::fs::symlink(docker_bin, bin.path().join("docker")).unwrap();

    let d = Pgdrill::new(["drill", "--source-dsn", &dsn, "--jobs", "2"])
        .env("PATH", &bin.path().display().to_string())
        .env("PGDRILL_PG_BINDIR", "/nonexistent");
    let out = d.out_dir().display().to_string();
    let run = d.push_arg("--out").push_arg(out).run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    run.assert_pass();
    let provision = phase(&r, "provision")["detail"].as_str().unwrap();
    assert!(
        provision.starts_with("docker backend (chosen by --backend auto)"),
        "{provision}"
    );
    assert_eq!(r["integrity"]["tables"][0]["rows_after"], 120);
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
    rt.block_on(server.destroy()).unwrap();
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A PostgreSQL image built from the local one in the test, without the hstore extension's
/// files: a restore server that lacks an extension the dump needs. Removed on drop.
struct ImageWithoutHstore(String);

impl ImageWithoutHstore {
    fn build() -> ImageWithoutHstore {
        let base = std::env::var("PGDRILL_POSTGRES_IMAGE")
            .ok()
            .filter(|i| image_present(i))
            .unwrap_or_else(|| {
                if image_present(DEFAULT_IMAGE) {
                    DEFAULT_IMAGE.into()
                } else {
                    LOCAL_IMAGE.into()
                }
            });
        let tag = format!(
            "pgdrill-test/postgres-without-hstore:{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let image = ImageWithoutHstore(tag);
        let dir = tempfile::tempdir().unwrap();
        // No pull: FROM a local image, and nothing fetched by the RUN.
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {base}\nRUN rm -f /usr/share/postgresql/*/extension/hstore* /usr/lib/postgresql/*/lib/hstore*\n"
            ),
        )
        .unwrap();
        let out = Command::new("docker")
            .args(["build", "--pull=false", "-q", "-t", &image.0])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        image
    }
}

impl Drop for ImageWithoutHstore {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "-f", &self.0]);
    }
}

#[test]
fn an_extension_missing_on_the_restore_server_fails_at_the_preflight_naming_it() {
    if !docker_or_skip(
        "an_extension_missing_on_the_restore_server_fails_at_the_preflight_naming_it",
    ) {
        return;
    }
    let image = ImageWithoutHstore::build();
    // The dump comes from a native server that has hstore (this machine's installation).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(crate::support::TestServer::start("hstore"));
    let db = rt.block_on(async {
        let db = server.create_db("hstore").await;
        server
            .connect(&db)
            .await
            .batch_execute(
                "CREATE EXTENSION hstore;
                 CREATE TABLE settings (id int PRIMARY KEY, attrs hstore);
                 INSERT INTO settings VALUES (1, 'a=>1, b=>2'), (2, 'colour=>blue');",
            )
            .await
            .unwrap();
        db
    });
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("hstore.dump");
    server.pg_dump(&db, &dump);
    drop(server);

    let run = Pgdrill::drill([
        "--backend",
        "docker",
        "--app",
        "none",
        "--backup-file",
        dump.to_str().unwrap(),
    ])
    .env("PGDRILL_POSTGRES_IMAGE", &image.0)
    .run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(run.code(), 1, "{}", run.text());
    assert!(
        r["phases"].to_string().contains(&image.0),
        "the drill ran on the derived image: {}",
        r["phases"]
    );
    let f = &r["failure"];
    assert_eq!(f["phase"], "roles", "{f}");
    let msg = f["message"].as_str().unwrap();
    assert_mentions(msg, &["\"hstore\"", "install the extension's package"]);
    assert_eq!(
        phase(&r, "pg_restore")["status"],
        "skipped",
        "{}",
        phase(&r, "pg_restore")
    );
    assert!(
        docker_leftovers(&id).is_empty(),
        "{:?}",
        docker_leftovers(&id)
    );
    drop(image);
}
