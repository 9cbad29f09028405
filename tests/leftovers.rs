//! Leftovers of a drill killed with SIGKILL: its temp directories stay (only its servers stop,
//! by their parent-death signal) until `pgdrill clean` or the next drill removes them; a live
//! drill's directories are never touched.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{leftovers, read_report, Pgdrill};

/// Enough rows that the drill is still running when it is killed after its seed.
const ROWS: &str = "20000";

fn dirs_of(tmp: &Path, id: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("pgdrill-{id}-"))
        })
        .collect();
    found.sort();
    found
}

fn events(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("events.ndjson"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until the drill writing into `out` has finished `phase`; returns its drill id.
fn wait_for(out: &Path, phase: &str) -> String {
    let started = Instant::now();
    loop {
        let ev = events(out);
        if ev
            .iter()
            .any(|e| e["event"] == "phase_finished" && e["phase"] == phase)
        {
            return ev[0]["drill_id"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no {phase} yet: {ev:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(tmp: &Path) -> (Child, tempfile::TempDir) {
    let d = Pgdrill::new([
        "drill",
        "--backend",
        "native",
        "--app",
        "none",
        "--rows",
        ROWS,
    ])
    .env("TMPDIR", tmp.to_str().unwrap());
    let out = d.out_dir().display().to_string();
    d.push_arg("--out").push_arg(out).spawn()
}

/// A drill killed with SIGKILL after its seed, its servers gone; returns its id.
fn killed_drill(tmp: &Path) -> String {
    let (mut child, out) = start(tmp);
    let id = wait_for(out.path(), "seed");
    child.kill().unwrap();
    child.wait().unwrap();
    let started = Instant::now();
    while leftovers(&id).iter().any(|l| l.starts_with("process"))
        && started.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !leftovers(&id).iter().any(|l| l.starts_with("process")),
        "{:?}",
        leftovers(&id)
    );
    id
}

fn clean(tmp: &Path, extra: &[&str]) -> crate::support::Run {
    let mut c = Pgdrill::new(["clean"]).env("TMPDIR", tmp.to_str().unwrap());
    for a in extra {
        c = c.push_arg(*a);
    }
    c.run()
}

#[test]
fn clean_removes_what_a_killed_drill_left_and_never_a_live_drills_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let id = killed_drill(tmp.path());
    let left = dirs_of(tmp.path(), &id);
    assert!(!left.is_empty(), "a SIGKILL left no directory to clean");

    let dry = clean(tmp.path(), &["--dry-run"]);
    assert_eq!(dry.code(), 1, "{}", dry.text());
    for d in &left {
        assert!(dry
            .text()
            .contains(&format!("would remove {}", d.display())));
        assert!(d.exists(), "--dry-run removed {}", d.display());
    }

    let run = clean(tmp.path(), &[]);
    assert_eq!(run.code(), 0, "{}", run.text());
    for d in &left {
        assert!(
            run.text().contains(&format!("removed {}", d.display())),
            "{}",
            run.text()
        );
        assert!(
            run.text().contains(&format!("drill {id}")),
            "{}",
            run.text()
        );
    }
    assert!(dirs_of(tmp.path(), &id).is_empty());

    // A second killed drill; a live drill sweeps its leftovers and says so, and clean during
    // the live drill touches nothing of it.
    let dead = killed_drill(tmp.path());
    let dead_dirs = dirs_of(tmp.path(), &dead);
    assert!(!dead_dirs.is_empty());
    let (mut child, out) = start(tmp.path());
    let live = wait_for(out.path(), "provision");
    let live_dirs = dirs_of(tmp.path(), &live);
    assert!(!live_dirs.is_empty());
    let during = clean(tmp.path(), &[]);
    assert_eq!(during.code(), 0, "{}", during.text());
    assert!(!during.text().contains(&live), "{}", during.text());
    for d in &live_dirs {
        assert!(d.exists(), "clean removed the live drill's {}", d.display());
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let report = read_report(out.path()).unwrap();
    let notes = report["notes"].to_string();
    for d in &dead_dirs {
        assert!(
            notes.contains(&format!("{} (drill {dead}", d.display())),
            "{notes}"
        );
        assert!(!d.exists());
    }
    assert!(
        dirs_of(tmp.path(), &live).is_empty(),
        "the live drill left its dirs"
    );
}

fn labelled(what: &[&str], id: &str) -> Vec<String> {
    let filter = format!("label=pgdrill.drill={id}");
    let mut args = what.to_vec();
    args.extend(["-q", "--filter", &filter]);
    let out = std::process::Command::new("docker")
        .args(&args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn clean_removes_the_containers_and_network_of_a_killed_docker_drill() {
    let engine = std::process::Command::new("docker")
        .args(["image", "inspect", "pgdrill/postgres:15-local"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !engine {
        assert!(
            std::env::var("PGDRILL_REQUIRE_DOCKER").map_or(true, |v| v != "1"),
            "PGDRILL_REQUIRE_DOCKER=1 but no engine or no pgdrill/postgres:15-local"
        );
        eprintln!("skipped: no Docker engine or no pgdrill/postgres:15-local image");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = Pgdrill::new([
        "drill",
        "--backend",
        "docker",
        "--app",
        "none",
        "--rows",
        ROWS,
    ])
    .env("TMPDIR", tmp.path().to_str().unwrap());
    let out = d.out_dir().display().to_string();
    let (mut child, out) = d.push_arg("--out").push_arg(out).spawn();
    let id = wait_for(out.path(), "seed");
    child.kill().unwrap();
    child.wait().unwrap();
    let containers = labelled(&["ps", "-a"], &id);
    let networks = labelled(&["network", "ls"], &id);
    assert!(
        !containers.is_empty() && !networks.is_empty(),
        "nothing left to clean"
    );
    let run = clean(tmp.path(), &[]);
    assert_eq!(run.code(), 0, "{}", run.text());
    for c in &containers {
        assert!(
            run.text().contains(&format!("container {c}")),
            "{}",
            run.text()
        );
    }
    assert!(labelled(&["ps", "-a"], &id).is_empty(), "{}", run.text());
    assert!(
        labelled(&["network", "ls"], &id).is_empty(),
        "{}",
        run.text()
    );
    assert!(dirs_of(tmp.path(), &id).is_empty());
}
