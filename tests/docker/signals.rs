//! A docker drill interrupted (Ctrl-C during the backup, SIGTERM while a container starts)
//! removes every container it made.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{assert_no_docker_leftovers, docker, docker_or_skip, drill_id, Sweep};
use crate::support::{read_report, Pgdrill};

#[test]
fn ctrl_c_during_the_backup_removes_every_container() {
    if !docker_or_skip("ctrl_c_during_the_backup_removes_every_container") {
        return;
    }
    // As a terminal sends Ctrl-C: SIGINT to the whole foreground process group, so pgdrill
    // and any program it runs receive it at once.
    let out = tempfile::Builder::new()
        .prefix("pgdrill-test-out-")
        .tempdir()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args([
            "drill",
            "--backend",
            "docker",
            "--rows",
            "20000",
            "--jobs",
            "2",
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.path().join("backup").exists() && started.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        out.path().join("backup").exists(),
        "the drill never reached its backup"
    );
    std::thread::sleep(Duration::from_millis(150));
    let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
    nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let r = read_report(out.path()).expect("an interrupted drill still writes its report");
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(status.code(), Some(3), "{}", r["failure"]);
    assert_eq!(r["verdict"], "error");
    assert!(
        r["failure"]["message"].as_str().unwrap().contains("SIGINT"),
        "{}",
        r["failure"]
    );
    // pg_dump was running in the container (docker exec) when the signal came.
    assert_eq!(r["failure"]["phase"], "backup", "{}", r["failure"]);
    assert_no_docker_leftovers(&id);
}

#[test]
fn sigterm_while_the_container_starts_removes_it() {
    if !docker_or_skip("sigterm_while_the_container_starts_removes_it") {
        return;
    }
    let sources = || -> Vec<String> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            "label=pgdrill.role=source",
            "--format",
            "{{.ID}} {{.Label \"pgdrill.drill\"}}",
        ])
        .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let before = sources();
    let (mut child, out_dir) = Pgdrill::drill(["--backend", "docker"]).spawn();
    // Any new source container; a concurrent test's would only change the timing.
    let started = Instant::now();
    let seen = loop {
        if let Some(new) = sources().into_iter().find(|s| !before.contains(s)) {
            break new;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no container appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let r = read_report(out_dir.path()).expect("an interrupted drill still writes its report");
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(status.code(), Some(3), "{}", r["failure"]);
    assert!(
        r["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("SIGTERM"),
        "{}",
        r["failure"]
    );
    if seen.ends_with(&id) {
        assert_eq!(
            r["failure"]["phase"], "provision",
            "the signal came while the container started"
        );
    }
    assert_no_docker_leftovers(&id);
}
