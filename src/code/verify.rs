//! Checking that the application runs the release rolled back to: the tag and commit it
//! reports (on its version endpoint, or in the deployment marker) against the target.

use std::path::Path;

use super::deploy::DeploymentMarker;
use super::{CodeError, Release, VersionMismatch};
use crate::app::VersionInfo;

/// The shortest commit abbreviation accepted (git's own default is 7).
const MIN_ABBREV: usize = 7;

/// The release an application reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportedVersion {
    /// Where it was read, e.g. `GET /version` or the marker's path.
    pub source: String,
    /// The release tag reported.
    pub release: Option<String>,
    /// The commit reported (full or abbreviated).
    pub commit: Option<String>,
    /// When the release was deployed, as reported.
    pub deployed_at: Option<String>,
}

impl ReportedVersion {
    /// From a version endpoint's JSON body: the tag in `release` (else `tag`), the commit in
    /// `commit` (else `sha`), `deployed_at`.
    pub fn from_json(source: impl Into<String>, body: &serde_json::Value) -> ReportedVersion {
        let field = |names: &[&str]| {
            names.iter().find_map(|n| {
                body.get(*n)
                    .and_then(|v| v.as_str())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
        };
        ReportedVersion {
            source: source.into(),
            release: field(&["release", "tag"]),
            commit: field(&["commit", "sha"]),
            deployed_at: field(&["deployed_at"]),
        }
    }

    /// From the deployment marker in `deploy_dir` (for an app without a version endpoint).
    pub fn from_marker(deploy_dir: &Path) -> Result<ReportedVersion, CodeError> {
        let path = DeploymentMarker::path_in(deploy_dir);
        let marker = DeploymentMarker::read(deploy_dir)?.ok_or_else(|| CodeError::Marker {
            path: path.clone(),
            reason:
                "there is none: the deploy did not finish, or the deploy directory is another one"
                    .into(),
        })?;
        Ok(ReportedVersion {
            source: path.display().to_string(),
            release: Some(marker.tag),
            commit: Some(marker.commit),
            deployed_at: Some(
                marker
                    .deployed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
        })
    }
}

impl From<&VersionInfo> for ReportedVersion {
    /// The app controller's probe of the version endpoint.
    fn from(v: &VersionInfo) -> ReportedVersion {
        ReportedVersion {
            source: "the version endpoint".into(),
            release: v.release.clone(),
            commit: v.commit.clone(),
            deployed_at: v.deployed_at.clone(),
        }
    }
}

/// Ok when `reported` names `expected`'s tag and its commit (in full, or an abbreviation of at
/// least 7 hex digits); otherwise the mismatch with both versions named.
pub fn verify_version(expected: &Release, reported: &ReportedVersion) -> Result<(), CodeError> {
    let why = match (&reported.release, &reported.commit) {
        (None, _) => Some("no release tag reported".to_string()),
        (Some(tag), _) if *tag != expected.tag => Some("the tag differs".to_string()),
        (_, None) => Some("no commit reported".to_string()),
        (_, Some(commit)) => commit_mismatch(&expected.commit, commit),
    };
    match why {
        None => Ok(()),
        Some(why) => Err(CodeError::VersionMismatch(Box::new(VersionMismatch {
            reported_by: reported.source.clone(),
            expected_tag: expected.tag.clone(),
            expected_commit: expected.commit.clone(),
            reported_tag: reported.release.clone().unwrap_or_else(|| "none".into()),
            reported_commit: reported.commit.clone().unwrap_or_else(|| "none".into()),
            why,
        }))),
    }
}

/// Why `reported` is not `expected` (a full commit id), `None` when it is.
fn commit_mismatch(expected: &str, reported: &str) -> Option<String> {
    let reported = reported.to_ascii_lowercase();
    if !reported.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some("the commit reported is not a hexadecimal commit id".into());
    }
    if reported.len() < MIN_ABBREV {
        return Some(format!(
            "the commit reported is shorter than {MIN_ABBREV} hex digits, too short to tell"
        ));
    }
    if !expected.to_ascii_lowercase().starts_with(&reported) {
        return Some("the commit differs".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn expected() -> Release {
        Release {
            tag: "v1.0.0".into(),
            commit: COMMIT.into(),
        }
    }

    fn reported(release: Option<&str>, commit: Option<&str>) -> ReportedVersion {
        ReportedVersion {
            source: "GET /version".into(),
            release: release.map(str::to_string),
            commit: commit.map(str::to_string),
            deployed_at: None,
        }
    }

    #[test]
    fn full_and_abbreviated_commits_match() {
        for c in [COMMIT, "89abcdef", "89ABCDE", &COMMIT.to_uppercase()] {
            verify_version(&expected(), &reported(Some("v1.0.0"), Some(c))).unwrap();
        }
    }

    #[test]
    fn every_mismatch_names_both_versions_and_why() {
        let cases = [
            (Some("v1.1.0"), Some(COMMIT), "the tag differs"),
            (Some("v1.0.0"), Some("0123456"), "the commit differs"),
            (Some("v1.0.0"), Some("89abcd"), "shorter than 7"),
            (Some("v1.0.0"), Some("main"), "not a hexadecimal"),
            (Some("v1.0.0"), None, "no commit reported"),
            (None, Some(COMMIT), "no release tag reported"),
        ];
        for (tag, commit, why) in cases {
            let err = verify_version(&expected(), &reported(tag, commit))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(why)
                    && err.contains(&format!("expected v1.0.0 at commit {COMMIT}"))
                    && err.contains(&format!(
                        "GET /version reports release {} at commit {}",
                        tag.unwrap_or("none"),
                        commit.unwrap_or("none")
                    )),
                "{err}"
            );
        }
    }

    #[test]
    fn json_bodies_name_the_release_in_release_or_tag() {
        let body = serde_json::json!({"version": "0.1.0", "release": "v1.0.0", "commit": COMMIT, "deployed_at": null});
        let r = ReportedVersion::from_json("GET /version", &body);
        assert_eq!(
            (r.release.as_deref(), r.commit.as_deref(), r.deployed_at),
            (Some("v1.0.0"), Some(COMMIT), None)
        );
        let body = serde_json::json!({"tag": "v2", "sha": "abcdef0"});
        let r = ReportedVersion::from_json("x", &body);
        assert_eq!(
            (r.release.as_deref(), r.commit.as_deref()),
            (Some("v2"), Some("abcdef0"))
        );
    }
}
