//! The app spec: which application the drill runs, from the plan or the command line.
//! Its Debug shows key names only, never environment values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::health::HealthFormat;
use super::url::HttpUrl;
use super::AppError;

/// Which application the drill runs.
#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AppSpec {
    /// This project's `sample-app` binary; it gets DATABASE_URL from the drill.
    Sample {
        /// Path of the built binary.
        binary: PathBuf,
        /// Extra environment (API_KEY, VPN_PEER, SAMPLE_APP_FAULT, …); wins over DATABASE_URL.
        #[serde(default, deserialize_with = "env_pairs")]
        env: Vec<(String, String)>,
        /// How its health body is read (`auto`: recognised; its own format unless
        /// SAMPLE_APP_HEALTH_FORMAT chose another).
        #[serde(default)]
        health_format: HealthFormat,
    },
    /// The user's own application.
    Custom(CustomApp),
}

/// The user's own application, described by commands and URLs.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomApp {
    /// Shell command that starts it (`sh -c`); it inherits the drill's environment.
    pub start: String,
    /// Shell command that stops it; the process group gets SIGTERM afterwards in any case.
    #[serde(default)]
    pub stop: Option<String>,
    /// `http://host:port/path` of its health endpoint.
    pub health_url: String,
    /// One more overall status word that means healthy, besides those of the known formats
    /// (docs/src/own-app.md#health).
    #[serde(default = "default_healthy_status")]
    pub healthy_status: String,
    /// How its health body is read: recognised (`auto`) or one format.
    #[serde(default)]
    pub health_format: HealthFormat,
    /// The file it logs to; the start command's own output when absent.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// `http://host:port/path` of its Prometheus metrics.
    #[serde(default)]
    pub metrics_url: Option<String>,
    /// `http://host:port/path` of a JSON version endpoint (`version`, `release`, `build`).
    #[serde(default)]
    pub version_url: Option<String>,
    /// Extra environment for the start and stop commands.
    #[serde(default, deserialize_with = "env_pairs")]
    pub env: Vec<(String, String)>,
    /// Run it from this image as a container on the docker backend instead of `start`; its
    /// URLs are then paths (`/health`) on the container's published port.
    #[serde(default)]
    pub image: Option<AppImage>,
}

/// A custom application that comes as a container image.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppImage {
    /// The image reference.
    pub image: String,
    /// The port it listens on inside its container.
    #[serde(default = "default_app_port")]
    pub port: u16,
}

fn default_app_port() -> u16 {
    8080
}

fn default_healthy_status() -> String {
    "HEALTHY".to_string()
}

/// Accepts a TOML table (`[app.env]`) or a list of `[key, value]` pairs.
fn env_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Table(BTreeMap<String, String>),
        Pairs(Vec<(String, String)>),
    }
    Ok(match Form::deserialize(d)? {
        Form::Table(t) => t.into_iter().collect(),
        Form::Pairs(p) => p,
    })
}

/// Key names only: a spec is printed in plans and errors, its values must not be.
fn env_keys(env: &[(String, String)]) -> Vec<&str> {
    env.iter().map(|(k, _)| k.as_str()).collect()
}

impl fmt::Debug for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppSpec::Sample {
                binary,
                env,
                health_format,
            } => f
                .debug_struct("Sample")
                .field("binary", binary)
                .field("env_keys", &env_keys(env))
                .field("health_format", health_format)
                .finish(),
            AppSpec::Custom(c) => f.debug_tuple("Custom").field(c).finish(),
        }
    }
}

