//! The application's container on the docker backend: its image (the sample app's, or the
//! user's `--app-image`), its start on the drill's network with its configuration, `docker
//! stop` / `docker start`, its output followed into the app log, and its removal on drop.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use super::{AppError, AppSpec};
use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::process::Command;

use crate::engine::{
    docker, docker_sync, error_chain, hand_over, have_image, remove_sync, split_image, unix_now,
    Reaper, CLI_TIMEOUT, LABEL_DRILL, LABEL_ROLE, START_TIMEOUT,
};
use crate::env::docker::DockerBackend;
use crate::env_error::EnvError;
use crate::pg::short_id;

/// The sample app's image, built by scripts/build-images.sh.
pub const APP_IMAGE: &str = "pgdrill/sample-app:local";
/// Overrides [`APP_IMAGE`].
pub const APP_IMAGE_ENV: &str = "PGDRILL_APP_IMAGE";
/// Label of the app image holding the SHA-256 of the sample-app binary inside it.
pub const LABEL_APP_SHA256: &str = "org.pgdrill.sample-app.sha256";
/// The sample app listens here inside its container.
const APP_PORT: u16 = 8080;
/// The app's configuration reaches it as a file (SAMPLE_APP_ENV_FILE), so its secrets and
/// DATABASE_URL stay out of `docker inspect`.
const APP_ENV_FILE: &str = "/run/secrets/sample-app.env";
/// `docker logs -f` is given this long to copy the last lines after a stop.
const FOLLOWER_DRAIN: Duration = Duration::from_secs(3);

impl DockerBackend {
    /// The app image to run (`PGDRILL_APP_IMAGE` or [`APP_IMAGE`]), which must be present or
    /// pullable, and a note when the local image holds another sample-app binary than
    /// `binary` (a stale build).
    pub async fn app_image(
        &self,
        binary: Option<&std::path::Path>,
    ) -> Result<(String, Option<String>), EnvError> {
        let named = std::env::var(APP_IMAGE_ENV)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let fix = format!("Build or load it, or unset {APP_IMAGE_ENV}");
        self.settle_app_image(named, &fix, binary).await
    }

    /// A custom app's image (`--app-image`), present or pulled.
    pub async fn custom_app_image(&self, image: &str) -> Result<String, EnvError> {
        Ok(self
            .settle_app_image(
                Some(image.to_string()),
                "Build or load it, or name another with --app-image",
                None,
            )
            .await?
            .0)
    }

    async fn settle_app_image(
        &self,
        named: Option<String>,
        fix_named: &str,
        binary: Option<&std::path::Path>,
    ) -> Result<(String, Option<String>), EnvError> {
        let image = named.clone().unwrap_or_else(|| APP_IMAGE.to_string());
        if let Err(reason) = have_image(&image).await? {
            let fix = if named.is_some() {
                fix_named.to_string()
            } else {
                "Build it with scripts/build-images.sh (scripts/setup.sh does)".to_string()
            };
            return Err(EnvError::AppImage { image, reason, fix });
        }
        let label = docker(
            &[
                "image",
                "inspect",
                "--format",
                &format!("{{{{index .Config.Labels \"{LABEL_APP_SHA256}\"}}}}"),
                &image,
            ],
            CLI_TIMEOUT,
        )
        .await?;
        let in_image = String::from_utf8_lossy(&label.stdout).trim().to_string();
        let note = match binary.and_then(|b| crate::digest::sha256_file_blocking(b).ok().map(|(_, hex)| hex)) {
            Some(local) if !in_image.is_empty() && in_image != "<no value>" && local != in_image => {
                Some(format!(
                    "{image} holds another sample-app build than {} (sha256 {} there, {} here); rebuild it with scripts/build-images.sh",
                    binary.map(|b| b.display().to_string()).unwrap_or_default(),
                    &in_image[..in_image.len().min(12)],
                    &local[..12]
                ))
            }
            _ => None,
        };
        Ok((image, note))
    }

