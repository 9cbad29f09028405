//! The container engine, shared by the server containers (`env::docker`) and the
//! application's container (`app::container`): the docker CLI run to completion or
//! synchronously from `Drop`, image presence and pulls, the labels every drill object
//! carries, and the guards that remove what is half created.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use testcontainers::{ContainerAsync, GenericImage};
use tokio::process::Command;

use crate::env_error::EnvError;

/// Label naming the drill a container or network belongs to: `pgdrill.drill=<drill-id>`.
pub const LABEL_DRILL: &str = "pgdrill.drill";
/// Label naming its role in the drill (`source`, `target`, `app`, `network`, `tools`).
pub const LABEL_ROLE: &str = "pgdrill.role";

/// A container start (image present) is given this long.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A `docker pull` is given this long.
pub(crate) const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// Any other docker CLI call is given this long.
pub(crate) const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Hands a container to the user (`--keep`): neither its handle's Drop nor the backend's
/// sweep of the drill's label removes it any more.
pub(crate) fn hand_over(
    container: &mut Option<Box<ContainerAsync<GenericImage>>>,
    kept: &AtomicUsize,
) {
    if let Some(c) = container.take() {
        kept.fetch_add(1, Ordering::SeqCst);
        // testcontainers' own Drop would remove it.
        std::mem::forget(c);
    }
}
/// Now as `docker logs --since` takes it: seconds.nanoseconds since the epoch.
pub(crate) fn unix_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}
/// Removes a container (or a network) by name unless disarmed: guards what is being
/// created until its owner exists.
pub(crate) struct Reaper {
    name: Option<String>,
    network: bool,
}

impl Reaper {
    pub(crate) fn container(name: &str) -> Reaper {
        Reaper {
            name: Some(name.to_string()),
            network: false,
        }
    }

    pub(crate) fn network(name: &str) -> Reaper {
        Reaper {
            name: Some(name.to_string()),
            network: true,
        }
    }

    pub(crate) fn disarm(&mut self) {
        self.name = None;
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        match (self.name.take(), self.network) {
            (Some(name), false) => {
                remove_sync(&name);
            }
            (Some(name), true) => {
                remove_network_sync(&name);
            }
            (None, _) => {}
        }
    }
}
/// The engine's version; fails with a clear message when the CLI or the engine is missing,
/// or when the CLI and the API client (testcontainers) would talk to different engines.
pub(crate) async fn version() -> Result<String, EnvError> {
    let out = docker(
        &["info", "--format", "{{.ID}} {{.ServerVersion}}"],
        CLI_TIMEOUT,
    )
    .await?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut words = text.split_whitespace();
    let (Some(cli_id), Some(version), true) = (words.next(), words.next(), out.status.success())
    else {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(EnvError::NoDockerEngine {
            reason: format!(
                "`docker info` failed: {}",
                err.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output")
                    .trim()
            ),
        });
    };
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let api_id = match testcontainers::bollard::Docker::connect_with_defaults() {
        Ok(d) => d
            .info()
            .await
            .map(|i| i.id.unwrap_or_default())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match api_id {
        Ok(id) if id == cli_id => Ok(format!("Docker Engine {version}")),
        Ok(_) => Err(EnvError::NoDockerEngine {
            reason: format!(
                "the docker CLI and the Docker API at {host} reach different engines (a docker context?); export DOCKER_HOST to the engine the CLI uses (`docker context inspect --format '{{{{.Endpoints.docker.Host}}}}'`)"
            ),
        }),
        Err(e) => Err(EnvError::NoDockerEngine {
            reason: format!(
                "the docker CLI works but the Docker API at {host} does not answer ({e}); if you use a docker context, export DOCKER_HOST to its endpoint"
            ),
        }),
    }
}
/// Whether `image` is here, pulling it when it is not; `Err` carries what `docker pull` said.
pub(crate) async fn have_image(image: &str) -> Result<Result<(), String>, EnvError> {
    if image_present(image).await? {
        return Ok(Ok(()));
    }
    let out = docker(&["pull", "-q", image], PULL_TIMEOUT).await?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    Ok(Err(String::from_utf8_lossy(&out.stderr)
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string()))
}

pub(crate) async fn image_present(image: &str) -> Result<bool, EnvError> {
    let out = docker(
        &["image", "inspect", "--format", "{{.Id}}", image],
        CLI_TIMEOUT,
    )
    .await?;
    Ok(out.status.success())
}

/// Runs the docker CLI to completion, within `timeout`.
pub(crate) async fn docker(
    args: &[&str],
    timeout: Duration,
) -> Result<std::process::Output, EnvError> {
    let mut cmd = Command::new("docker");
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(timeout, crate::program::output(&mut cmd)).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(EnvError::NoDockerEngine {
            reason: "the `docker` command is not installed or not on PATH (pgdrill runs the PostgreSQL programs inside the containers with it)".into(),
        }),
        Ok(Err(source)) => Err(EnvError::Spawn {
            program: "docker".into(),
            source,
        }),
        Err(_) => Err(EnvError::NoDockerEngine {
            reason: format!(
                "`docker {}` did not finish within {}",
                args.join(" "),
                crate::duration::human(timeout)
            ),
        }),
    }
}

