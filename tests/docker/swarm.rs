//! A fleet on a real Docker Swarm: `pgdrill fleet plan --engine swarm` writes the script, the
//! script runs a replicated job of three tasks, at most two at once, each task drilling the
//! database its slot names inside the pgdrill image, and `fleet report` names exactly the one
//! made to fail. The swarm is initialised only when the engine is in none, and left only
//! when this test made it; the service, its secret and its config are removed after.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{docker, docker_ok, docker_or_skip, first_line, image_present};
use crate::support::{self, Pgdrill, TestServer};

const IMAGE: &str = "pgdrill/pgdrill:local";

/// The engine in a swarm for the test's length; what the test made is undone on drop.
struct Swarm {
    made: bool,
    gwbridge_before: bool,
    fleet: String,
    secret: String,
}

fn swarm_state() -> String {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Swarm {
    fn join(test: &str, fleet: &str, secret: &str) -> Option<Swarm> {
        let gwbridge_before = docker_ok(&["network", "inspect", "docker_gwbridge"]);
        let state = swarm_state();
        let made = match state.as_str() {
            "active" => false,
            "inactive" => {
                let init = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
                match init {
                    Some(o) if o.status.success() => true,
                    Some(o) => {
                        return skip(
                            test,
                            &format!("docker swarm init: {}", first_line(&o.stderr)),
                        )
                    }
                    None => return skip(test, "docker swarm init did not run"),
                }
            }
            other => return skip(test, &format!("the engine's swarm state is {other:?}")),
        };
        Some(Swarm {
            made,
            gwbridge_before,
            fleet: fleet.to_string(),
            secret: secret.to_string(),
        })
    }
}

fn skip(test: &str, why: &str) -> Option<Swarm> {
    assert!(
        std::env::var("PGDRILL_REQUIRE_DOCKER").as_deref() != Ok("1"),
        "{test}: Swarm cannot start here: {why}"
    );
    eprintln!("skipped: {test}: Swarm cannot start here: {why}");
    None
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let service = format!("pgdrill-{}", self.fleet);
        let _ = docker(&["service", "rm", &service]);
        // A removed service's containers go a moment later; the secret waits for them.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.swarm.service.name={service}"),
            ])
            .is_some_and(|o| !o.stdout.is_empty())
        {
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = docker(&["secret", "rm", &self.secret]);
        if let Some(o) = docker(&[
            "config",
            "ls",
            "-q",
            "--filter",
            &format!("label=pgdrill.fleet={}", self.fleet),
        ]) {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = docker(&["config", "rm", id]);
            }
        }
        if self.made {
            let _ = docker(&["swarm", "leave", "--force"]);
            if !self.gwbridge_before {
                let _ = docker(&["network", "rm", "docker_gwbridge"]);
            }
        }
    }
}

#[test]
fn a_fleet_runs_as_a_swarm_replicated_job_and_its_report_names_the_database_that_failed() {
    let test = "fleet on swarm";
    if !docker_or_skip(test) {
        return;
    }
    if !image_present(IMAGE) {
        assert!(
            std::env::var("PGDRILL_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "{IMAGE} is missing: scripts/build-images.sh builds it (scripts/setup.sh runs it)"
        );
        eprintln!("skipped: {test}: {IMAGE} is not built");
        return;
    }
    let rt = support::runtime();
    let (server, db) = rt.block_on(TestServer::with_db(
        "swarm",
        "swarm_src",
        "CREATE TABLE \"Order Items\" (id int PRIMARY KEY, sku text); INSERT INTO \"Order Items\" SELECT g, 'sku-' || g FROM generate_series(1, 300) g;",
    ));
    let dir = tempfile::Builder::new()
        .prefix("pgdrill-test-swarm-")
        .tempdir()
        .unwrap();
    let backups = dir.path().join("backups");
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::create_dir_all(&reports).unwrap();
    server.pg_dump(&db, &backups.join("good.dump"));
    let bytes = std::fs::read(backups.join("good.dump")).unwrap();
    std::fs::write(backups.join("bad.dump"), &bytes[..bytes.len() / 2]).unwrap();

    let pid = std::process::id();
    let name = format!("swarm-test-{pid}");
    let secret = format!("PGDRILL_SWARM_TEST_{pid}_DSN");
    let Some(_swarm) = Swarm::join(test, &name, &secret) else {
        return;
    };
    // The live database's DSN as a Docker secret, never in the fleet file or the service.
    let mut create = Command::new("docker")
        .args(["secret", "create", &secret, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        create.stdin.as_mut().unwrap(),
        format!("{} dbname={db}", server.dsn()).as_bytes(),
    )
    .unwrap();
    drop(create.stdin.take());
    assert!(create.wait().unwrap().success());

    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            r#"[fleet]
name = "{name}"
concurrency = 2
image = "{IMAGE}"

[defaults]
backend = "native"
app = "none"
jobs = 1

[reports]
swarm = "{reports}"

[[mount]]
path = "/backups"
swarm = "{backups}"

# The source server listens on this machine's loopback.
[swarm]
network = "host"

[[database]]
name = "live"
source_dsn_env = "{secret}"

[[database]]
name = "archive"
backup_file = "/backups/good.dump"

[[database]]
name = "broken"
backup_file = "/backups/bad.dump"
"#,
            reports = reports.display(),
            backups = backups.display(),
        ),
    )
    .unwrap();
    let plan_dir = dir.path().join("plan");
    let run = Pgdrill::new([
        "fleet",
        "plan",
        "--fleet",
        fleet.to_str().unwrap(),
        "--engine",
        "swarm",
        "--out",
        plan_dir.to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code(), 0, "{}", run.text());
    let script = plan_dir.join(format!("{name}-swarm.sh"));

    // The script as a timer would run it: it returns when every task has ended.
    let mut child = Command::new("sh")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the swarm script ran for 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status.success(), "{said}");

    let service = format!("pgdrill-{name}");
    let mode = docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.Mode}}",
        &service,
    ])
    .unwrap();
    let mode: serde_json::Value = serde_json::from_slice(&mode.stdout).unwrap();
    assert_eq!(mode["ReplicatedJob"]["MaxConcurrent"], 2, "{mode}");
    assert_eq!(mode["ReplicatedJob"]["TotalCompletions"], 3, "{mode}");

    // Each slot drilled its own database, once.
    for db in ["live", "archive", "broken"] {
        let n = crate::fleet::drills_of(&reports, db).len();
        assert_eq!(n, 1, "{db}: {said}");
    }
    let gathered =
        crate::fleet::fleet_report(&reports, &["--fleet", fleet.to_str().unwrap(), "--json"]);
    assert_eq!(gathered.code(), 1, "{}", gathered.text());
    let r: serde_json::Value = serde_json::from_slice(&gathered.output.stdout).unwrap();
    let not_passing: Vec<&str> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["outcome"] != "pass")
        .map(|row| row["database"].as_str().unwrap())
        .collect();
    assert_eq!(not_passing, ["broken"], "{r}\n{said}");
    // The DSN reached the live drill through the secret only.
    let spec = docker(&["service", "inspect", &service]).unwrap();
    assert!(!String::from_utf8_lossy(&spec.stdout).contains(&server.dsn()));
}