    /// Creates and starts the application's container on the drill's network, with its
    /// configuration (`config`, DATABASE_URL included) as `placement` says, its port published
    /// on loopback, its output followed into `log`.
    pub async fn start_app(
        &self,
        image: &str,
        config: &[(String, String)],
        placement: AppPlacement,
        copies: Vec<(String, Vec<u8>)>,
        log: &std::path::Path,
    ) -> Result<AppContainer, EnvError> {
        let name = format!("pgdrill-{}-app", self.drill_id());
        let mut reaper = Reaper::container(&name);
        let (repo, tag) = split_image(image);
        let port = match placement {
            AppPlacement::SampleApp => APP_PORT,
            AppPlacement::Environment { port } => port,
        };
        let mut request = GenericImage::new(repo, tag)
            .with_exposed_port(port.tcp())
            .with_container_name(&name)
            .with_network(self.network())
            .with_label(LABEL_DRILL, self.drill_id())
            .with_label(LABEL_ROLE, "app")
            .with_startup_timeout(START_TIMEOUT);
        for (path, bytes) in copies {
            request = request.with_copy_to(path, bytes);
        }
        match placement {
            AppPlacement::SampleApp => {
                request = request
                    .with_env_var("SAMPLE_APP_ENV_FILE", APP_ENV_FILE)
                    .with_copy_to(APP_ENV_FILE, env_file(config).into_bytes());
            }
            AppPlacement::Environment { .. } => {
                for (key, value) in config {
                    request = request.with_env_var(key, value);
                }
            }
        }
        let request = request.with_host_config_modifier(move |hc: &mut HostConfig| {
            hc.publish_all_ports = Some(false);
            hc.port_bindings = Some(HashMap::from([(
                format!("{port}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        });
        let since = unix_now();
        let container = request.start().await.map_err(|e| {
            let msg = error_chain(&e);
            if msg.contains("No such image") || msg.contains("pull access denied") {
                EnvError::DockerImage {
                    image: image.to_string(),
                    reason: msg,
                }
            } else {
                EnvError::Docker(format!(
                    "the application container {name} from image {image} did not start: {msg}"
                ))
            }
        })?;
        reaper.disarm();
        let mut app = AppContainer {
            id: container.id().to_string(),
            container: Some(Box::new(container)),
            name,
            image: image.to_string(),
            port: 0,
            inner_port: port,
            follower: None,
            kept: self.kept_counter(),
        };
        app.follow(log, &since)?;
        app.read_port().await;
        Ok(app)
    }
}

/// Where a full drill's release directory goes inside the sample app's container.
pub const APP_RELEASE_DIR: &str = "/run/release";

/// How an app container gets its configuration.
#[derive(Debug, Clone, Copy)]
pub enum AppPlacement {
    /// sample-app: a file it reads (SAMPLE_APP_ENV_FILE), listening on 8080.
    SampleApp,
    /// Any other image: environment variables (visible in `docker inspect`, as with
    /// `docker run -e`), listening on `port`.
    Environment {
        /// The port inside the container.
        port: u16,
    },
}

/// The application's container. `stop` and `restart` are `docker stop` and `docker start`
/// of the same container; dropping it removes it.
pub struct AppContainer {
    container: Option<Box<ContainerAsync<GenericImage>>>,
    id: String,
    name: String,
    image: String,
    /// The published port on 127.0.0.1 (0 while it is not running).
    port: u16,
    /// The port it listens on inside the container.
    inner_port: u16,
    /// `docker logs -f` of the current run, writing into its log file.
    follower: Option<tokio::process::Child>,
    kept: Arc<AtomicUsize>,
}

impl AppContainer {
    fn container(&self) -> &ContainerAsync<GenericImage> {
        self.container
            .as_ref()
            .expect("container present until removed")
    }

    /// `docker container <id> (<name>) from image <image>`.
    pub fn describe(&self) -> String {
        format!(
            "docker container {} ({}) from image {}",
            short_id(&self.id),
            self.name,
            self.image
        )
    }

    /// `http://127.0.0.1:<published port>`, once the container runs.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// None while it runs; its exit code once it has stopped.
    pub async fn exit_code(&self) -> Result<Option<i64>, EnvError> {
        match self.container().is_running().await {
            Ok(true) => Ok(None),
            Ok(false) => Ok(Some(
                self.container()
                    .exit_code()
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(-1),
            )),
            Err(e) => Err(EnvError::Docker(format!(
                "cannot inspect the application container {}: {}",
                self.name,
                error_chain(&e)
            ))),
        }
    }

    /// Whether it runs, asked synchronously (`docker inspect`).
    pub fn is_running_now(&self) -> bool {
        docker_sync(&["inspect", "--format", "{{.State.Running}}", &self.id])
            .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    }

    /// `docker stop -t <timeout>`: SIGTERM, SIGKILL after `timeout`. Returns the exit code.
    pub async fn stop(&mut self, timeout: Duration) -> Result<i64, EnvError> {
        let secs = timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
        self.container()
            .stop_with_timeout(Some(secs))
            .await
            .map_err(|e| {
                EnvError::Docker(format!(
                    "docker stop of the application container {} failed: {}",
                    self.name,
                    error_chain(&e)
                ))
            })?;
        self.drain_follower().await;
        self.port = 0;
        Ok(self.exit_code().await?.unwrap_or(-1))
    }

    /// `docker start` of the stopped container: same container, same configuration; its
    /// output from now on goes to `log`.
    pub async fn restart(&mut self, log: &std::path::Path) -> Result<(), EnvError> {
        let since = unix_now();
        self.container().start().await.map_err(|e| {
            EnvError::Docker(format!(
                "docker start of the application container {} failed: {}",
                self.name,
                error_chain(&e)
            ))
        })?;
        self.follow(log, &since)?;
        self.read_port().await;
        Ok(())
    }

    /// The last lines the container wrote (both streams), for an error message.
    pub async fn log_tail(&self, lines: usize) -> Vec<String> {
        let out = docker(
            &["logs", "--tail", &lines.to_string(), &self.id],
            CLI_TIMEOUT,
        )
        .await;
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&o.stderr).lines())
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Leaves the (stopped) container in place; returns how to start it again.
    pub fn keep(mut self) -> String {
        hand_over(&mut self.container, &self.kept);
        format!(
            "application container kept (stopped): {}; start it against the kept server with: docker start {}",
            self.describe(),
            self.name
        )
    }

    async fn read_port(&mut self) {
        // A container that already exited has no port: health probes then fail and the
        // caller reports the exit with its log.
        self.port = self
            .container()
            .get_host_port_ipv4(self.inner_port)
            .await
            .unwrap_or(0);
    }

    /// Follows the container's output since `since` (lines of an earlier run are older).
    fn follow(&mut self, log: &std::path::Path, since: &str) -> Result<(), EnvError> {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| EnvError::io(format!("cannot open {}", log.display()), e))
        };
        let child = Command::new("docker")
            .args(["logs", "--follow", "--since", since, &self.id])
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EnvError::Spawn {
                program: "docker".into(),
                source,
            })?;
        self.follower = Some(child);
        Ok(())
    }

    /// `docker logs -f` ends by itself when the container stops; wait for its last lines.
    async fn drain_follower(&mut self) {
        if let Some(mut f) = self.follower.take() {
            if tokio::time::timeout(FOLLOWER_DRAIN, f.wait())
                .await
                .is_err()
            {
                let _ = f.start_kill();
                let _ = f.wait().await;
            }
        }
    }
}

impl Drop for AppContainer {
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            remove_sync(&self.id);
            std::mem::forget(c);
        }
    }
}
/// `KEY="value"` lines in sample-app's env-file dialect (dotenvy's): inside double quotes a
/// backslash, a quote, a `$` (which would substitute) and a newline are escaped.
fn env_file(config: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, value) in config {
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
            .replace('\n', "\\n");
        out.push_str(&format!("{key}=\"{escaped}\"\n"));
    }
    out
}

