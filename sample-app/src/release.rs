//! The deployed release, read once at start from the release directory that
//! `SAMPLE_APP_RELEASE_DIR` names (the deploy directory pgdrill's code rollback deploys into):
//! the deployment marker (`deployment.json`: tag, commit, deployed_at) and the release's own
//! `release.env`, whose keys apply like environment variables.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ConfigError;

/// The deployment marker's file name in the release directory (pgdrill writes it there).
pub const MARKER_FILE: &str = "deployment.json";
/// The release's own settings in the release directory, `KEY=VALUE` lines like `.env`.
pub const RELEASE_ENV_FILE: &str = "release.env";

/// What the deployment marker says; other fields of the file are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Marker {
    /// The release tag, e.g. `v1.0.0`.
    pub tag: String,
    /// The full commit id the tag resolved to.
    pub commit: String,
    /// When it was deployed, RFC 3339.
    pub deployed_at: String,
}

/// The release directory's contents.
#[derive(Debug, Default)]
pub struct ReleaseDir {
    /// The marker, when the directory holds one.
    pub marker: Option<Marker>,
    /// `release.env`'s path and text, when the directory holds one.
    pub env_file: Option<(PathBuf, String)>,
}

impl ReleaseDir {
    /// Reads the directory; it must exist, its files are optional (a fresh deploy dir).
    pub fn read(dir: &Path) -> Result<ReleaseDir, ConfigError> {
        let bad = |reason: String| ConfigError::ReleaseDir {
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.is_dir() {
            return Err(bad("not a directory".into()));
        }
        let marker_path = dir.join(MARKER_FILE);
        let marker = match std::fs::read_to_string(&marker_path) {
            Ok(text) => {
                Some(parse_marker(&text).map_err(|why| bad(format!("{MARKER_FILE}: {why}")))?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(bad(format!("cannot read {MARKER_FILE}: {e}"))),
        };
        let env_path = dir.join(RELEASE_ENV_FILE);
        let env_file = match std::fs::read_to_string(&env_path) {
            Ok(text) => Some((env_path, text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(bad(format!("cannot read {RELEASE_ENV_FILE}: {e}"))),
        };
        Ok(ReleaseDir { marker, env_file })
    }
}

/// Parses and checks the marker: a tag, a hex commit, an RFC 3339 time.
fn parse_marker(text: &str) -> Result<Marker, String> {
    let marker: Marker =
        serde_json::from_str(text).map_err(|e| format!("not a deployment marker ({e})"))?;
    if marker.tag.trim().is_empty() {
        return Err("the tag is empty".into());
    }
    if marker.commit.len() < 7 || !marker.commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("the commit is not a hexadecimal commit id".into());
    }
    chrono::DateTime::parse_from_rfc3339(&marker.deployed_at)
        .map_err(|e| format!("deployed_at is not an RFC 3339 time ({e})"))?;
    Ok(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_fields_are_checked() {
        let good = r#"{"tag":"v1.0.0","commit":"0123456789abcdef0123456789abcdef01234567","deployed_at":"2024-05-01T10:00:00Z","deployed_by":"pgdrill"}"#;
        let m = parse_marker(good).unwrap();
        assert_eq!((m.tag.as_str(), m.commit.len()), ("v1.0.0", 40));
        let bad_commit = good.replace("0123456789abcdef0123456789abcdef01234567", "main");
        assert!(parse_marker(&bad_commit).unwrap_err().contains("commit"));
        let bad_time = good.replace("2024-05-01T10:00:00Z", "yesterday");
        assert!(parse_marker(&bad_time).unwrap_err().contains("deployed_at"));
        assert!(parse_marker("{}")
            .unwrap_err()
            .contains("not a deployment marker"));
    }

    #[test]
    fn a_missing_directory_is_an_error_and_empty_files_are_optional() {
        let dir =
            std::env::temp_dir().join(format!("sample-app-no-such-dir-{}", std::process::id()));
        let err = ReleaseDir::read(&dir).unwrap_err().to_string();
        assert!(
            err.contains("SAMPLE_APP_RELEASE_DIR") && err.contains("not a directory"),
            "{err}"
        );
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = ReleaseDir::read(here).unwrap();
        assert!(read.marker.is_none() && read.env_file.is_none());
    }
}
