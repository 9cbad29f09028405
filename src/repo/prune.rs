//! `pgdrill prune`: retention with floors. A dry run by default; `--confirm` deletes a set's
//! files together. Never the newest N, never the newest backup that passed a restore drill
//! (from the audit log), never the newest manual backup; only regular files named as pgdrill
//! names them, inside the repo, found without following links. Unknown files stay.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::audit::{Action, Event, Outcome as AuditOutcome};
use super::{Listing, Repo, RepoError};
use crate::backup::BackupKind;

/// Retention settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Database backups younger than this are kept.
    pub keep_days: Duration,
    /// Config backups younger than this are kept.
    pub config_keep_days: Duration,
    /// The newest N of each kind are always kept.
    pub min_keep: usize,
    /// The moment retention is computed for.
    pub at: DateTime<Utc>,
}

/// Why a backup stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Younger than the retention.
    Retention,
    /// Among the newest N.
    MinKeep,
    /// The newest backup a restore drill passed on.
    LastDrilled,
    /// The newest manual backup.
    LastManual,
}

/// One backup set and its fate.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// `database` or `config`.
    pub area: &'static str,
    /// The set's name.
    pub name: String,
    /// When it was taken.
    pub created_at: String,
    /// Why it stays; `None` means it goes.
    pub keep: Option<Keep>,
    /// Its files (relative to the repo).
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// The plan: every set's fate and the recovery window before and after.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Every backup set.
    pub decisions: Vec<Decision>,
    /// Oldest and newest database backup now.
    pub window_before: Option<(String, String)>,
    /// Oldest and newest database backup after pruning.
    pub window_after: Option<(String, String)>,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The newest dump a drill passed on, by file name, from the audit log.
fn last_drilled(history: &[Event]) -> Option<String> {
    history
        .iter()
        .rev()
        .filter(|e| e.action == Action::Drill && e.result == AuditOutcome::Pass)
        .find_map(|e| e.object.file.as_deref())
        .and_then(|f| {
            std::path::Path::new(f)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
}

/// Decides what goes.
pub fn plan(listing: &Listing, history: &[Event], opts: &Options) -> Plan {
    let cutoff = crate::duration::before(opts.at, opts.keep_days);
    let ccutoff = crate::duration::before(opts.at, opts.config_keep_days);
    let drilled = last_drilled(history);
    let newest_drilled = listing
        .database
        .iter()
        .rev()
        .find(|b| Some(&b.name) == drilled.as_ref())
        .map(|b| b.name.clone());
    let newest_manual = listing
        .database
        .iter()
        .rev()
        .find(|b| {
            b.manifest
                .as_ref()
                .is_ok_and(|m| m.kind == Some(BackupKind::Manual))
        })
        .map(|b| b.name.clone());
    let n = listing.database.len();
    let mut decisions = Vec::new();
    for (i, b) in listing.database.iter().enumerate() {
        let keep = if b.created_at() >= cutoff {
            Some(Keep::Retention)
        } else if i + opts.min_keep >= n {
            Some(Keep::MinKeep)
        } else if Some(&b.name) == newest_drilled.as_ref() {
            Some(Keep::LastDrilled)
        } else if Some(&b.name) == newest_manual.as_ref() {
            Some(Keep::LastManual)
        } else {
            None
        };
        decisions.push(Decision {
            area: "database",
            name: b.name.clone(),
            created_at: rfc(b.created_at()),
            keep,
            files: b.files(),
        });
    }
    let cn = listing.config.len();
    for (i, c) in listing.config.iter().enumerate() {
        let keep = if c.created_at() >= ccutoff {
            Some(Keep::Retention)
        } else if i + opts.min_keep >= cn {
            Some(Keep::MinKeep)
        } else {
            None
        };
        decisions.push(Decision {
            area: "config",
            name: c.name.clone(),
            created_at: rfc(c.created_at()),
            keep,
            files: c.files(),
        });
    }
    let window = |keep_only: bool| {
        let mut it = decisions
            .iter()
            .filter(|d| d.area == "database" && (!keep_only || d.keep.is_some()));
        let first = it.next()?;
        let last = it.next_back().unwrap_or(first);
        Some((first.created_at.clone(), last.created_at.clone()))
    };
    let (window_before, window_after) = (window(false), window(true));
    Plan {
        decisions,
        window_before,
        window_after,
    }
}

/// Deletes the sets the plan lets go, each set's files together; returns the deleted paths.
/// A path that is no longer a regular file inside the repo is left alone.
pub fn apply(repo: &Repo, plan: &Plan) -> Result<Vec<PathBuf>, RepoError> {
    let mut deleted = Vec::new();
    let root = repo.root();
    for d in plan.decisions.iter().filter(|d| d.keep.is_none()) {
        for f in &d.files {
            let meta = std::fs::symlink_metadata(f)
                .map_err(|e| RepoError::io(format!("cannot inspect {}", f.display()), e))?;
            let inside = f
                .parent()
                .is_some_and(|p| p == repo.database_dir() || p == repo.config_dir())
                && f.starts_with(root);
            if !meta.file_type().is_file() || !inside {
                continue;
            }
            std::fs::remove_file(f)
                .map_err(|e| RepoError::io(format!("cannot delete {}", f.display()), e))?;
            deleted.push(f.clone());
        }
    }
    for dir in [repo.database_dir(), repo.config_dir()] {
        if dir.is_dir() {
            let _ = crate::digest::sync_dir(&dir);
        }
    }
    Ok(deleted)
}

impl Plan {
    /// The table for people.
    pub fn table(&self, confirmed: bool) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let going = self.decisions.iter().filter(|d| d.keep.is_none()).count();
        let verb = if confirmed {
            "deleted"
        } else {
            "would delete (dry run; --confirm deletes)"
        };
        let _ = writeln!(
            s,
            "prune: {going} of {} backup sets {verb}",
            self.decisions.len()
        );
        for d in &self.decisions {
            let fate = match d.keep {
                None => "delete".to_string(),
                Some(k) => format!(
                    "keep ({})",
                    serde_json::to_value(k)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
            };
            let _ = writeln!(
                s,
                "  {:<8} {:<24} {}  {}",
                d.area, d.name, d.created_at, fate
            );
        }
        let w = |x: &Option<(String, String)>| {
            x.as_ref()
                .map(|(a, b)| format!("{a} .. {b}"))
                .unwrap_or_else(|| "none".into())
        };
        let _ = writeln!(s, "recovery window before: {}", w(&self.window_before));
        let _ = writeln!(s, "recovery window after:  {}", w(&self.window_after));
        s
    }
}
