//! Nothing is left behind: no postgres process and no temp dir, after a pass, a failure and
//! an interruption.

use std::time::{Duration, Instant};

use crate::support::{leftovers, read_report, Pgdrill};

#[test]
fn nothing_left_after_a_failing_drill() {
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--tamper-sql",
        "UPDATE users SET country = 'ZZ' WHERE id = 2",
    ])
    .run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let id = run.report()["drill_id"].as_str().unwrap().to_string();
    assert!(leftovers(&id).is_empty(), "{:?}", leftovers(&id));
}

#[test]
fn sigint_stops_the_drill_cleans_up_and_reports_it() {
    // Enough rows that the drill is still running when the signal arrives.
    let d = Pgdrill::new(["drill", "--backend", "native", "--rows", "60000"]);
    let out = d.out_dir().display().to_string();
    let (mut child, out_dir) = d.push_arg("--out").push_arg(out).spawn();
    // Wait until the drill is taking its backup: its servers exist, so there is something to
    // clean up. The backup dir is this drill's own, unlike temp dirs of concurrent tests.
    let started = Instant::now();
    while !out_dir.path().join("backup").exists() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        out_dir.path().join("backup").exists(),
        "the drill never reached its backup"
    );
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "an interrupted drill is not a verdict on the backup"
    );
    let r = read_report(out_dir.path()).expect("an interrupted drill still writes its report");
    assert_eq!(r["verdict"], "error");
    assert!(
        r["failure"]["message"].as_str().unwrap().contains("SIGINT"),
        "{}",
        r["failure"]
    );
    let id = r["drill_id"].as_str().unwrap();
    assert!(leftovers(id).is_empty(), "{:?}", leftovers(id));
}

/// A server start cut off at any moment (a signal drops the drill's future): the copy of the
/// template, the server's start and its wait for connections each leave nothing behind.
#[test]
fn a_server_start_cut_off_at_any_moment_leaves_nothing() {
    let id = format!("test-cutoff-{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let backend = pgdrill::env::native::NativeBackend::discover(&id).unwrap();
        // The template exists first, as it does when a drill replaces a lost server.
        let first = rt.block_on(backend.provision("first")).unwrap();
        rt.block_on(first.destroy()).unwrap();
        let mut cut = 0;
        for ms in (0..120).step_by(4) {
            let started = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(ms), backend.provision("target")).await
            });
            match started {
                Ok(t) => rt.block_on(t.unwrap().destroy()).unwrap(),
                Err(_) => cut += 1,
            }
            let left: Vec<_> = leftovers(&id)
                .into_iter()
                .filter(|l| !l.contains("-template-"))
                .collect();
            assert!(left.is_empty(), "cut off after {ms} ms: {left:?}");
        }
        // Some starts must really have been cut off, or the test proves nothing.
        assert!(cut >= 3, "only {cut} starts were cut off");
    }
    assert!(leftovers(&id).is_empty(), "{:?}", leftovers(&id));
}
