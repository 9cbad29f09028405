//! The application as a container: the sample app's container stopped and started again
//! around the restore, a user's own image, a restart with a fault, and the full drill's
//! configuration and code restored into a new container; and `pgdrill restore
//! --app-container`, the team's own running container stopped and started around a real
//! restore.

use super::{
    app_image_or_skip, assert_no_docker_leftovers, container_exists, container_ids, docker,
    docker_ok, docker_or_skip, drill_id, phase, Sweep, APP_IMAGE,
};
use crate::support::{Pgdrill, CADENCE};

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
    // The disaster destroys the source; replace_server (inside the RTO clock) provisions the
    // server the restore goes into.
    let source = container_ids(phase(&r, "provision")["detail"].as_str().unwrap());
    let destroyed = container_ids(phase(&r, "disaster")["detail"].as_str().unwrap());
    let target = container_ids(phase(&r, "replace_server")["detail"].as_str().unwrap());
    assert_eq!((source.len(), destroyed.len(), target.len()), (1, 1, 1));
    assert_eq!(destroyed[0], source[0]);
    let (source, target) = (&source[0], &target[0]);
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
    assert_no_docker_leftovers(&id);
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
    assert_no_docker_leftovers(&drill_id(&r));
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
    assert_no_docker_leftovers(&id);
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
    assert_no_docker_leftovers(&id);
}

/// `pgdrill restore --app-container NAME`: production is a native server with the sample app
/// running as the team's container (host network, so it reaches the server on loopback);
/// the restore runs `docker stop NAME` before it touches the database and `docker start NAME`
/// after the swap, and the same container is healthy on the restored data.
#[test]
fn a_real_restore_stops_and_starts_the_teams_app_container() {
    let test = "a_real_restore_stops_and_starts_the_teams_app_container";
    if !docker_or_skip(test) || !app_image_or_skip(test) {
        return;
    }
    use crate::restore::{phases, status, Prod, APP_SEED};
    const PW: &str = "container-app-pw-81d2";
    let rt = crate::support::runtime();
    let server = rt.block_on(crate::support::TestServer::start("restore-ctr"));
    let (db, client) = rt.block_on(server.sample_app_db("prod", PW));
    rt.block_on(client.batch_execute(APP_SEED)).unwrap();
    drop(client);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("pgdrill-test-prod-app-{}", std::process::id());
    let _gone = RemoveContainer(name.clone());
    let dsn = format!(
        "DATABASE_URL=host={} port={} dbname={db} user=pgdrill_app password={PW}",
        server.endpoint.host, server.endpoint.port
    );
    let listen = format!("LISTEN_ADDR=127.0.0.1:{port}");
    assert!(docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "-e",
        &dsn,
        "-e",
        "API_KEY=ctr-api-key-1",
        "-e",
        "VPN_PEER=vpn.internal:51820",
        "-e",
        "WORKER_INTERVAL_MS=200",
        "-e",
        &listen,
        APP_IMAGE,
    ]));
    // Backed up once the app has renewed, as production is: the checklist wants payments,
    // and a backup taken before the worker's first tick has none.
    rt.block_on(async {
        let c = server.connect(&db).await;
        let started = std::time::Instant::now();
        loop {
            let n: i64 = c
                .query_one("SELECT count(*) FROM payments", &[])
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the app container never renewed: {}",
                String::from_utf8_lossy(
                    &std::process::Command::new("docker")
                        .args(["logs", &name])
                        .output()
                        .unwrap()
                        .stderr
                )
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let prod = Prod::backed_up(server, db);
    rt.block_on(async {
        prod.server
            .connect(&prod.db)
            .await
            .batch_execute("TRUNCATE users CASCADE")
            .await
    })
    .unwrap();
    let health = format!("http://127.0.0.1:{port}/health");
    let before = container_started_at(&name);
    let r = prod
        .restore(&[
            "--app-container",
            &name,
            "--app-health-url",
            &health,
            "--confirm",
            &prod.db,
        ])
        .run();
    let report = r.assert_pass();
    let ph = phases(&r);
    for p in ["stop_app", "swap", "start_app", "app_healthy"] {
        assert_eq!(status(&ph, p), "pass", "{p}: {ph:?}");
    }
    let stop = r.phase("stop_app");
    assert!(
        stop["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("docker stop {name}")),
        "{stop}"
    );
    assert_ne!(
        container_started_at(&name),
        before,
        "the same container was started again"
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &name])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        "true"
    );
    let users: i64 = rt
        .block_on(async {
            prod.server
                .connect(&prod.db)
                .await
                .query_one("SELECT count(*) FROM users", &[])
                .await
        })
        .unwrap()
        .get(0);
    assert_eq!(users, 50);
    assert_eq!(report["kind"], "restore");
}

fn container_started_at(name: &str) -> String {
    docker(&["inspect", "--format", "{{.State.StartedAt}}", name])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `docker rm -f` of a container the test started, however the test ends.
struct RemoveContainer(String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}
