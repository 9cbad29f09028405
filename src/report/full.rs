//! The sections a full drill (`--scope full`) adds to report.json: the configuration restored
//! and the code rolled back. Absent from a database drill's report.

use serde::{Deserialize, Serialize};

/// The `config` section: which configuration backup was restored and what was checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfigRestored {
    /// The backup restored (`config_YYYYmmdd_HHMMSS`).
    pub backup: String,
    /// SHA-256 of its archive.
    pub sha256: String,
    /// The files restored, by name (never a value).
    pub files: Vec<String>,
    /// The keys that had to be present and non-empty.
    pub required_keys: Vec<String>,
    /// Every check made, in words.
    pub checks: Vec<String>,
}

/// A release: a tag and its commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseRef {
    /// The tag.
    pub tag: String,
    /// The full commit id.
    pub commit: String,
}

/// What an application reported of its release.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportedRelease {
    /// Where it was read (the version endpoint, or the marker's path).
    pub source: String,
    /// The tag reported.
    pub release: Option<String>,
    /// The commit reported.
    pub commit: Option<String>,
    /// When it was deployed, as reported.
    pub deployed_at: Option<String>,
}

/// The `rollback` section: the release deployed at the disaster, the one rolled back to, and
/// what the restarted application reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rollback {
    /// The git repository.
    pub repository: String,
    /// The release deployed when the disaster struck (the bad one), when it could be told.
    pub from: Option<ReleaseRef>,
    /// The release rolled back to.
    pub to: ReleaseRef,
    /// The deployment marker written after the deploy.
    pub marker: String,
    /// How long the deploy command ran (ms).
    pub deploy_ms: u64,
    /// What the restarted application reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<ReportedRelease>,
    /// The deploy command that ran (absent in reports of pgdrill versions before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_command: Option<String>,
    /// The directory the release was deployed into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_dir: Option<String>,
    /// The clean checkout of the release the deploy command ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<String>,
}

/// report.md's sections of a full drill: the configuration restored, the code rolled back
/// (for `pgdrill rollback`, its own section, "The code rollback").
pub fn markdown(
    s: &mut String,
    config: Option<&ConfigRestored>,
    rollback: Option<&Rollback>,
    kind: crate::report::ReportKind,
) {
    use std::fmt::Write;
    if let Some(c) = config {
        let _ = writeln!(s, "\n## Configuration restored\n\n| | |\n|---|---|");
        let _ = writeln!(s, "| Backup | `{}` |", c.backup);
        let _ = writeln!(s, "| SHA-256 | `{}` |", c.sha256);
        let _ = writeln!(s, "| Files | {} |", c.files.join(", "));
        let _ = writeln!(s, "| Required keys | {} |", c.required_keys.join(", "));
        for check in &c.checks {
            let _ = writeln!(s, "| Check | {check} |");
        }
    }
    if let Some(r) = rollback {
        let (title, from_label) = match kind {
            crate::report::ReportKind::Rollback => ("The code rollback", "Deployed before"),
            _ => ("Code rolled back", "Deployed at the disaster"),
        };
        let _ = writeln!(s, "\n## {title}\n\n| | |\n|---|---|");
        let _ = writeln!(s, "| Repository | `{}` |", r.repository);
        let release = |x: &ReleaseRef| format!("{} ({})", x.tag, x.commit);
        let from = r.from.as_ref().map(release).unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "| {from_label} | {from} |");
        let _ = writeln!(s, "| Rolled back to | {} |", release(&r.to));
        if let Some(c) = &r.checkout {
            let _ = writeln!(s, "| Clean checkout | `{c}` |");
        }
        if let Some(c) = &r.deploy_command {
            let _ = writeln!(s, "| Deploy command | `{c}` |");
        }
        if let Some(d) = &r.deploy_dir {
            let _ = writeln!(s, "| Deployed into | `{d}` |");
        }
        let _ = writeln!(s, "| Deployment marker | `{}` |", r.marker);
        let _ = writeln!(s, "| Deploy took | {} ms |", r.deploy_ms);
        let reported = match &r.reported {
            Some(v) => format!(
                "{} at {} ({})",
                v.release.as_deref().unwrap_or("-"),
                v.commit.as_deref().unwrap_or("-"),
                v.source
            ),
            None => "not read (the application did not run again)".into(),
        };
        let _ = writeln!(s, "| The application reports | {reported} |");
    }
}
