//! Configuration from the environment and an optional `.env` file; values never leave this
//! module except where they are used, and errors name keys only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::release::{Marker, ReleaseDir, RELEASE_ENV_FILE};

/// Keys the app refuses to start without.
pub const REQUIRED_KEYS: [&str; 3] = ["DATABASE_URL", "API_KEY", "VPN_PEER"];

/// Every key the app reads; only these are taken from the environment or the file.
const KNOWN_KEYS: [&str; 11] = [
    "DATABASE_URL",
    "API_KEY",
    "VPN_PEER",
    "LISTEN_ADDR",
    "RELEASE",
    "WORKER_INTERVAL_MS",
    "LOG_FORMAT",
    "SAMPLE_APP_FAULT",
    "SAMPLE_APP_HEALTH_FORMAT",
    "SAMPLE_APP_ENV_FILE",
    "SAMPLE_APP_RELEASE_DIR",
];

/// Keys a release's `release.env` may not set: they choose where configuration comes from.
const NOT_FROM_RELEASE: [&str; 2] = ["SAMPLE_APP_ENV_FILE", "SAMPLE_APP_RELEASE_DIR"];

/// Where a configuration value came from (reported by key name in /health, never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A process environment variable.
    Env,
    /// A line of the `.env` file.
    File,
    /// A line of the deployed release's `release.env`.
    Release,
}

impl Source {
    /// The word used in the health check's detail.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Env => "env",
            Source::File => ".env",
            Source::Release => RELEASE_ENV_FILE,
        }
    }
}

/// A configuration problem; the message names the key or file line, never a value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required key is absent or empty.
    #[error("required configuration key {key} is missing or empty: set it in the environment or in the .env file")]
    Missing {
        /// The key's name.
        key: &'static str,
    },
    /// A key has a value the app cannot use.
    #[error("configuration key {key} is invalid ({reason}): {fix}")]
    Invalid {
        /// The key's name.
        key: &'static str,
        /// What is wrong, without the value.
        reason: String,
        /// How to fix it.
        fix: &'static str,
    },
    /// The `.env` file could not be read.
    #[error("cannot read env file {path}: {source}; fix the path in SAMPLE_APP_ENV_FILE or remove the variable")]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the `.env` file is not `KEY=VALUE`.
    #[error("{path}:{line}: not a KEY=VALUE line; fix or comment it out with #")]
    FileSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The release directory or one of its files cannot be used.
    #[error("SAMPLE_APP_RELEASE_DIR {path}: {reason}; point it at the deploy directory holding deployment.json and release.env, or unset it")]
    ReleaseDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Raw configuration: every known key with its value and source; the process environment
/// wins over the release's `release.env`, which wins over the `.env` file.
#[derive(Default)]
pub struct RawConfig {
    values: BTreeMap<&'static str, (String, Source)>,
    /// The deployment marker of the release directory, when there is one.
    marker: Option<Marker>,
}

impl RawConfig {
    /// Reads the env file (if any) and the process environment.
    pub fn load() -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig::default();
        let explicit = std::env::var_os("SAMPLE_APP_ENV_FILE").filter(|v| !v.is_empty());
        let file = match explicit {
            Some(path) => Some(PathBuf::from(path)),
            None => Some(PathBuf::from(".env")).filter(|p| p.is_file()),
        };
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::FileUnreadable {
                    path: path.clone(),
                    source,
                })?;
            for (key, value) in parse_env_file(&path, &text)? {
                if let Some(known) = KNOWN_KEYS.iter().find(|k| **k == key) {
                    raw.values.insert(known, (value, Source::File));
                }
            }
        }
        // The release directory may itself come from the .env file, so it is read after it.
        let release_dir = std::env::var_os("SAMPLE_APP_RELEASE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| raw.get("SAMPLE_APP_RELEASE_DIR").map(PathBuf::from));
        if let Some(dir) = release_dir {
            let release = ReleaseDir::read(&dir)?;
            if let Some((path, text)) = release.env_file {
                for (key, value) in parse_env_file(&path, &text)? {
                    if let Some(known) = KNOWN_KEYS
                        .iter()
                        .find(|k| **k == key && !NOT_FROM_RELEASE.contains(k))
                    {
                        raw.values.insert(known, (value, Source::Release));
                    }
                }
            }
            raw.marker = release.marker;
        }
        for key in KNOWN_KEYS {
            if let Ok(value) = std::env::var(key) {
                raw.values.insert(key, (value, Source::Env));
            }
        }
        Ok(raw)
    }

    /// The non-empty value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|(v, _)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn source(&self, key: &str) -> Option<Source> {
        self.values.get(key).map(|(_, s)| *s)
    }

    /// The requested log format, read before everything else so errors are logged in it.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self
            .get("LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(ConfigError::Invalid {
                key: "LOG_FORMAT",
                reason: "not json or text".into(),
                fix: "set LOG_FORMAT=json or LOG_FORMAT=text",
            }),
        }
    }
}