impl fmt::Debug for CustomApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomApp")
            .field("health_url", &self.health_url)
            .field("healthy_status", &self.healthy_status)
            .field("health_format", &self.health_format)
            .field("log_file", &self.log_file)
            .field("metrics_url", &self.metrics_url)
            .field("version_url", &self.version_url)
            .field("has_stop_command", &self.stop.is_some())
            .field("env_keys", &env_keys(&self.env))
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl AppSpec {
    /// Checks what can be checked before a drill starts: URLs, env keys, the binary's presence.
    pub fn validate(&self) -> Result<(), AppError> {
        match self {
            AppSpec::Sample { binary, .. } => {
                if !binary.is_file() {
                    return Err(AppError::Spawn {
                        what: format!("sample-app binary {}", binary.display()),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                    });
                }
            }
            AppSpec::Custom(c) if c.image.is_some() => {
                let urls = [
                    Some(&c.health_url),
                    c.metrics_url.as_ref(),
                    c.version_url.as_ref(),
                ];
                for url in urls.into_iter().flatten() {
                    if !url.starts_with('/') {
                        return Err(AppError::Spec {
                            reason: format!(
                                "{url:?}: the URLs of an app image are paths on its port, such as /health"
                            ),
                        });
                    }
                }
                if c.stop.is_some() || c.log_file.is_some() {
                    return Err(AppError::Spec {
                        reason: "an app image is stopped with docker stop and logs to its container's output: leave out the stop command and the log file".into(),
                    });
                }
            }
            AppSpec::Custom(c) => {
                if c.start.trim().is_empty() {
                    return Err(AppError::Spec {
                        reason: "the start command is empty".into(),
                    });
                }
                HttpUrl::parse(&c.health_url)?;
                for url in [&c.metrics_url, &c.version_url].into_iter().flatten() {
                    HttpUrl::parse(url)?;
                }
            }
        }
        self.validate_env()
    }

    /// Checks the environment's key names.
    pub(crate) fn validate_env(&self) -> Result<(), AppError> {
        for (key, _) in self.env() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(AppError::Spec {
                    reason: format!("environment key {key:?} is not a valid variable name"),
                });
            }
        }
        Ok(())
    }

    /// The custom app's version URL, when it has one.
    pub fn version_url(&self) -> Option<&str> {
        match self {
            AppSpec::Custom(c) => c.version_url.as_deref(),
            AppSpec::Sample { .. } => None,
        }
    }

    /// How its health body is read.
    pub fn health_format(&self) -> &HealthFormat {
        match self {
            AppSpec::Sample { health_format, .. } => health_format,
            AppSpec::Custom(c) => &c.health_format,
        }
    }

    /// The custom app's image, when it runs as a container.
    pub fn image(&self) -> Option<&AppImage> {
        match self {
            AppSpec::Custom(c) => c.image.as_ref(),
            AppSpec::Sample { .. } => None,
        }
    }

    pub(crate) fn env(&self) -> &[(String, String)] {
        match self {
            AppSpec::Sample { env, .. } => env,
            AppSpec::Custom(c) => &c.env,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_from_toml_and_debug_shows_keys_only() {
        let spec: AppSpec = toml::from_str(
            r#"
kind = "custom"
start = "./run.sh"
health_url = "http://127.0.0.1:8080/healthz"
[env]
API_KEY = "s3cr3t-value"
"#,
        )
        .unwrap();
        let AppSpec::Custom(c) = &spec else {
            panic!("expected custom")
        };
        assert_eq!(c.healthy_status, "HEALTHY");
        assert_eq!(c.env, vec![("API_KEY".into(), "s3cr3t-value".into())]);
        let debug = format!("{spec:?}");
        assert!(
            debug.contains("API_KEY") && !debug.contains("s3cr3t"),
            "{debug}"
        );
        spec.validate().unwrap();

        let sample: AppSpec = toml::from_str(
            "kind = \"sample\"\nbinary = \"/nonexistent/sample-app\"\nenv = [[\"A\", \"b\"]]\n",
        )
        .unwrap();
        assert!(matches!(&sample, AppSpec::Sample { env, .. } if env.len() == 1));
        let err = sample.validate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/sample-app"), "{err}");
        assert!(toml::from_str::<AppSpec>("kind = \"custom\"\nstart = \"x\"\n").is_err());
    }
}
