//! `pgdrill drill --scope full`, the monthly drill: the database, the application's
//! configuration and its code restored together, and the RPO measured against the ledger the
//! writer kept. The sample app with the release repository the drill makes; a user-style
//! application made here (a git repository with tagged releases and a deploy script, a `.env`
//! and a WireGuard file); every fault failing at its phase with its class; no secret of a
//! configuration file in any output; every usage error naming its flag. Time is compressed
//! (backups two seconds apart), never a real 15 minutes.
//!
//! The topics: [`sample_app`] (the drill with the sample app, from the CLI and the library
//! API), [`user_app`] (a user-style application), [`faults`] (each fault at its phase),
//! [`usage`] (usage errors); [`user`] makes the user-style application and [`secrets`]
//! searches every output for secrets.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{leftovers, Run};

mod faults;
mod sample_app;
mod secrets;
mod usage;
mod user;
mod user_app;

/// The phases of a full drill on generated data with an application, in order.
const FULL_PHASES: &[&str] = &[
    "provision",
    "seed",
    "config_backup",
    "app_start",
    "writer_start",
    "backup",
    "disaster",
    "stop_app",
    "replace_server",
    "precheck",
    "roles",
    "createdb",
    "pg_restore",
    "analyze",
    "config_restore",
    "code_rollback",
    "snapshot",
    "compare",
    "amcheck",
    "rpo",
    "negative_controls",
    "start_app",
    "app_healthy",
    "observe_app",
    "app_version",
    "checklist",
];

/// A full drill on the native backend, watched for a second after the restart.
const FULL: &[&str] = &["--scope", "full", "--backend", "native", "--observe", "1s"];

/// The flag groups, in order, as one argument list.
fn args<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// The phase names of a report, in order.
fn phase_names(r: &Value) -> Vec<&str> {
    r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

/// Nothing of the drill is left: no server, no app started by it, no temp dir, and in
/// particular not its private directory (configuration, identity, releases, deploy dir).
fn assert_nothing_left(r: &Value) {
    let id = r["drill_id"].as_str().unwrap();
    let left = leftovers(id);
    assert!(left.is_empty(), "left behind: {left:?}");
    let work = format!("pgdrill-{id}-work-");
    let dirs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&work))
        .collect();
    assert!(
        dirs.is_empty(),
        "the drill's private directory is left: {dirs:?}"
    );
}

/// A drill that failed at `phase` with `class` (exit 1, or 3 for the environment); returns
/// the failure's message. Every phase after it was skipped, and nothing is left behind.
fn assert_failed_at<'a>(run: &'a Run, phase: &str, class: &str) -> &'a str {
    assert_failed_then(run, phase, class, &[])
}

/// As [`assert_failed_at`], but the phases `still_ran` after the failed one ran and passed.
fn assert_failed_then<'a>(run: &'a Run, phase: &str, class: &str, still_ran: &[&str]) -> &'a str {
    let r = run.report();
    let (code, verdict) = if class == "environment" {
        (3, "error")
    } else {
        (1, "fail")
    };
    assert_eq!(
        (run.code(), r["verdict"].as_str()),
        (code, Some(verdict)),
        "failure={}\n{}",
        r["failure"],
        run.text()
    );
    assert_eq!(
        (
            r["failure"]["phase"].as_str(),
            r["failure"]["class"].as_str()
        ),
        (Some(phase), Some(class)),
        "{}",
        r["failure"]
    );
    assert_eq!(run.phase(phase)["status"], "fail");
    let names = phase_names(r);
    let at = names.iter().position(|n| *n == phase).unwrap();
    for p in &r["phases"].as_array().unwrap()[..at] {
        assert_eq!(p["status"], "pass", "{p}");
    }
    for p in &r["phases"].as_array().unwrap()[at + 1..] {
        let ran = still_ran.iter().any(|n| p["name"] == *n);
        assert_eq!(p["status"], if ran { "pass" } else { "skipped" }, "{p}");
    }
    assert_nothing_left(r);
    r["failure"]["message"].as_str().unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}
