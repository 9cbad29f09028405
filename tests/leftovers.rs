//! Leftovers of a drill killed with SIGKILL: its temp directories stay (only its servers stop,
//! by their parent-death signal) until `pgdrill clean` or the next drill removes them; a live
//! drill's directories are never touched.

use crate::support::{kill_drill, read_report, spawn_drill, wait_for_phase, Pgdrill};
use std::path::{Path, PathBuf};

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

/// A drill killed with SIGKILL after its seed, its servers gone; returns its id.
fn killed_drill(tmp: &Path) -> String {
    let (mut child, out) = spawn_drill("native", tmp, ROWS);
    let id = wait_for_phase(out.path(), "seed");
    kill_drill(&mut child, &id);
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
    let (mut child, out) = spawn_drill("native", tmp.path(), ROWS);
    let live = wait_for_phase(out.path(), "provision");
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
    let (mut child, out) = spawn_drill("docker", tmp.path(), ROWS);
    let id = wait_for_phase(out.path(), "seed");
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
