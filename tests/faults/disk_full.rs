//! A full disk under the drill: each is the machine's fault (exit 3) naming the path and the
//! system's words, and leaves nothing behind. Already covered elsewhere: the repo filling up
//! under `pgdrill backup` (`regime::backup_faults_are_environment_errors_with_clear_messages`)
//! and the target's data directory filling up in pg_restore
//! (`drill::a_full_disk_during_pg_restore_is_an_environment_error_naming_the_directory`).

use std::path::Path;

use crate::support::{Pgdrill, Tmpfs};

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// The source's disk fills up while seeding (the native backend makes its servers under
/// TMPDIR: a tmpfs there holds the template and the empty source, about 40 MB each, but not
/// 200k users): the server's own words (ENOSPC and the file it could not write) reach the
/// message, with the path on this machine, and not the hint about empty tables meant for
/// rejected data.
#[test]
fn a_full_disk_while_seeding_names_the_path_and_not_the_schema() {
    let tmp = Tmpfs::mount("size=100m");
    let out = tempfile::tempdir().unwrap();
    let run = Pgdrill::new([
        "drill",
        "--backend",
        "native",
        "--app",
        "none",
        "--rows",
        "200000",
        "--out",
    ])
    .push_arg(out.path().display().to_string())
    .env("TMPDIR", tmp.path().to_str().unwrap())
    .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let report = crate::support::read_report(out.path())
        .unwrap_or_else(|| panic!("no report: {}", run.text()));
    let f = &report["failure"];
    assert_eq!(
        (f["phase"].as_str(), f["class"].as_str()),
        (Some("seed"), Some("environment")),
        "{f}"
    );
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("No space left on device")
            && msg.contains(&tmp.path().display().to_string())
            && !msg.contains("seed expects"),
        "{msg}"
    );
    assert!(
        entries(tmp.path()).is_empty(),
        "left {:?}",
        entries(tmp.path())
    );
}

/// `--out` on a disk too small for the report: exit 3 naming the file and ENOSPC, and no half
/// report under a final name.
#[test]
fn a_full_out_dir_is_an_environment_error_naming_the_file() {
    let out = Tmpfs::mount("size=16k");
    let tmp = tempfile::tempdir().unwrap();
    let run = Pgdrill::new([
        "drill",
        "--backend",
        "native",
        "--app",
        "none",
        "--rows",
        "300",
        "--out",
    ])
    .push_arg(out.path().display().to_string())
    .env("TMPDIR", tmp.path().to_str().unwrap())
    .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let text = run.text();
    assert!(
        text.contains("No space left on device")
            && text.contains(&format!("cannot write {}/", out.path().display())),
        "{text}"
    );
    for name in ["report.json", "report.md", "report.html", "junit.xml"] {
        if let Ok(bytes) = std::fs::read(out.path().join(name)) {
            assert!(
                name != "report.json"
                    || serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
                "half a {name} was left"
            );
        }
    }
    let stray: Vec<_> = entries(out.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".pgdrill-tmp-")
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert!(
        entries(tmp.path()).is_empty(),
        "left {:?}",
        entries(tmp.path())
    );
}

/// A program that fails with hundreds of lines of stderr (`cp` of the template cluster onto
/// a disk with room for the template only, one line per file it could not write): the last
/// line pgdrill prints cuts it as the summary does, and report.md keeps all of it.
#[test]
fn a_failing_program_s_long_stderr_is_cut_in_the_last_line_and_kept_in_the_report() {
    let tmp = Tmpfs::mount("size=56m");
    let run = Pgdrill::native(Vec::<String>::new())
        .env("TMPDIR", tmp.path().to_str().unwrap())
        .run();
    assert_eq!(run.code(), 3, "{}", run.text());
    let f = &run.report()["failure"];
    assert_eq!(f["phase"], "provision", "{f}");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("cannot copy the template cluster") && msg.lines().count() > 50,
        "the failure should hold cp's many lines: {msg}"
    );
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    let last = &stderr[stderr
        .find("pgdrill: the drill could not run")
        .unwrap_or_else(|| panic!("{stderr}"))..];
    assert!(last.lines().count() <= 8, "printed whole:\n{last}");
    assert!(
        last.contains("more line(s) in") && last.contains("report.md"),
        "{last}"
    );
    let md = std::fs::read_to_string(run.out.path().join("report.md")).unwrap();
    let last_cp_line = msg.lines().rev().find(|l| l.contains("cp:")).unwrap();
    assert!(md.contains(last_cp_line), "report.md lost the full text");
    assert!(
        entries(tmp.path()).is_empty(),
        "left {:?}",
        entries(tmp.path())
    );
}
