//! The docker backend: full drills in containers, the same integrity snapshot as the native
//! backend, server loss that really removes a container, environment faults as exit code 3,
//! and never a container or network left behind.
//!
//! Without a Docker engine (or the PostgreSQL image) these tests print `skipped: …` and
//! pass, unless PGDRILL_REQUIRE_DOCKER=1, which makes them fail instead.
//!
//! The topics: [`drills`] (the drill itself: the native snapshot, drop-db, `--backend auto`,
//! a restore server lacking an extension), [`app`] (the app as a container), [`signals`]
//! (Ctrl-C and SIGTERM), [`faults`] (environment faults); the helpers that skip without
//! Docker and find leftovers are here.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

mod app;
mod drills;
mod faults;
mod image;
mod signals;
mod swarm;

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
    runs_or_skips(test, unavailable())
}

/// True when a PostgreSQL image is already here; without one the test is skipped at once
/// (nothing is pulled or built for it), except with PGDRILL_REQUIRE_DOCKER=1 (CI), where
/// [`docker_or_skip`] gets one or fails. For tests outside this module that need docker
/// only to show that the docker backend does what the native one does.
pub(crate) fn postgres_image_or_skip(test: &str) -> bool {
    let wanted = std::env::var("PGDRILL_POSTGRES_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into());
    let engine = docker_ok(&["info", "--format", "{{.ServerVersion}}"]);
    if engine && (image_present(&wanted) || image_present(LOCAL_IMAGE)) {
        return true;
    }
    if std::env::var("PGDRILL_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        return docker_or_skip(test);
    }
    eprintln!(
        "skipped: {test}: no Docker engine or no PostgreSQL image here ({wanted} or {LOCAL_IMAGE})"
    );
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
    runs_or_skips(test, why)
}

/// True when nothing stops `test` (`why` is None); otherwise says why and skips it, or fails
/// it when PGDRILL_REQUIRE_DOCKER=1 (CI).
fn runs_or_skips(test: &str, why: &Option<String>) -> bool {
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

/// Nothing carrying the drill's label is left: no container, no network.
pub(crate) fn assert_no_docker_leftovers(drill_id: &str) {
    let left = docker_leftovers(drill_id);
    assert!(left.is_empty(), "{left:?}");
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