/// Parses an env file in the dotenv dialect of `dotenvy`: `KEY=VALUE` lines, `#` comments,
/// optional `export `, single quotes (literal) or double quotes (`\\`, `\"`, `\$`, `\n`
/// escapes), `$KEY` and `${KEY}` substitution outside single quotes. An error names the line
/// of the file, never its content: the content may be a secret.
pub fn parse_env_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    dotenvy::from_read_iter(text.as_bytes())
        .map(|item| {
            item.map_err(|e| ConfigError::FileSyntax {
                path: path.to_path_buf(),
                line: match e {
                    dotenvy::Error::LineParse(bad, _) => line_of(text, &bad),
                    _ => 0,
                },
            })
        })
        .collect()
}

/// The 1-based number of the file's line where `bad` (the line, or the value part, dotenvy
/// could not parse) begins; 0 when it cannot be found.
fn line_of(text: &str, bad: &str) -> usize {
    let first = bad.lines().next().unwrap_or("").trim();
    text.lines()
        .position(|l| !first.is_empty() && l.contains(first))
        .map_or(0, |i| i + 1)
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

/// Test faults switched on through `SAMPLE_APP_FAULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The renewals worker stops beating after two ticks.
    WorkerStops,
    /// One ERROR line one second after start.
    ErrorLog,
    /// /health reports DEGRADED.
    Degraded,
    /// The process exits with code 1 after one second.
    Exit,
    /// /health always reports UNHEALTHY.
    NeverHealthy,
}

impl Fault {
    /// Accepted values of SAMPLE_APP_FAULT.
    pub const ALLOWED: &'static str = "worker-stops, error-log, degraded, exit, never-healthy";

    fn parse(value: &str) -> Option<Fault> {
        Some(match value {
            "worker-stops" => Fault::WorkerStops,
            "error-log" => Fault::ErrorLog,
            "degraded" => Fault::Degraded,
            "exit" => Fault::Exit,
            "never-healthy" => Fault::NeverHealthy,
            _ => return None,
        })
    }

    /// The configuration value naming this fault.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::WorkerStops => "worker-stops",
            Fault::ErrorLog => "error-log",
            Fault::Degraded => "degraded",
            Fault::Exit => "exit",
            Fault::NeverHealthy => "never-healthy",
        }
    }
}

/// The body /health answers in (SAMPLE_APP_HEALTH_FORMAT), so pgdrill's reading of each
/// format is tested against a real server whose checks are real.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthFormat {
    /// The app's own: HEALTHY/DEGRADED/UNHEALTHY and a `checks` list (the default).
    Own,
    /// IETF health+json.
    Ietf,
    /// Spring Boot actuator.
    Spring,
    /// ASP.NET Core health checks.
    AspNet,
    /// Kubernetes-style text: `ok`, else `[+]`/`[-]` lines.
    Plain,
    /// Ad-hoc JSON: `healthy` and one `{ok, message}` object per check.
    AdHoc,
}

impl HealthFormat {
    /// Accepted values of SAMPLE_APP_HEALTH_FORMAT.
    pub const ALLOWED: &'static str = "own, ietf, spring, aspnet, plain, adhoc";

    fn parse(value: &str) -> Option<HealthFormat> {
        Some(match value {
            "own" => HealthFormat::Own,
            "ietf" => HealthFormat::Ietf,
            "spring" => HealthFormat::Spring,
            "aspnet" => HealthFormat::AspNet,
            "plain" => HealthFormat::Plain,
            "adhoc" => HealthFormat::AdHoc,
            _ => return None,
        })
    }
}

/// Validated configuration. Secrets (API_KEY, the DSN's password) are checked for presence and
/// not kept as strings: only the parsed database config holds the password, for connecting.
pub struct Config {
    /// Where the database is.
    pub database: tokio_postgres::Config,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Release marker reported by /health and /version: the deployment marker's tag, else
    /// RELEASE, else the crate version.
    pub release: String,
    /// The deployed commit, from the deployment marker.
    pub commit: Option<String>,
    /// When the release was deployed (RFC 3339), from the deployment marker.
    pub deployed_at: Option<String>,
    /// Pause between worker ticks.
    pub worker_interval: Duration,
    /// Fault switched on for tests, if any.
    pub fault: Option<Fault>,
    /// The body /health answers in.
    pub health_format: HealthFormat,
    /// `KEY (source)` for each required key, for the config check's detail.
    pub required_sources: Vec<String>,
}