/// Runs the docker CLI synchronously, for `Drop`; `None` when it could not run.
pub(crate) fn docker_sync(args: &[&str]) -> Option<std::process::Output> {
    crate::program::output_sync(
        std::process::Command::new("docker")
            .args(args)
            .stdin(Stdio::null()),
    )
    .ok()
}

/// Removes the containers and the network labelled with a dead drill's id; one line for each.
pub fn remove_labelled(drill_id: &str) -> Vec<String> {
    let filter = format!("label={LABEL_DRILL}={drill_id}");
    let ids = |args: &[&str]| -> Vec<String> {
        docker_sync(args)
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut removed = Vec::new();
    for id in ids(&["ps", "-aq", "--filter", &filter]) {
        if remove_sync(&id) {
            removed.push(format!("container {id} (drill {drill_id})"));
        }
    }
    for id in ids(&["network", "ls", "-q", "--filter", &filter]) {
        if remove_network_sync(&id) {
            removed.push(format!("network {id} (drill {drill_id})"));
        }
    }
    removed
}

/// `docker rm -fv`: stops and removes a container and its anonymous volumes (the data).
/// True when it is gone (or never existed).
pub(crate) fn remove_sync(id_or_name: &str) -> bool {
    match docker_sync(&["rm", "-fv", id_or_name]) {
        Some(out) => {
            out.status.success()
                || String::from_utf8_lossy(&out.stderr).contains("No such container")
        }
        None => false,
    }
}

/// `docker network rm`: true when the network is gone (or never existed), as
/// [`remove_sync`] is for a container.
pub(crate) fn remove_network_sync(name: &str) -> bool {
    match docker_sync(&["network", "rm", name]) {
        Some(out) => {
            out.status.success() || String::from_utf8_lossy(&out.stderr).contains("not found")
        }
        None => false,
    }
}

/// `repo[:tag]` as testcontainers wants it: the tag is what follows the last `:` after the
/// last `/` (a registry's port is not a tag); a digest reference survives the round trip.
pub(crate) fn split_image(image: &str) -> (String, String) {
    let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// An error with its causes, each cause once.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg = format!("{msg}: {t}");
        }
        src = s.source();
    }
    msg
}
#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn image_references() {
        let s = |i: &str| {
            let (r, t) = split_image(i);
            (r, t)
        };
        assert_eq!(s("postgres:15"), ("postgres".into(), "15".into()));
        assert_eq!(s("postgres"), ("postgres".into(), "latest".into()));
        assert_eq!(
            s("pgdrill/postgres:15-local"),
            ("pgdrill/postgres".into(), "15-local".into())
        );
        assert_eq!(
            s("localhost:5000/pg"),
            ("localhost:5000/pg".into(), "latest".into())
        );
        assert_eq!(
            s("localhost:5000/pg:16"),
            ("localhost:5000/pg".into(), "16".into())
        );
        let (r, t) = s("pg@sha256:abcd");
        assert_eq!(format!("{r}:{t}"), "pg@sha256:abcd");
    }
}