/// The configuration of an app container, and the files copied into it. A full drill names
/// its files by host path; a container cannot see those, so the sample app's `.env`
/// (SAMPLE_APP_ENV_FILE) becomes lines of the container's own configuration file, its values
/// first so that DATABASE_URL and explicit settings win as they do for a process, and its
/// release directory (SAMPLE_APP_RELEASE_DIR) is copied in.
pub(super) struct ContainerConfig {
    /// The lines of its configuration (or its environment).
    pub config: Vec<(String, String)>,
    /// Files copied in: path inside the container, content.
    pub copies: Vec<(String, Vec<u8>)>,
}

impl ContainerConfig {
    /// The container's configuration for `spec`, with `database_url`.
    pub(super) fn of(spec: &AppSpec, database_url: &str) -> Result<ContainerConfig, AppError> {
        let sample = matches!(spec, AppSpec::Sample { .. });
        let mut config = Vec::new();
        let mut copies = Vec::new();
        let mut rest = vec![("DATABASE_URL".to_string(), database_url.to_string())];
        for (key, value) in spec.env() {
            match key.as_str() {
                "SAMPLE_APP_ENV_FILE" if sample => {
                    let pairs = dotenvy::from_path_iter(value)
                        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| AppError::Spec {
                            reason: format!("cannot read the configuration file {value}: {e}"),
                        })?;
                    config.extend(pairs);
                }
                "SAMPLE_APP_RELEASE_DIR" if sample => {
                    let entries = std::fs::read_dir(value).map_err(|e| AppError::Spec {
                        reason: format!("cannot read the release directory {value}: {e}"),
                    })?;
                    for e in entries.flatten().filter(|e| e.path().is_file()) {
                        let bytes = std::fs::read(e.path()).map_err(|err| AppError::Spec {
                            reason: format!("cannot read {}: {err}", e.path().display()),
                        })?;
                        copies.push((
                            format!("{}/{}", APP_RELEASE_DIR, e.file_name().to_string_lossy()),
                            bytes,
                        ));
                    }
                    rest.push((key.clone(), APP_RELEASE_DIR.to_string()));
                }
                _ => rest.push((key.clone(), value.clone())),
            }
        }
        config.extend(rest);
        Ok(ContainerConfig { config, copies })
    }
}

#[cfg(test)]
mod tests {
    use super::env_file;

    #[test]
    fn the_env_file_reads_back_exactly_through_dotenvy() {
        let config: Vec<(String, String)> = [
            ("API_KEY", r#"a"b\c$HOME ${X} 'q'"#),
            ("VPN_PEER", "two\nlines\tand a tab"),
            ("EMPTY", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let text = env_file(&config);
        let back: Vec<(String, String)> = dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, config, "{text}");
    }
}
