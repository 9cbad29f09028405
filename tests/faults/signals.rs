//! SIGTERM in each phase in turn: the phase list comes from a real drill's report (the
//! scenario the drill ran), then one drill per phase is stopped once that phase has started.
//! Each ends with exit 3, a report that names the phase it was stopped in, and nothing left.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{events, leftovers, read_report, Pgdrill};

/// A drill with the sample app, so the app phases are in the loop too.
const DATABASE: &[&str] = &["--backend", "native"];
/// The monthly drill's scope: config restore, code rollback, RPO (long rows only).
const FULL: &[&str] = &["--backend", "native", "--scope", "full", "--observe", "1s"];

/// The names of the phases a passing drill with `args` ran, in order.
fn phases_of(args: &[&str]) -> Vec<String> {
    let run = Pgdrill::drill(args.iter().copied()).run();
    let r = run.assert_pass();
    r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] != "skipped")
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// The phase of the newest `phase_started` event, if any.
fn current_phase(ev: &[Value]) -> Option<String> {
    ev.iter()
        .rev()
        .find(|e| e["event"] == "phase_started")
        .map(|e| e["phase"].as_str().unwrap().to_string())
}

/// Starts a drill, sends SIGTERM once `phase` (or a later one) has started, and checks the
/// verdict; returns the phase the report names.
fn sigterm_in(args: &[&str], phases: &[String], phase: &str) -> String {
    let (mut child, out_dir) = Pgdrill::drill(args.iter().copied()).spawn();
    let at = phases.iter().position(|p| p == phase).unwrap();
    let started = Instant::now();
    let reached = loop {
        let ev = events(out_dir.path());
        if let Some(cur) = current_phase(&ev) {
            if phases.iter().position(|p| *p == cur).unwrap_or(0) >= at {
                break cur;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the drill ended ({status}) before {phase} started: {ev:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{phase} never started: {ev:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let sent = chrono::Utc::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let r =
        read_report(out_dir.path()).unwrap_or_else(|| panic!("SIGTERM in {phase}: no report.json"));
    let ev = events(out_dir.path());
    let failure = &r["failure"];
    let id = r["drill_id"].as_str().unwrap();
    if status.code() == Some(0) {
        // The last phases take no time: the signal may land once every phase is over, while
        // the report is written. The verdict stands then (and nothing is left), but only when
        // the last phase had really finished before the signal was sent.
        assert_eq!(r["verdict"], "pass", "SIGTERM in {phase}: {failure}");
        let last = ev
            .iter()
            .rev()
            .find(|e| e["event"] == "phase_finished")
            .and_then(|e| e["ts"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .expect("a phase_finished event");
        assert!(
            last <= sent + chrono::TimeDelta::milliseconds(5),
            "SIGTERM in {phase} at {sent} was answered with a pass, though the last phase ended at {last}"
        );
        assert_clean(id, out_dir.path(), phase);
        return reached;
    }
    assert_eq!(
        (status.code(), r["verdict"].as_str()),
        (Some(3), Some("error")),
        "SIGTERM in {phase}: {failure}"
    );
    assert!(
        failure["message"].as_str().unwrap().contains("SIGTERM"),
        "SIGTERM in {phase}: {failure}"
    );
    let named = failure["phase"].as_str().unwrap_or_default().to_string();
    // The report names the phase the signal arrived in: the first that did not pass in the
    // event trail (the signal may land a moment after `reached` finished, never before it
    // started; the checklist still runs after a failure, so it is not "the last started").
    let first_not_passed = ev
        .iter()
        .find(|e| e["event"] == "phase_finished" && e["status"] != "pass")
        .map(|e| e["phase"].as_str().unwrap().to_string());
    assert_eq!(
        Some(named.clone()),
        first_not_passed,
        "SIGTERM in {phase}: the report and the event trail disagree: {failure}"
    );
    let named_at = phases.iter().position(|p| *p == named);
    // The precheck runs beside replace_server: a signal once both started stops both, and
    // the first of them is named.
    let side_by_side = reached == "precheck" && named == "replace_server";
    assert!(
        side_by_side || named_at >= phases.iter().position(|p| *p == reached),
        "SIGTERM in {phase} (reached {reached}) named {named}"
    );
    assert_clean(id, out_dir.path(), phase);
    named
}

/// Nothing of drill `id` is left: no process, no temp dir (processes get a moment to exit).
fn assert_clean(id: &str, out: &Path, phase: &str) {
    let started = Instant::now();
    while !leftovers(id).is_empty() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        leftovers(id).is_empty(),
        "SIGTERM in {phase} left {:?} (out {})",
        leftovers(id),
        out.display()
    );
}

/// Stops one drill per phase of `args`'s scenario; every phase must be named by some run.
fn sigterm_in_every_phase(args: &[&str]) {
    let phases = phases_of(args);
    assert!(phases.len() >= 8, "{phases:?}");
    let mut named = Vec::new();
    for p in &phases {
        named.push(sigterm_in(args, &phases, p));
    }
    // Short phases may end before the signal lands; most must still be hit exactly.
    let exact = phases.iter().zip(&named).filter(|(p, n)| p == n).count();
    assert!(
        exact * 2 >= phases.len(),
        "too few phases hit exactly: planned {phases:?}, named {named:?}"
    );
}

#[test]
fn sigterm_in_each_phase_of_a_drill_exits_3_names_the_phase_and_leaves_nothing() {
    sigterm_in_every_phase(DATABASE);
}

#[test]
fn sigterm_in_each_phase_of_a_full_drill_exits_3_names_the_phase_and_leaves_nothing() {
    if !super::long() {
        eprintln!("skipped: PGDRILL_FAULTS=long runs the full drill's loop (monthly workflow)");
        return;
    }
    sigterm_in_every_phase(FULL);
}