impl Config {
    /// Validates the raw configuration; the first problem found is returned.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        for key in REQUIRED_KEYS {
            if raw.get(key).is_none() {
                return Err(ConfigError::Missing { key });
            }
        }
        let database: tokio_postgres::Config = raw
            .get("DATABASE_URL")
            .unwrap_or_default()
            .parse()
            .map_err(|e: tokio_postgres::Error| ConfigError::Invalid {
                key: "DATABASE_URL",
                reason: e.to_string(),
                fix: "use a libpq key=value string or a postgres:// URL",
            })?;
        let listen = match raw.get("LISTEN_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                key: "LISTEN_ADDR",
                reason: "not an IP:PORT socket address".into(),
                fix: "use e.g. 127.0.0.1:8080, or 127.0.0.1:0 for any free port",
            })?,
        };
        let worker_interval = match raw.get("WORKER_INTERVAL_MS") {
            None => Duration::from_millis(500),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "WORKER_INTERVAL_MS",
                        reason: "not a positive whole number of milliseconds".into(),
                        fix: "use e.g. WORKER_INTERVAL_MS=500",
                    })
                }
            },
        };
        let fault = match raw.get("SAMPLE_APP_FAULT") {
            None => None,
            Some(v) => Some(Fault::parse(v).ok_or_else(|| ConfigError::Invalid {
                key: "SAMPLE_APP_FAULT",
                reason: format!("unknown fault; allowed values: {}", Fault::ALLOWED),
                fix: "use one of the allowed values or unset it",
            })?),
        };
        let health_format = match raw.get("SAMPLE_APP_HEALTH_FORMAT") {
            None => HealthFormat::Own,
            Some(v) => HealthFormat::parse(v).ok_or_else(|| ConfigError::Invalid {
                key: "SAMPLE_APP_HEALTH_FORMAT",
                reason: format!("unknown format; allowed values: {}", HealthFormat::ALLOWED),
                fix: "use one of the allowed values or unset it",
            })?,
        };
        let required_sources = REQUIRED_KEYS
            .iter()
            .map(|k| {
                let source = raw.source(k).map(Source::as_str).unwrap_or("?");
                format!("{k} ({source})")
            })
            .collect();
        Ok(Config {
            database,
            listen,
            release: match &raw.marker {
                Some(m) => m.tag.clone(),
                None => raw
                    .get("RELEASE")
                    .unwrap_or(env!("CARGO_PKG_VERSION"))
                    .to_string(),
            },
            commit: raw.marker.as_ref().map(|m| m.commit.clone()),
            deployed_at: raw.marker.as_ref().map(|m| m.deployed_at.clone()),
            worker_interval,
            fault,
            health_format,
            required_sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_dialect() {
        let text = "# comment\n\nexport A=1\nB = \"two words\" # trailing\nC=\"quoted # not a comment\"\nD='single $x'\nE=\"esc\\\"aped \\$1\"\nF=\n";
        let parsed = parse_env_file(Path::new(".env"), text).unwrap();
        let expect: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "quoted # not a comment"),
            ("D", "single $x"),
            ("E", "esc\"aped $1"),
            ("F", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(parsed, expect);
    }

    #[test]
    fn env_file_errors_name_the_line_not_the_value() {
        let err = parse_env_file(Path::new("x.env"), "A=1\nsecret-without-equals\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.env:2"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
        assert!(parse_env_file(Path::new("x.env"), "A=\"unterminated\n").is_err());
        let err = parse_env_file(Path::new("x.env"), "A=1\n\nB=two secret words\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.env:3") && !msg.contains("secret"), "{msg}");
    }

    #[test]
    fn missing_and_invalid_keys_are_named() {
        let mut raw = RawConfig::default();
        raw.values
            .insert("DATABASE_URL", ("host=x".into(), Source::Env));
        raw.values.insert("API_KEY", ("".into(), Source::Env));
        let err = Config::from_raw(&raw).err().unwrap();
        assert!(err.to_string().contains("API_KEY"), "{err}");
        raw.values.insert("API_KEY", ("k".into(), Source::File));
        raw.values.insert("VPN_PEER", ("p".into(), Source::Env));
        raw.values
            .insert("SAMPLE_APP_FAULT", ("bogus".into(), Source::Env));
        let err = Config::from_raw(&raw).err().unwrap().to_string();
        assert!(
            err.contains("never-healthy") && !err.contains("bogus"),
            "{err}"
        );
        raw.values.remove("SAMPLE_APP_FAULT");
        let cfg = Config::from_raw(&raw).unwrap();
        assert_eq!(cfg.worker_interval, Duration::from_millis(500));
        assert_eq!(cfg.required_sources[1], "API_KEY (.env)");
    }
}
